//! Verification of a ledger range: sequence continuity, the link to the previous entry, the
//! recomputed entry hash, the payload digest wherever the payload is still stored, and the
//! stored Merkle leaf.
//!
//! The range is split into one chunk per core, at most four, checked at the same time.
//! A chunk starts from the stored entry hash before it, which the chunk before it checks as
//! its last entry, so the chunks together check every link. Rows are read without the ORM:
//! on SQLite through a read-only `rusqlite` connection to the same file on a blocking thread,
//! where the columns are hashed in SQLite's row buffer. On PostgreSQL they come as binary
//! `COPY` data and are hashed in the page's buffer. No value is copied into a model first.

use std::path::PathBuf;

use sea_orm::sqlx;
use sea_orm::{DatabaseBackend, DatabaseConnection, DbErr, EntityTrait};
use tlog_tiles::tlog;

use crate::entity::{chain_head, ledger_entry};
use crate::ledger::{EntryColumns, GENESIS_HASH, entry_hash_bytes, is_hex_of, payload_matches};

/// Entries read per query while verifying. Each page is its own read transaction on SQLite,
/// so a long verification does not keep the write-ahead log from being checkpointed.
const PAGE: i64 = 5_000;

/// A range shorter than this is checked in one chunk.
const MIN_CHUNK: i64 = 10_000;

/// Chunks checked at the same time at most, whatever the core count, so that verification on
/// PostgreSQL leaves most of the pool's eight connections to the consumer.
const MAX_CHUNKS: i64 = 4;

/// Columns of `ledger_entries` in the order [`EntryColumns`] reads them, as a macro so that
/// the queries stay literal strings.
macro_rules! entry_columns {
    () => {
        "sequence, event_id, stream_sequence, subject, source_service, entity_type, entity_id, \
         entity_version, action, actor_id, actor_name, actor_department, actor_role, \
         confidentiality, occurred_at, received_at, correlation_id, causation_id, payload_type, \
         payload_sha256, payload, previous_hash, entry_hash"
    };
}
pub(crate) use entry_columns;

/// Query for the entries of a sequence range on SQLite, in sequence order.
pub(crate) const SQLITE_ENTRIES: &str = concat!(
    "SELECT ",
    entry_columns!(),
    " FROM ledger_entries WHERE sequence >= ?1 AND sequence <= ?2 ORDER BY sequence"
);

/// Result of verifying a range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verification {
    pub from_sequence: i64,
    pub to_sequence: i64,
    pub checked: u64,
    /// First sequence that failed, with the reason.
    pub broken: Option<(i64, String)>,
    /// Entry hash of the last entry checked, or the hash before the range when none was.
    pub head_hash: String,
}

impl Verification {
    pub fn ok(&self) -> bool {
        self.broken.is_none()
    }
}

/// Verifies entries `from..=to`; `to = 0` means the current head.
pub async fn verify_range(
    db: &DatabaseConnection,
    from: i64,
    to: i64,
) -> Result<Verification, DbErr> {
    let cores = std::thread::available_parallelism().map_or(1, |cores| cores.get() as i64);
    verify_in_chunks(db, from, to, cores.min(MAX_CHUNKS), MIN_CHUNK).await
}

/// [`verify_range`] split into at most `max_chunks` chunks of at least `min_chunk` entries
/// each, checked at the same time. `verify_range` uses one chunk per core, at most four, and
/// at least 10,000 entries per chunk. Tests and benchmarks choose their own split.
pub async fn verify_in_chunks(
    db: &DatabaseConnection,
    from: i64,
    to: i64,
    max_chunks: i64,
    min_chunk: i64,
) -> Result<Verification, DbErr> {
    let from = from.max(1);
    let head = chain_head::Entity::find_by_id(1)
        .one(db)
        .await?
        .map_or(0, |head| head.sequence);
    let to = if to == 0 { head } else { to.min(head) };
    let reader = Reader::for_connection(db)?;
    let before_range = stored_hash_before(db, from).await?;

    let mut tasks = Vec::new();
    for (start, end) in chunks(from, to, max_chunks, min_chunk) {
        let previous = if start == from {
            before_range.clone()
        } else {
            stored_hash_before(db, start).await?
        };
        let chunk = Chunk {
            start,
            end,
            range_end: to,
            previous,
        };
        let reader = reader.clone();
        tasks.push(tokio::spawn(reader.verify(chunk)));
    }

    let mut result = Verification {
        from_sequence: from,
        to_sequence: to,
        checked: 0,
        broken: None,
        head_hash: before_range,
    };
    let mut tasks = tasks.into_iter();
    while let Some(task) = tasks.next() {
        let outcome = task
            .await
            .map_err(|error| DbErr::Custom(format!("verification task failed: {error}")))
            .and_then(|outcome| outcome);
        let outcome = match outcome {
            Ok(outcome) => outcome,
            Err(error) => {
                tasks.for_each(|task| task.abort());
                return Err(error);
            }
        };
        result.checked += outcome.checked;
        result.head_hash = outcome.head_hash;
        if outcome.broken.is_some() {
            result.broken = outcome.broken;
            // The first failure in sequence order is the result, so what later chunks
            // find, errors included, no longer matters.
            tasks.for_each(|task| task.abort());
            break;
        }
    }
    Ok(result)
}

