//! A history of calls made under load, and the check that the archive contains exactly what
//! those calls promised.
//!
//! Load tasks log every call in a [`Recorder`]: the operation, the entity id and either the
//! event id the call returned or the gRPC error code. [`check_history`] then waits until the
//! producer's outbox has nothing left to deliver, reads the whole ledger through the
//! archive's query API and asserts:
//!
//! - every event id that an OK call returned is archived exactly once;
//! - no event id is archived twice, including those of failed calls, whose events may or may
//!   not exist because a call can commit and still fail on its way back to the caller;
//! - the events of one entity appear in ledger sequence order with `entity_version` strictly
//!   increasing;
//! - the ledger sequence has no gap, and `VerifyChain` passes over all of it.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use trace_proto::archive::v1::{
    Entry, GetLedgerStatusRequest, QueryEntriesRequest, VerifyChainRequest,
};
use trace_proto::common::v1::PageRequest;
use trace_proto::event::v1::GetBacklogRequest;
use trace_proto::event::v1::outbox_service_client::OutboxServiceClient;

use crate::stack::{AUDITOR, archive_client, wait_until_archived};

/// Result of one recorded call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The call returned OK with this trace event id.
    Ok { event_id: String },
    /// The call failed with this gRPC status code.
    Failed { code: tonic::Code },
}

/// One call as the caller saw it.
#[derive(Debug, Clone)]
pub struct Call {
    pub operation: &'static str,
    /// Entity the call acted on; `None` for a create that failed before returning an id.
    pub entity_id: Option<String>,
    pub outcome: Outcome,
}

/// A log of calls, shared by the load tasks of one scenario.
#[derive(Debug, Clone, Default)]
pub struct Recorder {
    calls: Arc<Mutex<Vec<Call>>>,
}

impl Recorder {
    pub fn record_ok(&self, operation: &'static str, entity_id: &str, event_id: String) {
        self.push(Call {
            operation,
            entity_id: Some(entity_id.to_owned()),
            outcome: Outcome::Ok { event_id },
        });
    }

    pub fn record_error(
        &self,
        operation: &'static str,
        entity_id: Option<&str>,
        status: &tonic::Status,
    ) {
        self.push(Call {
            operation,
            entity_id: entity_id.map(str::to_owned),
            outcome: Outcome::Failed {
                code: status.code(),
            },
        });
    }

    fn push(&self, call: Call) {
        self.calls
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(call);
    }

