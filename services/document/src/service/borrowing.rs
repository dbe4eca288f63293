//! Borrowing: application, decision, lending, return, loss and the handling of damage or
//! loss. Every step also increments the borrowed document's entity version, so the steps of
//! all borrowings of one document are serialised by the document's optimistic check.

use sea_orm::ActiveValue::Set;
use sea_orm::{ActiveModelTrait, ColumnTrait, DatabaseTransaction, EntityTrait, QueryFilter};
use trace_proto::document::v1 as proto;
use trace_runtime::clock::{date_from_key, date_key};
use trace_runtime::context::CallContext;
use trace_runtime::event::pack;
use trace_runtime::sealed_text::SealedRow;
use trace_runtime::validate;
use trace_runtime::{ServiceError, ServiceResult};
use uuid::Uuid;

use super::drafting::checked_transition;
use super::write::{
    AttemptError, AttemptResult, find_borrowing, lock_borrowing, lock_document, require,
    with_retries,
};
use super::{DocumentHandler, convert};
use crate::entity::borrowing;
use crate::rules;
use crate::sealing::seal_borrowing_changes;
use crate::state::{BorrowingAction, BorrowingState, DocumentAction, ReturnCondition};

/// Changes of one borrowing step, and the event that records them.
pub(super) struct BorrowingStep {
    /// State after the step; unchanged for steps that only add information.
    pub(super) state: BorrowingState,
    pub(super) changes: borrowing::ActiveModel,
    pub(super) action: &'static str,
    pub(super) payload: prost_types::Any,
}

/// A validated `ApplyBorrowingRequest`.
struct Application {
    document_id: String,
    reason: String,
    expected_return_date: chrono::NaiveDate,
}

/// A validated `ReturnDocumentRequest`.
struct ReturnInput {
    borrowing_id: String,
    condition: ReturnCondition,
    note: Option<String>,
}

/// Returns the state after `action`, or `FAILED_PRECONDITION` naming the current state.
pub(super) fn checked_borrowing_transition(
    borrowing: &borrowing::Model,
    action: BorrowingAction,
) -> ServiceResult<BorrowingState> {
    borrowing.state.after(action).ok_or_else(|| {
        ServiceError::wrong_state(
            "borrowing",
            &borrowing.id,
            borrowing.state.name(),
            action.verb(),
        )
    })
}

impl DocumentHandler {
    pub(super) async fn apply(
        &self,
        context: &CallContext,
        request: proto::ApplyBorrowingRequest,
    ) -> ServiceResult<proto::ApplyBorrowingResponse> {
        let field = "expected_return_date";
        let expected_return_date = validate::date(field, request.expected_return_date.as_ref())?;
        rules::check_expected_return_date(field, expected_return_date, self.today())?;
        let application = Application {
            document_id: validate::record_id("document_id", &request.document_id)?.to_string(),
            reason: validate::text("reason", &request.reason, 1, 2000)?,
            expected_return_date,
        };

        with_retries("apply for borrowing", || {
            self.try_apply(context, &application)
        })
        .await
    }

    async fn try_apply(
        &self,
        context: &CallContext,
        application: &Application,
    ) -> AttemptResult<proto::ApplyBorrowingResponse> {
        let txn = self.begin().await?;
        let loaded = lock_document(&txn, &application.document_id).await?;
        checked_transition(&loaded, DocumentAction::ApplyBorrowing)?;

        let borrower_id = &context.principal.user_id;
        let row = new_borrowing_row(&loaded.id, borrower_id, application, self.now());
        let payload = proto::BorrowingRequested {
            borrowing_id: row.id.clone(),
            reason: row.reason.clone(),
            expected_return_date: convert::date(row.expected_return_date),
        };
        let (_, event_id) = self
            .record_change(
                &txn,
                context,
                &loaded,
                Default::default(),
                "borrow_requested",
                pack(&payload),
            )
            .await?;

        let stored = row.clone().sealed(&self.keyring, loaded.confidentiality);
        borrowing::Entity::insert(borrowing::ActiveModel::from(stored).reset_all())
            .exec_without_returning(&txn)
            .await?;
        self.commit(txn).await?;

        Ok(proto::ApplyBorrowingResponse {
            borrowing: Some(convert::borrowing(&row)),
            event_id,
        })
    }

