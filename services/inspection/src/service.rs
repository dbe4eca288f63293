//! gRPC `trace.inspection.v1.InspectionService`.
//!
//! Every mutation validates its whole request first and then writes in one transaction: the
//! rows it changes and exactly one trace event in the outbox. A sweep (`RunRules`) and an
//! overdue check may stage several events, still in one transaction.

mod access;
mod approval;
mod finding_level;
mod findings;
mod overdue;
mod plans;
mod queries;
mod report_access;
mod reports;

use std::sync::Arc;

use chrono::NaiveDate;
use chrono_tz::Tz;
use sea_orm::{DatabaseConnection, DatabaseTransaction};
use tonic::{Request, Response, Status};
use trace_proto::inspection::v1::inspection_service_server::InspectionService;
use trace_proto::inspection::v1::*;
use trace_runtime::app::ServiceRuntime;
use trace_runtime::clock::{SharedClock, local_date};
use trace_runtime::context::{CallContext, role};
use trace_runtime::db::WriteTransaction;
use trace_runtime::directory::Directory;
use trace_runtime::outbox::Outbox;
use trace_runtime::seal::Keyring;
use trace_runtime::{ServiceError, ServiceResult, validate};

use crate::events::{self, Staged};
use crate::store::RuleEngine;

pub use overdue::check_overdue;

/// Implementation of `InspectionService`; cheap to clone.
#[derive(Debug, Clone)]
pub struct InspectionHandler {
    db: DatabaseConnection,
    outbox: Outbox,
    clock: SharedClock,
    zone: Tz,
    directory: Arc<Directory>,
    engine: RuleEngine,
    administration_department: String,
    /// Seals and opens the free text of CONFIDENTIAL and SECRET findings and access requests.
    keyring: Keyring,
    /// Confidentiality agreement version that reading a SECRET finding with an access request
    /// needs.
    agreement_version: String,
}

