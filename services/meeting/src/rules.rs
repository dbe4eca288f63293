//! Domain rules that need no database: the time bounds of plans and minutes, attendance,
//! due dates, delays, the overdue rule and who may read a meeting. Instants are
//! microseconds since the Unix epoch, and dates are civil dates in the business time zone.

use std::collections::HashSet;

use chrono::{Months, NaiveDate};
use trace_runtime::{ServiceError, ServiceResult};

use crate::state::ResolutionStatus;

/// Microseconds in one hour.
const HOUR_MICROS: i64 = 3_600 * 1_000_000;

/// Maximum duration of a meeting, planned or held.
pub const MAX_DURATION_MICROS: i64 = 24 * HOUR_MICROS;

/// How far ahead a meeting may be planned, in calendar months.
pub const PLAN_HORIZON_MONTHS: u32 = 24;

/// Maximum time by which the held start in the minutes may precede the planned start.
pub const EARLY_START_MICROS: i64 = 24 * HOUR_MICROS;

/// Maximum delay of one request, in calendar months after the current due date.
pub const MAX_DELAY_MONTHS: u32 = 12;

/// Latest due date of a decision, in calendar months after today.
pub const DUE_HORIZON_MONTHS: u32 = 24;

fn rfc3339(micros: i64) -> String {
    trace_runtime::clock::from_micros(micros).to_rfc3339()
}

fn add_months(date: NaiveDate, months: u32) -> NaiveDate {
    // checked_add_months clamps to the end of a shorter month, so 31 January plus one month
    // is 28 or 29 February (the tests pin 29 February plus 12 months). It returns None only
    // past chrono's maximum year, far beyond the year 9999 that date validation allows.
    date.checked_add_months(Months::new(months))
        .unwrap_or(NaiveDate::MAX)
}

/// Checks planned start and end times against the server time `now`: the start is not in
/// the past and at most [`PLAN_HORIZON_MONTHS`] ahead, and the end is after the start by at
/// most [`MAX_DURATION_MICROS`].
pub fn check_plan_times(start: i64, end: i64, now: i64) -> ServiceResult<()> {
    if start < now {
        return Err(ServiceError::invalid(
            "start_time",
            &rfc3339(start),
            format!("must not be before the server time {}", rfc3339(now)),
        ));
    }
    let horizon = trace_runtime::clock::from_micros(now)
        .checked_add_months(Months::new(PLAN_HORIZON_MONTHS))
        .map_or(i64::MAX, |latest| latest.timestamp_micros());
    if start > horizon {
        return Err(ServiceError::invalid(
            "start_time",
            &rfc3339(start),
            format!("must be at most {PLAN_HORIZON_MONTHS} months ahead"),
        ));
    }
    check_duration("end_time", start, end)
}

fn check_duration(field: &str, start: i64, end: i64) -> ServiceResult<()> {
    if end <= start {
        return Err(ServiceError::invalid(
            field,
            &rfc3339(end),
            format!("must be after the start time {}", rfc3339(start)),
        ));
    }
    if end - start > MAX_DURATION_MICROS {
        return Err(ServiceError::invalid(
            field,
            &rfc3339(end),
            "must be at most 24 hours after the start time",
        ));
    }
    Ok(())
}

/// Checks the held times of minutes: the meeting started at most [`EARLY_START_MICROS`]
/// before its planned start and no later than the server time `now`, and ended after it
/// started within [`MAX_DURATION_MICROS`] and no later than `now`.
pub fn check_held_times(start: i64, end: i64, planned_start: i64, now: i64) -> ServiceResult<()> {
    if start < planned_start - EARLY_START_MICROS {
        return Err(ServiceError::invalid(
            "held_start_time",
            &rfc3339(start),
            format!(
                "must be at most one day before the planned start {}",
                rfc3339(planned_start)
            ),
        ));
    }
    if start > now {
        return Err(ServiceError::invalid(
            "held_start_time",
            &rfc3339(start),
            format!("must not be after the server time {}", rfc3339(now)),
        ));
    }
    check_duration("held_end_time", start, end)?;
    if end > now {
        return Err(ServiceError::invalid(
            "held_end_time",
            &rfc3339(end),
            format!("must not be after the server time {}", rfc3339(now)),
        ));
    }
    Ok(())
}

