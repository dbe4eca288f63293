//! gRPC `trace.worklog.v1.WorklogService`.
//!
//! Every mutation validates its whole request first, stores attachment blobs, and then writes
//! in one transaction: the record rows, the report's entity version under an optimistic check
//! and exactly one trace event in the outbox.

mod access;
mod approval;
mod communication;
mod confidential;
mod content;
mod convert;
mod daily;
mod paging;
mod periodic;
mod queries;
mod views;
mod write;

use std::sync::Arc;

use chrono::{NaiveDate, NaiveTime};
use chrono_tz::Tz;
use sea_orm::DatabaseConnection;
use tonic::{Request, Response, Status};
use trace_proto::worklog::v1::worklog_service_server::WorklogService;
use trace_proto::worklog::v1::*;
use trace_runtime::app::ServiceRuntime;
use trace_runtime::blob::BlobStore;
use trace_runtime::clock::{SharedClock, local_date};
use trace_runtime::context::CallContext;
use trace_runtime::directory::Directory;
use trace_runtime::outbox::Outbox;
use trace_runtime::seal::Keyring;

use crate::calendar::WorkCalendar;

pub use communication::{MAX_ATTACHMENT_BYTES, MAX_ATTACHMENTS};

/// Service name in event subjects and envelopes.
pub const SERVICE: &str = "worklog";

/// Implementation of `WorklogService`; cheap to clone.
#[derive(Debug, Clone)]
pub struct WorklogHandler {
    db: DatabaseConnection,
    outbox: Outbox,
    clock: SharedClock,
    directory: Arc<Directory>,
    blobs: BlobStore,
    keyring: Keyring,
    zone: Tz,
    /// Time of day in `zone` by which a daily report is due on its work date.
    deadline: NaiveTime,
    calendar: Arc<WorkCalendar>,
    /// Agreement version that reading a SECRET record with an access request needs.
    agreement_version: String,
}

impl WorklogHandler {
    /// Builds the handler on the runtime's database, outbox, clock and directory.
    pub fn new(
        runtime: &ServiceRuntime,
        blobs: BlobStore,
        zone: Tz,
        deadline: NaiveTime,
        calendar: WorkCalendar,
        agreement_version: String,
    ) -> Self {
        Self {
            db: runtime.db.clone(),
            outbox: runtime.outbox.clone(),
            clock: runtime.clock.clone(),
            directory: runtime.directory.clone(),
            blobs,
            keyring: runtime.keyring.clone(),
            zone,
            deadline,
            calendar: Arc::new(calendar),
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

/// Splits a request into the caller's context, which the interceptor stored, and the message.
fn split<T>(request: Request<T>) -> Result<(CallContext, T), Status> {
    let context = CallContext::of(&request)?;
    Ok((context, request.into_inner()))
}

#[tonic::async_trait]
impl WorklogService for WorklogHandler {
    async fn submit_daily_report(
        &self,
        request: Request<SubmitDailyReportRequest>,
    ) -> Result<Response<SubmitDailyReportResponse>, Status> {
        let (context, request) = split(request)?;
        Ok(Response::new(self.submit_daily(&context, request).await?))
    }

    async fn supervisor_comment(
        &self,
        request: Request<SupervisorCommentRequest>,
    ) -> Result<Response<SupervisorCommentResponse>, Status> {
        let (context, request) = split(request)?;
        Ok(Response::new(self.comment(&context, request).await?))
    }

    async fn submit_periodic_report(
        &self,
        request: Request<SubmitPeriodicReportRequest>,
    ) -> Result<Response<SubmitPeriodicReportResponse>, Status> {
        let (context, request) = split(request)?;
        Ok(Response::new(
            self.submit_periodic(&context, request).await?,
        ))
    }

    async fn decide_report(
        &self,
        request: Request<DecideReportRequest>,
    ) -> Result<Response<DecideReportResponse>, Status> {
        let (context, request) = split(request)?;
        Ok(Response::new(self.decide(&context, request).await?))
    }

    async fn revise_report(
        &self,
        request: Request<ReviseReportRequest>,
    ) -> Result<Response<ReviseReportResponse>, Status> {
        let (context, request) = split(request)?;
        Ok(Response::new(self.revise(&context, request).await?))
    }

    async fn list_report_rounds(
        &self,
        request: Request<ListReportRoundsRequest>,
    ) -> Result<Response<ListReportRoundsResponse>, Status> {
        let (context, request) = split(request)?;
        Ok(Response::new(self.rounds(&context, request).await?))
    }

    async fn record_communication(
        &self,
        request: Request<RecordCommunicationRequest>,
    ) -> Result<Response<RecordCommunicationResponse>, Status> {
        let (context, request) = split(request)?;
        Ok(Response::new(self.record(&context, request).await?))
    }

    async fn list_reports(
        &self,
        request: Request<ListReportsRequest>,
    ) -> Result<Response<ListReportsResponse>, Status> {
        let (context, request) = split(request)?;
        Ok(Response::new(
            self.reports_of_employee(&context, request).await?,
        ))
    }

    async fn pending_for_supervisor(
        &self,
        request: Request<PendingForSupervisorRequest>,
    ) -> Result<Response<PendingForSupervisorResponse>, Status> {
        let (context, request) = split(request)?;
        Ok(Response::new(self.pending(&context, request).await?))
    }

    async fn list_communications(
        &self,
        request: Request<ListCommunicationsRequest>,
    ) -> Result<Response<ListCommunicationsResponse>, Status> {
        let (context, request) = split(request)?;
        Ok(Response::new(self.communications(&context, request).await?))
    }

    async fn get_report(
        &self,
        request: Request<GetReportRequest>,
    ) -> Result<Response<GetReportResponse>, Status> {
        let (context, request) = split(request)?;
        Ok(Response::new(self.get_report(&context, request).await?))
    }

    async fn get_communication(
        &self,
        request: Request<GetCommunicationRequest>,
    ) -> Result<Response<GetCommunicationResponse>, Status> {
        let (context, request) = split(request)?;
        Ok(Response::new(
            self.get_communication(&context, request).await?,
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
