//! Test harness: a private `nats-server` with JetStream, the inspection service in-process
//! with a manual clock, a temporary SQLite file or a fresh PostgreSQL database, and helpers
//! that publish trace envelopes onto the stream as other services would.

use std::net::{SocketAddr, TcpListener as StdListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream;
use chrono::{DateTime, TimeZone, Utc};
use prost::Message;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder,
    Statement,
};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::Request;
use tonic::transport::Channel;
use trace_inspection::InspectionConfig;
use trace_proto::common::v1::Confidentiality;
use trace_proto::event::v1::Envelope;
use trace_proto::inspection::v1 as proto;
use trace_proto::inspection::v1::inspection_service_client::InspectionServiceClient;
use trace_runtime::clock::ManualClock;
use trace_runtime::context::{CallContext, Principal, attach_identity};
use trace_runtime::event::{EventSpec, envelope};
use trace_runtime::outbox::outbox_event;
use trace_runtime::seal::Keyring;
use trace_tests::receipts::ReceiptSender;

/// Maximum wait for servers to start and for events to be consumed.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// The company directory of the tests. `records` has no employees, so no daily reports are
/// expected of it.
pub const DIRECTORY: &str = r#"
[[departments]]
id = "admin-office"
name = "行政部"
head = "li.na"

[[departments]]
id = "engineering"
name = "研發部"
head = "huang.wei"

[[departments]]
id = "records"
name = "檔案室"
head = "li.na"

[[employees]]
id = "li.na"
name = "李娜"
department = "admin-office"
position = "行政部經理"
roles = ["department_head", "administration"]

[[employees]]
id = "chen.hua"
name = "陳華"
department = "admin-office"
position = "行政主管"
roles = ["supervisor", "administration"]
supervisor = "li.na"

[[employees]]
id = "huang.wei"
name = "黃偉"
department = "engineering"
position = "研發部經理"
roles = ["department_head"]

[[employees]]
id = "xu.fang"
name = "徐芳"
department = "engineering"
position = "軟件工程師"
roles = ["employee"]
supervisor = "huang.wei"
"#;

/// A private `nats-server` with JetStream on 127.0.0.1, killed on drop.
pub struct NatsServer {
    child: Child,
    port: u16,
    _store: tempfile::TempDir,
}

impl NatsServer {
    pub fn start() -> Self {
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

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Folder of the server's JetStream store.
    pub fn store(&self) -> &std::path::Path {
        self._store.path()
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

/// 10:00 on Monday 7 December 2026 in Shanghai, the default business time zone.
pub fn start_time() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 7, 2, 0, 0).unwrap()
}

/// The inspection service running in-process, stopped on drop, with a publisher that plays
/// the other services.
pub struct Service {
    pub client: InspectionServiceClient<Channel>,
    pub db: DatabaseConnection,
    pub clock: Arc<ManualClock>,
    pub jetstream: jetstream::Context,
    shutdown: CancellationToken,
    task: Option<JoinHandle<anyhow::Result<()>>>,
    /// Stands in for the archive's receipts, which release each entity's next event.
    _receipts: ReceiptSender,
    _folder: tempfile::TempDir,
}

impl Service {
    /// Starts the service on `database_url`, or on a temporary SQLite file when `None`.
    pub async fn start(nats: &NatsServer, database_url: Option<String>) -> Self {
        Self::start_with(nats, database_url, |_, _| {}).await
    }