    pub(super) async fn decide(
        &self,
        context: &CallContext,
        request: proto::DecideBorrowingRequest,
    ) -> ServiceResult<proto::DecideBorrowingResponse> {
        let borrowing_id = validate::record_id("borrowing_id", &request.borrowing_id)?.to_string();
        let opinion = validate::text("opinion", &request.opinion, 1, 2000)?;
        let approve = request.approve;

        let plan =
            |loaded: &borrowing::Model| self.plan_decision(context, loaded, approve, &opinion);
        let (borrowing, event_id) = with_retries("decide borrowing", || {
            self.try_step(context, &borrowing_id, &plan)
        })
        .await?;

        Ok(proto::DecideBorrowingResponse {
            borrowing: Some(convert::borrowing(&borrowing)),
            event_id,
        })
    }

    fn plan_decision(
        &self,
        context: &CallContext,
        loaded: &borrowing::Model,
        approve: bool,
        opinion: &str,
    ) -> ServiceResult<BorrowingStep> {
        let action = if approve {
            BorrowingAction::Approve
        } else {
            BorrowingAction::Reject
        };
        let state = checked_borrowing_transition(loaded, action)?;
        let caller = &context.principal.user_id;
        require(*caller != loaded.borrower_id, || {
            format!(
                "the borrower {caller} may not decide their own borrowing {}",
                loaded.id
            )
        })?;

        Ok(BorrowingStep {
            state,
            changes: borrowing::ActiveModel {
                state: Set(state),
                approver_id: Set(Some(caller.clone())),
                approver_opinion: Set(Some(opinion.to_owned())),
                decided_at: Set(Some(self.now())),
                ..Default::default()
            },
            action: if approve {
                "borrow_approved"
            } else {
                "borrow_rejected"
            },
            payload: pack(&proto::BorrowingDecided {
                borrowing_id: loaded.id.clone(),
                approved: approve,
                opinion: opinion.to_owned(),
            }),
        })
    }

    // NOTE: lending, returns, losses and handling are open to every authenticated caller;
    // the policy names no role for the archive keeper who performs them.
    pub(super) async fn lend(
        &self,
        context: &CallContext,
        request: proto::LendDocumentRequest,
    ) -> ServiceResult<proto::LendDocumentResponse> {
        let borrowing_id = validate::record_id("borrowing_id", &request.borrowing_id)?.to_string();

        let plan = |loaded: &borrowing::Model| self.plan_lending(loaded);
        let (borrowing, event_id) = with_retries("lend document", || {
            self.try_step(context, &borrowing_id, &plan)
        })
        .await?;

        Ok(proto::LendDocumentResponse {
            borrowing: Some(convert::borrowing(&borrowing)),
            event_id,
        })
    }

    fn plan_lending(&self, loaded: &borrowing::Model) -> ServiceResult<BorrowingStep> {
        let state = checked_borrowing_transition(loaded, BorrowingAction::Lend)?;

        Ok(BorrowingStep {
            state,
            changes: borrowing::ActiveModel {
                state: Set(state),
                lent_at: Set(Some(self.now())),
                ..Default::default()
            },
            action: "lent",
            payload: pack(&proto::DocumentLent {
                borrowing_id: loaded.id.clone(),
                borrower_id: loaded.borrower_id.clone(),
                expected_return_date: convert::date(loaded.expected_return_date),
            }),
        })
    }

    pub(super) async fn receive_return(
        &self,
        context: &CallContext,
        request: proto::ReturnDocumentRequest,
    ) -> ServiceResult<proto::ReturnDocumentResponse> {
        let input = parse_return(&request)?;

        let plan = |loaded: &borrowing::Model| self.plan_return(loaded, &input);
        let (borrowing, event_id) = with_retries("return document", || {
            self.try_step(context, &input.borrowing_id, &plan)
        })
        .await?;

        Ok(proto::ReturnDocumentResponse {
            borrowing: Some(convert::borrowing(&borrowing)),
            event_id,
        })
    }

    fn plan_return(
        &self,
        loaded: &borrowing::Model,
        input: &ReturnInput,
    ) -> ServiceResult<BorrowingStep> {
        let state = checked_borrowing_transition(loaded, BorrowingAction::Return)?;
        let late = date_from_key(loaded.expected_return_date)
            .is_some_and(|expected| rules::is_late(self.today(), expected));

        Ok(BorrowingStep {
            state,
            changes: borrowing::ActiveModel {
                state: Set(state),
                returned_at: Set(Some(self.now())),
                return_condition: Set(Some(input.condition)),
                condition_note: Set(input.note.clone()),
                returned_late: Set(Some(late)),
                ..Default::default()
            },
            action: "returned",
            payload: pack(&proto::DocumentReturned {
                borrowing_id: loaded.id.clone(),
                condition: proto::ReturnCondition::from(input.condition) as i32,
                condition_note: input.note.clone().unwrap_or_default(),
                late,
            }),
        })
    }

