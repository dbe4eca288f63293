//! Read access to findings and department results. [`crate::read_scope::may_read_finding`]
//! decides who reads one finding, and [`scope_condition`] applies the same rule in SQL to
//! `ListFindings`. A denied read of an existing finding is recorded as the finding's
//! `read_denied` event, and a denied read of a missing finding as an `access.denied` event.
//! Both return `PERMISSION_DENIED` with one message and a recorded event id, so the response
//! does not reveal whether the finding exists. Only callers who read every finding get
//! `NOT_FOUND` for a missing one. Department aggregates outside the scope return
//! `PERMISSION_DENIED`, which the denial layer records.
//!
//! A reader of a CONFIDENTIAL or SECRET finding who takes no part in it also needs an
//! approved access request (see [`super::approval`]). A read denied by that rule is a
//! `read_denied` event naming the request it judged, and a permitted read of such a finding
//! is a `read` event naming the request it used.

use std::collections::HashMap;
use std::time::Duration;

use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder};
use trace_proto::common::v1::Confidentiality;
use trace_proto::inspection::v1::{Finding, FindingRead, FindingReadDenied};
use trace_runtime::access_approval::{self, AccessRequestState, ApprovalCheck, access_request};
use trace_runtime::context::CallContext;
use trace_runtime::event::pack;
use trace_runtime::read_scope::GuardedRead;
use trace_runtime::{ServiceError, ServiceResult};

use super::InspectionHandler;
use super::findings::{find_finding, lock_finding};
use crate::convert;
use crate::entity::finding;
use crate::events::{self, FINDING, SERVICE, Staged};
use crate::read_scope::{
    FindingParties, FindingScope, ReadScope, may_read_department, may_read_finding, takes_part,
};

/// Description of the callers who read a finding, which ends the denial message.
const READERS: &str = "\
    a finding is read by the user who recorded it, the person responsible for its \
    rectification and the users who assigned or verified it, by supervisors and heads of \
    its department, and by the administration, audit and system roles";

/// Attempts at recording a read or a denied read before a concurrent change of the same
/// finding fails the call with `ABORTED`.
const EVENT_ATTEMPTS: u32 = 3;

/// The by-id reads that the read rule guards, named as in the gRPC service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ReadMethod {
    GetFinding,
    ListFindings,
    RequestAccess,
    ListAccessRequests,
    GetInspectionReport,
}

impl ReadMethod {
    pub(super) fn name(self) -> &'static str {
        match self {
            Self::GetFinding => "GetFinding",
            Self::ListFindings => "ListFindings",
            Self::RequestAccess => "RequestAccess",
            Self::ListAccessRequests => "ListAccessRequests",
            Self::GetInspectionReport => "GetInspectionReport",
        }
    }

    /// Describes the read of `finding_id` by this method for the denial message and event.
    fn guarded(self, finding_id: &str) -> GuardedRead<'_> {
        GuardedRead {
            service: SERVICE,
            grpc_service: "trace.inspection.v1.InspectionService",
            method: self.name(),
            record: "finding",
            record_id: finding_id,
            readers: READERS,
        }
    }
}

/// Returns the stored level of a finding.
pub(super) fn level(row: &finding::Model) -> Confidentiality {
    access_approval::level_of(row.confidentiality)
}

/// Returns the condition on `findings` that keeps the findings inside `scope`, or `None`
/// when the scope is every finding.
pub(super) fn scope_condition(scope: &FindingScope) -> Option<Condition> {
    let ReadScope::Involved {
        user_id,
        department,
    } = &scope.scope
    else {
        return None;
    };
    let user_id = user_id.as_str();
    let mut condition = Condition::any()
        .add(finding::Column::RecordedBy.eq(user_id))
        .add(finding::Column::ResponsibleId.eq(user_id))
        .add(finding::Column::AssignedBy.eq(user_id))
        .add(finding::Column::VerifiedBy.eq(user_id));
    if let Some(department) = department.as_deref().filter(|d| !d.is_empty()) {
        condition = condition.add(finding::Column::Department.eq(department));
    }
    if !scope.headed_departments.is_empty() {
        let headed = scope.headed_departments.iter().map(String::as_str);
        condition = condition.add(finding::Column::Department.is_in(headed));
    }
    Some(condition)
}

/// Returns the parties of a stored finding that the read rule compares.
pub(super) fn parties(row: &finding::Model) -> FindingParties<'_> {
    FindingParties {
        department: &row.department,
        recorded_by: &row.recorded_by,
        responsible_id: row.responsible_id.as_deref(),
        assigned_by: row.assigned_by.as_deref(),
        verified_by: row.verified_by.as_deref(),
    }
}

