//! The archive service: a durable consumer over every trace subject that appends each event
//! once to an append-only, hash-chained ledger, and the gRPC API that auditors query.

pub mod config;
pub mod consumer;
pub mod entity;
pub mod ledger;
pub mod migration;
pub mod render;
pub mod service;
pub mod verify;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use trace_proto::archive::v1::archive_service_server::ArchiveServiceServer;
use trace_runtime::app::ServiceRuntime;
use trace_runtime::clock::SharedClock;

use crate::config::ArchiveConfig;

/// Runs the archive until `shutdown` is cancelled.
pub async fn run(
    config: ArchiveConfig,
    listener: TcpListener,
    clock: SharedClock,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let runtime = ServiceRuntime::start::<migration::Migrator>(
        "archive",
        config.service.clone(),
        clock.clone(),
        shutdown,
    )
    .await?;

    let archiver = consumer::Archiver {
        db: runtime.db.clone(),
        client: runtime.nats.clone(),
        jetstream: runtime.jetstream.clone(),
        stream_name: config.service.nats.stream_name.clone(),
        settings: config.archive.clone(),
        clock,
    };
    runtime.spawn(archiver.run(runtime.shutdown.clone()));

    let archive = service::Archive::new(runtime.db.clone())?;
    runtime
        .serve(listener, |router| {
            router.add_service(ArchiveServiceServer::with_interceptor(
                archive,
                trace_runtime::context::authenticate,
            ))
        })
        .await
}
