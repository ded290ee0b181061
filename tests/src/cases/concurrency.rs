//! Concurrent writers: no lost members, no lost updates, one winner per version.
//!
//! These cases take an `Arc<dyn Backend>` because they spawn tasks; run them on a
//! multi-threaded runtime so that the tasks really run in parallel.

use crate::fixtures::*;
use scimd_core::resource::{Resource, Version};
use scimd_core::schema::{ResourceKind, USER};
use scimd_core::{Backend, BackendError, Load};
use serde_json::json;
use std::collections::BTreeSet;
use std::future::Future;
use std::sync::Arc;
use tokio::sync::Barrier;

const TASKS: usize = 5;
const PER_TASK: usize = 200;

/// Runs `task(0)` … `task(n - 1)` on `n` spawned tasks that start together (behind one
/// barrier) and returns their results in order; a task that panics fails the case.
async fn together<T, F>(n: usize, task: impl Fn(usize) -> F) -> Vec<T>
where
    F: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let barrier = Arc::new(Barrier::new(n));
    let handles: Vec<_> = (0..n)
        .map(|i| {
            let barrier = barrier.clone();
            let work = task(i);
            tokio::spawn(async move {
                barrier.wait().await;
                work.await
            })
        })
        .collect();
    let mut results = Vec::with_capacity(n);
    for h in handles {
        results.push(h.await.unwrap_or_else(|e| panic!("task failed: {e}")));
    }
    results
}

/// Five concurrent tasks each adding 200 distinct members to one group by single-member PATCH (no If-Match) lose nothing: all 1000 are present, then concurrent removals of half leave exactly the other half.
pub async fn concurrent_member_patches_lose_nothing(backend: Arc<dyn Backend>) {
    let src = source("concurrent_members");
    let b: &dyn Backend = &*backend;
    let g = create_group(b, &src, "Crowd", &[]).await;
    let mut users: Vec<Resource> = Vec::with_capacity(TASKS * PER_TASK);
    for i in 0..TASKS * PER_TASK {
        users.push(create_user(b, &src, &format!("crowd{i:04}@example.com")).await);
    }
    together(TASKS, |t| {
        let backend = backend.clone();
        let src = src.clone();
        let gid = g.id.clone();
        let ids: Vec<String> = users[t * PER_TASK..(t + 1) * PER_TASK]
            .iter()
            .map(|u| u.id.clone())
            .collect();
        async move {
            for id in ids {
                let p = patch(
                    ResourceKind::Group,
                    json!([{"op": "add", "path": "members", "value": [{"value": id, "type": "User"}]}]),
                );
                backend
                    .patch(&src, ResourceKind::Group, &gid, &p, None, Load::NONE)
                    .await
                    .unwrap_or_else(|e| panic!("member add failed: {e}"));
            }
        }
    })
    .await;
    let full = get(b, &src, ResourceKind::Group, &g.id).await;
    let present: BTreeSet<String> = values_of(&full, "members").into_iter().collect();
    let all: BTreeSet<String> = users.iter().map(|u| u.id.clone()).collect();
    assert_eq!(
        present.len(),
        TASKS * PER_TASK,
        "every added member is present"
    );
    assert_eq!(present, all);
    if backend.capabilities().etag {
        assert_eq!(
            full.meta.version,
            Version(1 + (TASKS * PER_TASK) as u64),
            "each member add is exactly one new version"
        );
    }

    // Each task now removes the first half of its members.
    together(TASKS, |t| {
        let backend = backend.clone();
        let src = src.clone();
        let gid = g.id.clone();
        let ids: Vec<String> = users[t * PER_TASK..t * PER_TASK + PER_TASK / 2]
            .iter()
            .map(|u| u.id.clone())
            .collect();
        async move {
            for id in ids {
                let p = patch(
                    ResourceKind::Group,
                    json!([{"op": "remove", "path": format!("members[value eq \"{id}\"]")}]),
                );
                backend
                    .patch(&src, ResourceKind::Group, &gid, &p, None, Load::NONE)
                    .await
                    .unwrap_or_else(|e| panic!("member remove failed: {e}"));
            }
        }
    })
    .await;
    let full = get(b, &src, ResourceKind::Group, &g.id).await;
    let present: BTreeSet<String> = values_of(&full, "members").into_iter().collect();
    let kept: BTreeSet<String> = (0..TASKS)
        .flat_map(|t| users[t * PER_TASK + PER_TASK / 2..(t + 1) * PER_TASK].iter())
        .map(|u| u.id.clone())
        .collect();
    assert_eq!(present, kept, "exactly the members not removed remain");
    let sample = get(b, &src, ResourceKind::User, &users[PER_TASK - 1].id).await;
    assert_eq!(values_of(&sample, "groups"), vec![g.id.clone()]);
    let removed = get(b, &src, ResourceKind::User, &users[0].id).await;
    assert!(values_of(&removed, "groups").is_empty());
}

