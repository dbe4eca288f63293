//! Communication records: internal communication by email, instant message or phone
//! conference, and external communication with clients and partners, with attachments kept
//! as blobs and links to registered documents such as contracts.

use std::collections::HashSet;

use bytes::Bytes;
use sea_orm::{ActiveModelTrait, DatabaseTransaction};
use trace_proto::common::v1::{BlobRef, Confidentiality};
use trace_proto::worklog::v1 as proto;
use trace_proto::worklog::v1::{CommunicationChannel, CommunicationScope};
use trace_runtime::blob::sha256_hex;
use trace_runtime::clock::{micros_from_timestamp, timestamp};
use trace_runtime::context::CallContext;
use trace_runtime::event::{is_sealed_level, pack};
use trace_runtime::sealed_text::SealedRow;
use trace_runtime::{ServiceError, ServiceResult, validate};
use uuid::Uuid;

use super::write::{AttemptResult, EventTarget, with_retries};
use super::{WorklogHandler, convert};
use crate::entity::{
    communication, communication_attachment, communication_document, communication_participant,
};

/// Maximum number of attachments of one communication.
pub const MAX_ATTACHMENTS: usize = 10;

/// Maximum size of one attachment, in bytes (8 MiB).
pub const MAX_ATTACHMENT_BYTES: usize = 8 * 1024 * 1024;

/// Maximum number of participants of each kind, internal and external.
const MAX_PARTICIPANTS: usize = 100;

/// Maximum number of linked documents of one communication.
const MAX_LINKED_DOCUMENTS: usize = 20;

/// Entity type of communication events.
const ENTITY_TYPE: &str = "communication";

/// A validated `RecordCommunicationRequest`, without attachment content.
struct NewCommunication {
    scope: CommunicationScope,
    channel: CommunicationChannel,
    occurred_at: i64,
    subject: String,
    participant_ids: Vec<String>,
    external_participants: Vec<String>,
    counterpart: String,
    content: String,
    outcome: String,
    notice: String,
    minute_taker_id: Option<String>,
    linked_documents: Vec<proto::LinkedDocument>,
    confidentiality: Confidentiality,
    department: String,
}

/// An attachment that passed validation, with its content.
struct AttachmentInput {
    file_name: String,
    media_type: String,
    content: Vec<u8>,
}

impl WorklogHandler {
    pub(super) async fn record(
        &self,
        context: &CallContext,
        mut request: proto::RecordCommunicationRequest,
    ) -> ServiceResult<proto::RecordCommunicationResponse> {
        let input = self.validate_communication(context, &request)?;
        let attachments = attachments(std::mem::take(&mut request.attachments), input.channel)?;

        let communication_id = Uuid::now_v7().to_string();
        let sealed = is_sealed_level(input.confidentiality as i32);
        let mut stored = Vec::with_capacity(attachments.len());
        for attachment in attachments {
            let file_name = attachment.file_name.clone();
            let blob = if sealed {
                self.store_sealed_attachment(&communication_id, attachment)
                    .await?
            } else {
                self.store_attachment(attachment).await?
            };
            stored.push((file_name, blob));
        }

        with_retries("record communication", || {
            self.try_record(context, &communication_id, &input, &stored)
        })
        .await
    }

    /// Stores content before the transaction. Blobs are content-addressed, so a blob left
    /// behind by a call that fails later is harmless and reused by the next identical upload.
    async fn store_attachment(&self, attachment: AttachmentInput) -> ServiceResult<BlobRef> {
        self.blobs
            .put(Bytes::from(attachment.content), &attachment.media_type)
            .await
            .map_err(|error| ServiceError::Internal(error.context("failed to store an attachment")))
    }

    /// Stores an attachment of a CONFIDENTIAL or SECRET communication sealed for the
    /// communication id, at `sealed/<communication id>/<sha256>` of the blob store.
    async fn store_sealed_attachment(
        &self,
        communication_id: &str,
        attachment: AttachmentInput,
    ) -> ServiceResult<BlobRef> {
        let blob = BlobRef {
            sha256: sha256_hex(&attachment.content),
            size_bytes: attachment.content.len() as u64,
            media_type: attachment.media_type,
        };
        let sealed = self.keyring.seal(communication_id, &attachment.content);
        self.blobs
            .put_sealed(communication_id, &blob.sha256, sealed)
            .await
            .map_err(|error| {
                ServiceError::Internal(error.context("failed to store an attachment"))
            })?;
        Ok(blob)
    }

