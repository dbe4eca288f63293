//! A private PostgreSQL cluster for one test, which the test may restart or crash.
//!
//! [`PostgresCluster::start`] runs `initdb` and `pg_ctl` from the newest
//! `/usr/lib/postgresql/<version>/bin` (the Debian and Ubuntu layout) into a temporary
//! directory, with trust authentication on a free port of 127.0.0.1 only. `initdb` refuses
//! to run as root, so under root both commands run as the `postgres` system user through
//! `runuser`. The cluster is stopped and its directory deleted when the value is dropped.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result, bail};
use tempfile::TempDir;

/// Folder that contains one folder per installed PostgreSQL major version.
const INSTALL_ROOT: &str = "/usr/lib/postgresql";

/// System user that runs the cluster when the test runs as root.
const SYSTEM_USER: &str = "postgres";

/// A running PostgreSQL cluster in a temporary directory.
#[derive(Debug)]
pub struct PostgresCluster {
    bin: PathBuf,
    data: PathBuf,
    port: u16,
    run_as: Option<&'static str>,
    // Dropped last, after `Drop::drop` stopped the server.
    _dir: TempDir,
}

impl PostgresCluster {
    /// Returns the newest `bin` folder under `/usr/lib/postgresql` that has `initdb` and
    /// `pg_ctl`, or `None` if PostgreSQL server binaries are not installed.
    pub fn binaries() -> Option<PathBuf> {
        let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir(INSTALL_ROOT)
            .ok()?
            .filter_map(|entry| {
                let entry = entry.ok()?;
                let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
                let bin = entry.path().join("bin");
                (bin.join("initdb").is_file() && bin.join("pg_ctl").is_file())
                    .then_some((version, bin))
            })
            .collect();
        versions.sort();
        versions.pop().map(|(_, bin)| bin)
    }

    /// Creates and starts a cluster on a free port, or returns `Ok(None)` if the server
    /// binaries are absent.
    pub fn start() -> Result<Option<Self>> {
        let Some(bin) = Self::binaries() else {
            return Ok(None);
        };
        let run_as = is_root()?.then_some(SYSTEM_USER);
        let dir = tempfile::Builder::new()
            .prefix("trace-pg-")
            .tempdir()
            .context("create the cluster directory")?;
        let data = dir.path().join("data");
        std::fs::create_dir(&data).context("create the data directory")?;
        if let Some(user) = run_as {
            run(Command::new("chown").args(["-R", user]).arg(dir.path()))?;
        }
        let port = free_port()?;
        let cluster = Self {
            bin,
            data,
            port,
            run_as,
            _dir: dir,
        };
        run(cluster
            .command("initdb")
            .args([
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-sync",
                "-D",
            ])
            .arg(&cluster.data))?;
        let options = format!(
            "-p {port} -c listen_addresses=127.0.0.1 -k {}",
            cluster.data.display()
        );
        run(cluster
            .command("pg_ctl")
            .arg("-D")
            .arg(&cluster.data)
            .arg("-l")
            .arg(cluster.log_path())
            .args(["-w", "-o", &options, "start"]))?;
        Ok(Some(cluster))
    }

    /// URL of the cluster's `postgres` database as the `postgres` superuser.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Restarts the server with `pg_ctl restart -m immediate`: every backend is killed
    /// without a checkpoint, as in a crash, and the server recovers from its WAL.
    pub fn restart_immediate(&self) -> Result<()> {
        run(self
            .command("pg_ctl")
            .arg("-D")
            .arg(&self.data)
            .arg("-l")
            .arg(self.log_path())
            .args(["-w", "-m", "immediate", "restart"]))
    }

    /// Returns the server log written so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn log_path(&self) -> PathBuf {
        self.data.join("server.log")
    }

    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        match self.run_as {
            Some(user) => {
                let mut command = Command::new("runuser");
                command.args(["-u", user, "--"]).arg(path);
                command
            }
            None => Command::new(path),
        }
    }
}

impl Drop for PostgresCluster {
    fn drop(&mut self) {
        let _ = self
            .command("pg_ctl")
            .arg("-D")
            .arg(&self.data)
            .args(["-m", "immediate", "stop"])
            .output();
    }
}

fn is_root() -> Result<bool> {
    let output = Command::new("id").arg("-u").output().context("run id -u")?;
    Ok(String::from_utf8_lossy(&output.stdout).trim() == "0")
}

fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("bind a free port")?;
    Ok(listener.local_addr()?.port())
}

fn run(command: &mut Command) -> Result<()> {
    let output = command
        .output()
        .with_context(|| format!("run {:?}", command.get_program()))?;
    if !output.status.success() {
        bail!(
            "{:?} {:?} failed with {}: {}{}",
            command.get_program(),
            command.get_args().collect::<Vec<_>>(),
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_accepts_connections_after_restart() {
        let Some(cluster) = PostgresCluster::start().expect("start the cluster") else {
            eprintln!("skipped: no initdb and pg_ctl under {INSTALL_ROOT}");
            return;
        };
        let query = |cluster: &PostgresCluster| {
            Command::new("psql")
                .args([&cluster.url(), "-tAc", "SELECT 41 + 1"])
                .output()
                .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_owned())
        };
        assert_eq!(query(&cluster).expect("run psql"), "42");
        cluster.restart_immediate().expect("restart");
        assert_eq!(query(&cluster).expect("run psql"), "42");
        assert!(cluster.log_path().is_file());
    }
}
