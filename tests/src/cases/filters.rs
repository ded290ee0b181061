//! Filters: every operator per attribute type, multi-valued attributes, value paths, extension
//! attributes, logical operators, presence, and the derived `members`/`groups`.

use crate::fixtures::*;
use scimd_core::resource::{Resource, format_time};
use scimd_core::schema::{ENTERPRISE_USER, ResourceKind, USER};
use scimd_core::{Backend, Load};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::Duration;

/// Six users with distinct attribute shapes, and four groups over them.
pub(crate) struct People {
    pub users: BTreeMap<&'static str, Resource>,
    pub groups: BTreeMap<&'static str, Resource>,
}

impl People {
    pub fn user(&self, key: &str) -> &Resource {
        &self.users[key]
    }
    /// The key of the user with this id.
    fn key_of(&self, id: &str) -> Option<&'static str> {
        self.users
            .iter()
            .chain(self.groups.iter())
            .find(|(_, r)| r.id == id)
            .map(|(k, _)| *k)
    }
}

fn people_bodies() -> Vec<(&'static str, Value)> {
    vec![
        (
            "alice",
            json!({
                "schemas": [USER, ENTERPRISE_USER, CONFORMANCE_EXT],
                "userName": "alice@example.com",
                "externalId": "EXT-Alice",
                "name": {"givenName": "Alice", "familyName": "Smith"},
                "displayName": "Alice Smith",
                "title": "Engineer",
                "active": true,
                "emails": [
                    {"value": "alice@example.com", "type": "work", "primary": true},
                    {"value": "alice@home.example.org", "type": "home"}
                ],
                ENTERPRISE_USER: {"department": "R&D", "manager": {"value": "m-1"}},
                CONFORMANCE_EXT: {
                    "badge": 10, "score": 2.5, "hired": "2020-01-01T00:00:00Z",
                    "remote": true, "code": "AbC", "tags": ["red", "blue"]
                }
            }),
        ),
        (
            "bob",
            json!({
                "schemas": [USER, ENTERPRISE_USER, CONFORMANCE_EXT],
                "userName": "Bob@Example.com",
                "externalId": "ext-bob",
                "displayName": "Bob Jones",
                "active": false,
                "emails": [
                    {"value": "bob@example.org", "type": "work"},
                    {"value": "bob@example.com", "type": "home"}
                ],
                ENTERPRISE_USER: {"department": "Sales"},
                CONFORMANCE_EXT: {
                    "badge": 9, "score": 10.25, "hired": "2021-06-15T12:00:00+02:00",
                    "remote": false, "code": "abc", "tags": ["green"]
                }
            }),
        ),
        (
            "carol",
            json!({
                "schemas": [USER, ENTERPRISE_USER, CONFORMANCE_EXT],
                "userName": "carol@example.net",
                "displayName": "Carol",
                "title": "Manager",
                "active": true,
                "emails": [{"value": "carol@example.com", "type": "other"}],
                ENTERPRISE_USER: {"department": "r&d"},
                CONFORMANCE_EXT: {"badge": 100, "score": 0.5, "hired": "2021-06-15T09:59:59Z", "code": "ABC"}
            }),
        ),
        (
            "dave",
            json!({
                "schemas": [USER, CONFORMANCE_EXT],
                "userName": "dave@example.com",
                "active": false,
                CONFORMANCE_EXT: {"badge": -3}
            }),
        ),
        (
            "erin",
            json!({
                "schemas": [USER],
                "userName": "ÉRIN@example.com",
                "title": "engineer",
                "active": true,
                "emails": [{"value": "erin@EXAMPLE.COM", "type": "work"}]
            }),
        ),
        (
            "frank",
            json!({
                "schemas": [USER],
                "userName": "frank",
                "name": {"givenName": "Frank"},
                "active": true
            }),
        ),
    ]
}

/// Creates [`People`] in `src`: groups `admins` {alice, bob}, `ops` {carol}, `empty` {},
/// `nested` {admins}.
pub(crate) async fn seed_people(backend: &dyn Backend, src: &str) -> People {
    let mut users = BTreeMap::new();
    for (key, body) in people_bodies() {
        users.insert(key, create(backend, src, ResourceKind::User, &body).await);
    }
    let mut groups = BTreeMap::new();
    let admins = create_group(backend, src, "Admins", &[&users["alice"], &users["bob"]]).await;
    let ops = create_group(backend, src, "Ops", &[&users["carol"]]).await;
    let empty = create_group(backend, src, "Empty", &[]).await;
    let nested = create_group(backend, src, "Nested", &[&admins]).await;
    groups.insert("admins", admins);
    groups.insert("ops", ops);
    groups.insert("empty", empty);
    groups.insert("nested", nested);
    People { users, groups }
}

