//! gRPC `trace.archive.v1.ArchiveService`: timelines, queries, single entries, verification
//! and ledger status. Every list pages by a unique key, so rows that share a timestamp are
//! never lost at a page boundary.

use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ColumnTrait, Condition, DatabaseConnection, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect,
};
use tonic::{Request, Response, Status};
use trace_proto::archive::v1::archive_service_server::ArchiveService;
use trace_proto::archive::v1::*;
use trace_proto::common::v1::PageRequest;
use trace_proto::event::v1::Actor;
use trace_runtime::clock::{micros_from_timestamp, timestamp};
use trace_runtime::{ServiceError, ServiceResult, validate};

use std::sync::Arc;

use trace_runtime::clock::SharedClock;
use trace_runtime::context::CallContext;
use trace_runtime::seal::Keyring;

use crate::access::{self, may_open_payload, restrict, visibility};
use crate::backup_job::Backups;
use crate::checkpoint::CheckpointSigner;
use crate::dispositions::Dispositions;
use crate::entity::{chain_head, conflict, ledger_entry, rejected};
use crate::proofs;
use crate::render::PayloadRenderer;
use crate::verify::verify_range;

const DEFAULT_PAGE_SIZE: u64 = 50;
const MAX_PAGE_SIZE: u64 = 500;

/// Serves queries over the ledger.
#[derive(Debug, Clone)]
pub struct Archive {
    db: DatabaseConnection,
    renderer: PayloadRenderer,
    signer: Option<Arc<CheckpointSigner>>,
    clock: SharedClock,
    backups: Option<Arc<Backups>>,
    dispositions: Arc<Dispositions>,
    jobs: crate::jobs::JobBoard,
    /// Opens sealed payloads for callers allowed to read them; without it they stay sealed.
    keyring: Option<Keyring>,
}

impl Archive {
    pub fn new(
        db: DatabaseConnection,
        signer: Option<Arc<CheckpointSigner>>,
        clock: SharedClock,
        backups: Option<Arc<Backups>>,
        dispositions: Arc<Dispositions>,
        jobs: crate::jobs::JobBoard,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            db,
            renderer: PayloadRenderer::new()?,
            keyring: None,
            signer,
            clock,
            backups,
            dispositions,
            jobs,
        })
    }

    /// Opens sealed payloads with `keyring` for callers that [`may_open_payload`] allows.
    pub fn with_keyring(mut self, keyring: Keyring) -> Self {
        self.keyring = Some(keyring);
        self
    }

    fn signer(&self) -> ServiceResult<&CheckpointSigner> {
        self.signer.as_deref().ok_or_else(|| {
            ServiceError::wrong_state(
                "archive",
                "checkpoints",
                "NOT_CONFIGURED (set archive.checkpoint_signing_key_file)",
                "sign",
            )
        })
    }

    fn to_entry(&self, row: ledger_entry::Model, reader: &CallContext) -> Entry {
        let keyring = self
            .keyring
            .as_ref()
            .filter(|_| may_open_payload(reader, &row));
        let payload_json = row
            .payload
            .as_deref()
            .map(|bytes| self.renderer.render(bytes, keyring))
            .unwrap_or_default();
        Entry {
            sequence: row.sequence as u64,
            event_id: row.event_id,
            subject: row.subject,
            source_service: row.source_service,
            entity_type: row.entity_type,
            entity_id: row.entity_id,
            entity_version: row.entity_version as u64,
            action: row.action,
            actor: Some(Actor {
                user_id: row.actor_id,
                display_name: row.actor_name,
                department: row.actor_department,
                role: row.actor_role,
            }),
            confidentiality: row.confidentiality,
            occurred_at: Some(timestamp(row.occurred_at)),
            received_at: Some(timestamp(row.received_at)),
            correlation_id: row.correlation_id,
            causation_id: row.causation_id,
            payload_type: row.payload_type,
            payload_json,
            payload_sha256: row.payload_sha256,
            previous_hash: row.previous_hash,
            entry_hash: row.entry_hash,
            stream_sequence: row.stream_sequence as u64,
            skew_seconds: (row.received_at - row.occurred_at) / 1_000_000,
            envelope: Vec::new(),
        }
    }
}

