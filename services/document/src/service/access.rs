//! Access to the content of CONFIDENTIAL and SECRET documents: requests, decisions by the
//! owner department's head, the confidentiality agreement, and the check every content read
//! passes. A denied read is recorded as a `read_denied` event before the caller gets
//! `PERMISSION_DENIED`, and a permitted read names the request it used.
//!
//! The input checks, the requester and state checks of a decision and the agreement
//! acceptance come from `trace_runtime::access_approval::workflow`. Documents keep their own
//! request table, because a request may be limited to one revision, and their own decider
//! rule: only a department head of the document's department decides.

use sea_orm::ActiveValue::Set;
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
use trace_proto::common::v1::Confidentiality;
use trace_proto::document::v1 as proto;
use trace_runtime::access_approval;
use trace_runtime::access_approval::workflow::{self, AccessDecision};
use trace_runtime::clock::{timestamp, timestamp_opt};
use trace_runtime::context::{CallContext, Clearance, role};
use trace_runtime::event::pack;
use trace_runtime::read_scope::ReadScope;
use trace_runtime::seal::Keyring;
use trace_runtime::sealed_text::{SealedRow, open_rows};
use trace_runtime::validate;
use trace_runtime::{ServiceError, ServiceResult};
use uuid::Uuid;

use super::scope::ReadMethod;
use super::write::{AttemptError, lock_document, require, with_retries};
use super::{DocumentHandler, SERVICE, convert};
use crate::entity::{access_request, document, revision};
use crate::sealing::seal_access_opinion;
use crate::state::AccessRequestState;

/// The reason for denying a content read, and the access request it was judged by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Denial {
    pub(super) reason: String,
    pub(super) access_request_id: Option<String>,
}

impl Denial {
    fn new(reason: impl Into<String>, request: Option<&access_request::Model>) -> Self {
        Self {
            reason: reason.into(),
            access_request_id: request.map(|request| request.id.clone()),
        }
    }
}

/// Inputs of the read check: the caller and the stored records.
pub(super) struct ReadCheck<'a> {
    pub(super) caller: &'a str,
    pub(super) clearance: Option<Clearance>,
    pub(super) document: &'a document::Model,
    pub(super) revision: i32,
    pub(super) request: Option<&'a access_request::Model>,
    pub(super) agreement_accepted: bool,
    pub(super) now: i64,
}

/// Returns the confidentiality of a stored document; an unknown number counts as SECRET.
pub(super) fn level(document: &document::Model) -> Confidentiality {
    access_approval::level_of(document.confidentiality)
}

pub(super) fn clearance_of(level: Confidentiality) -> Clearance {
    match level {
        Confidentiality::Public => Clearance::Public,
        Confidentiality::Internal => Clearance::Internal,
        Confidentiality::Confidential => Clearance::Confidential,
        Confidentiality::Secret | Confidentiality::Unspecified => Clearance::Secret,
    }
}

/// Decides whether a content read is allowed. `Ok(Some(id))` names the access request the
/// read uses, `Ok(None)` means none was needed. Pure, so every rule has a unit test.
pub(super) fn check_read(check: &ReadCheck<'_>) -> Result<Option<String>, Denial> {
    let level = level(check.document);
    if let Some(clearance) = check.clearance
        && clearance < clearance_of(level)
    {
        return Err(Denial::new(
            format!(
                "the caller's clearance {clearance:?} is below the document's level {}",
                level.as_str_name()
            ),
            None,
        ));
    }
    if level < Confidentiality::Confidential || check.caller == check.document.drafter_id {
        return Ok(None);
    }

    let Some(request) = check.request else {
        return Err(Denial::new(
            "no approved access request of the caller covers this document",
            None,
        ));
    };
    if request.requester_id != check.caller || request.document_id != check.document.id {
        return Err(Denial::new(
            format!(
                "access request {} is not the caller's request for this document",
                request.id
            ),
            None,
        ));
    }
    if request.state != AccessRequestState::Approved {
        return Err(Denial::new(
            format!("access request {} is {}", request.id, request.state.name()),
            Some(request),
        ));
    }
    match request.expires_at {
        Some(expires_at) if check.now < expires_at => {}
        expires_at => {
            let ended = expires_at.map_or_else(String::new, |micros| {
                format!(
                    " at {}",
                    trace_runtime::clock::from_micros(micros).to_rfc3339()
                )
            });
            return Err(Denial::new(
                format!("access request {} expired{ended}", request.id),
                Some(request),
            ));
        }
    }
    if request.revision != 0 && request.revision != check.revision {
        return Err(Denial::new(
            format!(
                "access request {} covers revision {}, not {}",
                request.id, request.revision, check.revision
            ),
            Some(request),
        ));
    }
    if level == Confidentiality::Secret && !check.agreement_accepted {
        return Err(Denial::new(
            "reading a SECRET document needs the caller's acceptance of the current \
             confidentiality agreement",
            Some(request),
        ));
    }
    Ok(Some(request.id.clone()))
}

