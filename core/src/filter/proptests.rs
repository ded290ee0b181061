//! Property tests of the parser, printer, resolver and evaluator together.

use super::fixtures::{ACME, registry, resource, users};
use super::{CompValue, CompareOp, Filter, MAX_FILTER_LEN, matches};
use crate::path::AttrPath;
use crate::resource::Resource;
use crate::schema::{ENTERPRISE_USER, ResourceKind};
use proptest::prelude::*;
use proptest::sample::select;
use serde_json::{Map, Value, json};
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------------------------
// Arbitrary (syntactic) filters

fn arb_name() -> impl Strategy<Value = String> {
    prop_oneof![
        select(vec![
            "userName", "emails", "type", "value", "not", "and", "or", "pr", "eq", "true", "null",
            "$ref", "a-b_c9", "X",
        ])
        .prop_map(str::to_string),
        "[a-zA-Z][a-zA-Z0-9_-]{0,10}",
    ]
}

fn arb_urn() -> impl Strategy<Value = String> {
    prop_oneof![
        select(vec![
            crate::schema::USER,
            ENTERPRISE_USER,
            ACME,
            "URN:IETF:params:scim:schemas:core:2.0:Group",
        ])
        .prop_map(str::to_string),
        "urn:[a-z]{1,6}(:[a-zA-Z0-9.%-]{1,6}){0,4}",
    ]
}

fn arb_path() -> impl Strategy<Value = AttrPath> {
    (
        prop::option::weighted(0.2, arb_urn()),
        arb_name(),
        prop::option::weighted(0.3, arb_name()),
    )
        .prop_map(|(urn, name, sub)| AttrPath { urn, name, sub })
}

fn arb_attr_path() -> impl Strategy<Value = AttrPath> {
    (prop::option::weighted(0.2, arb_urn()), arb_name()).prop_map(|(urn, name)| AttrPath {
        urn,
        name,
        sub: None,
    })
}

fn arb_value() -> impl Strategy<Value = CompValue> {
    prop_oneof![
        any::<String>().prop_map(CompValue::Str),
        "[\"\\\\/\u{0}-\u{1f}\u{7f}a-zA-Z é€😀\u{2028}]{0,12}".prop_map(CompValue::Str),
        any::<i64>().prop_map(|n| CompValue::Num(n.into())),
        any::<u64>().prop_map(|n| CompValue::Num(n.into())),
        any::<f64>()
            .prop_filter_map("finite", serde_json::Number::from_f64)
            .prop_map(CompValue::Num),
        any::<bool>().prop_map(CompValue::Bool),
        Just(CompValue::Null),
    ]
}

fn arb_comparison(path: BoxedStrategy<AttrPath>) -> BoxedStrategy<Filter> {
    prop_oneof![
        path.clone().prop_map(Filter::Present),
        (path, select(CompareOp::ALL.to_vec()), arb_value())
            .prop_map(|(path, op, value)| Filter::Compare { path, op, value }),
    ]
    .boxed()
}

fn with_logic(leaf: BoxedStrategy<Filter>, depth: u32) -> BoxedStrategy<Filter> {
    leaf.prop_recursive(depth, 24, 2, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| Filter::And(Box::new(a), Box::new(b))),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| Filter::Or(Box::new(a), Box::new(b))),
            inner.prop_map(|a| Filter::Not(Box::new(a))),
        ]
    })
    .boxed()
}

/// Any filter the grammar can express: value filters only at the outer level, on paths
/// without sub-attribute.
fn arb_filter() -> BoxedStrategy<Filter> {
    let inner = with_logic(arb_comparison(arb_path().boxed()), 3);
    let value_path = (arb_attr_path(), inner).prop_map(|(path, filter)| Filter::ValuePath {
        path,
        filter: Box::new(filter),
    });
    let leaf = prop_oneof![3 => arb_comparison(arb_path().boxed()), 1 => value_path].boxed();
    with_logic(leaf, 4)
}

/// Strings made of filter fragments (whole expressions, connectives, brackets and a few
/// breakers), which reach far deeper into the parser than random text.
fn arb_token_soup() -> impl Strategy<Value = String> {
    let fragments = vec![
        "userName eq \"bjensen\"",
        "title pr",
        "emails[type eq \"work\"]",
        "emails[",
        "name.givenName sw \"\\ud83d\\ude00\"",
        "urn:ietf:params:scim:schemas:core:2.0:User:userName co \"J\"",
        "x ge -1.5e3",
        "a eq TRUE",
        "b ne null",
        " and ",
        " AND ",
        " or ",
        "not (",
        "not(",
        "(",
        ")",
        "]",
        "[",
        " ",
        "\"",
        "\\",
        "\\u",
        "pr",
        "eq",
        "0.",
        "é",
    ];
    prop::collection::vec(select(fragments), 0..40).prop_map(|t| t.concat())
}

