//! Acceptance: the application for acceptance of an active project and the independent
//! acceptance group that reviews it.

use sea_orm::ActiveValue::Set;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseTransaction, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder,
};
use trace_proto::project::v1 as proto;
use trace_runtime::context::{CallContext, role};
use trace_runtime::event::pack;
use trace_runtime::seal::Keyring;
use trace_runtime::sealed_text::{SealedRow, open_rows};
use trace_runtime::{ServiceError, ServiceResult, validate};
use uuid::Uuid;

use super::input::item_count;
use super::write::{
    AttemptResult, checked_transition, find_project, require, require_manager, with_retries,
    wrong_state,
};
use super::{ProjectHandler, convert, project_id};
use crate::entity::{acceptance, decision, group_member, member, project};
use crate::state::{DecisionState, ProjectAction};

/// Maximum length of the results report and of each summary section, in characters.
const REPORT_MAX_CHARS: usize = 8000;
/// Maximum length of feedback, opinions and open issues.
const OPINION_MAX_CHARS: usize = 4000;
/// Maximum number of members of an acceptance group.
const MAX_GROUP_MEMBERS: usize = 20;
/// Maximum length of a group member name.
const NAME_MAX_CHARS: usize = 100;

/// A validated `ApplyForAcceptanceRequest`.
struct NewAcceptance {
    project_id: String,
    results_report: String,
    test_report_document_id: String,
    user_feedback: String,
}

impl ProjectHandler {
    pub(super) async fn apply_acceptance(
        &self,
        context: &CallContext,
        request: proto::ApplyForAcceptanceRequest,
    ) -> ServiceResult<proto::ApplyForAcceptanceResponse> {
        let input = NewAcceptance {
            project_id: project_id(&request.project_id)?,
            results_report: validate::text(
                "results_report",
                &request.results_report,
                1,
                REPORT_MAX_CHARS,
            )?,
            test_report_document_id: validate::record_id(
                "test_report_document_id",
                &request.test_report_document_id,
            )?
            .to_string(),
            user_feedback: validate::text(
                "user_feedback",
                &request.user_feedback,
                1,
                OPINION_MAX_CHARS,
            )?,
        };

        with_retries("apply for acceptance", || self.try_apply(context, &input)).await
    }

    async fn try_apply(
        &self,
        context: &CallContext,
        input: &NewAcceptance,
    ) -> AttemptResult<proto::ApplyForAcceptanceResponse> {
        let txn = self.begin().await?;
        let loaded = find_project(&txn, &input.project_id).await?;

        let state = checked_transition(&loaded, ProjectAction::ApplyForAcceptance)?;
        require_manager(&loaded, context, ProjectAction::ApplyForAcceptance)?;
        check_no_pending_decisions(&txn, &loaded).await?;

        let earlier = acceptance::Entity::find()
            .filter(acceptance::Column::ProjectId.eq(loaded.id.as_str()))
            .count(&txn)
            .await?;
        let attempt = i32::try_from(earlier + 1).unwrap_or(i32::MAX);
        let row = acceptance_row(&loaded, attempt, input, context, self.now());
        let payload = proto::AcceptanceApplied {
            acceptance_id: row.id.clone(),
            attempt: convert::count(row.attempt),
            results_report: row.results_report.clone(),
            test_report_document_id: row.test_report_document_id.clone(),
            user_feedback: row.user_feedback.clone(),
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
                "acceptance_applied",
                pack(&payload),
            )
            .await?;

        let stored = row.clone().sealed(&self.keyring, loaded.confidentiality);
        acceptance::Entity::insert(acceptance::ActiveModel::from(stored).reset_all())
            .exec_without_returning(&txn)
            .await?;
        self.commit(txn).await?;

        Ok(proto::ApplyForAcceptanceResponse {
            project: Some(convert::project(&project)),
            acceptance: Some(convert::acceptance(&row, &[])),
            event_id,
        })
    }

