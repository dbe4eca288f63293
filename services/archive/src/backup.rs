//! Offsite backup of the ledger as sealed, incremental segments through `object_store`, and
//! the offline reader that verifies and restores them.
//!
//! A segment contains a contiguous range of ledger entries as JSON Lines, gzip-compressed, then
//! sealed with AES-256-GCM under the configured backup key (a random 96-bit nonce per
//! segment, the object name as associated data). Beside each segment a manifest records its
//! sequence range, the chain hash before and after it, the SHA-256 of the sealed bytes and a
//! signed checkpoint of the tree at its last entry. Objects:
//!
//! ```text
//! segments/<from:020>-<to:020>.seg
//! segments/<from:020>-<to:020>.manifest.json
//! ```

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Serialize};

use crate::entity::ledger_entry;

/// Entries per segment at most; a backup of a larger range writes several segments.
pub const SEGMENT_ENTRIES: u64 = 100_000;

/// A backup that could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("invalid backup key: {0}")]
    Key(String),
    #[error("segment {name} is missing")]
    MissingSegment { name: String },
    #[error("segment {name} is tampered or unreadable: {reason}")]
    Tampered { name: String, reason: String },
    #[error("backup storage error: {0}")]
    Store(#[from] object_store::Error),
    #[error("{0}")]
    Other(String),
}

/// The 32-byte backup key, read from a file holding 64 hex digits.
#[derive(Clone)]
pub struct BackupKey {
    key: [u8; 32],
    /// First 8 hex digits of the key's SHA-256, so that manifests name the key they need.
    pub key_id: String,
}

impl std::fmt::Debug for BackupKey {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("BackupKey")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl BackupKey {
    /// Parses 64 hex digits.
    pub fn from_hex(text: &str) -> Result<Self, BackupError> {
        let bytes = hex::decode(text.trim())
            .map_err(|_| BackupError::Key("the key file must hold 64 hex digits".to_owned()))?;
        let key: [u8; 32] = bytes
            .try_into()
            .map_err(|_| BackupError::Key("the key must be 32 bytes (64 hex digits)".to_owned()))?;
        let key_id = trace_runtime::blob::sha256_hex(&key)[..8].to_owned();
        Ok(Self { key, key_id })
    }

    /// Reads a key file.
    pub fn from_file(path: &str) -> Result<Self, BackupError> {
        let text = std::fs::read_to_string(path)
            .map_err(|error| BackupError::Key(format!("failed to read {path}: {error}")))?;
        Self::from_hex(&text)
    }

    /// Generates a random key as 64 hex digits.
    pub fn generate_hex() -> String {
        let key = Aes256Gcm::generate_key(aes_gcm::aead::OsRng);
        hex::encode(key)
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new(&self.key.into())
    }
}

/// One ledger entry as stored in a segment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupRow {
    pub sequence: i64,
    pub event_id: String,
    pub stream_sequence: i64,
    pub subject: String,
    pub source_service: String,
    pub entity_type: String,
    pub entity_id: String,
    pub entity_version: i64,
    pub action: String,
    pub actor_id: String,
    pub actor_name: String,
    pub actor_department: String,
    pub actor_role: String,
    pub confidentiality: i32,
    pub occurred_at: i64,
    pub received_at: i64,
    pub correlation_id: String,
    pub causation_id: String,
    pub payload_type: String,
    pub payload_sha256: String,
    /// Base64 envelope bytes; absent once disposed of.
    pub payload: Option<String>,
    pub previous_hash: String,
    pub entry_hash: String,
}

