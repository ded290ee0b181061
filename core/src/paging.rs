//! Sorting (RFC 7644 §3.4.2.3), index paging (§3.4.2.4), RFC 9865 cursor paging and the
//! ListResponse message.
//!
//! # Rules
//!
//! - **`sortBy`** resolves case-insensitively against the resource type (URN-qualified or not).
//!   A multi-valued attribute sorts by its primary value, else its first value; a complex
//!   attribute with a `value` sub-attribute (`emails`) sorts by that sub-attribute. Unknown
//!   attributes, complex attributes without `value`, and attributes that are never returned
//!   (`password` — sorting would leak their order) are `invalidValue`. **`sortOrder`** is
//!   `ascending` (the default) or `descending`, in any case; anything else is `invalidValue`.
//! - **Order**: values compare by type as [`crate::filter::compare_values`] does (strings
//!   case-insensitively unless `caseExact`, dateTimes as instants, numbers numerically,
//!   `meta.version` by its number). Resources without a value sort last in both orders; ties,
//!   and queries without `sortBy`, are ordered by `id` ascending (byte order), so every order is
//!   total and a keyset position identifies one place in it.
//! - **Index paging**: `startIndex` < 1 means 1; `count` < 0 means 0; `count` above
//!   [`PagingConfig::max_page_size`] is clamped to it; no `count` means
//!   [`PagingConfig::default_page_size`]; a non-integer value is `invalidValue`. A page past
//!   the end is empty, `totalResults` counts every match, and `count=0` answers with only
//!   `totalResults`.
//! - **Cursor paging** (RFC 9865): `cursor` present (an empty value asks for the first page)
//!   selects cursor paging; combined with `startIndex` it is `invalidValue`. `count` must be an
//!   integer from 1 to the maximum page size, else `invalidCount`. Cursors are opaque tokens
//!   ([`CursorCodec`]): HMAC-SHA256-authenticated, bound to the query (source, resource type,
//!   filter, sort) and valid for [`PagingConfig::cursor_timeout`]. Malformed, tampered or
//!   foreign cursors are `invalidCursor`, old ones `expiredCursor`. Paging is keyset paging: a
//!   next page holds the resources strictly after the last one of the page before, so creates
//!   and deletes between requests never make a resource appear twice or be skipped when it
//!   existed throughout. `nextCursor` is present unless the page is the last;
//!   `previousCursor` unless it is the first.

mod cursor;

pub use cursor::{CursorCodec, CursorKey, MAX_CURSOR_LEN, QueryFingerprint};

use crate::error::{ScimError, ScimType};
use crate::path::AttrPath;
use crate::query::{CursorPosition, Page, QueryPage, Sort};
use crate::resource::{Resource, format_time, parse_time};
use crate::schema::{AttrType, AttributeDef, ResourceTypeDef, Returned};
use serde_json::{Map, Value, json};
use std::cmp::Ordering;
use std::time::Duration;
use time::OffsetDateTime;

/// The URN of the ListResponse message (RFC 7644 §3.4.2).
pub const LIST_RESPONSE_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";

/// Paging limits and the cursor secret of a source (or of the whole server).
#[derive(Clone, PartialEq, Eq)]
pub struct PagingConfig {
    /// The page size when the client gives no `count` (`defaultPageSize`).
    pub default_page_size: u64,
    /// The largest page served (`maxPageSize`); larger index-paging counts are clamped, larger
    /// cursor-paging counts are `invalidCount`.
    pub max_page_size: u64,
    /// How long a cursor stays valid (`cursorTimeout`).
    pub cursor_timeout: Duration,
    /// The secret that authenticates cursors. Every replica serving a source must share it.
    pub cursor_key: CursorKey,
}

impl std::fmt::Debug for PagingConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PagingConfig")
            .field("default_page_size", &self.default_page_size)
            .field("max_page_size", &self.max_page_size)
            .field("cursor_timeout", &self.cursor_timeout)
            .field("cursor_key", &self.cursor_key)
            .finish()
    }
}

impl Default for PagingConfig {
    /// 100 per page, at most 1000, cursors valid for 10 minutes (the RFC 9865 example), and an
    /// empty cursor key — the server replaces it with a configured or random secret.
    fn default() -> Self {
        PagingConfig {
            default_page_size: 100,
            max_page_size: 1000,
            cursor_timeout: Duration::from_secs(600),
            cursor_key: CursorKey::default(),
        }
    }
}

