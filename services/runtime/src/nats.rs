//! Broker connection with retry, and idempotent provisioning of the trace stream.

use std::time::Duration;

use async_nats::jetstream::{self, stream};

use crate::config::NatsSettings;

/// Subjects of every trace event.
pub const TRACE_SUBJECTS: &str = "trace.>";

/// Prefix of the subjects on which the archive sends receipts to each producing service.
pub const RECEIPT_PREFIX: &str = "receipt";

/// Prefix of the subjects on which a producing service requests overdue receipts from the archive.
pub const RECEIPT_QUERY_PREFIX: &str = "receipt-query";

/// Maximum number of event ids in one receipt query, and so in its reply.
pub const RECEIPT_QUERY_LIMIT: usize = 1000;

/// Header naming the latest earlier event of the same entity that had no archive receipt
/// when the relay published this one. The archive appends the message only after that
/// event, so the ledger keeps each entity's commit order however the broker delivers.
pub const PREVIOUS_EVENT_HEADER: &str = "Trace-Previous-Event-Id";

/// Connects to the broker. The connection keeps retrying in the background, so a service
/// starts while NATS is down and its outbox fills until the broker returns.
pub async fn connect(settings: &NatsSettings, name: &str) -> anyhow::Result<async_nats::Client> {
    let mut options = async_nats::ConnectOptions::new()
        .name(name)
        .connection_timeout(Duration::from_secs(settings.connect_timeout_secs))
        .retry_on_initial_connect()
        .max_reconnects(None)
        .event_callback(|event| async move {
            match event {
                async_nats::Event::Disconnected => tracing::warn!("nats disconnected"),
                async_nats::Event::Connected => tracing::info!("nats connected"),
                other => tracing::debug!(event = %other, "nats event"),
            }
        });
    if let Some(path) = &settings.nkey_seed_file {
        let seed = std::fs::read_to_string(path).map_err(|error| {
            anyhow::anyhow!("failed to read NATS NKey seed file {path}: {error}")
        })?;
        options = options.nkey(seed.trim().to_owned());
    }
    if settings.require_tls || settings.tls_ca_file.is_some() || settings.tls_cert_file.is_some() {
        options = options.require_tls(true);
    }
    if let Some(path) = &settings.tls_ca_file {
        options = options.add_root_certificates(path.into());
    }
    match (&settings.tls_cert_file, &settings.tls_key_file) {
        (Some(cert), Some(key)) => {
            options = options.add_client_certificate(cert.into(), key.into());
        }
        (None, None) => {}
        _ => anyhow::bail!("nats.tls_cert_file and nats.tls_key_file must be set together"),
    }
    if let Some(path) = &settings.credentials_file {
        options = options.credentials_file(path).await.map_err(|error| {
            anyhow::anyhow!("failed to read NATS credentials file {path}: {error}")
        })?;
    }
    let client = options
        .connect(settings.url.as_str())
        .await
        .map_err(|error| {
            anyhow::anyhow!("failed to connect to NATS at {}: {error}", settings.url)
        })?;
    Ok(client)
}

/// Returns a JetStream context whose publish acks time out after `ack_timeout`.
pub fn jetstream(client: async_nats::Client, ack_timeout: Duration) -> jetstream::Context {
    let mut context = jetstream::new(client);
    context.set_timeout(ack_timeout);
    context
}

/// Builds the stream configuration for the trace subjects.
pub fn stream_config(settings: &NatsSettings) -> stream::Config {
    stream::Config {
        name: settings.stream_name.clone(),
        subjects: vec![TRACE_SUBJECTS.to_owned()],
        storage: stream::StorageType::File,
        num_replicas: settings.stream_replicas,
        duplicate_window: Duration::from_secs(settings.duplicate_window_secs),
        max_age: Duration::from_secs(settings.stream_max_age_days * 86_400),
        max_bytes: settings.stream_max_bytes,
        // Discarding old messages would lose unarchived events; refuse new ones instead,
        // so producers keep them in their outboxes.
        discard: stream::DiscardPolicy::New,
        ..stream::Config::default()
    }
}

/// Creates the trace stream, or updates it to the configured settings. Safe to run from
/// every service at every start.
pub async fn ensure_stream(
    context: &jetstream::Context,
    settings: &NatsSettings,
) -> anyhow::Result<stream::Info> {
    let config = stream_config(settings);
    context
        .create_or_update_stream(config)
        .await
        .map_err(|error| {
            anyhow::anyhow!(
                "failed to provision stream {}: {error}",
                settings.stream_name
            )
        })
}

/// Subject on which the archive sends receipts for events of `service`.
pub fn receipt_subject(service: &str) -> String {
    format!("{RECEIPT_PREFIX}.{service}")
}

/// Subject on which `service` requests from the archive the list of its archived events.
pub fn receipt_query_subject(service: &str) -> String {
    format!("{RECEIPT_QUERY_PREFIX}.{service}")
}
