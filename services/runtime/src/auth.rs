//! Bearer token (JWT) authentication: the interceptor that verifies `authorization: Bearer
//! <jwt>` on every call and stores the caller's [`CallContext`], and token minting for tools
//! and tests.

mod keys;
mod remote;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use tonic::metadata::MetadataMap;
use tonic::service::Interceptor;
use tonic::{Request, Status};

use crate::config::AuthSettings;
use crate::context::{CORRELATION_HEADER, CallContext, Clearance, Principal, USER_ID_HEADER, role};
use crate::directory::Directory;
use crate::error::ServiceError;
use crate::grpc_telemetry::RpcMethod;
use crate::metrics::Metrics;

/// Metadata key of the bearer token.
pub const AUTHORIZATION_HEADER: &str = "authorization";

/// The claims of a trace token besides the registered ones (`iss`, `aud`, `exp`, `nbf`,
/// `iat`), which [`mint_token`] adds and the [`Authenticator`] checks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// User id.
    pub sub: String,
    /// Display name; when it is empty, the user id is shown instead.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub department: String,
    /// Roles from [`role`], primary role first; empty means employee.
    #[serde(default)]
    pub roles: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clearance: Option<Clearance>,
}

/// Claims as signed: the trace claims plus the registered ones.
#[derive(Serialize)]
struct SignedClaims<'a> {
    #[serde(flatten)]
    claims: &'a Claims,
    iss: &'a str,
    aud: &'a str,
    iat: u64,
    exp: u64,
}

/// Authentication settings that cannot be used, or a token that could not be signed.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("failed to read {key} file {path}: {source}")]
    Read {
        key: &'static str,
        path: String,
        source: std::io::Error,
    },
    #[error("invalid configuration key {key}: {reason}")]
    Invalid { key: &'static str, reason: String },
    #[error("failed to sign the token: {0}")]
    Sign(#[source] jsonwebtoken::errors::Error),
}

impl AuthError {
    fn invalid(key: &'static str, reason: impl Into<String>) -> Self {
        Self::Invalid {
            key,
            reason: reason.into(),
        }
    }
}

/// Signs an HS256 token for `claims` with the secret, issuer and audience of `settings`,
/// valid for `ttl` from now. Fails when the settings select no secret or the secret file
/// cannot be read.
pub fn mint_token(
    settings: &AuthSettings,
    claims: &Claims,
    ttl: Duration,
) -> Result<String, AuthError> {
    let secret = keys::hs256_secret(settings)?
        .ok_or_else(|| AuthError::invalid("auth.hs256_secret", "no HS256 secret is configured"))?;
    let key = EncodingKey::from_secret(&secret).map_err(AuthError::Sign)?;
    let now = jsonwebtoken::get_current_timestamp();
    let signed = SignedClaims {
        claims,
        iss: &settings.issuer,
        aud: &settings.audience,
        iat: now,
        exp: now.saturating_add(ttl.as_secs()),
    };
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), &signed, &key).map_err(AuthError::Sign)
}

/// Verifies bearer tokens and builds the caller's [`CallContext`]. Cheap to clone.
#[derive(Clone)]
pub struct Authenticator {
    inner: Arc<Inner>,
    /// Counts rejected calls; `None` for the development authenticator of tools and tests.
    metrics: Option<Metrics>,
}

struct Inner {
    /// HS256 key; verifies only HS256 tokens.
    hs256: Option<DecodingKey>,
    /// JWKS keys by `kid` from `auth.jwks_file`; each verifies only its own algorithm.
    jwks: BTreeMap<String, keys::JwksKey>,
    /// Keys from `auth.jwks_url`, looked up after the file's.
    remote: Option<Arc<remote::RemoteJwks>>,
    uses_development_secret: bool,
    issuer: String,
    audience: String,
    leeway_secs: u64,
    directory: Arc<Directory>,
}

/// Shows the configuration without key material.
impl std::fmt::Debug for Authenticator {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let inner = &self.inner;
        formatter
            .debug_struct("Authenticator")
            .field("hs256", &inner.hs256.is_some())
            .field("jwks_key_ids", &inner.jwks.keys().collect::<Vec<_>>())
            .field("remote_jwks", &inner.remote)
            .field("uses_development_secret", &inner.uses_development_secret)
            .field("issuer", &inner.issuer)
            .field("audience", &inner.audience)
            .field("leeway_secs", &inner.leeway_secs)
            .finish_non_exhaustive()
    }
}