pub(super) fn access_request(model: &access_request::Model) -> proto::AccessRequest {
    proto::AccessRequest {
        access_request_id: model.id.clone(),
        document_id: model.document_id.clone(),
        requester_id: model.requester_id.clone(),
        purpose: model.purpose.clone(),
        revision: convert::count(model.revision),
        state: proto::AccessRequestState::from(model.state) as i32,
        requested_at: Some(timestamp(model.requested_at)),
        approver_id: model.approver_id.clone().unwrap_or_default(),
        opinion: model.opinion.clone().unwrap_or_default(),
        decided_at: timestamp_opt(model.decided_at),
        expires_at: timestamp_opt(model.expires_at),
    }
}

impl DocumentHandler {
    pub(super) async fn request_access(
        &self,
        context: &CallContext,
        request: proto::RequestAccessRequest,
    ) -> ServiceResult<proto::RequestAccessResponse> {
        let document_id = validate::record_id("document_id", &request.document_id)?.to_string();
        let purpose = access_approval::purpose(&request.purpose)?;
        let revision = i32::try_from(request.revision).map_err(|_| {
            ServiceError::invalid(
                "revision",
                &request.revision.to_string(),
                "exceeds the largest revision number",
            )
        })?;

        with_retries("request access", || async {
            let txn = self.begin().await?;
            let loaded = lock_document(&txn, &document_id).await?;
            if level(&loaded) < Confidentiality::Confidential {
                return Err(ServiceError::wrong_state(
                    "document",
                    &loaded.id,
                    level(&loaded).as_str_name(),
                    "request access to",
                )
                .into());
            }
            if revision > loaded.revision {
                return Err(ServiceError::invalid(
                    "revision",
                    &revision.to_string(),
                    format!("the document has {} revisions", loaded.revision),
                )
                .into());
            }
            let row = access_request::Model {
                id: Uuid::now_v7().to_string(),
                document_id: loaded.id.clone(),
                requester_id: context.principal.user_id.clone(),
                purpose: purpose.clone(),
                revision,
                state: AccessRequestState::Pending,
                requested_at: self.now(),
                approver_id: None,
                opinion: None,
                decided_at: None,
                expires_at: None,
            };
            let payload = proto::AccessRequested {
                access_request_id: row.id.clone(),
                purpose: row.purpose.clone(),
                revision: convert::count(revision),
            };
            let (_, event_id) = self
                .record_change(
                    &txn,
                    context,
                    &loaded,
                    Default::default(),
                    "access_requested",
                    pack(&payload),
                )
                .await?;
            let stored = row.clone().sealed(&self.keyring, loaded.confidentiality);
            access_request::Entity::insert(access_request::ActiveModel::from(stored).reset_all())
                .exec_without_returning(&txn)
                .await?;
            self.commit(txn).await?;
            Ok(proto::RequestAccessResponse {
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
        let decision = AccessDecision::parse(
            &request.access_request_id,
            request.approve,
            &request.opinion,
            request.expires_at.as_ref(),
            self.now(),
        )?;

        with_retries("decide access", || async {
            let txn = self.begin().await?;
            let pending =
                find_access_request(&self.keyring, &txn, &decision.access_request_id).await?;
            let loaded = lock_document(&txn, &pending.document_id).await?;
            let caller = &context.principal;
            require(
                caller.has_role(role::DEPARTMENT_HEAD) && caller.department == loaded.department,
                || {
                    format!(
                        "only a department head of {} decides access to its documents",
                        loaded.department
                    )
                },
            )?;
            workflow::check_undecided(
                &caller.user_id,
                &pending.id,
                &pending.requester_id,
                pending.state.name(),
            )?;

            let state = if decision.approve {
                AccessRequestState::Approved
            } else {
                AccessRequestState::Rejected
            };
            let decided = access_request::Model {
                state,
                approver_id: Some(caller.user_id.clone()),
                opinion: Some(decision.opinion.clone()),
                decided_at: Some(self.now()),
                expires_at: decision.expires_at,
                ..pending.clone()
            };
            let payload = proto::AccessDecided {
                access_request_id: pending.id.clone(),
                requester_id: pending.requester_id.clone(),
                approved: decision.approve,
                opinion: decision.opinion.clone(),
                expires_at: timestamp_opt(decision.expires_at),
            };
            let (_, event_id) = self
                .record_change(
                    &txn,
                    context,
                    &loaded,
                    Default::default(),
                    decision.action(),
                    pack(&payload),
                )
                .await?;
            let updated = access_request::Entity::update_many()
                .set(access_request::ActiveModel {
                    state: Set(state),
                    approver_id: Set(decided.approver_id.clone()),
                    opinion: Set(seal_access_opinion(
                        &self.keyring,
                        loaded.confidentiality,
                        &pending.id,
                        decided.opinion.clone(),
                    )),
                    decided_at: Set(decided.decided_at),
                    expires_at: Set(decided.expires_at),
                    ..Default::default()
                })
                .filter(access_request::Column::Id.eq(pending.id.as_str()))
                .filter(access_request::Column::State.eq(AccessRequestState::Pending))
                .exec(&txn)
                .await?;
            // The request was read before the document lock was taken, so a concurrent
            // decision may have come first. The attempt then runs again and fails on the
            // state check.
            if updated.rows_affected == 0 {
                return Err(AttemptError::Conflict(format!(
                    "access request {} was decided after it was loaded",
                    pending.id
                )));
            }
            self.commit(txn).await?;
            Ok(proto::DecideAccessResponse {
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
        let document_id = validate::record_id("document_id", &request.document_id)?.to_string();
        let method = ReadMethod::ListAccessRequests;
        let (document, approval) = self
            .authorize_records(context, &document_id, method)
            .await?;
        let caller = &context.principal;
        let sees_all = caller.department == document.department
            || caller.has_role(role::AUDIT)
            || caller.has_role(role::ADMINISTRATION);

        let mut query = access_request::Entity::find()
            .filter(access_request::Column::DocumentId.eq(document_id.as_str()));
        if !sees_all {
            query = query.filter(access_request::Column::RequesterId.eq(caller.user_id.as_str()));
        }
        let rows = query
            .order_by_asc(access_request::Column::Id)
            .all(&self.db)
            .await?;
        let rows = open_rows(&self.keyring, rows)?;
        self.record_records_read(context, document, method, approval)
            .await?;
        Ok(proto::ListAccessRequestsResponse {
            access_requests: rows.iter().map(access_request).collect(),
        })
    }

    pub(super) async fn accept_agreement(
        &self,
        context: &CallContext,
        request: proto::AcceptAgreementRequest,
    ) -> ServiceResult<proto::AcceptAgreementResponse> {
        let version = workflow::accepted_version(
            &request.agreement_version,
            &self.settings.agreement_version,
        )?;

        with_retries("accept agreement", || async {
            let txn = self.begin().await?;
            let acceptance =
                workflow::accept_agreement(&txn, &context.principal.user_id, &version, self.now())
                    .await?;
            let payload = pack(&proto::AgreementAccepted {
                agreement_version: version.clone(),
            });
            let event_id = workflow::stage_acceptance(
                &self.outbox,
                &txn,
                SERVICE,
                context,
                self.clock.as_ref(),
                &acceptance,
                payload,
            )
            .await?;
            self.commit(txn).await?;
            Ok(proto::AcceptAgreementResponse {
                agreement_version: version.clone(),
                accepted_at: Some(timestamp(acceptance.accepted_at)),
                event_id,
            })
        })
        .await
    }

    /// Runs the read check for `revision` of `document` and returns the access request the
    /// read uses. A denial is recorded as a `read_denied` event and becomes
    /// `PERMISSION_DENIED` naming that event.
    pub(super) async fn authorize_read(
        &self,
        context: &CallContext,
        document: &document::Model,
        revision: &revision::Model,
        presented: Option<&str>,
    ) -> ServiceResult<Option<String>> {
        let caller = context.principal.user_id.as_str();
        let request = match presented {
            // A presented id that does not exist is denied below; other failures propagate.
            Some(id) => match find_access_request(&self.keyring, &self.db, id).await {
                Ok(request) => Some(request),
                Err(ServiceError::NotFound { .. }) => None,
                Err(error) => return Err(error),
            },
            None => self.latest_approval(&document.id, caller).await?,
        };
        let agreement_accepted =
            access_approval::agreement_accepted(&self.db, caller, &self.settings.agreement_version)
                .await?;
        let check = ReadCheck {
            caller,
            clearance: context.clearance,
            document,
            revision: revision.revision,
            request: request.as_ref(),
            agreement_accepted,
            now: self.now(),
        };
        let denial = match check_read(&check) {
            Ok(used) => return Ok(used),
            Err(denial) => match (presented, &denial.access_request_id) {
                // A presented id that does not exist is denied like another's request.
                (Some(id), None) if request.is_none() => Denial {
                    reason: format!(
                        "access request {id} is not the caller's request for this document"
                    ),
                    access_request_id: None,
                },
                _ => denial,
            },
        };

        let payload = proto::DocumentReadDenied {
            revision: convert::count(revision.revision),
            reason: denial.reason.clone(),
            access_request_id: denial.access_request_id.clone().unwrap_or_default(),
            method: ReadMethod::ReadContent.name().to_owned(),
        };
        let event_id = self
            .record_read_denied(context, &document.id, &payload)
            .await?;
        tracing::info!(
            document_id = %document.id,
            user_id = caller,
            %event_id,
            reason = %denial.reason,
            "content read denied"
        );
        // A caller who may not see the document gets the error for a missing one, so the
        // reason, which shows that it exists, is only in the recorded event.
        let scope = ReadScope::of(&context.principal);
        let (visible, _) = self
            .judge_records(context, &scope, document, ReadMethod::GetDocument)
            .await?;
        if !visible {
            return Err(ReadMethod::ReadContent
                .guarded(&document.id)
                .denial_error(context, Ok(event_id)));
        }
        Err(ServiceError::denied_and_recorded(
            format!(
                "{}; the denial is recorded as event {event_id}",
                denial.reason
            ),
            event_id,
        ))
    }

    /// Finds the caller's approved, unexpired request for a document with the latest expiry.
    async fn latest_approval(
        &self,
        document_id: &str,
        requester_id: &str,
    ) -> ServiceResult<Option<access_request::Model>> {
        let now = self.now();
        let newest = access_request::Entity::find()
            .filter(access_request::Column::DocumentId.eq(document_id))
            .filter(access_request::Column::RequesterId.eq(requester_id))
            .filter(access_request::Column::State.eq(AccessRequestState::Approved))
            .filter(access_request::Column::ExpiresAt.gt(now))
            .order_by_desc(access_request::Column::ExpiresAt)
            .one(&self.db)
            .await?;
        if newest.is_some() {
            return Ok(newest);
        }
        // Without a current approval, judge by the newest request, so the denial message
        // names its state: pending, rejected or expired.
        Ok(access_request::Entity::find()
            .filter(access_request::Column::DocumentId.eq(document_id))
            .filter(access_request::Column::RequesterId.eq(requester_id))
            .order_by_desc(access_request::Column::Id)
            .one(&self.db)
            .await?)
    }
}

async fn find_access_request<C: sea_orm::ConnectionTrait>(
    keyring: &Keyring,
    connection: &C,
    id: &str,
) -> ServiceResult<access_request::Model> {
    let row = access_request::Entity::find_by_id(id.to_owned())
        .one(connection)
        .await?
        .ok_or_else(|| ServiceError::not_found("access request", id))?;
    Ok(row.opened(keyring)?)
}

#[cfg(test)]
mod tests;
