//! Every rejected call leaves a trace. Calls without a token, with an expired token or one for
//! another audience, and with a role that may not act each become an archived event naming
//! the method and the reason. A content read without an approved request becomes the
//! document's own `read_denied` event, and a read of another department's meeting becomes
//! the meeting's `read_denied` event. Reads of a SECRET document without the agreement and
//! after the approval expired become `read_denied` events naming the request. The same
//! approval rule for meetings, projects, daily reports and inspection findings is tested in
//! `approvals.rs`.

use std::time::Duration;

use prost::Message;
use serde_json::json;
use tonic::Code;
use trace_proto::archive::v1::QueryEntriesRequest;
use trace_proto::common::v1::{AccessDenied, Confidentiality};
use trace_proto::document::v1::{
    CheckOverdueRequest, CreateDraftRequest, DocumentReadDenied, GetDocumentRequest,
    ReadContentRequest,
};
use trace_runtime::config::AuthSettings;
use trace_tests::nats::NatsServer;

use crate::stack::*;

const READER: Person = Person {
    user_id: "wang.qiang",
    department: "finance",
    role: "employee",
};

/// Signs `claims` with the development secret the services under test accept.
fn signed(claims: &serde_json::Value) -> String {
    let secret = AuthSettings::default().hs256_secret;
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes())
            .expect("secret is a valid HS256 key"),
    )
    .expect("sign a token")
}

fn claims(expires_in: i64, audience: &str) -> serde_json::Value {
    let now = chrono::Utc::now().timestamp();
    json!({
        "sub": READER.user_id,
        "department": READER.department,
        "roles": [READER.role],
        "iss": "trace-dev",
        "aud": audience,
        "iat": now,
        "exp": now + expires_in,
    })
}

