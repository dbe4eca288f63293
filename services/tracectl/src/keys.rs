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
use trace_runtime::sealed_text;

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

/// Type of a primary key column of a table with sealed text.
#[derive(Debug, Clone, Copy)]
enum KeyType {
    Text,
    Integer,
}

/// Storage format of a sealed text column.
#[derive(Debug, Clone, Copy)]
enum TextEncoding {
    /// `trace_runtime::sealed_text`: the prefix `trseal1:` and the base64 of a sealed value
    /// bound to `"{table}.{column}:{key}"`, in a text column that may also contain plaintext.
    PrefixedBase64,
}

/// A table of a service whose free-text columns are sealed for confidential records, with
/// its primary key columns in key order. The key text of a row, which each value is bound
/// to, is the key columns joined by `/`.
struct SealedTextTable {
    table: &'static str,
    key: &'static [(&'static str, KeyType)],
    columns: &'static [&'static str],
    encoding: TextEncoding,
}

const ID_KEY: &[(&str, KeyType)] = &[("id", KeyType::Text)];

/// Builds a [`SealedTextTable`] entry in the prefixed base64 encoding.
const fn sealed_table(
    table: &'static str,
    key: &'static [(&'static str, KeyType)],
    columns: &'static [&'static str],
) -> SealedTextTable {
    SealedTextTable {
        table,
        key,
        columns,
        encoding: TextEncoding::PrefixedBase64,
    }
}

/// Sealed text columns of the meeting, project, worklog, document and inspection services. The
/// `access_requests` entry covers the table of every service that has one. Each entry
/// must match the `sealed_text_columns!` declaration in the service's `sealing` module.
const SEALED_TEXT_TABLES: &[SealedTextTable] = &[
    // Meeting service.
    sealed_table("meetings", ID_KEY, &["cancel_reason"]),
    sealed_table(
        "agenda_items",
        &[("meeting_id", KeyType::Text), ("number", KeyType::Integer)],
        &["title"],
    ),
    sealed_table(
        "plan_revisions",
        &[
            ("meeting_id", KeyType::Text),
            ("revision", KeyType::Integer),
        ],
        &["change_summary"],
    ),
    sealed_table("materials", ID_KEY, &["review_opinion"]),
    sealed_table(
        "minutes",
        &[("meeting_id", KeyType::Text), ("version", KeyType::Integer)],
        &["discussions", "change_summary"],
    ),
    sealed_table(
        "minutes_confirmations",
        &[
            ("meeting_id", KeyType::Text),
            ("minutes_version", KeyType::Integer),
            ("participant_id", KeyType::Text),
        ],
        &["comment"],
    ),
    sealed_table("resolutions", ID_KEY, &["decision_text"]),
    sealed_table(
        "resolution_updates",
        &[
            ("resolution_id", KeyType::Text),
            ("number", KeyType::Integer),
        ],
        &["progress_note", "problems", "solutions"],
    ),
    sealed_table("delay_requests", ID_KEY, &["reason", "opinion"]),
    // Worklog service reports; `communications` follows below.
    sealed_table(
        "report_rounds",
        ID_KEY,
        &[
            "change_summary",
            "work_done",
            "results",
            "problems",
            "solutions",
            "next_plan",
            "completion",
            "causes",
            "measures",
            "goal_attainment",
            "teamwork",
            "improvements",
            "cases",
        ],
    ),
    sealed_table("report_figures", ID_KEY, &["name", "value", "unit"]),
    sealed_table("report_comments", ID_KEY, &["text"]),
    sealed_table("report_decisions", ID_KEY, &["opinion"]),
    // Project service.
    sealed_table(
        "applications",
        &[("project_id", KeyType::Text), ("round", KeyType::Integer)],
        &["background", "goals", "resource_needs", "expected_results"],
    ),
    sealed_table(
        "application_tasks",
        &[
            ("project_id", KeyType::Text),
            ("round", KeyType::Integer),
            ("position", KeyType::Integer),
        ],
        &["description"],
    ),
    sealed_table(
        "approvals",
        &[
            ("project_id", KeyType::Text),
            ("round", KeyType::Integer),
            ("position", KeyType::Integer),
        ],
        &["opinion"],
    ),
    sealed_table(
        "decisions",
        ID_KEY,
        &["process", "reason", "content", "approval_opinion"],
    ),
    sealed_table("document_updates", ID_KEY, &["summary"]),
    sealed_table(
        "progress_reports",
        ID_KEY,
        &["progress", "problems", "solutions"],
    ),
    sealed_table(
        "summaries",
        &[("project_id", KeyType::Text)],
        &["lessons", "results", "shortcomings"],
    ),
    sealed_table(
        "acceptances",
        ID_KEY,
        &[
            "results_report",
            "user_feedback",
            "group_opinion",
            "open_issues",
        ],
    ),
    sealed_table(
        "acceptance_members",
        &[
            ("acceptance_id", KeyType::Text),
            ("position", KeyType::Integer),
        ],
        &["opinion", "open_issues"],
    ),
    // Worklog service.
    sealed_table("communications", ID_KEY, &["content", "outcome", "notice"]),
    // Document service.
    sealed_table("reviews", ID_KEY, &["opinion"]),
    sealed_table(
        "revisions",
        &[
            ("document_id", KeyType::Text),
            ("revision", KeyType::Integer),
        ],
        &["change_summary"],
    ),
    sealed_table(
        "borrowings",
        ID_KEY,
        &[
            "reason",
            "approver_opinion",
            "condition_note",
            "loss_description",
            "handling_result",
        ],
    ),
    sealed_table("access_requests", ID_KEY, &["purpose", "opinion"]),
    // Inspection service.
    sealed_table(
        "findings",
        ID_KEY,
        &["description", "measures", "result", "verification_opinion"],
    ),
    sealed_table(
        "inspections",
        ID_KEY,
        &["findings_summary", "suggestions", "review_opinion"],
    ),
];

