//! Overdue detections: one per resolution and due date, which the primary key enforces.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "overdue_marks")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub resolution_id: String,
    /// The due date `YYYYMMDD` that had passed.
    #[sea_orm(primary_key, auto_increment = false)]
    pub due_date: i32,
    /// The date `YYYYMMDD` the check ran for.
    pub as_of: i32,
    pub marked_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
