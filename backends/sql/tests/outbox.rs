//! The durable outbox of the SQL state store, on a SQLite file and on PostgreSQL: what a
//! delivery worker relies on (claims lease, failures retry or stay failed, delivery removes,
//! a restart sees everything not yet delivered).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use scimd_backend_sql::SqlBackend;
use scimd_core::state::{OutboxMessage, OutboxStats, StateStore};
use std::sync::Arc;
use time::{Duration, OffsetDateTime};

macro_rules! on_both {
    ($($rule:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $rule() {
                    super::$rule(Arc::new(super::support::sqlite_file().await)).await;
                }
            )*
            use std::sync::Arc;
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $rule() {
                    let Some(b) = super::support::postgres().await else {
                        eprintln!("skipped {}: no PostgreSQL", stringify!($rule));
                        return;
                    };
                    super::$rule(Arc::new(b)).await;
                }
            )*
            use std::sync::Arc;
        }
    };
}

on_both!(
    outbox_claims_due_messages_oldest_first_and_leases_them,
    outbox_failures_retry_or_stay_failed_and_delivery_removes,
    concurrent_claims_never_hand_out_a_message_twice,
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