    fn validate_communication(
        &self,
        context: &CallContext,
        request: &proto::RecordCommunicationRequest,
    ) -> ServiceResult<NewCommunication> {
        let scope: CommunicationScope = validate::enum_value("scope", request.scope)?;
        let channel: CommunicationChannel = validate::enum_value("channel", request.channel)?;
        let external = scope == CommunicationScope::External;
        let conference = channel == CommunicationChannel::PhoneConference;

        let input = NewCommunication {
            scope,
            channel,
            occurred_at: self.occurred_at(request.occurred_at.as_ref())?,
            subject: validate::line("subject", &request.subject, 1, 200)?,
            participant_ids: self.participant_ids(&request.participant_ids)?,
            external_participants: external_participants(&request.external_participants)?,
            counterpart: counterpart(&request.counterpart, external)?,
            content: validate::text("content", &request.content, 1, 8000)?,
            outcome: outcome(&request.outcome, external || conference)?,
            notice: notice(&request.notice, conference)?,
            minute_taker_id: self.minute_taker(&request.minute_taker_id, conference)?,
            linked_documents: self.linked_documents(&request.linked_documents)?,
            confidentiality: validate::enum_value("confidentiality", request.confidentiality)?,
            department: context.principal.department.clone(),
        };
        if input.participant_ids.is_empty() && input.external_participants.is_empty() {
            return Err(ServiceError::invalid(
                "participant_ids",
                "",
                "at least one participant is required, in participant_ids or external_participants",
            ));
        }
        Ok(input)
    }

    fn occurred_at(&self, value: Option<&prost_types::Timestamp>) -> ServiceResult<i64> {
        let value = value.ok_or_else(|| ServiceError::invalid("occurred_at", "", "is required"))?;
        let shown = format!("{}s {}ns", value.seconds, value.nanos);
        let micros = micros_from_timestamp(value).ok_or_else(|| {
            ServiceError::invalid("occurred_at", &shown, "is not a valid timestamp")
        })?;
        if !(0..=self.now()).contains(&micros) {
            return Err(ServiceError::invalid(
                "occurred_at",
                &shown,
                "must be from 1970-01-01 to the server time",
            ));
        }
        Ok(micros)
    }

    /// Checks that `user_id` is a valid id of someone in the company directory.
    fn known_user(&self, field: &str, user_id: &str) -> ServiceResult<String> {
        let user_id = validate::user_id(field, user_id)?;
        if self.directory.employee(&user_id).is_none() {
            return Err(ServiceError::invalid(
                field,
                &user_id,
                "is not in the company directory",
            ));
        }
        Ok(user_id)
    }

    fn participant_ids(&self, values: &[String]) -> ServiceResult<Vec<String>> {
        check_count("participant_ids", values.len(), MAX_PARTICIPANTS)?;
        let mut seen = HashSet::new();
        let mut ids = Vec::with_capacity(values.len());
        for (index, value) in values.iter().enumerate() {
            let field = format!("participant_ids[{index}]");
            let user_id = self.known_user(&field, value)?;
            if !seen.insert(user_id.clone()) {
                return Err(ServiceError::invalid(field, &user_id, "is listed twice"));
            }
            ids.push(user_id);
        }
        Ok(ids)
    }

    fn minute_taker(&self, value: &str, conference: bool) -> ServiceResult<Option<String>> {
        match (conference, value.is_empty()) {
            (true, true) => Err(ServiceError::invalid(
                "minute_taker_id",
                value,
                "is required for a phone conference",
            )),
            (true, false) => Ok(Some(self.known_user("minute_taker_id", value)?)),
            (false, true) => Ok(None),
            (false, false) => Err(ServiceError::invalid(
                "minute_taker_id",
                value,
                "must be empty unless the channel is COMMUNICATION_CHANNEL_PHONE_CONFERENCE",
            )),
        }
    }

    // NOTE: document ids are checked for form only; the worklog service does not call the
    // document service to confirm that each one is registered.
    fn linked_documents(
        &self,
        values: &[proto::LinkedDocument],
    ) -> ServiceResult<Vec<proto::LinkedDocument>> {
        check_count("linked_documents", values.len(), MAX_LINKED_DOCUMENTS)?;
        let mut seen = HashSet::new();
        let mut documents = Vec::with_capacity(values.len());
        for (index, value) in values.iter().enumerate() {
            let field = |name: &str| format!("linked_documents[{index}].{name}");
            let document_id =
                validate::record_id(&field("document_id"), &value.document_id)?.to_string();
            if !seen.insert(document_id.clone()) {
                return Err(ServiceError::invalid(
                    field("document_id"),
                    &document_id,
                    "is listed twice",
                ));
            }
            let kind: proto::LinkedDocumentKind = validate::enum_value(&field("kind"), value.kind)?;
            documents.push(proto::LinkedDocument {
                document_id,
                kind: kind as i32,
                responsible_id: self.known_user(&field("responsible_id"), &value.responsible_id)?,
                circulation: validate::text(&field("circulation"), &value.circulation, 0, 1000)?,
            });
        }
        Ok(documents)
    }

