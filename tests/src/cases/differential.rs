//! The differential check: a backend's filter results equal the core's reference evaluator
//! over the same corpus.

// The corpus varies attributes by residues of the user's index; `i % n == k` reads uniformly.
#![allow(clippy::manual_is_multiple_of)]

use super::filters::corpus;
use crate::fixtures::*;
use scimd_core::filter::matches;
use scimd_core::resource::{Resource, format_time};
use scimd_core::schema::{ENTERPRISE_USER, GROUP, ResourceKind, USER};
use scimd_core::{Backend, Page};
use serde_json::{Map, Value, json};

/// How many users the corpus has.
pub const CORPUS_USERS: usize = 50;

/// A deterministic corpus user: every attribute shape the filters below probe, varied by `i`.
pub fn corpus_user(i: usize) -> Value {
    let given = ["Barbara", "Kurt", "Ünal", "ada", "Zoë", "O'Brien", "Li"][i % 7];
    let family = ["Jensen", "Müller", "smith", "Ng", "DE LA CRUZ"][i % 5];
    let user_name = match i % 5 {
        // Greek capital sigma lower-cases to a word-final ς only in context; a per-character
        // mapping gives σ. Backends must agree with the reference either way.
        _ if i == CORPUS_USERS - 1 => "ΟΔΥΣΣΕΥΣ@example.com".to_string(),
        0 => format!("User{i}@Example.com"),
        1 => format!("user{i}@example.org"),
        2 => format!("ÜSER{i}@example.net"),
        3 => format!("u.{i}"),
        _ => format!("user{i}@EXAMPLE.COM"),
    };
    let mut u = Map::new();
    u.insert(
        "schemas".into(),
        json!([USER, ENTERPRISE_USER, CONFORMANCE_EXT]),
    );
    u.insert("userName".into(), json!(user_name));
    if i % 3 != 0 {
        let ext = if i % 2 == 0 {
            format!("EXT-{i:03}")
        } else {
            format!("ext-{i:03}")
        };
        u.insert("externalId".into(), json!(ext));
    }
    match i % 3 {
        0 => {
            u.insert(
                "name".into(),
                json!({"givenName": given, "familyName": family}),
            );
        }
        1 => {
            u.insert("name".into(), json!({"givenName": given}));
        }
        _ => {}
    }
    if i % 4 != 3 {
        u.insert("displayName".into(), json!(format!("{given} {family}")));
    }
    if let Some(title) = [
        "Engineer",
        "engineer",
        "Manager",
        "Senior Engineer",
        "ÉTUDIANT",
    ]
    .get(i % 6)
    {
        u.insert("title".into(), json!(title));
    }
    match i % 3 {
        0 => {
            u.insert("active".into(), json!(true));
        }
        1 => {
            u.insert("active".into(), json!(false));
        }
        _ => {}
    }
    let domains = [
        "example.com",
        "example.org",
        "EXAMPLE.com",
        "corp.example.net",
    ];
    let types = ["work", "home", "other"];
    let emails: Vec<Value> = (0..i % 4)
        .map(|k| {
            let mut e = json!({
                "value": format!("u{i}.{k}@{}", domains[(i + k) % domains.len()]),
                "type": types[(i + k) % types.len()],
            });
            if k == 0 && i % 2 == 0 {
                e["primary"] = json!(true);
            }
            e
        })
        .collect();
    if !emails.is_empty() {
        u.insert("emails".into(), Value::Array(emails));
    }
    if i % 5 == 2 {
        u.insert(
            "phoneNumbers".into(),
            json!([{"value": format!("+1 555 01{i:02}"), "type": "mobile"}]),
        );
    }
    if i % 2 == 0 {
        let department = ["R&D", "r&d", "Sales", "Support"][i % 4];
        let mut ent = json!({
            "department": department,
            "costCenter": format!("CC{}", i % 3),
        });
        if i % 4 == 0 {
            ent["manager"] = json!({"value": format!("mgr-{}", i % 5)});
        }
        u.insert(ENTERPRISE_USER.into(), ent);
    } else if i % 5 == 1 {
        u.insert(
            ENTERPRISE_USER.into(),
            json!({"employeeNumber": format!("{}", 1000 + i)}),
        );
    }
    let mut conf = Map::new();
    if i % 4 != 1 {
        conf.insert("badge".into(), json!((i as i64 * 37) % 101 - 20));
    }
    if i % 3 != 2 {
        conf.insert("score".into(), json!((i * 13 % 50) as f64 / 4.0));
    }
    let offsets = ["Z", "+02:00", "-05:30", "+00:00"];
    if i % 6 != 5 {
        conf.insert(
            "hired".into(),
            json!(format!(
                "20{:02}-{:02}-15T{:02}:30:00{}",
                15 + i % 10,
                1 + i % 12,
                i % 24,
                offsets[i % offsets.len()]
            )),
        );
    }
    if i % 2 == 1 {
        conf.insert("remote".into(), json!(i % 4 == 1));
    }
    conf.insert("code".into(), json!(["AbC", "abc", "ABC", "xY"][i % 4]));
    let tags: Vec<&str> = ["red", "Green", "blue", "green"]
        .iter()
        .enumerate()
        .filter(|(k, _)| (i >> k) & 1 == 1)
        .map(|(_, t)| *t)
        .collect();
    if !tags.is_empty() {
        conf.insert("tags".into(), json!(tags));
    }
    u.insert(CONFORMANCE_EXT.into(), Value::Object(conf));
    Value::Object(u)
}

