//! Backup and restore of the ledger against real SQLite files, and into PostgreSQL when
//! `TRACE_TEST_DATABASE_URL` is set. A backup of several segments restores to the same rows
//! and Merkle tree, and an altered or missing segment is rejected by name.

#[path = "../benches/support/mod.rs"]
mod support;

use std::path::{Path, PathBuf};

use sea_orm::{DatabaseConnection, EntityTrait, QueryOrder};
use trace_archive::backup::{self, BackupError, BackupKey, Manifest};
use trace_archive::backup_job::{self, BackupLocation, ListedBackup};
use trace_archive::entity::{chain_head, ledger_entry, merkle_hash};
use trace_archive::ledger::{Incoming, append_batch};
use trace_archive::migration::Migrator;

async fn connect(url: &str) -> DatabaseConnection {
    trace_runtime::db::connect_and_migrate::<Migrator>(url)
        .await
        .unwrap()
}

async fn sqlite(dir: &Path, name: &str) -> DatabaseConnection {
    connect(&format!("sqlite://{}?mode=rwc", dir.join(name).display())).await
}

/// Appends envelopes `from..from + count` of the benchmark data in one batch.
async fn append(db: &DatabaseConnection, from: u64, count: u64) {
    append_batch(db, 1_790_000_000_000_000, &batch(from, count))
        .await
        .unwrap();
}

/// Envelopes `from..from + count` of the benchmark data, as the stream delivers them.
fn batch(from: u64, count: u64) -> Vec<Incoming> {
    (from..from + count).map(support::incoming).collect()
}

/// A source ledger backed up in three runs of `counts` entries each, so in three segments.
struct Backup {
    source: DatabaseConnection,
    location: BackupLocation,
    key: BackupKey,
    verifier_key: String,
    dir: tempfile::TempDir,
}

async fn three_segment_backup(counts: [u64; 3]) -> Backup {
    let dir = tempfile::tempdir().unwrap();
    let source = sqlite(dir.path(), "source.db").await;
    let key = BackupKey::from_hex(&BackupKey::generate_hex()).unwrap();
    let (signing_key, verifier_key) =
        trace_archive::checkpoint::generate_key("test.archive").unwrap();
    let signer = trace_archive::checkpoint::CheckpointSigner::new(&signing_key).unwrap();
    let folder = dir.path().join("backup");
    let location =
        BackupLocation::open(&format!("file://{}", folder.display()), &Default::default()).unwrap();
    let mut appended = 0;
    for count in counts {
        append(&source, appended, count).await;
        appended += count;
        let run = backup_job::run_backup(&source, &location, &key, Some(&signer), 1, &|_, _| {})
            .await
            .unwrap();
        assert_eq!(run.manifests.len(), 1, "one segment per run");
        assert_eq!(run.manifests[0].to_sequence, appended as i64);
    }
    Backup {
        source,
        location,
        key,
        verifier_key,
        dir,
    }
}

impl Backup {
    fn segment_files(&self) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(self.dir.path().join("backup/segments"))
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .filter(|path| path.extension().is_some_and(|ext| ext == "seg"))
            .collect();
        files.sort();
        files
    }

    /// Returns the manifest and the decrypted rows of the segment at `index`, in order.
    async fn segment_rows(&self, index: usize) -> (Manifest, Vec<backup::BackupRow>) {
        let manifest = self.location.manifests().await.unwrap().remove(index);
        let sealed = std::fs::read(&self.segment_files()[index]).unwrap();
        let rows = backup::open(&sealed, &self.key, &manifest.segment).unwrap();
        (manifest, rows)
    }

    async fn verify(&self) -> Result<backup_job::BackupCheck, BackupError> {
        backup_job::read_backup(
            &self.location,
            &self.key,
            Some(&self.verifier_key),
            &mut |_, _| {},
            |_| async { Ok(()) },
        )
        .await
    }

    async fn restore(
        &self,
        target: &DatabaseConnection,
    ) -> Result<backup_job::BackupCheck, BackupError> {
        backup_job::restore(
            target,
            ListedBackup::list(&self.location).await?,
            &self.key,
            Some(&self.verifier_key),
            &mut |_, _| {},
        )
        .await
    }
}

async fn entries(db: &DatabaseConnection) -> Vec<ledger_entry::Model> {
    ledger_entry::Entity::find()
        .order_by_asc(ledger_entry::Column::Sequence)
        .all(db)
        .await
        .unwrap()
}

