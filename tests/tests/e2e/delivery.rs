//! Delivery between a producer's outbox and the archive: each entity's order kept by the
//! archive when the broker loses an event, and receipts lost on the way recovered by asking
//! the archive.

use std::time::{Duration, Instant};

use trace_proto::common::v1::Confidentiality;
use trace_proto::document::v1::*;
use trace_proto::event::v1::GetBacklogRequest;
use trace_proto::event::v1::GetBacklogResponse;
use trace_proto::event::v1::outbox_service_client::OutboxServiceClient;
use trace_tests::nats::NatsServer;

use crate::faults::history::read_ledger;
use crate::stack::*;

const TIMEOUT: Duration = Duration::from_secs(30);

async fn backlog(address: &str) -> GetBacklogResponse {
    let channel = tonic::transport::Channel::from_shared(address.to_owned())
        .expect("service address")
        .connect_lazy();
    OutboxServiceClient::new(channel)
        .get_backlog(AUDITOR.request(GetBacklogRequest {}))
        .await
        .expect("outbox backlog")
        .into_inner()
}

/// Opens the trace stream on the broker at `nats_url`.
async fn trace_stream(nats_url: &str) -> async_nats::jetstream::stream::Stream {
    let client = async_nats::connect(nats_url)
        .await
        .expect("connect to NATS");
    async_nats::jetstream::new(client)
        .get_stream("TRACE")
        .await
        .expect("trace stream")
}

/// Number of messages the trace stream holds.
async fn stream_messages(nats_url: &str) -> u64 {
    let mut stream = trace_stream(nats_url).await;
    stream.info().await.expect("stream info").state.messages
}

async fn create_draft(client: &mut DocumentServiceClient, title: &str) -> (String, String) {
    let response = client
        .create_draft(DRAFTER.request(CreateDraftRequest {
            title: title.to_owned(),
            category: "MEMO".to_owned(),
            department: "admin-office".to_owned(),
            confidentiality: Confidentiality::Internal as i32,
            content: b"first text".to_vec(),
            media_type: "text/plain".to_owned(),
        }))
        .await
        .expect("create draft")
        .into_inner();
    let document_id = response.document.expect("document").document_id;
    (document_id, response.event_id)
}

async fn revise(client: &mut DocumentServiceClient, document_id: &str, text: &str) -> String {
    client
        .revise_draft(DRAFTER.request(ReviseDraftRequest {
            document_id: document_id.to_owned(),
            content: text.as_bytes().to_vec(),
            media_type: "text/plain".to_owned(),
            change_summary: format!("now reads {text}"),
        }))
        .await
        .expect("revise draft")
        .into_inner()
        .event_id
}

type DocumentServiceClient =
    document_service_client::DocumentServiceClient<tonic::transport::Channel>;

