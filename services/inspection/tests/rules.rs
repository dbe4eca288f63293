//! End-to-end tests of the inspection service against a real `nats-server` with JetStream.
//! The tests publish trace envelopes as the document, meeting, project and worklog services
//! would, move a manual clock and run the sweep with `RunRules`. For each rule they check
//! that it fires with the event ids involved, stays quiet when the record came in time,
//! fires once despite redelivery and repeated sweeps, and closes its finding when the
//! missing record arrives. Further tests cover the completeness score and the finding and
//! report lifecycle with its permission checks.

// The support module serves several test crates; this one uses only part of it.
#[allow(dead_code)]
mod support;

use chrono::{Duration, NaiveDate};
use tonic::Code;
use tonic_types::StatusExt;
use trace_proto::common::v1::{Date, PageRequest};
use trace_proto::event::v1::Envelope;
use trace_proto::inspection::v1 as proto;
use trace_proto::{document, meeting, project, worklog};
use trace_runtime::clock::{Clock, proto_date, timestamp};

use support::{NatsServer, Service, call};

fn date(year: i32, month: u32, day: u32) -> Option<Date> {
    Some(proto_date(
        NaiveDate::from_ymd_opt(year, month, day).unwrap(),
    ))
}

/// Events of one rule case. `opening` and then `opened_by` open the gap of the checked
/// record, and the finding must reference `opened_by`. `in_time` brings another record of
/// the same rule whose required record arrives in time.
struct RuleCase {
    rule: proto::Rule,
    department: &'static str,
    in_time: Vec<Envelope>,
    opening: Vec<Envelope>,
    opened_by: Envelope,
    /// Clock movement from the opening to past the due time.
    advance: Duration,
    /// False for rules due at once, which a sweep before advancing would already see.
    due_later: bool,
}

/// Runs one rule case and then closes the gap with the event `closing` builds.
async fn exercise(
    service: &mut Service,
    case: RuleCase,
    closing: impl FnOnce(&Service) -> Envelope,
) {
    let in_time: Vec<&Envelope> = case.in_time.iter().collect();
    service.publish(&in_time).await;
    let opening: Vec<&Envelope> = case.opening.iter().chain([&case.opened_by]).collect();
    service.publish(&opening).await;
    if case.due_later {
        service.run_rules().await;
        assert!(
            service.findings_of(case.rule).await.is_empty(),
            "{:?} fired before the due time",
            case.rule
        );
    }

    // Past the due time the gap fires, naming the event that opened it.
    service.clock.advance(case.advance);
    service.run_rules().await;
    let findings = service.findings_of(case.rule).await;
    assert_eq!(findings.len(), 1, "{:?} findings: {findings:#?}", case.rule);
    let finding = &findings[0];
    assert_eq!(finding.state, proto::FindingState::Open as i32);
    assert_eq!(finding.department, case.department);
    assert_eq!(finding.references.len(), 1);
    assert_eq!(finding.references[0].event_id, case.opened_by.event_id);
    assert!(finding.references[0].stream_sequence > 0);
    assert_eq!(finding.references[0].entity_id, case.opened_by.entity_id);

    // Redelivered events and repeated sweeps add nothing.
    service.redeliver(&opening).await;
    service.redeliver(&in_time).await;
    service.run_rules().await;
    service.run_rules().await;
    assert_eq!(
        service.findings_of(case.rule).await.len(),
        1,
        "{:?} fired twice",
        case.rule
    );

    // The missing record closes the finding with a finding_closed event.
    let closing = closing(service);
    service.publish(&[&closing]).await;
    let closed = service.finding(&finding.finding_id).await;
    assert_eq!(closed.state, proto::FindingState::Closed as i32);
    assert_eq!(closed.closing_event_id, closing.event_id);
    let closed_events = format!(
        "SELECT COUNT(*) AS n FROM outbox WHERE subject = 'trace.inspection.finding.finding_closed' AND entity_id = '{}'",
        finding.finding_id
    );
    assert_eq!(service.count(&closed_events).await, 1);

    service.redeliver(&[&closing]).await;
    service.run_rules().await;
    assert_eq!(service.findings_of(case.rule).await.len(), 1);
    assert_eq!(service.count(&closed_events).await, 1);
}

fn registered(service: &Service, document_id: &str) -> Envelope {
    let payload = document::v1::DocumentRegistered {
        file_number: format!("ADM-2026-{document_id}"),
        department: "records".to_owned(),
        ..Default::default()
    };
    service.event(
        "document",
        ("document", document_id),
        "registered",
        "zhang.min",
        "records",
        &payload,
    )
}

