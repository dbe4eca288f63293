//! Archive drain benchmark. It starts a private `nats-server` with a temporary store,
//! fills the trace stream with N valid envelopes, and then measures three things on that
//! same stream:
//!
//! 1. the raw JetStream rate: a durable pull consumer configured like the archive's
//!    fetches every message in batches of 500 and acks each, with no other work;
//! 2. the archive consumer draining the stream into a fresh SQLite ledger (hash chain,
//!    Merkle hashes, receipts), timed until the receipt for the last event arrives;
//! 3. the same on a fresh PostgreSQL database, when `TRACE_TEST_DATABASE_URL` names a
//!    server where the benchmark may create one.
//!
//! It prints each rate and the ratio of each drain rate to the raw rate. The archive runs with
//! its default settings; `TRACE_ARCHIVE__BATCH_WAIT_MS`, the service's own variable, sets
//! its batch wait.
//!
//! ```text
//! cargo bench -p trace-archive --bench drain -- [events]
//! TRACE_TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres \
//!   cargo bench -p trace-archive --bench drain -- [events]
//! ```

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use async_nats::jetstream::{self, consumer::pull, message::PublishMessage};
use bytes::Bytes;
use futures::StreamExt;
use prost::Message;
use sea_orm::DatabaseConnection;
use tokio_util::sync::CancellationToken;
use trace_archive::config::ArchiveConfig;
use trace_archive::consumer::Archiver;
use trace_archive::migration::Migrator;
use trace_proto::event::v1::Receipt;
use trace_runtime::clock::{SharedClock, SystemClock};
use trace_runtime::config::NatsSettings;
use trace_tests::nats::NatsServer;

/// Events in the stream when no count is given.
const DEFAULT_EVENTS: u64 = 50_000;

/// Publishes awaited together while filling the stream.
const PUBLISH_WINDOW: usize = 1_000;

/// Maximum time one phase may take before the benchmark fails.
const PHASE_TIMEOUT: Duration = Duration::from_secs(900);

fn main() -> anyhow::Result<()> {
    // `cargo bench` passes `--bench`; the only positional argument is the event count.
    let events = std::env::args()
        .skip(1)
        .find(|argument| !argument.starts_with('-'))
        .map(|argument| {
            argument
                .parse::<u64>()
                .ok()
                .filter(|events| *events > 0)
                .with_context(|| {
                    format!("invalid event count {argument:?}: expected a positive integer")
                })
        })
        .transpose()?
        .unwrap_or(DEFAULT_EVENTS);
    let server = NatsServer::start()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("failed to start the tokio runtime")?;
    runtime.block_on(run(&server, events))
}

async fn run(server: &NatsServer, events: u64) -> anyhow::Result<()> {
    let client = async_nats::connect(server.url()).await?;
    let settings = NatsSettings {
        url: server.url(),
        ..ArchiveConfig::default().service.nats
    };
    let context = trace_runtime::nats::jetstream(client.clone(), Duration::from_secs(30));
    trace_runtime::nats::ensure_stream(&context, &settings).await?;

    let (bytes, fill) = fill(&context, events).await?;
    println!(
        "fill: {events} events ({bytes} envelope bytes) published with acks in {:.2} s: {:.0} events/s",
        fill.as_secs_f64(),
        events as f64 / fill.as_secs_f64()
    );

    let raw = consume_raw(&context, &settings.stream_name, events).await?;
    let raw_rate = events as f64 / raw.as_secs_f64();
    println!(
        "raw consume with ack: {:.2} s: {raw_rate:.0} events/s",
        raw.as_secs_f64()
    );

    let folder = tempfile::tempdir().context("failed to create a temporary folder")?;
    let url = format!(
        "sqlite://{}?mode=rwc",
        folder.path().join("drain.db").display()
    );
    let db = trace_runtime::db::connect_and_migrate::<Migrator>(&url).await?;
    let drained = drain(&client, &context, &settings, db, "drain-sqlite", events).await?;
    report("sqlite", events, drained, raw_rate);

    match trace_tests::postgres::fresh_database("archive_drain")? {
        Some(url) => {
            let db = trace_runtime::db::connect_and_migrate::<Migrator>(&url).await?;
            let drained = drain(&client, &context, &settings, db, "drain-postgres", events).await?;
            report("postgres", events, drained, raw_rate);
        }
        None => println!("postgres: skipped, TRACE_TEST_DATABASE_URL is not set"),
    }
    println!(
        "peak resident memory of this process (VmHWM): {}",
        peak_resident_memory().unwrap_or_else(|| "unknown".to_owned())
    );
    Ok(())
}

fn report(label: &str, events: u64, drained: Duration, raw_rate: f64) {
    let rate = events as f64 / drained.as_secs_f64();
    println!(
        "{label} drain: {:.2} s: {rate:.0} events/s, {:.3} of the raw rate",
        drained.as_secs_f64(),
        rate / raw_rate
    );
}

