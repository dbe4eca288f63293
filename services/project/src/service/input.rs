//! Validation of the application, the largest request. Each check names the field, with
//! the index of a repeated item, for example `approval_chain[2].approver_id`.

use std::collections::HashSet;

use chrono::NaiveDate;
use trace_proto::common::v1::Confidentiality;
use trace_proto::project::v1 as proto;
use trace_runtime::{ServiceError, ServiceResult, validate};

/// Maximum length of a project name, task title and milestone name, in characters.
const NAME_MAX_CHARS: usize = 200;
/// Maximum length of the background, goals, resource needs and expected results.
const SECTION_MAX_CHARS: usize = 4000;
/// Maximum length of a task description.
const DESCRIPTION_MAX_CHARS: usize = 2000;
/// Maximum number of task breakdown items, and of milestones.
const MAX_ITEMS: usize = 50;
/// Maximum number of approvers in a chain.
const MAX_APPROVERS: usize = 10;

/// A validated application.
#[derive(Debug, Clone)]
pub(super) struct ApplicationInput {
    pub name: String,
    pub department: String,
    pub confidentiality: Confidentiality,
    pub background: String,
    pub goals: String,
    pub tasks: Vec<proto::Task>,
    pub milestones: Vec<(String, NaiveDate)>,
    pub resource_needs: String,
    pub expected_results: String,
    pub approval_chain: Vec<proto::ApproverEntry>,
}

/// Checks an application submitted by `applicant` on `today` in the business time zone.
/// `prefix` goes before every field name, for example `application.` in a resubmission.
pub(super) fn application(
    request: &proto::SubmitApplicationRequest,
    prefix: &str,
    applicant: &str,
    today: NaiveDate,
) -> ServiceResult<ApplicationInput> {
    let field = |name: &str| format!("{prefix}{name}");
    Ok(ApplicationInput {
        name: validate::line(&field("name"), &request.name, 1, NAME_MAX_CHARS)?,
        department: validate::department(&field("department"), &request.department)?,
        confidentiality: validate::enum_value(&field("confidentiality"), request.confidentiality)?,
        background: section(&field("background"), &request.background)?,
        goals: section(&field("goals"), &request.goals)?,
        tasks: tasks(&field("tasks"), &request.tasks)?,
        milestones: milestones(&field("milestones"), &request.milestones, today)?,
        resource_needs: section(&field("resource_needs"), &request.resource_needs)?,
        expected_results: section(&field("expected_results"), &request.expected_results)?,
        approval_chain: approval_chain(
            &field("approval_chain"),
            &request.approval_chain,
            applicant,
        )?,
    })
}

fn section(field: &str, value: &str) -> ServiceResult<String> {
    validate::text(field, value, 1, SECTION_MAX_CHARS)
}

/// Checks that a repeated field has `1..=max` items.
pub(super) fn item_count(field: &str, count: usize, max: usize) -> ServiceResult<()> {
    if (1..=max).contains(&count) {
        return Ok(());
    }
    let reason = if count == 0 {
        "is required".to_owned()
    } else {
        format!("must have 1 to {max} items, got {count}")
    };
    Err(ServiceError::invalid(
        field,
        &format!("{count} items"),
        reason,
    ))
}

fn tasks(field: &str, tasks: &[proto::Task]) -> ServiceResult<Vec<proto::Task>> {
    item_count(field, tasks.len(), MAX_ITEMS)?;
    tasks
        .iter()
        .enumerate()
        .map(|(index, task)| {
            Ok(proto::Task {
                title: validate::line(
                    &format!("{field}[{index}].title"),
                    &task.title,
                    1,
                    NAME_MAX_CHARS,
                )?,
                description: validate::text(
                    &format!("{field}[{index}].description"),
                    &task.description,
                    0,
                    DESCRIPTION_MAX_CHARS,
                )?,
            })
        })
        .collect()
}

/// Milestones must be in non-decreasing date order and not before `today`, because a
/// schedule plans the future.
fn milestones(
    field: &str,
    milestones: &[proto::Milestone],
    today: NaiveDate,
) -> ServiceResult<Vec<(String, NaiveDate)>> {
    item_count(field, milestones.len(), MAX_ITEMS)?;
    let mut checked: Vec<(String, NaiveDate)> = Vec::with_capacity(milestones.len());
    for (index, milestone) in milestones.iter().enumerate() {
        let name = validate::line(
            &format!("{field}[{index}].name"),
            &milestone.name,
            1,
            NAME_MAX_CHARS,
        )?;
        let date_field = format!("{field}[{index}].due_date");
        let due_date = validate::date(&date_field, milestone.due_date.as_ref())?;
        if due_date < today {
            return Err(ServiceError::invalid(
                date_field,
                &due_date.to_string(),
                format!("must not be before today ({today})"),
            ));
        }
        if let Some((_, previous)) = checked.last()
            && due_date < *previous
        {
            return Err(ServiceError::invalid(
                date_field,
                &due_date.to_string(),
                format!("must not be before the previous milestone ({previous})"),
            ));
        }
        checked.push((name, due_date));
    }
    Ok(checked)
}

