//! Pure rules of work reports: the daily deadline and the late flag, report periods, and the
//! form of figure values. Instants are UTC; civil dates and the deadline's time of day are in
//! the business time zone, so storing instants in UTC never moves a work date.

use chrono::{
    DateTime, Datelike, Days, LocalResult, Months, NaiveDate, NaiveTime, TimeZone, Utc, Weekday,
};
use chrono_tz::Tz;
use trace_runtime::{ServiceError, ServiceResult};

/// Parses a time of day written `HH:MM` on a 24-hour clock, for example `18:00`.
pub fn parse_time_of_day(value: &str) -> Option<NaiveTime> {
    let (hours, minutes) = value.split_once(':')?;
    if hours.len() != 2 || minutes.len() != 2 {
        return None;
    }
    NaiveTime::from_hms_opt(hours.parse().ok()?, minutes.parse().ok()?, 0)
}

/// Returns the instant of the daily deadline: `time` on `work_date` in `zone`.
///
/// When daylight saving time repeats that local time, the later instant counts, so nobody is
/// late by the clock change. When the local time does not exist, the deadline is the first
/// instant after the gap.
pub fn deadline(work_date: NaiveDate, time: NaiveTime, zone: Tz) -> DateTime<Utc> {
    let local = work_date.and_time(time);
    match zone.from_local_datetime(&local) {
        LocalResult::Single(instant) => instant.with_timezone(&Utc),
        LocalResult::Ambiguous(_, later) => later.with_timezone(&Utc),
        LocalResult::None => first_instant_after_gap(local, zone),
    }
}

/// Finds the first existing local time after `local`, minute by minute; gaps in the IANA
/// database are at most a few hours.
fn first_instant_after_gap(local: chrono::NaiveDateTime, zone: Tz) -> DateTime<Utc> {
    let mut candidate = local;
    for _ in 0..(24 * 60) {
        candidate += chrono::Duration::minutes(1);
        if let Some(instant) = zone.from_local_datetime(&candidate).earliest() {
            return instant.with_timezone(&Utc);
        }
    }
    // Unreachable with real zone data; treating the local time as UTC keeps the date.
    Utc.from_utc_datetime(&local)
}

/// Minutes a submission came after the deadline, rounded up; 0 when it came on or before it.
pub fn late_minutes(submitted_at: DateTime<Utc>, deadline: DateTime<Utc>) -> u32 {
    let late = submitted_at - deadline;
    if late <= chrono::Duration::zero() {
        return 0;
    }
    let seconds = late.num_seconds() + i64::from(late.subsec_nanos() > 0);
    let minutes = seconds.div_euclid(60) + i64::from(seconds.rem_euclid(60) > 0);
    u32::try_from(minutes).unwrap_or(u32::MAX)
}

/// A report period: its first and last day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    pub start: NaiveDate,
    pub end: NaiveDate,
}

/// Returns the week starting at `week_start`, which must be a Monday.
pub fn week(field: &str, week_start: NaiveDate) -> ServiceResult<Period> {
    if week_start.weekday() != Weekday::Mon {
        return Err(ServiceError::invalid(
            field,
            &week_start.to_string(),
            format!("must be a Monday, got a {}", week_start.weekday()),
        ));
    }
    let end = week_start
        .checked_add_days(Days::new(6))
        .ok_or_else(|| ServiceError::invalid(field, &week_start.to_string(), "is out of range"))?;
    Ok(Period {
        start: week_start,
        end,
    })
}

/// Returns the calendar month `month` of `year`.
pub fn month(year: i32, month: i32) -> ServiceResult<Period> {
    if !(1970..=9999).contains(&year) {
        return Err(ServiceError::invalid(
            "year",
            &year.to_string(),
            "must be 1970 to 9999",
        ));
    }
    let start = u32::try_from(month)
        .ok()
        .and_then(|number| NaiveDate::from_ymd_opt(year, number, 1))
        .ok_or_else(|| ServiceError::invalid("month", &month.to_string(), "must be 1 to 12"))?;
    let end = start
        .checked_add_months(Months::new(1))
        .and_then(|next| next.pred_opt())
        .ok_or_else(|| ServiceError::invalid("year", &year.to_string(), "is out of range"))?;
    Ok(Period { start, end })
}

/// Rejects a period that starts after `today`: nobody reports on work not yet begun.
pub fn started(field: &str, start: NaiveDate, today: NaiveDate) -> ServiceResult<()> {
    if start > today {
        return Err(ServiceError::invalid(
            field,
            &start.to_string(),
            format!("must not be after today, {today}, in the business time zone"),
        ));
    }
    Ok(())
}

