//! Request validation shared by every service. Each check names the field and echoes the
//! value in its error, so that a caller can fix the request.

use chrono::NaiveDate;
use unicode_normalization::UnicodeNormalization;
use uuid::Uuid;

use crate::error::{ServiceError, ServiceResult};

/// Bidirectional embedding, override and isolate controls. They can make a title display
/// differently from what is stored, so text fields reject them.
const BIDI_CONTROLS: &[char] = &[
    '\u{202A}', '\u{202B}', '\u{202C}', '\u{202D}', '\u{202E}', '\u{2066}', '\u{2067}', '\u{2068}',
    '\u{2069}',
];

/// Checks free text that may span lines: `min..=max` Unicode scalar values, no control
/// characters except newline and tab, no bidirectional controls.
pub fn text(field: &str, value: &str, min: usize, max: usize) -> ServiceResult<String> {
    check_length(field, value, min, max)?;
    if let Some(bad) = value
        .chars()
        .find(|c| (c.is_control() && *c != '\n' && *c != '\t') || BIDI_CONTROLS.contains(c))
    {
        return Err(ServiceError::invalid(
            field,
            value,
            format!("contains the forbidden character U+{:04X}", u32::from(bad)),
        ));
    }
    Ok(value.to_owned())
}

/// Checks single-line text: as [`text`], and no newline or tab either.
pub fn line(field: &str, value: &str, min: usize, max: usize) -> ServiceResult<String> {
    let value = text(field, value, min, max)?;
    if value.contains(['\n', '\t']) {
        return Err(ServiceError::invalid(
            field,
            &value,
            "must be a single line",
        ));
    }
    Ok(value)
}

fn check_length(field: &str, value: &str, min: usize, max: usize) -> ServiceResult<()> {
    let count = value.chars().count();
    if count < min || count > max {
        let reason = if min == max {
            format!("must be {min} characters, got {count}")
        } else if count == 0 {
            "is required".to_owned()
        } else {
            format!("must be {min} to {max} characters, got {count}")
        };
        return Err(ServiceError::invalid(field, value, reason));
    }
    Ok(())
}

/// Checks an identifier token such as a department, user id or category: `1..=max`
/// characters, each accepted by `allowed`. The description says which characters are allowed.
pub fn token(
    field: &str,
    value: &str,
    max: usize,
    allowed: fn(char) -> bool,
    description: &str,
) -> ServiceResult<String> {
    check_length(field, value, 1, max)?;
    if !value.chars().all(allowed) {
        return Err(ServiceError::invalid(
            field,
            value,
            format!("may contain only {description}"),
        ));
    }
    Ok(value.to_owned())
}

/// Checks a department id: lowercase ASCII letters, digits, `-` and `_`, at most 64.
pub fn department(field: &str, value: &str) -> ServiceResult<String> {
    token(
        field,
        value,
        64,
        |c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_',
        "a-z, 0-9, '-' and '_'",
    )
}

/// Checks a user id: ASCII letters, digits, `.`, `-`, `_` and `@`, at most 64.
pub fn user_id(field: &str, value: &str) -> ServiceResult<String> {
    token(
        field,
        value,
        64,
        |c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '@'),
        "A-Z, a-z, 0-9, '.', '-', '_' and '@'",
    )
}

/// Checks a media type: 1 to 255 characters of the form `type/subtype`, optionally
/// followed by `;` parameters, where type and subtype are RFC 6838 restricted names.
pub fn media_type(field: &str, value: &str) -> ServiceResult<String> {
    let value = line(field, value, 1, 255)?;
    let essence = value.split(';').next().unwrap_or_default().trim();
    let well_formed = essence
        .split_once('/')
        .is_some_and(|(kind, subtype)| is_media_type_name(kind) && is_media_type_name(subtype));
    if !well_formed {
        return Err(ServiceError::invalid(
            field,
            &value,
            "must have the form type/subtype, for example text/plain; charset=utf-8",
        ));
    }
    Ok(value)
}

