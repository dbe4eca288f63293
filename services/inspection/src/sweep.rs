//! The rule sweep: generates the daily report obligations that are due and raises a finding,
//! with its `recorded` event, for every open obligation past its due time.

use chrono::{Duration, NaiveDate};
use sea_orm::ActiveValue::Set;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, IntoActiveModel, QueryFilter,
    QueryOrder, QuerySelect,
};
use trace_proto::inspection::v1 as proto;
use trace_runtime::ServiceResult;
use trace_runtime::clock::{date_key, from_micros, local_date};
use trace_runtime::context::CallContext;
use trace_runtime::event::pack;
use trace_runtime::sealed_text::SealedRow;

use crate::entity::{cursor, finding, obligation};
use crate::events::{self, FINDING, SERVICE, Staged};
use crate::rules::{self, GapState, Obligation, Reference, RuleKind};
use crate::store::{RuleEngine, save_if_state, state_of};

/// Obligations raised per sweep at most; the next sweep continues.
const MAX_RAISED_PER_SWEEP: u64 = 1000;

/// Days of daily report obligations generated per sweep at most; the next sweep continues.
const MAX_DAYS_PER_SWEEP: i64 = 400;

/// Cursor name of the last day with generated daily report obligations.
const DAILY_CURSOR: &str = "daily_report_obligations";

/// Counts of one sweep.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepOutcome {
    pub raised: u32,
    pub generated: u32,
    /// Findings raised per rule, in the order of [`RuleKind::ALL`].
    pub raised_by_rule: [u32; RuleKind::ALL.len()],
}

impl RuleEngine {
    /// Generates due daily report obligations and raises a finding for every open obligation
    /// past its due time whose rule is enabled.
    pub async fn sweep<C: ConnectionTrait>(&self, connection: &C) -> ServiceResult<SweepOutcome> {
        let now = self.clock.now();
        let generated = self
            .generate_daily(connection, local_date(now, self.zone))
            .await?;

        let due = obligation::Entity::find()
            .filter(obligation::Column::State.eq(GapState::Open.name()))
            .filter(obligation::Column::DueAt.lte(now.timestamp_micros()))
            .order_by_asc(obligation::Column::DueAt)
            .order_by_asc(obligation::Column::Id)
            .limit(MAX_RAISED_PER_SWEEP)
            .all(connection)
            .await?;
        let mut raised = 0;
        let mut raised_by_rule = [0; RuleKind::ALL.len()];
        for row in due {
            let Some(rule) = RuleKind::from_name(&row.rule) else {
                continue;
            };
            let enabled = self.rules.get(rule).enabled;
            let due = rules::fires(state_of(&row), from_micros(row.due_at), now, enabled);
            if due && self.raise(connection, rule, row).await? {
                raised += 1;
                if let Some(index) = RuleKind::ALL.iter().position(|kind| *kind == rule) {
                    raised_by_rule[index] += 1;
                }
            }
        }
        Ok(SweepOutcome {
            raised,
            generated,
            raised_by_rule,
        })
    }

    async fn generate_daily<C: ConnectionTrait>(
        &self,
        connection: &C,
        today: NaiveDate,
    ) -> ServiceResult<u32> {
        let stored = cursor::Entity::find_by_id(DAILY_CURSOR.to_owned())
            .one(connection)
            .await?;
        let first = match &stored {
            Some(row) => i32::try_from(row.value)
                .ok()
                .and_then(trace_runtime::clock::date_from_key)
                .and_then(|date| date.succ_opt()),
            None => Some(self.daily_reports_from.unwrap_or(today)),
        };
        let Some(first) = first else {
            return Ok(0);
        };
        let last = today.min(first + Duration::days(MAX_DAYS_PER_SWEEP - 1));
        if first > last {
            return Ok(0);
        }

        let employees = self.employees();
        let grace = self.rules.daily_report.grace();
        let mut generated = 0;
        for date in first.iter_days().take_while(|date| *date <= last) {
            let due = rules::daily_obligations(&self.calendar, &employees, date, self.zone, grace);
            for obligation in due {
                if self.expect(connection, &obligation, None).await? {
                    generated += 1;
                }
            }
        }
        save_cursor(connection, stored, i64::from(date_key(last))).await?;
        Ok(generated)
    }

