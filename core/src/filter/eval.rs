//! The reference in-memory evaluator. (Being written.)

use super::Filter;
use crate::resource::Resource;
use crate::schema::{AttributeDef, ResourceTypeDef};
use serde_json::Value;
use std::cmp::Ordering;

/// Whether `resource` matches a resolved `filter`.
pub fn matches(filter: &Filter, rt: &ResourceTypeDef, resource: &Resource) -> bool {
    let _ = (filter, rt, resource);
    todo!("evaluator")
}

/// Whether one value of a multi-valued/complex attribute `def` matches a value filter (the
/// inside of `emails[...]`).
pub fn matches_value(filter: &Filter, def: &AttributeDef, value: &Value) -> bool {
    let _ = (filter, def, value);
    todo!("value evaluator")
}

/// Compares two values of a (simple) attribute by its type and `caseExact`; `None` when they
/// are not comparable.
pub fn compare_values(def: &AttributeDef, a: &Value, b: &Value) -> Option<Ordering> {
    let _ = (def, a, b);
    todo!("comparison")
}
