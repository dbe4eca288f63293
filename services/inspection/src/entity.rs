//! Tables of the inspection service. Instants are `i64` microseconds since the Unix epoch in
//! UTC, civil dates are `i32` `YYYYMMDD` keys, and lists are JSON text, so the same schema
//! works on SQLite and PostgreSQL. Record ids are UUIDv7 text, so ordering by id orders by
//! creation.

pub mod cursor;
pub mod distribution;
pub mod finding;
pub mod fulfilment;
pub mod inspection;
pub mod obligation;
pub mod overdue_report;
pub mod plan;
pub mod processed_event;
