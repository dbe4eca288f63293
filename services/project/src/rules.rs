//! Domain rules that need no database: how an approval chain decides a round, when an
//! acceptance group may record its result, and who may read a project.

use crate::state::{AcceptanceResult, ApprovalDecision, SignOffVerdict};

/// One step of an approval chain as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainStep {
    pub approver_id: String,
    /// A rejection by a required approver rejects the round; an advisory one does not.
    pub required: bool,
    pub decision: Option<ApprovalDecision>,
}

/// Status of an application round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChainStatus {
    /// The approver at this index of the chain decides next.
    Waiting { index: usize },
    /// Every approver decided and no required approver rejected.
    Approved,
    /// The required approver at this index rejected.
    Rejected { index: usize },
}

/// Evaluates a chain in order. Approvers decide one after another, so the first step without
/// a decision is the one whose turn it is, and a required rejection ends the round at once.
/// Advisory rejections are kept but do not stop the chain.
pub fn evaluate_chain(steps: &[ChainStep]) -> ChainStatus {
    for (index, step) in steps.iter().enumerate() {
        match step.decision {
            None => return ChainStatus::Waiting { index },
            Some(ApprovalDecision::Reject) if step.required => {
                return ChainStatus::Rejected { index };
            }
            Some(_) => {}
        }
    }
    ChainStatus::Approved
}

/// One acceptance group member's sign-off as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignOffStep {
    pub user_id: String,
    pub verdict: Option<SignOffVerdict>,
}

/// Checks whether the group may record `result` now. Returns the reason, shown after the
/// project's state, when not: the group must be set, every member must have signed, and a
/// PASSED result needs every sign-off to be PASS.
pub fn check_acceptance_result(
    members: &[SignOffStep],
    result: AcceptanceResult,
) -> Result<(), String> {
    if members.is_empty() {
        return Err("without an acceptance group".to_owned());
    }
    let signed = members
        .iter()
        .filter(|member| member.verdict.is_some())
        .count();
    if signed < members.len() {
        return Err(format!("with {signed} of {} sign-offs", members.len()));
    }
    let failed = members
        .iter()
        .filter(|member| member.verdict == Some(SignOffVerdict::Fail))
        .count();
    if result == AcceptanceResult::Passed && failed > 0 {
        return Err(format!("with {failed} FAIL sign-off(s), so it cannot pass"));
    }
    Ok(())
}

pub use trace_runtime::read_scope::ReadScope;

/// The people and the department of one project that the read rule compares.
#[derive(Debug, Clone, Copy)]
pub struct ProjectParties<'a> {
    pub manager_id: &'a str,
    pub department: &'a str,
    /// Team members, current and removed.
    pub member_ids: &'a [String],
    /// Approvers of every application round.
    pub approver_ids: &'a [String],
    /// Members of every acceptance group.
    pub acceptance_member_ids: &'a [String],
}

/// Returns true when a caller with `scope` may read the project of `parties`. The caller
/// manages it, is or was on its team, approves it or sits on one of its acceptance groups.
/// Otherwise the caller supervises or heads its department, or reads every project.
pub fn may_read(scope: &ReadScope, parties: &ProjectParties<'_>) -> bool {
    let ReadScope::Involved {
        user_id,
        department,
    } = scope
    else {
        return true;
    };
    parties.manager_id == user_id
        || parties.member_ids.contains(user_id)
        || parties.approver_ids.contains(user_id)
        || parties.acceptance_member_ids.contains(user_id)
        || department
            .as_deref()
            .is_some_and(|department| department == parties.department)
}

/// Returns true when `user_id` manages the project of `parties`, is or was on its team,
/// approves it or sits on one of its acceptance groups. Such a participant reads a
/// CONFIDENTIAL or SECRET project without an access request.
pub fn takes_part(user_id: &str, parties: &ProjectParties<'_>) -> bool {
    parties.manager_id == user_id
        || [
            parties.member_ids,
            parties.approver_ids,
            parties.acceptance_member_ids,
        ]
        .iter()
        .any(|ids| ids.iter().any(|id| id == user_id))
}

#[cfg(test)]
mod tests {
    use trace_runtime::context::{Principal, role};

    use super::*;

    fn step(required: bool, decision: Option<ApprovalDecision>) -> ChainStep {
        ChainStep {
            approver_id: "approver".to_owned(),
            required,
            decision,
        }
    }

    fn member(verdict: Option<SignOffVerdict>) -> SignOffStep {
        SignOffStep {
            user_id: "member".to_owned(),
            verdict,
        }
    }

    const APPROVE: Option<ApprovalDecision> = Some(ApprovalDecision::Approve);
    const REJECT: Option<ApprovalDecision> = Some(ApprovalDecision::Reject);

    #[test]
    fn first_undecided_step_is_next() {
        let chain = [step(true, APPROVE), step(true, None), step(true, None)];

        assert_eq!(evaluate_chain(&chain), ChainStatus::Waiting { index: 1 });
    }

