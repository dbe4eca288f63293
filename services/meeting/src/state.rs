//! Stored enums of meetings, materials, minutes and resolutions, and the transitions of
//! meetings and resolutions. Handlers check [`MeetingState::after`] or
//! [`ResolutionStatus::after`] before they write, so a step that is not listed here fails
//! with `FAILED_PRECONDITION`.

use std::fmt;

use sea_orm::entity::prelude::*;
use trace_proto::meeting::v1 as proto;

/// Declares an enum stored as text, with conversions to and from its protobuf enum. The
/// protobuf variants carry the same names, without the `UNSPECIFIED` zero.
macro_rules! stored_enum {
    ($(#[$meta:meta])* $name:ident => $proto:ident { $($variant:ident = $text:tt),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum)]
        #[sea_orm(rs_type = "String", db_type = "String(StringLen::N(24))")]
        pub enum $name {
            $(
                #[sea_orm(string_value = $text)]
                $variant,
            )+
        }

        impl From<$name> for proto::$proto {
            fn from(value: $name) -> Self {
                match value {
                    $($name::$variant => proto::$proto::$variant,)+
                }
            }
        }

        impl $name {
            /// Converts a protobuf value; `None` for the unspecified zero.
            pub fn from_proto(value: proto::$proto) -> Option<Self> {
                match value {
                    $(proto::$proto::$variant => Some(Self::$variant),)+
                    #[allow(unreachable_patterns)]
                    _ => None,
                }
            }

            /// Returns the protobuf number of the value.
            pub fn number(self) -> i32 {
                proto::$proto::from(self) as i32
            }

            /// Returns the name used in messages and storage, for example `PLANNED`.
            pub fn name(self) -> String {
                self.to_value()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str(&self.name())
            }
        }
    };
}

stored_enum! {
    /// Lifecycle state of a meeting.
    MeetingState => MeetingState {
        Planned = "PLANNED",
        MinutesRecorded = "MINUTES_RECORDED",
        Cancelled = "CANCELLED",
    }
}

stored_enum! {
    /// Channel through which attendees meet.
    Channel => Channel {
        InPerson = "IN_PERSON",
        Phone = "PHONE",
        Video = "VIDEO",
    }
}

stored_enum! {
    /// Kind of a material.
    MaterialKind => MaterialKind {
        Agenda = "AGENDA",
        Report = "REPORT",
        DiscussionPaper = "DISCUSSION_PAPER",
        Other = "OTHER",
    }
}

stored_enum! {
    /// Review state of a material.
    ReviewState => ReviewState {
        Pending = "PENDING",
        Approved = "APPROVED",
        Returned = "RETURNED",
    }
}

stored_enum! {
    /// A participant's verdict on a minutes version.
    Verdict => Verdict {
        Confirm = "CONFIRM",
        Object = "OBJECT",
    }
}

stored_enum! {
    /// Status of a resolution.
    ResolutionStatus => ResolutionStatus {
        Open = "OPEN",
        InProgress = "IN_PROGRESS",
        Done = "DONE",
    }
}

stored_enum! {
    /// State of a delay request.
    DelayState => DelayState {
        Pending = "PENDING",
        Approved = "APPROVED",
        Rejected = "REJECTED",
    }
}

/// Something a caller does to a meeting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MeetingAction {
    RecordNotices,
    RevisePlan,
    Cancel,
    AddMaterial,
    ReviewMaterial,
    RecordMinutes,
    AmendMinutes,
    SendMinutes,
    ConfirmMinutes,
}

impl MeetingAction {
    /// Returns the verb of "cannot <verb> meeting <id>: it is <state>".
    pub fn verb(self) -> &'static str {
        match self {
            Self::RecordNotices => "record notices for",
            Self::RevisePlan => "revise the plan of",
            Self::Cancel => "cancel",
            Self::AddMaterial => "add material to",
            Self::ReviewMaterial => "review material of",
            Self::RecordMinutes => "record minutes for",
            Self::AmendMinutes => "amend the minutes of",
            Self::SendMinutes => "send the minutes of",
            Self::ConfirmMinutes => "confirm the minutes of",
        }
    }
}

impl MeetingState {
    /// Returns the state after `action`, or `None` when the action is not allowed in this
    /// state. The plan changes only before the meeting is held, minutes exist only after,
    /// and a cancelled meeting takes no further step.
    pub fn after(self, action: MeetingAction) -> Option<Self> {
        use MeetingAction as Action;
        match (self, action) {
            (
                Self::Planned,
                Action::RecordNotices
                | Action::RevisePlan
                | Action::AddMaterial
                | Action::ReviewMaterial,
            ) => Some(Self::Planned),
            (Self::Planned, Action::Cancel) => Some(Self::Cancelled),
            (Self::Planned, Action::RecordMinutes) => Some(Self::MinutesRecorded),
            (
                Self::MinutesRecorded,
                Action::AddMaterial
                | Action::ReviewMaterial
                | Action::AmendMinutes
                | Action::SendMinutes
                | Action::ConfirmMinutes,
            ) => Some(Self::MinutesRecorded),
            _ => None,
        }
    }
}

