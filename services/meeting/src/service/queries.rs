//! Read queries: one meeting with its records, meetings by start time, organiser and
//! attendee with paging, the tracking table of a meeting and the open resolutions of an
//! owner. Each returns only meetings inside the caller's read scope (see [`super::access`]).
//! A caller who takes no part in a CONFIDENTIAL or SECRET meeting gets its sealed fields only
//! under an approved access request. Every read that returns the sealed fields of such a
//! meeting, by id or in a listing, by a participant or under an approval, is recorded as the
//! meeting's `read` event.

use std::collections::HashMap;

use sea_orm::sea_query::Query;
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
};
use trace_proto::meeting::v1 as proto;
use trace_runtime::context::CallContext;
use trace_runtime::seal::Keyring;
use trace_runtime::sealed_text::open_rows;
use trace_runtime::{ServiceError, ServiceResult, validate};

use super::access::{ListedContent, ReadMethod, resolution_scope_condition, scope_condition};
use super::input;
use super::resolution::history;
use super::write::{load_agenda, load_attendees};
use super::{MeetingHandler, convert};
use crate::entity::{
    agenda_item, attendee, confirmation, dispatch, material, meeting, minutes, notice,
    overdue_mark, plan_revision, resolution,
};
use crate::rules::ReadScope;
use crate::state::ResolutionStatus;

/// Page size when the request leaves it 0.
const DEFAULT_PAGE_SIZE: u64 = 50;

/// Largest page size a request may ask for.
const MAX_PAGE_SIZE: i32 = 500;

/// Validated filters and paging of a `ListMeetingsRequest`.
#[derive(Debug, Default)]
struct MeetingFilter {
    start_from: Option<i64>,
    start_before: Option<i64>,
    organiser_id: Option<String>,
    attendee_id: Option<String>,
    /// Start time and id of the last meeting of the previous page.
    after: Option<(i64, String)>,
    page_size: u64,
}

fn non_empty(value: &str) -> Option<&str> {
    (!value.is_empty()).then_some(value)
}

/// Parses a page token `<start microseconds>:<meeting id>`.
fn parse_token(token: &str) -> ServiceResult<(i64, String)> {
    let invalid = || {
        ServiceError::invalid(
            "page.page_token",
            token,
            "is not a token from a previous response",
        )
    };
    let (start, id) = token.split_once(':').ok_or_else(invalid)?;
    let start = start.parse::<i64>().map_err(|_| invalid())?;
    let id = uuid::Uuid::try_parse(id).map_err(|_| invalid())?;
    Ok((start, id.to_string()))
}

fn parse_page_size(page_size: i32) -> ServiceResult<u64> {
    match page_size {
        0 => Ok(DEFAULT_PAGE_SIZE),
        1..=MAX_PAGE_SIZE => Ok(page_size.unsigned_abs().into()),
        _ => Err(ServiceError::invalid(
            "page.page_size",
            &page_size.to_string(),
            format!("must be 0 for the default of {DEFAULT_PAGE_SIZE}, or 1 to {MAX_PAGE_SIZE}"),
        )),
    }
}

impl MeetingFilter {
    fn parse(request: &proto::ListMeetingsRequest) -> ServiceResult<Self> {
        let page = request.page.clone().unwrap_or_default();
        let start_from = request
            .start_from
            .as_ref()
            .map(|time| input::timestamp("start_from", Some(time)))
            .transpose()?;
        let start_before = request
            .start_before
            .as_ref()
            .map(|time| input::timestamp("start_before", Some(time)))
            .transpose()?;
        if let (Some(from), Some(before)) = (start_from, start_before)
            && before <= from
        {
            return Err(ServiceError::invalid(
                "start_before",
                &trace_runtime::clock::from_micros(before).to_rfc3339(),
                "must be after start_from",
            ));
        }

        Ok(Self {
            start_from,
            start_before,
            organiser_id: non_empty(&request.organiser_id)
                .map(|user| validate::user_id("organiser_id", user))
                .transpose()?,
            attendee_id: non_empty(&request.attendee_id)
                .map(|user| validate::user_id("attendee_id", user))
                .transpose()?,
            after: non_empty(&page.page_token).map(parse_token).transpose()?,
            page_size: parse_page_size(page.page_size)?,
        })
    }

