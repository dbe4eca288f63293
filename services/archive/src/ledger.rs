//! The hash-chained ledger: decoding incoming messages, the canonical entry hash, and
//! appending a batch in one transaction.
//!
//! Each entry hash is SHA-256 over a domain tag, the previous entry hash, every metadata
//! column and the payload digest, each field length-prefixed. The payload itself is covered
//! only through its digest, so that retention can remove a payload later and the chain still
//! verifies.

use std::collections::HashMap;
use std::path::PathBuf;

use bytes::Bytes;
use prost::Message;
use sea_orm::{DatabaseConnection, DbErr};
use sha2::{Digest, Sha256};
use trace_proto::event::v1::Envelope;
use trace_runtime::event::{digest_form, envelope_digest, is_sealed_level, is_subject_token};

use crate::entity::{conflict, ledger_entry, rejected};
use crate::merkle;

/// Previous hash of the first entry.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Domain tag that starts every entry hash input.
const ENTRY_DOMAIN: &[u8] = b"trace-ledger-entry-v1\0";

/// Error of an append, backup or restore on a SQLite ledger with no file, such as one in
/// memory.
pub(crate) const NO_LEDGER_FILE: &str = "the ledger is not a SQLite file that the archive can \
     open by path (an in-memory database, say), so it would be lost at exit and could not be \
     verified. Keep the ledger in a SQLite file or in PostgreSQL";

/// A message taken from the trace stream.
#[derive(Debug, Clone)]
pub struct Incoming {
    pub stream_sequence: u64,
    pub subject: String,
    pub raw: Bytes,
    /// Event that must be in the ledger before this one is appended: the entity's previous
    /// event, as the producer's relay named it. `None` appends at once.
    pub previous_event_id: Option<String>,
}

/// Outcome of appending one incoming message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Appended {
        sequence: i64,
        event_id: String,
        source_service: String,
    },
    Duplicate {
        sequence: i64,
        event_id: String,
        source_service: String,
    },
    Conflict {
        stored_sequence: i64,
        event_id: String,
    },
    Rejected {
        reason: String,
    },
    /// Not appended because `previous_event_id` is not in the ledger yet; the message must
    /// come back later.
    Held {
        event_id: String,
        previous_event_id: String,
    },
}

/// Decodes and checks an envelope, returning the entry fields without sequence or hashes.
pub fn decode(incoming: &Incoming) -> Result<(Envelope, ledger_entry::Model), String> {
    let envelope = Envelope::decode(incoming.raw.as_ref())
        .map_err(|error| format!("not an envelope: {error}"))?;
    check_envelope(&envelope, &incoming.subject)?;
    let actor = envelope.actor.clone().unwrap_or_default();
    let occurred_at = envelope
        .occurred_at
        .as_ref()
        .and_then(trace_runtime::clock::micros_from_timestamp)
        .ok_or("occurred_at is missing or out of range")?;
    let type_url = match (&envelope.payload, &envelope.sealed_payload) {
        (Some(any), _) => any.type_url.as_str(),
        (None, Some(sealed)) => sealed.type_url.as_str(),
        (None, None) => "",
    };
    let payload_type = type_url.rsplit('/').next().unwrap_or_default().to_owned();
    let entry = ledger_entry::Model {
        sequence: 0,
        event_id: envelope.event_id.clone(),
        stream_sequence: incoming.stream_sequence as i64,
        subject: envelope.subject.clone(),
        source_service: envelope.source_service.clone(),
        entity_type: envelope.entity_type.clone(),
        entity_id: envelope.entity_id.clone(),
        entity_version: envelope.entity_version as i64,
        action: envelope.action.clone(),
        actor_id: actor.user_id,
        actor_name: actor.display_name,
        actor_department: actor.department,
        actor_role: actor.role,
        confidentiality: envelope.confidentiality,
        occurred_at,
        received_at: 0,
        correlation_id: envelope.correlation_id.clone(),
        causation_id: envelope.causation_id.clone(),
        payload_type,
        payload_sha256: envelope_digest(&incoming.raw, envelope.confidentiality),
        payload: Some(incoming.raw.to_vec()),
        previous_hash: String::new(),
        entry_hash: String::new(),
    };
    Ok((envelope, entry))
}

