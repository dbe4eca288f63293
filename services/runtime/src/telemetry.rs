//! Logging, tracing and metrics: readable text or JSON lines on stdout, and OTLP export of
//! spans and metrics when the standard `OTEL_EXPORTER_OTLP_ENDPOINT` variable (or its
//! `_TRACES_` or `_METRICS_` form) is set. The exporters read the other standard `OTEL_*`
//! variables themselves, for example `OTEL_METRIC_EXPORT_INTERVAL` (milliseconds, default
//! 60000) and `OTEL_EXPORTER_OTLP_HEADERS`.

use std::sync::atomic::{AtomicBool, Ordering};

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::config::LogFormat;

/// True once [`init`] installed a meter provider with an exporter.
static METRICS_ENABLED: AtomicBool = AtomicBool::new(false);

/// Returns true when metrics are exported, so that work done only to feed a gauge (such as
/// counting the outbox backlog) can be skipped otherwise.
pub fn metrics_enabled() -> bool {
    METRICS_ENABLED.load(Ordering::Relaxed)
}

/// Flushes exported spans and metrics when dropped; keep it alive until `main` returns.
#[derive(Debug)]
pub struct TelemetryGuard {
    tracer_provider: Option<SdkTracerProvider>,
    meter_provider: Option<SdkMeterProvider>,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(provider) = self.tracer_provider.take()
            && let Err(error) = provider.shutdown()
        {
            eprintln!("failed to flush spans: {error}");
        }
        if let Some(provider) = self.meter_provider.take()
            && let Err(error) = provider.shutdown()
        {
            eprintln!("failed to flush metrics: {error}");
        }
    }
}

/// Installs the global subscriber, the W3C trace context propagator and, when configured,
/// the OTLP span and metric exporters. `RUST_LOG` overrides `default_level` for the log
/// output only. Exported spans are those at INFO level and above, whatever the log level.
pub fn init(
    service: &str,
    format: LogFormat,
    default_level: &str,
) -> anyhow::Result<TelemetryGuard> {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(default_level))
        .map_err(|error| anyhow::anyhow!("invalid log level {default_level:?}: {error}"))?;
    let fmt_layer = match format {
        LogFormat::Text => tracing_subscriber::fmt::layer().with_target(false).boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .boxed(),
    };
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());

    let resource = Resource::builder()
        .with_service_name(format!("trace-{service}"))
        .build();
    let tracer_provider = otlp_tracer_provider(resource.clone())?;
    let otel_layer = tracer_provider.as_ref().map(|provider| {
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer(format!("trace-{service}")))
            .with_filter(LevelFilter::INFO)
    });
    let meter_provider = otlp_meter_provider(resource)?;
    if let Some(provider) = &meter_provider {
        opentelemetry::global::set_meter_provider(provider.clone());
        METRICS_ENABLED.store(true, Ordering::Relaxed);
    }

    tracing_subscriber::registry()
        .with(fmt_layer.with_filter(filter))
        .with(otel_layer)
        .try_init()
        .map_err(|error| anyhow::anyhow!("failed to install the log subscriber: {error}"))?;
    Ok(TelemetryGuard {
        tracer_provider,
        meter_provider,
    })
}

/// Returns true when one of `keys` is set to a non-empty value.
fn any_set(keys: &[&str]) -> bool {
    keys.iter()
        .any(|key| std::env::var_os(key).is_some_and(|value| !value.is_empty()))
}

fn otlp_tracer_provider(resource: Resource) -> anyhow::Result<Option<SdkTracerProvider>> {
    if !any_set(&[
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    ]) {
        return Ok(None);
    }
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .build()
        .map_err(|error| anyhow::anyhow!("failed to build the OTLP span exporter: {error}"))?;
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build();
    Ok(Some(provider))
}

fn otlp_meter_provider(resource: Resource) -> anyhow::Result<Option<SdkMeterProvider>> {
    if !any_set(&[
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
    ]) {
        return Ok(None);
    }
    let exporter = opentelemetry_otlp::MetricExporter::builder()
        .with_tonic()
        .build()
        .map_err(|error| anyhow::anyhow!("failed to build the OTLP metric exporter: {error}"))?;
    let reader = PeriodicReader::builder(exporter).build();
    let provider = SdkMeterProvider::builder()
        .with_reader(reader)
        .with_resource(resource)
        .build();
    Ok(Some(provider))
}
