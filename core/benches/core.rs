//! Micro-benchmarks of the protocol core on realistic input: filter parse / resolve / evaluate,
//! PATCH parse + apply (including the cost of applying a member add to a 100,000-member group
//! as a whole resource, against splitting it into a membership delta), projection and
//! normalization of a user as an identity provider sends it.
//!
//! Run with `cargo bench -p scimd-core --bench core` (add a name filter after `--`).

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use scimd_core::filter::{Filter, matches};
use scimd_core::normalize::{WriteMode, prepare};
use scimd_core::patch::PatchRequest;
use scimd_core::projection::Projection;
use scimd_core::resource::{Meta, Resource, Version, now};
use scimd_core::schema::{ENTERPRISE_USER, GROUP, ResourceKind, SchemaRegistry, USER};
use serde_json::{Value, json};
use std::hint::black_box;
use std::sync::Arc;

const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
/// Members of the big group benchmark.
const BIG_GROUP: usize = 100_000;

/// A user as Entra ID or Okta POSTs it.
fn user_body() -> Value {
    json!({
        "schemas": [USER, ENTERPRISE_USER],
        "externalId": "5f3c1a2e-9b7d-4e21-8c3a-1f2e3d4c5b6a",
        "userName": "anna.jensen.42@contoso.example.com",
        "name": {"formatted": "Anna Jensen", "familyName": "Jensen", "givenName": "Anna"},
        "displayName": "Anna Jensen",
        "title": "Software Engineer",
        "preferredLanguage": "en-US",
        "active": true,
        "emails": [
            {"value": "anna.jensen.42@contoso.example.com", "type": "work", "primary": true},
            {"value": "anna@home.example.org", "type": "home"}
        ],
        "phoneNumbers": [{"value": "+1 555 0100042", "type": "work"}],
        "addresses": [{"type": "work", "locality": "Berlin", "country": "DE", "primary": true}],
        ENTERPRISE_USER: {
            "employeeNumber": "42",
            "department": "Engineering",
            "costCenter": "CC-0042",
            "organization": "Example Corp"
        }
    })
}

fn resource(kind: ResourceKind, id: &str, attrs: serde_json::Map<String, Value>) -> Resource {
    let t = now();
    Resource {
        id: id.into(),
        kind,
        meta: Meta {
            created: t,
            last_modified: t,
            version: Version(7),
        },
        attrs,
    }
}

fn user(reg: &SchemaRegistry) -> Resource {
    let attrs = prepare(
        reg.resource_type(ResourceKind::User),
        &user_body(),
        WriteMode::Create,
    )
    .expect("the benchmark user is valid");
    resource(
        ResourceKind::User,
        "2819c223-7f76-453a-919d-413861904646",
        attrs,
    )
}

fn member_id(i: usize) -> String {
    format!("00000000-0000-4000-8000-{i:012}")
}

fn big_group(reg: &SchemaRegistry, members: usize) -> Resource {
    let members: Vec<Value> = (0..members)
        .map(|i| json!({"value": member_id(i), "type": "User"}))
        .collect();
    let body = json!({
        "schemas": [GROUP],
        "displayName": "All employees",
        "members": members,
    });
    let attrs = prepare(
        reg.resource_type(ResourceKind::Group),
        &body,
        WriteMode::Create,
    )
    .expect("the benchmark group is valid");
    resource(
        ResourceKind::Group,
        "e9e30dba-f08f-4109-8486-d5c6a331660a",
        attrs,
    )
}

const SIMPLE_FILTER: &str = r#"userName eq "anna.jensen.42@contoso.example.com""#;
const COMPLEX_FILTER: &str = concat!(
    r#"emails[type eq "work" and value co "@contoso.example.com"] and "#,
    r#"(title sw "Software" or urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department eq "Engineering") and "#,
    r#"meta.lastModified gt "2020-01-01T00:00:00Z" and not (active eq false)"#
);