fn approving_review(service: &Service, document_id: &str) -> Envelope {
    let payload = document::v1::DocumentReviewed {
        revision: 1,
        decision: document::v1::ReviewDecision::Approve as i32,
        opinion: "同意".to_owned(),
    };
    service.event(
        "document",
        ("document", document_id),
        "reviewed",
        "li.na",
        "admin-office",
        &payload,
    )
}

async fn document_review_case(service: &mut Service) {
    let case = RuleCase {
        rule: proto::Rule::DocumentReview,
        department: "records",
        in_time: vec![
            approving_review(service, "doc-b"),
            registered(service, "doc-b"),
        ],
        opening: Vec::new(),
        opened_by: registered(service, "doc-a"),
        advance: Duration::hours(25),
        due_later: true,
    };
    exercise(service, case, |service| approving_review(service, "doc-a")).await;
}

#[tokio::test]
async fn document_registered_without_review() {
    let nats = NatsServer::start();
    let mut service = Service::start(&nats, None).await;

    document_review_case(&mut service).await;

    service.stop().await;
}

fn lent(service: &Service, borrowing_id: &str, document_id: &str) -> Envelope {
    let payload = document::v1::DocumentLent {
        borrowing_id: borrowing_id.to_owned(),
        borrower_id: "xu.fang".to_owned(),
        expected_return_date: date(2026, 12, 8),
    };
    service.event(
        "document",
        ("document", document_id),
        "lent",
        "zhang.min",
        "admin-office",
        &payload,
    )
}

fn returned(service: &Service, borrowing_id: &str, document_id: &str) -> Envelope {
    let payload = document::v1::DocumentReturned {
        borrowing_id: borrowing_id.to_owned(),
        ..Default::default()
    };
    service.event(
        "document",
        ("document", document_id),
        "returned",
        "zhang.min",
        "admin-office",
        &payload,
    )
}

#[tokio::test]
async fn borrowed_document_past_its_return_date() {
    let nats = NatsServer::start();
    let mut service = Service::start(&nats, None).await;

    // The return date 8 December ends at 16:00 UTC, 38 hours after the start.
    let case = RuleCase {
        rule: proto::Rule::BorrowingReturn,
        department: "engineering",
        in_time: vec![
            lent(&service, "b-2", "doc-2"),
            returned(&service, "b-2", "doc-2"),
        ],
        opening: Vec::new(),
        opened_by: lent(&service, "b-1", "doc-1"),
        advance: Duration::hours(39),
        due_later: true,
    };
    exercise(&mut service, case, |service| {
        returned(service, "b-1", "doc-1")
    })
    .await;

    service.stop().await;
}

fn planned(service: &Service, meeting_id: &str) -> Envelope {
    let end = service.clock.now() + Duration::hours(2);
    let payload = meeting::v1::MeetingPlanned {
        topic: "月度例會".to_owned(),
        start_time: Some(timestamp((end - Duration::hours(1)).timestamp_micros())),
        end_time: Some(timestamp(end.timestamp_micros())),
        organiser_id: "li.na".to_owned(),
        ..Default::default()
    };
    service.event(
        "meeting",
        ("meeting", meeting_id),
        "planned",
        "li.na",
        "admin-office",
        &payload,
    )
}

fn minutes(service: &Service, meeting_id: &str) -> Envelope {
    let payload = meeting::v1::MinutesRecorded::default();
    service.event(
        "meeting",
        ("meeting", meeting_id),
        "minutes_recorded",
        "chen.hua",
        "admin-office",
        &payload,
    )
}

#[tokio::test]
async fn meeting_without_minutes_after_its_end() {
    let nats = NatsServer::start();
    let mut service = Service::start(&nats, None).await;

    // Minutes are due 48 hours after the planned end, two hours from now.
    let case = RuleCase {
        rule: proto::Rule::MeetingMinutes,
        department: "admin-office",
        in_time: vec![planned(&service, "m-2"), minutes(&service, "m-2")],
        opening: Vec::new(),
        opened_by: planned(&service, "m-1"),
        advance: Duration::hours(51),
        due_later: true,
    };
    exercise(&mut service, case, |service| minutes(service, "m-1")).await;

    service.stop().await;
}

fn resolution(service: &Service, resolution_id: &str) -> Envelope {
    let payload = meeting::v1::ResolutionCreated {
        meeting_id: "m-1".to_owned(),
        decision_number: 1,
        decision_text: "整理檔案".to_owned(),
        owner_id: "xu.fang".to_owned(),
        due_date: date(2026, 12, 8),
    };
    service.event(
        "meeting",
        ("resolution", resolution_id),
        "created",
        "li.na",
        "admin-office",
        &payload,
    )
}

