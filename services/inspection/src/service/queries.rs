//! Read calls and the rule sweep: one finding, paged finding lists, department results for
//! performance review, completeness scores, and `RunRules`.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use trace_proto::inspection::v1::*;
use trace_runtime::clock::{date_from_key, date_key, from_micros};
use trace_runtime::context::{CallContext, role};
use trace_runtime::sealed_text::open_rows;
use trace_runtime::{ServiceError, ServiceResult, validate};

use super::access::{ReadMethod, scope_condition};
use super::{InspectionHandler, record_id, require_role};
use crate::convert::{self, state_name};
use crate::entity::{finding, obligation};
use crate::rules::{self, GapState, RuleKind};

/// Page size when the request leaves it at 0.
const DEFAULT_PAGE_SIZE: u64 = 50;

/// Largest page size a request may ask for.
const MAX_PAGE_SIZE: i32 = 500;

/// Counts of one rule.
#[derive(Debug, Clone, Copy, Default)]
struct Counts {
    expected: u32,
    present: u32,
    on_time: u32,
}

impl Counts {
    fn add(&mut self, other: Counts) {
        self.expected += other.expected;
        self.present += other.present;
        self.on_time += other.on_time;
    }
}

impl InspectionHandler {
    pub(super) async fn finding_details(
        &self,
        context: &CallContext,
        request: GetFindingRequest,
    ) -> ServiceResult<GetFindingResponse> {
        let finding_id = record_id("finding_id", &request.finding_id)?;
        let (row, used) = self
            .authorize_read(context, &finding_id, ReadMethod::GetFinding)
            .await?;
        let row = self
            .record_read(context, row, used, ReadMethod::GetFinding)
            .await?;
        Ok(GetFindingResponse {
            finding: Some(convert::finding(&row)),
        })
    }

    /// Lists the findings inside the caller's read scope. The scope is part of the SQL
    /// condition, so the `LIMIT` cuts only readable findings and paging stays complete. The
    /// text of a CONFIDENTIAL or SECRET finding that the caller would need an approval for is
    /// withheld, see [`InspectionHandler::listed_findings`].
    pub(super) async fn search_findings(
        &self,
        context: &CallContext,
        request: ListFindingsRequest,
    ) -> ServiceResult<ListFindingsResponse> {
        let page = request.page.unwrap_or_default();
        let page_size = page_size(page.page_size)?;
        let mut query = finding::Entity::find().order_by_asc(finding::Column::Id);
        if !request.department.is_empty() {
            let department = validate::department("department", &request.department)?;
            query = query.filter(finding::Column::Department.eq(department));
        }
        if request.rule != 0 {
            let rule: Rule = validate::enum_value("rule", request.rule)?;
            let name = RuleKind::from_proto(rule).map_or("", RuleKind::name);
            query = query.filter(finding::Column::Rule.eq(name));
        }
        if request.state != 0 {
            let state: FindingState = validate::enum_value("state", request.state)?;
            query = query.filter(finding::Column::State.eq(state_name(state)));
        }
        if !page.page_token.is_empty() {
            let after = record_id("page.page_token", &page.page_token)?;
            query = query.filter(finding::Column::Id.gt(after));
        }
        if let Some(scope) = scope_condition(&self.finding_scope(context)) {
            query = query.filter(scope);
        }

        let mut rows = query.limit(page_size + 1).all(&self.db).await?;
        let next_page_token = if rows.len() as u64 > page_size {
            rows.truncate(page_size as usize);
            rows.last().map(|row| row.id.clone()).unwrap_or_default()
        } else {
            String::new()
        };
        let rows = open_rows(&self.keyring, rows)?;
        Ok(ListFindingsResponse {
            findings: self.listed_findings(context, rows).await?,
            next_page_token,
        })
    }

    pub(super) async fn results(
        &self,
        context: &CallContext,
        request: DepartmentResultsRequest,
    ) -> ServiceResult<DepartmentResultsResponse> {
        let department = validate::department("department", &request.department)?;
        let (from, to) = period(request.from.as_ref(), request.to.as_ref())?;
        self.authorize_department_read(context, &department, "inspection results")?;
        let start = rules::end_of_day(from.pred_opt().unwrap_or(from), self.zone);
        let end = rules::end_of_day(to, self.zone);

        let rows = finding::Entity::find()
            .filter(finding::Column::Department.eq(&department))
            .filter(finding::Column::RecordedAt.gte(start.timestamp_micros()))
            .filter(finding::Column::RecordedAt.lt(end.timestamp_micros()))
            .all(&self.db)
            .await?;
        let mut response = DepartmentResultsResponse {
            department,
            findings: rows.len() as u32,
            ..Default::default()
        };
        let now = self.clock.now();
        for row in &rows {
            match row.severity.as_str() {
                "LOW" => response.low += 1,
                "MEDIUM" => response.medium += 1,
                "HIGH" => response.high += 1,
                _ => response.critical += 1,
            }
            match rectification_timing(row, self.zone, now) {
                Some(true) => response.rectified_on_time += 1,
                Some(false) => response.overdue += 1,
                None => {}
            }
        }
        Ok(response)
    }

