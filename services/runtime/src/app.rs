//! Start-up and shutdown shared by every service: database and migrations, broker and stream,
//! outbox relay and receipts, and the gRPC server with health and reflection.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;
use sea_orm::DatabaseConnection;
use sea_orm_migration::MigratorTrait;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tonic::transport::Server;
use tonic::transport::server::{Router, TcpIncoming};
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;
use tower::layer::util::{Identity, Stack};
use trace_proto::event::v1::outbox_service_server::OutboxServiceServer;

use crate::auth::Authenticator;
use crate::call_limit::CallLimitLayer;
use crate::clock::SharedClock;
use crate::config::ServiceSettings;
use crate::denials::{DenialLayer, DenialRecorder};
use crate::directory::Directory;
use crate::grpc_telemetry::GrpcTelemetryLayer;
use crate::metrics::Metrics;
use crate::outbox::Outbox;
use crate::outbox::relay::Relay;
use crate::outbox::service::OutboxStatus;
use crate::seal::Keyring;
use crate::served::ServedLayer;

/// The router that [`ServiceRuntime::serve`] hands to a service to add its gRPC services,
/// with the shared layers from the outside in: telemetry, denial recording, the limit on
/// calls in flight, and the rejection of calls of services the port does not serve. The
/// calls that the last two layers reject are still counted and traced.
pub type ServiceRouter = Router<
    Stack<
        ServedLayer,
        Stack<CallLimitLayer, Stack<DenialLayer, Stack<GrpcTelemetryLayer, Identity>>>,
    >,
>;

/// How often the outbox backlog gauges are refreshed while metrics are exported.
const BACKLOG_INTERVAL: Duration = Duration::from_secs(15);

/// Everything a running service shares between its handlers and background tasks.
#[derive(Debug)]
pub struct ServiceRuntime {
    pub service: &'static str,
    pub settings: ServiceSettings,
    pub db: DatabaseConnection,
    pub clock: SharedClock,
    pub nats: async_nats::Client,
    pub jetstream: jetstream::Context,
    pub outbox: Outbox,
    /// The company directory; empty when no `directory_file` is configured.
    pub directory: Arc<Directory>,
    /// Cancelled when the service should stop.
    pub shutdown: CancellationToken,
    /// Metric instruments labelled with this service's name.
    pub metrics: Metrics,
    /// Key-encryption keys that seal confidential content and event payloads.
    pub keyring: Keyring,
    authenticator: Authenticator,
    tasks: TaskTracker,
}

impl ServiceRuntime {
    /// Connects and migrates the database, connects to the broker (retrying in the
    /// background while it is down) and starts the outbox relay and receipt listener.
    pub async fn start<M: MigratorTrait>(
        service: &'static str,
        settings: ServiceSettings,
        clock: SharedClock,
        shutdown: CancellationToken,
    ) -> anyhow::Result<Self> {
        let directory = match &settings.directory_file {
            Some(path) => Arc::new(Directory::load(std::path::Path::new(path))?),
            None => Arc::new(Directory::default()),
        };
        // Key problems are configuration errors, so they stop the start before any connection.
        let metrics = Metrics::new(service);
        let authenticator =
            Authenticator::new(&settings.auth, directory.clone())?.with_metrics(metrics.clone());
        let keyring = Keyring::load(&settings.encryption)?;
        let db = crate::db::connect_and_migrate::<M>(&settings.database_url).await?;
        tracing::info!(database = %crate::db::redact(&settings.database_url), "database ready");
        let nats = crate::nats::connect(&settings.nats, &format!("trace-{service}")).await?;
        let jetstream = crate::nats::jetstream(nats.clone(), Duration::from_secs(5));
        let outbox = Outbox::new(db.clone(), clock.clone(), settings.outbox.max_event_bytes)
            .with_keyring(keyring.clone());

        let runtime = Self {
            service,
            settings,
            db,
            clock,
            nats,
            jetstream,
            outbox,
            directory,
            shutdown,
            metrics,
            keyring,
            authenticator,
            tasks: TaskTracker::new(),
        };
        if let Some(refresh) = runtime
            .authenticator
            .start_jwks_refresh(runtime.shutdown.clone())
            .await
        {
            runtime.spawn(refresh);
        }
        runtime.spawn_stream_provisioning();
        runtime.spawn_outbox_tasks();
        Ok(runtime)
    }

