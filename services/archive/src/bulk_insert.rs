//! Inserting ledger entries and their stored Merkle hashes, for the consumer's appends and for
//! restores. Into a SQLite file both write one row per execution of a prepared `rusqlite`
//! statement ([`insert_rows`]), into PostgreSQL with binary `COPY` ([`copy_rows`]).

use sea_orm::sqlx;
use sea_orm::{DatabaseBackend, DatabaseConnection, DbErr};
use tlog_tiles::tlog::Hash;

use crate::entity::ledger_entry;

/// Page cache of the SQLite connection that restores, in KiB. SQLite's default of 2 MiB is
/// far smaller than the ledger's indexes, so inserting a segment would read index pages back
/// from the file. SQLite allocates the pages only as it uses them.
const SQLITE_CACHE_KIB: u32 = 256 * 1024;

/// Inserts entries read from a backup, already verified, after the current head, with the
/// stored Merkle hashes that they add, and moves the chain head, in one transaction. A SQLite
/// file is written through [`insert_into_file`], PostgreSQL through [`copy_into_postgres`].
/// A SQLite database with no file, such as one in memory, is rejected.
pub async fn insert_restored(
    db: &DatabaseConnection,
    entries: Vec<ledger_entry::Model>,
    stored_hashes: Vec<(u64, Hash)>,
) -> Result<(), DbErr> {
    let Some(last) = entries.last() else {
        return Ok(());
    };
    let (sequence, head_hash) = (last.sequence, last.entry_hash.clone());
    if let Some(path) = crate::verify::sqlite_file(db) {
        return tokio::task::spawn_blocking(move || {
            insert_into_file(&path, &entries, &stored_hashes).map_err(|error| {
                DbErr::Custom(format!(
                    "failed to insert restored entries into {}: {error}",
                    path.display()
                ))
            })
        })
        .await
        .map_err(|error| DbErr::Custom(format!("restore task failed: {error}")))?;
    }
    if db.get_database_backend() == DatabaseBackend::Postgres {
        let pool = db.get_postgres_connection_pool();
        return copy_into_postgres(pool, &entries, &stored_hashes, sequence, &head_hash)
            .await
            .map_err(|error| {
                DbErr::Custom(format!(
                    "failed to copy restored entries into PostgreSQL: {error}"
                ))
            });
    }
    Err(DbErr::Custom(crate::ledger::NO_LEDGER_FILE.to_owned()))
}

/// Bytes of `COPY` data encoded before they are sent, so that a segment is not encoded whole.
const COPY_CHUNK_BYTES: usize = 1 << 20;

/// Initial capacity of a chunk's buffer: a full chunk and room for the row that crosses its
/// end, so that a chunk of typical rows is not reallocated.
const COPY_BUFFER_BYTES: usize = COPY_CHUNK_BYTES + 64 * 1024;

/// Inserts restored entries, their stored Merkle hashes and the new chain head (`sequence`
/// and `head_hash`, of the last entry) into PostgreSQL in one transaction, through
/// [`copy_rows`].
async fn copy_into_postgres(
    pool: &sqlx::PgPool,
    entries: &[ledger_entry::Model],
    stored_hashes: &[(u64, Hash)],
    sequence: i64,
    head_hash: &str,
) -> Result<(), sqlx::Error> {
    let mut txn = pool.begin().await?;
    copy_rows(&mut txn, entries, stored_hashes).await?;
    sqlx::query("UPDATE chain_head SET sequence = $1, entry_hash = $2 WHERE id = 1")
        .bind(sequence)
        .bind(head_hash)
        .execute(&mut *txn)
        .await?;
    txn.commit().await
}