/// The paging parameters of a request, as text (so that malformed numbers become SCIM errors).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PageParams<'a> {
    /// `startIndex`.
    pub start_index: Option<&'a str>,
    /// `count`.
    pub count: Option<&'a str>,
    /// `cursor`; `Some("")` asks for the first page of a cursor-paged query.
    pub cursor: Option<&'a str>,
}

impl PagingConfig {
    /// The cursor codec for this configuration.
    pub fn codec(&self) -> CursorCodec {
        CursorCodec::new(&self.cursor_key, self.cursor_timeout)
    }

    /// The page a request asks for: cursor paging when `cursor` is present, else index paging.
    /// `fingerprint` identifies the query a cursor must belong to.
    pub fn page(
        &self,
        params: PageParams<'_>,
        fingerprint: &QueryFingerprint,
        now: OffsetDateTime,
    ) -> Result<Page, ScimError> {
        match params.cursor {
            None => self.index_page(params.start_index, params.count),
            Some(_) if params.start_index.is_some_and(|s| !s.trim().is_empty()) => {
                Err(ScimError::invalid_value(
                    "startIndex and cursor cannot be combined: use one pagination method",
                ))
            }
            Some(cursor) => self.cursor_page(&self.codec(), cursor, params.count, fingerprint, now),
        }
    }

    /// Index paging (RFC 7644 §3.4.2.4) with its clamping rules.
    pub fn index_page(
        &self,
        start_index: Option<&str>,
        count: Option<&str>,
    ) -> Result<Page, ScimError> {
        let count = match non_empty(count) {
            None => self.default_page_size,
            Some(c) => {
                let n = parse_int(c).ok_or_else(|| {
                    ScimError::invalid_value(format!("count must be an integer, not {c:?}"))
                })?;
                u64::try_from(n).unwrap_or(0)
            }
        }
        .min(self.max_page_size);
        let start_index = match non_empty(start_index) {
            None => 1,
            Some(s) => {
                let n = parse_int(s).ok_or_else(|| {
                    ScimError::invalid_value(format!("startIndex must be an integer, not {s:?}"))
                })?;
                u64::try_from(n).unwrap_or(1).max(1)
            }
        };
        Ok(Page::Index { start_index, count })
    }

    /// Cursor paging (RFC 9865): decodes `cursor` (empty = first page) for the query
    /// `fingerprint` and checks `count` (1 to the maximum page size, else `invalidCount`).
    pub fn cursor_page(
        &self,
        codec: &CursorCodec,
        cursor: &str,
        count: Option<&str>,
        fingerprint: &QueryFingerprint,
        now: OffsetDateTime,
    ) -> Result<Page, ScimError> {
        let count = match non_empty(count) {
            None => self.default_page_size.min(self.max_page_size),
            Some(c) => parse_int(c)
                .and_then(|n| u64::try_from(n).ok())
                .filter(|n| (1..=self.max_page_size).contains(n))
                .ok_or_else(|| {
                    ScimError::typed(
                        ScimType::InvalidCount,
                        format!(
                            "count must be an integer from 1 to {}, not {c:?}",
                            self.max_page_size
                        ),
                    )
                })?,
        };
        let position = match cursor.trim() {
            "" => None,
            token => Some(codec.decode_at(token, fingerprint, now)?),
        };
        Ok(Page::Cursor { position, count })
    }

    /// The `pagination` object of `/ServiceProviderConfig` (RFC 9865 §4).
    pub fn service_provider_config(&self, cursor_supported: bool) -> Value {
        json!({
            "cursor": cursor_supported,
            "index": true,
            "defaultPaginationMethod": "index",
            "defaultPageSize": self.default_page_size,
            "maxPageSize": self.max_page_size,
            "cursorTimeout": self.cursor_timeout.as_secs(),
        })
    }
}

fn non_empty(s: Option<&str>) -> Option<&str> {
    s.map(str::trim).filter(|s| !s.is_empty())
}