/// Page size from a request: 0 means the default; above the maximum is invalid.
fn page_size(page: Option<&PageRequest>) -> ServiceResult<u64> {
    let size = page.map_or(0, |page| page.page_size);
    match size {
        0 => Ok(DEFAULT_PAGE_SIZE),
        1..=500 => Ok(size as u64),
        _ => Err(ServiceError::invalid(
            "page.page_size",
            &size.to_string(),
            format!("must be 0 to {MAX_PAGE_SIZE}"),
        )),
    }
}

fn page_token(page: Option<&PageRequest>) -> &str {
    page.map_or("", |page| page.page_token.as_str())
}

/// Parses a token made of `parts` non-negative integers joined by `:`.
fn parse_token(token: &str, parts: usize) -> ServiceResult<Option<Vec<i64>>> {
    if token.is_empty() {
        return Ok(None);
    }
    let numbers: Option<Vec<i64>> = token.split(':').map(|part| part.parse().ok()).collect();
    match numbers {
        Some(numbers) if numbers.len() == parts && numbers.iter().all(|n| *n >= 0) => {
            Ok(Some(numbers))
        }
        _ => Err(ServiceError::invalid(
            "page.page_token",
            token,
            "is not a token returned by this method",
        )),
    }
}

/// Checks an entity type: 1 to 64 characters of a-z, 0-9 and '_', as in event subjects.
fn entity_type(value: &str) -> ServiceResult<String> {
    validate::token(
        "entity_type",
        value,
        64,
        |c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_',
        "a-z, 0-9 and '_'",
    )
}

/// Converts a requested ledger sequence to the stored `i64`. Sequences above `i64::MAX`
/// cannot exist and would wrap to negative numbers, so they are invalid.
fn stored_sequence(field: &str, value: u64) -> ServiceResult<i64> {
    i64::try_from(value).map_err(|_| {
        ServiceError::invalid(
            field,
            &value.to_string(),
            format!("must be at most {}", i64::MAX),
        )
    })
}

fn optional_micros(
    field: &str,
    value: Option<&prost_types::Timestamp>,
) -> ServiceResult<Option<i64>> {
    value
        .map(|ts| {
            micros_from_timestamp(ts).ok_or_else(|| {
                ServiceError::invalid(
                    field,
                    &format!("{}s {}ns", ts.seconds, ts.nanos),
                    "is out of range",
                )
            })
        })
        .transpose()
}

impl Archive {
    async fn timeline(
        &self,
        request: &GetTimelineRequest,
        reader: &CallContext,
    ) -> ServiceResult<GetTimelineResponse> {
        let visibility = &visibility(reader);
        let entity_type = entity_type(&request.entity_type)?;
        let entity_id = validate::line("entity_id", &request.entity_id, 1, 128)?;
        let limit = page_size(request.page.as_ref())?;
        let after = parse_token(page_token(request.page.as_ref()), 2)?;

        let mut query = restrict(ledger_entry::Entity::find(), visibility)
            .filter(ledger_entry::Column::EntityType.eq(entity_type))
            .filter(ledger_entry::Column::EntityId.eq(entity_id));
        if let Some(after) = after {
            let (version, sequence) = (after[0], after[1]);
            query = query.filter(
                Condition::any()
                    .add(ledger_entry::Column::EntityVersion.gt(version))
                    .add(
                        Condition::all()
                            .add(ledger_entry::Column::EntityVersion.eq(version))
                            .add(ledger_entry::Column::Sequence.gt(sequence)),
                    ),
            );
        }
        let rows = query
            .order_by_asc(ledger_entry::Column::EntityVersion)
            .order_by_asc(ledger_entry::Column::Sequence)
            .limit(limit + 1)
            .all(&self.db)
            .await?;
        let (rows, more) = split_page(rows, limit);
        let next_page_token = match (more, rows.last()) {
            (true, Some(last)) => format!("{}:{}", last.entity_version, last.sequence),
            _ => String::new(),
        };
        Ok(GetTimelineResponse {
            entries: rows
                .into_iter()
                .map(|row| self.to_entry(row, reader))
                .collect(),
            next_page_token,
        })
    }

