//! Legal holds by query through `tracectl` and the archive: a query hold keeps the expired
//! records it matches out of a disposition, while expired records it does not match go.

use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;

use chrono::Utc;
use trace_archive::config::{RetentionSchedule, RetentionTrigger};
use trace_proto::archive::v1::{
    GetEntryRequest, HoldQuery, HoldScope, PlaceHoldRequest, VerifyChainRequest, get_entry_request,
};
use trace_proto::common::v1::Confidentiality;
use trace_proto::document::v1::CreateDraftRequest;
use trace_runtime::clock::ManualClock;
use trace_tests::nats::NatsServer;

use crate::stack::*;

const ACCOUNTANT: Person = Person {
    user_id: "wang.fang",
    department: "finance",
    role: "employee",
};

/// Runs tracectl against `archive` as `user` with the audit role; returns the exit code and
/// stdout.
fn tracectl(archive: &str, user: &str, args: &[&str]) -> (Option<i32>, String) {
    let output = Command::new(binary("tracectl"))
        .args(["--archive", archive, "--user", user])
        .args(["--department", "audit", "--roles", "audit"])
        .args(args)
        .output()
        .expect("run tracectl");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.code().is_some(),
        "tracectl was killed: {stderr}"
    );
    (output.status.code(), format!("{stdout}{stderr}"))
}

fn json(output: &str) -> serde_json::Value {
    let line = output
        .lines()
        .find(|line| line.starts_with('{'))
        .unwrap_or_else(|| panic!("no JSON in tracectl output: {output}"));
    serde_json::from_str(line).expect("tracectl JSON")
}

async fn create_drafts_as(address: &str, person: Person, count: usize) -> Vec<String> {
    let mut client = document_client(address).await;
    let mut event_ids = Vec::with_capacity(count);
    for index in 0..count {
        let response = client
            .create_draft(person.request(CreateDraftRequest {
                title: format!("{} draft {index}", person.user_id),
                category: "REPORT".to_owned(),
                department: person.department.to_owned(),
                confidentiality: Confidentiality::Internal as i32,
                content: format!("content {index}").into_bytes(),
                media_type: "text/plain".to_owned(),
            }))
            .await
            .unwrap_or_else(|status| panic!("draft {index} failed: {status}"));
        event_ids.push(response.into_inner().event_id);
    }
    event_ids
}

