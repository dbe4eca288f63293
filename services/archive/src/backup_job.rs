//! Writing backups to, and verifying and restoring them from, a [`BackupLocation`]: a local
//! folder, or an S3, GCS or Azure store by URL.

use std::collections::HashMap;
use std::sync::Arc;

use sea_orm::{ConnectionTrait, DatabaseBackend, DatabaseConnection, EntityTrait};
use tlog_tiles::tlog::{self, Hash};
use tokio_util::task::AbortOnDropHandle;

use crate::backup::{self, BackupError, BackupKey, BackupRow, Manifest, SEGMENT_ENTRIES};
pub use crate::backup_location::BackupLocation;
use crate::checkpoint::CheckpointSigner;
use crate::entity::{chain_head, ledger_entry};
use crate::ledger::GENESIS_HASH;
use crate::merkle;

/// Format version written into manifests.
const FORMAT: u32 = 1;

/// Segments one run wrote.
#[derive(Debug, Clone, Default)]
pub struct BackupRun {
    pub manifests: Vec<Manifest>,
}

/// Entries read from the database per query while a segment is written.
const PAGE_ENTRIES: i64 = 10_000;

/// Backs up every entry after the last one in `location`, in segments of at most
/// [`SEGMENT_ENTRIES`]. A segment is written before its manifest, and a segment's objects
/// only after the manifest of the segment before it, so a manifest always has its segment
/// and the segments in a location have no gap.
///
/// Reading and sealing overlap: a blocking thread compresses and seals each segment while
/// the entries of the segment and then the next one are read.
pub async fn run_backup(
    db: &DatabaseConnection,
    location: &BackupLocation,
    key: &BackupKey,
    signer: Option<&CheckpointSigner>,
    now_micros: i64,
    progress: &(dyn Fn(u64, u64) + Sync),
) -> Result<BackupRun, BackupError> {
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
        .map_err(database_error)?
        .map_or(0, |h| h.sequence);
    let mut run = BackupRun::default();
    let first = next;
    let total = u64::try_from(head - first + 1).unwrap_or(0);
    progress(0, total);

    let mut pending: Option<tokio::task::JoinHandle<Result<Manifest, BackupError>>> = None;
    while next <= head {
        let to = (next + SEGMENT_ENTRIES as i64 - 1).min(head);
        let name = backup::segment_name(next, to);
        let read = read_segment(db, key, &name, next, to, signer).await;
        // The segment before this one is finished first, whether or not this one was read,
        // so that no write goes on after this function returns.
        if let Some(task) = pending.take() {
            let manifest = join_task(task).await?;
            record_segment(&mut run, manifest, first, total, progress);
        }
        let (sealer, read) = read?;
        let manifest = Manifest {
            format: FORMAT,
            segment: name,
            from_sequence: next,
            to_sequence: to,
            entries: read.entries,
            previous_hash: previous_hash.clone(),
            chain_head: read.last_hash.clone().unwrap_or(previous_hash),
            sealed_sha256: String::new(),
            sealed_bytes: 0,
            key_id: key.key_id.clone(),
            tree_root: hex::encode(read.root.0),
            checkpoint: read.checkpoint,
            created_at: now_micros,
        };
        previous_hash = manifest.chain_head.clone();
        pending = Some(tokio::spawn(store_segment(
            location.clone(),
            sealer,
            manifest,
        )));
        next = to + 1;
    }
    if let Some(task) = pending {
        let manifest = join_task(task).await?;
        record_segment(&mut run, manifest, first, total, progress);
    }
    Ok(run)
}

/// Wraps an error of the ORM or of its `sqlx` driver.
fn database_error(error: impl std::fmt::Display) -> BackupError {
    BackupError::Other(format!("database error: {error}"))
}

async fn join_task<T>(
    task: impl Future<Output = Result<Result<T, BackupError>, tokio::task::JoinError>>,
) -> Result<T, BackupError> {
    task.await
        .map_err(|error| BackupError::Other(format!("backup task failed: {error}")))?
}

