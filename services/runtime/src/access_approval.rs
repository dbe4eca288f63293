//! Approved access to the content of CONFIDENTIAL and SECRET records that the caller takes
//! no part in. A reader outside the record's participants needs their own approved,
//! unexpired access request for the record, and for a SECRET record also their acceptance of
//! the current confidentiality agreement. This module contains the part the services share:
//! the pure rule, the tables with their migration, the input checks and the lookups. Each
//! service records the requests, decisions and reads as events of its own records.

pub mod entity;
pub mod migration;
pub mod workflow;

use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder};
use trace_proto::common::v1::Confidentiality;

use crate::clock::micros_from_timestamp;
use crate::seal::Keyring;
use crate::sealed_text::SealedRow;
use crate::{ServiceError, ServiceResult, validate};

pub use entity::{AccessRequestState, access_request, agreement};

/// Maximum approval period a decider may grant, in days.
pub const MAX_APPROVAL_DAYS: i64 = 90;

/// Maximum length of a request's purpose and a decision's opinion, in characters.
pub const MAX_TEXT_CHARS: usize = 2000;

/// Microseconds in one day.
const DAY_MICROS: i64 = 86_400 * 1_000_000;

/// The reason for denying a read, and the access request it was judged by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    pub reason: String,
    /// The caller's request for the record that the denial judged, if any.
    pub access_request_id: Option<String>,
}

impl Denial {
    fn new(reason: impl Into<String>, request: Option<&access_request::Model>) -> Self {
        Self {
            reason: reason.into(),
            access_request_id: request.map(|request| request.id.clone()),
        }
    }
}

/// Inputs of the approval rule for one read.
#[derive(Debug, Clone, Copy)]
pub struct ApprovalCheck<'a> {
    pub caller: &'a str,
    /// Name of the record kind in messages, such as `meeting`.
    pub record: &'a str,
    pub record_id: &'a str,
    pub level: Confidentiality,
    /// True when the caller is a participant of the record, who reads without a request.
    pub takes_part: bool,
    /// The caller's request that the read is judged by, usually from [`newest_request`].
    pub request: Option<&'a access_request::Model>,
    pub agreement_accepted: bool,
    /// Microseconds since the Unix epoch.
    pub now: i64,
}

/// Returns the stored confidentiality of a record. An unknown number counts as SECRET.
pub fn level_of(confidentiality: i32) -> Confidentiality {
    match Confidentiality::try_from(confidentiality) {
        Ok(Confidentiality::Unspecified) | Err(_) => Confidentiality::Secret,
        Ok(level) => level,
    }
}

/// Decides whether a read needs and has an approval. `Ok(Some(id))` names the access request
/// the read uses, and `Ok(None)` means that the record's level or the caller's part in it
/// needs none.
pub fn check_approval(check: &ApprovalCheck<'_>) -> Result<Option<String>, Denial> {
    if check.level < Confidentiality::Confidential || check.takes_part {
        return Ok(None);
    }
    let Some(request) = check.request else {
        return Err(Denial::new(
            format!(
                "{} has no approved access request for {} {}",
                check.caller, check.record, check.record_id
            ),
            None,
        ));
    };
    if request.requester_id != check.caller || request.record_id != check.record_id {
        return Err(Denial::new(
            format!(
                "access request {} is not the caller's request for {} {}",
                request.id, check.record, check.record_id
            ),
            None,
        ));
    }
    if request.state != AccessRequestState::Approved {
        return Err(Denial::new(
            format!("access request {} is {}", request.id, request.state.name()),
            Some(request),
        ));
    }
    match request.expires_at {
        Some(expires_at) if check.now < expires_at => {}
        expires_at => {
            let ended = expires_at.map_or_else(String::new, |micros| {
                format!(" at {}", crate::clock::from_micros(micros).to_rfc3339())
            });
            return Err(Denial::new(
                format!("access request {} expired{ended}", request.id),
                Some(request),
            ));
        }
    }
    if check.level == Confidentiality::Secret && !check.agreement_accepted {
        return Err(Denial::new(
            format!(
                "reading a SECRET {} needs the caller's acceptance of the current \
                 confidentiality agreement",
                check.record
            ),
            Some(request),
        ));
    }
    Ok(Some(request.id.clone()))
}

