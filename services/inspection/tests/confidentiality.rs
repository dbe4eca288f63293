//! Confidentiality levels of findings against a real database and a real `nats-server`. The
//! tests cover the stored and returned level, the level rule findings and recorded findings
//! take from the events they reference, and sealing of free text at rest. They also cover access approvals for
//! readers who take no part in a CONFIDENTIAL or SECRET finding. Each approval test runs on a SQLite file and, when
//! `TRACE_TEST_DATABASE_URL` is set, on a fresh PostgreSQL database.

// The support module serves several test crates; this one uses only part of it.
#[allow(dead_code)]
mod support;

use std::path::PathBuf;

use chrono::{Duration, NaiveDate};
use prost::Message;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use tonic::Code;
use trace_proto::common::v1::{Confidentiality, Date};
use trace_proto::document;
use trace_proto::event::v1::Envelope;
use trace_proto::inspection::v1 as proto;
use trace_runtime::clock::{Clock, proto_date, timestamp};
use trace_runtime::outbox::outbox_event;
use trace_runtime::seal::Keyring;
use trace_tests::corpus::{Expected, check_rejection};
use trace_tests::scan::files_containing;

use support::{Caller, NatsServer, Service, call, opened, test_on_both_databases};

/// Head of the administration department, who records the findings.
const ADMIN: (&str, &str, &[&str]) = ("li.na", "admin-office", &["administration"]);
/// Head of engineering in the directory: inside the scope of engineering findings, but no
/// participant of the findings the administration records.
const HEAD: (&str, &str, &[&str]) = ("huang.wei", "engineering", &["department_head"]);
/// Supervisor of engineering, unknown to the directory, so the token's claims apply.
const SUPERVISOR: (&str, &str, &[&str]) = ("sun.li", "engineering", &["supervisor"]);
/// Auditor, who reads every finding.
const AUDITOR: (&str, &str, &[&str]) = ("zhao.yun", "audit", &["audit"]);

fn date(year: i32, month: u32, day: u32) -> Option<Date> {
    Some(proto_date(
        NaiveDate::from_ymd_opt(year, month, day).unwrap(),
    ))
}

async fn get(
    service: &mut Service,
    caller: Caller,
    finding_id: &str,
) -> Result<proto::Finding, tonic::Status> {
    let request = proto::GetFindingRequest {
        finding_id: finding_id.to_owned(),
    };
    let request = call(request, caller.0, caller.1, caller.2);
    let response = service.client.get_finding(request).await?;
    Ok(response.into_inner().finding.unwrap())
}

async fn list(service: &mut Service, caller: Caller) -> Vec<proto::Finding> {
    let request = call(
        proto::ListFindingsRequest::default(),
        caller.0,
        caller.1,
        caller.2,
    );
    let response = service.client.list_findings(request).await.unwrap();
    response.into_inner().findings
}

async fn ask(service: &mut Service, caller: Caller, finding_id: &str) -> proto::AccessRequest {
    let request = proto::RequestAccessRequest {
        finding_id: finding_id.to_owned(),
        purpose: "Performance review of engineering".to_owned(),
        ..Default::default()
    };
    let request = call(request, caller.0, caller.1, caller.2);
    let response = service.client.request_access(request).await.unwrap();
    response.into_inner().access_request.unwrap()
}

async fn decide(
    service: &mut Service,
    caller: Caller,
    access_request_id: &str,
    approve: bool,
) -> Result<proto::DecideAccessResponse, tonic::Status> {
    let expires_at = service.clock.now() + Duration::days(2);
    let request = proto::DecideAccessRequest {
        access_request_id: access_request_id.to_owned(),
        approve,
        opinion: "Checked the purpose".to_owned(),
        expires_at: Some(timestamp(expires_at.timestamp_micros())),
    };
    let request = call(request, caller.0, caller.1, caller.2);
    Ok(service.client.decide_access(request).await?.into_inner())
}

/// Decodes the outbox row of the event `event_id`.
async fn outbox_envelope(service: &Service, event_id: &str) -> Envelope {
    let row = outbox_event::Entity::find()
        .filter(outbox_event::Column::EventId.eq(event_id))
        .one(&service.db)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("no outbox row for event {event_id}"));
    Envelope::decode(row.envelope.as_slice()).unwrap()
}

/// Returns the envelopes of the finding's events with `action`, in outbox order.
async fn finding_events(service: &Service, finding_id: &str, action: &str) -> Vec<Envelope> {
    let subject = format!("trace.inspection.finding.{action}");
    service.outbox_events(&subject, finding_id).await
}

