//! The write path that every mutation shares: one transaction that updates the document row
//! under an optimistic version check and stages exactly one event, retried as a whole when
//! another call changed the document first or the database was busy.

use std::time::Duration;

use sea_orm::ActiveValue::Set;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseTransaction, DbErr, EntityTrait, QueryFilter, QuerySelect,
};
use trace_proto::common::v1::Confidentiality;
use trace_runtime::context::CallContext;
use trace_runtime::db::WriteTransaction;
use trace_runtime::event::{self, EventSpec};
use trace_runtime::{ServiceError, ServiceResult};

use super::{DocumentHandler, SERVICE};
use crate::entity::{borrowing, document};

/// Entity type of every event of this service.
const ENTITY_TYPE: &str = "document";

/// Retries after the first attempt before a call fails with `ABORTED`.
const MAX_RETRIES: u32 = 3;

/// Failure of one write attempt.
#[derive(Debug)]
pub(super) enum AttemptError {
    /// Another call changed the document first, or the database was busy; the whole call
    /// runs again.
    Conflict(String),
    /// A final failure, returned to the caller as it is.
    Failed(ServiceError),
}

pub(super) type AttemptResult<T> = Result<T, AttemptError>;

impl From<ServiceError> for AttemptError {
    fn from(error: ServiceError) -> Self {
        Self::Failed(error)
    }
}

impl From<DbErr> for AttemptError {
    fn from(error: DbErr) -> Self {
        if trace_runtime::db::is_busy(&error) {
            return Self::Conflict(format!("the database is busy: {error}"));
        }
        Self::Failed(ServiceError::from(error))
    }
}

/// Runs `attempt` until it commits or fails, retrying up to [`MAX_RETRIES`] times after a
/// conflict. A transaction that did not commit is rolled back when it is dropped, so a
/// retried attempt starts from what is committed.
pub(super) async fn with_retries<T, F, Fut>(
    operation: &'static str,
    mut attempt: F,
) -> ServiceResult<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = AttemptResult<T>>,
{
    let mut retries = 0;
    loop {
        match attempt().await {
            Ok(value) => return Ok(value),
            Err(AttemptError::Failed(error)) => return Err(error),
            Err(AttemptError::Conflict(reason)) if retries < MAX_RETRIES => {
                retries += 1;
                tracing::warn!(operation, retries, %reason, "write conflicted, retrying");
                tokio::time::sleep(Duration::from_millis(10 * u64::from(retries))).await;
            }
            Err(AttemptError::Conflict(reason)) => {
                let attempts = MAX_RETRIES + 1;
                let reason = format!(
                    "{operation} conflicted with concurrent changes {attempts} times, \
                     last because {reason}; retry the call"
                );
                return Err(ServiceError::Aborted { reason });
            }
        }
    }
}

/// Loads a document; `NOT_FOUND` when it does not exist.
pub(super) async fn find_document<C: ConnectionTrait>(
    connection: &C,
    document_id: &str,
) -> ServiceResult<document::Model> {
    document::Entity::find_by_id(document_id.to_owned())
        .one(connection)
        .await?
        .ok_or_else(|| ServiceError::not_found("document", document_id))
}

/// Loads a borrowing; `NOT_FOUND` when it does not exist.
pub(super) async fn find_borrowing<C: ConnectionTrait>(
    connection: &C,
    borrowing_id: &str,
) -> ServiceResult<borrowing::Model> {
    borrowing::Entity::find_by_id(borrowing_id.to_owned())
        .one(connection)
        .await?
        .ok_or_else(|| ServiceError::not_found("borrowing", borrowing_id))
}

/// Loads a document for writing; `NOT_FOUND` when it does not exist. On PostgreSQL the row
/// stays locked until the transaction ends (`FOR UPDATE`), so concurrent writers of one
/// document queue instead of failing the version check. SQLite ignores the lock clause
/// because `BEGIN IMMEDIATE` already serialises every writer.
pub(super) async fn lock_document(
    txn: &DatabaseTransaction,
    document_id: &str,
) -> ServiceResult<document::Model> {
    document::Entity::find_by_id(document_id.to_owned())
        .lock_exclusive()
        .one(txn)
        .await?
        .ok_or_else(|| ServiceError::not_found("document", document_id))
}

/// Loads a borrowing for writing, locked like [`lock_document`]. Callers lock the
/// borrowing before its document, so every writer takes the two locks in the same order.
pub(super) async fn lock_borrowing(
    txn: &DatabaseTransaction,
    borrowing_id: &str,
) -> ServiceResult<borrowing::Model> {
    borrowing::Entity::find_by_id(borrowing_id.to_owned())
        .lock_exclusive()
        .one(txn)
        .await?
        .ok_or_else(|| ServiceError::not_found("borrowing", borrowing_id))
}

