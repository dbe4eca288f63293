//! The completeness rules as pure functions: what each rule expects, when a missing record
//! becomes a gap, how a gap changes when records arrive, and the completeness score. The
//! database code in [`crate::store`] only loads and saves what these functions decide.

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use trace_proto::inspection::v1 as proto;

use crate::calendar::WorkCalendar;

/// A completeness rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RuleKind {
    DocumentReview,
    BorrowingReturn,
    MeetingMinutes,
    ResolutionDue,
    DailyReport,
    ProjectTestReport,
    RectificationDeadline,
}

impl RuleKind {
    /// Every rule, in the order of `trace.inspection.v1.Rule`.
    pub const ALL: [Self; 7] = [
        Self::DocumentReview,
        Self::BorrowingReturn,
        Self::MeetingMinutes,
        Self::ResolutionDue,
        Self::DailyReport,
        Self::ProjectTestReport,
        Self::RectificationDeadline,
    ];

    /// Returns the name in configuration tables and in the database.
    pub fn name(self) -> &'static str {
        match self {
            Self::DocumentReview => "document_review",
            Self::BorrowingReturn => "borrowing_return",
            Self::MeetingMinutes => "meeting_minutes",
            Self::ResolutionDue => "resolution_due",
            Self::DailyReport => "daily_report",
            Self::ProjectTestReport => "project_test_report",
            Self::RectificationDeadline => "rectification_deadline",
        }
    }

    /// Parses a stored name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|rule| rule.name() == name)
    }

    /// Returns the protobuf value.
    pub fn proto(self) -> proto::Rule {
        match self {
            Self::DocumentReview => proto::Rule::DocumentReview,
            Self::BorrowingReturn => proto::Rule::BorrowingReturn,
            Self::MeetingMinutes => proto::Rule::MeetingMinutes,
            Self::ResolutionDue => proto::Rule::ResolutionDue,
            Self::DailyReport => proto::Rule::DailyReport,
            Self::ProjectTestReport => proto::Rule::ProjectTestReport,
            Self::RectificationDeadline => proto::Rule::RectificationDeadline,
        }
    }

    /// Converts a protobuf value; `None` for unspecified.
    pub fn from_proto(rule: proto::Rule) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.proto() == rule)
    }

    /// Describes the gap of an obligation in a finding.
    pub fn describe(self, obligation: &Obligation) -> String {
        let entity = &obligation.entity_id;
        let key = &obligation.gap_key;
        match self {
            Self::DocumentReview => {
                format!("document {entity} was registered without an approving review")
            }
            Self::BorrowingReturn => format!(
                "borrowing {key} of document {entity} was not returned by its expected return date {}",
                obligation.expected_on
            ),
            Self::MeetingMinutes => {
                format!("meeting {entity} has no minutes after its planned end")
            }
            Self::ResolutionDue => format!(
                "resolution {entity} is past its due date {} without completion or an approved delay",
                obligation.expected_on
            ),
            Self::DailyReport => {
                let mut text = format!(
                    "{entity} submitted no daily report for the working day {}",
                    obligation.expected_on
                );
                if obligation.uncalendared {
                    text.push_str(
                        "; the year has no calendar table, so Monday to Friday were assumed",
                    );
                }
                text
            }
            Self::ProjectTestReport => {
                format!("project {entity} was accepted without a test report")
            }
            Self::RectificationDeadline => format!(
                "the rectification of finding {entity} passed its deadline {} without an accepted verification",
                obligation.expected_on
            ),
        }
    }
}

/// Reference from a finding to an archived trace record.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reference {
    /// Ledger sequence in the archive; 0 when unknown.
    pub ledger_sequence: u64,
    pub event_id: String,
    /// JetStream stream sequence; 0 when unknown.
    pub stream_sequence: u64,
    pub entity_type: String,
    pub entity_id: String,
}

/// A record that a rule expects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Obligation {
    pub rule: RuleKind,
    pub gap_key: String,
    pub department: String,
    pub entity_type: String,
    pub entity_id: String,
    /// Date the obligation counts for in completeness scores.
    pub expected_on: NaiveDate,
    /// Instant after which a missing record is a gap, grace period included.
    pub due_at: DateTime<Utc>,
    /// True when the working day came from no calendar table.
    pub uncalendared: bool,
}

