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
use sea_orm::{
    ColumnTrait, DatabaseConnection, EntityTrait, FromQueryResult, QueryFilter, QueryOrder,
    QuerySelect,
};
use serde::{Deserialize, Serialize};
use trace_runtime::clock::{from_micros, local_date};

use crate::config::{ArchiveSettings, RetentionSchedule, RetentionTrigger};
use crate::entity::{ledger_entry, legal_hold};
use crate::holds::{self, ActiveHold, EntryFacts};

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

/// An expired entry that active holds keep out of a plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldItem {
    pub item: PlannedItem,
    pub hold_ids: Vec<String>,
}

/// Entries a disposition would remove now, and expired entries that legal holds keep.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    pub items: Vec<PlannedItem>,
    pub held: Vec<HeldItem>,
}

/// Trigger instants per entity: its first event, and the first event of each action.
#[derive(Debug, Default)]
struct EntityTriggers {
    created_at: i64,
    first_action: HashMap<String, i64>,
}

type EntityKey = (String, String);

/// Columns the plan needs, without payload bytes.
#[derive(Debug, FromQueryResult)]
struct EntryColumns {
    sequence: i64,
    event_id: String,
    subject: String,
    entity_type: String,
    entity_id: String,
    action: String,
    actor_id: String,
    actor_department: String,
    confidentiality: i32,
    occurred_at: i64,
    received_at: i64,
    payload_sha256: String,
    has_payload: bool,
}

impl EntryColumns {
    fn facts(&self) -> EntryFacts<'_> {
        EntryFacts {
            entity_type: &self.entity_type,
            entity_id: &self.entity_id,
            actor_id: &self.actor_id,
            department: &self.actor_department,
            subject: &self.subject,
            recorded_at: self.received_at,
        }
    }
}

async fn load_columns(db: &DatabaseConnection) -> Result<Vec<EntryColumns>, sea_orm::DbErr> {
    ledger_entry::Entity::find()
        .select_only()
        .columns([
            ledger_entry::Column::Sequence,
            ledger_entry::Column::EventId,
            ledger_entry::Column::Subject,
            ledger_entry::Column::EntityType,
            ledger_entry::Column::EntityId,
            ledger_entry::Column::Action,
            ledger_entry::Column::ActorId,
            ledger_entry::Column::ActorDepartment,
            ledger_entry::Column::Confidentiality,
            ledger_entry::Column::OccurredAt,
            ledger_entry::Column::ReceivedAt,
            ledger_entry::Column::PayloadSha256,
        ])
        .column_as(ledger_entry::Column::Payload.is_not_null(), "has_payload")
        .order_by_asc(ledger_entry::Column::Sequence)
        .into_model::<EntryColumns>()
        .all(db)
        .await
}

fn triggers(rows: &[EntryColumns]) -> HashMap<EntityKey, EntityTriggers> {
    let mut triggers: HashMap<EntityKey, EntityTriggers> = HashMap::new();
    for row in rows {
        let entry = triggers
            .entry((row.entity_type.clone(), row.entity_id.clone()))
            .or_insert_with(|| EntityTriggers {
                created_at: row.occurred_at,
                ..EntityTriggers::default()
            });
        entry.created_at = entry.created_at.min(row.occurred_at);
        let first = entry
            .first_action
            .entry(row.action.clone())
            .or_insert(row.occurred_at);
        *first = (*first).min(row.occurred_at);
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

/// Loads the unreleased holds. A stored query that no longer parses is an error rather than
/// a hold that matches nothing, so a damaged hold stops disposition instead of releasing.
async fn active_holds(db: &DatabaseConnection) -> Result<Vec<ActiveHold>, sea_orm::DbErr> {
    let rows = legal_hold::Entity::find()
        .filter(legal_hold::Column::ReleasedAt.is_null())
        .all(db)
        .await?;
    rows.into_iter()
        .map(|row| {
            let scope = holds::stored_scope(&row).map_err(|error| {
                sea_orm::DbErr::Custom(format!(
                    "legal hold {} has an unreadable query: {error}",
                    row.hold_id
                ))
            })?;
            Ok(ActiveHold {
                hold_id: row.hold_id,
                scope,
            })
        })
        .collect()
}

/// Returns the longest matching schedule's expiry and name, when every matching schedule has
/// been triggered, the longest has passed at `now`, and so has the floor.
fn expiry_if_due<'a>(
    row: &EntryColumns,
    entity: &EntityTriggers,
    settings: &'a ArchiveSettings,
    zone: Tz,
    now: i64,
) -> Option<(i64, &'a str)> {
    let floor =
        expires_at(row.occurred_at, settings.retention_floor_months, zone).unwrap_or(i64::MAX);
    let mut longest: Option<(i64, &str)> = None;
    let mut pending = false;
    for schedule in settings
        .retention
        .iter()
        .filter(|s| matches(s, &row.entity_type, row.confidentiality))
    {
        match schedule_expiry(schedule, entity, zone) {
            Some(expiry) if longest.is_none_or(|(current, _)| expiry > current) => {
                longest = Some((expiry, &schedule.name));
            }
            Some(_) => {}
            None => pending = true,
        }
    }
    let (expiry, schedule) = longest?;
    if pending || expiry > now || floor > now {
        return None;
    }
    Some((expiry, schedule))
}

/// Lists every entry whose payload may be removed at `now`: still stored, expired under the
/// longest matching schedule, older than the floor, and not held. Expired entries that holds
/// keep are listed apart with the ids of those holds.
pub async fn plan(
    db: &DatabaseConnection,
    settings: &ArchiveSettings,
    zone: Tz,
    now: i64,
) -> Result<Plan, sea_orm::DbErr> {
    let rows = load_columns(db).await?;
    let triggers = triggers(&rows);
    let holds = active_holds(db).await?;
    let mut plan = Plan::default();
    for row in &rows {
        if !row.has_payload {
            continue;
        }
        let entity = &triggers[&(row.entity_type.clone(), row.entity_id.clone())];
        let Some((expiry, schedule)) = expiry_if_due(row, entity, settings, zone, now) else {
            continue;
        };
        let item = PlannedItem {
            sequence: row.sequence,
            event_id: row.event_id.clone(),
            entity_type: row.entity_type.clone(),
            entity_id: row.entity_id.clone(),
            schedule: schedule.to_owned(),
            expired_at: expiry,
            payload_sha256: row.payload_sha256.clone(),
        };
        let hold_ids = holds::covering(&holds, &row.facts());
        if hold_ids.is_empty() {
            plan.items.push(item);
        } else {
            let hold_ids = hold_ids.into_iter().map(str::to_owned).collect();
            plan.held.push(HeldItem { item, hold_ids });
        }
    }
    Ok(plan)
}

/// Removes the payloads of `sequences` in the caller's transaction.
pub async fn remove_payloads<C: sea_orm::ConnectionTrait>(
    txn: &C,
    sequences: &[i64],
    progress: &(dyn Fn(u64, u64) + Sync),
) -> Result<u64, sea_orm::DbErr> {
    let mut removed = 0;
    let total = sequences.len() as u64;
    for (index, chunk) in sequences.chunks(500).enumerate() {
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
        progress(((index * 500 + chunk.len()) as u64).min(total), total);
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
}
