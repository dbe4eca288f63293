//! Queries: one document, document search with paging, revisions and borrowings. They return
//! no content, but a CONFIDENTIAL or SECRET document's records are read only within the rule
//! of [`super::scope`], and each permitted or denied read of them is recorded there.

use sea_orm::sea_query::{ExprTrait, LikeExpr};
use sea_orm::{
    ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Select, sea_query::Expr,
};
use trace_proto::document::v1 as proto;
use trace_runtime::context::CallContext;
use trace_runtime::read_scope::ReadScope;
use trace_runtime::sealed_text::open_rows;
use trace_runtime::{ServiceError, ServiceResult, validate};

use super::scope::{ReadMethod, listing_condition};
use super::{DocumentHandler, convert};
use crate::entity::{borrowing, document, revision};
use crate::state::DocumentState;

/// Page size when the request leaves it 0.
const DEFAULT_PAGE_SIZE: u64 = 50;

/// Largest page size a request may ask for.
const MAX_PAGE_SIZE: i32 = 500;

/// Escape character for LIKE patterns, declared with `ESCAPE` in the query.
const LIKE_ESCAPE: char = '\\';

/// Validated filters and paging of a `ListDocumentsRequest`.
#[derive(Debug, Default)]
struct DocumentFilter {
    category: Option<String>,
    year: Option<i32>,
    department: Option<String>,
    state: Option<DocumentState>,
    /// Normalised search key of `title_contains`.
    title_key: Option<String>,
    /// Id of the last document of the previous page.
    after_id: Option<String>,
    page_size: u64,
}

impl DocumentFilter {
    fn parse(request: &proto::ListDocumentsRequest) -> ServiceResult<Self> {
        let page = request.page.clone().unwrap_or_default();
        Ok(Self {
            category: non_empty(&request.category)
                .map(|value| crate::rules::category("category", value))
                .transpose()?,
            year: parse_year(request.year)?,
            department: non_empty(&request.department)
                .map(|value| validate::department("department", value))
                .transpose()?,
            state: parse_state(request.state)?,
            title_key: non_empty(&request.title_contains)
                .map(|value| validate::line("title_contains", value, 1, 200))
                .transpose()?
                .map(|title| validate::search_key(&title)),
            after_id: non_empty(&page.page_token)
                .map(|token| validate::record_id("page.page_token", token))
                .transpose()?
                .map(|id| id.to_string()),
            page_size: parse_page_size(page.page_size)?,
        })
    }

    fn apply(&self, mut query: Select<document::Entity>) -> Select<document::Entity> {
        if let Some(category) = &self.category {
            query = query.filter(document::Column::Category.eq(category.as_str()));
        }
        if let Some(year) = self.year {
            query = query.filter(document::Column::Year.eq(year));
        }
        if let Some(department) = &self.department {
            query = query.filter(document::Column::Department.eq(department.as_str()));
        }
        if let Some(state) = self.state {
            query = query.filter(document::Column::State.eq(state));
        }
        if let Some(title_key) = &self.title_key {
            let pattern = LikeExpr::new(contains_pattern(title_key)).escape(LIKE_ESCAPE);
            query = query.filter(Expr::col(document::Column::TitleKey).like(pattern));
        }
        if let Some(after_id) = &self.after_id {
            query = query.filter(document::Column::Id.gt(after_id.as_str()));
        }
        query
    }
}

fn non_empty(value: &str) -> Option<&str> {
    (!value.is_empty()).then_some(value)
}

fn parse_year(year: i32) -> ServiceResult<Option<i32>> {
    match year {
        0 => Ok(None),
        1970..=9999 => Ok(Some(year)),
        _ => Err(ServiceError::invalid(
            "year",
            &year.to_string(),
            "must be 0 for any year, or 1970 to 9999",
        )),
    }
}

fn parse_state(state: i32) -> ServiceResult<Option<DocumentState>> {
    if state == 0 {
        return Ok(None);
    }
    let state: proto::DocumentState = validate::enum_value("state", state)?;
    Ok(DocumentState::try_from(state).ok())
}

