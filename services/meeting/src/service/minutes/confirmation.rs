//! Confirmation of minutes: sending the current version to participants, and recording each
//! participant's confirmation or objection once per version. An amendment starts a new
//! version, so confirmations of earlier versions no longer count.

use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use trace_proto::meeting::v1 as proto;
use trace_runtime::context::CallContext;
use trace_runtime::event::pack;
use trace_runtime::sealed_text::SealedRow;
use trace_runtime::{ServiceError, ServiceResult, validate};

use super::super::input::MAX_ATTENDEES;
use super::super::write::{
    AttemptResult, check_meeting_step, find_meeting, load_attendees, require, with_retries,
};
use super::super::{MeetingHandler, convert};
use crate::entity::{confirmation, dispatch, minutes};
use crate::rules;
use crate::state::{MeetingAction, Verdict};

/// A checked `ConfirmMinutesRequest`.
struct ConfirmInput {
    meeting_id: String,
    minutes_version: i32,
    verdict: Verdict,
    comment: String,
}

impl ConfirmInput {
    fn parse(request: &proto::ConfirmMinutesRequest) -> ServiceResult<Self> {
        let verdict: proto::Verdict = validate::enum_value("verdict", request.verdict)?;
        let verdict = Verdict::from_proto(verdict)
            .ok_or_else(|| ServiceError::invalid("verdict", "0", "is required"))?;
        let minimum = match verdict {
            Verdict::Object => 1,
            Verdict::Confirm => 0,
        };
        let minutes_version = i32::try_from(request.minutes_version)
            .ok()
            .filter(|version| *version > 0)
            .ok_or_else(|| {
                ServiceError::invalid(
                    "minutes_version",
                    &request.minutes_version.to_string(),
                    "must be the version number of the current minutes, starting at 1",
                )
            })?;

        Ok(Self {
            meeting_id: validate::record_id("meeting_id", &request.meeting_id)?.to_string(),
            minutes_version,
            verdict,
            comment: validate::text("comment", &request.comment, minimum, 2000)?,
        })
    }
}

impl MeetingHandler {
    pub(in crate::service) async fn send(
        &self,
        context: &CallContext,
        request: proto::SendMinutesForConfirmationRequest,
    ) -> ServiceResult<proto::SendMinutesForConfirmationResponse> {
        let meeting_id = validate::record_id("meeting_id", &request.meeting_id)?.to_string();
        let recipients =
            rules::user_ids("recipient_ids", &request.recipient_ids, 1, MAX_ATTENDEES)?;

        with_retries("send minutes", || {
            self.try_send(context, &meeting_id, &recipients)
        })
        .await
    }

    async fn try_send(
        &self,
        context: &CallContext,
        meeting_id: &str,
        recipients: &[String],
    ) -> AttemptResult<proto::SendMinutesForConfirmationResponse> {
        let txn = self.begin().await?;
        let loaded = find_meeting(&self.keyring, &txn, meeting_id).await?;
        check_meeting_step(&loaded, MeetingAction::SendMinutes)?;
        let version = loaded.minutes_version;
        let current = minutes::Entity::find_by_id((loaded.id.clone(), version))
            .one(&txn)
            .await?
            .ok_or_else(|| {
                ServiceError::not_found("minutes", format!("{meeting_id} version {version}"))
            })?
            .opened(&self.keyring)
            .map_err(ServiceError::from)?;
        let caller = &context.principal.user_id;
        require(
            *caller == loaded.organiser_id || *caller == current.taker_id,
            || {
                format!(
                    "only the organiser or the minute-taker {} may send the minutes of meeting {meeting_id}, not {caller}",
                    current.taker_id
                )
            },
        )?;
        let attendees = load_attendees(&txn, meeting_id).await?;
        rules::require_attendees("recipient_ids", recipients, &attendees)?;

        let already_sent = dispatch::Entity::find()
            .filter(dispatch::Column::MeetingId.eq(meeting_id))
            .filter(dispatch::Column::MinutesVersion.eq(version))
            .filter(dispatch::Column::RecipientId.is_in(recipients.iter().map(String::as_str)))
            .one(&txn)
            .await?;
        if let Some(sent) = already_sent {
            return Err(ServiceError::invalid(
                "recipient_ids",
                &sent.recipient_id,
                format!("was already sent minutes version {version}"),
            )
            .into());
        }

        let now = self.now();
        let rows: Vec<dispatch::Model> = recipients
            .iter()
            .map(|recipient| dispatch::Model {
                meeting_id: meeting_id.to_owned(),
                minutes_version: version,
                recipient_id: recipient.clone(),
                sent_by: caller.clone(),
                sent_at: now,
            })
            .collect();
        dispatch::Entity::insert_many(rows.iter().cloned().map(dispatch::ActiveModel::from))
            .exec_without_returning(&txn)
            .await?;

        let payload = proto::MinutesSent {
            minutes_version: convert::count(version),
            recipient_ids: recipients.to_vec(),
        };
        let (_, event_id) = self
            .change_meeting(
                &txn,
                context,
                &loaded,
                Default::default(),
                "minutes_sent",
                pack(&payload),
            )
            .await?;
        self.commit(txn).await?;

        Ok(proto::SendMinutesForConfirmationResponse {
            dispatches: rows.iter().map(convert::dispatch).collect(),
            event_id,
        })
    }