/// Maximum length of an agreement version, in characters.
pub const MAX_AGREEMENT_VERSION_CHARS: usize = 32;

/// The agreement version a service requires unless its configuration names another.
pub fn default_agreement_version() -> String {
    "2026-01".to_owned()
}

/// Checks an agreement version: 1 to [`MAX_AGREEMENT_VERSION_CHARS`] characters of `A-Z`,
/// `0-9` and `-`.
pub fn agreement_version(field: &str, value: &str) -> ServiceResult<String> {
    validate::token(
        field,
        value,
        MAX_AGREEMENT_VERSION_CHARS,
        |c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '-',
        "A-Z, 0-9 and '-'",
    )
}

/// Checks a request's purpose: 1 to [`MAX_TEXT_CHARS`] characters.
pub fn purpose(value: &str) -> ServiceResult<String> {
    validate::text("purpose", value, 1, MAX_TEXT_CHARS)
}

/// Checks a decision's opinion: 1 to [`MAX_TEXT_CHARS`] characters.
pub fn opinion(value: &str) -> ServiceResult<String> {
    validate::text("opinion", value, 1, MAX_TEXT_CHARS)
}

/// Checks an approval's end: after `now` and at most [`MAX_APPROVAL_DAYS`] later.
pub fn expiry(field: &str, value: Option<&prost_types::Timestamp>, now: i64) -> ServiceResult<i64> {
    let Some(value) = value else {
        return Err(ServiceError::invalid(
            field,
            "",
            "is missing; an approval needs an end",
        ));
    };
    let displayed = format!("{}.{:09}s", value.seconds, value.nanos);
    let micros = micros_from_timestamp(value)
        .ok_or_else(|| ServiceError::invalid(field, &displayed, "is not a valid instant"))?;
    if micros <= now {
        return Err(ServiceError::invalid(
            field,
            &displayed,
            "must be in the future",
        ));
    }
    if micros > now + MAX_APPROVAL_DAYS * DAY_MICROS {
        return Err(ServiceError::invalid(
            field,
            &displayed,
            format!("must be at most {MAX_APPROVAL_DAYS} days ahead"),
        ));
    }
    Ok(micros)
}

/// Finds the access request `id` with its sealed text opened.
pub async fn find_request<C: ConnectionTrait>(
    keyring: &Keyring,
    connection: &C,
    id: &str,
) -> ServiceResult<access_request::Model> {
    let row = access_request::Entity::find_by_id(id.to_owned())
        .one(connection)
        .await?
        .ok_or_else(|| ServiceError::not_found("access request", id))?;
    Ok(row.opened(keyring)?)
}

/// Finds the request a read of `record_id` by `requester_id` is judged by: the approved,
/// unexpired one with the latest expiry, or else the newest one, so that a denial names its
/// state. The sealed text stays sealed, because the rule does not read it.
pub async fn newest_request<C: ConnectionTrait>(
    connection: &C,
    record_id: &str,
    requester_id: &str,
    now: i64,
) -> ServiceResult<Option<access_request::Model>> {
    let approved = access_request::Entity::find()
        .filter(access_request::Column::RecordId.eq(record_id))
        .filter(access_request::Column::RequesterId.eq(requester_id))
        .filter(access_request::Column::State.eq(AccessRequestState::Approved))
        .filter(access_request::Column::ExpiresAt.gt(now))
        .order_by_desc(access_request::Column::ExpiresAt)
        .one(connection)
        .await?;
    if approved.is_some() {
        return Ok(approved);
    }
    Ok(access_request::Entity::find()
        .filter(access_request::Column::RecordId.eq(record_id))
        .filter(access_request::Column::RequesterId.eq(requester_id))
        .order_by_desc(access_request::Column::Id)
        .one(connection)
        .await?)
}

/// Returns true when `user_id` accepted agreement `version`.
pub async fn agreement_accepted<C: ConnectionTrait>(
    connection: &C,
    user_id: &str,
    version: &str,
) -> ServiceResult<bool> {
    Ok(
        agreement::Entity::find_by_id((user_id.to_owned(), version.to_owned()))
            .one(connection)
            .await?
            .is_some(),
    )
}

#[cfg(test)]
mod tests;