/// Parses a decimal integer (optional sign, digits only), saturating at the `i64` bounds so that
/// `count=99999999999999999999` is a huge count rather than an error.
fn parse_int(s: &str) -> Option<i64> {
    let (negative, digits) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut n: i64 = 0;
    for b in digits.bytes() {
        n = n.saturating_mul(10).saturating_add(i64::from(b - b'0'));
    }
    Some(if negative { -n } else { n })
}

// ---------------------------------------------------------------------------------------------
// Sorting.
// ---------------------------------------------------------------------------------------------

/// Parses `sortBy` and `sortOrder` into a [`Sort`] with a canonical path; `None` without
/// `sortBy` (a `sortOrder` alone has nothing to order).
pub fn parse_sort(
    rt: &ResourceTypeDef,
    sort_by: Option<&str>,
    sort_order: Option<&str>,
) -> Result<Option<Sort>, ScimError> {
    let descending = match non_empty(sort_order) {
        None => false,
        Some(o) if o.eq_ignore_ascii_case("ascending") => false,
        Some(o) if o.eq_ignore_ascii_case("descending") => true,
        Some(o) => {
            return Err(ScimError::invalid_value(format!(
                "sortOrder must be \"ascending\" or \"descending\", not {o:?}"
            )));
        }
    };
    let Some(by) = non_empty(sort_by) else {
        return Ok(None);
    };
    let bad = |why: &str| ScimError::invalid_value(format!("cannot sort by {by:?}: {why}"));
    let path = AttrPath::parse(by).map_err(|_| bad("not an attribute path"))?;
    let resolved = rt.resolve(&path).ok_or_else(|| bad("unknown attribute"))?;
    let mut canonical = resolved.canonical_path();
    let mut target = resolved.target();
    if target.attr_type == AttrType::Complex {
        let value = target
            .sub_attribute("value")
            .ok_or_else(|| bad("a complex attribute without a value sub-attribute"))?;
        canonical.sub = Some(value.name.clone());
        target = value;
    }
    if target.returned == Returned::Never || resolved.attr.returned == Returned::Never {
        return Err(bad("the attribute is never returned"));
    }
    Ok(Some(Sort {
        path: canonical,
        descending,
    }))
}

/// The value a resource sorts by: for multi-valued attributes the primary value, else the
/// first; `None` when it has none. Server-maintained attributes (`id`, `meta.*`) come from the
/// resource itself; `meta.version` is its number.
pub fn sort_value(resource: &Resource, path: &AttrPath) -> Option<Value> {
    if path.urn.is_none() {
        match (path.name.as_str(), path.sub.as_deref()) {
            ("id", None) => return Some(Value::String(resource.id.clone())),
            ("meta", Some("created")) => return Some(format_time(resource.meta.created).into()),
            ("meta", Some("lastModified")) => {
                return Some(format_time(resource.meta.last_modified).into());
            }
            ("meta", Some("resourceType")) => return Some(resource.kind.name().into()),
            ("meta", Some("version")) => return Some(resource.meta.version.0.into()),
            ("meta", _) => return None,
            _ => {}
        }
    }
    let container = match &path.urn {
        Some(urn) => resource.attrs.get(urn)?.as_object()?,
        None => &resource.attrs,
    };
    let value = match container.get(&path.name)? {
        Value::Array(items) => items
            .iter()
            .find(|v| v.get("primary") == Some(&Value::Bool(true)))
            .or_else(|| items.first())?,
        v => v,
    };
    let value = match &path.sub {
        Some(sub) => value.get(sub)?,
        None => value,
    };
    (!value.is_null()).then(|| value.clone())
}

/// A sort key with a total order, built once per resource. Within one attribute every valid
/// value has the same variant; values of the wrong type (which validation keeps out of the
/// store) sort after valid ones, as text.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum SortKey {
    Bool(bool),
    Num(NumKey),
    Time(OffsetDateTime),
    Str(String),
    Other(String),
}

/// A number ordered by its `f64` value, ties broken by its exact integer value, so that the
/// order is total even where `f64` loses precision (integers beyond 2^53).
#[derive(Debug, Clone, Copy)]
struct NumKey {
    approx: f64,
    exact: i128,
}