    async fn query(
        &self,
        request: &QueryEntriesRequest,
        reader: &CallContext,
    ) -> ServiceResult<QueryEntriesResponse> {
        let visibility = &visibility(reader);
        let limit = page_size(request.page.as_ref())?;
        let after = parse_token(page_token(request.page.as_ref()), 1)?;
        let from = optional_micros("occurred_from", request.occurred_from.as_ref())?;
        let to = optional_micros("occurred_to", request.occurred_to.as_ref())?;
        if let (Some(from), Some(to)) = (from, to)
            && from >= to
        {
            return Err(ServiceError::invalid(
                "occurred_to",
                &to.to_string(),
                "must be later than occurred_from",
            ));
        }

        let mut query = restrict(ledger_entry::Entity::find(), visibility);
        if !request.actor_id.is_empty() {
            let actor = validate::user_id("actor_id", &request.actor_id)?;
            query = query.filter(ledger_entry::Column::ActorId.eq(actor));
        }
        if !request.department.is_empty() {
            let department = validate::department("department", &request.department)?;
            query = query.filter(ledger_entry::Column::ActorDepartment.eq(department));
        }
        if !request.entity_type.is_empty() {
            let entity_type = entity_type(&request.entity_type)?;
            query = query.filter(ledger_entry::Column::EntityType.eq(entity_type));
        }
        if !request.entity_id.is_empty() {
            let entity_id = validate::line("entity_id", &request.entity_id, 1, 128)?;
            query = query.filter(ledger_entry::Column::EntityId.eq(entity_id));
        }
        if !request.subject.is_empty() {
            query = subject_filter(query, &request.subject)?;
        }
        if let Some(from) = from {
            query = query.filter(ledger_entry::Column::OccurredAt.gte(from));
        }
        if let Some(to) = to {
            query = query.filter(ledger_entry::Column::OccurredAt.lt(to));
        }
        if let Some(after) = after {
            query = query.filter(ledger_entry::Column::Sequence.gt(after[0]));
        }
        let rows = query
            .order_by_asc(ledger_entry::Column::Sequence)
            .limit(limit + 1)
            .all(&self.db)
            .await?;
        let (rows, more) = split_page(rows, limit);
        let next_page_token = match (more, rows.last()) {
            (true, Some(last)) => last.sequence.to_string(),
            _ => String::new(),
        };
        let include_envelope = request.include_envelope;
        Ok(QueryEntriesResponse {
            entries: rows
                .into_iter()
                .map(|row| {
                    let envelope = if include_envelope {
                        row.payload.clone()
                    } else {
                        None
                    };
                    let mut entry = self.to_entry(row, reader);
                    entry.envelope = envelope.unwrap_or_default();
                    entry
                })
                .collect(),
            next_page_token,
        })
    }
}

/// Filters by an exact subject, or by a prefix when the subject ends in `.>`.
fn subject_filter(
    query: sea_orm::Select<ledger_entry::Entity>,
    subject: &str,
) -> ServiceResult<sea_orm::Select<ledger_entry::Entity>> {
    crate::holds::validate_subject("subject", subject)?;
    let (prefix, wildcard) = match subject.strip_suffix(".>") {
        Some(prefix) => (prefix, true),
        None => (subject, false),
    };
    Ok(if wildcard {
        // Subject tokens cannot contain LIKE metacharacters other than '_', which the check
        // above allows; escape it so that it matches only itself.
        let pattern = format!("{}.%", prefix.replace('_', "\\_"));
        query.filter(
            Expr::col(ledger_entry::Column::Subject)
                .like(sea_orm::sea_query::LikeExpr::new(pattern).escape('\\')),
        )
    } else {
        query.filter(ledger_entry::Column::Subject.eq(subject))
    })
}

fn split_page<T>(mut rows: Vec<T>, limit: u64) -> (Vec<T>, bool) {
    let more = rows.len() as u64 > limit;
    rows.truncate(limit as usize);
    (rows, more)
}

#[tonic::async_trait]
impl ArchiveService for Archive {
    async fn get_timeline(
        &self,
        request: Request<GetTimelineRequest>,
    ) -> Result<Response<GetTimelineResponse>, Status> {
        let context = trace_runtime::context::CallContext::of(&request)?;
        Ok(Response::new(
            self.timeline(request.get_ref(), &context).await?,
        ))
    }

    async fn query_entries(
        &self,
        request: Request<QueryEntriesRequest>,
    ) -> Result<Response<QueryEntriesResponse>, Status> {
        let context = trace_runtime::context::CallContext::of(&request)?;
        Ok(Response::new(
            self.query(request.get_ref(), &context).await?,
        ))
    }

