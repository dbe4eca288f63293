//! Initiation: the application with its approval chain, resubmission after a rejection as
//! a new round, and the start of an approved project.

use sea_orm::ActiveValue::Set;
use sea_orm::{ActiveModelTrait, DatabaseTransaction, DbErr, EntityTrait};
use trace_proto::project::v1 as proto;
use trace_runtime::clock::{date_key, proto_date, timestamp};
use trace_runtime::context::CallContext;
use trace_runtime::event::pack;
use trace_runtime::seal::Keyring;
use trace_runtime::sealed_text::SealedRow;
use trace_runtime::{ServiceError, ServiceResult};
use uuid::Uuid;

use super::input::{self, ApplicationInput};
use super::write::{
    AttemptResult, checked_transition, find_project, require_manager, with_retries,
};
use super::{ProjectHandler, convert, project_id};
use crate::entity::{application, approval, milestone, project, task};
use crate::state::{ProjectAction, ProjectState};

impl ProjectHandler {
    pub(super) async fn submit(
        &self,
        context: &CallContext,
        request: proto::SubmitApplicationRequest,
    ) -> ServiceResult<proto::SubmitApplicationResponse> {
        let applicant = &context.principal.user_id;
        let input = input::application(&request, "", applicant, self.today())?;

        let project_id = Uuid::now_v7().to_string();
        with_retries("submit application", || {
            self.try_submit(context, &project_id, &input)
        })
        .await
    }

    async fn try_submit(
        &self,
        context: &CallContext,
        project_id: &str,
        input: &ApplicationInput,
    ) -> AttemptResult<proto::SubmitApplicationResponse> {
        let now = self.now();
        let applicant = &context.principal.user_id;
        let project = project::Model {
            id: project_id.to_owned(),
            name: input.name.clone(),
            department: input.department.clone(),
            confidentiality: input.confidentiality as i32,
            state: ProjectState::InApproval,
            manager_id: applicant.clone(),
            round: 1,
            next_approver_id: first_approver(input),
            submitted_at: now,
            approved_at: None,
            started_at: None,
            closed_at: None,
            entity_version: 1,
        };
        let txn = self.begin().await?;

        let row = project::ActiveModel::from(project.clone()).reset_all();
        project::Entity::insert(row)
            .exec_without_returning(&txn)
            .await?;
        insert_round(&self.keyring, &txn, project_id, 1, input, applicant, now).await?;

        let payload = submitted_payload(input, 1, applicant, now);
        let event_id = self
            .stage_event(&txn, context, &project, "submitted", pack(&payload))
            .await?;
        self.commit(txn).await?;

        Ok(proto::SubmitApplicationResponse {
            project: Some(convert::project(&project)),
            event_id,
        })
    }

    pub(super) async fn resubmit(
        &self,
        context: &CallContext,
        request: proto::ResubmitApplicationRequest,
    ) -> ServiceResult<proto::ResubmitApplicationResponse> {
        let project_id = project_id(&request.project_id)?;
        let Some(application) = request.application.as_ref() else {
            return Err(ServiceError::invalid("application", "", "is required"));
        };
        let applicant = &context.principal.user_id;
        let input = input::application(application, "application.", applicant, self.today())?;

        with_retries("resubmit application", || {
            self.try_resubmit(context, &project_id, &input)
        })
        .await
    }

    async fn try_resubmit(
        &self,
        context: &CallContext,
        project_id: &str,
        input: &ApplicationInput,
    ) -> AttemptResult<proto::ResubmitApplicationResponse> {
        let now = self.now();
        let txn = self.begin().await?;
        let loaded = find_project(&txn, project_id).await?;

        let state = checked_transition(&loaded, ProjectAction::Resubmit)?;
        require_manager(&loaded, context, ProjectAction::Resubmit)?;

        let round = loaded.round + 1;
        let changes = project::ActiveModel {
            state: Set(state),
            round: Set(round),
            name: Set(input.name.clone()),
            department: Set(input.department.clone()),
            confidentiality: Set(input.confidentiality as i32),
            next_approver_id: Set(first_approver(input)),
            ..Default::default()
        };
        let payload = submitted_payload(input, round, &context.principal.user_id, now);
        let (project, event_id) = self
            .record_change(
                &txn,
                context,
                &loaded,
                changes,
                "resubmitted",
                pack(&payload),
            )
            .await?;

        insert_round(
            &self.keyring,
            &txn,
            project_id,
            round,
            input,
            &context.principal.user_id,
            now,
        )
        .await?;
        self.commit(txn).await?;

        Ok(proto::ResubmitApplicationResponse {
            project: Some(convert::project(&project)),
            event_id,
        })
    }

    pub(super) async fn start(
        &self,
        context: &CallContext,
        request: proto::StartProjectRequest,
    ) -> ServiceResult<proto::StartProjectResponse> {
        let project_id = project_id(&request.project_id)?;

        with_retries("start project", || self.try_start(context, &project_id)).await
    }

