//! Test data shared by the archive benchmarks.

use bytes::Bytes;
use prost::Message;
use trace_archive::ledger::Incoming;
use trace_proto::event::v1::{Actor, Envelope};

/// Subject of every envelope that [`envelope`] builds.
pub const SUBJECT: &str = "trace.document.document.read";

/// Builds envelope number `index`: a document read of realistic size (about 360 bytes
/// encoded) with an actor, ids and a blob reference. Entity ids repeat every 10 envelopes,
/// with versions 1 to 10.
pub fn envelope(index: u64) -> Envelope {
    let payload = trace_proto::document::v1::DocumentRead {
        revision: 1,
        content: Some(trace_proto::common::v1::BlobRef {
            sha256: format!("{index:064x}"),
            size_bytes: 4096,
            media_type: "text/plain; charset=utf-8".to_owned(),
        }),
        access_request_id: String::new(),
    };
    Envelope {
        event_id: uuid::Uuid::now_v7().to_string(),
        subject: SUBJECT.to_owned(),
        occurred_at: Some(prost_types::Timestamp {
            seconds: 1_790_000_000 + index as i64,
            nanos: 0,
        }),
        actor: Some(Actor {
            user_id: "zhang.min".to_owned(),
            display_name: "張敏".to_owned(),
            department: "admin-office".to_owned(),
            role: "employee".to_owned(),
        }),
        source_service: "document".to_owned(),
        entity_type: "document".to_owned(),
        entity_id: format!("{:032x}", index / 10),
        entity_version: index % 10 + 1,
        action: "read".to_owned(),
        confidentiality: 2,
        correlation_id: uuid::Uuid::now_v7().to_string(),
        causation_id: String::new(),
        trace_context: None,
        payload: Some(trace_runtime::event::pack(&payload)),
        sealed_payload: None,
    }
}

/// Builds envelope number `index` as the trace stream delivers it, at stream sequence
/// `index + 1`.
// The drain benchmark publishes envelopes instead, so it compiles this module without a caller.
#[allow(dead_code)]
pub fn incoming(index: u64) -> Incoming {
    let envelope = envelope(index);
    Incoming {
        stream_sequence: index + 1,
        subject: envelope.subject.clone(),
        raw: Bytes::from(envelope.encode_to_vec()),
        previous_event_id: None,
    }
}

/// A PostgreSQL database created for one benchmark run on the server of a given URL, and
/// dropped by [`ScratchDatabase::drop_database`].
// Only the benchmarks that also measure PostgreSQL call it.
#[allow(dead_code)]
pub struct ScratchDatabase {
    admin: sea_orm::DatabaseConnection,
    name: String,
    /// URL of the new database, on the same server as the one it was created from.
    pub url: String,
}

#[allow(dead_code)]
impl ScratchDatabase {
    /// Creates a database with a unique name on the server of `base`, a URL of a database
    /// where the user may run `CREATE DATABASE`.
    pub async fn create(base: &str) -> Self {
        use sea_orm::ConnectionTrait;

        let admin = trace_runtime::db::connect(base).await.expect("postgres");
        let name = format!("trace_bench_{}", uuid::Uuid::now_v7().simple());
        admin
            .execute_unprepared(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create database");
        let (server, _) = base.rsplit_once('/').expect("database URL with a path");
        let url = format!("{server}/{name}");
        Self { admin, name, url }
    }

    /// Drops the database; every connection to it must be closed first.
    pub async fn drop_database(self) {
        use sea_orm::ConnectionTrait;

        let drop = format!("DROP DATABASE {}", self.name);
        if let Err(error) = self.admin.execute_unprepared(&drop).await {
            eprintln!(
                "failed to drop the benchmark database {}: {error}",
                self.name
            );
        }
    }
}