fn record_segment(
    run: &mut BackupRun,
    manifest: Manifest,
    first: i64,
    total: u64,
    progress: &(dyn Fn(u64, u64) + Sync),
) {
    tracing::info!(
        segment = %manifest.segment,
        from = manifest.from_sequence,
        to = manifest.to_sequence,
        "wrote backup segment"
    );
    let done = u64::try_from(manifest.to_sequence + 1 - first).unwrap_or(0);
    run.manifests.push(manifest);
    progress(done, total);
}

/// Entry count, last entry hash, Merkle root and checkpoint of a segment read from the
/// database.
#[derive(Default)]
struct SegmentRead {
    entries: u64,
    /// Entry hash of the segment's last entry.
    last_hash: Option<String>,
    root: Hash,
    checkpoint: Option<String>,
}

/// Sealed bytes of a segment, from the blocking thread that compresses and seals it.
type Sealer = tokio::task::JoinHandle<Result<Vec<u8>, BackupError>>;

/// Reads the entries `from..=to` in pages as JSON lines and hands them to a new blocking
/// thread that compresses and seals them as segment `name`. Returns that thread, which may
/// still be running, with the Merkle root and signed checkpoint at `to`.
async fn read_segment(
    db: &DatabaseConnection,
    key: &BackupKey,
    name: &str,
    from: i64,
    to: i64,
    signer: Option<&CheckpointSigner>,
) -> Result<(Sealer, SegmentRead), BackupError> {
    // Two pages in the channel let the database read run ahead of compression without
    // holding the whole segment in memory.
    let (sender, mut receiver) = tokio::sync::mpsc::channel::<Vec<u8>>(2);
    let (sealer_key, sealer_name) = (key.clone(), name.to_owned());
    let sealer = tokio::task::spawn_blocking(move || {
        let mut writer = backup::SegmentWriter::new();
        while let Some(lines) = receiver.blocking_recv() {
            writer.write_lines(&lines)?;
        }
        writer.seal(&sealer_key, &sealer_name)
    });

    let mut read = match crate::verify::sqlite_file(db) {
        Some(path) => tokio::task::spawn_blocking(move || {
            read_lines_from_file(&path, from, to, &sender).map_err(|error| {
                BackupError::Other(format!(
                    "failed to read {} for a backup: {error}",
                    path.display()
                ))
            })
        })
        .await
        .map_err(|error| BackupError::Other(format!("backup task failed: {error}")))??,
        None => read_lines(db, from, to, sender).await?,
    };
    read.root = merkle::root(db, to as u64)
        .await
        .map_err(|error| BackupError::Other(error.to_string()))?;
    read.checkpoint = signer
        .map(|signer| signer.sign(to as u64, read.root))
        .transpose()
        .map_err(|error| BackupError::Other(error.to_string()))?;
    Ok((sealer, read))
}

/// Reads entries `from..=to` from the archive's SQLite file and sends their lines, a page at
/// a time, to `sender`. Each line is written from the row where SQLite keeps it.
fn read_lines_from_file(
    path: &std::path::Path,
    from: i64,
    to: i64,
    sender: &tokio::sync::mpsc::Sender<Vec<u8>>,
) -> Result<SegmentRead, BackupError> {
    let sqlite_error = |error: rusqlite::Error| BackupError::Other(error.to_string());
    let connection = crate::verify::open_read_only(path).map_err(sqlite_error)?;
    let mut statement = connection
        .prepare(crate::verify::SQLITE_ENTRIES)
        .map_err(sqlite_error)?;
    let mut read = SegmentRead::default();
    let mut last_hash: Option<String> = None;
    let mut page_from = from;
    while page_from <= to {
        let page_to = (page_from + PAGE_ENTRIES - 1).min(to);
        let mut lines = Vec::new();
        let mut rows = statement
            .query((page_from, page_to))
            .map_err(sqlite_error)?;
        while let Some(row) = rows.next().map_err(sqlite_error)? {
            let entry = crate::verify::sqlite_columns(row).map_err(sqlite_error)?;
            backup::write_line(&mut lines, entry)?;
            let last = last_hash.get_or_insert_with(String::new);
            last.clear();
            last.push_str(entry.entry_hash);
            read.entries += 1;
        }
        if sender.blocking_send(lines).is_err() {
            // The sealer stopped early; awaiting it returns its error.
            break;
        }
        page_from = page_to + 1;
    }
    read.last_hash = last_hash;
    Ok(read)
}

