//! Envelope encryption of confidential content. Each sealed value has its own random
//! AES-256-GCM data key, wrapped by a key-encryption key (KEK) named by a key id, so KEKs can
//! rotate: new values use the active KEK, and [`Keyring::rewrap`] moves an old value to it by
//! re-encrypting only the 32-byte data key. The content ciphertext binds the record id as
//! associated data, so a sealed value copied to another record does not open.
//!
//! Layout: `TRSEAL1` and a version byte, the key id length (1 byte) and key id, the wrapping
//! nonce (12 bytes) and wrapped data key (48 bytes), the content nonce (12 bytes) and the
//! content ciphertext with its tag.

use std::collections::BTreeMap;
use std::fmt;

use aes_gcm::aead::{Aead, KeyInit, OsRng, Payload};
use aes_gcm::{AeadCore, Aes256Gcm, Nonce};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::ConfigError;

const MAGIC: &[u8; 8] = b"TRSEAL1\x01";
const NONCE_BYTES: usize = 12;
const WRAPPED_KEY_BYTES: usize = 32 + 16;
const WRAP_CONTEXT: &[u8] = b"trace-seal-key\0";
const DATA_CONTEXT: &[u8] = b"trace-seal-data\0";
/// Key id of the development KEK, accepted only with `allow_development_key`.
pub const DEVELOPMENT_KEY_ID: &str = "development";

/// Key-encryption keys of a service.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EncryptionSettings {
    /// Key id to file path. Each file contains a 32-byte key as 64 hex digits, for example
    /// from `openssl rand -hex 32`. Key ids are 1 to 64 characters of `A-Z`, `a-z`, `0-9`,
    /// `-` and `_`.
    #[serde(default)]
    pub key_files: BTreeMap<String, String>,
    /// Key id that seals new values; required when `key_files` is not empty.
    #[serde(default)]
    pub active_key_id: Option<String>,
    /// Seals with a built-in, publicly known development key when no key file is configured.
    /// Production sets it to false, and the service then refuses to start without keys.
    #[serde(default = "default_true")]
    pub allow_development_key: bool,
}

fn default_true() -> bool {
    true
}

impl Default for EncryptionSettings {
    fn default() -> Self {
        Self {
            key_files: BTreeMap::new(),
            active_key_id: None,
            allow_development_key: true,
        }
    }
}

/// Failure to seal or open a value.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("the value is not sealed data: {0}")]
    Malformed(&'static str),
    #[error("the value is sealed with key {0:?}, which is not configured")]
    UnknownKey(String),
    #[error("the value does not open with key {0:?}: it was altered or belongs to another record")]
    Authentication(String),
}

/// A 32-byte key that never prints.
#[derive(Clone)]
struct Kek([u8; 32]);

impl fmt::Debug for Kek {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("Kek(..)")
    }
}

/// The configured KEKs and the id of the active one; cheap to clone.
#[derive(Debug, Clone)]
pub struct Keyring {
    keys: BTreeMap<String, Kek>,
    active: String,
}

/// Parses a key from 64 hex digits, ignoring surrounding whitespace.
fn parse_key(text: &str) -> Result<[u8; 32], String> {
    let bytes = hex::decode(text.trim()).map_err(|error| format!("not hex: {error}"))?;
    bytes
        .try_into()
        .map_err(|bytes: Vec<u8>| format!("{} bytes, expected 32", bytes.len()))
}

fn valid_key_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

