//! Configuration of the inspection service: the settings every service has at the top level
//! of the file, and the `[inspection]` section with the consumer, the sweep and one table per
//! completeness rule.

use std::path::Path;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use trace_runtime::config::{ConfigError, ServiceSettings};

use crate::rules::RuleKind;

/// Default gRPC port of the inspection service.
pub const DEFAULT_PORT: u16 = 50055;

/// The whole configuration of the inspection service.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InspectionConfig {
    /// Settings every service has; their keys sit at the top level of the file.
    #[serde(flatten)]
    pub service: ServiceSettings,
    pub inspection: InspectionSettings,
}

/// The `[inspection]` section.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InspectionSettings {
    /// Directory id of the administration department; its head reviews inspection reports.
    pub administration_department: String,
    /// Working-day calendar TOML in the worklog service's format; without it Monday to Friday
    /// are working days and every year is flagged as uncalendared.
    #[serde(default)]
    pub calendar_file: Option<String>,
    /// First working day (`YYYY-MM-DD`) for which daily reports are expected; without it the
    /// date of the first sweep.
    #[serde(default)]
    pub daily_reports_from: Option<String>,
    /// Seconds between background sweeps of the time-based rules and the overdue check.
    pub sweep_interval_secs: u64,
    pub consumer: ConsumerSettings,
    pub rules: RuleTable,
    /// Version of the confidentiality agreement that reading a SECRET finding with an access
    /// request needs the reader to have accepted in this service.
    #[serde(default = "trace_runtime::access_approval::default_agreement_version")]
    pub agreement_version: String,
}

/// The durable JetStream consumer that feeds the rules.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConsumerSettings {
    /// Durable consumer name on the trace stream.
    pub name: String,
    /// Messages processed in one database transaction, 1 to 1000.
    pub batch_size: usize,
    /// Milliseconds to wait for a batch to fill before processing what arrived.
    pub batch_wait_ms: u64,
    /// Seconds the broker waits for an acknowledgement before redelivering.
    pub ack_wait_secs: u64,
    /// Unacknowledged messages the broker delivers before it pauses.
    pub max_ack_pending: i64,
}

/// Settings of one completeness rule, the `[inspection.rules.<name>]` tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleSettings {
    /// A disabled rule keeps tracking obligations but raises no findings.
    pub enabled: bool,
    /// Days after the due time before the rule raises a finding.
    pub grace_days: u32,
    /// Hours added to `grace_days`.
    pub grace_hours: u32,
    /// Severity of the findings the rule raises.
    pub severity: SeverityName,
}

/// Severity as written in configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum SeverityName {
    Low,
    Medium,
    High,
    Critical,
}

impl SeverityName {
    /// Returns the stored and displayed name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Low => "LOW",
            Self::Medium => "MEDIUM",
            Self::High => "HIGH",
            Self::Critical => "CRITICAL",
        }
    }
}

impl RuleSettings {
    fn new(grace_days: u32, grace_hours: u32, severity: SeverityName) -> Self {
        Self {
            enabled: true,
            grace_days,
            grace_hours,
            severity,
        }
    }

    /// Returns the grace period as a duration.
    pub fn grace(&self) -> chrono::Duration {
        chrono::Duration::days(i64::from(self.grace_days))
            + chrono::Duration::hours(i64::from(self.grace_hours))
    }
}

/// One settings table per rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleTable {
    pub document_review: RuleSettings,
    pub borrowing_return: RuleSettings,
    pub meeting_minutes: RuleSettings,
    pub resolution_due: RuleSettings,
    pub daily_report: RuleSettings,
    pub project_test_report: RuleSettings,
    pub rectification_deadline: RuleSettings,
}

impl RuleTable {
    /// Returns the settings of a rule.
    pub fn get(&self, rule: RuleKind) -> RuleSettings {
        match rule {
            RuleKind::DocumentReview => self.document_review,
            RuleKind::BorrowingReturn => self.borrowing_return,
            RuleKind::MeetingMinutes => self.meeting_minutes,
            RuleKind::ResolutionDue => self.resolution_due,
            RuleKind::DailyReport => self.daily_report,
            RuleKind::ProjectTestReport => self.project_test_report,
            RuleKind::RectificationDeadline => self.rectification_deadline,
        }
    }
}

impl Default for RuleTable {
    fn default() -> Self {
        Self {
            document_review: RuleSettings::new(0, 24, SeverityName::Medium),
            borrowing_return: RuleSettings::new(0, 0, SeverityName::Medium),
            meeting_minutes: RuleSettings::new(0, 48, SeverityName::Medium),
            resolution_due: RuleSettings::new(0, 0, SeverityName::High),
            daily_report: RuleSettings::new(0, 10, SeverityName::Low),
            project_test_report: RuleSettings::new(0, 0, SeverityName::High),
            rectification_deadline: RuleSettings::new(0, 0, SeverityName::High),
        }
    }
}

