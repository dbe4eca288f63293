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

/// Highest accepted `grpc_max_concurrent_streams`.
const MAX_CONCURRENT_STREAMS_LIMIT: u32 = 10_000;

/// Default of `grpc_max_concurrent_streams`.
fn default_max_concurrent_streams() -> u32 {
    128
}

/// Maximum accepted `grpc_max_calls_in_flight`.
const MAX_CALLS_IN_FLIGHT_LIMIT: u32 = 100_000;

/// Default of `grpc_max_calls_in_flight`.
fn default_max_calls_in_flight() -> u32 {
    1_024
}

/// Settings every service has.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServiceSettings {
    /// Address the gRPC server binds.
    pub grpc_addr: SocketAddr,
    /// Calls one client connection may have in flight at once (HTTP/2
    /// `SETTINGS_MAX_CONCURRENT_STREAMS`). A client past the limit waits before it sends,
    /// so an overload queues at the clients instead of in this process's memory.
    #[serde(default = "default_max_concurrent_streams")]
    pub grpc_max_concurrent_streams: u32,
    /// Calls the service handles at once across all connections. A call past the limit
    /// fails at once with `RESOURCE_EXHAUSTED`. Health checks are never rejected.
    #[serde(default = "default_max_calls_in_flight")]
    pub grpc_max_calls_in_flight: u32,
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
    /// Bearer token authentication; absent in older files, which then get the defaults.
    #[serde(default)]
    pub auth: AuthSettings,
    /// Key-encryption keys that seal confidential content at rest.
    #[serde(default)]
    pub encryption: crate::seal::EncryptionSettings,
    /// TLS of the gRPC server; absent serves plaintext, for a mesh or a local run.
    #[serde(default)]
    pub tls: Option<TlsSettings>,
}

/// TLS of the gRPC server, from PEM files.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TlsSettings {
    /// Certificate chain of the server, leaf first.
    pub cert_file: String,
    /// Private key of the certificate (PKCS #8, PKCS #1 or SEC1).
    pub key_file: String,
    /// CA certificates that client certificates must chain to. When set, every caller needs
    /// a client certificate (mutual TLS).
    #[serde(default)]
    pub client_ca_file: Option<String>,
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
    /// Optional file holding the service's NKey user seed (`SU...`), for servers that list
    /// users by NKey public key; exclusive with `credentials_file`.
    #[serde(default)]
    pub nkey_seed_file: Option<String>,
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
    /// Requires TLS to the broker. A `tls://` URL or any TLS file below also turns it on.
    #[serde(default)]
    pub require_tls: bool,
    /// PEM CA certificates that the broker's certificate must chain to, in addition to the
    /// system roots.
    #[serde(default)]
    pub tls_ca_file: Option<String>,
    /// PEM client certificate and key, for brokers that verify clients.
    #[serde(default)]
    pub tls_cert_file: Option<String>,
    #[serde(default)]
    pub tls_key_file: Option<String>,
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

/// HS256 secret used when no other is configured. It is public, so anyone can mint tokens
/// that a service with this secret accepts: only for development and tests.
pub const DEVELOPMENT_SECRET: &str = "trace-development-secret-public-do-not-use-in-production";

/// Bearer token (JWT) authentication settings, key by key:
///
/// - `issuer`: required `iss` claim. Default `trace-dev`.
/// - `audience`: required `aud` claim. Default `trace`.
/// - `hs256_secret`: shared secret for HS256 tokens, at least 32 bytes. Default
///   [`DEVELOPMENT_SECRET`]. An empty string disables HS256.
/// - `hs256_secret_file`: file holding the HS256 secret (surrounding whitespace is trimmed);
///   it overrides `hs256_secret`.
/// - `jwks_file`: JSON Web Key Set file with the public keys of an external issuer. RSA keys
///   verify RS256 tokens and P-256 keys verify ES256 tokens. Every key needs a `kid`, and a
///   token's `kid` header selects its key.
/// - `leeway_secs`: clock skew in seconds allowed on `exp` and `nbf`. Default 30.
/// - `allow_development_secret`: whether the development secret may verify tokens. Default
///   true, and start-up then logs a warning. With false the development secret is ignored,
///   and start-up fails unless `hs256_secret`, `hs256_secret_file` or `jwks_file` supplies a
///   key. Production configuration sets false.
///
/// Tokens must carry `sub`, `iss`, `aud` and `exp`; `nbf` is checked when present. HS256
/// tokens verify only with the secret and RS256 or ES256 tokens only with a JWKS key, so
/// `alg: none` and algorithm confusion are rejected. The metadata headers `x-trace-user-id`,
/// `x-trace-department`, `x-trace-roles` and `x-trace-display-name-bin` are ignored.
///
/// A JWKS file is read once at start. A JWKS URL (`https`, or `http` to a loopback host) is
/// fetched at start, every `jwks_refresh_secs`, and early when a token names an unknown key
/// id, so that the identity provider can rotate keys without a restart.
#[derive(Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct AuthSettings {
    pub issuer: String,
    pub audience: String,
    pub hs256_secret: String,
    pub hs256_secret_file: Option<String>,
    pub jwks_file: Option<String>,
    pub jwks_url: Option<String>,
    /// Seconds between two fetches of `jwks_url`.
    pub jwks_refresh_secs: u64,
    pub leeway_secs: u64,
    pub allow_development_secret: bool,
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            issuer: "trace-dev".to_owned(),
            audience: "trace".to_owned(),
            hs256_secret: DEVELOPMENT_SECRET.to_owned(),
            hs256_secret_file: None,
            jwks_file: None,
            jwks_url: None,
            jwks_refresh_secs: 300,
            leeway_secs: 30,
            allow_development_secret: true,
        }
    }
}

