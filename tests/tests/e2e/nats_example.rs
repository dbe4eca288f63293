//! The example server configuration in `deploy/nats/nats-server.conf`, run as one local
//! server with its client TLS block enabled (`verify: true`) and fresh NKeys in place of the
//! example ones. The archive and the document service connect over mutual TLS with their
//! own users, and a document event goes all the way to the archive and back as a receipt,
//! so the permissions listed there are enough. The document user may not publish another
//! service's events, and a caller without a client certificate does not get in.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use tokio::sync::Mutex;
use trace_proto::common::v1::Confidentiality;
use trace_proto::document::v1::CreateDraftRequest;
use trace_proto::event::v1::outbox_service_client::OutboxServiceClient;
use trace_proto::event::v1::{DeliveryState, GetEventStatusRequest};
use trace_runtime::config::NatsSettings;

use crate::stack::*;

/// Users of the example configuration, in the order it lists them.
const USERS: [&str; 6] = [
    "document",
    "meeting",
    "project",
    "worklog",
    "inspection",
    "archive",
];

/// Paths of the test CA, the server's certificate and one client certificate.
struct Pki {
    ca_file: String,
    server_cert: String,
    server_key: String,
    client_cert: String,
    client_key: String,
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write a test file");
    path.display().to_string()
}

fn pki(dir: &Path) -> Pki {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let server_key = KeyPair::generate().unwrap();
    let server_cert = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
        .unwrap()
        .signed_by(&server_key, &issuer)
        .unwrap();
    let client_key = KeyPair::generate().unwrap();
    let client_cert = CertificateParams::new(vec!["trace-service".to_owned()])
        .unwrap()
        .signed_by(&client_key, &issuer)
        .unwrap();
    Pki {
        ca_file: write(dir, "ca.pem", &ca_cert.pem()),
        server_cert: write(dir, "server.pem", &server_cert.pem()),
        server_key: write(dir, "server-key.pem", &server_key.serialize_pem()),
        client_cert: write(dir, "client.pem", &client_cert.pem()),
        client_key: write(dir, "client-key.pem", &client_key.serialize_pem()),
    }
}

/// Returns the example configuration made local: this port and store, no cluster routes
/// (they name other hosts), the TLS block enabled with the test PKI, and `public_keys` in
/// place of the example users' keys, in the order of [`USERS`].
fn local_configuration(port: u16, store: &Path, pki: &Pki, public_keys: &[String]) -> String {
    let example_path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy/nats/nats-server.conf");
    let example = std::fs::read_to_string(&example_path).expect("read the example");

    let mut lines = Vec::new();
    let mut skipping_cluster = false;
    let mut keys = public_keys.iter();
    for line in example.lines() {
        let trimmed = line.trim_start();
        if skipping_cluster {
            if line == "}" {
                skipping_cluster = false;
            }
            continue;
        }
        if line.starts_with("cluster {") {
            skipping_cluster = true;
            continue;
        }
        let replaced = if trimmed.starts_with("server_name:") {
            "server_name: trace-test".to_owned()
        } else if trimmed.starts_with("listen:") {
            format!("listen: 127.0.0.1:{port}")
        } else if trimmed.starts_with("http:") {
            continue;
        } else if trimmed.starts_with("store_dir:") {
            format!("  store_dir: \"{}\"", store.display())
        } else if trimmed.starts_with("max_file_store:") {
            "  max_file_store: 1GB".to_owned()
        } else if trimmed.starts_with("nkey: U") && keys.len() > 0 {
            let key = keys.next().expect("a key per user");
            format!("        nkey: {key}")
        } else {
            line.to_owned()
        };
        lines.push(replaced);
    }
    assert_eq!(keys.len(), 0, "the example lists fewer users than expected");
    let text = lines.join("\n");

    // The client TLS block is commented out in the example. Enable it with the test PKI.
    let commented = "# tls {\n#   cert_file: \"/etc/nats/tls/server.crt\"\n#   key_file: \"/etc/nats/tls/server.key\"\n#   ca_file: \"/etc/nats/tls/ca.crt\"\n#   verify: true\n#   timeout: 2\n# }";
    assert!(
        text.contains(commented),
        "the example's client TLS block changed"
    );
    let enabled = format!(
        "tls {{\n  cert_file: \"{}\"\n  key_file: \"{}\"\n  ca_file: \"{}\"\n  verify: true\n  timeout: 2\n}}",
        pki.server_cert, pki.server_key, pki.ca_file
    );
    text.replacen(commented, &enabled, 1)
}

