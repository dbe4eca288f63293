//! Building trace event envelopes. Subjects come only from fixed names
//! (`trace.<service>.<entity>.<action>`); ids from user input travel in the envelope body and
//! never become subject tokens, so a `.`, `*`, `>` or space in an id cannot change routing.

use trace_proto::common::v1::Confidentiality;
use trace_proto::event::v1::{Envelope, TraceContext};

use crate::clock::Clock;
use crate::context::CallContext;

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
        event_id,
    }
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
}
