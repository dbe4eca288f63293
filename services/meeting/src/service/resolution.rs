//! Follow-up of resolutions: progress updates by the owner or the organiser, delay requests
//! by the owner, and their decision by the organiser or the named approver. Every step is
//! kept as a row of the tracking table, and the due date changes only when a delay is
//! approved.

use chrono::NaiveDate;
use sea_orm::ActiveValue::Set;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseTransaction, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder,
};
use trace_proto::meeting::v1 as proto;
use trace_runtime::clock::{date_from_key, date_key};
use trace_runtime::context::CallContext;
use trace_runtime::event::pack;
use trace_runtime::seal::Keyring;
use trace_runtime::sealed_text::{SealedRow, open_rows};
use trace_runtime::{ServiceError, ServiceResult, validate};
use uuid::Uuid;

use super::write::{
    AttemptResult, check_resolution_step, find_meeting, find_resolution, require, with_retries,
};
use super::{MeetingHandler, convert};
use crate::entity::{delay_request, resolution, resolution_update};
use crate::rules;
use crate::state::{DelayState, ResolutionAction, ResolutionStatus};

/// A checked `UpdateResolutionRequest`.
struct UpdateInput {
    resolution_id: String,
    status: ResolutionStatus,
    progress_note: String,
    problems: String,
    solutions: String,
}

/// A checked `RequestDelayRequest`.
struct DelayInput {
    resolution_id: String,
    reason: String,
    proposed: NaiveDate,
    approver_id: Option<String>,
}

/// A checked `DecideDelayRequest`.
struct DecisionInput {
    resolution_id: String,
    delay_id: String,
    approve: bool,
    opinion: String,
}

impl UpdateInput {
    fn parse(request: &proto::UpdateResolutionRequest) -> ServiceResult<Self> {
        let status: proto::ResolutionStatus = validate::enum_value("status", request.status)?;
        let status = match ResolutionStatus::from_proto(status) {
            Some(status @ (ResolutionStatus::InProgress | ResolutionStatus::Done)) => status,
            _ => {
                return Err(ServiceError::invalid(
                    "status",
                    &request.status.to_string(),
                    "must be IN_PROGRESS or DONE",
                ));
            }
        };

        Ok(Self {
            resolution_id: validate::record_id("resolution_id", &request.resolution_id)?
                .to_string(),
            status,
            progress_note: validate::text("progress_note", &request.progress_note, 1, 4000)?,
            problems: validate::text("problems", &request.problems, 0, 4000)?,
            solutions: validate::text("solutions", &request.solutions, 0, 4000)?,
        })
    }
}

impl DelayInput {
    fn parse(request: &proto::RequestDelayRequest, caller: &str) -> ServiceResult<Self> {
        let approver_id = match request.approver_id.as_str() {
            "" => None,
            approver => Some(validate::user_id("approver_id", approver)?),
        };
        if approver_id.as_deref() == Some(caller) {
            return Err(ServiceError::invalid(
                "approver_id",
                caller,
                "must differ from the caller, who may not approve their own delay",
            ));
        }

        Ok(Self {
            resolution_id: validate::record_id("resolution_id", &request.resolution_id)?
                .to_string(),
            reason: validate::text("reason", &request.reason, 1, 4000)?,
            proposed: validate::date("proposed_due_date", request.proposed_due_date.as_ref())?,
            approver_id,
        })
    }
}

/// Returns the current due date of a resolution. A corrupt stored key is an internal error.
fn due_date(model: &resolution::Model) -> ServiceResult<NaiveDate> {
    date_from_key(model.due_date).ok_or_else(|| {
        ServiceError::Internal(anyhow::anyhow!(
            "resolution {} has the invalid stored due date {}",
            model.id,
            model.due_date
        ))
    })
}

/// Fails unless the caller owns the resolution or organised its meeting.
async fn require_owner_or_organiser(
    keyring: &Keyring,
    txn: &DatabaseTransaction,
    context: &CallContext,
    loaded: &resolution::Model,
) -> ServiceResult<()> {
    let caller = &context.principal.user_id;
    if *caller == loaded.owner_id {
        return Ok(());
    }
    let meeting = find_meeting(keyring, txn, &loaded.meeting_id).await?;
    require(*caller == meeting.organiser_id, || {
        format!(
            "only the owner {} or the meeting organiser may update resolution {}, not {caller}",
            loaded.owner_id, loaded.id
        )
    })
}

