//! OpenTelemetry export through the whole stack. The document service and the archive run as
//! child processes that export to an in-process OTLP collector. One call must be followable
//! from the caller's span to the archive's append span, and the request and outbox metrics
//! must arrive with their attributes. Child processes keep the global tracing subscriber out
//! of the test process.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fake_opentelemetry_collector::{ExportedMetric, ExportedSpan, FakeCollectorServer};
use trace_proto::common::v1::Confidentiality;
use trace_proto::document::v1::CreateDraftRequest;
use trace_tests::nats::NatsServer;

use crate::stack::*;

/// Trace id and span id of the caller's span, sent as `traceparent`.
const CALLER_TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN_ID: &str = "00f067aa0ba902b7";

const CREATE_DRAFT: &str = "trace.document.v1.DocumentService/CreateDraft";
const DRAFT_SUBJECT: &str = "trace.document.document.drafted";

/// A service binary running as a child process, killed on drop.
struct ServiceProcess {
    address: String,
    child: Child,
}

impl ServiceProcess {
    /// Starts the binary `binary_name` on a free port with its database in `dir`, exporting to `collector`.
    fn start(binary_name: &str, name: &str, nats_url: &str, dir: &Path, collector: &str) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("free port")
            .port();
        let child = Command::new(binary(binary_name))
            .env("TRACE_GRPC_ADDR", format!("127.0.0.1:{port}"))
            .env(
                "TRACE_DATABASE_URL",
                format!(
                    "sqlite://{}?mode=rwc",
                    dir.join(format!("{name}.db")).display()
                ),
            )
            .env(
                "TRACE_BLOB_STORE_URL",
                format!("file://{}", dir.join("blobs").join(name).display()),
            )
            .env("TRACE_NATS__URL", nats_url)
            .env("TRACE_OUTBOX__POLL_INTERVAL_MS", "50")
            .env("TRACE_LOG_LEVEL", "warn")
            .env("OTEL_EXPORTER_OTLP_ENDPOINT", collector)
            .env("OTEL_BSP_SCHEDULE_DELAY", "200")
            .env("OTEL_METRIC_EXPORT_INTERVAL", "300")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|error| panic!("start {binary_name}: {error}"));
        Self {
            address: format!("http://127.0.0.1:{port}"),
            child,
        }
    }
}

impl Drop for ServiceProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Collects spans until `done` holds for what arrived so far, or panics after `timeout`.
async fn spans_until(
    collector: &mut FakeCollectorServer,
    timeout: Duration,
    done: impl Fn(&[ExportedSpan]) -> bool,
) -> Vec<ExportedSpan> {
    let deadline = Instant::now() + timeout;
    let mut spans = Vec::new();
    while !done(&spans) {
        assert!(
            Instant::now() < deadline,
            "expected spans did not arrive within {timeout:?}; received: {:#?}",
            spans
                .iter()
                .map(|span: &ExportedSpan| (&span.name, &span.kind, &span.trace_id))
                .collect::<Vec<_>>()
        );
        spans.extend(
            collector
                .exported_spans(1, Duration::from_millis(200))
                .await,
        );
    }
    spans
}

/// Collects metric exports until `done` holds, or panics after `timeout`.
async fn metrics_until(
    collector: &mut FakeCollectorServer,
    timeout: Duration,
    done: impl Fn(&[ExportedMetric]) -> bool,
) -> Vec<ExportedMetric> {
    let deadline = Instant::now() + timeout;
    let mut exports = Vec::new();
    while !done(&exports) {
        assert!(
            Instant::now() < deadline,
            "expected metrics did not arrive within {timeout:?}; names received: {:?}",
            metric_names(&exports)
        );
        exports.extend(
            collector
                .exported_metrics(1, Duration::from_millis(200))
                .await,
        );
    }
    exports
}

fn metric_names(exports: &[ExportedMetric]) -> Vec<&str> {
    let mut names: Vec<&str> = exports
        .iter()
        .flat_map(|export| &export.metrics)
        .map(|metric| metric.name.as_str())
        .collect();
    names.sort_unstable();
    names.dedup();
    names
}

/// Returns the data points of the sum (counter) metric `name` as JSON, because the
/// collector's data point types are not exported.
fn sum_points(exports: &[ExportedMetric], name: &str) -> Vec<serde_json::Value> {
    exports
        .iter()
        .flat_map(|export| &export.metrics)
        .filter(|metric| metric.name == name)
        .map(|metric| serde_json::to_value(&metric.data).expect("metric data serializes"))
        .filter_map(|data| data["Sum"]["data_points"].as_array().cloned())
        .flatten()
        .collect()
}

