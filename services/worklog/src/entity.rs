//! Tables of the worklog service. Instants are `i64` microseconds since the Unix epoch in UTC,
//! and civil dates are `i32` `YYYYMMDD` keys, so comparisons are numeric on SQLite and
//! PostgreSQL alike. Proto enums without a lifecycle (scope, channel, linked document kind)
//! are stored as their proto names, for example
//! `COMMUNICATION_CHANNEL_EMAIL`.

pub mod communication;
pub mod communication_attachment;
pub mod communication_document;
pub mod communication_participant;
pub mod report;
pub mod report_comment;
pub mod report_decision;
pub mod report_figure;
pub mod report_round;
