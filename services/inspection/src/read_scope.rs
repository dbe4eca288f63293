//! Read rule of findings and department results, as pure functions. Administration, audit
//! and system callers read every finding and result. Supervisors and department heads read
//! the findings and results of their own department, and a head named in the company
//! directory also those of each department they head. Every other caller reads the findings
//! they recorded, were made responsible for, assigned or verified. The caller's roles and
//! departments come from the company directory, never from request fields.

use trace_runtime::context::Principal;
use trace_runtime::directory::Directory;
pub use trace_runtime::read_scope::ReadScope;

/// The findings and department results a caller may read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FindingScope {
    /// The scope shared with the other services, from the caller's roles and department.
    pub scope: ReadScope,
    /// Departments whose head in the company directory is the caller. A head may lead a
    /// department other than their own, and assigns the rectifications of its findings.
    pub headed_departments: Vec<String>,
}

impl FindingScope {
    /// Returns the scope of `principal`, with the departments `directory` names them head of.
    pub fn of(principal: &Principal, directory: &Directory) -> Self {
        let headed_departments = directory
            .departments()
            .filter(|department| department.head == principal.user_id)
            .map(|department| department.id.clone())
            .collect();
        Self {
            scope: ReadScope::of(principal),
            headed_departments,
        }
    }

    /// Returns true when the caller reads every finding and result.
    pub fn is_whole(&self) -> bool {
        self.scope == ReadScope::Whole
    }

    /// Returns true when the scope covers every finding and result of `department`.
    pub fn covers_department(&self, department: &str) -> bool {
        self.scope.covers_department(department)
            || (!department.is_empty() && self.headed_departments.iter().any(|d| d == department))
    }
}

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
pub fn may_read_finding(scope: &FindingScope, parties: &FindingParties<'_>) -> bool {
    let ReadScope::Involved { user_id, .. } = &scope.scope else {
        return true;
    };
    takes_part(user_id, parties) || scope.covers_department(parties.department)
}

/// Returns true when `user_id` recorded the finding of `parties`, is responsible for its
/// rectification, or assigned or verified it. Such a participant reads a CONFIDENTIAL or
/// SECRET finding without an access request.
pub fn takes_part(user_id: &str, parties: &FindingParties<'_>) -> bool {
    parties.recorded_by == user_id
        || parties.responsible_id == Some(user_id)
        || parties.assigned_by == Some(user_id)
        || parties.verified_by == Some(user_id)
}

/// Returns true when a caller with `scope` may read the aggregates of `department`, such as
/// its inspection results and completeness score. Those count every finding and record of
/// the department, so they need the whole view or the supervision of that department.
pub fn may_read_department(scope: &FindingScope, department: &str) -> bool {
    scope.covers_department(department)
}

#[cfg(test)]
mod tests {
    use trace_runtime::context::role;

    use super::*;

    /// A directory in which zhou.jie heads engineering and also sales, while belonging to
    /// engineering.
    const DIRECTORY: &str = r#"
[[departments]]
id = "engineering"
name = "Engineering"
head = "zhou.jie"

[[departments]]
id = "sales"
name = "Sales"
head = "zhou.jie"

[[employees]]
id = "zhou.jie"
name = "Zhou Jie"
department = "engineering"
position = "Head of engineering and sales"
roles = ["department_head"]
"#;

    fn scope(user_id: &str, department: &str, roles: &[&str]) -> FindingScope {
        let principal = Principal {
            user_id: user_id.to_owned(),
            display_name: String::new(),
            department: department.to_owned(),
            roles: roles.iter().map(|role| (*role).to_owned()).collect(),
        };
        FindingScope::of(&principal, &Directory::default())
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
            assert!(caller.is_whole(), "{held}");
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
    fn directory_head_reads_headed_departments() {
        let directory = Directory::parse(DIRECTORY).unwrap();
        let principal = Principal {
            user_id: "zhou.jie".to_owned(),
            display_name: String::new(),
            department: "engineering".to_owned(),
            roles: vec![role::EMPLOYEE.to_owned()],
        };
        let head = FindingScope::of(&principal, &directory);
        assert_eq!(head.headed_departments, ["engineering", "sales"]);
        assert!(may_read_finding(&head, &finding()));
        assert!(may_read_department(&head, "sales"));
        assert!(!may_read_department(&head, "finance"));
        assert!(!may_read_department(&head, ""));

        let sales = FindingParties {
            department: "sales",
            ..finding()
        };
        assert!(may_read_finding(&head, &sales));
        let finance = FindingParties {
            department: "finance",
            ..finding()
        };
        assert!(!may_read_finding(&head, &finance));
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
    fn participants_take_part() {
        for user_id in ["li.na", "xu.fang", "huang.wei", "chen.hua"] {
            assert!(takes_part(user_id, &finding()), "{user_id}");
        }
        assert!(!takes_part("zhou.jie", &finding()));
        assert!(!takes_part("", &finding()));
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
