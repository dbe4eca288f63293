//! Retention commands: legal holds and disposition plans.

use anyhow::Context;
use trace_proto::archive::v1::{
    ApproveDispositionRequest, HoldQuery, HoldScope, PlaceHoldRequest, PlanDispositionRequest,
    ReleaseHoldRequest,
};

use crate::Identity;
use crate::archive::connect;
use crate::progress::Progress;

/// Scope of `hold place` as given on the command line.
#[derive(Debug, Default)]
pub struct HoldTarget {
    pub entity_type: Option<String>,
    pub entity_id: String,
    pub actor_department: Option<String>,
    pub actor_id: Option<String>,
    pub subject: Option<String>,
    pub recorded_from: Option<String>,
    pub recorded_to: Option<String>,
    pub all_records: bool,
}

impl HoldTarget {
    fn is_query(&self) -> bool {
        self.all_records
            || self.actor_department.is_some()
            || self.actor_id.is_some()
            || self.subject.is_some()
            || self.recorded_from.is_some()
            || self.recorded_to.is_some()
    }

    /// Builds the request scope: an entity or type hold, or a query hold when any query flag
    /// is given. The archive validates every field.
    fn scope(self) -> anyhow::Result<HoldScope> {
        if !self.is_query() {
            let entity_type = self.entity_type.context(
                "give --entity-type for an entity or type hold, query flags such as \
                 --actor-department for a query hold, or --all-records",
            )?;
            return Ok(HoldScope {
                entity_type,
                entity_id: self.entity_id,
                query: None,
            });
        }
        let query = HoldQuery {
            department: self.actor_department.unwrap_or_default(),
            actor_id: self.actor_id.unwrap_or_default(),
            entity_type: self.entity_type.unwrap_or_default(),
            subject: self.subject.unwrap_or_default(),
            recorded_from: timestamp("recorded-from", self.recorded_from.as_deref())?,
            recorded_to: timestamp("recorded-to", self.recorded_to.as_deref())?,
            match_all: self.all_records,
        };
        Ok(HoldScope {
            query: Some(query),
            ..HoldScope::default()
        })
    }
}

fn timestamp(flag: &str, text: Option<&str>) -> anyhow::Result<Option<prost_types::Timestamp>> {
    let Some(text) = text else { return Ok(None) };
    let instant = chrono::DateTime::parse_from_rfc3339(text)
        .with_context(|| format!("--{flag} {text:?} is not an RFC 3339 time"))?;
    Ok(Some(prost_types::Timestamp {
        seconds: instant.timestamp(),
        nanos: instant.timestamp_subsec_nanos() as i32,
    }))
}

/// Describes a hold scope in words, for the text output.
fn describe_scope(scope: &HoldScope) -> String {
    let Some(query) = &scope.query else {
        return if scope.entity_id.is_empty() {
            format!("every {}", scope.entity_type)
        } else {
            format!("{} {}", scope.entity_type, scope.entity_id)
        };
    };
    if query.match_all {
        return "every record".to_owned();
    }
    let time = |value: &Option<prost_types::Timestamp>| crate::output::time(value.as_ref());
    let mut fields = Vec::new();
    for (name, value) in [
        ("department", &query.department),
        ("actor", &query.actor_id),
        ("entity type", &query.entity_type),
        ("subject", &query.subject),
    ] {
        if !value.is_empty() {
            fields.push(format!("{name} {value}"));
        }
    }
    if query.recorded_from.is_some() {
        fields.push(format!("recorded from {}", time(&query.recorded_from)));
    }
    if query.recorded_to.is_some() {
        fields.push(format!("recorded before {}", time(&query.recorded_to)));
    }
    format!("entries with {}", fields.join(", "))
}

/// Places a hold and prints its id.
pub async fn place_hold(
    address: &str,
    identity: &Identity,
    target: HoldTarget,
    reason: &str,
    json: bool,
) -> anyhow::Result<bool> {
    let request = PlaceHoldRequest {
        scope: Some(target.scope()?),
        reason: reason.to_owned(),
    };
    let mut client = connect(address).await?;
    let hold = client
        .place_hold(identity.request(request))
        .await?
        .into_inner()
        .hold
        .unwrap_or_default();
    let scope = hold.scope.clone().unwrap_or_default();
    if json {
        out!(
            "{}",
            serde_json::json!({
                "hold_id": hold.hold_id,
                "placed_by": hold.placed_by,
                "scope": describe_scope(&scope),
            })
        );
    } else {
        out!(
            "hold {} placed by {} on {}",
            hold.hold_id,
            hold.placed_by,
            describe_scope(&scope)
        );
    }
    Ok(true)
}

/// Releases a hold.
pub async fn release_hold(
    address: &str,
    identity: &Identity,
    hold_id: &str,
    reason: &str,
    json: bool,
) -> anyhow::Result<bool> {
    let mut client = connect(address).await?;
    let request = ReleaseHoldRequest {
        hold_id: hold_id.to_owned(),
        reason: reason.to_owned(),
    };
    let hold = client
        .release_hold(identity.request(request))
        .await?
        .into_inner()
        .hold
        .unwrap_or_default();
    if json {
        out!(
            "{}",
            serde_json::json!({ "hold_id": hold.hold_id, "released_by": hold.released_by })
        );
    } else {
        out!("hold {} released", hold.hold_id);
    }
    Ok(true)
}