impl MeetingHandler {
    pub(super) async fn update(
        &self,
        context: &CallContext,
        request: proto::UpdateResolutionRequest,
    ) -> ServiceResult<proto::UpdateResolutionResponse> {
        let update = UpdateInput::parse(&request)?;

        with_retries("update resolution", || self.try_update(context, &update)).await
    }

    async fn try_update(
        &self,
        context: &CallContext,
        update: &UpdateInput,
    ) -> AttemptResult<proto::UpdateResolutionResponse> {
        let txn = self.begin().await?;
        let loaded = find_resolution(&self.keyring, &txn, &update.resolution_id).await?;
        let status = check_resolution_step(&loaded, ResolutionAction::Update(update.status))?;
        require_owner_or_organiser(&self.keyring, &txn, context, &loaded).await?;

        let earlier = resolution_update::Entity::find()
            .filter(resolution_update::Column::ResolutionId.eq(loaded.id.as_str()))
            .count(&txn)
            .await?;
        let now = self.now();
        let row = resolution_update::Model {
            resolution_id: loaded.id.clone(),
            number: i32::try_from(earlier + 1).unwrap_or(i32::MAX),
            updated_by: context.principal.user_id.clone(),
            updated_at: now,
            status,
            progress_note: update.progress_note.clone(),
            problems: update.problems.clone(),
            solutions: update.solutions.clone(),
        };
        let stored = row.clone().sealed(&self.keyring, loaded.confidentiality);
        resolution_update::Entity::insert(resolution_update::ActiveModel::from(stored))
            .exec_without_returning(&txn)
            .await?;

        let changes = resolution::ActiveModel {
            status: Set(status),
            completed_at: Set((status == ResolutionStatus::Done).then_some(now)),
            ..Default::default()
        };
        let payload = proto::ResolutionUpdated {
            update: Some(convert::update(&row)),
        };
        let (resolution, event_id) = self
            .change_resolution(&txn, context, &loaded, changes, "updated", pack(&payload))
            .await?;
        self.commit(txn).await?;

        Ok(proto::UpdateResolutionResponse {
            resolution: Some(convert::resolution(&resolution, self.today())),
            update: Some(convert::update(&row)),
            event_id,
        })
    }

    pub(super) async fn file_delay(
        &self,
        context: &CallContext,
        request: proto::RequestDelayRequest,
    ) -> ServiceResult<proto::RequestDelayResponse> {
        let delay = DelayInput::parse(&request, &context.principal.user_id)?;

        let delay_id = Uuid::now_v7().to_string();
        with_retries("request delay", || {
            self.try_file_delay(context, &delay_id, &delay)
        })
        .await
    }

    async fn try_file_delay(
        &self,
        context: &CallContext,
        delay_id: &str,
        delay: &DelayInput,
    ) -> AttemptResult<proto::RequestDelayResponse> {
        let txn = self.begin().await?;
        let loaded = find_resolution(&self.keyring, &txn, &delay.resolution_id).await?;
        check_resolution_step(&loaded, ResolutionAction::RequestDelay)?;
        let caller = &context.principal.user_id;
        require(*caller == loaded.owner_id, || {
            format!(
                "only the owner {} may request a delay of resolution {}, not {caller}",
                loaded.owner_id, loaded.id
            )
        })?;
        let pending = delay_request::Entity::find()
            .filter(delay_request::Column::ResolutionId.eq(loaded.id.as_str()))
            .filter(delay_request::Column::State.eq(DelayState::Pending))
            .one(&txn)
            .await?;
        if let Some(pending) = pending {
            return Err(ServiceError::wrong_state(
                "resolution",
                &loaded.id,
                format!("waiting for the decision on delay request {}", pending.id),
                "request another delay of",
            )
            .into());
        }
        let current = due_date(&loaded)?;
        rules::check_proposed_due_date(delay.proposed, current, self.today())?;

        let row = delay_request::Model {
            id: delay_id.to_owned(),
            resolution_id: loaded.id.clone(),
            requested_by: caller.clone(),
            requested_at: self.now(),
            reason: delay.reason.clone(),
            current_due_date: loaded.due_date,
            proposed_due_date: date_key(delay.proposed),
            approver_id: delay.approver_id.clone(),
            state: DelayState::Pending,
            decided_by: None,
            decided_at: None,
            opinion: None,
        };
        let stored = row.clone().sealed(&self.keyring, loaded.confidentiality);
        delay_request::Entity::insert(delay_request::ActiveModel::from(stored))
            .exec_without_returning(&txn)
            .await?;

        let payload = proto::DelayRequested {
            delay: Some(convert::delay(&row)),
        };
        let (resolution, event_id) = self
            .change_resolution(
                &txn,
                context,
                &loaded,
                Default::default(),
                "delay_requested",
                pack(&payload),
            )
            .await?;
        self.commit(txn).await?;

        Ok(proto::RequestDelayResponse {
            resolution: Some(convert::resolution(&resolution, self.today())),
            delay: Some(convert::delay(&row)),
            event_id,
        })
    }

