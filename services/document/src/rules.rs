//! Domain rules that need no database: categories, file numbers and the calendar rules of
//! borrowing. Dates are civil dates in the business time zone.

use chrono::{Months, NaiveDate};
use trace_runtime::{ServiceError, ServiceResult};

/// Maximum length of a category.
const CATEGORY_MAX_CHARS: usize = 32;

/// Checks a category: 1 to 32 characters of `A-Z`, `0-9` and `-`, for example `CONTRACT`.
pub fn category(field: &str, value: &str) -> ServiceResult<String> {
    trace_runtime::validate::token(
        field,
        value,
        CATEGORY_MAX_CHARS,
        |c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '-',
        "A-Z, 0-9 and '-'",
    )
}

/// Formats a file number `<CATEGORY>-<YEAR>-<serial>`, with the serial padded to four
/// digits. Serials above 9999 keep all their digits, so numbers stay unique.
pub fn file_number(category: &str, year: i32, serial: i32) -> String {
    format!("{category}-{year}-{serial:04}")
}

/// Checks an expected return date against `today`: from today up to one calendar year
/// later. One year after 29 February is 28 February.
pub fn check_expected_return_date(
    field: &str,
    expected: NaiveDate,
    today: NaiveDate,
) -> ServiceResult<()> {
    let shown = expected.to_string();
    if expected < today {
        return Err(ServiceError::invalid(
            field,
            &shown,
            format!("must not be before today ({today})"),
        ));
    }
    let latest = latest_return_date(today);
    if expected > latest {
        return Err(ServiceError::invalid(
            field,
            &shown,
            format!("must be at most one year ahead ({latest})"),
        ));
    }
    Ok(())
}

/// The last expected return date allowed on `today`.
pub fn latest_return_date(today: NaiveDate) -> NaiveDate {
    // checked_add_months clamps to the end of a shorter month, so 29 February plus 12
    // months is 28 February. It returns None only past chrono's maximum year (262142).
    today
        .checked_add_months(Months::new(12))
        .unwrap_or(NaiveDate::MAX)
}

/// Returns true when a document returned on `returned_on` is late: after the expected
/// return date. A return on the expected date is on time.
pub fn is_late(returned_on: NaiveDate, expected: NaiveDate) -> bool {
    returned_on > expected
}

/// Resolves the date an overdue check runs for. Unset means `today`. A later date is a
/// preview reserved to callers with the `system` role, and an earlier date is invalid.
pub fn overdue_as_of(
    field: &str,
    requested: Option<NaiveDate>,
    today: NaiveDate,
    caller_is_system: bool,
) -> ServiceResult<NaiveDate> {
    let Some(as_of) = requested else {
        return Ok(today);
    };
    if as_of < today {
        return Err(ServiceError::invalid(
            field,
            &as_of.to_string(),
            format!("must not be before today ({today})"),
        ));
    }
    if as_of > today && !caller_is_system {
        return Err(ServiceError::denied(format!(
            "checking overdue borrowings as of {as_of}, after today ({today}), \
             needs the system role"
        )));
    }
    Ok(as_of)
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, TimeZone, Utc};
    use tonic::Code;
    use trace_runtime::clock::{Clock, ManualClock, local_date};

    use super::*;

    fn date(year: i32, month: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(year, month, day).unwrap()
    }

    fn code<T>(result: ServiceResult<T>) -> Code {
        result.map_or_else(|error| error.code(), |_| Code::Ok)
    }

    #[test]
    fn category_accepts_upper_case_digits_and_dash() {
        assert_eq!(code(category("category", "CONTRACT")), Code::Ok);
        assert_eq!(code(category("category", "HR-2026")), Code::Ok);
        for bad in [
            "",
            "contract",
            "A.B",
            "A*",
            "A>",
            "A B",
            "合同",
            &"A".repeat(33),
        ] {
            assert_eq!(
                code(category("category", bad)),
                Code::InvalidArgument,
                "{bad:?}"
            );
        }
    }

    #[test]
    fn file_number_pads_serial_to_four_digits() {
        assert_eq!(file_number("CONTRACT", 2026, 7), "CONTRACT-2026-0007");
        assert_eq!(file_number("HR", 2027, 1234), "HR-2027-1234");
        assert_eq!(file_number("HR", 2027, 12345), "HR-2027-12345");
    }

    #[test]
    fn return_date_window_is_today_to_one_year() {
        let today = date(2026, 3, 2);

        assert_eq!(
            code(check_expected_return_date("due", today, today)),
            Code::Ok
        );
        assert_eq!(
            code(check_expected_return_date("due", date(2027, 3, 2), today)),
            Code::Ok
        );
        assert_eq!(
            code(check_expected_return_date("due", date(2026, 3, 1), today)),
            Code::InvalidArgument
        );
        assert_eq!(
            code(check_expected_return_date("due", date(2027, 3, 3), today)),
            Code::InvalidArgument
        );
    }

    #[test]
    fn one_year_after_leap_day_is_february_28() {
        assert_eq!(latest_return_date(date(2028, 2, 29)), date(2029, 2, 28));
    }

    #[test]
    fn today_follows_the_business_zone() {
        // 2026-03-01 17:00 UTC is already 2 March in Shanghai (UTC+8).
        let clock = ManualClock::new(Utc.with_ymd_and_hms(2026, 3, 1, 17, 0, 0).unwrap());
        let today = local_date(clock.now(), chrono_tz::Asia::Shanghai);

        assert_eq!(today, date(2026, 3, 2));
        assert_eq!(
            code(check_expected_return_date("due", date(2026, 3, 1), today)),
            Code::InvalidArgument
        );

        clock.advance(Duration::days(1));
        let tomorrow = local_date(clock.now(), chrono_tz::Asia::Shanghai);

        assert_eq!(tomorrow, date(2026, 3, 3));
    }

    #[test]
    fn return_on_due_date_is_not_late() {
        let due = date(2026, 3, 20);

        assert!(!is_late(due, due));
        assert!(is_late(date(2026, 3, 21), due));
        assert!(!is_late(date(2026, 3, 19), due));
    }

    #[test]
    fn overdue_as_of_rules() {
        let today = date(2026, 3, 2);
        let later = date(2026, 4, 1);
        let earlier = date(2026, 3, 1);

        assert_eq!(overdue_as_of("as_of", None, today, false).unwrap(), today);
        assert_eq!(
            overdue_as_of("as_of", Some(today), today, false).unwrap(),
            today
        );
        assert_eq!(
            overdue_as_of("as_of", Some(later), today, true).unwrap(),
            later
        );
        assert_eq!(
            code(overdue_as_of("as_of", Some(later), today, false)),
            Code::PermissionDenied
        );
        assert_eq!(
            code(overdue_as_of("as_of", Some(earlier), today, true)),
            Code::InvalidArgument
        );
    }
}