/// Checks that `status` is a recorded denial by the approval rule whose message contains
/// `reason`, and returns the decoded `read_denied` payload.
async fn approval_denial(
    service: &Service,
    status: &tonic::Status,
    finding_id: &str,
    reason: &str,
) -> proto::FindingReadDenied {
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    assert!(status.message().contains(reason), "{}", status.message());
    let event_id = status
        .metadata()
        .get("x-trace-denial-event-id")
        .expect("the denial names its event")
        .to_str()
        .unwrap()
        .to_owned();
    let envelope = outbox_envelope(service, &event_id).await;
    assert_eq!(envelope.subject, "trace.inspection.finding.read_denied");
    assert_eq!(envelope.entity_id, finding_id);
    opened(&envelope)
}

#[tokio::test]
async fn level_is_stored_and_returned() {
    let nats = NatsServer::start();
    let mut service = Service::start(&nats, support::postgres_url().await).await;
    let inspection_id = service.spot_check(ADMIN).await;

    let levels = [
        (Confidentiality::Unspecified, Confidentiality::Internal),
        (Confidentiality::Public, Confidentiality::Public),
        (Confidentiality::Internal, Confidentiality::Internal),
        (Confidentiality::Confidential, Confidentiality::Confidential),
        (Confidentiality::Secret, Confidentiality::Secret),
    ];
    for (asked, stored) in levels {
        let recorded = service
            .record_finding(ADMIN, &inspection_id, asked, "Reports lack results.")
            .await;
        assert_eq!(recorded.confidentiality, stored as i32, "{asked:?}");

        // The recorder takes part, so GetFinding returns the text with the level.
        let found = get(&mut service, ADMIN, &recorded.finding_id)
            .await
            .unwrap();
        assert_eq!(found.confidentiality, stored as i32, "{asked:?}");
        assert_eq!(found.description, "Reports lack results.", "{asked:?}");
        assert!(!found.content_withheld, "{asked:?}");

        // The recorded event carries the level, sealed from CONFIDENTIAL up.
        let events = finding_events(&service, &recorded.finding_id, "recorded").await;
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].confidentiality, stored as i32, "{asked:?}");
        let sealed = stored >= Confidentiality::Confidential;
        assert_eq!(events[0].sealed_payload.is_some(), sealed, "{asked:?}");
        assert_eq!(events[0].payload.is_none(), sealed, "{asked:?}");
    }

    // Every event of a CONFIDENTIAL finding has its level: the assignment too.
    let confidential = service
        .record_finding(
            ADMIN,
            &inspection_id,
            Confidentiality::Confidential,
            "Budget figures leaked.",
        )
        .await;
    let assignment = proto::AssignRectificationRequest {
        finding_id: confidential.finding_id.clone(),
        measures: "Restrict the share.".to_owned(),
        responsible_id: "xu.fang".to_owned(),
        deadline: date(2026, 12, 10),
    };
    let request = call(assignment, HEAD.0, HEAD.1, HEAD.2);
    let assigned = service.client.assign_rectification(request).await.unwrap();
    let assigned = assigned.into_inner().finding.unwrap();
    assert_eq!(
        assigned.confidentiality,
        Confidentiality::Confidential as i32
    );
    let events = finding_events(&service, &confidential.finding_id, "rectification_assigned").await;
    assert_eq!(
        events[0].confidentiality,
        Confidentiality::Confidential as i32
    );
    let payload: proto::RectificationAssigned = opened(&events[0]);
    assert_eq!(payload.measures, "Restrict the share.");

    service.stop().await;
}

/// Returns a `registered` event of `document_id` at `level`, with its payload sealed as the
/// document service seals it.
fn registered(service: &Service, document_id: &str, level: Confidentiality) -> Envelope {
    let payload = document::v1::DocumentRegistered {
        file_number: format!("ADM-2026-{document_id}"),
        department: "records".to_owned(),
        ..Default::default()
    };
    let mut envelope = service.event(
        "document",
        ("document", document_id),
        "registered",
        "zhang.min",
        "records",
        &payload,
    );
    envelope.confidentiality = level as i32;
    trace_runtime::event::seal_payload(&Keyring::development(), &mut envelope);
    envelope
}

