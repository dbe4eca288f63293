//! Signed checkpoints against a live archive: `tracectl verify --checkpoint` passes while the
//! ledger only grows, and fails once history before the checkpoint was rewritten, even when
//! the rewritten chain is internally consistent.

use std::path::Path;
use std::process::Command;

use bytes::Bytes;
use prost::Message;
use trace_archive::checkpoint::{CheckpointSigner, generate_key};
use trace_archive::ledger::{Incoming, append_batch};
use trace_archive::migration::Migrator;
use trace_proto::event::v1::{Actor, Envelope};
use trace_tests::nats::NatsServer;

use crate::stack::*;

fn envelope(entity_id: &str, version: u64) -> Envelope {
    Envelope {
        event_id: uuid::Uuid::now_v7().to_string(),
        subject: "trace.document.document.read".to_owned(),
        occurred_at: Some(prost_types::Timestamp {
            seconds: 1_790_000_000,
            nanos: 0,
        }),
        actor: Some(Actor {
            user_id: "zhang.min".to_owned(),
            ..Actor::default()
        }),
        source_service: "document".to_owned(),
        entity_type: "document".to_owned(),
        entity_id: entity_id.to_owned(),
        entity_version: version,
        action: "read".to_owned(),
        confidentiality: 2,
        ..Envelope::default()
    }
}

/// Appends the envelopes to the archive database in `dir` and returns the tree size.
async fn append(dir: &Path, envelopes: &[Envelope]) -> u64 {
    let url = format!("sqlite://{}?mode=rwc", dir.join("archive.db").display());
    let db = trace_runtime::db::connect_and_migrate::<Migrator>(&url)
        .await
        .unwrap();
    let batch: Vec<Incoming> = envelopes
        .iter()
        .enumerate()
        .map(|(index, envelope)| Incoming {
            stream_sequence: index as u64 + 1,
            subject: envelope.subject.clone(),
            raw: Bytes::from(envelope.encode_to_vec()),
            previous_event_id: None,
        })
        .collect();
    append_batch(&db, 1, &batch).await.unwrap();
    let size = trace_archive::proofs::current_size(&db).await.unwrap();
    db.close().await.unwrap();
    size
}

async fn signed_note(dir: &Path, signer: &CheckpointSigner, size: u64) -> String {
    let url = format!("sqlite://{}?mode=rw", dir.join("archive.db").display());
    let db = trace_runtime::db::connect(&url).await.unwrap();
    let root = trace_archive::merkle::root(&db, size).await.unwrap();
    db.close().await.unwrap();
    signer.sign(size, root).unwrap()
}

fn tracectl_verify(address: &str, checkpoint: &Path, verifier_key: &str) -> (Option<i32>, String) {
    let output = Command::new(binary("tracectl"))
        .args(["--archive", address, "verify", "--checkpoint"])
        .arg(checkpoint)
        .args(["--verifier-key", verifier_key])
        .output()
        .expect("run tracectl");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}

fn remove_database(dir: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(dir.join(format!("archive.db{suffix}")));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkpoint_check_fails_after_history_rewrite() {
    let nats = NatsServer::start().expect("start nats-server");
    let dir = tempfile::tempdir().unwrap();
    let (signing_key, verifier_key) = generate_key("trace.test/archive").unwrap();
    let signer = CheckpointSigner::new(&signing_key).unwrap();

    let history: Vec<Envelope> = (1..=5).map(|version| envelope("doc-1", version)).collect();
    let size = append(dir.path(), &history).await;
    assert_eq!(size, 5);
    let checkpoint_file = dir.path().join("checkpoint.txt");
    std::fs::write(
        &checkpoint_file,
        signed_note(dir.path(), &signer, size).await,
    )
    .unwrap();
    let later: Vec<Envelope> = (6..=8).map(|version| envelope("doc-1", version)).collect();
    append(dir.path(), &later).await;

    let archive = start_archive(&nats.url(), dir.path()).await;
    let (code, output) = tracectl_verify(&archive.address, &checkpoint_file, &verifier_key);
    assert_eq!(code, Some(0), "{output}");
    assert!(output.contains("extends the checkpoint"), "{output}");
    archive.stop().await;

    // Rewrite the past: the same events with the second one altered, appended into a fresh
    // database, so that the new chain verifies on its own.
    remove_database(dir.path());
    let mut rewritten = history.clone();
    rewritten[1].actor = Some(Actor {
        user_id: "someone.else".to_owned(),
        ..Actor::default()
    });
    rewritten.extend(later);
    append(dir.path(), &rewritten).await;

    let archive = start_archive(&nats.url(), dir.path()).await;
    let (code, output) = tracectl_verify(&archive.address, &checkpoint_file, &verifier_key);
    assert_eq!(code, Some(1), "{output}");
    assert!(
        output.contains("verified: 8 entries"),
        "the rewritten chain itself verifies: {output}"
    );
    assert!(output.contains("history was rewritten"), "{output}");
    archive.stop().await;
}
