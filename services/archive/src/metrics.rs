//! Metric instruments of the archive, and the task that refreshes its gauges from the
//! database and the broker. Names follow [`trace_runtime::metrics`], and every data point
//! carries `service = "archive"`.

use std::sync::LazyLock;
use std::time::Duration;

use async_nats::jetstream;
use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Gauge, Histogram};
use sea_orm::{DatabaseConnection, EntityTrait, QueryOrder};
use tokio_util::sync::CancellationToken;

use crate::entity::{chain_head, checkpoint};

/// How often [`report_gauges`] refreshes the gauges.
pub const GAUGE_INTERVAL: Duration = Duration::from_secs(15);

/// Instruments of the archive, created from the global meter provider on first use.
pub struct ArchiveMetrics {
    service: [KeyValue; 1],
    append_duration: Histogram<f64>,
    redelivered: Counter<u64>,
    held_messages: Counter<u64>,
    ledger_entries: Gauge<u64>,
    consumer_pending: Gauge<u64>,
    verification_success: Gauge<f64>,
    verification_failure: Gauge<f64>,
    verified_sequence: Gauge<u64>,
    backup_success: Gauge<f64>,
    checkpoint_time: Gauge<f64>,
}

/// Returns the archive's instruments. The first call must come after
/// [`trace_runtime::telemetry::init`], because instruments created earlier stay no-ops.
pub fn get() -> &'static ArchiveMetrics {
    static METRICS: LazyLock<ArchiveMetrics> = LazyLock::new(ArchiveMetrics::new);
    &METRICS
}

impl ArchiveMetrics {
    fn new() -> Self {
        let meter = trace_runtime::metrics::meter();
        Self {
            service: [KeyValue::new("service", "archive")],
            append_duration: meter
                .f64_histogram("trace.archive.append.duration")
                .with_unit("s")
                .with_description("Duration of one append transaction, which holds one batch")
                .with_boundaries(trace_runtime::metrics::LATENCY_BUCKETS.to_vec())
                .build(),
            redelivered: meter
                .u64_counter("trace.archive.consumer.redelivered_messages")
                .with_unit("{message}")
                .with_description("Messages the broker delivered to the archive more than once")
                .build(),
            held_messages: meter
                .u64_counter("trace.archive.consumer.held_messages")
                .with_unit("{message}")
                .with_description(
                    "Messages returned to the broker because their entity's previous event was \
                     not archived yet",
                )
                .build(),
            ledger_entries: meter
                .u64_gauge("trace.archive.ledger.entries")
                .with_unit("{entry}")
                .with_description("Entries in the ledger, which is the chain head sequence")
                .build(),
            consumer_pending: meter
                .u64_gauge("trace.archive.consumer.pending_messages")
                .with_unit("{message}")
                .with_description("Stream messages not yet delivered or not yet acknowledged")
                .build(),
            verification_success: meter
                .f64_gauge("trace.archive.verification.last_success_timestamp")
                .with_unit("s")
                .with_description("End of the last successful verification, Unix time")
                .build(),
            verification_failure: meter
                .f64_gauge("trace.archive.verification.last_failure_timestamp")
                .with_unit("s")
                .with_description("End of the last failed verification, Unix time; 0 if none")
                .build(),
            verified_sequence: meter
                .u64_gauge("trace.archive.verification.last_verified_sequence")
                .with_unit("{entry}")
                .with_description("Sequence up to which the last successful verification checked")
                .build(),
            backup_success: meter
                .f64_gauge("trace.archive.backup.last_success_timestamp")
                .with_unit("s")
                .with_description("End of the last successful backup, Unix time")
                .build(),
            checkpoint_time: meter
                .f64_gauge("trace.archive.checkpoint.last_timestamp")
                .with_unit("s")
                .with_description("Creation time of the last signed checkpoint, Unix time")
                .build(),
        }
    }

