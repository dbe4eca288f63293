//! Retention and disposition. A schedule keeps a class of records for a number of calendar
//! months after a trigger. A plan lists what has expired and is not held, as a dry run. A
//! second person approves it, and then the payloads are removed while every entry hash, the
//! chain and the Merkle tree stay as they were, so verification stays green. The certificate
//! of what was removed is kept and recorded as a trace event.
//!
//! Calendar rule: the period ends on the same day of the month `period_months` later, or on
//! the last day of that month when it is shorter (29 February plus 12 months is 28 February),
//! and the record expires at the following midnight in the business time zone, so it never
//! expires a day early.

use std::collections::HashMap;

use chrono::{Months, TimeZone};
use chrono_tz::Tz;
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use serde::{Deserialize, Serialize};
use trace_runtime::clock::{from_micros, local_date};

use crate::config::{ArchiveSettings, RetentionSchedule, RetentionTrigger};
use crate::entity::{ledger_entry, legal_hold};

/// Maps a confidentiality name to its protobuf number.
pub fn confidentiality_level(name: &str) -> Option<i32> {
    match name {
        "public" => Some(1),
        "internal" => Some(2),
        "confidential" => Some(3),
        "secret" => Some(4),
        _ => None,
    }
}

/// Computes the instant at which a record triggered at `trigger_micros` expires after `months`.
pub fn expires_at(trigger_micros: i64, months: u32, zone: Tz) -> Option<i64> {
    let date = local_date(from_micros(trigger_micros), zone);
    let end = date.checked_add_months(Months::new(months))?;
    let next_day = end.succ_opt()?.and_hms_opt(0, 0, 0)?;
    // A midnight skipped by a daylight-saving change resolves to the first valid instant.
    let local = zone.from_local_datetime(&next_day).earliest().or_else(|| {
        zone.from_local_datetime(&(next_day + chrono::Duration::hours(1)))
            .earliest()
    })?;
    Some(local.timestamp_micros())
}

/// One entry a plan disposes of.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedItem {
    pub sequence: i64,
    pub event_id: String,
    pub entity_type: String,
    pub entity_id: String,
    pub schedule: String,
    pub expired_at: i64,
    pub payload_sha256: String,
}

/// Trigger instants per entity: its first event, and the first event of each action.
#[derive(Debug, Default)]
struct EntityTriggers {
    created_at: i64,
    first_action: HashMap<String, i64>,
}

type EntityKey = (String, String);

/// Columns the plan needs, without payload bytes.
type EntryColumns = (i64, String, String, String, String, i32, i64, String, bool);

async fn load_columns(db: &DatabaseConnection) -> Result<Vec<EntryColumns>, sea_orm::DbErr> {
    ledger_entry::Entity::find()
        .select_only()
        .columns([
            ledger_entry::Column::Sequence,
            ledger_entry::Column::EventId,
            ledger_entry::Column::EntityType,
            ledger_entry::Column::EntityId,
            ledger_entry::Column::Action,
            ledger_entry::Column::Confidentiality,
            ledger_entry::Column::OccurredAt,
            ledger_entry::Column::PayloadSha256,
        ])
        .column_as(ledger_entry::Column::Payload.is_not_null(), "has_payload")
        .order_by_asc(ledger_entry::Column::Sequence)
        .into_tuple()
        .all(db)
        .await
}

fn triggers(rows: &[EntryColumns]) -> HashMap<EntityKey, EntityTriggers> {
    let mut triggers: HashMap<EntityKey, EntityTriggers> = HashMap::new();
    for (_, _, entity_type, entity_id, action, _, occurred_at, _, _) in rows {
        let entry = triggers
            .entry((entity_type.clone(), entity_id.clone()))
            .or_insert_with(|| EntityTriggers {
                created_at: *occurred_at,
                ..EntityTriggers::default()
            });
        entry.created_at = entry.created_at.min(*occurred_at);
        let first = entry
            .first_action
            .entry(action.clone())
            .or_insert(*occurred_at);
        *first = (*first).min(*occurred_at);
    }
    triggers
}

fn matches(schedule: &RetentionSchedule, entity_type: &str, confidentiality: i32) -> bool {
    let type_matches = schedule.entity_type == "*" || schedule.entity_type == entity_type;
    let level_matches = schedule
        .confidentiality
        .as_deref()
        .is_none_or(|level| confidentiality_level(level) == Some(confidentiality));
    type_matches && level_matches
}

/// Expiry of one schedule for an entity, or `None` while its trigger has not happened.
fn schedule_expiry(
    schedule: &RetentionSchedule,
    triggers: &EntityTriggers,
    zone: Tz,
) -> Option<i64> {
    let trigger = match schedule.trigger {
        RetentionTrigger::Creation => Some(triggers.created_at),
        RetentionTrigger::Event => schedule
            .trigger_actions
            .iter()
            .filter_map(|action| triggers.first_action.get(action).copied())
            .min(),
    }?;
    expires_at(trigger, schedule.period_months, zone)
}

