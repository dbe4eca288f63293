//! Verification keys from [`AuthSettings`]: the HS256 secret and the keys of a JWKS file.

use std::collections::BTreeMap;
use std::path::Path;

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};

use super::AuthError;
use crate::config::{AuthSettings, DEVELOPMENT_SECRET};

/// Shortest HS256 secret accepted, in bytes: the output size of SHA-256, as RFC 7518
/// section 3.2 requires.
const MIN_SECRET_BYTES: usize = 32;

/// Reads the HS256 secret that the settings select: the secret file when set, otherwise `hs256_secret`.
/// Returns `None` when the selected secret is empty, which disables HS256.
pub(super) fn hs256_secret(settings: &AuthSettings) -> Result<Option<Vec<u8>>, AuthError> {
    let secret = match &settings.hs256_secret_file {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|source| AuthError::Read {
                key: "auth.hs256_secret_file",
                path: path.clone(),
                source,
            })?;
            let secret = text.trim().to_owned();
            if secret.is_empty() {
                return Err(AuthError::invalid(
                    "auth.hs256_secret_file",
                    format!("file {path} is empty"),
                ));
            }
            secret
        }
        None => settings.hs256_secret.clone(),
    };
    if secret.is_empty() {
        return Ok(None);
    }
    if secret.len() < MIN_SECRET_BYTES {
        return Err(AuthError::invalid(
            "auth.hs256_secret",
            format!("the secret must be at least {MIN_SECRET_BYTES} bytes"),
        ));
    }
    Ok(Some(secret.into_bytes()))
}

/// Returns true when `secret` is the public development secret.
pub(super) fn is_development_secret(secret: &[u8]) -> bool {
    secret == DEVELOPMENT_SECRET.as_bytes()
}

/// A JWKS key with the one algorithm it verifies.
pub(super) struct JwksKey {
    pub(super) algorithm: Algorithm,
    pub(super) key: DecodingKey,
}

/// Reads a JWKS file into keys by `kid`. Keys marked for encryption (`"use": "enc"`) are
/// skipped, and any other key that is not RSA or P-256 is an error.
pub(super) fn load_jwks(path: &str) -> Result<BTreeMap<String, JwksKey>, AuthError> {
    let text = std::fs::read_to_string(Path::new(path)).map_err(|source| AuthError::Read {
        key: "auth.jwks_file",
        path: path.to_owned(),
        source,
    })?;
    parse_jwks(&text, "auth.jwks_file", path)
}

/// Parses a JWKS document read from `source` (a file path or URL), as [`load_jwks`] does.
/// Errors name the configuration key `setting`.
pub(super) fn parse_jwks(
    text: &str,
    setting: &'static str,
    source: &str,
) -> Result<BTreeMap<String, JwksKey>, AuthError> {
    let set: JwkSet = serde_json::from_str(text)
        .map_err(|error| AuthError::invalid(setting, format!("{source} is not a JWKS: {error}")))?;

    let mut keys = BTreeMap::new();
    for jwk in &set.keys {
        if jwk.common.public_key_use == Some(PublicKeyUse::Encryption) {
            continue;
        }
        let kid =
            jwk.common.key_id.clone().ok_or_else(|| {
                AuthError::invalid(setting, format!("a key in {source} has no kid"))
            })?;
        let key = jwks_key(jwk)
            .map_err(|reason| AuthError::invalid(setting, format!("key {kid}: {reason}")))?;
        if keys.insert(kid.clone(), key).is_some() {
            return Err(AuthError::invalid(
                setting,
                format!("kid {kid} is listed twice in {source}"),
            ));
        }
    }
    if keys.is_empty() {
        return Err(AuthError::invalid(
            setting,
            format!("{source} contains no signature keys"),
        ));
    }
    Ok(keys)
}

fn jwks_key(jwk: &Jwk) -> Result<JwksKey, String> {
    let algorithm = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => Algorithm::RS256,
        AlgorithmParameters::EllipticCurve(parameters)
            if parameters.curve == EllipticCurve::P256 =>
        {
            Algorithm::ES256
        }
        _ => return Err("only RSA (RS256) and P-256 (ES256) keys are supported".to_owned()),
    };
    if let Some(declared) = jwk.common.key_algorithm {
        let declared = Algorithm::try_from(declared)
            .map_err(|_| format!("alg {declared} is not supported"))?;
        if declared != algorithm {
            return Err(format!(
                "alg {declared:?} is not supported for this key type, expected {algorithm:?}"
            ));
        }
    }
    let key = DecodingKey::from_jwk(jwk).map_err(|error| format!("invalid key: {error}"))?;
    Ok(JwksKey { algorithm, key })
}
