//! One row per finding, recorded by people or raised by a rule, with its rectification. The
//! free-text columns of CONFIDENTIAL and SECRET findings are sealed at rest (see
//! [`crate::sealing`]).

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "findings")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    #[sea_orm(indexed)]
    pub inspection_id: Option<String>,
    /// Rule name such as `document_review`; absent for a recorded finding.
    #[sea_orm(indexed)]
    pub rule: Option<String>,
    /// `LOW`, `MEDIUM`, `HIGH` or `CRITICAL`.
    pub severity: String,
    #[sea_orm(indexed)]
    pub department: String,
    pub description: String,
    /// JSON array of [`crate::rules::Reference`].
    pub references: String,
    /// A `trace.inspection.v1.FindingState` name without the prefix, such as `OPEN`.
    #[sea_orm(indexed)]
    pub state: String,
    pub recorded_by: String,
    pub recorded_at: i64,
    pub measures: Option<String>,
    pub responsible_id: Option<String>,
    /// Rectification deadline as a `YYYYMMDD` key.
    pub deadline: Option<i32>,
    pub assigned_by: Option<String>,
    pub assigned_at: Option<i64>,
    pub result: Option<String>,
    pub result_submitted_at: Option<i64>,
    /// `ACCEPTED` or `REOPENED`.
    pub verdict: Option<String>,
    pub verification_opinion: Option<String>,
    pub verified_by: Option<String>,
    pub verified_at: Option<i64>,
    pub closing_event_id: Option<String>,
    pub closed_at: Option<i64>,
    pub entity_version: i64,
    /// `trace.common.v1.Confidentiality` number; findings stored before levels existed are
    /// INTERNAL.
    pub confidentiality: i32,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
