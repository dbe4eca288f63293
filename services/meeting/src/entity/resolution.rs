//! Resolutions: one per decision of the minutes, followed up until done.

use sea_orm::entity::prelude::*;

use crate::state::ResolutionStatus;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "resolutions")]
pub struct Model {
    /// UUIDv7 text.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    #[sea_orm(indexed)]
    pub meeting_id: String,
    /// Decision number in the minutes, starting at 1.
    pub decision_number: i32,
    pub decision_text: String,
    #[sea_orm(indexed)]
    pub owner_id: String,
    /// Current due date `YYYYMMDD`; changes only with an approved delay.
    #[sea_orm(indexed)]
    pub due_date: i32,
    pub original_due_date: i32,
    #[sea_orm(indexed)]
    pub status: ResolutionStatus,
    pub created_at: i64,
    pub completed_at: Option<i64>,
    /// Due date for which the last overdue event was recorded, so that each due date is
    /// reported once.
    pub overdue_marked_due: Option<i32>,
    /// Copied from the meeting.
    pub confidentiality: i32,
    /// Number of trace events of this resolution so far.
    pub entity_version: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