impl Keyring {
    /// Loads the key files of `settings`. Errors name the configuration key and never
    /// contain key material.
    pub fn load(settings: &EncryptionSettings) -> Result<Self, ConfigError> {
        if settings.key_files.is_empty() {
            if !settings.allow_development_key {
                return Err(ConfigError::invalid(
                    "encryption.key_files",
                    "no key-encryption key is configured and the development key is not allowed",
                ));
            }
            tracing::warn!(
                "confidential content is sealed with the public development key; configure \
                 encryption.key_files in production"
            );
            return Ok(Self::development());
        }
        let mut keys = BTreeMap::new();
        for (id, path) in &settings.key_files {
            let key = format!("encryption.key_files.{id}");
            if !valid_key_id(id) {
                return Err(ConfigError::invalid(
                    &key,
                    "key ids are 1 to 64 characters of A-Z, a-z, 0-9, '-' and '_'",
                ));
            }
            let text = std::fs::read_to_string(path).map_err(|error| {
                ConfigError::invalid(&key, format!("failed to read {path}: {error}"))
            })?;
            let bytes = parse_key(&text).map_err(|reason| {
                ConfigError::invalid(
                    &key,
                    format!("{path} does not hold a 32-byte hex key: {reason}"),
                )
            })?;
            keys.insert(id.clone(), Kek(bytes));
        }
        let active = settings.active_key_id.clone().ok_or_else(|| {
            ConfigError::invalid("encryption.active_key_id", "is required with key_files")
        })?;
        if !keys.contains_key(&active) {
            return Err(ConfigError::invalid(
                "encryption.active_key_id",
                format!("{active:?} is not one of encryption.key_files"),
            ));
        }
        Ok(Self { keys, active })
    }

    /// Returns a keyring of given keys, for tools and tests.
    pub fn from_keys(keys: impl IntoIterator<Item = (String, [u8; 32])>, active: &str) -> Self {
        Self {
            keys: keys.into_iter().map(|(id, key)| (id, Kek(key))).collect(),
            active: active.to_owned(),
        }
    }

    /// Returns the keyring of the built-in development key.
    pub fn development() -> Self {
        let key: [u8; 32] = Sha256::digest(b"trace development key-encryption key").into();
        Self::from_keys([(DEVELOPMENT_KEY_ID.to_owned(), key)], DEVELOPMENT_KEY_ID)
    }

    /// Returns the id of the key that seals new values.
    pub fn active_key_id(&self) -> &str {
        &self.active
    }

    /// Seals `plaintext` for `record_id` with a fresh data key wrapped by the active KEK.
    pub fn seal(&self, record_id: &str, plaintext: &[u8]) -> Vec<u8> {
        let data_key = Aes256Gcm::generate_key(OsRng);
        let data_nonce = Aes256Gcm::generate_nonce(OsRng);
        let ciphertext = Aes256Gcm::new(&data_key)
            .encrypt(
                &data_nonce,
                Payload {
                    msg: plaintext,
                    aad: &data_aad(record_id),
                },
            )
            .expect("AES-GCM encryption does not fail for in-memory buffers");

        let mut sealed = self.wrap(&data_key);
        sealed.extend_from_slice(&data_nonce);
        sealed.extend_from_slice(&ciphertext);
        sealed
    }

    /// Opens a value sealed for `record_id` with any configured KEK.
    pub fn open(&self, record_id: &str, sealed: &[u8]) -> Result<Vec<u8>, SealError> {
        let parts = Parts::parse(sealed)?;
        let data_key = self.unwrap(&parts)?;
        Aes256Gcm::new(&data_key.into())
            .decrypt(
                Nonce::from_slice(parts.data_nonce),
                Payload {
                    msg: parts.ciphertext,
                    aad: &data_aad(record_id),
                },
            )
            .map_err(|_| SealError::Authentication(parts.key_id.to_owned()))
    }

    /// Returns the key id a sealed value names.
    pub fn key_id_of(sealed: &[u8]) -> Result<String, SealError> {
        Ok(Parts::parse(sealed)?.key_id.to_owned())
    }

    /// Re-wraps the data key of `sealed` with the active KEK; the content ciphertext is kept
    /// byte for byte. Returns `None` when the value already uses the active KEK.
    pub fn rewrap(&self, sealed: &[u8]) -> Result<Option<Vec<u8>>, SealError> {
        let parts = Parts::parse(sealed)?;
        if parts.key_id == self.active {
            return Ok(None);
        }
        let data_key = self.unwrap(&parts)?;
        let mut rewrapped = self.wrap(&data_key.into());
        rewrapped.extend_from_slice(parts.data_nonce);
        rewrapped.extend_from_slice(parts.ciphertext);
        Ok(Some(rewrapped))
    }

