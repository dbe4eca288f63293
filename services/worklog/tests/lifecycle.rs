//! End-to-end tests of the worklog service. Each test starts a private nats-server with
//! JetStream on a free port of 127.0.0.1 and runs the service in-process on another free port.
//! The service gets a temporary SQLite file, or a fresh PostgreSQL database when
//! `TRACE_TEST_DATABASE_URL` is set, a small test directory and calendar, and a manual clock.

use std::collections::{BTreeMap, HashSet};
use std::net::{SocketAddr, TcpListener as StdTcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use trace_tests::receipts::ReceiptSender;
use trace_tests::scan::files_containing;

use anyhow::{Context, Result, bail};
use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use futures::StreamExt;
use prost::Message;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, Statement,
};
use tempfile::TempDir;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Request, Status};
use tonic_types::StatusExt;
use trace_proto::common::v1::{Confidentiality, Date, PageRequest};
use trace_proto::event::v1::Envelope;
use trace_proto::worklog::v1::worklog_service_client::WorklogServiceClient;
use trace_proto::worklog::v1::*;
use trace_runtime::blob::{BlobStore, sha256_hex};
use trace_runtime::clock::{Clock, ManualClock, proto_date};
use trace_runtime::context::{attach_identity, role};
use trace_runtime::outbox::outbox_event;
use trace_runtime::seal::Keyring;
use trace_worklog::WorklogConfig;
use trace_worklog::entity as table;

/// Author of the reports.
const CLERK: &str = "zhang.min";
/// Direct supervisor of the clerk.
const LEAD: &str = "chen.hua";
/// Head of the sales department and supervisor of the lead.
const HEAD: &str = "li.na";
/// A supervisor in another department.
const OTHER_LEAD: &str = "wu.lei";
/// A colleague of the clerk who supervises nobody.
const COLLEAGUE: &str = "he.jing";
/// An internal auditor.
const AUDITOR: &str = "qian.hao";

/// The people of the test directory: user id, department and roles.
const PEOPLE: &[(&str, &str, &[&str])] = &[
    (CLERK, "sales", &[role::EMPLOYEE]),
    (LEAD, "sales", &[role::SUPERVISOR]),
    (HEAD, "sales", &[role::DEPARTMENT_HEAD]),
    (OTHER_LEAD, "engineering", &[role::SUPERVISOR]),
    (COLLEAGUE, "sales", &[role::EMPLOYEE]),
    (AUDITOR, "audit", &[role::AUDIT]),
];

const DIRECTORY: &str = r#"
[[departments]]
id = "sales"
name = "業務部"
head = "li.na"

[[departments]]
id = "engineering"
name = "研發部"
head = "wu.lei"

[[departments]]
id = "audit"
name = "審計部"
head = "qian.hao"

[[employees]]
id = "li.na"
name = "李娜"
department = "sales"
position = "業務部經理"
roles = ["department_head"]

[[employees]]
id = "chen.hua"
name = "陳華"
department = "sales"
position = "業務主管"
roles = ["supervisor"]
supervisor = "li.na"

[[employees]]
id = "zhang.min"
name = "張敏"
department = "sales"
position = "業務員"
roles = ["employee"]
supervisor = "chen.hua"

[[employees]]
id = "he.jing"
name = "何靜"
department = "sales"
position = "業務員"
roles = ["employee"]
supervisor = "chen.hua"

[[employees]]
id = "wu.lei"
name = "吳磊"
department = "engineering"
position = "項目經理"
roles = ["supervisor", "department_head"]
supervisor = "li.na"

[[employees]]
id = "xu.fang"
name = "徐芳"
department = "engineering"
position = "工程師"
roles = ["employee"]
supervisor = "wu.lei"

[[employees]]
id = "qian.hao"
name = "錢浩"
department = "audit"
position = "審計師"
roles = ["audit"]
supervisor = "li.na"
"#;

/// An invented calendar: Friday 6 March 2026 is a holiday and Saturday 7 March 2026 a make-up
/// working day. 2025 has no table.
const CALENDAR: &str = r#"
[[years]]
year = 2026
source = "test calendar"
holidays = ["2026-03-06"]
make_up_working_days = ["2026-03-07"]
"#;

/// Maximum time to wait for anything to converge: a server start, publication, delivery.
const DEADLINE: Duration = Duration::from_secs(60);

/// Maximum gRPC message size of the test client, above the attachment limits.
const CLIENT_MESSAGE_BYTES: usize = 128 * 1024 * 1024;

type Client = WorklogServiceClient<Channel>;

// ---------------------------------------------------------------------------------------
// A private nats-server.

/// A `nats-server` with JetStream, listening on 127.0.0.1 only; killed on drop.
struct Nats {
    process: Child,
    port: u16,
    _store: TempDir,
}