#[tokio::test]
async fn rule_finding_takes_level_of_its_event() {
    let nats = NatsServer::start();
    let mut service = Service::start(&nats, support::postgres_url().await).await;
    let documents = [
        ("doc-secret", Confidentiality::Secret),
        ("doc-confidential", Confidentiality::Confidential),
        ("doc-internal", Confidentiality::Internal),
        ("doc-public", Confidentiality::Public),
    ];
    let events: Vec<Envelope> = documents
        .iter()
        .map(|(id, level)| registered(&service, id, *level))
        .collect();
    service.publish(&events.iter().collect::<Vec<_>>()).await;

    service.clock.advance(Duration::hours(25));
    service.run_rules().await;

    for (document_id, level) in documents {
        let sql = format!(
            "SELECT COUNT(*) AS n FROM obligations WHERE entity_id = '{document_id}' \
             AND confidentiality = {}",
            level as i32
        );
        assert_eq!(service.count(&sql).await, 1, "{document_id}");
    }
    let findings = service.findings_of(proto::Rule::DocumentReview).await;
    assert_eq!(findings.len(), 4);
    for finding in &findings {
        let document_id = &finding.references[0].entity_id;
        let (_, level) = documents.iter().find(|(id, _)| id == document_id).unwrap();
        assert_eq!(finding.confidentiality, *level as i32, "{document_id}");
        let events = finding_events(&service, &finding.finding_id, "recorded").await;
        assert_eq!(events[0].confidentiality, *level as i32, "{document_id}");
        let sealed = *level >= Confidentiality::Confidential;
        assert_eq!(events[0].sealed_payload.is_some(), sealed, "{document_id}");
        // The administration takes no part in a rule finding, so the text of a
        // CONFIDENTIAL or SECRET one is withheld from its listing.
        assert_eq!(finding.content_withheld, sealed, "{document_id}");
        assert_eq!(finding.description.is_empty(), sealed, "{document_id}");
    }

    // The SECRET rule finding is denied to the auditor without an approval.
    let secret = findings
        .iter()
        .find(|finding| finding.references[0].entity_id == "doc-secret")
        .unwrap();
    let status = get(&mut service, AUDITOR, &secret.finding_id)
        .await
        .unwrap_err();
    let denied = approval_denial(
        &service,
        &status,
        &secret.finding_id,
        "no approved access request",
    )
    .await;
    assert_eq!(denied.access_request_id, "");

    service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confidential_text_is_sealed_at_rest() {
    let nats = NatsServer::start();
    let mut service = Service::start(&nats, None).await;
    let inspection_id = service.spot_check(ADMIN).await;

    let levels = [
        (Confidentiality::Confidential, "marker-8c1f 保密整改"),
        (Confidentiality::Secret, "marker-2d9a 絕密整改"),
        (Confidentiality::Internal, "internal-marker-5e7b"),
    ];
    let mut findings = Vec::new();
    for (level, marker) in levels {
        let finding = service
            .record_finding(
                ADMIN,
                &inspection_id,
                level,
                &format!("Description {marker}"),
            )
            .await;
        let assignment = proto::AssignRectificationRequest {
            finding_id: finding.finding_id.clone(),
            measures: format!("Measures {marker}"),
            responsible_id: "xu.fang".to_owned(),
            deadline: date(2026, 12, 10),
        };
        let request = call(assignment, HEAD.0, HEAD.1, HEAD.2);
        service.client.assign_rectification(request).await.unwrap();
        let submission = proto::SubmitRectificationResultRequest {
            finding_id: finding.finding_id.clone(),
            result: format!("Result {marker}"),
        };
        let request = call(submission, "xu.fang", "engineering", &["employee"]);
        service
            .client
            .submit_rectification_result(request)
            .await
            .unwrap();
        let verification = proto::VerifyRectificationRequest {
            finding_id: finding.finding_id.clone(),
            verdict: proto::Verdict::Accepted as i32,
            opinion: format!("Opinion {marker}"),
        };
        let request = call(verification, ADMIN.0, ADMIN.1, ADMIN.2);
        service.client.verify_rectification(request).await.unwrap();
        if level >= Confidentiality::Confidential {
            let request = proto::RequestAccessRequest {
                finding_id: finding.finding_id.clone(),
                purpose: format!("Purpose {marker}"),
                ..Default::default()
            };
            let request = call(request, AUDITOR.0, AUDITOR.1, AUDITOR.2);
            service.client.request_access(request).await.unwrap();
        }
        findings.push((finding.finding_id, marker));
    }

    // Participants read every text in plaintext.
    for (finding_id, marker) in &findings {
        let found = get(&mut service, ADMIN, finding_id).await.unwrap();
        assert_eq!(found.description, format!("Description {marker}"));
        let rectification = found.rectification.unwrap();
        assert_eq!(rectification.measures, format!("Measures {marker}"));
        assert_eq!(rectification.result, format!("Result {marker}"));
        assert_eq!(
            rectification.verification_opinion,
            format!("Opinion {marker}")
        );
    }
    let unpublished = "SELECT COUNT(*) AS n FROM outbox WHERE published_at IS NULL";
    let started = std::time::Instant::now();
    while service.count(unpublished).await > 0 {
        assert!(
            started.elapsed() < support::DEADLINE,
            "events not published"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }

    // No database or broker file contains the text of the CONFIDENTIAL and SECRET findings.
    // The INTERNAL finding's text is stored as it is, which shows that the scan reads them.
    let data = service.folder().to_path_buf();
    for (_, marker) in &findings[..2] {
        assert_eq!(
            files_containing(&data, marker.as_bytes()).unwrap(),
            Vec::<PathBuf>::new()
        );
        assert_eq!(
            files_containing(nats.store(), marker.as_bytes()).unwrap(),
            Vec::<PathBuf>::new()
        );
    }
    let internal = files_containing(&data, findings[2].1.as_bytes()).unwrap();
    assert!(
        internal
            .iter()
            .any(|path| path.to_string_lossy().contains("inspection.db")),
        "{internal:?}"
    );
    let broker = files_containing(nats.store(), findings[2].1.as_bytes()).unwrap();
    assert!(
        !broker.is_empty(),
        "the internal finding's events reach the broker"
    );
    service.stop().await;
}

/// Records a CONFIDENTIAL, a SECRET and an INTERNAL finding and walks through the approval
/// rule for readers who take no part in them.
async fn approval_case(service: &mut Service) {
    let inspection_id = service.spot_check(ADMIN).await;
    let confidential = service
        .record_finding(
            ADMIN,
            &inspection_id,
            Confidentiality::Confidential,
            "Salary table shared in a chat.",
        )
        .await
        .finding_id;
    let secret = service
        .record_finding(
            ADMIN,
            &inspection_id,
            Confidentiality::Secret,
            "Acquisition plan left on a printer.",
        )
        .await
        .finding_id;
    let internal = service
        .record_finding(
            ADMIN,
            &inspection_id,
            Confidentiality::Internal,
            "Daily reports lack results.",
        )
        .await
        .finding_id;

    // Without a request the head of engineering is denied, and the denial is recorded.
    let status = get(service, HEAD, &confidential).await.unwrap_err();
    let denied = approval_denial(
        service,
        &status,
        &confidential,
        "no approved access request",
    )
    .await;
    assert_eq!(denied.method, "GetFinding");
    assert_eq!(denied.access_request_id, "");
    assert!(denied.reason.contains("huang.wei"), "{}", denied.reason);
    // The INTERNAL finding needs no approval and its read leaves no event.
    let found = get(service, HEAD, &internal).await.unwrap();
    assert_eq!(found.description, "Daily reports lack results.");
    assert!(finding_events(service, &internal, "read").await.is_empty());

    // The listing keeps every finding but withholds the text the caller may not read.
    let listed = list(service, AUDITOR).await;
    assert_eq!(listed.len(), 3);
    for finding in &listed {
        let withheld = finding.finding_id != internal;
        assert_eq!(finding.content_withheld, withheld, "{}", finding.finding_id);
        assert_eq!(
            finding.description.is_empty(),
            withheld,
            "{}",
            finding.finding_id
        );
    }
    // Withheld texts and the INTERNAL finding are not recorded as reads.
    for finding_id in [&confidential, &secret, &internal] {
        let reads = finding_events(service, finding_id, "read").await;
        assert!(reads.is_empty(), "{finding_id}");
    }

    // A pending request denies and is named by the denial.
    let pending = ask(service, HEAD, &confidential).await;
    assert_eq!(pending.state, proto::AccessRequestState::Pending as i32);
    assert_eq!(pending.finding_id, confidential);
    let status = get(service, HEAD, &confidential).await.unwrap_err();
    let denied = approval_denial(service, &status, &confidential, "PENDING").await;
    assert_eq!(denied.access_request_id, pending.access_request_id);

    // The requester may not decide their own request, and a caller outside the finding's
    // department may not decide it at all.
    let status = decide(service, HEAD, &pending.access_request_id, true)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    assert!(
        status.message().contains("their own"),
        "{}",
        status.message()
    );
    let status = decide(service, AUDITOR, &pending.access_request_id, true)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);

    // Approved by a supervisor of engineering, the request lets the head read, and the read
    // is the finding's read event naming it.
    let decided = decide(service, SUPERVISOR, &pending.access_request_id, true)
        .await
        .unwrap();
    let approved = decided.access_request.unwrap();
    assert_eq!(approved.state, proto::AccessRequestState::Approved as i32);
    assert_eq!(approved.approver_id, "sun.li");
    let decision = outbox_envelope(service, &decided.event_id).await;
    assert_eq!(decision.subject, "trace.inspection.finding.access_approved");
    let found = get(service, HEAD, &confidential).await.unwrap();
    assert_eq!(found.description, "Salary table shared in a chat.");
    assert!(!found.content_withheld);
    let reads = finding_events(service, &confidential, "read").await;
    assert_eq!(reads.len(), 1);
    assert_eq!(reads[0].actor.as_ref().unwrap().user_id, "huang.wei");
    assert_eq!(reads[0].entity_version, found.entity_version);
    let read: proto::FindingRead = opened(&reads[0]);
    assert_eq!(read.method, "GetFinding");
    assert_eq!(read.access_request_id, approved.access_request_id);

    // The approval also opens the finding in the listing, recorded as a read.
    let listed = list(service, HEAD).await;
    let listed_confidential = listed
        .iter()
        .find(|finding| finding.finding_id == confidential)
        .unwrap();
    assert!(!listed_confidential.content_withheld);
    assert_eq!(
        listed_confidential.description,
        "Salary table shared in a chat."
    );
    let listed_secret = listed
        .iter()
        .find(|finding| finding.finding_id == secret)
        .unwrap();
    assert!(listed_secret.content_withheld);
    assert!(finding_events(service, &secret, "read").await.is_empty());
    let reads = finding_events(service, &confidential, "read").await;
    assert_eq!(reads.len(), 2);
    let read: proto::FindingRead = opened(&reads[1]);
    assert_eq!(read.method, "ListFindings");
    assert_eq!(read.access_request_id, approved.access_request_id);

    // A rejected request denies.
    let rejected = ask(service, AUDITOR, &confidential).await;
    decide(service, SUPERVISOR, &rejected.access_request_id, false)
        .await
        .unwrap();
    let status = get(service, AUDITOR, &confidential).await.unwrap_err();
    let denied = approval_denial(service, &status, &confidential, "REJECTED").await;
    assert_eq!(denied.access_request_id, rejected.access_request_id);

    // A decided request stays decided.
    let status = decide(service, SUPERVISOR, &rejected.access_request_id, true)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert!(
        status.message().contains("REJECTED"),
        "{}",
        status.message()
    );

    // Supervisors and heads of the department see every request; the auditor too.
    let request = proto::ListAccessRequestsRequest {
        finding_id: confidential.clone(),
        ..Default::default()
    };
    for caller in [HEAD, SUPERVISOR, AUDITOR] {
        let listed = service
            .client
            .list_access_requests(call(request.clone(), caller.0, caller.1, caller.2))
            .await
            .unwrap()
            .into_inner()
            .access_requests;
        let ids: Vec<&str> = listed
            .iter()
            .map(|r| r.access_request_id.as_str())
            .collect();
        assert_eq!(
            ids,
            [
                approved.access_request_id.as_str(),
                rejected.access_request_id.as_str()
            ],
            "{}",
            caller.0
        );
        assert_eq!(listed[0].purpose, "Performance review of engineering");
    }

    // A SECRET finding also needs the agreement.
    let secret_request = ask(service, HEAD, &secret).await;
    decide(service, SUPERVISOR, &secret_request.access_request_id, true)
        .await
        .unwrap();
    let status = get(service, HEAD, &secret).await.unwrap_err();
    let denied = approval_denial(service, &status, &secret, "agreement").await;
    assert_eq!(denied.access_request_id, secret_request.access_request_id);
    let accept = proto::AcceptAgreementRequest {
        agreement_version: "2026-01".to_owned(),
    };
    let accepted = service
        .client
        .accept_agreement(call(accept.clone(), HEAD.0, HEAD.1, HEAD.2))
        .await
        .unwrap()
        .into_inner();
    assert!(!accepted.event_id.is_empty());
    let again = service
        .client
        .accept_agreement(call(accept, HEAD.0, HEAD.1, HEAD.2))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.event_id, "");
    let found = get(service, HEAD, &secret).await.unwrap();
    assert_eq!(found.description, "Acquisition plan left on a printer.");

    // After the approval's end the read is denied again.
    service.clock.advance(Duration::days(3));
    let status = get(service, HEAD, &confidential).await.unwrap_err();
    let denied = approval_denial(service, &status, &confidential, "expired").await;
    assert_eq!(denied.access_request_id, approved.access_request_id);

    // The recorder takes part and reads without a request; the read names none.
    let found = get(service, ADMIN, &confidential).await.unwrap();
    assert_eq!(found.description, "Salary table shared in a chat.");
    let reads = finding_events(service, &confidential, "read").await;
    let read: proto::FindingRead = opened(reads.last().unwrap());
    assert_eq!(
        reads.last().unwrap().actor.as_ref().unwrap().user_id,
        "li.na"
    );
    assert_eq!(read.access_request_id, "");

    // The head's listing withholds both texts now and records nothing.
    let confidential_reads = reads.len();
    let secret_reads = finding_events(service, &secret, "read").await.len();
    let listed = list(service, HEAD).await;
    for finding in listed
        .iter()
        .filter(|finding| finding.finding_id != internal)
    {
        assert!(finding.content_withheld, "{}", finding.finding_id);
    }
    let reads = finding_events(service, &confidential, "read").await;
    assert_eq!(reads.len(), confidential_reads);
    let reads = finding_events(service, &secret, "read").await;
    assert_eq!(reads.len(), secret_reads);

    // The recorder's listing returns every text and records one read of each CONFIDENTIAL
    // or SECRET finding, naming no request. The INTERNAL finding gets none.
    let listed = list(service, ADMIN).await;
    assert_eq!(listed.len(), 3);
    for finding in &listed {
        assert!(!finding.content_withheld, "{}", finding.finding_id);
        assert!(!finding.description.is_empty(), "{}", finding.finding_id);
    }
    for (finding_id, before) in [(&confidential, confidential_reads), (&secret, secret_reads)] {
        let reads = finding_events(service, finding_id, "read").await;
        assert_eq!(reads.len(), before + 1, "{finding_id}");
        let last = reads.last().unwrap();
        assert_eq!(last.actor.as_ref().unwrap().user_id, "li.na");
        let read: proto::FindingRead = opened(last);
        assert_eq!(read.method, "ListFindings");
        assert_eq!(read.access_request_id, "");
        let listed_version = listed
            .iter()
            .find(|finding| &finding.finding_id == finding_id)
            .unwrap()
            .entity_version;
        assert_eq!(last.entity_version, listed_version, "{finding_id}");
    }
    assert!(finding_events(service, &internal, "read").await.is_empty());

    // A participant and an INTERNAL finding need no request.
    let request = proto::RequestAccessRequest {
        finding_id: confidential.clone(),
        purpose: "Curious".to_owned(),
        ..Default::default()
    };
    let status = service
        .client
        .request_access(call(request, ADMIN.0, ADMIN.1, ADMIN.2))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    let request = proto::RequestAccessRequest {
        finding_id: internal.clone(),
        purpose: "Curious".to_owned(),
        ..Default::default()
    };
    let status = service
        .client
        .request_access(call(request, HEAD.0, HEAD.1, HEAD.2))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert!(
        status.message().contains("INTERNAL"),
        "{}",
        status.message()
    );

    // A caller outside the finding's scope gets the scope denial, not a request.
    let request = proto::RequestAccessRequest {
        finding_id: confidential.clone(),
        purpose: "Curious".to_owned(),
        ..Default::default()
    };
    let status = service
        .client
        .request_access(call(request, "wang.lei", "records", &["employee"]))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    let denials = finding_events(service, &confidential, "read_denied").await;
    let denied: proto::FindingReadDenied = opened(denials.last().unwrap());
    assert_eq!(denied.method, "RequestAccess");
    assert_eq!(
        denials.last().unwrap().actor.as_ref().unwrap().user_id,
        "wang.lei"
    );
}

