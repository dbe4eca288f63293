//! Monitoring: progress reports from the regular progress meetings, updates of project
//! documents kept in the document service, and key decisions and technical changes with
//! their approval.

use chrono::NaiveDate;
use sea_orm::{
    ActiveEnum, ActiveModelTrait, ColumnTrait, DatabaseTransaction, EntityTrait, QueryFilter,
};
use trace_proto::project::v1 as proto;
use trace_runtime::clock::date_key;
use trace_runtime::context::CallContext;
use trace_runtime::event::pack;
use trace_runtime::seal::Keyring;
use trace_runtime::sealed_text::SealedRow;
use trace_runtime::{ServiceError, ServiceResult, validate};
use uuid::Uuid;

use super::write::{
    AttemptResult, checked_transition, find_project, require, require_team, with_retries,
};
use super::{ProjectHandler, convert, project_id};
use crate::entity::{decision, document_update, progress};
use crate::state::{ApprovalDecision, DecisionKind, DecisionState, DocumentKind, ProjectAction};

/// Maximum length of progress text, problems, solutions, decision process, reason, content
/// and approval opinion, in characters.
const REPORT_MAX_CHARS: usize = 4000;
/// Maximum length of a document update summary.
const SUMMARY_MAX_CHARS: usize = 2000;

/// A validated `RecordProgressRequest`.
struct NewProgress {
    project_id: String,
    period_start: NaiveDate,
    period_end: NaiveDate,
    progress: String,
    problems: String,
    solutions: String,
    meeting_id: Option<String>,
}

/// A validated `RecordDocumentUpdateRequest`.
struct NewDocumentUpdate {
    project_id: String,
    kind: DocumentKind,
    document_id: String,
    summary: String,
}

/// A validated `RecordDecisionRequest`.
struct NewDecision {
    project_id: String,
    kind: DecisionKind,
    process: String,
    reason: String,
    content: String,
    approver_id: String,
}

/// A validated `ApproveDecisionRequest`.
struct DecisionReview {
    project_id: String,
    decision_id: String,
    decision: ApprovalDecision,
    opinion: String,
}

impl ProjectHandler {
    pub(super) async fn report_progress(
        &self,
        context: &CallContext,
        request: proto::RecordProgressRequest,
    ) -> ServiceResult<proto::RecordProgressResponse> {
        let input = self.parse_progress(&request)?;

        with_retries("record progress", || {
            self.try_report_progress(context, &input)
        })
        .await
    }

    fn parse_progress(&self, request: &proto::RecordProgressRequest) -> ServiceResult<NewProgress> {
        let period_start = validate::date("period_start", request.period_start.as_ref())?;
        let period_end = validate::date("period_end", request.period_end.as_ref())?;
        if period_end < period_start {
            return Err(ServiceError::invalid(
                "period_end",
                &period_end.to_string(),
                format!("must not be before period_start ({period_start})"),
            ));
        }
        let today = self.today();
        if period_end > today {
            return Err(ServiceError::invalid(
                "period_end",
                &period_end.to_string(),
                format!("must not be after today ({today}); report progress that happened"),
            ));
        }
        let meeting_id = match request.meeting_id.as_str() {
            "" => None,
            id => Some(validate::record_id("meeting_id", id)?.to_string()),
        };
        Ok(NewProgress {
            project_id: project_id(&request.project_id)?,
            period_start,
            period_end,
            progress: validate::text("progress", &request.progress, 1, REPORT_MAX_CHARS)?,
            problems: validate::text("problems", &request.problems, 0, REPORT_MAX_CHARS)?,
            solutions: validate::text("solutions", &request.solutions, 0, REPORT_MAX_CHARS)?,
            meeting_id,
        })
    }

    async fn try_report_progress(
        &self,
        context: &CallContext,
        input: &NewProgress,
    ) -> AttemptResult<proto::RecordProgressResponse> {
        let txn = self.begin().await?;
        let loaded = find_project(&txn, &input.project_id).await?;

        checked_transition(&loaded, ProjectAction::RecordProgress)?;
        require_team(&txn, &loaded, context, ProjectAction::RecordProgress).await?;

        let report = progress::Model {
            id: Uuid::now_v7().to_string(),
            project_id: loaded.id.clone(),
            period_start: date_key(input.period_start),
            period_end: date_key(input.period_end),
            progress: input.progress.clone(),
            problems: input.problems.clone(),
            solutions: input.solutions.clone(),
            meeting_id: input.meeting_id.clone(),
            reported_by: context.principal.user_id.clone(),
            reported_at: self.now(),
        };
        let payload = proto::ProgressRecorded {
            report: Some(convert::progress(&report)),
        };
        let (project, event_id) = self
            .record_event(&txn, context, &loaded, "progress_recorded", pack(&payload))
            .await?;

        let stored = report.clone().sealed(&self.keyring, loaded.confidentiality);
        progress::Entity::insert(progress::ActiveModel::from(stored).reset_all())
            .exec_without_returning(&txn)
            .await?;
        self.commit(txn).await?;

        Ok(proto::RecordProgressResponse {
            project: Some(convert::project(&project)),
            report: Some(convert::progress(&report)),
            event_id,
        })
    }

