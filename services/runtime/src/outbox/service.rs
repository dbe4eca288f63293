//! gRPC `trace.event.v1.OutboxService`: whether a produced event is archived, and the backlog,
//! and the task that feeds the backlog gauges.

use std::time::Duration;

use sea_orm::{
    ColumnTrait, DatabaseConnection, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
};
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};
use trace_proto::event::v1::outbox_service_server::OutboxService;
use trace_proto::event::v1::{
    DeliveryState, GetBacklogRequest, GetBacklogResponse, GetEventStatusRequest,
    GetEventStatusResponse,
};

use super::entity::event;
use crate::clock::{SharedClock, timestamp, timestamp_opt};
use crate::error::ServiceError;
use crate::metrics::Metrics;

/// Serves delivery status from the outbox table.
#[derive(Debug, Clone)]
pub struct OutboxStatus {
    db: DatabaseConnection,
}

impl OutboxStatus {
    pub fn new(db: DatabaseConnection) -> Self {
        Self { db }
    }
}

#[tonic::async_trait]
impl OutboxService for OutboxStatus {
    async fn get_event_status(
        &self,
        request: Request<GetEventStatusRequest>,
    ) -> Result<Response<GetEventStatusResponse>, Status> {
        let event_id = crate::validate::record_id("event_id", &request.get_ref().event_id)?;
        let row = event::Entity::find()
            .filter(event::Column::EventId.eq(event_id.to_string()))
            .one(&self.db)
            .await
            .map_err(ServiceError::from)?
            .ok_or_else(|| ServiceError::not_found("event", event_id.to_string()))?;
        let state = if row.archived_at.is_some() {
            DeliveryState::Archived
        } else if row.published_at.is_some() {
            DeliveryState::Published
        } else {
            DeliveryState::Pending
        };
        Ok(Response::new(GetEventStatusResponse {
            event_id: row.event_id,
            state: state as i32,
            attempts: row.attempts.max(0) as u32,
            created_at: Some(timestamp(row.created_at)),
            published_at: timestamp_opt(row.published_at),
            archived_at: timestamp_opt(row.archived_at),
            archive_sequence: row.archive_sequence.unwrap_or_default().max(0) as u64,
        }))
    }

    async fn get_backlog(
        &self,
        _request: Request<GetBacklogRequest>,
    ) -> Result<Response<GetBacklogResponse>, Status> {
        let unarchived = event::Entity::find()
            .filter(event::Column::ArchivedAt.is_null())
            .count(&self.db)
            .await
            .map_err(ServiceError::from)?;
        let unpublished = event::Entity::find()
            .filter(event::Column::PublishedAt.is_null())
            .count(&self.db)
            .await
            .map_err(ServiceError::from)?;
        let oldest = event::Entity::find()
            .filter(event::Column::ArchivedAt.is_null())
            .order_by_asc(event::Column::Seq)
            .one(&self.db)
            .await
            .map_err(ServiceError::from)?;
        Ok(Response::new(GetBacklogResponse {
            unarchived,
            unpublished,
            oldest_unarchived_at: oldest.map(|row| timestamp(row.created_at)),
        }))
    }
}

/// Records the outbox backlog gauges every `interval` until `shutdown` is cancelled: rows
/// without an archive receipt and the age of the oldest one (zero when there is none).
pub async fn report_backlog(
    db: DatabaseConnection,
    clock: SharedClock,
    metrics: Metrics,
    interval: Duration,
    shutdown: CancellationToken,
) {
    loop {
        match backlog(&db).await {
            Ok((pending, oldest_created_at)) => {
                let now = clock.now().timestamp_micros();
                let age_micros = oldest_created_at.map_or(0, |created| now.saturating_sub(created));
                let age = Duration::from_micros(u64::try_from(age_micros).unwrap_or(0));
                metrics.record_backlog(pending, age);
            }
            Err(error) => tracing::warn!(%error, "failed to read the outbox backlog for metrics"),
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(interval) => {}
        }
    }
}

/// Counts the rows without a receipt and returns the creation time of the oldest one.
async fn backlog(db: &DatabaseConnection) -> Result<(u64, Option<i64>), sea_orm::DbErr> {
    let pending = event::Entity::find()
        .filter(event::Column::ArchivedAt.is_null())
        .count(db)
        .await?;
    let oldest = event::Entity::find()
        .filter(event::Column::ArchivedAt.is_null())
        .order_by_asc(event::Column::Seq)
        .one(db)
        .await?;
    Ok((pending, oldest.map(|row| row.created_at)))
}
