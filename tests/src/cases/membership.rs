//! Group membership as a relation: references, deltas, derived `User.groups`, cascades on
//! delete, what `Load` loads, and isolation between sources.

use crate::fixtures::*;
use scimd_core::resource::Resource;
use scimd_core::schema::{GROUP, ResourceKind, USER};
use scimd_core::{Backend, BackendError, Load, Page};
use serde_json::{Value, json};

fn members_json(r: &Resource) -> Vec<Value> {
    r.attrs
        .get("members")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

fn member<'a>(group: &'a Resource, id: &str) -> Option<&'a Value> {
    group
        .attrs
        .get("members")
        .and_then(Value::as_array)
        .and_then(|ms| ms.iter().find(|m| m["value"] == id))
}

async fn patch_group(
    backend: &dyn Backend,
    src: &str,
    id: &str,
    ops: Value,
) -> Result<Resource, BackendError> {
    let p = patch(ResourceKind::Group, ops);
    backend
        .patch(src, ResourceKind::Group, id, &p, None, Load::ALL)
        .await
}

/// Members are stored with the `type` of what their id is (filled in when the client omits it) and the `display` the client sent.
pub async fn members_are_stored_with_type_and_display(backend: &dyn Backend) {
    let src = source("member_types");
    let u = create_user(backend, &src, "m@example.com").await;
    let inner = create_group(backend, &src, "Inner", &[]).await;
    let g = create(
        backend,
        &src,
        ResourceKind::Group,
        &json!({
            "schemas": [GROUP],
            "displayName": "Outer",
            "members": [
                {"value": u.id, "display": "Member M"},
                {"value": inner.id}
            ]
        }),
    )
    .await;
    let got = get(backend, &src, ResourceKind::Group, &g.id).await;
    let m = member(&got, &u.id).unwrap_or_else(|| panic!("user member missing: {got:?}"));
    assert_eq!(m["type"], "User");
    assert_eq!(m["display"], "Member M");
    let m = member(&got, &inner.id).unwrap_or_else(|| panic!("group member missing: {got:?}"));
    assert_eq!(m["type"], "Group");
    assert_eq!(members_json(&got).len(), 2);
}

/// A member must exist in the same source: an unknown id, or one from another source, fails with invalid reference (create, replace, PATCH) and changes nothing.
pub async fn members_must_exist_in_the_same_source(backend: &dyn Backend) {
    let src = source("member_refs");
    let other = source("member_refs_other");
    let foreign = create_user(backend, &other, "foreign@example.com").await;
    let local = create_user(backend, &src, "local@example.com").await;
    let missing = "2819c223-7f76-453a-919d-413861904646".to_string();
    for bad in [&missing, &foreign.id] {
        let body = json!({"schemas": [GROUP], "displayName": "G", "members": [{"value": local.id}, {"value": bad}]});
        assert_err(
            backend
                .create(&src, ResourceKind::Group, attrs(ResourceKind::Group, &body))
                .await,
            &BackendError::InvalidReference(bad.clone()),
        );
    }
    assert_eq!(
        find(backend, &src, ResourceKind::Group, None)
            .await
            .total_results,
        0
    );

    let g = create_group(backend, &src, "G", &[&local]).await;
    for bad in [&missing, &foreign.id] {
        let body = json!({"schemas": [GROUP], "displayName": "G2", "members": [{"value": bad}]});
        assert_err(
            backend
                .replace(
                    &src,
                    ResourceKind::Group,
                    &g.id,
                    replace_attrs(&g, &body),
                    None,
                )
                .await,
            &BackendError::InvalidReference(bad.clone()),
        );
        let r = patch_group(
            backend,
            &src,
            &g.id,
            json!([
                {"op": "replace", "path": "displayName", "value": "Renamed"},
                {"op": "add", "path": "members", "value": [{"value": bad}]}
            ]),
        )
        .await;
        assert_err(r, &BackendError::InvalidReference(bad.clone()));
    }
    assert_eq!(get(backend, &src, ResourceKind::Group, &g.id).await, g);
    let f = get(backend, &other, ResourceKind::User, &foreign.id).await;
    assert!(
        !f.attrs.contains_key("groups"),
        "nothing links across sources"
    );
}

