//! Evidence packages for auditors. `export` writes the entries matching a query with
//! everything needed to check them without a server: the records as JSON Lines (raw, every
//! hashed column) and as CSV (for spreadsheets, with formula-like cells neutralised), an
//! inclusion proof per record, and the signed checkpoint that every proof is checked against.
//! The proofs and the checkpoint always come from the same tree size. `verify-export`
//! checks a package offline.

use std::path::Path;

use anyhow::Context;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tlog_tiles::tlog::{self, Hash};
use trace_archive::backup::BackupRow;
use trace_proto::archive::v1::{
    CreateCheckpointRequest, Entry, GetInclusionProofRequest, QueryEntriesRequest,
};
use trace_proto::common::v1::PageRequest;

use crate::Identity;
use crate::archive::connect;

/// Query whose entries an evidence package holds.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ExportQuery {
    pub entity_type: String,
    pub entity_id: String,
    pub department: String,
    /// RFC 3339 inclusive lower bound on the producer's time.
    pub from: Option<String>,
    /// RFC 3339 exclusive upper bound on the producer's time.
    pub to: Option<String>,
}

/// One record's inclusion proof.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ProofLine {
    sequence: i64,
    tree_size: u64,
    proof: Vec<String>,
}

/// The package's table of contents.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct PackageManifest {
    query: ExportQuery,
    records: u64,
    tree_size: u64,
    verifier_key: String,
    /// SHA-256 of each file of the package, lowercase hex.
    files: Vec<(String, String)>,
}

fn timestamp(
    field: &str,
    value: &Option<String>,
) -> anyhow::Result<Option<prost_types::Timestamp>> {
    let Some(text) = value else { return Ok(None) };
    let instant = chrono::DateTime::parse_from_rfc3339(text)
        .with_context(|| format!("--{field} {text:?} is not an RFC 3339 time"))?;
    Ok(Some(prost_types::Timestamp {
        seconds: instant.timestamp(),
        nanos: instant.timestamp_subsec_nanos() as i32,
    }))
}

/// Converts an archive entry back to every hashed column.
fn to_row(entry: &Entry) -> anyhow::Result<BackupRow> {
    let micros = |ts: &Option<prost_types::Timestamp>| {
        ts.as_ref()
            .and_then(trace_runtime::clock::micros_from_timestamp)
            .context("entry without a time")
    };
    let actor = entry.actor.clone().unwrap_or_default();
    Ok(BackupRow {
        sequence: entry.sequence as i64,
        event_id: entry.event_id.clone(),
        stream_sequence: entry.stream_sequence as i64,
        subject: entry.subject.clone(),
        source_service: entry.source_service.clone(),
        entity_type: entry.entity_type.clone(),
        entity_id: entry.entity_id.clone(),
        entity_version: entry.entity_version as i64,
        action: entry.action.clone(),
        actor_id: actor.user_id,
        actor_name: actor.display_name,
        actor_department: actor.department,
        actor_role: actor.role,
        confidentiality: entry.confidentiality,
        occurred_at: micros(&entry.occurred_at)?,
        received_at: micros(&entry.received_at)?,
        correlation_id: entry.correlation_id.clone(),
        causation_id: entry.causation_id.clone(),
        payload_type: entry.payload_type.clone(),
        payload_sha256: entry.payload_sha256.clone(),
        payload: (!entry.envelope.is_empty()).then(|| BASE64.encode(&entry.envelope)),
        previous_hash: entry.previous_hash.clone(),
        entry_hash: entry.entry_hash.clone(),
    })
}

/// Prefixes a quote to text that a spreadsheet would run as a formula.
pub fn neutralise_cell(text: &str) -> String {
    match text.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => format!("'{text}"),
        _ => text.to_owned(),
    }
}

