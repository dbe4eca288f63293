//! Tower layer of the gRPC server that bounds the calls in flight across all connections.
//!
//! `grpc_max_concurrent_streams` bounds the calls of one connection; a caller that opens
//! many connections is bounded only by this layer. A call past the bound fails at once with
//! `RESOURCE_EXHAUSTED` before its request message is read, and the caller retries with
//! backoff. A call keeps its permit until its response body has been handed to HTTP/2 in
//! frames of at most 64 KiB, which flow control paces, so a slow reader cannot pile up
//! large responses past the bound. Health checks are never rejected, so that a busy pod
//! does not fail its probes and get restarted. Reflection calls take permits from a small
//! bound of their own, so that an operator's grpcurl can still describe a busy service and
//! reflection streams cannot hold the permits of the services' own calls.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tower::{Layer, Service};

/// Method paths that the limit never rejects.
const EXEMPT_PREFIXES: &[&str] = &["/grpc.health.v1.Health/"];

/// Method paths of the reflection services, whose calls take permits from
/// [`REFLECTION_CALLS_IN_FLIGHT`] instead of `grpc_max_calls_in_flight`.
const REFLECTION_PREFIXES: &[&str] = &[
    "/grpc.reflection.v1.ServerReflection/",
    "/grpc.reflection.v1alpha.ServerReflection/",
];

/// Reflection calls that may run at once, besides `grpc_max_calls_in_flight` other calls:
/// room for the tools of several operators at a time.
pub const REFLECTION_CALLS_IN_FLIGHT: usize = 8;

/// One bound on calls in flight: its permits, and the calls and limit that a rejection
/// names.
#[derive(Debug, Clone)]
struct Bound {
    permits: Arc<Semaphore>,
    limit: usize,
    /// The calls that the bound counts, as a rejection names them.
    calls: &'static str,
    /// The limit, as a rejection names it.
    setting: &'static str,
}

impl Bound {
    fn new(limit: usize, calls: &'static str, setting: &'static str) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(limit)),
            limit,
            calls,
            setting,
        }
    }
}

/// Wraps every gRPC service of a server in [`CallLimit`], all sharing one bound for the
/// services' calls and one for reflection calls.
#[derive(Debug, Clone)]
pub struct CallLimitLayer {
    calls: Bound,
    reflection: Bound,
}

impl CallLimitLayer {
    /// Creates a layer that lets at most `limit` calls run at once, and besides them at most
    /// [`REFLECTION_CALLS_IN_FLIGHT`] reflection calls.
    pub fn new(limit: usize) -> Self {
        Self::with_reflection_limit(limit, REFLECTION_CALLS_IN_FLIGHT)
    }

    fn with_reflection_limit(limit: usize, reflection_limit: usize) -> Self {
        Self {
            calls: Bound::new(limit, "calls", "its grpc_max_calls_in_flight"),
            reflection: Bound::new(
                reflection_limit,
                "reflection calls",
                "its fixed limit of reflection calls",
            ),
        }
    }
}

impl<S> Layer<S> for CallLimitLayer {
    type Service = CallLimit<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CallLimit {
            inner,
            calls: self.calls.clone(),
            reflection: self.reflection.clone(),
        }
    }
}

/// The service that [`CallLimitLayer`] builds.
#[derive(Debug, Clone)]
pub struct CallLimit<S> {
    inner: S,
    calls: Bound,
    reflection: Bound,
}

impl<S> CallLimit<S> {
    /// Returns the bound that a call of method `path` counts against, `None` for a call
    /// that is never rejected.
    fn bound(&self, path: &str) -> Option<&Bound> {
        let starts = |prefixes: &[&str]| prefixes.iter().any(|prefix| path.starts_with(prefix));
        if starts(EXEMPT_PREFIXES) {
            None
        } else if starts(REFLECTION_PREFIXES) {
            Some(&self.reflection)
        } else {
            Some(&self.calls)
        }
    }
}

impl<S, B, R> Service<http::Request<B>> for CallLimit<S>
where
    S: Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    R: Body<Data = Bytes> + Default + Unpin + Send + 'static,
{
    type Response = http::Response<PermitBody<R>>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, context: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(context)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let path = request.uri().path();
        let Some(bound) = self.bound(path) else {
            let future = self.inner.call(request);
            return Box::pin(async move {
                let response = future.await?;
                Ok(response.map(|body| PermitBody::new(body, None)))
            });
        };
        match bound.permits.clone().try_acquire_owned() {
            Ok(permit) => {
                let future = self.inner.call(request);
                Box::pin(async move {
                    let response = future.await?;
                    // tonic encodes the response message in the body, so the permit stays
                    // with the body until the body ends or the client leaves.
                    Ok(response.map(|body| PermitBody::new(body, Some(permit))))
                })
            }
            Err(_) => {
                // Like other rejected calls, at debug level, because an overload would
                // otherwise flood the log. The telemetry layer counts every rejection.
                tracing::debug!(
                    method = %path,
                    limit = bound.limit,
                    calls = bound.calls,
                    "rejected a call past its bound of calls in flight"
                );
                let status = tonic::Status::resource_exhausted(format!(
                    "too many {} in flight: the service is handling {}, {}. Retry with \
                     backoff.",
                    bound.calls, bound.limit, bound.setting
                ));
                let response = status.into_http::<R>();
                Box::pin(std::future::ready(Ok(
                    response.map(|body| PermitBody::new(body, None))
                )))
            }
        }
    }
}

