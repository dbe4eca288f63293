//! Faults that must lose nothing. `basic` contains single faults with sequential calls, and the
//! `scenarios` run a fault under concurrent load and check the whole call history against
//! the archive with `history::check_history`.
//!
//! Each scenario runs `TRACE_FAULT_REPEAT` times (default 1); `make faults` runs more.

mod basic;
pub(crate) mod history;
mod load;
mod scenarios;

pub use basic::create_drafts;
