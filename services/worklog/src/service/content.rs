//! Report content: validation of the daily, weekly and monthly content messages into one
//! stored shape, and the way back from stored rows to messages.

use trace_proto::common::v1::Confidentiality;
use trace_proto::worklog::v1 as proto;
use trace_runtime::{ServiceError, ServiceResult, validate};

use crate::entity::{report_figure, report_round};
use crate::state::ReportKind;

/// Maximum length of a content field, in characters.
const MAX_FIELD_CHARS: usize = 4000;

/// Maximum number of figures of one monthly report.
const MAX_FIGURES: usize = 50;

/// Validated content of one round; each kind fills its own fields.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct RoundContent {
    pub work_done: String,
    pub results: String,
    pub problems: String,
    pub solutions: String,
    pub next_plan: String,
    pub completion: String,
    pub causes: String,
    pub measures: String,
    pub goal_attainment: String,
    pub teamwork: String,
    pub improvements: String,
    pub cases: String,
    pub figures: Vec<proto::Figure>,
}

/// Checks the `confidentiality` of a new report: unspecified means INTERNAL.
pub(super) fn report_level(value: i32) -> ServiceResult<Confidentiality> {
    if value == Confidentiality::Unspecified as i32 {
        return Ok(Confidentiality::Internal);
    }
    validate::enum_value("confidentiality", value)
}

fn required(field: &str, value: &str) -> ServiceResult<String> {
    validate::text(field, value, 1, MAX_FIELD_CHARS)
}

fn optional(field: &str, value: &str) -> ServiceResult<String> {
    validate::text(field, value, 0, MAX_FIELD_CHARS)
}

/// Checks a field that becomes required once `problems` is not empty.
fn required_with_problems(field: &str, value: &str, problems: &str) -> ServiceResult<String> {
    if !problems.is_empty() && value.is_empty() {
        return Err(ServiceError::invalid(
            field,
            value,
            "is required when problems is not empty",
        ));
    }
    optional(field, value)
}

/// Checks a daily report's content; `prefix` is the request field that contains it.
pub(super) fn daily(
    prefix: &str,
    content: Option<&proto::DailyContent>,
) -> ServiceResult<RoundContent> {
    let Some(content) = content else {
        return Err(ServiceError::invalid(prefix, "", "is required"));
    };
    let field = |name: &str| format!("{prefix}.{name}");
    Ok(RoundContent {
        work_done: required(&field("work_done"), &content.work_done)?,
        results: required(&field("results"), &content.results)?,
        problems: optional(&field("problems"), &content.problems)?,
        solutions: optional(&field("solutions"), &content.solutions)?,
        next_plan: required(&field("next_day_plan"), &content.next_day_plan)?,
        ..RoundContent::default()
    })
}

/// Checks a weekly report's content.
pub(super) fn weekly(prefix: &str, content: &proto::WeeklyContent) -> ServiceResult<RoundContent> {
    let field = |name: &str| format!("{prefix}.{name}");
    let problems = optional(&field("problems"), &content.problems)?;
    Ok(RoundContent {
        completion: required(&field("completion"), &content.completion)?,
        causes: required_with_problems(&field("causes"), &content.causes, &problems)?,
        measures: required_with_problems(&field("measures"), &content.measures, &problems)?,
        next_plan: required(&field("next_week_plan"), &content.next_week_plan)?,
        problems,
        ..RoundContent::default()
    })
}

/// Checks a monthly report's content, including its figures.
pub(super) fn monthly(
    prefix: &str,
    content: &proto::MonthlyContent,
) -> ServiceResult<RoundContent> {
    let field = |name: &str| format!("{prefix}.{name}");
    let problems = optional(&field("problems"), &content.problems)?;
    Ok(RoundContent {
        completion: required(&field("completion"), &content.completion)?,
        goal_attainment: required(&field("goal_attainment"), &content.goal_attainment)?,
        teamwork: required(&field("teamwork"), &content.teamwork)?,
        improvements: required_with_problems(
            &field("improvements"),
            &content.improvements,
            &problems,
        )?,
        cases: required(&field("cases"), &content.cases)?,
        figures: figures(&field("figures"), &content.figures)?,
        problems,
        ..RoundContent::default()
    })
}

