//! Free-text columns that are sealed at rest for CONFIDENTIAL and SECRET documents, in the
//! encoding of `trace_runtime::sealed_text`. The content itself is sealed in the blob store.
//! Titles, file numbers, categories, storage locations, ids, dates, states and the other
//! fields that listing, filtering and the rules use stay plaintext.

use sea_orm::ActiveValue;
use trace_runtime::seal::Keyring;
use trace_runtime::sealed_text::{TextColumn, seal_optional, seal_text};
use trace_runtime::sealed_text_columns;

use crate::entity::{access_request, borrowing, review, revision};

sealed_text_columns!(
    review::Model,
    "reviews",
    |row| row.id.clone(),
    [opinion],
    []
);
sealed_text_columns!(
    revision::Model,
    "revisions",
    |row| format!("{}/{}", row.document_id, row.revision),
    [change_summary],
    []
);
sealed_text_columns!(
    borrowing::Model,
    "borrowings",
    |row| row.id.clone(),
    [reason],
    [
        approver_opinion,
        condition_note,
        loss_description,
        handling_result
    ]
);
sealed_text_columns!(
    access_request::Model,
    "access_requests",
    |row| row.id.clone(),
    [purpose],
    [opinion]
);

/// Seals the text columns that a borrowing step sets in `changes`, for the borrowing `id`.
pub(crate) fn seal_borrowing_changes(
    keyring: &Keyring,
    confidentiality: i32,
    id: &str,
    changes: &mut borrowing::ActiveModel,
) {
    let column = |name| TextColumn::new("borrowings", name);
    if let ActiveValue::Set(reason) = &changes.reason {
        let sealed = seal_text(
            keyring,
            confidentiality,
            column("reason"),
            id,
            reason.clone(),
        );
        changes.reason = ActiveValue::Set(sealed);
    }
    for (name, field) in [
        ("approver_opinion", &mut changes.approver_opinion),
        ("condition_note", &mut changes.condition_note),
        ("loss_description", &mut changes.loss_description),
        ("handling_result", &mut changes.handling_result),
    ] {
        if let ActiveValue::Set(text) = field {
            let sealed = seal_optional(keyring, confidentiality, column(name), id, text.clone());
            *field = ActiveValue::Set(sealed);
        }
    }
}

/// Returns the stored form of an access request's decision opinion.
pub(crate) fn seal_access_opinion(
    keyring: &Keyring,
    confidentiality: i32,
    id: &str,
    opinion: Option<String>,
) -> Option<String> {
    let column = TextColumn::new("access_requests", "opinion");
    seal_optional(keyring, confidentiality, column, id, opinion)
}
