//! Create, read, replace, patch and delete.

use crate::fixtures::*;
use scimd_core::resource::Version;
use scimd_core::schema::{ENTERPRISE_USER, GROUP, ResourceKind, USER};
use scimd_core::{Backend, BackendError, Imported, Load};
use serde_json::json;

/// Create returns a new id, version 1, `created` = `lastModified`, and the attributes as sent; get returns the same resource.
pub async fn create_stores_the_resource_as_sent(backend: &dyn Backend) {
    let src = source("create_stores");
    let body = user_body("bjensen@example.com");
    let sent = attrs(ResourceKind::User, &body);
    let created = backend
        .create(&src, ResourceKind::User, sent.clone())
        .await
        .unwrap_or_else(|e| panic!("create failed: {e}"));
    assert!(!created.id.is_empty(), "an id is assigned");
    assert_eq!(created.kind, ResourceKind::User);
    assert_version(
        backend,
        created.meta.version,
        Version::FIRST,
        "of a new user",
    );
    assert_eq!(created.meta.created, created.meta.last_modified);
    assert_eq!(
        created.attrs, sent,
        "the stored attributes are the ones sent"
    );

    let got = get(backend, &src, ResourceKind::User, &created.id).await;
    assert_eq!(got, created, "get returns exactly what create returned");

    let other = create_user(backend, &src, "other@example.com").await;
    assert_ne!(other.id, created.id, "ids are unique");
}

/// A group is created with its display name and members, and reads back the same.
pub async fn create_group_stores_display_name_and_members(backend: &dyn Backend) {
    let src = source("create_group");
    let u = create_user(backend, &src, "member@example.com").await;
    let g = create_group(backend, &src, "Engineering", &[&u]).await;
    assert_version(backend, g.meta.version, Version::FIRST, "of a new group");
    assert_eq!(str_attr(&g, "displayName"), Some("Engineering"));
    assert_eq!(values_of(&g, "members"), vec![u.id.clone()]);
    let got = get(backend, &src, ResourceKind::Group, &g.id).await;
    assert_eq!(got, g);
}

/// Reading, replacing, patching or deleting an id that does not exist (or is of the other resource type) fails with not found.
pub async fn unknown_ids_are_not_found(backend: &dyn Backend) {
    let src = source("unknown_ids");
    let u = create_user(backend, &src, "known@example.com").await;
    let missing = "2819c223-7f76-453a-919d-413861904646";
    let nf = BackendError::NotFound(missing.into());
    for kind in ResourceKind::ALL {
        assert_err(backend.get(&src, kind, missing, Load::ALL).await, &nf);
        assert_err(backend.delete(&src, kind, missing, None).await, &nf);
    }
    let body = attrs(ResourceKind::User, &user_body("x@example.com"));
    assert_err(
        backend
            .replace(&src, ResourceKind::User, missing, body, None)
            .await,
        &nf,
    );
    let p = patch(
        ResourceKind::User,
        json!([{"op": "replace", "path": "displayName", "value": "X"}]),
    );
    assert_err(
        backend
            .patch(&src, ResourceKind::User, missing, &p, None, Load::ALL)
            .await,
        &nf,
    );
    // A user id is not a group id.
    assert_err(
        backend
            .get(&src, ResourceKind::Group, &u.id, Load::ALL)
            .await,
        &nf,
    );
    assert_err(
        backend.delete(&src, ResourceKind::Group, &u.id, None).await,
        &nf,
    );
    get(backend, &src, ResourceKind::User, &u.id).await;
}

/// Replace stores exactly the new attributes: omitted ones are gone, `created` is kept, the version increments.
pub async fn replace_overwrites_every_attribute(backend: &dyn Backend) {
    let src = source("replace_overwrites");
    let old = create_user(backend, &src, "bjensen@example.com").await;
    let body = json!({
        "schemas": [USER],
        "userName": "bjensen@example.com",
        "name": {"givenName": "Babs"},
        "active": false,
        "title": "Tour Guide"
    });
    let new_attrs = replace_attrs(&old, &body);
    let replaced = backend
        .replace(&src, ResourceKind::User, &old.id, new_attrs.clone(), None)
        .await
        .unwrap_or_else(|e| panic!("replace failed: {e}"));
    assert_eq!(replaced.id, old.id);
    assert_eq!(replaced.attrs, new_attrs);
    assert_version(
        backend,
        replaced.meta.version,
        old.meta.version.next(),
        "after a replace",
    );
    assert_eq!(replaced.meta.created, old.meta.created);
    assert!(replaced.meta.last_modified >= old.meta.last_modified);
    let got = get(backend, &src, ResourceKind::User, &old.id).await;
    assert_eq!(got, replaced);
    assert!(
        !got.attrs.contains_key("emails"),
        "omitted attributes are removed"
    );
    assert!(
        !got.attrs.contains_key(ENTERPRISE_USER),
        "omitted extensions are removed"
    );
}