/// Returns the text of the string attribute `key` of a data point, if it has one.
fn point_attribute<'a>(point: &'a serde_json::Value, key: &str) -> Option<&'a str> {
    point["attributes"][key].as_str().and_then(attribute_text)
}

/// Returns the value of a span or data point attribute. The collector stores attributes as
/// the debug text of the OTLP value, such as `Some(AnyValue { value: Some(IntValue(0)) })`.
fn attribute_text(debug: &str) -> Option<&str> {
    let start = debug.find("Value(")? + "Value(".len();
    let end = debug.rfind(")) })")?;
    let inner = debug.get(start..end)?;
    Some(inner.trim_matches('"'))
}

fn span_attribute<'a>(span: &'a ExportedSpan, key: &str) -> &'a str {
    span.attributes
        .get(key)
        .and_then(|value| attribute_text(value))
        .unwrap_or_else(|| {
            panic!(
                "span {} has no attribute {key}: {:?}",
                span.name, span.attributes
            )
        })
}

/// Returns the publish span of the event `event_id`.
fn publish_of<'a>(spans: &'a [ExportedSpan], event_id: &str) -> Option<&'a ExportedSpan> {
    spans.iter().find(|span| {
        span.kind == "SPAN_KIND_PRODUCER"
            && span
                .attributes
                .get("messaging.message.id")
                .and_then(|value| attribute_text(value))
                == Some(event_id)
    })
}

fn parent_of<'a>(spans: &'a [ExportedSpan], child: &ExportedSpan) -> Option<&'a ExportedSpan> {
    spans
        .iter()
        .find(|span| span.trace_id == child.trace_id && span.span_id == child.parent_span_id)
}

fn draft_request(title: &str) -> tonic::Request<CreateDraftRequest> {
    DRAFTER.request(CreateDraftRequest {
        title: title.to_owned(),
        category: "REPORT".to_owned(),
        department: "admin-office".to_owned(),
        confidentiality: Confidentiality::Internal as i32,
        content: format!("content of {title}").into_bytes(),
        media_type: "text/plain".to_owned(),
    })
}

