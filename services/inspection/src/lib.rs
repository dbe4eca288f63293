//! The inspection service: periodic inspections and spot checks by the administration
//! department, findings and their rectification, inspection reports, and automatic
//! completeness checks. A durable consumer feeds every trace event to the rules, and a
//! periodic sweep raises findings for records that are missing past their due time.

pub mod calendar;
pub mod config;
pub mod consumer;
pub mod convert;
pub mod entity;
pub mod events;
pub mod metrics;
pub mod migration;
pub mod observe;
pub mod read_scope;
pub mod rules;
pub mod sealing;
pub mod service;
pub mod store;
pub mod sweep;

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::service::interceptor::InterceptedService;
use trace_proto::inspection::v1::inspection_service_server::{self, InspectionServiceServer};
use trace_runtime::app::ServiceRuntime;
use trace_runtime::clock::{SharedClock, local_date};
use trace_runtime::context::CallContext;

pub use config::InspectionConfig;
pub use migration::Migrator;
pub use service::InspectionHandler;

use crate::calendar::WorkCalendar;
use crate::consumer::RuleConsumer;
use crate::store::RuleEngine;

/// Runs the inspection service on `listener` until `shutdown` is cancelled: migrates the
/// database, starts the outbox relay, the rule consumer and the periodic sweep, and serves
/// gRPC.
pub async fn run(
    config: InspectionConfig,
    listener: TcpListener,
    clock: SharedClock,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    config.validate()?;
    let zone = config.service.time_zone()?;
    let calendar = match &config.inspection.calendar_file {
        Some(path) => WorkCalendar::load(std::path::Path::new(path))?,
        None => WorkCalendar::default(),
    };
    let runtime = ServiceRuntime::start::<Migrator>(
        events::SERVICE,
        config.service.clone(),
        clock.clone(),
        shutdown,
    )
    .await?;
    let engine = RuleEngine {
        directory: runtime.directory.clone(),
        calendar: Arc::new(calendar),
        zone,
        rules: config.inspection.rules.clone(),
        daily_reports_from: config.daily_reports_from()?,
        outbox: runtime.outbox.clone(),
        clock,
        keyring: runtime.keyring.clone(),
    };

    spawn_rule_tasks(&runtime, &config, &engine);

    let handler = InspectionHandler::new(&runtime, engine, &config.inspection);
    let service = InspectionServiceServer::new(handler);
    let interceptor = runtime.authenticator().interceptor();
    let service = InterceptedService::new(service, interceptor);
    runtime
        .serve(
            listener,
            &[inspection_service_server::SERVICE_NAME],
            |router| router.add_service(service),
        )
        .await
}

/// Starts the rule consumer and the periodic sweep as background tasks of `runtime`.
fn spawn_rule_tasks(runtime: &ServiceRuntime, config: &InspectionConfig, engine: &RuleEngine) {
    let consumer = RuleConsumer {
        db: runtime.db.clone(),
        jetstream: runtime.jetstream.clone(),
        stream_name: config.service.nats.stream_name.clone(),
        settings: config.inspection.consumer.clone(),
        engine: engine.clone(),
        keyring: runtime.keyring.clone(),
    };
    runtime.spawn(consumer.run(runtime.shutdown.clone()));
    let interval = Duration::from_secs(config.inspection.sweep_interval_secs);
    runtime.spawn(sweep_periodically(
        runtime.db.clone(),
        engine.clone(),
        interval,
        runtime.shutdown.clone(),
    ));
    tracing::info!(
        sweep_interval_secs = config.inspection.sweep_interval_secs,
        calendar = config.inspection.calendar_file.as_deref().unwrap_or("none"),
        "inspection rules ready"
    );
}

/// Sweeps the time-based rules and reports overdue rectifications every `interval`, each
/// round in one transaction, until cancelled. A failed round is logged and retried at the
/// next interval.
async fn sweep_periodically(
    db: sea_orm::DatabaseConnection,
    engine: RuleEngine,
    interval: Duration,
    shutdown: CancellationToken,
) {
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(interval) => {}
        }
        match sweep_once(&db, &engine).await {
            Ok((raised, overdue)) if raised + overdue > 0 => {
                tracing::info!(raised, overdue, "inspection sweep raised findings");
            }
            Ok(_) => tracing::debug!("inspection sweep found no new gaps"),
            Err(error) => {
                tracing::warn!(%error, "inspection sweep failed; retrying at the next interval")
            }
        }
    }
}

async fn sweep_once(
    db: &sea_orm::DatabaseConnection,
    engine: &RuleEngine,
) -> trace_runtime::ServiceResult<(u32, u32)> {
    let transaction = trace_runtime::db::begin_write(db).await?;
    let outcome = engine.sweep(&transaction).await?;
    let today = local_date(engine.clock.now(), engine.zone);
    let context = CallContext::system(events::SERVICE);
    let overdue = service::check_overdue(
        &transaction,
        &engine.outbox,
        engine.clock.as_ref(),
        &context,
        today,
    )
    .await?;
    transaction.commit().await?;
    engine.outbox.notify();
    metrics::record_findings(&outcome);
    Ok((outcome.raised, overdue.reported.len() as u32))
}
