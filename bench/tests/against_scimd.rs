//! The load generator against the real scimd server (memory backend) on `127.0.0.1:0`: seeding
//! through Bulk and POST, continuing after lost state records, every scenario without errors,
//! and the big group restored after the run.

#![allow(clippy::unwrap_used)]

#[path = "../../server/tests/support_scimd/local.rs"]
mod local;

use local::LocalServer;
use scimd_bench::client::Target;
use scimd_bench::run::{RunOptions, Scenario};
use scimd_bench::seed::{SeedOptions, Via};
use scimd_bench::state::State;
use scimd_server::config::{BackendConfig, Config, MemoryConfig};
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The server with its one source, `default`, on the memory backend.
async fn start() -> LocalServer {
    let mut config = Config {
        backend: BackendConfig::Memory(MemoryConfig {}),
        ..Config::default()
    };
    // Small limits, so that seeding must split its Bulk requests.
    config.bulk.max_operations = 25;
    config.bulk.max_payload_size = 16 * 1024;
    LocalServer::start(config).await
}

/// A client of the `default` source with `token`.
fn client(server: &LocalServer, token: &str) -> Target {
    Target::new(
        &server.base("default"),
        token,
        Duration::from_secs(10),
        None,
    )
    .unwrap()
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("scimd-bench-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn seed_options(state_path: &Path, users: u64, via: Via) -> SeedOptions {
    SeedOptions {
        users,
        groups: 4,
        big_group: 60,
        via,
        concurrency: 3,
        group_members: 5,
        member_batch: 25,
        state_path: state_path.to_path_buf(),
    }
}

async fn member_ids(target: &Target, group: &str) -> BTreeSet<String> {
    let g = target
        .conn()
        .get_json(&format!("/Groups/{group}"))
        .await
        .unwrap();
    g["members"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|m| m["value"].as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seeding_continues_and_every_scenario_runs_without_errors() {
    let server = start().await;
    let dir = temp_dir("e2e");
    let state_path = dir.join("state.json");
    let target = client(&server, &server.tokens["default"]);

    // Through Bulk, in several requests under the small limits.
    scimd_bench::seed::seed(&target, &seed_options(&state_path, 120, Via::Bulk))
        .await
        .unwrap();
    let state = State::load(&state_path, target.base_url())
        .unwrap()
        .unwrap();
    assert_eq!(state.users.len(), 120);
    assert_eq!(state.group_count(), 4);
    let big = state.big_group.clone().unwrap();
    assert_eq!(big.members, 60);
    let seeded: BTreeSet<String> = state.users[..60].iter().map(|u| u.1.clone()).collect();
    assert_eq!(member_ids(&target, &big.id).await, seeded);

    // A lost tail of the state file: seeding again finds those users (409) instead of failing
    // or duplicating them, then adds more by POST.
    let mut truncated = state.clone();
    let lost: Vec<_> = truncated.users.split_off(100);
    truncated.save(&state_path).unwrap();
    scimd_bench::seed::seed(&target, &seed_options(&state_path, 150, Via::Post))
        .await
        .unwrap();
    let state = State::load(&state_path, target.base_url())
        .unwrap()
        .unwrap();
    assert_eq!(state.users.len(), 150);
    assert_eq!(&state.users[100..120], &lost[..]);
    let total = target.conn().get_json("/Users?count=1").await.unwrap()["totalResults"].as_u64();
    assert_eq!(total, Some(150));

    let json_path = dir.join("report.json");
    let opts = RunOptions {
        duration: Duration::from_millis(300),
        warmup: Duration::from_millis(100),
        concurrency: 4,
        max_requests: 200,
        scenarios: Scenario::ALL.to_vec(),
        page_size: 10,
        state_path: state_path.clone(),
        json: Some(json_path.clone()),
        server_pid: Some(std::process::id()),
        threads: 2,
    };
    let reports = scimd_bench::run::run(&target, &opts).await.unwrap();
    assert_eq!(reports.len(), Scenario::ALL.len());
    for r in &reports {
        assert_eq!(
            r.recorder.errors(),
            0,
            "{}: {:?}",
            r.name,
            r.recorder.samples()
        );
        assert!(
            r.recorder.successes() > 0,
            "{} ran no request: {:?}",
            r.name,
            r.notes
        );
        assert!(
            r.recorder.successes() <= 200,
            "{} ignored --max-requests",
            r.name
        );
        assert!(
            r.notes.iter().any(|n| n.starts_with("server RSS")),
            "{}",
            r.name
        );
    }
    let deep = reports
        .iter()
        .find(|r| r.name == "list-cursor-deep")
        .unwrap();
    assert!(
        deep.notes
            .iter()
            .any(|n| n.contains("the cursor starts after")),
        "{:?}",
        deep.notes
    );

    // The big group is back to exactly its seeded members.
    assert_eq!(member_ids(&target, &big.id).await, seeded);

    let doc: Value = serde_json::from_slice(&std::fs::read(&json_path).unwrap()).unwrap();
    assert_eq!(
        doc["scenarios"].as_array().unwrap().len(),
        Scenario::ALL.len()
    );
    assert_eq!(doc["scenarios"][0]["scenario"], "get");
    assert!(doc["scenarios"][0]["latency_us"]["p99"].as_u64().unwrap() > 0);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_responses_are_counted_and_shown_not_dropped() {
    let server = start().await;
    let dir = temp_dir("errors");
    let state_path = dir.join("state.json");
    let target = client(&server, &server.tokens["default"]);
    scimd_bench::seed::seed(&target, &seed_options(&state_path, 80, Via::Auto))
        .await
        .unwrap();
    // The same data set through a wrong token: every request is a 401.
    let wrong = client(&server, "not-a-token");
    let opts = RunOptions {
        duration: Duration::from_millis(200),
        warmup: Duration::ZERO,
        concurrency: 2,
        max_requests: 50,
        scenarios: vec![Scenario::Get],
        page_size: 10,
        state_path,
        json: None,
        server_pid: None,
        threads: 2,
    };
    // Discovery needs no token; the measured requests do.
    let reports = scimd_bench::run::run(&wrong, &opts).await.unwrap();
    let get = &reports[0];
    assert_eq!(get.recorder.successes(), 0);
    assert_eq!(get.recorder.errors(), 50);
    assert!(
        get.recorder.samples()[0].contains("401"),
        "{:?}",
        get.recorder.samples()
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
