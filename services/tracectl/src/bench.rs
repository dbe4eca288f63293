//! `tracectl bench`: a load generator against a running stack. It drives the call mix of
//! [`workload`] through gRPC, open loop at a fixed rate or closed loop with a fixed number of
//! calls in flight, and measures for each call the call latency and the time until the
//! archive has committed its event.
//!
//! The archive sends a receipt per batch on core NATS (`receipt.<service>`) right after the
//! batch commits, naming every event id it stored. The generator subscribes to
//! `receipt.>` and matches the ids, so measuring costs one subscription and no queries.
//! Polling the archive's gRPC API for every event would add a read per call to the same
//! SQLite database that the archive writes, and would measure the poll interval as much
//! as the archive. Receipts are at most once: a receipt lost by the broker shows up as an
//! event that is not archived, although the entry is in the ledger.

mod workload;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::StreamExt;
use hdrhistogram::Histogram;
use prost::Message;
use tokio::task::JoinSet;
use trace_proto::event::v1::Receipt;

use crate::demo::Addresses;
use workload::{CallKind, Workload, kind_of};

/// Largest latency the histograms record, in microseconds (10 minutes); larger values are
/// recorded as this maximum.
const MAX_LATENCY_MICROS: u64 = 600_000_000;

/// Error messages kept per method and status code, for the report.
const KEPT_ERROR_MESSAGES: usize = 1;

/// Run length when neither --duration nor --calls is given.
const DEFAULT_DURATION_SECS: f64 = 10.0;

/// Options of `tracectl bench`.
#[derive(Debug, clap::Args)]
pub struct BenchOptions {
    /// Document service gRPC address.
    #[arg(
        long,
        env = "TRACE_DOCUMENT_ADDR",
        default_value = "http://127.0.0.1:50051"
    )]
    document: String,
    /// Meeting service gRPC address.
    #[arg(
        long,
        env = "TRACE_MEETING_ADDR",
        default_value = "http://127.0.0.1:50052"
    )]
    meeting: String,
    /// Project service gRPC address.
    #[arg(
        long,
        env = "TRACE_PROJECT_ADDR",
        default_value = "http://127.0.0.1:50053"
    )]
    project: String,
    /// Worklog service gRPC address.
    #[arg(
        long,
        env = "TRACE_WORKLOG_ADDR",
        default_value = "http://127.0.0.1:50054"
    )]
    worklog: String,
    /// NATS server that carries the archive's receipts.
    #[arg(
        long,
        env = "TRACE_BENCH_NATS_URL",
        default_value = "nats://127.0.0.1:14222"
    )]
    nats_url: String,
    /// Open loop: start this many calls per second on a fixed schedule, whatever the
    /// latency. Latencies count from the scheduled start, so a stalled server is not hidden.
    #[arg(long, conflicts_with = "concurrency", value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    rate: Option<u64>,
    /// Closed loop: keep this many calls in flight, each starting when one returns.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    concurrency: u64,
    /// Seconds to run [default: 10 unless --calls is given].
    #[arg(long, conflicts_with = "calls")]
    duration: Option<f64>,
    /// Number of calls to make, instead of running for --duration.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    calls: Option<u64>,
    /// Maximum calls in flight in an open-loop run; when reached, the schedule waits and
    /// the wait counts in the latency.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    max_in_flight: u64,
    /// Seconds to wait after the last call until every event is archived.
    #[arg(long, default_value_t = 30)]
    archive_timeout_secs: u64,
    /// Drafts and started projects created before the run for revisions and progress
    /// reports to spread over.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    entities: u64,
}

/// When the run stops starting calls.
#[derive(Debug, Clone, Copy)]
enum Limit {
    Calls(u64),
    Duration(Duration),
}

impl Limit {
    /// Returns whether call `index`, due `since_start` after the run started, is still part
    /// of the run.
    fn admits(self, index: u64, since_start: Duration) -> bool {
        match self {
            Limit::Calls(calls) => index < calls,
            Limit::Duration(duration) => since_start < duration,
        }
    }
}