fn check_envelope(envelope: &Envelope, subject: &str) -> Result<(), String> {
    uuid::Uuid::try_parse(&envelope.event_id)
        .map_err(|_| format!("event_id {:?} is not a UUID", envelope.event_id))?;
    if envelope.subject != subject {
        return Err(format!(
            "envelope subject {:?} differs from the message subject {subject:?}",
            envelope.subject
        ));
    }
    let expected = format!(
        "trace.{}.{}.{}",
        envelope.source_service, envelope.entity_type, envelope.action
    );
    if subject != expected {
        return Err(format!(
            "subject {subject:?} does not match its envelope ({expected:?})"
        ));
    }
    for (name, token) in [
        ("source_service", &envelope.source_service),
        ("entity_type", &envelope.entity_type),
        ("action", &envelope.action),
    ] {
        if !is_subject_token(token) {
            return Err(format!("{name} {token:?} is not a valid name"));
        }
    }
    if envelope.entity_id.is_empty() || envelope.entity_id.chars().count() > 128 {
        return Err("entity_id must be 1 to 128 characters".to_owned());
    }
    if envelope.entity_version == 0 || envelope.entity_version > i64::MAX as u64 {
        return Err("entity_version must be positive".to_owned());
    }
    if envelope.sealed_payload.is_some() {
        if envelope.payload.is_some() {
            return Err("payload and sealed_payload are both set".to_owned());
        }
        if !is_sealed_level(envelope.confidentiality) {
            return Err(format!(
                "sealed_payload is set on a record of confidentiality {}, below CONFIDENTIAL",
                envelope.confidentiality
            ));
        }
    }
    Ok(())
}

/// The stored columns of one ledger entry, borrowed from a model or straight from a
/// database row, so that verification can hash a row without copying it first.
#[derive(Debug, Clone, Copy)]
pub struct EntryColumns<'a> {
    pub sequence: i64,
    pub event_id: &'a str,
    pub stream_sequence: i64,
    pub subject: &'a str,
    pub source_service: &'a str,
    pub entity_type: &'a str,
    pub entity_id: &'a str,
    pub entity_version: i64,
    pub action: &'a str,
    pub actor_id: &'a str,
    pub actor_name: &'a str,
    pub actor_department: &'a str,
    pub actor_role: &'a str,
    pub confidentiality: i32,
    pub occurred_at: i64,
    pub received_at: i64,
    pub correlation_id: &'a str,
    pub causation_id: &'a str,
    pub payload_type: &'a str,
    pub payload_sha256: &'a str,
    pub payload: Option<&'a [u8]>,
    pub previous_hash: &'a str,
    pub entry_hash: &'a str,
}

impl<'a> From<&'a ledger_entry::Model> for EntryColumns<'a> {
    fn from(entry: &'a ledger_entry::Model) -> Self {
        Self {
            sequence: entry.sequence,
            event_id: &entry.event_id,
            stream_sequence: entry.stream_sequence,
            subject: &entry.subject,
            source_service: &entry.source_service,
            entity_type: &entry.entity_type,
            entity_id: &entry.entity_id,
            entity_version: entry.entity_version,
            action: &entry.action,
            actor_id: &entry.actor_id,
            actor_name: &entry.actor_name,
            actor_department: &entry.actor_department,
            actor_role: &entry.actor_role,
            confidentiality: entry.confidentiality,
            occurred_at: entry.occurred_at,
            received_at: entry.received_at,
            correlation_id: &entry.correlation_id,
            causation_id: &entry.causation_id,
            payload_type: &entry.payload_type,
            payload_sha256: &entry.payload_sha256,
            payload: entry.payload.as_deref(),
            previous_hash: &entry.previous_hash,
            entry_hash: &entry.entry_hash,
        }
    }
}

/// Returns true when the stored payload of `entry` matches its committed digest, or when
/// disposition has cleared it.
pub fn payload_matches_digest(entry: &ledger_entry::Model) -> bool {
    payload_matches(&EntryColumns::from(entry))
}

/// [`payload_matches_digest`] on borrowed columns, without allocating for the digest.
pub fn payload_matches(entry: &EntryColumns<'_>) -> bool {
    entry.payload.is_none_or(|payload| {
        let digest = Sha256::digest(digest_form(payload, entry.confidentiality));
        is_hex_of(&digest.into(), entry.payload_sha256)
    })
}

/// Computes the entry hash of `entry` from its stored columns and its previous hash.
pub fn entry_hash(entry: &ledger_entry::Model) -> String {
    hex::encode(entry_hash_bytes(&EntryColumns::from(entry)))
}

