//! Resolution of filter paths against a resource type, with type checks.

use super::Filter;
use crate::error::ScimError;
use crate::schema::ResourceTypeDef;

impl Filter {
    /// Resolves every path against a resource type: canonical spelling, URN kept only for
    /// extension attributes, and type checks (e.g. `gt` on a boolean is `invalidFilter`).
    pub fn resolve(&self, rt: &ResourceTypeDef) -> Result<Filter, ScimError> {
        let _ = rt;
        todo!("filter resolution")
    }
}