/// How calls are started.
#[derive(Debug, Clone, Copy)]
enum Mode {
    Open { rate: u64, max_in_flight: u64 },
    Closed { concurrency: u64 },
}

/// Runs the benchmark and prints the report; returns false when a call failed or an event
/// that a call returned was not archived in time.
pub async fn run(options: &BenchOptions, json: bool) -> anyhow::Result<bool> {
    let limit = limit(options)?;
    let mode = match options.rate {
        Some(rate) => Mode::Open {
            rate,
            max_in_flight: options.max_in_flight,
        },
        None => Mode::Closed {
            concurrency: options.concurrency,
        },
    };
    let addresses = Addresses {
        document: options.document.clone(),
        meeting: options.meeting.clone(),
        project: options.project.clone(),
        worklog: options.worklog.clone(),
        inspection: String::new(),
        archive: String::new(),
    };

    let tracker = Arc::new(Tracker::new()?);
    let nats = async_nats::connect(&options.nats_url)
        .await
        .with_context(|| format!("failed to connect to NATS at {}", options.nats_url))?;
    let receipt_subjects = format!("{}.>", trace_runtime::nats::RECEIPT_PREFIX);
    let subscription = nats
        .subscribe(receipt_subjects.clone())
        .await
        .with_context(|| format!("failed to subscribe to {receipt_subjects}"))?;
    // The subscription must be in place at the server before the first call.
    nats.flush()
        .await
        .context("failed to flush the receipt subscription")?;
    let receipts = tokio::spawn(watch_receipts(subscription, tracker.clone()));

    let entities = options.entities as usize;
    let workload = Arc::new(Workload::prepare(&addresses, entities, entities.div_ceil(4)).await?);
    // Receipts of the set-up calls are not part of the run.
    tokio::time::sleep(Duration::from_millis(500)).await;
    tracker.reset();

    tracing::info!(?mode, ?limit, "bench run started");
    let started = Instant::now();
    let calls = match mode {
        Mode::Open {
            rate,
            max_in_flight,
        } => run_open(&workload, &tracker, started, limit, rate, max_in_flight).await,
        Mode::Closed { concurrency } => {
            run_closed(&workload, &tracker, started, limit, concurrency).await
        }
    };
    let calls_done = started.elapsed();
    tracing::info!(calls, "calls done; waiting for the archive");

    let timeout = Duration::from_secs(options.archive_timeout_secs);
    while tracker.pending() > 0 && calls_done + timeout > started.elapsed() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    receipts.abort();

    let report = tracker.report(started, calls_done);
    if json {
        out!("{}", report_json(&report, mode, limit));
    } else {
        print_report(&report, mode, limit);
    }
    Ok(report.failed == 0 && report.not_archived == 0)
}

fn limit(options: &BenchOptions) -> anyhow::Result<Limit> {
    if let Some(calls) = options.calls {
        return Ok(Limit::Calls(calls));
    }
    let seconds = options.duration.unwrap_or(DEFAULT_DURATION_SECS);
    anyhow::ensure!(
        seconds.is_finite() && seconds > 0.0 && seconds <= 86_400.0,
        "invalid --duration {seconds}: expected seconds greater than 0 and at most 86400"
    );
    Ok(Limit::Duration(Duration::from_secs_f64(seconds)))
}

