//! The meeting part of the demo: a planned meeting with notices and minutes whose two
//! decisions become resolutions. One resolution gets a progress update and an approved
//! delay, and an overdue check on a later date finds the other one overdue.

use anyhow::Context;
use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use tonic::transport::Channel;
use trace_proto::common::v1::Confidentiality;
use trace_proto::meeting::v1 as proto;
use trace_proto::meeting::v1::meeting_service_client::MeetingServiceClient;
use trace_runtime::clock::proto_date;

use super::{EntityVersion, Trace, days_after, person, today};
use crate::Identity;

type Client = MeetingServiceClient<Channel>;

/// Days after today until the manual resolution is due. The overdue check runs one day
/// later.
const MANUAL_DUE_DAYS: u64 = 7;

/// Days after today to which the regression-test resolution is delayed, so that it is not
/// overdue when the manual resolution is.
const DELAYED_DUE_DAYS: u64 = 30;

/// Ids and expected events that the meeting part passes to the rest of the demo.
pub(super) struct MeetingOutcome {
    pub meeting_id: String,
    /// The resolution with the update and the approved delay.
    pub delayed_resolution_id: String,
    pub trace: Trace,
}

/// The directory users who take part in the meeting.
struct People {
    organiser: Identity,
    developer: Identity,
    tester: Identity,
    minute_taker: Identity,
    department_head: Identity,
}

impl People {
    fn new() -> Self {
        Self {
            organiser: person("wu.lei", "engineering", &["supervisor"]),
            developer: person("xu.fang", "engineering", &["employee"]),
            tester: person("ma.chao", "engineering", &["employee"]),
            minute_taker: person("he.jing", "admin-office", &["employee", "administration"]),
            department_head: person("huang.wei", "engineering", &["department_head"]),
        }
    }

    fn attendee_ids(&self) -> Vec<String> {
        [
            &self.organiser,
            &self.developer,
            &self.tester,
            &self.minute_taker,
            &self.department_head,
        ]
        .iter()
        .map(|attendee| attendee.user_id.clone())
        .collect()
    }

    /// Returns every attendee but the department head, who was away.
    fn present_ids(&self) -> Vec<String> {
        let mut present: Vec<String> = self
            .confirmers()
            .iter()
            .map(|attendee| attendee.user_id.clone())
            .collect();
        present.push(self.minute_taker.user_id.clone());
        present
    }

    /// Present attendees who receive the minutes to confirm them.
    fn confirmers(&self) -> [&Identity; 3] {
        [&self.organiser, &self.developer, &self.tester]
    }
}

/// The two resolutions opened by the minutes.
struct Resolutions {
    /// Due today, and its owner requests a delay.
    regression_test: String,
    /// Due in [`MANUAL_DUE_DAYS`] days and left alone until it is overdue.
    manual: String,
}

fn timestamp(instant: DateTime<Utc>) -> prost_types::Timestamp {
    trace_runtime::clock::timestamp(instant.timestamp_micros())
}

/// Drives one meeting from its plan to the follow-up of its resolutions.
pub(super) async fn lifecycle(client: &mut Client) -> anyhow::Result<MeetingOutcome> {
    let people = People::new();
    let today = today();
    let mut events = Vec::new();

    let (meeting_id, event_id) = plan(client, &people).await?;
    events.push(event_id);
    out!("planned meeting {meeting_id}");

    events.push(record_notices(client, &people, &meeting_id).await?);

    let (resolutions, event_id) = record_minutes(client, &people, &meeting_id, today).await?;
    events.push(event_id);

    events.push(send_minutes(client, &people, &meeting_id).await?);

    for confirmer in people.confirmers() {
        events.push(confirm_minutes(client, confirmer, &meeting_id).await?);
    }

    let resolution_id = &resolutions.regression_test;
    events.push(update_resolution(client, &people.tester, resolution_id).await?);

    let delayed_to = days_after(today, DELAYED_DUE_DAYS)?;
    let (delay_id, event_id) =
        request_delay(client, &people.tester, resolution_id, delayed_to).await?;
    events.push(event_id);

    events.push(approve_delay(client, &people.organiser, resolution_id, &delay_id).await?);
    out!("resolution {resolution_id} delayed to {delayed_to}");

    let as_of = days_after(today, MANUAL_DUE_DAYS + 1)?;
    check_overdue(client, &resolutions, as_of).await?;
    out!("resolution {} is overdue on {as_of}", resolutions.manual);

    let entities = entity_versions(client, &people.organiser, &meeting_id).await?;
    out!("meeting {meeting_id}: {} calls succeeded", events.len());
    Ok(MeetingOutcome {
        meeting_id,
        delayed_resolution_id: resolutions.regression_test,
        trace: Trace {
            event_ids: events,
            entities,
        },
    })
}

