//! Read rule for a document's records other than its content. PUBLIC and INTERNAL documents
//! are in the company's register for every caller whose clearance allows them. A
//! CONFIDENTIAL or SECRET document is seen by the administration, audit and system roles,
//! the supervisors and department heads of its department, and the people who take part in
//! it: its drafter, its reviewer, its borrowers and those who requested access to it. Its
//! revision and borrowing histories carry sealed texts, so those are read only by the roles
//! and department above, the drafter and reviewer, and a holder of a current approval.
//!
//! A denied read of an existing document is its `read_denied` event, and a denied read of a
//! missing one an `access.denied` event. Both return `PERMISSION_DENIED` with one message,
//! and only callers who read every document get `NOT_FOUND`. A permitted read of a
//! CONFIDENTIAL or SECRET document's records is its `metadata_read` event.

use sea_orm::sea_query::Query;
use sea_orm::{ColumnTrait, Condition, EntityTrait, QueryFilter, QuerySelect};
use trace_proto::common::v1::Confidentiality;
use trace_proto::document::v1 as proto;
use trace_runtime::context::{CallContext, Clearance};
use trace_runtime::event::pack;
use trace_runtime::read_scope::{GuardedRead, ReadScope};
use trace_runtime::{ServiceError, ServiceResult};

use super::access::{clearance_of, level};
use super::write::{AttemptResult, find_document, lock_document, with_retries};
use super::{DocumentHandler, SERVICE};
use crate::entity::{access_request, borrowing, document};
use crate::state::AccessRequestState;

/// Description of the callers who read a document's records, which ends the denial message.
const READERS: &str = "\
    a CONFIDENTIAL or SECRET document is seen by its drafter, reviewer, borrowers and access \
    requesters, by supervisors and department heads of its department, and by the \
    administration, audit and system roles; its histories need one of those roles, the \
    drafter or reviewer, or an approved access request; and no one reads a document above \
    their clearance";

/// The reads that the rule guards, named as in the gRPC service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ReadMethod {
    GetDocument,
    ListRevisions,
    ListBorrowings,
    ListAccessRequests,
    ReadContent,
}

impl ReadMethod {
    pub(super) fn name(self) -> &'static str {
        match self {
            Self::GetDocument => "GetDocument",
            Self::ListRevisions => "ListRevisions",
            Self::ListBorrowings => "ListBorrowings",
            Self::ListAccessRequests => "ListAccessRequests",
            Self::ReadContent => "ReadContent",
        }
    }

    /// Returns true for the reads of histories that carry sealed texts.
    fn reads_histories(self) -> bool {
        matches!(self, Self::ListRevisions | Self::ListBorrowings)
    }

    /// Describes the read of `document_id` by this method for the denial errors.
    pub(super) fn guarded(self, document_id: &str) -> GuardedRead<'_> {
        GuardedRead {
            service: SERVICE,
            grpc_service: "trace.document.v1.DocumentService",
            method: self.name(),
            record: "document",
            record_id: document_id,
            readers: READERS,
        }
    }
}

/// The people and the level of one document that the rule compares.
#[derive(Debug, Clone, Copy)]
pub(super) struct DocumentParties<'a> {
    pub level: Confidentiality,
    pub department: &'a str,
    pub drafter_id: &'a str,
    pub reviewer_id: Option<&'a str>,
    pub borrower_ids: &'a [String],
    pub requester_ids: &'a [String],
    /// Flag set when the caller has an approved, unexpired access request for the document.
    pub caller_approved: bool,
}

/// Returns true when a caller with `scope` and `clearance` may read the records of the
/// document of `parties` that `method` returns. Pure, so every rule has a unit test.
pub(super) fn may_read_records(
    scope: &ReadScope,
    clearance: Option<Clearance>,
    parties: &DocumentParties<'_>,
    method: ReadMethod,
) -> bool {
    if clearance.is_some_and(|clearance| clearance < clearance_of(parties.level)) {
        return false;
    }
    if parties.level < Confidentiality::Confidential || scope.covers_department(parties.department)
    {
        return true;
    }
    let ReadScope::Involved { user_id, .. } = scope else {
        return true;
    };
    let user_id = user_id.as_str();
    if parties.drafter_id == user_id || parties.reviewer_id == Some(user_id) {
        return true;
    }
    if method.reads_histories() {
        return parties.caller_approved;
    }
    parties.caller_approved
        || parties.borrower_ids.iter().any(|id| id == user_id)
        || parties.requester_ids.iter().any(|id| id == user_id)
}

