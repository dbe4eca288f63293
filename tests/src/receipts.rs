//! Receipts for a service under test that runs without the archive.
//!
//! A producing service publishes an entity's next event only after the archive's receipt for
//! the previous one. Service tests that read the trace stream directly, with no archive
//! running, start a [`ReceiptSender`]. It reads the service's subjects from the real stream
//! and sends for each message the receipt that the archive would send. The receipt names the
//! stream sequence in place of a ledger sequence.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use futures::StreamExt;
use prost::Message;
use trace_proto::event::v1::{ArchivedEvent, Envelope, Receipt};

/// Name of the trace stream that the services create.
const STREAM: &str = "TRACE";

/// How long [`ReceiptSender::start`] waits for the service to create the stream.
const STREAM_TIMEOUT: Duration = Duration::from_secs(10);

/// Sends receipts for one service until dropped.
#[derive(Debug)]
pub struct ReceiptSender {
    task: tokio::task::JoinHandle<()>,
}

impl ReceiptSender {
    /// Waits until the trace stream exists on the server at `nats_url`, then sends a receipt
    /// on `receipt.<service>` for every message on `trace.<service>.>`.
    pub async fn start(nats_url: &str, service: &str) -> Result<Self> {
        let client = async_nats::connect(nats_url)
            .await
            .with_context(|| format!("connect to {nats_url}"))?;
        let jetstream = async_nats::jetstream::new(client.clone());
        let deadline = Instant::now() + STREAM_TIMEOUT;
        let stream = loop {
            match jetstream.get_stream(STREAM).await {
                Ok(stream) => break stream,
                Err(error) if Instant::now() > deadline => {
                    return Err(error).context("the service did not create the trace stream");
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        };
        let consumer = stream
            .create_consumer(async_nats::jetstream::consumer::pull::OrderedConfig {
                filter_subject: format!("trace.{service}.>"),
                ..Default::default()
            })
            .await
            .context("create an ordered consumer")?;
        let mut messages = consumer.messages().await.context("consume the stream")?;
        let subject = format!("receipt.{service}");
        let task = tokio::spawn(async move {
            // The ordered consumer recreates itself after a broker restart and reports the
            // interruption as an error, which is no reason to stop.
            while let Some(message) = messages.next().await {
                let Ok(message) = message else {
                    continue;
                };
                let Ok(envelope) = Envelope::decode(message.payload.as_ref()) else {
                    continue;
                };
                let Ok(info) = message.info() else {
                    continue;
                };
                let receipt = Receipt {
                    events: vec![ArchivedEvent {
                        event_id: envelope.event_id,
                        sequence: info.stream_sequence,
                    }],
                };
                if client
                    .publish(subject.clone(), receipt.encode_to_vec().into())
                    .await
                    .is_err()
                {
                    return;
                }
            }
        });
        Ok(Self { task })
    }
}

impl Drop for ReceiptSender {
    fn drop(&mut self) {
        self.task.abort();
    }
}