impl InspectionHandler {
    /// Returns the caller's scope over findings, with the departments they head in the
    /// company directory.
    pub(super) fn finding_scope(&self, context: &CallContext) -> FindingScope {
        FindingScope::of(&context.principal, &self.directory)
    }

    /// Loads the finding `finding_id` with its text opened when it is inside the caller's
    /// read scope, and returns it with whether the caller takes part in it. Otherwise records
    /// the denial and returns `PERMISSION_DENIED`, for a missing finding as well unless the
    /// caller reads every finding, who gets `NOT_FOUND`.
    pub(super) async fn authorize_scope(
        &self,
        context: &CallContext,
        finding_id: &str,
        method: ReadMethod,
    ) -> ServiceResult<(finding::Model, bool)> {
        let scope = self.finding_scope(context);
        let found = find_finding(&self.keyring, &self.db, finding_id).await;
        let row = match found {
            Ok(row) => row,
            // A caller who reads every finding learns nothing from NOT_FOUND.
            Err(error @ ServiceError::NotFound { .. }) if scope.is_whole() => return Err(error),
            Err(ServiceError::NotFound { .. }) => {
                return Err(method
                    .guarded(finding_id)
                    .deny_missing(&self.outbox, context)
                    .await);
            }
            Err(error) => return Err(error),
        };
        if !may_read_finding(&scope, &parties(&row)) {
            return Err(self.deny_existing(context, &row, method).await);
        }
        let participant = takes_part(&context.principal.user_id, &parties(&row));
        Ok((row, participant))
    }

    /// Loads the finding `finding_id` when the caller may read its text, and returns it with
    /// the access request the read uses. Besides the read scope of
    /// [`InspectionHandler::authorize_scope`], a caller who takes no part in a CONFIDENTIAL or
    /// SECRET finding needs an approved access request, and for a SECRET finding the current
    /// agreement. A denial by that rule is recorded as the finding's `read_denied` event and
    /// returned as `PERMISSION_DENIED` with the reason, which the caller may see because the
    /// finding is inside their scope.
    pub(super) async fn authorize_read(
        &self,
        context: &CallContext,
        finding_id: &str,
        method: ReadMethod,
    ) -> ServiceResult<(finding::Model, Option<String>)> {
        let (row, participant) = self.authorize_scope(context, finding_id, method).await?;
        let level = level(&row);
        if level < Confidentiality::Confidential || participant {
            return Ok((row, None));
        }

        let caller = context.principal.user_id.as_str();
        let now = self.now();
        let request = access_approval::newest_request(&self.db, &row.id, caller, now).await?;
        let agreement_accepted =
            access_approval::agreement_accepted(&self.db, caller, &self.agreement_version).await?;
        let check = ApprovalCheck {
            caller,
            record: "finding",
            record_id: &row.id,
            level,
            takes_part: participant,
            request: request.as_ref(),
            agreement_accepted,
            now,
        };
        let denial = match access_approval::check_approval(&check) {
            Ok(used) => return Ok((row, used)),
            Err(denial) => denial,
        };

        let payload = FindingReadDenied {
            method: method.name().to_owned(),
            reason: denial.reason.clone(),
            access_request_id: denial.access_request_id.clone().unwrap_or_default(),
        };
        let (event_id, _) = self
            .record_finding_event(context, &row.id, "read_denied", pack(&payload))
            .await?;
        tracing::info!(
            finding_id = %row.id,
            user_id = caller,
            method = method.name(),
            %event_id,
            reason = %denial.reason,
            "finding read denied without a current approval"
        );
        Err(ServiceError::denied_and_recorded(
            format!(
                "{}; the denial is recorded as event {event_id}",
                denial.reason
            ),
            event_id,
        ))
    }

    /// Records a permitted read of a CONFIDENTIAL or SECRET finding as its `read` event, which
    /// names the access request the read used, and returns the finding at the new version.
    /// Findings of a lower level are returned as they are, with no event.
    pub(super) async fn record_read(
        &self,
        context: &CallContext,
        mut row: finding::Model,
        access_request_id: Option<String>,
        method: ReadMethod,
    ) -> ServiceResult<finding::Model> {
        if level(&row) < Confidentiality::Confidential {
            return Ok(row);
        }
        let payload = FindingRead {
            method: method.name().to_owned(),
            access_request_id: access_request_id.unwrap_or_default(),
        };
        let (_, version) = self
            .record_finding_event(context, &row.id, "read", pack(&payload))
            .await?;
        row.entity_version = version;
        Ok(row)
    }