    pub(super) async fn completeness(
        &self,
        context: &CallContext,
        request: GetCompletenessScoreRequest,
    ) -> ServiceResult<GetCompletenessScoreResponse> {
        let department = validate::department("department", &request.department)?;
        let (from, to) = period(request.from.as_ref(), request.to.as_ref())?;
        self.authorize_department_read(context, &department, "completeness score")?;

        let rows = obligation::Entity::find()
            .filter(obligation::Column::Department.eq(&department))
            .filter(obligation::Column::ExpectedOn.gte(date_key(from)))
            .filter(obligation::Column::ExpectedOn.lte(date_key(to)))
            .filter(obligation::Column::State.ne(GapState::Cancelled.name()))
            .all(&self.db)
            .await?;
        let now = self.clock.now();
        let mut per_rule: BTreeMap<RuleKind, Counts> = RuleKind::ALL
            .into_iter()
            .map(|rule| (rule, Counts::default()))
            .collect();
        for row in &rows {
            let Some(rule) = RuleKind::from_name(&row.rule) else {
                continue;
            };
            if let Some(counts) = per_rule.get_mut(&rule) {
                counts.add(count(row, now));
            }
        }

        let mut total = Counts::default();
        let mut breakdown = Vec::with_capacity(per_rule.len());
        for (rule, counts) in per_rule {
            total.add(counts);
            breakdown.push(CompletenessCounts {
                rule: rule.proto() as i32,
                expected: counts.expected,
                present: counts.present,
                on_time: counts.on_time,
                score: rules::score(counts.on_time, counts.expected),
            });
        }
        Ok(GetCompletenessScoreResponse {
            department,
            expected: total.expected,
            present: total.present,
            on_time: total.on_time,
            score: rules::score(total.on_time, total.expected),
            rules: breakdown,
        })
    }

    pub(super) async fn sweep_now(&self, context: &CallContext) -> ServiceResult<RunRulesResponse> {
        require_role(context, &[role::SYSTEM], "running the rules")?;
        let transaction = trace_runtime::db::begin_write(&self.db).await?;
        let outcome = self.engine.sweep(&transaction).await?;
        self.commit(transaction).await?;
        crate::metrics::record_findings(&outcome);
        Ok(RunRulesResponse {
            raised: outcome.raised,
            obligations_generated: outcome.generated,
        })
    }
}

/// Counts one obligation. It is expected once present or past its due time, so records not
/// yet due do not lower the score.
fn count(row: &obligation::Model, now: DateTime<Utc>) -> Counts {
    let due_at = from_micros(row.due_at);
    let fulfilled_at = row.fulfilled_at.map(from_micros);
    let present = fulfilled_at.is_some();
    if !present && due_at > now {
        return Counts::default();
    }
    Counts {
        expected: 1,
        present: u32::from(present),
        on_time: u32::from(rules::on_time(fulfilled_at, due_at)),
    }
}

/// Returns `Some(true)` for a rectification accepted with its result submitted by the end of
/// the deadline, `Some(false)` for one past its deadline without that, and `None` when no
/// deadline is set or it has not passed yet.
fn rectification_timing(
    row: &finding::Model,
    zone: chrono_tz::Tz,
    now: DateTime<Utc>,
) -> Option<bool> {
    let deadline = row.deadline.and_then(date_from_key)?;
    let due = rules::end_of_day(deadline, zone);
    let submitted_in_time = row
        .result_submitted_at
        .is_some_and(|at| from_micros(at) <= due);
    let accepted = row.verdict.as_deref() == Some("ACCEPTED");
    if accepted && submitted_in_time {
        return Some(true);
    }
    if accepted || now > due {
        return Some(false);
    }
    None
}

/// Checks a page size: 0 means the default, otherwise 1 to 500.
fn page_size(value: i32) -> ServiceResult<u64> {
    match value {
        0 => Ok(DEFAULT_PAGE_SIZE),
        1..=MAX_PAGE_SIZE => Ok(value as u64),
        _ => Err(ServiceError::invalid(
            "page.page_size",
            &value.to_string(),
            format!("must be 0 to {MAX_PAGE_SIZE}"),
        )),
    }
}

/// Checks a period: both dates required and `from` not after `to`.
fn period(
    from: Option<&trace_proto::common::v1::Date>,
    to: Option<&trace_proto::common::v1::Date>,
) -> ServiceResult<(NaiveDate, NaiveDate)> {
    let from = validate::date("from", from)?;
    let to = validate::date("to", to)?;
    if from > to {
        return Err(ServiceError::invalid(
            "to",
            &to.to_string(),
            format!("must not be before from ({from})"),
        ));
    }
    Ok((from, to))
}
