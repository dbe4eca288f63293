//! Inserting ledger entries and their stored Merkle hashes, for the consumer's appends and for
//! restores, with multi-row `INSERT` statements whose SQL text repeats, so that the driver
//! prepares each statement once and only binds values afterwards.

use sea_orm::{
    ConnectionTrait, DatabaseBackend, DatabaseConnection, DbErr, IdenStatic, Iterable, Statement,
    Value,
};
use tlog_tiles::tlog::Hash;

use crate::entity::{ledger_entry, merkle_hash};

/// Rows per multi-row insert. 1,000 rows of the ledger's 23 columns bind 23,000 values,
/// under the limits of SQLite (32,766 since 3.32) and PostgreSQL (65,535).
const CHUNK_ROWS: usize = 1_000;

/// Page cache of a SQLite connection that restores, in KiB.
const SQLITE_CACHE_KIB: u32 = 256 * 1024;

/// Inserts entries read from a backup, already verified, after the current head, with the
/// stored Merkle hashes that they add, and moves the chain head, in one transaction.
pub async fn insert_restored(
    db: &DatabaseConnection,
    entries: Vec<ledger_entry::Model>,
    stored_hashes: &[(u64, Hash)],
) -> Result<(), DbErr> {
    let Some(last) = entries.last() else {
        return Ok(());
    };
    let (sequence, head_hash) = (last.sequence, last.entry_hash.clone());
    let txn = trace_runtime::db::begin_write(db).await?;
    if txn.get_database_backend() == DatabaseBackend::Sqlite {
        // SQLite's default page cache of 2 MiB is far smaller than the ledger's indexes, so
        // inserting a segment reads index pages back from the file. The setting stays on this
        // pooled connection, and SQLite allocates the pages only as it uses them.
        // NOTE: the gain measured with 200,000 entries was about 5 %, within the noise of a
        // shared two-core machine.
        txn.execute_unprepared(&format!("PRAGMA cache_size = -{SQLITE_CACHE_KIB}"))
            .await?;
    }
    insert_entries(&txn, entries, stored_hashes).await?;
    crate::ledger::set_chain_head(&txn, sequence, head_hash).await?;
    txn.commit().await
}

/// Inserts ledger entries and the stored Merkle hashes that they add, in the caller's
/// transaction. Both the consumer's appends and restores write through here.
pub(crate) async fn insert_entries<C>(
    txn: &C,
    entries: Vec<ledger_entry::Model>,
    stored_hashes: &[(u64, Hash)],
) -> Result<(), DbErr>
where
    C: ConnectionTrait,
{
    let entry_columns: Vec<ledger_entry::Column> = ledger_entry::Column::iter().collect();
    let entry_table = Table {
        name: "ledger_entries",
        columns: entry_columns.iter().map(|column| column.as_str()).collect(),
    };
    entry_table
        .insert(txn, entries, |mut entry, values| {
            for column in &entry_columns {
                values.push(take_column(&mut entry, *column));
            }
        })
        .await?;
    let hash_table = Table {
        name: "merkle_hashes",
        columns: merkle_hash::Column::iter()
            .map(|column| column.as_str())
            .collect(),
    };
    hash_table
        .insert(txn, stored_hashes.iter(), |(index, hash), values| {
            for column in merkle_hash::Column::iter() {
                values.push(match column {
                    merkle_hash::Column::StoredIndex => Value::from(*index as i64),
                    merkle_hash::Column::Hash => Value::from(hash.0.to_vec()),
                });
            }
        })
        .await
}

/// A table and the columns that an insert binds, in order.
struct Table {
    name: &'static str,
    columns: Vec<&'static str>,
}

impl Table {
    /// Inserts `rows` in chunks of [`CHUNK_ROWS`]. `bind` appends one row's values in
    /// column order.
    async fn insert<C, T>(
        &self,
        db: &C,
        rows: impl IntoIterator<Item = T>,
        mut bind: impl FnMut(T, &mut Vec<Value>),
    ) -> Result<(), DbErr>
    where
        C: ConnectionTrait,
    {
        let backend = db.get_database_backend();
        let full_chunk = self.insert_sql(backend, CHUNK_ROWS);
        let mut values = Vec::with_capacity(CHUNK_ROWS * self.columns.len());
        let mut count = 0;
        for row in rows {
            bind(row, &mut values);
            count += 1;
            if count == CHUNK_ROWS {
                let capacity = values.len();
                let chunk = std::mem::replace(&mut values, Vec::with_capacity(capacity));
                db.execute_raw(Statement::from_sql_and_values(
                    backend,
                    full_chunk.clone(),
                    chunk,
                ))
                .await?;
                count = 0;
            }
        }
        if count > 0 {
            let sql = self.insert_sql(backend, count);
            db.execute_raw(Statement::from_sql_and_values(backend, sql, values))
                .await?;
        }
        Ok(())
    }

    /// SQL text that inserts `rows` rows, with the placeholders of `backend`.
    fn insert_sql(&self, backend: DatabaseBackend, rows: usize) -> String {
        use std::fmt::Write;

        let columns: Vec<String> = self
            .columns
            .iter()
            .map(|column| format!("\"{column}\""))
            .collect();
        let mut sql = format!(
            "INSERT INTO \"{}\" ({}) VALUES ",
            self.name,
            columns.join(", ")
        );
        let mut parameter = 0;
        for row in 0..rows {
            sql.push_str(if row == 0 { "(" } else { ", (" });
            for column in 0..self.columns.len() {
                if column > 0 {
                    sql.push_str(", ");
                }
                parameter += 1;
                match backend {
                    DatabaseBackend::Postgres => {
                        write!(sql, "${parameter}").expect("writing to a String");
                    }
                    _ => sql.push('?'),
                }
            }
            sql.push(')');
        }
        sql
    }
}

/// Moves the value of `column` out of `entry`, leaving an empty string or `None` behind.
fn take_column(entry: &mut ledger_entry::Model, column: ledger_entry::Column) -> Value {
    use ledger_entry::Column;

    let take = std::mem::take::<String>;
    match column {
        Column::Sequence => entry.sequence.into(),
        Column::EventId => take(&mut entry.event_id).into(),
        Column::StreamSequence => entry.stream_sequence.into(),
        Column::Subject => take(&mut entry.subject).into(),
        Column::SourceService => take(&mut entry.source_service).into(),
        Column::EntityType => take(&mut entry.entity_type).into(),
        Column::EntityId => take(&mut entry.entity_id).into(),
        Column::EntityVersion => entry.entity_version.into(),
        Column::Action => take(&mut entry.action).into(),
        Column::ActorId => take(&mut entry.actor_id).into(),
        Column::ActorName => take(&mut entry.actor_name).into(),
        Column::ActorDepartment => take(&mut entry.actor_department).into(),
        Column::ActorRole => take(&mut entry.actor_role).into(),
        Column::Confidentiality => entry.confidentiality.into(),
        Column::OccurredAt => entry.occurred_at.into(),
        Column::ReceivedAt => entry.received_at.into(),
        Column::CorrelationId => take(&mut entry.correlation_id).into(),
        Column::CausationId => take(&mut entry.causation_id).into(),
        Column::PayloadType => take(&mut entry.payload_type).into(),
        Column::PayloadSha256 => take(&mut entry.payload_sha256).into(),
        Column::Payload => entry.payload.take().into(),
        Column::PreviousHash => take(&mut entry.previous_hash).into(),
        Column::EntryHash => take(&mut entry.entry_hash).into(),
    }
}
