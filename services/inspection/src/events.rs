//! Staging of this service's trace events in the caller's transaction.

use sea_orm::ConnectionTrait;
use trace_proto::common::v1::Confidentiality;
use trace_runtime::ServiceResult;
use trace_runtime::clock::Clock;
use trace_runtime::context::CallContext;
use trace_runtime::event::{self, EventSpec};
use trace_runtime::outbox::Outbox;

/// Service name in event subjects and envelopes.
pub const SERVICE: &str = "inspection";

/// Entity type of plans, inspections, spot checks and reports.
pub const INSPECTION: &str = "inspection";

/// Entity type of findings and their rectification.
pub const FINDING: &str = "finding";

/// One event to stage.
#[derive(Debug)]
pub struct Staged<'a> {
    pub entity_type: &'static str,
    pub entity_id: &'a str,
    /// Version of the entity after this event.
    pub entity_version: i64,
    pub action: &'static str,
    /// Level of the entity, the `trace.common.v1.Confidentiality` number. The outbox seals the
    /// payload of a CONFIDENTIAL or SECRET event.
    pub confidentiality: i32,
    pub payload: prost_types::Any,
}

impl Staged<'_> {
    /// Level of an `inspection` entity event other than a report event. Plans, inspections and
    /// spot checks carry no level of their own, so their events are INTERNAL. Report events
    /// use the level of the report.
    pub const INTERNAL: i32 = Confidentiality::Internal as i32;
}

/// Writes one event into the outbox inside `connection`'s transaction. Call
/// [`Outbox::notify`] after the commit.
pub async fn stage<C: ConnectionTrait>(
    outbox: &Outbox,
    connection: &C,
    context: &CallContext,
    clock: &dyn Clock,
    staged: Staged<'_>,
) -> ServiceResult<()> {
    stage_returning_id(outbox, connection, context, clock, staged).await?;
    Ok(())
}

/// Writes one event as [`stage`] does and returns its event id.
pub async fn stage_returning_id<C: ConnectionTrait>(
    outbox: &Outbox,
    connection: &C,
    context: &CallContext,
    clock: &dyn Clock,
    staged: Staged<'_>,
) -> ServiceResult<String> {
    let spec = EventSpec {
        entity_type: staged.entity_type,
        entity_id: staged.entity_id.to_owned(),
        entity_version: u64::try_from(staged.entity_version).unwrap_or_default(),
        action: staged.action,
        confidentiality: envelope_level(staged.confidentiality),
        payload: staged.payload,
    };
    let envelope = event::envelope(SERVICE, context, clock, spec);
    outbox.stage(connection, &envelope).await?;
    Ok(envelope.event_id)
}

/// Returns the envelope level of a stored level. An unknown number counts as SECRET, so its
/// payload is sealed.
pub fn envelope_level(confidentiality: i32) -> Confidentiality {
    trace_runtime::access_approval::level_of(confidentiality)
}
