//! The write path that every mutation shares: one transaction that updates the record under an
//! optimistic version check and stages exactly one event, retried as a whole when another call
//! changed the record first or the database was busy.

use std::time::Duration;

use sea_orm::ActiveValue::Set;
use sea_orm::{ColumnTrait, ConnectionTrait, DatabaseTransaction, DbErr, EntityTrait, QueryFilter};
use trace_proto::common::v1::Confidentiality;
use trace_runtime::access_approval;
use trace_runtime::context::CallContext;
use trace_runtime::db::WriteTransaction;
use trace_runtime::event::{self, EventSpec};
use trace_runtime::{ServiceError, ServiceResult};

use super::{SERVICE, WorklogHandler};
use crate::entity::report;

/// Retries after the first attempt before a call fails with `ABORTED`.
const MAX_RETRIES: u32 = 3;

/// Reason that one attempt of a write did not commit.
#[derive(Debug)]
pub(super) enum AttemptError {
    /// Another call changed the record first, or the database was busy; the whole call runs
    /// again.
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
        // Two first submissions for the same period race on the unique key; the retry then
        // finds the stored report and names its state.
        if trace_runtime::db::is_unique_violation(&error) {
            return Self::Conflict(format!("a concurrent call inserted the same key: {error}"));
        }
        Self::Failed(ServiceError::from(error))
    }
}

/// Runs `attempt` until it commits or fails, retrying up to [`MAX_RETRIES`] times after a
/// conflict. A transaction that did not commit is rolled back when it is dropped, so a retried
/// attempt starts from what is committed.
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
                tracing::warn!(operation, %reason, "write conflicted on every attempt, aborting");
                return Err(ServiceError::Aborted {
                    reason: format!(
                        "{operation} conflicted with concurrent changes {} times, last because {reason}; retry the call",
                        MAX_RETRIES + 1
                    ),
                });
            }
        }
    }
}

/// Loads a report; `NOT_FOUND` when it does not exist.
pub(super) async fn find_report<C: ConnectionTrait>(
    connection: &C,
    report_id: &str,
) -> ServiceResult<report::Model> {
    report::Entity::find_by_id(report_id.to_owned())
        .one(connection)
        .await?
        .ok_or_else(|| ServiceError::not_found("report", report_id))
}

/// Entity and action of one event.
pub(super) struct EventTarget<'a> {
    pub entity_type: &'static str,
    pub entity_id: &'a str,
    pub entity_version: i64,
    pub action: &'static str,
    pub confidentiality: Confidentiality,
}

impl WorklogHandler {
    /// Starts a write transaction; on SQLite it holds the write lock from the start.
    pub(super) async fn begin(&self) -> AttemptResult<WriteTransaction> {
        Ok(trace_runtime::db::begin_write(&self.db).await?)
    }

    /// Writes `changes` and the next entity version to the report, provided that its version
    /// is still the one in `loaded`, and stages the event `action` for that version. Returns
    /// the updated report and the event id. A changed version is a conflict.
    pub(super) async fn record_report_change(
        &self,
        txn: &DatabaseTransaction,
        context: &CallContext,
        loaded: &report::Model,
        mut changes: report::ActiveModel,
        action: &'static str,
        payload: prost_types::Any,
    ) -> AttemptResult<(report::Model, String)> {
        changes.entity_version = Set(loaded.entity_version + 1);
        // RETURNING gives the row as written, without a second read.
        let updated = report::Entity::update_many()
            .set(changes)
            .filter(report::Column::Id.eq(loaded.id.as_str()))
            .filter(report::Column::EntityVersion.eq(loaded.entity_version))
            .exec_with_returning(txn)
            .await?;
        let Some(report) = updated.into_iter().next() else {
            return Err(AttemptError::Conflict(format!(
                "report {} changed after it was loaded at version {}",
                loaded.id, loaded.entity_version
            )));
        };
        let event_id = self
            .stage_report_event(txn, context, &report, action, payload)
            .await?;
        Ok((report, event_id))
    }

    /// Stages the event `action` of `report` at the report's current entity version and at its
    /// level, so that the outbox seals the payload of a CONFIDENTIAL or SECRET report.
    pub(super) async fn stage_report_event(
        &self,
        txn: &DatabaseTransaction,
        context: &CallContext,
        report: &report::Model,
        action: &'static str,
        payload: prost_types::Any,
    ) -> ServiceResult<String> {
        let target = EventTarget {
            entity_type: report.kind.entity_type(),
            entity_id: &report.id,
            entity_version: report.entity_version,
            action,
            confidentiality: access_approval::level_of(report.confidentiality),
        };
        self.stage_event(txn, context, target, payload).await
    }

    /// Stages one event in the outbox of `txn` and returns its id.
    pub(super) async fn stage_event(
        &self,
        txn: &DatabaseTransaction,
        context: &CallContext,
        target: EventTarget<'_>,
        payload: prost_types::Any,
    ) -> ServiceResult<String> {
        let spec = EventSpec {
            entity_type: target.entity_type,
            entity_id: target.entity_id.to_owned(),
            entity_version: u64::try_from(target.entity_version).unwrap_or_default(),
            action: target.action,
            confidentiality: target.confidentiality,
            payload,
        };
        let envelope = event::envelope(SERVICE, context, self.clock.as_ref(), spec);

        self.outbox.stage(txn, &envelope).await?;

        tracing::debug!(
            entity_type = target.entity_type,
            entity_id = %target.entity_id,
            action = target.action,
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

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use tonic::Code;

    use super::*;

    #[tokio::test]
    async fn conflicts_are_retried_three_times_then_aborted() {
        let attempts = Cell::new(0);

        let result: ServiceResult<()> = with_retries("decide report", || {
            attempts.set(attempts.get() + 1);
            async { Err(AttemptError::Conflict("report changed".to_owned())) }
        })
        .await;

        assert_eq!(attempts.get(), 4);
        let error = result.unwrap_err();
        assert_eq!(error.code(), Code::Aborted);
        assert!(error.to_string().contains("decide report"), "{error}");
    }

    #[tokio::test]
    async fn conflict_then_success_commits() {
        let attempts = Cell::new(0);

        let result = with_retries("decide report", || {
            attempts.set(attempts.get() + 1);
            let attempt = attempts.get();
            async move {
                if attempt < 3 {
                    Err(AttemptError::Conflict("report changed".to_owned()))
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

        let result: ServiceResult<()> = with_retries("decide report", || {
            attempts.set(attempts.get() + 1);
            async { Err(AttemptError::Failed(ServiceError::not_found("report", "x"))) }
        })
        .await;

        assert_eq!(attempts.get(), 1);
        assert_eq!(result.unwrap_err().code(), Code::NotFound);
    }

    #[test]
    fn busy_database_is_a_conflict() {
        let busy = DbErr::Custom("database is locked".to_owned());
        let other = DbErr::Custom("no such table: reports".to_owned());

        assert!(matches!(
            AttemptError::from(busy),
            AttemptError::Conflict(_)
        ));
        assert!(matches!(AttemptError::from(other), AttemptError::Failed(_)));
    }
}
