//! Preparation: planning a meeting, recording the notices sent to attendees, revising the
//! plan before the meeting is held, and cancelling it.

use sea_orm::ActiveValue::Set;
use sea_orm::{ColumnTrait, DatabaseTransaction, EntityTrait, QueryFilter};
use trace_proto::common::v1::Confidentiality;
use trace_proto::meeting::v1 as proto;
use trace_runtime::clock::timestamp;
use trace_runtime::context::CallContext;
use trace_runtime::event::pack;
use trace_runtime::seal::Keyring;
use trace_runtime::sealed_text::SealedRow;
use trace_runtime::{ServiceResult, validate};
use uuid::Uuid;

use super::input::{self, AgendaInput, MAX_ATTENDEES};
use super::write::{
    AttemptResult, EventTarget, check_meeting_step, find_meeting, load_agenda, load_attendees,
    require_organiser, with_retries,
};
use super::{MeetingHandler, convert};
use crate::entity::{agenda_item, attendee, meeting, notice};
use crate::rules;
use crate::state::{Channel, MeetingAction, MeetingState};

/// A checked `PlanMeetingRequest`.
struct PlanInput {
    topic: String,
    start: i64,
    end: i64,
    channel: Channel,
    location: String,
    attendees: Vec<String>,
    agenda: Vec<AgendaInput>,
    confidentiality: Confidentiality,
}

pub(super) fn parse_channel(value: i32) -> ServiceResult<Channel> {
    let channel: proto::Channel = validate::enum_value("channel", value)?;
    Channel::from_proto(channel)
        .ok_or_else(|| trace_runtime::ServiceError::invalid("channel", "0", "is required"))
}

impl PlanInput {
    fn parse(request: &proto::PlanMeetingRequest, now: i64) -> ServiceResult<Self> {
        let start = input::timestamp("start_time", request.start_time.as_ref())?;
        let end = input::timestamp("end_time", request.end_time.as_ref())?;
        rules::check_plan_times(start, end, now)?;

        Ok(Self {
            topic: input::topic(&request.topic)?,
            start,
            end,
            channel: parse_channel(request.channel)?,
            location: input::location("location", &request.location)?,
            attendees: rules::user_ids("attendee_ids", &request.attendee_ids, 1, MAX_ATTENDEES)?,
            agenda: input::agenda("agenda", &request.agenda)?,
            confidentiality: validate::enum_value("confidentiality", request.confidentiality)?,
        })
    }
}

/// Replaces the attendees of a meeting.
pub(super) async fn write_attendees(
    txn: &DatabaseTransaction,
    meeting_id: &str,
    attendees: &[String],
) -> AttemptResult<()> {
    attendee::Entity::delete_many()
        .filter(attendee::Column::MeetingId.eq(meeting_id))
        .exec(txn)
        .await?;
    let rows = attendees
        .iter()
        .enumerate()
        .map(|(position, user_id)| attendee::ActiveModel {
            meeting_id: Set(meeting_id.to_owned()),
            user_id: Set(user_id.clone()),
            position: Set(i32::try_from(position).unwrap_or(i32::MAX)),
        });
    attendee::Entity::insert_many(rows)
        .exec_without_returning(txn)
        .await?;
    Ok(())
}

/// Replaces the agenda of a meeting.
pub(super) async fn write_agenda(
    txn: &DatabaseTransaction,
    keyring: &Keyring,
    meeting: &meeting::Model,
    agenda: &[AgendaInput],
) -> AttemptResult<()> {
    let meeting_id = meeting.id.as_str();
    agenda_item::Entity::delete_many()
        .filter(agenda_item::Column::MeetingId.eq(meeting_id))
        .exec(txn)
        .await?;
    let rows = agenda.iter().enumerate().map(|(index, item)| {
        let row = agenda_item::Model {
            meeting_id: meeting_id.to_owned(),
            number: i32::try_from(index + 1).unwrap_or(i32::MAX),
            title: item.title.clone(),
            presenter_id: item.presenter_id.clone(),
        };
        agenda_item::ActiveModel::from(row.sealed(keyring, meeting.confidentiality))
    });
    agenda_item::Entity::insert_many(rows)
        .exec_without_returning(txn)
        .await?;
    Ok(())
}

impl MeetingHandler {
    pub(super) async fn plan(
        &self,
        context: &CallContext,
        request: proto::PlanMeetingRequest,
    ) -> ServiceResult<proto::PlanMeetingResponse> {
        let plan = PlanInput::parse(&request, self.now())?;

        let meeting_id = Uuid::now_v7().to_string();
        with_retries("plan meeting", || {
            self.try_plan(context, &meeting_id, &plan)
        })
        .await
    }

