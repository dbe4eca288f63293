//! Tables of the archive database.

pub mod chain_head;
pub mod checkpoint;
pub mod conflict;
pub mod disposition;
pub mod ledger_entry;
pub mod legal_hold;
pub mod merkle_hash;
pub mod rejected;
