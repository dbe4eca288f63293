//! Read access to meetings. [`crate::rules::may_read`] decides who reads one meeting, and
//! [`scope_condition`] applies the same rule in SQL to the listings. A denied read of an
//! existing meeting is recorded as the meeting's `read_denied` event, and a denied read of
//! a missing meeting as an `access.denied` event. Both return `PERMISSION_DENIED` with one
//! message and a recorded event id, so the response does not reveal whether the meeting
//! exists. Only callers who read every meeting get `NOT_FOUND` for a missing one. A reader
//! of a CONFIDENTIAL or SECRET meeting who takes no part in it also needs an approved access
//! request (see [`super::approval`]), and a read denied by that rule is a `read_denied` event
//! naming the request it judged. A permitted read of a CONFIDENTIAL or SECRET meeting is
//! recorded as a `read` event naming the request it used.

use std::collections::HashMap;

use sea_orm::sea_query::Query;
use sea_orm::{ColumnTrait, Condition, EntityTrait, QueryFilter, QuerySelect};
use trace_proto::common::v1::Confidentiality;
use trace_proto::meeting::v1 as proto;
use trace_runtime::access_approval::{self, ApprovalCheck};
use trace_runtime::context::CallContext;
use trace_runtime::event::pack;
use trace_runtime::read_scope::GuardedRead;
use trace_runtime::{ServiceError, ServiceResult};

use super::write::{AttemptResult, find_meeting, load_attendees, with_retries};
use super::{MeetingHandler, SERVICE};
use crate::entity::{attendee, meeting, resolution};
use crate::rules::{MeetingParties, ReadScope, may_read, takes_part};

/// Description of the callers who read a meeting, which ends the denial message.
const READERS: &str = "\
    a meeting is read by its organiser, attendees and resolution owners, by \
    supervisors and department heads of its department, and by the administration, \
    audit and system roles";

/// The by-id reads that the read rule guards, named as in the gRPC service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ReadMethod {
    GetMeeting,
    GetTrackingTable,
    RequestAccess,
    ListAccessRequests,
    ListMeetings,
    ListOpenResolutions,
}

impl ReadMethod {
    fn name(self) -> &'static str {
        match self {
            Self::GetMeeting => "GetMeeting",
            Self::GetTrackingTable => "GetTrackingTable",
            Self::RequestAccess => "RequestAccess",
            Self::ListAccessRequests => "ListAccessRequests",
            Self::ListMeetings => "ListMeetings",
            Self::ListOpenResolutions => "ListOpenResolutions",
        }
    }

    /// Describes the read of `meeting_id` by this method for the denial errors.
    pub(super) fn guarded(self, meeting_id: &str) -> GuardedRead<'_> {
        GuardedRead {
            service: SERVICE,
            grpc_service: "trace.meeting.v1.MeetingService",
            method: self.name(),
            record: "meeting",
            record_id: meeting_id,
            readers: READERS,
        }
    }
}

/// Visibility of one listed CONFIDENTIAL or SECRET meeting's sealed fields (agenda titles,
/// cancel reason, decision texts) to the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum ListedContent {
    /// The caller takes part in the meeting. The listing is recorded as the meeting's `read`
    /// event naming no request.
    Participant,
    /// The caller takes no part but has the approved access request with this id. The
    /// listing is recorded as the meeting's `read` event naming it.
    Approved(String),
    /// The caller takes no part and has no current approval, so the fields are left out and
    /// nothing is recorded.
    Withheld,
}

impl ListedContent {
    /// Returns the access request id that the meeting's `read` event names, empty for a
    /// participant, or `None` when the fields are withheld and the read is not recorded.
    fn recorded_request(&self) -> Option<&str> {
        match self {
            Self::Participant => Some(""),
            Self::Approved(request_id) => Some(request_id),
            Self::Withheld => None,
        }
    }
}

