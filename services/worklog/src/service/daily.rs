//! Daily reports: submission with the deadline and calendar flags, and supervisor comments.
//!
//! An author has one daily report per work date. A second submission for the same date fails
//! with `FAILED_PRECONDITION` naming the stored report and its state, instead of replacing it,
//! so that the first submission time, and with it the late flag, cannot be rewritten.

use chrono::NaiveDate;
use sea_orm::ActiveValue::Set;
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};
use trace_proto::common::v1::Confidentiality;
use trace_proto::worklog::v1 as proto;
use trace_runtime::clock::{date_from_key, date_key, proto_date};
use trace_runtime::context::CallContext;
use trace_runtime::event::pack;
use trace_runtime::sealed_text::SealedRow;
use trace_runtime::{ServiceError, ServiceResult, validate};
use uuid::Uuid;

use super::access;
use super::content::{self, RoundContent};
use super::write::{AttemptResult, find_report, with_retries};
use super::{WorklogHandler, convert};
use crate::calendar::DayKind;
use crate::entity::{report, report_comment, report_round};
use crate::state::{CommentKind, ReportAction, ReportKind, ReportState};

/// Maximum length of a comment, in characters.
const MAX_COMMENT_CHARS: usize = 4000;

/// A validated `SubmitDailyReportRequest`.
struct NewDailyReport {
    work_date: NaiveDate,
    content: RoundContent,
    confidentiality: Confidentiality,
}

/// A validated `SupervisorCommentRequest`.
struct NewComment {
    report_id: String,
    kind: CommentKind,
    text: String,
}

/// Deadline, lateness and calendar classification of one submission.
struct DailyFlags {
    deadline_at: i64,
    late_minutes: u32,
    day_kind: DayKind,
}

/// Returns the report of `author_id` of `kind` for the period starting on `period_start`.
pub(super) async fn find_by_period<C: ConnectionTrait>(
    connection: &C,
    author_id: &str,
    kind: ReportKind,
    period_start: NaiveDate,
) -> ServiceResult<Option<report::Model>> {
    Ok(report::Entity::find()
        .filter(report::Column::AuthorId.eq(author_id))
        .filter(report::Column::Kind.eq(kind))
        .filter(report::Column::PeriodStart.eq(date_key(period_start)))
        .one(connection)
        .await?)
}

/// Builds the error for a second report of the same author, kind and period.
pub(super) fn already_submitted(existing: &report::Model) -> ServiceError {
    ServiceError::wrong_state(
        "report",
        &existing.id,
        format!(
            "{} for the period starting {}, already submitted by {}",
            existing.state,
            date_from_key(existing.period_start).map_or_else(
                || existing.period_start.to_string(),
                |date| date.to_string()
            ),
            existing.author_id
        ),
        "submit another",
    )
}

impl WorklogHandler {
    pub(super) async fn submit_daily(
        &self,
        context: &CallContext,
        request: proto::SubmitDailyReportRequest,
    ) -> ServiceResult<proto::SubmitDailyReportResponse> {
        let work_date = validate::date("work_date", request.work_date.as_ref())?;
        crate::rules::started("work_date", work_date, self.today())?;
        let input = NewDailyReport {
            work_date,
            content: content::daily("content", request.content.as_ref())?,
            confidentiality: content::report_level(request.confidentiality)?,
        };
        let author = access::author(&self.directory, &context.principal.user_id)?;
        let (department, supervisor_id) = (
            author.employee.department.clone(),
            author.supervisor_id.to_owned(),
        );

        let report_id = Uuid::now_v7().to_string();
        with_retries("submit daily report", || {
            self.try_submit_daily(context, &report_id, &input, &department, &supervisor_id)
        })
        .await
    }

    /// Computes the deadline, the lateness of a submission now and the kind of work date.
    fn daily_flags(&self, work_date: NaiveDate) -> DailyFlags {
        let deadline = crate::rules::deadline(work_date, self.deadline, self.zone);
        let day_kind = self.calendar.day_kind(work_date);
        if day_kind == DayKind::CalendarMissing {
            tracing::warn!(%work_date, "the working-day calendar has no table for the year of this work date");
        }
        DailyFlags {
            deadline_at: deadline.timestamp_micros(),
            late_minutes: crate::rules::late_minutes(self.clock.now(), deadline),
            day_kind,
        }
    }

