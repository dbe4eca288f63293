//! Domain rules that need no database: how an approval chain decides a round, and when an
//! acceptance group may record its result.

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

#[cfg(test)]
mod tests {
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
}
