//! Tables of the archive database.

pub mod chain_head;
pub mod conflict;
pub mod ledger_entry;
pub mod rejected;
