//! Storage: registration with a file number, backups and content reads.

use chrono::Datelike;
use sea_orm::ActiveValue::Set;
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseTransaction, DbErr, EntityTrait, QueryFilter,
};
use trace_proto::common::v1::Confidentiality;
use trace_proto::document::v1 as proto;
use trace_runtime::blob::sha256_hex;
use trace_runtime::context::CallContext;
use trace_runtime::event::pack;
use trace_runtime::read_scope::ReadScope;
use trace_runtime::sealed_text::SealedRow;
use trace_runtime::validate;
use trace_runtime::{ServiceError, ServiceResult};
use uuid::Uuid;

use super::drafting::checked_transition;
use super::scope::ReadMethod;
use super::write::{AttemptResult, find_document, lock_document, with_retries};
use super::{DocumentHandler, convert};
use crate::entity::{backup, document, file_number_counter, read, revision};
use crate::rules;
use crate::state::DocumentAction;

/// A validated `RecordBackupRequest`.
struct BackupInput {
    document_id: String,
    medium: String,
    location: String,
}

impl DocumentHandler {
    pub(super) async fn register(
        &self,
        context: &CallContext,
        request: proto::RegisterDocumentRequest,
    ) -> ServiceResult<proto::RegisterDocumentResponse> {
        let document_id = validate::record_id("document_id", &request.document_id)?.to_string();
        let location = validate::line("storage_location", &request.storage_location, 1, 200)?;

        with_retries("register document", || {
            self.try_register(context, &document_id, &location)
        })
        .await
    }

    async fn try_register(
        &self,
        context: &CallContext,
        document_id: &str,
        storage_location: &str,
    ) -> AttemptResult<proto::RegisterDocumentResponse> {
        let txn = self.begin().await?;
        let loaded = lock_document(&txn, document_id).await?;
        let state = checked_transition(&loaded, DocumentAction::Register)?;

        let year = self.today().year();
        let serial = next_serial(&txn, &loaded.category, year).await?;
        let file_number = rules::file_number(&loaded.category, year, serial);

        let changes = document::ActiveModel {
            state: Set(state),
            file_number: Set(Some(file_number.clone())),
            year: Set(Some(year)),
            file_serial: Set(Some(serial)),
            storage_location: Set(Some(storage_location.to_owned())),
            registered_at: Set(Some(self.now())),
            ..Default::default()
        };
        let payload = proto::DocumentRegistered {
            file_number,
            category: loaded.category.clone(),
            year,
            department: loaded.department.clone(),
            revision: convert::count(loaded.revision),
            storage_location: storage_location.to_owned(),
            content: Some(convert::document_content(&loaded)),
        };
        let (document, event_id) = self
            .record_change(
                &txn,
                context,
                &loaded,
                changes,
                "registered",
                pack(&payload),
            )
            .await?;
        self.commit(txn).await?;

        Ok(proto::RegisterDocumentResponse {
            document: Some(convert::document(&document)),
            event_id,
        })
    }

    pub(super) async fn back_up(
        &self,
        context: &CallContext,
        request: proto::RecordBackupRequest,
    ) -> ServiceResult<proto::RecordBackupResponse> {
        let input = BackupInput {
            document_id: validate::record_id("document_id", &request.document_id)?.to_string(),
            medium: validate::line("medium", &request.medium, 1, 64)?,
            location: validate::line("location", &request.location, 1, 500)?,
        };

        with_retries("record backup", || self.try_back_up(context, &input)).await
    }

    async fn try_back_up(
        &self,
        context: &CallContext,
        input: &BackupInput,
    ) -> AttemptResult<proto::RecordBackupResponse> {
        let txn = self.begin().await?;
        let loaded = lock_document(&txn, &input.document_id).await?;
        let state = checked_transition(&loaded, DocumentAction::BackUp)?;

        let row = backup::Model {
            id: Uuid::now_v7().to_string(),
            document_id: loaded.id.clone(),
            revision: loaded.revision,
            medium: input.medium.clone(),
            location: input.location.clone(),
            backed_up_at: self.now(),
            recorded_by: context.principal.user_id.clone(),
        };
        let changes = document::ActiveModel {
            state: Set(state),
            ..Default::default()
        };
        let payload = proto::DocumentBackedUp {
            backup_id: row.id.clone(),
            revision: convert::count(row.revision),
            medium: row.medium.clone(),
            location: row.location.clone(),
        };
        let (_, event_id) = self
            .record_change(&txn, context, &loaded, changes, "backed_up", pack(&payload))
            .await?;

        backup::Entity::insert(backup::ActiveModel::from(row.clone()).reset_all())
            .exec_without_returning(&txn)
            .await?;
        self.commit(txn).await?;

        Ok(proto::RecordBackupResponse {
            backup: Some(convert::backup(&row)),
            event_id,
        })
    }