/// Returns the condition on `meetings` that keeps the meetings inside `scope`, or `None`
/// when the scope is every meeting.
pub(super) fn scope_condition(scope: &ReadScope) -> Option<Condition> {
    let ReadScope::Involved {
        user_id,
        department,
    } = scope
    else {
        return None;
    };
    let attended = Query::select()
        .column(attendee::Column::MeetingId)
        .from(attendee::Entity)
        .and_where(attendee::Column::UserId.eq(user_id.as_str()))
        .to_owned();
    let owned = Query::select()
        .column(resolution::Column::MeetingId)
        .from(resolution::Entity)
        .and_where(resolution::Column::OwnerId.eq(user_id.as_str()))
        .to_owned();
    let mut condition = Condition::any()
        .add(meeting::Column::OrganiserId.eq(user_id.as_str()))
        .add(meeting::Column::Id.in_subquery(attended))
        .add(meeting::Column::Id.in_subquery(owned));
    if let Some(department) = department {
        condition = condition.add(meeting::Column::Department.eq(department.as_str()));
    }
    Some(condition)
}

/// Returns the condition on `resolutions` that keeps the resolutions of meetings inside
/// `scope`, or `None` when the scope is every meeting.
pub(super) fn resolution_scope_condition(scope: &ReadScope) -> Option<Condition> {
    let meetings = scope_condition(scope)?;
    let readable = Query::select()
        .column(meeting::Column::Id)
        .from(meeting::Entity)
        .cond_where(meetings)
        .to_owned();
    Some(Condition::all().add(resolution::Column::MeetingId.in_subquery(readable)))
}

impl MeetingHandler {
    /// Loads the meeting `meeting_id` when it is inside the caller's read scope, and returns
    /// it with whether the caller takes part in it. Otherwise records the denial and returns
    /// `PERMISSION_DENIED`, for a missing meeting as well unless the caller reads every
    /// meeting, who gets `NOT_FOUND`.
    pub(super) async fn authorize_scope(
        &self,
        context: &CallContext,
        meeting_id: &str,
        method: ReadMethod,
    ) -> ServiceResult<(meeting::Model, bool)> {
        let scope = ReadScope::of(&context.principal);
        let found = find_meeting(&self.keyring, &self.db, meeting_id).await;
        let model = match found {
            Ok(model) => model,
            // A caller who reads every meeting learns nothing from NOT_FOUND.
            Err(error @ ServiceError::NotFound { .. }) if scope == ReadScope::Whole => {
                return Err(error);
            }
            Err(ServiceError::NotFound { .. }) => {
                return Err(self.deny_missing(context, meeting_id, method).await);
            }
            Err(error) => return Err(error),
        };

        let attendee_ids = load_attendees(&self.db, meeting_id).await?;
        let resolution_owner_ids: Vec<String> = resolution::Entity::find()
            .select_only()
            .column(resolution::Column::OwnerId)
            .filter(resolution::Column::MeetingId.eq(meeting_id))
            .into_tuple()
            .all(&self.db)
            .await?;
        let parties = MeetingParties {
            organiser_id: &model.organiser_id,
            department: &model.department,
            attendee_ids: &attendee_ids,
            resolution_owner_ids: &resolution_owner_ids,
        };
        if !may_read(&scope, &parties) {
            return Err(self.deny_existing(context, &model, method).await);
        }
        let participant = takes_part(&context.principal.user_id, &parties);
        Ok((model, participant))
    }