    pub(super) async fn decide(
        &self,
        context: &CallContext,
        request: proto::DecideDelayRequest,
    ) -> ServiceResult<proto::DecideDelayResponse> {
        let decision = DecisionInput {
            resolution_id: validate::record_id("resolution_id", &request.resolution_id)?
                .to_string(),
            delay_id: validate::record_id("delay_id", &request.delay_id)?.to_string(),
            approve: request.approve,
            opinion: validate::text("opinion", &request.opinion, 1, 2000)?,
        };

        with_retries("decide delay", || self.try_decide(context, &decision)).await
    }

    async fn try_decide(
        &self,
        context: &CallContext,
        decision: &DecisionInput,
    ) -> AttemptResult<proto::DecideDelayResponse> {
        let txn = self.begin().await?;
        let loaded = find_resolution(&self.keyring, &txn, &decision.resolution_id).await?;
        let delay = delay_request::Entity::find_by_id(decision.delay_id.clone())
            .filter(delay_request::Column::ResolutionId.eq(loaded.id.as_str()))
            .one(&txn)
            .await?
            .ok_or_else(|| ServiceError::not_found("delay request", &decision.delay_id))?
            .opened(&self.keyring)
            .map_err(ServiceError::from)?;
        if delay.state != DelayState::Pending {
            return Err(ServiceError::wrong_state(
                "delay request",
                &delay.id,
                delay.state.name(),
                "decide",
            )
            .into());
        }
        check_resolution_step(&loaded, ResolutionAction::DecideDelay)?;
        let meeting = find_meeting(&self.keyring, &txn, &loaded.meeting_id).await?;
        check_delay_decider(context, &meeting.organiser_id, &delay)?;

        let (state, action) = if decision.approve {
            (DelayState::Approved, "delay_approved")
        } else {
            (DelayState::Rejected, "delay_rejected")
        };
        let decided = delay_request::Model {
            state,
            decided_by: Some(context.principal.user_id.clone()),
            decided_at: Some(self.now()),
            opinion: Some(decision.opinion.clone()),
            ..delay
        };
        let stored = decided
            .clone()
            .sealed(&self.keyring, loaded.confidentiality);
        delay_request::Entity::update(delay_request::ActiveModel::from(stored).reset_all())
            .exec(&txn)
            .await?;

        let due_date = if decision.approve {
            decided.proposed_due_date
        } else {
            loaded.due_date
        };
        let changes = resolution::ActiveModel {
            due_date: Set(due_date),
            ..Default::default()
        };
        let payload = proto::DelayDecided {
            delay: Some(convert::delay(&decided)),
            due_date: convert::date(due_date),
        };
        let (resolution, event_id) = self
            .change_resolution(&txn, context, &loaded, changes, action, pack(&payload))
            .await?;
        self.commit(txn).await?;

        Ok(proto::DecideDelayResponse {
            resolution: Some(convert::resolution(&resolution, self.today())),
            delay: Some(convert::delay(&decided)),
            event_id,
        })
    }
}

/// Checks that the caller may decide a delay: the organiser or the named approver, and never
/// the requester.
fn check_delay_decider(
    context: &CallContext,
    organiser_id: &str,
    delay: &delay_request::Model,
) -> ServiceResult<()> {
    let caller = &context.principal.user_id;
    require(*caller != delay.requested_by, || {
        format!(
            "the requester {caller} may not decide their own delay request {}",
            delay.id
        )
    })?;
    let named = delay.approver_id.as_deref() == Some(caller.as_str());
    require(caller == organiser_id || named, || {
        format!(
            "only the meeting organiser or the named approver may decide delay request {}, not {caller}",
            delay.id
        )
    })
}

