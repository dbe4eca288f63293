//! The archive's intake of a message from the trace stream: protobuf decoding and the
//! envelope checks of `trace_archive::ledger::decode`, the digest form that the chain
//! commits to, and the sealed-value layout of confidential payloads.

use bytes::Bytes;
use prost::Message;
use trace_archive::ledger::{self, Incoming};
use trace_proto::event::v1::Envelope;
use trace_runtime::event::{self, is_sealed_level, is_subject_token};
use trace_runtime::seal::{self, Keyring};

/// Key-encryption keys that the seeds are sealed with. Arbitrary bytes cannot pass AES-GCM
/// authentication, so the open and rewrap paths past it run only on seeds made with them.
pub fn keyring(active: &str) -> Keyring {
    Keyring::from_keys(
        [("k1".to_owned(), [1u8; 32]), ("k2".to_owned(), [2u8; 32])],
        active,
    )
}

/// A subject that the fuzzer's envelopes rarely carry, to exercise the subject mismatch.
const OTHER_SUBJECT: &str = "trace.document.document.read";

/// Confidentiality values to compute the digest form at: every enum value and two outside
/// the enum, since the stored column is a plain integer.
const LEVELS: [i32; 7] = [-1, 0, 1, 2, 3, 4, i32::MAX];

/// Checks the intake of `data` as a message body, and `data` as a sealed value.
pub fn check(data: &[u8]) {
    check_decode(data);
    check_digest_form(data);
    check_sealed_value(data);
    check_seal_round_trip(data);
}

fn check_decode(data: &[u8]) {
    let raw = Bytes::copy_from_slice(data);
    let parsed = Envelope::decode(data).ok();
    let mut subjects = vec![OTHER_SUBJECT.to_owned(), String::new()];
    if let Some(envelope) = &parsed {
        subjects.push(envelope.subject.clone());
    }
    for subject in subjects {
        let incoming = Incoming {
            stream_sequence: data.len() as u64,
            subject,
            raw: raw.clone(),
            previous_event_id: None,
        };
        match ledger::decode(&incoming) {
            Ok((envelope, entry)) => check_accepted(&incoming, &envelope, &entry),
            Err(reason) => assert!(!reason.is_empty(), "a rejection has a reason"),
        }
    }
}

/// Asserts what `ledger::decode` promises about an envelope it accepts.
fn check_accepted(
    incoming: &Incoming,
    envelope: &Envelope,
    entry: &trace_archive::entity::ledger_entry::Model,
) {
    assert_eq!(entry.subject, incoming.subject, "subject of the message");
    let tokens: Vec<&str> = entry.subject.split('.').collect();
    assert_eq!(
        tokens.len(),
        4,
        "subject {:?} has four tokens",
        entry.subject
    );
    assert_eq!(tokens[0], "trace");
    assert_eq!(tokens[1], entry.source_service);
    assert_eq!(tokens[2], entry.entity_type);
    assert_eq!(tokens[3], entry.action);
    for token in &tokens[1..] {
        assert!(is_subject_token(token), "accepted token {token:?}");
    }
    assert!(uuid::Uuid::try_parse(&entry.event_id).is_ok(), "event id");
    let id_chars = entry.entity_id.chars().count();
    assert!(
        (1..=128).contains(&id_chars),
        "entity id of {id_chars} chars"
    );
    assert!(entry.entity_version >= 1, "entity version");
    assert_eq!(entry.stream_sequence as u64, incoming.stream_sequence);
    assert_eq!(entry.payload.as_deref(), Some(incoming.raw.as_ref()));
    assert_eq!(
        entry.payload_sha256,
        event::envelope_digest(&incoming.raw, entry.confidentiality)
    );
    assert!(ledger::payload_matches_digest(entry));
    if envelope.sealed_payload.is_some() {
        assert!(
            envelope.payload.is_none(),
            "payload beside a sealed payload"
        );
        assert!(
            is_sealed_level(entry.confidentiality),
            "sealed below CONFIDENTIAL"
        );
    }
    let micros = entry.occurred_at;
    assert!(
        trace_runtime::clock::micros_from_timestamp(&trace_runtime::clock::timestamp(micros))
            == Some(micros),
        "occurred_at {micros} round-trips"
    );
    assert_eq!(
        ledger::entry_hash(entry).len(),
        64,
        "entry hash is hex SHA-256"
    );

    // An opened payload is bound to its event id; with the wrong keys it fails cleanly.
    let _ = event::open_payload(&keyring("k1"), envelope);
    let _ = event::open_payload(&Keyring::development(), envelope);
}

