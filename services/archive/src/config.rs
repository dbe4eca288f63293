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
    /// Milliseconds to wait for a batch to fill before appending what arrived.
    pub batch_wait_ms: u64,
    /// Seconds the broker waits for an ack before redelivering.
    pub ack_wait_secs: u64,
    /// Most unacknowledged messages the broker hands out at once.
    pub max_ack_pending: i64,
    /// File holding the Ed25519 checkpoint signing key in the signed-note encoding
    /// (`tracectl keygen` prints one); without it checkpoints are not signed.
    #[serde(default)]
    pub checkpoint_signing_key_file: Option<String>,
    /// Seconds between periodic checkpoints; 0 disables them.
    pub checkpoint_interval_secs: u64,
    /// Backup location: `file:///absolute/folder`; without it backups are disabled.
    #[serde(default)]
    pub backup_url: Option<String>,
    /// File holding the 32-byte backup sealing key as 64 hex digits.
    #[serde(default)]
    pub backup_key_file: Option<String>,
    /// Seconds between scheduled backups; 0 runs backups only on demand.
    pub backup_interval_secs: u64,
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
                checkpoint_signing_key_file: None,
                checkpoint_interval_secs: 300,
                backup_url: None,
                backup_key_file: None,
                backup_interval_secs: 3600,
            },
        }
    }
}

impl ArchiveConfig {
    /// Checks values that deserialisation cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.service.validate()?;
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
        if self.archive.ack_wait_secs < 5 {
            return Err(ConfigError::invalid(
                "archive.ack_wait_secs",
                "must be at least 5",
            ));
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
                crate::backup_job::BackupLocation::open(url)?,
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
