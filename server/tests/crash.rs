//! `kill -9` of `scimd serve` on its SQLite default while creates stream in: after a restart
//! on the same directory, every create that was acknowledged is there.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support_scimd;

use reqwest::Method;
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;
use support_scimd::{Api, Scimd, TempDir, USER};

/// Concurrent clients streaming creates.
const CLIENTS: usize = 4;
/// Acknowledged creates before the kill.
const ACKS_BEFORE_KILL: usize = 300;

/// Four clients POST users as fast as the server acknowledges them; after 300 201s the
/// process is killed with SIGKILL while requests are in flight. Restarted on the same
/// directory, it prints no new token, the old token still works, every acknowledged user is
/// there under its id with its userName, and writes work again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_create_survives_kill_9_of_the_sqlite_default() {
    let run = async {
        let dir = TempDir::new("scimd-crash");
        let mut first = Scimd::serve(dir.path(), None);
        let token = first
            .token()
            .expect("a first start on an empty directory prints a token")
            .to_string();
        let api = Api::new(first.base(), &token);

        let acked = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let mut clients = Vec::new();
        for c in 0..CLIENTS {
            let api = api.clone();
            let acked = acked.clone();
            let stop = stop.clone();
            clients.push(tokio::spawn(async move {
                // userName → id of every 201 this client received.
                let mut mine = BTreeMap::new();
                let mut i = 0usize;
                while !stop.load(Ordering::Relaxed) {
                    i += 1;
                    let user_name = format!("crash-{c}-{i}");
                    let body = json!({"schemas": [USER], "userName": user_name});
                    match api
                        .try_send(Method::POST, "/Users", Some(&body), None)
                        .await
                    {
                        Ok(r) => {
                            assert_eq!(r.status, 201, "{}", r.body);
                            assert_eq!(r.body["userName"], json!(user_name));
                            mine.insert(user_name, r.body["id"].as_str().unwrap().to_string());
                            acked.fetch_add(1, Ordering::Relaxed);
                        }
                        // The server is gone: whatever was in flight was never acknowledged.
                        Err(_) => break,
                    }
                }
                mine
            }));
        }
        while acked.load(Ordering::Relaxed) < ACKS_BEFORE_KILL {
            assert!(
                clients.iter().any(|c| !c.is_finished()),
                "every client stopped before the kill"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        first.kill();
        stop.store(true, Ordering::Relaxed);
        let mut acknowledged = BTreeMap::new();
        for c in clients {
            acknowledged.extend(c.await.unwrap());
        }
        assert!(acknowledged.len() >= ACKS_BEFORE_KILL);

        let again = Scimd::serve(dir.path(), None);
        assert_eq!(again.token(), None, "a restart must not print a new token");
        let api = Api::new(again.base(), &token);
        for (user_name, id) in &acknowledged {
            let r = api.get(&format!("/Users/{id}")).await;
            assert_eq!(
                r.status, 200,
                "acknowledged user {user_name} ({id}) is gone after kill -9: {}",
                r.body
            );
            assert_eq!(r.body["userName"], json!(user_name));
        }
        // Every stored user is one of the creates sent, each once: at most the requests in
        // flight at the kill may have committed without their answer arriving.
        let mut stored = BTreeSet::new();
        let mut start = 1;
        let mut total = None;
        loop {
            let page = api
                .get(&format!(
                    "/Users?startIndex={start}&count=500&attributes=userName"
                ))
                .await;
            assert_eq!(page.status, 200, "{}", page.body);
            // The total of an unfiltered list is a kept count: it must have committed
            // with the rows it counts.
            let t = page.body["totalResults"].as_u64().unwrap();
            assert_eq!(
                *total.get_or_insert(t),
                t,
                "the total changed between pages"
            );
            let resources = page.body["Resources"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            for u in &resources {
                assert!(
                    stored.insert(u["userName"].as_str().unwrap().to_string()),
                    "a user is listed twice: {u}"
                );
            }
            start += resources.len();
            if resources.is_empty() || start > t as usize {
                break;
            }
        }
        assert_eq!(
            total,
            Some(stored.len() as u64),
            "totalResults disagrees with the users listed"
        );
        assert!(stored.len() >= acknowledged.len());
        assert!(
            stored.len() <= acknowledged.len() + CLIENTS,
            "{} stored, {} acknowledged, at most {CLIENTS} in flight",
            stored.len(),
            acknowledged.len()
        );
        // The database is writable again after the crash.
        let r = api
            .post(
                "/Users",
                &json!({"schemas": [USER], "userName": "after-the-crash"}),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
    };
    if tokio::time::timeout(Duration::from_secs(90), run)
        .await
        .is_err()
    {
        panic!("the test did not finish in 90 s");
    }
}