    pub(super) async fn mark_lost(
        &self,
        context: &CallContext,
        request: proto::ReportLossRequest,
    ) -> ServiceResult<proto::ReportLossResponse> {
        let borrowing_id = validate::record_id("borrowing_id", &request.borrowing_id)?.to_string();
        let description = validate::text("description", &request.description, 1, 2000)?;

        let plan = |loaded: &borrowing::Model| self.plan_loss(loaded, &description);
        let (borrowing, event_id) = with_retries("report loss", || {
            self.try_step(context, &borrowing_id, &plan)
        })
        .await?;

        Ok(proto::ReportLossResponse {
            borrowing: Some(convert::borrowing(&borrowing)),
            event_id,
        })
    }

    fn plan_loss(
        &self,
        loaded: &borrowing::Model,
        description: &str,
    ) -> ServiceResult<BorrowingStep> {
        let state = checked_borrowing_transition(loaded, BorrowingAction::ReportLoss)?;

        Ok(BorrowingStep {
            state,
            changes: borrowing::ActiveModel {
                state: Set(state),
                lost_at: Set(Some(self.now())),
                loss_description: Set(Some(description.to_owned())),
                ..Default::default()
            },
            action: "lost",
            payload: pack(&proto::DocumentLost {
                borrowing_id: loaded.id.clone(),
                description: description.to_owned(),
            }),
        })
    }

    pub(super) async fn record_handling_result(
        &self,
        context: &CallContext,
        request: proto::RecordHandlingRequest,
    ) -> ServiceResult<proto::RecordHandlingResponse> {
        let borrowing_id = validate::record_id("borrowing_id", &request.borrowing_id)?.to_string();
        let result = validate::text("handling_result", &request.handling_result, 1, 2000)?;

        let plan = |loaded: &borrowing::Model| self.plan_handling(loaded, &result);
        let (borrowing, event_id) = with_retries("record handling", || {
            self.try_step(context, &borrowing_id, &plan)
        })
        .await?;

        Ok(proto::RecordHandlingResponse {
            borrowing: Some(convert::borrowing(&borrowing)),
            event_id,
        })
    }

    fn plan_handling(
        &self,
        loaded: &borrowing::Model,
        result: &str,
    ) -> ServiceResult<BorrowingStep> {
        let already_handled = loaded.handling_result.is_some();
        loaded
            .state
            .check_handling(loaded.return_condition, already_handled)
            .map_err(|state| {
                ServiceError::wrong_state("borrowing", &loaded.id, state, "record handling for")
            })?;

        Ok(BorrowingStep {
            state: loaded.state,
            changes: borrowing::ActiveModel {
                handling_result: Set(Some(result.to_owned())),
                handled_at: Set(Some(self.now())),
                ..Default::default()
            },
            action: "loss_handled",
            payload: pack(&proto::BorrowingHandled {
                borrowing_id: loaded.id.clone(),
                handling_result: result.to_owned(),
            }),
        })
    }

    /// Runs one borrowing step in one transaction: loads the borrowing, lets `plan` check
    /// the state and permissions and describe the change, writes it, and records the event
    /// on the borrowed document.
    pub(super) async fn try_step<F>(
        &self,
        context: &CallContext,
        borrowing_id: &str,
        plan: &F,
    ) -> AttemptResult<(borrowing::Model, String)>
    where
        F: Fn(&borrowing::Model) -> ServiceResult<BorrowingStep>,
    {
        let txn = self.begin().await?;
        let loaded = lock_borrowing(&txn, borrowing_id)
            .await?
            .opened(&self.keyring)
            .map_err(ServiceError::from)?;
        let document = lock_document(&txn, &loaded.document_id).await?;

        let mut step = plan(&loaded)?;
        seal_borrowing_changes(
            &self.keyring,
            document.confidentiality,
            &loaded.id,
            &mut step.changes,
        );
        if is_activation(loaded.state, step.state) {
            require_no_active_borrowing(&txn, &loaded).await?;
        }

        let borrowing = update_borrowing(&txn, &loaded, step.changes)
            .await?
            .opened(&self.keyring)
            .map_err(ServiceError::from)?;
        let (_, event_id) = self
            .record_change(
                &txn,
                context,
                &document,
                Default::default(),
                step.action,
                step.payload,
            )
            .await?;
        self.commit(txn).await?;
        Ok((borrowing, event_id))
    }
}

fn new_borrowing_row(
    document_id: &str,
    borrower_id: &str,
    application: &Application,
    now: i64,
) -> borrowing::Model {
    borrowing::Model {
        id: Uuid::now_v7().to_string(),
        document_id: document_id.to_owned(),
        borrower_id: borrower_id.to_owned(),
        reason: application.reason.clone(),
        expected_return_date: date_key(application.expected_return_date),
        state: BorrowingState::Requested,
        requested_at: now,
        approver_id: None,
        approver_opinion: None,
        decided_at: None,
        lent_at: None,
        overdue_since: None,
        returned_at: None,
        return_condition: None,
        condition_note: None,
        returned_late: None,
        lost_at: None,
        loss_description: None,
        handling_result: None,
        handled_at: None,
    }
}

