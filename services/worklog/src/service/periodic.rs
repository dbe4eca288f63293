//! Weekly and monthly reports: submission, the supervisor's decision, revision in a new round
//! after a return, and the history of every round.

use sea_orm::ActiveValue::Set;
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
use trace_proto::common::v1::Confidentiality;
use trace_proto::worklog::v1 as proto;
use trace_proto::worklog::v1::revise_report_request::Content as ReviseContent;
use trace_proto::worklog::v1::submit_periodic_report_request::Content as SubmitContent;
use trace_runtime::clock::{date_key, proto_date};
use trace_runtime::context::CallContext;
use trace_runtime::event::pack;
use trace_runtime::sealed_text::{SealedRow, open_rows};
use trace_runtime::{ServiceError, ServiceResult, validate};
use uuid::Uuid;

use super::confidential::{ReadMethod, Record};
use super::content::{self, RoundContent};
use super::daily::{already_submitted, checked_transition, find_by_period};
use super::write::{AttemptResult, find_report, with_retries};
use super::{WorklogHandler, access, convert};
use crate::entity::{report, report_decision, report_figure, report_round};
use crate::rules::Period;
use crate::state::{Decision, ReportAction, ReportKind, ReportState};

/// Maximum length of a decision opinion, in characters.
const MAX_OPINION_CHARS: usize = 4000;

/// Maximum length of a revision's change summary, in characters.
const MAX_CHANGE_SUMMARY_CHARS: usize = 2000;

/// A validated `SubmitPeriodicReportRequest`.
struct NewPeriodicReport {
    kind: ReportKind,
    period: Period,
    content: RoundContent,
    confidentiality: Confidentiality,
}

/// A validated `DecideReportRequest`.
struct DecisionInput {
    report_id: String,
    decision: Decision,
    opinion: String,
}

/// A validated `ReviseReportRequest`.
struct RevisionInput {
    report_id: String,
    change_summary: String,
    kind: ReportKind,
    content: RoundContent,
}

/// Checks that a field that does not belong to the report kind is left at zero.
fn unused(field: &str, value: i32, kind: &str) -> ServiceResult<()> {
    if value != 0 {
        return Err(ServiceError::invalid(
            field,
            &value.to_string(),
            format!("must be 0 for a {kind} report"),
        ));
    }
    Ok(())
}

/// Validates the kind and period of a periodic submission.
fn periodic_period(
    request: &proto::SubmitPeriodicReportRequest,
) -> ServiceResult<(ReportKind, Period)> {
    let kind: proto::ReportKind = validate::enum_value("kind", request.kind)?;
    match ReportKind::from_proto(kind) {
        Some(ReportKind::Weekly) => {
            unused("year", request.year, "weekly")?;
            unused("month", request.month, "weekly")?;
            let week_start = validate::date("week_start", request.week_start.as_ref())?;
            Ok((
                ReportKind::Weekly,
                crate::rules::week("week_start", week_start)?,
            ))
        }
        Some(ReportKind::Monthly) => {
            if request.week_start.is_some() {
                return Err(ServiceError::invalid(
                    "week_start",
                    "set",
                    "must be empty for a monthly report",
                ));
            }
            Ok((
                ReportKind::Monthly,
                crate::rules::month(request.year, request.month)?,
            ))
        }
        _ => Err(ServiceError::invalid(
            "kind",
            &request.kind.to_string(),
            "must be REPORT_KIND_WEEKLY or REPORT_KIND_MONTHLY; daily reports use SubmitDailyReport",
        )),
    }
}

fn revision_content(content: Option<&ReviseContent>) -> ServiceResult<(ReportKind, RoundContent)> {
    match content {
        Some(ReviseContent::Weekly(weekly)) => {
            Ok((ReportKind::Weekly, content::weekly("weekly", weekly)?))
        }
        Some(ReviseContent::Monthly(monthly)) => {
            Ok((ReportKind::Monthly, content::monthly("monthly", monthly)?))
        }
        None => Err(ServiceError::invalid(
            "content",
            "",
            "is required: set weekly or monthly",
        )),
    }
}

