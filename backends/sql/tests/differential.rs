//! Differential property test: random resources and random filters (every operator, `not`,
//! nesting, value paths, extension and derived attributes, `eq null`), random sorts and cursor
//! walks. What SQL returns must equal what the core's reference evaluator and paginator
//! compute over the same stored resources — on SQLite and on PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use scimd_backend_sql::{Dialect, SqlBackend, translate_filter};
use scimd_core::filter::{Filter, matches};
use scimd_core::paging::paginate;
use scimd_core::query::{CursorPosition, Page, Query, Sort};
use scimd_core::schema::{ENTERPRISE_USER, GROUP, USER};
use scimd_core::{Backend, Load, Resource, ResourceKind, SchemaRegistry};
use scimd_testkit::fixtures::CONFORMANCE_EXT;
use serde_json::{Value, json};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Strings that probe case folding (ASCII and not), LIKE wildcards and the escape character,
/// and substring needles shorter and longer than the three characters the trigram index needs
/// (with quotes and full-text query syntax, which must stay literal).
const WORDS: &[&str] = &[
    "a",
    "A",
    "al",
    "Alice",
    "alice",
    "ALICE",
    "bob",
    "Bob@Example.com",
    "example",
    "%",
    "_",
    "\\",
    "a_b",
    "a%b",
    "Ärger",
    "ärger",
    "straße",
    "STRASSE",
    "ΣΑΣ",
    "σας",
    "İx",
    "ix",
    "x",
    "",
    "Zoë",
    "zoë",
    "1",
    "10",
    "9",
    "lic",
    "LIC",
    "ice",
    "@ex",
    "ple.com",
    "rger",
    "ΑΣ",
    "O'Brien",
    "o'br",
    "say \"Hi\"",
    "\"hi\"",
    "50%_off\\n",
    "%_o",
    "f\\n",
    "x\" OR \"y*",
];
const TIMES: &[&str] = &[
    "2024-01-01T10:00:00+02:00",
    "2024-01-01T08:00:00Z",
    "2024-01-01T08:00:00.5Z",
    "2023-12-31T23:59:59.999999999-01:00",
    "2030-06-15T12:00:00Z",
    "1999-01-01T00:00:00Z",
];
const INTS: &[i64] = &[-5, 0, 1, 7, 100, 4_000_000_000];
const DECIMALS: &[f64] = &[-1.25, 0.0, 0.5, 2.0, 2.71, 1000.0];
const TYPES: &[&str] = &["work", "Work", "home", "other"];

fn word() -> impl Strategy<Value = String> {
    prop::sample::select(WORDS).prop_map(str::to_string)
}

fn maybe<T: std::fmt::Debug + Clone + 'static>(
    s: impl Strategy<Value = T> + 'static,
) -> impl Strategy<Value = Option<T>> {
    prop_oneof![1 => Just(None), 2 => s.prop_map(Some)]
}

fn email() -> impl Strategy<Value = Value> {
    (word(), maybe(prop::sample::select(TYPES)), any::<bool>()).prop_map(|(w, t, p)| {
        let mut e = serde_json::Map::new();
        e.insert("value".into(), json!(format!("{w}@Example.com")));
        if let Some(t) = t {
            e.insert("type".into(), json!(t));
        }
        if p {
            e.insert("primary".into(), json!(true));
        }
        Value::Object(e)
    })
}

