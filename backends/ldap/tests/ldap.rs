//! Rules specific to the LDAP backend, against a real slapd: renames, escaping, the
//! differential filter test over every attribute the `openldap` preset maps, directory
//! outages, concurrent membership changes and directory-derived versions.

mod common;

use common::{SUFFIX, Slapd};
use scimd_backend_ldap::LdapBackend;
use scimd_core::filter::{Filter, matches};
use scimd_core::query::{Load, Page, Query};
use scimd_core::resource::Resource;
use scimd_core::schema::{ENTERPRISE_USER, GROUP, ResourceKind, USER};
use scimd_core::{Backend, BackendError, ScimError};
use scimd_testkit::fixtures::{attrs, patch, registry, replace_attrs};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

fn backend(s: &Slapd, lossless: bool) -> LdapBackend {
    LdapBackend::new(&s.config(lossless), registry()).expect("backend config")
}

async fn create(b: &dyn Backend, src: &str, kind: ResourceKind, body: Value) -> Resource {
    b.create(src, kind, attrs(kind, &body))
        .await
        .unwrap_or_else(|e| panic!("create failed: {e}\n{body:#}"))
}

async fn user(b: &dyn Backend, src: &str, name: &str) -> Resource {
    create(
        b,
        src,
        ResourceKind::User,
        json!({"schemas": [USER], "userName": name, "title": "Engineer"}),
    )
    .await
}

async fn query_ids(
    b: &dyn Backend,
    src: &str,
    kind: ResourceKind,
    f: &Filter,
) -> (BTreeSet<String>, u64) {
    let q = Query {
        filter: Some(f.clone()),
        sort: None,
        page: Page::Index {
            start_index: 1,
            count: 1000,
        },
        load: Load::NONE,
    };
    let page = b
        .query(src, kind, &q)
        .await
        .unwrap_or_else(|e| panic!("query {f} failed: {e}"));
    (
        page.resources.iter().map(|r| r.id.clone()).collect(),
        page.total_results,
    )
}

fn filter(kind: ResourceKind, text: &str) -> Filter {
    let reg = registry();
    Filter::parse(text)
        .and_then(|f| f.resolve(reg.resource_type(kind)))
        .unwrap_or_else(|e| panic!("filter {text}: {e}"))
}