/// Starts call `index` at its scheduled time `start + index / rate` until the limit, and
/// returns the number of calls started.
async fn run_open(
    workload: &Arc<Workload>,
    tracker: &Arc<Tracker>,
    started: Instant,
    limit: Limit,
    rate: u64,
    max_in_flight: u64,
) -> u64 {
    let permits = Arc::new(tokio::sync::Semaphore::new(max_in_flight as usize));
    let mut tasks = JoinSet::new();
    let mut index = 0;
    loop {
        let due = Duration::from_secs_f64(index as f64 / rate as f64);
        if !limit.admits(index, due) {
            break;
        }
        let scheduled = started + due;
        tokio::time::sleep_until(scheduled.into()).await;
        let Ok(permit) = permits.clone().acquire_owned().await else {
            break;
        };
        let workload = workload.clone();
        let tracker = tracker.clone();
        tasks.spawn(async move {
            let result = workload.call(index).await;
            tracker.returned(kind_of(index), result, scheduled);
            drop(permit);
        });
        while tasks.try_join_next().is_some() {}
        index += 1;
    }
    while tasks.join_next().await.is_some() {}
    index
}

/// Keeps `concurrency` calls in flight until the limit, and returns the number of calls
/// started.
async fn run_closed(
    workload: &Arc<Workload>,
    tracker: &Arc<Tracker>,
    started: Instant,
    limit: Limit,
    concurrency: u64,
) -> u64 {
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = JoinSet::new();
    for _ in 0..concurrency {
        let workload = workload.clone();
        let tracker = tracker.clone();
        let next = next.clone();
        tasks.spawn(async move {
            loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                let call_started = Instant::now();
                if !limit.admits(index, call_started - started) {
                    break;
                }
                let result = workload.call(index).await;
                tracker.returned(kind_of(index), result, call_started);
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    // Each worker took one index past the limit before it stopped.
    next.load(Ordering::Relaxed).saturating_sub(concurrency)
}

/// Reads receipts until the subscription ends or the task is aborted.
async fn watch_receipts(mut subscription: async_nats::Subscriber, tracker: Arc<Tracker>) {
    while let Some(message) = subscription.next().await {
        let arrived = Instant::now();
        match Receipt::decode(message.payload.as_ref()) {
            Ok(receipt) => {
                for event in receipt.events {
                    tracker.archived(event.event_id, arrived);
                }
            }
            Err(error) => {
                tracing::warn!(%error, subject = %message.subject, "undecodable receipt");
            }
        }
    }
}

fn histogram() -> anyhow::Result<Histogram<u64>> {
    Histogram::new_with_bounds(1, MAX_LATENCY_MICROS, 3).context("invalid histogram bounds")
}

/// Counts and latencies of one method.
#[derive(Debug)]
struct MethodStats {
    ok: u64,
    failed: u64,
    call_latency: Histogram<u64>,
    /// Error messages by status code, at most [`KEPT_ERROR_MESSAGES`] kept per code.
    errors: BTreeMap<String, (u64, Vec<String>)>,
}

/// What the calls and receipts have recorded so far.
#[derive(Debug)]
struct State {
    methods: BTreeMap<CallKind, MethodStats>,
    call_latency: Histogram<u64>,
    archive_latency: Histogram<u64>,
    /// Start of each returned call whose event has no receipt yet, by event id.
    waiting: HashMap<String, Instant>,
    /// Arrival of receipts for event ids that no call has returned yet. A receipt can
    /// overtake the response, and receipts of other traffic stay here unmatched.
    early: HashMap<String, Instant>,
    archived: u64,
    last_archived: Option<Instant>,
}

/// Shared record of a run, updated by the calls and by the receipt watcher.
#[derive(Debug)]
struct Tracker {
    state: Mutex<State>,
}

impl Tracker {
    fn new() -> anyhow::Result<Self> {
        let mut methods = BTreeMap::new();
        for kind in CallKind::ALL {
            methods.insert(
                kind,
                MethodStats {
                    ok: 0,
                    failed: 0,
                    call_latency: histogram()?,
                    errors: BTreeMap::new(),
                },
            );
        }
        Ok(Self {
            state: Mutex::new(State {
                methods,
                call_latency: histogram()?,
                archive_latency: histogram()?,
                waiting: HashMap::new(),
                early: HashMap::new(),
                archived: 0,
                last_archived: None,
            }),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Forgets receipts that arrived before the run, such as those of the set-up calls.
    fn reset(&self) {
        let mut state = self.lock();
        state.early.clear();
        state.waiting.clear();
    }

    /// Records the result of a call that started (or was scheduled) at `started`.
    fn returned(&self, kind: CallKind, result: Result<String, tonic::Status>, started: Instant) {
        let now = Instant::now();
        let latency = micros(now - started);
        let mut state = self.lock();
        let state = &mut *state;
        let method = state.methods.get_mut(&kind).expect("every kind has stats");
        match result {
            Ok(event_id) => {
                method.ok += 1;
                method.call_latency.saturating_record(latency);
                state.call_latency.saturating_record(latency);
                match state.early.remove(&event_id) {
                    Some(arrived) => {
                        state.archived += 1;
                        state
                            .archive_latency
                            .saturating_record(micros(arrived.saturating_duration_since(started)));
                    }
                    None => {
                        state.waiting.insert(event_id, started);
                    }
                }
            }
            Err(status) => {
                method.failed += 1;
                let code = format!("{:?}", status.code());
                let (count, messages) = method.errors.entry(code).or_default();
                *count += 1;
                if messages.len() < KEPT_ERROR_MESSAGES {
                    messages.push(status.message().to_owned());
                }
            }
        }
    }

    /// Records a receipt for `event_id` that arrived at `arrived`. Receipts sent again for
    /// duplicates count once.
    fn archived(&self, event_id: String, arrived: Instant) {
        let mut state = self.lock();
        match state.waiting.remove(&event_id) {
            Some(started) => {
                state.archived += 1;
                state.last_archived = Some(arrived);
                state
                    .archive_latency
                    .saturating_record(micros(arrived - started));
            }
            None => {
                state.last_archived = Some(arrived);
                state.early.entry(event_id).or_insert(arrived);
            }
        }
    }

    fn pending(&self) -> usize {
        self.lock().waiting.len()
    }

    fn report(&self, started: Instant, calls_done: Duration) -> Report {
        let state = self.lock();
        let ok = state.methods.values().map(|method| method.ok).sum();
        let failed = state.methods.values().map(|method| method.failed).sum();
        let archive_done = state.last_archived.map_or(Duration::ZERO, |last| {
            last.saturating_duration_since(started)
        });
        Report {
            ok,
            failed,
            calls_seconds: calls_done.as_secs_f64(),
            archived: state.archived,
            not_archived: state.waiting.len() as u64,
            archive_seconds: archive_done.as_secs_f64(),
            call_latency: Percentiles::of(&state.call_latency),
            archive_latency: Percentiles::of(&state.archive_latency),
            methods: state
                .methods
                .iter()
                .map(|(kind, method)| MethodReport {
                    name: kind.name(),
                    ok: method.ok,
                    failed: method.failed,
                    call_latency: Percentiles::of(&method.call_latency),
                    errors: method
                        .errors
                        .iter()
                        .map(|(code, (count, messages))| {
                            (code.clone(), *count, messages.first().cloned())
                        })
                        .collect(),
                })
                .collect(),
        }
    }
}

fn micros(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros()).unwrap_or(u64::MAX)
}

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Copy, serde::Serialize)]
struct Percentiles {
    p50: f64,
    p90: f64,
    p99: f64,
    max: f64,
}

impl Percentiles {
    fn of(histogram: &Histogram<u64>) -> Self {
        let millis = |micros: u64| micros as f64 / 1000.0;
        if histogram.is_empty() {
            return Self {
                p50: 0.0,
                p90: 0.0,
                p99: 0.0,
                max: 0.0,
            };
        }
        Self {
            p50: millis(histogram.value_at_quantile(0.50)),
            p90: millis(histogram.value_at_quantile(0.90)),
            p99: millis(histogram.value_at_quantile(0.99)),
            max: millis(histogram.max()),
        }
    }
}

#[derive(Debug)]
struct MethodReport {
    name: &'static str,
    ok: u64,
    failed: u64,
    call_latency: Percentiles,
    /// Status code, count and the first message.
    errors: Vec<(String, u64, Option<String>)>,
}

#[derive(Debug)]
struct Report {
    ok: u64,
    failed: u64,
    /// Seconds from the first call's start to the last call's return.
    calls_seconds: f64,
    archived: u64,
    not_archived: u64,
    /// Seconds from the first call's start to the last receipt.
    archive_seconds: f64,
    call_latency: Percentiles,
    archive_latency: Percentiles,
    methods: Vec<MethodReport>,
}

fn per_second(count: u64, seconds: f64) -> f64 {
    if seconds > 0.0 {
        count as f64 / seconds
    } else {
        0.0
    }
}

fn describe(mode: Mode, limit: Limit) -> String {
    let mode = match mode {
        Mode::Open { rate, .. } => format!("open loop at {rate} calls/s"),
        Mode::Closed { concurrency } => format!("closed loop with {concurrency} calls in flight"),
    };
    match limit {
        Limit::Calls(calls) => format!("{mode}, {calls} calls"),
        Limit::Duration(duration) => format!("{mode} for {:.1} s", duration.as_secs_f64()),
    }
}

fn print_report(report: &Report, mode: Mode, limit: Limit) {
    out!("bench: {}", describe(mode, limit));
    out!(
        "calls     {} ok, {} failed in {:.2} s: {:.0} calls/s",
        report.ok,
        report.failed,
        report.calls_seconds,
        per_second(report.ok, report.calls_seconds)
    );
    out!(
        "archived  {} of {} in {:.2} s: {:.0} events/s; {} without a receipt",
        report.archived,
        report.ok,
        report.archive_seconds,
        per_second(report.archived, report.archive_seconds),
        report.not_archived
    );
    out!();
    out!(
        "{:<30} {:>9} {:>9} {:>9} {:>9}",
        "latency (ms)",
        "p50",
        "p90",
        "p99",
        "max"
    );
    for (label, percentiles) in [
        ("call", report.call_latency),
        ("call to archived", report.archive_latency),
    ] {
        out!(
            "{label:<30} {:>9.2} {:>9.2} {:>9.2} {:>9.2}",
            percentiles.p50,
            percentiles.p90,
            percentiles.p99,
            percentiles.max
        );
    }
    out!();
    out!(
        "{:<30} {:>9} {:>9} {:>9} {:>9}",
        "call latency by method (ms)",
        "ok",
        "failed",
        "p50",
        "p99"
    );
    for method in &report.methods {
        out!(
            "{:<30} {:>9} {:>9} {:>9.2} {:>9.2}",
            method.name,
            method.ok,
            method.failed,
            method.call_latency.p50,
            method.call_latency.p99
        );
    }
    for method in &report.methods {
        for (code, count, message) in &method.errors {
            out!(
                "error: {} failed {count} times with {code}, for example: {}",
                method.name,
                message.as_deref().unwrap_or("")
            );
        }
    }
}

fn report_json(report: &Report, mode: Mode, limit: Limit) -> serde_json::Value {
    let (rate, concurrency) = match mode {
        Mode::Open { rate, .. } => (Some(rate), None),
        Mode::Closed { concurrency } => (None, Some(concurrency)),
    };
    let (calls_limit, duration_limit) = match limit {
        Limit::Calls(calls) => (Some(calls), None),
        Limit::Duration(duration) => (None, Some(duration.as_secs_f64())),
    };
    let methods: Vec<serde_json::Value> = report
        .methods
        .iter()
        .map(|method| {
            let errors: Vec<serde_json::Value> = method
                .errors
                .iter()
                .map(|(code, count, message)| {
                    serde_json::json!({"code": code, "count": count, "example": message})
                })
                .collect();
            serde_json::json!({
                "method": method.name,
                "ok": method.ok,
                "failed": method.failed,
                "call_latency_ms": method.call_latency,
                "errors": errors,
            })
        })
        .collect();
    serde_json::json!({
        "mode": if rate.is_some() { "open" } else { "closed" },
        "rate": rate,
        "concurrency": concurrency,
        "calls_limit": calls_limit,
        "duration_limit_secs": duration_limit,
        "calls_ok": report.ok,
        "calls_failed": report.failed,
        "calls_seconds": report.calls_seconds,
        "calls_per_second": per_second(report.ok, report.calls_seconds),
        "archived": report.archived,
        "not_archived": report.not_archived,
        "archive_seconds": report.archive_seconds,
        "archived_per_second": per_second(report.archived, report.archive_seconds),
        "call_latency_ms": report.call_latency,
        "archive_latency_ms": report.archive_latency,
        "methods": methods,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tracker() -> Tracker {
        Tracker::new().unwrap()
    }

    #[test]
    fn receipt_after_response_is_matched() {
        let tracker = tracker();
        let started = Instant::now();

        tracker.returned(CallKind::ReviseDraft, Ok("event-1".to_owned()), started);
        tracker.archived("event-1".to_owned(), started + Duration::from_millis(4));
        let report = tracker.report(started, Duration::from_secs(1));

        assert_eq!(report.ok, 1);
        assert_eq!(report.archived, 1);
        assert_eq!(report.not_archived, 0);
        assert!((report.archive_latency.p50 - 4.0).abs() < 0.01);
    }

    #[test]
    fn receipt_before_response_is_matched() {
        let tracker = tracker();
        let started = Instant::now();

        tracker.archived("event-1".to_owned(), started + Duration::from_millis(3));
        tracker.returned(CallKind::CreateDraft, Ok("event-1".to_owned()), started);
        let report = tracker.report(started, Duration::from_secs(1));

        assert_eq!(report.archived, 1);
        assert_eq!(report.not_archived, 0);
        assert!((report.archive_latency.max - 3.0).abs() < 0.01);
    }

    #[test]
    fn duplicate_receipt_counts_once() {
        let tracker = tracker();
        let started = Instant::now();

        tracker.returned(CallKind::PlanMeeting, Ok("event-1".to_owned()), started);
        tracker.archived("event-1".to_owned(), started + Duration::from_millis(2));
        tracker.archived("event-1".to_owned(), started + Duration::from_millis(9));
        let report = tracker.report(started, Duration::from_secs(1));

        assert_eq!(report.archived, 1);
        assert!((report.archive_latency.max - 2.0).abs() < 0.01);
    }

    #[test]
    fn missing_receipt_is_reported() {
        let tracker = tracker();
        let started = Instant::now();

        tracker.returned(CallKind::RecordProgress, Ok("event-1".to_owned()), started);
        let report = tracker.report(started, Duration::from_secs(1));

        assert_eq!(report.archived, 0);
        assert_eq!(report.not_archived, 1);
    }

    #[test]
    fn failed_call_keeps_code_and_message() {
        let tracker = tracker();
        let status = tonic::Status::invalid_argument("title: must not be empty");

        tracker.returned(CallKind::CreateDraft, Err(status), Instant::now());
        let report = tracker.report(Instant::now(), Duration::from_secs(1));
        let method = &report.methods[0];

        assert_eq!(report.failed, 1);
        assert_eq!(method.name, "document.CreateDraft");
        assert_eq!(
            method.errors,
            [(
                "InvalidArgument".to_owned(),
                1,
                Some("title: must not be empty".to_owned())
            )]
        );
    }

    #[test]
    fn limit_by_calls_and_by_duration() {
        let calls = Limit::Calls(3);
        let duration = Limit::Duration(Duration::from_secs(2));

        assert!(calls.admits(2, Duration::from_secs(100)));
        assert!(!calls.admits(3, Duration::ZERO));
        assert!(duration.admits(1_000_000, Duration::from_millis(1999)));
        assert!(!duration.admits(0, Duration::from_secs(2)));
    }
}
