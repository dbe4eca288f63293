//! Renders stored envelopes' payloads as protobuf JSON through the descriptor set of every
//! trace proto, so that any service's event reads the same way without code per type.

use prost::Message;
use prost_reflect::{DescriptorPool, DynamicMessage};
use trace_proto::event::v1::Envelope;
use trace_runtime::event::open_payload;
use trace_runtime::seal::Keyring;

/// Decoder of payloads by their full type name.
#[derive(Debug, Clone)]
pub struct PayloadRenderer {
    pool: DescriptorPool,
}

impl PayloadRenderer {
    /// Loads the descriptor set compiled into `trace-proto`.
    pub fn new() -> anyhow::Result<Self> {
        let pool = DescriptorPool::decode(trace_proto::FILE_DESCRIPTOR_SET)?;
        Ok(Self { pool })
    }

    /// Renders the payload of an encoded envelope as JSON; an unknown type renders as an
    /// object holding the type and the hex bytes. A sealed payload is opened with `keyring`
    /// when one is given, and otherwise renders as an object holding its type and
    /// `"sealed": true`.
    pub fn render(&self, envelope_bytes: &[u8], keyring: Option<&Keyring>) -> String {
        let Ok(envelope) = Envelope::decode(envelope_bytes) else {
            return String::new();
        };
        let payload = match (&envelope.sealed_payload, keyring) {
            (Some(sealed), None) => {
                return serde_json::json!({ "@type": sealed.type_url, "sealed": true }).to_string();
            }
            (Some(sealed), Some(keyring)) => match open_payload(keyring, &envelope) {
                Ok(payload) => payload,
                Err(error) => {
                    tracing::error!(event_id = %envelope.event_id, %error, "failed to open a sealed payload");
                    return serde_json::json!({
                        "@type": sealed.type_url,
                        "sealed": true,
                        "error": error.to_string(),
                    })
                    .to_string();
                }
            },
            (None, _) => envelope.payload,
        };
        let Some(any) = payload else {
            return "{}".to_owned();
        };
        let type_name = any.type_url.rsplit('/').next().unwrap_or_default();
        let decoded = self
            .pool
            .get_message_by_name(type_name)
            .and_then(|descriptor| DynamicMessage::decode(descriptor, any.value.as_slice()).ok())
            .and_then(|message| serde_json::to_string(&message).ok());
        decoded.unwrap_or_else(|| {
            serde_json::json!({ "@type": any.type_url, "hex": hex::encode(&any.value) }).to_string()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use trace_proto::common::v1::Date;

    #[test]
    fn renders_known_payload_as_json() {
        let payload = trace_proto::document::v1::BorrowingRequested {
            borrowing_id: "b1".to_owned(),
            reason: "審計".to_owned(),
            expected_return_date: Some(Date {
                year: 2026,
                month: 12,
                day: 31,
            }),
        };
        let envelope = Envelope {
            payload: Some(trace_runtime::event::pack(&payload)),
            ..Envelope::default()
        };
        let json = PayloadRenderer::new()
            .unwrap()
            .render(&envelope.encode_to_vec(), None);
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(value["reason"], "審計");
        assert_eq!(value["borrowingId"], "b1");
        assert_eq!(value["expectedReturnDate"]["year"], 2026);
    }
}
