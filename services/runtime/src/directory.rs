//! The company directory: departments, employees, positions, roles and each employee's
//! supervisor. Every service reads it the same way, from a TOML file named in configuration
//! (`directory_file`), so that reports reach the right supervisor and department heads see
//! their own department.
//!
//! ```toml
//! [[departments]]
//! id = "admin-office"
//! name = "行政部"
//! head = "li.na"
//!
//! [[employees]]
//! id = "li.na"
//! name = "李娜"
//! department = "admin-office"
//! position = "行政主管"
//! roles = ["department_head", "administration"]
//! # supervisor = "..."   (absent for the top of the hierarchy)
//! ```

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use serde::Deserialize;

use crate::context::role;

/// A department.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Department {
    pub id: String,
    pub name: String,
    /// User id of the department head.
    pub head: String,
}

/// An employee.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Employee {
    pub id: String,
    pub name: String,
    pub department: String,
    pub position: String,
    /// Roles from the policy; see [`crate::context::role`].
    pub roles: Vec<String>,
    /// User id of the direct supervisor; absent at the top of the hierarchy.
    #[serde(default)]
    pub supervisor: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DirectoryFile {
    #[serde(default)]
    departments: Vec<Department>,
    #[serde(default)]
    employees: Vec<Employee>,
}

/// A directory that failed to load or is inconsistent.
#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    #[error("failed to read directory file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("invalid directory file {path}: {message}")]
    Parse { path: String, message: String },
    #[error("inconsistent directory: {0}")]
    Inconsistent(String),
}

/// The loaded, checked directory.
#[derive(Debug, Clone, Default)]
pub struct Directory {
    departments: BTreeMap<String, Department>,
    employees: BTreeMap<String, Employee>,
}

