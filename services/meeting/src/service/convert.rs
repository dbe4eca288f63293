//! Conversions from stored rows to API messages.

use chrono::NaiveDate;
use trace_proto::common::v1::BlobRef;
use trace_proto::meeting::v1 as proto;
use trace_runtime::ServiceResult;
use trace_runtime::clock::{date_from_key, proto_date, timestamp, timestamp_opt};

use super::input::{AgendaInput, StoredDiscussion, from_json};
use crate::entity::{
    agenda_item, confirmation, delay_request, dispatch, material, meeting, minutes, notice,
    overdue_mark, plan_revision, resolution, resolution_update,
};
use crate::rules;

/// Converts a stored count or number that is never negative.
pub(super) fn count(value: i32) -> u32 {
    u32::try_from(value).unwrap_or_default()
}

/// Converts a stored version that is never negative.
pub(super) fn version(value: i64) -> u64 {
    u64::try_from(value).unwrap_or_default()
}

/// Converts a stored `YYYYMMDD` key to a protobuf date; `None` only for a corrupt key.
pub(super) fn date(key: i32) -> Option<trace_proto::common::v1::Date> {
    date_from_key(key).map(proto_date)
}

pub(super) fn agenda_item(model: &agenda_item::Model) -> proto::AgendaItem {
    proto::AgendaItem {
        title: model.title.clone(),
        presenter_id: model.presenter_id.clone().unwrap_or_default(),
    }
}

pub(super) fn agenda_input(item: &AgendaInput) -> proto::AgendaItem {
    proto::AgendaItem {
        title: item.title.clone(),
        presenter_id: item.presenter_id.clone().unwrap_or_default(),
    }
}

pub(super) fn meeting(
    model: &meeting::Model,
    attendees: &[String],
    agenda: &[agenda_item::Model],
) -> proto::Meeting {
    proto::Meeting {
        meeting_id: model.id.clone(),
        topic: model.topic.clone(),
        channel: model.channel.number(),
        location: model.location.clone(),
        start_time: Some(timestamp(model.start_at)),
        end_time: Some(timestamp(model.end_at)),
        attendee_ids: attendees.to_vec(),
        agenda: agenda.iter().map(agenda_item).collect(),
        organiser_id: model.organiser_id.clone(),
        department: model.department.clone(),
        planned_at: Some(timestamp(model.planned_at)),
        state: model.state.number(),
        confidentiality: model.confidentiality,
        plan_revision: count(model.plan_revision),
        minutes_version: count(model.minutes_version),
        cancel_reason: model.cancel_reason.clone().unwrap_or_default(),
        cancelled_at: timestamp_opt(model.cancelled_at),
        entity_version: version(model.entity_version),
        content_withheld: false,
    }
}

pub(super) fn plan_revision(model: &plan_revision::Model) -> proto::PlanRevision {
    proto::PlanRevision {
        plan_revision: count(model.revision),
        revised_by: model.revised_by.clone(),
        revised_at: Some(timestamp(model.revised_at)),
        change_summary: model.change_summary.clone(),
        changed_fields: model
            .changed_fields
            .split(',')
            .filter(|name| !name.is_empty())
            .map(str::to_owned)
            .collect(),
    }
}

pub(super) fn notice(model: &notice::Model) -> proto::Notice {
    proto::Notice {
        recipient_id: model.recipient_id.clone(),
        notified_at: Some(timestamp(model.notified_at)),
        recorded_by: model.recorded_by.clone(),
        plan_revision: count(model.plan_revision),
    }
}

pub(super) fn material_content(model: &material::Model) -> Option<BlobRef> {
    let sha256 = model.content_sha256.clone()?;
    Some(BlobRef {
        sha256,
        size_bytes: model
            .content_size
            .and_then(|size| u64::try_from(size).ok())
            .unwrap_or_default(),
        media_type: model.content_media_type.clone().unwrap_or_default(),
    })
}

