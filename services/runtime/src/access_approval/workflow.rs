//! The service-independent steps of the RequestAccess, DecideAccess, ListAccessRequests and
//! AcceptAgreement calls: input checks, the rules on who requests and who decides, and the
//! reads and writes of the request and acceptance rows. A service runs these steps inside its
//! own transaction and retry loop, and stages its own event for each change in the same
//! transaction. Database calls return `DbErr`, so that each service's retry loop can tell a
//! busy database from a final failure.

use prost_types::Timestamp;
use sea_orm::ActiveValue::Set;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, PaginatorTrait,
    QueryFilter, QueryOrder,
};
use trace_proto::common::v1::Confidentiality;
use uuid::Uuid;

use super::{AccessRequestState, access_request, agreement, expiry, level_of, opinion};
use crate::clock::Clock;
use crate::context::{CallContext, Principal, role};
use crate::event::{self, EventSpec};
use crate::outbox::Outbox;
use crate::seal::Keyring;
use crate::sealed_text::{SealedRow, open_rows};
use crate::{ServiceError, ServiceResult, validate};

/// Returns true when `caller` is a supervisor or department head of `department`, who
/// decides the access requests for that department's records.
pub fn decides_for(caller: &Principal, department: &str) -> bool {
    (caller.has_role(role::SUPERVISOR) || caller.has_role(role::DEPARTMENT_HEAD))
        && !department.is_empty()
        && caller.department == department
}

/// Checks that `caller` may ask to read record `record_id` at `confidentiality`: the record is
/// CONFIDENTIAL or SECRET and the caller takes no part in it. `record` names the record kind
/// in messages, such as `report`.
pub fn check_requestable(
    record: &'static str,
    record_id: &str,
    confidentiality: i32,
    takes_part: bool,
    caller: &str,
) -> ServiceResult<()> {
    let level = level_of(confidentiality);
    if level < Confidentiality::Confidential {
        return Err(ServiceError::wrong_state(
            record,
            record_id,
            level.as_str_name(),
            "request access to",
        ));
    }
    if takes_part {
        return Err(ServiceError::wrong_state(
            record,
            record_id,
            format!("taken part in by {caller}, who reads it without a request"),
            "request access to",
        ));
    }
    Ok(())
}

/// Builds a new PENDING request of `requester_id` for `record_id`.
pub fn new_request(
    record_id: &str,
    requester_id: &str,
    purpose: &str,
    now: i64,
) -> access_request::Model {
    access_request::Model {
        id: Uuid::now_v7().to_string(),
        record_id: record_id.to_owned(),
        requester_id: requester_id.to_owned(),
        purpose: purpose.to_owned(),
        state: AccessRequestState::Pending,
        requested_at: now,
        approver_id: None,
        opinion: None,
        decided_at: None,
        expires_at: None,
    }
}

/// Inserts `row`, with its text sealed when the record is at a sealed `confidentiality`.
pub async fn insert_request<C: ConnectionTrait>(
    keyring: &Keyring,
    connection: &C,
    row: &access_request::Model,
    confidentiality: i32,
) -> Result<(), DbErr> {
    let stored = row.clone().sealed(keyring, confidentiality);
    access_request::Entity::insert(access_request::ActiveModel::from(stored).reset_all())
        .exec_without_returning(connection)
        .await?;
    Ok(())
}

/// A validated DecideAccess request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessDecision {
    pub access_request_id: String,
    pub approve: bool,
    pub opinion: String,
    /// End of an approval in microseconds since the Unix epoch; `None` for a rejection.
    pub expires_at: Option<i64>,
}

impl AccessDecision {
    /// Checks the fields of a DecideAccess request. `expires_at` is required when approving
    /// and ignored when rejecting.
    pub fn parse(
        access_request_id: &str,
        approve: bool,
        opinion_text: &str,
        expires_at: Option<&Timestamp>,
        now: i64,
    ) -> ServiceResult<Self> {
        let access_request_id =
            validate::record_id("access_request_id", access_request_id)?.to_string();
        let opinion = opinion(opinion_text)?;
        let expires_at = if approve {
            Some(expiry("expires_at", expires_at, now)?)
        } else {
            None
        };
        Ok(Self {
            access_request_id,
            approve,
            opinion,
            expires_at,
        })
    }

