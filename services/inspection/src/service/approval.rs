//! Access requests for CONFIDENTIAL and SECRET findings, their decisions by a supervisor or
//! head of the finding's department, and the confidentiality agreement. Reads are checked by
//! the rule in `trace_runtime::access_approval`, and requests and decisions are the finding's
//! own `access_requested`, `access_approved` and `access_rejected` events.
//!
//! Each RPC checks its input and the caller first and then writes in one transaction through
//! one small function (`insert_request`, `store_decision`, `store_acceptance`), so that the
//! write can move to a handler shared with the other services.

use sea_orm::ActiveValue::Set;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseTransaction, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder,
};
use trace_proto::common::v1::Confidentiality;
use trace_proto::inspection::v1 as proto;
use trace_runtime::access_approval::{self, AccessRequestState, access_request, agreement};
use trace_runtime::clock::{timestamp, timestamp_opt};
use trace_runtime::context::{CallContext, role};
use trace_runtime::event::{self, EventSpec, pack};
use trace_runtime::sealed_text::{SealedRow, open_rows};
use trace_runtime::{ServiceError, ServiceResult};
use uuid::Uuid;

use super::access::{ReadMethod, level};
use super::findings::lock_finding;
use super::{InspectionHandler, record_id};
use crate::entity::finding;
use crate::events::SERVICE;

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
        finding_id: model.record_id.clone(),
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

/// Fails with `ABORTED` when the finding changed between loading and writing it.
fn staged_or_conflict(
    staged: Option<(String, i64)>,
    finding_id: &str,
) -> ServiceResult<(String, i64)> {
    staged.ok_or_else(|| ServiceError::Aborted {
        reason: format!("finding {finding_id} changed concurrently. Retry the call"),
    })
}

impl InspectionHandler {
    /// Returns true when the caller decides access to the findings of `department`: a
    /// supervisor or department head of it, or its head in the company directory.
    fn decides_for(&self, context: &CallContext, department: &str) -> bool {
        let caller = &context.principal;
        if department.is_empty() {
            return false;
        }
        let by_role = (caller.has_role(role::SUPERVISOR) || caller.has_role(role::DEPARTMENT_HEAD))
            && caller.department == department;
        let by_directory = self
            .directory
            .department(department)
            .is_some_and(|headed| headed.head == caller.user_id);
        by_role || by_directory
    }

    pub(super) async fn ask_access(
        &self,
        context: &CallContext,
        request: proto::RequestAccessRequest,
    ) -> ServiceResult<proto::RequestAccessResponse> {
        let finding_id = record_id("finding_id", &request.finding_id)?;
        let purpose = access_approval::purpose(&request.purpose)?;
        let (row, participant) = self
            .authorize_scope(context, &finding_id, ReadMethod::RequestAccess)
            .await?;
        let level = level(&row);
        if level < Confidentiality::Confidential {
            return Err(ServiceError::wrong_state(
                "finding",
                &row.id,
                level.as_str_name(),
                "request access to",
            ));
        }
        if participant {
            return Err(ServiceError::wrong_state(
                "finding",
                &row.id,
                format!(
                    "taken part in by {}, who reads it without a request",
                    context.principal.user_id
                ),
                "request access to",
            ));
        }

        let transaction = trace_runtime::db::begin_write(&self.db).await?;
        let (stored, event_id) = self
            .insert_request(&transaction, context, &finding_id, purpose)
            .await?;
        self.commit(transaction).await?;
        Ok(proto::RequestAccessResponse {
            access_request: Some(access_request(&stored)),
            event_id,
        })
    }

    /// Inserts a PENDING request of the caller for `finding_id` with its `access_requested`
    /// event, and returns the request with its purpose in plaintext and the event id.
    async fn insert_request(
        &self,
        transaction: &DatabaseTransaction,
        context: &CallContext,
        finding_id: &str,
        purpose: String,
    ) -> ServiceResult<(access_request::Model, String)> {
        let loaded = lock_finding(transaction, finding_id).await?;
        let row = access_request::Model {
            id: Uuid::now_v7().to_string(),
            record_id: loaded.id.clone(),
            requester_id: context.principal.user_id.clone(),
            purpose,
            state: AccessRequestState::Pending,
            requested_at: self.now(),
            approver_id: None,
            opinion: None,
            decided_at: None,
            expires_at: None,
        };
        let payload = proto::FindingAccessRequested {
            access_request_id: row.id.clone(),
            purpose: row.purpose.clone(),
        };
        let staged = self
            .stage_next_version(
                transaction,
                context,
                &loaded,
                "access_requested",
                pack(&payload),
            )
            .await?;
        let (event_id, _) = staged_or_conflict(staged, &loaded.id)?;
        let stored = row.clone().sealed(&self.keyring, loaded.confidentiality);
        access_request::Entity::insert(access_request::ActiveModel::from(stored).reset_all())
            .exec_without_returning(transaction)
            .await?;
        Ok((row, event_id))
    }