fn filters(c: &mut Criterion) {
    let reg = SchemaRegistry::new();
    let rt = reg.resource_type(ResourceKind::User);
    let u = user(&reg);
    let mut g = c.benchmark_group("filter");
    for (name, text) in [("simple", SIMPLE_FILTER), ("complex", COMPLEX_FILTER)] {
        let parsed = Filter::parse(text).expect("the benchmark filter parses");
        let resolved = parsed.resolve(rt).expect("the benchmark filter resolves");
        assert!(matches(&resolved, rt, &u), "{name} matches the user");
        g.bench_function(format!("parse/{name}"), |b| {
            b.iter(|| Filter::parse(black_box(text)))
        });
        g.bench_function(format!("resolve/{name}"), |b| {
            b.iter(|| black_box(&parsed).resolve(rt))
        });
        g.bench_function(format!("evaluate/{name}"), |b| {
            b.iter(|| matches(black_box(&resolved), rt, black_box(&u)))
        });
        g.bench_function(format!("parse+resolve+evaluate/{name}"), |b| {
            b.iter(|| {
                let f = Filter::parse(black_box(text)).and_then(|f| f.resolve(rt));
                f.map(|f| matches(&f, rt, &u))
            })
        });
    }
    g.finish();
}

fn patches(c: &mut Criterion) {
    let reg = Arc::new(SchemaRegistry::new());
    let u = user(&reg);
    let mut g = c.benchmark_group("patch");

    let replace_title = json!({
        "schemas": [PATCH_OP],
        "Operations": [{"op": "replace", "path": "title", "value": "Staff Engineer"}]
    });
    g.bench_function("user/replace-title/parse+apply", |b| {
        b.iter(|| {
            let p = PatchRequest::parse(black_box(&replace_title), reg.clone(), ResourceKind::User)
                .expect("the benchmark patch parses");
            p.apply(black_box(&u))
        })
    });

    // Entra ID's one-member PATCH: applied to the whole resource, its cost grows with the
    // group; split into a membership delta (what a relation-backed store applies), it does not.
    let add_member = json!({
        "schemas": [PATCH_OP],
        "Operations": [{"op": "add", "path": "members",
                        "value": [{"value": member_id(BIG_GROUP + 1), "type": "User"}]}]
    });
    let group = big_group(&reg, BIG_GROUP);
    let parsed = PatchRequest::parse(&add_member, reg.clone(), ResourceKind::Group)
        .expect("the member patch parses");
    let outcome = parsed.apply(&group).expect("the member add applies");
    assert!(outcome.changed);
    assert_eq!(
        outcome.attrs["members"].as_array().map(Vec::len),
        Some(BIG_GROUP + 1)
    );
    g.bench_function("group-100k/add-member/parse+apply", |b| {
        b.iter(|| {
            let p = PatchRequest::parse(black_box(&add_member), reg.clone(), ResourceKind::Group)
                .expect("the member patch parses");
            p.apply(black_box(&group))
        })
    });
    g.bench_function("group-100k/add-member/parse+delta", |b| {
        b.iter(|| {
            let p = PatchRequest::parse(black_box(&add_member), reg.clone(), ResourceKind::Group)
                .expect("the member patch parses");
            p.membership_delta()
        })
    });
    // What the whole-resource path costs besides the patch itself: copying the group.
    g.bench_function("group-100k/clone", |b| b.iter(|| black_box(&group).clone()));
    g.finish();
}

fn projections(c: &mut Criterion) {
    let reg = SchemaRegistry::new();
    let rt = reg.resource_type(ResourceKind::User);
    let full = user(&reg).to_json(&reg, "https://scim.example.com/scim/default/v2");
    let mut g = c.benchmark_group("projection");
    for (name, attrs, excluded) in [
        ("default", None, None),
        (
            "attributes",
            Some("userName,emails.value,name.givenName,active"),
            None,
        ),
        ("excluded", None, Some("emails,phoneNumbers,addresses")),
    ] {
        g.bench_function(format!("user/{name}/parse+apply"), |b| {
            b.iter_batched(
                || full.clone(),
                |json| {
                    Projection::parse(rt, attrs, excluded)
                        .expect("the benchmark projection parses")
                        .apply(rt, json)
                },
                BatchSize::SmallInput,
            )
        });
    }
    g.finish();
}

fn normalization(c: &mut Criterion) {
    let reg = SchemaRegistry::new();
    let rt = reg.resource_type(ResourceKind::User);
    let body = user_body();
    let old = user(&reg);
    let mut g = c.benchmark_group("normalize");
    g.bench_function("user/prepare-create", |b| {
        b.iter(|| prepare(rt, black_box(&body), WriteMode::Create))
    });
    g.bench_function("user/prepare-replace", |b| {
        b.iter(|| prepare(rt, black_box(&body), WriteMode::Replace(&old)))
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = filters, patches, projections, normalization
}
criterion_main!(benches);
