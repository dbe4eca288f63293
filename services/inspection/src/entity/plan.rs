//! One row per inspection plan.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "inspection_plans")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub name: String,
    /// `MONTHLY` or `QUARTERLY`.
    pub cycle: String,
    /// JSON array of department ids.
    pub departments: String,
    /// JSON array of `trace.inspection.v1.Process` numbers.
    pub processes: String,
    pub created_by: String,
    pub created_at: i64,
    pub entity_version: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