/// Checks a figure value: an optional `-`, 1 to 18 digits, and optionally `.` followed by 1
/// to 6 digits.
pub fn figure_value(field: &str, value: &str) -> ServiceResult<String> {
    let unsigned = value.strip_prefix('-').unwrap_or(value);
    let (whole, fraction) = match unsigned.split_once('.') {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (unsigned, None),
    };
    let digits = |text: &str, max: usize| {
        (1..=max).contains(&text.len()) && text.bytes().all(|byte| byte.is_ascii_digit())
    };
    if digits(whole, 18) && fraction.is_none_or(|fraction| digits(fraction, 6)) {
        return Ok(value.to_owned());
    }
    Err(ServiceError::invalid(
        field,
        value,
        "must be a decimal number such as 42, -3 or 98.5 (up to 18 digits before the point and 6 after)",
    ))
}

#[cfg(test)]
mod tests {
    use chrono_tz::{America, Asia, Europe};

    use super::*;

    fn date(year: i32, month: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(year, month, day).unwrap()
    }

    fn six_pm() -> NaiveTime {
        parse_time_of_day("18:00").unwrap()
    }

    fn local(zone: Tz, year: i32, month: u32, day: u32, hour: u32, minute: u32) -> DateTime<Utc> {
        zone.with_ymd_and_hms(year, month, day, hour, minute, 0)
            .single()
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn time_of_day_parses_only_hh_mm() {
        assert_eq!(
            parse_time_of_day("18:00"),
            NaiveTime::from_hms_opt(18, 0, 0)
        );
        assert_eq!(parse_time_of_day("00:00"), NaiveTime::from_hms_opt(0, 0, 0));
        assert_eq!(
            parse_time_of_day("23:59"),
            NaiveTime::from_hms_opt(23, 59, 0)
        );
        for bad in [
            "24:00", "18:60", "6:00", "18", "18:00:00", "", "ab:cd", "-1:00",
        ] {
            assert_eq!(parse_time_of_day(bad), None, "{bad}");
        }
    }

    #[test]
    fn shanghai_deadline_is_ten_utc() {
        let deadline = deadline(date(2026, 3, 2), six_pm(), Asia::Shanghai);

        assert_eq!(
            deadline,
            Utc.with_ymd_and_hms(2026, 3, 2, 10, 0, 0).unwrap()
        );
    }

    #[test]
    fn one_minute_before_is_on_time_and_after_is_late() {
        let deadline = deadline(date(2026, 3, 2), six_pm(), Asia::Shanghai);

        let before = local(Asia::Shanghai, 2026, 3, 2, 17, 59);
        let after = local(Asia::Shanghai, 2026, 3, 2, 18, 1);

        assert_eq!(late_minutes(before, deadline), 0);
        assert_eq!(late_minutes(deadline, deadline), 0);
        assert_eq!(late_minutes(after, deadline), 1);
    }

    #[test]
    fn seconds_past_the_deadline_round_up() {
        let deadline = deadline(date(2026, 3, 2), six_pm(), Asia::Shanghai);

        let just_after = deadline + chrono::Duration::microseconds(1);
        let thirty_seconds = deadline + chrono::Duration::seconds(30);
        let two_minutes = deadline + chrono::Duration::seconds(120);

        assert_eq!(late_minutes(just_after, deadline), 1);
        assert_eq!(late_minutes(thirty_seconds, deadline), 1);
        assert_eq!(late_minutes(two_minutes, deadline), 2);
    }

    #[test]
    fn after_local_midnight_is_late_by_the_whole_evening() {
        let deadline = deadline(date(2026, 3, 2), six_pm(), Asia::Shanghai);

        // 00:30 on 3 March in Shanghai is still 2 March in UTC.
        let after_midnight = local(Asia::Shanghai, 2026, 3, 3, 0, 30);

        assert_eq!(after_midnight.date_naive(), date(2026, 3, 2));
        assert_eq!(late_minutes(after_midnight, deadline), 6 * 60 + 30);
    }

    #[test]
    fn utc_date_before_the_work_date_is_on_time() {
        // 01:00 on 3 March in Shanghai is 17:00 on 2 March in UTC; a report for 3 March
        // submitted then is early, not a day late.
        let deadline = deadline(date(2026, 3, 3), six_pm(), Asia::Shanghai);
        let early_morning = local(Asia::Shanghai, 2026, 3, 3, 1, 0);

        assert_eq!(early_morning.date_naive(), date(2026, 3, 2));
        assert_eq!(late_minutes(early_morning, deadline), 0);
    }

    #[test]
    fn deadline_follows_the_business_zone() {
        let shanghai = deadline(date(2026, 3, 2), six_pm(), Asia::Shanghai);
        let berlin = deadline(date(2026, 3, 2), six_pm(), Europe::Berlin);
        let new_york = deadline(date(2026, 3, 2), six_pm(), America::New_York);

        assert_eq!(berlin, Utc.with_ymd_and_hms(2026, 3, 2, 17, 0, 0).unwrap());
        assert_eq!(
            new_york,
            Utc.with_ymd_and_hms(2026, 3, 2, 23, 0, 0).unwrap()
        );
        // The same instant is late in Shanghai and on time in New York.
        let instant = Utc.with_ymd_and_hms(2026, 3, 2, 12, 0, 0).unwrap();
        assert_eq!(late_minutes(instant, shanghai), 120);
        assert_eq!(late_minutes(instant, new_york), 0);
    }

    #[test]
    fn deadline_across_daylight_saving_changes() {
        // New York moves from UTC-5 to UTC-4 on 8 March 2026.
        let before = deadline(date(2026, 3, 7), six_pm(), America::New_York);
        let after = deadline(date(2026, 3, 9), six_pm(), America::New_York);

        assert_eq!(before, Utc.with_ymd_and_hms(2026, 3, 7, 23, 0, 0).unwrap());
        assert_eq!(after, Utc.with_ymd_and_hms(2026, 3, 9, 22, 0, 0).unwrap());
    }

    #[test]
    fn deadline_in_a_skipped_hour_moves_past_the_gap() {
        // On 29 March 2026 Berlin skips 02:00 to 03:00.
        let time = parse_time_of_day("02:30").unwrap();

        let deadline = deadline(date(2026, 3, 29), time, Europe::Berlin);

        assert_eq!(
            deadline,
            Utc.with_ymd_and_hms(2026, 3, 29, 1, 0, 0).unwrap()
        );
    }

    #[test]
    fn deadline_in_a_repeated_hour_takes_the_later_instant() {
        // On 25 October 2026 Berlin repeats 02:00 to 03:00.
        let time = parse_time_of_day("02:30").unwrap();

        let deadline = deadline(date(2026, 10, 25), time, Europe::Berlin);

        assert_eq!(
            deadline,
            Utc.with_ymd_and_hms(2026, 10, 25, 1, 30, 0).unwrap()
        );
    }

    #[test]
    fn week_must_start_on_monday() {
        let period = week("week_start", date(2026, 3, 2)).unwrap();

        assert_eq!(period.end, date(2026, 3, 8));
        for day in 3..=8 {
            let error = week("week_start", date(2026, 3, day)).unwrap_err();
            assert!(
                matches!(error, ServiceError::InvalidArgument { ref field, .. } if field == "week_start"),
                "{error}"
            );
        }
    }

    #[test]
    fn week_crosses_the_year_end() {
        let period = week("week_start", date(2026, 12, 28)).unwrap();

        assert_eq!(period.end, date(2027, 1, 3));
    }

    #[test]
    fn month_covers_leap_february() {
        assert_eq!(month(2028, 2).unwrap().end, date(2028, 2, 29));
        assert_eq!(month(2026, 2).unwrap().end, date(2026, 2, 28));
        assert_eq!(month(2026, 12).unwrap().end, date(2026, 12, 31));
    }

    #[test]
    fn month_out_of_range_names_the_field() {
        let field = |result: ServiceResult<Period>| match result {
            Err(ServiceError::InvalidArgument { field, .. }) => field,
            other => panic!("expected an invalid argument, got {other:?}"),
        };

        assert_eq!(field(month(2026, 0)), "month");
        assert_eq!(field(month(2026, 13)), "month");
        assert_eq!(field(month(1969, 1)), "year");
    }

    #[test]
    fn future_period_is_rejected() {
        let today = date(2026, 3, 4);

        assert!(started("week_start", date(2026, 3, 2), today).is_ok());
        assert!(started("week_start", today, today).is_ok());
        assert!(started("week_start", date(2026, 3, 9), today).is_err());
    }

    #[test]
    fn figure_values_are_exact_decimals() {
        for good in ["0", "42", "-3", "98.5", "1234567890.123456"] {
            assert_eq!(figure_value("value", good).unwrap(), good);
        }
        for bad in [
            "",
            "-",
            ".5",
            "5.",
            "1e3",
            "1,000",
            "+1",
            "12.1234567",
            " 1",
            "一",
        ] {
            assert!(figure_value("value", bad).is_err(), "{bad:?}");
        }
    }
}