fn resolution_done(service: &Service, resolution_id: &str) -> Envelope {
    let payload = meeting::v1::ResolutionUpdated {
        update: Some(meeting::v1::ResolutionUpdate {
            update_number: 1,
            status: meeting::v1::ResolutionStatus::Done as i32,
            ..Default::default()
        }),
    };
    service.event(
        "meeting",
        ("resolution", resolution_id),
        "updated",
        "xu.fang",
        "engineering",
        &payload,
    )
}

fn delay_approved(service: &Service, resolution_id: &str) -> Envelope {
    let payload = meeting::v1::DelayDecided {
        delay: Some(meeting::v1::DelayRequest {
            state: meeting::v1::DelayState::Approved as i32,
            ..Default::default()
        }),
        due_date: date(2026, 12, 31),
    };
    service.event(
        "meeting",
        ("resolution", resolution_id),
        "delay_approved",
        "li.na",
        "admin-office",
        &payload,
    )
}

#[tokio::test]
async fn resolution_past_due_without_approved_delay() {
    let nats = NatsServer::start();
    let mut service = Service::start(&nats, None).await;

    // r-2 is done in time and r-3 has an approved delay, so only r-1 fires.
    let case = RuleCase {
        rule: proto::Rule::ResolutionDue,
        department: "engineering",
        in_time: vec![
            resolution(&service, "r-2"),
            resolution_done(&service, "r-2"),
            resolution(&service, "r-3"),
            delay_approved(&service, "r-3"),
        ],
        opening: Vec::new(),
        opened_by: resolution(&service, "r-1"),
        advance: Duration::hours(39),
        due_later: true,
    };
    exercise(&mut service, case, |service| {
        resolution_done(service, "r-1")
    })
    .await;

    service.stop().await;
}

fn acceptance_passed(service: &Service, project_id: &str) -> Envelope {
    let payload = project::v1::AcceptanceDecided {
        acceptance_id: format!("{project_id}-acceptance"),
        result: project::v1::AcceptanceResult::Passed as i32,
        ..Default::default()
    };
    service.event(
        "project",
        ("project", project_id),
        "acceptance_decided",
        "huang.wei",
        "engineering",
        &payload,
    )
}

#[tokio::test]
async fn project_accepted_without_test_report() {
    let nats = NatsServer::start();
    let mut service = Service::start(&nats, None).await;
    let applied = project::v1::AcceptanceApplied {
        acceptance_id: "p-2-acceptance".to_owned(),
        attempt: 1,
        test_report_document_id: uuid::Uuid::now_v7().to_string(),
        ..Default::default()
    };
    let applied = service.event(
        "project",
        ("project", "p-2"),
        "acceptance_applied",
        "wu.lei",
        "engineering",
        &applied,
    );

    let case = RuleCase {
        rule: proto::Rule::ProjectTestReport,
        department: "engineering",
        in_time: vec![applied, acceptance_passed(&service, "p-2")],
        opening: Vec::new(),
        opened_by: acceptance_passed(&service, "p-1"),
        advance: Duration::hours(1),
        due_later: false,
    };
    exercise(&mut service, case, |service| {
        let payload = project::v1::DocumentUpdated {
            update: Some(project::v1::DocumentUpdate {
                kind: project::v1::DocumentKind::TestReport as i32,
                document_id: uuid::Uuid::now_v7().to_string(),
                ..Default::default()
            }),
        };
        service.event(
            "project",
            ("project", "p-1"),
            "document_updated",
            "wu.lei",
            "engineering",
            &payload,
        )
    })
    .await;

    service.stop().await;
}

fn daily_report(service: &Service, user_id: &str, department: &str, day: u32) -> Envelope {
    let payload = worklog::v1::DailyReportSubmitted {
        work_date: date(2026, 12, day),
        department: department.to_owned(),
        ..Default::default()
    };
    let report_id = uuid::Uuid::now_v7().to_string();
    service.event(
        "worklog",
        ("daily_report", &report_id),
        "submitted",
        user_id,
        department,
        &payload,
    )
}

