//! Canonicalization and validation of incoming resources. (Being written.)

use crate::error::ScimError;
use crate::resource::Resource;
use crate::schema::ResourceTypeDef;
use serde_json::{Map, Value};

/// What an incoming resource body is for.
#[derive(Debug, Clone, Copy)]
pub enum WriteMode<'a> {
    /// POST: a new resource.
    Create,
    /// PUT: replaces `old`.
    Replace(&'a Resource),
}

/// Turns a client body into canonical, validated attributes (see [`Resource::attrs`]).
pub fn prepare(
    rt: &ResourceTypeDef,
    body: &Value,
    mode: WriteMode<'_>,
) -> Result<Map<String, Value>, ScimError> {
    let _ = (rt, body, mode);
    todo!("normalize")
}

/// Validates canonical attributes after a change (required, types, one primary, mutability
/// against `old`).
pub fn validate(
    rt: &ResourceTypeDef,
    attrs: &Map<String, Value>,
    old: Option<&Resource>,
) -> Result<(), ScimError> {
    let _ = (rt, attrs, old);
    todo!("validate")
}
