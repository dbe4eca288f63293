//! One row per report, daily, weekly or monthly: who wrote it for which period, its state,
//! its current round and, for daily reports, how it met the deadline and the calendar.

use sea_orm::entity::prelude::*;

use crate::state::{ReportKind, ReportState};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "reports")]
pub struct Model {
    /// UUIDv7 text.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// Leads the unique key (author_id, kind, period_start): one report per author, kind and
    /// period.
    #[sea_orm(unique_key = "author_period")]
    pub author_id: String,
    #[sea_orm(unique_key = "author_period")]
    pub kind: ReportKind,
    /// First day of the period as a `YYYYMMDD` key.
    #[sea_orm(unique_key = "author_period", indexed)]
    pub period_start: i32,
    /// Last day of the period as a `YYYYMMDD` key.
    pub period_end: i32,
    /// Department of the author at submission.
    pub department: String,
    /// Direct supervisor of the author at submission.
    pub supervisor_id: String,
    #[sea_orm(indexed)]
    pub state: ReportState,
    /// Current round, starting at 1.
    pub round: i32,
    /// First submission.
    pub submitted_at: i64,
    /// Submission of the current round.
    pub round_submitted_at: i64,
    /// Daily reports: the deadline instant.
    pub deadline_at: Option<i64>,
    /// Daily reports: submitted after the deadline.
    pub late: bool,
    /// Daily reports: minutes after the deadline, rounded up.
    pub late_minutes: i32,
    /// Daily reports: `calendar::DayKind` name of the work date.
    pub day_kind: Option<String>,
    /// Number of trace events of this report so far; the optimistic concurrency check
    /// compares it.
    pub entity_version: i64,
    /// `trace.common.v1.Confidentiality` number, chosen at the first submission.
    pub confidentiality: i32,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
