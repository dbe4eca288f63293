//! The write path that every mutation shares. One transaction updates the changed meeting
//! and resolution rows under optimistic version checks and stages one event per changed
//! entity. The whole attempt runs again when another call changed a row first or the
//! database was busy.

use std::time::Duration;

use sea_orm::ActiveValue::Set;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseTransaction, DbErr, EntityTrait, QueryFilter, QueryOrder,
};
use trace_proto::common::v1::Confidentiality;
use trace_runtime::context::CallContext;
use trace_runtime::db::WriteTransaction;
use trace_runtime::event::{self, EventSpec};
use trace_runtime::seal::Keyring;
use trace_runtime::sealed_text::{SealedRow, open_rows};
use trace_runtime::{ServiceError, ServiceResult};

use super::{MeetingHandler, SERVICE};
use crate::entity::{agenda_item, attendee, meeting, resolution};
use crate::state::{MeetingAction, ResolutionAction, ResolutionStatus};

/// Entity type of events about a meeting's plan, notices, materials and minutes.
pub(super) const MEETING: &str = "meeting";

/// Entity type of events about one tracked decision.
pub(super) const RESOLUTION: &str = "resolution";

/// Retries after the first attempt before a call fails with `ABORTED`.
const MAX_RETRIES: u32 = 3;

