//! Unit tests of each rule's evaluation: events in, obligations out, and whether the rule
//! fires against a given clock.

use chrono::{Duration, TimeZone};
use trace_proto::common::v1::Date;
use trace_proto::event::v1::Actor;
use trace_runtime::clock::{proto_date, timestamp};
use trace_runtime::event::pack;

use super::*;
use crate::rules::{GapState, fires};

const SHANGHAI: Tz = chrono_tz::Asia::Shanghai;

const DIRECTORY: &str = r#"
[[departments]]
id = "admin-office"
name = "Administration"
head = "li.na"

[[departments]]
id = "engineering"
name = "Engineering"
head = "huang.wei"

[[employees]]
id = "li.na"
name = "Li Na"
department = "admin-office"
position = "head"
roles = ["department_head", "administration"]

[[employees]]
id = "huang.wei"
name = "Huang Wei"
department = "engineering"
position = "head"
roles = ["department_head"]
"#;

fn at(day: u32, hour: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, day, hour, 0, 0).unwrap()
}

fn date(day: u32) -> Option<Date> {
    Some(proto_date(NaiveDate::from_ymd_opt(2026, 12, day).unwrap()))
}

fn envelope<M: prost::Name>(
    entity_type: &str,
    entity_id: &str,
    occurred: DateTime<Utc>,
    payload: &M,
) -> Envelope {
    Envelope {
        event_id: uuid::Uuid::now_v7().to_string(),
        entity_type: entity_type.to_owned(),
        entity_id: entity_id.to_owned(),
        occurred_at: Some(timestamp(occurred.timestamp_micros())),
        actor: Some(Actor {
            user_id: "huang.wei".to_owned(),
            department: "engineering".to_owned(),
            ..Actor::default()
        }),
        payload: Some(pack(payload)),
        ..Envelope::default()
    }
}

/// Runs the observer with the default rule settings over one event.
fn observe(envelope: &Envelope) -> Vec<Observation> {
    let directory = Directory::parse(DIRECTORY).unwrap();
    let rules = RuleTable::default();
    let observer = Observer {
        directory: &directory,
        zone: SHANGHAI,
        rules: &rules,
    };
    observer.observe(envelope, &EventMeta::of(envelope, 7))
}

fn expected(observations: &[Observation]) -> Obligation {
    match observations.first() {
        Some(Observation::Expect(obligation)) => obligation.clone(),
        other => panic!("expected an obligation, got {other:?}"),
    }
}

fn fulfils(observations: &[Observation], rule: RuleKind, gap_key: &str) -> bool {
    observations.contains(&Observation::Fulfil {
        rule,
        gap_key: gap_key.to_owned(),
    })
}

#[test]
fn document_registered_without_review_fires_after_grace() {
    let registered = document::v1::DocumentRegistered {
        department: "engineering".to_owned(),
        ..Default::default()
    };
    let obligation = expected(&observe(&envelope(
        "document",
        "doc-1",
        at(7, 2),
        &registered,
    )));

    assert_eq!(obligation.rule, RuleKind::DocumentReview);
    assert_eq!(obligation.gap_key, "doc-1");
    assert_eq!(obligation.due_at, at(8, 2));
    assert!(!fires(GapState::Open, obligation.due_at, at(8, 1), true));
    assert!(fires(GapState::Open, obligation.due_at, at(8, 2), true));
}

#[test]
fn only_an_approving_review_fulfils_the_document_rule() {
    let approve = document::v1::DocumentReviewed {
        decision: document::v1::ReviewDecision::Approve as i32,
        ..Default::default()
    };
    let reject = document::v1::DocumentReviewed {
        decision: document::v1::ReviewDecision::Return as i32,
        ..Default::default()
    };

    let approved = observe(&envelope("document", "doc-1", at(7, 1), &approve));
    let returned = observe(&envelope("document", "doc-1", at(7, 1), &reject));

    assert!(fulfils(&approved, RuleKind::DocumentReview, "doc-1"));
    assert!(returned.is_empty());
}

