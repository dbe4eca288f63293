//! The call mix of `tracectl bench`: document drafts and revisions, meeting plans, project
//! progress reports and communication records, each a write that returns the id of the
//! one trace event it staged.

use std::time::Duration;

use anyhow::Context;
use chrono::{NaiveDate, TimeDelta, Utc};
use tonic::transport::{Channel, Endpoint};
use trace_proto::common::v1::Confidentiality;
use trace_proto::document::v1::document_service_client::DocumentServiceClient;
use trace_proto::document::v1::{CreateDraftRequest, ReviseDraftRequest};
use trace_proto::meeting::v1 as meeting;
use trace_proto::meeting::v1::meeting_service_client::MeetingServiceClient;
use trace_proto::project::v1 as project;
use trace_proto::project::v1::project_service_client::ProjectServiceClient;
use trace_proto::worklog::v1 as worklog;
use trace_proto::worklog::v1::worklog_service_client::WorklogServiceClient;
use trace_runtime::auth::Claims;
use trace_runtime::clock::proto_date;
use trace_runtime::config::AuthSettings;

use crate::Identity;
use crate::demo::Addresses;

/// Lifetime of the development tokens minted for one run; longer than any sensible run.
const TOKEN_TTL: Duration = Duration::from_secs(24 * 3600);

/// Time allowed for connecting to a service before the run fails.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Business time zone of the `make run` stack, for the dates of progress reports.
const BUSINESS_ZONE: chrono_tz::Tz = chrono_tz::Asia::Shanghai;

/// One gRPC method of the mix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum CallKind {
    CreateDraft,
    ReviseDraft,
    PlanMeeting,
    RecordProgress,
    RecordCommunication,
}

impl CallKind {
    /// Every kind, in the order reports list them.
    pub const ALL: [CallKind; 5] = [
        CallKind::CreateDraft,
        CallKind::ReviseDraft,
        CallKind::PlanMeeting,
        CallKind::RecordProgress,
        CallKind::RecordCommunication,
    ];

    /// Service and method name, as reports print them.
    pub fn name(self) -> &'static str {
        match self {
            CallKind::CreateDraft => "document.CreateDraft",
            CallKind::ReviseDraft => "document.ReviseDraft",
            CallKind::PlanMeeting => "meeting.PlanMeeting",
            CallKind::RecordProgress => "project.RecordProgress",
            CallKind::RecordCommunication => "worklog.RecordCommunication",
        }
    }
}

/// The repeating mix, one entry per call: 40% revisions, 10% new drafts, 10% meeting
/// plans, 20% progress reports and 20% communication records.
const MIX: [CallKind; 10] = [
    CallKind::ReviseDraft,
    CallKind::RecordProgress,
    CallKind::RecordCommunication,
    CallKind::ReviseDraft,
    CallKind::CreateDraft,
    CallKind::ReviseDraft,
    CallKind::RecordProgress,
    CallKind::PlanMeeting,
    CallKind::RecordCommunication,
    CallKind::ReviseDraft,
];

/// Returns the kind of call number `index` of a run.
pub fn kind_of(index: u64) -> CallKind {
    MIX[(index % MIX.len() as u64) as usize]
}

/// The directory users of the mix, each with a token minted once for the whole run.
struct People {
    /// Drafts and revises documents.
    drafter: Identity,
    /// Plans meetings, applies for and manages the projects, records progress.
    manager: Identity,
    /// First approver of the projects.
    department_head: Identity,
    /// Second approver of the projects.
    general_manager: Identity,
    /// Records communications with colleagues.
    developer: Identity,
}

impl People {
    fn mint() -> anyhow::Result<Self> {
        Ok(Self {
            drafter: minted("zhang.min", "admin-office", &["employee"])?,
            manager: minted("wu.lei", "engineering", &["supervisor"])?,
            department_head: minted("huang.wei", "engineering", &["department_head"])?,
            general_manager: minted("zhou.jian", "management", &["department_head"])?,
            developer: minted("xu.fang", "engineering", &["employee"])?,
        })
    }
}

/// Mints a development token once, so that calls do not sign a JWT each.
fn minted(user_id: &str, department: &str, roles: &[&str]) -> anyhow::Result<Identity> {
    let claims = Claims {
        sub: user_id.to_owned(),
        name: String::new(),
        department: department.to_owned(),
        roles: roles.iter().map(|role| (*role).to_owned()).collect(),
        clearance: None,
    };
    let token = trace_runtime::auth::mint_token(&AuthSettings::default(), &claims, TOKEN_TTL)
        .with_context(|| format!("failed to mint a development token for {user_id}"))?;
    let bearer = format!("Bearer {token}")
        .parse()
        .context("a minted token is not a valid header value")?;
    Ok(Identity {
        user_id: user_id.to_owned(),
        department: department.to_owned(),
        roles: roles.iter().map(|role| (*role).to_owned()).collect(),
        bearer: Some(bearer),
    })
}

