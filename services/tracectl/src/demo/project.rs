//! The project part of the demo: an application approved by two approvers in turn, the
//! project's work with a team member, progress, a document update and an approved decision,
//! then acceptance by an independent group, the summary and the closing.

use anyhow::Context;
use chrono::NaiveDate;
use tonic::transport::Channel;
use trace_proto::common::v1::Confidentiality;
use trace_proto::project::v1 as proto;
use trace_proto::project::v1::project_service_client::ProjectServiceClient;
use trace_runtime::clock::proto_date;

use super::{days_after, person, today};
use crate::Identity;

type Client = ProjectServiceClient<Channel>;

/// The directory users who take part in the project.
struct People {
    manager: Identity,
    /// First approver of the application, and approver of the project's decision.
    department_head: Identity,
    general_manager: Identity,
    developer: Identity,
    /// Sets the acceptance group.
    administration_head: Identity,
    /// Acceptance group lead, from outside the team as the service requires.
    auditor: Identity,
    finance_head: Identity,
}

impl People {
    fn new() -> Self {
        Self {
            manager: person("wu.lei", "engineering", &["supervisor"]),
            department_head: person("huang.wei", "engineering", &["department_head"]),
            general_manager: person("zhou.jian", "management", &["department_head"]),
            developer: person("xu.fang", "engineering", &["employee"]),
            administration_head: person(
                "li.na",
                "admin-office",
                &["department_head", "administration"],
            ),
            auditor: person("qian.hao", "audit", &["employee", "audit"]),
            finance_head: person("sun.li", "finance", &["department_head", "finance"]),
        }
    }
}

/// The ids that link the project to the rest of the demo.
struct Links<'a> {
    /// Registered document used as the test report.
    document_id: &'a str,
    /// Meeting where the progress was discussed.
    meeting_id: &'a str,
}

/// Drives one project from its application to its closing and returns its id and the
/// event ids. The demo document serves as the test report, and the demo meeting as the meeting
/// of the progress report.
pub(super) async fn lifecycle(
    client: &mut Client,
    document_id: &str,
    meeting_id: &str,
) -> anyhow::Result<(String, Vec<String>)> {
    let people = People::new();
    let links = Links {
        document_id,
        meeting_id,
    };
    let today = today();
    let mut events = Vec::new();

    let (project_id, event_id) = submit_application(client, &people, today).await?;
    events.push(event_id);
    out!("applied for project {project_id}");

    for approver in [&people.department_head, &people.general_manager] {
        events.push(approve_application(client, approver, &project_id).await?);
    }

    events.push(start(client, &people.manager, &project_id).await?);

    events.push(add_member(client, &people, &project_id).await?);

    events.push(record_progress(client, &people.developer, &project_id, &links, today).await?);

    events.push(record_document_update(client, &people.developer, &project_id, &links).await?);

    let (decision_id, event_id) = record_decision(client, &people, &project_id).await?;
    events.push(event_id);

    let approver = &people.department_head;
    events.push(approve_decision(client, approver, &project_id, &decision_id).await?);

    events.push(apply_for_acceptance(client, &people.manager, &project_id, &links).await?);

    events.push(set_acceptance_group(client, &people, &project_id).await?);

    for member in [&people.auditor, &people.finance_head] {
        events.push(sign_off(client, member, &project_id).await?);
    }

    events.push(record_passed(client, &people.auditor, &project_id).await?);
    out!("project {project_id} passed acceptance");

    events.push(submit_summary(client, &people.manager, &project_id).await?);

    events.push(close(client, &people.manager, &project_id).await?);
    out!("closed project {project_id}");

    Ok((project_id, events))
}

async fn submit_application(
    client: &mut Client,
    people: &People,
    today: NaiveDate,
) -> anyhow::Result<(String, String)> {
    let approval_chain = [&people.department_head, &people.general_manager]
        .iter()
        .map(|approver| proto::ApproverEntry {
            approver_id: approver.user_id.clone(),
            required: true,
        })
        .collect();
    let submitted = client
        .submit_application(people.manager.request(proto::SubmitApplicationRequest {
            name: "檔案管理系統升級項目".to_owned(),
            department: "engineering".to_owned(),
            confidentiality: Confidentiality::Internal as i32,
            background: "現有檔案管理依賴紙本登記，借閱逾期與損壞難以追溯。".to_owned(),
            goals: "上線電子化檔案管理系統，實現登記、借閱、歸還全程留痕。".to_owned(),
            tasks: tasks(),
            milestones: milestones(today)?,
            resource_needs: "研發 2 人、測試 1 人，服務器 2 台，預算人民幣 30 萬元。".to_owned(),
            expected_results: "借閱審批線上化，逾期自動提醒，審計可查全部歷史。".to_owned(),
            approval_chain,
        }))
        .await
        .context("submit application")?
        .into_inner();
    let project_id = submitted
        .project
        .context("submit application returned no project")?
        .project_id;
    Ok((project_id, submitted.event_id))
}

