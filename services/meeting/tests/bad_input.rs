//! Bad-input corpus of the meeting service: every request field that takes text, ids,
//! dates, instants, enums, bytes or lists gets the shared bad values of
//! `trace_tests::corpus`. Each rejected case must return the documented code and field, and
//! leave every table and the meeting listing unchanged. Attack-looking text that is
//! legitimate in free text must be accepted and stored byte for byte.
//!
//! One service instance with a private nats-server and a SQLite file serves every case.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use chrono::{TimeZone, Utc};
use prost_types::Timestamp;
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, PaginatorTrait, QueryFilter};
use tempfile::TempDir;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::transport::{Channel as GrpcChannel, Endpoint};
use tonic::{Request, Status};
use trace_meeting::MeetingConfig;
use trace_meeting::entity::{
    confirmation, delay_request, dispatch, material, meeting, minutes, notice, overdue_mark,
    plan_revision, resolution, resolution_update,
};
use trace_proto::common::v1::{Confidentiality, Date, PageRequest};
use trace_proto::meeting::v1::add_material_request::Source;
use trace_proto::meeting::v1::meeting_service_client::MeetingServiceClient;
use trace_proto::meeting::v1::*;
use trace_runtime::access_approval::{access_request, agreement};
use trace_runtime::clock::{ManualClock, timestamp};
use trace_runtime::context::{attach_identity, role};
use trace_runtime::outbox::outbox_event;
use trace_tests::corpus::{
    ACCEPTED_TEXT, Expected, MIB, bad_dates, bad_enums, bad_record_ids, bad_text, bad_timestamps,
    bad_tokens, check_rejection, far_timestamps, invalid_timestamps,
};
use trace_tests::nats::NatsServer;

const ORGANISER: &str = "li.na";
const TAKER: &str = "chen.qi";
const OWNER: &str = "wang.wu";
const SECOND_OWNER: &str = "zhao.liu";
const DEPARTMENT: &str = "admin-office";

/// Content limit of the service under test, so that "over the limit" stays small.
const MAX_CONTENT_BYTES: usize = 4096;

/// Maximum time to wait for the service to start.
const DEADLINE: Duration = Duration::from_secs(60);

const HOUR: i64 = 3_600;

type Client = MeetingServiceClient<GrpcChannel>;
type Call = Pin<Box<dyn Future<Output = Result<(), Status>> + Send>>;

/// 09:00 on Wednesday 25 February 2026 in Shanghai.
fn start_instant() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 2, 25, 1, 0, 0).unwrap()
}

/// The meeting service running in this process on a SQLite file.
struct Service {
    address: SocketAddr,
    clock: Arc<ManualClock>,
    shutdown: CancellationToken,
    task: Option<JoinHandle<Result<()>>>,
    db: DatabaseConnection,
    _data: TempDir,
}

impl Service {
    async fn start(nats_url: &str) -> Result<Self> {
        let data = tempfile::Builder::new().prefix("meeting-bad-").tempdir()?;
        let database_url = format!(
            "sqlite://{}?mode=rwc",
            data.path().join("meeting.db").display()
        );
        let mut config = MeetingConfig::defaults();
        config.service.database_url = database_url.clone();
        config.service.blob_store_url = format!("file://{}", data.path().join("blobs").display());
        config.service.nats.url = nats_url.to_owned();
        config.service.outbox.poll_interval_ms = 50;
        config.service.shutdown_grace_secs = 2;
        config.meeting.overdue_check_interval_secs = 3600;
        config.meeting.max_content_bytes = MAX_CONTENT_BYTES;

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        let clock = ManualClock::new(start_instant());
        let shutdown = CancellationToken::new();
        let run = trace_meeting::run(config, listener, clock.clone(), shutdown.clone());
        let mut task = tokio::spawn(run);
        wait_until_ready(address, &mut task).await?;
        let db = trace_runtime::db::connect(&database_url).await?;
        Ok(Self {
            address,
            clock,
            shutdown,
            task: Some(task),
            db,
            _data: data,
        })
    }

