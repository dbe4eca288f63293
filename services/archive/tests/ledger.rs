//! Ledger behaviour against a real SQLite file (and PostgreSQL when
//! `TRACE_TEST_DATABASE_URL` is set): appends, duplicates, conflicts, rejections,
//! verification of tampered rows and replies to receipt queries.

use bytes::Bytes;
use prost::Message;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Statement,
};
use trace_archive::entity::{conflict, ledger_entry};
use trace_archive::ledger::{Appender, Incoming, Outcome, append_batch};
use trace_archive::migration::Migrator;
use trace_archive::receipt_query::archived;
use trace_archive::verify::{verify_in_chunks, verify_range};
use trace_proto::event::v1::{Actor, Envelope, ReceiptQuery};

fn envelope(entity_id: &str, version: u64, action: &str) -> Envelope {
    Envelope {
        event_id: uuid::Uuid::now_v7().to_string(),
        subject: format!("trace.document.document.{action}"),
        occurred_at: Some(prost_types::Timestamp {
            seconds: 1_790_000_000,
            nanos: 0,
        }),
        actor: Some(Actor {
            user_id: "zhang.min".to_owned(),
            display_name: "張敏".to_owned(),
            department: "admin-office".to_owned(),
            role: "employee".to_owned(),
        }),
        source_service: "document".to_owned(),
        entity_type: "document".to_owned(),
        entity_id: entity_id.to_owned(),
        entity_version: version,
        action: action.to_owned(),
        confidentiality: 2,
        correlation_id: uuid::Uuid::now_v7().to_string(),
        ..Envelope::default()
    }
}

fn incoming(stream_sequence: u64, envelope: &Envelope) -> Incoming {
    Incoming {
        stream_sequence,
        subject: envelope.subject.clone(),
        raw: Bytes::from(envelope.encode_to_vec()),
        previous_event_id: None,
    }
}

struct TestDb {
    db: DatabaseConnection,
    _dir: tempfile::TempDir,
}

async fn sqlite() -> TestDb {
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("archive.db").display()
    );
    let db = trace_runtime::db::connect_and_migrate::<Migrator>(&url)
        .await
        .unwrap();
    TestDb { db, _dir: dir }
}

/// A fresh PostgreSQL database on the server named by `TRACE_TEST_DATABASE_URL`, if set.
async fn postgres() -> Option<DatabaseConnection> {
    let base = std::env::var("TRACE_TEST_DATABASE_URL").ok()?;
    let admin = trace_runtime::db::connect(&base).await.unwrap();
    let name = format!("trace_t_ledger_{}", uuid::Uuid::now_v7().simple());
    admin
        .execute_raw(Statement::from_string(
            admin.get_database_backend(),
            format!("CREATE DATABASE {name}"),
        ))
        .await
        .unwrap();
    let (server, _) = base.rsplit_once('/').unwrap();
    let url = format!("{server}/{name}");
    Some(
        trace_runtime::db::connect_and_migrate::<Migrator>(&url)
            .await
            .unwrap(),
    )
}

async fn appends_duplicates_and_conflicts(db: &DatabaseConnection) {
    let first = envelope("doc-1", 1, "drafted");
    let second = envelope("doc-1", 2, "revised");
    let outcomes = append_batch(db, 10, &[incoming(1, &first), incoming(2, &second)])
        .await
        .unwrap();
    assert!(
        matches!(outcomes[0], Outcome::Appended { sequence: 1, .. }),
        "{outcomes:?}"
    );
    assert!(
        matches!(outcomes[1], Outcome::Appended { sequence: 2, .. }),
        "{outcomes:?}"
    );

    // Redelivery of the same bytes is absorbed and reported as a duplicate.
    let outcomes = append_batch(db, 20, &[incoming(1, &first)]).await.unwrap();
    assert!(
        matches!(outcomes[0], Outcome::Duplicate { sequence: 1, .. }),
        "{outcomes:?}"
    );

    // The same event id with other content is a conflict and is never appended.
    let mut altered = first.clone();
    altered.entity_id = "doc-2".to_owned();
    let outcomes = append_batch(db, 30, &[incoming(3, &altered)])
        .await
        .unwrap();
    assert!(
        matches!(
            outcomes[0],
            Outcome::Conflict {
                stored_sequence: 1,
                ..
            }
        ),
        "{outcomes:?}"
    );
    // The newcomer is recorded once, however often it comes back.
    let outcomes = append_batch(db, 40, &[incoming(4, &altered)])
        .await
        .unwrap();
    assert!(
        matches!(outcomes[0], Outcome::Conflict { .. }),
        "{outcomes:?}"
    );
    let conflicts: Vec<(String, i64, String)> = conflict::Entity::find()
        .select_only()
        .columns([
            conflict::Column::EventId,
            conflict::Column::StoredSequence,
            conflict::Column::ReceivedPayloadSha256,
        ])
        .into_tuple()
        .all(db)
        .await
        .unwrap();
    let altered_digest =
        trace_runtime::event::envelope_digest(&altered.encode_to_vec(), altered.confidentiality);
    assert_eq!(conflicts, [(first.event_id.clone(), 1, altered_digest)]);

    let verification = verify_range(db, 1, 0).await.unwrap();
    assert!(verification.ok(), "{verification:?}");
    assert_eq!(verification.checked, 2);
}

