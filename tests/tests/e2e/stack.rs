//! Starting services for a test and talking to them: in-process services on free ports,
//! service binaries as child processes, identity-carrying clients and polling helpers.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use prost::Message;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;
use trace_proto::archive::v1::archive_service_client::ArchiveServiceClient;
use trace_proto::archive::v1::{Entry, GetEntryRequest, QueryEntriesRequest, get_entry_request};
use trace_proto::document::v1::document_service_client::DocumentServiceClient;
use trace_proto::event::v1::Envelope;
use trace_proto::inspection::v1::inspection_service_client::InspectionServiceClient;
use trace_proto::meeting::v1::meeting_service_client::MeetingServiceClient;
use trace_proto::project::v1::project_service_client::ProjectServiceClient;
use trace_proto::worklog::v1::worklog_service_client::WorklogServiceClient;
use trace_runtime::clock::{ManualClock, SharedClock, SystemClock};
use trace_runtime::seal::Keyring;
use trace_tests::nats::NatsServer;

/// A service running inside the test process.
pub struct InProcess {
    pub address: String,
    shutdown: CancellationToken,
    task: Option<JoinHandle<anyhow::Result<()>>>,
}

impl InProcess {
    /// Stops the service and waits for it to finish draining.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            let result = task.await.expect("service task panicked");
            result.expect("service stopped with an error");
        }
    }
}