    /// Loads the meeting `meeting_id` when the caller may read its records, and returns it
    /// with the access request the read uses. Besides the read scope of
    /// [`MeetingHandler::authorize_scope`], a caller who takes no part in a CONFIDENTIAL or
    /// SECRET meeting needs an approved access request, and for a SECRET meeting the
    /// current agreement. A denial by that rule is recorded as the meeting's `read_denied`
    /// event and returned as `PERMISSION_DENIED` with the reason, which the caller may see
    /// because the meeting is inside their scope.
    pub(super) async fn authorize_read(
        &self,
        context: &CallContext,
        meeting_id: &str,
        method: ReadMethod,
    ) -> ServiceResult<(meeting::Model, Option<String>)> {
        let (model, participant) = self.authorize_scope(context, meeting_id, method).await?;
        let level = access_approval::level_of(model.confidentiality);
        if level < Confidentiality::Confidential || participant {
            return Ok((model, None));
        }

        let caller = context.principal.user_id.as_str();
        let now = self.now();
        let request = access_approval::newest_request(&self.db, &model.id, caller, now).await?;
        let agreement_accepted =
            access_approval::agreement_accepted(&self.db, caller, &self.settings.agreement_version)
                .await?;
        let check = ApprovalCheck {
            caller,
            record: "meeting",
            record_id: &model.id,
            level,
            takes_part: participant,
            request: request.as_ref(),
            agreement_accepted,
            now,
        };
        let denial = match access_approval::check_approval(&check) {
            Ok(used) => return Ok((model, used)),
            Err(denial) => denial,
        };

        let payload = proto::MeetingReadDenied {
            method: method.name().to_owned(),
            reason: denial.reason.clone(),
            access_request_id: denial.access_request_id.clone().unwrap_or_default(),
        };
        let event_id = self.record_denial(context, &model, &payload).await?;
        tracing::info!(
            meeting_id = %model.id,
            user_id = caller,
            method = method.name(),
            %event_id,
            reason = %denial.reason,
            "meeting read denied without a current approval"
        );
        Err(ServiceError::denied_and_recorded(
            format!(
                "{}; the denial is recorded as event {event_id}",
                denial.reason
            ),
            event_id,
        ))
    }

    /// Records a permitted read of a CONFIDENTIAL or SECRET meeting as its `read` event, which
    /// names the access request the read used, and returns the meeting at the new version.
    /// Meetings of a lower level are returned as they are, with no event.
    pub(super) async fn record_read(
        &self,
        context: &CallContext,
        model: meeting::Model,
        access_request_id: Option<String>,
        method: ReadMethod,
    ) -> ServiceResult<meeting::Model> {
        let level = access_approval::level_of(model.confidentiality);
        if level < Confidentiality::Confidential {
            return Ok(model);
        }
        let payload = proto::MeetingRead {
            method: method.name().to_owned(),
            access_request_id: access_request_id.unwrap_or_default(),
        };
        with_retries("record a meeting read", || async {
            let txn = self.begin().await?;
            let loaded = find_meeting(&self.keyring, &txn, &model.id).await?;
            let (updated, _) = self
                .change_meeting(
                    &txn,
                    context,
                    &loaded,
                    Default::default(),
                    "read",
                    pack(&payload),
                )
                .await?;
            self.commit(txn).await?;
            AttemptResult::Ok(updated)
        })
        .await
    }

    /// Decides what the caller sees of the sealed fields of each listed meeting, which the
    /// listing's read scope already admitted. Only CONFIDENTIAL and SECRET meetings get an
    /// entry, and a missing entry means that the fields are shown without a recorded read.
    pub(super) async fn listed_content(
        &self,
        context: &CallContext,
        meetings: &[meeting::Model],
        attendees: &HashMap<String, Vec<String>>,
    ) -> ServiceResult<HashMap<String, ListedContent>> {
        let guarded: Vec<&meeting::Model> = meetings
            .iter()
            .filter(|model| {
                access_approval::level_of(model.confidentiality) >= Confidentiality::Confidential
            })
            .collect();
        let mut decisions = HashMap::new();
        if guarded.is_empty() {
            return Ok(decisions);
        }

        let owner_rows: Vec<(String, String)> = resolution::Entity::find()
            .select_only()
            .column(resolution::Column::MeetingId)
            .column(resolution::Column::OwnerId)
            .filter(
                resolution::Column::MeetingId.is_in(guarded.iter().map(|model| model.id.as_str())),
            )
            .into_tuple()
            .all(&self.db)
            .await?;
        let mut owners: HashMap<String, Vec<String>> = HashMap::new();
        for (meeting_id, owner_id) in owner_rows {
            owners.entry(meeting_id).or_default().push(owner_id);
        }

        let caller = context.principal.user_id.as_str();
        let now = self.now();
        let agreement_accepted =
            access_approval::agreement_accepted(&self.db, caller, &self.settings.agreement_version)
                .await?;
        for model in guarded {
            let parties = MeetingParties {
                organiser_id: &model.organiser_id,
                department: &model.department,
                attendee_ids: attendees.get(&model.id).map_or(&[][..], Vec::as_slice),
                resolution_owner_ids: owners.get(&model.id).map_or(&[][..], Vec::as_slice),
            };
            let participant = takes_part(caller, &parties);
            let request = if participant {
                None
            } else {
                access_approval::newest_request(&self.db, &model.id, caller, now).await?
            };
            let check = ApprovalCheck {
                caller,
                record: "meeting",
                record_id: &model.id,
                level: access_approval::level_of(model.confidentiality),
                takes_part: participant,
                request: request.as_ref(),
                agreement_accepted,
                now,
            };
            let decision = match access_approval::check_approval(&check) {
                Ok(Some(request_id)) => ListedContent::Approved(request_id),
                // The meeting is CONFIDENTIAL or above, so the rule needs no request only
                // for a participant.
                Ok(None) => ListedContent::Participant,
                Err(_) => ListedContent::Withheld,
            };
            decisions.insert(model.id.clone(), decision);
        }
        Ok(decisions)
    }

