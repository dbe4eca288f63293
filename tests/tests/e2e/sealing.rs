//! Sealed event payloads: a confidential record's event reaches the outbox, the broker and
//! the archive only as ciphertext, opens for the callers allowed to read it, and a key
//! rotation with `tracectl rewrap` keeps every archived hash.

use std::path::{Path, PathBuf};
use std::time::Duration;

use sea_orm::{ConnectionTrait, Statement};
use trace_proto::archive::v1::{Entry, GetEntryRequest, VerifyChainRequest, get_entry_request};
use trace_proto::common::v1::Confidentiality;
use trace_proto::document::v1::CreateDraftRequest;
use trace_runtime::auth::{Claims, attach_token, mint_token};
use trace_runtime::config::AuthSettings;
use trace_runtime::context::Clearance;
use trace_runtime::seal::EncryptionSettings;
use trace_tests::nats::NatsServer;
use trace_tests::scan::files_containing;

use crate::stack::*;

const SEALED_MARKER: &str = "sealed-title-4b1e 并购条款";
const PLAIN_MARKER: &str = "plain-title-90c2";

/// Writes a 32-byte key file and returns its path.
fn write_key(dir: &Path, name: &str, byte: u8) -> String {
    let path = dir.join(format!("{name}.hex"));
    std::fs::write(&path, hex::encode([byte; 32])).expect("write a key file");
    path.display().to_string()
}

fn encryption(keys: &[(&str, &str)], active: &str) -> EncryptionSettings {
    EncryptionSettings {
        key_files: keys
            .iter()
            .map(|(id, path)| ((*id).to_owned(), (*path).to_owned()))
            .collect(),
        active_key_id: Some(active.to_owned()),
        allow_development_key: false,
    }
}

async fn create_draft(address: &str, title: &str, level: Confidentiality) -> String {
    let mut client = document_client(address).await;
    client
        .create_draft(DRAFTER.request(CreateDraftRequest {
            title: title.to_owned(),
            category: "PLAN".to_owned(),
            department: "admin-office".to_owned(),
            confidentiality: level as i32,
            content: b"body".to_vec(),
            media_type: "text/plain".to_owned(),
        }))
        .await
        .expect("create a draft")
        .into_inner()
        .event_id
}

/// Reads one entry as `person`, with `clearance` in the token when given.
async fn entry_as(
    archive: &str,
    person: Person,
    clearance: Option<Clearance>,
    event_id: &str,
) -> Entry {
    let claims = Claims {
        sub: person.user_id.to_owned(),
        name: String::new(),
        department: person.department.to_owned(),
        roles: vec![person.role.to_owned()],
        clearance,
    };
    let token = mint_token(&AuthSettings::default(), &claims, Duration::from_secs(600))
        .expect("mint a token");
    let mut request = tonic::Request::new(GetEntryRequest {
        key: Some(get_entry_request::Key::EventId(event_id.to_owned())),
    });
    attach_token(&mut request, &token).expect("attach the token");
    archive_client(archive)
        .await
        .get_entry(request)
        .await
        .expect("get the entry")
        .into_inner()
        .entry
        .expect("an entry")
}

async fn assert_chain_verifies(archive: &str, size: u64) {
    let verification = archive_client(archive)
        .await
        .verify_chain(AUDITOR.request(VerifyChainRequest::default()))
        .await
        .expect("verify the chain")
        .into_inner();
    assert!(verification.ok, "{}", verification.reason);
    assert_eq!(verification.checked, size);
}

