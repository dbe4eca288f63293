//! Reads of inspection reports and access requests for them, against a real database and a
//! real `nats-server`. The tests cover the read scope with one message for missing and
//! existing inspections, and the approval that a reader who neither drafted nor reviewed a
//! CONFIDENTIAL or SECRET report needs. They also check the `report_read` and
//! `report_read_denied` events that record the reads.

// The support module serves several test crates; this one uses only part of it.
#[allow(dead_code)]
mod support;

use chrono::Duration;
use tonic::Code;
use trace_proto::common::v1::Confidentiality;
use trace_proto::event::v1::Envelope;
use trace_proto::inspection::v1 as proto;
use trace_runtime::clock::{Clock, timestamp};

use support::{Caller, Service, call, opened, test_on_both_databases};

/// Head of the administration department, who drafts and reviews the reports.
const ADMIN: Caller = (
    "li.na",
    "admin-office",
    &["department_head", "administration"],
);
/// Supervisor in the administration department, who decides report access requests.
const DECIDER: Caller = (
    "chen.hua",
    "admin-office",
    &["supervisor", "administration"],
);
/// Head of engineering, a department the inspections cover.
const HEAD: Caller = ("huang.wei", "engineering", &["department_head"]);
/// Supervisor of engineering, in scope but no decider of report requests.
const SUPERVISOR: Caller = ("sun.li", "engineering", &["supervisor"]);
/// Employee of engineering, outside the read scope of reports.
const EMPLOYEE: Caller = ("xu.fang", "engineering", &["employee"]);
/// Auditor, who reads every report in scope but needs approval for confidential ones.
const AUDITOR: Caller = ("zhao.yun", "audit", &["audit"]);

/// An inspection id that no inspection has.
const MISSING: &str = "0193a000-0000-7000-8000-0000000000ff";

/// Orders a spot check of engineering, records a finding at `level` and drafts and approves
/// a report at `level` with `marker` in its text. Returns the inspection id.
async fn reviewed_report(service: &mut Service, level: Confidentiality, marker: &str) -> String {
    let inspection_id = service.spot_check(ADMIN).await;
    service
        .record_finding(ADMIN, &inspection_id, level, "Reviews missing")
        .await;
    let draft = proto::DraftReportRequest {
        inspection_id: inspection_id.clone(),
        findings_summary: format!("Summary {marker}"),
        suggestions: format!("Suggestions {marker}"),
        confidentiality: level as i32,
    };
    service
        .client
        .draft_report(call(draft, ADMIN.0, ADMIN.1, ADMIN.2))
        .await
        .unwrap();
    let review = proto::ReviewReportRequest {
        inspection_id: inspection_id.clone(),
        decision: proto::ReviewDecision::Approve as i32,
        opinion: format!("Opinion {marker}"),
    };
    service
        .client
        .review_report(call(review, ADMIN.0, ADMIN.1, ADMIN.2))
        .await
        .unwrap();
    inspection_id
}

async fn get(
    service: &mut Service,
    caller: Caller,
    inspection_id: &str,
) -> Result<proto::Report, tonic::Status> {
    let request = proto::GetInspectionReportRequest {
        inspection_id: inspection_id.to_owned(),
    };
    let response = service
        .client
        .get_inspection_report(call(request, caller.0, caller.1, caller.2))
        .await?;
    Ok(response.into_inner().report.unwrap())
}

async fn ask(
    service: &mut Service,
    caller: Caller,
    inspection_id: &str,
) -> Result<proto::AccessRequest, tonic::Status> {
    let request = proto::RequestAccessRequest {
        inspection_id: inspection_id.to_owned(),
        purpose: "Follow-up of the engineering findings".to_owned(),
        ..Default::default()
    };
    let response = service
        .client
        .request_access(call(request, caller.0, caller.1, caller.2))
        .await?;
    Ok(response.into_inner().access_request.unwrap())
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
    let response = service
        .client
        .decide_access(call(request, caller.0, caller.1, caller.2))
        .await?;
    Ok(response.into_inner())
}

