//! Subject tokens: `trace_runtime::event::is_subject_token`, the subjects built from tokens,
//! and the subject patterns of legal holds (`trace_archive::holds::validate_query`).
//!
//! The input is text split at newlines: the first three lines are candidate tokens, the
//! fourth a hold subject pattern. Seeds are therefore readable text files.

use trace_archive::holds::{self, EntryFacts};
use trace_proto::archive::v1::HoldQuery;
use trace_runtime::event::{self, is_subject_token};

/// Checks the tokens and the pattern that `data` carries.
pub fn check(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut lines = text.split('\n');
    let tokens: Vec<&str> = lines.by_ref().take(3).collect();
    let pattern = lines.next().unwrap_or_default();

    for token in &tokens {
        check_token(token);
    }
    check_token(pattern);
    let [service, entity, action] = tokens.as_slice() else {
        check_pattern(pattern, None);
        return;
    };
    if [service, entity, action]
        .iter()
        .all(|token| is_subject_token(token))
    {
        let subject = check_subject(service, entity, action);
        check_pattern(pattern, Some(&subject));
        check_service_prefix(service, &subject, &format!("{entity}.{action}"));
    } else {
        check_pattern(pattern, None);
    }
}

/// Returns whether `token` follows the documented rule: 1 to 32 characters of `a-z`, `0-9` and `_`, starting with a letter.
fn is_token_by_rule(token: &str) -> bool {
    let bytes = token.as_bytes();
    (1..=32).contains(&bytes.len())
        && bytes[0].is_ascii_lowercase()
        && bytes
            .iter()
            .all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || *byte == b'_')
}

fn check_token(token: &str) {
    let accepted = is_subject_token(token);
    assert_eq!(accepted, is_token_by_rule(token), "token {token:?}");
    if accepted {
        assert!(
            !token.contains(['.', '*', '>']) && !token.contains(char::is_whitespace),
            "accepted token {token:?} contains a NATS separator, wildcard or whitespace"
        );
    }
}

/// Builds the subject of accepted tokens and checks that it splits back into them.
fn check_subject(service: &str, entity: &str, action: &str) -> String {
    let subject = event::subject(service, entity, action);
    assert_eq!(subject, format!("trace.{service}.{entity}.{action}"));
    let parts: Vec<&str> = subject.split('.').collect();
    assert_eq!(
        parts,
        ["trace", service, entity, action],
        "subject {subject:?}"
    );
    assert!(
        !subject.contains(['*', '>']),
        "subject {subject:?} has a wildcard"
    );
    assert!(
        !subject.contains(char::is_whitespace),
        "subject {subject:?} has whitespace"
    );
    subject
}

fn facts(subject: &str) -> EntryFacts<'_> {
    EntryFacts {
        entity_type: "document",
        entity_id: "d-1",
        actor_id: "zhang.min",
        department: "office",
        subject,
        recorded_at: 0,
    }
}

/// Validates `pattern` as the subject of a hold query. An accepted pattern is dot-separated
/// tokens, optionally ending in `.>`; a pattern equal to `subject` matches it.
fn check_pattern(pattern: &str, subject: Option<&str>) {
    let request = HoldQuery {
        subject: pattern.to_owned(),
        ..HoldQuery::default()
    };
    let Ok(query) = holds::validate_query(&request) else {
        return;
    };
    assert_eq!(query.subject.as_deref(), Some(pattern), "stored pattern");
    assert!(pattern.len() <= 255, "pattern of {} bytes", pattern.len());
    let prefix = pattern.strip_suffix(".>").unwrap_or(pattern);
    assert!(
        prefix.split('.').all(is_subject_token),
        "accepted pattern {pattern:?} has a token outside the rule"
    );
    if let Some(subject) = subject {
        let matches = query.matches(&facts(subject));
        let expected = pattern == subject
            || pattern
                .strip_suffix(".>")
                .is_some_and(|prefix| subject.starts_with(&format!("{prefix}.")));
        assert_eq!(matches, expected, "pattern {pattern:?} on {subject:?}");
    }
}

/// Checks that a hold on `trace.<service>.>` covers the service's subjects and no other service's, even
/// one whose name starts with the same letters.
fn check_service_prefix(service: &str, subject: &str, rest: &str) {
    let own = HoldQuery {
        subject: format!("trace.{service}.>"),
        ..HoldQuery::default()
    };
    let own = holds::validate_query(&own).expect("a prefix of accepted tokens is valid");
    assert!(
        own.matches(&facts(subject)),
        "trace.{service}.> on {subject:?}"
    );

    if service.len() < 32 {
        let other_subject = format!("trace.{service}x.{rest}");
        assert!(
            !own.matches(&facts(&other_subject)),
            "trace.{service}.> matched {other_subject:?}"
        );
    }
}
