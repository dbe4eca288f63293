//! Plan revisions: a change to a meeting that has not been held yet, recorded with who made
//! it, when, why and which fields changed.

use sea_orm::ActiveValue::Set;
use sea_orm::EntityTrait;
use trace_proto::meeting::v1 as proto;
use trace_runtime::clock::timestamp;
use trace_runtime::context::CallContext;
use trace_runtime::event::pack;
use trace_runtime::sealed_text::SealedRow;
use trace_runtime::{ServiceError, ServiceResult, validate};

use super::input::{self, AgendaInput, MAX_ATTENDEES};
use super::plan::{parse_channel, write_agenda, write_attendees};
use super::write::{
    AttemptResult, check_meeting_step, find_meeting, load_agenda, load_attendees,
    require_organiser, with_retries,
};
use super::{MeetingHandler, convert};
use crate::entity::{meeting, plan_revision};
use crate::rules;
use crate::state::{Channel, MeetingAction};

/// A checked `RevisePlanRequest`; `None` keeps the current value.
struct RevisionInput {
    meeting_id: String,
    change_summary: String,
    topic: Option<String>,
    start: Option<i64>,
    end: Option<i64>,
    channel: Option<Channel>,
    location: Option<String>,
    attendees: Option<Vec<String>>,
    agenda: Option<Vec<AgendaInput>>,
}

impl RevisionInput {
    fn parse(request: &proto::RevisePlanRequest) -> ServiceResult<Self> {
        Ok(Self {
            meeting_id: validate::record_id("meeting_id", &request.meeting_id)?.to_string(),
            change_summary: validate::text("change_summary", &request.change_summary, 1, 2000)?,
            topic: request.topic.as_deref().map(input::topic).transpose()?,
            start: request
                .start_time
                .as_ref()
                .map(|time| input::timestamp("start_time", Some(time)))
                .transpose()?,
            end: request
                .end_time
                .as_ref()
                .map(|time| input::timestamp("end_time", Some(time)))
                .transpose()?,
            channel: match request.channel {
                0 => None,
                value => Some(parse_channel(value)?),
            },
            location: request
                .location
                .as_deref()
                .map(|location| input::location("location", location))
                .transpose()?,
            attendees: request
                .attendees
                .as_ref()
                .map(|list| {
                    rules::user_ids(
                        "attendees.attendee_ids",
                        &list.attendee_ids,
                        1,
                        MAX_ATTENDEES,
                    )
                })
                .transpose()?,
            agenda: request
                .agenda
                .as_ref()
                .map(|list| input::agenda("agenda.items", &list.items))
                .transpose()?,
        })
    }
}

/// The plan after a revision, and the names of the fields that differ from before.
struct RevisedPlan {
    changed_fields: Vec<&'static str>,
    topic: String,
    channel: Channel,
    location: String,
    start: i64,
    end: i64,
    attendees: Vec<String>,
    agenda: Vec<AgendaInput>,
}

impl RevisedPlan {
    /// Returns the meeting columns of the plan and the new plan revision number.
    fn changes(&self, plan_revision: i32) -> meeting::ActiveModel {
        meeting::ActiveModel {
            topic: Set(self.topic.clone()),
            channel: Set(self.channel),
            location: Set(self.location.clone()),
            start_at: Set(self.start),
            end_at: Set(self.end),
            plan_revision: Set(plan_revision),
            ..Default::default()
        }
    }
}

/// Applies the requested values to the current plan. Only values that differ count as
/// changes, so a revision that changes nothing can be rejected.
fn revise(
    revision: &RevisionInput,
    loaded: &meeting::Model,
    attendees: Vec<String>,
    agenda: Vec<AgendaInput>,
) -> RevisedPlan {
    let mut plan = RevisedPlan {
        changed_fields: Vec::new(),
        topic: revision
            .topic
            .clone()
            .unwrap_or_else(|| loaded.topic.clone()),
        channel: revision.channel.unwrap_or(loaded.channel),
        location: revision
            .location
            .clone()
            .unwrap_or_else(|| loaded.location.clone()),
        start: revision.start.unwrap_or(loaded.start_at),
        end: revision.end.unwrap_or(loaded.end_at),
        attendees: revision
            .attendees
            .clone()
            .unwrap_or_else(|| attendees.clone()),
        agenda: revision.agenda.clone().unwrap_or_else(|| agenda.clone()),
    };

    let comparisons = [
        ("topic", plan.topic != loaded.topic),
        ("start_time", plan.start != loaded.start_at),
        ("end_time", plan.end != loaded.end_at),
        ("channel", plan.channel != loaded.channel),
        ("location", plan.location != loaded.location),
        ("attendee_ids", plan.attendees != attendees),
        ("agenda", plan.agenda != agenda),
    ];
    plan.changed_fields = comparisons
        .into_iter()
        .filter(|(_, changed)| *changed)
        .map(|(name, _)| name)
        .collect();
    plan
}

impl MeetingHandler {
    pub(super) async fn revise(
        &self,
        context: &CallContext,
        request: proto::RevisePlanRequest,
    ) -> ServiceResult<proto::RevisePlanResponse> {
        let revision = RevisionInput::parse(&request)?;

        with_retries("revise plan", || self.try_revise(context, &revision)).await
    }

