//! Replies to receipt queries. A producing service whose receipts are overdue sends the
//! event ids on `receipt-query.<service>`, and the reply is a `Receipt` naming those that the
//! ledger contains. Receipts travel on core NATS and are lost when the broker restarts, so
//! this lets the producer recover them without publishing again.

use futures::StreamExt;
use prost::Message;
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QuerySelect};
use tokio_util::sync::CancellationToken;
use trace_proto::event::v1::{ArchivedEvent, Receipt, ReceiptQuery};
use trace_runtime::nats::{RECEIPT_QUERY_LIMIT, RECEIPT_QUERY_PREFIX};

use crate::entity::ledger_entry;

/// Queue group, so that only one of several archive replicas replies to each query.
const QUEUE_GROUP: &str = "archive";

/// Replies to receipt queries until `shutdown` is cancelled.
pub async fn run(
    client: async_nats::Client,
    db: DatabaseConnection,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let subject = format!("{RECEIPT_QUERY_PREFIX}.*");
    let mut subscription = client
        .queue_subscribe(subject.clone(), QUEUE_GROUP.to_owned())
        .await?;
    tracing::info!(%subject, "replying to receipt queries");
    loop {
        let message = tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            message = subscription.next() => message,
        };
        let Some(message) = message else {
            return Ok(());
        };
        let Some(reply) = message.reply else {
            continue;
        };
        let Some(service) = message
            .subject
            .strip_prefix(RECEIPT_QUERY_PREFIX)
            .and_then(|rest| rest.strip_prefix('.'))
        else {
            continue;
        };
        let query = match ReceiptQuery::decode(message.payload.as_ref()) {
            Ok(query) => query,
            Err(error) => {
                tracing::warn!(%error, service, "undecodable receipt query");
                continue;
            }
        };
        match archived(&db, service, &query).await {
            Ok(receipt) => {
                if let Err(error) = client.publish(reply, receipt.encode_to_vec().into()).await {
                    tracing::warn!(%error, service, "failed to reply to a receipt query");
                }
            }
            Err(error) => tracing::warn!(%error, service, "failed to reply to a receipt query"),
        }
    }
}

/// Returns the events of `query` that the ledger contains from `service`, with their
/// sequences. Ids past [`RECEIPT_QUERY_LIMIT`] are ignored, and the producer sends them again.
pub async fn archived(
    db: &DatabaseConnection,
    service: &str,
    query: &ReceiptQuery,
) -> Result<Receipt, sea_orm::DbErr> {
    let requested = &query.event_ids[..query.event_ids.len().min(RECEIPT_QUERY_LIMIT)];
    if requested.is_empty() {
        return Ok(Receipt::default());
    }
    let rows: Vec<(i64, String)> = ledger_entry::Entity::find()
        .select_only()
        .columns([
            ledger_entry::Column::Sequence,
            ledger_entry::Column::EventId,
        ])
        .filter(ledger_entry::Column::EventId.is_in(requested.iter().cloned()))
        .filter(ledger_entry::Column::SourceService.eq(service))
        .into_tuple()
        .all(db)
        .await?;
    Ok(Receipt {
        events: rows
            .into_iter()
            .map(|(sequence, event_id)| ArchivedEvent {
                event_id,
                sequence: sequence as u64,
            })
            .collect(),
    })
}