impl DocumentHandler {
    /// Starts a write transaction; on SQLite it holds the write lock from the start.
    pub(super) async fn begin(&self) -> AttemptResult<WriteTransaction> {
        Ok(trace_runtime::db::begin_write(&self.db).await?)
    }

    /// Writes `changes` and the next entity version to the document, provided that its
    /// version is still the one in `loaded`, and stages the event for that version.
    /// Returns the updated document and the event id. A changed version is a conflict.
    pub(super) async fn record_change(
        &self,
        txn: &DatabaseTransaction,
        context: &CallContext,
        loaded: &document::Model,
        mut changes: document::ActiveModel,
        action: &'static str,
        payload: prost_types::Any,
    ) -> AttemptResult<(document::Model, String)> {
        changes.entity_version = Set(loaded.entity_version + 1);
        // RETURNING gives the row as written, without a second read.
        let updated = document::Entity::update_many()
            .set(changes)
            .filter(document::Column::Id.eq(loaded.id.as_str()))
            .filter(document::Column::EntityVersion.eq(loaded.entity_version))
            .exec_with_returning(txn)
            .await?;
        let Some(document) = updated.into_iter().next() else {
            return Err(AttemptError::Conflict(format!(
                "document {} changed after it was loaded at version {}",
                loaded.id, loaded.entity_version
            )));
        };
        let event_id = self
            .stage_event(txn, context, &document, action, payload)
            .await?;
        Ok((document, event_id))
    }

    /// Stages the event `action` of `document` at the document's current entity version.
    pub(super) async fn stage_event(
        &self,
        txn: &DatabaseTransaction,
        context: &CallContext,
        document: &document::Model,
        action: &'static str,
        payload: prost_types::Any,
    ) -> ServiceResult<String> {
        let spec = EventSpec {
            entity_type: ENTITY_TYPE,
            entity_id: document.id.clone(),
            entity_version: u64::try_from(document.entity_version).unwrap_or_default(),
            action,
            // Stored values were validated on the way in; an unknown number (a corrupt
            // row) falls back to the strictest level rather than exposing the document.
            confidentiality: Confidentiality::try_from(document.confidentiality)
                .unwrap_or(Confidentiality::Secret),
            payload,
        };
        let envelope = event::envelope(SERVICE, context, self.clock.as_ref(), spec);

        self.outbox.stage(txn, &envelope).await?;

        tracing::debug!(
            document_id = %document.id,
            action,
            event_id = %envelope.event_id,
            "trace event staged"
        );
        Ok(envelope.event_id)
    }

    /// Commits and wakes the outbox relay.
    pub(super) async fn commit(&self, txn: WriteTransaction) -> AttemptResult<()> {
        txn.commit().await?;
        self.outbox.notify();
        Ok(())
    }
}

/// Returns `PERMISSION_DENIED` unless `allowed`.
pub(super) fn require(allowed: bool, reason: impl FnOnce() -> String) -> ServiceResult<()> {
    if allowed {
        Ok(())
    } else {
        Err(ServiceError::denied(reason()))
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use tonic::Code;

    use super::*;

    #[tokio::test]
    async fn conflicts_are_retried_three_times_then_aborted() {
        let attempts = Cell::new(0);

        let result: ServiceResult<()> = with_retries("revise", || {
            attempts.set(attempts.get() + 1);
            async { Err(AttemptError::Conflict("document changed".to_owned())) }
        })
        .await;

        assert_eq!(attempts.get(), 4);
        let error = result.unwrap_err();
        assert_eq!(error.code(), Code::Aborted);
        assert!(error.to_string().contains("revise"), "{error}");
    }

    #[tokio::test]
    async fn conflict_then_success_commits() {
        let attempts = Cell::new(0);

        let result = with_retries("revise", || {
            attempts.set(attempts.get() + 1);
            let attempt = attempts.get();
            async move {
                if attempt < 3 {
                    Err(AttemptError::Conflict("document changed".to_owned()))
                } else {
                    Ok(attempt)
                }
            }
        })
        .await;

        assert_eq!(result.unwrap(), 3);
    }

    #[tokio::test]
    async fn failures_are_not_retried() {
        let attempts = Cell::new(0);

        let result: ServiceResult<()> = with_retries("revise", || {
            attempts.set(attempts.get() + 1);
            async {
                Err(AttemptError::Failed(ServiceError::not_found(
                    "document", "x",
                )))
            }
        })
        .await;

        assert_eq!(attempts.get(), 1);
        assert_eq!(result.unwrap_err().code(), Code::NotFound);
    }

    #[test]
    fn busy_database_is_a_conflict() {
        let busy = DbErr::Custom("database is locked".to_owned());
        let other = DbErr::Custom("no such table: documents".to_owned());

        assert!(matches!(
            AttemptError::from(busy),
            AttemptError::Conflict(_)
        ));
        assert!(matches!(AttemptError::from(other), AttemptError::Failed(_)));
    }
}