/// Maximum size in bytes of a data frame that [`PermitBody`] passes on. hyper 1.13 reads a
/// frame before it waits for window and hands the frame whole to h2 once the stream may send
/// one byte (`PipeToSendStream` in its `proto/h2/mod.rs`), and h2 buffers what the client
/// has not yet accepted. Smaller frames make hyper wait for flow control between them, so
/// that all but about two frames of a large message are still in this body, under its
/// permit, while a slow client reads it.
const FRAME_BYTES: usize = 64 * 1024;

/// A response body that holds its call's permit until the body ends or is dropped, and
/// passes its data on in frames of at most [`FRAME_BYTES`].
#[derive(Debug)]
pub struct PermitBody<R> {
    body: R,
    /// Data of the inner body's last frame that is not yet passed on.
    rest: Bytes,
    permit: Option<OwnedSemaphorePermit>,
}

impl<R> PermitBody<R> {
    fn new(body: R, permit: Option<OwnedSemaphorePermit>) -> Self {
        Self {
            body,
            rest: Bytes::new(),
            permit,
        }
    }

    /// Returns the next frame of at most [`FRAME_BYTES`] from `data`, keeping the rest.
    fn slice(&mut self, mut data: Bytes) -> Frame<Bytes> {
        if data.len() > FRAME_BYTES {
            self.rest = data.split_off(FRAME_BYTES);
        }
        Frame::data(data)
    }
}

