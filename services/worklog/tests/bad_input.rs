//! Bad-input corpus of the worklog service: every request field that takes text, ids,
//! dates, instants, enums, bytes or lists gets the shared bad values of
//! `trace_tests::corpus`. Each rejected case must return the documented code and field, and
//! leave every table unchanged. Attack-looking text that is legitimate in free text must be
//! accepted and stored byte for byte.
//!
//! One service instance with a private nats-server, a SQLite file and a small directory
//! serves every case.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use chrono::{DateTime, TimeZone, Utc};
use prost_types::Timestamp;
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, PaginatorTrait, QueryFilter};
use tempfile::TempDir;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Status};
use trace_proto::common::v1::{Confidentiality, Date, PageRequest};
use trace_proto::worklog::v1::worklog_service_client::WorklogServiceClient;
use trace_proto::worklog::v1::*;
use trace_runtime::access_approval::{access_request, agreement};
use trace_runtime::clock::ManualClock;
use trace_runtime::context::{attach_identity, role};
use trace_runtime::outbox::outbox_event;
use trace_tests::corpus::{
    ACCEPTED_TEXT, Expected, MIB, bad_dates, bad_enums, bad_record_ids, bad_text, bad_timestamps,
    bad_tokens, check_rejection,
};
use trace_tests::nats::NatsServer;
use trace_worklog::WorklogConfig;
use trace_worklog::entity::{
    communication, communication_attachment, communication_document, communication_participant,
    report, report_comment, report_decision, report_figure, report_round,
};

const CLERK: &str = "zhang.min";
const LEAD: &str = "chen.hua";

const DIRECTORY: &str = r#"
[[departments]]
id = "sales"
name = "Sales"
head = "li.na"

[[employees]]
id = "li.na"
name = "Li Na"
department = "sales"
position = "Head"
roles = ["department_head"]

[[employees]]
id = "chen.hua"
name = "Chen Hua"
department = "sales"
position = "Lead"
roles = ["supervisor"]
supervisor = "li.na"

[[employees]]
id = "zhang.min"
name = "Zhang Min"
department = "sales"
position = "Clerk"
roles = ["employee"]
supervisor = "chen.hua"
"#;

/// Maximum time to wait for the service to start.
const DEADLINE: Duration = Duration::from_secs(60);

type Client = WorklogServiceClient<Channel>;
type Call = Pin<Box<dyn Future<Output = Result<(), Status>> + Send>>;

/// 09:00 on Monday 2 March 2026 in Shanghai.
fn start_instant() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 1, 0, 0).unwrap()
}

/// The worklog service running in this process on a SQLite file.
struct Service {
    address: SocketAddr,
    shutdown: CancellationToken,
    task: Option<JoinHandle<Result<()>>>,
    db: DatabaseConnection,
    _data: TempDir,
}