/// Waits until the trace stream contains `count` messages.
async fn wait_for_stream_messages(nats_url: &str, count: u64) {
    let deadline = Instant::now() + TIMEOUT;
    while stream_messages(nats_url).await < count {
        assert!(
            Instant::now() < deadline,
            "fewer than {count} events were published"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Deletes the first message of the trace stream, as a broker that lost it would.
async fn lose_first_message(nats_url: &str) {
    let deleted = trace_stream(nats_url)
        .await
        .delete_message(1)
        .await
        .expect("delete message 1");
    assert!(deleted, "message 1 was not in the stream");
}

/// Returns the previous event that the message at `sequence` of the trace stream names.
async fn previous_event_header(nats_url: &str, sequence: u64) -> Option<String> {
    let message = trace_stream(nats_url)
        .await
        .get_raw_message(sequence)
        .await
        .expect("stream message");
    message
        .headers
        .get(trace_runtime::nats::PREVIOUS_EVENT_HEADER)
        .map(|value| value.as_str().to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entity_order_survives_lost_event() {
    let nats = NatsServer::start().expect("start nats-server");
    let dir = tempfile::tempdir().unwrap();
    let document = start_document(&nats.url(), dir.path()).await;
    let mut client = document_client(&document.address).await;

    let (first, created) = create_draft(&mut client, "Minutes template").await;
    let revised = revise(&mut client, &first, "second text").await;
    let revised_again = revise(&mut client, &first, "third text").await;
    let (second, other_created) = create_draft(&mut client, "Leave form").await;

    // No archive runs, so no receipt arrives, yet the relay publishes every event at once.
    // Each revision names the event of its document that it must follow.
    wait_for_stream_messages(&nats.url(), 4).await;
    let mut headers = Vec::new();
    for sequence in 1..=4 {
        headers.push(previous_event_header(&nats.url(), sequence).await);
    }
    assert_eq!(
        headers,
        vec![None, Some(created.clone()), Some(revised.clone()), None],
        "previous event named by each message, in stream order"
    );

    // The broker loses the first draft's first event. Its revisions, still in the stream,
    // must wait in the archive until the relay publishes that event again.
    lose_first_message(&nats.url()).await;

    let archive = start_archive(&nats.url(), dir.path()).await;
    let events = [
        created.clone(),
        revised.clone(),
        revised_again.clone(),
        other_created.clone(),
    ];
    wait_until_archived(&archive.address, &events, TIMEOUT).await;

    let ledger = read_ledger(&archive.address).await;
    let of_first: Vec<(&str, u64)> = ledger
        .iter()
        .filter(|entry| entry.entity_id == first)
        .map(|entry| (entry.event_id.as_str(), entry.entity_version))
        .collect();
    assert_eq!(
        of_first,
        vec![
            (created.as_str(), 1),
            (revised.as_str(), 2),
            (revised_again.as_str(), 3)
        ],
        "the first document's events in ledger order"
    );
    assert_eq!(
        ledger
            .iter()
            .filter(|entry| entry.entity_id == second)
            .count(),
        1
    );
    let deadline = Instant::now() + TIMEOUT;
    while backlog(&document.address).await.unarchived > 0 {
        assert!(
            Instant::now() < deadline,
            "receipts did not reach the outbox"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    document.stop().await;
    archive.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_recovers_lost_receipt() {
    let nats = NatsServer::start().expect("start nats-server");
    let dir = tempfile::tempdir().unwrap();
    let document = start_document(&nats.url(), dir.path()).await;
    let mut client = document_client(&document.address).await;
    let (_, created) = create_draft(&mut client, "Visitor log").await;
    let deadline = Instant::now() + TIMEOUT;
    while stream_messages(&nats.url()).await < 1 {
        assert!(Instant::now() < deadline, "the draft was not published");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    document.stop().await;

    // The archive appends the event while the document service is stopped, so no subscriber
    // receives its receipt.
    let archive = start_archive(&nats.url(), dir.path()).await;
    wait_until_archived(&archive.address, std::slice::from_ref(&created), TIMEOUT).await;

    // The receipt query, sent once the receipt is overdue, marks the row archived without
    // publishing it again.
    let document = start_document(&nats.url(), dir.path()).await;
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let backlog = backlog(&document.address).await;
        if backlog.unarchived == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the archived event still waits for a receipt: {backlog:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(stream_messages(&nats.url()).await, 1);
    let ledger = read_ledger(&archive.address).await;
    assert_eq!(
        ledger
            .iter()
            .filter(|entry| entry.event_id == created)
            .count(),
        1
    );
    document.stop().await;
    archive.stop().await;
}

/// A revision whose first event the broker lost, while the document service is down and
/// cannot publish it again, waits `predecessor_wait_secs` in the archive and is then
/// appended on its own. The lost event follows once the service runs again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_event_appended_after_wait() {
    let nats = NatsServer::start().expect("start nats-server");
    let dir = tempfile::tempdir().unwrap();
    let document = start_document(&nats.url(), dir.path()).await;
    let mut client = document_client(&document.address).await;
    let (first, created) = create_draft(&mut client, "Key register").await;
    let revised = revise(&mut client, &first, "second text").await;
    wait_for_stream_messages(&nats.url(), 2).await;
    document.stop().await;
    lose_first_message(&nats.url()).await;

    let archive = start_archive_with(&nats.url(), dir.path(), |config| {
        config.archive.predecessor_wait_secs = 2;
    })
    .await;
    wait_until_archived(&archive.address, std::slice::from_ref(&revised), TIMEOUT).await;
    let ledger = read_ledger(&archive.address).await;
    let stored: Vec<&str> = ledger.iter().map(|entry| entry.event_id.as_str()).collect();
    assert_eq!(
        stored,
        vec![revised.as_str()],
        "only the revision is archived"
    );

    let document = start_document(&nats.url(), dir.path()).await;
    wait_until_archived(&archive.address, std::slice::from_ref(&created), TIMEOUT).await;
    let ledger = read_ledger(&archive.address).await;
    let versions: Vec<u64> = ledger.iter().map(|entry| entry.entity_version).collect();
    assert_eq!(
        versions,
        vec![2, 1],
        "the revision stays ahead of the late first event"
    );
    document.stop().await;
    archive.stop().await;
}
