//! Verification of a ledger range: sequence continuity, the link to the previous entry, the
//! recomputed entry hash, and the payload digest wherever the payload is still stored.

use std::collections::HashMap;

use sea_orm::{
    ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
};

use tlog_tiles::tlog;

use crate::entity::{chain_head, ledger_entry, merkle_hash};
use crate::ledger::{GENESIS_HASH, entry_hash};
use crate::merkle;

/// Entries read per query while verifying.
const PAGE: u64 = 2_000;

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
    while next <= to {
        let page = ledger_entry::Entity::find()
            .filter(ledger_entry::Column::Sequence.gte(next))
            .filter(ledger_entry::Column::Sequence.lte(to))
            .order_by_asc(ledger_entry::Column::Sequence)
            .limit(PAGE)
            .all(db)
            .await?;
        if page.is_empty() {
            result.broken = Some((next, "entry is missing".to_owned()));
            return Ok(result);
        }
        let leaves = stored_leaves(db, &page).await?;
        for entry in page {
            let reason = check_entry(&entry, next, &expected_previous)
                .or_else(|| check_leaf(&entry, &leaves));
            if let Some(reason) = reason {
                result.broken = Some((next, reason));
                return Ok(result);
            }
            expected_previous = entry.entry_hash;
            result.head_hash = expected_previous.clone();
            result.checked += 1;
            next += 1;
        }
    }
    Ok(result)
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
    if entry_hash(entry) != entry.entry_hash {
        return Some("entry hash does not match the entry's contents".to_owned());
    }
    if !crate::ledger::payload_matches_digest(entry) {
        return Some("payload does not match its committed digest".to_owned());
    }
    None
}

/// Stored Merkle leaf hashes of a page of entries, by sequence.
async fn stored_leaves(
    db: &DatabaseConnection,
    page: &[ledger_entry::Model],
) -> Result<HashMap<i64, Vec<u8>>, DbErr> {
    let indexes = page
        .iter()
        .map(|entry| tlog::stored_hash_index(0, entry.sequence as u64 - 1) as i64);
    let rows = merkle_hash::Entity::find()
        .filter(merkle_hash::Column::StoredIndex.is_in(indexes))
        .all(db)
        .await?;
    let by_index: HashMap<i64, Vec<u8>> = rows
        .into_iter()
        .map(|row| (row.stored_index, row.hash))
        .collect();
    Ok(page
        .iter()
        .filter_map(|entry| {
            let index = tlog::stored_hash_index(0, entry.sequence as u64 - 1) as i64;
            by_index
                .get(&index)
                .map(|hash| (entry.sequence, hash.clone()))
        })
        .collect())
}

/// Returns why the entry's Merkle leaf is wrong, or `None` when it matches its entry hash.
fn check_leaf(entry: &ledger_entry::Model, leaves: &HashMap<i64, Vec<u8>>) -> Option<String> {
    match leaves.get(&entry.sequence) {
        None => Some("Merkle leaf hash is missing".to_owned()),
        Some(stored) if stored.as_slice() != merkle::leaf_hash(&entry.entry_hash).0 => {
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