/// Splits `from..=to` into at most `max_chunks` nearly equal chunks, none shorter than
/// `min_chunk` unless the range is.
fn chunks(from: i64, to: i64, max_chunks: i64, min_chunk: i64) -> Vec<(i64, i64)> {
    if from > to {
        return Vec::new();
    }
    let length = to - from + 1;
    let count = (length / min_chunk.max(1)).clamp(1, max_chunks.max(1));
    let size = (length + count - 1) / count;
    (0..count)
        .map(|index| from + index * size)
        .filter(|start| *start <= to)
        .map(|start| (start, (start + size - 1).min(to)))
        .collect()
}

/// One chunk of the range and the hash its first entry must link to.
#[derive(Debug, Clone)]
struct Chunk {
    start: i64,
    end: i64,
    /// End of the whole range, for naming the next stored entry after a gap.
    range_end: i64,
    previous: String,
}

/// Result of one chunk: the entries verified before its first failure, and that failure.
#[derive(Debug)]
struct ChunkOutcome {
    checked: u64,
    broken: Option<(i64, String)>,
    head_hash: String,
}

/// The running check of one chunk, fed one entry at a time in sequence order.
struct ChainCheck {
    next: i64,
    expected_previous: String,
    checked: u64,
}

impl ChainCheck {
    fn new(chunk: &Chunk) -> Self {
        Self {
            next: chunk.start,
            expected_previous: chunk.previous.clone(),
            checked: 0,
        }
    }

    /// Checks the next entry and its stored Merkle leaf, and returns the reason it fails, if any.
    fn check(&mut self, entry: &EntryColumns<'_>, leaf: Leaf) -> Option<String> {
        if entry.sequence != self.next {
            return Some(format!(
                "entry is missing; the next stored sequence is {}",
                entry.sequence
            ));
        }
        if entry.previous_hash != self.expected_previous {
            return Some("previous hash does not match the entry before it".to_owned());
        }
        let hash = entry_hash_bytes(entry);
        if !is_hex_of(&hash, entry.entry_hash) {
            return Some("entry hash does not match the entry's contents".to_owned());
        }
        if !payload_matches(entry) {
            return Some("payload does not match its committed digest".to_owned());
        }
        match leaf {
            Leaf::Missing => return Some("Merkle leaf hash is missing".to_owned()),
            Leaf::Stored(stored) if stored != tlog::record_hash(&hash).0 => {
                return Some("Merkle leaf hash does not match the entry hash".to_owned());
            }
            Leaf::Malformed => {
                return Some("Merkle leaf hash does not match the entry hash".to_owned());
            }
            Leaf::Stored(_) => {}
        }
        self.expected_previous.clear();
        self.expected_previous.push_str(entry.entry_hash);
        self.checked += 1;
        self.next += 1;
        None
    }

    /// Checks the next row, decoded or not, with its leaf from `leaves`, and returns the
    /// reason it fails, if any. A row whose columns cannot be decoded fails at its sequence.
    fn check_row<I, E>(
        &mut self,
        entry: Result<EntryColumns<'_>, impl std::fmt::Display>,
        leaves: &mut LeafCursor<I>,
    ) -> Result<Option<String>, E>
    where
        I: Iterator<Item = Result<(i64, Leaf), E>>,
    {
        match entry {
            Ok(entry) => {
                let leaf = leaves.leaf_of(entry.sequence)?;
                Ok(self.check(&entry, leaf))
            }
            Err(error) => Ok(Some(format!("entry cannot be read: {error}"))),
        }
    }

    fn finish(self, broken: Option<(i64, String)>) -> ChunkOutcome {
        ChunkOutcome {
            checked: self.checked,
            broken,
            head_hash: self.expected_previous,
        }
    }

    fn broken_at_next(self, reason: String) -> ChunkOutcome {
        let sequence = self.next;
        self.finish(Some((sequence, reason)))
    }
}

/// The stored Merkle leaf of an entry, as found by [`LeafCursor`].
#[derive(Debug, Clone, Copy)]
enum Leaf {
    Stored([u8; 32]),
    /// A stored value that is not 32 bytes long.
    Malformed,
    Missing,
}

