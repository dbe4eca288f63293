//! The working-day calendar: one table per year listing public holidays and the weekend days
//! that are make-up working days, read from the TOML file named by `worklog.calendar_file`.
//!
//! Monday to Friday are working days unless listed as holidays, and Saturdays and Sundays are
//! rest days unless listed as make-up working days. A year without a table is reported as
//! [`DayKind::CalendarMissing`], never guessed from the weekday alone.
//!
//! ```toml
//! [[years]]
//! year = 2026
//! source = "State Council notice of 4 November 2025"
//! holidays = ["2026-01-01", "2026-01-02"]
//! make_up_working_days = ["2026-01-04"]
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use chrono::{Datelike, NaiveDate, Weekday};
use serde::Deserialize;

/// Classification of a date by the calendar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DayKind {
    /// Monday to Friday and not a public holiday.
    WorkingDay,
    /// A Saturday or Sunday listed as a make-up working day.
    MakeUpWorkingDay,
    /// A Saturday or Sunday that is not a make-up working day.
    Weekend,
    /// A listed public holiday.
    PublicHoliday,
    /// The calendar has no table for the year.
    CalendarMissing,
}

impl DayKind {
    /// Returns true for a weekend day or a public holiday. Days of years without a table
    /// return false because they are unknown rather than rest days.
    pub fn is_non_working(self) -> bool {
        matches!(self, Self::Weekend | Self::PublicHoliday)
    }

    /// Returns the name stored in the database and shown in messages.
    pub fn name(self) -> &'static str {
        match self {
            Self::WorkingDay => "WORKING_DAY",
            Self::MakeUpWorkingDay => "MAKE_UP_WORKING_DAY",
            Self::Weekend => "WEEKEND",
            Self::PublicHoliday => "PUBLIC_HOLIDAY",
            Self::CalendarMissing => "CALENDAR_MISSING",
        }
    }

    /// Parses a stored name.
    pub fn from_name(name: &str) -> Option<Self> {
        [
            Self::WorkingDay,
            Self::MakeUpWorkingDay,
            Self::Weekend,
            Self::PublicHoliday,
            Self::CalendarMissing,
        ]
        .into_iter()
        .find(|kind| kind.name() == name)
    }
}

/// A calendar file that failed to load or is inconsistent.
#[derive(Debug, thiserror::Error)]
pub enum CalendarError {
    #[error("failed to read calendar file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("invalid calendar file {path}: {message}")]
    Parse { path: String, message: String },
    #[error("inconsistent calendar for {year}: {message}")]
    Inconsistent { year: i32, message: String },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CalendarFile {
    #[serde(default)]
    years: Vec<YearEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct YearEntry {
    year: i32,
    source: String,
    #[serde(default)]
    holidays: Vec<String>,
    #[serde(default)]
    make_up_working_days: Vec<String>,
}

/// The table of one year.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct YearTable {
    /// Source of the dates, for example the government notice.
    pub source: String,
    pub holidays: BTreeSet<NaiveDate>,
    pub make_up_working_days: BTreeSet<NaiveDate>,
}

/// The loaded, checked calendar.
#[derive(Debug, Clone, Default)]
pub struct WorkCalendar {
    years: BTreeMap<i32, YearTable>,
}

impl WorkCalendar {
    /// Reads and checks a calendar file.
    pub fn load(path: &Path) -> Result<Self, CalendarError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| CalendarError::Read {
            path: shown.clone(),
            source,
        })?;
        Self::parse(&text).map_err(|error| match error {
            CalendarError::Parse { message, .. } => CalendarError::Parse {
                path: shown,
                message,
            },
            other => other,
        })
    }

    /// Parses and checks calendar TOML.
    pub fn parse(text: &str) -> Result<Self, CalendarError> {
        let parse_error = |message: String| CalendarError::Parse {
            path: String::new(),
            message,
        };
        let file: CalendarFile =
            toml::from_str(text).map_err(|error| parse_error(error.to_string()))?;

        let mut calendar = Self::default();
        for entry in file.years {
            let year = entry.year;
            let table = year_table(entry)?;
            if calendar.years.insert(year, table).is_some() {
                return Err(inconsistent(year, "the year is listed twice".to_owned()));
            }
        }
        Ok(calendar)
    }

    /// Classifies a date.
    pub fn day_kind(&self, date: NaiveDate) -> DayKind {
        let Some(table) = self.years.get(&date.year()) else {
            return DayKind::CalendarMissing;
        };
        if table.holidays.contains(&date) {
            return DayKind::PublicHoliday;
        }
        if table.make_up_working_days.contains(&date) {
            return DayKind::MakeUpWorkingDay;
        }
        if is_weekend(date) {
            DayKind::Weekend
        } else {
            DayKind::WorkingDay
        }
    }

    /// Returns the years that have a table, in ascending order.
    pub fn years(&self) -> impl Iterator<Item = i32> + '_ {
        self.years.keys().copied()
    }

    /// Returns the table of a year.
    pub fn year(&self, year: i32) -> Option<&YearTable> {
        self.years.get(&year)
    }
}

