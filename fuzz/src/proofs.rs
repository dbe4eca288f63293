//! Merkle proofs and signed checkpoints as an auditor checks them: `tlog::check_record` and
//! `tlog::check_tree` (RFC 6962 inclusion and consistency proofs, the checks that `tracectl
//! proof` and `tracectl verify-export` run), the archive's in-memory hash reader, and
//! `trace_archive::checkpoint::verify_note`.
//!
//! The input starts with a header of [`HEADER_BYTES`] bytes that chooses a real tree and the
//! claims to check. The rest is read both as a list of 32-byte proof hashes and as note text.

use std::collections::HashMap;

use arbitrary::{Arbitrary, Unstructured};
use tlog_tiles::tlog::{self, HASH_SIZE, Hash};
use trace_archive::checkpoint::{self, CheckpointSigner};
use trace_archive::merkle::{self, MapReader};

/// Length of the header that [`Claims`] is read from; missing bytes count as zeros.
pub const HEADER_BYTES: usize = 32;

/// Largest tree that the check builds. Building is linear in the size, and every proof
/// shape (left and right edges, perfect and ragged trees) appears well below this.
const MAX_TREE_SIZE: u64 = 256;

/// Checkpoint signing key of the seeds, made with `tracectl keygen --name
/// fuzz.example/archive`. It signs nothing outside these checks.
pub const SIGNING_KEY: &str =
    "PRIVATE+KEY+fuzz.example/archive+192fd090+Aam+1cabo9PtCS8T3/WX2LGr4+jXUYSCNLue91MXjtvO";
/// Verifier key of [`SIGNING_KEY`].
pub const VERIFIER_KEY: &str =
    "fuzz.example/archive+192fd090+ARdbdNEAqvo6aKSh1ai9zIsCHfvnqsv5inCZ3xatdDrz";

/// Tree sizes, positions and claims read from the input header.
#[derive(Arbitrary, Debug)]
struct Claims {
    /// Size of the real tree, reduced to 1 to [`MAX_TREE_SIZE`].
    size: u16,
    /// Leaf for the inclusion proof and old size for the consistency proof, reduced into
    /// the tree.
    index: u16,
    old_size: u16,
    /// Position of the bit to flip in a real proof.
    flip_hash: u8,
    flip_byte: u8,
    flip_bit: u8,
    /// Tree geometry for checking the arbitrary proof hashes, unreduced.
    claimed_size: u64,
    claimed_index: u64,
}

/// Checks real and arbitrary proofs and notes chosen by `data`.
pub fn check(data: &[u8]) {
    let (header, rest) = data.split_at(data.len().min(HEADER_BYTES));
    let claims = Claims::arbitrary(&mut Unstructured::new(header))
        .expect("integers read from too few bytes are zeros");
    let hashes: Vec<Hash> = rest
        .chunks_exact(HASH_SIZE)
        .map(|chunk| Hash(chunk.try_into().expect("chunks_exact gives 32 bytes")))
        .collect();

    let size = 1 + u64::from(claims.size) % MAX_TREE_SIZE;
    let tree = Tree::build(size);
    check_inclusion(&tree, &claims, &hashes);
    check_consistency(&tree, &claims, &hashes);
    check_arbitrary_geometry(&claims, &hashes);
    check_notes(&claims, &tree, rest);
    let _ = merkle::leaf_hash(&String::from_utf8_lossy(rest));
}

/// A tree of `size` leaves whose data is the leaf index, in the archive's stored-hash layout.
struct Tree {
    size: u64,
    stored: HashMap<u64, Hash>,
}

impl Tree {
    fn build(size: u64) -> Self {
        let mut stored = HashMap::new();
        for index in 0..size {
            let hashes = tlog::stored_hashes_for_record_hash(
                index,
                Self::leaf(index),
                &MapReader::new(&stored),
            )
            .expect("the hashes of earlier leaves are stored");
            let first = tlog::stored_hash_index(0, index);
            for (offset, hash) in hashes.into_iter().enumerate() {
                stored.insert(first + offset as u64, hash);
            }
        }
        Self { size, stored }
    }

    fn leaf(index: u64) -> Hash {
        tlog::record_hash(&index.to_be_bytes())
    }

    fn root(&self, size: u64) -> Hash {
        tlog::tree_hash(size, &MapReader::new(&self.stored)).expect("root of a stored size")
    }
}

/// Returns `proof` with one bit flipped at a place that `claims` chooses, or `None` for an
/// empty proof.
fn flipped(proof: &[Hash], claims: &Claims) -> Option<Vec<Hash>> {
    if proof.is_empty() {
        return None;
    }
    let mut altered = proof.to_vec();
    let position = usize::from(claims.flip_hash) % altered.len();
    altered[position].0[usize::from(claims.flip_byte) % HASH_SIZE] ^= 1 << (claims.flip_bit % 8);
    Some(altered)
}

