//! `tracectl demo`: drives a document lifecycle, a meeting whose resolutions are followed up,
//! a project from application to closing, a week of work reports and an inspection through
//! the running stack. It then waits until every event is archived, prints the timelines and
//! verifies the chain.

mod document;
mod inspection;
mod meeting;
mod project;
mod worklog;

use std::time::{Duration, Instant};

use anyhow::Context;
use trace_proto::archive::v1::archive_service_client::ArchiveServiceClient;
use trace_proto::archive::v1::{GetEntryRequest, get_entry_request};
use trace_proto::document::v1::document_service_client::DocumentServiceClient;
use trace_proto::meeting::v1::meeting_service_client::MeetingServiceClient;
use trace_proto::project::v1::project_service_client::ProjectServiceClient;
use trace_proto::worklog::v1::worklog_service_client::WorklogServiceClient;

use crate::Identity;

/// Business time zone of the demo stack's services.
const BUSINESS_ZONE: chrono_tz::Tz = chrono_tz::Asia::Shanghai;

/// gRPC addresses of the services that the demo calls.
#[derive(Debug, Clone)]
pub struct Addresses {
    pub document: String,
    pub meeting: String,
    pub project: String,
    pub worklog: String,
    pub inspection: String,
    pub archive: String,
}

/// The events that the demo expects in the archive.
#[derive(Debug, Default)]
struct Trace {
    /// Event ids that the calls returned.
    event_ids: Vec<String>,
    /// Latest version of entities that also changed without returning an event id, for
    /// example a resolution opened by recorded minutes or marked overdue.
    entities: Vec<EntityVersion>,
}

/// One entity and the version its archived timeline must reach.
#[derive(Debug)]
struct EntityVersion {
    entity_type: &'static str,
    entity_id: String,
    version: u64,
}

impl Trace {
    fn extend(&mut self, other: Trace) {
        self.event_ids.extend(other.event_ids);
        self.entities.extend(other.entities);
    }
}

/// Builds the identity of a directory user with the given department and roles.
fn person(user_id: &str, department: &str, roles: &[&str]) -> Identity {
    Identity {
        user_id: user_id.to_owned(),
        department: department.to_owned(),
        roles: roles.iter().map(|role| (*role).to_owned()).collect(),
        bearer: None,
    }
}

/// Returns today's date in the business time zone.
fn today() -> chrono::NaiveDate {
    trace_runtime::clock::local_date(chrono::Utc::now(), BUSINESS_ZONE)
}

/// Returns the date `days` after `date`.
fn days_after(date: chrono::NaiveDate, days: u64) -> anyhow::Result<chrono::NaiveDate> {
    date.checked_add_days(chrono::Days::new(days))
        .with_context(|| format!("date overflow adding {days} days to {date}"))
}

