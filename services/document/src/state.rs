//! Lifecycle states of documents and borrowings, stored as text, and the transitions between
//! them. Handlers ask [`DocumentState::after`] or [`BorrowingState::after`] before they write,
//! and the unit tests below pin both transition tables.

use std::fmt;

use sea_orm::entity::prelude::*;
use trace_proto::document::v1 as proto;

/// Lifecycle state of a document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
pub enum DocumentState {
    #[sea_orm(string_value = "DRAFT")]
    Draft,
    #[sea_orm(string_value = "IN_REVIEW")]
    InReview,
    #[sea_orm(string_value = "RETURNED")]
    Returned,
    #[sea_orm(string_value = "APPROVED")]
    Approved,
    #[sea_orm(string_value = "REGISTERED")]
    Registered,
}

/// Something a caller does to a document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DocumentAction {
    Revise,
    Submit,
    Approve,
    ReturnForRevision,
    Register,
    BackUp,
    ApplyBorrowing,
}

impl DocumentAction {
    /// Returns the verb used in "cannot <verb> document <id>: it is <state>".
    pub fn verb(self) -> &'static str {
        match self {
            Self::Revise => "revise",
            Self::Submit => "submit",
            Self::Approve | Self::ReturnForRevision => "review",
            Self::Register => "register",
            Self::BackUp => "back up",
            Self::ApplyBorrowing => "borrow",
        }
    }
}

impl DocumentState {
    /// Returns the state after `action`, or `None` when the action is not allowed in this
    /// state. Reading is allowed in every state and is not an action here.
    pub fn after(self, action: DocumentAction) -> Option<Self> {
        use DocumentAction as Action;
        match (self, action) {
            (Self::Draft, Action::Revise) => Some(Self::Draft),
            (Self::Returned, Action::Revise) => Some(Self::Returned),
            (Self::Draft | Self::Returned, Action::Submit) => Some(Self::InReview),
            (Self::InReview, Action::Approve) => Some(Self::Approved),
            (Self::InReview, Action::ReturnForRevision) => Some(Self::Returned),
            (Self::Approved, Action::Register) => Some(Self::Registered),
            (Self::Registered, Action::BackUp | Action::ApplyBorrowing) => Some(Self::Registered),
            _ => None,
        }
    }

    /// Returns the name used in messages and storage, for example `IN_REVIEW`.
    pub fn name(self) -> String {
        self.to_value()
    }
}

impl fmt::Display for DocumentState {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.name())
    }
}

impl From<DocumentState> for proto::DocumentState {
    fn from(state: DocumentState) -> Self {
        match state {
            DocumentState::Draft => Self::Draft,
            DocumentState::InReview => Self::InReview,
            DocumentState::Returned => Self::Returned,
            DocumentState::Approved => Self::Approved,
            DocumentState::Registered => Self::Registered,
        }
    }
}

impl TryFrom<proto::DocumentState> for DocumentState {
    type Error = ();

    /// Fails only for `DOCUMENT_STATE_UNSPECIFIED`.
    fn try_from(state: proto::DocumentState) -> Result<Self, ()> {
        match state {
            proto::DocumentState::Unspecified => Err(()),
            proto::DocumentState::Draft => Ok(Self::Draft),
            proto::DocumentState::InReview => Ok(Self::InReview),
            proto::DocumentState::Returned => Ok(Self::Returned),
            proto::DocumentState::Approved => Ok(Self::Approved),
            proto::DocumentState::Registered => Ok(Self::Registered),
        }
    }
}

/// A reviewer's decision, stored as text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
pub enum ReviewDecision {
    #[sea_orm(string_value = "APPROVE")]
    Approve,
    #[sea_orm(string_value = "RETURN")]
    Return,
}

impl ReviewDecision {
    /// Returns the document action that this decision performs.
    pub fn action(self) -> DocumentAction {
        match self {
            Self::Approve => DocumentAction::Approve,
            Self::Return => DocumentAction::ReturnForRevision,
        }
    }

    /// Converts a validated protobuf decision; `None` for `REVIEW_DECISION_UNSPECIFIED`.
    pub fn from_proto(decision: proto::ReviewDecision) -> Option<Self> {
        match decision {
            proto::ReviewDecision::Unspecified => None,
            proto::ReviewDecision::Approve => Some(Self::Approve),
            proto::ReviewDecision::Return => Some(Self::Return),
        }
    }
}

/// Lifecycle state of a borrowing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
pub enum BorrowingState {
    #[sea_orm(string_value = "REQUESTED")]
    Requested,
    #[sea_orm(string_value = "APPROVED")]
    Approved,
    #[sea_orm(string_value = "REJECTED")]
    Rejected,
    #[sea_orm(string_value = "LENT")]
    Lent,
    #[sea_orm(string_value = "OVERDUE")]
    Overdue,
    #[sea_orm(string_value = "RETURNED")]
    Returned,
    #[sea_orm(string_value = "LOST")]
    Lost,
}

