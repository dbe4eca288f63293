//! Findings of inspections and spot checks and their rectification: measures, a responsible
//! person and a deadline, the written result, and the verification by the administration
//! department.

use chrono::NaiveDate;
use sea_orm::{ActiveModelTrait, ConnectionTrait, EntityTrait, IntoActiveModel, QuerySelect};
use trace_proto::common::v1::Confidentiality;
use trace_proto::inspection::v1::*;
use trace_runtime::clock::{date_key, proto_date};
use trace_runtime::context::{CallContext, role};
use trace_runtime::event::pack;
use trace_runtime::seal::Keyring;
use trace_runtime::sealed_text::SealedRow;
use trace_runtime::{ServiceError, ServiceResult, validate};

use super::finding_level::{finding_level, highest_referenced, requested_level};
use super::{InspectionHandler, record_id, require_administration};
use crate::convert::{self, list, severity_name, to_json};
use crate::entity::{finding, inspection};
use crate::events::{FINDING, Staged};
use crate::rules::Reference;

/// Maximum number of references of a recorded finding.
const MAX_REFERENCES: usize = 50;

/// Loads a finding for a write in `transaction`; `NOT_FOUND` when it does not exist. On
/// PostgreSQL the row stays locked until the transaction ends, so two writers cannot stage
/// events at the same entity version. SQLite write transactions hold the database lock.
pub(super) async fn lock_finding<C: ConnectionTrait>(
    transaction: &C,
    finding_id: &str,
) -> ServiceResult<finding::Model> {
    finding::Entity::find_by_id(finding_id.to_owned())
        .lock_exclusive()
        .one(transaction)
        .await?
        .ok_or_else(|| ServiceError::not_found("finding", finding_id))
}

/// Loads a finding with its sealed text opened; `NOT_FOUND` when it does not exist.
pub(super) async fn find_finding<C: ConnectionTrait>(
    keyring: &Keyring,
    connection: &C,
    finding_id: &str,
) -> ServiceResult<finding::Model> {
    let row = finding::Entity::find_by_id(finding_id.to_owned())
        .one(connection)
        .await?
        .ok_or_else(|| ServiceError::not_found("finding", finding_id))?;
    Ok(row.opened(keyring)?)
}

/// Writes every column of `row`, with the free text sealed when the finding is CONFIDENTIAL
/// or SECRET, and returns `row` as it was given.
async fn save_finding<C: ConnectionTrait>(
    keyring: &Keyring,
    connection: &C,
    row: finding::Model,
) -> ServiceResult<finding::Model> {
    let stored = row.clone().sealed(keyring, row.confidentiality);
    finding::ActiveModel::from(stored)
        .reset_all()
        .update(connection)
        .await?;
    Ok(row)
}

/// Fails with `FAILED_PRECONDITION` naming the state unless the finding is in `allowed`.
fn require_state(
    row: &finding::Model,
    allowed: &[&str],
    action: &'static str,
) -> ServiceResult<()> {
    if allowed.contains(&row.state.as_str()) {
        return Ok(());
    }
    Err(ServiceError::wrong_state(
        "finding", &row.id, &row.state, action,
    ))
}

impl InspectionHandler {
    pub(super) async fn record(
        &self,
        context: &CallContext,
        request: RecordFindingRequest,
    ) -> ServiceResult<RecordFindingResponse> {
        let inspection_id = record_id("inspection_id", &request.inspection_id)?;
        let severity: Severity = validate::enum_value("severity", request.severity)?;
        let department = validate::department("department", &request.department)?;
        let description = validate::text("description", request.description.trim(), 1, 4000)?;
        let references = references(&request.references)?;
        let requested_level = requested_level(request.confidentiality)?;

        let transaction = trace_runtime::db::begin_write(&self.db).await?;
        let inspection = inspection::Entity::find_by_id(inspection_id.clone())
            .one(&transaction)
            .await?
            .ok_or_else(|| ServiceError::not_found("inspection", &inspection_id))?;
        check_recorder(context, &inspection, &department)?;
        let referenced = highest_referenced(&transaction, &references).await?;
        let level = finding_level(requested_level, referenced.as_ref())?;

        let row = finding::Model {
            confidentiality: level as i32,
            ..recorded_finding(
                inspection_id,
                severity,
                department,
                description,
                references,
                context.principal.user_id.clone(),
                self.now(),
            )
        };
        let stored = row.clone().sealed(&self.keyring, row.confidentiality);
        finding::Entity::insert(stored.into_active_model())
            .exec_without_returning(&transaction)
            .await?;
        let finding = convert::finding(&row);
        let payload = FindingRecorded {
            finding: Some(finding.clone()),
        };
        let staged = Staged {
            entity_type: FINDING,
            entity_id: &row.id,
            entity_version: 1,
            action: "recorded",
            confidentiality: row.confidentiality,
            payload: pack(&payload),
        };
        self.stage(&transaction, context, staged).await?;
        self.commit(transaction).await?;
        Ok(RecordFindingResponse {
            finding: Some(finding),
        })
    }