fn tasks() -> Vec<proto::Task> {
    vec![
        proto::Task {
            title: "需求調研".to_owned(),
            description: "訪談行政部與財務部，整理借閱審批流程。".to_owned(),
        },
        proto::Task {
            title: "系統開發與測試".to_owned(),
            description: "完成登記、借閱、歸還模塊及回歸測試。".to_owned(),
        },
    ]
}

/// Milestones from today, which the service requires as the earliest date.
fn milestones(today: NaiveDate) -> anyhow::Result<Vec<proto::Milestone>> {
    let schedule = [("需求確認", 14), ("系統上線", 60), ("項目驗收", 90)];
    schedule
        .into_iter()
        .map(|(name, days)| {
            Ok(proto::Milestone {
                name: name.to_owned(),
                due_date: Some(proto_date(days_after(today, days)?)),
            })
        })
        .collect()
}

async fn approve_application(
    client: &mut Client,
    approver: &Identity,
    project_id: &str,
) -> anyhow::Result<String> {
    let approved = client
        .record_approval(approver.request(proto::RecordApprovalRequest {
            project_id: project_id.to_owned(),
            decision: proto::ApprovalDecision::Approve as i32,
            opinion: "同意立項，請按里程碑推進。".to_owned(),
        }))
        .await
        .with_context(|| format!("record approval by {}", approver.user_id))?
        .into_inner();
    Ok(approved.event_id)
}

async fn start(
    client: &mut Client,
    manager: &Identity,
    project_id: &str,
) -> anyhow::Result<String> {
    let started = client
        .start_project(manager.request(proto::StartProjectRequest {
            project_id: project_id.to_owned(),
        }))
        .await
        .context("start project")?
        .into_inner();
    Ok(started.event_id)
}

async fn add_member(
    client: &mut Client,
    people: &People,
    project_id: &str,
) -> anyhow::Result<String> {
    let developer = &people.developer;
    let added = client
        .add_member(people.manager.request(proto::AddMemberRequest {
            project_id: project_id.to_owned(),
            user_id: developer.user_id.clone(),
            name: "徐芳".to_owned(),
            department: developer.department.clone(),
            position: "軟件工程師".to_owned(),
            duties: "負責借閱與歸還模塊的開發及操作手冊編寫。".to_owned(),
        }))
        .await
        .context("add member")?
        .into_inner();
    Ok(added.event_id)
}

async fn record_progress(
    client: &mut Client,
    reporter: &Identity,
    project_id: &str,
    links: &Links<'_>,
    today: NaiveDate,
) -> anyhow::Result<String> {
    // The project started today, and the service rejects a period that ends in the future.
    let reported = client
        .record_progress(reporter.request(proto::RecordProgressRequest {
            project_id: project_id.to_owned(),
            period_start: Some(proto_date(today)),
            period_end: Some(proto_date(today)),
            progress: "登記與借閱模塊開發完成，進入回歸測試。".to_owned(),
            problems: "測試環境的歷史檔案數據尚未遷移。".to_owned(),
            solutions: "協調會議決定延期補測借閱模塊。".to_owned(),
            meeting_id: links.meeting_id.to_owned(),
        }))
        .await
        .context("record progress")?
        .into_inner();
    Ok(reported.event_id)
}

async fn record_document_update(
    client: &mut Client,
    author: &Identity,
    project_id: &str,
    links: &Links<'_>,
) -> anyhow::Result<String> {
    let recorded = client
        .record_document_update(author.request(proto::RecordDocumentUpdateRequest {
            project_id: project_id.to_owned(),
            kind: proto::DocumentKind::TestReport as i32,
            document_id: links.document_id.to_owned(),
            summary: "上傳回歸測試報告第一版。".to_owned(),
        }))
        .await
        .context("record document update")?
        .into_inner();
    Ok(recorded.event_id)
}

async fn record_decision(
    client: &mut Client,
    people: &People,
    project_id: &str,
) -> anyhow::Result<(String, String)> {
    let recorded = client
        .record_decision(people.manager.request(proto::RecordDecisionRequest {
            project_id: project_id.to_owned(),
            kind: proto::DecisionKind::TechnicalChange as i32,
            process: "項目組評審會討論兩種存儲方案並比較成本。".to_owned(),
            reason: "原方案的本地磁盤無法滿足異地備份要求。".to_owned(),
            content: "檔案正文改存對象存儲，並每日同步至蘇州分部。".to_owned(),
            approver_id: people.department_head.user_id.clone(),
        }))
        .await
        .context("record decision")?
        .into_inner();
    let decision_id = recorded
        .decision
        .context("record decision returned no decision")?
        .decision_id;
    Ok((decision_id, recorded.event_id))
}

