//! Free-text columns that are sealed at rest for CONFIDENTIAL and SECRET meetings and their
//! resolutions, in the encoding of `trace_runtime::sealed_text`. Topics, places, ids, dates,
//! states and the other fields that listing, filtering and the rules use stay plaintext.

use trace_runtime::sealed_text_columns;

use crate::entity::{
    agenda_item, confirmation, delay_request, material, meeting, minutes, plan_revision,
    resolution, resolution_update,
};

sealed_text_columns!(
    meeting::Model,
    "meetings",
    |row| row.id.clone(),
    [],
    [cancel_reason]
);
sealed_text_columns!(
    agenda_item::Model,
    "agenda_items",
    |row| format!("{}/{}", row.meeting_id, row.number),
    [title],
    []
);
sealed_text_columns!(
    plan_revision::Model,
    "plan_revisions",
    |row| format!("{}/{}", row.meeting_id, row.revision),
    [change_summary],
    []
);
sealed_text_columns!(
    material::Model,
    "materials",
    |row| row.id.clone(),
    [],
    [review_opinion]
);
sealed_text_columns!(
    minutes::Model,
    "minutes",
    |row| format!("{}/{}", row.meeting_id, row.version),
    [discussions, change_summary],
    []
);
sealed_text_columns!(
    confirmation::Model,
    "minutes_confirmations",
    |row| format!(
        "{}/{}/{}",
        row.meeting_id, row.minutes_version, row.participant_id
    ),
    [comment],
    []
);
sealed_text_columns!(
    resolution::Model,
    "resolutions",
    |row| row.id.clone(),
    [decision_text],
    []
);
sealed_text_columns!(
    resolution_update::Model,
    "resolution_updates",
    |row| format!("{}/{}", row.resolution_id, row.number),
    [progress_note, problems, solutions],
    []
);
sealed_text_columns!(
    delay_request::Model,
    "delay_requests",
    |row| row.id.clone(),
    [reason],
    [opinion]
);