/// Something a caller, or the overdue check, does to a borrowing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BorrowingAction {
    Approve,
    Reject,
    Lend,
    MarkOverdue,
    Return,
    ReportLoss,
}

impl BorrowingAction {
    /// Returns the verb used in "cannot <verb> borrowing <id>: it is <state>".
    pub fn verb(self) -> &'static str {
        match self {
            Self::Approve | Self::Reject => "decide",
            Self::Lend => "lend",
            Self::MarkOverdue => "mark overdue",
            Self::Return => "return",
            Self::ReportLoss => "report the loss of",
        }
    }
}

impl BorrowingState {
    /// States in which the document is promised or handed to the borrower. At most one
    /// borrowing of a document is in one of them at a time.
    pub const ACTIVE: [Self; 3] = [Self::Approved, Self::Lent, Self::Overdue];

    /// Returns the state after `action`, or `None` when the action is not allowed in this
    /// state.
    pub fn after(self, action: BorrowingAction) -> Option<Self> {
        use BorrowingAction as Action;
        match (self, action) {
            (Self::Requested, Action::Approve) => Some(Self::Approved),
            (Self::Requested, Action::Reject) => Some(Self::Rejected),
            (Self::Approved, Action::Lend) => Some(Self::Lent),
            (Self::Lent, Action::MarkOverdue) => Some(Self::Overdue),
            (Self::Lent | Self::Overdue, Action::Return) => Some(Self::Returned),
            (Self::Lent | Self::Overdue, Action::ReportLoss) => Some(Self::Lost),
            _ => None,
        }
    }

    /// Checks whether handling of damage or loss may be recorded, and returns the reason
    /// shown as the current state when not. Handling is recorded once, for a document
    /// returned damaged or lost.
    pub fn check_handling(
        self,
        condition: Option<ReturnCondition>,
        already_handled: bool,
    ) -> Result<(), String> {
        let allowed = match self {
            Self::Lost => true,
            Self::Returned => condition == Some(ReturnCondition::Damaged),
            _ => false,
        };
        if !allowed {
            return Err(match (self, condition) {
                (Self::Returned, Some(condition)) => format!("RETURNED {}", condition.name()),
                _ => self.name(),
            });
        }
        if already_handled {
            return Err(format!("{} and already handled", self.name()));
        }
        Ok(())
    }

    /// Returns the name used in messages and storage, for example `LENT`.
    pub fn name(self) -> String {
        self.to_value()
    }
}

impl fmt::Display for BorrowingState {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.name())
    }
}

impl From<BorrowingState> for proto::BorrowingState {
    fn from(state: BorrowingState) -> Self {
        match state {
            BorrowingState::Requested => Self::Requested,
            BorrowingState::Approved => Self::Approved,
            BorrowingState::Rejected => Self::Rejected,
            BorrowingState::Lent => Self::Lent,
            BorrowingState::Overdue => Self::Overdue,
            BorrowingState::Returned => Self::Returned,
            BorrowingState::Lost => Self::Lost,
        }
    }
}

/// State of an access request. A request is decided once; an approval ends at its expiry
/// without a further state change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
pub enum AccessRequestState {
    #[sea_orm(string_value = "PENDING")]
    Pending,
    #[sea_orm(string_value = "APPROVED")]
    Approved,
    #[sea_orm(string_value = "REJECTED")]
    Rejected,
}

impl AccessRequestState {
    /// Returns the state's name as errors show it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Pending => "PENDING",
            Self::Approved => "APPROVED",
            Self::Rejected => "REJECTED",
        }
    }
}

impl From<AccessRequestState> for proto::AccessRequestState {
    fn from(state: AccessRequestState) -> Self {
        match state {
            AccessRequestState::Pending => Self::Pending,
            AccessRequestState::Approved => Self::Approved,
            AccessRequestState::Rejected => Self::Rejected,
        }
    }
}

/// Condition of a returned document, stored as text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
pub enum ReturnCondition {
    #[sea_orm(string_value = "INTACT")]
    Intact,
    #[sea_orm(string_value = "DAMAGED")]
    Damaged,
}

impl ReturnCondition {
    /// Converts a validated protobuf condition; `None` for `RETURN_CONDITION_UNSPECIFIED`.
    pub fn from_proto(condition: proto::ReturnCondition) -> Option<Self> {
        match condition {
            proto::ReturnCondition::Unspecified => None,
            proto::ReturnCondition::Intact => Some(Self::Intact),
            proto::ReturnCondition::Damaged => Some(Self::Damaged),
        }
    }