    pub(super) async fn record_document(
        &self,
        context: &CallContext,
        request: proto::RecordDocumentUpdateRequest,
    ) -> ServiceResult<proto::RecordDocumentUpdateResponse> {
        let kind: proto::DocumentKind = validate::enum_value("kind", request.kind)?;
        let input = NewDocumentUpdate {
            project_id: project_id(&request.project_id)?,
            kind: DocumentKind::from_proto(kind)
                .ok_or_else(|| ServiceError::invalid("kind", "0", "is required"))?,
            document_id: validate::record_id("document_id", &request.document_id)?.to_string(),
            summary: validate::text("summary", &request.summary, 1, SUMMARY_MAX_CHARS)?,
        };

        with_retries("record document update", || {
            self.try_record_document(context, &input)
        })
        .await
    }

    async fn try_record_document(
        &self,
        context: &CallContext,
        input: &NewDocumentUpdate,
    ) -> AttemptResult<proto::RecordDocumentUpdateResponse> {
        let txn = self.begin().await?;
        let loaded = find_project(&txn, &input.project_id).await?;

        checked_transition(&loaded, ProjectAction::UpdateDocument)?;
        require_team(&txn, &loaded, context, ProjectAction::UpdateDocument).await?;

        let update = document_update::Model {
            id: Uuid::now_v7().to_string(),
            project_id: loaded.id.clone(),
            kind: input.kind,
            document_id: input.document_id.clone(),
            summary: input.summary.clone(),
            updated_by: context.principal.user_id.clone(),
            updated_at: self.now(),
        };
        let payload = proto::DocumentUpdated {
            update: Some(convert::document_update(&update)),
        };
        let (project, event_id) = self
            .record_event(&txn, context, &loaded, "document_updated", pack(&payload))
            .await?;

        let stored = update.clone().sealed(&self.keyring, loaded.confidentiality);
        let row = document_update::ActiveModel::from(stored).reset_all();
        document_update::Entity::insert(row)
            .exec_without_returning(&txn)
            .await?;
        self.commit(txn).await?;

        Ok(proto::RecordDocumentUpdateResponse {
            project: Some(convert::project(&project)),
            update: Some(convert::document_update(&update)),
            event_id,
        })
    }

    pub(super) async fn propose_decision(
        &self,
        context: &CallContext,
        request: proto::RecordDecisionRequest,
    ) -> ServiceResult<proto::RecordDecisionResponse> {
        let kind: proto::DecisionKind = validate::enum_value("kind", request.kind)?;
        let approver_id = validate::user_id("approver_id", &request.approver_id)?;
        if approver_id == context.principal.user_id {
            return Err(ServiceError::invalid(
                "approver_id",
                &approver_id,
                "must differ from the caller; choose another approver",
            ));
        }
        let input = NewDecision {
            project_id: project_id(&request.project_id)?,
            kind: DecisionKind::from_proto(kind)
                .ok_or_else(|| ServiceError::invalid("kind", "0", "is required"))?,
            process: validate::text("process", &request.process, 1, REPORT_MAX_CHARS)?,
            reason: validate::text("reason", &request.reason, 1, REPORT_MAX_CHARS)?,
            content: validate::text("content", &request.content, 1, REPORT_MAX_CHARS)?,
            approver_id,
        };

        with_retries("record decision", || {
            self.try_propose_decision(context, &input)
        })
        .await
    }

