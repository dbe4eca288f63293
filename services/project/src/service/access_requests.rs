//! Access requests for CONFIDENTIAL and SECRET projects, their decisions by a supervisor or
//! department head of the project's department, and the confidentiality agreement. Reads are
//! checked by the rule in `trace_runtime::access_approval`, and requests and decisions are
//! the project's own `access_requested`, `access_approved` and `access_rejected` events.

use sea_orm::ActiveValue::Set;
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
use trace_proto::common::v1::Confidentiality;
use trace_proto::project::v1 as proto;
use trace_runtime::access_approval::{self, AccessRequestState, access_request, agreement};
use trace_runtime::clock::{timestamp, timestamp_opt};
use trace_runtime::context::{CallContext, Principal, role};
use trace_runtime::event::{self, EventSpec, pack};
use trace_runtime::read_scope::ReadScope;
use trace_runtime::sealed_text::{SealedRow, open_rows};
use trace_runtime::{ServiceError, ServiceResult, validate};
use uuid::Uuid;

use super::access::ReadMethod;
use super::write::{AttemptError, AttemptResult, find_project, require, with_retries};
use super::{ProjectHandler, SERVICE};

/// Entity type of agreement acceptance events, whose entity id is the user id.
const AGREEMENT_ENTITY: &str = "agreement";

fn state(state: AccessRequestState) -> proto::AccessRequestState {
    match state {
        AccessRequestState::Pending => proto::AccessRequestState::Pending,
        AccessRequestState::Approved => proto::AccessRequestState::Approved,
        AccessRequestState::Rejected => proto::AccessRequestState::Rejected,
    }
}

fn access_request(model: &access_request::Model) -> proto::AccessRequest {
    proto::AccessRequest {
        access_request_id: model.id.clone(),
        project_id: model.record_id.clone(),
        requester_id: model.requester_id.clone(),
        purpose: model.purpose.clone(),
        state: state(model.state) as i32,
        requested_at: Some(timestamp(model.requested_at)),
        approver_id: model.approver_id.clone().unwrap_or_default(),
        opinion: model.opinion.clone().unwrap_or_default(),
        decided_at: timestamp_opt(model.decided_at),
        expires_at: timestamp_opt(model.expires_at),
    }
}

/// Returns true when `caller` is a supervisor or department head of `department`, who
/// decides access to its projects.
fn decides_for(caller: &Principal, department: &str) -> bool {
    (caller.has_role(role::SUPERVISOR) || caller.has_role(role::DEPARTMENT_HEAD))
        && !department.is_empty()
        && caller.department == department
}

impl ProjectHandler {
    pub(super) async fn request_access(
        &self,
        context: &CallContext,
        request: proto::RequestAccessRequest,
    ) -> ServiceResult<proto::RequestAccessResponse> {
        let project_id = super::project_id(&request.project_id)?;
        let purpose = access_approval::purpose(&request.purpose)?;
        let (model, participant) = self
            .authorize_scope(context, &project_id, ReadMethod::RequestAccess)
            .await?;
        let level = access_approval::level_of(model.confidentiality);
        if level < Confidentiality::Confidential {
            return Err(ServiceError::wrong_state(
                "project",
                &model.id,
                level.as_str_name(),
                "request access to",
            ));
        }
        if participant {
            return Err(ServiceError::wrong_state(
                "project",
                &model.id,
                format!(
                    "taken part in by {}, who reads it without a request",
                    context.principal.user_id
                ),
                "request access to",
            ));
        }

        with_retries("request project access", || async {
            let txn = self.begin().await?;
            let loaded = find_project(&txn, &project_id).await?;
            let row = access_request::Model {
                id: Uuid::now_v7().to_string(),
                record_id: loaded.id.clone(),
                requester_id: context.principal.user_id.clone(),
                purpose: purpose.clone(),
                state: AccessRequestState::Pending,
                requested_at: self.now(),
                approver_id: None,
                opinion: None,
                decided_at: None,
                expires_at: None,
            };
            let payload = proto::ProjectAccessRequested {
                access_request_id: row.id.clone(),
                purpose: row.purpose.clone(),
            };
            let (_, event_id) = self
                .record_event(&txn, context, &loaded, "access_requested", pack(&payload))
                .await?;
            let stored = row.clone().sealed(&self.keyring, loaded.confidentiality);
            access_request::Entity::insert(access_request::ActiveModel::from(stored).reset_all())
                .exec_without_returning(&txn)
                .await?;
            self.commit(txn).await?;
            AttemptResult::Ok(proto::RequestAccessResponse {
                access_request: Some(access_request(&row)),
                event_id,
            })
        })
        .await
    }

