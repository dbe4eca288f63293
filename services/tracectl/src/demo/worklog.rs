//! The worklog part of the demo: an employee's daily reports for the previous week with one
//! working day missed, a supervisor comment, and a weekly report that the supervisor returns,
//! the employee revises and the supervisor approves.

use anyhow::Context;
use chrono::{Datelike, NaiveDate};
use tonic::transport::Channel;
use trace_proto::common::v1::Confidentiality;
use trace_proto::worklog::v1 as proto;
use trace_proto::worklog::v1::worklog_service_client::WorklogServiceClient;
use trace_runtime::clock::proto_date;

use super::{days_after, person, today};
use crate::Identity;

type Client = WorklogServiceClient<Channel>;

/// Days after the week's Monday of the working day without a daily report: Wednesday.
const MISSED_DAY_OFFSET: u64 = 2;

/// Daily report texts for Monday to Friday; the missed day's entry is never sent.
const DAILY_WORK: [(&str, &str, &str); 5] = [
    (
        "梳理檔案管理系統上線清單，確認各部門帳號與權限配置。",
        "上線清單初稿完成，已發項目群確認。",
        "完成帳號權限批量導入腳本。",
    ),
    (
        "編寫帳號權限批量導入腳本，並在測試環境試跑。",
        "測試環境導入 126 個帳號，權限核對無誤。",
        "配合測試組跑回歸測試。",
    ),
    (
        "配合測試組執行回歸測試。",
        "回歸測試通過。",
        "整理操作手冊。",
    ),
    (
        "修正借閱歸還提醒的時區錯誤，補充單元測試。",
        "修正已合入主幹，提醒時間按北京時間計算。",
        "編寫操作手冊第三章。",
    ),
    (
        "編寫操作手冊第三章「檔案借閱與歸還」，提交行政部審閱。",
        "手冊第三章初稿完成，行政部已收到。",
        "下週一根據行政部意見修改手冊。",
    ),
];

/// Ids and dates that the worklog part passes to the rest of the demo.
pub(super) struct WorklogOutcome {
    /// Monday of the reported week.
    pub week_start: NaiveDate,
    /// Friday of the reported week.
    pub week_end: NaiveDate,
    /// The working day without a daily report.
    pub missed_day: NaiveDate,
    pub employee_id: String,
    pub department: String,
    pub weekly_report_id: String,
    pub event_ids: Vec<String>,
}

/// The employee and the direct supervisor from the company directory.
struct People {
    employee: Identity,
    supervisor: Identity,
}

impl People {
    fn new() -> Self {
        Self {
            employee: person("xu.fang", "engineering", &["employee"]),
            supervisor: person("wu.lei", "engineering", &["supervisor"]),
        }
    }
}

/// Returns the Monday of the week before the current one.
fn previous_monday(today: NaiveDate) -> anyhow::Result<NaiveDate> {
    let days_back = u64::from(today.weekday().num_days_from_monday()) + 7;
    today
        .checked_sub_days(chrono::Days::new(days_back))
        .with_context(|| format!("date overflow going {days_back} days back from {today}"))
}