/// Writes an evidence package into `out` (created; must be empty or missing).
pub async fn export(
    address: &str,
    identity: &Identity,
    query: ExportQuery,
    out: &Path,
) -> anyhow::Result<bool> {
    if out.exists() && std::fs::read_dir(out)?.next().is_some() {
        anyhow::bail!("output folder {} is not empty", out.display());
    }
    std::fs::create_dir_all(out)?;
    let mut client = connect(address).await?;

    // The checkpoint first: every proof below is made against its tree size.
    let checkpoint = client
        .create_checkpoint(identity.request(CreateCheckpointRequest {}))
        .await
        .context("the archive could not sign a checkpoint for the package")?
        .into_inner()
        .checkpoint
        .context("no checkpoint returned")?;
    let tree_size = checkpoint.tree_size;

    let entries = fetch(&mut client, identity, &query).await?;
    let entries: Vec<Entry> = entries
        .into_iter()
        .filter(|entry| entry.sequence <= tree_size)
        .collect();
    let mut jsonl = String::new();
    let mut proofs = String::new();
    let mut csv_writer = csv::Writer::from_writer(Vec::new());
    csv_writer.write_record([
        "sequence",
        "occurred_at",
        "entity_type",
        "entity_id",
        "entity_version",
        "action",
        "actor_id",
        "actor_name",
        "actor_department",
        "actor_role",
        "subject",
        "payload",
        "entry_hash",
    ])?;
    for entry in &entries {
        let row = to_row(entry)?;
        let mut line = serde_json::to_value(&row)?;
        line["payload_json"] =
            serde_json::from_str(&entry.payload_json).unwrap_or(serde_json::Value::Null);
        jsonl.push_str(&serde_json::to_string(&line)?);
        jsonl.push('\n');

        let proof = client
            .get_inclusion_proof(identity.request(GetInclusionProofRequest {
                sequence: entry.sequence,
                tree_size,
            }))
            .await?
            .into_inner();
        let line = ProofLine {
            sequence: row.sequence,
            tree_size,
            proof: proof.proof.iter().map(hex::encode).collect(),
        };
        proofs.push_str(&serde_json::to_string(&line)?);
        proofs.push('\n');

        let time = crate::output::time(entry.occurred_at.as_ref());
        let cells = [
            row.sequence.to_string(),
            time,
            row.entity_type,
            row.entity_id,
            row.entity_version.to_string(),
            row.action,
            row.actor_id,
            row.actor_name,
            row.actor_department,
            row.actor_role,
            row.subject,
            entry.payload_json.clone(),
            row.entry_hash,
        ];
        csv_writer.write_record(cells.iter().map(|cell| neutralise_cell(cell)))?;
    }
    let csv_bytes = csv_writer
        .into_inner()
        .map_err(|error| anyhow::anyhow!("csv: {error}"))?;

    let files = [
        ("records.jsonl", jsonl.into_bytes()),
        ("records.csv", csv_bytes),
        ("proofs.jsonl", proofs.into_bytes()),
        ("checkpoint.txt", checkpoint.note.clone().into_bytes()),
    ];
    let mut digests = Vec::new();
    for (name, bytes) in &files {
        std::fs::write(out.join(name), bytes)?;
        digests.push((name.to_string(), hex::encode(Sha256::digest(bytes))));
    }
    let manifest = PackageManifest {
        query,
        records: entries.len() as u64,
        tree_size,
        verifier_key: checkpoint.verifier_key.clone(),
        files: digests,
    };
    std::fs::write(
        out.join("manifest.json"),
        serde_json::to_vec_pretty(&manifest)?,
    )?;
    out!(
        "exported {} records at tree size {tree_size} to {}",
        entries.len(),
        out.display()
    );
    Ok(true)
}

async fn fetch(
    client: &mut trace_proto::archive::v1::archive_service_client::ArchiveServiceClient<
        tonic::transport::Channel,
    >,
    identity: &Identity,
    query: &ExportQuery,
) -> anyhow::Result<Vec<Entry>> {
    let mut entries = Vec::new();
    let mut page_token = String::new();
    loop {
        let request = QueryEntriesRequest {
            entity_type: query.entity_type.clone(),
            entity_id: query.entity_id.clone(),
            department: query.department.clone(),
            occurred_from: timestamp("from", &query.from)?,
            occurred_to: timestamp("to", &query.to)?,
            include_envelope: true,
            page: Some(PageRequest {
                page_size: 500,
                page_token,
            }),
            ..QueryEntriesRequest::default()
        };
        let response = client
            .query_entries(identity.request(request))
            .await?
            .into_inner();
        entries.extend(response.entries);
        if response.next_page_token.is_empty() {
            return Ok(entries);
        }
        page_token = response.next_page_token;
    }
}

