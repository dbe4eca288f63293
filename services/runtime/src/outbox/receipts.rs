//! Listens for the archive's receipts and marks the named outbox rows as archived.

use std::sync::Arc;

use futures::StreamExt;
use prost::Message;
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use trace_proto::event::v1::Receipt;

use super::entity::event;
use crate::clock::SharedClock;

/// Applies receipts for `service` until cancelled, waking the relay after each one, since a
/// receipt can release the next event of an entity. The core NATS subscription is re-created
/// by the client after reconnects; a receipt lost meanwhile is recovered by the relay's
/// receipt query.
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
    loop {
        let message = tokio::select! {
            () = shutdown.cancelled() => break,
            message = subscription.next() => message,
        };
        let Some(message) = message else { break };
        match Receipt::decode(message.payload.as_ref()) {
            Ok(receipt) => match apply(&db, &clock, &receipt).await {
                Ok(()) => relay.notify_one(),
                Err(error) => tracing::warn!(%error, "failed to apply archive receipt"),
            },
            Err(error) => tracing::warn!(%error, "undecodable archive receipt"),
        }
    }
    Ok(())
}

/// Marks every event in `receipt` archived, in one transaction.
pub async fn apply(
    db: &DatabaseConnection,
    clock: &SharedClock,
    receipt: &Receipt,
) -> Result<(), sea_orm::DbErr> {
    let now = clock.now().timestamp_micros();
    let txn = crate::db::begin_write(db).await?;
    for archived in &receipt.events {
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