/// PATCH changes the targeted attributes, keeps all others and increments the version.
pub async fn patch_changes_only_the_targeted_attributes(backend: &dyn Backend) {
    let src = source("patch_changes");
    let old = create_user(backend, &src, "bjensen@example.com").await;
    let p = patch(
        ResourceKind::User,
        json!([
            {"op": "replace", "path": "displayName", "value": "Babs Jensen"},
            {"op": "add", "path": "emails", "value": [{"value": "babs@work.example.com", "type": "other"}]},
            {"op": "replace", "path": format!("{ENTERPRISE_USER}:department"), "value": "Tour Operations"},
            {"op": "remove", "path": "name.formatted"}
        ]),
    );
    let patched = backend
        .patch(&src, ResourceKind::User, &old.id, &p, None, Load::ALL)
        .await
        .unwrap_or_else(|e| panic!("patch failed: {e}"));
    assert_version(
        backend,
        patched.meta.version,
        old.meta.version.next(),
        "after a patch",
    );
    assert_eq!(str_attr(&patched, "displayName"), Some("Babs Jensen"));
    assert_eq!(
        sorted_values_of(&patched, "emails"),
        vec![
            "babs@work.example.com",
            "bjensen@example.com",
            "bjensen@home.example.org",
        ],
        "the added email joins the existing ones (multi-valued attributes are unordered)"
    );
    assert_eq!(
        patched.attrs[ENTERPRISE_USER]["department"],
        json!("Tour Operations")
    );
    assert_eq!(
        patched.attrs[ENTERPRISE_USER]["employeeNumber"],
        old.attrs[ENTERPRISE_USER]["employeeNumber"]
    );
    assert_eq!(patched.attrs["name"].get("formatted"), None);
    assert_eq!(patched.attrs["name"]["givenName"], json!("Barbara"));
    for untouched in ["userName", "externalId", "active"] {
        assert_eq!(
            patched.attrs.get(untouched),
            old.attrs.get(untouched),
            "{untouched}"
        );
    }
    let got = get(backend, &src, ResourceKind::User, &old.id).await;
    assert_eq!(got, patched, "the returned state is the stored state");
}

/// A PATCH that fails (here: `replace` on a value filter matching nothing) changes nothing.
pub async fn failed_patch_changes_nothing(backend: &dyn Backend) {
    let src = source("failed_patch");
    let old = create_user(backend, &src, "bjensen@example.com").await;
    let p = patch(
        ResourceKind::User,
        json!([
            {"op": "replace", "path": "displayName", "value": "Changed"},
            {"op": "replace", "path": "emails[type eq \"fax\"].value", "value": "x@example.com"}
        ]),
    );
    let r = backend
        .patch(&src, ResourceKind::User, &old.id, &p, None, Load::ALL)
        .await;
    assert!(r.is_err(), "a patch with a failing operation fails: {r:?}");
    let got = get(backend, &src, ResourceKind::User, &old.id).await;
    assert_eq!(got, old, "no operation of a failed patch is applied");
}

/// A deleted resource is gone: get, query and a second delete do not find it; other resources stay.
pub async fn delete_removes_the_resource(backend: &dyn Backend) {
    let src = source("delete_removes");
    let a = create_user(backend, &src, "a@example.com").await;
    let b = create_user(backend, &src, "b@example.com").await;
    let g = create_group(backend, &src, "Doomed", &[]).await;
    backend
        .delete(&src, ResourceKind::User, &a.id, None)
        .await
        .unwrap_or_else(|e| panic!("delete failed: {e}"));
    backend
        .delete(&src, ResourceKind::Group, &g.id, None)
        .await
        .unwrap_or_else(|e| panic!("delete failed: {e}"));
    let nf = BackendError::NotFound(a.id.clone());
    assert_err(
        backend
            .get(&src, ResourceKind::User, &a.id, Load::ALL)
            .await,
        &nf,
    );
    assert_err(
        backend.delete(&src, ResourceKind::User, &a.id, None).await,
        &nf,
    );
    assert_err(
        backend
            .get(&src, ResourceKind::Group, &g.id, Load::ALL)
            .await,
        &nf,
    );
    let all = find(backend, &src, ResourceKind::User, None).await;
    assert_eq!(ids(&all.resources), vec![b.id.clone()]);
    assert_eq!(all.total_results, 1);
    let groups = find(backend, &src, ResourceKind::Group, None).await;
    assert_eq!(groups.total_results, 0);
    assert!(groups.resources.is_empty());
}

