//! One row per finding and deadline reported overdue, so a deadline is reported once.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "overdue_reports")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    #[sea_orm(unique_key = "finding_deadline")]
    pub finding_id: String,
    /// The deadline as a `YYYYMMDD` key.
    #[sea_orm(unique_key = "finding_deadline")]
    pub deadline: i32,
    pub as_of: i32,
    pub reported_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
