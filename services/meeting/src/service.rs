//! gRPC `trace.meeting.v1.MeetingService`.
//!
//! Every mutation validates its whole request first and stores content blobs. Then it writes
//! in one transaction the changed meeting or resolution rows under an optimistic
//! `entity_version` check, the detail rows, and exactly one trace event per changed entity
//! in the outbox. Events of the plan, notices, materials, minutes and confirmations use the
//! entity type `meeting`; events of a tracked decision use the entity type `resolution` with
//! the resolution id.

mod access;
mod approval;
mod convert;
mod input;
mod material;
mod minutes;
mod overdue;
mod plan;
mod queries;
mod resolution;
mod revision;
mod write;

use chrono::NaiveDate;
use chrono_tz::Tz;
use sea_orm::DatabaseConnection;
use tonic::{Request, Response, Status};
use trace_proto::meeting::v1::meeting_service_server::MeetingService;
use trace_proto::meeting::v1::*;
use trace_runtime::app::ServiceRuntime;
use trace_runtime::blob::BlobStore;
use trace_runtime::clock::{SharedClock, local_date};
use trace_runtime::context::CallContext;
use trace_runtime::outbox::Outbox;
use trace_runtime::seal::Keyring;

use crate::config::MeetingSettings;

pub use overdue::run_overdue_checks;

/// Service name in event subjects and envelopes.
pub const SERVICE: &str = "meeting";

/// Implementation of `MeetingService`; cheap to clone.
#[derive(Debug, Clone)]
pub struct MeetingHandler {
    db: DatabaseConnection,
    outbox: Outbox,
    clock: SharedClock,
    blobs: BlobStore,
    keyring: Keyring,
    zone: Tz,
    settings: MeetingSettings,
}

impl MeetingHandler {
    /// Builds the handler on the runtime's database, outbox and clock.
    pub fn new(
        runtime: &ServiceRuntime,
        blobs: BlobStore,
        zone: Tz,
        settings: MeetingSettings,
    ) -> Self {
        Self {
            db: runtime.db.clone(),
            outbox: runtime.outbox.clone(),
            clock: runtime.clock.clone(),
            blobs,
            keyring: runtime.keyring.clone(),
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

    /// Returns the civil date of a stored instant in the business time zone.
    fn date_of(&self, micros: i64) -> NaiveDate {
        local_date(trace_runtime::clock::from_micros(micros), self.zone)
    }
}

/// Splits a request into the caller's context, which the interceptor stored, and the message.
fn split<T>(request: Request<T>) -> Result<(CallContext, T), Status> {
    let context = CallContext::of(&request)?;
    Ok((context, request.into_inner()))
}

/// Implements `MeetingService` with methods that pass the caller's context and the message
/// to a handler method returning `ServiceResult`.
macro_rules! delegate {
    ($($method:ident($request:ty) -> $response:ty => $handler:ident;)+) => {
        #[tonic::async_trait]
        impl MeetingService for MeetingHandler {
            $(
                async fn $method(
                    &self,
                    request: Request<$request>,
                ) -> Result<Response<$response>, Status> {
                    let (context, request) = split(request)?;
                    Ok(Response::new(self.$handler(&context, request).await?))
                }
            )+
        }
    };
}

delegate! {
        plan_meeting(PlanMeetingRequest) -> PlanMeetingResponse => plan;
        record_notices(RecordNoticesRequest) -> RecordNoticesResponse => notify;
        revise_plan(RevisePlanRequest) -> RevisePlanResponse => revise;
        cancel_meeting(CancelMeetingRequest) -> CancelMeetingResponse => cancel;
        add_material(AddMaterialRequest) -> AddMaterialResponse => add_material_to;
        review_material(ReviewMaterialRequest) -> ReviewMaterialResponse => review;
        record_minutes(RecordMinutesRequest) -> RecordMinutesResponse => record;
        amend_minutes(AmendMinutesRequest) -> AmendMinutesResponse => amend;
        send_minutes_for_confirmation(SendMinutesForConfirmationRequest)
            -> SendMinutesForConfirmationResponse => send;
        confirm_minutes(ConfirmMinutesRequest) -> ConfirmMinutesResponse => confirm;
        update_resolution(UpdateResolutionRequest) -> UpdateResolutionResponse => update;
        request_delay(RequestDelayRequest) -> RequestDelayResponse => file_delay;
        decide_delay(DecideDelayRequest) -> DecideDelayResponse => decide;
        check_overdue(CheckOverdueRequest) -> CheckOverdueResponse => check_overdue_as_of;
        get_meeting(GetMeetingRequest) -> GetMeetingResponse => get;
        list_meetings(ListMeetingsRequest) -> ListMeetingsResponse => search;
        get_tracking_table(GetTrackingTableRequest) -> GetTrackingTableResponse => tracking_table;
        list_open_resolutions(ListOpenResolutionsRequest)
            -> ListOpenResolutionsResponse => open_resolutions;
        request_access(RequestAccessRequest) -> RequestAccessResponse => request_access;
        decide_access(DecideAccessRequest) -> DecideAccessResponse => decide_access;
        list_access_requests(ListAccessRequestsRequest)
            -> ListAccessRequestsResponse => access_requests;
        accept_agreement(AcceptAgreementRequest) -> AcceptAgreementResponse => accept_agreement;
}