    async fn try_propose_decision(
        &self,
        context: &CallContext,
        input: &NewDecision,
    ) -> AttemptResult<proto::RecordDecisionResponse> {
        let txn = self.begin().await?;
        let loaded = find_project(&txn, &input.project_id).await?;

        checked_transition(&loaded, ProjectAction::RecordDecision)?;
        require_team(&txn, &loaded, context, ProjectAction::RecordDecision).await?;

        let decision = decision::Model {
            id: Uuid::now_v7().to_string(),
            project_id: loaded.id.clone(),
            kind: input.kind,
            process: input.process.clone(),
            reason: input.reason.clone(),
            content: input.content.clone(),
            approver_id: input.approver_id.clone(),
            state: DecisionState::Pending,
            recorded_by: context.principal.user_id.clone(),
            recorded_at: self.now(),
            approval_opinion: None,
            decided_at: None,
        };
        let payload = proto::DecisionRecorded {
            decision: Some(convert::decision(&decision)),
        };
        let (project, event_id) = self
            .record_event(&txn, context, &loaded, "decision_recorded", pack(&payload))
            .await?;

        let stored = decision
            .clone()
            .sealed(&self.keyring, loaded.confidentiality);
        decision::Entity::insert(decision::ActiveModel::from(stored).reset_all())
            .exec_without_returning(&txn)
            .await?;
        self.commit(txn).await?;

        Ok(proto::RecordDecisionResponse {
            project: Some(convert::project(&project)),
            decision: Some(convert::decision(&decision)),
            event_id,
        })
    }

    pub(super) async fn review_decision(
        &self,
        context: &CallContext,
        request: proto::ApproveDecisionRequest,
    ) -> ServiceResult<proto::ApproveDecisionResponse> {
        let decision: proto::ApprovalDecision = validate::enum_value("decision", request.decision)?;
        let input = DecisionReview {
            project_id: project_id(&request.project_id)?,
            decision_id: validate::record_id("decision_id", &request.decision_id)?.to_string(),
            decision: ApprovalDecision::from_proto(decision)
                .ok_or_else(|| ServiceError::invalid("decision", "0", "is required"))?,
            opinion: validate::text("opinion", &request.opinion, 1, REPORT_MAX_CHARS)?,
        };

        with_retries("approve decision", || {
            self.try_review_decision(context, &input)
        })
        .await
    }

    async fn try_review_decision(
        &self,
        context: &CallContext,
        input: &DecisionReview,
    ) -> AttemptResult<proto::ApproveDecisionResponse> {
        let txn = self.begin().await?;
        let loaded = find_project(&txn, &input.project_id).await?;

        checked_transition(&loaded, ProjectAction::ApproveDecision)?;
        let pending = find_pending_decision(&self.keyring, &txn, input, context).await?;

        let (state, action) = match input.decision {
            ApprovalDecision::Approve => (DecisionState::Approved, "decision_approved"),
            ApprovalDecision::Reject => (DecisionState::Rejected, "decision_rejected"),
        };
        let payload = proto::DecisionApproved {
            decision_id: pending.id.clone(),
            decision: input.decision.to_proto(),
            opinion: input.opinion.clone(),
        };
        let (project, event_id) = self
            .record_event(&txn, context, &loaded, action, pack(&payload))
            .await?;

        let decided = decision::Model {
            state,
            approval_opinion: Some(input.opinion.clone()),
            decided_at: Some(self.now()),
            ..pending
        };
        decision::ActiveModel::from(
            decided
                .clone()
                .sealed(&self.keyring, loaded.confidentiality),
        )
        .reset_all()
        .update(&txn)
        .await?;
        self.commit(txn).await?;

        Ok(proto::ApproveDecisionResponse {
            project: Some(convert::project(&project)),
            decision: Some(convert::decision(&decided)),
            event_id,
        })
    }
}

/// Loads the decision under review: `NOT_FOUND` unless it belongs to the project,
/// `FAILED_PRECONDITION` unless it is pending, `PERMISSION_DENIED` unless the caller is its
/// named approver.
async fn find_pending_decision(
    keyring: &Keyring,
    txn: &DatabaseTransaction,
    input: &DecisionReview,
    context: &CallContext,
) -> AttemptResult<decision::Model> {
    let pending = decision::Entity::find_by_id(input.decision_id.clone())
        .filter(decision::Column::ProjectId.eq(input.project_id.as_str()))
        .one(txn)
        .await?
        .ok_or_else(|| ServiceError::not_found("decision", &input.decision_id))?
        .opened(keyring)?;
    if pending.state != DecisionState::Pending {
        return Err(ServiceError::wrong_state(
            "decision",
            &pending.id,
            pending.state.to_value(),
            "approve",
        )
        .into());
    }
    let caller = &context.principal.user_id;
    require(*caller == pending.approver_id, || {
        format!(
            "decision {} awaits approval by {}, not by {caller}",
            pending.id, pending.approver_id
        )
    })?;
    Ok(pending)
}
