//! Reading the content of CONFIDENTIAL and SECRET reports and communications. The participants
//! of a record read its content freely: the author of a report and their direct supervisor,
//! and the recorder, internal participants, minute-taker and linked-document owners of a
//! communication. Other callers who may list the record (the department head and the
//! administration and audit roles) also need their own approved, unexpired access request for
//! it, and for a SECRET record the current agreement, as `trace_runtime::access_approval`
//! decides. Listings return a record without that approval with its content withheld. Every
//! read that returns the content of a CONFIDENTIAL or SECRET record, by id or in a listing, is
//! recorded as the record's `read` event naming the request used, or no request for a
//! participant. GetReport and GetCommunication deny instead of withholding, recorded as a
//! `read_denied` event.

use std::collections::HashSet;

use sea_orm::ActiveValue::Set;
use sea_orm::{ColumnTrait, DatabaseTransaction, EntityTrait, QueryFilter, QuerySelect};
use trace_proto::common::v1::Confidentiality;
use trace_proto::worklog::v1 as proto;
use trace_runtime::access_approval::{self, ApprovalCheck, Denial};
use trace_runtime::context::CallContext;
use trace_runtime::event::pack;
use trace_runtime::read_scope::GuardedRead;
use trace_runtime::sealed_text::SealedRow;
use trace_runtime::{ServiceError, ServiceResult};

use super::write::{AttemptError, AttemptResult, EventTarget, find_report, with_retries};
use super::{SERVICE, WorklogHandler, access};
use crate::entity::{communication, communication_document, communication_participant, report};

/// Entity type of communication events.
pub(super) const COMMUNICATION_ENTITY: &str = "communication";

/// Description of the callers who read a record, which ends the denial message.
const READERS: &str = "\
    a report is read by its author, their direct supervisor, the head of the author's \
    department and the administration and audit roles; a communication by its recorder, \
    participants, minute-taker and linked-document owners, the head of its department and \
    the administration and audit roles";

/// A report or communication, the records that access requests are for.
#[derive(Debug, Clone)]
pub(super) enum Record {
    Report(report::Model),
    Communication(communication::Model),
}

impl Record {
    pub fn id(&self) -> &str {
        match self {
            Self::Report(row) => &row.id,
            Self::Communication(row) => &row.id,
        }
    }

    /// Returns the record kind as messages name it.
    pub fn noun(&self) -> &'static str {
        match self {
            Self::Report(_) => "report",
            Self::Communication(_) => "communication",
        }
    }

    pub fn confidentiality(&self) -> i32 {
        match self {
            Self::Report(row) => row.confidentiality,
            Self::Communication(row) => row.confidentiality,
        }
    }

    /// Returns the department whose supervisors and head decide access requests.
    pub fn department(&self) -> &str {
        match self {
            Self::Report(row) => &row.department,
            Self::Communication(row) => &row.department,
        }
    }
}

/// The outcome of the approval rule for one read of a record's content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Grant {
    /// The record is below CONFIDENTIAL, so the read is not recorded.
    Free,
    /// The caller takes part in the CONFIDENTIAL or SECRET record, recorded as a `read`
    /// event naming no request.
    Participant,
    /// Read with this approved access request, recorded as a `read` event naming it.
    Approved(String),
    /// No current approval, so the content is withheld.
    Withheld(Denial),
}

impl Grant {
    pub fn withheld(&self) -> bool {
        matches!(self, Self::Withheld(_))
    }

    /// Returns the access request id that the read's `read` event names, empty for a
    /// participant, or `None` when the read is not recorded.
    fn recorded_request(&self) -> Option<&str> {
        match self {
            Self::Participant => Some(""),
            Self::Approved(request_id) => Some(request_id),
            Self::Free | Self::Withheld(_) => None,
        }
    }
}

/// The calls that the read rule guards, named as in the gRPC service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ReadMethod {
    GetReport,
    GetCommunication,
    ListReports,
    PendingForSupervisor,
    ListReportRounds,
    ListCommunications,
    RequestAccess,
    ListAccessRequests,
}

