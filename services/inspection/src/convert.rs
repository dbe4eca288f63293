//! Conversions between stored rows and protobuf messages.

use trace_proto::inspection::v1 as proto;
use trace_runtime::clock::{date_from_key, proto_date, timestamp, timestamp_opt};

use crate::entity::{finding, inspection, plan};
use crate::rules::{Reference, RuleKind};

/// Stored name of a protobuf enum value: its name without the enum's prefix, such as `LOW`
/// for `SEVERITY_LOW`.
pub fn short_name(full: &str, prefix: &str) -> String {
    full.strip_prefix(prefix).unwrap_or(full).to_owned()
}

/// Stored name of a severity.
pub fn severity_name(severity: proto::Severity) -> String {
    short_name(severity.as_str_name(), "SEVERITY_")
}

/// Stored name of a finding state.
pub fn state_name(state: proto::FindingState) -> String {
    short_name(state.as_str_name(), "FINDING_STATE_")
}

/// Stored name of a report state.
pub fn report_state_name(state: proto::ReportState) -> String {
    short_name(state.as_str_name(), "REPORT_STATE_")
}

/// Parses a stored finding state; unspecified for an unknown name.
pub fn finding_state(name: &str) -> proto::FindingState {
    proto::FindingState::from_str_name(&format!("FINDING_STATE_{name}")).unwrap_or_default()
}

fn severity(name: &str) -> proto::Severity {
    proto::Severity::from_str_name(&format!("SEVERITY_{name}")).unwrap_or_default()
}

fn report_state(name: Option<&str>) -> proto::ReportState {
    name.and_then(|name| proto::ReportState::from_str_name(&format!("REPORT_STATE_{name}")))
        .unwrap_or_default()
}

/// Parses a JSON list column; an unreadable column reads as empty.
pub fn list<T: serde::de::DeserializeOwned>(json: &str) -> Vec<T> {
    serde_json::from_str(json).unwrap_or_default()
}

/// Writes a JSON list column.
pub fn to_json<T: serde::Serialize>(values: &[T]) -> String {
    serde_json::to_string(values).unwrap_or_else(|_| "[]".to_owned())
}

fn date(key: Option<i32>) -> Option<trace_proto::common::v1::Date> {
    key.and_then(date_from_key).map(proto_date)
}

/// Converts a reference to its protobuf form.
pub fn reference(reference: &Reference) -> proto::RecordReference {
    proto::RecordReference {
        ledger_sequence: reference.ledger_sequence,
        event_id: reference.event_id.clone(),
        stream_sequence: reference.stream_sequence,
        entity_type: reference.entity_type.clone(),
        entity_id: reference.entity_id.clone(),
    }
}

/// Converts a finding row.
pub fn finding(row: &finding::Model) -> proto::Finding {
    let rule = row
        .rule
        .as_deref()
        .and_then(RuleKind::from_name)
        .map_or(proto::Rule::Unspecified, RuleKind::proto);
    let references = list::<Reference>(&row.references);
    proto::Finding {
        finding_id: row.id.clone(),
        inspection_id: row.inspection_id.clone().unwrap_or_default(),
        rule: rule as i32,
        severity: severity(&row.severity) as i32,
        department: row.department.clone(),
        description: row.description.clone(),
        references: references.iter().map(reference).collect(),
        state: finding_state(&row.state) as i32,
        recorded_by: row.recorded_by.clone(),
        recorded_at: Some(timestamp(row.recorded_at)),
        rectification: rectification(row),
        closing_event_id: row.closing_event_id.clone().unwrap_or_default(),
        closed_at: timestamp_opt(row.closed_at),
        entity_version: u64::try_from(row.entity_version).unwrap_or_default(),
        confidentiality: row.confidentiality,
        content_withheld: false,
    }
}

/// Converts a finding row without its free text: description, measures, result and
/// verification opinion are empty and `content_withheld` is set.
pub fn withheld_finding(row: &finding::Model) -> proto::Finding {
    let mut finding = finding(row);
    finding.description.clear();
    if let Some(rectification) = finding.rectification.as_mut() {
        rectification.measures.clear();
        rectification.result.clear();
        rectification.verification_opinion.clear();
    }
    finding.content_withheld = true;
    finding
}