/// Checks a list of user ids: `min..=max` entries, each a valid user id, no duplicates.
pub fn user_ids(
    field: &str,
    values: &[String],
    min: usize,
    max: usize,
) -> ServiceResult<Vec<String>> {
    if values.len() < min || values.len() > max {
        return Err(ServiceError::invalid(
            field,
            &format!("{} entries", values.len()),
            format!("must have {min} to {max} entries"),
        ));
    }
    let mut seen = HashSet::with_capacity(values.len());
    for (index, value) in values.iter().enumerate() {
        let value = trace_runtime::validate::user_id(&format!("{field}[{index}]"), value)?;
        if !seen.insert(value) {
            return Err(ServiceError::invalid(
                format!("{field}[{index}]"),
                &values[index],
                "is listed twice",
            ));
        }
    }
    Ok(values.to_vec())
}

/// Checks that every entry of `values` is a planned attendee.
pub fn require_attendees(
    field: &str,
    values: &[String],
    attendees: &[String],
) -> ServiceResult<()> {
    for (index, value) in values.iter().enumerate() {
        if !attendees.contains(value) {
            return Err(ServiceError::invalid(
                format!("{field}[{index}]"),
                value,
                "is not a planned attendee of the meeting",
            ));
        }
    }
    Ok(())
}

/// Checks attendance in minutes: every planned attendee is exactly once present or absent,
/// no other user is listed, and at least one attendee is present.
pub fn check_attendance(
    present: &[String],
    absent: &[String],
    attendees: &[String],
) -> ServiceResult<()> {
    if present.is_empty() {
        return Err(ServiceError::invalid(
            "present_ids",
            "",
            "must list at least one attendee",
        ));
    }
    require_attendees("present_ids", present, attendees)?;
    require_attendees("absent_ids", absent, attendees)?;
    if let Some(both) = absent.iter().find(|user| present.contains(user)) {
        return Err(ServiceError::invalid(
            "absent_ids",
            both,
            "is also listed as present",
        ));
    }
    if let Some(missing) = attendees
        .iter()
        .find(|user| !present.contains(user) && !absent.contains(user))
    {
        return Err(ServiceError::invalid(
            "absent_ids",
            missing,
            "is a planned attendee missing from both present_ids and absent_ids",
        ));
    }
    Ok(())
}

/// Checks a decision's due date: not before the day the meeting was held, and at most
/// [`DUE_HORIZON_MONTHS`] after today.
pub fn check_due_date(
    field: &str,
    due: NaiveDate,
    held_on: NaiveDate,
    today: NaiveDate,
) -> ServiceResult<()> {
    if due < held_on {
        return Err(ServiceError::invalid(
            field,
            &due.to_string(),
            format!("must not be before the meeting date {held_on}"),
        ));
    }
    let latest = add_months(today, DUE_HORIZON_MONTHS);
    if due > latest {
        return Err(ServiceError::invalid(
            field,
            &due.to_string(),
            format!("must be at most {DUE_HORIZON_MONTHS} months ahead ({latest})"),
        ));
    }
    Ok(())
}

/// Checks a proposed due date of a delay request: later than the current due date, not
/// before today, and at most [`MAX_DELAY_MONTHS`] after the current due date.
pub fn check_proposed_due_date(
    proposed: NaiveDate,
    current: NaiveDate,
    today: NaiveDate,
) -> ServiceResult<()> {
    let field = "proposed_due_date";
    let proposed_text = proposed.to_string();
    if proposed <= current {
        return Err(ServiceError::invalid(
            field,
            &proposed_text,
            format!("must be later than the current due date {current}"),
        ));
    }
    if proposed < today {
        return Err(ServiceError::invalid(
            field,
            &proposed_text,
            format!("must not be before today ({today})"),
        ));
    }
    let latest = add_months(current, MAX_DELAY_MONTHS);
    if proposed > latest {
        return Err(ServiceError::invalid(
            field,
            &proposed_text,
            format!(
                "must be at most {MAX_DELAY_MONTHS} months after the current due date ({latest})"
            ),
        ));
    }
    Ok(())
}

/// Returns true when a resolution is overdue on `as_of`: it is not DONE and `as_of` is after
/// its due date. Work due on a day may be finished on that day. An approved delay has
/// already moved the due date, so the current due date is the one that counts.
pub fn is_overdue(status: ResolutionStatus, due: NaiveDate, as_of: NaiveDate) -> bool {
    status != ResolutionStatus::Done && as_of > due
}

/// Returns true when the overdue check must record an event: the resolution is overdue on
/// `as_of`, and no event was recorded yet for its current due date.
pub fn needs_overdue_mark(
    status: ResolutionStatus,
    due: NaiveDate,
    marked_due: Option<NaiveDate>,
    as_of: NaiveDate,
) -> bool {
    is_overdue(status, due, as_of) && marked_due != Some(due)
}