/// Checks that a real inclusion proof verifies and that an altered one, another leaf or another
/// root does not. Arbitrary hashes must verify only when they are the real proof.
fn check_inclusion(tree: &Tree, claims: &Claims, hashes: &[Hash]) {
    let size = tree.size;
    let index = u64::from(claims.index) % size;
    let root = tree.root(size);
    let leaf = Tree::leaf(index);
    let reader = MapReader::new(&tree.stored);
    let proof = tlog::prove_record(size, index, &reader).expect("proof of a stored leaf");
    assert!(
        tlog::check_record(&proof, size, root, index, leaf).is_ok(),
        "inclusion proof of leaf {index} in tree {size}"
    );
    if let Some(altered) = flipped(&proof, claims) {
        assert!(tlog::check_record(&altered, size, root, index, leaf).is_err());
    }
    let other_leaf = Tree::leaf(index + 1);
    assert!(tlog::check_record(&proof, size, root, index, other_leaf).is_err());
    if size > 1 {
        let other_index = (index + 1) % size;
        assert!(tlog::check_record(&proof, size, root, other_index, leaf).is_err());
    }
    let mut longer = proof.clone();
    longer.push(root);
    assert!(tlog::check_record(&longer, size, root, index, leaf).is_err());

    // `tlog` takes proofs as `&Vec<Hash>`.
    if tlog::check_record(&hashes.to_vec(), size, root, index, leaf).is_ok() {
        assert_eq!(
            hashes,
            proof.as_slice(),
            "a second inclusion proof verified"
        );
    }
}

/// Checks that a real consistency proof verifies and that an altered one or another old root
/// does not. Arbitrary hashes must verify only when they are the real proof.
fn check_consistency(tree: &Tree, claims: &Claims, hashes: &[Hash]) {
    let size = tree.size;
    let old_size = 1 + u64::from(claims.old_size) % size;
    let root = tree.root(size);
    let old_root = tree.root(old_size);
    let reader = MapReader::new(&tree.stored);
    let proof = tlog::prove_tree(size, old_size, &reader).expect("proof of stored sizes");
    assert!(
        tlog::check_tree(&proof, size, root, old_size, old_root).is_ok(),
        "consistency proof from {old_size} to {size}"
    );
    if let Some(altered) = flipped(&proof, claims) {
        assert!(tlog::check_tree(&altered, size, root, old_size, old_root).is_err());
    }
    let mut other_old_root = old_root;
    other_old_root.0[0] ^= 1;
    assert!(tlog::check_tree(&proof, size, root, old_size, other_old_root).is_err());

    if tlog::check_tree(&hashes.to_vec(), size, root, old_size, old_root).is_ok() {
        assert_eq!(
            hashes,
            proof.as_slice(),
            "a second consistency proof verified"
        );
    }
}

/// Checks arbitrary hashes against an arbitrary claimed tree, which must not panic. Such a
/// proof can verify only when it is empty and the root equals the leaf (or the old root).
/// Any other acceptance would mean a SHA-256 collision or a bug in the check.
fn check_arbitrary_geometry(claims: &Claims, hashes: &[Hash]) {
    let (Some(leaf), Some(root)) = (hashes.first(), hashes.get(1)) else {
        return;
    };
    let proof = hashes[2..].to_vec();
    let size = claims.claimed_size;
    let index = claims.claimed_index;
    if tlog::check_record(&proof, size, *root, index, *leaf).is_ok() {
        assert!(
            proof.is_empty() && leaf == root,
            "arbitrary inclusion proof of {} hashes verified for leaf {index} of {size}",
            proof.len()
        );
    }
    if tlog::check_tree(&proof, size, *root, index, *leaf).is_ok() {
        assert!(
            proof.is_empty() && leaf == root,
            "arbitrary consistency proof of {} hashes verified from {index} to {size}",
            proof.len()
        );
    }
}

/// Checks that a note signed for this tree verifies with its size and root, and that an
/// altered note verifies only with the same size and root. Arbitrary text verifies only as
/// a note signed with [`SIGNING_KEY`], so it starts with that key's origin line.
fn check_notes(claims: &Claims, tree: &Tree, rest: &[u8]) {
    let signer = CheckpointSigner::new(SIGNING_KEY).expect("the seed signing key parses");
    let root = tree.root(tree.size);
    let note = signer.sign(tree.size, root).expect("signing a checkpoint");
    assert_eq!(
        checkpoint::verify_note(&note, VERIFIER_KEY).expect("a signed note verifies"),
        (tree.size, root)
    );
    let mut altered = note.clone().into_bytes();
    let position = usize::from(claims.flip_byte) % altered.len();
    altered[position] ^= 1 << (claims.flip_bit % 8);
    if let Ok(text) = String::from_utf8(altered)
        && let Ok(verified) = checkpoint::verify_note(&text, VERIFIER_KEY)
    {
        assert_eq!(
            verified,
            (tree.size, root),
            "an altered note verified as {text:?}"
        );
    }

    let text = String::from_utf8_lossy(rest);
    if let Ok((size, root)) = checkpoint::verify_note(&text, VERIFIER_KEY) {
        let resigned = signer.sign(size, root).expect("signing a checkpoint");
        assert!(
            text.starts_with(resigned.lines().next().unwrap_or_default()),
            "a note that verifies names the key's origin"
        );
    }
    // The text as a verifier key must be rejected or accepted without a panic.
    let _ = checkpoint::verify_note(&note, &text);
}
