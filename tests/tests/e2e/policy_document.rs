//! The company's real policy text, in Chinese, registered as a document: its digest and title
//! must reach the archive byte for byte.

use std::time::Duration;

use sha2::{Digest, Sha256};
use trace_proto::archive::v1::GetTimelineRequest;
use trace_proto::common::v1::Confidentiality;
use trace_proto::document::v1::*;
use trace_tests::nats::NatsServer;

use crate::stack::*;

fn policy_text() -> Vec<u8> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/data/policy-zh-hant.txt"
    );
    std::fs::read(path).unwrap_or_else(|error| panic!("read {path}: {error}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_document_reaches_archive_intact() {
    let nats = NatsServer::start().expect("start nats-server");
    let dir = tempfile::tempdir().unwrap();
    let archive = start_archive(&nats.url(), dir.path()).await;
    let document = start_document(&nats.url(), dir.path()).await;

    let content = policy_text();
    let title = String::from_utf8(content.clone())
        .expect("the policy text is UTF-8")
        .lines()
        .next()
        .expect("the policy text has a first line")
        .trim()
        .to_owned();
    let expected_sha256 = hex::encode(Sha256::digest(&content));

    let mut client = document_client(&document.address).await;
    let drafted = client
        .create_draft(DRAFTER.request(CreateDraftRequest {
            title: title.clone(),
            category: "POLICY".to_owned(),
            department: "admin-office".to_owned(),
            confidentiality: Confidentiality::Internal as i32,
            content: content.clone(),
            media_type: "text/plain; charset=utf-8".to_owned(),
        }))
        .await
        .expect("create draft")
        .into_inner();
    let document_id = drafted.document.as_ref().unwrap().document_id.clone();
    assert_eq!(
        drafted
            .document
            .as_ref()
            .unwrap()
            .content
            .as_ref()
            .unwrap()
            .sha256,
        expected_sha256
    );

    let read = client
        .read_content(DRAFTER.request(ReadContentRequest {
            access_request_id: String::new(),
            document_id: document_id.clone(),
            revision: 0,
        }))
        .await
        .expect("read content")
        .into_inner();
    assert_eq!(
        read.content, content,
        "content read back differs from what was stored"
    );

    wait_until_archived(
        &archive.address,
        &[drafted.event_id.clone(), read.event_id.clone()],
        Duration::from_secs(30),
    )
    .await;
    let mut archive_client = archive_client(&archive.address).await;
    let timeline = archive_client
        .get_timeline(AUDITOR.request(GetTimelineRequest {
            entity_type: "document".to_owned(),
            entity_id: document_id.clone(),
            page: None,
        }))
        .await
        .expect("timeline")
        .into_inner();
    assert_eq!(timeline.entries.len(), 2);
    let drafted_entry = &timeline.entries[0];
    assert_eq!(drafted_entry.action, "drafted");
    assert_eq!(
        drafted_entry.actor.as_ref().unwrap().user_id,
        DRAFTER.user_id
    );
    let payload: serde_json::Value = serde_json::from_str(&drafted_entry.payload_json).unwrap();
    assert_eq!(payload["title"], title.as_str());
    assert_eq!(payload["content"]["sha256"], expected_sha256.as_str());
    assert_eq!(
        payload["content"]["sizeBytes"],
        content.len().to_string().as_str()
    );
    assert_eq!(timeline.entries[1].action, "read");

    document.stop().await;
    archive.stop().await;
}
