//! Tables of the project service. Instants are `i64` microseconds since the Unix epoch in
//! UTC, and civil dates are `i32` `YYYYMMDD` keys, so comparisons are numeric on SQLite and
//! PostgreSQL alike. Record ids are UUIDv7 text, so ordering by id orders by creation.

pub mod acceptance;
pub mod application;
pub mod approval;
pub mod decision;
pub mod document_update;
pub mod group_member;
pub mod member;
pub mod milestone;
pub mod progress;
pub mod project;
pub mod summary;
pub mod task;
