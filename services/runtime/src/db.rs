//! Database connection, migrations and write transactions, the same way in every service.
//!
//! SQLite runs in WAL mode with a busy timeout, and write transactions start with
//! `BEGIN IMMEDIATE` so that they take the write lock up front instead of failing on upgrade.
//!
//! SQLite lets one connection write a file at a time. A connection that finds the file
//! locked sleeps in SQLite's busy handler for 1, 2, 5, 10 ms and longer between attempts
//! (the `delays` table of `sqliteDefaultBusyCallback` in the bundled `sqlite3.c`). It
//! sleeps that long even when the writer it waits for runs only a few statements. So the
//! writers of one process first take turns on an async lock per file ([`write_turn`]), and
//! only writers of other processes meet the busy handler.

use std::collections::HashMap;
use std::ops::Deref;
use std::path::PathBuf;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DatabaseTransaction, DbBackend,
    DbErr, ExecResult, QueryResult, SqliteTransactionMode, Statement, TransactionOptions,
    TransactionTrait,
};
use sea_orm_migration::MigratorTrait;
use tokio::sync::OwnedMutexGuard;

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
            .busy_timeout(BUSY_TIMEOUT)
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

/// How long SQLite retries a locked file before a statement fails with "database is
/// locked", and how long a writer waits for its turn before it goes on without one.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// This process's turn to write one SQLite file, held until it is dropped.
pub type WriteTurn = OwnedMutexGuard<()>;

/// One async lock per SQLite file that this process writes, by the file name the pool was
/// opened with. In-memory databases get a distinct name per pool from sqlx, so they do not
/// share a lock either.
static WRITE_TURNS: LazyLock<Mutex<HashMap<PathBuf, Arc<tokio::sync::Mutex<()>>>>> =
    LazyLock::new(Mutex::default);

/// Waits for this process's turn to write `db`'s SQLite file; `None` on PostgreSQL, which
/// locks rows rather than files. Writers wait in the order of their requests. A writer that waits
/// longer than the busy timeout goes on without a turn and meets SQLite's busy handler as
/// before. So a task that already has a turn and writes again through another connection
/// fails after twice the timeout instead of hanging, and every other writer of the file
/// waits behind it meanwhile.
pub async fn write_turn(db: &DatabaseConnection) -> Option<WriteTurn> {
    if db.get_database_backend() != DbBackend::Sqlite {
        return None;
    }
    let options = db.get_sqlite_connection_pool().connect_options();
    let file = options.get_filename();
    let lock = {
        let mut turns = WRITE_TURNS.lock().expect("write turn registry lock");
        match turns.get(file) {
            Some(lock) => lock.clone(),
            None => turns.entry(file.to_path_buf()).or_default().clone(),
        }
    };
    match tokio::time::timeout(BUSY_TIMEOUT, lock.lock_owned()).await {
        Ok(turn) => Some(turn),
        Err(_) => {
            tracing::warn!(
                timeout_secs = BUSY_TIMEOUT.as_secs(),
                "waited too long for a turn to write the database, writing without one"
            );
            None
        }
    }
}

/// A write transaction. On SQLite it keeps this process's [`write_turn`] for the file
/// until it commits, rolls back or is dropped. It reads and writes like the
/// [`DatabaseTransaction`] it wraps, which it also dereferences to.
#[derive(Debug)]
pub struct WriteTransaction {
    // Fields drop in order: a transaction dropped without a commit queues its rollback
    // before the next writer gets the turn. The rollback may still be running when the
    // next `BEGIN IMMEDIATE` arrives, which then waits in SQLite's busy handler.
    txn: DatabaseTransaction,
    _turn: Option<WriteTurn>,
}

impl WriteTransaction {
    /// Commits the transaction, then gives up the turn.
    pub async fn commit(self) -> Result<(), DbErr> {
        self.txn.commit().await
    }

    /// Rolls the transaction back, then gives up the turn.
    pub async fn rollback(self) -> Result<(), DbErr> {
        self.txn.rollback().await
    }
}

impl Deref for WriteTransaction {
    type Target = DatabaseTransaction;

    fn deref(&self) -> &DatabaseTransaction {
        &self.txn
    }
}

#[async_trait::async_trait]
impl ConnectionTrait for WriteTransaction {
    fn get_database_backend(&self) -> DbBackend {
        self.txn.get_database_backend()
    }

    async fn execute_raw(&self, statement: Statement) -> Result<ExecResult, DbErr> {
        self.txn.execute_raw(statement).await
    }

    async fn execute_unprepared(&self, sql: &str) -> Result<ExecResult, DbErr> {
        self.txn.execute_unprepared(sql).await
    }

    async fn query_one_raw(&self, statement: Statement) -> Result<Option<QueryResult>, DbErr> {
        self.txn.query_one_raw(statement).await
    }

    async fn query_all_raw(&self, statement: Statement) -> Result<Vec<QueryResult>, DbErr> {
        self.txn.query_all_raw(statement).await
    }

    fn support_returning(&self) -> bool {
        self.txn.support_returning()
    }
}

