//! Bad-input corpus of the project service: every request field that takes text, ids,
//! dates, enums or lists gets the shared bad values of `trace_tests::corpus`. Each rejected
//! case must return the documented code and field, and leave every table and the project
//! listing unchanged. Attack-looking text that is legitimate in free text must be accepted
//! and stored byte for byte.
//!
//! One service instance with a private nats-server and a SQLite file serves every case.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use chrono::{TimeZone, Utc};
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, PaginatorTrait, QueryFilter};
use tempfile::TempDir;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Status};
use trace_project::ProjectConfig;
use trace_project::entity::{
    acceptance, application, approval, decision, document_update, group_member, member, milestone,
    progress, project, summary, task,
};
use trace_proto::common::v1::{Confidentiality, Date, PageRequest};
use trace_proto::project::v1::project_service_client::ProjectServiceClient;
use trace_proto::project::v1::*;
use trace_runtime::access_approval::{access_request, agreement};
use trace_runtime::clock::ManualClock;
use trace_runtime::context::{attach_identity, role};
use trace_runtime::outbox::outbox_event;
use trace_tests::corpus::{
    ACCEPTED_TEXT, Expected, MIB, bad_dates, bad_departments, bad_enums, bad_record_ids, bad_text,
    bad_timestamps, bad_tokens, check_rejection,
};
use trace_tests::nats::NatsServer;

const MANAGER: &str = "li.wei";
const APPROVER: &str = "zhao.head";
const DEVELOPER: &str = "wu.dev";
const DEPARTMENT: &str = "it";

/// Maximum time to wait for the service to start.
const DEADLINE: Duration = Duration::from_secs(60);

type Client = ProjectServiceClient<Channel>;
type Call = Pin<Box<dyn Future<Output = Result<(), Status>> + Send>>;
type ApplicationSetter = fn(&mut SubmitApplicationRequest, String);
type SummarySetter = fn(&mut SubmitSummaryRequest, String);

/// The project service running in this process on a SQLite file.
struct Service {
    address: SocketAddr,
    shutdown: CancellationToken,
    task: Option<JoinHandle<Result<()>>>,
    db: DatabaseConnection,
    _data: TempDir,
}

impl Service {
    async fn start(nats_url: &str) -> Result<Self> {
        let data = tempfile::Builder::new().prefix("project-bad-").tempdir()?;
        let database_url = format!(
            "sqlite://{}?mode=rwc",
            data.path().join("project.db").display()
        );
        let mut config = ProjectConfig::defaults();
        config.service.database_url = database_url.clone();
        config.service.blob_store_url = "memory:///".to_owned();
        config.service.nats.url = nats_url.to_owned();
        config.service.outbox.poll_interval_ms = 50;
        config.service.shutdown_grace_secs = 2;

        // 10:00 on 4 December 2026 in Shanghai, the default business time zone.
        let clock = ManualClock::new(Utc.with_ymd_and_hms(2026, 12, 4, 2, 0, 0).unwrap());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        let shutdown = CancellationToken::new();
        let run = trace_project::run(config, listener, clock, shutdown.clone());
        let mut task = tokio::spawn(run);
        wait_until_ready(address, &mut task).await?;
        let db = trace_runtime::db::connect(&database_url).await?;
        Ok(Self {
            address,
            shutdown,
            task: Some(task),
            db,
            _data: data,
        })
    }

    /// Row counts of the outbox and of every table, and the listing of all projects with
    /// their versions. A rejected call must leave all of them unchanged. Denial events
    /// (entity type `access`) are left out: the denial recorder writes them after the call.
    async fn snapshot(&self, client: &mut Client) -> Result<Vec<String>> {
        let db = &self.db;
        let counts = [
            outbox_event::Entity::find()
                .filter(outbox_event::Column::EntityType.ne("access"))
                .count(db)
                .await?,
            project::Entity::find().count(db).await?,
            application::Entity::find().count(db).await?,
            task::Entity::find().count(db).await?,
            milestone::Entity::find().count(db).await?,
            approval::Entity::find().count(db).await?,
            member::Entity::find().count(db).await?,
            progress::Entity::find().count(db).await?,
            document_update::Entity::find().count(db).await?,
            decision::Entity::find().count(db).await?,
            acceptance::Entity::find().count(db).await?,
            group_member::Entity::find().count(db).await?,
            summary::Entity::find().count(db).await?,
            access_request::Entity::find().count(db).await?,
            agreement::Entity::find().count(db).await?,
        ];
        let list = ListProjectsRequest {
            page: Some(PageRequest {
                page_size: 500,
                page_token: String::new(),
            }),
            ..Default::default()
        };
        let listing = client
            .list_projects(as_user(MANAGER, list))
            .await?
            .into_inner();
        let mut snapshot: Vec<String> = counts.iter().map(u64::to_string).collect();
        snapshot.extend(listing.projects.iter().map(|project| {
            format!(
                "{} v{} {}",
                project.project_id, project.entity_version, project.name
            )
        }));
        Ok(snapshot)
    }

