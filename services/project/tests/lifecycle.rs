//! End-to-end tests of the project service against a real `nats-server` with JetStream on a
//! free port. The service runs in-process on a free port with a temporary SQLite file, or a
//! fresh PostgreSQL database when `TRACE_TEST_DATABASE_URL` is set, and a manual clock. A
//! tonic client calls as the people of the policy.

use std::net::{SocketAddr, TcpListener as StdListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use trace_tests::corpus::recorded_denial;
use trace_tests::receipts::ReceiptSender;
use trace_tests::scan::files_containing;

use chrono::{NaiveDate, TimeZone, Utc};
use futures::StreamExt;
use prost::Message;
use sea_orm::{ConnectionTrait, DatabaseConnection, Statement};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;
use tonic::{Code, Request, Status};
use tonic_types::StatusExt;
use trace_project::ProjectConfig;
use trace_proto::common::v1::{Confidentiality, PageRequest};
use trace_proto::event::v1::Envelope;
use trace_proto::project::v1 as proto;
use trace_proto::project::v1::project_service_client::ProjectServiceClient;
use trace_runtime::clock::{ManualClock, proto_date};
use trace_runtime::context::attach_identity;

/// The applicant and project manager.
const MANAGER: &str = "li.wei";
const FIRST_APPROVER: &str = "zhao.head";
const SECOND_APPROVER: &str = "qian.finance";
const DEVELOPER: &str = "wu.dev";
const TESTER: &str = "zheng.test";
const GROUP_LEAD: &str = "chen.qa";
const USER_REPRESENTATIVE: &str = "zhou.user";
const DEPARTMENT_HEAD: &str = "sun.head";
const OUTSIDER: &str = "feng.other";

/// Maximum wait for servers to start and for events to reach the broker.
const DEADLINE: Duration = Duration::from_secs(20);

/// A private `nats-server` with JetStream on 127.0.0.1, killed on drop.
struct NatsServer {
    child: Child,
    port: u16,
    _store: tempfile::TempDir,
}

impl NatsServer {
    fn start() -> Self {
        let binary = std::env::var_os("TRACE_NATS_SERVER").map_or_else(
            || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.tools/venv/bin/nats-server"),
            PathBuf::from,
        );
        let store = tempfile::tempdir().unwrap();
        let port = free_port();
        let child = Command::new(&binary)
            .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
            .arg(store.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|error| panic!("failed to start {}: {error}", binary.display()));
        let server = Self {
            child,
            port,
            _store: store,
        };
        server.wait_until_listening();
        server
    }

    fn wait_until_listening(&self) {
        let address = SocketAddr::from(([127, 0, 0, 1], self.port));
        let started = Instant::now();
        while TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_err() {
            assert!(
                started.elapsed() < DEADLINE,
                "nats-server did not listen on {address}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The project service running in-process, stopped on drop.
struct Service {
    client: ProjectServiceClient<Channel>,
    db: DatabaseConnection,
    clock: Arc<ManualClock>,
    shutdown: CancellationToken,
    task: Option<JoinHandle<anyhow::Result<()>>>,
    /// Stands in for the archive's receipts, which release each entity's next event.
    _receipts: ReceiptSender,
    _folder: tempfile::TempDir,
}

impl Service {
    /// Starts the service on `database_url`, or on a temporary SQLite file when `None`.
    async fn start(nats: &NatsServer, database_url: Option<String>) -> Self {
        let folder = tempfile::tempdir().unwrap();
        let database_url = database_url.unwrap_or_else(|| {
            format!(
                "sqlite://{}?mode=rwc",
                folder.path().join("project.db").display()
            )
        });
        let mut config = ProjectConfig::defaults();
        config.service.database_url = database_url.clone();
        config.service.blob_store_url = "memory:///".to_owned();
        config.service.nats.url = nats.url();
        config.service.outbox.poll_interval_ms = 20;
        config.service.shutdown_grace_secs = 2;

        // 10:00 on 4 December 2026 in Shanghai, the default business time zone.
        let clock = ManualClock::new(Utc.with_ymd_and_hms(2026, 12, 4, 2, 0, 0).unwrap());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(trace_project::run(
            config,
            listener,
            clock.clone(),
            shutdown.clone(),
        ));

        let client = connect(address).await;
        let db = trace_runtime::db::connect(&database_url).await.unwrap();
        let receipts = ReceiptSender::start(&nats.url(), "project").await.unwrap();
        Self {
            client,
            db,
            clock,
            shutdown,
            task: Some(task),
            _receipts: receipts,
            _folder: folder,
        }
    }

    async fn outbox_rows(&self) -> i64 {
        let statement = Statement::from_string(
            self.db.get_database_backend(),
            "SELECT COUNT(*) AS n FROM outbox WHERE entity_type <> 'access'",
        );
        let row = self.db.query_one_raw(statement).await.unwrap().unwrap();
        row.try_get::<i64>("", "n").unwrap()
    }

    async fn project(&mut self, project_id: &str) -> proto::GetProjectResponse {
        let request = proto::GetProjectRequest {
            project_id: project_id.to_owned(),
        };
        self.client
            .get_project(call(request, MANAGER))
            .await
            .unwrap()
            .into_inner()
    }

    async fn version(&mut self, project_id: &str) -> u64 {
        self.project(project_id)
            .await
            .project
            .unwrap()
            .entity_version
    }

    async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Connects once the service accepts calls; it migrates its database before it serves.
async fn connect(address: SocketAddr) -> ProjectServiceClient<Channel> {
    let started = Instant::now();
    loop {
        if let Ok(mut client) = ProjectServiceClient::connect(format!("http://{address}")).await {
            let probe = proto::ListProjectsRequest::default();
            if client.list_projects(call(probe, MANAGER)).await.is_ok() {
                return client;
            }
        }
        assert!(
            started.elapsed() < DEADLINE,
            "project service did not start on {address}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Wraps `message` in a request from `user_id` in the `it` department.
fn call<T>(message: T, user_id: &str) -> Request<T> {
    call_with_roles(message, user_id, &["employee"])
}

fn call_with_roles<T>(message: T, user_id: &str, roles: &[&str]) -> Request<T> {
    let mut request = Request::new(message);
    attach_identity(&mut request, user_id, "it", roles, None);
    request
}

fn date(year: i32, month: u32, day: u32) -> Option<trace_proto::common::v1::Date> {
    Some(proto_date(
        NaiveDate::from_ymd_opt(year, month, day).unwrap(),
    ))
}

fn application() -> proto::SubmitApplicationRequest {
    let approver = |id: &str| proto::ApproverEntry {
        approver_id: id.to_owned(),
        required: true,
    };
    proto::SubmitApplicationRequest {
        name: "倉儲管理系統".to_owned(),
        department: "it".to_owned(),
        confidentiality: Confidentiality::Internal as i32,
        background: "Stock is tracked on paper.".to_owned(),
        goals: "Track stock in real time.".to_owned(),
        tasks: vec![
            proto::Task {
                title: "Requirements".to_owned(),
                description: "Interview the warehouse staff.".to_owned(),
            },
            proto::Task {
                title: "Build".to_owned(),
                description: String::new(),
            },
        ],
        milestones: vec![
            proto::Milestone {
                name: "Design approved".to_owned(),
                due_date: date(2026, 12, 20),
            },
            proto::Milestone {
                name: "Go-live".to_owned(),
                due_date: date(2027, 3, 1),
            },
        ],
        resource_needs: "Two developers for three months.".to_owned(),
        expected_results: "A running stock system.".to_owned(),
        approval_chain: vec![approver(FIRST_APPROVER), approver(SECOND_APPROVER)],
    }
}

fn approval(project_id: &str) -> proto::RecordApprovalRequest {
    proto::RecordApprovalRequest {
        project_id: project_id.to_owned(),
        decision: proto::ApprovalDecision::Approve as i32,
        opinion: "同意立項".to_owned(),
    }
}

fn member(project_id: &str, user_id: &str) -> proto::AddMemberRequest {
    proto::AddMemberRequest {
        project_id: project_id.to_owned(),
        user_id: user_id.to_owned(),
        name: user_id.to_owned(),
        department: "it".to_owned(),
        position: "engineer".to_owned(),
        duties: "build the stock module".to_owned(),
    }
}

fn progress(project_id: &str) -> proto::RecordProgressRequest {
    proto::RecordProgressRequest {
        project_id: project_id.to_owned(),
        period_start: date(2026, 11, 27),
        period_end: date(2026, 12, 3),
        progress: "Requirements done.".to_owned(),
        problems: "Barcode scanners are late.".to_owned(),
        solutions: "Use phone cameras meanwhile.".to_owned(),
        meeting_id: uuid::Uuid::now_v7().to_string(),
    }
}

fn document_update(
    project_id: &str,
    kind: proto::DocumentKind,
) -> proto::RecordDocumentUpdateRequest {
    proto::RecordDocumentUpdateRequest {
        project_id: project_id.to_owned(),
        kind: kind as i32,
        document_id: uuid::Uuid::now_v7().to_string(),
        summary: "first version".to_owned(),
    }
}

fn decision(project_id: &str) -> proto::RecordDecisionRequest {
    proto::RecordDecisionRequest {
        project_id: project_id.to_owned(),
        kind: proto::DecisionKind::TechnicalChange as i32,
        process: "Compared two databases in a design meeting.".to_owned(),
        reason: "The team knows PostgreSQL.".to_owned(),
        content: "Use PostgreSQL instead of MySQL.".to_owned(),
        approver_id: FIRST_APPROVER.to_owned(),
    }
}

fn acceptance_application(project_id: &str) -> proto::ApplyForAcceptanceRequest {
    proto::ApplyForAcceptanceRequest {
        project_id: project_id.to_owned(),
        results_report: "All goals met.".to_owned(),
        test_report_document_id: uuid::Uuid::now_v7().to_string(),
        user_feedback: "Warehouse staff are satisfied.".to_owned(),
    }
}

fn sign_off(project_id: &str) -> proto::SignOffRequest {
    proto::SignOffRequest {
        project_id: project_id.to_owned(),
        verdict: proto::SignOffVerdict::Pass as i32,
        opinion: "Meets the goals.".to_owned(),
        open_issues: String::new(),
    }
}

fn project_state(response: Option<proto::Project>) -> proto::ProjectState {
    response.unwrap().state()
}

/// Asserts a FAILED_PRECONDITION whose message names `state`.
fn assert_wrong_state(status: &Status, state: &str) {
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    assert!(
        status.message().contains(&format!("it is {state}")),
        "{}",
        status.message()
    );
}

/// Returns the field of the first field violation of an INVALID_ARGUMENT.
fn violated_field(status: &Status) -> String {
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    let details = status.get_error_details();
    let violations = &details
        .bad_request()
        .expect("bad request details")
        .field_violations;
    violations[0].field.clone()
}

/// Submits an application and records both approvals; returns the project id.
async fn approved_project(service: &mut Service) -> String {
    let client = &mut service.client;
    let submitted = client
        .submit_application(call(application(), MANAGER))
        .await
        .unwrap();
    let project_id = submitted.into_inner().project.unwrap().project_id;
    for approver in [FIRST_APPROVER, SECOND_APPROVER] {
        client
            .record_approval(call(approval(&project_id), approver))
            .await
            .unwrap();
    }
    project_id
}

/// Reads every event on `trace.project.>` for `project_id` until `count` arrived.
async fn broker_events(nats: &NatsServer, project_id: &str, count: usize) -> Vec<Envelope> {
    use async_nats::jetstream::consumer::pull::OrderedConfig;

    let client = async_nats::connect(nats.url()).await.unwrap();
    let jetstream = async_nats::jetstream::new(client);
    let started = Instant::now();
    let stream = loop {
        match jetstream.get_stream("TRACE").await {
            Ok(stream) => break stream,
            Err(error) => assert!(started.elapsed() < DEADLINE, "no TRACE stream: {error}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let config = OrderedConfig {
        filter_subject: "trace.project.>".to_owned(),
        ..OrderedConfig::default()
    };
    let consumer = stream.create_consumer(config).await.unwrap();
    let mut messages = consumer.messages().await.unwrap();

    let mut events = Vec::new();
    while events.len() < count {
        let next = tokio::time::timeout(DEADLINE, messages.next()).await;
        let message = next
            .unwrap_or_else(|_| {
                panic!("only {} of {count} events reached the broker", events.len())
            })
            .unwrap()
            .unwrap();
        let envelope = Envelope::decode(message.payload.clone()).unwrap();
        if envelope.entity_id == project_id {
            events.push(envelope);
        }
    }
    events
}

/// Drives one project from application to close and checks the refusals on the way.
async fn whole_lifecycle(nats: &NatsServer, service: &mut Service) {
    let client = &mut service.client.clone();

    // Initiation: two required approvals in order.
    let submitted = client
        .submit_application(call(application(), MANAGER))
        .await
        .unwrap()
        .into_inner();
    let project = submitted.project.unwrap();
    let project_id = project.project_id.clone();
    assert_eq!(project.state(), proto::ProjectState::InApproval);
    assert_eq!(project.next_approver_id, FIRST_APPROVER);
    assert_eq!(project.entity_version, 1);

    let start = proto::StartProjectRequest {
        project_id: project_id.clone(),
    };
    let rows = service.outbox_rows().await;
    let status = client
        .start_project(call(start.clone(), MANAGER))
        .await
        .unwrap_err();
    assert_wrong_state(&status, "IN_APPROVAL");
    let status = client
        .record_approval(call(approval(&project_id), SECOND_APPROVER))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    assert!(
        status.message().contains(FIRST_APPROVER),
        "{}",
        status.message()
    );
    assert_eq!(service.version(&project_id).await, 1);
    assert_eq!(service.outbox_rows().await, rows);

    let first = client
        .record_approval(call(approval(&project_id), FIRST_APPROVER))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        project_state(first.project.clone()),
        proto::ProjectState::InApproval
    );
    assert_eq!(first.project.unwrap().next_approver_id, SECOND_APPROVER);
    service.clock.advance(chrono::Duration::hours(2));
    let second = client
        .record_approval(call(approval(&project_id), SECOND_APPROVER))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(project_state(second.project), proto::ProjectState::Approved);
    assert_eq!(second.approval.unwrap().position, 2);

    // Team, then start.
    client
        .add_member(call(member(&project_id, DEVELOPER), MANAGER))
        .await
        .unwrap();
    let started = client
        .start_project(call(start, MANAGER))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(project_state(started.project), proto::ProjectState::Active);
    client
        .add_member(call(member(&project_id, TESTER), MANAGER))
        .await
        .unwrap();
    let status = client
        .add_member(call(member(&project_id, TESTER), MANAGER))
        .await
        .unwrap_err();
    assert_wrong_state(&status, "ACTIVE and zheng.test is already an active member");
    let duties = proto::ChangeDutiesRequest {
        project_id: project_id.clone(),
        user_id: DEVELOPER.to_owned(),
        duties: "lead the stock module".to_owned(),
    };
    let changed = client
        .change_duties(call(duties, MANAGER))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(changed.member.unwrap().duties_changed_by, MANAGER);
    let removal = proto::RemoveMemberRequest {
        project_id: project_id.clone(),
        user_id: TESTER.to_owned(),
        reason: "moved to another project".to_owned(),
    };
    client.remove_member(call(removal, MANAGER)).await.unwrap();

    // Monitoring: progress, documents and an approved technical change.
    service.clock.advance(chrono::Duration::days(1));
    client
        .record_progress(call(progress(&project_id), DEVELOPER))
        .await
        .unwrap();
    let status = client
        .record_progress(call(progress(&project_id), TESTER))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    for kind in [proto::DocumentKind::Plan, proto::DocumentKind::Design] {
        client
            .record_document_update(call(document_update(&project_id, kind), DEVELOPER))
            .await
            .unwrap();
    }
    let recorded = client
        .record_decision(call(decision(&project_id), DEVELOPER))
        .await
        .unwrap()
        .into_inner();
    let decision_id = recorded.decision.unwrap().decision_id;
    let status = client
        .apply_for_acceptance(call(acceptance_application(&project_id), MANAGER))
        .await
        .unwrap_err();
    assert_wrong_state(&status, "ACTIVE with 1 decision(s) pending approval");
    let review = proto::ApproveDecisionRequest {
        project_id: project_id.clone(),
        decision_id: decision_id.clone(),
        decision: proto::ApprovalDecision::Approve as i32,
        opinion: "Agreed.".to_owned(),
    };
    let status = client
        .approve_decision(call(review.clone(), DEVELOPER))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    let reviewed = client
        .approve_decision(call(review, FIRST_APPROVER))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        reviewed.decision.unwrap().state(),
        proto::DecisionState::Approved
    );

    // Acceptance: group, sign-offs, result by the lead.
    client
        .record_document_update(call(
            document_update(&project_id, proto::DocumentKind::TestReport),
            DEVELOPER,
        ))
        .await
        .unwrap();
    client
        .apply_for_acceptance(call(acceptance_application(&project_id), MANAGER))
        .await
        .unwrap();
    let group = proto::SetAcceptanceGroupRequest {
        project_id: project_id.clone(),
        members: [GROUP_LEAD, USER_REPRESENTATIVE]
            .map(|user_id| proto::GroupMemberEntry {
                user_id: user_id.to_owned(),
                name: user_id.to_owned(),
            })
            .to_vec(),
    };
    let status = client
        .set_acceptance_group(call(group.clone(), MANAGER))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    client
        .set_acceptance_group(call_with_roles(
            group,
            DEPARTMENT_HEAD,
            &["department_head"],
        ))
        .await
        .unwrap();
    client
        .sign_off(call(sign_off(&project_id), GROUP_LEAD))
        .await
        .unwrap();
    let result = proto::RecordAcceptanceResultRequest {
        project_id: project_id.clone(),
        result: proto::AcceptanceResult::Passed as i32,
        group_opinion: "Accepted without reservations.".to_owned(),
        open_issues: String::new(),
    };
    let status = client
        .record_acceptance_result(call(result.clone(), GROUP_LEAD))
        .await
        .unwrap_err();
    assert_wrong_state(&status, "IN_ACCEPTANCE with 1 of 2 sign-offs");
    client
        .sign_off(call(sign_off(&project_id), USER_REPRESENTATIVE))
        .await
        .unwrap();
    let status = client
        .record_acceptance_result(call(result.clone(), USER_REPRESENTATIVE))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    let decided = client
        .record_acceptance_result(call(result, GROUP_LEAD))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        project_state(decided.project),
        proto::ProjectState::Accepted
    );

    // Summary before close.
    let close = proto::CloseProjectRequest {
        project_id: project_id.clone(),
    };
    let rows = service.outbox_rows().await;
    let version = service.version(&project_id).await;
    let status = client
        .close_project(call(close.clone(), MANAGER))
        .await
        .unwrap_err();
    assert_wrong_state(&status, "ACCEPTED without a summary");
    assert_eq!(service.version(&project_id).await, version);
    assert_eq!(service.outbox_rows().await, rows);
    let summary = proto::SubmitSummaryRequest {
        project_id: project_id.clone(),
        lessons: "Order hardware early.".to_owned(),
        results: "Stock is tracked in real time.".to_owned(),
        shortcomings: "Reports are still manual.".to_owned(),
    };
    client.submit_summary(call(summary, MANAGER)).await.unwrap();
    let closed = client
        .close_project(call(close, MANAGER))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(project_state(closed.project), proto::ProjectState::Closed);

    check_details(service, &project_id).await;
    check_broker(nats, service, &project_id).await;
}

async fn check_details(service: &mut Service, project_id: &str) {
    let details = service.project(project_id).await;
    let project = details.project.unwrap();
    assert_eq!(project.state(), proto::ProjectState::Closed);
    assert!(project.closed_at.is_some());

    let application = details.application.unwrap();
    assert_eq!(application.milestones.len(), 2);
    assert_eq!(application.milestones[1].due_date, date(2027, 3, 1));
    assert_eq!(application.tasks.len(), 2);
    assert_eq!(details.approvals.len(), 2);
    assert!(
        details
            .approvals
            .iter()
            .all(|approval| approval.decision() == proto::ApprovalDecision::Approve)
    );
    let decided_at = |index: usize| details.approvals[index].decided_at.unwrap().seconds;
    assert_eq!(decided_at(1) - decided_at(0), 2 * 3600);

    let active: Vec<&str> = details
        .members
        .iter()
        .filter(|member| member.active)
        .map(|member| member.user_id.as_str())
        .collect();
    assert_eq!(active, [DEVELOPER]);
    let removed = details
        .members
        .iter()
        .find(|member| member.user_id == TESTER)
        .unwrap();
    assert_eq!(removed.removal_reason, "moved to another project");
    assert_eq!(removed.removed_by, MANAGER);

    let acceptance = details.latest_acceptance.unwrap();
    assert_eq!(acceptance.result(), proto::AcceptanceResult::Passed);
    assert_eq!(acceptance.members.len(), 2);
    assert!(
        acceptance
            .members
            .iter()
            .all(|member| member.verdict() == proto::SignOffVerdict::Pass)
    );
    assert_eq!(acceptance.decided_by, GROUP_LEAD);
    assert_eq!(details.summary.unwrap().lessons, "Order hardware early.");

    let progress = proto::ListProgressRequest {
        project_id: project_id.to_owned(),
        page: None,
    };
    let reports = service
        .client
        .list_progress(call(progress, MANAGER))
        .await
        .unwrap()
        .into_inner()
        .reports;
    assert_eq!(reports.len(), 1);
    assert_eq!(reports[0].reported_by, DEVELOPER);
    let decisions = proto::ListDecisionsRequest {
        project_id: project_id.to_owned(),
        page: None,
    };
    let decisions = service
        .client
        .list_decisions(call(decisions, MANAGER))
        .await
        .unwrap()
        .into_inner()
        .decisions;
    assert_eq!(decisions.len(), 1);
    assert_eq!(decisions[0].approval_opinion, "Agreed.");
}

/// Checks that the broker has one event per step, with versions 1..N in order.
async fn check_broker(nats: &NatsServer, service: &mut Service, project_id: &str) {
    let expected = [
        "submitted",
        "approval_recorded",
        "approval_recorded",
        "member_added",
        "started",
        "member_added",
        "duties_changed",
        "member_removed",
        "progress_recorded",
        "document_updated",
        "document_updated",
        "decision_recorded",
        "decision_approved",
        "document_updated",
        "acceptance_applied",
        "acceptance_group_set",
        "signed_off",
        "signed_off",
        "acceptance_decided",
        "summary_submitted",
        "closed",
    ];
    assert_eq!(service.version(project_id).await, expected.len() as u64);

    let events = broker_events(nats, project_id, expected.len()).await;

    let actions: Vec<&str> = events.iter().map(|event| event.action.as_str()).collect();
    assert_eq!(actions, expected);
    for (event, version) in events.iter().zip(1..) {
        assert_eq!(event.entity_version, version, "{}", event.action);
        assert_eq!(event.entity_type, "project");
        assert_eq!(
            event.subject,
            format!("trace.project.project.{}", event.action)
        );
    }
    assert_eq!(events[0].actor.as_ref().unwrap().user_id, MANAGER);
    assert_eq!(events[2].actor.as_ref().unwrap().user_id, SECOND_APPROVER);
}

#[tokio::test]
async fn lifecycle_on_sqlite() {
    let nats = NatsServer::start();
    let mut service = Service::start(&nats, None).await;

    whole_lifecycle(&nats, &mut service).await;

    service.stop().await;
}

/// Creates a fresh PostgreSQL database on the server named by `TRACE_TEST_DATABASE_URL` and
/// returns its URL; `None` when the variable is unset.
async fn postgres_url() -> Option<String> {
    let base = std::env::var("TRACE_TEST_DATABASE_URL").ok()?;
    let admin = trace_runtime::db::connect(&base).await.unwrap();
    let name = format!("trace_t_project_{}", uuid::Uuid::now_v7().simple());
    let create = Statement::from_string(
        admin.get_database_backend(),
        format!("CREATE DATABASE {name}"),
    );
    admin.execute_raw(create).await.unwrap();
    let (server, _) = base.rsplit_once('/').unwrap();
    Some(format!("{server}/{name}"))
}

#[tokio::test]
async fn lifecycle_on_postgres() {
    let Some(url) = postgres_url().await else {
        eprintln!("TRACE_TEST_DATABASE_URL is not set; skipping the PostgreSQL variant");
        return;
    };
    let nats = NatsServer::start();
    let mut service = Service::start(&nats, Some(url)).await;

    whole_lifecycle(&nats, &mut service).await;

    service.stop().await;
}

/// Submits an approved project and starts it; returns the project id.
async fn active_project(service: &mut Service) -> String {
    let project_id = approved_project(service).await;
    let start = proto::StartProjectRequest {
        project_id: project_id.clone(),
    };
    service
        .client
        .start_project(call(start, MANAGER))
        .await
        .unwrap();
    project_id
}

#[tokio::test]
async fn bad_input_names_the_field_and_writes_nothing() {
    let nats = NatsServer::start();
    let mut service = Service::start(&nats, None).await;
    let project_id = active_project(&mut service).await;
    let version = service.version(&project_id).await;
    let rows = service.outbox_rows().await;
    let client = &mut service.client.clone();
    let with = |change: fn(&mut proto::SubmitApplicationRequest)| {
        let mut request = application();
        change(&mut request);
        request
    };
    let id = project_id.as_str();

    let cases: Vec<(&str, Status)> = vec![
        (
            "name",
            client
                .submit_application(call(with(|r| r.name.clear()), MANAGER))
                .await
                .unwrap_err(),
        ),
        (
            "confidentiality",
            client
                .submit_application(call(with(|r| r.confidentiality = 99), MANAGER))
                .await
                .unwrap_err(),
        ),
        (
            "tasks[1].title",
            client
                .submit_application(call(
                    with(|r| r.tasks[1].title = "a\u{202E}b".to_owned()),
                    MANAGER,
                ))
                .await
                .unwrap_err(),
        ),
        (
            "milestones[0].due_date",
            client
                .submit_application(call(
                    with(|r| r.milestones[0].due_date = date(2026, 12, 1)),
                    MANAGER,
                ))
                .await
                .unwrap_err(),
        ),
        (
            "milestones[1].due_date",
            client
                .submit_application(call(
                    with(|r| {
                        r.milestones[1].due_date = Some(trace_proto::common::v1::Date {
                            year: 2027,
                            month: 2,
                            day: 30,
                        })
                    }),
                    MANAGER,
                ))
                .await
                .unwrap_err(),
        ),
        (
            "approval_chain[0].approver_id",
            client
                .submit_application(call(
                    with(|r| r.approval_chain[0].approver_id = MANAGER.to_owned()),
                    MANAGER,
                ))
                .await
                .unwrap_err(),
        ),
        (
            "approval_chain",
            client
                .submit_application(call(with(|r| r.approval_chain.clear()), MANAGER))
                .await
                .unwrap_err(),
        ),
        (
            "project_id",
            client
                .record_approval(call(approval("not-a-uuid"), FIRST_APPROVER))
                .await
                .unwrap_err(),
        ),
        (
            "decision",
            client
                .record_approval(call(
                    proto::RecordApprovalRequest {
                        decision: 0,
                        ..approval(id)
                    },
                    FIRST_APPROVER,
                ))
                .await
                .unwrap_err(),
        ),
        (
            "application",
            client
                .resubmit_application(call(
                    proto::ResubmitApplicationRequest {
                        project_id: id.to_owned(),
                        application: None,
                    },
                    MANAGER,
                ))
                .await
                .unwrap_err(),
        ),
        (
            "user_id",
            client
                .add_member(call(
                    proto::AddMemberRequest {
                        user_id: "a b".to_owned(),
                        ..member(id, DEVELOPER)
                    },
                    MANAGER,
                ))
                .await
                .unwrap_err(),
        ),
        (
            "department",
            client
                .add_member(call(
                    proto::AddMemberRequest {
                        department: "IT".to_owned(),
                        ..member(id, DEVELOPER)
                    },
                    MANAGER,
                ))
                .await
                .unwrap_err(),
        ),
        (
            "duties",
            client
                .add_member(call(
                    proto::AddMemberRequest {
                        duties: String::new(),
                        ..member(id, DEVELOPER)
                    },
                    MANAGER,
                ))
                .await
                .unwrap_err(),
        ),
        (
            "period_start",
            client
                .record_progress(call(
                    proto::RecordProgressRequest {
                        period_start: None,
                        ..progress(id)
                    },
                    MANAGER,
                ))
                .await
                .unwrap_err(),
        ),
        (
            "period_end",
            client
                .record_progress(call(
                    proto::RecordProgressRequest {
                        period_end: date(2026, 11, 1),
                        ..progress(id)
                    },
                    MANAGER,
                ))
                .await
                .unwrap_err(),
        ),
        (
            "period_end",
            client
                .record_progress(call(
                    proto::RecordProgressRequest {
                        period_end: date(2026, 12, 5),
                        ..progress(id)
                    },
                    MANAGER,
                ))
                .await
                .unwrap_err(),
        ),
        (
            "meeting_id",
            client
                .record_progress(call(
                    proto::RecordProgressRequest {
                        meeting_id: "meeting-1".to_owned(),
                        ..progress(id)
                    },
                    MANAGER,
                ))
                .await
                .unwrap_err(),
        ),
        (
            "kind",
            client
                .record_document_update(call(
                    proto::RecordDocumentUpdateRequest {
                        kind: 9,
                        ..document_update(id, proto::DocumentKind::Plan)
                    },
                    MANAGER,
                ))
                .await
                .unwrap_err(),
        ),
        (
            "document_id",
            client
                .record_document_update(call(
                    proto::RecordDocumentUpdateRequest {
                        document_id: "../etc/passwd".to_owned(),
                        ..document_update(id, proto::DocumentKind::Plan)
                    },
                    MANAGER,
                ))
                .await
                .unwrap_err(),
        ),
        (
            "approver_id",
            client
                .record_decision(call(decision(id), FIRST_APPROVER))
                .await
                .unwrap_err(),
        ),
        (
            "process",
            client
                .record_decision(call(
                    proto::RecordDecisionRequest {
                        process: String::new(),
                        ..decision(id)
                    },
                    MANAGER,
                ))
                .await
                .unwrap_err(),
        ),
        (
            "test_report_document_id",
            client
                .apply_for_acceptance(call(
                    proto::ApplyForAcceptanceRequest {
                        test_report_document_id: String::new(),
                        ..acceptance_application(id)
                    },
                    MANAGER,
                ))
                .await
                .unwrap_err(),
        ),
        (
            "members",
            client
                .set_acceptance_group(call(
                    proto::SetAcceptanceGroupRequest {
                        project_id: id.to_owned(),
                        members: Vec::new(),
                    },
                    MANAGER,
                ))
                .await
                .unwrap_err(),
        ),
        (
            "verdict",
            client
                .sign_off(call(
                    proto::SignOffRequest {
                        verdict: 0,
                        ..sign_off(id)
                    },
                    GROUP_LEAD,
                ))
                .await
                .unwrap_err(),
        ),
        (
            "lessons",
            client
                .submit_summary(call(
                    proto::SubmitSummaryRequest {
                        project_id: id.to_owned(),
                        ..Default::default()
                    },
                    MANAGER,
                ))
                .await
                .unwrap_err(),
        ),
        (
            "page.page_size",
            client
                .list_projects(call(
                    proto::ListProjectsRequest {
                        page: Some(PageRequest {
                            page_size: 501,
                            page_token: String::new(),
                        }),
                        ..Default::default()
                    },
                    MANAGER,
                ))
                .await
                .unwrap_err(),
        ),
        (
            "state",
            client
                .list_projects(call(
                    proto::ListProjectsRequest {
                        state: 42,
                        ..Default::default()
                    },
                    MANAGER,
                ))
                .await
                .unwrap_err(),
        ),
    ];

    for (field, status) in &cases {
        assert_eq!(violated_field(status), *field, "{status:?}");
    }
    assert_eq!(service.version(&project_id).await, version);
    assert_eq!(service.outbox_rows().await, rows);
    service.stop().await;
}

#[tokio::test]
async fn rejected_application_is_resubmitted_as_new_round() {
    let nats = NatsServer::start();
    let mut service = Service::start(&nats, None).await;
    let client = &mut service.client.clone();
    let mut request = application();
    request.approval_chain = vec![
        proto::ApproverEntry {
            approver_id: SECOND_APPROVER.to_owned(),
            required: false,
        },
        proto::ApproverEntry {
            approver_id: FIRST_APPROVER.to_owned(),
            required: true,
        },
    ];
    let submitted = client
        .submit_application(call(request.clone(), MANAGER))
        .await
        .unwrap();
    let project_id = submitted.into_inner().project.unwrap().project_id;
    let reject = proto::RecordApprovalRequest {
        decision: proto::ApprovalDecision::Reject as i32,
        opinion: "Budget too high.".to_owned(),
        ..approval(&project_id)
    };

    let advisory = client
        .record_approval(call(reject.clone(), SECOND_APPROVER))
        .await
        .unwrap()
        .into_inner();
    let required = client
        .record_approval(call(reject, FIRST_APPROVER))
        .await
        .unwrap()
        .into_inner();

    assert_eq!(
        project_state(advisory.project),
        proto::ProjectState::InApproval
    );
    assert_eq!(
        project_state(required.project),
        proto::ProjectState::Rejected
    );
    let start = proto::StartProjectRequest {
        project_id: project_id.clone(),
    };
    let status = client
        .start_project(call(start, MANAGER))
        .await
        .unwrap_err();
    assert_wrong_state(&status, "REJECTED");

    request.name = "倉儲管理系統（縮減版）".to_owned();
    let resubmission = proto::ResubmitApplicationRequest {
        project_id: project_id.clone(),
        application: Some(request),
    };
    let status = client
        .resubmit_application(call(resubmission.clone(), OUTSIDER))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    let resubmitted = client
        .resubmit_application(call(resubmission, MANAGER))
        .await
        .unwrap()
        .into_inner();
    let project = resubmitted.project.unwrap();
    assert_eq!(project.state(), proto::ProjectState::InApproval);
    assert_eq!(project.application_round, 2);
    assert_eq!(project.next_approver_id, SECOND_APPROVER);
    client
        .record_approval(call(approval(&project_id), SECOND_APPROVER))
        .await
        .unwrap();
    let approved = client
        .record_approval(call(approval(&project_id), FIRST_APPROVER))
        .await
        .unwrap();
    assert_eq!(
        project_state(approved.into_inner().project),
        proto::ProjectState::Approved
    );

    let details = service.project(&project_id).await;
    let rounds: Vec<(u32, u32, proto::ApprovalDecision)> = details
        .approvals
        .iter()
        .map(|approval| (approval.round, approval.position, approval.decision()))
        .collect();
    assert_eq!(
        rounds,
        [
            (1, 1, proto::ApprovalDecision::Reject),
            (1, 2, proto::ApprovalDecision::Reject),
            (2, 1, proto::ApprovalDecision::Approve),
            (2, 2, proto::ApprovalDecision::Approve),
        ]
    );
    let application = details.application.unwrap();
    assert_eq!(application.round, 2);
    assert_eq!(application.name, "倉儲管理系統（縮減版）");
    service.stop().await;
}

#[tokio::test]
async fn failed_acceptance_returns_to_active() {
    let nats = NatsServer::start();
    let mut service = Service::start(&nats, None).await;
    let project_id = active_project(&mut service).await;
    let client = &mut service.client.clone();
    client
        .add_member(call(member(&project_id, DEVELOPER), MANAGER))
        .await
        .unwrap();
    client
        .apply_for_acceptance(call(acceptance_application(&project_id), MANAGER))
        .await
        .unwrap();
    let group = |members: &[&str]| proto::SetAcceptanceGroupRequest {
        project_id: project_id.clone(),
        members: members
            .iter()
            .map(|user_id| proto::GroupMemberEntry {
                user_id: (*user_id).to_owned(),
                name: (*user_id).to_owned(),
            })
            .collect(),
    };
    let head = |request| call_with_roles(request, DEPARTMENT_HEAD, &["department_head"]);

    let with_manager = client
        .set_acceptance_group(head(group(&[GROUP_LEAD, MANAGER])))
        .await
        .unwrap_err();
    let with_member = client
        .set_acceptance_group(head(group(&[DEVELOPER])))
        .await
        .unwrap_err();

    assert_eq!(violated_field(&with_manager), "members[1].user_id");
    assert_eq!(violated_field(&with_member), "members[0].user_id");
    client
        .set_acceptance_group(head(group(&[GROUP_LEAD])))
        .await
        .unwrap();
    let status = client
        .set_acceptance_group(head(group(&[USER_REPRESENTATIVE])))
        .await
        .unwrap_err();
    assert_wrong_state(
        &status,
        "IN_ACCEPTANCE and its acceptance group is already set",
    );
    let status = client
        .sign_off(call(sign_off(&project_id), OUTSIDER))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    let failing = proto::SignOffRequest {
        verdict: proto::SignOffVerdict::Fail as i32,
        open_issues: "Stock reports are missing.".to_owned(),
        ..sign_off(&project_id)
    };
    client
        .sign_off(call(failing.clone(), GROUP_LEAD))
        .await
        .unwrap();
    let status = client
        .sign_off(call(failing, GROUP_LEAD))
        .await
        .unwrap_err();
    assert_wrong_state(&status, "IN_ACCEPTANCE and chen.qa already signed off");
    let result = |result: proto::AcceptanceResult| proto::RecordAcceptanceResultRequest {
        project_id: project_id.clone(),
        result: result as i32,
        group_opinion: "Reports are missing.".to_owned(),
        open_issues: "Stock reports".to_owned(),
    };
    let status = client
        .record_acceptance_result(call(result(proto::AcceptanceResult::Passed), GROUP_LEAD))
        .await
        .unwrap_err();
    assert_wrong_state(&status, "IN_ACCEPTANCE with 1 FAIL sign-off(s)");
    let failed = client
        .record_acceptance_result(call(result(proto::AcceptanceResult::Failed), GROUP_LEAD))
        .await
        .unwrap();
    assert_eq!(
        project_state(failed.into_inner().project),
        proto::ProjectState::Active
    );

    let second = client
        .apply_for_acceptance(call(acceptance_application(&project_id), MANAGER))
        .await
        .unwrap();
    assert_eq!(second.into_inner().acceptance.unwrap().attempt, 2);
    let details = service.project(&project_id).await;
    let latest = details.latest_acceptance.unwrap();
    assert_eq!(latest.attempt, 2);
    assert!(latest.members.is_empty());
    service.stop().await;
}

#[tokio::test]
async fn list_projects_pages_by_id() {
    let nats = NatsServer::start();
    let mut service = Service::start(&nats, None).await;
    let client = &mut service.client.clone();
    let mut submitted = Vec::new();
    for department in ["it", "it", "ops", "it"] {
        let request = proto::SubmitApplicationRequest {
            department: department.to_owned(),
            ..application()
        };
        let project = client
            .submit_application(call(request, MANAGER))
            .await
            .unwrap()
            .into_inner()
            .project
            .unwrap();
        submitted.push(project.project_id);
    }
    let approved_id = approved_project(&mut service).await;
    let page = |token: &str| proto::ListProjectsRequest {
        department: "it".to_owned(),
        state: proto::ProjectState::InApproval as i32,
        page: Some(PageRequest {
            page_size: 2,
            page_token: token.to_owned(),
        }),
    };

    let first = client
        .list_projects(call(page(""), MANAGER))
        .await
        .unwrap()
        .into_inner();
    let second = client
        .list_projects(call(page(&first.next_page_token), MANAGER))
        .await
        .unwrap()
        .into_inner();

    let ids: Vec<String> = first
        .projects
        .iter()
        .chain(&second.projects)
        .map(|project| project.project_id.clone())
        .collect();
    assert_eq!(
        ids,
        [
            submitted[0].clone(),
            submitted[1].clone(),
            submitted[3].clone()
        ]
    );
    assert_eq!(first.next_page_token, submitted[1]);
    assert_eq!(second.next_page_token, "");
    let approved = proto::ListProjectsRequest {
        state: proto::ProjectState::Approved as i32,
        ..Default::default()
    };
    let approved = client
        .list_projects(call(approved, MANAGER))
        .await
        .unwrap()
        .into_inner()
        .projects;
    assert_eq!(approved.len(), 1);
    assert_eq!(approved[0].project_id, approved_id);
    service.stop().await;
}

/// Waits until the relay has published every outbox row to the broker.
async fn wait_until_published(service: &Service) {
    let statement = Statement::from_string(
        service.db.get_database_backend(),
        "SELECT COUNT(*) AS n FROM outbox WHERE published_at IS NULL",
    );
    let started = Instant::now();
    loop {
        let row = service
            .db
            .query_one_raw(statement.clone())
            .await
            .unwrap()
            .unwrap();
        if row.try_get::<i64>("", "n").unwrap() == 0 {
            return;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "outbox rows still unpublished"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Runs a project at `level` from its application to its summary, with `marker` in every
/// free-text field that is sealed for confidential projects; returns the project id.
async fn marked_project(service: &mut Service, level: Confidentiality, marker: &str) -> String {
    let client = &mut service.client.clone();
    let mut submit = application();
    submit.confidentiality = level as i32;
    submit.background = format!("Background {marker}");
    submit.goals = format!("Goals {marker}");
    submit.tasks[0].description = format!("Task {marker}");
    submit.resource_needs = format!("Resources {marker}");
    submit.expected_results = format!("Results {marker}");
    let submitted = client
        .submit_application(call(submit, MANAGER))
        .await
        .unwrap();
    let project_id = submitted.into_inner().project.unwrap().project_id;
    for approver in [FIRST_APPROVER, SECOND_APPROVER] {
        let approve = proto::RecordApprovalRequest {
            opinion: format!("Approval {marker}"),
            ..approval(&project_id)
        };
        client
            .record_approval(call(approve, approver))
            .await
            .unwrap();
    }
    client
        .add_member(call(member(&project_id, DEVELOPER), MANAGER))
        .await
        .unwrap();
    let start = proto::StartProjectRequest {
        project_id: project_id.clone(),
    };
    client.start_project(call(start, MANAGER)).await.unwrap();

    let report = proto::RecordProgressRequest {
        progress: format!("Progress {marker}"),
        problems: format!("Problems {marker}"),
        solutions: format!("Solutions {marker}"),
        ..progress(&project_id)
    };
    client
        .record_progress(call(report, DEVELOPER))
        .await
        .unwrap();
    let update = proto::RecordDocumentUpdateRequest {
        summary: format!("Update {marker}"),
        ..document_update(&project_id, proto::DocumentKind::TestReport)
    };
    client
        .record_document_update(call(update, DEVELOPER))
        .await
        .unwrap();
    let record = proto::RecordDecisionRequest {
        process: format!("Process {marker}"),
        reason: format!("Reason {marker}"),
        content: format!("Content {marker}"),
        ..decision(&project_id)
    };
    let recorded = client
        .record_decision(call(record, DEVELOPER))
        .await
        .unwrap()
        .into_inner();
    let review = proto::ApproveDecisionRequest {
        project_id: project_id.clone(),
        decision_id: recorded.decision.unwrap().decision_id,
        decision: proto::ApprovalDecision::Approve as i32,
        opinion: format!("Decision opinion {marker}"),
    };
    client
        .approve_decision(call(review, FIRST_APPROVER))
        .await
        .unwrap();

    let apply = proto::ApplyForAcceptanceRequest {
        results_report: format!("Report {marker}"),
        user_feedback: format!("Feedback {marker}"),
        ..acceptance_application(&project_id)
    };
    client
        .apply_for_acceptance(call(apply, MANAGER))
        .await
        .unwrap();
    let group = proto::SetAcceptanceGroupRequest {
        project_id: project_id.clone(),
        members: [GROUP_LEAD, USER_REPRESENTATIVE]
            .map(|user_id| proto::GroupMemberEntry {
                user_id: user_id.to_owned(),
                name: user_id.to_owned(),
            })
            .to_vec(),
    };
    client
        .set_acceptance_group(call_with_roles(
            group,
            DEPARTMENT_HEAD,
            &["department_head"],
        ))
        .await
        .unwrap();
    for signer in [GROUP_LEAD, USER_REPRESENTATIVE] {
        let sign = proto::SignOffRequest {
            opinion: format!("Sign-off {marker}"),
            open_issues: format!("Sign-off issues {marker}"),
            ..sign_off(&project_id)
        };
        client.sign_off(call(sign, signer)).await.unwrap();
    }
    let result = proto::RecordAcceptanceResultRequest {
        project_id: project_id.clone(),
        result: proto::AcceptanceResult::Passed as i32,
        group_opinion: format!("Group opinion {marker}"),
        open_issues: format!("Open issues {marker}"),
    };
    client
        .record_acceptance_result(call(result, GROUP_LEAD))
        .await
        .unwrap();
    let summary = proto::SubmitSummaryRequest {
        project_id: project_id.clone(),
        lessons: format!("Lessons {marker}"),
        results: format!("Summary results {marker}"),
        shortcomings: format!("Shortcomings {marker}"),
    };
    client.submit_summary(call(summary, MANAGER)).await.unwrap();
    project_id
}

/// Checks that the API returns every marked field of a project as plaintext.
async fn check_marked_project(service: &mut Service, project_id: &str, marker: &str) {
    let details = service.project(project_id).await;
    let application = details.application.unwrap();
    assert_eq!(application.background, format!("Background {marker}"));
    assert_eq!(application.goals, format!("Goals {marker}"));
    assert_eq!(application.tasks[0].description, format!("Task {marker}"));
    assert_eq!(application.tasks[0].title, "Requirements");
    assert_eq!(application.resource_needs, format!("Resources {marker}"));
    assert_eq!(application.expected_results, format!("Results {marker}"));
    for approval in &details.approvals {
        assert_eq!(approval.opinion, format!("Approval {marker}"));
    }
    let acceptance = details.latest_acceptance.unwrap();
    assert_eq!(acceptance.results_report, format!("Report {marker}"));
    assert_eq!(acceptance.user_feedback, format!("Feedback {marker}"));
    assert_eq!(acceptance.group_opinion, format!("Group opinion {marker}"));
    assert_eq!(acceptance.open_issues, format!("Open issues {marker}"));
    for member in &acceptance.members {
        assert_eq!(member.opinion, format!("Sign-off {marker}"));
        assert_eq!(member.open_issues, format!("Sign-off issues {marker}"));
    }
    let summary = details.summary.unwrap();
    assert_eq!(summary.lessons, format!("Lessons {marker}"));
    assert_eq!(summary.results, format!("Summary results {marker}"));
    assert_eq!(summary.shortcomings, format!("Shortcomings {marker}"));

    let reports = service
        .client
        .list_progress(call(
            proto::ListProgressRequest {
                project_id: project_id.to_owned(),
                page: None,
            },
            MANAGER,
        ))
        .await
        .unwrap()
        .into_inner()
        .reports;
    assert_eq!(reports[0].progress, format!("Progress {marker}"));
    assert_eq!(reports[0].problems, format!("Problems {marker}"));
    assert_eq!(reports[0].solutions, format!("Solutions {marker}"));
    let decisions = service
        .client
        .list_decisions(call(
            proto::ListDecisionsRequest {
                project_id: project_id.to_owned(),
                page: None,
            },
            MANAGER,
        ))
        .await
        .unwrap()
        .into_inner()
        .decisions;
    assert_eq!(decisions[0].process, format!("Process {marker}"));
    assert_eq!(decisions[0].reason, format!("Reason {marker}"));
    assert_eq!(decisions[0].content, format!("Content {marker}"));
    assert_eq!(
        decisions[0].approval_opinion,
        format!("Decision opinion {marker}")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confidential_text_is_sealed_at_rest() {
    let nats = NatsServer::start();
    let mut service = Service::start(&nats, None).await;
    let levels = [
        (Confidentiality::Confidential, "marker-2d8e 机密项目"),
        (Confidentiality::Secret, "marker-a06c 绝密方案"),
        (Confidentiality::Internal, "internal-marker-47b1"),
    ];
    let mut projects = Vec::new();
    for (level, marker) in levels {
        let project_id = marked_project(&mut service, level, marker).await;
        check_marked_project(&mut service, &project_id, marker).await;
        projects.push(project_id);
    }
    wait_until_published(&service).await;

    // No database file or broker file contains the plaintext of a confidential or secret
    // project. The internal project's text is stored as it is, which shows that the scan
    // reads the database.
    let data = service._folder.path().to_path_buf();
    for (_, marker) in &levels[..2] {
        assert_eq!(
            files_containing(&data, marker.as_bytes()).expect("scan the data folder"),
            Vec::<PathBuf>::new()
        );
        assert_eq!(
            files_containing(nats._store.path(), marker.as_bytes()).expect("scan the broker store"),
            Vec::<PathBuf>::new()
        );
    }
    let internal = files_containing(&data, levels[2].1.as_bytes()).expect("scan the data folder");
    assert!(
        internal
            .iter()
            .any(|path| path.to_string_lossy().contains("project.db")),
        "{internal:?}"
    );
    service.stop().await;
}

// ---------------------------------------------------------------------------------------
// Read scope.

/// A department other than the projects' `it`.
const FOREIGN_DEPARTMENT: &str = "ops";
fn call_as<T>(message: T, user_id: &str, department: &str, roles: &[&str]) -> Request<T> {
    let mut request = Request::new(message);
    attach_identity(&mut request, user_id, department, roles, None);
    request
}

fn get_request(project_id: &str) -> proto::GetProjectRequest {
    proto::GetProjectRequest {
        project_id: project_id.to_owned(),
    }
}

/// Decodes the outbox row of the event `event_id`.
async fn outbox_envelope(service: &Service, event_id: &str) -> Envelope {
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
    use trace_runtime::outbox::outbox_event;

    let row = outbox_event::Entity::find()
        .filter(outbox_event::Column::EventId.eq(event_id))
        .one(&service.db)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("no outbox row for event {event_id}"));
    Envelope::decode(row.envelope.as_slice()).unwrap()
}

#[tokio::test]
async fn reads_outside_scope_are_denied() {
    let nats = NatsServer::start();
    let mut service = Service::start(&nats, None).await;
    let project_id = approved_project(&mut service).await;
    let missing_id = uuid::Uuid::now_v7().to_string();
    let mut client = service.client.clone();
    let foreign = |message| call_as(message, "ma.ops", FOREIGN_DEPARTMENT, &["employee"]);

    let get = client
        .get_project(foreign(get_request(&project_id)))
        .await
        .expect_err("another department's employee reads the project");
    let (get_message, get_event) = recorded_denial(&get, &project_id);
    let missing = client
        .get_project(foreign(get_request(&missing_id)))
        .await
        .expect_err("a missing project is read");
    let (missing_message, missing_event) = recorded_denial(&missing, &missing_id);
    assert_eq!(get_message, missing_message);
    assert!(!get_event.is_empty());
    assert!(!missing_event.is_empty());

    let progress = proto::ListProgressRequest {
        project_id: project_id.clone(),
        page: None,
    };
    let progress = client
        .list_progress(call_as(
            progress,
            "ma.ops",
            FOREIGN_DEPARTMENT,
            &["employee"],
        ))
        .await
        .expect_err("another department's employee lists progress");
    assert_eq!(recorded_denial(&progress, &project_id).0, missing_message);
    let decisions = proto::ListDecisionsRequest {
        project_id: project_id.clone(),
        page: None,
    };
    let decisions = client
        .list_decisions(call_as(
            decisions,
            "ma.ops",
            FOREIGN_DEPARTMENT,
            &["employee"],
        ))
        .await
        .expect_err("another department's employee lists decisions");
    assert_eq!(recorded_denial(&decisions, &project_id).0, missing_message);

    // The existing project's denial is its own event, a missing one's an access event.
    let envelope = outbox_envelope(&service, &get_event).await;
    assert_eq!(envelope.subject, "trace.project.project.read_denied");
    assert_eq!(envelope.entity_id, project_id);
    assert_eq!(envelope.actor.as_ref().unwrap().user_id, "ma.ops");
    let payload = envelope.payload.unwrap();
    let payload = proto::ProjectReadDenied::decode(payload.value.as_slice()).unwrap();
    assert_eq!(payload.method, "GetProject");
    let envelope = outbox_envelope(&service, &missing_event).await;
    assert_eq!(envelope.subject, "trace.project.access.denied");
    assert_eq!(envelope.actor.as_ref().unwrap().user_id, "ma.ops");

    // Another department's head and an uninvolved employee of `it` are denied.
    let head = client
        .get_project(call_as(
            get_request(&project_id),
            "he.ops",
            FOREIGN_DEPARTMENT,
            &["department_head"],
        ))
        .await
        .expect_err("another department's head reads the project");
    assert_eq!(head.code(), Code::PermissionDenied);
    let outsider = client
        .get_project(call(get_request(&project_id), OUTSIDER))
        .await
        .expect_err("an uninvolved employee reads the project");
    assert_eq!(outsider.code(), Code::PermissionDenied);

    // Readers: the manager, an approver, the department's head and supervisor, audit.
    let readers: [(&str, &str, &str); 5] = [
        (MANAGER, "it", "employee"),
        (SECOND_APPROVER, "finance", "employee"),
        (DEPARTMENT_HEAD, "it", "department_head"),
        ("lu.lead", "it", "supervisor"),
        ("zhao.yun", "audit", "audit"),
    ];
    for (user, department, role) in readers {
        let found = client
            .get_project(call_as(get_request(&project_id), user, department, &[role]))
            .await
            .unwrap_or_else(|status| panic!("{user} as {role}: {status:?}"))
            .into_inner();
        assert_eq!(found.project.unwrap().project_id, project_id, "{user}");
    }
    let status = client
        .get_project(call_as(
            get_request(&missing_id),
            "zhao.yun",
            "audit",
            &["audit"],
        ))
        .await
        .expect_err("audit reads a missing project");
    assert_eq!(status.code(), Code::NotFound);
    service.stop().await;
}

#[tokio::test]
async fn confidential_project_reads_are_recorded() {
    let nats = NatsServer::start();
    let mut service = Service::start(&nats, None).await;
    let request = proto::SubmitApplicationRequest {
        confidentiality: Confidentiality::Confidential as i32,
        ..application()
    };
    let submitted = service
        .client
        .submit_application(call(request, MANAGER))
        .await
        .unwrap()
        .into_inner()
        .project
        .unwrap();

    let found = service
        .client
        .get_project(call(get_request(&submitted.project_id), FIRST_APPROVER))
        .await
        .unwrap()
        .into_inner();
    let project = found.project.unwrap();
    assert_eq!(project.entity_version, submitted.entity_version + 1);

    let rows = service
        .db
        .query_all_raw(Statement::from_string(
            service.db.get_database_backend(),
            format!(
                "SELECT subject FROM outbox WHERE entity_id = '{}' ORDER BY seq",
                submitted.project_id
            ),
        ))
        .await
        .unwrap();
    let subjects: Vec<String> = rows
        .iter()
        .map(|row| row.try_get::<String>("", "subject").unwrap())
        .collect();
    assert_eq!(
        subjects.last().map(String::as_str),
        Some("trace.project.project.read")
    );
    service.stop().await;
}

#[tokio::test]
async fn list_projects_keeps_to_scope() {
    let nats = NatsServer::start();
    let service = Service::start(&nats, None).await;
    let client = &mut service.client.clone();

    // Runs of `ops` projects between `it` projects, so a filter applied after the LIMIT
    // would return empty or short pages.
    let mut it_projects = Vec::new();
    let mut ops_projects = Vec::new();
    for _ in 0..3 {
        let project = client
            .submit_application(call(application(), MANAGER))
            .await
            .unwrap()
            .into_inner()
            .project
            .unwrap();
        it_projects.push(project.project_id);
        for _ in 0..3 {
            let request = proto::SubmitApplicationRequest {
                department: FOREIGN_DEPARTMENT.to_owned(),
                approval_chain: vec![proto::ApproverEntry {
                    approver_id: "he.ops".to_owned(),
                    required: true,
                }],
                ..application()
            };
            let project = client
                .submit_application(call_as(
                    request,
                    "ma.ops",
                    FOREIGN_DEPARTMENT,
                    &["employee"],
                ))
                .await
                .unwrap()
                .into_inner()
                .project
                .unwrap();
            ops_projects.push(project.project_id);
        }
    }

    let callers: [(&str, &str, &str, &Vec<String>); 3] = [
        (MANAGER, "it", "employee", &it_projects),
        (DEPARTMENT_HEAD, "it", "department_head", &it_projects),
        ("lu.ops", FOREIGN_DEPARTMENT, "supervisor", &ops_projects),
    ];
    for (user, department, role, expected) in callers {
        for page_size in [1, 2] {
            let mut listed = Vec::new();
            let mut token = String::new();
            loop {
                let request = proto::ListProjectsRequest {
                    page: Some(PageRequest {
                        page_size,
                        page_token: token.clone(),
                    }),
                    ..Default::default()
                };
                let page = client
                    .list_projects(call_as(request, user, department, &[role]))
                    .await
                    .unwrap()
                    .into_inner();
                let count = page.projects.len();
                listed.extend(page.projects.into_iter().map(|project| project.project_id));
                if page.next_page_token.is_empty() {
                    break;
                }
                assert_eq!(count, usize::try_from(page_size).unwrap(), "{user}");
                token = page.next_page_token;
            }
            assert_eq!(&listed, expected, "{user} with page size {page_size}");
        }
    }

    let everything = proto::ListProjectsRequest::default();
    let audit = client
        .list_projects(call_as(everything.clone(), "zhao.yun", "audit", &["audit"]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(audit.projects.len(), 12);
    let outsider = client
        .list_projects(call(everything, OUTSIDER))
        .await
        .unwrap()
        .into_inner();
    assert!(outsider.projects.is_empty());
    service.stop().await;
}

// ---------------------------------------------------------------------------------------
// Access requests for confidential projects.

/// A supervisor of `it`, who decides access requests to its projects.
const SUPERVISOR: &str = "lu.lead";

/// Wraps `message` in a request from the head of `it`, who takes no part in the projects.
fn as_head<T>(message: T) -> Request<T> {
    call_as(message, DEPARTMENT_HEAD, "it", &["department_head"])
}

fn as_supervisor<T>(message: T) -> Request<T> {
    call_as(message, SUPERVISOR, "it", &["supervisor"])
}

/// Submits an application of `it` at `level` as the manager and returns the project id.
async fn submitted_at_level(service: &mut Service, level: Confidentiality) -> String {
    let request = proto::SubmitApplicationRequest {
        confidentiality: level as i32,
        ..application()
    };
    service
        .client
        .submit_application(call(request, MANAGER))
        .await
        .unwrap()
        .into_inner()
        .project
        .unwrap()
        .project_id
}

fn access_request(project_id: &str) -> proto::RequestAccessRequest {
    proto::RequestAccessRequest {
        project_id: project_id.to_owned(),
        purpose: "Review of the warehouse budget".to_owned(),
    }
}

/// Approves `access_request_id` until `hours` after the service clock's start.
fn access_approval(access_request_id: &str, hours: i64) -> proto::DecideAccessRequest {
    let start = Utc.with_ymd_and_hms(2026, 12, 4, 2, 0, 0).unwrap();
    proto::DecideAccessRequest {
        access_request_id: access_request_id.to_owned(),
        approve: true,
        opinion: "Needed for the quarterly review".to_owned(),
        expires_at: Some(prost_types::Timestamp {
            seconds: start.timestamp() + hours * 3_600,
            nanos: 0,
        }),
    }
}

/// Decodes the sealed payload of the outbox event `event_id` with the development key.
async fn sealed_payload<M: Message + Default>(
    service: &Service,
    event_id: &str,
    subject: &str,
) -> M {
    let envelope = outbox_envelope(service, event_id).await;
    assert_eq!(envelope.subject, subject);
    assert!(
        envelope.payload.is_none(),
        "{subject} payload is not sealed"
    );
    let keyring = trace_runtime::seal::Keyring::development();
    let payload = trace_runtime::event::open_payload(&keyring, &envelope)
        .unwrap()
        .unwrap();
    M::decode(payload.value.as_slice()).unwrap()
}

/// Returns the payload of the project's newest event, which must be a `read` event.
async fn last_read(service: &Service, project_id: &str) -> proto::ProjectRead {
    let rows = service
        .db
        .query_all_raw(Statement::from_string(
            service.db.get_database_backend(),
            format!("SELECT event_id FROM outbox WHERE entity_id = '{project_id}' ORDER BY seq"),
        ))
        .await
        .unwrap();
    let event_id: String = rows.last().unwrap().try_get("", "event_id").unwrap();
    sealed_payload(service, &event_id, "trace.project.project.read").await
}

/// Reads the project as the head, expects a denial, and returns its message and the
/// `read_denied` payload.
async fn head_denied(
    service: &mut Service,
    project_id: &str,
) -> (String, proto::ProjectReadDenied) {
    let status = service
        .client
        .get_project(as_head(get_request(project_id)))
        .await
        .expect_err("the head reads the project");
    let (message, event_id) = recorded_denial(&status, project_id);
    let payload = sealed_payload(service, &event_id, "trace.project.project.read_denied").await;
    (message, payload)
}

#[tokio::test]
async fn access_requests_on_sqlite() {
    let nats = NatsServer::start();
    let service = Service::start(&nats, None).await;
    run_access_requests(service).await;
}

#[tokio::test]
async fn access_requests_on_postgres() {
    let Some(url) = postgres_url().await else {
        eprintln!("TRACE_TEST_DATABASE_URL is not set; skipping the PostgreSQL variant");
        return;
    };
    let nats = NatsServer::start();
    let service = Service::start(&nats, Some(url)).await;
    run_access_requests(service).await;
}

/// Reads a CONFIDENTIAL and a SECRET project as the head of their department, who takes no
/// part in them, before and after an access request and its decision.
async fn run_access_requests(mut service: Service) {
    let project_id = submitted_at_level(&mut service, Confidentiality::Confidential).await;
    let secret_id = submitted_at_level(&mut service, Confidentiality::Secret).await;
    let mut client = service.client.clone();

    // Without a request the head is denied, and the denial names no request.
    let (message, denial) = head_denied(&mut service, &project_id).await;
    assert!(
        message.contains("sun.head has no approved access request for project <id>;"),
        "{message}"
    );
    assert_eq!(denial.method, "GetProject");
    assert_eq!(denial.access_request_id, "");

    // An approver takes part, reads without a request and may not ask for one.
    client
        .get_project(call(get_request(&project_id), FIRST_APPROVER))
        .await
        .unwrap();
    let status = client
        .request_access(call(access_request(&project_id), FIRST_APPROVER))
        .await
        .expect_err("a participant requests access");
    assert_eq!(status.code(), Code::FailedPrecondition);

    // A pending request is named by the denial.
    let requested = client
        .request_access(as_head(access_request(&project_id)))
        .await
        .unwrap()
        .into_inner();
    let pending = requested.access_request.unwrap();
    assert_eq!(pending.project_id, project_id);
    assert_eq!(pending.requester_id, DEPARTMENT_HEAD);
    assert_eq!(pending.state, proto::AccessRequestState::Pending as i32);
    let request_id = pending.access_request_id;
    let payload: proto::ProjectAccessRequested = sealed_payload(
        &service,
        &requested.event_id,
        "trace.project.project.access_requested",
    )
    .await;
    assert_eq!(payload.access_request_id, request_id);
    let (message, denial) = head_denied(&mut service, &project_id).await;
    assert!(message.contains("is PENDING"), "{message}");
    assert_eq!(denial.access_request_id, request_id);

    // Neither the requester nor a head of another department decides.
    let status = client
        .decide_access(as_head(access_approval(&request_id, 24)))
        .await
        .expect_err("the requester decides their own request");
    assert_eq!(status.code(), Code::PermissionDenied);
    assert!(status.message().contains("their own access request"));
    let status = client
        .decide_access(call_as(
            access_approval(&request_id, 24),
            "he.ops",
            FOREIGN_DEPARTMENT,
            &["department_head"],
        ))
        .await
        .expect_err("a head of another department decides");
    assert_eq!(status.code(), Code::PermissionDenied);
    // An unknown request gets the same error, so it does not show which requests exist.
    let unknown_id = uuid::Uuid::now_v7().to_string();
    let missing = client
        .decide_access(call_as(
            access_approval(&unknown_id, 24),
            "he.ops",
            FOREIGN_DEPARTMENT,
            &["department_head"],
        ))
        .await
        .expect_err("an unknown request is decided");
    assert_eq!(missing.code(), Code::PermissionDenied);
    assert_eq!(
        missing.message().replace(&unknown_id, "<id>"),
        status.message().replace(&request_id, "<id>")
    );

    // An approval ends at most 90 days ahead.
    let status = client
        .decide_access(as_supervisor(access_approval(&request_id, 91 * 24)))
        .await
        .expect_err("an approval of 91 days");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(violated_field(&status), "expires_at");

    // With the supervisor's approval the head reads, and each read names the request.
    let decided = client
        .decide_access(as_supervisor(access_approval(&request_id, 24)))
        .await
        .unwrap()
        .into_inner();
    let approved = decided.access_request.unwrap();
    assert_eq!(approved.state, proto::AccessRequestState::Approved as i32);
    assert_eq!(approved.approver_id, SUPERVISOR);
    client
        .get_project(as_head(get_request(&project_id)))
        .await
        .unwrap();
    let read = last_read(&service, &project_id).await;
    assert_eq!(read.method, "GetProject");
    assert_eq!(read.access_request_id, request_id);
    let progress = proto::ListProgressRequest {
        project_id: project_id.clone(),
        page: None,
    };
    client.list_progress(as_head(progress)).await.unwrap();
    let read = last_read(&service, &project_id).await;
    assert_eq!(read.method, "ListProgress");
    assert_eq!(read.access_request_id, request_id);
    let decisions = proto::ListDecisionsRequest {
        project_id: project_id.clone(),
        page: None,
    };
    client.list_decisions(as_head(decisions)).await.unwrap();
    let read = last_read(&service, &project_id).await;
    assert_eq!(read.method, "ListDecisions");
    assert_eq!(read.access_request_id, request_id);

    let listed = client
        .list_access_requests(as_head(proto::ListAccessRequestsRequest {
            project_id: project_id.clone(),
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.access_requests.len(), 1);
    assert_eq!(
        listed.access_requests[0].purpose,
        "Review of the warehouse budget"
    );

    // After the approval ends the head is denied again, naming the expired request.
    service.clock.advance(chrono::Duration::days(2));
    let (message, denial) = head_denied(&mut service, &project_id).await;
    assert!(message.contains("expired at"), "{message}");
    assert_eq!(denial.access_request_id, request_id);

    // A SECRET project also needs the head's acceptance of the agreement.
    let requested = client
        .request_access(as_head(access_request(&secret_id)))
        .await
        .unwrap()
        .into_inner();
    let secret_request = requested.access_request.unwrap().access_request_id;
    client
        .decide_access(as_supervisor(access_approval(&secret_request, 24 * 5)))
        .await
        .unwrap();
    let (message, denial) = head_denied(&mut service, &secret_id).await;
    assert!(
        message.contains("needs the caller's acceptance of the current confidentiality"),
        "{message}"
    );
    assert_eq!(denial.access_request_id, secret_request);
    client
        .accept_agreement(as_head(proto::AcceptAgreementRequest {
            agreement_version: "2026-01".to_owned(),
        }))
        .await
        .unwrap();
    client
        .get_project(as_head(get_request(&secret_id)))
        .await
        .unwrap();
    assert_eq!(
        last_read(&service, &secret_id).await.access_request_id,
        secret_request
    );
    service.stop().await;
}