    /// Returns the authenticator built from `auth` settings and the directory. Its
    /// [`Authenticator::interceptor`] authenticates every call of a service.
    pub fn authenticator(&self) -> Authenticator {
        self.authenticator.clone()
    }

    /// Runs `task` in the background; shutdown waits for it within the grace period.
    pub fn spawn<F>(&self, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.tasks.spawn(task);
    }

    fn spawn_stream_provisioning(&self) {
        let jetstream = self.jetstream.clone();
        let nats = self.settings.nats.clone();
        let shutdown = self.shutdown.clone();
        self.spawn(async move {
            let mut delay = Duration::from_millis(200);
            loop {
                match crate::nats::ensure_stream(&jetstream, &nats).await {
                    Ok(info) => {
                        tracing::info!(stream = %info.config.name, messages = info.state.messages, "trace stream ready");
                        return;
                    }
                    Err(error) => tracing::warn!(error = format!("{error:#}"), "trace stream not ready, retrying"),
                }
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(delay) => {}
                }
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        });
    }

    fn spawn_outbox_tasks(&self) {
        let relay = Relay::new(
            &self.outbox,
            self.nats.clone(),
            self.jetstream.clone(),
            self.service,
            self.settings.nats.clone(),
            self.settings.outbox.clone(),
            self.metrics.clone(),
        );
        self.spawn(relay.run(self.shutdown.clone()));
        if crate::telemetry::metrics_enabled() {
            self.spawn(crate::outbox::service::report_backlog(
                self.db.clone(),
                self.clock.clone(),
                self.metrics.clone(),
                BACKLOG_INTERVAL,
                self.shutdown.clone(),
            ));
        }

        let (client, service, db, clock, wake, shutdown) = (
            self.nats.clone(),
            self.service,
            self.db.clone(),
            self.clock.clone(),
            self.outbox.wake_handle(),
            self.shutdown.clone(),
        );
        self.spawn(async move {
            if let Err(error) =
                crate::outbox::receipts::run(client, service, db, clock, wake, shutdown).await
            {
                tracing::error!(error = format!("{error:#}"), "receipt listener stopped");
            }
        });

        let (db, clock, shutdown) = (self.db.clone(), self.clock.clone(), self.shutdown.clone());
        let retention_days = self.settings.outbox.retention_days;
        self.spawn(async move {
            loop {
                match crate::outbox::receipts::prune(&db, &clock, retention_days).await {
                    Ok(0) => {}
                    Ok(removed) => tracing::info!(removed, "pruned archived outbox rows"),
                    Err(error) => tracing::warn!(%error, "failed to prune the outbox"),
                }
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(Duration::from_secs(3600)) => {}
                }
            }
        });
    }

    /// Serves gRPC on `listener` with health, reflection (v1 and v1alpha) and the outbox
    /// status service, plus the services `add_services` adds, whose full names `services`
    /// gives. Reflection lists these services and no other, so that grpcurl on one service's
    /// port does not offer another service's methods. Every call gets a server span and
    /// request metrics from [`GrpcTelemetryLayer`], and [`CallLimitLayer`] rejects calls
    /// past `grpc_max_calls_in_flight` (reflection calls past a bound of their own). Returns
    /// after shutdown, once in-flight calls and background tasks finished or the grace
    /// period ran out.
    pub async fn serve(
        self,
        listener: TcpListener,
        services: &[&str],
        add_services: impl FnOnce(ServiceRouter) -> ServiceRouter,
    ) -> anyhow::Result<()> {
        let (health, health_service) = tonic_health::server::health_reporter();
        let reflection_v1 = reflection_builder(services).build_v1()?;
        let reflection_v1alpha = reflection_builder(services).build_v1alpha()?;
        let outbox_status = OutboxServiceServer::with_interceptor(
            OutboxStatus::new(self.db.clone()),
            self.authenticator.interceptor(),
        );
        let denials = DenialRecorder::new(
            self.service,
            self.outbox.clone(),
            self.authenticator.clone(),
        );
        let mut server =
            Server::builder().max_concurrent_streams(self.settings.grpc_max_concurrent_streams);
        if let Some(tls) = &self.settings.tls {
            server = server.tls_config(crate::tls::server_config(tls)?)?;
        }
        let router = server
            .layer(GrpcTelemetryLayer::new(self.metrics.clone()))
            .layer(denials.layer())
            .layer(CallLimitLayer::new(
                self.settings.grpc_max_calls_in_flight as usize,
            ))
            .layer(ServedLayer::new(port_services(services)))
            .add_service(health_service)
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha)
            .add_service(outbox_status);
        let router = add_services(router);

        set_health(&health, self.service, ServingStatus::Serving).await;
        let address = listener.local_addr()?;
        tracing::info!(service = self.service, %address, "grpc server listening");
        let shutdown = self.shutdown.clone();
        // Without TCP_NODELAY, Nagle's algorithm delays a response's last segment until the
        // client's delayed ACK, which adds about 40 ms to calls on a reused connection.
        let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
        let served = router
            .serve_with_incoming_shutdown(incoming, shutdown.cancelled_owned())
            .await;
        set_health(&health, self.service, ServingStatus::NotServing).await;
        self.drain().await;
        served.map_err(|error| anyhow::anyhow!("grpc server failed: {error}"))
    }

    /// Stops background tasks and waits for them within the grace period.
    async fn drain(&self) {
        self.shutdown.cancel();
        self.tasks.close();
        let grace = self.settings.shutdown_grace();
        if tokio::time::timeout(grace, self.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                ?grace,
                "background tasks did not stop within the grace period"
            );
        }
        tracing::info!(service = self.service, "stopped");
    }
}

