//! Writing backups to, and verifying and restoring them from, a [`BackupLocation`]: a local
//! folder, or an S3, GCS or Azure store by URL.

use std::collections::HashMap;
use std::sync::Arc;

use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder};
use tlog_tiles::tlog::{self, Hash};

use crate::backup::{self, BackupError, BackupKey, BackupRow, Manifest, SEGMENT_ENTRIES};
pub use crate::backup_location::BackupLocation;
use crate::checkpoint::CheckpointSigner;
use crate::entity::{chain_head, ledger_entry};
use crate::ledger::{GENESIS_HASH, entry_hash};
use crate::merkle;

/// Format version written into manifests.
const FORMAT: u32 = 1;

/// Segments one run wrote.
#[derive(Debug, Clone, Default)]
pub struct BackupRun {
    pub manifests: Vec<Manifest>,
}

/// Backs up every entry after the last one in `location`, in segments of at most
/// [`SEGMENT_ENTRIES`]. A segment is written before its manifest, so a manifest always
/// has its segment.
pub async fn run_backup(
    db: &DatabaseConnection,
    location: &BackupLocation,
    key: &BackupKey,
    signer: Option<&CheckpointSigner>,
    now_micros: i64,
    progress: &(dyn Fn(u64, u64) + Sync),
) -> Result<BackupRun, BackupError> {
    let database = |error: sea_orm::DbErr| BackupError::Other(format!("database error: {error}"));
    let existing = location.manifests().await?;
    let mut next = existing
        .last()
        .map_or(1, |manifest| manifest.to_sequence + 1);
    let mut previous_hash = existing
        .last()
        .map_or_else(|| GENESIS_HASH.to_owned(), |m| m.chain_head.clone());
    let head = chain_head::Entity::find_by_id(1)
        .one(db)
        .await
        .map_err(database)?
        .map_or(0, |h| h.sequence);
    let mut run = BackupRun::default();
    let first = next;
    let total = u64::try_from(head - first + 1).unwrap_or(0);
    progress(0, total);

    while next <= head {
        let to = (next + SEGMENT_ENTRIES as i64 - 1).min(head);
        let entries = ledger_entry::Entity::find()
            .filter(ledger_entry::Column::Sequence.between(next, to))
            .order_by_asc(ledger_entry::Column::Sequence)
            .all(db)
            .await
            .map_err(database)?;
        let rows: Vec<BackupRow> = entries.iter().map(BackupRow::from).collect();
        let name = backup::segment_name(next, to);
        let sealed = backup::seal(&rows, key, &name)?;
        let root = merkle::root(db, to as u64)
            .await
            .map_err(|error| BackupError::Other(error.to_string()))?;
        let checkpoint = signer
            .map(|signer| signer.sign(to as u64, root))
            .transpose()
            .map_err(|error| BackupError::Other(error.to_string()))?;
        let chain_head = rows
            .last()
            .map_or_else(|| previous_hash.clone(), |row| row.entry_hash.clone());
        let manifest = Manifest {
            format: FORMAT,
            segment: name.clone(),
            from_sequence: next,
            to_sequence: to,
            entries: rows.len() as u64,
            previous_hash: previous_hash.clone(),
            chain_head: chain_head.clone(),
            sealed_sha256: trace_runtime::blob::sha256_hex(&sealed),
            sealed_bytes: sealed.len() as u64,
            key_id: key.key_id.clone(),
            tree_root: hex::encode(root.0),
            checkpoint,
            created_at: now_micros,
        };
        location.put(&name, sealed).await?;
        let manifest_bytes = serde_json::to_vec_pretty(&manifest)
            .map_err(|error| BackupError::Other(error.to_string()))?;
        location
            .put(&backup::manifest_name(&name), manifest_bytes)
            .await?;
        tracing::info!(segment = %name, from = next, to, "wrote backup segment");
        run.manifests.push(manifest);
        previous_hash = chain_head;
        next = to + 1;
        progress(u64::try_from(next - first).unwrap_or(0), total);
    }
    Ok(run)
}

/// Verified content of a backup location.
#[derive(Debug, Clone, Default)]
pub struct BackupCheck {
    pub segments: u64,
    pub entries: u64,
    pub chain_head: String,
    pub tree_root: String,
}

/// Receives the entries checked so far and the total that the manifests list, after the
/// manifests are read and after each segment.
pub type ProgressHook<'a> = &'a mut (dyn FnMut(u64, u64) + Send);