/// Returns true for an RFC 6838 restricted name: 1 to 127 characters of letters, digits
/// and `!#$&-^_.+`, starting with a letter or digit.
fn is_media_type_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|first| first.is_ascii_alphanumeric())
        && name.len() <= 127
        && chars.all(|c| c.is_ascii_alphanumeric() || "!#$&-^_.+".contains(c))
}

/// Returns true when `media_type` declares UTF-8 text: a `text/*` type without a charset,
/// or any type with `charset=utf-8`.
fn declares_utf8_text(media_type: &str) -> bool {
    let mut parts = media_type.split(';').map(str::trim);
    let essence = parts.next().unwrap_or_default();
    let charset = parts.find_map(|parameter| {
        let (name, value) = parameter.split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case("charset")
            .then(|| value.trim().trim_matches('"').to_ascii_lowercase())
    });
    match charset {
        Some(charset) => charset == "utf-8" || charset == "utf8",
        None => essence
            .split_once('/')
            .is_some_and(|(kind, _)| kind.eq_ignore_ascii_case("text")),
    }
}

/// Checks that content which its media type declares as UTF-8 text is valid UTF-8, so that
/// readers can display it as declared. Content of other media types may hold any bytes.
pub fn text_content(field: &str, content: &[u8], media_type: &str) -> ServiceResult<()> {
    if !declares_utf8_text(media_type) {
        return Ok(());
    }
    match std::str::from_utf8(content) {
        Ok(_) => Ok(()),
        Err(error) => Err(ServiceError::invalid(
            field,
            &format!("{} bytes of {media_type}", content.len()),
            format!(
                "is not valid UTF-8 at byte {}; send UTF-8 text or declare another \
                 media_type",
                error.valid_up_to()
            ),
        )),
    }
}

/// Parses a server-assigned record id (a UUID). A malformed id is an invalid argument,
/// not a missing record.
pub fn record_id(field: &str, value: &str) -> ServiceResult<Uuid> {
    if value.is_empty() {
        return Err(ServiceError::invalid(field, value, "is required"));
    }
    Uuid::try_parse(value).map_err(|_| ServiceError::invalid(field, value, "must be a UUID"))
}

/// Converts a required protobuf date, checking that it exists in the calendar and lies
/// between 1970 and 9999.
pub fn date(
    field: &str,
    value: Option<&trace_proto::common::v1::Date>,
) -> ServiceResult<NaiveDate> {
    let Some(value) = value else {
        return Err(ServiceError::invalid(field, "", "is required"));
    };
    optional_date(field, value)
}

/// Converts a protobuf date that is present, with the same checks as [`date`].
pub fn optional_date(
    field: &str,
    value: &trace_proto::common::v1::Date,
) -> ServiceResult<NaiveDate> {
    let shown = format!("{:04}-{:02}-{:02}", value.year, value.month, value.day);
    if !(1970..=9999).contains(&value.year) {
        return Err(ServiceError::invalid(
            field,
            &shown,
            "year must be 1970 to 9999",
        ));
    }
    let month = u32::try_from(value.month).unwrap_or(0);
    let day = u32::try_from(value.day).unwrap_or(0);
    NaiveDate::from_ymd_opt(value.year, month, day)
        .ok_or_else(|| ServiceError::invalid(field, &shown, "is not a calendar date"))
}

/// Converts a protobuf enum value, rejecting unknown numbers and the unspecified zero.
pub fn enum_value<E>(field: &str, value: i32) -> ServiceResult<E>
where
    E: TryFrom<i32> + PartialEq + Default,
{
    match E::try_from(value) {
        Ok(parsed) if parsed != E::default() => Ok(parsed),
        Ok(_) => Err(ServiceError::invalid(
            field,
            &value.to_string(),
            "is required",
        )),
        Err(_) => Err(ServiceError::invalid(
            field,
            &value.to_string(),
            "is not a known value",
        )),
    }
}