impl Drop for InProcess {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

async fn free_listener() -> (TcpListener, String) {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a free port");
    let address = format!("http://{}", listener.local_addr().expect("local address"));
    (listener, address)
}

pub fn sqlite_url(dir: &Path, name: &str) -> String {
    format!(
        "sqlite://{}?mode=rwc",
        dir.join(format!("{name}.db")).display()
    )
}

/// Settings shared by every service under test: the test's broker and files in `dir`.
fn settings(
    mut service: trace_runtime::config::ServiceSettings,
    nats_url: &str,
    dir: &Path,
    name: &str,
) -> trace_runtime::config::ServiceSettings {
    service.database_url = sqlite_url(dir, name);
    service.blob_store_url = format!("file://{}", dir.join("blobs").join(name).display());
    service.nats.url = nats_url.to_owned();
    // Short receipt timeouts let the fault tests see republication within seconds.
    service.outbox.receipt_timeout_secs = 2;
    service.outbox.max_receipt_timeout_secs = 4;
    service.outbox.poll_interval_ms = 50;
    service.shutdown_grace_secs = 5;
    service
}

/// Starts the document service in-process.
pub async fn start_document(nats_url: &str, dir: &Path) -> InProcess {
    start_document_with(nats_url, dir, |_| {}).await
}

/// Starts the document service in-process after `adjust` changed its configuration.
pub async fn start_document_with(
    nats_url: &str,
    dir: &Path,
    adjust: impl FnOnce(&mut trace_document::config::DocumentConfig),
) -> InProcess {
    let mut config = trace_document::config::DocumentConfig::defaults();
    config.service = settings(config.service, nats_url, dir, "document");
    adjust(&mut config);
    serve(|listener, shutdown| {
        trace_document::run(config, listener, Arc::new(SystemClock), shutdown)
    })
    .await
}

/// Starts the meeting service in-process.
pub async fn start_meeting(nats_url: &str, dir: &Path) -> InProcess {
    start_meeting_with_clock(nats_url, dir, Arc::new(SystemClock)).await
}

/// Starts the meeting service in-process on `clock`.
pub async fn start_meeting_with_clock(nats_url: &str, dir: &Path, clock: SharedClock) -> InProcess {
    let mut config = trace_meeting::MeetingConfig::defaults();
    config.service = settings(config.service, nats_url, dir, "meeting");
    serve(|listener, shutdown| trace_meeting::run(config, listener, clock, shutdown)).await
}

/// Starts the project service in-process on `clock`.
pub async fn start_project(nats_url: &str, dir: &Path, clock: SharedClock) -> InProcess {
    let mut config = trace_project::ProjectConfig::defaults();
    config.service = settings(config.service, nats_url, dir, "project");
    serve(|listener, shutdown| trace_project::run(config, listener, clock, shutdown)).await
}

/// Starts the worklog service in-process on `clock`, with the company directory (TOML)
/// `directory`, which names each employee's supervisor.
pub async fn start_worklog(
    nats_url: &str,
    dir: &Path,
    clock: SharedClock,
    directory: &str,
) -> InProcess {
    let mut config = trace_worklog::WorklogConfig::defaults();
    config.service = settings(config.service, nats_url, dir, "worklog");
    config.service.directory_file = Some(directory_file(dir, "worklog", directory));
    serve(|listener, shutdown| trace_worklog::run(config, listener, clock, shutdown)).await
}

/// Starts the inspection service in-process on `clock`, with the company directory (TOML)
/// `directory`, which names each department's head.
pub async fn start_inspection(
    nats_url: &str,
    dir: &Path,
    clock: SharedClock,
    directory: &str,
) -> InProcess {
    let mut config = trace_inspection::InspectionConfig::defaults();
    config.service = settings(config.service, nats_url, dir, "inspection");
    config.service.directory_file = Some(directory_file(dir, "inspection", directory));
    // A day between rule sweeps, so no rule records findings while a test runs.
    config.inspection.sweep_interval_secs = 86_400;
    serve(|listener, shutdown| trace_inspection::run(config, listener, clock, shutdown)).await
}

/// Writes `contents` to a directory file of the service `name` in `dir` and returns its path.
fn directory_file(dir: &Path, name: &str, contents: &str) -> String {
    let path = dir.join(format!("{name}-directory.toml"));
    std::fs::write(&path, contents).expect("write the company directory");
    path.display().to_string()
}

/// Starts the archive in-process.
pub async fn start_archive(nats_url: &str, dir: &Path) -> InProcess {
    start_archive_with(nats_url, dir, |_| {}).await
}

/// Starts the archive in-process after `adjust` changed its configuration.
pub async fn start_archive_with(
    nats_url: &str,
    dir: &Path,
    adjust: impl FnOnce(&mut trace_archive::config::ArchiveConfig),
) -> InProcess {
    start_archive_with_clock(nats_url, dir, Arc::new(SystemClock), adjust).await
}

/// Starts the archive in-process on `clock` after `adjust` changed its configuration.
pub async fn start_archive_with_clock(
    nats_url: &str,
    dir: &Path,
    clock: SharedClock,
    adjust: impl FnOnce(&mut trace_archive::config::ArchiveConfig),
) -> InProcess {
    let mut config = trace_archive::config::ArchiveConfig::default();
    config.service = settings(config.service, nats_url, dir, "archive");
    adjust(&mut config);
    serve(|listener, shutdown| trace_archive::run(config, listener, clock, shutdown)).await
}

/// Runs a service on a free port of 127.0.0.1: `run` receives the listener and the token
/// that stops the service.
async fn serve<F>(run: impl FnOnce(TcpListener, CancellationToken) -> F) -> InProcess
where
    F: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let (listener, address) = free_listener().await;
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(run(listener, shutdown.clone()));
    wait_for_port(&address).await;
    InProcess {
        address,
        shutdown,
        task: Some(task),
    }
}