    /// Records the duration of one append transaction.
    pub fn record_append(&self, duration: Duration) {
        self.append_duration
            .record(duration.as_secs_f64(), &self.service);
    }

    /// Counts messages that the broker delivered again.
    pub fn record_redelivered(&self, messages: u64) {
        if messages > 0 {
            self.redelivered.add(messages, &self.service);
        }
    }

    /// Counts messages held back until their entity's previous event is archived.
    pub fn record_held(&self, messages: u64) {
        if messages > 0 {
            self.held_messages.add(messages, &self.service);
        }
    }

    /// Records the end of a verification at `now_micros`. A success also records the last
    /// sequence it checked.
    pub fn record_verification(&self, ok: bool, to_sequence: i64, now_micros: i64) {
        let now = unix_seconds(now_micros);
        if ok {
            self.verification_success.record(now, &self.service);
            self.verified_sequence
                .record(u64::try_from(to_sequence).unwrap_or(0), &self.service);
        } else {
            self.verification_failure.record(now, &self.service);
        }
    }

    /// Records the end of a successful backup at `now_micros`.
    pub fn record_backup(&self, now_micros: i64) {
        self.backup_success
            .record(unix_seconds(now_micros), &self.service);
    }
}

fn unix_seconds(micros: i64) -> f64 {
    micros as f64 / 1_000_000.0
}

/// Refreshes the ledger, checkpoint and consumer gauges every [`GAUGE_INTERVAL`] until
/// `shutdown` is cancelled. The ledger and checkpoint values come from the database, so every
/// archive replica reports the same ones.
///
/// The verification gauges start at 0, so that a failure after a restart is newer than the
/// recorded success and the alert on failed verifications fires.
// NOTE: the backup gauge has no value after a restart until this replica completes a backup,
// because no backup time is read from the backup location here.
pub async fn report_gauges(
    db: DatabaseConnection,
    jetstream: jetstream::Context,
    stream_name: String,
    consumer_name: String,
    shutdown: CancellationToken,
) {
    let metrics = get();
    metrics.verification_success.record(0.0, &metrics.service);
    metrics.verification_failure.record(0.0, &metrics.service);
    loop {
        if let Err(error) = refresh_ledger(&db, metrics).await {
            tracing::warn!(%error, "failed to read the ledger for metrics");
        }
        match consumer_pending(&jetstream, &stream_name, &consumer_name).await {
            Ok(pending) => metrics.consumer_pending.record(pending, &metrics.service),
            Err(error) => tracing::debug!(
                error = format!("{error:#}"),
                "failed to read the archive consumer for metrics"
            ),
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(GAUGE_INTERVAL) => {}
        }
    }
}

async fn refresh_ledger(
    db: &DatabaseConnection,
    metrics: &ArchiveMetrics,
) -> Result<(), sea_orm::DbErr> {
    let entries = chain_head::Entity::find_by_id(1)
        .one(db)
        .await?
        .map_or(0, |head| head.sequence);
    metrics
        .ledger_entries
        .record(u64::try_from(entries).unwrap_or(0), &metrics.service);
    let latest = checkpoint::Entity::find()
        .order_by_desc(checkpoint::Column::Id)
        .one(db)
        .await?;
    if let Some(latest) = latest {
        metrics
            .checkpoint_time
            .record(unix_seconds(latest.created_at), &metrics.service);
    }
    Ok(())
}

/// Returns the stream messages that the archive consumer has not finished: those not yet
/// delivered plus those delivered and not yet acknowledged.
async fn consumer_pending(
    jetstream: &jetstream::Context,
    stream_name: &str,
    consumer_name: &str,
) -> anyhow::Result<u64> {
    let stream = jetstream.get_stream(stream_name).await?;
    let mut consumer: jetstream::consumer::PullConsumer = stream
        .get_consumer(consumer_name)
        .await
        .map_err(|error| anyhow::anyhow!("{error}"))?;
    let info = consumer.info().await?;
    Ok(info.num_pending + info.num_ack_pending as u64)
}
