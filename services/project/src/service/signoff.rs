//! Sign-offs of the acceptance group and the group lead's result: PASSED moves the project
//! to ACCEPTED, FAILED returns it to ACTIVE.

use sea_orm::ActiveModelTrait;
use sea_orm::ActiveValue::Set;
use trace_proto::project::v1 as proto;
use trace_runtime::context::CallContext;
use trace_runtime::event::pack;
use trace_runtime::sealed_text::SealedRow;
use trace_runtime::{ServiceError, ServiceResult, validate};

use super::acceptance::{group_members, open_acceptance};
use super::write::{
    AttemptResult, checked_transition, find_project, require, with_retries, wrong_state,
};
use super::{ProjectHandler, convert, project_id};
use crate::entity::{acceptance, group_member, project};
use crate::rules::{SignOffStep, check_acceptance_result};
use crate::state::{AcceptanceResult, ProjectAction, SignOffVerdict};

/// Maximum length of opinions and open issues, in characters.
const OPINION_MAX_CHARS: usize = 4000;

/// A validated `SignOffRequest` or `RecordAcceptanceResultRequest`: the verdict or result,
/// the opinion and the open issues.
struct Verdict<T> {
    project_id: String,
    value: T,
    opinion: String,
    open_issues: String,
}

impl ProjectHandler {
    pub(super) async fn sign(
        &self,
        context: &CallContext,
        request: proto::SignOffRequest,
    ) -> ServiceResult<proto::SignOffResponse> {
        let verdict: proto::SignOffVerdict = validate::enum_value("verdict", request.verdict)?;
        let input = Verdict {
            project_id: project_id(&request.project_id)?,
            value: SignOffVerdict::from_proto(verdict)
                .ok_or_else(|| ServiceError::invalid("verdict", "0", "is required"))?,
            opinion: validate::text("opinion", &request.opinion, 1, OPINION_MAX_CHARS)?,
            open_issues: validate::text("open_issues", &request.open_issues, 0, OPINION_MAX_CHARS)?,
        };

        with_retries("sign off", || self.try_sign(context, &input)).await
    }

    async fn try_sign(
        &self,
        context: &CallContext,
        input: &Verdict<SignOffVerdict>,
    ) -> AttemptResult<proto::SignOffResponse> {
        let txn = self.begin().await?;
        let loaded = find_project(&txn, &input.project_id).await?;

        checked_transition(&loaded, ProjectAction::SignOff)?;
        let open = open_acceptance(&self.keyring, &txn, &loaded).await?;
        let mut members = group_members(&self.keyring, &txn, &open).await?;
        let index = signer_index(&loaded, &members, context)?;

        let signer = &mut members[index];
        signer.verdict = Some(input.value);
        signer.opinion = Some(input.opinion.clone());
        signer.open_issues = Some(input.open_issues.clone());
        signer.signed_at = Some(self.now());
        let payload = proto::SignedOff {
            acceptance_id: open.id.clone(),
            position: convert::count(signer.position),
            verdict: input.value.to_proto(),
            opinion: input.opinion.clone(),
            open_issues: input.open_issues.clone(),
        };
        let (project, event_id) = self
            .record_event(&txn, context, &loaded, "signed_off", pack(&payload))
            .await?;

        group_member::ActiveModel::from(
            signer.clone().sealed(&self.keyring, loaded.confidentiality),
        )
        .reset_all()
        .update(&txn)
        .await?;
        self.commit(txn).await?;

        Ok(proto::SignOffResponse {
            project: Some(convert::project(&project)),
            acceptance: Some(convert::acceptance(&open, &members)),
            event_id,
        })
    }

    pub(super) async fn decide_acceptance(
        &self,
        context: &CallContext,
        request: proto::RecordAcceptanceResultRequest,
    ) -> ServiceResult<proto::RecordAcceptanceResultResponse> {
        let result: proto::AcceptanceResult = validate::enum_value("result", request.result)?;
        let input = Verdict {
            project_id: project_id(&request.project_id)?,
            value: AcceptanceResult::from_proto(result)
                .ok_or_else(|| ServiceError::invalid("result", "0", "is required"))?,
            opinion: validate::text(
                "group_opinion",
                &request.group_opinion,
                1,
                OPINION_MAX_CHARS,
            )?,
            open_issues: validate::text("open_issues", &request.open_issues, 0, OPINION_MAX_CHARS)?,
        };

        with_retries("record acceptance result", || {
            self.try_decide_acceptance(context, &input)
        })
        .await
    }

