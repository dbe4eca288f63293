//! The archive's durable pull consumer over every trace subject. Messages are appended in
//! batches and acknowledged only after the batch commits. Each producing service then gets a
//! receipt for its events.

use std::collections::BTreeMap;
use std::time::Duration;

use async_nats::jetstream::{self, AckKind, consumer::pull};
use futures::StreamExt;
use prost::Message;
use tokio_util::sync::CancellationToken;
use trace_proto::event::v1::{ArchivedEvent, Receipt};

use crate::config::ArchiveSettings;
use crate::ledger::{self, Incoming, Outcome};
use trace_runtime::clock::SharedClock;

/// Maximum pause before re-creating the consumer after a failure.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Consumes the trace stream into the ledger until cancelled.
#[derive(Debug)]
pub struct Archiver {
    pub db: sea_orm::DatabaseConnection,
    pub client: async_nats::Client,
    pub jetstream: jetstream::Context,
    pub stream_name: String,
    pub settings: ArchiveSettings,
    pub clock: SharedClock,
}

impl Archiver {
    /// Runs until `shutdown` is cancelled, re-creating the consumer after broker failures.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut backoff = Duration::from_millis(100);
        while !shutdown.is_cancelled() {
            match self.consume(&shutdown).await {
                Ok(()) => break,
                Err(error) => {
                    tracing::warn!(
                        error = format!("{error:#}"),
                        ?backoff,
                        "archive consumer failed, restarting"
                    );
                }
            }
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
        tracing::info!("archive consumer stopped");
    }

    fn consumer_config(&self) -> pull::Config {
        pull::Config {
            durable_name: Some(self.settings.consumer_name.clone()),
            filter_subject: trace_runtime::nats::TRACE_SUBJECTS.to_owned(),
            ack_policy: jetstream::consumer::AckPolicy::Explicit,
            ack_wait: Duration::from_secs(self.settings.ack_wait_secs),
            max_ack_pending: self.settings.max_ack_pending,
            deliver_policy: jetstream::consumer::DeliverPolicy::All,
            ..pull::Config::default()
        }
    }

    async fn consume(&self, shutdown: &CancellationToken) -> anyhow::Result<()> {
        let stream = self.jetstream.get_stream(&self.stream_name).await?;
        let consumer = stream
            .get_or_create_consumer(&self.settings.consumer_name, self.consumer_config())
            .await?;
        let messages = consumer
            .stream()
            .max_messages_per_batch(self.settings.batch_size)
            .heartbeat(Duration::from_secs(5))
            .expires(Duration::from_secs(30))
            .messages()
            .await?;
        let mut chunks = std::pin::pin!(tokio_stream::StreamExt::chunks_timeout(
            messages,
            self.settings.batch_size,
            Duration::from_millis(self.settings.batch_wait_ms),
        ));
        tracing::info!(consumer = %self.settings.consumer_name, "archive consumer running");
        loop {
            let chunk = tokio::select! {
                () = shutdown.cancelled() => return Ok(()),
                chunk = chunks.next() => chunk,
            };
            let Some(chunk) = chunk else {
                anyhow::bail!("the message stream ended");
            };
            let mut batch = Vec::with_capacity(chunk.len());
            for message in chunk {
                batch.push(message?);
            }
            self.process(batch).await?;
        }
    }

    /// Appends one batch, then acknowledges it and sends receipts. On a database failure the
    /// batch is negatively acknowledged so that it comes back after a short delay.
    async fn process(&self, messages: Vec<jetstream::Message>) -> anyhow::Result<()> {
        let mut batch = Vec::with_capacity(messages.len());
        for message in &messages {
            let stream_sequence = message.info().map_or(0, |info| info.stream_sequence);
            batch.push(Incoming {
                stream_sequence,
                subject: message.subject.to_string(),
                raw: message.payload.clone(),
            });
        }

        let received_at = self.clock.now().timestamp_micros();
        let outcomes = match ledger::append_batch(&self.db, received_at, &batch).await {
            Ok(outcomes) => outcomes,
            Err(error) => {
                for message in &messages {
                    let _ = message
                        .ack_with(AckKind::Nak(Some(Duration::from_secs(1))))
                        .await;
                }
                return Err(anyhow::Error::new(error).context("failed to append a batch"));
            }
        };

        for message in &messages {
            if let Err(error) = message.ack().await {
                tracing::warn!(%error, "failed to ack; the message will be redelivered and absorbed");
            }
        }
        self.log_outcomes(&batch, &outcomes);
        self.send_receipts(&outcomes).await;
        Ok(())
    }

    fn log_outcomes(&self, batch: &[Incoming], outcomes: &[Outcome]) {
        for (incoming, outcome) in batch.iter().zip(outcomes) {
            match outcome {
                Outcome::Rejected { reason } => tracing::warn!(
                    subject = %incoming.subject,
                    stream_sequence = incoming.stream_sequence,
                    %reason,
                    "rejected a trace message"
                ),
                Outcome::Conflict {
                    stored_sequence,
                    event_id,
                } => tracing::error!(
                    %event_id,
                    stored_sequence,
                    stream_sequence = incoming.stream_sequence,
                    "event id arrived again with different content; kept the stored entry"
                ),
                _ => {}
            }
        }
        let appended = outcomes
            .iter()
            .filter(|o| matches!(o, Outcome::Appended { .. }))
            .count();
        tracing::debug!(messages = batch.len(), appended, "archived a batch");
    }

    /// Sends one receipt per producing service, covering appended and duplicate events.
    async fn send_receipts(&self, outcomes: &[Outcome]) {
        let mut receipts: BTreeMap<&str, Receipt> = BTreeMap::new();
        for outcome in outcomes {
            let (Outcome::Appended {
                sequence,
                event_id,
                source_service,
            }
            | Outcome::Duplicate {
                sequence,
                event_id,
                source_service,
            }) = outcome
            else {
                continue;
            };
            receipts
                .entry(source_service)
                .or_default()
                .events
                .push(ArchivedEvent {
                    event_id: event_id.clone(),
                    sequence: *sequence as u64,
                });
        }
        for (service, receipt) in receipts {
            let subject = trace_runtime::nats::receipt_subject(service);
            if let Err(error) = self
                .client
                .publish(subject, receipt.encode_to_vec().into())
                .await
            {
                tracing::warn!(%error, service, "failed to send a receipt; the producer will publish again");
            }
        }
        if let Err(error) = self.client.flush().await {
            tracing::warn!(%error, "failed to flush acks and receipts");
        }
    }
}
