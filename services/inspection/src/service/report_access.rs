//! Reads of inspection reports and access requests for them. The administration, audit and
//! system roles read every report, and supervisors and heads of a department the inspection
//! covers read its report. The user who drafted or reviewed a report is a participant and
//! reads it too. A reader who is no participant of a CONFIDENTIAL or SECRET report also needs
//! an approved access request for the inspection, and the current agreement for SECRET.
//!
//! A denied read is the inspection's `report_read_denied` event, naming the request it judged,
//! and a permitted read of a CONFIDENTIAL or SECRET report is its `report_read` event, naming
//! the request it used. A denied read of a missing inspection is an `access.denied` event with
//! the same message, and only callers who read every report get `NOT_FOUND`.

use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, QueryFilter};
use trace_proto::common::v1::Confidentiality;
use trace_proto::inspection::v1 as proto;
use trace_runtime::access_approval::{self, ApprovalCheck, access_request, level_of};
use trace_runtime::context::CallContext;
use trace_runtime::event::pack;
use trace_runtime::read_scope::GuardedRead;
use trace_runtime::sealed_text::SealedRow;
use trace_runtime::{ServiceError, ServiceResult};

use super::InspectionHandler;
use super::access::ReadMethod;
use super::reports::{distributed_to, lock_inspection, require_report_state};
use crate::convert;
use crate::entity::inspection;
use crate::events::{self, INSPECTION, SERVICE, Staged};

/// Description of the callers who read a report, which ends the denial message.
const READERS: &str = "\
    an inspection report is read by the users who drafted or reviewed it, by supervisors and \
    heads of a department the inspection covers, and by the administration, audit and system \
    roles";

/// Who decides the access requests for a report, as named in the error of a caller who may
/// not. The administration department drafts and owns the reports.
pub(super) const REPORT_DECIDERS: &str = "a supervisor or head of the administration department";

/// Describes the read of the report of `inspection_id` by `method`.
fn guarded(method: ReadMethod, inspection_id: &str) -> GuardedRead<'_> {
    GuardedRead {
        service: SERVICE,
        grpc_service: "trace.inspection.v1.InspectionService",
        method: method.name(),
        record: "inspection",
        record_id: inspection_id,
        readers: READERS,
    }
}

/// Returns true when `user_id` drafted or reviewed the report of `row`.
pub(super) fn takes_part_in_report(user_id: &str, row: &inspection::Model) -> bool {
    row.drafted_by.as_deref() == Some(user_id) || row.reviewed_by.as_deref() == Some(user_id)
}

impl InspectionHandler {
    pub(super) async fn inspection_report(
        &self,
        context: &CallContext,
        request: proto::GetInspectionReportRequest,
    ) -> ServiceResult<proto::GetInspectionReportResponse> {
        let inspection_id = super::record_id("inspection_id", &request.inspection_id)?;
        let method = ReadMethod::GetInspectionReport;
        let (row, used) = self
            .authorize_report_read(context, &inspection_id, method)
            .await?;
        require_report_state(
            &row,
            &[
                Some("DRAFT"),
                Some("RETURNED"),
                Some("REVIEWED"),
                Some("DISTRIBUTED"),
            ],
            "read the report of",
        )?;
        let mut row = row;
        if level_of(row.report_confidentiality) >= Confidentiality::Confidential {
            let payload = proto::ReportRead {
                method: method.name().to_owned(),
                access_request_id: used.unwrap_or_default(),
            };
            let (_, version) = self
                .record_inspection_event(context, &row.id, "report_read", pack(&payload))
                .await?;
            row.entity_version = version;
        }
        let sent = distributed_to(&self.db, &row.id).await?;
        Ok(proto::GetInspectionReportResponse {
            report: Some(convert::report(&row, sent)),
        })
    }