fn is_weekend(date: NaiveDate) -> bool {
    matches!(date.weekday(), Weekday::Sat | Weekday::Sun)
}

fn inconsistent(year: i32, message: String) -> CalendarError {
    CalendarError::Inconsistent { year, message }
}

/// Checks one year's entry: a known source, dates of that year listed once, make-up days on
/// weekends only, and no day that is both a holiday and a make-up working day.
fn year_table(entry: YearEntry) -> Result<YearTable, CalendarError> {
    let year = entry.year;
    if !(1970..=9999).contains(&year) {
        return Err(inconsistent(year, "year must be 1970 to 9999".to_owned()));
    }
    if entry.source.trim().is_empty() {
        return Err(inconsistent(
            year,
            "source is empty; name where the dates come from".to_owned(),
        ));
    }

    let holidays = dates_of_year(year, "holidays", &entry.holidays)?;
    let make_up_working_days =
        dates_of_year(year, "make_up_working_days", &entry.make_up_working_days)?;
    if let Some(weekday) = make_up_working_days.iter().find(|date| !is_weekend(**date)) {
        return Err(inconsistent(
            year,
            format!("make-up working day {weekday} is not a Saturday or Sunday"),
        ));
    }
    if let Some(both) = holidays.intersection(&make_up_working_days).next() {
        return Err(inconsistent(
            year,
            format!("{both} is both a holiday and a make-up working day"),
        ));
    }

    Ok(YearTable {
        source: entry.source,
        holidays,
        make_up_working_days,
    })
}