/// Concurrent replaces that all expect the same version have exactly one winner; the others fail with version mismatch.
pub async fn concurrent_replaces_have_one_winner_per_version(backend: Arc<dyn Backend>) {
    if !has("concurrent_replaces", "etag", backend.capabilities().etag) {
        return;
    }
    const WRITERS: usize = 6;
    const ROUNDS: u64 = 5;
    let src = source("concurrent_replaces");
    let u = create_user(&*backend, &src, "race@example.com").await;
    for round in 0..ROUNDS {
        let current = get(&*backend, &src, ResourceKind::User, &u.id).await;
        assert_eq!(current.meta.version, Version(1 + round));
        let results = together(WRITERS, |w| {
            let backend = backend.clone();
            let src = src.clone();
            let body = json!({"schemas": [USER], "userName": "race@example.com", "title": format!("round {round} writer {w}")});
            let attrs = replace_attrs(&current, &body);
            let (id, version) = (current.id.clone(), current.meta.version);
            async move {
                backend
                    .replace(&src, ResourceKind::User, &id, attrs, Some(version))
                    .await
            }
        })
        .await;
        let mut winners = Vec::new();
        for (w, result) in results.into_iter().enumerate() {
            match result {
                Ok(r) => winners.push((w, r)),
                Err(BackendError::VersionMismatch) => {}
                Err(e) => panic!("unexpected error: {e}"),
            }
        }
        assert_eq!(winners.len(), 1, "exactly one writer wins round {round}");
        let (w, won) = &winners[0];
        assert_eq!(won.meta.version, Version(2 + round));
        let stored = get(&*backend, &src, ResourceKind::User, &u.id).await;
        assert_eq!(
            str_attr(&stored, "title"),
            Some(format!("round {round} writer {w}").as_str()),
            "the stored state is the winner's"
        );
    }
}

/// Concurrent creates of one userName (in different letter cases) admit exactly one; the others fail with uniqueness.
pub async fn concurrent_creates_admit_one_user_name(backend: Arc<dyn Backend>) {
    const WRITERS: usize = 6;
    let src = source("concurrent_creates");
    let results = together(WRITERS, |w| {
        let backend = backend.clone();
        let src = src.clone();
        let name = if w % 2 == 0 {
            "Twin@Example.com"
        } else {
            "twin@example.com"
        };
        let attrs = attrs(ResourceKind::User, &user_body(name));
        async move { backend.create(&src, ResourceKind::User, attrs).await }
    })
    .await;
    let mut created = 0;
    for result in results {
        match result {
            Ok(_) => created += 1,
            Err(BackendError::Uniqueness(a)) => assert_eq!(a, "userName"),
            Err(e) => panic!("unexpected error: {e}"),
        }
    }
    assert_eq!(created, 1);
    assert_eq!(
        find(&*backend, &src, ResourceKind::User, None)
            .await
            .total_results,
        1
    );
}

/// Concurrent PATCHes of one user without If-Match are all applied: no update is lost and each is one version.
pub async fn concurrent_patches_lose_no_update(backend: Arc<dyn Backend>) {
    const WRITERS: usize = 4;
    const EACH: usize = 10;
    let src = source("concurrent_patches");
    let u = create_user(&*backend, &src, "busy@example.com").await;
    together(WRITERS, |w| {
        let backend = backend.clone();
        let src = src.clone();
        let id = u.id.clone();
        async move {
            for i in 0..EACH {
                let p = patch(
                    ResourceKind::User,
                    json!([{"op": "add", "path": "emails", "value": [{"value": format!("w{w}.{i}@example.com"), "type": "other"}]}]),
                );
                backend
                    .patch(&src, ResourceKind::User, &id, &p, None, Load::NONE)
                    .await
                    .unwrap_or_else(|e| panic!("patch failed: {e}"));
            }
        }
    })
    .await;
    let got = get(&*backend, &src, ResourceKind::User, &u.id).await;
    let emails: BTreeSet<String> = values_of(&got, "emails").into_iter().collect();
    for w in 0..WRITERS {
        for i in 0..EACH {
            assert!(
                emails.contains(&format!("w{w}.{i}@example.com")),
                "email w{w}.{i} was lost"
            );
        }
    }
    assert_eq!(emails.len(), 2 + WRITERS * EACH);
    if backend.capabilities().etag {
        assert_eq!(got.meta.version, Version(1 + (WRITERS * EACH) as u64));
    }
}
