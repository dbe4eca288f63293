//! Runs every checked-in seed of `corpus/<target>/` through the check of its fuzz target, so
//! that `make test` exercises the checks and keeps every crash the fuzzer found fixed,
//! without libFuzzer or a nightly compiler.

use std::path::Path;

fn run_seeds(target: &str) {
    let files = trace_fuzz::seed_files(target);
    assert!(!files.is_empty(), "corpus/{target} has no seeds");
    for file in files {
        let data = std::fs::read(&file).expect("a readable seed");
        eprintln!("{target}: {}", file.display());
        trace_fuzz::run(target, &data);
    }
}

#[test]
fn envelope_decode_seeds() {
    run_seeds("envelope_decode");
}

#[test]
fn subject_token_seeds() {
    run_seeds("subject_token");
}

#[test]
fn proof_verify_seeds() {
    run_seeds("proof_verify");
}

#[test]
fn config_parse_seeds() {
    run_seeds("config_parse");
}

/// Writes the seeds that are binary: encoded envelopes, a sealed value, and proof inputs
/// with a real proof or a signed note. Sealing draws random keys and nonces, so each run
/// writes different bytes of the same shape. Run it with `cargo test --no-default-features
/// --test seeds -- --ignored` after changing a layout, and commit the files.
#[test]
#[ignore = "writes into corpus/; run by hand"]
fn write_generated_seeds() {
    use prost::Message;
    use trace_proto::common::v1::Confidentiality;
    use trace_proto::event::v1::{Actor, Envelope};

    let write = |target: &str, name: &str, bytes: &[u8]| {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("corpus")
            .join(target)
            .join(name);
        std::fs::write(&path, bytes)
            .unwrap_or_else(|error| panic!("failed to write {}: {error}", path.display()));
    };

    let plain = Envelope {
        event_id: "0193a3c4-5d6e-7f80-9a1b-2c3d4e5f6a7b".to_owned(),
        subject: "trace.document.borrowing.lent".to_owned(),
        occurred_at: Some(trace_runtime::clock::timestamp(1_764_000_000_000_000)),
        actor: Some(Actor {
            user_id: "zhang.min".to_owned(),
            display_name: "張敏".to_owned(),
            department: "admin-office".to_owned(),
            role: "employee".to_owned(),
        }),
        source_service: "document".to_owned(),
        entity_type: "borrowing".to_owned(),
        entity_id: "b-17".to_owned(),
        entity_version: 3,
        action: "lent".to_owned(),
        confidentiality: Confidentiality::Internal as i32,
        correlation_id: "c-1".to_owned(),
        causation_id: "c-1".to_owned(),
        trace_context: None,
        payload: Some(prost_types::Any {
            type_url: "type.googleapis.com/trace.document.v1.Lent".to_owned(),
            value: b"\x0a\x04b-17".to_vec(),
        }),
        sealed_payload: None,
    };
    write("envelope_decode", "plain", &plain.encode_to_vec());

    let mut sealed = Envelope {
        subject: "trace.meeting.meeting.minuted".to_owned(),
        source_service: "meeting".to_owned(),
        entity_type: "meeting".to_owned(),
        action: "minuted".to_owned(),
        confidentiality: Confidentiality::Confidential as i32,
        ..plain.clone()
    };
    trace_runtime::event::seal_payload(&trace_fuzz::envelope::keyring("k1"), &mut sealed);
    assert!(
        sealed.sealed_payload.is_some(),
        "the seed payload is sealed"
    );
    write("envelope_decode", "sealed", &sealed.encode_to_vec());

    let value = trace_fuzz::envelope::keyring("k1").seal("event:fuzz", b"board minutes");
    write("envelope_decode", "sealed_value", &value);

    let stored = {
        let mut stored = std::collections::HashMap::new();
        for index in 0..7u64 {
            let leaf = tlog_tiles::tlog::record_hash(&index.to_be_bytes());
            let reader = trace_archive::merkle::MapReader::new(&stored);
            let hashes =
                tlog_tiles::tlog::stored_hashes_for_record_hash(index, leaf, &reader).unwrap();
            let first = tlog_tiles::tlog::stored_hash_index(0, index);
            for (offset, hash) in hashes.into_iter().enumerate() {
                stored.insert(first + offset as u64, hash);
            }
        }
        stored
    };
    let reader = trace_archive::merkle::MapReader::new(&stored);
    // Header: tree size 7, leaf 2, old size 4 (each reduced as `proofs::check` does).
    let mut header = vec![0u8; trace_fuzz::proofs::HEADER_BYTES];
    header[..6].copy_from_slice(&[6, 0, 2, 0, 3, 0]);
    let mut inclusion = header.clone();
    for hash in tlog_tiles::tlog::prove_record(7, 2, &reader).unwrap() {
        inclusion.extend_from_slice(&hash.0);
    }
    write("proof_verify", "inclusion_7_2", &inclusion);
    let mut consistency = header.clone();
    for hash in tlog_tiles::tlog::prove_tree(7, 4, &reader).unwrap() {
        consistency.extend_from_slice(&hash.0);
    }
    write("proof_verify", "consistency_4_7", &consistency);

    let signer =
        trace_archive::checkpoint::CheckpointSigner::new(trace_fuzz::proofs::SIGNING_KEY).unwrap();
    let root = tlog_tiles::tlog::tree_hash(7, &reader).unwrap();
    let mut noted = header;
    noted.extend_from_slice(signer.sign(7, root).unwrap().as_bytes());
    write("proof_verify", "signed_note_7", &noted);
}
