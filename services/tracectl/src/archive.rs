//! Archive commands: timeline, verify, entry and status.

use anyhow::Context;
use tonic::transport::Channel;
use trace_proto::archive::v1::archive_service_client::ArchiveServiceClient;
use trace_proto::archive::v1::{
    GetEntryRequest, GetLedgerStatusRequest, GetTimelineRequest, VerifyChainRequest,
    VerifyChainResponse, get_entry_request,
};
use trace_proto::common::v1::PageRequest;

use crate::Identity;
use crate::output::{entry_json, entry_line, time};
use crate::progress::Progress;

/// Connects to the archive.
pub async fn connect(address: &str) -> anyhow::Result<ArchiveServiceClient<Channel>> {
    ArchiveServiceClient::connect(address.to_owned())
        .await
        .with_context(|| format!("failed to connect to the archive at {address}"))
}

/// Prints every entry of one entity, following pages to the end.
pub async fn timeline(
    address: &str,
    identity: &Identity,
    entity_type: &str,
    entity_id: &str,
    json: bool,
) -> anyhow::Result<bool> {
    let mut client = connect(address).await?;
    let entries = fetch_timeline(&mut client, identity, entity_type, entity_id).await?;
    if entries.is_empty() {
        eprintln!(
            "no archived entries for {entity_type} {entity_id}; check the entity type \
             (document, meeting, resolution, project, ...) and the id"
        );
        return Ok(false);
    }
    if json {
        let values: Vec<_> = entries.iter().map(entry_json).collect();
        out!("{}", serde_json::to_string_pretty(&values)?);
    } else {
        out!(
            "timeline of {entity_type} {entity_id}: {} entries",
            entries.len()
        );
        for entry in &entries {
            out!("{}", entry_line(entry));
        }
    }
    Ok(true)
}

/// Reads a whole timeline page by page.
pub async fn fetch_timeline(
    client: &mut ArchiveServiceClient<Channel>,
    identity: &Identity,
    entity_type: &str,
    entity_id: &str,
) -> anyhow::Result<Vec<trace_proto::archive::v1::Entry>> {
    let mut entries = Vec::new();
    let mut page_token = String::new();
    loop {
        let request = identity.request(GetTimelineRequest {
            entity_type: entity_type.to_owned(),
            entity_id: entity_id.to_owned(),
            page: Some(PageRequest {
                page_size: 500,
                page_token,
            }),
        });
        let response = client.get_timeline(request).await?.into_inner();
        entries.extend(response.entries);
        if response.next_page_token.is_empty() {
            return Ok(entries);
        }
        page_token = response.next_page_token;
    }
}

/// Entries verified per call, so that progress can be shown between calls.
const VERIFY_CHUNK: u64 = 20_000;

/// Verifies `from..=to` in chunks of [`VERIFY_CHUNK`], showing progress, and returns one
/// response for the whole range. Each chunk checks the link to the entry before it, so the
/// chunks together check exactly what one call over the range checks.
async fn verify_in_chunks(
    client: &mut ArchiveServiceClient<Channel>,
    identity: &Identity,
    from: u64,
    requested_to: u64,
) -> anyhow::Result<VerifyChainResponse> {
    let from = from.max(1);

    let size = client
        .get_ledger_status(identity.request(GetLedgerStatusRequest {}))
        .await?
        .into_inner()
        .size;
    // The archive caps the range at its head too. Capping it here sizes the chunks and the
    // progress total.
    let to = if requested_to == 0 {
        size
    } else {
        requested_to.min(size)
    };
    if to < from {
        // The archive handles an empty or invalid range itself, so nothing is chunked.
        let request = VerifyChainRequest {
            from_sequence: from,
            to_sequence: requested_to,
        };
        let response = client.verify_chain(identity.request(request)).await?;
        return Ok(response.into_inner());
    }

    let total = to - from + 1;
    let mut progress = Progress::counted("verify", "entries");
    progress.update(0, total);

    let mut combined = VerifyChainResponse {
        ok: true,
        from_sequence: from,
        to_sequence: to,
        ..VerifyChainResponse::default()
    };
    let mut next = from;
    while next <= to {
        let last = (next + VERIFY_CHUNK - 1).min(to);
        let request = VerifyChainRequest {
            from_sequence: next,
            to_sequence: last,
        };
        let chunk = client
            .verify_chain(identity.request(request))
            .await?
            .into_inner();
        combined.checked += chunk.checked;
        combined.head_hash = chunk.head_hash;
        progress.update(combined.checked, total);
        if !chunk.ok {
            combined.ok = false;
            combined.first_broken_sequence = chunk.first_broken_sequence;
            combined.reason = chunk.reason;
            break;
        }
        next = last + 1;
    }

    progress.finish();
    Ok(combined)
}

/// Verifies a range and prints the result; returns false when verification failed.
pub async fn verify(
    address: &str,
    identity: &Identity,
    from: u64,
    to: u64,
    json: bool,
) -> anyhow::Result<bool> {
    let mut client = connect(address).await?;
    let result = verify_in_chunks(&mut client, identity, from, to).await?;
    if json {
        out!(
            "{}",
            serde_json::json!({
                "ok": result.ok,
                "checked": result.checked,
                "from_sequence": result.from_sequence,
                "to_sequence": result.to_sequence,
                "first_broken_sequence": result.first_broken_sequence,
                "reason": result.reason,
                "head_hash": result.head_hash,
            })
        );
    } else if result.ok {
        out!(
            "verified: {} entries ({}..={}) ok, head hash {}",
            result.checked,
            result.from_sequence,
            result.to_sequence,
            result.head_hash
        );
    } else {
        out!(
            "verification FAILED at sequence {}: {} ({} entries verified before it)",
            result.first_broken_sequence,
            result.reason,
            result.checked
        );
    }
    Ok(result.ok)
}

/// Prints one entry by sequence or event id.
pub async fn entry(
    address: &str,
    identity: &Identity,
    key: &str,
    json: bool,
) -> anyhow::Result<bool> {
    let key = match key.parse::<u64>() {
        Ok(sequence) => get_entry_request::Key::Sequence(sequence),
        Err(_) => get_entry_request::Key::EventId(key.to_owned()),
    };
    let mut client = connect(address).await?;
    let entry = client
        .get_entry(identity.request(GetEntryRequest { key: Some(key) }))
        .await?
        .into_inner()
        .entry
        .context("the archive returned no entry")?;
    if json {
        out!("{}", serde_json::to_string_pretty(&entry_json(&entry))?);
    } else {
        let value = entry_json(&entry);
        for (name, field) in value.as_object().into_iter().flatten() {
            out!("{name:>16}: {field}");
        }
    }
    Ok(true)
}

/// Prints the ledger status.
pub async fn status(address: &str, identity: &Identity, json: bool) -> anyhow::Result<bool> {
    let mut client = connect(address).await?;
    let status = client
        .get_ledger_status(identity.request(GetLedgerStatusRequest {}))
        .await?
        .into_inner();
    if json {
        out!(
            "{}",
            serde_json::json!({
                "size": status.size,
                "head_hash": status.head_hash,
                "rejected": status.rejected,
                "conflicts": status.conflicts,
                "last_appended_at": time(status.last_appended_at.as_ref()),
            })
        );
    } else {
        out!("entries:        {}", status.size);
        out!("head hash:      {}", status.head_hash);
        out!("rejected:       {}", status.rejected);
        out!("conflicts:      {}", status.conflicts);
        out!("last appended:  {}", time(status.last_appended_at.as_ref()));
    }
    Ok(true)
}