#[tokio::test]
async fn working_day_without_daily_report() {
    let nats = NatsServer::start();
    let mut service = Service::start(&nats, None).await;
    let on_time = daily_report(&service, "xu.fang", "engineering", 7);
    service.publish(&[&on_time]).await;
    service.run_rules().await;
    assert!(
        service
            .findings_of(proto::Rule::DailyReport)
            .await
            .is_empty()
    );

    // Reports of Monday 7 December are due at 10:00 on Tuesday; three of four are missing.
    service.clock.advance(Duration::hours(25));
    service.run_rules().await;
    let findings = service.findings_of(proto::Rule::DailyReport).await;
    assert_eq!(findings.len(), 3, "{findings:#?}");
    assert!(findings.iter().all(|f| !f.description.contains("xu.fang")));
    assert!(
        findings
            .iter()
            .all(|f| f.description.contains("no calendar table"))
    );

    // Over the weekend: Tuesday to Friday add four employees each, Saturday and Sunday none.
    service.clock.advance(Duration::days(6));
    service.run_rules().await;
    let findings = service.findings_of(proto::Rule::DailyReport).await;
    assert_eq!(findings.len(), 3 + 16);
    assert!(
        findings
            .iter()
            .all(|f| !f.description.contains("2026-12-12"))
    );
    assert!(
        findings
            .iter()
            .all(|f| !f.description.contains("2026-12-13"))
    );

    service.redeliver(&[&on_time]).await;
    service.run_rules().await;
    service.run_rules().await;
    assert_eq!(
        service.findings_of(proto::Rule::DailyReport).await.len(),
        19
    );

    // A late report closes the finding of its day.
    let late = daily_report(&service, "li.na", "admin-office", 7);
    service.publish(&[&late]).await;
    let closed: Vec<_> = service
        .findings_of(proto::Rule::DailyReport)
        .await
        .into_iter()
        .filter(|f| f.state == proto::FindingState::Closed as i32)
        .collect();
    assert_eq!(closed.len(), 1);
    assert!(closed[0].description.contains("li.na"));
    assert!(closed[0].description.contains("2026-12-07"));
    assert_eq!(closed[0].closing_event_id, late.event_id);

    findings_page_through_every_finding(&mut service, 19).await;
    service.stop().await;
}

#[tokio::test]
async fn daily_reports_follow_the_calendar() {
    let nats = NatsServer::start();
    // Tuesday 8 December is a holiday and Saturday 12 December a make-up working day.
    let calendar = "[[years]]\nyear = 2026\nsource = \"test calendar\"\n\
                    holidays = [\"2026-12-08\"]\nmake_up_working_days = [\"2026-12-12\"]\n";
    let mut service = Service::start_with(&nats, None, |config, folder| {
        let path = folder.join("calendar.toml");
        std::fs::write(&path, calendar).unwrap();
        config.inspection.calendar_file = Some(path.display().to_string());
    })
    .await;

    // By Monday 14 December, 11:00, the reports of 7, 9, 10, 11 and 12 December are due.
    service
        .clock
        .advance(Duration::days(7) + Duration::hours(1));
    service.run_rules().await;

    let findings = service.findings_of(proto::Rule::DailyReport).await;
    assert_eq!(findings.len(), 5 * 4, "{findings:#?}");
    assert!(
        findings
            .iter()
            .all(|f| !f.description.contains("2026-12-08"))
    );
    assert!(
        findings
            .iter()
            .any(|f| f.description.contains("2026-12-12"))
    );
    assert!(
        findings
            .iter()
            .all(|f| !f.description.contains("no calendar table"))
    );
    service.stop().await;
}

