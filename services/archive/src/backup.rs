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
use crate::ledger::EntryColumns;

/// Entries per segment at most; a backup of a larger range writes several segments.
/// Verification and restore hold a few segments in memory at once, so the size sets their
/// memory: with 25,000 entries a restore of a million peaked at a third to two fifths of
/// the memory it took with 100,000, in about the same time (BENCHMARKS.md).
pub const SEGMENT_ENTRIES: u64 = 25_000;

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

/// The row conversion that backups used before they wrote lines straight from the entries,
/// kept for the tests that check the two produce the same bytes.
#[cfg(test)]
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
    /// Converts a copy back to a ledger row.
    pub fn to_model(&self) -> Result<ledger_entry::Model, String> {
        self.clone().into_model()
    }

    /// Converts back to a ledger row, moving the strings.
    pub fn into_model(self) -> Result<ledger_entry::Model, String> {
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
            event_id: self.event_id,
            stream_sequence: self.stream_sequence,
            subject: self.subject,
            source_service: self.source_service,
            entity_type: self.entity_type,
            entity_id: self.entity_id,
            entity_version: self.entity_version,
            action: self.action,
            actor_id: self.actor_id,
            actor_name: self.actor_name,
            actor_department: self.actor_department,
            actor_role: self.actor_role,
            confidentiality: self.confidentiality,
            occurred_at: self.occurred_at,
            received_at: self.received_at,
            correlation_id: self.correlation_id,
            causation_id: self.causation_id,
            payload_type: self.payload_type,
            payload_sha256: self.payload_sha256,
            payload,
            previous_hash: self.previous_hash,
            entry_hash: self.entry_hash,
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

/// Length of the random AES-GCM nonce that starts every sealed segment.
const NONCE_BYTES: usize = 12;

/// Writes ledger entries to `output` as JSON Lines in the segment format, the same text that
/// serialising their [`BackupRow`]s gives, without copying the entries first.
pub fn write_lines(
    output: &mut Vec<u8>,
    entries: &[ledger_entry::Model],
) -> Result<(), BackupError> {
    for entry in entries {
        write_line(output, EntryColumns::from(entry))?;
    }
    Ok(())
}

/// Writes one entry's line, with its newline, to `output`.
pub fn write_line(output: &mut Vec<u8>, entry: EntryColumns<'_>) -> Result<(), BackupError> {
    serde_json::to_writer(&mut *output, &EntryLine(entry))
        .map_err(|error| BackupError::Other(error.to_string()))?;
    output.push(b'\n');
    Ok(())
}

/// A ledger entry serialised with the fields, names and order of [`BackupRow`].
struct EntryLine<'a>(EntryColumns<'a>);

impl Serialize for EntryLine<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;

        let entry = &self.0;
        let mut line = serializer.serialize_struct("BackupRow", 23)?;
        line.serialize_field("sequence", &entry.sequence)?;
        line.serialize_field("event_id", &entry.event_id)?;
        line.serialize_field("stream_sequence", &entry.stream_sequence)?;
        line.serialize_field("subject", &entry.subject)?;
        line.serialize_field("source_service", &entry.source_service)?;
        line.serialize_field("entity_type", &entry.entity_type)?;
        line.serialize_field("entity_id", &entry.entity_id)?;
        line.serialize_field("entity_version", &entry.entity_version)?;
        line.serialize_field("action", &entry.action)?;
        line.serialize_field("actor_id", &entry.actor_id)?;
        line.serialize_field("actor_name", &entry.actor_name)?;
        line.serialize_field("actor_department", &entry.actor_department)?;
        line.serialize_field("actor_role", &entry.actor_role)?;
        line.serialize_field("confidentiality", &entry.confidentiality)?;
        line.serialize_field("occurred_at", &entry.occurred_at)?;
        line.serialize_field("received_at", &entry.received_at)?;
        line.serialize_field("correlation_id", &entry.correlation_id)?;
        line.serialize_field("causation_id", &entry.causation_id)?;
        line.serialize_field("payload_type", &entry.payload_type)?;
        line.serialize_field("payload_sha256", &entry.payload_sha256)?;
        line.serialize_field("payload", &entry.payload.map(Base64Payload))?;
        line.serialize_field("previous_hash", &entry.previous_hash)?;
        line.serialize_field("entry_hash", &entry.entry_hash)?;
        line.end()
    }
}

/// Payload bytes serialised as a standard base64 string, encoded while writing.
struct Base64Payload<'a>(&'a [u8]);

impl Serialize for Base64Payload<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&base64::display::Base64Display::new(self.0, &BASE64))
    }
}

/// Compresses the JSON Lines of one segment as they arrive, then seals them.
pub struct SegmentWriter {
    encoder: flate2::write::GzEncoder<Vec<u8>>,
}

impl Default for SegmentWriter {
    fn default() -> Self {
        Self::new()
    }
}

impl SegmentWriter {
    /// Starts an empty segment.
    pub fn new() -> Self {
        // The nonce goes in front of the ciphertext, so the buffer reserves its bytes and the
        // compressed stream is encrypted in place after them.
        let buffer = vec![0; NONCE_BYTES];
        Self {
            encoder: flate2::write::GzEncoder::new(buffer, flate2::Compression::fast()),
        }
    }