    fn wrap(&self, data_key: &aes_gcm::Key<Aes256Gcm>) -> Vec<u8> {
        let kek = &self.keys[&self.active];
        let nonce = Aes256Gcm::generate_nonce(OsRng);
        let wrapped = Aes256Gcm::new(&kek.0.into())
            .encrypt(
                &nonce,
                Payload {
                    msg: data_key.as_slice(),
                    aad: &wrap_aad(&self.active),
                },
            )
            .expect("AES-GCM encryption does not fail for in-memory buffers");

        let mut out = Vec::with_capacity(
            MAGIC.len() + 1 + self.active.len() + NONCE_BYTES + WRAPPED_KEY_BYTES,
        );
        out.extend_from_slice(MAGIC);
        out.push(u8::try_from(self.active.len()).expect("key ids are at most 64 bytes"));
        out.extend_from_slice(self.active.as_bytes());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&wrapped);
        out
    }

    fn unwrap(&self, parts: &Parts<'_>) -> Result<[u8; 32], SealError> {
        let kek = self
            .keys
            .get(parts.key_id)
            .ok_or_else(|| SealError::UnknownKey(parts.key_id.to_owned()))?;
        let data_key = Aes256Gcm::new(&kek.0.into())
            .decrypt(
                Nonce::from_slice(parts.wrap_nonce),
                Payload {
                    msg: parts.wrapped_key,
                    aad: &wrap_aad(parts.key_id),
                },
            )
            .map_err(|_| SealError::Authentication(parts.key_id.to_owned()))?;
        data_key
            .try_into()
            .map_err(|_| SealError::Malformed("the data key is not 32 bytes"))
    }
}

/// Splits a sealed value into its key wrapping (header, key id and wrapped data key) and its
/// content (nonce and ciphertext), so that the wrapping can be stored outside a digest: a
/// rewrap then changes only the wrapping. [`join_sealed`] puts the two back together.
pub fn split_sealed(sealed: &[u8]) -> Result<(&[u8], &[u8]), SealError> {
    let parts = Parts::parse(sealed)?;
    let wrapping_len = MAGIC.len() + 1 + parts.key_id.len() + NONCE_BYTES + WRAPPED_KEY_BYTES;
    Ok(sealed.split_at(wrapping_len))
}

/// Joins a key wrapping and a content that [`split_sealed`] returned.
pub fn join_sealed(wrapping: &[u8], content: &[u8]) -> Vec<u8> {
    [wrapping, content].concat()
}

fn wrap_aad(key_id: &str) -> Vec<u8> {
    [WRAP_CONTEXT, key_id.as_bytes()].concat()
}

fn data_aad(record_id: &str) -> Vec<u8> {
    [DATA_CONTEXT, record_id.as_bytes()].concat()
}

/// The fields of a sealed value, borrowed from it.
struct Parts<'a> {
    key_id: &'a str,
    wrap_nonce: &'a [u8],
    wrapped_key: &'a [u8],
    data_nonce: &'a [u8],
    ciphertext: &'a [u8],
}