/// Pages through every finding five at a time and checks order and completeness.
async fn findings_page_through_every_finding(service: &mut Service, total: usize) {
    let mut seen: Vec<String> = Vec::new();
    let mut token = String::new();
    loop {
        let request = proto::ListFindingsRequest {
            department: String::new(),
            page: Some(PageRequest {
                page_size: 5,
                page_token: token.clone(),
            }),
            ..Default::default()
        };
        let request = call(request, "li.na", "admin-office", &["administration"]);
        let page = service
            .client
            .list_findings(request)
            .await
            .unwrap()
            .into_inner();
        assert!(page.findings.len() <= 5);
        seen.extend(page.findings.into_iter().map(|f| f.finding_id));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(seen, sorted, "pages must be ordered by id without repeats");
    assert_eq!(seen.len(), total);
}

/// Orders a spot check as the head of engineering and records one finding in it.
async fn spot_check_finding(service: &mut Service) -> (String, proto::Finding) {
    let order = proto::OrderSpotCheckRequest {
        departments: vec!["engineering".to_owned()],
        processes: vec![proto::Process::DailyRecords as i32],
        record_ids: vec!["report-17".to_owned()],
        method: proto::SpotCheckMethod::Interview as i32,
    };
    let request = call(order, "huang.wei", "engineering", &["department_head"]);
    let inspection = service
        .client
        .order_spot_check(request)
        .await
        .unwrap()
        .into_inner()
        .inspection
        .unwrap();
    assert_eq!(inspection.ordered_by, "huang.wei");

    let record = proto::RecordFindingRequest {
        inspection_id: inspection.inspection_id.clone(),
        severity: proto::Severity::High as i32,
        department: "engineering".to_owned(),
        description: "Daily reports of the week lack results.".to_owned(),
        references: vec![proto::RecordReference {
            ledger_sequence: 42,
            event_id: uuid::Uuid::now_v7().to_string(),
            ..Default::default()
        }],
        ..Default::default()
    };
    let request = call(record, "huang.wei", "engineering", &["department_head"]);
    let finding = service
        .client
        .record_finding(request)
        .await
        .unwrap()
        .into_inner()
        .finding
        .unwrap();
    (inspection.inspection_id, finding)
}

fn assignment(
    finding_id: &str,
    responsible_id: &str,
    deadline: Option<Date>,
) -> proto::AssignRectificationRequest {
    proto::AssignRectificationRequest {
        finding_id: finding_id.to_owned(),
        measures: "Rewrite the reports and brief the team.".to_owned(),
        responsible_id: responsible_id.to_owned(),
        deadline,
    }
}

fn verification(finding_id: &str, verdict: proto::Verdict) -> proto::VerifyRectificationRequest {
    proto::VerifyRectificationRequest {
        finding_id: finding_id.to_owned(),
        verdict: verdict as i32,
        opinion: "Checked the rewritten reports.".to_owned(),
    }
}

fn result(finding_id: &str) -> proto::SubmitRectificationResultRequest {
    proto::SubmitRectificationResultRequest {
        finding_id: finding_id.to_owned(),
        result: "All reports rewritten; the team was briefed on 8 December.".to_owned(),
    }
}

#[tokio::test]
async fn rectification_past_its_deadline() {
    let nats = NatsServer::start();
    let mut service = Service::start(&nats, None).await;
    let (_, finding) = spot_check_finding(&mut service).await;
    let finding_id = finding.finding_id.clone();
    let request = call(
        assignment(&finding_id, "xu.fang", date(2026, 12, 8)),
        "huang.wei",
        "engineering",
        &["department_head"],
    );
    service.client.assign_rectification(request).await.unwrap();

    // The service consumes its own assignment event from the stream.
    let obligations = "SELECT COUNT(*) AS n FROM obligations WHERE rule = 'rectification_deadline'";
    service
        .wait_for_count(obligations, 1, "the rectification obligation")
        .await;
    service.run_rules().await;
    assert!(
        service
            .findings_of(proto::Rule::RectificationDeadline)
            .await
            .is_empty()
    );

    // CheckOverdue after today needs the system role, and reports each deadline once.
    let check = |as_of| proto::CheckOverdueRequest { as_of };
    let early = call(
        check(date(2026, 12, 10)),
        "chen.hua",
        "admin-office",
        &["administration"],
    );
    let status = service.client.check_overdue(early).await.unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    let first = call(
        check(date(2026, 12, 10)),
        "scheduler",
        "system",
        &["system"],
    );
    let first = service
        .client
        .check_overdue(first)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.reported_finding_ids, vec![finding_id.clone()]);
    let again = call(
        check(date(2026, 12, 11)),
        "scheduler",
        "system",
        &["system"],
    );
    let again = service
        .client
        .check_overdue(again)
        .await
        .unwrap()
        .into_inner();
    assert!(again.reported_finding_ids.is_empty());
    assert_eq!(again.already_reported, 1);

    // Past the deadline the rule fires once, naming the assignment event.
    let assigned_event = service
        .outbox_event_id(
            "trace.inspection.finding.rectification_assigned",
            &finding_id,
        )
        .await;
    service.clock.advance(Duration::hours(39));
    service.run_rules().await;
    service.run_rules().await;
    let overdue = service
        .findings_of(proto::Rule::RectificationDeadline)
        .await;
    assert_eq!(overdue.len(), 1);
    assert_eq!(overdue[0].references[0].event_id, assigned_event);
    assert_eq!(overdue[0].references[0].entity_id, finding_id);

    // The accepted verification closes the rule's finding.
    let request = call(result(&finding_id), "xu.fang", "engineering", &["employee"]);
    service
        .client
        .submit_rectification_result(request)
        .await
        .unwrap();
    let request = call(
        verification(&finding_id, proto::Verdict::Accepted),
        "chen.hua",
        "admin-office",
        &["administration"],
    );
    service.client.verify_rectification(request).await.unwrap();
    let verified_event = service
        .outbox_event_id("trace.inspection.finding.verified", &finding_id)
        .await;
    service.wait_consumed(&verified_event).await;
    let closed = service.finding(&overdue[0].finding_id).await;
    assert_eq!(closed.state, proto::FindingState::Closed as i32);
    assert_eq!(closed.closing_event_id, verified_event);

    service.stop().await;
}