/// Shows every key but the secret, so that settings can be logged.
impl std::fmt::Debug for AuthSettings {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let secret = if self.hs256_secret.is_empty() {
            "<empty>"
        } else if self.hs256_secret == DEVELOPMENT_SECRET {
            "<development secret>"
        } else {
            "<redacted>"
        };
        formatter
            .debug_struct("AuthSettings")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("hs256_secret", &secret)
            .field("hs256_secret_file", &self.hs256_secret_file)
            .field("jwks_file", &self.jwks_file)
            .field("jwks_url", &self.jwks_url)
            .field("jwks_refresh_secs", &self.jwks_refresh_secs)
            .field("leeway_secs", &self.leeway_secs)
            .field("allow_development_secret", &self.allow_development_secret)
            .finish()
    }
}

impl ServiceSettings {
    /// Defaults for a service, with data under `var/` relative to the working directory.
    pub fn defaults(service: &str, port: u16) -> Self {
        Self {
            grpc_addr: SocketAddr::from(([127, 0, 0, 1], port)),
            grpc_max_concurrent_streams: default_max_concurrent_streams(),
            grpc_max_calls_in_flight: default_max_calls_in_flight(),
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
                nkey_seed_file: None,
                stream_name: "TRACE".to_owned(),
                stream_replicas: 1,
                duplicate_window_secs: 120,
                stream_max_age_days: 0,
                stream_max_bytes: -1,
                connect_timeout_secs: 5,
                require_tls: false,
                tls_ca_file: None,
                tls_cert_file: None,
                tls_key_file: None,
            },
            outbox: OutboxSettings {
                batch_size: 256,
                poll_interval_ms: 200,
                receipt_timeout_secs: 30,
                max_receipt_timeout_secs: 1800,
                retention_days: 7,
                max_event_bytes: 512 * 1024,
            },
            auth: AuthSettings::default(),
            encryption: crate::seal::EncryptionSettings::default(),
            tls: None,
        }
    }

    /// Checks values that deserialisation cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.time_zone()?;
        if !(1..=MAX_CONCURRENT_STREAMS_LIMIT).contains(&self.grpc_max_concurrent_streams) {
            return Err(ConfigError::invalid(
                "grpc_max_concurrent_streams",
                format!(
                    "is {}; must be 1 to {MAX_CONCURRENT_STREAMS_LIMIT}",
                    self.grpc_max_concurrent_streams
                ),
            ));
        }
        if !(1..=MAX_CALLS_IN_FLIGHT_LIMIT).contains(&self.grpc_max_calls_in_flight) {
            return Err(ConfigError::invalid(
                "grpc_max_calls_in_flight",
                format!(
                    "is {}; must be 1 to {MAX_CALLS_IN_FLIGHT_LIMIT}",
                    self.grpc_max_calls_in_flight
                ),
            ));
        }
        if !(self.database_url.starts_with("sqlite:") || self.database_url.starts_with("postgres"))
        {
            return Err(ConfigError::invalid(
                "database_url",
                "must start with sqlite: or postgres://",
            ));
        }
        self.validate_nats()?;
        self.validate_outbox()?;
        crate::blob::parse_url(&self.blob_store_url)
            .map_err(|reason| ConfigError::invalid("blob_store_url", reason))?;

        if self.auth.issuer.is_empty() {
            return Err(ConfigError::invalid("auth.issuer", "must not be empty"));
        }
        if self.auth.audience.is_empty() {
            return Err(ConfigError::invalid("auth.audience", "must not be empty"));
        }
        Ok(())
    }

    fn validate_nats(&self) -> Result<(), ConfigError> {
        if self.nats.credentials_file.is_some() && self.nats.nkey_seed_file.is_some() {
            return Err(ConfigError::invalid(
                "nats.nkey_seed_file",
                "set either nats.credentials_file or nats.nkey_seed_file, not both",
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
        Ok(())
    }

    fn validate_outbox(&self) -> Result<(), ConfigError> {
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

    /// Returns the shutdown grace period.
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
    fn auth_defaults_apply_to_files_without_auth() {
        let folder = tempfile::tempdir().unwrap();
        let path = folder.path().join("document.toml");
        std::fs::write(
            &path,
            "[auth]\nallow_development_secret = false\njwks_file = \"/etc/trace/jwks.json\"\n",
        )
        .unwrap();
        let defaults = ServiceSettings::defaults("document", 50051);

        let loaded = load(&defaults, Some(&path)).unwrap();

        assert_eq!(defaults.auth.issuer, "trace-dev");
        assert_eq!(defaults.auth.audience, "trace");
        assert_eq!(defaults.auth.leeway_secs, 30);
        assert!(defaults.auth.allow_development_secret);
        assert!(!loaded.auth.allow_development_secret);
        assert_eq!(
            loaded.auth.jwks_file.as_deref(),
            Some("/etc/trace/jwks.json")
        );
        assert_eq!(loaded.auth.issuer, "trace-dev");
        assert_eq!(loaded.auth.hs256_secret, DEVELOPMENT_SECRET);
    }

    #[test]
    fn auth_section_may_be_missing() {
        let text = toml::to_string(&ServiceSettings::defaults("document", 50051)).unwrap();
        let without_auth = text.split("[auth]").next().unwrap();

        let parsed: ServiceSettings = toml::from_str(without_auth).unwrap();

        assert_eq!(parsed.auth.issuer, "trace-dev");
    }

    #[test]
    fn auth_debug_redacts_the_secret() {
        let mut settings = AuthSettings {
            hs256_secret: "a-production-secret-nobody-may-see".to_owned(),
            ..AuthSettings::default()
        };
        let debug_output = format!("{settings:?}");
        assert!(!debug_output.contains("nobody-may-see"), "{debug_output}");
        assert!(debug_output.contains("<redacted>"), "{debug_output}");

        settings.hs256_secret = DEVELOPMENT_SECRET.to_owned();
        let debug_output = format!("{settings:?}");
        assert!(!debug_output.contains(DEVELOPMENT_SECRET), "{debug_output}");
    }

    #[test]
    fn stream_limit_missing_from_a_file_is_128() {
        let text = toml::to_string(&ServiceSettings::defaults("document", 50051)).unwrap();
        let older = text.replace("grpc_max_concurrent_streams = 128\n", "");
        assert_ne!(older, text);

        let parsed: ServiceSettings = toml::from_str(&older).unwrap();

        assert_eq!(parsed.grpc_max_concurrent_streams, 128);
    }

    #[test]
    fn call_limit_missing_from_a_file_is_1024() {
        let text = toml::to_string(&ServiceSettings::defaults("document", 50051)).unwrap();
        let older = text.replace("grpc_max_calls_in_flight = 1024\n", "");
        assert_ne!(older, text);

        let parsed: ServiceSettings = toml::from_str(&older).unwrap();

        assert_eq!(parsed.grpc_max_calls_in_flight, 1_024);
    }

    #[test]
    fn call_limit_out_of_range_names_the_key() {
        let mut settings = ServiceSettings::defaults("document", 50051);
        for (limit, value) in [(0, "0"), (100_001, "100001")] {
            settings.grpc_max_calls_in_flight = limit;

            let error = settings.validate().unwrap_err().to_string();

            assert_eq!(
                error,
                format!(
                    "invalid configuration key grpc_max_calls_in_flight: is {value}; must be 1 \
                     to 100000"
                )
            );
        }
    }

    #[test]
    fn stream_limit_of_zero_names_the_key() {
        let mut settings = ServiceSettings::defaults("document", 50051);
        settings.grpc_max_concurrent_streams = 0;

        let error = settings.validate().unwrap_err().to_string();

        assert_eq!(
            error,
            "invalid configuration key grpc_max_concurrent_streams: is 0; must be 1 to 10000"
        );
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