    pub(super) async fn assign(
        &self,
        context: &CallContext,
        request: AssignRectificationRequest,
    ) -> ServiceResult<AssignRectificationResponse> {
        let finding_id = record_id("finding_id", &request.finding_id)?;
        let measures = validate::text("measures", request.measures.trim(), 1, 4000)?;
        let responsible_id = self.responsible(&request.responsible_id)?;
        let deadline = self.deadline(request.deadline.as_ref())?;

        let transaction = trace_runtime::db::begin_write(&self.db).await?;
        let row = lock_finding(&transaction, &finding_id).await?;
        self.require_rectification_manager(context, &row)?;
        require_state(&row, &["OPEN", "REOPENED"], "assign a rectification to")?;

        let department = row.department.clone();
        let assigned = finding::Model {
            state: "RECTIFYING".to_owned(),
            measures: Some(measures.clone()),
            responsible_id: Some(responsible_id.clone()),
            deadline: Some(date_key(deadline)),
            assigned_by: Some(context.principal.user_id.clone()),
            assigned_at: Some(self.now()),
            result: None,
            result_submitted_at: None,
            verdict: None,
            entity_version: row.entity_version + 1,
            ..row.opened(&self.keyring)?
        };
        let updated = save_finding(&self.keyring, &transaction, assigned).await?;

        let payload = RectificationAssigned {
            measures,
            responsible_id,
            deadline: Some(proto_date(deadline)),
            department,
        };
        self.stage_finding_event(
            &transaction,
            context,
            &updated,
            "rectification_assigned",
            pack(&payload),
        )
        .await?;
        self.commit(transaction).await?;
        Ok(AssignRectificationResponse {
            finding: Some(convert::finding(&updated)),
        })
    }

    /// Checks the responsible person: a user id listed in the company directory.
    fn responsible(&self, value: &str) -> ServiceResult<String> {
        let responsible_id = validate::user_id("responsible_id", value)?;
        if self.directory.employee(&responsible_id).is_none() {
            return Err(ServiceError::invalid(
                "responsible_id",
                &responsible_id,
                "is not an employee in the company directory",
            ));
        }
        Ok(responsible_id)
    }

    /// Checks a rectification deadline: today or later in the business time zone.
    fn deadline(&self, value: Option<&trace_proto::common::v1::Date>) -> ServiceResult<NaiveDate> {
        let deadline = validate::date("deadline", value)?;
        let today = self.today();
        if deadline < today {
            return Err(ServiceError::invalid(
                "deadline",
                &deadline.to_string(),
                format!("must be today ({today}) or later"),
            ));
        }
        Ok(deadline)
    }

    /// Fails unless the caller has `administration` or heads the finding's department.
    fn require_rectification_manager(
        &self,
        context: &CallContext,
        row: &finding::Model,
    ) -> ServiceResult<()> {
        let heads_department = self
            .directory
            .department(&row.department)
            .is_some_and(|department| department.head == context.principal.user_id);
        if context.principal.has_role(role::ADMINISTRATION) || heads_department {
            return Ok(());
        }
        Err(ServiceError::denied(format!(
            "assigning the rectification of finding {} needs the role administration or the head of department {}; {} is neither",
            row.id, row.department, context.principal.user_id
        )))
    }

    pub(super) async fn submit_result(
        &self,
        context: &CallContext,
        request: SubmitRectificationResultRequest,
    ) -> ServiceResult<SubmitRectificationResultResponse> {
        let finding_id = record_id("finding_id", &request.finding_id)?;
        let result = validate::text("result", request.result.trim(), 1, 4000)?;

        let transaction = trace_runtime::db::begin_write(&self.db).await?;
        let row = lock_finding(&transaction, &finding_id).await?;
        require_state(
            &row,
            &["RECTIFYING", "REOPENED"],
            "submit the rectification result of",
        )?;
        if row.responsible_id.as_deref() != Some(context.principal.user_id.as_str()) {
            return Err(ServiceError::denied(format!(
                "only the responsible person {} may submit the result of finding {finding_id}",
                row.responsible_id.clone().unwrap_or_default()
            )));
        }

        let deadline = row.deadline;
        let submitted = finding::Model {
            state: "RESULT_SUBMITTED".to_owned(),
            result: Some(result.clone()),
            result_submitted_at: Some(self.now()),
            entity_version: row.entity_version + 1,
            ..row.opened(&self.keyring)?
        };
        let updated = save_finding(&self.keyring, &transaction, submitted).await?;

        let payload = RectificationResultSubmitted {
            result,
            deadline: deadline
                .and_then(trace_runtime::clock::date_from_key)
                .map(proto_date),
        };
        self.stage_finding_event(
            &transaction,
            context,
            &updated,
            "result_submitted",
            pack(&payload),
        )
        .await?;
        self.commit(transaction).await?;
        Ok(SubmitRectificationResultResponse {
            finding: Some(convert::finding(&updated)),
        })
    }

