//! Shared building blocks that every trace service uses the same way, so that a service crate is mostly its domain:
//! configuration, telemetry, the caller's context, validation, errors, database, blobs,
//! event envelopes, the transactional outbox and the gRPC server lifecycle.

pub mod access_approval;
pub mod app;
pub mod auth;
pub mod blob;
pub mod call_limit;
pub mod clock;
pub mod config;
pub mod context;
pub mod db;
pub mod denials;
pub mod directory;
pub mod error;
pub mod event;
pub mod grpc_telemetry;
pub mod metrics;
pub mod nats;
pub mod outbox;
pub mod propagation;
pub mod read_scope;
pub mod seal;
pub mod sealed_text;
pub mod served;
pub mod telemetry;
pub mod tls;
pub mod validate;

pub use error::{ServiceError, ServiceResult};