    async fn stop(mut self) -> Result<()> {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            tokio::time::timeout(DEADLINE, task).await???;
        }
        Ok(())
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

async fn connect(address: SocketAddr) -> Result<Client> {
    let channel = Endpoint::from_shared(format!("http://{address}"))?
        .timeout(Duration::from_secs(30))
        .connect()
        .await?;
    Ok(ProjectServiceClient::new(channel)
        .max_decoding_message_size(4 * MIB)
        .max_encoding_message_size(4 * MIB))
}

async fn wait_until_ready(address: SocketAddr, task: &mut JoinHandle<Result<()>>) -> Result<()> {
    let started = Instant::now();
    // A read that records no event, so the outbox stays empty.
    let probe = ListProjectsRequest::default();
    while started.elapsed() < DEADLINE {
        if task.is_finished() {
            bail!("the service stopped during start: {:?}", task.await?);
        }
        if let Ok(mut client) = connect(address).await
            && client
                .list_projects(as_user(MANAGER, probe.clone()))
                .await
                .is_ok()
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("the service was not ready after {DEADLINE:?}")
}

fn as_user<T>(user_id: &str, message: T) -> Request<T> {
    let mut request = Request::new(message);
    attach_identity(&mut request, user_id, DEPARTMENT, &[role::EMPLOYEE], None);
    request
}

macro_rules! call {
    ($client:expr, $method:ident, $user:expr, $message:expr) => {{
        let mut client = $client.clone();
        let request = as_user($user, $message);
        Box::pin(async move { client.$method(request).await.map(|_| ()) }) as Call
    }};
}

fn date(year: i32, month: i32, day: i32) -> Option<Date> {
    Some(Date { year, month, day })
}

/// Builds a valid application with one task, one milestone and one approver.
fn application_request(name: &str) -> SubmitApplicationRequest {
    SubmitApplicationRequest {
        name: name.to_owned(),
        department: DEPARTMENT.to_owned(),
        confidentiality: Confidentiality::Internal as i32,
        background: "Stock is tracked on paper.".to_owned(),
        goals: "Track stock in real time.".to_owned(),
        tasks: vec![Task {
            title: "Build".to_owned(),
            description: String::new(),
        }],
        milestones: vec![Milestone {
            name: "Go-live".to_owned(),
            due_date: date(2027, 3, 1),
        }],
        resource_needs: "Two developers.".to_owned(),
        expected_results: "A running stock system.".to_owned(),
        approval_chain: vec![ApproverEntry {
            approver_id: APPROVER.to_owned(),
            required: true,
        }],
    }
}

async fn submitted(client: &mut Client, request: SubmitApplicationRequest) -> Result<String> {
    let response = client.submit_application(as_user(MANAGER, request)).await?;
    Ok(response.into_inner().project.context("project")?.project_id)
}

/// Adds the rejected cases of every field of a `SubmitApplicationRequest`, with field
/// names under `prefix`, to `cases`. `call` sends the changed application.
fn application_cases(
    prefix: &'static str,
    call: &dyn Fn(SubmitApplicationRequest) -> Call,
    cases: &mut Vec<(String, Expected, Call)>,
) {
    let name = |field: &str| -> &'static str { Box::leak(format!("{prefix}{field}").into()) };
    let with = |change: &dyn Fn(&mut SubmitApplicationRequest)| {
        let mut request = application_request("Valid");
        change(&mut request);
        call(request)
    };
    for (label, value) in bad_text(1, 200, true) {
        let case = with(&|r| r.name = value.clone());
        cases.push((
            format!("{prefix}name {label}"),
            Expected::Invalid(name("name")),
            case,
        ));
    }
    for (label, value) in bad_departments() {
        let case = with(&|r| r.department = value.clone());
        let field = name("department");
        cases.push((
            format!("{prefix}department {label}"),
            Expected::Invalid(field),
            case,
        ));
    }
    for (label, value) in bad_enums().into_iter().chain([("0".to_owned(), 0)]) {
        let case = with(&|r| r.confidentiality = value);
        let field = name("confidentiality");
        cases.push((
            format!("{prefix}confidentiality {label}"),
            Expected::Invalid(field),
            case,
        ));
    }
    for (label, value) in bad_text(1, 4000, false) {
        let sections: [(&str, ApplicationSetter); 4] = [
            ("background", |r, v| r.background = v),
            ("goals", |r, v| r.goals = v),
            ("resource_needs", |r, v| r.resource_needs = v),
            ("expected_results", |r, v| r.expected_results = v),
        ];
        for (section, set) in sections {
            let case = with(&|r| set(r, value.clone()));
            let field = name(section);
            cases.push((
                format!("{prefix}{section} {label}"),
                Expected::Invalid(field),
                case,
            ));
        }
    }

    let task = |title: &str, description: &str| Task {
        title: title.to_owned(),
        description: description.to_owned(),
    };
    for count in [0, 51, 10_000] {
        let case = with(&|r| r.tasks = vec![task("x", ""); count]);
        cases.push((
            format!("{prefix}{count} tasks"),
            Expected::Invalid(name("tasks")),
            case,
        ));
    }
    for (label, value) in bad_text(1, 200, true) {
        let case = with(&|r| r.tasks.push(task(&value, "")));
        let field = name("tasks[1].title");
        cases.push((
            format!("{prefix}task title {label}"),
            Expected::Invalid(field),
            case,
        ));
    }
    for (label, value) in bad_text(0, 2000, false) {
        let case = with(&|r| r.tasks.push(task("x", &value)));
        let field = name("tasks[1].description");
        cases.push((
            format!("{prefix}task description {label}"),
            Expected::Invalid(field),
            case,
        ));
    }

    let milestone = |title: &str, due_date: Option<Date>| Milestone {
        name: title.to_owned(),
        due_date,
    };
    for count in [0, 51, 10_000] {
        let case = with(&|r| r.milestones = vec![milestone("x", date(2027, 3, 1)); count]);
        let field = name("milestones");
        cases.push((
            format!("{prefix}{count} milestones"),
            Expected::Invalid(field),
            case,
        ));
    }
    for (label, value) in bad_text(1, 200, true) {
        let case = with(&|r| r.milestones.push(milestone(&value, date(2027, 3, 1))));
        let field = name("milestones[1].name");
        cases.push((
            format!("{prefix}milestone name {label}"),
            Expected::Invalid(field),
            case,
        ));
    }
    let dates = bad_dates()
        .into_iter()
        .map(|(label, value)| (label, Some(value)))
        .chain([
            ("missing".to_owned(), None),
            ("yesterday".to_owned(), date(2026, 12, 3)),
            (
                "before the previous milestone".to_owned(),
                date(2027, 2, 28),
            ),
        ]);
    for (label, value) in dates {
        let case = with(&|r| r.milestones.push(milestone("x", value)));
        let field = name("milestones[1].due_date");
        cases.push((
            format!("{prefix}milestone due_date {label}"),
            Expected::Invalid(field),
            case,
        ));
    }

    let approver = |id: &str| ApproverEntry {
        approver_id: id.to_owned(),
        required: true,
    };
    let chains = [
        ("no approvers", Vec::new()),
        (
            "11 approvers",
            (0..11).map(|i| approver(&format!("a{i}"))).collect(),
        ),
        (
            "10,000 approvers",
            (0..10_000).map(|i| approver(&format!("a{i}"))).collect(),
        ),
        (
            "only advisory approvers",
            vec![ApproverEntry {
                approver_id: APPROVER.to_owned(),
                required: false,
            }],
        ),
    ];
    for (label, chain) in chains {
        let case = with(&|r| r.approval_chain = chain.clone());
        let field = name("approval_chain");
        cases.push((format!("{prefix}{label}"), Expected::Invalid(field), case));
    }
    let entries = bad_tokens(64)
        .into_iter()
        .chain([("the caller".to_owned(), MANAGER.to_owned())])
        .chain([("listed twice".to_owned(), APPROVER.to_owned())]);
    for (label, value) in entries {
        let case = with(&|r| r.approval_chain.push(approver(&value)));
        let field = name("approval_chain[1].approver_id");
        cases.push((
            format!("{prefix}approver_id {label}"),
            Expected::Invalid(field),
            case,
        ));
    }
}

/// Builds every rejected case of the corpus. `project` is a project in approval.
#[allow(clippy::too_many_lines)]
fn rejected_cases(client: &Client, project: &str) -> Vec<(String, Expected, Call)> {
    let mut cases: Vec<(String, Expected, Call)> = Vec::new();
    let unknown = uuid::Uuid::now_v7().to_string();

    // SubmitApplication and ResubmitApplication.
    let submit =
        |request: SubmitApplicationRequest| call!(client, submit_application, MANAGER, request);
    application_cases("", &submit, &mut cases);
    let resubmit = |request: SubmitApplicationRequest| {
        let request = ResubmitApplicationRequest {
            project_id: project.to_owned(),
            application: Some(request),
        };
        call!(client, resubmit_application, MANAGER, request)
    };
    application_cases("application.", &resubmit, &mut cases);
    let missing = ResubmitApplicationRequest {
        project_id: project.to_owned(),
        application: None,
    };
    let case = call!(client, resubmit_application, MANAGER, missing);
    cases.push((
        "application missing".to_owned(),
        Expected::Invalid("application"),
        case,
    ));

    let mut add = |label: String, expected: Expected, call: Call| {
        cases.push((label, expected, call));
    };

    // Every call that takes a project id.
    for (label, value) in bad_record_ids() {
        let id = || value.clone();
        let id_cases: Vec<(&str, Call)> = vec![
            ("resubmit", {
                let request = ResubmitApplicationRequest {
                    project_id: id(),
                    application: Some(application_request("x")),
                };
                call!(client, resubmit_application, MANAGER, request)
            }),
            ("approval", {
                let request = RecordApprovalRequest {
                    project_id: id(),
                    decision: ApprovalDecision::Approve as i32,
                    opinion: "ok".to_owned(),
                };
                call!(client, record_approval, APPROVER, request)
            }),
            ("start", {
                let request = StartProjectRequest { project_id: id() };
                call!(client, start_project, MANAGER, request)
            }),
            ("close", {
                let request = CloseProjectRequest { project_id: id() };
                call!(client, close_project, MANAGER, request)
            }),
            ("get", {
                let request = GetProjectRequest { project_id: id() };
                call!(client, get_project, MANAGER, request)
            }),
            ("list progress", {
                let request = ListProgressRequest {
                    project_id: id(),
                    page: None,
                };
                call!(client, list_progress, MANAGER, request)
            }),
            ("list decisions", {
                let request = ListDecisionsRequest {
                    project_id: id(),
                    page: None,
                };
                call!(client, list_decisions, MANAGER, request)
            }),
            ("summary", {
                let request = SubmitSummaryRequest {
                    project_id: id(),
                    lessons: "x".to_owned(),
                    results: "x".to_owned(),
                    shortcomings: "x".to_owned(),
                };
                call!(client, submit_summary, MANAGER, request)
            }),
        ];
        for (method, call) in id_cases {
            add(
                format!("{method} id {label}"),
                Expected::Invalid("project_id"),
                call,
            );
        }
    }
    let get = GetProjectRequest {
        project_id: unknown.clone(),
    };
    // An employee is denied a missing project as they are denied another's project.
    let call = call!(client, get_project, MANAGER, get);
    add("get unknown id".to_owned(), Expected::Denied, call);

    // RecordApproval.
    let approve = |decision: i32, opinion: &str| {
        let request = RecordApprovalRequest {
            project_id: project.to_owned(),
            decision,
            opinion: opinion.to_owned(),
        };
        call!(client, record_approval, APPROVER, request)
    };
    for (label, value) in bad_enums().into_iter().chain([("0".to_owned(), 0)]) {
        let call = approve(value, "ok");
        add(
            format!("approval decision {label}"),
            Expected::Invalid("decision"),
            call,
        );
    }
    for (label, value) in bad_text(1, 4000, false) {
        let call = approve(ApprovalDecision::Approve as i32, &value);
        add(
            format!("approval opinion {label}"),
            Expected::Invalid("opinion"),
            call,
        );
    }

    // AddMember, ChangeDuties, RemoveMember.
    let add_member = |change: &dyn Fn(&mut AddMemberRequest)| {
        let mut request = AddMemberRequest {
            project_id: project.to_owned(),
            user_id: DEVELOPER.to_owned(),
            name: "Wu".to_owned(),
            department: DEPARTMENT.to_owned(),
            position: "Developer".to_owned(),
            duties: "Backend".to_owned(),
        };
        change(&mut request);
        call!(client, add_member, MANAGER, request)
    };
    for (label, value) in bad_record_ids() {
        let call = add_member(&|r| r.project_id = value.clone());
        add(
            format!("add member id {label}"),
            Expected::Invalid("project_id"),
            call,
        );
    }
    for (label, value) in bad_tokens(64) {
        let call = add_member(&|r| r.user_id = value.clone());
        add(
            format!("member user_id {label}"),
            Expected::Invalid("user_id"),
            call,
        );
        let change = ChangeDutiesRequest {
            project_id: project.to_owned(),
            user_id: value.clone(),
            duties: "x".to_owned(),
        };
        let call = call!(client, change_duties, MANAGER, change);
        add(
            format!("change duties user_id {label}"),
            Expected::Invalid("user_id"),
            call,
        );
        let remove = RemoveMemberRequest {
            project_id: project.to_owned(),
            user_id: value.clone(),
            reason: "x".to_owned(),
        };
        let call = call!(client, remove_member, MANAGER, remove);
        add(
            format!("remove user_id {label}"),
            Expected::Invalid("user_id"),
            call,
        );
    }
    for (label, value) in bad_text(1, 100, true) {
        let call = add_member(&|r| r.name = value.clone());
        add(
            format!("member name {label}"),
            Expected::Invalid("name"),
            call,
        );
        let call = add_member(&|r| r.position = value.clone());
        add(
            format!("member position {label}"),
            Expected::Invalid("position"),
            call,
        );
    }
    for (label, value) in bad_departments() {
        let call = add_member(&|r| r.department = value.clone());
        add(
            format!("member department {label}"),
            Expected::Invalid("department"),
            call,
        );
    }
    for (label, value) in bad_text(1, 2000, false) {
        let call = add_member(&|r| r.duties = value.clone());
        add(
            format!("member duties {label}"),
            Expected::Invalid("duties"),
            call,
        );
        let change = ChangeDutiesRequest {
            project_id: project.to_owned(),
            user_id: DEVELOPER.to_owned(),
            duties: value.clone(),
        };
        let call = call!(client, change_duties, MANAGER, change);
        add(
            format!("changed duties {label}"),
            Expected::Invalid("duties"),
            call,
        );
        let remove = RemoveMemberRequest {
            project_id: project.to_owned(),
            user_id: DEVELOPER.to_owned(),
            reason: value.clone(),
        };
        let call = call!(client, remove_member, MANAGER, remove);
        add(
            format!("remove reason {label}"),
            Expected::Invalid("reason"),
            call,
        );
    }

    // RecordProgress.
    let progress = |change: &dyn Fn(&mut RecordProgressRequest)| {
        let mut request = RecordProgressRequest {
            project_id: project.to_owned(),
            period_start: date(2026, 11, 30),
            period_end: date(2026, 12, 4),
            progress: "Designed the schema.".to_owned(),
            problems: String::new(),
            solutions: String::new(),
            meeting_id: String::new(),
        };
        change(&mut request);
        call!(client, record_progress, MANAGER, request)
    };
    for (label, value) in bad_dates()
        .into_iter()
        .map(|(l, d)| (l, Some(d)))
        .chain([("missing".to_owned(), None)])
    {
        let call = progress(&|r| r.period_start = value);
        add(
            format!("period_start {label}"),
            Expected::Invalid("period_start"),
            call,
        );
        let call = progress(&|r| r.period_end = value);
        add(
            format!("period_end {label}"),
            Expected::Invalid("period_end"),
            call,
        );
    }
    let call = progress(&|r| r.period_end = date(2026, 12, 5));
    add(
        "period_end tomorrow".to_owned(),
        Expected::Invalid("period_end"),
        call,
    );
    let call = progress(&|r| r.period_end = date(2026, 11, 29));
    add(
        "period_end before start".to_owned(),
        Expected::Invalid("period_end"),
        call,
    );
    for (label, value) in bad_text(1, 4000, false) {
        let call = progress(&|r| r.progress = value.clone());
        add(
            format!("progress {label}"),
            Expected::Invalid("progress"),
            call,
        );
    }
    for (label, value) in bad_text(0, 4000, false) {
        let call = progress(&|r| r.problems = value.clone());
        add(
            format!("problems {label}"),
            Expected::Invalid("problems"),
            call,
        );
        let call = progress(&|r| r.solutions = value.clone());
        add(
            format!("solutions {label}"),
            Expected::Invalid("solutions"),
            call,
        );
    }
    for (label, value) in bad_record_ids().into_iter().filter(|(_, v)| !v.is_empty()) {
        let call = progress(&|r| r.meeting_id = value.clone());
        add(
            format!("progress meeting_id {label}"),
            Expected::Invalid("meeting_id"),
            call,
        );
    }

    // RecordDocumentUpdate.
    let document_update = |kind: i32, document_id: &str, summary: &str| {
        let request = RecordDocumentUpdateRequest {
            project_id: project.to_owned(),
            kind,
            document_id: document_id.to_owned(),
            summary: summary.to_owned(),
        };
        call!(client, record_document_update, MANAGER, request)
    };
    let design = DocumentKind::Design as i32;
    for (label, value) in bad_enums().into_iter().chain([("0".to_owned(), 0)]) {
        let call = document_update(value, &unknown, "x");
        add(
            format!("document kind {label}"),
            Expected::Invalid("kind"),
            call,
        );
    }
    for (label, value) in bad_record_ids() {
        let call = document_update(design, &value, "x");
        add(
            format!("document_id {label}"),
            Expected::Invalid("document_id"),
            call,
        );
    }
    for (label, value) in bad_text(1, 2000, false) {
        let call = document_update(design, &unknown, &value);
        add(
            format!("document summary {label}"),
            Expected::Invalid("summary"),
            call,
        );
    }

    // RecordDecision and ApproveDecision.
    let record_decision = |change: &dyn Fn(&mut RecordDecisionRequest)| {
        let mut request = RecordDecisionRequest {
            project_id: project.to_owned(),
            kind: DecisionKind::KeyDecision as i32,
            process: "Team meeting".to_owned(),
            reason: "Scope grew".to_owned(),
            content: "Add reports".to_owned(),
            approver_id: APPROVER.to_owned(),
        };
        change(&mut request);
        call!(client, record_decision, MANAGER, request)
    };
    for (label, value) in bad_enums().into_iter().chain([("0".to_owned(), 0)]) {
        let call = record_decision(&|r| r.kind = value);
        add(
            format!("decision kind {label}"),
            Expected::Invalid("kind"),
            call,
        );
    }
    for (label, value) in bad_text(1, 4000, false) {
        let call = record_decision(&|r| r.process = value.clone());
        add(
            format!("decision process {label}"),
            Expected::Invalid("process"),
            call,
        );
        let call = record_decision(&|r| r.reason = value.clone());
        add(
            format!("decision reason {label}"),
            Expected::Invalid("reason"),
            call,
        );
        let call = record_decision(&|r| r.content = value.clone());
        add(
            format!("decision content {label}"),
            Expected::Invalid("content"),
            call,
        );
    }
    let approvers = bad_tokens(64)
        .into_iter()
        .chain([("the caller".to_owned(), MANAGER.to_owned())]);
    for (label, value) in approvers {
        let call = record_decision(&|r| r.approver_id = value.clone());
        add(
            format!("decision approver_id {label}"),
            Expected::Invalid("approver_id"),
            call,
        );
    }
    let approve_decision = |decision_id: &str, decision: i32, opinion: &str| {
        let request = ApproveDecisionRequest {
            project_id: project.to_owned(),
            decision_id: decision_id.to_owned(),
            decision,
            opinion: opinion.to_owned(),
        };
        call!(client, approve_decision, APPROVER, request)
    };
    let approve = ApprovalDecision::Approve as i32;
    for (label, value) in bad_record_ids() {
        let call = approve_decision(&value, approve, "ok");
        add(
            format!("decision_id {label}"),
            Expected::Invalid("decision_id"),
            call,
        );
    }
    for (label, value) in bad_enums().into_iter().chain([("0".to_owned(), 0)]) {
        let call = approve_decision(&unknown, value, "ok");
        add(
            format!("decision approval {label}"),
            Expected::Invalid("decision"),
            call,
        );
    }
    for (label, value) in bad_text(1, 4000, false) {
        let call = approve_decision(&unknown, approve, &value);
        add(
            format!("decision opinion {label}"),
            Expected::Invalid("opinion"),
            call,
        );
    }

    // ApplyForAcceptance.
    let apply = |change: &dyn Fn(&mut ApplyForAcceptanceRequest)| {
        let mut request = ApplyForAcceptanceRequest {
            project_id: project.to_owned(),
            results_report: "Done".to_owned(),
            test_report_document_id: unknown.clone(),
            user_feedback: "Good".to_owned(),
        };
        change(&mut request);
        call!(client, apply_for_acceptance, MANAGER, request)
    };
    for (label, value) in bad_record_ids() {
        let call = apply(&|r| r.project_id = value.clone());
        add(
            format!("acceptance id {label}"),
            Expected::Invalid("project_id"),
            call,
        );
        let call = apply(&|r| r.test_report_document_id = value.clone());
        let field = "test_report_document_id";
        add(
            format!("test report id {label}"),
            Expected::Invalid(field),
            call,
        );
    }
    for (label, value) in bad_text(1, 8000, false) {
        let call = apply(&|r| r.results_report = value.clone());
        add(
            format!("results_report {label}"),
            Expected::Invalid("results_report"),
            call,
        );
    }
    for (label, value) in bad_text(1, 4000, false) {
        let call = apply(&|r| r.user_feedback = value.clone());
        add(
            format!("user_feedback {label}"),
            Expected::Invalid("user_feedback"),
            call,
        );
    }

    // SetAcceptanceGroup.
    let group = |members: Vec<GroupMemberEntry>| {
        let request = SetAcceptanceGroupRequest {
            project_id: project.to_owned(),
            members,
        };
        call!(client, set_acceptance_group, MANAGER, request)
    };
    let entry = |user_id: &str, name: &str| GroupMemberEntry {
        user_id: user_id.to_owned(),
        name: name.to_owned(),
    };
    for count in [0, 21, 10_000] {
        let members = (0..count).map(|i| entry(&format!("m{i}"), "M")).collect();
        add(
            format!("{count} group members"),
            Expected::Invalid("members"),
            group(members),
        );
    }
    let ids = bad_tokens(64)
        .into_iter()
        .chain([("listed twice".to_owned(), "chen.qa".to_owned())]);
    for (label, value) in ids {
        let call = group(vec![entry("chen.qa", "Chen"), entry(&value, "M")]);
        add(
            format!("group user_id {label}"),
            Expected::Invalid("members[1].user_id"),
            call,
        );
    }
    for (label, value) in bad_text(1, 100, true) {
        let call = group(vec![entry("chen.qa", &value)]);
        add(
            format!("group name {label}"),
            Expected::Invalid("members[0].name"),
            call,
        );
    }

    // SignOff and RecordAcceptanceResult.
    let sign = |verdict: i32, opinion: &str, open_issues: &str| {
        let request = SignOffRequest {
            project_id: project.to_owned(),
            verdict,
            opinion: opinion.to_owned(),
            open_issues: open_issues.to_owned(),
        };
        call!(client, sign_off, APPROVER, request)
    };
    let result = |value: i32, opinion: &str, open_issues: &str| {
        let request = RecordAcceptanceResultRequest {
            project_id: project.to_owned(),
            result: value,
            group_opinion: opinion.to_owned(),
            open_issues: open_issues.to_owned(),
        };
        call!(client, record_acceptance_result, APPROVER, request)
    };
    let pass = SignOffVerdict::Pass as i32;
    let passed = AcceptanceResult::Passed as i32;
    for (label, value) in bad_enums().into_iter().chain([("0".to_owned(), 0)]) {
        add(
            format!("verdict {label}"),
            Expected::Invalid("verdict"),
            sign(value, "ok", ""),
        );
        add(
            format!("result {label}"),
            Expected::Invalid("result"),
            result(value, "ok", ""),
        );
    }
    for (label, value) in bad_text(1, 4000, false) {
        let call = sign(pass, &value, "");
        add(
            format!("sign-off opinion {label}"),
            Expected::Invalid("opinion"),
            call,
        );
        let call = result(passed, &value, "");
        add(
            format!("group_opinion {label}"),
            Expected::Invalid("group_opinion"),
            call,
        );
    }
    for (label, value) in bad_text(0, 4000, false) {
        let call = sign(pass, "ok", &value);
        add(
            format!("sign-off open_issues {label}"),
            Expected::Invalid("open_issues"),
            call,
        );
        let call = result(passed, "ok", &value);
        add(
            format!("result open_issues {label}"),
            Expected::Invalid("open_issues"),
            call,
        );
    }

    // SubmitSummary.
    for (label, value) in bad_text(1, 8000, false) {
        let sections: [(&'static str, SummarySetter); 3] = [
            ("lessons", |r, v| r.lessons = v),
            ("results", |r, v| r.results = v),
            ("shortcomings", |r, v| r.shortcomings = v),
        ];
        for (section, set) in sections {
            let mut request = SubmitSummaryRequest {
                project_id: project.to_owned(),
                lessons: "x".to_owned(),
                results: "x".to_owned(),
                shortcomings: "x".to_owned(),
            };
            set(&mut request, value.clone());
            let call = call!(client, submit_summary, MANAGER, request);
            add(
                format!("summary {section} {label}"),
                Expected::Invalid(section),
                call,
            );
        }
    }

    // ListProjects, ListProgress, ListDecisions: empty filters mean "any".
    for (label, value) in bad_departments().into_iter().filter(|(_, v)| !v.is_empty()) {
        let request = ListProjectsRequest {
            department: value.clone(),
            ..Default::default()
        };
        let call = call!(client, list_projects, MANAGER, request);
        add(
            format!("list department {label}"),
            Expected::Invalid("department"),
            call,
        );
    }
    for (label, value) in bad_enums() {
        let request = ListProjectsRequest {
            state: value,
            ..Default::default()
        };
        let call = call!(client, list_projects, MANAGER, request);
        add(
            format!("list state {label}"),
            Expected::Invalid("state"),
            call,
        );
    }
    let pages = bad_record_ids()
        .into_iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(label, token)| (format!("page_token {label}"), 0, token, "page.page_token"))
        .chain([-1, 501, i32::MAX, i32::MIN].map(|size| {
            (
                format!("page_size {size}"),
                size,
                String::new(),
                "page.page_size",
            )
        }));
    for (label, page_size, page_token, field) in pages {
        let page = Some(PageRequest {
            page_size,
            page_token,
        });
        let projects = ListProjectsRequest {
            page: page.clone(),
            ..Default::default()
        };
        let call = call!(client, list_projects, MANAGER, projects);
        add(format!("projects {label}"), Expected::Invalid(field), call);
        let progress = ListProgressRequest {
            project_id: project.to_owned(),
            page: page.clone(),
        };
        let call = call!(client, list_progress, MANAGER, progress);
        add(format!("progress {label}"), Expected::Invalid(field), call);
        let decisions = ListDecisionsRequest {
            project_id: project.to_owned(),
            page,
        };
        let call = call!(client, list_decisions, MANAGER, decisions);
        add(format!("decisions {label}"), Expected::Invalid(field), call);
    }
    access_cases(client, project, &mut add);
    cases
}

/// Adds the rejected cases of RequestAccess, DecideAccess, ListAccessRequests and
/// AcceptAgreement. `project` is the id of an INTERNAL project.
fn access_cases(client: &Client, project: &str, add: &mut impl FnMut(String, Expected, Call)) {
    let unknown = uuid::Uuid::now_v7().to_string();
    for (label, value) in bad_record_ids() {
        let request = RequestAccessRequest {
            project_id: value.clone(),
            purpose: "Budget review".to_owned(),
        };
        let call = call!(client, request_access, MANAGER, request);
        add(
            format!("request access id {label}"),
            Expected::Invalid("project_id"),
            call,
        );
        let decide = DecideAccessRequest {
            access_request_id: value.clone(),
            approve: false,
            opinion: "Not needed".to_owned(),
            expires_at: None,
        };
        let call = call!(client, decide_access, MANAGER, decide);
        add(
            format!("decide access id {label}"),
            Expected::Invalid("access_request_id"),
            call,
        );
        let list = ListAccessRequestsRequest {
            project_id: value.clone(),
        };
        let call = call!(client, list_access_requests, MANAGER, list);
        add(
            format!("list access requests id {label}"),
            Expected::Invalid("project_id"),
            call,
        );
    }

    for (label, value) in bad_text(1, 2000, false) {
        let request = RequestAccessRequest {
            project_id: project.to_owned(),
            purpose: value.clone(),
        };
        let call = call!(client, request_access, MANAGER, request);
        add(
            format!("access purpose {label}"),
            Expected::Invalid("purpose"),
            call,
        );
        let decide = DecideAccessRequest {
            access_request_id: unknown.clone(),
            approve: false,
            opinion: value.clone(),
            expires_at: None,
        };
        let call = call!(client, decide_access, MANAGER, decide);
        add(
            format!("access opinion {label}"),
            Expected::Invalid("opinion"),
            call,
        );
    }

    let mut ends: Vec<(String, Option<prost_types::Timestamp>)> = bad_timestamps()
        .into_iter()
        .map(|(label, value)| (label, Some(value)))
        .collect();
    ends.push(("missing".to_owned(), None));
    for (label, value) in ends {
        let decide = DecideAccessRequest {
            access_request_id: unknown.clone(),
            approve: true,
            opinion: "Needed".to_owned(),
            expires_at: value,
        };
        let call = call!(client, decide_access, MANAGER, decide);
        add(
            format!("approval end {label}"),
            Expected::Invalid("expires_at"),
            call,
        );
    }

    let request = RequestAccessRequest {
        project_id: project.to_owned(),
        purpose: "Budget review".to_owned(),
    };
    let call = call!(client, request_access, MANAGER, request);
    add(
        "access to an internal project".to_owned(),
        Expected::Precondition("INTERNAL"),
        call,
    );

    let mut versions = bad_tokens(32);
    versions.push(("lowercase".to_owned(), "v2026".to_owned()));
    versions.push(("not the current one".to_owned(), "2025-01".to_owned()));
    for (label, value) in versions {
        let accept = AcceptAgreementRequest {
            agreement_version: value,
        };
        let call = call!(client, accept_agreement, MANAGER, accept);
        add(
            format!("agreement version {label}"),
            Expected::Invalid("agreement_version"),
            call,
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_rejected_and_writes_nothing() -> Result<()> {
    let nats = NatsServer::start()?;
    let service = Service::start(&nats.url()).await?;
    let mut client = connect(service.address).await?;
    let project = submitted(&mut client, application_request("Stock system")).await?;

    let cases = rejected_cases(&client, &project);
    assert!(cases.len() > 300, "only {} cases", cases.len());
    for (label, expected, call) in cases {
        let before = service.snapshot(&mut client).await?;

        check_rejection(&label, call.await, expected);

        let after = service.snapshot(&mut client).await?;
        assert_eq!(after, before, "{label} wrote something");
    }

    service.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legitimate_odd_input_is_stored_exactly() -> Result<()> {
    let nats = NatsServer::start()?;
    let service = Service::start(&nats.url()).await?;
    let mut client = connect(service.address).await?;

    for text in ACCEPTED_TEXT {
        let mut request = application_request(text);
        request.background = format!("{text}\nline two\tcolumn");
        request.tasks[0].title = (*text).to_owned();
        request.milestones[0].name = (*text).to_owned();
        // The last calendar date is within the documented range of a milestone.
        request.milestones.push(Milestone {
            name: "Far".to_owned(),
            due_date: date(9999, 12, 31),
        });
        let project_id = submitted(&mut client, request.clone()).await?;

        let get = GetProjectRequest {
            project_id: project_id.clone(),
        };
        let stored = client
            .get_project(as_user(MANAGER, get))
            .await?
            .into_inner();
        assert_eq!(stored.project.context("project")?.name, *text);
        let application = stored.application.context("application")?;
        assert_eq!(application.name, *text);
        assert_eq!(application.background, request.background);
        assert_eq!(application.tasks, request.tasks);
        assert_eq!(application.milestones, request.milestones);
    }

    service.stop().await
}
