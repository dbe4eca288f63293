//! Legal hold scopes and the matcher that the disposition planner checks every expired entry
//! against. A hold covers one entity, every entity of a type, or the entries a query matches.
//!
//! A query hold matches an entry when every field it sets matches: the actor's department
//! and user id, the entity type, the subject (exact, or a prefix ending in `.>`), and a period
//! of the archive's receive time. The receive time comes from the archive's own clock, so a
//! producer with a skewed clock cannot move a record out of a hold. A query that sets no field
//! would hold every record, so it is accepted only with `match_all`, and `match_all` with any
//! field set is rejected as contradictory.

use serde::{Deserialize, Serialize};
use trace_runtime::clock::{micros_from_timestamp, timestamp_opt};
use trace_runtime::{ServiceError, ServiceResult, validate};

use crate::entity::legal_hold;

/// Query of a query hold. `None` fields match any entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HoldQuery {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub department: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entity_type: Option<String>,
    /// Exact subject, or a prefix ending in `.>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// Inclusive lower bound on the receive time, microseconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recorded_from: Option<i64>,
    /// Exclusive upper bound on the receive time, microseconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recorded_to: Option<i64>,
    /// True for an explicit hold on every record; then no other field is set.
    #[serde(default)]
    pub match_all: bool,
}

/// Scope of a legal hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HoldScope {
    /// One entity, or every entity of the type when `entity_id` is empty.
    Entity {
        entity_type: String,
        entity_id: String,
    },
    Query(HoldQuery),
}

/// An unreleased hold as the planner checks it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveHold {
    pub hold_id: String,
    pub scope: HoldScope,
}

/// Columns of a ledger entry that holds match on.
#[derive(Debug, Clone, Copy)]
pub struct EntryFacts<'a> {
    pub entity_type: &'a str,
    pub entity_id: &'a str,
    pub actor_id: &'a str,
    pub department: &'a str,
    pub subject: &'a str,
    /// The archive's receive time, microseconds since the Unix epoch.
    pub recorded_at: i64,
}

impl HoldQuery {
    fn sets_no_field(&self) -> bool {
        self.department.is_none()
            && self.actor_id.is_none()
            && self.entity_type.is_none()
            && self.subject.is_none()
            && self.recorded_from.is_none()
            && self.recorded_to.is_none()
    }

    /// Returns whether every field that is set matches `entry`.
    pub fn matches(&self, entry: &EntryFacts<'_>) -> bool {
        let equal =
            |field: &Option<String>, value: &str| field.as_deref().is_none_or(|f| f == value);
        equal(&self.department, entry.department)
            && equal(&self.actor_id, entry.actor_id)
            && equal(&self.entity_type, entry.entity_type)
            && self
                .subject
                .as_deref()
                .is_none_or(|pattern| subject_matches(pattern, entry.subject))
            && self
                .recorded_from
                .is_none_or(|from| entry.recorded_at >= from)
            && self.recorded_to.is_none_or(|to| entry.recorded_at < to)
    }
}

impl HoldScope {
    /// Returns whether the scope covers `entry`.
    pub fn covers(&self, entry: &EntryFacts<'_>) -> bool {
        match self {
            HoldScope::Entity {
                entity_type,
                entity_id,
            } => {
                entity_type == entry.entity_type
                    && (entity_id.is_empty() || entity_id == entry.entity_id)
            }
            HoldScope::Query(query) => query.matches(entry),
        }
    }
}

/// Returns the ids of the holds that cover `entry`, in the order given.
pub fn covering<'a>(holds: &'a [ActiveHold], entry: &EntryFacts<'_>) -> Vec<&'a str> {
    holds
        .iter()
        .filter(|hold| hold.scope.covers(entry))
        .map(|hold| hold.hold_id.as_str())
        .collect()
}

/// Matches an exact subject, or every subject below a prefix ending in `.>`, token by token:
/// `trace.document.>` matches `trace.document.document.lent` but not `trace.documents.x`.
fn subject_matches(pattern: &str, subject: &str) -> bool {
    match pattern.strip_suffix(".>") {
        Some(prefix) => subject
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with('.')),
        None => pattern == subject,
    }
}

/// Maximum length of a subject pattern, in bytes (all its characters are ASCII).
const MAX_SUBJECT_BYTES: usize = 255;

