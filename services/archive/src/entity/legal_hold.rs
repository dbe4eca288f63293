//! A legal hold on one entity or on every entity of a type. Held records are never disposed of.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "legal_holds")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub hold_id: String,
    #[sea_orm(indexed)]
    pub entity_type: String,
    /// Empty for a hold on the whole entity type.
    pub entity_id: String,
    pub reason: String,
    pub placed_by: String,
    pub placed_at: i64,
    pub released_by: Option<String>,
    pub released_at: Option<i64>,
    pub release_reason: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