#[tokio::test]
async fn ledger_absorbs_duplicates_on_sqlite() {
    let test = sqlite().await;
    appends_duplicates_and_conflicts(&test.db).await;
}

#[tokio::test]
async fn ledger_absorbs_duplicates_on_postgres() {
    let Some(db) = postgres().await else {
        eprintln!("TRACE_TEST_DATABASE_URL is not set; skipping the PostgreSQL variant");
        return;
    };
    appends_duplicates_and_conflicts(&db).await;
}

/// `incoming` naming `previous` as the event that must be archived first.
fn after(stream_sequence: u64, envelope: &Envelope, previous: &Envelope) -> Incoming {
    Incoming {
        previous_event_id: Some(previous.event_id.clone()),
        ..incoming(stream_sequence, envelope)
    }
}

/// Stored (entity version, ledger sequence) pairs of `entity_id`, in ledger order.
async fn versions_of(db: &DatabaseConnection, entity_id: &str) -> Vec<(i64, i64)> {
    ledger_entry::Entity::find()
        .select_only()
        .columns([
            ledger_entry::Column::EntityVersion,
            ledger_entry::Column::Sequence,
        ])
        .filter(ledger_entry::Column::EntityId.eq(entity_id))
        .order_by_asc(ledger_entry::Column::Sequence)
        .into_tuple()
        .all(db)
        .await
        .unwrap()
}

/// Checks that an event whose previous event is not in the ledger is held until that event
/// arrives, and that within one batch an earlier message releases a later one.
async fn holds_early_events(db: &DatabaseConnection) {
    let first = envelope("doc-order", 1, "drafted");
    let second = envelope("doc-order", 2, "revised");
    let third = envelope("doc-order", 3, "revised");

    // The broker delivers version 2 first, as after a redelivery of version 1.
    let outcomes = append_batch(db, 10, &[after(7, &second, &first)])
        .await
        .unwrap();
    assert_eq!(
        outcomes,
        vec![Outcome::Held {
            event_id: second.event_id.clone(),
            previous_event_id: first.event_id.clone(),
        }]
    );
    assert_eq!(versions_of(db, "doc-order").await, vec![]);

    // Version 3 before version 1 in one batch stays held; version 1 is appended.
    let outcomes = append_batch(db, 20, &[after(8, &third, &second), incoming(5, &first)])
        .await
        .unwrap();
    assert!(matches!(outcomes[0], Outcome::Held { .. }), "{outcomes:?}");
    assert!(
        matches!(outcomes[1], Outcome::Appended { sequence: 1, .. }),
        "{outcomes:?}"
    );

    // Redelivered in stream order, version 2 releases version 3 in the same batch.
    let outcomes = append_batch(
        db,
        30,
        &[after(7, &second, &first), after(8, &third, &second)],
    )
    .await
    .unwrap();
    assert!(
        matches!(outcomes[0], Outcome::Appended { sequence: 2, .. }),
        "{outcomes:?}"
    );
    assert!(
        matches!(outcomes[1], Outcome::Appended { sequence: 3, .. }),
        "{outcomes:?}"
    );
    assert_eq!(
        versions_of(db, "doc-order").await,
        vec![(1, 1), (2, 2), (3, 3)]
    );

    // A copy of an archived event is a duplicate, whatever previous event it names.
    let stray = envelope("doc-order", 9, "revised");
    let outcomes = append_batch(db, 40, &[after(8, &third, &stray)])
        .await
        .unwrap();
    assert!(
        matches!(outcomes[0], Outcome::Duplicate { sequence: 3, .. }),
        "{outcomes:?}"
    );

    let verification = verify_range(db, 1, 0).await.unwrap();
    assert!(verification.ok(), "{verification:?}");
    assert_eq!(verification.checked, 3);
}