fn figures(field: &str, figures: &[proto::Figure]) -> ServiceResult<Vec<proto::Figure>> {
    if figures.is_empty() || figures.len() > MAX_FIGURES {
        return Err(ServiceError::invalid(
            field,
            &format!("{} figures", figures.len()),
            format!("must hold 1 to {MAX_FIGURES} figures that back the report"),
        ));
    }
    figures
        .iter()
        .enumerate()
        .map(|(index, figure)| {
            Ok(proto::Figure {
                name: validate::line(&format!("{field}[{index}].name"), &figure.name, 1, 100)?,
                value: crate::rules::figure_value(
                    &format!("{field}[{index}].value"),
                    &figure.value,
                )?,
                unit: validate::line(&format!("{field}[{index}].unit"), &figure.unit, 0, 20)?,
            })
        })
        .collect()
}

/// Checks the content oneof of a periodic request against the report kind.
pub(super) fn periodic(
    kind: ReportKind,
    weekly_content: Option<&proto::WeeklyContent>,
    monthly_content: Option<&proto::MonthlyContent>,
) -> ServiceResult<RoundContent> {
    match (kind, weekly_content, monthly_content) {
        (ReportKind::Weekly, Some(content), None) => weekly("weekly", content),
        (ReportKind::Monthly, None, Some(content)) => monthly("monthly", content),
        (ReportKind::Weekly, ..) => Err(ServiceError::invalid(
            "weekly",
            "",
            "is required for a weekly report, and monthly content is not accepted",
        )),
        _ => Err(ServiceError::invalid(
            "monthly",
            "",
            "is required for a monthly report, and weekly content is not accepted",
        )),
    }
}

/// Builds the round row of `content`.
pub(super) fn round_row(
    report_id: &str,
    round: i32,
    submitted_at: i64,
    change_summary: &str,
    content: &RoundContent,
) -> report_round::Model {
    report_round::Model {
        id: uuid::Uuid::now_v7().to_string(),
        report_id: report_id.to_owned(),
        round,
        submitted_at,
        change_summary: change_summary.to_owned(),
        work_done: content.work_done.clone(),
        results: content.results.clone(),
        problems: content.problems.clone(),
        solutions: content.solutions.clone(),
        next_plan: content.next_plan.clone(),
        completion: content.completion.clone(),
        causes: content.causes.clone(),
        measures: content.measures.clone(),
        goal_attainment: content.goal_attainment.clone(),
        teamwork: content.teamwork.clone(),
        improvements: content.improvements.clone(),
        cases: content.cases.clone(),
    }
}

/// Builds the figure rows of `content`.
pub(super) fn figure_rows(
    report_id: &str,
    round: i32,
    content: &RoundContent,
) -> Vec<report_figure::Model> {
    content
        .figures
        .iter()
        .zip(0..)
        .map(|(figure, position)| report_figure::Model {
            id: uuid::Uuid::now_v7().to_string(),
            report_id: report_id.to_owned(),
            round,
            position,
            name: figure.name.clone(),
            value: figure.value.clone(),
            unit: figure.unit.clone(),
        })
        .collect()
}

/// Restores validated content from a stored round and its figures ordered by position.
pub(super) fn from_rows(
    round: &report_round::Model,
    figures: &[&report_figure::Model],
) -> RoundContent {
    RoundContent {
        work_done: round.work_done.clone(),
        results: round.results.clone(),
        problems: round.problems.clone(),
        solutions: round.solutions.clone(),
        next_plan: round.next_plan.clone(),
        completion: round.completion.clone(),
        causes: round.causes.clone(),
        measures: round.measures.clone(),
        goal_attainment: round.goal_attainment.clone(),
        teamwork: round.teamwork.clone(),
        improvements: round.improvements.clone(),
        cases: round.cases.clone(),
        figures: figures
            .iter()
            .map(|figure| proto::Figure {
                name: figure.name.clone(),
                value: figure.value.clone(),
                unit: figure.unit.clone(),
            })
            .collect(),
    }
}