/// Waits until a gRPC server accepts TCP connections.
pub async fn wait_for_port(address: &str) {
    let socket = address.trim_start_matches("http://").to_owned();
    let deadline = Instant::now() + Duration::from_secs(20);
    while tokio::net::TcpStream::connect(&socket).await.is_err() {
        assert!(
            Instant::now() < deadline,
            "service at {address} did not start"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Path of a workspace binary, built once per test run.
pub fn binary(name: &str) -> PathBuf {
    static BUILT: OnceLock<()> = OnceLock::new();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    BUILT.get_or_init(|| {
        let mut command = Command::new(env!("CARGO"));
        // Cargo gives the test process the variables of its own package (CARGO_PKG_NAME,
        // CARGO_MANIFEST_DIR and others). Build scripts that rerun when one changes (ring's)
        // would otherwise rebuild half the workspace here, and again on the next cargo test.
        for (name, _) in std::env::vars_os() {
            if name.to_str().is_some_and(is_test_package_variable) {
                command.env_remove(name);
            }
        }
        let status = command
            .args([
                "build",
                "--quiet",
                "-p",
                "trace-archive",
                "-p",
                "trace-document",
                "-p",
                "tracectl",
                "--bins",
            ])
            .current_dir(&root)
            .status()
            .expect("run cargo build");
        assert!(
            status.success(),
            "cargo build of the service binaries failed"
        );
    });
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    target.join("debug").join(name)
}

/// Returns true for the environment variables that cargo sets for a test process about its
/// package, as opposed to the configuration variables the build should keep.
fn is_test_package_variable(name: &str) -> bool {
    const PREFIXES: [&str; 4] = [
        "CARGO_PKG_",
        "CARGO_MANIFEST_",
        "CARGO_BIN_",
        "CARGO_CRATE_",
    ];
    const NAMES: [&str; 4] = [
        "CARGO_PRIMARY_PACKAGE",
        "CARGO_TARGET_TMPDIR",
        "CARGO_RUSTC_CURRENT_DIR",
        "OUT_DIR",
    ];
    PREFIXES.iter().any(|prefix| name.starts_with(prefix)) || NAMES.contains(&name)
}

/// The archive running as a child process, so that a test can kill it with SIGKILL.
pub struct ArchiveProcess {
    pub address: String,
    child: Child,
    port: u16,
    environment: Vec<(String, String)>,
    log_file: Option<PathBuf>,
}

impl ArchiveProcess {
    /// Starts `trace-archive` on a free port with its database in `dir`.
    pub fn start(nats_url: &str, dir: &Path, batch_size: usize) -> Self {
        Self::start_on(nats_url, dir, batch_size, &sqlite_url(dir, "archive"))
    }

    /// Starts `trace-archive` on a free port with its database at `database_url` and its
    /// blobs in `dir`.
    pub fn start_on(nats_url: &str, dir: &Path, batch_size: usize, database_url: &str) -> Self {
        Self::start_logged(nats_url, dir, batch_size, database_url, None)
    }

    /// Starts `trace-archive` like [`Self::start_on`], appending its log (stdout, at warn
    /// level) to `log_file` when one is given.
    pub fn start_logged(
        nats_url: &str,
        dir: &Path,
        batch_size: usize,
        database_url: &str,
        log_file: Option<PathBuf>,
    ) -> Self {
        let port = free_port();
        let environment = vec![
            ("TRACE_GRPC_ADDR".to_owned(), format!("127.0.0.1:{port}")),
            ("TRACE_DATABASE_URL".to_owned(), database_url.to_owned()),
            (
                "TRACE_BLOB_STORE_URL".to_owned(),
                format!("file://{}", dir.join("blobs/archive").display()),
            ),
            ("TRACE_NATS__URL".to_owned(), nats_url.to_owned()),
            (
                "TRACE_ARCHIVE__BATCH_SIZE".to_owned(),
                batch_size.to_string(),
            ),
            ("TRACE_ARCHIVE__ACK_WAIT_SECS".to_owned(), "5".to_owned()),
            ("TRACE_LOG_LEVEL".to_owned(), "warn".to_owned()),
        ];
        let child = spawn_archive(&environment, log_file.as_deref());
        Self {
            address: format!("http://127.0.0.1:{port}"),
            child,
            port,
            environment,
            log_file,
        }
    }

    /// Kills the process with SIGKILL, as a crash would.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts the process again with the same port, database and broker.
    pub fn restart(&mut self) {
        self.kill();
        self.child = spawn_archive(&self.environment, self.log_file.as_deref());
    }

    /// Returns whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    pub fn port(&self) -> u16 {
        self.port
    }
}

impl Drop for ArchiveProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Returns a port of 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("free port")
        .port()
}

/// Returns the nats-server binary: `TRACE_NATS_SERVER`, or the one `make tools` installs.
pub fn nats_binary() -> PathBuf {
    std::env::var_os("TRACE_NATS_SERVER").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.tools/venv/bin/nats-server"),
        PathBuf::from,
    )
}