impl ReadMethod {
    pub fn name(self) -> &'static str {
        match self {
            Self::GetReport => "GetReport",
            Self::GetCommunication => "GetCommunication",
            Self::ListReports => "ListReports",
            Self::PendingForSupervisor => "PendingForSupervisor",
            Self::ListReportRounds => "ListReportRounds",
            Self::ListCommunications => "ListCommunications",
            Self::RequestAccess => "RequestAccess",
            Self::ListAccessRequests => "ListAccessRequests",
        }
    }

    fn guarded<'a>(self, record: &'static str, record_id: &'a str) -> GuardedRead<'a> {
        GuardedRead {
            service: SERVICE,
            grpc_service: "trace.worklog.v1.WorklogService",
            method: self.name(),
            record,
            record_id,
            readers: READERS,
        }
    }
}

/// Finds the communication `communication_id` with its sealed text opened.
pub(super) async fn find_communication<C: sea_orm::ConnectionTrait>(
    keyring: &trace_runtime::seal::Keyring,
    connection: &C,
    communication_id: &str,
) -> ServiceResult<communication::Model> {
    let row = communication::Entity::find_by_id(communication_id.to_owned())
        .one(connection)
        .await?
        .ok_or_else(|| ServiceError::not_found("communication", communication_id))?;
    Ok(row.opened(keyring)?)
}

/// Finds the report or communication `record_id`; `NOT_FOUND` names a record.
pub(super) async fn find_record<C: sea_orm::ConnectionTrait>(
    keyring: &trace_runtime::seal::Keyring,
    connection: &C,
    record_id: &str,
) -> ServiceResult<Record> {
    if let Some(row) = report::Entity::find_by_id(record_id.to_owned())
        .one(connection)
        .await?
    {
        return Ok(Record::Report(row));
    }
    match find_communication(keyring, connection, record_id).await {
        Ok(row) => Ok(Record::Communication(row)),
        Err(ServiceError::NotFound { .. }) => Err(ServiceError::not_found(
            "report or communication",
            record_id,
        )),
        Err(error) => Err(error),
    }
}

impl WorklogHandler {
    /// Returns true when `caller` takes part in `report`: its author, the direct supervisor it
    /// was submitted to, or the author's direct supervisor now.
    pub(super) fn takes_part_in_report(&self, caller: &str, report: &report::Model) -> bool {
        caller == report.author_id
            || caller == report.supervisor_id
            || self.directory.is_supervisor_of(caller, &report.author_id)
    }

    /// Returns the ids of the communications among `rows` that `caller` takes part in: as
    /// recorder, minute-taker, internal participant or owner of a linked document.
    pub(super) async fn communications_taken_part_in(
        &self,
        caller: &str,
        rows: &[communication::Model],
    ) -> ServiceResult<HashSet<String>> {
        let ids: Vec<&str> = rows.iter().map(|row| row.id.as_str()).collect();
        let participated: Vec<String> = communication_participant::Entity::find()
            .select_only()
            .column(communication_participant::Column::CommunicationId)
            .filter(communication_participant::Column::CommunicationId.is_in(ids.clone()))
            .filter(communication_participant::Column::UserId.eq(caller))
            .into_tuple()
            .all(&self.db)
            .await?;
        let responsible: Vec<String> = communication_document::Entity::find()
            .select_only()
            .column(communication_document::Column::CommunicationId)
            .filter(communication_document::Column::CommunicationId.is_in(ids))
            .filter(communication_document::Column::ResponsibleId.eq(caller))
            .into_tuple()
            .all(&self.db)
            .await?;
        let mut taken_part: HashSet<String> = participated.into_iter().chain(responsible).collect();
        for row in rows {
            if row.recorded_by == caller || row.minute_taker_id.as_deref() == Some(caller) {
                taken_part.insert(row.id.clone());
            }
        }
        Ok(taken_part)
    }