fn find<'a>(spans: &'a [ExportedSpan], kind: &str, name: &str) -> Option<&'a ExportedSpan> {
    spans
        .iter()
        .find(|span| span.kind == kind && span.name == name && span.trace_id == CALLER_TRACE_ID)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_call_is_one_trace_to_the_archive() {
    let mut collector = FakeCollectorServer::start()
        .await
        .expect("start the OTLP collector");
    let endpoint = collector.endpoint();
    let nats = NatsServer::start().expect("start nats-server");
    let dir = tempfile::tempdir().unwrap();
    let archive = ServiceProcess::start(
        "trace-archive",
        "archive",
        &nats.url(),
        dir.path(),
        &endpoint,
    );
    let document = ServiceProcess::start(
        "trace-document",
        "document",
        &nats.url(),
        dir.path(),
        &endpoint,
    );

    let mut client = loop {
        match trace_proto::document::v1::document_service_client::DocumentServiceClient::connect(
            document.address.clone(),
        )
        .await
        {
            Ok(client) => break client,
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    };
    let mut request = draft_request("Traced draft");
    request.metadata_mut().insert(
        "traceparent",
        format!("00-{CALLER_TRACE_ID}-{CALLER_SPAN_ID}-01")
            .parse()
            .unwrap(),
    );
    let event_id = client
        .create_draft(request)
        .await
        .expect("create a draft")
        .into_inner()
        .event_id;
    let unauthenticated = client
        .create_draft(tonic::Request::new(
            draft_request("Anonymous draft").into_inner(),
        ))
        .await
        .expect_err("a call without a bearer token is rejected");
    assert_eq!(unauthenticated.code(), tonic::Code::Unauthenticated);
    // A call without a traceparent starts a trace in the server span, which the outbox row
    // and the publish span must continue.
    let untraced_event_id = client
        .create_draft(draft_request("Untraced draft"))
        .await
        .expect("create a draft without a traceparent")
        .into_inner()
        .event_id;
    wait_until_archived(
        &archive.address,
        &[event_id.clone(), untraced_event_id.clone()],
        Duration::from_secs(30),
    )
    .await;

    let publish_name = format!("publish {DRAFT_SUBJECT}");
    let process_name = format!("process {DRAFT_SUBJECT}");
    let spans = spans_until(&mut collector, Duration::from_secs(30), |spans| {
        find(spans, "SPAN_KIND_SERVER", CREATE_DRAFT).is_some()
            && find(spans, "SPAN_KIND_PRODUCER", &publish_name).is_some()
            && find(spans, "SPAN_KIND_CONSUMER", &process_name).is_some()
            && find(spans, "SPAN_KIND_INTERNAL", "archive append").is_some()
            && publish_of(spans, &untraced_event_id)
                .is_some_and(|publish| parent_of(spans, publish).is_some())
    })
    .await;
    let server = find(&spans, "SPAN_KIND_SERVER", CREATE_DRAFT).unwrap();
    let publish = find(&spans, "SPAN_KIND_PRODUCER", &publish_name).unwrap();
    let process = find(&spans, "SPAN_KIND_CONSUMER", &process_name).unwrap();
    let append = find(&spans, "SPAN_KIND_INTERNAL", "archive append").unwrap();

    assert_eq!(server.parent_span_id, CALLER_SPAN_ID);
    assert_eq!(publish.parent_span_id, server.span_id);
    assert_eq!(process.parent_span_id, publish.span_id);
    assert_eq!(append.parent_span_id, process.span_id);

    assert_eq!(span_attribute(server, "rpc.system"), "grpc");
    assert_eq!(
        span_attribute(server, "rpc.service"),
        "trace.document.v1.DocumentService"
    );
    assert_eq!(span_attribute(server, "rpc.method"), "CreateDraft");
    assert_eq!(span_attribute(server, "rpc.grpc.status_code"), "0");
    assert_eq!(span_attribute(publish, "messaging.system"), "nats");
    assert_eq!(
        span_attribute(publish, "messaging.destination.name"),
        DRAFT_SUBJECT
    );
    assert_eq!(span_attribute(publish, "messaging.message.id"), event_id);
    assert_eq!(span_attribute(process, "messaging.message.id"), event_id);
    assert_eq!(
        span_attribute(process, "messaging.operation.type"),
        "process"
    );

    let untraced_publish = publish_of(&spans, &untraced_event_id).unwrap();
    let untraced_server = parent_of(&spans, untraced_publish).unwrap();
    assert_ne!(untraced_publish.trace_id, CALLER_TRACE_ID);
    assert_eq!(untraced_server.kind, "SPAN_KIND_SERVER");
    assert_eq!(untraced_server.name, CREATE_DRAFT);
    assert_eq!(untraced_server.parent_span_id, "");

    let requests = "trace.grpc.server.requests";
    let published = "trace.outbox.published";
    let denied = "trace.requests.denied";
    let create_draft_path = format!("/{CREATE_DRAFT}");
    // Counters are cumulative, and an export taken between the two calls holds 1, so the
    // test waits for 2.
    let is_both_drafts = |point: &serde_json::Value| {
        point_attribute(point, "method") == Some(&create_draft_path)
            && point_attribute(point, "code") == Some("OK")
            && point["value"]["AsInt"] == 2
    };
    let is_document =
        |point: &serde_json::Value| point_attribute(point, "service") == Some("document");
    let is_missing_token = |point: &serde_json::Value| {
        point_attribute(point, "method") == Some(&create_draft_path)
            && point_attribute(point, "reason") == Some("missing_token")
    };
    // Each service exports on its own interval, so the archive's instruments can arrive
    // after the document service's counters.
    let expected_names = [
        "trace.grpc.server.request.duration",
        "trace.outbox.pending_rows",
        "trace.archive.append.duration",
        "trace.archive.ledger.entries",
    ];
    let exports = metrics_until(&mut collector, Duration::from_secs(30), |exports| {
        let names = metric_names(exports);
        sum_points(exports, requests).iter().any(is_both_drafts)
            && sum_points(exports, published).iter().any(is_document)
            && sum_points(exports, denied).iter().any(is_missing_token)
            && expected_names.iter().all(|name| names.contains(name))
    })
    .await;
    let request_point = sum_points(&exports, requests)
        .into_iter()
        .find(is_both_drafts)
        .unwrap();
    assert_eq!(point_attribute(&request_point, "service"), Some("document"));
    let publish_point = sum_points(&exports, published)
        .into_iter()
        .find(is_document)
        .unwrap();
    assert!(
        publish_point["value"]["AsInt"].as_i64() >= Some(1),
        "trace.outbox.published counted nothing: {publish_point}"
    );
    let denied_point = sum_points(&exports, denied)
        .into_iter()
        .find(is_missing_token)
        .unwrap();
    assert_eq!(point_attribute(&denied_point, "service"), Some("document"));
    assert_eq!(denied_point["value"]["AsInt"], 1);
    let names = metric_names(&exports);
    for expected in expected_names {
        assert!(
            names.contains(&expected),
            "{expected} missing from {names:?}"
        );
    }
}
