//! Hooks end to end over HTTP: the example plugins and the test plugins are built by cargo and
//! loaded through the real loader; built-in hooks run from configuration; RFC 9967 events
//! survive a `kill -9` of the real binary between a write and its delivery.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support_scimd;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::Method;
use scimd_plugin_host::HookConfig;
use scimd_plugin_host::testing::{Receiver, cargo_build_library};
use scimd_server::config::{BackendConfig, Config, MemoryConfig, SourceConfig};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::time::Duration;
use support_scimd::{BULK_REQ, LocalServer, PATCH_OP, Scimd, TempDir, USER, run};

fn lib(package: &str) -> PathBuf {
    cargo_build_library(package).expect("the plugin builds")
}

fn hooks(v: Value) -> Vec<HookConfig> {
    serde_json::from_value(v).unwrap()
}

fn source(slug: &str, hooks: Vec<HookConfig>) -> SourceConfig {
    let mut s = SourceConfig::named(slug);
    s.hooks = hooks;
    s
}

/// Serves `sources` on the memory backend.
async fn start(sources: Vec<SourceConfig>) -> LocalServer {
    LocalServer::start(Config {
        sources,
        backend: BackendConfig::Memory(MemoryConfig {}),
        ..Config::default()
    })
    .await
}

async fn count_users(s: &LocalServer, src: &str) -> u64 {
    let r = s.call(src, Method::GET, "/Users", None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body["totalResults"].as_u64().unwrap()
}

/// Both kinds of mapping on one source: the example mapping plugin (userName from the
/// primary email, lowercased) and a built-in rule (a default title for users).
fn mapping_source() -> SourceConfig {
    source(
        "map",
        hooks(json!([
            {"type": "plugin", "path": lib("scimd-example-mapping")},
            {"type": "attribute_map", "rules": [
                {"action": "default", "attribute": "title", "value": "Staff", "resource_types": ["User"]},
                {"action": "trim", "attribute": "displayName"}
            ]}
        ])),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mapping_is_applied_on_post_put_patch_and_bulk() {
    let s = start(vec![mapping_source()]).await;
    // POST without userName: the plugin derives it before validation.
    let r = s
        .call(
            "map",
            Method::POST,
            "/Users",
            Some(json!({"schemas": [USER],
            "emails": [{"value": "Ada.Lovelace@Example.COM", "type": "work", "primary": true}]})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["userName"], "ada.lovelace@example.com");
    assert_eq!(r.body["title"], "Staff");
    let id = r.body["id"].as_str().unwrap().to_string();
    // PUT: lowercased again.
    let r = s
        .call(
            "map",
            Method::PUT,
            &format!("/Users/{id}"),
            Some(json!({"schemas": [USER],
            "userName": "ADA@EXAMPLE.COM", "displayName": "  Ada  "})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["userName"], "ada@example.com");
    assert_eq!(r.body["displayName"], "Ada");
    // PATCH: the mapping sees the patched resource.
    let r = s
        .call(
            "map",
            Method::PATCH,
            &format!("/Users/{id}"),
            Some(json!({"schemas": [PATCH_OP],
            "Operations": [{"op": "replace", "path": "userName", "value": "LOVELACE"}]})),
        )
        .await;
    assert!([200, 204].contains(&r.status), "{}", r.body);
    let r = s
        .call("map", Method::GET, &format!("/Users/{id}"), None)
        .await;
    assert_eq!(r.body["userName"], "lovelace");
    assert_eq!(r.body["meta"]["version"], "W/\"3\"");
    // Bulk: every operation goes through the same pipeline.
    let r = s
        .call("map", Method::POST, "/Bulk", Some(json!({"schemas": [BULK_REQ], "Operations": [
            {"method": "POST", "path": "/Users", "bulkId": "b1",
             "data": {"schemas": [USER], "emails": [{"value": "Bob@Example.com", "primary": true}]}},
            {"method": "PATCH", "path": format!("/Users/{id}"),
             "data": {"schemas": [PATCH_OP], "Operations": [
                 {"op": "replace", "path": "userName", "value": "ADA-BULK"}]}}
        ]})))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let ops = r.body["Operations"].as_array().unwrap();
    assert_eq!(ops[0]["status"], "201", "{}", r.body);
    let bob = ops[0]["location"]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap();
    let r = s
        .call("map", Method::GET, &format!("/Users/{bob}"), None)
        .await;
    assert_eq!(r.body["userName"], "bob@example.com");
    let r = s
        .call("map", Method::GET, &format!("/Users/{id}"), None)
        .await;
    assert_eq!(r.body["userName"], "ada-bulk");
}

fn policy_source() -> SourceConfig {
    source(
        "policy",
        hooks(json!([{
            "type": "plugin", "name": "company-domains",
            "path": lib("scimd-example-policy"),
            "config": {"allowed_domains": ["example.com"]}
        }])),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_veto_returns_the_hooks_error_and_writes_nothing() {
    let s = start(vec![policy_source()]).await;
    let r = s
        .call(
            "policy",
            Method::POST,
            "/Users",
            Some(json!({"schemas": [USER],
            "userName": "mallory", "emails": [{"value": "m@evil.test"}]})),
        )
        .await;
    r.assert_scim_error(403);
    assert!(
        r.body["detail"].as_str().unwrap().contains("evil.test"),
        "{}",
        r.body
    );
    assert_eq!(count_users(&s, "policy").await, 0);
    // An allowed user, then a PUT and a PATCH that would move it to a foreign domain.
    let r = s
        .call(
            "policy",
            Method::POST,
            "/Users",
            Some(json!({"schemas": [USER],
            "userName": "alice", "emails": [{"value": "alice@example.com"}]})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let id = r.body["id"].as_str().unwrap().to_string();
    let r = s
        .call(
            "policy",
            Method::PUT,
            &format!("/Users/{id}"),
            Some(json!({"schemas": [USER],
            "userName": "alice", "emails": [{"value": "alice@evil.test"}]})),
        )
        .await;
    r.assert_scim_error(403);
    let r = s
        .call(
            "policy",
            Method::PATCH,
            &format!("/Users/{id}"),
            Some(json!({"schemas": [PATCH_OP],
            "Operations": [{"op": "add", "path": "emails", "value": [{"value": "a@evil.test"}]}]})),
        )
        .await;
    r.assert_scim_error(403);
    let r = s
        .call("policy", Method::GET, &format!("/Users/{id}"), None)
        .await;
    assert_eq!(r.body["emails"], json!([{"value": "alice@example.com"}]));
    assert_eq!(r.body["meta"]["version"], "W/\"1\"");
    // In Bulk, the vetoed operation fails with the hook's error; the others are written.
    let r = s
        .call("policy", Method::POST, "/Bulk", Some(json!({"schemas": [BULK_REQ], "Operations": [
            {"method": "POST", "path": "/Users", "bulkId": "x",
             "data": {"schemas": [USER], "userName": "eve", "emails": [{"value": "e@evil.test"}]}},
            {"method": "POST", "path": "/Users", "bulkId": "y",
             "data": {"schemas": [USER], "userName": "bob", "emails": [{"value": "b@example.com"}]}}
        ]})))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["Operations"][0]["status"], "403", "{}", r.body);
    assert_eq!(r.body["Operations"][1]["status"], "201", "{}", r.body);
    assert_eq!(count_users(&s, "policy").await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn react_hooks_see_old_and_new_state_and_the_audit_log_their_difference() {
    let dir = TempDir::new("scimd-hooks-react");
    let record = dir.path().join("react.jsonl");
    let audit = dir.path().join("audit.jsonl");
    let s = start(vec![source(
        "r",
        hooks(json!([
            {"type": "plugin", "path": lib("scimd-test-plugin-faulty"),
             "config": {"record": record}},
            {"type": "audit_log", "path": audit}
        ])),
    )])
    .await;
    let r = s
        .call(
            "r",
            Method::POST,
            "/Users",
            Some(json!({"schemas": [USER],
            "userName": "grace", "title": "Rear Admiral", "password": "Hopper#1953"})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let id = r.body["id"].as_str().unwrap().to_string();
    let r = s
        .on(
            "r",
            Method::PUT,
            &format!("/Users/{id}"),
            Some(json!({"schemas": [USER],
            "userName": "grace", "title": "Commodore", "password": "Cobol#1959"})),
            &[("x-request-id", "hooks-e2e-1")],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = s
        .call("r", Method::DELETE, &format!("/Users/{id}"), None)
        .await;
    assert_eq!(r.status, 204);
    let events: Vec<Value> = std::fs::read_to_string(&record)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(events.len(), 3);
    let put = &events[1];
    assert_eq!(put["context"]["operation"], "replace");
    assert_eq!(put["context"]["id"], json!(id));
    assert_eq!(put["context"]["tokenName"], "initial");
    assert_eq!(put["context"]["requestId"], "hooks-e2e-1");
    assert_eq!(put["old"]["attributes"]["title"], "Rear Admiral");
    assert_eq!(put["old"]["version"], 1);
    assert_eq!(put["new"]["attributes"]["title"], "Commodore");
    assert_eq!(put["new"]["version"], 2);
    assert!(events[0].get("old").is_none());
    assert!(events[2].get("new").is_none());
    assert_eq!(events[2]["old"]["attributes"]["title"], "Commodore");
    let audit = std::fs::read_to_string(&audit).unwrap();
    assert!(!audit.contains("Hopper#1953") && !audit.contains("Cobol#1959"));
    let lines: Vec<Value> = audit
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(
        lines[1]["changes"],
        json!([
            {"path": "title", "old": "Rear Admiral", "new": "Commodore"},
            {"path": "password", "redacted": true}
        ])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panicking_and_hanging_plugins_leave_the_server_healthy_and_answer_per_failure_setting() {
    let faulty = lib("scimd-test-plugin-faulty");
    // Panics are answered as soon as the plugin returns (printing a backtrace may take a
    // while in a debug build); hangs are cut off by a short timeout.
    let plugin = |cfg: Value, failure: &str, timeout_ms: u64| {
        hooks(
            json!([{"type": "plugin", "path": faulty, "config": cfg, "failure": failure,
                      "timeout_ms": timeout_ms, "max_concurrent": 2}]),
        )
    };
    let panic = json!({"panic": ["map"]});
    let hang = json!({"hang_ms": 3000});
    let s = start(vec![
        source("panic-deny", plugin(panic.clone(), "deny", 30_000)),
        source("panic-allow", plugin(panic, "allow", 30_000)),
        source("hang-deny", plugin(hang.clone(), "deny", 200)),
        source("hang-allow", plugin(hang, "allow", 200)),
    ])
    .await;
    let body = |n: &str| Some(json!({"schemas": [USER], "userName": n}));
    let r = s
        .call("panic-deny", Method::POST, "/Users", body("p1"))
        .await;
    r.assert_scim_error(500);
    assert_eq!(count_users(&s, "panic-deny").await, 0);
    let r = s
        .call("panic-allow", Method::POST, "/Users", body("p2"))
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let started = std::time::Instant::now();
    let r = s
        .call("hang-deny", Method::POST, "/Users", body("h1"))
        .await;
    r.assert_scim_error(503);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "the timeout answers"
    );
    assert_eq!(count_users(&s, "hang-deny").await, 0);
    // Allowed: the hanging map phase is skipped, and so are the hanging decide and react
    // phases of this write, each after its timeout.
    let r = s
        .call("hang-allow", Method::POST, "/Users", body("h2"))
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    // The process survived all of it and still serves everything else.
    let health = format!("{}/healthz", s.origin);
    assert_eq!(
        s.send(Method::GET, &health, None, &[], None).await.status,
        200
    );
    let r = s.call("panic-deny", Method::GET, "/Users", None).await;
    assert_eq!(r.status, 200);
    assert_eq!(count_users(&s, "panic-allow").await, 1);
    assert_eq!(count_users(&s, "hang-allow").await, 1);
}

/// Runs `scimd config check` and `scimd serve` with a configuration that loads a plugin built
/// for another ABI version.
#[test]
fn an_abi_mismatch_stops_start_up_naming_the_plugin_and_both_versions() {
    let dir = TempDir::new("scimd-hooks-abi");
    let path = lib("scimd-test-plugin-future-abi");
    let config = dir.path().join("scimd.toml");
    std::fs::write(
        &config,
        format!(
            "[backend]\ntype = \"memory\"\n\n[[sources]]\nslug = \"default\"\n\n[[sources.hooks]]\ntype = \"plugin\"\nname = \"future\"\npath = {:?}\n",
            path.display().to_string()
        ),
    )
    .unwrap();
    let out = run(
        dir.path(),
        Some(&config),
        &["serve", "--listen", "127.0.0.1:0"],
    );
    assert!(!out.status.success(), "scimd must not start");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("\"future\""), "{err}");
    assert!(err.contains("scimd_test_plugin_future_abi"), "{err}");
    assert!(err.contains("ABI version 999"), "{err}");
    assert!(
        err.contains(&format!("speaks version {}", scimd_plugin_api::ABI_VERSION)),
        "{err}"
    );
}

fn verify_hs256(set: &str, secret: &str) -> Value {
    use hmac::{Hmac, Mac};
    let parts: Vec<&str> = set.split('.').collect();
    assert_eq!(parts.len(), 3);
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{}.{}", parts[0], parts[1]).as_bytes());
    mac.verify_slice(&URL_SAFE_NO_PAD.decode(parts[2]).unwrap())
        .expect("the SET is signed with the configured key");
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
    assert_eq!(header["typ"], "secevent+jwt");
    assert_eq!(header["alg"], "HS256");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap()
}

/// The real binary on its SQLite default: a write stores its event while the receiver is
/// down; scimd is killed with SIGKILL before delivering it; after a restart the receiver gets
/// the SET, signed, with RFC 9967 claims.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_survives_kill_9_between_the_write_and_its_delivery() {
    const SECRET: &str = "kill-9-test-secret-of-32-bytes-or-more";
    let dir = TempDir::new("scimd-hooks-events");
    // A port nobody listens on yet: deliveries fail until the receiver starts.
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let config = dir.path().join("scimd.toml");
    std::fs::write(
        &config,
        format!(
            r#"[[sources]]
slug = "default"

[[sources.hooks]]
type = "events"
url = "http://{addr}/events"
issuer = "https://scim.example.com"
key = "{SECRET}"
timeout_ms = 500
retry_initial_ms = 200
retry_max_ms = 400
poll_ms = 100
"#
        ),
    )
    .unwrap();
    let mut first = Scimd::serve(dir.path(), Some(&config));
    let r = first
        .api("default")
        .post(
            "/Users",
            &json!({"schemas": [USER], "userName": "durable", "externalId": "ext-1"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let id = r.body["id"].as_str().unwrap().to_string();
    // Let the worker fail at least once against the closed port, then kill it.
    tokio::time::sleep(Duration::from_millis(300)).await;
    first.kill();
    let rcv = Receiver::start_on(&addr.to_string(), &[]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        rcv.received().is_empty(),
        "nothing delivered while scimd is down"
    );
    let _second = Scimd::serve(dir.path(), Some(&config));
    let sets = rcv.wait_accepted(1, Duration::from_secs(20)).await;
    assert_eq!(sets.len(), 1, "{:?}", rcv.received());
    let claims = verify_hs256(&sets[0], SECRET);
    assert_eq!(claims["iss"], "https://scim.example.com");
    assert_eq!(claims["aud"], format!("http://{addr}/events"));
    assert_eq!(
        claims["sub_id"],
        json!({"format": "scim", "uri": format!("/Users/{id}"), "id": id, "externalId": "ext-1"})
    );
    let ev = &claims["events"]["urn:ietf:params:scim:event:prov:create:full"];
    assert_eq!(ev["data"]["userName"], "durable");
    assert_eq!(ev["version"], "W/\"1\"");
    assert!(claims["jti"].as_str().is_some_and(|j| !j.is_empty()));
    assert!(claims["txn"].as_str().is_some_and(|t| t.contains(&id)));
}

/// RFC 9967 §4: `/ServiceProviderConfig` advertises `securityEvents` with the event URIs of
/// the source's events hooks (following their mode and scope), and only for a source that has
/// one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_provider_config_lists_the_event_uris_of_the_sources_events_hooks() {
    let events = |extra: Value| {
        let mut c = json!({"type": "events", "url": "http://127.0.0.1:9/events",
                           "key": "an-hs256-secret-of-at-least-32-bytes!"});
        c.as_object_mut()
            .unwrap()
            .extend(extra.as_object().cloned().unwrap());
        c
    };
    let s = start(vec![
        source(
            "feeds",
            hooks(json!([
                events(json!({"name": "hr", "mode": "notice", "operations": ["create", "delete"]})),
                events(json!({"name": "groups", "resource_types": ["Group"], "operations": ["patch", "delete"]})),
            ])),
        ),
        source("quiet", Vec::new()),
    ])
    .await;
    let r = s
        .call("feeds", Method::GET, "/ServiceProviderConfig", None)
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.body["securityEvents"],
        json!({
            "asyncRequest": "none",
            "eventUris": [
                "urn:ietf:params:scim:event:prov:create:notice",
                "urn:ietf:params:scim:event:prov:delete",
                "urn:ietf:params:scim:event:prov:activate",
                "urn:ietf:params:scim:event:prov:deactivate",
                "urn:ietf:params:scim:event:prov:patch:full",
            ]
        })
    );
    let r = s
        .call("quiet", Method::GET, "/ServiceProviderConfig", None)
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.get("securityEvents").is_none(), "{}", r.body);
}

/// Every metric family `/metrics` exports has a `# HELP` line, in particular those of hooks
/// (vetoes, react failures, plugin faults) and of event delivery (delivered, retried, given
/// up, outbox size), produced here by real writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hook_and_event_metrics_are_described() {
    let faulty = lib("scimd-test-plugin-faulty");
    let accepting = Receiver::start(&[503]).await.unwrap();
    let rejecting = Receiver::start(&[400]).await.unwrap();
    let events = |name: &str, url: &str| {
        json!({"type": "events", "name": name, "url": url,
               "key": "an-hs256-secret-of-at-least-32-bytes!", "retry_initial_ms": 50,
               "retry_max_ms": 100, "poll_ms": 50, "timeout_ms": 2000})
    };
    let s = start(vec![
        policy_source(),
        source(
            "faulty",
            hooks(
                json!([{"type": "plugin", "path": faulty, "config": {"panic": ["react"]},
                          "failure": "allow"}]),
            ),
        ),
        source(
            "events",
            hooks(json!([
                events("accepting", &accepting.url),
                events("rejecting", &rejecting.url)
            ])),
        ),
    ])
    .await;
    let user = |name: &str, email: &str| {
        Some(json!({"schemas": [USER], "userName": name, "emails": [{"value": email}]}))
    };
    let r = s
        .call("policy", Method::POST, "/Users", user("m", "m@evil.test"))
        .await;
    r.assert_scim_error(403);
    let r = s
        .call("faulty", Method::POST, "/Users", user("f", "f@example.com"))
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let r = s
        .call("events", Method::POST, "/Users", user("e", "e@example.com"))
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(
        accepting
            .wait_accepted(1, Duration::from_secs(10))
            .await
            .len(),
        1
    );

    let wanted = [
        "scimd_hook_vetoes_total",
        "scimd_hook_react_failures_total",
        "scimd_hook_failures_total",
        "scimd_events_delivered_total",
        "scimd_events_retried_total",
        "scimd_events_failed_total",
        "scimd_events_outbox",
    ];
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let text = loop {
        let text = s.metrics().await;
        // Delivery runs in the background: wait until the worker recorded everything.
        let recorded = wanted
            .iter()
            .all(|m| text.lines().any(|l| l.starts_with(&format!("{m}{{"))));
        if recorded || std::time::Instant::now() > deadline {
            break text;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let help = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("# HELP {name} ")))
            .map(str::trim)
            .filter(|h| !h.is_empty())
    };
    for name in wanted {
        assert!(
            text.lines().any(|l| l.starts_with(&format!("{name}{{"))),
            "{name} was not recorded:\n{text}"
        );
        assert!(help(name).is_some(), "no # HELP for {name}:\n{text}");
    }
    for family in text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
    {
        assert!(help(family).is_some(), "no # HELP for {family}:\n{text}");
    }
}