/// Reason why one attempt of a write did not commit.
#[derive(Debug)]
pub(super) enum AttemptError {
    /// Another call changed a row first, or the database was busy; the whole call runs again.
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
        // Detail rows are keyed by what the attempt read, such as the next update number. On
        // PostgreSQL a concurrent call can insert the same key first, so the attempt runs
        // again and reads the committed state, where the version check or a state check
        // decides.
        if trace_runtime::db::is_unique_violation(&error) {
            return Self::Conflict(format!("a concurrent call inserted the same key: {error}"));
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

/// Loads a meeting; `NOT_FOUND` when it does not exist.
pub(super) async fn find_meeting<C: ConnectionTrait>(
    keyring: &Keyring,
    connection: &C,
    meeting_id: &str,
) -> ServiceResult<meeting::Model> {
    let model = meeting::Entity::find_by_id(meeting_id.to_owned())
        .one(connection)
        .await?
        .ok_or_else(|| ServiceError::not_found("meeting", meeting_id))?;
    Ok(model.opened(keyring)?)
}

/// Loads a resolution; `NOT_FOUND` when it does not exist.
pub(super) async fn find_resolution<C: ConnectionTrait>(
    keyring: &Keyring,
    connection: &C,
    resolution_id: &str,
) -> ServiceResult<resolution::Model> {
    let model = resolution::Entity::find_by_id(resolution_id.to_owned())
        .one(connection)
        .await?
        .ok_or_else(|| ServiceError::not_found("resolution", resolution_id))?;
    Ok(model.opened(keyring)?)
}

/// Loads the planned attendees of a meeting in their planned order.
pub(super) async fn load_attendees<C: ConnectionTrait>(
    connection: &C,
    meeting_id: &str,
) -> ServiceResult<Vec<String>> {
    let rows = attendee::Entity::find()
        .filter(attendee::Column::MeetingId.eq(meeting_id))
        .order_by_asc(attendee::Column::Position)
        .all(connection)
        .await?;
    Ok(rows.into_iter().map(|row| row.user_id).collect())
}

/// Loads the agenda of a meeting by item number.
pub(super) async fn load_agenda<C: ConnectionTrait>(
    keyring: &Keyring,
    connection: &C,
    meeting_id: &str,
) -> ServiceResult<Vec<agenda_item::Model>> {
    let rows = agenda_item::Entity::find()
        .filter(agenda_item::Column::MeetingId.eq(meeting_id))
        .order_by_asc(agenda_item::Column::Number)
        .all(connection)
        .await?;
    Ok(open_rows(keyring, rows)?)
}

/// Fails with `FAILED_PRECONDITION` naming the state unless `action` is allowed.
pub(super) fn check_meeting_step(
    loaded: &meeting::Model,
    action: MeetingAction,
) -> ServiceResult<()> {
    match loaded.state.after(action) {
        Some(_) => Ok(()),
        None => Err(ServiceError::wrong_state(
            "meeting",
            &loaded.id,
            loaded.state.name(),
            action.verb(),
        )),
    }
}

/// Returns the status after `action`, or `FAILED_PRECONDITION` naming the current status.
pub(super) fn check_resolution_step(
    loaded: &resolution::Model,
    action: ResolutionAction,
) -> ServiceResult<ResolutionStatus> {
    loaded.status.after(action).ok_or_else(|| {
        ServiceError::wrong_state(
            "resolution",
            &loaded.id,
            loaded.status.name(),
            action.verb(),
        )
    })
}

/// Returns `PERMISSION_DENIED` unless `allowed`.
pub(super) fn require(allowed: bool, reason: impl FnOnce() -> String) -> ServiceResult<()> {
    if allowed {
        Ok(())
    } else {
        Err(ServiceError::denied(reason()))
    }
}

/// Fails unless the caller organised the meeting.
pub(super) fn require_organiser(
    context: &CallContext,
    loaded: &meeting::Model,
    action: &str,
) -> ServiceResult<()> {
    let caller = &context.principal.user_id;
    require(*caller == loaded.organiser_id, || {
        format!(
            "only the organiser {} may {action} meeting {}, not {caller}",
            loaded.organiser_id, loaded.id
        )
    })
}

impl MeetingHandler {
    /// Starts a write transaction; on SQLite it holds the write lock from the start.
    pub(super) async fn begin(&self) -> AttemptResult<WriteTransaction> {
        Ok(trace_runtime::db::begin_write(&self.db).await?)
    }

    /// Commits and wakes the outbox relay.
    pub(super) async fn commit(&self, txn: WriteTransaction) -> AttemptResult<()> {
        txn.commit().await?;
        self.outbox.notify();
        Ok(())
    }

    /// Writes `changes` and the next entity version to the meeting, provided that its
    /// version is still the one in `loaded`, and stages the event for that version. Returns
    /// the updated meeting and the event id. A changed version is a conflict.
    pub(super) async fn change_meeting(
        &self,
        txn: &DatabaseTransaction,
        context: &CallContext,
        loaded: &meeting::Model,
        mut changes: meeting::ActiveModel,
        action: &'static str,
        payload: prost_types::Any,
    ) -> AttemptResult<(meeting::Model, String)> {
        changes.entity_version = Set(loaded.entity_version + 1);
        let updated = meeting::Entity::update_many()
            .set(changes)
            .filter(meeting::Column::Id.eq(loaded.id.as_str()))
            .filter(meeting::Column::EntityVersion.eq(loaded.entity_version))
            .exec(txn)
            .await?;
        if updated.rows_affected == 0 {
            return Err(AttemptError::Conflict(format!(
                "meeting {} changed after it was loaded at version {}",
                loaded.id, loaded.entity_version
            )));
        }

        let meeting = find_meeting(&self.keyring, txn, &loaded.id).await?;
        let target = EventTarget::meeting(&meeting);
        let event_id = self
            .stage_event(txn, context, target, action, payload)
            .await?;
        Ok((meeting, event_id))
    }

    /// As [`MeetingHandler::change_meeting`], for a resolution.
    pub(super) async fn change_resolution(
        &self,
        txn: &DatabaseTransaction,
        context: &CallContext,
        loaded: &resolution::Model,
        mut changes: resolution::ActiveModel,
        action: &'static str,
        payload: prost_types::Any,
    ) -> AttemptResult<(resolution::Model, String)> {
        changes.entity_version = Set(loaded.entity_version + 1);
        let updated = resolution::Entity::update_many()
            .set(changes)
            .filter(resolution::Column::Id.eq(loaded.id.as_str()))
            .filter(resolution::Column::EntityVersion.eq(loaded.entity_version))
            .exec(txn)
            .await?;
        if updated.rows_affected == 0 {
            return Err(AttemptError::Conflict(format!(
                "resolution {} changed after it was loaded at version {}",
                loaded.id, loaded.entity_version
            )));
        }

        let resolution = find_resolution(&self.keyring, txn, &loaded.id).await?;
        let target = EventTarget::resolution(&resolution);
        let event_id = self
            .stage_event(txn, context, target, action, payload)
            .await?;
        Ok((resolution, event_id))
    }

    /// Stages the event `action` of `target` at the target's current entity version.
    pub(super) async fn stage_event(
        &self,
        txn: &DatabaseTransaction,
        context: &CallContext,
        target: EventTarget<'_>,
        action: &'static str,
        payload: prost_types::Any,
    ) -> ServiceResult<String> {
        let spec = EventSpec {
            entity_type: target.entity_type,
            entity_id: target.entity_id.to_owned(),
            entity_version: u64::try_from(target.entity_version).unwrap_or_default(),
            action,
            // Stored values were validated on the way in; an unknown number (a corrupt
            // row) falls back to the strictest level rather than exposing the record.
            confidentiality: Confidentiality::try_from(target.confidentiality)
                .unwrap_or(Confidentiality::Secret),
            payload,
        };
        let envelope = event::envelope(SERVICE, context, self.clock.as_ref(), spec);

        self.outbox.stage(txn, &envelope).await?;

        tracing::debug!(
            entity_type = target.entity_type,
            entity_id = %target.entity_id,
            action,
            event_id = %envelope.event_id,
            "trace event staged"
        );
        Ok(envelope.event_id)
    }
}

/// The entity an event belongs to, at its version after the change.
#[derive(Debug, Clone, Copy)]
pub(super) struct EventTarget<'a> {
    entity_type: &'static str,
    entity_id: &'a str,
    entity_version: i64,
    confidentiality: i32,
}

impl<'a> EventTarget<'a> {
    pub(super) fn meeting(model: &'a meeting::Model) -> Self {
        Self {
            entity_type: MEETING,
            entity_id: &model.id,
            entity_version: model.entity_version,
            confidentiality: model.confidentiality,
        }
    }

    pub(super) fn resolution(model: &'a resolution::Model) -> Self {
        Self {
            entity_type: RESOLUTION,
            entity_id: &model.id,
            entity_version: model.entity_version,
            confidentiality: model.confidentiality,
        }
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

        let result: ServiceResult<()> = with_retries("update resolution", || {
            attempts.set(attempts.get() + 1);
            async { Err(AttemptError::Conflict("resolution changed".to_owned())) }
        })
        .await;

        assert_eq!(attempts.get(), 4);
        let error = result.unwrap_err();
        assert_eq!(error.code(), Code::Aborted);
        assert!(error.to_string().contains("update resolution"), "{error}");
    }

    #[tokio::test]
    async fn failures_are_not_retried() {
        let attempts = Cell::new(0);

        let result: ServiceResult<()> = with_retries("plan", || {
            attempts.set(attempts.get() + 1);
            async {
                Err(AttemptError::Failed(ServiceError::not_found(
                    "meeting", "x",
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
        let other = DbErr::Custom("no such table: meetings".to_owned());

        assert!(matches!(
            AttemptError::from(busy),
            AttemptError::Conflict(_)
        ));
        assert!(matches!(AttemptError::from(other), AttemptError::Failed(_)));
    }
}
