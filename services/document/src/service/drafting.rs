//! Drafting and review: create a draft, revise it, submit it to a reviewer and record the
//! reviewer's decision and opinion.

use bytes::Bytes;
use sea_orm::ActiveValue::Set;
use sea_orm::{ActiveModelTrait, EntityTrait};
use trace_proto::common::v1::{BlobRef, Confidentiality};
use trace_proto::document::v1 as proto;
use trace_runtime::blob::sha256_hex;
use trace_runtime::context::CallContext;
use trace_runtime::event::pack;
use trace_runtime::sealed_text::SealedRow;
use trace_runtime::validate;
use trace_runtime::{ServiceError, ServiceResult};
use uuid::Uuid;

use super::write::{AttemptResult, find_document, lock_document, require, with_retries};
use super::{DocumentHandler, convert};
use crate::entity::{document, review, revision};
use crate::state::{DocumentAction, DocumentState, ReviewDecision};

/// A validated `CreateDraftRequest`, without its content.
struct NewDraft {
    title: String,
    category: String,
    department: String,
    confidentiality: Confidentiality,
    media_type: String,
}

/// A validated `ReviseDraftRequest`, without its content.
struct NewRevision {
    document_id: String,
    media_type: String,
    change_summary: String,
}

/// A validated `ReviewDocumentRequest`.
struct ReviewInput {
    document_id: String,
    decision: ReviewDecision,
    opinion: String,
}

/// Checks a media type with the shared rules of [`validate::media_type`].
fn media_type(value: &str) -> ServiceResult<String> {
    validate::media_type("media_type", value)
}

impl DocumentHandler {
    fn check_content_size(&self, content: &[u8]) -> ServiceResult<()> {
        let limit = self.settings.max_content_bytes;
        if content.len() > limit {
            return Err(ServiceError::invalid(
                "content",
                &format!("{} bytes", content.len()),
                format!("must be at most {limit} bytes"),
            ));
        }
        Ok(())
    }

    /// Stores content before the transaction. Blobs are content-addressed, so a blob left
    /// behind by a call that fails later is harmless and reused by the next identical upload.
    /// Content of CONFIDENTIAL and SECRET documents is sealed for the document first, so no
    /// plaintext of it reaches blob storage.
    async fn store_content(
        &self,
        document_id: &str,
        level: Confidentiality,
        content: Vec<u8>,
        media_type: &str,
    ) -> ServiceResult<BlobRef> {
        let failed = |error: anyhow::Error| {
            ServiceError::Internal(
                error.context(format!("failed to store content of document {document_id}")),
            )
        };
        if level < Confidentiality::Confidential {
            return self
                .blobs
                .put(Bytes::from(content), media_type)
                .await
                .map_err(failed);
        }
        let reference = BlobRef {
            sha256: sha256_hex(&content),
            size_bytes: content.len() as u64,
            media_type: media_type.to_owned(),
        };
        let sealed = self.keyring.seal(document_id, &content);
        self.blobs
            .put_sealed(document_id, &reference.sha256, sealed)
            .await
            .map_err(failed)?;
        Ok(reference)
    }

    pub(super) async fn create(
        &self,
        context: &CallContext,
        mut request: proto::CreateDraftRequest,
    ) -> ServiceResult<proto::CreateDraftResponse> {
        let draft = NewDraft {
            title: validate::line("title", &request.title, 1, 200)?,
            category: crate::rules::category("category", &request.category)?,
            department: validate::department("department", &request.department)?,
            confidentiality: validate::enum_value("confidentiality", request.confidentiality)?,
            media_type: media_type(&request.media_type)?,
        };
        self.check_content_size(&request.content)?;
        validate::text_content("content", &request.content, &draft.media_type)?;

        let document_id = Uuid::now_v7().to_string();
        let content = std::mem::take(&mut request.content);
        let content = self
            .store_content(
                &document_id,
                draft.confidentiality,
                content,
                &draft.media_type,
            )
            .await?;

        with_retries("create draft", || {
            self.try_create(context, &document_id, &draft, &content)
        })
        .await
    }

    async fn try_create(
        &self,
        context: &CallContext,
        document_id: &str,
        draft: &NewDraft,
        content: &BlobRef,
    ) -> AttemptResult<proto::CreateDraftResponse> {
        let now = self.now();
        let drafter_id = &context.principal.user_id;
        let document = new_document_row(document_id, draft, content, drafter_id, now);
        let first_revision = revision_row(&document, drafter_id, now, "");
        let txn = self.begin().await?;

        insert_document(&txn, &document).await?;
        let first_revision = first_revision.sealed(&self.keyring, document.confidentiality);
        insert_revision(&txn, first_revision).await?;

        let payload = proto::DocumentDrafted {
            title: document.title.clone(),
            category: document.category.clone(),
            department: document.department.clone(),
            confidentiality: document.confidentiality,
            content: Some(content.clone()),
        };
        let event_id = self
            .stage_event(&txn, context, &document, "drafted", pack(&payload))
            .await?;
        self.commit(txn).await?;

        Ok(proto::CreateDraftResponse {
            document: Some(convert::document(&document)),
            event_id,
        })
    }

