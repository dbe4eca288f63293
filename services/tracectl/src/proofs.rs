//! Merkle proofs and signed checkpoints: printing them, and checking them locally so that the
//! result does not rest on the archive's word.

use std::path::Path;

use anyhow::Context;
use tlog_tiles::tlog::{self, Hash};
use trace_proto::archive::v1::{
    CreateCheckpointRequest, GetConsistencyProofRequest, GetInclusionProofRequest,
    GetLatestCheckpointRequest,
};

use crate::Identity;
use crate::archive::connect;

fn to_hash(bytes: &[u8]) -> anyhow::Result<Hash> {
    let array: [u8; 32] = bytes
        .try_into()
        .context("the archive returned a hash that is not 32 bytes")?;
    Ok(Hash(array))
}

fn to_hashes(list: &[Vec<u8>]) -> anyhow::Result<Vec<Hash>> {
    list.iter().map(|bytes| to_hash(bytes)).collect()
}

/// Prints a new key pair.
pub fn keygen(name: &str) -> anyhow::Result<bool> {
    let (signing, verifying) = trace_archive::checkpoint::generate_key(name)?;
    out!("{signing}");
    out!("{verifying}");
    Ok(true)
}

/// Prints the latest checkpoint note, creating one first when asked.
pub async fn checkpoint(
    address: &str,
    identity: &Identity,
    create: bool,
    json: bool,
) -> anyhow::Result<bool> {
    let mut client = connect(address).await?;
    let checkpoint = if create {
        client
            .create_checkpoint(identity.request(CreateCheckpointRequest {}))
            .await?
            .into_inner()
            .checkpoint
    } else {
        client
            .get_latest_checkpoint(identity.request(GetLatestCheckpointRequest {}))
            .await?
            .into_inner()
            .checkpoint
    }
    .context("the archive returned no checkpoint")?;
    if json {
        out!(
            "{}",
            serde_json::json!({
                "tree_size": checkpoint.tree_size,
                "root_hash": hex::encode(&checkpoint.root_hash),
                "note": checkpoint.note,
                "verifier_key": checkpoint.verifier_key,
            })
        );
    } else {
        out!("{}", checkpoint.note.trim_end());
    }
    Ok(true)
}

/// Fetches and checks an inclusion proof.
pub async fn inclusion(
    address: &str,
    identity: &Identity,
    sequence: u64,
    tree_size: u64,
    json: bool,
) -> anyhow::Result<bool> {
    let mut client = connect(address).await?;
    let response = client
        .get_inclusion_proof(identity.request(GetInclusionProofRequest {
            sequence,
            tree_size,
        }))
        .await?
        .into_inner();
    let proof = to_hashes(&response.proof)?;
    let root = to_hash(&response.root_hash)?;
    let expected_leaf = tlog::record_hash(&hex::decode(&response.entry_hash)?);
    let leaf_ok = expected_leaf.0.as_slice() == response.leaf_hash.as_slice();
    let checked = tlog::check_record(
        &proof,
        response.tree_size,
        root,
        response.leaf_index,
        expected_leaf,
    );
    let ok = leaf_ok && checked.is_ok();
    if json {
        out!(
            "{}",
            serde_json::json!({
                "ok": ok,
                "sequence": response.sequence,
                "tree_size": response.tree_size,
                "leaf_hash": hex::encode(&response.leaf_hash),
                "root_hash": hex::encode(&response.root_hash),
                "proof": response.proof.iter().map(hex::encode).collect::<Vec<_>>(),
            })
        );
    } else {
        out!(
            "entry {} in tree of size {}: root {}",
            response.sequence,
            response.tree_size,
            hex::encode(root.0)
        );
        for hash in &proof {
            out!("  {}", hex::encode(hash.0));
        }
        out!("inclusion proof {}", if ok { "verified" } else { "FAILED" });
    }
    Ok(ok)
}