/// Normalises text for search keys and uniqueness: NFKC folds full-width and compatibility
/// forms and composes NFD input, then lowercase. Stored originals keep their bytes.
pub fn search_key(value: &str) -> String {
    value.nfkc().collect::<String>().to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::Code;

    fn code(result: ServiceResult<String>) -> Code {
        result
            .map_err(|error| error.code())
            .err()
            .unwrap_or(Code::Ok)
    }

    #[test]
    fn text_rejects_bad_characters() {
        for bad in ["a\0b", "a\u{202E}b", "a\u{2066}b", "a\u{7}b", "a\rb"] {
            assert_eq!(
                code(text("title", bad, 1, 10)),
                Code::InvalidArgument,
                "{bad:?}"
            );
        }
        assert_eq!(code(text("title", "line\nnext\tcol", 1, 20)), Code::Ok);
    }

    #[test]
    fn length_counts_characters_not_bytes() {
        assert_eq!(code(line("title", "全過程留痕", 1, 5)), Code::Ok);
        assert_eq!(
            code(line("title", "全過程留痕管", 1, 5)),
            Code::InvalidArgument
        );
        assert_eq!(code(line("title", "", 1, 5)), Code::InvalidArgument);
    }

    #[test]
    fn department_rejects_subject_wildcards() {
        for bad in ["a.b", "*", ">", "a b", "Ops"] {
            assert_eq!(
                code(department("department", bad)),
                Code::InvalidArgument,
                "{bad}"
            );
        }
    }

    #[test]
    fn media_type_needs_type_and_subtype() {
        for good in [
            "text/plain",
            "text/plain; charset=utf-8",
            "application/vnd.ms-excel",
        ] {
            assert_eq!(code(media_type("media_type", good)), Code::Ok, "{good}");
        }
        for bad in [
            "",
            "text",
            "/plain",
            "text/",
            "'; DROP TABLE x; --",
            "a/b/c",
            "té/x",
        ] {
            assert_eq!(
                code(media_type("media_type", bad)),
                Code::InvalidArgument,
                "{bad}"
            );
        }
    }

    #[test]
    fn text_content_checks_declared_utf8_only() {
        let check = |content: &[u8], media_type: &str| {
            text_content("content", content, media_type).map_err(|error| error.code())
        };
        let invalid = b"abc\x80";

        assert_eq!(check(invalid, "text/plain"), Err(Code::InvalidArgument));
        assert_eq!(
            check(invalid, "TEXT/CSV; Charset=\"UTF-8\""),
            Err(Code::InvalidArgument)
        );
        assert_eq!(
            check(invalid, "application/json; charset=utf-8"),
            Err(Code::InvalidArgument)
        );
        assert_eq!(check(invalid, "text/plain; charset=gbk"), Ok(()));
        assert_eq!(check(invalid, "application/octet-stream"), Ok(()));
        assert_eq!(check("全過程".as_bytes(), "text/plain"), Ok(()));
    }

    #[test]
    fn record_id_requires_uuid() {
        assert!(record_id("document_id", "../../etc/passwd").is_err());
        assert!(record_id("document_id", "").is_err());
        assert!(record_id("document_id", &Uuid::now_v7().to_string()).is_ok());
    }

    #[test]
    fn date_rejects_non_calendar_dates() {
        let february_30 = trace_proto::common::v1::Date {
            year: 2026,
            month: 2,
            day: 30,
        };
        assert!(date("due", Some(&february_30)).is_err());
        let leap = trace_proto::common::v1::Date {
            year: 2028,
            month: 2,
            day: 29,
        };
        assert!(date("due", Some(&leap)).is_ok());
        let far = trace_proto::common::v1::Date {
            year: 99999,
            month: 1,
            day: 1,
        };
        assert!(date("due", Some(&far)).is_err());
        assert!(date("due", None).is_err());
    }

    #[test]
    fn search_key_folds_width_and_composition() {
        let nfd = "Cafe\u{301}";
        let nfc = "Caf\u{e9}";
        assert_eq!(search_key(nfd), search_key(nfc));
        assert_eq!(search_key("ＡＢＣ"), "abc");
    }
}
