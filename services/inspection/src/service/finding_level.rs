//! The level of a recorded finding. A finding may quote the records it references, so it is
//! at least as confidential as the consumed trace events its references name.

use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
};
use trace_proto::common::v1::Confidentiality;
use trace_runtime::access_approval::level_of;
use trace_runtime::{ServiceError, ServiceResult};

use crate::entity::processed_event;
use crate::rules::Reference;
use crate::store::sequence;

/// The consumed event with the highest level among those the references of a finding name.
#[derive(Debug)]
pub(super) struct ReferencedEvent {
    pub level: Confidentiality,
    pub event: processed_event::Model,
    /// Index of the first reference that names the event.
    pub reference: usize,
}

/// Returns true when `reference` names `event` by event id, by stream sequence, or by entity.
fn names(reference: &Reference, event: &processed_event::Model) -> bool {
    let by_id = !reference.event_id.is_empty() && reference.event_id == event.event_id;
    let by_sequence = reference.stream_sequence != 0
        && sequence(reference.stream_sequence) == event.stream_sequence;
    let by_entity = !reference.entity_type.is_empty()
        && !reference.entity_id.is_empty()
        && reference.entity_type == event.entity_type
        && reference.entity_id == event.entity_id;
    by_id || by_sequence || by_entity
}

/// Finds the consumed event with the highest level that `references` name by event id, by
/// stream sequence, or by (entity type, entity id). Returns `None` when the service consumed
/// none of them. Ledger sequences are not looked up, because consumed messages carry only
/// stream sequences.
pub(super) async fn highest_referenced<C: ConnectionTrait>(
    connection: &C,
    references: &[Reference],
) -> ServiceResult<Option<ReferencedEvent>> {
    let mut condition = Condition::any();
    for reference in references {
        if !reference.event_id.is_empty() {
            condition =
                condition.add(processed_event::Column::EventId.eq(reference.event_id.as_str()));
        }
        if reference.stream_sequence != 0 {
            condition = condition.add(
                processed_event::Column::StreamSequence.eq(sequence(reference.stream_sequence)),
            );
        }
        if !reference.entity_type.is_empty() && !reference.entity_id.is_empty() {
            condition = condition.add(
                Condition::all()
                    .add(processed_event::Column::EntityType.eq(reference.entity_type.as_str()))
                    .add(processed_event::Column::EntityId.eq(reference.entity_id.as_str())),
            );
        }
    }
    if condition.is_empty() {
        return Ok(None);
    }
    let Some(event) = processed_event::Entity::find()
        .filter(condition)
        .order_by_desc(processed_event::Column::Confidentiality)
        .order_by_asc(processed_event::Column::StreamSequence)
        .limit(1)
        .one(connection)
        .await?
    else {
        return Ok(None);
    };
    let reference = references
        .iter()
        .position(|reference| names(reference, &event))
        .unwrap_or_default();
    Ok(Some(ReferencedEvent {
        level: level_of(event.confidentiality),
        event,
        reference,
    }))
}

/// Rejects an unknown level number. Unspecified is kept, because [`finding_level`] resolves
/// it.
pub(super) fn requested_level(value: i32) -> ServiceResult<Confidentiality> {
    Confidentiality::try_from(value).map_err(|_| {
        ServiceError::invalid(
            "confidentiality",
            &value.to_string(),
            "is not a known value",
        )
    })
}

/// Resolves the level of a recorded finding from the `requested` level and `referenced`, the
/// event with the highest level that its references name. Unspecified means that event's
/// level, and at least INTERNAL. A level below that event's level is rejected.
pub(super) fn finding_level(
    requested: Confidentiality,
    referenced: Option<&ReferencedEvent>,
) -> ServiceResult<Confidentiality> {
    let floor = referenced.map_or(Confidentiality::Internal, |referenced| {
        referenced.level.max(Confidentiality::Internal)
    });
    if requested == Confidentiality::Unspecified {
        return Ok(floor);
    }
    let Some(referenced) = referenced.filter(|referenced| requested < referenced.level) else {
        return Ok(requested);
    };
    Err(ServiceError::invalid(
        "confidentiality",
        requested.as_str_name(),
        format!(
            "is below {}, the level of {}, which references[{}] names; leave the level \
             unspecified or give {} or higher",
            referenced.level.as_str_name(),
            describe(&referenced.event),
            referenced.reference,
            referenced.level.as_str_name(),
        ),
    ))
}

/// Describes a consumed event as "event ID of ENTITY_TYPE ENTITY_ID", without the entity for
/// events consumed before entities were kept.
fn describe(event: &processed_event::Model) -> String {
    if event.entity_type.is_empty() {
        return format!("event {}", event.event_id);
    }
    format!(
        "event {} of {} {}",
        event.event_id, event.entity_type, event.entity_id
    )
}