impl<R: Body<Data = Bytes> + Unpin> Body for PermitBody<R> {
    type Data = Bytes;
    type Error = R::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, R::Error>>> {
        if !self.rest.is_empty() {
            let rest = std::mem::take(&mut self.rest);
            return Poll::Ready(Some(Ok(self.slice(rest))));
        }
        let polled = match Pin::new(&mut self.body).poll_frame(context) {
            Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                Ok(data) => Some(Ok(self.slice(data))),
                Err(frame) => Some(Ok(frame)),
            },
            Poll::Ready(other) => other,
            Poll::Pending => return Poll::Pending,
        };
        if polled.is_none() {
            self.permit = None;
        }
        Poll::Ready(polled)
    }

    fn is_end_stream(&self) -> bool {
        self.rest.is_empty() && self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        let inner = self.body.size_hint();
        let rest = self.rest.len() as u64;
        let mut hint = SizeHint::new();
        hint.set_lower(inner.lower() + rest);
        if let Some(upper) = inner.upper() {
            hint.set_upper(upper + rest);
        }
        hint
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use tokio::sync::oneshot;
    use tower::ServiceExt;

    use super::*;

    type GatedService =
        tower::util::BoxCloneService<http::Request<()>, http::Response<String>, Infallible>;

    /// Builds a service whose first call responds only when the test sends on `release`, and
    /// whose other calls respond at once.
    fn gated_service(release: oneshot::Receiver<()>) -> GatedService {
        let release = Arc::new(std::sync::Mutex::new(Some(release)));
        GatedService::new(tower::service_fn(move |request: http::Request<()>| {
            let gate = release.lock().unwrap().take();
            let path = request.uri().path().to_owned();
            async move {
                if let Some(gate) = gate {
                    gate.await.unwrap();
                }
                Ok(http::Response::new(format!("answered {path}")))
            }
        }))
    }

    /// Calls method `path` through `service` and waits for the response.
    async fn call(
        service: &mut CallLimit<GatedService>,
        path: &str,
    ) -> http::Response<PermitBody<String>> {
        let request = http::Request::builder().uri(path).body(()).unwrap();
        service.ready().await.unwrap().call(request).await.unwrap()
    }

    fn grpc_status<R>(response: &http::Response<R>) -> Option<&str> {
        response
            .headers()
            .get("grpc-status")
            .map(|value| value.to_str().unwrap())
    }

    /// Reads the next frame of `body`, or `None` at its end.
    async fn next_frame(body: &mut PermitBody<String>) -> Option<Frame<bytes::Bytes>> {
        std::future::poll_fn(|context| Pin::new(&mut *body).poll_frame(context))
            .await
            .map(|frame| frame.unwrap())
    }

    #[tokio::test]
    async fn call_limit_rejects_calls_until_one_finishes() {
        const GET: &str = "/trace.document.v1.DocumentService/GetDocument";
        const LIST: &str = "/trace.document.v1.DocumentService/ListDocuments";
        const HEALTH: &str = "/grpc.health.v1.Health/Check";
        let (release, gate) = oneshot::channel();
        let layer = CallLimitLayer::new(1);
        let mut service = layer.layer(gated_service(gate));

        let request = http::Request::builder().uri(GET).body(()).unwrap();
        let first = service.ready().await.unwrap().call(request);
        // The call takes the only permit as it starts and holds it until it is released.
        assert_eq!(layer.calls.permits.available_permits(), 0);
        let first = tokio::spawn(first);

        let rejected = call(&mut service, LIST).await;
        assert_eq!(grpc_status(&rejected), Some("8"), "RESOURCE_EXHAUSTED");
        let message = rejected.headers().get("grpc-message").unwrap();
        assert!(
            message
                .to_str()
                .unwrap()
                .contains("grpc_max_calls_in_flight"),
            "{message:?}"
        );

        let probe = call(&mut service, HEALTH).await;
        assert_eq!(grpc_status(&probe), None);
        assert_eq!(probe.body().body, format!("answered {HEALTH}"));

        release.send(()).unwrap();
        let mut first = first.await.unwrap().unwrap();
        assert_eq!(first.body().body, format!("answered {GET}"));
        // The handler has finished, but its response body is still unsent.
        assert_eq!(layer.calls.permits.available_permits(), 0);
        let still_rejected = call(&mut service, LIST).await;
        assert_eq!(grpc_status(&still_rejected), Some("8"));

        let data = next_frame(first.body_mut()).await.unwrap();
        assert_eq!(data.into_data().unwrap(), format!("answered {GET}"));
        assert_eq!(layer.calls.permits.available_permits(), 0);
        assert!(next_frame(first.body_mut()).await.is_none());
        assert_eq!(layer.calls.permits.available_permits(), 1);

        let after = call(&mut service, LIST).await;
        assert_eq!(grpc_status(&after), None);
        assert_eq!(after.body().body, format!("answered {LIST}"));
        assert_eq!(layer.calls.permits.available_permits(), 0);
        drop(after);
        assert_eq!(layer.calls.permits.available_permits(), 1);
    }

    #[tokio::test]
    async fn reflection_has_own_call_bound() {
        const GET: &str = "/trace.document.v1.DocumentService/GetDocument";
        const LIST: &str = "/trace.document.v1.DocumentService/ListDocuments";
        const REFLECTION: &str = "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo";
        const REFLECTION_V1: &str = "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo";
        let (release, gate) = oneshot::channel();
        let layer = CallLimitLayer::with_reflection_limit(1, 1);
        let mut service = layer.layer(gated_service(gate));

        // A service call holds the only permit of grpc_max_calls_in_flight.
        let request = http::Request::builder().uri(GET).body(()).unwrap();
        let first = tokio::spawn(service.ready().await.unwrap().call(request));
        assert_eq!(layer.calls.permits.available_permits(), 0);

        // A reflection call still runs, on the reflection bound.
        let described = call(&mut service, REFLECTION).await;
        assert_eq!(grpc_status(&described), None);
        assert_eq!(described.body().body, format!("answered {REFLECTION}"));
        assert_eq!(layer.reflection.permits.available_permits(), 0);

        // While its response is unread, a second reflection call is rejected, naming the
        // reflection bound, in either version of the service.
        let rejected = call(&mut service, REFLECTION_V1).await;
        assert_eq!(grpc_status(&rejected), Some("8"), "RESOURCE_EXHAUSTED");
        let message = rejected.headers().get("grpc-message").unwrap();
        let message = message.to_str().unwrap().replace("%20", " ");
        assert!(
            message.starts_with("too many reflection calls in flight"),
            "{message}"
        );
        assert!(message.contains("limit of reflection calls"), "{message}");

        // The reflection call's permit does not free a permit for service calls.
        drop(described);
        assert_eq!(layer.reflection.permits.available_permits(), 1);
        assert_eq!(grpc_status(&call(&mut service, LIST).await), Some("8"));

        // Once the service call ends, service calls run again.
        release.send(()).unwrap();
        drop(first.await.unwrap().unwrap());
        assert_eq!(layer.calls.permits.available_permits(), 1);
        assert_eq!(grpc_status(&call(&mut service, LIST).await), None);
    }

    #[tokio::test]
    async fn permit_body_slices_large_data() {
        let permits = Arc::new(Semaphore::new(1));
        let permit = permits.clone().try_acquire_owned().unwrap();
        let message = "x".repeat(FRAME_BYTES * 2 + 10);
        let mut body = PermitBody::new(message.clone(), Some(permit));
        assert_eq!(body.size_hint().exact(), Some(message.len() as u64));

        let mut lengths = Vec::new();
        let mut received = Vec::new();
        while let Some(frame) = next_frame(&mut body).await {
            let data = frame.into_data().unwrap();
            lengths.push(data.len());
            received.extend_from_slice(&data);
            if !body.is_end_stream() {
                assert_eq!(permits.available_permits(), 0);
                assert_eq!(
                    body.size_hint().exact(),
                    Some((message.len() - received.len()) as u64)
                );
            }
        }

        assert_eq!(lengths, [FRAME_BYTES, FRAME_BYTES, 10]);
        assert_eq!(received, message.as_bytes());
        assert_eq!(permits.available_permits(), 1);
    }
}
