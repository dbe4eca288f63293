//! The approval chain of each application round and every approver's decision.

use sea_orm::entity::prelude::*;

use crate::state::ApprovalDecision;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "approvals")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub project_id: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub round: i32,
    /// Position in the chain, starting at 1; approvers decide in this order.
    #[sea_orm(primary_key, auto_increment = false)]
    pub position: i32,
    pub approver_id: String,
    pub required: bool,
    pub decision: Option<ApprovalDecision>,
    pub opinion: Option<String>,
    pub decided_at: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
