//! Free-text columns of CONFIDENTIAL and SECRET findings and inspection reports that are
//! sealed at rest, in the encoding of `trace_runtime::sealed_text`. Departments, people,
//! states, dates, references and the other fields that listing, filtering and the rules use
//! stay plaintext.

use trace_runtime::sealed_text_columns;

use crate::entity::{finding, inspection};

sealed_text_columns!(
    finding::Model,
    "findings",
    |row| row.id.clone(),
    [description],
    [measures, result, verification_opinion]
);

// The report text of an inspection row, sealed at the row's `report_confidentiality`.
sealed_text_columns!(
    inspection::Model,
    "inspections",
    |row| row.id.clone(),
    [],
    [findings_summary, suggestions, review_opinion]
);