/// Publishes `events` envelopes with message ids, as the outbox relay does, and waits for
/// every ack. Returns the envelope bytes and the time taken.
async fn fill(context: &jetstream::Context, events: u64) -> anyhow::Result<(usize, Duration)> {
    let started = Instant::now();
    let mut bytes = 0;
    let mut acks = Vec::with_capacity(PUBLISH_WINDOW);
    for index in 0..events {
        let envelope = support::envelope(index);
        let payload = envelope.encode_to_vec();
        bytes += payload.len();
        let message = PublishMessage::build()
            .payload(Bytes::from(payload))
            .message_id(&envelope.event_id);
        acks.push(context.send_publish(support::SUBJECT, message).await?);
        if acks.len() == PUBLISH_WINDOW {
            for ack in acks.drain(..) {
                ack.await?;
            }
        }
    }
    for ack in acks {
        ack.await?;
    }
    Ok((bytes, started.elapsed()))
}

/// Consumes the whole stream with a durable pull consumer configured like the archive's,
/// acking each message, and returns the time until the last ack was flushed.
async fn consume_raw(
    context: &jetstream::Context,
    stream_name: &str,
    events: u64,
) -> anyhow::Result<Duration> {
    let archive = ArchiveConfig::default().archive;
    let stream = context.get_stream(stream_name).await?;
    let started = Instant::now();
    let consumer = stream
        .create_consumer(pull::Config {
            durable_name: Some("raw".to_owned()),
            filter_subject: trace_runtime::nats::TRACE_SUBJECTS.to_owned(),
            ack_policy: jetstream::consumer::AckPolicy::Explicit,
            ack_wait: Duration::from_secs(archive.ack_wait_secs),
            max_ack_pending: archive.max_ack_pending,
            deliver_policy: jetstream::consumer::DeliverPolicy::All,
            ..pull::Config::default()
        })
        .await?;
    let mut messages = consumer
        .stream()
        .max_messages_per_batch(archive.batch_size)
        .messages()
        .await?;
    let mut consumed = 0;
    let deadline = tokio::time::sleep(PHASE_TIMEOUT);
    tokio::pin!(deadline);
    while consumed < events {
        let message = tokio::select! {
            () = &mut deadline => anyhow::bail!("raw consume timed out after {consumed} of {events} events"),
            message = messages.next() => message,
        };
        let message = message
            .context("the message stream ended")?
            .map_err(|error| anyhow::anyhow!("failed to receive a message: {error}"))?;
        message
            .ack()
            .await
            .map_err(|error| anyhow::anyhow!("failed to ack: {error}"))?;
        consumed += 1;
    }
    context.client().flush().await?;
    Ok(started.elapsed())
}

/// Environment variable that overrides the archive's batch wait, as in the service.
const BATCH_WAIT_ENV: &str = "TRACE_ARCHIVE__BATCH_WAIT_MS";

/// Runs the archive consumer on `db` until the receipts name `events` events, checks that
/// the ledger contains exactly that many entries, and returns the time taken.
async fn drain(
    client: &async_nats::Client,
    context: &jetstream::Context,
    settings: &NatsSettings,
    db: DatabaseConnection,
    consumer_name: &str,
    events: u64,
) -> anyhow::Result<Duration> {
    let mut receipts = client
        .subscribe(trace_runtime::nats::receipt_subject("document"))
        .await?;
    client.flush().await?;
    let mut archive = ArchiveConfig::default().archive;
    archive.consumer_name = consumer_name.to_owned();
    if let Ok(wait) = std::env::var(BATCH_WAIT_ENV) {
        archive.batch_wait_ms = wait
            .parse()
            .with_context(|| format!("{BATCH_WAIT_ENV}={wait:?} is not a whole number"))?;
    }
    let clock: SharedClock = Arc::new(SystemClock);
    let archiver = Archiver {
        db: db.clone(),
        client: client.clone(),
        jetstream: context.clone(),
        stream_name: settings.stream_name.clone(),
        settings: archive,
        clock,
    };
    let shutdown = CancellationToken::new();

    let started = Instant::now();
    let task = tokio::spawn(archiver.run(shutdown.clone()));
    let mut archived = 0;
    let deadline = tokio::time::sleep(PHASE_TIMEOUT);
    tokio::pin!(deadline);
    while archived < events {
        let message = tokio::select! {
            () = &mut deadline => anyhow::bail!("{consumer_name} timed out after {archived} of {events} events"),
            message = receipts.next() => message,
        };
        let message = message.context("the receipt subscription ended")?;
        archived += Receipt::decode(message.payload.as_ref())?.events.len() as u64;
    }
    let elapsed = started.elapsed();
    shutdown.cancel();
    task.await?;

    let size = trace_archive::proofs::current_size(&db).await?;
    anyhow::ensure!(
        size == events,
        "{consumer_name}: the ledger holds {size} entries after receipts for {archived}, expected {events}"
    );
    Ok(elapsed)
}

/// Returns the value of the `VmHWM` line of `/proc/self/status`, for example `41236 kB`.
fn peak_resident_memory() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .map(|value| value.trim().to_owned())
}