impl InspectionHandler {
    /// Builds the handler on the runtime's database, outbox, clock, directory and keyring.
    pub fn new(
        runtime: &ServiceRuntime,
        engine: RuleEngine,
        settings: &crate::config::InspectionSettings,
    ) -> Self {
        Self {
            db: runtime.db.clone(),
            outbox: runtime.outbox.clone(),
            clock: runtime.clock.clone(),
            zone: engine.zone,
            directory: runtime.directory.clone(),
            engine,
            administration_department: settings.administration_department.clone(),
            keyring: runtime.keyring.clone(),
            agreement_version: settings.agreement_version.clone(),
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

    /// Stages one event of the call in `transaction`.
    async fn stage(
        &self,
        transaction: &DatabaseTransaction,
        context: &CallContext,
        staged: Staged<'_>,
    ) -> ServiceResult<()> {
        events::stage(
            &self.outbox,
            transaction,
            context,
            self.clock.as_ref(),
            staged,
        )
        .await
    }

    /// Commits and wakes the outbox relay.
    async fn commit(&self, transaction: WriteTransaction) -> ServiceResult<()> {
        transaction.commit().await?;
        self.outbox.notify();
        Ok(())
    }
}

/// Fails with `PERMISSION_DENIED` unless the caller has one of `roles`.
fn require_role(context: &CallContext, roles: &[&str], action: &str) -> ServiceResult<()> {
    if roles.iter().any(|role| context.principal.has_role(role)) {
        return Ok(());
    }
    Err(ServiceError::denied(format!(
        "{action} needs the role {}; {} has {}",
        roles.join(" or "),
        context.principal.user_id,
        context.principal.roles.join(", ")
    )))
}

/// Fails with `PERMISSION_DENIED` unless the caller has the `administration` role.
fn require_administration(context: &CallContext, action: &str) -> ServiceResult<()> {
    require_role(context, &[role::ADMINISTRATION], action)
}

/// Checks a record id field and returns its canonical text.
fn record_id(field: &str, value: &str) -> ServiceResult<String> {
    Ok(validate::record_id(field, value)?.to_string())
}

/// Splits a request into the caller's context, which the interceptor stored, and the message.
fn split<T>(request: Request<T>) -> Result<(CallContext, T), Status> {
    let context = CallContext::of(&request)?;
    Ok((context, request.into_inner()))
}

#[tonic::async_trait]
impl InspectionService for InspectionHandler {
    async fn create_inspection_plan(
        &self,
        request: Request<CreateInspectionPlanRequest>,
    ) -> Result<Response<CreateInspectionPlanResponse>, Status> {
        let (context, request) = split(request)?;
        Ok(Response::new(self.create_plan(&context, request).await?))
    }

    async fn open_inspection(
        &self,
        request: Request<OpenInspectionRequest>,
    ) -> Result<Response<OpenInspectionResponse>, Status> {
        let (context, request) = split(request)?;
        Ok(Response::new(self.open_period(&context, request).await?))
    }

    async fn order_spot_check(
        &self,
        request: Request<OrderSpotCheckRequest>,
    ) -> Result<Response<OrderSpotCheckResponse>, Status> {
        let (context, request) = split(request)?;
        Ok(Response::new(self.order_check(&context, request).await?))
    }

    async fn record_finding(
        &self,
        request: Request<RecordFindingRequest>,
    ) -> Result<Response<RecordFindingResponse>, Status> {
        let (context, request) = split(request)?;
        Ok(Response::new(self.record(&context, request).await?))
    }

    async fn assign_rectification(
        &self,
        request: Request<AssignRectificationRequest>,
    ) -> Result<Response<AssignRectificationResponse>, Status> {
        let (context, request) = split(request)?;
        Ok(Response::new(self.assign(&context, request).await?))
    }

    async fn submit_rectification_result(
        &self,
        request: Request<SubmitRectificationResultRequest>,
    ) -> Result<Response<SubmitRectificationResultResponse>, Status> {
        let (context, request) = split(request)?;
        Ok(Response::new(self.submit_result(&context, request).await?))
    }

    async fn verify_rectification(
        &self,
        request: Request<VerifyRectificationRequest>,
    ) -> Result<Response<VerifyRectificationResponse>, Status> {
        let (context, request) = split(request)?;
        Ok(Response::new(self.verify(&context, request).await?))
    }

    async fn check_overdue(
        &self,
        request: Request<CheckOverdueRequest>,
    ) -> Result<Response<CheckOverdueResponse>, Status> {
        let (context, request) = split(request)?;
        Ok(Response::new(self.report_overdue(&context, request).await?))
    }

    async fn draft_report(
        &self,
        request: Request<DraftReportRequest>,
    ) -> Result<Response<DraftReportResponse>, Status> {
        let (context, request) = split(request)?;
        Ok(Response::new(self.draft(&context, request).await?))
    }

    async fn review_report(
        &self,
        request: Request<ReviewReportRequest>,
    ) -> Result<Response<ReviewReportResponse>, Status> {
        let (context, request) = split(request)?;
        Ok(Response::new(self.review(&context, request).await?))
    }

    async fn distribute_report(
        &self,
        request: Request<DistributeReportRequest>,
    ) -> Result<Response<DistributeReportResponse>, Status> {
        let (context, request) = split(request)?;
        Ok(Response::new(self.distribute(&context, request).await?))
    }

    async fn department_results(
        &self,
        request: Request<DepartmentResultsRequest>,
    ) -> Result<Response<DepartmentResultsResponse>, Status> {
        let (context, request) = split(request)?;
        Ok(Response::new(self.results(&context, request).await?))
    }

    async fn run_rules(
        &self,
        request: Request<RunRulesRequest>,
    ) -> Result<Response<RunRulesResponse>, Status> {
        let (context, _request) = split(request)?;
        Ok(Response::new(self.sweep_now(&context).await?))
    }

    async fn get_completeness_score(
        &self,
        request: Request<GetCompletenessScoreRequest>,
    ) -> Result<Response<GetCompletenessScoreResponse>, Status> {
        let (context, request) = split(request)?;
        Ok(Response::new(self.completeness(&context, request).await?))
    }

    async fn get_finding(
        &self,
        request: Request<GetFindingRequest>,
    ) -> Result<Response<GetFindingResponse>, Status> {
        let (context, request) = split(request)?;
        Ok(Response::new(
            self.finding_details(&context, request).await?,
        ))
    }

    async fn list_findings(
        &self,
        request: Request<ListFindingsRequest>,
    ) -> Result<Response<ListFindingsResponse>, Status> {
        let (context, request) = split(request)?;
        Ok(Response::new(
            self.search_findings(&context, request).await?,
        ))
    }

    async fn request_access(
        &self,
        request: Request<RequestAccessRequest>,
    ) -> Result<Response<RequestAccessResponse>, Status> {
        let (context, request) = split(request)?;
        Ok(Response::new(self.ask_access(&context, request).await?))
    }

    async fn decide_access(
        &self,
        request: Request<DecideAccessRequest>,
    ) -> Result<Response<DecideAccessResponse>, Status> {
        let (context, request) = split(request)?;
        Ok(Response::new(self.decide(&context, request).await?))
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

    async fn get_inspection_report(
        &self,
        request: Request<GetInspectionReportRequest>,
    ) -> Result<Response<GetInspectionReportResponse>, Status> {
        let (context, request) = split(request)?;
        Ok(Response::new(
            self.inspection_report(&context, request).await?,
        ))
    }

    async fn accept_agreement(
        &self,
        request: Request<AcceptAgreementRequest>,
    ) -> Result<Response<AcceptAgreementResponse>, Status> {
        let (context, request) = split(request)?;
        Ok(Response::new(self.accept(&context, request).await?))
    }
}
