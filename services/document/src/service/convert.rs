//! Conversions from stored rows to API messages.

use trace_proto::common::v1::BlobRef;
use trace_proto::document::v1 as proto;
use trace_runtime::clock::{date_from_key, proto_date, timestamp, timestamp_opt};

use crate::entity::{backup, borrowing, document, revision};

/// Converts a stored count or number that is never negative.
pub(super) fn count(value: i32) -> u32 {
    u32::try_from(value).unwrap_or_default()
}

pub(super) fn blob_ref(sha256: &str, size_bytes: i64, media_type: &str) -> BlobRef {
    BlobRef {
        sha256: sha256.to_owned(),
        size_bytes: u64::try_from(size_bytes).unwrap_or_default(),
        media_type: media_type.to_owned(),
    }
}

/// Returns the content reference of a document's latest revision.
pub(super) fn document_content(model: &document::Model) -> BlobRef {
    blob_ref(
        &model.content_sha256,
        model.content_size,
        &model.content_media_type,
    )
}

pub(super) fn document(model: &document::Model) -> proto::Document {
    proto::Document {
        document_id: model.id.clone(),
        title: model.title.clone(),
        category: model.category.clone(),
        department: model.department.clone(),
        confidentiality: model.confidentiality,
        state: proto::DocumentState::from(model.state) as i32,
        drafter_id: model.drafter_id.clone(),
        drafted_at: Some(timestamp(model.drafted_at)),
        revision: count(model.revision),
        content: Some(document_content(model)),
        file_number: model.file_number.clone().unwrap_or_default(),
        year: model.year.unwrap_or_default(),
        storage_location: model.storage_location.clone().unwrap_or_default(),
        registered_at: timestamp_opt(model.registered_at),
        entity_version: u64::try_from(model.entity_version).unwrap_or_default(),
        reviewer_id: model.reviewer_id.clone().unwrap_or_default(),
    }
}

pub(super) fn revision(model: &revision::Model) -> proto::Revision {
    proto::Revision {
        document_id: model.document_id.clone(),
        revision: count(model.revision),
        editor_id: model.editor_id.clone(),
        edited_at: Some(timestamp(model.edited_at)),
        change_summary: model.change_summary.clone(),
        content: Some(blob_ref(
            &model.content_sha256,
            model.content_size,
            &model.content_media_type,
        )),
    }
}

pub(super) fn backup(model: &backup::Model) -> proto::Backup {
    proto::Backup {
        backup_id: model.id.clone(),
        document_id: model.document_id.clone(),
        revision: count(model.revision),
        medium: model.medium.clone(),
        location: model.location.clone(),
        backed_up_at: Some(timestamp(model.backed_up_at)),
        recorded_by: model.recorded_by.clone(),
    }
}

/// Converts a stored `YYYYMMDD` key to a protobuf date; `None` only for a corrupt key.
pub(super) fn date(key: i32) -> Option<trace_proto::common::v1::Date> {
    date_from_key(key).map(proto_date)
}

pub(super) fn borrowing(model: &borrowing::Model) -> proto::Borrowing {
    proto::Borrowing {
        borrowing_id: model.id.clone(),
        document_id: model.document_id.clone(),
        borrower_id: model.borrower_id.clone(),
        reason: model.reason.clone(),
        expected_return_date: date(model.expected_return_date),
        state: proto::BorrowingState::from(model.state) as i32,
        requested_at: Some(timestamp(model.requested_at)),
        approver_id: model.approver_id.clone().unwrap_or_default(),
        approver_opinion: model.approver_opinion.clone().unwrap_or_default(),
        decided_at: timestamp_opt(model.decided_at),
        lent_at: timestamp_opt(model.lent_at),
        returned_at: timestamp_opt(model.returned_at),
        return_condition: model.return_condition.map_or(0, |condition| {
            proto::ReturnCondition::from(condition) as i32
        }),
        condition_note: model.condition_note.clone().unwrap_or_default(),
        handling_result: model.handling_result.clone().unwrap_or_default(),
        overdue_since: timestamp_opt(model.overdue_since),
    }
}
