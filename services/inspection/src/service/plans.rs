//! Inspection plans, the periodic inspections they open, and unannounced spot checks.

use chrono::{Datelike, Months, NaiveDate};
use sea_orm::{EntityTrait, IntoActiveModel};
use trace_proto::common::v1::Confidentiality;
use trace_proto::inspection::v1::*;
use trace_runtime::clock::date_key;
use trace_runtime::context::{CallContext, role};
use trace_runtime::event::pack;
use trace_runtime::{ServiceError, ServiceResult, validate};

use super::{InspectionHandler, record_id, require_administration, require_role};
use crate::convert::{self, short_name, to_json};
use crate::entity::{inspection, plan};
use crate::events::{INSPECTION, Staged};

/// Maximum number of departments in a plan, spot check or distribution.
const MAX_DEPARTMENTS: usize = 50;

/// Maximum number of record ids a spot check targets.
const MAX_RECORD_IDS: usize = 100;

impl InspectionHandler {
    /// Checks a list of department ids: 1 to 50, each listed once and, when the directory
    /// lists departments, known to it.
    pub(super) fn departments(&self, field: &str, values: &[String]) -> ServiceResult<Vec<String>> {
        if values.is_empty() || values.len() > MAX_DEPARTMENTS {
            return Err(ServiceError::invalid(
                field,
                &values.len().to_string(),
                format!("must list 1 to {MAX_DEPARTMENTS} departments"),
            ));
        }
        let mut checked: Vec<String> = Vec::with_capacity(values.len());
        for (index, value) in values.iter().enumerate() {
            let item = format!("{field}[{index}]");
            let department = validate::department(&item, value)?;
            if checked.contains(&department) {
                return Err(ServiceError::invalid(item, value, "is listed twice"));
            }
            self.check_known_department(&item, &department)?;
            checked.push(department);
        }
        Ok(checked)
    }

    /// Fails when the directory lists departments and `department` is not one of them.
    pub(super) fn check_known_department(
        &self,
        field: &str,
        department: &str,
    ) -> ServiceResult<()> {
        let listed = self.directory.departments().next().is_some();
        if listed && self.directory.department(department).is_none() {
            return Err(ServiceError::invalid(
                field,
                department,
                "is not a department in the company directory",
            ));
        }
        Ok(())
    }

    pub(super) async fn create_plan(
        &self,
        context: &CallContext,
        request: CreateInspectionPlanRequest,
    ) -> ServiceResult<CreateInspectionPlanResponse> {
        require_administration(context, "creating an inspection plan")?;
        let name = validate::line("name", request.name.trim(), 1, 200)?;
        let cycle: Cycle = validate::enum_value("cycle", request.cycle)?;
        let departments = self.departments("departments", &request.departments)?;
        let processes = processes(&request.processes)?;

        let row = plan::Model {
            id: uuid::Uuid::now_v7().to_string(),
            name,
            cycle: short_name(cycle.as_str_name(), "CYCLE_"),
            departments: to_json(&departments),
            processes: to_json(&processes),
            created_by: context.principal.user_id.clone(),
            created_at: self.now(),
            entity_version: 1,
        };
        let plan = convert::plan(&row);
        let transaction = trace_runtime::db::begin_write(&self.db).await?;
        plan::Entity::insert(row.clone().into_active_model())
            .exec_without_returning(&transaction)
            .await?;
        let payload = PlanCreated {
            plan: Some(plan.clone()),
        };
        let staged = Staged {
            entity_type: INSPECTION,
            entity_id: &row.id,
            entity_version: 1,
            action: "plan_created",
            confidentiality: Staged::INTERNAL,
            payload: pack(&payload),
        };
        self.stage(&transaction, context, staged).await?;
        self.commit(transaction).await?;
        Ok(CreateInspectionPlanResponse { plan: Some(plan) })
    }