    async fn get_entry(
        &self,
        request: Request<GetEntryRequest>,
    ) -> Result<Response<GetEntryResponse>, Status> {
        let context = trace_runtime::context::CallContext::of(&request)?;
        let query = match &request.get_ref().key {
            Some(get_entry_request::Key::Sequence(sequence)) => {
                ledger_entry::Entity::find_by_id(*sequence as i64)
            }
            Some(get_entry_request::Key::EventId(event_id)) => {
                let event_id = validate::record_id("event_id", event_id)?;
                ledger_entry::Entity::find()
                    .filter(ledger_entry::Column::EventId.eq(event_id.to_string()))
            }
            None => return Err(ServiceError::invalid("key", "", "is required").into()),
        };
        let view = visibility(&context);
        let row = restrict(query, &view)
            .one(&self.db)
            .await
            .map_err(ServiceError::from)?
            .ok_or_else(|| access::entry_not_visible(&view, &request.get_ref().key))?;
        Ok(Response::new(GetEntryResponse {
            entry: Some(self.to_entry(row, &context)),
        }))
    }

    async fn verify_chain(
        &self,
        request: Request<VerifyChainRequest>,
    ) -> Result<Response<VerifyChainResponse>, Status> {
        let context = trace_runtime::context::CallContext::of(&request)?;
        access::require_whole(&context, "verify chain")?;
        let VerifyChainRequest {
            from_sequence,
            to_sequence,
        } = *request.get_ref();
        let from = stored_sequence("from_sequence", from_sequence)?;
        let to = stored_sequence("to_sequence", to_sequence)?;
        if to_sequence != 0 && to_sequence < from_sequence {
            return Err(ServiceError::invalid(
                "to_sequence",
                &to_sequence.to_string(),
                "must be 0 or at least from_sequence",
            )
            .into());
        }
        let result = verify_range(&self.db, from, to)
            .await
            .map_err(ServiceError::from)?;
        crate::metrics::get().record_verification(
            result.ok(),
            result.to_sequence,
            self.clock.now().timestamp_micros(),
        );
        if let Some((sequence, reason)) = &result.broken {
            tracing::error!(sequence, %reason, "ledger verification failed");
        }
        let (first_broken_sequence, reason) = result.broken.clone().unwrap_or_default();
        Ok(Response::new(VerifyChainResponse {
            ok: result.ok(),
            checked: result.checked,
            first_broken_sequence: first_broken_sequence as u64,
            reason,
            head_hash: result.head_hash,
            from_sequence: result.from_sequence as u64,
            to_sequence: result.to_sequence as u64,
        }))
    }

    async fn get_ledger_status(
        &self,
        request: Request<GetLedgerStatusRequest>,
    ) -> Result<Response<GetLedgerStatusResponse>, Status> {
        let context = trace_runtime::context::CallContext::of(&request)?;
        access::require_whole(&context, "get ledger status")?;
        let head = chain_head::Entity::find_by_id(1)
            .one(&self.db)
            .await
            .map_err(ServiceError::from)?
            .ok_or_else(|| ServiceError::Internal(anyhow::anyhow!("chain head row is missing")))?;
        let rejected = rejected::Entity::find()
            .count(&self.db)
            .await
            .map_err(ServiceError::from)?;
        let conflicts = conflict::Entity::find()
            .count(&self.db)
            .await
            .map_err(ServiceError::from)?;
        let last = ledger_entry::Entity::find_by_id(head.sequence)
            .one(&self.db)
            .await
            .map_err(ServiceError::from)?;
        Ok(Response::new(GetLedgerStatusResponse {
            size: head.sequence as u64,
            head_hash: head.entry_hash,
            rejected,
            conflicts,
            last_appended_at: last.map(|entry| timestamp(entry.received_at)),
            jobs: self
                .jobs
                .snapshot()
                .into_iter()
                .map(|(name, job)| JobProgress {
                    job: name.to_owned(),
                    done: job.done,
                    total: job.total,
                    started_at: Some(timestamp(job.started_at)),
                })
                .collect(),
        }))
    }