/// Fetches and checks a consistency proof.
pub async fn consistency(
    address: &str,
    identity: &Identity,
    from_size: u64,
    to_size: u64,
    json: bool,
) -> anyhow::Result<bool> {
    let mut client = connect(address).await?;
    let response = client
        .get_consistency_proof(identity.request(GetConsistencyProofRequest { from_size, to_size }))
        .await?
        .into_inner();
    let proof = to_hashes(&response.proof)?;
    let ok = tlog::check_tree(
        &proof,
        response.to_size,
        to_hash(&response.to_root_hash)?,
        response.from_size,
        to_hash(&response.from_root_hash)?,
    )
    .is_ok();
    if json {
        out!(
            "{}",
            serde_json::json!({
                "ok": ok,
                "from_size": response.from_size,
                "to_size": response.to_size,
                "from_root_hash": hex::encode(&response.from_root_hash),
                "to_root_hash": hex::encode(&response.to_root_hash),
                "proof": response.proof.iter().map(hex::encode).collect::<Vec<_>>(),
            })
        );
    } else {
        out!(
            "tree {} -> {}: consistency proof {}",
            response.from_size,
            response.to_size,
            if ok { "verified" } else { "FAILED" }
        );
    }
    Ok(ok)
}

/// Checks that the live ledger extends a checkpoint saved earlier: the note's signature, then
/// a consistency proof from its size to the current size checked against the note's root.
/// A bad signature or a rewritten history prints the reason and returns false.
pub async fn verify_checkpoint(
    address: &str,
    identity: &Identity,
    note: &str,
    verifier_key: &str,
    json: bool,
) -> anyhow::Result<bool> {
    let (size, root) = match trace_archive::checkpoint::verify_note(note, verifier_key) {
        Ok(checkpoint) => checkpoint,
        Err(error) => {
            report_checkpoint(false, 0, &error.to_string(), json);
            return Ok(false);
        }
    };

    let mut client = connect(address).await?;
    let request = GetConsistencyProofRequest {
        from_size: size,
        to_size: 0,
    };
    let (ok, reason) = match client
        .get_consistency_proof(identity.request(request))
        .await
    {
        Err(status) => (
            false,
            format!("the archive cannot prove size {size}: {}", status.message()),
        ),
        Ok(response) => {
            let response = response.into_inner();
            let proof = to_hashes(&response.proof)?;
            let to_root = to_hash(&response.to_root_hash)?;
            match tlog::check_tree(&proof, response.to_size, to_root, size, root) {
                Ok(()) => (
                    true,
                    format!(
                        "the ledger of {} entries extends the checkpoint",
                        response.to_size
                    ),
                ),
                Err(_) => (
                    false,
                    "history was rewritten: the ledger is not consistent with the checkpoint"
                        .to_owned(),
                ),
            }
        }
    };
    report_checkpoint(ok, size, &reason, json);
    Ok(ok)
}

/// Reads the checkpoint file and requires a verifier key, before any network work, so that
/// a usage error shows at once.
pub fn checkpoint_inputs(
    path: &Path,
    verifier_key: Option<String>,
) -> anyhow::Result<(String, String)> {
    let note = std::fs::read_to_string(path)
        .with_context(|| format!("failed to read checkpoint file {}", path.display()))?;
    let verifier_key = verifier_key.context(
        "--verifier-key (or TRACE_CHECKPOINT_VERIFIER_KEY) is required to check a checkpoint; \
         pass the key text, for example \"$(cat var/keys/checkpoint-verifier.key)\"",
    )?;
    Ok((note, verifier_key))
}

fn report_checkpoint(ok: bool, size: u64, reason: &str, json: bool) {
    if json {
        let value =
            serde_json::json!({ "checkpoint_ok": ok, "checkpoint_size": size, "reason": reason });
        out!("{value}");
    } else if ok {
        out!("checkpoint of size {size} verified: {reason}");
    } else {
        out!("checkpoint verification FAILED: {reason}");
    }
}
