//! The document service: drafting, revision, review, registration with file numbers,
//! backups, reads and borrowing of documents. Every state change and every content read
//! leaves one trace event, written with the change in one transaction through the outbox.

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
use trace_proto::document::v1::document_service_server::{self, DocumentServiceServer};
use trace_runtime::app::ServiceRuntime;
use trace_runtime::blob::BlobStore;
use trace_runtime::clock::SharedClock;

pub use config::DocumentConfig;
pub use migration::Migrator;
pub use service::DocumentHandler;

/// Room for the other fields of a request or response next to its content, in bytes.
const MESSAGE_OVERHEAD_BYTES: usize = 1024 * 1024;

/// Runs the document service on `listener` until `shutdown` is cancelled: migrates the
/// database, starts the outbox relay and the periodic overdue check, and serves gRPC.
pub async fn run(
    config: DocumentConfig,
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
    let handler = DocumentHandler::new(
        &runtime,
        blobs,
        runtime.keyring.clone(),
        zone,
        config.document.clone(),
    );

    let interval = Duration::from_secs(config.document.overdue_check_interval_secs);
    let overdue = service::run_overdue_checks(handler.clone(), interval, runtime.shutdown.clone());
    runtime.spawn(overdue);

    // tonic limits messages to 4 MiB by default, below the content limit of the API.
    let max_message_bytes = config.document.max_content_bytes + MESSAGE_OVERHEAD_BYTES;
    let server = DocumentServiceServer::new(handler)
        .max_decoding_message_size(max_message_bytes)
        .max_encoding_message_size(max_message_bytes);
    let interceptor = runtime.authenticator().interceptor();
    let service = InterceptedService::new(server, interceptor);
    runtime
        .serve(
            listener,
            &[document_service_server::SERVICE_NAME],
            |router| router.add_service(service),
        )
        .await
}
