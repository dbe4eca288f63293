//! Revisions of a meeting plan: who changed which fields, when and why.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "plan_revisions")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub meeting_id: String,
    /// The plan revision this change produced, starting at 2.
    #[sea_orm(primary_key, auto_increment = false)]
    pub revision: i32,
    pub revised_by: String,
    pub revised_at: i64,
    pub change_summary: String,
    /// Names of the changed fields, separated by commas.
    pub changed_fields: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
