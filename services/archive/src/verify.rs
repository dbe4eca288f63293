//! Verification of a ledger range: sequence continuity, the link to the previous entry, the
//! recomputed entry hash, and the payload digest wherever the payload is still stored.

use std::collections::HashMap;

use sea_orm::{
    ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
};
use tokio::task::JoinHandle;

use tlog_tiles::tlog;

use crate::entity::{chain_head, ledger_entry, merkle_hash};
use crate::ledger::{GENESIS_HASH, entry_hash_bytes, hex_matches};

/// Entries read per query while verifying. At most two pages are in memory, the one being
/// checked and the next one being read, and a page of 361-byte envelopes is an estimated 6 MB.
const PAGE: u64 = 5_000;

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
///
/// A spawned task reads the next page while the current one is hashed, so that the database
/// read can overlap the hashing on a second core.
pub async fn verify_range(
    db: &DatabaseConnection,
    from: i64,
    to: i64,
) -> Result<Verification, DbErr> {
    let from = from.max(1);
    let head = chain_head::Entity::find_by_id(1)
        .one(db)
        .await?
        .map_or(0, |head| head.sequence);
    let to = if to == 0 { head } else { to.min(head) };
    let mut expected_previous = previous_hash(db, from).await?;
    let mut result = Verification {
        from_sequence: from,
        to_sequence: to,
        checked: 0,
        broken: None,
        head_hash: expected_previous.clone(),
    };
    let mut next = from;
    let mut pending = (next <= to).then(|| PageRead::spawn(db, next, to));
    while let Some(read) = pending.take() {
        let page = read.finish().await?;
        let Some(last) = page.entries.last().map(|entry| entry.sequence) else {
            result.broken = Some((next, "entry is missing".to_owned()));
            return Ok(result);
        };
        // A page that verifies ends at `last`, so the next one starts right after it. When
        // this page fails, dropping `pending` cancels the read.
        if last < to {
            pending = Some(PageRead::spawn(db, last + 1, to));
        }
        for entry in page.entries {
            let reason = check_entry(&entry, next, &expected_previous)
                .or_else(|| check_leaf(&entry, &page.leaves));
            if let Some(reason) = reason {
                result.broken = Some((next, reason));
                result.head_hash = expected_previous;
                return Ok(result);
            }
            expected_previous = entry.entry_hash;
            result.checked += 1;
            next += 1;
        }
        result.head_hash = expected_previous.clone();
    }
    Ok(result)
}

/// Entries of one page with the stored Merkle hashes around their leaves.
struct Page {
    entries: Vec<ledger_entry::Model>,
    /// Stored Merkle hashes by stored-hash index, from the first entry's leaf to the last's.
    leaves: HashMap<i64, Vec<u8>>,
}

/// A page being read by a spawned task. Dropping it cancels the read.
struct PageRead(JoinHandle<Result<Page, DbErr>>);

impl PageRead {
    fn spawn(db: &DatabaseConnection, from: i64, to: i64) -> Self {
        let db = db.clone();
        Self(tokio::spawn(async move { read_page(&db, from, to).await }))
    }

    async fn finish(mut self) -> Result<Page, DbErr> {
        (&mut self.0).await.map_err(|error| {
            DbErr::Custom(format!("reading a verification page failed: {error}"))
        })?
    }
}

impl Drop for PageRead {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Reads up to [`PAGE`] entries from `from` on, and the stored Merkle hashes whose indexes lie
/// between the first and the last entry's leaf.
async fn read_page(db: &DatabaseConnection, from: i64, to: i64) -> Result<Page, DbErr> {
    let entries = ledger_entry::Entity::find()
        .filter(ledger_entry::Column::Sequence.gte(from))
        .filter(ledger_entry::Column::Sequence.lte(to))
        .order_by_asc(ledger_entry::Column::Sequence)
        .limit(PAGE)
        .all(db)
        .await?;
    let (Some(first), Some(last)) = (entries.first(), entries.last()) else {
        return Ok(Page {
            entries,
            leaves: HashMap::new(),
        });
    };
    // Leaf indexes grow with the sequence, so one range read replaces a lookup per entry. The
    // range also contains the interior hashes between the leaves, about one per entry.
    let rows = merkle_hash::Entity::find()
        .filter(
            merkle_hash::Column::StoredIndex
                .between(leaf_index(first.sequence), leaf_index(last.sequence)),
        )
        .all(db)
        .await?;
    let leaves = rows
        .into_iter()
        .map(|row| (row.stored_index, row.hash))
        .collect();
    Ok(Page { entries, leaves })
}

/// Stored-hash index of the Merkle leaf of the entry at `sequence` (1-based).
fn leaf_index(sequence: i64) -> i64 {
    tlog::stored_hash_index(0, sequence as u64 - 1) as i64
}

/// Returns why `entry` fails, or `None` when it verifies.
fn check_entry(
    entry: &ledger_entry::Model,
    expected_sequence: i64,
    expected_previous: &str,
) -> Option<String> {
    if entry.sequence != expected_sequence {
        return Some(format!(
            "entry is missing; the next stored sequence is {}",
            entry.sequence
        ));
    }
    if entry.previous_hash != expected_previous {
        return Some("previous hash does not match the entry before it".to_owned());
    }
    if !hex_matches(&entry_hash_bytes(entry), &entry.entry_hash) {
        return Some("entry hash does not match the entry's contents".to_owned());
    }
    if !crate::ledger::payload_matches_digest(entry) {
        return Some("payload does not match its committed digest".to_owned());
    }
    None
}

/// Returns why the entry's Merkle leaf is wrong, or `None` when it matches its entry hash.
fn check_leaf(entry: &ledger_entry::Model, leaves: &HashMap<i64, Vec<u8>>) -> Option<String> {
    match leaves.get(&leaf_index(entry.sequence)) {
        None => Some("Merkle leaf hash is missing".to_owned()),
        Some(stored) if stored.as_slice() != crate::merkle::leaf_hash(&entry.entry_hash).0 => {
            Some("Merkle leaf hash does not match the entry hash".to_owned())
        }
        Some(_) => None,
    }
}

async fn previous_hash(db: &DatabaseConnection, from: i64) -> Result<String, DbErr> {
    if from <= 1 {
        return Ok(GENESIS_HASH.to_owned());
    }
    let previous = ledger_entry::Entity::find_by_id(from - 1).one(db).await?;
    Ok(previous.map_or_else(|| GENESIS_HASH.to_owned(), |entry| entry.entry_hash))
}
