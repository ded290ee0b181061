//! The durable outbox of the SQL state store, on a SQLite file and on PostgreSQL: what a
//! delivery worker relies on (claims lease, failures retry or stay failed, delivery removes,
//! a restart sees everything not yet delivered), and staged writes: with a transactional
//! outbox a write's messages are stored if and only if the write commits.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod support;

use scimd_backend_sql::SqlBackend;
use scimd_core::backend::Staged;
use scimd_core::query::{Page, Query};
use scimd_core::schema::USER;
use scimd_core::state::{OutboxMessage, OutboxStats, StateStore};
use scimd_core::{Backend, BackendError, Load, Resource, ResourceKind, Version};
use scimd_testkit::fixtures::{attrs, filter, patch, replace_attrs, source, user_body};
use serde_json::json;
use std::sync::{Arc, Mutex};
use time::{Duration, OffsetDateTime};

on_both!(
    outbox_claims_due_messages_oldest_first_and_leases_them,
    outbox_failures_retry_or_stay_failed_and_delivery_removes,
    concurrent_claims_never_hand_out_a_message_twice,
    staged_writes_store_their_messages_with_the_write,
    failed_writes_store_no_message,
    a_message_that_cannot_be_stored_rolls_its_write_back,
    without_a_transactional_outbox_messages_come_back_pending,
);

fn stream(tag: &str) -> String {
    format!("{tag}-{:x}", rand::random::<u64>())
}

fn msg(id: &str, stream: &str, created: OffsetDateTime) -> OutboxMessage {
    OutboxMessage {
        id: format!("{stream}-{id}"),
        stream: stream.into(),
        payload: format!("eyJ.payload-{id}.sig"),
        created,
        attempts: 0,
        next_attempt: created,
        last_error: None,
    }
}

fn t0() -> OffsetDateTime {
    // Microsecond precision, as stored.
    OffsetDateTime::from_unix_timestamp(1_790_000_000).unwrap() + Duration::microseconds(123_456)
}

