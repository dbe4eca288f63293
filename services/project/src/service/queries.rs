//! Read queries: one project with its details, project search, progress reports and
//! decisions. Lists page by record id, which is unique, so paging neither repeats nor skips.
//! Each returns only projects inside the caller's read scope (see [`super::access`]), and
//! the by-id reads of CONFIDENTIAL and SECRET projects are recorded as `read` events.

use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Select};
use trace_proto::common::v1::PageRequest;
use trace_proto::project::v1 as proto;
use trace_runtime::context::CallContext;
use trace_runtime::sealed_text::{SealedRow, open_rows};
use trace_runtime::{ServiceError, ServiceResult, validate};

use super::acceptance::group_members;
use super::access::{ReadMethod, scope_condition};
use super::closing::find_summary;
use super::{ProjectHandler, convert, project_id};
use crate::entity::{
    acceptance, application, approval, decision, member, milestone, progress, project, task,
};
use crate::rules::ReadScope;
use crate::state::ProjectState;

/// Page size when the request leaves it 0.
const DEFAULT_PAGE_SIZE: u64 = 50;

/// Largest page size a request may ask for.
const MAX_PAGE_SIZE: i32 = 500;

/// A validated page request: the id after which the page starts, and its size.
#[derive(Debug, PartialEq, Eq)]
struct Page {
    after_id: Option<String>,
    size: u64,
}

impl Page {
    fn parse(page: Option<&PageRequest>) -> ServiceResult<Self> {
        let page = page.cloned().unwrap_or_default();
        let after_id = match page.page_token.as_str() {
            "" => None,
            token => Some(validate::record_id("page.page_token", token)?.to_string()),
        };
        let size = match page.page_size {
            0 => DEFAULT_PAGE_SIZE,
            1..=MAX_PAGE_SIZE => page.page_size.unsigned_abs().into(),
            other => {
                return Err(ServiceError::invalid(
                    "page.page_size",
                    &other.to_string(),
                    format!(
                        "must be 0 for the default of {DEFAULT_PAGE_SIZE}, or 1 to {MAX_PAGE_SIZE}"
                    ),
                ));
            }
        };
        Ok(Self { after_id, size })
    }

    /// Orders `query` by `id`, starts after the token and requests one row more than the
    /// page, which tells whether another page follows.
    fn apply<E: EntityTrait>(&self, query: Select<E>, id: E::Column) -> Select<E>
    where
        E::Column: ColumnTrait,
    {
        let query = match &self.after_id {
            Some(after_id) => query.filter(id.gt(after_id.as_str())),
            None => query,
        };
        query.order_by_asc(id).limit(self.size + 1)
    }

    /// Cuts the extra row and returns the next page token, empty on the last page.
    fn finish<T>(&self, rows: &mut Vec<T>, id_of: impl Fn(&T) -> &str) -> String {
        let has_more = rows.len() as u64 > self.size;
        rows.truncate(usize::try_from(self.size).unwrap_or(usize::MAX));
        match rows.last() {
            Some(last) if has_more => id_of(last).to_owned(),
            _ => String::new(),
        }
    }
}

impl ProjectHandler {
    // NOTE: ListProjects returns the projects in scope without recording a `read` event,
    // because it returns no sealed text; only the by-id reads record one.
    pub(super) async fn details(
        &self,
        context: &CallContext,
        request: proto::GetProjectRequest,
    ) -> ServiceResult<proto::GetProjectResponse> {
        let project_id = project_id(&request.project_id)?;
        let (project, access_request_id) = self
            .authorize_read(context, &project_id, ReadMethod::GetProject)
            .await?;

        let approvals = approval::Entity::find()
            .filter(approval::Column::ProjectId.eq(project_id.as_str()))
            .order_by_asc(approval::Column::Round)
            .order_by_asc(approval::Column::Position)
            .all(&self.db)
            .await?;
        let approvals = open_rows(&self.keyring, approvals)?;
        let members = member::Entity::find()
            .filter(member::Column::ProjectId.eq(project_id.as_str()))
            .order_by_asc(member::Column::Id)
            .all(&self.db)
            .await?;
        let summary = find_summary(&self.keyring, &self.db, &project).await?;
        let application = self.current_application(&project).await?;
        let latest_acceptance = self.latest_acceptance(&project).await?;
        let project = self
            .record_read(context, project, access_request_id, ReadMethod::GetProject)
            .await?;

        Ok(proto::GetProjectResponse {
            application,
            approvals: approvals.iter().map(convert::approval).collect(),
            members: members.iter().map(convert::member).collect(),
            latest_acceptance,
            summary: summary.as_ref().map(convert::summary),
            project: Some(convert::project(&project)),
        })
    }

    async fn current_application(
        &self,
        project: &project::Model,
    ) -> ServiceResult<Option<proto::Application>> {
        let key = (project.id.clone(), project.round);
        let Some(application) = application::Entity::find_by_id(key).one(&self.db).await? else {
            return Ok(None);
        };
        let application = application.opened(&self.keyring)?;
        let tasks = task::Entity::find()
            .filter(task::Column::ProjectId.eq(project.id.as_str()))
            .filter(task::Column::Round.eq(project.round))
            .order_by_asc(task::Column::Position)
            .all(&self.db)
            .await?;
        let tasks = open_rows(&self.keyring, tasks)?;
        let milestones = milestone::Entity::find()
            .filter(milestone::Column::ProjectId.eq(project.id.as_str()))
            .filter(milestone::Column::Round.eq(project.round))
            .order_by_asc(milestone::Column::Position)
            .all(&self.db)
            .await?;
        Ok(Some(convert::application(
            &application,
            &tasks,
            &milestones,
        )))
    }