impl PartialEq for NumKey {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for NumKey {}
impl PartialOrd for NumKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for NumKey {
    fn cmp(&self, other: &Self) -> Ordering {
        self.approx
            .total_cmp(&other.approx)
            .then(self.exact.cmp(&other.exact))
    }
}

fn num_key(n: &serde_json::Number) -> Option<NumKey> {
    let exact = n
        .as_i64()
        .map(i128::from)
        .or_else(|| n.as_u64().map(i128::from));
    let approx = n.as_f64()?;
    // -0.0 and 0.0 are the same number.
    let approx = if approx == 0.0 { 0.0 } else { approx };
    Some(NumKey {
        approx,
        // `as` saturates for floats out of range, which is what ordering needs.
        exact: exact.unwrap_or(approx.trunc() as i128),
    })
}

/// Whether string comparison for `def` respects case (as the filter evaluator decides).
fn case_exact(def: &AttributeDef) -> bool {
    def.case_exact || matches!(def.attr_type, AttrType::Binary | AttrType::Reference)
}

fn sort_key(def: Option<&AttributeDef>, value: &Value) -> Option<SortKey> {
    if value.is_null() {
        return None;
    }
    let Some(def) = def else {
        return Some(SortKey::Other(value.to_string()));
    };
    let key = match (def.attr_type, value) {
        (_, Value::Number(n)) => num_key(n).map(SortKey::Num),
        (AttrType::String | AttrType::Reference | AttrType::Binary, Value::String(s)) => {
            Some(SortKey::Str(if case_exact(def) {
                s.clone()
            } else {
                s.chars().flat_map(char::to_lowercase).collect()
            }))
        }
        (AttrType::DateTime, Value::String(s)) => parse_time(s).map(SortKey::Time),
        (AttrType::Boolean, Value::Bool(b)) => Some(SortKey::Bool(*b)),
        _ => None,
    };
    Some(key.unwrap_or_else(|| SortKey::Other(value.to_string())))
}

/// The sort order of (key, id) pairs: keys per direction with missing keys last, then ids.
fn compare(a: (&Option<SortKey>, &str), b: (&Option<SortKey>, &str), descending: bool) -> Ordering {
    let by_key = match (a.0, b.0) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Greater,
        (Some(_), None) => Ordering::Less,
        (Some(x), Some(y)) if descending => y.cmp(x),
        (Some(x), Some(y)) => x.cmp(y),
    };
    by_key.then_with(|| a.1.cmp(b.1))
}

/// A resource with its sort key.
struct Entry {
    key: Option<SortKey>,
    raw: Option<Value>,
    resource: Resource,
}

impl Entry {
    fn position(&self, backward: bool) -> CursorPosition {
        CursorPosition {
            key: self.raw.clone().unwrap_or(Value::Null),
            id: self.resource.id.clone(),
            backward,
        }
    }
}

/// Sorts resources in place by `sort` (or by id), with the rules of the module docs.
pub fn sort_resources(rt: &ResourceTypeDef, resources: &mut Vec<Resource>, sort: Option<&Sort>) {
    let entries = sorted_entries(rt, std::mem::take(resources), sort);
    resources.extend(entries.into_iter().map(|e| e.resource));
}

/// The definition the sort path designates, `meta.version` aside (sorted as a number).
fn sort_def<'a>(rt: &'a ResourceTypeDef, sort: &Sort) -> Option<&'a AttributeDef> {
    rt.resolve(&sort.path).map(|r| r.sub.unwrap_or(r.attr))
}

fn sorted_entries(rt: &ResourceTypeDef, matched: Vec<Resource>, sort: Option<&Sort>) -> Vec<Entry> {
    let def = sort.and_then(|s| sort_def(rt, s));
    let descending = sort.is_some_and(|s| s.descending);
    let mut entries: Vec<Entry> = matched
        .into_iter()
        .map(|resource| {
            let raw = sort.and_then(|s| sort_value(&resource, &s.path));
            let key = raw.as_ref().and_then(|v| sort_key(def, v));
            Entry { key, raw, resource }
        })
        .collect();
    entries.sort_by(|a, b| {
        compare(
            (&a.key, &a.resource.id),
            (&b.key, &b.resource.id),
            descending,
        )
    });
    entries
}