#[tokio::test]
async fn ledger_holds_early_events_on_sqlite() {
    let test = sqlite().await;
    holds_early_events(&test.db).await;
}

#[tokio::test]
async fn ledger_holds_early_events_on_postgres() {
    let Some(db) = postgres().await else {
        eprintln!("TRACE_TEST_DATABASE_URL is not set; skipping the PostgreSQL variant");
        return;
    };
    holds_early_events(&db).await;
}

async fn rejects_undecodable_messages(db: &DatabaseConnection) {
    let good = envelope("doc-1", 1, "drafted");
    let poison = Incoming {
        stream_sequence: 1,
        subject: "trace.document.document.drafted".to_owned(),
        raw: Bytes::from_static(b"\xff\xff not protobuf"),
        previous_event_id: None,
    };
    let mut wrong_subject = envelope("doc-1", 2, "revised");
    wrong_subject.subject = "trace.document.document.read".to_owned();
    let outcomes = append_batch(
        db,
        10,
        &[
            poison.clone(),
            incoming(2, &wrong_subject),
            incoming(3, &good),
        ],
    )
    .await
    .unwrap();
    assert!(
        matches!(outcomes[0], Outcome::Rejected { .. }),
        "{outcomes:?}"
    );
    assert!(
        matches!(outcomes[1], Outcome::Rejected { .. }),
        "{outcomes:?}"
    );
    assert!(
        matches!(outcomes[2], Outcome::Appended { sequence: 1, .. }),
        "{outcomes:?}"
    );

    // A redelivered poison message is kept once.
    append_batch(db, 20, &[poison]).await.unwrap();
    let count = db
        .query_one_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT COUNT(*) AS n FROM rejected_messages",
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get::<i64>("", "n")
        .unwrap();
    assert_eq!(count, 2);
}

#[tokio::test]
async fn undecodable_message_is_rejected_on_sqlite() {
    let test = sqlite().await;
    rejects_undecodable_messages(&test.db).await;
}

#[tokio::test]
async fn undecodable_message_is_rejected_on_postgres() {
    let Some(db) = postgres().await else {
        eprintln!("TRACE_TEST_DATABASE_URL is not set; skipping the PostgreSQL variant");
        return;
    };
    rejects_undecodable_messages(&db).await;
}

