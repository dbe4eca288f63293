//! Metric instruments shared by every service. The names follow the OpenTelemetry style (dots,
//! a unit in `unit`); a Prometheus backend that ingests OTLP turns `trace.outbox.published`
//! into `trace_outbox_published_total` and a histogram in `s` into `..._seconds_bucket`.
//!
//! Instruments come from the global meter provider, which [`crate::telemetry::init`] installs
//! only when an OTLP endpoint is configured. Without one they are no-ops, so recording costs
//! a few branches.

use std::sync::Arc;
use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Gauge, Histogram, Meter};

/// Bucket boundaries in seconds for latency histograms; the SDK default suits milliseconds.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

/// Returns the meter of the trace services, from the global provider.
pub fn meter() -> Meter {
    opentelemetry::global::meter("trace")
}

/// Instruments of one service. Every data point carries a `service` attribute with the short
/// service name (`document`, `archive`, ...), which the dashboard and alerts group by.
/// Cheap to clone.
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Instruments>,
}

struct Instruments {
    service: KeyValue,
    requests: Counter<u64>,
    request_duration: Histogram<f64>,
    denied: Counter<u64>,
    published: Counter<u64>,
    publish_failures: Counter<u64>,
    pending_rows: Gauge<u64>,
    oldest_pending_age: Gauge<f64>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Metrics")
            .field("service", &self.inner.service.value)
            .finish_non_exhaustive()
    }
}

impl Metrics {
    /// Creates the instruments for `service` from the global meter provider.
    pub fn new(service: &str) -> Self {
        let meter = meter();
        let instruments = Instruments {
            service: KeyValue::new("service", service.to_owned()),
            requests: meter
                .u64_counter("trace.grpc.server.requests")
                .with_unit("{request}")
                .with_description("gRPC calls handled, by full method and status code")
                .build(),
            request_duration: meter
                .f64_histogram("trace.grpc.server.request.duration")
                .with_unit("s")
                .with_description("Server-side duration of gRPC calls until the response headers")
                .with_boundaries(LATENCY_BUCKETS.to_vec())
                .build(),
            denied: meter
                .u64_counter("trace.requests.denied")
                .with_unit("{request}")
                .with_description("Calls rejected for authentication or permission")
                .build(),
            published: meter
                .u64_counter("trace.outbox.published")
                .with_unit("{event}")
                .with_description("Outbox events published to JetStream and acknowledged")
                .build(),
            publish_failures: meter
                .u64_counter("trace.outbox.publish_failures")
                .with_unit("{event}")
                .with_description("Outbox publishes that failed and will be retried")
                .build(),
            pending_rows: meter
                .u64_gauge("trace.outbox.pending_rows")
                .with_unit("{row}")
                .with_description("Outbox rows without an archive receipt")
                .build(),
            oldest_pending_age: meter
                .f64_gauge("trace.outbox.oldest_pending_age")
                .with_unit("s")
                .with_description("Age of the oldest outbox row without an archive receipt")
                .build(),
        };
        Self {
            inner: Arc::new(instruments),
        }
    }

    /// Returns the `service` attribute that every data point of this service carries.
    pub fn service(&self) -> &KeyValue {
        &self.inner.service
    }

    /// Builds the attribute list of a data point: `service` followed by `extra`.
    pub fn attributes(&self, extra: impl IntoIterator<Item = KeyValue>) -> Vec<KeyValue> {
        let mut attributes = vec![self.inner.service.clone()];
        attributes.extend(extra);
        attributes
    }

    /// Records one handled gRPC call. `method` is the full method path
    /// (`/trace.document.v1.DocumentService/CreateDocument`) and `code` the gRPC status code
    /// name in upper snake case (`OK`, `NOT_FOUND`).
    pub fn record_request(&self, method: &str, code: &'static str, duration: Duration) {
        let method = KeyValue::new("method", method.to_owned());
        self.inner.requests.add(
            1,
            &self.attributes([method.clone(), KeyValue::new("code", code)]),
        );
        self.inner
            .request_duration
            .record(duration.as_secs_f64(), &self.attributes([method]));
    }

    /// Counts one call rejected for `reason` (a short snake case word such as
    /// `invalid_token` or `permission_denied`).
    pub fn record_denied(&self, method: &str, reason: &'static str) {
        self.inner.denied.add(
            1,
            &self.attributes([
                KeyValue::new("method", method.to_owned()),
                KeyValue::new("reason", reason),
            ]),
        );
    }

    /// Counts outbox publishes: `published` acknowledged by the broker and `failed` not.
    pub fn record_publishes(&self, published: u64, failed: u64) {
        let attributes = self.attributes([]);
        if published > 0 {
            self.inner.published.add(published, &attributes);
        }
        if failed > 0 {
            self.inner.publish_failures.add(failed, &attributes);
        }
    }

    /// Records the outbox backlog: rows without a receipt and the age of the oldest one.
    pub fn record_backlog(&self, pending_rows: u64, oldest_age: Duration) {
        let attributes = self.attributes([]);
        self.inner.pending_rows.record(pending_rows, &attributes);
        self.inner
            .oldest_pending_age
            .record(oldest_age.as_secs_f64(), &attributes);
    }
}