/// Asserts that `filter` on `kind` matches exactly the resources named `expected`, with an
/// exact `totalResults`.
async fn expect(
    backend: &dyn Backend,
    src: &str,
    people: &People,
    kind: ResourceKind,
    filter: &str,
    expected: &[&str],
) {
    let page = find(backend, src, kind, Some(filter)).await;
    let mut got: Vec<&str> = page
        .resources
        .iter()
        .map(|r| people.key_of(&r.id).unwrap_or("<unknown>"))
        .collect();
    got.sort();
    let mut want = expected.to_vec();
    want.sort();
    assert_eq!(got, want, "filter {filter}");
    assert_eq!(
        page.total_results,
        want.len() as u64,
        "totalResults of filter {filter}"
    );
}

async fn groups(
    backend: &dyn Backend,
    src: &str,
    people: &People,
    filter: impl AsRef<str>,
    want: &[&str],
) {
    expect(
        backend,
        src,
        people,
        ResourceKind::Group,
        filter.as_ref(),
        want,
    )
    .await;
}

async fn users(backend: &dyn Backend, src: &str, people: &People, filter: &str, want: &[&str]) {
    expect(backend, src, people, ResourceKind::User, filter, want).await;
}

fn ext(attr: &str) -> String {
    format!("{CONFORMANCE_EXT}:{attr}")
}

fn skip(case: &str, backend: &dyn Backend) -> bool {
    !has(case, "filter", backend.capabilities().filter)
}