    /// Returns true when `caller` may list `record` at all, before the approval rule.
    async fn in_read_scope(&self, context: &CallContext, record: &Record) -> ServiceResult<bool> {
        let principal = &context.principal;
        Ok(match record {
            Record::Report(row) => {
                access::may_read_reports_of(&self.directory, principal, &row.author_id)
            }
            Record::Communication(row) => {
                access::reads_everything(principal)
                    || access::departments_headed_by(&self.directory, &principal.user_id)
                        .contains(&row.department)
                    || self
                        .communications_taken_part_in(&principal.user_id, std::slice::from_ref(row))
                        .await?
                        .contains(&row.id)
            }
        })
    }

    /// Returns true when `caller` takes part in `record`.
    pub(super) async fn takes_part(&self, caller: &str, record: &Record) -> ServiceResult<bool> {
        Ok(match record {
            Record::Report(row) => self.takes_part_in_report(caller, row),
            Record::Communication(row) => self
                .communications_taken_part_in(caller, std::slice::from_ref(row))
                .await?
                .contains(&row.id),
        })
    }

    /// Returns true when `caller` accepted the configured agreement version.
    async fn agreement_accepted(&self, caller: &str) -> ServiceResult<bool> {
        access_approval::agreement_accepted(&self.db, caller, &self.agreement_version).await
    }

    /// Judges one read of `record` by `caller` with the approval rule.
    async fn judge(
        &self,
        caller: &str,
        record: &Record,
        takes_part: bool,
        agreement_accepted: bool,
    ) -> ServiceResult<Grant> {
        let level = access_approval::level_of(record.confidentiality());
        if level < Confidentiality::Confidential {
            return Ok(Grant::Free);
        }
        if takes_part {
            return Ok(Grant::Participant);
        }
        let now = self.now();
        let request = access_approval::newest_request(&self.db, record.id(), caller, now).await?;
        let check = ApprovalCheck {
            caller,
            record: record.noun(),
            record_id: record.id(),
            level,
            takes_part,
            request: request.as_ref(),
            agreement_accepted,
            now,
        };
        Ok(match access_approval::check_approval(&check) {
            Ok(Some(request_id)) => Grant::Approved(request_id),
            // The rule needs no request only for lower levels and participants, both
            // returned above.
            Ok(None) => Grant::Participant,
            Err(denial) => Grant::Withheld(denial),
        })
    }

    /// Judges the caller's read of each listed record, in order.
    pub(super) async fn grants(
        &self,
        context: &CallContext,
        records: &[Record],
        taken_part: &HashSet<String>,
    ) -> ServiceResult<Vec<Grant>> {
        let caller = context.principal.user_id.as_str();
        let needs_approval = records.iter().any(|record| {
            access_approval::level_of(record.confidentiality()) >= Confidentiality::Confidential
                && !taken_part.contains(record.id())
        });
        // Only a record that needs an approval reads the agreement, so without one the
        // lookup is skipped.
        let agreement_accepted = needs_approval && self.agreement_accepted(caller).await?;
        let mut grants = Vec::with_capacity(records.len());
        for record in records {
            let takes_part = taken_part.contains(record.id());
            grants.push(
                self.judge(caller, record, takes_part, agreement_accepted)
                    .await?,
            );
        }
        Ok(grants)
    }

    /// Judges the caller's read of each listed report, in order.
    pub(super) async fn report_grants(
        &self,
        context: &CallContext,
        rows: &[report::Model],
    ) -> ServiceResult<Vec<Grant>> {
        let caller = context.principal.user_id.as_str();
        let taken_part = rows
            .iter()
            .filter(|row| self.takes_part_in_report(caller, row))
            .map(|row| row.id.clone())
            .collect();
        let records: Vec<Record> = rows.iter().cloned().map(Record::Report).collect();
        self.grants(context, &records, &taken_part).await
    }

