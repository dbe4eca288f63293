//! Access requests for CONFIDENTIAL and SECRET findings and inspection reports, their
//! decisions by a supervisor or head of the finding's department (of the administration
//! department for a report), and the confidentiality agreement. A report request is the
//! inspection's `report_access_*` events, see [`super::report_access`]. Reads are checked by
//! the rule in `trace_runtime::access_approval`, and requests and decisions are the finding's
//! own `access_requested`, `access_approved` and `access_rejected` events.
//!
//! Each RPC checks its input and the caller first and then writes in one transaction through
//! one small function (`insert_request`, `store_decision`, `store_acceptance`). The checks and
//! the reads and writes of the request and acceptance rows come from
//! `trace_runtime::access_approval::workflow`.

use sea_orm::DatabaseTransaction;
use trace_proto::inspection::v1 as proto;
use trace_runtime::access_approval::workflow::{self, AccessDecision};
use trace_runtime::access_approval::{self, AccessRequestState, access_request};
use trace_runtime::clock::{timestamp, timestamp_opt};
use trace_runtime::context::CallContext;
use trace_runtime::event::pack;
use trace_runtime::{ServiceError, ServiceResult};

use super::access::ReadMethod;
use super::findings::lock_finding;
use super::report_access::REPORT_DECIDERS;
use super::reports::lock_inspection;
use super::{InspectionHandler, record_id};
use crate::entity::finding;
use crate::events::SERVICE;

/// Who decides the access requests for a finding, as named in the error of a caller who may
/// not. A head in the company directory decides too, so the text names a "head of" and not
/// "department head".
const DECIDERS: &str = "a supervisor or head of the finding's department";

/// Who decides a request that is missing, or whose record is gone, so the error names the
/// deciders of both kinds of request.
const ANY_DECIDERS: &str = "a supervisor or head of the finding's department, or of the \
                            administration department for a report";

fn state(state: AccessRequestState) -> proto::AccessRequestState {
    match state {
        AccessRequestState::Pending => proto::AccessRequestState::Pending,
        AccessRequestState::Approved => proto::AccessRequestState::Approved,
        AccessRequestState::Rejected => proto::AccessRequestState::Rejected,
    }
}

/// The record an access request is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Finding,
    Report,
}

/// Returns which one of `finding_id` and `inspection_id` a request sets, with its checked id.
/// Exactly one of them must be set.
fn target(finding_id: &str, inspection_id: &str) -> ServiceResult<(Target, String)> {
    match (finding_id.is_empty(), inspection_id.is_empty()) {
        (false, true) => Ok((Target::Finding, record_id("finding_id", finding_id)?)),
        (true, false) => Ok((Target::Report, record_id("inspection_id", inspection_id)?)),
        (true, true) => Err(ServiceError::invalid(
            "finding_id",
            "",
            "is required unless inspection_id is set. Set exactly one of them",
        )),
        (false, false) => Err(ServiceError::invalid(
            "inspection_id",
            inspection_id,
            "must be empty when finding_id is set. Set exactly one of them",
        )),
    }
}