/// Resolves the date an overdue check runs for. Unset means `today`. A later date is a
/// preview reserved to callers with the `system` role, and an earlier date is invalid.
pub fn overdue_as_of(
    requested: Option<NaiveDate>,
    today: NaiveDate,
    caller_is_system: bool,
) -> ServiceResult<NaiveDate> {
    let Some(as_of) = requested else {
        return Ok(today);
    };
    if as_of < today {
        return Err(ServiceError::invalid(
            "as_of",
            &as_of.to_string(),
            format!("must not be before today ({today})"),
        ));
    }
    if as_of > today && !caller_is_system {
        return Err(ServiceError::denied(format!(
            "checking overdue resolutions as of the later date {as_of} needs the system role"
        )));
    }
    Ok(as_of)
}

pub use trace_runtime::read_scope::ReadScope;

/// The people and the department of one meeting that the read rule compares.
#[derive(Debug, Clone, Copy)]
pub struct MeetingParties<'a> {
    pub organiser_id: &'a str,
    pub department: &'a str,
    /// Planned attendees of the current plan.
    pub attendee_ids: &'a [String],
    /// Owners of the meeting's resolutions.
    pub resolution_owner_ids: &'a [String],
}

/// Returns true when a caller with `scope` may read the meeting of `parties`: the caller
/// organises it, attends it, owns one of its resolutions, supervises or heads its
/// department, or reads every meeting.
pub fn may_read(scope: &ReadScope, parties: &MeetingParties<'_>) -> bool {
    let ReadScope::Involved {
        user_id,
        department,
    } = scope
    else {
        return true;
    };
    parties.organiser_id == user_id
        || parties.attendee_ids.contains(user_id)
        || parties.resolution_owner_ids.contains(user_id)
        || department
            .as_deref()
            .is_some_and(|department| department == parties.department)
}

/// Returns true when `user_id` organises the meeting of `parties`, attends it or owns one of
/// its resolutions. Such a participant reads a CONFIDENTIAL or SECRET meeting without an
/// access request.
pub fn takes_part(user_id: &str, parties: &MeetingParties<'_>) -> bool {
    parties.organiser_id == user_id
        || parties.attendee_ids.iter().any(|id| id == user_id)
        || parties.resolution_owner_ids.iter().any(|id| id == user_id)
}

#[cfg(test)]
mod tests {
    use tonic::Code;
    use trace_runtime::context::{Principal, role};

    use super::*;

    fn date(year: i32, month: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(year, month, day).unwrap()
    }

    fn field<T: std::fmt::Debug>(result: ServiceResult<T>) -> String {
        match result {
            Err(ServiceError::InvalidArgument { field, .. }) => field,
            other => panic!("expected an invalid argument, got {other:?}"),
        }
    }

    #[test]
    fn overdue_starts_the_day_after_the_due_date() {
        let open = ResolutionStatus::Open;
        let due = date(2026, 1, 31);

        assert!(!is_overdue(open, due, date(2026, 1, 30)));
        assert!(!is_overdue(open, due, due));
        assert!(is_overdue(open, due, date(2026, 2, 1)));
        assert!(!is_overdue(ResolutionStatus::Done, due, date(2026, 2, 1)));
    }

    #[test]
    fn overdue_around_29_february() {
        let open = ResolutionStatus::InProgress;
        let leap_day = date(2028, 2, 29);

        assert!(!is_overdue(open, leap_day, leap_day));
        assert!(is_overdue(open, leap_day, date(2028, 3, 1)));
        assert!(is_overdue(open, date(2028, 2, 28), leap_day));
        // 2027 has no 29 February: 28 February is followed by 1 March.
        assert!(is_overdue(open, date(2027, 2, 28), date(2027, 3, 1)));
    }

    #[test]
    fn overdue_across_month_and_year_ends() {
        let open = ResolutionStatus::Open;

        assert!(is_overdue(open, date(2026, 4, 30), date(2026, 5, 1)));
        assert!(!is_overdue(open, date(2026, 4, 30), date(2026, 4, 30)));
        assert!(is_overdue(open, date(2026, 12, 31), date(2027, 1, 1)));
    }

    #[test]
    fn overdue_mark_is_recorded_once_per_due_date() {
        let open = ResolutionStatus::Open;
        let due = date(2026, 3, 31);
        let later = date(2026, 4, 30);

        assert!(needs_overdue_mark(open, due, None, date(2026, 4, 1)));
        assert!(!needs_overdue_mark(open, due, Some(due), date(2026, 4, 2)));
        // After an approved delay the due date moved: no mark until the new date passes.
        assert!(!needs_overdue_mark(
            open,
            later,
            Some(due),
            date(2026, 4, 30)
        ));
        assert!(needs_overdue_mark(open, later, Some(due), date(2026, 5, 1)));
    }

