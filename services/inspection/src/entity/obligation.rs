//! Rule state: one row per record a rule expects, such as the minutes of one meeting. The
//! unique key (rule, gap key) makes a rule fire at most once per gap.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "obligations")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// Rule name such as `meeting_minutes`.
    #[sea_orm(unique_key = "rule_gap", indexed)]
    pub rule: String,
    /// Key of the expected record, such as a meeting id or `user/2026-12-07`.
    #[sea_orm(unique_key = "rule_gap")]
    pub gap_key: String,
    #[sea_orm(indexed)]
    pub department: String,
    pub entity_type: String,
    pub entity_id: String,
    /// Event that created the obligation; empty for generated daily report obligations.
    pub opened_event_id: String,
    pub opened_stream_sequence: i64,
    /// Date the obligation counts for in completeness scores, as a `YYYYMMDD` key.
    #[sea_orm(indexed)]
    pub expected_on: i32,
    /// Instant after which a missing record is a gap, grace period included.
    #[sea_orm(indexed)]
    pub due_at: i64,
    /// `OPEN`, `FULFILLED`, `FIRED`, `CLOSED` or `CANCELLED`.
    #[sea_orm(indexed)]
    pub state: String,
    pub fulfilled_event_id: Option<String>,
    pub fulfilled_stream_sequence: Option<i64>,
    pub fulfilled_at: Option<i64>,
    pub finding_id: Option<String>,
    /// True when the expected working day came from no calendar table.
    pub uncalendared: bool,
    /// Highest `trace.common.v1.Confidentiality` number of the events the obligation is
    /// about, which its finding takes; INTERNAL for generated daily report obligations and
    /// for obligations stored before levels existed.
    pub confidentiality: i32,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
