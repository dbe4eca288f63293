//! gRPC `trace.project.v1.ProjectService`.
//!
//! Every mutation validates its whole request first and then writes in one transaction: the
//! project row under an optimistic version check, the detail rows and exactly one trace
//! event in the outbox. Events carry entity type `project` and the project id, so the
//! project's timeline shows every step.

mod acceptance;
mod access;
mod access_requests;
mod approval;
mod closing;
mod convert;
mod initiation;
mod input;
mod monitoring;
mod queries;
mod signoff;
mod team;
mod write;

use chrono::NaiveDate;
use chrono_tz::Tz;
use sea_orm::DatabaseConnection;
use tonic::{Request, Response, Status};
use trace_proto::project::v1::project_service_server::ProjectService;
use trace_proto::project::v1::*;
use trace_runtime::app::ServiceRuntime;
use trace_runtime::clock::{SharedClock, local_date};
use trace_runtime::context::CallContext;
use trace_runtime::outbox::Outbox;
use trace_runtime::seal::Keyring;
use trace_runtime::{ServiceResult, validate};

/// Service name in event subjects and envelopes.
pub const SERVICE: &str = "project";

/// Implementation of `ProjectService`; cheap to clone.
#[derive(Debug, Clone)]
pub struct ProjectHandler {
    db: DatabaseConnection,
    outbox: Outbox,
    clock: SharedClock,
    keyring: Keyring,
    zone: Tz,
    /// Version of the confidentiality agreement that SECRET reads with a request need.
    agreement_version: String,
}

impl ProjectHandler {
    /// Builds the handler on the runtime's database, outbox and clock.
    pub fn new(runtime: &ServiceRuntime, zone: Tz, agreement_version: String) -> Self {
        Self {
            db: runtime.db.clone(),
            outbox: runtime.outbox.clone(),
            clock: runtime.clock.clone(),
            keyring: runtime.keyring.clone(),
            zone,
            agreement_version,
        }
    }

    /// Returns the current instant in stored form, microseconds since the Unix epoch.
    fn now(&self) -> i64 {
        self.clock.now().timestamp_micros()
    }

    /// Today's date in the business time zone.
    fn today(&self) -> NaiveDate {
        local_date(self.clock.now(), self.zone)
    }
}

/// Checks the `project_id` field of a request.
fn project_id(value: &str) -> ServiceResult<String> {
    Ok(validate::record_id("project_id", value)?.to_string())
}

/// Splits a request into the caller's context, which the interceptor stored, and the message.
fn split<T>(request: Request<T>) -> Result<(CallContext, T), Status> {
    let context = CallContext::of(&request)?;
    Ok((context, request.into_inner()))
}

#[tonic::async_trait]
impl ProjectService for ProjectHandler {
    async fn submit_application(
        &self,
        request: Request<SubmitApplicationRequest>,
    ) -> Result<Response<SubmitApplicationResponse>, Status> {
        let (context, request) = split(request)?;
        Ok(Response::new(self.submit(&context, request).await?))
    }

    async fn resubmit_application(
        &self,
        request: Request<ResubmitApplicationRequest>,
    ) -> Result<Response<ResubmitApplicationResponse>, Status> {
        let (context, request) = split(request)?;
        Ok(Response::new(self.resubmit(&context, request).await?))
    }

    async fn record_approval(
        &self,
        request: Request<RecordApprovalRequest>,
    ) -> Result<Response<RecordApprovalResponse>, Status> {
        let (context, request) = split(request)?;
        Ok(Response::new(
            self.decide_application(&context, request).await?,
        ))
    }

    async fn start_project(
        &self,
        request: Request<StartProjectRequest>,
    ) -> Result<Response<StartProjectResponse>, Status> {
        let (context, request) = split(request)?;
        Ok(Response::new(self.start(&context, request).await?))
    }

    async fn add_member(
        &self,
        request: Request<AddMemberRequest>,
    ) -> Result<Response<AddMemberResponse>, Status> {
        let (context, request) = split(request)?;
        Ok(Response::new(
            self.add_team_member(&context, request).await?,
        ))
    }

    async fn change_duties(
        &self,
        request: Request<ChangeDutiesRequest>,
    ) -> Result<Response<ChangeDutiesResponse>, Status> {
        let (context, request) = split(request)?;
        Ok(Response::new(
            self.change_member_duties(&context, request).await?,
        ))
    }

    async fn remove_member(
        &self,
        request: Request<RemoveMemberRequest>,
    ) -> Result<Response<RemoveMemberResponse>, Status> {
        let (context, request) = split(request)?;
        Ok(Response::new(
            self.remove_team_member(&context, request).await?,
        ))
    }

    async fn record_progress(
        &self,
        request: Request<RecordProgressRequest>,
    ) -> Result<Response<RecordProgressResponse>, Status> {
        let (context, request) = split(request)?;
        Ok(Response::new(
            self.report_progress(&context, request).await?,
        ))
    }

