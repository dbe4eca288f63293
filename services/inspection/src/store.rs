//! The rule engine's database side: applies observations from consumed events to the rule
//! state; [`crate::sweep`] raises findings for gaps. Every function works inside the caller's write
//! transaction, so the rule state, the findings and their events commit together.

use std::sync::Arc;

use chrono::NaiveDate;
use chrono_tz::Tz;
use sea_orm::ActiveValue::Set;
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, IntoActiveModel, QueryFilter,
    QuerySelect,
};
use trace_proto::event::v1::Envelope;
use trace_proto::inspection::v1 as proto;
use trace_runtime::clock::{SharedClock, date_key};
use trace_runtime::context::CallContext;
use trace_runtime::directory::Directory;
use trace_runtime::event::pack;
use trace_runtime::outbox::Outbox;
use trace_runtime::seal::Keyring;
use trace_runtime::{ServiceError, ServiceResult};

use crate::calendar::WorkCalendar;
use crate::config::RuleTable;
use crate::entity::{finding, fulfilment, obligation, processed_event};
use crate::events::{self, FINDING, SERVICE, Staged};
use crate::observe::{EventMeta, Observation, Observer};
use crate::rules::{self, GapState, Obligation, RuleKind};

/// Rule state and everything the rules need.
#[derive(Debug, Clone)]
pub struct RuleEngine {
    pub directory: Arc<Directory>,
    pub calendar: Arc<WorkCalendar>,
    pub zone: Tz,
    pub rules: RuleTable,
    /// First day daily reports are expected; `None` starts at the first sweep.
    pub daily_reports_from: Option<NaiveDate>,
    pub outbox: Outbox,
    pub clock: SharedClock,
    /// Seals the free text of the CONFIDENTIAL and SECRET findings that rules raise.
    pub keyring: Keyring,
}