/// Checks an approval chain: each approver once, never the applicant, and at least one
/// required approver, so that no round can be approved by advisory opinions alone.
fn approval_chain(
    field: &str,
    chain: &[proto::ApproverEntry],
    applicant: &str,
) -> ServiceResult<Vec<proto::ApproverEntry>> {
    item_count(field, chain.len(), MAX_APPROVERS)?;
    let mut seen = HashSet::new();
    for (index, entry) in chain.iter().enumerate() {
        let approver_field = format!("{field}[{index}].approver_id");
        let approver_id = validate::user_id(&approver_field, &entry.approver_id)?;
        if approver_id == applicant {
            return Err(ServiceError::invalid(
                approver_field,
                &approver_id,
                "must not be the applicant; choose another approver",
            ));
        }
        if !seen.insert(approver_id.clone()) {
            return Err(ServiceError::invalid(
                approver_field,
                &approver_id,
                "appears more than once in the chain",
            ));
        }
    }
    if !chain.iter().any(|entry| entry.required) {
        return Err(ServiceError::invalid(
            field,
            &format!("{} advisory approvers", chain.len()),
            "needs at least one required approver",
        ));
    }
    Ok(chain.to_vec())
}

#[cfg(test)]
mod tests {
    use trace_runtime::clock::proto_date;

    use super::*;

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 12, 4).unwrap()
    }

    fn valid() -> proto::SubmitApplicationRequest {
        proto::SubmitApplicationRequest {
            name: "倉庫管理系統".to_owned(),
            department: "it".to_owned(),
            confidentiality: Confidentiality::Internal as i32,
            background: "paper records".to_owned(),
            goals: "digital records".to_owned(),
            tasks: vec![proto::Task {
                title: "design".to_owned(),
                description: String::new(),
            }],
            milestones: vec![proto::Milestone {
                name: "design done".to_owned(),
                due_date: Some(proto_date(today())),
            }],
            resource_needs: "two engineers".to_owned(),
            expected_results: "a running system".to_owned(),
            approval_chain: vec![proto::ApproverEntry {
                approver_id: "head.it".to_owned(),
                required: true,
            }],
        }
    }

    fn field_of(result: ServiceResult<ApplicationInput>) -> String {
        match result {
            Err(ServiceError::InvalidArgument { field, .. }) => field,
            other => panic!("expected an invalid argument, got {other:?}"),
        }
    }

    #[test]
    fn valid_application_passes() {
        let input = application(&valid(), "", "li.wei", today()).unwrap();

        assert_eq!(input.milestones[0].1, today());
        assert_eq!(input.approval_chain.len(), 1);
    }

    #[test]
    fn invalid_fields_are_named() {
        let past = NaiveDate::from_ymd_opt(2026, 12, 3).unwrap();
        let approver = |id: &str, required: bool| proto::ApproverEntry {
            approver_id: id.to_owned(),
            required,
        };
        type Change = Box<dyn Fn(&mut proto::SubmitApplicationRequest)>;
        let cases: Vec<(&str, Change)> = vec![
            ("name", Box::new(|request| request.name = "a\nb".to_owned())),
            (
                "department",
                Box::new(|request| request.department = "IT".to_owned()),
            ),
            (
                "confidentiality",
                Box::new(|request| request.confidentiality = 0),
            ),
            ("background", Box::new(|request| request.background.clear())),
            ("tasks", Box::new(|request| request.tasks.clear())),
            (
                "tasks[0].title",
                Box::new(|request| request.tasks[0].title.clear()),
            ),
            ("milestones", Box::new(|request| request.milestones.clear())),
            (
                "milestones[0].due_date",
                Box::new(move |request| request.milestones[0].due_date = Some(proto_date(past))),
            ),
            (
                "approval_chain",
                Box::new(|request| request.approval_chain.clear()),
            ),
            (
                "approval_chain[1].approver_id",
                Box::new(move |request| request.approval_chain.push(approver("head.it", false))),
            ),
            (
                "approval_chain[0].approver_id",
                Box::new(move |request| request.approval_chain[0] = approver("li.wei", true)),
            ),
            (
                "approval_chain",
                Box::new(move |request| request.approval_chain[0].required = false),
            ),
            (
                "approval_chain",
                Box::new(move |request| {
                    request.approval_chain =
                        (0..11).map(|i| approver(&format!("a{i}"), true)).collect()
                }),
            ),
        ];

        for (field, change) in cases {
            let mut request = valid();
            change(&mut request);

            assert_eq!(
                field_of(application(&request, "", "li.wei", today())),
                field
            );
        }
    }

    #[test]
    fn milestones_must_be_in_order() {
        let mut request = valid();
        let later = NaiveDate::from_ymd_opt(2027, 3, 1).unwrap();
        request.milestones = vec![
            proto::Milestone {
                name: "late".to_owned(),
                due_date: Some(proto_date(later)),
            },
            proto::Milestone {
                name: "early".to_owned(),
                due_date: Some(proto_date(today())),
            },
        ];

        let field = field_of(application(&request, "", "li.wei", today()));

        assert_eq!(field, "milestones[1].due_date");
    }

    #[test]
    fn prefix_is_applied() {
        let mut request = valid();
        request.goals.clear();

        let field = field_of(application(&request, "application.", "li.wei", today()));

        assert_eq!(field, "application.goals");
    }
}