/// Two appenders on one SQLite file, each with its own connection, appending at the same
/// time: every entry is appended once, the sequences have no gap, each entity keeps its
/// order and the chain verifies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_appenders_share_one_chain() {
    const BATCHES: u64 = 20;
    const PER_BATCH: u64 = 50;
    let test = sqlite().await;
    let writers: Vec<_> = ["doc-a", "doc-b"]
        .into_iter()
        .map(|entity_id| {
            let db = test.db.clone();
            tokio::spawn(async move {
                let mut appender = Appender::new(db);
                for batch in 0..BATCHES {
                    let incoming: Vec<Incoming> = (1..=PER_BATCH)
                        .map(|offset| {
                            let version = batch * PER_BATCH + offset;
                            incoming(version, &envelope(entity_id, version, "read"))
                        })
                        .collect();
                    let outcomes = appender.append(10, &incoming).await.unwrap();
                    assert!(
                        outcomes
                            .iter()
                            .all(|outcome| matches!(outcome, Outcome::Appended { .. })),
                        "{outcomes:?}"
                    );
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap();
    }

    let sequences: Vec<i64> = ledger_entry::Entity::find()
        .select_only()
        .column(ledger_entry::Column::Sequence)
        .order_by_asc(ledger_entry::Column::Sequence)
        .into_tuple()
        .all(&test.db)
        .await
        .unwrap();
    let total = (2 * BATCHES * PER_BATCH) as i64;
    assert_eq!(sequences, (1..=total).collect::<Vec<_>>());
    for entity_id in ["doc-a", "doc-b"] {
        let versions: Vec<i64> = versions_of(&test.db, entity_id)
            .await
            .into_iter()
            .map(|(version, _)| version)
            .collect();
        assert_eq!(
            versions,
            (1..=(BATCHES * PER_BATCH) as i64).collect::<Vec<_>>()
        );
    }
    let verification = verify_range(&test.db, 1, 0).await.unwrap();
    assert!(verification.ok(), "{verification:?}");
    assert_eq!(verification.checked, total as u64);
}

/// An in-memory ledger would vanish at exit and cannot be verified, so appends to one fail.
#[tokio::test]
async fn in_memory_ledger_rejects_appends() {
    let db = trace_runtime::db::connect_and_migrate::<Migrator>("sqlite::memory:")
        .await
        .unwrap();
    let batch = [incoming(1, &envelope("doc-1", 1, "read"))];
    let error = append_batch(&db, 10, &batch).await.unwrap_err().to_string();
    assert!(error.contains("not a SQLite file"), "{error}");
}

#[tokio::test]
async fn edited_row_fails_verification_at_that_row() {
    let test = sqlite().await;
    let batch: Vec<Incoming> = (1..=5)
        .map(|version| incoming(version, &envelope("doc-1", version, "read")))
        .collect();
    append_batch(&test.db, 10, &batch).await.unwrap();
    assert!(verify_range(&test.db, 1, 0).await.unwrap().ok());

    test.db
        .execute_raw(Statement::from_string(
            test.db.get_database_backend(),
            "UPDATE ledger_entries SET actor_id = 'someone.else' WHERE sequence = 3",
        ))
        .await
        .unwrap();
    let verification = verify_range(&test.db, 1, 0).await.unwrap();
    assert_eq!(
        verification.broken.as_ref().map(|(sequence, _)| *sequence),
        Some(3)
    );
    assert_eq!(verification.checked, 2);
}

/// Checks that a removed payload, as retention leaves it, still verifies, and that an altered
/// one fails at its row.
async fn payload_checks(db: &DatabaseConnection) {
    let batch: Vec<Incoming> = (1..=3)
        .map(|version| incoming(version, &envelope("doc-1", version, "read")))
        .collect();
    append_batch(db, 10, &batch).await.unwrap();
    execute(
        db,
        "UPDATE ledger_entries SET payload = NULL WHERE sequence = 1".to_owned(),
    )
    .await;
    let verification = verify_range(db, 1, 0).await.unwrap();
    assert!(verification.ok(), "{verification:?}");
    assert_eq!(verification.checked, 3);

    let altered = match db.get_database_backend() {
        sea_orm::DatabaseBackend::Postgres => "'\\x00'::bytea",
        _ => "X'00'",
    };
    execute(
        db,
        format!("UPDATE ledger_entries SET payload = {altered} WHERE sequence = 2"),
    )
    .await;
    let verification = verify_range(db, 1, 0).await.unwrap();
    let (sequence, reason) = verification.broken.unwrap();
    assert_eq!(sequence, 2);
    assert_eq!(reason, "payload does not match its committed digest");
    assert_eq!(verification.checked, 1);
}

#[tokio::test]
async fn payload_checks_on_sqlite() {
    let test = sqlite().await;
    payload_checks(&test.db).await;
}

#[tokio::test]
async fn payload_checks_on_postgres() {
    let Some(db) = postgres().await else {
        eprintln!("TRACE_TEST_DATABASE_URL is not set; skipping the PostgreSQL variant");
        return;
    };
    payload_checks(&db).await;
}

#[tokio::test]
async fn deleted_row_fails_verification() {
    let test = sqlite().await;
    let batch: Vec<Incoming> = (1..=4)
        .map(|version| incoming(version, &envelope("doc-1", version, "read")))
        .collect();
    append_batch(&test.db, 10, &batch).await.unwrap();
    test.db
        .execute_raw(Statement::from_string(
            test.db.get_database_backend(),
            "DELETE FROM ledger_entries WHERE sequence = 2",
        ))
        .await
        .unwrap();
    let verification = verify_range(&test.db, 1, 0).await.unwrap();
    assert_eq!(verification.broken.map(|(sequence, _)| sequence), Some(2));
}

#[tokio::test]
async fn tampered_merkle_leaf_fails_verification() {
    let test = sqlite().await;
    let batch: Vec<Incoming> = (1..=3)
        .map(|version| incoming(version, &envelope("doc-1", version, "read")))
        .collect();
    append_batch(&test.db, 10, &batch).await.unwrap();
    // The leaf of sequence 2 is leaf 1 of the tree (0-based).
    let leaf = tlog_tiles::tlog::stored_hash_index(0, 1);
    let backend = test.db.get_database_backend();

    test.db
        .execute_raw(Statement::from_string(
            backend,
            format!(
                "UPDATE merkle_hashes SET hash = X'{}' WHERE stored_index = {leaf}",
                "00".repeat(32)
            ),
        ))
        .await
        .unwrap();
    let verification = verify_range(&test.db, 1, 0).await.unwrap();
    let (sequence, reason) = verification.broken.unwrap();
    assert_eq!(sequence, 2);
    assert_eq!(reason, "Merkle leaf hash does not match the entry hash");
    assert_eq!(verification.checked, 1);

    test.db
        .execute_raw(Statement::from_string(
            backend,
            format!("DELETE FROM merkle_hashes WHERE stored_index = {leaf}"),
        ))
        .await
        .unwrap();
    let verification = verify_range(&test.db, 1, 0).await.unwrap();
    let (sequence, reason) = verification.broken.unwrap();
    assert_eq!(sequence, 2);
    assert_eq!(reason, "Merkle leaf hash is missing");
}

/// Appends more entries than verification reads per page, and edits one in a later page.
async fn edit_after_first_page(db: &DatabaseConnection) {
    const ENTRIES: u64 = 5_010;
    let batch: Vec<Incoming> = (1..=ENTRIES)
        .map(|version| incoming(version, &envelope("doc-1", version, "read")))
        .collect();
    for chunk in batch.chunks(500) {
        append_batch(db, 10, chunk).await.unwrap();
    }
    let verification = verify_range(db, 1, 0).await.unwrap();
    assert!(verification.ok(), "{verification:?}");
    assert_eq!(verification.checked, ENTRIES);
    assert_eq!(
        verification.head_hash,
        stored_entry_hash(db, ENTRIES as i64).await
    );

    execute(
        db,
        "UPDATE ledger_entries SET actor_id = 'someone.else' WHERE sequence = 5005".to_owned(),
    )
    .await;
    let verification = verify_range(db, 1, 0).await.unwrap();
    assert_eq!(
        verification.broken.as_ref().map(|(sequence, _)| *sequence),
        Some(5005)
    );
    assert_eq!(verification.checked, 5004);
    assert_eq!(verification.head_hash, stored_entry_hash(db, 5004).await);
}

#[tokio::test]
async fn later_page_edit_on_sqlite() {
    let test = sqlite().await;
    edit_after_first_page(&test.db).await;
}

#[tokio::test]
async fn later_page_edit_on_postgres() {
    let Some(db) = postgres().await else {
        eprintln!("TRACE_TEST_DATABASE_URL is not set; skipping the PostgreSQL variant");
        return;
    };
    edit_after_first_page(&db).await;
}

#[tokio::test]
async fn receipt_query_names_own_archived_events() {
    let test = sqlite().await;
    let drafted = envelope("doc-1", 1, "drafted");
    let revised = envelope("doc-1", 2, "revised");
    let mut meeting = envelope("mtg-1", 1, "planned");
    meeting.source_service = "meeting".to_owned();
    meeting.subject = "trace.meeting.meeting.planned".to_owned();
    meeting.entity_type = "meeting".to_owned();
    append_batch(
        &test.db,
        10,
        &[
            incoming(1, &drafted),
            incoming(2, &revised),
            incoming(3, &meeting),
        ],
    )
    .await
    .unwrap();
    let never_sent = uuid::Uuid::now_v7().to_string();

    let query = ReceiptQuery {
        event_ids: vec![
            revised.event_id.clone(),
            never_sent,
            meeting.event_id.clone(),
            drafted.event_id.clone(),
        ],
    };
    let receipt = archived(&test.db, "document", &query).await.unwrap();
    let mut named: Vec<(String, u64)> = receipt
        .events
        .into_iter()
        .map(|event| (event.event_id, event.sequence))
        .collect();
    named.sort_by_key(|(_, sequence)| *sequence);
    assert_eq!(
        named,
        vec![(drafted.event_id.clone(), 1), (revised.event_id.clone(), 2)],
        "the meeting event and the unknown id must not be named for the document service"
    );

    let receipt = archived(&test.db, "meeting", &query).await.unwrap();
    assert_eq!(receipt.events.len(), 1);
    assert_eq!(receipt.events[0].event_id, meeting.event_id);
    assert_eq!(receipt.events[0].sequence, 3);

    let empty = archived(&test.db, "document", &ReceiptQuery::default())
        .await
        .unwrap();
    assert!(empty.events.is_empty());
}

/// Runs `sql` on `db`, which must succeed.
async fn execute(db: &DatabaseConnection, sql: String) {
    db.execute_raw(Statement::from_string(db.get_database_backend(), sql))
        .await
        .unwrap();
}

/// Reads the stored entry hash of `sequence`.
async fn stored_entry_hash(db: &DatabaseConnection, sequence: i64) -> String {
    ledger_entry::Entity::find_by_id(sequence)
        .one(db)
        .await
        .unwrap()
        .unwrap()
        .entry_hash
}

/// Verifies 30 entries in three chunks of ten, the way `verify_range` splits a long range
/// across cores, and checks that the result names the first failure wherever it sits.
async fn split_verification_first_failure(db: &DatabaseConnection) {
    let batch: Vec<Incoming> = (1..=30)
        .map(|version| incoming(version, &envelope("doc-1", version, "read")))
        .collect();
    for chunk in batch.chunks(7) {
        append_batch(db, 10, chunk).await.unwrap();
    }
    let whole = verify_in_chunks(db, 1, 0, 3, 1).await.unwrap();
    assert!(whole.ok(), "{whole:?}");
    assert_eq!(whole.checked, 30);
    assert_eq!(whole.head_hash, stored_entry_hash(db, 30).await);
    assert_eq!(whole, verify_range(db, 1, 0).await.unwrap());

    let part = verify_in_chunks(db, 5, 9, 3, 1).await.unwrap();
    assert!(part.ok(), "{part:?}");
    assert_eq!(
        (part.from_sequence, part.to_sequence, part.checked),
        (5, 9, 5)
    );
    assert_eq!(part.head_hash, stored_entry_hash(db, 9).await);

    // The last entry of the first chunk, the first of the second, one inside the third.
    for sequence in [10, 11, 25] {
        execute(
            db,
            format!(
                "UPDATE ledger_entries SET actor_id = 'someone.else' WHERE sequence = {sequence}"
            ),
        )
        .await;
        let verification = verify_in_chunks(db, 1, 0, 3, 1).await.unwrap();
        let (broken, reason) = verification.broken.clone().unwrap();
        assert_eq!(broken, sequence);
        assert_eq!(reason, "entry hash does not match the entry's contents");
        assert_eq!(verification.checked, sequence as u64 - 1);
        assert_eq!(
            verification.head_hash,
            stored_entry_hash(db, sequence - 1).await
        );
        execute(
            db,
            format!("UPDATE ledger_entries SET actor_id = 'zhang.min' WHERE sequence = {sequence}"),
        )
        .await;
    }

    // Two edits in different chunks: the earlier one is reported.
    for sequence in [25, 12] {
        execute(
            db,
            format!("UPDATE ledger_entries SET action = 'altered' WHERE sequence = {sequence}"),
        )
        .await;
    }
    let verification = verify_in_chunks(db, 1, 0, 3, 1).await.unwrap();
    assert_eq!(verification.broken.map(|(sequence, _)| sequence), Some(12));
    assert_eq!(verification.checked, 11);
    execute(
        db,
        "UPDATE ledger_entries SET action = 'read' WHERE sequence IN (12, 25)".to_owned(),
    )
    .await;
    assert!(verify_in_chunks(db, 1, 0, 3, 1).await.unwrap().ok());

    // A wrong Merkle leaf in the second chunk.
    let leaf = tlog_tiles::tlog::stored_hash_index(0, 19);
    let zeros = "00".repeat(32);
    let literal = match db.get_database_backend() {
        sea_orm::DatabaseBackend::Postgres => format!("decode('{zeros}', 'hex')"),
        _ => format!("X'{zeros}'"),
    };
    execute(
        db,
        format!("UPDATE merkle_hashes SET hash = {literal} WHERE stored_index = {leaf}"),
    )
    .await;
    let verification = verify_in_chunks(db, 1, 0, 3, 1).await.unwrap();
    let (sequence, reason) = verification.broken.unwrap();
    assert_eq!(sequence, 20);
    assert_eq!(reason, "Merkle leaf hash does not match the entry hash");

    // Deleted rows: the first of the second chunk, and the last of the ledger.
    execute(
        db,
        "DELETE FROM ledger_entries WHERE sequence IN (11, 30)".to_owned(),
    )
    .await;
    let verification = verify_in_chunks(db, 1, 0, 3, 1).await.unwrap();
    let (sequence, reason) = verification.broken.unwrap();
    assert_eq!(sequence, 11);
    assert_eq!(reason, "entry is missing; the next stored sequence is 12");
    assert_eq!(verification.checked, 10);
    let verification = verify_in_chunks(db, 21, 0, 3, 1).await.unwrap();
    let (sequence, reason) = verification.broken.unwrap();
    assert_eq!(sequence, 30);
    assert_eq!(reason, "entry is missing");
    assert_eq!(verification.checked, 9);
}

#[tokio::test]
async fn split_verification_first_failure_on_sqlite() {
    let test = sqlite().await;
    split_verification_first_failure(&test.db).await;
}

#[tokio::test]
async fn split_verification_first_failure_on_postgres() {
    let Some(db) = postgres().await else {
        eprintln!("TRACE_TEST_DATABASE_URL is not set; skipping the PostgreSQL variant");
        return;
    };
    split_verification_first_failure(&db).await;
}

#[tokio::test]
async fn retyped_sqlite_values_fail_at_their_row() {
    // SQLite stores any type in any column, so an edit can turn a blob into text or text into
    // a blob. Verification must name the row instead of failing to read it.
    async fn five_entries() -> TestDb {
        let test = sqlite().await;
        let batch: Vec<Incoming> = (1..=5)
            .map(|version| incoming(version, &envelope("doc-1", version, "read")))
            .collect();
        append_batch(&test.db, 10, &batch).await.unwrap();
        test
    }

    let cases = [
        (
            "UPDATE ledger_entries SET payload = 'text' WHERE sequence = 2",
            2,
            "payload does not match its committed digest",
        ),
        (
            "UPDATE ledger_entries SET actor_id = X'41' WHERE sequence = 3",
            3,
            "entry hash does not match the entry's contents",
        ),
        (
            "UPDATE ledger_entries SET actor_id = X'FF' WHERE sequence = 3",
            3,
            "entry cannot be read",
        ),
    ];
    for (edit, sequence, reason) in cases {
        let test = five_entries().await;
        execute(&test.db, edit.to_owned()).await;
        let verification = verify_range(&test.db, 1, 0).await.unwrap();
        let (broken, found) = verification.broken.unwrap();
        assert_eq!(broken, sequence, "{edit}");
        assert!(found.starts_with(reason), "{edit}: {found}");
        assert_eq!(verification.checked, sequence as u64 - 1, "{edit}");
    }

    let test = five_entries().await;
    let leaf = tlog_tiles::tlog::stored_hash_index(0, 0);
    execute(
        &test.db,
        format!("UPDATE merkle_hashes SET hash = 'text' WHERE stored_index = {leaf}"),
    )
    .await;
    let verification = verify_range(&test.db, 1, 0).await.unwrap();
    let (sequence, reason) = verification.broken.unwrap();
    assert_eq!(sequence, 1);
    assert_eq!(reason, "Merkle leaf hash does not match the entry hash");
}