fn rectification(row: &finding::Model) -> Option<proto::Rectification> {
    let verdict = match row.verdict.as_deref() {
        Some("ACCEPTED") => proto::Verdict::Accepted,
        Some("REOPENED") => proto::Verdict::Reopened,
        _ => proto::Verdict::Unspecified,
    };
    row.assigned_at.map(|assigned_at| proto::Rectification {
        measures: row.measures.clone().unwrap_or_default(),
        responsible_id: row.responsible_id.clone().unwrap_or_default(),
        deadline: date(row.deadline),
        assigned_by: row.assigned_by.clone().unwrap_or_default(),
        assigned_at: Some(timestamp(assigned_at)),
        result: row.result.clone().unwrap_or_default(),
        result_submitted_at: timestamp_opt(row.result_submitted_at),
        verdict: verdict as i32,
        verification_opinion: row.verification_opinion.clone().unwrap_or_default(),
        verified_by: row.verified_by.clone().unwrap_or_default(),
        verified_at: timestamp_opt(row.verified_at),
    })
}

/// Converts a plan row.
pub fn plan(row: &plan::Model) -> proto::InspectionPlan {
    let cycle = proto::Cycle::from_str_name(&format!("CYCLE_{}", row.cycle)).unwrap_or_default();
    proto::InspectionPlan {
        plan_id: row.id.clone(),
        name: row.name.clone(),
        cycle: cycle as i32,
        departments: list(&row.departments),
        processes: list(&row.processes),
        created_by: row.created_by.clone(),
        created_at: Some(timestamp(row.created_at)),
    }
}

/// Converts an inspection row.
pub fn inspection(row: &inspection::Model) -> proto::Inspection {
    let kind = proto::InspectionKind::from_str_name(&format!("INSPECTION_KIND_{}", row.kind))
        .unwrap_or_default();
    let method = row
        .method
        .as_deref()
        .and_then(|name| {
            proto::SpotCheckMethod::from_str_name(&format!("SPOT_CHECK_METHOD_{name}"))
        })
        .unwrap_or_default();
    proto::Inspection {
        inspection_id: row.id.clone(),
        kind: kind as i32,
        plan_id: row.plan_id.clone().unwrap_or_default(),
        period_start: date(row.period_start),
        period_end: date(row.period_end),
        departments: list(&row.departments),
        processes: list(&row.processes),
        record_ids: list(&row.record_ids),
        method: method as i32,
        ordered_by: row.ordered_by.clone(),
        opened_at: Some(timestamp(row.opened_at)),
        report_state: report_state(row.report_state.as_deref()) as i32,
    }
}

/// Converts the report of an inspection row, with the departments it was sent to.
pub fn report(row: &inspection::Model, distributed_to: Vec<String>) -> proto::Report {
    proto::Report {
        inspection_id: row.id.clone(),
        state: report_state(row.report_state.as_deref()) as i32,
        findings_summary: row.findings_summary.clone().unwrap_or_default(),
        suggestions: row.suggestions.clone().unwrap_or_default(),
        finding_ids: row
            .report_finding_ids
            .as_deref()
            .map(list)
            .unwrap_or_default(),
        drafted_by: row.drafted_by.clone().unwrap_or_default(),
        reviewed_by: row.reviewed_by.clone().unwrap_or_default(),
        review_opinion: row.review_opinion.clone().unwrap_or_default(),
        distributed_to,
        confidentiality: row.report_confidentiality,
        content_withheld: false,
    }
}

/// Converts a report with its findings summary, suggestions and review opinion withheld.
pub fn withheld_report(row: &inspection::Model, distributed_to: Vec<String>) -> proto::Report {
    let mut report = report(row, distributed_to);
    report.findings_summary.clear();
    report.suggestions.clear();
    report.review_opinion.clear();
    report.content_withheld = true;
    report
}
