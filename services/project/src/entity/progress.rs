//! Progress reports of the regular progress meetings.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "progress_reports")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    #[sea_orm(indexed)]
    pub project_id: String,
    /// `YYYYMMDD` in the business time zone.
    pub period_start: i32,
    pub period_end: i32,
    pub progress: String,
    pub problems: String,
    pub solutions: String,
    /// Id of the progress meeting in the meeting service.
    pub meeting_id: Option<String>,
    pub reported_by: String,
    pub reported_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
