//! Appending a batch to a SQLite ledger file through a `rusqlite` connection, on a blocking
//! thread: the same transaction as the other paths of [`crate::ledger::Appender`], with
//! every statement prepared once per connection and executed without leaving the thread.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior};
use sea_orm::DbErr;
use tlog_tiles::tlog::Hash;

use crate::entity::ledger_entry;
use crate::ledger::{self, Incoming, Outcome};
use crate::merkle::{self, MerkleError};

/// How long a statement waits for another process's write lock, as sqlx's connections do.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Appends `batch` to the ledger file at `path` in one transaction, through `connection`, or
/// through a new connection when it is `None`. Returns the connection for the next batch
/// (`None` when it could not be opened) with the outcomes.
pub(crate) fn append(
    path: &Path,
    connection: Option<Connection>,
    received_at: i64,
    batch: &[Incoming],
) -> (Option<Connection>, Result<Vec<Outcome>, DbErr>) {
    let mut connection = match connection.map_or_else(|| open(path), Ok) {
        Ok(connection) => connection,
        Err(error) => {
            let error = DbErr::Custom(format!("failed to open {}: {error}", path.display()));
            return (None, Err(error));
        }
    };
    let result = append_in_transaction(&mut connection, received_at, batch);
    (Some(connection), result)
}

/// Opens an existing ledger file with the settings of the service's own pool: the busy
/// timeout, foreign keys, and `synchronous = NORMAL`, under which WAL mode syncs at
/// checkpoints rather than at every commit.
fn open(path: &Path) -> rusqlite::Result<Connection> {
    let connection = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    connection.busy_timeout(BUSY_TIMEOUT)?;
    connection.pragma_update(None, "foreign_keys", true)?;
    connection.pragma_update(None, "synchronous", "NORMAL")?;
    Ok(connection)
}

fn append_in_transaction(
    connection: &mut Connection,
    received_at: i64,
    batch: &[Incoming],
) -> Result<Vec<Outcome>, DbErr> {
    let transaction = connection
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(database)?;
    transaction
        .prepare_cached("UPDATE chain_head SET updated_at = ?1 WHERE id = 1")
        .and_then(|mut statement| statement.execute([received_at]))
        .map_err(database)?;
    let head: (i64, String) = transaction
        .prepare_cached("SELECT sequence, entry_hash FROM chain_head WHERE id = 1")
        .and_then(|mut statement| {
            statement
                .query_row([], |row| Ok((row.get(0)?, row.get(1)?)))
                .optional()
        })
        .map_err(database)?
        .ok_or_else(ledger::missing_chain_head)?;

    let decoded: Vec<_> = batch.iter().map(ledger::decode).collect();
    let known =
        stored_digests(&transaction, &ledger::lookup_ids(batch, &decoded)).map_err(database)?;
    let plan = ledger::plan(batch, decoded, known, head, received_at);
    let stored_hashes = merkle_rows(&transaction, &plan.appended)?;
    crate::bulk_insert::insert_rows(&transaction, &plan.appended, &stored_hashes)
        .map_err(database)?;
    insert_rejections(&transaction, &plan.rejections).map_err(database)?;
    insert_conflicts(&transaction, &plan.conflicts).map_err(database)?;
    transaction
        .prepare_cached("UPDATE chain_head SET sequence = ?1, entry_hash = ?2 WHERE id = 1")
        .and_then(|mut statement| statement.execute((plan.sequence, &plan.head_hash)))
        .map_err(database)?;
    transaction.commit().map_err(database)?;
    Ok(plan.outcomes)
}

/// Wraps a SQLite error so that [`trace_runtime::db::is_busy`] still recognises a locked
/// file by its message.
fn database(error: rusqlite::Error) -> DbErr {
    DbErr::Custom(format!("SQLite: {error}"))
}

/// Sequence and payload digest of each of `event_ids` that is already stored, one indexed
/// lookup per id.
fn stored_digests(
    connection: &Connection,
    event_ids: &[String],
) -> rusqlite::Result<HashMap<String, (i64, String)>> {
    let mut lookup = connection.prepare_cached(
        "SELECT sequence, payload_sha256 FROM ledger_entries WHERE event_id = ?1",
    )?;
    let mut known = HashMap::new();
    for event_id in event_ids {
        if let Some(stored) = lookup
            .query_row([event_id], |row| Ok((row.get(0)?, row.get(1)?)))
            .optional()?
        {
            known.insert(event_id.clone(), stored);
        }
    }
    Ok(known)
}

/// Computes the stored Merkle hashes that `appended` adds, with their indexes, in append
/// order.
fn merkle_rows(
    connection: &Connection,
    appended: &[ledger_entry::Model],
) -> Result<Vec<(u64, Hash)>, DbErr> {
    let mut read = connection
        .prepare_cached("SELECT hash FROM merkle_hashes WHERE stored_index = ?1")
        .map_err(database)?;
    let mut load = |indexes: &[u64], cache: &mut HashMap<u64, Hash>| {
        for &index in indexes {
            let stored: Option<Vec<u8>> = read
                .query_row([index as i64], |row| row.get(0))
                .optional()
                .map_err(|error| MerkleError::Database(database(error)))?;
            let stored = stored.ok_or(MerkleError::MissingHash(index))?;
            merkle::cache_row(cache, index as i64, stored)?;
        }
        Ok(())
    };
    let mut cache = HashMap::new();
    let mut rows = Vec::new();
    for entry in appended {
        let leaf = merkle::leaf_hash(&entry.entry_hash);
        let added =
            merkle::append_leaf_blocking(&mut cache, entry.sequence as u64 - 1, leaf, &mut load)
                .map_err(ledger::merkle_failure)?;
        rows.extend(added);
    }
    Ok(rows)
}

/// Inserts rejected messages, skipping redeliveries of one already kept.
fn insert_rejections(
    connection: &Connection,
    rows: &[crate::entity::rejected::Model],
) -> rusqlite::Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut already_kept = connection.prepare_cached(
        "SELECT 1 FROM rejected_messages WHERE stream_sequence = ?1 AND raw_sha256 = ?2",
    )?;
    let mut insert = connection.prepare_cached(
        "INSERT INTO rejected_messages \
         (subject, stream_sequence, received_at, reason, raw_sha256, raw_size, raw) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?;
    for row in rows {
        if !already_kept.exists((row.stream_sequence, &row.raw_sha256))? {
            insert.execute((
                &row.subject,
                row.stream_sequence,
                row.received_at,
                &row.reason,
                &row.raw_sha256,
                row.raw_size,
                &row.raw,
            ))?;
        }
    }
    Ok(())
}

/// Inserts conflicts, recording each distinct conflicting content once.
fn insert_conflicts(
    connection: &Connection,
    rows: &[crate::entity::conflict::Model],
) -> rusqlite::Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut already_kept = connection.prepare_cached(
        "SELECT 1 FROM event_conflicts WHERE event_id = ?1 AND received_payload_sha256 = ?2",
    )?;
    let mut insert = connection.prepare_cached(
        "INSERT INTO event_conflicts \
         (event_id, stored_sequence, stored_payload_sha256, received_payload_sha256, \
         received_at, stream_sequence, raw) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?;
    for row in rows {
        if !already_kept.exists((&row.event_id, &row.received_payload_sha256))? {
            insert.execute((
                &row.event_id,
                row.stored_sequence,
                &row.stored_payload_sha256,
                &row.received_payload_sha256,
                row.received_at,
                row.stream_sequence,
                &row.raw,
            ))?;
        }
    }
    Ok(())
}