#[test]
fn borrowing_is_due_at_the_end_of_its_return_date() {
    let lent = document::v1::DocumentLent {
        borrowing_id: "b-1".to_owned(),
        borrower_id: "li.na".to_owned(),
        expected_return_date: date(10),
    };
    let returned = document::v1::DocumentReturned {
        borrowing_id: "b-1".to_owned(),
        ..Default::default()
    };
    let lost = document::v1::DocumentLost {
        borrowing_id: "b-1".to_owned(),
        ..Default::default()
    };

    let obligation = expected(&observe(&envelope("document", "doc-1", at(7, 2), &lent)));

    assert_eq!(obligation.gap_key, "b-1");
    assert_eq!(obligation.department, "admin-office");
    // The end of 10 December in Shanghai is 16:00 UTC that day.
    assert_eq!(obligation.due_at, at(10, 16));
    assert!(!fires(GapState::Open, obligation.due_at, at(10, 15), true));
    assert!(fires(GapState::Open, obligation.due_at, at(10, 16), true));
    assert!(fulfils(
        &observe(&envelope("document", "doc-1", at(9, 0), &returned)),
        RuleKind::BorrowingReturn,
        "b-1"
    ));
    assert!(fulfils(
        &observe(&envelope("document", "doc-1", at(9, 0), &lost)),
        RuleKind::BorrowingReturn,
        "b-1"
    ));
}

#[test]
fn meeting_minutes_are_due_hours_after_the_planned_end() {
    let planned = meeting::v1::MeetingPlanned {
        end_time: Some(timestamp(at(7, 4).timestamp_micros())),
        organiser_id: "li.na".to_owned(),
        ..Default::default()
    };
    let revised = meeting::v1::MeetingPlanRevised {
        end_time: Some(timestamp(at(8, 4).timestamp_micros())),
        ..Default::default()
    };

    let obligation = expected(&observe(&envelope("meeting", "m-1", at(6, 0), &planned)));
    let moved = observe(&envelope("meeting", "m-1", at(6, 1), &revised));
    let cancelled = observe(&envelope(
        "meeting",
        "m-1",
        at(6, 2),
        &meeting::v1::MeetingCancelled::default(),
    ));
    let minutes = observe(&envelope(
        "meeting",
        "m-1",
        at(7, 6),
        &meeting::v1::MinutesRecorded::default(),
    ));

    assert_eq!(obligation.due_at, at(7, 4) + Duration::hours(48));
    assert_eq!(obligation.department, "admin-office");
    assert!(
        matches!(&moved[0], Observation::Reschedule { due_at, excuses_gap: false, .. } if *due_at == at(10, 4))
    );
    assert!(matches!(
        &cancelled[0],
        Observation::Cancel {
            rule: RuleKind::MeetingMinutes,
            ..
        }
    ));
    assert!(fulfils(&minutes, RuleKind::MeetingMinutes, "m-1"));
}

#[test]
fn resolution_past_due_is_excused_only_by_an_approved_delay() {
    let created = meeting::v1::ResolutionCreated {
        owner_id: "huang.wei".to_owned(),
        due_date: date(10),
        ..Default::default()
    };
    let approved = meeting::v1::DelayDecided {
        delay: Some(meeting::v1::DelayRequest {
            state: meeting::v1::DelayState::Approved as i32,
            ..Default::default()
        }),
        due_date: date(20),
    };
    let rejected = meeting::v1::DelayDecided {
        delay: Some(meeting::v1::DelayRequest {
            state: meeting::v1::DelayState::Rejected as i32,
            ..Default::default()
        }),
        due_date: date(10),
    };

    let obligation = expected(&observe(&envelope("resolution", "r-1", at(7, 0), &created)));
    let delay = observe(&envelope("resolution", "r-1", at(8, 0), &approved));
    let no_delay = observe(&envelope("resolution", "r-1", at(8, 0), &rejected));

    assert_eq!(obligation.due_at, at(10, 16));
    assert!(
        matches!(&delay[0], Observation::Reschedule { due_at, excuses_gap: true, .. } if *due_at == at(20, 16))
    );
    assert!(no_delay.is_empty());
}