impl RuleEngine {
    fn observer(&self) -> Observer<'_> {
        Observer {
            directory: &self.directory,
            zone: self.zone,
            rules: &self.rules,
        }
    }

    /// Applies one consumed event and keeps its id, level and entity in `processed_events`.
    /// Returns false when the event id was applied before, in which case nothing changes.
    // NOTE: every consumed event id is kept, including events no rule reads, and nothing
    // prunes `processed_events` yet, so the table grows with the whole trace stream.
    pub async fn apply_event<C: ConnectionTrait>(
        &self,
        connection: &C,
        envelope: &Envelope,
        stream_sequence: u64,
    ) -> ServiceResult<bool> {
        let seen = processed_event::Entity::find_by_id(envelope.event_id.clone())
            .one(connection)
            .await?;
        if seen.is_some() {
            return Ok(false);
        }
        let meta = EventMeta::of(envelope, stream_sequence);
        let row = processed_event::ActiveModel {
            event_id: Set(envelope.event_id.clone()),
            stream_sequence: Set(sequence(stream_sequence)),
            processed_at: Set(self.clock.now().timestamp_micros()),
            confidentiality: Set(meta.confidentiality),
            entity_type: Set(meta.entity_type.clone()),
            entity_id: Set(meta.entity_id.clone()),
        };
        processed_event::Entity::insert(row)
            .exec_without_returning(connection)
            .await?;

        for observation in self.observer().observe(envelope, &meta) {
            self.apply(connection, observation, &meta).await?;
        }
        Ok(true)
    }

    async fn apply<C: ConnectionTrait>(
        &self,
        connection: &C,
        observation: Observation,
        meta: &EventMeta,
    ) -> ServiceResult<()> {
        match observation {
            Observation::Expect(obligation) => {
                self.expect(connection, &obligation, Some(meta)).await?;
            }
            Observation::Fulfil { rule, gap_key } => {
                self.fulfil(connection, rule, &gap_key, meta).await?;
            }
            Observation::Reschedule {
                rule,
                gap_key,
                due_at,
                expected_on,
                excuses_gap,
            } => {
                let Some(row) = find_obligation(connection, rule, &gap_key).await? else {
                    return Ok(());
                };
                let transition = rules::after_reschedule(state_of(&row), excuses_gap);
                let mut active = row.clone().into_active_model();
                if state_of(&row) == GapState::Open {
                    active.due_at = Set(due_at.timestamp_micros());
                    active.expected_on = Set(date_key(expected_on));
                    // The gap is now also about the rescheduling event.
                    active.confidentiality = Set(row.confidentiality.max(meta.confidentiality));
                }
                self.finish(connection, row, active, transition, meta)
                    .await?;
            }
            Observation::Cancel { rule, gap_key } => {
                let Some(row) = find_obligation(connection, rule, &gap_key).await? else {
                    return Ok(());
                };
                let transition = rules::after_cancellation(state_of(&row));
                let active = row.clone().into_active_model();
                self.finish(connection, row, active, transition, meta)
                    .await?;
            }
        }
        Ok(())
    }

    /// Tracks an obligation unless its (rule, gap key) is tracked already; one whose record
    /// arrived before it starts fulfilled. Returns true when a row was inserted.
    pub(crate) async fn expect<C: ConnectionTrait>(
        &self,
        connection: &C,
        obligation: &Obligation,
        opened_by: Option<&EventMeta>,
    ) -> ServiceResult<bool> {
        let earlier = fulfilment::Entity::find()
            .filter(fulfilment::Column::Rule.eq(obligation.rule.name()))
            .filter(fulfilment::Column::GapKey.eq(&obligation.gap_key))
            .one(connection)
            .await?;
        let state = if earlier.is_some() {
            GapState::Fulfilled
        } else {
            GapState::Open
        };
        let row = obligation::ActiveModel {
            id: Set(uuid::Uuid::now_v7().to_string()),
            rule: Set(obligation.rule.name().to_owned()),
            gap_key: Set(obligation.gap_key.clone()),
            department: Set(obligation.department.clone()),
            entity_type: Set(obligation.entity_type.clone()),
            entity_id: Set(obligation.entity_id.clone()),
            opened_event_id: Set(opened_by
                .map(|meta| meta.event_id.clone())
                .unwrap_or_default()),
            opened_stream_sequence: Set(opened_by.map_or(0, |meta| sequence(meta.stream_sequence))),
            expected_on: Set(date_key(obligation.expected_on)),
            due_at: Set(obligation.due_at.timestamp_micros()),
            state: Set(state.name().to_owned()),
            fulfilled_event_id: Set(earlier.as_ref().map(|row| row.event_id.clone())),
            fulfilled_stream_sequence: Set(earlier.as_ref().map(|row| row.stream_sequence)),
            fulfilled_at: Set(earlier.as_ref().map(|row| row.occurred_at)),
            finding_id: Set(None),
            uncalendared: Set(obligation.uncalendared),
            confidentiality: Set(opened_by.map_or(Staged::INTERNAL, |meta| meta.confidentiality)),
        };
        let conflict = OnConflict::columns([obligation::Column::Rule, obligation::Column::GapKey])
            .do_nothing()
            .to_owned();
        let inserted = obligation::Entity::insert(row)
            .on_conflict(conflict)
            .exec_without_returning(connection)
            .await?;
        Ok(inserted > 0)
    }

    /// Records the first record that satisfies (rule, gap key) and fulfils its obligation.
    async fn fulfil<C: ConnectionTrait>(
        &self,
        connection: &C,
        rule: RuleKind,
        gap_key: &str,
        meta: &EventMeta,
    ) -> ServiceResult<()> {
        let row = fulfilment::ActiveModel {
            rule: Set(rule.name().to_owned()),
            gap_key: Set(gap_key.to_owned()),
            event_id: Set(meta.event_id.clone()),
            stream_sequence: Set(sequence(meta.stream_sequence)),
            occurred_at: Set(meta.occurred_at.timestamp_micros()),
            ..Default::default()
        };
        let conflict = OnConflict::columns([fulfilment::Column::Rule, fulfilment::Column::GapKey])
            .do_nothing()
            .to_owned();
        fulfilment::Entity::insert(row)
            .on_conflict(conflict)
            .exec_without_returning(connection)
            .await?;

        let Some(row) = find_obligation(connection, rule, gap_key).await? else {
            return Ok(());
        };
        let transition = rules::after_fulfilment(state_of(&row));
        let active = row.clone().into_active_model();
        self.finish(connection, row, active, transition, meta).await
    }

    /// Saves a transition; a state change records the causing event, and a closed gap
    /// closes its finding.
    async fn finish<C: ConnectionTrait>(
        &self,
        connection: &C,
        row: obligation::Model,
        mut active: obligation::ActiveModel,
        transition: rules::Transition,
        cause: &EventMeta,
    ) -> ServiceResult<()> {
        let changed = transition.state != state_of(&row);
        if changed {
            active.state = Set(transition.state.name().to_owned());
            if matches!(transition.state, GapState::Fulfilled | GapState::Closed) {
                active.fulfilled_event_id = Set(Some(cause.event_id.clone()));
                active.fulfilled_stream_sequence = Set(Some(sequence(cause.stream_sequence)));
                active.fulfilled_at = Set(Some(cause.occurred_at.timestamp_micros()));
            }
        }
        if !save_if_state(connection, &row.id, state_of(&row), active).await? {
            return Err(ServiceError::Aborted {
                reason: format!("obligation {} changed concurrently; retry", row.id),
            });
        }

        if transition.closes_finding
            && let Some(finding_id) = &row.finding_id
        {
            self.close_finding(connection, finding_id, &row, cause)
                .await?;
        }
        Ok(())
    }

    /// Closes a rule finding whose gap closed, with a `finding_closed` event naming the
    /// closing event. Verified and closed findings stay as they are.
    async fn close_finding<C: ConnectionTrait>(
        &self,
        connection: &C,
        finding_id: &str,
        obligation: &obligation::Model,
        closing: &EventMeta,
    ) -> ServiceResult<()> {
        // Locked on PostgreSQL until the transaction ends, as every finding write does.
        let Some(row) = finding::Entity::find_by_id(finding_id.to_owned())
            .lock_exclusive()
            .one(connection)
            .await?
        else {
            return Ok(());
        };
        if matches!(row.state.as_str(), "VERIFIED" | "CLOSED") {
            return Ok(());
        }
        let version = row.entity_version + 1;
        let confidentiality = row.confidentiality;
        let mut active = row.into_active_model();
        active.state = Set("CLOSED".to_owned());
        active.closing_event_id = Set(Some(closing.event_id.clone()));
        active.closed_at = Set(Some(self.clock.now().timestamp_micros()));
        active.entity_version = Set(version);
        active.update(connection).await?;

        let rule =
            RuleKind::from_name(&obligation.rule).map_or(proto::Rule::Unspecified, RuleKind::proto);
        let payload = proto::FindingClosed {
            rule: rule as i32,
            closing_event_id: closing.event_id.clone(),
            closing_stream_sequence: closing.stream_sequence,
        };
        let staged = Staged {
            entity_type: FINDING,
            entity_id: finding_id,
            entity_version: version,
            action: "finding_closed",
            confidentiality,
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
        .await
    }
}