/// A user body (without userName, which is made unique per index).
fn user() -> impl Strategy<Value = Value> {
    (
        (maybe(word()), maybe(word()), maybe(word()), maybe(word())),
        (maybe(any::<bool>()), maybe(word())),
        prop::collection::vec(email(), 0..3),
        (maybe(word()), maybe(word())),
        (
            maybe(prop::sample::select(INTS)),
            maybe(prop::sample::select(DECIMALS)),
            maybe(prop::sample::select(TIMES)),
            maybe(any::<bool>()),
            maybe(word()),
            prop::collection::vec(word(), 0..3),
        ),
    )
        .prop_map(
            |((display, given, family, title), (active, ext_id), emails, (dept, mgr), ext)| {
                let mut u = serde_json::Map::new();
                u.insert(
                    "schemas".into(),
                    json!([USER, ENTERPRISE_USER, CONFORMANCE_EXT]),
                );
                let mut put = |k: &str, v: Option<Value>| {
                    if let Some(v) = v {
                        u.insert(k.into(), v);
                    }
                };
                put("displayName", display.map(Value::from));
                put("title", title.map(Value::from));
                put("active", active.map(Value::from));
                put(
                    "externalId",
                    ext_id.filter(|s| !s.is_empty()).map(Value::from),
                );
                let mut name = serde_json::Map::new();
                if let Some(g) = given {
                    name.insert("givenName".into(), json!(g));
                }
                if let Some(f) = family {
                    name.insert("familyName".into(), json!(f));
                }
                if !name.is_empty() {
                    u.insert("name".into(), Value::Object(name));
                }
                // One primary at most, as normalization requires.
                let mut seen_primary = false;
                let emails: Vec<Value> = emails
                    .into_iter()
                    .map(|mut e| {
                        if e.get("primary").is_some() {
                            if seen_primary {
                                e.as_object_mut().map(|o| o.remove("primary"));
                            }
                            seen_primary = true;
                        }
                        e
                    })
                    .collect();
                if !emails.is_empty() {
                    u.insert("emails".into(), Value::Array(emails));
                }
                let mut ent = serde_json::Map::new();
                if let Some(d) = dept {
                    ent.insert("department".into(), json!(d));
                }
                if let Some(m) = mgr.filter(|s| !s.is_empty()) {
                    ent.insert("manager".into(), json!({ "value": m }));
                }
                if !ent.is_empty() {
                    u.insert(ENTERPRISE_USER.into(), Value::Object(ent));
                }
                let (badge, score, hired, remote, code, tags) = ext;
                let mut x = serde_json::Map::new();
                if let Some(b) = badge {
                    x.insert("badge".into(), json!(b));
                }
                if let Some(s) = score {
                    x.insert("score".into(), json!(s));
                }
                if let Some(h) = hired {
                    x.insert("hired".into(), json!(h));
                }
                if let Some(r) = remote {
                    x.insert("remote".into(), json!(r));
                }
                if let Some(c) = code {
                    x.insert("code".into(), json!(c));
                }
                if !tags.is_empty() {
                    x.insert("tags".into(), json!(tags));
                }
                if !x.is_empty() {
                    u.insert(CONFORMANCE_EXT.into(), Value::Object(x));
                }
                Value::Object(u)
            },
        )
}

/// A group: display name and the indices of its members (users, then earlier groups).
#[derive(Debug, Clone)]
struct GroupSpec {
    display: String,
    users: Vec<usize>,
    groups: Vec<usize>,
}

fn group() -> impl Strategy<Value = GroupSpec> {
    (
        word(),
        prop::collection::vec(0usize..12, 0..5),
        prop::collection::vec(0usize..4, 0..2),
    )
        .prop_map(|(display, users, groups)| GroupSpec {
            display: if display.is_empty() {
                "g".into()
            } else {
                display
            },
            users,
            groups,
        })
}

/// A JSON string literal.
fn lit(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

fn op() -> impl Strategy<Value = &'static str> {
    prop::sample::select(
        &[
            "eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le", "EQ", "Co",
        ][..],
    )
}

fn string_leaf(paths: &'static [&'static str]) -> impl Strategy<Value = String> {
    (prop::sample::select(paths), op(), word())
        .prop_map(|(p, op, w)| format!("{p} {op} {}", lit(&w)))
}

