//! The RFC 6962 Merkle tree over the ledger, kept beside the hash chain (leaf hash
//! `SHA-256(0x00 || data)`, node hash `SHA-256(0x01 || left || right)`). The leaf data of
//! entry `n` (0-based, sequence `n + 1`) is the 32 raw bytes of its entry hash, which already
//! commits to every column and to the payload digest.
//!
//! Hashes use the permanent stored-hash layout of Go's `tlog` package, implemented by the
//! `tlog_tiles` crate: appending leaf `n` writes the leaf hash and the roots of the subtrees it
//! completes, and never changes a stored hash afterwards. Proofs and roots for any tree size
//! are computed from these stored hashes.

use std::cell::RefCell;
use std::collections::HashMap;

use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter};
use tlog_tiles::tlog::{self, HASH_SIZE, Hash, HashReader};

use crate::entity::merkle_hash;

/// A Merkle operation that could not complete.
#[derive(Debug, thiserror::Error)]
pub enum MerkleError {
    #[error("database error: {0}")]
    Database(#[from] DbErr),
    #[error("stored Merkle hash {0} is missing")]
    MissingHash(u64),
    #[error("stored Merkle hash {0} is not 32 bytes")]
    MalformedHash(u64),
    #[error("{0}")]
    Tree(#[from] tlog::Error),
}

/// Reads hashes from a map and remembers the indexes it lacked, so that the caller can fetch
/// them from the database and run the synchronous `tlog` computation again.
pub struct MapReader<'a> {
    hashes: &'a HashMap<u64, Hash>,
    missing: RefCell<Vec<u64>>,
}

/// Reader over hashes held in memory, for offline verification.
pub type MemoryReader<'a> = MapReader<'a>;

impl<'a> MapReader<'a> {
    /// Reads from `hashes`.
    pub fn new(hashes: &'a HashMap<u64, Hash>) -> Self {
        Self {
            hashes,
            missing: RefCell::new(Vec::new()),
        }
    }
}

impl HashReader for MapReader<'_> {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, tlog::Error> {
        let mut found = Vec::with_capacity(indexes.len());
        for index in indexes {
            match self.hashes.get(index) {
                Some(hash) => found.push(*hash),
                None => self.missing.borrow_mut().push(*index),
            }
        }
        if self.missing.borrow().is_empty() {
            Ok(found)
        } else {
            Err(tlog::Error::IndexesNotInTree)
        }
    }
}