    #[test]
    fn all_approved_is_approved() {
        let chain = [step(true, APPROVE), step(false, APPROVE)];

        assert_eq!(evaluate_chain(&chain), ChainStatus::Approved);
    }

    #[test]
    fn required_rejection_rejects_at_once() {
        let chain = [step(true, APPROVE), step(true, REJECT), step(true, None)];

        assert_eq!(evaluate_chain(&chain), ChainStatus::Rejected { index: 1 });
    }

    #[test]
    fn advisory_rejection_does_not_reject() {
        let waiting = [step(false, REJECT), step(true, None)];
        let done = [step(false, REJECT), step(true, APPROVE)];

        assert_eq!(evaluate_chain(&waiting), ChainStatus::Waiting { index: 1 });
        assert_eq!(evaluate_chain(&done), ChainStatus::Approved);
    }

    #[test]
    fn advisory_approver_still_takes_a_turn() {
        let chain = [step(true, APPROVE), step(false, None)];

        assert_eq!(evaluate_chain(&chain), ChainStatus::Waiting { index: 1 });
    }

    #[test]
    fn result_needs_a_group() {
        let reason = check_acceptance_result(&[], AcceptanceResult::Failed).unwrap_err();

        assert!(reason.contains("without an acceptance group"), "{reason}");
    }

    #[test]
    fn result_needs_every_sign_off() {
        let members = [member(Some(SignOffVerdict::Pass)), member(None)];

        let reason = check_acceptance_result(&members, AcceptanceResult::Failed).unwrap_err();

        assert!(reason.contains("1 of 2 sign-offs"), "{reason}");
    }

    #[test]
    fn pass_needs_every_verdict_pass() {
        let members = [
            member(Some(SignOffVerdict::Pass)),
            member(Some(SignOffVerdict::Fail)),
        ];

        let passed = check_acceptance_result(&members, AcceptanceResult::Passed);
        let failed = check_acceptance_result(&members, AcceptanceResult::Failed);

        assert!(passed.unwrap_err().contains("1 FAIL"));
        assert_eq!(failed, Ok(()));
    }

    #[test]
    fn unanimous_pass_may_pass() {
        let members = [
            member(Some(SignOffVerdict::Pass)),
            member(Some(SignOffVerdict::Pass)),
        ];

        assert_eq!(
            check_acceptance_result(&members, AcceptanceResult::Passed),
            Ok(())
        );
    }

    fn principal(user_id: &str, department: &str, roles: &[&str]) -> Principal {
        Principal {
            user_id: user_id.to_owned(),
            display_name: String::new(),
            department: department.to_owned(),
            roles: roles.iter().map(|role| (*role).to_owned()).collect(),
        }
    }

    fn may(user_id: &str, department: &str, roles: &[&str]) -> bool {
        let members = ["wang.wu".to_owned()];
        let approvers = ["zhao.liu".to_owned()];
        let acceptance_members = ["chen.qa".to_owned()];
        let parties = ProjectParties {
            manager_id: "li.na",
            department: "engineering",
            member_ids: &members,
            approver_ids: &approvers,
            acceptance_member_ids: &acceptance_members,
        };
        may_read(
            &ReadScope::of(&principal(user_id, department, roles)),
            &parties,
        )
    }

    #[test]
    fn participants_read_their_project() {
        assert!(may("li.na", "finance", &[role::EMPLOYEE]), "manager");
        assert!(may("wang.wu", "finance", &[role::EMPLOYEE]), "member");
        assert!(may("zhao.liu", "finance", &[role::EMPLOYEE]), "approver");
        assert!(
            may("chen.qa", "finance", &[role::EMPLOYEE]),
            "acceptance group"
        );
    }

    #[test]
    fn other_employees_are_denied() {
        assert!(!may("sun.ba", "engineering", &[role::EMPLOYEE]));
        assert!(!may("sun.ba", "finance", &[role::FINANCE]));
    }

    #[test]
    fn heads_read_their_department_only() {
        assert!(may("zhou.jie", "engineering", &[role::DEPARTMENT_HEAD]));
        assert!(may("zhou.jie", "engineering", &[role::SUPERVISOR]));
        assert!(!may("zhou.jie", "finance", &[role::DEPARTMENT_HEAD]));
        assert!(!may("zhou.jie", "finance", &[role::SUPERVISOR]));
    }

    #[test]
    fn whole_archive_roles_read_everything() {
        for held in [role::ADMINISTRATION, role::AUDIT, role::SYSTEM] {
            let caller = principal("zhao.yun", "audit", &[role::EMPLOYEE, held]);
            assert_eq!(ReadScope::of(&caller), ReadScope::Whole, "{held}");
            assert!(may("zhao.yun", "audit", &[held]), "{held}");
        }
    }

    #[test]
    fn empty_department_is_not_headed() {
        let head = principal("zhou.jie", "", &[role::DEPARTMENT_HEAD]);
        assert_eq!(
            ReadScope::of(&head),
            ReadScope::Involved {
                user_id: "zhou.jie".to_owned(),
                department: None,
            }
        );
    }
}
