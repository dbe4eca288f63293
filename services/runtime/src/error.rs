//! One error type for every service, and its single mapping to `tonic::Status` with
//! `google.rpc` error details.

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// Failure of a service call. Each variant maps to exactly one gRPC code.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// A request field failed validation.
    #[error("invalid {field}: {reason} (got {value})")]
    InvalidArgument {
        field: String,
        value: String,
        reason: String,
    },
    /// The addressed record does not exist, or the caller may not know that it exists.
    #[error("{resource} {id} not found")]
    NotFound { resource: &'static str, id: String },
    /// The record exists but its state does not allow the action.
    #[error("cannot {action} {resource} {id}: it is {state}")]
    FailedPrecondition {
        resource: &'static str,
        id: String,
        state: String,
        action: &'static str,
    },
    /// The caller is known but may not do this. `recorded_event_id` names the domain event
    /// that already records the denial, so the generic denial event is not written.
    #[error("permission denied: {reason}")]
    PermissionDenied {
        reason: String,
        recorded_event_id: Option<String>,
    },
    /// The caller could not be identified.
    #[error("unauthenticated: {reason}")]
    Unauthenticated { reason: String },
    /// A concurrent change won; the caller may retry.
    #[error("aborted: {reason}")]
    Aborted { reason: String },
    /// A dependency is down; the caller may retry later.
    #[error("unavailable: {reason}")]
    Unavailable { reason: String },
    /// A bug or an unexpected failure; details go to the log, not to the caller.
    #[error("internal error: {0:#}")]
    Internal(#[from] anyhow::Error),
}

/// Maximum length of a user value echoed back in an error message, in characters.
const ECHO_LIMIT: usize = 80;

impl ServiceError {
    /// Builds an `InvalidArgument` that echoes a shortened, escaped copy of the value.
    pub fn invalid(field: impl Into<String>, value: &str, reason: impl Into<String>) -> Self {
        Self::InvalidArgument {
            field: field.into(),
            value: echo(value),
            reason: reason.into(),
        }
    }

    /// Builds a `FailedPrecondition` naming the record's current state.
    pub fn wrong_state(
        resource: &'static str,
        id: impl Into<String>,
        state: impl Into<String>,
        action: &'static str,
    ) -> Self {
        Self::FailedPrecondition {
            resource,
            id: id.into(),
            state: state.into(),
            action,
        }
    }

    /// Builds a `NotFound`.
    pub fn not_found(resource: &'static str, id: impl Into<String>) -> Self {
        Self::NotFound {
            resource,
            id: id.into(),
        }
    }

    /// Builds a `PermissionDenied`.
    pub fn denied(reason: impl Into<String>) -> Self {
        Self::PermissionDenied {
            reason: reason.into(),
            recorded_event_id: None,
        }
    }

    /// Builds a `PermissionDenied` whose denial the event `event_id` already records.
    pub fn denied_and_recorded(reason: impl Into<String>, event_id: impl Into<String>) -> Self {
        Self::PermissionDenied {
            reason: reason.into(),
            recorded_event_id: Some(event_id.into()),
        }
    }

    /// Returns the gRPC code this error maps to.
    pub fn code(&self) -> Code {
        match self {
            Self::InvalidArgument { .. } => Code::InvalidArgument,
            Self::NotFound { .. } => Code::NotFound,
            Self::FailedPrecondition { .. } => Code::FailedPrecondition,
            Self::PermissionDenied { .. } => Code::PermissionDenied,
            Self::Unauthenticated { .. } => Code::Unauthenticated,
            Self::Aborted { .. } => Code::Aborted,
            Self::Unavailable { .. } => Code::Unavailable,
            Self::Internal(_) => Code::Internal,
        }
    }
}

/// Quotes a user value with Rust escapes, so control and bidirectional characters show
/// as escapes, and cuts it to `ECHO_LIMIT` characters.
fn echo(value: &str) -> String {
    let mut shortened: String = value.chars().take(ECHO_LIMIT).collect();
    if value.chars().count() > ECHO_LIMIT {
        shortened.push('…');
    }
    format!("{shortened:?}")
}

impl From<sea_orm::DbErr> for ServiceError {
    fn from(error: sea_orm::DbErr) -> Self {
        if crate::db::is_busy(&error) {
            return Self::Aborted {
                reason: "the database is busy; retry the call".to_owned(),
            };
        }
        Self::Internal(anyhow::Error::new(error).context("database operation failed"))
    }
}

impl From<ServiceError> for Status {
    fn from(error: ServiceError) -> Self {
        let code = error.code();
        match &error {
            ServiceError::Internal(source) => {
                let incident_id = uuid::Uuid::now_v7();
                tracing::error!(%incident_id, error = format!("{source:#}"), "internal error");
                Status::new(code, format!("internal error, incident {incident_id}"))
            }
            ServiceError::InvalidArgument { field, reason, .. } => {
                let mut details = ErrorDetails::new();
                details.add_bad_request_violation(field.clone(), reason.clone());
                Status::with_error_details(code, error.to_string(), details)
            }
            ServiceError::NotFound { resource, id } => {
                let details =
                    ErrorDetails::with_resource_info(*resource, id.clone(), "", "not found");
                Status::with_error_details(code, error.to_string(), details)
            }
            ServiceError::FailedPrecondition {
                resource,
                id,
                state,
                ..
            } => {
                let mut details = ErrorDetails::new();
                details.add_precondition_failure_violation(
                    "STATE",
                    format!("{resource}/{id}"),
                    format!("current state is {state}"),
                );
                Status::with_error_details(code, error.to_string(), details)
            }
            ServiceError::PermissionDenied {
                recorded_event_id: Some(event_id),
                ..
            } => {
                let mut status = Status::new(code, error.to_string());
                if let Ok(value) = event_id.parse() {
                    status
                        .metadata_mut()
                        .insert(crate::denials::RECORDED_HEADER, value);
                }
                status
            }
            _ => Status::new(code, error.to_string()),
        }
    }
}

/// Result of a service call.
pub type ServiceResult<T> = Result<T, ServiceError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_argument_carries_field_violation() {
        let status: Status = ServiceError::invalid("title", "", "must not be empty").into();
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(status.message().contains("title"), "{}", status.message());
        let details = status.get_error_details();
        let violations = details
            .bad_request()
            .expect("bad request details")
            .field_violations
            .clone();
        assert_eq!(violations.len(), 1);
        assert_eq!(violations[0].field, "title");
    }

    #[test]
    fn failed_precondition_names_state() {
        let status: Status =
            ServiceError::wrong_state("document", "d1", "REGISTERED", "revise").into();
        assert_eq!(status.code(), Code::FailedPrecondition);
        assert_eq!(
            status.message(),
            "cannot revise document d1: it is REGISTERED"
        );
    }

    #[test]
    fn echo_escapes_control_and_bidi_characters() {
        let error = ServiceError::invalid("title", "a\u{202e}b\0c\n", "bad");
        let message = error.to_string();
        assert!(message.contains("\\u{202e}"), "{message}");
        assert!(message.contains("\\0"), "{message}");
        assert!(!message.contains('\n'), "{message}");
    }

    #[test]
    fn echo_cuts_long_values() {
        let long = "x".repeat(1000);
        let error = ServiceError::invalid("title", &long, "too long");
        assert!(error.to_string().len() < 200);
    }
}