    pub(super) async fn appoint_group(
        &self,
        context: &CallContext,
        request: proto::SetAcceptanceGroupRequest,
    ) -> ServiceResult<proto::SetAcceptanceGroupResponse> {
        let project_id = project_id(&request.project_id)?;
        let members = group_entries(&request.members)?;
        let principal = &context.principal;
        require(
            principal.has_role(role::DEPARTMENT_HEAD) || principal.has_role(role::ADMINISTRATION),
            || {
                format!(
                    "setting the acceptance group needs the {} or {} role, and {} has neither",
                    role::DEPARTMENT_HEAD,
                    role::ADMINISTRATION,
                    principal.user_id
                )
            },
        )?;

        with_retries("set acceptance group", || {
            self.try_appoint_group(context, &project_id, &members)
        })
        .await
    }

    async fn try_appoint_group(
        &self,
        context: &CallContext,
        project_id: &str,
        entries: &[proto::GroupMemberEntry],
    ) -> AttemptResult<proto::SetAcceptanceGroupResponse> {
        let now = self.now();
        let txn = self.begin().await?;
        let loaded = find_project(&txn, project_id).await?;

        checked_transition(&loaded, ProjectAction::SetAcceptanceGroup)?;
        let open = open_acceptance(&self.keyring, &txn, &loaded).await?;
        if open.group_set_at.is_some() {
            let detail = "and its acceptance group is already set";
            return Err(wrong_state(&loaded, ProjectAction::SetAcceptanceGroup, detail).into());
        }
        check_independence(&txn, &loaded, entries).await?;

        let members = group_rows(&open, entries);
        let payload = proto::AcceptanceGroupSet {
            acceptance_id: open.id.clone(),
            members: members.iter().map(convert::group_member).collect(),
        };
        let (project, event_id) = self
            .record_event(
                &txn,
                context,
                &loaded,
                "acceptance_group_set",
                pack(&payload),
            )
            .await?;

        let rows = members
            .iter()
            .map(|row| row.clone().sealed(&self.keyring, loaded.confidentiality))
            .map(|row| group_member::ActiveModel::from(row).reset_all());
        group_member::Entity::insert_many(rows)
            .exec_without_returning(&txn)
            .await?;
        let updated = acceptance::Model {
            group_set_by: Some(context.principal.user_id.clone()),
            group_set_at: Some(now),
            ..open
        };
        acceptance::ActiveModel::from(
            updated
                .clone()
                .sealed(&self.keyring, loaded.confidentiality),
        )
        .reset_all()
        .update(&txn)
        .await?;
        self.commit(txn).await?;

        Ok(proto::SetAcceptanceGroupResponse {
            project: Some(convert::project(&project)),
            acceptance: Some(convert::acceptance(&updated, &members)),
            event_id,
        })
    }
}

/// Checks the group entries: 1 to 20, each user once, names single-line.
fn group_entries(
    entries: &[proto::GroupMemberEntry],
) -> ServiceResult<Vec<proto::GroupMemberEntry>> {
    item_count("members", entries.len(), MAX_GROUP_MEMBERS)?;
    let mut checked: Vec<proto::GroupMemberEntry> = Vec::with_capacity(entries.len());
    for (index, entry) in entries.iter().enumerate() {
        let user_field = format!("members[{index}].user_id");
        let user_id = validate::user_id(&user_field, &entry.user_id)?;
        if checked.iter().any(|earlier| earlier.user_id == user_id) {
            return Err(ServiceError::invalid(
                user_field,
                &user_id,
                "appears more than once in the group",
            ));
        }
        let name = validate::line(
            &format!("members[{index}].name"),
            &entry.name,
            1,
            NAME_MAX_CHARS,
        )?;
        checked.push(proto::GroupMemberEntry { user_id, name });
    }
    Ok(checked)
}

