//! The project service: application and approval, team, progress reports, document updates,
//! decisions, acceptance and the summary of projects. Every state change leaves one trace
//! event with entity type `project`, written with the change in one transaction through the
//! outbox.

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
use trace_proto::project::v1::project_service_server::{self, ProjectServiceServer};
use trace_runtime::app::ServiceRuntime;
use trace_runtime::clock::SharedClock;

pub use config::ProjectConfig;
pub use migration::Migrator;
pub use service::ProjectHandler;

/// Runs the project service on `listener` until `shutdown` is cancelled: migrates the
/// database, starts the outbox relay and serves gRPC.
pub async fn run(
    config: ProjectConfig,
    listener: TcpListener,
    clock: SharedClock,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    config.validate()?;
    let zone = config.service.time_zone()?;
    let runtime = ServiceRuntime::start::<Migrator>(
        service::SERVICE,
        config.service.clone(),
        clock,
        shutdown,
    )
    .await?;
    let handler = ProjectHandler::new(&runtime, zone, config.project.agreement_version.clone());

    let interceptor = runtime.authenticator().interceptor();
    let service = InterceptedService::new(ProjectServiceServer::new(handler), interceptor);
    runtime
        .serve(
            listener,
            &[project_service_server::SERVICE_NAME],
            |router| router.add_service(service),
        )
        .await
}
