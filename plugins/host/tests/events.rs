//! RFC 9967 events end to end inside one process: service writes → signed SETs in the outbox →
//! pushed to a local receiver, with retries, rejection and restart.

#![allow(clippy::unwrap_used)]

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use scimd_backend_memory::MemoryBackend;
use scimd_core::SchemaRegistry;
use scimd_core::paging::PagingConfig;
use scimd_core::schema::ResourceKind;
use scimd_core::service::{Precondition, ProjectionParams, Service};
use scimd_core::state::{MemoryStateStore, StateStore};
use scimd_plugin_host::testing::Receiver;
use scimd_plugin_host::{HookConfig, HookEnv, build_pipeline};
use serde_json::{Value, json};
use sha2::Sha256;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

const BASE: &str = "https://h/scim/s/v2";
const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const SECRET: &str = "an-hs256-secret-of-at-least-32-bytes!";
const NONE: ProjectionParams<'static> = ProjectionParams {
    attributes: None,
    excluded_attributes: None,
};
const WAIT: Duration = Duration::from_secs(10);

fn events_hook(url: &str, extra: Value) -> Vec<HookConfig> {
    let mut c = json!({
        "type": "events", "url": url, "issuer": "https://scim.example.com",
        "key": SECRET, "key_id": "k1", "retry_initial_ms": 50, "retry_max_ms": 200,
        "poll_ms": 50, "timeout_ms": 2000,
    });
    c.as_object_mut()
        .unwrap()
        .extend(extra.as_object().cloned().unwrap());
    vec![serde_json::from_value(c).unwrap()]
}

fn service(
    hooks: &[HookConfig],
    state: Arc<dyn StateStore>,
    backend: Arc<MemoryBackend>,
) -> Service {
    let env = HookEnv {
        source: "s",
        config_dir: Path::new("."),
        state,
    };
    Service::new(
        "s",
        backend,
        Arc::new(SchemaRegistry::new()),
        PagingConfig::default(),
    )
    .with_hooks(build_pipeline(hooks, &env).unwrap())
}

/// Verifies the HS256 signature and returns (header, claims).
fn verify(set: &str) -> (Value, Value) {
    let parts: Vec<&str> = set.split('.').collect();
    assert_eq!(parts.len(), 3, "{set}");
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(format!("{}.{}", parts[0], parts[1]).as_bytes());
    mac.verify_slice(&URL_SAFE_NO_PAD.decode(parts[2]).unwrap())
        .expect("signature verifies with the shared secret");
    let dec = |p: &str| serde_json::from_slice(&URL_SAFE_NO_PAD.decode(p).unwrap()).unwrap();
    (dec(parts[0]), dec(parts[1]))
}

