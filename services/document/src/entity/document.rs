//! One row per document: its classification, current state, latest revision and storage.

use sea_orm::entity::prelude::*;

use crate::state::DocumentState;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "documents")]
pub struct Model {
    /// UUIDv7 text, so ordering by id orders by creation.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub title: String,
    /// `validate::search_key(title)`, the normalised title that title search matches.
    pub title_key: String,
    /// Leads the unique key (category, year, file_serial), which guards file numbers.
    #[sea_orm(unique_key = "file_serial")]
    pub category: String,
    #[sea_orm(indexed)]
    pub department: String,
    /// `trace.common.v1.Confidentiality` number.
    pub confidentiality: i32,
    #[sea_orm(indexed)]
    pub state: DocumentState,
    pub drafter_id: String,
    pub drafted_at: i64,
    /// Number of the latest revision, starting at 1.
    pub revision: i32,
    pub content_sha256: String,
    pub content_size: i64,
    pub content_media_type: String,
    /// User the document was last submitted to for review.
    pub reviewer_id: Option<String>,
    #[sea_orm(unique)]
    pub file_number: Option<String>,
    /// Registration year in the business time zone.
    #[sea_orm(unique_key = "file_serial", indexed)]
    pub year: Option<i32>,
    #[sea_orm(unique_key = "file_serial")]
    pub file_serial: Option<i32>,
    pub storage_location: Option<String>,
    pub registered_at: Option<i64>,
    /// Number of trace events of this document so far; the optimistic concurrency check
    /// compares it.
    pub entity_version: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
