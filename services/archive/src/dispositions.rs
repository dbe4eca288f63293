//! gRPC operations of retention: legal holds, disposition plans and their approval by a
//! second person.

use sea_orm::{ActiveValue::Set, DatabaseConnection, EntityTrait};
use trace_proto::archive::v1::{
    ApproveDispositionResponse, DispositionExecuted, DispositionItem, HeldItem, Hold, HoldScope,
    PlanDispositionResponse,
};
use trace_runtime::clock::{SharedClock, timestamp, timestamp_opt};
use trace_runtime::context::CallContext;
use trace_runtime::event::{EventSpec, envelope, pack};
use trace_runtime::outbox::Outbox;
use trace_runtime::{ServiceError, ServiceResult, validate};

use crate::config::ArchiveSettings;
use crate::entity::{disposition, legal_hold};
use crate::holds;
use crate::retention::{self, PlannedItem};

/// Holds and disposition for one archive.
#[derive(Debug, Clone)]
pub struct Dispositions {
    pub db: DatabaseConnection,
    pub settings: ArchiveSettings,
    pub zone: chrono_tz::Tz,
    pub clock: SharedClock,
    pub outbox: Outbox,
    /// Job board on which a running disposition reports its progress.
    pub jobs: crate::jobs::JobBoard,
}

fn hold_message(row: legal_hold::Model) -> ServiceResult<Hold> {
    let scope = holds::stored_scope(&row).map_err(anyhow::Error::from)?;
    Ok(Hold {
        hold_id: row.hold_id,
        scope: Some(holds::scope_message(&scope)),
        reason: row.reason,
        placed_by: row.placed_by,
        placed_at: Some(timestamp(row.placed_at)),
        released_by: row.released_by.unwrap_or_default(),
        released_at: timestamp_opt(row.released_at),
    })
}

fn item_message(item: &PlannedItem) -> DispositionItem {
    DispositionItem {
        sequence: item.sequence as u64,
        event_id: item.event_id.clone(),
        entity_type: item.entity_type.clone(),
        entity_id: item.entity_id.clone(),
        schedule: item.schedule.clone(),
        expired_at: Some(timestamp(item.expired_at)),
    }
}

fn held_message(held: &retention::HeldItem) -> HeldItem {
    HeldItem {
        sequence: held.item.sequence as u64,
        event_id: held.item.event_id.clone(),
        entity_type: held.item.entity_type.clone(),
        entity_id: held.item.entity_id.clone(),
        schedule: held.item.schedule.clone(),
        hold_ids: held.hold_ids.clone(),
    }
}

impl Dispositions {
    /// Places a hold on an entity, on a whole entity type when the id is empty, or on the
    /// entries a query matches.
    pub async fn place_hold(
        &self,
        context: &CallContext,
        scope: Option<&HoldScope>,
        reason: &str,
    ) -> ServiceResult<Hold> {
        let scope = scope.ok_or_else(|| ServiceError::invalid("scope", "", "is required"))?;
        let scope = holds::validate_scope(scope)?;
        let reason = validate::text("reason", reason, 1, 2000)?;
        let (entity_type, entity_id, query) = match &scope {
            holds::HoldScope::Entity {
                entity_type,
                entity_id,
            } => (entity_type.clone(), entity_id.clone(), None),
            holds::HoldScope::Query(query) => {
                let json = serde_json::to_string(query).map_err(anyhow::Error::from)?;
                (String::new(), String::new(), Some(json))
            }
        };
        let row = legal_hold::Model {
            hold_id: uuid::Uuid::now_v7().to_string(),
            entity_type,
            entity_id,
            query,
            reason,
            placed_by: context.principal.user_id.clone(),
            placed_at: self.clock.now().timestamp_micros(),
            released_by: None,
            released_at: None,
            release_reason: None,
        };
        legal_hold::Entity::insert(legal_hold::ActiveModel::from(row.clone()))
            .exec_without_returning(&self.db)
            .await?;
        tracing::info!(
            hold_id = %row.hold_id,
            entity_type = %row.entity_type,
            query = row.query.as_deref().unwrap_or_default(),
            placed_by = %row.placed_by,
            "legal hold placed"
        );
        hold_message(row)
    }

    /// Releases a hold.
    pub async fn release_hold(
        &self,
        context: &CallContext,
        hold_id: &str,
        reason: &str,
    ) -> ServiceResult<Hold> {
        let hold_id = validate::record_id("hold_id", hold_id)?.to_string();
        let reason = validate::text("reason", reason, 1, 2000)?;
        let row = legal_hold::Entity::find_by_id(hold_id.clone())
            .one(&self.db)
            .await?
            .ok_or_else(|| ServiceError::not_found("hold", hold_id.clone()))?;
        if row.released_at.is_some() {
            return Err(ServiceError::wrong_state(
                "hold", hold_id, "RELEASED", "release",
            ));
        }
        let mut active: legal_hold::ActiveModel = row.into();
        active.released_by = Set(Some(context.principal.user_id.clone()));
        active.released_at = Set(Some(self.clock.now().timestamp_micros()));
        active.release_reason = Set(Some(reason));
        let row = legal_hold::Entity::update(active).exec(&self.db).await?;
        tracing::info!(%hold_id, released_by = %context.principal.user_id, "legal hold released");
        hold_message(row)
    }

