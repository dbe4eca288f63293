//! Ledger pages read from PostgreSQL: entries with `COPY ... TO STDOUT` in the binary
//! format, and the stored Merkle hashes beside them, both read in key order without a sort.
//!
//! Through a query, sqlx checks the type of each of the 23 columns of every row and copies
//! the row into a row value of its own. With binary `COPY`, the rows arrive as one buffer
//! per page, and each column is read where it sits in that buffer (BENCHMARKS.md,
//! "PostgreSQL rows read with binary `COPY`").

use futures::TryStreamExt;
use sea_orm::sqlx::{self, Connection as _, PgConnection, Postgres, pool::PoolConnection};

use crate::ledger::EntryColumns;
use crate::verify::entry_columns;

/// Signature that starts binary `COPY` data.
const SIGNATURE: &[u8] = b"PGCOPY\n\xff\r\n\0";

/// Header flag bit that marks rows carrying an OID.
const WITH_OIDS: u32 = 1 << 16;

/// Header flag bits that a reader must understand or reject: bit 16 and the reserved bits
/// above it.
const CRITICAL_FLAGS: u32 = 0xffff_0000;

/// Columns of each row, as [`entry_columns!`] lists them.
const COLUMNS: usize = 23;

/// Reads the entries of sequences `from..=to` in sequence order into `buffer`, which is
/// cleared first, as binary `COPY` data for [`EntryRows`].
pub(crate) async fn copy_entries(
    pool: &sqlx::PgPool,
    from: i64,
    to: i64,
    buffer: &mut Vec<u8>,
) -> Result<(), sqlx::Error> {
    // `COPY` takes no bound parameters, so the bounds are formatted in as integers.
    let statement = format!(
        concat!(
            "COPY (SELECT ",
            entry_columns!(),
            " FROM ledger_entries WHERE sequence >= {} AND sequence <= {} ORDER BY sequence) \
             TO STDOUT (FORMAT binary)"
        ),
        from, to
    );
    copy_out(pool, &statement, buffer).await
}

/// Runs `statement`, a `COPY ... TO STDOUT`, on a connection of `pool` and reads all of its
/// data into `buffer`, which is cleared first.
///
/// The statement runs in a transaction of its own with sorts disabled, so that the planner
/// reads a range in order from its index. Without table statistics, as right after a bulk
/// load, it chose a bitmap scan and a sort of each page, which spilled to disk and took
/// 29 % of the server's time in a profiled verification (BENCHMARKS.md).
async fn copy_out(
    pool: &sqlx::PgPool,
    statement: &str,
    buffer: &mut Vec<u8>,
) -> Result<(), sqlx::Error> {
    buffer.clear();
    let mut copy = CopyConnection {
        connection: pool.acquire().await?,
        finished: false,
    };
    {
        let connection: &mut PgConnection = &mut copy.connection;
        let mut transaction = connection.begin().await?;
        sqlx::query("SET LOCAL enable_sort = off")
            .execute(&mut *transaction)
            .await?;
        {
            let mut chunks = transaction.copy_out_raw(statement).await?;
            while let Some(chunk) = chunks.try_next().await? {
                buffer.extend_from_slice(&chunk);
            }
        }
        transaction.commit().await?;
    }
    copy.finished = true;
    Ok(())
}

/// Reads the stored Merkle hashes with indexes `first..=last` in index order, with sorts
/// disabled as in [`copy_out`], for the same reason.
pub(crate) async fn stored_hashes(
    pool: &sqlx::PgPool,
    first: i64,
    last: i64,
) -> Result<Vec<(i64, Vec<u8>)>, sqlx::Error> {
    let mut transaction = pool.begin().await?;
    sqlx::query("SET LOCAL enable_sort = off")
        .execute(&mut *transaction)
        .await?;
    let rows = sqlx::query_as(
        "SELECT stored_index, hash FROM merkle_hashes \
         WHERE stored_index >= $1 AND stored_index <= $2 ORDER BY stored_index",
    )
    .bind(first)
    .bind(last)
    .fetch_all(&mut *transaction)
    .await?;
    transaction.commit().await?;
    Ok(rows)
}

/// A pooled connection that runs a `COPY ... TO STDOUT`, closed when it is dropped before
/// the end of the data.
///
/// sqlx 0.9 would otherwise take such a connection back into the pool with the rest of the
/// data and a ready message unread, and the next statement on it would read them as its
/// own reply. Verification drops the reads of its other chunks when one chunk fails, and a
/// failed backup drops its next page, so this happens in normal use.
struct CopyConnection {
    connection: PoolConnection<Postgres>,
    finished: bool,
}