fn parse_quickly(text: &str) -> Result<Filter, crate::error::ScimError> {
    let started = Instant::now();
    let r = Filter::parse(text);
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "parsing {} bytes took {:?}",
        text.len(),
        started.elapsed()
    );
    r
}

/// Whatever parses prints canonically, and the canonical text parses to the same tree.
fn assert_canonical(f: &Filter) -> Result<(), TestCaseError> {
    let printed = f.to_string();
    let reparsed = Filter::parse(&printed)
        .map_err(|e| TestCaseError::fail(format!("{printed:?} does not parse: {e}")))?;
    prop_assert_eq!(&reparsed, f, "printed as {:?}", printed);
    prop_assert_eq!(reparsed.to_string(), printed);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_text_never_panics_and_returns_quickly(text in ".{0,300}") {
        if let Ok(f) = parse_quickly(&text) {
            assert_canonical(&f)?;
        }
    }

    #[test]
    fn token_soup_never_panics_and_what_parses_is_canonical(text in arb_token_soup()) {
        if let Ok(f) = parse_quickly(&text) {
            assert_canonical(&f)?;
        }
    }

    #[test]
    fn generated_trees_round_trip_through_the_printer(f in arb_filter()) {
        let printed = f.to_string();
        prop_assume!(printed.len() <= MAX_FILTER_LEN);
        assert_canonical(&f)?;
    }

    #[test]
    fn damaged_canonical_text_never_panics(f in arb_filter(), cut in any::<prop::sample::Index>(),
                                          insert in select(vec!["(", ")", "[", "]", "\"", "\\", " not ", "", " and "])) {
        let printed = f.to_string();
        let mut at = cut.index(printed.len() + 1);
        while !printed.is_char_boundary(at) {
            at -= 1;
        }
        let damaged = format!("{}{insert}{}", &printed[..at], &printed[at..]);
        if let Ok(g) = parse_quickly(&damaged) {
            assert_canonical(&g)?;
        }
        let truncated = &printed[..at];
        if let Ok(g) = parse_quickly(truncated) {
            assert_canonical(&g)?;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Schema-aware filters and users, for the evaluator

/// Upper-cases a random subset of the path's letters: resolution and evaluation ignore case.
fn recase(path: &str, mask: u64) -> String {
    path.chars()
        .enumerate()
        .map(|(i, c)| {
            if mask >> (i % 64) & 1 == 1 {
                c.to_ascii_uppercase()
            } else {
                c
            }
        })
        .collect()
}

fn path_of(text: String, mask: u64) -> AttrPath {
    // Only the attribute names are re-cased; the generated texts are valid paths.
    AttrPath::parse(&recase(&text, mask)).unwrap_or_else(|_| AttrPath::new("userName"))
}

const TIMES: [&str; 5] = [
    "2010-01-23T04:56:22Z",
    "2010-01-24T04:56:22Z",
    "2015-06-01T09:00:00+02:00",
    "2020-02-29T12:00:00.5Z",
    "2030-01-01T00:00:00Z",
];

fn string_pool() -> impl Strategy<Value = CompValue> {
    prop_oneof![
        select(vec![
            "bjensen",
            "BJENSEN",
            "Émile",
            "émile",
            "",
            "work",
            "home",
            "WORK",
            "@example.com",
            "b",
            "z",
            "701984",
            "mgr-1",
            "W/\"1\"",
            "User",
            "Onboarding",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User",
        ])
        .prop_map(|s| CompValue::Str(s.to_string())),
        Just(CompValue::Null),
    ]
}

fn int_pool() -> impl Strategy<Value = CompValue> {
    prop_oneof![
        (-3i64..4).prop_map(|n| CompValue::Num(n.into())),
        Just(CompValue::Null)
    ]
}

fn decimal_pool() -> impl Strategy<Value = CompValue> {
    prop_oneof![
        select(vec![-0.5, 0.0, 1.5, 2.0, 1e3])
            .prop_filter_map("finite", serde_json::Number::from_f64)
            .prop_map(CompValue::Num),
        (-2i64..3).prop_map(|n| CompValue::Num(n.into())),
    ]
}

fn time_pool() -> impl Strategy<Value = CompValue> {
    prop_oneof![
        select(TIMES.to_vec()).prop_map(|s| CompValue::Str(s.to_string())),
        Just(CompValue::Null)
    ]
}

fn bool_pool() -> impl Strategy<Value = CompValue> {
    prop_oneof![
        any::<bool>().prop_map(CompValue::Bool),
        Just(CompValue::Null)
    ]
}

fn typed_comparison(
    paths: Vec<&'static str>,
    ops: Vec<CompareOp>,
    values: BoxedStrategy<CompValue>,
) -> BoxedStrategy<Filter> {
    (select(paths), any::<u64>(), select(ops), values)
        .prop_map(|(p, mask, op, value)| {
            let op = if value == CompValue::Null && !matches!(op, CompareOp::Eq | CompareOp::Ne) {
                CompareOp::Eq
            } else {
                op
            };
            Filter::Compare {
                path: path_of(p.to_string(), mask),
                op,
                value,
            }
        })
        .boxed()
}

/// Type-correct comparisons on User attributes, with names in random case.
fn user_leaf() -> BoxedStrategy<Filter> {
    use CompareOp::*;
    let ordering = vec![Eq, Ne, Gt, Ge, Lt, Le];
    let strings = typed_comparison(
        vec![
            "userName",
            "displayName",
            "title",
            "emails",
            "emails.value",
            "emails.type",
            "id",
            "externalId",
            "meta.version",
            "meta.resourceType",
            "schemas",
            "name.givenName",
            "employeeNumber",
            "manager",
            "tags",
            "homePage",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value",
        ],
        CompareOp::ALL.to_vec(),
        string_pool().boxed(),
    );
    let times = typed_comparison(
        vec!["meta.created", "meta.lastModified", "hired"],
        ordering.clone(),
        time_pool().boxed(),
    );
    let ints = typed_comparison(vec!["badgeNumber"], ordering.clone(), int_pool().boxed());
    let decimals = typed_comparison(vec!["salary"], ordering, decimal_pool().boxed());
    let bools = typed_comparison(
        vec!["active", "emails.primary", "contractor"],
        vec![Eq, Ne],
        bool_pool().boxed(),
    );
    let present = (
        select(vec![
            "userName",
            "title",
            "name",
            "emails",
            "emails.type",
            "meta",
            "meta.location",
            "manager",
            "tags",
            "active",
            "salary",
            "id",
        ]),
        any::<u64>(),
    )
        .prop_map(|(p, mask)| Filter::Present(path_of(p.to_string(), mask)));
    let inner = with_logic(
        prop_oneof![
            typed_comparison(
                vec!["type", "value", "display"],
                CompareOp::ALL.to_vec(),
                string_pool().boxed()
            ),
            typed_comparison(vec!["primary"], vec![Eq, Ne], bool_pool().boxed()),
            select(vec!["type", "value", "primary"])
                .prop_map(|p| Filter::Present(AttrPath::new(p))),
        ]
        .boxed(),
        2,
    );
    let value_path = (any::<u64>(), inner).prop_map(|(mask, f)| Filter::ValuePath {
        path: path_of("emails".to_string(), mask),
        filter: Box::new(f),
    });
    prop_oneof![
        3 => strings,
        1 => times,
        1 => ints,
        1 => decimals,
        1 => bools,
        1 => present,
        1 => value_path,
    ]
    .boxed()
}

fn user_filter() -> BoxedStrategy<Filter> {
    with_logic(user_leaf(), 4)
}

fn arb_email() -> impl Strategy<Value = Value> {
    (
        select(vec![
            "bjensen@example.com",
            "BABS@jensen.org",
            "",
            "émile@example.com",
        ]),
        prop::option::of(select(vec!["work", "home", "WORK"])),
        prop::option::of(any::<bool>()),
    )
        .prop_map(|(value, ty, primary)| {
            let mut m = Map::new();
            m.insert("value".into(), json!(value));
            if let Some(t) = ty {
                m.insert("type".into(), json!(t));
            }
            if let Some(p) = primary {
                m.insert("primary".into(), json!(p));
            }
            Value::Object(m)
        })
}

fn maybe(v: Option<Value>, key: &str, m: &mut Map<String, Value>) {
    if let Some(v) = v {
        m.insert(key.to_string(), v);
    }
}

fn arb_user() -> impl Strategy<Value = Resource> {
    let core = (
        select(vec!["bjensen", "BJensen", "émile", "Zoë"]),
        prop::option::of(select(vec!["Babs", "", "ÉMILE"]).prop_map(|s| json!(s))),
        prop::option::of(select(vec!["Tour Guide", ""]).prop_map(|s| json!(s))),
        prop::option::of(any::<bool>().prop_map(|b| json!(b))),
        prop::collection::vec(arb_email(), 0..3),
        prop::option::of(select(vec!["ext-1", "EXT-1"]).prop_map(|s| json!(s))),
    );
    let extensions = (
        prop::option::of((
            select(vec!["701984", "1"]),
            prop::option::of(select(vec!["mgr-1", "MGR-1"])),
        )),
        prop::option::of((
            prop::option::of(-3i64..4),
            prop::option::of(select(vec![-0.5, 1.5, 2.0, 1000.0])),
            prop::option::of(select(TIMES.to_vec())),
            prop::collection::vec(select(vec!["Onboarding", "zoë", ""]), 0..3),
            prop::option::of(select(vec![
                "https://Example.com/b",
                "https://example.com/b",
            ])),
        )),
    );
    (core, extensions, select(TIMES.to_vec()), 1u64..4).prop_map(
        |((user_name, display, title, active, emails, external), (ent, acme), created, v)| {
            let mut m = Map::new();
            m.insert("userName".into(), json!(user_name));
            maybe(display, "displayName", &mut m);
            maybe(title, "title", &mut m);
            maybe(active, "active", &mut m);
            maybe(external, "externalId", &mut m);
            if !emails.is_empty() {
                m.insert("emails".into(), Value::Array(emails));
            }
            if let Some((number, manager)) = ent {
                let mut e = Map::new();
                e.insert("employeeNumber".into(), json!(number));
                if let Some(mgr) = manager {
                    e.insert("manager".into(), json!({ "value": mgr }));
                }
                m.insert(ENTERPRISE_USER.into(), Value::Object(e));
            }
            if let Some((badge, salary, hired, tags, home)) = acme {
                let mut a = Map::new();
                maybe(badge.map(|b| json!(b)), "badgeNumber", &mut a);
                maybe(salary.map(|s| json!(s)), "salary", &mut a);
                maybe(hired.map(|h| json!(h)), "hired", &mut a);
                maybe(home.map(|h| json!(h)), "homePage", &mut a);
                if !tags.is_empty() {
                    a.insert("tags".into(), json!(tags));
                }
                m.insert(ACME.into(), Value::Object(a));
            }
            resource(ResourceKind::User, "u-1", created, v, Value::Object(m))
        },
    )
}

/// Rewrites `ne` into `not (eq)`, `eq null` into `not (pr)` and `ne null` into `pr`.
fn desugar(f: &Filter) -> Filter {
    match f {
        Filter::Compare { path, op, value } => match (op, value) {
            (CompareOp::Eq, CompValue::Null) => {
                Filter::Not(Box::new(Filter::Present(path.clone())))
            }
            (CompareOp::Ne, CompValue::Null) => Filter::Present(path.clone()),
            (CompareOp::Ne, v) => Filter::Not(Box::new(Filter::Compare {
                path: path.clone(),
                op: CompareOp::Eq,
                value: v.clone(),
            })),
            _ => f.clone(),
        },
        Filter::Present(_) => f.clone(),
        Filter::And(a, b) => Filter::And(Box::new(desugar(a)), Box::new(desugar(b))),
        Filter::Or(a, b) => Filter::Or(Box::new(desugar(a)), Box::new(desugar(b))),
        Filter::Not(a) => Filter::Not(Box::new(desugar(a))),
        Filter::ValuePath { path, filter } => Filter::ValuePath {
            path: path.clone(),
            filter: Box::new(desugar(filter)),
        },
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(384))]

    #[test]
    fn not_is_the_complement_and_ne_is_not_eq(f in user_filter(), user in arb_user()) {
        let reg = registry();
        let rt = users(&reg);
        let resolved = f.resolve(rt).map_err(|e| TestCaseError::fail(format!("{f}: {e}")))?;
        let m = matches(&resolved, rt, &user);
        prop_assert_eq!(matches(&Filter::Not(Box::new(resolved.clone())), rt, &user), !m);
        prop_assert_eq!(matches(&desugar(&resolved), rt, &user), m, "desugared {}", desugar(&resolved));
        // Evaluating the unresolved filter (any case, complex paths) gives the same answer.
        prop_assert_eq!(matches(&f, rt, &user), m, "unresolved {}", f);
    }

    #[test]
    fn resolution_is_idempotent_and_prints_canonically(f in user_filter()) {
        let reg = registry();
        let rt = users(&reg);
        let resolved = f.resolve(rt).map_err(|e| TestCaseError::fail(format!("{f}: {e}")))?;
        let again = resolved.resolve(rt).ok();
        prop_assert_eq!(again.as_ref(), Some(&resolved));
        assert_canonical(&resolved)?;
    }
}