async fn plan(client: &mut Client, people: &People) -> anyhow::Result<(String, String)> {
    // The service rejects a start in the past, so the meeting is planned a few minutes ahead.
    let start = Utc::now() + TimeDelta::minutes(5);
    let agenda = vec![
        proto::AgendaItem {
            title: "檔案管理系統上線前回歸測試安排".to_owned(),
            presenter_id: people.tester.user_id.clone(),
        },
        proto::AgendaItem {
            title: "操作手冊編寫與行政部審閱".to_owned(),
            presenter_id: people.developer.user_id.clone(),
        },
    ];
    let planned = client
        .plan_meeting(people.organiser.request(proto::PlanMeetingRequest {
            topic: "檔案管理系統上線協調會".to_owned(),
            start_time: Some(timestamp(start)),
            end_time: Some(timestamp(start + TimeDelta::hours(1))),
            channel: proto::Channel::InPerson as i32,
            location: "總部大樓 5 樓第二會議室".to_owned(),
            attendee_ids: people.attendee_ids(),
            agenda,
            confidentiality: Confidentiality::Internal as i32,
        }))
        .await
        .context("plan meeting")?
        .into_inner();
    let meeting_id = planned
        .meeting
        .context("plan meeting returned no meeting")?
        .meeting_id;
    Ok((meeting_id, planned.event_id))
}

async fn record_notices(
    client: &mut Client,
    people: &People,
    meeting_id: &str,
) -> anyhow::Result<String> {
    let noticed = client
        .record_notices(people.organiser.request(proto::RecordNoticesRequest {
            meeting_id: meeting_id.to_owned(),
            recipient_ids: people.attendee_ids(),
        }))
        .await
        .context("record notices")?
        .into_inner();
    Ok(noticed.event_id)
}

async fn record_minutes(
    client: &mut Client,
    people: &People,
    meeting_id: &str,
    today: NaiveDate,
) -> anyhow::Result<(Resolutions, String)> {
    // The demo cannot wait for the meeting to happen. The service accepts minutes of a
    // meeting held up to one day before its planned start, as long as it has ended, so
    // the minutes record the hour before the plan.
    let held_end = Utc::now() - TimeDelta::minutes(5);
    let held_start = held_end - TimeDelta::minutes(45);
    let decisions = vec![
        proto::Decision {
            text: "今日內完成檔案管理系統上線前的全部回歸測試，並提交測試報告。".to_owned(),
            owner_id: people.tester.user_id.clone(),
            due_date: Some(proto_date(today)),
        },
        proto::Decision {
            text: "一週內完成系統操作手冊初稿，交行政部審閱。".to_owned(),
            owner_id: people.developer.user_id.clone(),
            due_date: Some(proto_date(days_after(today, MANUAL_DUE_DAYS)?)),
        },
    ];
    let recorded = client
        .record_minutes(people.minute_taker.request(proto::RecordMinutesRequest {
            meeting_id: meeting_id.to_owned(),
            held_start_time: Some(timestamp(held_start)),
            held_end_time: Some(timestamp(held_end)),
            place: "總部大樓 5 樓第二會議室".to_owned(),
            present_ids: people.present_ids(),
            absent_ids: vec![people.department_head.user_id.clone()],
            discussions: discussions(),
            decisions,
        }))
        .await
        .context("record minutes")?
        .into_inner();

    let [regression_test, manual] = <[proto::Resolution; 2]>::try_from(recorded.resolutions)
        .map_err(|resolutions| {
            anyhow::anyhow!(
                "recorded minutes returned {} resolutions, expected 2",
                resolutions.len()
            )
        })?;
    let resolutions = Resolutions {
        regression_test: regression_test.resolution_id,
        manual: manual.resolution_id,
    };
    Ok((resolutions, recorded.event_id))
}

fn discussions() -> Vec<proto::Discussion> {
    vec![
        proto::Discussion {
            agenda_item: 1,
            text: "馬超報告回歸測試進度：核心流程已通過，借閱與歸還模塊尚有 3 個缺陷待複測。"
                .to_owned(),
        },
        proto::Discussion {
            agenda_item: 2,
            text: "徐芳說明操作手冊大綱，行政部何靜建議增加檔案借閱審批的截圖說明。".to_owned(),
        },
    ]
}

async fn send_minutes(
    client: &mut Client,
    people: &People,
    meeting_id: &str,
) -> anyhow::Result<String> {
    let recipient_ids = people
        .confirmers()
        .iter()
        .map(|confirmer| confirmer.user_id.clone())
        .collect();
    let sent = client
        .send_minutes_for_confirmation(people.minute_taker.request(
            proto::SendMinutesForConfirmationRequest {
                meeting_id: meeting_id.to_owned(),
                recipient_ids,
            },
        ))
        .await
        .context("send minutes for confirmation")?
        .into_inner();
    Ok(sent.event_id)
}

