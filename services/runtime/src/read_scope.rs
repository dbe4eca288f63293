//! Who may read a service's records, in the archive's terms. Administration, audit and system
//! callers read everything; supervisors and department heads read their department's records;
//! everyone reads the records they take part in. Each service decides who takes part in its
//! records. This module contains the part they share: the caller's scope and the error of a
//! denied read, whose message is the same for an existing and a missing record.

use trace_proto::common::v1::AccessDenied;

use crate::context::{CallContext, Principal, role};
use crate::denials::record_access_denied;
use crate::outbox::Outbox;
use crate::{ServiceError, ServiceResult};

/// The records a caller may read, from their roles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadScope {
    /// Every record: callers with the administration, audit or system role.
    Whole,
    /// The records that `user_id` takes part in, and with `department` set every record of
    /// that department.
    Involved {
        user_id: String,
        /// The caller's department when they are a supervisor or department head.
        department: Option<String>,
    },
}

impl ReadScope {
    /// Returns the caller's scope. Administration, audit and system read everything, as they
    /// read the whole archive. Supervisors and department heads also read the records of
    /// their own department.
    pub fn of(principal: &Principal) -> Self {
        if [role::ADMINISTRATION, role::AUDIT, role::SYSTEM]
            .iter()
            .any(|role_name| principal.has_role(role_name))
        {
            return Self::Whole;
        }
        let heads_department =
            principal.has_role(role::SUPERVISOR) || principal.has_role(role::DEPARTMENT_HEAD);
        // An empty department would match records stored before departments were.
        let department = (heads_department && !principal.department.is_empty())
            .then(|| principal.department.clone());
        Self::Involved {
            user_id: principal.user_id.clone(),
            department,
        }
    }

    /// Returns true when the scope covers every record of `department`.
    pub fn covers_department(&self, department: &str) -> bool {
        match self {
            Self::Whole => true,
            Self::Involved {
                department: Some(own),
                ..
            } => !department.is_empty() && own == department,
            Self::Involved { .. } => false,
        }
    }
}

/// One by-id read that a service guards with its read rule.
#[derive(Debug, Clone, Copy)]
pub struct GuardedRead<'a> {
    pub service: &'static str,
    /// The gRPC service's full name, such as `trace.meeting.v1.MeetingService`.
    pub grpc_service: &'static str,
    /// The method's name, such as `GetMeeting`.
    pub method: &'static str,
    /// Record name used in messages, such as `meeting`.
    pub record: &'static str,
    pub record_id: &'a str,
    /// Description of the callers who may read such a record, which ends the denial message.
    pub readers: &'static str,
}

impl GuardedRead<'_> {
    /// Returns the denial message, which is the same whether the record exists or not.
    pub fn denial_message(&self, user_id: &str) -> String {
        format!(
            "{} {} does not exist or {user_id} may not read it; {}",
            self.record, self.record_id, self.readers
        )
    }

    /// Records the denied read of a missing record as an `access.denied` event, the event
    /// that the denial layer writes for other denials, and returns the caller's error.
    pub async fn deny_missing(&self, outbox: &Outbox, context: &CallContext) -> ServiceError {
        let denial = AccessDenied {
            method: format!("/{}/{}", self.grpc_service, self.method),
            code: "PERMISSION_DENIED".to_owned(),
            reason: self.denial_message(&context.principal.user_id),
        };
        let recorded = record_access_denied(outbox, self.service, context, &denial).await;
        self.denial_error(context, recorded)
    }

    /// Turns a recorded denial into the error the caller receives. When recording failed the
    /// call fails with that error, so no read is denied without a trace.
    pub fn denial_error(
        &self,
        context: &CallContext,
        recorded: ServiceResult<String>,
    ) -> ServiceError {
        let user_id = &context.principal.user_id;
        match recorded {
            Ok(event_id) => {
                tracing::info!(
                    record = self.record,
                    record_id = self.record_id,
                    user_id = %user_id,
                    method = self.method,
                    %event_id,
                    "read denied"
                );
                ServiceError::denied_and_recorded(self.denial_message(user_id), event_id)
            }
            Err(error) => error,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn principal(department: &str, roles: &[&str]) -> Principal {
        Principal {
            user_id: "u-1".to_owned(),
            display_name: String::new(),
            department: department.to_owned(),
            roles: roles.iter().map(|role| (*role).to_owned()).collect(),
        }
    }

    #[test]
    fn scope_of_whole_view_roles() {
        for held in [role::ADMINISTRATION, role::AUDIT, role::SYSTEM] {
            let scope = ReadScope::of(&principal("finance", &[role::EMPLOYEE, held]));
            assert_eq!(scope, ReadScope::Whole, "{held}");
            assert!(scope.covers_department("sales"));
        }
    }

    #[test]
    fn scope_of_heads_and_supervisors() {
        for held in [role::SUPERVISOR, role::DEPARTMENT_HEAD] {
            let scope = ReadScope::of(&principal("finance", &[held]));
            assert!(scope.covers_department("finance"), "{held}");
            assert!(!scope.covers_department("sales"), "{held}");
            assert!(!scope.covers_department(""), "{held}");
        }
    }

    #[test]
    fn scope_of_employee() {
        let scope = ReadScope::of(&principal("finance", &[role::EMPLOYEE]));
        assert_eq!(
            scope,
            ReadScope::Involved {
                user_id: "u-1".to_owned(),
                department: None
            }
        );
        assert!(!scope.covers_department("finance"));
    }

    #[test]
    fn scope_of_head_without_department() {
        let scope = ReadScope::of(&principal("", &[role::DEPARTMENT_HEAD]));
        assert!(!scope.covers_department(""));
    }

    #[test]
    fn denial_message_hides_existence() {
        let read = GuardedRead {
            service: "meeting",
            grpc_service: "trace.meeting.v1.MeetingService",
            method: "GetMeeting",
            record: "meeting",
            record_id: "m-1",
            readers: "only its participants may",
        };
        assert_eq!(
            read.denial_message("u-9"),
            "meeting m-1 does not exist or u-9 may not read it; only its participants may"
        );
    }
}
