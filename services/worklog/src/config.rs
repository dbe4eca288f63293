//! Configuration of the worklog service: the settings every service has at the top level, and
//! the worklog settings in the `[worklog]` table.

use std::path::Path;

use chrono::NaiveTime;
use serde::{Deserialize, Serialize};
use trace_runtime::config::{ConfigError, ServiceSettings};

use crate::calendar::WorkCalendar;

/// Default gRPC port of the worklog service.
pub const DEFAULT_PORT: u16 = 50054;

/// The whole configuration of the worklog service.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WorklogConfig {
    /// Settings every service has; their keys sit at the top level of the file.
    #[serde(flatten)]
    pub service: ServiceSettings,
    pub worklog: WorklogSettings,
}

/// Settings of the worklog domain.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WorklogSettings {
    /// Time of day, `HH:MM` in `business_time_zone`, by which a daily report is due on its
    /// work date; later submissions are flagged late.
    pub daily_deadline: String,
    /// Working-day calendar TOML file (see `deploy/local/calendar-cn.toml`). Without it every
    /// daily report is flagged `calendar_missing`.
    #[serde(default)]
    pub calendar_file: Option<String>,
    /// Version of the confidentiality agreement that reading a SECRET report or communication
    /// with an access request needs, 1 to 32 characters of `A-Z`, `0-9` and `-`. A new
    /// version needs a new acceptance.
    #[serde(default = "trace_runtime::access_approval::default_agreement_version")]
    pub agreement_version: String,
}

impl WorklogConfig {
    /// Defaults, with data under `var/` relative to the working directory.
    pub fn defaults() -> Self {
        Self {
            service: ServiceSettings::defaults("worklog", DEFAULT_PORT),
            worklog: WorklogSettings {
                daily_deadline: "18:00".to_owned(),
                calendar_file: None,
                agreement_version: trace_runtime::access_approval::default_agreement_version(),
            },
        }
    }

    /// Loads the defaults, then `file` if given, then `TRACE_`-prefixed environment variables
    /// (`TRACE_LOG_LEVEL`, `TRACE_WORKLOG__DAILY_DEADLINE`).
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        trace_runtime::config::load(&Self::defaults(), file)
    }

    /// Checks values that deserialisation cannot; the error names the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.service.validate()?;
        self.worklog.deadline()?;
        self.worklog.calendar()?;
        if trace_runtime::access_approval::agreement_version(
            "worklog.agreement_version",
            &self.worklog.agreement_version,
        )
        .is_err()
        {
            return Err(ConfigError::invalid(
                "worklog.agreement_version",
                "must be 1 to 32 characters of A-Z, 0-9 and '-'",
            ));
        }
        Ok(())
    }
}

impl WorklogSettings {
    /// Parses `daily_deadline`.
    pub fn deadline(&self) -> Result<NaiveTime, ConfigError> {
        crate::rules::parse_time_of_day(&self.daily_deadline).ok_or_else(|| {
            ConfigError::invalid(
                "worklog.daily_deadline",
                format!(
                    "{:?} is not a time of day written HH:MM, such as 18:00",
                    self.daily_deadline
                ),
            )
        })
    }

    /// Loads the calendar file, or returns an empty calendar when none is configured.
    pub fn calendar(&self) -> Result<WorkCalendar, ConfigError> {
        match &self.calendar_file {
            Some(path) => WorkCalendar::load(Path::new(path))
                .map_err(|error| ConfigError::invalid("worklog.calendar_file", error.to_string())),
            None => Ok(WorkCalendar::default()),
        }
    }
}

impl Default for WorklogConfig {
    fn default() -> Self {
        Self::defaults()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate() {
        let config = WorklogConfig::defaults();

        config.validate().unwrap();

        assert_eq!(config.service.grpc_addr.port(), 50054);
        assert_eq!(
            config.worklog.deadline().unwrap(),
            NaiveTime::from_hms_opt(18, 0, 0).unwrap()
        );
    }

    #[test]
    fn file_reaches_worklog_keys() {
        let folder = tempfile::tempdir().unwrap();
        let calendar = folder.path().join("calendar.toml");
        std::fs::write(&calendar, "[[years]]\nyear = 2026\nsource = \"test\"\n").unwrap();
        let path = folder.path().join("worklog.toml");
        let toml = format!(
            "log_level = \"debug\"\n[worklog]\ndaily_deadline = \"17:30\"\ncalendar_file = {:?}\n",
            calendar.display().to_string()
        );
        std::fs::write(&path, toml).unwrap();

        let loaded = WorklogConfig::load(Some(&path)).unwrap();

        assert_eq!(loaded.service.log_level, "debug");
        assert_eq!(loaded.worklog.daily_deadline, "17:30");
        loaded.validate().unwrap();
        assert_eq!(
            loaded
                .worklog
                .calendar()
                .unwrap()
                .years()
                .collect::<Vec<_>>(),
            [2026]
        );
    }

    #[test]
    fn malformed_deadline_names_the_key() {
        let mut config = WorklogConfig::defaults();
        config.worklog.daily_deadline = "6pm".to_owned();

        let error = config.validate().unwrap_err().to_string();

        assert!(error.contains("worklog.daily_deadline"), "{error}");
    }

    #[test]
    fn malformed_agreement_version_names_the_key() {
        let mut config = WorklogConfig::defaults();
        config.worklog.agreement_version = "v 1".to_owned();

        let error = config.validate().unwrap_err().to_string();

        assert!(error.contains("worklog.agreement_version"), "{error}");
    }

    #[test]
    fn missing_calendar_file_names_the_key() {
        let mut config = WorklogConfig::defaults();
        config.worklog.calendar_file = Some("/nonexistent/calendar.toml".to_owned());

        let error = config.validate().unwrap_err().to_string();

        assert!(error.contains("worklog.calendar_file"), "{error}");
    }
}
