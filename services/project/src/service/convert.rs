//! Conversions from stored rows to API messages.

use trace_proto::project::v1 as proto;
use trace_runtime::clock::{date_from_key, proto_date, timestamp, timestamp_opt};

use crate::entity::{
    acceptance, application, approval, decision, document_update, group_member, member, milestone,
    progress, project, summary, task,
};

/// Converts a stored count or number that is never negative.
pub(super) fn count(value: i32) -> u32 {
    u32::try_from(value).unwrap_or_default()
}

/// Converts a stored `YYYYMMDD` key to a protobuf date; `None` only for a corrupt key.
pub(super) fn date(key: i32) -> Option<trace_proto::common::v1::Date> {
    date_from_key(key).map(proto_date)
}

pub(super) fn project(model: &project::Model) -> proto::Project {
    proto::Project {
        project_id: model.id.clone(),
        name: model.name.clone(),
        department: model.department.clone(),
        confidentiality: model.confidentiality,
        state: proto::ProjectState::from(model.state) as i32,
        manager_id: model.manager_id.clone(),
        application_round: count(model.round),
        submitted_at: Some(timestamp(model.submitted_at)),
        approved_at: timestamp_opt(model.approved_at),
        started_at: timestamp_opt(model.started_at),
        closed_at: timestamp_opt(model.closed_at),
        entity_version: u64::try_from(model.entity_version).unwrap_or_default(),
        next_approver_id: model.next_approver_id.clone().unwrap_or_default(),
    }
}

pub(super) fn application(
    model: &application::Model,
    tasks: &[task::Model],
    milestones: &[milestone::Model],
) -> proto::Application {
    proto::Application {
        round: count(model.round),
        name: model.name.clone(),
        department: model.department.clone(),
        background: model.background.clone(),
        goals: model.goals.clone(),
        tasks: tasks
            .iter()
            .map(|task| proto::Task {
                title: task.title.clone(),
                description: task.description.clone(),
            })
            .collect(),
        milestones: milestones
            .iter()
            .map(|milestone| proto::Milestone {
                name: milestone.name.clone(),
                due_date: date(milestone.due_date),
            })
            .collect(),
        resource_needs: model.resource_needs.clone(),
        expected_results: model.expected_results.clone(),
        submitted_by: model.submitted_by.clone(),
        submitted_at: Some(timestamp(model.submitted_at)),
    }
}

pub(super) fn approval(model: &approval::Model) -> proto::Approval {
    proto::Approval {
        round: count(model.round),
        position: count(model.position),
        approver_id: model.approver_id.clone(),
        required: model.required,
        decision: model.decision.map_or(0, |decision| decision.to_proto()),
        opinion: model.opinion.clone().unwrap_or_default(),
        decided_at: timestamp_opt(model.decided_at),
    }
}

pub(super) fn member(model: &member::Model) -> proto::Member {
    proto::Member {
        user_id: model.user_id.clone(),
        name: model.name.clone(),
        department: model.department.clone(),
        position: model.position.clone(),
        duties: model.duties.clone(),
        active: model.active_slot.is_some(),
        added_by: model.added_by.clone(),
        added_at: Some(timestamp(model.added_at)),
        duties_changed_by: model.duties_changed_by.clone().unwrap_or_default(),
        duties_changed_at: timestamp_opt(model.duties_changed_at),
        removed_by: model.removed_by.clone().unwrap_or_default(),
        removed_at: timestamp_opt(model.removed_at),
        removal_reason: model.removal_reason.clone().unwrap_or_default(),
    }
}

pub(super) fn progress(model: &progress::Model) -> proto::ProgressReport {
    proto::ProgressReport {
        report_id: model.id.clone(),
        project_id: model.project_id.clone(),
        period_start: date(model.period_start),
        period_end: date(model.period_end),
        progress: model.progress.clone(),
        problems: model.problems.clone(),
        solutions: model.solutions.clone(),
        meeting_id: model.meeting_id.clone().unwrap_or_default(),
        reported_by: model.reported_by.clone(),
        reported_at: Some(timestamp(model.reported_at)),
    }
}

pub(super) fn document_update(model: &document_update::Model) -> proto::DocumentUpdate {
    proto::DocumentUpdate {
        update_id: model.id.clone(),
        project_id: model.project_id.clone(),
        kind: model.kind.to_proto(),
        document_id: model.document_id.clone(),
        summary: model.summary.clone(),
        updated_by: model.updated_by.clone(),
        updated_at: Some(timestamp(model.updated_at)),
    }
}

pub(super) fn decision(model: &decision::Model) -> proto::Decision {
    proto::Decision {
        decision_id: model.id.clone(),
        project_id: model.project_id.clone(),
        kind: model.kind.to_proto(),
        process: model.process.clone(),
        reason: model.reason.clone(),
        content: model.content.clone(),
        approver_id: model.approver_id.clone(),
        state: model.state.to_proto(),
        recorded_by: model.recorded_by.clone(),
        recorded_at: Some(timestamp(model.recorded_at)),
        approval_opinion: model.approval_opinion.clone().unwrap_or_default(),
        decided_at: timestamp_opt(model.decided_at),
    }
}

pub(super) fn group_member(model: &group_member::Model) -> proto::GroupMember {
    proto::GroupMember {
        position: count(model.position),
        user_id: model.user_id.clone(),
        name: model.name.clone(),
        verdict: model.verdict.map_or(0, |verdict| verdict.to_proto()),
        opinion: model.opinion.clone().unwrap_or_default(),
        open_issues: model.open_issues.clone().unwrap_or_default(),
        signed_at: timestamp_opt(model.signed_at),
    }
}

pub(super) fn acceptance(
    model: &acceptance::Model,
    members: &[group_member::Model],
) -> proto::Acceptance {
    proto::Acceptance {
        acceptance_id: model.id.clone(),
        project_id: model.project_id.clone(),
        attempt: count(model.attempt),
        results_report: model.results_report.clone(),
        test_report_document_id: model.test_report_document_id.clone(),
        user_feedback: model.user_feedback.clone(),
        applied_by: model.applied_by.clone(),
        applied_at: Some(timestamp(model.applied_at)),
        members: members.iter().map(group_member).collect(),
        group_set_by: model.group_set_by.clone().unwrap_or_default(),
        group_set_at: timestamp_opt(model.group_set_at),
        result: model.result.map_or(0, |result| result.to_proto()),
        group_opinion: model.group_opinion.clone().unwrap_or_default(),
        open_issues: model.open_issues.clone().unwrap_or_default(),
        decided_by: model.decided_by.clone().unwrap_or_default(),
        decided_at: timestamp_opt(model.decided_at),
    }
}

pub(super) fn summary(model: &summary::Model) -> proto::Summary {
    proto::Summary {
        lessons: model.lessons.clone(),
        results: model.results.clone(),
        shortcomings: model.shortcomings.clone(),
        submitted_by: model.submitted_by.clone(),
        submitted_at: Some(timestamp(model.submitted_at)),
    }
}
