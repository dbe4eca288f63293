//! Request checks shared by several calls. Each names the field, including the index of a
//! list entry (`agenda[2].title`), and echoes the value.

use serde::{Deserialize, Serialize};
use trace_proto::meeting::v1 as proto;
use trace_runtime::{ServiceError, ServiceResult, validate};

/// Maximum number of agenda items of one meeting.
pub(super) const MAX_AGENDA_ITEMS: usize = 50;

/// Maximum number of planned attendees of one meeting, and of recipients of one call.
pub(super) const MAX_ATTENDEES: usize = 200;

/// Maximum number of decisions in one minutes version.
pub(super) const MAX_DECISIONS: usize = 50;

/// A checked agenda item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct AgendaInput {
    pub title: String,
    pub presenter_id: Option<String>,
}

/// Discussion of one agenda item, as stored in the minutes' JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct StoredDiscussion {
    pub agenda_item: u32,
    pub text: String,
}

/// Converts a required protobuf timestamp to stored microseconds.
pub(super) fn timestamp(field: &str, value: Option<&prost_types::Timestamp>) -> ServiceResult<i64> {
    let Some(value) = value else {
        return Err(ServiceError::invalid(field, "", "is required"));
    };
    trace_runtime::clock::micros_from_timestamp(value).ok_or_else(|| {
        ServiceError::invalid(
            field,
            &format!("{}s {}ns", value.seconds, value.nanos),
            "is not a valid timestamp",
        )
    })
}

/// Checks a meeting topic: 1 to 200 characters on one line.
pub(super) fn topic(value: &str) -> ServiceResult<String> {
    validate::line("topic", value, 1, 200)
}

/// Checks a place, dial-in text or link: 1 to 500 characters on one line.
pub(super) fn location(field: &str, value: &str) -> ServiceResult<String> {
    validate::line(field, value, 1, 500)
}

/// Checks an agenda: 1 to [`MAX_AGENDA_ITEMS`] items with a title and an optional presenter.
pub(super) fn agenda(field: &str, items: &[proto::AgendaItem]) -> ServiceResult<Vec<AgendaInput>> {
    if items.is_empty() || items.len() > MAX_AGENDA_ITEMS {
        return Err(ServiceError::invalid(
            field,
            &format!("{} items", items.len()),
            format!("must have 1 to {MAX_AGENDA_ITEMS} items"),
        ));
    }
    let mut checked = Vec::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        let title = validate::line(&format!("{field}[{index}].title"), &item.title, 1, 200)?;
        let presenter_id = if item.presenter_id.is_empty() {
            None
        } else {
            let field = format!("{field}[{index}].presenter_id");
            Some(validate::user_id(&field, &item.presenter_id)?)
        };
        checked.push(AgendaInput {
            title,
            presenter_id,
        });
    }
    Ok(checked)
}

/// Checks the discussions of minutes: exactly one per agenda item, each 1 to 10000
/// characters. Returns them ordered by agenda item.
pub(super) fn discussions(
    items: &[proto::Discussion],
    agenda_items: usize,
) -> ServiceResult<Vec<StoredDiscussion>> {
    if items.len() != agenda_items {
        return Err(ServiceError::invalid(
            "discussions",
            &format!("{} entries", items.len()),
            format!("must have one entry per agenda item ({agenda_items})"),
        ));
    }
    let mut checked: Vec<StoredDiscussion> = Vec::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        let number = item.agenda_item;
        if number == 0 || number as usize > agenda_items {
            return Err(ServiceError::invalid(
                format!("discussions[{index}].agenda_item"),
                &number.to_string(),
                format!("must be an agenda item number from 1 to {agenda_items}"),
            ));
        }
        if checked.iter().any(|earlier| earlier.agenda_item == number) {
            return Err(ServiceError::invalid(
                format!("discussions[{index}].agenda_item"),
                &number.to_string(),
                "is listed twice",
            ));
        }
        let text = validate::text(&format!("discussions[{index}].text"), &item.text, 1, 10_000)?;
        checked.push(StoredDiscussion {
            agenda_item: number,
            text,
        });
    }
    checked.sort_by_key(|discussion| discussion.agenda_item);
    Ok(checked)
}

/// Writes a list as JSON text for a column.
pub(super) fn to_json<T: Serialize>(value: &T) -> ServiceResult<String> {
    serde_json::to_string(value).map_err(|error| {
        ServiceError::Internal(anyhow::Error::new(error).context("failed to encode a list as JSON"))
    })
}

/// Reads a list written by [`to_json`].
pub(super) fn from_json<T: for<'de> Deserialize<'de>>(
    column: &str,
    text: &str,
) -> ServiceResult<T> {
    serde_json::from_str(text).map_err(|error| {
        ServiceError::Internal(
            anyhow::Error::new(error).context(format!("stored column {column} is not valid JSON")),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field<T: std::fmt::Debug>(result: ServiceResult<T>) -> String {
        match result {
            Err(ServiceError::InvalidArgument { field, .. }) => field,
            other => panic!("expected an invalid argument, got {other:?}"),
        }
    }

    fn item(title: &str, presenter: &str) -> proto::AgendaItem {
        proto::AgendaItem {
            title: title.to_owned(),
            presenter_id: presenter.to_owned(),
        }
    }

    fn discussion(agenda_item: u32, text: &str) -> proto::Discussion {
        proto::Discussion {
            agenda_item,
            text: text.to_owned(),
        }
    }

    #[test]
    fn agenda_limits_name_the_item() {
        assert_eq!(
            agenda("agenda", &[item("Budget", "")]).unwrap()[0].presenter_id,
            None
        );
        assert_eq!(field(agenda("agenda", &[])), "agenda");
        assert_eq!(field(agenda("agenda", &vec![item("x", ""); 51])), "agenda");
        assert_eq!(
            field(agenda("agenda", &[item("ok", ""), item("", "")])),
            "agenda[1].title"
        );
        assert_eq!(
            field(agenda("agenda", &[item("ok", "a b")])),
            "agenda[0].presenter_id"
        );
        assert_eq!(
            field(agenda("agenda", &[item("two\nlines", "")])),
            "agenda[0].title"
        );
    }

    #[test]
    fn discussions_cover_each_agenda_item_once() {
        let ordered = discussions(&[discussion(2, "b"), discussion(1, "a")], 2).unwrap();

        assert_eq!(ordered[0].agenda_item, 1);
        assert_eq!(field(discussions(&[discussion(1, "a")], 2)), "discussions");
        assert_eq!(
            field(discussions(&[discussion(1, "a"), discussion(1, "b")], 2)),
            "discussions[1].agenda_item"
        );
        assert_eq!(
            field(discussions(&[discussion(0, "a")], 1)),
            "discussions[0].agenda_item"
        );
        assert_eq!(
            field(discussions(&[discussion(1, "")], 1)),
            "discussions[0].text"
        );
    }

    #[test]
    fn missing_or_invalid_timestamp_is_invalid() {
        let bad = prost_types::Timestamp {
            seconds: 1,
            nanos: -1,
        };

        assert_eq!(field(timestamp("start_time", None)), "start_time");
        assert_eq!(field(timestamp("start_time", Some(&bad))), "start_time");
    }
}
