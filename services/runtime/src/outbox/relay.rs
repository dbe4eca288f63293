//! Publishes committed outbox rows to JetStream.
//!
//! Rows are chosen by their unpublished state, never by "id greater than the last one sent",
//! so a transaction that commits after a higher id is never skipped. Rows go out in commit
//! order, several of one entity in the same round. Each message whose entity has an earlier
//! row without the archive's receipt names that row's event in the
//! [`PREVIOUS_EVENT_HEADER`](crate::nats::PREVIOUS_EVENT_HEADER) header, and the archive
//! appends it only after that event. The ledger order per entity is then the commit order,
//! even when the broker loses a message or the archive receives a batch again after a crash.
//!
//! When receipts are overdue the relay first sends the archive a [`ReceiptQuery`] for those
//! events. A receipt lost while NATS restarted is then recovered at once. The events the
//! archive does not name, or all of them when it does not reply, are published again.
//!
//! A row is published with the event id as `Nats-Msg-Id`, so the broker drops a second copy
//! sent because a broker ack was lost, or because a receipt is late while the archive does
//! not reply. When the archive replies that it lacks an overdue event, the stream may have
//! lost it (a purge, or a broker that lost its store). The broker would still drop a copy
//! with the same id for its whole duplicate window (two minutes by default). So that copy
//! carries the event id with the attempt number instead ([`message_id`]). When the archive
//! was only behind, the first copy turns up as well, and the archive, which stores each
//! event id once, absorbs the second.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use async_nats::jetstream;
use async_nats::jetstream::message::PublishMessage;
use bytes::Bytes;
use prost::Message;
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ColumnTrait, Condition, DatabaseConnection, EntityTrait, FromQueryResult, QueryFilter,
    QueryOrder, QuerySelect,
};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use trace_proto::event::v1::{Receipt, ReceiptQuery};
use tracing::Instrument;

use super::Outbox;
use super::entity::{event, lease};
use crate::clock::SharedClock;
use crate::config::{NatsSettings, OutboxSettings};
use crate::metrics::Metrics;
use crate::propagation::{self, TRACEPARENT, TRACESTATE};

/// How long a relay holds its lease without renewing it.
const LEASE_DURATION: Duration = Duration::from_secs(15);

/// Maximum pause between rounds after publish failures.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// How long the relay waits for the archive's reply to a receipt query.
const RECEIPT_QUERY_TIMEOUT: Duration = Duration::from_secs(2);

/// Event id of the latest earlier row of the candidate's entity without a receipt, or NULL.
/// Written in SQL that SQLite and PostgreSQL share; the index on (entity_type, entity_id,
/// seq) serves it.
const PREVIOUS_UNARCHIVED: &str = "(SELECT earlier.event_id FROM outbox AS earlier \
     WHERE earlier.entity_type = outbox.entity_type \
     AND earlier.entity_id = outbox.entity_id \
     AND earlier.seq < outbox.seq \
     AND earlier.archived_at IS NULL \
     ORDER BY earlier.seq DESC LIMIT 1)";

/// An unpublished row with what its publication needs.
#[derive(Debug, FromQueryResult)]
struct PendingRow {
    seq: i64,
    event_id: String,
    subject: String,
    envelope: Vec<u8>,
    traceparent: String,
    attempts: i32,
    /// See [`PREVIOUS_UNARCHIVED`].
    previous_event_id: Option<String>,
}

/// Publishes outbox rows until cancelled.
#[derive(Debug)]
pub struct Relay {
    db: DatabaseConnection,
    client: async_nats::Client,
    jetstream: jetstream::Context,
    service: &'static str,
    nats: NatsSettings,
    settings: OutboxSettings,
    clock: SharedClock,
    wake: Arc<Notify>,
    holder: String,
    metrics: Metrics,
    /// Event ids that the archive's last reply to a receipt query did not name: overdue
    /// events the archive lacks, republished under a new message id.
    missing: std::sync::Mutex<HashSet<String>>,
    /// Expiry, in microseconds, of the lease this relay last wrote, or 0 without a lease.
    lease_expires: AtomicI64,
}

/// Result of one relay round.
#[derive(Debug, Default, PartialEq, Eq)]
struct Round {
    published: usize,
    failed: usize,
    leader: bool,
}