impl Authenticator {
    /// Loads the keys that `settings` name. Fails when a key file cannot be read or parsed,
    /// or when no key remains after the development secret is disallowed. Logs a warning when
    /// the development secret is in use.
    pub fn new(settings: &AuthSettings, directory: Arc<Directory>) -> Result<Self, AuthError> {
        let mut secret = keys::hs256_secret(settings)?;
        let uses_development_secret = secret.as_deref().is_some_and(keys::is_development_secret);
        if uses_development_secret && !settings.allow_development_secret {
            secret = None;
        }
        let jwks = match &settings.jwks_file {
            Some(path) => keys::load_jwks(path)?,
            None => BTreeMap::new(),
        };
        let remote = match &settings.jwks_url {
            Some(url) => {
                let url = remote::parse_url(url)?;
                if settings.jwks_refresh_secs == 0 {
                    return Err(AuthError::invalid(
                        "auth.jwks_refresh_secs",
                        "must be at least 1 second",
                    ));
                }
                let refresh = Duration::from_secs(settings.jwks_refresh_secs);
                Some(Arc::new(remote::RemoteJwks::new(url, refresh)?))
            }
            None => None,
        };
        if secret.is_none() && jwks.is_empty() && remote.is_none() {
            return Err(AuthError::invalid(
                "auth.allow_development_secret",
                "no key is configured: set auth.hs256_secret_file, auth.hs256_secret, \
                 auth.jwks_file or auth.jwks_url, or allow the development secret",
            ));
        }
        let hs256 = secret
            .map(|secret| DecodingKey::from_secret(&secret))
            .transpose()
            .map_err(|error| AuthError::invalid("auth.hs256_secret", error.to_string()))?;

        let uses_development_secret = uses_development_secret && hs256.is_some();
        if uses_development_secret {
            tracing::warn!(
                "authentication accepts tokens signed with the public development secret, so \
                 anyone can mint tokens; set auth.allow_development_secret = false in production"
            );
        }
        tracing::info!(
            issuer = %settings.issuer,
            audience = %settings.audience,
            hs256 = hs256.is_some(),
            jwks_keys = jwks.len(),
            jwks_url = settings.jwks_url.as_deref().unwrap_or(""),
            "bearer token authentication configured"
        );
        Ok(Self {
            inner: Arc::new(Inner {
                hs256,
                jwks,
                remote,
                uses_development_secret,
                issuer: settings.issuer.clone(),
                audience: settings.audience.clone(),
                leeway_secs: settings.leeway_secs,
                directory,
            }),
            metrics: None,
        })
    }

