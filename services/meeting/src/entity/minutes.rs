//! Minutes versions of a meeting. Lists are JSON text, because a version is written once
//! and read whole.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "minutes")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub meeting_id: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub version: i32,
    pub taker_id: String,
    pub recorded_at: i64,
    pub held_start_at: i64,
    pub held_end_at: i64,
    pub place: String,
    /// JSON array of user ids.
    pub present_ids: String,
    /// JSON array of user ids.
    pub absent_ids: String,
    /// JSON array of `{"agenda_item": n, "text": "..."}`.
    pub discussions: String,
    /// Empty for version 1.
    pub change_summary: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