/// Plans a disposition (nothing is removed) and prints what it lists.
pub async fn plan(address: &str, identity: &Identity, json: bool) -> anyhow::Result<bool> {
    let mut client = connect(address).await?;
    let progress = Progress::waiting("disposition plan");
    let plan = client
        .plan_disposition(identity.request(PlanDispositionRequest {}))
        .await;
    progress.finish();
    let plan = plan?.into_inner();
    if json {
        let items: Vec<_> = plan
            .items
            .iter()
            .map(|item| {
                serde_json::json!({
                    "sequence": item.sequence,
                    "event_id": item.event_id,
                    "entity_type": item.entity_type,
                    "entity_id": item.entity_id,
                    "schedule": item.schedule,
                })
            })
            .collect();
        let held: Vec<_> = plan
            .held
            .iter()
            .map(|item| {
                serde_json::json!({
                    "sequence": item.sequence,
                    "event_id": item.event_id,
                    "entity_type": item.entity_type,
                    "entity_id": item.entity_id,
                    "schedule": item.schedule,
                    "hold_ids": item.hold_ids,
                })
            })
            .collect();
        out!(
            "{}",
            serde_json::json!({ "plan_id": plan.plan_id, "items": items, "held": held })
        );
    } else {
        out!(
            "disposition plan {}: {} entries due (dry run, nothing removed)",
            plan.plan_id,
            plan.items.len()
        );
        for item in &plan.items {
            out!(
                "  #{} {} {} under {}",
                item.sequence,
                item.entity_type,
                item.entity_id,
                item.schedule
            );
        }
        if !plan.held.is_empty() {
            out!("{} expired entries kept by legal holds:", plan.held.len());
        }
        for item in &plan.held {
            out!(
                "  #{} {} {} under {}: held by {}",
                item.sequence,
                item.entity_type,
                item.entity_id,
                item.schedule,
                item.hold_ids.join(", ")
            );
        }
        out!(
            "a second person approves it with: tracectl disposition --approve {}",
            plan.plan_id
        );
    }
    Ok(true)
}

/// Approves and executes a plan made by someone else.
pub async fn approve(
    address: &str,
    identity: &Identity,
    plan_id: &str,
    json: bool,
) -> anyhow::Result<bool> {
    let mut client = connect(address).await?;
    let request = ApproveDispositionRequest {
        plan_id: plan_id.to_owned(),
    };
    let call = client.approve_disposition(identity.request(request));
    let result = crate::progress::archive_job(address, identity, "disposition", call)
        .await?
        .into_inner();
    if json {
        out!(
            "{}",
            serde_json::json!({
                "plan_id": result.plan_id,
                "disposed": result.disposed,
                "skipped": result.skipped,
                "certificate_sha256": result.certificate_sha256,
                "certificate": serde_json::from_str::<serde_json::Value>(&result.certificate_json).unwrap_or_default(),
                "event_id": result.event_id,
            })
        );
    } else {
        out!(
            "disposition {}: {} payloads removed, {} skipped; certificate {} recorded as event {}",
            result.plan_id,
            result.disposed,
            result.skipped,
            result.certificate_sha256,
            result.event_id
        );
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entity_flags_build_an_entity_scope() {
        let target = HoldTarget {
            entity_type: Some("document".to_owned()),
            entity_id: "d1".to_owned(),
            ..HoldTarget::default()
        };
        let scope = target.scope().unwrap();
        assert_eq!(scope.entity_type, "document");
        assert_eq!(scope.entity_id, "d1");
        assert!(scope.query.is_none());
    }

    #[test]
    fn query_flags_build_a_query_scope() {
        let target = HoldTarget {
            entity_type: Some("document".to_owned()),
            actor_department: Some("finance".to_owned()),
            recorded_from: Some("2026-03-01T00:00:00+08:00".to_owned()),
            ..HoldTarget::default()
        };
        let scope = target.scope().unwrap();
        assert!(
            scope.entity_type.is_empty(),
            "the type moves into the query"
        );
        let query = scope.query.unwrap();
        assert_eq!(query.entity_type, "document");
        assert_eq!(query.department, "finance");
        assert_eq!(query.recorded_from.unwrap().seconds, 1_772_294_400);
        assert!(!query.match_all);
    }

    #[test]
    fn no_flags_are_rejected() {
        let error = HoldTarget::default().scope().unwrap_err().to_string();
        assert!(error.contains("--all-records"), "{error}");
    }

    #[test]
    fn invalid_time_names_the_flag() {
        let target = HoldTarget {
            recorded_to: Some("March".to_owned()),
            ..HoldTarget::default()
        };
        let error = target.scope().unwrap_err().to_string();
        assert!(error.contains("--recorded-to"), "{error}");
    }
}