    fn condition(&self) -> Condition {
        let mut condition = Condition::all();
        if let Some(from) = self.start_from {
            condition = condition.add(meeting::Column::StartAt.gte(from));
        }
        if let Some(before) = self.start_before {
            condition = condition.add(meeting::Column::StartAt.lt(before));
        }
        if let Some(organiser) = &self.organiser_id {
            condition = condition.add(meeting::Column::OrganiserId.eq(organiser.as_str()));
        }
        if let Some(user) = &self.attendee_id {
            let meetings_of_user = Query::select()
                .column(attendee::Column::MeetingId)
                .from(attendee::Entity)
                .and_where(attendee::Column::UserId.eq(user.as_str()))
                .to_owned();
            condition = condition.add(meeting::Column::Id.in_subquery(meetings_of_user));
        }
        if let Some((start, id)) = &self.after {
            condition = condition.add(
                Condition::any()
                    .add(meeting::Column::StartAt.gt(*start))
                    .add(
                        Condition::all()
                            .add(meeting::Column::StartAt.eq(*start))
                            .add(meeting::Column::Id.gt(id.as_str())),
                    ),
            );
        }
        condition
    }
}

/// Loads attendees and agendas of several meetings with one query each.
async fn plans_of<C: ConnectionTrait>(
    keyring: &Keyring,
    connection: &C,
    meeting_ids: &[String],
) -> ServiceResult<(
    HashMap<String, Vec<String>>,
    HashMap<String, Vec<agenda_item::Model>>,
)> {
    let attendee_rows = attendee::Entity::find()
        .filter(attendee::Column::MeetingId.is_in(meeting_ids.iter().map(String::as_str)))
        .order_by_asc(attendee::Column::MeetingId)
        .order_by_asc(attendee::Column::Position)
        .all(connection)
        .await?;
    let mut attendees: HashMap<String, Vec<String>> = HashMap::new();
    for row in attendee_rows {
        attendees
            .entry(row.meeting_id)
            .or_default()
            .push(row.user_id);
    }

    let agenda_rows = agenda_item::Entity::find()
        .filter(agenda_item::Column::MeetingId.is_in(meeting_ids.iter().map(String::as_str)))
        .order_by_asc(agenda_item::Column::MeetingId)
        .order_by_asc(agenda_item::Column::Number)
        .all(connection)
        .await?;
    let mut agendas: HashMap<String, Vec<agenda_item::Model>> = HashMap::new();
    for row in open_rows(keyring, agenda_rows)? {
        agendas.entry(row.meeting_id.clone()).or_default().push(row);
    }
    Ok((attendees, agendas))
}

impl MeetingHandler {
    pub(super) async fn get(
        &self,
        context: &CallContext,
        request: proto::GetMeetingRequest,
    ) -> ServiceResult<proto::GetMeetingResponse> {
        let meeting_id = validate::record_id("meeting_id", &request.meeting_id)?.to_string();
        let db = &self.db;

        let (model, access_request_id) = self
            .authorize_read(context, &meeting_id, ReadMethod::GetMeeting)
            .await?;
        let attendees = load_attendees(db, &meeting_id).await?;
        let agenda = load_agenda(&self.keyring, db, &meeting_id).await?;
        let revisions = plan_revision::Entity::find()
            .filter(plan_revision::Column::MeetingId.eq(meeting_id.as_str()))
            .order_by_asc(plan_revision::Column::Revision)
            .all(db)
            .await?;
        let revisions = open_rows(&self.keyring, revisions)?;
        let notices = notice::Entity::find()
            .filter(notice::Column::MeetingId.eq(meeting_id.as_str()))
            .order_by_asc(notice::Column::Id)
            .all(db)
            .await?;
        let materials = material::Entity::find()
            .filter(material::Column::MeetingId.eq(meeting_id.as_str()))
            .order_by_asc(material::Column::Id)
            .all(db)
            .await?;
        let materials = open_rows(&self.keyring, materials)?;
        let minutes_versions = minutes::Entity::find()
            .filter(minutes::Column::MeetingId.eq(meeting_id.as_str()))
            .order_by_asc(minutes::Column::Version)
            .all(db)
            .await?;
        let minutes_versions = open_rows(&self.keyring, minutes_versions)?;
        let dispatches = dispatch::Entity::find()
            .filter(dispatch::Column::MeetingId.eq(meeting_id.as_str()))
            .order_by_asc(dispatch::Column::SentAt)
            .order_by_asc(dispatch::Column::RecipientId)
            .all(db)
            .await?;
        let confirmations = confirmation::Entity::find()
            .filter(confirmation::Column::MeetingId.eq(meeting_id.as_str()))
            .order_by_asc(confirmation::Column::ConfirmedAt)
            .order_by_asc(confirmation::Column::ParticipantId)
            .all(db)
            .await?;
        let confirmations = open_rows(&self.keyring, confirmations)?;
        let model = self
            .record_read(context, model, access_request_id, ReadMethod::GetMeeting)
            .await?;

        Ok(proto::GetMeetingResponse {
            meeting: Some(convert::meeting(&model, &attendees, &agenda)),
            revisions: revisions.iter().map(convert::plan_revision).collect(),
            notices: notices.iter().map(convert::notice).collect(),
            materials: materials.iter().map(convert::material).collect(),
            minutes: minutes_versions
                .iter()
                .map(convert::minutes)
                .collect::<ServiceResult<_>>()?,
            dispatches: dispatches.iter().map(convert::dispatch).collect(),
            confirmations: confirmations.iter().map(convert::confirmation).collect(),
        })
    }

