//! Inspection reports: drafted by the administration department, reviewed by its head and
//! distributed to departments, with one row per department it was sent to. A report has a
//! level no lower than the highest level of the findings it covers. Its text is sealed at
//! rest at that level, and its events are staged at that level.

use sea_orm::ActiveValue::Set;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, IntoActiveModel, QueryFilter,
    QueryOrder, QuerySelect,
};
use trace_proto::common::v1::Confidentiality;
use trace_proto::inspection::v1::*;
use trace_runtime::access_approval::level_of;
use trace_runtime::context::CallContext;
use trace_runtime::event::pack;
use trace_runtime::sealed_text::SealedRow;
use trace_runtime::{ServiceError, ServiceResult, validate};

use super::report_access::takes_part_in_report;
use super::{InspectionHandler, record_id, require_administration};
use crate::convert::{self, to_json};
use crate::entity::{distribution, finding, inspection};
use crate::events::{INSPECTION, Staged};

/// Loads an inspection for a write, locked on PostgreSQL until the transaction ends, so two
/// writers cannot stage events at the same entity version.
pub(super) async fn lock_inspection<C: ConnectionTrait>(
    transaction: &C,
    inspection_id: &str,
) -> ServiceResult<inspection::Model> {
    inspection::Entity::find_by_id(inspection_id.to_owned())
        .lock_exclusive()
        .one(transaction)
        .await?
        .ok_or_else(|| ServiceError::not_found("inspection", inspection_id))
}

pub(super) fn require_report_state(
    row: &inspection::Model,
    allowed: &[Option<&str>],
    action: &'static str,
) -> ServiceResult<()> {
    let state = row.report_state.as_deref();
    if allowed.contains(&state) {
        return Ok(());
    }
    let shown = state.map_or_else(
        || "without a report".to_owned(),
        |state| format!("report {state}"),
    );
    Err(ServiceError::wrong_state(
        "inspection",
        &row.id,
        shown,
        action,
    ))
}

/// Checks the requested level of a report against `floor`, the highest level of the findings
/// it covers. Unspecified means `floor`, and a lower level or an unknown number is rejected.
pub(crate) fn report_level(
    requested: i32,
    floor: Confidentiality,
) -> ServiceResult<Confidentiality> {
    let level = match Confidentiality::try_from(requested) {
        Ok(Confidentiality::Unspecified) => return Ok(floor),
        Ok(level) => level,
        Err(_) => {
            return Err(ServiceError::invalid(
                "confidentiality",
                &requested.to_string(),
                "is not a known value",
            ));
        }
    };
    if level < floor {
        return Err(ServiceError::invalid(
            "confidentiality",
            level.as_str_name(),
            format!(
                "is below {}, the highest level of the findings the report covers",
                floor.as_str_name()
            ),
        ));
    }
    Ok(level)
}

/// Returns true when the caller may see the text of the report in a response: the report is
/// below CONFIDENTIAL, or the caller drafted or reviewed it.
fn sees_report_text(context: &CallContext, row: &inspection::Model) -> bool {
    level_of(row.report_confidentiality) < Confidentiality::Confidential
        || takes_part_in_report(&context.principal.user_id, row)
}

pub(super) async fn distributed_to<C: ConnectionTrait>(
    connection: &C,
    inspection_id: &str,
) -> ServiceResult<Vec<String>> {
    let rows = distribution::Entity::find()
        .filter(distribution::Column::InspectionId.eq(inspection_id))
        .order_by_asc(distribution::Column::Id)
        .all(connection)
        .await?;
    Ok(rows.into_iter().map(|row| row.department).collect())
}

impl InspectionHandler {
    pub(super) async fn draft(
        &self,
        context: &CallContext,
        request: DraftReportRequest,
    ) -> ServiceResult<DraftReportResponse> {
        require_administration(context, "drafting an inspection report")?;
        let inspection_id = record_id("inspection_id", &request.inspection_id)?;
        let summary = validate::text("findings_summary", request.findings_summary.trim(), 1, 8000)?;
        let suggestions = validate::text("suggestions", request.suggestions.trim(), 1, 8000)?;

        let transaction = trace_runtime::db::begin_write(&self.db).await?;
        let row = lock_inspection(&transaction, &inspection_id).await?;
        require_report_state(
            &row,
            &[None, Some("DRAFT"), Some("RETURNED")],
            "draft the report of",
        )?;
        let findings = finding::Entity::find()
            .filter(finding::Column::InspectionId.eq(&inspection_id))
            .order_by_asc(finding::Column::Id)
            .all(&transaction)
            .await?;
        let floor = findings
            .iter()
            .map(|finding| level_of(finding.confidentiality))
            .max()
            .unwrap_or(Confidentiality::Internal);
        let level = report_level(request.confidentiality, floor)? as i32;
        let finding_ids: Vec<String> = findings.into_iter().map(|finding| finding.id).collect();

        let version = row.entity_version + 1;
        let drafted = inspection::Model {
            report_state: Some("DRAFT".to_owned()),
            findings_summary: Some(summary.clone()),
            suggestions: Some(suggestions.clone()),
            report_finding_ids: Some(to_json(&finding_ids)),
            drafted_by: Some(context.principal.user_id.clone()),
            reviewed_by: None,
            review_opinion: None,
            report_confidentiality: level,
            entity_version: version,
            ..row
        };
        let stored = drafted.clone().sealed(&self.keyring, level);
        inspection::ActiveModel::from(stored)
            .reset_all()
            .update(&transaction)
            .await?;

        let payload = ReportDrafted {
            findings_summary: summary,
            suggestions,
            finding_ids,
        };
        self.stage_report_event(
            &transaction,
            context,
            &drafted,
            "report_drafted",
            pack(&payload),
        )
        .await?;
        self.commit(transaction).await?;
        Ok(DraftReportResponse {
            report: Some(convert::report(&drafted, Vec::new())),
        })
    }