/// Loads the unreleased holds as (entity type, entity id, or empty for the whole type).
async fn active_holds(db: &DatabaseConnection) -> Result<Vec<(String, String)>, sea_orm::DbErr> {
    let holds = legal_hold::Entity::find()
        .filter(legal_hold::Column::ReleasedAt.is_null())
        .all(db)
        .await?;
    Ok(holds
        .into_iter()
        .map(|hold| (hold.entity_type, hold.entity_id))
        .collect())
}

fn is_held(holds: &[(String, String)], entity_type: &str, entity_id: &str) -> bool {
    holds.iter().any(|(held_type, held_id)| {
        held_type == entity_type && (held_id.is_empty() || held_id == entity_id)
    })
}

/// Lists every entry whose payload may be removed at `now`: still stored, expired under the
/// longest matching schedule, older than the floor, and not held.
pub async fn plan(
    db: &DatabaseConnection,
    settings: &ArchiveSettings,
    zone: Tz,
    now: i64,
) -> Result<Vec<PlannedItem>, sea_orm::DbErr> {
    let rows = load_columns(db).await?;
    let triggers = triggers(&rows);
    let holds = active_holds(db).await?;
    let mut items = Vec::new();
    for (
        sequence,
        event_id,
        entity_type,
        entity_id,
        _,
        confidentiality,
        occurred_at,
        sha,
        has_payload,
    ) in rows
    {
        if !has_payload || is_held(&holds, &entity_type, &entity_id) {
            continue;
        }
        let floor =
            expires_at(occurred_at, settings.retention_floor_months, zone).unwrap_or(i64::MAX);
        let entity = &triggers[&(entity_type.clone(), entity_id.clone())];
        let mut longest: Option<(i64, &str)> = None;
        let mut pending = false;
        for schedule in settings
            .retention
            .iter()
            .filter(|s| matches(s, &entity_type, confidentiality))
        {
            match schedule_expiry(schedule, entity, zone) {
                Some(expiry) if longest.is_none_or(|(current, _)| expiry > current) => {
                    longest = Some((expiry, &schedule.name));
                }
                Some(_) => {}
                None => pending = true,
            }
        }
        let Some((expiry, schedule)) = longest else {
            continue;
        };
        if pending || expiry > now || floor > now {
            continue;
        }
        items.push(PlannedItem {
            sequence,
            event_id,
            entity_type,
            entity_id,
            schedule: schedule.to_owned(),
            expired_at: expiry,
            payload_sha256: sha,
        });
    }
    Ok(items)
}

/// Removes the payloads of `sequences` in the caller's transaction.
pub async fn remove_payloads<C: sea_orm::ConnectionTrait>(
    txn: &C,
    sequences: &[i64],
) -> Result<u64, sea_orm::DbErr> {
    let mut removed = 0;
    for chunk in sequences.chunks(500) {
        let result = ledger_entry::Entity::update_many()
            .col_expr(
                ledger_entry::Column::Payload,
                Expr::value(Option::<Vec<u8>>::None),
            )
            .filter(ledger_entry::Column::Sequence.is_in(chunk.iter().copied()))
            .filter(ledger_entry::Column::Payload.is_not_null())
            .exec(txn)
            .await?;
        removed += result.rows_affected;
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    fn micros(year: i32, month: u32, day: u32, hour: u32) -> i64 {
        Utc.with_ymd_and_hms(year, month, day, hour, 0, 0)
            .unwrap()
            .timestamp_micros()
    }

    #[test]
    fn leap_day_expiry_is_first_of_march() {
        let shanghai = chrono_tz::Asia::Shanghai;
        // 2028-02-29 10:00 in Shanghai is 02:00 UTC.
        let expiry = expires_at(micros(2028, 2, 29, 2), 12, shanghai).unwrap();
        let expected = shanghai
            .with_ymd_and_hms(2029, 3, 1, 0, 0, 0)
            .unwrap()
            .timestamp_micros();
        assert_eq!(expiry, expected);
    }

    #[test]
    fn expiry_uses_the_business_date_not_utc() {
        let shanghai = chrono_tz::Asia::Shanghai;
        // 2026-01-31 20:00 UTC is already 1 February in Shanghai.
        let expiry = expires_at(micros(2026, 1, 31, 20), 6, shanghai).unwrap();
        let expected = shanghai
            .with_ymd_and_hms(2026, 8, 2, 0, 0, 0)
            .unwrap()
            .timestamp_micros();
        assert_eq!(expiry, expected);
    }

    #[test]
    fn month_end_clamps_and_never_expires_early() {
        let utc = chrono_tz::UTC;
        let expiry = expires_at(micros(2026, 8, 31, 12), 6, utc).unwrap();
        assert_eq!(
            expiry,
            micros(2027, 3, 1, 0),
            "31 August + 6 months ends 28 February"
        );
    }

    #[test]
    fn hold_covers_entity_and_class() {
        let holds = vec![
            ("document".to_owned(), "d1".to_owned()),
            ("meeting".to_owned(), String::new()),
        ];
        assert!(is_held(&holds, "document", "d1"));
        assert!(!is_held(&holds, "document", "d2"));
        assert!(is_held(&holds, "meeting", "anything"));
    }
}