/// Cursor over the stored Merkle hashes of a page in index order. A leaf's stored index
/// grows with its sequence, so one pass over the page's index range finds every leaf.
struct LeafCursor<I> {
    rows: I,
    current: Option<(i64, Leaf)>,
}

impl<I, E> LeafCursor<I>
where
    I: Iterator<Item = Result<(i64, Leaf), E>>,
{
    fn new(rows: I) -> Self {
        Self {
            rows,
            current: None,
        }
    }

    fn leaf_of(&mut self, sequence: i64) -> Result<Leaf, E> {
        let expected = leaf_index(sequence);
        loop {
            match self.current {
                Some((index, leaf)) if index == expected => return Ok(leaf),
                Some((index, _)) if index > expected => return Ok(Leaf::Missing),
                _ => match self.rows.next() {
                    Some(row) => self.current = Some(row?),
                    None => return Ok(Leaf::Missing),
                },
            }
        }
    }
}

fn leaf_index(sequence: i64) -> i64 {
    tlog::stored_hash_index(0, sequence.max(1) as u64 - 1) as i64
}

fn leaf_of_bytes(hash: &[u8]) -> Leaf {
    <[u8; 32]>::try_from(hash).map_or(Leaf::Malformed, Leaf::Stored)
}

/// Source of a chunk's rows.
#[derive(Clone)]
enum Reader {
    SqliteFile(PathBuf),
    Postgres(sqlx::PgPool),
}

impl Reader {
    fn for_connection(db: &DatabaseConnection) -> Result<Self, DbErr> {
        match db.get_database_backend() {
            DatabaseBackend::Postgres => {
                Ok(Self::Postgres(db.get_postgres_connection_pool().clone()))
            }
            DatabaseBackend::Sqlite => sqlite_file(db).map(Self::SqliteFile).ok_or_else(|| {
                DbErr::Custom(
                    "verification reads the SQLite file directly, so an in-memory ledger \
                     cannot be verified"
                        .to_owned(),
                )
            }),
            other => Err(DbErr::Custom(format!(
                "verification does not support the {other:?} backend"
            ))),
        }
    }

    async fn verify(self, chunk: Chunk) -> Result<ChunkOutcome, DbErr> {
        match self {
            Self::SqliteFile(path) => tokio::task::spawn_blocking(move || {
                verify_sqlite(&path, &chunk).map_err(|error| {
                    DbErr::Custom(format!(
                        "failed to read {} for verification: {error}",
                        path.display()
                    ))
                })
            })
            .await
            .map_err(|error| DbErr::Custom(format!("verification task failed: {error}")))?,
            Self::Postgres(pool) => verify_postgres(&pool, &chunk).await.map_err(|error| {
                DbErr::Custom(format!(
                    "failed to read the ledger for verification: {error}"
                ))
            }),
        }
    }
}

/// Returns the file of a SQLite connection, or `None` for another backend or an in-memory
/// database.
pub(crate) fn sqlite_file(db: &DatabaseConnection) -> Option<PathBuf> {
    if db.get_database_backend() != DatabaseBackend::Sqlite {
        return None;
    }
    let options = db.get_sqlite_connection_pool().connect_options();
    let path = options.get_filename().to_path_buf();
    path.is_file().then_some(path)
}

/// Opens a second, read-only connection to the archive's SQLite file. In WAL mode it reads
/// committed rows while the archive goes on appending.
pub(crate) fn open_read_only(path: &std::path::Path) -> rusqlite::Result<rusqlite::Connection> {
    use rusqlite::OpenFlags;
    let connection = rusqlite::Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    connection.busy_timeout(std::time::Duration::from_secs(10))?;
    Ok(connection)
}

fn verify_sqlite(path: &std::path::Path, chunk: &Chunk) -> rusqlite::Result<ChunkOutcome> {
    let connection = open_read_only(path)?;
    let mut entries = connection.prepare(SQLITE_ENTRIES)?;
    let mut leaves = connection.prepare(
        "SELECT stored_index, hash FROM merkle_hashes \
         WHERE stored_index >= ?1 AND stored_index <= ?2 ORDER BY stored_index",
    )?;
    let mut next_stored = connection.prepare(
        "SELECT MIN(sequence) FROM ledger_entries WHERE sequence > ?1 AND sequence <= ?2",
    )?;

    let mut check = ChainCheck::new(chunk);
    let mut page_start = chunk.start;
    while page_start <= chunk.end {
        let page_end = (page_start + PAGE - 1).min(chunk.end);
        let leaf_rows =
            leaves.query_map((leaf_index(page_start), leaf_index(page_end)), |row| {
                Ok((
                    row.get::<_, i64>(0)?,
                    leaf_of_bytes(row.get_ref(1)?.as_bytes()?),
                ))
            })?;
        let mut cursor = LeafCursor::new(leaf_rows);
        let mut rows = entries.query((page_start, page_end))?;
        while let Some(row) = rows.next()? {
            if let Some(reason) = check.check_row(sqlite_columns(row), &mut cursor)? {
                return Ok(check.broken_at_next(reason));
            }
        }
        if check.next <= page_end {
            let stored: Option<i64> =
                next_stored.query_row((check.next, chunk.range_end), |row| row.get(0))?;
            return Ok(check.broken_at_next(missing_reason(stored)));
        }
        page_start = page_end + 1;
    }
    Ok(check.finish(None))
}

