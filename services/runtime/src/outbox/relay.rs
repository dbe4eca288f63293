//! Publishes committed outbox rows to JetStream.
//!
//! Rows are chosen by their unpublished state, never by "id greater than the last one sent",
//! so a transaction that commits after a higher id is never skipped. Within one round at most
//! one row per entity is in flight, which keeps the stream order per entity equal to the
//! commit order even when a publish fails half-way.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;
use async_nats::jetstream::message::PublishMessage;
use bytes::Bytes;
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ColumnTrait, Condition, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
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

/// Publishes outbox rows until cancelled.
#[derive(Debug)]
pub struct Relay {
    db: DatabaseConnection,
    jetstream: jetstream::Context,
    nats: NatsSettings,
    settings: OutboxSettings,
    clock: SharedClock,
    wake: Arc<Notify>,
    holder: String,
    metrics: Metrics,
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
        jetstream: jetstream::Context,
        nats: NatsSettings,
        settings: OutboxSettings,
        metrics: Metrics,
    ) -> Self {
        Self {
            db: outbox.db().clone(),
            jetstream,
            nats,
            settings,
            clock: outbox.clock().clone(),
            wake: outbox.wake_handle(),
            holder: uuid::Uuid::now_v7().to_string(),
            metrics,
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
                .exec(&self.db)
                .await?;
        }
        Ok(round)
    }

    /// Unpublished rows in commit order, keeping only the oldest row of each entity.
    async fn pending_rows(&self) -> anyhow::Result<Vec<event::Model>> {
        let rows = event::Entity::find()
            .filter(event::Column::PublishedAt.is_null())
            .order_by_asc(event::Column::Seq)
            .limit(self.settings.batch_size)
            .all(&self.db)
            .await?;
        let mut seen = HashSet::new();
        Ok(rows
            .into_iter()
            .filter(|row| seen.insert((row.entity_type.clone(), row.entity_id.clone())))
            .collect())
    }

    /// Sends every row, then waits for all broker acks. Each publish gets a producer span,
    /// child of the trace context stored with the row, whose context goes out as the
    /// `traceparent` header. Without a valid span (no OTLP exporter) the stored context is
    /// forwarded unchanged.
    async fn publish(&self, rows: &[event::Model]) -> Vec<Result<(), String>> {
        let mut pending = Vec::with_capacity(rows.len());
        for row in rows {
            let span = publish_span(row);
            let mut message = PublishMessage::build()
                .payload(Bytes::from(row.envelope.clone()))
                .message_id(&row.event_id);
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

    /// Marks published rows whose receipt is overdue as unpublished again.
    async fn expire_receipts(&self) -> anyhow::Result<()> {
        let now = self.clock.now().timestamp_micros();
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

    /// Takes or renews the relay lease; returns false while another replica holds it.
    async fn hold_lease(&self) -> anyhow::Result<bool> {
        let now = self.clock.now().timestamp_micros();
        let expires = now + LEASE_DURATION.as_micros() as i64;
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
        Ok(updated.rows_affected == 1)
    }

    async fn release_lease(&self) {
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

/// Starts the producer span of one publish, following the OpenTelemetry messaging
/// conventions, as a child of the trace context stored with the row.
fn publish_span(row: &event::Model) -> tracing::Span {
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
