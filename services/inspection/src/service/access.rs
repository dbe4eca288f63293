//! Read access to findings and department results. [`crate::read_scope::may_read_finding`]
//! decides who reads one finding, and [`scope_condition`] applies the same rule in SQL to
//! `ListFindings`. A denied read of an existing finding is recorded as the finding's
//! `read_denied` event, and a denied read of a missing finding as an `access.denied` event.
//! Both return `PERMISSION_DENIED` with one message and a recorded event id, so the response
//! does not reveal whether the finding exists. Only callers who read every finding get
//! `NOT_FOUND` for a missing one. Department aggregates outside the scope return
//! `PERMISSION_DENIED`, which the denial layer records.

use std::time::Duration;

use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, Condition, EntityTrait, QueryFilter};
use trace_proto::inspection::v1::FindingReadDenied;
use trace_runtime::context::CallContext;
use trace_runtime::event::pack;
use trace_runtime::read_scope::GuardedRead;
use trace_runtime::{ServiceError, ServiceResult};

use super::InspectionHandler;
use super::findings::{find_finding, lock_finding};
use crate::entity::finding;
use crate::events::{self, FINDING, SERVICE, Staged};
use crate::read_scope::{
    FindingParties, FindingScope, ReadScope, may_read_department, may_read_finding,
};

/// Description of the callers who read a finding, which ends the denial message.
const READERS: &str = "\
    a finding is read by the user who recorded it, the person responsible for its \
    rectification and the users who assigned or verified it, by supervisors and heads of \
    its department, and by the administration, audit and system roles";

/// Attempts at recording a denied read before a concurrent change of the same finding
/// fails the call with `ABORTED`.
const DENIAL_ATTEMPTS: u32 = 3;

/// Describes the `GetFinding` read of `finding_id` for the denial message and event.
fn guarded(finding_id: &str) -> GuardedRead<'_> {
    GuardedRead {
        service: SERVICE,
        grpc_service: "trace.inspection.v1.InspectionService",
        method: "GetFinding",
        record: "finding",
        record_id: finding_id,
        readers: READERS,
    }
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
fn parties(row: &finding::Model) -> FindingParties<'_> {
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

    /// Loads the finding `finding_id` when the caller may read it. Otherwise records the
    /// denial and returns `PERMISSION_DENIED`, for a missing finding as well unless the
    /// caller reads every finding, who gets `NOT_FOUND`.
    pub(super) async fn authorize_finding_read(
        &self,
        context: &CallContext,
        finding_id: &str,
    ) -> ServiceResult<finding::Model> {
        let scope = self.finding_scope(context);
        let found = find_finding(&self.db, finding_id).await;
        if scope.is_whole() {
            // A caller who reads every finding learns nothing from NOT_FOUND.
            return found;
        }
        let row = match found {
            Ok(row) => row,
            Err(ServiceError::NotFound { .. }) => {
                return Err(guarded(finding_id)
                    .deny_missing(&self.outbox, context)
                    .await);
            }
            Err(error) => return Err(error),
        };
        if may_read_finding(&scope, &parties(&row)) {
            return Ok(row);
        }
        Err(self.deny_existing(context, &row).await)
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

    /// Records a denied read of an existing finding as its `read_denied` event.
    async fn deny_existing(&self, context: &CallContext, row: &finding::Model) -> ServiceError {
        let user_id = &context.principal.user_id;
        let payload = FindingReadDenied {
            method: "GetFinding".to_owned(),
            reason: format!(
                "{user_id} did not record the finding, is not responsible for its \
                 rectification, did not assign or verify it, and is not a supervisor or head \
                 of its department '{}'",
                row.department
            ),
        };
        let recorded = self.record_read_denied(context, &row.id, &payload).await;
        guarded(&row.id).denial_error(context, recorded)
    }

    /// Stages the `read_denied` event of `finding_id` at the next entity version and returns
    /// its event id. The update checks the loaded version and retries on a conflict, so this
    /// event does not reuse a version that a write committed in between.
    async fn record_read_denied(
        &self,
        context: &CallContext,
        finding_id: &str,
        payload: &FindingReadDenied,
    ) -> ServiceResult<String> {
        for attempt in 1..=DENIAL_ATTEMPTS {
            let transaction = trace_runtime::db::begin_write(&self.db).await?;
            let loaded = lock_finding(&transaction, finding_id).await?;
            let version = loaded.entity_version + 1;
            let moved = finding::Entity::update_many()
                .col_expr(finding::Column::EntityVersion, Expr::value(version))
                .filter(finding::Column::Id.eq(finding_id))
                .filter(finding::Column::EntityVersion.eq(loaded.entity_version))
                .exec(&transaction)
                .await?;
            if moved.rows_affected == 1 {
                let staged = Staged {
                    entity_type: FINDING,
                    entity_id: finding_id,
                    entity_version: version,
                    action: "read_denied",
                    payload: pack(payload),
                };
                let event_id = events::stage_returning_id(
                    &self.outbox,
                    &transaction,
                    context,
                    self.clock.as_ref(),
                    staged,
                )
                .await?;
                self.commit(transaction).await?;
                return Ok(event_id);
            }
            transaction.rollback().await?;
            tracing::warn!(
                finding_id,
                attempt,
                "finding changed while recording a denied read, retrying"
            );
            tokio::time::sleep(Duration::from_millis(10 * u64::from(attempt))).await;
        }
        Err(ServiceError::Aborted {
            reason: format!(
                "recording the denied read of finding {finding_id} conflicted with concurrent \
                 changes {DENIAL_ATTEMPTS} times. Retry the call"
            ),
        })
    }
}