/// Lists the full history of one resolution for the tracking table.
pub(super) async fn history<C: sea_orm::ConnectionTrait>(
    keyring: &Keyring,
    connection: &C,
    resolution_id: &str,
) -> ServiceResult<(Vec<resolution_update::Model>, Vec<delay_request::Model>)> {
    let updates = resolution_update::Entity::find()
        .filter(resolution_update::Column::ResolutionId.eq(resolution_id))
        .order_by_asc(resolution_update::Column::Number)
        .all(connection)
        .await?;
    let delays = delay_request::Entity::find()
        .filter(delay_request::Column::ResolutionId.eq(resolution_id))
        .order_by_asc(delay_request::Column::RequestedAt)
        .order_by_asc(delay_request::Column::Id)
        .all(connection)
        .await?;
    Ok((open_rows(keyring, updates)?, open_rows(keyring, delays)?))
}

#[cfg(test)]
mod tests {
    use trace_proto::common::v1::Date;

    use super::*;

    fn field<T>(result: ServiceResult<T>) -> String {
        match result {
            Err(ServiceError::InvalidArgument { field, .. }) => field,
            Err(other) => panic!("expected an invalid argument, got {other}"),
            Ok(_) => panic!("expected an invalid argument, got success"),
        }
    }

    fn delay_request(approver: &str) -> proto::RequestDelayRequest {
        proto::RequestDelayRequest {
            resolution_id: Uuid::now_v7().to_string(),
            reason: "supplier late".to_owned(),
            proposed_due_date: Some(Date {
                year: 2028,
                month: 2,
                day: 29,
            }),
            approver_id: approver.to_owned(),
        }
    }

    #[test]
    fn update_status_must_move_forward() {
        let mut request = proto::UpdateResolutionRequest {
            resolution_id: Uuid::now_v7().to_string(),
            status: proto::ResolutionStatus::Open as i32,
            progress_note: "started".to_owned(),
            ..Default::default()
        };

        assert_eq!(field(UpdateInput::parse(&request)), "status");
        request.status = proto::ResolutionStatus::Done as i32;
        assert!(UpdateInput::parse(&request).is_ok());
        request.progress_note.clear();
        assert_eq!(field(UpdateInput::parse(&request)), "progress_note");
    }

    #[test]
    fn requester_may_not_name_themselves_as_approver() {
        assert_eq!(
            field(DelayInput::parse(&delay_request("wang"), "wang")),
            "approver_id"
        );
        assert!(DelayInput::parse(&delay_request("zhao"), "wang").is_ok());
        assert_eq!(
            DelayInput::parse(&delay_request(""), "wang")
                .unwrap()
                .approver_id,
            None
        );
    }

    #[test]
    fn proposed_date_must_be_a_calendar_date() {
        let mut request = delay_request("");
        request.proposed_due_date = Some(Date {
            year: 2027,
            month: 2,
            day: 29,
        });

        assert_eq!(
            field(DelayInput::parse(&request, "wang")),
            "proposed_due_date"
        );
    }

    fn delay(requested_by: &str, approver: Option<&str>) -> delay_request::Model {
        delay_request::Model {
            id: "d".to_owned(),
            resolution_id: "r".to_owned(),
            requested_by: requested_by.to_owned(),
            requested_at: 0,
            reason: "late".to_owned(),
            current_due_date: 20260131,
            proposed_due_date: 20260228,
            approver_id: approver.map(str::to_owned),
            state: DelayState::Pending,
            decided_by: None,
            decided_at: None,
            opinion: None,
        }
    }

    fn context(user: &str) -> CallContext {
        let mut context = CallContext::system("meeting");
        context.principal.user_id = user.to_owned();
        context
    }

    #[test]
    fn delay_deciders() {
        let named = delay("wang", Some("zhao"));

        assert!(check_delay_decider(&context("lee"), "lee", &named).is_ok());
        assert!(check_delay_decider(&context("zhao"), "lee", &named).is_ok());
        assert!(check_delay_decider(&context("chen"), "lee", &named).is_err());
        // An organiser who owns the resolution cannot approve their own request.
        assert!(check_delay_decider(&context("lee"), "lee", &delay("lee", None)).is_err());
    }
}