test_on_both_databases!(approvals_on_sqlite, approvals_on_postgres, approval_case);

/// Records a finding of high severity about engineering at `level` with `references`.
async fn record_referencing(
    service: &mut Service,
    inspection_id: &str,
    level: Confidentiality,
    references: Vec<proto::RecordReference>,
) -> Result<proto::Finding, tonic::Status> {
    let record = proto::RecordFindingRequest {
        inspection_id: inspection_id.to_owned(),
        severity: proto::Severity::High as i32,
        department: "engineering".to_owned(),
        description: "The register quotes the acquisition plan.".to_owned(),
        references,
        confidentiality: level as i32,
    };
    let request = call(record, ADMIN.0, ADMIN.1, ADMIN.2);
    let response = service.client.record_finding(request).await?;
    Ok(response.into_inner().finding.unwrap())
}

/// Records findings that reference a SECRET document event the service consumed, by event
/// id, by stream sequence and by entity, and one that references an event it never saw.
async fn referenced_level_case(service: &mut Service) {
    let inspection_id = service.spot_check(ADMIN).await;
    let secret = registered(service, "doc-plan", Confidentiality::Secret);
    service.publish(&[&secret]).await;
    let sql = format!(
        "SELECT COUNT(*) AS n FROM processed_events WHERE event_id = '{}' \
         AND confidentiality = {} AND entity_type = 'document' AND entity_id = 'doc-plan'",
        secret.event_id,
        Confidentiality::Secret as i32
    );
    assert_eq!(service.count(&sql).await, 1);
    let sql = format!(
        "SELECT stream_sequence AS n FROM processed_events WHERE event_id = '{}'",
        secret.event_id
    );
    let stream_sequence = u64::try_from(service.count(&sql).await).unwrap();
    // The ledger sequence is the archive's, which the service does not look up.
    let by_id = proto::RecordReference {
        event_id: secret.event_id.clone(),
        ..Default::default()
    };
    let by_sequence = proto::RecordReference {
        ledger_sequence: 9001,
        stream_sequence,
        ..Default::default()
    };
    let by_entity = proto::RecordReference {
        ledger_sequence: 9002,
        entity_type: "document".to_owned(),
        entity_id: "doc-plan".to_owned(),
        ..Default::default()
    };

    // Unspecified takes the level of the referenced event, however it is named.
    for (label, reference) in [
        ("event id", &by_id),
        ("stream sequence", &by_sequence),
        ("entity", &by_entity),
    ] {
        let recorded = record_referencing(
            service,
            &inspection_id,
            Confidentiality::Unspecified,
            vec![reference.clone()],
        )
        .await
        .unwrap();
        assert_eq!(
            recorded.confidentiality,
            Confidentiality::Secret as i32,
            "{label}"
        );
        let events = finding_events(service, &recorded.finding_id, "recorded").await;
        assert_eq!(
            events[0].confidentiality,
            Confidentiality::Secret as i32,
            "{label}"
        );
        assert!(events[0].sealed_payload.is_some(), "{label}");
    }

    // A level below the referenced event is rejected and writes nothing.
    let findings = "SELECT COUNT(*) AS n FROM findings";
    let outbox = "SELECT COUNT(*) AS n FROM outbox";
    let before = (service.count(findings).await, service.count(outbox).await);
    let unknown = proto::RecordReference {
        event_id: uuid::Uuid::now_v7().to_string(),
        ..Default::default()
    };
    let result = record_referencing(
        service,
        &inspection_id,
        Confidentiality::Confidential,
        vec![unknown.clone(), by_id.clone()],
    )
    .await;
    let status = result.clone().unwrap_err();
    check_rejection(
        "below the event",
        result,
        Expected::Invalid("confidentiality"),
    );
    let message = status.message();
    assert!(
        message.contains("CONFIDENTIALITY_CONFIDENTIAL"),
        "{message}"
    );
    assert!(
        message.contains("below CONFIDENTIALITY_SECRET"),
        "{message}"
    );
    let named = format!("event {} of document doc-plan", secret.event_id);
    assert!(message.contains(&named), "{message}");
    assert!(message.contains("references[1]"), "{message}");
    let after = (service.count(findings).await, service.count(outbox).await);
    assert_eq!(after, before);

    // The referenced level or a higher one is kept as given.
    let recorded = record_referencing(
        service,
        &inspection_id,
        Confidentiality::Secret,
        vec![by_entity],
    )
    .await
    .unwrap();
    assert_eq!(recorded.confidentiality, Confidentiality::Secret as i32);

    // An event the service never consumed constrains nothing.
    for (asked, stored) in [
        (Confidentiality::Public, Confidentiality::Public),
        (Confidentiality::Unspecified, Confidentiality::Internal),
    ] {
        let recorded = record_referencing(service, &inspection_id, asked, vec![unknown.clone()])
            .await
            .unwrap();
        assert_eq!(recorded.confidentiality, stored as i32, "{asked:?}");
    }
}