fn with_token<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    trace_runtime::auth::attach_token(&mut request, token).expect("token is valid metadata");
    request
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_denied_call_is_archived() {
    let nats = NatsServer::start().expect("start nats-server");
    let dir = tempfile::tempdir().unwrap();
    let archive = start_archive(&nats.url(), dir.path()).await;
    let document = start_document(&nats.url(), dir.path()).await;
    let mut client = document_client(&document.address).await;

    let drafted = client
        .create_draft(DRAFTER.request(CreateDraftRequest {
            title: "Salary bands".to_owned(),
            category: "REPORT".to_owned(),
            department: "admin-office".to_owned(),
            confidentiality: Confidentiality::Confidential as i32,
            content: b"bands".to_vec(),
            media_type: "text/plain".to_owned(),
        }))
        .await
        .expect("create a confidential draft")
        .into_inner();
    let document_id = drafted.document.unwrap().document_id;
    let get = || GetDocumentRequest {
        document_id: document_id.clone(),
    };

    let expected_unauthenticated = [
        ("no token", tonic::Request::new(get())),
        (
            "expired token",
            with_token(get(), &signed(&claims(-600, "trace"))),
        ),
        (
            "wrong audience",
            with_token(get(), &signed(&claims(600, "billing"))),
        ),
    ];
    for (case, request) in expected_unauthenticated {
        let status = client.get_document(request).await.unwrap_err();
        assert_eq!(status.code(), Code::Unauthenticated, "{case}");
    }

    // An employee may not preview overdue checks for a later date.
    let tomorrow = chrono::Utc::now().date_naive() + chrono::Days::new(2);
    let status = client
        .check_overdue(READER.request(CheckOverdueRequest {
            as_of: Some(trace_runtime::clock::proto_date(tomorrow)),
        }))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);

    // A confidential read without an approved request: one domain event, no generic one.
    let status = client
        .read_content(READER.request(ReadContentRequest {
            access_request_id: String::new(),
            document_id: document_id.clone(),
            revision: 0,
        }))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);

    let mut archive_client = archive_client(&archive.address).await;
    let query = |entity_type: &str| {
        AUDITOR.request(QueryEntriesRequest {
            entity_type: entity_type.to_owned(),
            include_envelope: true,
            ..Default::default()
        })
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let denials = loop {
        let entries = archive_client
            .query_entries(query("access"))
            .await
            .expect("query access denials")
            .into_inner()
            .entries;
        if entries.len() >= 4 || std::time::Instant::now() > deadline {
            break entries;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let decoded: Vec<(String, AccessDenied)> = denials
        .iter()
        .map(|entry| {
            let envelope = trace_proto::event::v1::Envelope::decode(entry.envelope.as_slice())
                .expect("stored envelope decodes");
            let actor = envelope.actor.unwrap_or_default().user_id;
            let payload = envelope.payload.expect("payload");
            (
                actor,
                AccessDenied::decode(payload.value.as_slice()).expect("AccessDenied payload"),
            )
        })
        .collect();
    // Each denial is written by its own task, so their order in the archive may differ.
    let mut summary: Vec<(&str, &str, &str)> = decoded
        .iter()
        .map(|(actor, denial)| (actor.as_str(), denial.code.as_str(), denial.method.as_str()))
        .collect();
    summary.sort();
    let get_method = "/trace.document.v1.DocumentService/GetDocument";
    assert_eq!(
        summary,
        [
            ("unauthenticated", "UNAUTHENTICATED", get_method),
            ("unauthenticated", "UNAUTHENTICATED", get_method),
            ("unauthenticated", "UNAUTHENTICATED", get_method),
            (
                READER.user_id,
                "PERMISSION_DENIED",
                "/trace.document.v1.DocumentService/CheckOverdue"
            ),
        ]
    );
    let reasons: Vec<&str> = decoded
        .iter()
        .map(|(_, denial)| denial.reason.as_str())
        .collect();
    assert!(
        reasons.iter().any(|reason| reason.contains("expired")),
        "{reasons:?}"
    );
    assert!(
        reasons.iter().any(|reason| reason.contains("audience")),
        "{reasons:?}"
    );

    // The content read denial is the document's own read_denied event.
    let timeline = loop {
        let entries = archive_client
            .query_entries(AUDITOR.request(QueryEntriesRequest {
                entity_type: "document".to_owned(),
                entity_id: document_id.clone(),
                include_envelope: true,
                ..Default::default()
            }))
            .await
            .expect("query the document's entries")
            .into_inner()
            .entries;
        if entries.len() >= 2 || std::time::Instant::now() > deadline {
            break entries;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let actions: Vec<&str> = timeline.iter().map(|entry| entry.action.as_str()).collect();
    let denied = timeline.last().expect("entries");
    let envelope = trace_proto::event::v1::Envelope::decode(denied.envelope.as_slice()).unwrap();
    // The document is confidential, so its events carry sealed payloads.
    assert_eq!(envelope.payload, None);
    let opened =
        trace_runtime::event::open_payload(&trace_runtime::seal::Keyring::development(), &envelope)
            .expect("open the sealed payload")
            .expect("a payload");
    let payload = DocumentReadDenied::decode(opened.value.as_slice()).unwrap();
    assert_eq!(actions, ["drafted", "read_denied"]);
    assert!(
        payload.reason.contains("no approved access request"),
        "{payload:?}"
    );
}

/// Another department's employee reads a meeting by id. The denial reaches the archive as
/// the meeting's `read_denied` event, and a missing meeting is denied with the same message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_departments_meeting_is_denied() {
    use trace_proto::meeting::v1::{
        AgendaItem, Channel, GetMeetingRequest, MeetingReadDenied, PlanMeetingRequest,
    };

    let nats = NatsServer::start().expect("start nats-server");
    let dir = tempfile::tempdir().unwrap();
    let archive = start_archive(&nats.url(), dir.path()).await;
    let meeting = start_meeting(&nats.url(), dir.path()).await;
    let mut client = meeting_client(&meeting.address).await;

    let start = chrono::Utc::now() + chrono::Duration::days(1);
    let timestamp_of = |instant: chrono::DateTime<chrono::Utc>| {
        trace_runtime::clock::timestamp(instant.timestamp_micros())
    };
    let planned = client
        .plan_meeting(DRAFTER.request(PlanMeetingRequest {
            topic: "Office move".to_owned(),
            start_time: Some(timestamp_of(start)),
            end_time: Some(timestamp_of(start + chrono::Duration::hours(1))),
            channel: Channel::InPerson as i32,
            location: "Room 2".to_owned(),
            attendee_ids: vec!["li.na".to_owned()],
            agenda: vec![AgendaItem {
                title: "Schedule".to_owned(),
                presenter_id: String::new(),
            }],
            confidentiality: Confidentiality::Internal as i32,
        }))
        .await
        .expect("plan a meeting")
        .into_inner();
    let meeting_id = planned.meeting.unwrap().meeting_id;
    let get = |meeting_id: &str| {
        READER.request(GetMeetingRequest {
            meeting_id: meeting_id.to_owned(),
        })
    };

    let denied = client.get_meeting(get(&meeting_id)).await.unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    let missing_id = uuid::Uuid::now_v7().to_string();
    let missing = client.get_meeting(get(&missing_id)).await.unwrap_err();
    assert_eq!(missing.code(), Code::PermissionDenied);
    assert_eq!(
        denied.message().replace(&meeting_id, "<id>"),
        missing.message().replace(&missing_id, "<id>")
    );

    let mut archive_client = archive_client(&archive.address).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let timeline = loop {
        let entries = archive_client
            .query_entries(AUDITOR.request(QueryEntriesRequest {
                entity_type: "meeting".to_owned(),
                entity_id: meeting_id.clone(),
                include_envelope: true,
                ..Default::default()
            }))
            .await
            .expect("query the meeting's entries")
            .into_inner()
            .entries;
        if entries.len() >= 2 || std::time::Instant::now() > deadline {
            break entries;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let actions: Vec<&str> = timeline.iter().map(|entry| entry.action.as_str()).collect();
    assert_eq!(actions, ["planned", "read_denied"]);
    let denied_entry = timeline.last().expect("entries");
    let actor = denied_entry
        .actor
        .clone()
        .expect("the entry names its actor");
    assert_eq!(actor.user_id, READER.user_id);
    assert_eq!(actor.department, READER.department);
    let envelope =
        trace_proto::event::v1::Envelope::decode(denied_entry.envelope.as_slice()).unwrap();
    let payload = envelope
        .payload
        .expect("an INTERNAL event's payload is not sealed");
    let payload = MeetingReadDenied::decode(payload.value.as_slice()).unwrap();
    assert_eq!(payload.method, "GetMeeting");
    assert!(payload.reason.contains(READER.user_id), "{payload:?}");
    meeting.stop().await;
    archive.stop().await;
}

/// Reads of a SECRET document under an approved request: denied without the caller's
/// acceptance of the confidentiality agreement, permitted with it, and denied again once the
/// approval has expired. Both denials reach the archive as the document's `read_denied`
/// events, each naming the request it was judged by.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approval_denials_are_archived() {
    use trace_proto::document::v1::{
        AcceptAgreementRequest, DecideAccessRequest, RequestAccessRequest,
    };

    const HEAD: Person = Person {
        user_id: "li.na",
        department: "admin-office",
        role: "department_head",
    };

    let nats = NatsServer::start().expect("start nats-server");
    let dir = tempfile::tempdir().unwrap();
    let archive = start_archive(&nats.url(), dir.path()).await;
    let document = start_document(&nats.url(), dir.path()).await;
    let mut client = document_client(&document.address).await;

    let drafted = client
        .create_draft(DRAFTER.request(CreateDraftRequest {
            title: "Acquisition plan".to_owned(),
            category: "PLAN".to_owned(),
            department: "admin-office".to_owned(),
            confidentiality: Confidentiality::Secret as i32,
            content: b"terms".to_vec(),
            media_type: "text/plain".to_owned(),
        }))
        .await
        .expect("create a secret draft")
        .into_inner();
    let document_id = drafted.document.unwrap().document_id;
    let requested = client
        .request_access(READER.request(RequestAccessRequest {
            document_id: document_id.clone(),
            purpose: "due diligence".to_owned(),
            revision: 0,
        }))
        .await
        .expect("request access")
        .into_inner();
    let request_id = requested.access_request.unwrap().access_request_id;
    // The approval ends a few seconds from now, so the test can outlive it.
    let expires_at = chrono::Utc::now() + chrono::Duration::seconds(4);
    client
        .decide_access(HEAD.request(DecideAccessRequest {
            access_request_id: request_id.clone(),
            approve: true,
            opinion: "for the due diligence only".to_owned(),
            expires_at: Some(prost_types::Timestamp {
                seconds: expires_at.timestamp(),
                nanos: 0,
            }),
        }))
        .await
        .expect("approve the request");

    let read = || {
        READER.request(ReadContentRequest {
            access_request_id: String::new(),
            document_id: document_id.clone(),
            revision: 0,
        })
    };
    let without_agreement = client.read_content(read()).await.unwrap_err();
    assert_eq!(without_agreement.code(), Code::PermissionDenied);
    client
        .accept_agreement(READER.request(AcceptAgreementRequest {
            agreement_version: "2026-01".to_owned(),
        }))
        .await
        .expect("accept the agreement");
    let permitted = client
        .read_content(read())
        .await
        .expect("read with approval and agreement")
        .into_inner();
    assert_eq!(permitted.access_request_id, request_id);
    let wait = (expires_at - chrono::Utc::now())
        .to_std()
        .unwrap_or_default();
    tokio::time::sleep(wait + Duration::from_millis(500)).await;
    let expired = client.read_content(read()).await.unwrap_err();
    assert_eq!(expired.code(), Code::PermissionDenied);

    let mut archive_client = archive_client(&archive.address).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let denied = loop {
        let entries = archive_client
            .query_entries(AUDITOR.request(QueryEntriesRequest {
                entity_type: "document".to_owned(),
                entity_id: document_id.clone(),
                include_envelope: true,
                ..Default::default()
            }))
            .await
            .expect("query the document's entries")
            .into_inner()
            .entries;
        let denied: Vec<_> = entries
            .into_iter()
            .filter(|entry| entry.action == "read_denied")
            .collect();
        if denied.len() >= 2 || std::time::Instant::now() > deadline {
            break denied;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let payloads: Vec<DocumentReadDenied> = denied
        .iter()
        .map(|entry| {
            let envelope = trace_proto::event::v1::Envelope::decode(entry.envelope.as_slice())
                .expect("stored envelope decodes");
            let opened = trace_runtime::event::open_payload(
                &trace_runtime::seal::Keyring::development(),
                &envelope,
            )
            .expect("open the sealed payload")
            .expect("a payload");
            DocumentReadDenied::decode(opened.value.as_slice()).expect("read_denied payload")
        })
        .collect();
    assert_eq!(payloads.len(), 2);
    assert!(
        payloads[0].reason.contains("confidentiality agreement"),
        "{:?}",
        payloads[0]
    );
    assert!(payloads[1].reason.contains("expired"), "{:?}", payloads[1]);
    for payload in &payloads {
        assert_eq!(payload.access_request_id, request_id);
        assert_eq!(payload.method, "ReadContent");
    }
    document.stop().await;
    archive.stop().await;
}
