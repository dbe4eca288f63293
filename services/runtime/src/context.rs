//! The caller's identity and request context. The interceptor of [`crate::auth`] builds it
//! from the bearer token; handlers read it from the request extensions and never from message
//! fields.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use tonic::{Request, Status};

use crate::auth::{Authenticator, Claims};
use crate::config::AuthSettings;
use crate::error::ServiceError;

/// Metadata key that once carried the caller's user id. Ignored: identity comes only from
/// the bearer token.
pub const USER_ID_HEADER: &str = "x-trace-user-id";
/// Metadata key that once carried the caller's department. Ignored, like [`USER_ID_HEADER`].
pub const DEPARTMENT_HEADER: &str = "x-trace-department";
/// Metadata key that once carried the caller's roles. Ignored, like [`USER_ID_HEADER`].
pub const ROLES_HEADER: &str = "x-trace-roles";
/// Metadata key that once carried the caller's display name. Ignored, like
/// [`USER_ID_HEADER`].
pub const DISPLAY_NAME_HEADER: &str = "x-trace-display-name-bin";
/// Metadata key of an optional correlation id chosen by the caller (a UUID).
pub const CORRELATION_HEADER: &str = "x-correlation-id";

/// Roles from the company policy.
pub mod role {
    pub const EMPLOYEE: &str = "employee";
    pub const SUPERVISOR: &str = "supervisor";
    pub const DEPARTMENT_HEAD: &str = "department_head";
    pub const ADMINISTRATION: &str = "administration";
    pub const FINANCE: &str = "finance";
    pub const AUDIT: &str = "audit";
    pub const SYSTEM: &str = "system";
    /// Every role a principal may carry.
    pub const ALL: &[&str] = &[
        EMPLOYEE,
        SUPERVISOR,
        DEPARTMENT_HEAD,
        ADMINISTRATION,
        FINANCE,
        AUDIT,
        SYSTEM,
    ];
}

/// The authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub user_id: String,
    pub display_name: String,
    pub department: String,
    /// Roles in the order given; the first is the role recorded on events.
    pub roles: Vec<String>,
}

impl Principal {
    /// Returns true when the principal has the role.
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|held| held == role)
    }

    /// Returns the role recorded as the actor's role on events.
    pub fn primary_role(&self) -> &str {
        self.roles.first().map_or(role::EMPLOYEE, String::as_str)
    }

    /// Converts the principal to an event actor.
    pub fn actor(&self) -> trace_proto::event::v1::Actor {
        trace_proto::event::v1::Actor {
            user_id: self.user_id.clone(),
            display_name: self.display_name.clone(),
            department: self.department.clone(),
            role: self.primary_role().to_owned(),
        }
    }
}

/// Classification levels a caller may read, lowest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Clearance {
    Public,
    Internal,
    Confidential,
    Secret,
}

/// Everything a handler needs to know about the call besides its message.
#[derive(Debug, Clone)]
pub struct CallContext {
    pub principal: Principal,
    /// The token's `clearance` claim; `None` when the token has none and for system work.
    pub clearance: Option<Clearance>,
    /// Correlation id shared by every event this call causes.
    pub correlation_id: String,
    /// Incoming W3C `traceparent`, if any.
    pub traceparent: String,
    /// Incoming W3C `tracestate`, if any.
    pub tracestate: String,
}

impl CallContext {
    /// Reads the context that the interceptor stored on the request.
    pub fn of<T>(request: &Request<T>) -> Result<Self, ServiceError> {
        request
            .extensions()
            .get::<CallContext>()
            .cloned()
            .ok_or_else(|| ServiceError::Unauthenticated {
                reason: "no caller identity on the request".to_owned(),
            })
    }

    /// Builds a context for work the service does on its own, such as scheduled checks.
    pub fn system(service: &str) -> Self {
        Self {
            principal: Principal {
                user_id: format!("system:{service}"),
                display_name: format!("{service} service"),
                department: "system".to_owned(),
                roles: vec![role::SYSTEM.to_owned()],
            },
            clearance: None,
            correlation_id: uuid::Uuid::now_v7().to_string(),
            traceparent: String::new(),
            tracestate: String::new(),
        }
    }
}

/// Interceptor that verifies the caller's bearer token against the default settings
/// ([`Authenticator::development`]: development secret, issuer `trace-dev`, audience `trace`,
/// no directory) and stores a [`CallContext`]. Calls without a valid token fail with
/// `UNAUTHENTICATED`. Services that run on a [`crate::app::ServiceRuntime`] should use
/// [`crate::app::ServiceRuntime::authenticator`], which applies their configuration.
pub fn authenticate(request: Request<()>) -> Result<Request<()>, Status> {
    Authenticator::development().authenticate(request)
}

/// Lifetime of the tokens that [`attach_identity`] mints.
const DEVELOPMENT_TOKEN_TTL: Duration = Duration::from_secs(3600);

/// Mints a development token for the identity and attaches it as `authorization: Bearer`;
/// for clients, tools and tests. The token is signed with the development secret for the
/// default issuer and audience and is valid for one hour. Services accept it only while they
/// allow the development secret. When minting fails the request goes out without identity,
/// and the failure is logged.
pub fn attach_identity<T>(
    request: &mut Request<T>,
    user_id: &str,
    department: &str,
    roles: &[&str],
    display_name: Option<&str>,
) {
    let claims = Claims {
        sub: user_id.to_owned(),
        name: display_name.unwrap_or_default().to_owned(),
        department: department.to_owned(),
        roles: roles.iter().map(|role| (*role).to_owned()).collect(),
        clearance: None,
    };
    let token =
        match crate::auth::mint_token(&AuthSettings::default(), &claims, DEVELOPMENT_TOKEN_TTL) {
            Ok(token) => token,
            Err(error) => {
                tracing::warn!(%error, user_id, "failed to mint a development token");
                return;
            }
        };
    if let Err(error) = crate::auth::attach_token(request, &token) {
        tracing::warn!(%error, user_id, "failed to attach a development token");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_token_is_unauthenticated() {
        let status = authenticate(Request::new(())).unwrap_err();
        assert_eq!(status.code(), tonic::Code::Unauthenticated);
        assert!(status.message().contains("authorization"));
    }

    #[test]
    fn identity_headers_are_ignored() {
        let mut request = Request::new(());
        let metadata = request.metadata_mut();
        metadata.insert(USER_ID_HEADER, "li.wei".parse().unwrap());
        metadata.insert(DEPARTMENT_HEADER, "admin-office".parse().unwrap());
        metadata.insert(ROLES_HEADER, "administration".parse().unwrap());
        let status = authenticate(request).unwrap_err();
        assert_eq!(status.code(), tonic::Code::Unauthenticated);
    }

    #[test]
    fn identity_round_trips_with_unicode_name() {
        let mut request = Request::new(());
        attach_identity(
            &mut request,
            "li.wei",
            "admin-office",
            &["administration"],
            Some("李偉"),
        );
        let request = authenticate(request).unwrap();
        let context = CallContext::of(&request).unwrap();
        assert_eq!(context.principal.user_id, "li.wei");
        assert_eq!(context.principal.display_name, "李偉");
        assert_eq!(context.principal.primary_role(), "administration");
        assert!(uuid::Uuid::try_parse(&context.correlation_id).is_ok());
    }

    #[test]
    fn unknown_role_is_unauthenticated() {
        let mut request = Request::new(());
        attach_identity(&mut request, "u1", "ops", &["root"], None);
        let status = authenticate(request).unwrap_err();
        assert_eq!(status.code(), tonic::Code::Unauthenticated);
    }
}
