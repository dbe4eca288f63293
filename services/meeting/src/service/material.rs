//! Materials: agendas, reports and discussion papers with their author, completion time and
//! content (a stored blob or a registered document), and their review.

use bytes::Bytes;
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter};
use trace_proto::common::v1::BlobRef;
use trace_proto::meeting::v1 as proto;
use trace_proto::meeting::v1::add_material_request::Source;
use trace_runtime::blob::sha256_hex;
use trace_runtime::clock::timestamp;
use trace_runtime::context::{CallContext, role};
use trace_runtime::event::{is_sealed_level, pack};
use trace_runtime::sealed_text::SealedRow;
use trace_runtime::{ServiceError, ServiceResult, validate};
use uuid::Uuid;

use super::input;
use super::write::{
    AttemptResult, check_meeting_step, find_meeting, load_attendees, require, with_retries,
};
use super::{MeetingHandler, convert};
use crate::entity::material;
use crate::state::{MaterialKind, MeetingAction, ReviewState};

/// Source of a material's content.
enum MaterialSource {
    /// Content bytes and their media type, stored as a blob before the transaction.
    Content(Vec<u8>, String),
    /// A document registered in the document service.
    Document(String),
}

/// A checked `AddMaterialRequest`, without its content.
struct MaterialInput {
    meeting_id: String,
    title: String,
    kind: MaterialKind,
    author_id: String,
    completed_at: i64,
}

/// A checked `ReviewMaterialRequest`.
struct ReviewInput {
    meeting_id: String,
    material_id: String,
    state: ReviewState,
    opinion: String,
}

impl MeetingHandler {
    fn parse_material(
        &self,
        request: proto::AddMaterialRequest,
    ) -> ServiceResult<(MaterialInput, MaterialSource)> {
        let kind: proto::MaterialKind = validate::enum_value("kind", request.kind)?;
        let completed_at = input::timestamp("completed_at", request.completed_at.as_ref())?;
        if !(0..=self.now()).contains(&completed_at) {
            return Err(ServiceError::invalid(
                "completed_at",
                &trace_runtime::clock::from_micros(completed_at).to_rfc3339(),
                "must be from 1970-01-01 to the server time",
            ));
        }

        let material = MaterialInput {
            meeting_id: validate::record_id("meeting_id", &request.meeting_id)?.to_string(),
            title: validate::line("title", &request.title, 1, 200)?,
            kind: MaterialKind::from_proto(kind)
                .ok_or_else(|| ServiceError::invalid("kind", "0", "is required"))?,
            author_id: validate::user_id("author_id", &request.author_id)?,
            completed_at,
        };
        let source = self.parse_source(request.source, &request.media_type)?;
        Ok((material, source))
    }

    fn parse_source(
        &self,
        source: Option<Source>,
        media_type: &str,
    ) -> ServiceResult<MaterialSource> {
        match source {
            None => Err(ServiceError::invalid(
                "source",
                "",
                "is required: set either content or document_id",
            )),
            Some(Source::Content(content)) => {
                let limit = self.settings.max_content_bytes;
                if content.is_empty() || content.len() > limit {
                    return Err(ServiceError::invalid(
                        "content",
                        &format!("{} bytes", content.len()),
                        format!("must be 1 to {limit} bytes"),
                    ));
                }
                let media_type = validate::media_type("media_type", media_type)?;
                validate::text_content("content", &content, &media_type)?;
                Ok(MaterialSource::Content(content, media_type))
            }
            Some(Source::DocumentId(document_id)) => {
                if !media_type.is_empty() {
                    return Err(ServiceError::invalid(
                        "media_type",
                        media_type,
                        "must be empty when the material refers to a document",
                    ));
                }
                // NOTE: the id is checked for its form only; this service does not ask the
                // document service whether the document is registered.
                let document_id = validate::record_id("document_id", &document_id)?;
                Ok(MaterialSource::Document(document_id.to_string()))
            }
        }
    }

