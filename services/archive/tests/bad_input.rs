//! Bad-input corpus of the archive service: every request field that takes text, ids,
//! sequences, instants or lists gets the shared bad values of `trace_tests::corpus`. Each
//! rejected case must return the documented code and field, and leave every table
//! unchanged. Attack-looking text that is legitimate in a hold reason must be accepted and
//! stored byte for byte.
//!
//! One archive instance with a private nats-server and a SQLite file serves every case. The
//! caller has the audit and administration roles, which may call every method.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use chrono::{TimeZone, Utc};
use sea_orm::{DatabaseConnection, EntityTrait, PaginatorTrait};
use tempfile::TempDir;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Request, Status};
use trace_archive::config::ArchiveConfig;
use trace_archive::entity::{checkpoint, disposition, ledger_entry, legal_hold};
use trace_proto::archive::v1::archive_service_client::ArchiveServiceClient;
use trace_proto::archive::v1::*;
use trace_proto::common::v1::PageRequest;
use trace_runtime::clock::ManualClock;
use trace_runtime::context::{attach_identity, role};
use trace_runtime::outbox::outbox_event;
use trace_tests::corpus::{
    ACCEPTED_TEXT, Expected, MIB, bad_departments, bad_record_ids, bad_text, bad_tokens,
    check_rejection, invalid_timestamps,
};
use trace_tests::nats::NatsServer;

const AUDITOR: &str = "qian.hao";

/// Maximum time to wait for the service to start.
const DEADLINE: Duration = Duration::from_secs(60);

type Client = ArchiveServiceClient<Channel>;
type Call = Pin<Box<dyn Future<Output = Result<(), Status>> + Send>>;

/// The archive running in this process on a SQLite file.
struct Service {
    address: SocketAddr,
    shutdown: CancellationToken,
    task: Option<JoinHandle<Result<()>>>,
    db: DatabaseConnection,
    _data: TempDir,
}