/// Returns the condition on `documents` that keeps the documents visible to a caller with
/// `scope` and `clearance`, or `None` when that is every document.
pub(super) fn listing_condition(
    scope: &ReadScope,
    clearance: Option<Clearance>,
) -> Option<Condition> {
    let mut condition = Condition::all();
    let mut restricted = false;
    if let Some(clearance) = clearance {
        let allowed: Vec<i32> = [
            Confidentiality::Public,
            Confidentiality::Internal,
            Confidentiality::Confidential,
            Confidentiality::Secret,
        ]
        .into_iter()
        .filter(|level| clearance_of(*level) <= clearance)
        .map(|level| level as i32)
        .collect();
        condition = condition.add(document::Column::Confidentiality.is_in(allowed));
        restricted = true;
    }
    if let ReadScope::Involved {
        user_id,
        department,
    } = scope
    {
        let borrowed = Query::select()
            .column(borrowing::Column::DocumentId)
            .from(borrowing::Entity)
            .and_where(borrowing::Column::BorrowerId.eq(user_id.as_str()))
            .to_owned();
        let requested = Query::select()
            .column(access_request::Column::DocumentId)
            .from(access_request::Entity)
            .and_where(access_request::Column::RequesterId.eq(user_id.as_str()))
            .to_owned();
        let mut visible = Condition::any()
            .add(document::Column::Confidentiality.is_in([
                Confidentiality::Public as i32,
                Confidentiality::Internal as i32,
            ]))
            .add(document::Column::DrafterId.eq(user_id.as_str()))
            .add(document::Column::ReviewerId.eq(user_id.as_str()))
            .add(document::Column::Id.in_subquery(borrowed))
            .add(document::Column::Id.in_subquery(requested));
        if let Some(department) = department {
            visible = visible.add(document::Column::Department.eq(department.as_str()));
        }
        condition = condition.add(visible);
        restricted = true;
    }
    restricted.then_some(condition)
}

impl DocumentHandler {
    /// Loads the document `document_id` when the caller may read the records `method`
    /// returns, and returns it with the approval that let them, if one did. Otherwise
    /// records the denial and returns `PERMISSION_DENIED`, for a missing document as well
    /// unless the caller reads every document, who gets `NOT_FOUND`.
    pub(super) async fn authorize_records(
        &self,
        context: &CallContext,
        document_id: &str,
        method: ReadMethod,
    ) -> ServiceResult<(document::Model, Option<String>)> {
        let scope = ReadScope::of(&context.principal);
        let model = match find_document(&self.db, document_id).await {
            Ok(model) => model,
            Err(ServiceError::NotFound { .. }) if scope != ReadScope::Whole => {
                return Err(method
                    .guarded(document_id)
                    .deny_missing(&self.outbox, context)
                    .await);
            }
            Err(error) => return Err(error),
        };
        let (allowed, approval) = self.judge_records(context, &scope, &model, method).await?;
        if allowed {
            return Ok((model, approval));
        }
        let reason = format!(
            "{} may not read the records of a {} document of department '{}' through {}",
            context.principal.user_id,
            level(&model).as_str_name(),
            model.department,
            method.name()
        );
        Err(self.deny_records(context, &model, method, reason).await)
    }