    /// Returns the action of the record's event for this decision.
    pub fn action(&self) -> &'static str {
        if self.approve {
            "access_approved"
        } else {
            "access_rejected"
        }
    }

    /// Returns the request after this decision by `approver_id` at `now`.
    pub fn apply(
        &self,
        pending: &access_request::Model,
        approver_id: &str,
        now: i64,
    ) -> access_request::Model {
        let state = if self.approve {
            AccessRequestState::Approved
        } else {
            AccessRequestState::Rejected
        };
        access_request::Model {
            state,
            approver_id: Some(approver_id.to_owned()),
            opinion: Some(self.opinion.clone()),
            decided_at: Some(now),
            expires_at: self.expires_at,
            ..pending.clone()
        }
    }
}

/// Names the deciders of a record kind's access requests in the error of a caller who may
/// not decide one: a supervisor or department head of the record's department, as
/// [`decides_for`] checks.
pub fn department_deciders(record: &str) -> String {
    format!("a supervisor or department head of the {record}'s department")
}

/// Builds the error for a caller who may not decide request `access_request_id`. It is the
/// same whether the request exists or not. `deciders` names who decides it, such as the
/// text of [`department_deciders`].
pub fn not_a_decider(access_request_id: &str, caller: &str, deciders: &str) -> ServiceError {
    ServiceError::denied(format!(
        "access request {access_request_id} does not exist or {caller} may not decide it; \
         {deciders} decides it"
    ))
}

/// Loads the request a decision names, with its text opened. A missing request is the
/// error of [`not_a_decider`], so the error does not show whether it exists.
pub async fn find_for_decision<C: ConnectionTrait>(
    keyring: &Keyring,
    connection: &C,
    decision: &AccessDecision,
    caller: &str,
    deciders: &str,
) -> ServiceResult<access_request::Model> {
    match super::find_request(keyring, connection, &decision.access_request_id).await {
        Err(ServiceError::NotFound { .. }) => {
            Err(not_a_decider(&decision.access_request_id, caller, deciders))
        }
        other => other,
    }
}

/// Checks that `caller` may decide `pending`: `may_decide` is the service's rule for the
/// record, such as [`decides_for`] its department, and `deciders` names who passes that rule
/// in the error. The caller must also not have filed the request, and it must still be
/// PENDING.
pub fn check_decider(
    caller: &Principal,
    pending: &access_request::Model,
    may_decide: bool,
    deciders: &str,
) -> ServiceResult<()> {
    if !may_decide {
        return Err(not_a_decider(&pending.id, &caller.user_id, deciders));
    }
    check_undecided(
        &caller.user_id,
        &pending.id,
        &pending.requester_id,
        pending.state.name(),
    )
}

/// Checks that `caller` did not file request `access_request_id` of `requester_id`, and that
/// its `state` is still `PENDING`. It takes the state's name so that a service with its own
/// request table can use it.
pub fn check_undecided(
    caller: &str,
    access_request_id: &str,
    requester_id: &str,
    state: &str,
) -> ServiceResult<()> {
    if caller == requester_id {
        return Err(ServiceError::denied(format!(
            "the requester {caller} may not decide their own access request {access_request_id}"
        )));
    }
    if state != AccessRequestState::Pending.name() {
        return Err(ServiceError::wrong_state(
            "access request",
            access_request_id,
            state,
            "decide",
        ));
    }
    Ok(())
}

