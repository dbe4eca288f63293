//! W3C trace context (`traceparent`, `tracestate`) between spans and the places that carry
//! it: gRPC request headers, outbox rows and NATS message headers. The global propagator that
//! [`crate::telemetry::init`] installs does the parsing and formatting.

use std::collections::HashMap;

use opentelemetry::Context;
use opentelemetry::propagation::{Extractor, Injector};
use opentelemetry::trace::TraceContextExt;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// Header name of the W3C trace parent.
pub const TRACEPARENT: &str = "traceparent";
/// Header name of the W3C trace state.
pub const TRACESTATE: &str = "tracestate";

struct HttpHeaders<'a>(&'a http::HeaderMap);

impl Extractor for HttpHeaders<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|value| value.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

struct NatsHeaders<'a>(&'a async_nats::HeaderMap);

impl Extractor for NatsHeaders<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(async_nats::HeaderValue::as_str)
    }

    fn keys(&self) -> Vec<&str> {
        self.0.iter().map(|(name, _)| name.as_ref()).collect()
    }
}

/// Trace context as text headers.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TraceHeaders {
    /// W3C `traceparent`; empty when there is no valid span context.
    pub traceparent: String,
    /// W3C `tracestate`; often empty.
    pub tracestate: String,
}

impl Injector for TraceHeaders {
    fn set(&mut self, key: &str, value: String) {
        match key {
            TRACEPARENT => self.traceparent = value,
            TRACESTATE => self.tracestate = value,
            _ => {}
        }
    }
}

/// Reads the remote parent from gRPC (HTTP/2) request headers. Returns an empty context when
/// the headers carry no valid `traceparent`.
pub fn extract_http(headers: &http::HeaderMap) -> Context {
    opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.extract(&HttpHeaders(headers))
    })
}

/// Reads the remote parent from NATS message headers, like [`extract_http`].
pub fn extract_nats(headers: Option<&async_nats::HeaderMap>) -> Context {
    match headers {
        Some(headers) => opentelemetry::global::get_text_map_propagator(|propagator| {
            propagator.extract(&NatsHeaders(headers))
        }),
        None => Context::new(),
    }
}

/// Reads the remote parent from stored `traceparent` and `tracestate` text.
pub fn extract_text(traceparent: &str, tracestate: &str) -> Context {
    let mut headers = HashMap::new();
    if !traceparent.is_empty() {
        headers.insert(TRACEPARENT.to_owned(), traceparent.to_owned());
    }
    if !tracestate.is_empty() {
        headers.insert(TRACESTATE.to_owned(), tracestate.to_owned());
    }
    opentelemetry::global::get_text_map_propagator(|propagator| propagator.extract(&headers))
}

/// Formats the context of `span` as headers. Returns `None` when the span has no valid span
/// context, which is the case when no OTLP exporter is configured.
pub fn headers_of(span: &tracing::Span) -> Option<TraceHeaders> {
    let context = span.context();
    if !context.span().span_context().is_valid() {
        return None;
    }
    let mut headers = TraceHeaders::default();
    opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.inject_context(&context, &mut headers);
    });
    (!headers.traceparent.is_empty()).then_some(headers)
}

/// Sets the parent of `span` to `parent` when it holds a valid remote span context, and
/// leaves `span` a root span otherwise.
pub fn set_remote_parent(span: &tracing::Span, parent: Context) {
    if parent.span().span_context().is_valid() {
        // Fails only when the span was already started or is disabled; either way the span
        // keeps its own trace, which is all a caller could do about it.
        let _ = span.set_parent(parent);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_sdk::propagation::TraceContextPropagator;

    const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn text_round_trips_through_headers() {
        opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
        let context = extract_text(PARENT, "vendor=1");
        let span_context = context.span().span_context().clone();
        assert!(span_context.is_valid());
        assert!(span_context.is_remote());
        assert_eq!(
            span_context.trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        let mut headers = TraceHeaders::default();
        opentelemetry::global::get_text_map_propagator(|propagator| {
            propagator.inject_context(&context, &mut headers);
        });
        assert_eq!(headers.traceparent, PARENT);
        assert_eq!(headers.tracestate, "vendor=1");
    }

    #[test]
    fn malformed_traceparent_gives_empty_context() {
        opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
        let mut headers = http::HeaderMap::new();
        headers.insert(TRACEPARENT, "00-not-a-trace-01".parse().unwrap());
        let context = extract_http(&headers);
        assert!(!context.span().span_context().is_valid());
    }

    #[test]
    fn nats_headers_are_read() {
        opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(TRACEPARENT, PARENT);
        let context = extract_nats(Some(&headers));
        assert_eq!(
            context.span().span_context().span_id().to_string(),
            "00f067aa0ba902b7"
        );
        assert!(!extract_nats(None).span().span_context().is_valid());
    }
}