/// Reads entries `from..=to` of a PostgreSQL ledger in sequence order, as binary `COPY` data.
async fn fetch_page(db: &DatabaseConnection, from: i64, to: i64) -> Result<Vec<u8>, BackupError> {
    if db.get_database_backend() != DatabaseBackend::Postgres {
        return Err(BackupError::Other(crate::ledger::NO_LEDGER_FILE.to_owned()));
    }
    let mut data = Vec::new();
    crate::copy_out::copy_entries(db.get_postgres_connection_pool(), from, to, &mut data)
        .await
        .map_err(database_error)?;
    Ok(data)
}

/// Writes the lines of a page of binary `COPY` data and returns their count and the last
/// entry's hash.
fn write_page_lines(
    data: &[u8],
    lines: &mut Vec<u8>,
) -> Result<(u64, Option<String>), BackupError> {
    let mut rows = crate::copy_out::EntryRows::new(data).map_err(database_error)?;
    let (mut count, mut last_hash) = (0, None);
    while let Some(entry) = rows.next_entry().map_err(database_error)? {
        let entry = entry
            .map_err(|reason| BackupError::Other(format!("an entry cannot be read: {reason}")))?;
        backup::write_line(lines, entry)?;
        last_hash = Some(entry.entry_hash);
        count += 1;
    }
    Ok((count, last_hash.map(str::to_owned)))
}

/// Reads entries `from..=to` from PostgreSQL and sends their lines, a page at a time, to `sender`. The next page is fetched on a task of its own while
/// a blocking thread writes the lines of the page before it, so that the database read and
/// the JSON writing overlap.
async fn read_lines(
    db: &DatabaseConnection,
    from: i64,
    to: i64,
    sender: tokio::sync::mpsc::Sender<Vec<u8>>,
) -> Result<SegmentRead, BackupError> {
    let fetch = |page_from: i64| {
        let db = db.clone();
        let page_to = (page_from + PAGE_ENTRIES - 1).min(to);
        // Dropping the handle stops the fetch, when the backup fails or is dropped itself.
        let page = AbortOnDropHandle::new(tokio::spawn(async move {
            fetch_page(&db, page_from, page_to).await
        }));
        (page_to, page)
    };
    let mut read = SegmentRead::default();
    let mut next = (from <= to).then(|| fetch(from));
    while let Some((page_to, page)) = next.take() {
        let page = join_task(page).await?;
        if page_to < to {
            next = Some(fetch(page_to + 1));
        }
        let (lines, count, last_hash) = join_task(tokio::task::spawn_blocking(move || {
            let mut lines = Vec::new();
            let (count, last_hash) = write_page_lines(&page, &mut lines)?;
            Ok((lines, count, last_hash))
        }))
        .await?;
        read.entries += count;
        if last_hash.is_some() {
            read.last_hash = last_hash;
        }
        if sender.send(lines).await.is_err() {
            // The sealer stopped early; awaiting it returns its error.
            break;
        }
    }
    Ok(read)
}

