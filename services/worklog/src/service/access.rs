//! Permission rules, decided from the company directory and the caller's roles. Supervisors and
//! department heads always come from the directory, never from request fields.

use trace_runtime::context::{Principal, role};
use trace_runtime::directory::{Directory, Employee};
use trace_runtime::{ServiceError, ServiceResult};

/// Author of a new report, as listed in the directory.
pub(super) struct Author<'a> {
    pub employee: &'a Employee,
    /// Direct supervisor, to whom the report is submitted.
    pub supervisor_id: &'a str,
}

/// Looks up the caller as a report author: they must be in the directory and have a direct
/// supervisor to submit to.
pub(super) fn author<'a>(directory: &'a Directory, user_id: &str) -> ServiceResult<Author<'a>> {
    let employee = directory.employee(user_id).ok_or_else(|| {
        ServiceError::denied(format!(
            "{user_id} is not in the company directory, so there is no supervisor to report to"
        ))
    })?;
    let supervisor_id = employee.supervisor.as_deref().ok_or_else(|| {
        ServiceError::wrong_state(
            "employee",
            user_id,
            "at the top of the directory with no supervisor to report to",
            "submit a report as",
        )
    })?;
    Ok(Author {
        employee,
        supervisor_id,
    })
}

/// Returns true for the audit and administration roles, which may read every record.
pub(super) fn reads_everything(principal: &Principal) -> bool {
    principal.has_role(role::ADMINISTRATION) || principal.has_role(role::AUDIT)
}

/// Returns true when the caller may read the reports of `employee_id`: the employee, their
/// direct supervisor, the head of their department, or the administration and audit roles.
pub(super) fn may_read_reports_of(
    directory: &Directory,
    principal: &Principal,
    employee_id: &str,
) -> bool {
    let caller = principal.user_id.as_str();
    if caller == employee_id || reads_everything(principal) {
        return true;
    }
    if directory.is_supervisor_of(caller, employee_id) {
        return true;
    }
    directory
        .employee(employee_id)
        .and_then(|employee| directory.department(&employee.department))
        .is_some_and(|department| department.head == caller)
}

/// Rejects a caller who may not read the reports of `employee_id`.
pub(super) fn require_reader(
    directory: &Directory,
    principal: &Principal,
    employee_id: &str,
) -> ServiceResult<()> {
    if may_read_reports_of(directory, principal, employee_id) {
        return Ok(());
    }
    Err(ServiceError::denied(format!(
        "{} may not read the reports of {employee_id}: only the employee, their direct supervisor, \
         their department head and the administration and audit roles may",
        principal.user_id
    )))
}

/// Builds the error for a caller who is not the direct supervisor of a report's author. The
/// message is the same whether or not the report exists, so it reveals nothing about others.
pub(super) fn not_the_supervisor(caller: &str, report_id: &str, verb: &str) -> ServiceError {
    ServiceError::denied(format!(
        "{caller} may not {verb} report {report_id}: only the author's direct supervisor may"
    ))
}

/// Returns true when `caller` is the direct supervisor of anyone.
pub(super) fn supervises_anyone(directory: &Directory, caller: &str) -> bool {
    !directory.reports_of(caller).is_empty()
}

/// Ids of the departments that `caller` heads.
pub(super) fn departments_headed_by(directory: &Directory, caller: &str) -> Vec<String> {
    directory
        .departments()
        .filter(|department| department.head == caller)
        .map(|department| department.id.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIRECTORY: &str = r#"
[[departments]]
id = "sales"
name = "Sales"
head = "head"

[[departments]]
id = "audit"
name = "Audit"
head = "auditor"

[[employees]]
id = "head"
name = "Head"
department = "sales"
position = "Head of sales"
roles = ["department_head"]

[[employees]]
id = "lead"
name = "Lead"
department = "sales"
position = "Team lead"
roles = ["supervisor"]
supervisor = "head"

[[employees]]
id = "clerk"
name = "Clerk"
department = "sales"
position = "Clerk"
roles = ["employee"]
supervisor = "lead"

[[employees]]
id = "auditor"
name = "Auditor"
department = "audit"
position = "Auditor"
roles = ["audit"]
supervisor = "head"
"#;

    fn principal(user_id: &str, roles: &[&str]) -> Principal {
        Principal {
            user_id: user_id.to_owned(),
            display_name: user_id.to_owned(),
            department: "sales".to_owned(),
            roles: roles.iter().map(|role| (*role).to_owned()).collect(),
        }
    }

    #[test]
    fn readers_of_a_clerks_reports() {
        let directory = Directory::parse(DIRECTORY).unwrap();
        let cases = [
            (principal("clerk", &[role::EMPLOYEE]), true),
            (principal("lead", &[role::SUPERVISOR]), true),
            (principal("head", &[role::DEPARTMENT_HEAD]), true),
            (principal("auditor", &[role::AUDIT]), true),
            (principal("anyone", &[role::ADMINISTRATION]), true),
            (principal("auditor", &[role::EMPLOYEE]), false),
            (principal("other", &[role::SUPERVISOR]), false),
        ];

        for (caller, expected) in cases {
            assert_eq!(
                may_read_reports_of(&directory, &caller, "clerk"),
                expected,
                "{caller:?}"
            );
        }
    }

    #[test]
    fn author_needs_a_supervisor() {
        let directory = Directory::parse(DIRECTORY).unwrap();

        assert_eq!(author(&directory, "clerk").unwrap().supervisor_id, "lead");
        let top = author(&directory, "head").err().unwrap();
        assert_eq!(top.code(), tonic::Code::FailedPrecondition);
        let stranger = author(&directory, "nobody").err().unwrap();
        assert_eq!(stranger.code(), tonic::Code::PermissionDenied);
    }

    #[test]
    fn supervisors_and_heads_are_found() {
        let directory = Directory::parse(DIRECTORY).unwrap();

        assert!(supervises_anyone(&directory, "lead"));
        assert!(!supervises_anyone(&directory, "clerk"));
        assert_eq!(departments_headed_by(&directory, "head"), ["sales"]);
        assert!(departments_headed_by(&directory, "clerk").is_empty());
    }
}