async fn find_obligation<C: ConnectionTrait>(
    connection: &C,
    rule: RuleKind,
    gap_key: &str,
) -> ServiceResult<Option<obligation::Model>> {
    Ok(obligation::Entity::find()
        .filter(obligation::Column::Rule.eq(rule.name()))
        .filter(obligation::Column::GapKey.eq(gap_key))
        .one(connection)
        .await?)
}

/// Saves `active` only while the stored state is still `expected`, so that a consumer batch
/// and a sweep running at once on PostgreSQL cannot overwrite a transition the other made.
/// Returns false when the state changed meanwhile.
pub(crate) async fn save_if_state<C: ConnectionTrait>(
    connection: &C,
    obligation_id: &str,
    expected: GapState,
    active: obligation::ActiveModel,
) -> ServiceResult<bool> {
    let result = obligation::Entity::update_many()
        .set(active)
        .filter(obligation::Column::Id.eq(obligation_id))
        .filter(obligation::Column::State.eq(expected.name()))
        .exec(connection)
        .await?;
    Ok(result.rows_affected == 1)
}

pub(crate) fn state_of(row: &obligation::Model) -> GapState {
    GapState::from_name(&row.state).unwrap_or(GapState::Cancelled)
}

/// Converts a stream sequence to the stored form; sequences beyond `i64::MAX` cannot occur.
pub(crate) fn sequence(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}
