//! Sorting, index paging and RFC 9865 cursors. (Being written.)

use crate::query::{Page, QueryPage, Sort};
use crate::resource::Resource;
use crate::schema::ResourceTypeDef;

/// Sorts and pages an in-memory list of matching resources (for backends that evaluate
/// filters in memory, and as the reference for the others).
pub fn paginate(
    rt: &ResourceTypeDef,
    matched: Vec<Resource>,
    sort: Option<&Sort>,
    page: &Page,
) -> QueryPage {
    let _ = (rt, matched, sort, page);
    todo!("paginate")
}