    async fn list_rejected(
        &self,
        request: Request<ListRejectedRequest>,
    ) -> Result<Response<ListRejectedResponse>, Status> {
        let context = trace_runtime::context::CallContext::of(&request)?;
        access::require_whole(&context, "list rejected")?;
        let page = request.get_ref().page.as_ref();
        let limit = page_size(page)?;
        let after = parse_token(page_token(page), 1)?.map_or(0, |after| after[0]);
        let rows = rejected::Entity::find()
            .filter(rejected::Column::Id.gt(after))
            .order_by_asc(rejected::Column::Id)
            .limit(limit + 1)
            .all(&self.db)
            .await
            .map_err(ServiceError::from)?;
        let (rows, more) = split_page(rows, limit);
        let next_page_token = match (more, rows.last()) {
            (true, Some(last)) => last.id.to_string(),
            _ => String::new(),
        };
        let rejected = rows
            .into_iter()
            .map(|row| Rejected {
                rejected_id: row.id as u64,
                subject: row.subject,
                stream_sequence: row.stream_sequence as u64,
                received_at: Some(timestamp(row.received_at)),
                reason: row.reason,
                raw_sha256: row.raw_sha256,
                raw_size: row.raw_size as u64,
            })
            .collect();
        Ok(Response::new(ListRejectedResponse {
            rejected,
            next_page_token,
        }))
    }

    async fn list_conflicts(
        &self,
        request: Request<ListConflictsRequest>,
    ) -> Result<Response<ListConflictsResponse>, Status> {
        let context = trace_runtime::context::CallContext::of(&request)?;
        access::require_whole(&context, "list conflicts")?;
        let page = request.get_ref().page.as_ref();
        let limit = page_size(page)?;
        let after = parse_token(page_token(page), 1)?.map_or(0, |after| after[0]);
        let rows = conflict::Entity::find()
            .filter(conflict::Column::Id.gt(after))
            .order_by_asc(conflict::Column::Id)
            .limit(limit + 1)
            .all(&self.db)
            .await
            .map_err(ServiceError::from)?;
        let (rows, more) = split_page(rows, limit);
        let next_page_token = match (more, rows.last()) {
            (true, Some(last)) => last.id.to_string(),
            _ => String::new(),
        };
        let conflicts = rows
            .into_iter()
            .map(|row| Conflict {
                conflict_id: row.id as u64,
                event_id: row.event_id,
                stored_sequence: row.stored_sequence as u64,
                stored_payload_sha256: row.stored_payload_sha256,
                received_payload_sha256: row.received_payload_sha256,
                received_at: Some(timestamp(row.received_at)),
                stream_sequence: row.stream_sequence as u64,
            })
            .collect();
        Ok(Response::new(ListConflictsResponse {
            conflicts,
            next_page_token,
        }))
    }

    async fn get_tree_head(
        &self,
        request: Request<GetTreeHeadRequest>,
    ) -> Result<Response<GetTreeHeadResponse>, Status> {
        trace_runtime::context::CallContext::of(&request)?;
        Ok(Response::new(
            proofs::tree_head(&self.db, request.get_ref()).await?,
        ))
    }

    async fn get_inclusion_proof(
        &self,
        request: Request<GetInclusionProofRequest>,
    ) -> Result<Response<GetInclusionProofResponse>, Status> {
        let context = trace_runtime::context::CallContext::of(&request)?;
        access::require_whole(&context, "get inclusion proof")?;
        Ok(Response::new(
            proofs::inclusion_proof(&self.db, request.get_ref()).await?,
        ))
    }

    async fn get_consistency_proof(
        &self,
        request: Request<GetConsistencyProofRequest>,
    ) -> Result<Response<GetConsistencyProofResponse>, Status> {
        let context = trace_runtime::context::CallContext::of(&request)?;
        access::require_whole(&context, "get consistency proof")?;
        Ok(Response::new(
            proofs::consistency_proof(&self.db, request.get_ref()).await?,
        ))
    }

    async fn create_checkpoint(
        &self,
        request: Request<CreateCheckpointRequest>,
    ) -> Result<Response<CreateCheckpointResponse>, Status> {
        let context = trace_runtime::context::CallContext::of(&request)?;
        access::require_whole(&context, "create checkpoint")?;
        let now = self.clock.now().timestamp_micros();
        let checkpoint = proofs::create_checkpoint(&self.db, self.signer()?, now).await?;
        Ok(Response::new(CreateCheckpointResponse {
            checkpoint: Some(checkpoint),
        }))
    }

