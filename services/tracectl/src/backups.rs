//! Backup commands: `backup` requests a run from the archive, and `verify-backup` and `restore` read
//! a backup location offline, with no server running.

use std::collections::BTreeMap;

use anyhow::Context;
use trace_archive::backup::BackupKey;
use trace_archive::backup_job::{self, BackupLocation};
use trace_archive::migration::Migrator;
use trace_proto::archive::v1::RunBackupRequest;

use crate::Identity;
use crate::archive::connect;
use crate::progress::Progress;

/// Asks the archive to back up every entry not yet in its backup location.
pub async fn backup(address: &str, identity: &Identity, json: bool) -> anyhow::Result<bool> {
    let mut client = connect(address).await?;
    let call = client.run_backup(identity.request(RunBackupRequest {}));
    let response = crate::progress::archive_job(address, identity, "backup", call)
        .await?
        .into_inner();
    if json {
        out!(
            "{}",
            serde_json::json!({
                "segments": response.segments,
                "from_sequence": response.from_sequence,
                "to_sequence": response.to_sequence,
                "location": response.location,
                "event_id": response.event_id,
            })
        );
    } else if response.segments.is_empty() {
        out!("backup at {} is already current", response.location);
    } else {
        out!(
            "backed up entries {}..={} to {} in {} segment(s); recorded as event {}",
            response.from_sequence,
            response.to_sequence,
            response.location,
            response.segments.len(),
            response.event_id
        );
    }
    Ok(true)
}

/// Prints a new random backup key as 64 hex digits.
pub fn keygen() -> anyhow::Result<bool> {
    out!("{}", BackupKey::generate_hex());
    Ok(true)
}

fn print_check(check: &backup_job::BackupCheck, verb: &str, json: bool) {
    if json {
        out!(
            "{}",
            serde_json::json!({
                "ok": true,
                "segments": check.segments,
                "entries": check.entries,
                "chain_head": check.chain_head,
                "tree_root": check.tree_root,
            })
        );
    } else {
        out!(
            "{verb} {} entries in {} segment(s): chain head {}, tree root {}",
            check.entries,
            check.segments,
            check.chain_head,
            check.tree_root
        );
    }
}

fn report_failure(operation: &str, error: &dyn std::fmt::Display, json: bool) -> bool {
    if json {
        out!(
            "{}",
            serde_json::json!({ "ok": false, "error": error.to_string() })
        );
    } else {
        out!("{operation} FAILED: {error}");
    }
    false
}

/// Parses `--store-option KEY=VALUE` flags into `object_store` builder options.
pub fn store_options(flags: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    flags
        .iter()
        .map(|flag| {
            // The text is not echoed, because a mistyped flag may be a credential.
            let (key, value) = flag
                .split_once('=')
                .context("a --store-option flag has no '='; write it as KEY=VALUE")?;
            Ok((key.to_owned(), value.to_owned()))
        })
        .collect()
}

/// Verifies a backup location without a server.
pub async fn verify_backup(
    from: &str,
    options: &BTreeMap<String, String>,
    key_file: &str,
    verifier_key: Option<&str>,
    json: bool,
) -> anyhow::Result<bool> {
    let location = BackupLocation::open(from, options)?;
    let key = BackupKey::from_file(key_file)?;
    let mut progress = Progress::counted("verify-backup", "entries");
    let mut report = |done, total| progress.update(done, total);
    let result = backup_job::read_backup(&location, &key, verifier_key, &mut report, |_| async {
        Ok(())
    })
    .await;
    progress.finish();
    match result {
        Ok(check) => {
            print_check(&check, "verified", json);
            Ok(true)
        }
        Err(error) => Ok(report_failure("backup check", &error, json)),
    }
}

/// Backup location and target database of `restore`.
#[derive(Debug)]
pub struct RestoreTarget<'a> {
    pub from: &'a str,
    pub options: &'a BTreeMap<String, String>,
    pub key_file: &'a str,
    pub database_url: &'a str,
}

/// Rebuilds an empty archive database from a backup location.
pub async fn restore(
    target: RestoreTarget<'_>,
    verifier_key: Option<&str>,
    json: bool,
) -> anyhow::Result<bool> {
    let location = BackupLocation::open(target.from, target.options)?;
    let key = BackupKey::from_file(target.key_file)?;
    // Listed before the target database is created, so that a mistyped location leaves
    // nothing behind.
    let backup = match backup_job::ListedBackup::list(&location).await {
        Ok(backup) => backup,
        Err(error) => return Ok(report_failure("restore", &error, json)),
    };
    let db = trace_runtime::db::connect_and_migrate::<Migrator>(target.database_url).await?;
    let mut progress = Progress::counted("restore", "entries");
    let mut report = |done, total| progress.update(done, total);
    let result = backup_job::restore(&db, backup, &key, verifier_key, &mut report).await;
    progress.finish();
    // Closing the pool checkpoints SQLite's write-ahead log into the database file, so the
    // file is complete on its own when an operator moves or copies it afterwards.
    db.close().await?;
    match result {
        Ok(check) => {
            print_check(&check, "restored", json);
            Ok(true)
        }
        Err(error) => Ok(report_failure("restore", &error, json)),
    }
}
