//! Configuration of the document service: the settings every service has at the top level,
//! and the document settings in the `[document]` table.

use std::path::Path;

use serde::{Deserialize, Serialize};
use trace_runtime::config::{ConfigError, ServiceSettings};

/// Default gRPC port of the document service.
pub const DEFAULT_PORT: u16 = 50051;

/// Largest content of one revision that the API accepts, in bytes (16 MiB).
pub const MAX_CONTENT_BYTES_LIMIT: usize = 16 * 1024 * 1024;

/// The whole configuration of the document service.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DocumentConfig {
    /// Settings every service has; their keys sit at the top level of the file.
    #[serde(flatten)]
    pub service: ServiceSettings,
    pub document: DocumentSettings,
}

/// Settings of the document domain.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DocumentSettings {
    /// Seconds between two runs of the background overdue check.
    pub overdue_check_interval_secs: u64,
    /// Maximum content size of one revision in bytes, at most 16 MiB.
    pub max_content_bytes: usize,
    /// Version of the confidentiality agreement that reading SECRET documents requires,
    /// 1 to 32 characters of `A-Z`, `0-9` and `-`. A new version needs a new acceptance.
    #[serde(default = "default_agreement_version")]
    pub agreement_version: String,
}

fn default_agreement_version() -> String {
    "2026-01".to_owned()
}

impl DocumentConfig {
    /// Defaults, with data under `var/` relative to the working directory.
    pub fn defaults() -> Self {
        Self {
            service: ServiceSettings::defaults("document", DEFAULT_PORT),
            document: DocumentSettings {
                overdue_check_interval_secs: 3600,
                max_content_bytes: MAX_CONTENT_BYTES_LIMIT,
                agreement_version: default_agreement_version(),
            },
        }
    }

    /// Loads the defaults, then `file` if given, then `TRACE_`-prefixed environment variables
    /// (`TRACE_LOG_LEVEL`, `TRACE_DOCUMENT__MAX_CONTENT_BYTES`).
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        trace_runtime::config::load(&Self::defaults(), file)
    }

    /// Checks values that deserialisation cannot; the error names the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.service.validate()?;
        if self.document.overdue_check_interval_secs == 0 {
            return Err(ConfigError::invalid(
                "document.overdue_check_interval_secs",
                "must be positive",
            ));
        }
        if !(1..=MAX_CONTENT_BYTES_LIMIT).contains(&self.document.max_content_bytes) {
            return Err(ConfigError::invalid(
                "document.max_content_bytes",
                format!(
                    "must be 1 to {MAX_CONTENT_BYTES_LIMIT}, the limit of the API, got {}",
                    self.document.max_content_bytes
                ),
            ));
        }
        if crate::rules::category(
            "document.agreement_version",
            &self.document.agreement_version,
        )
        .is_err()
        {
            return Err(ConfigError::invalid(
                "document.agreement_version",
                "must be 1 to 32 characters of A-Z, 0-9 and '-'",
            ));
        }
        Ok(())
    }
}

impl Default for DocumentConfig {
    fn default() -> Self {
        Self::defaults()
    }
}

#[cfg(test)]
mod tests {
    use std::process::Command;

    use super::*;

    /// Set in the child process that [`environment_reaches_flattened_keys`] starts.
    const CHILD_MARKER: &str = "DOCUMENT_CONFIG_TEST_CHILD";

    #[test]
    fn defaults_validate() {
        DocumentConfig::defaults().validate().unwrap();
    }

    #[test]
    fn file_reaches_flattened_keys() {
        let folder = tempfile::tempdir().unwrap();
        let path = folder.path().join("document.toml");
        let toml = "log_level = \"debug\"\n\
                    grpc_addr = \"127.0.0.1:6001\"\n\
                    [nats]\nurl = \"nats://127.0.0.1:4999\"\n\
                    [document]\nmax_content_bytes = 2048\n";
        std::fs::write(&path, toml).unwrap();

        let loaded = DocumentConfig::load(Some(&path)).unwrap();

        assert_eq!(loaded.service.log_level, "debug");
        assert_eq!(loaded.service.grpc_addr.port(), 6001);
        assert_eq!(loaded.service.nats.url, "nats://127.0.0.1:4999");
        assert_eq!(loaded.service.nats.stream_name, "TRACE");
        assert_eq!(loaded.document.max_content_bytes, 2048);
        assert_eq!(loaded.document.overdue_check_interval_secs, 3600);
        loaded.validate().unwrap();
    }

    /// Environment variables are process-wide and `set_var` is unsafe, so the checks run in a
    /// child process of this test binary that starts with the variables set.
    #[test]
    fn environment_reaches_flattened_keys() {
        if std::env::var_os(CHILD_MARKER).is_none() {
            run_in_child_process(
                "config::tests::environment_reaches_flattened_keys",
                &[
                    ("TRACE_LOG_LEVEL", "warn"),
                    ("TRACE_SHUTDOWN_GRACE_SECS", "3"),
                    ("TRACE_NATS__URL", "nats://127.0.0.1:4998"),
                    ("TRACE_DOCUMENT__MAX_CONTENT_BYTES", "1024"),
                    ("TRACE_DOCUMENT__OVERDUE_CHECK_INTERVAL_SECS", "60"),
                ],
            );
            return;
        }

        let loaded = DocumentConfig::load(None).unwrap();

        assert_eq!(loaded.service.log_level, "warn");
        assert_eq!(loaded.service.shutdown_grace_secs, 3);
        assert_eq!(loaded.service.nats.url, "nats://127.0.0.1:4998");
        assert_eq!(loaded.document.max_content_bytes, 1024);
        assert_eq!(loaded.document.overdue_check_interval_secs, 60);
    }

    fn run_in_child_process(test: &str, variables: &[(&str, &str)]) {
        let mut command = Command::new(std::env::current_exe().unwrap());
        command.args(["--exact", test, "--nocapture", "--test-threads=1"]);
        for (key, _) in std::env::vars().filter(|(key, _)| key.starts_with("TRACE_")) {
            command.env_remove(key);
        }
        command
            .env(CHILD_MARKER, "1")
            .envs(variables.iter().copied());

        let output = command.output().unwrap();

        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "child failed:\n{stdout}\n{stderr}");
        assert!(stdout.contains("1 passed"), "child ran no test:\n{stdout}");
    }

    #[test]
    fn zero_interval_names_the_key() {
        let mut config = DocumentConfig::defaults();
        config.document.overdue_check_interval_secs = 0;

        let error = config.validate().unwrap_err().to_string();

        assert!(
            error.contains("document.overdue_check_interval_secs"),
            "{error}"
        );
    }

    #[test]
    fn content_limit_above_api_limit_is_invalid() {
        let mut config = DocumentConfig::defaults();
        config.document.max_content_bytes = MAX_CONTENT_BYTES_LIMIT + 1;

        let error = config.validate().unwrap_err().to_string();

        assert!(error.contains("document.max_content_bytes"), "{error}");
    }
}