/// Waits for a segment's sealed bytes, completes its manifest with their digest and size,
/// and writes the segment, then its manifest.
async fn store_segment(
    location: BackupLocation,
    sealer: Sealer,
    mut manifest: Manifest,
) -> Result<Manifest, BackupError> {
    let sealed = join_task(sealer).await?;
    manifest.sealed_sha256 = trace_runtime::blob::sha256_hex(&sealed);
    manifest.sealed_bytes = sealed.len() as u64;
    location.put(&manifest.segment, sealed).await?;
    let manifest_bytes = serde_json::to_vec_pretty(&manifest)
        .map_err(|error| BackupError::Other(error.to_string()))?;
    location
        .put(&backup::manifest_name(&manifest.segment), manifest_bytes)
        .await?;
    Ok(manifest)
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
    read_verified(
        ListedBackup::list(location).await?,
        key,
        verifier_key,
        DECODE_AHEAD,
        progress,
        |segment| on_segment(segment.entries),
    )
    .await
}

/// The segment manifests of a backup location, listed once, in segment order.
#[derive(Debug)]
pub struct ListedBackup<'a> {
    location: &'a BackupLocation,
    manifests: Vec<Manifest>,
}

impl<'a> ListedBackup<'a> {
    /// Lists the manifests of `location`, or fails naming the location when it has none, so
    /// that a mistyped location is not read as an empty backup.
    pub async fn list(location: &'a BackupLocation) -> Result<Self, BackupError> {
        let manifests = location.manifests().await?;
        if manifests.is_empty() {
            return Err(BackupError::Other(format!(
                "no backup found at {}: the location has no segment manifests. Check the location URL",
                location.url
            )));
        }
        Ok(Self {
            location,
            manifests,
        })
    }

    /// Returns the number of entries that the manifests list.
    pub fn entries(&self) -> u64 {
        self.manifests.iter().map(|manifest| manifest.entries).sum()
    }
}

/// One segment, opened and verified, with the stored Merkle hashes that its entries add.
struct VerifiedSegment {
    manifest: Manifest,
    entries: Vec<ledger_entry::Model>,
    /// Stored-hash index and hash, in append order.
    stored_hashes: Vec<(u64, Hash)>,
}

/// The chain and Merkle tree as verified up to the end of the last segment read.
struct ChainState {
    chain_head: String,
    /// Stored hashes that later segments and roots still read: the roots of the complete
    /// subtrees of the tree so far, plus the current segment's while it is verified.
    tree: HashMap<u64, Hash>,
}

/// Segments that verification decodes at once, each on a blocking thread, so that two
/// cores stay busy. With one more being linked and one waiting for `on_segment`, up to four
/// segments of [`SEGMENT_ENTRIES`] entries are in memory.
const DECODE_AHEAD: usize = 2;

/// Segments that a restore decodes at once. Its inserts on one thread are the slower stage,
/// so a second segment decoding would only hold more memory (BENCHMARKS.md).
const RESTORE_DECODE_AHEAD: usize = 1;

