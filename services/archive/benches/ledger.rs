//! Archive hot-path benchmark: appends N envelopes in batches (the consumer's transaction
//! size) into a fresh ledger, then verifies the whole chain, and compares verification with
//! SHA-256 alone over the same bytes. SQLite always; PostgreSQL too when
//! `TRACE_BENCH_DATABASE_URL` names a server where it may create a database.
//!
//! ```text
//! cargo bench -p trace-archive --bench ledger -- [entries] [batch]
//! ```

mod support;

use std::time::Instant;

use sea_orm::{ConnectionTrait, DatabaseConnection, Statement};
use sha2::{Digest, Sha256};
use trace_archive::ledger::{Incoming, append_batch};
use trace_archive::migration::Migrator;

async fn run(label: &str, db: &DatabaseConnection, entries: u64, batch: u64) {
    let messages: Vec<Incoming> = (0..entries).map(support::incoming).collect();
    let bytes: usize = messages.iter().map(|message| message.raw.len()).sum();

    let started = Instant::now();
    for chunk in messages.chunks(batch as usize) {
        append_batch(db, 1, chunk).await.expect("append");
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

    println!(
        "{label}: {entries} entries ({bytes} envelope bytes), batch {batch}: append {:.0} entries/s ({:.2} s); \
         verify {:.0} entries/s ({:.2} s); SHA-256 alone {:.3} s; verify/SHA ratio {:.1}",
        entries as f64 / append.as_secs_f64(),
        append.as_secs_f64(),
        entries as f64 / verify.as_secs_f64(),
        verify.as_secs_f64(),
        sha_only.as_secs_f64(),
        verify.as_secs_f64() / sha_only.as_secs_f64().max(1e-9),
    );
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
        let admin = trace_runtime::db::connect(&base).await.expect("postgres");
        let name = format!("trace_bench_{}", uuid::Uuid::now_v7().simple());
        let create = format!("CREATE DATABASE {name}");
        admin
            .execute_raw(Statement::from_string(admin.get_database_backend(), create))
            .await
            .expect("create");
        let (server, _) = base.rsplit_once('/').expect("database URL with a path");
        let db = trace_runtime::db::connect_and_migrate::<Migrator>(&format!("{server}/{name}"))
            .await
            .expect("pg");
        run("postgres", &db, entries, batch).await;
        db.close().await.ok();
        let drop = format!("DROP DATABASE {name}");
        admin
            .execute_raw(Statement::from_string(admin.get_database_backend(), drop))
            .await
            .ok();
    }
}
