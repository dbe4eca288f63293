//! End-to-end tests of the meeting service. Each test starts a private nats-server with
//! JetStream on a free port of 127.0.0.1. It runs the service in-process on another free port
//! with a manual clock and a temporary SQLite file, or a fresh PostgreSQL database when
//! `TRACE_TEST_DATABASE_URL` is set, and drives it through a gRPC client.

use std::collections::{HashMap, HashSet};
use std::net::{SocketAddr, TcpListener as StdTcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use trace_tests::corpus::recorded_denial;
use trace_tests::receipts::ReceiptSender;
use trace_tests::scan::files_containing;

use anyhow::{Context, Result, bail};
use chrono::{TimeZone, Utc};
use futures::StreamExt;
use prost::Message;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, Statement,
};
use tempfile::TempDir;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::transport::{Channel as GrpcChannel, Endpoint};
use tonic::{Code, Request, Status};
use tonic_types::StatusExt;
use trace_meeting::MeetingConfig;
use trace_meeting::entity::{
    confirmation, delay_request, dispatch, material, meeting, minutes, notice, overdue_mark,
    plan_revision, resolution, resolution_update,
};
use trace_proto::common::v1::{Confidentiality, Date};
use trace_proto::event::v1::Envelope;
use trace_proto::meeting::v1::add_material_request::Source;
use trace_proto::meeting::v1::meeting_service_client::MeetingServiceClient;
use trace_proto::meeting::v1::*;
use trace_runtime::clock::{ManualClock, timestamp};
use trace_runtime::context::{attach_identity, role};
use trace_runtime::outbox::outbox_event;
use trace_runtime::seal::EncryptionSettings;

const ORGANISER: &str = "li.na";
const TAKER: &str = "chen.qi";
const OWNER: &str = "wang.wu";
const SECOND_OWNER: &str = "zhao.liu";
const OUTSIDER: &str = "sun.ba";
const DEPARTMENT: &str = "admin-office";

/// Maximum time to wait for anything to converge: a server start, publication, delivery.
const DEADLINE: Duration = Duration::from_secs(60);

const HOUR: i64 = 3_600;

type Client = MeetingServiceClient<GrpcChannel>;

// ---------------------------------------------------------------------------------------
// A private nats-server.

/// A `nats-server` with JetStream, listening on 127.0.0.1 only; killed on drop.
struct Nats {
    process: Child,
    port: u16,
    store: TempDir,
}

impl Nats {
    fn start() -> Result<Self> {
        let binary = std::env::var_os("TRACE_NATS_SERVER")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/work/main/.tools/venv/bin/nats-server"));
        anyhow::ensure!(
            binary.exists(),
            "nats-server not found at {}; set TRACE_NATS_SERVER",
            binary.display()
        );
        let port = StdTcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let store = tempfile::Builder::new().prefix("meeting-nats-").tempdir()?;

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
            store,
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

/// A database `trace_t_meeting_<random>` created for one test on the server of
/// `TRACE_TEST_DATABASE_URL`.
struct PostgresDatabase {
    admin_url: String,
    name: String,
    url: String,
}

impl PostgresDatabase {
    /// Creates the database, or returns `None` when `TRACE_TEST_DATABASE_URL` is unset.
    async fn create() -> Result<Option<Self>> {
        let Ok(admin_url) = std::env::var("TRACE_TEST_DATABASE_URL") else {
            return Ok(None);
        };
        let name = format!("trace_t_meeting_{}", uuid::Uuid::now_v7().simple());
        execute(&admin_url, &format!("CREATE DATABASE {name}")).await?;

        let (server, _) = admin_url
            .split('?')
            .next()
            .unwrap_or_default()
            .rsplit_once('/')
            .context("TRACE_TEST_DATABASE_URL has no database name")?;
        let url = format!("{server}/{name}");
        Ok(Some(Self {
            admin_url,
            name,
            url,
        }))
    }

    /// Drops the database once the service that used it has stopped.
    async fn drop_database(self) -> Result<()> {
        execute(
            &self.admin_url,
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        )
        .await
    }
}

/// Runs one statement through sea-orm on the database at `url`.
async fn execute(url: &str, sql: &str) -> Result<()> {
    let admin = trace_runtime::db::connect(url).await?;
    let statement = Statement::from_string(admin.get_database_backend(), sql.to_owned());
    admin.execute_raw(statement).await?;
    admin.close().await?;
    Ok(())
}

// ---------------------------------------------------------------------------------------
// The service under test.

/// The meeting service running in this process, with its own data folder and clock.
struct Service {
    address: SocketAddr,
    clock: Arc<ManualClock>,
    shutdown: CancellationToken,
    task: Option<JoinHandle<Result<()>>>,
    /// A separate connection for assertions on the service's tables.
    db: DatabaseConnection,
    /// Stands in for the archive's receipts, which release each entity's next event.
    _receipts: Option<ReceiptSender>,
    _data: TempDir,
}

/// 09:00 on Wednesday 25 February 2026 in Shanghai, the business time zone of the defaults.
fn start_instant() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 2, 25, 1, 0, 0).unwrap()
}

impl Service {
    async fn start(nats_url: &str, database_url: Option<&str>) -> Result<Self> {
        Self::start_with_interval(nats_url, database_url, 3600).await
    }

    /// Starts the service with a background overdue check every `interval_secs` seconds.
    async fn start_with_interval(
        nats_url: &str,
        database_url: Option<&str>,
        interval_secs: u64,
    ) -> Result<Self> {
        Self::start_with(
            nats_url,
            database_url,
            interval_secs,
            EncryptionSettings::default(),
        )
        .await
    }

