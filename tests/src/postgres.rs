//! One PostgreSQL database per test, on the server named by `TRACE_TEST_DATABASE_URL`.
//!
//! [`fresh_database`] creates a database named `trace_t_<prefix>_<random>` with the
//! `psql` command-line client and returns its URL. The databases are left behind
//! after the tests so that a failed test's data can be inspected.
//! [`drop_stale_databases`] drops them again, and `.ci/run` drops them before each
//! test run.
//!
//! Without `TRACE_TEST_DATABASE_URL`, [`fresh_database`] returns `None`, so a test
//! can skip its PostgreSQL part or fall back to SQLite.

use std::env;
use std::io::ErrorKind;
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

/// Environment variable with the URL of the PostgreSQL server for tests, for
/// example `postgres://postgres@127.0.0.1:5432/trace_test`. Its database is used
/// only to run `CREATE DATABASE` and `DROP DATABASE`.
pub const URL_ENV: &str = "TRACE_TEST_DATABASE_URL";

/// Name prefix of every database that [`fresh_database`] creates.
pub const DATABASE_NAME_PREFIX: &str = "trace_t_";

/// PostgreSQL truncates identifiers longer than this many bytes (NAMEDATALEN - 1).
const MAX_IDENTIFIER_LEN: usize = 63;

/// Number of random hex digits at the end of each database name.
const SUFFIX_LEN: usize = 16;

/// Seconds that psql waits for a connection before it fails.
const CONNECT_TIMEOUT_SECONDS: &str = "10";

/// Returns the value of `TRACE_TEST_DATABASE_URL`, or `None` if it is unset or blank.
pub fn database_url() -> Option<String> {
    env::var(URL_ENV).ok().filter(|url| !url.trim().is_empty())
}

/// Creates a new, empty database for one test and returns its URL, or `None` if
/// `TRACE_TEST_DATABASE_URL` is unset.
///
/// The name is `trace_t_<prefix>_<16 random hex digits>`. The prefix is lowercased,
/// every character other than `a-z`, `0-9` and `_` becomes `_`, and it is cut to
/// 38 characters so that the name fits PostgreSQL's 63-byte limit. The URL keeps
/// the user, host, port and query of `TRACE_TEST_DATABASE_URL`.
///
/// Fails if `psql` is missing or the server rejects `CREATE DATABASE`.
pub fn fresh_database(prefix: &str) -> Result<Option<String>> {
    let Some(server_url) = database_url() else {
        return Ok(None);
    };
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    let name = database_name(prefix, &suffix[..SUFFIX_LEN]);
    run_psql(&server_url, &format!("CREATE DATABASE \"{name}\""))?;
    with_database(&server_url, &name).map(Some)
}

/// Drops every `trace_t_*` database on the server of `TRACE_TEST_DATABASE_URL`
/// and returns their names. Does nothing if the variable is unset.
///
/// `DROP DATABASE ... WITH (FORCE)` closes open connections, so this must not run
/// while tests that use these databases are running.
pub fn drop_stale_databases() -> Result<Vec<String>> {
    let Some(server_url) = database_url() else {
        return Ok(Vec::new());
    };
    let pattern = format!("{}%", escape_like(DATABASE_NAME_PREFIX));
    drop_databases_like(&server_url, &pattern)
}

/// Drops the databases whose names match the SQL LIKE `pattern`, except the one
/// that `server_url` connects to, and returns their names.
fn drop_databases_like(server_url: &str, pattern: &str) -> Result<Vec<String>> {
    let query = format!(
        "SELECT datname FROM pg_database \
         WHERE datname LIKE '{pattern}' AND datname <> current_database() \
         ORDER BY datname"
    );
    let names: Vec<String> = run_psql(server_url, &query)?
        .lines()
        .filter(|line| !line.is_empty())
        .map(str::to_owned)
        .collect();
    for name in &names {
        run_psql(
            server_url,
            &format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"),
        )?;
    }
    Ok(names)
}

/// Builds `trace_t_<prefix>_<suffix>` from a sanitized prefix, as documented on
/// [`fresh_database`].
fn database_name(prefix: &str, suffix: &str) -> String {
    let max_prefix_len = MAX_IDENTIFIER_LEN - DATABASE_NAME_PREFIX.len() - 1 - suffix.len();
    let prefix: String = prefix
        .chars()
        .map(|character| match character.to_ascii_lowercase() {
            lower @ ('a'..='z' | '0'..='9' | '_') => lower,
            _ => '_',
        })
        .take(max_prefix_len)
        .collect();
    format!("{DATABASE_NAME_PREFIX}{prefix}_{suffix}")
}

/// Escapes `_` and `%` for a LIKE pattern with the default backslash escape.
fn escape_like(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('_', "\\_")
        .replace('%', "\\%")
}

/// Returns `server_url` with its database path replaced by `database`.
fn with_database(server_url: &str, database: &str) -> Result<String> {
    let authority_start = server_url
        .find("://")
        .map(|index| index + 3)
        .with_context(|| {
            format!(
                "invalid {URL_ENV} {}: expected postgres://user@host:port/database",
                redact_password(server_url)
            )
        })?;
    let rest = &server_url[authority_start..];
    let authority_len = rest.find(['/', '?']).unwrap_or(rest.len());
    let after_authority = &rest[authority_len..];
    let query = after_authority
        .find('?')
        .map_or("", |index| &after_authority[index..]);
    Ok(format!(
        "{}/{database}{query}",
        &server_url[..authority_start + authority_len]
    ))
}