/// A nats-server started from a configuration file, killed on drop.
pub struct ConfiguredServer(Child);

impl ConfiguredServer {
    /// Starts nats-server with `config_file` and waits until it accepts connections on
    /// `port`, which the file must name.
    pub fn start(config_file: &Path, port: u16) -> Self {
        let child = Command::new(nats_binary())
            .arg("-c")
            .arg(config_file)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nats-server");
        let server = Self(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "nats-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        server
    }
}

impl Drop for ConfiguredServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The document service running as a child process, so that a test can kill it with SIGKILL
/// between committing a call and publishing its event.
pub struct DocumentProcess {
    pub address: String,
    child: Child,
    environment: Vec<(String, String)>,
}

impl DocumentProcess {
    /// Starts `trace-document` on a free port with its database and blobs in `dir`, and the
    /// short receipt timeouts of the in-process services.
    pub fn start(nats_url: &str, dir: &Path) -> Self {
        let port = free_port();
        let environment = vec![
            ("TRACE_GRPC_ADDR".to_owned(), format!("127.0.0.1:{port}")),
            ("TRACE_DATABASE_URL".to_owned(), sqlite_url(dir, "document")),
            (
                "TRACE_BLOB_STORE_URL".to_owned(),
                format!("file://{}", dir.join("blobs/document").display()),
            ),
            ("TRACE_NATS__URL".to_owned(), nats_url.to_owned()),
            (
                "TRACE_OUTBOX__RECEIPT_TIMEOUT_SECS".to_owned(),
                "2".to_owned(),
            ),
            (
                "TRACE_OUTBOX__MAX_RECEIPT_TIMEOUT_SECS".to_owned(),
                "4".to_owned(),
            ),
            ("TRACE_OUTBOX__POLL_INTERVAL_MS".to_owned(), "50".to_owned()),
            ("TRACE_LOG_LEVEL".to_owned(), "warn".to_owned()),
        ];
        let child = spawn_document(&environment);
        Self {
            address: format!("http://127.0.0.1:{port}"),
            child,
            environment,
        }
    }

    /// Kills the process with SIGKILL, as a crash would.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts the process again with the same port, database and broker.
    pub fn restart(&mut self) {
        self.kill();
        self.child = spawn_document(&self.environment);
    }
}

impl Drop for DocumentProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

fn spawn_document(environment: &[(String, String)]) -> Child {
    Command::new(binary("trace-document"))
        .envs(environment.iter().cloned())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start trace-document")
}

fn spawn_archive(environment: &[(String, String)], log_file: Option<&Path>) -> Child {
    let stdout = match log_file {
        Some(path) => Stdio::from(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .expect("open the archive log file"),
        ),
        None => Stdio::null(),
    };
    Command::new(binary("trace-archive"))
        .envs(environment.iter().cloned())
        .stdout(stdout)
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start trace-archive")
}

/// An identity for test calls.
#[derive(Debug, Clone, Copy)]
pub struct Person {
    pub user_id: &'static str,
    pub department: &'static str,
    pub role: &'static str,
}

pub const DRAFTER: Person = Person {
    user_id: "zhang.min",
    department: "admin-office",
    role: "employee",
};
pub const AUDITOR: Person = Person {
    user_id: "audit.bot",
    department: "audit",
    role: "audit",
};

impl Person {
    /// Wraps a message in a request carrying this identity.
    pub fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        trace_runtime::context::attach_identity(
            &mut request,
            self.user_id,
            self.department,
            &[self.role],
            None,
        );
        request
    }
}

pub async fn document_client(address: &str) -> DocumentServiceClient<Channel> {
    DocumentServiceClient::connect(address.to_owned())
        .await
        .expect("connect to the document service")
}

pub async fn meeting_client(address: &str) -> MeetingServiceClient<Channel> {
    MeetingServiceClient::connect(address.to_owned())
        .await
        .expect("connect to the meeting service")
}