impl From<&ledger_entry::Model> for BackupRow {
    fn from(entry: &ledger_entry::Model) -> Self {
        Self {
            sequence: entry.sequence,
            event_id: entry.event_id.clone(),
            stream_sequence: entry.stream_sequence,
            subject: entry.subject.clone(),
            source_service: entry.source_service.clone(),
            entity_type: entry.entity_type.clone(),
            entity_id: entry.entity_id.clone(),
            entity_version: entry.entity_version,
            action: entry.action.clone(),
            actor_id: entry.actor_id.clone(),
            actor_name: entry.actor_name.clone(),
            actor_department: entry.actor_department.clone(),
            actor_role: entry.actor_role.clone(),
            confidentiality: entry.confidentiality,
            occurred_at: entry.occurred_at,
            received_at: entry.received_at,
            correlation_id: entry.correlation_id.clone(),
            causation_id: entry.causation_id.clone(),
            payload_type: entry.payload_type.clone(),
            payload_sha256: entry.payload_sha256.clone(),
            payload: entry.payload.as_ref().map(|bytes| BASE64.encode(bytes)),
            previous_hash: entry.previous_hash.clone(),
            entry_hash: entry.entry_hash.clone(),
        }
    }
}

impl BackupRow {
    /// Converts back to a ledger row.
    pub fn to_model(&self) -> Result<ledger_entry::Model, String> {
        let payload = match &self.payload {
            Some(text) => Some(
                BASE64
                    .decode(text)
                    .map_err(|_| format!("entry {} payload is not base64", self.sequence))?,
            ),
            None => None,
        };
        Ok(ledger_entry::Model {
            sequence: self.sequence,
            event_id: self.event_id.clone(),
            stream_sequence: self.stream_sequence,
            subject: self.subject.clone(),
            source_service: self.source_service.clone(),
            entity_type: self.entity_type.clone(),
            entity_id: self.entity_id.clone(),
            entity_version: self.entity_version,
            action: self.action.clone(),
            actor_id: self.actor_id.clone(),
            actor_name: self.actor_name.clone(),
            actor_department: self.actor_department.clone(),
            actor_role: self.actor_role.clone(),
            confidentiality: self.confidentiality,
            occurred_at: self.occurred_at,
            received_at: self.received_at,
            correlation_id: self.correlation_id.clone(),
            causation_id: self.causation_id.clone(),
            payload_type: self.payload_type.clone(),
            payload_sha256: self.payload_sha256.clone(),
            payload,
            previous_hash: self.previous_hash.clone(),
            entry_hash: self.entry_hash.clone(),
        })
    }
}

/// Manifest of one segment: its range, hashes, seal and checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Format version of the segment and manifest.
    pub format: u32,
    pub segment: String,
    pub from_sequence: i64,
    pub to_sequence: i64,
    pub entries: u64,
    /// Entry hash before the first entry of the segment.
    pub previous_hash: String,
    /// Entry hash of the last entry: the chain head at `to_sequence`.
    pub chain_head: String,
    /// SHA-256 of the sealed segment object.
    pub sealed_sha256: String,
    pub sealed_bytes: u64,
    pub key_id: String,
    /// RFC 6962 root of the tree of `to_sequence` entries, lowercase hex.
    pub tree_root: String,
    /// Signed checkpoint note at `to_sequence`, when the archive has a signing key.
    pub checkpoint: Option<String>,
    /// When the segment was written, microseconds since the Unix epoch (UTC).
    pub created_at: i64,
}

/// Object name of the segment holding `from..=to`.
pub fn segment_name(from: i64, to: i64) -> String {
    format!("segments/{from:020}-{to:020}.seg")
}

/// Object name of a segment's manifest.
pub fn manifest_name(segment: &str) -> String {
    format!("{}.manifest.json", segment.trim_end_matches(".seg"))
}

/// Compresses and seals rows; returns the sealed bytes.
pub fn seal(rows: &[BackupRow], key: &BackupKey, segment: &str) -> Result<Vec<u8>, BackupError> {
    use std::io::Write;

    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    for row in rows {
        let line =
            serde_json::to_vec(row).map_err(|error| BackupError::Other(error.to_string()))?;
        encoder
            .write_all(&line)
            .and_then(|()| encoder.write_all(b"\n"))
            .map_err(|error| BackupError::Other(error.to_string()))?;
    }
    let compressed = encoder
        .finish()
        .map_err(|error| BackupError::Other(error.to_string()))?;

    let nonce_bytes: [u8; 12] = rand_nonce();
    let sealed = key
        .cipher()
        .encrypt(
            Nonce::from_slice(&nonce_bytes),
            Payload {
                msg: &compressed,
                aad: segment.as_bytes(),
            },
        )
        .map_err(|_| BackupError::Other("encryption failed".to_owned()))?;
    let mut output = nonce_bytes.to_vec();
    output.extend(sealed);
    Ok(output)
}

