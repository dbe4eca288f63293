//! A legal hold on one entity, on every entity of a type, or on the entries a query matches.
//! Held records are never disposed of.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "legal_holds")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub hold_id: String,
    /// Empty for a query hold.
    #[sea_orm(indexed)]
    pub entity_type: String,
    /// Empty for a hold on the whole entity type, and for a query hold.
    pub entity_id: String,
    /// A query hold's [`crate::holds::HoldQuery`] as JSON; `None` for an entity or type hold.
    pub query: Option<String>,
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