impl Relay {
    pub fn new(
        outbox: &Outbox,
        client: async_nats::Client,
        jetstream: jetstream::Context,
        service: &'static str,
        nats: NatsSettings,
        settings: OutboxSettings,
        metrics: Metrics,
    ) -> Self {
        Self {
            db: outbox.db().clone(),
            client,
            jetstream,
            service,
            nats,
            settings,
            clock: outbox.clock().clone(),
            wake: outbox.wake_handle(),
            holder: uuid::Uuid::now_v7().to_string(),
            metrics,
            missing: std::sync::Mutex::default(),
            lease_expires: AtomicI64::new(0),
        }
    }

    /// Runs rounds until `shutdown` is cancelled. Errors are logged and retried with backoff;
    /// nothing is dropped.
    pub async fn run(self, shutdown: CancellationToken) {
        let poll = Duration::from_millis(self.settings.poll_interval_ms);
        let mut backoff = Duration::ZERO;
        loop {
            let pause = match self.round().await {
                Ok(round) if round.failed > 0 => {
                    backoff = (backoff * 2).clamp(Duration::from_millis(100), MAX_BACKOFF);
                    tracing::warn!(
                        failed = round.failed,
                        ?backoff,
                        "outbox publish failed, retrying"
                    );
                    self.reprovision_stream().await;
                    backoff
                }
                Ok(round)
                    if round.leader && round.published as u64 >= self.settings.batch_size / 2 =>
                {
                    backoff = Duration::ZERO;
                    Duration::ZERO
                }
                Ok(_) => {
                    backoff = Duration::ZERO;
                    poll
                }
                Err(error) => {
                    backoff = (backoff * 2).clamp(Duration::from_millis(100), MAX_BACKOFF);
                    tracing::warn!(
                        error = format!("{error:#}"),
                        ?backoff,
                        "outbox round failed"
                    );
                    backoff
                }
            };
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = self.wake.notified(), if backoff.is_zero() => {}
                () = tokio::time::sleep(pause) => {}
            }
        }
        self.release_lease().await;
        tracing::info!("outbox relay stopped");
    }

    async fn round(&self) -> anyhow::Result<Round> {
        if !self.hold_lease().await? {
            return Ok(Round::default());
        }
        self.expire_receipts().await?;
        let rows = self.pending_rows().await?;
        let mut round = Round {
            leader: true,
            ..Round::default()
        };
        if rows.is_empty() {
            return Ok(round);
        }

        let outcomes = self.publish(&rows).await;
        let now = self.clock.now().timestamp_micros();
        let mut published_by_attempts: BTreeMap<i32, Vec<i64>> = BTreeMap::new();
        for (row, outcome) in rows.iter().zip(outcomes) {
            match outcome {
                Ok(()) => {
                    round.published += 1;
                    published_by_attempts
                        .entry(row.attempts)
                        .or_default()
                        .push(row.seq);
                }
                Err(error) => {
                    round.failed += 1;
                    self.record_failure(row.seq, &error).await?;
                }
            }
        }
        self.metrics
            .record_publishes(round.published as u64, round.failed as u64);
        if published_by_attempts.is_empty() {
            return Ok(round);
        }
        let txn = crate::db::begin_write(&self.db).await?;
        for (attempts, seqs) in published_by_attempts {
            let due = now + self.receipt_timeout(attempts).as_micros() as i64;
            event::Entity::update_many()
                .col_expr(event::Column::PublishedAt, Expr::value(now))
                .col_expr(event::Column::ReceiptDueAt, Expr::value(due))
                .col_expr(event::Column::Attempts, Expr::value(attempts + 1))
                .col_expr(
                    event::Column::LastError,
                    Expr::value(Option::<String>::None),
                )
                .filter(event::Column::Seq.is_in(seqs))
                .exec(&txn)
                .await?;
        }
        txn.commit().await?;
        Ok(round)
    }

    /// Unpublished rows in commit order, each with the event its entity had in flight before
    /// it.
    async fn pending_rows(&self) -> anyhow::Result<Vec<PendingRow>> {
        Ok(event::Entity::find()
            .select_only()
            .columns([
                event::Column::Seq,
                event::Column::EventId,
                event::Column::Subject,
                event::Column::Envelope,
                event::Column::Traceparent,
                event::Column::Attempts,
            ])
            .expr_as(Expr::cust(PREVIOUS_UNARCHIVED), "previous_event_id")
            .filter(event::Column::PublishedAt.is_null())
            .order_by_asc(event::Column::Seq)
            .limit(self.settings.batch_size)
            .into_model::<PendingRow>()
            .all(&self.db)
            .await?)
    }

    /// Sends every row, then waits for all broker acks. Each publish gets a producer span,
    /// child of the trace context stored with the row, whose context goes out as the
    /// `traceparent` header. Without a valid span (no OTLP exporter) the stored context is
    /// forwarded unchanged.
    async fn publish(&self, rows: &[PendingRow]) -> Vec<Result<(), String>> {
        let missing = std::mem::take(&mut *self.missing.lock().expect("missing ids lock"));
        let mut pending = Vec::with_capacity(rows.len());
        for row in rows {
            let span = publish_span(row);
            let mut message = PublishMessage::build()
                .payload(Bytes::from(row.envelope.clone()))
                .message_id(message_id(row, missing.contains(&row.event_id)));
            match propagation::headers_of(&span) {
                Some(headers) => {
                    message = message.header(TRACEPARENT, headers.traceparent.as_str());
                    if !headers.tracestate.is_empty() {
                        message = message.header(TRACESTATE, headers.tracestate.as_str());
                    }
                }
                None if !row.traceparent.is_empty() => {
                    message = message.header(TRACEPARENT, row.traceparent.as_str());
                }
                None => {}
            }
            if let Some(previous) = &row.previous_event_id {
                message = message.header(crate::nats::PREVIOUS_EVENT_HEADER, previous.as_str());
            }
            let sent = self
                .jetstream
                .send_publish(row.subject.clone(), message)
                .instrument(span.clone())
                .await;
            pending.push((span, sent));
        }
        let mut outcomes = Vec::with_capacity(rows.len());
        for (span, sent) in pending {
            let outcome = match sent {
                Ok(ack) => std::future::IntoFuture::into_future(ack)
                    .instrument(span.clone())
                    .await
                    .map(|_| ())
                    .map_err(|error| error.to_string()),
                Err(error) => Err(error.to_string()),
            };
            if let Err(error) = &outcome {
                span.record("otel.status_code", "ERROR");
                span.record("error.type", error.as_str());
            }
            outcomes.push(outcome);
        }
        outcomes
    }

    async fn record_failure(&self, seq: i64, error: &str) -> anyhow::Result<()> {
        let _turn = crate::db::write_turn(&self.db).await;
        event::Entity::update_many()
            .col_expr(
                event::Column::Attempts,
                Expr::col(event::Column::Attempts).add(1),
            )
            .col_expr(event::Column::LastError, Expr::value(error.to_owned()))
            .filter(event::Column::Seq.eq(seq))
            .exec(&self.db)
            .await?;
        Ok(())
    }

    /// Asks the archive about published rows whose receipt is overdue and applies its reply,
    /// then marks those still without a receipt as unpublished again.
    async fn expire_receipts(&self) -> anyhow::Result<()> {
        let now = self.clock.now().timestamp_micros();
        if !self.query_receipts(now).await? {
            return Ok(());
        }
        let _turn = crate::db::write_turn(&self.db).await;
        let expired = event::Entity::update_many()
            .col_expr(event::Column::PublishedAt, Expr::value(Option::<i64>::None))
            .filter(event::Column::ArchivedAt.is_null())
            .filter(event::Column::PublishedAt.is_not_null())
            .filter(event::Column::ReceiptDueAt.lt(now))
            .exec(&self.db)
            .await?;
        if expired.rows_affected > 0 {
            tracing::warn!(
                events = expired.rows_affected,
                "no archive receipt in time, publishing again"
            );
        }
        Ok(())
    }

    /// Sends the ids of up to [`crate::nats::RECEIPT_QUERY_LIMIT`] overdue rows to the archive
    /// and applies the receipt it replies with. Without a reply (archive down, no responders,
    /// timeout) the rows are simply published again. Returns false when no row was overdue,
    /// so that the round writes nothing.
    async fn query_receipts(&self, now: i64) -> anyhow::Result<bool> {
        let event_ids: Vec<String> = event::Entity::find()
            .select_only()
            .column(event::Column::EventId)
            .filter(event::Column::ArchivedAt.is_null())
            .filter(event::Column::PublishedAt.is_not_null())
            .filter(event::Column::ReceiptDueAt.lt(now))
            .order_by_asc(event::Column::Seq)
            .limit(crate::nats::RECEIPT_QUERY_LIMIT as u64)
            .into_tuple()
            .all(&self.db)
            .await?;
        if event_ids.is_empty() {
            return Ok(false);
        }
        let overdue = event_ids.len();
        let query = ReceiptQuery { event_ids };
        let subject = crate::nats::receipt_query_subject(self.service);
        let reply = tokio::time::timeout(
            RECEIPT_QUERY_TIMEOUT,
            self.client.request(subject, query.encode_to_vec().into()),
        )
        .await;
        let receipt = match reply {
            Ok(Ok(message)) => match Receipt::decode(message.payload.as_ref()) {
                Ok(receipt) => receipt,
                Err(error) => {
                    tracing::warn!(%error, "undecodable reply to a receipt query");
                    return Ok(true);
                }
            },
            Ok(Err(error)) => {
                tracing::debug!(%error, "receipt query failed");
                return Ok(true);
            }
            Err(_) => {
                tracing::debug!("receipt query timed out");
                return Ok(true);
            }
        };
        let named: HashSet<&str> = receipt
            .events
            .iter()
            .map(|event| event.event_id.as_str())
            .collect();
        let missing: HashSet<String> = query
            .event_ids
            .iter()
            .filter(|id| !named.contains(id.as_str()))
            .cloned()
            .collect();
        *self.missing.lock().expect("missing ids lock") = missing;
        if !receipt.events.is_empty() {
            tracing::info!(
                overdue,
                recovered = receipt.events.len(),
                "recovered overdue receipts from the archive"
            );
            super::receipts::apply(&self.db, &self.clock, &receipt).await?;
        }
        Ok(true)
    }

    /// Receipt timeout for a row published for the `attempts + 1`-th time: doubles per
    /// attempt up to the configured maximum.
    fn receipt_timeout(&self, attempts: i32) -> Duration {
        let base = self.settings.receipt_timeout_secs;
        let factor = 1u64 << attempts.clamp(0, 16);
        Duration::from_secs(Ord::min(
            base.saturating_mul(factor),
            self.settings.max_receipt_timeout_secs,
        ))
    }

    /// Takes or renews the relay lease; returns false while another replica holds it. A
    /// lease with more than two thirds of its duration left is kept without a write, so a
    /// round always starts with at least 10 of the 15 seconds ahead of it.
    async fn hold_lease(&self) -> anyhow::Result<bool> {
        let duration = LEASE_DURATION.as_micros() as i64;
        let left = self.lease_expires.load(Ordering::Relaxed) - self.clock.now().timestamp_micros();
        if left > duration * 2 / 3 {
            return Ok(true);
        }
        let _turn = crate::db::write_turn(&self.db).await;
        // Read after the wait for the turn, so the expiry written counts from the write.
        let now = self.clock.now().timestamp_micros();
        let expires = now + duration;
        let updated = lease::Entity::update_many()
            .col_expr(lease::Column::Holder, Expr::value(self.holder.clone()))
            .col_expr(lease::Column::ExpiresAt, Expr::value(expires))
            .filter(lease::Column::Name.eq("relay"))
            .filter(
                Condition::any()
                    .add(lease::Column::Holder.eq(self.holder.clone()))
                    .add(lease::Column::ExpiresAt.lt(now)),
            )
            .exec(&self.db)
            .await?;
        let lease_taken = updated.rows_affected == 1;
        self.lease_expires
            .store(if lease_taken { expires } else { 0 }, Ordering::Relaxed);
        Ok(lease_taken)
    }

    async fn release_lease(&self) {
        self.lease_expires.store(0, Ordering::Relaxed);
        let _turn = crate::db::write_turn(&self.db).await;
        let released = lease::Entity::update_many()
            .col_expr(lease::Column::ExpiresAt, Expr::value(0i64))
            .filter(lease::Column::Name.eq("relay"))
            .filter(lease::Column::Holder.eq(self.holder.clone()))
            .exec(&self.db)
            .await;
        if let Err(error) = released {
            tracing::warn!(%error, "failed to release the outbox lease");
        }
    }

    /// Creates the stream again in case the broker lost it, for example after its store was
    /// wiped. Failures are logged; the next round retries.
    async fn reprovision_stream(&self) {
        if let Err(error) = crate::nats::ensure_stream(&self.jetstream, &self.nats).await {
            tracing::debug!(error = format!("{error:#}"), "stream not provisioned yet");
        }
    }
}