/// State of an obligation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GapState {
    /// Expected and not yet present.
    Open,
    /// Present; on time or not is decided by comparing instants.
    Fulfilled,
    /// Missing past its due time; a finding was raised.
    Fired,
    /// Fired, and the gap closed later; the finding was closed.
    Closed,
    /// No longer expected, such as the minutes of a cancelled meeting.
    Cancelled,
}

impl GapState {
    /// Returns the stored name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Open => "OPEN",
            Self::Fulfilled => "FULFILLED",
            Self::Fired => "FIRED",
            Self::Closed => "CLOSED",
            Self::Cancelled => "CANCELLED",
        }
    }

    /// Parses a stored name.
    pub fn from_name(name: &str) -> Option<Self> {
        [
            Self::Open,
            Self::Fulfilled,
            Self::Fired,
            Self::Closed,
            Self::Cancelled,
        ]
        .into_iter()
        .find(|state| state.name() == name)
    }
}

/// Result of an arriving record for an obligation: its next state and whether its finding
/// closes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    pub state: GapState,
    /// True when the obligation's finding must be closed.
    pub closes_finding: bool,
}

impl Transition {
    fn to(state: GapState, closes_finding: bool) -> Self {
        Self {
            state,
            closes_finding,
        }
    }
}

/// Returns the state after the expected record arrived.
pub fn after_fulfilment(state: GapState) -> Transition {
    match state {
        GapState::Open => Transition::to(GapState::Fulfilled, false),
        GapState::Fired => Transition::to(GapState::Closed, true),
        other => Transition::to(other, false),
    }
}

/// Returns the state after the record stopped being expected.
pub fn after_cancellation(state: GapState) -> Transition {
    match state {
        GapState::Open => Transition::to(GapState::Cancelled, false),
        GapState::Fired => Transition::to(GapState::Closed, true),
        other => Transition::to(other, false),
    }
}

/// Returns the state after the due time moved. An open obligation takes the new time; a fired
/// one closes only when `excuses_gap`, as an approved delay excuses a late resolution.
pub fn after_reschedule(state: GapState, excuses_gap: bool) -> Transition {
    match state {
        GapState::Fired if excuses_gap => Transition::to(GapState::Closed, true),
        other => Transition::to(other, false),
    }
}

/// Returns true when an obligation must raise a finding now: it is open, its rule is enabled
/// and its due time has passed.
pub fn fires(state: GapState, due_at: DateTime<Utc>, now: DateTime<Utc>, enabled: bool) -> bool {
    enabled && state == GapState::Open && due_at <= now
}

/// Returns the first instant after `date` in the business time zone.
pub fn end_of_day(date: NaiveDate, zone: Tz) -> DateTime<Utc> {
    let next = date.succ_opt().unwrap_or(date);
    let midnight = next.and_hms_opt(0, 0, 0).unwrap_or_default();
    zone.from_local_datetime(&midnight)
        .earliest()
        .map_or_else(|| midnight.and_utc(), |local| local.with_timezone(&Utc))
}

/// Due time of a record expected by the end of `date`, plus the grace period.
pub fn due_after_date(date: NaiveDate, zone: Tz, grace: Duration) -> DateTime<Utc> {
    end_of_day(date, zone) + grace
}

/// Returns true when a record that arrived at `fulfilled_at` met `due_at`.
pub fn on_time(fulfilled_at: Option<DateTime<Utc>>, due_at: DateTime<Utc>) -> bool {
    fulfilled_at.is_some_and(|instant| instant <= due_at)
}

/// Returns `on_time / expected`, or 1.0 when nothing was expected.
pub fn score(on_time: u32, expected: u32) -> f64 {
    if expected == 0 {
        1.0
    } else {
        f64::from(on_time) / f64::from(expected)
    }
}

/// Gap key of a daily report: the author and the working day.
pub fn daily_report_key(user_id: &str, work_date: NaiveDate) -> String {
    format!("{user_id}/{work_date}")
}

/// Employee who is expected to submit daily reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Employee {
    pub user_id: String,
    pub department: String,
}

