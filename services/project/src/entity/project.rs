//! One row per project: its current state, application round and the next approver.

use sea_orm::entity::prelude::*;

use crate::state::ProjectState;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "projects")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// Name of the current application round.
    pub name: String,
    /// Department of the current application round.
    #[sea_orm(indexed)]
    pub department: String,
    /// `trace.common.v1.Confidentiality` number.
    pub confidentiality: i32,
    #[sea_orm(indexed)]
    pub state: ProjectState,
    /// The user who submitted the first application.
    pub manager_id: String,
    /// Current application round, starting at 1.
    pub round: i32,
    /// User whose approval is awaited while the project is in approval.
    pub next_approver_id: Option<String>,
    pub submitted_at: i64,
    pub approved_at: Option<i64>,
    pub started_at: Option<i64>,
    pub closed_at: Option<i64>,
    /// Number of trace events of this project so far; the optimistic concurrency check
    /// compares it.
    pub entity_version: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