fn member_ids(r: &Resource, attr: &str) -> Vec<String> {
    r.attrs
        .get(attr)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|m| m.get("value").and_then(Value::as_str).map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// A userName or displayName change renames the entry (modrdn): the SCIM id and every group
/// membership survive, and the directory shows the new DN in the group's member values.
async fn rename_keeps_the_id_and_group_memberships(lossless: bool) {
    let s = Slapd::start();
    let b = backend(&s, lossless);
    let src = "rename";
    let alice = user(&b, src, "alice").await;
    let team = create(
        &b,
        src,
        ResourceKind::Group,
        json!({"schemas": [GROUP], "displayName": "Team", "members": [{"value": alice.id}]}),
    )
    .await;
    let body = json!({"schemas": [USER], "userName": "alice.renamed", "title": "Lead"});
    let renamed = b
        .replace(
            src,
            ResourceKind::User,
            &alice.id,
            replace_attrs(&alice, &body),
            None,
        )
        .await
        .expect("rename");
    assert_eq!(renamed.id, alice.id);
    assert_eq!(renamed.attrs["userName"], "alice.renamed");
    assert_eq!(renamed.attrs["title"], "Lead");
    assert_eq!(member_ids(&renamed, "groups"), vec![team.id.clone()]);
    let g = b
        .get(src, ResourceKind::Group, &team.id, Load::ALL)
        .await
        .expect("group");
    assert_eq!(member_ids(&g, "members"), vec![alice.id.clone()]);
    let ldif = s.ldapsearch(SUFFIX, "(cn=Team)", &["member"]);
    assert!(
        ldif.contains("member: uid=alice.renamed,ou=people,ou=rename,dc=example,dc=org"),
        "{ldif}"
    );
    assert!(s.ldapsearch(SUFFIX, "(uid=alice)", &["uid"]).is_empty());

    // Renaming the group keeps its id and members too.
    let p = patch(
        ResourceKind::Group,
        json!([{"op": "replace", "path": "displayName", "value": "Renamed Team"}]),
    );
    let g2 = b
        .patch(src, ResourceKind::Group, &team.id, &p, None, Load::ALL)
        .await
        .expect("group rename");
    assert_eq!(g2.id, team.id);
    assert_eq!(g2.attrs["displayName"], "Renamed Team");
    assert_eq!(member_ids(&g2, "members"), vec![alice.id.clone()]);
    let u = b
        .get(src, ResourceKind::User, &alice.id, Load::ALL)
        .await
        .expect("user");
    let groups = u.attrs["groups"].as_array().cloned().unwrap_or_default();
    assert_eq!(groups.len(), 1);
    assert_eq!(groups[0]["display"], "Renamed Team");
    assert!(
        s.ldapsearch(SUFFIX, "(cn=Renamed Team)", &["cn"])
            .contains("cn=Renamed Team,ou=groups")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rename_keeps_the_id_and_group_memberships_mapped() {
    rename_keeps_the_id_and_group_memberships(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rename_keeps_the_id_and_group_memberships_lossless() {
    rename_keeps_the_id_and_group_memberships(true).await;
}

/// A rename that collides with another entry fails with uniqueness and changes nothing: the
/// attribute changes of the same request are not applied either.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_rename_changes_nothing() {
    let s = Slapd::start();
    for lossless in [false, true] {
        let b = backend(&s, lossless);
        let src = if lossless {
            "failed-rename-l"
        } else {
            "failed-rename"
        };
        let a = user(&b, src, "a").await;
        user(&b, src, "taken").await;
        let body = json!({"schemas": [USER], "userName": "TAKEN", "title": "Changed"});
        let err = b
            .replace(
                src,
                ResourceKind::User,
                &a.id,
                replace_attrs(&a, &body),
                None,
            )
            .await
            .expect_err("rename onto a taken name");
        assert_eq!(err, BackendError::Uniqueness("userName".into()));
        let after = b
            .get(src, ResourceKind::User, &a.id, Load::ALL)
            .await
            .expect("get");
        assert_eq!(after, a, "nothing changed");
    }
}

/// Filter values with LDAP filter metacharacters (`*`, `(`, `)`, `\`) are compared
/// literally: `*)(uid=*` matches only the user named exactly that.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injection_looking_filter_values_match_literally() {
    let s = Slapd::start();
    for lossless in [false, true] {
        let b = backend(&s, lossless);
        let src = if lossless { "inject-l" } else { "inject" };
        let names = ["*)(uid=*", "star*", "paren(x)", r"back\slash", "plain", "*"];
        let mut ids = std::collections::HashMap::new();
        for n in names {
            ids.insert(n, user(&b, src, n).await.id);
        }
        let cases: [(&str, &[&str]); 7] = [
            (r#"userName eq "*)(uid=*""#, &["*)(uid=*"]),
            (r#"userName eq "*""#, &["*"]),
            (r#"userName co "*""#, &["*)(uid=*", "star*", "*"]),
            (r#"userName sw "*)(""#, &["*)(uid=*"]),
            (r#"userName eq "back\\slash""#, &[r"back\slash"]),
            (r#"userName co "(x)""#, &["paren(x)"]),
            (r#"title eq "*" or userName eq "*)(|(uid=*""#, &[]),
        ];
        for (text, want) in cases {
            let (got, total) = query_ids(
                &b,
                src,
                ResourceKind::User,
                &filter(ResourceKind::User, text),
            )
            .await;
            let want: BTreeSet<String> = want.iter().map(|n| ids[n].clone()).collect();
            assert_eq!(got, want, "{text} (lossless: {lossless})");
            assert_eq!(total, want.len() as u64);
        }
    }
}

/// A small deterministic generator (xorshift), so failures reproduce.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[(self.next() % items.len() as u64) as usize]
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

const WORDS: [&str; 10] = [
    "alpha",
    "Alpha",
    "ALPHA beta",
    "beta",
    "alp",
    "Zed",
    "gamma*",
    "x(y)",
    "Ünïcode",
    "m",
];

fn random_user(r: &mut Rng, i: usize, managers: &[String]) -> Value {
    let mut u = serde_json::Map::new();
    u.insert("schemas".into(), json!([USER, ENTERPRISE_USER]));
    u.insert("userName".into(), json!(format!("{}-{i}", r.pick(&WORDS))));
    let mut name = serde_json::Map::new();
    for sub in ["formatted", "familyName", "givenName"] {
        if r.chance(60) {
            name.insert(sub.into(), json!(r.pick(&WORDS)));
        }
    }
    if !name.is_empty() {
        u.insert("name".into(), Value::Object(name));
    }
    for a in ["displayName", "title", "userType"] {
        if r.chance(60) {
            u.insert(a.into(), json!(r.pick(&WORDS)));
        }
    }
    if r.chance(50) {
        u.insert(
            "preferredLanguage".into(),
            json!(r.pick(&["en", "de-CH", "EN"])),
        );
    }
    if r.chance(40) {
        u.insert(
            "profileUrl".into(),
            json!(format!(
                "https://example.com/{}",
                r.pick(&["alpha", "Beta", "m"])
            )),
        );
    }
    if r.chance(60) {
        let emails: Vec<Value> = (0..1 + r.next() % 2)
            .map(|k| json!({"value": format!("{}{k}@{}", r.pick(&["alpha", "Beta", "m"]), r.pick(&["example.com", "EXAMPLE.org"])), "type": "work"}))
            .collect();
        u.insert("emails".into(), Value::Array(emails));
    }
    let mut phones = Vec::new();
    for t in ["work", "mobile", "home", "fax", "pager"] {
        if r.chance(25) {
            phones.push(json!({"value": format!("+41 44 555 0{}", r.next() % 200), "type": t}));
        }
    }
    if !phones.is_empty() {
        u.insert("phoneNumbers".into(), Value::Array(phones));
    }
    if r.chance(50) {
        let mut addr = serde_json::Map::new();
        addr.insert("type".into(), json!("work"));
        for sub in ["streetAddress", "locality", "region", "postalCode"] {
            if r.chance(60) {
                addr.insert(sub.into(), json!(r.pick(&WORDS)));
            }
        }
        if addr.len() > 1 {
            u.insert("addresses".into(), json!([Value::Object(addr)]));
        }
    }
    match r.next() % 3 {
        0 => {
            u.insert("active".into(), json!(true));
        }
        1 => {
            u.insert("active".into(), json!(false));
        }
        _ => {}
    }
    let mut ent = serde_json::Map::new();
    for a in ["employeeNumber", "department", "organization"] {
        if r.chance(50) {
            ent.insert(a.into(), json!(r.pick(&WORDS)));
        }
    }
    if !managers.is_empty() && r.chance(40) {
        ent.insert("manager".into(), json!({"value": r.pick(managers)}));
    }
    if !ent.is_empty() {
        u.insert(ENTERPRISE_USER.into(), Value::Object(ent));
    }
    Value::Object(u)
}

/// Every attribute the `openldap` preset maps, as filter paths.
const MAPPED: [&str; 17] = [
    "userName",
    "name.formatted",
    "name.familyName",
    "name.givenName",
    "displayName",
    "title",
    "userType",
    "preferredLanguage",
    "profileUrl",
    "emails.value",
    "phoneNumbers.value",
    "addresses.streetAddress",
    "addresses.locality",
    "addresses.region",
    "addresses.postalCode",
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber",
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department",
];

/// Differential test: random users over every attribute the `openldap` preset maps, random
/// filters over those attributes (every operator, presence, negation, value paths, logical
/// combinations); the LDAP backend returns exactly what the core's reference evaluator
/// selects from the same resources, with exact totals. Runs in both storage modes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_equal_the_reference_evaluator_for_every_mapped_attribute() {
    let s = Slapd::start();
    let reg = registry();
    let rt = reg.resource_type(ResourceKind::User);
    for lossless in [false, true] {
        let b = backend(&s, lossless);
        let src = if lossless { "diff-l" } else { "diff" };
        let mut r = Rng(0x5c1d_0001 + u64::from(lossless));
        let mut ids: Vec<String> = Vec::new();
        for i in 0..40 {
            let body = random_user(&mut r, i, &ids);
            ids.push(create(&b, src, ResourceKind::User, body).await.id);
        }
        let group = create(
            &b,
            src,
            ResourceKind::Group,
            json!({"schemas": [GROUP], "displayName": "G", "members": ids.iter().step_by(3).map(|id| json!({"value": id})).collect::<Vec<_>>()}),
        )
        .await;
        let mut all = Vec::new();
        for id in &ids {
            all.push(
                b.get(src, ResourceKind::User, id, Load::ALL)
                    .await
                    .expect("get"),
            );
        }
        let ops = ["eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le"];
        let mut filters: Vec<String> = Vec::new();
        for path in MAPPED {
            filters.push(format!("{path} pr"));
            filters.push(format!("not ({path} pr)"));
            for op in ops {
                for _ in 0..2 {
                    let v = r.pick(&WORDS).to_string();
                    filters.push(format!("{path} {op} {}", json!(v)));
                }
            }
        }
        filters.extend(
            [
                "active eq true",
                "active eq false",
                "active ne true",
                "not (active eq false)",
                r#"emails[type eq "work" and value co "alpha"]"#,
                r#"emails.type eq "work""#,
                r#"emails[type eq "home"]"#,
                r#"phoneNumbers[type eq "mobile" or type eq "fax"]"#,
                r#"phoneNumbers.type eq "pager""#,
                r#"phoneNumbers.value sw "+41 44""#,
                r#"addresses[type eq "work" and locality pr]"#,
                r#"title eq "alpha" or (displayName co "a" and not (userType pr))"#,
                r#"name.givenName sw "al" and name.familyName pr"#,
                r#"userName co "-1" or title eq "Zed""#,
                r#"meta.created gt "2000-01-01T00:00:00Z""#,
                r#"meta.lastModified lt "2999-01-01T00:00:00Z""#,
                r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value pr"#,
            ]
            .map(str::to_string),
        );
        filters.push(format!("id eq \"{}\"", ids[3]));
        filters.push(format!("not (id eq \"{}\") and active eq false", ids[4]));
        filters.push(format!("groups.value eq \"{}\"", group.id));
        filters.push(format!("groups[value eq \"{}\"] and title pr", group.id));
        filters.push(format!(
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value eq \"{}\"",
            ids[0]
        ));
        let mut failures = Vec::new();
        for text in &filters {
            let f = filter(ResourceKind::User, text);
            let want: BTreeSet<String> = all
                .iter()
                .filter(|u| matches(&f, rt, u))
                .map(|u| u.id.clone())
                .collect();
            let (got, total) = query_ids(&b, src, ResourceKind::User, &f).await;
            if got != want || total != want.len() as u64 {
                failures.push(format!(
                    "{text}: backend {} (total {total}), reference {}",
                    got.len(),
                    want.len()
                ));
            }
        }
        assert!(
            failures.is_empty(),
            "lossless={lossless}: {} of {} filters differ:\n{}",
            failures.len(),
            filters.len(),
            failures.join("\n")
        );
        // Group filters on members.
        let gf = filter(
            ResourceKind::Group,
            &format!("members[value eq \"{}\"]", ids[0]),
        );
        let (got, _) = query_ids(&b, src, ResourceKind::Group, &gf).await;
        assert_eq!(got, BTreeSet::from([group.id.clone()]));
        let gf = filter(
            ResourceKind::Group,
            &format!("members.value eq \"{}\"", ids[1]),
        );
        let (got, _) = query_ids(&b, src, ResourceKind::Group, &gf).await;
        assert!(got.is_empty());
    }
}

/// Filters on attributes the mapping does not store fail with `invalidFilter` (mapped mode).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unmapped_filter_attributes_are_invalid_filters() {
    let s = Slapd::start();
    let b = backend(&s, false);
    for text in [
        r#"nickName eq "x""#,
        r#"externalId eq "x""#,
        r#"emails.primary eq true"#,
    ] {
        let q = Query {
            filter: Some(filter(ResourceKind::User, text)),
            sort: None,
            page: Page::Index {
                start_index: 1,
                count: 10,
            },
            load: Load::NONE,
        };
        let err = b
            .query("unmapped", ResourceKind::User, &q)
            .await
            .expect_err(text);
        let scim = ScimError::from(err);
        assert_eq!(scim.status, 400, "{text}");
        assert_eq!(scim.scim_type.map(|t| t.as_str()), Some("invalidFilter"));
    }
}

/// Killing slapd mid-run turns requests into 503 errors with `Retry-After`; no resource is
/// left half-written (each replace changes several attributes in step — in lossless mode also
/// the userName, which renames the entry); after slapd restarts the same backend serves
/// requests again. (Mapped mode without transactions cannot make a rename and a modify one
/// step, so its writers keep their names.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn directory_outage_gives_503_and_recovers_without_half_writes() {
    let mut s = Slapd::start();
    for lossless in [true, false] {
        let b = Arc::new(backend(&s, lossless));
        let src = if lossless { "outage-l" } else { "outage" };
        let mut users = Vec::new();
        for i in 0..6 {
            users.push(user(&*b, src, &format!("u{i}-0")).await);
        }
        let g = create(
            &*b,
            src,
            ResourceKind::Group,
            json!({"schemas": [GROUP], "displayName": "G"}),
        )
        .await;
        // Writers: replaces that rename and change two other attributes in step.
        let mut tasks = Vec::new();
        for (i, u) in users.iter().enumerate() {
            let b = b.clone();
            let id = u.id.clone();
            let gid = g.id.clone();
            tasks.push(tokio::spawn(async move {
                let mut outcomes = Vec::new();
                for n in 1..40 {
                    let current = match b.get(src, ResourceKind::User, &id, Load::NONE).await {
                        Ok(c) => c,
                        Err(e) => {
                            outcomes.push(Err(e));
                            tokio::time::sleep(Duration::from_millis(20)).await;
                            continue;
                        }
                    };
                    let name = if lossless {
                        format!("u{i}-{n}")
                    } else {
                        format!("u{i}-0")
                    };
                    let body = json!({"schemas": [USER], "userName": name,
                                      "title": format!("t{n}"), "displayName": format!("d{n}")});
                    let r = b
                        .replace(
                            src,
                            ResourceKind::User,
                            &id,
                            replace_attrs(&current, &body),
                            None,
                        )
                        .await;
                    outcomes.push(r.map(|_| ()));
                    let p = patch(
                        ResourceKind::Group,
                        json!([{"op": "add", "path": "members", "value": [{"value": id}]}]),
                    );
                    outcomes.push(
                        b.patch(src, ResourceKind::Group, &gid, &p, None, Load::NONE)
                            .await
                            .map(|_| ()),
                    );
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                outcomes
            }));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
        s.kill();
        let mut errors = Vec::new();
        let mut successes = 0;
        for t in tasks {
            for o in t.await.expect("task") {
                match o {
                    Ok(()) => successes += 1,
                    Err(e) => errors.push(e),
                }
            }
        }
        assert!(successes > 0, "some writes happened before the outage");
        assert!(!errors.is_empty(), "the outage was noticed");
        for e in &errors {
            let scim = ScimError::from(e.clone());
            assert_eq!(scim.status, 503, "{e:?}");
            assert!(scim.retry_after.is_some());
        }
        let down = b.health().await.expect_err("health during the outage");
        assert_eq!(ScimError::from(down).status, 503);

        s.restart();
        let mut ok = false;
        for _ in 0..50 {
            if b.health().await.is_ok() {
                ok = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(ok, "the backend reconnects after slapd restarts");
        for (i, u) in users.iter().enumerate() {
            let now = b
                .get(src, ResourceKind::User, &u.id, Load::ALL)
                .await
                .expect("get");
            let name = now.attrs["userName"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let n = name.rsplit('-').next().unwrap_or_default().to_string();
            assert!(name.starts_with(&format!("u{i}-")), "{name}");
            if n != "0" {
                assert_eq!(now.attrs["title"], format!("t{n}"), "half-written: {now:?}");
                assert_eq!(
                    now.attrs["displayName"],
                    format!("d{n}"),
                    "half-written: {now:?}"
                );
            }
        }
        // And writes work again.
        let p = patch(
            ResourceKind::User,
            json!([{"op": "replace", "path": "title", "value": "after"}]),
        );
        let after = b
            .patch(src, ResourceKind::User, &users[0].id, &p, None, Load::NONE)
            .await
            .expect("write after restart");
        assert_eq!(after.attrs["title"], "after");
    }
}

/// Five concurrent PATCHes adding members to one group (as Entra ID sends them) lose none,
/// in the mapped mode too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_member_patches_lose_nothing_in_mapped_mode() {
    let s = Slapd::start();
    let b = Arc::new(backend(&s, false));
    let src = "concurrent";
    let mut ids = Vec::new();
    for i in 0..25 {
        ids.push(user(&*b, src, &format!("c{i}")).await.id);
    }
    let g = create(
        &*b,
        src,
        ResourceKind::Group,
        json!({"schemas": [GROUP], "displayName": "C"}),
    )
    .await;
    let mut tasks = Vec::new();
    for chunk in ids.chunks(5) {
        let b = b.clone();
        let gid = g.id.clone();
        let chunk = chunk.to_vec();
        tasks.push(tokio::spawn(async move {
            for id in chunk {
                let p = patch(
                    ResourceKind::Group,
                    json!([{"op": "add", "path": "members", "value": [{"value": id}]}]),
                );
                b.patch(src, ResourceKind::Group, &gid, &p, None, Load::NONE)
                    .await
                    .unwrap_or_else(|e| panic!("member add: {e}"));
            }
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    let full = b
        .get(src, ResourceKind::Group, &g.id, Load::ALL)
        .await
        .expect("get");
    let got: BTreeSet<String> = member_ids(&full, "members").into_iter().collect();
    assert_eq!(got, ids.iter().cloned().collect::<BTreeSet<_>>());
}

/// In mapped mode the version comes from `entryCSN`: it increases with every change, and a
/// write with a stale expected version fails and changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mapped_mode_versions_follow_the_directory() {
    let s = Slapd::start();
    let b = backend(&s, false);
    let src = "versions";
    let u = user(&b, src, "v").await;
    let p = patch(
        ResourceKind::User,
        json!([{"op": "replace", "path": "title", "value": "Two"}]),
    );
    let v2 = b
        .patch(src, ResourceKind::User, &u.id, &p, None, Load::ALL)
        .await
        .expect("patch");
    assert!(v2.meta.version > u.meta.version);
    assert!(v2.meta.last_modified >= u.meta.last_modified);
    let stale = b
        .patch(
            src,
            ResourceKind::User,
            &u.id,
            &p,
            Some(u.meta.version),
            Load::ALL,
        )
        .await;
    assert_eq!(
        stale.expect_err("stale version"),
        BackendError::VersionMismatch
    );
    let body = json!({"schemas": [USER], "userName": "v", "title": "Three"});
    let stale = b
        .replace(
            src,
            ResourceKind::User,
            &u.id,
            replace_attrs(&v2, &body),
            Some(u.meta.version),
        )
        .await;
    assert_eq!(
        stale.expect_err("stale version"),
        BackendError::VersionMismatch
    );
    let now = b
        .get(src, ResourceKind::User, &u.id, Load::ALL)
        .await
        .expect("get");
    assert_eq!(now, v2);
    // An edit made with other LDAP tools is a new version too, and shows in SCIM.
    s.ldapmodify(
        "dn: uid=v,ou=people,ou=versions,dc=example,dc=org\nchangetype: modify\nreplace: title\ntitle: Edited\n",
    );
    let edited = b
        .get(src, ResourceKind::User, &u.id, Load::ALL)
        .await
        .expect("get");
    assert_eq!(edited.attrs["title"], "Edited");
    assert!(edited.meta.version > v2.meta.version);
}

/// In lossless mode an edit made with other LDAP tools to a mapped attribute wins over the
/// JSON copy and makes a new version.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lossless_mode_sees_edits_made_with_other_ldap_tools() {
    let s = Slapd::start();
    let b = backend(&s, true);
    let src = "edits";
    let u = user(&b, src, "e").await;
    s.ldapmodify(
        "dn: uid=e,ou=people,ou=edits,dc=example,dc=org\nchangetype: modify\nreplace: title\ntitle: Edited\n",
    );
    let edited = b
        .get(src, ResourceKind::User, &u.id, Load::ALL)
        .await
        .expect("get");
    assert_eq!(edited.attrs["title"], "Edited");
    assert!(edited.meta.version > u.meta.version);
    let p = patch(
        ResourceKind::User,
        json!([{"op": "replace", "path": "displayName", "value": "E"}]),
    );
    let next = b
        .patch(
            src,
            ResourceKind::User,
            &u.id,
            &p,
            Some(edited.meta.version),
            Load::ALL,
        )
        .await
        .expect("patch at the edited version");
    assert!(next.meta.version > edited.meta.version);
    assert_eq!(next.attrs["title"], "Edited");
}

/// A password is written through the directory, which hashes it; it is never returned.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passwords_are_hashed_by_the_directory_and_never_returned() {
    let s = Slapd::start();
    let b = backend(&s, true);
    let src = "pw";
    let u = create(
        &b,
        src,
        ResourceKind::User,
        json!({"schemas": [USER], "userName": "pw", "password": "S3cret-pass"}),
    )
    .await;
    assert!(!u.attrs.contains_key("password"));
    let ldif = s.ldapsearch(SUFFIX, "(uid=pw)", &["userPassword", "scimdJson"]);
    assert!(ldif.contains("userPassword::"), "{ldif}");
    assert!(!ldif.contains("S3cret-pass"), "clear text stored: {ldif}");
    let who = std::process::Command::new("ldapwhoami")
        .args([
            "-x",
            "-H",
            &s.url,
            "-D",
            "uid=pw,ou=people,ou=pw,dc=example,dc=org",
            "-w",
            "S3cret-pass",
        ])
        .output()
        .expect("ldapwhoami");
    assert!(who.status.success(), "bind with the new password");
}

/// The JSON copy of an entry, as `ldapsearch` shows it.
fn json_copy(s: &Slapd, filter: &str) -> Value {
    let ldif = s.ldapsearch(SUFFIX, filter, &["scimdJson"]);
    let line = ldif
        .lines()
        .find_map(|l| l.strip_prefix("scimdJson: "))
        .unwrap_or_else(|| panic!("no scimdJson in {ldif}"));
    serde_json::from_str(line).expect("JSON copy")
}

fn set_json_copy(s: &Slapd, dn: &str, v: &Value) {
    s.ldapmodify(&format!(
        "dn: {dn}\nchangetype: modify\nreplace: scimdJson\nscimdJson: {v}\n"
    ));
}

/// Lossless mode, without transactions: a rename interrupted before the directory renamed
/// the entry reads as not started; one interrupted after it (the final write missing) reads
/// as complete, and the next write completes it in the directory too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interrupted_renames_read_as_not_started_or_complete() {
    let s = Slapd::start();
    let b = backend(&s, true);
    let src = "intent";
    let u = create(
        &b,
        src,
        ResourceKind::User,
        json!({"schemas": [USER], "userName": "r1", "title": "A"}),
    )
    .await;
    let dn = "uid=r1,ou=people,ou=intent,dc=example,dc=org";
    // The intent record a rename to r2 (with title B) writes first.
    let mut copy = json_copy(&s, "(uid=r1)");
    let mut next = copy.clone();
    next["v"] = json!(u.meta.version.0 + 1);
    next["a"]["userName"] = json!("r2");
    next["a"]["title"] = json!("B");
    copy["p"] = next;
    copy["r"] = json!("r2");
    set_json_copy(&s, dn, &copy);
    let before = b
        .get(src, ResourceKind::User, &u.id, Load::ALL)
        .await
        .expect("get");
    assert_eq!(before.attrs["userName"], "r1");
    assert_eq!(before.attrs["title"], "A");
    assert_eq!(before.meta.version, u.meta.version);
    // The directory renamed the entry; the final write never came.
    s.ldapmodify(&format!(
        "dn: {dn}\nchangetype: modrdn\nnewrdn: uid=r2\ndeleteoldrdn: 1\n"
    ));
    let after = b
        .get(src, ResourceKind::User, &u.id, Load::ALL)
        .await
        .expect("get");
    assert_eq!(after.attrs["userName"], "r2");
    assert_eq!(after.attrs["title"], "B");
    assert_eq!(after.meta.version, u.meta.version.next());
    assert!(
        s.ldapsearch(SUFFIX, "(uid=r2)", &["title"])
            .contains("title: A")
    );
    // The next write completes the directory's attributes.
    let p = patch(
        ResourceKind::User,
        json!([{"op": "replace", "path": "displayName", "value": "R"}]),
    );
    let done = b
        .patch(
            src,
            ResourceKind::User,
            &u.id,
            &p,
            Some(after.meta.version),
            Load::ALL,
        )
        .await
        .expect("patch");
    assert_eq!(done.attrs["title"], "B");
    assert!(
        s.ldapsearch(SUFFIX, "(uid=r2)", &["title"])
            .contains("title: B")
    );
    assert!(json_copy(&s, "(uid=r2)").get("p").is_none());
}

/// Lossless mode, without transactions: a delete interrupted after recording its intent
/// already reads as done (not found, in no query, in no group); the next DELETE, or a create
/// of the same name, finishes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interrupted_deletes_read_as_done_and_are_finished_later() {
    let s = Slapd::start();
    let b = backend(&s, true);
    let src = "intent-del";
    let u = user(&b, src, "gone").await;
    let g = create(
        &b,
        src,
        ResourceKind::Group,
        json!({"schemas": [GROUP], "displayName": "G", "members": [{"value": u.id}]}),
    )
    .await;
    let dn = "uid=gone,ou=people,ou=intent-del,dc=example,dc=org";
    let mut copy = json_copy(&s, "(uid=gone)");
    copy["scimd.deleted"] = json!(true);
    set_json_copy(&s, dn, &copy);
    assert!(matches!(
        b.get(src, ResourceKind::User, &u.id, Load::ALL).await,
        Err(BackendError::NotFound(_))
    ));
    let (found, total) = query_ids(
        &b,
        src,
        ResourceKind::User,
        &filter(ResourceKind::User, r#"userName eq "gone""#),
    )
    .await;
    assert!(found.is_empty() && total == 0);
    let group = b
        .get(src, ResourceKind::Group, &g.id, Load::ALL)
        .await
        .expect("group");
    assert!(member_ids(&group, "members").is_empty());
    // A create of the same name finishes the delete first.
    let again = user(&b, src, "gone").await;
    assert_ne!(again.id, u.id);
    let group = b
        .get(src, ResourceKind::Group, &g.id, Load::ALL)
        .await
        .expect("group");
    assert!(
        member_ids(&group, "members").is_empty(),
        "no inherited membership"
    );
    // And a DELETE of a pending entry finishes it (reporting it as already gone).
    let v = user(&b, src, "gone2").await;
    let mut copy = json_copy(&s, "(uid=gone2)");
    copy["scimd.deleted"] = json!(true);
    set_json_copy(
        &s,
        "uid=gone2,ou=people,ou=intent-del,dc=example,dc=org",
        &copy,
    );
    assert!(matches!(
        b.delete(src, ResourceKind::User, &v.id, None).await,
        Err(BackendError::NotFound(_))
    ));
    assert!(s.ldapsearch(SUFFIX, "(uid=gone2)", &["uid"]).is_empty());
}

/// A configured soft delete moves the entry out of the source's subtree (SCIM no longer sees
/// it), disables it and removes its memberships; the directory keeps the entry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soft_delete_moves_and_disables_the_entry() {
    let s = Slapd::start();
    s.ldapmodify(
        "dn: ou=deleted,dc=example,dc=org\nchangetype: add\nobjectClass: organizationalUnit\nou: deleted\n",
    );
    for lossless in [false, true] {
        let mut c = s.config(lossless);
        c.users.delete = Some(scimd_backend_ldap::config::DeleteConfig::Move {
            container: "ou=deleted,dc=example,dc=org".into(),
        });
        let b = LdapBackend::new(&c, registry()).expect("config");
        let src = if lossless { "soft-l" } else { "soft" };
        let name = format!("leaver-{src}");
        let u = user(&b, src, &name).await;
        let g = create(
            &b,
            src,
            ResourceKind::Group,
            json!({"schemas": [GROUP], "displayName": "G", "members": [{"value": u.id}]}),
        )
        .await;
        b.delete(src, ResourceKind::User, &u.id, None)
            .await
            .expect("delete");
        assert!(matches!(
            b.get(src, ResourceKind::User, &u.id, Load::ALL).await,
            Err(BackendError::NotFound(_))
        ));
        let group = b
            .get(src, ResourceKind::Group, &g.id, Load::ALL)
            .await
            .expect("group");
        assert!(member_ids(&group, "members").is_empty());
        let kept = s.ldapsearch(
            "ou=deleted,dc=example,dc=org",
            &format!("(uid={name})"),
            &["pwdAccountLockedTime"],
        );
        assert!(
            kept.contains("pwdAccountLockedTime: 000001010000Z"),
            "moved and disabled: {kept}"
        );
    }
}

/// StartTLS and `ldaps://` connect with the configured CA file; without it (system roots
/// only) the directory's certificate is not trusted and requests fail with 503.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_a_ca_file_works_and_untrusted_certificates_are_refused() {
    let s = Slapd::start_with_tls();
    let ca = s.dir.join("ca.pem");
    let ldaps = s.ldaps_url.clone().expect("ldaps url");
    for (url, starttls) in [(s.url.clone(), true), (ldaps.clone(), false)] {
        let mut c = s.config(true);
        c.url = url.clone();
        c.tls.starttls = starttls;
        c.tls.ca_file = Some(ca.clone());
        let b = LdapBackend::new(&c, registry()).expect("config");
        let src = if starttls { "starttls" } else { "ldaps" };
        let u = user(&b, src, "tls-user").await;
        let got = b
            .get(src, ResourceKind::User, &u.id, Load::ALL)
            .await
            .expect("get over TLS");
        assert_eq!(got.attrs["userName"], "tls-user", "{url}");
    }
    let mut c = s.config(true);
    c.url = ldaps;
    let b = LdapBackend::new(&c, registry()).expect("config");
    let err = b
        .get(
            "ldaps",
            ResourceKind::User,
            "0f6c3c4a-1111-4111-8111-000000000001",
            Load::ALL,
        )
        .await
        .expect_err("untrusted certificate");
    assert_eq!(ScimError::from(err).status, 503);
}