impl InspectionConfig {
    /// Defaults, with data under `var/` relative to the working directory.
    pub fn defaults() -> Self {
        Self {
            service: ServiceSettings::defaults("inspection", DEFAULT_PORT),
            inspection: InspectionSettings {
                administration_department: "admin-office".to_owned(),
                calendar_file: None,
                daily_reports_from: None,
                sweep_interval_secs: 300,
                consumer: ConsumerSettings {
                    name: "inspection".to_owned(),
                    batch_size: 100,
                    batch_wait_ms: 200,
                    ack_wait_secs: 30,
                    max_ack_pending: 1000,
                },
                rules: RuleTable::default(),
                agreement_version: trace_runtime::access_approval::default_agreement_version(),
            },
        }
    }

    /// Loads the defaults, then `file` if given, then `TRACE_`-prefixed environment variables
    /// (`TRACE_INSPECTION__SWEEP_INTERVAL_SECS`).
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        trace_runtime::config::load(&Self::defaults(), file)
    }

    /// Checks values that deserialisation cannot; the error names the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.service.validate()?;
        let settings = &self.inspection;
        trace_runtime::validate::department(
            "inspection.administration_department",
            &settings.administration_department,
        )
        .map_err(|error| {
            ConfigError::invalid("inspection.administration_department", error.to_string())
        })?;
        self.daily_reports_from()?;
        if trace_runtime::access_approval::agreement_version(
            "inspection.agreement_version",
            &settings.agreement_version,
        )
        .is_err()
        {
            return Err(ConfigError::invalid(
                "inspection.agreement_version",
                "must be 1 to 32 characters of A-Z, 0-9 and '-'",
            ));
        }
        if settings.sweep_interval_secs == 0 {
            return Err(ConfigError::invalid(
                "inspection.sweep_interval_secs",
                "must be positive",
            ));
        }
        if !(1..=1000).contains(&settings.consumer.batch_size) {
            return Err(ConfigError::invalid(
                "inspection.consumer.batch_size",
                "must be 1 to 1000",
            ));
        }
        if settings.consumer.ack_wait_secs == 0 {
            return Err(ConfigError::invalid(
                "inspection.consumer.ack_wait_secs",
                "must be positive",
            ));
        }
        Ok(())
    }

    /// Parses `inspection.daily_reports_from`.
    pub fn daily_reports_from(&self) -> Result<Option<NaiveDate>, ConfigError> {
        let Some(text) = &self.inspection.daily_reports_from else {
            return Ok(None);
        };
        NaiveDate::parse_from_str(text, "%Y-%m-%d")
            .map(Some)
            .map_err(|_| {
                ConfigError::invalid(
                    "inspection.daily_reports_from",
                    format!("{text:?} is not a YYYY-MM-DD date"),
                )
            })
    }
}

impl Default for InspectionConfig {
    fn default() -> Self {
        Self::defaults()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate() {
        let config = InspectionConfig::defaults();

        config.validate().unwrap();
        assert_eq!(config.service.grpc_addr.port(), DEFAULT_PORT);
        assert_eq!(config.inspection.consumer.name, "inspection");
    }

    #[test]
    fn lowercase_agreement_version_is_invalid() {
        let mut config = InspectionConfig::defaults();
        assert_eq!(config.inspection.agreement_version, "2026-01");
        config.inspection.agreement_version = "v1".to_owned();

        let error = config.validate().unwrap_err().to_string();

        assert!(error.contains("inspection.agreement_version"), "{error}");
    }

    #[test]
    fn file_reaches_rule_tables() {
        let folder = tempfile::tempdir().unwrap();
        let path = folder.path().join("inspection.toml");
        let toml = "[inspection.rules.meeting_minutes]\n\
                    enabled = false\ngrace_days = 0\ngrace_hours = 12\nseverity = \"HIGH\"\n";
        std::fs::write(&path, toml).unwrap();

        let loaded = InspectionConfig::load(Some(&path)).unwrap();

        let minutes = loaded.inspection.rules.meeting_minutes;
        assert!(!minutes.enabled);
        assert_eq!(minutes.grace(), chrono::Duration::hours(12));
        assert_eq!(minutes.severity, SeverityName::High);
        assert!(loaded.inspection.rules.document_review.enabled);
    }

    #[test]
    fn shipped_sample_loads_and_validates() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/local/inspection.toml");

        let loaded = InspectionConfig::load(Some(&path)).unwrap();

        loaded.validate().unwrap();
        assert_eq!(loaded.inspection.rules, RuleTable::default());
        assert!(loaded.inspection.calendar_file.is_some());
    }

    #[test]
    fn bad_start_date_names_the_key() {
        let mut config = InspectionConfig::defaults();
        config.inspection.daily_reports_from = Some("2026-13-01".to_owned());

        let error = config.validate().unwrap_err().to_string();

        assert!(error.contains("inspection.daily_reports_from"), "{error}");
    }
}
