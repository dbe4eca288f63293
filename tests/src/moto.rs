//! A private S3-compatible server (moto's `moto_server`) on a free port of 127.0.0.1 for one
//! test, killed on drop. moto keeps buckets in memory and checks no signature, so any access
//! key works.

use std::env;
use std::ffi::OsString;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// Environment variable that names the `moto_server` binary. `make test` sets it to the one
/// that `make tools` installs.
pub const SERVER_ENV: &str = "TRACE_MOTO_SERVER";

/// Maximum time that [`MotoServer::start`] waits for the server to accept connections.
pub const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// Region that the test stores use; moto accepts any.
pub const REGION: &str = "us-east-1";

/// A running `moto_server`.
#[derive(Debug)]
pub struct MotoServer {
    process: Child,
    port: u16,
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

/// Finds the binary: the file named by `TRACE_MOTO_SERVER`, the one `make tools` installs in
/// `<workspace>/.tools/venv/bin`, or the first `moto_server` on `PATH`.
pub fn locate_binary() -> Option<PathBuf> {
    if let Some(value) = env::var_os(SERVER_ENV).filter(|value| !value.is_empty()) {
        return Some(PathBuf::from(value)).filter(|path| path.is_file());
    }
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate is inside the workspace")
        .to_path_buf();
    let installed = workspace.join(".tools/venv/bin/moto_server");
    if installed.is_file() {
        return Some(installed);
    }
    let path_var: OsString = env::var_os("PATH")?;
    env::split_paths(&path_var)
        .map(|directory| directory.join("moto_server"))
        .find(|candidate| candidate.is_file())
}

fn free_port() -> Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("bind a free port")?;
    Ok(listener.local_addr()?.port())
}

impl MotoServer {
    /// Starts the server, or returns `None` with the reason printed when no binary exists,
    /// so that a test can skip. Fails when the binary exists but the server does not start.
    pub fn start() -> Result<Option<Self>> {
        let Some(binary) = locate_binary() else {
            println!(
                "skipped: moto_server not found (set {SERVER_ENV}, or run `make tools` to \
                 install it into .tools/venv/bin)"
            );
            return Ok(None);
        };
        let port = free_port()?;
        let process = Command::new(&binary)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("failed to start {}", binary.display()))?;
        let mut server = Self { process, port };
        server.wait_until_ready()?;
        Ok(Some(server))
    }

    fn wait_until_ready(&mut self) -> Result<()> {
        let deadline = Instant::now() + READY_TIMEOUT;
        let address = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        loop {
            if let Some(status) = self.process.try_wait()? {
                bail!("moto_server exited early with {status}");
            }
            if TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "moto_server did not listen on port {} within {READY_TIMEOUT:?}",
                    self.port
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Endpoint URL for S3 clients.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Creates a bucket with a path-style `PUT /<bucket>`. The authorization header only
    /// names the service, so that moto routes the request to S3; moto checks no signature.
    pub fn create_bucket(&self, bucket: &str) -> Result<()> {
        let mut stream = TcpStream::connect((Ipv4Addr::LOCALHOST, self.port))?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        let request = format!(
            "PUT /{bucket} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\
             Authorization: AWS4-HMAC-SHA256 Credential=test/20260101/{REGION}/s3/aws4_request, \
             SignedHeaders=host, Signature=0\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            port = self.port
        );
        stream.write_all(request.as_bytes())?;
        let mut response = String::new();
        stream.read_to_string(&mut response)?;
        let status_line = response.lines().next().unwrap_or_default();
        if !status_line.contains(" 200 ") {
            bail!("creating bucket {bucket} failed: {status_line}");
        }
        Ok(())
    }

    /// `object_store` options that reach this server over plain HTTP with test credentials.
    pub fn store_options(&self) -> Vec<(String, String)> {
        vec![
            ("aws_endpoint".to_owned(), self.endpoint()),
            ("aws_allow_http".to_owned(), "true".to_owned()),
            ("aws_region".to_owned(), REGION.to_owned()),
            ("aws_access_key_id".to_owned(), "test".to_owned()),
            ("aws_secret_access_key".to_owned(), "test".to_owned()),
        ]
    }
}
