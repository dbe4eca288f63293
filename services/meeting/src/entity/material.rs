//! Meeting materials with their author, completion time, content and review.

use sea_orm::entity::prelude::*;

use crate::state::{MaterialKind, ReviewState};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "materials")]
pub struct Model {
    /// UUIDv7 text.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    #[sea_orm(indexed)]
    pub meeting_id: String,
    pub title: String,
    pub kind: MaterialKind,
    pub author_id: String,
    pub completed_at: i64,
    /// Set together with `content_size` and `content_media_type` for stored content.
    pub content_sha256: Option<String>,
    pub content_size: Option<i64>,
    pub content_media_type: Option<String>,
    /// Set instead of the content for a registered document.
    pub document_id: Option<String>,
    pub review_state: ReviewState,
    pub reviewer_id: Option<String>,
    pub review_opinion: Option<String>,
    pub reviewed_at: Option<i64>,
    pub added_by: String,
    pub added_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
