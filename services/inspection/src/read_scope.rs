//! Read rule of findings and department results, as pure functions. Administration, audit
//! and system callers read every finding and result. Supervisors and department heads read
//! the findings and results of their own department. Every other caller reads the findings
//! they recorded, were made responsible for, assigned or verified. The caller's roles and
//! department come from the company directory through [`ReadScope::of`], never from request
//! fields.

pub use trace_runtime::read_scope::ReadScope;

/// The people and the department of one finding that the read rule compares.
#[derive(Debug, Clone, Copy)]
pub struct FindingParties<'a> {
    /// Department the finding is about.
    pub department: &'a str,
    /// User who recorded the finding, or `system:inspection` for a finding raised by a rule.
    pub recorded_by: &'a str,
    /// Person responsible for the rectification, once one is assigned.
    pub responsible_id: Option<&'a str>,
    /// User who assigned the rectification.
    pub assigned_by: Option<&'a str>,
    /// User who verified the rectification result.
    pub verified_by: Option<&'a str>,
}

/// Returns true when a caller with `scope` may read the finding of `parties`: the caller
/// recorded it, is responsible for its rectification, assigned or verified it, supervises or
/// heads its department, or reads every finding.
pub fn may_read_finding(scope: &ReadScope, parties: &FindingParties<'_>) -> bool {
    let ReadScope::Involved { user_id, .. } = scope else {
        return true;
    };
    let user_id = user_id.as_str();
    parties.recorded_by == user_id
        || parties.responsible_id == Some(user_id)
        || parties.assigned_by == Some(user_id)
        || parties.verified_by == Some(user_id)
        || scope.covers_department(parties.department)
}

/// Returns true when a caller with `scope` may read the aggregates of `department`, such as
/// its inspection results and completeness score. Those count every finding and record of
/// the department, so they need the whole view or the supervision of that department.
pub fn may_read_department(scope: &ReadScope, department: &str) -> bool {
    scope.covers_department(department)
}

#[cfg(test)]
mod tests {
    use trace_runtime::context::{Principal, role};

    use super::*;

    fn scope(user_id: &str, department: &str, roles: &[&str]) -> ReadScope {
        ReadScope::of(&Principal {
            user_id: user_id.to_owned(),
            display_name: String::new(),
            department: department.to_owned(),
            roles: roles.iter().map(|role| (*role).to_owned()).collect(),
        })
    }

    /// Returns a finding about `engineering` recorded by li.na, assigned by huang.wei to
    /// xu.fang and verified by chen.hua.
    fn finding() -> FindingParties<'static> {
        FindingParties {
            department: "engineering",
            recorded_by: "li.na",
            responsible_id: Some("xu.fang"),
            assigned_by: Some("huang.wei"),
            verified_by: Some("chen.hua"),
        }
    }

    fn may(user_id: &str, department: &str, roles: &[&str]) -> bool {
        may_read_finding(&scope(user_id, department, roles), &finding())
    }

    #[test]
    fn whole_view_roles_read_every_finding() {
        for held in [role::ADMINISTRATION, role::AUDIT, role::SYSTEM] {
            let caller = scope("zhao.yun", "audit", &[role::EMPLOYEE, held]);
            assert_eq!(caller, ReadScope::Whole, "{held}");
            assert!(may_read_finding(&caller, &finding()), "{held}");
            assert!(may_read_department(&caller, "engineering"), "{held}");
            assert!(may_read_department(&caller, "sales"), "{held}");
        }
    }

    #[test]
    fn heads_read_their_department_only() {
        for held in [role::DEPARTMENT_HEAD, role::SUPERVISOR] {
            assert!(may("zhou.jie", "engineering", &[held]), "{held}");
            assert!(!may("zhou.jie", "sales", &[held]), "{held}");

            let own = scope("zhou.jie", "engineering", &[held]);
            assert!(may_read_department(&own, "engineering"), "{held}");
            assert!(!may_read_department(&own, "sales"), "{held}");
        }
    }

    #[test]
    fn recorder_reads_finding() {
        assert!(may("li.na", "admin-office", &[role::EMPLOYEE]));
    }

    #[test]
    fn responsible_person_reads_finding() {
        assert!(may("xu.fang", "sales", &[role::EMPLOYEE]));
    }

    #[test]
    fn assigner_reads_finding() {
        assert!(may("huang.wei", "sales", &[role::EMPLOYEE]));
    }

    #[test]
    fn verifier_reads_finding() {
        assert!(may("chen.hua", "sales", &[role::EMPLOYEE]));
    }

    #[test]
    fn employees_of_the_department_are_denied() {
        assert!(!may("sun.ba", "engineering", &[role::EMPLOYEE]));
        assert!(!may("sun.ba", "engineering", &[role::FINANCE]));
    }

    #[test]
    fn employees_read_no_department_aggregates() {
        let employee = scope("xu.fang", "engineering", &[role::EMPLOYEE]);
        assert!(!may_read_department(&employee, "engineering"));
        assert!(!may_read_department(&employee, "sales"));
    }

    #[test]
    fn rule_finding_needs_department_view() {
        let recorded = FindingParties {
            department: "engineering",
            recorded_by: "system:inspection",
            responsible_id: None,
            assigned_by: None,
            verified_by: None,
        };
        let employee = scope("xu.fang", "engineering", &[role::EMPLOYEE]);
        assert!(!may_read_finding(&employee, &recorded));
        let head = scope("huang.wei", "engineering", &[role::DEPARTMENT_HEAD]);
        assert!(may_read_finding(&head, &recorded));
    }

    #[test]
    fn head_without_department_reads_only_own() {
        let head = scope("zhou.jie", "", &[role::DEPARTMENT_HEAD]);
        let empty = FindingParties {
            department: "",
            ..finding()
        };
        assert!(!may_read_finding(&head, &empty));
        assert!(!may_read_department(&head, ""));
    }
}
