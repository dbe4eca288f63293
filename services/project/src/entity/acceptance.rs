//! Applications for acceptance and the group's result. A failed acceptance keeps its row,
//! and the next application gets the next attempt number.

use sea_orm::entity::prelude::*;

use crate::state::AcceptanceResult;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "acceptances")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    #[sea_orm(unique_key = "attempt")]
    pub project_id: String,
    /// Number of the application for acceptance, starting at 1.
    #[sea_orm(unique_key = "attempt")]
    pub attempt: i32,
    pub results_report: String,
    /// Id of the test report in the document service.
    pub test_report_document_id: String,
    pub user_feedback: String,
    pub applied_by: String,
    pub applied_at: i64,
    pub group_set_by: Option<String>,
    pub group_set_at: Option<i64>,
    pub result: Option<AcceptanceResult>,
    pub group_opinion: Option<String>,
    pub open_issues: Option<String>,
    pub decided_by: Option<String>,
    pub decided_at: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