/// Checks a subject pattern: at most [`MAX_SUBJECT_BYTES`] long, dot-separated subject
/// tokens, optionally ending in `.>`.
pub(crate) fn validate_subject(field: &str, value: &str) -> ServiceResult<String> {
    if value.len() > MAX_SUBJECT_BYTES {
        return Err(ServiceError::invalid(
            field,
            value,
            format!("must be at most {MAX_SUBJECT_BYTES} characters"),
        ));
    }
    let prefix = value.strip_suffix(".>").unwrap_or(value);
    let valid = prefix
        .split('.')
        .all(trace_runtime::event::is_subject_token);
    if !valid {
        return Err(ServiceError::invalid(
            field,
            value,
            "must be dot-separated names of a-z, 0-9 and '_', optionally ending in '.>'",
        ));
    }
    Ok(value.to_owned())
}

fn validate_entity_type(field: &str, value: &str) -> ServiceResult<String> {
    validate::token(
        field,
        value,
        64,
        |c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_',
        "a-z, 0-9 and '_'",
    )
}

/// Applies `check` to a field that may be empty, for "any".
fn optional(
    field: &str,
    value: &str,
    check: fn(&str, &str) -> ServiceResult<String>,
) -> ServiceResult<Option<String>> {
    if value.is_empty() {
        return Ok(None);
    }
    check(field, value).map(Some)
}

fn optional_time(
    field: &str,
    value: Option<&prost_types::Timestamp>,
) -> ServiceResult<Option<i64>> {
    let Some(value) = value else { return Ok(None) };
    micros_from_timestamp(value).map(Some).ok_or_else(|| {
        ServiceError::invalid(
            field,
            &format!("{}s {}ns", value.seconds, value.nanos),
            "is not a valid time",
        )
    })
}

/// Validates a query from a request; every error names the field under `scope.query`.
pub fn validate_query(query: &trace_proto::archive::v1::HoldQuery) -> ServiceResult<HoldQuery> {
    let checked = HoldQuery {
        department: optional(
            "scope.query.department",
            &query.department,
            validate::department,
        )?,
        actor_id: optional("scope.query.actor_id", &query.actor_id, validate::user_id)?,
        entity_type: optional(
            "scope.query.entity_type",
            &query.entity_type,
            validate_entity_type,
        )?,
        subject: optional("scope.query.subject", &query.subject, validate_subject)?,
        recorded_from: optional_time("scope.query.recorded_from", query.recorded_from.as_ref())?,
        recorded_to: optional_time("scope.query.recorded_to", query.recorded_to.as_ref())?,
        match_all: query.match_all,
    };
    if let (Some(from), Some(to)) = (checked.recorded_from, checked.recorded_to)
        && to <= from
    {
        return Err(ServiceError::invalid(
            "scope.query.recorded_to",
            &trace_runtime::clock::from_micros(to).to_rfc3339(),
            "must be after scope.query.recorded_from",
        ));
    }
    match (checked.sets_no_field(), checked.match_all) {
        (true, false) => Err(ServiceError::invalid(
            "scope.query",
            "",
            "sets no field and would hold every record; set match_all to hold every record",
        )),
        (false, true) => Err(ServiceError::invalid(
            "scope.query.match_all",
            "true",
            "must be false when any other query field is set",
        )),
        _ => Ok(checked),
    }
}

/// Validates a hold scope from a request.
pub fn validate_scope(scope: &trace_proto::archive::v1::HoldScope) -> ServiceResult<HoldScope> {
    if let Some(query) = &scope.query {
        for (field, value) in [
            ("scope.entity_type", &scope.entity_type),
            ("scope.entity_id", &scope.entity_id),
        ] {
            if !value.is_empty() {
                return Err(ServiceError::invalid(
                    field,
                    value,
                    "must be empty when scope.query is set",
                ));
            }
        }
        return validate_query(query).map(HoldScope::Query);
    }
    Ok(HoldScope::Entity {
        entity_type: validate_entity_type("scope.entity_type", &scope.entity_type)?,
        entity_id: validate::line("scope.entity_id", &scope.entity_id, 0, 128)?,
    })
}

/// Reads the scope of a stored hold.
pub fn stored_scope(row: &legal_hold::Model) -> Result<HoldScope, serde_json::Error> {
    match &row.query {
        Some(json) => serde_json::from_str(json).map(HoldScope::Query),
        None => Ok(HoldScope::Entity {
            entity_type: row.entity_type.clone(),
            entity_id: row.entity_id.clone(),
        }),
    }
}