/// Computes the entry hash of `entry` as raw bytes. [`entry_hash`] returns its lowercase hex.
pub fn entry_hash_bytes(entry: &EntryColumns<'_>) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(ENTRY_DOMAIN);
    let mut field = |bytes: &[u8]| {
        hasher.update((bytes.len() as u64).to_be_bytes());
        hasher.update(bytes);
    };
    field(entry.previous_hash.as_bytes());
    field(&entry.sequence.to_be_bytes());
    field(entry.event_id.as_bytes());
    field(&entry.stream_sequence.to_be_bytes());
    field(entry.subject.as_bytes());
    field(entry.source_service.as_bytes());
    field(entry.entity_type.as_bytes());
    field(entry.entity_id.as_bytes());
    field(&entry.entity_version.to_be_bytes());
    field(entry.action.as_bytes());
    field(entry.actor_id.as_bytes());
    field(entry.actor_name.as_bytes());
    field(entry.actor_department.as_bytes());
    field(entry.actor_role.as_bytes());
    field(&entry.confidentiality.to_be_bytes());
    field(&entry.occurred_at.to_be_bytes());
    field(&entry.received_at.to_be_bytes());
    field(entry.correlation_id.as_bytes());
    field(entry.causation_id.as_bytes());
    field(entry.payload_type.as_bytes());
    field(entry.payload_sha256.as_bytes());
    hasher.finalize().into()
}

/// Returns true when `text` is the lowercase hex of `hash`.
pub fn is_hex_of(hash: &[u8; 32], text: &str) -> bool {
    let mut encoded = [0u8; 64];
    hex::encode_to_slice(hash, &mut encoded).is_ok() && encoded.as_slice() == text.as_bytes()
}

/// Appends a batch in one transaction and returns one outcome per message, in order.
///
/// The transaction first updates the chain head row, which takes the write lock on SQLite
/// and a row lock on PostgreSQL, so a second archive instance waits instead of forking the
/// chain. Event ids already stored are absorbed: the same bytes count as a duplicate, other
/// bytes as a conflict that is recorded and never appended. A message whose
/// `previous_event_id` is neither stored nor appended earlier in the batch is held back.
///
/// Each call opens what it needs; the consumer keeps an [`Appender`] instead.
pub async fn append_batch(
    db: &DatabaseConnection,
    received_at: i64,
    batch: &[Incoming],
) -> Result<Vec<Outcome>, DbErr> {
    Appender::new(db.clone()).append(received_at, batch).await
}

/// Appends batches to one ledger database, as [`append_batch`] describes.
///
/// On a SQLite file it writes through a `rusqlite` connection of its own, kept from batch
/// to batch, and runs each transaction on a blocking thread with statements prepared once.
/// Through sqlx, each statement of a batch was a round trip to the driver's thread, which
/// copied every bound value. On PostgreSQL it writes with sqlx and binary `COPY` in a few
/// statements per batch. It rejects a SQLite database with no file, such as one in memory,
/// which the archive also rejects at startup.
#[derive(Debug)]
pub struct Appender {
    db: DatabaseConnection,
    file: Option<PathBuf>,
    connection: Option<rusqlite::Connection>,
}

impl Appender {
    /// Prepares to append to `db`. The file connection opens at the first append.
    pub fn new(db: DatabaseConnection) -> Self {
        let file = crate::verify::sqlite_file(&db);
        Self {
            db,
            file,
            connection: None,
        }
    }

    /// Appends one batch in one transaction; see [`append_batch`].
    pub async fn append(
        &mut self,
        received_at: i64,
        batch: &[Incoming],
    ) -> Result<Vec<Outcome>, DbErr> {
        if self.db.get_database_backend() == sea_orm::DatabaseBackend::Postgres {
            let pool = self.db.get_postgres_connection_pool();
            return crate::postgres_append::append(pool, received_at, batch).await;
        }
        let Some(path) = self.file.clone() else {
            return Err(DbErr::Custom(NO_LEDGER_FILE.to_owned()));
        };
        // The file's other writers in this process go through sqlx and take turns. This
        // connection takes the same turn, so none of them meets SQLite's busy handler. The
        // blocking task holds the turn until its transaction has ended, even when this
        // future is dropped first.
        let turn = trace_runtime::db::write_turn(&self.db).await;
        let connection = self.connection.take();
        let batch = batch.to_vec();
        let (connection, result) = tokio::task::spawn_blocking(move || {
            let appended = crate::sqlite_append::append(&path, connection, received_at, &batch);
            drop(turn);
            appended
        })
        .await
        .map_err(|error| DbErr::Custom(format!("the append task failed: {error}")))?;
        self.connection = connection;
        result
    }
}

/// Returns the error of an append whose Merkle hashes could not be computed.
pub(crate) fn merkle_failure(error: merkle::MerkleError) -> DbErr {
    DbErr::Custom(format!("failed to extend the Merkle tree: {error}"))
}

/// Returns the error of a ledger whose chain head row is gone.
pub(crate) fn missing_chain_head() -> DbErr {
    DbErr::RecordNotFound("chain head row is missing".to_owned())
}