    /// Stores content before the transaction. Blobs are content-addressed, so a blob left
    /// behind by a call that fails later is harmless and reused by the next identical upload.
    /// Content of a CONFIDENTIAL or SECRET meeting is sealed for the material id instead, at
    /// `sealed/<material id>/<sha256>` of the blob store.
    async fn store_content(
        &self,
        source: MaterialSource,
        material_id: &str,
        confidentiality: i32,
    ) -> ServiceResult<(Option<BlobRef>, Option<String>)> {
        match source {
            MaterialSource::Document(document_id) => Ok((None, Some(document_id))),
            MaterialSource::Content(content, media_type) if is_sealed_level(confidentiality) => {
                let blob = BlobRef {
                    sha256: sha256_hex(&content),
                    size_bytes: content.len() as u64,
                    media_type,
                };
                let sealed = self.keyring.seal(material_id, &content);
                self.blobs
                    .put_sealed(material_id, &blob.sha256, sealed)
                    .await
                    .map_err(|error| {
                        ServiceError::Internal(error.context("failed to store material content"))
                    })?;
                Ok((Some(blob), None))
            }
            MaterialSource::Content(content, media_type) => {
                let blob = self
                    .blobs
                    .put(Bytes::from(content), &media_type)
                    .await
                    .map_err(|error| {
                        ServiceError::Internal(error.context("failed to store material content"))
                    })?;
                Ok((Some(blob), None))
            }
        }
    }

    pub(super) async fn add_material_to(
        &self,
        context: &CallContext,
        request: proto::AddMaterialRequest,
    ) -> ServiceResult<proto::AddMaterialResponse> {
        let (material, source) = self.parse_material(request)?;
        // The level is fixed when the meeting is planned, so reading it before the
        // transaction is safe.
        let meeting = find_meeting(&self.keyring, &self.db, &material.meeting_id).await?;
        let material_id = Uuid::now_v7().to_string();
        let stored = self
            .store_content(source, &material_id, meeting.confidentiality)
            .await?;

        with_retries("add material", || {
            self.try_add_material(context, &material_id, &material, &stored)
        })
        .await
    }

    async fn try_add_material(
        &self,
        context: &CallContext,
        material_id: &str,
        material: &MaterialInput,
        (content, document_id): &(Option<BlobRef>, Option<String>),
    ) -> AttemptResult<proto::AddMaterialResponse> {
        let txn = self.begin().await?;
        let loaded = find_meeting(&self.keyring, &txn, &material.meeting_id).await?;
        check_meeting_step(&loaded, MeetingAction::AddMaterial)?;
        let caller = &context.principal.user_id;
        let attendees = load_attendees(&txn, &loaded.id).await?;
        require(
            *caller == loaded.organiser_id || attendees.contains(caller),
            || {
                format!(
                    "only the organiser or a planned attendee may add material to meeting {}, not {caller}",
                    loaded.id
                )
            },
        )?;

        let row = material::Model {
            id: material_id.to_owned(),
            meeting_id: loaded.id.clone(),
            title: material.title.clone(),
            kind: material.kind,
            author_id: material.author_id.clone(),
            completed_at: material.completed_at,
            content_sha256: content.as_ref().map(|blob| blob.sha256.clone()),
            content_size: content
                .as_ref()
                .map(|blob| i64::try_from(blob.size_bytes).unwrap_or(i64::MAX)),
            content_media_type: content.as_ref().map(|blob| blob.media_type.clone()),
            document_id: document_id.clone(),
            review_state: ReviewState::Pending,
            reviewer_id: None,
            review_opinion: None,
            reviewed_at: None,
            added_by: caller.clone(),
            added_at: self.now(),
        };
        let stored = row.clone().sealed(&self.keyring, loaded.confidentiality);
        material::Entity::insert(material::ActiveModel::from(stored))
            .exec_without_returning(&txn)
            .await?;

        let payload = proto::MaterialAdded {
            material_id: row.id.clone(),
            title: row.title.clone(),
            kind: row.kind.number(),
            author_id: row.author_id.clone(),
            completed_at: Some(timestamp(row.completed_at)),
            content: content.clone(),
            document_id: document_id.clone().unwrap_or_default(),
        };
        let (_, event_id) = self
            .change_meeting(
                &txn,
                context,
                &loaded,
                Default::default(),
                "material_added",
                pack(&payload),
            )
            .await?;
        self.commit(txn).await?;

        Ok(proto::AddMaterialResponse {
            material: Some(convert::material(&row)),
            event_id,
        })
    }