    pub(super) async fn open_period(
        &self,
        context: &CallContext,
        request: OpenInspectionRequest,
    ) -> ServiceResult<OpenInspectionResponse> {
        require_administration(context, "opening an inspection")?;
        let plan_id = record_id("plan_id", &request.plan_id)?;
        let start = validate::date("period_start", request.period_start.as_ref())?;

        let transaction = trace_runtime::db::begin_write(&self.db).await?;
        let plan = plan::Entity::find_by_id(plan_id.clone())
            .one(&transaction)
            .await?
            .ok_or_else(|| ServiceError::not_found("inspection plan", &plan_id))?;
        let end = period_end(&plan.cycle, start)?;
        let opened = inspection::Entity::find()
            .filter_by_period(&plan_id, date_key(start))
            .one(&transaction)
            .await?;
        if let Some(opened) = opened {
            return Err(ServiceError::wrong_state(
                "inspection plan",
                &plan_id,
                format!("already OPEN for {start} as inspection {}", opened.id),
                "open a period of",
            ));
        }

        let row = new_inspection(
            context,
            self.now(),
            "PERIODIC",
            plan.departments,
            plan.processes,
        );
        let row = inspection::Model {
            plan_id: Some(plan_id),
            period_start: Some(date_key(start)),
            period_end: Some(date_key(end)),
            ..row
        };
        let inspection = self
            .insert_inspection(&transaction, context, row, "opened")
            .await?;
        self.commit(transaction).await?;
        Ok(OpenInspectionResponse {
            inspection: Some(inspection),
        })
    }

    pub(super) async fn order_check(
        &self,
        context: &CallContext,
        request: OrderSpotCheckRequest,
    ) -> ServiceResult<OrderSpotCheckResponse> {
        require_role(
            context,
            &[role::DEPARTMENT_HEAD, role::ADMINISTRATION],
            "ordering a spot check",
        )?;
        let departments = self.departments("departments", &request.departments)?;
        let processes = processes(&request.processes)?;
        let record_ids = record_ids(&request.record_ids)?;
        let method: SpotCheckMethod = validate::enum_value("method", request.method)?;

        let row = new_inspection(
            context,
            self.now(),
            "SPOT_CHECK",
            to_json(&departments),
            to_json(&processes),
        );
        let row = inspection::Model {
            record_ids: to_json(&record_ids),
            method: Some(short_name(method.as_str_name(), "SPOT_CHECK_METHOD_")),
            ..row
        };
        let transaction = trace_runtime::db::begin_write(&self.db).await?;
        let inspection = self
            .insert_inspection(&transaction, context, row, "spot_check_ordered")
            .await?;
        self.commit(transaction).await?;
        Ok(OrderSpotCheckResponse {
            inspection: Some(inspection),
        })
    }

    async fn insert_inspection(
        &self,
        transaction: &sea_orm::DatabaseTransaction,
        context: &CallContext,
        row: inspection::Model,
        action: &'static str,
    ) -> ServiceResult<Inspection> {
        inspection::Entity::insert(row.clone().into_active_model())
            .exec_without_returning(transaction)
            .await?;
        let inspection = convert::inspection(&row);
        let payload = if action == "opened" {
            pack(&InspectionOpened {
                inspection: Some(inspection.clone()),
            })
        } else {
            pack(&SpotCheckOrdered {
                inspection: Some(inspection.clone()),
            })
        };
        let staged = Staged {
            entity_type: INSPECTION,
            entity_id: &row.id,
            entity_version: 1,
            action,
            confidentiality: Staged::INTERNAL,
            payload,
        };
        self.stage(transaction, context, staged).await?;
        Ok(inspection)
    }
}

/// Filter of the inspection of one plan period.
trait FilterByPeriod {
    fn filter_by_period(self, plan_id: &str, period_start: i32) -> Self;
}

