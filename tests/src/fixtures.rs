//! What the cases share: the suite's schema registry, fresh source names, realistic SCIM bodies
//! turned into canonical attributes the way the server does it, and small query helpers.
//!
//! Every helper panics with a message on failure: they are for tests only.

use scimd_core::filter::Filter;
use scimd_core::normalize::{WriteMode, prepare};
use scimd_core::query::{Load, Page, Query, QueryPage, Sort};
use scimd_core::resource::Resource;
use scimd_core::schema::{ENTERPRISE_USER, GROUP, ResourceKind, Schema, SchemaRegistry, USER};
use scimd_core::{AttrPath, Backend, BackendError, PatchRequest};
use serde_json::{Map, Value, json};
use std::sync::{Arc, OnceLock};

/// The URN of the extension the suite adds to `User` so that every attribute type (integer,
/// decimal, dateTime, case-exact and multi-valued strings) can be filtered and sorted on.
pub const CONFORMANCE_EXT: &str = "urn:scimd:params:scim:schemas:extension:conformance:2.0:User";

/// The schema registry the suite resolves filters, patches and bodies against: the built-in
/// schemas plus the [`CONFORMANCE_EXT`] extension on `User`.
///
/// A backend under test must be built with this registry (or one with the same schemas).
pub fn registry() -> Arc<SchemaRegistry> {
    static REGISTRY: OnceLock<Arc<SchemaRegistry>> = OnceLock::new();
    REGISTRY
        .get_or_init(|| {
            let ext = Schema::from_json(&json!({
                "id": CONFORMANCE_EXT,
                "name": "ConformanceUser",
                "description": "Attributes of every type, for the backend conformance suite.",
                "attributes": [
                    {"name": "badge", "type": "integer"},
                    {"name": "score", "type": "decimal"},
                    {"name": "hired", "type": "dateTime"},
                    {"name": "remote", "type": "boolean"},
                    {"name": "code", "type": "string", "caseExact": true},
                    {"name": "tags", "type": "string", "multiValued": true}
                ]
            }))
            .unwrap_or_else(|e| panic!("conformance extension schema: {e}"));
            let mut reg = SchemaRegistry::new();
            reg.add_extension(ResourceKind::User, ext, false)
                .unwrap_or_else(|e| panic!("conformance extension: {e}"));
            Arc::new(reg)
        })
        .clone()
}

/// A source name no other case (or earlier run on a shared database) uses: the case's name
/// with a random suffix, lower-case letters, digits and `-` only.
pub fn source(case: &str) -> String {
    let prefix: String = case
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .take(24)
        .collect();
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    format!("{prefix}-{}", &suffix[..12])
}

/// Canonical attributes for a POST body, as the server's normalization produces them.
pub fn attrs(kind: ResourceKind, body: &Value) -> Map<String, Value> {
    let reg = registry();
    prepare(reg.resource_type(kind), body, WriteMode::Create)
        .unwrap_or_else(|e| panic!("fixture body does not normalize: {e}\n{body:#}"))
}

/// Canonical attributes for a PUT body replacing `old`.
pub fn replace_attrs(old: &Resource, body: &Value) -> Map<String, Value> {
    let reg = registry();
    prepare(reg.resource_type(old.kind), body, WriteMode::Replace(old))
        .unwrap_or_else(|e| panic!("fixture body does not normalize: {e}\n{body:#}"))
}

/// A filter parsed and resolved against the suite's schemas.
pub fn filter(kind: ResourceKind, text: &str) -> Filter {
    let reg = registry();
    Filter::parse(text)
        .and_then(|f| f.resolve(reg.resource_type(kind)))
        .unwrap_or_else(|e| panic!("fixture filter {text:?}: {e}"))
}

/// A sort on a path resolved to canonical spelling.
pub fn sort(kind: ResourceKind, path: &str, descending: bool) -> Sort {
    let reg = registry();
    let parsed = AttrPath::parse(path).unwrap_or_else(|e| panic!("sort path {path:?}: {e}"));
    let resolved = reg
        .resource_type(kind)
        .resolve(&parsed)
        .unwrap_or_else(|| panic!("sort path {path:?} does not resolve"));
    Sort {
        path: resolved.canonical_path(),
        descending,
    }
}

/// A PATCH request from its `Operations` array.
pub fn patch(kind: ResourceKind, operations: Value) -> PatchRequest {
    let body = json!({
        "schemas": [scimd_core::patch::PATCH_OP_SCHEMA],
        "Operations": operations,
    });
    PatchRequest::parse(&body, registry(), kind)
        .unwrap_or_else(|e| panic!("fixture patch: {e}\n{body:#}"))
}

/// A realistic user body, as an IdP sends it.
pub fn user_body(user_name: &str) -> Value {
    let local = user_name
        .split('@')
        .next()
        .unwrap_or(user_name)
        .to_lowercase();
    json!({
        "schemas": [USER, ENTERPRISE_USER],
        "userName": user_name,
        "externalId": format!("ext-{local}"),
        "name": {"givenName": "Barbara", "familyName": "Jensen", "formatted": "Barbara Jensen"},
        "displayName": "Barbara Jensen",
        "active": true,
        "emails": [
            {"value": format!("{local}@example.com"), "type": "work", "primary": true},
            {"value": format!("{local}@home.example.org"), "type": "home"}
        ],
        ENTERPRISE_USER: {"department": "Engineering", "employeeNumber": "701984"}
    })
}