impl Service {
    async fn start(nats_url: &str) -> Result<Self> {
        let data = tempfile::Builder::new().prefix("archive-bad-").tempdir()?;
        let database_url = format!(
            "sqlite://{}?mode=rwc",
            data.path().join("archive.db").display()
        );
        let mut config = ArchiveConfig::default();
        config.service.database_url = database_url.clone();
        config.service.blob_store_url = "memory:///".to_owned();
        config.service.nats.url = nats_url.to_owned();
        config.service.outbox.poll_interval_ms = 50;
        config.service.shutdown_grace_secs = 2;
        config.archive.checkpoint_interval_secs = 0;

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        let clock = ManualClock::new(Utc.with_ymd_and_hms(2026, 12, 7, 2, 0, 0).unwrap());
        let shutdown = CancellationToken::new();
        let run = trace_archive::run(config, listener, clock, shutdown.clone());
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

    /// Row counts of the outbox, the ledger, holds, dispositions and checkpoints. A
    /// rejected call must leave all of them unchanged. The ledger receives only events
    /// from the broker, and no case publishes one.
    async fn snapshot(&self) -> Result<Vec<u64>> {
        let db = &self.db;
        Ok(vec![
            outbox_event::Entity::find().count(db).await?,
            ledger_entry::Entity::find().count(db).await?,
            legal_hold::Entity::find().count(db).await?,
            disposition::Entity::find().count(db).await?,
            checkpoint::Entity::find().count(db).await?,
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
    Ok(ArchiveServiceClient::new(channel)
        .max_decoding_message_size(4 * MIB)
        .max_encoding_message_size(4 * MIB))
}

async fn wait_until_ready(address: SocketAddr, task: &mut JoinHandle<Result<()>>) -> Result<()> {
    let started = Instant::now();
    let probe = GetEntryRequest {
        key: Some(get_entry_request::Key::Sequence(1)),
    };
    while started.elapsed() < DEADLINE {
        if task.is_finished() {
            bail!("the service stopped during start: {:?}", task.await?);
        }
        if let Ok(mut client) = connect(address).await
            && let Err(status) = client.get_entry(as_auditor(probe.clone())).await
            && status.code() == Code::NotFound
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("the service was not ready after {DEADLINE:?}")
}

fn as_auditor<T>(message: T) -> Request<T> {
    let mut request = Request::new(message);
    attach_identity(
        &mut request,
        AUDITOR,
        "audit",
        &[role::AUDIT, role::ADMINISTRATION],
        None,
    );
    request
}

macro_rules! call {
    ($client:expr, $method:ident, $message:expr) => {{
        let mut client = $client.clone();
        let request = as_auditor($message);
        Box::pin(async move { client.$method(request).await.map(|_| ()) }) as Call
    }};
}

/// Entity types: the token rule of event subjects.
fn bad_entity_types() -> Vec<(String, String)> {
    let mut cases = bad_tokens(64);
    cases.push(("dot".to_owned(), "a.b".to_owned()));
    cases.push(("upper case".to_owned(), "Document".to_owned()));
    cases.push(("dash".to_owned(), "a-b".to_owned()));
    cases
}

/// Subject patterns that both QueryEntries and hold queries reject.
fn bad_subjects() -> Vec<(String, String)> {
    let long = vec!["abc"; 100].join(".");
    [
        ("star", "trace.*"),
        ("greater-than inside", "trace.>.document"),
        ("bare greater-than", ">"),
        ("empty token", "trace..document"),
        ("upper case", "trace.Document"),
        ("SQL", "'; DROP TABLE x; --"),
        ("path traversal", "../../etc/passwd"),
        ("LIKE wildcard", "trace.%"),
        ("NUL", "trace.a\0"),
        ("U+202E", "trace.\u{202E}"),
    ]
    .into_iter()
    .map(|(label, value)| (label.to_owned(), value.to_owned()))
    .chain([("399 characters".to_owned(), long)])
    .chain([("1 MiB".to_owned(), "a.".repeat(MIB / 2))])
    .collect()
}

/// Builds every rejected case of the corpus.
#[allow(clippy::too_many_lines)]
fn rejected_cases(client: &Client) -> Vec<(String, Expected, Call)> {
    let mut cases: Vec<(String, Expected, Call)> = Vec::new();
    let mut add = |label: String, expected: Expected, call: Call| {
        cases.push((label, expected, call));
    };
    let unknown = uuid::Uuid::now_v7().to_string();

    // GetTimeline.
    let timeline = |entity_type: &str, entity_id: &str, page: Option<PageRequest>| {
        let request = GetTimelineRequest {
            entity_type: entity_type.to_owned(),
            entity_id: entity_id.to_owned(),
            page,
        };
        call!(client, get_timeline, request)
    };
    for (label, value) in bad_entity_types() {
        let call = timeline(&value, "d1", None);
        add(
            format!("timeline entity_type {label}"),
            Expected::Invalid("entity_type"),
            call,
        );
    }
    for (label, value) in bad_text(1, 128, true) {
        let call = timeline("document", &value, None);
        add(
            format!("timeline entity_id {label}"),
            Expected::Invalid("entity_id"),
            call,
        );
    }

    // QueryEntries: empty filters mean "any".
    let query = |change: &dyn Fn(&mut QueryEntriesRequest)| {
        let mut request = QueryEntriesRequest::default();
        change(&mut request);
        call!(client, query_entries, request)
    };
    for (label, value) in bad_tokens(64).into_iter().filter(|(_, v)| !v.is_empty()) {
        let call = query(&|r| r.actor_id = value.clone());
        add(
            format!("query actor_id {label}"),
            Expected::Invalid("actor_id"),
            call,
        );
    }
    for (label, value) in bad_departments().into_iter().filter(|(_, v)| !v.is_empty()) {
        let call = query(&|r| r.department = value.clone());
        add(
            format!("query department {label}"),
            Expected::Invalid("department"),
            call,
        );
    }
    for (label, value) in bad_entity_types()
        .into_iter()
        .filter(|(_, v)| !v.is_empty())
    {
        let call = query(&|r| r.entity_type = value.clone());
        add(
            format!("query entity_type {label}"),
            Expected::Invalid("entity_type"),
            call,
        );
    }
    for (label, value) in bad_text(0, 128, true) {
        let call = query(&|r| r.entity_id = value.clone());
        add(
            format!("query entity_id {label}"),
            Expected::Invalid("entity_id"),
            call,
        );
    }
    for (label, value) in bad_subjects() {
        let call = query(&|r| r.subject = value.clone());
        add(
            format!("query subject {label}"),
            Expected::Invalid("subject"),
            call,
        );
    }
    for (label, value) in invalid_timestamps() {
        let call = query(&|r| r.occurred_from = Some(value));
        add(
            format!("occurred_from {label}"),
            Expected::Invalid("occurred_from"),
            call,
        );
        let call = query(&|r| r.occurred_to = Some(value));
        add(
            format!("occurred_to {label}"),
            Expected::Invalid("occurred_to"),
            call,
        );
    }
    let at = |seconds| prost_types::Timestamp { seconds, nanos: 0 };
    let call = query(&|r| {
        r.occurred_from = Some(at(1_800_000_000));
        r.occurred_to = Some(at(1_800_000_000));
    });
    add(
        "occurred_to equals occurred_from".to_owned(),
        Expected::Invalid("occurred_to"),
        call,
    );
    let tokens = [
        "x",
        "-1",
        "1:2",
        "99999999999999999999",
        "'; DROP TABLE x; --",
        "*",
        ">",
    ];
    let pages = tokens
        .map(|token| {
            (
                format!("page_token {token:?}"),
                0,
                token.to_owned(),
                "page.page_token",
            )
        })
        .into_iter()
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
        let call = query(&|r| r.page = page.clone());
        add(format!("query {label}"), Expected::Invalid(field), call);
        let rejected = ListRejectedRequest { page: page.clone() };
        add(
            format!("rejected {label}"),
            Expected::Invalid(field),
            call!(client, list_rejected, rejected),
        );
        let conflicts = ListConflictsRequest { page: page.clone() };
        add(
            format!("conflicts {label}"),
            Expected::Invalid(field),
            call!(client, list_conflicts, conflicts),
        );
    }
    let pages = ["x", "1", "1:2:3", "-1:1"];
    for token in pages {
        let page = Some(PageRequest {
            page_size: 0,
            page_token: token.to_owned(),
        });
        let call = timeline("document", "d1", page);
        add(
            format!("timeline page_token {token:?}"),
            Expected::Invalid("page.page_token"),
            call,
        );
    }

    // GetEntry.
    for (label, value) in bad_record_ids() {
        let request = GetEntryRequest {
            key: Some(get_entry_request::Key::EventId(value.clone())),
        };
        let call = call!(client, get_entry, request);
        add(
            format!("entry event_id {label}"),
            Expected::Invalid("event_id"),
            call,
        );
    }
    let missing = GetEntryRequest { key: None };
    add(
        "entry key missing".to_owned(),
        Expected::Invalid("key"),
        call!(client, get_entry, missing),
    );
    for sequence in [0, 2, u64::MAX] {
        let request = GetEntryRequest {
            key: Some(get_entry_request::Key::Sequence(sequence)),
        };
        let call = call!(client, get_entry, request);
        add(
            format!("entry sequence {sequence}"),
            Expected::NotFound("entry"),
            call,
        );
    }
    let request = GetEntryRequest {
        key: Some(get_entry_request::Key::EventId(unknown.clone())),
    };
    add(
        "entry unknown event".to_owned(),
        Expected::NotFound("entry"),
        call!(client, get_entry, request),
    );

    // VerifyChain.
    let verify = |from_sequence, to_sequence| {
        let request = VerifyChainRequest {
            from_sequence,
            to_sequence,
        };
        call!(client, verify_chain, request)
    };
    add(
        "verify from u64::MAX".to_owned(),
        Expected::Invalid("from_sequence"),
        verify(u64::MAX, 0),
    );
    add(
        "verify to u64::MAX".to_owned(),
        Expected::Invalid("to_sequence"),
        verify(0, u64::MAX),
    );
    add(
        "verify to 2^63".to_owned(),
        Expected::Invalid("to_sequence"),
        verify(1, 1 << 63),
    );
    add(
        "verify to before from".to_owned(),
        Expected::Invalid("to_sequence"),
        verify(5, 4),
    );

    // Proofs on an empty ledger.
    let head = |tree_size| call!(client, get_tree_head, GetTreeHeadRequest { tree_size });
    add(
        "tree_size 1".to_owned(),
        Expected::Invalid("tree_size"),
        head(1),
    );
    add(
        "tree_size u64::MAX".to_owned(),
        Expected::Invalid("tree_size"),
        head(u64::MAX),
    );
    let inclusion = |sequence, tree_size| {
        let request = GetInclusionProofRequest {
            sequence,
            tree_size,
        };
        call!(client, get_inclusion_proof, request)
    };
    add(
        "inclusion sequence 0".to_owned(),
        Expected::Invalid("sequence"),
        inclusion(0, 0),
    );
    add(
        "inclusion sequence u64::MAX".to_owned(),
        Expected::Invalid("sequence"),
        inclusion(u64::MAX, 0),
    );
    add(
        "inclusion tree_size u64::MAX".to_owned(),
        Expected::Invalid("tree_size"),
        inclusion(1, u64::MAX),
    );
    let consistency = |from_size, to_size| {
        let request = GetConsistencyProofRequest { from_size, to_size };
        call!(client, get_consistency_proof, request)
    };
    add(
        "consistency from_size 0".to_owned(),
        Expected::Invalid("from_size"),
        consistency(0, 0),
    );
    add(
        "consistency from_size u64::MAX".to_owned(),
        Expected::Invalid("from_size"),
        consistency(u64::MAX, 0),
    );
    add(
        "consistency to_size u64::MAX".to_owned(),
        Expected::Invalid("to_size"),
        consistency(1, u64::MAX),
    );

    // PlaceHold.
    let hold = |scope: Option<HoldScope>, reason: &str| {
        let request = PlaceHoldRequest {
            scope,
            reason: reason.to_owned(),
        };
        call!(client, place_hold, request)
    };
    let entity_scope = |entity_type: &str, entity_id: &str| {
        Some(HoldScope {
            entity_type: entity_type.to_owned(),
            entity_id: entity_id.to_owned(),
            query: None,
        })
    };
    let query_scope = |change: &dyn Fn(&mut HoldQuery)| {
        let mut query = HoldQuery {
            department: "sales".to_owned(),
            ..HoldQuery::default()
        };
        change(&mut query);
        Some(HoldScope {
            query: Some(query),
            ..HoldScope::default()
        })
    };
    add(
        "hold scope missing".to_owned(),
        Expected::Invalid("scope"),
        hold(None, "case 17"),
    );
    for (label, value) in bad_text(1, 2000, false) {
        let call = hold(entity_scope("document", "d1"), &value);
        add(
            format!("hold reason {label}"),
            Expected::Invalid("reason"),
            call,
        );
    }
    for (label, value) in bad_entity_types() {
        let call = hold(entity_scope(&value, "d1"), "case 17");
        add(
            format!("hold entity_type {label}"),
            Expected::Invalid("scope.entity_type"),
            call,
        );
    }
    for (label, value) in bad_text(0, 128, true) {
        let call = hold(entity_scope("document", &value), "case 17");
        add(
            format!("hold entity_id {label}"),
            Expected::Invalid("scope.entity_id"),
            call,
        );
    }
    for (label, value) in bad_departments().into_iter().filter(|(_, v)| !v.is_empty()) {
        let call = hold(query_scope(&|q| q.department = value.clone()), "case 17");
        let field = "scope.query.department";
        add(
            format!("hold query department {label}"),
            Expected::Invalid(field),
            call,
        );
    }
    for (label, value) in bad_tokens(64).into_iter().filter(|(_, v)| !v.is_empty()) {
        let call = hold(query_scope(&|q| q.actor_id = value.clone()), "case 17");
        let field = "scope.query.actor_id";
        add(
            format!("hold query actor_id {label}"),
            Expected::Invalid(field),
            call,
        );
    }
    for (label, value) in bad_entity_types()
        .into_iter()
        .filter(|(_, v)| !v.is_empty())
    {
        let call = hold(query_scope(&|q| q.entity_type = value.clone()), "case 17");
        let field = "scope.query.entity_type";
        add(
            format!("hold query entity_type {label}"),
            Expected::Invalid(field),
            call,
        );
    }
    for (label, value) in bad_subjects() {
        let call = hold(query_scope(&|q| q.subject = value.clone()), "case 17");
        let field = "scope.query.subject";
        add(
            format!("hold query subject {label}"),
            Expected::Invalid(field),
            call,
        );
    }
    for (label, value) in invalid_timestamps() {
        let call = hold(query_scope(&|q| q.recorded_from = Some(value)), "case 17");
        let field = "scope.query.recorded_from";
        add(
            format!("hold recorded_from {label}"),
            Expected::Invalid(field),
            call,
        );
        let call = hold(query_scope(&|q| q.recorded_to = Some(value)), "case 17");
        let field = "scope.query.recorded_to";
        add(
            format!("hold recorded_to {label}"),
            Expected::Invalid(field),
            call,
        );
    }
    let call = hold(query_scope(&|q| q.department.clear()), "case 17");
    add(
        "hold query of nothing".to_owned(),
        Expected::Invalid("scope.query"),
        call,
    );
    let call = hold(query_scope(&|q| q.match_all = true), "case 17");
    add(
        "hold match_all with a field".to_owned(),
        Expected::Invalid("scope.query.match_all"),
        call,
    );

    // ReleaseHold and ApproveDisposition.
    for (label, value) in bad_record_ids() {
        let release = ReleaseHoldRequest {
            hold_id: value.clone(),
            reason: "closed".to_owned(),
        };
        let call = call!(client, release_hold, release);
        add(
            format!("release hold_id {label}"),
            Expected::Invalid("hold_id"),
            call,
        );
        let approve = ApproveDispositionRequest {
            plan_id: value.clone(),
        };
        let call = call!(client, approve_disposition, approve);
        add(
            format!("disposition plan_id {label}"),
            Expected::Invalid("plan_id"),
            call,
        );
    }
    for (label, value) in bad_text(1, 2000, false) {
        let release = ReleaseHoldRequest {
            hold_id: unknown.clone(),
            reason: value.clone(),
        };
        let call = call!(client, release_hold, release);
        add(
            format!("release reason {label}"),
            Expected::Invalid("reason"),
            call,
        );
    }
    let release = ReleaseHoldRequest {
        hold_id: unknown.clone(),
        reason: "closed".to_owned(),
    };
    add(
        "release unknown hold".to_owned(),
        Expected::NotFound("hold"),
        call!(client, release_hold, release),
    );
    cases
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_rejected_and_writes_nothing() -> Result<()> {
    let nats = NatsServer::start()?;
    let service = Service::start(&nats.url()).await?;
    let client = connect(service.address).await?;

    let cases = rejected_cases(&client);
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
        let reason = format!("{text}\nline two\tcolumn");
        let request = PlaceHoldRequest {
            scope: Some(HoldScope {
                entity_type: "document".to_owned(),
                entity_id: (*text).to_owned(),
                query: None,
            }),
            reason: reason.clone(),
        };
        let hold = client
            .place_hold(as_auditor(request))
            .await?
            .into_inner()
            .hold
            .context("hold")?;
        assert_eq!(hold.reason, reason);
        assert_eq!(hold.scope.context("scope")?.entity_id, *text);
    }

    // Far but valid instants are plain filters.
    let query = QueryEntriesRequest {
        occurred_from: Some(prost_types::Timestamp {
            seconds: -62_135_596_800,
            nanos: 0,
        }),
        occurred_to: Some(prost_types::Timestamp {
            seconds: 253_402_300_799,
            nanos: 999_999_999,
        }),
        subject: "trace.document.>".to_owned(),
        ..Default::default()
    };
    let entries = client.query_entries(as_auditor(query)).await?.into_inner();
    assert!(entries.entries.is_empty());

    service.stop().await
}
