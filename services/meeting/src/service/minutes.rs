//! Minutes: recording them (which opens one resolution per decision), amending them,
//! sending them to participants and recording each participant's confirmation or objection.

mod confirmation;

use chrono::NaiveDate;
use sea_orm::ActiveValue::Set;
use sea_orm::{DatabaseTransaction, EntityTrait};
use trace_proto::meeting::v1 as proto;
use trace_runtime::clock::date_key;
use trace_runtime::context::CallContext;
use trace_runtime::event::pack;
use trace_runtime::sealed_text::SealedRow;
use trace_runtime::{ServiceError, ServiceResult, validate};
use uuid::Uuid;

use super::input::{self, MAX_ATTENDEES, MAX_DECISIONS, StoredDiscussion};
use super::write::{
    AttemptResult, EventTarget, check_meeting_step, find_meeting, load_agenda, load_attendees,
    require, with_retries,
};
use super::{MeetingHandler, convert};
use crate::entity::{meeting, minutes, resolution};
use crate::rules;
use crate::state::{MeetingAction, MeetingState, ResolutionStatus};

/// The checked content that minutes and their amendments share.
struct MinutesContent {
    held_start: i64,
    held_end: i64,
    place: String,
    present: Vec<String>,
    absent: Vec<String>,
    discussions: Vec<proto::Discussion>,
}

/// One minutes version to insert.
struct NewVersion<'a> {
    meeting_id: &'a str,
    confidentiality: i32,
    version: i32,
    content: &'a MinutesContent,
    discussions: &'a [StoredDiscussion],
    change_summary: &'a str,
}

/// A checked decision.
struct DecisionInput {
    text: String,
    owner_id: String,
    due: NaiveDate,
}

/// A checked `RecordMinutesRequest`.
struct RecordInput {
    meeting_id: String,
    content: MinutesContent,
    decisions: Vec<DecisionInput>,
}

/// A checked `AmendMinutesRequest`.
struct AmendInput {
    meeting_id: String,
    change_summary: String,
    content: MinutesContent,
}

impl MinutesContent {
    fn parse(
        held_start: Option<&prost_types::Timestamp>,
        held_end: Option<&prost_types::Timestamp>,
        place: &str,
        present: &[String],
        absent: &[String],
        discussions: Vec<proto::Discussion>,
    ) -> ServiceResult<Self> {
        Ok(Self {
            held_start: input::timestamp("held_start_time", held_start)?,
            held_end: input::timestamp("held_end_time", held_end)?,
            place: input::location("place", place)?,
            present: rules::user_ids("present_ids", present, 0, MAX_ATTENDEES)?,
            absent: rules::user_ids("absent_ids", absent, 0, MAX_ATTENDEES)?,
            discussions,
        })
    }
}

fn parse_decisions(decisions: &[proto::Decision]) -> ServiceResult<Vec<DecisionInput>> {
    if decisions.len() > MAX_DECISIONS {
        return Err(ServiceError::invalid(
            "decisions",
            &format!("{} entries", decisions.len()),
            format!("must have at most {MAX_DECISIONS} entries"),
        ));
    }
    let mut checked = Vec::with_capacity(decisions.len());
    for (index, decision) in decisions.iter().enumerate() {
        checked.push(DecisionInput {
            text: validate::text(&format!("decisions[{index}].text"), &decision.text, 1, 2000)?,
            owner_id: validate::user_id(
                &format!("decisions[{index}].owner_id"),
                &decision.owner_id,
            )?,
            due: validate::date(
                &format!("decisions[{index}].due_date"),
                decision.due_date.as_ref(),
            )?,
        });
    }
    Ok(checked)
}

impl MeetingHandler {
    /// Checks minutes content against the meeting: attendance, discussions per agenda item
    /// and held times. Returns the discussions to store.
    async fn check_content(
        &self,
        txn: &DatabaseTransaction,
        loaded: &meeting::Model,
        content: &MinutesContent,
    ) -> ServiceResult<Vec<StoredDiscussion>> {
        let attendees = load_attendees(txn, &loaded.id).await?;
        let agenda = load_agenda(&self.keyring, txn, &loaded.id).await?;
        rules::check_attendance(&content.present, &content.absent, &attendees)?;
        let discussions = input::discussions(&content.discussions, agenda.len())?;
        rules::check_held_times(
            content.held_start,
            content.held_end,
            loaded.start_at,
            self.now(),
        )?;
        Ok(discussions)
    }

