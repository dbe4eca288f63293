//! Read access to projects. [`crate::rules::may_read`] decides who reads one project, and
//! [`scope_condition`] applies the same rule in SQL to the project search. A denied read of
//! an existing project is recorded as the project's `read_denied` event, and a denied read
//! of a missing project as an `access.denied` event. Both return `PERMISSION_DENIED` with
//! one message and a recorded event id, so the response does not reveal whether the project
//! exists. Only callers who read every project get `NOT_FOUND` for a missing one. A reader
//! of a CONFIDENTIAL or SECRET project who takes no part in it also needs an approved access
//! request (see [`super::access_requests`]), and a read denied by that rule is a
//! `read_denied` event naming the request it judged. A permitted read of a CONFIDENTIAL or
//! SECRET project is recorded as a `read` event naming the request it used.

use sea_orm::sea_query::Query;
use sea_orm::{ColumnTrait, Condition, EntityTrait, QueryFilter, QuerySelect};
use trace_proto::common::v1::Confidentiality;
use trace_proto::project::v1 as proto;
use trace_runtime::access_approval::{self, ApprovalCheck};
use trace_runtime::context::CallContext;
use trace_runtime::event::pack;
use trace_runtime::read_scope::GuardedRead;
use trace_runtime::{ServiceError, ServiceResult};

use super::write::{AttemptResult, find_project, with_retries};
use super::{ProjectHandler, SERVICE};
use crate::entity::{acceptance, approval, group_member, member, project};
use crate::rules::{ProjectParties, ReadScope, may_read, takes_part};

/// Description of the callers who read a project, which ends the denial message.
const READERS: &str = "\
    a project is read by its manager, team members, approvers and acceptance group \
    members, by supervisors and department heads of its department, and by the \
    administration, audit and system roles";

/// The by-id reads that the read rule guards, named as in the gRPC service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ReadMethod {
    GetProject,
    ListProgress,
    ListDecisions,
    RequestAccess,
    ListAccessRequests,
}

impl ReadMethod {
    fn name(self) -> &'static str {
        match self {
            Self::GetProject => "GetProject",
            Self::ListProgress => "ListProgress",
            Self::ListDecisions => "ListDecisions",
            Self::RequestAccess => "RequestAccess",
            Self::ListAccessRequests => "ListAccessRequests",
        }
    }

    /// Describes the read of `project_id` by this method for the denial errors.
    pub(super) fn guarded(self, project_id: &str) -> GuardedRead<'_> {
        GuardedRead {
            service: SERVICE,
            grpc_service: "trace.project.v1.ProjectService",
            method: self.name(),
            record: "project",
            record_id: project_id,
            readers: READERS,
        }
    }
}

/// Returns the condition on `projects` that keeps the projects inside `scope`, or `None`
/// when the scope is every project.
pub(super) fn scope_condition(scope: &ReadScope) -> Option<Condition> {
    let ReadScope::Involved {
        user_id,
        department,
    } = scope
    else {
        return None;
    };
    let on_team = Query::select()
        .column(member::Column::ProjectId)
        .from(member::Entity)
        .and_where(member::Column::UserId.eq(user_id.as_str()))
        .to_owned();
    let approves = Query::select()
        .column(approval::Column::ProjectId)
        .from(approval::Entity)
        .and_where(approval::Column::ApproverId.eq(user_id.as_str()))
        .to_owned();
    let accepts = Query::select()
        .column(acceptance::Column::ProjectId)
        .from(acceptance::Entity)
        .and_where(acceptance::Column::Id.in_subquery(acceptance_groups_of(user_id)))
        .to_owned();
    let mut condition = Condition::any()
        .add(project::Column::ManagerId.eq(user_id.as_str()))
        .add(project::Column::Id.in_subquery(on_team))
        .add(project::Column::Id.in_subquery(approves))
        .add(project::Column::Id.in_subquery(accepts));
    if let Some(department) = department {
        condition = condition.add(project::Column::Department.eq(department.as_str()));
    }
    Some(condition)
}