impl Drop for CopyConnection {
    fn drop(&mut self) {
        if !self.finished {
            self.connection.close_on_drop();
        }
    }
}

/// The rows of binary `COPY` data of ledger entries, read in place.
pub(crate) struct EntryRows<'a> {
    rest: &'a [u8],
}

/// The columns of one row, `None` for NULL.
pub(crate) type Fields<'a> = [Option<&'a [u8]>; COLUMNS];

impl<'a> EntryRows<'a> {
    /// Checks the signature and header of `data` and starts at its first row.
    pub(crate) fn new(data: &'a [u8]) -> Result<Self, sqlx::Error> {
        let rest = data
            .strip_prefix(SIGNATURE)
            .ok_or_else(|| malformed("the signature is missing"))?;
        let (flags, rest) = take_u32(rest)?;
        if flags & WITH_OIDS != 0 {
            return Err(malformed("the rows carry OIDs"));
        }
        if flags & CRITICAL_FLAGS != 0 {
            return Err(malformed(&format!(
                "the header sets flags {flags:#010x}, which this reader does not know"
            )));
        }
        let (extension, rest) = take_u32(rest)?;
        let rest = rest
            .get(extension as usize..)
            .ok_or_else(|| malformed("the header extension is cut short"))?;
        Ok(Self { rest })
    }

    /// Returns the next row's columns, or `None` at the end marker.
    pub(crate) fn next_fields(&mut self) -> Result<Option<Fields<'a>>, sqlx::Error> {
        let (count, rest) = take_i16(self.rest)?;
        if count == -1 {
            if !rest.is_empty() {
                return Err(malformed("data follows the end marker"));
            }
            self.rest = rest;
            return Ok(None);
        }
        if count as usize != COLUMNS {
            return Err(malformed(&format!(
                "a row has {count} columns where {COLUMNS} were asked for"
            )));
        }
        let mut fields: Fields<'a> = [None; COLUMNS];
        let mut rest = rest;
        for field in &mut fields {
            let (length, after) = take_i32(rest)?;
            rest = after;
            if length == -1 {
                continue;
            }
            if length < 0 {
                return Err(malformed(&format!("a column has the length {length}")));
            }
            let (value, after) = rest
                .split_at_checked(length as usize)
                .ok_or_else(|| malformed("a column is cut short"))?;
            *field = Some(value);
            rest = after;
        }
        self.rest = rest;
        Ok(Some(fields))
    }

    /// Returns the next entry, or `None` at the end marker. The outer error is data that
    /// cannot be split into rows, and the inner one a row whose columns do not decode.
    pub(crate) fn next_entry(
        &mut self,
    ) -> Result<Option<Result<EntryColumns<'a>, String>>, sqlx::Error> {
        Ok(self.next_fields()?.map(|fields| entry_of(&fields)))
    }
}

/// Decodes the columns of one row in the order of [`entry_columns!`].
fn entry_of<'a>(fields: &Fields<'a>) -> Result<EntryColumns<'a>, String> {
    let int8 = |index: usize| fixed_width::<8>(fields, index).map(i64::from_be_bytes);
    let int4 = |index: usize| fixed_width::<4>(fields, index).map(i32::from_be_bytes);
    let text = |index: usize| -> Result<&'a str, String> {
        std::str::from_utf8(not_null(fields, index)?)
            .map_err(|error| format!("column {index} is not UTF-8: {error}"))
    };
    Ok(EntryColumns {
        sequence: int8(0)?,
        event_id: text(1)?,
        stream_sequence: int8(2)?,
        subject: text(3)?,
        source_service: text(4)?,
        entity_type: text(5)?,
        entity_id: text(6)?,
        entity_version: int8(7)?,
        action: text(8)?,
        actor_id: text(9)?,
        actor_name: text(10)?,
        actor_department: text(11)?,
        actor_role: text(12)?,
        confidentiality: int4(13)?,
        occurred_at: int8(14)?,
        received_at: int8(15)?,
        correlation_id: text(16)?,
        causation_id: text(17)?,
        payload_type: text(18)?,
        payload_sha256: text(19)?,
        payload: fields[20],
        previous_hash: text(21)?,
        entry_hash: text(22)?,
    })
}