    /// Reads one revision's content and records the read. The blob is read and checked
    /// against its digest before the transaction, so a read is recorded only when the
    /// content is returned.
    pub(super) async fn read_revision(
        &self,
        context: &CallContext,
        request: proto::ReadContentRequest,
    ) -> ServiceResult<proto::ReadContentResponse> {
        let document_id = validate::record_id("document_id", &request.document_id)?.to_string();

        let presented = match request.access_request_id.as_str() {
            "" => None,
            id => Some(validate::record_id("access_request_id", id)?.to_string()),
        };

        let document = match find_document(&self.db, &document_id).await {
            Err(ServiceError::NotFound { .. })
                if ReadScope::of(&context.principal) != ReadScope::Whole =>
            {
                return Err(ReadMethod::ReadContent
                    .guarded(&document_id)
                    .deny_missing(&self.outbox, context)
                    .await);
            }
            found => found?,
        };
        let revision = self.find_revision(&document, request.revision).await?;
        let access_request_id = self
            .authorize_read(context, &document, &revision, presented.as_deref())
            .await?;
        let content = self.load_content(&document, &revision).await?;

        let event_id = with_retries("record read", || {
            self.try_record_read(context, &revision, access_request_id.as_deref())
        })
        .await?;

        Ok(proto::ReadContentResponse {
            document_id,
            revision: convert::count(revision.revision),
            content_ref: Some(convert::blob_ref(
                &revision.content_sha256,
                revision.content_size,
                &revision.content_media_type,
            )),
            content,
            event_id,
            access_request_id: access_request_id.unwrap_or_default(),
        })
    }

    /// Reads a revision's content, opening it when the document's level seals it, and checks
    /// it against the revision's digest.
    async fn load_content(
        &self,
        document: &document::Model,
        revision: &revision::Model,
    ) -> ServiceResult<Vec<u8>> {
        let failed = |error: anyhow::Error| {
            ServiceError::Internal(error.context(format!(
                "failed to read revision {} of document {}",
                revision.revision, document.id
            )))
        };
        if super::access::level(document) < Confidentiality::Confidential {
            let content = self
                .blobs
                .get(&revision.content_sha256)
                .await
                .map_err(failed)?;
            return Ok(content.to_vec());
        }
        let sealed = self
            .blobs
            .get_sealed(&document.id, &revision.content_sha256)
            .await
            .map_err(failed)?;
        let content = self
            .keyring
            .open(&document.id, &sealed)
            .map_err(|error| failed(error.into()))?;
        let actual = sha256_hex(&content);
        if actual != revision.content_sha256 {
            return Err(failed(anyhow::anyhow!(
                "the opened content hashes to {actual}, not {}",
                revision.content_sha256
            )));
        }
        Ok(content)
    }

    /// Finds a revision of a document; 0 means the latest. Revisions never change once
    /// written, so reading one outside the write transaction is safe.
    async fn find_revision(
        &self,
        document: &document::Model,
        number: u32,
    ) -> ServiceResult<revision::Model> {
        let document_id = document.id.as_str();
        let number = match number {
            0 => document.revision,
            number => i32::try_from(number).unwrap_or(i32::MAX),
        };

        let row = revision::Entity::find_by_id((document_id.to_owned(), number))
            .one(&self.db)
            .await?
            .ok_or_else(|| {
                ServiceError::not_found("revision", format!("{document_id}/{number}"))
            })?;
        Ok(row.opened(&self.keyring)?)
    }

    async fn try_record_read(
        &self,
        context: &CallContext,
        revision: &revision::Model,
        access_request_id: Option<&str>,
    ) -> AttemptResult<String> {
        let txn = self.begin().await?;
        let loaded = lock_document(&txn, &revision.document_id).await?;

        let row = read::Model {
            id: Uuid::now_v7().to_string(),
            document_id: loaded.id.clone(),
            revision: revision.revision,
            reader_id: context.principal.user_id.clone(),
            read_at: self.now(),
        };
        let payload = proto::DocumentRead {
            revision: convert::count(revision.revision),
            content: Some(convert::blob_ref(
                &revision.content_sha256,
                revision.content_size,
                &revision.content_media_type,
            )),
            access_request_id: access_request_id.unwrap_or_default().to_owned(),
        };
        let (_, event_id) = self
            .record_change(
                &txn,
                context,
                &loaded,
                Default::default(),
                "read",
                pack(&payload),
            )
            .await?;

        read::Entity::insert(read::ActiveModel::from(row).reset_all())
            .exec_without_returning(&txn)
            .await?;
        self.commit(txn).await?;
        Ok(event_id)
    }
}

/// Takes the next file number serial of `category` in `year` inside the caller's
/// transaction. The row update locks the counter on PostgreSQL, so concurrent registrations
/// of one category and year receive distinct serials. The unique key on
/// (category, year, file_serial) of documents guards this as well.
async fn next_serial(txn: &DatabaseTransaction, category: &str, year: i32) -> Result<i32, DbErr> {
    let first = file_number_counter::ActiveModel {
        category: Set(category.to_owned()),
        year: Set(year),
        next_serial: Set(1),
    };
    file_number_counter::Entity::insert(first)
        .on_conflict_do_nothing()
        .exec_without_returning(txn)
        .await?;

    file_number_counter::Entity::update_many()
        .col_expr(
            file_number_counter::Column::NextSerial,
            Expr::col(file_number_counter::Column::NextSerial).add(1),
        )
        .filter(file_number_counter::Column::Category.eq(category))
        .filter(file_number_counter::Column::Year.eq(year))
        .exec(txn)
        .await?;

    let counter = file_number_counter::Entity::find_by_id((category.to_owned(), year))
        .one(txn)
        .await?
        .ok_or_else(|| DbErr::RecordNotFound(format!("file number counter {category} {year}")))?;
    Ok(counter.next_serial - 1)
}
