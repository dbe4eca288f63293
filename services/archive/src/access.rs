//! Read access to the archive. Audit, administration and system callers read the whole
//! ledger. A department head reads the entries whose actor belongs to their department, and
//! any other caller reads the entries they caused. Queries leave out entries outside the
//! caller's view, and a single entry outside it is denied exactly as a missing one, so a
//! denial never reveals that a record is there.

use sea_orm::{ColumnTrait, QueryFilter, Select};
use trace_proto::common::v1::Confidentiality;
use trace_runtime::context::{CallContext, Clearance, role};
use trace_runtime::{ServiceError, ServiceResult};

use crate::entity::ledger_entry;

/// The part of the ledger a caller may read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Visibility {
    Whole,
    Department(String),
    Own(String),
}

/// Works out the caller's view from their roles.
pub fn visibility(context: &CallContext) -> Visibility {
    let principal = &context.principal;
    if [role::AUDIT, role::ADMINISTRATION, role::SYSTEM]
        .iter()
        .any(|held| principal.has_role(held))
    {
        Visibility::Whole
    } else if principal.has_role(role::DEPARTMENT_HEAD) {
        Visibility::Department(principal.department.clone())
    } else {
        Visibility::Own(principal.user_id.clone())
    }
}

/// Returns true when `context` may read the sealed payload of `entry`: the caller caused it,
/// or the caller reads the whole ledger and has a clearance claim at or above the entry's
/// level. Everyone else gets the payload type and digest with the payload marked sealed.
pub fn may_open_payload(context: &CallContext, entry: &ledger_entry::Model) -> bool {
    let principal = &context.principal;
    if !principal.user_id.is_empty() && principal.user_id == entry.actor_id {
        return true;
    }
    let required = match Confidentiality::try_from(entry.confidentiality) {
        Ok(Confidentiality::Secret) => Clearance::Secret,
        Ok(Confidentiality::Confidential) => Clearance::Confidential,
        Ok(Confidentiality::Internal) => Clearance::Internal,
        Ok(Confidentiality::Public) => Clearance::Public,
        Ok(Confidentiality::Unspecified) | Err(_) => Clearance::Secret,
    };
    visibility(context) == Visibility::Whole
        && context
            .clearance
            .is_some_and(|clearance| clearance >= required)
}

/// Restricts a ledger query to the caller's view.
pub fn restrict(
    query: Select<ledger_entry::Entity>,
    visibility: &Visibility,
) -> Select<ledger_entry::Entity> {
    match visibility {
        Visibility::Whole => query,
        Visibility::Department(department) => {
            query.filter(ledger_entry::Column::ActorDepartment.eq(department.clone()))
        }
        Visibility::Own(user_id) => query.filter(ledger_entry::Column::ActorId.eq(user_id.clone())),
    }
}

/// The error for an entry that a `GetEntry` lookup did not find in the caller's view. A
/// whole-ledger reader learns that it does not exist (`NOT_FOUND`); anyone else gets the same
/// `PERMISSION_DENIED` whether the entry exists outside their view or not at all, so the
/// response reveals nothing. The denial layer records it as a trace event.
pub fn entry_not_visible(view: &Visibility, key: &impl std::fmt::Debug) -> ServiceError {
    match view {
        Visibility::Whole => ServiceError::not_found("entry", format!("{key:?}")),
        Visibility::Department(_) | Visibility::Own(_) => ServiceError::denied(format!(
            "entry {key:?} is not in the caller's view of the ledger, or does not exist"
        )),
    }
}

/// Requires a caller who may see the whole ledger, for operations over all of it:
/// verification, status, proofs, checkpoints, backups, holds and disposition.
pub fn require_whole(context: &CallContext, action: &str) -> ServiceResult<()> {
    if visibility(context) == Visibility::Whole {
        return Ok(());
    }
    tracing::info!(user_id = %context.principal.user_id, action, "archive request denied");
    Err(ServiceError::denied(format!(
        "{action} needs the audit, administration or system role"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use trace_runtime::context::Principal;

    fn caller(roles: &[&str]) -> CallContext {
        let mut context = CallContext::system("archive");
        context.principal = Principal {
            user_id: "xu.fang".to_owned(),
            display_name: "徐芳".to_owned(),
            department: "engineering".to_owned(),
            roles: roles.iter().map(|role| (*role).to_owned()).collect(),
        };
        context
    }

    #[test]
    fn roles_map_to_views() {
        assert_eq!(visibility(&caller(&["audit"])), Visibility::Whole);
        assert_eq!(
            visibility(&caller(&["employee", "administration"])),
            Visibility::Whole
        );
        assert_eq!(
            visibility(&caller(&["department_head"])),
            Visibility::Department("engineering".to_owned())
        );
        assert_eq!(
            visibility(&caller(&["employee"])),
            Visibility::Own("xu.fang".to_owned())
        );
    }

    #[test]
    fn whole_ledger_operations_need_a_whole_view() {
        assert!(require_whole(&caller(&["audit"]), "verify").is_ok());
        let denied = require_whole(&caller(&["employee"]), "verify").unwrap_err();
        assert_eq!(denied.code(), tonic::Code::PermissionDenied);
    }
}
