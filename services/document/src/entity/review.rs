//! Review records: the reviewer's decision and opinion on one revision.

use sea_orm::entity::prelude::*;

use crate::state::ReviewDecision;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "reviews")]
pub struct Model {
    /// UUIDv7 text.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    #[sea_orm(indexed)]
    pub document_id: String,
    pub revision: i32,
    pub reviewer_id: String,
    pub decision: ReviewDecision,
    pub opinion: String,
    pub reviewed_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
