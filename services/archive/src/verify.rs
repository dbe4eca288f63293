//! Verification of a ledger range: sequence continuity, the link to the previous entry, the
//! recomputed entry hash, and the payload digest wherever the payload is still stored.

use sea_orm::{
    ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
};

use crate::entity::{chain_head, ledger_entry};
use crate::ledger::{GENESIS_HASH, entry_hash};

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
        for entry in page {
            if let Some(reason) = check_entry(&entry, next, &expected_previous) {
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
    if let Some(payload) = &entry.payload
        && trace_runtime::blob::sha256_hex(payload) != entry.payload_sha256
    {
        return Some("payload does not match its committed digest".to_owned());
    }
    None
}

async fn previous_hash(db: &DatabaseConnection, from: i64) -> Result<String, DbErr> {
    if from <= 1 {
        return Ok(GENESIS_HASH.to_owned());
    }
    let previous = ledger_entry::Entity::find_by_id(from - 1).one(db).await?;
    Ok(previous.map_or_else(|| GENESIS_HASH.to_owned(), |entry| entry.entry_hash))
}
