//! Conversions from stored rows to API messages.

use trace_proto::common::v1::BlobRef;
use trace_proto::worklog::v1 as proto;
use trace_runtime::clock::{date_from_key, proto_date, timestamp, timestamp_opt};

use super::content::{self, RoundContent};
use crate::calendar::DayKind;
use crate::entity::{
    communication, communication_attachment, communication_document, communication_participant,
    report, report_comment, report_decision,
};
use crate::state::ReportKind;

/// Converts a stored count or number that is never negative.
pub(super) fn count(value: i32) -> u32 {
    u32::try_from(value).unwrap_or_default()
}

/// Converts a stored `YYYYMMDD` key to a protobuf date; `None` only for a corrupt key.
pub(super) fn date(key: i32) -> Option<trace_proto::common::v1::Date> {
    date_from_key(key).map(proto_date)
}

pub(super) fn day_kind(kind: DayKind) -> proto::DayKind {
    match kind {
        DayKind::WorkingDay => proto::DayKind::WorkingDay,
        DayKind::MakeUpWorkingDay => proto::DayKind::MakeUpWorkingDay,
        DayKind::Weekend => proto::DayKind::Weekend,
        DayKind::PublicHoliday => proto::DayKind::PublicHoliday,
        DayKind::CalendarMissing => proto::DayKind::CalendarMissing,
    }
}

/// Returns the deadline and calendar status of a daily report; `None` for other kinds.
pub(super) fn daily_status(model: &report::Model) -> Option<proto::DailyStatus> {
    if model.kind != ReportKind::Daily {
        return None;
    }
    let kind = model.day_kind.as_deref().and_then(DayKind::from_name);
    Some(proto::DailyStatus {
        deadline: timestamp_opt(model.deadline_at),
        late: model.late,
        late_minutes: count(model.late_minutes),
        day_kind: kind.map_or(proto::DayKind::Unspecified, day_kind) as i32,
        non_working_day: kind.is_some_and(DayKind::is_non_working),
        calendar_missing: kind == Some(DayKind::CalendarMissing),
    })
}

/// Wraps a round's content in the oneof of `Report`.
pub(super) fn report_content(kind: ReportKind, content: &RoundContent) -> proto::report::Content {
    match kind {
        ReportKind::Daily => proto::report::Content::Daily(content::daily_message(content)),
        ReportKind::Weekly => proto::report::Content::Weekly(content::weekly_message(content)),
        ReportKind::Monthly => proto::report::Content::Monthly(content::monthly_message(content)),
    }
}

fn round_content(kind: ReportKind, content: &RoundContent) -> proto::report_round::Content {
    match report_content(kind, content) {
        proto::report::Content::Daily(daily) => proto::report_round::Content::Daily(daily),
        proto::report::Content::Weekly(weekly) => proto::report_round::Content::Weekly(weekly),
        proto::report::Content::Monthly(monthly) => proto::report_round::Content::Monthly(monthly),
    }
}

/// Builds a report message from its row, its current round's content and its comments.
pub(super) fn report(
    model: &report::Model,
    content: &RoundContent,
    comments: &[&report_comment::Model],
) -> proto::Report {
    proto::Report {
        report_id: model.id.clone(),
        kind: model.kind.to_proto() as i32,
        author_id: model.author_id.clone(),
        department: model.department.clone(),
        period_start: date(model.period_start),
        period_end: date(model.period_end),
        state: model.state.to_proto() as i32,
        round: count(model.round),
        supervisor_id: model.supervisor_id.clone(),
        submitted_at: Some(timestamp(model.submitted_at)),
        round_submitted_at: Some(timestamp(model.round_submitted_at)),
        content: Some(report_content(model.kind, content)),
        daily_status: daily_status(model),
        comments: comments.iter().map(|model| comment(model)).collect(),
        entity_version: u64::try_from(model.entity_version).unwrap_or_default(),
        confidentiality: model.confidentiality,
        content_withheld: false,
    }
}

/// Returns `view` with its content and comments withheld, for a caller who may list the
/// report but not read its content yet.
pub(super) fn withhold_report(view: proto::Report) -> proto::Report {
    proto::Report {
        content: None,
        comments: Vec::new(),
        content_withheld: true,
        ..view
    }
}