pub async fn project_client(address: &str) -> ProjectServiceClient<Channel> {
    ProjectServiceClient::connect(address.to_owned())
        .await
        .expect("connect to the project service")
}

pub async fn worklog_client(address: &str) -> WorklogServiceClient<Channel> {
    WorklogServiceClient::connect(address.to_owned())
        .await
        .expect("connect to the worklog service")
}

pub async fn inspection_client(address: &str) -> InspectionServiceClient<Channel> {
    InspectionServiceClient::connect(address.to_owned())
        .await
        .expect("connect to the inspection service")
}

pub async fn archive_client(address: &str) -> ArchiveServiceClient<Channel> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match ArchiveServiceClient::connect(address.to_owned()).await {
            Ok(client) => return client,
            Err(error) if Instant::now() < deadline => {
                let _ = error;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(error) => panic!("archive at {address} unreachable: {error}"),
        }
    }
}

/// Polls until every event id is in the archive, or panics after `timeout`.
pub async fn wait_until_archived(address: &str, event_ids: &[String], timeout: Duration) {
    let deadline = Instant::now() + timeout;
    let mut client = archive_client(address).await;
    for event_id in event_ids {
        loop {
            let request = AUDITOR.request(GetEntryRequest {
                key: Some(get_entry_request::Key::EventId(event_id.clone())),
            });
            match client.get_entry(request).await {
                Ok(_) => break,
                Err(_) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await
                }
                Err(status) => panic!("event {event_id} not archived within {timeout:?}: {status}"),
            }
        }
    }
}

/// Polls the archive until the entity `entity_type`/`entity_id` has an entry that `matches`,
/// and returns that entry with its stored envelope. Panics after 30 seconds.
pub async fn wait_for_entry(
    address: &str,
    entity_type: &str,
    entity_id: &str,
    matches: impl Fn(&Entry) -> bool,
) -> Entry {
    let timeout = Duration::from_secs(30);
    let deadline = Instant::now() + timeout;
    let mut client = archive_client(address).await;
    loop {
        let request = AUDITOR.request(QueryEntriesRequest {
            entity_type: entity_type.to_owned(),
            entity_id: entity_id.to_owned(),
            include_envelope: true,
            ..Default::default()
        });
        let entries = client
            .query_entries(request)
            .await
            .expect("query the entity's entries")
            .into_inner()
            .entries;
        if let Some(entry) = entries.into_iter().find(|entry| matches(entry)) {
            return entry;
        }
        assert!(
            Instant::now() < deadline,
            "no matching entry of {entity_type} {entity_id} archived within {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Decodes the payload of an archived entry, opening a sealed one with the development key
/// that the services under test seal with.
pub fn entry_payload<M: Message + Default>(entry: &Entry) -> M {
    let envelope = Envelope::decode(entry.envelope.as_slice()).expect("stored envelope decodes");
    let payload = trace_runtime::event::open_payload(&Keyring::development(), &envelope)
        .expect("open the sealed payload")
        .expect("the entry has a payload");
    M::decode(payload.value.as_slice()).expect("the payload decodes")
}

/// A private nats-server, the archive and a manual clock for the services a test starts.
/// The archive runs on the system clock.
pub struct ClockedStack {
    pub nats: NatsServer,
    pub dir: tempfile::TempDir,
    pub archive: InProcess,
    pub clock: Arc<ManualClock>,
}

impl ClockedStack {
    /// Starts the broker and the archive, with the services' clock stopped at `start`.
    pub async fn start(start: chrono::DateTime<chrono::Utc>) -> Self {
        let nats = NatsServer::start().expect("start nats-server");
        let dir = tempfile::tempdir().expect("create a temporary folder");
        let archive = start_archive(&nats.url(), dir.path()).await;
        Self {
            nats,
            dir,
            archive,
            clock: ManualClock::new(start),
        }
    }

    pub fn nats_url(&self) -> String {
        self.nats.url()
    }

    /// Returns the manual clock as the shared clock that the service start functions take.
    pub fn service_clock(&self) -> SharedClock {
        self.clock.clone()
    }
}
