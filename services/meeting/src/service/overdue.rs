//! Overdue resolutions: the `CheckOverdue` call and the background task that runs the same
//! check periodically as the service itself. Each resolution gets one `overdue` event per
//! due date, so a second check finds nothing new, and a resolution whose delay was approved
//! is reported again, once, after its new due date passed.

use std::time::Duration;

use chrono::NaiveDate;
use sea_orm::ActiveValue::Set;
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{ColumnTrait, Condition, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use tokio_util::sync::CancellationToken;
use trace_proto::meeting::v1 as proto;
use trace_runtime::clock::{date_from_key, date_key, proto_date};
use trace_runtime::context::{CallContext, role};
use trace_runtime::event::pack;
use trace_runtime::{ServiceResult, validate};

use super::write::{AttemptResult, check_resolution_step, find_resolution, with_retries};
use super::{MeetingHandler, SERVICE, convert};
use crate::entity::{overdue_mark, resolution};
use crate::rules;
use crate::state::{ResolutionAction, ResolutionStatus};

impl MeetingHandler {
    pub(super) async fn check_overdue_as_of(
        &self,
        context: &CallContext,
        request: proto::CheckOverdueRequest,
    ) -> ServiceResult<proto::CheckOverdueResponse> {
        let requested = request
            .as_of
            .as_ref()
            .map(|date| validate::optional_date("as_of", date))
            .transpose()?;
        let is_system = context.principal.has_role(role::SYSTEM);
        let as_of = rules::overdue_as_of(requested, self.today(), is_system)?;

        let resolution_ids = self.mark_overdue(context, as_of).await?;

        Ok(proto::CheckOverdueResponse { resolution_ids })
    }

    /// Records an `overdue` event for every resolution that is overdue on `as_of` and was not
    /// reported for its current due date yet, each in its own transaction, and returns their
    /// ids. If one fails, the ones before it stay and the next check continues with the rest.
    pub(super) async fn mark_overdue(
        &self,
        context: &CallContext,
        as_of: NaiveDate,
    ) -> ServiceResult<Vec<String>> {
        let not_reported = Condition::any()
            .add(resolution::Column::OverdueMarkedDue.is_null())
            .add(
                Expr::col(resolution::Column::OverdueMarkedDue)
                    .lt(Expr::col(resolution::Column::DueDate)),
            );
        let candidates: Vec<String> = resolution::Entity::find()
            .select_only()
            .column(resolution::Column::Id)
            .filter(resolution::Column::Status.ne(ResolutionStatus::Done))
            .filter(resolution::Column::DueDate.lt(date_key(as_of)))
            .filter(not_reported)
            .order_by_asc(resolution::Column::DueDate)
            .order_by_asc(resolution::Column::Id)
            .into_tuple()
            .all(&self.db)
            .await?;

        let mut marked = Vec::with_capacity(candidates.len());
        for resolution_id in candidates {
            let outcome = with_retries("mark overdue", || {
                self.try_mark(context, &resolution_id, as_of)
            })
            .await?;
            if outcome {
                marked.push(resolution_id);
            }
        }
        Ok(marked)
    }

    /// Marks one resolution, re-checking the rule inside the transaction because an update
    /// or a delay may have committed since the query. Returns false when nothing was due.
    async fn try_mark(
        &self,
        context: &CallContext,
        resolution_id: &str,
        as_of: NaiveDate,
    ) -> AttemptResult<bool> {
        let txn = self.begin().await?;
        let loaded = find_resolution(&self.keyring, &txn, resolution_id).await?;
        let Some(due) = date_from_key(loaded.due_date) else {
            return Ok(false);
        };
        let marked_due = loaded.overdue_marked_due.and_then(date_from_key);
        if !rules::needs_overdue_mark(loaded.status, due, marked_due, as_of) {
            return Ok(false);
        }
        check_resolution_step(&loaded, ResolutionAction::MarkOverdue)?;

        let mark = overdue_mark::Model {
            resolution_id: loaded.id.clone(),
            due_date: loaded.due_date,
            as_of: date_key(as_of),
            marked_at: self.now(),
        };
        overdue_mark::Entity::insert(overdue_mark::ActiveModel::from(mark))
            .exec_without_returning(&txn)
            .await?;

        let changes = resolution::ActiveModel {
            overdue_marked_due: Set(Some(loaded.due_date)),
            ..Default::default()
        };
        let payload = proto::ResolutionOverdue {
            meeting_id: loaded.meeting_id.clone(),
            owner_id: loaded.owner_id.clone(),
            due_date: convert::date(loaded.due_date),
            as_of: Some(proto_date(as_of)),
        };
        self.change_resolution(&txn, context, &loaded, changes, "overdue", pack(&payload))
            .await?;
        self.commit(txn).await?;
        Ok(true)
    }
}

/// Runs the overdue check for today once at start and then every `interval`, as the
/// service's own system caller, until `shutdown` is cancelled. Failures are logged and the
/// next run tries again.
pub async fn run_overdue_checks(
    handler: MeetingHandler,
    interval: Duration,
    shutdown: CancellationToken,
) {
    tracing::info!(interval_secs = interval.as_secs(), "overdue check started");
    loop {
        let context = CallContext::system(SERVICE);
        let today = handler.today();
        match handler.mark_overdue(&context, today).await {
            Ok(marked) if marked.is_empty() => {}
            Ok(marked) => {
                tracing::info!(count = marked.len(), %today, "marked resolutions overdue")
            }
            Err(error) => {
                tracing::warn!(%error, %today, "overdue check failed, retrying at the next interval")
            }
        }

        tokio::select! {
            () = shutdown.cancelled() => break,
            () = tokio::time::sleep(interval) => {}
        }
    }
    tracing::info!("overdue check stopped");
}
