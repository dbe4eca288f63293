//! Lifecycle states of a project, stored as text, and the transitions between them, with the
//! other enumerations that the tables store. Handlers ask [`ProjectState::after`] before they
//! write, so a transition that is not listed here cannot happen.

use std::fmt;

use sea_orm::entity::prelude::*;
use trace_proto::project::v1 as proto;

/// Lifecycle state of a project.
#[derive(Debug, Clone, Copy, PartialEq, Eq, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
pub enum ProjectState {
    #[sea_orm(string_value = "IN_APPROVAL")]
    InApproval,
    #[sea_orm(string_value = "APPROVED")]
    Approved,
    #[sea_orm(string_value = "REJECTED")]
    Rejected,
    #[sea_orm(string_value = "ACTIVE")]
    Active,
    #[sea_orm(string_value = "IN_ACCEPTANCE")]
    InAcceptance,
    #[sea_orm(string_value = "ACCEPTED")]
    Accepted,
    #[sea_orm(string_value = "CLOSED")]
    Closed,
}

/// Something a caller does to a project.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProjectAction {
    Resubmit,
    /// An approval after which more approvers of the round follow.
    RecordApproval,
    /// The approval that completes a round with no required rejection.
    CompleteApproval,
    /// A rejection by a required approver.
    RejectApplication,
    Start,
    ChangeTeam,
    RecordProgress,
    UpdateDocument,
    RecordDecision,
    ApproveDecision,
    ApplyForAcceptance,
    SetAcceptanceGroup,
    SignOff,
    PassAcceptance,
    FailAcceptance,
    SubmitSummary,
    Close,
}

impl ProjectAction {
    /// Returns the verb used in "cannot <verb> project <id>: it is <state>".
    pub fn verb(self) -> &'static str {
        match self {
            Self::Resubmit => "resubmit the application of",
            Self::RecordApproval | Self::CompleteApproval | Self::RejectApplication => "approve",
            Self::Start => "start",
            Self::ChangeTeam => "change the team of",
            Self::RecordProgress => "record progress of",
            Self::UpdateDocument => "record a document update of",
            Self::RecordDecision => "record a decision of",
            Self::ApproveDecision => "approve a decision of",
            Self::ApplyForAcceptance => "apply for acceptance of",
            Self::SetAcceptanceGroup => "set the acceptance group of",
            Self::SignOff => "sign off the acceptance of",
            Self::PassAcceptance | Self::FailAcceptance => "record the acceptance result of",
            Self::SubmitSummary => "submit the summary of",
            Self::Close => "close",
        }
    }
}

impl ProjectState {
    /// Returns the state after `action`, or `None` when the action is not allowed in this
    /// state.
    pub fn after(self, action: ProjectAction) -> Option<Self> {
        use ProjectAction as Action;
        match (self, action) {
            (Self::Rejected, Action::Resubmit) => Some(Self::InApproval),
            (Self::InApproval, Action::RecordApproval) => Some(Self::InApproval),
            (Self::InApproval, Action::CompleteApproval) => Some(Self::Approved),
            (Self::InApproval, Action::RejectApplication) => Some(Self::Rejected),
            (Self::Approved, Action::Start) => Some(Self::Active),
            (Self::Approved | Self::Active, Action::ChangeTeam) => Some(self),
            (
                Self::Active,
                Action::RecordProgress | Action::RecordDecision | Action::ApproveDecision,
            ) => Some(Self::Active),
            (Self::Active | Self::InAcceptance, Action::UpdateDocument) => Some(self),
            (Self::Active, Action::ApplyForAcceptance) => Some(Self::InAcceptance),
            (Self::InAcceptance, Action::SetAcceptanceGroup | Action::SignOff) => {
                Some(Self::InAcceptance)
            }
            (Self::InAcceptance, Action::PassAcceptance) => Some(Self::Accepted),
            (Self::InAcceptance, Action::FailAcceptance) => Some(Self::Active),
            (Self::Accepted, Action::SubmitSummary) => Some(Self::Accepted),
            (Self::Accepted, Action::Close) => Some(Self::Closed),
            _ => None,
        }
    }