/// Builds reflection over every message of the trace protocol, health and reflection,
/// advertising the health, reflection and outbox status services and `services`.
fn reflection_builder<'a>(services: &[&str]) -> tonic_reflection::server::Builder<'a> {
    let mut builder = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(trace_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        // Each version's builder registers only its own reflection protocol, and a listed
        // service that cannot be described makes grpcurl's `describe` fail.
        .register_encoded_file_descriptor_set(tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET);
    for name in port_services(services) {
        builder = builder.with_service_name(name);
    }
    builder
}

/// Full names of the services that a port serves: health, reflection, outbox status and
/// `services`.
fn port_services<'a>(services: &[&'a str]) -> impl Iterator<Item = &'a str> {
    [
        tonic_health::pb::health_server::SERVICE_NAME,
        tonic_reflection::pb::v1::server_reflection_server::SERVICE_NAME,
        tonic_reflection::pb::v1alpha::server_reflection_server::SERVICE_NAME,
        trace_proto::event::v1::outbox_service_server::SERVICE_NAME,
    ]
    .into_iter()
    .chain(services.iter().copied())
}

async fn set_health(health: &HealthReporter, service: &str, status: ServingStatus) {
    health.set_service_status("", status).await;
    health
        .set_service_status(format!("trace.{service}"), status)
        .await;
}

/// Cancels `shutdown` on the first SIGTERM or SIGINT.
pub fn cancel_on_signal(shutdown: CancellationToken) {
    tokio::spawn(async move {
        let interrupt = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            let mut terminate =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .expect("installing a SIGTERM handler succeeds on unix");
            tokio::select! {
                _ = interrupt => tracing::info!("received SIGINT, shutting down"),
                _ = terminate.recv() => tracing::info!("received SIGTERM, shutting down"),
            }
        }
        #[cfg(not(unix))]
        {
            let _ = interrupt.await;
        }
        shutdown.cancel();
    });
}