/// Reads every outbox envelope of the SQLite database at `path`.
async fn outbox_envelopes(path: &Path) -> Vec<Vec<u8>> {
    let db = trace_runtime::db::connect(&format!("sqlite://{}?mode=ro", path.display()))
        .await
        .expect("open the outbox database");
    let rows = db
        .query_all_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT envelope FROM outbox",
        ))
        .await
        .expect("read the outbox");
    rows.iter()
        .map(|row| row.try_get_by_index(0).expect("envelope bytes"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confidential_payloads_are_sealed_and_rewrap_keeps_hashes() {
    let nats = NatsServer::start().expect("start nats-server");
    let dir = tempfile::tempdir().unwrap();
    let keys = tempfile::tempdir().unwrap();
    let old_key = write_key(keys.path(), "k2025", 0x31);
    let new_key = write_key(keys.path(), "k2026", 0x32);
    let old_only = encryption(&[("k2025", &old_key)], "k2025");

    let archive_settings = old_only.clone();
    let archive = start_archive_with(&nats.url(), dir.path(), move |config| {
        config.service.encryption = archive_settings;
    })
    .await;
    let document_settings = old_only.clone();
    let document = start_document_with(&nats.url(), dir.path(), move |config| {
        config.service.encryption = document_settings;
    })
    .await;

    let sealed_event =
        create_draft(&document.address, SEALED_MARKER, Confidentiality::Secret).await;
    let plain_event =
        create_draft(&document.address, PLAIN_MARKER, Confidentiality::Internal).await;
    let produced = [sealed_event.clone(), plain_event.clone()];
    wait_until_archived(&archive.address, &produced, Duration::from_secs(30)).await;

    // For the auditor without a clearance claim, the entry shows a sealed payload, not its text.
    let hidden = entry_as(&archive.address, AUDITOR, None, &sealed_event).await;
    let hidden_json: serde_json::Value =
        serde_json::from_str(&hidden.payload_json).expect("payload JSON");
    assert_eq!(hidden_json["sealed"], true);
    assert!(!hidden.payload_json.contains(SEALED_MARKER));
    assert_eq!(hidden.payload_type, "trace.document.v1.DocumentDrafted");
    // With a secret clearance, and for the drafter who caused it, the payload opens.
    let cleared = entry_as(
        &archive.address,
        AUDITOR,
        Some(Clearance::Secret),
        &sealed_event,
    )
    .await;
    assert!(
        cleared.payload_json.contains(SEALED_MARKER),
        "{}",
        cleared.payload_json
    );
    let below = entry_as(
        &archive.address,
        AUDITOR,
        Some(Clearance::Confidential),
        &sealed_event,
    )
    .await;
    assert!(!below.payload_json.contains(SEALED_MARKER));
    let own = entry_as(&archive.address, DRAFTER, None, &sealed_event).await;
    assert!(own.payload_json.contains(SEALED_MARKER));
    let plain = entry_as(&archive.address, AUDITOR, None, &plain_event).await;
    assert!(plain.payload_json.contains(PLAIN_MARKER));

    document.stop().await;
    archive.stop().await;

    // Neither the archive's files nor the broker's store contain the sealed title. The
    // internal title is found, which shows that the scans read the right files.
    let archive_files: Vec<PathBuf> = files_containing(dir.path(), SEALED_MARKER.as_bytes())
        .expect("scan the data folder")
        .into_iter()
        .filter(|path| !path.to_string_lossy().contains("document.db"))
        .collect();
    assert_eq!(archive_files, Vec::<PathBuf>::new());
    assert_eq!(
        files_containing(nats.store_dir(), SEALED_MARKER.as_bytes()).expect("scan the store"),
        Vec::<PathBuf>::new()
    );
    assert!(
        !files_containing(nats.store_dir(), PLAIN_MARKER.as_bytes())
            .expect("scan the store")
            .is_empty()
    );
    assert!(
        files_containing(dir.path(), PLAIN_MARKER.as_bytes())
            .expect("scan the data folder")
            .iter()
            .any(|path| path.to_string_lossy().contains("archive.db"))
    );
    // The document's outbox contains the event sealed too.
    let envelopes = outbox_envelopes(&dir.path().join("document.db")).await;
    assert_eq!(envelopes.len(), 2);
    let sealed_rows = envelopes
        .iter()
        .filter(|bytes| {
            bytes
                .windows(SEALED_MARKER.len())
                .any(|window| window == SEALED_MARKER.as_bytes())
        })
        .count();
    assert_eq!(sealed_rows, 0);

    // Rotate: rewrap the archive's ledger and the document's outbox to the new key.
    let database = |name: &str| format!("sqlite://{}?mode=rw", dir.path().join(name).display());
    let rewrap = std::process::Command::new(binary("tracectl"))
        .args(["rewrap", "--database", &database("archive.db")])
        .args(["--database", &database("document.db")])
        .args(["--key", &format!("k2025={old_key}")])
        .args(["--key", &format!("k2026={new_key}")])
        .args(["--active", "k2026", "--json"])
        .output()
        .expect("run tracectl rewrap");
    assert!(rewrap.status.success(), "{rewrap:?}");
    let report: serde_json::Value = serde_json::from_slice(&rewrap.stdout).expect("JSON report");
    assert_eq!(report["counts"]["payloads_sealed"], 2);
    assert_eq!(report["counts"]["payloads_rewrapped"], 2);

    // The archive now holds only the new key, and the entry opens with it unchanged.
    let new_only = encryption(&[("k2026", &new_key)], "k2026");
    let archive = start_archive_with(&nats.url(), dir.path(), move |config| {
        config.service.encryption = new_only;
    })
    .await;
    let after = entry_as(
        &archive.address,
        AUDITOR,
        Some(Clearance::Secret),
        &sealed_event,
    )
    .await;
    assert!(after.payload_json.contains(SEALED_MARKER));
    assert_eq!(after.entry_hash, cleared.entry_hash);
    assert_eq!(after.payload_sha256, cleared.payload_sha256);
    assert_chain_verifies(&archive.address, 2).await;
    archive.stop().await;
}
