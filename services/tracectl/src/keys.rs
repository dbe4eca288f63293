//! `rewrap`: moves sealed content to the active key-encryption key after a rotation. It
//! reads blob stores and databases directly, with no service running, re-encrypts only each
//! value's data key, and leaves the content ciphertext and every digest the archive committed
//! unchanged.

use std::collections::BTreeMap;

use anyhow::Context;
use prost::Message;
use sea_orm::{ConnectionTrait, DatabaseBackend, DatabaseConnection, Statement, TransactionTrait};
use trace_proto::event::v1::Envelope;
use trace_runtime::blob::BlobStore;
use trace_runtime::event::{open_payload, rewrap_payload};
use trace_runtime::seal::{EncryptionSettings, Keyring};

/// Rows read and written per transaction when rewrapping a database.
const DATABASE_PAGE_ROWS: i64 = 500;

/// A column of encoded envelopes whose sealed payloads a rewrap moves, with the table's
/// integer key.
struct EnvelopeColumn {
    table: &'static str,
    key: &'static str,
    column: &'static str,
}

/// Envelope columns: the archive's ledger and the outbox of every service.
const ENVELOPE_COLUMNS: &[EnvelopeColumn] = &[
    EnvelopeColumn {
        table: "ledger_entries",
        key: "sequence",
        column: "payload",
    },
    EnvelopeColumn {
        table: "outbox",
        key: "seq",
        column: "envelope",
    },
];

/// Counts of one rewrap run.
#[derive(Debug, Default, serde::Serialize)]
struct Counts {
    sealed: usize,
    rewrapped: usize,
    payloads_sealed: usize,
    payloads_rewrapped: usize,
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

/// Locations to rewrap, keys and mode of one `tracectl rewrap` run.
#[derive(Debug)]
pub struct RewrapRequest<'a> {
    pub blob_stores: &'a [String],
    pub databases: &'a [String],
    pub keys: &'a [String],
    pub active: &'a str,
    pub dry_run: bool,
}

/// Rewraps every sealed object in the blob stores and every sealed event payload in the
/// databases to the key `active`. With `dry_run`, only counts what would change.
pub async fn rewrap(request: RewrapRequest<'_>, json: bool) -> anyhow::Result<bool> {
    anyhow::ensure!(
        !request.blob_stores.is_empty() || !request.databases.is_empty(),
        "nothing to rewrap: give --blob-store or --database"
    );
    let settings = EncryptionSettings {
        key_files: key_files(request.keys)?,
        active_key_id: Some(request.active.to_owned()),
        allow_development_key: false,
    };
    let keyring = Keyring::load(&settings)?;

    let mut counts = Counts::default();
    for url in request.blob_stores {
        rewrap_blobs(url, &keyring, request.dry_run, &mut counts).await?;
    }
    for url in request.databases {
        let db = trace_runtime::db::connect(url).await?;
        for column in ENVELOPE_COLUMNS {
            if table_exists(&db, column.table).await? {
                rewrap_envelopes(&db, column, &keyring, request.dry_run, &mut counts)
                    .await
                    .with_context(|| {
                        format!("failed to rewrap {}.{}", column.table, column.column)
                    })?;
            }
        }
    }

    let active = request.active;
    let dry_run = request.dry_run;
    if json {
        out!(
            "{}",
            serde_json::json!({ "dry_run": dry_run, "active_key_id": active, "counts": counts })
        );
    } else {
        let verb = if dry_run { "would rewrap" } else { "rewrapped" };
        out!(
            "{verb} {} of {} sealed objects and {} of {} sealed event payloads to key {active}; {} already used it",
            counts.rewrapped,
            counts.sealed,
            counts.payloads_rewrapped,
            counts.payloads_sealed,
            counts.already_active
        );
    }
    Ok(true)
}

async fn rewrap_blobs(
    url: &str,
    keyring: &Keyring,
    dry_run: bool,
    counts: &mut Counts,
) -> anyhow::Result<()> {
    let store = BlobStore::open(url)?;
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
    Ok(())
}

async fn table_exists(db: &DatabaseConnection, table: &str) -> anyhow::Result<bool> {
    let backend = db.get_database_backend();
    let sql = match backend {
        DatabaseBackend::Postgres => {
            "SELECT 1 FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = $1"
        }
        _ => "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
    };
    let row = db
        .query_one_raw(Statement::from_sql_and_values(backend, sql, [table.into()]))
        .await?;
    Ok(row.is_some())
}

/// Rewraps the sealed payloads in one envelope column, a page of rows per transaction. Each
/// rewrapped envelope must open before it replaces the old one.
async fn rewrap_envelopes(
    db: &DatabaseConnection,
    column: &EnvelopeColumn,
    keyring: &Keyring,
    dry_run: bool,
    counts: &mut Counts,
) -> anyhow::Result<()> {
    let backend = db.get_database_backend();
    let (first, second) = match backend {
        DatabaseBackend::Postgres => ("$1", "$2"),
        _ => ("?", "?"),
    };
    let EnvelopeColumn { table, key, column } = column;
    let select = format!(
        "SELECT {key}, {column} FROM {table} WHERE {key} > {first} AND {column} IS NOT NULL \
         ORDER BY {key} LIMIT {DATABASE_PAGE_ROWS}"
    );
    let update = format!("UPDATE {table} SET {column} = {first} WHERE {key} = {second}");
    let mut after = i64::MIN;
    loop {
        let transaction = db.begin().await?;
        let rows = transaction
            .query_all_raw(Statement::from_sql_and_values(
                backend,
                &select,
                [after.into()],
            ))
            .await?;
        let Some(last) = rows.last() else {
            return Ok(());
        };
        after = last.try_get_by_index(0)?;
        for row in &rows {
            let row_key: i64 = row.try_get_by_index(0)?;
            let raw: Vec<u8> = row.try_get_by_index(1)?;
            let Ok(envelope) = Envelope::decode(raw.as_slice()) else {
                continue;
            };
            if envelope.sealed_payload.is_none() {
                continue;
            }
            counts.payloads_sealed += 1;
            let Some(rewrapped) = rewrap_payload(keyring, &raw)
                .with_context(|| format!("{table} row {row_key} (event {})", envelope.event_id))?
            else {
                counts.already_active += 1;
                continue;
            };
            let reopened = Envelope::decode(rewrapped.as_slice())?;
            open_payload(keyring, &reopened).with_context(|| {
                format!("the rewrapped payload of {table} row {row_key} does not open")
            })?;
            if !dry_run {
                transaction
                    .execute_raw(Statement::from_sql_and_values(
                        backend,
                        &update,
                        [rewrapped.into(), row_key.into()],
                    ))
                    .await?;
            }
            counts.payloads_rewrapped += 1;
        }
        transaction.commit().await?;
    }
}
