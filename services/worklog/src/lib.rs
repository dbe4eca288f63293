//! The worklog service: daily reports with supervisor comments, weekly and monthly reports
//! with supervisor approval in rounds, and records of internal and external communication.
//! Every state change leaves one trace event, written with the change in one transaction
//! through the outbox.

pub mod calendar;
pub mod config;
pub mod entity;
pub mod migration;
pub mod rules;
mod sealing;
pub mod service;
pub mod state;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::service::interceptor::InterceptedService;
use trace_proto::worklog::v1::worklog_service_server::{self, WorklogServiceServer};
use trace_runtime::app::ServiceRuntime;
use trace_runtime::blob::BlobStore;
use trace_runtime::clock::SharedClock;

pub use config::WorklogConfig;
pub use migration::Migrator;
pub use service::WorklogHandler;

/// Room for the other fields of a request or response next to its attachments, in bytes.
const MESSAGE_OVERHEAD_BYTES: usize = 1024 * 1024;

/// Runs the worklog service on `listener` until `shutdown` is cancelled: loads the calendar,
/// migrates the database, starts the outbox relay and serves gRPC.
pub async fn run(
    config: WorklogConfig,
    listener: TcpListener,
    clock: SharedClock,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    config.validate()?;
    let zone = config.service.time_zone()?;
    let deadline = config.worklog.deadline()?;
    let calendar = config.worklog.calendar()?;
    log_calendar(&config, &calendar);

    let blobs = BlobStore::open(&config.service.blob_store_url)?;
    let runtime = ServiceRuntime::start::<Migrator>(
        service::SERVICE,
        config.service.clone(),
        clock,
        shutdown,
    )
    .await?;
    let handler = WorklogHandler::new(
        &runtime,
        blobs,
        zone,
        deadline,
        calendar,
        config.worklog.agreement_version.clone(),
    );

    // tonic limits messages to 4 MiB by default, below the attachment limits of the API.
    let max_message_bytes =
        service::MAX_ATTACHMENTS * service::MAX_ATTACHMENT_BYTES + MESSAGE_OVERHEAD_BYTES;
    let server = WorklogServiceServer::new(handler)
        .max_decoding_message_size(max_message_bytes)
        .max_encoding_message_size(max_message_bytes);
    let service = InterceptedService::new(server, runtime.authenticator().interceptor());
    runtime
        .serve(
            listener,
            &[worklog_service_server::SERVICE_NAME],
            |router| router.add_service(service),
        )
        .await
}

fn log_calendar(config: &WorklogConfig, calendar: &calendar::WorkCalendar) {
    let years: Vec<i32> = calendar.years().collect();
    match &config.worklog.calendar_file {
        Some(file) => tracing::info!(%file, ?years, "working-day calendar loaded"),
        None => tracing::warn!(
            "no worklog.calendar_file; every daily report is flagged calendar_missing"
        ),
    }
}