/// Something a caller, or the overdue check, does to a resolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResolutionAction {
    /// A progress update that sets the given status.
    Update(ResolutionStatus),
    RequestDelay,
    DecideDelay,
    MarkOverdue,
}

impl ResolutionAction {
    /// Returns the verb of "cannot <verb> resolution <id>: it is <status>".
    pub fn verb(self) -> &'static str {
        match self {
            Self::Update(_) => "update",
            Self::RequestDelay => "request a delay of",
            Self::DecideDelay => "decide a delay of",
            Self::MarkOverdue => "mark overdue",
        }
    }
}

impl ResolutionStatus {
    /// Returns the status after `action`, or `None` when the action is not allowed. A DONE
    /// resolution is final, and an update may set only IN_PROGRESS or DONE.
    pub fn after(self, action: ResolutionAction) -> Option<Self> {
        use ResolutionAction as Action;
        match (self, action) {
            (Self::Done, _) => None,
            (_, Action::Update(Self::Open)) => None,
            (_, Action::Update(status)) => Some(status),
            (_, Action::RequestDelay | Action::DecideDelay | Action::MarkOverdue) => Some(self),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn planned_meeting_allows_plan_steps_and_minutes() {
        use MeetingAction as Action;

        for action in [
            Action::RecordNotices,
            Action::RevisePlan,
            Action::AddMaterial,
        ] {
            assert_eq!(
                MeetingState::Planned.after(action),
                Some(MeetingState::Planned)
            );
        }
        assert_eq!(
            MeetingState::Planned.after(Action::Cancel),
            Some(MeetingState::Cancelled)
        );
        assert_eq!(
            MeetingState::Planned.after(Action::RecordMinutes),
            Some(MeetingState::MinutesRecorded)
        );
        assert_eq!(MeetingState::Planned.after(Action::AmendMinutes), None);
        assert_eq!(MeetingState::Planned.after(Action::ConfirmMinutes), None);
    }

    #[test]
    fn held_meeting_has_a_fixed_plan() {
        use MeetingAction as Action;
        let held = MeetingState::MinutesRecorded;

        assert_eq!(held.after(Action::RevisePlan), None);
        assert_eq!(held.after(Action::Cancel), None);
        assert_eq!(held.after(Action::RecordNotices), None);
        assert_eq!(held.after(Action::RecordMinutes), None);
        assert_eq!(held.after(Action::AmendMinutes), Some(held));
        assert_eq!(held.after(Action::SendMinutes), Some(held));
    }

    #[test]
    fn cancelled_meeting_takes_no_step() {
        use MeetingAction as Action;
        let all = [
            Action::RecordNotices,
            Action::RevisePlan,
            Action::Cancel,
            Action::AddMaterial,
            Action::ReviewMaterial,
            Action::RecordMinutes,
            Action::AmendMinutes,
            Action::SendMinutes,
            Action::ConfirmMinutes,
        ];

        for action in all {
            assert_eq!(MeetingState::Cancelled.after(action), None, "{action:?}");
        }
    }

    #[test]
    fn done_resolution_is_final() {
        use ResolutionAction as Action;
        let done = ResolutionStatus::Done;

        assert_eq!(
            done.after(Action::Update(ResolutionStatus::InProgress)),
            None
        );
        assert_eq!(done.after(Action::Update(ResolutionStatus::Done)), None);
        assert_eq!(done.after(Action::RequestDelay), None);
        assert_eq!(done.after(Action::DecideDelay), None);
        assert_eq!(done.after(Action::MarkOverdue), None);
    }

    #[test]
    fn updates_move_open_resolutions_forward_only() {
        use ResolutionAction as Action;
        use ResolutionStatus as Status;

        assert_eq!(
            Status::Open.after(Action::Update(Status::InProgress)),
            Some(Status::InProgress)
        );
        assert_eq!(
            Status::Open.after(Action::Update(Status::Done)),
            Some(Status::Done)
        );
        assert_eq!(
            Status::InProgress.after(Action::Update(Status::InProgress)),
            Some(Status::InProgress)
        );
        assert_eq!(Status::InProgress.after(Action::Update(Status::Open)), None);
        assert_eq!(
            Status::InProgress.after(Action::RequestDelay),
            Some(Status::InProgress)
        );
    }

    #[test]
    fn stored_names_round_trip_through_proto() {
        assert_eq!(MeetingState::MinutesRecorded.name(), "MINUTES_RECORDED");
        assert_eq!(
            Channel::from_proto(proto::Channel::Phone),
            Some(Channel::Phone)
        );
        assert_eq!(Channel::from_proto(proto::Channel::Unspecified), None);
        assert_eq!(
            ResolutionStatus::Done.number(),
            proto::ResolutionStatus::Done as i32
        );
    }
}
