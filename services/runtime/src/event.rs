//! Building trace event envelopes. Subjects come only from fixed names
//! (`trace.<service>.<entity>.<action>`); ids from user input travel in the envelope body and
//! never become subject tokens, so a `.`, `*`, `>` or space in an id cannot change routing.

use std::borrow::Cow;

use prost::Message;
use trace_proto::common::v1::Confidentiality;
use trace_proto::event::v1::{Envelope, SealedPayload, TraceContext};

use crate::clock::Clock;
use crate::context::CallContext;
use crate::seal::{Keyring, SealError};

/// Returns true when `token` may be a subject token: 1 to 32 characters of `a-z`, `0-9` and `_`,
/// starting with a letter.
pub fn is_subject_token(token: &str) -> bool {
    let mut chars = token.chars();
    matches!(chars.next(), Some(first) if first.is_ascii_lowercase())
        && token.len() <= 32
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// Builds `trace.<service>.<entity>.<action>`.
///
/// # Panics
///
/// Panics when a token is not a fixed name as [`is_subject_token`] defines it. Tokens are
/// constants in the services, so this is a programming error, not a runtime condition.
pub fn subject(service: &str, entity: &str, action: &str) -> String {
    for token in [service, entity, action] {
        assert!(is_subject_token(token), "invalid subject token {token:?}");
    }
    format!("trace.{service}.{entity}.{action}")
}

/// Packs a payload message as `google.protobuf.Any` with its full type name.
pub fn pack<M: prost::Name>(message: &M) -> prost_types::Any {
    prost_types::Any {
        type_url: M::type_url(),
        value: prost::Message::encode_to_vec(message),
    }
}

/// The parts of an event that the domain decides.
#[derive(Debug, Clone)]
pub struct EventSpec {
    pub entity_type: &'static str,
    pub entity_id: String,
    pub entity_version: u64,
    pub action: &'static str,
    pub confidentiality: Confidentiality,
    pub payload: prost_types::Any,
}

/// Builds the envelope for an event caused by the call in `context`, at the clock's time.
pub fn envelope(
    service: &'static str,
    context: &CallContext,
    clock: &dyn Clock,
    spec: EventSpec,
) -> Envelope {
    let event_id = uuid::Uuid::now_v7().to_string();
    Envelope {
        subject: subject(service, spec.entity_type, spec.action),
        occurred_at: Some(crate::clock::timestamp(clock.now().timestamp_micros())),
        actor: Some(context.principal.actor()),
        source_service: service.to_owned(),
        entity_type: spec.entity_type.to_owned(),
        entity_id: spec.entity_id,
        entity_version: spec.entity_version,
        action: spec.action.to_owned(),
        confidentiality: spec.confidentiality as i32,
        correlation_id: context.correlation_id.clone(),
        causation_id: context.correlation_id.clone(),
        trace_context: Some(TraceContext {
            traceparent: context.traceparent.clone(),
            tracestate: context.tracestate.clone(),
        }),
        payload: Some(spec.payload),
        sealed_payload: None,
        event_id,
    }
}

/// Returns true when events of records at `confidentiality` (the envelope's enum value) carry
/// their payload sealed.
pub fn is_sealed_level(confidentiality: i32) -> bool {
    confidentiality >= Confidentiality::Confidential as i32
}

/// Record id that a sealed payload is bound to.
fn payload_record_id(event_id: &str) -> String {
    format!("event:{event_id}")
}

/// Moves the payload of a CONFIDENTIAL or SECRET event into `sealed_payload`, sealed with the
/// active key and bound to the event id. Other events are left as they are.
pub fn seal_payload(keyring: &Keyring, envelope: &mut Envelope) {
    if !is_sealed_level(envelope.confidentiality) {
        return;
    }
    let Some(payload) = envelope.payload.take() else {
        return;
    };
    let sealed = keyring.seal(
        &payload_record_id(&envelope.event_id),
        &payload.encode_to_vec(),
    );
    let (wrapping, content) =
        crate::seal::split_sealed(&sealed).expect("a value sealed here has a valid layout");
    envelope.sealed_payload = Some(SealedPayload {
        key_wrapping: wrapping.to_vec(),
        content: content.to_vec(),
        type_url: payload.type_url,
    });
}

/// Returns the payload of `envelope`, opening a sealed one with `keyring`.
pub fn open_payload(
    keyring: &Keyring,
    envelope: &Envelope,
) -> Result<Option<prost_types::Any>, SealError> {
    let Some(sealed) = &envelope.sealed_payload else {
        return Ok(envelope.payload.clone());
    };
    let joined = crate::seal::join_sealed(&sealed.key_wrapping, &sealed.content);
    let bytes = keyring.open(&payload_record_id(&envelope.event_id), &joined)?;
    prost_types::Any::decode(bytes.as_slice())
        .map(Some)
        .map_err(|_| SealError::Malformed("the opened payload is not a google.protobuf.Any"))
}

/// Moves the sealed payload of `raw` to the active key. Returns `None` when the envelope has
/// no sealed payload or already uses the active key. The [`digest_form`] stays the same.
pub fn rewrap_payload(keyring: &Keyring, raw: &[u8]) -> Result<Option<Vec<u8>>, SealError> {
    let Ok(mut envelope) = Envelope::decode(raw) else {
        return Ok(None);
    };
    let Some(sealed) = envelope.sealed_payload.as_mut() else {
        return Ok(None);
    };
    let joined = crate::seal::join_sealed(&sealed.key_wrapping, &sealed.content);
    let Some(rewrapped) = keyring.rewrap(&joined)? else {
        return Ok(None);
    };
    let (wrapping, _) = crate::seal::split_sealed(&rewrapped)?;
    sealed.key_wrapping = wrapping.to_vec();
    Ok(Some(envelope.encode_to_vec()))
}

/// Returns the bytes of an encoded envelope that the archive hashes. For a record at
/// CONFIDENTIAL or above with a sealed payload, these are the envelope re-encoded without the
/// payload's key wrapping, so rewrapping keeps the digest. Other envelopes hash as they are. The level comes from the stored entry, so the rule depends only on stored columns.
pub fn digest_form(raw: &[u8], confidentiality: i32) -> Cow<'_, [u8]> {
    if !is_sealed_level(confidentiality) {
        return Cow::Borrowed(raw);
    }
    match Envelope::decode(raw) {
        Ok(mut envelope) => match envelope.sealed_payload.as_mut() {
            Some(sealed) => {
                sealed.key_wrapping.clear();
                Cow::Owned(envelope.encode_to_vec())
            }
            None => Cow::Borrowed(raw),
        },
        Err(_) => Cow::Borrowed(raw),
    }
}