async fn completeness_case(service: &mut Service) {
    let lent = {
        let payload = document::v1::DocumentLent {
            borrowing_id: "b-late".to_owned(),
            borrower_id: "visitor".to_owned(),
            expected_return_date: date(2026, 12, 8),
        };
        service.event(
            "document",
            ("document", "doc-lent"),
            "lent",
            "zhang.min",
            "records",
            &payload,
        )
    };
    let events = [
        approving_review(service, "doc-ok"),
        registered(service, "doc-ok"),
        registered(service, "doc-missing"),
        lent,
    ];
    service.publish(&events.iter().collect::<Vec<_>>()).await;
    service.clock.advance(Duration::hours(72));
    let late_return = returned(service, "b-late", "doc-lent");
    service.publish(&[&late_return]).await;
    service.run_rules().await;

    let score = |from, to| proto::GetCompletenessScoreRequest {
        department: "records".to_owned(),
        from,
        to,
    };
    let request = call(
        score(date(2026, 12, 1), date(2026, 12, 31)),
        "li.na",
        "admin-office",
        &["administration"],
    );
    let response = service
        .client
        .get_completeness_score(request)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(response.expected, 3);
    assert_eq!(response.present, 2);
    assert_eq!(response.on_time, 1);
    assert!(
        (response.score - 1.0 / 3.0).abs() < 1e-9,
        "{}",
        response.score
    );
    let reviews = &response.rules[0];
    assert_eq!(reviews.rule, proto::Rule::DocumentReview as i32);
    assert_eq!(
        (reviews.expected, reviews.present, reviews.on_time),
        (2, 1, 1)
    );
    let returns = &response.rules[1];
    assert_eq!(
        (returns.expected, returns.present, returns.on_time),
        (1, 1, 0)
    );

    let request = call(
        score(date(2026, 11, 1), date(2026, 11, 30)),
        "li.na",
        "admin-office",
        &["administration"],
    );
    let empty = service
        .client
        .get_completeness_score(request)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(empty.expected, 0);
    assert_eq!(empty.score, 1.0);

    let request = call(
        score(date(2026, 12, 31), date(2026, 12, 1)),
        "li.na",
        "admin-office",
        &["administration"],
    );
    let status = service
        .client
        .get_completeness_score(request)
        .await
        .unwrap_err();
    assert_invalid(&status, "to");
}

#[tokio::test]
async fn completeness_score_of_a_department() {
    let nats = NatsServer::start();
    let mut service = Service::start(&nats, None).await;

    completeness_case(&mut service).await;

    service.stop().await;
}

fn assert_invalid(status: &tonic::Status, field: &str) {
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    let details = status.get_error_details();
    let violations = &details
        .bad_request()
        .expect("field violations")
        .field_violations;
    assert_eq!(violations[0].field, field, "{status:?}");
}

async fn plan_and_period(service: &mut Service) {
    let plan = |cycle: proto::Cycle| proto::CreateInspectionPlanRequest {
        name: "2026 年度月度檢查".to_owned(),
        cycle: cycle as i32,
        departments: vec!["engineering".to_owned(), "admin-office".to_owned()],
        processes: vec![
            proto::Process::Documents as i32,
            proto::Process::DailyRecords as i32,
        ],
    };
    let request = call(
        plan(proto::Cycle::Monthly),
        "huang.wei",
        "engineering",
        &["department_head"],
    );
    let status = service
        .client
        .create_inspection_plan(request)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    let request = call(
        plan(proto::Cycle::Unspecified),
        "li.na",
        "admin-office",
        &["administration"],
    );
    let status = service
        .client
        .create_inspection_plan(request)
        .await
        .unwrap_err();
    assert_invalid(&status, "cycle");
    let request = call(
        plan(proto::Cycle::Monthly),
        "li.na",
        "admin-office",
        &["administration"],
    );
    let plan = service
        .client
        .create_inspection_plan(request)
        .await
        .unwrap()
        .into_inner()
        .plan
        .unwrap();

    let open = |day| proto::OpenInspectionRequest {
        plan_id: plan.plan_id.clone(),
        period_start: date(2026, 12, day),
    };
    let request = call(open(2), "li.na", "admin-office", &["administration"]);
    let status = service.client.open_inspection(request).await.unwrap_err();
    assert_invalid(&status, "period_start");
    let request = call(open(1), "li.na", "admin-office", &["administration"]);
    let opened = service
        .client
        .open_inspection(request)
        .await
        .unwrap()
        .into_inner()
        .inspection
        .unwrap();
    assert_eq!(opened.period_end, date(2026, 12, 31));
    let request = call(open(1), "li.na", "admin-office", &["administration"]);
    let status = service.client.open_inspection(request).await.unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert!(
        status.message().contains("already OPEN"),
        "{}",
        status.message()
    );
}

