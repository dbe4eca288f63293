//! An event id that arrived again with different bytes. The stored entry is kept; the
//! newcomer is recorded here and never appended.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "event_conflicts")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    #[sea_orm(indexed)]
    pub event_id: String,
    pub stored_sequence: i64,
    pub stored_payload_sha256: String,
    pub received_payload_sha256: String,
    pub received_at: i64,
    #[sea_orm(indexed)]
    pub stream_sequence: i64,
    pub raw: Vec<u8>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
