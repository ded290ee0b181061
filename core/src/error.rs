//! SCIM errors (RFC 7644 §3.12) and the one mapping from backend errors to them.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The `scimType` values of RFC 7644 §3.12, plus the cursor errors of RFC 9865 §2.2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ScimType {
    /// The filter syntax was invalid or the attribute/comparison is not supported.
    InvalidFilter,
    /// The filter yields more results than the server is willing to compute or return.
    TooMany,
    /// One or more attribute values are already in use or reserved.
    Uniqueness,
    /// The attempted modification is not compatible with the attribute's mutability.
    Mutability,
    /// The request body structure was invalid or did not conform to the schema.
    InvalidSyntax,
    /// The `path` attribute was invalid or malformed.
    InvalidPath,
    /// The specified `path` did not yield an attribute or value that could be operated on.
    NoTarget,
    /// A required value was missing or a value was not compatible with its type.
    InvalidValue,
    /// The specified SCIM protocol version is not supported.
    InvalidVers,
    /// The request cannot be completed because of sensitive information in the URI.
    Sensitive,
    /// RFC 9865: the cursor value is malformed, tampered with or not valid for this query.
    InvalidCursor,
    /// RFC 9865: the cursor has expired.
    ExpiredCursor,
    /// RFC 9865: the requested `count` exceeds what the server allows for cursor paging.
    InvalidCount,
}

impl ScimType {
    /// The wire spelling, e.g. `invalidFilter`.
    pub fn as_str(self) -> &'static str {
        match self {
            ScimType::InvalidFilter => "invalidFilter",
            ScimType::TooMany => "tooMany",
            ScimType::Uniqueness => "uniqueness",
            ScimType::Mutability => "mutability",
            ScimType::InvalidSyntax => "invalidSyntax",
            ScimType::InvalidPath => "invalidPath",
            ScimType::NoTarget => "noTarget",
            ScimType::InvalidValue => "invalidValue",
            ScimType::InvalidVers => "invalidVers",
            ScimType::Sensitive => "sensitive",
            ScimType::InvalidCursor => "invalidCursor",
            ScimType::ExpiredCursor => "expiredCursor",
            ScimType::InvalidCount => "invalidCount",
        }
    }
}

impl fmt::Display for ScimType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The URN of the SCIM error message schema.
pub const ERROR_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:Error";

/// A SCIM error: an HTTP status, an optional `scimType` and a human-readable detail.
///
/// This is the only error type that leaves the core; the server renders it as a SCIM Error body
/// with `status` as a string.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status} {}: {detail}", scim_type.map(ScimType::as_str).unwrap_or("error"))]
pub struct ScimError {
    /// The HTTP status code.
    pub status: u16,
    /// The SCIM detail error keyword, where one applies.
    pub scim_type: Option<ScimType>,
    /// A human-readable explanation. Never contains secrets.
    pub detail: String,
    /// Seconds after which a client may retry (rendered as `Retry-After`), for 503 and 429.
    pub retry_after: Option<u32>,
}

impl ScimError {
    /// An error with a status and detail but no `scimType`.
    pub fn new(status: u16, detail: impl Into<String>) -> Self {
        ScimError {
            status,
            scim_type: None,
            detail: detail.into(),
            retry_after: None,
        }
    }

    /// An error with a `scimType`. Every RFC 7644 `scimType` is a 400 except `uniqueness` (409)
    /// and `tooMany` (400 as well, per §3.4.2.2).
    pub fn typed(scim_type: ScimType, detail: impl Into<String>) -> Self {
        let status = match scim_type {
            ScimType::Uniqueness => 409,
            _ => 400,
        };
        ScimError {
            status,
            scim_type: Some(scim_type),
            detail: detail.into(),
            retry_after: None,
        }
    }