/// Runs `compute` over stored hashes, loading from `db` into `cache` the hashes it requests,
/// until it succeeds or fails for another reason.
pub async fn with_hashes<C, T>(
    db: &C,
    cache: &mut HashMap<u64, Hash>,
    compute: impl Fn(&MapReader<'_>) -> Result<T, tlog::Error>,
) -> Result<T, MerkleError>
where
    C: ConnectionTrait,
{
    loop {
        let reader = MapReader {
            hashes: cache,
            missing: RefCell::new(Vec::new()),
        };
        let result = compute(&reader);
        let missing = reader.missing.into_inner();
        match result {
            Ok(value) => return Ok(value),
            Err(tlog::Error::IndexesNotInTree) if !missing.is_empty() => {
                load(db, &missing, cache).await?;
            }
            Err(error) => return Err(error.into()),
        }
    }
}

/// Loads stored hashes by index into `cache`; every index must exist.
async fn load<C: ConnectionTrait>(
    db: &C,
    indexes: &[u64],
    cache: &mut HashMap<u64, Hash>,
) -> Result<(), MerkleError> {
    for chunk in indexes.chunks(500) {
        let rows = merkle_hash::Entity::find()
            .filter(merkle_hash::Column::StoredIndex.is_in(chunk.iter().map(|i| *i as i64)))
            .all(db)
            .await?;
        for row in rows {
            cache_row(cache, row.stored_index, row.hash)?;
        }
    }
    check_loaded(indexes, cache)
}

/// Puts one stored hash row, its index and its bytes, into `cache`.
pub(crate) fn cache_row(
    cache: &mut HashMap<u64, Hash>,
    stored_index: i64,
    hash: Vec<u8>,
) -> Result<(), MerkleError> {
    let index = stored_index as u64;
    let bytes: [u8; HASH_SIZE] = hash
        .try_into()
        .map_err(|_| MerkleError::MalformedHash(index))?;
    cache.insert(index, Hash(bytes));
    Ok(())
}

/// Fails with the first of `indexes` that is not in `cache`.
pub(crate) fn check_loaded(indexes: &[u64], cache: &HashMap<u64, Hash>) -> Result<(), MerkleError> {
    match indexes.iter().find(|index| !cache.contains_key(index)) {
        Some(index) => Err(MerkleError::MissingHash(*index)),
        None => Ok(()),
    }
}

/// Leaf hash of an entry: RFC 6962 record hash of its raw entry hash bytes.
pub fn leaf_hash(entry_hash_hex: &str) -> Hash {
    let bytes = hex::decode(entry_hash_hex).unwrap_or_default();
    tlog::record_hash(&bytes)
}

/// Computes the stored hashes that appending leaf `index` (0-based) adds, records them in
/// `cache`, and returns them with their stored indexes, for the caller to insert in its
/// transaction. `load` reads the stored hashes that the cache lacks. It must put every index
/// it is given into the cache, or fail.
pub fn append_leaf_blocking(
    cache: &mut HashMap<u64, Hash>,
    index: u64,
    leaf: Hash,
    mut load: impl FnMut(&[u64], &mut HashMap<u64, Hash>) -> Result<(), MerkleError>,
) -> Result<Vec<(u64, Hash)>, MerkleError> {
    loop {
        match try_append_leaf(cache, index, leaf)? {
            LeafAttempt::Added(rows) => return Ok(rows),
            LeafAttempt::Missing(missing) => load(&missing, cache)?,
        }
    }
}

/// Result of one try at appending a leaf from cached hashes.
pub enum LeafAttempt {
    /// The stored hashes that the leaf added, with their stored indexes.
    Added(Vec<(u64, Hash)>),
    /// Stored indexes that the cache lacks, for the caller to load before it tries again.
    Missing(Vec<u64>),
}

/// Tries [`append_leaf_blocking`] with the hashes in `cache` alone.
pub fn try_append_leaf(
    cache: &mut HashMap<u64, Hash>,
    index: u64,
    leaf: Hash,
) -> Result<LeafAttempt, MerkleError> {
    let reader = MapReader::new(cache);
    let result = tlog::stored_hashes_for_record_hash(index, leaf, &reader);
    let missing = reader.missing.into_inner();
    match result {
        Ok(hashes) => Ok(LeafAttempt::Added(record_added(cache, index, hashes))),
        Err(tlog::Error::IndexesNotInTree) if !missing.is_empty() => {
            Ok(LeafAttempt::Missing(missing))
        }
        Err(error) => Err(error.into()),
    }
}

/// Records in `cache` the stored hashes that appending leaf `index` added, and returns them
/// with their stored indexes.
fn record_added(cache: &mut HashMap<u64, Hash>, index: u64, hashes: Vec<Hash>) -> Vec<(u64, Hash)> {
    let first = tlog::stored_hash_index(0, index);
    let mut rows = Vec::with_capacity(hashes.len());
    for (offset, hash) in hashes.into_iter().enumerate() {
        let stored_index = first + offset as u64;
        cache.insert(stored_index, hash);
        rows.push((stored_index, hash));
    }
    rows
}

/// Root hash of the tree of the first `size` entries.
pub async fn root<C: ConnectionTrait>(db: &C, size: u64) -> Result<Hash, MerkleError> {
    with_hashes(db, &mut HashMap::new(), |reader| {
        tlog::tree_hash(size, reader)
    })
    .await
}

/// Inclusion proof of leaf `index` (0-based) in the tree of `size` entries.
pub async fn inclusion_proof<C: ConnectionTrait>(
    db: &C,
    size: u64,
    index: u64,
) -> Result<Vec<Hash>, MerkleError> {
    with_hashes(db, &mut HashMap::new(), |reader| {
        tlog::prove_record(size, index, reader)
    })
    .await
}

/// Consistency proof that the tree of `old_size` entries is a prefix of the tree of `size`.
pub async fn consistency_proof<C: ConnectionTrait>(
    db: &C,
    size: u64,
    old_size: u64,
) -> Result<Vec<Hash>, MerkleError> {
    with_hashes(db, &mut HashMap::new(), |reader| {
        tlog::prove_tree(size, old_size, reader)
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Leaves of the RFC 6962 reference tests (certificate-transparency merkle tests).
    const LEAVES: [&str; 8] = [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ];

    /// Root of the tree of the first `k + 1` reference leaves.
    const ROOTS: [&str; 8] = [
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ];

    /// Builds the stored hashes of a tree over raw leaf data in memory.
    fn memory_tree(leaves: &[Vec<u8>]) -> HashMap<u64, Hash> {
        let mut stored = HashMap::new();
        for (index, data) in leaves.iter().enumerate() {
            let reader = MapReader {
                hashes: &stored,
                missing: RefCell::new(Vec::new()),
            };
            let hashes =
                tlog::stored_hashes_for_record_hash(index as u64, tlog::record_hash(data), &reader)
                    .unwrap();
            let first = tlog::stored_hash_index(0, index as u64);
            for (offset, hash) in hashes.into_iter().enumerate() {
                stored.insert(first + offset as u64, hash);
            }
        }
        stored
    }

    fn reference_leaves() -> Vec<Vec<u8>> {
        LEAVES
            .iter()
            .map(|leaf| hex::decode(leaf).unwrap())
            .collect()
    }

    fn tree_root(stored: &HashMap<u64, Hash>, size: u64) -> Hash {
        let reader = MapReader {
            hashes: stored,
            missing: RefCell::new(Vec::new()),
        };
        tlog::tree_hash(size, &reader).unwrap()
    }

    #[test]
    fn roots_match_rfc6962_reference_vectors() {
        let stored = memory_tree(&reference_leaves());
        for (index, expected) in ROOTS.iter().enumerate() {
            let root = tree_root(&stored, index as u64 + 1);
            assert_eq!(hex::encode(root.0), *expected, "tree size {}", index + 1);
        }
    }

    #[test]
    fn reference_inclusion_proof_for_leaf_zero() {
        let stored = memory_tree(&reference_leaves());
        let reader = MapReader {
            hashes: &stored,
            missing: RefCell::new(Vec::new()),
        };
        let proof = tlog::prove_record(8, 0, &reader).unwrap();
        let proof_hex: Vec<String> = proof.iter().map(|hash| hex::encode(hash.0)).collect();
        assert_eq!(
            proof_hex,
            [
                "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
            ]
        );
    }

    #[test]
    fn every_reference_proof_verifies() {
        let leaves = reference_leaves();
        let stored = memory_tree(&leaves);
        let reader = MapReader {
            hashes: &stored,
            missing: RefCell::new(Vec::new()),
        };
        for size in 1..=8u64 {
            let root = tree_root(&stored, size);
            for index in 0..size {
                let proof = tlog::prove_record(size, index, &reader).unwrap();
                let leaf = tlog::record_hash(&leaves[index as usize]);
                tlog::check_record(&proof, size, root, index, leaf).unwrap();
            }
            for old in 1..=size {
                let proof = tlog::prove_tree(size, old, &reader).unwrap();
                tlog::check_tree(&proof, size, root, old, tree_root(&stored, old)).unwrap();
            }
        }
    }

    /// Builds a tree of `size` leaves whose data is the leaf index.
    fn numbered_tree(size: u64) -> (Vec<Vec<u8>>, HashMap<u64, Hash>) {
        let leaves: Vec<Vec<u8>> = (0..size).map(|i| i.to_be_bytes().to_vec()).collect();
        let stored = memory_tree(&leaves);
        (leaves, stored)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn altered_inclusion_proof_is_rejected(
            size in 2u64..200,
            index_seed in any::<u64>(),
            hash_seed in any::<usize>(),
            byte in 0usize..32,
            shift in 1u64..50,
        ) {
            // The tree contains more leaves than `size`, so that the root of a larger size is
            // known: a proof checked against another size's real root must fail.
            let (leaves, stored) = numbered_tree(size + 50);
            let index = index_seed % size;
            let root = tree_root(&stored, size);
            let reader = MapReader { hashes: &stored, missing: RefCell::new(Vec::new()) };
            let proof = tlog::prove_record(size, index, &reader).unwrap();
            let leaf = tlog::record_hash(&leaves[index as usize]);
            prop_assert!(tlog::check_record(&proof, size, root, index, leaf).is_ok());

            if !proof.is_empty() {
                let mut altered = proof.clone();
                let position = hash_seed % altered.len();
                altered[position].0[byte] ^= 0x01;
                prop_assert!(tlog::check_record(&altered, size, root, index, leaf).is_err());
            }
            let other_index = (index + shift) % size;
            if other_index != index {
                prop_assert!(tlog::check_record(&proof, size, root, other_index, leaf).is_err());
            }
            let larger_root = tree_root(&stored, size + shift);
            prop_assert!(tlog::check_record(&proof, size + shift, larger_root, index, leaf).is_err());
            let mut other_root = root;
            other_root.0[byte] ^= 0x01;
            prop_assert!(tlog::check_record(&proof, size, other_root, index, leaf).is_err());
        }

        #[test]
        fn altered_consistency_proof_is_rejected(
            size in 3u64..200,
            old_seed in any::<u64>(),
            hash_seed in any::<usize>(),
            byte in 0usize..32,
            shift in 1u64..50,
        ) {
            let (_, stored) = numbered_tree(size + 50);
            let old = 1 + old_seed % (size - 1);
            let root = tree_root(&stored, size);
            let old_root = tree_root(&stored, old);
            let reader = MapReader { hashes: &stored, missing: RefCell::new(Vec::new()) };
            let proof = tlog::prove_tree(size, old, &reader).unwrap();
            prop_assert!(tlog::check_tree(&proof, size, root, old, old_root).is_ok());

            if !proof.is_empty() {
                let mut altered = proof.clone();
                let position = hash_seed % altered.len();
                altered[position].0[byte] ^= 0x01;
                prop_assert!(tlog::check_tree(&altered, size, root, old, old_root).is_err());
            }
            let larger_root = tree_root(&stored, size + shift);
            prop_assert!(tlog::check_tree(&proof, size + shift, larger_root, old, old_root).is_err());
            let other_old = 1 + (old + shift) % (size - 1);
            if other_old != old {
                prop_assert!(tlog::check_tree(&proof, size, root, other_old, old_root).is_err());
            }
        }
    }
}
