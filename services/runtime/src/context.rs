//! The caller's identity and request context. One interceptor builds it from request metadata;
//! handlers read it from the request extensions and never from message fields.

use tonic::metadata::MetadataMap;
use tonic::{Request, Status};

use crate::error::ServiceError;

/// Metadata key of the caller's user id.
pub const USER_ID_HEADER: &str = "x-trace-user-id";
/// Metadata key of the caller's department.
pub const DEPARTMENT_HEADER: &str = "x-trace-department";
/// Metadata key of the caller's roles, comma-separated.
pub const ROLES_HEADER: &str = "x-trace-roles";
/// Binary metadata key of the caller's display name in UTF-8.
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
    /// Returns true when the principal holds the role.
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|held| held == role)
    }

    /// The role recorded as the actor's role on events.
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

/// Everything a handler needs to know about the call besides its message.
#[derive(Debug, Clone)]
pub struct CallContext {
    pub principal: Principal,
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
            correlation_id: uuid::Uuid::now_v7().to_string(),
            traceparent: String::new(),
            tracestate: String::new(),
        }
    }
}

/// Interceptor that authenticates the caller from metadata and stores a [`CallContext`].
/// Calls without a valid identity fail with `UNAUTHENTICATED`.
pub fn authenticate(mut request: Request<()>) -> Result<Request<()>, Status> {
    let context = context_from_metadata(request.metadata()).map_err(Status::from)?;
    request.extensions_mut().insert(context);
    Ok(request)
}

fn context_from_metadata(metadata: &MetadataMap) -> Result<CallContext, ServiceError> {
    let unauthenticated = |reason: String| ServiceError::Unauthenticated { reason };
    let ascii = |key: &str| -> Result<Option<String>, ServiceError> {
        match metadata.get(key) {
            None => Ok(None),
            Some(value) => value
                .to_str()
                .map(|text| Some(text.trim().to_owned()))
                .map_err(|_| unauthenticated(format!("metadata {key} is not ASCII"))),
        }
    };

    let user_id = ascii(USER_ID_HEADER)?
        .ok_or_else(|| unauthenticated(format!("metadata {USER_ID_HEADER} is missing")))?;
    let user_id = crate::validate::user_id(USER_ID_HEADER, &user_id)
        .map_err(|error| unauthenticated(error.to_string()))?;
    let department = ascii(DEPARTMENT_HEADER)?
        .ok_or_else(|| unauthenticated(format!("metadata {DEPARTMENT_HEADER} is missing")))?;
    let department = crate::validate::department(DEPARTMENT_HEADER, &department)
        .map_err(|error| unauthenticated(error.to_string()))?;
    let roles = parse_roles(&ascii(ROLES_HEADER)?.unwrap_or_default())?;
    let display_name = display_name(metadata)?.unwrap_or_else(|| user_id.clone());
    let correlation_id = match ascii(CORRELATION_HEADER)? {
        Some(id) => crate::validate::record_id(CORRELATION_HEADER, &id)?.to_string(),
        None => uuid::Uuid::now_v7().to_string(),
    };

    Ok(CallContext {
        principal: Principal {
            user_id,
            display_name,
            department,
            roles,
        },
        correlation_id,
        traceparent: ascii("traceparent")?.unwrap_or_default(),
        tracestate: ascii("tracestate")?.unwrap_or_default(),
    })
}

fn parse_roles(header: &str) -> Result<Vec<String>, ServiceError> {
    let mut roles = Vec::new();
    for role in header
        .split(',')
        .map(str::trim)
        .filter(|role| !role.is_empty())
    {
        if !role::ALL.contains(&role) {
            return Err(ServiceError::Unauthenticated {
                reason: format!("unknown role {role:?} in {ROLES_HEADER}"),
            });
        }
        roles.push(role.to_owned());
    }
    if roles.is_empty() {
        roles.push(role::EMPLOYEE.to_owned());
    }
    Ok(roles)
}

fn display_name(metadata: &MetadataMap) -> Result<Option<String>, ServiceError> {
    let Some(value) = metadata.get_bin(DISPLAY_NAME_HEADER) else {
        return Ok(None);
    };
    let bytes = value
        .to_bytes()
        .map_err(|_| ServiceError::Unauthenticated {
            reason: format!("metadata {DISPLAY_NAME_HEADER} is not valid base64"),
        })?;
    let name = String::from_utf8(bytes.to_vec()).map_err(|_| ServiceError::Unauthenticated {
        reason: format!("metadata {DISPLAY_NAME_HEADER} is not UTF-8"),
    })?;
    crate::validate::line(DISPLAY_NAME_HEADER, &name, 1, 100)
        .map(Some)
        .map_err(|error| ServiceError::Unauthenticated {
            reason: error.to_string(),
        })
}

/// Adds identity metadata to an outgoing request; for clients, tools and tests.
pub fn attach_identity<T>(
    request: &mut Request<T>,
    user_id: &str,
    department: &str,
    roles: &[&str],
    display_name: Option<&str>,
) {
    let metadata = request.metadata_mut();
    if let Ok(value) = user_id.parse() {
        metadata.insert(USER_ID_HEADER, value);
    }
    if let Ok(value) = department.parse() {
        metadata.insert(DEPARTMENT_HEADER, value);
    }
    if let Ok(value) = roles.join(",").parse() {
        metadata.insert(ROLES_HEADER, value);
    }
    if let Some(name) = display_name {
        metadata.insert_bin(
            DISPLAY_NAME_HEADER,
            tonic::metadata::MetadataValue::from_bytes(name.as_bytes()),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_user_is_unauthenticated() {
        let status = authenticate(Request::new(())).unwrap_err();
        assert_eq!(status.code(), tonic::Code::Unauthenticated);
        assert!(status.message().contains(USER_ID_HEADER));
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
