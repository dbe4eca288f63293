//! Tree heads, inclusion and consistency proofs, and checkpoints, for the gRPC API and the
//! periodic checkpoint task.

use sea_orm::{ActiveValue::Set, DatabaseConnection, EntityTrait, QueryOrder};
use trace_proto::archive::v1::{
    Checkpoint, GetConsistencyProofRequest, GetConsistencyProofResponse, GetInclusionProofRequest,
    GetInclusionProofResponse, GetTreeHeadRequest, GetTreeHeadResponse,
};
use trace_runtime::clock::timestamp;
use trace_runtime::{ServiceError, ServiceResult};

use crate::checkpoint::CheckpointSigner;
use crate::entity::{chain_head, checkpoint, ledger_entry};
use crate::merkle::{self, MerkleError};

impl From<MerkleError> for ServiceError {
    fn from(error: MerkleError) -> Self {
        ServiceError::Internal(anyhow::Error::new(error).context("Merkle tree computation failed"))
    }
}

/// Current ledger size, which is also the Merkle tree size.
pub async fn current_size(db: &DatabaseConnection) -> ServiceResult<u64> {
    let head = chain_head::Entity::find_by_id(1).one(db).await?;
    Ok(head.map_or(0, |head| head.sequence as u64))
}

/// Resolves a requested size: 0 means current; larger than current is invalid.
async fn resolve_size(db: &DatabaseConnection, field: &str, requested: u64) -> ServiceResult<u64> {
    let current = current_size(db).await?;
    match requested {
        0 => Ok(current),
        size if size <= current => Ok(size),
        size => Err(ServiceError::invalid(
            field,
            &size.to_string(),
            format!("must be at most the ledger size {current}"),
        )),
    }
}

pub async fn tree_head(
    db: &DatabaseConnection,
    request: &GetTreeHeadRequest,
) -> ServiceResult<GetTreeHeadResponse> {
    let tree_size = resolve_size(db, "tree_size", request.tree_size).await?;
    let root = merkle::root(db, tree_size).await?;
    Ok(GetTreeHeadResponse {
        tree_size,
        root_hash: root.0.to_vec(),
    })
}

pub async fn inclusion_proof(
    db: &DatabaseConnection,
    request: &GetInclusionProofRequest,
) -> ServiceResult<GetInclusionProofResponse> {
    let tree_size = resolve_size(db, "tree_size", request.tree_size).await?;
    if request.sequence == 0 || request.sequence > tree_size {
        return Err(ServiceError::invalid(
            "sequence",
            &request.sequence.to_string(),
            format!("must be 1 to the tree size {tree_size}"),
        ));
    }
    let entry = ledger_entry::Entity::find_by_id(request.sequence as i64)
        .one(db)
        .await?
        .ok_or_else(|| ServiceError::not_found("entry", request.sequence.to_string()))?;
    let leaf_index = request.sequence - 1;
    let proof = merkle::inclusion_proof(db, tree_size, leaf_index).await?;
    let root = merkle::root(db, tree_size).await?;
    Ok(GetInclusionProofResponse {
        sequence: request.sequence,
        leaf_index,
        tree_size,
        leaf_hash: merkle::leaf_hash(&entry.entry_hash).0.to_vec(),
        root_hash: root.0.to_vec(),
        proof: proof.into_iter().map(|hash| hash.0.to_vec()).collect(),
        entry_hash: entry.entry_hash,
    })
}

pub async fn consistency_proof(
    db: &DatabaseConnection,
    request: &GetConsistencyProofRequest,
) -> ServiceResult<GetConsistencyProofResponse> {
    let to_size = resolve_size(db, "to_size", request.to_size).await?;
    if request.from_size == 0 || request.from_size > to_size {
        return Err(ServiceError::invalid(
            "from_size",
            &request.from_size.to_string(),
            format!("must be 1 to {to_size}"),
        ));
    }
    let proof = merkle::consistency_proof(db, to_size, request.from_size).await?;
    Ok(GetConsistencyProofResponse {
        from_size: request.from_size,
        to_size,
        from_root_hash: merkle::root(db, request.from_size).await?.0.to_vec(),
        to_root_hash: merkle::root(db, to_size).await?.0.to_vec(),
        proof: proof.into_iter().map(|hash| hash.0.to_vec()).collect(),
    })
}

/// Signs the current tree head, stores the checkpoint and returns it.
pub async fn create_checkpoint(
    db: &DatabaseConnection,
    signer: &CheckpointSigner,
    now_micros: i64,
) -> ServiceResult<Checkpoint> {
    let tree_size = current_size(db).await?;
    let root = merkle::root(db, tree_size).await?;
    let note = signer
        .sign(tree_size, root)
        .map_err(|error| ServiceError::Internal(error.into()))?;
    let row = checkpoint::ActiveModel {
        tree_size: Set(tree_size as i64),
        root_hash: Set(hex::encode(root.0)),
        note: Set(note.clone()),
        created_at: Set(now_micros),
        ..Default::default()
    };
    checkpoint::Entity::insert(row).exec(db).await?;
    Ok(Checkpoint {
        tree_size,
        root_hash: root.0.to_vec(),
        note,
        created_at: Some(timestamp(now_micros)),
        verifier_key: signer.verifier_key().to_owned(),
    })
}

/// Returns the most recent stored checkpoint.
pub async fn latest_checkpoint(
    db: &DatabaseConnection,
    verifier_key: &str,
) -> ServiceResult<Option<Checkpoint>> {
    let latest = checkpoint::Entity::find()
        .order_by_desc(checkpoint::Column::Id)
        .one(db)
        .await?;
    Ok(latest.map(|row| Checkpoint {
        tree_size: row.tree_size as u64,
        root_hash: hex::decode(&row.root_hash).unwrap_or_default(),
        note: row.note,
        created_at: Some(timestamp(row.created_at)),
        verifier_key: verifier_key.to_owned(),
    }))
}