/// Clients of the four domain services, the people who call them, and the documents and
/// projects that revisions and progress reports go to.
pub struct Workload {
    documents: DocumentServiceClient<Channel>,
    meetings: MeetingServiceClient<Channel>,
    projects: ProjectServiceClient<Channel>,
    worklogs: WorklogServiceClient<Channel>,
    people: People,
    document_ids: Vec<String>,
    project_ids: Vec<String>,
}

impl std::fmt::Debug for Workload {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Workload")
            .field("document_ids", &self.document_ids.len())
            .field("project_ids", &self.project_ids.len())
            .finish_non_exhaustive()
    }
}

async fn channel(service: &str, address: &str) -> anyhow::Result<Channel> {
    Endpoint::from_shared(address.to_owned())
        .with_context(|| format!("invalid {service} address {address:?}"))?
        .connect_timeout(CONNECT_TIMEOUT)
        .connect()
        .await
        .with_context(|| format!("failed to connect to the {service} service at {address}"))
}

impl Workload {
    /// Connects to the services and creates `documents` drafts and `projects` started
    /// projects for the run to revise and report on. These set-up calls are not measured.
    pub async fn prepare(
        addresses: &Addresses,
        documents: usize,
        projects: usize,
    ) -> anyhow::Result<Self> {
        let mut workload = Self {
            documents: DocumentServiceClient::new(channel("document", &addresses.document).await?),
            meetings: MeetingServiceClient::new(channel("meeting", &addresses.meeting).await?),
            projects: ProjectServiceClient::new(channel("project", &addresses.project).await?),
            worklogs: WorklogServiceClient::new(channel("worklog", &addresses.worklog).await?),
            people: People::mint()?,
            document_ids: Vec::new(),
            project_ids: Vec::new(),
        };
        for index in 0..documents.max(1) {
            let document_id = workload
                .create_draft(index as u64)
                .await
                .context("failed to create a draft for the run")?
                .0;
            workload.document_ids.push(document_id);
        }
        for _ in 0..projects.max(1) {
            let project_id = workload.start_project().await?;
            workload.project_ids.push(project_id);
        }
        Ok(workload)
    }

    /// Makes call number `index` of the run and returns the event id it returned.
    pub async fn call(&self, index: u64) -> Result<String, tonic::Status> {
        match kind_of(index) {
            CallKind::CreateDraft => self.create_draft(index).await.map(|(_, event)| event),
            CallKind::ReviseDraft => self.revise_draft(index).await,
            CallKind::PlanMeeting => self.plan_meeting(index).await,
            CallKind::RecordProgress => self.record_progress(index).await,
            CallKind::RecordCommunication => self.record_communication(index).await,
        }
    }

    /// Returns the new document id and the event id.
    async fn create_draft(&self, index: u64) -> Result<(String, String), tonic::Status> {
        let request = self.people.drafter.request(CreateDraftRequest {
            title: format!("供應商合作協議 第 {index} 號"),
            category: "CONTRACT".to_owned(),
            department: "admin-office".to_owned(),
            confidentiality: Confidentiality::Internal as i32,
            content: format!("第一條 合作範圍 (load test draft {index})").into_bytes(),
            media_type: "text/plain; charset=utf-8".to_owned(),
        });
        let response = self.documents.clone().create_draft(request).await?;
        let response = response.into_inner();
        let document_id = response
            .document
            .map(|document| document.document_id)
            .unwrap_or_default();
        Ok((document_id, response.event_id))
    }

    async fn revise_draft(&self, index: u64) -> Result<String, tonic::Status> {
        let document_id = pick(&self.document_ids, index);
        let request = self.people.drafter.request(ReviseDraftRequest {
            document_id: document_id.to_owned(),
            content: format!("第一條 合作範圍……\n修訂 {index}：補充付款條款").into_bytes(),
            media_type: "text/plain; charset=utf-8".to_owned(),
            change_summary: format!("load test revision {index}"),
        });
        let response = self.documents.clone().revise_draft(request).await?;
        Ok(response.into_inner().event_id)
    }

    async fn plan_meeting(&self, index: u64) -> Result<String, tonic::Status> {
        // The service rejects a start in the past, so the meeting starts an hour ahead.
        let start = Utc::now() + TimeDelta::hours(1);
        let end = start + TimeDelta::hours(1);
        let attendees = ["wu.lei", "xu.fang", "ma.chao", "huang.wei"];
        let request = self.people.manager.request(meeting::PlanMeetingRequest {
            topic: format!("每週進度協調會 {index}"),
            start_time: Some(timestamp(start)),
            end_time: Some(timestamp(end)),
            channel: meeting::Channel::InPerson as i32,
            location: "總部大樓 5 樓第二會議室".to_owned(),
            attendee_ids: attendees.iter().map(|id| (*id).to_owned()).collect(),
            agenda: vec![meeting::AgendaItem {
                title: "本週進度與風險".to_owned(),
                presenter_id: "xu.fang".to_owned(),
            }],
            confidentiality: Confidentiality::Internal as i32,
        });
        let response = self.meetings.clone().plan_meeting(request).await?;
        Ok(response.into_inner().event_id)
    }

