//! A service logs in to a NATS server that lists users by NKey public key, with the seed from
//! `nats.nkey_seed_file`, and its outbox publishes through that connection.

use std::time::{Duration, Instant};

use trace_proto::common::v1::Confidentiality;
use trace_proto::document::v1::CreateDraftRequest;
use trace_proto::event::v1::outbox_service_client::OutboxServiceClient;
use trace_proto::event::v1::{DeliveryState, GetEventStatusRequest};

use crate::stack::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_publishes_through_nkey_login() {
    let dir = tempfile::tempdir().unwrap();
    let user = nkeys::KeyPair::new_user();
    let seed_file = dir.path().join("document.nk");
    std::fs::write(&seed_file, user.seed().unwrap()).unwrap();

    let port = free_port();
    let config = format!(
        "listen: \"127.0.0.1:{port}\"\njetstream {{ store_dir: \"{}\" }}\nauthorization {{ users = [ {{ nkey: \"{}\" }} ] }}\n",
        dir.path().join("nats").display(),
        user.public_key(),
    );
    let config_file = dir.path().join("nats.conf");
    std::fs::write(&config_file, config).unwrap();
    let _server = ConfiguredServer::start(&config_file, port);

    let seed_path = seed_file.display().to_string();
    let url = format!("nats://127.0.0.1:{port}");
    let document = start_document_with(&url, dir.path(), move |config| {
        config.service.nats.nkey_seed_file = Some(seed_path);
    })
    .await;
    let mut client = document_client(&document.address).await;
    let drafted = client
        .create_draft(DRAFTER.request(CreateDraftRequest {
            title: "NKey 登錄測試".to_owned(),
            category: "REPORT".to_owned(),
            department: "admin-office".to_owned(),
            confidentiality: Confidentiality::Internal as i32,
            content: b"content".to_vec(),
            media_type: "text/plain".to_owned(),
        }))
        .await
        .unwrap()
        .into_inner();

    let mut outbox = OutboxServiceClient::connect(document.address.clone())
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let request = DRAFTER.request(GetEventStatusRequest {
            event_id: drafted.event_id.clone(),
        });
        let status = outbox.get_event_status(request).await.unwrap().into_inner();
        if status.state == DeliveryState::Published as i32 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the event was not published through the NKey login"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    document.stop().await;
}