    /// Starts the service as [`Service::start`] does, after `configure` changed the
    /// configuration; it receives the temporary folder for files it writes.
    pub async fn start_with(
        nats: &NatsServer,
        database_url: Option<String>,
        configure: impl FnOnce(&mut InspectionConfig, &std::path::Path),
    ) -> Self {
        let folder = tempfile::tempdir().unwrap();
        let database_url = database_url.unwrap_or_else(|| {
            format!(
                "sqlite://{}?mode=rwc",
                folder.path().join("inspection.db").display()
            )
        });
        let directory = folder.path().join("directory.toml");
        std::fs::write(&directory, DIRECTORY).unwrap();

        let mut config = InspectionConfig::defaults();
        config.service.database_url = database_url.clone();
        config.service.blob_store_url = "memory:///".to_owned();
        config.service.nats.url = nats.url();
        config.service.outbox.poll_interval_ms = 20;
        config.service.shutdown_grace_secs = 2;
        config.service.directory_file = Some(directory.display().to_string());
        config.inspection.daily_reports_from = Some("2026-12-07".to_owned());
        // Only RunRules sweeps, so each test decides when rules run.
        config.inspection.sweep_interval_secs = 86_400;
        config.inspection.consumer.batch_wait_ms = 20;
        configure(&mut config, folder.path());

        let clock = ManualClock::new(start_time());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(trace_inspection::run(
            config.clone(),
            listener,
            clock.clone(),
            shutdown.clone(),
        ));

        let client = connect(address).await;
        let db = trace_runtime::db::connect(&database_url).await.unwrap();
        let nats_client = async_nats::connect(nats.url()).await.unwrap();
        let jetstream = jetstream::new(nats_client);
        trace_runtime::nats::ensure_stream(&jetstream, &config.service.nats)
            .await
            .unwrap();
        let receipts = ReceiptSender::start(&nats.url(), "inspection")
            .await
            .unwrap();
        Self {
            client,
            db,
            clock,
            jetstream,
            shutdown,
            task: Some(task),
            _receipts: receipts,
            _folder: folder,
        }
    }

    /// Folder of the service's SQLite file and company directory.
    pub fn folder(&self) -> &std::path::Path {
        self._folder.path()
    }

