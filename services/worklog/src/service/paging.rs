//! Keyset paging shared by the list methods. Rows are ordered by a numeric sort key and then by
//! their unique id, and the page token is the last row's `<sort key>_<id>`, so paging neither
//! repeats nor skips a row when rows are added between pages.

use trace_proto::common::v1::PageRequest;
use trace_runtime::{ServiceError, ServiceResult, validate};

/// Page size when the request leaves it 0.
pub(super) const DEFAULT_PAGE_SIZE: u64 = 50;

/// Largest page size a request may ask for.
const MAX_PAGE_SIZE: i32 = 500;

/// Position after which a page starts: the sort key and id of the previous page's last row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Cursor {
    pub sort_key: i64,
    pub id: String,
}

/// Validated paging of a list request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Page {
    pub after: Option<Cursor>,
    pub size: u64,
}

impl Page {
    /// Parses `page`, which may be absent.
    pub fn parse(page: Option<&PageRequest>) -> ServiceResult<Self> {
        let default = PageRequest::default();
        let page = page.unwrap_or(&default);
        Ok(Self {
            after: parse_token(&page.page_token)?,
            size: parse_size(page.page_size)?,
        })
    }

    /// Returns the number of rows to fetch. The one row more than the page shows whether
    /// another page follows.
    pub fn fetch_limit(&self) -> u64 {
        self.size + 1
    }

    /// Cuts `rows` to the page and returns the next page token, empty on the last page.
    pub fn finish<T>(&self, rows: &mut Vec<T>, cursor: impl Fn(&T) -> Cursor) -> String {
        let has_more = rows.len() as u64 > self.size;
        rows.truncate(usize::try_from(self.size).unwrap_or(usize::MAX));
        match rows.last() {
            Some(last) if has_more => token(&cursor(last)),
            _ => String::new(),
        }
    }
}

/// Encodes a cursor as a page token.
pub(super) fn token(cursor: &Cursor) -> String {
    format!("{}_{}", cursor.sort_key, cursor.id)
}

fn parse_token(token: &str) -> ServiceResult<Option<Cursor>> {
    if token.is_empty() {
        return Ok(None);
    }
    let invalid = || {
        ServiceError::invalid(
            "page.page_token",
            token,
            "is not a token from a previous response",
        )
    };
    let (sort_key, id) = token.split_once('_').ok_or_else(invalid)?;
    let sort_key = sort_key.parse().map_err(|_| invalid())?;
    let id = validate::record_id("page.page_token", id).map_err(|_| invalid())?;
    Ok(Some(Cursor {
        sort_key,
        id: id.to_string(),
    }))
}

fn parse_size(page_size: i32) -> ServiceResult<u64> {
    match page_size {
        0 => Ok(DEFAULT_PAGE_SIZE),
        1..=MAX_PAGE_SIZE => Ok(page_size.unsigned_abs().into()),
        _ => Err(ServiceError::invalid(
            "page.page_size",
            &page_size.to_string(),
            format!("must be 0 for the default of {DEFAULT_PAGE_SIZE}, or 1 to {MAX_PAGE_SIZE}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(page_size: i32, page_token: &str) -> PageRequest {
        PageRequest {
            page_size,
            page_token: page_token.to_owned(),
        }
    }

    #[test]
    fn token_round_trips() {
        let cursor = Cursor {
            sort_key: 20260302,
            id: uuid::Uuid::now_v7().to_string(),
        };

        let page = Page::parse(Some(&request(10, &token(&cursor)))).unwrap();

        assert_eq!(page.after, Some(cursor));
        assert_eq!(page.size, 10);
    }

    #[test]
    fn negative_sort_keys_round_trip() {
        let cursor = Cursor {
            sort_key: -1_500_000,
            id: uuid::Uuid::now_v7().to_string(),
        };

        let page = Page::parse(Some(&request(0, &token(&cursor)))).unwrap();

        assert_eq!(page.after, Some(cursor));
        assert_eq!(page.size, DEFAULT_PAGE_SIZE);
    }

    #[test]
    fn malformed_tokens_and_sizes_are_rejected() {
        for bad in ["x", "1_", "_abc", "abc_0190", "12_not-a-uuid"] {
            let error = Page::parse(Some(&request(0, bad))).unwrap_err();
            assert!(
                matches!(error, ServiceError::InvalidArgument { ref field, .. } if field == "page.page_token"),
                "{bad}"
            );
        }
        for bad in [-1, 501] {
            let error = Page::parse(Some(&request(bad, ""))).unwrap_err();
            assert!(
                matches!(error, ServiceError::InvalidArgument { ref field, .. } if field == "page.page_size"),
                "{bad}"
            );
        }
    }

    #[test]
    fn finish_cuts_the_extra_row() {
        let page = Page::parse(Some(&request(2, ""))).unwrap();
        let cursor = |value: &i64| Cursor {
            sort_key: *value,
            id: "00000000-0000-0000-0000-000000000000".to_owned(),
        };

        let mut full = vec![1, 2, 3];
        let next = page.finish(&mut full, cursor);
        let mut last = vec![1, 2];
        let none = page.finish(&mut last, cursor);

        assert_eq!(full, [1, 2]);
        assert_eq!(next, "2_00000000-0000-0000-0000-000000000000");
        assert_eq!(none, "");
    }
}