    pub(in crate::service) async fn confirm(
        &self,
        context: &CallContext,
        request: proto::ConfirmMinutesRequest,
    ) -> ServiceResult<proto::ConfirmMinutesResponse> {
        let confirmation = ConfirmInput::parse(&request)?;

        with_retries("confirm minutes", || {
            self.try_confirm(context, &confirmation)
        })
        .await
    }

    async fn try_confirm(
        &self,
        context: &CallContext,
        input: &ConfirmInput,
    ) -> AttemptResult<proto::ConfirmMinutesResponse> {
        let txn = self.begin().await?;
        let loaded = find_meeting(&self.keyring, &txn, &input.meeting_id).await?;
        check_meeting_step(&loaded, MeetingAction::ConfirmMinutes)?;
        let version = loaded.minutes_version;
        if input.minutes_version != version {
            return Err(ServiceError::wrong_state(
                "meeting",
                &loaded.id,
                format!(
                    "at minutes version {version}, not {}",
                    input.minutes_version
                ),
                "confirm another minutes version of",
            )
            .into());
        }
        let caller = context.principal.user_id.clone();
        let key = (loaded.id.clone(), version, caller.clone());
        let sent = dispatch::Entity::find_by_id(key.clone()).one(&txn).await?;
        require(sent.is_some(), || {
            format!(
                "minutes version {version} of meeting {} were not sent to {caller} for confirmation",
                loaded.id
            )
        })?;
        if let Some(earlier) = confirmation::Entity::find_by_id(key).one(&txn).await? {
            return Err(ServiceError::wrong_state(
                "meeting",
                &loaded.id,
                format!(
                    "already answered {} by {caller} for minutes version {version}",
                    earlier.verdict
                ),
                "confirm the minutes of",
            )
            .into());
        }

        let row = confirmation::Model {
            meeting_id: loaded.id.clone(),
            minutes_version: version,
            participant_id: caller,
            verdict: input.verdict,
            comment: input.comment.clone(),
            confirmed_at: self.now(),
        };
        let stored = row.clone().sealed(&self.keyring, loaded.confidentiality);
        confirmation::Entity::insert(confirmation::ActiveModel::from(stored))
            .exec_without_returning(&txn)
            .await?;

        let action = match input.verdict {
            Verdict::Confirm => "minutes_confirmed",
            Verdict::Object => "minutes_objected",
        };
        let payload = proto::MinutesConfirmed {
            minutes_version: convert::count(version),
            verdict: input.verdict.number(),
            comment: input.comment.clone(),
        };
        let (_, event_id) = self
            .change_meeting(
                &txn,
                context,
                &loaded,
                Default::default(),
                action,
                pack(&payload),
            )
            .await?;
        self.commit(txn).await?;

        Ok(proto::ConfirmMinutesResponse {
            confirmation: Some(convert::confirmation(&row)),
            event_id,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(verdict: i32, comment: &str, version: u32) -> proto::ConfirmMinutesRequest {
        proto::ConfirmMinutesRequest {
            meeting_id: uuid::Uuid::now_v7().to_string(),
            minutes_version: version,
            verdict,
            comment: comment.to_owned(),
        }
    }

    fn field(result: ServiceResult<ConfirmInput>) -> String {
        match result {
            Err(ServiceError::InvalidArgument { field, .. }) => field,
            Err(other) => panic!("expected an invalid argument, got {other}"),
            Ok(_) => panic!("expected an invalid argument, got success"),
        }
    }

    #[test]
    fn objection_needs_a_comment() {
        let object = proto::Verdict::Object as i32;
        let confirm = proto::Verdict::Confirm as i32;

        assert_eq!(
            field(ConfirmInput::parse(&request(object, "", 1))),
            "comment"
        );
        assert!(ConfirmInput::parse(&request(object, "item 2 is wrong", 1)).is_ok());
        assert!(ConfirmInput::parse(&request(confirm, "", 1)).is_ok());
    }

    #[test]
    fn verdict_and_version_are_required() {
        assert_eq!(field(ConfirmInput::parse(&request(0, "", 1))), "verdict");
        assert_eq!(field(ConfirmInput::parse(&request(7, "", 1))), "verdict");
        assert_eq!(
            field(ConfirmInput::parse(&request(1, "", 0))),
            "minutes_version"
        );
    }
}
