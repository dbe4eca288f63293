//! Backup and restore benchmark. It appends N envelopes to a fresh SQLite ledger and writes a
//! full backup to a local folder, in sealed segments of at most 25,000 entries with a signed
//! checkpoint each. Then it verifies the backup and restores it into a second, empty SQLite
//! database, and prints the time and the peak resident memory of each phase. With
//! `TRACE_BENCH_DATABASE_URL` naming a PostgreSQL server where it may create databases, it
//! does the same from one new database on that server into another.
//!
//! ```text
//! cargo bench -p trace-archive --bench backup -- [entries] [batch]
//! ```

mod support;

use std::time::Instant;

use sea_orm::DatabaseConnection;

use trace_archive::backup::BackupKey;
use trace_archive::backup_job::{self, BackupLocation};
use trace_archive::checkpoint::{CheckpointSigner, generate_key};
use trace_archive::ledger::Appender;
use trace_archive::migration::Migrator;

/// Returns the peak resident set size in MiB since the last [`reset_peak_rss`], read from
/// `/proc/self/status` (Linux only, 0 elsewhere).
fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|value| {
            value
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<f64>()
                .ok()
        })
        .map_or(0.0, |kib| kib / 1024.0)
}

/// Returns the CPU time of this process so far, user and system, in seconds, read from
/// `/proc/self/stat` in clock ticks of 1/100 s (Linux only, 0 elsewhere).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The command name in brackets may contain spaces, so the fields are counted after it:
    // utime and stime are fields 14 and 15 of the line, the 12th and 13th after the name.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    let ticks = |index: usize| {
        fields
            .get(index)
            .and_then(|value| value.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

/// Resets the kernel's peak resident set size of this process to the current one (Linux
/// 4.0 and later), so that each phase reports its own peak.
fn reset_peak_rss() {
    std::fs::write("/proc/self/clear_refs", "5").ok();
}

async fn sqlite(path: &std::path::Path) -> DatabaseConnection {
    let url = format!("sqlite://{}?mode=rwc", path.display());
    trace_runtime::db::connect_and_migrate::<Migrator>(&url)
        .await
        .expect("sqlite")
}

async fn postgres(url: &str) -> DatabaseConnection {
    trace_runtime::db::connect_and_migrate::<Migrator>(url)
        .await
        .expect("postgres")
}

#[tokio::main]
async fn main() {
    let arguments: Vec<u64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let entries = arguments.first().copied().unwrap_or(20_000);
    let batch = arguments.get(1).copied().unwrap_or(500);

    let dir = tempfile::tempdir().expect("temporary folder");
    let source = sqlite(&dir.path().join("ledger.db")).await;
    let target = sqlite(&dir.path().join("restored.db")).await;
    run(
        "sqlite",
        source,
        target,
        &dir.path().join("sqlite"),
        entries,
        batch,
    )
    .await;

    if let Ok(base) = std::env::var("TRACE_BENCH_DATABASE_URL") {
        let (source_db, target_db) = (
            support::ScratchDatabase::create(&base).await,
            support::ScratchDatabase::create(&base).await,
        );
        let source = postgres(&source_db.url).await;
        let target = postgres(&target_db.url).await;
        let folder = dir.path().join("postgres");
        run("postgres", source, target, &folder, entries, batch).await;
        source_db.drop_database().await;
        target_db.drop_database().await;
    }
}

/// Appends `entries` envelopes to `db`, backs them up into `folder`, verifies the backup
/// and restores it into `target`, printing each phase's time, CPU and peak memory. Both
/// connections are closed at the end.
async fn run(
    label: &str,
    db: DatabaseConnection,
    target: DatabaseConnection,
    folder: &std::path::Path,
    entries: u64,
    batch: u64,
) {
    let started = Instant::now();
    let mut pending = Vec::with_capacity(batch as usize);
    let mut appender = Appender::new(db.clone());
    for index in 0..entries {
        pending.push(support::incoming(index));
        if pending.len() as u64 == batch || index + 1 == entries {
            appender.append(1, &pending).await.expect("append");
            pending.clear();
        }
    }
    drop(appender);
    println!(
        "{label}: appended {entries} entries in batches of {batch}: {:.2} s",
        started.elapsed().as_secs_f64()
    );

    let key = BackupKey::from_hex(&BackupKey::generate_hex()).expect("backup key");
    let (signing_key, verifier_key) = generate_key("bench.archive").expect("checkpoint key");
    let signer = CheckpointSigner::new(&signing_key).expect("signer");
    let location =
        BackupLocation::open(&format!("file://{}", folder.display()), &Default::default())
            .expect("backup location");

    reset_peak_rss();
    let cpu = cpu_seconds();
    let started = Instant::now();
    let run = backup_job::run_backup(&db, &location, &key, Some(&signer), 1, &|_, _| {})
        .await
        .expect("backup");
    let backup = started.elapsed();
    let sealed_bytes: u64 = run.manifests.iter().map(|m| m.sealed_bytes).sum();
    println!(
        "{label}: backup: {} segments, {sealed_bytes} sealed bytes, {:.2} s ({:.0} entries/s), CPU {:.2} s, peak RSS {:.0} MiB",
        run.manifests.len(),
        backup.as_secs_f64(),
        entries as f64 / backup.as_secs_f64(),
        cpu_seconds() - cpu,
        peak_rss_mib(),
    );
    db.close().await.ok();

    reset_peak_rss();
    let cpu = cpu_seconds();
    let started = Instant::now();
    let check = backup_job::read_backup(
        &location,
        &key,
        Some(&verifier_key),
        &mut |_, _| {},
        |_| async { Ok(()) },
    )
    .await
    .expect("verify backup");
    let verify = started.elapsed();
    assert_eq!(check.entries, entries);
    println!(
        "{label}: verify backup: {:.2} s ({:.0} entries/s), CPU {:.2} s, peak RSS {:.0} MiB",
        verify.as_secs_f64(),
        entries as f64 / verify.as_secs_f64(),
        cpu_seconds() - cpu,
        peak_rss_mib(),
    );

    reset_peak_rss();
    let cpu = cpu_seconds();
    let started = Instant::now();
    let backup = backup_job::ListedBackup::list(&location)
        .await
        .expect("list the backup");
    let check = backup_job::restore(&target, backup, &key, Some(&verifier_key), &mut |_, _| {})
        .await
        .expect("restore");
    // Closing checkpoints a SQLite write-ahead log into the database file, as `tracectl
    // restore` does, so the time includes a complete file.
    target.close().await.expect("close");
    let restore = started.elapsed();
    assert_eq!(check.entries, entries);
    println!(
        "{label}: restore: {:.2} s ({:.0} entries/s), CPU {:.2} s, peak RSS {:.0} MiB",
        restore.as_secs_f64(),
        entries as f64 / restore.as_secs_f64(),
        cpu_seconds() - cpu,
        peak_rss_mib(),
    );
}