/// Replaces the password in a URL's user info with `***`, for error messages.
fn redact_password(url: &str) -> String {
    let Some(authority_start) = url.find("://").map(|index| index + 3) else {
        return url.to_owned();
    };
    let rest = &url[authority_start..];
    let authority_len = rest.find(['/', '?']).unwrap_or(rest.len());
    let authority = &rest[..authority_len];
    let Some(at) = authority.rfind('@') else {
        return url.to_owned();
    };
    let Some(colon) = authority[..at].find(':') else {
        return url.to_owned();
    };
    let password_start = authority_start + colon + 1;
    let password_end = authority_start + at;
    format!("{}***{}", &url[..password_start], &url[password_end..])
}

/// Runs one SQL command with `psql` and returns its unaligned, tuples-only output.
fn run_psql(url: &str, sql: &str) -> Result<String> {
    let output = Command::new("psql")
        .arg(url)
        .args(["--no-psqlrc", "--quiet", "--no-align", "--tuples-only"])
        .args(["--set", "ON_ERROR_STOP=1", "--command", sql])
        .env("PGCONNECT_TIMEOUT", CONNECT_TIMEOUT_SECONDS)
        .stdin(Stdio::null())
        .output();
    let output = match output {
        Ok(output) => output,
        Err(error) if error.kind() == ErrorKind::NotFound => bail!(
            "psql not found on PATH; install the PostgreSQL client \
             (Debian package postgresql-client)"
        ),
        Err(error) => return Err(error).context("failed to run psql"),
    };
    if !output.status.success() {
        bail!(
            "psql failed ({}) running `{sql}` on {}: {}",
            output.status,
            redact_password(url),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    String::from_utf8(output.stdout).context("psql printed output that is not UTF-8")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_name_sanitizes_prefix() {
        let name = database_name("Document-Outbox.v2", "0123456789abcdef");

        assert_eq!(name, "trace_t_document_outbox_v2_0123456789abcdef");
    }

    #[test]
    fn database_name_fits_identifier_limit() {
        let name = database_name(&"x".repeat(100), "0123456789abcdef");

        assert_eq!(name.len(), MAX_IDENTIFIER_LEN);
        assert!(name.starts_with("trace_t_xxx"), "name: {name}");
        assert!(name.ends_with("_0123456789abcdef"), "name: {name}");
    }

    #[test]
    fn with_database_replaces_path() {
        let cases = [
            (
                "postgres://postgres@127.0.0.1:5432/trace_test",
                "postgres://postgres@127.0.0.1:5432/trace_t_a_1",
            ),
            (
                "postgres://postgres@127.0.0.1:5432",
                "postgres://postgres@127.0.0.1:5432/trace_t_a_1",
            ),
            (
                "postgresql://u:p@db:5432/x?sslmode=disable",
                "postgresql://u:p@db:5432/trace_t_a_1?sslmode=disable",
            ),
            (
                "postgres://u@db?sslmode=disable",
                "postgres://u@db/trace_t_a_1?sslmode=disable",
            ),
        ];
        for (server_url, expected) in cases {
            let url = with_database(server_url, "trace_t_a_1").expect("valid URL");
            assert_eq!(url, expected, "server URL {server_url}");
        }
    }

    #[test]
    fn with_database_rejects_url_without_scheme() {
        let error = with_database("127.0.0.1:5432", "trace_t_a_1").expect_err("no scheme");

        assert!(error.to_string().contains(URL_ENV), "message: {error}");
    }

    #[test]
    fn redact_password_hides_only_password() {
        assert_eq!(
            redact_password("postgres://user:secret@db:5432/x"),
            "postgres://user:***@db:5432/x"
        );
        assert_eq!(
            redact_password("postgres://user@db:5432/x"),
            "postgres://user@db:5432/x"
        );
        assert_eq!(redact_password("postgres://db/x"), "postgres://db/x");
    }

    #[test]
    fn escape_like_escapes_wildcards() {
        assert_eq!(escape_like("trace_t_"), "trace\\_t\\_");
        assert_eq!(escape_like("100%"), "100\\%");
    }

    /// Needs a server: runs only when `TRACE_TEST_DATABASE_URL` is set, as in `.ci/run`.
    #[test]
    fn fresh_database_is_created_and_dropped() {
        let Some(server_url) = database_url() else {
            eprintln!("skipped: {URL_ENV} is unset");
            return;
        };

        let url = fresh_database("Harness Check")
            .expect("create database")
            .expect("TRACE_TEST_DATABASE_URL is set");
        let name = url.rsplit('/').next().expect("URL has a path").to_owned();
        assert!(
            name.starts_with("trace_t_harness_check_"),
            "database name: {name}"
        );
        let current = run_psql(&url, "SELECT current_database()").expect("connect to new database");
        assert_eq!(current.trim(), name);
        let second = fresh_database("Harness Check")
            .expect("create second database")
            .expect("TRACE_TEST_DATABASE_URL is set");
        assert_ne!(second, url);

        // Only this test's prefix, so that databases of other tests stay.
        let pattern = format!("{}%", escape_like("trace_t_harness_check_"));
        let dropped = drop_databases_like(&server_url, &pattern).expect("drop databases");
        assert!(dropped.contains(&name), "dropped: {dropped:?}");
        let remaining = run_psql(
            &server_url,
            &format!("SELECT count(*) FROM pg_database WHERE datname = '{name}'"),
        )
        .expect("query pg_database");
        assert_eq!(remaining.trim(), "0");
    }
}