/// A group body with the given members (type left for the backend to fill in).
pub fn group_body(display_name: &str, members: &[&Resource]) -> Value {
    let members: Vec<Value> = members.iter().map(|m| json!({"value": m.id})).collect();
    let mut body = json!({"schemas": [GROUP], "displayName": display_name});
    if !members.is_empty() {
        body["members"] = Value::Array(members);
    }
    body
}

/// Creates a resource from a body, panicking on failure.
pub async fn create(
    backend: &dyn Backend,
    source: &str,
    kind: ResourceKind,
    body: &Value,
) -> Resource {
    backend
        .create(source, kind, attrs(kind, body))
        .await
        .unwrap_or_else(|e| panic!("create {} failed: {e}\n{body:#}", kind.name()))
}

/// Creates a user from [`user_body`].
pub async fn create_user(backend: &dyn Backend, source: &str, user_name: &str) -> Resource {
    create(backend, source, ResourceKind::User, &user_body(user_name)).await
}

/// Creates a group from [`group_body`].
pub async fn create_group(
    backend: &dyn Backend,
    source: &str,
    display_name: &str,
    members: &[&Resource],
) -> Resource {
    create(
        backend,
        source,
        ResourceKind::Group,
        &group_body(display_name, members),
    )
    .await
}

/// Reads a resource with every relation, panicking when it is missing.
pub async fn get(backend: &dyn Backend, source: &str, kind: ResourceKind, id: &str) -> Resource {
    backend
        .get(source, kind, id, Load::ALL)
        .await
        .unwrap_or_else(|e| panic!("get {} {id} failed: {e}", kind.name()))
}

/// The largest page the backend returns in one query.
pub fn max_page(backend: &dyn Backend) -> u64 {
    backend.capabilities().max_results.max(1)
}

/// Runs a query, panicking on failure.
pub async fn run_query(
    backend: &dyn Backend,
    source: &str,
    kind: ResourceKind,
    filter: Option<Filter>,
    sort: Option<Sort>,
    page: Page,
    load: Load,
) -> QueryPage {
    let q = Query {
        filter,
        sort,
        page,
        load,
    };
    backend
        .query(source, kind, &q)
        .await
        .unwrap_or_else(|e| panic!("query {q:?} failed: {e}"))
}

/// Every resource matching `filter` (text), in the backend's natural order, in one page.
pub async fn find(
    backend: &dyn Backend,
    source: &str,
    kind: ResourceKind,
    filter_text: Option<&str>,
) -> QueryPage {
    let f = filter_text.map(|t| filter(kind, t));
    let page = Page::Index {
        start_index: 1,
        count: max_page(backend),
    };
    run_query(backend, source, kind, f, None, page, Load::ALL).await
}

/// The ids of resources, in order.
pub fn ids(resources: &[Resource]) -> Vec<String> {
    resources.iter().map(|r| r.id.clone()).collect()
}

/// The ids of resources, sorted (for comparing sets).
pub fn sorted_ids(resources: &[Resource]) -> Vec<String> {
    let mut v = ids(resources);
    v.sort();
    v
}

/// The `value`s of a multi-valued complex attribute (`members`, `groups`, `emails`), in order.
pub fn values_of(resource: &Resource, attr: &str) -> Vec<String> {
    resource
        .attrs
        .get(attr)
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(|i| i.get("value").and_then(Value::as_str).map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// [`values_of`], sorted.
pub fn sorted_values_of(resource: &Resource, attr: &str) -> Vec<String> {
    let mut v = values_of(resource, attr);
    v.sort();
    v
}

/// The string value of a top-level attribute.
pub fn str_attr<'a>(resource: &'a Resource, attr: &str) -> Option<&'a str> {
    resource.attrs.get(attr).and_then(Value::as_str)
}

/// Asserts that a result is the error `expected` names (compared by variant and, for
/// `Uniqueness`, the attribute).
#[track_caller]
pub fn assert_err<T: std::fmt::Debug>(result: Result<T, BackendError>, expected: &BackendError) {
    match result {
        Ok(v) => panic!("expected {expected:?}, got Ok({v:?})"),
        Err(e) => match (&e, expected) {
            (BackendError::NotFound(_), BackendError::NotFound(_))
            | (BackendError::VersionMismatch, BackendError::VersionMismatch)
            | (BackendError::InvalidReference(_), BackendError::InvalidReference(_)) => {}
            (BackendError::Uniqueness(a), BackendError::Uniqueness(b)) if a == b => {}
            _ => panic!("expected {expected:?}, got {e:?}"),
        },
    }
}

/// Whether the backend has a capability; prints that the case is skipped when it has not.
pub fn has(case: &str, feature: &str, supported: bool) -> bool {
    if !supported {
        println!("skipped {case}: the backend does not support {feature}");
    }
    supported
}

/// Asserts a resource's version when the backend maintains versions (`capabilities().etag`).
#[track_caller]
pub fn assert_version(
    backend: &dyn Backend,
    got: scimd_core::Version,
    want: scimd_core::Version,
    what: &str,
) {
    if backend.capabilities().etag {
        assert_eq!(got, want, "version {what}");
    }
}
