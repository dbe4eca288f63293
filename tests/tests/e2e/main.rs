//! End-to-end tests: real `nats-server`, real SQLite files (and PostgreSQL when
//! `TRACE_TEST_DATABASE_URL` is set), services in-process or as processes.

mod access;
mod backups;
mod checkpoints;
mod export;
mod faults;
mod nkey_login;
mod policy_document;
mod stack;
mod telemetry;