test_on_both_databases!(
    referenced_level_on_sqlite,
    referenced_level_on_postgres,
    referenced_level_case
);

#[tokio::test]
async fn stored_findings_become_internal() {
    use sea_orm::{ConnectionTrait, Statement};
    use sea_orm_migration::MigratorTrait;

    let folder = tempfile::tempdir().unwrap();
    let url = format!(
        "sqlite://{}?mode=rwc",
        folder.path().join("inspection.db").display()
    );
    let db = trace_runtime::db::connect(&url).await.unwrap();
    // The tables as the first three migrations made them before the level existed.
    trace_inspection::Migrator::up(&db, Some(3)).await.unwrap();
    for statement in [
        "ALTER TABLE findings DROP COLUMN confidentiality",
        "ALTER TABLE obligations DROP COLUMN confidentiality",
        "ALTER TABLE processed_events DROP COLUMN confidentiality",
        "ALTER TABLE processed_events DROP COLUMN entity_type",
        "ALTER TABLE processed_events DROP COLUMN entity_id",
        "INSERT INTO processed_events (event_id, stream_sequence, processed_at) \
         VALUES ('0193a000-0000-7000-8000-000000000002', 7, 0)",
        "INSERT INTO findings (id, severity, department, description, \"references\", state, \
         recorded_by, recorded_at, entity_version) VALUES ('0193a000-0000-7000-8000-000000000001', \
         'LOW', 'engineering', 'Old finding', '[]', 'OPEN', 'li.na', 0, 1)",
    ] {
        let statement = Statement::from_string(db.get_database_backend(), statement.to_owned());
        db.execute_raw(statement).await.unwrap();
    }

    trace_inspection::Migrator::up(&db, None).await.unwrap();

    let statement = Statement::from_string(
        db.get_database_backend(),
        "SELECT confidentiality AS n FROM findings".to_owned(),
    );
    let row = db.query_one_raw(statement).await.unwrap().unwrap();
    let level: i32 = row.try_get("", "n").unwrap();
    assert_eq!(level, Confidentiality::Internal as i32);
    let statement = Statement::from_string(
        db.get_database_backend(),
        "SELECT confidentiality, entity_type, entity_id FROM processed_events".to_owned(),
    );
    let row = db.query_one_raw(statement).await.unwrap().unwrap();
    let level: i32 = row.try_get("", "confidentiality").unwrap();
    assert_eq!(level, Confidentiality::Internal as i32);
    let entity_type: String = row.try_get("", "entity_type").unwrap();
    assert_eq!(entity_type, "");
    let entity_id: String = row.try_get("", "entity_id").unwrap();
    assert_eq!(entity_id, "");
    for table in ["access_requests", "agreement_acceptances"] {
        let statement = Statement::from_string(
            db.get_database_backend(),
            format!("SELECT COUNT(*) AS n FROM {table}"),
        );
        assert!(db.query_one_raw(statement).await.is_ok(), "{table}");
    }
}

