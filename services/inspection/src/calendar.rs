//! The working-day calendar, read from a TOML file in the worklog service's format: one table
//! per year listing public holidays and the weekend days that are make-up working days.
//!
//! ```toml
//! [[years]]
//! year = 2026
//! source = "State Council notice of 4 November 2025"
//! holidays = ["2026-01-01"]
//! make_up_working_days = ["2026-01-04"]
//! ```
//!
//! A year without a table falls back to Monday to Friday and is flagged as uncalendared, so
//! that findings for it state that the working days were assumed.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use chrono::{Datelike, NaiveDate, Weekday};
use serde::Deserialize;

/// Classification of a date: working or not, and whether a calendar table decided it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DayStatus {
    pub working: bool,
    /// True when no table covers the year and Monday to Friday were assumed.
    pub uncalendared: bool,
}

#[derive(Debug, Deserialize)]
struct CalendarFile {
    #[serde(default)]
    years: Vec<YearEntry>,
}

#[derive(Debug, Deserialize)]
struct YearEntry {
    year: i32,
    source: String,
    #[serde(default)]
    holidays: Vec<String>,
    #[serde(default)]
    make_up_working_days: Vec<String>,
}

#[derive(Debug, Clone, Default)]
struct YearTable {
    holidays: BTreeSet<NaiveDate>,
    make_up_working_days: BTreeSet<NaiveDate>,
}

/// The loaded calendar; empty when no file is configured.
#[derive(Debug, Clone, Default)]
pub struct WorkCalendar {
    years: BTreeMap<i32, YearTable>,
}

impl WorkCalendar {
    /// Reads a calendar file; errors name the file and the entry.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|error| {
            anyhow::anyhow!("failed to read calendar file {}: {error}", path.display())
        })?;
        Self::parse(&text)
            .map_err(|error| anyhow::anyhow!("invalid calendar file {}: {error}", path.display()))
    }

    /// Parses calendar TOML, rejecting dates that are malformed or of another year.
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let file: CalendarFile = toml::from_str(text)?;
        let mut calendar = Self::default();
        for entry in file.years {
            if entry.source.trim().is_empty() {
                anyhow::bail!("the table of {} has an empty source", entry.year);
            }
            let table = YearTable {
                holidays: dates_of_year(entry.year, &entry.holidays)?,
                make_up_working_days: dates_of_year(entry.year, &entry.make_up_working_days)?,
            };
            if calendar.years.insert(entry.year, table).is_some() {
                anyhow::bail!("the year {} is listed twice", entry.year);
            }
        }
        Ok(calendar)
    }

    /// Classifies a date.
    pub fn day_status(&self, date: NaiveDate) -> DayStatus {
        let weekend = matches!(date.weekday(), Weekday::Sat | Weekday::Sun);
        let Some(table) = self.years.get(&date.year()) else {
            return DayStatus {
                working: !weekend,
                uncalendared: true,
            };
        };
        let working = if weekend {
            table.make_up_working_days.contains(&date)
        } else {
            !table.holidays.contains(&date)
        };
        DayStatus {
            working,
            uncalendared: false,
        }
    }
}

fn dates_of_year(year: i32, values: &[String]) -> anyhow::Result<BTreeSet<NaiveDate>> {
    let mut dates = BTreeSet::new();
    for value in values {
        let date = NaiveDate::parse_from_str(value, "%Y-%m-%d")
            .map_err(|_| anyhow::anyhow!("{value:?} in the table of {year} is not YYYY-MM-DD"))?;
        if date.year() != year {
            anyhow::bail!("{value} is listed in the table of {year}");
        }
        dates.insert(date);
    }
    Ok(dates)
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn table_marks_holidays_and_make_up_days() {
        let calendar = WorkCalendar::parse(SAMPLE).unwrap();

        assert!(!calendar.day_status(date(2026, 10, 5)).working);
        assert!(calendar.day_status(date(2026, 10, 10)).working);
        assert!(calendar.day_status(date(2026, 10, 6)).working);
        assert!(!calendar.day_status(date(2026, 10, 11)).working);
        assert!(!calendar.day_status(date(2026, 10, 6)).uncalendared);
    }

    #[test]
    fn missing_year_assumes_weekdays_and_flags_it() {
        let calendar = WorkCalendar::parse(SAMPLE).unwrap();

        let monday = calendar.day_status(date(2027, 3, 1));
        let saturday = calendar.day_status(date(2027, 3, 6));

        assert!(monday.working);
        assert!(monday.uncalendared);
        assert!(!saturday.working);
    }

    #[test]
    fn shipped_calendar_loads() {
        let path =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/local/calendar-cn.toml");
        let calendar = WorkCalendar::load(&path).unwrap();

        assert!(!calendar.day_status(date(2026, 10, 1)).working);
    }

    #[test]
    fn date_of_another_year_is_rejected() {
        let text = SAMPLE.replace("2026-10-05", "2025-10-05");

        assert!(WorkCalendar::parse(&text).is_err());
    }
}
