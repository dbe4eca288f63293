//! Sealing of free-text columns of CONFIDENTIAL and SECRET records in a service's own tables.
//!
//! Column encoding: a sealed value is stored in the existing text column as [`PREFIX`]
//! followed by the standard base64 (with padding) of a [`Keyring::seal`] value, so no
//! migration is needed and every value stays valid UTF-8 for SQLite and PostgreSQL. A value
//! without the prefix is plaintext. A value is sealed when its record is CONFIDENTIAL or
//! SECRET, and also when its plaintext itself starts with the prefix. Reading therefore
//! opens exactly the values that start with the prefix, whatever the record's level is now.
//!
//! Binding: each value is sealed for the record id `"{table}.{column}:{key}"`, where `key` is
//! the row's primary key (the parts of a composite key joined by `/`). A sealed value copied
//! to another row or another column does not open.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::event::is_sealed_level;
use crate::seal::{Keyring, SealError};

/// Prefix of a sealed value in a text column.
pub const PREFIX: &str = "trseal1:";

/// A sealed text column: its table and column name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TextColumn {
    pub table: &'static str,
    pub column: &'static str,
}

impl TextColumn {
    /// Names a column of a table.
    pub const fn new(table: &'static str, column: &'static str) -> Self {
        Self { table, column }
    }

    /// Returns the record id a value of this column in the row `key` is sealed for.
    pub fn binding(&self, key: &str) -> String {
        format!("{}.{}:{key}", self.table, self.column)
    }
}

/// Returns true when `stored` is a sealed value rather than plaintext.
pub fn is_sealed(stored: &str) -> bool {
    stored.starts_with(PREFIX)
}

/// Returns the stored form of `text` in `column` of row `key` for a record at
/// `confidentiality` (the `trace.common.v1.Confidentiality` number).
pub fn seal_text(
    keyring: &Keyring,
    confidentiality: i32,
    column: TextColumn,
    key: &str,
    text: String,
) -> String {
    if !is_sealed_level(confidentiality) && !is_sealed(&text) {
        return text;
    }
    let sealed = keyring.seal(&column.binding(key), text.as_bytes());
    format!("{PREFIX}{}", STANDARD.encode(sealed))
}

/// Seals an optional text value as [`seal_text`] does.
pub fn seal_optional(
    keyring: &Keyring,
    confidentiality: i32,
    column: TextColumn,
    key: &str,
    text: Option<String>,
) -> Option<String> {
    text.map(|text| seal_text(keyring, confidentiality, column, key, text))
}

/// Returns the plaintext of a stored value of `column` in row `key`. A value without the
/// prefix is returned unchanged.
pub fn open_text(
    keyring: &Keyring,
    column: TextColumn,
    key: &str,
    stored: String,
) -> Result<String, SealError> {
    let Some(encoded) = stored.strip_prefix(PREFIX) else {
        return Ok(stored);
    };
    let sealed = decode(encoded)?;
    let plaintext = keyring.open(&column.binding(key), &sealed)?;
    String::from_utf8(plaintext).map_err(|_| SealError::Malformed("the plaintext is not UTF-8"))
}

/// Opens an optional stored value as [`open_text`] does.
pub fn open_optional(
    keyring: &Keyring,
    column: TextColumn,
    key: &str,
    stored: Option<String>,
) -> Result<Option<String>, SealError> {
    stored
        .map(|stored| open_text(keyring, column, key, stored))
        .transpose()
}

/// Re-wraps a stored value to the active KEK, keeping its content ciphertext. Returns `None`
/// for plaintext and for values that already use the active KEK.
pub fn rewrap_text(keyring: &Keyring, stored: &str) -> Result<Option<String>, SealError> {
    let Some(encoded) = stored.strip_prefix(PREFIX) else {
        return Ok(None);
    };
    let sealed = decode(encoded)?;
    Ok(keyring
        .rewrap(&sealed)?
        .map(|rewrapped| format!("{PREFIX}{}", STANDARD.encode(rewrapped))))
}

/// A table row whose free-text columns are sealed at rest. Implement it with
/// [`sealed_text_columns!`](crate::sealed_text_columns).
pub trait SealedRow: Sized {
    /// Returns the row with its sealed columns in stored form, for a record at
    /// `confidentiality`.
    fn sealed(self, keyring: &Keyring, confidentiality: i32) -> Self;

    /// Returns the row with its sealed columns opened to plaintext.
    fn opened(self, keyring: &Keyring) -> Result<Self, SealError>;
}

/// Opens the sealed columns of every row.
pub fn open_rows<T: SealedRow>(keyring: &Keyring, rows: Vec<T>) -> Result<Vec<T>, SealError> {
    rows.into_iter().map(|row| row.opened(keyring)).collect()
}

