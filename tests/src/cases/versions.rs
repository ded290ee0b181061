//! Versions: monotonic, compare-and-swap on `expected`.

use crate::fixtures::*;
use scimd_core::resource::Version;
use scimd_core::schema::{ResourceKind, USER};
use scimd_core::{Backend, BackendError, Load};
use serde_json::json;

/// A new resource has version 1, and every replace or changing patch increments it by one (with or without an expected version).
pub async fn versions_start_at_one_and_increment_per_change(backend: &dyn Backend) {
    if !has("versions", "etag", backend.capabilities().etag) {
        return;
    }
    let src = source("versions_increment");
    let u = create_user(backend, &src, "v@example.com").await;
    assert_eq!(u.meta.version, Version::FIRST);
    let mut current = u;
    for i in 0..3 {
        let body =
            json!({"schemas": [USER], "userName": "v@example.com", "title": format!("T{i}")});
        let expected = (i % 2 == 0).then_some(current.meta.version);
        let next = backend
            .replace(
                &src,
                ResourceKind::User,
                &current.id,
                replace_attrs(&current, &body),
                expected,
            )
            .await
            .unwrap_or_else(|e| panic!("replace failed: {e}"));
        assert_eq!(next.meta.version, current.meta.version.next());
        assert!(next.meta.last_modified >= current.meta.last_modified);
        current = next;
    }
    for (i, expected) in [Some(current.meta.version), None].into_iter().enumerate() {
        let p = patch(
            ResourceKind::User,
            json!([{"op": "replace", "path": "nickName", "value": format!("N{i}")}]),
        );
        let next = backend
            .patch(
                &src,
                ResourceKind::User,
                &current.id,
                &p,
                expected,
                Load::ALL,
            )
            .await
            .unwrap_or_else(|e| panic!("patch failed: {e}"));
        assert_eq!(next.meta.version, current.meta.version.next());
        current = next;
    }
    assert_eq!(current.meta.version, Version(6));
    assert_eq!(
        get(backend, &src, ResourceKind::User, &current.id).await,
        current
    );
}

/// A write with a stale expected version fails with version mismatch and changes nothing (replace, patch, delete).
pub async fn stale_expected_version_fails(backend: &dyn Backend) {
    if !has("stale_version", "etag", backend.capabilities().etag) {
        return;
    }
    let src = source("stale_version");
    let u = create_user(backend, &src, "stale@example.com").await;
    let p = patch(
        ResourceKind::User,
        json!([{"op": "replace", "path": "title", "value": "Now"}]),
    );
    let current = backend
        .patch(&src, ResourceKind::User, &u.id, &p, None, Load::ALL)
        .await
        .unwrap_or_else(|e| panic!("patch failed: {e}"));
    let stale = Some(u.meta.version);
    let future = Some(current.meta.version.next());
    for expected in [stale, future] {
        let body = json!({"schemas": [USER], "userName": "stale@example.com"});
        assert_err(
            backend
                .replace(
                    &src,
                    ResourceKind::User,
                    &u.id,
                    replace_attrs(&current, &body),
                    expected,
                )
                .await,
            &BackendError::VersionMismatch,
        );
        let p = patch(
            ResourceKind::User,
            json!([{"op": "replace", "path": "title", "value": "Stale"}]),
        );
        assert_err(
            backend
                .patch(&src, ResourceKind::User, &u.id, &p, expected, Load::ALL)
                .await,
            &BackendError::VersionMismatch,
        );
        assert_err(
            backend
                .delete(&src, ResourceKind::User, &u.id, expected)
                .await,
            &BackendError::VersionMismatch,
        );
    }
    assert_eq!(get(backend, &src, ResourceKind::User, &u.id).await, current);
    backend
        .delete(&src, ResourceKind::User, &u.id, Some(current.meta.version))
        .await
        .unwrap_or_else(|e| panic!("delete with the current version failed: {e}"));
}

/// A PATCH that changes nothing keeps the version and `lastModified`.
pub async fn unchanged_patch_keeps_the_version(backend: &dyn Backend) {
    let src = source("unchanged_patch");
    let u = create_user(backend, &src, "same@example.com").await;
    let p = patch(
        ResourceKind::User,
        json!([
            {"op": "replace", "path": "displayName", "value": "Barbara Jensen"},
            {"op": "replace", "path": "active", "value": true}
        ]),
    );
    let r = backend
        .patch(
            &src,
            ResourceKind::User,
            &u.id,
            &p,
            Some(u.meta.version),
            Load::ALL,
        )
        .await
        .unwrap_or_else(|e| panic!("patch failed: {e}"));
    assert_eq!(r, u, "an unchanged resource is returned as it was");
    assert_eq!(get(backend, &src, ResourceKind::User, &u.id).await, u);
}