fn parse_page_size(page_size: i32) -> ServiceResult<u64> {
    match page_size {
        0 => Ok(DEFAULT_PAGE_SIZE),
        1..=MAX_PAGE_SIZE => Ok(page_size.unsigned_abs().into()),
        _ => Err(ServiceError::invalid(
            "page.page_size",
            &page_size.to_string(),
            format!("must be 0 for the default of {DEFAULT_PAGE_SIZE}, or 1 to {MAX_PAGE_SIZE}"),
        )),
    }
}

/// Builds a LIKE pattern that matches `text` anywhere, with the LIKE metacharacters `%`,
/// `_` and the escape character itself matched literally.
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

impl DocumentHandler {
    pub(super) async fn get(
        &self,
        context: &CallContext,
        request: proto::GetDocumentRequest,
    ) -> ServiceResult<proto::GetDocumentResponse> {
        let document_id = validate::record_id("document_id", &request.document_id)?.to_string();

        let method = ReadMethod::GetDocument;
        let (document, approval) = self
            .authorize_records(context, &document_id, method)
            .await?;
        let document = self
            .record_records_read(context, document, method, approval)
            .await?;

        Ok(proto::GetDocumentResponse {
            document: Some(convert::document(&document)),
        })
    }

    /// Lists documents ordered by id. The page token is the last id of the previous page,
    /// and ids are unique, so paging neither repeats nor skips a document.
    pub(super) async fn search(
        &self,
        context: &CallContext,
        request: proto::ListDocumentsRequest,
    ) -> ServiceResult<proto::ListDocumentsResponse> {
        let filter = DocumentFilter::parse(&request)?;

        // The read rule is part of the condition, so the LIMIT alone cuts the page and the
        // next page starts after the last visible id.
        let mut query = filter.apply(document::Entity::find());
        if let Some(visible) =
            listing_condition(&ReadScope::of(&context.principal), context.clearance)
        {
            query = query.filter(visible);
        }
        // Fetching one row more than the page size shows whether another page follows.
        let mut rows = query
            .order_by_asc(document::Column::Id)
            .limit(filter.page_size + 1)
            .all(&self.db)
            .await?;
        let has_more = rows.len() as u64 > filter.page_size;
        rows.truncate(usize::try_from(filter.page_size).unwrap_or(usize::MAX));

        let next_page_token = match rows.last() {
            Some(last) if has_more => last.id.clone(),
            _ => String::new(),
        };
        Ok(proto::ListDocumentsResponse {
            documents: rows.iter().map(convert::document).collect(),
            next_page_token,
        })
    }

    pub(super) async fn revision_history(
        &self,
        context: &CallContext,
        request: proto::ListRevisionsRequest,
    ) -> ServiceResult<proto::ListRevisionsResponse> {
        let document_id = validate::record_id("document_id", &request.document_id)?.to_string();
        let method = ReadMethod::ListRevisions;
        let (document, approval) = self
            .authorize_records(context, &document_id, method)
            .await?;

        let rows = revision::Entity::find()
            .filter(revision::Column::DocumentId.eq(document_id.as_str()))
            .order_by_asc(revision::Column::Revision)
            .all(&self.db)
            .await?;
        let rows = open_rows(&self.keyring, rows)?;
        self.record_records_read(context, document, method, approval)
            .await?;

        Ok(proto::ListRevisionsResponse {
            revisions: rows.iter().map(convert::revision).collect(),
        })
    }