    /// Fetches the keys of `auth.jwks_url` once, then keeps them fresh in a task until
    /// `shutdown`. Returns `None` without a JWKS URL. A failed first fetch is logged, and
    /// tokens signed with the provider's keys are rejected until a retry succeeds.
    pub async fn start_jwks_refresh(
        &self,
        shutdown: tokio_util::sync::CancellationToken,
    ) -> Option<impl Future<Output = ()> + Send + 'static> {
        let remote = self.inner.remote.clone()?;
        let primed = match remote.fetch().await {
            Ok(count) => {
                tracing::info!(keys = count, "JWKS fetched");
                true
            }
            Err(error) => {
                tracing::error!(%error, "failed to fetch the JWKS at start; retrying in the background");
                false
            }
        };
        Some(remote.run(primed, shutdown))
    }

    /// Counts the calls this authenticator rejects in `metrics`, as
    /// `trace.requests.denied` with reason `missing_token` or `invalid_token`.
    pub fn with_metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Returns the shared authenticator of the default settings: development secret, issuer `trace-dev`,
    /// audience `trace` and an empty directory. Shared by [`crate::context::authenticate`].
    pub fn development() -> Self {
        static DEVELOPMENT: LazyLock<Authenticator> = LazyLock::new(|| {
            let settings = AuthSettings::default();
            tracing::warn!(
                "a service authenticates with the development settings, so anyone can mint \
                 tokens it accepts"
            );
            Authenticator {
                inner: Arc::new(Inner {
                    hs256: DecodingKey::from_secret(settings.hs256_secret.as_bytes()).ok(),
                    jwks: BTreeMap::new(),
                    remote: None,
                    uses_development_secret: true,
                    issuer: settings.issuer,
                    audience: settings.audience,
                    leeway_secs: settings.leeway_secs,
                    directory: Arc::new(Directory::default()),
                }),
                metrics: None,
            }
        });
        DEVELOPMENT.clone()
    }

    /// Returns true when tokens signed with the public development secret are accepted.
    pub fn uses_development_secret(&self) -> bool {
        self.inner.uses_development_secret
    }

    /// Returns an interceptor that authenticates each call with [`Self::authenticate`].
    pub fn interceptor(&self) -> impl Interceptor + Clone + use<> {
        let authenticator = self.clone();
        move |request: Request<()>| authenticator.authenticate(request)
    }

    /// Verifies the request's bearer token and stores the caller's [`CallContext`] in the
    /// request extensions. Fails with `UNAUTHENTICATED`, and the message never contains the
    /// token.
    ///
    /// When the call runs in a server span with a valid context (an OTLP exporter is
    /// configured), the context's `traceparent` and `tracestate` are the server span's, so
    /// that events caused by the call continue its trace. Otherwise they are the incoming
    /// headers.
    pub fn authenticate(&self, mut request: Request<()>) -> Result<Request<()>, Status> {
        let mut context = match self.context(request.metadata()) {
            Ok(context) => context,
            Err(error) => {
                tracing::debug!(%error, "rejected a call");
                self.count_rejection(&request);
                return Err(Status::from(error));
            }
        };
        if let Some(headers) = crate::propagation::headers_of(&tracing::Span::current()) {
            context.traceparent = headers.traceparent;
            context.tracestate = headers.tracestate;
        }
        request.extensions_mut().insert(context);
        Ok(request)
    }

    fn count_rejection(&self, request: &Request<()>) {
        let Some(metrics) = &self.metrics else {
            return;
        };
        let reason = if request.metadata().contains_key(AUTHORIZATION_HEADER) {
            "invalid_token"
        } else {
            "missing_token"
        };
        let method = request
            .extensions()
            .get::<RpcMethod>()
            .map_or("", |method| method.0.as_str());
        metrics.record_denied(method, reason);
    }

    /// Builds the call context from request metadata.
    pub fn context(&self, metadata: &MetadataMap) -> Result<CallContext, ServiceError> {
        let token = bearer_token(metadata)?;
        let claims = self.verify(token)?;
        let clearance = claims.clearance;
        let principal = self.principal(claims)?;
        let correlation_id = match ascii(metadata, CORRELATION_HEADER)? {
            Some(id) => crate::validate::record_id(CORRELATION_HEADER, &id)?.to_string(),
            None => uuid::Uuid::now_v7().to_string(),
        };
        Ok(CallContext {
            principal,
            clearance,
            correlation_id,
            traceparent: ascii(metadata, "traceparent")?.unwrap_or_default(),
            tracestate: ascii(metadata, "tracestate")?.unwrap_or_default(),
        })
    }

    /// Checks the token's signature, algorithm, `iss`, `aud`, `exp` and `nbf`.
    pub fn verify(&self, token: &str) -> Result<Claims, ServiceError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| {
            unauthenticated("the bearer token is not a JWT with a supported algorithm")
        })?;
        let (key, algorithm) = self.key_for(&header)?;

        let mut validation = Validation::new(algorithm);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.set_issuer(&[&self.inner.issuer]);
        validation.set_audience(&[&self.inner.audience]);
        validation.validate_nbf = true;
        validation.leeway = self.inner.leeway_secs;

        jsonwebtoken::decode::<Claims>(token, &key, &validation)
            .map(|data| data.claims)
            .map_err(|error| unauthenticated(describe(error.kind())))
    }

    /// Selects the key for the token's algorithm: the secret for HS256, the JWKS key named by
    /// `kid` for RS256 and ES256. Any other algorithm, including `none`, has no key.
    fn key_for(&self, header: &Header) -> Result<(DecodingKey, Algorithm), ServiceError> {
        match header.alg {
            Algorithm::HS256 => match &self.inner.hs256 {
                Some(key) => Ok((key.clone(), Algorithm::HS256)),
                None => Err(unauthenticated("HS256 tokens are not accepted")),
            },
            Algorithm::RS256 | Algorithm::ES256 => {
                let kid = header
                    .kid
                    .as_deref()
                    .ok_or_else(|| unauthenticated("the token header has no kid"))?;
                let file_key = self.inner.jwks.get(kid);
                let remote_key = match (file_key, &self.inner.remote) {
                    (None, Some(remote)) => remote.key(kid),
                    _ => None,
                };
                let key = file_key
                    .or(remote_key.as_deref())
                    .ok_or_else(|| unauthenticated("no configured key matches the token's kid"))?;
                if key.algorithm != header.alg {
                    return Err(unauthenticated(format!(
                        "the token's algorithm {:?} does not match its key",
                        header.alg
                    )));
                }
                Ok((key.key.clone(), key.algorithm))
            }
            other => Err(unauthenticated(format!(
                "tokens signed with {other:?} are not accepted"
            ))),
        }
    }

    /// Builds the principal. The directory's name, department and roles win over the
    /// token's, because the token only proves who the caller is. A user the directory does
    /// not list keeps the token's claims.
    fn principal(&self, claims: Claims) -> Result<Principal, ServiceError> {
        let user_id = crate::validate::user_id("token claim sub", &claims.sub)
            .map_err(|error| unauthenticated(error.to_string()))?;
        if let Some(employee) = self.inner.directory.employee(&user_id) {
            return Ok(Principal {
                display_name: employee.name.clone(),
                department: employee.department.clone(),
                roles: with_default_role(employee.roles.clone()),
                user_id,
            });
        }

        if claims.department.is_empty() {
            return Err(unauthenticated(format!(
                "the token has no department claim and the directory does not list user {user_id}"
            )));
        }
        let department = crate::validate::department("token claim department", &claims.department)
            .map_err(|error| unauthenticated(error.to_string()))?;
        if let Some(unknown) = claims
            .roles
            .iter()
            .find(|r| !role::ALL.contains(&r.as_str()))
        {
            return Err(unauthenticated(format!(
                "unknown role {unknown:?} in token claim roles"
            )));
        }
        let display_name = if claims.name.is_empty() {
            user_id.clone()
        } else {
            crate::validate::line("token claim name", &claims.name, 1, 100)
                .map_err(|error| unauthenticated(error.to_string()))?
        };
        Ok(Principal {
            user_id,
            display_name,
            department,
            roles: with_default_role(claims.roles),
        })
    }
}