    /// Records one `read` event for each meeting of `decisions` whose fields a listing showed,
    /// to a participant or under an approved access request, in one transaction, and returns
    /// those meetings at their new versions by id.
    pub(super) async fn record_listed_reads(
        &self,
        context: &CallContext,
        decisions: &HashMap<String, ListedContent>,
        method: ReadMethod,
    ) -> ServiceResult<HashMap<String, meeting::Model>> {
        let mut reads: Vec<(&str, &str)> = decisions
            .iter()
            .filter_map(|(meeting_id, decision)| {
                Some((meeting_id.as_str(), decision.recorded_request()?))
            })
            .collect();
        if reads.is_empty() {
            return Ok(HashMap::new());
        }
        // Sorted ids, so that two listings lock shared meetings in the same order.
        reads.sort_unstable();
        with_retries("record the meetings a listing showed", || async {
            let txn = self.begin().await?;
            let mut updated = HashMap::with_capacity(reads.len());
            for (meeting_id, request_id) in &reads {
                let loaded = find_meeting(&self.keyring, &txn, meeting_id).await?;
                let payload = proto::MeetingRead {
                    method: method.name().to_owned(),
                    access_request_id: (*request_id).to_owned(),
                };
                let (model, _) = self
                    .change_meeting(
                        &txn,
                        context,
                        &loaded,
                        Default::default(),
                        "read",
                        pack(&payload),
                    )
                    .await?;
                updated.insert(model.id.clone(), model);
            }
            self.commit(txn).await?;
            AttemptResult::Ok(updated)
        })
        .await
    }

    /// Records a denied read of an existing meeting outside the caller's scope as its
    /// `read_denied` event.
    async fn deny_existing(
        &self,
        context: &CallContext,
        model: &meeting::Model,
        method: ReadMethod,
    ) -> ServiceError {
        let user_id = &context.principal.user_id;
        let payload = proto::MeetingReadDenied {
            method: method.name().to_owned(),
            reason: format!(
                "{user_id} is not the organiser, an attendee or a resolution owner of the \
                 meeting, and is not a supervisor or department head of its department '{}'",
                model.department
            ),
            access_request_id: String::new(),
        };
        let recorded = self.record_denial(context, model, &payload).await;
        method.guarded(&model.id).denial_error(context, recorded)
    }

    /// Records `payload` as the meeting's `read_denied` event and returns the event id.
    async fn record_denial(
        &self,
        context: &CallContext,
        model: &meeting::Model,
        payload: &proto::MeetingReadDenied,
    ) -> ServiceResult<String> {
        with_retries("record a denied meeting read", || async {
            let txn = self.begin().await?;
            let loaded = find_meeting(&self.keyring, &txn, &model.id).await?;
            let (_, event_id) = self
                .change_meeting(
                    &txn,
                    context,
                    &loaded,
                    Default::default(),
                    "read_denied",
                    pack(payload),
                )
                .await?;
            self.commit(txn).await?;
            AttemptResult::Ok(event_id)
        })
        .await
    }

    /// Records a denied read of a missing meeting as an `access.denied` event, the event
    /// that the denial layer writes for other denials.
    async fn deny_missing(
        &self,
        context: &CallContext,
        meeting_id: &str,
        method: ReadMethod,
    ) -> ServiceError {
        method
            .guarded(meeting_id)
            .deny_missing(&self.outbox, context)
            .await
    }
}