impl Directory {
    /// Reads and checks a directory file.
    pub fn load(path: &Path) -> Result<Self, DirectoryError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| DirectoryError::Read {
            path: shown.clone(),
            source,
        })?;
        Self::parse(&text).map_err(|error| match error {
            DirectoryError::Parse { message, .. } => DirectoryError::Parse {
                path: shown,
                message,
            },
            other => other,
        })
    }

    /// Parses and checks directory TOML.
    pub fn parse(text: &str) -> Result<Self, DirectoryError> {
        let file: DirectoryFile = toml::from_str(text).map_err(|error| DirectoryError::Parse {
            path: String::new(),
            message: error.to_string(),
        })?;
        let mut directory = Self::default();
        for department in file.departments {
            let id = department.id.clone();
            if directory
                .departments
                .insert(id.clone(), department)
                .is_some()
            {
                return Err(DirectoryError::Inconsistent(format!(
                    "department {id} is listed twice"
                )));
            }
        }
        for employee in file.employees {
            let id = employee.id.clone();
            if directory.employees.insert(id.clone(), employee).is_some() {
                return Err(DirectoryError::Inconsistent(format!(
                    "employee {id} is listed twice"
                )));
            }
        }
        directory.check()?;
        Ok(directory)
    }

    fn check(&self) -> Result<(), DirectoryError> {
        let inconsistent = |message: String| Err(DirectoryError::Inconsistent(message));
        for employee in self.employees.values() {
            crate::validate::user_id("employees.id", &employee.id)
                .map_err(|error| DirectoryError::Inconsistent(error.to_string()))?;
            if !self.departments.contains_key(&employee.department) {
                return inconsistent(format!(
                    "employee {} belongs to unknown department {}",
                    employee.id, employee.department
                ));
            }
            if let Some(unknown) = employee
                .roles
                .iter()
                .find(|r| !role::ALL.contains(&r.as_str()))
            {
                return inconsistent(format!(
                    "employee {} has unknown role {unknown}",
                    employee.id
                ));
            }
            if let Some(supervisor) = &employee.supervisor
                && !self.employees.contains_key(supervisor)
            {
                return inconsistent(format!(
                    "employee {} has unknown supervisor {supervisor}",
                    employee.id
                ));
            }
            self.check_no_cycle(&employee.id)?;
        }
        for department in self.departments.values() {
            crate::validate::department("departments.id", &department.id)
                .map_err(|error| DirectoryError::Inconsistent(error.to_string()))?;
            if !self.employees.contains_key(&department.head) {
                return inconsistent(format!(
                    "department {} has unknown head {}",
                    department.id, department.head
                ));
            }
        }
        Ok(())
    }

    fn check_no_cycle(&self, start: &str) -> Result<(), DirectoryError> {
        let mut seen = HashSet::new();
        let mut current = Some(start);
        while let Some(id) = current {
            if !seen.insert(id) {
                return Err(DirectoryError::Inconsistent(format!(
                    "the supervisor chain of {start} loops back to {id}"
                )));
            }
            current = self.employees.get(id).and_then(|e| e.supervisor.as_deref());
        }
        Ok(())
    }

    /// Returns an employee by user id.
    pub fn employee(&self, user_id: &str) -> Option<&Employee> {
        self.employees.get(user_id)
    }

    /// Returns a department by id.
    pub fn department(&self, department_id: &str) -> Option<&Department> {
        self.departments.get(department_id)
    }

    /// Returns the direct supervisor of an employee.
    pub fn supervisor_of(&self, user_id: &str) -> Option<&Employee> {
        let supervisor = self.employees.get(user_id)?.supervisor.as_deref()?;
        self.employees.get(supervisor)
    }

    /// Returns true when `supervisor_id` is the direct supervisor of `user_id`.
    pub fn is_supervisor_of(&self, supervisor_id: &str, user_id: &str) -> bool {
        self.supervisor_of(user_id)
            .is_some_and(|s| s.id == supervisor_id)
    }

    /// Returns the employees whose direct supervisor is `supervisor_id`, ordered by id.
    pub fn reports_of(&self, supervisor_id: &str) -> Vec<&Employee> {
        self.employees
            .values()
            .filter(|e| e.supervisor.as_deref() == Some(supervisor_id))
            .collect()
    }

    /// Returns the employees of a department, ordered by id.
    pub fn members_of(&self, department_id: &str) -> Vec<&Employee> {
        self.employees
            .values()
            .filter(|e| e.department == department_id)
            .collect()
    }

    /// Returns every department, ordered by id.
    pub fn departments(&self) -> impl Iterator<Item = &Department> {
        self.departments.values()
    }

    /// Returns every employee, ordered by id.
    pub fn employees(&self) -> impl Iterator<Item = &Employee> {
        self.employees.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"
[[departments]]
id = "admin-office"
name = "行政部"
head = "li.na"

[[employees]]
id = "li.na"
name = "李娜"
department = "admin-office"
position = "行政主管"
roles = ["department_head", "administration"]

[[employees]]
id = "zhang.min"
name = "張敏"
department = "admin-office"
position = "文員"
roles = ["employee"]
supervisor = "li.na"
"#;

    #[test]
    fn sample_parses_and_answers_supervisor() {
        let directory = Directory::parse(SAMPLE).unwrap();
        assert_eq!(directory.supervisor_of("zhang.min").unwrap().id, "li.na");
        assert!(directory.is_supervisor_of("li.na", "zhang.min"));
        assert!(!directory.is_supervisor_of("zhang.min", "li.na"));
        assert_eq!(directory.reports_of("li.na").len(), 1);
        assert_eq!(directory.members_of("admin-office").len(), 2);
    }

    #[test]
    fn unknown_supervisor_is_rejected() {
        let text = SAMPLE.replace("supervisor = \"li.na\"", "supervisor = \"nobody\"");
        let error = Directory::parse(&text).unwrap_err().to_string();
        assert!(error.contains("unknown supervisor nobody"), "{error}");
    }

    #[test]
    fn supervisor_cycle_is_rejected() {
        let text = SAMPLE.replace(
            "roles = [\"department_head\", \"administration\"]",
            "roles = [\"department_head\"]\nsupervisor = \"zhang.min\"",
        );
        let error = Directory::parse(&text).unwrap_err().to_string();
        assert!(error.contains("loops back"), "{error}");
    }

    #[test]
    fn unknown_role_is_rejected() {
        let text = SAMPLE.replace("roles = [\"employee\"]", "roles = [\"root\"]");
        assert!(Directory::parse(&text).is_err());
    }

    #[test]
    fn shipped_sample_directory_loads() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/local/directory.toml");
        let directory = Directory::load(&path).unwrap();
        assert!(directory.departments().count() >= 4);
        for employee in directory.employees() {
            let is_head = directory.departments().any(|d| d.head == employee.id);
            assert!(
                is_head || employee.supervisor.is_some(),
                "{} has no supervisor",
                employee.id
            );
        }
    }
}