fn with_default_role(mut roles: Vec<String>) -> Vec<String> {
    if roles.is_empty() {
        roles.push(role::EMPLOYEE.to_owned());
    }
    roles
}

fn unauthenticated(reason: impl Into<String>) -> ServiceError {
    ServiceError::Unauthenticated {
        reason: reason.into(),
    }
}

/// Reads the token from `authorization: Bearer <jwt>`; the scheme is case-insensitive
/// (RFC 7235 section 2.1).
fn bearer_token(metadata: &MetadataMap) -> Result<&str, ServiceError> {
    let value = metadata
        .get(AUTHORIZATION_HEADER)
        .ok_or_else(|| {
            // Clients that still send the old identity headers learn why they are rejected.
            unauthenticated(format!(
                "metadata {AUTHORIZATION_HEADER} is missing: send `{AUTHORIZATION_HEADER}: \
                 Bearer <jwt>`, because {USER_ID_HEADER} and the other x-trace identity headers \
                 are ignored"
            ))
        })?
        .to_str()
        .map_err(|_| unauthenticated(format!("metadata {AUTHORIZATION_HEADER} is not ASCII")))?;
    let malformed = || {
        unauthenticated(format!(
            "metadata {AUTHORIZATION_HEADER} is not `Bearer <jwt>`"
        ))
    };
    let (scheme, token) = value.trim().split_once(' ').ok_or_else(malformed)?;
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() || token.contains(' ') {
        return Err(malformed());
    }
    Ok(token)
}

fn ascii(metadata: &MetadataMap, key: &str) -> Result<Option<String>, ServiceError> {
    match metadata.get(key) {
        None => Ok(None),
        Some(value) => value
            .to_str()
            .map(|text| Some(text.trim().to_owned()))
            .map_err(|_| unauthenticated(format!("metadata {key} is not ASCII"))),
    }
}

/// Explains a verification failure without quoting the token.
fn describe(kind: &ErrorKind) -> String {
    match kind {
        ErrorKind::ExpiredSignature => "the token has expired".to_owned(),
        ErrorKind::ImmatureSignature => {
            "the token is not valid yet (nbf is in the future)".to_owned()
        }
        ErrorKind::InvalidIssuer => "the token's iss claim is not the expected issuer".to_owned(),
        ErrorKind::InvalidAudience => {
            "the token's aud claim does not contain the expected audience".to_owned()
        }
        ErrorKind::InvalidSignature => "the token signature is invalid".to_owned(),
        ErrorKind::InvalidAlgorithm => "the token's algorithm does not match its key".to_owned(),
        ErrorKind::MissingRequiredClaim(claim) => format!("the token has no {claim} claim"),
        ErrorKind::InvalidClaimFormat(claim) => format!("the token's {claim} claim is malformed"),
        _ => "the bearer token is malformed".to_owned(),
    }
}

/// Adds `authorization: Bearer <token>` to an outgoing request. Fails when the token contains
/// characters that metadata cannot carry.
pub fn attach_token<T>(
    request: &mut Request<T>,
    token: &str,
) -> Result<(), tonic::metadata::errors::InvalidMetadataValue> {
    let value = format!("Bearer {token}").parse()?;
    request.metadata_mut().insert(AUTHORIZATION_HEADER, value);
    Ok(())
}