fn event_uris(claims: &Value) -> Vec<String> {
    claims["events"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_write_is_pushed_as_a_signed_rfc9967_set() {
    let rcv = Receiver::start(&[]).await.unwrap();
    let state: Arc<dyn StateStore> = Arc::new(MemoryStateStore::default());
    let svc = service(
        &events_hook(&rcv.url, json!({})),
        state.clone(),
        Arc::default(),
    );
    let u = svc
        .create(BASE, ResourceKind::User, &json!({"schemas": [USER], "userName": "ada", "externalId": "e1", "active": true, "password": "Secret#1"}), NONE)
        .await
        .unwrap();
    svc.replace(
        BASE,
        ResourceKind::User,
        &u.id,
        &json!({"schemas": [USER], "userName": "ada", "externalId": "e1", "active": false}),
        &Precondition::None,
        NONE,
    )
    .await
    .unwrap();
    let patch = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "path": "displayName", "value": "Ada"}]});
    svc.patch(
        BASE,
        ResourceKind::User,
        &u.id,
        &patch,
        &Precondition::None,
        NONE,
    )
    .await
    .unwrap();
    svc.delete(ResourceKind::User, &u.id, &Precondition::None)
        .await
        .unwrap();
    let sets = rcv.wait_accepted(4, WAIT).await;
    assert_eq!(sets.len(), 4);
    let received = rcv.received();
    let ct = received[0]
        .headers
        .iter()
        .find(|(k, _)| k == "content-type")
        .unwrap();
    assert_eq!(ct.1, "application/secevent+jwt");
    let claims: Vec<Value> = sets
        .iter()
        .map(|s| {
            let (h, c) = verify(s);
            assert_eq!(
                h,
                json!({"alg": "HS256", "typ": "secevent+jwt", "kid": "k1"})
            );
            c
        })
        .collect();
    // Delivery order follows write order (one worker, oldest first).
    assert_eq!(
        claims.iter().map(event_uris).collect::<Vec<_>>(),
        vec![
            vec![
                "urn:ietf:params:scim:event:prov:create:full".to_string(),
                "urn:ietf:params:scim:event:prov:activate".into()
            ],
            vec![
                "urn:ietf:params:scim:event:prov:put:full".into(),
                "urn:ietf:params:scim:event:prov:deactivate".into()
            ],
            vec!["urn:ietf:params:scim:event:prov:patch:full".into()],
            vec!["urn:ietf:params:scim:event:prov:delete".into()],
        ]
    );
    for c in &claims {
        assert_eq!(c["iss"], "https://scim.example.com");
        assert_eq!(c["aud"], rcv.url);
        assert!(c["iat"].as_i64().unwrap() > 1_700_000_000);
        assert_eq!(c["jti"].as_str().unwrap().len(), 32);
        assert_eq!(c["sub_id"]["format"], "scim");
        assert_eq!(c["sub_id"]["uri"], format!("/Users/{}", u.id));
        assert_eq!(c["sub_id"]["externalId"], "e1");
        assert!(c.get("sub").is_none());
    }
    let create = &claims[0]["events"]["urn:ietf:params:scim:event:prov:create:full"];
    assert_eq!(create["data"]["userName"], "ada");
    assert_eq!(create["data"]["id"], json!(u.id));
    assert_eq!(create["version"], "W/\"1\"");
    assert!(!sets[0].is_empty() && !claims[0].to_string().contains("Secret#1"));
    let p = &claims[2]["events"]["urn:ietf:params:scim:event:prov:patch:full"];
    assert_eq!(p["data"], patch);
    assert_eq!(p["version"], "W/\"3\"");
    let txns: std::collections::HashSet<_> = claims.iter().map(|c| c["txn"].clone()).collect();
    assert_eq!(txns.len(), 4);
    assert_eq!(state.outbox_stats("s/events").await.unwrap().pending, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_receiver_gets_the_same_set_again_after_backoff() {
    let rcv = Receiver::start(&[503, 500]).await.unwrap();
    let state: Arc<dyn StateStore> = Arc::new(MemoryStateStore::default());
    let svc = service(
        &events_hook(&rcv.url, json!({"mode": "notice"})),
        state.clone(),
        Arc::default(),
    );
    svc.create(
        BASE,
        ResourceKind::User,
        &json!({"schemas": [USER], "userName": "b"}),
        NONE,
    )
    .await
    .unwrap();
    let sets = rcv.wait_accepted(1, WAIT).await;
    assert_eq!(sets.len(), 1);
    let all = rcv.received();
    assert_eq!(
        all.iter().map(|r| r.status).collect::<Vec<_>>(),
        [503, 500, 202]
    );
    assert!(
        all.iter().all(|r| r.body == sets[0]),
        "retries resend the same SET (same jti)"
    );
    let (_, c) = verify(&sets[0]);
    assert_eq!(
        c["events"]["urn:ietf:params:scim:event:prov:create:notice"]["attributes"],
        json!(["userName"])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_set_is_given_up_and_kept_as_failed() {
    let rcv = Receiver::start(&[400]).await.unwrap();
    let state: Arc<dyn StateStore> = Arc::new(MemoryStateStore::default());
    let svc = service(
        &events_hook(&rcv.url, json!({"name": "hr"})),
        state.clone(),
        Arc::default(),
    );
    svc.create(
        BASE,
        ResourceKind::User,
        &json!({"schemas": [USER], "userName": "c"}),
        NONE,
    )
    .await
    .unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let stats = state.outbox_stats("s/hr").await.unwrap();
        if stats.failed == 1 {
            assert_eq!(stats.pending, 0);
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never given up: {stats:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(rcv.received().len(), 1, "a 400 is not retried");
}

#[test]
fn events_stored_before_a_restart_are_delivered_after_it() {
    let state: Arc<dyn StateStore> = Arc::new(MemoryStateStore::default());
    let backend: Arc<MemoryBackend> = Arc::default();
    // First life: the receiver is down (a closed port), the write stores its event.
    let first = tokio::runtime::Runtime::new().unwrap();
    let closed = first.block_on(async {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap()
    });
    let url = format!("http://{closed}/events");
    // A short timeout keeps the lease of an attempt cut off by the "crash" short.
    let fast = json!({"timeout_ms": 300});
    first.block_on(async {
        let svc = service(
            &events_hook(&url, fast.clone()),
            state.clone(),
            backend.clone(),
        );
        svc.create(
            BASE,
            ResourceKind::User,
            &json!({"schemas": [USER], "userName": "d"}),
            NONE,
        )
        .await
        .unwrap();
    });
    // The process "dies": its runtime and delivery worker are gone.
    first.shutdown_timeout(Duration::from_millis(100));
    // Second life: the receiver is up on the same address; a new worker finds the event.
    let second = tokio::runtime::Runtime::new().unwrap();
    second.block_on(async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let rcv = Receiver::start_on(&closed.to_string(), &[]).await.unwrap();
        let _svc = service(&events_hook(&rcv.url, fast), state.clone(), backend.clone());
        let sets = rcv.wait_accepted(1, WAIT).await;
        assert_eq!(sets.len(), 1);
        let (_, c) = verify(&sets[0]);
        assert_eq!(
            c["events"]["urn:ietf:params:scim:event:prov:create:full"]["data"]["userName"],
            "d"
        );
    });
}
