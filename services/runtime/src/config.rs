//! Layered configuration: built-in defaults, then an optional TOML file, then environment
//! variables prefixed `TRACE_` with `__` between nested keys (`TRACE_NATS__URL`). Values are
//! validated after loading, and errors name the key.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize, de::DeserializeOwned};

/// A configuration that failed to load or validate.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("failed to load configuration: {0}")]
    Load(#[from] config::ConfigError),
    #[error("invalid configuration key {key}: {reason}")]
    Invalid { key: String, reason: String },
}

impl ConfigError {
    pub fn invalid(key: &str, reason: impl Into<String>) -> Self {
        Self::Invalid {
            key: key.to_owned(),
            reason: reason.into(),
        }
    }
}

/// Settings every service has.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServiceSettings {
    /// Address the gRPC server binds.
    pub grpc_addr: SocketAddr,
    /// sea-orm database URL: `sqlite://PATH?mode=rwc` or `postgres://...`.
    pub database_url: String,
    /// Blob storage URL: `file:///absolute/folder` or `memory:///`.
    pub blob_store_url: String,
    /// IANA time zone in which deadlines and report dates are civil dates.
    pub business_time_zone: String,
    /// `text` for people, `json` for log collectors.
    pub log_format: LogFormat,
    /// Default log filter when `RUST_LOG` is not set, for example `info`.
    pub log_level: String,
    /// Seconds to wait for in-flight calls and the outbox after SIGTERM or SIGINT.
    pub shutdown_grace_secs: u64,
    /// Company directory TOML file; without it the directory is empty.
    #[serde(default)]
    pub directory_file: Option<String>,
    pub nats: NatsSettings,
    pub outbox: OutboxSettings,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// Broker connection and trace stream settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NatsSettings {
    /// Server URL, or several separated by commas.
    pub url: String,
    /// Optional NATS credentials file (JWT and NKey seed).
    pub credentials_file: Option<String>,
    /// Name of the JetStream stream over `trace.>`.
    pub stream_name: String,
    /// Stream replicas: 1 for a single server, 3 in a production cluster.
    pub stream_replicas: usize,
    /// Broker-side duplicate window in seconds; the archive deduplicates beyond it.
    pub duplicate_window_secs: u64,
    /// Maximum age of stream messages in days; 0 keeps them until the byte limit.
    pub stream_max_age_days: u64,
    /// Maximum stream size in bytes; -1 for no limit.
    pub stream_max_bytes: i64,
    /// Seconds to wait for each connection attempt at start before retrying.
    pub connect_timeout_secs: u64,
}

/// Transactional outbox relay settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OutboxSettings {
    /// Rows published per relay round.
    pub batch_size: u64,
    /// Milliseconds between relay rounds when nothing signals new rows.
    pub poll_interval_ms: u64,
    /// Seconds to wait for the archive's receipt before publishing again; doubles per
    /// attempt up to `max_receipt_timeout_secs`.
    pub receipt_timeout_secs: u64,
    pub max_receipt_timeout_secs: u64,
    /// Days to keep archived rows so that event status stays queryable.
    pub retention_days: u64,
    /// Largest envelope in bytes; larger events are rejected before they are written.
    pub max_event_bytes: usize,
}

impl ServiceSettings {
    /// Defaults for a service, with data under `var/` relative to the working directory.
    pub fn defaults(service: &str, port: u16) -> Self {
        Self {
            grpc_addr: SocketAddr::from(([127, 0, 0, 1], port)),
            database_url: format!("sqlite://var/{service}.db?mode=rwc"),
            blob_store_url: format!("file://{}", absolute("var/blobs").join(service).display()),
            business_time_zone: "Asia/Shanghai".to_owned(),
            log_format: LogFormat::Text,
            log_level: "info".to_owned(),
            shutdown_grace_secs: 10,
            directory_file: None,
            nats: NatsSettings {
                url: "nats://127.0.0.1:4222".to_owned(),
                credentials_file: None,
                stream_name: "TRACE".to_owned(),
                stream_replicas: 1,
                duplicate_window_secs: 120,
                stream_max_age_days: 0,
                stream_max_bytes: -1,
                connect_timeout_secs: 5,
            },
            outbox: OutboxSettings {
                batch_size: 256,
                poll_interval_ms: 200,
                receipt_timeout_secs: 30,
                max_receipt_timeout_secs: 1800,
                retention_days: 7,
                max_event_bytes: 512 * 1024,
            },
        }
    }

