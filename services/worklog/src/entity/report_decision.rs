//! Supervisor decisions on rounds of weekly and monthly reports, with the opinion that the
//! performance review reads; every decision is kept.

use sea_orm::entity::prelude::*;

use crate::state::Decision;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "report_decisions")]
pub struct Model {
    /// UUIDv7 text.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    #[sea_orm(indexed)]
    pub report_id: String,
    pub round: i32,
    pub supervisor_id: String,
    pub decision: Decision,
    pub opinion: String,
    pub decided_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
