//! Tables of the meeting service. Instants are `i64` microseconds since the Unix epoch in
//! UTC, and civil dates are `i32` `YYYYMMDD` keys, so comparisons are numeric on SQLite and
//! PostgreSQL alike. Rows of history (revisions, notices, updates, delays, marks) are only
//! ever inserted, never updated or deleted, except the current attendees and agenda that a
//! plan revision replaces.

pub mod agenda_item;
pub mod attendee;
pub mod confirmation;
pub mod delay_request;
pub mod dispatch;
pub mod material;
pub mod meeting;
pub mod minutes;
pub mod notice;
pub mod overdue_mark;
pub mod plan_revision;
pub mod resolution;
pub mod resolution_update;