    async fn latest_acceptance(
        &self,
        project: &project::Model,
    ) -> ServiceResult<Option<proto::Acceptance>> {
        let latest = acceptance::Entity::find()
            .filter(acceptance::Column::ProjectId.eq(project.id.as_str()))
            .order_by_desc(acceptance::Column::Attempt)
            .one(&self.db)
            .await?;
        let Some(latest) = latest else {
            return Ok(None);
        };
        let latest = latest.opened(&self.keyring)?;
        let members = group_members(&self.keyring, &self.db, &latest).await?;
        Ok(Some(convert::acceptance(&latest, &members)))
    }

    /// Lists projects by id. The read scope is part of the query's condition, so a page is
    /// never cut short by projects the caller may not read.
    pub(super) async fn search(
        &self,
        context: &CallContext,
        request: proto::ListProjectsRequest,
    ) -> ServiceResult<proto::ListProjectsResponse> {
        let department = match request.department.as_str() {
            "" => None,
            value => Some(validate::department("department", value)?),
        };
        let state = match request.state {
            0 => None,
            value => {
                let state: proto::ProjectState = validate::enum_value("state", value)?;
                ProjectState::from_proto(state)
            }
        };
        let page = Page::parse(request.page.as_ref())?;

        let mut query = project::Entity::find();
        if let Some(department) = department {
            query = query.filter(project::Column::Department.eq(department));
        }
        if let Some(state) = state {
            query = query.filter(project::Column::State.eq(state));
        }
        if let Some(scope) = scope_condition(&ReadScope::of(&context.principal)) {
            query = query.filter(scope);
        }
        let mut rows = page.apply(query, project::Column::Id).all(&self.db).await?;
        let next_page_token = page.finish(&mut rows, |row| &row.id);

        Ok(proto::ListProjectsResponse {
            projects: rows.iter().map(convert::project).collect(),
            next_page_token,
        })
    }

    pub(super) async fn progress_history(
        &self,
        context: &CallContext,
        request: proto::ListProgressRequest,
    ) -> ServiceResult<proto::ListProgressResponse> {
        let project_id = project_id(&request.project_id)?;
        let page = Page::parse(request.page.as_ref())?;
        let (project, access_request_id) = self
            .authorize_read(context, &project_id, ReadMethod::ListProgress)
            .await?;

        let query = progress::Entity::find().filter(progress::Column::ProjectId.eq(project_id));
        let mut rows = page
            .apply(query, progress::Column::Id)
            .all(&self.db)
            .await?;
        let next_page_token = page.finish(&mut rows, |row| &row.id);
        let rows = open_rows(&self.keyring, rows)?;
        self.record_read(
            context,
            project,
            access_request_id,
            ReadMethod::ListProgress,
        )
        .await?;

        Ok(proto::ListProgressResponse {
            reports: rows.iter().map(convert::progress).collect(),
            next_page_token,
        })
    }

    pub(super) async fn decision_history(
        &self,
        context: &CallContext,
        request: proto::ListDecisionsRequest,
    ) -> ServiceResult<proto::ListDecisionsResponse> {
        let project_id = project_id(&request.project_id)?;
        let page = Page::parse(request.page.as_ref())?;
        let (project, access_request_id) = self
            .authorize_read(context, &project_id, ReadMethod::ListDecisions)
            .await?;

        let query = decision::Entity::find().filter(decision::Column::ProjectId.eq(project_id));
        let mut rows = page
            .apply(query, decision::Column::Id)
            .all(&self.db)
            .await?;
        let next_page_token = page.finish(&mut rows, |row| &row.id);
        let rows = open_rows(&self.keyring, rows)?;
        self.record_read(
            context,
            project,
            access_request_id,
            ReadMethod::ListDecisions,
        )
        .await?;

        Ok(proto::ListDecisionsResponse {
            decisions: rows.iter().map(convert::decision).collect(),
            next_page_token,
        })
    }
}

#[cfg(test)]
mod tests {
    use tonic::Code;

    use super::*;

    fn page(page_size: i32, page_token: &str) -> PageRequest {
        PageRequest {
            page_size,
            page_token: page_token.to_owned(),
        }
    }

    #[test]
    fn missing_page_means_first_default_page() {
        let parsed = Page::parse(None).unwrap();

        assert_eq!(
            parsed,
            Page {
                after_id: None,
                size: DEFAULT_PAGE_SIZE
            }
        );
    }

    #[test]
    fn page_size_limits() {
        assert_eq!(Page::parse(Some(&page(1, ""))).unwrap().size, 1);
        assert_eq!(Page::parse(Some(&page(500, ""))).unwrap().size, 500);
        for bad in [-1, 501] {
            let error = Page::parse(Some(&page(bad, ""))).unwrap_err();

            assert_eq!(error.code(), Code::InvalidArgument);
            assert!(error.to_string().contains("page.page_size"), "{error}");
        }
    }

    #[test]
    fn page_token_must_be_an_id() {
        let error = Page::parse(Some(&page(0, "not-an-id"))).unwrap_err();

        assert!(error.to_string().contains("page.page_token"), "{error}");
    }

    #[test]
    fn finish_cuts_the_probe_row() {
        let parsed = Page {
            after_id: None,
            size: 2,
        };
        let mut full = vec!["a", "b", "c"];
        let mut last = vec!["a", "b"];

        assert_eq!(parsed.finish(&mut full, |id| id), "b");
        assert_eq!(full, ["a", "b"]);
        assert_eq!(parsed.finish(&mut last, |id| id), "");
    }
}