    /// Returns the name used in messages and storage, for example `IN_APPROVAL`.
    pub fn name(self) -> String {
        self.to_value()
    }
}

impl fmt::Display for ProjectState {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.name())
    }
}

impl From<ProjectState> for proto::ProjectState {
    fn from(state: ProjectState) -> Self {
        match state {
            ProjectState::InApproval => Self::InApproval,
            ProjectState::Approved => Self::Approved,
            ProjectState::Rejected => Self::Rejected,
            ProjectState::Active => Self::Active,
            ProjectState::InAcceptance => Self::InAcceptance,
            ProjectState::Accepted => Self::Accepted,
            ProjectState::Closed => Self::Closed,
        }
    }
}

impl ProjectState {
    /// Converts a protobuf state; `None` for `PROJECT_STATE_UNSPECIFIED`.
    pub fn from_proto(state: proto::ProjectState) -> Option<Self> {
        match state {
            proto::ProjectState::Unspecified => None,
            proto::ProjectState::InApproval => Some(Self::InApproval),
            proto::ProjectState::Approved => Some(Self::Approved),
            proto::ProjectState::Rejected => Some(Self::Rejected),
            proto::ProjectState::Active => Some(Self::Active),
            proto::ProjectState::InAcceptance => Some(Self::InAcceptance),
            proto::ProjectState::Accepted => Some(Self::Accepted),
            proto::ProjectState::Closed => Some(Self::Closed),
        }
    }
}

