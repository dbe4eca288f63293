//! Rules of the content read check, one case each.

use super::*;
use crate::state::DocumentState;

const NOW: i64 = 1_800_000_000_000_000;

/// Microseconds in one day.
const DAY_MICROS: i64 = 86_400 * 1_000_000;

fn document(level: Confidentiality) -> document::Model {
    document::Model {
        id: "0190a000-0000-7000-8000-000000000001".to_owned(),
        title: "Supplier contract".to_owned(),
        title_key: "supplier contract".to_owned(),
        category: "CONTRACT".to_owned(),
        department: "finance".to_owned(),
        confidentiality: level as i32,
        state: DocumentState::Registered,
        drafter_id: "drafter".to_owned(),
        drafted_at: NOW - DAY_MICROS,
        revision: 2,
        content_sha256: "00".repeat(32),
        content_size: 10,
        content_media_type: "text/plain".to_owned(),
        reviewer_id: None,
        file_number: None,
        year: None,
        file_serial: None,
        storage_location: None,
        registered_at: None,
        entity_version: 5,
    }
}

fn approved(document: &document::Model) -> access_request::Model {
    access_request::Model {
        id: "0190a000-0000-7000-8000-0000000000aa".to_owned(),
        document_id: document.id.clone(),
        requester_id: "reader".to_owned(),
        purpose: "audit".to_owned(),
        revision: 0,
        state: AccessRequestState::Approved,
        requested_at: NOW - DAY_MICROS,
        approver_id: Some("head".to_owned()),
        opinion: Some("ok".to_owned()),
        decided_at: Some(NOW - DAY_MICROS),
        expires_at: Some(NOW + DAY_MICROS),
    }
}

fn check<'a>(
    document: &'a document::Model,
    request: Option<&'a access_request::Model>,
) -> ReadCheck<'a> {
    ReadCheck {
        caller: "reader",
        clearance: None,
        document,
        revision: 2,
        request,
        agreement_accepted: false,
        now: NOW,
    }
}

fn denial(result: Result<Option<String>, Denial>) -> Denial {
    result.expect_err("the read should be denied")
}

#[test]
fn public_and_internal_documents_need_no_request() {
    for level in [Confidentiality::Public, Confidentiality::Internal] {
        let document = document(level);
        assert_eq!(check_read(&check(&document, None)), Ok(None));
    }
}

#[test]
fn confidential_document_without_request_is_denied() {
    let document = document(Confidentiality::Confidential);
    let denied = denial(check_read(&check(&document, None)));
    assert!(
        denied.reason.contains("no approved access request"),
        "{denied:?}"
    );
    assert_eq!(denied.access_request_id, None);
}

#[test]
fn drafter_reads_own_confidential_document() {
    let document = document(Confidentiality::Secret);
    let mut check = check(&document, None);
    check.caller = "drafter";
    assert_eq!(check_read(&check), Ok(None));
}

#[test]
fn approved_unexpired_request_allows_and_is_named() {
    let document = document(Confidentiality::Confidential);
    let request = approved(&document);
    assert_eq!(
        check_read(&check(&document, Some(&request))),
        Ok(Some(request.id.clone()))
    );
}

#[test]
fn expired_request_is_denied_and_referenced() {
    let document = document(Confidentiality::Confidential);
    let mut request = approved(&document);
    request.expires_at = Some(NOW);
    let denied = denial(check_read(&check(&document, Some(&request))));
    assert!(denied.reason.contains("expired at"), "{denied:?}");
    assert_eq!(
        denied.access_request_id.as_deref(),
        Some(request.id.as_str())
    );
}

#[test]
fn pending_and_rejected_requests_are_denied() {
    let document = document(Confidentiality::Confidential);
    for state in [AccessRequestState::Pending, AccessRequestState::Rejected] {
        let mut request = approved(&document);
        request.state = state;
        let denied = denial(check_read(&check(&document, Some(&request))));
        assert!(denied.reason.ends_with(state.name()), "{denied:?}");
    }
}

#[test]
fn another_users_request_is_denied_without_reference() {
    let document = document(Confidentiality::Confidential);
    let mut request = approved(&document);
    request.requester_id = "someone-else".to_owned();
    let denied = denial(check_read(&check(&document, Some(&request))));
    assert!(
        denied.reason.contains("not the caller's request"),
        "{denied:?}"
    );
    assert_eq!(denied.access_request_id, None);
}

#[test]
fn request_for_one_revision_does_not_cover_another() {
    let document = document(Confidentiality::Confidential);
    let mut request = approved(&document);
    request.revision = 1;
    let denied = denial(check_read(&check(&document, Some(&request))));
    assert!(
        denied.reason.contains("covers revision 1, not 2"),
        "{denied:?}"
    );
}

#[test]
fn secret_document_needs_the_agreement() {
    let document = document(Confidentiality::Secret);
    let request = approved(&document);
    let denied = denial(check_read(&check(&document, Some(&request))));
    assert!(
        denied.reason.contains("confidentiality agreement"),
        "{denied:?}"
    );

    let mut accepted = check(&document, Some(&request));
    accepted.agreement_accepted = true;
    assert_eq!(check_read(&accepted), Ok(Some(request.id.clone())));
}

#[test]
fn clearance_below_the_level_is_denied_even_for_the_drafter() {
    let document = document(Confidentiality::Secret);
    let mut check = check(&document, None);
    check.caller = "drafter";
    check.clearance = Some(Clearance::Confidential);
    let denied = denial(check_read(&check));
    assert!(denied.reason.contains("clearance"), "{denied:?}");
}

#[test]
fn unknown_stored_level_counts_as_secret() {
    let mut stored = document(Confidentiality::Public);
    stored.confidentiality = 0;
    assert_eq!(level(&stored), Confidentiality::Secret);
    stored.confidentiality = 99;
    assert_eq!(level(&stored), Confidentiality::Secret);
}

#[test]
fn approval_expiry_must_be_ahead_and_bounded() {
    let at = |micros: i64| prost_types::Timestamp {
        seconds: micros / 1_000_000,
        nanos: 0,
    };
    assert!(access_approval::expiry("expires_at", None, NOW).is_err());
    assert!(access_approval::expiry("expires_at", Some(&at(NOW)), NOW).is_err());
    assert!(access_approval::expiry("expires_at", Some(&at(NOW + 91 * DAY_MICROS)), NOW).is_err());
    assert_eq!(
        access_approval::expiry("expires_at", Some(&at(NOW + DAY_MICROS)), NOW).unwrap(),
        NOW + DAY_MICROS
    );
}