async fn stored_hashes(db: &DatabaseConnection) -> Vec<merkle_hash::Model> {
    merkle_hash::Entity::find()
        .order_by_asc(merkle_hash::Column::StoredIndex)
        .all(db)
        .await
        .unwrap()
}

/// Restores `backup` into the empty `target` and checks that it contains the source's rows,
/// stored Merkle hashes and chain head, and that the restored chain verifies.
async fn restores_the_same_ledger(backup: &Backup, target: &DatabaseConnection, total: u64) {
    let check = backup.restore(target).await.unwrap();
    assert_eq!(check.segments, 3);
    assert_eq!(check.entries, total);
    assert_eq!(entries(target).await, entries(&backup.source).await);
    assert_eq!(
        stored_hashes(target).await,
        stored_hashes(&backup.source).await
    );
    let head = chain_head::Entity::find_by_id(1)
        .one(target)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(head.sequence, total as i64);
    assert_eq!(head.entry_hash, check.chain_head);
    let verification = trace_archive::verify::verify_range(target, 1, 0)
        .await
        .unwrap();
    assert!(verification.ok(), "{verification:?}");
    assert_eq!(verification.checked, total);
    let root = trace_archive::merkle::root(target, total).await.unwrap();
    assert_eq!(hex::encode(root.0), check.tree_root);
}

#[tokio::test]
async fn three_segments_restore_on_sqlite() {
    // The last segment is larger than one page of the backup's database reads, and the
    // segment ends are not powers of two, so later segments extend partial subtrees.
    let backup = three_segment_backup([5, 7, 10_013]).await;
    let target = sqlite(backup.dir.path(), "restored.db").await;
    restores_the_same_ledger(&backup, &target, 10_025).await;

    let error = backup.restore(&target).await.unwrap_err().to_string();
    assert!(error.contains("already holds 10025 entries"), "{error}");
}

/// One run over more than a segment's worth of entries writes full segments of
/// `SEGMENT_ENTRIES` and one with the rest, and they restore as one ledger.
#[tokio::test]
async fn long_run_splits_into_segments() {
    let total = backup::SEGMENT_ENTRIES + 5;
    let dir = tempfile::tempdir().unwrap();
    let source = sqlite(dir.path(), "source.db").await;
    for from in (0..total).step_by(5_000) {
        append(&source, from, (total - from).min(5_000)).await;
    }
    let key = BackupKey::from_hex(&BackupKey::generate_hex()).unwrap();
    let folder = dir.path().join("backup");
    let location =
        BackupLocation::open(&format!("file://{}", folder.display()), &Default::default()).unwrap();

    let run = backup_job::run_backup(&source, &location, &key, None, 1, &|_, _| {})
        .await
        .unwrap();

    let ranges: Vec<(i64, i64, u64)> = run
        .manifests
        .iter()
        .map(|manifest| {
            (
                manifest.from_sequence,
                manifest.to_sequence,
                manifest.entries,
            )
        })
        .collect();
    let full = backup::SEGMENT_ENTRIES as i64;
    assert_eq!(
        ranges,
        [(1, full, backup::SEGMENT_ENTRIES), (full + 1, full + 5, 5)]
    );
    let target = sqlite(dir.path(), "restored.db").await;
    let backup = ListedBackup::list(&location).await.unwrap();
    let check = backup_job::restore(&target, backup, &key, None, &mut |_, _| {})
        .await
        .unwrap();
    assert_eq!(check.segments, 2);
    assert_eq!(check.entries, total);
    let verification = trace_archive::verify::verify_range(&target, 1, 0)
        .await
        .unwrap();
    assert!(verification.ok(), "{verification:?}");
    assert_eq!(verification.checked, total);
}

#[tokio::test]
async fn three_segments_restore_on_postgres() {
    let Some(url) = trace_tests::postgres::fresh_database("archive_backup").unwrap() else {
        eprintln!("TRACE_TEST_DATABASE_URL is not set; skipping the PostgreSQL variant");
        return;
    };
    let backup = three_segment_backup([5, 7, 1_013]).await;
    let target = connect(&url).await;
    restores_the_same_ledger(&backup, &target, 1_025).await;
}