    /// Judges the caller's read of each listed communication, in order.
    pub(super) async fn communication_grants(
        &self,
        context: &CallContext,
        rows: &[communication::Model],
    ) -> ServiceResult<Vec<Grant>> {
        let taken_part = self
            .communications_taken_part_in(&context.principal.user_id, rows)
            .await?;
        let records: Vec<Record> = rows.iter().cloned().map(Record::Communication).collect();
        self.grants(context, &records, &taken_part).await
    }

    /// Records a `read` event for every record of `records` whose content the caller read as
    /// a participant or under an approved request, in one transaction, and returns the
    /// records in their order at their new versions. `grants` contains the grant of each
    /// record, in the same order.
    pub(super) async fn record_reads(
        &self,
        context: &CallContext,
        method: ReadMethod,
        records: Vec<Record>,
        grants: &[Grant],
    ) -> ServiceResult<Vec<Record>> {
        let mut reads: Vec<(usize, &str)> = grants
            .iter()
            .enumerate()
            .filter_map(|(index, grant)| Some((index, grant.recorded_request()?)))
            .collect();
        if reads.is_empty() {
            return Ok(records);
        }
        // Sorted ids, so that two listings lock shared records in the same order.
        reads.sort_unstable_by(|(left, _), (right, _)| {
            records[*left].id().cmp(records[*right].id())
        });
        with_retries("record reads", || async {
            let txn = self.begin().await?;
            let mut updated = records.clone();
            for (index, request_id) in &reads {
                let payload = proto::RecordRead {
                    method: method.name().to_owned(),
                    access_request_id: (*request_id).to_owned(),
                };
                let loaded = self.reload(&txn, &records[*index]).await?;
                let (record, _) = self
                    .record_event(&txn, context, &loaded, "read", pack(&payload))
                    .await?;
                updated[*index] = record;
            }
            self.commit(txn).await?;
            AttemptResult::Ok(updated)
        })
        .await
    }

    /// Loads `record` again inside `txn`, keeping the opened text of a communication.
    async fn reload(&self, txn: &DatabaseTransaction, record: &Record) -> AttemptResult<Record> {
        Ok(match record {
            Record::Report(row) => Record::Report(find_report(txn, &row.id).await?),
            Record::Communication(row) => {
                let version: Option<i64> = communication::Entity::find_by_id(row.id.clone())
                    .select_only()
                    .column(communication::Column::EntityVersion)
                    .into_tuple()
                    .one(txn)
                    .await?;
                let entity_version = version
                    .ok_or_else(|| ServiceError::not_found("communication", row.id.as_str()))?;
                Record::Communication(communication::Model {
                    entity_version,
                    ..row.clone()
                })
            }
        })
    }

    /// Stages the event `action` of `record` at its next entity version, provided that its
    /// version is still the loaded one, and returns the record at the new version with the
    /// event id. A changed version is a conflict.
    pub(super) async fn record_event(
        &self,
        txn: &DatabaseTransaction,
        context: &CallContext,
        loaded: &Record,
        action: &'static str,
        payload: prost_types::Any,
    ) -> AttemptResult<(Record, String)> {
        match loaded {
            Record::Report(row) => {
                let (report, event_id) = self
                    .record_report_change(txn, context, row, Default::default(), action, payload)
                    .await?;
                Ok((Record::Report(report), event_id))
            }
            Record::Communication(row) => {
                let updated = communication::Entity::update_many()
                    .set(communication::ActiveModel {
                        entity_version: Set(row.entity_version + 1),
                        ..Default::default()
                    })
                    .filter(communication::Column::Id.eq(row.id.as_str()))
                    .filter(communication::Column::EntityVersion.eq(row.entity_version))
                    .exec(txn)
                    .await?;
                if updated.rows_affected == 0 {
                    return Err(AttemptError::Conflict(format!(
                        "communication {} changed after it was loaded at version {}",
                        row.id, row.entity_version
                    )));
                }
                let row = communication::Model {
                    entity_version: row.entity_version + 1,
                    ..row.clone()
                };
                let target = EventTarget {
                    entity_type: COMMUNICATION_ENTITY,
                    entity_id: &row.id,
                    entity_version: row.entity_version,
                    action,
                    confidentiality: access_approval::level_of(row.confidentiality),
                };
                let event_id = self.stage_event(txn, context, target, payload).await?;
                Ok((Record::Communication(row), event_id))
            }
        }
    }