    async fn record_progress(&self, index: u64) -> Result<String, tonic::Status> {
        let project_id = pick(&self.project_ids, index);
        let today = proto_date(today());
        let request = self.people.manager.request(project::RecordProgressRequest {
            project_id: project_id.to_owned(),
            period_start: Some(today),
            period_end: Some(today),
            progress: format!("完成借閱模塊第 {index} 項測試用例。"),
            problems: String::new(),
            solutions: String::new(),
            meeting_id: String::new(),
        });
        let response = self.projects.clone().record_progress(request).await?;
        Ok(response.into_inner().event_id)
    }

    async fn record_communication(&self, index: u64) -> Result<String, tonic::Status> {
        let request = self
            .people
            .developer
            .request(worklog::RecordCommunicationRequest {
                scope: worklog::CommunicationScope::Internal as i32,
                channel: worklog::CommunicationChannel::Email as i32,
                occurred_at: Some(timestamp(Utc::now() - TimeDelta::minutes(1))),
                subject: format!("借閱模塊接口確認 {index}"),
                participant_ids: vec!["xu.fang".to_owned(), "ma.chao".to_owned()],
                content: "確認歸還接口的字段與錯誤碼。".to_owned(),
                confidentiality: Confidentiality::Internal as i32,
                ..worklog::RecordCommunicationRequest::default()
            });
        let response = self.worklogs.clone().record_communication(request).await?;
        Ok(response.into_inner().event_id)
    }

    /// Applies for a project, has both approvers approve it and starts it.
    async fn start_project(&mut self) -> anyhow::Result<String> {
        let people = &self.people;
        let today = today();
        let approval_chain = [&people.department_head, &people.general_manager]
            .iter()
            .map(|approver| project::ApproverEntry {
                approver_id: approver.user_id.clone(),
                required: true,
            })
            .collect();
        let request = people.manager.request(project::SubmitApplicationRequest {
            name: "借閱模塊壓力測試項目".to_owned(),
            department: "engineering".to_owned(),
            confidentiality: Confidentiality::Internal as i32,
            background: "驗證檔案系統在持續負載下的留痕能力。".to_owned(),
            goals: "每次調用都在檔案庫中留下可驗證的記錄。".to_owned(),
            tasks: vec![project::Task {
                title: "負載測試".to_owned(),
                description: "以固定速率調用各服務。".to_owned(),
            }],
            milestones: vec![project::Milestone {
                name: "測試完成".to_owned(),
                due_date: Some(proto_date(days_after(today, 30)?)),
            }],
            resource_needs: "測試服務器 1 台。".to_owned(),
            expected_results: "吞吐量與延遲數據。".to_owned(),
            approval_chain,
        });
        let submitted = self
            .projects
            .submit_application(request)
            .await
            .context("failed to submit a project application for the run")?
            .into_inner();
        let project_id = submitted
            .project
            .context("submit application returned no project")?
            .project_id;
        for approver in [&people.department_head, &people.general_manager] {
            let request = approver.request(project::RecordApprovalRequest {
                project_id: project_id.clone(),
                decision: project::ApprovalDecision::Approve as i32,
                opinion: "同意。".to_owned(),
            });
            self.projects
                .record_approval(request)
                .await
                .with_context(|| format!("failed to approve project {project_id}"))?;
        }
        let request = people.manager.request(project::StartProjectRequest {
            project_id: project_id.clone(),
        });
        self.projects
            .start_project(request)
            .await
            .with_context(|| format!("failed to start project {project_id}"))?;
        Ok(project_id)
    }
}

/// Spreads calls over the prepared entities, so that several calls in flight rarely wait
/// for the same row.
fn pick(ids: &[String], index: u64) -> &str {
    &ids[(index / MIX.len() as u64 % ids.len() as u64) as usize]
}

fn timestamp(instant: chrono::DateTime<Utc>) -> prost_types::Timestamp {
    trace_runtime::clock::timestamp(instant.timestamp_micros())
}

fn today() -> NaiveDate {
    trace_runtime::clock::local_date(Utc::now(), BUSINESS_ZONE)
}

fn days_after(date: NaiveDate, days: u64) -> anyhow::Result<NaiveDate> {
    date.checked_add_days(chrono::Days::new(days))
        .with_context(|| format!("date overflow adding {days} days to {date}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mix_has_documented_shares() {
        let count = |kind| (0..1000).filter(|index| kind_of(*index) == kind).count();

        assert_eq!(count(CallKind::ReviseDraft), 400);
        assert_eq!(count(CallKind::CreateDraft), 100);
        assert_eq!(count(CallKind::PlanMeeting), 100);
        assert_eq!(count(CallKind::RecordProgress), 200);
        assert_eq!(count(CallKind::RecordCommunication), 200);
    }

    #[test]
    fn pick_spreads_calls_over_entities() {
        let ids: Vec<String> = (0..4).map(|id| id.to_string()).collect();

        let picked: Vec<&str> = (0..40).step_by(10).map(|index| pick(&ids, index)).collect();

        assert_eq!(picked, ["0", "1", "2", "3"]);
    }
}