    async fn try_start(
        &self,
        context: &CallContext,
        project_id: &str,
    ) -> AttemptResult<proto::StartProjectResponse> {
        let txn = self.begin().await?;
        let loaded = find_project(&txn, project_id).await?;

        let state = checked_transition(&loaded, ProjectAction::Start)?;
        require_manager(&loaded, context, ProjectAction::Start)?;

        let changes = project::ActiveModel {
            state: Set(state),
            started_at: Set(Some(self.now())),
            ..Default::default()
        };
        let payload = proto::ProjectStarted {
            application_round: convert::count(loaded.round),
        };
        let (project, event_id) = self
            .record_change(&txn, context, &loaded, changes, "started", pack(&payload))
            .await?;
        self.commit(txn).await?;

        Ok(proto::StartProjectResponse {
            project: Some(convert::project(&project)),
            event_id,
        })
    }
}

fn first_approver(input: &ApplicationInput) -> Option<String> {
    input
        .approval_chain
        .first()
        .map(|entry| entry.approver_id.clone())
}

fn submitted_payload(
    input: &ApplicationInput,
    round: i32,
    submitted_by: &str,
    submitted_at: i64,
) -> proto::ApplicationSubmitted {
    let application = proto::Application {
        round: convert::count(round),
        name: input.name.clone(),
        department: input.department.clone(),
        background: input.background.clone(),
        goals: input.goals.clone(),
        tasks: input.tasks.clone(),
        milestones: input
            .milestones
            .iter()
            .map(|(name, due_date)| proto::Milestone {
                name: name.clone(),
                due_date: Some(proto_date(*due_date)),
            })
            .collect(),
        resource_needs: input.resource_needs.clone(),
        expected_results: input.expected_results.clone(),
        submitted_by: submitted_by.to_owned(),
        submitted_at: Some(timestamp(submitted_at)),
    };
    proto::ApplicationSubmitted {
        application: Some(application),
        confidentiality: input.confidentiality as i32,
        approval_chain: input.approval_chain.clone(),
    }
}

/// Inserts the application, tasks, milestones and approval chain of one round.
async fn insert_round(
    keyring: &Keyring,
    txn: &DatabaseTransaction,
    project_id: &str,
    round: i32,
    input: &ApplicationInput,
    submitted_by: &str,
    submitted_at: i64,
) -> Result<(), DbErr> {
    let application = application::Model {
        project_id: project_id.to_owned(),
        round,
        name: input.name.clone(),
        department: input.department.clone(),
        background: input.background.clone(),
        goals: input.goals.clone(),
        resource_needs: input.resource_needs.clone(),
        expected_results: input.expected_results.clone(),
        submitted_by: submitted_by.to_owned(),
        submitted_at,
    };
    let confidentiality = input.confidentiality as i32;
    let stored = application.sealed(keyring, confidentiality);
    application::Entity::insert(application::ActiveModel::from(stored).reset_all())
        .exec_without_returning(txn)
        .await?;

    insert_tasks(keyring, txn, project_id, round, input).await?;
    insert_milestones(txn, project_id, round, input).await?;
    insert_chain(txn, project_id, round, input).await
}

async fn insert_tasks(
    keyring: &Keyring,
    txn: &DatabaseTransaction,
    project_id: &str,
    round: i32,
    input: &ApplicationInput,
) -> Result<(), DbErr> {
    let tasks = input.tasks.iter().zip(1..).map(|(item, position)| {
        let row = task::Model {
            project_id: project_id.to_owned(),
            round,
            position,
            title: item.title.clone(),
            description: item.description.clone(),
        };
        task::ActiveModel::from(row.sealed(keyring, input.confidentiality as i32)).reset_all()
    });
    task::Entity::insert_many(tasks)
        .exec_without_returning(txn)
        .await?;
    Ok(())
}

async fn insert_milestones(
    txn: &DatabaseTransaction,
    project_id: &str,
    round: i32,
    input: &ApplicationInput,
) -> Result<(), DbErr> {
    let milestones = input
        .milestones
        .iter()
        .zip(1..)
        .map(|((name, due_date), position)| {
            milestone::ActiveModel::from(milestone::Model {
                project_id: project_id.to_owned(),
                round,
                position,
                name: name.clone(),
                due_date: date_key(*due_date),
            })
            .reset_all()
        });
    milestone::Entity::insert_many(milestones)
        .exec_without_returning(txn)
        .await?;
    Ok(())
}

async fn insert_chain(
    txn: &DatabaseTransaction,
    project_id: &str,
    round: i32,
    input: &ApplicationInput,
) -> Result<(), DbErr> {
    let approvals = input
        .approval_chain
        .iter()
        .zip(1..)
        .map(|(entry, position)| {
            approval::ActiveModel::from(approval::Model {
                project_id: project_id.to_owned(),
                round,
                position,
                approver_id: entry.approver_id.clone(),
                required: entry.required,
                decision: None,
                opinion: None,
                decided_at: None,
            })
            .reset_all()
        });
    approval::Entity::insert_many(approvals)
        .exec_without_returning(txn)
        .await?;
    Ok(())
}
