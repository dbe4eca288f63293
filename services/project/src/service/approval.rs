//! Approval of an application round: each approver of the chain decides in order, a
//! required rejection rejects the round, and the last decision without one approves it.

use sea_orm::ActiveValue::Set;
use sea_orm::{ColumnTrait, DatabaseTransaction, EntityTrait, QueryFilter, QueryOrder};
use trace_proto::project::v1 as proto;
use trace_runtime::context::CallContext;
use trace_runtime::event::pack;
use trace_runtime::seal::Keyring;
use trace_runtime::sealed_text::{SealedRow, open_rows};
use trace_runtime::{ServiceError, ServiceResult, validate};

use super::write::{
    AttemptError, AttemptResult, checked_transition, find_project, require, with_retries,
    wrong_state,
};
use super::{ProjectHandler, convert, project_id};
use crate::entity::{approval, project};
use crate::rules::{ChainStatus, ChainStep, evaluate_chain};
use crate::state::{ApprovalDecision, ProjectAction, ProjectState};

/// Maximum length of an approver opinion.
const OPINION_MAX_CHARS: usize = 4000;

/// A validated `RecordApprovalRequest`.
struct ApprovalInput {
    project_id: String,
    decision: ApprovalDecision,
    opinion: String,
}

impl ProjectHandler {
    pub(super) async fn decide_application(
        &self,
        context: &CallContext,
        request: proto::RecordApprovalRequest,
    ) -> ServiceResult<proto::RecordApprovalResponse> {
        let decision: proto::ApprovalDecision = validate::enum_value("decision", request.decision)?;
        let input = ApprovalInput {
            project_id: project_id(&request.project_id)?,
            decision: ApprovalDecision::from_proto(decision)
                .ok_or_else(|| ServiceError::invalid("decision", "0", "is required"))?,
            opinion: validate::text("opinion", &request.opinion, 1, OPINION_MAX_CHARS)?,
        };

        with_retries("record approval", || {
            self.try_decide_application(context, &input)
        })
        .await
    }

    async fn try_decide_application(
        &self,
        context: &CallContext,
        input: &ApprovalInput,
    ) -> AttemptResult<proto::RecordApprovalResponse> {
        let now = self.now();
        let txn = self.begin().await?;
        let loaded = find_project(&txn, &input.project_id).await?;
        if loaded.state != ProjectState::InApproval {
            return Err(wrong_state(&loaded, ProjectAction::RecordApproval, "").into());
        }

        let mut chain = round_approvals(&self.keyring, &txn, &loaded).await?;
        let index = turn_of(&loaded, &chain, context)?;
        chain[index].decision = Some(input.decision);
        chain[index].opinion = Some(input.opinion.clone());
        chain[index].decided_at = Some(now);

        let outcome = RoundOutcome::of(&chain);
        let state = checked_transition(&loaded, outcome.action)?;
        let changes = project::ActiveModel {
            state: Set(state),
            next_approver_id: Set(outcome.next_approver_id.clone()),
            approved_at: Set((state == ProjectState::Approved).then_some(now)),
            ..Default::default()
        };
        let decided = &chain[index];
        let payload = proto::ApprovalRecorded {
            round: convert::count(decided.round),
            position: convert::count(decided.position),
            required: decided.required,
            decision: input.decision.to_proto(),
            opinion: input.opinion.clone(),
            state_after: proto::ProjectState::from(state) as i32,
            next_approver_id: outcome.next_approver_id.clone().unwrap_or_default(),
        };
        let (project, event_id) = self
            .record_change(
                &txn,
                context,
                &loaded,
                changes,
                "approval_recorded",
                pack(&payload),
            )
            .await?;

        save_decision(&txn, decided, &self.keyring, loaded.confidentiality).await?;
        self.commit(txn).await?;

        Ok(proto::RecordApprovalResponse {
            project: Some(convert::project(&project)),
            approval: Some(convert::approval(decided)),
            event_id,
        })
    }
}

/// Effect of one more decision on a round: the transition and the next approver.
struct RoundOutcome {
    action: ProjectAction,
    next_approver_id: Option<String>,
}

impl RoundOutcome {
    fn of(chain: &[approval::Model]) -> Self {
        let steps: Vec<ChainStep> = chain.iter().map(chain_step).collect();
        match evaluate_chain(&steps) {
            ChainStatus::Waiting { index } => Self {
                action: ProjectAction::RecordApproval,
                next_approver_id: Some(chain[index].approver_id.clone()),
            },
            ChainStatus::Approved => Self {
                action: ProjectAction::CompleteApproval,
                next_approver_id: None,
            },
            ChainStatus::Rejected { .. } => Self {
                action: ProjectAction::RejectApplication,
                next_approver_id: None,
            },
        }
    }
}

fn chain_step(row: &approval::Model) -> ChainStep {
    ChainStep {
        approver_id: row.approver_id.clone(),
        required: row.required,
        decision: row.decision,
    }
}

/// Returns the index of the approver whose turn it is; `PERMISSION_DENIED` for anyone else.
fn turn_of(
    project: &project::Model,
    chain: &[approval::Model],
    context: &CallContext,
) -> ServiceResult<usize> {
    let steps: Vec<ChainStep> = chain.iter().map(chain_step).collect();
    let ChainStatus::Waiting { index } = evaluate_chain(&steps) else {
        // The state is IN_APPROVAL, so an undecided step must exist.
        return Err(ServiceError::Internal(anyhow::anyhow!(
            "project {} is IN_APPROVAL but round {} has no undecided approver",
            project.id,
            project.round
        )));
    };
    let caller = &context.principal.user_id;
    let expected = &chain[index];
    require(*caller == expected.approver_id, || {
        format!(
            "it is the turn of approver {} (position {} of {}) in round {} of project {}, not of {caller}",
            expected.approver_id,
            expected.position,
            chain.len(),
            project.round,
            project.id
        )
    })?;
    Ok(index)
}

/// Loads the approval chain of the project's current round, in order.
async fn round_approvals(
    keyring: &Keyring,
    txn: &DatabaseTransaction,
    project: &project::Model,
) -> AttemptResult<Vec<approval::Model>> {
    let rows = approval::Entity::find()
        .filter(approval::Column::ProjectId.eq(project.id.as_str()))
        .filter(approval::Column::Round.eq(project.round))
        .order_by_asc(approval::Column::Position)
        .all(txn)
        .await?;
    Ok(open_rows(keyring, rows)?)
}

/// Stores one approver's decision. The row must still be undecided; the project's version
/// check already serialises decisions, so this guards only against a corrupt chain.
async fn save_decision(
    txn: &DatabaseTransaction,
    decided: &approval::Model,
    keyring: &Keyring,
    confidentiality: i32,
) -> AttemptResult<()> {
    let sealed = decided.clone().sealed(keyring, confidentiality);
    let changes = approval::ActiveModel {
        decision: Set(decided.decision),
        opinion: Set(sealed.opinion),
        decided_at: Set(decided.decided_at),
        ..Default::default()
    };
    let updated = approval::Entity::update_many()
        .set(changes)
        .filter(approval::Column::ProjectId.eq(decided.project_id.as_str()))
        .filter(approval::Column::Round.eq(decided.round))
        .filter(approval::Column::Position.eq(decided.position))
        .filter(approval::Column::Decision.is_null())
        .exec(txn)
        .await?;
    if updated.rows_affected == 0 {
        return Err(AttemptError::Conflict(format!(
            "approval {} of round {} of project {} was decided concurrently",
            decided.position, decided.round, decided.project_id
        )));
    }
    Ok(())
}