pub(super) fn material(model: &material::Model) -> proto::Material {
    proto::Material {
        material_id: model.id.clone(),
        meeting_id: model.meeting_id.clone(),
        title: model.title.clone(),
        kind: model.kind.number(),
        author_id: model.author_id.clone(),
        completed_at: Some(timestamp(model.completed_at)),
        content: material_content(model),
        document_id: model.document_id.clone().unwrap_or_default(),
        review_state: model.review_state.number(),
        reviewer_id: model.reviewer_id.clone().unwrap_or_default(),
        review_opinion: model.review_opinion.clone().unwrap_or_default(),
        reviewed_at: timestamp_opt(model.reviewed_at),
        added_by: model.added_by.clone(),
        added_at: Some(timestamp(model.added_at)),
    }
}

pub(super) fn minutes(model: &minutes::Model) -> ServiceResult<proto::Minutes> {
    let discussions: Vec<StoredDiscussion> = from_json("minutes.discussions", &model.discussions)?;
    Ok(proto::Minutes {
        version: count(model.version),
        taker_id: model.taker_id.clone(),
        recorded_at: Some(timestamp(model.recorded_at)),
        held_start_time: Some(timestamp(model.held_start_at)),
        held_end_time: Some(timestamp(model.held_end_at)),
        place: model.place.clone(),
        present_ids: from_json("minutes.present_ids", &model.present_ids)?,
        absent_ids: from_json("minutes.absent_ids", &model.absent_ids)?,
        discussions: discussions
            .into_iter()
            .map(|discussion| proto::Discussion {
                agenda_item: discussion.agenda_item,
                text: discussion.text,
            })
            .collect(),
        change_summary: model.change_summary.clone(),
    })
}

pub(super) fn dispatch(model: &dispatch::Model) -> proto::Dispatch {
    proto::Dispatch {
        recipient_id: model.recipient_id.clone(),
        minutes_version: count(model.minutes_version),
        sent_by: model.sent_by.clone(),
        sent_at: Some(timestamp(model.sent_at)),
    }
}

pub(super) fn confirmation(model: &confirmation::Model) -> proto::Confirmation {
    proto::Confirmation {
        participant_id: model.participant_id.clone(),
        minutes_version: count(model.minutes_version),
        verdict: model.verdict.number(),
        comment: model.comment.clone(),
        confirmed_at: Some(timestamp(model.confirmed_at)),
    }
}

/// Converts a resolution, with its overdue flag as of `today`.
pub(super) fn resolution(model: &resolution::Model, today: NaiveDate) -> proto::Resolution {
    let overdue = date_from_key(model.due_date)
        .is_some_and(|due| rules::is_overdue(model.status, due, today));
    proto::Resolution {
        resolution_id: model.id.clone(),
        meeting_id: model.meeting_id.clone(),
        decision_number: count(model.decision_number),
        decision_text: model.decision_text.clone(),
        owner_id: model.owner_id.clone(),
        due_date: date(model.due_date),
        original_due_date: date(model.original_due_date),
        status: model.status.number(),
        created_at: Some(timestamp(model.created_at)),
        completed_at: timestamp_opt(model.completed_at),
        overdue,
        entity_version: version(model.entity_version),
        content_withheld: false,
    }
}

pub(super) fn update(model: &resolution_update::Model) -> proto::ResolutionUpdate {
    proto::ResolutionUpdate {
        update_number: count(model.number),
        updated_by: model.updated_by.clone(),
        updated_at: Some(timestamp(model.updated_at)),
        status: model.status.number(),
        progress_note: model.progress_note.clone(),
        problems: model.problems.clone(),
        solutions: model.solutions.clone(),
    }
}

pub(super) fn delay(model: &delay_request::Model) -> proto::DelayRequest {
    proto::DelayRequest {
        delay_id: model.id.clone(),
        requested_by: model.requested_by.clone(),
        requested_at: Some(timestamp(model.requested_at)),
        reason: model.reason.clone(),
        current_due_date: date(model.current_due_date),
        proposed_due_date: date(model.proposed_due_date),
        approver_id: model.approver_id.clone().unwrap_or_default(),
        state: model.state.number(),
        decided_by: model.decided_by.clone().unwrap_or_default(),
        decided_at: timestamp_opt(model.decided_at),
        opinion: model.opinion.clone().unwrap_or_default(),
    }
}

pub(super) fn overdue_mark(model: &overdue_mark::Model) -> proto::OverdueMark {
    proto::OverdueMark {
        due_date: date(model.due_date),
        as_of: date(model.as_of),
        marked_at: Some(timestamp(model.marked_at)),
    }
}
