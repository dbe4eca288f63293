//! Configuration of the project service: the settings every service has, at the top level of
//! the file, and the project settings under `[project]`.

use std::path::Path;

use serde::{Deserialize, Serialize};
use trace_runtime::config::{ConfigError, ServiceSettings};

/// Default gRPC port of the project service.
pub const DEFAULT_PORT: u16 = 50053;

/// The whole configuration of the project service.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProjectConfig {
    /// Settings every service has; their keys sit at the top level of the file.
    #[serde(flatten)]
    pub service: ServiceSettings,
    #[serde(default)]
    pub project: ProjectSettings,
}

/// Settings of the project domain.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProjectSettings {
    /// Version of the confidentiality agreement that reading a SECRET project with an access
    /// request needs, 1 to 32 characters of `A-Z`, `0-9` and `-`. A new version needs a new
    /// acceptance.
    #[serde(default = "trace_runtime::access_approval::default_agreement_version")]
    pub agreement_version: String,
}

impl Default for ProjectSettings {
    fn default() -> Self {
        Self {
            agreement_version: trace_runtime::access_approval::default_agreement_version(),
        }
    }
}

impl ProjectConfig {
    /// Defaults, with data under `var/` relative to the working directory.
    pub fn defaults() -> Self {
        Self {
            service: ServiceSettings::defaults("project", DEFAULT_PORT),
            project: ProjectSettings::default(),
        }
    }

    /// Loads the defaults, then `file` if given, then `TRACE_`-prefixed environment variables
    /// (`TRACE_LOG_LEVEL`, `TRACE_NATS__URL`).
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        trace_runtime::config::load(&Self::defaults(), file)
    }

    /// Checks values that deserialisation cannot; the error names the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.service.validate()?;
        if trace_runtime::access_approval::agreement_version(
            "project.agreement_version",
            &self.project.agreement_version,
        )
        .is_err()
        {
            return Err(ConfigError::invalid(
                "project.agreement_version",
                "must be 1 to 32 characters of A-Z, 0-9 and '-'",
            ));
        }
        Ok(())
    }
}

impl Default for ProjectConfig {
    fn default() -> Self {
        Self::defaults()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate() {
        let config = ProjectConfig::defaults();

        config.validate().unwrap();
        assert_eq!(config.service.grpc_addr.port(), DEFAULT_PORT);
        assert!(config.service.database_url.contains("project.db"));
    }

    #[test]
    fn file_reaches_flattened_keys() {
        let folder = tempfile::tempdir().unwrap();
        let path = folder.path().join("project.toml");
        let toml = "log_level = \"debug\"\n\
                    grpc_addr = \"127.0.0.1:6003\"\n\
                    [nats]\nurl = \"nats://127.0.0.1:4997\"\n";
        std::fs::write(&path, toml).unwrap();

        let loaded = ProjectConfig::load(Some(&path)).unwrap();

        assert_eq!(loaded.service.log_level, "debug");
        assert_eq!(loaded.service.grpc_addr.port(), 6003);
        assert_eq!(loaded.service.nats.url, "nats://127.0.0.1:4997");
        assert_eq!(loaded.service.nats.stream_name, "TRACE");
    }

    #[test]
    fn unknown_time_zone_names_the_key() {
        let mut config = ProjectConfig::defaults();
        config.service.business_time_zone = "Nowhere/Void".to_owned();

        let error = config.validate().unwrap_err().to_string();

        assert!(error.contains("business_time_zone"), "{error}");
    }

    #[test]
    fn agreement_version_is_read_and_checked() {
        let folder = tempfile::tempdir().unwrap();
        let path = folder.path().join("project.toml");
        std::fs::write(&path, "[project]\nagreement_version = \"2027-02\"\n").unwrap();

        let loaded = ProjectConfig::load(Some(&path)).unwrap();
        assert_eq!(loaded.project.agreement_version, "2027-02");
        assert_eq!(
            ProjectConfig::defaults().project.agreement_version,
            "2026-01"
        );

        let mut config = loaded;
        config.project.agreement_version = String::new();
        let error = config.validate().unwrap_err().to_string();
        assert!(error.contains("project.agreement_version"), "{error}");
    }
}
