//! Loads the workspace's example and test plugins through the real loader and runs them as
//! pipeline hooks.

#![allow(clippy::unwrap_used)]

use scimd_core::error::ScimError;
use scimd_core::hooks::{Hook, HookContext, HookPipeline, Operation, Phase, RequestInfo};
use scimd_core::schema::ResourceKind;
use scimd_plugin_api::ABI_VERSION;
use scimd_plugin_host::testing::cargo_build_library;
use scimd_plugin_host::{FailurePolicy, PluginConfig, PluginHook};
use serde_json::{Map, Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn config(package: &str, plugin_config: Value) -> (PluginConfig, std::path::PathBuf) {
    let path = cargo_build_library(package).unwrap();
    let c = PluginConfig {
        name: None,
        path: path.clone(),
        config: plugin_config,
        failure: FailurePolicy::Deny,
        timeout_ms: 2000,
        max_concurrent: 4,
        resource_types: vec![],
        operations: vec![],
    };
    (c, path)
}

fn hook(package: &str, plugin_config: Value, tweak: impl FnOnce(&mut PluginConfig)) -> PluginHook {
    let (mut c, path) = config(package, plugin_config);
    tweak(&mut c);
    PluginHook::build(&c, &path).unwrap()
}

fn cx(op: Operation) -> HookContext {
    HookContext::new("s", ResourceKind::User, op, None, &RequestInfo::default())
}

fn attrs(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mapping_example_derives_and_lowercases_user_name_through_the_loader() {
    let h = hook("scimd-example-mapping", Value::Null, |_| {});
    assert_eq!(h.description().name, "example-mapping");
    assert!(h.applies(Phase::Map, ResourceKind::User, Operation::Patch));
    assert!(!h.applies(Phase::React, ResourceKind::User, Operation::Create));
    let p = HookPipeline::new(vec![Arc::new(h)]);
    let out = p
        .map(
            &cx(Operation::Create),
            None,
            attrs(json!({"emails": [{"value": "Ada@Example.COM", "primary": true}]})),
        )
        .await
        .unwrap();
    assert_eq!(out["userName"], "ada@example.com");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_policy_example_vetoes_foreign_domains_with_its_own_error() {
    let h = hook(
        "scimd-example-policy",
        json!({"allowed_domains": ["example.com"]}),
        |_| {},
    );
    let p = HookPipeline::new(vec![Arc::new(h)]);
    let ok = attrs(json!({"userName": "a", "emails": [{"value": "a@example.com"}]}));
    assert!(
        p.decide(&cx(Operation::Create), None, Some(ok))
            .await
            .is_ok()
    );
    let bad = attrs(json!({"userName": "b", "emails": [{"value": "b@evil.test"}]}));
    let e = p
        .decide(&cx(Operation::Create), None, Some(bad))
        .await
        .unwrap_err();
    assert_eq!(e.status, 403);
    assert!(e.detail.contains("evil.test"), "{}", e.detail);
    assert_eq!(p.stats().vetoes(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_configuration_error_names_the_plugin() {
    let (c, path) = config("scimd-example-policy", json!({"allowed": []}));
    let e = PluginHook::build(&c, &path).unwrap_err();
    assert!(e.contains("example-policy"), "{e}");
    assert!(e.contains("allowed"), "{e}");
}

async fn map_once(h: &PluginHook) -> Result<Map<String, Value>, ScimError> {
    let mut a = attrs(json!({"displayName": "x"}));
    h.map(&cx(Operation::Create), None, &mut a).await.map(|_| a)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_plugin_fails_the_call_per_policy_and_keeps_working() {
    let deny = hook(
        "scimd-test-plugin-faulty",
        json!({"panic": ["map"]}),
        |_| {},
    );
    let e = map_once(&deny).await.unwrap_err();
    assert_eq!(e.status, 500);
    assert!(e.detail.contains("test-faulty"), "{}", e.detail);
    // The process survived and the library still answers.
    assert_eq!(map_once(&deny).await.unwrap_err().status, 500);
    let allow = hook("scimd-test-plugin-faulty", json!({"panic": ["map"]}), |c| {
        c.failure = FailurePolicy::Allow
    });
    assert_eq!(map_once(&allow).await.unwrap()["displayName"], "x");
    let healthy = hook("scimd-test-plugin-faulty", json!({"suffix": "!"}), |_| {});
    assert_eq!(map_once(&healthy).await.unwrap()["displayName"], "x!");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_plugin_times_out_and_ties_up_at_most_its_permits() {
    let h = hook("scimd-test-plugin-faulty", json!({"hang_ms": 1500}), |c| {
        c.timeout_ms = 100;
        c.max_concurrent = 1;
    });
    let started = Instant::now();
    let e = map_once(&h).await.unwrap_err();
    assert_eq!((e.status, e.retry_after), (503, Some(5)));
    assert!(started.elapsed() < Duration::from_millis(1000));
    // The timed-out call still runs and holds the only permit: the next call waits for it
    // only as long as its own timeout, and no second thread is tied up.
    let started = Instant::now();
    assert_eq!(map_once(&h).await.unwrap_err().status, 503);
    assert!(started.elapsed() < Duration::from_millis(1000));
    let allow = hook("scimd-test-plugin-faulty", json!({"hang_ms": 1500}), |c| {
        c.timeout_ms = 100;
        c.failure = FailurePolicy::Allow;
    });
    assert_eq!(map_once(&allow).await.unwrap()["displayName"], "x");
}

#[test]
fn a_library_of_another_abi_version_is_refused_naming_both_versions() {
    let (c, path) = config("scimd-test-plugin-future-abi", Value::Null);
    let e = PluginHook::build(&c, &path).unwrap_err();
    assert!(e.contains("999"), "{e}");
    assert!(e.contains(&format!("version {ABI_VERSION}")), "{e}");
    assert!(e.contains("scimd_test_plugin_future_abi"), "{e}");
}

#[test]
fn a_file_that_is_not_a_plugin_is_refused() {
    let (c, _) = config("scimd-example-mapping", Value::Null);
    let e = PluginHook::build(&c, std::path::Path::new("/nonexistent/libnothing.so")).unwrap_err();
    assert!(e.contains("/nonexistent/libnothing.so"), "{e}");
}
