//! The archive's durable pull consumer over every trace subject. Messages are appended in
//! batches and acknowledged only after the batch commits. Each producing service then gets a
//! receipt for its events.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use async_nats::jetstream::consumer::pull::MessagesError;
use async_nats::jetstream::{self, AckKind, consumer::pull};
use futures::{FutureExt, Stream, StreamExt};
use prost::Message;
use tokio_util::sync::CancellationToken;
use trace_proto::event::v1::{ArchivedEvent, Receipt};
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::config::ArchiveSettings;
use crate::ledger::{self, Incoming, Outcome};
use trace_runtime::clock::SharedClock;

/// Returns how many messages the broker had pending for the consumer after the last message
/// of `batch`, 0 when its metadata cannot be read.
fn pending_after(batch: &[jetstream::Message]) -> u64 {
    batch
        .last()
        .and_then(|message| message.info().ok())
        .map_or(0, |info| info.pending)
}

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
        let mut messages = std::pin::pin!(messages);
        let mut appender = ledger::Appender::new(self.db.clone());
        tracing::info!(consumer = %self.settings.consumer_name, "archive consumer running");
        loop {
            let batch = tokio::select! {
                () = shutdown.cancelled() => return Ok(()),
                batch = self.next_batch(&mut messages) => batch?,
            };
            self.process(&mut appender, batch).await?;
        }
    }

    /// Waits for the next message and returns it with the messages that follow it, at most
    /// `batch_size`. A batch takes what has already arrived. It waits up to `batch_wait_ms`
    /// for more only while the broker reports messages pending for the consumer, so a quiet
    /// stream appends each event at once and a backlog still drains in full batches.
    async fn next_batch<S>(&self, messages: &mut S) -> anyhow::Result<Vec<jetstream::Message>>
    where
        S: Stream<Item = Result<jetstream::Message, MessagesError>> + Unpin,
    {
        let size = self.settings.batch_size.max(1);
        let Some(first) = messages.next().await else {
            anyhow::bail!("the message stream ended");
        };
        let mut batch = Vec::with_capacity(size);
        batch.push(first?);
        while batch.len() < size {
            match messages.next().now_or_never() {
                Some(Some(message)) => batch.push(message?),
                Some(None) | None => break,
            }
        }
        if batch.len() < size && pending_after(&batch) > 0 {
            let linger = tokio::time::sleep(Duration::from_millis(self.settings.batch_wait_ms));
            tokio::pin!(linger);
            while batch.len() < size {
                tokio::select! {
                    () = &mut linger => break,
                    message = messages.next() => match message {
                        Some(message) => batch.push(message?),
                        None => break,
                    },
                }
            }
        }
        Ok(batch)
    }

    /// Appends one batch, then acknowledges it and sends receipts. On a database failure the
    /// batch is negatively acknowledged so that it comes back after a short delay.
    ///
    /// Each message gets a consumer span whose parent is the producer span named by its
    /// `traceparent` header. The append span of the batch is a child of the first message's
    /// span and links to the others, because one transaction serves them all.
    async fn process(
        &self,
        appender: &mut ledger::Appender,
        messages: Vec<jetstream::Message>,
    ) -> anyhow::Result<()> {
        let mut batch = Vec::with_capacity(messages.len());
        let mut spans = Vec::with_capacity(messages.len());
        let mut redelivered = 0;
        // The broker's storage time is wall-clock time, so the wait is measured on the wall
        // clock, not on the service clock that stamps entries.
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |since| since.as_micros() as i64);
        for message in &messages {
            let info = message.info().ok();
            let stream_sequence = info.as_ref().map_or(0, |info| info.stream_sequence);
            if info.as_ref().is_some_and(|info| info.delivered > 1) {
                redelivered += 1;
            }
            spans.push(self.process_span(message, stream_sequence));
            batch.push(Incoming {
                stream_sequence,
                subject: message.subject.to_string(),
                raw: message.payload.clone(),
                previous_event_id: self.previous_event(message, info.as_ref(), now),
            });
        }
        let metrics = crate::metrics::get();
        metrics.record_redelivered(redelivered);

        let append_span = append_span(&spans, batch.len());
        let received_at = self.clock.now().timestamp_micros();
        let started = Instant::now();
        let appended = appender
            .append(received_at, &batch)
            .instrument(append_span.clone())
            .await;
        metrics.record_append(started.elapsed());
        let outcomes = match appended {
            Ok(outcomes) => outcomes,
            Err(error) => {
                append_span.record("otel.status_code", "ERROR");
                append_span.record("error.type", "database");
                for message in &messages {
                    let _ = message
                        .ack_with(AckKind::Nak(Some(Duration::from_secs(1))))
                        .await;
                }
                return Err(anyhow::Error::new(error).context("failed to append a batch"));
            }
        };
        drop(append_span);

        let mut held_messages = 0;
        for (message, outcome) in messages.iter().zip(&outcomes) {
            let reply = if matches!(outcome, Outcome::Held { .. }) {
                held_messages += 1;
                let delivered = message.info().map_or(1, |info| info.delivered);
                message
                    .ack_with(AckKind::Nak(Some(hold_delay(delivered))))
                    .await
            } else {
                message.ack().await
            };
            if let Err(error) = reply {
                tracing::warn!(%error, "failed to ack; the message will be redelivered and absorbed");
            }
        }
        metrics.record_held(held_messages);
        self.log_outcomes(&batch, &outcomes);
        self.send_receipts(&outcomes).await;
        drop(spans);
        Ok(())
    }

    /// Returns the event that must be archived before `message`, from the header the relay
    /// sets. After `predecessor_wait_secs` in the stream the message is appended without
    /// waiting any longer, so that an event the archive rejected or never receives delays its
    /// successors but cannot block them for ever.
    fn previous_event(
        &self,
        message: &jetstream::Message,
        info: Option<&jetstream::message::Info>,
        now_micros: i64,
    ) -> Option<String> {
        let previous = message
            .headers
            .as_ref()?
            .get(trace_runtime::nats::PREVIOUS_EVENT_HEADER)?
            .as_str()
            .to_owned();
        let stored_micros = info.map_or(i64::MAX, |info| {
            (info.published.unix_timestamp_nanos() / 1_000) as i64
        });
        let waited = now_micros.saturating_sub(stored_micros);
        if waited > (self.settings.predecessor_wait_secs as i64).saturating_mul(1_000_000) {
            tracing::warn!(
                subject = %message.subject,
                previous_event_id = %previous,
                waited_secs = waited / 1_000_000,
                "appending an event before its entity's previous event, which has not arrived"
            );
            return None;
        }
        Some(previous)
    }

    /// Starts the consumer span of one message, following the OpenTelemetry messaging
    /// conventions.
    fn process_span(&self, message: &jetstream::Message, stream_sequence: u64) -> tracing::Span {
        let message_id = message
            .headers
            .as_ref()
            .and_then(|headers| headers.get(async_nats::header::NATS_MESSAGE_ID))
            .map_or("", |value| value.as_str());
        let span = tracing::info_span!(
            parent: None,
            "process",
            otel.name = %format!("process {}", message.subject),
            otel.kind = "consumer",
            messaging.system = "nats",
            messaging.operation.name = "process",
            messaging.operation.type = "process",
            messaging.destination.name = %message.subject,
            messaging.consumer.group.name = %self.settings.consumer_name,
            messaging.message.id = %message_id,
            messaging.message.body.size = message.payload.len(),
            messaging.nats.stream_sequence = stream_sequence,
        );
        trace_runtime::propagation::set_remote_parent(
            &span,
            trace_runtime::propagation::extract_nats(message.headers.as_ref()),
        );
        span
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

/// Returns how long the broker keeps a held message before delivering it again: 100 ms per
/// delivery so far, at most 5 s. A predecessor that is only redelivered then releases it
/// quickly, and one that is lost costs few deliveries.
fn hold_delay(delivered: i64) -> Duration {
    Duration::from_millis(100u64.saturating_mul(delivered.clamp(1, 50) as u64))
}

/// Starts the span of one append transaction: a child of the first message's span, linked to
/// the span of every other message in the batch.
fn append_span(message_spans: &[tracing::Span], messages: usize) -> tracing::Span {
    let parent = message_spans.first().and_then(tracing::Span::id);
    let span = tracing::info_span!(
        parent: parent,
        "archive append",
        otel.kind = "internal",
        otel.status_code = tracing::field::Empty,
        error.type = tracing::field::Empty,
        db.operation.name = "append_batch",
        db.collection.name = "ledger_entry",
        messaging.batch.message_count = messages,
    );
    for message_span in message_spans.iter().skip(1) {
        let context = message_span.context();
        let span_context = opentelemetry::trace::TraceContextExt::span(&context)
            .span_context()
            .clone();
        if span_context.is_valid() {
            span.add_link(span_context);
        }
    }
    span
}
