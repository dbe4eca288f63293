//! The meeting service: plans, notices, materials, minutes and their confirmation for
//! meetings and phone conferences, and the follow-up of every decision as a tracked
//! resolution with progress updates, delay requests and overdue detection. Every state change
//! leaves one trace event per changed entity, written with the change in one transaction
//! through the outbox.

pub mod config;
pub mod entity;
pub mod migration;
pub mod rules;
mod sealing;
pub mod service;
pub mod state;

use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::service::interceptor::InterceptedService;
use trace_proto::meeting::v1::meeting_service_server::{self, MeetingServiceServer};
use trace_runtime::app::ServiceRuntime;
use trace_runtime::blob::BlobStore;
use trace_runtime::clock::SharedClock;

pub use config::MeetingConfig;
pub use migration::Migrator;
pub use service::MeetingHandler;

/// Room for the other fields of a request or response next to material content, in bytes.
const MESSAGE_OVERHEAD_BYTES: usize = 1024 * 1024;

/// Runs the meeting service on `listener` until `shutdown` is cancelled: migrates the
/// database, starts the outbox relay and the periodic overdue check, and serves gRPC.
pub async fn run(
    config: MeetingConfig,
    listener: TcpListener,
    clock: SharedClock,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    config.validate()?;
    let zone = config.service.time_zone()?;
    let blobs = BlobStore::open(&config.service.blob_store_url)?;
    let runtime = ServiceRuntime::start::<Migrator>(
        service::SERVICE,
        config.service.clone(),
        clock,
        shutdown,
    )
    .await?;
    let handler = MeetingHandler::new(&runtime, blobs, zone, config.meeting.clone());

    let interval = Duration::from_secs(config.meeting.overdue_check_interval_secs);
    let overdue = service::run_overdue_checks(handler.clone(), interval, runtime.shutdown.clone());
    runtime.spawn(overdue);

    // tonic limits messages to 4 MiB by default, below the content limit of the API.
    let max_message_bytes = config.meeting.max_content_bytes + MESSAGE_OVERHEAD_BYTES;
    let server = MeetingServiceServer::new(handler)
        .max_decoding_message_size(max_message_bytes)
        .max_encoding_message_size(max_message_bytes);
    let interceptor = runtime.authenticator().interceptor();
    let service = InterceptedService::new(server, interceptor);
    runtime
        .serve(
            listener,
            &[meeting_service_server::SERVICE_NAME],
            |router| router.add_service(service),
        )
        .await
}
