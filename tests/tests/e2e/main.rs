//! End-to-end tests: real `nats-server`, real SQLite files (and PostgreSQL when
//! `TRACE_TEST_DATABASE_URL` is set), services in-process or as processes.

mod access;
mod approvals;
mod backups;
mod checkpoints;
mod delivery;
mod denials;
mod export;
mod faults;
mod holds;
mod logs;
mod nats_example;
mod nkey_login;
mod policy_document;
mod sealing;
mod stack;
mod telemetry;
mod tls;
