//! The durable pull consumer `inspection` over every trace subject. Each batch is applied to
//! the rule state in one write transaction and acknowledged only after it commits. Event ids
//! already applied are skipped, so a redelivered batch changes nothing.

use std::time::Duration;

use async_nats::jetstream::{self, AckKind, consumer::pull};
use futures::StreamExt;
use prost::Message;
use sea_orm::DatabaseConnection;
use tokio_util::sync::CancellationToken;
use trace_proto::event::v1::Envelope;
use tracing::Instrument;

use trace_runtime::seal::Keyring;

use crate::config::ConsumerSettings;
use crate::store::RuleEngine;

/// Maximum pause before re-creating the consumer after a failure.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Consumes the trace stream into the rule state until cancelled.
#[derive(Debug)]
pub struct RuleConsumer {
    pub db: DatabaseConnection,
    pub jetstream: jetstream::Context,
    pub stream_name: String,
    pub settings: ConsumerSettings,
    pub engine: RuleEngine,
    /// Opens the sealed payloads of confidential and secret events.
    pub keyring: Keyring,
}

impl RuleConsumer {
    /// Runs until `shutdown` is cancelled, re-creating the consumer after failures.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut backoff = Duration::from_millis(100);
        while !shutdown.is_cancelled() {
            match self.consume(&shutdown).await {
                Ok(()) => break,
                Err(error) => tracing::warn!(
                    error = format!("{error:#}"),
                    ?backoff,
                    "inspection consumer failed, restarting"
                ),
            }
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
        tracing::info!("inspection consumer stopped");
    }

    fn consumer_config(&self) -> pull::Config {
        pull::Config {
            durable_name: Some(self.settings.name.clone()),
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
            .get_or_create_consumer(&self.settings.name, self.consumer_config())
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
        tracing::info!(consumer = %self.settings.name, "inspection consumer running");
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
                batch.push(message.map_err(|error| anyhow::anyhow!("{error}"))?);
            }
            self.process(batch).await?;
        }
    }

    /// Applies one batch in one transaction, then acknowledges it. On a database failure the
    /// batch is negatively acknowledged so that it comes back after a short delay.
    async fn process(&self, messages: Vec<jetstream::Message>) -> anyhow::Result<()> {
        if let Err(error) = self.apply_batch(&messages).await {
            for message in &messages {
                let _ = message
                    .ack_with(AckKind::Nak(Some(Duration::from_secs(1))))
                    .await;
            }
            return Err(error.context("failed to apply a batch to the rule state"));
        }
        for message in &messages {
            if let Err(error) = message.ack().await {
                tracing::warn!(%error, "failed to ack; the message will be redelivered and skipped");
            }
        }
        Ok(())
    }

    /// Applies the messages in one transaction. Each message gets a consumer span whose
    /// parent is the producer span named by its `traceparent` header. The spans end when the
    /// transaction ends.
    async fn apply_batch(&self, messages: &[jetstream::Message]) -> anyhow::Result<()> {
        let transaction = trace_runtime::db::begin_write(&self.db).await?;
        let mut applied = 0;
        let mut spans = Vec::with_capacity(messages.len());
        for message in messages {
            let stream_sequence = message.info().map_or(0, |info| info.stream_sequence);
            let span = self.process_span(message, stream_sequence);
            let Ok(mut envelope) = Envelope::decode(message.payload.as_ref()) else {
                span.in_scope(|| tracing::warn!(stream_sequence, subject = %message.subject, "skipped an undecodable trace message"));
                continue;
            };
            if envelope.event_id.is_empty() {
                span.in_scope(|| {
                    tracing::warn!(
                        stream_sequence,
                        "skipped a trace message without an event id"
                    )
                });
                continue;
            }
            if envelope.sealed_payload.is_some() {
                match trace_runtime::event::open_payload(&self.keyring, &envelope) {
                    Ok(payload) => envelope.payload = payload,
                    // The event still counts for the rules that read only its envelope.
                    Err(error) => span.in_scope(|| {
                        tracing::error!(
                            stream_sequence,
                            event_id = %envelope.event_id,
                            %error,
                            "failed to open a sealed payload; applying the event without it"
                        )
                    }),
                }
            }
            let applied_event = self
                .engine
                .apply_event(&transaction, &envelope, stream_sequence)
                .instrument(span.clone())
                .await?;
            if applied_event {
                applied += 1;
            }
            spans.push(span);
        }
        transaction.commit().await?;
        drop(spans);
        self.engine.outbox.notify();
        tracing::debug!(
            messages = messages.len(),
            applied,
            "applied a batch to the rule state"
        );
        Ok(())
    }

    /// Starts the consumer span of one message, following the OpenTelemetry messaging
    /// conventions.
    fn process_span(&self, message: &jetstream::Message, stream_sequence: u64) -> tracing::Span {
        let span = tracing::info_span!(
            parent: None,
            "process",
            otel.name = %format!("process {}", message.subject),
            otel.kind = "consumer",
            messaging.system = "nats",
            messaging.operation.name = "process",
            messaging.operation.type = "process",
            messaging.destination.name = %message.subject,
            messaging.consumer.group.name = %self.settings.name,
            messaging.message.body.size = message.payload.len(),
            messaging.nats.stream_sequence = stream_sequence,
        );
        trace_runtime::propagation::set_remote_parent(
            &span,
            trace_runtime::propagation::extract_nats(message.headers.as_ref()),
        );
        span
    }
}