async fn rectification_lifecycle(service: &mut Service) -> String {
    let request = call(
        proto::OrderSpotCheckRequest::default(),
        "xu.fang",
        "engineering",
        &["employee"],
    );
    let status = service.client.order_spot_check(request).await.unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    let (inspection_id, finding) = spot_check_finding(service).await;
    let finding_id = finding.finding_id.clone();
    assert_eq!(finding.references[0].ledger_sequence, 42);

    let request = call(
        assignment(&finding_id, "nobody", date(2026, 12, 10)),
        "huang.wei",
        "engineering",
        &["department_head"],
    );
    assert_invalid(
        &service
            .client
            .assign_rectification(request)
            .await
            .unwrap_err(),
        "responsible_id",
    );
    let request = call(
        assignment(&finding_id, "xu.fang", date(2026, 12, 10)),
        "huang.wei",
        "engineering",
        &["department_head"],
    );
    let assigned = service
        .client
        .assign_rectification(request)
        .await
        .unwrap()
        .into_inner()
        .finding
        .unwrap();
    assert_eq!(assigned.state, proto::FindingState::Rectifying as i32);

    let request = call(
        result(&finding_id),
        "huang.wei",
        "engineering",
        &["department_head"],
    );
    assert_eq!(
        service
            .client
            .submit_rectification_result(request)
            .await
            .unwrap_err()
            .code(),
        Code::PermissionDenied
    );
    let request = call(result(&finding_id), "xu.fang", "engineering", &["employee"]);
    service
        .client
        .submit_rectification_result(request)
        .await
        .unwrap();

    // A department head who is not in administration may not verify.
    let request = call(
        verification(&finding_id, proto::Verdict::Accepted),
        "huang.wei",
        "engineering",
        &["department_head"],
    );
    assert_eq!(
        service
            .client
            .verify_rectification(request)
            .await
            .unwrap_err()
            .code(),
        Code::PermissionDenied
    );
    let request = call(
        verification(&finding_id, proto::Verdict::Reopened),
        "chen.hua",
        "admin-office",
        &["administration"],
    );
    let reopened = service
        .client
        .verify_rectification(request)
        .await
        .unwrap()
        .into_inner()
        .finding
        .unwrap();
    assert_eq!(reopened.state, proto::FindingState::Reopened as i32);
    let request = call(result(&finding_id), "xu.fang", "engineering", &["employee"]);
    service
        .client
        .submit_rectification_result(request)
        .await
        .unwrap();
    let request = call(
        verification(&finding_id, proto::Verdict::Accepted),
        "chen.hua",
        "admin-office",
        &["administration"],
    );
    let verified = service
        .client
        .verify_rectification(request)
        .await
        .unwrap()
        .into_inner()
        .finding
        .unwrap();
    assert_eq!(verified.state, proto::FindingState::Verified as i32);
    assert_eq!(verified.entity_version, 6);

    let request = call(
        verification(&finding_id, proto::Verdict::Accepted),
        "chen.hua",
        "admin-office",
        &["administration"],
    );
    let status = service
        .client
        .verify_rectification(request)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert!(
        status.message().contains("VERIFIED"),
        "{}",
        status.message()
    );
    inspection_id
}

