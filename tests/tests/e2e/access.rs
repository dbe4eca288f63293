//! Who may read the archive: the caller's own records for an employee, nothing of others'
//! (denied exactly like a missing record, and the denial archived), and whole-ledger
//! operations only for audit, administration and system callers.

use std::time::Duration;

use trace_proto::archive::v1::{
    GetEntryRequest, GetTimelineRequest, QueryEntriesRequest, VerifyChainRequest, get_entry_request,
};
use trace_proto::common::v1::Confidentiality;
use trace_proto::document::v1::CreateDraftRequest;
use trace_tests::nats::NatsServer;

use crate::stack::*;

const OTHER_EMPLOYEE: Person = Person {
    user_id: "wang.qiang",
    department: "finance",
    role: "employee",
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn employees_see_only_their_own_records() {
    let nats = NatsServer::start().expect("start nats-server");
    let dir = tempfile::tempdir().unwrap();
    let archive = start_archive(&nats.url(), dir.path()).await;
    let document = start_document(&nats.url(), dir.path()).await;

    let drafted = document_client(&document.address)
        .await
        .create_draft(DRAFTER.request(CreateDraftRequest {
            title: "季度費用報告".to_owned(),
            category: "REPORT".to_owned(),
            department: "admin-office".to_owned(),
            confidentiality: Confidentiality::Internal as i32,
            content: b"figures".to_vec(),
            media_type: "text/plain".to_owned(),
        }))
        .await
        .unwrap()
        .into_inner();
    let document_id = drafted.document.unwrap().document_id;
    wait_until_archived(
        &archive.address,
        std::slice::from_ref(&drafted.event_id),
        Duration::from_secs(30),
    )
    .await;

    let mut client = archive_client(&archive.address).await;
    let timeline = |person: Person| {
        person.request(GetTimelineRequest {
            entity_type: "document".to_owned(),
            entity_id: document_id.clone(),
            page: None,
        })
    };
    let own = client
        .get_timeline(timeline(DRAFTER))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(own.entries.len(), 1, "the drafter sees their own record");
    let others = client
        .get_timeline(timeline(OTHER_EMPLOYEE))
        .await
        .unwrap()
        .into_inner();
    assert!(
        others.entries.is_empty(),
        "another employee sees nothing of it"
    );

    let entry = |person: Person| {
        person.request(GetEntryRequest {
            key: Some(get_entry_request::Key::EventId(drafted.event_id.clone())),
        })
    };
    let hidden = client.get_entry(entry(OTHER_EMPLOYEE)).await.unwrap_err();
    let missing = client
        .get_entry(OTHER_EMPLOYEE.request(GetEntryRequest {
            key: Some(get_entry_request::Key::EventId(
                uuid::Uuid::now_v7().to_string(),
            )),
        }))
        .await
        .unwrap_err();
    for (case, status) in [("hidden", &hidden), ("missing", &missing)] {
        assert_eq!(status.code(), tonic::Code::PermissionDenied, "{case} entry");
        assert!(
            status
                .message()
                .ends_with("is not in the caller's view of the ledger, or does not exist"),
            "{case} entry: {}",
            status.message()
        );
    }
    assert!(client.get_entry(entry(DRAFTER)).await.is_ok());
    let absent = client
        .get_entry(AUDITOR.request(GetEntryRequest {
            key: Some(get_entry_request::Key::Sequence(1_000_000)),
        }))
        .await
        .unwrap_err();
    assert_eq!(
        absent.code(),
        tonic::Code::NotFound,
        "a whole-ledger reader learns that an entry does not exist"
    );

    // Both denials reach the ledger as the archive's own access events, by the employee.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let denials = client
            .query_entries(AUDITOR.request(QueryEntriesRequest {
                entity_type: "access".to_owned(),
                ..Default::default()
            }))
            .await
            .expect("query access denials")
            .into_inner()
            .entries;
        let by_employee = denials
            .iter()
            .filter(|entry| {
                entry.source_service == "archive"
                    && entry
                        .actor
                        .as_ref()
                        .is_some_and(|actor| actor.user_id == OTHER_EMPLOYEE.user_id)
            })
            .count();
        if by_employee == 2 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{by_employee} of 2 entry denials archived"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let denied = client
        .verify_chain(DRAFTER.request(VerifyChainRequest::default()))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), tonic::Code::PermissionDenied);
    let verified = client
        .verify_chain(AUDITOR.request(VerifyChainRequest::default()))
        .await
        .unwrap();
    assert!(verified.into_inner().ok);

    document.stop().await;
    archive.stop().await;
}