/// Reads and verifies segments as [`read_backup`] does, and hands each one to `on_segment`.
///
/// Three stages overlap. Up to `ahead` segments are decrypted, parsed and checked entry by
/// entry at once, and their results come out in segment order. A segment is fetched only
/// while the stream is polled, so a slow store delays the next decode. One blocking thread
/// then checks each segment against the chain and Merkle tree before it, while
/// `on_segment` handles the segment before that. The first problem in segment order fails
/// the read.
async fn read_verified<F, Fut>(
    backup: ListedBackup<'_>,
    key: &BackupKey,
    verifier_key: Option<&str>,
    ahead: usize,
    progress: ProgressHook<'_>,
    mut on_segment: F,
) -> Result<BackupCheck, BackupError>
where
    F: FnMut(VerifiedSegment) -> Fut,
    Fut: Future<Output = Result<(), BackupError>>,
{
    use futures::StreamExt;

    let total = backup.entries();
    progress(0, total);
    let ListedBackup {
        location,
        manifests,
    } = backup;
    // Where each segment must start if none is missing: right after the one before it.
    let starts: Vec<i64> = std::iter::once(1)
        .chain(manifests.iter().map(|manifest| manifest.to_sequence + 1))
        .collect();
    let mut decoded = futures::stream::iter(manifests.into_iter().zip(starts))
        .map(|(manifest, start)| decode_segment(location, key, manifest, start))
        // `buffered(0)` would never poll a segment, so at least one decodes.
        .buffered(ahead.max(1));
    // One verified segment waits in the channel while the next is verified.
    let (sender, mut receiver) = tokio::sync::mpsc::channel::<VerifiedSegment>(1);

    let producer = async move {
        let mut state = ChainState {
            chain_head: GENESIS_HASH.to_owned(),
            tree: HashMap::new(),
        };
        while let Some(segment) = decoded.next().await {
            let segment = segment?;
            let verifier_key = verifier_key.map(str::to_owned);
            let (returned, segment) = tokio::task::spawn_blocking(move || {
                let segment = link_segment(segment, verifier_key.as_deref(), &mut state);
                (state, segment)
            })
            .await
            .map_err(|error| BackupError::Other(format!("verification task failed: {error}")))?;
            state = returned;
            if sender.send(segment?).await.is_err() {
                // `on_segment` failed; the consumer below returns its error.
                break;
            }
        }
        Ok::<_, BackupError>(())
    };

    let consumer = async move {
        let mut check = BackupCheck {
            chain_head: GENESIS_HASH.to_owned(),
            ..BackupCheck::default()
        };
        while let Some(segment) = receiver.recv().await {
            let name = segment.manifest.segment.clone();
            check.segments += 1;
            check.entries += segment.entries.len() as u64;
            check.chain_head = segment.manifest.chain_head.clone();
            check.tree_root = segment.manifest.tree_root.clone();
            on_segment(segment).await?;
            tracing::debug!(segment = %name, entries = check.entries, "verified backup segment");
            progress(check.entries, total);
        }
        Ok::<_, BackupError>(check)
    };

    let (produced, consumed) = tokio::join!(producer, consumer);
    let check = consumed?;
    produced?;
    Ok(check)
}

/// One segment, opened and checked on its own, not yet against the segments before it.
struct DecodedSegment {
    manifest: Manifest,
    entries: Vec<ledger_entry::Model>,
}

/// Fetches one segment and, on a blocking thread, checks its digest and seal, parses its
/// entries and checks each entry's hash, payload digest and link to the entry before it.
/// `start` is the sequence that the segment must begin at to follow the one before it.
async fn decode_segment(
    location: &BackupLocation,
    key: &BackupKey,
    manifest: Manifest,
    start: i64,
) -> Result<DecodedSegment, BackupError> {
    let name = manifest.segment.clone();
    if manifest.from_sequence != start {
        return Err(BackupError::MissingSegment {
            name: format!("segment starting at sequence {start} (next found: {name})"),
        });
    }
    if manifest.key_id != key.key_id {
        return Err(BackupError::Tampered {
            reason: format!(
                "sealed with key {}, not with key {}",
                manifest.key_id, key.key_id
            ),
            name,
        });
    }
    let sealed = location.get(&name).await?;
    let key = key.clone();
    tokio::task::spawn_blocking(move || {
        let tampered = |reason: String| BackupError::Tampered {
            name: manifest.segment.clone(),
            reason,
        };
        if trace_runtime::blob::sha256_hex(&sealed) != manifest.sealed_sha256 {
            return Err(tampered(
                "its bytes do not match the manifest digest".to_owned(),
            ));
        }
        let rows = backup::open(&sealed, &key, &manifest.segment)?;
        let entries = check_entries(rows, &manifest).map_err(tampered)?;
        Ok(DecodedSegment { manifest, entries })
    })
    .await
    .map_err(|error| BackupError::Other(format!("verification task failed: {error}")))?
}