    pub(super) async fn revise(
        &self,
        context: &CallContext,
        mut request: proto::ReviseDraftRequest,
    ) -> ServiceResult<proto::ReviseDraftResponse> {
        let input = NewRevision {
            document_id: validate::record_id("document_id", &request.document_id)?.to_string(),
            media_type: media_type(&request.media_type)?,
            change_summary: validate::text("change_summary", &request.change_summary, 1, 2000)?,
        };
        self.check_content_size(&request.content)?;
        validate::text_content("content", &request.content, &input.media_type)?;

        // The level never changes after creation, so reading it before the write is safe.
        let level = super::access::level(&find_document(&self.db, &input.document_id).await?);
        let content = std::mem::take(&mut request.content);
        let content = self
            .store_content(&input.document_id, level, content, &input.media_type)
            .await?;

        with_retries("revise document", || {
            self.try_revise(context, &input, &content)
        })
        .await
    }

    async fn try_revise(
        &self,
        context: &CallContext,
        input: &NewRevision,
        content: &BlobRef,
    ) -> AttemptResult<proto::ReviseDraftResponse> {
        let txn = self.begin().await?;
        let loaded = lock_document(&txn, &input.document_id).await?;

        let state = checked_transition(&loaded, DocumentAction::Revise)?;
        require_drafter(&loaded, context, "revise")?;

        let next_revision = loaded.revision + 1;
        let changes = document::ActiveModel {
            state: Set(state),
            revision: Set(next_revision),
            content_sha256: Set(content.sha256.clone()),
            content_size: Set(i64::try_from(content.size_bytes).unwrap_or(i64::MAX)),
            content_media_type: Set(content.media_type.clone()),
            ..Default::default()
        };
        let payload = proto::DocumentRevised {
            revision: convert::count(next_revision),
            change_summary: input.change_summary.clone(),
            content: Some(content.clone()),
        };
        let (document, event_id) = self
            .record_change(&txn, context, &loaded, changes, "revised", pack(&payload))
            .await?;

        let row = revision_row(
            &document,
            &context.principal.user_id,
            self.now(),
            &input.change_summary,
        );
        insert_revision(&txn, row.sealed(&self.keyring, document.confidentiality)).await?;
        self.commit(txn).await?;

        Ok(proto::ReviseDraftResponse {
            document: Some(convert::document(&document)),
            event_id,
        })
    }

    pub(super) async fn submit(
        &self,
        context: &CallContext,
        request: proto::SubmitForReviewRequest,
    ) -> ServiceResult<proto::SubmitForReviewResponse> {
        let document_id = validate::record_id("document_id", &request.document_id)?.to_string();
        let reviewer_id = validate::user_id("reviewer_id", &request.reviewer_id)?;
        if reviewer_id == context.principal.user_id {
            return Err(ServiceError::invalid(
                "reviewer_id",
                &reviewer_id,
                "must differ from the caller; choose another reviewer",
            ));
        }

        with_retries("submit document", || {
            self.try_submit(context, &document_id, &reviewer_id)
        })
        .await
    }

    async fn try_submit(
        &self,
        context: &CallContext,
        document_id: &str,
        reviewer_id: &str,
    ) -> AttemptResult<proto::SubmitForReviewResponse> {
        let txn = self.begin().await?;
        let loaded = lock_document(&txn, document_id).await?;

        let state = checked_transition(&loaded, DocumentAction::Submit)?;
        require_drafter(&loaded, context, "submit")?;

        let changes = document::ActiveModel {
            state: Set(state),
            reviewer_id: Set(Some(reviewer_id.to_owned())),
            ..Default::default()
        };
        let payload = proto::DocumentSubmitted {
            revision: convert::count(loaded.revision),
            reviewer_id: reviewer_id.to_owned(),
        };
        let (document, event_id) = self
            .record_change(&txn, context, &loaded, changes, "submitted", pack(&payload))
            .await?;
        self.commit(txn).await?;

        Ok(proto::SubmitForReviewResponse {
            document: Some(convert::document(&document)),
            event_id,
        })
    }

    pub(super) async fn review(
        &self,
        context: &CallContext,
        request: proto::ReviewDocumentRequest,
    ) -> ServiceResult<proto::ReviewDocumentResponse> {
        let decision: proto::ReviewDecision = validate::enum_value("decision", request.decision)?;
        let input = ReviewInput {
            document_id: validate::record_id("document_id", &request.document_id)?.to_string(),
            decision: ReviewDecision::from_proto(decision)
                .ok_or_else(|| ServiceError::invalid("decision", "0", "is required"))?,
            opinion: validate::text("opinion", &request.opinion, 1, 4000)?,
        };

        with_retries("review document", || self.try_review(context, &input)).await
    }

