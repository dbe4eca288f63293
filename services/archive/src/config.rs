//! Archive configuration.

use serde::{Deserialize, Serialize};
use trace_runtime::config::{ConfigError, ServiceSettings};

/// Everything the archive reads from configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ArchiveConfig {
    #[serde(flatten)]
    pub service: ServiceSettings,
    pub archive: ArchiveSettings,
}

/// Consumer settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ArchiveSettings {
    /// Durable consumer name on the trace stream.
    pub consumer_name: String,
    /// Largest number of messages appended in one transaction.
    pub batch_size: usize,
    /// Milliseconds a batch waits to fill while the broker reports more messages pending. A
    /// batch without pending messages is appended at once.
    pub batch_wait_ms: u64,
    /// Seconds the broker waits for an ack before redelivering.
    pub ack_wait_secs: u64,
    /// Most unacknowledged messages the broker hands out at once.
    pub max_ack_pending: i64,
    /// Seconds an event waits in the stream for its entity's previous event before it is
    /// appended anyway, out of order, with a warning. Longer than the producers' receipt
    /// timeout, so that an event lost by the broker is published again within it.
    #[serde(default = "default_predecessor_wait_secs")]
    pub predecessor_wait_secs: u64,
    /// File holding the Ed25519 checkpoint signing key in the signed-note encoding
    /// (`tracectl keygen` prints one); without it checkpoints are not signed.
    #[serde(default)]
    pub checkpoint_signing_key_file: Option<String>,
    /// Seconds between periodic checkpoints; 0 disables them.
    pub checkpoint_interval_secs: u64,
    /// Backup location: `file:///absolute/folder`, `s3://bucket/prefix`,
    /// `gs://bucket/prefix` or `az://container/prefix`; without it backups are disabled.
    #[serde(default)]
    pub backup_url: Option<String>,
    /// `object_store` builder options for a cloud backup URL, such as `aws_region` or
    /// `aws_endpoint`. They override the cloud's standard environment variables
    /// (`AWS_*`, `GOOGLE_*`, `AZURE_*`). Keep credentials in those variables, fed from a
    /// secret, because this map is part of the configuration.
    #[serde(default)]
    pub backup_options: std::collections::BTreeMap<String, String>,
    /// File holding the 32-byte backup sealing key as 64 hex digits.
    #[serde(default)]
    pub backup_key_file: Option<String>,
    /// Seconds between scheduled backups; 0 runs backups only on demand.
    pub backup_interval_secs: u64,
    /// Shortest retention of any record in calendar months; at least 6. No schedule may be
    /// shorter, and no record younger than this is disposed of.
    pub retention_floor_months: u32,
    /// Retention schedules; a record that no schedule matches is kept for ever.
    #[serde(default)]
    pub retention: Vec<RetentionSchedule>,
}

/// How long one class of records is kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetentionSchedule {
    /// Name recorded in disposition certificates.
    pub name: String,
    /// Entity type the schedule covers, or `*` for every type.
    pub entity_type: String,
    /// Confidentiality the schedule covers (`public`, `internal`, `confidential`, `secret`);
    /// absent for every level.
    #[serde(default)]
    pub confidentiality: Option<String>,
    /// Retention period in calendar months after the trigger.
    pub period_months: u32,
    /// Event that starts the period.
    pub trigger: RetentionTrigger,
    /// With the `event` trigger: actions of the entity that start the period (for example
    /// `closed` or `contract_ended`); the first such event counts.
    #[serde(default)]
    pub trigger_actions: Vec<String>,
}

/// Event that starts a retention period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RetentionTrigger {
    /// The entity's first event.
    Creation,
    /// The entity's first event with one of the trigger actions.
    Event,
}

impl Default for ArchiveConfig {
    fn default() -> Self {
        Self {
            service: ServiceSettings::defaults("archive", 50056),
            archive: ArchiveSettings {
                consumer_name: "archive".to_owned(),
                batch_size: 500,
                batch_wait_ms: 20,
                ack_wait_secs: 60,
                max_ack_pending: 20_000,
                predecessor_wait_secs: default_predecessor_wait_secs(),
                checkpoint_signing_key_file: None,
                checkpoint_interval_secs: 300,
                backup_url: None,
                backup_options: Default::default(),
                backup_key_file: None,
                backup_interval_secs: 3600,
                retention_floor_months: 6,
                retention: Vec::new(),
            },
        }
    }
}

/// Maximum wait for a predecessor: one week.
const MAX_PREDECESSOR_WAIT_SECS: u64 = 7 * 24 * 3600;

fn default_predecessor_wait_secs() -> u64 {
    600
}

