//! Free-text columns that are sealed at rest for CONFIDENTIAL and SECRET reports and
//! communications, in the encoding of `trace_runtime::sealed_text`. The child rows of a report
//! (rounds, figures, comments, decisions) are sealed at the report's level. Subjects,
//! counterparts (which search matches), ids, dates and the other fields that listing and
//! filtering use stay plaintext. `tracectl rewrap` lists the same columns.

use trace_runtime::sealed_text_columns;

use crate::entity::{communication, report_comment, report_decision, report_figure, report_round};

sealed_text_columns!(
    communication::Model,
    "communications",
    |row| row.id.clone(),
    [content, outcome, notice],
    []
);

sealed_text_columns!(
    report_round::Model,
    "report_rounds",
    |row| row.id.clone(),
    [
        change_summary,
        work_done,
        results,
        problems,
        solutions,
        next_plan,
        completion,
        causes,
        measures,
        goal_attainment,
        teamwork,
        improvements,
        cases
    ],
    []
);

sealed_text_columns!(
    report_figure::Model,
    "report_figures",
    |row| row.id.clone(),
    [name, value, unit],
    []
);

sealed_text_columns!(
    report_comment::Model,
    "report_comments",
    |row| row.id.clone(),
    [text],
    []
);

sealed_text_columns!(
    report_decision::Model,
    "report_decisions",
    |row| row.id.clone(),
    [opinion],
    []
);
