//! The logs of a service at debug level hold no bearer token, no key material and no
//! plaintext of confidential content, even when calls fail.

use std::process::{Command, Stdio};
use std::time::Duration;

use trace_proto::common::v1::Confidentiality;
use trace_proto::document::v1::{CreateDraftRequest, ReadContentRequest};
use trace_runtime::auth::{Claims, attach_token, mint_token};
use trace_runtime::config::AuthSettings;
use trace_tests::nats::NatsServer;

use crate::stack::*;

const CONTENT_MARKER: &str = "plaintext-marker-c41e 董事会决议";

fn token_for(user_id: &str) -> String {
    let claims = Claims {
        sub: user_id.to_owned(),
        name: String::new(),
        department: "admin-office".to_owned(),
        roles: vec!["employee".to_owned()],
        clearance: None,
    };
    mint_token(&AuthSettings::default(), &claims, Duration::from_secs(600)).expect("mint a token")
}

fn with_token<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    attach_token(&mut request, token).expect("token is valid metadata");
    request
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_hold_no_tokens_keys_or_confidential_content() {
    let nats = NatsServer::start().expect("start nats-server");
    let dir = tempfile::tempdir().unwrap();
    let key_hex = "5a".repeat(32);
    let key_file = dir.path().join("kek-1.hex");
    std::fs::write(&key_file, &key_hex).unwrap();
    let log_file = dir.path().join("document.log");

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("free port")
        .port();
    let address = format!("http://127.0.0.1:{port}");
    let log = std::fs::File::create(&log_file).unwrap();
    let mut child = Command::new(binary("trace-document"))
        .env("TRACE_GRPC_ADDR", format!("127.0.0.1:{port}"))
        .env("TRACE_DATABASE_URL", sqlite_url(dir.path(), "document"))
        .env(
            "TRACE_BLOB_STORE_URL",
            format!("file://{}", dir.path().join("blobs").display()),
        )
        .env("TRACE_NATS__URL", nats.url())
        .env("TRACE_LOG_FORMAT", "json")
        .env("RUST_LOG", "debug")
        .env("TRACE_ENCRYPTION__ACTIVE_KEY_ID", "kek-1")
        .env("TRACE_ENCRYPTION__KEY_FILES__KEK-1", &key_file)
        .env("TRACE_ENCRYPTION__ALLOW_DEVELOPMENT_KEY", "false")
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("start trace-document");
    wait_for_port(&address).await;

    let drafter_token = token_for(DRAFTER.user_id);
    let reader_token = token_for("wang.qiang");
    let mut client = document_client(&address).await;
    let created = client
        .create_draft(with_token(
            CreateDraftRequest {
                title: "Board minutes".to_owned(),
                category: "MINUTES".to_owned(),
                department: "admin-office".to_owned(),
                confidentiality: Confidentiality::Secret as i32,
                content: CONTENT_MARKER.as_bytes().to_vec(),
                media_type: "text/plain".to_owned(),
            },
            &drafter_token,
        ))
        .await
        .expect("create a secret draft")
        .into_inner();
    let document_id = created.document.unwrap().document_id;
    let read = |token: &str| {
        with_token(
            ReadContentRequest {
                access_request_id: String::new(),
                document_id: document_id.clone(),
                revision: 0,
            },
            token,
        )
    };
    let own = client.read_content(read(&drafter_token)).await.unwrap();
    assert_eq!(own.into_inner().content, CONTENT_MARKER.as_bytes());
    let denied = client.read_content(read(&reader_token)).await.unwrap_err();
    assert_eq!(denied.code(), tonic::Code::PermissionDenied);
    let forged = format!("{reader_token}x");
    let rejected = client.read_content(read(&forged)).await.unwrap_err();
    assert_eq!(rejected.code(), tonic::Code::Unauthenticated);

    // Let the denial recorder and the relay log their lines, then stop the service.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .stdout(Stdio::null())
        .status();
    let _ = child.wait();

    let logs = std::fs::read_to_string(&log_file).unwrap();
    assert!(
        logs.contains("content read denied"),
        "the log capture is empty or lacks the denial line:\n{logs}"
    );
    assert!(logs.contains("denied call recorded"), "{logs}");
    for (what, secret) in [
        ("the drafter's token", drafter_token.as_str()),
        ("the reader's token", reader_token.as_str()),
        ("the key", key_hex.as_str()),
        ("the confidential content", CONTENT_MARKER),
    ] {
        assert!(!logs.contains(secret), "the logs contain {what}");
    }
    // The token's signature part alone must not appear either.
    let signature = reader_token.rsplit('.').next().unwrap();
    assert!(
        !logs.contains(signature),
        "the logs contain a token signature"
    );
}