    pub(super) async fn verify(
        &self,
        context: &CallContext,
        request: VerifyRectificationRequest,
    ) -> ServiceResult<VerifyRectificationResponse> {
        require_administration(context, "verifying a rectification")?;
        let finding_id = record_id("finding_id", &request.finding_id)?;
        let verdict: Verdict = validate::enum_value("verdict", request.verdict)?;
        let opinion = validate::text("opinion", request.opinion.trim(), 1, 2000)?;

        let transaction = trace_runtime::db::begin_write(&self.db).await?;
        let row = lock_finding(&transaction, &finding_id).await?;
        require_state(&row, &["RESULT_SUBMITTED"], "verify the rectification of")?;

        let (state, verdict_name) = match verdict {
            Verdict::Accepted => ("VERIFIED", "ACCEPTED"),
            _ => ("REOPENED", "REOPENED"),
        };
        let verified = finding::Model {
            state: state.to_owned(),
            verdict: Some(verdict_name.to_owned()),
            verification_opinion: Some(opinion.clone()),
            verified_by: Some(context.principal.user_id.clone()),
            verified_at: Some(self.now()),
            entity_version: row.entity_version + 1,
            ..row.opened(&self.keyring)?
        };
        let updated = save_finding(&self.keyring, &transaction, verified).await?;

        let payload = RectificationVerified {
            verdict: verdict as i32,
            opinion,
        };
        self.stage_finding_event(&transaction, context, &updated, "verified", pack(&payload))
            .await?;
        self.commit(transaction).await?;
        Ok(VerifyRectificationResponse {
            finding: Some(convert::finding(&updated)),
        })
    }

    async fn stage_finding_event(
        &self,
        transaction: &sea_orm::DatabaseTransaction,
        context: &CallContext,
        row: &finding::Model,
        action: &'static str,
        payload: prost_types::Any,
    ) -> ServiceResult<()> {
        let staged = Staged {
            entity_type: FINDING,
            entity_id: &row.id,
            entity_version: row.entity_version,
            action,
            confidentiality: row.confidentiality,
            payload,
        };
        self.stage(transaction, context, staged).await
    }
}

/// Fails unless the caller may record a finding of `inspection` about `department`: the
/// role `administration` or the leader who ordered it, and one of its departments.
fn check_recorder(
    context: &CallContext,
    inspection: &inspection::Model,
    department: &str,
) -> ServiceResult<()> {
    let ordered_it = inspection.ordered_by == context.principal.user_id;
    if !context.principal.has_role(role::ADMINISTRATION) && !ordered_it {
        return Err(ServiceError::denied(format!(
            "recording a finding of inspection {} needs the role administration or the leader who ordered it; {} is neither",
            inspection.id, context.principal.user_id
        )));
    }
    if !list::<String>(&inspection.departments)
        .iter()
        .any(|listed| listed == department)
    {
        return Err(ServiceError::invalid(
            "department",
            department,
            format!("is not a department of inspection {}", inspection.id),
        ));
    }
    Ok(())
}

/// Builds an INTERNAL OPEN finding recorded by `recorded_by` at `recorded_at`.
fn recorded_finding(
    inspection_id: String,
    severity: Severity,
    department: String,
    description: String,
    references: Vec<Reference>,
    recorded_by: String,
    recorded_at: i64,
) -> finding::Model {
    finding::Model {
        id: uuid::Uuid::now_v7().to_string(),
        inspection_id: Some(inspection_id),
        rule: None,
        severity: severity_name(severity),
        department,
        description,
        references: to_json(&references),
        state: "OPEN".to_owned(),
        recorded_by,
        recorded_at,
        measures: None,
        responsible_id: None,
        deadline: None,
        assigned_by: None,
        assigned_at: None,
        result: None,
        result_submitted_at: None,
        verdict: None,
        verification_opinion: None,
        verified_by: None,
        verified_at: None,
        closing_event_id: None,
        closed_at: None,
        entity_version: 1,
        confidentiality: Confidentiality::Internal as i32,
    }
}

/// Checks the references of a recorded finding: at most 50, each naming a ledger sequence,
/// an event id (a UUID) or both.
fn references(values: &[RecordReference]) -> ServiceResult<Vec<Reference>> {
    if values.len() > MAX_REFERENCES {
        return Err(ServiceError::invalid(
            "references",
            &values.len().to_string(),
            format!("must list at most {MAX_REFERENCES} references"),
        ));
    }
    let mut checked = Vec::with_capacity(values.len());
    for (index, value) in values.iter().enumerate() {
        let field = format!("references[{index}]");
        if value.ledger_sequence == 0 && value.event_id.is_empty() {
            return Err(ServiceError::invalid(
                field,
                "",
                "must name a ledger_sequence, an event_id or both",
            ));
        }
        let event_id = if value.event_id.is_empty() {
            String::new()
        } else {
            record_id(&format!("{field}.event_id"), &value.event_id)?
        };
        checked.push(Reference {
            ledger_sequence: value.ledger_sequence,
            event_id,
            stream_sequence: value.stream_sequence,
            entity_type: validate::line(
                &format!("{field}.entity_type"),
                &value.entity_type,
                0,
                64,
            )?,
            entity_id: validate::line(&format!("{field}.entity_id"), &value.entity_id, 0, 128)?,
        });
    }
    Ok(checked)
}
