//! Free-text columns that are sealed at rest for CONFIDENTIAL and SECRET projects, in the
//! encoding of `trace_runtime::sealed_text`. Names, departments, ids, dates, states, task and
//! milestone titles and the other fields that listing, filtering and the rules use stay
//! plaintext.

use trace_runtime::sealed_text_columns;

use crate::entity::{
    acceptance, application, approval, decision, document_update, group_member, progress, summary,
    task,
};

sealed_text_columns!(
    application::Model,
    "applications",
    |row| format!("{}/{}", row.project_id, row.round),
    [background, goals, resource_needs, expected_results],
    []
);
sealed_text_columns!(
    task::Model,
    "application_tasks",
    |row| format!("{}/{}/{}", row.project_id, row.round, row.position),
    [description],
    []
);
sealed_text_columns!(
    approval::Model,
    "approvals",
    |row| format!("{}/{}/{}", row.project_id, row.round, row.position),
    [],
    [opinion]
);
sealed_text_columns!(
    decision::Model,
    "decisions",
    |row| row.id.clone(),
    [process, reason, content],
    [approval_opinion]
);
sealed_text_columns!(
    document_update::Model,
    "document_updates",
    |row| row.id.clone(),
    [summary],
    []
);
sealed_text_columns!(
    progress::Model,
    "progress_reports",
    |row| row.id.clone(),
    [progress, problems, solutions],
    []
);
sealed_text_columns!(
    summary::Model,
    "summaries",
    |row| row.project_id.clone(),
    [lessons, results, shortcomings],
    []
);
sealed_text_columns!(
    acceptance::Model,
    "acceptances",
    |row| row.id.clone(),
    [results_report, user_feedback],
    [group_opinion, open_issues]
);
sealed_text_columns!(
    group_member::Model,
    "acceptance_members",
    |row| format!("{}/{}", row.acceptance_id, row.position),
    [],
    [opinion, open_issues]
);