/// Checks a package offline: file digests, the checkpoint signature, each record's entry
/// hash and payload digest, and each inclusion proof against the checkpoint's root.
pub fn verify_export(folder: &Path, verifier_key: &str, json: bool) -> anyhow::Result<bool> {
    let result = check_package(folder, verifier_key);
    match &result {
        Ok(count) if json => out!("{}", serde_json::json!({ "ok": true, "records": count })),
        Ok(count) => out!("evidence package verified: {count} records"),
        Err(error) if json => out!(
            "{}",
            serde_json::json!({ "ok": false, "error": format!("{error:#}") })
        ),
        Err(error) => out!("evidence package verification FAILED: {error:#}"),
    }
    Ok(result.is_ok())
}

fn check_package(folder: &Path, verifier_key: &str) -> anyhow::Result<u64> {
    let read =
        |name: &str| std::fs::read(folder.join(name)).with_context(|| format!("{name} is missing"));
    let manifest: PackageManifest = serde_json::from_slice(&read("manifest.json")?)?;
    for (name, digest) in &manifest.files {
        let actual = hex::encode(Sha256::digest(read(name)?));
        anyhow::ensure!(
            &actual == digest,
            "{name} does not match the digest in manifest.json"
        );
    }
    let note = String::from_utf8(read("checkpoint.txt")?)?;
    let (size, root) = trace_archive::checkpoint::verify_note(&note, verifier_key)?;
    anyhow::ensure!(
        size == manifest.tree_size,
        "the checkpoint is for another tree size"
    );

    let records = String::from_utf8(read("records.jsonl")?)?;
    let proofs = String::from_utf8(read("proofs.jsonl")?)?;
    let mut count = 0;
    for (record, proof) in records.lines().zip(proofs.lines()) {
        let row: BackupRow = serde_json::from_str(record)?;
        let proof: ProofLine = serde_json::from_str(proof)?;
        check_record(&row, &proof, size, root)?;
        count += 1;
    }
    anyhow::ensure!(
        count == manifest.records,
        "the package holds {count} records, its manifest says {}",
        manifest.records
    );
    Ok(count)
}

fn check_record(row: &BackupRow, proof: &ProofLine, size: u64, root: Hash) -> anyhow::Result<()> {
    let sequence = row.sequence;
    anyhow::ensure!(
        proof.sequence == sequence && proof.tree_size == size,
        "proof order differs at record {sequence}"
    );
    let entry = row.to_model().map_err(anyhow::Error::msg)?;
    anyhow::ensure!(
        trace_archive::ledger::entry_hash(&entry) == entry.entry_hash,
        "record {sequence} was altered: its entry hash does not match its columns"
    );
    anyhow::ensure!(
        trace_archive::ledger::payload_matches_digest(&entry),
        "record {sequence} payload does not match its digest"
    );
    let hashes = proof
        .proof
        .iter()
        .map(|text| {
            let bytes: [u8; 32] = hex::decode(text)?
                .try_into()
                .map_err(|_| anyhow::anyhow!("bad hash length"))?;
            Ok(Hash(bytes))
        })
        .collect::<anyhow::Result<Vec<Hash>>>()?;
    let leaf = tlog::record_hash(&hex::decode(&entry.entry_hash)?);
    tlog::check_record(&hashes, size, root, sequence as u64 - 1, leaf)
        .map_err(|_| anyhow::anyhow!("record {sequence} is not in the checkpointed tree"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formula_cells_are_neutralised() {
        for risky in ["=SUM(A1)", "+1", "-2", "@cmd", "\tx", "\rx"] {
            assert!(neutralise_cell(risky).starts_with('\''), "{risky:?}");
        }
        assert_eq!(neutralise_cell("全過程"), "全過程");
        assert_eq!(neutralise_cell("a=b"), "a=b");
    }
}