    /// Checks that the caller may list `found`, the record `record_id` or its lookup error,
    /// and returns it with whether the caller takes part in it. A caller outside the record's
    /// readers gets `PERMISSION_DENIED` with one message for an existing and a missing record,
    /// recorded as the record's `read_denied` event or as an `access.denied` event. Only the
    /// administration and audit roles get `NOT_FOUND`.
    pub(super) async fn authorize_scope(
        &self,
        context: &CallContext,
        record_noun: &'static str,
        record_id: &str,
        found: ServiceResult<Record>,
        method: ReadMethod,
    ) -> ServiceResult<(Record, bool)> {
        let record = match found {
            Ok(record) => record,
            Err(error @ ServiceError::NotFound { .. })
                if access::reads_everything(&context.principal) =>
            {
                return Err(error);
            }
            Err(ServiceError::NotFound { .. }) => {
                return Err(method
                    .guarded(record_noun, record_id)
                    .deny_missing(&self.outbox, context)
                    .await);
            }
            Err(error) => return Err(error),
        };
        if !self.in_read_scope(context, &record).await? {
            let payload = proto::RecordReadDenied {
                method: method.name().to_owned(),
                reason: format!(
                    "{} is outside the readers of {} {}",
                    context.principal.user_id,
                    record.noun(),
                    record.id()
                ),
                access_request_id: String::new(),
            };
            let recorded = self.record_denial(context, &record, &payload).await;
            return Err(method
                .guarded(record_noun, record_id)
                .denial_error(context, recorded));
        }
        let takes_part = self.takes_part(&context.principal.user_id, &record).await?;
        Ok((record, takes_part))
    }

    /// Applies the approval rule to a by-id read of `record`. Returns the grant the read
    /// uses, which is never [`Grant::Withheld`], or records the denial as the record's
    /// `read_denied` event naming the request it judged and returns `PERMISSION_DENIED` with
    /// the reason.
    pub(super) async fn authorize_read(
        &self,
        context: &CallContext,
        record: &Record,
        takes_part: bool,
        method: ReadMethod,
    ) -> ServiceResult<Grant> {
        let caller = context.principal.user_id.as_str();
        let level = access_approval::level_of(record.confidentiality());
        let needs_approval = level >= Confidentiality::Confidential && !takes_part;
        let agreement_accepted = needs_approval && self.agreement_accepted(caller).await?;
        let denial = match self
            .judge(caller, record, takes_part, agreement_accepted)
            .await?
        {
            Grant::Withheld(denial) => denial,
            grant => return Ok(grant),
        };
        let payload = proto::RecordReadDenied {
            method: method.name().to_owned(),
            reason: denial.reason.clone(),
            access_request_id: denial.access_request_id.clone().unwrap_or_default(),
        };
        let event_id = self.record_denial(context, record, &payload).await?;
        tracing::info!(
            record_id = record.id(),
            user_id = caller,
            method = method.name(),
            %event_id,
            reason = %denial.reason,
            "read denied without a current approval"
        );
        Err(ServiceError::denied_and_recorded(
            format!(
                "{}; the denial is recorded as event {event_id}",
                denial.reason
            ),
            event_id,
        ))
    }

    /// Records `payload` as the record's `read_denied` event and returns the event id.
    async fn record_denial(
        &self,
        context: &CallContext,
        record: &Record,
        payload: &proto::RecordReadDenied,
    ) -> ServiceResult<String> {
        with_retries("record a denied read", || async {
            let txn = self.begin().await?;
            let loaded = self.reload(&txn, record).await?;
            let (_, event_id) = self
                .record_event(&txn, context, &loaded, "read_denied", pack(payload))
                .await?;
            self.commit(txn).await?;
            AttemptResult::Ok(event_id)
        })
        .await
    }
}
