//! Kinds and lifecycle states of reports and communications, stored as text, with their
//! proto counterparts. Handlers ask [`ReportState::after`] before they write, so a transition
//! that is not listed here cannot happen.

use std::fmt;

use sea_orm::entity::prelude::*;
use trace_proto::worklog::v1 as proto;

/// Kind of a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
pub enum ReportKind {
    #[sea_orm(string_value = "DAILY")]
    Daily,
    #[sea_orm(string_value = "WEEKLY")]
    Weekly,
    #[sea_orm(string_value = "MONTHLY")]
    Monthly,
}

impl ReportKind {
    /// Entity type of the report's trace events.
    pub fn entity_type(self) -> &'static str {
        match self {
            Self::Daily => "daily_report",
            Self::Weekly | Self::Monthly => "periodic_report",
        }
    }

    /// Converts a proto kind; `None` for the unspecified value.
    pub fn from_proto(kind: proto::ReportKind) -> Option<Self> {
        match kind {
            proto::ReportKind::Unspecified => None,
            proto::ReportKind::Daily => Some(Self::Daily),
            proto::ReportKind::Weekly => Some(Self::Weekly),
            proto::ReportKind::Monthly => Some(Self::Monthly),
        }
    }

    pub fn to_proto(self) -> proto::ReportKind {
        match self {
            Self::Daily => proto::ReportKind::Daily,
            Self::Weekly => proto::ReportKind::Weekly,
            Self::Monthly => proto::ReportKind::Monthly,
        }
    }
}

/// Lifecycle state of a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
pub enum ReportState {
    #[sea_orm(string_value = "SUBMITTED")]
    Submitted,
    #[sea_orm(string_value = "COMMENTED")]
    Commented,
    #[sea_orm(string_value = "APPROVED")]
    Approved,
    #[sea_orm(string_value = "RETURNED")]
    Returned,
}

/// Something a caller does to a stored report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportAction {
    Comment,
    Approve,
    Return,
    Revise,
}

impl ReportAction {
    /// Returns the verb used in "cannot <verb> report <id>: it is <state>".
    pub fn verb(self) -> &'static str {
        match self {
            Self::Comment => "comment on",
            Self::Approve | Self::Return => "decide on",
            Self::Revise => "revise",
        }
    }
}

impl ReportState {
    /// Returns the state after `action` on a report of `kind`, or `None` when the action is
    /// not allowed. Daily reports take any number of comments; weekly and monthly reports
    /// go SUBMITTED → APPROVED | RETURNED, and RETURNED → SUBMITTED by revision.
    pub fn after(self, kind: ReportKind, action: ReportAction) -> Option<Self> {
        use ReportAction as Action;
        let daily = kind == ReportKind::Daily;
        match (self, action) {
            (Self::Submitted | Self::Commented, Action::Comment) if daily => Some(Self::Commented),
            (Self::Submitted, Action::Approve) if !daily => Some(Self::Approved),
            (Self::Submitted, Action::Return) if !daily => Some(Self::Returned),
            (Self::Returned, Action::Revise) if !daily => Some(Self::Submitted),
            _ => None,
        }
    }

    /// Returns the name used in messages and storage, for example `SUBMITTED`.
    pub fn name(self) -> String {
        self.to_value()
    }

    pub fn to_proto(self) -> proto::ReportState {
        match self {
            Self::Submitted => proto::ReportState::Submitted,
            Self::Commented => proto::ReportState::Commented,
            Self::Approved => proto::ReportState::Approved,
            Self::Returned => proto::ReportState::Returned,
        }
    }
}

impl fmt::Display for ReportState {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.name())
    }
}

/// Form of a supervisor comment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
pub enum CommentKind {
    #[sea_orm(string_value = "WRITTEN")]
    Written,
    #[sea_orm(string_value = "ORAL_NOTE")]
    OralNote,
}

impl CommentKind {
    pub fn from_proto(kind: proto::CommentKind) -> Option<Self> {
        match kind {
            proto::CommentKind::Unspecified => None,
            proto::CommentKind::Written => Some(Self::Written),
            proto::CommentKind::OralNote => Some(Self::OralNote),
        }
    }

    pub fn to_proto(self) -> proto::CommentKind {
        match self {
            Self::Written => proto::CommentKind::Written,
            Self::OralNote => proto::CommentKind::OralNote,
        }
    }
}

/// A supervisor's decision on a periodic report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
pub enum Decision {
    #[sea_orm(string_value = "APPROVE")]
    Approve,
    #[sea_orm(string_value = "RETURN")]
    Return,
}

impl Decision {
    pub fn from_proto(decision: proto::Decision) -> Option<Self> {
        match decision {
            proto::Decision::Unspecified => None,
            proto::Decision::Approve => Some(Self::Approve),
            proto::Decision::Return => Some(Self::Return),
        }
    }

    pub fn to_proto(self) -> proto::Decision {
        match self {
            Self::Approve => proto::Decision::Approve,
            Self::Return => proto::Decision::Return,
        }
    }

    /// Returns the report action this decision performs.
    pub fn action(self) -> ReportAction {
        match self {
            Self::Approve => ReportAction::Approve,
            Self::Return => ReportAction::Return,
        }
    }

    /// Returns the event action, the last token of the subject.
    pub fn event_action(self) -> &'static str {
        match self {
            Self::Approve => "approved",
            Self::Return => "returned",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periodic_report_round_trip() {
        let kind = ReportKind::Weekly;

        let returned = ReportState::Submitted.after(kind, ReportAction::Return);
        let resubmitted = ReportState::Returned.after(kind, ReportAction::Revise);
        let approved = ReportState::Submitted.after(kind, ReportAction::Approve);

        assert_eq!(returned, Some(ReportState::Returned));
        assert_eq!(resubmitted, Some(ReportState::Submitted));
        assert_eq!(approved, Some(ReportState::Approved));
    }

    #[test]
    fn approved_report_is_final() {
        for action in [
            ReportAction::Approve,
            ReportAction::Return,
            ReportAction::Revise,
            ReportAction::Comment,
        ] {
            assert_eq!(
                ReportState::Approved.after(ReportKind::Monthly, action),
                None,
                "{action:?}"
            );
        }
    }

    #[test]
    fn submitted_report_cannot_be_revised() {
        assert_eq!(
            ReportState::Submitted.after(ReportKind::Weekly, ReportAction::Revise),
            None
        );
        assert_eq!(
            ReportState::Returned.after(ReportKind::Weekly, ReportAction::Approve),
            None
        );
    }

    #[test]
    fn daily_reports_take_comments_only() {
        let kind = ReportKind::Daily;

        assert_eq!(
            ReportState::Submitted.after(kind, ReportAction::Comment),
            Some(ReportState::Commented)
        );
        assert_eq!(
            ReportState::Commented.after(kind, ReportAction::Comment),
            Some(ReportState::Commented)
        );
        assert_eq!(
            ReportState::Submitted.after(kind, ReportAction::Approve),
            None
        );
        assert_eq!(
            ReportState::Submitted.after(ReportKind::Weekly, ReportAction::Comment),
            None
        );
    }

    #[test]
    fn entity_types_follow_the_kind() {
        assert_eq!(ReportKind::Daily.entity_type(), "daily_report");
        assert_eq!(ReportKind::Weekly.entity_type(), "periodic_report");
        assert_eq!(ReportKind::Monthly.entity_type(), "periodic_report");
    }
}