    /// Inserts one minutes version written by the caller.
    async fn insert_minutes(
        &self,
        txn: &DatabaseTransaction,
        context: &CallContext,
        new: NewVersion<'_>,
    ) -> AttemptResult<minutes::Model> {
        let content = new.content;
        let row = minutes::Model {
            meeting_id: new.meeting_id.to_owned(),
            version: new.version,
            taker_id: context.principal.user_id.clone(),
            recorded_at: self.now(),
            held_start_at: content.held_start,
            held_end_at: content.held_end,
            place: content.place.clone(),
            present_ids: input::to_json(&content.present)?,
            absent_ids: input::to_json(&content.absent)?,
            discussions: input::to_json(&new.discussions)?,
            change_summary: new.change_summary.to_owned(),
        };
        let stored = row.clone().sealed(&self.keyring, new.confidentiality);
        minutes::Entity::insert(minutes::ActiveModel::from(stored))
            .exec_without_returning(txn)
            .await?;
        Ok(row)
    }

    pub(super) async fn record(
        &self,
        context: &CallContext,
        request: proto::RecordMinutesRequest,
    ) -> ServiceResult<proto::RecordMinutesResponse> {
        let record = RecordInput {
            meeting_id: validate::record_id("meeting_id", &request.meeting_id)?.to_string(),
            decisions: parse_decisions(&request.decisions)?,
            content: MinutesContent::parse(
                request.held_start_time.as_ref(),
                request.held_end_time.as_ref(),
                &request.place,
                &request.present_ids,
                &request.absent_ids,
                request.discussions,
            )?,
        };

        let resolution_ids: Vec<String> = record
            .decisions
            .iter()
            .map(|_| Uuid::now_v7().to_string())
            .collect();
        with_retries("record minutes", || {
            self.try_record(context, &record, &resolution_ids)
        })
        .await
    }

    async fn try_record(
        &self,
        context: &CallContext,
        record: &RecordInput,
        resolution_ids: &[String],
    ) -> AttemptResult<proto::RecordMinutesResponse> {
        let txn = self.begin().await?;
        let loaded = find_meeting(&self.keyring, &txn, &record.meeting_id).await?;
        check_meeting_step(&loaded, MeetingAction::RecordMinutes)?;
        self.require_attendee_or_organiser(&txn, context, &loaded)
            .await?;
        let discussions = self.check_content(&txn, &loaded, &record.content).await?;
        let held_on = self.date_of(record.content.held_start);
        for (index, decision) in record.decisions.iter().enumerate() {
            let field = format!("decisions[{index}].due_date");
            rules::check_due_date(&field, decision.due, held_on, self.today())?;
        }

        let new = NewVersion {
            meeting_id: &loaded.id,
            confidentiality: loaded.confidentiality,
            version: 1,
            content: &record.content,
            discussions: &discussions,
            change_summary: "",
        };
        let row = self.insert_minutes(&txn, context, new).await?;
        let resolutions = self
            .open_resolutions_for(&txn, &loaded, &record.decisions, resolution_ids)
            .await?;
        let today = self.today();
        let minutes = convert::minutes(&row)?;
        let resolution_messages: Vec<proto::Resolution> = resolutions
            .iter()
            .map(|model| convert::resolution(model, today))
            .collect();

        let changes = meeting::ActiveModel {
            state: Set(MeetingState::MinutesRecorded),
            minutes_version: Set(1),
            ..Default::default()
        };
        let payload = proto::MinutesRecorded {
            minutes: Some(minutes.clone()),
            resolutions: resolution_messages.clone(),
        };
        let (meeting, event_id) = self
            .change_meeting(
                &txn,
                context,
                &loaded,
                changes,
                "minutes_recorded",
                pack(&payload),
            )
            .await?;
        for model in &resolutions {
            self.stage_resolution_created(&txn, context, model).await?;
        }
        let attendees = load_attendees(&txn, &loaded.id).await?;
        let agenda = load_agenda(&self.keyring, &txn, &loaded.id).await?;
        self.commit(txn).await?;

        Ok(proto::RecordMinutesResponse {
            meeting: Some(convert::meeting(&meeting, &attendees, &agenda)),
            minutes: Some(minutes),
            resolutions: resolution_messages,
            event_id,
        })
    }

    async fn require_attendee_or_organiser(
        &self,
        txn: &DatabaseTransaction,
        context: &CallContext,
        loaded: &meeting::Model,
    ) -> ServiceResult<()> {
        let caller = &context.principal.user_id;
        let attendees = load_attendees(txn, &loaded.id).await?;
        require(
            *caller == loaded.organiser_id || attendees.contains(caller),
            || {
                format!(
                    "only the organiser or a planned attendee may record minutes of meeting {}, not {caller}",
                    loaded.id
                )
            },
        )
    }

