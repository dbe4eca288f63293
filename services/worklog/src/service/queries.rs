//! Read-only queries: one employee's reports over a period, the reports waiting for a
//! supervisor, and communications by counterpart and period, each with keyset paging.

use chrono::{Days, NaiveDate, NaiveTime};
use sea_orm::sea_query::{Expr, ExprTrait, LikeExpr, Query};
use sea_orm::{ColumnTrait, Condition, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use trace_proto::worklog::v1 as proto;
use trace_runtime::clock::date_key;
use trace_runtime::context::CallContext;
use trace_runtime::sealed_text::open_rows;
use trace_runtime::{ServiceError, ServiceResult, validate};

use super::confidential::{ReadMethod, Record};
use super::paging::{Cursor, Page};
use super::views::communication_views;
use super::{WorklogHandler, access, convert};
use crate::entity::{communication, communication_document, communication_participant, report};
use crate::state::{ReportKind, ReportState};

/// Escape character for LIKE patterns, declared with `ESCAPE` in the query.
const LIKE_ESCAPE: char = '\\';

/// Maximum length of the counterpart filter, in characters.
const MAX_COUNTERPART_CHARS: usize = 200;

/// Builds a LIKE pattern that matches `text` anywhere, with the LIKE metacharacters `%`, `_`
/// and the escape character itself matched literally.
fn contains_pattern(text: &str) -> String {
    let mut pattern = String::with_capacity(text.len() + 2);
    pattern.push('%');
    for c in text.chars() {
        if matches!(c, '%' | '_') || c == LIKE_ESCAPE {
            pattern.push(LIKE_ESCAPE);
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

/// Rows after `cursor` in the order (sort column, id column).
fn after_cursor(sort: impl ColumnTrait, id: impl ColumnTrait, cursor: &Cursor) -> Condition {
    Condition::any().add(sort.gt(cursor.sort_key)).add(
        Condition::all()
            .add(sort.eq(cursor.sort_key))
            .add(id.gt(cursor.id.as_str())),
    )
}

fn report_cursor(model: &report::Model) -> Cursor {
    Cursor {
        sort_key: i64::from(model.period_start),
        id: model.id.clone(),
    }
}

/// Validates an optional date range; either end may be absent.
fn date_range(
    start: Option<&trace_proto::common::v1::Date>,
    end: Option<&trace_proto::common::v1::Date>,
) -> ServiceResult<(Option<NaiveDate>, Option<NaiveDate>)> {
    let start = start
        .map(|date| validate::optional_date("period_start", date))
        .transpose()?;
    let end = end
        .map(|date| validate::optional_date("period_end", date))
        .transpose()?;
    if let (Some(start), Some(end)) = (start, end) {
        check_order(start, end)?;
    }
    Ok((start, end))
}

fn check_order(start: NaiveDate, end: NaiveDate) -> ServiceResult<()> {
    if end < start {
        return Err(ServiceError::invalid(
            "period_end",
            &end.to_string(),
            format!("must not be before period_start {start}"),
        ));
    }
    Ok(())
}

fn optional_kind(kind: i32) -> ServiceResult<Option<ReportKind>> {
    if kind == 0 {
        return Ok(None);
    }
    let kind: proto::ReportKind = validate::enum_value("kind", kind)?;
    Ok(ReportKind::from_proto(kind))
}

impl WorklogHandler {
    pub(super) async fn reports_of_employee(
        &self,
        context: &CallContext,
        request: proto::ListReportsRequest,
    ) -> ServiceResult<proto::ListReportsResponse> {
        let employee_id = validate::user_id("employee_id", &request.employee_id)?;
        let start = validate::date("period_start", request.period_start.as_ref())?;
        let end = validate::date("period_end", request.period_end.as_ref())?;
        check_order(start, end)?;
        let kind = optional_kind(request.kind)?;
        let page = Page::parse(request.page.as_ref())?;
        access::require_reader(&self.directory, &context.principal, &employee_id)?;

        let mut query = report::Entity::find()
            .filter(report::Column::AuthorId.eq(employee_id.as_str()))
            .filter(report::Column::PeriodStart.between(date_key(start), date_key(end)));
        if let Some(kind) = kind {
            query = query.filter(report::Column::Kind.eq(kind));
        }
        if let Some(cursor) = &page.after {
            query = query.filter(after_cursor(
                report::Column::PeriodStart,
                report::Column::Id,
                cursor,
            ));
        }
        let mut rows = query
            .order_by_asc(report::Column::PeriodStart)
            .order_by_asc(report::Column::Id)
            .limit(page.fetch_limit())
            .all(&self.db)
            .await?;

        let next_page_token = page.finish(&mut rows, report_cursor);
        Ok(proto::ListReportsResponse {
            reports: self
                .listed_reports(context, ReadMethod::ListReports, rows)
                .await?,
            next_page_token,
        })
    }

    /// Lists SUBMITTED reports of the caller's direct reports: daily reports not yet commented
    /// and periodic reports awaiting a decision. A caller who supervises nobody gets an empty
    /// list.
    pub(super) async fn pending(
        &self,
        context: &CallContext,
        request: proto::PendingForSupervisorRequest,
    ) -> ServiceResult<proto::PendingForSupervisorResponse> {
        let page = Page::parse(request.page.as_ref())?;
        let reports: Vec<String> = self
            .directory
            .reports_of(&context.principal.user_id)
            .iter()
            .map(|employee| employee.id.clone())
            .collect();
        if reports.is_empty() {
            return Ok(proto::PendingForSupervisorResponse::default());
        }

        let mut query = report::Entity::find()
            .filter(report::Column::AuthorId.is_in(reports.iter().map(String::as_str)))
            .filter(report::Column::State.eq(ReportState::Submitted));
        if let Some(cursor) = &page.after {
            query = query.filter(after_cursor(
                report::Column::PeriodStart,
                report::Column::Id,
                cursor,
            ));
        }
        let mut rows = query
            .order_by_asc(report::Column::PeriodStart)
            .order_by_asc(report::Column::Id)
            .limit(page.fetch_limit())
            .all(&self.db)
            .await?;

        let next_page_token = page.finish(&mut rows, report_cursor);
        Ok(proto::PendingForSupervisorResponse {
            reports: self
                .listed_reports(context, ReadMethod::PendingForSupervisor, rows)
                .await?,
            next_page_token,
        })
    }

    pub(super) async fn communications(
        &self,
        context: &CallContext,
        request: proto::ListCommunicationsRequest,
    ) -> ServiceResult<proto::ListCommunicationsResponse> {
        let counterpart = validate::line(
            "counterpart",
            &request.counterpart,
            0,
            MAX_COUNTERPART_CHARS,
        )?;
        let (start, end) = date_range(request.period_start.as_ref(), request.period_end.as_ref())?;
        let page = Page::parse(request.page.as_ref())?;

        let mut query = communication::Entity::find().filter(self.visible_communications(context));
        if !counterpart.is_empty() {
            let pattern = LikeExpr::new(contains_pattern(&validate::search_key(&counterpart)))
                .escape(LIKE_ESCAPE);
            query = query.filter(Expr::col(communication::Column::CounterpartKey).like(pattern));
        }
        if let Some(start) = start {
            query = query.filter(communication::Column::OccurredAt.gte(self.start_of_day(start)));
        }
        if let Some(end) = end.and_then(|end| end.checked_add_days(Days::new(1))) {
            query = query.filter(communication::Column::OccurredAt.lt(self.start_of_day(end)));
        }
        if let Some(cursor) = &page.after {
            query = query.filter(after_cursor(
                communication::Column::OccurredAt,
                communication::Column::Id,
                cursor,
            ));
        }
        let mut rows = query
            .order_by_asc(communication::Column::OccurredAt)
            .order_by_asc(communication::Column::Id)
            .limit(page.fetch_limit())
            .all(&self.db)
            .await?;

        let next_page_token = page.finish(&mut rows, |row| Cursor {
            sort_key: row.occurred_at,
            id: row.id.clone(),
        });
        let rows = open_rows(&self.keyring, rows)?;
        let grants = self.communication_grants(context, &rows).await?;
        let records = rows.into_iter().map(Record::Communication).collect();
        let read = self
            .record_reads(context, ReadMethod::ListCommunications, records, &grants)
            .await?;
        let rows: Vec<communication::Model> = read
            .into_iter()
            .filter_map(|record| match record {
                Record::Communication(row) => Some(row),
                Record::Report(_) => None,
            })
            .collect();
        let views = communication_views(&self.db, &rows).await?;
        Ok(proto::ListCommunicationsResponse {
            communications: views
                .into_iter()
                .zip(&grants)
                .map(|(view, grant)| {
                    if grant.withheld() {
                        convert::withhold_communication(view)
                    } else {
                        view
                    }
                })
                .collect(),
            next_page_token,
        })
    }

    /// Returns the first instant of `date` in the business time zone, in stored form.
    fn start_of_day(&self, date: NaiveDate) -> i64 {
        crate::rules::deadline(date, NaiveTime::MIN, self.zone).timestamp_micros()
    }

    /// Builds the filter of communications the caller may see. The administration and audit
    /// roles see all. Others see those they recorded, took part in, took the minutes of or are
    /// responsible for a linked document of, and those recorded in a department they head.
    fn visible_communications(&self, context: &CallContext) -> Condition {
        if access::reads_everything(&context.principal) {
            return Condition::all();
        }
        let caller = context.principal.user_id.as_str();
        let participated = Query::select()
            .column(communication_participant::Column::CommunicationId)
            .from(communication_participant::Entity)
            .and_where(communication_participant::Column::UserId.eq(caller))
            .to_owned();
        let responsible = Query::select()
            .column(communication_document::Column::CommunicationId)
            .from(communication_document::Entity)
            .and_where(communication_document::Column::ResponsibleId.eq(caller))
            .to_owned();
        let headed = access::departments_headed_by(&self.directory, caller);

        let mut visible = Condition::any()
            .add(communication::Column::RecordedBy.eq(caller))
            .add(communication::Column::MinuteTakerId.eq(caller))
            .add(communication::Column::Id.in_subquery(participated))
            .add(communication::Column::Id.in_subquery(responsible));
        if !headed.is_empty() {
            visible = visible.add(communication::Column::Department.is_in(headed));
        }
        visible
    }
}

#[cfg(test)]
mod tests {
    use sea_orm::{DbBackend, QueryTrait};

    use super::*;

    fn date(year: i32, month: i32, day: i32) -> trace_proto::common::v1::Date {
        trace_proto::common::v1::Date { year, month, day }
    }

    #[test]
    fn like_metacharacters_are_escaped() {
        assert_eq!(contains_pattern("華為"), "%華為%");
        assert_eq!(contains_pattern("100%"), "%100\\%%");
        assert_eq!(contains_pattern("a_b"), "%a\\_b%");
    }

    #[test]
    fn reversed_range_names_the_end() {
        let error = date_range(Some(&date(2026, 3, 9)), Some(&date(2026, 3, 2))).unwrap_err();

        assert!(
            matches!(error, ServiceError::InvalidArgument { ref field, .. } if field == "period_end"),
            "{error}"
        );
    }

    #[test]
    fn open_ranges_are_allowed() {
        assert_eq!(date_range(None, None).unwrap(), (None, None));
        assert!(
            date_range(Some(&date(2026, 3, 2)), None)
                .unwrap()
                .0
                .is_some()
        );
    }

    #[test]
    fn keyset_condition_breaks_ties_by_id() {
        let cursor = Cursor {
            sort_key: 20260302,
            id: "0190".to_owned(),
        };
        let query = report::Entity::find().filter(after_cursor(
            report::Column::PeriodStart,
            report::Column::Id,
            &cursor,
        ));

        let sql = query.build(DbBackend::Sqlite).to_string();

        assert!(sql.contains(r#""period_start" > 20260302 OR ("reports"."period_start" = 20260302 AND "reports"."id" > '0190')"#), "{sql}");
    }
}