#[test]
fn resolution_done_fulfils_and_progress_does_not() {
    let update = |status: meeting::v1::ResolutionStatus| meeting::v1::ResolutionUpdated {
        update: Some(meeting::v1::ResolutionUpdate {
            status: status as i32,
            ..Default::default()
        }),
    };

    let done = observe(&envelope(
        "resolution",
        "r-1",
        at(9, 0),
        &update(meeting::v1::ResolutionStatus::Done),
    ));
    let progress = observe(&envelope(
        "resolution",
        "r-1",
        at(9, 0),
        &update(meeting::v1::ResolutionStatus::InProgress),
    ));

    assert!(fulfils(&done, RuleKind::ResolutionDue, "r-1"));
    assert!(progress.is_empty());
}

#[test]
fn daily_report_fulfils_the_author_and_work_date() {
    let report = worklog::v1::DailyReportSubmitted {
        work_date: date(7),
        ..Default::default()
    };

    let observed = observe(&envelope("daily_report", "report-1", at(7, 10), &report));

    assert!(fulfils(
        &observed,
        RuleKind::DailyReport,
        "huang.wei/2026-12-07"
    ));
}

#[test]
fn passed_acceptance_expects_a_test_report() {
    let passed = project::v1::AcceptanceDecided {
        result: project::v1::AcceptanceResult::Passed as i32,
        ..Default::default()
    };
    let failed = project::v1::AcceptanceDecided {
        result: project::v1::AcceptanceResult::Failed as i32,
        ..Default::default()
    };
    let applied = project::v1::AcceptanceApplied {
        test_report_document_id: "doc-9".to_owned(),
        ..Default::default()
    };

    let obligation = expected(&observe(&envelope("project", "p-1", at(7, 3), &passed)));

    assert_eq!(obligation.rule, RuleKind::ProjectTestReport);
    assert_eq!(obligation.due_at, at(7, 3));
    assert!(fires(GapState::Open, obligation.due_at, at(7, 3), true));
    assert!(observe(&envelope("project", "p-1", at(7, 3), &failed)).is_empty());
    assert!(fulfils(
        &observe(&envelope("project", "p-1", at(6, 0), &applied)),
        RuleKind::ProjectTestReport,
        "p-1"
    ));
}

#[test]
fn assigned_rectification_is_due_after_its_deadline() {
    let assigned = inspection::v1::RectificationAssigned {
        deadline: date(10),
        department: "engineering".to_owned(),
        ..Default::default()
    };
    let accepted = inspection::v1::RectificationVerified {
        verdict: inspection::v1::Verdict::Accepted as i32,
        ..Default::default()
    };
    let reopened = inspection::v1::RectificationVerified {
        verdict: inspection::v1::Verdict::Reopened as i32,
        ..Default::default()
    };

    let observed = observe(&envelope("finding", "f-1", at(7, 0), &assigned));
    let obligation = expected(&observed);

    assert_eq!(obligation.rule, RuleKind::RectificationDeadline);
    assert_eq!(obligation.due_at, at(10, 16));
    assert!(matches!(
        &observed[1],
        Observation::Reschedule {
            excuses_gap: false,
            ..
        }
    ));
    assert!(fulfils(
        &observe(&envelope("finding", "f-1", at(9, 0), &accepted)),
        RuleKind::RectificationDeadline,
        "f-1"
    ));
    assert!(observe(&envelope("finding", "f-1", at(9, 0), &reopened)).is_empty());
}

#[test]
fn unknown_event_types_are_ignored() {
    let unknown = prost_types::Any {
        type_url: "type.googleapis.com/trace.future.v1.Unknown".to_owned(),
        value: vec![1, 2, 3],
    };
    let mut event = envelope(
        "document",
        "doc-1",
        at(7, 0),
        &document::v1::DocumentRead::default(),
    );
    event.payload = Some(unknown);

    assert!(observe(&event).is_empty());
    assert!(
        observe(&envelope(
            "document",
            "doc-1",
            at(7, 0),
            &document::v1::DocumentRead::default()
        ))
        .is_empty()
    );
}
