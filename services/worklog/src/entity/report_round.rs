//! The content of one round of a report. A daily report has one round; a weekly or monthly
//! report gains one per revision. Each kind fills its own columns and leaves the rest empty.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "report_rounds")]
pub struct Model {
    /// UUIDv7 text.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    #[sea_orm(unique_key = "report_round")]
    pub report_id: String,
    #[sea_orm(unique_key = "report_round")]
    pub round: i32,
    pub submitted_at: i64,
    /// Summary of the changes since the previous round; empty for round 1.
    pub change_summary: String,
    /// Daily.
    pub work_done: String,
    /// Daily.
    pub results: String,
    /// Every kind.
    pub problems: String,
    /// Daily.
    pub solutions: String,
    /// Daily: next day's plan; weekly: next week's plan.
    pub next_plan: String,
    /// Weekly and monthly.
    pub completion: String,
    /// Weekly.
    pub causes: String,
    /// Weekly.
    pub measures: String,
    /// Monthly.
    pub goal_attainment: String,
    /// Monthly.
    pub teamwork: String,
    /// Monthly.
    pub improvements: String,
    /// Monthly.
    pub cases: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
