//! The write path that every mutation shares: one transaction that updates the project row
//! under an optimistic version check and stages exactly one event, retried as a whole when
//! another call changed the project first or the database was busy.

use std::time::Duration;

use sea_orm::ActiveValue::Set;
use sea_orm::{ColumnTrait, ConnectionTrait, DatabaseTransaction, DbErr, EntityTrait, QueryFilter};
use trace_proto::common::v1::Confidentiality;
use trace_runtime::context::CallContext;
use trace_runtime::db::WriteTransaction;
use trace_runtime::event::{self, EventSpec};
use trace_runtime::{ServiceError, ServiceResult};

use super::{ProjectHandler, SERVICE};
use crate::entity::{member, project};
use crate::state::{ProjectAction, ProjectState};

/// Entity type of every event of this service.
pub(super) const ENTITY_TYPE: &str = "project";

/// Retries after the first attempt before a call fails with `ABORTED`.
const MAX_RETRIES: u32 = 3;

/// Outcome of a write attempt that did not commit.
#[derive(Debug)]
pub(super) enum AttemptError {
    /// Another call changed the project first, or the database was busy; the whole call
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

impl From<trace_runtime::seal::SealError> for AttemptError {
    fn from(error: trace_runtime::seal::SealError) -> Self {
        Self::Failed(error.into())
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

/// Loads a project; `NOT_FOUND` when it does not exist.
pub(super) async fn find_project<C: ConnectionTrait>(
    connection: &C,
    project_id: &str,
) -> ServiceResult<project::Model> {
    project::Entity::find_by_id(project_id.to_owned())
        .one(connection)
        .await?
        .ok_or_else(|| ServiceError::not_found("project", project_id))
}

/// Loads the active member `user_id` of a project, if there is one.
pub(super) async fn find_active_member<C: ConnectionTrait>(
    connection: &C,
    project_id: &str,
    user_id: &str,
) -> ServiceResult<Option<member::Model>> {
    Ok(member::Entity::find()
        .filter(member::Column::ProjectId.eq(project_id))
        .filter(member::Column::UserId.eq(user_id))
        .filter(member::Column::ActiveSlot.eq(member::ACTIVE))
        .one(connection)
        .await?)
}

/// Returns the state after `action`, or `FAILED_PRECONDITION` naming the current state.
pub(super) fn checked_transition(
    project: &project::Model,
    action: ProjectAction,
) -> ServiceResult<ProjectState> {
    project
        .state
        .after(action)
        .ok_or_else(|| wrong_state(project, action, ""))
}

/// Builds `FAILED_PRECONDITION` for `action` on `project`, naming its state followed by
/// `detail`, for example "IN_ACCEPTANCE with 1 of 2 sign-offs".
pub(super) fn wrong_state(
    project: &project::Model,
    action: ProjectAction,
    detail: &str,
) -> ServiceError {
    let state = if detail.is_empty() {
        project.state.name()
    } else {
        format!("{} {detail}", project.state.name())
    };
    ServiceError::wrong_state("project", &project.id, state, action.verb())
}

/// Returns `PERMISSION_DENIED` unless `allowed`.
pub(super) fn require(allowed: bool, reason: impl FnOnce() -> String) -> ServiceResult<()> {
    if allowed {
        Ok(())
    } else {
        Err(ServiceError::denied(reason()))
    }
}

/// Only the project's manager may `action`.
pub(super) fn require_manager(
    project: &project::Model,
    context: &CallContext,
    action: ProjectAction,
) -> ServiceResult<()> {
    let caller = &context.principal.user_id;
    require(*caller == project.manager_id, || {
        format!(
            "only the manager {} may {} project {}, not {caller}",
            project.manager_id,
            action.verb(),
            project.id
        )
    })
}

/// Only the manager or an active team member may `action`.
pub(super) async fn require_team<C: ConnectionTrait>(
    connection: &C,
    project: &project::Model,
    context: &CallContext,
    action: ProjectAction,
) -> ServiceResult<()> {
    let caller = &context.principal.user_id;
    if *caller == project.manager_id {
        return Ok(());
    }
    let member = find_active_member(connection, &project.id, caller).await?;
    require(member.is_some(), || {
        format!(
            "only the manager or an active team member may {} project {}, not {caller}",
            action.verb(),
            project.id
        )
    })
}

impl ProjectHandler {
    /// Starts a write transaction; on SQLite it holds the write lock from the start.
    pub(super) async fn begin(&self) -> AttemptResult<WriteTransaction> {
        Ok(trace_runtime::db::begin_write(&self.db).await?)
    }

    /// Writes `changes` and the next entity version to the project, provided that its
    /// version is still the one in `loaded`, and stages the event for that version.
    /// Returns the updated project and the event id. A changed version is a conflict.
    pub(super) async fn record_change(
        &self,
        txn: &DatabaseTransaction,
        context: &CallContext,
        loaded: &project::Model,
        mut changes: project::ActiveModel,
        action: &'static str,
        payload: prost_types::Any,
    ) -> AttemptResult<(project::Model, String)> {
        changes.entity_version = Set(loaded.entity_version + 1);
        // RETURNING gives the row as written, without a second read.
        let updated = project::Entity::update_many()
            .set(changes)
            .filter(project::Column::Id.eq(loaded.id.as_str()))
            .filter(project::Column::EntityVersion.eq(loaded.entity_version))
            .exec_with_returning(txn)
            .await?;
        let Some(project) = updated.into_iter().next() else {
            return Err(AttemptError::Conflict(format!(
                "project {} changed after it was loaded at version {}",
                loaded.id, loaded.entity_version
            )));
        };
        let event_id = self
            .stage_event(txn, context, &project, action, payload)
            .await?;
        Ok((project, event_id))
    }

    /// Advances the project's version without changing its row otherwise, and stages the
    /// event; for steps that only add or change detail rows.
    pub(super) async fn record_event(
        &self,
        txn: &DatabaseTransaction,
        context: &CallContext,
        loaded: &project::Model,
        action: &'static str,
        payload: prost_types::Any,
    ) -> AttemptResult<(project::Model, String)> {
        let changes = project::ActiveModel::default();
        self.record_change(txn, context, loaded, changes, action, payload)
            .await
    }

    /// Stages the event `action` of `project` at the project's current entity version.
    pub(super) async fn stage_event(
        &self,
        txn: &DatabaseTransaction,
        context: &CallContext,
        project: &project::Model,
        action: &'static str,
        payload: prost_types::Any,
    ) -> ServiceResult<String> {
        let spec = EventSpec {
            entity_type: ENTITY_TYPE,
            entity_id: project.id.clone(),
            entity_version: u64::try_from(project.entity_version).unwrap_or_default(),
            action,
            // Stored values were validated on the way in; an unknown number (a corrupt
            // row) falls back to the strictest level rather than exposing the project.
            confidentiality: Confidentiality::try_from(project.confidentiality)
                .unwrap_or(Confidentiality::Secret),
            payload,
        };
        let envelope = event::envelope(SERVICE, context, self.clock.as_ref(), spec);

        self.outbox.stage(txn, &envelope).await?;

        tracing::debug!(
            project_id = %project.id,
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

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use tonic::Code;

    use super::*;

    #[tokio::test]
    async fn conflicts_are_retried_three_times_then_aborted() {
        let attempts = Cell::new(0);

        let result: ServiceResult<()> = with_retries("start project", || {
            attempts.set(attempts.get() + 1);
            async { Err(AttemptError::Conflict("project changed".to_owned())) }
        })
        .await;

        assert_eq!(attempts.get(), 4);
        let error = result.unwrap_err();
        assert_eq!(error.code(), Code::Aborted);
        assert!(error.to_string().contains("start project"), "{error}");
    }

    #[tokio::test]
    async fn conflict_then_success_commits() {
        let attempts = Cell::new(0);

        let result = with_retries("start project", || {
            attempts.set(attempts.get() + 1);
            let attempt = attempts.get();
            async move {
                if attempt < 3 {
                    Err(AttemptError::Conflict("project changed".to_owned()))
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

        let result: ServiceResult<()> = with_retries("start project", || {
            attempts.set(attempts.get() + 1);
            async {
                Err(AttemptError::Failed(ServiceError::not_found(
                    "project", "x",
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
        let other = DbErr::Custom("no such table: projects".to_owned());

        assert!(matches!(
            AttemptError::from(busy),
            AttemptError::Conflict(_)
        ));
        assert!(matches!(AttemptError::from(other), AttemptError::Failed(_)));
    }
}