/// Counts of one rewrap run.
#[derive(Debug, Default, serde::Serialize)]
struct Counts {
    sealed: usize,
    rewrapped: usize,
    payloads_sealed: usize,
    payloads_rewrapped: usize,
    already_active: usize,
    text_values_sealed: usize,
    text_values_rewrapped: usize,
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
        for table in SEALED_TEXT_TABLES {
            if !table_exists(&db, table.table).await? {
                continue;
            }
            for &column in table.columns {
                rewrap_text_column(&db, table, column, &keyring, request.dry_run, &mut counts)
                    .await
                    .with_context(|| format!("failed to rewrap {}.{column}", table.table))?;
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
        if !request.databases.is_empty() {
            out!(
                "{verb} {} of {} sealed text values to key {active}",
                counts.text_values_rewrapped,
                counts.text_values_sealed
            );
        }
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

/// Rewraps the sealed values of one text column, a page of rows per transaction, in primary
/// key order. A rewrapped value keeps its prefix, so the rows of later pages stay in place.
/// Each rewrapped value must open for its row before it replaces the old one.
async fn rewrap_text_column(
    db: &DatabaseConnection,
    table: &SealedTextTable,
    column: &'static str,
    keyring: &Keyring,
    dry_run: bool,
    counts: &mut Counts,
) -> anyhow::Result<()> {
    let TextEncoding::PrefixedBase64 = table.encoding;
    let backend = db.get_database_backend();
    let placeholder = |index: usize| match backend {
        DatabaseBackend::Postgres => format!("${index}"),
        _ => "?".to_owned(),
    };
    let name = table.table;
    let selected_keys: Vec<String> = table
        .key
        .iter()
        .map(|(key, key_type)| match key_type {
            KeyType::Text => key.to_string(),
            KeyType::Integer => format!("CAST({key} AS BIGINT)"),
        })
        .collect();
    let order: Vec<&str> = table.key.iter().map(|(key, _)| *key).collect();
    let select = format!(
        "SELECT {}, {column} FROM {name} WHERE {column} LIKE {} ORDER BY {} LIMIT {DATABASE_PAGE_ROWS} OFFSET {}",
        selected_keys.join(", "),
        placeholder(1),
        order.join(", "),
        placeholder(2),
    );
    let conditions: Vec<String> = table
        .key
        .iter()
        .enumerate()
        .map(|(index, (key, _))| format!("{key} = {}", placeholder(index + 2)))
        .collect();
    let update = format!(
        "UPDATE {name} SET {column} = {} WHERE {}",
        placeholder(1),
        conditions.join(" AND ")
    );
    let text_column = sealed_text::TextColumn::new(name, column);
    let pattern = format!("{}%", sealed_text::PREFIX);

    let mut offset: i64 = 0;
    loop {
        let transaction = db.begin().await?;
        let rows = transaction
            .query_all_raw(Statement::from_sql_and_values(
                backend,
                &select,
                [pattern.clone().into(), offset.into()],
            ))
            .await?;
        if rows.is_empty() {
            return Ok(());
        }
        offset += i64::try_from(rows.len())?;
        for row in &rows {
            let mut key_values: Vec<sea_orm::Value> = Vec::with_capacity(table.key.len());
            let mut key_parts: Vec<String> = Vec::with_capacity(table.key.len());
            for (index, (_, key_type)) in table.key.iter().enumerate() {
                match key_type {
                    KeyType::Text => {
                        let value: String = row.try_get_by_index(index)?;
                        key_parts.push(value.clone());
                        key_values.push(value.into());
                    }
                    KeyType::Integer => {
                        let value: i64 = row.try_get_by_index(index)?;
                        key_parts.push(value.to_string());
                        key_values.push(value.into());
                    }
                }
            }
            let key = key_parts.join("/");
            let stored: String = row.try_get_by_index(table.key.len())?;
            counts.text_values_sealed += 1;
            let Some(rewrapped) = sealed_text::rewrap_text(keyring, &stored)
                .with_context(|| format!("{name}.{column} of row {key}"))?
            else {
                counts.already_active += 1;
                continue;
            };
            sealed_text::open_text(keyring, text_column, &key, rewrapped.clone()).with_context(
                || format!("the rewrapped value of {name}.{column} of row {key} does not open"),
            )?;
            if !dry_run {
                let mut values: Vec<sea_orm::Value> = vec![rewrapped.into()];
                values.extend(key_values);
                transaction
                    .execute_raw(Statement::from_sql_and_values(backend, &update, values))
                    .await?;
            }
            counts.text_values_rewrapped += 1;
        }
        transaction.commit().await?;
    }
}