fn access_request(model: &access_request::Model, target: Target) -> proto::AccessRequest {
    let (finding_id, inspection_id) = match target {
        Target::Finding => (model.record_id.clone(), String::new()),
        Target::Report => (String::new(), model.record_id.clone()),
    };
    proto::AccessRequest {
        access_request_id: model.id.clone(),
        finding_id,
        inspection_id,
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
        let by_directory = self
            .directory
            .department(department)
            .is_some_and(|headed| headed.head == caller.user_id);
        workflow::decides_for(caller, department) || by_directory
    }

    pub(super) async fn ask_access(
        &self,
        context: &CallContext,
        request: proto::RequestAccessRequest,
    ) -> ServiceResult<proto::RequestAccessResponse> {
        let (target, record_id) = target(&request.finding_id, &request.inspection_id)?;
        let purpose = access_approval::purpose(&request.purpose)?;
        if target == Target::Report {
            return self.ask_report_access(context, &record_id, purpose).await;
        }
        let finding_id = record_id;
        let (row, participant) = self
            .authorize_scope(context, &finding_id, ReadMethod::RequestAccess)
            .await?;
        workflow::check_requestable(
            "finding",
            &row.id,
            row.confidentiality,
            participant,
            &context.principal.user_id,
        )?;

        let transaction = trace_runtime::db::begin_write(&self.db).await?;
        let (stored, event_id) = self
            .insert_request(&transaction, context, &finding_id, purpose)
            .await?;
        self.commit(transaction).await?;
        Ok(proto::RequestAccessResponse {
            access_request: Some(access_request(&stored, Target::Finding)),
            event_id,
        })
    }

    async fn ask_report_access(
        &self,
        context: &CallContext,
        inspection_id: &str,
        purpose: String,
    ) -> ServiceResult<proto::RequestAccessResponse> {
        let (row, participant) = self
            .authorize_report_scope(context, inspection_id, ReadMethod::RequestAccess)
            .await?;
        workflow::check_requestable(
            "report",
            &row.id,
            row.report_confidentiality,
            participant,
            &context.principal.user_id,
        )?;

        let transaction = trace_runtime::db::begin_write(&self.db).await?;
        let (stored, event_id) = self
            .insert_report_request(&transaction, context, inspection_id, purpose)
            .await?;
        self.commit(transaction).await?;
        Ok(proto::RequestAccessResponse {
            access_request: Some(access_request(&stored, Target::Report)),
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
        let row =
            workflow::new_request(&loaded.id, &context.principal.user_id, &purpose, self.now());
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
        workflow::insert_request(&self.keyring, transaction, &row, loaded.confidentiality).await?;
        Ok((row, event_id))
    }

    pub(super) async fn decide(
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

        let transaction = trace_runtime::db::begin_write(&self.db).await?;
        let caller = &context.principal;
        let pending = workflow::find_for_decision(
            &self.keyring,
            &transaction,
            &decision,
            &caller.user_id,
            ANY_DECIDERS,
        )
        .await?;
        let loaded = match lock_finding(&transaction, &pending.record_id).await {
            Ok(loaded) => loaded,
            // A request whose record is not a finding is for the report of an inspection.
            Err(ServiceError::NotFound { .. }) => {
                let decided = self
                    .decide_report_request(&transaction, context, &decision, &pending)
                    .await?;
                self.commit(transaction).await?;
                return Ok(decided);
            }
            Err(error) => return Err(error),
        };
        let may_decide = self.decides_for(context, &loaded.department);
        workflow::check_decider(caller, &pending, may_decide, DECIDERS)?;

        let decided = decision.apply(&pending, &caller.user_id, self.now());
        let event_id = self
            .store_decision(&transaction, context, &loaded, &decided)
            .await?;
        self.commit(transaction).await?;
        Ok(proto::DecideAccessResponse {
            access_request: Some(access_request(&decided, Target::Finding)),
            event_id,
        })
    }

    /// Decides `pending`, a request for the report of an inspection, inside `transaction`.
    async fn decide_report_request(
        &self,
        transaction: &DatabaseTransaction,
        context: &CallContext,
        decision: &AccessDecision,
        pending: &access_request::Model,
    ) -> ServiceResult<proto::DecideAccessResponse> {
        let caller = &context.principal;
        let loaded = match lock_inspection(transaction, &pending.record_id).await {
            Ok(loaded) => loaded,
            // A request whose record is gone gets the error of a missing request.
            Err(ServiceError::NotFound { .. }) => {
                return Err(workflow::not_a_decider(
                    &pending.id,
                    &caller.user_id,
                    ANY_DECIDERS,
                ));
            }
            Err(error) => return Err(error),
        };
        let may_decide = self.decides_for(context, &self.administration_department);
        workflow::check_decider(caller, pending, may_decide, REPORT_DECIDERS)?;

        let decided = decision.apply(pending, &caller.user_id, self.now());
        let event_id = self
            .store_report_decision(transaction, context, &loaded, &decided)
            .await?;
        Ok(proto::DecideAccessResponse {
            access_request: Some(access_request(&decided, Target::Report)),
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
        let stored =
            workflow::store_decision(&self.keyring, transaction, decided, loaded.confidentiality)
                .await?;
        if !stored {
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
        let (target, record_id) = target(&request.finding_id, &request.inspection_id)?;
        if target == Target::Report {
            return self.report_access_requests(context, &record_id).await;
        }
        let finding_id = record_id;
        let (row, _) = self
            .authorize_scope(context, &finding_id, ReadMethod::ListAccessRequests)
            .await?;
        let caller = &context.principal;
        let sees_all = self
            .finding_scope(context)
            .covers_department(&row.department);
        let requester = (!sees_all).then_some(caller.user_id.as_str());
        let rows = workflow::list_requests(&self.keyring, &self.db, &finding_id, requester).await?;
        Ok(proto::ListAccessRequestsResponse {
            access_requests: rows
                .iter()
                .map(|row| access_request(row, Target::Finding))
                .collect(),
        })
    }

    /// Lists the requests for the report of `inspection_id`: all of them to a caller who reads
    /// every report or decides them, and otherwise only the caller's own.
    async fn report_access_requests(
        &self,
        context: &CallContext,
        inspection_id: &str,
    ) -> ServiceResult<proto::ListAccessRequestsResponse> {
        self.authorize_report_scope(context, inspection_id, ReadMethod::ListAccessRequests)
            .await?;
        let caller = &context.principal;
        let sees_all = self.finding_scope(context).is_whole()
            || self.decides_for(context, &self.administration_department);
        let requester = (!sees_all).then_some(caller.user_id.as_str());
        let rows =
            workflow::list_requests(&self.keyring, &self.db, inspection_id, requester).await?;
        Ok(proto::ListAccessRequestsResponse {
            access_requests: rows
                .iter()
                .map(|row| access_request(row, Target::Report))
                .collect(),
        })
    }

    pub(super) async fn accept(
        &self,
        context: &CallContext,
        request: proto::AcceptAgreementRequest,
    ) -> ServiceResult<proto::AcceptAgreementResponse> {
        let version =
            workflow::accepted_version(&request.agreement_version, &self.agreement_version)?;

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
        let acceptance = workflow::accept_agreement(
            transaction,
            &context.principal.user_id,
            &version,
            self.now(),
        )
        .await?;
        let payload = pack(&proto::FindingAgreementAccepted {
            agreement_version: version.clone(),
        });
        let event_id = workflow::stage_acceptance(
            &self.outbox,
            transaction,
            SERVICE,
            context,
            self.clock.as_ref(),
            &acceptance,
            payload,
        )
        .await?;
        Ok(proto::AcceptAgreementResponse {
            agreement_version: version,
            accepted_at: Some(timestamp(acceptance.accepted_at)),
            event_id,
        })
    }
}