impl<'a> Parts<'a> {
    fn parse(sealed: &'a [u8]) -> Result<Self, SealError> {
        let rest = sealed
            .strip_prefix(MAGIC.as_slice())
            .ok_or(SealError::Malformed("the header is missing"))?;
        let (&id_len, rest) = rest
            .split_first()
            .ok_or(SealError::Malformed("the key id is missing"))?;
        let id_len = usize::from(id_len);
        if rest.len() < id_len + 2 * NONCE_BYTES + WRAPPED_KEY_BYTES + 16 {
            return Err(SealError::Malformed("the value is truncated"));
        }
        let (key_id, rest) = rest.split_at(id_len);
        let key_id = std::str::from_utf8(key_id)
            .map_err(|_| SealError::Malformed("the key id is not text"))?;
        let (wrap_nonce, rest) = rest.split_at(NONCE_BYTES);
        let (wrapped_key, rest) = rest.split_at(WRAPPED_KEY_BYTES);
        let (data_nonce, ciphertext) = rest.split_at(NONCE_BYTES);
        Ok(Self {
            key_id,
            wrap_nonce,
            wrapped_key,
            data_nonce,
            ciphertext,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keyring(active: &str) -> Keyring {
        Keyring::from_keys(
            [("k1".to_owned(), [1u8; 32]), ("k2".to_owned(), [2u8; 32])],
            active,
        )
    }

    #[test]
    fn split_value_rewraps_without_touching_content() {
        let sealed = keyring("k1").seal("event-1", b"minutes");
        let (wrapping, content) = split_sealed(&sealed).expect("split");
        assert_eq!(join_sealed(wrapping, content), sealed);

        let rewrapped = keyring("k2")
            .rewrap(&sealed)
            .expect("rewrap")
            .expect("changed");
        let (new_wrapping, new_content) = split_sealed(&rewrapped).expect("split");
        assert_eq!(new_content, content);
        assert_ne!(new_wrapping, wrapping);
        assert_eq!(
            keyring("k2")
                .open("event-1", &join_sealed(new_wrapping, content))
                .expect("open"),
            b"minutes"
        );
    }

    #[test]
    fn sealed_value_opens_for_its_record_only() {
        let keys = keyring("k1");
        let sealed = keys.seal("doc-1", "合同正文 secret".as_bytes());
        assert!(!sealed.windows(6).any(|window| window == b"secret"));
        assert_eq!(
            keys.open("doc-1", &sealed).unwrap(),
            "合同正文 secret".as_bytes()
        );
        assert!(matches!(
            keys.open("doc-2", &sealed),
            Err(SealError::Authentication(_))
        ));
    }

    #[test]
    fn altered_byte_anywhere_fails() {
        let keys = keyring("k1");
        let sealed = keys.seal("doc-1", b"payload");
        for index in MAGIC.len() + 3..sealed.len() {
            let mut altered = sealed.clone();
            altered[index] ^= 0x01;
            assert!(keys.open("doc-1", &altered).is_err(), "byte {index}");
        }
    }

    #[test]
    fn rewrap_keeps_content_ciphertext() {
        let old = keyring("k1");
        let sealed = old.seal("doc-1", b"payload");
        let rotated = keyring("k2");
        let rewrapped = rotated.rewrap(&sealed).unwrap().expect("rewrapped");

        assert_eq!(Keyring::key_id_of(&rewrapped).unwrap(), "k2");
        assert!(rewrapped.ends_with(&sealed[sealed.len() - 7 - 16 - NONCE_BYTES..]));
        let only_k2 = Keyring::from_keys([("k2".to_owned(), [2u8; 32])], "k2");
        assert_eq!(only_k2.open("doc-1", &rewrapped).unwrap(), b"payload");
        assert!(rotated.rewrap(&rewrapped).unwrap().is_none());
    }

    #[test]
    fn unknown_key_and_garbage_are_named() {
        let sealed = keyring("k1").seal("doc-1", b"payload");
        let only_k2 = Keyring::from_keys([("k2".to_owned(), [2u8; 32])], "k2");
        assert!(matches!(
            only_k2.open("doc-1", &sealed),
            Err(SealError::UnknownKey(id)) if id == "k1"
        ));
        assert!(matches!(
            only_k2.open("doc-1", b"plain text"),
            Err(SealError::Malformed(_))
        ));
        assert!(matches!(
            only_k2.open("doc-1", &sealed[..20]),
            Err(SealError::Malformed(_))
        ));
    }

    #[test]
    fn load_checks_key_files() {
        let folder = tempfile::tempdir().unwrap();
        let path = folder.path().join("k1.hex");
        std::fs::write(&path, format!("{}\n", hex::encode([7u8; 32]))).unwrap();
        let mut settings = EncryptionSettings {
            key_files: BTreeMap::from([("k1".to_owned(), path.display().to_string())]),
            active_key_id: Some("k1".to_owned()),
            allow_development_key: false,
        };
        let keys = Keyring::load(&settings).unwrap();
        assert_eq!(keys.active_key_id(), "k1");

        settings.active_key_id = Some("k9".to_owned());
        let error = Keyring::load(&settings).unwrap_err().to_string();
        assert!(error.contains("encryption.active_key_id"), "{error}");

        std::fs::write(&path, "not a key").unwrap();
        settings.active_key_id = Some("k1".to_owned());
        let error = Keyring::load(&settings).unwrap_err().to_string();
        assert!(error.contains("encryption.key_files.k1"), "{error}");
        assert!(!error.contains("not a key"), "{error}");

        let no_keys = EncryptionSettings {
            allow_development_key: false,
            ..EncryptionSettings::default()
        };
        assert!(Keyring::load(&no_keys).is_err());
    }
}
