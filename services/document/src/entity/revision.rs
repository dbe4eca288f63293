//! Content revisions of a document. Revision 1 is the first draft and has an empty change
//! summary; every later revision states what changed.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "revisions")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub document_id: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub revision: i32,
    pub editor_id: String,
    pub edited_at: i64,
    pub change_summary: String,
    pub content_sha256: String,
    pub content_size: i64,
    pub content_media_type: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
