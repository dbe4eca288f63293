//! `rewrap`: moves sealed content to the active key-encryption key after a rotation. It
//! reads the blob store directly, with no service running, re-encrypts only each value's data
//! key, and leaves the content ciphertext and every digest the archive committed unchanged.

use std::collections::BTreeMap;

use anyhow::Context;
use trace_runtime::blob::BlobStore;
use trace_runtime::seal::{EncryptionSettings, Keyring};

/// Counts of one rewrap run.
#[derive(Debug, Default, serde::Serialize)]
struct Counts {
    sealed: usize,
    rewrapped: usize,
    already_active: usize,
}

/// Parses `ID=PATH` key arguments.
fn key_files(keys: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    keys.iter()
        .map(|key| {
            let (id, path) = key
                .split_once('=')
                .with_context(|| format!("invalid --key {key:?}: expected ID=PATH"))?;
            Ok((id.to_owned(), path.to_owned()))
        })
        .collect()
}

/// Rewraps every sealed object in the blob store at `url` to the key `active`. With
/// `dry_run`, only counts what would change.
pub async fn rewrap(
    url: &str,
    keys: &[String],
    active: &str,
    dry_run: bool,
    json: bool,
) -> anyhow::Result<bool> {
    let settings = EncryptionSettings {
        key_files: key_files(keys)?,
        active_key_id: Some(active.to_owned()),
        allow_development_key: false,
    };
    let keyring = Keyring::load(&settings)?;
    let store = BlobStore::open(url)?;

    let mut counts = Counts::default();
    for (record_id, sha256) in store.list_sealed().await? {
        counts.sealed += 1;
        let sealed = store.get_sealed(&record_id, &sha256).await?;
        let rewrapped = keyring
            .rewrap(&sealed)
            .with_context(|| format!("failed to rewrap sealed/{record_id}/{sha256}"))?;
        match rewrapped {
            None => counts.already_active += 1,
            Some(rewrapped) => {
                // The content must still open after the rewrap, before the old value goes.
                keyring.open(&record_id, &rewrapped).with_context(|| {
                    format!("rewrapped sealed/{record_id}/{sha256} does not open")
                })?;
                if !dry_run {
                    store.put_sealed(&record_id, &sha256, rewrapped).await?;
                }
                counts.rewrapped += 1;
            }
        }
    }

    if json {
        out!(
            "{}",
            serde_json::json!({ "dry_run": dry_run, "active_key_id": active, "counts": counts })
        );
    } else {
        let verb = if dry_run { "would rewrap" } else { "rewrapped" };
        out!(
            "{verb} {} of {} sealed objects to key {active}; {} already used it",
            counts.rewrapped,
            counts.sealed,
            counts.already_active
        );
    }
    Ok(true)
}
