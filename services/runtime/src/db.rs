//! Database connection, migrations and write transactions, the same way in every service.
//!
//! SQLite runs in WAL mode with a busy timeout, and write transactions start with
//! `BEGIN IMMEDIATE` so that they take the write lock up front instead of failing on upgrade.

use std::time::Duration;

use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{
    ConnectOptions, Database, DatabaseConnection, DatabaseTransaction, DbErr,
    SqliteTransactionMode, TransactionOptions, TransactionTrait,
};
use sea_orm_migration::MigratorTrait;

/// Opens the database at `url`, creating a SQLite file and its folder when missing, and
/// applies the migrations of `M`.
pub async fn connect_and_migrate<M: MigratorTrait>(
    url: &str,
) -> anyhow::Result<DatabaseConnection> {
    let db = connect(url).await?;
    M::up(&db, None)
        .await
        .map_err(|error| anyhow::anyhow!("failed to migrate database {}: {error}", redact(url)))?;
    Ok(db)
}

/// Opens the database at `url`.
pub async fn connect(url: &str) -> anyhow::Result<DatabaseConnection> {
    if let Some(path) = sqlite_path(url)
        && let Some(parent) = std::path::Path::new(&path).parent()
        && !parent.as_os_str().is_empty()
    {
        std::fs::create_dir_all(parent)?;
    }
    let mut options = ConnectOptions::new(url.to_owned());
    options
        .max_connections(8)
        .min_connections(1)
        .connect_timeout(Duration::from_secs(10))
        .acquire_timeout(Duration::from_secs(30))
        .sqlx_logging(false);
    options.map_sqlx_sqlite_opts(|sqlite| {
        sqlite
            .journal_mode(SqliteJournalMode::Wal)
            // NORMAL in WAL mode syncs at checkpoints, not on every commit.
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true)
            .create_if_missing(true)
    });
    // Two pools that open one new SQLite file at once can both try to switch it to WAL, and
    // the loser fails with "database is locked". A few short retries let the winner finish.
    let mut attempt = 1;
    loop {
        match Database::connect(options.clone()).await {
            Ok(db) => return Ok(db),
            Err(error)
                if attempt < CONNECT_ATTEMPTS
                    && error.to_string().contains("database is locked") =>
            {
                tracing::debug!(attempt, %error, "database locked while connecting, retrying");
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(error) => {
                return Err(anyhow::anyhow!(
                    "failed to connect to database {}: {error}",
                    redact(url)
                ));
            }
        }
    }
}

/// Connection attempts when SQLite reports the file locked while opening it.
const CONNECT_ATTEMPTS: u32 = 5;

/// Starts a write transaction that holds the write lock from its first statement on SQLite.
pub async fn begin_write(db: &DatabaseConnection) -> Result<DatabaseTransaction, DbErr> {
    db.begin_with_options(TransactionOptions {
        sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
        ..TransactionOptions::default()
    })
    .await
}

/// Returns true for errors that a retry can cure: SQLite lock timeouts and PostgreSQL
/// serialization failures or deadlocks.
pub fn is_busy(error: &DbErr) -> bool {
    let text = error.to_string();
    text.contains("database is locked")
        || text.contains("database table is locked")
        || text.contains("40001")
        || text.contains("40P01")
        || text.contains("could not serialize access")
        || text.contains("deadlock detected")
}

/// Returns true for a unique-constraint violation.
pub fn is_unique_violation(error: &DbErr) -> bool {
    matches!(
        error.sql_err(),
        Some(sea_orm::SqlErr::UniqueConstraintViolation(_))
    )
}

fn sqlite_path(url: &str) -> Option<String> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or_default();
    (!path.is_empty() && path != ":memory:").then(|| path.to_owned())
}

/// Hides a password in a database URL before it is logged.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let Some((credentials, host)) = rest.split_once('@') else {
        return url.to_owned();
    };
    match credentials.split_once(':') {
        Some((user, _password)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_hides_password() {
        assert_eq!(
            redact("postgres://trace:s3cret@db:5432/trace"),
            "postgres://trace:***@db:5432/trace"
        );
        assert_eq!(
            redact("sqlite://var/a.db?mode=rwc"),
            "sqlite://var/a.db?mode=rwc"
        );
    }

    #[test]
    fn sqlite_path_is_found() {
        assert_eq!(
            sqlite_path("sqlite://var/a.db?mode=rwc").as_deref(),
            Some("var/a.db")
        );
        assert_eq!(
            sqlite_path("sqlite:///tmp/x.db").as_deref(),
            Some("/tmp/x.db")
        );
        assert_eq!(sqlite_path("postgres://x"), None);
    }
}
