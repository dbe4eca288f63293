//! gRPC over TLS with client certificates: a caller with a certificate from the configured
//! CA gets through, and a caller without one, or over plaintext, does not.

use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};
use trace_proto::common::v1::Confidentiality;
use trace_proto::document::v1::CreateDraftRequest;
use trace_proto::document::v1::document_service_client::DocumentServiceClient;
use trace_runtime::config::TlsSettings;
use trace_tests::nats::NatsServer;

use crate::stack::*;

/// PEM files of a test CA, a server certificate for localhost and a client certificate.
struct Pki {
    ca: String,
    client_cert: String,
    client_key: String,
    settings: TlsSettings,
}

fn write(dir: &std::path::Path, name: &str, pem: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, pem).expect("write a PEM file");
    path.display().to_string()
}

fn pki(dir: &std::path::Path) -> Pki {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);

    let server_key = KeyPair::generate().unwrap();
    let server_cert = CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .signed_by(&server_key, &issuer)
        .unwrap();
    let client_key = KeyPair::generate().unwrap();
    let client_cert = CertificateParams::new(vec!["archive-exporter".to_owned()])
        .unwrap()
        .signed_by(&client_key, &issuer)
        .unwrap();

    let ca_file = write(dir, "ca.pem", &ca_cert.pem());
    Pki {
        ca: ca_cert.pem(),
        client_cert: client_cert.pem(),
        client_key: client_key.serialize_pem(),
        settings: TlsSettings {
            cert_file: write(dir, "server.pem", &server_cert.pem()),
            key_file: write(dir, "server-key.pem", &server_key.serialize_pem()),
            client_ca_file: Some(ca_file),
        },
    }
}

fn draft() -> CreateDraftRequest {
    CreateDraftRequest {
        title: "TLS check".to_owned(),
        category: "NOTICE".to_owned(),
        department: "admin-office".to_owned(),
        confidentiality: Confidentiality::Internal as i32,
        content: b"over tls".to_vec(),
        media_type: "text/plain".to_owned(),
    }
}

async fn tls_client(
    address: &str,
    pki: &Pki,
    with_certificate: bool,
) -> Result<DocumentServiceClient<Channel>, tonic::transport::Error> {
    let mut tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&pki.ca))
        .domain_name("localhost");
    if with_certificate {
        tls = tls.identity(Identity::from_pem(&pki.client_cert, &pki.client_key));
    }
    let https = address.replace("http://", "https://");
    let channel = Channel::from_shared(https)
        .expect("valid address")
        .tls_config(tls)?
        .connect()
        .await?;
    Ok(DocumentServiceClient::new(channel))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_requires_a_client_certificate() {
    let nats = NatsServer::start().expect("start nats-server");
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path());
    let settings = pki.settings.clone();
    let document = start_document_with(&nats.url(), dir.path(), |config| {
        config.service.tls = Some(settings);
    })
    .await;

    let mut client = tls_client(&document.address, &pki, true)
        .await
        .expect("connect with a client certificate");
    let created = client
        .create_draft(DRAFTER.request(draft()))
        .await
        .expect("a call over mutual TLS succeeds")
        .into_inner();
    assert!(!created.event_id.is_empty());

    // Without a client certificate the handshake or the first call fails.
    let refused = match tls_client(&document.address, &pki, false).await {
        Err(_) => true,
        Ok(mut client) => client.create_draft(DRAFTER.request(draft())).await.is_err(),
    };
    assert!(refused, "a caller without a client certificate got through");

    // Plaintext gRPC to a TLS port fails.
    let plaintext = match DocumentServiceClient::connect(document.address.clone()).await {
        Err(_) => true,
        Ok(mut client) => client.create_draft(DRAFTER.request(draft())).await.is_err(),
    };
    assert!(plaintext, "a plaintext caller got through");
    document.stop().await;
}
