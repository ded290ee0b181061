//! `userName` uniqueness: per source, case-insensitive.

use crate::fixtures::*;
use scimd_core::schema::{ResourceKind, USER};
use scimd_core::{Backend, BackendError, Load};
use serde_json::json;

fn taken() -> BackendError {
    BackendError::Uniqueness("userName".into())
}

/// A second user with a taken userName, in any letter case, fails with uniqueness and is not stored.
pub async fn user_name_is_unique_case_insensitively(backend: &dyn Backend) {
    let src = source("user_name_unique");
    let first = create_user(backend, &src, "bjensen@example.com").await;
    for dup in ["bjensen@example.com", "BJensen@Example.COM"] {
        let r = backend
            .create(
                &src,
                ResourceKind::User,
                attrs(ResourceKind::User, &user_body(dup)),
            )
            .await;
        assert_err(r, &taken());
    }
    let all = find(backend, &src, ResourceKind::User, None).await;
    assert_eq!(ids(&all.resources), vec![first.id]);
}

/// userName comparison for uniqueness uses Unicode lower case, not only ASCII.
pub async fn user_name_uniqueness_is_unicode_aware(backend: &dyn Backend) {
    let src = source("user_name_unicode");
    create_user(backend, &src, "ÅSA.ÖBERG@example.com").await;
    let r = backend
        .create(
            &src,
            ResourceKind::User,
            attrs(ResourceKind::User, &user_body("åsa.öberg@EXAMPLE.com")),
        )
        .await;
    assert_err(r, &taken());
    // A different name that only shares the ASCII letters is not a duplicate.
    create_user(backend, &src, "asa.oberg@example.com").await;
}

/// The same userName in two sources is two independent users.
pub async fn same_user_name_in_two_sources_is_allowed(backend: &dyn Backend) {
    let a = source("same_name_a");
    let b = source("same_name_b");
    let ua = create_user(backend, &a, "shared@example.com").await;
    let ub = create_user(backend, &b, "SHARED@example.com").await;
    assert_eq!(get(backend, &a, ResourceKind::User, &ua.id).await, ua);
    assert_eq!(get(backend, &b, ResourceKind::User, &ub.id).await, ub);
}

/// Renaming a user (PUT or PATCH) to a userName another user has fails with uniqueness and changes nothing.
pub async fn rename_to_a_taken_user_name_fails(backend: &dyn Backend) {
    let src = source("rename_taken");
    create_user(backend, &src, "taken@example.com").await;
    let u = create_user(backend, &src, "free@example.com").await;

    let body = json!({"schemas": [USER], "userName": "TAKEN@example.com"});
    let r = backend
        .replace(
            &src,
            ResourceKind::User,
            &u.id,
            replace_attrs(&u, &body),
            None,
        )
        .await;
    assert_err(r, &taken());

    let p = patch(
        ResourceKind::User,
        json!([{"op": "replace", "path": "userName", "value": "Taken@Example.com"}]),
    );
    let r = backend
        .patch(&src, ResourceKind::User, &u.id, &p, None, Load::ALL)
        .await;
    assert_err(r, &taken());

    assert_eq!(get(backend, &src, ResourceKind::User, &u.id).await, u);
}

/// A renamed or deleted user's old userName is free again, and a user may change the letter case of its own userName.
pub async fn released_user_names_can_be_reused(backend: &dyn Backend) {
    let src = source("released_names");
    let u = create_user(backend, &src, "old@example.com").await;
    let p = patch(
        ResourceKind::User,
        json!([{"op": "replace", "path": "userName", "value": "new@example.com"}]),
    );
    backend
        .patch(&src, ResourceKind::User, &u.id, &p, None, Load::ALL)
        .await
        .unwrap_or_else(|e| panic!("rename failed: {e}"));
    let reuse = create_user(backend, &src, "old@example.com").await;

    let p = patch(
        ResourceKind::User,
        json!([{"op": "replace", "path": "userName", "value": "NEW@example.com"}]),
    );
    let recased = backend
        .patch(&src, ResourceKind::User, &u.id, &p, None, Load::ALL)
        .await
        .unwrap_or_else(|e| panic!("changing the case of one's own userName failed: {e}"));
    assert_eq!(str_attr(&recased, "userName"), Some("NEW@example.com"));

    backend
        .delete(&src, ResourceKind::User, &reuse.id, None)
        .await
        .unwrap_or_else(|e| panic!("delete failed: {e}"));
    create_user(backend, &src, "OLD@example.com").await;
    assert_err(
        backend
            .create(
                &src,
                ResourceKind::User,
                attrs(ResourceKind::User, &user_body("new@example.com")),
            )
            .await,
        &taken(),
    );
}