    async fn record_document_update(
        &self,
        request: Request<RecordDocumentUpdateRequest>,
    ) -> Result<Response<RecordDocumentUpdateResponse>, Status> {
        let (context, request) = split(request)?;
        Ok(Response::new(
            self.record_document(&context, request).await?,
        ))
    }

    async fn record_decision(
        &self,
        request: Request<RecordDecisionRequest>,
    ) -> Result<Response<RecordDecisionResponse>, Status> {
        let (context, request) = split(request)?;
        Ok(Response::new(
            self.propose_decision(&context, request).await?,
        ))
    }

    async fn approve_decision(
        &self,
        request: Request<ApproveDecisionRequest>,
    ) -> Result<Response<ApproveDecisionResponse>, Status> {
        let (context, request) = split(request)?;
        Ok(Response::new(
            self.review_decision(&context, request).await?,
        ))
    }

    async fn apply_for_acceptance(
        &self,
        request: Request<ApplyForAcceptanceRequest>,
    ) -> Result<Response<ApplyForAcceptanceResponse>, Status> {
        let (context, request) = split(request)?;
        Ok(Response::new(
            self.apply_acceptance(&context, request).await?,
        ))
    }

    async fn set_acceptance_group(
        &self,
        request: Request<SetAcceptanceGroupRequest>,
    ) -> Result<Response<SetAcceptanceGroupResponse>, Status> {
        let (context, request) = split(request)?;
        Ok(Response::new(self.appoint_group(&context, request).await?))
    }

    async fn sign_off(
        &self,
        request: Request<SignOffRequest>,
    ) -> Result<Response<SignOffResponse>, Status> {
        let (context, request) = split(request)?;
        Ok(Response::new(self.sign(&context, request).await?))
    }

    async fn record_acceptance_result(
        &self,
        request: Request<RecordAcceptanceResultRequest>,
    ) -> Result<Response<RecordAcceptanceResultResponse>, Status> {
        let (context, request) = split(request)?;
        Ok(Response::new(
            self.decide_acceptance(&context, request).await?,
        ))
    }

    async fn submit_summary(
        &self,
        request: Request<SubmitSummaryRequest>,
    ) -> Result<Response<SubmitSummaryResponse>, Status> {
        let (context, request) = split(request)?;
        Ok(Response::new(self.summarize(&context, request).await?))
    }

    async fn close_project(
        &self,
        request: Request<CloseProjectRequest>,
    ) -> Result<Response<CloseProjectResponse>, Status> {
        let (context, request) = split(request)?;
        Ok(Response::new(self.close(&context, request).await?))
    }

    async fn get_project(
        &self,
        request: Request<GetProjectRequest>,
    ) -> Result<Response<GetProjectResponse>, Status> {
        let (context, request) = split(request)?;
        Ok(Response::new(self.details(&context, request).await?))
    }

    async fn list_projects(
        &self,
        request: Request<ListProjectsRequest>,
    ) -> Result<Response<ListProjectsResponse>, Status> {
        let (context, request) = split(request)?;
        Ok(Response::new(self.search(&context, request).await?))
    }

    async fn list_progress(
        &self,
        request: Request<ListProgressRequest>,
    ) -> Result<Response<ListProgressResponse>, Status> {
        let (context, request) = split(request)?;
        Ok(Response::new(
            self.progress_history(&context, request).await?,
        ))
    }

    async fn list_decisions(
        &self,
        request: Request<ListDecisionsRequest>,
    ) -> Result<Response<ListDecisionsResponse>, Status> {
        let (context, request) = split(request)?;
        Ok(Response::new(
            self.decision_history(&context, request).await?,
        ))
    }

    async fn request_access(
        &self,
        request: Request<RequestAccessRequest>,
    ) -> Result<Response<RequestAccessResponse>, Status> {
        let (context, request) = split(request)?;
        Ok(Response::new(self.request_access(&context, request).await?))
    }

    async fn decide_access(
        &self,
        request: Request<DecideAccessRequest>,
    ) -> Result<Response<DecideAccessResponse>, Status> {
        let (context, request) = split(request)?;
        Ok(Response::new(self.decide_access(&context, request).await?))
    }

    async fn list_access_requests(
        &self,
        request: Request<ListAccessRequestsRequest>,
    ) -> Result<Response<ListAccessRequestsResponse>, Status> {
        let (context, request) = split(request)?;
        Ok(Response::new(
            self.access_requests(&context, request).await?,
        ))
    }

    async fn accept_agreement(
        &self,
        request: Request<AcceptAgreementRequest>,
    ) -> Result<Response<AcceptAgreementResponse>, Status> {
        let (context, request) = split(request)?;
        Ok(Response::new(
            self.accept_agreement(&context, request).await?,
        ))
    }
}
