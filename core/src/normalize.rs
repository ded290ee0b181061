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

/// Canonicalizes and type-checks one value for an attribute (used by PATCH for operation
/// values): sub-attribute names rewritten to canonical spelling, readOnly sub-attributes
/// dropped, types checked. `def` is the attribute the value is for; `whole_list` says whether
/// `value` is the attribute's whole (multi-valued) value or one element of it.
pub fn normalize_value(
    rt: &ResourceTypeDef,
    def: &crate::schema::AttributeDef,
    value: &Value,
    whole_list: bool,
) -> Result<Value, ScimError> {
    let _ = (rt, def, value, whole_list);
    todo!("normalize value")
}