    async fn get_latest_checkpoint(
        &self,
        request: Request<GetLatestCheckpointRequest>,
    ) -> Result<Response<GetLatestCheckpointResponse>, Status> {
        trace_runtime::context::CallContext::of(&request)?;
        let verifier_key = self
            .signer
            .as_deref()
            .map_or("", CheckpointSigner::verifier_key);
        let checkpoint = proofs::latest_checkpoint(&self.db, verifier_key)
            .await?
            .ok_or_else(|| ServiceError::not_found("checkpoint", "latest"))?;
        Ok(Response::new(GetLatestCheckpointResponse {
            checkpoint: Some(checkpoint),
        }))
    }

    async fn run_backup(
        &self,
        request: Request<RunBackupRequest>,
    ) -> Result<Response<RunBackupResponse>, Status> {
        let context = trace_runtime::context::CallContext::of(&request)?;
        access::require_whole(&context, "run backup")?;
        let backups = self.backups.as_ref().ok_or_else(|| {
            ServiceError::wrong_state(
                "archive",
                "backups",
                "NOT_CONFIGURED (set archive.backup_url and archive.backup_key_file)",
                "run",
            )
        })?;
        let (run, event_id) = backups
            .run(&context)
            .await
            .map_err(|error| ServiceError::Internal(error.into()))?;
        crate::metrics::get().record_backup(self.clock.now().timestamp_micros());
        Ok(Response::new(RunBackupResponse {
            segments: run.manifests.iter().map(|m| m.segment.clone()).collect(),
            from_sequence: run.manifests.first().map_or(0, |m| m.from_sequence as u64),
            to_sequence: run.manifests.last().map_or(0, |m| m.to_sequence as u64),
            location: backups.location.url.clone(),
            event_id: event_id.unwrap_or_default(),
        }))
    }

    async fn place_hold(
        &self,
        request: Request<PlaceHoldRequest>,
    ) -> Result<Response<PlaceHoldResponse>, Status> {
        let context = trace_runtime::context::CallContext::of(&request)?;
        access::require_whole(&context, "place hold")?;
        let message = request.get_ref();
        let hold = self
            .dispositions
            .place_hold(&context, message.scope.as_ref(), &message.reason)
            .await?;
        Ok(Response::new(PlaceHoldResponse { hold: Some(hold) }))
    }

    async fn release_hold(
        &self,
        request: Request<ReleaseHoldRequest>,
    ) -> Result<Response<ReleaseHoldResponse>, Status> {
        let context = trace_runtime::context::CallContext::of(&request)?;
        access::require_whole(&context, "release hold")?;
        let message = request.get_ref();
        let hold = self
            .dispositions
            .release_hold(&context, &message.hold_id, &message.reason)
            .await?;
        Ok(Response::new(ReleaseHoldResponse { hold: Some(hold) }))
    }

    async fn plan_disposition(
        &self,
        request: Request<PlanDispositionRequest>,
    ) -> Result<Response<PlanDispositionResponse>, Status> {
        let context = trace_runtime::context::CallContext::of(&request)?;
        access::require_whole(&context, "plan disposition")?;
        Ok(Response::new(self.dispositions.plan(&context).await?))
    }

    async fn approve_disposition(
        &self,
        request: Request<ApproveDispositionRequest>,
    ) -> Result<Response<ApproveDispositionResponse>, Status> {
        let context = trace_runtime::context::CallContext::of(&request)?;
        access::require_whole(&context, "approve disposition")?;
        let plan_id = request.get_ref().plan_id.clone();
        Ok(Response::new(
            self.dispositions.approve(&context, &plan_id).await?,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_token_rejects_garbage() {
        assert!(parse_token("", 1).unwrap().is_none());
        assert_eq!(parse_token("12:3", 2).unwrap(), Some(vec![12, 3]));
        for bad in ["x", "1:2:3", "-1", "1;DROP TABLE", "../"] {
            assert!(parse_token(bad, 2).is_err(), "{bad}");
        }
    }

    #[test]
    fn page_size_bounds() {
        assert_eq!(page_size(None).unwrap(), DEFAULT_PAGE_SIZE);
        let big = PageRequest {
            page_size: 501,
            page_token: String::new(),
        };
        assert!(page_size(Some(&big)).is_err());
        let negative = PageRequest {
            page_size: -1,
            page_token: String::new(),
        };
        assert!(page_size(Some(&negative)).is_err());
    }
}