/// A leaf of a user filter. `{u3}` / `{g1}` stand for ids, filled in after creation.
fn user_leaf() -> BoxedStrategy<String> {
    const STRINGS: &[&str] = &[
        "userName",
        "displayName",
        "title",
        "name.givenName",
        "name.familyName",
        "externalId",
        "emails.value",
        "emails.type",
        "emails",
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department",
        "department",
        "manager",
        "manager.value",
        "code",
        "tags",
        "schemas",
        "groups.display",
        "groups.type",
        "meta.resourceType",
        "meta.version",
    ];
    const PRESENT: &[&str] = &[
        "userName",
        "displayName",
        "title",
        "name",
        "name.givenName",
        "externalId",
        "emails",
        "emails.type",
        "emails.primary",
        "active",
        "department",
        "manager",
        "badge",
        "score",
        "hired",
        "remote",
        "code",
        "tags",
        "groups",
        "groups.display",
        "schemas",
        "meta.created",
        "meta.location",
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User",
    ];
    prop_oneof![
        6 => string_leaf(STRINGS),
        2 => (prop::sample::select(PRESENT)).prop_map(|p| format!("{p} pr")),
        1 => (prop::sample::select(PRESENT), prop::sample::select(&["eq", "ne"][..]))
            .prop_map(|(p, op)| format!("{p} {op} null")),
        1 => (prop::sample::select(&["active", "remote", "emails.primary"][..]), op(), any::<bool>())
            .prop_map(|(p, op, b)| format!("{p} {op} {b}")),
        1 => (op(), prop::sample::select(INTS)).prop_map(|(op, n)| format!("badge {op} {n}")),
        1 => (op(), prop::sample::select(DECIMALS), prop::sample::select(INTS))
            .prop_map(|(op, d, n)| if n > 50 { format!("score {op} {n}") } else { format!("score {op} {d:?}") }),
        1 => (op(), prop::sample::select(TIMES)).prop_map(|(op, t)| format!("hired {op} {}", lit(t))),
        1 => (prop::sample::select(&["meta.created", "meta.lastModified"][..]), op(),
              prop::sample::select(&["2000-01-01T00:00:00Z", "2100-01-01T00:00:00Z"][..]))
            .prop_map(|(p, op, t)| format!("{p} {op} {}", lit(t))),
        1 => (op(), 0usize..12).prop_map(|(op, i)| format!("id {op} \"{{u{i}}}\"")),
        1 => (op(), 0usize..4).prop_map(|(op, i)| format!("groups.value {op} \"{{g{i}}}\"")),
        1 => (op(), 0usize..4).prop_map(|(op, i)| format!("groups {op} \"{{g{i}}}\"")),
        2 => (string_leaf(&["value", "type", "display"]),
              prop::sample::select(&["and", "or"][..]),
              prop::sample::select(&["primary eq true", "primary pr", "not (type eq \"work\")", "value pr"][..]))
            .prop_map(|(a, c, b)| format!("emails[{a} {c} {b}]")),
        1 => string_leaf(&["givenName", "familyName"]).prop_map(|a| format!("name[{a}]")),
        1 => string_leaf(&["display", "type", "value"]).prop_map(|a| format!("groups[{a}]")),
        1 => (prop::sample::select(&["created", "lastModified"][..]), op())
            .prop_map(|(p, op)| format!("meta[{p} {op} \"2001-01-01T00:00:00Z\"]")),
    ]
    .boxed()
}

/// A `co`, `sw` or `ew` comparison.
fn substring_leaf(paths: &'static [&'static str]) -> BoxedStrategy<String> {
    (
        prop::sample::select(paths),
        prop::sample::select(&["co", "sw", "ew", "Co", "EW"][..]),
        word(),
    )
        .prop_map(|(p, op, w)| format!("{p} {op} {}", lit(&w)))
        .boxed()
}

/// User filters that imply substring tests, which the substring index narrows: the index must
/// never drop a resource the exact condition would keep.
fn narrowable_user_filter() -> BoxedStrategy<String> {
    const PATHS: &[&str] = &[
        "userName",
        "displayName",
        "title",
        "name.givenName",
        "name.familyName",
        "externalId",
        "emails.value",
        "emails",
        "emails.type",
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department",
        "manager",
        "code",
        "tags",
    ];
    let leaf = substring_leaf(PATHS);
    prop_oneof![
        2 => leaf.clone(),
        2 => (leaf.clone(), nest(user_leaf()))
            .prop_map(|(a, b)| format!("{a} and ({b})")),
        1 => (leaf.clone(), leaf.clone()).prop_map(|(a, b)| format!("{a} or {b}")),
        1 => (leaf.clone(), leaf.clone(), nest(user_leaf()))
            .prop_map(|(a, b, c)| format!("({a} or {b}) and not ({c})")),
        1 => (substring_leaf(&["value", "type", "display"]),
              prop::sample::select(&["and", "or"][..]),
              prop::sample::select(&["primary eq true", "type eq \"work\"", "value pr"][..]))
            .prop_map(|(a, c, b)| format!("emails[{a} {c} {b}]")),
        1 => substring_leaf(&["givenName", "familyName"]).prop_map(|a| format!("name[{a}]")),
        1 => leaf.prop_map(|a| format!("not (not ({a}))")),
    ]
    .boxed()
}