/// Sorts and pages an in-memory list of matching resources (for backends that evaluate
/// filters in memory, and as the reference for the others).
///
/// Index pages skip `start_index - 1` resources; cursor pages hold the resources strictly after
/// the position in (sort key, id) order, or for a `backward` position the `count` resources
/// strictly before it. `next`/`previous` are set (cursor paging only) exactly when a page
/// exists after/before the returned one.
pub fn paginate(
    rt: &ResourceTypeDef,
    matched: Vec<Resource>,
    sort: Option<&Sort>,
    page: &Page,
) -> QueryPage {
    let total_results = matched.len() as u64;
    let descending = sort.is_some_and(|s| s.descending);
    let def = sort.and_then(|s| sort_def(rt, s));
    let mut entries = sorted_entries(rt, matched, sort);
    let n = entries.len();
    let to_usize = |v: u64| usize::try_from(v).unwrap_or(usize::MAX);
    match page {
        Page::Index { start_index, count } => {
            let skip = to_usize(start_index.saturating_sub(1)).min(n);
            let end = skip.saturating_add(to_usize(*count)).min(n);
            let resources = entries.drain(skip..end).map(|e| e.resource).collect();
            QueryPage {
                total_results,
                resources,
                next: None,
                previous: None,
            }
        }
        Page::Cursor { position, count } => {
            let count = to_usize(*count);
            let (start, end) = match position {
                None => (0, count.min(n)),
                Some(p) => {
                    let key = sort_key(def, &p.key);
                    let at =
                        |e: &Entry| compare((&e.key, &e.resource.id), (&key, &p.id), descending);
                    if p.backward {
                        let end = entries.partition_point(|e| at(e) == Ordering::Less);
                        (end.saturating_sub(count), end)
                    } else {
                        let start = entries.partition_point(|e| at(e) != Ordering::Greater);
                        (start, start.saturating_add(count).min(n))
                    }
                }
            };
            let non_empty = end > start;
            let next = (non_empty && end < n)
                .then(|| entries.get(end - 1).map(|e| e.position(false)))
                .flatten();
            let previous = (non_empty && start > 0)
                .then(|| entries.get(start).map(|e| e.position(true)))
                .flatten();
            let resources = entries.drain(start..end).map(|e| e.resource).collect();
            QueryPage {
                total_results,
                resources,
                next,
                previous,
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// ListResponse.
// ---------------------------------------------------------------------------------------------

/// How a list response was paged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListPaging {
    /// Index paging with the effective `startIndex` and `count`.
    Index {
        /// The 1-based index of the first resource.
        start_index: u64,
        /// The page size asked for (after clamping); 0 means "only `totalResults`".
        count: u64,
    },
    /// Cursor paging with the encoded cursors of the neighbouring pages.
    Cursor {
        /// `nextCursor`, absent on the last page.
        next: Option<String>,
        /// `previousCursor`, absent on the first page.
        previous: Option<String>,
    },
}

/// A ListResponse message (RFC 7644 §3.4.2, RFC 9865 §2): `totalResults`, `itemsPerPage` (the
/// number of resources returned), `startIndex` for index paging, `nextCursor` /
/// `previousCursor` for cursor paging, and `Resources` (always present, possibly empty, except
/// for index paging with `count=0`, which RFC 7644 §3.4.2.4 answers with only `totalResults`).
pub fn list_response(total_results: u64, resources: Vec<Value>, paging: ListPaging) -> Value {
    let mut out = Map::new();
    out.insert("schemas".into(), json!([LIST_RESPONSE_SCHEMA]));
    out.insert("totalResults".into(), json!(total_results));
    match paging {
        ListPaging::Index { count: 0, .. } => return Value::Object(out),
        ListPaging::Index { start_index, .. } => {
            out.insert("itemsPerPage".into(), json!(resources.len()));
            out.insert("startIndex".into(), json!(start_index));
        }
        ListPaging::Cursor { next, previous } => {
            out.insert("itemsPerPage".into(), json!(resources.len()));
            if let Some(n) = next {
                out.insert("nextCursor".into(), Value::String(n));
            }
            if let Some(p) = previous {
                out.insert("previousCursor".into(), Value::String(p));
            }
        }
    }
    out.insert("Resources".into(), Value::Array(resources));
    Value::Object(out)
}