/// Returns the query of the acceptances whose group contains `user_id`.
fn acceptance_groups_of(user_id: &str) -> sea_orm::sea_query::SelectStatement {
    Query::select()
        .column(group_member::Column::AcceptanceId)
        .from(group_member::Entity)
        .and_where(group_member::Column::UserId.eq(user_id))
        .to_owned()
}

impl ProjectHandler {
    /// Loads the project `project_id` when it is inside the caller's read scope, and returns
    /// it with whether the caller takes part in it. Otherwise records the denial and returns
    /// `PERMISSION_DENIED`, for a missing project as well unless the caller reads every
    /// project, who gets `NOT_FOUND`.
    pub(super) async fn authorize_scope(
        &self,
        context: &CallContext,
        project_id: &str,
        method: ReadMethod,
    ) -> ServiceResult<(project::Model, bool)> {
        let scope = ReadScope::of(&context.principal);
        let model = match find_project(&self.db, project_id).await {
            Ok(model) => model,
            // A caller who reads every project learns nothing from NOT_FOUND.
            Err(error @ ServiceError::NotFound { .. }) if scope == ReadScope::Whole => {
                return Err(error);
            }
            Err(ServiceError::NotFound { .. }) => {
                return Err(self.deny_missing(context, project_id, method).await);
            }
            Err(error) => return Err(error),
        };

        let member_ids: Vec<String> = member::Entity::find()
            .select_only()
            .column(member::Column::UserId)
            .filter(member::Column::ProjectId.eq(project_id))
            .into_tuple()
            .all(&self.db)
            .await?;
        let approver_ids: Vec<String> = approval::Entity::find()
            .select_only()
            .column(approval::Column::ApproverId)
            .filter(approval::Column::ProjectId.eq(project_id))
            .into_tuple()
            .all(&self.db)
            .await?;
        let project_acceptances = Query::select()
            .column(acceptance::Column::Id)
            .from(acceptance::Entity)
            .and_where(acceptance::Column::ProjectId.eq(project_id))
            .to_owned();
        let acceptance_member_ids: Vec<String> = group_member::Entity::find()
            .select_only()
            .column(group_member::Column::UserId)
            .filter(group_member::Column::AcceptanceId.in_subquery(project_acceptances))
            .into_tuple()
            .all(&self.db)
            .await?;
        let parties = ProjectParties {
            manager_id: &model.manager_id,
            department: &model.department,
            member_ids: &member_ids,
            approver_ids: &approver_ids,
            acceptance_member_ids: &acceptance_member_ids,
        };
        if !may_read(&scope, &parties) {
            return Err(self.deny_existing(context, &model, method).await);
        }
        let participant = takes_part(&context.principal.user_id, &parties);
        Ok((model, participant))
    }

