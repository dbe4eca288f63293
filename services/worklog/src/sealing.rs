//! Free-text columns that are sealed at rest for CONFIDENTIAL and SECRET communications, in
//! the encoding of `trace_runtime::sealed_text`. Subjects, counterparts (which search
//! matches), ids, dates and the other fields that listing and filtering use stay plaintext.
//! Reports carry no confidentiality level, so their text is stored as it is.

use trace_runtime::sealed_text_columns;

use crate::entity::communication;

sealed_text_columns!(
    communication::Model,
    "communications",
    |row| row.id.clone(),
    [content, outcome, notice],
    []
);
