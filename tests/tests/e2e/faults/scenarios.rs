//! Fault scenarios under concurrent load, each checked with the history checker.
//!
//! Every scenario starts [`LOAD_TASKS`] tasks that call the document service at once, injects
//! its fault once [`FAULT_AFTER_OK_CALLS`] calls returned OK, lets the load go on through the
//! fault, and then checks that the archive contains every OK call's event exactly once.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use sea_orm::{ConnectionTrait, Statement};
use trace_proto::archive::v1::{GetLedgerStatusRequest, ListRejectedRequest, QueryEntriesRequest};
use trace_proto::common::v1::PageRequest;
use trace_proto::event::v1::GetEventStatusRequest;
use trace_proto::event::v1::outbox_service_client::OutboxServiceClient;
use trace_tests::nats::NatsServer;
use trace_tests::postgres_cluster::PostgresCluster;

use super::history::{Outcome, Recorder, Summary, check_history};
use super::load::Load;
use crate::stack::*;

/// Tasks calling the document service at the same time.
const LOAD_TASKS: usize = 4;

/// OK calls each load task makes; with [`LOAD_TASKS`] this is the scenario's size.
const OK_CALLS_PER_TASK: usize = 60;

/// OK calls made before the fault is injected, so that the fault hits a running pipeline.
const FAULT_AFTER_OK_CALLS: usize = 60;

/// OK calls made while the fault lasts, before the scenario repairs it.
const OK_CALLS_DURING_FAULT: usize = 40;

/// Time the load may take, faults included.
const LOAD_TIMEOUT: Duration = Duration::from_secs(180);

/// Time the archive may take to catch up after the load finished. Republication after a
/// missing receipt waits 2 to 4 seconds per attempt in the test stack.
const CHECK_TIMEOUT: Duration = Duration::from_secs(120);

/// Environment variable with the number of times each scenario runs.
const REPEAT_ENV: &str = "TRACE_FAULT_REPEAT";