/// Starts a write transaction that holds the write lock from its first statement on SQLite,
/// after waiting for this process's turn to write the file.
pub async fn begin_write(db: &DatabaseConnection) -> Result<WriteTransaction, DbErr> {
    let turn = write_turn(db).await;
    let txn = db
        .begin_with_options(TransactionOptions {
            sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
            ..TransactionOptions::default()
        })
        .await?;
    Ok(WriteTransaction { txn, _turn: turn })
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

/// Returns true for a SQLite URL whose database lives only in memory: `sqlite::memory:`,
/// `file::memory:`, an empty path, `mode=memory` or `vfs=memdb`. It reads the URL's text
/// only, so a caller that needs a file checks the opened connection as well.
pub fn is_sqlite_in_memory(url: &str) -> bool {
    if !url.starts_with("sqlite:") {
        return false;
    }
    let in_memory_path = sqlite_path(url).is_none_or(|path| path.ends_with(":memory:"));
    in_memory_path
        || url.split_once('?').is_some_and(|(_, query)| {
            query
                .split('&')
                .any(|pair| pair == "mode=memory" || pair == "vfs=memdb")
        })
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
    fn in_memory_sqlite_urls_are_recognised() {
        for url in [
            "sqlite::memory:",
            "sqlite://:memory:",
            "sqlite://",
            "sqlite://?mode=memory",
            "sqlite://a.db?cache=shared&mode=memory",
            "sqlite:file::memory:",
            "sqlite://ledger?vfs=memdb",
        ] {
            assert!(is_sqlite_in_memory(url), "{url}");
        }
        for url in [
            "sqlite://var/a.db?mode=rwc",
            "sqlite:a.db",
            "postgres://trace@db/trace",
        ] {
            assert!(!is_sqlite_in_memory(url), "{url}");
        }
    }

    async fn open_file(folder: &tempfile::TempDir, name: &str) -> DatabaseConnection {
        let url = format!("sqlite://{}?mode=rwc", folder.path().join(name).display());
        let db = connect(&url).await.expect("open SQLite file");
        db.execute_unprepared("CREATE TABLE IF NOT EXISTS step (n INTEGER NOT NULL)")
            .await
            .expect("create table");
        db
    }

    async fn steps(db: &DatabaseConnection) -> Vec<i64> {
        let rows = db
            .query_all_raw(Statement::from_string(
                DbBackend::Sqlite,
                "SELECT n FROM step ORDER BY rowid",
            ))
            .await
            .expect("read steps");
        rows.iter()
            .map(|row| row.try_get::<i64>("", "n").expect("n"))
            .collect()
    }

    #[tokio::test]
    async fn write_turns_follow_request_order() {
        let folder = tempfile::tempdir().expect("temp dir");
        let db = open_file(&folder, "turns.db").await;
        let first = begin_write(&db).await.expect("first writer");
        first
            .execute_unprepared("INSERT INTO step (n) VALUES (0)")
            .await
            .expect("first write");

        // Writers that request a turn while the first has it wait, then write in the order
        // of their requests, each seeing what the one before committed.
        let mut waiting = Vec::new();
        for n in 1..=20_i64 {
            let db = db.clone();
            waiting.push(tokio::spawn(async move {
                let txn = begin_write(&db).await.expect("later writer");
                let count = txn
                    .query_one_raw(Statement::from_string(
                        DbBackend::Sqlite,
                        "SELECT count(*) AS c FROM step",
                    ))
                    .await
                    .expect("count")
                    .expect("a row")
                    .try_get::<i64>("", "c")
                    .expect("c");
                txn.execute_unprepared(&format!("INSERT INTO step (n) VALUES ({n})"))
                    .await
                    .expect("later write");
                txn.commit().await.expect("later commit");
                count
            }));
            // Let the task request its turn before the next one is spawned.
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(steps(&db).await, Vec::<i64>::new(), "nothing committed yet");
        first.commit().await.expect("first commit");

        let mut seen = Vec::new();
        for task in waiting {
            seen.push(task.await.expect("writer task"));
        }
        assert_eq!(seen, (1..=20).collect::<Vec<i64>>());
        assert_eq!(steps(&db).await, (0..=20).collect::<Vec<i64>>());
    }

    #[tokio::test]
    async fn write_turn_freed_by_dropped_transaction() {
        let folder = tempfile::tempdir().expect("temp dir");
        let db = open_file(&folder, "dropped.db").await;
        let other = open_file(&folder, "other.db").await;

        let dropped = begin_write(&db).await.expect("writer");
        dropped
            .execute_unprepared("INSERT INTO step (n) VALUES (1)")
            .await
            .expect("write");
        // Another file has its own turn.
        let beside = tokio::time::timeout(Duration::from_secs(5), begin_write(&other))
            .await
            .expect("another file does not wait")
            .expect("writer of another file");
        beside.commit().await.expect("commit beside");
        drop(dropped);

        let next = tokio::time::timeout(Duration::from_secs(5), begin_write(&db))
            .await
            .expect("the turn is free after a drop")
            .expect("next writer");
        next.execute_unprepared("INSERT INTO step (n) VALUES (2)")
            .await
            .expect("next write");
        next.commit().await.expect("next commit");
        assert_eq!(steps(&db).await, vec![2]);
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
