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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::filter::compare_values;
    use crate::resource::{Meta, Version};
    use crate::schema::{ResourceKind, SchemaRegistry};
    use std::collections::HashSet;
    use time::macros::datetime;

    const T0: OffsetDateTime = datetime!(2025-01-01 00:00 UTC);

    fn user(id: &str, attrs: Value) -> Resource {
        Resource {
            id: id.into(),
            kind: ResourceKind::User,
            meta: Meta {
                created: T0,
                last_modified: T0,
                version: Version(1),
            },
            attrs: attrs.as_object().cloned().unwrap(),
        }
    }

    fn ids(page: &QueryPage) -> Vec<&str> {
        page.resources.iter().map(|r| r.id.as_str()).collect()
    }

    fn sorted(resources: Vec<Resource>, by: &str, order: Option<&str>) -> Vec<String> {
        let reg = SchemaRegistry::new();
        let rt = reg.resource_type(ResourceKind::User);
        let sort = parse_sort(rt, Some(by), order).unwrap();
        let page = paginate(
            rt,
            resources,
            sort.as_ref(),
            &Page::Index {
                start_index: 1,
                count: 100,
            },
        );
        page.resources.into_iter().map(|r| r.id).collect()
    }

    fn err_type(e: ScimError) -> &'static str {
        e.scim_type.map(ScimType::as_str).unwrap_or("")
    }

    #[test]
    fn sort_by_resolves_case_insensitively_to_canonical_paths() {
        let reg = SchemaRegistry::new();
        let rt = reg.resource_type(ResourceKind::User);
        let s = parse_sort(rt, Some(" USERNAME "), Some("DESCENDING"))
            .unwrap()
            .unwrap();
        assert_eq!(
            (s.path.to_string().as_str(), s.descending),
            ("userName", true)
        );
        let s = parse_sort(
            rt,
            Some("urn:ietf:params:scim:schemas:core:2.0:User:Name.FamilyName"),
            None,
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            (s.path.to_string().as_str(), s.descending),
            ("name.familyName", false)
        );
        let s = parse_sort(rt, Some("emails"), Some("Ascending"))
            .unwrap()
            .unwrap();
        assert_eq!(s.path.to_string(), "emails.value");
        let s = parse_sort(rt, Some("EmployeeNumber"), None)
            .unwrap()
            .unwrap();
        assert_eq!(
            s.path.to_string(),
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber"
        );
        assert_eq!(parse_sort(rt, None, Some("descending")).unwrap(), None);
        assert_eq!(parse_sort(rt, Some(""), None).unwrap(), None);
    }

    #[test]
    fn sort_rejects_unknown_unsortable_and_bad_order() {
        let reg = SchemaRegistry::new();
        let rt = reg.resource_type(ResourceKind::User);
        for (by, order) in [
            (Some("bogus"), None),
            (Some("name"), None),
            (Some("password"), None),
            (Some("emails[type eq \"work\"]"), None),
            (Some("userName"), Some("up")),
        ] {
            assert_eq!(
                err_type(parse_sort(rt, by, order).unwrap_err()),
                "invalidValue",
                "{by:?} {order:?}"
            );
        }
    }

    #[test]
    fn strings_sort_case_insensitively_with_missing_values_last_in_both_orders() {
        let rs = || {
            vec![
                user("1", json!({"userName": "u1", "displayName": "bob"})),
                user("2", json!({"userName": "u2"})),
                user("3", json!({"userName": "u3", "displayName": "Alice"})),
                user("4", json!({"userName": "u4", "displayName": "carol"})),
                user("5", json!({"userName": "u5", "displayName": null})),
            ]
        };
        assert_eq!(sorted(rs(), "displayName", None), ["3", "1", "4", "2", "5"]);
        assert_eq!(
            sorted(rs(), "displayName", Some("descending")),
            ["4", "1", "3", "2", "5"]
        );
    }

    #[test]
    fn case_exact_attributes_sort_by_code_point() {
        let rs = vec![
            user("1", json!({"userName": "u", "externalId": "a"})),
            user("2", json!({"userName": "u", "externalId": "B"})),
        ];
        assert_eq!(sorted(rs, "externalId", None), ["2", "1"]);
    }

    #[test]
    fn ties_are_broken_by_id_ascending() {
        let rs = || {
            vec![
                user("c", json!({"userName": "x", "title": "Same"})),
                user("a", json!({"userName": "y", "title": "same"})),
                user("b", json!({"userName": "z", "title": "SAME"})),
            ]
        };
        assert_eq!(sorted(rs(), "title", None), ["a", "b", "c"]);
        assert_eq!(sorted(rs(), "title", Some("descending")), ["a", "b", "c"]);
    }

    #[test]
    fn date_times_sort_as_instants() {
        let reg = SchemaRegistry::new();
        let rt = reg.resource_type(ResourceKind::User);
        let mut late = user("late", json!({"userName": "a"}));
        late.meta.created = datetime!(2025-01-01 09:00 UTC);
        let mut early = user("early", json!({"userName": "b"}));
        // 08:00 UTC, whose text in another offset would sort after 09:00Z.
        early.meta.created = datetime!(2025-01-01 10:00 +02:00);
        let sort = parse_sort(rt, Some("meta.created"), None).unwrap();
        let page = paginate(
            rt,
            vec![late, early],
            sort.as_ref(),
            &Page::Index {
                start_index: 1,
                count: 10,
            },
        );
        assert_eq!(ids(&page), ["early", "late"]);
    }

    #[test]
    fn versions_sort_numerically() {
        let reg = SchemaRegistry::new();
        let rt = reg.resource_type(ResourceKind::User);
        let mut a = user("a", json!({"userName": "a"}));
        a.meta.version = Version(10);
        let mut b = user("b", json!({"userName": "b"}));
        b.meta.version = Version(9);
        let sort = parse_sort(rt, Some("meta.version"), None).unwrap();
        let page = paginate(
            rt,
            vec![a, b],
            sort.as_ref(),
            &Page::Index {
                start_index: 1,
                count: 10,
            },
        );
        assert_eq!(ids(&page), ["b", "a"]);
    }

    #[test]
    fn multi_valued_attributes_sort_by_primary_else_first_value() {
        let rs = vec![
            user(
                "1",
                json!({"userName": "a", "emails": [{"value": "z@x"}, {"value": "a@x", "primary": true}]}),
            ),
            user(
                "2",
                json!({"userName": "b", "emails": [{"value": "m@x"}, {"value": "b@x"}]}),
            ),
            user("3", json!({"userName": "c"})),
        ];
        assert_eq!(sorted(rs, "emails", None), ["1", "2", "3"]);
    }

    #[test]
    fn sort_keys_agree_with_filter_comparison() {
        let mut string = AttributeDef::new("s", AttrType::String);
        string.case_exact = false;
        let exact = AttributeDef::new("r", AttrType::Reference);
        let int = AttributeDef::new("i", AttrType::Integer);
        let dec = AttributeDef::new("d", AttrType::Decimal);
        let dt = AttributeDef::new("t", AttrType::DateTime);
        let b = AttributeDef::new("b", AttrType::Boolean);
        let cases: Vec<(&AttributeDef, Vec<Value>)> = vec![
            (
                &string,
                vec![
                    json!("a"),
                    json!("B"),
                    json!("b"),
                    json!("Ä"),
                    json!("ä"),
                    json!(""),
                ],
            ),
            (&exact, vec![json!("a"), json!("B"), json!("b")]),
            (&int, vec![json!(-3), json!(0), json!(7), json!(u64::MAX)]),
            (&dec, vec![json!(-0.5), json!(0.0), json!(2), json!(2.5)]),
            (
                &dt,
                vec![
                    json!("2025-01-01T00:00:00Z"),
                    json!("2025-01-01T01:00:00+02:00"),
                    json!("2024-12-31T23:30:00Z"),
                ],
            ),
            (&b, vec![json!(true), json!(false)]),
        ];
        for (def, values) in cases {
            for x in &values {
                for y in &values {
                    let ours = sort_key(Some(def), x).cmp(&sort_key(Some(def), y));
                    assert_eq!(
                        Some(ours),
                        compare_values(def, x, y),
                        "{} {x} {y}",
                        def.name
                    );
                }
            }
        }
    }

    fn cfg() -> PagingConfig {
        PagingConfig {
            default_page_size: 10,
            max_page_size: 50,
            ..PagingConfig::default()
        }
    }

    #[test]
    fn index_params_are_clamped_per_rfc() {
        let c = cfg();
        let page = |s: Option<&str>, n: Option<&str>| c.index_page(s, n).unwrap();
        assert_eq!(
            page(None, None),
            Page::Index {
                start_index: 1,
                count: 10
            }
        );
        assert_eq!(
            page(Some("0"), None),
            Page::Index {
                start_index: 1,
                count: 10
            }
        );
        assert_eq!(
            page(Some("-5"), Some("-3")),
            Page::Index {
                start_index: 1,
                count: 0
            }
        );
        assert_eq!(
            page(Some("7"), Some("500")),
            Page::Index {
                start_index: 7,
                count: 50
            }
        );
        assert_eq!(
            page(Some(" 2 "), Some("+4")),
            Page::Index {
                start_index: 2,
                count: 4
            }
        );
        assert_eq!(
            page(Some("99999999999999999999999"), Some("0")),
            Page::Index {
                start_index: i64::MAX as u64,
                count: 0
            }
        );
        for (s, n) in [
            (Some("one"), None),
            (None, Some("1.5")),
            (None, Some("-")),
            (Some("0x1"), None),
        ] {
            assert_eq!(
                err_type(c.index_page(s, n).unwrap_err()),
                "invalidValue",
                "{s:?} {n:?}"
            );
        }
    }

    fn ten_users() -> Vec<Resource> {
        // Sort keys with duplicates, case differences and missing values.
        let names = [
            Some("delta"),
            Some("Alpha"),
            None,
            Some("charlie"),
            Some("alpha"),
            Some("Echo"),
            None,
            Some("bravo"),
            Some("DELTA"),
            Some("foxtrot"),
        ];
        names
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let mut attrs = json!({"userName": format!("u{i}")});
                if let Some(n) = n {
                    attrs["displayName"] = json!(n);
                }
                user(&format!("id{i:02}"), attrs)
            })
            .collect()
    }

    #[test]
    fn index_pages_skip_and_take_and_report_the_total() {
        let reg = SchemaRegistry::new();
        let rt = reg.resource_type(ResourceKind::User);
        let sort = parse_sort(rt, Some("displayName"), None).unwrap();
        let p = |start_index, count| {
            paginate(
                rt,
                ten_users(),
                sort.as_ref(),
                &Page::Index { start_index, count },
            )
        };
        let all = p(1, 100);
        assert_eq!(
            ids(&all),
            [
                "id01", "id04", "id07", "id03", "id00", "id08", "id05", "id09", "id02", "id06"
            ]
        );
        assert_eq!(ids(&p(3, 2)), ["id07", "id03"]);
        let past = p(11, 5);
        assert!(past.resources.is_empty());
        assert_eq!(past.total_results, 10);
        let zero = p(1, 0);
        assert!(zero.resources.is_empty());
        assert_eq!(zero.total_results, 10);
        assert_eq!((all.next, all.previous), (None, None));
        assert_eq!(ids(&p(9, 5)), ["id02", "id06"]);
    }

    /// Walks a query forward with `count` per page, then back from the last page.
    fn walk(sort: Option<&Sort>, count: u64) {
        let reg = SchemaRegistry::new();
        let rt = reg.resource_type(ResourceKind::User);
        let expected: Vec<String> = paginate(
            rt,
            ten_users(),
            sort,
            &Page::Index {
                start_index: 1,
                count: 100,
            },
        )
        .resources
        .into_iter()
        .map(|r| r.id)
        .collect();

        let mut seen = Vec::new();
        let mut position = None;
        let mut pages = Vec::new();
        loop {
            let page = paginate(rt, ten_users(), sort, &Page::Cursor { position, count });
            assert_eq!(page.total_results, 10);
            assert!(page.resources.len() as u64 <= count);
            assert_eq!(
                page.previous.is_some(),
                !seen.is_empty(),
                "previous only after the first page"
            );
            seen.extend(page.resources.iter().map(|r| r.id.clone()));
            pages.push(page.clone());
            match page.next {
                Some(next) => position = Some(next),
                None => break,
            }
        }
        assert_eq!(
            seen, expected,
            "forward: every resource exactly once, in order"
        );

        let mut back: Vec<String> = Vec::new();
        let mut page = pages.last().cloned().unwrap();
        back.splice(0..0, page.resources.iter().map(|r| r.id.clone()));
        while let Some(prev) = page.previous.clone() {
            page = paginate(
                rt,
                ten_users(),
                sort,
                &Page::Cursor {
                    position: Some(prev),
                    count,
                },
            );
            assert!(page.next.is_some(), "a page before another has a next");
            back.splice(0..0, page.resources.iter().map(|r| r.id.clone()));
        }
        assert_eq!(back, expected, "backward: every resource exactly once");
        let unique: HashSet<_> = back.iter().collect();
        assert_eq!(unique.len(), 10);
    }

    #[test]
    fn cursor_pages_visit_every_resource_once_forward_and_backward() {
        let reg = SchemaRegistry::new();
        let rt = reg.resource_type(ResourceKind::User);
        for count in [1, 3, 4, 10, 11] {
            walk(None, count);
            for order in ["ascending", "descending"] {
                let sort = parse_sort(rt, Some("displayName"), Some(order)).unwrap();
                walk(sort.as_ref(), count);
            }
        }
    }

    #[test]
    fn last_cursor_page_has_no_next_and_first_has_no_previous() {
        let reg = SchemaRegistry::new();
        let rt = reg.resource_type(ResourceKind::User);
        let first = paginate(
            rt,
            ten_users(),
            None,
            &Page::Cursor {
                position: None,
                count: 10,
            },
        );
        assert_eq!((first.next, first.previous), (None, None));
        assert_eq!(first.resources.len(), 10);
        let empty = paginate(
            rt,
            Vec::new(),
            None,
            &Page::Cursor {
                position: None,
                count: 5,
            },
        );
        assert_eq!(
            (empty.total_results, empty.next, empty.previous),
            (0, None, None)
        );
    }

    #[test]
    fn cursor_paging_survives_deletes_between_pages() {
        let reg = SchemaRegistry::new();
        let rt = reg.resource_type(ResourceKind::User);
        let sort = parse_sort(rt, Some("displayName"), None).unwrap();
        let first = paginate(
            rt,
            ten_users(),
            sort.as_ref(),
            &Page::Cursor {
                position: None,
                count: 3,
            },
        );
        assert_eq!(ids(&first), ["id01", "id04", "id07"]);
        // The boundary resource itself is deleted before the next request.
        let rest: Vec<Resource> = ten_users().into_iter().filter(|r| r.id != "id07").collect();
        let second = paginate(
            rt,
            rest,
            sort.as_ref(),
            &Page::Cursor {
                position: first.next,
                count: 3,
            },
        );
        assert_eq!(ids(&second), ["id03", "id00", "id08"]);
    }

    fn fingerprint(filter: &str) -> QueryFingerprint {
        let reg = SchemaRegistry::new();
        let rt = reg.resource_type(ResourceKind::User);
        let f = crate::filter::Filter::parse(filter)
            .unwrap()
            .resolve(rt)
            .unwrap();
        QueryFingerprint::new("default", ResourceKind::User, Some(&f), None)
    }

    fn codec() -> CursorCodec {
        CursorCodec::new(
            &CursorKey::new(b"0123456789abcdef0123456789abcdef".to_vec()),
            Duration::from_secs(600),
        )
    }

    fn position() -> CursorPosition {
        CursorPosition {
            key: json!("Bärbel \"quoted\""),
            id: "2819c223-7f76-453a-919d-413861904646".into(),
            backward: true,
        }
    }

    #[test]
    fn cursors_round_trip_as_url_safe_tokens() {
        let fp = fingerprint("userName sw \"J\"");
        let token = codec().encode_at(&position(), &fp, T0);
        assert!(
            token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
            "{token}"
        );
        assert_eq!(codec().decode_at(&token, &fp, T0).unwrap(), position());
        // Spelling of the filter does not matter once resolved.
        assert_eq!(
            codec()
                .decode_at(&token, &fingerprint("USERNAME SW \"J\""), T0)
                .unwrap(),
            position()
        );
    }

    #[test]
    fn tampered_cursors_are_invalid() {
        let fp = fingerprint("userName sw \"J\"");
        let token = codec().encode_at(&position(), &fp, T0);
        for i in 0..token.len() {
            let mut bytes = token.clone().into_bytes();
            bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
            let tampered = String::from_utf8(bytes).unwrap();
            let e = codec().decode_at(&tampered, &fp, T0).unwrap_err();
            assert_eq!(err_type(e), "invalidCursor", "byte {i}");
        }
        for garbage in [
            "x",
            "!!!!",
            "AAAA",
            &"A".repeat(MAX_CURSOR_LEN + 1),
            &token[..token.len() - 1],
        ] {
            let e = codec().decode_at(garbage, &fp, T0).unwrap_err();
            assert_eq!(err_type(e), "invalidCursor");
        }
        let other_key = CursorCodec::new(
            &CursorKey::new(b"another key".to_vec()),
            Duration::from_secs(600),
        );
        assert_eq!(
            err_type(other_key.decode_at(&token, &fp, T0).unwrap_err()),
            "invalidCursor"
        );
    }

    #[test]
    fn cursors_of_another_query_are_invalid() {
        let token = codec().encode_at(&position(), &fingerprint("userName sw \"J\""), T0);
        let e = codec()
            .decode_at(&token, &fingerprint("userName sw \"K\""), T0)
            .unwrap_err();
        assert_eq!(err_type(e), "invalidCursor");
        let reg = SchemaRegistry::new();
        let rt = reg.resource_type(ResourceKind::User);
        let sort = parse_sort(rt, Some("userName"), None).unwrap();
        for fp in [
            QueryFingerprint::new("default", ResourceKind::User, None, None),
            QueryFingerprint::new("default", ResourceKind::User, None, sort.as_ref()),
            QueryFingerprint::new("other", ResourceKind::User, None, None),
            QueryFingerprint::new("default", ResourceKind::Group, None, None),
        ] {
            let t = codec().encode_at(&position(), &fp, T0);
            assert_eq!(codec().decode_at(&t, &fp, T0).unwrap(), position());
            let foreign = QueryFingerprint::new(
                "default",
                ResourceKind::User,
                None,
                Some(&Sort {
                    path: AttrPath::new("userName"),
                    descending: true,
                }),
            );
            assert_eq!(
                err_type(codec().decode_at(&t, &foreign, T0).unwrap_err()),
                "invalidCursor"
            );
        }
    }

    #[test]
    fn cursors_expire_after_the_timeout() {
        let fp = fingerprint("userName pr");
        let token = codec().encode_at(&position(), &fp, T0);
        let just_in_time = T0 + time::Duration::seconds(600);
        assert!(codec().decode_at(&token, &fp, just_in_time).is_ok());
        let late = T0 + time::Duration::seconds(601);
        assert_eq!(
            err_type(codec().decode_at(&token, &fp, late).unwrap_err()),
            "expiredCursor"
        );
    }

    #[test]
    fn cursor_count_must_be_between_one_and_the_maximum() {
        let c = cfg();
        let fp = fingerprint("userName pr");
        let codec = c.codec();
        let page = |n: Option<&str>| c.cursor_page(&codec, "", n, &fp, T0);
        assert_eq!(
            page(None).unwrap(),
            Page::Cursor {
                position: None,
                count: 10
            }
        );
        assert_eq!(
            page(Some("50")).unwrap(),
            Page::Cursor {
                position: None,
                count: 50
            }
        );
        for bad in ["0", "-1", "51", "ten"] {
            assert_eq!(
                err_type(page(Some(bad)).unwrap_err()),
                "invalidCount",
                "{bad}"
            );
        }
    }

    #[test]
    fn page_params_choose_the_pagination_method() {
        let c = cfg();
        let fp = fingerprint("userName pr");
        let p = |start_index, count, cursor| {
            c.page(
                PageParams {
                    start_index,
                    count,
                    cursor,
                },
                &fp,
                T0,
            )
        };
        assert_eq!(
            p(None, None, None).unwrap(),
            Page::Index {
                start_index: 1,
                count: 10
            }
        );
        assert_eq!(
            p(None, Some("5"), Some("")).unwrap(),
            Page::Cursor {
                position: None,
                count: 5
            }
        );
        let token = c.codec().encode_at(&position(), &fp, T0);
        assert_eq!(
            p(None, None, Some(&token)).unwrap(),
            Page::Cursor {
                position: Some(position()),
                count: 10
            }
        );
        assert_eq!(
            err_type(p(Some("1"), None, Some("")).unwrap_err()),
            "invalidValue"
        );
        assert_eq!(
            err_type(p(None, None, Some("nope")).unwrap_err()),
            "invalidCursor"
        );
    }

    #[test]
    fn list_response_follows_rfc_shapes() {
        let r = list_response(
            7,
            vec![],
            ListPaging::Index {
                start_index: 1,
                count: 0,
            },
        );
        assert_eq!(
            r,
            json!({"schemas": [LIST_RESPONSE_SCHEMA], "totalResults": 7})
        );
        let r = list_response(
            7,
            vec![json!({"id": "a"})],
            ListPaging::Index {
                start_index: 3,
                count: 1,
            },
        );
        assert_eq!(
            r,
            json!({"schemas": [LIST_RESPONSE_SCHEMA], "totalResults": 7, "itemsPerPage": 1,
                   "startIndex": 3, "Resources": [{"id": "a"}]})
        );
        let r = list_response(
            0,
            vec![],
            ListPaging::Index {
                start_index: 1,
                count: 10,
            },
        );
        assert_eq!(r["Resources"], json!([]));
        let r = list_response(
            7,
            vec![json!({"id": "a"})],
            ListPaging::Cursor {
                next: Some("n".into()),
                previous: None,
            },
        );
        assert_eq!(
            r,
            json!({"schemas": [LIST_RESPONSE_SCHEMA], "totalResults": 7, "itemsPerPage": 1,
                   "nextCursor": "n", "Resources": [{"id": "a"}]})
        );
    }

    #[test]
    fn secrets_never_reach_debug_output() {
        let c = PagingConfig {
            cursor_key: CursorKey::new(b"supersecret".to_vec()),
            ..PagingConfig::default()
        };
        assert!(!format!("{c:?}").contains("supersecret"));
        assert!(!format!("{:?}", c.codec()).contains("supersecret"));
        let spc = c.service_provider_config(true);
        assert_eq!(spc["cursorTimeout"], 600);
        assert_eq!(spc["maxPageSize"], 1000);
    }
}
