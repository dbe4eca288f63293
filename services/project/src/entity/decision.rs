//! Key decisions and technical changes, each with its approval.

use sea_orm::entity::prelude::*;

use crate::state::{DecisionKind, DecisionState};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "decisions")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    #[sea_orm(indexed)]
    pub project_id: String,
    pub kind: DecisionKind,
    pub process: String,
    pub reason: String,
    pub content: String,
    pub approver_id: String,
    pub state: DecisionState,
    pub recorded_by: String,
    pub recorded_at: i64,
    pub approval_opinion: Option<String>,
    pub decided_at: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