/// Stores a decided request, with its text sealed at `confidentiality`, provided that it is
/// still PENDING. Returns false when another call decided it first.
pub async fn store_decision<C: ConnectionTrait>(
    keyring: &Keyring,
    connection: &C,
    decided: &access_request::Model,
    confidentiality: i32,
) -> Result<bool, DbErr> {
    let stored = decided.clone().sealed(keyring, confidentiality);
    let updated = access_request::Entity::update_many()
        .set(access_request::ActiveModel {
            state: Set(stored.state),
            approver_id: Set(stored.approver_id),
            opinion: Set(stored.opinion),
            decided_at: Set(stored.decided_at),
            expires_at: Set(stored.expires_at),
            ..Default::default()
        })
        .filter(access_request::Column::Id.eq(decided.id.as_str()))
        .filter(access_request::Column::State.eq(AccessRequestState::Pending))
        .exec(connection)
        .await?;
    Ok(updated.rows_affected > 0)
}

/// Lists the requests for `record_id`, oldest first, with their text opened. With
/// `requester_id` set, only that requester's.
pub async fn list_requests<C: ConnectionTrait>(
    keyring: &Keyring,
    connection: &C,
    record_id: &str,
    requester_id: Option<&str>,
) -> ServiceResult<Vec<access_request::Model>> {
    let mut query =
        access_request::Entity::find().filter(access_request::Column::RecordId.eq(record_id));
    if let Some(requester_id) = requester_id {
        query = query.filter(access_request::Column::RequesterId.eq(requester_id));
    }
    let rows = query
        .order_by_asc(access_request::Column::Id)
        .all(connection)
        .await?;
    Ok(open_rows(keyring, rows)?)
}

/// Checks an AcceptAgreement version: well formed and equal to `current`, the version the
/// service is configured with.
pub fn accepted_version(value: &str, current: &str) -> ServiceResult<String> {
    let version = super::agreement_version("agreement_version", value)?;
    if version != current {
        return Err(ServiceError::invalid(
            "agreement_version",
            &version,
            format!("the current confidentiality agreement is version {current}"),
        ));
    }
    Ok(version)
}

/// The result of recording an agreement acceptance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acceptance {
    /// Microseconds since the Unix epoch.
    pub accepted_at: i64,
    /// For a new acceptance, the entity version of its event: the number of versions the user
    /// has accepted, this one included. `None` when the user had accepted this version before,
    /// which leaves no second event.
    pub event_version: Option<u64>,
}

/// Records that `user_id` accepts agreement `version` at `now`, unless they did before.
pub async fn accept_agreement<C: ConnectionTrait>(
    connection: &C,
    user_id: &str,
    version: &str,
    now: i64,
) -> Result<Acceptance, DbErr> {
    let existing = agreement::Entity::find_by_id((user_id.to_owned(), version.to_owned()))
        .one(connection)
        .await?;
    if let Some(existing) = existing {
        return Ok(Acceptance {
            accepted_at: existing.accepted_at,
            event_version: None,
        });
    }
    let accepted_before = agreement::Entity::find()
        .filter(agreement::Column::UserId.eq(user_id))
        .count(connection)
        .await?;
    agreement::Entity::insert(agreement::ActiveModel {
        user_id: Set(user_id.to_owned()),
        version: Set(version.to_owned()),
        accepted_at: Set(now),
    })
    .exec_without_returning(connection)
    .await?;
    Ok(Acceptance {
        accepted_at: now,
        event_version: Some(accepted_before + 1),
    })
}

/// Entity type of the events that record agreement acceptances, one entity per user.
pub const AGREEMENT_ENTITY: &str = "agreement";

/// Stages the `agreement.accepted` event of `acceptance` in `txn`, with `payload` as the
/// service's event message, and returns the event id. An acceptance recorded before stages
/// nothing and returns an empty id, so that accepting again leaves no second event.
pub async fn stage_acceptance<C: ConnectionTrait>(
    outbox: &Outbox,
    txn: &C,
    service: &'static str,
    context: &CallContext,
    clock: &dyn Clock,
    acceptance: &Acceptance,
    payload: prost_types::Any,
) -> ServiceResult<String> {
    let Some(entity_version) = acceptance.event_version else {
        return Ok(String::new());
    };
    let spec = EventSpec {
        entity_type: AGREEMENT_ENTITY,
        entity_id: context.principal.user_id.clone(),
        entity_version,
        action: "accepted",
        confidentiality: Confidentiality::Internal,
        payload,
    };
    let envelope = event::envelope(service, context, clock, spec);
    outbox.stage(txn, &envelope).await?;
    Ok(envelope.event_id)
}

