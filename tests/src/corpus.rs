//! Bad-input values shared by the bad-input tests of every service, and checks of the
//! errors that reject them.
//!
//! Each generator returns `(label, value)` pairs. The label names the case in assertion
//! messages, so a failure points at one value. The limits in the generators' arguments are
//! the ones documented on the request fields in `proto/trace/*/v1`.

use prost_types::Timestamp;
use tonic::{Code, Status};
use tonic_types::StatusExt;
use trace_proto::common::v1::Date;

/// One mebibyte, the size of the "far over the limit" cases.
pub const MIB: usize = 1024 * 1024;

/// Text that looks like an attack but is legitimate in free text. Services must accept it
/// and store it byte for byte.
pub const ACCEPTED_TEXT: &[&str] = &[
    "'; DROP TABLE x; --",
    "../../etc/passwd",
    "trace.document.*.>",
    "%_\\ LIKE metacharacters",
    "全過程留痕 ✓",
];

/// A labelled bad value.
pub type Case<T> = (String, T);

/// Values that free text must reject: `min..=max` characters, no control characters other
/// than newline and tab, no bidirectional controls. With `single_line`, newline and tab are
/// rejected too. `min` of 0 means empty text is allowed and is not in the list.
pub fn bad_text(min: usize, max: usize, single_line: bool) -> Vec<Case<String>> {
    let mut cases = vec![
        (format!("{} characters", max + 1), "字".repeat(max + 1)),
        ("1 MiB".to_owned(), "x".repeat(MIB)),
        ("NUL".to_owned(), "a\0b".to_owned()),
        ("BEL".to_owned(), "a\u{7}b".to_owned()),
        ("carriage return".to_owned(), "a\rb".to_owned()),
        ("escape sequence".to_owned(), "a\u{1b}[31mb".to_owned()),
        ("DEL".to_owned(), "a\u{7f}b".to_owned()),
        ("U+202E".to_owned(), "invoice\u{202E}fdp.exe".to_owned()),
        ("U+2066".to_owned(), "a\u{2066}b".to_owned()),
    ];
    if min > 0 {
        cases.push(("empty".to_owned(), String::new()));
    }
    if min > 1 {
        cases.push((format!("{} characters", min - 1), "x".repeat(min - 1)));
    }
    if single_line {
        cases.push(("newline".to_owned(), "a\nb".to_owned()));
        cases.push(("tab".to_owned(), "a\tb".to_owned()));
    }
    cases
}

/// Values that a server-assigned record id (a UUID) must reject with INVALID_ARGUMENT.
pub fn bad_record_ids() -> Vec<Case<String>> {
    [
        ("empty", ""),
        ("dot", "a.b"),
        ("star", "*"),
        ("greater-than", ">"),
        ("subject", "trace.document.>"),
        ("SQL", "'; DROP TABLE x; --"),
        ("path traversal", "../../etc/passwd"),
        ("NUL", "\0"),
        ("U+202E", "\u{202E}"),
        ("UUID with a NUL", "0190b6a4-0000-7000-8000-00000000000\0"),
    ]
    .into_iter()
    .map(|(label, value)| (label.to_owned(), value.to_owned()))
    .chain([("1 MiB".to_owned(), "a".repeat(MIB))])
    .collect()
}

/// Values that an identifier token (department, user id, category) must reject, whatever
/// its character set. `max` is the documented maximum length.
pub fn bad_tokens(max: usize) -> Vec<Case<String>> {
    [
        ("empty", ""),
        ("star", "*"),
        ("greater-than", ">"),
        ("SQL", "'; DROP TABLE x; --"),
        ("path traversal", "../../etc/passwd"),
        ("space", "a b"),
        ("NUL", "a\0"),
        ("U+202E", "a\u{202E}"),
        ("newline", "a\n"),
    ]
    .into_iter()
    .map(|(label, value)| (label.to_owned(), value.to_owned()))
    .chain([
        (format!("{} characters", max + 1), "a".repeat(max + 1)),
        ("1 MiB".to_owned(), "a".repeat(MIB)),
    ])
    .collect()
}

/// Department ids, which appear in subjects and must also reject dots.
pub fn bad_departments() -> Vec<Case<String>> {
    let mut cases = bad_tokens(64);
    cases.push(("dot".to_owned(), "a.b".to_owned()));
    cases.push(("upper case".to_owned(), "Ops".to_owned()));
    cases
}

/// Enum numbers that no enum of the API defines. A required enum must also reject 0, which
/// is not in this list because optional filters accept it.
pub fn bad_enums() -> Vec<Case<i32>> {
    [
        ("99", 99),
        ("-1", -1),
        ("i32::MAX", i32::MAX),
        ("i32::MIN", i32::MIN),
    ]
    .into_iter()
    .map(|(label, value)| (label.to_owned(), value))
    .collect()
}

