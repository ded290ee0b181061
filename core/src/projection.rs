//! `attributes` / `excludedAttributes` (RFC 7644 §3.4.2.5) and the `returned` characteristic.
//! (Being written.)

use crate::error::ScimError;
use crate::query::Load;
use crate::schema::ResourceTypeDef;
use serde_json::Value;

/// Which attributes a response contains.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Projection {}

impl Projection {
    /// Parses the comma-separated `attributes` and `excludedAttributes` parameters.
    pub fn parse(
        rt: &ResourceTypeDef,
        attributes: Option<&str>,
        excluded: Option<&str>,
    ) -> Result<Projection, ScimError> {
        let _ = (rt, attributes, excluded);
        todo!("projection")
    }

    /// What the backend must load for this projection.
    pub fn load(&self) -> Load {
        todo!("projection load")
    }

    /// Applies the projection to a full resource representation.
    pub fn apply(&self, rt: &ResourceTypeDef, resource: Value) -> Value {
        let _ = (rt, resource);
        todo!("projection apply")
    }
}