    /// Applies [`may_read_records`] to a stored document, and returns the caller's current
    /// approval with the verdict.
    pub(super) async fn judge_records(
        &self,
        context: &CallContext,
        scope: &ReadScope,
        model: &document::Model,
        method: ReadMethod,
    ) -> ServiceResult<(bool, Option<String>)> {
        let user_id = context.principal.user_id.as_str();
        let borrower_ids: Vec<String> = borrowing::Entity::find()
            .select_only()
            .column(borrowing::Column::BorrowerId)
            .filter(borrowing::Column::DocumentId.eq(model.id.as_str()))
            .into_tuple()
            .all(&self.db)
            .await?;
        let requester_ids: Vec<String> = access_request::Entity::find()
            .select_only()
            .column(access_request::Column::RequesterId)
            .filter(access_request::Column::DocumentId.eq(model.id.as_str()))
            .into_tuple()
            .all(&self.db)
            .await?;
        let approval: Option<String> = access_request::Entity::find()
            .select_only()
            .column(access_request::Column::Id)
            .filter(access_request::Column::DocumentId.eq(model.id.as_str()))
            .filter(access_request::Column::RequesterId.eq(user_id))
            .filter(access_request::Column::State.eq(AccessRequestState::Approved))
            .filter(access_request::Column::ExpiresAt.gt(self.now()))
            .into_tuple()
            .one(&self.db)
            .await?;
        let parties = DocumentParties {
            level: level(model),
            department: &model.department,
            drafter_id: &model.drafter_id,
            reviewer_id: model.reviewer_id.as_deref(),
            borrower_ids: &borrower_ids,
            requester_ids: &requester_ids,
            caller_approved: approval.is_some(),
        };
        let allowed = may_read_records(scope, context.clearance, &parties, method);
        Ok((allowed, approval))
    }

    /// Records a permitted read of a CONFIDENTIAL or SECRET document's records as its
    /// `metadata_read` event and returns the document at the new version. Documents of a
    /// lower level are returned as they are, with no event.
    pub(super) async fn record_records_read(
        &self,
        context: &CallContext,
        model: document::Model,
        method: ReadMethod,
        approval: Option<String>,
    ) -> ServiceResult<document::Model> {
        if level(&model) < Confidentiality::Confidential {
            return Ok(model);
        }
        let payload = proto::DocumentMetadataRead {
            method: method.name().to_owned(),
            access_request_id: approval.unwrap_or_default(),
        };
        with_retries("record a records read", || async {
            let txn = self.begin().await?;
            let loaded = lock_document(&txn, &model.id).await?;
            let (updated, _) = self
                .record_change(
                    &txn,
                    context,
                    &loaded,
                    Default::default(),
                    "metadata_read",
                    pack(&payload),
                )
                .await?;
            self.commit(txn).await?;
            AttemptResult::Ok(updated)
        })
        .await
    }

    /// Records a denied read of an existing document as its `read_denied` event and returns
    /// the caller's error, which does not show that the document exists.
    pub(super) async fn deny_records(
        &self,
        context: &CallContext,
        model: &document::Model,
        method: ReadMethod,
        reason: String,
    ) -> ServiceError {
        let payload = proto::DocumentReadDenied {
            revision: 0,
            reason,
            access_request_id: String::new(),
            method: method.name().to_owned(),
        };
        let recorded = self.record_read_denied(context, &model.id, &payload).await;
        method.guarded(&model.id).denial_error(context, recorded)
    }