/// Due messages of one stream come oldest first; a claimed message is leased (not claimable
/// again until the lease runs out); pushing the same id twice stores it once.
async fn outbox_claims_due_messages_oldest_first_and_leases_them(b: Arc<SqlBackend>) {
    let s = stream("claim");
    let t = t0();
    b.outbox_push(&msg("b", &s, t + Duration::seconds(1)))
        .await
        .unwrap();
    b.outbox_push(&msg("a", &s, t)).await.unwrap();
    b.outbox_push(&msg("a", &s, t)).await.unwrap();
    b.outbox_push(&msg("x", &stream("other"), t)).await.unwrap();
    let lease = t + Duration::minutes(1);
    let got = b
        .outbox_claim(&s, t + Duration::seconds(5), lease, 10)
        .await
        .unwrap();
    assert_eq!(
        got.iter().map(|m| m.id.as_str()).collect::<Vec<_>>(),
        [format!("{s}-a"), format!("{s}-b")]
    );
    assert_eq!(got[0].payload, "eyJ.payload-a.sig");
    assert_eq!(got[0].created, t);
    assert!(got.iter().all(|m| m.next_attempt == lease));
    assert!(
        b.outbox_claim(&s, t + Duration::seconds(6), lease, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let again = b
        .outbox_claim(&s, lease, lease + Duration::minutes(1), 1)
        .await
        .unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(
        b.outbox_stats(&s).await.unwrap(),
        OutboxStats {
            pending: 2,
            failed: 0
        }
    );
}

/// A failed attempt is retried at its time with the error kept; a given-up message is never
/// claimed again but counted as failed; a delivered one is gone.
async fn outbox_failures_retry_or_stay_failed_and_delivery_removes(b: Arc<SqlBackend>) {
    let s = stream("fail");
    let t = t0();
    b.outbox_push(&msg("a", &s, t)).await.unwrap();
    b.outbox_push(&msg("b", &s, t)).await.unwrap();
    let a = format!("{s}-a");
    b.outbox_failed(
        &a,
        1,
        Some(t + Duration::seconds(30)),
        "receiver answered 503",
    )
    .await
    .unwrap();
    b.outbox_failed(&format!("{s}-b"), 4, None, "receiver rejected the SET")
        .await
        .unwrap();
    assert_eq!(
        b.outbox_stats(&s).await.unwrap(),
        OutboxStats {
            pending: 1,
            failed: 1
        }
    );
    assert!(
        b.outbox_claim(&s, t + Duration::seconds(29), t, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let due = b
        .outbox_claim(&s, t + Duration::seconds(30), t + Duration::hours(1), 10)
        .await
        .unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].attempts, 1);
    assert_eq!(due[0].last_error.as_deref(), Some("receiver answered 503"));
    b.outbox_delivered(&a).await.unwrap();
    assert_eq!(b.outbox_stats(&s).await.unwrap().pending, 0);
}

/// Replicas claiming one stream at once split its messages: none is handed out twice.
async fn concurrent_claims_never_hand_out_a_message_twice(b: Arc<SqlBackend>) {
    let s = stream("race");
    let t = t0();
    for i in 0..40 {
        b.outbox_push(&msg(&format!("{i:02}"), &s, t))
            .await
            .unwrap();
    }
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let b = b.clone();
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let got = b
                    .outbox_claim(&s, t + Duration::seconds(1), t + Duration::hours(1), 3)
                    .await
                    .unwrap();
                if got.is_empty() {
                    return mine;
                }
                mine.extend(got.into_iter().map(|m| m.id));
            }
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    all.sort();
    let n = all.len();
    all.dedup();
    assert_eq!((n, all.len()), (40, 40));
}

/// A stager that records the states it saw and builds one message per call, with ids
/// `<stream>-<n>` unless told to reuse an id.
struct Recorder {
    stream: String,
    seen: Mutex<Vec<Option<Resource>>>,
    reuse: Option<String>,
}

impl Recorder {
    fn new(stream: &str) -> Recorder {
        Recorder {
            stream: stream.into(),
            seen: Mutex::default(),
            reuse: None,
        }
    }

    /// Builds the messages of one write; also the stager handed to the backend.
    fn stage(&self, new: Option<&Resource>) -> Vec<OutboxMessage> {
        let mut seen = self.seen.lock().unwrap();
        seen.push(new.cloned());
        let fresh = msg(&format!("{}", seen.len()), &self.stream, t0());
        let mut out = vec![fresh.clone()];
        if let Some(id) = &self.reuse {
            out.push(OutboxMessage {
                id: id.clone(),
                ..fresh
            });
        }
        out
    }

    fn seen(&self) -> Vec<Option<Resource>> {
        self.seen.lock().unwrap().clone()
    }
}

async fn pending(b: &SqlBackend, stream: &str) -> Vec<String> {
    let got = b
        .outbox_claim(stream, t0() + Duration::hours(1), t0(), 100)
        .await
        .unwrap();
    got.into_iter().map(|m| m.id).collect()
}

async fn user_names(b: &SqlBackend, src: &str, name: &str) -> u64 {
    let q = Query {
        filter: Some(filter(
            ResourceKind::User,
            &format!("userName eq \"{name}\""),
        )),
        sort: None,
        page: Page::Index {
            start_index: 1,
            count: 10,
        },
        load: Load::NONE,
    };
    b.query(src, ResourceKind::User, &q)
        .await
        .unwrap()
        .total_results
}

/// With a transactional outbox, create, replace, patch and delete store the stager's
/// messages themselves (none come back pending); the stager sees the new state with its id and
/// version (`None` after a delete), and a patch that changes nothing stages nothing.
async fn staged_writes_store_their_messages_with_the_write(b: Arc<SqlBackend>) {
    b.set_transactional_outbox(true);
    let src = source("staged-writes");
    let s = stream("staged");
    let rec = Recorder::new(&s);
    let stager = |n: Option<&Resource>| rec.stage(n);
    let u = ResourceKind::User;

    let Staged {
        value: created,
        pending: p,
    } = b
        .create_staged(&src, u, attrs(u, &user_body("staged")), &stager)
        .await
        .unwrap();
    assert!(p.is_empty());
    assert_eq!(pending(&b, &s).await, [format!("{s}-1")]);

    let body = json!({"schemas": [USER], "userName": "staged", "title": "Boss"});
    let replaced = b
        .replace_staged(
            &src,
            u,
            &created.id,
            replace_attrs(&created, &body),
            Some(created.meta.version),
            &stager,
        )
        .await
        .unwrap();
    assert!(replaced.pending.is_empty());

    let title = patch(
        u,
        json!([{"op": "replace", "path": "title", "value": "Chief"}]),
    );
    let patched = b
        .patch_staged(
            &src,
            u,
            &created.id,
            &title,
            Some(Version(2)),
            Load::NONE,
            &stager,
        )
        .await
        .unwrap();
    assert!(patched.pending.is_empty());
    assert_eq!(patched.value.meta.version, Version(3));
    // The same patch again changes nothing: no new version, no message.
    let again = b
        .patch_staged(
            &src,
            u,
            &created.id,
            &title,
            Some(Version(3)),
            Load::NONE,
            &stager,
        )
        .await
        .unwrap();
    assert_eq!(again.value.meta.version, Version(3));

    let deleted = b
        .delete_staged(&src, u, &created.id, Some(Version(3)), &stager)
        .await
        .unwrap();
    assert!(deleted.pending.is_empty());

    let seen = rec.seen();
    let versions: Vec<_> = seen
        .iter()
        .map(|r| r.as_ref().map(|r| (r.id.clone(), r.meta.version)))
        .collect();
    let id = created.id.clone();
    assert_eq!(
        versions,
        [
            Some((id.clone(), Version(1))),
            Some((id.clone(), Version(2))),
            Some((id, Version(3))),
            None
        ]
    );
    // The patched state is whole (the stager needs it), whatever the caller loads.
    let third = seen[2].as_ref().unwrap();
    assert_eq!(third.attrs["title"], "Chief");
    assert_eq!(third.attrs["userName"], "staged");
    let mut ids = pending(&b, &s).await;
    ids.sort();
    assert_eq!(
        ids,
        [1, 2, 3, 4].map(|n| format!("{s}-{n}")),
        "one message per write, stored by the write"
    );
}

/// A write that fails — a stale version, a taken userName, a missing resource — calls no
/// stager and stores no message.
async fn failed_writes_store_no_message(b: Arc<SqlBackend>) {
    b.set_transactional_outbox(true);
    let src = source("failed-writes");
    let s = stream("failed");
    let rec = Recorder::new(&s);
    let stager = |n: Option<&Resource>| rec.stage(n);
    let u = ResourceKind::User;
    let user = b
        .create(&src, u, attrs(u, &user_body("taken")))
        .await
        .unwrap();

    let r = b
        .create_staged(&src, u, attrs(u, &user_body("TAKEN")), &stager)
        .await;
    assert!(matches!(r, Err(BackendError::Uniqueness(_))), "{r:?}");
    let r = b
        .replace_staged(
            &src,
            u,
            &user.id,
            replace_attrs(&user, &user_body("taken")),
            Some(Version(7)),
            &stager,
        )
        .await;
    assert_eq!(
        r.map(|s| s.value.meta.version),
        Err(BackendError::VersionMismatch)
    );
    let title = patch(u, json!([{"op": "add", "path": "title", "value": "x"}]));
    let r = b
        .patch_staged(
            &src,
            u,
            &user.id,
            &title,
            Some(Version(7)),
            Load::ALL,
            &stager,
        )
        .await;
    assert_eq!(
        r.map(|s| s.value.meta.version),
        Err(BackendError::VersionMismatch)
    );
    let r = b.delete_staged(&src, u, "no-such-id", None, &stager).await;
    assert!(matches!(r, Err(BackendError::NotFound(_))), "{r:?}");

    assert!(rec.seen().is_empty());
    assert!(pending(&b, &s).await.is_empty());
    assert_eq!(
        b.get(&src, u, &user.id, Load::NONE)
            .await
            .unwrap()
            .meta
            .version,
        Version(1)
    );
}

/// The message insert is part of the write's transaction: when it fails (here: an id the
/// outbox holds already), the resource write is rolled back with it — no user, no new
/// version, no deletion — and the write's other messages are not stored either.
async fn a_message_that_cannot_be_stored_rolls_its_write_back(b: Arc<SqlBackend>) {
    b.set_transactional_outbox(true);
    let src = source("rolled-back");
    let s = stream("rollback");
    let taken = format!("{s}-taken");
    b.outbox_push(&OutboxMessage {
        id: taken.clone(),
        ..msg("x", &s, t0())
    })
    .await
    .unwrap();
    let mut rec = Recorder::new(&s);
    rec.reuse = Some(taken.clone());
    let stager = |n: Option<&Resource>| rec.stage(n);
    let u = ResourceKind::User;

    let r = b
        .create_staged(&src, u, attrs(u, &user_body("ghost")), &stager)
        .await;
    assert!(matches!(r, Err(BackendError::Internal(_))), "{r:?}");
    assert_eq!(
        user_names(&b, &src, "ghost").await,
        0,
        "the create was rolled back"
    );

    let user = b
        .create(&src, u, attrs(u, &user_body("kept")))
        .await
        .unwrap();
    let body = json!({"schemas": [USER], "userName": "renamed"});
    let r = b
        .replace_staged(
            &src,
            u,
            &user.id,
            replace_attrs(&user, &body),
            Some(Version(1)),
            &stager,
        )
        .await;
    assert!(matches!(r, Err(BackendError::Internal(_))), "{r:?}");
    let title = patch(u, json!([{"op": "add", "path": "title", "value": "x"}]));
    let r = b
        .patch_staged(&src, u, &user.id, &title, None, Load::ALL, &stager)
        .await;
    assert!(matches!(r, Err(BackendError::Internal(_))), "{r:?}");
    let r = b.delete_staged(&src, u, &user.id, None, &stager).await;
    assert!(matches!(r, Err(BackendError::Internal(_))), "{r:?}");

    let now = b.get(&src, u, &user.id, Load::NONE).await.unwrap();
    assert_eq!(
        now.meta.version,
        Version(1),
        "replace and patch were rolled back"
    );
    assert_eq!(now.attrs["userName"], "kept");
    assert!(now.attrs.get("title").is_none());
    assert_eq!(rec.seen().len(), 4, "each write reached its outbox phase");
    assert_eq!(
        pending(&b, &s).await,
        [taken],
        "no message of a rolled-back write"
    );
}

/// Without a transactional outbox (the state store is another database) a staged write
/// stores nothing itself and hands its messages back to the caller.
async fn without_a_transactional_outbox_messages_come_back_pending(b: Arc<SqlBackend>) {
    assert!(
        !b.transactional_outbox(),
        "off unless the server turns it on"
    );
    let src = source("not-transactional");
    let s = stream("pending");
    let rec = Recorder::new(&s);
    let stager = |n: Option<&Resource>| rec.stage(n);
    let u = ResourceKind::User;
    let created = b
        .create_staged(&src, u, attrs(u, &user_body("elsewhere")), &stager)
        .await
        .unwrap();
    assert_eq!(
        created
            .pending
            .iter()
            .map(|m| m.id.as_str())
            .collect::<Vec<_>>(),
        [format!("{s}-1")]
    );
    let deleted = b
        .delete_staged(&src, u, &created.value.id, None, &stager)
        .await
        .unwrap();
    assert_eq!(deleted.pending.len(), 1);
    assert!(pending(&b, &s).await.is_empty());
}
