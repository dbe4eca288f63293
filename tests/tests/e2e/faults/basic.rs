//! Faults that must lose nothing: the broker down during calls, the archive killed in the
//! middle of a batch, and a ledger row edited behind the archive's back.

use std::collections::HashSet;
use std::time::Duration;

use sea_orm::{ConnectionTrait, Statement};
use trace_proto::archive::v1::{GetLedgerStatusRequest, QueryEntriesRequest, VerifyChainRequest};
use trace_proto::common::v1::{Confidentiality, PageRequest};
use trace_proto::document::v1::*;
use trace_tests::nats::NatsServer;

use crate::stack::*;

/// Creates `count` drafts and returns their event ids.
pub async fn create_drafts(address: &str, count: usize, label: &str) -> Vec<String> {
    let mut client = document_client(address).await;
    let mut event_ids = Vec::with_capacity(count);
    for index in 0..count {
        let response = client
            .create_draft(DRAFTER.request(CreateDraftRequest {
                title: format!("{label} {index}"),
                category: "REPORT".to_owned(),
                department: "admin-office".to_owned(),
                confidentiality: Confidentiality::Internal as i32,
                content: format!("content {label} {index}").into_bytes(),
                media_type: "text/plain".to_owned(),
            }))
            .await
            .unwrap_or_else(|status| panic!("call {index} failed: {status}"));
        event_ids.push(response.into_inner().event_id);
    }
    event_ids
}

/// Reads every ledger entry's event id through the query API.
async fn archived_event_ids(address: &str) -> Vec<String> {
    let mut client = archive_client(address).await;
    let mut ids = Vec::new();
    let mut page_token = String::new();
    loop {
        let response = client
            .query_entries(AUDITOR.request(QueryEntriesRequest {
                page: Some(PageRequest {
                    page_size: 500,
                    page_token,
                }),
                ..QueryEntriesRequest::default()
            }))
            .await
            .expect("query entries")
            .into_inner();
        ids.extend(response.entries.into_iter().map(|entry| entry.event_id));
        if response.next_page_token.is_empty() {
            return ids;
        }
        page_token = response.next_page_token;
    }
}

async fn assert_chain_verifies(address: &str, expected_size: u64) {
    let mut client = archive_client(address).await;
    let verification = client
        .verify_chain(AUDITOR.request(VerifyChainRequest::default()))
        .await
        .expect("verify")
        .into_inner();
    assert!(
        verification.ok,
        "chain broken at {}: {}",
        verification.first_broken_sequence, verification.reason
    );
    assert_eq!(verification.checked, expected_size);
}

fn assert_exactly_once(archived: &[String], produced: &[String]) {
    let unique: HashSet<&String> = archived.iter().collect();
    assert_eq!(unique.len(), archived.len(), "an event is stored twice");
    for event_id in produced {
        assert!(
            unique.contains(event_id),
            "event {event_id} returned OK but is not archived"
        );
    }
    assert_eq!(archived.len(), produced.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_outage_during_calls_loses_nothing() {
    let mut nats = NatsServer::start().expect("start nats-server");
    let dir = tempfile::tempdir().unwrap();
    let archive = start_archive(&nats.url(), dir.path()).await;
    let document = start_document(&nats.url(), dir.path()).await;

    let mut produced = create_drafts(&document.address, 5, "before").await;
    nats.kill().expect("kill nats-server");
    produced.extend(create_drafts(&document.address, 20, "during outage").await);
    nats.restart().expect("restart nats-server");
    produced.extend(create_drafts(&document.address, 5, "after").await);

    wait_until_archived(&archive.address, &produced, Duration::from_secs(60)).await;
    let archived = archived_event_ids(&archive.address).await;
    assert_exactly_once(&archived, &produced);
    assert_chain_verifies(&archive.address, produced.len() as u64).await;

    document.stop().await;
    archive.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn archive_killed_mid_batch_stores_each_event_once() {
    let nats = NatsServer::start().expect("start nats-server");
    let dir = tempfile::tempdir().unwrap();
    let mut archive = ArchiveProcess::start(&nats.url(), dir.path(), 20);
    let document = start_document(&nats.url(), dir.path()).await;

    let first = create_drafts(&document.address, 60, "first").await;
    // Kill as soon as the archive has stored part of the backlog, so that a batch is in
    // flight or committed but not yet acknowledged.
    let mut client = archive_client(&archive.address).await;
    loop {
        let status = client
            .get_ledger_status(AUDITOR.request(GetLedgerStatusRequest {}))
            .await;
        if status.is_ok_and(|status| status.into_inner().size > 0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    archive.kill();
    let second = create_drafts(&document.address, 40, "second").await;
    archive.restart();

    let produced: Vec<String> = first.into_iter().chain(second).collect();
    wait_until_archived(&archive.address, &produced, Duration::from_secs(60)).await;
    let archived = archived_event_ids(&archive.address).await;
    assert_exactly_once(&archived, &produced);
    assert_chain_verifies(&archive.address, produced.len() as u64).await;
    assert!(archive.port() > 0);

    document.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edited_ledger_row_fails_tracectl_verify_at_that_row() {
    let nats = NatsServer::start().expect("start nats-server");
    let dir = tempfile::tempdir().unwrap();
    let archive = ArchiveProcess::start(&nats.url(), dir.path(), 100);
    let document = start_document(&nats.url(), dir.path()).await;
    let produced = create_drafts(&document.address, 6, "tamper").await;
    wait_until_archived(&archive.address, &produced, Duration::from_secs(30)).await;

    let tracectl = binary("tracectl");
    let clean = std::process::Command::new(&tracectl)
        .args(["--archive", &archive.address, "verify"])
        .output()
        .expect("run tracectl verify");
    assert!(
        clean.status.success(),
        "{}",
        String::from_utf8_lossy(&clean.stdout)
    );

    let url = format!(
        "sqlite://{}?mode=rw",
        dir.path().join("archive.db").display()
    );
    let db = trace_runtime::db::connect(&url)
        .await
        .expect("open the archive database");
    db.execute_raw(Statement::from_string(
        db.get_database_backend(),
        "UPDATE ledger_entries SET entity_id = 'forged' WHERE sequence = 4",
    ))
    .await
    .expect("edit a ledger row");

    let tampered = std::process::Command::new(&tracectl)
        .args(["--archive", &archive.address, "--json", "verify"])
        .output()
        .expect("run tracectl verify");
    assert_eq!(
        tampered.status.code(),
        Some(1),
        "verify must exit 1 on a broken chain"
    );
    let report: serde_json::Value = serde_json::from_slice(&tampered.stdout).expect("JSON output");
    assert_eq!(report["ok"], false);
    assert_eq!(report["first_broken_sequence"], 4);
    assert_eq!(report["checked"], 3);

    document.stop().await;
}