pub(super) fn daily_message(content: &RoundContent) -> proto::DailyContent {
    proto::DailyContent {
        work_done: content.work_done.clone(),
        results: content.results.clone(),
        problems: content.problems.clone(),
        solutions: content.solutions.clone(),
        next_day_plan: content.next_plan.clone(),
    }
}

pub(super) fn weekly_message(content: &RoundContent) -> proto::WeeklyContent {
    proto::WeeklyContent {
        completion: content.completion.clone(),
        problems: content.problems.clone(),
        causes: content.causes.clone(),
        measures: content.measures.clone(),
        next_week_plan: content.next_plan.clone(),
    }
}

pub(super) fn monthly_message(content: &RoundContent) -> proto::MonthlyContent {
    proto::MonthlyContent {
        completion: content.completion.clone(),
        goal_attainment: content.goal_attainment.clone(),
        teamwork: content.teamwork.clone(),
        problems: content.problems.clone(),
        improvements: content.improvements.clone(),
        figures: content.figures.clone(),
        cases: content.cases.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_of(result: ServiceResult<RoundContent>) -> String {
        match result {
            Err(ServiceError::InvalidArgument { field, .. }) => field,
            other => panic!("expected an invalid argument, got {other:?}"),
        }
    }

    fn weekly_content() -> proto::WeeklyContent {
        proto::WeeklyContent {
            completion: "完成了".to_owned(),
            next_week_plan: "繼續".to_owned(),
            ..Default::default()
        }
    }

    fn monthly_content() -> proto::MonthlyContent {
        proto::MonthlyContent {
            completion: "done".to_owned(),
            goal_attainment: "95%".to_owned(),
            teamwork: "good".to_owned(),
            cases: "case A".to_owned(),
            figures: vec![proto::Figure {
                name: "delivered".to_owned(),
                value: "12".to_owned(),
                unit: "items".to_owned(),
            }],
            ..Default::default()
        }
    }

    #[test]
    fn weekly_problems_require_causes_and_measures() {
        let mut content = weekly_content();
        content.problems = "延誤".to_owned();

        assert_eq!(field_of(weekly("weekly", &content)), "weekly.causes");
        content.causes = "供應商".to_owned();
        assert_eq!(field_of(weekly("weekly", &content)), "weekly.measures");
        content.measures = "更換".to_owned();
        assert!(weekly("weekly", &content).is_ok());
    }

    #[test]
    fn monthly_needs_figures() {
        let mut content = monthly_content();
        content.figures.clear();

        assert_eq!(field_of(monthly("monthly", &content)), "monthly.figures");
    }

    #[test]
    fn bad_figure_names_its_index() {
        let mut content = monthly_content();
        content.figures.push(proto::Figure {
            name: "rate".to_owned(),
            value: "ninety".to_owned(),
            unit: "%".to_owned(),
        });

        assert_eq!(
            field_of(monthly("monthly", &content)),
            "monthly.figures[1].value"
        );
    }

    #[test]
    fn content_must_match_the_kind() {
        let weekly_content = weekly_content();
        let monthly_content = monthly_content();

        assert_eq!(
            field_of(periodic(ReportKind::Weekly, None, Some(&monthly_content))),
            "weekly"
        );
        assert_eq!(
            field_of(periodic(ReportKind::Monthly, Some(&weekly_content), None)),
            "monthly"
        );
        assert!(periodic(ReportKind::Weekly, Some(&weekly_content), None).is_ok());
    }

    #[test]
    fn rows_round_trip_to_messages() {
        let content = monthly("monthly", &monthly_content()).unwrap();
        let round = round_row("r1", 1, 5, "", &content);
        let figures = figure_rows("r1", 1, &content);
        let figure_refs: Vec<&report_figure::Model> = figures.iter().collect();

        let restored = from_rows(&round, &figure_refs);

        assert_eq!(restored, content);
        assert_eq!(monthly_message(&restored), monthly_content());
    }

    #[test]
    fn daily_content_is_required() {
        assert_eq!(field_of(daily("content", None)), "content");
        let empty = proto::DailyContent::default();
        assert_eq!(
            field_of(daily("content", Some(&empty))),
            "content.work_done"
        );
    }
}
