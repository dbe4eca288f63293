//! Archive hot-path benchmark: appends N envelopes in batches (the consumer's transaction
//! size) into a fresh ledger, then verifies the whole chain, and compares verification with
//! SHA-256 alone, once over the envelopes and once over every stored column of the entries.
//! SQLite always; PostgreSQL too when `TRACE_BENCH_DATABASE_URL` names a server where it may
//! create a database.
//!
//! ```text
//! cargo bench -p trace-archive --bench ledger -- [entries] [batch]
//! ```

mod support;

use std::time::Instant;

use sea_orm::{DatabaseConnection, EntityTrait, QueryOrder};
use sha2::{Digest, Sha256};
use trace_archive::entity::ledger_entry;
use trace_archive::ledger::{Appender, EntryColumns, Incoming};
use trace_archive::migration::Migrator;

async fn run(label: &str, db: &DatabaseConnection, entries: u64, batch: u64) {
    let messages: Vec<Incoming> = (0..entries).map(support::incoming).collect();
    let bytes: usize = messages.iter().map(|message| message.raw.len()).sum();

    let started = Instant::now();
    let mut appender = Appender::new(db.clone());
    for chunk in messages.chunks(batch as usize) {
        appender.append(1, chunk).await.expect("append");
    }
    let append = started.elapsed();

    let started = Instant::now();
    let verification = trace_archive::verify::verify_range(db, 1, 0)
        .await
        .expect("verify");
    let verify = started.elapsed();
    assert!(verification.ok(), "{verification:?}");

    let started = Instant::now();
    let mut digest = Sha256::new();
    for message in &messages {
        digest.update(Sha256::digest(&message.raw));
    }
    std::hint::black_box(digest.finalize());
    let sha_only = started.elapsed();
    let (row_bytes, sha_rows) = hash_stored_rows(db).await;

    println!(
        "{label}: {entries} entries ({bytes} envelope bytes), batch {batch}: append {:.0} entries/s ({:.2} s); \
         verify {:.0} entries/s ({:.2} s); SHA-256 alone {:.3} s; verify/SHA ratio {:.1}; \
         SHA-256 of the stored rows ({row_bytes} bytes) {:.3} s, verify/rows ratio {:.2}",
        entries as f64 / append.as_secs_f64(),
        append.as_secs_f64(),
        entries as f64 / verify.as_secs_f64(),
        verify.as_secs_f64(),
        sha_only.as_secs_f64(),
        verify.as_secs_f64() / sha_only.as_secs_f64().max(1e-9),
        sha_rows.as_secs_f64(),
        verify.as_secs_f64() / sha_rows.as_secs_f64().max(1e-9),
    );
}

/// Times SHA-256 alone, on one thread, over every stored column of every entry: the text
/// columns as stored, integers as eight bytes and the envelope, one digest per entry. These
/// are the bytes that verification reads; the rows are loaded before the clock starts.
async fn hash_stored_rows(db: &DatabaseConnection) -> (usize, std::time::Duration) {
    let rows = ledger_entry::Entity::find()
        .order_by_asc(ledger_entry::Column::Sequence)
        .all(db)
        .await
        .expect("read entries");
    let started = Instant::now();
    let mut bytes = 0;
    let mut digest = Sha256::new();
    for row in &rows {
        let mut entry = Sha256::new();
        let columns = EntryColumns::from(row);
        let texts = [
            columns.event_id,
            columns.subject,
            columns.source_service,
            columns.entity_type,
            columns.entity_id,
            columns.action,
            columns.actor_id,
            columns.actor_name,
            columns.actor_department,
            columns.actor_role,
            columns.correlation_id,
            columns.causation_id,
            columns.payload_type,
            columns.payload_sha256,
            columns.previous_hash,
            columns.entry_hash,
        ];
        for text in texts {
            entry.update(text.as_bytes());
            bytes += text.len();
        }
        let numbers = [
            columns.sequence,
            columns.stream_sequence,
            columns.entity_version,
            i64::from(columns.confidentiality),
            columns.occurred_at,
            columns.received_at,
        ];
        for number in numbers {
            entry.update(number.to_be_bytes());
            bytes += 8;
        }
        let payload = columns.payload.unwrap_or_default();
        entry.update(payload);
        bytes += payload.len();
        digest.update(entry.finalize());
    }
    std::hint::black_box(digest.finalize());
    (bytes, started.elapsed())
}

#[tokio::main]
async fn main() {
    let arguments: Vec<u64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let entries = arguments.first().copied().unwrap_or(20_000);
    let batch = arguments.get(1).copied().unwrap_or(500);

    let dir = tempfile::tempdir().expect("temporary folder");
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("bench.db").display()
    );
    let db = trace_runtime::db::connect_and_migrate::<Migrator>(&url)
        .await
        .expect("sqlite");
    run("sqlite", &db, entries, batch).await;

    if let Ok(base) = std::env::var("TRACE_BENCH_DATABASE_URL") {
        let scratch = support::ScratchDatabase::create(&base).await;
        let db = trace_runtime::db::connect_and_migrate::<Migrator>(&scratch.url)
            .await
            .expect("pg");
        run("postgres", &db, entries, batch).await;
        db.close().await.ok();
        scratch.drop_database().await;
    }
}
