//! Tables of the document service. Instants are `i64` microseconds since the Unix epoch in
//! UTC, and civil dates are `i32` `YYYYMMDD` keys, so comparisons are numeric on SQLite and
//! PostgreSQL alike.

pub mod access_request;
pub mod agreement;
pub mod backup;
pub mod borrowing;
pub mod document;
pub mod file_number_counter;
pub mod read;
pub mod review;
pub mod revision;