/// Returns the daily report obligations of `date`: one per employee on a working day, none on
/// a rest day.
pub fn daily_obligations(
    calendar: &WorkCalendar,
    employees: &[Employee],
    date: NaiveDate,
    zone: Tz,
    grace: Duration,
) -> Vec<Obligation> {
    let status = calendar.day_status(date);
    if !status.working {
        return Vec::new();
    }
    employees
        .iter()
        .map(|employee| Obligation {
            rule: RuleKind::DailyReport,
            gap_key: daily_report_key(&employee.user_id, date),
            department: employee.department.clone(),
            entity_type: "daily_report".to_owned(),
            entity_id: employee.user_id.clone(),
            expected_on: date,
            due_at: due_after_date(date, zone, grace),
            uncalendared: status.uncalendared,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHANGHAI: Tz = chrono_tz::Asia::Shanghai;

    fn date(year: i32, month: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(year, month, day).unwrap()
    }

    fn instant(day: u32, hour: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, day, hour, 0, 0).unwrap()
    }

    #[test]
    fn end_of_day_is_local_midnight() {
        // Midnight in Shanghai (UTC+8) is 16:00 UTC of the day before.
        assert_eq!(end_of_day(date(2026, 12, 7), SHANGHAI), instant(7, 16));
    }

    #[test]
    fn open_obligation_fires_only_after_due_time() {
        let due = instant(7, 16);

        assert!(!fires(GapState::Open, due, instant(7, 15), true));
        assert!(fires(GapState::Open, due, due, true));
        assert!(fires(GapState::Open, due, instant(9, 0), true));
    }

    #[test]
    fn obligation_fires_once_and_not_when_disabled() {
        let due = instant(7, 16);

        assert!(!fires(GapState::Fired, due, instant(9, 0), true));
        assert!(!fires(GapState::Fulfilled, due, instant(9, 0), true));
        assert!(!fires(GapState::Open, due, instant(9, 0), false));
    }

    #[test]
    fn fulfilment_closes_a_fired_gap() {
        assert_eq!(
            after_fulfilment(GapState::Open),
            Transition::to(GapState::Fulfilled, false)
        );
        assert_eq!(
            after_fulfilment(GapState::Fired),
            Transition::to(GapState::Closed, true)
        );
        assert_eq!(
            after_fulfilment(GapState::Closed),
            Transition::to(GapState::Closed, false)
        );
    }

    #[test]
    fn cancellation_and_excused_reschedule_close_a_fired_gap() {
        assert_eq!(
            after_cancellation(GapState::Open).state,
            GapState::Cancelled
        );
        assert!(after_cancellation(GapState::Fired).closes_finding);
        assert!(after_reschedule(GapState::Fired, true).closes_finding);
        assert!(!after_reschedule(GapState::Fired, false).closes_finding);
        assert_eq!(after_reschedule(GapState::Open, true).state, GapState::Open);
    }

    #[test]
    fn on_time_compares_with_due_time() {
        let due = instant(7, 16);

        assert!(on_time(Some(due), due));
        assert!(!on_time(Some(instant(8, 0)), due));
        assert!(!on_time(None, due));
    }

    #[test]
    fn score_is_one_when_nothing_was_expected() {
        assert_eq!(score(0, 0), 1.0);
        assert_eq!(score(3, 4), 0.75);
    }

    #[test]
    fn daily_obligations_skip_weekends_and_flag_uncalendared_years() {
        let employees = vec![Employee {
            user_id: "xu.fang".to_owned(),
            department: "engineering".to_owned(),
        }];
        let calendar = WorkCalendar::default();
        let grace = Duration::hours(10);

        let saturday = daily_obligations(&calendar, &employees, date(2026, 12, 5), SHANGHAI, grace);
        let monday = daily_obligations(&calendar, &employees, date(2026, 12, 7), SHANGHAI, grace);

        assert!(saturday.is_empty());
        assert_eq!(monday.len(), 1);
        assert_eq!(monday[0].gap_key, "xu.fang/2026-12-07");
        assert_eq!(monday[0].due_at, instant(8, 2));
        assert!(monday[0].uncalendared);
        assert!(
            RuleKind::DailyReport
                .describe(&monday[0])
                .contains("no calendar table")
        );
    }

    #[test]
    fn rule_names_round_trip() {
        for rule in RuleKind::ALL {
            assert_eq!(RuleKind::from_name(rule.name()), Some(rule));
            assert_eq!(RuleKind::from_proto(rule.proto()), Some(rule));
        }
    }
}
