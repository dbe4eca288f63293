//! Tables of the archive database.

pub mod chain_head;
pub mod checkpoint;
pub mod conflict;
pub mod ledger_entry;
pub mod merkle_hash;
pub mod rejected;
