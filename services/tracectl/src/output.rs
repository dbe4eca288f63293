//! Text and JSON rendering of archive entries.

use trace_proto::archive::v1::Entry;

/// Formats a protobuf timestamp as RFC 3339 in UTC with microseconds.
pub fn time(timestamp: Option<&prost_types::Timestamp>) -> String {
    timestamp
        .and_then(|ts| chrono::DateTime::from_timestamp(ts.seconds, ts.nanos.max(0) as u32))
        .map(|instant| instant.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
        .unwrap_or_else(|| "-".to_owned())
}

/// One entry as a JSON object, payload included as parsed JSON.
pub fn entry_json(entry: &Entry) -> serde_json::Value {
    let actor = entry.actor.clone().unwrap_or_default();
    let payload: serde_json::Value =
        serde_json::from_str(&entry.payload_json).unwrap_or(serde_json::Value::Null);
    serde_json::json!({
        "sequence": entry.sequence,
        "event_id": entry.event_id,
        "subject": entry.subject,
        "entity_type": entry.entity_type,
        "entity_id": entry.entity_id,
        "entity_version": entry.entity_version,
        "action": entry.action,
        "actor": {
            "user_id": actor.user_id,
            "display_name": actor.display_name,
            "department": actor.department,
            "role": actor.role,
        },
        "confidentiality": entry.confidentiality,
        "occurred_at": time(entry.occurred_at.as_ref()),
        "received_at": time(entry.received_at.as_ref()),
        "correlation_id": entry.correlation_id,
        "payload_type": entry.payload_type,
        "payload": payload,
        "payload_sha256": entry.payload_sha256,
        "previous_hash": entry.previous_hash,
        "entry_hash": entry.entry_hash,
        "stream_sequence": entry.stream_sequence,
    })
}

/// One entry as a timeline line: time, version, action, actor and payload.
pub fn entry_line(entry: &Entry) -> String {
    let actor = entry.actor.clone().unwrap_or_default();
    format!(
        "{}  v{:<3} {:<18} {} ({}, {})  #{}  {}",
        time(entry.occurred_at.as_ref()),
        entry.entity_version,
        entry.action,
        actor.display_name,
        actor.user_id,
        actor.role,
        entry.sequence,
        entry.payload_json,
    )
}