/// PATCH adds and removes members one at a time; removing a non-member or adding a present member succeeds and keeps the version.
pub async fn patch_adds_and_removes_members(backend: &dyn Backend) {
    let src = source("member_patch");
    let a = create_user(backend, &src, "a@example.com").await;
    let b = create_user(backend, &src, "b@example.com").await;
    let c = create_user(backend, &src, "c@example.com").await;
    let g = create_group(backend, &src, "Team", &[&a]).await;

    let g2 = patch_group(
        backend,
        &src,
        &g.id,
        json!([{"op": "add", "path": "members", "value": [{"value": b.id}, {"value": c.id}]}]),
    )
    .await
    .unwrap_or_else(|e| panic!("add failed: {e}"));
    assert_eq!(
        sorted_values_of(&g2, "members"),
        sorted(vec![&a.id, &b.id, &c.id])
    );
    assert_version(
        backend,
        g2.meta.version,
        g.meta.version.next(),
        "after adding members",
    );

    let g3 = patch_group(
        backend,
        &src,
        &g.id,
        json!([{"op": "remove", "path": format!("members[value eq \"{}\"]", a.id)}]),
    )
    .await
    .unwrap_or_else(|e| panic!("remove failed: {e}"));
    assert_eq!(sorted_values_of(&g3, "members"), sorted(vec![&b.id, &c.id]));
    assert_version(
        backend,
        g3.meta.version,
        g2.meta.version.next(),
        "after removing a member",
    );
    // The relation is kept in both directions.
    let ua = get(backend, &src, ResourceKind::User, &a.id).await;
    assert!(
        values_of(&ua, "groups").is_empty(),
        "a removed member loses the group"
    );
    let ub = get(backend, &src, ResourceKind::User, &b.id).await;
    assert_eq!(
        values_of(&ub, "groups"),
        vec![g.id.clone()],
        "an added member gains the group"
    );
    let f = filter(
        ResourceKind::Group,
        &format!(r#"members[value eq "{}"]"#, c.id),
    );
    let found = run_query(
        backend,
        &src,
        ResourceKind::Group,
        Some(f),
        None,
        Page::Index {
            start_index: 1,
            count: 10,
        },
        Load::NONE,
    )
    .await;
    assert_eq!(ids(&found.resources), vec![g.id.clone()]);

    // Okta removes members that may already be gone; Entra re-adds present ones.
    let same = patch_group(
        backend,
        &src,
        &g.id,
        json!([
            {"op": "remove", "path": format!("members[value eq \"{}\"]", a.id)},
            {"op": "add", "path": "members", "value": [{"value": b.id}]}
        ]),
    )
    .await
    .unwrap_or_else(|e| panic!("no-op patch failed: {e}"));
    assert_version(
        backend,
        same.meta.version,
        g3.meta.version,
        "a no-op member patch keeps the version",
    );
    assert_eq!(
        sorted_values_of(&same, "members"),
        sorted(vec![&b.id, &c.id])
    );

    // Remove with a value list (Entra's shape), then everything with a path-less remove.
    let g4 = patch_group(
        backend,
        &src,
        &g.id,
        json!([{"op": "remove", "path": "members", "value": [{"value": b.id}]}]),
    )
    .await
    .unwrap_or_else(|e| panic!("remove by value failed: {e}"));
    assert_eq!(values_of(&g4, "members"), vec![c.id.clone()]);
    let g5 = patch_group(
        backend,
        &src,
        &g.id,
        json!([{"op": "remove", "path": "members"}]),
    )
    .await
    .unwrap_or_else(|e| panic!("remove all failed: {e}"));
    assert!(values_of(&g5, "members").is_empty());
    assert_eq!(get(backend, &src, ResourceKind::Group, &g.id).await, g5);
    assert_eq!(str_attr(&g5, "displayName"), Some("Team"));
}

/// A PATCH `replace` of `members` makes the list exactly the given members; other attributes in the same PATCH apply too.
pub async fn patch_replace_members_replaces_the_list(backend: &dyn Backend) {
    let src = source("member_replace");
    let a = create_user(backend, &src, "a@example.com").await;
    let b = create_user(backend, &src, "b@example.com").await;
    let g = create_group(backend, &src, "Team", &[&a]).await;
    let r = patch_group(
        backend,
        &src,
        &g.id,
        json!([
            {"op": "replace", "path": "members", "value": [{"value": b.id, "display": "B"}]},
            {"op": "replace", "path": "displayName", "value": "Team B"}
        ]),
    )
    .await
    .unwrap_or_else(|e| panic!("replace failed: {e}"));
    assert_eq!(values_of(&r, "members"), vec![b.id.clone()]);
    assert_eq!(str_attr(&r, "displayName"), Some("Team B"));
    assert_version(
        backend,
        r.meta.version,
        g.meta.version.next(),
        "after replacing members",
    );
    let ua = get(backend, &src, ResourceKind::User, &a.id).await;
    assert!(values_of(&ua, "groups").is_empty());
    let ub = get(backend, &src, ResourceKind::User, &b.id).await;
    assert_eq!(values_of(&ub, "groups"), vec![g.id.clone()]);
}

/// A PATCH of other group attributes keeps the members.
pub async fn patch_of_other_attributes_keeps_members(backend: &dyn Backend) {
    let src = source("member_keep");
    let a = create_user(backend, &src, "a@example.com").await;
    let b = create_user(backend, &src, "b@example.com").await;
    let g = create_group(backend, &src, "Team", &[&a, &b]).await;
    let r = patch_group(
        backend,
        &src,
        &g.id,
        json!([{"op": "add", "path": "externalId", "value": "team-1"}]),
    )
    .await
    .unwrap_or_else(|e| panic!("patch failed: {e}"));
    assert_eq!(str_attr(&r, "externalId"), Some("team-1"));
    assert_eq!(sorted_values_of(&r, "members"), sorted(vec![&a.id, &b.id]));
    assert_eq!(get(backend, &src, ResourceKind::Group, &g.id).await, r);
}

/// `User.groups` is derived from memberships: the group's id, its current displayName and type `direct`.
pub async fn user_groups_are_derived_from_memberships(backend: &dyn Backend) {
    let src = source("user_groups");
    let u = create_user(backend, &src, "u@example.com").await;
    assert!(!u.attrs.contains_key("groups"));
    let g1 = create_group(backend, &src, "Readers", &[&u]).await;
    let g2 = create_group(backend, &src, "Writers", &[&u]).await;
    let got = get(backend, &src, ResourceKind::User, &u.id).await;
    let groups = got
        .attrs
        .get("groups")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    assert_eq!(groups.len(), 2, "{got:?}");
    for (g, name) in [(&g1, "Readers"), (&g2, "Writers")] {
        let entry = groups
            .iter()
            .find(|e| e["value"] == g.id.as_str())
            .unwrap_or_else(|| panic!("group {name} missing from {groups:?}"));
        assert_eq!(entry["display"], name);
        assert_eq!(entry["type"], "direct");
    }
    // The display follows a rename of the group.
    let p = patch(
        ResourceKind::Group,
        json!([{"op": "replace", "path": "displayName", "value": "Editors"}]),
    );
    backend
        .patch(&src, ResourceKind::Group, &g2.id, &p, None, Load::ALL)
        .await
        .unwrap_or_else(|e| panic!("rename failed: {e}"));
    let got = get(backend, &src, ResourceKind::User, &u.id).await;
    let groups = got.attrs["groups"].as_array().cloned().unwrap_or_default();
    assert!(
        groups
            .iter()
            .any(|e| e["value"] == g2.id.as_str() && e["display"] == "Editors")
    );
    // A membership change is not a change of the user.
    assert_version(
        backend,
        got.meta.version,
        u.meta.version,
        "of a user whose groups changed",
    );
}

/// Deleting a user removes it from every group, and each of those groups gets a new version and lastModified.
pub async fn deleting_a_user_removes_it_from_every_group(backend: &dyn Backend) {
    let src = source("delete_user_cascade");
    let u = create_user(backend, &src, "gone@example.com").await;
    let stay = create_user(backend, &src, "stay@example.com").await;
    let g1 = create_group(backend, &src, "One", &[&u, &stay]).await;
    let g2 = create_group(backend, &src, "Two", &[&u]).await;
    let g3 = create_group(backend, &src, "Three", &[&stay]).await;
    backend
        .delete(&src, ResourceKind::User, &u.id, None)
        .await
        .unwrap_or_else(|e| panic!("delete failed: {e}"));
    let n1 = get(backend, &src, ResourceKind::Group, &g1.id).await;
    let n2 = get(backend, &src, ResourceKind::Group, &g2.id).await;
    let n3 = get(backend, &src, ResourceKind::Group, &g3.id).await;
    assert_eq!(values_of(&n1, "members"), vec![stay.id.clone()]);
    assert!(values_of(&n2, "members").is_empty());
    for (before, after) in [(&g1, &n1), (&g2, &n2)] {
        if backend.capabilities().etag {
            assert!(
                after.meta.version > before.meta.version,
                "a group that lost a member changes version"
            );
        }
        assert!(after.meta.last_modified >= before.meta.last_modified);
    }
    assert_eq!(n3, g3, "an unrelated group is untouched");
    let f = filter(
        ResourceKind::Group,
        &format!(r#"members.value eq "{}""#, u.id),
    );
    let page = run_query(
        backend,
        &src,
        ResourceKind::Group,
        Some(f),
        None,
        Page::Index {
            start_index: 1,
            count: 10,
        },
        Load::NONE,
    )
    .await;
    assert_eq!(page.total_results, 0);
}

/// Deleting a group removes it from the groups it was a member of and from its members' `groups`.
pub async fn deleting_a_group_removes_its_memberships(backend: &dyn Backend) {
    let src = source("delete_group_cascade");
    let u = create_user(backend, &src, "u@example.com").await;
    let inner = create_group(backend, &src, "Inner", &[&u]).await;
    let outer = create_group(backend, &src, "Outer", &[&inner, &u]).await;
    backend
        .delete(&src, ResourceKind::Group, &inner.id, None)
        .await
        .unwrap_or_else(|e| panic!("delete failed: {e}"));
    let o = get(backend, &src, ResourceKind::Group, &outer.id).await;
    assert_eq!(values_of(&o, "members"), vec![u.id.clone()]);
    if backend.capabilities().etag {
        assert!(o.meta.version > outer.meta.version);
    }
    let got = get(backend, &src, ResourceKind::User, &u.id).await;
    assert_eq!(values_of(&got, "groups"), vec![outer.id.clone()]);
}

/// Replacing a group without `members` leaves it with none, and its former members lose it from `groups`.
pub async fn replace_without_members_empties_the_group(backend: &dyn Backend) {
    let src = source("replace_no_members");
    let u = create_user(backend, &src, "u@example.com").await;
    let g = create_group(backend, &src, "G", &[&u]).await;
    let body = json!({"schemas": [GROUP], "displayName": "G"});
    let r = backend
        .replace(
            &src,
            ResourceKind::Group,
            &g.id,
            replace_attrs(&g, &body),
            None,
        )
        .await
        .unwrap_or_else(|e| panic!("replace failed: {e}"));
    assert!(!r.attrs.contains_key("members"), "{r:?}");
    let got = get(backend, &src, ResourceKind::User, &u.id).await;
    assert!(!got.attrs.contains_key("groups"), "{got:?}");
}

/// With `Load::NONE`, `members` and `groups` are absent (get, query, patch); with `Load::ALL` they are present; each flag loads only its relation.
pub async fn load_controls_relations(backend: &dyn Backend) {
    let src = source("load");
    let u = create_user(backend, &src, "u@example.com").await;
    let g = create_group(backend, &src, "G", &[&u]).await;
    let none = backend
        .get(&src, ResourceKind::Group, &g.id, Load::NONE)
        .await
        .unwrap_or_else(|e| panic!("get failed: {e}"));
    assert!(
        !none.attrs.contains_key("members"),
        "members not loaded: {none:?}"
    );
    assert_eq!(none.meta, g.meta);
    assert_eq!(str_attr(&none, "displayName"), Some("G"));
    let only_members = Load {
        members: true,
        groups: false,
    };
    let some = backend
        .get(&src, ResourceKind::Group, &g.id, only_members)
        .await
        .unwrap_or_else(|e| panic!("get failed: {e}"));
    assert_eq!(values_of(&some, "members"), vec![u.id.clone()]);
    let user = backend
        .get(&src, ResourceKind::User, &u.id, only_members)
        .await
        .unwrap_or_else(|e| panic!("get failed: {e}"));
    assert!(
        !user.attrs.contains_key("groups"),
        "groups not loaded: {user:?}"
    );
    let user = backend
        .get(&src, ResourceKind::User, &u.id, Load::ALL)
        .await
        .unwrap_or_else(|e| panic!("get failed: {e}"));
    assert_eq!(values_of(&user, "groups"), vec![g.id.clone()]);

    let page = run_query(
        backend,
        &src,
        ResourceKind::Group,
        None,
        None,
        Page::Index {
            start_index: 1,
            count: 10,
        },
        Load::NONE,
    )
    .await;
    assert_eq!(page.resources.len(), 1);
    assert!(!page.resources[0].attrs.contains_key("members"));
    let page = run_query(
        backend,
        &src,
        ResourceKind::User,
        None,
        None,
        Page::Index {
            start_index: 1,
            count: 10,
        },
        Load::NONE,
    )
    .await;
    assert!(!page.resources[0].attrs.contains_key("groups"));

    let p = patch(
        ResourceKind::Group,
        json!([{"op": "replace", "path": "displayName", "value": "H"}]),
    );
    let patched = backend
        .patch(&src, ResourceKind::Group, &g.id, &p, None, Load::NONE)
        .await
        .unwrap_or_else(|e| panic!("patch failed: {e}"));
    assert!(!patched.attrs.contains_key("members"));
    assert_eq!(str_attr(&patched, "displayName"), Some("H"));
    let full = get(backend, &src, ResourceKind::Group, &g.id).await;
    assert_eq!(
        values_of(&full, "members"),
        vec![u.id.clone()],
        "not loading members never drops them"
    );
}

/// Sources are isolated: a resource of one source cannot be read, listed, changed or deleted through another.
pub async fn sources_are_isolated(backend: &dyn Backend) {
    let a = source("isolation_a");
    let b = source("isolation_b");
    let u = create_user(backend, &a, "iso@example.com").await;
    let g = create_group(backend, &a, "Iso", &[&u]).await;
    create_user(backend, &b, "someone@example.com").await;
    let nf = BackendError::NotFound(u.id.clone());
    for (kind, id) in [(ResourceKind::User, &u.id), (ResourceKind::Group, &g.id)] {
        assert_err(backend.get(&b, kind, id, Load::ALL).await, &nf);
        assert_err(backend.delete(&b, kind, id, None).await, &nf);
    }
    let body = json!({"schemas": [USER], "userName": "iso@example.com", "title": "Intruder"});
    assert_err(
        backend
            .replace(
                &b,
                ResourceKind::User,
                &u.id,
                replace_attrs(&u, &body),
                None,
            )
            .await,
        &nf,
    );
    let p = patch(
        ResourceKind::User,
        json!([{"op": "replace", "path": "title", "value": "Intruder"}]),
    );
    assert_err(
        backend
            .patch(&b, ResourceKind::User, &u.id, &p, None, Load::ALL)
            .await,
        &nf,
    );
    let found = find(
        backend,
        &b,
        ResourceKind::User,
        Some(r#"userName eq "iso@example.com""#),
    )
    .await;
    assert_eq!(found.total_results, 0);
    let listed = find(backend, &b, ResourceKind::Group, None).await;
    assert_eq!(listed.total_results, 0);
    let still = get(backend, &a, ResourceKind::User, &u.id).await;
    assert_eq!(
        still.meta, u.meta,
        "the resource was not changed through another source"
    );
    assert_eq!(still.attrs.get("title"), u.attrs.get("title"));
    assert_eq!(get(backend, &a, ResourceKind::Group, &g.id).await, g);
    // A source nobody wrote to is empty, not an error.
    let empty = find(
        backend,
        &source("isolation_empty"),
        ResourceKind::User,
        None,
    )
    .await;
    assert_eq!(empty.total_results, 0);
}

fn sorted(v: Vec<&String>) -> Vec<String> {
    let mut v: Vec<String> = v.into_iter().cloned().collect();
    v.sort();
    v
}
