//! Listens for the archive's receipts and marks the named outbox rows as archived.

use std::sync::Arc;

use futures::{FutureExt, StreamExt};
use prost::Message;
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use trace_proto::event::v1::Receipt;

use super::entity::event;
use crate::clock::SharedClock;

/// Maximum number of receipts in one transaction, so that it keeps the write turn for a
/// bounded time.
const MAX_RECEIPTS_PER_WRITE: usize = 64;

/// Number of events after which a transaction takes no further receipt.
const MAX_EVENTS_PER_WRITE: usize = 2_000;

/// Applies receipts for `service` until cancelled, and wakes the relay after each write
/// because a receipt can release the next event of an entity. Receipts already queued
/// share one transaction. A receipt lost while the client reconnects is recovered by the
/// relay's receipt query.
pub async fn run(
    client: async_nats::Client,
    service: &str,
    db: DatabaseConnection,
    clock: SharedClock,
    relay: Arc<Notify>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let subject = crate::nats::receipt_subject(service);
    let mut subscription = client.subscribe(subject.clone()).await?;
    tracing::info!(%subject, "listening for archive receipts");
    let mut receipts = Vec::with_capacity(MAX_RECEIPTS_PER_WRITE);
    loop {
        let message = tokio::select! {
            () = shutdown.cancelled() => break,
            message = subscription.next() => message,
        };
        let Some(message) = message else { break };
        let ended = take_queued(&mut subscription, message, &mut receipts);

        if !receipts.is_empty() {
            apply_or_each(&db, &clock, &receipts).await;
            relay.notify_one();
            receipts.clear();
        }
        if ended {
            break;
        }
    }
    Ok(())
}

/// Decodes `first` and the receipts already queued behind it into `receipts`, up to the
/// per-transaction maximums. Returns whether the subscription has ended.
fn take_queued(
    subscription: &mut async_nats::Subscriber,
    first: async_nats::Message,
    receipts: &mut Vec<Receipt>,
) -> bool {
    let mut message = first;
    let mut events = 0;
    loop {
        match Receipt::decode(message.payload.as_ref()) {
            Ok(receipt) => {
                events += receipt.events.len();
                receipts.push(receipt);
            }
            Err(error) => tracing::warn!(%error, "undecodable archive receipt"),
        }
        if receipts.len() == MAX_RECEIPTS_PER_WRITE || events >= MAX_EVENTS_PER_WRITE {
            return false;
        }

        match subscription.next().now_or_never() {
            Some(Some(next)) => message = next,
            Some(None) => return true,
            None => return false,
        }
    }
}

/// Applies `receipts` in one transaction, or each in its own when that fails, so that a
/// failed write leaves at most one receipt to the relay's receipt query.
async fn apply_or_each(db: &DatabaseConnection, clock: &SharedClock, receipts: &[Receipt]) {
    let Err(error) = apply_all(db, clock, receipts).await else {
        return;
    };
    if receipts.len() > 1 {
        tracing::warn!(
            %error,
            receipts = receipts.len(),
            "failed to apply archive receipts in one transaction; applying each in its own"
        );
        for receipt in receipts {
            if let Err(error) = apply(db, clock, receipt).await {
                warn_unapplied(&error, receipt);
            }
        }
    } else if let Some(receipt) = receipts.first() {
        warn_unapplied(&error, receipt);
    }
}

/// Logs a receipt that could not be applied, with its first event id.
fn warn_unapplied(error: &sea_orm::DbErr, receipt: &Receipt) {
    let first_event_id = receipt
        .events
        .first()
        .map_or("", |archived| archived.event_id.as_str());
    tracing::warn!(
        %error,
        first_event_id,
        events = receipt.events.len(),
        "failed to apply an archive receipt; the relay's receipt query recovers its events"
    );
}

/// Marks every event in `receipt` archived, in one transaction.
pub async fn apply(
    db: &DatabaseConnection,
    clock: &SharedClock,
    receipt: &Receipt,
) -> Result<(), sea_orm::DbErr> {
    apply_all(db, clock, std::slice::from_ref(receipt)).await
}

/// Marks every event of every receipt archived, in one transaction. A row already marked,
/// or named twice, keeps its first sequence.
pub async fn apply_all(
    db: &DatabaseConnection,
    clock: &SharedClock,
    receipts: &[Receipt],
) -> Result<(), sea_orm::DbErr> {
    let now = clock.now().timestamp_micros();
    let txn = crate::db::begin_write(db).await?;
    for archived in receipts.iter().flat_map(|receipt| &receipt.events) {
        event::Entity::update_many()
            .col_expr(event::Column::ArchivedAt, Expr::value(now))
            .col_expr(
                event::Column::ArchiveSequence,
                Expr::value(archived.sequence as i64),
            )
            .col_expr(
                event::Column::ReceiptDueAt,
                Expr::value(Option::<i64>::None),
            )
            // One statement text per event, which each connection prepares once. A single
            // statement for the batch would have a new text, so a new prepared statement,
            // for every batch size.
            .filter(event::Column::EventId.eq(archived.event_id.clone()))
            .filter(event::Column::ArchivedAt.is_null())
            .exec(&txn)
            .await?;
    }
    txn.commit().await
}