    async fn try_record(
        &self,
        context: &CallContext,
        communication_id: &str,
        input: &NewCommunication,
        attachments: &[(String, BlobRef)],
    ) -> AttemptResult<proto::RecordCommunicationResponse> {
        let row = communication_row(context, communication_id, input, self.now());
        let txn = self.begin().await?;

        let stored = row.clone().sealed(&self.keyring, row.confidentiality);
        communication::ActiveModel::from(stored)
            .reset_all()
            .insert(&txn)
            .await?;
        insert_parts(&txn, communication_id, input, attachments).await?;

        let stored_attachments: Vec<proto::StoredAttachment> = attachments
            .iter()
            .map(|(file_name, blob)| proto::StoredAttachment {
                file_name: file_name.clone(),
                content: Some(blob.clone()),
            })
            .collect();
        let payload = recorded_payload(input, &stored_attachments);
        let target = EventTarget {
            entity_type: ENTITY_TYPE,
            entity_id: communication_id,
            entity_version: row.entity_version,
            action: "recorded",
            confidentiality: input.confidentiality,
        };
        let event_id = self
            .stage_event(&txn, context, target, pack(&payload))
            .await?;
        self.commit(txn).await?;

        Ok(proto::RecordCommunicationResponse {
            communication: Some(communication_message(&row, input, stored_attachments)),
            event_id,
        })
    }
}

fn check_count(field: &str, count: usize, max: usize) -> ServiceResult<()> {
    if count > max {
        return Err(ServiceError::invalid(
            field,
            &format!("{count} entries"),
            format!("must hold at most {max} entries"),
        ));
    }
    Ok(())
}

fn external_participants(values: &[String]) -> ServiceResult<Vec<String>> {
    check_count("external_participants", values.len(), MAX_PARTICIPANTS)?;
    values
        .iter()
        .enumerate()
        .map(|(index, value)| {
            validate::line(&format!("external_participants[{index}]"), value, 1, 100)
        })
        .collect()
}

/// Checks that a field is set when `required` is true and empty otherwise. `context` completes
/// the message "is required ...".
fn check_presence(field: &str, value: &str, required: bool, context: &str) -> ServiceResult<()> {
    match (required, value.is_empty()) {
        (true, true) => Err(ServiceError::invalid(
            field,
            value,
            format!("is required {context}"),
        )),
        (false, false) => Err(ServiceError::invalid(
            field,
            value,
            format!("must be empty unless it is required {context}"),
        )),
        _ => Ok(()),
    }
}

fn counterpart(value: &str, external: bool) -> ServiceResult<String> {
    check_presence(
        "counterpart",
        value,
        external,
        "for an external communication",
    )?;
    validate::line("counterpart", value, 0, 200)
}

fn notice(value: &str, conference: bool) -> ServiceResult<String> {
    check_presence("notice", value, conference, "for a phone conference")?;
    validate::text("notice", value, 0, 2000)
}

fn outcome(value: &str, required: bool) -> ServiceResult<String> {
    if required && value.is_empty() {
        return Err(ServiceError::invalid(
            "outcome",
            value,
            "is required for an external communication and for the decisions of a phone conference",
        ));
    }
    validate::text("outcome", value, 0, 4000)
}

/// Validates attachments: at most [`MAX_ATTACHMENTS`], each 1 byte to
/// [`MAX_ATTACHMENT_BYTES`], and at least one for an instant message, its saved screenshot.
fn attachments(
    values: Vec<proto::Attachment>,
    channel: CommunicationChannel,
) -> ServiceResult<Vec<AttachmentInput>> {
    check_count("attachments", values.len(), MAX_ATTACHMENTS)?;
    if channel == CommunicationChannel::InstantMessage && values.is_empty() {
        return Err(ServiceError::invalid(
            "attachments",
            "",
            "an instant message needs at least one attachment, the saved screenshot",
        ));
    }
    values
        .into_iter()
        .enumerate()
        .map(|(index, value)| {
            let field = |name: &str| format!("attachments[{index}].{name}");
            if value.content.is_empty() || value.content.len() > MAX_ATTACHMENT_BYTES {
                return Err(ServiceError::invalid(
                    field("content"),
                    &format!("{} bytes", value.content.len()),
                    format!("must be 1 to {MAX_ATTACHMENT_BYTES} bytes"),
                ));
            }
            let media_type = validate::media_type(&field("media_type"), &value.media_type)?;
            validate::text_content(&field("content"), &value.content, &media_type)?;
            Ok(AttachmentInput {
                file_name: validate::line(&field("file_name"), &value.file_name, 1, 255)?,
                media_type,
                content: value.content,
            })
        })
        .collect()
}

