//! Appending a batch to a PostgreSQL ledger with sqlx directly: the same transaction as the
//! other paths of [`crate::ledger::Appender`], in fewer round trips. The chain head is moved
//! and read in one statement, the stored event ids are looked up in one, and the entries and
//! stored Merkle hashes are written with binary `COPY` instead of bound parameters.

use std::collections::HashMap;

use sea_orm::{DbErr, RuntimeErr, sqlx};
use tlog_tiles::tlog::Hash;

use crate::entity::{conflict, ledger_entry, rejected};
use crate::ledger::{self, Incoming, Outcome};
use crate::merkle::{self, LeafAttempt, MerkleError};

/// Appends `batch` in one transaction on a connection of `pool`.
pub(crate) async fn append(
    pool: &sqlx::PgPool,
    received_at: i64,
    batch: &[Incoming],
) -> Result<Vec<Outcome>, DbErr> {
    let mut txn = pool.begin().await.map_err(database)?;
    // Taking the chain head row's lock first keeps a second archive instance waiting
    // instead of forking the chain.
    let head: (i64, String) = sqlx::query_as(
        "UPDATE chain_head SET updated_at = $1 WHERE id = 1 RETURNING sequence, entry_hash",
    )
    .bind(received_at)
    .fetch_optional(&mut *txn)
    .await
    .map_err(database)?
    .ok_or_else(ledger::missing_chain_head)?;

    let decoded: Vec<_> = batch.iter().map(ledger::decode).collect();
    let event_ids = ledger::lookup_ids(batch, &decoded);
    let stored: Vec<(i64, String, String)> = sqlx::query_as(
        "SELECT sequence, event_id, payload_sha256 FROM ledger_entries WHERE event_id = ANY($1)",
    )
    .bind(&event_ids)
    .fetch_all(&mut *txn)
    .await
    .map_err(database)?;
    let known = stored
        .into_iter()
        .map(|(sequence, event_id, sha)| (event_id, (sequence, sha)))
        .collect();
    let plan = ledger::plan(batch, decoded, known, head, received_at);

    let stored_hashes = merkle_rows(&mut txn, &plan.appended).await?;
    if !plan.appended.is_empty() {
        crate::bulk_insert::copy_rows(&mut txn, &plan.appended, &stored_hashes)
            .await
            .map_err(database)?;
    }
    insert_rejections(&mut txn, &plan.rejections).await?;
    insert_conflicts(&mut txn, &plan.conflicts).await?;
    sqlx::query("UPDATE chain_head SET sequence = $1, entry_hash = $2 WHERE id = 1")
        .bind(plan.sequence)
        .bind(&plan.head_hash)
        .execute(&mut *txn)
        .await
        .map_err(database)?;
    txn.commit().await.map_err(database)?;
    Ok(plan.outcomes)
}

/// Wraps a driver error as sea-orm does, so that callers classify it the same way.
fn database(error: sqlx::Error) -> DbErr {
    DbErr::Exec(RuntimeErr::SqlxError(error.into()))
}

/// Computes the stored Merkle hashes that `appended` adds, with their indexes, in append
/// order, loading the hashes it needs in one statement per attempt.
async fn merkle_rows(
    connection: &mut sqlx::PgConnection,
    appended: &[ledger_entry::Model],
) -> Result<Vec<(u64, Hash)>, DbErr> {
    let mut cache = HashMap::new();
    let mut rows = Vec::new();
    for entry in appended {
        let leaf = merkle::leaf_hash(&entry.entry_hash);
        let index = entry.sequence as u64 - 1;
        loop {
            match merkle::try_append_leaf(&mut cache, index, leaf)
                .map_err(ledger::merkle_failure)?
            {
                LeafAttempt::Added(added) => {
                    rows.extend(added);
                    break;
                }
                LeafAttempt::Missing(missing) => load_hashes(connection, &missing, &mut cache)
                    .await
                    .map_err(ledger::merkle_failure)?,
            }
        }
    }
    Ok(rows)
}

/// Loads the stored hashes at `indexes` into `cache`; every index must exist.
async fn load_hashes(
    connection: &mut sqlx::PgConnection,
    indexes: &[u64],
    cache: &mut HashMap<u64, Hash>,
) -> Result<(), MerkleError> {
    let requested: Vec<i64> = indexes.iter().map(|index| *index as i64).collect();
    let rows: Vec<(i64, Vec<u8>)> =
        sqlx::query_as("SELECT stored_index, hash FROM merkle_hashes WHERE stored_index = ANY($1)")
            .bind(&requested)
            .fetch_all(connection)
            .await
            .map_err(database)?;
    for (index, hash) in rows {
        merkle::cache_row(cache, index, hash)?;
    }
    merkle::check_loaded(indexes, cache)
}

/// Inserts rejected messages, skipping redeliveries of one already kept.
async fn insert_rejections(
    connection: &mut sqlx::PgConnection,
    rows: &[rejected::Model],
) -> Result<(), DbErr> {
    for row in rows {
        let already_kept: Option<i32> = sqlx::query_scalar(
            "SELECT 1 FROM rejected_messages WHERE stream_sequence = $1 AND raw_sha256 = $2",
        )
        .bind(row.stream_sequence)
        .bind(&row.raw_sha256)
        .fetch_optional(&mut *connection)
        .await
        .map_err(database)?;
        if already_kept.is_none() {
            sqlx::query(
                "INSERT INTO rejected_messages \
                 (subject, stream_sequence, received_at, reason, raw_sha256, raw_size, raw) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(&row.subject)
            .bind(row.stream_sequence)
            .bind(row.received_at)
            .bind(&row.reason)
            .bind(&row.raw_sha256)
            .bind(row.raw_size)
            .bind(&row.raw)
            .execute(&mut *connection)
            .await
            .map_err(database)?;
        }
    }
    Ok(())
}

/// Inserts conflicts, recording each distinct conflicting content once.
async fn insert_conflicts(
    connection: &mut sqlx::PgConnection,
    rows: &[conflict::Model],
) -> Result<(), DbErr> {
    for row in rows {
        let already_kept: Option<i32> = sqlx::query_scalar(
            "SELECT 1 FROM event_conflicts WHERE event_id = $1 AND received_payload_sha256 = $2",
        )
        .bind(&row.event_id)
        .bind(&row.received_payload_sha256)
        .fetch_optional(&mut *connection)
        .await
        .map_err(database)?;
        if already_kept.is_none() {
            sqlx::query(
                "INSERT INTO event_conflicts \
                 (event_id, stored_sequence, stored_payload_sha256, received_payload_sha256, \
                 received_at, stream_sequence, raw) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(&row.event_id)
            .bind(row.stored_sequence)
            .bind(&row.stored_payload_sha256)
            .bind(&row.received_payload_sha256)
            .bind(row.received_at)
            .bind(row.stream_sequence)
            .bind(&row.raw)
            .execute(&mut *connection)
            .await
            .map_err(database)?;
        }
    }
    Ok(())
}