    /// Fails with `PERMISSION_DENIED` unless the caller reads every finding or supervises
    /// or heads `department`. The denial layer records the denial.
    pub(super) fn authorize_department_read(
        &self,
        context: &CallContext,
        department: &str,
        aggregate: &str,
    ) -> ServiceResult<()> {
        if may_read_department(&self.finding_scope(context), department) {
            return Ok(());
        }
        Err(ServiceError::denied(format!(
            "{} may not read the {aggregate} of department {department}. Supervisors and \
             heads of that department and the administration, audit and system roles may \
             read it",
            context.principal.user_id
        )))
    }

    /// Converts listed findings, with their text opened, for the caller. A CONFIDENTIAL or
    /// SECRET finding the caller takes no part in is returned with its text only under an
    /// approval that [`access_approval::check_approval`] accepts. Every CONFIDENTIAL or SECRET
    /// finding returned with its text, to a participant or under an approval, is recorded as
    /// the finding's `read` event in one transaction. Without an approval the text is withheld
    /// and nothing is recorded, because the caller did not read it.
    pub(super) async fn listed_findings(
        &self,
        context: &CallContext,
        rows: Vec<finding::Model>,
    ) -> ServiceResult<Vec<Finding>> {
        let caller = context.principal.user_id.as_str();
        let guarded: Vec<&str> = rows
            .iter()
            .filter(|row| {
                level(row) >= Confidentiality::Confidential && !takes_part(caller, &parties(row))
            })
            .map(|row| row.id.as_str())
            .collect();
        if rows
            .iter()
            .all(|row| level(row) < Confidentiality::Confidential)
        {
            return Ok(rows.iter().map(convert::finding).collect());
        }

        let now = self.now();
        let mut approved = Vec::new();
        let mut agreement_accepted = false;
        // Only findings the caller takes no part in need an approval and the agreement.
        if !guarded.is_empty() {
            approved = access_request::Entity::find()
                .filter(access_request::Column::RecordId.is_in(guarded))
                .filter(access_request::Column::RequesterId.eq(caller))
                .filter(access_request::Column::State.eq(AccessRequestState::Approved))
                .filter(access_request::Column::ExpiresAt.gt(now))
                .order_by_asc(access_request::Column::ExpiresAt)
                .all(&self.db)
                .await?;
            agreement_accepted =
                access_approval::agreement_accepted(&self.db, caller, &self.agreement_version)
                    .await?;
        }
        // Later expiries overwrite earlier ones, so each finding keeps the approval that
        // lasts longest, the one `access_approval::newest_request` picks for GetFinding.
        let approved: HashMap<&str, &access_request::Model> = approved
            .iter()
            .map(|request| (request.record_id.as_str(), request))
            .collect();

        // Decide every row first, then record the permitted reads in one transaction. A
        // decision is the request id that the row's `read` event names (empty for a
        // participant), `None` for a row below CONFIDENTIAL, or the denial that withholds
        // the text.
        let mut reads = Vec::new();
        let mut decided = Vec::with_capacity(rows.len());
        for row in rows {
            let level = level(&row);
            let check = ApprovalCheck {
                caller,
                record: "finding",
                record_id: &row.id,
                level,
                takes_part: takes_part(caller, &parties(&row)),
                request: approved.get(row.id.as_str()).copied(),
                agreement_accepted,
                now,
            };
            let used = match access_approval::check_approval(&check) {
                Ok(_) if level < Confidentiality::Confidential => None,
                Ok(used) => {
                    let used = used.unwrap_or_default();
                    reads.push((row.id.clone(), used.clone()));
                    Some(Ok(used))
                }
                Err(denial) => Some(Err(denial)),
            };
            decided.push((row, used));
        }
        let versions = self.record_listed_reads(context, reads).await?;
        Ok(decided
            .into_iter()
            .map(|(mut row, used)| {
                // A recorded read moved the finding to a new version.
                if let Some(version) = versions.get(&row.id) {
                    row.entity_version = *version;
                }
                match used {
                    Some(Err(_)) => convert::withheld_finding(&row),
                    _ => convert::finding(&row),
                }
            })
            .collect())
    }

