//! Team: members with name, department, position and duties, added, changed and removed by
//! the manager. Removed members keep their row, and a user is an active member at most once.

use sea_orm::ActiveValue::Set;
use sea_orm::{ActiveModelTrait, ColumnTrait, DatabaseTransaction, EntityTrait, QueryFilter};
use trace_proto::project::v1 as proto;
use trace_runtime::context::CallContext;
use trace_runtime::event::pack;
use trace_runtime::{ServiceError, ServiceResult, validate};
use uuid::Uuid;

use super::write::{
    AttemptResult, checked_transition, find_active_member, find_project, require_manager,
    with_retries, wrong_state,
};
use super::{ProjectHandler, convert, project_id};
use crate::entity::{member, project};
use crate::state::ProjectAction;

/// Maximum length of a member name and position, in characters.
const LABEL_MAX_CHARS: usize = 100;
/// Maximum length of duties and of a removal reason.
const NOTE_MAX_CHARS: usize = 2000;

/// A validated `AddMemberRequest`.
struct NewMember {
    project_id: String,
    user_id: String,
    name: String,
    department: String,
    position: String,
    duties: String,
}

/// A validated `ChangeDutiesRequest` or `RemoveMemberRequest`: the member and the new
/// duties or the removal reason.
struct MemberChange {
    project_id: String,
    user_id: String,
    text: String,
}

impl ProjectHandler {
    pub(super) async fn add_team_member(
        &self,
        context: &CallContext,
        request: proto::AddMemberRequest,
    ) -> ServiceResult<proto::AddMemberResponse> {
        let input = NewMember {
            project_id: project_id(&request.project_id)?,
            user_id: validate::user_id("user_id", &request.user_id)?,
            name: validate::line("name", &request.name, 1, LABEL_MAX_CHARS)?,
            department: validate::department("department", &request.department)?,
            position: validate::line("position", &request.position, 1, LABEL_MAX_CHARS)?,
            duties: validate::text("duties", &request.duties, 1, NOTE_MAX_CHARS)?,
        };

        with_retries("add member", || self.try_add_member(context, &input)).await
    }

    async fn try_add_member(
        &self,
        context: &CallContext,
        input: &NewMember,
    ) -> AttemptResult<proto::AddMemberResponse> {
        let txn = self.begin().await?;
        let loaded = find_project(&txn, &input.project_id).await?;

        checked_transition(&loaded, ProjectAction::ChangeTeam)?;
        require_manager(&loaded, context, ProjectAction::ChangeTeam)?;
        if find_active_member(&txn, &loaded.id, &input.user_id)
            .await?
            .is_some()
        {
            let detail = format!("and {} is already an active member", input.user_id);
            return Err(wrong_state(&loaded, ProjectAction::ChangeTeam, &detail).into());
        }

        let member = member::Model {
            id: Uuid::now_v7().to_string(),
            project_id: loaded.id.clone(),
            user_id: input.user_id.clone(),
            active_slot: Some(member::ACTIVE.to_owned()),
            name: input.name.clone(),
            department: input.department.clone(),
            position: input.position.clone(),
            duties: input.duties.clone(),
            added_by: context.principal.user_id.clone(),
            added_at: self.now(),
            duties_changed_by: None,
            duties_changed_at: None,
            removed_by: None,
            removed_at: None,
            removal_reason: None,
        };
        let payload = proto::MemberAdded {
            member: Some(convert::member(&member)),
        };
        let (project, event_id) = self
            .record_event(&txn, context, &loaded, "member_added", pack(&payload))
            .await?;

        member::Entity::insert(member::ActiveModel::from(member.clone()).reset_all())
            .exec_without_returning(&txn)
            .await?;
        self.commit(txn).await?;

        Ok(proto::AddMemberResponse {
            project: Some(convert::project(&project)),
            member: Some(convert::member(&member)),
            event_id,
        })
    }

    pub(super) async fn change_member_duties(
        &self,
        context: &CallContext,
        request: proto::ChangeDutiesRequest,
    ) -> ServiceResult<proto::ChangeDutiesResponse> {
        let input = MemberChange {
            project_id: project_id(&request.project_id)?,
            user_id: validate::user_id("user_id", &request.user_id)?,
            text: validate::text("duties", &request.duties, 1, NOTE_MAX_CHARS)?,
        };

        with_retries("change duties", || self.try_change_duties(context, &input)).await
    }

