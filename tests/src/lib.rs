//! Shared harness for the end-to-end tests of the trace services.
//!
//! Tests run against real components, never mocks:
//!
//! - [`nats::NatsServer`] starts a private `nats-server` with JetStream on a free
//!   port of 127.0.0.1 and a temporary store directory, so tests never share a
//!   broker with each other or with a NATS server already running on 4222. It can
//!   be killed with SIGKILL and restarted on the same port and store for fault tests.
//! - [`moto::MotoServer`] starts moto's S3-compatible server on a free port of
//!   127.0.0.1 for the cloud backup tests, or reports that the binary is absent so
//!   that the test can skip with the reason printed.
//! - [`postgres::fresh_database`] creates a new PostgreSQL database for one test on
//!   the server named by `TRACE_TEST_DATABASE_URL` and returns `None` when that
//!   variable is unset, so a test can fall back to SQLite.
//! - [`postgres_cluster::PostgresCluster`] starts a private PostgreSQL cluster that a
//!   fault test may restart, or reports that the server binaries are absent.
//! - [`receipts::ReceiptSender`] sends receipts for a service's events, for service
//!   tests that read the stream with no archive running.
//!
//! `make test` installs the pinned `nats-server` and `moto_server` with `make tools`
//! and points `TRACE_NATS_SERVER` and `TRACE_MOTO_SERVER` at them. `.ci/run` also starts PostgreSQL and sets
//! `TRACE_TEST_DATABASE_URL`.
//!
//! ```no_run
//! use trace_tests::{nats::NatsServer, postgres};
//!
//! # fn main() -> anyhow::Result<()> {
//! let nats = NatsServer::start()?;
//! let database_url = postgres::fresh_database("document_outbox")?
//!     .unwrap_or_else(|| "sqlite::memory:".to_owned());
//! println!("NATS at {}, database at {database_url}", nats.url());
//! # Ok(())
//! # }
//! ```

pub mod corpus;
pub mod moto;
pub mod nats;
pub mod postgres;
pub mod postgres_cluster;
pub mod receipts;
pub mod scan;