#[cfg(test)]
mod tests {
    use tonic::Code;

    use super::*;

    const NOW: i64 = 1_780_000_000_000_000;

    fn principal(user_id: &str, department: &str, roles: &[&str]) -> Principal {
        Principal {
            user_id: user_id.to_owned(),
            display_name: String::new(),
            department: department.to_owned(),
            roles: roles.iter().map(|role| (*role).to_owned()).collect(),
        }
    }

    fn pending() -> access_request::Model {
        new_request(
            "0190a000-0000-7000-8000-000000000001",
            "he.shi",
            "audit",
            NOW,
        )
    }

    #[test]
    fn deciders_are_heads_of_the_department() {
        let head = principal("li.na", "sales", &[role::DEPARTMENT_HEAD]);
        let lead = principal("chen.hua", "sales", &[role::SUPERVISOR]);
        let auditor = principal("qian.hao", "sales", &[role::AUDIT]);
        let other = principal("wu.lei", "engineering", &[role::SUPERVISOR]);

        assert!(decides_for(&head, "sales"));
        assert!(decides_for(&lead, "sales"));
        assert!(!decides_for(&auditor, "sales"));
        assert!(!decides_for(&other, "sales"));
        assert!(!decides_for(&head, ""));
    }

    #[test]
    fn requester_may_not_decide() {
        let requester = principal("he.shi", "sales", &[role::DEPARTMENT_HEAD]);

        let deciders = department_deciders("report");

        let error = check_decider(&requester, &pending(), true, &deciders).unwrap_err();

        assert_eq!(error.code(), Code::PermissionDenied);
        assert!(
            error.to_string().contains("their own access request"),
            "{error}"
        );
    }

    #[test]
    fn decided_request_is_not_decided_again() {
        let head = principal("li.na", "sales", &[role::DEPARTMENT_HEAD]);
        let decision = AccessDecision {
            access_request_id: pending().id,
            approve: false,
            opinion: "no".to_owned(),
            expires_at: None,
        };
        let rejected = decision.apply(&pending(), "li.na", NOW);

        let deciders = department_deciders("report");

        let error = check_decider(&head, &rejected, true, &deciders).unwrap_err();

        assert_eq!(rejected.state, AccessRequestState::Rejected);
        assert_eq!(error.code(), Code::FailedPrecondition);
        assert!(error.to_string().contains("REJECTED"), "{error}");
    }

    #[test]
    fn approval_needs_an_expiry() {
        let id = pending().id;

        let missing = AccessDecision::parse(&id, true, "ok", None, NOW).unwrap_err();
        let rejection = AccessDecision::parse(&id, false, "no", None, NOW).unwrap();

        assert!(
            matches!(missing, ServiceError::InvalidArgument { ref field, .. } if field == "expires_at")
        );
        assert_eq!(rejection.expires_at, None);
        assert_eq!(rejection.action(), "access_rejected");
    }

    #[test]
    fn lower_levels_and_participants_request_nothing() {
        let internal = check_requestable(
            "report",
            "r-1",
            Confidentiality::Internal as i32,
            false,
            "u",
        )
        .unwrap_err();
        let participant =
            check_requestable("report", "r-1", Confidentiality::Secret as i32, true, "u")
                .unwrap_err();

        assert_eq!(internal.code(), Code::FailedPrecondition);
        assert!(
            internal.to_string().contains("CONFIDENTIALITY_INTERNAL"),
            "{internal}"
        );
        assert_eq!(participant.code(), Code::FailedPrecondition);
        assert!(
            check_requestable(
                "report",
                "r-1",
                Confidentiality::Confidential as i32,
                false,
                "u"
            )
            .is_ok()
        );
    }

    #[test]
    fn agreement_version_must_be_current() {
        let error = accepted_version("2025-01", "2026-01").unwrap_err();

        assert!(error.to_string().contains("2026-01"), "{error}");
        assert_eq!(accepted_version("2026-01", "2026-01").unwrap(), "2026-01");
    }
}