/// Inserts ledger entries and their stored Merkle hashes into PostgreSQL through
/// `connection`, in its open transaction, with `COPY ... FROM STDIN` in the binary format.
/// Neither side then builds or decodes the 23,000 bound values of each 1,000-row `INSERT`,
/// the server runs one statement per table instead of one per 1,000 rows, and binary values
/// need no escaping.
pub(crate) async fn copy_rows(
    connection: &mut sqlx::PgConnection,
    entries: &[ledger_entry::Model],
    stored_hashes: &[(u64, Hash)],
) -> Result<(), sqlx::Error> {
    let mut copy = connection
        .copy_in_raw(concat!(
            "COPY ledger_entries (",
            crate::verify::entry_columns!(),
            ") FROM STDIN (FORMAT binary)"
        ))
        .await?;
    let mut data = BinaryCopy::new();
    for entry in entries {
        if let Err(error) = data.entry(entry) {
            // Ends the COPY on the server, so that the connection goes back to the pool
            // usable.
            copy.abort(error.to_string()).await?;
            return Err(error);
        }
        if data.buffer.len() >= COPY_CHUNK_BYTES {
            copy.send(data.take()).await?;
        }
    }
    copy.send(data.finish()).await?;
    copy.finish().await?;

    let mut copy = connection
        .copy_in_raw("COPY merkle_hashes (stored_index, hash) FROM STDIN (FORMAT binary)")
        .await?;
    let mut data = BinaryCopy::new();
    for (index, hash) in stored_hashes {
        data.row(2);
        data.int8(*index as i64);
        data.bytes(&hash.0)?;
        if data.buffer.len() >= COPY_CHUNK_BYTES {
            copy.send(data.take()).await?;
        }
    }
    copy.send(data.finish()).await?;
    copy.finish().await?;

    Ok(())
}

/// Rows in PostgreSQL's binary `COPY` format: a signature and header, then per row a field
/// count and each field's length and value in the type's binary form, then an end marker.
pub(crate) struct BinaryCopy {
    buffer: Vec<u8>,
}

impl BinaryCopy {
    /// Signature, flags and header extension length of the binary format.
    const HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";

    /// Creates the data with its header.
    pub(crate) fn new() -> Self {
        let mut buffer = Vec::with_capacity(COPY_BUFFER_BYTES);
        buffer.extend_from_slice(Self::HEADER);
        Self { buffer }
    }

    /// Returns the rows encoded so far as one chunk, and starts the next chunk empty.
    fn take(&mut self) -> Vec<u8> {
        std::mem::replace(&mut self.buffer, Vec::with_capacity(COPY_BUFFER_BYTES))
    }

    /// Returns the data encoded since the last chunk, with the end marker.
    pub(crate) fn finish(mut self) -> Vec<u8> {
        self.buffer.extend_from_slice(&(-1i16).to_be_bytes());
        self.buffer
    }

    /// Starts a row of `fields` fields.
    fn row(&mut self, fields: i16) {
        self.buffer.extend_from_slice(&fields.to_be_bytes());
    }

    /// Writes a `bigint`.
    fn int8(&mut self, value: i64) {
        self.buffer.extend_from_slice(&8i32.to_be_bytes());
        self.buffer.extend_from_slice(&value.to_be_bytes());
    }

    /// Writes an `integer`.
    fn int4(&mut self, value: i32) {
        self.buffer.extend_from_slice(&4i32.to_be_bytes());
        self.buffer.extend_from_slice(&value.to_be_bytes());
    }

    /// Writes text or bytea, whose binary forms are the bytes themselves. A field's length
    /// is an `i32` in the format, so a value of 2 GiB or more is an error.
    fn bytes(&mut self, value: &[u8]) -> Result<(), sqlx::Error> {
        let length = i32::try_from(value.len()).map_err(|_| {
            sqlx::Error::Encode(
                format!("a value of {} bytes is too large to copy", value.len()).into(),
            )
        })?;
        self.buffer.extend_from_slice(&length.to_be_bytes());
        self.buffer.extend_from_slice(value);
        Ok(())
    }

    /// Writes a null of any type.
    fn null(&mut self) {
        self.buffer.extend_from_slice(&(-1i32).to_be_bytes());
    }