    async fn try_plan(
        &self,
        context: &CallContext,
        meeting_id: &str,
        plan: &PlanInput,
    ) -> AttemptResult<proto::PlanMeetingResponse> {
        let row = meeting::Model {
            id: meeting_id.to_owned(),
            topic: plan.topic.clone(),
            channel: plan.channel,
            location: plan.location.clone(),
            start_at: plan.start,
            end_at: plan.end,
            organiser_id: context.principal.user_id.clone(),
            department: context.principal.department.clone(),
            planned_at: self.now(),
            state: MeetingState::Planned,
            confidentiality: plan.confidentiality as i32,
            plan_revision: 1,
            minutes_version: 0,
            cancel_reason: None,
            cancelled_at: None,
            entity_version: 1,
        };
        let txn = self.begin().await?;

        meeting::Entity::insert(meeting::ActiveModel::from(row.clone()))
            .exec_without_returning(&txn)
            .await?;
        write_attendees(&txn, meeting_id, &plan.attendees).await?;
        write_agenda(&txn, &self.keyring, &row, &plan.agenda).await?;

        let payload = proto::MeetingPlanned {
            topic: row.topic.clone(),
            channel: row.channel.number(),
            location: row.location.clone(),
            start_time: Some(timestamp(row.start_at)),
            end_time: Some(timestamp(row.end_at)),
            attendee_ids: plan.attendees.clone(),
            agenda: plan.agenda.iter().map(convert::agenda_input).collect(),
            organiser_id: row.organiser_id.clone(),
            confidentiality: row.confidentiality,
        };
        let event_id = self
            .stage_event(
                &txn,
                context,
                EventTarget::meeting(&row),
                "planned",
                pack(&payload),
            )
            .await?;
        let agenda = load_agenda(&self.keyring, &txn, meeting_id).await?;
        self.commit(txn).await?;

        Ok(proto::PlanMeetingResponse {
            meeting: Some(convert::meeting(&row, &plan.attendees, &agenda)),
            event_id,
        })
    }

    pub(super) async fn notify(
        &self,
        context: &CallContext,
        request: proto::RecordNoticesRequest,
    ) -> ServiceResult<proto::RecordNoticesResponse> {
        let meeting_id = validate::record_id("meeting_id", &request.meeting_id)?.to_string();
        let recipients =
            rules::user_ids("recipient_ids", &request.recipient_ids, 1, MAX_ATTENDEES)?;

        with_retries("record notices", || {
            self.try_notify(context, &meeting_id, &recipients)
        })
        .await
    }

    async fn try_notify(
        &self,
        context: &CallContext,
        meeting_id: &str,
        recipients: &[String],
    ) -> AttemptResult<proto::RecordNoticesResponse> {
        let txn = self.begin().await?;
        let loaded = find_meeting(&self.keyring, &txn, meeting_id).await?;
        check_meeting_step(&loaded, MeetingAction::RecordNotices)?;
        require_organiser(context, &loaded, "record notices for")?;
        let attendees = load_attendees(&txn, meeting_id).await?;
        rules::require_attendees("recipient_ids", recipients, &attendees)?;

        let now = self.now();
        let rows: Vec<notice::Model> = recipients
            .iter()
            .map(|recipient| notice::Model {
                id: Uuid::now_v7().to_string(),
                meeting_id: meeting_id.to_owned(),
                recipient_id: recipient.clone(),
                notified_at: now,
                recorded_by: context.principal.user_id.clone(),
                plan_revision: loaded.plan_revision,
            })
            .collect();
        notice::Entity::insert_many(rows.iter().cloned().map(notice::ActiveModel::from))
            .exec_without_returning(&txn)
            .await?;

        let payload = proto::NoticesRecorded {
            recipient_ids: recipients.to_vec(),
            plan_revision: convert::count(loaded.plan_revision),
        };
        let (_, event_id) = self
            .change_meeting(
                &txn,
                context,
                &loaded,
                Default::default(),
                "notices_recorded",
                pack(&payload),
            )
            .await?;
        self.commit(txn).await?;

        Ok(proto::RecordNoticesResponse {
            notices: rows.iter().map(convert::notice).collect(),
            event_id,
        })
    }

    pub(super) async fn cancel(
        &self,
        context: &CallContext,
        request: proto::CancelMeetingRequest,
    ) -> ServiceResult<proto::CancelMeetingResponse> {
        let meeting_id = validate::record_id("meeting_id", &request.meeting_id)?.to_string();
        let reason = validate::text("reason", &request.reason, 1, 2000)?;

        with_retries("cancel meeting", || {
            self.try_cancel(context, &meeting_id, &reason)
        })
        .await
    }

    async fn try_cancel(
        &self,
        context: &CallContext,
        meeting_id: &str,
        reason: &str,
    ) -> AttemptResult<proto::CancelMeetingResponse> {
        let txn = self.begin().await?;
        let loaded = find_meeting(&self.keyring, &txn, meeting_id).await?;
        check_meeting_step(&loaded, MeetingAction::Cancel)?;
        require_organiser(context, &loaded, "cancel")?;

        let sealed = meeting::Model {
            cancel_reason: Some(reason.to_owned()),
            ..loaded.clone()
        }
        .sealed(&self.keyring, loaded.confidentiality);
        let changes = meeting::ActiveModel {
            state: Set(MeetingState::Cancelled),
            cancel_reason: Set(sealed.cancel_reason),
            cancelled_at: Set(Some(self.now())),
            ..Default::default()
        };
        let payload = proto::MeetingCancelled {
            reason: reason.to_owned(),
        };
        let (meeting, event_id) = self
            .change_meeting(&txn, context, &loaded, changes, "cancelled", pack(&payload))
            .await?;
        let attendees = load_attendees(&txn, meeting_id).await?;
        let agenda = load_agenda(&self.keyring, &txn, meeting_id).await?;
        self.commit(txn).await?;

        Ok(proto::CancelMeetingResponse {
            meeting: Some(convert::meeting(&meeting, &attendees, &agenda)),
            event_id,
        })
    }
}