/// Builds the protobuf form of a scope.
pub fn scope_message(scope: &HoldScope) -> trace_proto::archive::v1::HoldScope {
    match scope {
        HoldScope::Entity {
            entity_type,
            entity_id,
        } => trace_proto::archive::v1::HoldScope {
            entity_type: entity_type.clone(),
            entity_id: entity_id.clone(),
            query: None,
        },
        HoldScope::Query(query) => trace_proto::archive::v1::HoldScope {
            query: Some(trace_proto::archive::v1::HoldQuery {
                department: query.department.clone().unwrap_or_default(),
                actor_id: query.actor_id.clone().unwrap_or_default(),
                entity_type: query.entity_type.clone().unwrap_or_default(),
                subject: query.subject.clone().unwrap_or_default(),
                recorded_from: timestamp_opt(query.recorded_from),
                recorded_to: timestamp_opt(query.recorded_to),
                match_all: query.match_all,
            }),
            ..Default::default()
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use trace_proto::archive::v1 as proto;

    const DAY: i64 = 86_400_000_000;

    fn entry(recorded_at: i64) -> EntryFacts<'static> {
        EntryFacts {
            entity_type: "document",
            entity_id: "d1",
            actor_id: "alice",
            department: "finance",
            subject: "trace.document.document.lent",
            recorded_at,
        }
    }

    fn query_hold(hold_id: &str, query: HoldQuery) -> ActiveHold {
        ActiveHold {
            hold_id: hold_id.to_owned(),
            scope: HoldScope::Query(query),
        }
    }

    #[test]
    fn query_matches_when_every_set_field_matches() {
        let query = HoldQuery {
            department: Some("finance".to_owned()),
            actor_id: Some("alice".to_owned()),
            entity_type: Some("document".to_owned()),
            subject: Some("trace.document.>".to_owned()),
            recorded_from: Some(10 * DAY),
            recorded_to: Some(20 * DAY),
            match_all: false,
        };
        assert!(query.matches(&entry(15 * DAY)));
    }

    #[test]
    fn query_field_mismatch_releases_entry() {
        let base = HoldQuery {
            department: Some("finance".to_owned()),
            ..HoldQuery::default()
        };
        let cases = [
            (
                "department",
                HoldQuery {
                    department: Some("sales".to_owned()),
                    ..base.clone()
                },
            ),
            (
                "actor",
                HoldQuery {
                    actor_id: Some("bob".to_owned()),
                    ..base.clone()
                },
            ),
            (
                "entity type",
                HoldQuery {
                    entity_type: Some("meeting".to_owned()),
                    ..base.clone()
                },
            ),
            (
                "subject",
                HoldQuery {
                    subject: Some("trace.meeting.>".to_owned()),
                    ..base.clone()
                },
            ),
            (
                "exact subject",
                HoldQuery {
                    subject: Some("trace.document.document.returned".to_owned()),
                    ..base.clone()
                },
            ),
            (
                "before period",
                HoldQuery {
                    recorded_from: Some(16 * DAY),
                    ..base.clone()
                },
            ),
            (
                "after period",
                HoldQuery {
                    recorded_to: Some(15 * DAY),
                    ..base.clone()
                },
            ),
        ];
        assert!(base.matches(&entry(15 * DAY)));
        for (case, query) in cases {
            assert!(!query.matches(&entry(15 * DAY)), "{case} should not match");
        }
    }

    #[test]
    fn period_includes_start_and_excludes_end() {
        let query = HoldQuery {
            recorded_from: Some(10 * DAY),
            recorded_to: Some(20 * DAY),
            ..HoldQuery::default()
        };
        assert!(query.matches(&entry(10 * DAY)));
        assert!(query.matches(&entry(20 * DAY - 1)));
        assert!(!query.matches(&entry(20 * DAY)));
        assert!(!query.matches(&entry(10 * DAY - 1)));
    }

    #[test]
    fn subject_prefix_matches_whole_tokens() {
        assert!(subject_matches(
            "trace.document.>",
            "trace.document.document.lent"
        ));
        assert!(!subject_matches(
            "trace.doc.>",
            "trace.document.document.lent"
        ));
        assert!(!subject_matches("trace.document.>", "trace.document"));
        assert!(subject_matches(
            "trace.document.document.lent",
            "trace.document.document.lent"
        ));
        assert!(!subject_matches(
            "trace.document.document",
            "trace.document.document.lent"
        ));
    }

    #[test]
    fn covering_lists_every_matching_hold() {
        let holds = vec![
            query_hold(
                "q1",
                HoldQuery {
                    department: Some("finance".to_owned()),
                    ..HoldQuery::default()
                },
            ),
            query_hold(
                "q2",
                HoldQuery {
                    department: Some("sales".to_owned()),
                    ..HoldQuery::default()
                },
            ),
            ActiveHold {
                hold_id: "e1".to_owned(),
                scope: HoldScope::Entity {
                    entity_type: "document".to_owned(),
                    entity_id: "d1".to_owned(),
                },
            },
            ActiveHold {
                hold_id: "t1".to_owned(),
                scope: HoldScope::Entity {
                    entity_type: "meeting".to_owned(),
                    entity_id: String::new(),
                },
            },
            query_hold(
                "all",
                HoldQuery {
                    match_all: true,
                    ..HoldQuery::default()
                },
            ),
        ];
        assert_eq!(covering(&holds, &entry(0)), vec!["q1", "e1", "all"]);
    }

    #[test]
    fn entity_and_type_holds_keep_their_scope() {
        let entity = HoldScope::Entity {
            entity_type: "document".to_owned(),
            entity_id: "d1".to_owned(),
        };
        let class = HoldScope::Entity {
            entity_type: "document".to_owned(),
            entity_id: String::new(),
        };
        let other = EntryFacts {
            entity_id: "d2",
            ..entry(0)
        };
        assert!(entity.covers(&entry(0)));
        assert!(!entity.covers(&other));
        assert!(class.covers(&other));
    }

    fn invalid_field(result: ServiceResult<HoldScope>) -> String {
        match result {
            Err(ServiceError::InvalidArgument { field, .. }) => field,
            other => panic!("expected an invalid argument, got {other:?}"),
        }
    }

    fn scope_with(query: proto::HoldQuery) -> proto::HoldScope {
        proto::HoldScope {
            query: Some(query),
            ..Default::default()
        }
    }

    #[test]
    fn invalid_query_fields_are_named() {
        let time = |seconds| Some(prost_types::Timestamp { seconds, nanos: 0 });
        let cases = [
            (
                "scope.query.department",
                proto::HoldQuery {
                    department: "Finance Dept".to_owned(),
                    ..Default::default()
                },
            ),
            (
                "scope.query.actor_id",
                proto::HoldQuery {
                    actor_id: "a b".to_owned(),
                    ..Default::default()
                },
            ),
            (
                "scope.query.entity_type",
                proto::HoldQuery {
                    entity_type: "Document".to_owned(),
                    ..Default::default()
                },
            ),
            (
                "scope.query.subject",
                proto::HoldQuery {
                    subject: "trace.*".to_owned(),
                    ..Default::default()
                },
            ),
            (
                "scope.query.subject",
                proto::HoldQuery {
                    subject: "trace..document".to_owned(),
                    ..Default::default()
                },
            ),
            (
                "scope.query.recorded_from",
                proto::HoldQuery {
                    recorded_from: Some(prost_types::Timestamp {
                        seconds: 0,
                        nanos: -1,
                    }),
                    ..Default::default()
                },
            ),
            (
                "scope.query.recorded_to",
                proto::HoldQuery {
                    recorded_from: time(200),
                    recorded_to: time(100),
                    ..Default::default()
                },
            ),
            ("scope.query", proto::HoldQuery::default()),
            (
                "scope.query.match_all",
                proto::HoldQuery {
                    department: "finance".to_owned(),
                    match_all: true,
                    ..Default::default()
                },
            ),
        ];
        for (field, query) in cases {
            assert_eq!(invalid_field(validate_scope(&scope_with(query))), field);
        }
    }

    #[test]
    fn query_with_entity_fields_is_rejected() {
        let scope = proto::HoldScope {
            entity_type: "document".to_owned(),
            query: Some(proto::HoldQuery {
                department: "finance".to_owned(),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(invalid_field(validate_scope(&scope)), "scope.entity_type");
    }

    #[test]
    fn explicit_match_all_is_accepted() {
        let scope = validate_scope(&scope_with(proto::HoldQuery {
            match_all: true,
            ..Default::default()
        }))
        .unwrap();
        assert!(scope.covers(&entry(0)));
    }

    #[test]
    fn stored_query_round_trips() {
        let scope = validate_scope(&scope_with(proto::HoldQuery {
            department: "finance".to_owned(),
            subject: "trace.document.>".to_owned(),
            recorded_from: Some(prost_types::Timestamp {
                seconds: 100,
                nanos: 0,
            }),
            ..Default::default()
        }))
        .unwrap();
        let HoldScope::Query(query) = &scope else {
            panic!("expected a query scope");
        };
        let row = legal_hold::Model {
            hold_id: "h".to_owned(),
            entity_type: String::new(),
            entity_id: String::new(),
            query: Some(serde_json::to_string(query).unwrap()),
            reason: "case 1".to_owned(),
            placed_by: "alice".to_owned(),
            placed_at: 0,
            released_by: None,
            released_at: None,
            release_reason: None,
        };
        assert_eq!(stored_scope(&row).unwrap(), scope);
        let message = scope_message(&scope);
        assert_eq!(validate_scope(&message).unwrap(), scope);
    }
}