impl Service {
    async fn start(nats_url: &str) -> Result<Self> {
        let data = tempfile::Builder::new().prefix("worklog-bad-").tempdir()?;
        let database_url = format!(
            "sqlite://{}?mode=rwc",
            data.path().join("worklog.db").display()
        );
        let directory = data.path().join("directory.toml");
        std::fs::write(&directory, DIRECTORY)?;

        let mut config = WorklogConfig::defaults();
        config.service.database_url = database_url.clone();
        config.service.blob_store_url = format!("file://{}", data.path().join("blobs").display());
        config.service.directory_file = Some(directory.display().to_string());
        config.service.nats.url = nats_url.to_owned();
        config.service.outbox.poll_interval_ms = 50;
        config.service.shutdown_grace_secs = 2;

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        let clock = ManualClock::new(start_instant());
        let shutdown = CancellationToken::new();
        let run = trace_worklog::run(config, listener, clock, shutdown.clone());
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

    /// Row counts of the outbox and of every table. A rejected call must leave all of them
    /// unchanged. Denial events (entity type `access`) are left out, because the denial
    /// recorder writes them after the call returns.
    async fn snapshot(&self) -> Result<Vec<u64>> {
        let db = &self.db;
        Ok(vec![
            outbox_event::Entity::find()
                .filter(outbox_event::Column::EntityType.ne("access"))
                .count(db)
                .await?,
            report::Entity::find().count(db).await?,
            report_round::Entity::find().count(db).await?,
            report_figure::Entity::find().count(db).await?,
            report_comment::Entity::find().count(db).await?,
            report_decision::Entity::find().count(db).await?,
            communication::Entity::find().count(db).await?,
            communication_participant::Entity::find().count(db).await?,
            communication_attachment::Entity::find().count(db).await?,
            communication_document::Entity::find().count(db).await?,
            access_request::Entity::find().count(db).await?,
            agreement::Entity::find().count(db).await?,
        ])
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
    Ok(WorklogServiceClient::new(channel)
        .max_decoding_message_size(16 * MIB)
        .max_encoding_message_size(16 * MIB))
}

async fn wait_until_ready(address: SocketAddr, task: &mut JoinHandle<Result<()>>) -> Result<()> {
    let started = Instant::now();
    // A read that records no event, so probing leaves the outbox as it was.
    let probe = PendingForSupervisorRequest { page: None };
    while started.elapsed() < DEADLINE {
        if task.is_finished() {
            bail!("the service stopped during start: {:?}", task.await?);
        }
        if let Ok(mut client) = connect(address).await
            && client
                .pending_for_supervisor(as_user(LEAD, probe.clone()))
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
    let roles: &[&str] = if user_id == LEAD {
        &[role::SUPERVISOR]
    } else {
        &[role::EMPLOYEE]
    };
    let mut request = Request::new(message);
    attach_identity(&mut request, user_id, "sales", roles, None);
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

fn daily_content() -> DailyContent {
    DailyContent {
        work_done: "Visited two clients.".to_owned(),
        results: "One order.".to_owned(),
        problems: String::new(),
        solutions: String::new(),
        next_day_plan: "Follow up.".to_owned(),
    }
}

fn weekly_content() -> WeeklyContent {
    WeeklyContent {
        completion: "Done".to_owned(),
        problems: String::new(),
        causes: String::new(),
        measures: String::new(),
        next_week_plan: "More".to_owned(),
    }
}

fn monthly_content() -> MonthlyContent {
    MonthlyContent {
        completion: "Done".to_owned(),
        goal_attainment: "Met".to_owned(),
        teamwork: "Good".to_owned(),
        problems: String::new(),
        improvements: String::new(),
        figures: vec![Figure {
            name: "Orders".to_owned(),
            value: "12".to_owned(),
            unit: String::new(),
        }],
        cases: "Client A".to_owned(),
    }
}

/// Builds a valid internal e-mail exchange of the clerk with the lead, an hour ago.
fn communication_request() -> RecordCommunicationRequest {
    RecordCommunicationRequest {
        scope: CommunicationScope::Internal as i32,
        channel: CommunicationChannel::Email as i32,
        occurred_at: Some(Timestamp {
            seconds: start_instant().timestamp() - 3600,
            nanos: 0,
        }),
        subject: "Prices".to_owned(),
        participant_ids: vec![CLERK.to_owned(), LEAD.to_owned()],
        external_participants: Vec::new(),
        counterpart: String::new(),
        content: "Agreed the price list.".to_owned(),
        outcome: String::new(),
        notice: String::new(),
        minute_taker_id: String::new(),
        attachments: Vec::new(),
        linked_documents: Vec::new(),
        confidentiality: Confidentiality::Internal as i32,
    }
}

fn attachment(file_name: &str, media_type: &str, content: &[u8]) -> Attachment {
    Attachment {
        file_name: file_name.to_owned(),
        media_type: media_type.to_owned(),
        content: content.to_vec(),
    }
}

/// Builds every rejected case of the corpus. `daily` is a submitted daily report and
/// `weekly` a submitted weekly report, both by the clerk.
#[allow(clippy::too_many_lines)]
fn rejected_cases(client: &Client, daily: &str, weekly: &str) -> Vec<(String, Expected, Call)> {
    let mut cases: Vec<(String, Expected, Call)> = Vec::new();
    let mut add = |label: String, expected: Expected, call: Call| {
        cases.push((label, expected, call));
    };
    let unknown = uuid::Uuid::now_v7().to_string();

    // SubmitDailyReport.
    let submit_daily = |change: &dyn Fn(&mut SubmitDailyReportRequest)| {
        let mut request = SubmitDailyReportRequest {
            work_date: date(2026, 2, 27),
            content: Some(daily_content()),
            confidentiality: 0,
        };
        change(&mut request);
        call!(client, submit_daily_report, CLERK, request)
    };
    let work_dates = bad_dates()
        .into_iter()
        .map(|(label, value)| (label, Some(value)))
        .chain([
            ("missing".to_owned(), None),
            ("tomorrow".to_owned(), date(2026, 3, 3)),
        ]);
    for (label, value) in work_dates {
        let call = submit_daily(&|r| r.work_date = value);
        add(
            format!("work_date {label}"),
            Expected::Invalid("work_date"),
            call,
        );
    }
    let call = submit_daily(&|r| r.content = None);
    add(
        "daily content missing".to_owned(),
        Expected::Invalid("content"),
        call,
    );
    type DailySetter = fn(&mut DailyContent, String);
    let daily_fields: [(&str, usize, DailySetter); 5] = [
        ("content.work_done", 1, |c, v| c.work_done = v),
        ("content.results", 1, |c, v| c.results = v),
        ("content.problems", 0, |c, v| c.problems = v),
        ("content.solutions", 0, |c, v| c.solutions = v),
        ("content.next_day_plan", 1, |c, v| c.next_day_plan = v),
    ];
    for (field, min, set) in daily_fields {
        for (label, value) in bad_text(min, 4000, false) {
            let mut content = daily_content();
            set(&mut content, value);
            let call = submit_daily(&|r| r.content = Some(content.clone()));
            add(format!("{field} {label}"), Expected::Invalid(field), call);
        }
    }

    // SupervisorComment.
    let comment = |report_id: &str, kind: i32, text: &str| {
        let request = SupervisorCommentRequest {
            report_id: report_id.to_owned(),
            kind,
            text: text.to_owned(),
        };
        call!(client, supervisor_comment, LEAD, request)
    };
    let written = CommentKind::Written as i32;
    for (label, value) in bad_record_ids() {
        let call = comment(&value, written, "ok");
        add(
            format!("comment report_id {label}"),
            Expected::Invalid("report_id"),
            call,
        );
        let rounds = ListReportRoundsRequest {
            report_id: value.clone(),
        };
        let call = call!(client, list_report_rounds, CLERK, rounds);
        add(
            format!("rounds report_id {label}"),
            Expected::Invalid("report_id"),
            call,
        );
    }
    let call = comment(&unknown, written, "ok");
    add(
        "comment unknown report".to_owned(),
        Expected::NotFound("report"),
        call,
    );
    for (label, value) in bad_enums().into_iter().chain([("0".to_owned(), 0)]) {
        let call = comment(daily, value, "ok");
        add(
            format!("comment kind {label}"),
            Expected::Invalid("kind"),
            call,
        );
    }
    for (label, value) in bad_text(1, 4000, false) {
        let call = comment(daily, written, &value);
        add(
            format!("comment text {label}"),
            Expected::Invalid("text"),
            call,
        );
    }

    // SubmitPeriodicReport.
    let submit_weekly = |change: &dyn Fn(&mut SubmitPeriodicReportRequest)| {
        let mut request = SubmitPeriodicReportRequest {
            kind: ReportKind::Weekly as i32,
            week_start: date(2026, 2, 23),
            year: 0,
            month: 0,
            content: Some(submit_periodic_report_request::Content::Weekly(
                weekly_content(),
            )),
            confidentiality: 0,
        };
        change(&mut request);
        call!(client, submit_periodic_report, CLERK, request)
    };
    let submit_monthly = |change: &dyn Fn(&mut SubmitPeriodicReportRequest)| {
        let mut request = SubmitPeriodicReportRequest {
            kind: ReportKind::Monthly as i32,
            week_start: None,
            year: 2026,
            month: 2,
            content: Some(submit_periodic_report_request::Content::Monthly(
                monthly_content(),
            )),
            confidentiality: 0,
        };
        change(&mut request);
        call!(client, submit_periodic_report, CLERK, request)
    };
    let kinds = bad_enums().into_iter().chain([
        ("0".to_owned(), 0),
        ("DAILY".to_owned(), ReportKind::Daily as i32),
    ]);
    for (label, value) in kinds {
        let call = submit_weekly(&|r| r.kind = value);
        add(
            format!("periodic kind {label}"),
            Expected::Invalid("kind"),
            call,
        );
    }
    let week_starts = bad_dates()
        .into_iter()
        .map(|(label, value)| (label, Some(value)))
        .chain([
            ("missing".to_owned(), None),
            ("a Tuesday".to_owned(), date(2026, 2, 24)),
            ("next week".to_owned(), date(2026, 3, 9)),
        ]);
    for (label, value) in week_starts {
        let call = submit_weekly(&|r| r.week_start = value);
        add(
            format!("week_start {label}"),
            Expected::Invalid("week_start"),
            call,
        );
    }
    for year in [0, 1, 1969, 10_000, -1, i32::MAX] {
        let call = submit_monthly(&|r| r.year = year);
        add(
            format!("monthly year {year}"),
            Expected::Invalid("year"),
            call,
        );
    }
    for month in [0, 13, -1, i32::MIN] {
        let call = submit_monthly(&|r| r.month = month);
        add(
            format!("monthly month {month}"),
            Expected::Invalid("month"),
            call,
        );
    }
    let call = submit_monthly(&|r| r.month = 4);
    add(
        "monthly month not started".to_owned(),
        Expected::Invalid("month"),
        call,
    );
    let call = submit_weekly(&|r| r.content = None);
    add(
        "weekly content missing".to_owned(),
        Expected::Invalid("weekly"),
        call,
    );
    type WeeklySetter = fn(&mut WeeklyContent, String);
    let weekly_fields: [(&str, usize, WeeklySetter); 3] = [
        ("weekly.completion", 1, |c, v| c.completion = v),
        ("weekly.problems", 0, |c, v| c.problems = v),
        ("weekly.next_week_plan", 1, |c, v| c.next_week_plan = v),
    ];
    for (field, min, set) in weekly_fields {
        for (label, value) in bad_text(min, 4000, false) {
            let mut content = weekly_content();
            set(&mut content, value);
            let content = submit_periodic_report_request::Content::Weekly(content);
            let call = submit_weekly(&|r| r.content = Some(content.clone()));
            add(format!("{field} {label}"), Expected::Invalid(field), call);
        }
    }
    type MonthlySetter = fn(&mut MonthlyContent, String);
    let monthly_fields: [(&str, usize, MonthlySetter); 4] = [
        ("monthly.goal_attainment", 1, |c, v| c.goal_attainment = v),
        ("monthly.teamwork", 1, |c, v| c.teamwork = v),
        ("monthly.improvements", 0, |c, v| c.improvements = v),
        ("monthly.cases", 1, |c, v| c.cases = v),
    ];
    for (field, min, set) in monthly_fields {
        for (label, value) in bad_text(min, 4000, false) {
            let mut content = monthly_content();
            set(&mut content, value);
            let content = submit_periodic_report_request::Content::Monthly(content);
            let call = submit_monthly(&|r| r.content = Some(content.clone()));
            add(format!("{field} {label}"), Expected::Invalid(field), call);
        }
    }
    let figure = |name: &str, value: &str, unit: &str| Figure {
        name: name.to_owned(),
        value: value.to_owned(),
        unit: unit.to_owned(),
    };
    for count in [0, 51, 10_000] {
        let mut content = monthly_content();
        content.figures = vec![figure("x", "1", ""); count];
        let content = submit_periodic_report_request::Content::Monthly(content);
        let call = submit_monthly(&|r| r.content = Some(content.clone()));
        add(
            format!("{count} figures"),
            Expected::Invalid("monthly.figures"),
            call,
        );
    }
    let mut figure_cases: Vec<(String, Figure, &str)> = Vec::new();
    for (label, value) in bad_text(1, 100, true) {
        let field = "monthly.figures[0].name";
        figure_cases.push((
            format!("figure name {label}"),
            figure(&value, "1", ""),
            field,
        ));
    }
    for (label, value) in bad_text(0, 20, true) {
        let field = "monthly.figures[0].unit";
        figure_cases.push((
            format!("figure unit {label}"),
            figure("x", "1", &value),
            field,
        ));
    }
    let values = [
        "",
        "1e5",
        "NaN",
        "0x10",
        "1.",
        ".5",
        "1,5",
        "'; DROP TABLE x; --",
    ]
    .map(str::to_owned)
    .into_iter()
    .chain(["9".repeat(19), "1.1234567".to_owned(), "9".repeat(MIB)]);
    for value in values {
        let field = "monthly.figures[0].value";
        let label = format!(
            "figure value {:?}",
            value.chars().take(20).collect::<String>()
        );
        figure_cases.push((label, figure("x", &value, ""), field));
    }
    for (label, value, field) in figure_cases {
        let mut content = monthly_content();
        content.figures = vec![value];
        let content = submit_periodic_report_request::Content::Monthly(content);
        let call = submit_monthly(&|r| r.content = Some(content.clone()));
        add(label, Expected::Invalid(field), call);
    }

    // DecideReport and ReviseReport.
    let decide = |report_id: &str, decision: i32, opinion: &str| {
        let request = DecideReportRequest {
            report_id: report_id.to_owned(),
            decision,
            opinion: opinion.to_owned(),
        };
        call!(client, decide_report, LEAD, request)
    };
    let approve = Decision::Approve as i32;
    for (label, value) in bad_record_ids() {
        let call = decide(&value, approve, "ok");
        add(
            format!("decide report_id {label}"),
            Expected::Invalid("report_id"),
            call,
        );
    }
    for (label, value) in bad_enums().into_iter().chain([("0".to_owned(), 0)]) {
        let call = decide(weekly, value, "ok");
        add(
            format!("decision {label}"),
            Expected::Invalid("decision"),
            call,
        );
    }
    for (label, value) in bad_text(1, 4000, false) {
        let call = decide(weekly, approve, &value);
        add(
            format!("decide opinion {label}"),
            Expected::Invalid("opinion"),
            call,
        );
    }
    let revise = |report_id: &str, summary: &str| {
        let request = ReviseReportRequest {
            report_id: report_id.to_owned(),
            change_summary: summary.to_owned(),
            content: Some(revise_report_request::Content::Weekly(weekly_content())),
        };
        call!(client, revise_report, CLERK, request)
    };
    for (label, value) in bad_record_ids() {
        let call = revise(&value, "fixed");
        add(
            format!("revise report_id {label}"),
            Expected::Invalid("report_id"),
            call,
        );
    }
    for (label, value) in bad_text(1, 2000, false) {
        let call = revise(weekly, &value);
        add(
            format!("revise change_summary {label}"),
            Expected::Invalid("change_summary"),
            call,
        );
    }

    // RecordCommunication.
    let record = |change: &dyn Fn(&mut RecordCommunicationRequest)| {
        let mut request = communication_request();
        change(&mut request);
        call!(client, record_communication, CLERK, request)
    };
    for (label, value) in bad_enums().into_iter().chain([("0".to_owned(), 0)]) {
        let call = record(&|r| r.scope = value);
        add(format!("scope {label}"), Expected::Invalid("scope"), call);
        let call = record(&|r| r.channel = value);
        add(
            format!("channel {label}"),
            Expected::Invalid("channel"),
            call,
        );
        let call = record(&|r| r.confidentiality = value);
        add(
            format!("confidentiality {label}"),
            Expected::Invalid("confidentiality"),
            call,
        );
    }
    let occurred = bad_timestamps()
        .into_iter()
        .map(|(label, value)| (label, Some(value)))
        .chain([
            ("missing".to_owned(), None),
            (
                "1969-12-31".to_owned(),
                Some(Timestamp {
                    seconds: -1,
                    nanos: 0,
                }),
            ),
            (
                "in an hour".to_owned(),
                Some(Timestamp {
                    seconds: start_instant().timestamp() + 3600,
                    nanos: 0,
                }),
            ),
        ]);
    for (label, value) in occurred {
        let call = record(&|r| r.occurred_at = value);
        add(
            format!("occurred_at {label}"),
            Expected::Invalid("occurred_at"),
            call,
        );
    }
    for (label, value) in bad_text(1, 200, true) {
        let call = record(&|r| r.subject = value.clone());
        add(
            format!("subject {label}"),
            Expected::Invalid("subject"),
            call,
        );
    }
    for (label, value) in bad_text(1, 8000, false) {
        let call = record(&|r| r.content = value.clone());
        add(
            format!("communication content {label}"),
            Expected::Invalid("content"),
            call,
        );
    }
    let participants = bad_tokens(64)
        .into_iter()
        .chain([("not in the directory".to_owned(), "nobody".to_owned())])
        .chain([("listed twice".to_owned(), CLERK.to_owned())]);
    for (label, value) in participants {
        let call = record(&|r| r.participant_ids.push(value.clone()));
        let field = "participant_ids[2]";
        add(
            format!("participant {label}"),
            Expected::Invalid(field),
            call,
        );
    }
    for count in [101, 10_000] {
        let ids: Vec<String> = (0..count).map(|i| format!("u{i}")).collect();
        let call = record(&|r| r.participant_ids = ids.clone());
        add(
            format!("{count} participants"),
            Expected::Invalid("participant_ids"),
            call,
        );
        let names: Vec<String> = (0..count).map(|i| format!("Guest {i}")).collect();
        let call = record(&|r| r.external_participants = names.clone());
        let field = "external_participants";
        add(
            format!("{count} external participants"),
            Expected::Invalid(field),
            call,
        );
    }
    let call = record(&|r| r.participant_ids.clear());
    add(
        "no participants".to_owned(),
        Expected::Invalid("participant_ids"),
        call,
    );
    for (label, value) in bad_text(1, 100, true) {
        let call = record(&|r| r.external_participants = vec![value.clone()]);
        let field = "external_participants[0]";
        add(
            format!("external participant {label}"),
            Expected::Invalid(field),
            call,
        );
    }
    for (label, value) in bad_text(0, 200, true) {
        let call = record(&|r| {
            r.scope = CommunicationScope::External as i32;
            r.counterpart = value.clone();
            r.outcome = "Agreed".to_owned();
        });
        add(
            format!("counterpart {label}"),
            Expected::Invalid("counterpart"),
            call,
        );
    }
    let call = record(&|r| r.counterpart = "ACME".to_owned());
    add(
        "counterpart of an internal exchange".to_owned(),
        Expected::Invalid("counterpart"),
        call,
    );
    for (label, value) in bad_text(0, 4000, false) {
        let call = record(&|r| r.outcome = value.clone());
        add(
            format!("outcome {label}"),
            Expected::Invalid("outcome"),
            call,
        );
    }
    for (label, value) in bad_text(0, 2000, false) {
        let call = record(&|r| {
            r.channel = CommunicationChannel::PhoneConference as i32;
            r.notice = value.clone();
            r.outcome = "Agreed".to_owned();
            r.minute_taker_id = LEAD.to_owned();
        });
        add(format!("notice {label}"), Expected::Invalid("notice"), call);
    }
    for (label, value) in bad_tokens(64).into_iter().filter(|(_, v)| !v.is_empty()) {
        let call = record(&|r| {
            r.channel = CommunicationChannel::PhoneConference as i32;
            r.notice = "Call at 10".to_owned();
            r.outcome = "Agreed".to_owned();
            r.minute_taker_id = value.clone();
        });
        add(
            format!("minute_taker_id {label}"),
            Expected::Invalid("minute_taker_id"),
            call,
        );
    }
    for count in [11, 1000] {
        let files = vec![attachment("a.txt", "text/plain", b"x"); count];
        let call = record(&|r| r.attachments = files.clone());
        add(
            format!("{count} attachments"),
            Expected::Invalid("attachments"),
            call,
        );
    }
    for (label, value) in bad_text(1, 255, true) {
        let call = record(&|r| r.attachments = vec![attachment(&value, "text/plain", b"x")]);
        let field = "attachments[0].file_name";
        add(format!("file_name {label}"), Expected::Invalid(field), call);
    }
    let media_types = bad_text(1, 255, true).into_iter().chain(
        ["text", "'; DROP TABLE x; --", "../../etc/passwd"]
            .map(|value| (format!("{value:?}"), value.to_owned())),
    );
    for (label, value) in media_types {
        let call = record(&|r| r.attachments = vec![attachment("a.txt", &value, b"x")]);
        let field = "attachments[0].media_type";
        add(
            format!("attachment media_type {label}"),
            Expected::Invalid(field),
            call,
        );
    }
    let contents = [
        ("empty", Vec::new()),
        ("lone continuation byte", b"abc\x80".to_vec()),
        ("GBK bytes", vec![0xd6, 0xd0, 0xce, 0xc4]),
    ];
    for (label, bytes) in contents {
        let call = record(&|r| r.attachments = vec![attachment("a.txt", "text/plain", &bytes)]);
        let field = "attachments[0].content";
        add(
            format!("attachment content {label}"),
            Expected::Invalid(field),
            call,
        );
    }
    let huge = vec![b'x'; 8 * MIB + 1];
    let call =
        record(&|r| r.attachments = vec![attachment("a.bin", "application/octet-stream", &huge)]);
    let field = "attachments[0].content";
    add(
        "attachment content over 8 MiB".to_owned(),
        Expected::Invalid(field),
        call,
    );
    let linked =
        |document_id: &str, kind: i32, responsible: &str, circulation: &str| LinkedDocument {
            document_id: document_id.to_owned(),
            kind,
            responsible_id: responsible.to_owned(),
            circulation: circulation.to_owned(),
        };
    let contract = LinkedDocumentKind::Contract as i32;
    for (label, value) in bad_record_ids() {
        let document = linked(&value, contract, LEAD, "");
        let call = record(&|r| r.linked_documents = vec![document.clone()]);
        let field = "linked_documents[0].document_id";
        add(
            format!("linked document_id {label}"),
            Expected::Invalid(field),
            call,
        );
    }
    for (label, value) in bad_enums().into_iter().chain([("0".to_owned(), 0)]) {
        let document = linked(&unknown, value, LEAD, "");
        let call = record(&|r| r.linked_documents = vec![document.clone()]);
        let field = "linked_documents[0].kind";
        add(
            format!("linked kind {label}"),
            Expected::Invalid(field),
            call,
        );
    }
    for (label, value) in bad_tokens(64) {
        let document = linked(&unknown, contract, &value, "");
        let call = record(&|r| r.linked_documents = vec![document.clone()]);
        let field = "linked_documents[0].responsible_id";
        add(
            format!("linked responsible_id {label}"),
            Expected::Invalid(field),
            call,
        );
    }
    for (label, value) in bad_text(0, 1000, false) {
        let document = linked(&unknown, contract, LEAD, &value);
        let call = record(&|r| r.linked_documents = vec![document.clone()]);
        let field = "linked_documents[0].circulation";
        add(
            format!("linked circulation {label}"),
            Expected::Invalid(field),
            call,
        );
    }
    for count in [21, 10_000] {
        let documents: Vec<LinkedDocument> = (0..count)
            .map(|_| linked(&uuid::Uuid::now_v7().to_string(), contract, LEAD, ""))
            .collect();
        let call = record(&|r| r.linked_documents = documents.clone());
        add(
            format!("{count} linked documents"),
            Expected::Invalid("linked_documents"),
            call,
        );
    }

    // ListReports, PendingForSupervisor, ListCommunications.
    let list_reports = |change: &dyn Fn(&mut ListReportsRequest)| {
        let mut request = ListReportsRequest {
            employee_id: CLERK.to_owned(),
            period_start: date(2026, 1, 1),
            period_end: date(2026, 12, 31),
            kind: 0,
            page: None,
        };
        change(&mut request);
        call!(client, list_reports, CLERK, request)
    };
    for (label, value) in bad_tokens(64) {
        let call = list_reports(&|r| r.employee_id = value.clone());
        add(
            format!("employee_id {label}"),
            Expected::Invalid("employee_id"),
            call,
        );
    }
    let periods = bad_dates()
        .into_iter()
        .map(|(label, value)| (label, Some(value)))
        .chain([("missing".to_owned(), None)]);
    for (label, value) in periods {
        let call = list_reports(&|r| r.period_start = value);
        add(
            format!("reports period_start {label}"),
            Expected::Invalid("period_start"),
            call,
        );
        let call = list_reports(&|r| r.period_end = value);
        add(
            format!("reports period_end {label}"),
            Expected::Invalid("period_end"),
            call,
        );
    }
    let call = list_reports(&|r| r.period_end = date(2025, 12, 31));
    add(
        "reports period_end before start".to_owned(),
        Expected::Invalid("period_end"),
        call,
    );
    for (label, value) in bad_enums() {
        let call = list_reports(&|r| r.kind = value);
        add(
            format!("reports kind {label}"),
            Expected::Invalid("kind"),
            call,
        );
    }
    let list_communications = |change: &dyn Fn(&mut ListCommunicationsRequest)| {
        let mut request = ListCommunicationsRequest::default();
        change(&mut request);
        call!(client, list_communications, CLERK, request)
    };
    access_cases(client, daily, &mut add);
    for (label, value) in bad_text(0, 200, true) {
        let call = list_communications(&|r| r.counterpart = value.clone());
        add(
            format!("search counterpart {label}"),
            Expected::Invalid("counterpart"),
            call,
        );
    }
    for (label, value) in bad_dates() {
        let call = list_communications(&|r| r.period_start = Some(value));
        add(
            format!("search period_start {label}"),
            Expected::Invalid("period_start"),
            call,
        );
        let call = list_communications(&|r| r.period_end = Some(value));
        add(
            format!("search period_end {label}"),
            Expected::Invalid("period_end"),
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
        let call = list_reports(&|r| r.page = page.clone());
        add(format!("reports {label}"), Expected::Invalid(field), call);
        let pending = PendingForSupervisorRequest { page: page.clone() };
        let call = call!(client, pending_for_supervisor, LEAD, pending);
        add(format!("pending {label}"), Expected::Invalid(field), call);
        let call = list_communications(&|r| r.page = page.clone());
        add(
            format!("communications {label}"),
            Expected::Invalid(field),
            call,
        );
    }
    cases
}

/// Adds the rejected cases of the confidentiality level, GetReport and the access approval
/// calls. `daily` is an INTERNAL daily report of the clerk.
#[allow(clippy::too_many_lines)]
fn access_cases(client: &Client, daily: &str, add: &mut dyn FnMut(String, Expected, Call)) {
    let unknown = uuid::Uuid::now_v7().to_string();

    // The level of a new report.
    for (label, value) in bad_enums() {
        let request = SubmitDailyReportRequest {
            work_date: date(2026, 2, 26),
            content: Some(daily_content()),
            confidentiality: value,
        };
        let call = call!(client, submit_daily_report, CLERK, request);
        add(
            format!("daily confidentiality {label}"),
            Expected::Invalid("confidentiality"),
            call,
        );
        let request = SubmitPeriodicReportRequest {
            kind: ReportKind::Weekly as i32,
            week_start: date(2026, 2, 9),
            year: 0,
            month: 0,
            content: Some(submit_periodic_report_request::Content::Weekly(
                weekly_content(),
            )),
            confidentiality: value,
        };
        let call = call!(client, submit_periodic_report, CLERK, request);
        add(
            format!("periodic confidentiality {label}"),
            Expected::Invalid("confidentiality"),
            call,
        );
    }

    // GetReport, RequestAccess and ListAccessRequests.
    for (label, value) in bad_record_ids() {
        let request = GetReportRequest {
            report_id: value.clone(),
        };
        let call = call!(client, get_report, CLERK, request);
        add(
            format!("get report_id {label}"),
            Expected::Invalid("report_id"),
            call,
        );
        let request = GetCommunicationRequest {
            communication_id: value.clone(),
        };
        let call = call!(client, get_communication, CLERK, request);
        add(
            format!("get communication_id {label}"),
            Expected::Invalid("communication_id"),
            call,
        );
        let request = RequestAccessRequest {
            record_id: value.clone(),
            purpose: "Review".to_owned(),
        };
        let call = call!(client, request_access, CLERK, request);
        add(
            format!("request record_id {label}"),
            Expected::Invalid("record_id"),
            call,
        );
        let request = ListAccessRequestsRequest {
            record_id: value.clone(),
        };
        let call = call!(client, list_access_requests, CLERK, request);
        add(
            format!("access requests record_id {label}"),
            Expected::Invalid("record_id"),
            call,
        );
        let request = DecideAccessRequest {
            access_request_id: value.clone(),
            approve: false,
            opinion: "No".to_owned(),
            expires_at: None,
        };
        let call = call!(client, decide_access, LEAD, request);
        add(
            format!("decide access_request_id {label}"),
            Expected::Invalid("access_request_id"),
            call,
        );
    }
    for (label, value) in bad_text(1, 2000, false) {
        let request = RequestAccessRequest {
            record_id: daily.to_owned(),
            purpose: value.clone(),
        };
        let call = call!(client, request_access, CLERK, request);
        add(
            format!("request purpose {label}"),
            Expected::Invalid("purpose"),
            call,
        );
        let request = DecideAccessRequest {
            access_request_id: unknown.clone(),
            approve: false,
            opinion: value.clone(),
            expires_at: None,
        };
        let call = call!(client, decide_access, LEAD, request);
        add(
            format!("decide opinion {label}"),
            Expected::Invalid("opinion"),
            call,
        );
    }
    let request = RequestAccessRequest {
        record_id: daily.to_owned(),
        purpose: String::new(),
    };
    let call = call!(client, request_access, CLERK, request);
    add(
        "request purpose empty".to_owned(),
        Expected::Invalid("purpose"),
        call,
    );
    let request = RequestAccessRequest {
        record_id: daily.to_owned(),
        purpose: "Review".to_owned(),
    };
    let call = call!(client, request_access, CLERK, request);
    add(
        "request access to an internal report".to_owned(),
        Expected::Precondition("CONFIDENTIALITY_INTERNAL"),
        call,
    );

    // DecideAccess: the approval's end, and a request that does not exist.
    let now = start_instant().timestamp();
    let ends = bad_timestamps()
        .into_iter()
        .map(|(label, value)| (label, Some(value)))
        .chain([
            ("missing".to_owned(), None),
            (
                "in the past".to_owned(),
                Some(Timestamp {
                    seconds: now - 60,
                    nanos: 0,
                }),
            ),
            (
                "91 days ahead".to_owned(),
                Some(Timestamp {
                    seconds: now + 91 * 86_400,
                    nanos: 0,
                }),
            ),
        ]);
    for (label, value) in ends {
        let request = DecideAccessRequest {
            access_request_id: unknown.clone(),
            approve: true,
            opinion: "Yes".to_owned(),
            expires_at: value,
        };
        let call = call!(client, decide_access, LEAD, request);
        add(
            format!("decide expires_at {label}"),
            Expected::Invalid("expires_at"),
            call,
        );
    }
    let request = DecideAccessRequest {
        access_request_id: unknown.clone(),
        approve: false,
        opinion: "No".to_owned(),
        expires_at: None,
    };
    let call = call!(client, decide_access, LEAD, request);
    add("decide unknown request".to_owned(), Expected::Denied, call);

    // AcceptAgreement.
    let versions = bad_tokens(32)
        .into_iter()
        .chain([("not the current version".to_owned(), "2025-01".to_owned())]);
    for (label, value) in versions {
        let request = AcceptAgreementRequest {
            agreement_version: value,
        };
        let call = call!(client, accept_agreement, CLERK, request);
        add(
            format!("agreement_version {label}"),
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

    let daily = SubmitDailyReportRequest {
        work_date: date(2026, 2, 27),
        content: Some(daily_content()),
        confidentiality: 0,
    };
    let daily_id = client
        .submit_daily_report(as_user(CLERK, daily))
        .await?
        .into_inner()
        .report
        .context("daily report")?
        .report_id;
    let weekly = SubmitPeriodicReportRequest {
        kind: ReportKind::Weekly as i32,
        week_start: date(2026, 2, 16),
        year: 0,
        month: 0,
        content: Some(submit_periodic_report_request::Content::Weekly(
            weekly_content(),
        )),
        confidentiality: 0,
    };
    let weekly_id = client
        .submit_periodic_report(as_user(CLERK, weekly))
        .await?
        .into_inner()
        .report
        .context("weekly report")?
        .report_id;

    let cases = rejected_cases(&client, &daily_id, &weekly_id);
    assert!(cases.len() > 300, "only {} cases", cases.len());
    for (label, expected, call) in cases {
        let before = service.snapshot().await?;

        check_rejection(&label, call.await, expected);

        assert_eq!(service.snapshot().await?, before, "{label} wrote something");
    }

    service.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legitimate_odd_input_is_stored_exactly() -> Result<()> {
    let nats = NatsServer::start()?;
    let service = Service::start(&nats.url()).await?;
    let mut client = connect(service.address).await?;

    for text in ACCEPTED_TEXT {
        let mut request = communication_request();
        request.subject = (*text).to_owned();
        request.content = format!("{text}\nline two\tcolumn");
        request.scope = CommunicationScope::External as i32;
        request.counterpart = (*text).to_owned();
        request.outcome = (*text).to_owned();
        request.external_participants = vec![(*text).to_owned()];
        request.attachments = vec![
            attachment(text, "text/plain", text.as_bytes()),
            attachment("scan.bin", "application/octet-stream", b"\x80\xff\0"),
        ];
        let stored = client
            .record_communication(as_user(CLERK, request.clone()))
            .await?
            .into_inner()
            .communication
            .context("communication")?;
        assert_eq!(stored.subject, *text);
        assert_eq!(stored.content, request.content);
        assert_eq!(stored.counterpart, *text);
        assert_eq!(stored.outcome, *text);
        assert_eq!(stored.external_participants, [*text]);
        assert_eq!(stored.attachments.len(), 2, "{text:?}");
        assert_eq!(stored.attachments[0].file_name, *text);

        let search = ListCommunicationsRequest {
            counterpart: (*text).to_owned(),
            ..Default::default()
        };
        let found = client
            .list_communications(as_user(CLERK, search))
            .await?
            .into_inner()
            .communications;
        let ids: Vec<&str> = found.iter().map(|c| c.communication_id.as_str()).collect();
        assert_eq!(
            ids,
            [stored.communication_id.as_str()],
            "search for {text:?}"
        );
    }

    service.stop().await
}
