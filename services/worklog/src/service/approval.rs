//! GetReport and GetCommunication, and access requests for CONFIDENTIAL and SECRET reports and communications with
//! their decisions and the confidentiality agreement. The transaction steps come from
//! `trace_runtime::access_approval::workflow`; this module adds the worklog's records and
//! events: `access_requested`, `access_approved` and `access_rejected` of the record, and
//! `accepted` of the entity `agreement`.

use trace_proto::worklog::v1 as proto;
use trace_runtime::access_approval::workflow::{self, AccessDecision};
use trace_runtime::access_approval::{self, AccessRequestState, access_request};
use trace_runtime::clock::{timestamp, timestamp_opt};
use trace_runtime::context::CallContext;
use trace_runtime::event::pack;
use trace_runtime::read_scope::ReadScope;
use trace_runtime::{ServiceError, ServiceResult, validate};

use super::confidential::{ReadMethod, Record, find_communication, find_record};
use super::views::communication_views;
use super::write::{AttemptError, AttemptResult, find_report, with_retries};
use super::{SERVICE, WorklogHandler, access, convert};

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
        record_id: model.record_id.clone(),
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

impl WorklogHandler {
    pub(super) async fn get_report(
        &self,
        context: &CallContext,
        request: proto::GetReportRequest,
    ) -> ServiceResult<proto::GetReportResponse> {
        let report_id = validate::record_id("report_id", &request.report_id)?.to_string();
        let found = find_report(&self.db, &report_id).await.map(Record::Report);
        let method = ReadMethod::GetReport;
        let (record, takes_part) = self
            .authorize_scope(context, "report", &report_id, found, method)
            .await?;
        let grant = self
            .authorize_read(context, &record, takes_part, method)
            .await?;
        let mut read = self
            .record_reads(context, method, vec![record], std::slice::from_ref(&grant))
            .await?;
        let Some(Record::Report(report)) = read.pop() else {
            return Err(ServiceError::Internal(anyhow::anyhow!(
                "report {report_id} was not returned by its read"
            )));
        };
        Ok(proto::GetReportResponse {
            report: Some(self.report_view(&self.db, &report).await?),
        })
    }

    pub(super) async fn get_communication(
        &self,
        context: &CallContext,
        request: proto::GetCommunicationRequest,
    ) -> ServiceResult<proto::GetCommunicationResponse> {
        let communication_id =
            validate::record_id("communication_id", &request.communication_id)?.to_string();
        let found = find_communication(&self.keyring, &self.db, &communication_id)
            .await
            .map(Record::Communication);
        let method = ReadMethod::GetCommunication;
        let (record, takes_part) = self
            .authorize_scope(context, "communication", &communication_id, found, method)
            .await?;
        let grant = self
            .authorize_read(context, &record, takes_part, method)
            .await?;
        let mut read = self
            .record_reads(context, method, vec![record], std::slice::from_ref(&grant))
            .await?;
        let Some(Record::Communication(row)) = read.pop() else {
            return Err(ServiceError::Internal(anyhow::anyhow!(
                "communication {communication_id} was not returned by its read"
            )));
        };
        let mut views = communication_views(&self.db, std::slice::from_ref(&row)).await?;
        Ok(proto::GetCommunicationResponse {
            communication: views.pop(),
        })
    }

    pub(super) async fn request_access(
        &self,
        context: &CallContext,
        request: proto::RequestAccessRequest,
    ) -> ServiceResult<proto::RequestAccessResponse> {
        let record_id = validate::record_id("record_id", &request.record_id)?.to_string();
        let purpose = access_approval::purpose(&request.purpose)?;
        let found = find_record(&self.keyring, &self.db, &record_id).await;
        let (record, takes_part) = self
            .authorize_scope(
                context,
                "record",
                &record_id,
                found,
                ReadMethod::RequestAccess,
            )
            .await?;
        let caller = context.principal.user_id.as_str();
        workflow::check_requestable(
            record.noun(),
            record.id(),
            record.confidentiality(),
            takes_part,
            caller,
        )?;

        with_retries("request access", || async {
            let txn = self.begin().await?;
            let loaded = find_record(&self.keyring, &txn, &record_id).await?;
            let row = workflow::new_request(loaded.id(), caller, &purpose, self.now());
            let payload = proto::AccessRequested {
                access_request_id: row.id.clone(),
                purpose: row.purpose.clone(),
            };
            let (_, event_id) = self
                .record_event(&txn, context, &loaded, "access_requested", pack(&payload))
                .await?;
            workflow::insert_request(&self.keyring, &txn, &row, loaded.confidentiality()).await?;
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

        with_retries("decide access", || async {
            let txn = self.begin().await?;
            let pending = workflow::find_for_decision(
                &self.keyring,
                &txn,
                &decision,
                &caller.user_id,
                &workflow::department_deciders("record"),
            )
            .await?;
            let loaded = find_record(&self.keyring, &txn, &pending.record_id).await?;
            workflow::check_decider(
                caller,
                &pending,
                workflow::decides_for(caller, loaded.department()),
                &workflow::department_deciders(loaded.noun()),
            )?;

            let decided = decision.apply(&pending, &caller.user_id, self.now());
            let payload = proto::AccessDecided {
                access_request_id: pending.id.clone(),
                requester_id: pending.requester_id.clone(),
                approved: decision.approve,
                opinion: decision.opinion.clone(),
                expires_at: timestamp_opt(decision.expires_at),
            };
            let (_, event_id) = self
                .record_event(&txn, context, &loaded, decision.action(), pack(&payload))
                .await?;
            let stored =
                workflow::store_decision(&self.keyring, &txn, &decided, loaded.confidentiality())
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
        let record_id = validate::record_id("record_id", &request.record_id)?.to_string();
        let found = find_record(&self.keyring, &self.db, &record_id).await;
        let (record, _) = self
            .authorize_scope(
                context,
                "record",
                &record_id,
                found,
                ReadMethod::ListAccessRequests,
            )
            .await?;
        let caller = &context.principal;
        let sees_all = access::reads_everything(caller)
            || ReadScope::of(caller).covers_department(record.department());
        let requester = (!sees_all).then_some(caller.user_id.as_str());
        let rows = workflow::list_requests(&self.keyring, &self.db, record.id(), requester).await?;
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
            workflow::accepted_version(&request.agreement_version, &self.agreement_version)?;

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
            AttemptResult::Ok(proto::AcceptAgreementResponse {
                agreement_version: version.clone(),
                accepted_at: Some(timestamp(acceptance.accepted_at)),
                event_id,
            })
        })
        .await
    }

    /// Builds the messages of listed reports, with the content of each withheld report
    /// removed.
    pub(super) async fn listed_reports(
        &self,
        context: &CallContext,
        method: ReadMethod,
        rows: Vec<crate::entity::report::Model>,
    ) -> ServiceResult<Vec<proto::Report>> {
        let grants = self.report_grants(context, &rows).await?;
        let records = rows.into_iter().map(Record::Report).collect();
        let read = self.record_reads(context, method, records, &grants).await?;
        let rows: Vec<_> = read
            .into_iter()
            .filter_map(|record| match record {
                Record::Report(row) => Some(row),
                Record::Communication(_) => None,
            })
            .collect();
        let views = super::views::report_views(&self.db, &self.keyring, &rows).await?;
        Ok(views
            .into_iter()
            .zip(&grants)
            .map(|(view, grant)| {
                if grant.withheld() {
                    convert::withhold_report(view)
                } else {
                    view
                }
            })
            .collect())
    }
}
