//! Latency figures of the SQL store at scale, printed rather than asserted: a measurement,
//! not a test. Run with `cargo run --release -p scimd-backend-sql --example perf`;
//! `SCIMD_PERF_USERS` sets the directory size (default 100,000), `SCIMD_PERF_DB=postgres`
//! measures PostgreSQL (a fresh database, found as the tests find theirs) instead of a SQLite
//! file.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/support/mod.rs"]
mod support;

use scimd_core::query::{CursorPosition, Page, Query};
use scimd_core::{Backend, Load, ResourceKind};
use scimd_testkit::fixtures::{attrs, filter, group_body, patch, user_body};
use serde_json::json;
use std::time::{Duration, Instant};

fn pct(mut v: Vec<Duration>, p: f64) -> Duration {
    v.sort();
    v[((v.len() as f64 - 1.0) * p) as usize]
}

fn report(what: &str, v: Vec<Duration>) {
    let n = v.len();
    let total: Duration = v.iter().sum();
    println!(
        "{what:<44} n={n:<6} p50={:>9.3?} p99={:>9.3?} {:>8.0}/s sequential",
        pct(v.clone(), 0.5),
        pct(v, 0.99),
        n as f64 / total.as_secs_f64()
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let n: usize = std::env::var("SCIMD_PERF_USERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100_000);
    let b = match std::env::var("SCIMD_PERF_DB").as_deref() {
        Ok("postgres") => support::postgres().await.expect("a PostgreSQL server"),
        _ => support::sqlite_file().await,
    };
    println!("{} store", b.dialect_name());
    let src = "perf";
    let t = Instant::now();
    let mut ids = Vec::with_capacity(n);
    let mut creates = Vec::with_capacity(n);
    for i in 0..n {
        let a = attrs(
            ResourceKind::User,
            &user_body(&format!("user{i}@example.com")),
        );
        let s = Instant::now();
        ids.push(b.create(src, ResourceKind::User, a).await.unwrap().id);
        creates.push(s.elapsed());
    }
    println!("seeded {n} users in {:.1?}", t.elapsed());
    if b.dialect_name() == "postgres" {
        // The statistics autovacuum gathers after a bulk load (a server with autovacuum off
        // never would), without which the planner cannot weigh the trigram index.
        let url = support::postgres_url().expect("the database of this process");
        let pool = sqlx::PgPool::connect(&url).await.unwrap();
        sqlx::query("ANALYZE").execute(&pool).await.unwrap();
        pool.close().await;
    }
    report("POST user (create)", creates);

    let mut v = Vec::new();
    for i in (0..n).step_by(n / 2000 + 1) {
        let s = Instant::now();
        b.get(src, ResourceKind::User, &ids[i], Load::ALL)
            .await
            .unwrap();
        v.push(s.elapsed());
    }
    report("GET by id", v);

    let mut v = Vec::new();
    for i in (0..n).step_by(n / 2000 + 1) {
        let q = Query {
            filter: Some(filter(
                ResourceKind::User,
                &format!("userName eq \"USER{i}@example.com\""),
            )),
            sort: None,
            page: Page::Index {
                start_index: 1,
                count: 100,
            },
            load: Load::ALL,
        };
        let s = Instant::now();
        let p = b.query(src, ResourceKind::User, &q).await.unwrap();
        v.push(s.elapsed());
        assert_eq!(p.resources.len(), 1);
    }
    report("filter userName eq", v);

    let mut v = Vec::new();
    for i in 0..50 {
        let q = Query {
            filter: Some(filter(
                ResourceKind::User,
                &format!("emails.value co \"r{i}@exa\""),
            )),
            sort: None,
            page: Page::Index {
                start_index: 1,
                count: 100,
            },
            load: Load::ALL,
        };
        let s = Instant::now();
        b.query(src, ResourceKind::User, &q).await.unwrap();
        v.push(s.elapsed());
    }
    report("filter emails.value co", v);

    // Substring filters: served by the trigram index from three characters on.
    let text = "emails.value co \"r4242@exa\"";
    let f = filter(ResourceKind::User, text);
    let analyze = b.dialect_name() == "postgres";
    match b.explain_filter(src, ResourceKind::User, &f, analyze).await {
        Ok(plan) => println!("plan of {text}:\n  {}", plan.replace('\n', "\n  ")),
        Err(e) => println!("plan of {text}: {e}"),
    }
    type Text = fn(usize) -> String;
    let substring: [(&str, Text); 5] = [
        ("filter emails.value co, 2 chars (10%)", |i| {
            format!("emails.value co \"{}@\"", i % 10)
        }),
        ("filter userName sw (1 match)", |i| {
            format!("userName sw \"user{i}@\"")
        }),
        ("filter emails[type eq work and value ew]", |i| {
            format!("emails[type eq \"work\" and value ew \"r{i}@example.com\"]")
        }),
        ("filter externalId co (a few matches)", |i| {
            format!("externalId co \"t-user{i}\"")
        }),
        ("filter name.familyName co (every user)", |_| {
            "name.familyName co \"jens\"".to_string()
        }),
    ];
    for (label, text) in substring {
        let mut v = Vec::new();
        for i in 0..50 {
            let q = Query {
                filter: Some(filter(ResourceKind::User, &text(i * 37 + 1))),
                sort: None,
                page: Page::Index {
                    start_index: 1,
                    count: 100,
                },
                load: Load::ALL,
            };
            let s = Instant::now();
            b.query(src, ResourceKind::User, &q).await.unwrap();
            v.push(s.elapsed());
        }
        report(label, v);
    }

    for (label, position) in [
        ("cursor page of 100, first", None),
        (
            "cursor page of 100, deep",
            Some(CursorPosition {
                key: serde_json::Value::Null,
                id: {
                    let mut s = ids.clone();
                    s.sort();
                    s[n * 9 / 10].clone()
                },
                backward: false,
            }),
        ),
    ] {
        let mut v = Vec::new();
        for _ in 0..50 {
            let q = Query {
                filter: None,
                sort: None,
                page: Page::Cursor {
                    position: position.clone(),
                    count: 100,
                },
                load: Load::ALL,
            };
            let s = Instant::now();
            b.query(src, ResourceKind::User, &q).await.unwrap();
            v.push(s.elapsed());
        }
        report(label, v);
    }

    let members = n.min(100_000);
    let t = Instant::now();
    let body = group_body("big", &[]);
    let g = b
        .create(src, ResourceKind::Group, attrs(ResourceKind::Group, &body))
        .await
        .unwrap();
    for chunk in ids[..members].chunks(1000) {
        let value: Vec<_> = chunk.iter().map(|id| json!({"value": id})).collect();
        let p = patch(
            ResourceKind::Group,
            json!([{"op": "add", "path": "members", "value": value}]),
        );
        b.patch(src, ResourceKind::Group, &g.id, &p, None, Load::NONE)
            .await
            .unwrap();
    }
    println!("group of {members} members built in {:.1?}", t.elapsed());
    let extra: Vec<String> = {
        let mut v = Vec::new();
        for i in 0..200 {
            let a = attrs(
                ResourceKind::User,
                &user_body(&format!("extra{i}@example.com")),
            );
            v.push(b.create(src, ResourceKind::User, a).await.unwrap().id);
        }
        v
    };
    let mut adds = Vec::new();
    let mut removes = Vec::new();
    for id in &extra {
        let p = patch(
            ResourceKind::Group,
            json!([{"op": "add", "path": "members", "value": [{"value": id}]}]),
        );
        let s = Instant::now();
        b.patch(src, ResourceKind::Group, &g.id, &p, None, Load::NONE)
            .await
            .unwrap();
        adds.push(s.elapsed());
        let p = patch(
            ResourceKind::Group,
            json!([{"op": "remove", "path": format!("members[value eq \"{id}\"]")}]),
        );
        let s = Instant::now();
        b.patch(src, ResourceKind::Group, &g.id, &p, None, Load::NONE)
            .await
            .unwrap();
        removes.push(s.elapsed());
    }
    report(
        &format!("PATCH add 1 member ({members}-member group)"),
        adds,
    );
    report(
        &format!("PATCH remove 1 member ({members}-member group)"),
        removes,
    );
}