fn dates_of_year(
    year: i32,
    key: &str,
    values: &[String],
) -> Result<BTreeSet<NaiveDate>, CalendarError> {
    let mut dates = BTreeSet::new();
    for value in values {
        let date = NaiveDate::parse_from_str(value, "%Y-%m-%d").map_err(|_| {
            inconsistent(
                year,
                format!("{key} entry {value:?} is not a YYYY-MM-DD date"),
            )
        })?;
        if date.year() != year {
            return Err(inconsistent(
                year,
                format!("{key} entry {value} belongs to another year"),
            ));
        }
        if !dates.insert(date) {
            return Err(inconsistent(year, format!("{key} lists {value} twice")));
        }
    }
    Ok(dates)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small invented calendar: Monday 5 October 2026 is a holiday and Saturday
    /// 10 October 2026 is a make-up working day.
    const SAMPLE: &str = r#"
[[years]]
year = 2026
source = "test calendar"
holidays = ["2026-10-05"]
make_up_working_days = ["2026-10-10"]
"#;

    fn date(year: i32, month: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(year, month, day).unwrap()
    }

    #[test]
    fn holiday_monday_is_not_a_working_day() {
        let calendar = WorkCalendar::parse(SAMPLE).unwrap();

        let kind = calendar.day_kind(date(2026, 10, 5));

        assert_eq!(kind, DayKind::PublicHoliday);
        assert!(kind.is_non_working());
    }

    #[test]
    fn make_up_saturday_is_a_working_day() {
        let calendar = WorkCalendar::parse(SAMPLE).unwrap();

        let kind = calendar.day_kind(date(2026, 10, 10));

        assert_eq!(kind, DayKind::MakeUpWorkingDay);
        assert!(!kind.is_non_working());
    }

    #[test]
    fn plain_weekdays_and_weekends() {
        let calendar = WorkCalendar::parse(SAMPLE).unwrap();

        assert_eq!(calendar.day_kind(date(2026, 10, 6)), DayKind::WorkingDay);
        assert_eq!(calendar.day_kind(date(2026, 10, 11)), DayKind::Weekend);
        assert_eq!(calendar.day_kind(date(2026, 10, 17)), DayKind::Weekend);
        assert!(DayKind::Weekend.is_non_working());
    }

    #[test]
    fn year_without_table_is_missing() {
        let calendar = WorkCalendar::parse(SAMPLE).unwrap();

        let kind = calendar.day_kind(date(2027, 3, 1));

        assert_eq!(kind, DayKind::CalendarMissing);
        assert!(!kind.is_non_working());
    }

    #[test]
    fn empty_calendar_has_every_year_missing() {
        let calendar = WorkCalendar::default();

        assert_eq!(
            calendar.day_kind(date(2026, 3, 2)),
            DayKind::CalendarMissing
        );
    }

    #[test]
    fn inconsistent_tables_are_rejected() {
        let cases = [
            (
                "make_up_working_days = [\"2026-10-10\"]",
                "make_up_working_days = [\"2026-10-09\"]",
                "not a Saturday or Sunday",
            ),
            (
                "holidays = [\"2026-10-05\"]",
                "holidays = [\"2026-10-05\", \"2026-10-05\"]",
                "twice",
            ),
            (
                "holidays = [\"2026-10-05\"]",
                "holidays = [\"2027-10-05\"]",
                "another year",
            ),
            (
                "holidays = [\"2026-10-05\"]",
                "holidays = [\"2026-10-10\"]",
                "both a holiday",
            ),
            (
                "holidays = [\"2026-10-05\"]",
                "holidays = [\"5 October\"]",
                "YYYY-MM-DD",
            ),
            (
                "source = \"test calendar\"",
                "source = \" \"",
                "source is empty",
            ),
        ];

        for (from, to, expected) in cases {
            let text = SAMPLE.replace(from, to);

            let error = WorkCalendar::parse(&text).unwrap_err().to_string();

            assert!(error.contains(expected), "{to}: {error}");
        }
    }

    #[test]
    fn duplicate_year_is_rejected() {
        let text = format!("{SAMPLE}\n{SAMPLE}");

        let error = WorkCalendar::parse(&text).unwrap_err().to_string();

        assert!(error.contains("listed twice"), "{error}");
    }

    #[test]
    fn unknown_key_is_rejected() {
        let text = SAMPLE.replace("source", "origin");

        assert!(WorkCalendar::parse(&text).is_err());
    }

    #[test]
    fn stored_names_round_trip() {
        for kind in [
            DayKind::WorkingDay,
            DayKind::MakeUpWorkingDay,
            DayKind::Weekend,
            DayKind::PublicHoliday,
            DayKind::CalendarMissing,
        ] {
            assert_eq!(DayKind::from_name(kind.name()), Some(kind));
        }
    }

    #[test]
    fn shipped_calendar_loads_and_covers_two_years() {
        let path =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/local/calendar-cn.toml");

        let calendar = WorkCalendar::load(&path).unwrap();

        assert_eq!(calendar.years().collect::<Vec<_>>(), [2026, 2027]);
        // Sunday 4 January 2026 is a make-up working day in the State Council's 2026 notice.
        assert_eq!(
            calendar.day_kind(date(2026, 1, 4)),
            DayKind::MakeUpWorkingDay
        );
        assert_eq!(calendar.day_kind(date(2026, 2, 16)), DayKind::PublicHoliday);
    }
}