    /// Loads the project `project_id` when the caller may read its records, and returns it
    /// with the access request the read uses. Besides the read scope of
    /// [`ProjectHandler::authorize_scope`], a caller who takes no part in a CONFIDENTIAL or
    /// SECRET project needs an approved access request, and for a SECRET project the
    /// current agreement. A denial by that rule is recorded as the project's `read_denied`
    /// event and returned as `PERMISSION_DENIED` with the reason, which the caller may see
    /// because the project is inside their scope.
    pub(super) async fn authorize_read(
        &self,
        context: &CallContext,
        project_id: &str,
        method: ReadMethod,
    ) -> ServiceResult<(project::Model, Option<String>)> {
        let (model, participant) = self.authorize_scope(context, project_id, method).await?;
        let level = access_approval::level_of(model.confidentiality);
        if level < Confidentiality::Confidential || participant {
            return Ok((model, None));
        }

        let caller = context.principal.user_id.as_str();
        let now = self.now();
        let request = access_approval::newest_request(&self.db, &model.id, caller, now).await?;
        let agreement_accepted =
            access_approval::agreement_accepted(&self.db, caller, &self.agreement_version).await?;
        let check = ApprovalCheck {
            caller,
            record: "project",
            record_id: &model.id,
            level,
            takes_part: participant,
            request: request.as_ref(),
            agreement_accepted,
            now,
        };
        let denial = match access_approval::check_approval(&check) {
            Ok(used) => return Ok((model, used)),
            Err(denial) => denial,
        };

        let payload = proto::ProjectReadDenied {
            method: method.name().to_owned(),
            reason: denial.reason.clone(),
            access_request_id: denial.access_request_id.clone().unwrap_or_default(),
        };
        let event_id = self.record_denial(context, &model, &payload).await?;
        tracing::info!(
            project_id = %model.id,
            user_id = caller,
            method = method.name(),
            %event_id,
            reason = %denial.reason,
            "project read denied without a current approval"
        );
        Err(ServiceError::denied_and_recorded(
            format!(
                "{}; the denial is recorded as event {event_id}",
                denial.reason
            ),
            event_id,
        ))
    }

    /// Records a permitted read of a CONFIDENTIAL or SECRET project as its `read` event, which
    /// names the access request the read used, and returns the project at the new version.
    /// Projects of a lower level are returned as they are, with no event.
    pub(super) async fn record_read(
        &self,
        context: &CallContext,
        model: project::Model,
        access_request_id: Option<String>,
        method: ReadMethod,
    ) -> ServiceResult<project::Model> {
        let level = access_approval::level_of(model.confidentiality);
        if level < Confidentiality::Confidential {
            return Ok(model);
        }
        let payload = proto::ProjectRead {
            method: method.name().to_owned(),
            access_request_id: access_request_id.unwrap_or_default(),
        };
        with_retries("record a project read", || async {
            let txn = self.begin().await?;
            let loaded = find_project(&txn, &model.id).await?;
            let (updated, _) = self
                .record_event(&txn, context, &loaded, "read", pack(&payload))
                .await?;
            self.commit(txn).await?;
            AttemptResult::Ok(updated)
        })
        .await
    }

    /// Records a denied read of an existing project outside the caller's scope as its
    /// `read_denied` event.
    async fn deny_existing(
        &self,
        context: &CallContext,
        model: &project::Model,
        method: ReadMethod,
    ) -> ServiceError {
        let user_id = &context.principal.user_id;
        let payload = proto::ProjectReadDenied {
            method: method.name().to_owned(),
            reason: format!(
                "{user_id} is not the manager, a team member, an approver or an acceptance group \
                 member of the project, and is not a supervisor or department head of its \
                 department '{}'",
                model.department
            ),
            access_request_id: String::new(),
        };
        let recorded = self.record_denial(context, model, &payload).await;
        method.guarded(&model.id).denial_error(context, recorded)
    }

    /// Records `payload` as the project's `read_denied` event and returns the event id.
    async fn record_denial(
        &self,
        context: &CallContext,
        model: &project::Model,
        payload: &proto::ProjectReadDenied,
    ) -> ServiceResult<String> {
        with_retries("record a denied project read", || async {
            let txn = self.begin().await?;
            let loaded = find_project(&txn, &model.id).await?;
            let (_, event_id) = self
                .record_event(&txn, context, &loaded, "read_denied", pack(payload))
                .await?;
            self.commit(txn).await?;
            AttemptResult::Ok(event_id)
        })
        .await
    }

    /// Records a denied read of a missing project as an `access.denied` event, the event
    /// that the denial layer writes for other denials.
    async fn deny_missing(
        &self,
        context: &CallContext,
        project_id: &str,
        method: ReadMethod,
    ) -> ServiceError {
        method
            .guarded(project_id)
            .deny_missing(&self.outbox, context)
            .await
    }
}
