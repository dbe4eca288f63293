//! One archived event. Rows are only ever inserted; disposition may later clear `payload`
//! while every hash stays.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "ledger_entries")]
pub struct Model {
    /// Ledger sequence, 1, 2, 3, ... with no gaps.
    #[sea_orm(primary_key, auto_increment = false)]
    pub sequence: i64,
    #[sea_orm(unique)]
    pub event_id: String,
    pub stream_sequence: i64,
    pub subject: String,
    pub source_service: String,
    #[sea_orm(indexed)]
    pub entity_type: String,
    #[sea_orm(indexed)]
    pub entity_id: String,
    pub entity_version: i64,
    pub action: String,
    #[sea_orm(indexed)]
    pub actor_id: String,
    pub actor_name: String,
    pub actor_department: String,
    pub actor_role: String,
    pub confidentiality: i32,
    /// Producer's clock, microseconds since the Unix epoch (UTC).
    #[sea_orm(indexed)]
    pub occurred_at: i64,
    /// Archive's clock at commit, microseconds since the Unix epoch (UTC).
    pub received_at: i64,
    pub correlation_id: String,
    pub causation_id: String,
    pub payload_type: String,
    /// Lowercase hex SHA-256 of the envelope bytes as received.
    pub payload_sha256: String,
    /// The envelope bytes as received; `None` once disposed of.
    pub payload: Option<Vec<u8>>,
    pub previous_hash: String,
    pub entry_hash: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