async fn confirm_minutes(
    client: &mut Client,
    confirmer: &Identity,
    meeting_id: &str,
) -> anyhow::Result<String> {
    let confirmed = client
        .confirm_minutes(confirmer.request(proto::ConfirmMinutesRequest {
            meeting_id: meeting_id.to_owned(),
            minutes_version: 1,
            verdict: proto::Verdict::Confirm as i32,
            comment: "紀要內容無誤。".to_owned(),
        }))
        .await
        .with_context(|| format!("confirm minutes as {}", confirmer.user_id))?
        .into_inner();
    Ok(confirmed.event_id)
}

async fn update_resolution(
    client: &mut Client,
    owner: &Identity,
    resolution_id: &str,
) -> anyhow::Result<String> {
    let updated = client
        .update_resolution(owner.request(proto::UpdateResolutionRequest {
            resolution_id: resolution_id.to_owned(),
            status: proto::ResolutionStatus::InProgress as i32,
            progress_note: "已完成 42 個測試用例中的 35 個。".to_owned(),
            problems: "測試環境的歷史檔案數據尚未遷移完畢。".to_owned(),
            solutions: "已請運維組加急遷移，遷移後補測其餘用例。".to_owned(),
        }))
        .await
        .context("update resolution")?
        .into_inner();
    Ok(updated.event_id)
}

async fn request_delay(
    client: &mut Client,
    owner: &Identity,
    resolution_id: &str,
    proposed: NaiveDate,
) -> anyhow::Result<(String, String)> {
    let requested = client
        .request_delay(owner.request(proto::RequestDelayRequest {
            resolution_id: resolution_id.to_owned(),
            reason: "歷史數據遷移預計下月初完成，遷移前無法完成借閱模塊的回歸測試。".to_owned(),
            proposed_due_date: Some(proto_date(proposed)),
            // Empty, so only the organiser may decide.
            approver_id: String::new(),
        }))
        .await
        .context("request delay")?
        .into_inner();
    let delay_id = requested
        .delay
        .context("request delay returned no delay")?
        .delay_id;
    Ok((delay_id, requested.event_id))
}

async fn approve_delay(
    client: &mut Client,
    organiser: &Identity,
    resolution_id: &str,
    delay_id: &str,
) -> anyhow::Result<String> {
    let decided = client
        .decide_delay(organiser.request(proto::DecideDelayRequest {
            resolution_id: resolution_id.to_owned(),
            delay_id: delay_id.to_owned(),
            approve: true,
            opinion: "同意延期，請遷移完成後立即補測。".to_owned(),
        }))
        .await
        .context("approve delay")?
        .into_inner();
    Ok(decided.event_id)
}

/// Runs the overdue check for `as_of` and checks that it marked the manual resolution but
/// not the delayed one.
async fn check_overdue(
    client: &mut Client,
    resolutions: &Resolutions,
    as_of: NaiveDate,
) -> anyhow::Result<()> {
    // The demo cannot wait a week, so the scheduler role previews a later overdue check.
    let scheduler = person("scheduler", "system", &["system"]);
    let overdue = client
        .check_overdue(scheduler.request(proto::CheckOverdueRequest {
            as_of: Some(proto_date(as_of)),
        }))
        .await
        .context("check overdue")?
        .into_inner();

    anyhow::ensure!(
        overdue.resolution_ids.contains(&resolutions.manual),
        "the overdue check on {as_of} did not mark resolution {}",
        resolutions.manual
    );
    anyhow::ensure!(
        !overdue
            .resolution_ids
            .contains(&resolutions.regression_test),
        "the overdue check on {as_of} marked resolution {} despite its approved delay",
        resolutions.regression_test
    );
    Ok(())
}

/// Reads the current versions of the meeting and its resolutions. Recorded minutes and
/// the overdue check return no event ids for the resolution events they add, so the demo
/// waits for these versions in the archive instead.
async fn entity_versions(
    client: &mut Client,
    organiser: &Identity,
    meeting_id: &str,
) -> anyhow::Result<Vec<EntityVersion>> {
    let meeting = client
        .get_meeting(organiser.request(proto::GetMeetingRequest {
            meeting_id: meeting_id.to_owned(),
        }))
        .await
        .context("get meeting")?
        .into_inner()
        .meeting
        .context("get meeting returned no meeting")?;
    let mut versions = vec![EntityVersion {
        entity_type: "meeting",
        entity_id: meeting.meeting_id,
        version: meeting.entity_version,
    }];

    let table = client
        .get_tracking_table(organiser.request(proto::GetTrackingTableRequest {
            meeting_id: meeting_id.to_owned(),
        }))
        .await
        .context("get tracking table")?
        .into_inner();
    for tracked in table.resolutions {
        let resolution = tracked
            .resolution
            .context("tracking table row has no resolution")?;
        versions.push(EntityVersion {
            entity_type: "resolution",
            entity_id: resolution.resolution_id,
            version: resolution.entity_version,
        });
    }
    Ok(versions)
}