/// Returns the bytes of a column of a fixed-width type, such as an integer.
fn fixed_width<const WIDTH: usize>(
    fields: &Fields<'_>,
    index: usize,
) -> Result<[u8; WIDTH], String> {
    let value = not_null(fields, index)?;
    value
        .try_into()
        .map_err(|_| format!("column {index} has {} bytes, not {WIDTH}", value.len()))
}

fn not_null<'a>(fields: &Fields<'a>, index: usize) -> Result<&'a [u8], String> {
    fields[index].ok_or_else(|| format!("column {index} is NULL"))
}

fn malformed(reason: &str) -> sqlx::Error {
    sqlx::Error::Protocol(format!("binary COPY data of ledger entries: {reason}"))
}

fn take_u32(data: &[u8]) -> Result<(u32, &[u8]), sqlx::Error> {
    let (bytes, rest) = data
        .split_first_chunk::<4>()
        .ok_or_else(|| malformed("the data ends inside a header field"))?;
    Ok((u32::from_be_bytes(*bytes), rest))
}

fn take_i32(data: &[u8]) -> Result<(i32, &[u8]), sqlx::Error> {
    let (bytes, rest) = data
        .split_first_chunk::<4>()
        .ok_or_else(|| malformed("the data ends inside a column length"))?;
    Ok((i32::from_be_bytes(*bytes), rest))
}