/// Replacing a group renames it and keeps the members given in the new body.
pub async fn replace_group_stores_the_new_state(backend: &dyn Backend) {
    let src = source("replace_group");
    let a = create_user(backend, &src, "a@example.com").await;
    let b = create_user(backend, &src, "b@example.com").await;
    let g = create_group(backend, &src, "Old", &[&a]).await;
    let body = json!({
        "schemas": [GROUP],
        "displayName": "New",
        "externalId": "grp-1",
        "members": [{"value": b.id}, {"value": a.id}]
    });
    let new_attrs = replace_attrs(&g, &body);
    let replaced = backend
        .replace(
            &src,
            ResourceKind::Group,
            &g.id,
            new_attrs,
            backend.capabilities().etag.then_some(g.meta.version),
        )
        .await
        .unwrap_or_else(|e| panic!("replace failed: {e}"));
    assert_eq!(str_attr(&replaced, "displayName"), Some("New"));
    assert_eq!(str_attr(&replaced, "externalId"), Some("grp-1"));
    assert_eq!(
        sorted_values_of(&replaced, "members"),
        sorted(vec![a.id.clone(), b.id.clone()])
    );
    assert_version(
        backend,
        replaced.meta.version,
        g.meta.version.next(),
        "after a replace",
    );
    assert_eq!(
        get(backend, &src, ResourceKind::Group, &g.id).await,
        replaced
    );
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

/// Import stores a batch under the ids it brings (new ones when missing), all or none: a taken id or userName, or a missing member, fails the whole batch. Backends that cannot keep given ids report Unsupported.
pub async fn import_keeps_ids_all_or_none(backend: &dyn Backend) {
    let src = source("import");
    let user = |id: Option<&str>, name: &str| Imported {
        id: id.map(str::to_string),
        attrs: attrs(ResourceKind::User, &user_body(name)),
    };
    let group = |id: &str, members: &[&str]| {
        let members: Vec<_> = members.iter().map(|m| json!({"value": m})).collect();
        Imported {
            id: Some(id.to_string()),
            attrs: attrs(
                ResourceKind::Group,
                &json!({"schemas": [GROUP], "displayName": id, "members": members}),
            ),
        }
    };
    let batch = vec![
        user(Some("imported-1"), "ada@example.com"),
        user(None, "bob@example.com"),
    ];
    match backend.import(&src, ResourceKind::User, batch).await {
        Err(BackendError::Unsupported(_)) => return,
        r => r.unwrap_or_else(|e| panic!("import failed: {e}")),
    }
    let ada = get(backend, &src, ResourceKind::User, "imported-1").await;
    assert_eq!(ada.attrs["userName"], "ada@example.com");
    assert_version(
        backend,
        ada.meta.version,
        Version::FIRST,
        "an imported user",
    );
    assert_eq!(
        find(backend, &src, ResourceKind::User, None)
            .await
            .total_results,
        2
    );

    let taken_id = vec![
        user(Some("imported-3"), "cy@example.com"),
        user(Some("imported-1"), "dee@example.com"),
    ];
    let r = backend.import(&src, ResourceKind::User, taken_id).await;
    assert!(matches!(r, Err(BackendError::Uniqueness(_))), "{r:?}");
    let taken_name = vec![
        user(Some("imported-4"), "eve@example.com"),
        user(Some("imported-5"), "ADA@example.com"),
    ];
    let r = backend.import(&src, ResourceKind::User, taken_name).await;
    assert!(matches!(r, Err(BackendError::Uniqueness(_))), "{r:?}");
    let missing_member = vec![
        group("staff", &["imported-1"]),
        group("ghosts", &["nobody"]),
    ];
    let r = backend
        .import(&src, ResourceKind::Group, missing_member)
        .await;
    assert!(matches!(r, Err(BackendError::InvalidReference(_))), "{r:?}");
    assert_eq!(
        find(backend, &src, ResourceKind::User, None)
            .await
            .total_results,
        2
    );
    assert_eq!(
        find(backend, &src, ResourceKind::Group, None)
            .await
            .total_results,
        0
    );

    let groups = vec![group("staff", &["imported-1"])];
    backend
        .import(&src, ResourceKind::Group, groups)
        .await
        .unwrap_or_else(|e| panic!("import failed: {e}"));
    let ada = get(backend, &src, ResourceKind::User, "imported-1").await;
    assert_eq!(ada.attrs["groups"][0]["value"], "staff");
}
