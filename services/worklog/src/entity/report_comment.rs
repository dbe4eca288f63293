//! Supervisor comments on daily reports; every comment is kept.

use sea_orm::entity::prelude::*;

use crate::state::CommentKind;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "report_comments")]
pub struct Model {
    /// UUIDv7 text, so ordering by id orders by time.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    #[sea_orm(indexed)]
    pub report_id: String,
    pub supervisor_id: String,
    pub kind: CommentKind,
    pub text: String,
    pub commented_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