async fn report_lifecycle(service: &mut Service, inspection_id: &str) {
    let draft = proto::DraftReportRequest {
        inspection_id: inspection_id.to_owned(),
        findings_summary: "One finding on daily reports.".to_owned(),
        suggestions: "Review daily reports weekly.".to_owned(),
        confidentiality: 0,
    };
    let request = call(draft, "chen.hua", "admin-office", &["administration"]);
    let report = service
        .client
        .draft_report(request)
        .await
        .unwrap()
        .into_inner()
        .report
        .unwrap();
    assert_eq!(report.finding_ids.len(), 1);

    let review = proto::ReviewReportRequest {
        inspection_id: inspection_id.to_owned(),
        decision: proto::ReviewDecision::Approve as i32,
        opinion: String::new(),
    };
    let request = call(
        review.clone(),
        "chen.hua",
        "admin-office",
        &["administration"],
    );
    assert_eq!(
        service
            .client
            .review_report(request)
            .await
            .unwrap_err()
            .code(),
        Code::PermissionDenied
    );
    let request = call(
        review,
        "li.na",
        "admin-office",
        &["department_head", "administration"],
    );
    let reviewed = service
        .client
        .review_report(request)
        .await
        .unwrap()
        .into_inner()
        .report
        .unwrap();
    assert_eq!(reviewed.state, proto::ReportState::Reviewed as i32);

    let distribute = proto::DistributeReportRequest {
        inspection_id: inspection_id.to_owned(),
        departments: vec!["engineering".to_owned()],
    };
    let request = call(
        distribute.clone(),
        "chen.hua",
        "admin-office",
        &["administration"],
    );
    let sent = service
        .client
        .distribute_report(request)
        .await
        .unwrap()
        .into_inner()
        .report
        .unwrap();
    assert_eq!(sent.state, proto::ReportState::Distributed as i32);
    assert_eq!(sent.distributed_to, vec!["engineering".to_owned()]);
    let request = call(distribute, "chen.hua", "admin-office", &["administration"]);
    assert_invalid(
        &service.client.distribute_report(request).await.unwrap_err(),
        "departments[0]",
    );
}

async fn whole_lifecycle(service: &mut Service) {
    plan_and_period(service).await;
    let inspection_id = rectification_lifecycle(service).await;
    report_lifecycle(service, &inspection_id).await;

    let results = proto::DepartmentResultsRequest {
        department: "engineering".to_owned(),
        from: date(2026, 12, 1),
        to: date(2026, 12, 31),
    };
    let request = call(results, "li.na", "admin-office", &["administration"]);
    let results = service
        .client
        .department_results(request)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(results.findings, 1);
    assert_eq!(results.high, 1);
    assert_eq!(results.rectified_on_time, 1);
    assert_eq!(results.overdue, 0);

    let unknown = proto::GetFindingRequest {
        finding_id: uuid::Uuid::now_v7().to_string(),
    };
    let request = call(unknown, "li.na", "admin-office", &["administration"]);
    assert_eq!(
        service
            .client
            .get_finding(request)
            .await
            .unwrap_err()
            .code(),
        Code::NotFound
    );
    let request = call(
        proto::RunRulesRequest {},
        "li.na",
        "admin-office",
        &["administration"],
    );
    assert_eq!(
        service.client.run_rules(request).await.unwrap_err().code(),
        Code::PermissionDenied
    );

    // Denied calls add trace.inspection.access.denied events, which are not counted here.
    let events = "SELECT COUNT(*) AS n FROM outbox WHERE subject LIKE 'trace.inspection.%' \
                  AND entity_type <> 'access'";
    // Plan, period, spot check, finding, assignment, two results, two verifications, draft,
    // review and distribution.
    assert_eq!(service.count(events).await, 12);
}

#[tokio::test]
async fn spot_check_to_verified_rectification() {
    let nats = NatsServer::start();
    let mut service = Service::start(&nats, None).await;

    whole_lifecycle(&mut service).await;

    service.stop().await;
}

/// Starts the service on a fresh PostgreSQL database; `None` when none is configured.
async fn postgres_service(nats: &NatsServer) -> Option<Service> {
    let url = support::postgres_url().await?;
    Some(Service::start(nats, Some(url)).await)
}

#[tokio::test]
async fn rules_and_lifecycle_on_postgres() {
    let nats = NatsServer::start();
    let Some(mut service) = postgres_service(&nats).await else {
        eprintln!("TRACE_TEST_DATABASE_URL is not set; skipping the PostgreSQL variant");
        return;
    };
    document_review_case(&mut service).await;
    service.stop().await;

    // Each case counts rows of its own, so each gets a fresh database.
    let mut service = postgres_service(&nats).await.unwrap();
    completeness_case(&mut service).await;
    service.stop().await;

    let mut service = postgres_service(&nats).await.unwrap();
    whole_lifecycle(&mut service).await;
    service.stop().await;
}