    pub(super) async fn decide(
        &self,
        context: &CallContext,
        request: proto::DecideAccessRequest,
    ) -> ServiceResult<proto::DecideAccessResponse> {
        let request_id = record_id("access_request_id", &request.access_request_id)?;
        let opinion = access_approval::opinion(&request.opinion)?;
        let expires_at = if request.approve {
            Some(access_approval::expiry(
                "expires_at",
                request.expires_at.as_ref(),
                self.now(),
            )?)
        } else {
            None
        };

        let transaction = trace_runtime::db::begin_write(&self.db).await?;
        let caller = &context.principal;
        // A caller who may not decide gets the error for a missing request, so the error does
        // not show whether the request exists.
        let denial = || {
            ServiceError::denied(format!(
                "access request {request_id} does not exist or {} may not decide it; a \
                 supervisor or head of the finding's department decides it",
                caller.user_id
            ))
        };
        let pending =
            match access_approval::find_request(&self.keyring, &transaction, &request_id).await {
                Ok(pending) => pending,
                Err(ServiceError::NotFound { .. }) => return Err(denial()),
                Err(error) => return Err(error),
            };
        let loaded = match lock_finding(&transaction, &pending.record_id).await {
            Ok(loaded) => loaded,
            // A request whose finding is gone gets the same answer as a missing request.
            Err(ServiceError::NotFound { .. }) => return Err(denial()),
            Err(error) => return Err(error),
        };
        if !self.decides_for(context, &loaded.department) {
            return Err(denial());
        }
        if caller.user_id == pending.requester_id {
            return Err(ServiceError::denied(format!(
                "the requester {} may not decide their own access request {}",
                caller.user_id, pending.id
            )));
        }
        if pending.state != AccessRequestState::Pending {
            return Err(ServiceError::wrong_state(
                "access request",
                &pending.id,
                pending.state.name(),
                "decide",
            ));
        }

        let decided = access_request::Model {
            state: if request.approve {
                AccessRequestState::Approved
            } else {
                AccessRequestState::Rejected
            },
            approver_id: Some(caller.user_id.clone()),
            opinion: Some(opinion),
            decided_at: Some(self.now()),
            expires_at,
            ..pending
        };
        let event_id = self
            .store_decision(&transaction, context, &loaded, &decided)
            .await?;
        self.commit(transaction).await?;
        Ok(proto::DecideAccessResponse {
            access_request: Some(access_request(&decided)),
            event_id,
        })
    }

    /// Stores the decision of a PENDING request of the finding `loaded` with its
    /// `access_approved` or `access_rejected` event, and returns the event id.
    async fn store_decision(
        &self,
        transaction: &DatabaseTransaction,
        context: &CallContext,
        loaded: &finding::Model,
        decided: &access_request::Model,
    ) -> ServiceResult<String> {
        let approved = decided.state == AccessRequestState::Approved;
        let action = if approved {
            "access_approved"
        } else {
            "access_rejected"
        };
        let payload = proto::FindingAccessDecided {
            access_request_id: decided.id.clone(),
            requester_id: decided.requester_id.clone(),
            approved,
            opinion: decided.opinion.clone().unwrap_or_default(),
            expires_at: timestamp_opt(decided.expires_at),
        };
        let staged = self
            .stage_next_version(transaction, context, loaded, action, pack(&payload))
            .await?;
        let (event_id, _) = staged_or_conflict(staged, &loaded.id)?;
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
            .filter(access_request::Column::Id.eq(decided.id.as_str()))
            .filter(access_request::Column::State.eq(AccessRequestState::Pending))
            .exec(transaction)
            .await?;
        if updated.rows_affected == 0 {
            return Err(ServiceError::Aborted {
                reason: format!(
                    "access request {} was decided after it was loaded. Retry the call",
                    decided.id
                ),
            });
        }
        Ok(event_id)
    }

    pub(super) async fn access_requests(
        &self,
        context: &CallContext,
        request: proto::ListAccessRequestsRequest,
    ) -> ServiceResult<proto::ListAccessRequestsResponse> {
        let finding_id = record_id("finding_id", &request.finding_id)?;
        let (row, _) = self
            .authorize_scope(context, &finding_id, ReadMethod::ListAccessRequests)
            .await?;
        let caller = &context.principal;
        let sees_all = self
            .finding_scope(context)
            .covers_department(&row.department);

        let mut query = access_request::Entity::find()
            .filter(access_request::Column::RecordId.eq(finding_id.as_str()));
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

    pub(super) async fn accept(
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

        let transaction = trace_runtime::db::begin_write(&self.db).await?;
        let response = self
            .store_acceptance(&transaction, context, version)
            .await?;
        self.commit(transaction).await?;
        Ok(response)
    }

    /// Stores the caller's acceptance of `version` with its `agreement.accepted` event. An
    /// acceptance stored before is returned as it is, without a second event.
    async fn store_acceptance(
        &self,
        transaction: &DatabaseTransaction,
        context: &CallContext,
        version: String,
    ) -> ServiceResult<proto::AcceptAgreementResponse> {
        let user_id = context.principal.user_id.clone();
        let existing = agreement::Entity::find_by_id((user_id.clone(), version.clone()))
            .one(transaction)
            .await?;

        if let Some(existing) = existing {
            return Ok(proto::AcceptAgreementResponse {
                agreement_version: existing.version,
                accepted_at: Some(timestamp(existing.accepted_at)),
                event_id: String::new(),
            });
        }

        let accepted_at = self.now();
        let accepted_versions = agreement::Entity::find()
            .filter(agreement::Column::UserId.eq(user_id.as_str()))
            .count(transaction)
            .await?;
        let spec = EventSpec {
            entity_type: AGREEMENT_ENTITY,
            entity_id: user_id.clone(),
            entity_version: accepted_versions + 1,
            action: "accepted",
            confidentiality: Confidentiality::Internal,
            payload: pack(&proto::FindingAgreementAccepted {
                agreement_version: version.clone(),
            }),
        };
        let envelope = event::envelope(SERVICE, context, self.clock.as_ref(), spec);
        self.outbox.stage(transaction, &envelope).await?;

        agreement::Entity::insert(agreement::ActiveModel {
            user_id: Set(user_id),
            version: Set(version.clone()),
            accepted_at: Set(accepted_at),
        })
        .exec_without_returning(transaction)
        .await?;
        Ok(proto::AcceptAgreementResponse {
            agreement_version: version,
            accepted_at: Some(timestamp(accepted_at)),
            event_id: envelope.event_id,
        })
    }
}
