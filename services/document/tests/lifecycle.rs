//! End-to-end tests of the document service. Each test starts a private nats-server with
//! JetStream on a free port of 127.0.0.1. It runs the service in-process on another free port
//! with a manual clock and a temporary SQLite file, or also a fresh PostgreSQL database when
//! `TRACE_TEST_DATABASE_URL` is set, and drives it through a gRPC client.

use std::future::Future;
use std::net::{SocketAddr, TcpListener as StdTcpListener, TcpStream};
use std::path::PathBuf;
use std::pin::Pin;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use trace_tests::corpus::recorded_denial;
use trace_tests::receipts::ReceiptSender;
use trace_tests::scan::files_containing;

use anyhow::{Context, Result, bail};
use chrono::{Days, NaiveDate, TimeZone, Utc};
use futures::StreamExt;
use prost::Message;
use sea_orm::{
    ColumnTrait, DatabaseConnection, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
};
use tempfile::TempDir;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Request, Status};
use tonic_types::StatusExt;
use trace_document::DocumentConfig;
use trace_document::entity::{borrowing, document, read, revision};
use trace_proto::common::v1::{Confidentiality, Date, PageRequest};
use trace_proto::document::v1::document_service_client::DocumentServiceClient;
use trace_proto::document::v1::*;
use trace_proto::event::v1::Envelope;
use trace_runtime::clock::{Clock, ManualClock, local_date, proto_date};
use trace_runtime::context::{attach_identity, role};
use trace_runtime::outbox::outbox_event;

/// Entity type of the denial events that the shared gRPC layer records.
const DENIAL_ENTITY: &str = "access";

const DRAFTER: &str = "zhang.san";
const REVIEWER: &str = "li.si";
const KEEPER: &str = "chen.qi";
const BORROWER: &str = "wang.wu";
const APPROVER: &str = "zhao.liu";
const DEPARTMENT: &str = "admin-office";

/// Maximum time to wait for anything to converge: a server start, publication, delivery.
const DEADLINE: Duration = Duration::from_secs(60);

/// Maximum gRPC message size of the test client, above the 16 MiB content limit.
const CLIENT_MESSAGE_BYTES: usize = 32 * 1024 * 1024;

type Client = DocumentServiceClient<Channel>;

// ---------------------------------------------------------------------------------------
// A private nats-server.

/// A `nats-server` with JetStream, listening on 127.0.0.1 only; killed on drop. The store
/// directory outlives [`Nats::stop`], so [`Nats::restart`] brings back the same stream.
struct Nats {
    process: Option<Child>,
    port: u16,
    store: TempDir,
    binary: PathBuf,
}

impl Nats {
    fn start() -> Result<Self> {
        let binary = std::env::var_os("TRACE_NATS_SERVER")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.tools/venv/bin/nats-server")
            });
        anyhow::ensure!(
            binary.exists(),
            "nats-server not found at {}; set TRACE_NATS_SERVER",
            binary.display()
        );

        let mut nats = Self {
            process: None,
            port: free_port()?,
            store: tempfile::Builder::new()
                .prefix("document-nats-")
                .tempdir()?,
            binary,
        };
        nats.spawn()?;
        Ok(nats)
    }

    fn spawn(&mut self) -> Result<()> {
        let port = self.port.to_string();
        let store = self.store.path().display().to_string();
        let child = Command::new(&self.binary)
            .args(["-a", "127.0.0.1", "-p", &port, "-js", "-sd", &store])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("failed to start {}", self.binary.display()))?;
        self.process = Some(child);
        wait_for_port(self.port)
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.process.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn restart(&mut self) -> Result<()> {
        self.stop();
        self.spawn()
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        self.stop();
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

/// Creates a database `trace_t_document_<16 hex digits>` for one test on the server of
/// `TRACE_TEST_DATABASE_URL` and returns its URL, or `None` when the variable is unset. As
/// with the shared harness in `tests/`, the database is left for inspection, and `.ci/run`
/// drops every `trace_t_*` database before the next run.
fn fresh_postgres_database() -> Result<Option<String>> {
    let Some(server_url) = std::env::var("TRACE_TEST_DATABASE_URL")
        .ok()
        .filter(|url| !url.trim().is_empty())
    else {
        return Ok(None);
    };
    let suffix = uuid::Uuid::now_v7().simple().to_string();
    let name = format!("trace_t_document_{}", &suffix[suffix.len() - 16..]);

    psql(&server_url, &format!("CREATE DATABASE \"{name}\""))?;

    Ok(Some(with_database_name(&server_url, &name)))
}

/// Returns the databases a test runs on: SQLite always (`None`), and a fresh PostgreSQL
/// database when `TRACE_TEST_DATABASE_URL` is set.
fn database_variants() -> Result<Vec<Option<String>>> {
    let mut variants = vec![None];
    match fresh_postgres_database()? {
        Some(url) => variants.push(Some(url)),
        None => eprintln!("TRACE_TEST_DATABASE_URL is not set; running on SQLite only"),
    }
    Ok(variants)
}

fn psql(url: &str, statement: &str) -> Result<()> {
    let output = Command::new("psql")
        .arg(url)
        .args(["--no-psqlrc", "--quiet", "--set", "ON_ERROR_STOP=1"])
        .args(["--command", statement])
        .env("PGCONNECT_TIMEOUT", "10")
        .stdin(Stdio::null())
        .output()
        .context("failed to run psql; install the PostgreSQL client")?;
    anyhow::ensure!(
        output.status.success(),
        "psql failed on {statement:?}: {}",
        String::from_utf8_lossy(&output.stderr).trim()
    );
    Ok(())
}

/// Replaces the database name in a `postgres://user:password@host:port/name?options` URL.
fn with_database_name(url: &str, name: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(base, query)| (base, Some(query)));
    let authority_start = base.find("://").map_or(0, |index| index + 3);
    let host_end = base[authority_start..]
        .find('/')
        .map_or(base.len(), |index| authority_start + index);
    let mut replaced = format!("{}/{name}", &base[..host_end]);
    if let Some(query) = query {
        replaced.push('?');
        replaced.push_str(query);
    }
    replaced
}

// ---------------------------------------------------------------------------------------
// The service under test.

/// The document service running in this process, with its own data folder and clock.
struct Service {
    address: SocketAddr,
    clock: Arc<ManualClock>,
    shutdown: CancellationToken,
    task: Option<JoinHandle<Result<()>>>,
    /// A separate connection for assertions on the service's tables.
    db: DatabaseConnection,
    /// Stands in for the archive's receipts, which release each entity's next event.
    _receipts: ReceiptSender,
    _data: TempDir,
}

/// 10:00 on 2 March 2026 in Shanghai, the business time zone of the defaults.
fn start_instant() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 2, 0, 0).unwrap()
}

impl Service {
    async fn start(nats_url: &str, database_url: Option<&str>) -> Result<Self> {
        Self::start_with(nats_url, database_url, |_| {}).await
    }

    async fn start_with(
        nats_url: &str,
        database_url: Option<&str>,
        adjust: impl FnOnce(&mut DocumentConfig),
    ) -> Result<Self> {
        let data = tempfile::Builder::new()
            .prefix("document-service-")
            .tempdir()?;
        let sqlite_url = format!(
            "sqlite://{}?mode=rwc",
            data.path().join("document.db").display()
        );
        let database_url = database_url.map_or(sqlite_url, str::to_owned);

        let mut config = DocumentConfig::defaults();
        config.service.database_url = database_url.clone();
        config.service.blob_store_url = format!("file://{}", data.path().join("blobs").display());
        config.service.nats.url = nats_url.to_owned();
        config.service.outbox.poll_interval_ms = 50;
        config.service.shutdown_grace_secs = 2;
        config.document.overdue_check_interval_secs = 3600;
        adjust(&mut config);

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        let clock = ManualClock::new(start_instant());
        let shutdown = CancellationToken::new();
        let run = trace_document::run(config, listener, clock.clone(), shutdown.clone());
        let mut task = tokio::spawn(run);
        wait_until_ready(address, &mut task).await?;
        let receipts = ReceiptSender::start(nats_url, "document").await?;

        // Opened only now: two pools that open a new SQLite file at the same time can both
        // try to switch it to WAL, and one of them fails with "database is locked".
        let db = trace_runtime::db::connect(&database_url).await?;
        Ok(Self {
            address,
            clock,
            shutdown,
            task: Some(task),
            db,
            _receipts: receipts,
            _data: data,
        })
    }

    async fn client(&self) -> Result<Client> {
        connect_client(self.address).await
    }

    fn today(&self) -> NaiveDate {
        local_date(self.clock.now(), chrono_tz::Asia::Shanghai)
    }

