//! Participants of a communication: a user id for the company's people, a name as given for
//! external people.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "communication_participants")]
pub struct Model {
    /// UUIDv7 text.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    #[sea_orm(indexed)]
    pub communication_id: String,
    /// Position in the request, internal participants first, from 0.
    pub position: i32,
    /// Set for the company's people.
    #[sea_orm(indexed)]
    pub user_id: Option<String>,
    /// Set for external people.
    pub external_name: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