    /// Records one `read` event of `ListFindings` for each pair of `reads`, a finding id and
    /// the access request id its event names, in one transaction, and returns the new
    /// version of each finding by id.
    async fn record_listed_reads(
        &self,
        context: &CallContext,
        mut reads: Vec<(String, String)>,
    ) -> ServiceResult<HashMap<String, i64>> {
        let mut versions = HashMap::with_capacity(reads.len());
        if reads.is_empty() {
            return Ok(versions);
        }
        // Sorted ids, so that two listings lock shared findings in the same order.
        reads.sort_unstable();
        let transaction = trace_runtime::db::begin_write(&self.db).await?;
        for (finding_id, access_request_id) in reads {
            let payload = FindingRead {
                method: ReadMethod::ListFindings.name().to_owned(),
                access_request_id,
            };
            let loaded = lock_finding(&transaction, &finding_id).await?;
            let staged = self
                .stage_next_version(&transaction, context, &loaded, "read", pack(&payload))
                .await?;
            let Some((_, version)) = staged else {
                return Err(ServiceError::Aborted {
                    reason: format!("finding {finding_id} changed concurrently. Retry the call"),
                });
            };
            versions.insert(finding_id, version);
        }
        self.commit(transaction).await?;
        Ok(versions)
    }

    /// Records a denied read of an existing finding outside the caller's scope as its
    /// `read_denied` event.
    async fn deny_existing(
        &self,
        context: &CallContext,
        row: &finding::Model,
        method: ReadMethod,
    ) -> ServiceError {
        let user_id = &context.principal.user_id;
        let payload = FindingReadDenied {
            method: method.name().to_owned(),
            reason: format!(
                "{user_id} did not record the finding, is not responsible for its \
                 rectification, did not assign or verify it, and is not a supervisor or head \
                 of its department '{}'",
                row.department
            ),
            access_request_id: String::new(),
        };
        let recorded = self
            .record_finding_event(context, &row.id, "read_denied", pack(&payload))
            .await
            .map(|(event_id, _)| event_id);
        method.guarded(&row.id).denial_error(context, recorded)
    }

    /// Stages the event `action` of `finding_id` at the next entity version in a transaction
    /// of its own, and returns its event id and the new version. The update checks the loaded
    /// version and retries on a conflict, so this event does not reuse a version that a write
    /// committed in between.
    pub(super) async fn record_finding_event(
        &self,
        context: &CallContext,
        finding_id: &str,
        action: &'static str,
        payload: prost_types::Any,
    ) -> ServiceResult<(String, i64)> {
        for attempt in 1..=EVENT_ATTEMPTS {
            let transaction = trace_runtime::db::begin_write(&self.db).await?;
            let loaded = lock_finding(&transaction, finding_id).await?;
            let staged = self
                .stage_next_version(&transaction, context, &loaded, action, payload.clone())
                .await?;
            if let Some(staged) = staged {
                self.commit(transaction).await?;
                return Ok(staged);
            }
            transaction.rollback().await?;
            tracing::warn!(
                finding_id,
                attempt,
                action,
                "finding changed while recording an event, retrying"
            );
            tokio::time::sleep(Duration::from_millis(10 * u64::from(attempt))).await;
        }
        Err(ServiceError::Aborted {
            reason: format!(
                "recording the {action} event of finding {finding_id} conflicted with \
                 concurrent changes {EVENT_ATTEMPTS} times. Retry the call"
            ),
        })
    }

    /// Moves the loaded finding to the next entity version and stages the event `action` at
    /// that version and at the finding's level, inside `transaction`. Returns the event id and
    /// the version, or `None` when the stored version is no longer the loaded one.
    pub(super) async fn stage_next_version<C: ConnectionTrait>(
        &self,
        transaction: &C,
        context: &CallContext,
        loaded: &finding::Model,
        action: &'static str,
        payload: prost_types::Any,
    ) -> ServiceResult<Option<(String, i64)>> {
        let version = loaded.entity_version + 1;
        let moved = finding::Entity::update_many()
            .col_expr(finding::Column::EntityVersion, Expr::value(version))
            .filter(finding::Column::Id.eq(loaded.id.as_str()))
            .filter(finding::Column::EntityVersion.eq(loaded.entity_version))
            .exec(transaction)
            .await?;
        if moved.rows_affected != 1 {
            return Ok(None);
        }
        let staged = Staged {
            entity_type: FINDING,
            entity_id: &loaded.id,
            entity_version: version,
            action,
            confidentiality: loaded.confidentiality,
            payload,
        };
        let event_id = events::stage_returning_id(
            &self.outbox,
            transaction,
            context,
            self.clock.as_ref(),
            staged,
        )
        .await?;
        Ok(Some((event_id, version)))
    }
}