/// Checks a decoded segment against the chain and Merkle tree in `state`, and the signed
/// checkpoint in its manifest given `verifier_key`, and advances `state` past it.
fn link_segment(
    segment: DecodedSegment,
    verifier_key: Option<&str>,
    state: &mut ChainState,
) -> Result<VerifiedSegment, BackupError> {
    let DecodedSegment { manifest, entries } = segment;
    let tampered = |reason: String| BackupError::Tampered {
        name: manifest.segment.clone(),
        reason,
    };
    check_links(&entries, &manifest, &state.chain_head).map_err(tampered)?;
    let mut stored_hashes = Vec::with_capacity(entries.len() * 2);
    for entry in &entries {
        extend_tree(&mut state.tree, entry, &mut stored_hashes).map_err(tampered)?;
    }
    let size = manifest.to_sequence as u64;
    let root = tree_root(&state.tree, size).map_err(tampered)?;
    if hex::encode(root.0) != manifest.tree_root {
        return Err(tampered(
            "the Merkle root differs from the manifest".to_owned(),
        ));
    }
    if let (Some(verifier_key), Some(note)) = (verifier_key, &manifest.checkpoint) {
        let (signed_size, signed_root) = crate::checkpoint::verify_note(note, verifier_key)
            .map_err(|error| {
                tampered(format!(
                    "{error} (if the backup is intact, the verifier key does not belong to the \
                     archive that signed it)"
                ))
            })?;
        if signed_size != size || signed_root != root {
            return Err(tampered(
                "the signed checkpoint does not match the segment".to_owned(),
            ));
        }
    }
    keep_frontier(&mut state.tree, size);
    state.chain_head = manifest.chain_head.clone();
    Ok(VerifiedSegment {
        manifest,
        entries,
        stored_hashes,
    })
}

/// Parses one segment's rows and checks each entry in sequence order without the segments
/// before it. The checks are the entry's place in the segment's range, its entry hash over
/// its own columns, its payload digest, and its link to the entry before it (for the first
/// entry, to the manifest's previous hash). The error names the first entry that fails.
fn check_entries(
    rows: Vec<BackupRow>,
    manifest: &Manifest,
) -> Result<Vec<ledger_entry::Model>, String> {
    if rows.len() as u64 != manifest.entries {
        return Err(format!(
            "it holds {} entries, its manifest says {}",
            rows.len(),
            manifest.entries
        ));
    }
    let mut entries: Vec<ledger_entry::Model> = Vec::with_capacity(rows.len());
    for (offset, row) in rows.into_iter().enumerate() {
        let entry = row.into_model()?;
        let sequence = manifest.from_sequence + offset as i64;
        if entry.sequence != sequence {
            return Err(format!("entry {sequence} is missing"));
        }
        let hash = crate::ledger::entry_hash_bytes(&(&entry).into());
        if !crate::ledger::is_hex_of(&hash, &entry.entry_hash) {
            return Err(format!("entry {sequence} does not verify"));
        }
        match entries.last() {
            Some(before) if entry.previous_hash != before.entry_hash => {
                return Err(format!("entry {sequence} does not verify"));
            }
            // Either the entry or the manifest was altered; the message names both.
            None if entry.previous_hash != manifest.previous_hash => {
                return Err(format!(
                    "entry {sequence} does not link to the manifest's previous hash"
                ));
            }
            _ => {}
        }
        if !crate::ledger::payload_matches_digest(&entry) {
            return Err(format!(
                "entry {sequence} payload does not match its digest"
            ));
        }
        entries.push(entry);
    }
    Ok(entries)
}

/// Checks that a segment continues `previous`, the last entry hash of the segment before,
/// and ends at the manifest's chain head. [`check_entries`] has already linked its entries
/// to each other and to the manifest's previous hash.
fn check_links(
    entries: &[ledger_entry::Model],
    manifest: &Manifest,
    previous: &str,
) -> Result<(), String> {
    if manifest.previous_hash != previous {
        return Err("it does not continue the chain of the segment before it".to_owned());
    }
    let last = entries.last().map_or(previous, |entry| &entry.entry_hash);
    if last != manifest.chain_head {
        return Err("its last entry hash differs from the manifest's chain head".to_owned());
    }
    Ok(())
}