/// Declares a text-stored enum that mirrors a protobuf enum without its unspecified zero.
macro_rules! stored_enum {
    ($(#[$doc:meta])* $name:ident mirrors $proto:ident { $($variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, EnumIter, DeriveActiveEnum)]
        #[sea_orm(rs_type = "String", db_type = "String(StringLen::N(24))")]
        pub enum $name {
            $(
                #[sea_orm(string_value = $text)]
                $variant,
            )+
        }

        impl $name {
            /// Converts a protobuf value; `None` for the unspecified zero.
            pub fn from_proto(value: proto::$proto) -> Option<Self> {
                match value {
                    proto::$proto::Unspecified => None,
                    $(proto::$proto::$variant => Some(Self::$variant),)+
                }
            }

            /// Converts to the protobuf number.
            pub fn to_proto(self) -> i32 {
                match self {
                    $(Self::$variant => proto::$proto::$variant as i32,)+
                }
            }
        }
    };
}

stored_enum! {
    /// An approver's decision on an application round or a decision record.
    ApprovalDecision mirrors ApprovalDecision { Approve = "APPROVE", Reject = "REJECT" }
}

stored_enum! {
    /// Kind of project document.
    DocumentKind mirrors DocumentKind {
        Plan = "PLAN",
        Requirements = "REQUIREMENTS",
        Design = "DESIGN",
        TestReport = "TEST_REPORT",
        ChangeLog = "CHANGE_LOG",
    }
}

stored_enum! {
    /// Kind of recorded decision.
    DecisionKind mirrors DecisionKind {
        KeyDecision = "KEY_DECISION",
        TechnicalChange = "TECHNICAL_CHANGE",
    }
}

stored_enum! {
    /// State of a recorded decision.
    DecisionState mirrors DecisionState {
        Pending = "PENDING",
        Approved = "APPROVED",
        Rejected = "REJECTED",
    }
}

stored_enum! {
    /// One acceptance group member's verdict.
    SignOffVerdict mirrors SignOffVerdict { Pass = "PASS", Fail = "FAIL" }
}

stored_enum! {
    /// The acceptance group's result.
    AcceptanceResult mirrors AcceptanceResult { Passed = "PASSED", Failed = "FAILED" }
}

#[cfg(test)]
mod tests {
    use sea_orm::Iterable;

    use super::*;
    use ProjectAction as Action;
    use ProjectState as State;

    const ALL_ACTIONS: [Action; 17] = [
        Action::Resubmit,
        Action::RecordApproval,
        Action::CompleteApproval,
        Action::RejectApplication,
        Action::Start,
        Action::ChangeTeam,
        Action::RecordProgress,
        Action::UpdateDocument,
        Action::RecordDecision,
        Action::ApproveDecision,
        Action::ApplyForAcceptance,
        Action::SetAcceptanceGroup,
        Action::SignOff,
        Action::PassAcceptance,
        Action::FailAcceptance,
        Action::SubmitSummary,
        Action::Close,
    ];

    #[test]
    fn happy_path_reaches_closed() {
        let steps = [
            (Action::RecordApproval, State::InApproval),
            (Action::CompleteApproval, State::Approved),
            (Action::ChangeTeam, State::Approved),
            (Action::Start, State::Active),
            (Action::RecordProgress, State::Active),
            (Action::ApplyForAcceptance, State::InAcceptance),
            (Action::SetAcceptanceGroup, State::InAcceptance),
            (Action::SignOff, State::InAcceptance),
            (Action::PassAcceptance, State::Accepted),
            (Action::SubmitSummary, State::Accepted),
            (Action::Close, State::Closed),
        ];
        let mut state = State::InApproval;

        for (action, expected) in steps {
            state = state
                .after(action)
                .unwrap_or_else(|| panic!("{action:?} from {state}"));

            assert_eq!(state, expected, "{action:?}");
        }
    }

    #[test]
    fn rejected_round_can_be_resubmitted() {
        let rejected = State::InApproval.after(Action::RejectApplication);

        assert_eq!(rejected, Some(State::Rejected));
        assert_eq!(
            State::Rejected.after(Action::Resubmit),
            Some(State::InApproval)
        );
        assert_eq!(State::Rejected.after(Action::Start), None);
    }

    #[test]
    fn failed_acceptance_returns_to_active() {
        assert_eq!(
            State::InAcceptance.after(Action::FailAcceptance),
            Some(State::Active)
        );
        assert_eq!(
            State::Active.after(Action::ApplyForAcceptance),
            Some(State::InAcceptance)
        );
    }

    #[test]
    fn start_needs_approval() {
        for state in [
            State::InApproval,
            State::Rejected,
            State::Active,
            State::Closed,
        ] {
            assert_eq!(state.after(Action::Start), None, "{state}");
        }
    }

    #[test]
    fn closed_allows_nothing() {
        for action in ALL_ACTIONS {
            assert_eq!(State::Closed.after(action), None, "{action:?}");
        }
    }

    #[test]
    fn acceptance_steps_need_in_acceptance() {
        let steps = [
            Action::SetAcceptanceGroup,
            Action::SignOff,
            Action::PassAcceptance,
            Action::FailAcceptance,
        ];
        for state in State::iter().filter(|state| *state != State::InAcceptance) {
            for action in steps {
                assert_eq!(state.after(action), None, "{action:?} from {state}");
            }
        }
    }

    #[test]
    fn state_names_match_proto_names() {
        for state in State::iter() {
            let proto_name = proto::ProjectState::from(state).as_str_name();

            assert_eq!(proto_name, format!("PROJECT_STATE_{}", state.name()));
            assert_eq!(
                State::from_proto(proto::ProjectState::from(state)),
                Some(state)
            );
        }
    }

    #[test]
    fn stored_enums_round_trip() {
        for kind in DocumentKind::iter() {
            let number = kind.to_proto();
            let value = proto::DocumentKind::try_from(number).unwrap();

            assert_eq!(DocumentKind::from_proto(value), Some(kind));
        }
        assert_eq!(
            ApprovalDecision::from_proto(proto::ApprovalDecision::Unspecified),
            None
        );
    }
}
