//! Configuration of the meeting service: the settings every service has at the top level,
//! and the meeting settings in the `[meeting]` table.

use std::path::Path;

use serde::{Deserialize, Serialize};
use trace_runtime::config::{ConfigError, ServiceSettings};

/// Default gRPC port of the meeting service.
pub const DEFAULT_PORT: u16 = 50052;

/// Largest material content that the API accepts, in bytes (16 MiB).
pub const MAX_CONTENT_BYTES_LIMIT: usize = 16 * 1024 * 1024;

/// The whole configuration of the meeting service.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MeetingConfig {
    /// Settings every service has; their keys sit at the top level of the file.
    #[serde(flatten)]
    pub service: ServiceSettings,
    pub meeting: MeetingSettings,
}

/// Settings of the meeting domain.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MeetingSettings {
    /// Seconds between two runs of the background overdue check of resolutions.
    pub overdue_check_interval_secs: u64,
    /// Maximum content size of one material in bytes, at most 16 MiB.
    pub max_content_bytes: usize,
    /// Version of the confidentiality agreement that reading a SECRET meeting with an access
    /// request needs, 1 to 32 characters of `A-Z`, `0-9` and `-`. A new version needs a new
    /// acceptance.
    #[serde(default = "trace_runtime::access_approval::default_agreement_version")]
    pub agreement_version: String,
}

impl MeetingConfig {
    /// Defaults, with data under `var/` relative to the working directory.
    pub fn defaults() -> Self {
        Self {
            service: ServiceSettings::defaults("meeting", DEFAULT_PORT),
            meeting: MeetingSettings {
                overdue_check_interval_secs: 3600,
                max_content_bytes: MAX_CONTENT_BYTES_LIMIT,
                agreement_version: trace_runtime::access_approval::default_agreement_version(),
            },
        }
    }

    /// Loads the defaults, then `file` if given, then `TRACE_`-prefixed environment variables
    /// (`TRACE_LOG_LEVEL`, `TRACE_MEETING__OVERDUE_CHECK_INTERVAL_SECS`).
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        trace_runtime::config::load(&Self::defaults(), file)
    }

    /// Checks values that deserialisation cannot; the error names the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.service.validate()?;
        if self.meeting.overdue_check_interval_secs == 0 {
            return Err(ConfigError::invalid(
                "meeting.overdue_check_interval_secs",
                "must be positive",
            ));
        }
        if !(1..=MAX_CONTENT_BYTES_LIMIT).contains(&self.meeting.max_content_bytes) {
            return Err(ConfigError::invalid(
                "meeting.max_content_bytes",
                format!(
                    "must be 1 to {MAX_CONTENT_BYTES_LIMIT}, the limit of the API, got {}",
                    self.meeting.max_content_bytes
                ),
            ));
        }
        if trace_runtime::access_approval::agreement_version(
            "meeting.agreement_version",
            &self.meeting.agreement_version,
        )
        .is_err()
        {
            return Err(ConfigError::invalid(
                "meeting.agreement_version",
                "must be 1 to 32 characters of A-Z, 0-9 and '-'",
            ));
        }
        Ok(())
    }
}

impl Default for MeetingConfig {
    fn default() -> Self {
        Self::defaults()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate() {
        let config = MeetingConfig::defaults();

        config.validate().unwrap();
        assert_eq!(config.service.grpc_addr.port(), DEFAULT_PORT);
    }

    #[test]
    fn file_reaches_flattened_keys() {
        let folder = tempfile::tempdir().unwrap();
        let path = folder.path().join("meeting.toml");
        let toml = "log_level = \"debug\"\n\
                    [nats]\nurl = \"nats://127.0.0.1:4999\"\n\
                    [meeting]\noverdue_check_interval_secs = 60\n";
        std::fs::write(&path, toml).unwrap();

        let loaded = MeetingConfig::load(Some(&path)).unwrap();

        assert_eq!(loaded.service.log_level, "debug");
        assert_eq!(loaded.service.nats.url, "nats://127.0.0.1:4999");
        assert_eq!(loaded.meeting.overdue_check_interval_secs, 60);
        assert_eq!(loaded.meeting.max_content_bytes, MAX_CONTENT_BYTES_LIMIT);
    }

    #[test]
    fn zero_interval_names_the_key() {
        let mut config = MeetingConfig::defaults();
        config.meeting.overdue_check_interval_secs = 0;

        let error = config.validate().unwrap_err().to_string();

        assert!(
            error.contains("meeting.overdue_check_interval_secs"),
            "{error}"
        );
    }

    #[test]
    fn content_limit_above_api_limit_is_invalid() {
        let mut config = MeetingConfig::defaults();
        config.meeting.max_content_bytes = MAX_CONTENT_BYTES_LIMIT + 1;

        let error = config.validate().unwrap_err().to_string();

        assert!(error.contains("meeting.max_content_bytes"), "{error}");
    }

    #[test]
    fn lowercase_agreement_version_is_invalid() {
        let mut config = MeetingConfig::defaults();
        assert_eq!(config.meeting.agreement_version, "2026-01");
        config.meeting.agreement_version = "v1".to_owned();

        let error = config.validate().unwrap_err().to_string();

        assert!(error.contains("meeting.agreement_version"), "{error}");
    }
}