    /// Row counts of the outbox and of every table, the sum of entity versions, and the
    /// listing of all meetings. A rejected call must leave all of them unchanged. Denial
    /// events (entity type `access`) are left out: the denial recorder writes them after
    /// the call.
    async fn snapshot(&self, client: &mut Client) -> Result<Vec<String>> {
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
        let counts = [
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
            access_request::Entity::find().count(db).await?,
            agreement::Entity::find().count(db).await?,
            u64::try_from(meeting_versions)?,
            u64::try_from(resolution_versions)?,
        ];
        let list = ListMeetingsRequest {
            page: Some(PageRequest {
                page_size: 500,
                page_token: String::new(),
            }),
            ..Default::default()
        };
        let listing = client
            .list_meetings(as_user(ORGANISER, list))
            .await?
            .into_inner();
        let mut snapshot: Vec<String> = counts.iter().map(u64::to_string).collect();
        snapshot.extend(listing.meetings.iter().map(|meeting| {
            format!(
                "{} v{} {}",
                meeting.meeting_id, meeting.entity_version, meeting.topic
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
    Ok(MeetingServiceClient::new(channel)
        .max_decoding_message_size(4 * MIB)
        .max_encoding_message_size(4 * MIB))
}

async fn wait_until_ready(address: SocketAddr, task: &mut JoinHandle<Result<()>>) -> Result<()> {
    let started = Instant::now();
    // A read that records no event, so the outbox stays empty.
    let probe = ListOpenResolutionsRequest::default();
    while started.elapsed() < DEADLINE {
        if task.is_finished() {
            bail!("the service stopped during start: {:?}", task.await?);
        }
        if let Ok(mut client) = connect(address).await
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

/// Returns the instant `hours` after the start instant.
fn at(hours: i64) -> Option<Timestamp> {
    Some(timestamp(
        (start_instant().timestamp() + hours * HOUR) * 1_000_000,
    ))
}

fn date(year: i32, month: i32, day: i32) -> Option<Date> {
    Some(Date { year, month, day })
}

fn attendees() -> Vec<String> {
    [OWNER, SECOND_OWNER, TAKER].map(str::to_owned).to_vec()
}

/// Builds a valid plan from `hours` to `hours + 2` after the start instant.
fn plan(hours: i64, topic: &str) -> PlanMeetingRequest {
    PlanMeetingRequest {
        topic: topic.to_owned(),
        start_time: at(hours),
        end_time: at(hours + 2),
        channel: Channel::InPerson as i32,
        location: "Meeting room 3".to_owned(),
        attendee_ids: attendees(),
        agenda: vec![AgendaItem {
            title: "Budget review".to_owned(),
            presenter_id: OWNER.to_owned(),
        }],
        confidentiality: Confidentiality::Internal as i32,
    }
}

/// Builds valid minutes of a meeting planned by [`plan`] at hour 24, held from 24:05 to
/// 25:50, with one decision.
fn minutes_request(meeting_id: &str) -> RecordMinutesRequest {
    RecordMinutesRequest {
        meeting_id: meeting_id.to_owned(),
        held_start_time: Some(Timestamp {
            seconds: start_instant().timestamp() + 24 * HOUR + 300,
            nanos: 0,
        }),
        held_end_time: Some(Timestamp {
            seconds: start_instant().timestamp() + 26 * HOUR - 600,
            nanos: 0,
        }),
        place: "Meeting room 3".to_owned(),
        present_ids: vec![OWNER.to_owned(), TAKER.to_owned()],
        absent_ids: vec![SECOND_OWNER.to_owned()],
        discussions: vec![Discussion {
            agenda_item: 1,
            text: "Over budget by 5%.".to_owned(),
        }],
        decisions: vec![Decision {
            text: "Cut travel spending".to_owned(),
            owner_id: OWNER.to_owned(),
            due_date: date(2026, 3, 10),
        }],
    }
}

/// Ids of the records the cases address.
struct Fixture {
    /// A planned meeting that has not started.
    planned: String,
    /// A meeting held at hour 24 with recorded minutes.
    held: String,
    /// A meeting held at hour 24 without minutes.
    unrecorded: String,
    material: String,
    resolution: String,
}

/// Plans three meetings, adds a material, advances the clock past the first two and
/// records the minutes of the first.
async fn fixture(service: &Service, client: &mut Client) -> Result<Fixture> {
    let held = planned(client, plan(24, "Budget")).await?;
    let unrecorded = planned(client, plan(24, "Travel")).await?;
    let planned_id = planned(client, plan(72, "Contracts")).await?;
    let material = client
        .add_material(as_user(OWNER, material_request(&planned_id)))
        .await?
        .into_inner()
        .material
        .context("material")?
        .material_id;

    service.clock.advance(chrono::Duration::hours(27));
    let recorded = client
        .record_minutes(as_user(TAKER, minutes_request(&held)))
        .await?
        .into_inner();
    let resolution = recorded
        .resolutions
        .first()
        .context("resolution")?
        .resolution_id
        .clone();
    Ok(Fixture {
        planned: planned_id,
        held,
        unrecorded,
        material,
        resolution,
    })
}

async fn planned(client: &mut Client, request: PlanMeetingRequest) -> Result<String> {
    let response = client.plan_meeting(as_user(ORGANISER, request)).await?;
    Ok(response.into_inner().meeting.context("meeting")?.meeting_id)
}

fn material_request(meeting_id: &str) -> AddMaterialRequest {
    AddMaterialRequest {
        meeting_id: meeting_id.to_owned(),
        title: "Budget draft".to_owned(),
        kind: MaterialKind::Report as i32,
        author_id: OWNER.to_owned(),
        completed_at: at(-1),
        source: Some(Source::Content(b"numbers".to_vec())),
        media_type: "text/plain".to_owned(),
    }
}

/// Builds bad user id lists with the suffix of the field each must be rejected on: the
/// list itself for a count error, or the index of the bad entry.
fn bad_user_lists(min: usize) -> Vec<(String, Vec<String>, String)> {
    let mut cases = vec![
        (
            "201 ids".to_owned(),
            (0..201).map(|i| format!("user{i}")).collect(),
            String::new(),
        ),
        (
            "10,000 ids".to_owned(),
            (0..10_000).map(|i| format!("u{i}")).collect(),
            String::new(),
        ),
        (
            "duplicate".to_owned(),
            vec![OWNER.to_owned(), OWNER.to_owned()],
            "[1]".to_owned(),
        ),
    ];
    if min > 0 {
        cases.push(("no ids".to_owned(), Vec::new(), String::new()));
    }
    for (label, value) in bad_tokens(64) {
        cases.push((format!("entry {label}"), vec![value], "[0]".to_owned()));
    }
    cases
}

/// Returns `field` followed by `suffix`, leaked so that it lives as long as the test.
fn field(field: &str, suffix: &str) -> &'static str {
    Box::leak(format!("{field}{suffix}").into_boxed_str())
}

/// Builds every rejected case of the corpus.
#[allow(clippy::too_many_lines)]
fn rejected_cases(client: &Client, ids: &Fixture) -> Vec<(String, Expected, Call)> {
    let mut cases: Vec<(String, Expected, Call)> = Vec::new();
    let mut add = |label: String, expected: Expected, call: Call| {
        cases.push((label, expected, call));
    };
    let unknown = uuid::Uuid::now_v7().to_string();

    // PlanMeeting. The clock is at hour 27, so a plan at hour 72 is valid.
    let plan_with = |change: &dyn Fn(&mut PlanMeetingRequest)| {
        let mut request = plan(72, "Valid");
        change(&mut request);
        call!(client, plan_meeting, ORGANISER, request)
    };
    for (label, value) in bad_text(1, 200, true) {
        let call = plan_with(&|r| r.topic = value.clone());
        add(format!("topic {label}"), Expected::Invalid("topic"), call);
    }
    for (label, value) in bad_text(1, 500, true) {
        let call = plan_with(&|r| r.location = value.clone());
        add(
            format!("location {label}"),
            Expected::Invalid("location"),
            call,
        );
    }
    for (label, value) in bad_timestamps() {
        let call = plan_with(&|r| r.start_time = Some(value));
        add(
            format!("start_time {label}"),
            Expected::Invalid("start_time"),
            call,
        );
        let call = plan_with(&|r| r.end_time = Some(value));
        add(
            format!("end_time {label}"),
            Expected::Invalid("end_time"),
            call,
        );
    }
    let call = plan_with(&|r| r.start_time = None);
    add(
        "start_time missing".to_owned(),
        Expected::Invalid("start_time"),
        call,
    );
    let call = plan_with(&|r| r.start_time = at(26));
    add(
        "start_time in the past".to_owned(),
        Expected::Invalid("start_time"),
        call,
    );
    let call = plan_with(&|r| r.end_time = at(72 + 25));
    add(
        "end_time 25 hours later".to_owned(),
        Expected::Invalid("end_time"),
        call,
    );
    for (label, value) in bad_enums().into_iter().chain([("0".to_owned(), 0)]) {
        let call = plan_with(&|r| r.channel = value);
        add(
            format!("channel {label}"),
            Expected::Invalid("channel"),
            call,
        );
        let call = plan_with(&|r| r.confidentiality = value);
        let name = "confidentiality";
        add(
            format!("confidentiality {label}"),
            Expected::Invalid(name),
            call,
        );
    }
    for (label, ids, suffix) in bad_user_lists(1) {
        let call = plan_with(&|r| r.attendee_ids = ids.clone());
        let name = field("attendee_ids", &suffix);
        add(
            format!("attendee_ids {label}"),
            Expected::Invalid(name),
            call,
        );
    }
    let item = |title: &str, presenter: &str| AgendaItem {
        title: title.to_owned(),
        presenter_id: presenter.to_owned(),
    };
    let call = plan_with(&|r| r.agenda.clear());
    add("agenda empty".to_owned(), Expected::Invalid("agenda"), call);
    let call = plan_with(&|r| r.agenda = vec![item("x", ""); 51]);
    add(
        "agenda 51 items".to_owned(),
        Expected::Invalid("agenda"),
        call,
    );
    let call = plan_with(&|r| r.agenda = vec![item("x", ""); 10_000]);
    add(
        "agenda 10,000 items".to_owned(),
        Expected::Invalid("agenda"),
        call,
    );
    for (label, value) in bad_text(1, 200, true) {
        let call = plan_with(&|r| r.agenda.push(item(&value, "")));
        let name = "agenda[1].title";
        add(
            format!("agenda title {label}"),
            Expected::Invalid(name),
            call,
        );
    }
    for (label, value) in bad_tokens(64).into_iter().filter(|(_, v)| !v.is_empty()) {
        let call = plan_with(&|r| r.agenda.push(item("x", &value)));
        let name = "agenda[1].presenter_id";
        add(
            format!("presenter_id {label}"),
            Expected::Invalid(name),
            call,
        );
    }

    // Calls that take only a meeting id.
    for (label, value) in bad_record_ids() {
        let get = GetMeetingRequest {
            meeting_id: value.clone(),
        };
        let call = call!(client, get_meeting, ORGANISER, get);
        add(
            format!("get id {label}"),
            Expected::Invalid("meeting_id"),
            call,
        );
        let tracking = GetTrackingTableRequest {
            meeting_id: value.clone(),
        };
        let call = call!(client, get_tracking_table, ORGANISER, tracking);
        add(
            format!("tracking id {label}"),
            Expected::Invalid("meeting_id"),
            call,
        );
        let notices = RecordNoticesRequest {
            meeting_id: value.clone(),
            recipient_ids: attendees(),
        };
        let call = call!(client, record_notices, ORGANISER, notices);
        add(
            format!("notices id {label}"),
            Expected::Invalid("meeting_id"),
            call,
        );
        let cancel = CancelMeetingRequest {
            meeting_id: value.clone(),
            reason: "moved".to_owned(),
        };
        let call = call!(client, cancel_meeting, ORGANISER, cancel);
        add(
            format!("cancel id {label}"),
            Expected::Invalid("meeting_id"),
            call,
        );
        let revise = RevisePlanRequest {
            meeting_id: value.clone(),
            change_summary: "moved".to_owned(),
            topic: Some("New topic".to_owned()),
            ..Default::default()
        };
        let call = call!(client, revise_plan, ORGANISER, revise);
        add(
            format!("revise id {label}"),
            Expected::Invalid("meeting_id"),
            call,
        );
        let minutes = minutes_request(&value);
        let call = call!(client, record_minutes, TAKER, minutes);
        add(
            format!("minutes id {label}"),
            Expected::Invalid("meeting_id"),
            call,
        );
        let send = SendMinutesForConfirmationRequest {
            meeting_id: value.clone(),
            recipient_ids: attendees(),
        };
        let call = call!(client, send_minutes_for_confirmation, TAKER, send);
        add(
            format!("send id {label}"),
            Expected::Invalid("meeting_id"),
            call,
        );
        let confirm = ConfirmMinutesRequest {
            meeting_id: value.clone(),
            minutes_version: 1,
            verdict: Verdict::Confirm as i32,
            comment: String::new(),
        };
        let call = call!(client, confirm_minutes, OWNER, confirm);
        add(
            format!("confirm id {label}"),
            Expected::Invalid("meeting_id"),
            call,
        );
        let material = material_request(&value);
        let call = call!(client, add_material, OWNER, material);
        add(
            format!("material meeting id {label}"),
            Expected::Invalid("meeting_id"),
            call,
        );
    }
    let get = GetMeetingRequest {
        meeting_id: unknown.clone(),
    };
    // An employee is denied a missing meeting as they are denied another's meeting.
    let call = call!(client, get_meeting, ORGANISER, get);
    add("get unknown id".to_owned(), Expected::Denied, call);

    // RecordNotices and SendMinutesForConfirmation.
    for (label, ids_list, suffix) in bad_user_lists(1) {
        let notices = RecordNoticesRequest {
            meeting_id: ids.planned.clone(),
            recipient_ids: ids_list.clone(),
        };
        let call = call!(client, record_notices, ORGANISER, notices);
        let name = field("recipient_ids", &suffix);
        add(
            format!("notice recipients {label}"),
            Expected::Invalid(name),
            call,
        );
        let send = SendMinutesForConfirmationRequest {
            meeting_id: ids.held.clone(),
            recipient_ids: ids_list.clone(),
        };
        let call = call!(client, send_minutes_for_confirmation, TAKER, send);
        add(
            format!("minutes recipients {label}"),
            Expected::Invalid(name),
            call,
        );
    }

    // RevisePlan.
    let revise = |change: &dyn Fn(&mut RevisePlanRequest)| {
        let mut request = RevisePlanRequest {
            meeting_id: ids.planned.clone(),
            change_summary: "moved".to_owned(),
            topic: Some("New topic".to_owned()),
            ..Default::default()
        };
        change(&mut request);
        call!(client, revise_plan, ORGANISER, request)
    };
    for (label, value) in bad_text(1, 2000, false) {
        let call = revise(&|r| r.change_summary = value.clone());
        let name = "change_summary";
        add(
            format!("revise change_summary {label}"),
            Expected::Invalid(name),
            call,
        );
    }
    for (label, value) in bad_text(1, 200, true) {
        let call = revise(&|r| r.topic = Some(value.clone()));
        add(
            format!("revise topic {label}"),
            Expected::Invalid("topic"),
            call,
        );
    }
    for (label, value) in bad_text(1, 500, true) {
        let call = revise(&|r| r.location = Some(value.clone()));
        add(
            format!("revise location {label}"),
            Expected::Invalid("location"),
            call,
        );
    }
    for (label, value) in bad_timestamps() {
        let call = revise(&|r| r.start_time = Some(value));
        add(
            format!("revise start_time {label}"),
            Expected::Invalid("start_time"),
            call,
        );
    }
    for (label, value) in invalid_timestamps() {
        let call = revise(&|r| r.end_time = Some(value));
        add(
            format!("revise end_time {label}"),
            Expected::Invalid("end_time"),
            call,
        );
    }
    for (label, value) in bad_enums() {
        let call = revise(&|r| r.channel = value);
        add(
            format!("revise channel {label}"),
            Expected::Invalid("channel"),
            call,
        );
    }
    for (label, ids_list, suffix) in bad_user_lists(1) {
        let call = revise(&|r| {
            r.attendees = Some(AttendeeList {
                attendee_ids: ids_list.clone(),
            });
        });
        let name = field("attendees.attendee_ids", &suffix);
        add(
            format!("revise attendees {label}"),
            Expected::Invalid(name),
            call,
        );
    }
    let call = revise(&|r| r.agenda = Some(AgendaList { items: Vec::new() }));
    add(
        "revise agenda empty".to_owned(),
        Expected::Invalid("agenda.items"),
        call,
    );
    let call = revise(&|r| {
        r.agenda = Some(AgendaList {
            items: vec![item("x", ""); 51],
        });
    });
    add(
        "revise agenda 51 items".to_owned(),
        Expected::Invalid("agenda.items"),
        call,
    );
    let call = revise(&|r| {
        r.topic = None;
        r.location = Some("Meeting room 3".to_owned());
    });
    add(
        "revise changes nothing".to_owned(),
        Expected::Invalid("request"),
        call,
    );

    // CancelMeeting.
    for (label, value) in bad_text(1, 2000, false) {
        let cancel = CancelMeetingRequest {
            meeting_id: ids.planned.clone(),
            reason: value.clone(),
        };
        let call = call!(client, cancel_meeting, ORGANISER, cancel);
        add(
            format!("cancel reason {label}"),
            Expected::Invalid("reason"),
            call,
        );
    }

    // AddMaterial.
    let add_material = |change: &dyn Fn(&mut AddMaterialRequest)| {
        let mut request = material_request(&ids.planned);
        change(&mut request);
        call!(client, add_material, OWNER, request)
    };
    for (label, value) in bad_text(1, 200, true) {
        let call = add_material(&|r| r.title = value.clone());
        add(
            format!("material title {label}"),
            Expected::Invalid("title"),
            call,
        );
    }
    for (label, value) in bad_enums().into_iter().chain([("0".to_owned(), 0)]) {
        let call = add_material(&|r| r.kind = value);
        add(
            format!("material kind {label}"),
            Expected::Invalid("kind"),
            call,
        );
    }
    for (label, value) in bad_tokens(64) {
        let call = add_material(&|r| r.author_id = value.clone());
        add(
            format!("author_id {label}"),
            Expected::Invalid("author_id"),
            call,
        );
    }
    let future = at(28);
    let completed = bad_timestamps()
        .into_iter()
        .chain([(
            "after the server time".to_owned(),
            future.unwrap_or_default(),
        )])
        .chain([(
            "1969-12-31".to_owned(),
            Timestamp {
                seconds: -1,
                nanos: 0,
            },
        )]);
    for (label, value) in completed {
        let call = add_material(&|r| r.completed_at = Some(value));
        add(
            format!("completed_at {label}"),
            Expected::Invalid("completed_at"),
            call,
        );
    }
    let call = add_material(&|r| r.source = None);
    add(
        "material source missing".to_owned(),
        Expected::Invalid("source"),
        call,
    );
    let over = MAX_CONTENT_BYTES + 1;
    for (label, size) in [
        ("0 bytes".to_owned(), 0),
        (format!("{over} bytes"), over),
        ("1 MiB".to_owned(), MIB),
    ] {
        let call = add_material(&|r| r.source = Some(Source::Content(vec![b'x'; size])));
        add(
            format!("material content {label}"),
            Expected::Invalid("content"),
            call,
        );
    }
    let call = add_material(&|r| r.source = Some(Source::Content(vec![b'x'; 2 * MIB])));
    add(
        "material content 2 MiB".to_owned(),
        Expected::TooLarge,
        call,
    );
    for (label, bytes) in [
        ("lone continuation byte", b"abc\x80def".to_vec()),
        ("GBK bytes", vec![0xd6, 0xd0, 0xce, 0xc4]),
    ] {
        let call = add_material(&|r| r.source = Some(Source::Content(bytes.clone())));
        add(
            format!("material content {label}"),
            Expected::Invalid("content"),
            call,
        );
    }
    let media_types = bad_text(1, 255, true).into_iter().chain(
        ["text", "'; DROP TABLE x; --", "../../etc/passwd"]
            .map(|value| (format!("{value:?}"), value.to_owned())),
    );
    for (label, value) in media_types {
        let call = add_material(&|r| r.media_type = value.clone());
        add(
            format!("material media_type {label}"),
            Expected::Invalid("media_type"),
            call,
        );
    }
    for (label, value) in bad_record_ids() {
        let call = add_material(&|r| {
            r.source = Some(Source::DocumentId(value.clone()));
            r.media_type.clear();
        });
        add(
            format!("material document_id {label}"),
            Expected::Invalid("document_id"),
            call,
        );
    }
    let call = add_material(&|r| r.source = Some(Source::DocumentId(unknown.clone())));
    add(
        "media_type with document_id".to_owned(),
        Expected::Invalid("media_type"),
        call,
    );

    // ReviewMaterial.
    let review = |meeting_id: &str, material_id: &str, state: i32, opinion: &str| {
        let request = ReviewMaterialRequest {
            meeting_id: meeting_id.to_owned(),
            material_id: material_id.to_owned(),
            review_state: state,
            opinion: opinion.to_owned(),
        };
        call!(client, review_material, ORGANISER, request)
    };
    let approved = ReviewState::Approved as i32;
    for (label, value) in bad_record_ids() {
        let call = review(&value, &ids.material, approved, "ok");
        add(
            format!("review meeting id {label}"),
            Expected::Invalid("meeting_id"),
            call,
        );
        let call = review(&ids.planned, &value, approved, "ok");
        add(
            format!("review material id {label}"),
            Expected::Invalid("material_id"),
            call,
        );
    }
    let states = bad_enums().into_iter().chain([
        ("0".to_owned(), 0),
        ("PENDING".to_owned(), ReviewState::Pending as i32),
    ]);
    for (label, value) in states {
        let call = review(&ids.planned, &ids.material, value, "ok");
        add(
            format!("review_state {label}"),
            Expected::Invalid("review_state"),
            call,
        );
    }
    for (label, value) in bad_text(1, 4000, false) {
        let call = review(&ids.planned, &ids.material, approved, &value);
        add(
            format!("material opinion {label}"),
            Expected::Invalid("opinion"),
            call,
        );
    }

    // RecordMinutes and AmendMinutes.
    let record = |change: &dyn Fn(&mut RecordMinutesRequest)| {
        let mut request = minutes_request(&ids.unrecorded);
        change(&mut request);
        call!(client, record_minutes, TAKER, request)
    };
    let amend = |change: &dyn Fn(&mut AmendMinutesRequest)| {
        let minutes = minutes_request(&ids.held);
        let mut request = AmendMinutesRequest {
            meeting_id: ids.held.clone(),
            change_summary: "typo".to_owned(),
            held_start_time: minutes.held_start_time,
            held_end_time: minutes.held_end_time,
            place: "Meeting room 4".to_owned(),
            present_ids: minutes.present_ids,
            absent_ids: minutes.absent_ids,
            discussions: minutes.discussions,
        };
        change(&mut request);
        call!(client, amend_minutes, TAKER, request)
    };
    for (label, value) in bad_timestamps() {
        let call = record(&|r| r.held_start_time = Some(value));
        let name = "held_start_time";
        add(
            format!("held_start_time {label}"),
            Expected::Invalid(name),
            call,
        );
        let call = amend(&|r| r.held_start_time = Some(value));
        add(
            format!("amend held_start_time {label}"),
            Expected::Invalid(name),
            call,
        );
        let call = record(&|r| r.held_end_time = Some(value));
        let name = "held_end_time";
        add(
            format!("held_end_time {label}"),
            Expected::Invalid(name),
            call,
        );
        let call = amend(&|r| r.held_end_time = Some(value));
        add(
            format!("amend held_end_time {label}"),
            Expected::Invalid(name),
            call,
        );
    }
    for (label, value) in bad_text(1, 500, true) {
        let call = record(&|r| r.place = value.clone());
        add(format!("place {label}"), Expected::Invalid("place"), call);
        let call = amend(&|r| r.place = value.clone());
        add(
            format!("amend place {label}"),
            Expected::Invalid("place"),
            call,
        );
    }
    for (label, value) in bad_text(1, 2000, false) {
        let call = amend(&|r| r.change_summary = value.clone());
        let name = "change_summary";
        add(
            format!("amend change_summary {label}"),
            Expected::Invalid(name),
            call,
        );
    }
    for (label, ids_list, suffix) in bad_user_lists(0) {
        let call = record(&|r| r.present_ids = ids_list.clone());
        let name = field("present_ids", &suffix);
        add(
            format!("present_ids {label}"),
            Expected::Invalid(name),
            call,
        );
        let call = amend(&|r| r.absent_ids = ids_list.clone());
        let name = field("absent_ids", &suffix);
        add(
            format!("amend absent_ids {label}"),
            Expected::Invalid(name),
            call,
        );
    }
    for (label, value) in bad_text(1, 10_000, false) {
        let discussion = Discussion {
            agenda_item: 1,
            text: value.clone(),
        };
        let call = record(&|r| r.discussions = vec![discussion.clone()]);
        let name = "discussions[0].text";
        add(
            format!("discussion text {label}"),
            Expected::Invalid(name),
            call,
        );
    }
    for number in [0, 2, u32::MAX] {
        let discussion = Discussion {
            agenda_item: number,
            text: "x".to_owned(),
        };
        let call = amend(&|r| r.discussions = vec![discussion.clone()]);
        let name = "discussions[0].agenda_item";
        add(
            format!("discussion agenda_item {number}"),
            Expected::Invalid(name),
            call,
        );
    }
    let many = vec![
        Discussion {
            agenda_item: 1,
            text: "x".to_owned(),
        };
        10_000
    ];
    let call = record(&|r| r.discussions = many.clone());
    add(
        "10,000 discussions".to_owned(),
        Expected::Invalid("discussions"),
        call,
    );
    let decision = |text: &str, owner: &str, due: Option<Date>| Decision {
        text: text.to_owned(),
        owner_id: owner.to_owned(),
        due_date: due,
    };
    let due = date(2026, 3, 10);
    for count in [51, 10_000] {
        let list = vec![decision("x", OWNER, due); count];
        let call = record(&|r| r.decisions = list.clone());
        add(
            format!("{count} decisions"),
            Expected::Invalid("decisions"),
            call,
        );
    }
    for (label, value) in bad_text(1, 2000, false) {
        let call = record(&|r| r.decisions = vec![decision(&value, OWNER, due)]);
        add(
            format!("decision text {label}"),
            Expected::Invalid("decisions[0].text"),
            call,
        );
    }
    for (label, value) in bad_tokens(64) {
        let call = record(&|r| r.decisions = vec![decision("x", &value, due)]);
        let name = "decisions[0].owner_id";
        add(
            format!("decision owner_id {label}"),
            Expected::Invalid(name),
            call,
        );
    }
    let dates = bad_dates()
        .into_iter()
        .map(|(label, date)| (label, Some(date)))
        .chain([
            ("missing".to_owned(), None),
            ("9999-12-31".to_owned(), date(9999, 12, 31)),
        ]);
    for (label, value) in dates {
        let call = record(&|r| r.decisions = vec![decision("x", OWNER, value)]);
        let name = "decisions[0].due_date";
        add(
            format!("decision due_date {label}"),
            Expected::Invalid(name),
            call,
        );
    }

    // ConfirmMinutes.
    let confirm = |verdict: i32, comment: &str| {
        let request = ConfirmMinutesRequest {
            meeting_id: ids.held.clone(),
            minutes_version: 1,
            verdict,
            comment: comment.to_owned(),
        };
        call!(client, confirm_minutes, OWNER, request)
    };
    for (label, value) in bad_enums().into_iter().chain([("0".to_owned(), 0)]) {
        let call = confirm(value, "");
        add(
            format!("verdict {label}"),
            Expected::Invalid("verdict"),
            call,
        );
    }
    for (label, value) in bad_text(1, 2000, false) {
        let call = confirm(Verdict::Object as i32, &value);
        add(
            format!("objection comment {label}"),
            Expected::Invalid("comment"),
            call,
        );
    }

    // UpdateResolution.
    let update = |change: &dyn Fn(&mut UpdateResolutionRequest)| {
        let mut request = UpdateResolutionRequest {
            resolution_id: ids.resolution.clone(),
            status: ResolutionStatus::InProgress as i32,
            progress_note: "started".to_owned(),
            problems: String::new(),
            solutions: String::new(),
        };
        change(&mut request);
        call!(client, update_resolution, OWNER, request)
    };
    for (label, value) in bad_record_ids() {
        let call = update(&|r| r.resolution_id = value.clone());
        add(
            format!("update id {label}"),
            Expected::Invalid("resolution_id"),
            call,
        );
    }
    let statuses = bad_enums().into_iter().chain([
        ("0".to_owned(), 0),
        ("OPEN".to_owned(), ResolutionStatus::Open as i32),
    ]);
    for (label, value) in statuses {
        let call = update(&|r| r.status = value);
        add(format!("status {label}"), Expected::Invalid("status"), call);
    }
    for (label, value) in bad_text(1, 4000, false) {
        let call = update(&|r| r.progress_note = value.clone());
        add(
            format!("progress_note {label}"),
            Expected::Invalid("progress_note"),
            call,
        );
    }
    for (label, value) in bad_text(0, 4000, false) {
        let call = update(&|r| r.problems = value.clone());
        add(
            format!("problems {label}"),
            Expected::Invalid("problems"),
            call,
        );
        let call = update(&|r| r.solutions = value.clone());
        add(
            format!("solutions {label}"),
            Expected::Invalid("solutions"),
            call,
        );
    }

    // RequestDelay and DecideDelay.
    let delay = |change: &dyn Fn(&mut RequestDelayRequest)| {
        let mut request = RequestDelayRequest {
            resolution_id: ids.resolution.clone(),
            reason: "supplier late".to_owned(),
            proposed_due_date: date(2026, 3, 20),
            approver_id: String::new(),
        };
        change(&mut request);
        call!(client, request_delay, OWNER, request)
    };
    for (label, value) in bad_record_ids() {
        let call = delay(&|r| r.resolution_id = value.clone());
        add(
            format!("delay id {label}"),
            Expected::Invalid("resolution_id"),
            call,
        );
    }
    for (label, value) in bad_text(1, 4000, false) {
        let call = delay(&|r| r.reason = value.clone());
        add(
            format!("delay reason {label}"),
            Expected::Invalid("reason"),
            call,
        );
    }
    let proposed = bad_dates()
        .into_iter()
        .map(|(label, date)| (label, Some(date)))
        .chain([
            ("missing".to_owned(), None),
            ("9999-12-31".to_owned(), date(9999, 12, 31)),
            ("the current due date".to_owned(), date(2026, 3, 10)),
        ]);
    for (label, value) in proposed {
        let call = delay(&|r| r.proposed_due_date = value);
        let name = "proposed_due_date";
        add(
            format!("proposed_due_date {label}"),
            Expected::Invalid(name),
            call,
        );
    }
    for (label, value) in bad_tokens(64).into_iter().filter(|(_, v)| !v.is_empty()) {
        let call = delay(&|r| r.approver_id = value.clone());
        add(
            format!("delay approver_id {label}"),
            Expected::Invalid("approver_id"),
            call,
        );
    }
    let call = delay(&|r| r.approver_id = OWNER.to_owned());
    add(
        "delay approver is the caller".to_owned(),
        Expected::Invalid("approver_id"),
        call,
    );
    let decide = |resolution_id: &str, delay_id: &str, opinion: &str| {
        let request = DecideDelayRequest {
            resolution_id: resolution_id.to_owned(),
            delay_id: delay_id.to_owned(),
            approve: true,
            opinion: opinion.to_owned(),
        };
        call!(client, decide_delay, ORGANISER, request)
    };
    for (label, value) in bad_record_ids() {
        let call = decide(&value, &unknown, "ok");
        add(
            format!("decide resolution id {label}"),
            Expected::Invalid("resolution_id"),
            call,
        );
        let call = decide(&ids.resolution, &value, "ok");
        add(
            format!("decide delay id {label}"),
            Expected::Invalid("delay_id"),
            call,
        );
    }
    for (label, value) in bad_text(1, 2000, false) {
        let call = decide(&ids.resolution, &unknown, &value);
        add(
            format!("delay opinion {label}"),
            Expected::Invalid("opinion"),
            call,
        );
    }

    // CheckOverdue.
    for (label, value) in bad_dates() {
        let request = CheckOverdueRequest { as_of: Some(value) };
        let call = call!(client, check_overdue, ORGANISER, request);
        add(format!("as_of {label}"), Expected::Invalid("as_of"), call);
    }
    let far = CheckOverdueRequest {
        as_of: date(9999, 12, 31),
    };
    let call = call!(client, check_overdue, ORGANISER, far);
    add(
        "as_of 9999-12-31 as employee".to_owned(),
        Expected::Denied,
        call,
    );

    // ListMeetings and ListOpenResolutions: empty filters mean "any".
    let list = |change: &dyn Fn(&mut ListMeetingsRequest)| {
        let mut request = ListMeetingsRequest::default();
        change(&mut request);
        call!(client, list_meetings, ORGANISER, request)
    };
    for (label, value) in invalid_timestamps() {
        let call = list(&|r| r.start_from = Some(value));
        add(
            format!("start_from {label}"),
            Expected::Invalid("start_from"),
            call,
        );
        let call = list(&|r| r.start_before = Some(value));
        add(
            format!("start_before {label}"),
            Expected::Invalid("start_before"),
            call,
        );
    }
    let call = list(&|r| {
        r.start_from = at(10);
        r.start_before = at(10);
    });
    add(
        "start_before equals start_from".to_owned(),
        Expected::Invalid("start_before"),
        call,
    );
    for (label, value) in bad_tokens(64).into_iter().filter(|(_, v)| !v.is_empty()) {
        let call = list(&|r| r.organiser_id = value.clone());
        add(
            format!("organiser_id {label}"),
            Expected::Invalid("organiser_id"),
            call,
        );
        let call = list(&|r| r.attendee_id = value.clone());
        add(
            format!("attendee_id {label}"),
            Expected::Invalid("attendee_id"),
            call,
        );
        let open = ListOpenResolutionsRequest {
            owner_id: value.clone(),
        };
        let call = call!(client, list_open_resolutions, OWNER, open);
        add(
            format!("owner_id {label}"),
            Expected::Invalid("owner_id"),
            call,
        );
    }
    for (label, value) in bad_record_ids().into_iter().filter(|(_, v)| !v.is_empty()) {
        let page = PageRequest {
            page_size: 0,
            page_token: value.clone(),
        };
        let call = list(&|r| r.page = Some(page.clone()));
        add(
            format!("page_token {label}"),
            Expected::Invalid("page.page_token"),
            call,
        );
    }
    for size in [-1, 501, i32::MAX, i32::MIN] {
        let page = PageRequest {
            page_size: size,
            page_token: String::new(),
        };
        let call = list(&|r| r.page = Some(page.clone()));
        add(
            format!("page_size {size}"),
            Expected::Invalid("page.page_size"),
            call,
        );
    }

    // RequestAccess, DecideAccess, ListAccessRequests and AcceptAgreement.
    for (label, value) in bad_record_ids() {
        let request = RequestAccessRequest {
            meeting_id: value.clone(),
            purpose: "Budget review".to_owned(),
        };
        let call = call!(client, request_access, ORGANISER, request);
        add(
            format!("request access id {label}"),
            Expected::Invalid("meeting_id"),
            call,
        );
        let decide = DecideAccessRequest {
            access_request_id: value.clone(),
            approve: false,
            opinion: "Not needed".to_owned(),
            expires_at: None,
        };
        let call = call!(client, decide_access, ORGANISER, decide);
        add(
            format!("decide access id {label}"),
            Expected::Invalid("access_request_id"),
            call,
        );
        let list = ListAccessRequestsRequest {
            meeting_id: value.clone(),
        };
        let call = call!(client, list_access_requests, ORGANISER, list);
        add(
            format!("list access requests id {label}"),
            Expected::Invalid("meeting_id"),
            call,
        );
    }
    for (label, value) in bad_text(1, 2000, false) {
        let request = RequestAccessRequest {
            meeting_id: ids.planned.clone(),
            purpose: value.clone(),
        };
        let call = call!(client, request_access, ORGANISER, request);
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
        let call = call!(client, decide_access, ORGANISER, decide);
        add(
            format!("access opinion {label}"),
            Expected::Invalid("opinion"),
            call,
        );
    }
    // The clock is at hour 27, so an approval must end after hour 27 and at most 90 days later.
    let mut ends = bad_timestamps();
    ends.push(("now".to_owned(), at(27).expect("hour 27")));
    ends.push(("91 days".to_owned(), at(27 + 91 * 24).expect("day 91")));
    for (label, value) in ends {
        let decide = DecideAccessRequest {
            access_request_id: unknown.clone(),
            approve: true,
            opinion: "Needed".to_owned(),
            expires_at: Some(value),
        };
        let call = call!(client, decide_access, ORGANISER, decide);
        add(
            format!("approval end {label}"),
            Expected::Invalid("expires_at"),
            call,
        );
    }
    let decide = DecideAccessRequest {
        access_request_id: unknown.clone(),
        approve: true,
        opinion: "Needed".to_owned(),
        expires_at: None,
    };
    let call = call!(client, decide_access, ORGANISER, decide);
    add(
        "approval end missing".to_owned(),
        Expected::Invalid("expires_at"),
        call,
    );
    let request = RequestAccessRequest {
        meeting_id: ids.planned.clone(),
        purpose: "Budget review".to_owned(),
    };
    let call = call!(client, request_access, ORGANISER, request);
    add(
        "access to an internal meeting".to_owned(),
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
        let call = call!(client, accept_agreement, ORGANISER, accept);
        add(
            format!("agreement version {label}"),
            Expected::Invalid("agreement_version"),
            call,
        );
    }
    cases
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_rejected_and_writes_nothing() -> Result<()> {
    let nats = NatsServer::start()?;
    let service = Service::start(&nats.url()).await?;
    let mut client = connect(service.address).await?;
    let ids = fixture(&service, &mut client).await?;

    let cases = rejected_cases(&client, &ids);
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

    for (index, text) in ACCEPTED_TEXT.iter().enumerate() {
        let mut request = plan(24 + 3 * i64::try_from(index)?, text);
        request.location = (*text).to_owned();
        request.agenda[0].title = (*text).to_owned();
        let meeting_id = planned(&mut client, request).await?;

        let mut material = material_request(&meeting_id);
        material.title = (*text).to_owned();
        material.source = Some(Source::Content(text.as_bytes().to_vec()));
        client.add_material(as_user(OWNER, material)).await?;

        let get = GetMeetingRequest {
            meeting_id: meeting_id.clone(),
        };
        let stored = client
            .get_meeting(as_user(ORGANISER, get))
            .await?
            .into_inner();
        let meeting = stored.meeting.context("meeting")?;
        assert_eq!(meeting.topic, *text);
        assert_eq!(meeting.location, *text);
        assert_eq!(meeting.agenda[0].title, *text);
        assert_eq!(stored.materials.len(), 1, "{text:?}");
        assert_eq!(stored.materials[0].title, *text);
    }

    // Far but valid instants are plain filters for ListMeetings.
    let far: Vec<Timestamp> = far_timestamps().into_iter().map(|(_, at)| at).collect();
    let [first, last] = far[..] else {
        bail!("far_timestamps must have two entries");
    };
    let list = ListMeetingsRequest {
        start_from: Some(first),
        start_before: Some(last),
        ..Default::default()
    };
    let listed = client
        .list_meetings(as_user(ORGANISER, list))
        .await?
        .into_inner();
    assert_eq!(listed.meetings.len(), ACCEPTED_TEXT.len());

    // Bytes that are not UTF-8 are fine under a media type that does not declare UTF-8.
    let meeting_id = planned(&mut client, plan(60, "Binary")).await?;
    let bytes = b"\x89PNG\r\n\x1a\n\0\x80\xff".to_vec();
    let mut material = material_request(&meeting_id);
    material.source = Some(Source::Content(bytes.clone()));
    material.media_type = "image/png".to_owned();
    let added = client
        .add_material(as_user(OWNER, material))
        .await?
        .into_inner()
        .material
        .context("material")?;
    let content = added.content.context("content ref")?;
    assert_eq!(content.size_bytes, u64::try_from(bytes.len())?);
    assert_eq!(content.media_type, "image/png");

    service.stop().await
}