    pub(super) async fn review(
        &self,
        context: &CallContext,
        request: ReviewReportRequest,
    ) -> ServiceResult<ReviewReportResponse> {
        self.require_head_of_administration(context)?;
        let inspection_id = record_id("inspection_id", &request.inspection_id)?;
        let decision: ReviewDecision = validate::enum_value("decision", request.decision)?;
        let opinion = validate::text("opinion", request.opinion.trim(), 0, 2000)?;
        if decision == ReviewDecision::Return && opinion.is_empty() {
            return Err(ServiceError::invalid(
                "opinion",
                "",
                "is required to return a report",
            ));
        }

        let transaction = trace_runtime::db::begin_write(&self.db).await?;
        let row = lock_inspection(&transaction, &inspection_id).await?;
        require_report_state(&row, &[Some("DRAFT")], "review the report of")?;
        let state = if decision == ReviewDecision::Approve {
            "REVIEWED"
        } else {
            "RETURNED"
        };
        let level = row.report_confidentiality;
        let version = row.entity_version + 1;
        let reviewed = inspection::Model {
            report_state: Some(state.to_owned()),
            reviewed_by: Some(context.principal.user_id.clone()),
            review_opinion: Some(opinion.clone()),
            entity_version: version,
            ..row.opened(&self.keyring)?
        };
        let stored = reviewed.clone().sealed(&self.keyring, level);
        inspection::ActiveModel::from(stored)
            .reset_all()
            .update(&transaction)
            .await?;

        let payload = ReportReviewed {
            decision: decision as i32,
            opinion,
        };
        self.stage_report_event(
            &transaction,
            context,
            &reviewed,
            "report_reviewed",
            pack(&payload),
        )
        .await?;
        self.commit(transaction).await?;
        Ok(ReviewReportResponse {
            report: Some(convert::report(&reviewed, Vec::new())),
        })
    }

    /// Fails unless the caller heads the administration department in the directory.
    fn require_head_of_administration(&self, context: &CallContext) -> ServiceResult<()> {
        let department = &self.administration_department;
        let head = self
            .directory
            .department(department)
            .map(|d| d.head.as_str());
        if head == Some(context.principal.user_id.as_str()) {
            return Ok(());
        }
        Err(ServiceError::denied(format!(
            "only the head of the administration department {department} ({}) may review inspection reports",
            head.unwrap_or("not in the directory")
        )))
    }

    pub(super) async fn distribute(
        &self,
        context: &CallContext,
        request: DistributeReportRequest,
    ) -> ServiceResult<DistributeReportResponse> {
        require_administration(context, "distributing an inspection report")?;
        let inspection_id = record_id("inspection_id", &request.inspection_id)?;
        let departments = self.departments("departments", &request.departments)?;

        let transaction = trace_runtime::db::begin_write(&self.db).await?;
        let row = lock_inspection(&transaction, &inspection_id).await?;
        require_report_state(
            &row,
            &[Some("REVIEWED"), Some("DISTRIBUTED")],
            "distribute the report of",
        )?;
        let earlier = distributed_to(&transaction, &inspection_id).await?;
        if let Some(index) = departments.iter().position(|d| earlier.contains(d)) {
            return Err(ServiceError::invalid(
                format!("departments[{index}]"),
                &departments[index],
                "was already sent the report",
            ));
        }
        for department in &departments {
            let row = distribution::ActiveModel {
                inspection_id: Set(inspection_id.clone()),
                department: Set(department.clone()),
                distributed_by: Set(context.principal.user_id.clone()),
                distributed_at: Set(self.now()),
                ..Default::default()
            };
            distribution::Entity::insert(row)
                .exec_without_returning(&transaction)
                .await?;
        }

        let version = row.entity_version + 1;
        let mut active = row.into_active_model();
        active.report_state = Set(Some("DISTRIBUTED".to_owned()));
        active.entity_version = Set(version);
        let updated = active.update(&transaction).await?.opened(&self.keyring)?;
        let payload = ReportDistributed {
            departments: departments.clone(),
        };
        self.stage_report_event(
            &transaction,
            context,
            &updated,
            "report_distributed",
            pack(&payload),
        )
        .await?;
        let sent = distributed_to(&transaction, &inspection_id).await?;
        self.commit(transaction).await?;
        let report = if sees_report_text(context, &updated) {
            convert::report(&updated, sent)
        } else {
            convert::withheld_report(&updated, sent)
        };
        Ok(DistributeReportResponse {
            report: Some(report),
        })
    }

    /// Stages the report event `action` at the level of the report, so the outbox seals the
    /// payload of a CONFIDENTIAL or SECRET report.
    async fn stage_report_event(
        &self,
        transaction: &sea_orm::DatabaseTransaction,
        context: &CallContext,
        row: &inspection::Model,
        action: &'static str,
        payload: prost_types::Any,
    ) -> ServiceResult<()> {
        let staged = Staged {
            entity_type: INSPECTION,
            entity_id: &row.id,
            entity_version: row.entity_version,
            action,
            confidentiality: row.report_confidentiality,
            payload,
        };
        self.stage(transaction, context, staged).await
    }
}