impl ArchiveConfig {
    /// Checks values that deserialisation cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.service.validate()?;
        if trace_runtime::db::is_sqlite_in_memory(&self.service.database_url) {
            return Err(ConfigError::invalid(
                "database_url",
                format!(
                    "is {}. The archive keeps its ledger in a SQLite file or in PostgreSQL, \
                     because an in-memory ledger is lost at exit and cannot be verified",
                    self.service.database_url
                ),
            ));
        }
        if !trace_runtime::event::is_subject_token(&self.archive.consumer_name) {
            return Err(ConfigError::invalid(
                "archive.consumer_name",
                "must be 1 to 32 characters of a-z, 0-9 and '_', starting with a letter",
            ));
        }
        if !(1..=5_000).contains(&self.archive.batch_size) {
            return Err(ConfigError::invalid(
                "archive.batch_size",
                "must be 1 to 5000",
            ));
        }
        self.validate_retention()?;
        if self.archive.ack_wait_secs < 5 {
            return Err(ConfigError::invalid(
                "archive.ack_wait_secs",
                "must be at least 5",
            ));
        }
        // Zero would append every event at once, out of order after a lost message.
        if !(1..=MAX_PREDECESSOR_WAIT_SECS).contains(&self.archive.predecessor_wait_secs) {
            return Err(ConfigError::invalid(
                "archive.predecessor_wait_secs",
                "must be 1 to 604800 (one week)",
            ));
        }
        Ok(())
    }

    fn validate_retention(&self) -> Result<(), ConfigError> {
        let floor = self.archive.retention_floor_months;
        if floor < 6 {
            return Err(ConfigError::invalid(
                "archive.retention_floor_months",
                format!("must be at least 6, got {floor}"),
            ));
        }
        let mut names = std::collections::HashSet::new();
        for schedule in &self.archive.retention {
            let key = format!("archive.retention.{}", schedule.name);
            if !names.insert(schedule.name.as_str()) {
                return Err(ConfigError::invalid(&key, "schedule names must be unique"));
            }
            if schedule.period_months < floor {
                return Err(ConfigError::invalid(
                    &key,
                    format!(
                        "period of {} months undercuts the floor of {floor} months",
                        schedule.period_months
                    ),
                ));
            }
            if schedule.trigger == RetentionTrigger::Event && schedule.trigger_actions.is_empty() {
                return Err(ConfigError::invalid(
                    &key,
                    "the event trigger needs trigger_actions",
                ));
            }
            if let Some(level) = &schedule.confidentiality
                && crate::retention::confidentiality_level(level).is_none()
            {
                return Err(ConfigError::invalid(
                    &key,
                    format!("unknown confidentiality {level:?}"),
                ));
            }
        }
        Ok(())
    }

    /// Opens the backup location and key, if both are configured.
    pub fn backup_setup(
        &self,
    ) -> anyhow::Result<Option<(crate::backup_job::BackupLocation, crate::backup::BackupKey)>> {
        match (&self.archive.backup_url, &self.archive.backup_key_file) {
            (None, None) => Ok(None),
            (Some(url), Some(key_file)) => Ok(Some((
                crate::backup_job::BackupLocation::open(url, &self.archive.backup_options)?,
                crate::backup::BackupKey::from_file(key_file)?,
            ))),
            _ => Err(ConfigError::invalid(
                "archive.backup_url",
                "archive.backup_url and archive.backup_key_file must be set together",
            )
            .into()),
        }
    }

    /// Reads the checkpoint signing key, if one is configured.
    pub fn checkpoint_signer(&self) -> anyhow::Result<Option<crate::checkpoint::CheckpointSigner>> {
        let Some(path) = &self.archive.checkpoint_signing_key_file else {
            return Ok(None);
        };
        let key = std::fs::read_to_string(path).map_err(|error| {
            anyhow::anyhow!("failed to read archive.checkpoint_signing_key_file {path}: {error}")
        })?;
        Ok(Some(crate::checkpoint::CheckpointSigner::new(&key)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn predecessor_wait_out_of_range_is_rejected() {
        for secs in [0, MAX_PREDECESSOR_WAIT_SECS + 1, u64::MAX] {
            let mut config = ArchiveConfig::default();
            config.archive.predecessor_wait_secs = secs;
            let error = config.validate().unwrap_err().to_string();
            assert!(
                error.contains("archive.predecessor_wait_secs"),
                "{secs}: {error}"
            );
        }
        let mut config = ArchiveConfig::default();
        config.archive.predecessor_wait_secs = MAX_PREDECESSOR_WAIT_SECS;
        config.validate().unwrap();
    }

    #[test]
    fn in_memory_ledger_is_rejected() {
        for url in [
            "sqlite::memory:",
            "sqlite://?mode=memory",
            "sqlite://ledger.db?mode=memory",
        ] {
            let mut config = ArchiveConfig::default();
            config.service.database_url = url.to_owned();
            let error = config.validate().unwrap_err().to_string();
            assert!(
                error.contains("database_url") && error.contains(url),
                "{url}: {error}"
            );
        }
        let mut config = ArchiveConfig::default();
        config.service.database_url = "sqlite://var/archive.db?mode=rwc".to_owned();
        config.validate().unwrap();
    }
}
