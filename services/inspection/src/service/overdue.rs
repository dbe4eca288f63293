//! Reports of rectifications past their deadline: one `rectification_overdue` event per
//! finding and deadline, from the `CheckOverdue` call and from the background sweep.

use chrono::NaiveDate;
use sea_orm::ActiveValue::Set;
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, IntoActiveModel, QueryFilter,
    QueryOrder, QuerySelect,
};
use trace_proto::inspection::v1::*;
use trace_runtime::ServiceResult;
use trace_runtime::clock::{Clock, date_from_key, date_key, proto_date};
use trace_runtime::context::{CallContext, role};
use trace_runtime::event::pack;
use trace_runtime::outbox::Outbox;
use trace_runtime::{ServiceError, validate};

use super::{InspectionHandler, require_role};
use crate::entity::{finding, overdue_report};
use crate::events::{self, FINDING, Staged};

/// States in which a rectification awaits an accepted verification.
const UNVERIFIED: [&str; 3] = ["RECTIFYING", "RESULT_SUBMITTED", "REOPENED"];

/// Result of one overdue check.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OverdueOutcome {
    pub reported: Vec<String>,
    pub already_reported: u32,
}

/// Reports every unverified rectification whose deadline lies before `as_of`, once per
/// finding and deadline, inside `connection`'s transaction.
pub async fn check_overdue<C: ConnectionTrait>(
    connection: &C,
    outbox: &Outbox,
    clock: &dyn Clock,
    context: &CallContext,
    as_of: NaiveDate,
) -> ServiceResult<OverdueOutcome> {
    // Locked on PostgreSQL until the transaction ends, as every finding write does.
    let overdue = finding::Entity::find()
        .filter(finding::Column::State.is_in(UNVERIFIED))
        .filter(finding::Column::Deadline.lt(date_key(as_of)))
        .order_by_asc(finding::Column::Id)
        .lock_exclusive()
        .all(connection)
        .await?;
    let mut outcome = OverdueOutcome::default();
    for row in overdue {
        let Some(deadline) = row.deadline else {
            continue;
        };
        if mark_reported(connection, &row.id, deadline, as_of, clock).await? {
            outcome.reported.push(row.id.clone());
            stage_overdue(connection, outbox, clock, context, row, as_of).await?;
        } else {
            outcome.already_reported += 1;
        }
    }
    Ok(outcome)
}

/// Records that (finding, deadline) was reported; false when it was reported before.
async fn mark_reported<C: ConnectionTrait>(
    connection: &C,
    finding_id: &str,
    deadline: i32,
    as_of: NaiveDate,
    clock: &dyn Clock,
) -> ServiceResult<bool> {
    let row = overdue_report::ActiveModel {
        finding_id: Set(finding_id.to_owned()),
        deadline: Set(deadline),
        as_of: Set(date_key(as_of)),
        reported_at: Set(clock.now().timestamp_micros()),
        ..Default::default()
    };
    let conflict = OnConflict::columns([
        overdue_report::Column::FindingId,
        overdue_report::Column::Deadline,
    ])
    .do_nothing()
    .to_owned();
    let inserted = overdue_report::Entity::insert(row)
        .on_conflict(conflict)
        .exec_without_returning(connection)
        .await?;
    Ok(inserted > 0)
}

async fn stage_overdue<C: ConnectionTrait>(
    connection: &C,
    outbox: &Outbox,
    clock: &dyn Clock,
    context: &CallContext,
    row: finding::Model,
    as_of: NaiveDate,
) -> ServiceResult<()> {
    let payload = RectificationOverdue {
        responsible_id: row.responsible_id.clone().unwrap_or_default(),
        deadline: row.deadline.and_then(date_from_key).map(proto_date),
        as_of: Some(proto_date(as_of)),
        department: row.department.clone(),
    };
    let finding_id = row.id.clone();
    let confidentiality = row.confidentiality;
    let version = row.entity_version + 1;
    let mut active = row.into_active_model();
    active.entity_version = Set(version);
    active.update(connection).await?;

    let staged = Staged {
        entity_type: FINDING,
        entity_id: &finding_id,
        entity_version: version,
        action: "rectification_overdue",
        confidentiality,
        payload: pack(&payload),
    };
    events::stage(outbox, connection, context, clock, staged).await
}

impl InspectionHandler {
    pub(super) async fn report_overdue(
        &self,
        context: &CallContext,
        request: CheckOverdueRequest,
    ) -> ServiceResult<CheckOverdueResponse> {
        require_role(
            context,
            &[role::ADMINISTRATION, role::SYSTEM],
            "checking overdue rectifications",
        )?;
        let today = self.today();
        let as_of = match &request.as_of {
            Some(date) => validate::optional_date("as_of", date)?,
            None => today,
        };
        if as_of > today && !context.principal.has_role(role::SYSTEM) {
            return Err(ServiceError::denied(format!(
                "checking overdue rectifications as of {as_of}, after today {today}, needs the role system"
            )));
        }

        let transaction = trace_runtime::db::begin_write(&self.db).await?;
        let outcome = check_overdue(
            &transaction,
            &self.outbox,
            self.clock.as_ref(),
            context,
            as_of,
        )
        .await?;
        self.commit(transaction).await?;
        Ok(CheckOverdueResponse {
            reported_finding_ids: outcome.reported,
            already_reported: outcome.already_reported,
        })
    }
}