/// Reads the columns of a row of [`SQLITE_ENTRIES`] where SQLite keeps them, without copying.
pub(crate) fn sqlite_columns<'r>(row: &'r rusqlite::Row<'_>) -> rusqlite::Result<EntryColumns<'r>> {
    // SQLite lets any column store any type, so a text column read as bytes also accepts an
    // altered value stored as a blob, and the checks then report it at its sequence.
    let text = |index: usize| -> rusqlite::Result<&'r str> {
        let bytes = row.get_ref(index)?.as_bytes()?;
        std::str::from_utf8(bytes).map_err(|error| rusqlite::Error::Utf8Error(index, error))
    };
    Ok(EntryColumns {
        sequence: row.get(0)?,
        event_id: text(1)?,
        stream_sequence: row.get(2)?,
        subject: text(3)?,
        source_service: text(4)?,
        entity_type: text(5)?,
        entity_id: text(6)?,
        entity_version: row.get(7)?,
        action: text(8)?,
        actor_id: text(9)?,
        actor_name: text(10)?,
        actor_department: text(11)?,
        actor_role: text(12)?,
        confidentiality: row.get(13)?,
        occurred_at: row.get(14)?,
        received_at: row.get(15)?,
        correlation_id: text(16)?,
        causation_id: text(17)?,
        payload_type: text(18)?,
        payload_sha256: text(19)?,
        payload: row.get_ref(20)?.as_bytes_or_null()?,
        previous_hash: text(21)?,
        entry_hash: text(22)?,
    })
}

async fn verify_postgres(pool: &sqlx::PgPool, chunk: &Chunk) -> Result<ChunkOutcome, sqlx::Error> {
    let mut check = ChainCheck::new(chunk);
    let mut page_start = chunk.start;
    let mut data = Vec::new();
    while page_start <= chunk.end {
        let page_end = (page_start + PAGE - 1).min(chunk.end);
        let leaf_rows =
            crate::copy_out::stored_hashes(pool, leaf_index(page_start), leaf_index(page_end))
                .await?;
        crate::copy_out::copy_entries(pool, page_start, page_end, &mut data).await?;
        let mut cursor = LeafCursor::new(
            leaf_rows
                .iter()
                .map(|(index, hash)| Ok::<_, sqlx::Error>((*index, leaf_of_bytes(hash)))),
        );
        let mut rows = crate::copy_out::EntryRows::new(&data)?;
        while let Some(entry) = rows.next_entry()? {
            if let Some(reason) = check.check_row(entry, &mut cursor)? {
                return Ok(check.broken_at_next(reason));
            }
        }
        if check.next <= page_end {
            let stored: Option<i64> = sqlx::query_scalar(
                "SELECT MIN(sequence) FROM ledger_entries WHERE sequence > $1 AND sequence <= $2",
            )
            .bind(check.next)
            .bind(chunk.range_end)
            .fetch_one(pool)
            .await?;
            return Ok(check.broken_at_next(missing_reason(stored)));
        }
        page_start = page_end + 1;
    }
    Ok(check.finish(None))
}

/// Returns the reason for a missing entry, naming the next stored one when there is one.
fn missing_reason(next_stored: Option<i64>) -> String {
    match next_stored {
        Some(sequence) => format!("entry is missing; the next stored sequence is {sequence}"),
        None => "entry is missing".to_owned(),
    }
}

/// Reads the stored entry hash of the entry before `sequence`, or returns the genesis hash
/// for the first.
async fn stored_hash_before(db: &DatabaseConnection, sequence: i64) -> Result<String, DbErr> {
    if sequence <= 1 {
        return Ok(GENESIS_HASH.to_owned());
    }
    let previous = ledger_entry::Entity::find_by_id(sequence - 1)
        .one(db)
        .await?;
    Ok(previous.map_or_else(|| GENESIS_HASH.to_owned(), |entry| entry.entry_hash))
}
