//! One row per meeting: its current plan, state and minutes version.

use sea_orm::entity::prelude::*;

use crate::state::{Channel, MeetingState};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "meetings")]
pub struct Model {
    /// UUIDv7 text, so ordering by id orders by creation.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub topic: String,
    pub channel: Channel,
    /// Place, dial-in text or link.
    pub location: String,
    #[sea_orm(indexed)]
    pub start_at: i64,
    pub end_at: i64,
    #[sea_orm(indexed)]
    pub organiser_id: String,
    /// The organiser's department when the meeting was planned. Its supervisors and
    /// department heads may read the meeting. Empty for meetings planned before the column
    /// existed.
    pub department: String,
    pub planned_at: i64,
    pub state: MeetingState,
    /// `trace.common.v1.Confidentiality` number.
    pub confidentiality: i32,
    /// 1 for the original plan; every revision adds one.
    pub plan_revision: i32,
    /// 0 before minutes are recorded; every amendment adds one.
    pub minutes_version: i32,
    pub cancel_reason: Option<String>,
    pub cancelled_at: Option<i64>,
    /// Number of trace events of this meeting so far; the optimistic concurrency check
    /// compares it.
    pub entity_version: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
