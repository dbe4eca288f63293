//! Translates trace events into what the completeness rules observe: a record that becomes
//! expected, a record that arrived, a due time that moved, or a record no longer expected.
//! Payloads are recognised by their type name, so an event type this service does not know
//! yields nothing and is ignored.

use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use trace_proto::event::v1::Envelope;
use trace_proto::{document, inspection, meeting, project, worklog};
use trace_runtime::clock::local_date;
use trace_runtime::directory::Directory;

use crate::config::RuleTable;
use crate::rules::{self, Obligation, RuleKind};

/// A fact a rule learns from one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observation {
    /// A record becomes expected, unless the same (rule, gap key) is already tracked.
    Expect(Obligation),
    /// The expected record arrived.
    Fulfil { rule: RuleKind, gap_key: String },
    /// The due time moved; `excuses_gap` closes a finding already raised.
    Reschedule {
        rule: RuleKind,
        gap_key: String,
        due_at: DateTime<Utc>,
        expected_on: NaiveDate,
        excuses_gap: bool,
    },
    /// The record is no longer expected.
    Cancel { rule: RuleKind, gap_key: String },
}

/// The envelope fields the rules read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventMeta {
    pub event_id: String,
    pub stream_sequence: u64,
    pub occurred_at: DateTime<Utc>,
    pub entity_type: String,
    pub entity_id: String,
    pub actor_user_id: String,
    pub actor_department: String,
    /// Level of the event's record, the `trace.common.v1.Confidentiality` number; see
    /// [`event_level`].
    pub confidentiality: i32,
}

/// Returns the level a rule finding takes from an event at the envelope level
/// `confidentiality`. An envelope without a level counts as INTERNAL, the level events had
/// before levels were set, and an unknown number as SECRET.
pub fn event_level(confidentiality: i32) -> i32 {
    use trace_proto::common::v1::Confidentiality;
    match Confidentiality::try_from(confidentiality) {
        Ok(Confidentiality::Unspecified) => Confidentiality::Internal as i32,
        Ok(level) => level as i32,
        Err(_) => Confidentiality::Secret as i32,
    }
}

impl EventMeta {
    /// Reads the fields from an envelope delivered at `stream_sequence`.
    pub fn of(envelope: &Envelope, stream_sequence: u64) -> Self {
        let occurred_at = envelope
            .occurred_at
            .as_ref()
            .and_then(trace_runtime::clock::micros_from_timestamp)
            .map_or_else(DateTime::<Utc>::default, trace_runtime::clock::from_micros);
        let actor = envelope.actor.clone().unwrap_or_default();
        Self {
            event_id: envelope.event_id.clone(),
            stream_sequence,
            occurred_at,
            entity_type: envelope.entity_type.clone(),
            entity_id: envelope.entity_id.clone(),
            actor_user_id: actor.user_id,
            actor_department: actor.department,
            confidentiality: event_level(envelope.confidentiality),
        }
    }
}

/// Decodes events for the rules with the directory, business zone and rule settings.
#[derive(Debug, Clone, Copy)]
pub struct Observer<'a> {
    pub directory: &'a Directory,
    pub zone: Tz,
    pub rules: &'a RuleTable,
}

/// Decodes `payload` as `M` when its type name is `M`'s.
fn decode<M: prost::Name + Default>(payload: &prost_types::Any) -> Option<M> {
    let name = payload.type_url.rsplit('/').next()?;
    if name != M::full_name() {
        return None;
    }
    M::decode(payload.value.as_slice()).ok()
}

fn civil_date(date: Option<&trace_proto::common::v1::Date>) -> Option<NaiveDate> {
    trace_runtime::validate::date("date", date).ok()
}