/// Runs `scenario` `TRACE_FAULT_REPEAT` times and prints one summary line per run.
async fn repeat<F, Fut>(name: &str, scenario: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Option<Summary>>,
{
    let repeats: usize = match std::env::var(REPEAT_ENV) {
        Ok(value) => value
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{REPEAT_ENV}={value:?} is not a whole number")),
        Err(_) => 1,
    };
    for run in 1..=repeats {
        let Some(summary) = scenario().await else {
            return;
        };
        println!(
            "fault scenario {name} run {run}/{repeats}: {} calls, {} OK, {} failed, {} events checked",
            summary.calls, summary.ok, summary.failed, summary.archived
        );
    }
}

/// Database URL for an archive: a fresh PostgreSQL database when `TRACE_TEST_DATABASE_URL`
/// is set, otherwise a SQLite file in `dir`.
fn archive_database(dir: &Path) -> String {
    trace_tests::postgres::fresh_database("faults_archive")
        .expect("create a PostgreSQL database")
        .unwrap_or_else(|| sqlite_url(dir, "archive"))
}

/// Starts the in-process archive on [`archive_database`].
async fn start_archive_for_scenario(nats_url: &str, dir: &Path) -> InProcess {
    let database_url = archive_database(dir);
    start_archive_with(nats_url, dir, |config| {
        config.service.database_url = database_url;
    })
    .await
}

fn start_load(address: &str, recorder: &Recorder) -> Load {
    Load::start(
        address,
        recorder,
        LOAD_TASKS,
        OK_CALLS_PER_TASK,
        LOAD_TIMEOUT,
    )
}

/// Prints a progress line to stderr, so that a slow or stuck scenario shows its last step.
fn progress(step: &str, recorder: &Recorder) {
    eprintln!(
        "fault scenario: {step} after {} OK calls",
        recorder.ok_count()
    );
}

async fn wait_through_fault(recorder: &Recorder) {
    // A slow fault step (a PostgreSQL restart) can outlast the load, so stop at its end.
    let target = (recorder.ok_count() + OK_CALLS_DURING_FAULT).min(LOAD_TASKS * OK_CALLS_PER_TASK);
    recorder.wait_for_ok_calls(target, LOAD_TIMEOUT).await;
}

async fn ledger_size(address: &str) -> u64 {
    let mut client = archive_client(address).await;
    client
        .get_ledger_status(AUDITOR.request(GetLedgerStatusRequest {}))
        .await
        .expect("ledger status")
        .into_inner()
        .size
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_killed_under_load() {
    repeat("broker_killed_under_load", || async {
        let mut nats = NatsServer::start().expect("start nats-server");
        let dir = tempfile::tempdir().unwrap();
        let archive = start_archive_for_scenario(&nats.url(), dir.path()).await;
        let document = start_document(&nats.url(), dir.path()).await;
        let recorder = Recorder::default();
        let load = start_load(&document.address, &recorder);

        recorder
            .wait_for_ok_calls(FAULT_AFTER_OK_CALLS, LOAD_TIMEOUT)
            .await;
        progress("killing nats-server", &recorder);
        tokio::task::block_in_place(|| nats.kill()).expect("kill nats-server");
        wait_through_fault(&recorder).await;
        progress("restarting nats-server", &recorder);
        tokio::task::block_in_place(|| nats.restart()).expect("restart nats-server");
        progress("waiting for the load to finish", &recorder);
        load.join().await;

        progress("checking the history", &recorder);
        let summary = check_history(
            &archive.address,
            &document.address,
            &recorder,
            CHECK_TIMEOUT,
        )
        .await;
        assert_eq!(
            summary.failed, 0,
            "calls must not fail while the broker is down"
        );
        document.stop().await;
        archive.stop().await;
        Some(summary)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "slow; run by `make faults`"]
async fn archive_killed_under_load() {
    repeat("archive_killed_under_load", || async {
        let nats = NatsServer::start().expect("start nats-server");
        let dir = tempfile::tempdir().unwrap();
        let mut archive =
            ArchiveProcess::start_on(&nats.url(), dir.path(), 20, &archive_database(dir.path()));
        let document = start_document(&nats.url(), dir.path()).await;
        let recorder = Recorder::default();
        let load = start_load(&document.address, &recorder);

        recorder
            .wait_for_ok_calls(FAULT_AFTER_OK_CALLS, LOAD_TIMEOUT)
            .await;
        // The archive has a batch in flight whenever it is behind the load. Killing it once
        // it has stored something makes both committed and unacknowledged batches likely.
        while ledger_size(&archive.address).await == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        progress("killing the archive", &recorder);
        archive.kill();
        wait_through_fault(&recorder).await;
        progress("restarting the archive", &recorder);
        archive.restart();
        progress("waiting for the load to finish", &recorder);
        load.join().await;

        progress("checking the history", &recorder);
        let summary = check_history(
            &archive.address,
            &document.address,
            &recorder,
            CHECK_TIMEOUT,
        )
        .await;
        assert_eq!(
            summary.failed, 0,
            "calls must not fail while the archive is down"
        );
        document.stop().await;
        Some(summary)
    })
    .await;
}

/// Counts the document outbox rows that the relay has not published.
async fn unpublished_rows(dir: &Path) -> i64 {
    let url = format!("sqlite://{}?mode=ro", dir.join("document.db").display());
    let db = trace_runtime::db::connect(&url)
        .await
        .expect("open the document database");
    let row = db
        .query_one_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT COUNT(*) AS unpublished FROM outbox WHERE published_at IS NULL",
        ))
        .await
        .expect("count unpublished outbox rows")
        .expect("one row");
    let count: i64 = row.try_get("", "unpublished").expect("count column");
    db.close().await.expect("close the document database");
    count
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn document_killed_under_load() {
    repeat("document_killed_under_load", || async {
        let mut nats = NatsServer::start().expect("start nats-server");
        let dir = tempfile::tempdir().unwrap();
        let archive = start_archive_for_scenario(&nats.url(), dir.path()).await;
        let mut document = DocumentProcess::start(&nats.url(), dir.path());
        wait_for_port(&document.address).await;
        let recorder = Recorder::default();
        let load = start_load(&document.address, &recorder);

        recorder
            .wait_for_ok_calls(FAULT_AFTER_OK_CALLS, LOAD_TIMEOUT)
            .await;
        // With the broker down, the calls below commit rows that the relay cannot publish,
        // so the kill is sure to leave committed but unpublished events behind.
        progress("killing nats-server", &recorder);
        tokio::task::block_in_place(|| nats.kill()).expect("kill nats-server");
        wait_through_fault(&recorder).await;
        progress("killing the document service", &recorder);
        document.kill();
        let unpublished = unpublished_rows(dir.path()).await;
        assert!(
            unpublished > 0,
            "the kill must leave unpublished outbox rows behind"
        );
        progress("restarting nats-server", &recorder);
        tokio::task::block_in_place(|| nats.restart()).expect("restart nats-server");
        progress("restarting the document service", &recorder);
        document.restart();
        progress("waiting for the load to finish", &recorder);
        load.join().await;

        progress("checking the history", &recorder);
        let summary = check_history(
            &archive.address,
            &document.address,
            &recorder,
            CHECK_TIMEOUT,
        )
        .await;
        assert!(
            summary.failed > 0,
            "calls made while the service was down must fail"
        );
        archive.stop().await;
        Some(summary)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "slow; run by `make faults`"]
async fn postgres_restarted_under_load() {
    repeat("postgres_restarted_under_load", || async {
        let cluster = match PostgresCluster::start().expect("start a PostgreSQL cluster") {
            Some(cluster) => cluster,
            None => {
                println!("skipped: no initdb and pg_ctl under /usr/lib/postgresql/*/bin");
                return None;
            }
        };
        let nats = NatsServer::start().expect("start nats-server");
        let dir = tempfile::tempdir().unwrap();
        let log_file = dir.path().join("archive.log");
        let mut archive = ArchiveProcess::start_logged(
            &nats.url(),
            dir.path(),
            20,
            &cluster.url(),
            Some(log_file.clone()),
        );
        let document = start_document(&nats.url(), dir.path()).await;
        let recorder = Recorder::default();
        let load = start_load(&document.address, &recorder);

        recorder
            .wait_for_ok_calls(FAULT_AFTER_OK_CALLS, LOAD_TIMEOUT)
            .await;
        // Restart only once the archive is past its start-up and has stored a batch: an
        // archive that cannot reach its database at start exits with the error.
        while ledger_size(&archive.address).await == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        progress("restarting PostgreSQL", &recorder);
        tokio::task::block_in_place(|| cluster.restart_immediate())
            .unwrap_or_else(|error| panic!("{error:#}\n{}", cluster.log()));
        wait_through_fault(&recorder).await;
        progress("waiting for the load to finish", &recorder);
        load.join().await;
        assert!(
            archive.is_running(),
            "the archive exited after the PostgreSQL restart:\n{}",
            std::fs::read_to_string(&log_file).unwrap_or_default()
        );

        progress("checking the history", &recorder);
        let summary = check_history(
            &archive.address,
            &document.address,
            &recorder,
            CHECK_TIMEOUT,
        )
        .await;
        assert_eq!(
            summary.failed, 0,
            "the archive's database is not on the call path"
        );
        document.stop().await;
        Some(summary)
    })
    .await;
}

/// Opens the TRACE stream on the server at `nats_url`.
async fn trace_stream(nats_url: &str) -> async_nats::jetstream::stream::Stream {
    let client = async_nats::connect(nats_url)
        .await
        .expect("connect to NATS");
    async_nats::jetstream::new(client)
        .get_stream("TRACE")
        .await
        .expect("get the TRACE stream")
}

/// Returns the sequence number of the last message stored in the TRACE stream.
async fn trace_stream_last_sequence(nats_url: &str) -> u64 {
    trace_stream(nats_url)
        .await
        .get_info()
        .await
        .expect("TRACE stream info")
        .state
        .last_sequence
}

/// Waits until the TRACE stream contains a message stored after sequence `after`. With the
/// archive down, such a message is an event that nothing has consumed yet.
async fn wait_for_message_after(nats_url: &str, after: u64, timeout: Duration) -> u64 {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let last = trace_stream_last_sequence(nats_url).await;
        if last > after {
            return last;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no event reached the TRACE stream after sequence {after} within {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Purges every message of the TRACE stream and returns how many were removed.
async fn purge_trace_stream(nats_url: &str) -> u64 {
    trace_stream(nats_url)
        .await
        .purge()
        .await
        .expect("purge the TRACE stream")
        .purged
}

/// Counts the OK calls whose event the document relay published more than once.
async fn republished_events(document_address: &str, recorder: &Recorder) -> usize {
    let channel = tonic::transport::Channel::from_shared(document_address.to_owned())
        .expect("document address")
        .connect_lazy();
    let mut client = OutboxServiceClient::new(channel);
    let mut republished = 0;
    for call in recorder.calls() {
        let Outcome::Ok { event_id } = call.outcome else {
            continue;
        };
        let status = client
            .get_event_status(AUDITOR.request(GetEventStatusRequest { event_id }))
            .await
            .expect("event status")
            .into_inner();
        if status.attempts > 1 {
            republished += 1;
        }
    }
    republished
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_purged_under_load() {
    repeat("stream_purged_under_load", || async {
        let nats = NatsServer::start().expect("start nats-server");
        let dir = tempfile::tempdir().unwrap();
        let mut archive =
            ArchiveProcess::start_on(&nats.url(), dir.path(), 20, &archive_database(dir.path()));
        let document = start_document(&nats.url(), dir.path()).await;
        let recorder = Recorder::default();
        let load = start_load(&document.address, &recorder);

        recorder
            .wait_for_ok_calls(FAULT_AFTER_OK_CALLS, LOAD_TIMEOUT)
            .await;
        // Stop the archive so that the events published meanwhile wait unconsumed in the
        // stream, then remove them; only the outbox's republication can bring them back.
        progress("killing the archive", &recorder);
        archive.kill();
        let last_before_kill = trace_stream_last_sequence(&nats.url()).await;
        wait_through_fault(&recorder).await;
        // On a busy machine the relay can lag behind the calls. Purging before it published
        // anything would leave nothing for republication to recover.
        let last = wait_for_message_after(&nats.url(), last_before_kill, LOAD_TIMEOUT).await;
        let purged = purge_trace_stream(&nats.url()).await;
        assert!(
            purged >= last - last_before_kill,
            "the purge removed {purged} messages, fewer than the {} published after the kill",
            last - last_before_kill
        );
        progress("restarting the archive", &recorder);
        archive.restart();
        progress("waiting for the load to finish", &recorder);
        load.join().await;

        progress("checking the history", &recorder);
        let summary = check_history(
            &archive.address,
            &document.address,
            &recorder,
            CHECK_TIMEOUT,
        )
        .await;
        assert_eq!(
            summary.failed, 0,
            "calls must not fail while the archive is down"
        );
        assert!(
            republished_events(&document.address, &recorder).await > 0,
            "purged events must come back through republication"
        );
        document.stop().await;
        Some(summary)
    })
    .await;
}

/// Messages that the poison task publishes, and how many of them the archive must reject.
struct Poison {
    rejected: usize,
    oversized_bytes: usize,
}

/// Publishes garbage, an oversized payload, an envelope under another subject and many
/// copies of one valid envelope to the TRACE stream.
async fn publish_poison(nats_url: &str, archive_address: &str) -> Poison {
    const GARBAGE_MESSAGES: usize = 20;
    const DUPLICATE_COPIES: usize = 50;

    let client = async_nats::connect(nats_url)
        .await
        .expect("connect to NATS");
    let max_payload = client.server_info().max_payload;
    let jetstream = async_nats::jetstream::new(client);
    let publish = |subject: String, payload: Vec<u8>| {
        let jetstream = jetstream.clone();
        async move {
            jetstream
                .publish(subject, payload.into())
                .await
                .expect("publish")
                .await
                .expect("stream ack");
        }
    };

    for index in 0..GARBAGE_MESSAGES {
        let garbage: Vec<u8> = (0..64 + index)
            .map(|byte| (byte * 37 + index) as u8)
            .collect();
        publish("trace.document.document.created".to_owned(), garbage).await;
    }
    // Leave room for the headers and the protocol line within the broker's max_payload.
    let oversized_bytes = max_payload - 4096;
    publish(
        "trace.document.document.revised".to_owned(),
        vec![0xFF; oversized_bytes],
    )
    .await;

    let mut archive = archive_client(archive_address).await;
    let entry = archive
        .query_entries(AUDITOR.request(QueryEntriesRequest {
            page: Some(PageRequest {
                page_size: 1,
                page_token: String::new(),
            }),
            include_envelope: true,
            ..QueryEntriesRequest::default()
        }))
        .await
        .expect("query an archived entry")
        .into_inner()
        .entries
        .into_iter()
        .next()
        .expect("an archived entry to copy");
    publish(
        "trace.document.document.forged".to_owned(),
        entry.envelope.clone(),
    )
    .await;
    for _ in 0..DUPLICATE_COPIES {
        publish(entry.subject.clone(), entry.envelope.clone()).await;
    }
    Poison {
        rejected: GARBAGE_MESSAGES + 2,
        oversized_bytes,
    }
}

async fn list_rejected(address: &str) -> Vec<trace_proto::archive::v1::Rejected> {
    let mut client = archive_client(address).await;
    let mut rejected = Vec::new();
    let mut page_token = String::new();
    loop {
        let response = client
            .list_rejected(AUDITOR.request(ListRejectedRequest {
                page: Some(PageRequest {
                    page_size: 500,
                    page_token,
                }),
            }))
            .await
            .expect("list rejected messages")
            .into_inner();
        rejected.extend(response.rejected);
        if response.next_page_token.is_empty() {
            return rejected;
        }
        page_token = response.next_page_token;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_messages_under_load() {
    repeat("poison_messages_under_load", || async {
        let nats = NatsServer::start().expect("start nats-server");
        let dir = tempfile::tempdir().unwrap();
        let archive = start_archive_for_scenario(&nats.url(), dir.path()).await;
        let document = start_document(&nats.url(), dir.path()).await;
        let recorder = Recorder::default();
        let load = start_load(&document.address, &recorder);

        recorder
            .wait_for_ok_calls(FAULT_AFTER_OK_CALLS, LOAD_TIMEOUT)
            .await;
        while ledger_size(&archive.address).await == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        progress("publishing poison messages", &recorder);
        let poison = publish_poison(&nats.url(), &archive.address).await;
        progress("waiting for the load to finish", &recorder);
        load.join().await;

        progress("checking the history", &recorder);
        let summary = check_history(
            &archive.address,
            &document.address,
            &recorder,
            CHECK_TIMEOUT,
        )
        .await;
        assert_eq!(summary.failed, 0);
        let rejected = list_rejected(&archive.address).await;
        assert_eq!(rejected.len(), poison.rejected, "rejected: {rejected:?}");
        assert!(
            rejected
                .iter()
                .any(|message| message.raw_size == poison.oversized_bytes as u64),
            "the oversized payload must be recorded with its size"
        );
        assert!(
            rejected.iter().any(
                |message| message.subject == "trace.document.document.forged"
                    && message.reason.contains("differs")
            ),
            "the envelope under another subject must be rejected for its subject: {rejected:?}"
        );
        assert!(rejected.iter().all(|message| !message.reason.is_empty()));
        document.stop().await;
        archive.stop().await;
        Some(summary)
    })
    .await;
}

/// A tmpfs mounted for one test, unmounted on drop.
struct TmpfsMount {
    path: PathBuf,
}

impl TmpfsMount {
    /// Mounts a tmpfs of `size` (as `mount -o size=` takes it) at `path`, or returns the
    /// reason it could not.
    fn mount(path: &Path, size: &str) -> Result<Self, String> {
        std::fs::create_dir_all(path).map_err(|error| error.to_string())?;
        let output = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(path)
            .output()
            .map_err(|error| format!("cannot run mount: {error}"))?;
        if !output.status.success() {
            return Err(String::from_utf8_lossy(&output.stderr).trim().to_owned());
        }
        Ok(Self {
            path: path.to_owned(),
        })
    }
}

impl Drop for TmpfsMount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.path).status();
    }
}

/// Writes zeros to `path` until the file system reports that it is full; returns the bytes
/// written.
fn fill_file_system(path: &Path) -> u64 {
    use std::io::Write;
    let mut file = std::fs::File::create(path).expect("create the filler file");
    let chunk = vec![0u8; 64 * 1024];
    let mut written = 0u64;
    loop {
        match file.write(&chunk) {
            Ok(0) => return written,
            Ok(count) => written += count as u64,
            Err(error) if error.raw_os_error() == Some(28) => return written,
            Err(error) => panic!("filling {}: {error}", path.display()),
        }
    }
}

/// Returns the text of `log_file` once it contains `line`, or after 30 s without it.
async fn wait_for_log_line(log_file: &Path, line: &str) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let log = std::fs::read_to_string(log_file).unwrap_or_default();
        if log.contains(line) || std::time::Instant::now() > deadline {
            return log;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "mounts a tmpfs as root; run by `make faults`"]
async fn archive_disk_full_under_load() {
    repeat("archive_disk_full_under_load", || async {
        let dir = tempfile::tempdir().unwrap();
        let mount = match TmpfsMount::mount(&dir.path().join("archive-disk"), "16m") {
            Ok(mount) => mount,
            Err(reason) => {
                println!("skipped: cannot mount a tmpfs for the archive database: {reason}");
                return None;
            }
        };
        let nats = NatsServer::start().expect("start nats-server");
        let log_file = dir.path().join("archive.log");
        let database_url = sqlite_url(&mount.path, "archive");
        let mut archive = ArchiveProcess::start_logged(
            &nats.url(),
            dir.path(),
            20,
            &database_url,
            Some(log_file.clone()),
        );
        let document = start_document(&nats.url(), dir.path()).await;
        let recorder = Recorder::default();
        let load = start_load(&document.address, &recorder);

        recorder
            .wait_for_ok_calls(FAULT_AFTER_OK_CALLS, LOAD_TIMEOUT)
            .await;
        let filler = mount.path.join("filler");
        progress("filling the archive's disk", &recorder);
        let filled = fill_file_system(&filler);
        assert!(filled > 0, "the filler must take the free space");
        wait_through_fault(&recorder).await;
        // The fault window counts calls, and the calls can all return before the archive
        // has tried to append, so wait for the archive's own report of the full disk.
        let log = wait_for_log_line(&log_file, "disk is full").await;
        assert!(
            log.contains("disk is full"),
            "the archive log must name the full disk:\n{log}"
        );
        let size_while_full = ledger_size(&archive.address).await;
        assert!(archive.is_running(), "the archive must survive a full disk");
        progress("freeing the archive's disk", &recorder);
        std::fs::remove_file(&filler).expect("remove the filler file");
        progress("waiting for the load to finish", &recorder);
        load.join().await;

        progress("checking the history", &recorder);
        let summary = check_history(
            &archive.address,
            &document.address,
            &recorder,
            CHECK_TIMEOUT,
        )
        .await;
        assert_eq!(
            summary.failed, 0,
            "calls must not fail while the archive's disk is full"
        );
        assert!(
            summary.archived as u64 > size_while_full,
            "ingestion must resume once space returns"
        );
        document.stop().await;
        archive.kill();
        Some(summary)
    })
    .await;
}
