//! Latency figures against a throwaway slapd holding 10,000 users: a measurement, not a test.
//! Run with `cargo run --release -p scimd-backend-ldap --example bench`.

#[path = "../tests/common/mod.rs"]
mod common;

use common::Slapd;
use scimd_backend_ldap::LdapBackend;
use scimd_core::Backend;
use scimd_core::query::{Load, Page, Query};
use scimd_core::schema::{GROUP, ResourceKind, USER};
use scimd_testkit::fixtures::{attrs, filter, patch, registry};
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};

const USERS: usize = 10_000;
const SAMPLES: usize = 300;

fn summary(name: &str, mut d: Vec<Duration>) {
    d.sort();
    let ms = |x: Duration| x.as_secs_f64() * 1000.0;
    let mean = d.iter().map(|x| ms(*x)).sum::<f64>() / d.len() as f64;
    println!(
        "{name:<40} n={:<5} mean {:>7.2} ms  p50 {:>7.2} ms  p99 {:>7.2} ms",
        d.len(),
        mean,
        ms(d[d.len() / 2]),
        ms(d[(d.len() * 99 / 100).min(d.len() - 1)])
    );
}

async fn run(lossless: bool) {
    let s = Slapd::start();
    let mut config = s.config(lossless);
    config.operation_timeout_secs = 60;
    let b = Arc::new(LdapBackend::new(&config, registry()).expect("config"));
    let src = "bench";
    let started = Instant::now();
    let mut tasks = Vec::new();
    for t in 0..8 {
        let b = b.clone();
        tasks.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for i in (t..USERS).step_by(8) {
                let body = json!({"schemas": [USER], "userName": format!("user{i:05}@example.com"),
                    "name": {"givenName": "Given", "familyName": format!("Family{i}")},
                    "displayName": format!("User {i}"), "emails": [{"value": format!("user{i:05}@example.com"), "type": "work", "primary": true}],
                    "active": true});
                let r = b
                    .create(src, ResourceKind::User, attrs(ResourceKind::User, &body))
                    .await
                    .expect("create");
                ids.push((i, r.id));
            }
            ids
        }));
    }
    let mut ids = Vec::new();
    for t in tasks {
        ids.extend(t.await.expect("seed task"));
    }
    ids.sort();
    println!(
        "--- lossless={lossless}: seeded {USERS} users in {:.1} s ({:.2} ms per create, 8 concurrent)",
        started.elapsed().as_secs_f64(),
        started.elapsed().as_secs_f64() * 1000.0 * 8.0 / USERS as f64
    );
    let mut d = Vec::new();
    for k in 0..SAMPLES {
        let id = &ids[(k * 7919) % USERS].1;
        let t = Instant::now();
        b.get(src, ResourceKind::User, id, Load::NONE)
            .await
            .expect("get");
        d.push(t.elapsed());
    }
    summary("GET /Users/{id}", d);
    let mut d = Vec::new();
    for k in 0..SAMPLES {
        let i = (k * 7919) % USERS;
        let q = Query {
            filter: Some(filter(
                ResourceKind::User,
                &format!("userName eq \"USER{i:05}@example.com\""),
            )),
            sort: None,
            page: Page::Index {
                start_index: 1,
                count: 100,
            },
            load: Load::NONE,
        };
        let t = Instant::now();
        let page = b.query(src, ResourceKind::User, &q).await.expect("query");
        d.push(t.elapsed());
        assert_eq!(page.total_results, 1);
    }
    summary("GET /Users?filter=userName eq", d);
    for (name, sort) in [
        ("GET /Users?startIndex=5000&count=100", None),
        (
            "  ... &sortBy=name.familyName",
            Some(scimd_testkit::fixtures::sort(
                ResourceKind::User,
                "name.familyName",
                false,
            )),
        ),
    ] {
        let mut d = Vec::new();
        for _ in 0..20 {
            let q = Query {
                filter: None,
                sort: sort.clone(),
                page: Page::Index {
                    start_index: 5000,
                    count: 100,
                },
                load: Load::NONE,
            };
            let t = Instant::now();
            let page = b.query(src, ResourceKind::User, &q).await.expect("list");
            d.push(t.elapsed());
            assert_eq!(page.resources.len(), 100);
        }
        summary(name, d);
    }
    for (name, preload) in [
        ("PATCH add member (group of 0..300)", 0usize),
        ("PATCH add member (group of 10,000)", USERS - SAMPLES),
    ] {
        let g = b
            .create(
                src,
                ResourceKind::Group,
                attrs(
                    ResourceKind::Group,
                    &json!({"schemas": [GROUP], "displayName": format!("G{preload}")}),
                ),
            )
            .await
            .expect("group");
        // The big group is filled 250 members per PATCH: the memberof overlay updates every
        // added member's entry within the modify.
        for chunk in ids[..preload].chunks(250) {
            let members: Vec<_> = chunk.iter().map(|(_, id)| json!({"value": id})).collect();
            let p = patch(
                ResourceKind::Group,
                json!([{"op": "add", "path": "members", "value": members}]),
            );
            b.patch(src, ResourceKind::Group, &g.id, &p, None, Load::NONE)
                .await
                .expect("preload");
        }
        let mut d = Vec::new();
        for (_, id) in &ids[USERS - SAMPLES..] {
            let p = patch(
                ResourceKind::Group,
                json!([{"op": "add", "path": "members", "value": [{"value": id}]}]),
            );
            let t = Instant::now();
            b.patch(src, ResourceKind::Group, &g.id, &p, None, Load::NONE)
                .await
                .expect("patch");
            d.push(t.elapsed());
        }
        summary(name, d);
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    run(true).await;
    run(false).await;
}