    /// 400 `invalidFilter`.
    pub fn invalid_filter(detail: impl Into<String>) -> Self {
        Self::typed(ScimType::InvalidFilter, detail)
    }
    /// 400 `invalidSyntax`.
    pub fn invalid_syntax(detail: impl Into<String>) -> Self {
        Self::typed(ScimType::InvalidSyntax, detail)
    }
    /// 400 `invalidValue`.
    pub fn invalid_value(detail: impl Into<String>) -> Self {
        Self::typed(ScimType::InvalidValue, detail)
    }
    /// 400 `invalidPath`.
    pub fn invalid_path(detail: impl Into<String>) -> Self {
        Self::typed(ScimType::InvalidPath, detail)
    }
    /// 400 `noTarget`.
    pub fn no_target(detail: impl Into<String>) -> Self {
        Self::typed(ScimType::NoTarget, detail)
    }
    /// 400 `mutability`.
    pub fn mutability(detail: impl Into<String>) -> Self {
        Self::typed(ScimType::Mutability, detail)
    }
    /// 409 `uniqueness`.
    pub fn uniqueness(detail: impl Into<String>) -> Self {
        Self::typed(ScimType::Uniqueness, detail)
    }
    /// 404 without `scimType`.
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(404, detail)
    }
    /// 412: the `If-Match` version is not the current one.
    pub fn precondition_failed(detail: impl Into<String>) -> Self {
        Self::new(412, detail)
    }
    /// 500 for faults that are the server's, never the client's input.
    pub fn internal(detail: impl Into<String>) -> Self {
        Self::new(500, detail)
    }

    /// The SCIM Error body (RFC 7644 §3.12): `status` is a string.
    pub fn to_json(&self) -> serde_json::Value {
        let mut body = serde_json::Map::new();
        body.insert("schemas".into(), serde_json::json!([ERROR_SCHEMA]));
        if let Some(t) = self.scim_type {
            body.insert("scimType".into(), t.as_str().into());
        }
        body.insert("detail".into(), self.detail.clone().into());
        body.insert("status".into(), self.status.to_string().into());
        serde_json::Value::Object(body)
    }
}

/// What a backend reports when an operation fails. Backends map driver errors into these
/// semantic kinds once; [`From<BackendError> for ScimError`] maps them to the wire once.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BackendError {
    /// No resource with that id (of that type, in that source).
    #[error("resource {0} not found")]
    NotFound(String),
    /// A uniqueness constraint was violated; the string names the attribute.
    #[error("{0} is already in use")]
    Uniqueness(String),
    /// The expected version did not match the stored one (optimistic concurrency).
    #[error("version mismatch: the resource was modified concurrently")]
    VersionMismatch,
    /// A referenced resource (e.g. a group member) does not exist in this source.
    #[error("referenced resource {0} does not exist")]
    InvalidReference(String),
    /// The backend cannot evaluate this filter (e.g. an attribute it has no mapping for).
    #[error("unsupported filter: {0}")]
    UnsupportedFilter(String),
    /// The query would return more results than the backend is willing to produce.
    #[error("too many results: {0}")]
    TooMany(String),
    /// A cursor is malformed or does not belong to this query.
    #[error("invalid cursor: {0}")]
    InvalidCursor(String),
    /// A cursor has expired.
    #[error("expired cursor")]
    ExpiredCursor,
    /// The resource cannot be stored as given (e.g. a value the store cannot represent).
    #[error("invalid value: {0}")]
    InvalidValue(String),
    /// The backend refused the operation because of its own rules (e.g. a read-only directory).
    #[error("operation not permitted: {0}")]
    NotPermitted(String),
    /// The store is temporarily unreachable or overloaded; the client may retry.
    #[error("backend unavailable: {detail}")]
    Unavailable {
        /// What went wrong, for logs and the error detail.
        detail: String,
        /// Suggested seconds before retrying.
        retry_after: Option<u32>,
    },
    /// The operation is not implemented by this backend.
    #[error("not supported by this backend: {0}")]
    Unsupported(String),
    /// An unexpected fault in the backend (a bug or a broken store).
    #[error("backend fault: {0}")]
    Internal(String),
    /// A SCIM error produced by core logic running inside the backend (e.g. PATCH application).
    #[error(transparent)]
    Scim(#[from] ScimError),
}

