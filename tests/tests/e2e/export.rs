//! Evidence packages: `tracectl export` writes records, CSV, proofs and a checkpoint that
//! `tracectl verify-export` checks offline; an altered record is caught even when the
//! package's own digests are recomputed to match.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use sha2::{Digest, Sha256};
use trace_proto::common::v1::Confidentiality;
use trace_proto::document::v1::CreateDraftRequest;
use trace_tests::nats::NatsServer;

use crate::stack::*;

fn tracectl(args: &[&str]) -> (Option<i32>, String) {
    let output = Command::new(binary("tracectl"))
        .args(args)
        .output()
        .expect("run tracectl");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}

/// Rewrites the digest of `name` in the package manifest, as a forger would.
fn refresh_digest(folder: &Path, name: &str) {
    let path = folder.join("manifest.json");
    let mut manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let digest = hex::encode(Sha256::digest(std::fs::read(folder.join(name)).unwrap()));
    for file in manifest["files"].as_array_mut().unwrap() {
        if file[0] == name {
            file[1] = serde_json::Value::String(digest.clone());
        }
    }
    std::fs::write(&path, serde_json::to_vec_pretty(&manifest).unwrap()).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evidence_package_verifies_offline_and_catches_alteration() {
    let nats = NatsServer::start().expect("start nats-server");
    let dir = tempfile::tempdir().unwrap();
    let (signing_key, verifier_key) =
        trace_archive::checkpoint::generate_key("trace.test/archive").unwrap();
    let key_file = dir.path().join("checkpoint.key");
    std::fs::write(&key_file, signing_key).unwrap();
    let key_path = key_file.display().to_string();
    let archive = start_archive_with(&nats.url(), dir.path(), move |config| {
        config.archive.checkpoint_signing_key_file = Some(key_path);
    })
    .await;
    let document = start_document(&nats.url(), dir.path()).await;

    let mut client = document_client(&document.address).await;
    let drafted = client
        .create_draft(DRAFTER.request(CreateDraftRequest {
            title: "=HYPERLINK(\"http://example.invalid\")".to_owned(),
            category: "REPORT".to_owned(),
            department: "admin-office".to_owned(),
            confidentiality: Confidentiality::Internal as i32,
            content: b"quarterly figures".to_vec(),
            media_type: "text/plain".to_owned(),
        }))
        .await
        .unwrap()
        .into_inner();
    let document_id = drafted.document.unwrap().document_id;
    let mut event_ids = vec![drafted.event_id];
    event_ids.extend(crate::faults::create_drafts(&document.address, 3, "other").await);
    wait_until_archived(&archive.address, &event_ids, Duration::from_secs(30)).await;

    let package = dir.path().join("package");
    let out = package.display().to_string();
    let (code, output) = tracectl(&[
        "--archive",
        &archive.address,
        "export",
        "--entity-type",
        "document",
        "--entity-id",
        &document_id,
        "--out",
        &out,
    ]);
    assert!(code == Some(0), "export exited with {code:?}: {output:?}");
    assert!(output.contains("exported 1 records"), "{output}");
    let csv = std::fs::read_to_string(package.join("records.csv")).unwrap();
    assert!(
        !csv.contains(",=HYPERLINK"),
        "a formula cell reached the CSV unneutralised: {csv}"
    );
    let jsonl = std::fs::read_to_string(package.join("records.jsonl")).unwrap();
    assert!(jsonl.contains("=HYPERLINK"), "JSON Lines keep the raw text");

    let (code, output) = tracectl(&[
        "--json",
        "verify-export",
        &out,
        "--verifier-key",
        &verifier_key,
    ]);
    assert_eq!(code, Some(0), "{output}");

    let altered = jsonl.replace("zhang.min", "someone.else");
    std::fs::write(package.join("records.jsonl"), altered).unwrap();
    let (code, output) = tracectl(&[
        "--json",
        "verify-export",
        &out,
        "--verifier-key",
        &verifier_key,
    ]);
    assert_eq!(code, Some(1), "{output}");
    assert!(output.contains("records.jsonl does not match"), "{output}");

    refresh_digest(&package, "records.jsonl");
    let (code, output) = tracectl(&[
        "--json",
        "verify-export",
        &out,
        "--verifier-key",
        &verifier_key,
    ]);
    assert_eq!(code, Some(1), "{output}");
    assert!(output.contains("was altered"), "{output}");

    document.stop().await;
    archive.stop().await;
}