impl FilterByPeriod for sea_orm::Select<inspection::Entity> {
    fn filter_by_period(self, plan_id: &str, period_start: i32) -> Self {
        use sea_orm::{ColumnTrait, QueryFilter};
        self.filter(inspection::Column::PlanId.eq(plan_id))
            .filter(inspection::Column::PeriodStart.eq(period_start))
    }
}

fn new_inspection(
    context: &CallContext,
    now: i64,
    kind: &str,
    departments: String,
    processes: String,
) -> inspection::Model {
    inspection::Model {
        id: uuid::Uuid::now_v7().to_string(),
        kind: kind.to_owned(),
        plan_id: None,
        period_start: None,
        period_end: None,
        departments,
        processes,
        record_ids: "[]".to_owned(),
        method: None,
        ordered_by: context.principal.user_id.clone(),
        opened_at: now,
        report_state: None,
        findings_summary: None,
        suggestions: None,
        report_finding_ids: None,
        drafted_by: None,
        reviewed_by: None,
        review_opinion: None,
        report_confidentiality: Confidentiality::Internal as i32,
        entity_version: 1,
    }
}

/// Checks a list of processes: 1 to 4, each listed once.
fn processes(values: &[i32]) -> ServiceResult<Vec<i32>> {
    if values.is_empty() || values.len() > 4 {
        return Err(ServiceError::invalid(
            "processes",
            &values.len().to_string(),
            "must list 1 to 4 processes",
        ));
    }
    let mut checked = Vec::with_capacity(values.len());
    for (index, value) in values.iter().enumerate() {
        let field = format!("processes[{index}]");
        let process: Process = validate::enum_value(&field, *value)?;
        if checked.contains(&(process as i32)) {
            return Err(ServiceError::invalid(
                field,
                &value.to_string(),
                "is listed twice",
            ));
        }
        checked.push(process as i32);
    }
    Ok(checked)
}

/// Checks the record ids of a spot check: at most 100, each a single line of 1 to 64
/// characters.
fn record_ids(values: &[String]) -> ServiceResult<Vec<String>> {
    if values.len() > MAX_RECORD_IDS {
        return Err(ServiceError::invalid(
            "record_ids",
            &values.len().to_string(),
            format!("must list at most {MAX_RECORD_IDS} records"),
        ));
    }
    values
        .iter()
        .enumerate()
        .map(|(index, value)| validate::line(&format!("record_ids[{index}]"), value, 1, 64))
        .collect()
}

/// Returns the last day of the period that starts on `start`, checking that `start` begins
/// a month or quarter as the cycle requires.
fn period_end(cycle: &str, start: NaiveDate) -> ServiceResult<NaiveDate> {
    let months = if cycle == "QUARTERLY" { 3 } else { 1 };
    let aligned = start.day() == 1 && (months == 1 || (start.month() - 1).is_multiple_of(3));
    if !aligned {
        let reason = if months == 3 {
            "must be the first day of January, April, July or October for a quarterly plan"
        } else {
            "must be the first day of a month for a monthly plan"
        };
        return Err(ServiceError::invalid(
            "period_start",
            &start.to_string(),
            reason,
        ));
    }
    start
        .checked_add_months(Months::new(months))
        .and_then(|next| next.pred_opt())
        .ok_or_else(|| ServiceError::invalid("period_start", &start.to_string(), "is out of range"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(year: i32, month: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(year, month, day).unwrap()
    }

    #[test]
    fn period_end_follows_the_cycle() {
        assert_eq!(
            period_end("MONTHLY", date(2026, 2, 1)).unwrap(),
            date(2026, 2, 28)
        );
        assert_eq!(
            period_end("QUARTERLY", date(2026, 10, 1)).unwrap(),
            date(2026, 12, 31)
        );
    }

    #[test]
    fn misaligned_period_names_the_field() {
        let error = period_end("QUARTERLY", date(2026, 11, 1)).unwrap_err();

        assert!(error.to_string().contains("period_start"), "{error}");
        assert!(period_end("MONTHLY", date(2026, 11, 2)).is_err());
    }
}