/// Splits content into the weekly and monthly halves of a periodic event payload's oneof.
fn event_content(
    kind: ReportKind,
    content: &RoundContent,
) -> (Option<proto::WeeklyContent>, Option<proto::MonthlyContent>) {
    match kind {
        ReportKind::Monthly => (None, Some(content::monthly_message(content))),
        _ => (Some(content::weekly_message(content)), None),
    }
}

impl WorklogHandler {
    pub(super) async fn submit_periodic(
        &self,
        context: &CallContext,
        request: proto::SubmitPeriodicReportRequest,
    ) -> ServiceResult<proto::SubmitPeriodicReportResponse> {
        let (kind, period) = periodic_period(&request)?;
        let field = if kind == ReportKind::Weekly {
            "week_start"
        } else {
            "month"
        };
        crate::rules::started(field, period.start, self.today())?;
        let (weekly, monthly) = match &request.content {
            Some(SubmitContent::Weekly(weekly)) => (Some(weekly), None),
            Some(SubmitContent::Monthly(monthly)) => (None, Some(monthly)),
            None => (None, None),
        };
        let input = NewPeriodicReport {
            kind,
            period,
            content: content::periodic(kind, weekly, monthly)?,
            confidentiality: content::report_level(request.confidentiality)?,
        };
        let author = access::author(&self.directory, &context.principal.user_id)?;
        let (department, supervisor_id) = (
            author.employee.department.clone(),
            author.supervisor_id.to_owned(),
        );

        let report_id = Uuid::now_v7().to_string();
        with_retries("submit periodic report", || {
            self.try_submit_periodic(context, &report_id, &input, &department, &supervisor_id)
        })
        .await
    }

    async fn try_submit_periodic(
        &self,
        context: &CallContext,
        report_id: &str,
        input: &NewPeriodicReport,
        department: &str,
        supervisor_id: &str,
    ) -> AttemptResult<proto::SubmitPeriodicReportResponse> {
        let author_id = context.principal.user_id.as_str();
        let txn = self.begin().await?;
        if let Some(existing) =
            find_by_period(&txn, author_id, input.kind, input.period.start).await?
        {
            return Err(already_submitted(&existing).into());
        }

        let now = self.now();
        let report = report::Model {
            id: report_id.to_owned(),
            author_id: author_id.to_owned(),
            kind: input.kind,
            period_start: date_key(input.period.start),
            period_end: date_key(input.period.end),
            department: department.to_owned(),
            supervisor_id: supervisor_id.to_owned(),
            state: ReportState::Submitted,
            round: 1,
            submitted_at: now,
            round_submitted_at: now,
            deadline_at: None,
            late: false,
            late_minutes: 0,
            day_kind: None,
            entity_version: 1,
            confidentiality: input.confidentiality as i32,
        };
        report::ActiveModel::from(report.clone())
            .reset_all()
            .insert(&txn)
            .await?;
        self.insert_round(&txn, &report, 1, now, "", &input.content)
            .await?;

        let (weekly, monthly) = event_content(input.kind, &input.content);
        let payload = proto::PeriodicReportSubmitted {
            kind: input.kind.to_proto() as i32,
            period_start: Some(proto_date(input.period.start)),
            period_end: Some(proto_date(input.period.end)),
            department: department.to_owned(),
            supervisor_id: supervisor_id.to_owned(),
            content: weekly
                .map(proto::periodic_report_submitted::Content::Weekly)
                .or(monthly.map(proto::periodic_report_submitted::Content::Monthly)),
        };
        let event_id = self
            .stage_report_event(&txn, context, &report, "submitted", pack(&payload))
            .await?;
        self.commit(txn).await?;

        Ok(proto::SubmitPeriodicReportResponse {
            report: Some(convert::report(&report, &input.content, &[])),
            event_id,
        })
    }

    /// Inserts the round row and the figure rows of one round, sealed at the report's level.
    async fn insert_round(
        &self,
        txn: &sea_orm::DatabaseTransaction,
        report: &report::Model,
        round: i32,
        submitted_at: i64,
        change_summary: &str,
        content: &RoundContent,
    ) -> Result<(), sea_orm::DbErr> {
        let level = report.confidentiality;
        let row = content::round_row(&report.id, round, submitted_at, change_summary, content)
            .sealed(&self.keyring, level);
        report_round::ActiveModel::from(row)
            .reset_all()
            .insert(txn)
            .await?;
        for figure in content::figure_rows(&report.id, round, content) {
            report_figure::ActiveModel::from(figure.sealed(&self.keyring, level))
                .reset_all()
                .insert(txn)
                .await?;
        }
        Ok(())
    }

