//! The inspection part of the demo. The completeness rules find the daily report that the
//! worklog part left out. A spot check ordered by the department head then leads to a
//! finding whose rectification is assigned, submitted and verified by the administration.

use anyhow::Context;
use tonic::transport::Channel;
use trace_proto::common::v1::PageRequest;
use trace_proto::inspection::v1 as proto;
use trace_proto::inspection::v1::inspection_service_client::InspectionServiceClient;
use trace_runtime::clock::proto_date;

use super::worklog::WorklogOutcome;
use super::{EntityVersion, days_after, person, today};
use crate::Identity;

type Client = InspectionServiceClient<Channel>;

/// Days after today until the rectification is due.
const RECTIFICATION_DAYS: u64 = 7;

/// Largest page the service returns.
const PAGE_SIZE: i32 = 500;

/// The directory users who take part in the inspection.
struct People {
    /// Runs the rules, which only the `system` role may do.
    system: Identity,
    /// Orders the spot check and assigns the rectification.
    department_head: Identity,
    /// Responsible for the rectification.
    developer: Identity,
    /// Verifies the rectification.
    administration: Identity,
}

impl People {
    fn new() -> Self {
        Self {
            system: person("inspection.demo", "audit", &["system"]),
            department_head: person("huang.wei", "engineering", &["department_head"]),
            developer: person("xu.fang", "engineering", &["employee"]),
            administration: person(
                "li.na",
                "admin-office",
                &["department_head", "administration"],
            ),
        }
    }
}

/// Finds the missed daily report, then drives a spot check finding to verification. Returns
/// the findings with the versions their archived timelines must reach.
pub(super) async fn lifecycle(
    client: &mut Client,
    worklog: &WorklogOutcome,
) -> anyhow::Result<Vec<EntityVersion>> {
    let people = People::new();

    let missed = daily_finding(client, &people.system, worklog).await?;
    out!("rule finding for the missed daily report:");
    print_finding(&missed);

    let spot_check_id = order_spot_check(client, &people.department_head, worklog).await?;
    let finding_id =
        record_finding(client, &people.department_head, &spot_check_id, worklog).await?;

    assign(
        client,
        &people.department_head,
        &finding_id,
        &people.developer,
    )
    .await?;
    submit_result(client, &people.developer, &finding_id).await?;
    let verified = verify(client, &people.administration, &finding_id).await?;
    out!("spot check finding at the end:");
    print_finding(&verified);

    let score = crate::completeness::fetch(
        client,
        &people.administration,
        &worklog.department,
        worklog.week_start,
        worklog.week_end,
    )
    .await?;
    crate::completeness::print_text(&score, worklog.week_start, worklog.week_end);

    Ok(vec![entity_version(&missed), entity_version(&verified)])
}

fn entity_version(finding: &proto::Finding) -> EntityVersion {
    EntityVersion {
        entity_type: "finding",
        entity_id: finding.finding_id.clone(),
        version: finding.entity_version,
    }
}

fn print_finding(finding: &proto::Finding) {
    let state =
        proto::FindingState::try_from(finding.state).map_or("unknown", |state| state.as_str_name());
    let severity =
        proto::Severity::try_from(finding.severity).map_or("unknown", |value| value.as_str_name());
    out!("  finding {} [{state}, {severity}]", finding.finding_id);
    out!(
        "  rule {}, department {}, recorded by {}",
        crate::completeness::rule_name(finding.rule),
        finding.department,
        finding.recorded_by
    );
    out!("  {}", finding.description);
    if let Some(rectification) = &finding.rectification {
        out!(
            "  rectification by {} (deadline {}), verified by {}: {}",
            rectification.responsible_id,
            rectification
                .deadline
                .as_ref()
                .map_or_else(|| "-".to_owned(), format_date),
            rectification.verified_by,
            rectification.verification_opinion
        );
    }
}

fn format_date(date: &trace_proto::common::v1::Date) -> String {
    format!("{:04}-{:02}-{:02}", date.year, date.month, date.day)
}

/// Runs the rules and returns the finding of the missed day. The rules cover every day from
/// `inspection.daily_reports_from` on, and the missed day's grace period ended days ago.
async fn daily_finding(
    client: &mut Client,
    system: &Identity,
    worklog: &WorklogOutcome,
) -> anyhow::Result<proto::Finding> {
    let swept = client
        .run_rules(system.request(proto::RunRulesRequest {}))
        .await
        .context("run the completeness rules")?
        .into_inner();
    out!(
        "rules run: {} findings raised, {} daily report obligations generated",
        swept.raised,
        swept.obligations_generated
    );

    let found = find_daily_finding(client, system, worklog).await?;
    found.with_context(|| {
        format!(
            "no daily report finding for {} on {}: the inspection service must run with \
             inspection.daily_reports_from on or before {}",
            worklog.employee_id, worklog.missed_day, worklog.week_start
        )
    })
}