    /// Loads the inspection `inspection_id`, with its report text opened, when the caller's
    /// read scope covers it, and returns it with whether the caller drafted or reviewed the
    /// report. Otherwise records the denial and returns `PERMISSION_DENIED`, for a missing
    /// inspection as well unless the caller reads every report, who gets `NOT_FOUND`.
    pub(super) async fn authorize_report_scope(
        &self,
        context: &CallContext,
        inspection_id: &str,
        method: ReadMethod,
    ) -> ServiceResult<(inspection::Model, bool)> {
        let scope = self.finding_scope(context);
        let found = inspection::Entity::find_by_id(inspection_id.to_owned())
            .one(&self.db)
            .await?;
        let Some(stored) = found else {
            if scope.is_whole() {
                return Err(ServiceError::not_found("inspection", inspection_id));
            }
            return Err(guarded(method, inspection_id)
                .deny_missing(&self.outbox, context)
                .await);
        };
        let row = stored.opened(&self.keyring)?;

        let user_id = context.principal.user_id.as_str();
        let participant = takes_part_in_report(user_id, &row);
        let departments: Vec<String> = convert::list(&row.departments);
        let covered = departments
            .iter()
            .any(|department| scope.covers_department(department));
        if scope.is_whole() || participant || covered {
            return Ok((row, participant));
        }

        let payload = proto::ReportReadDenied {
            method: method.name().to_owned(),
            reason: format!(
                "{user_id} did not draft or review the report and is not a supervisor or head \
                 of a department the inspection covers ({})",
                departments.join(", ")
            ),
            access_request_id: String::new(),
        };
        let recorded = self
            .record_inspection_event(context, &row.id, "report_read_denied", pack(&payload))
            .await
            .map(|(event_id, _)| event_id);
        Err(guarded(method, inspection_id).denial_error(context, recorded))
    }

    /// Loads the inspection `inspection_id` when the caller may read its report text, and
    /// returns it with the access request the read uses. Besides the scope of
    /// [`InspectionHandler::authorize_report_scope`], a caller who neither drafted nor
    /// reviewed a CONFIDENTIAL or SECRET report needs an approved access request, and for a
    /// SECRET report the current agreement. A denial by that rule is the inspection's
    /// `report_read_denied` event naming the request it judged.
    async fn authorize_report_read(
        &self,
        context: &CallContext,
        inspection_id: &str,
        method: ReadMethod,
    ) -> ServiceResult<(inspection::Model, Option<String>)> {
        let (row, participant) = self
            .authorize_report_scope(context, inspection_id, method)
            .await?;
        let level = level_of(row.report_confidentiality);
        if level < Confidentiality::Confidential || participant {
            return Ok((row, None));
        }

        let caller = context.principal.user_id.as_str();
        let now = self.now();
        let request = access_approval::newest_request(&self.db, &row.id, caller, now).await?;
        let agreement_accepted =
            access_approval::agreement_accepted(&self.db, caller, &self.agreement_version).await?;
        let check = ApprovalCheck {
            caller,
            record: "report",
            record_id: &row.id,
            level,
            takes_part: participant,
            request: request.as_ref(),
            agreement_accepted,
            now,
        };
        let denial = match access_approval::check_approval(&check) {
            Ok(used) => return Ok((row, used)),
            Err(denial) => denial,
        };

        let payload = proto::ReportReadDenied {
            method: method.name().to_owned(),
            reason: denial.reason.clone(),
            access_request_id: denial.access_request_id.clone().unwrap_or_default(),
        };
        let (event_id, _) = self
            .record_inspection_event(context, &row.id, "report_read_denied", pack(&payload))
            .await?;
        tracing::info!(
            inspection_id = %row.id,
            user_id = caller,
            method = method.name(),
            %event_id,
            reason = %denial.reason,
            "report read denied without a current approval"
        );
        Err(ServiceError::denied_and_recorded(
            format!(
                "{}; the denial is recorded as event {event_id}",
                denial.reason
            ),
            event_id,
        ))
    }

    /// Stages the event `action` of inspection `inspection_id` at its next entity version in
    /// a transaction of its own, and returns the event id and the new version.
    async fn record_inspection_event(
        &self,
        context: &CallContext,
        inspection_id: &str,
        action: &'static str,
        payload: prost_types::Any,
    ) -> ServiceResult<(String, i64)> {
        let transaction = trace_runtime::db::begin_write(&self.db).await?;
        let loaded = lock_inspection(&transaction, inspection_id).await?;
        let staged = self
            .stage_inspection_event(&transaction, context, &loaded, action, payload)
            .await?;
        self.commit(transaction).await?;
        Ok(staged)
    }

