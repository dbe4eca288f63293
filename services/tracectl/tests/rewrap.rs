//! `tracectl rewrap` against a real blob folder: values sealed with an old key move to the
//! new key, still open to the same plaintext, and keep their content ciphertext.

use std::process::Command;

use trace_runtime::blob::BlobStore;
use trace_runtime::seal::Keyring;

const OLD: [u8; 32] = [0x11; 32];
const NEW: [u8; 32] = [0x22; 32];

fn write_key(folder: &std::path::Path, name: &str, key: [u8; 32]) -> String {
    let path = folder.join(name);
    std::fs::write(&path, hex::encode(key)).unwrap();
    path.display().to_string()
}

#[tokio::test]
async fn rewrap_moves_sealed_values_to_the_new_key() {
    let folder = tempfile::tempdir().unwrap();
    let url = format!("file://{}", folder.path().join("blobs").display());
    let store = BlobStore::open(&url).unwrap();
    let old = Keyring::from_keys([("k2025".to_owned(), OLD)], "k2025");
    let records = [
        ("0190a000-0000-7000-8000-000000000001", "第一份 contract"),
        ("0190a000-0000-7000-8000-000000000002", "second contract"),
    ];
    for (record_id, text) in records {
        let sha = trace_runtime::blob::sha256_hex(text.as_bytes());
        store
            .put_sealed(record_id, &sha, old.seal(record_id, text.as_bytes()))
            .await
            .unwrap();
    }
    let old_key = write_key(folder.path(), "k2025.hex", OLD);
    let new_key = write_key(folder.path(), "k2026.hex", NEW);

    let run = |extra: &[&str]| {
        let output = Command::new(env!("CARGO_BIN_EXE_tracectl"))
            .args(["rewrap", "--blob-store", &url])
            .args(["--key", &format!("k2025={old_key}")])
            .args(["--key", &format!("k2026={new_key}")])
            .args(["--active", "k2026"])
            .args(extra)
            .output()
            .expect("run tracectl");
        assert!(output.status.success(), "{output:?}");
        String::from_utf8(output.stdout).unwrap()
    };

    let dry = run(&["--dry-run"]);
    assert_eq!(
        dry.trim(),
        "would rewrap 2 of 2 sealed objects and 0 of 0 sealed event payloads to key k2026; 0 already used it"
    );
    let listed = store.list_sealed().await.unwrap();
    let (record_id, sha) = &listed[0];
    let before = store.get_sealed(record_id, sha).await.unwrap();
    assert_eq!(Keyring::key_id_of(&before).unwrap(), "k2025");

    let done = run(&[]);
    assert_eq!(
        done.trim(),
        "rewrapped 2 of 2 sealed objects and 0 of 0 sealed event payloads to key k2026; 0 already used it"
    );
    let only_new = Keyring::from_keys([("k2026".to_owned(), NEW)], "k2026");
    for (record_id, text) in records {
        let sha = trace_runtime::blob::sha256_hex(text.as_bytes());
        let sealed = store.get_sealed(record_id, &sha).await.unwrap();
        assert_eq!(Keyring::key_id_of(&sealed).unwrap(), "k2026");
        assert_eq!(only_new.open(record_id, &sealed).unwrap(), text.as_bytes());
    }
    // The content nonce and ciphertext are kept byte for byte.
    let after = store.get_sealed(record_id, sha).await.unwrap();
    let content_bytes = 12 + text_len(&listed, &records) + 16;
    assert_eq!(
        after[after.len() - content_bytes..],
        before[before.len() - content_bytes..]
    );

    let again = run(&[]);
    assert_eq!(
        again.trim(),
        "rewrapped 0 of 2 sealed objects and 0 of 0 sealed event payloads to key k2026; 2 already used it"
    );
}

/// Returns the plaintext length of the first listed record.
fn text_len(listed: &[(String, String)], records: &[(&str, &str); 2]) -> usize {
    let (record_id, _) = &listed[0];
    records
        .iter()
        .find(|(id, _)| id == record_id)
        .map(|(_, text)| text.len())
        .unwrap()
}