    /// Lists meetings ordered by start time, then id. The page token is the start time and
    /// id of the last meeting of the previous page, and that pair is unique, so paging
    /// neither repeats nor skips a meeting that did not change its start time meanwhile. The
    /// read scope is part of the query's condition, so a page is never cut short by meetings
    /// the caller may not read.
    pub(super) async fn search(
        &self,
        context: &CallContext,
        request: proto::ListMeetingsRequest,
    ) -> ServiceResult<proto::ListMeetingsResponse> {
        let filter = MeetingFilter::parse(&request)?;
        let mut condition = filter.condition();
        if let Some(scope) = scope_condition(&ReadScope::of(&context.principal)) {
            condition = condition.add(scope);
        }

        // Fetching one row more than the page shows whether another page follows.
        let rows = meeting::Entity::find()
            .filter(condition)
            .order_by_asc(meeting::Column::StartAt)
            .order_by_asc(meeting::Column::Id)
            .limit(filter.page_size + 1)
            .all(&self.db)
            .await?;
        let mut rows = open_rows(&self.keyring, rows)?;
        let has_more = rows.len() as u64 > filter.page_size;
        rows.truncate(usize::try_from(filter.page_size).unwrap_or(usize::MAX));
        let ids: Vec<String> = rows.iter().map(|row| row.id.clone()).collect();
        let (attendees, agendas) = plans_of(&self.keyring, &self.db, &ids).await?;
        let decisions = self.listed_content(context, &rows, &attendees).await?;
        let mut read = self
            .record_listed_reads(context, &decisions, ReadMethod::ListMeetings)
            .await?;

        let next_page_token = match rows.last() {
            Some(last) if has_more => format!("{}:{}", last.start_at, last.id),
            _ => String::new(),
        };
        let meetings = rows
            .into_iter()
            .map(|row| {
                // A recorded read moved the meeting to a new version.
                let row = read.remove(&row.id).unwrap_or(row);
                let attendees = attendees.get(&row.id).map_or(&[][..], Vec::as_slice);
                let agenda = agendas.get(&row.id).map_or(&[][..], Vec::as_slice);
                let mut meeting = convert::meeting(&row, attendees, agenda);
                if decisions.get(&row.id) == Some(&ListedContent::Withheld) {
                    withhold_meeting(&mut meeting);
                }
                meeting
            })
            .collect();
        Ok(proto::ListMeetingsResponse {
            meetings,
            next_page_token,
        })
    }

    pub(super) async fn tracking_table(
        &self,
        context: &CallContext,
        request: proto::GetTrackingTableRequest,
    ) -> ServiceResult<proto::GetTrackingTableResponse> {
        let meeting_id = validate::record_id("meeting_id", &request.meeting_id)?.to_string();
        let (model, access_request_id) = self
            .authorize_read(context, &meeting_id, ReadMethod::GetTrackingTable)
            .await?;

        let rows = resolution::Entity::find()
            .filter(resolution::Column::MeetingId.eq(meeting_id.as_str()))
            .order_by_asc(resolution::Column::DecisionNumber)
            .all(&self.db)
            .await?;
        let rows = open_rows(&self.keyring, rows)?;
        let today = self.today();
        let mut resolutions = Vec::with_capacity(rows.len());
        for row in &rows {
            let (updates, delays) = history(&self.keyring, &self.db, &row.id).await?;
            let marks = overdue_mark::Entity::find()
                .filter(overdue_mark::Column::ResolutionId.eq(row.id.as_str()))
                .order_by_asc(overdue_mark::Column::DueDate)
                .all(&self.db)
                .await?;
            resolutions.push(proto::TrackedResolution {
                resolution: Some(convert::resolution(row, today)),
                updates: updates.iter().map(convert::update).collect(),
                delays: delays.iter().map(convert::delay).collect(),
                overdue_marks: marks.iter().map(convert::overdue_mark).collect(),
            });
        }
        self.record_read(
            context,
            model,
            access_request_id,
            ReadMethod::GetTrackingTable,
        )
        .await?;
        Ok(proto::GetTrackingTableResponse { resolutions })
    }