    pub(super) async fn decide(
        &self,
        context: &CallContext,
        request: proto::DecideReportRequest,
    ) -> ServiceResult<proto::DecideReportResponse> {
        let decision: proto::Decision = validate::enum_value("decision", request.decision)?;
        let input = DecisionInput {
            report_id: validate::record_id("report_id", &request.report_id)?.to_string(),
            decision: Decision::from_proto(decision)
                .ok_or_else(|| ServiceError::invalid("decision", "0", "is required"))?,
            opinion: validate::text("opinion", &request.opinion, 1, MAX_OPINION_CHARS)?,
        };

        with_retries("decide on report", || self.try_decide(context, &input)).await
    }

    async fn try_decide(
        &self,
        context: &CallContext,
        input: &DecisionInput,
    ) -> AttemptResult<proto::DecideReportResponse> {
        let txn = self.begin().await?;
        let loaded = self
            .load_for_supervisor(&txn, context, &input.report_id, "decide on")
            .await?;
        if loaded.kind == ReportKind::Daily {
            return Err(ServiceError::invalid(
                "report_id",
                &input.report_id,
                "names a daily report; daily reports take comments through SupervisorComment",
            )
            .into());
        }
        let state = checked_transition(&loaded, input.decision.action())?;

        let decision = report_decision::Model {
            id: Uuid::now_v7().to_string(),
            report_id: loaded.id.clone(),
            round: loaded.round,
            supervisor_id: context.principal.user_id.clone(),
            decision: input.decision,
            opinion: input.opinion.clone(),
            decided_at: self.now(),
        };
        report_decision::ActiveModel::from(
            decision
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
        let payload = proto::PeriodicReportDecided {
            decision_id: decision.id.clone(),
            round: convert::count(decision.round),
            decision: decision.decision.to_proto() as i32,
            opinion: decision.opinion.clone(),
            author_id: loaded.author_id.clone(),
        };
        let action = input.decision.event_action();
        let (report, event_id) = self
            .record_report_change(&txn, context, &loaded, changes, action, pack(&payload))
            .await?;
        let view = self.report_view(&txn, &report).await?;
        self.commit(txn).await?;

        Ok(proto::DecideReportResponse {
            report: Some(view),
            decision: Some(convert::decision(&decision)),
            event_id,
        })
    }

    pub(super) async fn revise(
        &self,
        context: &CallContext,
        request: proto::ReviseReportRequest,
    ) -> ServiceResult<proto::ReviseReportResponse> {
        let report_id = validate::record_id("report_id", &request.report_id)?.to_string();
        let change_summary = validate::text(
            "change_summary",
            &request.change_summary,
            1,
            MAX_CHANGE_SUMMARY_CHARS,
        )?;
        let (kind, content) = revision_content(request.content.as_ref())?;
        let input = RevisionInput {
            report_id,
            change_summary,
            kind,
            content,
        };

        with_retries("revise report", || self.try_revise(context, &input)).await
    }

    async fn try_revise(
        &self,
        context: &CallContext,
        input: &RevisionInput,
    ) -> AttemptResult<proto::ReviseReportResponse> {
        let txn = self.begin().await?;
        let loaded = find_report(&txn, &input.report_id).await?;
        let caller = &context.principal.user_id;
        if *caller != loaded.author_id {
            return Err(ServiceError::denied(format!(
                "{caller} may not revise report {}: only its author {} may",
                loaded.id, loaded.author_id
            ))
            .into());
        }
        check_revision_kind(&loaded, input)?;
        let state = checked_transition(&loaded, ReportAction::Revise)?;

        let now = self.now();
        let round = loaded.round + 1;
        self.insert_round(
            &txn,
            &loaded,
            round,
            now,
            &input.change_summary,
            &input.content,
        )
        .await?;

        let changes = report::ActiveModel {
            state: Set(state),
            round: Set(round),
            round_submitted_at: Set(now),
            ..Default::default()
        };
        let (weekly, monthly) = event_content(loaded.kind, &input.content);
        let payload = proto::PeriodicReportRevised {
            round: convert::count(round),
            change_summary: input.change_summary.clone(),
            content: weekly
                .map(proto::periodic_report_revised::Content::Weekly)
                .or(monthly.map(proto::periodic_report_revised::Content::Monthly)),
        };
        let (report, event_id) = self
            .record_report_change(&txn, context, &loaded, changes, "revised", pack(&payload))
            .await?;
        self.commit(txn).await?;

        Ok(proto::ReviseReportResponse {
            report: Some(convert::report(&report, &input.content, &[])),
            event_id,
        })
    }

    pub(super) async fn rounds(
        &self,
        context: &CallContext,
        request: proto::ListReportRoundsRequest,
    ) -> ServiceResult<proto::ListReportRoundsResponse> {
        let report_id = validate::record_id("report_id", &request.report_id)?.to_string();

        // The same scope check and recorded denial as GetReport, so a caller outside the
        // readers cannot tell a missing report from another person's.
        let found = find_report(&self.db, &report_id).await.map(Record::Report);
        let (record, _) = self
            .authorize_scope(
                context,
                "report",
                &report_id,
                found,
                ReadMethod::ListReportRounds,
            )
            .await?;
        let Record::Report(report) = record else {
            return Err(ServiceError::Internal(anyhow::anyhow!(
                "report {report_id} was loaded as another record kind"
            )));
        };
        let mut listed = self
            .listed_reports(context, ReadMethod::ListReportRounds, vec![report.clone()])
            .await?;
        let view = listed.pop().ok_or_else(|| {
            ServiceError::Internal(anyhow::anyhow!(
                "no message was built for report {report_id}"
            ))
        })?;

        let rounds = report_round::Entity::find()
            .filter(report_round::Column::ReportId.eq(report_id.as_str()))
            .order_by_asc(report_round::Column::Round)
            .all(&self.db)
            .await?;
        let decisions = report_decision::Entity::find()
            .filter(report_decision::Column::ReportId.eq(report_id.as_str()))
            .order_by_asc(report_decision::Column::Id)
            .all(&self.db)
            .await?;
        if view.content_withheld {
            // The rounds keep their numbers, times and decisions, without any text.
            let rounds = rounds
                .iter()
                .map(|round| proto::ReportRound {
                    round: convert::count(round.round),
                    submitted_at: Some(trace_runtime::clock::timestamp(round.submitted_at)),
                    change_summary: String::new(),
                    content: None,
                    decision: decisions
                        .iter()
                        .find(|decision| decision.round == round.round)
                        .map(|decision| proto::DecisionRecord {
                            opinion: String::new(),
                            ..convert::decision(decision)
                        }),
                })
                .collect();
            return Ok(proto::ListReportRoundsResponse {
                report: Some(view),
                rounds,
            });
        }
        let rounds = open_rows(&self.keyring, rounds)?;
        let decisions = open_rows(&self.keyring, decisions)?;
        let figures =
            super::views::figures_of(&self.db, &self.keyring, std::slice::from_ref(&report_id))
                .await?;

        let rounds = rounds
            .iter()
            .map(|round| {
                let round_figures: Vec<_> = figures
                    .iter()
                    .filter(|figure| figure.round == round.round)
                    .collect();
                let content = content::from_rows(round, &round_figures);
                let decision = decisions
                    .iter()
                    .find(|decision| decision.round == round.round);
                convert::round(report.kind, round, &content, decision)
            })
            .collect();
        Ok(proto::ListReportRoundsResponse {
            report: Some(view),
            rounds,
        })
    }
}

/// Rejects a revision of a daily report, or one whose content is of another kind.
fn check_revision_kind(loaded: &report::Model, input: &RevisionInput) -> ServiceResult<()> {
    if loaded.kind == ReportKind::Daily {
        return Err(ServiceError::invalid(
            "report_id",
            &loaded.id,
            "names a daily report; daily reports are submitted once and not revised",
        ));
    }
    if loaded.kind != input.kind {
        let field = if input.kind == ReportKind::Weekly {
            "weekly"
        } else {
            "monthly"
        };
        return Err(ServiceError::invalid(
            field,
            "",
            format!(
                "does not match the report's kind {}",
                loaded.kind.to_proto().as_str_name()
            ),
        ));
    }
    Ok(())
}