/// Rejects the manager and active team members as group members, because the acceptance
/// group judges the team's work.
async fn check_independence(
    txn: &DatabaseTransaction,
    project: &project::Model,
    entries: &[proto::GroupMemberEntry],
) -> AttemptResult<()> {
    let team: Vec<String> = member::Entity::find()
        .filter(member::Column::ProjectId.eq(project.id.as_str()))
        .filter(member::Column::ActiveSlot.eq(member::ACTIVE))
        .all(txn)
        .await?
        .into_iter()
        .map(|row| row.user_id)
        .collect();
    for (index, entry) in entries.iter().enumerate() {
        let reason = if entry.user_id == project.manager_id {
            "is the project manager; the acceptance group must be independent of the team"
        } else if team.contains(&entry.user_id) {
            "is an active team member; the acceptance group must be independent of the team"
        } else {
            continue;
        };
        return Err(ServiceError::invalid(
            format!("members[{index}].user_id"),
            &entry.user_id,
            reason,
        )
        .into());
    }
    Ok(())
}

/// Acceptance reviews a settled project, so every recorded decision must be decided first.
async fn check_no_pending_decisions(
    txn: &DatabaseTransaction,
    project: &project::Model,
) -> AttemptResult<()> {
    let pending = decision::Entity::find()
        .filter(decision::Column::ProjectId.eq(project.id.as_str()))
        .filter(decision::Column::State.eq(DecisionState::Pending))
        .count(txn)
        .await?;
    if pending > 0 {
        let detail = format!("with {pending} decision(s) pending approval");
        return Err(wrong_state(project, ProjectAction::ApplyForAcceptance, &detail).into());
    }
    Ok(())
}

fn acceptance_row(
    project: &project::Model,
    attempt: i32,
    input: &NewAcceptance,
    context: &CallContext,
    applied_at: i64,
) -> acceptance::Model {
    acceptance::Model {
        id: Uuid::now_v7().to_string(),
        project_id: project.id.clone(),
        attempt,
        results_report: input.results_report.clone(),
        test_report_document_id: input.test_report_document_id.clone(),
        user_feedback: input.user_feedback.clone(),
        applied_by: context.principal.user_id.clone(),
        applied_at,
        group_set_by: None,
        group_set_at: None,
        result: None,
        group_opinion: None,
        open_issues: None,
        decided_by: None,
        decided_at: None,
    }
}

/// Builds the group rows in request order; position 1 is the group lead.
fn group_rows(
    acceptance: &acceptance::Model,
    entries: &[proto::GroupMemberEntry],
) -> Vec<group_member::Model> {
    entries
        .iter()
        .zip(1..)
        .map(|(entry, position)| group_member::Model {
            acceptance_id: acceptance.id.clone(),
            position,
            user_id: entry.user_id.clone(),
            name: entry.name.clone(),
            verdict: None,
            opinion: None,
            open_issues: None,
            signed_at: None,
        })
        .collect()
}

/// Loads the latest acceptance of a project in acceptance; it has no result yet.
pub(super) async fn open_acceptance(
    keyring: &Keyring,
    txn: &DatabaseTransaction,
    project: &project::Model,
) -> AttemptResult<acceptance::Model> {
    let latest = acceptance::Entity::find()
        .filter(acceptance::Column::ProjectId.eq(project.id.as_str()))
        .order_by_desc(acceptance::Column::Attempt)
        .one(txn)
        .await?;
    match latest {
        Some(row) if row.result.is_none() => Ok(row.opened(keyring)?),
        _ => Err(ServiceError::Internal(anyhow::anyhow!(
            "project {} is {} but has no open acceptance",
            project.id,
            project.state
        ))
        .into()),
    }
}

/// Loads the members of an acceptance group in position order.
pub(super) async fn group_members<C: sea_orm::ConnectionTrait>(
    keyring: &Keyring,
    connection: &C,
    acceptance: &acceptance::Model,
) -> ServiceResult<Vec<group_member::Model>> {
    let rows = group_member::Entity::find()
        .filter(group_member::Column::AcceptanceId.eq(acceptance.id.as_str()))
        .order_by_asc(group_member::Column::Position)
        .all(connection)
        .await?;
    Ok(open_rows(keyring, rows)?)
}