/// Lists the department's daily report findings and returns the one for the missed day.
async fn find_daily_finding(
    client: &mut Client,
    identity: &Identity,
    worklog: &WorklogOutcome,
) -> anyhow::Result<Option<proto::Finding>> {
    let missed_day = worklog.missed_day.to_string();
    let mut page_token = String::new();
    loop {
        let page = client
            .list_findings(identity.request(proto::ListFindingsRequest {
                department: worklog.department.clone(),
                rule: proto::Rule::DailyReport as i32,
                state: proto::FindingState::Unspecified as i32,
                page: Some(PageRequest {
                    page_size: PAGE_SIZE,
                    page_token,
                }),
            }))
            .await
            .context("list daily report findings")?
            .into_inner();
        let found = page.findings.into_iter().find(|finding| {
            let about_employee = finding
                .references
                .iter()
                .any(|reference| reference.entity_id == worklog.employee_id);
            about_employee && finding.description.contains(&missed_day)
        });
        if found.is_some() || page.next_page_token.is_empty() {
            return Ok(found);
        }
        page_token = page.next_page_token;
    }
}

async fn order_spot_check(
    client: &mut Client,
    department_head: &Identity,
    worklog: &WorklogOutcome,
) -> anyhow::Result<String> {
    let ordered = client
        .order_spot_check(department_head.request(proto::OrderSpotCheckRequest {
            departments: vec![worklog.department.clone()],
            processes: vec![proto::Process::DailyRecords as i32],
            record_ids: Vec::new(),
            method: proto::SpotCheckMethod::ReadingRecords as i32,
        }))
        .await
        .context("order a spot check")?
        .into_inner();
    let inspection_id = ordered
        .inspection
        .context("order spot check returned no inspection")?
        .inspection_id;
    out!(
        "{} ordered spot check {inspection_id} of {} daily records",
        department_head.user_id,
        worklog.department
    );
    Ok(inspection_id)
}

async fn record_finding(
    client: &mut Client,
    department_head: &Identity,
    inspection_id: &str,
    worklog: &WorklogOutcome,
) -> anyhow::Result<String> {
    let description = format!(
        "抽查 {} 至 {} 的工作日誌：{} 缺 {} 的日報，其餘日報多在次日補交，未按時提交。",
        worklog.week_start, worklog.week_end, worklog.employee_id, worklog.missed_day
    );
    let recorded = client
        .record_finding(department_head.request(proto::RecordFindingRequest {
            inspection_id: inspection_id.to_owned(),
            severity: proto::Severity::Medium as i32,
            department: worklog.department.clone(),
            description,
            references: Vec::new(),
            confidentiality: trace_proto::common::v1::Confidentiality::Internal as i32,
        }))
        .await
        .context("record a spot check finding")?
        .into_inner();
    let finding_id = recorded
        .finding
        .context("record finding returned no finding")?
        .finding_id;
    out!("finding {finding_id} recorded on spot check {inspection_id}");
    Ok(finding_id)
}

async fn assign(
    client: &mut Client,
    department_head: &Identity,
    finding_id: &str,
    responsible: &Identity,
) -> anyhow::Result<()> {
    let deadline = days_after(today(), RECTIFICATION_DAYS)?;
    client
        .assign_rectification(
            department_head.request(proto::AssignRectificationRequest {
                finding_id: finding_id.to_owned(),
                measures:
                    "補寫漏交當天的工作說明，由主管簽注；此後每天下班前提交日報，主管每週核對一次。"
                        .to_owned(),
                responsible_id: responsible.user_id.clone(),
                deadline: Some(proto_date(deadline)),
            }),
        )
        .await
        .context("assign the rectification")?;
    out!(
        "rectification of finding {finding_id} assigned to {}, due {deadline}",
        responsible.user_id
    );
    Ok(())
}

async fn submit_result(
    client: &mut Client,
    responsible: &Identity,
    finding_id: &str,
) -> anyhow::Result<()> {
    client
        .submit_rectification_result(
            responsible.request(proto::SubmitRectificationResultRequest {
                finding_id: finding_id.to_owned(),
                result:
                    "已在週報中補充漏交當天的回歸測試工作，主管已審批；本週日報均在當天下班前提交。"
                        .to_owned(),
            }),
        )
        .await
        .context("submit the rectification result")?;
    out!(
        "{} submitted the result of finding {finding_id}",
        responsible.user_id
    );
    Ok(())
}

async fn verify(
    client: &mut Client,
    administration: &Identity,
    finding_id: &str,
) -> anyhow::Result<proto::Finding> {
    let verified = client
        .verify_rectification(administration.request(proto::VerifyRectificationRequest {
            finding_id: finding_id.to_owned(),
            verdict: proto::Verdict::Accepted as i32,
            opinion: "已核對週報與本週日報，整改到位，同意銷項。".to_owned(),
        }))
        .await
        .context("verify the rectification")?
        .into_inner();
    out!(
        "{} accepted the rectification of finding {finding_id}",
        administration.user_id
    );
    verified
        .finding
        .context("verify rectification returned no finding")
}
