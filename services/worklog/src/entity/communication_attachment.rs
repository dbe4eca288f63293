//! Attachments of a communication, stored as content-addressed blobs.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "communication_attachments")]
pub struct Model {
    /// UUIDv7 text.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    #[sea_orm(indexed)]
    pub communication_id: String,
    /// Position in the request, from 0.
    pub position: i32,
    pub file_name: String,
    /// Lowercase hex SHA-256 of the content, the blob's address.
    pub sha256: String,
    pub size_bytes: i64,
    pub media_type: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