fn group_leaf() -> BoxedStrategy<String> {
    prop_oneof![
        3 => string_leaf(&["displayName", "members.display", "members.type", "externalId"]),
        2 => (op(), 0usize..12).prop_map(|(op, i)| format!("members.value {op} \"{{u{i}}}\"")),
        1 => (op(), 0usize..4).prop_map(|(op, i)| format!("members {op} \"{{g{i}}}\"")),
        1 => prop::sample::select(&["members pr", "members.display pr", "displayName pr", "members eq null"][..])
            .prop_map(str::to_string),
        2 => (string_leaf(&["type", "display"]), 0usize..12)
            .prop_map(|(a, i)| format!("members[{a} or value eq \"{{u{i}}}\"]")),
    ]
    .boxed()
}

/// Nests leaves with `and`, `or`, `not` and parentheses.
fn nest(leaf: BoxedStrategy<String>) -> impl Strategy<Value = String> {
    leaf.prop_recursive(4, 24, 2, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a} and {b}")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a}) or ({b})")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a} or {b}")),
            inner.clone().prop_map(|a| format!("not ({a})")),
        ]
    })
}

fn sort_path(kind: ResourceKind) -> impl Strategy<Value = (&'static str, bool)> {
    let paths: &'static [&'static str] = match kind {
        ResourceKind::User => &[
            "userName",
            "displayName",
            "name.familyName",
            "emails",
            "emails.type",
            "externalId",
            "meta.created",
            "meta.lastModified",
            "id",
            "badge",
            "score",
            "hired",
            "remote",
            "department",
            "code",
        ],
        ResourceKind::Group => &["displayName", "externalId", "id", "meta.version"],
    };
    (prop::sample::select(paths), any::<bool>())
}