    /// Returns the name used in messages and storage, for example `DAMAGED`.
    pub fn name(self) -> String {
        self.to_value()
    }
}

impl From<ReturnCondition> for proto::ReturnCondition {
    fn from(condition: ReturnCondition) -> Self {
        match condition {
            ReturnCondition::Intact => Self::Intact,
            ReturnCondition::Damaged => Self::Damaged,
        }
    }
}

#[cfg(test)]
mod tests {
    use sea_orm::Iterable;

    use super::*;

    const DOCUMENT_ACTIONS: [DocumentAction; 7] = [
        DocumentAction::Revise,
        DocumentAction::Submit,
        DocumentAction::Approve,
        DocumentAction::ReturnForRevision,
        DocumentAction::Register,
        DocumentAction::BackUp,
        DocumentAction::ApplyBorrowing,
    ];

    const BORROWING_ACTIONS: [BorrowingAction; 6] = [
        BorrowingAction::Approve,
        BorrowingAction::Reject,
        BorrowingAction::Lend,
        BorrowingAction::MarkOverdue,
        BorrowingAction::Return,
        BorrowingAction::ReportLoss,
    ];

    #[test]
    fn document_transitions_match_the_table() {
        use DocumentAction as Action;
        use DocumentState as State;
        let allowed = [
            (State::Draft, Action::Revise, State::Draft),
            (State::Returned, Action::Revise, State::Returned),
            (State::Draft, Action::Submit, State::InReview),
            (State::Returned, Action::Submit, State::InReview),
            (State::InReview, Action::Approve, State::Approved),
            (State::InReview, Action::ReturnForRevision, State::Returned),
            (State::Approved, Action::Register, State::Registered),
            (State::Registered, Action::BackUp, State::Registered),
            (State::Registered, Action::ApplyBorrowing, State::Registered),
        ];

        for state in State::iter() {
            for action in DOCUMENT_ACTIONS {
                let expected = allowed
                    .iter()
                    .find(|(from, by, _)| *from == state && *by == action)
                    .map(|(_, _, to)| *to);
                assert_eq!(state.after(action), expected, "{state} + {action:?}");
            }
        }
    }

    #[test]
    fn borrowing_transitions_match_the_table() {
        use BorrowingAction as Action;
        use BorrowingState as State;
        let allowed = [
            (State::Requested, Action::Approve, State::Approved),
            (State::Requested, Action::Reject, State::Rejected),
            (State::Approved, Action::Lend, State::Lent),
            (State::Lent, Action::MarkOverdue, State::Overdue),
            (State::Lent, Action::Return, State::Returned),
            (State::Overdue, Action::Return, State::Returned),
            (State::Lent, Action::ReportLoss, State::Lost),
            (State::Overdue, Action::ReportLoss, State::Lost),
        ];

        for state in State::iter() {
            for action in BORROWING_ACTIONS {
                let expected = allowed
                    .iter()
                    .find(|(from, by, _)| *from == state && *by == action)
                    .map(|(_, _, to)| *to);
                assert_eq!(state.after(action), expected, "{state} + {action:?}");
            }
        }
    }

    #[test]
    fn overdue_is_marked_once() {
        let overdue = BorrowingState::Lent
            .after(BorrowingAction::MarkOverdue)
            .unwrap();

        assert_eq!(overdue.after(BorrowingAction::MarkOverdue), None);
    }

    #[test]
    fn handling_needs_damage_or_loss_once() {
        let damaged = Some(ReturnCondition::Damaged);
        let intact = Some(ReturnCondition::Intact);

        assert_eq!(
            BorrowingState::Returned.check_handling(damaged, false),
            Ok(())
        );
        assert_eq!(BorrowingState::Lost.check_handling(None, false), Ok(()));
        assert_eq!(
            BorrowingState::Returned.check_handling(intact, false),
            Err("RETURNED INTACT".to_owned())
        );
        assert_eq!(
            BorrowingState::Lost.check_handling(None, true),
            Err("LOST and already handled".to_owned())
        );
        assert_eq!(
            BorrowingState::Lent.check_handling(None, false),
            Err("LENT".to_owned())
        );
    }

    #[test]
    fn state_names_are_the_stored_text() {
        assert_eq!(DocumentState::InReview.to_string(), "IN_REVIEW");
        assert_eq!(BorrowingState::Overdue.to_string(), "OVERDUE");
    }

    #[test]
    fn every_document_state_maps_to_proto_and_back() {
        for state in DocumentState::iter() {
            let mapped = proto::DocumentState::from(state);

            assert_eq!(DocumentState::try_from(mapped), Ok(state));
        }
        assert_eq!(
            DocumentState::try_from(proto::DocumentState::Unspecified),
            Err(())
        );
    }
}