    pub(super) async fn open_resolutions(
        &self,
        context: &CallContext,
        request: proto::ListOpenResolutionsRequest,
    ) -> ServiceResult<proto::ListOpenResolutionsResponse> {
        let owner_id = match non_empty(&request.owner_id) {
            Some(owner) => validate::user_id("owner_id", owner)?,
            None => context.principal.user_id.clone(),
        };

        let mut condition = Condition::all()
            .add(resolution::Column::OwnerId.eq(owner_id.as_str()))
            .add(resolution::Column::Status.ne(ResolutionStatus::Done));
        if let Some(scope) = resolution_scope_condition(&ReadScope::of(&context.principal)) {
            condition = condition.add(scope);
        }
        let rows = resolution::Entity::find()
            .filter(condition)
            .order_by_asc(resolution::Column::DueDate)
            .order_by_asc(resolution::Column::Id)
            .all(&self.db)
            .await?;
        let rows = open_rows(&self.keyring, rows)?;

        let mut meeting_ids: Vec<String> = rows.iter().map(|row| row.meeting_id.clone()).collect();
        meeting_ids.sort_unstable();
        meeting_ids.dedup();
        let meetings = meeting::Entity::find()
            .filter(meeting::Column::Id.is_in(meeting_ids.iter().map(String::as_str)))
            .all(&self.db)
            .await?;
        let meetings = open_rows(&self.keyring, meetings)?;
        let (attendees, _) = plans_of(&self.keyring, &self.db, &meeting_ids).await?;
        let decisions = self.listed_content(context, &meetings, &attendees).await?;
        self.record_listed_reads(context, &decisions, ReadMethod::ListOpenResolutions)
            .await?;

        let today = self.today();
        Ok(proto::ListOpenResolutionsResponse {
            resolutions: rows
                .iter()
                .map(|row| {
                    let mut resolution = convert::resolution(row, today);
                    if decisions.get(&row.meeting_id) == Some(&ListedContent::Withheld) {
                        resolution.decision_text.clear();
                        resolution.content_withheld = true;
                    }
                    resolution
                })
                .collect(),
        })
    }
}

/// Leaves out the sealed fields of a listed meeting whose content the caller may not read.
fn withhold_meeting(meeting: &mut proto::Meeting) {
    for item in &mut meeting.agenda {
        item.title.clear();
    }
    meeting.cancel_reason.clear();
    meeting.content_withheld = true;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(result: ServiceResult<MeetingFilter>) -> String {
        match result {
            Err(ServiceError::InvalidArgument { field, .. }) => field,
            other => panic!("expected an invalid argument, got {other:?}"),
        }
    }

    #[test]
    fn page_token_round_trips() {
        let id = uuid::Uuid::now_v7().to_string();

        assert_eq!(parse_token(&format!("-5:{id}")).unwrap(), (-5, id.clone()));
        assert!(parse_token(&id).is_err());
        assert!(parse_token("x:y").is_err());
    }

    #[test]
    fn malformed_filters_name_the_field() {
        let time = |seconds| Some(prost_types::Timestamp { seconds, nanos: 0 });
        let cases: [(&str, proto::ListMeetingsRequest); 4] = [
            (
                "start_before",
                proto::ListMeetingsRequest {
                    start_from: time(10),
                    start_before: time(10),
                    ..Default::default()
                },
            ),
            (
                "organiser_id",
                proto::ListMeetingsRequest {
                    organiser_id: "a b".to_owned(),
                    ..Default::default()
                },
            ),
            (
                "attendee_id",
                proto::ListMeetingsRequest {
                    attendee_id: "*".to_owned(),
                    ..Default::default()
                },
            ),
            (
                "page.page_size",
                proto::ListMeetingsRequest {
                    page: Some(trace_proto::common::v1::PageRequest {
                        page_size: 501,
                        page_token: String::new(),
                    }),
                    ..Default::default()
                },
            ),
        ];

        for (expected, request) in cases {
            assert_eq!(field(MeetingFilter::parse(&request)), expected);
        }
    }
}