/// Reads every segment in order, checking sealing, digests, sequence continuity, the hash
/// chain, payload digests, the Merkle root at each segment's end and, given a verifier key,
/// each manifest's signed checkpoint. `on_segment` receives each verified segment's rows.
/// The first problem fails the whole read and names the segment.
pub async fn read_backup<F, Fut>(
    location: &BackupLocation,
    key: &BackupKey,
    verifier_key: Option<&str>,
    progress: ProgressHook<'_>,
    mut on_segment: F,
) -> Result<BackupCheck, BackupError>
where
    F: FnMut(Vec<ledger_entry::Model>) -> Fut,
    Fut: Future<Output = Result<(), BackupError>>,
{
    let manifests = location.manifests().await?;
    let total: u64 = manifests.iter().map(|manifest| manifest.entries).sum();
    progress(0, total);
    let mut check = BackupCheck {
        chain_head: GENESIS_HASH.to_owned(),
        ..BackupCheck::default()
    };
    let mut tree: HashMap<u64, Hash> = HashMap::new();
    let mut expected_from = 1;

    for manifest in manifests {
        let name = manifest.segment.clone();
        let tampered = |reason: String| BackupError::Tampered {
            name: name.clone(),
            reason,
        };
        if manifest.from_sequence != expected_from {
            return Err(BackupError::MissingSegment {
                name: format!("segment starting at sequence {expected_from} (next found: {name})"),
            });
        }
        if manifest.key_id != key.key_id {
            return Err(tampered(format!(
                "sealed with key {}, not with key {}",
                manifest.key_id, key.key_id
            )));
        }
        let sealed = location.get(&name).await?;
        if trace_runtime::blob::sha256_hex(&sealed) != manifest.sealed_sha256 {
            return Err(tampered(
                "its bytes do not match the manifest digest".to_owned(),
            ));
        }
        let rows = backup::open(&sealed, key, &name)?;
        let entries = check_rows(&rows, &manifest, &check.chain_head).map_err(tampered)?;
        for entry in &entries {
            extend_tree(&mut tree, entry).map_err(tampered)?;
        }
        let root = tree_root(&tree, manifest.to_sequence as u64).map_err(tampered)?;
        if hex::encode(root.0) != manifest.tree_root {
            return Err(tampered(
                "the Merkle root differs from the manifest".to_owned(),
            ));
        }
        if let (Some(verifier_key), Some(note)) = (verifier_key, &manifest.checkpoint) {
            let (size, signed_root) = crate::checkpoint::verify_note(note, verifier_key)
                .map_err(|error| tampered(error.to_string()))?;
            if size != manifest.to_sequence as u64 || signed_root != root {
                return Err(tampered(
                    "the signed checkpoint does not match the segment".to_owned(),
                ));
            }
        }

        check.segments += 1;
        check.entries += entries.len() as u64;
        check.chain_head = manifest.chain_head.clone();
        check.tree_root = manifest.tree_root.clone();
        expected_from = manifest.to_sequence + 1;
        on_segment(entries).await?;
        tracing::debug!(segment = %name, entries = check.entries, "verified backup segment");
        progress(check.entries, total);
    }
    Ok(check)
}

/// Checks one segment's rows against its manifest and the chain so far.
fn check_rows(
    rows: &[BackupRow],
    manifest: &Manifest,
    previous: &str,
) -> Result<Vec<ledger_entry::Model>, String> {
    if manifest.previous_hash != previous {
        return Err("it does not continue the chain of the segment before it".to_owned());
    }
    if rows.len() as u64 != manifest.entries {
        return Err(format!(
            "it holds {} entries, its manifest says {}",
            rows.len(),
            manifest.entries
        ));
    }
    let mut expected_previous = previous.to_owned();
    let mut entries = Vec::with_capacity(rows.len());
    for (offset, row) in rows.iter().enumerate() {
        let entry = row.to_model()?;
        let sequence = manifest.from_sequence + offset as i64;
        if entry.sequence != sequence {
            return Err(format!("entry {sequence} is missing"));
        }
        if entry.previous_hash != expected_previous || entry_hash(&entry) != entry.entry_hash {
            return Err(format!("entry {sequence} does not verify"));
        }
        if !crate::ledger::payload_matches_digest(&entry) {
            return Err(format!(
                "entry {sequence} payload does not match its digest"
            ));
        }
        expected_previous = entry.entry_hash.clone();
        entries.push(entry);
    }
    if expected_previous != manifest.chain_head {
        return Err("its last entry hash differs from the manifest's chain head".to_owned());
    }
    Ok(entries)
}