/// Checks that the digest form drops only the key wrapping, so computing it twice changes
/// nothing, and that below CONFIDENTIAL it is the bytes themselves.
fn check_digest_form(data: &[u8]) {
    for level in LEVELS {
        let form = event::digest_form(data, level);
        if !is_sealed_level(level) {
            assert_eq!(
                form.as_ref(),
                data,
                "level {level} hashes the bytes as they are"
            );
        }
        let again = event::digest_form(&form, level);
        assert_eq!(
            again.as_ref(),
            form.as_ref(),
            "digest form at level {level}"
        );
    }

    // A rewrap moves the sealed payload to the active key and keeps the digest.
    for active in ["k1", "k2"] {
        let Ok(Some(rewrapped)) = event::rewrap_payload(&keyring(active), data) else {
            continue;
        };
        for level in LEVELS.into_iter().filter(|level| is_sealed_level(*level)) {
            assert_eq!(
                event::envelope_digest(&rewrapped, level),
                event::envelope_digest(data, level),
                "rewrap to {active} changed the digest at level {level}"
            );
        }
    }
}

/// Parses `data` as a sealed value: the split and join of its key wrapping must give the same
/// bytes back, and opening must fail cleanly.
fn check_sealed_value(data: &[u8]) {
    match seal::split_sealed(data) {
        Ok((wrapping, content)) => {
            assert_eq!(seal::join_sealed(wrapping, content), data);
            assert!(
                wrapping.starts_with(b"TRSEAL1\x01"),
                "wrapping starts with the header"
            );
            let key_id = Keyring::key_id_of(data).expect("a value that splits names its key");
            assert_eq!(usize::from(wrapping[8]), key_id.len());
        }
        Err(_) => assert!(
            Keyring::key_id_of(data).is_err(),
            "key id of an unsplittable value"
        ),
    }
    let keys = keyring("k2");
    let _ = keys.open("event:fuzz", data);
    if let Ok(Some(rewrapped)) = keys.rewrap(data) {
        assert_eq!(
            Keyring::key_id_of(&rewrapped).expect("rewrapped key id"),
            "k2"
        );
        let (_, old_content) = seal::split_sealed(data).expect("a rewrapped value splits");
        let (_, new_content) = seal::split_sealed(&rewrapped).expect("rewrap output splits");
        assert_eq!(
            old_content, new_content,
            "rewrap keeps the content ciphertext"
        );
    }
}

/// Seals `data` and checks that it opens only for its record and only unaltered.
fn check_seal_round_trip(data: &[u8]) {
    let keys = keyring("k1");
    let sealed = keys.seal("event:fuzz", data);
    assert_eq!(keys.open("event:fuzz", &sealed).expect("opens"), data);
    assert!(
        keys.open("event:other", &sealed).is_err(),
        "opened for another record"
    );

    let (wrapping, content) = seal::split_sealed(&sealed).expect("a sealed value splits");
    assert_eq!(seal::join_sealed(wrapping, content), sealed);

    let position = data.first().map_or(0, |byte| usize::from(*byte)) % sealed.len();
    let mut altered = sealed.clone();
    altered[position] ^= 0x01;
    assert!(
        keys.open("event:fuzz", &altered).is_err(),
        "a value altered at byte {position} opened"
    );
}