    async fn try_review(
        &self,
        context: &CallContext,
        input: &ReviewInput,
    ) -> AttemptResult<proto::ReviewDocumentResponse> {
        let txn = self.begin().await?;
        let loaded = lock_document(&txn, &input.document_id).await?;

        let state = checked_transition(&loaded, input.decision.action())?;
        require_assigned_reviewer(&loaded, context)?;

        let changes = document::ActiveModel {
            state: Set(state),
            ..Default::default()
        };
        let payload = proto::DocumentReviewed {
            revision: convert::count(loaded.revision),
            decision: review_decision(input.decision) as i32,
            opinion: input.opinion.clone(),
        };
        let (document, event_id) = self
            .record_change(&txn, context, &loaded, changes, "reviewed", pack(&payload))
            .await?;

        let row = review::Model {
            id: Uuid::now_v7().to_string(),
            document_id: document.id.clone(),
            revision: document.revision,
            reviewer_id: context.principal.user_id.clone(),
            decision: input.decision,
            opinion: input.opinion.clone(),
            reviewed_at: self.now(),
        };
        let row = row.sealed(&self.keyring, document.confidentiality);
        review::Entity::insert(review::ActiveModel::from(row).reset_all())
            .exec_without_returning(&txn)
            .await?;
        self.commit(txn).await?;

        Ok(proto::ReviewDocumentResponse {
            document: Some(convert::document(&document)),
            event_id,
        })
    }
}

/// Returns the state after `action`, or `FAILED_PRECONDITION` naming the current state.
pub(super) fn checked_transition(
    document: &document::Model,
    action: DocumentAction,
) -> ServiceResult<DocumentState> {
    document.state.after(action).ok_or_else(|| {
        ServiceError::wrong_state(
            "document",
            &document.id,
            document.state.name(),
            action.verb(),
        )
    })
}

fn require_drafter(
    document: &document::Model,
    context: &CallContext,
    verb: &str,
) -> ServiceResult<()> {
    let caller = &context.principal.user_id;
    require(*caller == document.drafter_id, || {
        format!(
            "only the drafter {} may {verb} document {}, not {caller}",
            document.drafter_id, document.id
        )
    })
}

/// The reviewer must be the user the document was submitted to, and never its drafter.
fn require_assigned_reviewer(
    document: &document::Model,
    context: &CallContext,
) -> ServiceResult<()> {
    let caller = &context.principal.user_id;
    let assigned = document.reviewer_id.as_deref().unwrap_or_default();
    require(caller == assigned, || {
        format!(
            "document {} was submitted to reviewer {assigned}, not to {caller}",
            document.id
        )
    })?;
    require(*caller != document.drafter_id, || {
        format!(
            "the drafter {caller} may not review their own document {}",
            document.id
        )
    })
}

fn review_decision(decision: ReviewDecision) -> proto::ReviewDecision {
    match decision {
        ReviewDecision::Approve => proto::ReviewDecision::Approve,
        ReviewDecision::Return => proto::ReviewDecision::Return,
    }
}

fn new_document_row(
    document_id: &str,
    draft: &NewDraft,
    content: &BlobRef,
    drafter_id: &str,
    now: i64,
) -> document::Model {
    document::Model {
        id: document_id.to_owned(),
        title: draft.title.clone(),
        title_key: validate::search_key(&draft.title),
        category: draft.category.clone(),
        department: draft.department.clone(),
        confidentiality: draft.confidentiality as i32,
        state: DocumentState::Draft,
        drafter_id: drafter_id.to_owned(),
        drafted_at: now,
        revision: 1,
        content_sha256: content.sha256.clone(),
        content_size: i64::try_from(content.size_bytes).unwrap_or(i64::MAX),
        content_media_type: content.media_type.clone(),
        reviewer_id: None,
        file_number: None,
        year: None,
        file_serial: None,
        storage_location: None,
        registered_at: None,
        entity_version: 1,
    }
}

fn revision_row(
    document: &document::Model,
    editor_id: &str,
    edited_at: i64,
    change_summary: &str,
) -> revision::Model {
    revision::Model {
        document_id: document.id.clone(),
        revision: document.revision,
        editor_id: editor_id.to_owned(),
        edited_at,
        change_summary: change_summary.to_owned(),
        content_sha256: document.content_sha256.clone(),
        content_size: document.content_size,
        content_media_type: document.content_media_type.clone(),
    }
}

async fn insert_document(
    txn: &sea_orm::DatabaseTransaction,
    document: &document::Model,
) -> Result<(), sea_orm::DbErr> {
    let row = document::ActiveModel::from(document.clone()).reset_all();
    document::Entity::insert(row)
        .exec_without_returning(txn)
        .await?;
    Ok(())
}

async fn insert_revision(
    txn: &sea_orm::DatabaseTransaction,
    row: revision::Model,
) -> Result<(), sea_orm::DbErr> {
    let row = revision::ActiveModel::from(row).reset_all();
    revision::Entity::insert(row)
        .exec_without_returning(txn)
        .await?;
    Ok(())
}