/// Returns the lowercase hex SHA-256 of the [`digest_form`] of `raw`.
pub fn envelope_digest(raw: &[u8], confidentiality: i32) -> String {
    crate::blob::sha256_hex(&digest_form(raw, confidentiality))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subject_tokens_are_fixed_names() {
        assert_eq!(
            subject("document", "borrowing", "lent"),
            "trace.document.borrowing.lent"
        );
        for bad in ["", "a.b", "*", ">", "a b", "Doc", "1abc", &"x".repeat(33)] {
            assert!(!is_subject_token(bad), "{bad:?}");
        }
    }

    #[test]
    #[should_panic(expected = "invalid subject token")]
    fn subject_with_wildcard_panics() {
        subject("document", "*", "read");
    }

    #[test]
    fn hostile_entity_id_stays_out_of_the_subject() {
        let context = CallContext::system("document");
        let spec = EventSpec {
            entity_type: "document",
            entity_id: "a.b *>  c".to_owned(),
            entity_version: 1,
            action: "read",
            confidentiality: Confidentiality::Internal,
            payload: prost_types::Any::default(),
        };
        let envelope = envelope("document", &context, &crate::clock::SystemClock, spec);
        assert_eq!(envelope.subject, "trace.document.document.read");
        assert_eq!(envelope.entity_id, "a.b *>  c");
    }

    fn confidential_envelope() -> Envelope {
        let context = CallContext::system("meeting");
        let spec = EventSpec {
            entity_type: "meeting",
            entity_id: "m-1".to_owned(),
            entity_version: 1,
            action: "minuted",
            confidentiality: Confidentiality::Confidential,
            payload: prost_types::Any {
                type_url: "type.googleapis.com/trace.meeting.v1.Minuted".to_owned(),
                value: b"board minutes".to_vec(),
            },
        };
        envelope("meeting", &context, &crate::clock::SystemClock, spec)
    }

    fn keys(active: &str) -> Keyring {
        Keyring::from_keys(
            [("k1".to_owned(), [1u8; 32]), ("k2".to_owned(), [2u8; 32])],
            active,
        )
    }

    #[test]
    fn confidential_payload_is_sealed_and_opens() {
        let mut sealed = confidential_envelope();
        let original = sealed.payload.clone();
        seal_payload(&keys("k1"), &mut sealed);
        assert_eq!(sealed.payload, None);
        let raw = sealed.encode_to_vec();
        assert!(!raw.windows(5).any(|window| window == b"board"));
        assert_eq!(open_payload(&keys("k1"), &sealed).expect("open"), original);
    }

    #[test]
    fn internal_payload_stays_plain() {
        let mut plain = confidential_envelope();
        plain.confidentiality = Confidentiality::Internal as i32;
        seal_payload(&keys("k1"), &mut plain);
        assert!(plain.sealed_payload.is_none());
        assert!(plain.payload.is_some());
    }

    #[test]
    fn payload_moved_to_another_event_fails() {
        let mut sealed = confidential_envelope();
        seal_payload(&keys("k1"), &mut sealed);
        sealed.event_id = uuid::Uuid::now_v7().to_string();
        assert!(open_payload(&keys("k1"), &sealed).is_err());
    }

    #[test]
    fn rewrap_keeps_the_digest() {
        let mut sealed = confidential_envelope();
        seal_payload(&keys("k1"), &mut sealed);
        let raw = sealed.encode_to_vec();
        let level = sealed.confidentiality;

        let rewrapped = rewrap_payload(&keys("k2"), &raw)
            .expect("rewrap")
            .expect("the key changed");
        assert_ne!(rewrapped, raw);
        assert_eq!(
            envelope_digest(&rewrapped, level),
            envelope_digest(&raw, level)
        );
        assert_eq!(
            rewrap_payload(&keys("k2"), &rewrapped).expect("rewrap"),
            None
        );

        let reopened = Envelope::decode(rewrapped.as_slice()).expect("decode");
        assert_eq!(
            open_payload(&keys("k2"), &reopened).expect("open"),
            open_payload(&keys("k1"), &sealed).expect("open")
        );
    }

    #[test]
    fn digest_of_plain_envelope_is_its_bytes() {
        let raw = confidential_envelope().encode_to_vec();
        assert_eq!(
            envelope_digest(&raw, Confidentiality::Confidential as i32),
            crate::blob::sha256_hex(&raw)
        );
    }
}
