//! Bad-input corpus of the document service: every request field that takes text, ids,
//! dates, instants, enums or bytes gets the shared bad values of `trace_tests::corpus`.
//! Each rejected case must return the documented code and field, and leave every table and
//! the document listing unchanged. Attack-looking text that is legitimate in free text must
//! be accepted and stored byte for byte.
//!
//! One service instance with a private nats-server and a SQLite file serves every case.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use chrono::{Days, NaiveDate, TimeZone, Utc};
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, PaginatorTrait, QueryFilter};
use tempfile::TempDir;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Request, Status};
use trace_document::DocumentConfig;
use trace_document::entity::{
    access_request, agreement, backup, borrowing, document, read, review, revision,
};
use trace_proto::common::v1::{Confidentiality, Date, PageRequest};
use trace_proto::document::v1::document_service_client::DocumentServiceClient;
use trace_proto::document::v1::*;
use trace_runtime::clock::{Clock, ManualClock, local_date, proto_date};
use trace_runtime::context::{attach_identity, role};
use trace_runtime::outbox::outbox_event;
use trace_tests::corpus::{
    ACCEPTED_TEXT, Expected, MIB, bad_dates, bad_departments, bad_enums, bad_record_ids, bad_text,
    bad_timestamps, bad_tokens, check_rejection,
};
use trace_tests::nats::NatsServer;

const DRAFTER: &str = "zhang.san";
const REVIEWER: &str = "li.si";
const KEEPER: &str = "chen.qi";
const BORROWER: &str = "wang.wu";
const APPROVER: &str = "zhao.liu";
const DEPARTMENT: &str = "admin-office";

/// Content limit of the service under test, so that "over the limit" stays small.
const MAX_CONTENT_BYTES: usize = 4096;

/// Maximum time to wait for the service to start.
const DEADLINE: Duration = Duration::from_secs(60);

type Client = DocumentServiceClient<Channel>;
type Call = Pin<Box<dyn Future<Output = Result<(), Status>> + Send>>;

