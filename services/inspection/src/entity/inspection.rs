//! One row per periodic inspection or spot check, with its report.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "inspections")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// `PERIODIC` or `SPOT_CHECK`.
    pub kind: String,
    /// Plan of a periodic inspection; with `period_start` a unique key, so each period
    /// opens once.
    #[sea_orm(unique_key = "plan_period")]
    pub plan_id: Option<String>,
    #[sea_orm(unique_key = "plan_period")]
    pub period_start: Option<i32>,
    pub period_end: Option<i32>,
    /// JSON array of department ids.
    pub departments: String,
    /// JSON array of `trace.inspection.v1.Process` numbers.
    pub processes: String,
    /// JSON array of record ids a spot check targets.
    pub record_ids: String,
    /// `READING_RECORDS` or `INTERVIEW` for a spot check.
    pub method: Option<String>,
    pub ordered_by: String,
    pub opened_at: i64,
    /// `DRAFT`, `RETURNED`, `REVIEWED` or `DISTRIBUTED`; absent before the first draft.
    pub report_state: Option<String>,
    pub findings_summary: Option<String>,
    pub suggestions: Option<String>,
    /// JSON array of finding ids when the report was last drafted.
    pub report_finding_ids: Option<String>,
    pub drafted_by: Option<String>,
    pub reviewed_by: Option<String>,
    pub review_opinion: Option<String>,
    /// Level of the report, the `trace.common.v1.Confidentiality` number: INTERNAL before
    /// the first draft and for reports stored before the column existed. The findings
    /// summary, suggestions and review opinion are sealed at this level.
    pub report_confidentiality: i32,
    pub entity_version: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