/// String comparisons (`eq ne co sw ew gt ge lt le`) ignore case unless the attribute is caseExact.
pub async fn filter_string_operators_respect_case_exactness(backend: &dyn Backend) {
    if skip("filter_strings", backend) {
        return;
    }
    let src = source("filter_strings");
    let p = seed_people(backend, &src).await;
    let b = backend;
    // userName is not caseExact.
    users(
        b,
        &src,
        &p,
        r#"userName eq "ALICE@example.com""#,
        &["alice"],
    )
    .await;
    users(b, &src, &p, r#"userName eq "érin@example.com""#, &["erin"]).await;
    users(
        b,
        &src,
        &p,
        r#"userName ne "alice@EXAMPLE.com""#,
        &["bob", "carol", "dave", "erin", "frank"],
    )
    .await;
    users(
        b,
        &src,
        &p,
        r#"userName co "EXAMPLE""#,
        &["alice", "bob", "carol", "dave", "erin"],
    )
    .await;
    users(b, &src, &p, r#"userName sw "B""#, &["bob"]).await;
    users(
        b,
        &src,
        &p,
        r#"userName ew ".COM""#,
        &["alice", "bob", "dave", "erin"],
    )
    .await;
    users(
        b,
        &src,
        &p,
        r#"userName gt "c""#,
        &["carol", "dave", "erin", "frank"],
    )
    .await;
    users(
        b,
        &src,
        &p,
        r#"userName ge "CAROL@example.net""#,
        &["carol", "dave", "erin", "frank"],
    )
    .await;
    users(b, &src, &p, r#"userName lt "BOB@example.com""#, &["alice"]).await;
    users(
        b,
        &src,
        &p,
        r#"userName le "bob@example.com""#,
        &["alice", "bob"],
    )
    .await;
    users(b, &src, &p, r#"title eq "ENGINEER""#, &["alice", "erin"]).await;
    // externalId and the extension's `code` are caseExact.
    users(b, &src, &p, r#"externalId eq "ext-alice""#, &[]).await;
    users(b, &src, &p, r#"externalId eq "EXT-Alice""#, &["alice"]).await;
    users(b, &src, &p, r#"externalId sw "ext-""#, &["bob"]).await;
    users(b, &src, &p, r#"externalId co "Ali""#, &["alice"]).await;
    users(
        b,
        &src,
        &p,
        &format!(r#"{} eq "abc""#, ext("code")),
        &["bob"],
    )
    .await;
    users(
        b,
        &src,
        &p,
        &format!(r#"{} gt "ABC""#, ext("code")),
        &["alice", "bob"],
    )
    .await;
}

/// dateTime attributes compare as instants, whatever offset the value was written with.
pub async fn filter_date_times_compare_as_instants(backend: &dyn Backend) {
    if skip("filter_datetimes", backend) {
        return;
    }
    let src = source("filter_datetimes");
    let p = seed_people(backend, &src).await;
    let b = backend;
    let hired = ext("hired");
    // bob was hired at 2021-06-15T12:00:00+02:00, i.e. 10:00:00Z.
    users(
        b,
        &src,
        &p,
        &format!(r#"{hired} eq "2021-06-15T10:00:00Z""#),
        &["bob"],
    )
    .await;
    users(
        b,
        &src,
        &p,
        &format!(r#"{hired} gt "2021-06-15T09:59:59Z""#),
        &["bob"],
    )
    .await;
    users(
        b,
        &src,
        &p,
        &format!(r#"{hired} ge "2021-06-15T09:59:59Z""#),
        &["bob", "carol"],
    )
    .await;
    users(
        b,
        &src,
        &p,
        &format!(r#"{hired} le "2021-06-15T10:00:00Z""#),
        &["alice", "bob", "carol"],
    )
    .await;
    users(
        b,
        &src,
        &p,
        &format!(r#"{hired} lt "2021-06-15T11:00:00+01:00""#),
        &["alice", "carol"],
    )
    .await;
}

/// `meta.created` and `meta.lastModified` are filterable as instants.
pub async fn filter_on_meta_timestamps(backend: &dyn Backend) {
    if skip("filter_meta", backend) {
        return;
    }
    let src = source("filter_meta");
    let mut created = Vec::new();
    for i in 0..4 {
        created.push(create_user(backend, &src, &format!("t{i}@example.com")).await);
        // Distinct timestamps even on a store with coarse clocks.
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    let pivot = format_time(created[1].meta.last_modified);
    let ids_of = |rs: &[Resource]| sorted_ids(rs);
    let after = find(
        backend,
        &src,
        ResourceKind::User,
        Some(&format!(r#"meta.lastModified gt "{pivot}""#)),
    )
    .await;
    assert_eq!(sorted_ids(&after.resources), ids_of(&created[2..]));
    let upto = find(
        backend,
        &src,
        ResourceKind::User,
        Some(&format!(r#"meta.created le "{pivot}""#)),
    )
    .await;
    assert_eq!(sorted_ids(&upto.resources), ids_of(&created[..2]));
}

/// Booleans compare by value with `eq` and `ne`.
pub async fn filter_booleans_compare_by_value(backend: &dyn Backend) {
    if skip("filter_booleans", backend) {
        return;
    }
    let src = source("filter_booleans");
    let p = seed_people(backend, &src).await;
    let b = backend;
    users(
        b,
        &src,
        &p,
        "active eq true",
        &["alice", "carol", "erin", "frank"],
    )
    .await;
    users(b, &src, &p, "active eq false", &["bob", "dave"]).await;
    users(
        b,
        &src,
        &p,
        "active ne false",
        &["alice", "carol", "erin", "frank"],
    )
    .await;
    users(
        b,
        &src,
        &p,
        &format!("{} eq true", ext("remote")),
        &["alice"],
    )
    .await;
}

/// Integers and decimals compare numerically, not as text.
pub async fn filter_numbers_compare_numerically(backend: &dyn Backend) {
    if skip("filter_numbers", backend) {
        return;
    }
    let src = source("filter_numbers");
    let p = seed_people(backend, &src).await;
    let b = backend;
    let badge = ext("badge");
    let score = ext("score");
    users(b, &src, &p, &format!("{badge} gt 9"), &["alice", "carol"]).await;
    users(b, &src, &p, &format!("{badge} le 9"), &["bob", "dave"]).await;
    users(b, &src, &p, &format!("{badge} eq 100"), &["carol"]).await;
    users(b, &src, &p, &format!("{badge} lt 0"), &["dave"]).await;
    users(b, &src, &p, &format!("{score} ge 2.5"), &["alice", "bob"]).await;
    users(b, &src, &p, &format!("{score} lt 1"), &["carol"]).await;
    users(b, &src, &p, &format!("{score} eq 10.25"), &["bob"]).await;
}

/// A filter on a multi-valued attribute matches when any one value matches.
pub async fn filter_multi_valued_attributes_match_any_value(backend: &dyn Backend) {
    if skip("filter_multi", backend) {
        return;
    }
    let src = source("filter_multi");
    let p = seed_people(backend, &src).await;
    let b = backend;
    users(
        b,
        &src,
        &p,
        r#"emails.value co "@example.com""#,
        &["alice", "bob", "carol", "erin"],
    )
    .await;
    users(b, &src, &p, r#"emails.type eq "home""#, &["alice", "bob"]).await;
    users(b, &src, &p, r#"emails.value ew ".org""#, &["alice", "bob"]).await;
    users(
        b,
        &src,
        &p,
        &format!(r#"{} eq "blue""#, ext("tags")),
        &["alice"],
    )
    .await;
    users(
        b,
        &src,
        &p,
        &format!(r#"{} co "e""#, ext("tags")),
        &["alice", "bob"],
    )
    .await;
}

/// A value path (`emails[type eq "work" and value co "@example.com"]`) needs one value that satisfies the whole inner filter.
pub async fn filter_value_paths_match_within_one_value(backend: &dyn Backend) {
    if skip("filter_value_paths", backend) {
        return;
    }
    let src = source("filter_value_paths");
    let p = seed_people(backend, &src).await;
    let b = backend;
    users(
        b,
        &src,
        &p,
        r#"emails[type eq "work" and value co "@example.com"]"#,
        &["alice", "erin"],
    )
    .await;
    users(
        b,
        &src,
        &p,
        r#"emails[type eq "home" and value ew ".org"]"#,
        &["alice"],
    )
    .await;
    users(
        b,
        &src,
        &p,
        r#"emails[not (type eq "work")]"#,
        &["alice", "bob", "carol"],
    )
    .await;
    users(
        b,
        &src,
        &p,
        r#"emails[type eq "work" or type eq "other"] and active eq true"#,
        &["alice", "carol", "erin"],
    )
    .await;
    users(b, &src, &p, r#"emails[primary eq true]"#, &["alice"]).await;
}

/// Extension attributes filter by URN-qualified path, including sub-attributes, and by an unambiguous plain name.
pub async fn filter_extension_attributes(backend: &dyn Backend) {
    if skip("filter_extensions", backend) {
        return;
    }
    let src = source("filter_extensions");
    let p = seed_people(backend, &src).await;
    let b = backend;
    users(
        b,
        &src,
        &p,
        &format!(r#"{ENTERPRISE_USER}:department eq "R&D""#),
        &["alice", "carol"],
    )
    .await;
    users(
        b,
        &src,
        &p,
        &format!(r#"{ENTERPRISE_USER}:manager.value eq "m-1""#),
        &["alice"],
    )
    .await;
    users(b, &src, &p, r#"department eq "sales""#, &["bob"]).await;
    users(
        b,
        &src,
        &p,
        &format!("{ENTERPRISE_USER}:department pr"),
        &["alice", "bob", "carol"],
    )
    .await;
    users(
        b,
        &src,
        &p,
        &format!("not ({ENTERPRISE_USER}:department pr)"),
        &["dave", "erin", "frank"],
    )
    .await;
}

/// `not`, `and` and `or` combine with `and` binding tighter than `or`, and parentheses group.
pub async fn filter_logical_operators_follow_precedence(backend: &dyn Backend) {
    if skip("filter_logic", backend) {
        return;
    }
    let src = source("filter_logic");
    let p = seed_people(backend, &src).await;
    let b = backend;
    users(
        b,
        &src,
        &p,
        r#"title eq "engineer" or active eq false and not (emails pr)"#,
        &["alice", "dave", "erin"],
    )
    .await;
    users(
        b,
        &src,
        &p,
        r#"(title eq "engineer" or active eq false) and not (emails pr)"#,
        &["dave"],
    )
    .await;
    users(b, &src, &p, "not (active eq true)", &["bob", "dave"]).await;
    users(
        b,
        &src,
        &p,
        r#"userName sw "a" or userName sw "b" or userName sw "c""#,
        &["alice", "bob", "carol"],
    )
    .await;
    users(
        b,
        &src,
        &p,
        r#"active eq true and title pr and emails.type eq "work""#,
        &["alice", "erin"],
    )
    .await;
    users(
        b,
        &src,
        &p,
        r#"not (not (userName eq "frank"))"#,
        &["frank"],
    )
    .await;
}

/// `pr` matches attributes with a non-empty value, including complex and multi-valued ones.
pub async fn filter_present_matches_attributes_with_values(backend: &dyn Backend) {
    if skip("filter_present", backend) {
        return;
    }
    let src = source("filter_present");
    let p = seed_people(backend, &src).await;
    let b = backend;
    users(b, &src, &p, "title pr", &["alice", "carol", "erin"]).await;
    users(b, &src, &p, "name.givenName pr", &["alice", "frank"]).await;
    users(b, &src, &p, "name pr", &["alice", "frank"]).await;
    users(b, &src, &p, "displayName pr", &["alice", "bob", "carol"]).await;
    users(b, &src, &p, "emails pr", &["alice", "bob", "carol", "erin"]).await;
    users(b, &src, &p, "not (title pr)", &["bob", "dave", "frank"]).await;
    users(b, &src, &p, "externalId pr", &["alice", "bob"]).await;
}

/// `id` and `externalId` are filterable; `id` compares exactly.
pub async fn filter_by_id_and_external_id(backend: &dyn Backend) {
    if skip("filter_ids", backend) {
        return;
    }
    let src = source("filter_ids");
    let p = seed_people(backend, &src).await;
    let b = backend;
    let alice = p.user("alice").id.clone();
    let bob = p.user("bob").id.clone();
    users(b, &src, &p, &format!(r#"id eq "{alice}""#), &["alice"]).await;
    users(
        b,
        &src,
        &p,
        &format!(r#"id eq "{alice}" or id eq "{bob}""#),
        &["alice", "bob"],
    )
    .await;
    users(
        b,
        &src,
        &p,
        &format!(r#"id ne "{alice}" and active eq false"#),
        &["bob", "dave"],
    )
    .await;
    users(
        b,
        &src,
        &p,
        r#"id eq "2819c223-7f76-453a-919d-413861904646""#,
        &[],
    )
    .await;
    users(
        b,
        &src,
        &p,
        r#"externalId eq "ext-bob" and userName eq "bob@example.com""#,
        &["bob"],
    )
    .await;
    users(b, &src, &p, r#"userName eq "nobody@example.com""#, &[]).await;
}

/// Groups filter by displayName and by their members, including `members[value eq …]` and `members pr`.
pub async fn filter_groups_by_members(backend: &dyn Backend) {
    if skip("filter_groups", backend) {
        return;
    }
    let src = source("filter_groups");
    let p = seed_people(backend, &src).await;
    let b = backend;
    let alice = p.user("alice").id.clone();
    let bob = p.user("bob").id.clone();
    let carol = p.user("carol").id.clone();
    let admins = p.groups["admins"].id.clone();
    groups(b, &src, &p, r#"displayName eq "admins""#, &["admins"]).await;
    groups(
        b,
        &src,
        &p,
        format!(r#"members[value eq "{alice}"]"#),
        &["admins"],
    )
    .await;
    groups(
        b,
        &src,
        &p,
        format!(r#"members.value eq "{carol}""#),
        &["ops"],
    )
    .await;
    groups(
        b,
        &src,
        &p,
        format!(r#"members.value eq "{admins}""#),
        &["nested"],
    )
    .await;
    groups(b, &src, &p, "members pr", &["admins", "nested", "ops"]).await;
    groups(b, &src, &p, "not (members pr)", &["empty"]).await;
    groups(b, &src, &p, r#"members[type eq "Group"]"#, &["nested"]).await;
    groups(
        b,
        &src,
        &p,
        format!(r#"displayName sw "A" and members[value eq "{bob}"]"#),
        &["admins"],
    )
    .await;
    groups(
        b,
        &src,
        &p,
        format!(r#"members[value eq "{alice}"] or members[value eq "{carol}"]"#),
        &["admins", "ops"],
    )
    .await;
}

/// Users filter by their derived `groups` (value, display).
pub async fn filter_users_by_derived_groups(backend: &dyn Backend) {
    if skip("filter_user_groups", backend) {
        return;
    }
    let src = source("filter_user_groups");
    let p = seed_people(backend, &src).await;
    let b = backend;
    let admins = p.groups["admins"].id.clone();
    users(
        b,
        &src,
        &p,
        &format!(r#"groups.value eq "{admins}""#),
        &["alice", "bob"],
    )
    .await;
    users(
        b,
        &src,
        &p,
        &format!(r#"groups[value eq "{admins}"]"#),
        &["alice", "bob"],
    )
    .await;
    users(b, &src, &p, r#"groups.display eq "ops""#, &["carol"]).await;
    users(b, &src, &p, "groups pr", &["alice", "bob", "carol"]).await;
    users(
        b,
        &src,
        &p,
        r#"groups[display co "min"]"#,
        &["alice", "bob"],
    )
    .await;
    users(b, &src, &p, "not (groups pr)", &["dave", "erin", "frank"]).await;
}

/// Every user of a source can be read back with one unfiltered query (for the reference
/// comparisons), with relations.
pub(crate) async fn corpus(backend: &dyn Backend, src: &str, kind: ResourceKind) -> Vec<Resource> {
    let mut all = Vec::new();
    for r in find(backend, src, kind, None).await.resources {
        all.push(
            backend
                .get(src, kind, &r.id, Load::ALL)
                .await
                .unwrap_or_else(|e| panic!("get {} failed: {e}", r.id)),
        );
    }
    all
}