impl Nats {
    fn start() -> Result<Self> {
        let binary = std::env::var_os("TRACE_NATS_SERVER").map_or_else(
            || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.tools/venv/bin/nats-server"),
            PathBuf::from,
        );
        anyhow::ensure!(
            binary.exists(),
            "nats-server not found at {}; set TRACE_NATS_SERVER",
            binary.display()
        );

        let port = free_port()?;
        let store = tempfile::Builder::new().prefix("worklog-nats-").tempdir()?;
        let process = Command::new(&binary)
            .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
            .arg(store.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("failed to start {}", binary.display()))?;
        let nats = Self {
            process,
            port,
            _store: store,
        };
        wait_for_port(port)?;
        Ok(nats)
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

fn free_port() -> Result<u16> {
    Ok(StdTcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn wait_for_port(port: u16) -> Result<()> {
    let started = Instant::now();
    while started.elapsed() < DEADLINE {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    bail!("nothing listens on 127.0.0.1:{port} after {DEADLINE:?}")
}

// ---------------------------------------------------------------------------------------
// A fresh PostgreSQL database, when the environment names a server.

/// Creates `trace_t_worklog_<random>` on the server of `TRACE_TEST_DATABASE_URL` and returns
/// the admin connection, the database name and its URL; `None` when the variable is unset.
async fn create_postgres_database() -> Result<Option<(DatabaseConnection, String, String)>> {
    let Ok(base) = std::env::var("TRACE_TEST_DATABASE_URL") else {
        return Ok(None);
    };
    let admin = trace_runtime::db::connect(&base).await?;
    let name = format!("trace_t_worklog_{}", uuid::Uuid::now_v7().simple());
    let statement = Statement::from_string(
        admin.get_database_backend(),
        format!("CREATE DATABASE {name}"),
    );
    admin.execute_raw(statement).await?;

    let (server, _) = base
        .rsplit_once('/')
        .context("TRACE_TEST_DATABASE_URL has no database name")?;
    let url = format!("{server}/{name}");
    Ok(Some((admin, name, url)))
}

/// Drops a database made by [`create_postgres_database`]; a failure is printed, not raised,
/// so that it does not hide the test's own outcome.
async fn drop_postgres_database(admin: &DatabaseConnection, name: &str) {
    let statement = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
    let statement = Statement::from_string(admin.get_database_backend(), statement);
    if let Err(error) = admin.execute_raw(statement).await {
        eprintln!("failed to drop test database {name}: {error}");
    }
}

// ---------------------------------------------------------------------------------------
// The service under test.

/// The worklog service running in this process, with its own data folder and clock.
struct Service {
    address: SocketAddr,
    clock: Arc<ManualClock>,
    shutdown: CancellationToken,
    task: Option<JoinHandle<Result<()>>>,
    /// A separate connection for assertions on the service's tables.
    db: DatabaseConnection,
    blobs: BlobStore,
    /// Stands in for the archive's receipts, which release each entity's next event.
    _receipts: Option<ReceiptSender>,
    _data: TempDir,
}

/// 09:00 on Monday 2 March 2026 in Shanghai, the business time zone of the defaults.
fn start_instant() -> DateTime<Utc> {
    shanghai(2026, 3, 2, 9, 0)
}

fn shanghai(year: i32, month: u32, day: u32, hour: u32, minute: u32) -> DateTime<Utc> {
    chrono_tz::Asia::Shanghai
        .with_ymd_and_hms(year, month, day, hour, minute, 0)
        .single()
        .expect("an unambiguous Shanghai time")
        .with_timezone(&Utc)
}

impl Service {
    async fn start(nats_url: &str, database_url: Option<&str>) -> Result<Self> {
        let data = tempfile::Builder::new()
            .prefix("worklog-service-")
            .tempdir()?;
        let sqlite_url = format!(
            "sqlite://{}?mode=rwc",
            data.path().join("worklog.db").display()
        );
        let database_url = database_url.map_or(sqlite_url, str::to_owned);
        let directory = data.path().join("directory.toml");
        std::fs::write(&directory, DIRECTORY)?;
        let calendar = data.path().join("calendar.toml");
        std::fs::write(&calendar, CALENDAR)?;
        let blob_url = format!("file://{}", data.path().join("blobs").display());

        let mut config = WorklogConfig::defaults();
        config.service.database_url = database_url.clone();
        config.service.blob_store_url = blob_url.clone();
        config.service.directory_file = Some(directory.display().to_string());
        config.service.nats.url = nats_url.to_owned();
        config.service.outbox.poll_interval_ms = 50;
        config.service.shutdown_grace_secs = 2;
        config.worklog.calendar_file = Some(calendar.display().to_string());

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        let clock = ManualClock::new(start_instant());
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(trace_worklog::run(
            config,
            listener,
            clock.clone(),
            shutdown.clone(),
        ));

        let mut service = Self {
            address,
            clock,
            shutdown,
            task: Some(task),
            db: trace_runtime::db::connect(&database_url).await?,
            blobs: BlobStore::open(&blob_url)?,
            _receipts: None,
            _data: data,
        };
        service.wait_until_ready().await?;
        service._receipts = Some(ReceiptSender::start(nats_url, "worklog").await?);
        Ok(service)
    }

    /// Waits until the service accepts calls, which happens after its migrations.
    async fn wait_until_ready(&mut self) -> Result<()> {
        let started = Instant::now();
        while started.elapsed() < DEADLINE {
            if self.task.as_ref().is_some_and(JoinHandle::is_finished) {
                let task = self.task.take().context("service task")?;
                bail!("the service stopped during start: {:?}", task.await?);
            }
            if let Ok(mut client) = self.client().await {
                let probe = PendingForSupervisorRequest::default();
                if client
                    .pending_for_supervisor(as_user(LEAD, probe))
                    .await
                    .is_ok()
                {
                    return Ok(());
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!("the service was not ready after {DEADLINE:?}")
    }

    async fn client(&self) -> Result<Client> {
        let channel = Endpoint::from_shared(format!("http://{}", self.address))?
            .timeout(Duration::from_secs(30))
            .connect()
            .await?;
        Ok(WorklogServiceClient::new(channel)
            .max_decoding_message_size(CLIENT_MESSAGE_BYTES)
            .max_encoding_message_size(CLIENT_MESSAGE_BYTES))
    }

    /// Moves the manual clock forward to `instant`.
    fn set_clock(&self, instant: DateTime<Utc>) {
        let step = instant - self.clock.now();
        assert!(
            step >= chrono::Duration::zero(),
            "the clock only moves forward, to {instant}"
        );
        self.clock.advance(step);
    }

    async fn stop(mut self) -> Result<()> {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            tokio::time::timeout(DEADLINE, task).await???;
        }
        Ok(())
    }

    /// Row counts of the outbox and every table a call may write.
    async fn row_counts(&self) -> Result<[u64; 10]> {
        let db = &self.db;
        Ok([
            // Denial events (entity type `access`) are written after a denied call returns.
            outbox_event::Entity::find()
                .filter(outbox_event::Column::EntityType.ne("access"))
                .count(db)
                .await?,
            table::report::Entity::find().count(db).await?,
            table::report_round::Entity::find().count(db).await?,
            table::report_figure::Entity::find().count(db).await?,
            table::report_comment::Entity::find().count(db).await?,
            table::report_decision::Entity::find().count(db).await?,
            table::communication::Entity::find().count(db).await?,
            table::communication_participant::Entity::find()
                .count(db)
                .await?,
            table::communication_attachment::Entity::find()
                .count(db)
                .await?,
            table::communication_document::Entity::find()
                .count(db)
                .await?,
        ])
    }

    /// Waits until every outbox row has been published to the broker.
    async fn wait_until_published(&self) -> Result<Vec<outbox_event::Model>> {
        let started = Instant::now();
        loop {
            let rows = outbox_event::Entity::find()
                .order_by_asc(outbox_event::Column::Seq)
                .all(&self.db)
                .await?;
            if rows.iter().all(|row| row.published_at.is_some()) {
                return Ok(rows);
            }
            if started.elapsed() > DEADLINE {
                let pending = rows.iter().filter(|row| row.published_at.is_none()).count();
                bail!("{pending} outbox rows still unpublished after {DEADLINE:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

// ---------------------------------------------------------------------------------------
// Requests.

fn as_user<T>(user_id: &str, message: T) -> Request<T> {
    let (_, department, roles) = PEOPLE
        .iter()
        .find(|(id, ..)| *id == user_id)
        .copied()
        .unwrap_or((user_id, "sales", &[role::EMPLOYEE]));
    let mut request = Request::new(message);
    attach_identity(&mut request, user_id, department, roles, None);
    request
}

fn date(year: i32, month: u32, day: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(year, month, day).expect("a calendar date")
}

fn daily_content(summary: &str) -> DailyContent {
    DailyContent {
        work_done: format!("拜訪客戶:{summary}"),
        results: "簽回兩份報價單".to_owned(),
        problems: String::new(),
        solutions: String::new(),
        next_day_plan: "跟進報價".to_owned(),
    }
}

fn daily_request(work_date: NaiveDate) -> SubmitDailyReportRequest {
    SubmitDailyReportRequest {
        work_date: Some(proto_date(work_date)),
        content: Some(daily_content(&work_date.to_string())),
        confidentiality: 0,
    }
}

fn weekly_content(completion: &str) -> WeeklyContent {
    WeeklyContent {
        completion: completion.to_owned(),
        problems: "一位客戶延遲付款".to_owned(),
        causes: "客戶內部審批".to_owned(),
        measures: "每週電話跟進".to_owned(),
        next_week_plan: "完成三月目標".to_owned(),
    }
}

fn weekly_request(week_start: NaiveDate) -> SubmitPeriodicReportRequest {
    SubmitPeriodicReportRequest {
        kind: ReportKind::Weekly as i32,
        week_start: Some(proto_date(week_start)),
        year: 0,
        month: 0,
        content: Some(submit_periodic_report_request::Content::Weekly(
            weekly_content("完成八成"),
        )),
        confidentiality: 0,
    }
}

fn monthly_request(year: i32, month: i32) -> SubmitPeriodicReportRequest {
    let figure = |name: &str, value: &str, unit: &str| Figure {
        name: name.to_owned(),
        value: value.to_owned(),
        unit: unit.to_owned(),
    };
    SubmitPeriodicReportRequest {
        kind: ReportKind::Monthly as i32,
        week_start: None,
        year,
        month,
        content: Some(submit_periodic_report_request::Content::Monthly(
            MonthlyContent {
                completion: "完成季度前兩月目標".to_owned(),
                goal_attainment: "簽約額達成 104%".to_owned(),
                teamwork: "與財務部共同完成回款".to_owned(),
                problems: String::new(),
                improvements: String::new(),
                figures: vec![
                    figure("簽約額", "1250000.50", "CNY"),
                    figure("回款率", "-3.5", "%"),
                ],
                cases: "ACME 貿易續約".to_owned(),
            },
        )),
        confidentiality: 0,
    }
}

fn decide_request(report_id: &str, decision: Decision, opinion: &str) -> DecideReportRequest {
    DecideReportRequest {
        report_id: report_id.to_owned(),
        decision: decision as i32,
        opinion: opinion.to_owned(),
    }
}

fn comment_request(report_id: &str, kind: CommentKind, text: &str) -> SupervisorCommentRequest {
    SupervisorCommentRequest {
        report_id: report_id.to_owned(),
        kind: kind as i32,
        text: text.to_owned(),
    }
}

fn external_communication(
    counterpart: &str,
    occurred_at: DateTime<Utc>,
) -> RecordCommunicationRequest {
    RecordCommunicationRequest {
        scope: CommunicationScope::External as i32,
        channel: CommunicationChannel::FaceToFace as i32,
        occurred_at: Some(prost_types::Timestamp {
            seconds: occurred_at.timestamp(),
            nanos: 0,
        }),
        subject: "年度框架合同續簽".to_owned(),
        participant_ids: vec![CLERK.to_owned(), LEAD.to_owned()],
        external_participants: vec!["王經理".to_owned()],
        counterpart: counterpart.to_owned(),
        content: "討論續簽條款與付款週期".to_owned(),
        outcome: "同意續簽,付款週期 60 天".to_owned(),
        notice: String::new(),
        minute_taker_id: String::new(),
        attachments: Vec::new(),
        linked_documents: Vec::new(),
        confidentiality: Confidentiality::Confidential as i32,
    }
}

fn page(page_size: i32, page_token: &str) -> Option<PageRequest> {
    Some(PageRequest {
        page_size,
        page_token: page_token.to_owned(),
    })
}

fn list_reports_request(
    employee_id: &str,
    kind: ReportKind,
    page_size: i32,
    token: &str,
) -> ListReportsRequest {
    ListReportsRequest {
        employee_id: employee_id.to_owned(),
        period_start: Some(proto_date(date(2025, 12, 1))),
        period_end: Some(proto_date(date(2026, 3, 31))),
        kind: kind as i32,
        page: page(page_size, token),
    }
}

fn report_of<T>(response: Option<T>) -> T {
    response.expect("response carries its record")
}

fn violation_fields(status: &Status) -> Vec<String> {
    status
        .get_error_details()
        .bad_request()
        .map(|details| {
            details
                .field_violations
                .iter()
                .map(|violation| violation.field.clone())
                .collect()
        })
        .unwrap_or_default()
}

fn status_of(daily: &Report) -> DailyStatus {
    daily.daily_status.expect("daily reports carry a status")
}

// ---------------------------------------------------------------------------------------
// Reading the broker.

/// Reads the worklog events from the trace stream with an ordered consumer, and checks that
/// the stream contains exactly `expected` of them.
async fn stream_envelopes(nats_url: &str, expected: usize) -> Result<Vec<Envelope>> {
    let client = async_nats::connect(nats_url).await?;
    let jetstream = async_nats::jetstream::new(client);
    let started = Instant::now();
    let stream = loop {
        match jetstream.get_stream("TRACE").await {
            Ok(stream) => break stream,
            Err(error) if started.elapsed() > DEADLINE => bail!("no TRACE stream: {error}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    };

    let config = async_nats::jetstream::consumer::pull::OrderedConfig {
        filter_subject: "trace.worklog.>".to_owned(),
        deliver_policy: async_nats::jetstream::consumer::DeliverPolicy::All,
        ..Default::default()
    };
    let mut messages = stream.create_consumer(config).await?.messages().await?;
    let mut envelopes = Vec::with_capacity(expected);
    while envelopes.len() < expected {
        let remaining = DEADLINE.saturating_sub(started.elapsed());
        let message = tokio::time::timeout(remaining, messages.next())
            .await
            .with_context(|| format!("only {} of {expected} events arrived", envelopes.len()))?
            .context("the consumer ended")??;
        envelopes.push(Envelope::decode(message.payload.as_ref())?);
    }

    let mut stream = stream;
    let stored = stream.info().await?.state.messages;
    anyhow::ensure!(
        stored == expected as u64,
        "the stream holds {stored} events, expected {expected}"
    );
    Ok(envelopes)
}

// ---------------------------------------------------------------------------------------
// Tests.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycle_on_sqlite() -> Result<()> {
    run_lifecycle(None).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycle_on_postgres() -> Result<()> {
    let Some((admin, name, url)) = create_postgres_database().await? else {
        eprintln!("TRACE_TEST_DATABASE_URL is not set; skipping the PostgreSQL lifecycle test");
        return Ok(());
    };
    let outcome = run_lifecycle(Some(&url)).await;

    drop_postgres_database(&admin, &name).await;
    outcome
}

/// Drives a week of daily reports, a returned and approved weekly report, a monthly report and
/// communications through the service, then checks paging, rejected input and the broker.
async fn run_lifecycle(database_url: Option<&str>) -> Result<()> {
    let nats = Nats::start()?;
    let service = Service::start(&nats.url(), database_url).await?;
    let mut client = service.client().await?;

    let daily = daily_week(&service, &mut client).await?;
    supervisor_comments(&mut client, &daily).await?;
    let weekly_id = weekly_rounds(&service, &mut client).await?;
    let monthly_id = monthly_report(&mut client).await?;
    communications(&service, &mut client).await?;
    report_queries(&mut client).await?;
    rejected_requests_write_nothing(&service, &mut client).await?;

    events_reach_the_broker(&service, &nats, &daily, &weekly_id, &monthly_id).await?;
    service.stop().await
}

/// Ids of the daily reports by work date.
type DailyReports = BTreeMap<NaiveDate, String>;

/// Submits daily reports from Monday 2 to Saturday 7 March 2026, Wednesday's six minutes after
/// the deadline, and one for 31 December 2025, a year without a calendar table.
async fn daily_week(service: &Service, client: &mut Client) -> Result<DailyReports> {
    let mut reports = DailyReports::new();
    for day in 2..=7 {
        let work_date = date(2026, 3, day);
        let minute = if day == 4 { (18, 5) } else { (17, 30) };
        service.set_clock(shanghai(2026, 3, day, minute.0, minute.1));

        let response = client
            .submit_daily_report(as_user(CLERK, daily_request(work_date)))
            .await?
            .into_inner();

        let report = report_of(response.report);
        assert_eq!(report.kind, ReportKind::Daily as i32);
        assert_eq!(report.state, ReportState::Submitted as i32);
        assert_eq!(report.author_id, CLERK);
        assert_eq!(report.supervisor_id, LEAD);
        assert_eq!(report.department, "sales");
        assert_eq!(report.period_start, Some(proto_date(work_date)));
        assert_eq!(report.entity_version, 1);
        assert!(uuid::Uuid::try_parse(&response.event_id).is_ok());
        reports.insert(work_date, report.report_id.clone());

        let status = status_of(&report);
        assert_eq!(
            status.deadline.map(|deadline| deadline.seconds),
            Some(shanghai(2026, 3, day, 18, 0).timestamp())
        );
        assert_eq!(status.late, day == 4, "{work_date}");
        assert_eq!(
            status.late_minutes,
            if day == 4 { 5 } else { 0 },
            "{work_date}"
        );
        let expected_kind = match day {
            6 => DayKind::PublicHoliday,
            7 => DayKind::MakeUpWorkingDay,
            _ => DayKind::WorkingDay,
        };
        assert_eq!(status.day_kind, expected_kind as i32, "{work_date}");
        assert_eq!(status.non_working_day, day == 6, "{work_date}");
        assert!(!status.calendar_missing);
    }

    // A second report for the same date is rejected and names the stored report's state.
    let again = client
        .submit_daily_report(as_user(CLERK, daily_request(date(2026, 3, 2))))
        .await
        .unwrap_err();
    assert_eq!(again.code(), Code::FailedPrecondition);
    assert!(again.message().contains("SUBMITTED"), "{}", again.message());
    assert!(
        again.message().contains(&reports[&date(2026, 3, 2)]),
        "{}",
        again.message()
    );

    // 2025 has no calendar table: the report is accepted and flagged, never guessed.
    let old = client
        .submit_daily_report(as_user(CLERK, daily_request(date(2025, 12, 31))))
        .await?
        .into_inner();
    let old = report_of(old.report);
    let status = status_of(&old);
    assert!(status.calendar_missing);
    assert_eq!(status.day_kind, DayKind::CalendarMissing as i32);
    assert!(!status.non_working_day);
    assert!(status.late);
    reports.insert(date(2025, 12, 31), old.report_id);
    Ok(reports)
}

/// The lead comments twice on Monday's report; nobody else may, and a caller who supervises
/// nobody cannot tell a missing report from someone else's.
async fn supervisor_comments(client: &mut Client, daily: &DailyReports) -> Result<()> {
    let monday = &daily[&date(2026, 3, 2)];

    let written = comment_request(monday, CommentKind::Written, "拜訪紀錄清楚,請附報價單編號");
    let first = client
        .supervisor_comment(as_user(LEAD, written))
        .await?
        .into_inner();
    let oral = comment_request(monday, CommentKind::OralNote, "電話溝通:下週一起拜訪 ACME");
    let second = client
        .supervisor_comment(as_user(LEAD, oral))
        .await?
        .into_inner();

    let report = report_of(second.report);
    assert_eq!(report.state, ReportState::Commented as i32);
    assert_eq!(report.entity_version, 3);
    let kinds: Vec<i32> = report.comments.iter().map(|comment| comment.kind).collect();
    assert_eq!(
        kinds,
        [CommentKind::Written as i32, CommentKind::OralNote as i32]
    );
    assert_eq!(
        report.comments[0].comment_id,
        report_of(first.comment).comment_id
    );
    assert!(
        report
            .comments
            .iter()
            .all(|comment| comment.supervisor_id == LEAD)
    );

    for (caller, report_id) in [
        (OTHER_LEAD, monday.clone()),
        (HEAD, monday.clone()),
        (CLERK, monday.clone()),
        (COLLEAGUE, monday.clone()),
        (COLLEAGUE, uuid::Uuid::now_v7().to_string()),
    ] {
        let request = comment_request(&report_id, CommentKind::Written, "同意");
        let status = client
            .supervisor_comment(as_user(caller, request))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::PermissionDenied, "{caller}");
        assert!(
            status
                .message()
                .contains("only the author's direct supervisor may"),
            "{}",
            status.message()
        );
    }

    let missing = comment_request(
        &uuid::Uuid::now_v7().to_string(),
        CommentKind::Written,
        "同意",
    );
    let status = client
        .supervisor_comment(as_user(LEAD, missing))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    Ok(())
}

/// A weekly report is returned, revised and approved; both rounds and both decisions are kept.
async fn weekly_rounds(service: &Service, client: &mut Client) -> Result<String> {
    service.set_clock(shanghai(2026, 3, 7, 19, 0));
    let submitted = client
        .submit_periodic_report(as_user(CLERK, weekly_request(date(2026, 3, 2))))
        .await?
        .into_inner();
    let weekly = report_of(submitted.report);
    let weekly_id = weekly.report_id.clone();
    assert_eq!(weekly.kind, ReportKind::Weekly as i32);
    assert_eq!(weekly.period_end, Some(proto_date(date(2026, 3, 8))));
    assert_eq!(weekly.round, 1);
    assert!(weekly.daily_status.is_none());

    let returned = decide_request(&weekly_id, Decision::Return, "請補充延遲付款的金額");
    let returned = client
        .decide_report(as_user(LEAD, returned))
        .await?
        .into_inner();
    assert_eq!(
        report_of(returned.report).state,
        ReportState::Returned as i32
    );

    let again = decide_request(&weekly_id, Decision::Approve, "同意");
    let status = client
        .decide_report(as_user(LEAD, again))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert!(
        status.message().contains("RETURNED"),
        "{}",
        status.message()
    );

    let revision = ReviseReportRequest {
        report_id: weekly_id.clone(),
        change_summary: "補充金額 12 萬元".to_owned(),
        content: Some(revise_report_request::Content::Weekly(weekly_content(
            "完成八成,延遲付款 12 萬元",
        ))),
    };
    let status = client
        .revise_report(as_user(LEAD, revision.clone()))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    let revised = client
        .revise_report(as_user(CLERK, revision.clone()))
        .await?
        .into_inner();
    let revised = report_of(revised.report);
    assert_eq!(revised.state, ReportState::Submitted as i32);
    assert_eq!(revised.round, 2);

    let approve = decide_request(&weekly_id, Decision::Approve, "同意,納入績效考核");
    let status = client
        .decide_report(as_user(OTHER_LEAD, approve.clone()))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    let approved = client
        .decide_report(as_user(LEAD, approve))
        .await?
        .into_inner();
    assert_eq!(
        report_of(approved.report).state,
        ReportState::Approved as i32
    );
    assert_eq!(report_of(approved.decision).round, 2);

    let status = client
        .revise_report(as_user(CLERK, revision))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert!(
        status.message().contains("APPROVED"),
        "{}",
        status.message()
    );

    let rounds = ListReportRoundsRequest {
        report_id: weekly_id.clone(),
    };
    let rounds = client
        .list_report_rounds(as_user(HEAD, rounds))
        .await?
        .into_inner();
    assert_eq!(report_of(rounds.report).entity_version, 4);
    let numbers: Vec<u32> = rounds.rounds.iter().map(|round| round.round).collect();
    assert_eq!(numbers, [1, 2]);
    let decisions: Vec<i32> = rounds
        .rounds
        .iter()
        .map(|round| report_of(round.decision.clone()).decision)
        .collect();
    assert_eq!(
        decisions,
        [Decision::Return as i32, Decision::Approve as i32]
    );
    assert_eq!(rounds.rounds[0].change_summary, "");
    assert_eq!(rounds.rounds[1].change_summary, "補充金額 12 萬元");
    let first_content = match rounds.rounds[0].content.clone() {
        Some(report_round::Content::Weekly(content)) => content.completion,
        other => bail!("round 1 has no weekly content: {other:?}"),
    };
    assert_eq!(first_content, "完成八成");
    Ok(weekly_id)
}

/// A monthly report with figures is submitted and approved.
async fn monthly_report(client: &mut Client) -> Result<String> {
    let submitted = client
        .submit_periodic_report(as_user(CLERK, monthly_request(2026, 3)))
        .await?
        .into_inner();
    let monthly = report_of(submitted.report);
    assert_eq!(monthly.period_start, Some(proto_date(date(2026, 3, 1))));
    assert_eq!(monthly.period_end, Some(proto_date(date(2026, 3, 31))));

    let approve = decide_request(&monthly.report_id, Decision::Approve, "目標達成");
    client.decide_report(as_user(LEAD, approve)).await?;

    let rounds = ListReportRoundsRequest {
        report_id: monthly.report_id.clone(),
    };
    let rounds = client
        .list_report_rounds(as_user(CLERK, rounds))
        .await?
        .into_inner();
    let figures = match rounds.rounds[0].content.clone() {
        Some(report_round::Content::Monthly(content)) => content.figures,
        other => bail!("round 1 has no monthly content: {other:?}"),
    };
    let values: Vec<&str> = figures.iter().map(|figure| figure.value.as_str()).collect();
    assert_eq!(values, ["1250000.50", "-3.5"]);
    Ok(monthly.report_id)
}

/// Records an external meeting with an attachment and a linked contract, an external email
/// whose counterpart is written in decomposed form, and an internal phone conference; then
/// finds them by counterpart across width and composition variants, and by period.
async fn communications(service: &Service, client: &mut Client) -> Result<()> {
    let screenshot = "報價單掃描件".repeat(1000).into_bytes();
    let contract_id = uuid::Uuid::now_v7().to_string();
    let mut meeting = external_communication("ＡＣＭＥ 貿易有限公司", shanghai(2026, 3, 5, 14, 0));
    meeting.attachments = vec![Attachment {
        file_name: "quote.png".to_owned(),
        media_type: "image/png".to_owned(),
        content: screenshot.clone(),
    }];
    meeting.linked_documents = vec![LinkedDocument {
        document_id: contract_id.clone(),
        kind: LinkedDocumentKind::Contract as i32,
        responsible_id: LEAD.to_owned(),
        circulation: "送財務部蓋章".to_owned(),
    }];
    let recorded = client
        .record_communication(as_user(CLERK, meeting))
        .await?
        .into_inner();
    let recorded = report_of(recorded.communication);
    assert_eq!(recorded.counterpart, "ＡＣＭＥ 貿易有限公司");
    assert_eq!(recorded.participant_ids, [CLERK, LEAD]);
    let blob = report_of(recorded.attachments[0].content.clone());
    assert_eq!(blob.sha256, sha256_hex(&screenshot));
    assert_eq!(blob.size_bytes, screenshot.len() as u64);
    // The communication is confidential, so its attachment is sealed for its id.
    let sealed = service
        .blobs
        .get_sealed(&recorded.communication_id, &blob.sha256)
        .await?;
    assert_eq!(
        Keyring::development().open(&recorded.communication_id, &sealed)?,
        screenshot
    );
    assert_eq!(recorded.linked_documents[0].document_id, contract_id);

    let mut email = external_communication("Cafe\u{301} Partners", shanghai(2026, 3, 6, 10, 0));
    email.channel = CommunicationChannel::Email as i32;
    client.record_communication(as_user(CLERK, email)).await?;

    let conference = RecordCommunicationRequest {
        scope: CommunicationScope::Internal as i32,
        channel: CommunicationChannel::PhoneConference as i32,
        counterpart: String::new(),
        external_participants: Vec::new(),
        notice: "週五 10:00 電話會議,議題:三月回款".to_owned(),
        minute_taker_id: COLLEAGUE.to_owned(),
        ..external_communication("", shanghai(2026, 3, 6, 10, 0))
    };
    client
        .record_communication(as_user(LEAD, conference))
        .await?;

    let by_counterpart = |counterpart: &str, caller: &str| {
        let request = ListCommunicationsRequest {
            counterpart: counterpart.to_owned(),
            ..Default::default()
        };
        as_user(caller, request)
    };
    let found = client
        .list_communications(by_counterpart("acme", CLERK))
        .await?
        .into_inner();
    assert_eq!(found.communications.len(), 1);
    assert_eq!(
        found.communications[0].communication_id,
        recorded.communication_id
    );
    assert_eq!(found.communications[0].attachments, recorded.attachments);
    assert_eq!(found.communications[0].external_participants, ["王經理"]);
    let found = client
        .list_communications(by_counterpart("CAFÉ", CLERK))
        .await?
        .into_inner();
    assert_eq!(found.communications.len(), 1);
    assert_eq!(found.communications[0].counterpart, "Cafe\u{301} Partners");

    // Visibility: the recorder and participants see them, the auditor sees all, a supervisor
    // of another department sees none, and the minute-taker sees the conference.
    let all = |caller: &str| as_user(caller, ListCommunicationsRequest::default());
    assert_eq!(
        client
            .list_communications(all(AUDITOR))
            .await?
            .into_inner()
            .communications
            .len(),
        3
    );
    assert_eq!(
        client
            .list_communications(all(CLERK))
            .await?
            .into_inner()
            .communications
            .len(),
        3
    );
    assert_eq!(
        client
            .list_communications(all(OTHER_LEAD))
            .await?
            .into_inner()
            .communications
            .len(),
        0
    );
    assert_eq!(
        client
            .list_communications(all(COLLEAGUE))
            .await?
            .into_inner()
            .communications
            .len(),
        1
    );
    assert_eq!(
        client
            .list_communications(all(HEAD))
            .await?
            .into_inner()
            .communications
            .len(),
        3
    );

    // Period filter in the business time zone, and paging one by one in time order.
    let friday = ListCommunicationsRequest {
        period_start: Some(proto_date(date(2026, 3, 6))),
        period_end: Some(proto_date(date(2026, 3, 6))),
        ..Default::default()
    };
    assert_eq!(
        client
            .list_communications(as_user(AUDITOR, friday))
            .await?
            .into_inner()
            .communications
            .len(),
        2
    );
    let mut token = String::new();
    let mut seen = Vec::new();
    loop {
        let request = ListCommunicationsRequest {
            page: page(1, &token),
            ..Default::default()
        };
        let response = client
            .list_communications(as_user(AUDITOR, request))
            .await?
            .into_inner();
        seen.extend(
            response
                .communications
                .iter()
                .map(|row| row.communication_id.clone()),
        );
        if response.next_page_token.is_empty() {
            break;
        }
        token = response.next_page_token;
    }
    assert_eq!(seen.len(), 3);
    assert_eq!(seen[0], recorded.communication_id);
    assert_eq!(seen.iter().collect::<HashSet<_>>().len(), 3);
    Ok(())
}

/// Lists the clerk's reports with paging, checks who may list them, and pages through the
/// lead's pending reports.
async fn report_queries(client: &mut Client) -> Result<()> {
    // 7 daily, 1 weekly and 1 monthly report, in pages of 4.
    let mut token = String::new();
    let mut ids = Vec::new();
    let mut pages = 0;
    loop {
        let request = list_reports_request(CLERK, ReportKind::Unspecified, 4, &token);
        let response = client
            .list_reports(as_user(LEAD, request))
            .await?
            .into_inner();
        pages += 1;
        ids.extend(
            response
                .reports
                .iter()
                .map(|report| report.report_id.clone()),
        );
        if response.next_page_token.is_empty() {
            break;
        }
        token = response.next_page_token;
    }
    assert_eq!(pages, 3);
    assert_eq!(ids.len(), 9);
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), 9);

    let daily_only = list_reports_request(CLERK, ReportKind::Daily, 0, "");
    let daily_only = client
        .list_reports(as_user(CLERK, daily_only))
        .await?
        .into_inner();
    assert_eq!(daily_only.reports.len(), 7);
    let starts: Vec<Option<Date>> = daily_only
        .reports
        .iter()
        .map(|report| report.period_start)
        .collect();
    assert_eq!(starts[0], Some(proto_date(date(2025, 12, 31))));
    assert!(
        daily_only.reports[1].comments.len() == 2,
        "Monday's comments are listed"
    );

    for (caller, allowed) in [
        (CLERK, true),
        (LEAD, true),
        (HEAD, true),
        (AUDITOR, true),
        (OTHER_LEAD, false),
        (COLLEAGUE, false),
    ] {
        let request = list_reports_request(CLERK, ReportKind::Weekly, 0, "");
        let result = client.list_reports(as_user(caller, request)).await;
        match (allowed, result) {
            (true, Ok(response)) => assert_eq!(response.into_inner().reports.len(), 1, "{caller}"),
            (false, Err(status)) => assert_eq!(status.code(), Code::PermissionDenied, "{caller}"),
            (allowed, other) => bail!("{caller}: expected allowed={allowed}, got {other:?}"),
        }
    }

    // Pending for the lead: the daily reports without a comment (all but Monday's).
    let mut token = String::new();
    let mut pending = Vec::new();
    loop {
        let request = PendingForSupervisorRequest {
            page: page(2, &token),
        };
        let response = client
            .pending_for_supervisor(as_user(LEAD, request))
            .await?
            .into_inner();
        pending.extend(
            response
                .reports
                .into_iter()
                .map(|report| (report.kind, report.state)),
        );
        if response.next_page_token.is_empty() {
            break;
        }
        token = response.next_page_token;
    }
    assert_eq!(pending.len(), 6);
    assert!(
        pending
            .iter()
            .all(|entry| *entry == (ReportKind::Daily as i32, ReportState::Submitted as i32))
    );
    let nobody = client
        .pending_for_supervisor(as_user(CLERK, PendingForSupervisorRequest::default()))
        .await?;
    assert!(nobody.into_inner().reports.is_empty());
    Ok(())
}

/// Sends invalid requests; each fails with `INVALID_ARGUMENT` naming the field, and no row or
/// event is written.
async fn rejected_requests_write_nothing(service: &Service, client: &mut Client) -> Result<()> {
    let before = service.row_counts().await?;
    let today = date(2026, 3, 7);
    let now = shanghai(2026, 3, 7, 12, 0);

    let mut empty_work = daily_request(date(2026, 3, 1));
    empty_work.content = Some(DailyContent {
        work_done: String::new(),
        ..daily_content("x")
    });
    let daily_cases: Vec<(&str, SubmitDailyReportRequest)> = vec![
        (
            "work_date",
            SubmitDailyReportRequest {
                work_date: None,
                ..daily_request(today)
            },
        ),
        ("work_date", daily_request(date(2026, 3, 8))),
        (
            "content",
            SubmitDailyReportRequest {
                content: None,
                ..daily_request(today)
            },
        ),
        ("content.work_done", empty_work),
    ];
    for (field, request) in daily_cases {
        let status = client
            .submit_daily_report(as_user(CLERK, request))
            .await
            .unwrap_err();
        assert_eq!(
            (status.code(), violation_fields(&status)),
            (Code::InvalidArgument, vec![field.to_owned()])
        );
    }

    let mut no_figures = monthly_request(2026, 2);
    if let Some(submit_periodic_report_request::Content::Monthly(content)) = &mut no_figures.content
    {
        content.figures.clear();
    }
    let mut wrong_content = weekly_request(date(2026, 2, 23));
    wrong_content.content = monthly_request(2026, 2).content;
    let periodic_cases: Vec<(&str, SubmitPeriodicReportRequest)> = vec![
        ("week_start", weekly_request(date(2026, 2, 24))),
        ("week_start", weekly_request(date(2026, 3, 9))),
        (
            "kind",
            SubmitPeriodicReportRequest {
                kind: ReportKind::Daily as i32,
                ..weekly_request(date(2026, 2, 23))
            },
        ),
        ("month", monthly_request(2026, 13)),
        ("month", monthly_request(2026, 4)),
        ("monthly.figures", no_figures),
        ("weekly", wrong_content),
    ];
    for (field, request) in periodic_cases {
        let status = client
            .submit_periodic_report(as_user(CLERK, request))
            .await
            .unwrap_err();
        assert_eq!(
            (status.code(), violation_fields(&status)),
            (Code::InvalidArgument, vec![field.to_owned()]),
            "{field}"
        );
    }

    let status = client
        .supervisor_comment(as_user(
            LEAD,
            comment_request("not-a-uuid", CommentKind::Written, "x"),
        ))
        .await
        .unwrap_err();
    assert_eq!(violation_fields(&status), ["report_id"]);
    let random = uuid::Uuid::now_v7().to_string();
    let status = client
        .supervisor_comment(as_user(
            LEAD,
            comment_request(&random, CommentKind::Unspecified, "x"),
        ))
        .await
        .unwrap_err();
    assert_eq!(violation_fields(&status), ["kind"]);
    let status = client
        .decide_report(as_user(
            LEAD,
            decide_request(&random, Decision::Approve, ""),
        ))
        .await
        .unwrap_err();
    assert_eq!(violation_fields(&status), ["opinion"]);

    let valid = || external_communication("ACME", now);
    let future = service.clock.now() + chrono::Duration::minutes(1);
    let attachment = |size: usize| Attachment {
        file_name: "a.bin".to_owned(),
        media_type: "application/octet-stream".to_owned(),
        content: vec![7; size],
    };
    let link = LinkedDocument {
        document_id: "contract-7".to_owned(),
        kind: LinkedDocumentKind::Contract as i32,
        responsible_id: LEAD.to_owned(),
        circulation: String::new(),
    };
    let communication_cases: Vec<(&str, RecordCommunicationRequest)> = vec![
        (
            "scope",
            RecordCommunicationRequest {
                scope: 0,
                ..valid()
            },
        ),
        (
            "counterpart",
            RecordCommunicationRequest {
                counterpart: String::new(),
                ..valid()
            },
        ),
        (
            "outcome",
            RecordCommunicationRequest {
                outcome: String::new(),
                ..valid()
            },
        ),
        ("occurred_at", external_communication("ACME", future)),
        (
            "participant_ids[1]",
            RecordCommunicationRequest {
                participant_ids: vec![CLERK.to_owned(), "nobody".to_owned()],
                ..valid()
            },
        ),
        (
            "participant_ids",
            RecordCommunicationRequest {
                participant_ids: Vec::new(),
                external_participants: Vec::new(),
                ..valid()
            },
        ),
        (
            "attachments",
            RecordCommunicationRequest {
                channel: CommunicationChannel::InstantMessage as i32,
                ..valid()
            },
        ),
        (
            "minute_taker_id",
            RecordCommunicationRequest {
                channel: CommunicationChannel::PhoneConference as i32,
                notice: "n".to_owned(),
                ..valid()
            },
        ),
        (
            "attachments",
            RecordCommunicationRequest {
                attachments: (0..11).map(|_| attachment(1)).collect(),
                ..valid()
            },
        ),
        (
            "attachments[0].content",
            RecordCommunicationRequest {
                attachments: vec![attachment(8 * 1024 * 1024 + 1)],
                ..valid()
            },
        ),
        (
            "linked_documents[0].document_id",
            RecordCommunicationRequest {
                linked_documents: vec![link],
                ..valid()
            },
        ),
    ];
    for (field, request) in communication_cases {
        let status = client
            .record_communication(as_user(CLERK, request))
            .await
            .unwrap_err();
        assert_eq!(
            (status.code(), violation_fields(&status)),
            (Code::InvalidArgument, vec![field.to_owned()]),
            "{field}"
        );
    }

    let mut reversed = list_reports_request(CLERK, ReportKind::Unspecified, 0, "");
    reversed.period_end = Some(proto_date(date(2025, 1, 1)));
    let status = client
        .list_reports(as_user(CLERK, reversed))
        .await
        .unwrap_err();
    assert_eq!(violation_fields(&status), ["period_end"]);
    let status = client
        .list_reports(as_user(
            CLERK,
            list_reports_request(CLERK, ReportKind::Unspecified, 501, ""),
        ))
        .await
        .unwrap_err();
    assert_eq!(violation_fields(&status), ["page.page_size"]);
    let status = client
        .list_reports(as_user(
            CLERK,
            list_reports_request(CLERK, ReportKind::Unspecified, 0, "bogus"),
        ))
        .await
        .unwrap_err();
    assert_eq!(violation_fields(&status), ["page.page_token"]);

    assert_eq!(service.row_counts().await?, before);
    Ok(())
}

/// Every outbox row reaches the broker; each entity's events arrive in version order with the
/// expected actions, entity types and subjects.
async fn events_reach_the_broker(
    service: &Service,
    nats: &Nats,
    daily: &DailyReports,
    weekly_id: &str,
    monthly_id: &str,
) -> Result<()> {
    // 7 daily submissions, 2 comments, 4 weekly events, 2 monthly events, 3 communications
    // and 6 reads of them. The communications are CONFIDENTIAL, so each listing that
    // returned one to a participant is its `read` event: two for each of them. Denied calls
    // earlier in the test add access.denied events, which are left out here.
    let published = service.wait_until_published().await?;
    let streamed_all = stream_envelopes(&nats.url(), published.len()).await?;
    let rows: Vec<_> = published
        .into_iter()
        .filter(|row| row.entity_type != "access")
        .collect();
    assert_eq!(rows.len(), 24);
    let envelopes: Vec<Envelope> = streamed_all
        .into_iter()
        .filter(|envelope| envelope.entity_type != "access")
        .collect();

    let stored: HashSet<&str> = rows.iter().map(|row| row.event_id.as_str()).collect();
    let streamed: HashSet<&str> = envelopes
        .iter()
        .map(|envelope| envelope.event_id.as_str())
        .collect();
    assert_eq!(stored, streamed);

    let mut by_entity: BTreeMap<&str, Vec<&Envelope>> = BTreeMap::new();
    for envelope in &envelopes {
        assert_eq!(
            envelope.subject,
            format!("trace.worklog.{}.{}", envelope.entity_type, envelope.action)
        );
        assert_eq!(envelope.source_service, "worklog");
        by_entity
            .entry(envelope.entity_id.as_str())
            .or_default()
            .push(envelope);
    }
    for (entity_id, events) in &by_entity {
        let versions: Vec<u64> = events
            .iter()
            .map(|envelope| envelope.entity_version)
            .collect();
        assert_eq!(
            versions,
            (1..=events.len() as u64).collect::<Vec<_>>(),
            "{entity_id}"
        );
    }

    let actions = |entity_id: &str| -> Vec<(String, String)> {
        by_entity[entity_id]
            .iter()
            .map(|envelope| (envelope.entity_type.clone(), envelope.action.clone()))
            .collect()
    };
    let typed = |entity_type: &str, actions: &[&str]| -> Vec<(String, String)> {
        actions
            .iter()
            .map(|action| (entity_type.to_owned(), (*action).to_owned()))
            .collect()
    };
    assert_eq!(
        actions(&daily[&date(2026, 3, 2)]),
        typed("daily_report", &["submitted", "commented", "commented"])
    );
    assert_eq!(
        actions(&daily[&date(2026, 3, 4)]),
        typed("daily_report", &["submitted"])
    );
    assert_eq!(
        actions(weekly_id),
        typed(
            "periodic_report",
            &["submitted", "returned", "revised", "approved"]
        )
    );
    assert_eq!(
        actions(monthly_id),
        typed("periodic_report", &["submitted", "approved"])
    );
    let communications: Vec<&str> = by_entity
        .iter()
        .filter(|(_, events)| events[0].entity_type == "communication")
        .map(|(entity_id, _)| *entity_id)
        .collect();
    assert_eq!(communications.len(), 3);
    for communication_id in communications {
        assert_eq!(
            actions(communication_id),
            typed("communication", &["recorded", "read", "read"])
        );
        for envelope in &by_entity[communication_id][1..] {
            let payload = trace_runtime::event::open_payload(&Keyring::development(), envelope)?
                .context("payload")?;
            let read = RecordRead::decode(payload.value.as_slice())?;
            assert_eq!(read.method, "ListCommunications", "{communication_id}");
            assert_eq!(read.access_request_id, "", "{communication_id}");
        }
    }

    // Payloads decode to the documented messages.
    let late = by_entity[daily[&date(2026, 3, 4)].as_str()][0];
    let submitted: DailyReportSubmitted = late.payload.clone().context("payload")?.to_msg()?;
    let status = report_of(submitted.status);
    assert!(status.late);
    assert_eq!(status.late_minutes, 5);
    assert_eq!(
        late.actor.as_ref().map(|actor| actor.user_id.as_str()),
        Some(CLERK)
    );
    let returned = by_entity[weekly_id][1];
    let decided: PeriodicReportDecided = returned.payload.clone().context("payload")?.to_msg()?;
    assert_eq!(decided.decision, Decision::Return as i32);
    assert_eq!(decided.round, 1);
    assert_eq!(
        returned.actor.as_ref().map(|actor| actor.user_id.as_str()),
        Some(LEAD)
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_identity_is_unauthenticated() -> Result<()> {
    let nats = Nats::start()?;
    let service = Service::start(&nats.url(), None).await?;
    let mut client = service.client().await?;

    let request = Request::new(daily_request(date(2026, 3, 2)));
    let status = client.submit_daily_report(request).await.unwrap_err();

    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(service.row_counts().await?, [0; 10]);
    service.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_submissions_keep_one_report() -> Result<()> {
    run_concurrent_submissions(None).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_submissions_on_postgres() -> Result<()> {
    let Some((admin, name, url)) = create_postgres_database().await? else {
        eprintln!("TRACE_TEST_DATABASE_URL is not set; skipping the PostgreSQL concurrency test");
        return Ok(());
    };
    let outcome = run_concurrent_submissions(Some(&url)).await;

    drop_postgres_database(&admin, &name).await;
    outcome
}

/// Submits the same daily report four times at once; one call wins and the others fail with
/// the stored report's state, whether they lost on the write lock or on the unique key.
async fn run_concurrent_submissions(database_url: Option<&str>) -> Result<()> {
    let nats = Nats::start()?;
    let service = Service::start(&nats.url(), database_url).await?;
    let client = service.client().await?;

    let calls = (0..4).map(|_| {
        let mut client = client.clone();
        async move {
            client
                .submit_daily_report(as_user(CLERK, daily_request(date(2026, 3, 2))))
                .await
        }
    });
    let outcomes = futures::future::join_all(calls).await;

    let accepted = outcomes.iter().filter(|outcome| outcome.is_ok()).count();
    assert_eq!(accepted, 1);
    for status in outcomes.iter().filter_map(|outcome| outcome.as_ref().err()) {
        assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
        assert!(
            status.message().contains("SUBMITTED"),
            "{}",
            status.message()
        );
    }
    let counts = service.row_counts().await?;
    assert_eq!(counts[0], 1, "one event");
    assert_eq!(counts[1], 1, "one report");
    service.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_need_a_directory_supervisor() -> Result<()> {
    let nats = Nats::start()?;
    let service = Service::start(&nats.url(), None).await?;
    let mut client = service.client().await?;

    let top = client
        .submit_daily_report(as_user(HEAD, daily_request(date(2026, 3, 2))))
        .await
        .unwrap_err();
    let stranger = client
        .submit_daily_report(as_user("visitor", daily_request(date(2026, 3, 2))))
        .await
        .unwrap_err();

    assert_eq!(top.code(), Code::FailedPrecondition);
    assert!(top.message().contains("no supervisor"), "{}", top.message());
    assert_eq!(stranger.code(), Code::PermissionDenied);
    assert!(
        stranger.message().contains("not in the company directory"),
        "{}",
        stranger.message()
    );
    assert_eq!(service.row_counts().await?, [0; 10]);
    service.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_kinds_take_their_own_actions() -> Result<()> {
    let nats = Nats::start()?;
    let service = Service::start(&nats.url(), None).await?;
    let mut client = service.client().await?;
    let daily = client
        .submit_daily_report(as_user(CLERK, daily_request(date(2026, 3, 2))))
        .await?;
    let daily_id = report_of(daily.into_inner().report).report_id;
    let weekly = client
        .submit_periodic_report(as_user(CLERK, weekly_request(date(2026, 2, 23))))
        .await?;
    let weekly_id = report_of(weekly.into_inner().report).report_id;
    let before = service.row_counts().await?;

    let comment = comment_request(&weekly_id, CommentKind::Written, "好");
    let comment = client
        .supervisor_comment(as_user(LEAD, comment))
        .await
        .unwrap_err();
    let decide = decide_request(&daily_id, Decision::Approve, "同意");
    let decide = client
        .decide_report(as_user(LEAD, decide))
        .await
        .unwrap_err();
    let revise_daily = ReviseReportRequest {
        report_id: daily_id.clone(),
        change_summary: "改".to_owned(),
        content: Some(revise_report_request::Content::Weekly(weekly_content("改"))),
    };
    let revise_daily = client
        .revise_report(as_user(CLERK, revise_daily))
        .await
        .unwrap_err();
    let revise_submitted = ReviseReportRequest {
        report_id: weekly_id.clone(),
        change_summary: "改".to_owned(),
        content: Some(revise_report_request::Content::Weekly(weekly_content("改"))),
    };
    let revise_submitted = client
        .revise_report(as_user(CLERK, revise_submitted))
        .await
        .unwrap_err();

    assert_eq!(violation_fields(&comment), ["report_id"]);
    assert_eq!(violation_fields(&decide), ["report_id"]);
    assert_eq!(violation_fields(&revise_daily), ["report_id"]);
    assert_eq!(revise_submitted.code(), Code::FailedPrecondition);
    assert!(
        revise_submitted.message().contains("SUBMITTED"),
        "{}",
        revise_submitted.message()
    );
    assert_eq!(service.row_counts().await?, before);
    service.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confidential_communication_is_sealed_at_rest() -> Result<()> {
    let nats = Nats::start()?;
    let service = Service::start(&nats.url(), None).await?;
    let mut client = service.client().await?;

    let levels = [
        (Confidentiality::Confidential, "marker-e90b 商务谈判"),
        (Confidentiality::Secret, "marker-13fd 绝密报价"),
        (Confidentiality::Internal, "internal-marker-6c25"),
    ];
    let mut recorded = Vec::new();
    // Early on the first day, before the manual clock's start at 09:00.
    for (hour, (level, marker)) in (6..).zip(levels) {
        // A phone conference, the only kind that carries a notice.
        let mut request = RecordCommunicationRequest {
            scope: CommunicationScope::Internal as i32,
            channel: CommunicationChannel::PhoneConference as i32,
            counterpart: String::new(),
            external_participants: Vec::new(),
            minute_taker_id: COLLEAGUE.to_owned(),
            ..external_communication("", shanghai(2026, 3, 2, hour, 0))
        };
        request.confidentiality = level as i32;
        request.content = format!("Content {marker}");
        request.outcome = format!("Outcome {marker}");
        request.notice = format!("Notice {marker}");
        request.attachments = vec![Attachment {
            file_name: "quote.txt".to_owned(),
            media_type: "text/plain".to_owned(),
            content: format!("Attachment {marker}").into_bytes(),
        }];
        let communication = client
            .record_communication(as_user(CLERK, request))
            .await?
            .into_inner()
            .communication;
        recorded.push(report_of(communication).communication_id);
    }

    // The recorder reads the plaintext back through the API.
    let listed = client
        .list_communications(as_user(CLERK, ListCommunicationsRequest::default()))
        .await?
        .into_inner()
        .communications;
    assert_eq!(listed.len(), 3);
    for (communication, (_, marker)) in listed.iter().zip(levels) {
        assert_eq!(communication.content, format!("Content {marker}"));
        assert_eq!(communication.outcome, format!("Outcome {marker}"));
        assert_eq!(communication.notice, format!("Notice {marker}"));
        assert_eq!(communication.subject, "年度框架合同續簽");
    }
    assert_eq!(
        listed
            .iter()
            .map(|c| c.communication_id.clone())
            .collect::<Vec<_>>(),
        recorded
    );
    service.wait_until_published().await?;

    // No database file, blob or broker file contains the plaintext of a confidential or secret
    // communication. The internal one is stored as it is, which shows that the scan reads
    // the database and the blobs.
    let data = service._data.path().to_path_buf();
    for (_, marker) in &levels[..2] {
        assert_eq!(
            files_containing(&data, marker.as_bytes())?,
            Vec::<PathBuf>::new()
        );
        assert_eq!(
            files_containing(nats._store.path(), marker.as_bytes())?,
            Vec::<PathBuf>::new()
        );
    }
    let internal = files_containing(&data, levels[2].1.as_bytes())?;
    assert!(
        internal
            .iter()
            .any(|path| path.to_string_lossy().contains("worklog.db")),
        "{internal:?}"
    );
    assert!(
        internal
            .iter()
            .any(|path| path.starts_with(data.join("blobs"))),
        "{internal:?}"
    );
    service.stop().await
}

// ---------------------------------------------------------------------------------------
// Confidential reports and access approvals.

/// Decodes the payload of the outbox event `event_id` with subject `subject`, opening it
/// with the development key when the record's level sealed it.
async fn event_payload<M: Message + Default>(
    service: &Service,
    event_id: &str,
    subject: &str,
) -> Result<M> {
    let row = outbox_event::Entity::find()
        .filter(outbox_event::Column::EventId.eq(event_id))
        .one(&service.db)
        .await?
        .with_context(|| format!("no outbox row for event {event_id}"))?;
    let envelope = Envelope::decode(row.envelope.as_slice())?;
    assert_eq!(envelope.subject, subject);
    let payload = trace_runtime::event::open_payload(&Keyring::development(), &envelope)?
        .context("payload")?;
    Ok(M::decode(payload.value.as_slice())?)
}

/// Returns the id of the record's newest outbox event.
async fn last_event_id(service: &Service, record_id: &str) -> Result<String> {
    let newest = outbox_event::Entity::find()
        .filter(outbox_event::Column::EntityId.eq(record_id))
        .order_by_desc(outbox_event::Column::Seq)
        .one(&service.db)
        .await?;
    Ok(newest.context("no outbox rows")?.event_id)
}

/// Counts the outbox events of the report or communication `record_id`.
async fn record_events(service: &Service, record_id: &str) -> Result<u64> {
    let count = outbox_event::Entity::find()
        .filter(outbox_event::Column::EntityId.eq(record_id))
        .count(&service.db)
        .await?;
    Ok(count)
}

/// Returns the payload of the record's newest event, which must be a `read` event with
/// `subject`.
async fn last_read(service: &Service, record_id: &str, subject: &str) -> Result<RecordRead> {
    let event_id = last_event_id(service, record_id).await?;
    event_payload(service, &event_id, subject).await
}

/// Subject of a daily report's `read` event.
const DAILY_READ: &str = "trace.worklog.daily_report.read";

fn get_report(report_id: &str) -> GetReportRequest {
    GetReportRequest {
        report_id: report_id.to_owned(),
    }
}

fn request_access(record_id: &str) -> RequestAccessRequest {
    RequestAccessRequest {
        record_id: record_id.to_owned(),
        purpose: "季度績效覆核".to_owned(),
    }
}

fn decide_access(
    request_id: &str,
    approve: bool,
    expires_at: DateTime<Utc>,
) -> DecideAccessRequest {
    DecideAccessRequest {
        access_request_id: request_id.to_owned(),
        approve,
        opinion: "同意查閱".to_owned(),
        expires_at: Some(prost_types::Timestamp {
            seconds: expires_at.timestamp(),
            nanos: 0,
        }),
    }
}

/// Reads `report_id` with GetReport as `caller`, expects a recorded denial, and returns the
/// message and the `read_denied` payload.
async fn report_denied(
    service: &Service,
    client: &mut Client,
    caller: &str,
    report_id: &str,
) -> Result<(String, RecordReadDenied)> {
    let status = client
        .get_report(as_user(caller, get_report(report_id)))
        .await
        .expect_err("the read is denied");
    let (message, event_id) = trace_tests::corpus::recorded_denial(&status, report_id);
    assert!(!event_id.is_empty(), "{message}");
    let payload =
        event_payload(service, &event_id, "trace.worklog.daily_report.read_denied").await?;
    Ok((message, payload))
}

/// Lists the clerk's daily reports of 2 March 2026 as `caller`.
async fn listed_daily(client: &mut Client, caller: &str) -> Result<Report> {
    let request = ListReportsRequest {
        employee_id: CLERK.to_owned(),
        period_start: Some(proto_date(date(2026, 3, 2))),
        period_end: Some(proto_date(date(2026, 3, 2))),
        kind: ReportKind::Daily as i32,
        page: None,
    };
    let mut reports = client
        .list_reports(as_user(caller, request))
        .await?
        .into_inner()
        .reports;
    assert_eq!(reports.len(), 1, "{caller}");
    Ok(reports.remove(0))
}

fn work_done(report: &Report) -> String {
    match &report.content {
        Some(report::Content::Daily(daily)) => daily.work_done.clone(),
        other => panic!("expected daily content, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_approvals_on_sqlite() -> Result<()> {
    run_report_approvals(None).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_approvals_on_postgres() -> Result<()> {
    let Some((admin, name, url)) = create_postgres_database().await? else {
        eprintln!("TRACE_TEST_DATABASE_URL is not set; skipping the PostgreSQL approval test");
        return Ok(());
    };
    let outcome = run_report_approvals(Some(&url)).await;

    drop_postgres_database(&admin, &name).await;
    outcome
}

/// Submits a CONFIDENTIAL daily report, a SECRET weekly report and an INTERNAL daily report,
/// and reads them as the participants, the department head and the auditor before and after
/// access requests and their decisions.
async fn run_report_approvals(database_url: Option<&str>) -> Result<()> {
    let nats = Nats::start()?;
    let service = Service::start(&nats.url(), database_url).await?;
    let mut client = service.client().await?;

    let confidential_marker = "marker-5a1c 客戶底價";
    let secret_marker = "marker-77d0 併購計劃";
    let internal_marker = "internal-marker-3e9b";
    let mut confidential = daily_request(date(2026, 3, 2));
    confidential.confidentiality = Confidentiality::Confidential as i32;
    confidential.content = Some(daily_content(confidential_marker));
    let confidential = report_of(
        client
            .submit_daily_report(as_user(CLERK, confidential))
            .await?
            .into_inner()
            .report,
    );
    let mut secret = weekly_request(date(2026, 2, 23));
    secret.confidentiality = Confidentiality::Secret as i32;
    secret.content = Some(submit_periodic_report_request::Content::Weekly(
        weekly_content(secret_marker),
    ));
    let secret = report_of(
        client
            .submit_periodic_report(as_user(CLERK, secret))
            .await?
            .into_inner()
            .report,
    );
    let mut internal = daily_request(date(2026, 2, 27));
    internal.content = Some(daily_content(internal_marker));
    let internal = report_of(
        client
            .submit_daily_report(as_user(CLERK, internal))
            .await?
            .into_inner()
            .report,
    );
    let comment = comment_request(
        &confidential.report_id,
        CommentKind::Written,
        &format!("Comment {confidential_marker}"),
    );
    client.supervisor_comment(as_user(LEAD, comment)).await?;

    // The level is stored and returned; unspecified is INTERNAL.
    assert_eq!(
        confidential.confidentiality,
        Confidentiality::Confidential as i32
    );
    assert_eq!(secret.confidentiality, Confidentiality::Secret as i32);
    assert_eq!(internal.confidentiality, Confidentiality::Internal as i32);

    // The author and the direct supervisor read the content without a request, and each
    // listing is a `read` event naming no request.
    for participant in [CLERK, LEAD] {
        let events_before = record_events(&service, &confidential.report_id).await?;
        let listed = listed_daily(&mut client, participant).await?;
        assert!(!listed.content_withheld, "{participant}");
        assert!(
            work_done(&listed).contains(confidential_marker),
            "{participant}"
        );
        assert_eq!(listed.comments.len(), 1, "{participant}");
        assert_eq!(
            record_events(&service, &confidential.report_id).await?,
            events_before + 1,
            "{participant}"
        );
        let read = last_read(&service, &confidential.report_id, DAILY_READ).await?;
        assert_eq!(read.method, "ListReports", "{participant}");
        assert_eq!(read.access_request_id, "", "{participant}");
    }

    // GetReport by the author is a `read` event naming no request.
    let events_before = record_events(&service, &confidential.report_id).await?;
    let own = report_of(
        client
            .get_report(as_user(CLERK, get_report(&confidential.report_id)))
            .await?
            .into_inner()
            .report,
    );
    assert!(work_done(&own).contains(confidential_marker));
    assert_eq!(
        record_events(&service, &confidential.report_id).await?,
        events_before + 1
    );
    let read = last_read(&service, &confidential.report_id, DAILY_READ).await?;
    assert_eq!(read.method, "GetReport");
    assert_eq!(read.access_request_id, "");

    // The supervisor's pending list records a read of the SECRET report, which the
    // supervisor takes part in, and none of the INTERNAL report on the same page.
    let secret_events = record_events(&service, &secret.report_id).await?;
    let internal_events = record_events(&service, &internal.report_id).await?;
    let pending = client
        .pending_for_supervisor(as_user(LEAD, PendingForSupervisorRequest::default()))
        .await?
        .into_inner()
        .reports;
    let pending_ids: Vec<&str> = pending
        .iter()
        .map(|report| report.report_id.as_str())
        .collect();
    assert!(
        pending_ids.contains(&secret.report_id.as_str()),
        "{pending_ids:?}"
    );
    assert!(
        pending_ids.contains(&internal.report_id.as_str()),
        "{pending_ids:?}"
    );
    assert_eq!(
        record_events(&service, &secret.report_id).await?,
        secret_events + 1
    );
    assert_eq!(
        record_events(&service, &internal.report_id).await?,
        internal_events
    );
    let read = last_read(
        &service,
        &secret.report_id,
        "trace.worklog.periodic_report.read",
    )
    .await?;
    assert_eq!(read.method, "PendingForSupervisor");
    assert_eq!(read.access_request_id, "");

    // Reads of the INTERNAL report, listed or by id, are not recorded.
    let internal_list = ListReportsRequest {
        employee_id: CLERK.to_owned(),
        period_start: Some(proto_date(date(2026, 2, 27))),
        period_end: Some(proto_date(date(2026, 2, 27))),
        kind: ReportKind::Daily as i32,
        page: None,
    };
    let listed = client
        .list_reports(as_user(CLERK, internal_list))
        .await?
        .into_inner()
        .reports;
    assert_eq!(listed.len(), 1);
    assert!(work_done(&listed[0]).contains(internal_marker));
    client
        .get_report(as_user(CLERK, get_report(&internal.report_id)))
        .await?;
    assert_eq!(
        record_events(&service, &internal.report_id).await?,
        internal_events
    );

    // The head and the auditor list the report with its content withheld, which records
    // nothing.
    for reader in [HEAD, AUDITOR] {
        let events_before = record_events(&service, &confidential.report_id).await?;
        let listed = listed_daily(&mut client, reader).await?;
        assert!(listed.content_withheld, "{reader}");
        assert_eq!(listed.content, None, "{reader}");
        assert!(listed.comments.is_empty(), "{reader}");
        assert_eq!(listed.confidentiality, Confidentiality::Confidential as i32);
        assert_eq!(
            record_events(&service, &confidential.report_id).await?,
            events_before,
            "{reader}"
        );
    }

    // GetReport without a request is denied and recorded, naming no request.
    let (message, denied) =
        report_denied(&service, &mut client, AUDITOR, &confidential.report_id).await?;
    assert_eq!(denied.method, "GetReport");
    assert_eq!(denied.access_request_id, "");
    assert!(message.contains("no approved access request"), "{message}");

    // A caller outside the readers gets one message for an existing and a missing report.
    let missing = uuid::Uuid::now_v7().to_string();
    let existing = client
        .get_report(as_user(OTHER_LEAD, get_report(&confidential.report_id)))
        .await
        .unwrap_err();
    let absent = client
        .get_report(as_user(OTHER_LEAD, get_report(&missing)))
        .await
        .unwrap_err();
    let (existing_message, existing_event) =
        trace_tests::corpus::recorded_denial(&existing, &confidential.report_id);
    let (absent_message, absent_event) = trace_tests::corpus::recorded_denial(&absent, &missing);
    assert_eq!(existing_message, absent_message);
    assert!(!existing_event.is_empty());
    assert!(!absent_event.is_empty());
    assert_eq!(
        last_event_id(&service, &confidential.report_id).await?,
        existing_event
    );

    // ListReportRounds denies such a caller as GetReport does.
    let rounds = |report_id: &str| ListReportRoundsRequest {
        report_id: report_id.to_owned(),
    };
    let existing = client
        .list_report_rounds(as_user(OTHER_LEAD, rounds(&confidential.report_id)))
        .await
        .unwrap_err();
    let absent = client
        .list_report_rounds(as_user(OTHER_LEAD, rounds(&missing)))
        .await
        .unwrap_err();
    let (existing_message, existing_event) =
        trace_tests::corpus::recorded_denial(&existing, &confidential.report_id);
    let (absent_message, absent_event) = trace_tests::corpus::recorded_denial(&absent, &missing);
    assert_eq!(existing_message, absent_message);
    assert!(!absent_event.is_empty());
    assert_eq!(
        last_event_id(&service, &confidential.report_id).await?,
        existing_event
    );
    let denied: RecordReadDenied = event_payload(
        &service,
        &existing_event,
        "trace.worklog.daily_report.read_denied",
    )
    .await?;
    assert_eq!(denied.method, "ListReportRounds");

    // A pending request denies and is named by the denial.
    let pending = client
        .request_access(as_user(HEAD, request_access(&confidential.report_id)))
        .await?
        .into_inner();
    let head_request = pending.access_request.context("access request")?;
    assert_eq!(head_request.state, AccessRequestState::Pending as i32);
    let requested: AccessRequested = event_payload(
        &service,
        &pending.event_id,
        "trace.worklog.daily_report.access_requested",
    )
    .await?;
    assert_eq!(requested.access_request_id, head_request.access_request_id);
    let (message, denied) =
        report_denied(&service, &mut client, HEAD, &confidential.report_id).await?;
    assert_eq!(denied.access_request_id, head_request.access_request_id);
    assert!(message.contains("PENDING"), "{message}");

    // The requester may not decide their own request; the direct supervisor approves it.
    let now = service.clock.now();
    let own = client
        .decide_access(as_user(
            HEAD,
            decide_access(
                &head_request.access_request_id,
                true,
                now + chrono::Duration::days(1),
            ),
        ))
        .await
        .unwrap_err();
    assert_eq!(own.code(), Code::PermissionDenied);
    assert!(
        own.message().contains("their own access request"),
        "{}",
        own.message()
    );
    let approved = client
        .decide_access(as_user(
            LEAD,
            decide_access(
                &head_request.access_request_id,
                true,
                now + chrono::Duration::days(1),
            ),
        ))
        .await?
        .into_inner();
    assert_eq!(
        approved.access_request.context("decided")?.state,
        AccessRequestState::Approved as i32
    );

    // The approved request reads, and the read event names it.
    let read = report_of(
        client
            .get_report(as_user(HEAD, get_report(&confidential.report_id)))
            .await?
            .into_inner()
            .report,
    );
    assert!(!read.content_withheld);
    assert!(work_done(&read).contains(confidential_marker));
    let read_event = last_read(&service, &confidential.report_id, DAILY_READ).await?;
    assert_eq!(read_event.method, "GetReport");
    assert_eq!(read_event.access_request_id, head_request.access_request_id);
    let listed = listed_daily(&mut client, HEAD).await?;
    assert!(work_done(&listed).contains(confidential_marker));
    let list_event = last_read(&service, &confidential.report_id, DAILY_READ).await?;
    assert_eq!(list_event.method, "ListReports");
    assert_eq!(list_event.access_request_id, head_request.access_request_id);

    // A rejected request denies.
    let auditor_request = client
        .request_access(as_user(AUDITOR, request_access(&confidential.report_id)))
        .await?
        .into_inner()
        .access_request
        .context("access request")?;
    client
        .decide_access(as_user(
            LEAD,
            decide_access(&auditor_request.access_request_id, false, now),
        ))
        .await?;
    let (message, denied) =
        report_denied(&service, &mut client, AUDITOR, &confidential.report_id).await?;
    assert_eq!(denied.access_request_id, auditor_request.access_request_id);
    assert!(message.contains("REJECTED"), "{message}");

    // A SECRET report also needs the agreement.
    let secret_request = client
        .request_access(as_user(HEAD, request_access(&secret.report_id)))
        .await?
        .into_inner()
        .access_request
        .context("access request")?;
    client
        .decide_access(as_user(
            LEAD,
            decide_access(
                &secret_request.access_request_id,
                true,
                now + chrono::Duration::days(1),
            ),
        ))
        .await?;
    let status = client
        .get_report(as_user(HEAD, get_report(&secret.report_id)))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    assert!(
        status.message().contains("agreement"),
        "{}",
        status.message()
    );
    let accepted = AcceptAgreementRequest {
        agreement_version: "2026-01".to_owned(),
    };
    client.accept_agreement(as_user(HEAD, accepted)).await?;
    let secret_read = report_of(
        client
            .get_report(as_user(HEAD, get_report(&secret.report_id)))
            .await?
            .into_inner()
            .report,
    );
    match secret_read.content {
        Some(report::Content::Weekly(weekly)) => {
            assert!(weekly.completion.contains(secret_marker));
        }
        other => panic!("expected weekly content, got {other:?}"),
    }

    // The approval ends at its expiry.
    service.set_clock(now + chrono::Duration::days(2));
    let (message, denied) =
        report_denied(&service, &mut client, HEAD, &confidential.report_id).await?;
    assert_eq!(denied.access_request_id, head_request.access_request_id);
    assert!(message.contains("expired"), "{message}");

    // The requests are listed to the department's deciders, oldest first.
    let requests = client
        .list_access_requests(as_user(
            LEAD,
            ListAccessRequestsRequest {
                record_id: confidential.report_id.clone(),
            },
        ))
        .await?
        .into_inner()
        .access_requests;
    let ids: Vec<&str> = requests
        .iter()
        .map(|request| request.access_request_id.as_str())
        .collect();
    assert_eq!(
        ids,
        [
            head_request.access_request_id.as_str(),
            auditor_request.access_request_id.as_str()
        ]
    );
    assert_eq!(requests[0].purpose, "季度績效覆核");

    communication_approvals(&service, &mut client).await?;

    // The text of the CONFIDENTIAL and SECRET reports is sealed at rest. The database scan
    // runs on SQLite only, because there the database is a file of the test. The INTERNAL
    // report's text is stored as it is, which shows that the scan reads the database.
    service.wait_until_published().await?;
    for marker in [confidential_marker, secret_marker] {
        assert_eq!(
            files_containing(nats._store.path(), marker.as_bytes())?,
            Vec::<PathBuf>::new()
        );
        if database_url.is_none() {
            assert_eq!(
                files_containing(service._data.path(), marker.as_bytes())?,
                Vec::<PathBuf>::new()
            );
        }
    }
    if database_url.is_none() {
        let internal_files = files_containing(service._data.path(), internal_marker.as_bytes())?;
        assert!(
            internal_files
                .iter()
                .any(|path| path.to_string_lossy().contains("worklog.db")),
            "{internal_files:?}"
        );
    }
    service.stop().await
}

/// Lists a CONFIDENTIAL communication of the clerk and the lead as the department head before
/// and after an approved access request.
async fn communication_approvals(service: &Service, client: &mut Client) -> Result<()> {
    let mut request = external_communication("華南貿易", service.clock.now());
    request.content = "marker-c0a2 付款條件".to_owned();
    let recorded = report_of(
        client
            .record_communication(as_user(CLERK, request))
            .await?
            .into_inner()
            .communication,
    );
    let lister = client.clone();
    let list = |caller: &str| {
        let mut client = lister.clone();
        let request = ListCommunicationsRequest {
            counterpart: "華南".to_owned(),
            ..Default::default()
        };
        let request = as_user(caller, request);
        async move {
            let mut listed = client
                .list_communications(request)
                .await?
                .into_inner()
                .communications;
            anyhow::ensure!(listed.len() == 1, "{} communications", listed.len());
            Ok::<_, anyhow::Error>(listed.remove(0))
        }
    };

    let communication_read = "trace.worklog.communication.read";
    let events_before = record_events(service, &recorded.communication_id).await?;
    let participant = list(LEAD).await?;
    assert!(!participant.content_withheld);
    assert_eq!(participant.content, "marker-c0a2 付款條件");
    assert_eq!(
        record_events(service, &recorded.communication_id).await?,
        events_before + 1
    );
    let read = last_read(service, &recorded.communication_id, communication_read).await?;
    assert_eq!(read.method, "ListCommunications");
    assert_eq!(read.access_request_id, "");
    assert_eq!(participant.entity_version, recorded.entity_version + 1);
    for reader in [HEAD, AUDITOR] {
        let withheld = list(reader).await?;
        assert!(withheld.content_withheld, "{reader}");
        assert_eq!(withheld.content, "", "{reader}");
        assert_eq!(withheld.outcome, "", "{reader}");
        assert_eq!(withheld.subject, recorded.subject, "{reader}");
    }
    assert_eq!(
        record_events(service, &recorded.communication_id).await?,
        events_before + 1
    );

    let get = GetCommunicationRequest {
        communication_id: recorded.communication_id.clone(),
    };
    let status = client
        .get_communication(as_user(HEAD, get.clone()))
        .await
        .unwrap_err();
    let (message, event_id) =
        trace_tests::corpus::recorded_denial(&status, &recorded.communication_id);
    assert!(message.contains("no approved access request"), "{message}");
    let denied: RecordReadDenied = event_payload(
        service,
        &event_id,
        "trace.worklog.communication.read_denied",
    )
    .await?;
    assert_eq!(denied.method, "GetCommunication");

    let head_request = client
        .request_access(as_user(HEAD, request_access(&recorded.communication_id)))
        .await?
        .into_inner()
        .access_request
        .context("access request")?;
    let expires_at = service.clock.now() + chrono::Duration::days(1);
    client
        .decide_access(as_user(
            LEAD,
            decide_access(&head_request.access_request_id, true, expires_at),
        ))
        .await?;
    let read = list(HEAD).await?;
    assert!(!read.content_withheld);
    assert_eq!(read.content, "marker-c0a2 付款條件");
    let read_event = last_read(service, &recorded.communication_id, communication_read).await?;
    assert_eq!(read_event.method, "ListCommunications");
    assert_eq!(read_event.access_request_id, head_request.access_request_id);
    // The participant's listing, the denial, the request, its approval and this listing.
    assert_eq!(read.entity_version, recorded.entity_version + 5);
    let fetched = report_of(
        client
            .get_communication(as_user(HEAD, get.clone()))
            .await?
            .into_inner()
            .communication,
    );
    assert_eq!(fetched.content, "marker-c0a2 付款條件");
    assert_eq!(fetched.participant_ids, [CLERK, LEAD]);
    let get_event = last_read(service, &recorded.communication_id, communication_read).await?;
    assert_eq!(get_event.method, "GetCommunication");
    assert_eq!(get_event.access_request_id, head_request.access_request_id);

    // A participant's GetCommunication is a `read` event naming no request.
    let events_before = record_events(service, &recorded.communication_id).await?;
    let own = report_of(
        client
            .get_communication(as_user(CLERK, get))
            .await?
            .into_inner()
            .communication,
    );
    assert_eq!(own.content, "marker-c0a2 付款條件");
    assert_eq!(
        record_events(service, &recorded.communication_id).await?,
        events_before + 1
    );
    let own_event = last_read(service, &recorded.communication_id, communication_read).await?;
    assert_eq!(own_event.method, "GetCommunication");
    assert_eq!(own_event.access_request_id, "");
    Ok(())
}