    /// Writes one ledger entry in the column order of `entry_columns!`.
    pub(crate) fn entry(&mut self, entry: &ledger_entry::Model) -> Result<(), sqlx::Error> {
        self.row(23);
        self.int8(entry.sequence);
        self.bytes(entry.event_id.as_bytes())?;
        self.int8(entry.stream_sequence);
        self.bytes(entry.subject.as_bytes())?;
        self.bytes(entry.source_service.as_bytes())?;
        self.bytes(entry.entity_type.as_bytes())?;
        self.bytes(entry.entity_id.as_bytes())?;
        self.int8(entry.entity_version);
        self.bytes(entry.action.as_bytes())?;
        self.bytes(entry.actor_id.as_bytes())?;
        self.bytes(entry.actor_name.as_bytes())?;
        self.bytes(entry.actor_department.as_bytes())?;
        self.bytes(entry.actor_role.as_bytes())?;
        self.int4(entry.confidentiality);
        self.int8(entry.occurred_at);
        self.int8(entry.received_at);
        self.bytes(entry.correlation_id.as_bytes())?;
        self.bytes(entry.causation_id.as_bytes())?;
        self.bytes(entry.payload_type.as_bytes())?;
        self.bytes(entry.payload_sha256.as_bytes())?;
        match &entry.payload {
            Some(payload) => self.bytes(payload)?,
            None => self.null(),
        }
        self.bytes(entry.previous_hash.as_bytes())?;
        self.bytes(entry.entry_hash.as_bytes())
    }
}

/// Inserts restored entries, their stored Merkle hashes and the new chain head into a SQLite
/// file in one transaction, through a `rusqlite` connection of its own. Each statement is
/// prepared once and executed per row with values borrowed from the entries, which avoids
/// sqlx's copies of every bound value.
fn insert_into_file(
    path: &std::path::Path,
    entries: &[ledger_entry::Model],
    stored_hashes: &[(u64, Hash)],
) -> rusqlite::Result<()> {
    let Some(last) = entries.last() else {
        return Ok(());
    };
    let mut connection = rusqlite::Connection::open(path)?;
    connection.busy_timeout(std::time::Duration::from_secs(10))?;
    connection.pragma_update(None, "cache_size", -i64::from(SQLITE_CACHE_KIB))?;
    let transaction =
        connection.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    insert_rows(&transaction, entries, stored_hashes)?;
    transaction.execute(
        "UPDATE chain_head SET sequence = ?1, entry_hash = ?2 WHERE id = 1",
        (last.sequence, &last.entry_hash),
    )?;
    transaction.commit()
}

/// Inserts ledger entries and the stored Merkle hashes that they add through `connection`,
/// in its open transaction, one row per statement execution with values borrowed from the
/// entries. The statements are prepared once per connection.
pub(crate) fn insert_rows(
    connection: &rusqlite::Connection,
    entries: &[ledger_entry::Model],
    stored_hashes: &[(u64, Hash)],
) -> rusqlite::Result<()> {
    let mut insert_entry = connection.prepare_cached(concat!(
        "INSERT INTO ledger_entries (",
        crate::verify::entry_columns!(),
        ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, \
         ?17, ?18, ?19, ?20, ?21, ?22, ?23)"
    ))?;
    for entry in entries {
        insert_entry.execute(rusqlite::params![
            entry.sequence,
            entry.event_id,
            entry.stream_sequence,
            entry.subject,
            entry.source_service,
            entry.entity_type,
            entry.entity_id,
            entry.entity_version,
            entry.action,
            entry.actor_id,
            entry.actor_name,
            entry.actor_department,
            entry.actor_role,
            entry.confidentiality,
            entry.occurred_at,
            entry.received_at,
            entry.correlation_id,
            entry.causation_id,
            entry.payload_type,
            entry.payload_sha256,
            entry.payload,
            entry.previous_hash,
            entry.entry_hash,
        ])?;
    }
    let mut insert_hash = connection
        .prepare_cached("INSERT INTO merkle_hashes (stored_index, hash) VALUES (?1, ?2)")?;
    for (index, hash) in stored_hashes {
        insert_hash.execute((*index as i64, hash.0.as_slice()))?;
    }
    Ok(())
}