/// Dates outside the documented range of `trace.common.v1.Date` (1970-01-01 to 9999-12-31)
/// or not in the calendar.
pub fn bad_dates() -> Vec<Case<Date>> {
    let date = |year, month, day| Date { year, month, day };
    vec![
        ("year 1".to_owned(), date(1, 1, 1)),
        ("year 1969".to_owned(), date(1969, 12, 31)),
        ("year 10000".to_owned(), date(10_000, 1, 1)),
        ("year -1".to_owned(), date(-1, 1, 1)),
        ("i32::MAX year".to_owned(), date(i32::MAX, 1, 1)),
        ("month 0".to_owned(), date(2026, 0, 1)),
        ("month 13".to_owned(), date(2026, 13, 1)),
        ("day 0".to_owned(), date(2026, 3, 0)),
        ("day 32".to_owned(), date(2026, 3, 32)),
        ("30 February".to_owned(), date(2026, 2, 30)),
        ("negative month".to_owned(), date(2026, -3, 1)),
    ]
}

/// Timestamps that are not valid instants under the protobuf rules: seconds outside
/// 0001-01-01 to 9999-12-31, or nanos outside 0 to 999,999,999. Every field must reject them.
pub fn invalid_timestamps() -> Vec<Case<Timestamp>> {
    let at = |seconds, nanos| Timestamp { seconds, nanos };
    vec![
        ("year 0".to_owned(), at(-62_135_596_801, 0)),
        ("year 10000".to_owned(), at(253_402_300_800, 0)),
        ("year 287,000".to_owned(), at(9_000_000_000_000, 0)),
        ("year -283,000".to_owned(), at(-9_000_000_000_000, 0)),
        ("i64::MAX seconds".to_owned(), at(i64::MAX, 0)),
        ("i64::MIN seconds".to_owned(), at(i64::MIN, 0)),
        ("nanos -1".to_owned(), at(1_772_416_800, -1)),
        ("nanos 1e9".to_owned(), at(1_772_416_800, 1_000_000_000)),
        ("i32::MIN nanos".to_owned(), at(1_772_416_800, i32::MIN)),
    ]
}

/// Returns the first and last valid protobuf instants. Fields with a window around the server
/// time must reject them; plain filters must accept them.
pub fn far_timestamps() -> Vec<Case<Timestamp>> {
    let at = |seconds| Timestamp { seconds, nanos: 0 };
    vec![
        ("0001-01-01".to_owned(), at(-62_135_596_800)),
        ("9999-12-31T23:59:59".to_owned(), at(253_402_300_799)),
    ]
}

/// Returns every timestamp of [`invalid_timestamps`] and [`far_timestamps`].
pub fn bad_timestamps() -> Vec<Case<Timestamp>> {
    let mut cases = invalid_timestamps();
    cases.extend(far_timestamps());
    cases
}

/// Returns the fields of the `google.rpc.BadRequest` violations of `status`.
pub fn violation_fields(status: &Status) -> Vec<String> {
    status
        .get_error_details()
        .bad_request()
        .map(|details| {
            details
                .field_violations
                .iter()
                .map(|violation| violation.field.clone())
                .collect()
        })
        .unwrap_or_default()
}

/// Returns the message of a recorded read denial with `record_id` replaced by `<id>`, and
/// the event id it names in its metadata. Fails unless `status` is `PERMISSION_DENIED`.
pub fn recorded_denial(status: &Status, record_id: &str) -> (String, String) {
    assert_eq!(
        status.code(),
        Code::PermissionDenied,
        "{}",
        status.message()
    );
    let event_id = status
        .metadata()
        .get(trace_runtime::denials::RECORDED_HEADER)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    (status.message().replace(record_id, "<id>"), event_id)
}

/// The rejection a bad-input case expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expected {
    /// INVALID_ARGUMENT with exactly one field violation, on this field.
    Invalid(&'static str),
    /// NOT_FOUND naming this resource in its message.
    NotFound(&'static str),
    /// FAILED_PRECONDITION whose message contains this text.
    Precondition(&'static str),
    /// PERMISSION_DENIED.
    Denied,
    /// OUT_OF_RANGE from the gRPC transport: the encoded request exceeds the server's
    /// maximum message size, so it never reaches validation.
    TooLarge,
}

/// Checks that `result` is the rejection `expected`, with `label` in every assertion message.
pub fn check_rejection<T: std::fmt::Debug>(
    label: &str,
    result: Result<T, Status>,
    expected: Expected,
) {
    let status = match result {
        Ok(response) => panic!("{label}: expected {expected:?}, got success {response:?}"),
        Err(status) => status,
    };
    let shown = format!("{label}: {:?} {}", status.code(), status.message());
    match expected {
        Expected::Invalid(field) => {
            assert_eq!(status.code(), Code::InvalidArgument, "{shown}");
            assert_eq!(violation_fields(&status), [field], "{shown}");
            assert!(status.message().contains(field), "{shown}");
        }
        Expected::NotFound(resource) => {
            assert_eq!(status.code(), Code::NotFound, "{shown}");
            assert!(status.message().contains(resource), "{shown}");
        }
        Expected::Precondition(state) => {
            assert_eq!(status.code(), Code::FailedPrecondition, "{shown}");
            assert!(status.message().contains(state), "{shown}");
        }
        Expected::Denied => assert_eq!(status.code(), Code::PermissionDenied, "{shown}"),
        Expected::TooLarge => {
            assert_eq!(status.code(), Code::OutOfRange, "{shown}");
            assert!(
                status.message().contains("message length too large"),
                "{shown}"
            );
        }
    }
    // A message echoes at most a shortened copy of the value, never a whole huge one.
    assert!(status.message().len() < 1024, "{label}: message too long");
}