    /// Inserts one OPEN resolution per decision, numbered from 1.
    async fn open_resolutions_for(
        &self,
        txn: &DatabaseTransaction,
        loaded: &meeting::Model,
        decisions: &[DecisionInput],
        resolution_ids: &[String],
    ) -> AttemptResult<Vec<resolution::Model>> {
        let now = self.now();
        let rows: Vec<resolution::Model> = decisions
            .iter()
            .zip(resolution_ids)
            .enumerate()
            .map(|(index, (decision, resolution_id))| resolution::Model {
                id: resolution_id.clone(),
                meeting_id: loaded.id.clone(),
                decision_number: i32::try_from(index + 1).unwrap_or(i32::MAX),
                decision_text: decision.text.clone(),
                owner_id: decision.owner_id.clone(),
                due_date: date_key(decision.due),
                original_due_date: date_key(decision.due),
                status: ResolutionStatus::Open,
                created_at: now,
                completed_at: None,
                overdue_marked_due: None,
                confidentiality: loaded.confidentiality,
                entity_version: 1,
            })
            .collect();
        if !rows.is_empty() {
            resolution::Entity::insert_many(
                rows.iter()
                    .cloned()
                    .map(|row| row.sealed(&self.keyring, loaded.confidentiality))
                    .map(resolution::ActiveModel::from),
            )
            .exec_without_returning(txn)
            .await?;
        }
        Ok(rows)
    }

    async fn stage_resolution_created(
        &self,
        txn: &DatabaseTransaction,
        context: &CallContext,
        model: &resolution::Model,
    ) -> ServiceResult<String> {
        let payload = proto::ResolutionCreated {
            meeting_id: model.meeting_id.clone(),
            decision_number: convert::count(model.decision_number),
            decision_text: model.decision_text.clone(),
            owner_id: model.owner_id.clone(),
            due_date: convert::date(model.due_date),
        };
        self.stage_event(
            txn,
            context,
            EventTarget::resolution(model),
            "created",
            pack(&payload),
        )
        .await
    }

    pub(super) async fn amend(
        &self,
        context: &CallContext,
        request: proto::AmendMinutesRequest,
    ) -> ServiceResult<proto::AmendMinutesResponse> {
        let amendment = AmendInput {
            meeting_id: validate::record_id("meeting_id", &request.meeting_id)?.to_string(),
            change_summary: validate::text("change_summary", &request.change_summary, 1, 2000)?,
            content: MinutesContent::parse(
                request.held_start_time.as_ref(),
                request.held_end_time.as_ref(),
                &request.place,
                &request.present_ids,
                &request.absent_ids,
                request.discussions,
            )?,
        };

        with_retries("amend minutes", || self.try_amend(context, &amendment)).await
    }

    async fn try_amend(
        &self,
        context: &CallContext,
        amendment: &AmendInput,
    ) -> AttemptResult<proto::AmendMinutesResponse> {
        let txn = self.begin().await?;
        let loaded = find_meeting(&self.keyring, &txn, &amendment.meeting_id).await?;
        check_meeting_step(&loaded, MeetingAction::AmendMinutes)?;
        let current = minutes::Entity::find_by_id((loaded.id.clone(), loaded.minutes_version))
            .one(&txn)
            .await?
            .ok_or_else(|| {
                ServiceError::not_found(
                    "minutes",
                    format!("{} version {}", loaded.id, loaded.minutes_version),
                )
            })?
            .opened(&self.keyring)
            .map_err(ServiceError::from)?;
        let caller = &context.principal.user_id;
        require(
            *caller == loaded.organiser_id || *caller == current.taker_id,
            || {
                format!(
                    "only the organiser or the minute-taker {} may amend the minutes of meeting {}, not {caller}",
                    current.taker_id, loaded.id
                )
            },
        )?;
        let discussions = self
            .check_content(&txn, &loaded, &amendment.content)
            .await?;

        let version = loaded.minutes_version + 1;
        let new = NewVersion {
            meeting_id: &loaded.id,
            confidentiality: loaded.confidentiality,
            version,
            content: &amendment.content,
            discussions: &discussions,
            change_summary: &amendment.change_summary,
        };
        let row = self.insert_minutes(&txn, context, new).await?;
        let minutes = convert::minutes(&row)?;
        let changes = meeting::ActiveModel {
            minutes_version: Set(version),
            ..Default::default()
        };
        let payload = proto::MinutesRecorded {
            minutes: Some(minutes.clone()),
            resolutions: Vec::new(),
        };
        let (meeting, event_id) = self
            .change_meeting(
                &txn,
                context,
                &loaded,
                changes,
                "minutes_amended",
                pack(&payload),
            )
            .await?;
        let attendees = load_attendees(&txn, &loaded.id).await?;
        let agenda = load_agenda(&self.keyring, &txn, &loaded.id).await?;
        self.commit(txn).await?;

        Ok(proto::AmendMinutesResponse {
            meeting: Some(convert::meeting(&meeting, &attendees, &agenda)),
            minutes: Some(minutes),
            event_id,
        })
    }
}