/// Implements [`SealedRow`] for a sea-orm model: `sealed_text_columns!(Model, "table",
/// |row| key_expression, [text_field, ...], [optional_text_field, ...])`. Column names are the
/// field names, and the key expression returns the row's primary key text.
#[macro_export]
macro_rules! sealed_text_columns {
    ($model:ty, $table:literal, |$row:ident| $key:expr, [$($field:ident),* $(,)?], [$($optional:ident),* $(,)?]) => {
        impl $crate::sealed_text::SealedRow for $model {
            fn sealed(
                mut self,
                keyring: &$crate::seal::Keyring,
                confidentiality: i32,
            ) -> Self {
                let key: String = {
                    let $row = &self;
                    $key
                };
                $(
                    self.$field = $crate::sealed_text::seal_text(
                        keyring,
                        confidentiality,
                        $crate::sealed_text::TextColumn::new($table, stringify!($field)),
                        &key,
                        self.$field,
                    );
                )*
                $(
                    self.$optional = $crate::sealed_text::seal_optional(
                        keyring,
                        confidentiality,
                        $crate::sealed_text::TextColumn::new($table, stringify!($optional)),
                        &key,
                        self.$optional,
                    );
                )*
                self
            }

            fn opened(
                mut self,
                keyring: &$crate::seal::Keyring,
            ) -> Result<Self, $crate::seal::SealError> {
                let key: String = {
                    let $row = &self;
                    $key
                };
                $(
                    self.$field = $crate::sealed_text::open_text(
                        keyring,
                        $crate::sealed_text::TextColumn::new($table, stringify!($field)),
                        &key,
                        self.$field,
                    )?;
                )*
                $(
                    self.$optional = $crate::sealed_text::open_optional(
                        keyring,
                        $crate::sealed_text::TextColumn::new($table, stringify!($optional)),
                        &key,
                        self.$optional,
                    )?;
                )*
                Ok(self)
            }
        }
    };
}

impl From<SealError> for crate::ServiceError {
    fn from(error: SealError) -> Self {
        Self::Internal(anyhow::Error::new(error).context("failed to open a sealed text column"))
    }
}

fn decode(encoded: &str) -> Result<Vec<u8>, SealError> {
    STANDARD
        .decode(encoded)
        .map_err(|_| SealError::Malformed("the sealed text is not base64"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTES: TextColumn = TextColumn::new("minutes", "discussions");
    const SUMMARY: TextColumn = TextColumn::new("minutes", "change_summary");
    const CONFIDENTIAL: i32 = 3;
    const INTERNAL: i32 = 2;

    fn keyring(active: &str) -> Keyring {
        Keyring::from_keys(
            [("k1".to_owned(), [1u8; 32]), ("k2".to_owned(), [2u8; 32])],
            active,
        )
    }

    #[test]
    fn confidential_text_is_sealed_and_opens() {
        let keys = keyring("k1");
        let stored = seal_text(&keys, CONFIDENTIAL, MINUTES, "m-1/1", "议题 budget".into());
        assert!(stored.starts_with(PREFIX), "{stored}");
        assert!(!stored.contains("budget"), "{stored}");
        let opened = open_text(&keys, MINUTES, "m-1/1", stored).unwrap();
        assert_eq!(opened, "议题 budget");
    }

    #[test]
    fn internal_text_stays_plaintext() {
        let keys = keyring("k1");
        let stored = seal_text(&keys, INTERNAL, MINUTES, "m-1/1", "budget".into());
        assert_eq!(stored, "budget");
        assert_eq!(
            open_text(&keys, MINUTES, "m-1/1", stored).unwrap(),
            "budget"
        );
    }

    #[test]
    fn internal_text_with_prefix_is_sealed() {
        let keys = keyring("k1");
        let text = format!("{PREFIX}not sealed");
        let stored = seal_text(&keys, INTERNAL, MINUTES, "m-1/1", text.clone());
        assert_ne!(stored, text);
        assert_eq!(open_text(&keys, MINUTES, "m-1/1", stored).unwrap(), text);
    }

    #[test]
    fn sealed_text_opens_for_its_row_and_column_only() {
        let keys = keyring("k1");
        let stored = seal_text(&keys, CONFIDENTIAL, MINUTES, "m-1/1", "budget".into());
        let other_row = open_text(&keys, MINUTES, "m-2/1", stored.clone());
        assert!(matches!(other_row, Err(SealError::Authentication(_))));
        let other_column = open_text(&keys, SUMMARY, "m-1/1", stored);
        assert!(matches!(other_column, Err(SealError::Authentication(_))));
    }

    #[test]
    fn rewrap_moves_text_to_active_key() {
        let stored = seal_text(
            &keyring("k1"),
            CONFIDENTIAL,
            MINUTES,
            "m-1/1",
            "budget".into(),
        );
        let rotated = keyring("k2");
        let rewrapped = rewrap_text(&rotated, &stored).unwrap().expect("rewrapped");
        assert!(rewrapped.starts_with(PREFIX));
        let only_k2 = Keyring::from_keys([("k2".to_owned(), [2u8; 32])], "k2");
        let opened = open_text(&only_k2, MINUTES, "m-1/1", rewrapped.clone()).unwrap();
        assert_eq!(opened, "budget");
        assert!(rewrap_text(&rotated, &rewrapped).unwrap().is_none());
        assert!(rewrap_text(&rotated, "plain").unwrap().is_none());
    }

    #[test]
    fn garbage_after_prefix_is_malformed() {
        let keys = keyring("k1");
        let result = open_text(&keys, MINUTES, "m-1/1", format!("{PREFIX}!!"));
        assert!(matches!(result, Err(SealError::Malformed(_))));
    }
}