async fn approve_decision(
    client: &mut Client,
    approver: &Identity,
    project_id: &str,
    decision_id: &str,
) -> anyhow::Result<String> {
    let approved = client
        .approve_decision(approver.request(proto::ApproveDecisionRequest {
            project_id: project_id.to_owned(),
            decision_id: decision_id.to_owned(),
            decision: proto::ApprovalDecision::Approve as i32,
            opinion: "同意變更，注意控制存儲成本。".to_owned(),
        }))
        .await
        .context("approve decision")?
        .into_inner();
    Ok(approved.event_id)
}

async fn apply_for_acceptance(
    client: &mut Client,
    manager: &Identity,
    project_id: &str,
    links: &Links<'_>,
) -> anyhow::Result<String> {
    let applied = client
        .apply_for_acceptance(manager.request(proto::ApplyForAcceptanceRequest {
            project_id: project_id.to_owned(),
            results_report: "系統已上線，登記、借閱、歸還全流程線上運行。".to_owned(),
            test_report_document_id: links.document_id.to_owned(),
            user_feedback: "行政部反映借閱審批時間由兩天縮短至半天。".to_owned(),
        }))
        .await
        .context("apply for acceptance")?
        .into_inner();
    Ok(applied.event_id)
}

async fn set_acceptance_group(
    client: &mut Client,
    people: &People,
    project_id: &str,
) -> anyhow::Result<String> {
    // The first member leads the group, and neither the manager nor a team member may sit in it.
    let members = vec![
        proto::GroupMemberEntry {
            user_id: people.auditor.user_id.clone(),
            name: "錢浩".to_owned(),
        },
        proto::GroupMemberEntry {
            user_id: people.finance_head.user_id.clone(),
            name: "孫麗".to_owned(),
        },
    ];
    let set = client
        .set_acceptance_group(people.administration_head.request(
            proto::SetAcceptanceGroupRequest {
                project_id: project_id.to_owned(),
                members,
            },
        ))
        .await
        .context("set acceptance group")?
        .into_inner();
    Ok(set.event_id)
}

async fn sign_off(
    client: &mut Client,
    member: &Identity,
    project_id: &str,
) -> anyhow::Result<String> {
    let signed = client
        .sign_off(member.request(proto::SignOffRequest {
            project_id: project_id.to_owned(),
            verdict: proto::SignOffVerdict::Pass as i32,
            opinion: "功能與文檔齊全，同意通過驗收。".to_owned(),
            open_issues: String::new(),
        }))
        .await
        .with_context(|| format!("sign off as {}", member.user_id))?
        .into_inner();
    Ok(signed.event_id)
}

async fn record_passed(
    client: &mut Client,
    group_lead: &Identity,
    project_id: &str,
) -> anyhow::Result<String> {
    let recorded = client
        .record_acceptance_result(group_lead.request(proto::RecordAcceptanceResultRequest {
            project_id: project_id.to_owned(),
            result: proto::AcceptanceResult::Passed as i32,
            group_opinion: "驗收組一致同意通過。".to_owned(),
            open_issues: "借閱模塊回歸測試待數據遷移後補測。".to_owned(),
        }))
        .await
        .context("record acceptance result")?
        .into_inner();
    Ok(recorded.event_id)
}

async fn submit_summary(
    client: &mut Client,
    manager: &Identity,
    project_id: &str,
) -> anyhow::Result<String> {
    let submitted = client
        .submit_summary(manager.request(proto::SubmitSummaryRequest {
            project_id: project_id.to_owned(),
            lessons: "測試數據遷移應在開發階段同步安排。".to_owned(),
            results: "檔案管理全流程電子化，審計可追溯全部歷史。".to_owned(),
            shortcomings: "操作手冊交付晚於計劃一週。".to_owned(),
        }))
        .await
        .context("submit summary")?
        .into_inner();
    Ok(submitted.event_id)
}

async fn close(
    client: &mut Client,
    manager: &Identity,
    project_id: &str,
) -> anyhow::Result<String> {
    let closed = client
        .close_project(manager.request(proto::CloseProjectRequest {
            project_id: project_id.to_owned(),
        }))
        .await
        .context("close project")?
        .into_inner();
    Ok(closed.event_id)
}
