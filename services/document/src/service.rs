//! gRPC `trace.document.v1.DocumentService`.
//!
//! Every mutation validates its whole request first, stores content blobs, and then writes
//! in one transaction: the document row under an optimistic version check, the detail rows
//! and exactly one trace event in the outbox. Events of borrowings also use the entity type
//! `document` with the document id, so that the document's timeline shows them.

mod access;
mod borrowing;
mod convert;
mod drafting;
mod overdue;
mod queries;
mod scope;
mod storage;
mod write;

use chrono::NaiveDate;
use chrono_tz::Tz;
use sea_orm::DatabaseConnection;
use tonic::{Request, Response, Status};
use trace_proto::document::v1::document_service_server::DocumentService;
use trace_proto::document::v1::*;
use trace_runtime::app::ServiceRuntime;
use trace_runtime::blob::BlobStore;
use trace_runtime::clock::{SharedClock, local_date};
use trace_runtime::context::CallContext;
use trace_runtime::outbox::Outbox;
use trace_runtime::seal::Keyring;

use crate::config::DocumentSettings;

pub use overdue::run_overdue_checks;

/// Service name in event subjects and envelopes.
pub const SERVICE: &str = "document";

/// Implementation of `DocumentService`; cheap to clone.
#[derive(Debug, Clone)]
pub struct DocumentHandler {
    db: DatabaseConnection,
    outbox: Outbox,
    clock: SharedClock,
    blobs: BlobStore,
    /// Seals the content of CONFIDENTIAL and SECRET documents.
    keyring: Keyring,
    zone: Tz,
    settings: DocumentSettings,
}

impl DocumentHandler {
    /// Builds the handler on the runtime's database, outbox and clock.
    pub fn new(
        runtime: &ServiceRuntime,
        blobs: BlobStore,
        keyring: Keyring,
        zone: Tz,
        settings: DocumentSettings,
    ) -> Self {
        Self {
            db: runtime.db.clone(),
            outbox: runtime.outbox.clone(),
            clock: runtime.clock.clone(),
            blobs,
            keyring,
            zone,
            settings,
        }
    }

    /// Returns the current instant in stored form, microseconds since the Unix epoch.
    fn now(&self) -> i64 {
        self.clock.now().timestamp_micros()
    }

    /// Returns today's date in the business time zone.
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
impl DocumentService for DocumentHandler {
    async fn create_draft(
        &self,
        request: Request<CreateDraftRequest>,
    ) -> Result<Response<CreateDraftResponse>, Status> {
        let (context, request) = split(request)?;
        Ok(Response::new(self.create(&context, request).await?))
    }

    async fn revise_draft(
        &self,
        request: Request<ReviseDraftRequest>,
    ) -> Result<Response<ReviseDraftResponse>, Status> {
        let (context, request) = split(request)?;
        Ok(Response::new(self.revise(&context, request).await?))
    }

    async fn submit_for_review(
        &self,
        request: Request<SubmitForReviewRequest>,
    ) -> Result<Response<SubmitForReviewResponse>, Status> {
        let (context, request) = split(request)?;
        Ok(Response::new(self.submit(&context, request).await?))
    }

    async fn review_document(
        &self,
        request: Request<ReviewDocumentRequest>,
    ) -> Result<Response<ReviewDocumentResponse>, Status> {
        let (context, request) = split(request)?;
        Ok(Response::new(self.review(&context, request).await?))
    }

    async fn register_document(
        &self,
        request: Request<RegisterDocumentRequest>,
    ) -> Result<Response<RegisterDocumentResponse>, Status> {
        let (context, request) = split(request)?;
        Ok(Response::new(self.register(&context, request).await?))
    }

    async fn record_backup(
        &self,
        request: Request<RecordBackupRequest>,
    ) -> Result<Response<RecordBackupResponse>, Status> {
        let (context, request) = split(request)?;
        Ok(Response::new(self.back_up(&context, request).await?))
    }

    async fn read_content(
        &self,
        request: Request<ReadContentRequest>,
    ) -> Result<Response<ReadContentResponse>, Status> {
        let (context, request) = split(request)?;
        Ok(Response::new(self.read_revision(&context, request).await?))
    }

    async fn get_document(
        &self,
        request: Request<GetDocumentRequest>,
    ) -> Result<Response<GetDocumentResponse>, Status> {
        let (context, request) = split(request)?;
        Ok(Response::new(self.get(&context, request).await?))
    }

    async fn list_documents(
        &self,
        request: Request<ListDocumentsRequest>,
    ) -> Result<Response<ListDocumentsResponse>, Status> {
        let (context, request) = split(request)?;
        Ok(Response::new(self.search(&context, request).await?))
    }

    async fn list_revisions(
        &self,
        request: Request<ListRevisionsRequest>,
    ) -> Result<Response<ListRevisionsResponse>, Status> {
        let (context, request) = split(request)?;
        Ok(Response::new(
            self.revision_history(&context, request).await?,
        ))
    }

    async fn apply_borrowing(
        &self,
        request: Request<ApplyBorrowingRequest>,
    ) -> Result<Response<ApplyBorrowingResponse>, Status> {
        let (context, request) = split(request)?;
        Ok(Response::new(self.apply(&context, request).await?))
    }

    async fn decide_borrowing(
        &self,
        request: Request<DecideBorrowingRequest>,
    ) -> Result<Response<DecideBorrowingResponse>, Status> {
        let (context, request) = split(request)?;
        Ok(Response::new(self.decide(&context, request).await?))
    }

    async fn lend_document(
        &self,
        request: Request<LendDocumentRequest>,
    ) -> Result<Response<LendDocumentResponse>, Status> {
        let (context, request) = split(request)?;
        Ok(Response::new(self.lend(&context, request).await?))
    }

    async fn return_document(
        &self,
        request: Request<ReturnDocumentRequest>,
    ) -> Result<Response<ReturnDocumentResponse>, Status> {
        let (context, request) = split(request)?;
        Ok(Response::new(self.receive_return(&context, request).await?))
    }

    async fn report_loss(
        &self,
        request: Request<ReportLossRequest>,
    ) -> Result<Response<ReportLossResponse>, Status> {
        let (context, request) = split(request)?;
        Ok(Response::new(self.mark_lost(&context, request).await?))
    }

    async fn record_handling(
        &self,
        request: Request<RecordHandlingRequest>,
    ) -> Result<Response<RecordHandlingResponse>, Status> {
        let (context, request) = split(request)?;
        Ok(Response::new(
            self.record_handling_result(&context, request).await?,
        ))
    }

    async fn list_borrowings(
        &self,
        request: Request<ListBorrowingsRequest>,
    ) -> Result<Response<ListBorrowingsResponse>, Status> {
        let (context, request) = split(request)?;
        Ok(Response::new(
            self.borrowing_history(&context, request).await?,
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

    async fn check_overdue(
        &self,
        request: Request<CheckOverdueRequest>,
    ) -> Result<Response<CheckOverdueResponse>, Status> {
        let (context, request) = split(request)?;
        Ok(Response::new(
            self.check_overdue_as_of(&context, request).await?,
        ))
    }
}