/// Adds the stored hashes that appending `entry` creates to `tree` and to `added`.
fn extend_tree(
    tree: &mut HashMap<u64, Hash>,
    entry: &ledger_entry::Model,
    added: &mut Vec<(u64, Hash)>,
) -> Result<(), String> {
    let index = entry.sequence as u64 - 1;
    let reader = merkle::MemoryReader::new(tree);
    let hashes =
        tlog::stored_hashes_for_record_hash(index, merkle::leaf_hash(&entry.entry_hash), &reader)
            .map_err(|error| error.to_string())?;
    let first = tlog::stored_hash_index(0, index);
    for (offset, hash) in hashes.into_iter().enumerate() {
        let stored_index = first + offset as u64;
        tree.insert(stored_index, hash);
        added.push((stored_index, hash));
    }
    Ok(())
}

fn tree_root(tree: &HashMap<u64, Hash>, size: u64) -> Result<Hash, String> {
    tlog::tree_hash(size, &merkle::MemoryReader::new(tree)).map_err(|error| error.to_string())
}

/// Drops every stored hash except the roots of the complete subtrees that make up the tree
/// of `size` leaves. Those are all that the root at `size` and the stored hashes of later
/// leaves read, so the map stays small however long the ledger is.
fn keep_frontier(tree: &mut HashMap<u64, Hash>, size: u64) {
    let mut frontier = Vec::new();
    let mut start = 0;
    for level in (0..u64::BITS).rev() {
        let width = 1u64 << level;
        if size & width != 0 {
            frontier.push(tlog::stored_hash_index(level as u8, start >> level));
            start += width;
        }
    }
    tree.retain(|index, _| frontier.contains(index));
}

/// Rebuilds an empty archive database from a listed backup, verifying as it goes. Rejects a
/// database that already contains entries, so a restore never overwrites a ledger.
pub async fn restore(
    db: &DatabaseConnection,
    backup: ListedBackup<'_>,
    key: &BackupKey,
    verifier_key: Option<&str>,
    progress: ProgressHook<'_>,
) -> Result<BackupCheck, BackupError> {
    let head = chain_head::Entity::find_by_id(1)
        .one(db)
        .await
        .map_err(database_error)?;
    if let Some(head) = head
        && head.sequence > 0
    {
        return Err(BackupError::Other(format!(
            "the target database already holds {} entries; restore needs an empty database",
            head.sequence
        )));
    }
    let inserted = &std::sync::atomic::AtomicU64::new(0);
    let restored = read_verified(
        backup,
        key,
        verifier_key,
        RESTORE_DECODE_AHEAD,
        progress,
        |segment| async move {
            let entries = segment.entries.len() as u64;
            crate::bulk_insert::insert_restored(db, segment.entries, segment.stored_hashes)
                .await
                .map_err(database_error)?;
            inserted.fetch_add(entries, std::sync::atomic::Ordering::Relaxed);
            Ok(())
        },
    )
    .await;
    let inserted = inserted.load(std::sync::atomic::Ordering::Relaxed);
    let check = restored.map_err(|error| {
        if inserted == 0 {
            return error;
        }
        BackupError::Other(format!(
            "{error}; the target database now contains the {inserted} entries restored \
             before the failure, so drop it and restore into an empty database again"
        ))
    })?;
    // A bulk load leaves PostgreSQL without statistics until autovacuum gets to the tables,
    // and queries on the restored ledger would be planned blind until then.
    if db.get_database_backend() == DatabaseBackend::Postgres {
        db.execute_unprepared("ANALYZE ledger_entries, merkle_hashes")
            .await
            .map_err(|error| {
                BackupError::Other(format!(
                    "the restore is complete, but analyzing the restored tables failed: \
                     {error}. Run ANALYZE on ledger_entries and merkle_hashes"
                ))
            })?;
    }
    Ok(check)
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