/// Drives one week of daily reports and the weekly report through the worklog service.
pub(super) async fn week(client: &mut Client) -> anyhow::Result<WorklogOutcome> {
    let people = People::new();
    let week_start = previous_monday(today())?;
    let missed_day = days_after(week_start, MISSED_DAY_OFFSET)?;
    let mut outcome = WorklogOutcome {
        week_start,
        week_end: days_after(week_start, 4)?,
        missed_day,
        employee_id: people.employee.user_id.clone(),
        department: people.employee.department.clone(),
        weekly_report_id: String::new(),
        event_ids: Vec::new(),
    };

    // The service keeps one report per author and period, so a second demo run on the same
    // stack reuses the week that the first run reported.
    if let Some(report_id) = find_weekly_report(client, &people.employee, week_start).await? {
        out!("week of {week_start} already reported in weekly report {report_id}; reusing it");
        outcome.weekly_report_id = report_id;
        return Ok(outcome);
    }

    let mut events = Vec::new();

    // NOTE: the days are Monday to Friday without asking the calendar, so a public holiday
    // in the previous week is reported as worked, and a missed holiday raises no finding.
    let mut first_report_id = None;
    for (offset, texts) in (0..).zip(DAILY_WORK) {
        let work_date = days_after(week_start, offset)?;
        if work_date == missed_day {
            out!("daily report of {work_date} left out");
            continue;
        }
        let (report_id, event_id) =
            submit_daily(client, &people.employee, work_date, texts).await?;
        first_report_id.get_or_insert(report_id);
        events.push(event_id);
    }
    out!(
        "{} submitted {} daily reports for the week of {week_start}",
        people.employee.user_id,
        events.len()
    );

    let report_id = first_report_id.context("no daily report was submitted")?;
    events.push(comment(client, &people.supervisor, &report_id).await?);

    let (weekly_report_id, event_ids) = weekly_report(client, &people, week_start).await?;
    events.extend(event_ids);

    outcome.weekly_report_id = weekly_report_id;
    outcome.event_ids = events;
    Ok(outcome)
}

/// Returns the id of the employee's weekly report for the week, if one was submitted.
async fn find_weekly_report(
    client: &mut Client,
    employee: &Identity,
    week_start: NaiveDate,
) -> anyhow::Result<Option<String>> {
    let listed = client
        .list_reports(employee.request(proto::ListReportsRequest {
            employee_id: employee.user_id.clone(),
            period_start: Some(proto_date(week_start)),
            period_end: Some(proto_date(week_start)),
            kind: proto::ReportKind::Weekly as i32,
            page: None,
        }))
        .await
        .with_context(|| format!("list the weekly reports of {}", employee.user_id))?
        .into_inner();
    Ok(listed
        .reports
        .into_iter()
        .next()
        .map(|report| report.report_id))
}

async fn submit_daily(
    client: &mut Client,
    employee: &Identity,
    work_date: NaiveDate,
    (work_done, results, next_day_plan): (&str, &str, &str),
) -> anyhow::Result<(String, String)> {
    let content = proto::DailyContent {
        work_done: work_done.to_owned(),
        results: results.to_owned(),
        problems: String::new(),
        solutions: String::new(),
        next_day_plan: next_day_plan.to_owned(),
    };
    let submitted = client
        .submit_daily_report(employee.request(proto::SubmitDailyReportRequest {
            work_date: Some(proto_date(work_date)),
            content: Some(content),
            confidentiality: Confidentiality::Internal as i32,
        }))
        .await
        .with_context(|| format!("submit the daily report of {work_date}"))?
        .into_inner();
    let report = submitted
        .report
        .context("submit daily report returned no report")?;
    let late = report.daily_status.is_some_and(|status| status.late);
    out!(
        "daily report {} of {work_date}{}",
        report.report_id,
        if late { " (late)" } else { "" }
    );
    Ok((report.report_id, submitted.event_id))
}

async fn comment(
    client: &mut Client,
    supervisor: &Identity,
    report_id: &str,
) -> anyhow::Result<String> {
    let commented = client
        .supervisor_comment(supervisor.request(proto::SupervisorCommentRequest {
            report_id: report_id.to_owned(),
            kind: proto::CommentKind::Written as i32,
            text: "上線清單請補上各部門聯絡人，週三前發給行政部。".to_owned(),
        }))
        .await
        .context("comment on the daily report")?
        .into_inner();
    out!(
        "{} commented on daily report {report_id}",
        supervisor.user_id
    );
    Ok(commented.event_id)
}

