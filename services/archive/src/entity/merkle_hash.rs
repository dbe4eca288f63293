//! Stored hashes of the RFC 6962 Merkle tree over ledger entries, keyed by the permanent
//! stored-hash index of the Go `tlog` layout (every complete subtree's root, written once
//! when its last leaf is appended).

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "merkle_hashes")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub stored_index: i64,
    /// 32-byte SHA-256 node or leaf hash.
    pub hash: Vec<u8>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