fn take_i16(data: &[u8]) -> Result<(i16, &[u8]), sqlx::Error> {
    let (bytes, rest) = data
        .split_first_chunk::<2>()
        .ok_or_else(|| malformed("the data ends before the end marker"))?;
    Ok((i16::from_be_bytes(*bytes), rest))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bulk_insert::BinaryCopy;
    use crate::entity::ledger_entry;

    fn entry(sequence: i64, payload: Option<Vec<u8>>) -> ledger_entry::Model {
        ledger_entry::Model {
            sequence,
            event_id: format!("0190f3a4-0000-7000-8000-{sequence:012}"),
            stream_sequence: sequence + 40,
            subject: "trace.document.draft.revised".to_owned(),
            source_service: "document".to_owned(),
            entity_type: "document".to_owned(),
            entity_id: "DOC-2026-0001".to_owned(),
            entity_version: sequence * 3,
            action: "revised".to_owned(),
            actor_id: "zhang.min".to_owned(),
            actor_name: "张敏 \u{202e}reversed".to_owned(),
            actor_department: "行政部".to_owned(),
            actor_role: "clerk".to_owned(),
            confidentiality: -2,
            occurred_at: -1_700_000_000_000_000,
            received_at: i64::MAX,
            correlation_id: String::new(),
            causation_id: "cause".to_owned(),
            payload_type: "trace.document.v1.DraftRevised".to_owned(),
            payload_sha256: "ab".repeat(32),
            payload,
            previous_hash: "00".repeat(32),
            entry_hash: "cd".repeat(32),
        }
    }

    fn copied(entries: &[ledger_entry::Model]) -> Vec<u8> {
        let mut data = BinaryCopy::new();
        for entry in entries {
            data.entry(entry).unwrap();
        }
        data.finish()
    }

    /// Reads every row of `data` and returns the entries' debug forms.
    fn read_all(data: &[u8]) -> Result<Vec<String>, sqlx::Error> {
        let mut rows = EntryRows::new(data)?;
        let mut read = Vec::new();
        while let Some(entry) = rows.next_entry()? {
            read.push(format!("{:?}", entry.unwrap()));
        }
        Ok(read)
    }

    #[test]
    fn rows_read_back_as_written() {
        let entries = [
            entry(1, Some(vec![0, 1, 2, 255])),
            entry(2, None),
            entry(3, Some(Vec::new())),
        ];
        let expected: Vec<String> = entries
            .iter()
            .map(|entry| format!("{:?}", EntryColumns::from(entry)))
            .collect();
        assert_eq!(read_all(&copied(&entries)).unwrap(), expected);
        assert!(read_all(&copied(&[])).unwrap().is_empty());
    }

    #[test]
    fn data_cut_anywhere_is_an_error() {
        let data = copied(&[entry(1, Some(vec![7; 40])), entry(2, None)]);
        for length in 0..data.len() {
            let error = read_all(&data[..length]).unwrap_err().to_string();
            assert!(error.contains("binary COPY data"), "{length}: {error}");
        }
    }

    #[test]
    fn null_in_a_text_column_fails_that_row() {
        let mut data = copied(&[entry(1, None)]);
        // The header is 19 bytes, followed by the field count (2), the sequence (4 + 8)
        // and the event id's length.
        let event_id = 19 + 2 + 12;
        let length = i32::from_be_bytes(data[event_id..event_id + 4].try_into().unwrap());
        data.splice(
            event_id..event_id + 4 + length as usize,
            (-1i32).to_be_bytes(),
        );
        let mut rows = EntryRows::new(&data).unwrap();
        let error = rows.next_entry().unwrap().unwrap().unwrap_err();
        assert_eq!(error, "column 1 is NULL");
        assert!(rows.next_entry().unwrap().is_none());
    }

    #[test]
    fn wrong_column_count_or_oids_are_errors() {
        let mut data = copied(&[entry(1, None)]);
        data[19..21].copy_from_slice(&22i16.to_be_bytes());
        let error = read_all(&data).unwrap_err().to_string();
        assert!(error.contains("a row has 22 columns where 23"), "{error}");

        let mut data = copied(&[entry(1, None)]);
        data[11..15].copy_from_slice(&WITH_OIDS.to_be_bytes());
        let error = read_all(&data).unwrap_err().to_string();
        assert!(error.contains("the rows carry OIDs"), "{error}");

        let mut data = copied(&[entry(1, None)]);
        data[11..15].copy_from_slice(&(1u32 << 20).to_be_bytes());
        let error = read_all(&data).unwrap_err().to_string();
        assert!(error.contains("flags 0x00100000"), "{error}");
    }

    #[test]
    fn wrong_integer_width_fails_that_row() {
        let mut data = copied(&[entry(1, None)]);
        // The sequence column, right after the header and the field count, becomes four
        // bytes wide.
        data.splice(19 + 2..19 + 2 + 12, [0, 0, 0, 4, 0, 0, 0, 9]);
        let mut rows = EntryRows::new(&data).unwrap();
        let error = rows.next_entry().unwrap().unwrap().unwrap_err();
        assert_eq!(error, "column 0 has 4 bytes, not 8");
    }

    #[test]
    fn negative_lengths_and_trailing_data_are_errors() {
        let mut data = copied(&[entry(1, None)]);
        let event_id = 19 + 2 + 12;
        data[event_id..event_id + 4].copy_from_slice(&(-2i32).to_be_bytes());
        let error = read_all(&data).unwrap_err().to_string();
        assert!(error.contains("a column has the length -2"), "{error}");

        let mut data = copied(&[entry(1, None)]);
        data.push(0);
        let error = read_all(&data).unwrap_err().to_string();
        assert!(error.contains("data follows the end marker"), "{error}");
    }

    /// A connection of a `COPY` cut short must not go back to the pool with the rest of
    /// the data unread: the next statement on it would read that data as its reply.
    #[tokio::test]
    async fn copy_cut_short_leaves_the_pool_usable() {
        let Ok(url) = std::env::var("TRACE_TEST_DATABASE_URL") else {
            eprintln!("TRACE_TEST_DATABASE_URL is not set; skipping");
            return;
        };
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(1)
            .connect(&url)
            .await
            .unwrap();
        // About 150 MB of rows, far more than arrive in the first 30 milliseconds.
        let long = "COPY (SELECT g, repeat('x', 20) FROM generate_series(1, 4000000) g) \
                    TO STDOUT (FORMAT binary)";
        for _ in 0..3 {
            let mut buffer = Vec::new();
            let cut = tokio::time::timeout(
                std::time::Duration::from_millis(30),
                copy_out(&pool, long, &mut buffer),
            )
            .await;
            assert!(cut.is_err(), "the copy finished within 30 ms");

            let selected: i64 = sqlx::query_scalar("SELECT 7::int8")
                .fetch_one(&pool)
                .await
                .unwrap();
            assert_eq!(selected, 7);
            copy_out(
                &pool,
                "COPY (SELECT g FROM generate_series(1, 3) g) TO STDOUT (FORMAT binary)",
                &mut buffer,
            )
            .await
            .unwrap();
            // Header, three rows of one int4 field (2 + 4 + 4 bytes each), end marker.
            assert_eq!(buffer.len(), 19 + 3 * 10 + 2);
            assert_eq!(
                &buffer[buffer.len() - 6..buffer.len() - 2],
                &3i32.to_be_bytes()
            );
        }
    }
}