/// Runs the demo; returns false when the archived trace does not verify.
pub async fn run(addresses: &Addresses, timeout_secs: u64) -> anyhow::Result<bool> {
    let mut trace = Trace::default();

    let mut documents = DocumentServiceClient::connect(addresses.document.clone())
        .await
        .with_context(|| {
            format!(
                "failed to connect to the document service at {}",
                addresses.document
            )
        })?;
    let (document_id, event_ids) = document::lifecycle(&mut documents).await?;
    out!(
        "document {document_id}: {} calls succeeded",
        event_ids.len()
    );
    trace.event_ids.extend(event_ids);
    let (_, event_ids) = document::confidential_access(&mut documents).await?;
    trace.event_ids.extend(event_ids);

    let mut meetings = MeetingServiceClient::connect(addresses.meeting.clone())
        .await
        .with_context(|| {
            format!(
                "failed to connect to the meeting service at {}",
                addresses.meeting
            )
        })?;
    let meeting = meeting::lifecycle(&mut meetings).await?;
    trace.extend(meeting.trace);

    let mut projects = ProjectServiceClient::connect(addresses.project.clone())
        .await
        .with_context(|| {
            format!(
                "failed to connect to the project service at {}",
                addresses.project
            )
        })?;
    let (project_id, event_ids) =
        project::lifecycle(&mut projects, &document_id, &meeting.meeting_id).await?;
    out!("project {project_id}: {} calls succeeded", event_ids.len());
    trace.event_ids.extend(event_ids);

    let (worklog, event_ids) = worklog_week(addresses).await?;
    trace.event_ids.extend(event_ids);

    let mut inspections = crate::completeness::connect(&addresses.inspection).await?;
    let findings = inspection::lifecycle(&mut inspections, &worklog).await?;
    let finding_ids: Vec<String> = findings
        .iter()
        .map(|finding| finding.entity_id.clone())
        .collect();
    trace.entities.extend(findings);

    let archive = &addresses.archive;
    let auditor = person("audit.demo", "audit", &["audit"]);
    wait_until_archived(archive, &auditor, &trace, timeout_secs).await?;
    let timelines = [
        ("document", document_id.as_str()),
        ("meeting", meeting.meeting_id.as_str()),
        ("resolution", meeting.delayed_resolution_id.as_str()),
        ("project", project_id.as_str()),
        ("periodic_report", worklog.weekly_report_id.as_str()),
    ];
    let finding_timelines = finding_ids.iter().map(|id| ("finding", id.as_str()));
    for (entity_type, entity_id) in timelines.into_iter().chain(finding_timelines) {
        crate::archive::timeline(archive, &auditor, entity_type, entity_id, false).await?;
        out!();
    }
    crate::archive::verify(archive, &auditor, 1, 0, false).await
}

/// Runs the worklog part; returns its outcome and the event ids its calls returned.
async fn worklog_week(
    addresses: &Addresses,
) -> anyhow::Result<(worklog::WorklogOutcome, Vec<String>)> {
    let mut worklogs = WorklogServiceClient::connect(addresses.worklog.clone())
        .await
        .with_context(|| {
            format!(
                "failed to connect to the worklog service at {}",
                addresses.worklog
            )
        })?;
    let mut outcome = worklog::week(&mut worklogs).await?;
    let event_ids = std::mem::take(&mut outcome.event_ids);
    out!(
        "worklog week of {}: {} calls succeeded",
        outcome.week_start,
        event_ids.len()
    );
    Ok((outcome, event_ids))
}

/// Polls the archive until every expected event is stored, or fails after the timeout.
async fn wait_until_archived(
    address: &str,
    identity: &Identity,
    trace: &Trace,
    timeout_secs: u64,
) -> anyhow::Result<()> {
    let mut client = crate::archive::connect(address).await?;
    let deadline = Instant::now() + Duration::from_secs(timeout_secs);
    for event_id in &trace.event_ids {
        wait_for_event(&mut client, identity, event_id, deadline).await?;
    }
    for entity in &trace.entities {
        wait_for_version(&mut client, identity, entity, deadline).await?;
    }
    out!(
        "all {} events and {} entity histories archived",
        trace.event_ids.len(),
        trace.entities.len()
    );
    Ok(())
}

async fn wait_for_event(
    client: &mut ArchiveServiceClient<tonic::transport::Channel>,
    identity: &Identity,
    event_id: &str,
    deadline: Instant,
) -> anyhow::Result<()> {
    loop {
        let request = identity.request(GetEntryRequest {
            key: Some(get_entry_request::Key::EventId(event_id.to_owned())),
        });
        match client.get_entry(request).await {
            Ok(_) => return Ok(()),
            Err(status) if status.code() == tonic::Code::NotFound && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(status) => anyhow::bail!("event {event_id} is not archived: {status}"),
        }
    }
}

async fn wait_for_version(
    client: &mut ArchiveServiceClient<tonic::transport::Channel>,
    identity: &Identity,
    entity: &EntityVersion,
    deadline: Instant,
) -> anyhow::Result<()> {
    let EntityVersion {
        entity_type,
        entity_id,
        version,
    } = entity;
    loop {
        let entries =
            crate::archive::fetch_timeline(client, identity, entity_type, entity_id).await?;
        let archived = entries.iter().map(|entry| entry.entity_version).max();
        if archived >= Some(*version) {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "{entity_type} {entity_id} is archived up to version {}, not {version}",
            archived.unwrap_or(0)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