    fn employees(&self) -> Vec<rules::Employee> {
        self.directory
            .employees()
            .map(|employee| rules::Employee {
                user_id: employee.id.clone(),
                department: employee.department.clone(),
            })
            .collect()
    }

    /// Marks the obligation fired and raises its finding. Returns false, raising nothing,
    /// when a concurrent consumer batch changed the obligation first.
    async fn raise<C: ConnectionTrait>(
        &self,
        connection: &C,
        rule: RuleKind,
        row: obligation::Model,
    ) -> ServiceResult<bool> {
        let finding = self.rule_finding(rule, &row);
        let mut active = row.clone().into_active_model();
        active.state = Set(GapState::Fired.name().to_owned());
        active.finding_id = Set(Some(finding.id.clone()));
        if !save_if_state(connection, &row.id, GapState::Open, active).await? {
            return Ok(false);
        }
        let stored = finding
            .clone()
            .sealed(&self.keyring, finding.confidentiality);
        finding::Entity::insert(stored.into_active_model())
            .exec_without_returning(connection)
            .await?;

        let payload = proto::FindingRecorded {
            finding: Some(crate::convert::finding(&finding)),
        };
        let staged = Staged {
            entity_type: FINDING,
            entity_id: &finding.id,
            entity_version: 1,
            action: "recorded",
            confidentiality: finding.confidentiality,
            payload: pack(&payload),
        };
        let context = CallContext::system(SERVICE);
        events::stage(
            &self.outbox,
            connection,
            &context,
            self.clock.as_ref(),
            staged,
        )
        .await?;
        Ok(true)
    }

    fn rule_finding(&self, rule: RuleKind, row: &obligation::Model) -> finding::Model {
        let obligation = Obligation {
            rule,
            gap_key: row.gap_key.clone(),
            department: row.department.clone(),
            entity_type: row.entity_type.clone(),
            entity_id: row.entity_id.clone(),
            expected_on: trace_runtime::clock::date_from_key(row.expected_on).unwrap_or_default(),
            due_at: from_micros(row.due_at),
            uncalendared: row.uncalendared,
        };
        let reference = Reference {
            ledger_sequence: 0,
            event_id: row.opened_event_id.clone(),
            stream_sequence: u64::try_from(row.opened_stream_sequence).unwrap_or_default(),
            entity_type: row.entity_type.clone(),
            entity_id: row.entity_id.clone(),
        };
        finding::Model {
            id: uuid::Uuid::now_v7().to_string(),
            inspection_id: None,
            rule: Some(rule.name().to_owned()),
            severity: self.rules.get(rule).severity.name().to_owned(),
            department: row.department.clone(),
            description: rule.describe(&obligation),
            references: crate::convert::to_json(&[reference]),
            state: "OPEN".to_owned(),
            recorded_by: format!("system:{SERVICE}"),
            recorded_at: self.clock.now().timestamp_micros(),
            measures: None,
            responsible_id: None,
            deadline: None,
            assigned_by: None,
            assigned_at: None,
            result: None,
            result_submitted_at: None,
            verdict: None,
            verification_opinion: None,
            verified_by: None,
            verified_at: None,
            closing_event_id: None,
            closed_at: None,
            entity_version: 1,
            confidentiality: row.confidentiality,
        }
    }
}

async fn save_cursor<C: ConnectionTrait>(
    connection: &C,
    stored: Option<cursor::Model>,
    value: i64,
) -> ServiceResult<()> {
    match stored {
        Some(row) => {
            let mut active = row.into_active_model();
            active.value = Set(value);
            active.update(connection).await?;
        }
        None => {
            let row = cursor::ActiveModel {
                name: Set(DAILY_CURSOR.to_owned()),
                value: Set(value),
            };
            cursor::Entity::insert(row)
                .exec_without_returning(connection)
                .await?;
        }
    }
    Ok(())
}