    pub(super) async fn review(
        &self,
        context: &CallContext,
        request: proto::ReviewMaterialRequest,
    ) -> ServiceResult<proto::ReviewMaterialResponse> {
        let state: proto::ReviewState = validate::enum_value("review_state", request.review_state)?;
        let state = match ReviewState::from_proto(state) {
            Some(state @ (ReviewState::Approved | ReviewState::Returned)) => state,
            _ => {
                return Err(ServiceError::invalid(
                    "review_state",
                    &request.review_state.to_string(),
                    "must be APPROVED or RETURNED",
                ));
            }
        };
        let review = ReviewInput {
            meeting_id: validate::record_id("meeting_id", &request.meeting_id)?.to_string(),
            material_id: validate::record_id("material_id", &request.material_id)?.to_string(),
            state,
            opinion: validate::text("opinion", &request.opinion, 1, 4000)?,
        };

        with_retries("review material", || self.try_review(context, &review)).await
    }

    async fn try_review(
        &self,
        context: &CallContext,
        review: &ReviewInput,
    ) -> AttemptResult<proto::ReviewMaterialResponse> {
        let txn = self.begin().await?;
        let loaded = find_meeting(&self.keyring, &txn, &review.meeting_id).await?;
        let material = material::Entity::find_by_id(review.material_id.clone())
            .filter(material::Column::MeetingId.eq(loaded.id.as_str()))
            .one(&txn)
            .await?
            .ok_or_else(|| ServiceError::not_found("material", &review.material_id))?
            .opened(&self.keyring)
            .map_err(ServiceError::from)?;
        check_meeting_step(&loaded, MeetingAction::ReviewMaterial)?;
        check_reviewer(context, &loaded.organiser_id, &material)?;
        if material.review_state != ReviewState::Pending {
            return Err(ServiceError::wrong_state(
                "material",
                &material.id,
                material.review_state.name(),
                "review",
            )
            .into());
        }

        let now = self.now();
        let reviewed = material::Model {
            review_state: review.state,
            reviewer_id: Some(context.principal.user_id.clone()),
            review_opinion: Some(review.opinion.clone()),
            reviewed_at: Some(now),
            ..material
        };
        let stored = reviewed
            .clone()
            .sealed(&self.keyring, loaded.confidentiality);
        material::Entity::update(material::ActiveModel::from(stored).reset_all())
            .exec(&txn)
            .await?;

        let payload = proto::MaterialReviewed {
            material_id: reviewed.id.clone(),
            review_state: review.state.number(),
            opinion: review.opinion.clone(),
        };
        let (_, event_id) = self
            .change_meeting(
                &txn,
                context,
                &loaded,
                Default::default(),
                "material_reviewed",
                pack(&payload),
            )
            .await?;
        self.commit(txn).await?;

        Ok(proto::ReviewMaterialResponse {
            material: Some(convert::material(&reviewed)),
            event_id,
        })
    }
}

/// Reviewers are the organiser, supervisors and department heads, never the author.
fn check_reviewer(
    context: &CallContext,
    organiser_id: &str,
    material: &material::Model,
) -> ServiceResult<()> {
    let principal = &context.principal;
    let caller = &principal.user_id;
    require(*caller != material.author_id, || {
        format!(
            "the author {caller} may not review their own material {}",
            material.id
        )
    })?;
    require(
        caller == organiser_id
            || principal.has_role(role::SUPERVISOR)
            || principal.has_role(role::DEPARTMENT_HEAD),
        || {
            format!(
                "only the organiser, a supervisor or a department head may review material {}, not {caller}",
                material.id
            )
        },
    )
}