    /// Compresses whole JSON lines, each ending with a newline.
    pub fn write_lines(&mut self, lines: &[u8]) -> Result<(), BackupError> {
        use std::io::Write;

        self.encoder
            .write_all(lines)
            .map_err(|error| BackupError::Other(error.to_string()))
    }

    /// Finishes compression and seals the segment named `segment`: the nonce, then the
    /// AES-256-GCM ciphertext and its tag.
    pub fn seal(self, key: &BackupKey, segment: &str) -> Result<Vec<u8>, BackupError> {
        use aes_gcm::aead::AeadInPlace;

        let mut output = self
            .encoder
            .finish()
            .map_err(|error| BackupError::Other(error.to_string()))?;
        let nonce_bytes = rand_nonce();
        output[..NONCE_BYTES].copy_from_slice(&nonce_bytes);
        let tag = key
            .cipher()
            .encrypt_in_place_detached(
                Nonce::from_slice(&nonce_bytes),
                segment.as_bytes(),
                &mut output[NONCE_BYTES..],
            )
            .map_err(|_| BackupError::Other("encryption failed".to_owned()))?;
        output.extend_from_slice(&tag);
        Ok(output)
    }
}

/// Compresses and seals rows; returns the sealed bytes.
pub fn seal(rows: &[BackupRow], key: &BackupKey, segment: &str) -> Result<Vec<u8>, BackupError> {
    let mut lines = Vec::new();
    for row in rows {
        serde_json::to_writer(&mut lines, row)
            .map_err(|error| BackupError::Other(error.to_string()))?;
        lines.push(b'\n');
    }
    let mut writer = SegmentWriter::new();
    writer.write_lines(&lines)?;
    writer.seal(key, segment)
}

fn rand_nonce() -> [u8; NONCE_BYTES] {
    use aes_gcm::aead::AeadCore;
    Aes256Gcm::generate_nonce(aes_gcm::aead::OsRng).into()
}

/// Opens sealed bytes and parses the rows; any change to the bytes fails authentication.
pub fn open(sealed: &[u8], key: &BackupKey, segment: &str) -> Result<Vec<BackupRow>, BackupError> {
    use std::io::BufRead;

    let tampered = |reason: &str| BackupError::Tampered {
        name: segment.to_owned(),
        reason: reason.to_owned(),
    };
    if sealed.len() < NONCE_BYTES {
        return Err(tampered("shorter than its nonce"));
    }
    let (nonce, ciphertext) = sealed.split_at(NONCE_BYTES);
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
    // Lines are parsed as they are decompressed, so the whole text is never in memory.
    let mut reader = std::io::BufReader::new(flate2::read::GzDecoder::new(compressed.as_slice()));
    let mut rows = Vec::new();
    let mut line = Vec::new();
    loop {
        line.clear();
        let read = reader
            .read_until(b'\n', &mut line)
            .map_err(|_| tampered("not valid gzip"))?;
        if read == 0 {
            return Ok(rows);
        }
        let text = line.strip_suffix(b"\n").unwrap_or(&line);
        let text = text.strip_suffix(b"\r").unwrap_or(text);
        let row =
            serde_json::from_slice(text).map_err(|_| tampered("a line is not a ledger entry"))?;
        rows.push(row);
    }
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
    fn entry_lines_match_backup_row_json() {
        let mut entries = vec![row(1).into_model().unwrap(), row(2).into_model().unwrap()];
        entries[1].payload = None;
        entries[1].causation_id = "quote \" and newline \n".to_owned();
        let mut expected = Vec::new();
        for entry in &entries {
            serde_json::to_writer(&mut expected, &BackupRow::from(entry)).unwrap();
            expected.push(b'\n');
        }
        let mut lines = Vec::new();
        write_lines(&mut lines, &entries).unwrap();
        assert_eq!(
            String::from_utf8(lines).unwrap(),
            String::from_utf8(expected).unwrap()
        );
    }

    #[test]
    fn written_segment_opens_as_rows() {
        let key = key();
        let entries = vec![row(1).into_model().unwrap(), row(2).into_model().unwrap()];
        let mut lines = Vec::new();
        write_lines(&mut lines, &entries).unwrap();
        let mut writer = SegmentWriter::new();
        writer.write_lines(&lines).unwrap();
        let sealed = writer.seal(&key, "segments/a.seg").unwrap();
        assert_eq!(
            open(&sealed, &key, "segments/a.seg").unwrap(),
            vec![row(1), row(2)]
        );
    }

    #[test]
    fn segment_sealed_in_one_call_opens() {
        // Segments written before sealing moved in place: `Aead::encrypt` over the whole
        // gzip stream, the nonce prepended.
        use std::io::Write;

        let key = key();
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        for row in [row(1), row(2)] {
            encoder
                .write_all(&serde_json::to_vec(&row).unwrap())
                .unwrap();
            encoder.write_all(b"\n").unwrap();
        }
        let compressed = encoder.finish().unwrap();
        let nonce = rand_nonce();
        let payload = Payload {
            msg: &compressed,
            aad: b"segments/a.seg",
        };
        let mut sealed = nonce.to_vec();
        sealed.extend(
            key.cipher()
                .encrypt(Nonce::from_slice(&nonce), payload)
                .unwrap(),
        );
        assert_eq!(
            open(&sealed, &key, "segments/a.seg").unwrap(),
            vec![row(1), row(2)]
        );
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
