//! The archive service: a durable consumer over every trace subject that appends each event
//! once to an append-only, hash-chained ledger, and the gRPC API that auditors query.

pub mod access;
pub mod backup;
pub mod backup_job;
pub mod backup_location;
pub mod bulk_insert;
pub mod checkpoint;
pub mod config;
pub mod consumer;
mod copy_out;
pub mod dispositions;
pub mod entity;
pub mod holds;
pub mod jobs;
pub mod ledger;
pub mod merkle;
pub mod metrics;
pub mod migration;
mod postgres_append;
pub mod proofs;
pub mod receipt_query;
pub mod render;
pub mod retention;
pub mod service;
mod sqlite_append;
pub mod verify;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use trace_proto::archive::v1::archive_service_server::{self, ArchiveServiceServer};
use trace_runtime::app::ServiceRuntime;
use trace_runtime::clock::SharedClock;

use std::sync::Arc;
use std::time::Duration;

use crate::checkpoint::CheckpointSigner;
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
    if runtime.db.get_database_backend() == sea_orm::DatabaseBackend::Sqlite
        && verify::sqlite_file(&runtime.db).is_none()
    {
        anyhow::bail!(
            "invalid database_url {}: it names no SQLite file that the archive can open by \
             path. Use a SQLite file or PostgreSQL, because an in-memory ledger is lost at \
             exit and cannot be verified",
            config.service.database_url
        );
    }

    let archiver = consumer::Archiver {
        db: runtime.db.clone(),
        client: runtime.nats.clone(),
        jetstream: runtime.jetstream.clone(),
        stream_name: config.service.nats.stream_name.clone(),
        settings: config.archive.clone(),
        clock: clock.clone(),
    };
    runtime.spawn(archiver.run(runtime.shutdown.clone()));
    let (client, db, shutdown) = (
        runtime.nats.clone(),
        runtime.db.clone(),
        runtime.shutdown.clone(),
    );
    runtime.spawn(async move {
        if let Err(error) = receipt_query::run(client, db, shutdown).await {
            tracing::error!(
                error = format!("{error:#}"),
                "receipt query responder stopped"
            );
        }
    });
    if trace_runtime::telemetry::metrics_enabled() {
        runtime.spawn(metrics::report_gauges(
            runtime.db.clone(),
            runtime.jetstream.clone(),
            config.service.nats.stream_name.clone(),
            config.archive.consumer_name.clone(),
            runtime.shutdown.clone(),
        ));
    }

    let signer = config.checkpoint_signer()?.map(Arc::new);
    match &signer {
        Some(signer) => tracing::info!(
            origin = signer.origin(),
            verifier_key = signer.verifier_key(),
            "checkpoint signing enabled"
        ),
        None => tracing::warn!("no checkpoint signing key configured; checkpoints are disabled"),
    }
    if let Some(signer) = &signer
        && config.archive.checkpoint_interval_secs > 0
    {
        runtime.spawn(periodic_checkpoints(
            runtime.db.clone(),
            signer.clone(),
            runtime.clock.clone(),
            Duration::from_secs(config.archive.checkpoint_interval_secs),
            runtime.shutdown.clone(),
        ));
    }

    let jobs = jobs::JobBoard::default();
    let backups = config.backup_setup()?.map(|(location, key)| {
        tracing::info!(location = %location.url, key_id = %key.key_id, "backups enabled");
        Arc::new(backup_job::Backups {
            db: runtime.db.clone(),
            location,
            key,
            signer: signer.clone(),
            outbox: runtime.outbox.clone(),
            clock: runtime.clock.clone(),
            running: tokio::sync::Mutex::new(()),
            jobs: jobs.clone(),
        })
    });
    if let Some(backups) = &backups
        && config.archive.backup_interval_secs > 0
    {
        let interval = Duration::from_secs(config.archive.backup_interval_secs);
        runtime.spawn(scheduled_backups(
            backups.clone(),
            interval,
            runtime.shutdown.clone(),
        ));
    }

    let dispositions = Arc::new(dispositions::Dispositions {
        db: runtime.db.clone(),
        settings: config.archive.clone(),
        zone: config.service.time_zone()?,
        clock: runtime.clock.clone(),
        outbox: runtime.outbox.clone(),
        jobs: jobs.clone(),
    });
    let archive = service::Archive::new(
        runtime.db.clone(),
        signer,
        runtime.clock.clone(),
        backups,
        dispositions,
        jobs,
    )?
    .with_keyring(runtime.keyring.clone());
    let interceptor = runtime.authenticator().interceptor();
    runtime
        .serve(
            listener,
            &[archive_service_server::SERVICE_NAME],
            |router| {
                router.add_service(ArchiveServiceServer::with_interceptor(archive, interceptor))
            },
        )
        .await
}

/// Signs a checkpoint every `interval` while the ledger grows.
async fn periodic_checkpoints(
    db: sea_orm::DatabaseConnection,
    signer: Arc<CheckpointSigner>,
    clock: SharedClock,
    interval: Duration,
    shutdown: CancellationToken,
) {
    let mut last_size = None;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(interval) => {}
        }
        let size = match proofs::current_size(&db).await {
            Ok(size) => size,
            Err(error) => {
                tracing::warn!(%error, "failed to read the ledger size for a checkpoint");
                continue;
            }
        };
        if size == 0 || last_size == Some(size) {
            continue;
        }
        match proofs::create_checkpoint(&db, &signer, clock.now().timestamp_micros()).await {
            Ok(checkpoint) => {
                last_size = Some(size);
                tracing::info!(tree_size = checkpoint.tree_size, "signed a checkpoint");
            }
            Err(error) => tracing::error!(%error, "failed to sign a checkpoint"),
        }
    }
}

/// Runs a backup every `interval` until shutdown.
async fn scheduled_backups(
    backups: Arc<backup_job::Backups>,
    interval: Duration,
    shutdown: CancellationToken,
) {
    let context = trace_runtime::context::CallContext::system("archive");
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(interval) => {}
        }
        match backups.run(&context).await {
            Ok((run, _)) if run.manifests.is_empty() => {
                metrics::get().record_backup(backups.clock.now().timestamp_micros());
                tracing::debug!("backup already current");
            }
            Ok((run, _)) => {
                metrics::get().record_backup(backups.clock.now().timestamp_micros());
                tracing::info!(segments = run.manifests.len(), "scheduled backup done");
            }
            Err(error) => tracing::error!(%error, "scheduled backup failed"),
        }
    }
}