/// A payload removed by a disposition is backed up as null and restored into PostgreSQL as
/// null, beside the stored payloads, empty strings and non-ASCII text of the other entries.
#[tokio::test]
async fn removed_payload_restores_on_postgres() {
    use sea_orm::ConnectionTrait;

    let Some(url) = trace_tests::postgres::fresh_database("archive_restore_null").unwrap() else {
        eprintln!("TRACE_TEST_DATABASE_URL is not set; skipping the PostgreSQL variant");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let source = sqlite(dir.path(), "source.db").await;
    append(&source, 0, 5).await;
    source
        .execute_unprepared("UPDATE ledger_entries SET payload = NULL WHERE sequence = 2")
        .await
        .unwrap();
    let key = BackupKey::from_hex(&BackupKey::generate_hex()).unwrap();
    let folder = dir.path().join("backup");
    let location =
        BackupLocation::open(&format!("file://{}", folder.display()), &Default::default()).unwrap();
    backup_job::run_backup(&source, &location, &key, None, 1, &|_, _| {})
        .await
        .unwrap();

    let target = connect(&url).await;
    let backup = ListedBackup::list(&location).await.unwrap();
    let check = backup_job::restore(&target, backup, &key, None, &mut |_, _| {})
        .await
        .unwrap();

    assert_eq!(check.entries, 5);
    let restored = entries(&target).await;
    assert_eq!(restored, entries(&source).await);
    assert_eq!(restored[1].payload, None);
    assert!(restored[0].payload.is_some());
    assert_eq!(restored[0].actor_name, "張敏");
    assert_eq!(restored[0].causation_id, "");
    let verification = trace_archive::verify::verify_range(&target, 1, 0)
        .await
        .unwrap();
    assert!(verification.ok(), "{verification:?}");
    assert_eq!(verification.checked, 5);

    // The restore leaves the tables analyzed, so the planner has statistics at once.
    let analyzed: Vec<(String,)> = sea_orm::sqlx::query_as(
        "SELECT relname::text FROM pg_stat_user_tables \
         WHERE last_analyze IS NOT NULL ORDER BY relname",
    )
    .fetch_all(target.get_postgres_connection_pool())
    .await
    .unwrap();
    let analyzed: Vec<&str> = analyzed.iter().map(|(name,)| name.as_str()).collect();
    assert!(analyzed.contains(&"ledger_entries"), "{analyzed:?}");
    assert!(analyzed.contains(&"merkle_hashes"), "{analyzed:?}");
}

#[tokio::test]
async fn altered_segment_is_rejected_by_name() {
    let backup = three_segment_backup([3, 4, 5]).await;
    let segments = backup.segment_files();
    assert_eq!(segments.len(), 3);
    let mut bytes = std::fs::read(&segments[1]).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(&segments[1], bytes).unwrap();
    let name = segments[1].file_name().unwrap().to_str().unwrap();

    let error = backup.verify().await.unwrap_err().to_string();
    assert!(error.contains(name), "{error}");
    assert!(error.contains("digest"), "{error}");

    let target = sqlite(backup.dir.path(), "restored.db").await;
    let error = backup.restore(&target).await.unwrap_err().to_string();
    assert!(error.contains(name), "{error}");
    assert!(
        error.contains("now contains the 3 entries restored before the failure"),
        "{error}"
    );
    let restored = entries(&target).await;
    assert_eq!(
        restored.len(),
        3,
        "only the segment before the altered one is restored"
    );
}

/// A verifier key of another archive fails on the first segment's checkpoint, and the
/// error says the key may be the cause.
#[tokio::test]
async fn wrong_verifier_key_is_named() {
    let mut backup = three_segment_backup([2, 2, 2]).await;
    let first = backup.segment_files()[0]
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    let (_, other_verifier_key) = trace_archive::checkpoint::generate_key("other.archive").unwrap();
    backup.verifier_key = other_verifier_key;

    let error = backup.verify().await.unwrap_err().to_string();

    assert!(error.contains(&first), "{error}");
    assert!(
        error.contains("the verifier key does not belong to the archive that signed it"),
        "{error}"
    );
}

/// A location without manifests, such as a mistyped folder, is an error for verification
/// and restore, not an empty backup.
#[tokio::test]
async fn empty_location_is_no_backup() {
    let dir = tempfile::tempdir().unwrap();
    let key = BackupKey::from_hex(&BackupKey::generate_hex()).unwrap();
    let folder = dir.path().join("nothere");
    let url = format!("file://{}", folder.display());
    let location = BackupLocation::open(&url, &Default::default()).unwrap();

    let error =
        backup_job::read_backup(&location, &key, None, &mut |_, _| {}, |_| async { Ok(()) })
            .await
            .unwrap_err()
            .to_string();
    assert!(
        error.contains(&format!("no backup found at {url}")),
        "{error}"
    );

    let error = ListedBackup::list(&location).await.unwrap_err().to_string();
    assert!(error.contains("has no segment manifests"), "{error}");
}

#[tokio::test]
async fn resealed_altered_entry_is_rejected() {
    // Someone with the backup key alters an entry, seals the segment again and fixes the
    // manifest's digest: the hash chain still rejects the segment.
    let backup = three_segment_backup([3, 4, 5]).await;
    let (manifest, mut rows) = backup.segment_rows(2).await;
    rows[1].actor_name = "someone else".to_owned();
    reseal(&backup, &backup.segment_files()[2], &manifest, &rows);

    let error = backup.verify().await.unwrap_err().to_string();
    assert!(error.contains(&manifest.segment), "{error}");
    assert!(error.contains("entry 9 does not verify"), "{error}");
}

#[tokio::test]
async fn relinked_entry_is_rejected() {
    // An entry that hashes correctly over its own columns but points at the wrong previous
    // entry: only the check of the links between entries finds it.
    let backup = three_segment_backup([3, 4, 5]).await;
    let (manifest, mut rows) = backup.segment_rows(1).await;
    rows[2].previous_hash = "0".repeat(64);
    rows[2].entry_hash = trace_archive::ledger::entry_hash(&rows[2].to_model().unwrap());
    reseal(&backup, &backup.segment_files()[1], &manifest, &rows);

    let error = backup.verify().await.unwrap_err().to_string();
    assert!(error.contains(&manifest.segment), "{error}");
    assert!(error.contains("entry 6 does not verify"), "{error}");
}

#[tokio::test]
async fn altered_manifest_previous_hash_is_named() {
    // Only the manifest changes, so its segment's first entry no longer links to it.
    let backup = three_segment_backup([3, 4, 5]).await;
    let segments = backup.segment_files();
    let manifests = backup.location.manifests().await.unwrap();
    let manifest = &manifests[1];
    let altered = Manifest {
        previous_hash: "0".repeat(64),
        ..manifest.clone()
    };
    write_manifest(&segments[1], &altered);

    let error = backup.verify().await.unwrap_err().to_string();
    assert!(error.contains(&manifest.segment), "{error}");
    assert!(
        error.contains("entry 4 does not link to the manifest's previous hash"),
        "{error}"
    );
}

#[tokio::test]
async fn first_bad_entry_in_segment_is_named() {
    // Two faults in one segment: a relinked entry, then an entry altered without a new hash.
    // The altered one fails its own hash, a check that needs no other entry; the relinked
    // one fails only against the entry before it. The earlier entry is still named.
    let backup = three_segment_backup([3, 4, 5]).await;
    let (manifest, mut rows) = backup.segment_rows(2).await;
    rows[1].previous_hash = "0".repeat(64);
    rows[1].entry_hash = trace_archive::ledger::entry_hash(&rows[1].to_model().unwrap());
    rows[3].actor_name = "someone else".to_owned();
    reseal(&backup, &backup.segment_files()[2], &manifest, &rows);

    let error = backup.verify().await.unwrap_err().to_string();
    assert!(error.contains(&manifest.segment), "{error}");
    assert!(error.contains("entry 9 does not verify"), "{error}");
    assert!(!error.contains("entry 11"), "{error}");
}

#[tokio::test]
async fn first_bad_segment_in_order_is_named() {
    // Segments are decoded in parallel. The later bad segment here is small and fails its
    // digest check at once, while the earlier one is large, decodes without fault and fails
    // only against the Merkle root of its manifest, after decoding. So the later failure
    // comes first. The error still names the earlier segment.
    let backup = three_segment_backup([3, 2_000, 5]).await;
    let segments = backup.segment_files();
    let manifests = backup.location.manifests().await.unwrap();
    let manifest = &manifests[1];
    let altered = Manifest {
        tree_root: "0".repeat(64),
        ..manifest.clone()
    };
    write_manifest(&segments[1], &altered);
    let mut bytes = std::fs::read(&segments[2]).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(&segments[2], bytes).unwrap();
    let later = segments[2].file_name().unwrap().to_str().unwrap();

    let error = backup.verify().await.unwrap_err().to_string();
    assert!(error.contains(&manifest.segment), "{error}");
    assert!(error.contains("Merkle root differs"), "{error}");
    assert!(!error.contains(later), "{error}");
}

/// Seals `rows` again in place of the segment at `path` and rewrites its manifest's digest
/// and size to match, as someone holding the backup key could.
fn reseal(backup: &Backup, path: &Path, manifest: &Manifest, rows: &[backup::BackupRow]) {
    let resealed = backup::seal(rows, &backup.key, &manifest.segment).unwrap();
    let altered = Manifest {
        sealed_sha256: trace_runtime::blob::sha256_hex(&resealed),
        sealed_bytes: resealed.len() as u64,
        ..manifest.clone()
    };
    std::fs::write(path, resealed).unwrap();
    write_manifest(path, &altered);
}

/// Replaces the manifest of the segment at `path` with `manifest`.
fn write_manifest(path: &Path, manifest: &Manifest) {
    let manifest_path = path.with_extension("manifest.json");
    std::fs::write(&manifest_path, serde_json::to_vec(manifest).unwrap()).unwrap();
}

#[tokio::test]
async fn missing_middle_segment_is_named() {
    let backup = three_segment_backup([3, 4, 5]).await;
    let segments = backup.segment_files();
    std::fs::remove_file(&segments[1]).unwrap();
    std::fs::remove_file(segments[1].with_extension("manifest.json")).unwrap();

    let error = backup.verify().await.unwrap_err().to_string();
    assert!(error.contains("segment starting at sequence 4"), "{error}");
    assert!(error.contains("missing"), "{error}");
}

/// Backs up `db` into the folder `name` under `dir` and returns the one manifest and the
/// rows of its segment.
async fn backup_rows(
    db: &DatabaseConnection,
    dir: &Path,
    name: &str,
    key: &BackupKey,
) -> (Manifest, Vec<backup::BackupRow>) {
    let folder = dir.join(name);
    let location =
        BackupLocation::open(&format!("file://{}", folder.display()), &Default::default()).unwrap();
    let run = backup_job::run_backup(db, &location, key, None, 1, &|_, _| {})
        .await
        .unwrap();
    assert_eq!(run.manifests.len(), 1);
    let manifest = run.manifests[0].clone();
    let sealed = std::fs::read(folder.join(&manifest.segment)).unwrap();
    let rows = backup::open(&sealed, key, &manifest.segment).unwrap();
    (manifest, rows)
}

#[tokio::test]
async fn postgres_and_sqlite_sources_back_up_alike() {
    // The backup reads a SQLite file in place and PostgreSQL as binary `COPY` data. The same
    // ledger, longer than one page of reads, must give the same segment either way.
    let Some(url) = trace_tests::postgres::fresh_database("archive_backup_source").unwrap() else {
        eprintln!("TRACE_TEST_DATABASE_URL is not set; skipping the PostgreSQL variant");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let sqlite_source = sqlite(dir.path(), "source.db").await;
    let postgres_source = connect(&url).await;
    let incoming = batch(0, 10_013);
    for source in [&sqlite_source, &postgres_source] {
        append_batch(source, 1_790_000_000_000_000, &incoming)
            .await
            .unwrap();
    }
    let key = BackupKey::from_hex(&BackupKey::generate_hex()).unwrap();

    let (from_sqlite, sqlite_rows) = backup_rows(&sqlite_source, dir.path(), "sqlite", &key).await;
    let (from_postgres, postgres_rows) =
        backup_rows(&postgres_source, dir.path(), "postgres", &key).await;
    assert_eq!(sqlite_rows.len(), 10_013);
    assert_eq!(sqlite_rows[10_012].sequence, 10_013);
    assert_eq!(sqlite_rows, postgres_rows);
    assert_eq!(from_sqlite.entries, 10_013);
    assert_eq!(from_sqlite.chain_head, from_postgres.chain_head);
    assert_eq!(from_sqlite.tree_root, from_postgres.tree_root);
    let last = entries(&sqlite_source).await.pop().unwrap();
    assert_eq!(from_sqlite.chain_head, last.entry_hash);
}
