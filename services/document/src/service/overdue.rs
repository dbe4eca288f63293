//! Overdue borrowings: the `CheckOverdue` call and the background task that runs the same
//! check periodically as the service itself.

use std::time::Duration;

use chrono::NaiveDate;
use sea_orm::ActiveValue::Set;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use tokio_util::sync::CancellationToken;
use trace_proto::document::v1 as proto;
use trace_runtime::clock::{date_key, proto_date};
use trace_runtime::context::{CallContext, role};
use trace_runtime::event::pack;
use trace_runtime::{ServiceError, ServiceResult, validate};

use super::borrowing::{BorrowingStep, checked_borrowing_transition};
use super::write::with_retries;
use super::{DocumentHandler, SERVICE, convert};
use crate::entity::borrowing;
use crate::state::{BorrowingAction, BorrowingState};

impl DocumentHandler {
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
        let as_of = crate::rules::overdue_as_of("as_of", requested, self.today(), is_system)?;

        let borrowing_ids = self.mark_overdue(context, as_of).await?;

        Ok(proto::CheckOverdueResponse { borrowing_ids })
    }

    /// Marks every lent borrowing whose expected return date is before `as_of` as overdue,
    /// each in its own transaction with one `overdue` event, and returns their ids. A
    /// borrowing leaves `LENT` when marked, so it is marked at most once. One transaction per
    /// borrowing keeps each mark atomic with its event without holding the write lock for
    /// the whole batch. If a mark fails, the ones before it stay and the next check
    /// continues with the rest.
    pub(super) async fn mark_overdue(
        &self,
        context: &CallContext,
        as_of: NaiveDate,
    ) -> ServiceResult<Vec<String>> {
        let candidates: Vec<String> = borrowing::Entity::find()
            .select_only()
            .column(borrowing::Column::Id)
            .filter(borrowing::Column::State.eq(BorrowingState::Lent))
            .filter(borrowing::Column::ExpectedReturnDate.lt(date_key(as_of)))
            .order_by_asc(borrowing::Column::ExpectedReturnDate)
            .order_by_asc(borrowing::Column::Id)
            .into_tuple()
            .all(&self.db)
            .await?;

        let plan = |loaded: &borrowing::Model| self.plan_overdue(loaded, as_of);
        let mut marked = Vec::with_capacity(candidates.len());
        for borrowing_id in candidates {
            let outcome = with_retries("mark overdue", || {
                self.try_step(context, &borrowing_id, &plan)
            })
            .await;
            match outcome {
                Ok(_) => marked.push(borrowing_id),
                // Returned or reported lost since the query, so there is nothing to mark.
                Err(ServiceError::FailedPrecondition { state, .. }) => {
                    tracing::debug!(%borrowing_id, %state, "borrowing left LENT before the overdue mark");
                }
                Err(error) => return Err(error),
            }
        }
        Ok(marked)
    }

    fn plan_overdue(
        &self,
        loaded: &borrowing::Model,
        as_of: NaiveDate,
    ) -> ServiceResult<BorrowingStep> {
        let state = checked_borrowing_transition(loaded, BorrowingAction::MarkOverdue)?;

        Ok(BorrowingStep {
            state,
            changes: borrowing::ActiveModel {
                state: Set(state),
                overdue_since: Set(Some(self.now())),
                ..Default::default()
            },
            action: "overdue",
            payload: pack(&proto::BorrowingOverdue {
                borrowing_id: loaded.id.clone(),
                borrower_id: loaded.borrower_id.clone(),
                expected_return_date: convert::date(loaded.expected_return_date),
                as_of: Some(proto_date(as_of)),
            }),
        })
    }
}

/// Runs the overdue check for today once at start and then every `interval`, as the
/// service's own system caller, until `shutdown` is cancelled. Failures are logged and the
/// next run tries again.
pub async fn run_overdue_checks(
    handler: DocumentHandler,
    interval: Duration,
    shutdown: CancellationToken,
) {
    tracing::info!(interval_secs = interval.as_secs(), "overdue check started");
    loop {
        let context = CallContext::system(SERVICE);
        let today = handler.today();
        match handler.mark_overdue(&context, today).await {
            Ok(marked) if marked.is_empty() => {}
            Ok(marked) => tracing::info!(count = marked.len(), %today, "marked borrowings overdue"),
            Err(error) => tracing::warn!(%error, %today, "overdue check failed, will run again"),
        }

        tokio::select! {
            () = shutdown.cancelled() => break,
            () = tokio::time::sleep(interval) => {}
        }
    }
    tracing::info!("overdue check stopped");
}