    async fn try_change_duties(
        &self,
        context: &CallContext,
        input: &MemberChange,
    ) -> AttemptResult<proto::ChangeDutiesResponse> {
        let txn = self.begin().await?;
        let (loaded, current) = self.load_member_change(&txn, context, input).await?;

        let payload = proto::DutiesChanged {
            user_id: current.user_id.clone(),
            previous_duties: current.duties.clone(),
            duties: input.text.clone(),
        };
        let (project, event_id) = self
            .record_event(&txn, context, &loaded, "duties_changed", pack(&payload))
            .await?;

        let changes = member::ActiveModel {
            duties: Set(input.text.clone()),
            duties_changed_by: Set(Some(context.principal.user_id.clone())),
            duties_changed_at: Set(Some(self.now())),
            ..Default::default()
        };
        let member = update_member(&txn, &current, changes).await?;
        self.commit(txn).await?;

        Ok(proto::ChangeDutiesResponse {
            project: Some(convert::project(&project)),
            member: Some(convert::member(&member)),
            event_id,
        })
    }

    pub(super) async fn remove_team_member(
        &self,
        context: &CallContext,
        request: proto::RemoveMemberRequest,
    ) -> ServiceResult<proto::RemoveMemberResponse> {
        let input = MemberChange {
            project_id: project_id(&request.project_id)?,
            user_id: validate::user_id("user_id", &request.user_id)?,
            text: validate::text("reason", &request.reason, 1, NOTE_MAX_CHARS)?,
        };

        with_retries("remove member", || self.try_remove_member(context, &input)).await
    }

    async fn try_remove_member(
        &self,
        context: &CallContext,
        input: &MemberChange,
    ) -> AttemptResult<proto::RemoveMemberResponse> {
        let txn = self.begin().await?;
        let (loaded, current) = self.load_member_change(&txn, context, input).await?;

        let payload = proto::MemberRemoved {
            user_id: current.user_id.clone(),
            reason: input.text.clone(),
        };
        let (project, event_id) = self
            .record_event(&txn, context, &loaded, "member_removed", pack(&payload))
            .await?;

        let changes = member::ActiveModel {
            active_slot: Set(None),
            removed_by: Set(Some(context.principal.user_id.clone())),
            removed_at: Set(Some(self.now())),
            removal_reason: Set(Some(input.text.clone())),
            ..Default::default()
        };
        let member = update_member(&txn, &current, changes).await?;
        self.commit(txn).await?;

        Ok(proto::RemoveMemberResponse {
            project: Some(convert::project(&project)),
            member: Some(convert::member(&member)),
            event_id,
        })
    }

    /// Loads the project and the active member a change addresses, after the state and
    /// permission checks; `NOT_FOUND` when the user is not an active member.
    async fn load_member_change(
        &self,
        txn: &DatabaseTransaction,
        context: &CallContext,
        input: &MemberChange,
    ) -> AttemptResult<(project::Model, member::Model)> {
        let loaded = find_project(txn, &input.project_id).await?;
        checked_transition(&loaded, ProjectAction::ChangeTeam)?;
        require_manager(&loaded, context, ProjectAction::ChangeTeam)?;

        let current = find_active_member(txn, &loaded.id, &input.user_id)
            .await?
            .ok_or_else(|| {
                ServiceError::not_found(
                    "active member",
                    format!("{} of project {}", input.user_id, loaded.id),
                )
            })?;
        Ok((loaded, current))
    }
}

async fn update_member(
    txn: &DatabaseTransaction,
    current: &member::Model,
    changes: member::ActiveModel,
) -> AttemptResult<member::Model> {
    member::Entity::update_many()
        .set(changes)
        .filter(member::Column::Id.eq(current.id.as_str()))
        .exec(txn)
        .await?;
    let member = member::Entity::find_by_id(current.id.clone())
        .one(txn)
        .await?
        .ok_or_else(|| ServiceError::not_found("member", &current.id))?;
    Ok(member)
}
