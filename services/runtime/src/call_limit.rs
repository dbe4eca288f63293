//! Tower layer of the gRPC server that bounds the calls in flight across all connections.
//!
//! `grpc_max_concurrent_streams` bounds the calls of one connection; a caller that opens
//! many connections is bounded only by this layer. A call past the bound fails at once with
//! `RESOURCE_EXHAUSTED` before its request message is read, so an overload keeps neither
//! memory nor a queue in the service, and the caller retries with backoff. Health checks
//! are never rejected, so that a busy pod does not fail its probes and get restarted.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::sync::Semaphore;
use tower::{Layer, Service};

/// Method paths that the limit never rejects.
const EXEMPT_PREFIXES: &[&str] = &["/grpc.health.v1.Health/"];

/// Wraps every gRPC service of a server in [`CallLimit`], all sharing one bound.
#[derive(Debug, Clone)]
pub struct CallLimitLayer {
    permits: Arc<Semaphore>,
    limit: usize,
}

impl CallLimitLayer {
    /// Creates a layer that lets at most `limit` calls run at once.
    pub fn new(limit: usize) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(limit)),
            limit,
        }
    }
}

impl<S> Layer<S> for CallLimitLayer {
    type Service = CallLimit<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CallLimit {
            inner,
            permits: self.permits.clone(),
            limit: self.limit,
        }
    }
}

/// The service that [`CallLimitLayer`] builds.
#[derive(Debug, Clone)]
pub struct CallLimit<S> {
    inner: S,
    permits: Arc<Semaphore>,
    limit: usize,
}

impl<S, B, R> Service<http::Request<B>> for CallLimit<S>
where
    S: Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    R: Default + Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, context: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(context)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let path = request.uri().path();
        if EXEMPT_PREFIXES
            .iter()
            .any(|prefix| path.starts_with(prefix))
        {
            return Box::pin(self.inner.call(request));
        }
        // Every unary call's handler finishes before its response future does, so holding
        // the permit until then bounds the calls being handled.
        match self.permits.clone().try_acquire_owned() {
            Ok(permit) => {
                let future = self.inner.call(request);
                Box::pin(async move {
                    let response = future.await;
                    drop(permit);
                    response
                })
            }
            Err(_) => {
                let status = tonic::Status::resource_exhausted(format!(
                    "the service is handling {} calls, its grpc_max_calls_in_flight; retry \
                     with backoff",
                    self.limit
                ));
                Box::pin(std::future::ready(Ok(status.into_http())))
            }
        }
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
    async fn call(service: &mut CallLimit<GatedService>, path: &str) -> http::Response<String> {
        let request = http::Request::builder().uri(path).body(()).unwrap();
        service.ready().await.unwrap().call(request).await.unwrap()
    }

    fn grpc_status(response: &http::Response<String>) -> Option<&str> {
        response
            .headers()
            .get("grpc-status")
            .map(|value| value.to_str().unwrap())
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
        assert_eq!(layer.permits.available_permits(), 0);
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
        assert_eq!(probe.body(), &format!("answered {HEALTH}"));

        release.send(()).unwrap();
        let first = first.await.unwrap().unwrap();
        assert_eq!(first.body(), &format!("answered {GET}"));
        assert_eq!(layer.permits.available_permits(), 1);

        let after = call(&mut service, LIST).await;
        assert_eq!(grpc_status(&after), None);
        assert_eq!(after.body(), &format!("answered {LIST}"));
    }
}