    /// Moves the loaded inspection to the next entity version and stages the event `action`
    /// at that version and at the report's level, inside `transaction`. Fails with `ABORTED`
    /// when the stored version is no longer the loaded one.
    pub(super) async fn stage_inspection_event<C: ConnectionTrait>(
        &self,
        transaction: &C,
        context: &CallContext,
        loaded: &inspection::Model,
        action: &'static str,
        payload: prost_types::Any,
    ) -> ServiceResult<(String, i64)> {
        let version = loaded.entity_version + 1;
        let moved = inspection::Entity::update_many()
            .col_expr(inspection::Column::EntityVersion, Expr::value(version))
            .filter(inspection::Column::Id.eq(loaded.id.as_str()))
            .filter(inspection::Column::EntityVersion.eq(loaded.entity_version))
            .exec(transaction)
            .await?;
        if moved.rows_affected != 1 {
            return Err(ServiceError::Aborted {
                reason: format!(
                    "inspection {} changed concurrently. Retry the call",
                    loaded.id
                ),
            });
        }
        let staged = Staged {
            entity_type: INSPECTION,
            entity_id: &loaded.id,
            entity_version: version,
            action,
            confidentiality: loaded.report_confidentiality,
            payload,
        };
        let event_id = events::stage_returning_id(
            &self.outbox,
            transaction,
            context,
            self.clock.as_ref(),
            staged,
        )
        .await?;
        Ok((event_id, version))
    }

    /// Inserts a PENDING request of the caller for the report of `inspection_id` with its
    /// `report_access_requested` event, and returns the request and the event id.
    pub(super) async fn insert_report_request(
        &self,
        transaction: &DatabaseTransaction,
        context: &CallContext,
        inspection_id: &str,
        purpose: String,
    ) -> ServiceResult<(access_request::Model, String)> {
        let loaded = lock_inspection(transaction, inspection_id).await?;
        let row = trace_runtime::access_approval::workflow::new_request(
            &loaded.id,
            &context.principal.user_id,
            &purpose,
            self.now(),
        );
        let payload = proto::ReportAccessRequested {
            access_request_id: row.id.clone(),
            purpose: row.purpose.clone(),
        };
        let (event_id, _) = self
            .stage_inspection_event(
                transaction,
                context,
                &loaded,
                "report_access_requested",
                pack(&payload),
            )
            .await?;
        trace_runtime::access_approval::workflow::insert_request(
            &self.keyring,
            transaction,
            &row,
            loaded.report_confidentiality,
        )
        .await?;
        Ok((row, event_id))
    }

    /// Stores the decision of a PENDING request for the report of `loaded` with its
    /// `report_access_approved` or `report_access_rejected` event, and returns the event id.
    pub(super) async fn store_report_decision(
        &self,
        transaction: &DatabaseTransaction,
        context: &CallContext,
        loaded: &inspection::Model,
        decided: &access_request::Model,
    ) -> ServiceResult<String> {
        let approved = decided.state == access_approval::AccessRequestState::Approved;
        let action = if approved {
            "report_access_approved"
        } else {
            "report_access_rejected"
        };
        let payload = proto::ReportAccessDecided {
            access_request_id: decided.id.clone(),
            requester_id: decided.requester_id.clone(),
            approved,
            opinion: decided.opinion.clone().unwrap_or_default(),
            expires_at: trace_runtime::clock::timestamp_opt(decided.expires_at),
        };
        let (event_id, _) = self
            .stage_inspection_event(transaction, context, loaded, action, pack(&payload))
            .await?;
        let stored = trace_runtime::access_approval::workflow::store_decision(
            &self.keyring,
            transaction,
            decided,
            loaded.report_confidentiality,
        )
        .await?;
        if !stored {
            return Err(ServiceError::Aborted {
                reason: format!(
                    "access request {} was decided after it was loaded. Retry the call",
                    decided.id
                ),
            });
        }
        Ok(event_id)
    }
}