/// Returns `view` with its content, outcome, notice, attachments and linked documents
/// withheld, for a caller who may list the communication but not read its content yet.
pub(super) fn withhold_communication(view: proto::Communication) -> proto::Communication {
    proto::Communication {
        content: String::new(),
        outcome: String::new(),
        notice: String::new(),
        attachments: Vec::new(),
        linked_documents: Vec::new(),
        content_withheld: true,
        ..view
    }
}

/// Builds one round of a report.
pub(super) fn round(
    kind: ReportKind,
    round: &crate::entity::report_round::Model,
    content: &RoundContent,
    decision: Option<&report_decision::Model>,
) -> proto::ReportRound {
    proto::ReportRound {
        round: count(round.round),
        submitted_at: Some(timestamp(round.submitted_at)),
        change_summary: round.change_summary.clone(),
        content: Some(round_content(kind, content)),
        decision: decision.map(self::decision),
    }
}

pub(super) fn comment(model: &report_comment::Model) -> proto::Comment {
    proto::Comment {
        comment_id: model.id.clone(),
        supervisor_id: model.supervisor_id.clone(),
        kind: model.kind.to_proto() as i32,
        text: model.text.clone(),
        commented_at: Some(timestamp(model.commented_at)),
    }
}

pub(super) fn decision(model: &report_decision::Model) -> proto::DecisionRecord {
    proto::DecisionRecord {
        decision_id: model.id.clone(),
        round: count(model.round),
        supervisor_id: model.supervisor_id.clone(),
        decision: model.decision.to_proto() as i32,
        opinion: model.opinion.clone(),
        decided_at: Some(timestamp(model.decided_at)),
    }
}

/// The rows of one communication besides its main row, each ordered by position.
pub(super) struct CommunicationParts<'a> {
    pub participants: Vec<&'a communication_participant::Model>,
    pub attachments: Vec<&'a communication_attachment::Model>,
    pub documents: Vec<&'a communication_document::Model>,
}

pub(super) fn attachment(model: &communication_attachment::Model) -> proto::StoredAttachment {
    proto::StoredAttachment {
        file_name: model.file_name.clone(),
        content: Some(BlobRef {
            sha256: model.sha256.clone(),
            size_bytes: u64::try_from(model.size_bytes).unwrap_or_default(),
            media_type: model.media_type.clone(),
        }),
    }
}

pub(super) fn linked_document(model: &communication_document::Model) -> proto::LinkedDocument {
    proto::LinkedDocument {
        document_id: model.document_id.clone(),
        kind: proto::LinkedDocumentKind::from_str_name(&model.kind).unwrap_or_default() as i32,
        responsible_id: model.responsible_id.clone(),
        circulation: model.circulation.clone(),
    }
}

pub(super) fn communication(
    model: &communication::Model,
    parts: &CommunicationParts<'_>,
) -> proto::Communication {
    proto::Communication {
        communication_id: model.id.clone(),
        scope: proto::CommunicationScope::from_str_name(&model.scope).unwrap_or_default() as i32,
        channel: proto::CommunicationChannel::from_str_name(&model.channel).unwrap_or_default()
            as i32,
        occurred_at: Some(timestamp(model.occurred_at)),
        subject: model.subject.clone(),
        participant_ids: parts
            .participants
            .iter()
            .filter_map(|row| row.user_id.clone())
            .collect(),
        external_participants: parts
            .participants
            .iter()
            .filter_map(|row| row.external_name.clone())
            .collect(),
        counterpart: model.counterpart.clone(),
        content: model.content.clone(),
        outcome: model.outcome.clone(),
        notice: model.notice.clone(),
        minute_taker_id: model.minute_taker_id.clone().unwrap_or_default(),
        attachments: parts
            .attachments
            .iter()
            .map(|row| attachment(row))
            .collect(),
        linked_documents: parts
            .documents
            .iter()
            .map(|row| linked_document(row))
            .collect(),
        confidentiality: model.confidentiality,
        recorded_by: model.recorded_by.clone(),
        recorded_at: Some(timestamp(model.recorded_at)),
        department: model.department.clone(),
        entity_version: u64::try_from(model.entity_version).unwrap_or_default(),
        content_withheld: false,
    }
}