impl Observer<'_> {
    /// Returns what the rules learn from one event; empty for events no rule reads.
    pub fn observe(&self, envelope: &Envelope, meta: &EventMeta) -> Vec<Observation> {
        let Some(payload) = &envelope.payload else {
            return Vec::new();
        };
        let mut found = self.documents(payload, meta);
        found.extend(self.meetings(payload, meta));
        found.extend(self.projects(payload, meta));
        found.extend(self.worklogs(payload, meta));
        found.extend(self.rectifications(payload, meta));
        found
    }

    fn documents(&self, payload: &prost_types::Any, meta: &EventMeta) -> Vec<Observation> {
        use document::v1 as document;

        if let Some(review) = decode::<document::DocumentReviewed>(payload) {
            if review.decision() == document::ReviewDecision::Approve {
                return vec![fulfil(RuleKind::DocumentReview, &meta.entity_id)];
            }
        } else if let Some(registered) = decode::<document::DocumentRegistered>(payload) {
            let department = non_empty(&registered.department, &meta.actor_department);
            return vec![self.expect_after_event(
                RuleKind::DocumentReview,
                &meta.entity_id,
                department,
                meta,
            )];
        } else if let Some(lent) = decode::<document::DocumentLent>(payload) {
            let Some(return_date) = civil_date(lent.expected_return_date.as_ref()) else {
                return Vec::new();
            };
            let department = self.department_of(&lent.borrower_id, meta);
            let rule = RuleKind::BorrowingReturn;
            return vec![self.expect_by_date(
                rule,
                &lent.borrowing_id,
                department,
                return_date,
                meta,
            )];
        } else if let Some(returned) = decode::<document::DocumentReturned>(payload) {
            return vec![fulfil(RuleKind::BorrowingReturn, &returned.borrowing_id)];
        } else if let Some(lost) = decode::<document::DocumentLost>(payload) {
            return vec![fulfil(RuleKind::BorrowingReturn, &lost.borrowing_id)];
        }
        Vec::new()
    }

    fn meetings(&self, payload: &prost_types::Any, meta: &EventMeta) -> Vec<Observation> {
        use meeting::v1 as meeting;

        let rule = RuleKind::MeetingMinutes;
        if let Some(planned) = decode::<meeting::MeetingPlanned>(payload) {
            let Some(end) = instant(planned.end_time.as_ref()) else {
                return Vec::new();
            };
            let department = self.department_of(&planned.organiser_id, meta);
            return vec![self.expect_after_instant(rule, &meta.entity_id, department, end, meta)];
        } else if let Some(revised) = decode::<meeting::MeetingPlanRevised>(payload) {
            let Some(end) = instant(revised.end_time.as_ref()) else {
                return Vec::new();
            };
            return vec![Observation::Reschedule {
                rule,
                gap_key: meta.entity_id.clone(),
                due_at: end + self.rules.get(rule).grace(),
                expected_on: local_date(end, self.zone),
                excuses_gap: false,
            }];
        } else if decode::<meeting::MeetingCancelled>(payload).is_some() {
            return vec![Observation::Cancel {
                rule,
                gap_key: meta.entity_id.clone(),
            }];
        } else if let Some(minutes) = decode::<meeting::MinutesRecorded>(payload) {
            let mut found = vec![fulfil(rule, &meta.entity_id)];
            for resolution in &minutes.resolutions {
                found.extend(self.expect_resolution(
                    &resolution.resolution_id,
                    &resolution.owner_id,
                    resolution.due_date.as_ref(),
                    meta,
                ));
            }
            return found;
        }
        self.resolutions(payload, meta)
    }

    fn resolutions(&self, payload: &prost_types::Any, meta: &EventMeta) -> Vec<Observation> {
        use meeting::v1 as meeting;

        let rule = RuleKind::ResolutionDue;
        if let Some(created) = decode::<meeting::ResolutionCreated>(payload) {
            return self
                .expect_resolution(
                    &meta.entity_id,
                    &created.owner_id,
                    created.due_date.as_ref(),
                    meta,
                )
                .into_iter()
                .collect();
        } else if let Some(decided) = decode::<meeting::DelayDecided>(payload) {
            let approved = decided
                .delay
                .as_ref()
                .is_some_and(|delay| delay.state() == meeting::DelayState::Approved);
            let Some(due_date) = civil_date(decided.due_date.as_ref()) else {
                return Vec::new();
            };
            if approved {
                return vec![Observation::Reschedule {
                    rule,
                    gap_key: meta.entity_id.clone(),
                    due_at: rules::due_after_date(
                        due_date,
                        self.zone,
                        self.rules.get(rule).grace(),
                    ),
                    expected_on: due_date,
                    excuses_gap: true,
                }];
            }
        } else if let Some(updated) = decode::<meeting::ResolutionUpdated>(payload) {
            let done = updated
                .update
                .as_ref()
                .is_some_and(|update| update.status() == meeting::ResolutionStatus::Done);
            if done {
                return vec![fulfil(rule, &meta.entity_id)];
            }
        }
        Vec::new()
    }

    fn projects(&self, payload: &prost_types::Any, meta: &EventMeta) -> Vec<Observation> {
        use project::v1 as project;

        let rule = RuleKind::ProjectTestReport;
        if let Some(applied) = decode::<project::AcceptanceApplied>(payload) {
            if !applied.test_report_document_id.trim().is_empty() {
                return vec![fulfil(rule, &meta.entity_id)];
            }
        } else if let Some(updated) = decode::<project::DocumentUpdated>(payload) {
            let test_report = updated
                .update
                .as_ref()
                .is_some_and(|update| update.kind() == project::DocumentKind::TestReport);
            if test_report {
                return vec![fulfil(rule, &meta.entity_id)];
            }
        } else if let Some(decided) = decode::<project::AcceptanceDecided>(payload)
            && decided.result() == project::AcceptanceResult::Passed
        {
            let department = self.department_of(&meta.actor_user_id, meta);
            return vec![self.expect_after_event(rule, &meta.entity_id, department, meta)];
        }
        Vec::new()
    }

    fn worklogs(&self, payload: &prost_types::Any, meta: &EventMeta) -> Vec<Observation> {
        let Some(report) = decode::<worklog::v1::DailyReportSubmitted>(payload) else {
            return Vec::new();
        };
        let Some(work_date) = civil_date(report.work_date.as_ref()) else {
            return Vec::new();
        };
        let gap_key = rules::daily_report_key(&meta.actor_user_id, work_date);
        vec![fulfil(RuleKind::DailyReport, &gap_key)]
    }

    fn rectifications(&self, payload: &prost_types::Any, meta: &EventMeta) -> Vec<Observation> {
        use inspection::v1 as inspection;

        let rule = RuleKind::RectificationDeadline;
        if let Some(assigned) = decode::<inspection::RectificationAssigned>(payload) {
            let Some(deadline) = civil_date(assigned.deadline.as_ref()) else {
                return Vec::new();
            };
            let department = non_empty(&assigned.department, &meta.actor_department);
            let expected = self.expect_by_date(rule, &meta.entity_id, department, deadline, meta);
            let Observation::Expect(obligation) = &expected else {
                return vec![expected];
            };
            // A second assignment of the same finding moves the deadline of the open gap.
            let reschedule = Observation::Reschedule {
                rule,
                gap_key: meta.entity_id.clone(),
                due_at: obligation.due_at,
                expected_on: deadline,
                excuses_gap: false,
            };
            return vec![expected, reschedule];
        } else if let Some(verified) = decode::<inspection::RectificationVerified>(payload)
            && verified.verdict() == inspection::Verdict::Accepted
        {
            return vec![fulfil(rule, &meta.entity_id)];
        }
        Vec::new()
    }

    fn expect_resolution(
        &self,
        resolution_id: &str,
        owner_id: &str,
        due_date: Option<&trace_proto::common::v1::Date>,
        meta: &EventMeta,
    ) -> Option<Observation> {
        let due_date = civil_date(due_date)?;
        let department = self.department_of(owner_id, meta);
        let mut expected = self.expect_by_date(
            RuleKind::ResolutionDue,
            resolution_id,
            department,
            due_date,
            meta,
        );
        if let Observation::Expect(obligation) = &mut expected {
            obligation.entity_type = "resolution".to_owned();
            obligation.entity_id = resolution_id.to_owned();
        }
        Some(expected)
    }

    /// Expects a record by the end of `date` plus the rule's grace period.
    fn expect_by_date(
        &self,
        rule: RuleKind,
        gap_key: &str,
        department: String,
        date: NaiveDate,
        meta: &EventMeta,
    ) -> Observation {
        let due_at = rules::due_after_date(date, self.zone, self.rules.get(rule).grace());
        Observation::Expect(obligation(rule, gap_key, department, date, due_at, meta))
    }

    /// Expects a record by `instant` plus the rule's grace period.
    fn expect_after_instant(
        &self,
        rule: RuleKind,
        gap_key: &str,
        department: String,
        instant: DateTime<Utc>,
        meta: &EventMeta,
    ) -> Observation {
        let due_at = instant + self.rules.get(rule).grace();
        let expected_on = local_date(instant, self.zone);
        Observation::Expect(obligation(
            rule,
            gap_key,
            department,
            expected_on,
            due_at,
            meta,
        ))
    }

    /// Expects a record within the rule's grace period after the event itself.
    fn expect_after_event(
        &self,
        rule: RuleKind,
        gap_key: &str,
        department: String,
        meta: &EventMeta,
    ) -> Observation {
        self.expect_after_instant(rule, gap_key, department, meta.occurred_at, meta)
    }

    /// Returns the directory department of `user_id`, or the actor's department for users
    /// the directory does not list.
    fn department_of(&self, user_id: &str, meta: &EventMeta) -> String {
        self.directory.employee(user_id).map_or_else(
            || meta.actor_department.clone(),
            |employee| employee.department.clone(),
        )
    }
}

fn obligation(
    rule: RuleKind,
    gap_key: &str,
    department: String,
    expected_on: NaiveDate,
    due_at: DateTime<Utc>,
    meta: &EventMeta,
) -> Obligation {
    Obligation {
        rule,
        gap_key: gap_key.to_owned(),
        department,
        entity_type: meta.entity_type.clone(),
        entity_id: meta.entity_id.clone(),
        expected_on,
        due_at,
        uncalendared: false,
    }
}

fn fulfil(rule: RuleKind, gap_key: &str) -> Observation {
    Observation::Fulfil {
        rule,
        gap_key: gap_key.to_owned(),
    }
}

fn instant(timestamp: Option<&prost_types::Timestamp>) -> Option<DateTime<Utc>> {
    trace_runtime::clock::micros_from_timestamp(timestamp?).map(trace_runtime::clock::from_micros)
}

fn non_empty(value: &str, fallback: &str) -> String {
    if value.is_empty() { fallback } else { value }.to_owned()
}

#[cfg(test)]
#[path = "observe_tests.rs"]
mod tests;