    /// Starts the service with the key-encryption keys of `encryption`.
    async fn start_with(
        nats_url: &str,
        database_url: Option<&str>,
        interval_secs: u64,
        encryption: EncryptionSettings,
    ) -> Result<Self> {
        let data = tempfile::Builder::new()
            .prefix("meeting-service-")
            .tempdir()?;
        let sqlite_url = format!(
            "sqlite://{}?mode=rwc",
            data.path().join("meeting.db").display()
        );
        let database_url = database_url.map_or(sqlite_url, str::to_owned);

        let mut config = MeetingConfig::defaults();
        config.service.database_url = database_url.clone();
        config.service.blob_store_url = format!("file://{}", data.path().join("blobs").display());
        config.service.nats.url = nats_url.to_owned();
        config.service.outbox.poll_interval_ms = 50;
        config.service.shutdown_grace_secs = 2;
        config.meeting.overdue_check_interval_secs = interval_secs;
        config.service.encryption = encryption;

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        let clock = ManualClock::new(start_instant());
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(trace_meeting::run(
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
            _receipts: None,
            _data: data,
        };
        service.wait_until_ready().await?;
        service._receipts = Some(ReceiptSender::start(nats_url, "meeting").await?);
        Ok(service)
    }

    /// Waits until the service serves calls, which happens after its migrations.
    async fn wait_until_ready(&mut self) -> Result<()> {
        let started = Instant::now();
        // A read that records no event, so the outbox stays empty.
        let probe = ListOpenResolutionsRequest::default();
        while started.elapsed() < DEADLINE {
            if self.task.as_ref().is_some_and(JoinHandle::is_finished) {
                let task = self.task.take().context("service task")?;
                bail!("the service stopped during start: {:?}", task.await?);
            }
            if let Ok(mut client) = self.client().await
                && client
                    .list_open_resolutions(as_user(ORGANISER, probe.clone()))
                    .await
                    .is_ok()
            {
                return Ok(());
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
        Ok(MeetingServiceClient::new(channel))
    }

    fn advance_days(&self, days: i64) {
        self.clock.advance(chrono::Duration::days(days));
    }

    async fn stop(mut self) -> Result<()> {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            tokio::time::timeout(DEADLINE, task).await???;
        }
        Ok(())
    }

    /// Row counts of every table and the sum of all entity versions; a call that fails must
    /// leave all of them unchanged.
    async fn snapshot(&self) -> Result<Vec<u64>> {
        let db = &self.db;
        let meeting_versions: i64 = meeting::Entity::find()
            .all(db)
            .await?
            .iter()
            .map(|row| row.entity_version)
            .sum();
        let resolution_versions: i64 = resolution::Entity::find()
            .all(db)
            .await?
            .iter()
            .map(|row| row.entity_version)
            .sum();
        Ok(vec![
            // Denial events (entity type `access`) are written after a denied call returns.
            outbox_event::Entity::find()
                .filter(outbox_event::Column::EntityType.ne("access"))
                .count(db)
                .await?,
            meeting::Entity::find().count(db).await?,
            plan_revision::Entity::find().count(db).await?,
            notice::Entity::find().count(db).await?,
            material::Entity::find().count(db).await?,
            minutes::Entity::find().count(db).await?,
            dispatch::Entity::find().count(db).await?,
            confirmation::Entity::find().count(db).await?,
            resolution::Entity::find().count(db).await?,
            resolution_update::Entity::find().count(db).await?,
            delay_request::Entity::find().count(db).await?,
            overdue_mark::Entity::find().count(db).await?,
            u64::try_from(meeting_versions)?,
            u64::try_from(resolution_versions)?,
        ])
    }

    /// Waits until every outbox row has been published to the broker, and returns how many
    /// rows there are.
    async fn wait_until_published(&self) -> Result<usize> {
        let started = Instant::now();
        loop {
            let rows = outbox_event::Entity::find().all(&self.db).await?;
            if rows.iter().all(|row| row.published_at.is_some()) {
                return Ok(rows.len());
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
    let mut request = Request::new(message);
    attach_identity(&mut request, user_id, DEPARTMENT, &[role::EMPLOYEE], None);
    request
}

fn as_system<T>(message: T) -> Request<T> {
    let mut request = Request::new(message);
    attach_identity(&mut request, "scheduler", "system", &[role::SYSTEM], None);
    request
}

fn date(year: i32, month: i32, day: i32) -> Option<Date> {
    Some(Date { year, month, day })
}

fn at(hours_after_start: i64) -> Option<prost_types::Timestamp> {
    Some(timestamp(
        (start_instant().timestamp() + hours_after_start * HOUR) * 1_000_000,
    ))
}

fn attendees() -> Vec<String> {
    [OWNER, SECOND_OWNER, TAKER].map(str::to_owned).to_vec()
}

/// Builds a valid plan: 09:00 to 11:00 on 26 February 2026 in Shanghai, in person.
fn plan_request() -> PlanMeetingRequest {
    PlanMeetingRequest {
        topic: "第一季度預算會議".to_owned(),
        start_time: at(24),
        end_time: at(26),
        channel: Channel::InPerson as i32,
        location: "Meeting room 3, head office".to_owned(),
        attendee_ids: attendees(),
        agenda: vec![
            AgendaItem {
                title: "Budget review".to_owned(),
                presenter_id: OWNER.to_owned(),
            },
            AgendaItem {
                title: "Supplier contracts".to_owned(),
                presenter_id: String::new(),
            },
        ],
        confidentiality: Confidentiality::Internal as i32,
    }
}

fn discussions() -> Vec<Discussion> {
    vec![
        Discussion {
            agenda_item: 1,
            text: "預算超支百分之五，需要調整。".to_owned(),
        },
        Discussion {
            agenda_item: 2,
            text: "Two contracts expire in March.".to_owned(),
        },
    ]
}

/// Minutes of the meeting as held from 09:05 to 10:50 on 26 February, with two decisions.
fn minutes_request(meeting_id: &str) -> RecordMinutesRequest {
    RecordMinutesRequest {
        meeting_id: meeting_id.to_owned(),
        held_start_time: Some(prost_types::Timestamp {
            seconds: start_instant().timestamp() + 24 * HOUR + 300,
            nanos: 0,
        }),
        held_end_time: Some(prost_types::Timestamp {
            seconds: start_instant().timestamp() + 26 * HOUR - 600,
            nanos: 0,
        }),
        place: "Meeting room 3, head office".to_owned(),
        present_ids: vec![OWNER.to_owned(), TAKER.to_owned()],
        absent_ids: vec![SECOND_OWNER.to_owned()],
        discussions: discussions(),
        decisions: vec![
            Decision {
                text: "Cut travel spending by 5%".to_owned(),
                owner_id: OWNER.to_owned(),
                due_date: date(2026, 2, 28),
            },
            Decision {
                text: "Renew both supplier contracts".to_owned(),
                owner_id: SECOND_OWNER.to_owned(),
                due_date: date(2026, 3, 2),
            },
        ],
    }
}

fn update_request(
    resolution_id: &str,
    status: ResolutionStatus,
    note: &str,
) -> UpdateResolutionRequest {
    UpdateResolutionRequest {
        resolution_id: resolution_id.to_owned(),
        status: status as i32,
        progress_note: note.to_owned(),
        problems: String::new(),
        solutions: String::new(),
    }
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

fn record<T>(response: Option<T>) -> T {
    response.expect("response carries its record")
}

/// Runs a call that must fail with `code` and change nothing. For `INVALID_ARGUMENT`,
/// `field` is the expected field violation; otherwise the message must contain it.
async fn expect_rejected<T: std::fmt::Debug>(
    service: &Service,
    label: &str,
    code: Code,
    field: &str,
    call: impl Future<Output = Result<T, Status>>,
) -> Result<()> {
    let before = service.snapshot().await?;

    let status = match call.await {
        Ok(response) => bail!("{label}: expected {code:?}, got success {response:?}"),
        Err(status) => status,
    };

    assert_eq!(status.code(), code, "{label}: {}", status.message());
    if code == Code::InvalidArgument {
        assert_eq!(
            violation_fields(&status),
            [field],
            "{label}: {}",
            status.message()
        );
    } else {
        assert!(
            status.message().contains(field),
            "{label}: {}",
            status.message()
        );
    }
    assert_eq!(service.snapshot().await?, before, "{label} wrote something");
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Reading the broker.

/// Reads the meeting events from the trace stream with an ordered consumer until `expected`
/// distinct events arrived.
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
        filter_subject: "trace.meeting.>".to_owned(),
        deliver_policy: async_nats::jetstream::consumer::DeliverPolicy::All,
        ..Default::default()
    };
    let mut messages = stream.create_consumer(config).await?.messages().await?;
    let mut seen = HashSet::new();
    let mut envelopes = Vec::with_capacity(expected);
    while envelopes.len() < expected {
        let remaining = DEADLINE.saturating_sub(started.elapsed());
        let message = tokio::time::timeout(remaining, messages.next())
            .await
            .with_context(|| format!("only {} of {expected} events arrived", envelopes.len()))?
            .context("the consumer ended")??;
        let envelope = Envelope::decode(message.payload.as_ref())?;
        // The relay publishes again when no archive receipt arrives; keep the first copy.
        if seen.insert(envelope.event_id.clone()) {
            envelopes.push(envelope);
        }
    }
    Ok(envelopes)
}

/// Checks that the events of every entity arrived in version order 1, 2, 3, ...
fn check_order_per_entity(envelopes: &[Envelope]) -> HashMap<(String, String), Vec<String>> {
    let mut actions: HashMap<(String, String), Vec<String>> = HashMap::new();
    let mut versions: HashMap<(String, String), Vec<u64>> = HashMap::new();
    for envelope in envelopes {
        let key = (envelope.entity_type.clone(), envelope.entity_id.clone());
        assert_eq!(
            envelope.subject,
            format!("trace.meeting.{}.{}", envelope.entity_type, envelope.action)
        );
        versions
            .entry(key.clone())
            .or_default()
            .push(envelope.entity_version);
        actions
            .entry(key)
            .or_default()
            .push(envelope.action.clone());
    }
    for (key, found) in &versions {
        let expected: Vec<u64> = (1..=found.len() as u64).collect();
        assert_eq!(*found, expected, "versions of {key:?}");
    }
    actions
}

// ---------------------------------------------------------------------------------------
// Tests.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycle_on_sqlite() -> Result<()> {
    run_lifecycle(None).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycle_on_postgres() -> Result<()> {
    let Some(database) = PostgresDatabase::create().await? else {
        eprintln!("TRACE_TEST_DATABASE_URL is not set; skipping the PostgreSQL lifecycle test");
        return Ok(());
    };
    let outcome = run_lifecycle(Some(&database.url)).await;
    database.drop_database().await?;
    outcome
}

/// Drives one meeting from its plan to the follow-up of its decisions, checks the responses,
/// illegal steps and bad input along the way, and then the events on the broker.
async fn run_lifecycle(database_url: Option<&str>) -> Result<()> {
    let nats = Nats::start()?;
    let service = Service::start(&nats.url(), database_url).await?;
    let mut client = service.client().await?;

    let meeting_id = plan_and_prepare(&service, &mut client).await?;
    bad_plan_input(&service, &mut client).await?;
    let [first, second] = hold_meeting(&service, &mut client, &meeting_id).await?;
    confirm_minutes(&service, &mut client, &meeting_id).await?;
    follow_up(&service, &mut client, &meeting_id, &first, &second).await?;
    cancelled_meeting(&service, &mut client).await?;
    queries(&mut client, &meeting_id).await?;

    let published = service.wait_until_published().await?;
    let envelopes = stream_envelopes(&nats.url(), published).await?;
    let actions = check_order_per_entity(&envelopes);
    let overdue = envelopes
        .iter()
        .filter(|envelope| envelope.action == "overdue")
        .count();
    assert_eq!(overdue, 2);
    let first_actions = &actions[&("resolution".to_owned(), first.clone())];
    assert_eq!(
        *first_actions,
        [
            "created",
            "updated",
            "updated",
            "delay_requested",
            "delay_approved",
            "overdue"
        ]
    );
    let second_actions = &actions[&("resolution".to_owned(), second.clone())];
    assert_eq!(*second_actions, ["created", "overdue", "updated"]);
    let meeting_actions = &actions[&("meeting".to_owned(), meeting_id.clone())];
    assert_eq!(meeting_actions[0], "planned");
    assert_eq!(
        meeting_actions
            .iter()
            .filter(|action| *action == "minutes_objected")
            .count(),
        1
    );

    service.stop().await
}

/// Plans the meeting, records notices, revises the plan and adds and reviews a material.
async fn plan_and_prepare(service: &Service, client: &mut Client) -> Result<String> {
    let planned = client
        .plan_meeting(as_user(ORGANISER, plan_request()))
        .await?
        .into_inner();
    let meeting = record(planned.meeting);
    assert_eq!(meeting.organiser_id, ORGANISER);
    assert_eq!(meeting.state, MeetingState::Planned as i32);
    assert_eq!(
        meeting.planned_at,
        Some(timestamp(start_instant().timestamp_micros()))
    );
    assert_eq!(meeting.attendee_ids, attendees());
    assert_eq!(meeting.agenda.len(), 2);
    assert_eq!(meeting.entity_version, 1);
    let meeting_id = meeting.meeting_id.clone();

    let notices = RecordNoticesRequest {
        meeting_id: meeting_id.clone(),
        recipient_ids: attendees(),
    };
    let notices = client
        .record_notices(as_user(ORGANISER, notices))
        .await?
        .into_inner();
    assert_eq!(notices.notices.len(), 3);
    assert_eq!(
        notices.notices[0].notified_at,
        Some(timestamp(start_instant().timestamp_micros()))
    );
    let by_attendee = RecordNoticesRequest {
        meeting_id: meeting_id.clone(),
        recipient_ids: vec![OWNER.to_owned()],
    };
    let call = client.record_notices(as_user(OWNER, by_attendee));
    expect_rejected(
        service,
        "notices by an attendee",
        Code::PermissionDenied,
        ORGANISER,
        call,
    )
    .await?;

    let revision = RevisePlanRequest {
        meeting_id: meeting_id.clone(),
        change_summary: "Room 3 is booked; moved to room 5".to_owned(),
        location: Some("Meeting room 5, head office".to_owned()),
        topic: Some(plan_request().topic),
        ..Default::default()
    };
    let revised = client
        .revise_plan(as_user(ORGANISER, revision))
        .await?
        .into_inner();
    let changed = record(revised.revision);
    assert_eq!(changed.changed_fields, ["location"]);
    assert_eq!(changed.plan_revision, 2);
    assert_eq!(
        record(revised.meeting).location,
        "Meeting room 5, head office"
    );
    let nothing = RevisePlanRequest {
        meeting_id: meeting_id.clone(),
        change_summary: "no change".to_owned(),
        topic: Some(plan_request().topic),
        ..Default::default()
    };
    let call = client.revise_plan(as_user(ORGANISER, nothing));
    expect_rejected(
        service,
        "empty revision",
        Code::InvalidArgument,
        "request",
        call,
    )
    .await?;

    add_and_review_material(service, client, &meeting_id).await?;
    Ok(meeting_id)
}

async fn add_and_review_material(
    service: &Service,
    client: &mut Client,
    meeting_id: &str,
) -> Result<()> {
    let report = AddMaterialRequest {
        meeting_id: meeting_id.to_owned(),
        title: "Budget report Q1".to_owned(),
        kind: MaterialKind::Report as i32,
        author_id: OWNER.to_owned(),
        completed_at: at(-2),
        source: Some(Source::Content("預算報告".as_bytes().to_vec())),
        media_type: "text/plain; charset=utf-8".to_owned(),
    };
    let added = client
        .add_material(as_user(OWNER, report.clone()))
        .await?
        .into_inner();
    let material = record(added.material);
    assert_eq!(material.review_state, ReviewState::Pending as i32);
    assert_eq!(
        record(material.content).sha256,
        trace_runtime::blob::sha256_hex("預算報告".as_bytes())
    );

    let by_author = ReviewMaterialRequest {
        meeting_id: meeting_id.to_owned(),
        material_id: material.material_id.clone(),
        review_state: ReviewState::Approved as i32,
        opinion: "ok".to_owned(),
    };
    let call = client.review_material(as_user(OWNER, by_author.clone()));
    expect_rejected(
        service,
        "review by the author",
        Code::PermissionDenied,
        OWNER,
        call,
    )
    .await?;
    let reviewed = client
        .review_material(as_user(ORGANISER, by_author.clone()))
        .await?
        .into_inner();
    assert_eq!(record(reviewed.material).reviewer_id, ORGANISER);
    let call = client.review_material(as_user(ORGANISER, by_author));
    expect_rejected(
        service,
        "second review",
        Code::FailedPrecondition,
        "APPROVED",
        call,
    )
    .await?;

    let mut neither = report.clone();
    neither.source = None;
    let call = client.add_material(as_user(OWNER, neither));
    expect_rejected(
        service,
        "material without source",
        Code::InvalidArgument,
        "source",
        call,
    )
    .await?;
    let mut document = report.clone();
    document.source = Some(Source::DocumentId(uuid::Uuid::now_v7().to_string()));
    let call = client.add_material(as_user(OWNER, document.clone()));
    expect_rejected(
        service,
        "document with media type",
        Code::InvalidArgument,
        "media_type",
        call,
    )
    .await?;
    document.media_type.clear();
    let added = client
        .add_material(as_user(TAKER, document))
        .await?
        .into_inner();
    assert!(record(added.material).content.is_none());
    let mut future = report;
    future.completed_at = at(1);
    let call = client.add_material(as_user(OWNER, future));
    expect_rejected(
        service,
        "material completed later",
        Code::InvalidArgument,
        "completed_at",
        call,
    )
    .await
}

/// A bad-input case: the field that the change spoils, and the change.
type Case<T> = (&'static str, fn(&mut T));

/// Bad plans: each returns INVALID_ARGUMENT naming the field and writes nothing.
async fn bad_plan_input(service: &Service, client: &mut Client) -> Result<()> {
    let cases: Vec<Case<PlanMeetingRequest>> = vec![
        ("topic", |plan| plan.topic.clear()),
        ("topic", |plan| plan.topic = "two\nlines".to_owned()),
        ("topic", |plan| plan.topic = "x".repeat(201)),
        ("topic", |plan| plan.topic = "a\u{202E}b".to_owned()),
        ("start_time", |plan| plan.start_time = None),
        ("start_time", |plan| plan.start_time = at(-1)),
        ("start_time", |plan| plan.start_time = at(3 * 366 * 24)),
        ("end_time", |plan| plan.end_time = at(23)),
        ("end_time", |plan| plan.end_time = plan.start_time),
        ("end_time", |plan| plan.end_time = at(49)),
        ("channel", |plan| plan.channel = 0),
        ("channel", |plan| plan.channel = 9),
        ("location", |plan| plan.location.clear()),
        ("attendee_ids", |plan| plan.attendee_ids.clear()),
        ("attendee_ids", |plan| {
            plan.attendee_ids = (0..201).map(|i| format!("user{i}")).collect()
        }),
        ("attendee_ids[1]", |plan| {
            plan.attendee_ids = vec![OWNER.to_owned(), OWNER.to_owned()]
        }),
        ("attendee_ids[0]", |plan| {
            plan.attendee_ids = vec!["a.b *>".to_owned()]
        }),
        ("agenda", |plan| plan.agenda.clear()),
        ("agenda", |plan| {
            plan.agenda = vec![plan.agenda[0].clone(); 51]
        }),
        ("agenda[1].title", |plan| plan.agenda[1].title.clear()),
        ("agenda[0].presenter_id", |plan| {
            plan.agenda[0].presenter_id = "no spaces".to_owned()
        }),
        ("confidentiality", |plan| plan.confidentiality = 0),
    ];
    for (field, change) in cases {
        let mut plan = plan_request();
        change(&mut plan);
        let call = client.plan_meeting(as_user(ORGANISER, plan));
        expect_rejected(
            service,
            &format!("bad {field}"),
            Code::InvalidArgument,
            field,
            call,
        )
        .await?;
    }
    Ok(())
}

/// Records the minutes a day later, with illegal and bad minutes first; returns the two
/// resolution ids.
async fn hold_meeting(
    service: &Service,
    client: &mut Client,
    meeting_id: &str,
) -> Result<[String; 2]> {
    service.clock.advance(chrono::Duration::hours(27));

    let bad_minutes: Vec<Case<RecordMinutesRequest>> = vec![
        ("present_ids[2]", |minutes| {
            minutes.present_ids.push(OUTSIDER.to_owned())
        }),
        ("absent_ids", |minutes| minutes.absent_ids.clear()),
        ("absent_ids", |minutes| {
            minutes.absent_ids.push(OWNER.to_owned())
        }),
        ("discussions", |minutes| {
            minutes.discussions.pop();
        }),
        ("discussions[1].agenda_item", |minutes| {
            minutes.discussions[1].agenda_item = 1
        }),
        ("held_end_time", |minutes| minutes.held_end_time = at(40)),
        ("decisions[0].due_date", |minutes| {
            minutes.decisions[0].due_date = date(2026, 2, 30)
        }),
        ("decisions[0].due_date", |minutes| {
            minutes.decisions[0].due_date = date(2026, 2, 25)
        }),
        ("decisions[1].owner_id", |minutes| {
            minutes.decisions[1].owner_id.clear()
        }),
        ("decisions[1].text", |minutes| {
            minutes.decisions[1].text.clear()
        }),
    ];
    for (field, change) in bad_minutes {
        let mut minutes = minutes_request(meeting_id);
        change(&mut minutes);
        let call = client.record_minutes(as_user(TAKER, minutes));
        expect_rejected(
            service,
            &format!("bad minutes {field}"),
            Code::InvalidArgument,
            field,
            call,
        )
        .await?;
    }
    let call = client.record_minutes(as_user(OUTSIDER, minutes_request(meeting_id)));
    expect_rejected(
        service,
        "minutes by an outsider",
        Code::PermissionDenied,
        OUTSIDER,
        call,
    )
    .await?;

    let recorded = client
        .record_minutes(as_user(TAKER, minutes_request(meeting_id)))
        .await?
        .into_inner();
    let meeting = record(recorded.meeting);
    assert_eq!(meeting.state, MeetingState::MinutesRecorded as i32);
    assert_eq!(meeting.minutes_version, 1);
    let minutes = record(recorded.minutes);
    assert_eq!(minutes.taker_id, TAKER);
    assert_eq!(minutes.discussions.len(), 2);
    assert_eq!(recorded.resolutions.len(), 2);
    for resolution in &recorded.resolutions {
        assert_eq!(resolution.status, ResolutionStatus::Open as i32);
        assert_eq!(resolution.entity_version, 1);
        assert!(!resolution.overdue);
    }
    assert_eq!(recorded.resolutions[0].owner_id, OWNER);
    assert_eq!(recorded.resolutions[1].due_date, date(2026, 3, 2));

    let again = client.record_minutes(as_user(TAKER, minutes_request(meeting_id)));
    expect_rejected(
        service,
        "second minutes",
        Code::FailedPrecondition,
        "MINUTES_RECORDED",
        again,
    )
    .await?;
    let revision = RevisePlanRequest {
        meeting_id: meeting_id.to_owned(),
        change_summary: "too late".to_owned(),
        topic: Some("Another topic".to_owned()),
        ..Default::default()
    };
    let call = client.revise_plan(as_user(ORGANISER, revision));
    expect_rejected(
        service,
        "revision after minutes",
        Code::FailedPrecondition,
        "MINUTES_RECORDED",
        call,
    )
    .await?;

    let ids = [
        recorded.resolutions[0].resolution_id.clone(),
        recorded.resolutions[1].resolution_id.clone(),
    ];
    Ok(ids)
}

/// Sends the minutes, records one confirmation and one objection, amends the minutes (which
/// resets confirmations) and confirms the corrected version.
async fn confirm_minutes(service: &Service, client: &mut Client, meeting_id: &str) -> Result<()> {
    let send = SendMinutesForConfirmationRequest {
        meeting_id: meeting_id.to_owned(),
        recipient_ids: attendees(),
    };
    let sent = client
        .send_minutes_for_confirmation(as_user(TAKER, send.clone()))
        .await?
        .into_inner();
    assert_eq!(sent.dispatches.len(), 3);
    let call = client.send_minutes_for_confirmation(as_user(TAKER, send.clone()));
    expect_rejected(
        service,
        "sending twice",
        Code::InvalidArgument,
        "recipient_ids",
        call,
    )
    .await?;

    let confirm = |version: u32, verdict: Verdict, comment: &str| ConfirmMinutesRequest {
        meeting_id: meeting_id.to_owned(),
        minutes_version: version,
        verdict: verdict as i32,
        comment: comment.to_owned(),
    };
    let confirmed = client
        .confirm_minutes(as_user(OWNER, confirm(1, Verdict::Confirm, "")))
        .await?
        .into_inner();
    assert_eq!(record(confirmed.confirmation).participant_id, OWNER);
    let objection = confirm(1, Verdict::Object, "I was present, not absent");
    client
        .confirm_minutes(as_user(SECOND_OWNER, objection))
        .await?;

    let call = client.confirm_minutes(as_user(OWNER, confirm(1, Verdict::Confirm, "")));
    expect_rejected(
        service,
        "second confirmation",
        Code::FailedPrecondition,
        "already answered",
        call,
    )
    .await?;
    let call = client.confirm_minutes(as_user(OUTSIDER, confirm(1, Verdict::Confirm, "")));
    expect_rejected(
        service,
        "confirmation by an outsider",
        Code::PermissionDenied,
        OUTSIDER,
        call,
    )
    .await?;
    let call = client.confirm_minutes(as_user(TAKER, confirm(1, Verdict::Object, "")));
    expect_rejected(
        service,
        "objection without comment",
        Code::InvalidArgument,
        "comment",
        call,
    )
    .await?;

    let mut corrected = minutes_request(meeting_id);
    corrected.present_ids = attendees();
    corrected.absent_ids.clear();
    let amendment = AmendMinutesRequest {
        meeting_id: meeting_id.to_owned(),
        change_summary: "zhao.liu was present".to_owned(),
        held_start_time: corrected.held_start_time,
        held_end_time: corrected.held_end_time,
        place: corrected.place,
        present_ids: corrected.present_ids,
        absent_ids: corrected.absent_ids,
        discussions: corrected.discussions,
    };
    let amended = client
        .amend_minutes(as_user(TAKER, amendment))
        .await?
        .into_inner();
    assert_eq!(record(amended.minutes).version, 2);

    let call = client.confirm_minutes(as_user(TAKER, confirm(1, Verdict::Confirm, "")));
    expect_rejected(
        service,
        "confirming an old version",
        Code::FailedPrecondition,
        "version 2",
        call,
    )
    .await?;
    let call = client.confirm_minutes(as_user(OWNER, confirm(2, Verdict::Confirm, "")));
    expect_rejected(
        service,
        "confirming before it was sent",
        Code::PermissionDenied,
        "not sent",
        call,
    )
    .await?;
    client
        .send_minutes_for_confirmation(as_user(TAKER, send))
        .await?;
    client
        .confirm_minutes(as_user(OWNER, confirm(2, Verdict::Confirm, "")))
        .await?;
    client
        .confirm_minutes(as_user(
            SECOND_OWNER,
            confirm(2, Verdict::Confirm, "corrected"),
        ))
        .await?;
    Ok(())
}

/// Updates, a delay, and the overdue checks around the due dates.
async fn follow_up(
    service: &Service,
    client: &mut Client,
    meeting_id: &str,
    first: &str,
    second: &str,
) -> Result<()> {
    let mut update = update_request(
        first,
        ResolutionStatus::InProgress,
        "Collected travel plans",
    );
    update.problems = "Two trips already booked".to_owned();
    update.solutions = "Cancel the refundable one".to_owned();
    let updated = client
        .update_resolution(as_user(OWNER, update))
        .await?
        .into_inner();
    assert_eq!(
        record(updated.resolution).status,
        ResolutionStatus::InProgress as i32
    );
    assert_eq!(record(updated.update).update_number, 1);
    let by_organiser = update_request(first, ResolutionStatus::InProgress, "Checked with finance");
    client
        .update_resolution(as_user(ORGANISER, by_organiser))
        .await?;
    let by_outsider = update_request(first, ResolutionStatus::Done, "done");
    let call = client.update_resolution(as_user(TAKER, by_outsider));
    expect_rejected(
        service,
        "update by another attendee",
        Code::PermissionDenied,
        TAKER,
        call,
    )
    .await?;

    let delay = |resolution: &str, proposed| RequestDelayRequest {
        resolution_id: resolution.to_owned(),
        reason: "Refund takes until the end of March".to_owned(),
        proposed_due_date: proposed,
        approver_id: String::new(),
    };
    let call = client.request_delay(as_user(OWNER, delay(first, date(2026, 2, 28))));
    expect_rejected(
        service,
        "delay to the same date",
        Code::InvalidArgument,
        "proposed_due_date",
        call,
    )
    .await?;
    let call = client.request_delay(as_user(OWNER, delay(second, date(2026, 3, 31))));
    expect_rejected(
        service,
        "delay by a non-owner",
        Code::PermissionDenied,
        SECOND_OWNER,
        call,
    )
    .await?;
    let requested = client
        .request_delay(as_user(OWNER, delay(first, date(2026, 3, 31))))
        .await?
        .into_inner();
    let delay_id = record(requested.delay).delay_id;
    let call = client.request_delay(as_user(OWNER, delay(first, date(2026, 4, 30))));
    expect_rejected(
        service,
        "second pending delay",
        Code::FailedPrecondition,
        "waiting",
        call,
    )
    .await?;

    let decide = |approve| DecideDelayRequest {
        resolution_id: first.to_owned(),
        delay_id: delay_id.clone(),
        approve,
        opinion: "Agreed".to_owned(),
    };
    let call = client.decide_delay(as_user(OWNER, decide(true)));
    expect_rejected(
        service,
        "self approval",
        Code::PermissionDenied,
        OWNER,
        call,
    )
    .await?;
    let call = client.decide_delay(as_user(TAKER, decide(true)));
    expect_rejected(
        service,
        "approval by another attendee",
        Code::PermissionDenied,
        TAKER,
        call,
    )
    .await?;
    let decided = client
        .decide_delay(as_user(ORGANISER, decide(true)))
        .await?
        .into_inner();
    assert_eq!(record(decided.resolution).due_date, date(2026, 3, 31));
    assert_eq!(record(decided.delay).state, DelayState::Approved as i32);
    let call = client.decide_delay(as_user(ORGANISER, decide(false)));
    expect_rejected(
        service,
        "deciding twice",
        Code::FailedPrecondition,
        "APPROVED",
        call,
    )
    .await?;

    overdue_checks(service, client, first, second).await?;

    let done = update_request(second, ResolutionStatus::Done, "Both contracts renewed");
    let done = client
        .update_resolution(as_user(SECOND_OWNER, done))
        .await?
        .into_inner();
    assert!(record(done.resolution).completed_at.is_some());
    let after_done = update_request(second, ResolutionStatus::InProgress, "more");
    let call = client.update_resolution(as_user(SECOND_OWNER, after_done));
    expect_rejected(
        service,
        "update after done",
        Code::FailedPrecondition,
        "DONE",
        call,
    )
    .await?;

    let table = GetTrackingTableRequest {
        meeting_id: meeting_id.to_owned(),
    };
    let table = client
        .get_tracking_table(as_user(ORGANISER, table))
        .await?
        .into_inner();
    assert_eq!(table.resolutions.len(), 2);
    let tracked_first = &table.resolutions[0];
    assert_eq!(tracked_first.updates.len(), 2);
    assert_eq!(tracked_first.delays.len(), 1);
    assert_eq!(tracked_first.overdue_marks.len(), 1);
    assert!(record(tracked_first.resolution.clone()).overdue);
    let tracked_second = &table.resolutions[1];
    assert!(!record(tracked_second.resolution.clone()).overdue);
    assert_eq!(tracked_second.overdue_marks[0].due_date, date(2026, 3, 2));
    Ok(())
}

/// Checks overdue resolutions on 5 March and on 1 April. On 5 March only the second one is
/// overdue, because the approved delay moved the first one's due date to 31 March.
async fn overdue_checks(
    service: &Service,
    client: &mut Client,
    first: &str,
    second: &str,
) -> Result<()> {
    let today = CheckOverdueRequest { as_of: None };
    service.advance_days(7);

    let checked = client
        .check_overdue(as_user(OWNER, today))
        .await?
        .into_inner();
    assert_eq!(checked.resolution_ids, [second]);
    let checked = client
        .check_overdue(as_user(OWNER, today))
        .await?
        .into_inner();
    assert!(
        checked.resolution_ids.is_empty(),
        "{:?}",
        checked.resolution_ids
    );

    let later = CheckOverdueRequest {
        as_of: date(2026, 4, 1),
    };
    let call = client.check_overdue(as_user(OWNER, later));
    expect_rejected(
        service,
        "later date without system role",
        Code::PermissionDenied,
        "system",
        call,
    )
    .await?;
    let earlier = CheckOverdueRequest {
        as_of: date(2026, 3, 4),
    };
    let call = client.check_overdue(as_system(earlier));
    expect_rejected(
        service,
        "earlier date",
        Code::InvalidArgument,
        "as_of",
        call,
    )
    .await?;
    let preview = CheckOverdueRequest {
        as_of: date(2026, 3, 31),
    };
    let checked = client.check_overdue(as_system(preview)).await?.into_inner();
    assert!(
        checked.resolution_ids.is_empty(),
        "{:?}",
        checked.resolution_ids
    );

    service.advance_days(27);
    let checked = client
        .check_overdue(as_user(OWNER, today))
        .await?
        .into_inner();
    assert_eq!(checked.resolution_ids, [first]);
    let checked = client
        .check_overdue(as_user(OWNER, today))
        .await?
        .into_inner();
    assert!(
        checked.resolution_ids.is_empty(),
        "{:?}",
        checked.resolution_ids
    );

    let open = ListOpenResolutionsRequest {
        owner_id: String::new(),
    };
    let open = client
        .list_open_resolutions(as_user(OWNER, open))
        .await?
        .into_inner();
    assert_eq!(open.resolutions.len(), 1);
    assert!(open.resolutions[0].overdue);
    Ok(())
}

/// Cancels a second meeting and checks that it takes no minutes.
async fn cancelled_meeting(service: &Service, client: &mut Client) -> Result<()> {
    let mut plan = plan_request();
    plan.start_time = Some(timestamp(service.clock_micros() + 24 * HOUR * 1_000_000));
    plan.end_time = Some(timestamp(service.clock_micros() + 25 * HOUR * 1_000_000));
    plan.channel = Channel::Phone as i32;
    plan.location = "Dial 021-5555-0100, code 4711".to_owned();
    let planned = client
        .plan_meeting(as_user(ORGANISER, plan))
        .await?
        .into_inner();
    let meeting_id = record(planned.meeting).meeting_id;

    let cancel = CancelMeetingRequest {
        meeting_id: meeting_id.clone(),
        reason: "Supplier postponed".to_owned(),
    };
    let call = client.cancel_meeting(as_user(OWNER, cancel.clone()));
    expect_rejected(
        service,
        "cancel by an attendee",
        Code::PermissionDenied,
        ORGANISER,
        call,
    )
    .await?;
    let cancelled = client
        .cancel_meeting(as_user(ORGANISER, cancel.clone()))
        .await?
        .into_inner();
    assert_eq!(
        record(cancelled.meeting).state,
        MeetingState::Cancelled as i32
    );

    service.clock.advance(chrono::Duration::hours(26));
    let mut minutes = minutes_request(&meeting_id);
    minutes.held_start_time = Some(timestamp(service.clock_micros() - 2 * HOUR * 1_000_000));
    minutes.held_end_time = Some(timestamp(service.clock_micros() - HOUR * 1_000_000));
    minutes.decisions.clear();
    let call = client.record_minutes(as_user(TAKER, minutes));
    expect_rejected(
        service,
        "minutes of a cancelled meeting",
        Code::FailedPrecondition,
        "CANCELLED",
        call,
    )
    .await?;
    let call = client.cancel_meeting(as_user(ORGANISER, cancel));
    expect_rejected(
        service,
        "cancelling twice",
        Code::FailedPrecondition,
        "CANCELLED",
        call,
    )
    .await
}

async fn queries(client: &mut Client, meeting_id: &str) -> Result<()> {
    let get = GetMeetingRequest {
        meeting_id: meeting_id.to_owned(),
    };
    let found = client
        .get_meeting(as_user(ORGANISER, get))
        .await?
        .into_inner();
    assert_eq!(found.revisions.len(), 1);
    assert_eq!(found.notices.len(), 3);
    assert_eq!(found.materials.len(), 2);
    assert_eq!(found.minutes.len(), 2);
    assert_eq!(found.dispatches.len(), 6);
    assert_eq!(found.confirmations.len(), 4);

    let mut pages = Vec::new();
    let mut token = String::new();
    loop {
        let list = ListMeetingsRequest {
            organiser_id: ORGANISER.to_owned(),
            page: Some(trace_proto::common::v1::PageRequest {
                page_size: 1,
                page_token: token.clone(),
            }),
            ..Default::default()
        };
        let page = client
            .list_meetings(as_user(ORGANISER, list))
            .await?
            .into_inner();
        pages.extend(page.meetings.into_iter().map(|meeting| meeting.meeting_id));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(pages.len(), 2);
    assert_eq!(pages[0], meeting_id);

    let by_attendee = ListMeetingsRequest {
        attendee_id: SECOND_OWNER.to_owned(),
        start_from: at(24),
        start_before: at(25),
        ..Default::default()
    };
    let listed = client
        .list_meetings(as_user(ORGANISER, by_attendee))
        .await?
        .into_inner();
    assert_eq!(listed.meetings.len(), 1);
    let nobody = ListMeetingsRequest {
        attendee_id: OUTSIDER.to_owned(),
        ..Default::default()
    };
    let listed = client
        .list_meetings(as_user(OUTSIDER, nobody))
        .await?
        .into_inner();
    assert!(listed.meetings.is_empty());
    Ok(())
}

impl Service {
    fn clock_micros(&self) -> i64 {
        use trace_runtime::clock::Clock;
        self.clock.now().timestamp_micros()
    }
}

/// Plans a meeting, advances the clock past it and records minutes with one decision per
/// `(owner, due date)`. Returns the resolution ids.
async fn meeting_with_decisions(
    service: &Service,
    client: &mut Client,
    decisions: &[(&str, Option<Date>)],
) -> Result<Vec<String>> {
    let planned = client
        .plan_meeting(as_user(ORGANISER, plan_request()))
        .await?
        .into_inner();
    let meeting_id = record(planned.meeting).meeting_id;
    service.clock.advance(chrono::Duration::hours(27));

    let mut minutes = minutes_request(&meeting_id);
    minutes.decisions = decisions
        .iter()
        .map(|(owner, due_date)| Decision {
            text: format!("Task for {owner}"),
            owner_id: (*owner).to_owned(),
            due_date: *due_date,
        })
        .collect();
    let recorded = client
        .record_minutes(as_user(TAKER, minutes))
        .await?
        .into_inner();
    Ok(recorded
        .resolutions
        .into_iter()
        .map(|resolution| resolution.resolution_id)
        .collect())
}

/// Counts the `overdue` events in the outbox.
async fn overdue_rows(service: &Service) -> Result<usize> {
    let rows = outbox_event::Entity::find().all(&service.db).await?;
    Ok(rows
        .iter()
        .filter(|row| row.subject == "trace.meeting.resolution.overdue")
        .count())
}

/// Polls until `overdue_rows` reaches `expected` or the deadline passes.
async fn wait_for_overdue_rows(service: &Service, expected: usize) -> Result<()> {
    let started = Instant::now();
    loop {
        let found = overdue_rows(service).await?;
        if found == expected {
            return Ok(());
        }
        if started.elapsed() > DEADLINE {
            bail!("found {found} overdue events after {DEADLINE:?}, expected {expected}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn background_check_uses_business_date() -> Result<()> {
    let nats = Nats::start()?;
    let service = Service::start_with_interval(&nats.url(), None, 1).await?;
    let mut client = service.client().await?;
    // The clock is now 12:00 on 26 February in Shanghai, 04:00 UTC.
    let ids = meeting_with_decisions(&service, &mut client, &[(OWNER, date(2026, 2, 26))]).await?;

    // 23:30 in Shanghai on the due date: not overdue yet.
    service
        .clock
        .advance(chrono::Duration::minutes(11 * 60 + 30));
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(overdue_rows(&service).await?, 0);

    // 00:30 on 27 February in Shanghai, while UTC is still on 26 February.
    service.clock.advance(chrono::Duration::hours(1));
    wait_for_overdue_rows(&service, 1).await?;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(overdue_rows(&service).await?, 1);

    let table = GetTrackingTableRequest {
        meeting_id: String::new(),
    };
    let call = client.get_tracking_table(as_user(OWNER, table));
    let status = call.await.expect_err("an empty meeting id is invalid");
    assert_eq!(status.code(), Code::InvalidArgument);
    let open = ListOpenResolutionsRequest {
        owner_id: OWNER.to_owned(),
    };
    let open = client
        .list_open_resolutions(as_user(ORGANISER, open))
        .await?
        .into_inner();
    assert_eq!(open.resolutions.len(), 1);
    assert_eq!(open.resolutions[0].resolution_id, ids[0]);
    assert!(open.resolutions[0].overdue);
    service.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_updates_on_sqlite() -> Result<()> {
    run_concurrent_updates(None).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_updates_on_postgres() -> Result<()> {
    let Some(database) = PostgresDatabase::create().await? else {
        eprintln!("TRACE_TEST_DATABASE_URL is not set; skipping the PostgreSQL concurrency test");
        return Ok(());
    };
    let outcome = run_concurrent_updates(Some(&database.url)).await;
    database.drop_database().await?;
    outcome
}

/// Sends eight updates of one resolution at once. Each either commits or fails with ABORTED
/// after its retries, and the version, update rows and update numbers agree with the
/// number of commits.
async fn run_concurrent_updates(database_url: Option<&str>) -> Result<()> {
    let nats = Nats::start()?;
    let service = Service::start(&nats.url(), database_url).await?;
    let mut client = service.client().await?;
    let ids = meeting_with_decisions(&service, &mut client, &[(OWNER, date(2026, 3, 31))]).await?;
    let resolution_id = ids[0].clone();

    let mut calls = Vec::new();
    for number in 0..8 {
        let mut client = service.client().await?;
        let note = format!("progress {number}");
        let update = update_request(&resolution_id, ResolutionStatus::InProgress, &note);
        calls.push(tokio::spawn(async move {
            client.update_resolution(as_user(OWNER, update)).await
        }));
    }
    let mut succeeded = 0;
    for call in calls {
        match call.await? {
            Ok(_) => succeeded += 1,
            Err(status) => assert_eq!(status.code(), Code::Aborted, "{}", status.message()),
        }
    }

    let stored = resolution::Entity::find_by_id(resolution_id.clone())
        .one(&service.db)
        .await?;
    let stored = stored.context("resolution row")?;
    assert!(succeeded >= 1);
    assert_eq!(stored.entity_version, 1 + succeeded);
    let updates = resolution_update::Entity::find().count(&service.db).await?;
    assert_eq!(updates, u64::try_from(succeeded)?);
    let table = GetTrackingTableRequest {
        meeting_id: stored.meeting_id.clone(),
    };
    let table = client
        .get_tracking_table(as_user(OWNER, table))
        .await?
        .into_inner();
    let numbers: Vec<u32> = table.resolutions[0]
        .updates
        .iter()
        .map(|update| update.update_number)
        .collect();
    let expected: Vec<u32> = (1..=u32::try_from(succeeded)?).collect();
    assert_eq!(numbers, expected);
    service.stop().await
}

/// Ids of a meeting written with a marker in every sealed text field.
struct MarkedMeeting {
    marker: String,
    meeting_id: String,
    cancelled_id: String,
}

/// Plans a meeting and a meeting to cancel at `level`, with `marker` in every free-text field
/// that the plan, a revision, material content, a material review and a cancellation write.
async fn plan_marked(
    client: &mut Client,
    level: Confidentiality,
    marker: &str,
) -> Result<MarkedMeeting> {
    let mut plan = plan_request();
    plan.confidentiality = level as i32;
    plan.agenda[0].title = format!("Agenda {marker}");
    let meeting = record(
        client
            .plan_meeting(as_user(ORGANISER, plan.clone()))
            .await?
            .into_inner()
            .meeting,
    );
    let meeting_id = meeting.meeting_id;
    let notices = RecordNoticesRequest {
        meeting_id: meeting_id.clone(),
        recipient_ids: attendees(),
    };
    client.record_notices(as_user(ORGANISER, notices)).await?;
    let revision = RevisePlanRequest {
        meeting_id: meeting_id.clone(),
        change_summary: format!("Revision {marker}"),
        location: Some("Meeting room 5, head office".to_owned()),
        ..Default::default()
    };
    client.revise_plan(as_user(ORGANISER, revision)).await?;

    let material = AddMaterialRequest {
        meeting_id: meeting_id.clone(),
        title: "Budget report Q1".to_owned(),
        kind: MaterialKind::Report as i32,
        author_id: OWNER.to_owned(),
        completed_at: at(-2),
        source: Some(Source::Content(format!("Material {marker}").into_bytes())),
        media_type: "text/plain; charset=utf-8".to_owned(),
    };
    let material = record(
        client
            .add_material(as_user(OWNER, material))
            .await?
            .into_inner()
            .material,
    );
    let review = ReviewMaterialRequest {
        meeting_id: meeting_id.clone(),
        material_id: material.material_id,
        review_state: ReviewState::Approved as i32,
        opinion: format!("Opinion {marker}"),
    };
    client.review_material(as_user(ORGANISER, review)).await?;

    let cancelled = record(
        client
            .plan_meeting(as_user(ORGANISER, plan))
            .await?
            .into_inner()
            .meeting,
    );
    let cancel = CancelMeetingRequest {
        meeting_id: cancelled.meeting_id.clone(),
        reason: format!("Cancelled {marker}"),
    };
    client.cancel_meeting(as_user(ORGANISER, cancel)).await?;
    Ok(MarkedMeeting {
        marker: marker.to_owned(),
        meeting_id,
        cancelled_id: cancelled.meeting_id,
    })
}

/// Records minutes, a confirmation, a resolution update and a decided delay, with the
/// meeting's marker in every free-text field, after the meeting was held.
async fn follow_up_marked(client: &mut Client, meeting: &MarkedMeeting) -> Result<()> {
    let marker = &meeting.marker;
    let mut minutes = minutes_request(&meeting.meeting_id);
    minutes.discussions[0].text = format!("Discussion {marker}");
    minutes.decisions[0].text = format!("Decision {marker}");
    client.record_minutes(as_user(TAKER, minutes)).await?;
    let send = SendMinutesForConfirmationRequest {
        meeting_id: meeting.meeting_id.clone(),
        recipient_ids: vec![OWNER.to_owned()],
    };
    client
        .send_minutes_for_confirmation(as_user(TAKER, send))
        .await?;
    let confirm = ConfirmMinutesRequest {
        meeting_id: meeting.meeting_id.clone(),
        minutes_version: 1,
        verdict: Verdict::Object as i32,
        comment: format!("Objection {marker}"),
    };
    client.confirm_minutes(as_user(OWNER, confirm)).await?;

    let table = client
        .get_tracking_table(as_user(
            ORGANISER,
            GetTrackingTableRequest {
                meeting_id: meeting.meeting_id.clone(),
            },
        ))
        .await?
        .into_inner();
    let resolution_id = record(table.resolutions[0].resolution.clone()).resolution_id;
    let update = UpdateResolutionRequest {
        problems: format!("Problems {marker}"),
        solutions: format!("Solutions {marker}"),
        ..update_request(
            &resolution_id,
            ResolutionStatus::InProgress,
            &format!("Progress {marker}"),
        )
    };
    client.update_resolution(as_user(OWNER, update)).await?;
    let delay = RequestDelayRequest {
        resolution_id: resolution_id.clone(),
        reason: format!("Delay {marker}"),
        proposed_due_date: date(2026, 3, 10),
        approver_id: String::new(),
    };
    let delay = record(
        client
            .request_delay(as_user(OWNER, delay))
            .await?
            .into_inner()
            .delay,
    );
    let decide = DecideDelayRequest {
        resolution_id,
        delay_id: delay.delay_id,
        approve: true,
        opinion: format!("Approved {marker}"),
    };
    client.decide_delay(as_user(ORGANISER, decide)).await?;
    Ok(())
}

/// Checks that the API returns every marked field as plaintext.
async fn check_marked_plaintext(client: &mut Client, meeting: &MarkedMeeting) -> Result<()> {
    let marker = &meeting.marker;
    let read = client
        .get_meeting(as_user(
            ORGANISER,
            GetMeetingRequest {
                meeting_id: meeting.meeting_id.clone(),
            },
        ))
        .await?
        .into_inner();
    let planned = record(read.meeting);
    assert_eq!(planned.agenda[0].title, format!("Agenda {marker}"));
    assert_eq!(planned.agenda[1].title, "Supplier contracts");
    assert_eq!(
        read.revisions[0].change_summary,
        format!("Revision {marker}")
    );
    assert_eq!(
        read.materials[0].review_opinion,
        format!("Opinion {marker}")
    );
    assert_eq!(
        read.minutes[0].discussions[0].text,
        format!("Discussion {marker}")
    );
    assert_eq!(read.minutes[0].discussions[1].text, discussions()[1].text);
    assert_eq!(read.confirmations[0].comment, format!("Objection {marker}"));

    let table = client
        .get_tracking_table(as_user(
            ORGANISER,
            GetTrackingTableRequest {
                meeting_id: meeting.meeting_id.clone(),
            },
        ))
        .await?
        .into_inner();
    let tracked = &table.resolutions[0];
    let resolution = record(tracked.resolution.clone());
    assert_eq!(resolution.decision_text, format!("Decision {marker}"));
    assert_eq!(resolution.due_date, date(2026, 3, 10));
    assert_eq!(
        tracked.updates[0].progress_note,
        format!("Progress {marker}")
    );
    assert_eq!(tracked.updates[0].problems, format!("Problems {marker}"));
    assert_eq!(tracked.updates[0].solutions, format!("Solutions {marker}"));
    assert_eq!(tracked.delays[0].reason, format!("Delay {marker}"));
    assert_eq!(tracked.delays[0].opinion, format!("Approved {marker}"));

    let open = client
        .list_open_resolutions(as_user(OWNER, ListOpenResolutionsRequest::default()))
        .await?
        .into_inner();
    let listed = open
        .resolutions
        .iter()
        .find(|listed| listed.resolution_id == resolution.resolution_id)
        .context("the resolution is listed as open")?;
    assert_eq!(listed.decision_text, format!("Decision {marker}"));

    let cancelled = client
        .get_meeting(as_user(
            ORGANISER,
            GetMeetingRequest {
                meeting_id: meeting.cancelled_id.clone(),
            },
        ))
        .await?
        .into_inner();
    assert_eq!(
        record(cancelled.meeting).cancel_reason,
        format!("Cancelled {marker}")
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confidential_text_is_sealed_at_rest() -> Result<()> {
    let nats = Nats::start()?;
    let service = Service::start(&nats.url(), None).await?;
    let mut client = service.client().await?;

    let levels = [
        (Confidentiality::Confidential, "marker-c41e 保密议题"),
        (Confidentiality::Secret, "marker-5b7d 绝密决议"),
        (Confidentiality::Internal, "internal-marker-93fa"),
    ];
    let mut meetings = Vec::new();
    for (level, marker) in levels {
        meetings.push(plan_marked(&mut client, level, marker).await?);
    }
    service.clock.advance(chrono::Duration::hours(27));
    for meeting in &meetings {
        follow_up_marked(&mut client, meeting).await?;
    }
    for meeting in &meetings {
        check_marked_plaintext(&mut client, meeting).await?;
    }
    service.wait_until_published().await?;

    // No database file, blob or broker file contains the plaintext of a confidential or secret
    // meeting. The internal meeting's text is stored as it is, which shows that the scan
    // reads the database and the blobs.
    let data = service._data.path().to_path_buf();
    for meeting in &meetings[..2] {
        let marker = meeting.marker.as_bytes();
        assert_eq!(files_containing(&data, marker)?, Vec::<PathBuf>::new());
        assert_eq!(
            files_containing(nats.store.path(), marker)?,
            Vec::<PathBuf>::new()
        );
    }
    let internal = files_containing(&data, meetings[2].marker.as_bytes())?;
    assert!(
        internal
            .iter()
            .any(|path| path.to_string_lossy().contains("meeting.db")),
        "{internal:?}"
    );
    assert!(
        internal
            .iter()
            .any(|path| path.starts_with(data.join("blobs"))),
        "{internal:?}"
    );
    let sealed_materials = std::fs::read_dir(data.join("blobs/sealed"))?.count();
    assert_eq!(
        sealed_materials, 2,
        "one sealed material per confidential meeting"
    );
    service.stop().await
}

/// Writes a 32-byte key of `byte` as hex to `{id}.hex` in `folder`, and returns the key id
/// and the file path.
fn key_file(folder: &std::path::Path, id: &str, byte: u8) -> Result<(String, String)> {
    let path = folder.join(format!("{id}.hex"));
    std::fs::write(&path, hex::encode([byte; 32]))?;
    Ok((id.to_owned(), path.display().to_string()))
}

fn encryption(keys: &[(String, String)], active: &str) -> EncryptionSettings {
    EncryptionSettings {
        key_files: keys.iter().cloned().collect(),
        active_key_id: Some(active.to_owned()),
        allow_development_key: false,
    }
}

/// Runs `tracectl rewrap` on `database_url` from the old key to the new one and returns
/// its standard output.
fn run_rewrap(database_url: &str, keys: &[(String, String)]) -> Result<String> {
    // The test binary is in `target/debug/deps`; `cargo build --workspace --bins` puts
    // tracectl in `target/debug`.
    let binary = std::env::current_exe()?
        .parent()
        .and_then(std::path::Path::parent)
        .context("test binary folder")?
        .join("tracectl");
    anyhow::ensure!(
        binary.exists(),
        "{} not found; run cargo build --workspace --bins first",
        binary.display()
    );
    let mut command = Command::new(&binary);
    command.args(["rewrap", "--database", database_url, "--active", "k2026"]);
    for (id, path) in keys {
        command.args(["--key", &format!("{id}={path}")]);
    }
    let output = command.output()?;
    anyhow::ensure!(
        output.status.success(),
        "tracectl rewrap failed: {output:?}"
    );
    Ok(String::from_utf8(output.stdout)?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rewrap_keeps_sealed_text_readable() -> Result<()> {
    let nats = Nats::start()?;
    let folder = tempfile::Builder::new()
        .prefix("meeting-rewrap-")
        .tempdir()?;
    let database_url = format!(
        "sqlite://{}?mode=rwc",
        folder.path().join("meeting.db").display()
    );
    let old = key_file(folder.path(), "k2025", 0x11)?;
    let new = key_file(folder.path(), "k2026", 0x22)?;

    let service = Service::start_with(
        &nats.url(),
        Some(&database_url),
        3600,
        encryption(std::slice::from_ref(&old), "k2025"),
    )
    .await?;
    let mut client = service.client().await?;
    let meeting = plan_marked(&mut client, Confidentiality::Secret, "marker-77c0 轮换").await?;
    service.clock.advance(chrono::Duration::hours(27));
    follow_up_marked(&mut client, &meeting).await?;
    service.wait_until_published().await?;
    let before = minutes::Entity::find().one(&service.db).await?;
    let before = before.context("minutes row")?.discussions;
    service.stop().await?;

    // Every sealed text value of the two secret meetings moves to the new key: four agenda
    // items, a plan revision, a material review, two minutes columns, a confirmation, a
    // cancel reason, two resolutions, three update columns and two delay columns.
    let keys = [old, new.clone()];
    let output = run_rewrap(&database_url, &keys)?;
    assert!(
        output.contains("rewrapped 17 of 17 sealed text values to key k2026"),
        "{output}"
    );
    let again = run_rewrap(&database_url, &keys)?;
    assert!(
        again.contains("rewrapped 0 of 17 sealed text values to key k2026"),
        "{again}"
    );

    // The service with only the new key reads the same plaintext.
    let service = Service::start_with(
        &nats.url(),
        Some(&database_url),
        3600,
        encryption(&[new], "k2026"),
    )
    .await?;
    let after = minutes::Entity::find().one(&service.db).await?;
    let after = after.context("minutes row")?.discussions;
    assert_ne!(after, before);
    assert!(
        after.starts_with(trace_runtime::sealed_text::PREFIX),
        "{after}"
    );
    let mut client = service.client().await?;
    check_marked_plaintext(&mut client, &meeting).await?;
    service.stop().await
}

// ---------------------------------------------------------------------------------------
// Read scope.

/// A user of another department than the meeting's.
const FOREIGN_EMPLOYEE: &str = "qian.jiu";
const FOREIGN_DEPARTMENT: &str = "finance";

fn as_principal<T>(user_id: &str, department: &str, roles: &[&str], message: T) -> Request<T> {
    let mut request = Request::new(message);
    attach_identity(&mut request, user_id, department, roles, None);
    request
}

fn as_foreign<T>(message: T) -> Request<T> {
    as_principal(
        FOREIGN_EMPLOYEE,
        FOREIGN_DEPARTMENT,
        &[role::EMPLOYEE],
        message,
    )
}

fn as_foreign_head<T>(message: T) -> Request<T> {
    as_principal(
        "zhou.jie",
        FOREIGN_DEPARTMENT,
        &[role::DEPARTMENT_HEAD],
        message,
    )
}

fn as_audit<T>(message: T) -> Request<T> {
    as_principal("zhao.yun", "audit", &[role::AUDIT], message)
}

fn get_request(meeting_id: &str) -> GetMeetingRequest {
    GetMeetingRequest {
        meeting_id: meeting_id.to_owned(),
    }
}

fn table_request(meeting_id: &str) -> GetTrackingTableRequest {
    GetTrackingTableRequest {
        meeting_id: meeting_id.to_owned(),
    }
}

/// Decodes the outbox row of the event `event_id`.
async fn outbox_envelope(service: &Service, event_id: &str) -> Result<Envelope> {
    let row = outbox_event::Entity::find()
        .filter(outbox_event::Column::EventId.eq(event_id))
        .one(&service.db)
        .await?
        .with_context(|| format!("no outbox row for event {event_id}"))?;
    Ok(Envelope::decode(row.envelope.as_slice())?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_scope_on_sqlite() -> Result<()> {
    run_read_scope(None).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_scope_on_postgres() -> Result<()> {
    let Some(database) = PostgresDatabase::create().await? else {
        eprintln!("TRACE_TEST_DATABASE_URL is not set; skipping the PostgreSQL read scope test");
        return Ok(());
    };
    let outcome = run_read_scope(Some(&database.url)).await;
    database.drop_database().await?;
    outcome
}

/// Reads one meeting of `DEPARTMENT` by id as callers inside and outside its read scope.
async fn run_read_scope(database_url: Option<&str>) -> Result<()> {
    let nats = Nats::start()?;
    let service = Service::start(&nats.url(), database_url).await?;
    let mut client = service.client().await?;
    let resolutions =
        meeting_with_decisions(&service, &mut client, &[(OWNER, date(2026, 3, 20))]).await?;
    let meeting_id = resolution::Entity::find_by_id(resolutions[0].clone())
        .one(&service.db)
        .await?
        .context("resolution row")?
        .meeting_id;
    let missing_id = uuid::Uuid::now_v7().to_string();
    let before = service.snapshot().await?;

    // Another department's employee is denied both by-id reads.
    let denied_get = client
        .get_meeting(as_foreign(get_request(&meeting_id)))
        .await
        .expect_err("another department's employee reads the meeting");
    let (get_message, get_event) = recorded_denial(&denied_get, &meeting_id);
    let denied_table = client
        .get_tracking_table(as_foreign(table_request(&meeting_id)))
        .await
        .expect_err("another department's employee reads the tracking table");
    let (table_message, table_event) = recorded_denial(&denied_table, &meeting_id);

    // A missing id is denied with the same message, and also names a recorded event.
    let denied_missing = client
        .get_meeting(as_foreign(get_request(&missing_id)))
        .await
        .expect_err("a missing meeting is read");
    let (missing_message, missing_event) = recorded_denial(&denied_missing, &missing_id);
    assert_eq!(get_message, missing_message);
    assert_eq!(table_message, missing_message);
    assert!(
        !missing_message.contains(FOREIGN_DEPARTMENT) && !missing_message.contains(DEPARTMENT),
        "the message names a department: {missing_message}"
    );
    let missing_table = client
        .get_tracking_table(as_foreign(table_request(&missing_id)))
        .await
        .expect_err("a missing tracking table is read");
    assert_eq!(
        recorded_denial(&missing_table, &missing_id).0,
        missing_message
    );

    // The denials of the existing meeting are its own `read_denied` events.
    for (event_id, method) in [
        (&get_event, "GetMeeting"),
        (&table_event, "GetTrackingTable"),
    ] {
        let envelope = outbox_envelope(&service, event_id).await?;
        assert_eq!(envelope.subject, "trace.meeting.meeting.read_denied");
        assert_eq!(envelope.entity_id, meeting_id);
        let actor = envelope.actor.clone().context("actor")?;
        assert_eq!(actor.user_id, FOREIGN_EMPLOYEE);
        assert_eq!(actor.department, FOREIGN_DEPARTMENT);
        let payload = envelope.payload.context("payload")?;
        assert!(
            payload
                .type_url
                .ends_with("/trace.meeting.v1.MeetingReadDenied")
        );
        let payload = MeetingReadDenied::decode(payload.value.as_slice())?;
        assert_eq!(payload.method, method);
        assert!(
            payload.reason.contains(FOREIGN_EMPLOYEE),
            "reason: {}",
            payload.reason
        );
    }
    // The denial of the missing meeting is an `access.denied` event of the same caller.
    let envelope = outbox_envelope(&service, &missing_event).await?;
    assert_eq!(envelope.subject, "trace.meeting.access.denied");
    assert_eq!(envelope.actor.context("actor")?.user_id, FOREIGN_EMPLOYEE);
    let payload = envelope.payload.context("payload")?;
    assert!(payload.type_url.ends_with("/trace.common.v1.AccessDenied"));
    let payload = trace_proto::common::v1::AccessDenied::decode(payload.value.as_slice())?;
    assert_eq!(
        payload.method,
        "/trace.meeting.v1.MeetingService/GetMeeting"
    );
    assert_eq!(payload.code, "PERMISSION_DENIED");

    // A department head or supervisor of another department is denied too.
    for held in [role::DEPARTMENT_HEAD, role::SUPERVISOR] {
        let call = client
            .get_meeting(as_principal(
                "zhou.jie",
                FOREIGN_DEPARTMENT,
                &[held],
                get_request(&meeting_id),
            ))
            .await;
        let status = call.expect_err("another department's head reads the meeting");
        assert_eq!(status.code(), Code::PermissionDenied, "{held}");
    }
    // An employee of the meeting's own department who takes no part is denied.
    let status = client
        .get_meeting(as_user(OUTSIDER, get_request(&meeting_id)))
        .await
        .expect_err("an uninvolved employee reads the meeting");
    assert_eq!(status.code(), Code::PermissionDenied);

    // Inside the scope: the organiser, an attendee, the resolution owner, a supervisor and a
    // department head of the meeting's department, audit and administration.
    let head = |user: &str, held: &str| (user.to_owned(), DEPARTMENT.to_owned(), held.to_owned());
    let readers = [
        head(ORGANISER, role::EMPLOYEE),
        head(TAKER, role::EMPLOYEE),
        head(OWNER, role::EMPLOYEE),
        head("he.shi", role::SUPERVISOR),
        head("he.shi", role::DEPARTMENT_HEAD),
        (
            "zhao.yun".to_owned(),
            "audit".to_owned(),
            role::AUDIT.to_owned(),
        ),
        (
            "li.wei".to_owned(),
            "admin".to_owned(),
            role::ADMINISTRATION.to_owned(),
        ),
    ];
    for (user, department, held) in &readers {
        let found = client
            .get_meeting(as_principal(
                user,
                department,
                &[held.as_str()],
                get_request(&meeting_id),
            ))
            .await
            .map_err(|status| anyhow::anyhow!("{user} as {held}: {status:?}"))?
            .into_inner();
        let meeting = record(found.meeting);
        assert_eq!(meeting.meeting_id, meeting_id, "{user} as {held}");
        assert_eq!(meeting.department, DEPARTMENT, "{user} as {held}");
        let table = client
            .get_tracking_table(as_principal(
                user,
                department,
                &[held.as_str()],
                table_request(&meeting_id),
            ))
            .await
            .map_err(|status| anyhow::anyhow!("{user} as {held}: {status:?}"))?
            .into_inner();
        assert_eq!(table.resolutions.len(), 1, "{user} as {held}");
    }

    // Audit reads the whole archive, so a missing meeting is simply not found.
    let status = client
        .get_meeting(as_principal(
            "zhao.yun",
            "audit",
            &[role::AUDIT],
            get_request(&missing_id),
        ))
        .await
        .expect_err("audit reads a missing meeting");
    assert_eq!(status.code(), Code::NotFound);

    // Permitted reads of an INTERNAL meeting record nothing. The five denials of the
    // existing meeting add its events and versions and change nothing else.
    let after = service.snapshot().await?;
    assert_eq!(after[0], before[0] + 5, "read_denied events");
    assert_eq!(after[12], before[12] + 5, "meeting versions");
    assert_eq!(after[1..12], before[1..12]);
    assert_eq!(after[13], before[13], "resolution versions");
    service.stop().await
}

/// Permitted reads of a CONFIDENTIAL meeting are recorded as its `read` events.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confidential_reads_are_recorded() -> Result<()> {
    let nats = Nats::start()?;
    let service = Service::start(&nats.url(), None).await?;
    let mut client = service.client().await?;
    let mut plan = plan_request();
    plan.confidentiality = Confidentiality::Confidential as i32;
    let planned = client
        .plan_meeting(as_user(ORGANISER, plan))
        .await?
        .into_inner();
    let meeting_id = record(planned.meeting).meeting_id;

    let found = client
        .get_meeting(as_user(OWNER, get_request(&meeting_id)))
        .await?
        .into_inner();
    assert_eq!(record(found.meeting).entity_version, 2);
    client
        .get_tracking_table(as_user(OWNER, table_request(&meeting_id)))
        .await?;

    let rows = outbox_event::Entity::find()
        .filter(outbox_event::Column::EntityId.eq(meeting_id.as_str()))
        .all(&service.db)
        .await?;
    let subjects: Vec<&str> = rows.iter().map(|row| row.subject.as_str()).collect();
    assert_eq!(
        subjects,
        [
            "trace.meeting.meeting.planned",
            "trace.meeting.meeting.read",
            "trace.meeting.meeting.read",
        ]
    );
    for row in &rows[1..] {
        let envelope = Envelope::decode(row.envelope.as_slice())?;
        assert_eq!(envelope.actor.context("actor")?.user_id, OWNER);
        // The payload of a CONFIDENTIAL event is sealed in the outbox.
        assert!(envelope.payload.is_none());
        assert!(envelope.sealed_payload.is_some());
    }
    service.stop().await
}

/// Plans a meeting starting `hours` after the test's start, as `organiser` of `department`.
async fn plan_as(
    client: &mut Client,
    organiser: &str,
    department: &str,
    hours: i64,
    attendee_ids: &[&str],
) -> Result<String> {
    let mut plan = plan_request();
    plan.start_time = at(hours);
    plan.end_time = at(hours + 1);
    plan.attendee_ids = attendee_ids.iter().map(|id| (*id).to_owned()).collect();
    plan.agenda[0].presenter_id = String::new();
    let planned = client
        .plan_meeting(as_principal(organiser, department, &[role::EMPLOYEE], plan))
        .await?
        .into_inner();
    Ok(record(planned.meeting).meeting_id)
}

/// Lists every meeting `request` selects as `caller`, `page_size` at a time, and checks
/// that no page but the last is short.
async fn list_all(
    client: &mut Client,
    caller: impl Fn(ListMeetingsRequest) -> Request<ListMeetingsRequest>,
    page_size: i32,
) -> Result<Vec<String>> {
    let mut listed = Vec::new();
    let mut token = String::new();
    loop {
        let request = ListMeetingsRequest {
            page: Some(trace_proto::common::v1::PageRequest {
                page_size,
                page_token: token.clone(),
            }),
            ..Default::default()
        };
        let page = client.list_meetings(caller(request)).await?.into_inner();
        let count = page.meetings.len();
        listed.extend(page.meetings.into_iter().map(|meeting| meeting.meeting_id));
        if page.next_page_token.is_empty() {
            assert!(count <= usize::try_from(page_size)?);
            return Ok(listed);
        }
        assert_eq!(
            count,
            usize::try_from(page_size)?,
            "a short page before the last"
        );
        token = page.next_page_token;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listings_keep_to_read_scope() -> Result<()> {
    let nats = Nats::start()?;
    let service = Service::start(&nats.url(), None).await?;
    let mut client = service.client().await?;

    // Meetings ordered by start: runs of foreign meetings between the ones OWNER may read,
    // so a filter applied after the LIMIT would return empty or short pages.
    let mut own = Vec::new();
    let mut foreign = Vec::new();
    for slot in 0..4 {
        let base = 30 + slot * 10;
        own.push(plan_as(&mut client, ORGANISER, DEPARTMENT, base, &[OWNER]).await?);
        for offset in 1..=3 {
            foreign.push(
                plan_as(
                    &mut client,
                    FOREIGN_EMPLOYEE,
                    FOREIGN_DEPARTMENT,
                    base + offset,
                    &[TAKER],
                )
                .await?,
            );
        }
    }
    // OWNER organises one meeting of the foreign department and owns nothing else there.
    let organised = plan_as(&mut client, OWNER, FOREIGN_DEPARTMENT, 200, &[TAKER]).await?;
    let mut expected = own.clone();
    expected.push(organised.clone());

    for page_size in [1, 2, 3] {
        let listed = list_all(&mut client, |message| as_user(OWNER, message), page_size).await?;
        assert_eq!(listed, expected, "page size {page_size}");
    }

    // A department head of the foreign department lists its meetings, and OWNER's
    // meeting organised there, but not the admin-office ones.
    let mut foreign_expected = foreign.clone();
    foreign_expected.push(organised.clone());
    assert_eq!(
        list_all(&mut client, as_foreign_head, 2).await?,
        foreign_expected
    );

    // An uninvolved employee of the admin office lists nothing, and audit lists all 17.
    assert!(
        list_all(&mut client, |message| as_user(OUTSIDER, message), 2)
            .await?
            .is_empty()
    );
    assert_eq!(list_all(&mut client, as_audit, 5).await?.len(), 17);

    // Open resolutions: an owner's list contains only resolutions of meetings in the caller's
    // scope.
    let resolutions =
        meeting_with_decisions(&service, &mut client, &[(OWNER, date(2026, 3, 20))]).await?;
    let of_owner = || ListOpenResolutionsRequest {
        owner_id: OWNER.to_owned(),
    };
    let open = |response: ListOpenResolutionsResponse| -> Vec<String> {
        response
            .resolutions
            .into_iter()
            .map(|resolution| resolution.resolution_id)
            .collect()
    };
    let by_owner = client
        .list_open_resolutions(as_user(OWNER, of_owner()))
        .await?;
    assert_eq!(open(by_owner.into_inner()), resolutions);
    let by_outsider = client
        .list_open_resolutions(as_user(OUTSIDER, of_owner()))
        .await?;
    assert!(open(by_outsider.into_inner()).is_empty());
    let by_foreign_head = client
        .list_open_resolutions(as_foreign_head(of_owner()))
        .await?;
    assert!(open(by_foreign_head.into_inner()).is_empty());
    let by_audit = client.list_open_resolutions(as_audit(of_owner())).await?;
    assert_eq!(open(by_audit.into_inner()), resolutions);
    service.stop().await
}

// ---------------------------------------------------------------------------------------
// Access requests for confidential meetings.

/// A department head of the meeting's department who takes no part in it.
const HEAD: &str = "he.shi";
/// A supervisor of the meeting's department, who decides access requests.
const SUPERVISOR: &str = "wu.di";

fn as_head<T>(message: T) -> Request<T> {
    as_principal(HEAD, DEPARTMENT, &[role::DEPARTMENT_HEAD], message)
}

fn as_supervisor<T>(message: T) -> Request<T> {
    as_principal(SUPERVISOR, DEPARTMENT, &[role::SUPERVISOR], message)
}

/// Plans a meeting of `DEPARTMENT` at `level` as the organiser and returns its id.
async fn plan_at_level(client: &mut Client, level: Confidentiality) -> Result<String> {
    let mut plan = plan_request();
    plan.confidentiality = level as i32;
    let planned = client
        .plan_meeting(as_user(ORGANISER, plan))
        .await?
        .into_inner();
    Ok(record(planned.meeting).meeting_id)
}

fn access_request(meeting_id: &str) -> RequestAccessRequest {
    RequestAccessRequest {
        meeting_id: meeting_id.to_owned(),
        purpose: "Review of the budget decisions".to_owned(),
    }
}

/// Approves `access_request_id` until `hours` after the test's start.
fn approval(access_request_id: &str, hours: i64) -> DecideAccessRequest {
    DecideAccessRequest {
        access_request_id: access_request_id.to_owned(),
        approve: true,
        opinion: "Needed for the quarterly review".to_owned(),
        expires_at: at(hours),
    }
}

/// Decodes the payload of the outbox event `event_id`, opening it with the development key.
async fn event_payload<M: Message + Default>(
    service: &Service,
    event_id: &str,
    subject: &str,
) -> Result<M> {
    let envelope = outbox_envelope(service, event_id).await?;
    assert_eq!(envelope.subject, subject);
    // The payloads of CONFIDENTIAL and SECRET meetings are sealed in the outbox.
    assert!(
        envelope.payload.is_none(),
        "{subject} payload is not sealed"
    );
    let keyring = trace_runtime::seal::Keyring::development();
    let payload = trace_runtime::event::open_payload(&keyring, &envelope)?.context("payload")?;
    Ok(M::decode(payload.value.as_slice())?)
}

/// Returns the id of the meeting's newest outbox event.
async fn last_event_id(service: &Service, meeting_id: &str) -> Result<String> {
    let newest = outbox_event::Entity::find()
        .filter(outbox_event::Column::EntityId.eq(meeting_id))
        .order_by_desc(outbox_event::Column::Seq)
        .one(&service.db)
        .await?;
    Ok(newest.context("no outbox rows")?.event_id)
}

/// Reads the meeting as the head, expects a denial, and returns its message and the
/// `read_denied` payload.
async fn head_denied(
    service: &Service,
    client: &mut Client,
    meeting_id: &str,
) -> Result<(String, MeetingReadDenied)> {
    let status = client
        .get_meeting(as_head(get_request(meeting_id)))
        .await
        .expect_err("the head reads the meeting");
    let (message, event_id) = recorded_denial(&status, meeting_id);
    let payload = event_payload(service, &event_id, "trace.meeting.meeting.read_denied").await?;
    Ok((message, payload))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_requests_on_sqlite() -> Result<()> {
    run_access_requests(None).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_requests_on_postgres() -> Result<()> {
    let Some(database) = PostgresDatabase::create().await? else {
        eprintln!("TRACE_TEST_DATABASE_URL is not set; skipping the PostgreSQL access test");
        return Ok(());
    };
    let outcome = run_access_requests(Some(&database.url)).await;
    database.drop_database().await?;
    outcome
}

/// Reads a CONFIDENTIAL and a SECRET meeting as a department head of their department who
/// takes no part in them, before and after an access request and its decision.
async fn run_access_requests(database_url: Option<&str>) -> Result<()> {
    let nats = Nats::start()?;
    let service = Service::start(&nats.url(), database_url).await?;
    let mut client = service.client().await?;
    let meeting_id = plan_at_level(&mut client, Confidentiality::Confidential).await?;
    let secret_id = plan_at_level(&mut client, Confidentiality::Secret).await?;

    // Without a request the head is denied, and the denial names no request.
    let (message, denial) = head_denied(&service, &mut client, &meeting_id).await?;
    assert!(
        message.contains("he.shi has no approved access request for meeting <id>;"),
        "{message}"
    );
    assert_eq!(denial.method, "GetMeeting");
    assert_eq!(denial.access_request_id, "");
    let status = client
        .get_tracking_table(as_head(table_request(&meeting_id)))
        .await
        .expect_err("the head reads the tracking table");
    assert_eq!(status.code(), Code::PermissionDenied);

    // A participant reads without a request, and may not ask for one.
    client
        .get_meeting(as_user(OWNER, get_request(&meeting_id)))
        .await?;
    let status = client
        .request_access(as_user(OWNER, access_request(&meeting_id)))
        .await
        .expect_err("a participant requests access");
    assert_eq!(status.code(), Code::FailedPrecondition);

    // A pending request is named by the denial.
    let requested = client
        .request_access(as_head(access_request(&meeting_id)))
        .await?
        .into_inner();
    let pending = requested.access_request.context("access request")?;
    assert_eq!(pending.meeting_id, meeting_id);
    assert_eq!(pending.requester_id, HEAD);
    assert_eq!(pending.state, AccessRequestState::Pending as i32);
    let request_id = pending.access_request_id.clone();
    let payload: MeetingAccessRequested = event_payload(
        &service,
        &requested.event_id,
        "trace.meeting.meeting.access_requested",
    )
    .await?;
    assert_eq!(payload.access_request_id, request_id);
    assert_eq!(payload.purpose, "Review of the budget decisions");
    let (message, denial) = head_denied(&service, &mut client, &meeting_id).await?;
    assert!(message.contains("is PENDING"), "{message}");
    assert_eq!(denial.access_request_id, request_id);

    // The requester may not decide their own request, and neither may a head of another
    // department or an employee of the meeting's department.
    let status = client
        .decide_access(as_head(approval(&request_id, 24)))
        .await
        .expect_err("the requester decides their own request");
    assert_eq!(status.code(), Code::PermissionDenied);
    assert!(
        status.message().contains("their own access request"),
        "{}",
        status.message()
    );
    let status = client
        .decide_access(as_foreign_head(approval(&request_id, 24)))
        .await
        .expect_err("a head of another department decides");
    assert_eq!(status.code(), Code::PermissionDenied);
    // An unknown request gets the same error, so it does not show which requests exist.
    let unknown_id = uuid::Uuid::now_v7().to_string();
    let missing = client
        .decide_access(as_foreign_head(approval(&unknown_id, 24)))
        .await
        .expect_err("an unknown request is decided");
    assert_eq!(missing.code(), Code::PermissionDenied);
    assert_eq!(
        missing.message().replace(&unknown_id, "<id>"),
        status.message().replace(&request_id, "<id>")
    );
    let status = client
        .decide_access(as_user(ORGANISER, approval(&request_id, 24)))
        .await
        .expect_err("the organiser decides");
    assert_eq!(status.code(), Code::PermissionDenied);

    // An approval ends at most 90 days ahead.
    let status = client
        .decide_access(as_supervisor(approval(&request_id, 91 * 24)))
        .await
        .expect_err("an approval of 91 days");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(violation_fields(&status), ["expires_at"]);

    // With the supervisor's approval the head reads, and each read names the request.
    let decided = client
        .decide_access(as_supervisor(approval(&request_id, 24)))
        .await?
        .into_inner();
    let approved = decided.access_request.context("access request")?;
    assert_eq!(approved.state, AccessRequestState::Approved as i32);
    assert_eq!(approved.approver_id, SUPERVISOR);
    assert_eq!(approved.expires_at, at(24));
    let payload: MeetingAccessDecided = event_payload(
        &service,
        &decided.event_id,
        "trace.meeting.meeting.access_approved",
    )
    .await?;
    assert!(payload.approved);
    assert_eq!(payload.requester_id, HEAD);
    let status = client
        .decide_access(as_supervisor(approval(&request_id, 24)))
        .await
        .expect_err("a decided request is decided again");
    assert_eq!(status.code(), Code::FailedPrecondition);

    let found = client
        .get_meeting(as_head(get_request(&meeting_id)))
        .await?
        .into_inner();
    assert_eq!(record(found.meeting).meeting_id, meeting_id);
    let read: MeetingRead = event_payload(
        &service,
        &last_event_id(&service, &meeting_id).await?,
        "trace.meeting.meeting.read",
    )
    .await?;
    assert_eq!(read.method, "GetMeeting");
    assert_eq!(read.access_request_id, request_id);
    client
        .get_tracking_table(as_head(table_request(&meeting_id)))
        .await?;
    let read: MeetingRead = event_payload(
        &service,
        &last_event_id(&service, &meeting_id).await?,
        "trace.meeting.meeting.read",
    )
    .await?;
    assert_eq!(read.method, "GetTrackingTable");
    assert_eq!(read.access_request_id, request_id);

    // The head lists every request of their department's meeting, and sealed text reads
    // back as plaintext.
    let listed = client
        .list_access_requests(as_head(ListAccessRequestsRequest {
            meeting_id: meeting_id.clone(),
        }))
        .await?
        .into_inner();
    assert_eq!(listed.access_requests.len(), 1);
    assert_eq!(
        listed.access_requests[0].purpose,
        "Review of the budget decisions"
    );
    assert_eq!(
        listed.access_requests[0].opinion,
        "Needed for the quarterly review"
    );

    // After the approval ends the head is denied again, naming the expired request.
    service.advance_days(2);
    let (message, denial) = head_denied(&service, &mut client, &meeting_id).await?;
    assert!(message.contains("expired at"), "{message}");
    assert_eq!(denial.access_request_id, request_id);

    // A rejected request is named by the denial too.
    let requested = client
        .request_access(as_head(access_request(&meeting_id)))
        .await?
        .into_inner();
    let rejected_id = record(requested.access_request).access_request_id;
    let mut rejection = approval(&rejected_id, 0);
    rejection.approve = false;
    rejection.expires_at = None;
    let decided = client
        .decide_access(as_supervisor(rejection))
        .await?
        .into_inner();
    assert_eq!(
        record(decided.access_request).state,
        AccessRequestState::Rejected as i32
    );
    let (message, denial) = head_denied(&service, &mut client, &meeting_id).await?;
    assert!(message.contains("is REJECTED"), "{message}");
    assert_eq!(denial.access_request_id, rejected_id);

    // A SECRET meeting also needs the head's acceptance of the agreement.
    let requested = client
        .request_access(as_head(access_request(&secret_id)))
        .await?
        .into_inner();
    let secret_request = record(requested.access_request).access_request_id;
    client
        .decide_access(as_supervisor(approval(&secret_request, 72)))
        .await?;
    let (message, denial) = head_denied(&service, &mut client, &secret_id).await?;
    assert!(
        message.contains("needs the caller's acceptance of the current confidentiality"),
        "{message}"
    );
    assert_eq!(denial.access_request_id, secret_request);
    let accepted = client
        .accept_agreement(as_head(AcceptAgreementRequest {
            agreement_version: "2026-01".to_owned(),
        }))
        .await?
        .into_inner();
    assert!(!accepted.event_id.is_empty());
    let found = client
        .get_meeting(as_head(get_request(&secret_id)))
        .await?
        .into_inner();
    assert_eq!(record(found.meeting).meeting_id, secret_id);
    let read: MeetingRead = event_payload(
        &service,
        &last_event_id(&service, &secret_id).await?,
        "trace.meeting.meeting.read",
    )
    .await?;
    assert_eq!(read.access_request_id, secret_request);

    // Callers outside the read scope are denied as before, whatever they request.
    let status = client
        .request_access(as_foreign(access_request(&meeting_id)))
        .await
        .expect_err("another department's employee requests access");
    assert_eq!(status.code(), Code::PermissionDenied);
    service.stop().await
}

/// Counts the outbox events of `meeting_id`.
async fn meeting_events(service: &Service, meeting_id: &str) -> Result<usize> {
    let rows = outbox_event::Entity::find()
        .filter(outbox_event::Column::EntityId.eq(meeting_id))
        .all(&service.db)
        .await?;
    Ok(rows.len())
}

/// Lists the meetings of one page as `caller` and returns the one with `meeting_id`.
async fn listed_meeting(
    client: &mut Client,
    request: Request<ListMeetingsRequest>,
    meeting_id: &str,
) -> Result<Meeting> {
    let listed = client.list_meetings(request).await?.into_inner();
    listed
        .meetings
        .into_iter()
        .find(|meeting| meeting.meeting_id == meeting_id)
        .context("the meeting is not listed")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listed_reads_on_sqlite() -> Result<()> {
    run_listed_reads(None).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listed_reads_on_postgres() -> Result<()> {
    let Some(database) = PostgresDatabase::create().await? else {
        eprintln!("TRACE_TEST_DATABASE_URL is not set; skipping the PostgreSQL listing test");
        return Ok(());
    };
    let outcome = run_listed_reads(Some(&database.url)).await;
    database.drop_database().await?;
    outcome
}

/// Returns the payload of the meeting's newest event, which must be a `read` event.
async fn last_read(service: &Service, meeting_id: &str) -> Result<MeetingRead> {
    let event_id = last_event_id(service, meeting_id).await?;
    event_payload(service, &event_id, "trace.meeting.meeting.read").await
}

/// Listings show the sealed fields of a CONFIDENTIAL meeting to a department head who takes
/// no part in it only under an approved request. Every listing that shows them, to a
/// participant or under the approval, is a `read` event, and withheld fields and INTERNAL
/// meetings are not.
async fn run_listed_reads(database_url: Option<&str>) -> Result<()> {
    let nats = Nats::start()?;
    let service = Service::start(&nats.url(), database_url).await?;
    let mut client = service.client().await?;
    let internal_id = plan_at_level(&mut client, Confidentiality::Internal).await?;
    let meeting_id = plan_at_level(&mut client, Confidentiality::Confidential).await?;
    service.clock.advance(chrono::Duration::hours(27));
    let mut minutes = minutes_request(&meeting_id);
    minutes.decisions = vec![Decision {
        text: "Cut the travel budget by a tenth".to_owned(),
        owner_id: OWNER.to_owned(),
        due_date: date(2026, 3, 20),
    }];
    client
        .record_minutes(as_user(TAKER, minutes))
        .await?
        .into_inner();
    let open_of_owner = || ListOpenResolutionsRequest {
        owner_id: OWNER.to_owned(),
    };
    let list = ListMeetingsRequest::default;

    // Without a request the head gets the meeting's plaintext fields but no agenda titles,
    // and the listing adds no event. The INTERNAL meeting is returned whole.
    let events_before = meeting_events(&service, &meeting_id).await?;
    let internal_events = meeting_events(&service, &internal_id).await?;
    let withheld = listed_meeting(&mut client, as_head(list()), &meeting_id).await?;
    assert!(withheld.content_withheld);
    assert_eq!(withheld.topic, "第一季度預算會議");
    let titles: Vec<&str> = withheld
        .agenda
        .iter()
        .map(|item| item.title.as_str())
        .collect();
    assert_eq!(titles, ["", ""]);
    assert_eq!(withheld.agenda[0].presenter_id, OWNER);
    let internal = listed_meeting(&mut client, as_head(list()), &internal_id).await?;
    assert!(!internal.content_withheld);
    assert_eq!(internal.agenda[0].title, "Budget review");
    let resolutions = client
        .list_open_resolutions(as_head(open_of_owner()))
        .await?
        .into_inner()
        .resolutions;
    assert_eq!(resolutions.len(), 1);
    assert!(resolutions[0].content_withheld);
    assert_eq!(resolutions[0].decision_text, "");
    assert_eq!(meeting_events(&service, &meeting_id).await?, events_before);

    // The owner takes part, so their listings show everything, and each listing is a `read`
    // event naming no request. The INTERNAL meeting on the same page gets none.
    let owner_listed = listed_meeting(&mut client, as_user(OWNER, list()), &meeting_id).await?;
    assert!(!owner_listed.content_withheld);
    assert_eq!(owner_listed.agenda[0].title, "Budget review");
    assert_eq!(
        meeting_events(&service, &meeting_id).await?,
        events_before + 1
    );
    let read = last_read(&service, &meeting_id).await?;
    assert_eq!(read.method, "ListMeetings");
    assert_eq!(read.access_request_id, "");
    assert_eq!(
        usize::try_from(owner_listed.entity_version)?,
        meeting_events(&service, &meeting_id).await?
    );
    let internal = listed_meeting(&mut client, as_user(OWNER, list()), &internal_id).await?;
    assert_eq!(internal.agenda[0].title, "Budget review");
    assert_eq!(
        meeting_events(&service, &internal_id).await?,
        internal_events
    );
    assert_eq!(
        meeting_events(&service, &meeting_id).await?,
        events_before + 2
    );
    let own = client
        .list_open_resolutions(as_user(OWNER, open_of_owner()))
        .await?
        .into_inner()
        .resolutions;
    assert_eq!(own[0].decision_text, "Cut the travel budget by a tenth");
    assert!(!own[0].content_withheld);
    assert_eq!(
        meeting_events(&service, &meeting_id).await?,
        events_before + 3
    );
    let read = last_read(&service, &meeting_id).await?;
    assert_eq!(read.method, "ListOpenResolutions");
    assert_eq!(read.access_request_id, "");
    let events_before = events_before + 3;

    // Under an approved request the head's listings show the fields, and each listing is a
    // `read` event naming the request and its method.
    let requested = client
        .request_access(as_head(access_request(&meeting_id)))
        .await?
        .into_inner();
    let request_id = record(requested.access_request).access_request_id;
    client
        .decide_access(as_supervisor(approval(&request_id, 100)))
        .await?;
    let approved = listed_meeting(&mut client, as_head(list()), &meeting_id).await?;
    assert!(!approved.content_withheld);
    assert_eq!(approved.agenda[1].title, "Supplier contracts");
    // The request and its decision are two events, and the listing is the third.
    assert_eq!(
        meeting_events(&service, &meeting_id).await?,
        events_before + 3
    );
    let read = last_read(&service, &meeting_id).await?;
    assert_eq!(read.method, "ListMeetings");
    assert_eq!(read.access_request_id, request_id);
    // The listed version is the one of the read event.
    assert_eq!(
        usize::try_from(approved.entity_version)?,
        meeting_events(&service, &meeting_id).await?
    );
    let resolutions = client
        .list_open_resolutions(as_head(open_of_owner()))
        .await?
        .into_inner()
        .resolutions;
    assert_eq!(
        resolutions[0].decision_text,
        "Cut the travel budget by a tenth"
    );
    let read: MeetingRead = event_payload(
        &service,
        &last_event_id(&service, &meeting_id).await?,
        "trace.meeting.meeting.read",
    )
    .await?;
    assert_eq!(read.method, "ListOpenResolutions");
    assert_eq!(read.access_request_id, request_id);

    // Once the approval has ended the fields are withheld again, and nothing is recorded.
    service.advance_days(5);
    let events_before = meeting_events(&service, &meeting_id).await?;
    let expired = listed_meeting(&mut client, as_head(list()), &meeting_id).await?;
    assert!(expired.content_withheld);
    assert_eq!(expired.agenda[1].title, "");
    assert_eq!(meeting_events(&service, &meeting_id).await?, events_before);
    assert_eq!(
        meeting_events(&service, &internal_id).await?,
        internal_events
    );
    service.stop().await
}