/// Returns the `Nats-Msg-Id` of a row's next publish: the event id, or for an event that the
/// archive reported missing the event id and the attempt number, such as `<event id>.2`.
fn message_id(row: &PendingRow, missing_in_archive: bool) -> String {
    if missing_in_archive {
        format!("{}.{}", row.event_id, row.attempts + 1)
    } else {
        row.event_id.clone()
    }
}

/// Starts the producer span of one publish, following the OpenTelemetry messaging
/// conventions, as a child of the trace context stored with the row.
fn publish_span(row: &PendingRow) -> tracing::Span {
    let span = tracing::info_span!(
        parent: None,
        "publish",
        otel.name = %format!("publish {}", row.subject),
        otel.kind = "producer",
        otel.status_code = tracing::field::Empty,
        error.type = tracing::field::Empty,
        messaging.system = "nats",
        messaging.operation.name = "publish",
        messaging.operation.type = "send",
        messaging.destination.name = %row.subject,
        messaging.message.id = %row.event_id,
        messaging.message.body.size = row.envelope.len(),
    );
    propagation::set_remote_parent(&span, propagation::extract_text(&row.traceparent, ""));
    span
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};
    use sea_orm::DatabaseConnection;

    use super::*;
    use crate::clock::ManualClock;
    use crate::config::ServiceSettings;

    /// Builds a relay on `db` whose broker connection is never established, because the
    /// lease needs only the database.
    async fn relay(db: &DatabaseConnection, clock: &Arc<ManualClock>) -> Relay {
        let settings = ServiceSettings::defaults("document", 50051);
        let shared: SharedClock = clock.clone();
        let outbox = Outbox::new(db.clone(), shared, settings.outbox.max_event_bytes);
        let client = async_nats::ConnectOptions::new()
            .retry_on_initial_connect()
            .connect("nats://127.0.0.1:1")
            .await
            .expect("client that connects in the background");
        let jetstream = jetstream::new(client.clone());
        Relay::new(
            &outbox,
            client,
            jetstream,
            "document",
            settings.nats,
            settings.outbox,
            Metrics::new("document"),
        )
    }

    async fn lease_row(db: &DatabaseConnection) -> lease::Model {
        lease::Entity::find_by_id("relay".to_owned())
            .one(db)
            .await
            .expect("read lease")
            .expect("lease row")
    }

    #[tokio::test]
    async fn lease_renewed_at_two_thirds() {
        let folder = tempfile::tempdir().expect("temp dir");
        let db = super::super::test_tables::database(folder.path()).await;
        let start = Utc.with_ymd_and_hms(2026, 12, 5, 8, 0, 0).unwrap();
        let clock = ManualClock::new(start);
        let first = relay(&db, &clock).await;
        let second = relay(&db, &clock).await;
        let seconds = |n: i64| start.timestamp_micros() + n * 1_000_000;

        assert!(first.hold_lease().await.expect("first takes the lease"));
        assert_eq!(lease_row(&db).await.holder, first.holder);
        assert_eq!(lease_row(&db).await.expires_at, seconds(15));

        // With more than two thirds of the lease left, the holder keeps it without a write.
        clock.advance(chrono::Duration::seconds(1));
        assert!(first.hold_lease().await.expect("first keeps the lease"));
        assert_eq!(lease_row(&db).await.expires_at, seconds(15));
        assert!(!second.hold_lease().await.expect("second asks"));

        // With less than two thirds left, the holder writes a new expiry.
        clock.advance(chrono::Duration::seconds(5));
        assert!(first.hold_lease().await.expect("first renews"));
        assert_eq!(lease_row(&db).await.expires_at, seconds(21));

        // Once the lease has expired, another relay takes it, and the old holder, whose
        // own record of the lease has run out too, fails to renew it.
        clock.advance(chrono::Duration::seconds(16));
        assert!(second.hold_lease().await.expect("second takes over"));
        assert_eq!(lease_row(&db).await.holder, second.holder);
        assert!(!first.hold_lease().await.expect("first asks again"));

        // Once the new holder's lease has run out too, the old holder takes it back.
        clock.advance(chrono::Duration::seconds(16));
        assert!(
            first
                .hold_lease()
                .await
                .expect("first takes the lease again")
        );
        assert_eq!(lease_row(&db).await.holder, first.holder);
        assert!(!second.hold_lease().await.expect("second asks again"));

        // Only the holder's release counts, and after it the next relay to try takes the
        // lease.
        second.release_lease().await;
        assert_eq!(lease_row(&db).await.holder, first.holder);
        assert_eq!(lease_row(&db).await.expires_at, seconds(53));
        first.release_lease().await;
        assert!(
            second
                .hold_lease()
                .await
                .expect("second takes it after the release")
        );
        assert_eq!(lease_row(&db).await.holder, second.holder);
    }
}
