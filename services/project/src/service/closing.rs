//! Closing: the summary report of an accepted project, kept for future projects, and the
//! close, which needs the summary.

use sea_orm::ActiveValue::Set;
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use trace_proto::project::v1 as proto;
use trace_runtime::context::CallContext;
use trace_runtime::event::pack;
use trace_runtime::seal::Keyring;
use trace_runtime::sealed_text::SealedRow;
use trace_runtime::{ServiceResult, validate};

use super::write::{
    AttemptResult, checked_transition, find_project, require_manager, with_retries, wrong_state,
};
use super::{ProjectHandler, convert, project_id};
use crate::entity::{member, project, summary};
use crate::state::ProjectAction;

/// Maximum length of each summary section, in characters.
const REPORT_MAX_CHARS: usize = 8000;

/// A validated `SubmitSummaryRequest`.
struct NewSummary {
    project_id: String,
    lessons: String,
    results: String,
    shortcomings: String,
}

impl ProjectHandler {
    pub(super) async fn summarize(
        &self,
        context: &CallContext,
        request: proto::SubmitSummaryRequest,
    ) -> ServiceResult<proto::SubmitSummaryResponse> {
        let input = NewSummary {
            project_id: project_id(&request.project_id)?,
            lessons: validate::text("lessons", &request.lessons, 1, REPORT_MAX_CHARS)?,
            results: validate::text("results", &request.results, 1, REPORT_MAX_CHARS)?,
            shortcomings: validate::text(
                "shortcomings",
                &request.shortcomings,
                1,
                REPORT_MAX_CHARS,
            )?,
        };

        with_retries("submit summary", || self.try_summarize(context, &input)).await
    }

    async fn try_summarize(
        &self,
        context: &CallContext,
        input: &NewSummary,
    ) -> AttemptResult<proto::SubmitSummaryResponse> {
        let txn = self.begin().await?;
        let loaded = find_project(&txn, &input.project_id).await?;

        checked_transition(&loaded, ProjectAction::SubmitSummary)?;
        require_manager(&loaded, context, ProjectAction::SubmitSummary)?;
        if find_summary(&self.keyring, &txn, &loaded).await?.is_some() {
            let detail = "and its summary is already submitted";
            return Err(wrong_state(&loaded, ProjectAction::SubmitSummary, detail).into());
        }

        let row = summary::Model {
            project_id: loaded.id.clone(),
            lessons: input.lessons.clone(),
            results: input.results.clone(),
            shortcomings: input.shortcomings.clone(),
            submitted_by: context.principal.user_id.clone(),
            submitted_at: self.now(),
        };
        let payload = proto::SummarySubmitted {
            summary: Some(convert::summary(&row)),
        };
        let (project, event_id) = self
            .record_event(&txn, context, &loaded, "summary_submitted", pack(&payload))
            .await?;

        let stored = row.clone().sealed(&self.keyring, loaded.confidentiality);
        summary::Entity::insert(summary::ActiveModel::from(stored).reset_all())
            .exec_without_returning(&txn)
            .await?;
        self.commit(txn).await?;

        Ok(proto::SubmitSummaryResponse {
            project: Some(convert::project(&project)),
            summary: Some(convert::summary(&row)),
            event_id,
        })
    }

    pub(super) async fn close(
        &self,
        context: &CallContext,
        request: proto::CloseProjectRequest,
    ) -> ServiceResult<proto::CloseProjectResponse> {
        let project_id = project_id(&request.project_id)?;

        with_retries("close project", || self.try_close(context, &project_id)).await
    }

    async fn try_close(
        &self,
        context: &CallContext,
        project_id: &str,
    ) -> AttemptResult<proto::CloseProjectResponse> {
        let txn = self.begin().await?;
        let loaded = find_project(&txn, project_id).await?;

        let state = checked_transition(&loaded, ProjectAction::Close)?;
        require_manager(&loaded, context, ProjectAction::Close)?;
        if find_summary(&self.keyring, &txn, &loaded).await?.is_none() {
            return Err(wrong_state(&loaded, ProjectAction::Close, "without a summary").into());
        }

        let active_members = member::Entity::find()
            .filter(member::Column::ProjectId.eq(loaded.id.as_str()))
            .filter(member::Column::ActiveSlot.eq(member::ACTIVE))
            .count(&txn)
            .await?;
        let payload = proto::ProjectClosed {
            active_members: u32::try_from(active_members).unwrap_or(u32::MAX),
        };
        let changes = project::ActiveModel {
            state: Set(state),
            closed_at: Set(Some(self.now())),
            ..Default::default()
        };
        let (project, event_id) = self
            .record_change(&txn, context, &loaded, changes, "closed", pack(&payload))
            .await?;
        self.commit(txn).await?;

        Ok(proto::CloseProjectResponse {
            project: Some(convert::project(&project)),
            event_id,
        })
    }
}

pub(super) async fn find_summary<C: sea_orm::ConnectionTrait>(
    keyring: &Keyring,
    connection: &C,
    project: &project::Model,
) -> ServiceResult<Option<summary::Model>> {
    let row = summary::Entity::find_by_id(project.id.clone())
        .one(connection)
        .await?;
    Ok(row.map(|row| row.opened(keyring)).transpose()?)
}