    /// Writes `payload` as the `read_denied` event of the document `document_id` and returns
    /// the event id.
    pub(super) async fn record_read_denied(
        &self,
        context: &CallContext,
        document_id: &str,
        payload: &proto::DocumentReadDenied,
    ) -> ServiceResult<String> {
        with_retries("record a denied read", || async {
            let txn = self.begin().await?;
            let loaded = lock_document(&txn, document_id).await?;
            let (_, event_id) = self
                .record_change(
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
}

#[cfg(test)]
mod tests {
    use trace_runtime::context::{Principal, role};

    use super::*;

    fn scope(user_id: &str, department: &str, roles: &[&str]) -> ReadScope {
        ReadScope::of(&Principal {
            user_id: user_id.to_owned(),
            display_name: String::new(),
            department: department.to_owned(),
            roles: roles.iter().map(|role| (*role).to_owned()).collect(),
        })
    }

    fn parties(level: Confidentiality) -> DocumentParties<'static> {
        static BORROWERS: [String; 0] = [];
        static REQUESTERS: [String; 0] = [];
        DocumentParties {
            level,
            department: "finance",
            drafter_id: "li.na",
            reviewer_id: Some("wang.wu"),
            borrower_ids: &BORROWERS,
            requester_ids: &REQUESTERS,
            caller_approved: false,
        }
    }

    fn employee(user_id: &str) -> ReadScope {
        scope(user_id, "sales", &[role::EMPLOYEE])
    }

    #[test]
    fn register_levels_open_to_employees() {
        for level in [Confidentiality::Public, Confidentiality::Internal] {
            for method in [ReadMethod::GetDocument, ReadMethod::ListRevisions] {
                assert!(may_read_records(
                    &employee("sun.ba"),
                    None,
                    &parties(level),
                    method
                ));
            }
        }
    }

    #[test]
    fn low_clearance_hides_document() {
        let auditor = scope("zhao.yun", "audit", &[role::AUDIT]);
        let internal = parties(Confidentiality::Internal);
        assert!(!may_read_records(
            &auditor,
            Some(Clearance::Public),
            &internal,
            ReadMethod::GetDocument
        ));
        assert!(may_read_records(
            &auditor,
            Some(Clearance::Internal),
            &internal,
            ReadMethod::GetDocument
        ));
        let secret = parties(Confidentiality::Secret);
        assert!(!may_read_records(
            &scope("li.na", "finance", &[role::EMPLOYEE]),
            Some(Clearance::Confidential),
            &secret,
            ReadMethod::GetDocument
        ));
    }

    #[test]
    fn confidential_hidden_from_employees() {
        let confidential = parties(Confidentiality::Confidential);
        for method in [
            ReadMethod::GetDocument,
            ReadMethod::ListRevisions,
            ReadMethod::ListBorrowings,
            ReadMethod::ListAccessRequests,
        ] {
            assert!(!may_read_records(
                &employee("sun.ba"),
                None,
                &confidential,
                method
            ));
            // Working in the department is not enough without a supervising role.
            assert!(!may_read_records(
                &scope("sun.ba", "finance", &[role::EMPLOYEE]),
                None,
                &confidential,
                method
            ));
        }
    }

    #[test]
    fn roles_department_and_authors_read_records() {
        let secret = parties(Confidentiality::Secret);
        let readers = [
            scope("zhao.yun", "audit", &[role::AUDIT]),
            scope("qian.qi", "admin", &[role::ADMINISTRATION]),
            scope("zhou.jie", "finance", &[role::DEPARTMENT_HEAD]),
            scope("he.er", "finance", &[role::SUPERVISOR]),
            employee("li.na"),
            employee("wang.wu"),
        ];
        for reader in &readers {
            for method in [ReadMethod::GetDocument, ReadMethod::ListBorrowings] {
                assert!(
                    may_read_records(reader, None, &secret, method),
                    "{reader:?} {method:?}"
                );
            }
        }
        assert!(!may_read_records(
            &scope("zhou.jie", "sales", &[role::DEPARTMENT_HEAD]),
            None,
            &secret,
            ReadMethod::GetDocument
        ));
    }

    #[test]
    fn requesters_see_document_not_histories() {
        let borrowers = ["sun.ba".to_owned()];
        let requesters = ["zhou.qi".to_owned()];
        let confidential = DocumentParties {
            borrower_ids: &borrowers,
            requester_ids: &requesters,
            ..parties(Confidentiality::Confidential)
        };
        for user_id in ["sun.ba", "zhou.qi"] {
            assert!(may_read_records(
                &employee(user_id),
                None,
                &confidential,
                ReadMethod::GetDocument
            ));
            assert!(may_read_records(
                &employee(user_id),
                None,
                &confidential,
                ReadMethod::ListAccessRequests
            ));
            assert!(!may_read_records(
                &employee(user_id),
                None,
                &confidential,
                ReadMethod::ListRevisions
            ));
        }
        let approved = DocumentParties {
            caller_approved: true,
            ..confidential
        };
        assert!(may_read_records(
            &employee("zhou.qi"),
            None,
            &approved,
            ReadMethod::ListRevisions
        ));
    }
}