#[derive(Debug, Clone)]
struct Scenario {
    users: Vec<Value>,
    groups: Vec<GroupSpec>,
    user_filters: Vec<String>,
    group_filters: Vec<String>,
    user_sorts: Vec<(&'static str, bool)>,
    group_sort: (&'static str, bool),
    page_size: u64,
}

fn scenario() -> impl Strategy<Value = Scenario> {
    (
        prop::collection::vec(user(), 4..12),
        prop::collection::vec(group(), 1..5),
        (
            prop::collection::vec(nest(user_leaf()), 24),
            prop::collection::vec(narrowable_user_filter(), 12),
        )
            .prop_map(|(mut all, narrowable)| {
                all.extend(narrowable);
                all
            }),
        prop::collection::vec(nest(group_leaf()), 8),
        prop::collection::vec(sort_path(ResourceKind::User), 3),
        sort_path(ResourceKind::Group),
        1u64..5,
    )
        .prop_map(
            |(users, groups, user_filters, group_filters, user_sorts, group_sort, page_size)| {
                Scenario {
                    users,
                    groups,
                    user_filters,
                    group_filters,
                    user_sorts,
                    group_sort,
                    page_size,
                }
            },
        )
}

/// Filters rejected by resolution, matching nothing, matching everything, matching some: the
/// last must dominate for the test to mean anything (checked at the end of each run).
static STATS: [AtomicUsize; 4] = [const { AtomicUsize::new(0) }; 4];
/// Filters the substring index narrowed (on SQLite, where its table names the plan), that
/// matched some resources.
static NARROWED: AtomicUsize = AtomicUsize::new(0);

/// The stored resources of a scenario in one new source.
struct Loaded {
    source: String,
    users: Vec<Resource>,
    groups: Vec<Resource>,
}

async fn load(backend: &SqlBackend, reg: &SchemaRegistry, sc: &Scenario) -> Loaded {
    let source = scimd_testkit::fixtures::source("differential");
    let mut users = Vec::new();
    for (i, body) in sc.users.iter().enumerate() {
        let mut body = body.clone();
        body["userName"] = json!(format!("{}{i}", ["u", "U", "ü", "Ü"][i % 4]));
        let attrs = scimd_core::normalize::prepare(
            reg.resource_type(ResourceKind::User),
            &body,
            scimd_core::normalize::WriteMode::Create,
        )
        .unwrap_or_else(|e| panic!("generated body does not normalize: {e}\n{body:#}"));
        let r = backend
            .create(&source, ResourceKind::User, attrs)
            .await
            .unwrap();
        users.push(r);
    }
    let mut groups: Vec<Resource> = Vec::new();
    for g in &sc.groups {
        let mut members: Vec<Value> = g
            .users
            .iter()
            .filter_map(|i| users.get(*i))
            .map(|u| json!({"value": u.id, "display": format!("M {}", u.id[..4].to_uppercase())}))
            .collect();
        members.extend(
            g.groups
                .iter()
                .filter_map(|i| groups.get(*i))
                .map(|gr| json!({"value": gr.id, "type": "Group"})),
        );
        let body = json!({"schemas": [GROUP], "displayName": g.display, "members": members});
        let attrs = scimd_core::normalize::prepare(
            reg.resource_type(ResourceKind::Group),
            &body,
            scimd_core::normalize::WriteMode::Create,
        )
        .unwrap_or_else(|e| panic!("generated group does not normalize: {e}\n{body:#}"));
        groups.push(
            backend
                .create(&source, ResourceKind::Group, attrs)
                .await
                .unwrap(),
        );
    }
    // Re-read so that every resource carries its final derived relations.
    let mut fresh = Vec::new();
    for u in &users {
        fresh.push(
            backend
                .get(&source, ResourceKind::User, &u.id, Load::ALL)
                .await
                .unwrap(),
        );
    }
    Loaded {
        source,
        users: fresh,
        groups,
    }
}

fn fill_ids(text: &str, loaded: &Loaded) -> String {
    let mut out = text.to_string();
    for (i, u) in loaded.users.iter().enumerate().rev() {
        out = out.replace(&format!("{{u{i}}}"), &u.id);
    }
    for (i, g) in loaded.groups.iter().enumerate().rev() {
        out = out.replace(&format!("{{g{i}}}"), &g.id);
    }
    // Indices past the generated lists stand for ids that exist nowhere.
    for i in 0..12 {
        out = out.replace(&format!("{{u{i}}}"), "no-such-user");
        out = out.replace(&format!("{{g{i}}}"), "no-such-group");
    }
    out
}

fn all_page() -> Page {
    Page::Index {
        start_index: 1,
        count: 10_000,
    }
}

async fn query_ids(
    backend: &SqlBackend,
    source: &str,
    kind: ResourceKind,
    filter: Option<Filter>,
    sort: Option<Sort>,
    page: Page,
) -> (
    Vec<String>,
    Option<CursorPosition>,
    Option<CursorPosition>,
    u64,
) {
    let q = Query {
        filter,
        sort,
        page,
        load: Load::ALL,
    };
    let p = backend
        .query(source, kind, &q)
        .await
        .unwrap_or_else(|e| panic!("query {q:?}: {e}"));
    (
        p.resources.into_iter().map(|r| r.id).collect(),
        p.next,
        p.previous,
        p.total_results,
    )
}

async fn check(
    backend: &SqlBackend,
    reg: &SchemaRegistry,
    sc: &Scenario,
) -> Result<(), TestCaseError> {
    let loaded = load(backend, reg, sc).await;
    let src = loaded.source.as_str();
    // The reference sees exactly what the store holds.
    let stored: Vec<(ResourceKind, Vec<Resource>)> = {
        let mut out = Vec::new();
        for kind in ResourceKind::ALL {
            let q = Query {
                filter: None,
                sort: None,
                page: all_page(),
                load: Load::ALL,
            };
            out.push((kind, backend.query(src, kind, &q).await.unwrap().resources));
        }
        out
    };
    for (kind, texts) in [
        (ResourceKind::User, &sc.user_filters),
        (ResourceKind::Group, &sc.group_filters),
    ] {
        let rt = reg.resource_type(kind);
        let all = &stored.iter().find(|(k, _)| *k == kind).unwrap().1;
        for text in texts {
            let text = fill_ids(text, &loaded);
            let parsed = Filter::parse(&text).unwrap_or_else(|e| panic!("{text}: {e}"));
            let Ok(resolved) = parsed.resolve(rt) else {
                STATS[0].fetch_add(1, Ordering::Relaxed);
                continue;
            };
            let mut want: Vec<String> = all
                .iter()
                .filter(|r| matches(&resolved, rt, r))
                .map(|r| r.id.clone())
                .collect();
            want.sort();
            let bucket = if want.is_empty() {
                1
            } else if want.len() == all.len() {
                2
            } else {
                3
            };
            STATS[bucket].fetch_add(1, Ordering::Relaxed);
            let (sql, _) = translate_filter(Dialect::Sqlite, rt, src, &resolved).unwrap();
            if sql.contains("scimd_search_fts") && bucket == 3 {
                NARROWED.fetch_add(1, Ordering::Relaxed);
            }
            let (mut got, _, _, total) =
                query_ids(backend, src, kind, Some(resolved.clone()), None, all_page()).await;
            got.sort();
            prop_assert_eq!(
                &got,
                &want,
                "filter {} on {:?} ({}): SQL differs from the reference\nresources: {:#}",
                text,
                kind,
                backend.dialect_name(),
                json!(
                    all.iter()
                        .map(|r| json!({"id": r.id, "attrs": r.attrs}))
                        .collect::<Vec<_>>()
                )
            );
            prop_assert_eq!(total, want.len() as u64, "totalResults of {}", text);
        }
    }
    let sorts = sc
        .user_sorts
        .iter()
        .map(|s| (ResourceKind::User, *s))
        .chain(std::iter::once((ResourceKind::Group, sc.group_sort)));
    for (kind, (path, descending)) in sorts {
        let rt = reg.resource_type(kind);
        let all = stored.iter().find(|(k, _)| *k == kind).unwrap().1.clone();
        let sort = scimd_core::paging::parse_sort(
            rt,
            Some(path),
            Some(if descending {
                "descending"
            } else {
                "ascending"
            }),
        )
        .unwrap()
        .unwrap();
        let want: Vec<String> = paginate(rt, all, Some(&sort), &all_page())
            .resources
            .into_iter()
            .map(|r| r.id)
            .collect();
        let (got, ..) = query_ids(backend, src, kind, None, Some(sort.clone()), all_page()).await;
        prop_assert_eq!(&got, &want, "sortBy={} descending={}", path, descending);
        // Cursor pages forward visit the same order; walking back from the end reverses it.
        let mut walked = Vec::new();
        let mut position = None;
        let mut last_page: (Vec<String>, Option<CursorPosition>);
        loop {
            let page = Page::Cursor {
                position: position.clone(),
                count: sc.page_size,
            };
            let (ids, next, previous, _) =
                query_ids(backend, src, kind, None, Some(sort.clone()), page).await;
            prop_assert_eq!(previous.is_some(), !walked.is_empty() && !ids.is_empty());
            walked.extend(ids.iter().cloned());
            last_page = (ids, previous);
            match next {
                Some(n) => position = Some(n),
                None => break,
            }
            prop_assert!(walked.len() <= want.len(), "cursor walk does not end");
        }
        prop_assert_eq!(&walked, &want, "cursor walk, sortBy={}", path);
        let (mut back, mut position) = last_page;
        while let Some(p) = position {
            let page = Page::Cursor {
                position: Some(p),
                count: sc.page_size,
            };
            let (mut ids, _, previous, _) =
                query_ids(backend, src, kind, None, Some(sort.clone()), page).await;
            prop_assert!(!ids.is_empty(), "a previous cursor led to an empty page");
            ids.extend(back);
            back = ids;
            position = previous;
            prop_assert!(back.len() <= want.len(), "backward walk does not end");
        }
        prop_assert_eq!(&back, &want, "backward cursor walk, sortBy={}", path);
    }
    Ok(())
}

fn run(backend: SqlBackend, rt: &tokio::runtime::Runtime) {
    let reg = support::registry();
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(24);
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&scenario(), |sc| rt.block_on(check(&backend, &reg, &sc)))
        .unwrap_or_else(|e| panic!("{} differs from the reference: {e}", backend.dialect_name()));
    let stats: Vec<usize> = STATS.iter().map(|s| s.load(Ordering::Relaxed)).collect();
    let narrowed = NARROWED.load(Ordering::Relaxed);
    eprintln!(
        "filters: {} rejected by resolution, {} matched nothing, {} everything, {} some \
         ({narrowed} of them through the substring index)",
        stats[0], stats[1], stats[2], stats[3]
    );
    assert!(
        narrowed * 20 > stats[3],
        "too few filters through the substring index: {narrowed} of {}",
        stats[3]
    );
    assert!(
        stats[3] * 4 > stats[1] + stats[2],
        "too few discriminating filters: {stats:?}"
    );
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn sqlite_filters_sorts_and_cursors_equal_the_reference() {
    let rt = runtime();
    let backend = rt.block_on(support::sqlite_file());
    run(backend, &rt);
}

#[test]
fn postgres_filters_sorts_and_cursors_equal_the_reference() {
    let rt = runtime();
    let Some(backend) = rt.block_on(support::postgres()) else {
        eprintln!("skipped: no PostgreSQL");
        return;
    };
    run(backend, &rt);
}