/// Writes a 32-byte key of `byte` as hex to `{id}.hex` in `folder`, and returns the key id
/// and the file path.
fn key_file(folder: &std::path::Path, id: &str, byte: u8) -> (String, String) {
    let path = folder.join(format!("{id}.hex"));
    std::fs::write(&path, format!("{byte:02x}").repeat(32)).unwrap();
    (id.to_owned(), path.display().to_string())
}

/// Uses only the keys of `keys`, with `active` sealing new values.
fn use_keys(
    config: &mut trace_inspection::InspectionConfig,
    keys: &[(String, String)],
    active: &str,
) {
    config.service.encryption = trace_runtime::seal::EncryptionSettings {
        key_files: keys.iter().cloned().collect(),
        active_key_id: Some(active.to_owned()),
        allow_development_key: false,
    };
}

/// Runs `tracectl rewrap` on `database_url` to the key k2026 and returns its standard output.
fn run_rewrap(database_url: &str, keys: &[(String, String)]) -> String {
    // The test binary is in `target/debug/deps`, and `cargo build --workspace --bins` puts
    // tracectl in `target/debug`.
    let binary = std::env::current_exe()
        .unwrap()
        .parent()
        .and_then(std::path::Path::parent)
        .unwrap()
        .join("tracectl");
    assert!(
        binary.exists(),
        "{} not found; run cargo build -p tracectl --bins first",
        binary.display()
    );
    let mut command = std::process::Command::new(&binary);
    command.args(["rewrap", "--database", database_url, "--active", "k2026"]);
    for (id, path) in keys {
        command.args(["--key", &format!("{id}={path}")]);
    }
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "tracectl rewrap failed: {output:?}"
    );
    String::from_utf8(output.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rewrap_keeps_sealed_text_readable() {
    let nats = NatsServer::start();
    let folder = tempfile::tempdir().unwrap();
    let database_url = format!(
        "sqlite://{}?mode=rwc",
        folder.path().join("inspection.db").display()
    );
    let old = key_file(folder.path(), "k2025", 0x11);
    let new = key_file(folder.path(), "k2026", 0x22);

    let keys = [old.clone()];
    let mut service = Service::start_with(&nats, Some(database_url.clone()), |config, _| {
        use_keys(config, &keys, "k2025");
    })
    .await;
    let inspection_id = service.spot_check(ADMIN).await;
    let finding = service
        .record_finding(
            ADMIN,
            &inspection_id,
            Confidentiality::Secret,
            "Acquisition plan left on a printer.",
        )
        .await;
    let assignment = proto::AssignRectificationRequest {
        finding_id: finding.finding_id.clone(),
        measures: "Lock the printer room.".to_owned(),
        responsible_id: "xu.fang".to_owned(),
        deadline: date(2026, 12, 10),
    };
    let request = call(assignment, HEAD.0, HEAD.1, HEAD.2);
    service.client.assign_rectification(request).await.unwrap();
    // The report takes the SECRET level of the finding.
    let draft = proto::DraftReportRequest {
        inspection_id: inspection_id.clone(),
        findings_summary: "One printer left unlocked.".to_owned(),
        suggestions: "Badge readers on printer rooms.".to_owned(),
        confidentiality: Confidentiality::Unspecified as i32,
    };
    let request = call(draft, ADMIN.0, ADMIN.1, ADMIN.2);
    let report = service.client.draft_report(request).await.unwrap();
    let report = report.into_inner().report.unwrap();
    assert_eq!(report.confidentiality, Confidentiality::Secret as i32);
    service.stop().await;

    // The description, the measures, the findings summary and the suggestions move to the
    // new key. The other text columns are empty.
    let keys = [old, new.clone()];
    let output = run_rewrap(&database_url, &keys);
    assert!(
        output.contains("rewrapped 4 of 4 sealed text values to key k2026"),
        "{output}"
    );

    // The service with only the new key reads the same plaintext.
    let keys = [new];
    let mut service = Service::start_with(&nats, Some(database_url.clone()), |config, _| {
        use_keys(config, &keys, "k2026");
    })
    .await;
    let found = get(&mut service, ADMIN, &finding.finding_id).await.unwrap();
    assert_eq!(found.description, "Acquisition plan left on a printer.");
    assert_eq!(
        found.rectification.unwrap().measures,
        "Lock the printer room."
    );
    let review = proto::ReviewReportRequest {
        inspection_id,
        decision: proto::ReviewDecision::Approve as i32,
        opinion: String::new(),
    };
    let request = call(review, ADMIN.0, ADMIN.1, ADMIN.2);
    let reviewed = service.client.review_report(request).await.unwrap();
    let reviewed = reviewed.into_inner().report.unwrap();
    assert_eq!(reviewed.findings_summary, "One printer left unlocked.");
    assert_eq!(reviewed.suggestions, "Badge readers on printer rooms.");
    service.stop().await;
}