    pub(super) async fn borrowing_history(
        &self,
        context: &CallContext,
        request: proto::ListBorrowingsRequest,
    ) -> ServiceResult<proto::ListBorrowingsResponse> {
        let document_id = validate::record_id("document_id", &request.document_id)?.to_string();
        let method = ReadMethod::ListBorrowings;
        let (document, approval) = self
            .authorize_records(context, &document_id, method)
            .await?;

        let rows = borrowing::Entity::find()
            .filter(borrowing::Column::DocumentId.eq(document_id.as_str()))
            .order_by_asc(borrowing::Column::RequestedAt)
            .order_by_asc(borrowing::Column::Id)
            .all(&self.db)
            .await?;
        let rows = open_rows(&self.keyring, rows)?;
        self.record_records_read(context, document, method, approval)
            .await?;

        Ok(proto::ListBorrowingsResponse {
            borrowings: rows.iter().map(convert::borrowing).collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use sea_orm::{DbBackend, QueryTrait};
    use tonic::Code;

    use super::*;

    type RequestChange = fn(&mut proto::ListDocumentsRequest);

    fn request() -> proto::ListDocumentsRequest {
        proto::ListDocumentsRequest::default()
    }

    fn error_field(result: ServiceResult<DocumentFilter>) -> String {
        match result {
            Err(ServiceError::InvalidArgument { field, .. }) => field,
            other => panic!("expected an invalid argument, got {other:?}"),
        }
    }

    #[test]
    fn like_metacharacters_are_escaped() {
        assert_eq!(contains_pattern("留痕"), "%留痕%");
        assert_eq!(contains_pattern("100%"), "%100\\%%");
        assert_eq!(contains_pattern("a_b"), "%a\\_b%");
        assert_eq!(contains_pattern("c:\\x"), "%c:\\\\x%");
    }

    #[test]
    fn title_filter_uses_escape_clause_on_both_backends() {
        let filter = DocumentFilter {
            title_key: Some("50%_off".to_owned()),
            page_size: 10,
            ..DocumentFilter::default()
        };
        let query = filter.apply(document::Entity::find());

        // PostgreSQL writes literals with backslashes as E'' strings, which double them.
        let expected = [
            (DbBackend::Sqlite, r"LIKE '%50\%\_off%' ESCAPE '\'"),
            (DbBackend::Postgres, r"LIKE E'%50\\%\\_off%' ESCAPE E'\\'"),
        ];
        for (backend, clause) in expected {
            let sql = query.clone().build(backend).to_string();

            assert!(sql.contains(clause), "{backend:?}: {sql}");
        }
    }

    #[test]
    fn empty_filters_mean_any() {
        let filter = DocumentFilter::parse(&request()).unwrap();

        assert_eq!(filter.category, None);
        assert_eq!(filter.year, None);
        assert_eq!(filter.state, None);
        assert_eq!(filter.title_key, None);
        assert_eq!(filter.after_id, None);
        assert_eq!(filter.page_size, DEFAULT_PAGE_SIZE);
    }

    #[test]
    fn title_filter_is_normalised() {
        let mut list = request();
        list.title_contains = "ＣＯＮＴＲＡＣＴ".to_owned();

        let filter = DocumentFilter::parse(&list).unwrap();

        assert_eq!(filter.title_key.as_deref(), Some("contract"));
    }

    #[test]
    fn malformed_filters_name_the_field() {
        let cases: [(&str, RequestChange); 7] = [
            ("category", |list| list.category = "contract".to_owned()),
            ("department", |list| list.department = "Ops".to_owned()),
            ("year", |list| list.year = 12),
            ("state", |list| list.state = 99),
            ("title_contains", |list| {
                list.title_contains = "a\u{202E}".to_owned()
            }),
            ("page.page_token", |list| {
                list.page = Some(trace_proto::common::v1::PageRequest {
                    page_size: 0,
                    page_token: "not-a-token".to_owned(),
                })
            }),
            ("page.page_size", |list| {
                list.page = Some(trace_proto::common::v1::PageRequest {
                    page_size: 501,
                    page_token: String::new(),
                })
            }),
        ];

        for (field, change) in cases {
            let mut list = request();
            change(&mut list);

            let result = DocumentFilter::parse(&list);

            assert_eq!(error_field(result), field);
        }
    }

    #[test]
    fn page_size_limits() {
        assert_eq!(parse_page_size(1).unwrap(), 1);
        assert_eq!(parse_page_size(500).unwrap(), 500);
        assert_eq!(
            parse_page_size(-1).unwrap_err().code(),
            Code::InvalidArgument
        );
    }
}