fn rand_nonce() -> [u8; 12] {
    use aes_gcm::aead::AeadCore;
    Aes256Gcm::generate_nonce(aes_gcm::aead::OsRng).into()
}

/// Opens sealed bytes and parses the rows; any change to the bytes fails authentication.
pub fn open(sealed: &[u8], key: &BackupKey, segment: &str) -> Result<Vec<BackupRow>, BackupError> {
    use std::io::Read;

    let tampered = |reason: &str| BackupError::Tampered {
        name: segment.to_owned(),
        reason: reason.to_owned(),
    };
    if sealed.len() < 12 {
        return Err(tampered("shorter than its nonce"));
    }
    let (nonce, ciphertext) = sealed.split_at(12);
    let compressed = key
        .cipher()
        .decrypt(
            Nonce::from_slice(nonce),
            Payload {
                msg: ciphertext,
                aad: segment.as_bytes(),
            },
        )
        .map_err(|_| tampered("authentication failed (wrong key or altered bytes)"))?;
    let mut text = String::new();
    flate2::read::GzDecoder::new(compressed.as_slice())
        .read_to_string(&mut text)
        .map_err(|_| tampered("not valid gzip"))?;
    text.lines()
        .map(|line| {
            serde_json::from_str(line).map_err(|_| tampered("a line is not a ledger entry"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(sequence: i64) -> BackupRow {
        BackupRow {
            sequence,
            event_id: format!("event-{sequence}"),
            stream_sequence: sequence,
            subject: "trace.document.document.read".to_owned(),
            source_service: "document".to_owned(),
            entity_type: "document".to_owned(),
            entity_id: "d1".to_owned(),
            entity_version: sequence,
            action: "read".to_owned(),
            actor_id: "zhang.min".to_owned(),
            actor_name: "張敏".to_owned(),
            actor_department: "admin-office".to_owned(),
            actor_role: "employee".to_owned(),
            confidentiality: 2,
            occurred_at: 1,
            received_at: 2,
            correlation_id: String::new(),
            causation_id: String::new(),
            payload_type: String::new(),
            payload_sha256: "00".repeat(32),
            payload: Some(BASE64.encode(b"bytes")),
            previous_hash: "00".repeat(32),
            entry_hash: "11".repeat(32),
        }
    }

    fn key() -> BackupKey {
        BackupKey::from_hex(&BackupKey::generate_hex()).unwrap()
    }

    #[test]
    fn sealed_segment_round_trips() {
        let key = key();
        let rows = vec![row(1), row(2)];
        let sealed = seal(&rows, &key, "segments/a.seg").unwrap();
        assert_eq!(open(&sealed, &key, "segments/a.seg").unwrap(), rows);
        assert!(!sealed.windows(6).any(|window| window == "張敏".as_bytes()));
    }

    #[test]
    fn flipped_byte_is_rejected() {
        let key = key();
        let mut sealed = seal(&[row(1)], &key, "segments/a.seg").unwrap();
        let middle = sealed.len() / 2;
        sealed[middle] ^= 1;
        let error = open(&sealed, &key, "segments/a.seg")
            .unwrap_err()
            .to_string();
        assert!(error.contains("segments/a.seg"), "{error}");
    }

    #[test]
    fn segment_renamed_is_rejected() {
        let key = key();
        let sealed = seal(&[row(1)], &key, "segments/a.seg").unwrap();
        assert!(open(&sealed, &key, "segments/b.seg").is_err());
    }

    #[test]
    fn wrong_key_is_rejected() {
        let sealed = seal(&[row(1)], &key(), "segments/a.seg").unwrap();
        assert!(open(&sealed, &key(), "segments/a.seg").is_err());
    }

    #[test]
    fn key_must_be_64_hex_digits() {
        assert!(BackupKey::from_hex("abcd").is_err());
        assert!(BackupKey::from_hex(&"zz".repeat(32)).is_err());
    }
}
