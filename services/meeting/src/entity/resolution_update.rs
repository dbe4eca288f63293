//! Progress updates of resolutions: status, progress, problems met and solutions.

use sea_orm::entity::prelude::*;

use crate::state::ResolutionStatus;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "resolution_updates")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub resolution_id: String,
    /// Update number, starting at 1.
    #[sea_orm(primary_key, auto_increment = false)]
    pub number: i32,
    pub updated_by: String,
    pub updated_at: i64,
    pub status: ResolutionStatus,
    pub progress_note: String,
    pub problems: String,
    pub solutions: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