fn event_ids(items: &serde_json::Value) -> BTreeSet<String> {
    items
        .as_array()
        .expect("a JSON array")
        .iter()
        .map(|item| item["event_id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_hold_keeps_matching_expired_records() {
    let nats = NatsServer::start().expect("start nats-server");
    let dir = tempfile::tempdir().unwrap();
    let started = Utc::now();
    let clock = ManualClock::new(started);
    let archive = start_archive_with_clock(&nats.url(), dir.path(), clock.clone(), |config| {
        config.archive.retention = vec![RetentionSchedule {
            name: "documents-1y".to_owned(),
            entity_type: "document".to_owned(),
            confidentiality: None,
            period_months: 12,
            trigger: RetentionTrigger::Creation,
            trigger_actions: Vec::new(),
        }];
    })
    .await;
    let document = start_document(&nats.url(), dir.path()).await;

    let finance = create_drafts_as(&document.address, ACCOUNTANT, 3).await;
    let office = create_drafts_as(&document.address, DRAFTER, 2).await;
    let all: Vec<String> = finance.iter().chain(&office).cloned().collect();
    wait_until_archived(&archive.address, &all, Duration::from_secs(30)).await;
    document.stop().await;

    // The archive's clock moves past the one-year schedule and the floor.
    clock.advance(chrono::Duration::days(800));

    let mut client = archive_client(&archive.address).await;
    let empty_query = PlaceHoldRequest {
        scope: Some(HoldScope {
            query: Some(HoldQuery::default()),
            ..HoldScope::default()
        }),
        reason: "case 2026-31".to_owned(),
    };
    let status = client
        .place_hold(AUDITOR.request(empty_query))
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(status.message().contains("scope.query"), "{status:?}");

    let bad_department = PlaceHoldRequest {
        scope: Some(HoldScope {
            query: Some(HoldQuery {
                department: "Finance Dept".to_owned(),
                ..HoldQuery::default()
            }),
            ..HoldScope::default()
        }),
        reason: "case 2026-31".to_owned(),
    };
    let status = client
        .place_hold(AUDITOR.request(bad_department))
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(
        status.message().contains("scope.query.department"),
        "{status:?}"
    );

    let recorded_from = (started - chrono::Duration::hours(1)).to_rfc3339();
    let recorded_to = (started + chrono::Duration::hours(1)).to_rfc3339();
    let (code, output) = tracectl(
        &archive.address,
        "li.na",
        &[
            "--json",
            "hold",
            "place",
            "--actor-department",
            "finance",
            "--subject",
            "trace.document.>",
            "--recorded-from",
            &recorded_from,
            "--recorded-to",
            &recorded_to,
            "--reason",
            "case 2026-31",
        ],
    );
    assert_eq!(code, Some(0), "{output}");
    let hold_id = json(&output)["hold_id"].as_str().unwrap().to_owned();

    let (code, output) = tracectl(&archive.address, "li.na", &["disposition", "--dry-run"]);
    assert_eq!(code, Some(0), "{output}");
    assert_eq!(
        output.matches(&format!("held by {hold_id}")).count(),
        finance.len(),
        "the dry run names the hold of each finance draft: {output}"
    );

    let (code, output) = tracectl(
        &archive.address,
        "li.na",
        &["--json", "disposition", "--dry-run"],
    );
    assert_eq!(code, Some(0), "{output}");
    let plan = json(&output);
    let expected_disposed: BTreeSet<String> = office.iter().cloned().collect();
    let expected_held: BTreeSet<String> = finance.iter().cloned().collect();
    assert_eq!(event_ids(&plan["items"]), expected_disposed);
    assert_eq!(event_ids(&plan["held"]), expected_held);
    for held in plan["held"].as_array().unwrap() {
        assert_eq!(held["hold_ids"], serde_json::json!([hold_id]));
    }

    let plan_id = plan["plan_id"].as_str().unwrap();
    let (code, output) = tracectl(
        &archive.address,
        "zhao.yun",
        &["--json", "disposition", "--approve", plan_id],
    );
    assert_eq!(code, Some(0), "{output}");
    assert_eq!(json(&output)["disposed"], office.len());

    for (event_id, kept) in finance
        .iter()
        .map(|id| (id, true))
        .chain(office.iter().map(|id| (id, false)))
    {
        let entry = client
            .get_entry(AUDITOR.request(GetEntryRequest {
                key: Some(get_entry_request::Key::EventId(event_id.clone())),
            }))
            .await
            .unwrap()
            .into_inner()
            .entry
            .unwrap();
        assert_eq!(
            !entry.payload_json.is_empty(),
            kept,
            "payload of {event_id} (kept: {kept})"
        );
    }
    let verification = client
        .verify_chain(AUDITOR.request(VerifyChainRequest::default()))
        .await
        .unwrap()
        .into_inner();
    assert!(verification.ok, "{verification:?}");

    let (code, output) = tracectl(
        &archive.address,
        "li.na",
        &["hold", "release", &hold_id, "--reason", "case closed"],
    );
    assert_eq!(code, Some(0), "{output}");
    let (code, output) = tracectl(
        &archive.address,
        "li.na",
        &["--json", "disposition", "--dry-run"],
    );
    assert_eq!(code, Some(0), "{output}");
    let plan = json(&output);
    assert_eq!(
        event_ids(&plan["items"]),
        expected_held,
        "released, the finance drafts are due"
    );
    assert_eq!(plan["held"], serde_json::json!([]));
    archive.stop().await;
}