/// Deletes archived rows older than the retention period; returns how many were removed.
pub async fn prune(
    db: &DatabaseConnection,
    clock: &SharedClock,
    retention_days: u64,
) -> Result<u64, sea_orm::DbErr> {
    let cutoff = clock.now().timestamp_micros() - (retention_days as i64) * 86_400 * 1_000_000;
    let _turn = crate::db::write_turn(db).await;
    let deleted = event::Entity::delete_many()
        .filter(event::Column::ArchivedAt.lt(cutoff))
        .exec(db)
        .await?;
    Ok(deleted.rows_affected)
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};
    use sea_orm::{ActiveValue::Set, QueryOrder};
    use trace_proto::event::v1::ArchivedEvent;

    use super::*;
    use crate::clock::ManualClock;

    fn receipt(events: &[(&str, u64)]) -> Receipt {
        Receipt {
            events: events
                .iter()
                .map(|(event_id, sequence)| ArchivedEvent {
                    event_id: (*event_id).to_owned(),
                    sequence: *sequence,
                })
                .collect(),
        }
    }

    /// Stages one published row per id, in order.
    async fn stage_rows(db: &DatabaseConnection, event_ids: &[String]) {
        for event_id in event_ids {
            let row = event::ActiveModel {
                event_id: Set(event_id.clone()),
                subject: Set("trace.document.v1.document.revised".to_owned()),
                entity_type: Set("document".to_owned()),
                entity_id: Set("doc-1".to_owned()),
                envelope: Set(vec![1, 2, 3]),
                traceparent: Set(String::new()),
                created_at: Set(0),
                published_at: Set(Some(10)),
                receipt_due_at: Set(Some(20)),
                archived_at: Set(None),
                archive_sequence: Set(None),
                attempts: Set(1),
                last_error: Set(None),
                ..Default::default()
            };
            event::Entity::insert(row)
                .exec_without_returning(db)
                .await
                .expect("staged row");
        }
    }

    #[tokio::test]
    async fn receipts_applied_together_keep_each_sequence() {
        let folder = tempfile::tempdir().expect("temp dir");
        let db = super::super::test_tables::database(folder.path()).await;
        let archived_at = Utc.with_ymd_and_hms(2026, 12, 5, 9, 30, 0).unwrap();
        let clock: SharedClock = ManualClock::new(archived_at);
        let ids = ["event-a", "event-b", "event-c"].map(str::to_owned);
        stage_rows(&db, &ids).await;

        // The second receipt names event-a again, as a redelivered batch would.
        let burst = [
            receipt(&[("event-a", 41), ("event-b", 42)]),
            receipt(&[("event-a", 99)]),
        ];
        apply_all(&db, &clock, &burst).await.expect("applied");

        let rows = event::Entity::find()
            .order_by_asc(event::Column::Seq)
            .all(&db)
            .await
            .expect("rows");
        let marks: Vec<_> = rows
            .iter()
            .map(|row| {
                (
                    row.event_id.as_str(),
                    row.archive_sequence,
                    row.archived_at,
                    row.receipt_due_at,
                )
            })
            .collect();
        let at = Some(archived_at.timestamp_micros());
        assert_eq!(
            marks,
            [
                ("event-a", Some(41), at, None),
                ("event-b", Some(42), at, None),
                ("event-c", None, None, Some(20)),
            ]
        );
    }

    #[tokio::test]
    async fn receipt_of_many_events_marks_every_row() {
        let folder = tempfile::tempdir().expect("temp dir");
        let db = super::super::test_tables::database(folder.path()).await;
        let clock: SharedClock =
            ManualClock::new(Utc.with_ymd_and_hms(2026, 12, 5, 9, 30, 0).unwrap());
        let count = 601;
        let ids: Vec<String> = (0..count)
            .map(|index| format!("event-{index:04}"))
            .collect();
        stage_rows(&db, &ids).await;
        let events: Vec<(&str, u64)> = ids
            .iter()
            .enumerate()
            .map(|(index, id)| (id.as_str(), 1000 + index as u64))
            .collect();

        apply_all(&db, &clock, &[receipt(&events)])
            .await
            .expect("applied");

        let rows = event::Entity::find()
            .order_by_asc(event::Column::Seq)
            .all(&db)
            .await
            .expect("rows");
        let sequences: Vec<Option<i64>> = rows.iter().map(|row| row.archive_sequence).collect();
        let expected: Vec<Option<i64>> =
            (0..count).map(|index| Some(1000 + index as i64)).collect();
        assert_eq!(sequences, expected);
        assert!(rows.iter().all(|row| row.archived_at.is_some()));
    }
}
