//! Retention commands: legal holds and disposition plans.

use trace_proto::archive::v1::{
    ApproveDispositionRequest, HoldScope, PlaceHoldRequest, PlanDispositionRequest,
    ReleaseHoldRequest,
};

use crate::Identity;
use crate::archive::connect;

/// Places a hold and prints its id.
pub async fn place_hold(
    address: &str,
    identity: &Identity,
    entity_type: &str,
    entity_id: &str,
    reason: &str,
    json: bool,
) -> anyhow::Result<bool> {
    let mut client = connect(address).await?;
    let request = PlaceHoldRequest {
        scope: Some(HoldScope {
            entity_type: entity_type.to_owned(),
            entity_id: entity_id.to_owned(),
        }),
        reason: reason.to_owned(),
    };
    let hold = client
        .place_hold(identity.request(request))
        .await?
        .into_inner()
        .hold
        .unwrap_or_default();
    if json {
        out!(
            "{}",
            serde_json::json!({ "hold_id": hold.hold_id, "placed_by": hold.placed_by })
        );
    } else {
        out!("hold {} placed on {entity_type} {entity_id}", hold.hold_id);
    }
    Ok(true)
}

/// Releases a hold.
pub async fn release_hold(
    address: &str,
    identity: &Identity,
    hold_id: &str,
    reason: &str,
    json: bool,
) -> anyhow::Result<bool> {
    let mut client = connect(address).await?;
    let request = ReleaseHoldRequest {
        hold_id: hold_id.to_owned(),
        reason: reason.to_owned(),
    };
    let hold = client
        .release_hold(identity.request(request))
        .await?
        .into_inner()
        .hold
        .unwrap_or_default();
    if json {
        out!(
            "{}",
            serde_json::json!({ "hold_id": hold.hold_id, "released_by": hold.released_by })
        );
    } else {
        out!("hold {} released", hold.hold_id);
    }
    Ok(true)
}

/// Plans a disposition (nothing is removed) and prints what it lists.
pub async fn plan(address: &str, identity: &Identity, json: bool) -> anyhow::Result<bool> {
    let mut client = connect(address).await?;
    let plan = client
        .plan_disposition(identity.request(PlanDispositionRequest {}))
        .await?
        .into_inner();
    if json {
        let items: Vec<_> = plan
            .items
            .iter()
            .map(|item| {
                serde_json::json!({
                    "sequence": item.sequence,
                    "event_id": item.event_id,
                    "entity_type": item.entity_type,
                    "entity_id": item.entity_id,
                    "schedule": item.schedule,
                })
            })
            .collect();
        out!(
            "{}",
            serde_json::json!({ "plan_id": plan.plan_id, "items": items })
        );
    } else {
        out!(
            "disposition plan {}: {} entries due (dry run, nothing removed)",
            plan.plan_id,
            plan.items.len()
        );
        for item in &plan.items {
            out!(
                "  #{} {} {} under {}",
                item.sequence,
                item.entity_type,
                item.entity_id,
                item.schedule
            );
        }
        out!(
            "a second person approves it with: tracectl disposition --approve {}",
            plan.plan_id
        );
    }
    Ok(true)
}

/// Approves and executes a plan made by someone else.
pub async fn approve(
    address: &str,
    identity: &Identity,
    plan_id: &str,
    json: bool,
) -> anyhow::Result<bool> {
    let mut client = connect(address).await?;
    let request = ApproveDispositionRequest {
        plan_id: plan_id.to_owned(),
    };
    let result = client
        .approve_disposition(identity.request(request))
        .await?
        .into_inner();
    if json {
        out!(
            "{}",
            serde_json::json!({
                "plan_id": result.plan_id,
                "disposed": result.disposed,
                "skipped": result.skipped,
                "certificate_sha256": result.certificate_sha256,
                "certificate": serde_json::from_str::<serde_json::Value>(&result.certificate_json).unwrap_or_default(),
                "event_id": result.event_id,
            })
        );
    } else {
        out!(
            "disposition {}: {} payloads removed, {} skipped; certificate {} recorded as event {}",
            result.plan_id,
            result.disposed,
            result.skipped,
            result.certificate_sha256,
            result.event_id
        );
    }
    Ok(true)
}