    /// Checks values that deserialisation cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.time_zone()?;
        if !(self.database_url.starts_with("sqlite:") || self.database_url.starts_with("postgres"))
        {
            return Err(ConfigError::invalid(
                "database_url",
                "must start with sqlite: or postgres://",
            ));
        }
        if !(1..=5).contains(&self.nats.stream_replicas) {
            return Err(ConfigError::invalid(
                "nats.stream_replicas",
                "must be 1 to 5",
            ));
        }
        if self.nats.duplicate_window_secs == 0 {
            return Err(ConfigError::invalid(
                "nats.duplicate_window_secs",
                "must be positive",
            ));
        }
        if self.outbox.batch_size == 0 || self.outbox.batch_size > 10_000 {
            return Err(ConfigError::invalid(
                "outbox.batch_size",
                "must be 1 to 10000",
            ));
        }
        if self.outbox.receipt_timeout_secs == 0
            || self.outbox.max_receipt_timeout_secs < self.outbox.receipt_timeout_secs
        {
            return Err(ConfigError::invalid(
                "outbox.receipt_timeout_secs",
                "must be positive and at most outbox.max_receipt_timeout_secs",
            ));
        }
        if self.outbox.max_event_bytes > 1024 * 1024 {
            return Err(ConfigError::invalid(
                "outbox.max_event_bytes",
                "must be at most 1 MiB, the broker's default max_payload",
            ));
        }
        crate::blob::parse_url(&self.blob_store_url)
            .map_err(|reason| ConfigError::invalid("blob_store_url", reason))?;
        Ok(())
    }

    /// Parses the business time zone.
    pub fn time_zone(&self) -> Result<chrono_tz::Tz, ConfigError> {
        self.business_time_zone.parse().map_err(|_| {
            ConfigError::invalid(
                "business_time_zone",
                format!(
                    "{:?} is not an IANA time zone name",
                    self.business_time_zone
                ),
            )
        })
    }

    /// The shutdown grace period.
    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.shutdown_grace_secs)
    }
}

fn absolute(path: &str) -> std::path::PathBuf {
    std::env::current_dir().map_or_else(|_| path.into(), |dir| dir.join(path))
}

/// Loads a configuration of type `T` from its defaults, an optional file and the environment.
pub fn load<T>(defaults: &T, file: Option<&Path>) -> Result<T, ConfigError>
where
    T: Serialize + DeserializeOwned,
{
    let mut builder = config::Config::builder().add_source(config::Config::try_from(defaults)?);
    if let Some(path) = file {
        builder = builder.add_source(config::File::from(path).required(true));
    }
    let environment = config::Environment::with_prefix("TRACE")
        .prefix_separator("_")
        .separator("__")
        .try_parsing(true);
    Ok(builder.add_source(environment).build()?.try_deserialize()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate() {
        ServiceSettings::defaults("document", 50051)
            .validate()
            .unwrap();
    }

    #[test]
    fn file_overrides_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("document.toml");
        std::fs::write(
            &path,
            "log_level = \"debug\"\n[nats]\nstream_replicas = 3\n",
        )
        .unwrap();
        let loaded = load(&ServiceSettings::defaults("document", 50051), Some(&path)).unwrap();
        assert_eq!(loaded.log_level, "debug");
        assert_eq!(loaded.nats.stream_replicas, 3);
        assert_eq!(loaded.nats.stream_name, "TRACE");
    }

    #[test]
    fn unknown_time_zone_names_the_key() {
        let mut settings = ServiceSettings::defaults("document", 50051);
        settings.business_time_zone = "Mars/Olympus".to_owned();
        let error = settings.validate().unwrap_err().to_string();
        assert!(error.contains("business_time_zone"), "{error}");
    }

    #[test]
    fn missing_file_is_an_error() {
        let result = load(
            &ServiceSettings::defaults("document", 50051),
            Some(Path::new("/nonexistent/trace.toml")),
        );
        assert!(result.is_err());
    }
}