    /// Lists what may be disposed of now and stores the list as a plan.
    pub async fn plan(&self, context: &CallContext) -> ServiceResult<PlanDispositionResponse> {
        let now = self.clock.now().timestamp_micros();
        let plan = retention::plan(&self.db, &self.settings, self.zone, now).await?;
        let items = plan.items;
        let plan_id = uuid::Uuid::now_v7().to_string();
        let row = disposition::Model {
            plan_id: plan_id.clone(),
            proposed_by: context.principal.user_id.clone(),
            proposed_at: now,
            items: serde_json::to_string(&items).map_err(anyhow::Error::from)?,
            approved_by: None,
            executed_at: None,
            certificate: None,
            certificate_sha256: None,
        };
        disposition::Entity::insert(disposition::ActiveModel::from(row))
            .exec_without_returning(&self.db)
            .await?;
        Ok(PlanDispositionResponse {
            plan_id,
            items: items.iter().map(item_message).collect(),
            proposed_by: context.principal.user_id.clone(),
            held: plan.held.iter().map(held_message).collect(),
        })
    }

    /// Executes a plan approved by someone other than its proposer. Each item is checked
    /// again against holds, the floor and its schedule, so a hold placed after the plan wins.
    pub async fn approve(
        &self,
        context: &CallContext,
        plan_id: &str,
    ) -> ServiceResult<ApproveDispositionResponse> {
        let plan_id = validate::record_id("plan_id", plan_id)?.to_string();
        let plan = disposition::Entity::find_by_id(plan_id.clone())
            .one(&self.db)
            .await?
            .ok_or_else(|| ServiceError::not_found("disposition plan", plan_id.clone()))?;
        if plan.executed_at.is_some() {
            return Err(ServiceError::wrong_state(
                "disposition plan",
                plan_id,
                "EXECUTED",
                "approve",
            ));
        }
        if plan.proposed_by == context.principal.user_id {
            return Err(ServiceError::denied(
                "a disposition needs approval by someone other than its proposer",
            ));
        }

        let planned: Vec<PlannedItem> =
            serde_json::from_str(&plan.items).map_err(anyhow::Error::from)?;
        let now = self.clock.now().timestamp_micros();
        let current = retention::plan(&self.db, &self.settings, self.zone, now).await?;
        let still_due: Vec<&PlannedItem> = planned
            .iter()
            .filter(|item| current.items.iter().any(|c| c.sequence == item.sequence))
            .collect();
        let skipped = (planned.len() - still_due.len()) as u64;
        let certificate = serde_json::json!({
            "plan_id": plan_id,
            "proposed_by": plan.proposed_by,
            "approved_by": context.principal.user_id,
            "executed_at": timestamp_text(now),
            "removed": still_due.iter().map(|item| serde_json::json!({
                "sequence": item.sequence,
                "event_id": item.event_id,
                "entity_type": item.entity_type,
                "entity_id": item.entity_id,
                "schedule": item.schedule,
                "payload_sha256": item.payload_sha256,
            })).collect::<Vec<_>>(),
        })
        .to_string();
        let certificate_sha256 = trace_runtime::blob::sha256_hex(certificate.as_bytes());
        let sequences: Vec<i64> = still_due.iter().map(|item| item.sequence).collect();
        let mut schedules: Vec<String> =
            still_due.iter().map(|item| item.schedule.clone()).collect();
        schedules.sort();
        schedules.dedup();

        let payload = DispositionExecuted {
            plan_id: plan_id.clone(),
            disposed: sequences.len() as u64,
            proposed_by: plan.proposed_by.clone(),
            approved_by: context.principal.user_id.clone(),
            certificate_sha256: certificate_sha256.clone(),
            first_sequence: sequences.first().copied().unwrap_or_default() as u64,
            last_sequence: sequences.last().copied().unwrap_or_default() as u64,
            schedules,
        };
        let spec = EventSpec {
            entity_type: "disposition",
            entity_id: plan_id.clone(),
            entity_version: 1,
            action: "executed",
            confidentiality: trace_proto::common::v1::Confidentiality::Internal,
            payload: pack(&payload),
        };
        let event = envelope("archive", context, self.clock.as_ref(), spec);

        let job = self.jobs.start("disposition", sequences.len() as u64, now);
        let txn = trace_runtime::db::begin_write(&self.db).await?;
        let disposed =
            retention::remove_payloads(&txn, &sequences, &|done, total| job.update(done, total))
                .await?;
        let mut active: disposition::ActiveModel = plan.into();
        active.approved_by = Set(Some(context.principal.user_id.clone()));
        active.executed_at = Set(Some(now));
        active.certificate = Set(Some(certificate.clone()));
        active.certificate_sha256 = Set(Some(certificate_sha256.clone()));
        disposition::Entity::update(active).exec(&txn).await?;
        self.outbox.stage(&txn, &event).await?;
        txn.commit().await?;
        self.outbox.notify();
        tracing::info!(%plan_id, disposed, skipped, "disposition executed");

        Ok(ApproveDispositionResponse {
            plan_id,
            disposed,
            skipped,
            certificate_sha256,
            certificate_json: certificate,
            event_id: event.event_id,
        })
    }
}

fn timestamp_text(micros: i64) -> String {
    trace_runtime::clock::from_micros(micros).to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}