fn parse_return(request: &proto::ReturnDocumentRequest) -> ServiceResult<ReturnInput> {
    let borrowing_id = validate::record_id("borrowing_id", &request.borrowing_id)?.to_string();
    let condition: proto::ReturnCondition = validate::enum_value("condition", request.condition)?;
    let condition = ReturnCondition::from_proto(condition)
        .ok_or_else(|| ServiceError::invalid("condition", "0", "is required"))?;

    let minimum = match condition {
        ReturnCondition::Damaged => 1,
        ReturnCondition::Intact => 0,
    };
    let note = validate::text("condition_note", &request.condition_note, minimum, 2000)?;

    Ok(ReturnInput {
        borrowing_id,
        condition,
        note: (!note.is_empty()).then_some(note),
    })
}

/// Returns true when a step moves a borrowing into the states that hold the document.
fn is_activation(from: BorrowingState, to: BorrowingState) -> bool {
    BorrowingState::ACTIVE.contains(&to) && !BorrowingState::ACTIVE.contains(&from)
}

/// Fails with `FAILED_PRECONDITION` when another borrowing of the same document is approved,
/// lent or overdue.
async fn require_no_active_borrowing(
    txn: &DatabaseTransaction,
    loaded: &borrowing::Model,
) -> ServiceResult<()> {
    let active = borrowing::Entity::find()
        .filter(borrowing::Column::DocumentId.eq(loaded.document_id.as_str()))
        .filter(borrowing::Column::Id.ne(loaded.id.as_str()))
        .filter(borrowing::Column::State.is_in(BorrowingState::ACTIVE))
        .one(txn)
        .await?;

    match active {
        None => Ok(()),
        Some(other) => Err(ServiceError::wrong_state(
            "document",
            &loaded.document_id,
            format!("{} under borrowing {}", other.state, other.id),
            "approve another borrowing of",
        )),
    }
}

/// Writes `changes` if the borrowing is still in the loaded state, and returns the row.
async fn update_borrowing(
    txn: &DatabaseTransaction,
    loaded: &borrowing::Model,
    changes: borrowing::ActiveModel,
) -> AttemptResult<borrowing::Model> {
    let updated = borrowing::Entity::update_many()
        .set(changes)
        .filter(borrowing::Column::Id.eq(loaded.id.as_str()))
        .filter(borrowing::Column::State.eq(loaded.state))
        .exec(txn)
        .await?;
    if updated.rows_affected == 0 {
        return Err(AttemptError::Conflict(format!(
            "borrowing {} left state {} after it was loaded",
            loaded.id, loaded.state
        )));
    }

    Ok(find_borrowing(txn, &loaded.id).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn return_request(condition: i32, note: &str) -> proto::ReturnDocumentRequest {
        proto::ReturnDocumentRequest {
            borrowing_id: Uuid::now_v7().to_string(),
            condition,
            condition_note: note.to_owned(),
        }
    }

    fn error_field<T>(result: ServiceResult<T>) -> String {
        match result {
            Err(ServiceError::InvalidArgument { field, .. }) => field,
            Err(other) => panic!("expected an invalid argument, got {other}"),
            Ok(_) => panic!("expected an invalid argument, got success"),
        }
    }

    #[test]
    fn damaged_return_needs_a_note() {
        let damaged = proto::ReturnCondition::Damaged as i32;
        let intact = proto::ReturnCondition::Intact as i32;

        assert_eq!(
            error_field(parse_return(&return_request(damaged, ""))),
            "condition_note"
        );
        assert!(parse_return(&return_request(damaged, "torn cover")).is_ok());
        assert_eq!(
            parse_return(&return_request(intact, "")).unwrap().note,
            None
        );
    }

    #[test]
    fn return_condition_is_required() {
        assert_eq!(
            error_field(parse_return(&return_request(0, ""))),
            "condition"
        );
        assert_eq!(
            error_field(parse_return(&return_request(99, ""))),
            "condition"
        );
    }

    #[test]
    fn only_approval_activates() {
        use BorrowingState as State;

        assert!(is_activation(State::Requested, State::Approved));
        assert!(!is_activation(State::Approved, State::Lent));
        assert!(!is_activation(State::Lent, State::Overdue));
        assert!(!is_activation(State::Requested, State::Rejected));
        assert!(!is_activation(State::Lent, State::Returned));
    }
}
