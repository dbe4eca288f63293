//! Tower layer of the gRPC server: a server span per call following the OpenTelemetry RPC
//! semantic conventions, with its parent taken from an incoming W3C `traceparent`, and the
//! request counter and latency histogram of [`Metrics`].

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use tower::{Layer, Service};
use tracing::Instrument;

use crate::metrics::Metrics;

/// Method paths that get metrics but no span, because probes and tools call them often and
/// their spans would bury the calls of users.
const UNTRACED_PREFIXES: &[&str] = &["/grpc.health.v1.Health/", "/grpc.reflection."];

/// Full method path of the call (`/package.Service/Method`), which the layer stores in the
/// request extensions for interceptors.
#[derive(Debug, Clone)]
pub struct RpcMethod(pub String);

/// Wraps every gRPC service of a server in [`GrpcTelemetry`].
#[derive(Debug, Clone)]
pub struct GrpcTelemetryLayer {
    metrics: Metrics,
}

impl GrpcTelemetryLayer {
    pub fn new(metrics: Metrics) -> Self {
        Self { metrics }
    }
}

impl<S> Layer<S> for GrpcTelemetryLayer {
    type Service = GrpcTelemetry<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GrpcTelemetry {
            inner,
            metrics: self.metrics.clone(),
        }
    }
}

/// The service that [`GrpcTelemetryLayer`] builds.
#[derive(Debug, Clone)]
pub struct GrpcTelemetry<S> {
    inner: S,
    metrics: Metrics,
}

impl<S, B, R> Service<http::Request<B>> for GrpcTelemetry<S>
where
    S: Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, context: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(context)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        let started = Instant::now();
        let method = request.uri().path().to_owned();
        request.extensions_mut().insert(RpcMethod(method.clone()));
        let span = if UNTRACED_PREFIXES
            .iter()
            .any(|prefix| method.starts_with(prefix))
        {
            tracing::Span::none()
        } else {
            server_span(&method, request.headers())
        };
        // The interceptors of tonic run inside `call`, so entering the span here lets the
        // authenticator read the server span's context.
        let future = span.in_scope(|| self.inner.call(request));
        let metrics = self.metrics.clone();
        Box::pin(async move {
            let result = future.instrument(span.clone()).await;
            let code = match &result {
                Ok(response) => status_code(response.headers()),
                // The transport failed before a status existed; gRPC reports that as UNKNOWN.
                Err(_) => 2,
            };
            let name = code_name(code);
            span.record("rpc.grpc.status_code", code);
            if is_server_error(code) {
                span.record("otel.status_code", "ERROR");
            }
            metrics.record_request(&method, name, started.elapsed());
            if code == PERMISSION_DENIED {
                metrics.record_denied(&method, "permission_denied");
            }
            result
        })
    }
}

const PERMISSION_DENIED: i64 = 7;

/// Starts the server span of a call to `path` (`/package.Service/Method`).
fn server_span(path: &str, headers: &http::HeaderMap) -> tracing::Span {
    let (service, method) = path
        .trim_start_matches('/')
        .split_once('/')
        .unwrap_or((path, ""));
    let span = tracing::info_span!(
        "grpc server",
        otel.name = %path.trim_start_matches('/'),
        otel.kind = "server",
        otel.status_code = tracing::field::Empty,
        rpc.system = "grpc",
        rpc.service = %service,
        rpc.method = %method,
        rpc.grpc.status_code = tracing::field::Empty,
    );
    crate::propagation::set_remote_parent(&span, crate::propagation::extract_http(headers));
    span
}

/// Reads `grpc-status` from the response headers. Tonic puts it there for calls that fail
/// before a message is sent (a trailers-only response). A response without it is taken as
/// `OK`.
// NOTE: an error that a streaming call sends in its trailers after some messages is counted as
// OK, because this layer does not wait for the end of the body.
fn status_code(headers: &http::HeaderMap) -> i64 {
    headers
        .get("grpc-status")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse().ok())
        .unwrap_or(0)
}

/// Returns the canonical name of a gRPC status code, as the `code` metric attribute.
fn code_name(code: i64) -> &'static str {
    const NAMES: [&str; 17] = [
        "OK",
        "CANCELLED",
        "UNKNOWN",
        "INVALID_ARGUMENT",
        "DEADLINE_EXCEEDED",
        "NOT_FOUND",
        "ALREADY_EXISTS",
        "PERMISSION_DENIED",
        "RESOURCE_EXHAUSTED",
        "FAILED_PRECONDITION",
        "ABORTED",
        "OUT_OF_RANGE",
        "UNIMPLEMENTED",
        "INTERNAL",
        "UNAVAILABLE",
        "DATA_LOSS",
        "UNAUTHENTICATED",
    ];
    usize::try_from(code)
        .ok()
        .and_then(|index| NAMES.get(index).copied())
        .unwrap_or("UNKNOWN")
}

/// Returns true for the codes that mark a server span as failed in the OpenTelemetry gRPC
/// conventions: UNKNOWN, DEADLINE_EXCEEDED, UNIMPLEMENTED, INTERNAL, UNAVAILABLE and
/// DATA_LOSS. Errors caused by the client leave the span unset.
fn is_server_error(code: i64) -> bool {
    matches!(code, 2 | 4 | 12 | 13 | 14 | 15)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_codes_have_canonical_names() {
        assert_eq!(code_name(0), "OK");
        assert_eq!(code_name(3), "INVALID_ARGUMENT");
        assert_eq!(code_name(16), "UNAUTHENTICATED");
        assert_eq!(code_name(17), "UNKNOWN");
        assert_eq!(code_name(-1), "UNKNOWN");
    }

    #[test]
    fn status_is_read_from_headers() {
        let mut headers = http::HeaderMap::new();
        assert_eq!(status_code(&headers), 0);
        headers.insert("grpc-status", "5".parse().unwrap());
        assert_eq!(status_code(&headers), 5);
        headers.insert("grpc-status", "five".parse().unwrap());
        assert_eq!(status_code(&headers), 0);
    }

    #[test]
    fn only_server_faults_fail_the_span() {
        assert!(is_server_error(13));
        assert!(!is_server_error(3));
        assert!(!is_server_error(16));
    }
}