/// Returns the envelopes of the inspection's events with `action`, in outbox order.
async fn report_events(service: &Service, inspection_id: &str, action: &str) -> Vec<Envelope> {
    let subject = format!("trace.inspection.inspection.{action}");
    service.outbox_events(&subject, inspection_id).await
}

/// Returns the id of the event that recorded the denial `status`.
fn denial_event_id(status: &tonic::Status) -> String {
    status
        .metadata()
        .get("x-trace-denial-event-id")
        .expect("the denial names its event")
        .to_str()
        .unwrap()
        .to_owned()
}

/// Checks that `status` is a denial whose message contains `reason`, recorded as the
/// inspection's `report_read_denied` event, and returns that event's payload.
async fn report_denial(
    service: &Service,
    status: &tonic::Status,
    inspection_id: &str,
    reason: &str,
) -> proto::ReportReadDenied {
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    assert!(status.message().contains(reason), "{}", status.message());
    let event_id = denial_event_id(status);
    let denied = report_events(service, inspection_id, "report_read_denied").await;
    let envelope = denied
        .iter()
        .find(|envelope| envelope.event_id == event_id)
        .unwrap_or_else(|| panic!("no report_read_denied event {event_id}"));
    opened(envelope)
}

async fn report_access_case(service: &mut Service) {
    let confidential = reviewed_report(service, Confidentiality::Confidential, "c-1").await;

    // The drafter reads without a request, and the read names none.
    let report = get(service, ADMIN, &confidential).await.unwrap();
    assert_eq!(report.findings_summary, "Summary c-1");
    assert_eq!(report.review_opinion, "Opinion c-1");
    assert!(!report.content_withheld);
    let reads = report_events(service, &confidential, "report_read").await;
    assert_eq!(reads.len(), 1);
    let read: proto::ReportRead = opened(&reads[0]);
    assert_eq!(read.method, "GetInspectionReport");
    assert_eq!(read.access_request_id, "");

    // In scope without a request: denied and recorded.
    let status = get(service, HEAD, &confidential).await.unwrap_err();
    let denied = report_denial(service, &status, &confidential, "huang.wei").await;
    assert_eq!(denied.method, "GetInspectionReport");
    assert_eq!(denied.access_request_id, "");

    // A pending request does not open the report, and the denial names it.
    let pending = ask(service, HEAD, &confidential).await.unwrap();
    assert_eq!(pending.inspection_id, confidential);
    assert_eq!(pending.finding_id, "");
    assert_eq!(pending.state, proto::AccessRequestState::Pending as i32);
    let status = get(service, HEAD, &confidential).await.unwrap_err();
    let denied = report_denial(service, &status, &confidential, "PENDING").await;
    assert_eq!(denied.access_request_id, pending.access_request_id);

    // Only a supervisor or head of the administration department decides, never the
    // requester.
    let status = decide(service, SUPERVISOR, &pending.access_request_id, true)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    assert!(
        status.message().contains("administration department"),
        "{}",
        status.message()
    );
    let own = ask(service, DECIDER, &confidential).await.unwrap();
    let status = decide(service, DECIDER, &own.access_request_id, true)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    assert!(
        status.message().contains("their own access request"),
        "{}",
        status.message()
    );

    // A rejected request denies, naming the request.
    let rejected = decide(service, DECIDER, &pending.access_request_id, false)
        .await
        .unwrap();
    assert!(!rejected.event_id.is_empty());
    let request = rejected.access_request.unwrap();
    assert_eq!(request.state, proto::AccessRequestState::Rejected as i32);
    assert_eq!(request.inspection_id, confidential);
    let rejections = report_events(service, &confidential, "report_access_rejected").await;
    assert_eq!(rejections.len(), 1);
    let status = get(service, HEAD, &confidential).await.unwrap_err();
    let denied = report_denial(service, &status, &confidential, "REJECTED").await;
    assert_eq!(denied.access_request_id, pending.access_request_id);

    // An approved request opens the report, and the read names it.
    let second = ask(service, HEAD, &confidential).await.unwrap();
    let approved = decide(service, ADMIN, &second.access_request_id, true)
        .await
        .unwrap();
    let request = approved.access_request.unwrap();
    assert_eq!(request.state, proto::AccessRequestState::Approved as i32);
    assert_eq!(request.approver_id, ADMIN.0);
    let report = get(service, HEAD, &confidential).await.unwrap();
    assert_eq!(report.findings_summary, "Summary c-1");
    assert_eq!(report.suggestions, "Suggestions c-1");
    let reads = report_events(service, &confidential, "report_read").await;
    assert_eq!(reads.len(), 2);
    assert_eq!(reads[1].actor.as_ref().unwrap().user_id, HEAD.0);
    let read: proto::ReportRead = opened(&reads[1]);
    assert_eq!(read.access_request_id, second.access_request_id);

    // The deciders list every request of the report, the requester only their own.
    let list = proto::ListAccessRequestsRequest {
        inspection_id: confidential.clone(),
        ..Default::default()
    };
    let listed = service
        .client
        .list_access_requests(call(list.clone(), DECIDER.0, DECIDER.1, DECIDER.2))
        .await
        .unwrap()
        .into_inner()
        .access_requests;
    let ids: Vec<&str> = listed
        .iter()
        .map(|request| request.access_request_id.as_str())
        .collect();
    assert_eq!(
        ids,
        [
            pending.access_request_id.as_str(),
            own.access_request_id.as_str(),
            second.access_request_id.as_str()
        ]
    );
    let listed = service
        .client
        .list_access_requests(call(list, HEAD.0, HEAD.1, HEAD.2))
        .await
        .unwrap()
        .into_inner()
        .access_requests;
    assert_eq!(listed.len(), 2);
    assert!(listed.iter().all(|request| request.requester_id == HEAD.0));

    // A SECRET report also needs the agreement.
    let secret = reviewed_report(service, Confidentiality::Secret, "s-1").await;
    let request = ask(service, AUDITOR, &secret).await.unwrap();
    decide(service, DECIDER, &request.access_request_id, true)
        .await
        .unwrap();
    let status = get(service, AUDITOR, &secret).await.unwrap_err();
    let denied = report_denial(service, &status, &secret, "agreement").await;
    assert_eq!(denied.access_request_id, request.access_request_id);
    let accept = proto::AcceptAgreementRequest {
        agreement_version: "2026-01".to_owned(),
    };
    service
        .client
        .accept_agreement(call(accept, AUDITOR.0, AUDITOR.1, AUDITOR.2))
        .await
        .unwrap();
    let report = get(service, AUDITOR, &secret).await.unwrap();
    assert_eq!(report.findings_summary, "Summary s-1");
    let reads = report_events(service, &secret, "report_read").await;
    let read: proto::ReportRead = opened(reads.last().unwrap());
    assert_eq!(read.access_request_id, request.access_request_id);

    // An INTERNAL report needs no request and its reads leave no event.
    let internal = reviewed_report(service, Confidentiality::Internal, "i-1").await;
    let report = get(service, SUPERVISOR, &internal).await.unwrap();
    assert_eq!(report.findings_summary, "Summary i-1");
    assert!(
        report_events(service, &internal, "report_read")
            .await
            .is_empty()
    );
    let status = ask(service, SUPERVISOR, &internal).await.unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");

    // Outside the scope a missing and an existing inspection get one message, and both
    // denials are recorded.
    let existing = get(service, EMPLOYEE, &confidential).await.unwrap_err();
    let missing = get(service, EMPLOYEE, MISSING).await.unwrap_err();
    assert_eq!(existing.code(), Code::PermissionDenied, "{existing:?}");
    assert_eq!(missing.code(), Code::PermissionDenied, "{missing:?}");
    assert_eq!(
        existing.message().replace(&confidential, "ID"),
        missing.message().replace(MISSING, "ID")
    );
    let denied = report_denial(service, &existing, &confidential, "xu.fang").await;
    assert!(denied.reason.contains("engineering"), "{}", denied.reason);
    let missing_event = denial_event_id(&missing);
    assert!(!missing_event.is_empty());
    let status = ask(service, EMPLOYEE, MISSING).await.unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");

    // A caller who reads every report learns that the inspection is missing.
    let status = get(service, AUDITOR, MISSING).await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
}

test_on_both_databases!(
    report_access_on_sqlite,
    report_access_on_postgres,
    report_access_case
);