    async fn stop(mut self) -> Result<()> {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            tokio::time::timeout(DEADLINE, task).await???;
        }
        Ok(())
    }

    async fn outbox_rows(&self) -> Result<Vec<outbox_event::Model>> {
        Ok(outbox_event::Entity::find()
            .order_by_asc(outbox_event::Column::Seq)
            .all(&self.db)
            .await?)
    }

    /// Row counts of the outbox and every table a call may write. Denial events
    /// (entity type `access`) are left out: the denial recorder writes them after the call.
    async fn row_counts(&self) -> Result<[u64; 5]> {
        Ok([
            outbox_event::Entity::find()
                .filter(outbox_event::Column::EntityType.ne(DENIAL_ENTITY))
                .count(&self.db)
                .await?,
            document::Entity::find().count(&self.db).await?,
            revision::Entity::find().count(&self.db).await?,
            borrowing::Entity::find().count(&self.db).await?,
            read::Entity::find().count(&self.db).await?,
        ])
    }

    /// Waits until `expected` denial events are in the outbox and returns their envelopes.
    async fn wait_for_denials(&self, expected: usize) -> Result<Vec<Envelope>> {
        let started = Instant::now();
        loop {
            let rows = outbox_event::Entity::find()
                .filter(outbox_event::Column::EntityType.eq(DENIAL_ENTITY))
                .order_by_asc(outbox_event::Column::Seq)
                .all(&self.db)
                .await?;
            if rows.len() >= expected || started.elapsed() > DEADLINE {
                return rows
                    .iter()
                    .map(|row| Ok(Envelope::decode(row.envelope.as_slice())?))
                    .collect();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Outbox rows of documents only, oldest first.
    async fn document_rows(&self) -> Result<Vec<outbox_event::Model>> {
        Ok(self
            .outbox_rows()
            .await?
            .into_iter()
            .filter(|row| row.entity_type == "document")
            .collect())
    }

    /// Waits until every outbox row has its receipt.
    async fn wait_until_archived(&self) -> Result<()> {
        let started = Instant::now();
        loop {
            let rows = self.outbox_rows().await?;
            if rows.iter().all(|row| row.archived_at.is_some()) {
                return Ok(());
            }
            anyhow::ensure!(
                started.elapsed() < DEADLINE,
                "outbox rows still without a receipt after {DEADLINE:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until every outbox row has been published to the broker.
    async fn wait_until_published(&self) -> Result<Vec<outbox_event::Model>> {
        let started = Instant::now();
        loop {
            let rows = self.outbox_rows().await?;
            if rows.iter().all(|row| row.published_at.is_some()) {
                return Ok(rows);
            }
            if started.elapsed() > DEADLINE {
                let pending: Vec<_> = rows
                    .iter()
                    .filter(|row| row.published_at.is_none())
                    .collect();
                bail!(
                    "{} outbox rows still unpublished: {pending:?}",
                    pending.len()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Waits until the service at `address` responds to calls, which happens after its migrations.
async fn wait_until_ready(address: SocketAddr, task: &mut JoinHandle<Result<()>>) -> Result<()> {
    let started = Instant::now();
    let probe = GetDocumentRequest {
        document_id: uuid::Uuid::now_v7().to_string(),
    };
    while started.elapsed() < DEADLINE {
        if task.is_finished() {
            bail!("the service stopped during start: {:?}", task.await?);
        }
        if let Ok(mut client) = connect_client(address).await {
            // The system role reads every document, so a missing one is NOT_FOUND.
            match client.get_document(as_system(probe.clone())).await {
                Err(status) if status.code() == Code::NotFound => return Ok(()),
                _ => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }
    bail!("the service was not ready after {DEADLINE:?}")
}

async fn connect_client(address: SocketAddr) -> Result<Client> {
    let channel = Endpoint::from_shared(format!("http://{address}"))?
        .timeout(Duration::from_secs(30))
        .connect()
        .await?;
    Ok(DocumentServiceClient::new(channel)
        .max_decoding_message_size(CLIENT_MESSAGE_BYTES)
        .max_encoding_message_size(CLIENT_MESSAGE_BYTES))
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

fn draft_request(title: &str, category: &str) -> CreateDraftRequest {
    CreateDraftRequest {
        title: title.to_owned(),
        category: category.to_owned(),
        department: DEPARTMENT.to_owned(),
        confidentiality: Confidentiality::Internal as i32,
        content: format!("{title}\n第一稿").into_bytes(),
        media_type: "text/plain; charset=utf-8".to_owned(),
    }
}

fn revise_request(document_id: &str, content: &str, summary: &str) -> ReviseDraftRequest {
    ReviseDraftRequest {
        document_id: document_id.to_owned(),
        content: content.as_bytes().to_vec(),
        media_type: "text/plain; charset=utf-8".to_owned(),
        change_summary: summary.to_owned(),
    }
}

fn submit_request(document_id: &str) -> SubmitForReviewRequest {
    SubmitForReviewRequest {
        document_id: document_id.to_owned(),
        reviewer_id: REVIEWER.to_owned(),
    }
}

fn review_request(
    document_id: &str,
    decision: ReviewDecision,
    opinion: &str,
) -> ReviewDocumentRequest {
    ReviewDocumentRequest {
        document_id: document_id.to_owned(),
        decision: decision as i32,
        opinion: opinion.to_owned(),
    }
}

fn register_request(document_id: &str) -> RegisterDocumentRequest {
    RegisterDocumentRequest {
        document_id: document_id.to_owned(),
        storage_location: "Archive room B, shelf 3".to_owned(),
    }
}

fn apply_request(document_id: &str, expected: NaiveDate) -> ApplyBorrowingRequest {
    ApplyBorrowingRequest {
        document_id: document_id.to_owned(),
        reason: "contract audit".to_owned(),
        expected_return_date: Some(proto_date(expected)),
    }
}

fn decide_request(borrowing_id: &str, approve: bool) -> DecideBorrowingRequest {
    DecideBorrowingRequest {
        borrowing_id: borrowing_id.to_owned(),
        approve,
        opinion: "同意借閱".to_owned(),
    }
}

fn lend_request(borrowing_id: &str) -> LendDocumentRequest {
    LendDocumentRequest {
        borrowing_id: borrowing_id.to_owned(),
    }
}

fn document_of<T>(response: Option<T>) -> T {
    response.expect("response carries its record")
}

/// Drafts a document whose content is 5 MiB, above tonic's default message limit of 4 MiB,
/// and returns it with the content.
async fn large_draft(client: &mut Client, title: &str) -> Result<(Document, Vec<u8>)> {
    let content: Vec<u8> = (0..5 * 1024 * 1024)
        .map(|index| (index % 251) as u8)
        .collect();
    let mut request = draft_request(title, "CONTRACT");
    request.content = content.clone();
    request.media_type = "application/pdf".to_owned();
    let drafted = client
        .create_draft(as_user(DRAFTER, request))
        .await?
        .into_inner();
    Ok((document_of(drafted.document), content))
}

/// Creates a document and takes it through review to registration; four events.
async fn registered_document(client: &mut Client, title: &str, category: &str) -> Result<Document> {
    let draft = client
        .create_draft(as_user(DRAFTER, draft_request(title, category)))
        .await?
        .into_inner();
    let document_id = document_of(draft.document).document_id;

    client
        .submit_for_review(as_user(DRAFTER, submit_request(&document_id)))
        .await?;
    let approve = review_request(&document_id, ReviewDecision::Approve, "同意");
    client.review_document(as_user(REVIEWER, approve)).await?;
    let registered = client
        .register_document(as_user(KEEPER, register_request(&document_id)))
        .await?
        .into_inner();
    Ok(document_of(registered.document))
}

/// Applies for, approves and lends a registered document; three events.
async fn lent_borrowing(
    client: &mut Client,
    document_id: &str,
    expected: NaiveDate,
) -> Result<Borrowing> {
    let applied = client
        .apply_borrowing(as_user(BORROWER, apply_request(document_id, expected)))
        .await?
        .into_inner();
    let borrowing_id = document_of(applied.borrowing).borrowing_id;

    client
        .decide_borrowing(as_user(APPROVER, decide_request(&borrowing_id, true)))
        .await?;
    let lent = client
        .lend_document(as_user(KEEPER, lend_request(&borrowing_id)))
        .await?;
    Ok(document_of(lent.into_inner().borrowing))
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

// ---------------------------------------------------------------------------------------
// Reading the broker.

/// Reads the document events from the trace stream with an ordered consumer, and checks
/// that the stream contains exactly `expected` of them.
async fn stream_envelopes(nats_url: &str, expected: usize) -> Result<Vec<Envelope>> {
    let client = async_nats::connect(nats_url).await?;
    let jetstream = async_nats::jetstream::new(client);
    let started = Instant::now();
    let mut stream = loop {
        match jetstream.get_stream("TRACE").await {
            Ok(stream) => break stream,
            Err(error) if started.elapsed() > DEADLINE => bail!("no TRACE stream: {error}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    };

    let config = async_nats::jetstream::consumer::pull::OrderedConfig {
        filter_subject: "trace.document.>".to_owned(),
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

    let stored = stream.info().await?.state.messages;
    anyhow::ensure!(
        stored == expected as u64,
        "the stream holds {stored} events, expected {expected}"
    );
    Ok(envelopes)
}

fn actions(envelopes: &[Envelope]) -> Vec<&str> {
    envelopes
        .iter()
        .map(|envelope| envelope.action.as_str())
        .collect()
}

fn versions(envelopes: &[Envelope]) -> Vec<u64> {
    envelopes
        .iter()
        .map(|envelope| envelope.entity_version)
        .collect()
}

fn actor(envelope: &Envelope) -> &str {
    envelope
        .actor
        .as_ref()
        .map_or("", |actor| actor.user_id.as_str())
}

// ---------------------------------------------------------------------------------------
// Tests.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycle_on_sqlite() -> Result<()> {
    run_lifecycle(None).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycle_on_postgres() -> Result<()> {
    let Some(database_url) = fresh_postgres_database()? else {
        eprintln!("TRACE_TEST_DATABASE_URL is not set; skipping the PostgreSQL lifecycle test");
        return Ok(());
    };
    run_lifecycle(Some(&database_url)).await
}

/// Drives one document from drafting to the handling of a damaged, late return, then checks
/// every response along the way and the events on the broker.
async fn run_lifecycle(database_url: Option<&str>) -> Result<()> {
    let nats = Nats::start()?;
    let service = Service::start(&nats.url(), database_url).await?;
    let mut client = service.client().await?;
    let today = service.today();

    // Draft with a display name in Chinese, which travels in binary metadata.
    let mut request = Request::new(draft_request("全過程留痕管理制度", "POLICY"));
    attach_identity(
        &mut request,
        DRAFTER,
        DEPARTMENT,
        &[role::EMPLOYEE],
        Some("張三"),
    );
    let drafted = client.create_draft(request).await?.into_inner();
    let document = document_of(drafted.document);
    let document_id = document.document_id.clone();
    assert_eq!(document.title, "全過程留痕管理制度");
    assert_eq!(document.state, DocumentState::Draft as i32);
    assert_eq!(document.drafter_id, DRAFTER);
    assert_eq!(document.revision, 1);
    assert_eq!(document.entity_version, 1);
    assert!(document.drafted_at.is_some());
    assert!(uuid::Uuid::try_parse(&drafted.event_id).is_ok());

    // Two revisions.
    client
        .revise_draft(as_user(
            DRAFTER,
            revise_request(&document_id, "第二稿", "補充第二章"),
        ))
        .await?;
    let revised = client
        .revise_draft(as_user(
            DRAFTER,
            revise_request(&document_id, "第三稿", "修正錯字"),
        ))
        .await?
        .into_inner();
    let revised = document_of(revised.document);
    assert_eq!(revised.revision, 3);
    assert_eq!(revised.state, DocumentState::Draft as i32);

    // Review returns it, the drafter revises and submits again, the reviewer approves.
    let submitted = client
        .submit_for_review(as_user(DRAFTER, submit_request(&document_id)))
        .await?;
    let submitted = document_of(submitted.into_inner().document);
    assert_eq!(submitted.state, DocumentState::InReview as i32);
    assert_eq!(submitted.reviewer_id, REVIEWER);
    let returned = review_request(&document_id, ReviewDecision::Return, "第三章需要修改");
    let returned = client
        .review_document(as_user(REVIEWER, returned))
        .await?
        .into_inner();
    assert_eq!(
        document_of(returned.document).state,
        DocumentState::Returned as i32
    );
    let revised = client
        .revise_draft(as_user(
            DRAFTER,
            revise_request(&document_id, "第四稿", "修改第三章"),
        ))
        .await?
        .into_inner();
    assert_eq!(
        document_of(revised.document).state,
        DocumentState::Returned as i32
    );
    client
        .submit_for_review(as_user(DRAFTER, submit_request(&document_id)))
        .await?;
    let approved = review_request(&document_id, ReviewDecision::Approve, "同意發布");
    let approved = client
        .review_document(as_user(REVIEWER, approved))
        .await?
        .into_inner();
    assert_eq!(
        document_of(approved.document).state,
        DocumentState::Approved as i32
    );

    // Registration assigns the file number of the year in the business time zone.
    let registered = client
        .register_document(as_user(KEEPER, register_request(&document_id)))
        .await?;
    let registered = document_of(registered.into_inner().document);
    assert_eq!(registered.state, DocumentState::Registered as i32);
    assert_eq!(registered.file_number, "POLICY-2026-0001");
    assert_eq!(registered.year, 2026);
    assert_eq!(registered.storage_location, "Archive room B, shelf 3");
    assert!(registered.registered_at.is_some());
    assert_eq!(registered.revision, 4);

    // Backup and read.
    let backup = RecordBackupRequest {
        document_id: document_id.clone(),
        medium: "external disk".to_owned(),
        location: "Safe 2, head office".to_owned(),
    };
    let backup = document_of(
        client
            .record_backup(as_user(KEEPER, backup))
            .await?
            .into_inner()
            .backup,
    );
    assert_eq!(backup.revision, 4);
    assert_eq!(backup.recorded_by, KEEPER);
    let read = ReadContentRequest {
        access_request_id: String::new(),
        document_id: document_id.clone(),
        revision: 0,
    };
    let read = client
        .read_content(as_user(BORROWER, read))
        .await?
        .into_inner();
    assert_eq!(read.revision, 4);
    assert_eq!(read.content, "第四稿".as_bytes());
    assert_eq!(
        document_of(read.content_ref).sha256,
        trace_runtime::blob::sha256_hex("第四稿".as_bytes())
    );

    // Borrowing: apply, approve, lend with a due date two weeks ahead.
    let due = today + Days::new(14);
    let borrowing = lent_borrowing(&mut client, &document_id, due).await?;
    let borrowing_id = borrowing.borrowing_id.clone();
    assert_eq!(borrowing.state, BorrowingState::Lent as i32);
    assert_eq!(borrowing.borrower_id, BORROWER);
    assert_eq!(borrowing.approver_id, APPROVER);
    assert_eq!(borrowing.approver_opinion, "同意借閱");
    assert_eq!(borrowing.expected_return_date, Some(proto_date(due)));
    assert!(borrowing.lent_at.is_some());

    // Six days after the due date the check marks it overdue, exactly once.
    service.clock.advance(chrono::Duration::days(20));
    let check = client
        .check_overdue(as_user(KEEPER, CheckOverdueRequest::default()))
        .await?;
    assert_eq!(check.into_inner().borrowing_ids, vec![borrowing_id.clone()]);
    let again = client
        .check_overdue(as_user(KEEPER, CheckOverdueRequest::default()))
        .await?;
    assert!(again.into_inner().borrowing_ids.is_empty());

    // Returned damaged and late, then the damage handling is recorded.
    let give_back = ReturnDocumentRequest {
        borrowing_id: borrowing_id.clone(),
        condition: ReturnCondition::Damaged as i32,
        condition_note: "封面破損".to_owned(),
    };
    let returned = client
        .return_document(as_user(KEEPER, give_back))
        .await?
        .into_inner();
    let returned_borrowing = document_of(returned.borrowing);
    assert_eq!(returned_borrowing.state, BorrowingState::Returned as i32);
    assert_eq!(
        returned_borrowing.return_condition,
        ReturnCondition::Damaged as i32
    );
    assert!(returned_borrowing.overdue_since.is_some());
    assert!(returned_borrowing.returned_at.is_some());
    let handling = RecordHandlingRequest {
        borrowing_id: borrowing_id.clone(),
        handling_result: "借閱人賠償修復費用".to_owned(),
    };
    let handled = client
        .record_handling(as_user(KEEPER, handling))
        .await?
        .into_inner();
    assert_eq!(
        document_of(handled.borrowing).handling_result,
        "借閱人賠償修復費用"
    );

    // The stored document counts every event.
    let stored = client
        .get_document(as_user(
            KEEPER,
            GetDocumentRequest {
                document_id: document_id.clone(),
            },
        ))
        .await?
        .into_inner();
    assert_eq!(document_of(stored.document).entity_version, 17);
    let revisions = client
        .list_revisions(as_user(
            KEEPER,
            ListRevisionsRequest {
                document_id: document_id.clone(),
            },
        ))
        .await?
        .into_inner()
        .revisions;
    let summaries: Vec<&str> = revisions
        .iter()
        .map(|revision| revision.change_summary.as_str())
        .collect();
    assert_eq!(summaries, ["", "補充第二章", "修正錯字", "修改第三章"]);

    // The outbox rows reach the broker in order, one entity version after the other.
    let rows = service.wait_until_published().await?;
    assert_eq!(rows.len(), 17);
    let envelopes = stream_envelopes(&nats.url(), 17).await?;
    assert_eq!(
        actions(&envelopes),
        [
            "drafted",
            "revised",
            "revised",
            "submitted",
            "reviewed",
            "revised",
            "submitted",
            "reviewed",
            "registered",
            "backed_up",
            "read",
            "borrow_requested",
            "borrow_approved",
            "lent",
            "overdue",
            "returned",
            "loss_handled",
        ]
    );
    assert_eq!(versions(&envelopes), (1..=17).collect::<Vec<u64>>());
    for envelope in &envelopes {
        assert_eq!(envelope.entity_type, "document");
        assert_eq!(envelope.entity_id, document_id);
        assert_eq!(
            envelope.subject,
            format!("trace.document.document.{}", envelope.action)
        );
        assert_eq!(envelope.source_service, "document");
        assert_eq!(envelope.confidentiality, Confidentiality::Internal as i32);
    }
    assert_eq!(
        envelopes[0]
            .actor
            .as_ref()
            .map(|actor| actor.display_name.as_str()),
        Some("張三")
    );
    assert_eq!(actor(&envelopes[4]), REVIEWER);
    assert_eq!(actor(&envelopes[10]), BORROWER);
    assert_eq!(actor(&envelopes[12]), APPROVER);

    // Payloads decode to the documented messages.
    let payload = |index: usize| envelopes[index].payload.clone().expect("payload");
    let registered_event: DocumentRegistered = payload(8).to_msg()?;
    assert_eq!(registered_event.file_number, "POLICY-2026-0001");
    let overdue_event: BorrowingOverdue = payload(14).to_msg()?;
    assert_eq!(overdue_event.borrowing_id, borrowing_id);
    assert_eq!(overdue_event.expected_return_date, Some(proto_date(due)));
    let returned_event: DocumentReturned = payload(15).to_msg()?;
    assert!(returned_event.late);
    assert_eq!(returned_event.condition, ReturnCondition::Damaged as i32);

    service.stop().await
}

/// The server advertises to each client connection how many calls it may have in flight
/// (`grpc_max_concurrent_streams`) in the SETTINGS frame that opens the connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_advertises_its_stream_limit() -> Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let nats = Nats::start()?;
    let service = Service::start_with(&nats.url(), None, |config| {
        config.service.grpc_max_concurrent_streams = 7;
    })
    .await?;

    /// HTTP/2 identifier of the SETTINGS_MAX_CONCURRENT_STREAMS parameter.
    const MAX_CONCURRENT_STREAMS: u16 = 3;

    // The client preface is followed by an empty SETTINGS frame. The server replies with
    // its own SETTINGS frame (type 4) before anything else.
    let mut stream = tokio::net::TcpStream::connect(service.address).await?;
    stream
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0")
        .await?;
    let mut header = [0_u8; 9];
    tokio::time::timeout(DEADLINE, stream.read_exact(&mut header)).await??;
    assert_eq!(header[3], 4, "first frame type");
    let length =
        usize::from(header[0]) << 16 | usize::from(header[1]) << 8 | usize::from(header[2]);
    let mut payload = vec![0_u8; length];
    tokio::time::timeout(DEADLINE, stream.read_exact(&mut payload)).await??;
    // Each setting is a 16-bit identifier followed by a 32-bit value.
    let advertised: Vec<(u16, u32)> = payload
        .chunks_exact(6)
        .map(|setting| {
            (
                u16::from_be_bytes([setting[0], setting[1]]),
                u32::from_be_bytes([setting[2], setting[3], setting[4], setting[5]]),
            )
        })
        .filter(|(id, _)| *id == MAX_CONCURRENT_STREAMS)
        .collect();

    assert_eq!(advertised, [(MAX_CONCURRENT_STREAMS, 7)]);
    // An open connection would delay the graceful shutdown.
    drop(stream);
    service.stop().await
}

/// Lists the services that reflection of version `$version` advertises at `$channel`, and
/// checks that it describes each of them, as grpcurl's `describe` does.
macro_rules! reflected_services {
    ($version:ident, $channel:expr) => {{
        use tonic_reflection::pb::$version::ServerReflectionRequest;
        use tonic_reflection::pb::$version::server_reflection_client::ServerReflectionClient;
        use tonic_reflection::pb::$version::server_reflection_request::MessageRequest;
        use tonic_reflection::pb::$version::server_reflection_response::MessageResponse;

        let ask = |request: MessageRequest| ServerReflectionRequest {
            host: String::new(),
            message_request: Some(request),
        };
        let mut client = ServerReflectionClient::new($channel);
        let mut replies = client
            .server_reflection_info(futures::stream::iter([ask(MessageRequest::ListServices(
                String::new(),
            ))]))
            .await?
            .into_inner();
        let reply = replies
            .message()
            .await?
            .context("reflection sent no reply")?;
        let Some(MessageResponse::ListServicesResponse(listed)) = reply.message_response else {
            anyhow::bail!("reflection {} replied {reply:?}", stringify!($version));
        };
        let mut names: Vec<String> = listed.service.into_iter().map(|s| s.name).collect();
        names.sort();
        let requests: Vec<_> = names
            .iter()
            .map(|name| ask(MessageRequest::FileContainingSymbol(name.clone())))
            .collect();
        let mut replies = client
            .server_reflection_info(futures::stream::iter(requests))
            .await?
            .into_inner();
        for name in &names {
            let reply = replies
                .message()
                .await?
                .context("reflection sent no reply")?;
            assert!(
                matches!(
                    reply.message_response,
                    Some(MessageResponse::FileDescriptorResponse(_))
                ),
                "reflection {} does not describe {name}: {reply:?}",
                stringify!($version)
            );
        }
        names
    }};
}

/// grpcurl lists services through reflection. The document service's port lists its own
/// service and the shared ones, not the other services of the trace protocol, whose calls
/// would fail there, and describes each service it lists, in both reflection versions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reflection_lists_only_this_ports_services() -> Result<()> {
    use trace_proto::archive::v1::GetLedgerStatusRequest;
    use trace_proto::archive::v1::archive_service_client::ArchiveServiceClient;

    let nats = Nats::start()?;
    let service = Service::start(&nats.url(), None).await?;
    let channel = Endpoint::from_shared(format!("http://{}", service.address))?
        .connect()
        .await?;
    let expected = [
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
        "trace.document.v1.DocumentService",
        "trace.event.v1.OutboxService",
    ];
    assert_eq!(reflected_services!(v1alpha, channel.clone()), expected);
    assert_eq!(reflected_services!(v1, channel.clone()), expected);

    // A call meant for the archive's port names the services that this port serves.
    let wrong_port = ArchiveServiceClient::new(channel.clone())
        .get_ledger_status(as_system(GetLedgerStatusRequest::default()))
        .await
        .unwrap_err();
    assert_eq!(wrong_port.code(), Code::Unimplemented, "{wrong_port:?}");
    assert!(
        wrong_port
            .message()
            .contains("\"trace.archive.v1.ArchiveService\" is not served on this port"),
        "{wrong_port:?}"
    );
    assert!(
        wrong_port
            .message()
            .contains("trace.document.v1.DocumentService"),
        "{wrong_port:?}"
    );
    drop(channel);
    service.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn illegal_transition_writes_nothing() -> Result<()> {
    let nats = Nats::start()?;
    let service = Service::start(&nats.url(), None).await?;
    let mut client = service.client().await?;
    let document = registered_document(&mut client, "Supply contract", "CONTRACT").await?;
    let counts = service.row_counts().await?;

    let revise = revise_request(&document.document_id, "new text", "late change");
    let status = client
        .revise_draft(as_user(DRAFTER, revise))
        .await
        .unwrap_err();

    assert_eq!(status.code(), Code::FailedPrecondition);
    assert_eq!(
        status.message(),
        format!(
            "cannot revise document {}: it is REGISTERED",
            document.document_id
        )
    );
    let request = GetDocumentRequest {
        document_id: document.document_id.clone(),
    };
    let stored = document_of(
        client
            .get_document(as_user(KEEPER, request))
            .await?
            .into_inner()
            .document,
    );
    assert_eq!(stored.entity_version, document.entity_version);
    assert_eq!(service.row_counts().await?, counts);

    // Other states and actions name their state too.
    let draft = client
        .create_draft(as_user(DRAFTER, draft_request("Memo", "MEMO")))
        .await?
        .into_inner();
    let draft_id = document_of(draft.document).document_id;
    let status = client
        .register_document(as_user(KEEPER, register_request(&draft_id)))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert!(
        status.message().contains("it is DRAFT"),
        "{}",
        status.message()
    );
    let approve = review_request(&draft_id, ReviewDecision::Approve, "ok");
    let status = client
        .review_document(as_user(REVIEWER, approve))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    let status = client
        .apply_borrowing(as_user(BORROWER, apply_request(&draft_id, service.today())))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);

    // An unknown id is not found.
    let missing = revise_request(&uuid::Uuid::now_v7().to_string(), "x", "y");
    let status = client
        .revise_draft(as_user(DRAFTER, missing))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);

    service.stop().await
}

type Call = Pin<Box<dyn Future<Output = Result<(), Status>> + Send>>;

/// Builds a boxed call of `method` as `user`, run later by the table test.
macro_rules! call {
    ($client:expr, $method:ident, $user:expr, $message:expr) => {{
        let mut client = $client.clone();
        let request = as_user($user, $message);
        Box::pin(async move { client.$method(request).await.map(|_| ()) }) as Call
    }};
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_requests_write_nothing() -> Result<()> {
    let nats = Nats::start()?;
    let service = Service::start_with(&nats.url(), None, |config| {
        config.document.max_content_bytes = 1024;
    })
    .await?;
    let mut client = service.client().await?;
    let registered = registered_document(&mut client, "Lease", "CONTRACT")
        .await?
        .document_id;
    let draft = client
        .create_draft(as_user(DRAFTER, draft_request("Notice", "NOTICE")))
        .await?
        .into_inner();
    let draft_id = document_of(draft.document).document_id;
    let borrowing = lent_borrowing(&mut client, &registered, service.today())
        .await?
        .borrowing_id;
    let today = service.today();

    // One builder per method keeps each case of the table on one line.
    let create = |change: fn(&mut CreateDraftRequest)| {
        let mut request = draft_request("Valid title", "CONTRACT");
        change(&mut request);
        call!(client, create_draft, DRAFTER, request)
    };
    let revise = |document_id: &str, summary: &str| {
        let request = revise_request(document_id, "text", summary);
        call!(client, revise_draft, DRAFTER, request)
    };
    let submit = |reviewer_id: &str| {
        let request = SubmitForReviewRequest {
            document_id: draft_id.clone(),
            reviewer_id: reviewer_id.to_owned(),
        };
        call!(client, submit_for_review, DRAFTER, request)
    };
    let review = |decision: i32, opinion: &str| {
        let request = ReviewDocumentRequest {
            document_id: draft_id.clone(),
            decision,
            opinion: opinion.to_owned(),
        };
        call!(client, review_document, REVIEWER, request)
    };
    let register = |storage_location: &str| {
        let request = RegisterDocumentRequest {
            document_id: draft_id.clone(),
            storage_location: storage_location.to_owned(),
        };
        call!(client, register_document, KEEPER, request)
    };
    let back_up = |medium: String| {
        let request = RecordBackupRequest {
            document_id: registered.clone(),
            medium,
            location: "safe".to_owned(),
        };
        call!(client, record_backup, KEEPER, request)
    };
    let read = |document_id: &str| {
        let request = ReadContentRequest {
            access_request_id: String::new(),
            document_id: document_id.to_owned(),
            revision: 0,
        };
        call!(client, read_content, BORROWER, request)
    };
    let list = |page_token: &str| {
        let page = PageRequest {
            page_size: 10,
            page_token: page_token.to_owned(),
        };
        let request = ListDocumentsRequest {
            page: Some(page),
            ..Default::default()
        };
        call!(client, list_documents, KEEPER, request)
    };
    let apply = |reason: &str, date: Option<Date>| {
        let request = ApplyBorrowingRequest {
            document_id: registered.clone(),
            reason: reason.to_owned(),
            expected_return_date: date,
        };
        call!(client, apply_borrowing, BORROWER, request)
    };
    let give_back = |condition: ReturnCondition, note: &str| {
        let request = ReturnDocumentRequest {
            borrowing_id: borrowing.clone(),
            condition: condition as i32,
            condition_note: note.to_owned(),
        };
        call!(client, return_document, KEEPER, request)
    };
    let lose = |description: &str| {
        let request = ReportLossRequest {
            borrowing_id: borrowing.clone(),
            description: description.to_owned(),
        };
        call!(client, report_loss, KEEPER, request)
    };
    let check = |as_of: NaiveDate| {
        let request = CheckOverdueRequest {
            as_of: Some(proto_date(as_of)),
        };
        call!(client, check_overdue, KEEPER, request)
    };
    let february_30 = Some(Date {
        year: 2026,
        month: 2,
        day: 30,
    });
    let in_two_years = Some(proto_date(today + Days::new(730)));
    let yesterday = today - Days::new(1);

    #[rustfmt::skip]
    let cases: Vec<(&str, &str, Call)> = vec![
        ("empty title", "title", create(|d| d.title.clear())),
        ("201-character title", "title", create(|d| d.title = "題".repeat(201))),
        ("NUL in title", "title", create(|d| d.title = "a\0b".to_owned())),
        ("U+202E in title", "title", create(|d| d.title = "abc\u{202E}txt.exe".to_owned())),
        ("newline in title", "title", create(|d| d.title = "a\nb".to_owned())),
        ("unknown confidentiality", "confidentiality", create(|d| d.confidentiality = 99)),
        ("unspecified confidentiality", "confidentiality", create(|d| d.confidentiality = 0)),
        ("lowercase category", "category", create(|d| d.category = "contract".to_owned())),
        ("category with a dot", "category", create(|d| d.category = "A.B".to_owned())),
        ("uppercase department", "department", create(|d| d.department = "Ops".to_owned())),
        ("empty media type", "media_type", create(|d| d.media_type.clear())),
        ("content over the limit", "content", create(|d| d.content = vec![b'x'; 1025])),
        ("id with a star", "document_id", revise("*", "summary")),
        ("id with a greater-than sign", "document_id", revise(">", "summary")),
        ("id with a dot", "document_id", revise("a.b", "summary")),
        ("empty change summary", "change_summary", revise(&draft_id, "")),
        ("reviewer id with a space", "reviewer_id", submit("li si")),
        ("drafter as reviewer", "reviewer_id", submit(DRAFTER)),
        ("unknown decision", "decision", review(99, "ok")),
        ("empty opinion", "opinion", review(ReviewDecision::Approve as i32, "")),
        ("empty storage location", "storage_location", register("")),
        ("65-character medium", "medium", back_up("m".repeat(65))),
        ("empty read id", "document_id", read("")),
        ("garbage page token", "page.page_token", list("!!garbage!!")),
        ("2026-02-30", "expected_return_date", apply("audit", february_30)),
        ("two years ahead", "expected_return_date", apply("audit", in_two_years)),
        ("yesterday", "expected_return_date", apply("audit", Some(proto_date(yesterday)))),
        ("missing return date", "expected_return_date", apply("audit", None)),
        ("empty reason", "reason", apply("", Some(proto_date(today)))),
        ("unspecified condition", "condition", give_back(ReturnCondition::Unspecified, "")),
        ("damaged without a note", "condition_note", give_back(ReturnCondition::Damaged, "")),
        ("empty loss description", "description", lose("")),
        ("check as of yesterday", "as_of", check(yesterday)),
    ];

    for (case, field, call) in cases {
        let counts = service.row_counts().await?;

        let status = call.await.expect_err(case);

        assert_eq!(status.code(), Code::InvalidArgument, "{case}: {status:?}");
        assert_eq!(violation_fields(&status), [field], "{case}: {status:?}");
        assert!(
            status.message().contains(field),
            "{case}: {}",
            status.message()
        );
        assert_eq!(service.row_counts().await?, counts, "{case} wrote rows");
    }

    service.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_identity_is_unauthenticated() -> Result<()> {
    let nats = Nats::start()?;
    let service = Service::start(&nats.url(), None).await?;
    let mut client = service.client().await?;
    let counts = service.row_counts().await?;

    let status = client
        .create_draft(Request::new(draft_request("Anonymous", "MEMO")))
        .await
        .unwrap_err();

    assert_eq!(status.code(), Code::Unauthenticated);
    assert!(
        status.message().contains("x-trace-user-id"),
        "{}",
        status.message()
    );
    assert_eq!(service.row_counts().await?, counts);
    service.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permission_rules_are_enforced() -> Result<()> {
    let nats = Nats::start()?;
    let service = Service::start(&nats.url(), None).await?;
    let mut client = service.client().await?;
    let draft = client
        .create_draft(as_user(DRAFTER, draft_request("Budget report", "REPORT")))
        .await?
        .into_inner();
    let document_id = document_of(draft.document).document_id;

    // Only the drafter revises and submits.
    let revise = revise_request(&document_id, "edit", "someone else's edit");
    let status = client
        .revise_draft(as_user(KEEPER, revise))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    let status = client
        .submit_for_review(as_user(KEEPER, submit_request(&document_id)))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);

    // Only the assigned reviewer reviews.
    client
        .submit_for_review(as_user(DRAFTER, submit_request(&document_id)))
        .await?;
    let counts = service.row_counts().await?;
    let approve = review_request(&document_id, ReviewDecision::Approve, "looks fine");
    let status = client
        .review_document(as_user(KEEPER, approve.clone()))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    assert!(status.message().contains(REVIEWER), "{}", status.message());
    let status = client
        .review_document(as_user(DRAFTER, approve))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    assert_eq!(service.row_counts().await?, counts);

    // Each of the four denials above is recorded, with the caller as the actor.
    let denials = service.wait_for_denials(4).await?;
    // Each denial is written by its own task, so the order may differ from the calls.
    let mut actors: Vec<&str> = denials.iter().map(actor).collect();
    actors.sort_unstable();
    let mut expected = [KEEPER, KEEPER, KEEPER, DRAFTER];
    expected.sort_unstable();
    assert_eq!(actors, expected);
    assert!(
        denials
            .iter()
            .all(|envelope| envelope.subject == "trace.document.access.denied")
    );

    // The borrower does not decide their own borrowing.
    let registered = registered_document(&mut client, "Lease", "CONTRACT").await?;
    let applied = client
        .apply_borrowing(as_user(
            BORROWER,
            apply_request(&registered.document_id, service.today()),
        ))
        .await?
        .into_inner();
    let borrowing_id = document_of(applied.borrowing).borrowing_id;
    let status = client
        .decide_borrowing(as_user(BORROWER, decide_request(&borrowing_id, true)))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);

    // Checking overdue borrowings for a later date needs the system role.
    let tomorrow = CheckOverdueRequest {
        as_of: Some(proto_date(service.today() + Days::new(1))),
    };
    let status = client
        .check_overdue(as_user(KEEPER, tomorrow))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    assert!(client.check_overdue(as_system(tomorrow)).await.is_ok());

    service.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn borrowing_exclusivity_and_loss() -> Result<()> {
    for database_url in database_variants()? {
        run_borrowing_exclusivity(database_url.as_deref()).await?;
    }
    Ok(())
}

async fn run_borrowing_exclusivity(database_url: Option<&str>) -> Result<()> {
    let nats = Nats::start()?;
    let service = Service::start(&nats.url(), database_url).await?;
    let mut client = service.client().await?;
    let document = registered_document(&mut client, "Deed", "CONTRACT").await?;
    let due = service.today() + Days::new(7);
    let first = lent_borrowing(&mut client, &document.document_id, due).await?;

    // A second application is accepted but cannot be approved while the first is lent.
    let second = client
        .apply_borrowing(as_user(KEEPER, apply_request(&document.document_id, due)))
        .await?
        .into_inner();
    let second_id = document_of(second.borrowing).borrowing_id;
    let status = client
        .decide_borrowing(as_user(APPROVER, decide_request(&second_id, true)))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert!(
        status.message().contains(&first.borrowing_id),
        "{}",
        status.message()
    );

    // Lending twice is a wrong state.
    let status = client
        .lend_document(as_user(KEEPER, lend_request(&first.borrowing_id)))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert!(
        status.message().contains("it is LENT"),
        "{}",
        status.message()
    );

    // An intact return cannot be handled; a loss can, once.
    let loss = ReportLossRequest {
        borrowing_id: first.borrowing_id.clone(),
        description: "left on a train".to_owned(),
    };
    let lost = client
        .report_loss(as_user(KEEPER, loss))
        .await?
        .into_inner();
    assert_eq!(
        document_of(lost.borrowing).state,
        BorrowingState::Lost as i32
    );
    let handling = RecordHandlingRequest {
        borrowing_id: first.borrowing_id.clone(),
        handling_result: "copy restored from backup".to_owned(),
    };
    client
        .record_handling(as_user(KEEPER, handling.clone()))
        .await?;
    let status = client
        .record_handling(as_user(KEEPER, handling))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert!(
        status.message().contains("already handled"),
        "{}",
        status.message()
    );

    // With the first borrowing closed the second may be approved, lent and returned intact.
    client
        .decide_borrowing(as_user(APPROVER, decide_request(&second_id, true)))
        .await?;
    client
        .lend_document(as_user(BORROWER, lend_request(&second_id)))
        .await?;
    let intact = ReturnDocumentRequest {
        borrowing_id: second_id.clone(),
        condition: ReturnCondition::Intact as i32,
        condition_note: String::new(),
    };
    let returned = client
        .return_document(as_user(BORROWER, intact))
        .await?
        .into_inner();
    assert_eq!(
        document_of(returned.borrowing).return_condition,
        ReturnCondition::Intact as i32
    );
    let handling = RecordHandlingRequest {
        borrowing_id: second_id.clone(),
        handling_result: "nothing to handle".to_owned(),
    };
    let status = client
        .record_handling(as_user(KEEPER, handling))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert!(
        status.message().contains("RETURNED INTACT"),
        "{}",
        status.message()
    );

    // A rejected application stays rejected.
    let third = client
        .apply_borrowing(as_user(BORROWER, apply_request(&document.document_id, due)))
        .await?
        .into_inner();
    let third_id = document_of(third.borrowing).borrowing_id;
    let rejected = client
        .decide_borrowing(as_user(APPROVER, decide_request(&third_id, false)))
        .await?
        .into_inner();
    assert_eq!(
        document_of(rejected.borrowing).state,
        BorrowingState::Rejected as i32
    );

    let listed = client
        .list_borrowings(as_user(
            KEEPER,
            ListBorrowingsRequest {
                document_id: document.document_id.clone(),
            },
        ))
        .await?
        .into_inner()
        .borrowings;
    let states: Vec<i32> = listed.iter().map(|borrowing| borrowing.state).collect();
    assert_eq!(
        states,
        [
            BorrowingState::Lost as i32,
            BorrowingState::Returned as i32,
            BorrowingState::Rejected as i32
        ]
    );
    service.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_numbers_count_per_category_and_year() -> Result<()> {
    for database_url in database_variants()? {
        run_file_numbers(database_url.as_deref()).await?;
    }
    Ok(())
}

async fn run_file_numbers(database_url: Option<&str>) -> Result<()> {
    let nats = Nats::start()?;
    let service = Service::start(&nats.url(), database_url).await?;
    let mut client = service.client().await?;

    let first = registered_document(&mut client, "Contract A", "CONTRACT").await?;
    let second = registered_document(&mut client, "Contract B", "CONTRACT").await?;
    let other = registered_document(&mut client, "Hiring plan", "HR").await?;
    // 16:00 UTC on 31 December is already 1 January in Shanghai.
    let new_year = Utc.with_ymd_and_hms(2026, 12, 31, 16, 0, 0).unwrap() - start_instant();
    service.clock.advance(new_year);
    let next_year = registered_document(&mut client, "Contract C", "CONTRACT").await?;

    assert_eq!(first.file_number, "CONTRACT-2026-0001");
    assert_eq!(second.file_number, "CONTRACT-2026-0002");
    assert_eq!(other.file_number, "HR-2026-0001");
    assert_eq!(next_year.file_number, "CONTRACT-2027-0001");
    assert_eq!(next_year.year, 2027);
    service.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_filters_and_paging() -> Result<()> {
    for database_url in database_variants()? {
        run_list_filters(database_url.as_deref()).await?;
    }
    Ok(())
}

async fn run_list_filters(database_url: Option<&str>) -> Result<()> {
    let nats = Nats::start()?;
    let service = Service::start(&nats.url(), database_url).await?;
    let mut client = service.client().await?;
    let policy = registered_document(&mut client, "全過程留痕管理制度", "POLICY").await?;
    let discount = registered_document(&mut client, "Discount 50%_off", "CONTRACT").await?;
    let drafted = client
        .create_draft(as_user(
            DRAFTER,
            draft_request("Ｆｕｌｌ-width Memo", "MEMO"),
        ))
        .await?
        .into_inner();
    let memo = document_of(drafted.document);

    let mut list = async |request: ListDocumentsRequest| -> Result<Vec<String>> {
        let response = client
            .list_documents(as_user(KEEPER, request))
            .await?
            .into_inner();
        Ok(response
            .documents
            .into_iter()
            .map(|document| document.document_id)
            .collect())
    };
    let title = |text: &str| ListDocumentsRequest {
        title_contains: text.to_owned(),
        ..Default::default()
    };

    assert_eq!(list(title("留痕")).await?, [policy.document_id.as_str()]);
    assert_eq!(list(title("memo")).await?, [memo.document_id.as_str()]);
    assert_eq!(
        list(title("FULL-WIDTH")).await?,
        [memo.document_id.as_str()]
    );
    assert_eq!(list(title("50%_")).await?, [discount.document_id.as_str()]);
    assert_eq!(list(title("%")).await?, [discount.document_id.as_str()]);
    assert_eq!(list(title("_")).await?, [discount.document_id.as_str()]);
    assert!(list(title("50%x")).await?.is_empty());
    let by_category = ListDocumentsRequest {
        category: "CONTRACT".to_owned(),
        ..Default::default()
    };
    assert_eq!(list(by_category).await?, [discount.document_id.as_str()]);
    let by_state = ListDocumentsRequest {
        state: DocumentState::Draft as i32,
        ..Default::default()
    };
    assert_eq!(list(by_state).await?, [memo.document_id.as_str()]);
    let by_year = ListDocumentsRequest {
        year: 2026,
        department: DEPARTMENT.to_owned(),
        ..Default::default()
    };
    assert_eq!(
        list(by_year).await?,
        [policy.document_id.clone(), discount.document_id.clone()]
    );

    // Pages of one follow the creation order and end with an empty token.
    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let request = ListDocumentsRequest {
            page: Some(PageRequest {
                page_size: 1,
                page_token: token.clone(),
            }),
            ..Default::default()
        };
        let page = client
            .list_documents(as_user(KEEPER, request))
            .await?
            .into_inner();
        seen.extend(
            page.documents
                .into_iter()
                .map(|document| document.document_id),
        );
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(
        seen,
        [policy.document_id, discount.document_id, memo.document_id]
    );
    service.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_reads_keep_versions_contiguous() -> Result<()> {
    for database_url in database_variants()? {
        run_concurrent_reads(database_url.as_deref()).await?;
    }
    Ok(())
}

/// Sends reads of one document at once. Each read increments the document's entity
/// version, so the calls contend for the document row: they queue on its row lock on
/// PostgreSQL and on the write lock on SQLite. Every call succeeds, and no two events share
/// a version.
async fn run_concurrent_reads(database_url: Option<&str>) -> Result<()> {
    const CALLS: usize = 16;
    let nats = Nats::start()?;
    let service = Service::start(&nats.url(), database_url).await?;
    let client = service.client().await?;
    let drafted = client
        .clone()
        .create_draft(as_user(DRAFTER, draft_request("Hot document", "MEMO")))
        .await?
        .into_inner();
    let document_id = document_of(drafted.document).document_id;

    let calls = (0..CALLS).map(|_| {
        let mut client = client.clone();
        let request = ReadContentRequest {
            access_request_id: String::new(),
            document_id: document_id.clone(),
            revision: 0,
        };
        async move { client.read_content(as_user(BORROWER, request)).await }
    });
    let outcomes = futures::future::join_all(calls).await;

    let failures: Vec<_> = outcomes
        .iter()
        .filter_map(|outcome| outcome.as_ref().err())
        .collect();
    assert!(failures.is_empty(), "{failures:?}");
    let succeeded = outcomes.len();
    let rows = service.outbox_rows().await?;
    let mut event_versions: Vec<u64> = rows
        .iter()
        .map(|row| {
            Envelope::decode(row.envelope.as_slice()).map(|envelope| envelope.entity_version)
        })
        .collect::<Result<_, _>>()?;
    event_versions.sort_unstable();
    let expected: Vec<u64> = (1..=1 + succeeded as u64).collect();
    assert_eq!(event_versions, expected);
    let request = GetDocumentRequest {
        document_id: document_id.clone(),
    };
    let stored = client
        .clone()
        .get_document(as_user(KEEPER, request))
        .await?
        .into_inner();
    assert_eq!(
        document_of(stored.document).entity_version,
        1 + succeeded as u64
    );
    service.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_content_round_trips() -> Result<()> {
    let nats = Nats::start()?;
    let service = Service::start(&nats.url(), None).await?;
    let mut client = service.client().await?;
    let (document, content) = large_draft(&mut client, "Scanned contract").await?;
    let read = ReadContentRequest {
        access_request_id: String::new(),
        document_id: document.document_id.clone(),
        revision: 1,
    };
    let read = client
        .read_content(as_user(KEEPER, read))
        .await?
        .into_inner();

    assert_eq!(read.content.len(), content.len());
    assert!(read.content == content);
    let reference = document_of(read.content_ref);
    assert_eq!(reference.size_bytes, content.len() as u64);
    assert_eq!(reference.media_type, "application/pdf");
    let missing = ReadContentRequest {
        access_request_id: String::new(),
        document_id: document.document_id.clone(),
        revision: 2,
    };
    let status = client
        .read_content(as_user(KEEPER, missing))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    service.stop().await
}

/// With `grpc_max_calls_in_flight` at 1, a large read that its client has not yet taken
/// keeps the only permit: another connection's call fails with `RESOURCE_EXHAUSTED`, a
/// health check still succeeds, and calls succeed again once the read is taken.
#[tokio::test]
async fn call_limit_waits_for_slow_reader() -> Result<()> {
    let nats = Nats::start()?;
    let service = Service::start_with(&nats.url(), None, |config| {
        config.service.grpc_max_calls_in_flight = 1;
    })
    .await?;
    let mut client = service.client().await?;
    // Far above what HTTP/2 flow control lets the server send before the client reads.
    let (document, content) = large_draft(&mut client, "Survey drawings").await?;
    let document_id = document.document_id;

    // Sent as a stream of one message, so that the call returns once the response headers
    // arrive and leaves the message unread, in a window of 64 KiB.
    let channel = Endpoint::from_shared(format!("http://{}", service.address))?
        .initial_stream_window_size(Some(64 * 1024))
        .connect()
        .await?;
    let mut slow =
        tonic::client::Grpc::new(channel).max_decoding_message_size(CLIENT_MESSAGE_BYTES);
    slow.ready().await?;
    let read = ReadContentRequest {
        access_request_id: String::new(),
        document_id: document_id.clone(),
        revision: 1,
    };
    let unread = slow
        .streaming(
            as_user(KEEPER, futures::stream::iter([read])),
            tonic::codegen::http::uri::PathAndQuery::from_static(
                "/trace.document.v1.DocumentService/ReadContent",
            ),
            tonic_prost::ProstCodec::<ReadContentRequest, ReadContentResponse>::default(),
        )
        .await?;

    let get = || GetDocumentRequest {
        document_id: document_id.clone(),
    };
    let rejected = client
        .get_document(as_user(KEEPER, get()))
        .await
        .unwrap_err();
    assert_eq!(rejected.code(), Code::ResourceExhausted, "{rejected:?}");
    assert!(
        rejected.message().contains("grpc_max_calls_in_flight"),
        "{rejected:?}"
    );
    let channel = Endpoint::from_shared(format!("http://{}", service.address))?
        .connect()
        .await?;
    let health = tonic_health::pb::health_client::HealthClient::new(channel)
        .check(tonic_health::pb::HealthCheckRequest::default())
        .await?
        .into_inner();
    assert_eq!(
        health.status(),
        tonic_health::pb::health_check_response::ServingStatus::Serving
    );

    let mut unread = unread.into_inner();
    let message = unread
        .message()
        .await?
        .context("the read returned no message")?;
    assert!(message.content == content);
    assert!(unread.message().await?.is_none());
    // The server lets go of the permit when its side of the body ends, which depends on how
    // its tasks are scheduled, so a call that still finds the permit taken is tried again.
    let started = Instant::now();
    let document = loop {
        match client.get_document(as_user(KEEPER, get())).await {
            Err(status) if status.code() == Code::ResourceExhausted => {
                assert!(
                    started.elapsed() < DEADLINE,
                    "the permit was never released"
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            other => break document_of(other?.into_inner().document),
        }
    };
    assert_eq!(document.document_id, document_id);
    service.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn background_check_marks_overdue_once() -> Result<()> {
    let nats = Nats::start()?;
    let service = Service::start_with(&nats.url(), None, |config| {
        config.document.overdue_check_interval_secs = 1;
    })
    .await?;
    let mut client = service.client().await?;
    let document = registered_document(&mut client, "Tender", "CONTRACT").await?;
    let borrowing = lent_borrowing(&mut client, &document.document_id, service.today()).await?;

    service.clock.advance(chrono::Duration::days(2));
    let started = Instant::now();
    loop {
        let request = ListBorrowingsRequest {
            document_id: document.document_id.clone(),
        };
        let listed = client
            .list_borrowings(as_user(KEEPER, request))
            .await?
            .into_inner();
        if listed.borrowings[0].state == BorrowingState::Overdue as i32 {
            break;
        }
        anyhow::ensure!(
            started.elapsed() < DEADLINE,
            "the background check did not mark the borrowing"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Two more runs of the check must not mark it again.
    tokio::time::sleep(Duration::from_millis(2500)).await;

    let overdue_rows: Vec<_> = service
        .outbox_rows()
        .await?
        .into_iter()
        .filter(|row| row.subject == "trace.document.document.overdue")
        .collect();
    assert_eq!(overdue_rows.len(), 1);
    let envelope = Envelope::decode(overdue_rows[0].envelope.as_slice())?;
    assert_eq!(actor(&envelope), "system:document");
    let payload: BorrowingOverdue = envelope.payload.expect("payload").to_msg()?;
    assert_eq!(payload.borrowing_id, borrowing.borrowing_id);
    service.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_survive_broker_outage() -> Result<()> {
    let mut nats = Nats::start()?;
    let service = Service::start(&nats.url(), None).await?;
    let mut client = service.client().await?;
    let drafted = client
        .create_draft(as_user(DRAFTER, draft_request("Outage drill", "MEMO")))
        .await?
        .into_inner();
    let document_id = document_of(drafted.document).document_id;
    service.wait_until_archived().await?;

    nats.stop();
    client
        .revise_draft(as_user(
            DRAFTER,
            revise_request(&document_id, "v2", "second"),
        ))
        .await?;
    client
        .revise_draft(as_user(
            DRAFTER,
            revise_request(&document_id, "v3", "third"),
        ))
        .await?;
    client
        .submit_for_review(as_user(DRAFTER, submit_request(&document_id)))
        .await?;
    let approve = review_request(&document_id, ReviewDecision::Approve, "ok");
    client.review_document(as_user(REVIEWER, approve)).await?;
    client
        .register_document(as_user(KEEPER, register_request(&document_id)))
        .await?;
    let pending = service
        .outbox_rows()
        .await?
        .iter()
        .filter(|row| row.published_at.is_none())
        .count();
    assert_eq!(pending, 5);

    nats.restart()?;
    let rows = service.wait_until_published().await?;
    assert_eq!(rows.len(), 6);
    let envelopes = stream_envelopes(&nats.url(), 6).await?;
    assert_eq!(
        actions(&envelopes),
        [
            "drafted",
            "revised",
            "revised",
            "submitted",
            "reviewed",
            "registered"
        ]
    );
    assert_eq!(versions(&envelopes), [1, 2, 3, 4, 5, 6]);
    service.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_keeps_documents_and_file_numbers() -> Result<()> {
    let nats = Nats::start()?;
    let data = tempfile::Builder::new()
        .prefix("document-restart-")
        .tempdir()?;
    let database_url = format!(
        "sqlite://{}?mode=rwc",
        data.path().join("document.db").display()
    );
    let blob_store_url = format!("file://{}", data.path().join("blobs").display());
    let use_shared_blobs = |config: &mut DocumentConfig| {
        config.service.blob_store_url = blob_store_url.clone();
    };

    let service = Service::start_with(&nats.url(), Some(&database_url), use_shared_blobs).await?;
    let mut client = service.client().await?;
    let first = registered_document(&mut client, "Before restart", "CONTRACT").await?;
    service.wait_until_published().await?;
    service.stop().await?;

    // The migrations run again on the same database and find everything applied.
    let service = Service::start_with(&nats.url(), Some(&database_url), use_shared_blobs).await?;
    let mut client = service.client().await?;
    let read = ReadContentRequest {
        access_request_id: String::new(),
        document_id: first.document_id.clone(),
        revision: 0,
    };
    let read = client
        .read_content(as_user(KEEPER, read))
        .await?
        .into_inner();
    let second = registered_document(&mut client, "After restart", "CONTRACT").await?;

    assert_eq!(read.content, "Before restart\n第一稿".as_bytes());
    assert_eq!(second.file_number, "CONTRACT-2026-0002");
    let rows = service.wait_until_published().await?;
    assert_eq!(rows.len(), 9);
    let envelopes = stream_envelopes(&nats.url(), 9).await?;
    let first_versions: Vec<u64> = envelopes
        .iter()
        .filter(|envelope| envelope.entity_id == first.document_id)
        .map(|envelope| envelope.entity_version)
        .collect();
    assert_eq!(first_versions, [1, 2, 3, 4, 5]);
    service.stop().await
}

#[test]
fn database_name_is_replaced_in_url() {
    assert_eq!(
        with_database_name(
            "postgres://trace:secret@127.0.0.1:5432/postgres?sslmode=disable",
            "t1"
        ),
        "postgres://trace:secret@127.0.0.1:5432/t1?sslmode=disable"
    );
    assert_eq!(
        with_database_name("postgres://127.0.0.1", "t1"),
        "postgres://127.0.0.1/t1"
    );
}

fn as_department_head<T>(user_id: &str, department: &str, message: T) -> Request<T> {
    let mut request = Request::new(message);
    attach_identity(
        &mut request,
        user_id,
        department,
        &[role::DEPARTMENT_HEAD],
        None,
    );
    request
}

fn read_request(document_id: &str) -> ReadContentRequest {
    ReadContentRequest {
        access_request_id: String::new(),
        document_id: document_id.to_owned(),
        revision: 0,
    }
}

fn approval(access_request_id: &str, expires_at: chrono::DateTime<Utc>) -> DecideAccessRequest {
    DecideAccessRequest {
        access_request_id: access_request_id.to_owned(),
        approve: true,
        opinion: "needed for the supplier audit".to_owned(),
        expires_at: Some(prost_types::Timestamp {
            seconds: expires_at.timestamp(),
            nanos: 0,
        }),
    }
}

/// Decodes the payload of the last outbox row, which must be a `read_denied` event.
async fn last_denial(service: &Service) -> Result<DocumentReadDenied> {
    let rows = service.document_rows().await?;
    let envelope = Envelope::decode(rows.last().context("no outbox rows")?.envelope.as_slice())?;
    anyhow::ensure!(
        envelope.action == "read_denied",
        "the last event is {}",
        envelope.action
    );
    let payload = opened_payload(&envelope)?;
    Ok(DocumentReadDenied::decode(payload.value.as_slice())?)
}

/// Returns the payload of an event, opening it with the development key when it is sealed.
fn opened_payload(envelope: &Envelope) -> Result<prost_types::Any> {
    let keyring = trace_runtime::seal::Keyring::development();
    trace_runtime::event::open_payload(&keyring, envelope)?.context("no payload")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confidential_reads_need_an_approved_request() -> Result<()> {
    let nats = Nats::start()?;
    let service = Service::start(&nats.url(), None).await?;
    let mut client = service.client().await?;
    let mut draft = draft_request("Supplier contract", "CONTRACT");
    draft.confidentiality = Confidentiality::Confidential as i32;
    let created = client
        .create_draft(as_user(DRAFTER, draft))
        .await?
        .into_inner();
    let document_id = document_of(created.document).document_id;

    // The drafter reads without a request; anyone else is denied, and the denial is traced.
    let own = client
        .read_content(as_user(DRAFTER, read_request(&document_id)))
        .await?
        .into_inner();
    assert_eq!(own.access_request_id, "");
    let status = client
        .read_content(as_user(BORROWER, read_request(&document_id)))
        .await
        .unwrap_err();
    // The caller may not see the document, so the error is the one for a missing document,
    // and the reason is only in the recorded event.
    assert_eq!(status.code(), Code::PermissionDenied);
    assert!(
        status.message().contains("does not exist or"),
        "{}",
        status.message()
    );
    let denial = last_denial(&service).await?;
    assert!(
        denial.reason.contains("no approved access request"),
        "{}",
        denial.reason
    );
    assert_eq!(denial.method, "ReadContent");
    assert_eq!(denial.access_request_id, "");
    let recorded = status
        .metadata()
        .get(trace_runtime::denials::RECORDED_HEADER)
        .and_then(|value| value.to_str().ok());
    assert!(recorded.is_some_and(|event_id| !event_id.is_empty()));

    // A pending request does not open the content.
    let requested = client
        .request_access(as_user(
            BORROWER,
            RequestAccessRequest {
                document_id: document_id.clone(),
                purpose: "supplier audit".to_owned(),
                revision: 0,
            },
        ))
        .await?
        .into_inner();
    let request_id = document_of(requested.access_request).access_request_id;
    let status = client
        .read_content(as_user(BORROWER, read_request(&document_id)))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    assert!(status.message().contains("PENDING"), "{}", status.message());
    assert_eq!(last_denial(&service).await?.access_request_id, request_id);

    // Only a department head of the owner department decides, and not on their own request.
    let expires = service.clock.now() + chrono::Duration::days(7);
    let status = client
        .decide_access(as_department_head(
            APPROVER,
            "finance",
            approval(&request_id, expires),
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    let status = client
        .decide_access(as_department_head(
            APPROVER,
            DEPARTMENT,
            approval(&request_id, expires + chrono::Duration::days(90)),
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(violation_fields(&status), ["expires_at"]);
    let decided = client
        .decide_access(as_department_head(
            APPROVER,
            DEPARTMENT,
            approval(&request_id, expires),
        ))
        .await?
        .into_inner();
    let decided = document_of(decided.access_request);
    assert_eq!(decided.state, AccessRequestState::Approved as i32);
    assert_eq!(decided.approver_id, APPROVER);
    let status = client
        .decide_access(as_department_head(
            APPROVER,
            DEPARTMENT,
            approval(&request_id, expires),
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert!(
        status.message().contains("APPROVED"),
        "{}",
        status.message()
    );

    // Approved: the read succeeds and its event names the request.
    let read = client
        .read_content(as_user(BORROWER, read_request(&document_id)))
        .await?
        .into_inner();
    assert_eq!(read.access_request_id, request_id);
    let rows = service.document_rows().await?;
    let envelope = Envelope::decode(rows.last().context("no rows")?.envelope.as_slice())?;
    assert_eq!(envelope.action, "read");
    assert!(
        envelope.payload.is_none(),
        "a confidential read event is sealed"
    );
    let payload = DocumentRead::decode(opened_payload(&envelope)?.value.as_slice())?;
    assert_eq!(payload.access_request_id, request_id);

    // Another user cannot use the borrower's approval.
    let mut borrowed = read_request(&document_id);
    borrowed.access_request_id = request_id.clone();
    let status = client
        .read_content(as_user(KEEPER, borrowed))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    assert!(
        status.message().contains("does not exist or"),
        "{}",
        status.message()
    );
    let denial = last_denial(&service).await?;
    assert!(
        denial.reason.contains("not the caller's request"),
        "{}",
        denial.reason
    );

    // After the expiry the same request is denied, and the denial references it.
    service.clock.advance(chrono::Duration::days(8));
    let status = client
        .read_content(as_user(BORROWER, read_request(&document_id)))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    assert!(status.message().contains("expired"), "{}", status.message());
    assert_eq!(last_denial(&service).await?.access_request_id, request_id);

    // Every step above is one event of the document, versions without gaps.
    service.wait_until_published().await?;
    let rows = service.document_rows().await?;
    let envelopes: Vec<Envelope> = rows
        .iter()
        .map(|row| Envelope::decode(row.envelope.as_slice()))
        .collect::<Result<_, _>>()?;
    assert_eq!(
        actions(&envelopes),
        [
            "drafted",
            "read",
            "read_denied",
            "access_requested",
            "read_denied",
            "access_approved",
            "read",
            "read_denied",
            "read_denied",
        ]
    );
    assert_eq!(versions(&envelopes), (1..=9).collect::<Vec<u64>>());
    service.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secret_reads_need_the_agreement() -> Result<()> {
    let nats = Nats::start()?;
    let service = Service::start(&nats.url(), None).await?;
    let mut client = service.client().await?;
    let mut draft = draft_request("Merger plan", "PLAN");
    draft.confidentiality = Confidentiality::Secret as i32;
    let created = client
        .create_draft(as_user(DRAFTER, draft))
        .await?
        .into_inner();
    let document_id = document_of(created.document).document_id;
    let requested = client
        .request_access(as_user(
            BORROWER,
            RequestAccessRequest {
                document_id: document_id.clone(),
                purpose: "board preparation".to_owned(),
                revision: 1,
            },
        ))
        .await?
        .into_inner();
    let request_id = document_of(requested.access_request).access_request_id;
    let expires = service.clock.now() + chrono::Duration::days(1);
    client
        .decide_access(as_department_head(
            APPROVER,
            DEPARTMENT,
            approval(&request_id, expires),
        ))
        .await?;

    let status = client
        .read_content(as_user(BORROWER, read_request(&document_id)))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    assert!(
        status.message().contains("confidentiality agreement"),
        "{}",
        status.message()
    );
    assert_eq!(last_denial(&service).await?.access_request_id, request_id);

    // Only the configured version is accepted; accepting twice leaves one event.
    let status = client
        .accept_agreement(as_user(
            BORROWER,
            AcceptAgreementRequest {
                agreement_version: "2019-01".to_owned(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    let accept = AcceptAgreementRequest {
        agreement_version: "2026-01".to_owned(),
    };
    let first = client
        .accept_agreement(as_user(BORROWER, accept.clone()))
        .await?
        .into_inner();
    assert!(!first.event_id.is_empty());
    let again = client
        .accept_agreement(as_user(BORROWER, accept))
        .await?
        .into_inner();
    assert_eq!(again.event_id, "");
    assert_eq!(again.accepted_at, first.accepted_at);

    let read = client
        .read_content(as_user(BORROWER, read_request(&document_id)))
        .await?
        .into_inner();
    assert_eq!(read.access_request_id, request_id);
    assert_eq!(read.content, "Merger plan\n第一稿".as_bytes());

    // A clearance claim below SECRET denies even with approval and agreement.
    let mut request = Request::new(read_request(&document_id));
    let claims = trace_runtime::auth::Claims {
        sub: BORROWER.to_owned(),
        name: String::new(),
        department: DEPARTMENT.to_owned(),
        roles: vec![role::EMPLOYEE.to_owned()],
        clearance: Some(trace_runtime::context::Clearance::Confidential),
    };
    let token = trace_runtime::auth::mint_token(
        &trace_runtime::config::AuthSettings::default(),
        &claims,
        Duration::from_secs(600),
    )?;
    trace_runtime::auth::attach_token(&mut request, &token)?;
    let status = client.read_content(request).await.unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    let denial = last_denial(&service).await?;
    assert!(denial.reason.contains("clearance"), "{}", denial.reason);

    // Access requests are listed in full for the owner department's head and only the
    // requester's own for the requester. Anyone else is denied as for a missing document.
    let list = || ListAccessRequestsRequest {
        document_id: document_id.clone(),
    };
    let mut foreign = Request::new(list());
    attach_identity(&mut foreign, KEEPER, "finance", &[role::EMPLOYEE], None);
    let status = client.list_access_requests(foreign).await.unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    assert!(
        status.message().contains("does not exist or"),
        "{}",
        status.message()
    );
    let denial = last_denial(&service).await?;
    assert_eq!(denial.method, "ListAccessRequests");
    let own = client
        .list_access_requests(as_user(BORROWER, list()))
        .await?
        .into_inner();
    assert_eq!(own.access_requests.len(), 1);
    let all = client
        .list_access_requests(as_department_head(APPROVER, DEPARTMENT, list()))
        .await?
        .into_inner();
    assert_eq!(all.access_requests.len(), 1);
    service.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confidential_content_is_sealed_at_rest() -> Result<()> {
    let nats = Nats::start()?;
    let service = Service::start(&nats.url(), None).await?;
    let mut client = service.client().await?;
    let marker = "marker-7f3a9c 收购价格 plaintext";

    let mut documents = Vec::new();
    for level in [Confidentiality::Confidential, Confidentiality::Secret] {
        let mut draft = draft_request("Acquisition terms", "PLAN");
        draft.confidentiality = level as i32;
        draft.content = marker.as_bytes().to_vec();
        let created = client
            .create_draft(as_user(DRAFTER, draft))
            .await?
            .into_inner();
        let document_id = document_of(created.document).document_id;
        let revised = format!("{marker} revised");
        client
            .revise_draft(as_user(
                DRAFTER,
                revise_request(&document_id, &revised, "second draft"),
            ))
            .await?;
        documents.push((document_id, revised));
    }
    let mut internal = draft_request("Canteen menu", "NOTICE");
    internal.content = b"internal-marker-51d0".to_vec();
    client.create_draft(as_user(DRAFTER, internal)).await?;

    // The drafter reads the plaintext back through the API.
    for (document_id, revised) in &documents {
        let read = client
            .read_content(as_user(DRAFTER, read_request(document_id)))
            .await?
            .into_inner();
        assert_eq!(read.content, revised.as_bytes());
        let first = ReadContentRequest {
            revision: 1,
            ..read_request(document_id)
        };
        let read = client
            .read_content(as_user(DRAFTER, first))
            .await?
            .into_inner();
        assert_eq!(read.content, marker.as_bytes());
    }
    service.wait_until_published().await?;

    // No database file, blob or broker file holds the plaintext; internal content is stored
    // as it is, which shows that the scan reads the blob folder.
    let data = service._data.path().to_path_buf();
    assert_eq!(
        files_containing(&data, marker.as_bytes())?,
        Vec::<PathBuf>::new()
    );
    assert_eq!(
        files_containing(nats.store.path(), marker.as_bytes())?,
        Vec::<PathBuf>::new()
    );
    assert_eq!(files_containing(&data, b"internal-marker-51d0")?.len(), 1);
    for (document_id, _) in &documents {
        let sealed = std::fs::read_dir(data.join("blobs/sealed").join(document_id))?.count();
        assert_eq!(sealed, 2, "two sealed revisions of {document_id}");
    }
    service.stop().await
}

/// Takes a document at `level` through a revision, review, registration, borrowing and,
/// when confidential or secret, an access request, with `marker` in every free-text field that is sealed for confidential
/// documents; returns the document id.
async fn marked_document(
    service: &Service,
    client: &mut Client,
    level: Confidentiality,
    marker: &str,
) -> Result<String> {
    let mut draft = draft_request("Supply terms", "CONTRACT");
    draft.confidentiality = level as i32;
    let created = client
        .create_draft(as_user(DRAFTER, draft))
        .await?
        .into_inner();
    let document_id = document_of(created.document).document_id;
    let revise = revise_request(&document_id, "second draft", &format!("Revision {marker}"));
    client.revise_draft(as_user(DRAFTER, revise)).await?;
    client
        .submit_for_review(as_user(DRAFTER, submit_request(&document_id)))
        .await?;
    let review = review_request(
        &document_id,
        ReviewDecision::Approve,
        &format!("Review {marker}"),
    );
    client.review_document(as_user(REVIEWER, review)).await?;
    client
        .register_document(as_user(KEEPER, register_request(&document_id)))
        .await?;

    let mut apply = apply_request(&document_id, service.today() + chrono::Days::new(7));
    apply.reason = format!("Borrowing {marker}");
    let applied = client
        .apply_borrowing(as_user(BORROWER, apply))
        .await?
        .into_inner();
    let borrowing_id = document_of(applied.borrowing).borrowing_id;
    let mut decide = decide_request(&borrowing_id, true);
    decide.opinion = format!("Lending {marker}");
    client.decide_borrowing(as_user(APPROVER, decide)).await?;

    // Only confidential and secret documents take access requests.
    if level == Confidentiality::Internal {
        return Ok(document_id);
    }
    let requested = client
        .request_access(as_user(
            BORROWER,
            RequestAccessRequest {
                document_id: document_id.clone(),
                purpose: format!("Purpose {marker}"),
                revision: 0,
            },
        ))
        .await?
        .into_inner();
    let request_id = document_of(requested.access_request).access_request_id;
    let expires = service.clock.now() + chrono::Duration::days(7);
    let mut decide = approval(&request_id, expires);
    decide.opinion = format!("Access {marker}");
    client
        .decide_access(as_department_head(APPROVER, DEPARTMENT, decide))
        .await?;
    Ok(document_id)
}

/// Checks that the API returns every marked field of a document as plaintext.
async fn check_marked_document(
    client: &mut Client,
    document_id: &str,
    level: Confidentiality,
    marker: &str,
) -> Result<()> {
    let revisions = client
        .list_revisions(as_user(
            DRAFTER,
            ListRevisionsRequest {
                document_id: document_id.to_owned(),
            },
        ))
        .await?
        .into_inner()
        .revisions;
    assert_eq!(revisions[0].change_summary, "");
    assert_eq!(revisions[1].change_summary, format!("Revision {marker}"));

    let borrowings = client
        .list_borrowings(as_department_head(
            APPROVER,
            DEPARTMENT,
            ListBorrowingsRequest {
                document_id: document_id.to_owned(),
            },
        ))
        .await?
        .into_inner()
        .borrowings;
    assert_eq!(borrowings[0].reason, format!("Borrowing {marker}"));
    assert_eq!(borrowings[0].approver_opinion, format!("Lending {marker}"));
    if level == Confidentiality::Internal {
        return Ok(());
    }

    let requests = client
        .list_access_requests(as_user(
            BORROWER,
            ListAccessRequestsRequest {
                document_id: document_id.to_owned(),
            },
        ))
        .await?
        .into_inner()
        .access_requests;
    assert_eq!(requests[0].purpose, format!("Purpose {marker}"));
    assert_eq!(requests[0].opinion, format!("Access {marker}"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confidential_text_is_sealed_at_rest() -> Result<()> {
    let nats = Nats::start()?;
    let service = Service::start(&nats.url(), None).await?;
    let mut client = service.client().await?;
    let levels = [
        (Confidentiality::Confidential, "marker-b3a1 审阅意见"),
        (Confidentiality::Secret, "marker-0f6e 借阅事由"),
        (Confidentiality::Internal, "internal-marker-d27c"),
    ];
    for (level, marker) in levels {
        let document_id = marked_document(&service, &mut client, level, marker).await?;
        check_marked_document(&mut client, &document_id, level, marker).await?;
    }
    service.wait_until_published().await?;

    // No database file, blob or broker file contains the plaintext of a confidential or
    // secret document's text columns. The internal document's text is stored as it is, which shows
    // that the scan reads the database.
    let data = service._data.path().to_path_buf();
    for (_, marker) in &levels[..2] {
        assert_eq!(
            files_containing(&data, marker.as_bytes())?,
            Vec::<PathBuf>::new()
        );
        assert_eq!(
            files_containing(nats.store.path(), marker.as_bytes())?,
            Vec::<PathBuf>::new()
        );
    }
    let internal = files_containing(&data, levels[2].1.as_bytes())?;
    assert!(
        internal
            .iter()
            .any(|path| path.to_string_lossy().contains("document.db")),
        "{internal:?}"
    );
    service.stop().await
}

/// Builds a request by an employee of another department than the documents'.
fn as_outsider<T>(user_id: &str, message: T) -> Request<T> {
    let mut request = Request::new(message);
    attach_identity(&mut request, user_id, "finance", &[role::EMPLOYEE], None);
    request
}

/// Lists every document `request` shows to its caller, page by page, as ids.
async fn listed_ids(
    client: &mut Client,
    mut request: impl FnMut(&str) -> Request<ListDocumentsRequest>,
) -> Result<Vec<String>> {
    let mut ids = Vec::new();
    let mut token = String::new();
    loop {
        let page = client.list_documents(request(&token)).await?.into_inner();
        ids.extend(page.documents.into_iter().map(|d| d.document_id));
        if page.next_page_token.is_empty() {
            return Ok(ids);
        }
        token = page.next_page_token;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confidential_records_stay_in_scope() -> Result<()> {
    let nats = Nats::start()?;
    let service = Service::start(&nats.url(), None).await?;
    let mut client = service.client().await?;

    // Three confidential documents between two internal ones, so a page of two that was cut
    // before the read rule would come back short.
    let mut internal = Vec::new();
    let mut confidential = Vec::new();
    for (index, level) in [
        Confidentiality::Internal,
        Confidentiality::Confidential,
        Confidentiality::Confidential,
        Confidentiality::Confidential,
        Confidentiality::Internal,
    ]
    .into_iter()
    .enumerate()
    {
        let mut draft = draft_request(&format!("Register entry {index}"), "PLAN");
        draft.confidentiality = level as i32;
        let created = client
            .create_draft(as_user(DRAFTER, draft))
            .await?
            .into_inner();
        let id = document_of(created.document).document_id;
        if level == Confidentiality::Internal {
            internal.push(id);
        } else {
            confidential.push(id);
        }
    }
    let secret_id = confidential[0].clone();

    // Another department's employee gets only the internal documents, on complete pages.
    let outsider = "qian.jiu";
    let page = |token: &str| ListDocumentsRequest {
        page: Some(PageRequest {
            page_size: 2,
            page_token: token.to_owned(),
        }),
        ..Default::default()
    };
    let seen = listed_ids(&mut client, |token| as_outsider(outsider, page(token))).await?;
    assert_eq!(seen, internal);
    let head_sees = listed_ids(&mut client, |token| {
        as_department_head(APPROVER, DEPARTMENT, page(token))
    })
    .await?;
    assert_eq!(head_sees.len(), 5);

    // By id, the outsider is denied a confidential document and a missing one alike. Each
    // denial is recorded, the first as the document's read_denied event.
    let get = |id: &str| GetDocumentRequest {
        document_id: id.to_owned(),
    };
    let status = client
        .get_document(as_outsider(outsider, get(&secret_id)))
        .await
        .unwrap_err();
    let (denied, denied_event) = recorded_denial(&status, &secret_id);
    let missing_id = uuid::Uuid::now_v7().to_string();
    let status = client
        .get_document(as_outsider(outsider, get(&missing_id)))
        .await
        .unwrap_err();
    let (missing, missing_event) = recorded_denial(&status, &missing_id);
    assert_eq!(denied, missing);
    assert!(!denied_event.is_empty());
    assert!(!missing_event.is_empty());
    let denial = last_denial(&service).await?;
    assert_eq!(denial.method, "GetDocument");
    assert!(denial.reason.contains("CONFIDENTIAL"), "{}", denial.reason);
    service.wait_until_published().await?;
    let rows = service.outbox_rows().await?;
    let missing_row = rows
        .iter()
        .find(|row| row.event_id == missing_event)
        .context("the missing document's denial is in the outbox")?;
    assert_eq!(missing_row.entity_type, DENIAL_ENTITY);
    let denied_row = rows
        .iter()
        .find(|row| row.event_id == denied_event)
        .context("the document's denial is in the outbox")?;
    assert_eq!(denied_row.entity_id, secret_id);

    // A requester may get the document but not its revision history until approved. The
    // permitted reads are metadata_read events that name the approval.
    let requested = client
        .request_access(as_outsider(
            outsider,
            RequestAccessRequest {
                document_id: secret_id.clone(),
                purpose: "quarterly audit".to_owned(),
                revision: 0,
            },
        ))
        .await?
        .into_inner();
    let request_id = document_of(requested.access_request).access_request_id;
    client
        .get_document(as_outsider(outsider, get(&secret_id)))
        .await?;
    let revisions = || ListRevisionsRequest {
        document_id: secret_id.clone(),
    };
    let status = client
        .list_revisions(as_outsider(outsider, revisions()))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    assert_eq!(last_denial(&service).await?.method, "ListRevisions");
    let expires = service.clock.now() + chrono::Duration::days(3);
    client
        .decide_access(as_department_head(
            APPROVER,
            DEPARTMENT,
            approval(&request_id, expires),
        ))
        .await?;
    let listed = client
        .list_revisions(as_outsider(outsider, revisions()))
        .await?
        .into_inner();
    assert_eq!(listed.revisions.len(), 1);

    let rows = service.document_rows().await?;
    let reads: Vec<DocumentMetadataRead> = rows
        .iter()
        .filter(|row| row.entity_id == secret_id)
        .map(|row| Envelope::decode(row.envelope.as_slice()))
        .collect::<Result<Vec<_>, _>>()?
        .iter()
        .filter(|envelope| envelope.action == "metadata_read")
        .map(|envelope| {
            let payload = opened_payload(envelope)?;
            Ok(DocumentMetadataRead::decode(payload.value.as_slice())?)
        })
        .collect::<Result<_>>()?;
    let methods: Vec<&str> = reads.iter().map(|read| read.method.as_str()).collect();
    assert_eq!(methods, ["GetDocument", "ListRevisions"]);
    assert_eq!(reads[0].access_request_id, "");
    assert_eq!(reads[1].access_request_id, request_id);

    // Reads of an internal document record nothing.
    let before = service.document_rows().await?.len();
    client
        .get_document(as_outsider(outsider, get(&internal[0])))
        .await?;
    assert_eq!(service.document_rows().await?.len(), before);
    service.stop().await
}