    async fn try_revise(
        &self,
        context: &CallContext,
        revision: &RevisionInput,
    ) -> AttemptResult<proto::RevisePlanResponse> {
        let meeting_id = revision.meeting_id.as_str();
        let txn = self.begin().await?;
        let loaded = find_meeting(&self.keyring, &txn, meeting_id).await?;
        check_meeting_step(&loaded, MeetingAction::RevisePlan)?;
        require_organiser(context, &loaded, "revise the plan of")?;

        let attendees = load_attendees(&txn, meeting_id).await?;
        let agenda = load_agenda(&self.keyring, &txn, meeting_id).await?;
        let current_agenda = agenda
            .iter()
            .map(|item| AgendaInput {
                title: item.title.clone(),
                presenter_id: item.presenter_id.clone(),
            })
            .collect();
        let plan = revise(revision, &loaded, attendees, current_agenda);
        if plan.changed_fields.is_empty() {
            return Err(ServiceError::invalid(
                "request",
                "",
                "changes nothing: every given field equals the current plan",
            )
            .into());
        }
        let times_changed = plan
            .changed_fields
            .iter()
            .any(|name| name.ends_with("_time"));
        if times_changed {
            rules::check_plan_times(plan.start, plan.end, self.now())?;
        }

        let number = loaded.plan_revision + 1;
        let row = plan_revision::Model {
            meeting_id: meeting_id.to_owned(),
            revision: number,
            revised_by: context.principal.user_id.clone(),
            revised_at: self.now(),
            change_summary: revision.change_summary.clone(),
            changed_fields: plan.changed_fields.join(","),
        };
        let stored = row.clone().sealed(&self.keyring, loaded.confidentiality);
        plan_revision::Entity::insert(plan_revision::ActiveModel::from(stored))
            .exec_without_returning(&txn)
            .await?;
        if plan.changed_fields.contains(&"attendee_ids") {
            write_attendees(&txn, meeting_id, &plan.attendees).await?;
        }
        if plan.changed_fields.contains(&"agenda") {
            write_agenda(&txn, &self.keyring, &loaded, &plan.agenda).await?;
        }

        let changes = plan.changes(number);
        let payload = revised_payload(&plan, &row);
        let (meeting, event_id) = self
            .change_meeting(
                &txn,
                context,
                &loaded,
                changes,
                "plan_revised",
                pack(&payload),
            )
            .await?;
        let agenda = load_agenda(&self.keyring, &txn, meeting_id).await?;
        self.commit(txn).await?;

        Ok(proto::RevisePlanResponse {
            meeting: Some(convert::meeting(&meeting, &plan.attendees, &agenda)),
            revision: Some(convert::plan_revision(&row)),
            event_id,
        })
    }
}

/// Builds the event payload: the revision and the whole plan after it.
fn revised_payload(plan: &RevisedPlan, row: &plan_revision::Model) -> proto::MeetingPlanRevised {
    proto::MeetingPlanRevised {
        plan_revision: convert::count(row.revision),
        change_summary: row.change_summary.clone(),
        changed_fields: plan
            .changed_fields
            .iter()
            .map(|name| (*name).to_owned())
            .collect(),
        topic: plan.topic.clone(),
        channel: plan.channel.number(),
        location: plan.location.clone(),
        start_time: Some(timestamp(plan.start)),
        end_time: Some(timestamp(plan.end)),
        attendee_ids: plan.attendees.clone(),
        agenda: plan.agenda.iter().map(convert::agenda_input).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::MeetingState;

    fn loaded() -> meeting::Model {
        meeting::Model {
            id: "m".to_owned(),
            topic: "Budget".to_owned(),
            channel: Channel::InPerson,
            location: "Room 1".to_owned(),
            start_at: 100,
            end_at: 200,
            organiser_id: "lee".to_owned(),
            department: "engineering".to_owned(),
            planned_at: 1,
            state: MeetingState::Planned,
            confidentiality: 2,
            plan_revision: 1,
            minutes_version: 0,
            cancel_reason: None,
            cancelled_at: None,
            entity_version: 1,
        }
    }

    fn empty_revision() -> RevisionInput {
        RevisionInput {
            meeting_id: "m".to_owned(),
            change_summary: "why".to_owned(),
            topic: None,
            start: None,
            end: None,
            channel: None,
            location: None,
            attendees: None,
            agenda: None,
        }
    }

    #[test]
    fn equal_values_are_not_changes() {
        let mut revision = empty_revision();
        revision.topic = Some("Budget".to_owned());
        revision.start = Some(100);
        revision.attendees = Some(vec!["a".to_owned()]);

        let plan = revise(&revision, &loaded(), vec!["a".to_owned()], Vec::new());

        assert!(plan.changed_fields.is_empty(), "{:?}", plan.changed_fields);
    }

    #[test]
    fn changed_fields_are_named() {
        let mut revision = empty_revision();
        revision.start = Some(150);
        revision.channel = Some(Channel::Phone);
        revision.location = Some("+86 10 1234".to_owned());
        revision.attendees = Some(vec!["a".to_owned(), "b".to_owned()]);

        let plan = revise(&revision, &loaded(), vec!["a".to_owned()], Vec::new());

        assert_eq!(
            plan.changed_fields,
            ["start_time", "channel", "location", "attendee_ids"]
        );
        assert_eq!(plan.start, 150);
        assert_eq!(plan.end, 200);
        assert_eq!(plan.attendees.len(), 2);
    }
}
