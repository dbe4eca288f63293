//! Written requests to move a resolution's due date, with their decision.

use sea_orm::entity::prelude::*;

use crate::state::DelayState;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "delay_requests")]
pub struct Model {
    /// UUIDv7 text.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    #[sea_orm(indexed)]
    pub resolution_id: String,
    pub requested_by: String,
    pub requested_at: i64,
    pub reason: String,
    pub current_due_date: i32,
    pub proposed_due_date: i32,
    pub approver_id: Option<String>,
    pub state: DelayState,
    pub decided_by: Option<String>,
    pub decided_at: Option<i64>,
    pub opinion: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