fn tls_settings(settings: &mut NatsSettings, pki: &Pki, seed_file: String) {
    settings.nkey_seed_file = Some(seed_file);
    settings.require_tls = true;
    settings.tls_ca_file = Some(pki.ca_file.clone());
    settings.tls_cert_file = Some(pki.client_cert.clone());
    settings.tls_key_file = Some(pki.client_key.clone());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn example_configuration_carries_events_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path());
    let users: Vec<nkeys::KeyPair> = USERS.iter().map(|_| nkeys::KeyPair::new_user()).collect();
    let public_keys: Vec<String> = users.iter().map(nkeys::KeyPair::public_key).collect();
    let seed_file = |name: &str| {
        let index = USERS.iter().position(|user| *user == name).unwrap();
        write(
            dir.path(),
            &format!("{name}.nk"),
            &users[index].seed().unwrap(),
        )
    };

    let port = free_port();
    let config = local_configuration(port, &dir.path().join("nats"), &pki, &public_keys);
    let config_file = write(dir.path(), "nats.conf", &config);
    let test_output = Command::new(nats_binary())
        .args(["-t", "-c", &config_file])
        .output()
        .expect("run nats-server -t");
    assert!(
        test_output.status.success(),
        "nats-server rejected the configuration: {}",
        String::from_utf8_lossy(&test_output.stderr)
    );
    let _server = ConfiguredServer::start(Path::new(&config_file), port);
    let url = format!("tls://127.0.0.1:{port}");

    let archive_seed = seed_file("archive");
    let archive = start_archive_with(&url, dir.path(), |config| {
        tls_settings(&mut config.service.nats, &pki, archive_seed);
    })
    .await;
    let document_seed = seed_file("document");
    let document = start_document_with(&url, dir.path(), |config| {
        tls_settings(&mut config.service.nats, &pki, document_seed.clone());
    })
    .await;

    let mut client = document_client(&document.address).await;
    let drafted = client
        .create_draft(DRAFTER.request(CreateDraftRequest {
            title: "TLS 與權限測試".to_owned(),
            category: "REPORT".to_owned(),
            department: "admin-office".to_owned(),
            confidentiality: Confidentiality::Internal as i32,
            content: b"content".to_vec(),
            media_type: "text/plain".to_owned(),
        }))
        .await
        .unwrap()
        .into_inner();
    wait_until_archived(
        &archive.address,
        std::slice::from_ref(&drafted.event_id),
        Duration::from_secs(30),
    )
    .await;

    // The document service learns that the event is archived, by receipt or receipt query.
    let mut outbox = OutboxServiceClient::connect(document.address.clone())
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let request = DRAFTER.request(GetEventStatusRequest {
            event_id: drafted.event_id.clone(),
        });
        let status = outbox.get_event_status(request).await.unwrap().into_inner();
        if status.state == DeliveryState::Archived as i32 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no receipt reached the document service"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The document user may neither publish a meeting event nor read the meeting service's
    // receipts: the server reports a violation for each.
    let violations = Arc::new(Mutex::new(Vec::new()));
    let seen = violations.clone();
    let document_user = users[0].seed().unwrap();
    let connection = async_nats::ConnectOptions::with_nkey(document_user.clone())
        .require_tls(true)
        .add_root_certificates(PathBuf::from(&pki.ca_file))
        .add_client_certificate(
            PathBuf::from(&pki.client_cert),
            PathBuf::from(&pki.client_key),
        )
        .event_callback(move |event| {
            let seen = seen.clone();
            async move {
                if let async_nats::Event::ServerError(error) = event {
                    seen.lock().await.push(error.to_string());
                }
            }
        })
        .connect(&url)
        .await
        .expect("connect as the document user");
    connection
        .publish("trace.meeting.meeting.planned", "forged".into())
        .await
        .unwrap();
    let _receipts = connection.subscribe("receipt.meeting").await.unwrap();
    connection.flush().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let reported = violations.lock().await.join("\n").to_lowercase();
        let publish = reported.contains("permissions violation for publish");
        let subscribe = reported.contains("permissions violation for subscription");
        if publish && subscribe {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "both permissions violations were not reported: {:?}",
            violations.lock().await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Without a client certificate the TLS handshake fails, and plaintext is refused too.
    let without_certificate = async_nats::ConnectOptions::with_nkey(document_user.clone())
        .require_tls(true)
        .add_root_certificates(PathBuf::from(&pki.ca_file))
        .connection_timeout(Duration::from_secs(5))
        .connect(&url)
        .await;
    assert!(without_certificate.is_err());
    let plaintext = async_nats::ConnectOptions::with_nkey(document_user)
        .connection_timeout(Duration::from_secs(5))
        .connect(format!("nats://127.0.0.1:{port}"))
        .await;
    assert!(plaintext.is_err());

    document.stop().await;
    archive.stop().await;
}
