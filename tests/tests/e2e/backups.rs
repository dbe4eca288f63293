//! Backup and restore through `tracectl`: an incremental backup restored into an empty
//! database gives the same Merkle root, and a tampered or missing segment is refused by name.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use trace_proto::archive::v1::{GetTreeHeadRequest, RunBackupRequest};
use trace_tests::moto::MotoServer;
use trace_tests::nats::NatsServer;

use crate::faults::create_drafts;
use crate::stack::*;

fn tracectl(args: &[&str]) -> (Option<i32>, serde_json::Value) {
    tracectl_with_env(args, &[])
}

fn tracectl_with_env(
    args: &[&str],
    environment: &[(String, String)],
) -> (Option<i32>, serde_json::Value) {
    let output = Command::new(binary("tracectl"))
        .args(args)
        .envs(environment.iter().map(|(name, value)| (name, value)))
        .output()
        .expect("run tracectl");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let value =
        serde_json::from_str(&stdout).unwrap_or_else(|_| serde_json::json!({ "raw": stdout }));
    (output.status.code(), value)
}

fn segment_files(folder: &Path) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(folder.join("segments"))
        .expect("segments folder")
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "seg"))
        .collect();
    files.sort();
    files
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_restores_to_the_same_root_and_refuses_tampering() {
    let nats = NatsServer::start().expect("start nats-server");
    let dir = tempfile::tempdir().unwrap();
    let backup_folder = dir.path().join("offsite");
    let key_file = dir.path().join("backup.key");
    std::fs::write(&key_file, trace_archive::backup::BackupKey::generate_hex()).unwrap();
    let backup_url = format!("file://{}", backup_folder.display());
    let (url, key) = (backup_url.clone(), key_file.display().to_string());
    let archive = start_archive_with(&nats.url(), dir.path(), move |config| {
        config.archive.backup_url = Some(url);
        config.archive.backup_key_file = Some(key);
        config.archive.backup_interval_secs = 0;
    })
    .await;
    let document = start_document(&nats.url(), dir.path()).await;
    let mut client = archive_client(&archive.address).await;

    let first = create_drafts(&document.address, 8, "first").await;
    wait_until_archived(&archive.address, &first, Duration::from_secs(30)).await;
    let run = client
        .run_backup(AUDITOR.request(RunBackupRequest {}))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(run.from_sequence, 1);
    assert_eq!(run.to_sequence, 8);
    assert!(
        !run.event_id.is_empty(),
        "the backup is itself a trace event"
    );

    let second = create_drafts(&document.address, 4, "second").await;
    let mut expected: Vec<String> = second.clone();
    expected.push(run.event_id.clone());
    wait_until_archived(&archive.address, &expected, Duration::from_secs(30)).await;
    let incremental = client
        .run_backup(AUDITOR.request(RunBackupRequest {}))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        incremental.from_sequence, 9,
        "the second run starts where the first ended"
    );
    assert_eq!(incremental.to_sequence, 13);
    let head = client
        .get_tree_head(AUDITOR.request(GetTreeHeadRequest { tree_size: 13 }))
        .await
        .unwrap()
        .into_inner();
    let expected_root = hex::encode(&head.root_hash);
    document.stop().await;
    archive.stop().await;

    let key = key_file.display().to_string();
    let (code, report) = tracectl(&[
        "--json",
        "verify-backup",
        "--from",
        &backup_url,
        "--key-file",
        &key,
    ]);
    assert_eq!(code, Some(0), "{report}");
    assert_eq!(report["entries"], 13);

    let restored_db = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("restored.db").display()
    );
    let (code, report) = tracectl(&[
        "--json",
        "restore",
        "--from",
        &backup_url,
        "--key-file",
        &key,
        "--database-url",
        &restored_db,
    ]);
    assert_eq!(code, Some(0), "{report}");
    assert_eq!(
        report["tree_root"],
        expected_root.as_str(),
        "restored root differs"
    );
    let db = trace_runtime::db::connect(&restored_db).await.unwrap();
    let verification = trace_archive::verify::verify_range(&db, 1, 0)
        .await
        .unwrap();
    assert!(verification.ok(), "{verification:?}");
    assert_eq!(verification.checked, 13);

    // Restoring over a ledger that already holds entries is refused.
    let (code, report) = tracectl(&[
        "--json",
        "restore",
        "--from",
        &backup_url,
        "--key-file",
        &key,
        "--database-url",
        &restored_db,
    ]);
    assert_eq!(code, Some(1), "{report}");
    assert!(
        report["error"]
            .as_str()
            .unwrap()
            .contains("already holds 13 entries"),
        "{report}"
    );

    // A mistyped location is no backup, and the restore creates no database for it.
    let missing_url = format!("file://{}", dir.path().join("offsit").display());
    let untouched = dir.path().join("untouched.db");
    let (code, report) = tracectl(&[
        "--json",
        "restore",
        "--from",
        &missing_url,
        "--key-file",
        &key,
        "--database-url",
        &format!("sqlite://{}?mode=rwc", untouched.display()),
    ]);
    assert_eq!(code, Some(1), "{report}");
    assert!(
        report["error"]
            .as_str()
            .unwrap()
            .contains(&format!("no backup found at {missing_url}")),
        "{report}"
    );
    assert!(!untouched.exists());

    let segments = segment_files(&backup_folder);
    assert_eq!(segments.len(), 2);
    let second_segment = segments[1].clone();
    let mut bytes = std::fs::read(&second_segment).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(&second_segment, bytes).unwrap();
    let (code, report) = tracectl(&[
        "--json",
        "verify-backup",
        "--from",
        &backup_url,
        "--key-file",
        &key,
    ]);
    assert_eq!(code, Some(1), "{report}");
    let error = report["error"].as_str().unwrap();
    let name = second_segment.file_name().unwrap().to_str().unwrap();
    assert!(
        error.contains(name),
        "the error names the tampered segment: {error}"
    );

    let fresh_db = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("fresh.db").display()
    );
    let (code, _) = tracectl(&[
        "--json",
        "restore",
        "--from",
        &backup_url,
        "--key-file",
        &key,
        "--database-url",
        &fresh_db,
    ]);
    assert_eq!(code, Some(1), "a tampered backup must not restore");

    std::fs::remove_file(&segments[0]).unwrap();
    let (code, report) = tracectl(&[
        "--json",
        "verify-backup",
        "--from",
        &backup_url,
        "--key-file",
        &key,
    ]);
    assert_eq!(code, Some(1), "{report}");
    let error = report["error"].as_str().unwrap();
    let first_name = segments[0].file_name().unwrap().to_str().unwrap();
    assert!(
        error.contains(first_name) && error.contains("missing"),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_backup_verifies_and_restores_to_the_same_root() {
    let Some(moto) = MotoServer::start().expect("start moto_server") else {
        return;
    };
    moto.create_bucket("trace-backups").expect("create bucket");
    let nats = NatsServer::start().expect("start nats-server");
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("backup.key");
    std::fs::write(&key_file, trace_archive::backup::BackupKey::generate_hex()).unwrap();
    let backup_url = "s3://trace-backups/archive-a";
    let key = key_file.display().to_string();
    let (archive_key, options) = (key.clone(), moto.store_options());
    let archive = start_archive_with(&nats.url(), dir.path(), move |config| {
        config.archive.backup_url = Some(backup_url.to_owned());
        config.archive.backup_options = options.into_iter().collect();
        config.archive.backup_key_file = Some(archive_key);
        config.archive.backup_interval_secs = 0;
    })
    .await;
    let document = start_document(&nats.url(), dir.path()).await;
    let mut client = archive_client(&archive.address).await;

    let drafts = create_drafts(&document.address, 6, "cloud").await;
    wait_until_archived(&archive.address, &drafts, Duration::from_secs(30)).await;
    let run = client
        .run_backup(AUDITOR.request(RunBackupRequest {}))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(run.location, backup_url);
    assert_eq!(run.from_sequence, 1);
    assert_eq!(run.to_sequence, 6);
    let head = client
        .get_tree_head(AUDITOR.request(GetTreeHeadRequest { tree_size: 6 }))
        .await
        .unwrap()
        .into_inner();
    let expected_root = hex::encode(&head.root_hash);
    document.stop().await;
    archive.stop().await;

    // Everything from the standard AWS environment variables.
    let environment: Vec<(String, String)> = moto
        .store_options()
        .into_iter()
        .map(|(name, value)| (name.to_ascii_uppercase(), value))
        .collect();
    let (code, report) = tracectl_with_env(
        &[
            "--json",
            "verify-backup",
            "--from",
            backup_url,
            "--key-file",
            &key,
        ],
        &environment,
    );
    assert_eq!(code, Some(0), "{report}");
    assert_eq!(report["entries"], 6);
    assert_eq!(report["tree_root"], expected_root.as_str());

    // Credentials from the environment, the endpoint from --store-option flags.
    let credentials: Vec<(String, String)> = environment
        .iter()
        .filter(|(name, _)| name.ends_with("_KEY_ID") || name.ends_with("_ACCESS_KEY"))
        .cloned()
        .collect();
    let endpoint = format!("aws_endpoint={}", moto.endpoint());
    let restored_db = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("restored.db").display()
    );
    let (code, report) = tracectl_with_env(
        &[
            "--json",
            "restore",
            "--from",
            backup_url,
            "--store-option",
            &endpoint,
            "--store-option",
            "aws_allow_http=true",
            "--store-option",
            "aws_region=us-east-1",
            "--key-file",
            &key,
            "--database-url",
            &restored_db,
        ],
        &credentials,
    );
    assert_eq!(code, Some(0), "{report}");
    assert_eq!(
        report["tree_root"],
        expected_root.as_str(),
        "restored root differs"
    );
    let db = trace_runtime::db::connect(&restored_db).await.unwrap();
    let verification = trace_archive::verify::verify_range(&db, 1, 0)
        .await
        .unwrap();
    assert!(verification.ok(), "{verification:?}");
    assert_eq!(verification.checked, 6);

    let (code, report) = tracectl_with_env(
        &[
            "--json",
            "verify-backup",
            "--from",
            "s3://missing-bucket/x",
            "--key-file",
            &key,
        ],
        &environment,
    );
    assert_eq!(code, Some(1), "a missing bucket fails: {report}");
}