    async fn try_submit_daily(
        &self,
        context: &CallContext,
        report_id: &str,
        input: &NewDailyReport,
        department: &str,
        supervisor_id: &str,
    ) -> AttemptResult<proto::SubmitDailyReportResponse> {
        let author_id = context.principal.user_id.as_str();
        let txn = self.begin().await?;
        if let Some(existing) =
            find_by_period(&txn, author_id, ReportKind::Daily, input.work_date).await?
        {
            return Err(already_submitted(&existing).into());
        }

        let now = self.now();
        let flags = self.daily_flags(input.work_date);
        let report = report::Model {
            id: report_id.to_owned(),
            author_id: author_id.to_owned(),
            kind: ReportKind::Daily,
            period_start: date_key(input.work_date),
            period_end: date_key(input.work_date),
            department: department.to_owned(),
            supervisor_id: supervisor_id.to_owned(),
            state: ReportState::Submitted,
            round: 1,
            submitted_at: now,
            round_submitted_at: now,
            deadline_at: Some(flags.deadline_at),
            late: flags.late_minutes > 0,
            late_minutes: i32::try_from(flags.late_minutes).unwrap_or(i32::MAX),
            day_kind: Some(flags.day_kind.name().to_owned()),
            entity_version: 1,
            confidentiality: input.confidentiality as i32,
        };
        report::ActiveModel::from(report.clone())
            .reset_all()
            .insert(&txn)
            .await?;
        let round = content::round_row(report_id, 1, now, "", &input.content)
            .sealed(&self.keyring, report.confidentiality);
        report_round::ActiveModel::from(round)
            .reset_all()
            .insert(&txn)
            .await?;

        let payload = proto::DailyReportSubmitted {
            work_date: Some(proto_date(input.work_date)),
            department: department.to_owned(),
            supervisor_id: supervisor_id.to_owned(),
            content: Some(content::daily_message(&input.content)),
            status: convert::daily_status(&report),
        };
        let event_id = self
            .stage_report_event(&txn, context, &report, "submitted", pack(&payload))
            .await?;
        self.commit(txn).await?;

        Ok(proto::SubmitDailyReportResponse {
            report: Some(convert::report(&report, &input.content, &[])),
            event_id,
        })
    }

    pub(super) async fn comment(
        &self,
        context: &CallContext,
        request: proto::SupervisorCommentRequest,
    ) -> ServiceResult<proto::SupervisorCommentResponse> {
        let kind: proto::CommentKind = validate::enum_value("kind", request.kind)?;
        let input = NewComment {
            report_id: validate::record_id("report_id", &request.report_id)?.to_string(),
            kind: CommentKind::from_proto(kind)
                .ok_or_else(|| ServiceError::invalid("kind", "0", "is required"))?,
            text: validate::text("text", &request.text, 1, MAX_COMMENT_CHARS)?,
        };

        with_retries("comment on daily report", || {
            self.try_comment(context, &input)
        })
        .await
    }

    /// Loads a report for its author's direct supervisor. A caller who supervises nobody gets
    /// the same `PERMISSION_DENIED` whether or not the report exists.
    pub(super) async fn load_for_supervisor<C: ConnectionTrait>(
        &self,
        connection: &C,
        context: &CallContext,
        report_id: &str,
        verb: &str,
    ) -> ServiceResult<report::Model> {
        let caller = context.principal.user_id.as_str();
        let loaded = match find_report(connection, report_id).await {
            Err(ServiceError::NotFound { .. })
                if !access::supervises_anyone(&self.directory, caller) =>
            {
                return Err(access::not_the_supervisor(caller, report_id, verb));
            }
            other => other?,
        };
        if !self.directory.is_supervisor_of(caller, &loaded.author_id) {
            return Err(access::not_the_supervisor(caller, report_id, verb));
        }
        Ok(loaded)
    }

    async fn try_comment(
        &self,
        context: &CallContext,
        input: &NewComment,
    ) -> AttemptResult<proto::SupervisorCommentResponse> {
        let txn = self.begin().await?;
        let loaded = self
            .load_for_supervisor(&txn, context, &input.report_id, "comment on")
            .await?;
        if loaded.kind != ReportKind::Daily {
            return Err(ServiceError::invalid(
                "report_id",
                &input.report_id,
                "names a weekly or monthly report; those take decisions through DecideReport",
            )
            .into());
        }
        let state = checked_transition(&loaded, ReportAction::Comment)?;

        let comment = report_comment::Model {
            id: Uuid::now_v7().to_string(),
            report_id: loaded.id.clone(),
            supervisor_id: context.principal.user_id.clone(),
            kind: input.kind,
            text: input.text.clone(),
            commented_at: self.now(),
        };
        report_comment::ActiveModel::from(
            comment
                .clone()
                .sealed(&self.keyring, loaded.confidentiality),
        )
        .reset_all()
        .insert(&txn)
        .await?;

        let changes = report::ActiveModel {
            state: Set(state),
            ..Default::default()
        };
        let payload = proto::DailyReportCommented {
            comment_id: comment.id.clone(),
            kind: comment.kind.to_proto() as i32,
            text: comment.text.clone(),
            author_id: loaded.author_id.clone(),
        };
        let (report, event_id) = self
            .record_report_change(&txn, context, &loaded, changes, "commented", pack(&payload))
            .await?;
        let view = self.report_view(&txn, &report).await?;
        self.commit(txn).await?;

        Ok(proto::SupervisorCommentResponse {
            report: Some(view),
            comment: Some(convert::comment(&comment)),
            event_id,
        })
    }
}

/// Returns the state after `action`, or `FAILED_PRECONDITION` naming the current state.
pub(super) fn checked_transition(
    report: &report::Model,
    action: ReportAction,
) -> ServiceResult<ReportState> {
    report.state.after(report.kind, action).ok_or_else(|| {
        ServiceError::wrong_state("report", &report.id, report.state.name(), action.verb())
    })
}