fn communication_row(
    context: &CallContext,
    id: &str,
    input: &NewCommunication,
    now: i64,
) -> communication::Model {
    communication::Model {
        id: id.to_owned(),
        scope: input.scope.as_str_name().to_owned(),
        channel: input.channel.as_str_name().to_owned(),
        occurred_at: input.occurred_at,
        subject: input.subject.clone(),
        counterpart: input.counterpart.clone(),
        counterpart_key: validate::search_key(&input.counterpart),
        content: input.content.clone(),
        outcome: input.outcome.clone(),
        notice: input.notice.clone(),
        minute_taker_id: input.minute_taker_id.clone(),
        confidentiality: input.confidentiality as i32,
        recorded_by: context.principal.user_id.clone(),
        department: input.department.clone(),
        recorded_at: now,
        entity_version: 1,
    }
}

/// Inserts participants, attachments and linked documents, each with its position.
async fn insert_parts(
    txn: &DatabaseTransaction,
    communication_id: &str,
    input: &NewCommunication,
    attachments: &[(String, BlobRef)],
) -> Result<(), sea_orm::DbErr> {
    let internal = input
        .participant_ids
        .iter()
        .map(|id| (Some(id.clone()), None));
    let external = input
        .external_participants
        .iter()
        .map(|name| (None, Some(name.clone())));
    for ((user_id, external_name), position) in internal.chain(external).zip(0..) {
        let row = communication_participant::Model {
            id: Uuid::now_v7().to_string(),
            communication_id: communication_id.to_owned(),
            position,
            user_id,
            external_name,
        };
        communication_participant::ActiveModel::from(row)
            .reset_all()
            .insert(txn)
            .await?;
    }
    for ((file_name, blob), position) in attachments.iter().zip(0..) {
        let row = communication_attachment::Model {
            id: Uuid::now_v7().to_string(),
            communication_id: communication_id.to_owned(),
            position,
            file_name: file_name.clone(),
            sha256: blob.sha256.clone(),
            size_bytes: i64::try_from(blob.size_bytes).unwrap_or(i64::MAX),
            media_type: blob.media_type.clone(),
        };
        communication_attachment::ActiveModel::from(row)
            .reset_all()
            .insert(txn)
            .await?;
    }
    for (document, position) in input.linked_documents.iter().zip(0..) {
        let kind = proto::LinkedDocumentKind::try_from(document.kind).unwrap_or_default();
        let row = communication_document::Model {
            id: Uuid::now_v7().to_string(),
            communication_id: communication_id.to_owned(),
            position,
            document_id: document.document_id.clone(),
            kind: kind.as_str_name().to_owned(),
            responsible_id: document.responsible_id.clone(),
            circulation: document.circulation.clone(),
        };
        communication_document::ActiveModel::from(row)
            .reset_all()
            .insert(txn)
            .await?;
    }
    Ok(())
}

fn recorded_payload(
    input: &NewCommunication,
    attachments: &[proto::StoredAttachment],
) -> proto::CommunicationRecorded {
    proto::CommunicationRecorded {
        scope: input.scope as i32,
        channel: input.channel as i32,
        occurred_at: Some(timestamp(input.occurred_at)),
        subject: input.subject.clone(),
        participant_ids: input.participant_ids.clone(),
        external_participants: input.external_participants.clone(),
        counterpart: input.counterpart.clone(),
        content: input.content.clone(),
        outcome: input.outcome.clone(),
        notice: input.notice.clone(),
        minute_taker_id: input.minute_taker_id.clone().unwrap_or_default(),
        attachments: attachments.to_vec(),
        linked_documents: input.linked_documents.clone(),
        department: input.department.clone(),
    }
}

fn communication_message(
    row: &communication::Model,
    input: &NewCommunication,
    attachments: Vec<proto::StoredAttachment>,
) -> proto::Communication {
    let parts = convert::CommunicationParts {
        participants: Vec::new(),
        attachments: Vec::new(),
        documents: Vec::new(),
    };
    proto::Communication {
        participant_ids: input.participant_ids.clone(),
        external_participants: input.external_participants.clone(),
        attachments,
        linked_documents: input.linked_documents.clone(),
        ..convert::communication(row, &parts)
    }
}
