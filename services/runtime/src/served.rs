//! Tower layer of the gRPC server that rejects a call to a service this port does not serve
//! with `UNIMPLEMENTED` and a message naming the services it does serve. Every service has
//! its own port, and tonic's own rejection of such a call carries no message, which leaves a
//! caller that dialled the wrong port guessing.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tower::{Layer, Service};

/// Wraps every gRPC service of a server in [`Served`].
#[derive(Debug, Clone)]
pub struct ServedLayer {
    services: Arc<[String]>,
}

impl ServedLayer {
    /// Creates a layer for a port that serves the services with the full names `services`.
    pub fn new<'a>(services: impl IntoIterator<Item = &'a str>) -> Self {
        let mut services: Vec<String> = services.into_iter().map(str::to_owned).collect();
        services.sort();
        Self {
            services: services.into(),
        }
    }
}

impl<S> Layer<S> for ServedLayer {
    type Service = Served<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Served {
            inner,
            services: self.services.clone(),
        }
    }
}

/// The service that [`ServedLayer`] builds.
#[derive(Debug, Clone)]
pub struct Served<S> {
    inner: S,
    services: Arc<[String]>,
}

impl<S, B, R> Service<http::Request<B>> for Served<S>
where
    S: Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    R: Default + Send + 'static,
{
    type Response = http::Response<R>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, context: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(context)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        // A gRPC method path is `/<package>.<Service>/<Method>`.
        let service = request
            .uri()
            .path()
            .trim_start_matches('/')
            .split('/')
            .next()
            .unwrap_or_default();
        if self.services.iter().any(|served| served == service) {
            return Box::pin(self.inner.call(request));
        }
        let status = tonic::Status::unimplemented(format!(
            "service {service:?} is not served on this port, which serves {}; each trace \
             service listens on a port of its own",
            self.services.join(", ")
        ));
        Box::pin(std::future::ready(Ok(status.into_http::<R>())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::convert::Infallible;

    use tower::ServiceExt;

    /// Returns an inner service that replies to every call with an empty 200 response.
    fn answered() -> impl Service<
        http::Request<()>,
        Response = http::Response<String>,
        Error = Infallible,
        Future = std::future::Ready<Result<http::Response<String>, Infallible>>,
    > + Clone {
        tower::service_fn(|_request: http::Request<()>| {
            std::future::ready(Ok(http::Response::new(String::new())))
        })
    }

    fn call(path: &str) -> http::Request<()> {
        http::Request::builder().uri(path).body(()).unwrap()
    }

    #[tokio::test]
    async fn served_service_reaches_inner() {
        let layer = ServedLayer::new(["trace.document.v1.DocumentService"]);
        let response = layer
            .layer(answered())
            .oneshot(call("/trace.document.v1.DocumentService/GetDocument"))
            .await
            .unwrap();
        assert_eq!(response.headers().get("grpc-status"), None);
    }

    #[tokio::test]
    async fn other_service_names_this_ports_services() {
        let layer =
            ServedLayer::new(["trace.document.v1.DocumentService", "grpc.health.v1.Health"]);
        let response = layer
            .layer(answered())
            .oneshot(call("/trace.archive.v1.ArchiveService/VerifyChain"))
            .await
            .unwrap();
        let status = tonic::Status::from_header_map(response.headers()).unwrap();
        assert_eq!(status.code(), tonic::Code::Unimplemented);
        assert_eq!(
            status.message(),
            "service \"trace.archive.v1.ArchiveService\" is not served on this port, which \
             serves grpc.health.v1.Health, trace.document.v1.DocumentService; each trace \
             service listens on a port of its own"
        );
    }
}