impl From<BackendError> for ScimError {
    fn from(e: BackendError) -> Self {
        match e {
            BackendError::NotFound(id) => ScimError::not_found(format!("Resource {id} not found")),
            BackendError::Uniqueness(what) => {
                ScimError::uniqueness(format!("{what} is already in use"))
            }
            BackendError::VersionMismatch => ScimError::precondition_failed(
                "The resource was modified since the version given in If-Match",
            ),
            BackendError::InvalidReference(id) => ScimError::invalid_value(format!(
                "Referenced resource {id} does not exist in this source"
            )),
            BackendError::UnsupportedFilter(d) => ScimError::invalid_filter(d),
            BackendError::TooMany(d) => ScimError::typed(ScimType::TooMany, d),
            BackendError::InvalidCursor(d) => ScimError::typed(ScimType::InvalidCursor, d),
            BackendError::ExpiredCursor => {
                ScimError::typed(ScimType::ExpiredCursor, "The cursor has expired")
            }
            BackendError::InvalidValue(d) => ScimError::invalid_value(d),
            BackendError::NotPermitted(d) => ScimError::new(403, d),
            BackendError::Unavailable {
                detail,
                retry_after,
            } => ScimError {
                status: 503,
                scim_type: None,
                detail: format!("The backend is unavailable: {detail}"),
                retry_after: Some(retry_after.unwrap_or(5)),
            },
            BackendError::Unsupported(d) => ScimError::new(501, d),
            BackendError::Internal(d) => ScimError::internal(format!("Internal error: {d}")),
            BackendError::Scim(e) => e,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(e: BackendError) -> (u16, Option<&'static str>) {
        let s = ScimError::from(e);
        (s.status, s.scim_type.map(ScimType::as_str))
    }

    #[test]
    fn not_found_is_404() {
        assert_eq!(map(BackendError::NotFound("x".into())), (404, None));
    }
    #[test]
    fn uniqueness_is_409_uniqueness() {
        assert_eq!(
            map(BackendError::Uniqueness("userName".into())),
            (409, Some("uniqueness"))
        );
    }
    #[test]
    fn version_mismatch_is_412() {
        assert_eq!(map(BackendError::VersionMismatch), (412, None));
    }
    #[test]
    fn invalid_reference_is_invalid_value() {
        assert_eq!(
            map(BackendError::InvalidReference("m".into())),
            (400, Some("invalidValue"))
        );
    }
    #[test]
    fn unsupported_filter_is_invalid_filter() {
        assert_eq!(
            map(BackendError::UnsupportedFilter("x".into())),
            (400, Some("invalidFilter"))
        );
    }
    #[test]
    fn too_many_is_too_many() {
        assert_eq!(
            map(BackendError::TooMany("x".into())),
            (400, Some("tooMany"))
        );
    }
    #[test]
    fn invalid_cursor_is_invalid_cursor() {
        assert_eq!(
            map(BackendError::InvalidCursor("x".into())),
            (400, Some("invalidCursor"))
        );
    }
    #[test]
    fn expired_cursor_is_expired_cursor() {
        assert_eq!(
            map(BackendError::ExpiredCursor),
            (400, Some("expiredCursor"))
        );
    }
    #[test]
    fn invalid_value_is_invalid_value() {
        assert_eq!(
            map(BackendError::InvalidValue("x".into())),
            (400, Some("invalidValue"))
        );
    }
    #[test]
    fn not_permitted_is_403() {
        assert_eq!(map(BackendError::NotPermitted("x".into())), (403, None));
    }
    #[test]
    fn unavailable_is_503_with_retry_after() {
        let e = ScimError::from(BackendError::Unavailable {
            detail: "down".into(),
            retry_after: None,
        });
        assert_eq!((e.status, e.retry_after), (503, Some(5)));
    }
    #[test]
    fn unsupported_is_501() {
        assert_eq!(map(BackendError::Unsupported("x".into())), (501, None));
    }
    #[test]
    fn internal_is_500() {
        assert_eq!(map(BackendError::Internal("x".into())), (500, None));
    }
    #[test]
    fn scim_errors_pass_through() {
        let e = ScimError::no_target("nothing");
        assert_eq!(ScimError::from(BackendError::Scim(e.clone())), e);
    }
    #[test]
    fn error_body_has_string_status() {
        let body = ScimError::mutability("id is readOnly").to_json();
        assert_eq!(body["status"], "400");
        assert_eq!(body["scimType"], "mutability");
        assert_eq!(body["schemas"][0], ERROR_SCHEMA);
    }
}
