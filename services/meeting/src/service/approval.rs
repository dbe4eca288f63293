//! Access requests for CONFIDENTIAL and SECRET meetings, their decisions by a supervisor or
//! department head of the meeting's department, and the confidentiality agreement. Reads are
//! checked by the rule in `trace_runtime::access_approval`, and requests and decisions are
//! the meeting's own `access_requested`, `access_approved` and `access_rejected` events.

use trace_proto::meeting::v1 as proto;
use trace_runtime::access_approval::workflow::{self, AccessDecision};
use trace_runtime::access_approval::{self, AccessRequestState, access_request};
use trace_runtime::clock::{timestamp, timestamp_opt};
use trace_runtime::context::CallContext;
use trace_runtime::event::pack;
use trace_runtime::read_scope::ReadScope;
use trace_runtime::{ServiceResult, validate};

use super::access::ReadMethod;
use super::write::{AttemptError, AttemptResult, find_meeting, with_retries};
use super::{MeetingHandler, SERVICE};

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
        meeting_id: model.record_id.clone(),
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

impl MeetingHandler {
    pub(super) async fn request_access(
        &self,
        context: &CallContext,
        request: proto::RequestAccessRequest,
    ) -> ServiceResult<proto::RequestAccessResponse> {
        let meeting_id = validate::record_id("meeting_id", &request.meeting_id)?.to_string();
        let purpose = access_approval::purpose(&request.purpose)?;
        let (model, participant) = self
            .authorize_scope(context, &meeting_id, ReadMethod::RequestAccess)
            .await?;
        let caller = context.principal.user_id.as_str();
        workflow::check_requestable(
            "meeting",
            &model.id,
            model.confidentiality,
            participant,
            caller,
        )?;

        with_retries("request meeting access", || async {
            let txn = self.begin().await?;
            let loaded = find_meeting(&self.keyring, &txn, &meeting_id).await?;
            let row = workflow::new_request(&loaded.id, caller, &purpose, self.now());
            let payload = proto::MeetingAccessRequested {
                access_request_id: row.id.clone(),
                purpose: row.purpose.clone(),
            };
            let (_, event_id) = self
                .change_meeting(
                    &txn,
                    context,
                    &loaded,
                    Default::default(),
                    "access_requested",
                    pack(&payload),
                )
                .await?;
            workflow::insert_request(&self.keyring, &txn, &row, loaded.confidentiality).await?;
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
        let decision = AccessDecision::parse(
            &request.access_request_id,
            request.approve,
            &request.opinion,
            request.expires_at.as_ref(),
            self.now(),
        )?;
        let caller = &context.principal;
        let deciders = workflow::department_deciders("meeting");

        with_retries("decide meeting access", || async {
            let txn = self.begin().await?;
            let pending = workflow::find_for_decision(
                &self.keyring,
                &txn,
                &decision,
                &caller.user_id,
                &deciders,
            )
            .await?;
            let loaded = find_meeting(&self.keyring, &txn, &pending.record_id).await?;
            let may_decide = workflow::decides_for(caller, &loaded.department);
            workflow::check_decider(caller, &pending, may_decide, &deciders)?;

            let decided = decision.apply(&pending, &caller.user_id, self.now());
            let payload = proto::MeetingAccessDecided {
                access_request_id: pending.id.clone(),
                requester_id: pending.requester_id.clone(),
                approved: decision.approve,
                opinion: decision.opinion.clone(),
                expires_at: timestamp_opt(decision.expires_at),
            };
            let (_, event_id) = self
                .change_meeting(
                    &txn,
                    context,
                    &loaded,
                    Default::default(),
                    decision.action(),
                    pack(&payload),
                )
                .await?;
            let stored =
                workflow::store_decision(&self.keyring, &txn, &decided, loaded.confidentiality)
                    .await?;
            if !stored {
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
        let meeting_id = validate::record_id("meeting_id", &request.meeting_id)?.to_string();
        let (model, _) = self
            .authorize_scope(context, &meeting_id, ReadMethod::ListAccessRequests)
            .await?;
        let caller = &context.principal;
        let sees_all = ReadScope::of(caller).covers_department(&model.department);
        let requester = (!sees_all).then_some(caller.user_id.as_str());
        let rows = workflow::list_requests(&self.keyring, &self.db, &meeting_id, requester).await?;
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
            let payload = pack(&proto::MeetingAgreementAccepted {
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
            AttemptResult::Ok(proto::AcceptAgreementResponse {
                agreement_version: version.clone(),
                accepted_at: Some(timestamp(acceptance.accepted_at)),
                event_id,
            })
        })
        .await
    }
}