    /// Returns a copy of every call recorded so far.
    pub fn calls(&self) -> Vec<Call> {
        self.calls
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Returns the number of OK calls recorded so far.
    pub fn ok_count(&self) -> usize {
        self.calls
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter(|call| matches!(call.outcome, Outcome::Ok { .. }))
            .count()
    }

    /// Waits until at least `count` calls returned OK, or panics after `timeout`.
    pub async fn wait_for_ok_calls(&self, count: usize, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.ok_count() < count {
            assert!(
                Instant::now() < deadline,
                "only {} of {count} calls returned OK within {timeout:?}",
                self.ok_count()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// Figures of one checked history, for the scenario's summary line.
#[derive(Debug, Clone, Copy)]
pub struct Summary {
    pub calls: usize,
    pub ok: usize,
    pub failed: usize,
    /// Ledger entries read and checked.
    pub archived: usize,
}

/// Waits until the producer at `producer_address` has delivered its whole outbox and every
/// OK call's event is in the archive, then checks the archive's content against `recorder`.
/// Panics on the first violation with the event or entity involved.
pub async fn check_history(
    archive_address: &str,
    producer_address: &str,
    recorder: &Recorder,
    timeout: Duration,
) -> Summary {
    let calls = recorder.calls();
    let ok_event_ids: Vec<String> = calls
        .iter()
        .filter_map(|call| match &call.outcome {
            Outcome::Ok { event_id } => Some(event_id.clone()),
            Outcome::Failed { .. } => None,
        })
        .collect();
    let failed = calls.len() - ok_event_ids.len();

    wait_until_archived(archive_address, &ok_event_ids, timeout).await;
    wait_until_outbox_delivered(producer_address, timeout).await;
    let entries = read_ledger(archive_address).await;

    assert_no_duplicate_event(&entries);
    assert_every_ok_call_archived(&entries, &calls);
    let unrequested = entries.len() - ok_event_ids.len();
    assert!(
        unrequested <= failed,
        "{unrequested} archived events belong to no OK call, but only {failed} calls failed"
    );
    let out_of_order = count_entity_order_violations(&entries);
    assert_eq!(
        out_of_order, 0,
        "ledger entries out of their entity's version order"
    );
    assert_sequence_contiguous(&entries);
    assert_chain_verifies(archive_address, entries.len() as u64).await;

    Summary {
        calls: calls.len(),
        ok: ok_event_ids.len(),
        failed,
        archived: entries.len(),
    }
}

/// Polls the producer's outbox status until no event is waiting for an archive receipt.
async fn wait_until_outbox_delivered(address: &str, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    let channel = tonic::transport::Channel::from_shared(address.to_owned())
        .expect("producer address")
        .connect_lazy();
    let mut client = OutboxServiceClient::new(channel);
    loop {
        let backlog = client
            .get_backlog(AUDITOR.request(GetBacklogRequest {}))
            .await
            .map(tonic::Response::into_inner);
        match backlog {
            Ok(backlog) if backlog.unarchived == 0 => return,
            Ok(backlog) => assert!(
                Instant::now() < deadline,
                "{} events still unarchived after {timeout:?} ({} unpublished)",
                backlog.unarchived,
                backlog.unpublished
            ),
            Err(status) => assert!(
                Instant::now() < deadline,
                "outbox status at {address} unavailable after {timeout:?}: {status}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Reads every ledger entry through `QueryEntries`, in sequence order.
pub async fn read_ledger(address: &str) -> Vec<Entry> {
    let mut client = archive_client(address).await;
    let mut entries = Vec::new();
    let mut page_token = String::new();
    loop {
        let response = client
            .query_entries(AUDITOR.request(QueryEntriesRequest {
                page: Some(PageRequest {
                    page_size: 500,
                    page_token,
                }),
                ..QueryEntriesRequest::default()
            }))
            .await
            .expect("query entries")
            .into_inner();
        entries.extend(response.entries);
        if response.next_page_token.is_empty() {
            entries.sort_by_key(|entry| entry.sequence);
            return entries;
        }
        page_token = response.next_page_token;
    }
}

fn assert_no_duplicate_event(entries: &[Entry]) {
    let mut first_sequence: HashMap<&str, u64> = HashMap::new();
    for entry in entries {
        if let Some(earlier) = first_sequence.insert(&entry.event_id, entry.sequence) {
            panic!(
                "event {} is archived twice, at sequences {earlier} and {}",
                entry.event_id, entry.sequence
            );
        }
    }
}

fn assert_every_ok_call_archived(entries: &[Entry], calls: &[Call]) {
    let archived: HashMap<&str, &Entry> = entries
        .iter()
        .map(|entry| (entry.event_id.as_str(), entry))
        .collect();
    for call in calls {
        let Outcome::Ok { event_id } = &call.outcome else {
            continue;
        };
        let Some(entry) = archived.get(event_id.as_str()) else {
            panic!(
                "event {event_id} of an OK {} call is not archived",
                call.operation
            );
        };
        assert_eq!(
            Some(&entry.entity_id),
            call.entity_id.as_ref(),
            "event {event_id} of a {} call is archived for another entity",
            call.operation
        );
    }
}

/// Counts the entries whose entity version is not above the previous entry of the same
/// entity, and prints each one.
fn count_entity_order_violations(entries: &[Entry]) -> usize {
    let mut last_version: BTreeMap<(&str, &str), (u64, u64)> = BTreeMap::new();
    let mut violations = 0;
    for entry in entries {
        let key = (entry.entity_type.as_str(), entry.entity_id.as_str());
        if let Some((version, sequence)) = last_version.get(&key)
            && entry.entity_version <= *version
        {
            violations += 1;
            eprintln!(
                "out of order: {} {} version {} at sequence {} follows version {version} at sequence {sequence}",
                entry.entity_type, entry.entity_id, entry.entity_version, entry.sequence
            );
        }
        let highest = last_version
            .get(&key)
            .map_or(entry.entity_version, |(version, _)| {
                (*version).max(entry.entity_version)
            });
        last_version.insert(key, (highest, entry.sequence));
    }
    violations
}

fn assert_sequence_contiguous(entries: &[Entry]) {
    for (index, entry) in entries.iter().enumerate() {
        assert_eq!(
            entry.sequence,
            index as u64 + 1,
            "ledger sequence has a gap before event {}",
            entry.event_id
        );
    }
}

async fn assert_chain_verifies(address: &str, entries_read: u64) {
    let mut client = archive_client(address).await;
    let status = client
        .get_ledger_status(AUDITOR.request(GetLedgerStatusRequest {}))
        .await
        .expect("ledger status")
        .into_inner();
    assert_eq!(
        status.size, entries_read,
        "ledger size differs from the entries the query API returned"
    );
    let verification = client
        .verify_chain(AUDITOR.request(VerifyChainRequest::default()))
        .await
        .expect("verify chain")
        .into_inner();
    assert!(
        verification.ok,
        "chain broken at {}: {}",
        verification.first_broken_sequence, verification.reason
    );
    assert_eq!(verification.checked, status.size);
}