    #[test]
    fn delay_must_move_the_due_date_later() {
        let current = date(2026, 1, 31);
        let today = date(2026, 1, 20);

        assert_eq!(
            field(check_proposed_due_date(current, current, today)),
            "proposed_due_date"
        );
        assert_eq!(
            field(check_proposed_due_date(date(2026, 1, 30), current, today)),
            "proposed_due_date"
        );
        assert!(check_proposed_due_date(date(2026, 2, 1), current, today).is_ok());
    }

    #[test]
    fn delay_is_limited_to_twelve_months_with_month_end_clamping() {
        let leap_day = date(2028, 2, 29);
        let today = date(2028, 2, 1);

        // Twelve months after 29 February is 28 February.
        assert!(check_proposed_due_date(date(2029, 2, 28), leap_day, today).is_ok());
        assert!(check_proposed_due_date(date(2029, 3, 1), leap_day, today).is_err());
    }

    #[test]
    fn delay_to_a_past_date_is_invalid() {
        let current = date(2026, 1, 31);
        let today = date(2026, 3, 10);

        assert!(check_proposed_due_date(date(2026, 3, 9), current, today).is_err());
        assert!(check_proposed_due_date(today, current, today).is_ok());
    }

    #[test]
    fn due_date_bounds() {
        let held_on = date(2026, 2, 27);
        let today = held_on;

        assert!(check_due_date("due", held_on, held_on, today).is_ok());
        assert_eq!(
            field(check_due_date("due", date(2026, 2, 26), held_on, today)),
            "due"
        );
        assert!(check_due_date("due", date(2028, 2, 27), held_on, today).is_ok());
        assert!(check_due_date("due", date(2028, 2, 28), held_on, today).is_err());
    }

    #[test]
    fn as_of_rules() {
        let today = date(2026, 2, 28);

        assert_eq!(overdue_as_of(None, today, false).unwrap(), today);
        assert_eq!(overdue_as_of(Some(today), today, false).unwrap(), today);
        assert_eq!(
            overdue_as_of(Some(date(2026, 3, 1)), today, false)
                .unwrap_err()
                .code(),
            Code::PermissionDenied
        );
        assert_eq!(
            overdue_as_of(Some(date(2026, 3, 1)), today, true).unwrap(),
            date(2026, 3, 1)
        );
        assert_eq!(
            field(overdue_as_of(Some(date(2026, 2, 27)), today, true)),
            "as_of"
        );
    }

    #[test]
    fn plan_times_bounds() {
        let now = 1_800_000_000_000_000;

        assert!(check_plan_times(now, now + HOUR_MICROS, now).is_ok());
        assert_eq!(
            field(check_plan_times(now - 1, now + HOUR_MICROS, now)),
            "start_time"
        );
        assert_eq!(field(check_plan_times(now, now, now)), "end_time");
        assert_eq!(
            field(check_plan_times(now, now + MAX_DURATION_MICROS + 1, now)),
            "end_time"
        );
        let three_years = 3 * 366 * 24 * HOUR_MICROS;
        assert_eq!(
            field(check_plan_times(
                now + three_years,
                now + three_years + 1,
                now
            )),
            "start_time"
        );
    }

    #[test]
    fn held_times_bounds() {
        let planned = 1_800_000_000_000_000;
        let now = planned + 4 * HOUR_MICROS;

        assert!(check_held_times(planned, planned + HOUR_MICROS, planned, now).is_ok());
        assert_eq!(
            field(check_held_times(planned, now + 1, planned, now)),
            "held_end_time"
        );
        assert_eq!(
            field(check_held_times(
                planned - EARLY_START_MICROS - 1,
                planned,
                planned,
                now
            )),
            "held_start_time"
        );
        assert_eq!(
            field(check_held_times(now + 1, now + HOUR_MICROS, planned, now)),
            "held_start_time"
        );
    }

    #[test]
    fn attendance_covers_every_attendee_once() {
        let attendees = vec!["a".to_owned(), "b".to_owned(), "c".to_owned()];
        let list = |values: &[&str]| {
            values
                .iter()
                .map(|value| value.to_string())
                .collect::<Vec<_>>()
        };

        assert!(check_attendance(&list(&["a", "b"]), &list(&["c"]), &attendees).is_ok());
        assert_eq!(
            field(check_attendance(
                &list(&[]),
                &list(&["a", "b", "c"]),
                &attendees
            )),
            "present_ids"
        );
        assert_eq!(
            field(check_attendance(
                &list(&["a", "x"]),
                &list(&["b", "c"]),
                &attendees
            )),
            "present_ids[1]"
        );
        assert_eq!(
            field(check_attendance(
                &list(&["a", "b"]),
                &list(&["b", "c"]),
                &attendees
            )),
            "absent_ids"
        );
        assert_eq!(
            field(check_attendance(&list(&["a"]), &list(&["b"]), &attendees)),
            "absent_ids"
        );
    }