    pub(super) async fn decide_access(
        &self,
        context: &CallContext,
        request: proto::DecideAccessRequest,
    ) -> ServiceResult<proto::DecideAccessResponse> {
        let request_id =
            validate::record_id("access_request_id", &request.access_request_id)?.to_string();
        let opinion = access_approval::opinion(&request.opinion)?;
        let approve = request.approve;
        let expires_at = if approve {
            Some(access_approval::expiry(
                "expires_at",
                request.expires_at.as_ref(),
                self.now(),
            )?)
        } else {
            None
        };

        with_retries("decide project access", || async {
            let txn = self.begin().await?;
            let caller = &context.principal;
            // A caller who may not decide gets the error for a missing request, so the
            // error does not show whether the request exists.
            let denial = || {
                ServiceError::denied(format!(
                    "access request {request_id} does not exist or {} may not decide it; \
                     a supervisor or department head of the project's department decides it",
                    caller.user_id
                ))
            };
            let pending =
                match access_approval::find_request(&self.keyring, &txn, &request_id).await {
                    Ok(pending) => pending,
                    Err(ServiceError::NotFound { .. }) => return Err(denial().into()),
                    Err(error) => return Err(error.into()),
                };
            let loaded = find_project(&txn, &pending.record_id).await?;
            if !decides_for(caller, &loaded.department) {
                return Err(denial().into());
            }
            require(caller.user_id != pending.requester_id, || {
                format!(
                    "the requester {} may not decide their own access request {}",
                    caller.user_id, pending.id
                )
            })?;
            if pending.state != AccessRequestState::Pending {
                return Err(ServiceError::wrong_state(
                    "access request",
                    &pending.id,
                    pending.state.name(),
                    "decide",
                )
                .into());
            }

            let (state, action) = if approve {
                (AccessRequestState::Approved, "access_approved")
            } else {
                (AccessRequestState::Rejected, "access_rejected")
            };
            let decided = access_request::Model {
                state,
                approver_id: Some(caller.user_id.clone()),
                opinion: Some(opinion.clone()),
                decided_at: Some(self.now()),
                expires_at,
                ..pending.clone()
            };
            let payload = proto::ProjectAccessDecided {
                access_request_id: pending.id.clone(),
                requester_id: pending.requester_id.clone(),
                approved: approve,
                opinion: opinion.clone(),
                expires_at: timestamp_opt(expires_at),
            };
            let (_, event_id) = self
                .record_event(&txn, context, &loaded, action, pack(&payload))
                .await?;
            let stored = decided
                .clone()
                .sealed(&self.keyring, loaded.confidentiality);
            let updated = access_request::Entity::update_many()
                .set(access_request::ActiveModel {
                    state: Set(stored.state),
                    approver_id: Set(stored.approver_id),
                    opinion: Set(stored.opinion),
                    decided_at: Set(stored.decided_at),
                    expires_at: Set(stored.expires_at),
                    ..Default::default()
                })
                .filter(access_request::Column::Id.eq(pending.id.as_str()))
                .filter(access_request::Column::State.eq(AccessRequestState::Pending))
                .exec(&txn)
                .await?;
            if updated.rows_affected == 0 {
                return Err(AttemptError::Conflict(format!(
                    "access request {} was decided after it was loaded",
                    pending.id
                )));
            }
            self.commit(txn).await?;
            AttemptResult::Ok(proto::DecideAccessResponse {
                access_request: Some(access_request(&decided)),
                event_id,
            })
        })
        .await
    }

    pub(super) async fn access_requests(
        &self,
        context: &CallContext,
        request: proto::ListAccessRequestsRequest,
    ) -> ServiceResult<proto::ListAccessRequestsResponse> {
        let project_id = super::project_id(&request.project_id)?;
        let (model, _) = self
            .authorize_scope(context, &project_id, ReadMethod::ListAccessRequests)
            .await?;
        let caller = &context.principal;
        let sees_all = ReadScope::of(caller).covers_department(&model.department);

        let mut query = access_request::Entity::find()
            .filter(access_request::Column::RecordId.eq(project_id.as_str()));
        if !sees_all {
            query = query.filter(access_request::Column::RequesterId.eq(caller.user_id.as_str()));
        }
        let rows = query
            .order_by_asc(access_request::Column::Id)
            .all(&self.db)
            .await?;
        let rows = open_rows(&self.keyring, rows)?;
        Ok(proto::ListAccessRequestsResponse {
            access_requests: rows.iter().map(access_request).collect(),
        })
    }

    pub(super) async fn accept_agreement(
        &self,
        context: &CallContext,
        request: proto::AcceptAgreementRequest,
    ) -> ServiceResult<proto::AcceptAgreementResponse> {
        let version =
            access_approval::agreement_version("agreement_version", &request.agreement_version)?;
        let current = &self.agreement_version;
        if &version != current {
            return Err(ServiceError::invalid(
                "agreement_version",
                &version,
                format!("the current confidentiality agreement is version {current}"),
            ));
        }

        with_retries("accept agreement", || async {
            let txn = self.begin().await?;
            let user_id = context.principal.user_id.clone();
            let existing = agreement::Entity::find_by_id((user_id.clone(), version.clone()))
                .one(&txn)
                .await?;
            if let Some(existing) = existing {
                // Accepting again changes nothing and leaves no second event.
                return AttemptResult::Ok(proto::AcceptAgreementResponse {
                    agreement_version: existing.version,
                    accepted_at: Some(timestamp(existing.accepted_at)),
                    event_id: String::new(),
                });
            }
            let accepted_at = self.now();
            let accepted_versions = agreement::Entity::find()
                .filter(agreement::Column::UserId.eq(user_id.as_str()))
                .all(&txn)
                .await?
                .len();
            let spec = EventSpec {
                entity_type: AGREEMENT_ENTITY,
                entity_id: user_id.clone(),
                entity_version: u64::try_from(accepted_versions).unwrap_or_default() + 1,
                action: "accepted",
                confidentiality: Confidentiality::Internal,
                payload: pack(&proto::ProjectAgreementAccepted {
                    agreement_version: version.clone(),
                }),
            };
            let envelope = event::envelope(SERVICE, context, self.clock.as_ref(), spec);
            self.outbox.stage(&txn, &envelope).await?;
            agreement::Entity::insert(agreement::ActiveModel {
                user_id: Set(user_id),
                version: Set(version.clone()),
                accepted_at: Set(accepted_at),
            })
            .exec_without_returning(&txn)
            .await?;
            self.commit(txn).await?;
            AttemptResult::Ok(proto::AcceptAgreementResponse {
                agreement_version: version.clone(),
                accepted_at: Some(timestamp(accepted_at)),
                event_id: envelope.event_id,
            })
        })
        .await
    }
}
