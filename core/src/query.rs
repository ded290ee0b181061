//! Queries handed to backends: filter, sort, page (index or cursor) and what to load.

use crate::filter::Filter;
use crate::path::AttrPath;
use crate::resource::Resource;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Sorting (RFC 7644 §3.4.2.3). Resources without a value for the sort attribute sort last in
/// either order; ties are broken by `id` so that every order is total and stable.
#[derive(Debug, Clone, PartialEq)]
pub struct Sort {
    /// The canonical path sorted by.
    pub path: AttrPath,
    /// `sortOrder=descending`.
    pub descending: bool,
}

/// A position in a keyset-ordered result: the sort value and id of the last (or, going
/// backward, first) resource of a page. Encoded into opaque cursors by [`crate::paging`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CursorPosition {
    /// The sort key of the boundary resource (`null` when unsorted or the value is missing).
    pub key: Value,
    /// The id of the boundary resource.
    pub id: String,
    /// Whether the page continues backward from this position (a `previousCursor`).
    pub backward: bool,
}

/// Which page to return.
#[derive(Debug, Clone, PartialEq)]
pub enum Page {
    /// Index paging: 1-based `startIndex` and `count` (already clamped by the service).
    Index {
        /// 1-based index of the first result.
        start_index: u64,
        /// Maximum number of results.
        count: u64,
    },
    /// Cursor paging (RFC 9865): start after `position`, or at the beginning when `None`.
    Cursor {
        /// Where to continue; `None` for the first page.
        position: Option<CursorPosition>,
        /// Maximum number of results.
        count: u64,
    },
}

impl Page {
    /// The page size.
    pub fn count(&self) -> u64 {
        match self {
            Page::Index { count, .. } | Page::Cursor { count, .. } => *count,
        }
    }
}

/// What a backend must load beyond the plain attributes. Lets backends skip expensive joins
/// (group members, a user's groups) that the response will not contain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Load {
    /// Load `members` of groups.
    pub members: bool,
    /// Derive `groups` of users.
    pub groups: bool,
}

impl Load {
    /// Load everything.
    pub const ALL: Load = Load {
        members: true,
        groups: true,
    };
    /// Load no relations.
    pub const NONE: Load = Load {
        members: false,
        groups: false,
    };
}

impl Default for Load {
    fn default() -> Self {
        Load::ALL
    }
}

/// A query against one resource type of one source.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    /// The filter, with paths resolved to canonical spelling; `None` matches everything.
    pub filter: Option<Filter>,
    /// The order; `None` means the backend's natural order, which must still be stable (by id).
    pub sort: Option<Sort>,
    /// The page.
    pub page: Page,
    /// What to load.
    pub load: Load,
}

/// One page of results.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct QueryPage {
    /// The number of resources matching the filter, over all pages.
    pub total_results: u64,
    /// The resources of this page, in order.
    pub resources: Vec<Resource>,
    /// For cursor paging: where the next page starts, when there is one.
    pub next: Option<CursorPosition>,
    /// For cursor paging: where the previous page ends, when there is one.
    pub previous: Option<CursorPosition>,
}