    #[test]
    fn user_id_lists_reject_duplicates_and_bad_counts() {
        let list = |values: &[&str]| {
            values
                .iter()
                .map(|value| value.to_string())
                .collect::<Vec<_>>()
        };

        assert!(user_ids("attendee_ids", &list(&["a", "b"]), 1, 200).is_ok());
        assert_eq!(
            field(user_ids("attendee_ids", &list(&["a", "a"]), 1, 200)),
            "attendee_ids[1]"
        );
        assert_eq!(
            field(user_ids("attendee_ids", &list(&[]), 1, 200)),
            "attendee_ids"
        );
        assert_eq!(
            field(user_ids("attendee_ids", &list(&["a b"]), 1, 200)),
            "attendee_ids[0]"
        );
    }

    fn principal(user_id: &str, department: &str, roles: &[&str]) -> Principal {
        Principal {
            user_id: user_id.to_owned(),
            display_name: String::new(),
            department: department.to_owned(),
            roles: roles.iter().map(|role| (*role).to_owned()).collect(),
        }
    }

    fn may(user_id: &str, department: &str, roles: &[&str]) -> bool {
        let attendees = ["wang.wu".to_owned(), "chen.qi".to_owned()];
        let owners = ["zhao.liu".to_owned()];
        let parties = MeetingParties {
            organiser_id: "li.na",
            department: "finance",
            attendee_ids: &attendees,
            resolution_owner_ids: &owners,
        };
        may_read(
            &ReadScope::of(&principal(user_id, department, roles)),
            &parties,
        )
    }

    #[test]
    fn participants_read_their_meeting() {
        assert!(may("li.na", "engineering", &[role::EMPLOYEE]), "organiser");
        assert!(may("wang.wu", "engineering", &[role::EMPLOYEE]), "attendee");
        assert!(may("zhao.liu", "engineering", &[role::EMPLOYEE]), "owner");
    }

    #[test]
    fn employees_of_the_department_are_denied() {
        assert!(!may("sun.ba", "finance", &[role::EMPLOYEE]));
        assert!(!may("sun.ba", "finance", &[role::FINANCE]));
    }

    #[test]
    fn heads_read_their_department_only() {
        assert!(may("zhou.jie", "finance", &[role::DEPARTMENT_HEAD]));
        assert!(may(
            "zhou.jie",
            "finance",
            &[role::EMPLOYEE, role::SUPERVISOR]
        ));
        assert!(!may("zhou.jie", "engineering", &[role::DEPARTMENT_HEAD]));
        assert!(!may("zhou.jie", "engineering", &[role::SUPERVISOR]));
    }

    #[test]
    fn whole_archive_roles_read_everything() {
        for held in [role::ADMINISTRATION, role::AUDIT, role::SYSTEM] {
            let caller = principal("zhao.yun", "audit", &[role::EMPLOYEE, held]);
            assert_eq!(ReadScope::of(&caller), ReadScope::Whole, "{held}");
            assert!(may("zhao.yun", "audit", &[held]), "{held}");
        }
    }

    #[test]
    fn empty_department_matches_no_meeting() {
        let head = principal("zhou.jie", "", &[role::DEPARTMENT_HEAD]);
        let scope = ReadScope::of(&head);
        assert_eq!(
            scope,
            ReadScope::Involved {
                user_id: "zhou.jie".to_owned(),
                department: None,
            }
        );
        let legacy = MeetingParties {
            organiser_id: "li.na",
            department: "",
            attendee_ids: &[],
            resolution_owner_ids: &[],
        };
        assert!(!may_read(&scope, &legacy));
    }

    #[test]
    fn participants_take_part_heads_do_not() {
        let attendees = ["wang.wu".to_owned()];
        let owners = ["zhao.liu".to_owned()];
        let parties = MeetingParties {
            organiser_id: "li.na",
            department: "finance",
            attendee_ids: &attendees,
            resolution_owner_ids: &owners,
        };
        for participant in ["li.na", "wang.wu", "zhao.liu"] {
            assert!(takes_part(participant, &parties), "{participant}");
        }
        // A head of the meeting's department reads it, but takes no part in it.
        assert!(!takes_part("zhou.jie", &parties));
    }
}