    async fn try_decide_acceptance(
        &self,
        context: &CallContext,
        input: &Verdict<AcceptanceResult>,
    ) -> AttemptResult<proto::RecordAcceptanceResultResponse> {
        let now = self.now();
        let txn = self.begin().await?;
        let loaded = find_project(&txn, &input.project_id).await?;

        let action = match input.value {
            AcceptanceResult::Passed => ProjectAction::PassAcceptance,
            AcceptanceResult::Failed => ProjectAction::FailAcceptance,
        };
        let state = checked_transition(&loaded, action)?;
        let open = open_acceptance(&self.keyring, &txn, &loaded).await?;
        let members = group_members(&self.keyring, &txn, &open).await?;
        check_result_allowed(&loaded, &members, input.value, context, action)?;

        let payload = proto::AcceptanceDecided {
            acceptance_id: open.id.clone(),
            result: input.value.to_proto(),
            group_opinion: input.opinion.clone(),
            open_issues: input.open_issues.clone(),
            state_after: proto::ProjectState::from(state) as i32,
        };
        let changes = project::ActiveModel {
            state: Set(state),
            ..Default::default()
        };
        let (project, event_id) = self
            .record_change(
                &txn,
                context,
                &loaded,
                changes,
                "acceptance_decided",
                pack(&payload),
            )
            .await?;

        let decided = acceptance::Model {
            result: Some(input.value),
            group_opinion: Some(input.opinion.clone()),
            open_issues: Some(input.open_issues.clone()),
            decided_by: Some(context.principal.user_id.clone()),
            decided_at: Some(now),
            ..open
        };
        acceptance::ActiveModel::from(
            decided
                .clone()
                .sealed(&self.keyring, loaded.confidentiality),
        )
        .reset_all()
        .update(&txn)
        .await?;
        self.commit(txn).await?;

        Ok(proto::RecordAcceptanceResultResponse {
            project: Some(convert::project(&project)),
            acceptance: Some(convert::acceptance(&decided, &members)),
            event_id,
        })
    }
}

/// Returns the caller's index in the group: `FAILED_PRECONDITION` without a group or after
/// the caller signed, `PERMISSION_DENIED` for a caller outside the group.
fn signer_index(
    project: &project::Model,
    members: &[group_member::Model],
    context: &CallContext,
) -> ServiceResult<usize> {
    if members.is_empty() {
        return Err(wrong_state(
            project,
            ProjectAction::SignOff,
            "without an acceptance group",
        ));
    }
    let caller = &context.principal.user_id;
    let Some(index) = members.iter().position(|member| member.user_id == *caller) else {
        return Err(ServiceError::denied(format!(
            "{caller} is not a member of the acceptance group of project {}",
            project.id
        )));
    };
    if members[index].verdict.is_some() {
        let detail = format!("and {caller} already signed off");
        return Err(wrong_state(project, ProjectAction::SignOff, &detail));
    }
    Ok(index)
}

/// Only the group lead records the result, and only as [`check_acceptance_result`] allows.
fn check_result_allowed(
    project: &project::Model,
    members: &[group_member::Model],
    result: AcceptanceResult,
    context: &CallContext,
    action: ProjectAction,
) -> ServiceResult<()> {
    let caller = &context.principal.user_id;
    if let Some(lead) = members.first() {
        require(lead.user_id == *caller, || {
            format!(
                "only the group lead {} may record the acceptance result of project {}, not {caller}",
                lead.user_id, project.id
            )
        })?;
    }
    let steps: Vec<SignOffStep> = members
        .iter()
        .map(|member| SignOffStep {
            user_id: member.user_id.clone(),
            verdict: member.verdict,
        })
        .collect();
    check_acceptance_result(&steps, result).map_err(|detail| wrong_state(project, action, &detail))
}