/// The filters of the differential check. `ids` are the corpus' user ids in creation order,
/// `groups` the ids of the groups `Alpha`, `beta`, `Gamma Team`; `pivot` a creation time.
pub fn corpus_filters(ids: &[String], groups: &[String], pivot: &str) -> Vec<String> {
    let e = ENTERPRISE_USER;
    let c = CONFORMANCE_EXT;
    let mut f: Vec<String> = [
        r#"userName eq "user1@EXAMPLE.org""#,
        r#"userName eq "üser2@example.net""#,
        r#"userName eq "οδυσσευσ@example.com""#,
        r#"userName eq "οδυσσευς@example.com""#,
        r#"userName ew "Σ@EXAMPLE.COM""#,
        r#"userName ne "u.3""#,
        r#"userName co "example""#,
        r#"userName co "ÜSER""#,
        r#"userName sw "user""#,
        r#"userName ew ".COM""#,
        r#"userName gt "user3""#,
        r#"userName ge "U.13""#,
        r#"userName lt "user2""#,
        r#"userName le "u.8""#,
        r#"externalId eq "ext-001""#,
        r#"externalId sw "EXT""#,
        r#"externalId co "-01""#,
        r#"externalId gt "ext-020""#,
        r#"displayName co "müller""#,
        r#"displayName sw "zoë""#,
        r#"displayName ew "Jensen""#,
        r#"name.givenName eq "ADA""#,
        r#"name.familyName pr"#,
        r#"name pr"#,
        r#"title eq "engineer""#,
        r#"title co "ENGINEER""#,
        r#"title ne "Manager""#,
        r#"title eq "étudiant""#,
        r#"active eq true"#,
        r#"active eq false"#,
        r#"active ne true"#,
        r#"not (active pr)"#,
        r#"emails pr"#,
        r#"emails.value co "@example.com""#,
        r#"emails.value ew ".NET""#,
        r#"emails.type eq "work""#,
        r#"emails[type eq "work" and value co "example.com"]"#,
        r#"emails[type eq "home" or primary eq true]"#,
        r#"emails[not (type eq "other")] and active eq true"#,
        r#"phoneNumbers.value sw "+1 555""#,
        r#"phoneNumbers[type eq "mobile"]"#,
        r#"groups pr"#,
        r#"groups.display eq "alpha""#,
        r#"groups[display sw "Gamma"]"#,
        r#"title pr and not (emails pr)"#,
        r#"(active eq true or title eq "Manager") and emails.type eq "home""#,
        r#"active eq true or title eq "Manager" and emails.type eq "home""#,
        r#"not (userName co "example" or title pr)"#,
    ]
    .into_iter()
    .map(str::to_string)
    .collect();
    f.extend([
        format!(r#"{e}:department eq "r&d""#),
        format!(r#"{e}:department ne "Sales""#),
        format!(r#"{e}:manager.value eq "mgr-0""#),
        format!(r#"{e}:manager pr"#),
        format!(r#"{e}:employeeNumber pr"#),
        r#"costCenter eq "CC1""#.to_string(),
        format!(r#"{c}:badge gt 40"#),
        format!(r#"{c}:badge le 0"#),
        format!(r#"{c}:badge eq 17"#),
        format!(r#"{c}:badge ne 17"#),
        format!(r#"{c}:score ge 6.25"#),
        format!(r#"{c}:score lt 1.5"#),
        format!(r#"{c}:hired gt "2019-06-15T10:00:00Z""#),
        format!(r#"{c}:hired le "2020-01-15T03:30:00-02:00""#),
        format!(r#"{c}:remote eq false"#),
        format!(r#"{c}:remote pr"#),
        format!(r#"{c}:code eq "abc""#),
        format!(r#"{c}:code sw "A""#),
        format!(r#"{c}:code gt "ABC""#),
        format!(r#"{c}:tags eq "green""#),
        format!(r#"{c}:tags co "RE""#),
        format!(r#"{c}:badge gt 0 and {c}:score lt 5 or {c}:tags eq "blue""#),
        format!(r#"meta.created gt "{pivot}""#),
        format!(r#"meta.lastModified le "{pivot}""#),
        r#"meta.resourceType eq "User""#.to_string(),
    ]);
    if let Some(id) = ids.get(7) {
        f.push(format!(r#"id eq "{id}""#));
        f.push(format!(r#"id eq "{id}" or userName sw "u.""#));
        f.push(format!(r#"not (id eq "{id}") and active eq false"#));
    }
    for g in groups {
        f.push(format!(r#"groups.value eq "{g}""#));
    }
    if let (Some(a), Some(b)) = (groups.first(), groups.get(1)) {
        f.push(format!(
            r#"groups[value eq "{a}"] and not (groups[value eq "{b}"])"#
        ));
    }
    f
}

/// The group filters of the differential check.
pub fn corpus_group_filters(ids: &[String], groups: &[String]) -> Vec<String> {
    let mut f: Vec<String> = [
        r#"displayName eq "alpha""#,
        r#"displayName sw "G""#,
        r#"members pr"#,
        r#"members[type eq "Group"]"#,
        r#"not (members[type eq "Group"])"#,
    ]
    .into_iter()
    .map(str::to_string)
    .collect();
    for id in ids.iter().step_by(7) {
        f.push(format!(r#"members.value eq "{id}""#));
        f.push(format!(r#"members[value eq "{id}" and type eq "User"]"#));
    }
    if let Some(g) = groups.first() {
        f.push(format!(
            r#"members.value eq "{g}" or displayName eq "beta""#
        ));
    }
    f
}

/// Creates the corpus in `src`; returns the user ids in creation order and the group ids.
pub(crate) async fn seed_corpus(
    backend: &dyn Backend,
    src: &str,
) -> (Vec<Resource>, Vec<Resource>) {
    let mut users = Vec::with_capacity(CORPUS_USERS);
    for i in 0..CORPUS_USERS {
        users.push(create(backend, src, ResourceKind::User, &corpus_user(i)).await);
    }
    let pick = |m: usize| -> Vec<&Resource> {
        users
            .iter()
            .enumerate()
            .filter(|(i, _)| i % m == 0)
            .map(|(_, u)| u)
            .collect()
    };
    let alpha = create_group(backend, src, "Alpha", &pick(3)).await;
    let beta = create_group(backend, src, "beta", &pick(5)).await;
    let mut gamma_members = pick(7);
    gamma_members.push(&alpha);
    let gamma = create(
        backend,
        src,
        ResourceKind::Group,
        &json!({
            "schemas": [GROUP],
            "displayName": "Gamma Team",
            "members": gamma_members.iter().map(|m| json!({"value": m.id, "display": "member"})).collect::<Vec<_>>()
        }),
    )
    .await;
    (users, vec![alpha, beta, gamma])
}

/// For a fixed corpus of 50 users and 3 groups and about 100 filters, the backend returns exactly the resources the reference evaluator matches, with exact totals.
pub async fn filter_results_equal_the_reference_evaluator(backend: &dyn Backend) {
    if !has(
        "filter_differential",
        "filter",
        backend.capabilities().filter,
    ) {
        return;
    }
    let src = source("filter_differential");
    let (users, groups) = seed_corpus(backend, &src).await;
    let user_ids = ids(&users);
    let group_ids = ids(&groups);
    let pivot = format_time(users[CORPUS_USERS / 2].meta.created);
    let reg = registry();
    let mut failures = Vec::new();
    let (mut checked, mut discriminating) = (0usize, 0usize);
    for (kind, filters) in [
        (
            ResourceKind::User,
            corpus_filters(&user_ids, &group_ids, &pivot),
        ),
        (
            ResourceKind::Group,
            corpus_group_filters(&user_ids, &group_ids),
        ),
    ] {
        let rt = reg.resource_type(kind);
        let all = corpus(backend, &src, kind).await;
        for text in filters {
            let f = filter(kind, &text);
            let want: Vec<String> = {
                let mut v: Vec<String> = all
                    .iter()
                    .filter(|r| matches(&f, rt, r))
                    .map(|r| r.id.clone())
                    .collect();
                v.sort();
                v
            };
            let page = run_query(
                backend,
                &src,
                kind,
                Some(f),
                None,
                Page::Index {
                    start_index: 1,
                    count: max_page(backend),
                },
                scimd_core::Load::NONE,
            )
            .await;
            checked += 1;
            if !want.is_empty() && want.len() < all.len() {
                discriminating += 1;
            }
            let got = sorted_ids(&page.resources);
            if got != want || page.total_results != want.len() as u64 {
                failures.push(format!(
                    "{} filter {text}: backend {} (total {}), reference {}",
                    kind.name(),
                    got.len(),
                    page.total_results,
                    want.len()
                ));
            }
        }
    }
    assert!(
        discriminating * 3 >= checked * 2,
        "the corpus is too uniform: only {discriminating} of {checked} filters match some but not all"
    );
    assert!(
        failures.is_empty(),
        "results differ from the reference evaluator:\n{}",
        failures.join("\n")
    );
}
