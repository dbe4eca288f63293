//! Trace events for rejected calls. A tower layer around the gRPC server watches every
//! response. A call that ends in `UNAUTHENTICATED` or `PERMISSION_DENIED` becomes a
//! `trace.<service>.access.denied` event in the outbox, so denials reach the archive like
//! any other trace. Handlers that already recorded a denial in their own domain event
//! mark the status with [`RECORDED_HEADER`], and the layer leaves those alone.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::sync::Semaphore;
use tonic::Code;
use tonic::metadata::MetadataMap;
use tower::{Layer, Service};
use trace_proto::common::v1::{AccessDenied, Confidentiality};

use crate::ServiceResult;
use crate::auth::Authenticator;
use crate::context::{CallContext, Principal};
use crate::event::{self, EventSpec, pack};
use crate::outbox::Outbox;

/// Status metadata key naming the event that already records a denial.
pub const RECORDED_HEADER: &str = "x-trace-denial-event-id";

/// User id recorded as the actor of a call without a valid token.
pub const UNAUTHENTICATED_ACTOR: &str = "unauthenticated";

/// Maximum number of denials being written at once; more are dropped with a warning, so a
/// flood of bad calls cannot queue unbounded work.
const MAX_IN_FLIGHT: usize = 64;

/// Writes denial events for one service; cheap to clone.
#[derive(Debug, Clone)]
pub struct DenialRecorder {
    service: &'static str,
    outbox: Outbox,
    authenticator: Authenticator,
    permits: Arc<Semaphore>,
}

impl DenialRecorder {
    pub fn new(service: &'static str, outbox: Outbox, authenticator: Authenticator) -> Self {
        Self {
            service,
            outbox,
            authenticator,
            permits: Arc::new(Semaphore::new(MAX_IN_FLIGHT)),
        }
    }

    /// Returns the layer that records the denials of every call it wraps.
    pub fn layer(&self) -> DenialLayer {
        DenialLayer {
            recorder: self.clone(),
        }
    }

    /// Records one denial in the background.
    fn record(&self, method: String, metadata: MetadataMap, status: &tonic::Status) {
        let Ok(permit) = self.permits.clone().try_acquire_owned() else {
            tracing::warn!(%method, "too many denials at once, one is not recorded");
            return;
        };
        let recorder = self.clone();
        let denial = AccessDenied {
            method,
            code: code_name(status.code()).to_owned(),
            reason: status.message().to_owned(),
        };
        tokio::spawn(async move {
            let _permit = permit;
            if let Err(error) = recorder.write(&denial, &metadata).await {
                tracing::error!(
                    method = %denial.method,
                    error = format!("{error:#}"),
                    "failed to record a denied call"
                );
            }
        });
    }

    async fn write(&self, denial: &AccessDenied, metadata: &MetadataMap) -> anyhow::Result<()> {
        // Only a token that passes verification names the actor; the claims of a rejected
        // token are not trusted.
        let context = match self.authenticator.context(metadata) {
            Ok(context) => context,
            Err(_) => anonymous(),
        };
        let event_id = record_access_denied(&self.outbox, self.service, &context, denial).await?;
        tracing::info!(
            method = %denial.method,
            code = %denial.code,
            user_id = %context.principal.user_id,
            %event_id,
            "denied call recorded"
        );
        Ok(())
    }
}

/// Writes `denial` as a `trace.<service>.access.denied` event by the caller of `context`, in
/// its own transaction, and returns the event id. The denial layer uses it, and so do
/// handlers that deny a read of a record that does not exist.
pub async fn record_access_denied(
    outbox: &Outbox,
    service: &'static str,
    context: &CallContext,
    denial: &AccessDenied,
) -> ServiceResult<String> {
    let spec = EventSpec {
        entity_type: "access",
        entity_id: uuid::Uuid::now_v7().to_string(),
        entity_version: 1,
        action: "denied",
        confidentiality: Confidentiality::Internal,
        payload: pack(denial),
    };
    let envelope = event::envelope(service, context, outbox.clock().as_ref(), spec);
    let txn = crate::db::begin_write(outbox.db()).await?;
    outbox.stage(&txn, &envelope).await?;
    txn.commit().await?;
    outbox.notify();
    Ok(envelope.event_id)
}

fn anonymous() -> CallContext {
    let mut context = CallContext::system("unknown");
    context.principal = Principal {
        user_id: UNAUTHENTICATED_ACTOR.to_owned(),
        display_name: String::new(),
        department: String::new(),
        roles: Vec::new(),
    };
    context
}

fn code_name(code: Code) -> &'static str {
    match code {
        Code::Unauthenticated => "UNAUTHENTICATED",
        Code::PermissionDenied => "PERMISSION_DENIED",
        _ => "OTHER",
    }
}

/// Returns the denial status of a response, unless a handler already recorded it.
fn unrecorded_denial(headers: &http::HeaderMap) -> Option<tonic::Status> {
    if headers.contains_key(RECORDED_HEADER) {
        return None;
    }
    let status = tonic::Status::from_header_map(headers)?;
    matches!(
        status.code(),
        Code::Unauthenticated | Code::PermissionDenied
    )
    .then_some(status)
}

/// Tower layer of [`DenialRecorder`].
#[derive(Debug, Clone)]
pub struct DenialLayer {
    recorder: DenialRecorder,
}

impl<S> Layer<S> for DenialLayer {
    type Service = DenialService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        DenialService {
            inner,
            recorder: self.recorder.clone(),
        }
    }
}

/// Service of [`DenialLayer`].
#[derive(Debug, Clone)]
pub struct DenialService<S> {
    inner: S,
    recorder: DenialRecorder,
}

impl<S, B, R> Service<http::Request<B>> for DenialService<S>
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

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let method = request.uri().path().to_owned();
        let metadata = MetadataMap::from_headers(request.headers().clone());
        let recorder = self.recorder.clone();
        let response = self.inner.call(request);
        Box::pin(async move {
            let response = response.await?;
            if let Some(status) = unrecorded_denial(response.headers()) {
                recorder.record(method, metadata, &status);
            }
            Ok(response)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(status: tonic::Status) -> http::HeaderMap {
        status.into_http::<()>().headers().clone()
    }

    #[test]
    fn denials_are_found_in_response_headers() {
        let denied = unrecorded_denial(&headers(tonic::Status::permission_denied("no")));
        assert_eq!(
            denied.map(|status| status.code()),
            Some(Code::PermissionDenied)
        );
        let unauthenticated = unrecorded_denial(&headers(tonic::Status::unauthenticated("x")));
        assert_eq!(
            unauthenticated.map(|status| status.code()),
            Some(Code::Unauthenticated)
        );
    }

    #[test]
    fn other_codes_are_not_denials() {
        assert!(unrecorded_denial(&headers(tonic::Status::not_found("x"))).is_none());
        assert!(unrecorded_denial(&http::HeaderMap::new()).is_none());
    }

    #[test]
    fn recorded_denials_are_skipped() {
        let mut status = tonic::Status::permission_denied("no");
        status
            .metadata_mut()
            .insert(RECORDED_HEADER, "0190a000".parse().unwrap());
        assert!(unrecorded_denial(&headers(status)).is_none());
    }
}
