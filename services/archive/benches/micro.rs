//! criterion micro-benchmarks of the archive's CPU work per event: envelope encoding and
//! decoding, the chained entry hash, and the Merkle tree's append, root and proofs over a
//! tree held in memory (no database).
//!
//! ```text
//! cargo bench -p trace-archive --bench micro
//! cargo bench -p trace-archive --bench micro -- merkle   # one group
//! ```

mod support;

use std::collections::HashMap;
use std::hint::black_box;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use prost::Message;
use tlog_tiles::tlog::{self, Hash};
use trace_archive::ledger;
use trace_archive::merkle::{MapReader, leaf_hash};
use trace_proto::event::v1::Envelope;

/// Leaves in the in-memory tree that the Merkle benchmarks work on.
const TREE_SIZE: u64 = 100_000;

fn encoding(criterion: &mut Criterion) {
    let envelope = support::envelope(7);
    let message = support::incoming(7);
    let mut group = criterion.benchmark_group("envelope");
    group.throughput(Throughput::Bytes(message.raw.len() as u64));
    group.bench_function("encode", |bencher| {
        bencher.iter(|| black_box(&envelope).encode_to_vec())
    });
    group.bench_function("decode", |bencher| {
        bencher.iter(|| Envelope::decode(black_box(message.raw.as_ref())).unwrap())
    });
    // What the consumer does per message before the database: protobuf decode, checks of
    // the subject and ids, payload SHA-256 and the entry row.
    group.bench_function("decode_and_check", |bencher| {
        bencher.iter(|| ledger::decode(black_box(&message)).unwrap())
    });
    group.finish();
}

fn hash_chain(criterion: &mut Criterion) {
    let (_, mut entry) = ledger::decode(&support::incoming(7)).unwrap();
    entry.sequence = 8;
    entry.received_at = 1_790_000_000_000_000;
    entry.previous_hash = ledger::GENESIS_HASH.to_owned();
    let mut group = criterion.benchmark_group("chain");
    group.throughput(Throughput::Elements(1));
    group.bench_function("entry_hash", |bencher| {
        bencher.iter(|| ledger::entry_hash(black_box(&entry)))
    });
    // Linking 1,000 entries: each hash becomes the next entry's previous hash.
    group.throughput(Throughput::Elements(1_000));
    group.bench_function("link_1000", |bencher| {
        bencher.iter_batched(
            || entry.clone(),
            |mut entry| {
                for sequence in 1..=1_000 {
                    entry.sequence = sequence;
                    entry.previous_hash = ledger::entry_hash(&entry);
                }
                entry.previous_hash
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

/// Builds the stored hashes of a tree of `size` leaves, whose leaf data are the entry
/// hashes of a chain.
fn memory_tree(size: u64) -> (HashMap<u64, Hash>, Vec<Hash>) {
    let mut stored = HashMap::new();
    let mut leaves = Vec::with_capacity(size as usize);
    for index in 0..size {
        let leaf = leaf_hash(&format!("{index:064x}"));
        let hashes = tlog::stored_hashes_for_record_hash(index, leaf, &MapReader::new(&stored))
            .expect("every earlier hash is stored");
        let first = tlog::stored_hash_index(0, index);
        for (offset, hash) in hashes.into_iter().enumerate() {
            stored.insert(first + offset as u64, hash);
        }
        leaves.push(leaf);
    }
    (stored, leaves)
}

fn merkle_tree(criterion: &mut Criterion) {
    let (stored, leaves) = memory_tree(TREE_SIZE);
    let root = tlog::tree_hash(TREE_SIZE, &MapReader::new(&stored)).unwrap();
    let next_leaf = leaf_hash(&format!("{TREE_SIZE:064x}"));

    let mut group = criterion.benchmark_group("merkle");
    group.throughput(Throughput::Elements(1));
    group.bench_function("leaf_hash", |bencher| {
        bencher.iter(|| leaf_hash(black_box(&format!("{TREE_SIZE:064x}"))))
    });
    // The hashes that appending leaf 100,000 adds, read from the 100,000-leaf tree.
    group.bench_function("append_at_100k", |bencher| {
        bencher.iter(|| {
            let reader = MapReader::new(&stored);
            tlog::stored_hashes_for_record_hash(TREE_SIZE, black_box(next_leaf), &reader).unwrap()
        })
    });
    group.bench_function("root_at_100k", |bencher| {
        bencher.iter(|| tlog::tree_hash(black_box(TREE_SIZE), &MapReader::new(&stored)).unwrap())
    });

    let index = TREE_SIZE / 3;
    group.bench_function("inclusion_proof_at_100k", |bencher| {
        bencher.iter(|| {
            tlog::prove_record(TREE_SIZE, black_box(index), &MapReader::new(&stored)).unwrap()
        })
    });

    let proof = tlog::prove_record(TREE_SIZE, index, &MapReader::new(&stored)).unwrap();
    group.bench_function("check_inclusion_at_100k", |bencher| {
        bencher.iter(|| {
            tlog::check_record(
                black_box(&proof),
                TREE_SIZE,
                root,
                index,
                leaves[index as usize],
            )
            .unwrap()
        })
    });
    group.finish();
}

criterion_group!(benches, encoding, hash_chain, merkle_tree);
criterion_main!(benches);
