//! Team members, current and removed. A removed member's row stays, so the team's history
//! stays readable.

use sea_orm::entity::prelude::*;

/// Value of `active_slot` while a member is active.
pub const ACTIVE: &str = "active";

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "members")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    #[sea_orm(indexed, unique_key = "active_member")]
    pub project_id: String,
    #[sea_orm(unique_key = "active_member")]
    pub user_id: String,
    /// [`ACTIVE`] while the member is active and null once removed. Unique together with
    /// the project and user, and nulls never collide, so a user is active at most once per
    /// project on SQLite and PostgreSQL alike.
    #[sea_orm(unique_key = "active_member")]
    pub active_slot: Option<String>,
    pub name: String,
    pub department: String,
    pub position: String,
    pub duties: String,
    pub added_by: String,
    pub added_at: i64,
    pub duties_changed_by: Option<String>,
    pub duties_changed_at: Option<i64>,
    pub removed_by: Option<String>,
    pub removed_at: Option<i64>,
    pub removal_reason: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