fn extend_tree(tree: &mut HashMap<u64, Hash>, entry: &ledger_entry::Model) -> Result<(), String> {
    let index = entry.sequence as u64 - 1;
    let reader = merkle::MemoryReader::new(tree);
    let hashes =
        tlog::stored_hashes_for_record_hash(index, merkle::leaf_hash(&entry.entry_hash), &reader)
            .map_err(|error| error.to_string())?;
    let first = tlog::stored_hash_index(0, index);
    for (offset, hash) in hashes.into_iter().enumerate() {
        tree.insert(first + offset as u64, hash);
    }
    Ok(())
}

fn tree_root(tree: &HashMap<u64, Hash>, size: u64) -> Result<Hash, String> {
    tlog::tree_hash(size, &merkle::MemoryReader::new(tree)).map_err(|error| error.to_string())
}

/// Rebuilds an empty archive database from a backup location, verifying as it goes. Rejects
/// a database that already contains entries, so a restore never overwrites a ledger.
pub async fn restore(
    db: &DatabaseConnection,
    location: &BackupLocation,
    key: &BackupKey,
    verifier_key: Option<&str>,
    progress: ProgressHook<'_>,
) -> Result<BackupCheck, BackupError> {
    let database = |error: sea_orm::DbErr| BackupError::Other(format!("database error: {error}"));
    let head = chain_head::Entity::find_by_id(1)
        .one(db)
        .await
        .map_err(database)?;
    if let Some(head) = head
        && head.sequence > 0
    {
        return Err(BackupError::Other(format!(
            "the target database already holds {} entries; restore needs an empty database",
            head.sequence
        )));
    }
    read_backup(
        location,
        key,
        verifier_key,
        progress,
        |entries| async move {
            crate::ledger::insert_restored(db, entries)
                .await
                .map_err(|error| BackupError::Other(format!("database error: {error}")))
        },
    )
    .await
}

/// Stores the trace event that records a backup run.
pub fn backup_event_payload(
    run: &BackupRun,
    location: &BackupLocation,
    key: &BackupKey,
) -> Option<trace_proto::archive::v1::BackupCompleted> {
    let first = run.manifests.first()?;
    let last = run.manifests.last()?;
    Some(trace_proto::archive::v1::BackupCompleted {
        segments: run
            .manifests
            .iter()
            .map(|manifest| manifest.segment.clone())
            .collect(),
        from_sequence: first.from_sequence as u64,
        to_sequence: last.to_sequence as u64,
        medium: location.medium.to_owned(),
        location: location.url.clone(),
        chain_head: last.chain_head.clone(),
        key_id: key.key_id.clone(),
    })
}

/// Backups of one archive: its location and key, one run at a time, each recorded as a trace
/// event through the archive's own outbox.
#[derive(Debug)]
pub struct Backups {
    pub db: DatabaseConnection,
    pub location: BackupLocation,
    pub key: BackupKey,
    pub signer: Option<Arc<CheckpointSigner>>,
    pub outbox: trace_runtime::outbox::Outbox,
    pub clock: trace_runtime::clock::SharedClock,
    pub running: tokio::sync::Mutex<()>,
    /// Job board on which the running backup reports its progress.
    pub jobs: crate::jobs::JobBoard,
}

impl Backups {
    /// Runs a backup and records it; returns the run and the recording event's id.
    pub async fn run(
        &self,
        context: &trace_runtime::context::CallContext,
    ) -> Result<(BackupRun, Option<String>), BackupError> {
        let _only_one = self.running.lock().await;
        let now = self.clock.now().timestamp_micros();
        let job = self.jobs.start("backup", 0, now);
        let run = run_backup(
            &self.db,
            &self.location,
            &self.key,
            self.signer.as_deref(),
            now,
            &|done, total| job.update(done, total),
        )
        .await?;
        let Some(payload) = backup_event_payload(&run, &self.location, &self.key) else {
            return Ok((run, None));
        };
        let spec = trace_runtime::event::EventSpec {
            entity_type: "backup",
            entity_id: uuid::Uuid::now_v7().to_string(),
            entity_version: 1,
            action: "completed",
            confidentiality: trace_proto::common::v1::Confidentiality::Internal,
            payload: trace_runtime::event::pack(&payload),
        };
        let envelope =
            trace_runtime::event::envelope("archive", context, self.clock.as_ref(), spec);
        let record = async {
            let txn = trace_runtime::db::begin_write(&self.db).await?;
            self.outbox
                .stage(&txn, &envelope)
                .await
                .map_err(|error| sea_orm::DbErr::Custom(error.to_string()))?;
            txn.commit().await
        };
        record.await.map_err(|error| {
            BackupError::Other(format!("failed to record the backup event: {error}"))
        })?;
        self.outbox.notify();
        Ok((run, Some(envelope.event_id)))
    }
}
