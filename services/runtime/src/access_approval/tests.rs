use super::*;

const NOW: i64 = 1_780_000_000_000_000;
const HOUR: i64 = 3_600_000_000;

fn request(state: AccessRequestState, expires_at: Option<i64>) -> access_request::Model {
    access_request::Model {
        id: "r-1".to_owned(),
        record_id: "m-1".to_owned(),
        requester_id: "he.shi".to_owned(),
        purpose: "Budget review".to_owned(),
        state,
        requested_at: NOW - 2 * HOUR,
        approver_id: None,
        opinion: None,
        decided_at: None,
        expires_at,
    }
}

fn approved() -> access_request::Model {
    request(AccessRequestState::Approved, Some(NOW + HOUR))
}

fn check(level: Confidentiality, request: Option<&access_request::Model>) -> ApprovalCheck<'_> {
    ApprovalCheck {
        caller: "he.shi",
        record: "meeting",
        record_id: "m-1",
        level,
        takes_part: false,
        request,
        agreement_accepted: false,
        now: NOW,
    }
}

#[test]
fn lower_levels_need_no_request() {
    for level in [Confidentiality::Public, Confidentiality::Internal] {
        assert_eq!(check_approval(&check(level, None)), Ok(None), "{level:?}");
    }
}

#[test]
fn no_request_is_denied() {
    let denial = check_approval(&check(Confidentiality::Confidential, None)).unwrap_err();
    assert_eq!(
        denial.reason,
        "he.shi has no approved access request for meeting m-1"
    );
    assert_eq!(denial.access_request_id, None);
}

#[test]
fn pending_request_is_denied() {
    let pending = request(AccessRequestState::Pending, None);
    let denial = check_approval(&check(Confidentiality::Confidential, Some(&pending))).unwrap_err();
    assert_eq!(denial.reason, "access request r-1 is PENDING");
    assert_eq!(denial.access_request_id.as_deref(), Some("r-1"));
}

#[test]
fn rejected_request_is_denied() {
    let rejected = request(AccessRequestState::Rejected, None);
    let denial =
        check_approval(&check(Confidentiality::Confidential, Some(&rejected))).unwrap_err();
    assert_eq!(denial.reason, "access request r-1 is REJECTED");
    assert_eq!(denial.access_request_id.as_deref(), Some("r-1"));
}

#[test]
fn expired_request_is_denied() {
    for expires_at in [NOW, NOW - HOUR] {
        let expired = request(AccessRequestState::Approved, Some(expires_at));
        let denial =
            check_approval(&check(Confidentiality::Confidential, Some(&expired))).unwrap_err();
        assert!(
            denial.reason.starts_with("access request r-1 expired at "),
            "{}",
            denial.reason
        );
        assert_eq!(denial.access_request_id.as_deref(), Some("r-1"));
    }
}

#[test]
fn another_users_request_is_denied() {
    let mut foreign = approved();
    foreign.requester_id = "zhou.jie".to_owned();
    let denial = check_approval(&check(Confidentiality::Confidential, Some(&foreign))).unwrap_err();
    assert_eq!(
        denial.reason,
        "access request r-1 is not the caller's request for meeting m-1"
    );
    assert_eq!(denial.access_request_id, None);
}

#[test]
fn another_records_request_is_denied() {
    let mut other = approved();
    other.record_id = "m-2".to_owned();
    let denial = check_approval(&check(Confidentiality::Confidential, Some(&other))).unwrap_err();
    assert_eq!(
        denial.reason,
        "access request r-1 is not the caller's request for meeting m-1"
    );
    assert_eq!(denial.access_request_id, None);
}

#[test]
fn approved_request_permits_and_is_named() {
    let approved = approved();
    let used = check_approval(&check(Confidentiality::Confidential, Some(&approved)));
    assert_eq!(used, Ok(Some("r-1".to_owned())));
}

#[test]
fn secret_needs_agreement() {
    let approved = approved();
    let without = check(Confidentiality::Secret, Some(&approved));
    let denial = check_approval(&without).unwrap_err();
    assert_eq!(
        denial.reason,
        "reading a SECRET meeting needs the caller's acceptance of the current \
         confidentiality agreement"
    );
    assert_eq!(denial.access_request_id.as_deref(), Some("r-1"));

    let with = ApprovalCheck {
        agreement_accepted: true,
        ..without
    };
    assert_eq!(check_approval(&with), Ok(Some("r-1".to_owned())));
}

#[test]
fn participants_read_without_request() {
    for level in [Confidentiality::Confidential, Confidentiality::Secret] {
        let participant = ApprovalCheck {
            takes_part: true,
            ..check(level, None)
        };
        assert_eq!(check_approval(&participant), Ok(None), "{level:?}");
    }
}

#[test]
fn unknown_level_counts_as_secret() {
    assert_eq!(level_of(0), Confidentiality::Secret);
    assert_eq!(level_of(99), Confidentiality::Secret);
    assert_eq!(
        level_of(Confidentiality::Internal as i32),
        Confidentiality::Internal
    );
}

#[test]
fn expiry_limits() {
    let at = |micros: i64| prost_types::Timestamp {
        seconds: micros / 1_000_000,
        nanos: 0,
    };
    assert_eq!(
        expiry("expires_at", Some(&at(NOW + HOUR)), NOW).unwrap(),
        NOW + HOUR
    );
    let limit = NOW + MAX_APPROVAL_DAYS * DAY_MICROS;
    assert_eq!(expiry("expires_at", Some(&at(limit)), NOW).unwrap(), limit);
    for rejected in [Some(at(NOW)), Some(at(limit + 1_000_000)), None] {
        let error = expiry("expires_at", rejected.as_ref(), NOW).unwrap_err();
        assert!(
            matches!(error, ServiceError::InvalidArgument { ref field, .. } if field == "expires_at"),
            "{error:?}"
        );
    }
}