    /// Builds an envelope from `service` at the clock's time, acted by `user_id`.
    pub fn event<M: prost::Name>(
        &self,
        service: &'static str,
        entity: (&'static str, &str),
        action: &'static str,
        user_id: &str,
        department: &str,
        payload: &M,
    ) -> Envelope {
        let context = CallContext {
            principal: Principal {
                user_id: user_id.to_owned(),
                display_name: user_id.to_owned(),
                department: department.to_owned(),
                roles: vec!["employee".to_owned()],
            },
            ..CallContext::system(service)
        };
        let spec = EventSpec {
            entity_type: entity.0,
            entity_id: entity.1.to_owned(),
            entity_version: 1,
            action,
            confidentiality: Confidentiality::Internal,
            payload: trace_runtime::event::pack(payload),
        };
        envelope(service, &context, self.clock.as_ref(), spec)
    }

    /// Publishes an envelope onto the stream with `Nats-Msg-Id` = `message_id`.
    pub async fn publish_as(&self, envelope: &Envelope, message_id: &str) {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Nats-Msg-Id", message_id);
        let ack = self
            .jetstream
            .publish_with_headers(
                envelope.subject.clone(),
                headers,
                envelope.encode_to_vec().into(),
            )
            .await
            .unwrap();
        ack.await.unwrap();
    }

    /// Publishes envelopes as their producers would, with `Nats-Msg-Id` = event id, and
    /// waits until the service consumed them.
    pub async fn publish(&self, envelopes: &[&Envelope]) {
        for envelope in envelopes {
            self.publish_as(envelope, &envelope.event_id).await;
        }
        for envelope in envelopes {
            self.wait_consumed(&envelope.event_id).await;
        }
    }

    /// Publishes envelopes again under new message ids, so that the broker keeps them and the
    /// service receives a redelivery. Then waits until a later marker event was consumed,
    /// because the ordered stream delivers the marker after them.
    pub async fn redeliver(&self, envelopes: &[&Envelope]) {
        for envelope in envelopes {
            let message_id = format!("{}-again-{}", envelope.event_id, uuid::Uuid::now_v7());
            self.publish_as(envelope, &message_id).await;
        }
        let marker = self.event(
            "document",
            ("document", "marker"),
            "read",
            "xu.fang",
            "engineering",
            &trace_proto::document::v1::DocumentRead::default(),
        );
        self.publish(&[&marker]).await;
    }

    /// Waits until the consumer applied the event id.
    pub async fn wait_consumed(&self, event_id: &str) {
        let sql =
            format!("SELECT COUNT(*) AS n FROM processed_events WHERE event_id = '{event_id}'");
        self.wait_for_count(&sql, 1, &format!("event {event_id} to be consumed"))
            .await;
    }

    /// Polls a `SELECT COUNT(*) AS n` statement until it returns at least `minimum`.
    pub async fn wait_for_count(&self, sql: &str, minimum: i64, what: &str) {
        let started = Instant::now();
        while self.count(sql).await < minimum {
            assert!(started.elapsed() < DEADLINE, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Runs a `SELECT COUNT(*) AS n` statement.
    pub async fn count(&self, sql: &str) -> i64 {
        let statement = Statement::from_string(self.db.get_database_backend(), sql.to_owned());
        let row = self.db.query_one_raw(statement).await.unwrap().unwrap();
        row.try_get::<i64>("", "n").unwrap()
    }

    /// Returns the event id of the outbox event with `subject` about `entity_id`.
    pub async fn outbox_event_id(&self, subject: &str, entity_id: &str) -> String {
        let sql = format!(
            "SELECT event_id FROM outbox WHERE subject = '{subject}' AND entity_id = '{entity_id}' ORDER BY seq"
        );
        let statement = Statement::from_string(self.db.get_database_backend(), sql);
        let row = self.db.query_one_raw(statement).await.unwrap();
        let row = row.unwrap_or_else(|| panic!("no outbox event {subject} for {entity_id}"));
        row.try_get::<String>("", "event_id").unwrap()
    }

    /// Runs the rule sweep now as the system.
    pub async fn run_rules(&mut self) -> proto::RunRulesResponse {
        let request = call(
            proto::RunRulesRequest {},
            "scheduler",
            "system",
            &["system"],
        );
        self.client.run_rules(request).await.unwrap().into_inner()
    }

    /// Lists every finding of `rule`.
    pub async fn findings_of(&mut self, rule: proto::Rule) -> Vec<proto::Finding> {
        let request = proto::ListFindingsRequest {
            rule: rule as i32,
            ..Default::default()
        };
        let request = call(request, "li.na", "admin-office", &["administration"]);
        self.client
            .list_findings(request)
            .await
            .unwrap()
            .into_inner()
            .findings
    }

    /// Returns one finding.
    pub async fn finding(&mut self, finding_id: &str) -> proto::Finding {
        let request = proto::GetFindingRequest {
            finding_id: finding_id.to_owned(),
        };
        let request = call(request, "li.na", "admin-office", &["administration"]);
        self.client
            .get_finding(request)
            .await
            .unwrap()
            .into_inner()
            .finding
            .unwrap()
    }

    /// Orders a spot check of engineering's daily records as `caller` and returns its id.
    pub async fn spot_check(&mut self, caller: Caller) -> String {
        let order = proto::OrderSpotCheckRequest {
            departments: vec!["engineering".to_owned()],
            processes: vec![proto::Process::DailyRecords as i32],
            record_ids: vec!["report-17".to_owned()],
            method: proto::SpotCheckMethod::Interview as i32,
        };
        let request = call(order, caller.0, caller.1, caller.2);
        let response = self.client.order_spot_check(request).await.unwrap();
        response.into_inner().inspection.unwrap().inspection_id
    }

    /// Records a finding of high severity about engineering at `level` as `caller`.
    pub async fn record_finding(
        &mut self,
        caller: Caller,
        inspection_id: &str,
        level: Confidentiality,
        description: &str,
    ) -> proto::Finding {
        let record = proto::RecordFindingRequest {
            inspection_id: inspection_id.to_owned(),
            severity: proto::Severity::High as i32,
            department: "engineering".to_owned(),
            description: description.to_owned(),
            references: Vec::new(),
            confidentiality: level as i32,
        };
        let request = call(record, caller.0, caller.1, caller.2);
        let response = self.client.record_finding(request).await.unwrap();
        response.into_inner().finding.unwrap()
    }

    /// Returns the envelopes of the outbox events with `subject` about `entity_id`, in outbox
    /// order.
    pub async fn outbox_events(&self, subject: &str, entity_id: &str) -> Vec<Envelope> {
        let rows = outbox_event::Entity::find()
            .filter(outbox_event::Column::EntityId.eq(entity_id))
            .filter(outbox_event::Column::Subject.eq(subject))
            .order_by_asc(outbox_event::Column::Seq)
            .all(&self.db)
            .await
            .unwrap();
        rows.iter()
            .map(|row| Envelope::decode(row.envelope.as_slice()).unwrap())
            .collect()
    }

    pub async fn stop(mut self) {
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
async fn connect(address: SocketAddr) -> InspectionServiceClient<Channel> {
    let started = Instant::now();
    loop {
        if let Ok(mut client) = InspectionServiceClient::connect(format!("http://{address}")).await
        {
            let probe = call(
                proto::ListFindingsRequest::default(),
                "li.na",
                "admin-office",
                &["administration"],
            );
            if client.list_findings(probe).await.is_ok() {
                return client;
            }
        }
        assert!(
            started.elapsed() < DEADLINE,
            "inspection service did not start on {address}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A caller: user id, department and roles.
pub type Caller = (&'static str, &'static str, &'static [&'static str]);

/// Opens the sealed payload of an envelope with the development key the tests run with.
pub fn opened<M: Message + Default>(envelope: &Envelope) -> M {
    assert!(
        envelope.payload.is_none(),
        "{} is not sealed",
        envelope.subject
    );
    let payload = trace_runtime::event::open_payload(&Keyring::development(), envelope)
        .unwrap()
        .unwrap();
    M::decode(payload.value.as_slice()).unwrap()
}

/// Wraps `message` in a request from `user_id` of `department` with `roles`.
pub fn call<T>(message: T, user_id: &str, department: &str, roles: &[&str]) -> Request<T> {
    let mut request = Request::new(message);
    attach_identity(&mut request, user_id, department, roles, None);
    request
}

/// Creates a fresh PostgreSQL database on the server named by `TRACE_TEST_DATABASE_URL` and
/// returns its URL; `None` when the variable is unset.
pub async fn postgres_url() -> Option<String> {
    let base = std::env::var("TRACE_TEST_DATABASE_URL").ok()?;
    let admin = trace_runtime::db::connect(&base).await.unwrap();
    let name = format!("trace_t_inspection_{}", uuid::Uuid::now_v7().simple());
    let create = Statement::from_string(
        admin.get_database_backend(),
        format!("CREATE DATABASE {name}"),
    );
    admin.execute_raw(create).await.unwrap();
    let (server, _) = base.rsplit_once('/').unwrap();
    Some(format!("{server}/{name}"))
}

/// Defines the tests `$sqlite` and `$postgres`, which run `$case` on a fresh service: on a
/// SQLite file, and on a fresh PostgreSQL database unless `TRACE_TEST_DATABASE_URL` is unset.
// Some of the test crates that include this module define no such pair.
#[allow(unused_macros)]
macro_rules! test_on_both_databases {
    ($sqlite:ident, $postgres:ident, $case:ident) => {
        #[tokio::test]
        async fn $sqlite() {
            let nats = $crate::support::NatsServer::start();
            let mut service = $crate::support::Service::start(&nats, None).await;
            $case(&mut service).await;
            service.stop().await;
        }

        #[tokio::test]
        async fn $postgres() {
            let Some(url) = $crate::support::postgres_url().await else {
                eprintln!("TRACE_TEST_DATABASE_URL is not set; skipping the PostgreSQL run");
                return;
            };
            let nats = $crate::support::NatsServer::start();
            let mut service = $crate::support::Service::start(&nats, Some(url)).await;
            $case(&mut service).await;
            service.stop().await;
        }
    };
}
#[allow(unused_imports)]
pub(crate) use test_on_both_databases;
