//! Transactional outbox. A service writes its state change and the event in one database
//! transaction ([`Outbox::stage`]); the [`relay`] publishes committed rows with
//! `Nats-Msg-Id` = event id, and a row is done only when the archive's receipt arrives
//! ([`receipts`]). Rows without a receipt are published again after a timeout, under a
//! message id with the attempt number, and the archive absorbs the duplicates.

pub mod entity;
pub mod migration;
pub mod receipts;
pub mod relay;
pub mod service;
#[cfg(test)]
mod test_tables;

use std::sync::Arc;

use prost::Message;
use sea_orm::{ActiveValue::Set, ConnectionTrait, DatabaseConnection, EntityTrait};
use tokio::sync::Notify;
use trace_proto::event::v1::Envelope;

use crate::clock::SharedClock;
use crate::error::{ServiceError, ServiceResult};
use crate::seal::Keyring;

pub use entity::event as outbox_event;

/// Handle through which domain code stages events.
#[derive(Debug, Clone)]
pub struct Outbox {
    db: DatabaseConnection,
    clock: SharedClock,
    wake: Arc<Notify>,
    max_event_bytes: usize,
    keyring: Option<Keyring>,
}

impl Outbox {
    pub fn new(db: DatabaseConnection, clock: SharedClock, max_event_bytes: usize) -> Self {
        Self {
            db,
            clock,
            wake: Arc::new(Notify::new()),
            max_event_bytes,
            keyring: None,
        }
    }

    /// Seals the payloads of CONFIDENTIAL and SECRET events with `keyring` before they are
    /// written, so that the outbox, the broker and the archive hold only ciphertext.
    pub fn with_keyring(mut self, keyring: Keyring) -> Self {
        self.keyring = Some(keyring);
        self
    }

    /// Writes `envelope` in the caller's transaction. Call [`Outbox::notify`] after commit.
    pub async fn stage<C: ConnectionTrait>(
        &self,
        txn: &C,
        envelope: &Envelope,
    ) -> ServiceResult<()> {
        let bytes = match &self.keyring {
            Some(keyring) if crate::event::is_sealed_level(envelope.confidentiality) => {
                let mut sealed = envelope.clone();
                crate::event::seal_payload(keyring, &mut sealed);
                sealed.encode_to_vec()
            }
            _ => envelope.encode_to_vec(),
        };
        if bytes.len() > self.max_event_bytes {
            return Err(ServiceError::invalid(
                "request",
                &format!("{} bytes", bytes.len()),
                format!(
                    "the trace event would exceed {} bytes; shorten the text fields",
                    self.max_event_bytes
                ),
            ));
        }
        let traceparent = envelope
            .trace_context
            .as_ref()
            .map(|context| context.traceparent.clone())
            .unwrap_or_default();
        let row = outbox_event::ActiveModel {
            event_id: Set(envelope.event_id.clone()),
            subject: Set(envelope.subject.clone()),
            entity_type: Set(envelope.entity_type.clone()),
            entity_id: Set(envelope.entity_id.clone()),
            envelope: Set(bytes),
            traceparent: Set(traceparent),
            created_at: Set(self.clock.now().timestamp_micros()),
            published_at: Set(None),
            receipt_due_at: Set(None),
            archived_at: Set(None),
            archive_sequence: Set(None),
            attempts: Set(0),
            last_error: Set(None),
            ..Default::default()
        };
        outbox_event::Entity::insert(row).exec(txn).await?;
        Ok(())
    }

    /// Wakes the relay after a commit that staged events.
    pub fn notify(&self) {
        self.wake.notify_one();
    }

    pub fn db(&self) -> &DatabaseConnection {
        &self.db
    }

    pub fn clock(&self) -> &SharedClock {
        &self.clock
    }

    pub(crate) fn wake_handle(&self) -> Arc<Notify> {
        self.wake.clone()
    }
}