/// The document service running in this process on a SQLite file.
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
        let data = tempfile::Builder::new().prefix("document-bad-").tempdir()?;
        let database_url = format!(
            "sqlite://{}?mode=rwc",
            data.path().join("document.db").display()
        );
        let mut config = DocumentConfig::defaults();
        config.service.database_url = database_url.clone();
        config.service.blob_store_url = format!("file://{}", data.path().join("blobs").display());
        config.service.nats.url = nats_url.to_owned();
        config.service.outbox.poll_interval_ms = 50;
        config.service.shutdown_grace_secs = 2;
        config.document.overdue_check_interval_secs = 3600;
        config.document.max_content_bytes = MAX_CONTENT_BYTES;

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        let clock = ManualClock::new(Utc.with_ymd_and_hms(2026, 3, 2, 2, 0, 0).unwrap());
        let shutdown = CancellationToken::new();
        let run = trace_document::run(config, listener, clock.clone(), shutdown.clone());
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

    async fn client(&self) -> Result<Client> {
        connect(self.address).await
    }

    fn today(&self) -> NaiveDate {
        local_date(self.clock.now(), chrono_tz::Asia::Shanghai)
    }

    /// Row counts of the outbox and of every table, and the listing of all documents with
    /// their versions. A rejected call must leave all of them unchanged. Denial events
    /// (entity type `access`) are left out: the denial recorder writes them after the call.
    async fn snapshot(&self, client: &mut Client) -> Result<Vec<String>> {
        let db = &self.db;
        let counts = [
            outbox_event::Entity::find()
                .filter(outbox_event::Column::EntityType.ne("access"))
                .count(db)
                .await?,
            document::Entity::find().count(db).await?,
            revision::Entity::find().count(db).await?,
            review::Entity::find().count(db).await?,
            backup::Entity::find().count(db).await?,
            borrowing::Entity::find().count(db).await?,
            read::Entity::find().count(db).await?,
            access_request::Entity::find().count(db).await?,
            agreement::Entity::find().count(db).await?,
        ];
        let listing = client
            .list_documents(as_user(
                KEEPER,
                ListDocumentsRequest {
                    page: Some(PageRequest {
                        page_size: 500,
                        page_token: String::new(),
                    }),
                    ..Default::default()
                },
            ))
            .await?
            .into_inner();
        let mut snapshot: Vec<String> = counts.iter().map(u64::to_string).collect();
        snapshot.extend(listing.documents.iter().map(|document| {
            format!(
                "{} v{} {}",
                document.document_id, document.entity_version, document.title
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
    Ok(DocumentServiceClient::new(channel)
        .max_decoding_message_size(4 * MIB)
        .max_encoding_message_size(4 * MIB))
}

async fn wait_until_ready(address: SocketAddr, task: &mut JoinHandle<Result<()>>) -> Result<()> {
    let started = Instant::now();
    let probe = GetDocumentRequest {
        document_id: uuid::Uuid::now_v7().to_string(),
    };
    while started.elapsed() < DEADLINE {
        if task.is_finished() {
            bail!("the service stopped during start: {:?}", task.await?);
        }
        // An auditor reads every document, so a missing one is NOT_FOUND and not denied.
        if let Ok(mut client) = connect(address).await
            && let Err(status) = client.get_document(as_auditor(probe.clone())).await
            && status.code() == Code::NotFound
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

fn as_auditor<T>(message: T) -> Request<T> {
    let mut request = Request::new(message);
    attach_identity(&mut request, "auditor", "audit", &[role::AUDIT], None);
    request
}

fn as_head<T>(user_id: &str, message: T) -> Request<T> {
    let mut request = Request::new(message);
    attach_identity(
        &mut request,
        user_id,
        DEPARTMENT,
        &[role::EMPLOYEE, role::DEPARTMENT_HEAD],
        None,
    );
    request
}

macro_rules! call {
    ($client:expr, $method:ident, $user:expr, $message:expr) => {{
        let mut client = $client.clone();
        let request = as_user($user, $message);
        Box::pin(async move { client.$method(request).await.map(|_| ()) }) as Call
    }};
}

fn draft(title: &str) -> CreateDraftRequest {
    CreateDraftRequest {
        title: title.to_owned(),
        category: "CONTRACT".to_owned(),
        department: DEPARTMENT.to_owned(),
        confidentiality: Confidentiality::Internal as i32,
        content: b"content".to_vec(),
        media_type: "text/plain; charset=utf-8".to_owned(),
    }
}

/// Ids of the records the cases address, each in the state its method needs.
struct Fixture {
    draft: String,
    registered: String,
    confidential: String,
    lent: String,
    access_request: String,
}

async fn fixture(client: &mut Client, today: NaiveDate) -> Result<Fixture> {
    let draft_id = created(client, draft("Draft")).await?;
    let registered_id = registered(client, draft("Registered")).await?;
    let mut secret = draft("Confidential");
    secret.confidentiality = Confidentiality::Confidential as i32;
    let confidential = registered(client, secret).await?;

    let applied = client
        .apply_borrowing(as_user(
            BORROWER,
            ApplyBorrowingRequest {
                document_id: registered_id.clone(),
                reason: "audit".to_owned(),
                expected_return_date: Some(proto_date(today + Days::new(7))),
            },
        ))
        .await?
        .into_inner()
        .borrowing
        .context("borrowing")?;
    client
        .decide_borrowing(as_user(
            APPROVER,
            DecideBorrowingRequest {
                borrowing_id: applied.borrowing_id.clone(),
                approve: true,
                opinion: "ok".to_owned(),
            },
        ))
        .await?;
    client
        .lend_document(as_user(
            KEEPER,
            LendDocumentRequest {
                borrowing_id: applied.borrowing_id.clone(),
            },
        ))
        .await?;

    let access_request = client
        .request_access(as_user(
            BORROWER,
            RequestAccessRequest {
                document_id: confidential.clone(),
                purpose: "audit".to_owned(),
                revision: 0,
            },
        ))
        .await?
        .into_inner()
        .access_request
        .context("access request")?
        .access_request_id;

    Ok(Fixture {
        draft: draft_id,
        registered: registered_id,
        confidential,
        lent: applied.borrowing_id,
        access_request,
    })
}

async fn created(client: &mut Client, request: CreateDraftRequest) -> Result<String> {
    let response = client.create_draft(as_user(DRAFTER, request)).await?;
    Ok(response
        .into_inner()
        .document
        .context("document")?
        .document_id)
}

/// Creates a document and takes it through review to registration.
async fn registered(client: &mut Client, request: CreateDraftRequest) -> Result<String> {
    let document_id = created(client, request).await?;
    client
        .submit_for_review(as_user(
            DRAFTER,
            SubmitForReviewRequest {
                document_id: document_id.clone(),
                reviewer_id: REVIEWER.to_owned(),
            },
        ))
        .await?;
    client
        .review_document(as_user(
            REVIEWER,
            ReviewDocumentRequest {
                document_id: document_id.clone(),
                decision: ReviewDecision::Approve as i32,
                opinion: "ok".to_owned(),
            },
        ))
        .await?;
    client
        .register_document(as_user(
            KEEPER,
            RegisterDocumentRequest {
                document_id: document_id.clone(),
                storage_location: "Room B".to_owned(),
            },
        ))
        .await?;
    Ok(document_id)
}

/// Builds every rejected case of the corpus.
#[allow(clippy::too_many_lines)]
fn rejected_cases(
    client: &Client,
    ids: &Fixture,
    today: NaiveDate,
) -> Vec<(String, Expected, Call)> {
    let mut cases: Vec<(String, Expected, Call)> = Vec::new();
    let mut add = |label: String, expected: Expected, call: Call| {
        cases.push((label, expected, call));
    };
    let unknown = uuid::Uuid::now_v7().to_string();

    // CreateDraft.
    let create = |change: &dyn Fn(&mut CreateDraftRequest)| {
        let mut request = draft("Valid");
        change(&mut request);
        call!(client, create_draft, DRAFTER, request)
    };
    for (label, value) in bad_text(1, 200, true) {
        let call = create(&|r| r.title = value.clone());
        add(format!("title {label}"), Expected::Invalid("title"), call);
    }
    for (label, value) in bad_tokens(32)
        .into_iter()
        .chain([("dot".to_owned(), "A.B".to_owned())])
        .chain([("lower case".to_owned(), "contract".to_owned())])
    {
        let call = create(&|r| r.category = value.clone());
        add(
            format!("category {label}"),
            Expected::Invalid("category"),
            call,
        );
    }
    for (label, value) in bad_departments() {
        let call = create(&|r| r.department = value.clone());
        add(
            format!("department {label}"),
            Expected::Invalid("department"),
            call,
        );
    }
    for (label, value) in bad_enums().into_iter().chain([("0".to_owned(), 0)]) {
        let call = create(&|r| r.confidentiality = value);
        let field = "confidentiality";
        add(
            format!("confidentiality {label}"),
            Expected::Invalid(field),
            call,
        );
    }
    for (label, value) in bad_text(1, 255, true).into_iter().chain(
        [
            "text",
            "'; DROP TABLE x; --",
            "../../etc/passwd",
            "/plain",
            "text/",
        ]
        .map(|value| (format!("{value:?}"), value.to_owned())),
    ) {
        let call = create(&|r| r.media_type = value.clone());
        add(
            format!("media_type {label}"),
            Expected::Invalid("media_type"),
            call,
        );
    }
    let over = MAX_CONTENT_BYTES + 1;
    for (label, size) in [(format!("{over} bytes"), over), ("1 MiB".to_owned(), MIB)] {
        let call = create(&|r| r.content = vec![b'x'; size]);
        add(
            format!("content {label}"),
            Expected::Invalid("content"),
            call,
        );
    }
    for media_type in [
        "text/plain; charset=utf-8",
        "text/plain",
        "TEXT/CSV",
        "application/json; charset=UTF-8",
    ] {
        for (label, bytes) in invalid_utf8() {
            let call = create(&|r| {
                r.media_type = media_type.to_owned();
                r.content = bytes.clone();
            });
            let label = format!("content {label} as {media_type}");
            add(label, Expected::Invalid("content"), call);
        }
    }

    // ReviseDraft.
    let revise = |change: &dyn Fn(&mut ReviseDraftRequest)| {
        let mut request = ReviseDraftRequest {
            document_id: ids.draft.clone(),
            content: b"second".to_vec(),
            media_type: "text/plain".to_owned(),
            change_summary: "edit".to_owned(),
        };
        change(&mut request);
        call!(client, revise_draft, DRAFTER, request)
    };
    for (label, value) in bad_record_ids() {
        let call = revise(&|r| r.document_id = value.clone());
        add(
            format!("revise id {label}"),
            Expected::Invalid("document_id"),
            call,
        );
    }
    let call = revise(&|r| r.document_id = unknown.clone());
    add(
        "revise unknown id".to_owned(),
        Expected::NotFound("document"),
        call,
    );
    for (label, value) in bad_text(1, 2000, false) {
        let call = revise(&|r| r.change_summary = value.clone());
        let field = "change_summary";
        add(
            format!("change_summary {label}"),
            Expected::Invalid(field),
            call,
        );
    }
    for (label, value) in bad_text(1, 255, true) {
        let call = revise(&|r| r.media_type = value.clone());
        add(
            format!("revise media_type {label}"),
            Expected::Invalid("media_type"),
            call,
        );
    }
    for (label, bytes) in invalid_utf8() {
        let call = revise(&|r| r.content = bytes.clone());
        add(
            format!("revise content {label}"),
            Expected::Invalid("content"),
            call,
        );
    }
    let call = revise(&|r| r.content = vec![b'x'; MIB]);
    add(
        "revise content 1 MiB".to_owned(),
        Expected::Invalid("content"),
        call,
    );

    // SubmitForReview: user ids allow dots, so `a.b` is a valid reviewer id.
    let submit = |document_id: &str, reviewer_id: &str| {
        let request = SubmitForReviewRequest {
            document_id: document_id.to_owned(),
            reviewer_id: reviewer_id.to_owned(),
        };
        call!(client, submit_for_review, DRAFTER, request)
    };
    for (label, value) in bad_record_ids() {
        let call = submit(&value, REVIEWER);
        add(
            format!("submit id {label}"),
            Expected::Invalid("document_id"),
            call,
        );
    }
    for (label, value) in bad_tokens(64) {
        let call = submit(&ids.draft, &value);
        add(
            format!("reviewer_id {label}"),
            Expected::Invalid("reviewer_id"),
            call,
        );
    }
    let call = submit(&ids.draft, DRAFTER);
    add(
        "reviewer_id is the drafter".to_owned(),
        Expected::Invalid("reviewer_id"),
        call,
    );

    // ReviewDocument.
    let review = |document_id: &str, decision: i32, opinion: &str| {
        let request = ReviewDocumentRequest {
            document_id: document_id.to_owned(),
            decision,
            opinion: opinion.to_owned(),
        };
        call!(client, review_document, REVIEWER, request)
    };
    let approve = ReviewDecision::Approve as i32;
    for (label, value) in bad_record_ids() {
        let call = review(&value, approve, "ok");
        add(
            format!("review id {label}"),
            Expected::Invalid("document_id"),
            call,
        );
    }
    for (label, value) in bad_enums().into_iter().chain([("0".to_owned(), 0)]) {
        let call = review(&ids.draft, value, "ok");
        add(
            format!("decision {label}"),
            Expected::Invalid("decision"),
            call,
        );
    }
    for (label, value) in bad_text(1, 4000, false) {
        let call = review(&ids.draft, approve, &value);
        add(
            format!("review opinion {label}"),
            Expected::Invalid("opinion"),
            call,
        );
    }
    let call = review(&ids.draft, approve, "ok");
    let state = "DRAFT";
    add(
        "review a draft".to_owned(),
        Expected::Precondition(state),
        call,
    );

    // RegisterDocument.
    let register = |document_id: &str, location: &str| {
        let request = RegisterDocumentRequest {
            document_id: document_id.to_owned(),
            storage_location: location.to_owned(),
        };
        call!(client, register_document, KEEPER, request)
    };
    for (label, value) in bad_record_ids() {
        let call = register(&value, "Room B");
        add(
            format!("register id {label}"),
            Expected::Invalid("document_id"),
            call,
        );
    }
    for (label, value) in bad_text(1, 200, true) {
        let call = register(&ids.draft, &value);
        let field = "storage_location";
        add(
            format!("storage_location {label}"),
            Expected::Invalid(field),
            call,
        );
    }

    // RecordBackup.
    let back_up = |document_id: &str, medium: &str, location: &str| {
        let request = RecordBackupRequest {
            document_id: document_id.to_owned(),
            medium: medium.to_owned(),
            location: location.to_owned(),
        };
        call!(client, record_backup, KEEPER, request)
    };
    for (label, value) in bad_record_ids() {
        let call = back_up(&value, "disk", "safe");
        add(
            format!("backup id {label}"),
            Expected::Invalid("document_id"),
            call,
        );
    }
    for (label, value) in bad_text(1, 64, true) {
        let call = back_up(&ids.registered, &value, "safe");
        add(format!("medium {label}"), Expected::Invalid("medium"), call);
    }
    for (label, value) in bad_text(1, 500, true) {
        let call = back_up(&ids.registered, "disk", &value);
        add(
            format!("backup location {label}"),
            Expected::Invalid("location"),
            call,
        );
    }

    // ReadContent.
    let read = |document_id: &str, revision: u32, access_request_id: &str| {
        let request = ReadContentRequest {
            document_id: document_id.to_owned(),
            revision,
            access_request_id: access_request_id.to_owned(),
        };
        call!(client, read_content, DRAFTER, request)
    };
    for (label, value) in bad_record_ids() {
        let call = read(&value, 0, "");
        add(
            format!("read id {label}"),
            Expected::Invalid("document_id"),
            call,
        );
    }
    for (label, value) in bad_record_ids().into_iter().filter(|(_, v)| !v.is_empty()) {
        let call = read(&ids.registered, 0, &value);
        let field = "access_request_id";
        add(
            format!("read access_request_id {label}"),
            Expected::Invalid(field),
            call,
        );
    }
    for revision in [2, u32::MAX] {
        let call = read(&ids.registered, revision, "");
        add(
            format!("read revision {revision}"),
            Expected::NotFound("revision"),
            call,
        );
    }
    // An employee is denied a missing document with the error for a document they may not see.
    let call = read(&unknown, 0, "");
    add("read unknown id".to_owned(), Expected::Denied, call);

    // GetDocument, ListRevisions, ListBorrowings, ListAccessRequests.
    for (label, value) in bad_record_ids() {
        let get = GetDocumentRequest {
            document_id: value.clone(),
        };
        let call = call!(client, get_document, KEEPER, get);
        add(
            format!("get id {label}"),
            Expected::Invalid("document_id"),
            call,
        );
        let revisions = ListRevisionsRequest {
            document_id: value.clone(),
        };
        let call = call!(client, list_revisions, KEEPER, revisions);
        add(
            format!("revisions id {label}"),
            Expected::Invalid("document_id"),
            call,
        );
        let borrowings = ListBorrowingsRequest {
            document_id: value.clone(),
        };
        let call = call!(client, list_borrowings, KEEPER, borrowings);
        add(
            format!("borrowings id {label}"),
            Expected::Invalid("document_id"),
            call,
        );
        let requests = ListAccessRequestsRequest {
            document_id: value.clone(),
        };
        let call = call!(client, list_access_requests, KEEPER, requests);
        add(
            format!("access requests id {label}"),
            Expected::Invalid("document_id"),
            call,
        );
    }

    // ListDocuments: empty filters mean "any", so empty values are not in these lists.
    let list = |change: &dyn Fn(&mut ListDocumentsRequest)| {
        let mut request = ListDocumentsRequest::default();
        change(&mut request);
        call!(client, list_documents, KEEPER, request)
    };
    for (label, value) in bad_tokens(32).into_iter().filter(|(_, v)| !v.is_empty()) {
        let call = list(&|r| r.category = value.clone());
        add(
            format!("list category {label}"),
            Expected::Invalid("category"),
            call,
        );
    }
    for (label, value) in bad_departments().into_iter().filter(|(_, v)| !v.is_empty()) {
        let call = list(&|r| r.department = value.clone());
        add(
            format!("list department {label}"),
            Expected::Invalid("department"),
            call,
        );
    }
    for year in [1, 1969, 10_000, -1, i32::MAX, i32::MIN] {
        let call = list(&|r| r.year = year);
        add(format!("list year {year}"), Expected::Invalid("year"), call);
    }
    for (label, value) in bad_enums() {
        let call = list(&|r| r.state = value);
        add(
            format!("list state {label}"),
            Expected::Invalid("state"),
            call,
        );
    }
    for (label, value) in bad_text(0, 200, true) {
        let call = list(&|r| r.title_contains = value.clone());
        let field = "title_contains";
        add(
            format!("title_contains {label}"),
            Expected::Invalid(field),
            call,
        );
    }
    for (label, value) in bad_record_ids().into_iter().filter(|(_, v)| !v.is_empty()) {
        let call = list(&|r| r.page = Some(page(0, &value)));
        let field = "page.page_token";
        add(
            format!("page_token {label}"),
            Expected::Invalid(field),
            call,
        );
    }
    for size in [-1, 501, i32::MAX, i32::MIN] {
        let call = list(&|r| r.page = Some(page(size, "")));
        add(
            format!("page_size {size}"),
            Expected::Invalid("page.page_size"),
            call,
        );
    }

    // ApplyBorrowing.
    let apply = |document_id: &str, reason: &str, date: Option<Date>| {
        let request = ApplyBorrowingRequest {
            document_id: document_id.to_owned(),
            reason: reason.to_owned(),
            expected_return_date: date,
        };
        call!(client, apply_borrowing, BORROWER, request)
    };
    let in_a_week = Some(proto_date(today + Days::new(7)));
    for (label, value) in bad_record_ids() {
        let call = apply(&value, "audit", in_a_week);
        add(
            format!("apply id {label}"),
            Expected::Invalid("document_id"),
            call,
        );
    }
    for (label, value) in bad_text(1, 2000, false) {
        let call = apply(&ids.registered, &value, in_a_week);
        add(
            format!("apply reason {label}"),
            Expected::Invalid("reason"),
            call,
        );
    }
    let far_dates = bad_dates()
        .into_iter()
        .map(|(label, date)| (label, Some(date)));
    let window = [
        ("missing".to_owned(), None),
        (
            "yesterday".to_owned(),
            Some(proto_date(today - Days::new(1))),
        ),
        (
            "366 days ahead".to_owned(),
            Some(proto_date(today + Days::new(366))),
        ),
        (
            "9999-12-31".to_owned(),
            Some(Date {
                year: 9999,
                month: 12,
                day: 31,
            }),
        ),
    ];
    for (label, date) in far_dates.chain(window) {
        let call = apply(&ids.registered, "audit", date);
        let field = "expected_return_date";
        add(
            format!("expected_return_date {label}"),
            Expected::Invalid(field),
            call,
        );
    }

    // DecideBorrowing, LendDocument, ReturnDocument, ReportLoss, RecordHandling.
    for (label, value) in bad_record_ids() {
        let decide = DecideBorrowingRequest {
            borrowing_id: value.clone(),
            approve: true,
            opinion: "ok".to_owned(),
        };
        let call = call!(client, decide_borrowing, APPROVER, decide);
        add(
            format!("decide id {label}"),
            Expected::Invalid("borrowing_id"),
            call,
        );
        let lend = LendDocumentRequest {
            borrowing_id: value.clone(),
        };
        let call = call!(client, lend_document, KEEPER, lend);
        add(
            format!("lend id {label}"),
            Expected::Invalid("borrowing_id"),
            call,
        );
        let give_back = ReturnDocumentRequest {
            borrowing_id: value.clone(),
            condition: ReturnCondition::Intact as i32,
            condition_note: String::new(),
        };
        let call = call!(client, return_document, KEEPER, give_back);
        add(
            format!("return id {label}"),
            Expected::Invalid("borrowing_id"),
            call,
        );
        let lose = ReportLossRequest {
            borrowing_id: value.clone(),
            description: "lost".to_owned(),
        };
        let call = call!(client, report_loss, KEEPER, lose);
        add(
            format!("loss id {label}"),
            Expected::Invalid("borrowing_id"),
            call,
        );
        let handle = RecordHandlingRequest {
            borrowing_id: value.clone(),
            handling_result: "paid".to_owned(),
        };
        let call = call!(client, record_handling, KEEPER, handle);
        add(
            format!("handling id {label}"),
            Expected::Invalid("borrowing_id"),
            call,
        );
    }
    for (label, value) in bad_text(1, 2000, false) {
        let decide = DecideBorrowingRequest {
            borrowing_id: ids.lent.clone(),
            approve: false,
            opinion: value.clone(),
        };
        let call = call!(client, decide_borrowing, APPROVER, decide);
        add(
            format!("borrowing opinion {label}"),
            Expected::Invalid("opinion"),
            call,
        );
        let lose = ReportLossRequest {
            borrowing_id: ids.lent.clone(),
            description: value.clone(),
        };
        let call = call!(client, report_loss, KEEPER, lose);
        add(
            format!("loss description {label}"),
            Expected::Invalid("description"),
            call,
        );
        let handle = RecordHandlingRequest {
            borrowing_id: ids.lent.clone(),
            handling_result: value.clone(),
        };
        let call = call!(client, record_handling, KEEPER, handle);
        let field = "handling_result";
        add(
            format!("handling_result {label}"),
            Expected::Invalid(field),
            call,
        );
    }
    let give_back = |condition: i32, note: &str| {
        let request = ReturnDocumentRequest {
            borrowing_id: ids.lent.clone(),
            condition,
            condition_note: note.to_owned(),
        };
        call!(client, return_document, KEEPER, request)
    };
    for (label, value) in bad_enums().into_iter().chain([("0".to_owned(), 0)]) {
        let call = give_back(value, "");
        add(
            format!("condition {label}"),
            Expected::Invalid("condition"),
            call,
        );
    }
    for (label, value) in bad_text(1, 2000, false) {
        let call = give_back(ReturnCondition::Damaged as i32, &value);
        add(
            format!("condition_note {label}"),
            Expected::Invalid("condition_note"),
            call,
        );
    }

    // CheckOverdue: a later date is a preview for the system role only.
    for (label, date) in bad_dates() {
        let request = CheckOverdueRequest { as_of: Some(date) };
        let call = call!(client, check_overdue, KEEPER, request);
        add(format!("as_of {label}"), Expected::Invalid("as_of"), call);
    }
    let far = CheckOverdueRequest {
        as_of: Some(Date {
            year: 9999,
            month: 12,
            day: 31,
        }),
    };
    let call = call!(client, check_overdue, KEEPER, far);
    add(
        "as_of 9999-12-31 as employee".to_owned(),
        Expected::Denied,
        call,
    );

    // RequestAccess.
    let request_access = |document_id: &str, purpose: &str, revision: u32| {
        let request = RequestAccessRequest {
            document_id: document_id.to_owned(),
            purpose: purpose.to_owned(),
            revision,
        };
        call!(client, request_access, BORROWER, request)
    };
    for (label, value) in bad_record_ids() {
        let call = request_access(&value, "audit", 0);
        add(
            format!("request access id {label}"),
            Expected::Invalid("document_id"),
            call,
        );
    }
    for (label, value) in bad_text(1, 2000, false) {
        let call = request_access(&ids.confidential, &value, 0);
        add(
            format!("purpose {label}"),
            Expected::Invalid("purpose"),
            call,
        );
    }
    for revision in [2, u32::MAX] {
        let call = request_access(&ids.confidential, "audit", revision);
        add(
            format!("access revision {revision}"),
            Expected::Invalid("revision"),
            call,
        );
    }
    let call = request_access(&ids.registered, "audit", 0);
    add(
        "access to an internal document".to_owned(),
        Expected::Precondition("INTERNAL"),
        call,
    );

    // DecideAccess: a head of the document's department decides.
    let decide_access = |id: &str, opinion: &str, expires_at: Option<prost_types::Timestamp>| {
        let mut client = client.clone();
        let request = as_head(
            APPROVER,
            DecideAccessRequest {
                access_request_id: id.to_owned(),
                approve: true,
                opinion: opinion.to_owned(),
                expires_at,
            },
        );
        Box::pin(async move { client.decide_access(request).await.map(|_| ()) }) as Call
    };
    let next_week = Some(prost_types::Timestamp {
        seconds: Utc
            .with_ymd_and_hms(2026, 3, 9, 2, 0, 0)
            .unwrap()
            .timestamp(),
        nanos: 0,
    });
    for (label, value) in bad_record_ids() {
        let call = decide_access(&value, "ok", next_week);
        let field = "access_request_id";
        add(
            format!("decide access id {label}"),
            Expected::Invalid(field),
            call,
        );
    }
    for (label, value) in bad_text(1, 2000, false) {
        let call = decide_access(&ids.access_request, &value, next_week);
        add(
            format!("access opinion {label}"),
            Expected::Invalid("opinion"),
            call,
        );
    }
    let window = [
        ("missing".to_owned(), None),
        (
            "91 days ahead".to_owned(),
            next_week.map(|mut at| {
                at.seconds += 84 * 86_400;
                at
            }),
        ),
        (
            "now".to_owned(),
            Some(prost_types::Timestamp {
                seconds: Utc
                    .with_ymd_and_hms(2026, 3, 2, 2, 0, 0)
                    .unwrap()
                    .timestamp(),
                nanos: 0,
            }),
        ),
    ];
    let far_instants = bad_timestamps()
        .into_iter()
        .map(|(label, at)| (label, Some(at)));
    for (label, at) in far_instants.chain(window) {
        let call = decide_access(&ids.access_request, "ok", at);
        add(
            format!("expires_at {label}"),
            Expected::Invalid("expires_at"),
            call,
        );
    }

    // AcceptAgreement.
    for (label, value) in bad_tokens(32)
        .into_iter()
        .chain([("dot".to_owned(), "V.1".to_owned())])
    {
        let request = AcceptAgreementRequest {
            agreement_version: value.clone(),
        };
        let call = call!(client, accept_agreement, BORROWER, request);
        let field = "agreement_version";
        add(
            format!("agreement_version {label}"),
            Expected::Invalid(field),
            call,
        );
    }
    cases
}

fn page(page_size: i32, page_token: &str) -> PageRequest {
    PageRequest {
        page_size,
        page_token: page_token.to_owned(),
    }
}

/// Byte strings that are not UTF-8.
fn invalid_utf8() -> Vec<(String, Vec<u8>)> {
    vec![
        ("lone continuation byte".to_owned(), b"abc\x80def".to_vec()),
        ("truncated sequence".to_owned(), b"\xe5\x85".to_vec()),
        ("overlong NUL".to_owned(), b"a\xc0\x80b".to_vec()),
        ("surrogate".to_owned(), b"\xed\xa0\x80".to_vec()),
        ("GBK bytes".to_owned(), vec![0xd6, 0xd0, 0xce, 0xc4]),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_rejected_and_writes_nothing() -> Result<()> {
    let nats = NatsServer::start()?;
    let service = Service::start(&nats.url()).await?;
    let mut client = service.client().await?;
    let ids = fixture(&mut client, service.today()).await?;

    let cases = rejected_cases(&client, &ids, service.today());
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
    let mut client = service.client().await?;

    for text in ACCEPTED_TEXT {
        let mut request = draft(text);
        request.content = text.as_bytes().to_vec();
        let document_id = created(&mut client, request).await?;
        let get = GetDocumentRequest {
            document_id: document_id.clone(),
        };
        let stored = client
            .get_document(as_user(KEEPER, get))
            .await?
            .into_inner()
            .document
            .context("document")?;
        assert_eq!(stored.title, *text);

        let search = ListDocumentsRequest {
            title_contains: (*text).to_owned(),
            ..Default::default()
        };
        let found = client
            .list_documents(as_user(KEEPER, search))
            .await?
            .into_inner()
            .documents;
        let titles: Vec<&str> = found.iter().map(|found| found.title.as_str()).collect();
        assert_eq!(titles, [*text], "search for {text:?}");

        let summary = format!("{text}\nsecond line\twith a tab");
        let revise = ReviseDraftRequest {
            document_id: document_id.clone(),
            content: text.as_bytes().to_vec(),
            media_type: "text/plain".to_owned(),
            change_summary: summary.clone(),
        };
        client.revise_draft(as_user(DRAFTER, revise)).await?;
        let history = ListRevisionsRequest {
            document_id: document_id.clone(),
        };
        let revisions = client
            .list_revisions(as_user(KEEPER, history))
            .await?
            .into_inner()
            .revisions;
        assert_eq!(revisions.len(), 2, "{text:?}");
        assert_eq!(revisions[1].change_summary, summary);
    }

    // Bytes that are not UTF-8 are fine when the media type does not declare UTF-8 text.
    for (media_type, bytes) in [
        ("application/octet-stream", b"abc\x80\xff\0def".to_vec()),
        ("text/plain; charset=gbk", vec![0xd6, 0xd0, 0xce, 0xc4]),
        ("image/png", b"\x89PNG\r\n\x1a\n\0\0".to_vec()),
    ] {
        let mut request = draft("Binary");
        request.media_type = media_type.to_owned();
        request.content = bytes.clone();
        let document_id = created(&mut client, request).await?;
        let read = ReadContentRequest {
            document_id,
            revision: 0,
            access_request_id: String::new(),
        };
        let content = client
            .read_content(as_user(DRAFTER, read))
            .await?
            .into_inner();
        assert_eq!(content.content, bytes, "{media_type}");
        let stored_type = content.content_ref.context("content ref")?.media_type;
        assert_eq!(stored_type, media_type);
    }

    // Content at the limit is accepted.
    let mut request = draft("At the limit");
    request.content = vec![b'x'; MAX_CONTENT_BYTES];
    created(&mut client, request).await?;

    service.stop().await
}