/// Submits the weekly report, has it returned, revised and approved; returns its id and the
/// event ids.
async fn weekly_report(
    client: &mut Client,
    people: &People,
    week_start: NaiveDate,
) -> anyhow::Result<(String, Vec<String>)> {
    let (report_id, submitted) = submit_weekly(client, &people.employee, week_start).await?;

    let opinion = "週三沒有日報，請在週報中說明當天的工作，並補充回歸測試的結果。";
    let returned = decide(
        client,
        &people.supervisor,
        &report_id,
        proto::Decision::Return,
        opinion,
    )
    .await?;

    let revised = revise_weekly(client, &people.employee, &report_id).await?;

    let opinion = "同意。下週請按時提交日報。";
    let approved = decide(
        client,
        &people.supervisor,
        &report_id,
        proto::Decision::Approve,
        opinion,
    )
    .await?;
    out!("weekly report {report_id}: returned, revised and approved");

    Ok((report_id, vec![submitted, returned, revised, approved]))
}

async fn submit_weekly(
    client: &mut Client,
    employee: &Identity,
    week_start: NaiveDate,
) -> anyhow::Result<(String, String)> {
    let content = proto::WeeklyContent {
        completion: "完成上線清單、帳號權限導入腳本、時區錯誤修正和操作手冊第三章初稿。".to_owned(),
        problems: "借閱歸還提醒按伺服器時區計算，提醒時間早了八小時。".to_owned(),
        causes: "提醒任務沒有使用業務時區。".to_owned(),
        measures: "改為按北京時間計算，並補充跨時區的單元測試。".to_owned(),
        next_week_plan: "根據行政部意見修改操作手冊，準備上線演練。".to_owned(),
    };
    let submitted = client
        .submit_periodic_report(employee.request(proto::SubmitPeriodicReportRequest {
            kind: proto::ReportKind::Weekly as i32,
            week_start: Some(proto_date(week_start)),
            year: 0,
            month: 0,
            content: Some(proto::submit_periodic_report_request::Content::Weekly(
                content,
            )),
            confidentiality: Confidentiality::Internal as i32,
        }))
        .await
        .with_context(|| format!("submit the weekly report of {week_start}"))?
        .into_inner();
    let report_id = submitted
        .report
        .context("submit weekly report returned no report")?
        .report_id;
    out!("weekly report {report_id} for the week of {week_start} submitted");
    Ok((report_id, submitted.event_id))
}

async fn decide(
    client: &mut Client,
    supervisor: &Identity,
    report_id: &str,
    decision: proto::Decision,
    opinion: &str,
) -> anyhow::Result<String> {
    let decided = client
        .decide_report(supervisor.request(proto::DecideReportRequest {
            report_id: report_id.to_owned(),
            decision: decision as i32,
            opinion: opinion.to_owned(),
        }))
        .await
        .with_context(|| format!("decide {decision:?} on weekly report {report_id}"))?
        .into_inner();
    Ok(decided.event_id)
}

async fn revise_weekly(
    client: &mut Client,
    employee: &Identity,
    report_id: &str,
) -> anyhow::Result<String> {
    let content = proto::WeeklyContent {
        completion: "完成上線清單、帳號權限導入腳本、時區錯誤修正和操作手冊第三章初稿。週三全天配合測試組執行回歸測試，共 214 個用例全部通過，當天漏交日報。".to_owned(),
        problems: "借閱歸還提醒按伺服器時區計算，提醒時間早了八小時；週三漏交日報。".to_owned(),
        causes: "提醒任務沒有使用業務時區；週三測試到深夜，忘記提交日報。".to_owned(),
        measures: "改為按北京時間計算並補充單元測試；每天下班前先提交日報。".to_owned(),
        next_week_plan: "根據行政部意見修改操作手冊，準備上線演練。".to_owned(),
    };
    let revised = client
        .revise_report(employee.request(proto::ReviseReportRequest {
            report_id: report_id.to_owned(),
            change_summary: "補充週三的回歸測試結果，並說明漏交日報的原因和措施。".to_owned(),
            content: Some(proto::revise_report_request::Content::Weekly(content)),
        }))
        .await
        .with_context(|| format!("revise weekly report {report_id}"))?
        .into_inner();
    Ok(revised.event_id)
}
