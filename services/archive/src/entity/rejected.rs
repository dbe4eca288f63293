//! A message on a trace subject that could not be decoded or failed envelope checks, kept with
//! the reason so that ingestion can continue.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "rejected_messages")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub subject: String,
    #[sea_orm(indexed)]
    pub stream_sequence: i64,
    pub received_at: i64,
    pub reason: String,
    pub raw_sha256: String,
    pub raw_size: i64,
    pub raw: Vec<u8>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