/// The writes of one batch, worked out before anything is written.
pub(crate) struct Plan {
    /// One per message, in order.
    pub outcomes: Vec<Outcome>,
    /// New entries with their sequences and hashes, in sequence order.
    pub appended: Vec<ledger_entry::Model>,
    /// Messages to record as rejected; `id` is unset.
    pub rejections: Vec<rejected::Model>,
    /// Event ids that arrived again with other bytes; `id` is unset.
    pub conflicts: Vec<conflict::Model>,
    /// The chain head after the batch.
    pub sequence: i64,
    pub head_hash: String,
}

/// Event ids whose stored sequence and payload digest [`plan`] needs: those of the batch and
/// the previous events that the batch names, sorted and without repeats.
pub(crate) fn lookup_ids(
    batch: &[Incoming],
    decoded: &[Result<(Envelope, ledger_entry::Model), String>],
) -> Vec<String> {
    let mut event_ids: Vec<String> = decoded
        .iter()
        .filter_map(|result| result.as_ref().ok())
        .map(|(envelope, _)| envelope.event_id.clone())
        .collect();
    event_ids.extend(
        batch
            .iter()
            .filter_map(|incoming| incoming.previous_event_id.clone()),
    );
    event_ids.sort_unstable();
    event_ids.dedup();
    event_ids
}

/// Decides the outcome of each message of `batch` after the chain head `head` (sequence and
/// entry hash), given the sequence and payload digest of each stored event id in `known`,
/// and chains the appended entries.
pub(crate) fn plan(
    batch: &[Incoming],
    decoded: Vec<Result<(Envelope, ledger_entry::Model), String>>,
    mut known: HashMap<String, (i64, String)>,
    head: (i64, String),
    received_at: i64,
) -> Plan {
    let (mut sequence, mut previous_hash) = head;
    let mut appended = Vec::new();
    let mut rejections = Vec::new();
    let mut conflicts = Vec::new();
    let mut outcomes = Vec::with_capacity(batch.len());

    for (incoming, result) in batch.iter().zip(decoded) {
        let (envelope, mut entry) = match result {
            Ok(decoded) => decoded,
            Err(reason) => {
                rejections.push(rejected_row(incoming, received_at, &reason));
                outcomes.push(Outcome::Rejected { reason });
                continue;
            }
        };
        if let Some((stored_sequence, stored_sha)) = known.get(&envelope.event_id) {
            let outcome = if *stored_sha == entry.payload_sha256 {
                Outcome::Duplicate {
                    sequence: *stored_sequence,
                    event_id: envelope.event_id.clone(),
                    source_service: envelope.source_service.clone(),
                }
            } else {
                conflicts.push(conflict_row(
                    incoming,
                    received_at,
                    *stored_sequence,
                    stored_sha,
                    entry,
                ));
                Outcome::Conflict {
                    stored_sequence: *stored_sequence,
                    event_id: envelope.event_id.clone(),
                }
            };
            outcomes.push(outcome);
            continue;
        }
        if let Some(previous) = &incoming.previous_event_id
            && !known.contains_key(previous)
        {
            outcomes.push(Outcome::Held {
                event_id: envelope.event_id,
                previous_event_id: previous.clone(),
            });
            continue;
        }

        sequence += 1;
        entry.sequence = sequence;
        entry.received_at = received_at;
        entry.previous_hash = previous_hash;
        entry.entry_hash = entry_hash(&entry);
        previous_hash = entry.entry_hash.clone();
        known.insert(
            envelope.event_id.clone(),
            (sequence, entry.payload_sha256.clone()),
        );
        outcomes.push(Outcome::Appended {
            sequence,
            event_id: envelope.event_id,
            source_service: envelope.source_service,
        });
        appended.push(entry);
    }
    Plan {
        outcomes,
        appended,
        rejections,
        conflicts,
        sequence,
        head_hash: previous_hash,
    }
}

fn rejected_row(incoming: &Incoming, received_at: i64, reason: &str) -> rejected::Model {
    rejected::Model {
        id: 0,
        subject: incoming.subject.clone(),
        stream_sequence: incoming.stream_sequence as i64,
        received_at,
        reason: reason.to_owned(),
        raw_sha256: trace_runtime::blob::sha256_hex(&incoming.raw),
        raw_size: incoming.raw.len() as i64,
        raw: incoming.raw.to_vec(),
    }
}

fn conflict_row(
    incoming: &Incoming,
    received_at: i64,
    stored_sequence: i64,
    stored_sha: &str,
    entry: ledger_entry::Model,
) -> conflict::Model {
    conflict::Model {
        id: 0,
        event_id: entry.event_id,
        stored_sequence,
        stored_payload_sha256: stored_sha.to_owned(),
        received_payload_sha256: entry.payload_sha256,
        received_at,
        stream_sequence: incoming.stream_sequence as i64,
        raw: incoming.raw.to_vec(),
    }
}
