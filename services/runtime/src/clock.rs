//! Server clock and the one canonical stored form of an instant: signed microseconds since
//! the Unix epoch in UTC, an `i64` column on SQLite and PostgreSQL alike, so comparisons are
//! numeric everywhere.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;

/// Source of the current time. Services take it as a value so that tests control time
/// instead of sleeping.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Returns the current instant.
    fn now(&self) -> DateTime<Utc>;
}

/// The operating system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// Clock that moves only when a test advances it.
#[derive(Debug)]
pub struct ManualClock {
    micros: AtomicI64,
}

impl ManualClock {
    /// Creates a clock stopped at `start`.
    pub fn new(start: DateTime<Utc>) -> Arc<Self> {
        Arc::new(Self {
            micros: AtomicI64::new(start.timestamp_micros()),
        })
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: chrono::Duration) {
        let by = by
            .num_microseconds()
            .expect("advance fits in i64 microseconds");
        self.micros.fetch_add(by, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        from_micros(self.micros.load(Ordering::SeqCst))
    }
}

/// Shared handle to a clock.
pub type SharedClock = Arc<dyn Clock>;

/// Converts an instant to its stored form.
pub fn to_micros(instant: DateTime<Utc>) -> i64 {
    instant.timestamp_micros()
}

/// Converts a stored instant back. Values outside chrono's range clamp to the epoch, which
/// cannot happen for values this crate wrote.
pub fn from_micros(micros: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(micros).unwrap_or_default()
}

/// Converts a stored instant to a protobuf timestamp.
pub fn timestamp(micros: i64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: micros.div_euclid(1_000_000),
        nanos: (micros.rem_euclid(1_000_000) * 1_000) as i32,
    }
}

/// Converts an optional stored instant to an optional protobuf timestamp.
pub fn timestamp_opt(micros: Option<i64>) -> Option<prost_types::Timestamp> {
    micros.map(timestamp)
}

/// Seconds of 0001-01-01T00:00:00Z, the earliest instant `google.protobuf.Timestamp` allows.
pub const MIN_TIMESTAMP_SECONDS: i64 = -62_135_596_800;

/// Seconds of 9999-12-31T23:59:59Z, the latest instant `google.protobuf.Timestamp` allows.
pub const MAX_TIMESTAMP_SECONDS: i64 = 253_402_300_799;

/// Converts a protobuf timestamp to the stored form, or `None` when it is outside the range
/// that `google.protobuf.Timestamp` defines: seconds from 0001-01-01 to 9999-12-31 and nanos
/// from 0 to 999,999,999.
pub fn micros_from_timestamp(timestamp: &prost_types::Timestamp) -> Option<i64> {
    if !(0..1_000_000_000).contains(&timestamp.nanos)
        || !(MIN_TIMESTAMP_SECONDS..=MAX_TIMESTAMP_SECONDS).contains(&timestamp.seconds)
    {
        return None;
    }
    timestamp
        .seconds
        .checked_mul(1_000_000)?
        .checked_add(i64::from(timestamp.nanos / 1_000))
}

/// Returns the civil date of an instant in a business time zone.
pub fn local_date(instant: DateTime<Utc>, zone: Tz) -> NaiveDate {
    zone.from_utc_datetime(&instant.naive_utc()).date_naive()
}

/// Converts a civil date to the stored form `YYYYMMDD` as an integer, which orders like the
/// dates themselves.
pub fn date_key(date: NaiveDate) -> i32 {
    use chrono::Datelike;
    date.year() * 10_000 + date.month() as i32 * 100 + date.day() as i32
}

/// Converts a stored `YYYYMMDD` integer back to a date.
pub fn date_from_key(key: i32) -> Option<NaiveDate> {
    NaiveDate::from_ymd_opt(key / 10_000, (key / 100 % 100) as u32, (key % 100) as u32)
}

/// Converts a civil date to its protobuf form.
pub fn proto_date(date: NaiveDate) -> trace_proto::common::v1::Date {
    use chrono::Datelike;
    trace_proto::common::v1::Date {
        year: date.year(),
        month: date.month() as i32,
        day: date.day() as i32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn micros_round_trip_before_and_after_epoch() {
        for micros in [-1_500_001, -1, 0, 1, 1_764_000_000_123_456] {
            let back = micros_from_timestamp(&timestamp(micros)).unwrap();
            assert_eq!(back, micros);
        }
    }

    #[test]
    fn timestamp_with_invalid_nanos_is_rejected() {
        let bad = prost_types::Timestamp {
            seconds: 1,
            nanos: 1_000_000_000,
        };
        assert_eq!(micros_from_timestamp(&bad), None);
    }

    #[test]
    fn timestamp_range_is_year_1_to_9999() {
        let at = |seconds| prost_types::Timestamp { seconds, nanos: 0 };

        assert!(micros_from_timestamp(&at(MIN_TIMESTAMP_SECONDS)).is_some());
        assert!(micros_from_timestamp(&at(MAX_TIMESTAMP_SECONDS)).is_some());
        assert_eq!(micros_from_timestamp(&at(MIN_TIMESTAMP_SECONDS - 1)), None);
        assert_eq!(micros_from_timestamp(&at(MAX_TIMESTAMP_SECONDS + 1)), None);
        // Year 287,000: fits in i64 microseconds, but is no valid protobuf timestamp.
        assert_eq!(micros_from_timestamp(&at(9_000_000_000_000)), None);
    }

    #[test]
    fn local_date_uses_the_business_zone() {
        // 2026-12-31 20:00 UTC is already 1 January in Shanghai (UTC+8).
        let instant = Utc.with_ymd_and_hms(2026, 12, 31, 20, 0, 0).unwrap();
        let shanghai = local_date(instant, chrono_tz::Asia::Shanghai);
        assert_eq!(shanghai, NaiveDate::from_ymd_opt(2027, 1, 1).unwrap());
        assert_eq!(
            local_date(instant, chrono_tz::UTC),
            NaiveDate::from_ymd_opt(2026, 12, 31).unwrap()
        );
    }

    #[test]
    fn date_key_round_trips_and_orders() {
        let earlier = NaiveDate::from_ymd_opt(2026, 2, 28).unwrap();
        let later = NaiveDate::from_ymd_opt(2026, 3, 1).unwrap();
        assert!(date_key(earlier) < date_key(later));
        assert_eq!(date_from_key(date_key(later)), Some(later));
    }
}
