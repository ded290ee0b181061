//! End-to-end tests: the real server on `127.0.0.1:0`, spoken to over HTTP with reqwest.

#![allow(clippy::unwrap_used)]

mod support_okta;
mod support_scimd;

use reqwest::Method;
use scimd_server::App;
use scimd_server::config::{
    BackendConfig, Config, ExtensionConfig, MemoryConfig, PatchResponse, SourceConfig,
};
use serde_json::{Value, json};
use std::sync::Arc;
use support_scimd::{
    Api, BULK_REQ, ERROR, GROUP, LIST, LocalServer, PATCH_OP, Resp, Scimd, TempDir, USER,
};

const ACME: &str = "urn:example:params:scim:schemas:extension:acme:2.0:User";

fn test_config() -> Config {
    let mut a = SourceConfig::named("a");
    a.extensions.push(ExtensionConfig {
        resource_type: "User".into(),
        file: None,
        definition: Some(json!({
            "id": ACME,
            "name": "AcmeUser",
            "attributes": [{"name": "badgeNumber", "type": "integer"}]
        })),
        required: false,
    });
    let mut nc = SourceConfig::named("nc");
    nc.patch_response = PatchResponse::NoContent;
    let mut c = Config {
        sources: vec![a, SourceConfig::named("b"), nc],
        backend: BackendConfig::Memory(MemoryConfig {}),
        ..Config::default()
    };
    c.server.max_body_bytes = 64 * 1024;
    c.bulk.max_operations = 10;
    c.bulk.max_payload_size = 32 * 1024;
    c
}

/// Serves [`test_config`].
async fn start() -> LocalServer {
    LocalServer::start(test_config()).await
}

/// Shorthands of these tests.
impl LocalServer {
    /// A request to source `a` with its token; `path` is relative to the source base.
    async fn a(&self, method: Method, path: &str, body: Option<Value>) -> Resp {
        self.on("a", method, path, body, &[]).await
    }

    async fn create_user(&self, source: &str, user_name: &str) -> Value {
        let r = self
            .call(
                source,
                Method::POST,
                "/Users",
                Some(json!({"schemas": [USER], "userName": user_name})),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
        r.body
    }
}

// ---------------------------------------------------------------------------------------------
// Resources and wire exactness.
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn create_answers_201_with_location_etag_and_scim_media_type() {
    let s = start().await;
    let r = s
        .a(
            Method::POST,
            "/Users",
            Some(
                json!({"schemas": [USER], "userName": "bjensen", "name": {"givenName": "Barbara"}}),
            ),
        )
        .await;
    assert_eq!(r.status, 201);
    let id = r.body["id"].as_str().unwrap();
    let location = format!("{}/Users/{id}", s.base("a"));
    assert_eq!(r.header("location"), Some(location.as_str()));
    assert_eq!(r.body["meta"]["location"], location);
    assert_eq!(r.header("etag"), Some("W/\"1\""));
    assert_eq!(r.body["meta"]["version"], "W/\"1\"");
    assert_eq!(
        r.header("content-type"),
        Some("application/scim+json; charset=utf-8")
    );
    assert_eq!(r.body["schemas"][0], USER);
    // The resource is stored: a GET finds it with the same ETag.
    let g = s.a(Method::GET, &format!("/Users/{id}"), None).await;
    assert_eq!(g.status, 200);
    assert_eq!(g.body["userName"], "bjensen");
    assert_eq!(g.header("etag"), Some("W/\"1\""));
}

#[tokio::test]
async fn json_and_scim_json_with_parameters_are_accepted_other_types_are_415() {
    let s = start().await;
    for (i, ct) in [
        "application/json",
        "application/scim+json; charset=utf-8",
        "application/json;charset=UTF-8",
    ]
    .iter()
    .enumerate()
    {
        let r = s
            .on(
                "a",
                Method::POST,
                "/Users",
                Some(json!({"schemas": [USER], "userName": format!("u{i}")})),
                &[("content-type", ct)],
            )
            .await;
        assert_eq!(r.status, 201, "{ct}: {}", r.body);
    }
    let r = s
        .on(
            "a",
            Method::POST,
            "/Users",
            Some(json!({"schemas": [USER], "userName": "textual"})),
            &[("content-type", "text/plain")],
        )
        .await;
    r.assert_scim_error(415);
    let list = s
        .a(
            Method::GET,
            "/Users?filter=userName%20eq%20%22textual%22",
            None,
        )
        .await;
    assert_eq!(list.body["totalResults"], 0);
}

#[tokio::test]
async fn malformed_json_is_400_invalid_syntax() {
    let s = start().await;
    let r = s
        .send(
            Method::POST,
            &format!("{}/Users", s.base("a")),
            Some(&s.tokens["a"]),
            &[("content-type", "application/scim+json")],
            Some(b"{\"userName\": ".to_vec()),
        )
        .await;
    r.assert_scim_error(400);
    assert_eq!(r.body["scimType"], "invalidSyntax");
}

#[tokio::test]
async fn if_none_match_with_the_current_version_is_304() {
    let s = start().await;
    let u = s.create_user("a", "etag-user").await;
    let path = format!("/Users/{}", u["id"].as_str().unwrap());
    let r = s
        .on(
            "a",
            Method::GET,
            &path,
            None,
            &[("if-none-match", "W/\"1\"")],
        )
        .await;
    assert_eq!(r.status, 304);
    assert_eq!(r.header("etag"), Some("W/\"1\""));
    assert_eq!(r.body, Value::Null);
    let r = s
        .on(
            "a",
            Method::GET,
            &path,
            None,
            &[("if-none-match", "W/\"0\"")],
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["userName"], "etag-user");
}

#[tokio::test]
async fn put_with_a_stale_if_match_is_412_and_changes_nothing() {
    let s = start().await;
    let u = s.create_user("a", "put-user").await;
    let path = format!("/Users/{}", u["id"].as_str().unwrap());
    let body = json!({"schemas": [USER], "userName": "put-user", "displayName": "First"});
    let r = s
        .on(
            "a",
            Method::PUT,
            &path,
            Some(body),
            &[("if-match", "W/\"1\"")],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("etag"), Some("W/\"2\""));
    assert_eq!(r.body["displayName"], "First");
    let stale = json!({"schemas": [USER], "userName": "put-user", "displayName": "Second"});
    let r = s
        .on(
            "a",
            Method::PUT,
            &path,
            Some(stale),
            &[("if-match", "W/\"1\"")],
        )
        .await;
    r.assert_scim_error(412);
    let g = s.a(Method::GET, &path, None).await;
    assert_eq!(g.body["displayName"], "First");
    assert_eq!(g.header("etag"), Some("W/\"2\""));
}

#[tokio::test]
async fn patch_answers_200_with_the_resource_and_bumps_the_etag() {
    let s = start().await;
    let u = s.create_user("a", "patch-user").await;
    let path = format!("/Users/{}", u["id"].as_str().unwrap());
    let r = s
        .a(
            Method::PATCH,
            &path,
            Some(json!({"schemas": [PATCH_OP], "Operations": [
                {"op": "replace", "path": "displayName", "value": "Patched"}
            ]})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["displayName"], "Patched");
    assert_eq!(r.header("etag"), Some("W/\"2\""));
    let g = s.a(Method::GET, &path, None).await;
    assert_eq!(g.body["displayName"], "Patched");
}

#[tokio::test]
async fn patch_with_a_stale_if_match_is_412() {
    let s = start().await;
    let u = s.create_user("a", "patch-412").await;
    let path = format!("/Users/{}", u["id"].as_str().unwrap());
    let op = json!({"schemas": [PATCH_OP], "Operations": [
        {"op": "replace", "path": "displayName", "value": "Never"}
    ]});
    let r = s
        .on(
            "a",
            Method::PATCH,
            &path,
            Some(op),
            &[("if-match", "W/\"7\"")],
        )
        .await;
    r.assert_scim_error(412);
    let g = s.a(Method::GET, &path, None).await;
    assert!(g.body.get("displayName").is_none());
}

#[tokio::test]
async fn a_no_content_source_answers_patch_with_204_and_an_etag() {
    let s = start().await;
    let u = s.create_user("nc", "nc-user").await;
    let path = format!("/Users/{}", u["id"].as_str().unwrap());
    let r = s
        .on(
            "nc",
            Method::PATCH,
            &path,
            Some(json!({"schemas": [PATCH_OP], "Operations": [
                {"op": "replace", "path": "active", "value": false}
            ]})),
            &[],
        )
        .await;
    assert_eq!(r.status, 204);
    assert_eq!(r.body, Value::Null);
    assert_eq!(r.header("etag"), Some("W/\"2\""));
    let g = s.on("nc", Method::GET, &path, None, &[]).await;
    assert_eq!(g.body["active"], false);
}

#[tokio::test]
async fn delete_answers_204_and_the_resource_is_gone() {
    let s = start().await;
    let u = s.create_user("a", "doomed").await;
    let path = format!("/Users/{}", u["id"].as_str().unwrap());
    let r = s.a(Method::DELETE, &path, None).await;
    assert_eq!(r.status, 204);
    assert_eq!(r.body, Value::Null);
    s.a(Method::GET, &path, None).await.assert_scim_error(404);
    s.a(Method::DELETE, &path, None)
        .await
        .assert_scim_error(404);
}

#[tokio::test]
async fn a_filter_with_no_match_is_200_with_an_empty_list() {
    let s = start().await;
    s.create_user("a", "present").await;
    let r = s
        .a(
            Method::GET,
            "/Users?filter=userName%20eq%20%22c9b8d5e2-0000-4bd1-8b8f-random%22",
            None,
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["schemas"], json!([LIST]));
    assert_eq!(r.body["totalResults"], 0);
    assert_eq!(r.body["Resources"], json!([]));
}

#[tokio::test]
async fn user_name_filters_are_case_insensitive() {
    let s = start().await;
    s.create_user("a", "MixedCase@Example.com").await;
    let r = s
        .a(
            Method::GET,
            "/Users?filter=userName%20eq%20%22mixedcase%40example.com%22",
            None,
        )
        .await;
    assert_eq!(r.body["totalResults"], 1);
    assert_eq!(r.body["Resources"][0]["userName"], "MixedCase@Example.com");
}

#[tokio::test]
async fn count_zero_answers_only_total_results() {
    let s = start().await;
    s.create_user("a", "one").await;
    s.create_user("a", "two").await;
    let r = s.a(Method::GET, "/Users?count=0", None).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["totalResults"], 2);
    assert!(r.body.get("Resources").is_none(), "{}", r.body);
}

#[tokio::test]
async fn index_paging_pages_through_sorted_results() {
    let s = start().await;
    for n in ["c", "a", "b"] {
        s.create_user("a", n).await;
    }
    let r = s
        .a(
            Method::GET,
            "/Users?sortBy=userName&startIndex=2&count=1",
            None,
        )
        .await;
    assert_eq!(r.body["totalResults"], 3);
    assert_eq!(r.body["startIndex"], 2);
    assert_eq!(r.body["itemsPerPage"], 1);
    assert_eq!(r.body["Resources"][0]["userName"], "b");
}

#[tokio::test]
async fn attributes_and_excluded_attributes_project_responses() {
    let s = start().await;
    let u = s
        .a(
            Method::POST,
            "/Users?attributes=userName",
            Some(json!({"schemas": [USER], "userName": "proj", "displayName": "Shown?"})),
        )
        .await;
    assert_eq!(u.status, 201);
    assert_eq!(u.body["userName"], "proj");
    assert!(u.body.get("displayName").is_none());
    let path = format!(
        "/Users/{}?excludedAttributes=displayName",
        u.body["id"].as_str().unwrap()
    );
    let g = s.a(Method::GET, &path, None).await;
    assert!(g.body.get("displayName").is_none());
    assert_eq!(g.body["userName"], "proj");
}

#[tokio::test]
async fn groups_carry_member_refs_derived_from_the_base_url() {
    let s = start().await;
    let u = s.create_user("a", "member").await;
    let uid = u["id"].as_str().unwrap();
    let g = s
        .a(
            Method::POST,
            "/Groups",
            Some(json!({"schemas": [GROUP], "displayName": "Staff", "members": [{"value": uid}]})),
        )
        .await;
    assert_eq!(g.status, 201, "{}", g.body);
    assert_eq!(
        g.body["members"][0]["$ref"],
        format!("{}/Users/{uid}", s.base("a"))
    );
    let user = s.a(Method::GET, &format!("/Users/{uid}"), None).await;
    let gid = g.body["id"].as_str().unwrap();
    assert_eq!(user.body["groups"][0]["value"], gid);
    assert_eq!(
        user.body["groups"][0]["$ref"],
        format!("{}/Groups/{gid}", s.base("a"))
    );
}

#[tokio::test]
async fn search_endpoints_take_a_search_request() {
    let s = start().await;
    s.create_user("a", "searched").await;
    s.a(
        Method::POST,
        "/Groups",
        Some(json!({"schemas": [GROUP], "displayName": "searched group"})),
    )
    .await;
    let req = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
        "filter": "userName sw \"sea\"",
        "attributes": ["userName"]
    });
    let r = s.a(Method::POST, "/Users/.search", Some(req)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["totalResults"], 1);
    assert_eq!(r.body["Resources"][0]["userName"], "searched");
    let all = s
        .a(
            Method::POST,
            "/.search",
            Some(json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"]})),
        )
        .await;
    assert_eq!(all.status, 200, "{}", all.body);
    assert_eq!(all.body["totalResults"], 2);
    let types: Vec<&str> = all.body["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["meta"]["resourceType"].as_str().unwrap())
        .collect();
    assert_eq!(types, vec!["User", "Group"]);
    let grp = s
        .a(
            Method::POST,
            "/.search",
            Some(
                json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
                "filter": "displayName eq \"searched group\""}),
            ),
        )
        .await;
    assert_eq!(grp.body["totalResults"], 1);
}

#[tokio::test]
async fn uniqueness_conflicts_are_409() {
    let s = start().await;
    s.create_user("a", "taken").await;
    let r = s
        .a(
            Method::POST,
            "/Users",
            Some(json!({"schemas": [USER], "userName": "TAKEN"})),
        )
        .await;
    r.assert_scim_error(409);
    assert_eq!(r.body["scimType"], "uniqueness");
}

// ---------------------------------------------------------------------------------------------
// Authentication and sources.
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_missing_token_is_401_with_a_bearer_challenge_and_scim_body() {
    let s = start().await;
    let r = s
        .send(
            Method::GET,
            &format!("{}/Users", s.base("a")),
            None,
            &[],
            None,
        )
        .await;
    r.assert_scim_error(401);
    assert_eq!(r.header("www-authenticate"), Some("Bearer realm=\"scimd\""));
    let r = s
        .send(
            Method::GET,
            &format!("{}/Users", s.base("a")),
            Some("scimd_not-a-real-token"),
            &[],
            None,
        )
        .await;
    r.assert_scim_error(401);
    assert_eq!(
        r.header("www-authenticate"),
        Some("Bearer realm=\"scimd\", error=\"invalid_token\"")
    );
    let r = s
        .send(
            Method::GET,
            &format!("{}/Users", s.base("a")),
            None,
            &[("authorization", "Basic dXNlcjpwYXNz")],
            None,
        )
        .await;
    r.assert_scim_error(401);
}

#[tokio::test]
async fn a_token_of_source_a_is_rejected_on_source_b() {
    let s = start().await;
    s.create_user("b", "b-user").await;
    for path in ["/Users", "/ServiceProviderConfig", "/Schemas"] {
        let r = s
            .send(
                Method::GET,
                &format!("{}{path}", s.base("b")),
                Some(&s.tokens["a"]),
                &[],
                None,
            )
            .await;
        r.assert_scim_error(401);
    }
    let r = s
        .send(
            Method::POST,
            &format!("{}/Users", s.base("b")),
            Some(&s.tokens["a"]),
            &[("content-type", "application/scim+json")],
            Some(serde_json::to_vec(&json!({"schemas": [USER], "userName": "intruder"})).unwrap()),
        )
        .await;
    r.assert_scim_error(401);
    let r = s
        .send(
            Method::GET,
            &format!("{}/Users", s.base("nosuchsource")),
            Some(&s.tokens["a"]),
            &[],
            None,
        )
        .await;
    r.assert_scim_error(401);
    // Source b holds only its own user; source a sees none of b's.
    let b = s.on("b", Method::GET, "/Users", None, &[]).await;
    assert_eq!(b.body["totalResults"], 1);
    let a = s.a(Method::GET, "/Users", None).await;
    assert_eq!(a.body["totalResults"], 0);
}

#[tokio::test]
async fn a_revoked_token_stops_working_and_another_token_keeps_working() {
    let s = start().await;
    let (_, second) = scimd_server::tokens::create(&*s.state, "a", "rotation", None)
        .await
        .unwrap();
    s.state
        .revoke_token("a", "initial", time::OffsetDateTime::now_utc())
        .await
        .unwrap();
    s.a(Method::GET, "/Users", None)
        .await
        .assert_scim_error(401);
    let r = s
        .send(
            Method::GET,
            &format!("{}/Users", s.base("a")),
            Some(second.expose()),
            &[],
            None,
        )
        .await;
    assert_eq!(r.status, 200);
    let stored = s.state.list_tokens(Some("a")).await.unwrap();
    assert!(stored.iter().all(|t| t.hash != second.expose()));
}

// ---------------------------------------------------------------------------------------------
// Routing: 404, 405, HEAD, OPTIONS, /Me, the authentik path.
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn write_methods_on_discovery_endpoints_are_405_scim_errors() {
    let s = start().await;
    for (m, path) in [
        (Method::POST, "/ServiceProviderConfig"),
        (Method::PUT, "/ResourceTypes"),
        (Method::DELETE, "/Schemas"),
        (Method::PATCH, "/ResourceTypes/User"),
    ] {
        let r = s.a(m.clone(), path, Some(json!({}))).await;
        r.assert_scim_error(405);
        assert!(r.header("allow").unwrap().contains("GET"), "{m} {path}");
    }
}

#[tokio::test]
async fn unknown_paths_are_404_scim_errors() {
    let s = start().await;
    for path in ["/Widgets", "/Users/x/y", "/v3"] {
        s.a(Method::GET, path, None).await.assert_scim_error(404);
    }
    let r = s
        .send(
            Method::GET,
            &format!("{}/nothing-here", s.origin),
            None,
            &[],
            None,
        )
        .await;
    r.assert_scim_error(404);
}

#[tokio::test]
async fn head_answers_like_get_without_a_body_and_options_lists_methods() {
    let s = start().await;
    let u = s.create_user("a", "headed").await;
    let path = format!("/Users/{}", u["id"].as_str().unwrap());
    let r = s.a(Method::HEAD, &path, None).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("etag"), Some("W/\"1\""));
    assert_eq!(r.body, Value::Null);
    let r = s
        .send(
            Method::OPTIONS,
            &format!("{}{path}", s.base("a")),
            None,
            &[],
            None,
        )
        .await;
    assert_eq!(r.status, 204);
    let allow = r.header("allow").unwrap();
    for m in ["GET", "PUT", "PATCH", "DELETE"] {
        assert!(allow.contains(m), "{allow}");
    }
    assert!(!allow.contains("POST"));
}

#[tokio::test]
async fn me_is_501() {
    let s = start().await;
    for m in [Method::GET, Method::DELETE] {
        s.a(m, "/Me", None).await.assert_scim_error(501);
    }
}

#[tokio::test]
async fn the_authentik_compatible_path_serves_the_same_tree() {
    let s = start().await;
    let alias = format!("{}/source/scim/a/v2", s.origin);
    let r = s
        .send(
            Method::POST,
            &format!("{alias}/Users"),
            Some(&s.tokens["a"]),
            &[("content-type", "application/scim+json")],
            Some(serde_json::to_vec(&json!({"schemas": [USER], "userName": "migrated"})).unwrap()),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let id = r.body["id"].as_str().unwrap();
    assert_eq!(r.header("location").unwrap(), format!("{alias}/Users/{id}"));
    // The same resource through the canonical path.
    let g = s.a(Method::GET, &format!("/Users/{id}"), None).await;
    assert_eq!(g.body["userName"], "migrated");
    // Tokens stay scoped on the alias too.
    let r = s
        .send(
            Method::GET,
            &format!("{}/source/scim/b/v2/Users", s.origin),
            Some(&s.tokens["a"]),
            &[],
            None,
        )
        .await;
    r.assert_scim_error(401);
}

#[tokio::test]
async fn endpoint_names_are_case_insensitive_and_trailing_slashes_ignored() {
    let s = start().await;
    s.create_user("a", "slash").await;
    let r = s
        .a(
            Method::GET,
            "/users/?filter=userName%20eq%20%22slash%22",
            None,
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["totalResults"], 1);
}

// ---------------------------------------------------------------------------------------------
// Limits.
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_body_over_the_limit_is_413_scim_error() {
    let s = start().await;
    let big = "x".repeat(70 * 1024);
    let r = s
        .a(
            Method::POST,
            "/Users",
            Some(json!({"schemas": [USER], "userName": "big", "displayName": big})),
        )
        .await;
    r.assert_scim_error(413);
    let list = s.a(Method::GET, "/Users", None).await;
    assert_eq!(list.body["totalResults"], 0);
}

// ---------------------------------------------------------------------------------------------
// Bulk.
// ---------------------------------------------------------------------------------------------

fn bulk(ops: Value) -> Value {
    json!({"schemas": [BULK_REQ], "Operations": ops})
}

#[tokio::test]
async fn bulk_resolves_bulk_ids_in_members_even_when_defined_later() {
    let s = start().await;
    let r = s
        .a(
            Method::POST,
            "/Bulk",
            Some(bulk(json!([
                {"method": "POST", "path": "/Groups", "bulkId": "g",
                 "data": {"schemas": [GROUP], "displayName": "Bulk group",
                          "members": [{"value": "bulkId:u1", "type": "User"}, {"value": "bulkId:u2"}]}},
                {"method": "POST", "path": "/Users", "bulkId": "u1",
                 "data": {"schemas": [USER], "userName": "bulk1"}},
                {"method": "POST", "path": "/Users", "bulkId": "u2",
                 "data": {"schemas": [USER], "userName": "bulk2"}},
                {"method": "PATCH", "path": "/Users/bulkId:u1",
                 "data": {"schemas": [PATCH_OP], "Operations": [
                     {"op": "replace", "path": "displayName", "value": "Patched in bulk"}]}}
            ]))),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let ops = r.body["Operations"].as_array().unwrap();
    assert_eq!(ops.len(), 4);
    for op in ops {
        assert!(
            ["200", "201"].contains(&op["status"].as_str().unwrap()),
            "{op}"
        );
    }
    let group_loc = ops[0]["location"].as_str().unwrap();
    assert_eq!(ops[0]["bulkId"], "g");
    assert_eq!(ops[0]["version"], "W/\"1\"");
    let gid = group_loc.rsplit('/').next().unwrap();
    let g = s.a(Method::GET, &format!("/Groups/{gid}"), None).await;
    let mut members: Vec<String> = g.body["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["value"].as_str().unwrap().to_string())
        .collect();
    members.sort();
    let mut expected: Vec<String> = [&ops[1], &ops[2]]
        .iter()
        .map(|o| {
            o["location"]
                .as_str()
                .unwrap()
                .rsplit('/')
                .next()
                .unwrap()
                .to_string()
        })
        .collect();
    expected.sort();
    assert_eq!(members, expected);
    let u1 = s
        .a(
            Method::GET,
            "/Users?filter=userName%20eq%20%22bulk1%22",
            None,
        )
        .await;
    assert_eq!(u1.body["Resources"][0]["displayName"], "Patched in bulk");
}

#[tokio::test]
async fn bulk_circular_references_fail_and_create_nothing() {
    let s = start().await;
    let r = s
        .a(
            Method::POST,
            "/Bulk",
            Some(bulk(json!([
                {"method": "POST", "path": "/Groups", "bulkId": "a",
                 "data": {"schemas": [GROUP], "displayName": "A", "members": [{"value": "bulkId:b"}]}},
                {"method": "POST", "path": "/Groups", "bulkId": "b",
                 "data": {"schemas": [GROUP], "displayName": "B", "members": [{"value": "bulkId:a"}]}},
                {"method": "POST", "path": "/Users", "bulkId": "ok",
                 "data": {"schemas": [USER], "userName": "independent"}}
            ]))),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let ops = r.body["Operations"].as_array().unwrap();
    assert_eq!(ops[0]["status"], "409");
    assert_eq!(ops[1]["status"], "409");
    assert_eq!(ops[0]["response"]["schemas"], json!([ERROR]));
    assert_eq!(ops[2]["status"], "201");
    let groups = s.a(Method::GET, "/Groups", None).await;
    assert_eq!(groups.body["totalResults"], 0);
}

#[tokio::test]
async fn bulk_undefined_bulk_ids_fail_the_operation() {
    let s = start().await;
    let r = s
        .a(
            Method::POST,
            "/Bulk",
            Some(bulk(json!([
                {"method": "POST", "path": "/Groups", "bulkId": "g",
                 "data": {"schemas": [GROUP], "displayName": "G", "members": [{"value": "bulkId:nobody"}]}}
            ]))),
        )
        .await;
    assert_eq!(r.body["Operations"][0]["status"], "400");
    assert_eq!(
        r.body["Operations"][0]["response"]["scimType"],
        "invalidValue"
    );
}

#[tokio::test]
async fn bulk_fail_on_errors_stops_after_that_many_errors() {
    let s = start().await;
    s.create_user("a", "dup").await;
    let r = s
        .a(
            Method::POST,
            "/Bulk",
            Some(
                json!({"schemas": [BULK_REQ], "failOnErrors": 1, "Operations": [
                    {"method": "POST", "path": "/Users", "bulkId": "x",
                     "data": {"schemas": [USER], "userName": "dup"}},
                    {"method": "POST", "path": "/Users", "bulkId": "y",
                     "data": {"schemas": [USER], "userName": "never-created"}}
                ]}),
            ),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let ops = r.body["Operations"].as_array().unwrap();
    assert_eq!(ops.len(), 1);
    assert_eq!(ops[0]["status"], "409");
    let l = s
        .a(
            Method::GET,
            "/Users?filter=userName%20eq%20%22never-created%22",
            None,
        )
        .await;
    assert_eq!(l.body["totalResults"], 0);
}

#[tokio::test]
async fn bulk_operation_versions_are_preconditions() {
    let s = start().await;
    let u = s.create_user("a", "versioned").await;
    let id = u["id"].as_str().unwrap();
    let r = s
        .a(
            Method::POST,
            "/Bulk",
            Some(bulk(json!([
                {"method": "PUT", "path": format!("/Users/{id}"), "version": "W/\"5\"",
                 "data": {"schemas": [USER], "userName": "versioned", "displayName": "stale"}},
                {"method": "DELETE", "path": format!("/Users/{id}"), "version": "W/\"1\""}
            ]))),
        )
        .await;
    let ops = r.body["Operations"].as_array().unwrap();
    assert_eq!(ops[0]["status"], "412");
    assert_eq!(ops[1]["status"], "204");
    s.a(Method::GET, &format!("/Users/{id}"), None)
        .await
        .assert_scim_error(404);
}

#[tokio::test]
async fn bulk_over_max_operations_is_413() {
    let s = start().await;
    let ops: Vec<Value> = (0..11)
        .map(|i| {
            json!({"method": "POST", "path": "/Users", "bulkId": format!("b{i}"),
            "data": {"schemas": [USER], "userName": format!("n{i}")}})
        })
        .collect();
    let r = s
        .a(Method::POST, "/Bulk", Some(bulk(Value::Array(ops))))
        .await;
    r.assert_scim_error(413);
    let l = s.a(Method::GET, "/Users", None).await;
    assert_eq!(l.body["totalResults"], 0);
}

#[tokio::test]
async fn bulk_over_max_payload_size_is_413() {
    let s = start().await;
    let r = s
        .a(
            Method::POST,
            "/Bulk",
            Some(bulk(json!([
                {"method": "POST", "path": "/Users", "bulkId": "b",
                 "data": {"schemas": [USER], "userName": "big", "displayName": "y".repeat(40 * 1024)}}
            ]))),
        )
        .await;
    r.assert_scim_error(413);
}

// ---------------------------------------------------------------------------------------------
// Discovery, OpenAPI, operations endpoints.
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn service_provider_config_advertises_bulk_limits_and_bearer_auth() {
    let s = start().await;
    let r = s.a(Method::GET, "/ServiceProviderConfig", None).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["bulk"]["supported"], true);
    assert_eq!(r.body["bulk"]["maxOperations"], 10);
    assert_eq!(r.body["bulk"]["maxPayloadSize"], 32 * 1024);
    assert_eq!(r.body["patch"]["supported"], true);
    assert_eq!(r.body["etag"]["supported"], true);
    assert_eq!(
        r.body["authenticationSchemes"][0]["type"],
        "oauthbearertoken"
    );
}

#[tokio::test]
async fn schemas_and_resource_types_include_the_custom_extension() {
    let s = start().await;
    let r = s.a(Method::GET, "/Schemas", None).await;
    let ids: Vec<&str> = r.body["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&ACME), "{ids:?}");
    let one = s.a(Method::GET, &format!("/Schemas/{ACME}"), None).await;
    assert_eq!(one.body["attributes"][0]["name"], "badgeNumber");
    s.a(Method::GET, "/Schemas/urn:nope", None)
        .await
        .assert_scim_error(404);
    let rt = s.a(Method::GET, "/ResourceTypes/User", None).await;
    let exts: Vec<&str> = rt.body["schemaExtensions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["schema"].as_str().unwrap())
        .collect();
    assert!(exts.contains(&ACME));
    let list = s.a(Method::GET, "/ResourceTypes", None).await;
    assert_eq!(list.body["totalResults"], 2);
    // Source b has no such extension.
    let b = s
        .on("b", Method::GET, &format!("/Schemas/{ACME}"), None, &[])
        .await;
    b.assert_scim_error(404);
    // The extension is usable on a.
    let u = s
        .a(
            Method::POST,
            "/Users",
            Some(json!({"schemas": [USER, ACME], "userName": "badge", ACME: {"badgeNumber": 7}})),
        )
        .await;
    assert_eq!(u.status, 201, "{}", u.body);
    assert_eq!(u.body[ACME]["badgeNumber"], 7);
}

#[tokio::test]
async fn the_openapi_document_is_openapi_3_with_the_custom_extension() {
    let s = start().await;
    let r = s
        .send(
            Method::GET,
            &format!("{}/openapi.json", s.origin),
            None,
            &[],
            None,
        )
        .await;
    assert_eq!(r.status, 200);
    let doc = &r.body;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    // It deserializes as a typed OpenAPI 3 document.
    let typed: openapiv3::OpenAPI = serde_json::from_value(doc.clone()).unwrap();
    assert_eq!(typed.paths.paths.len(), 14);
    assert!(
        typed
            .components
            .as_ref()
            .unwrap()
            .security_schemes
            .contains_key("bearerAuth")
    );
    let paths = doc["paths"].as_object().unwrap();
    for p in [
        "/scim/{source}/v2/Users",
        "/scim/{source}/v2/Users/{id}",
        "/scim/{source}/v2/Groups/{id}",
        "/scim/{source}/v2/Bulk",
        "/scim/{source}/v2/.search",
        "/scim/{source}/v2/ServiceProviderConfig",
        "/scim/{source}/v2/Schemas/{id}",
    ] {
        assert!(paths.contains_key(p), "missing {p}");
    }
    let get_user = &paths["/scim/{source}/v2/Users/{id}"]["get"];
    let params: Vec<&str> = get_user["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert!(params.contains(&"If-None-Match"), "{params:?}");
    assert!(get_user["responses"]["304"].is_object());
    assert!(get_user["responses"]["401"]["headers"]["WWW-Authenticate"].is_object());
    let schemes = doc["components"]["securitySchemes"].as_object().unwrap();
    assert_eq!(schemes["bearerAuth"]["scheme"], "bearer");
    let user = &doc["components"]["schemas"]["User"];
    assert!(user["properties"]["userName"].is_object());
    assert_eq!(
        user["properties"][ACME]["properties"]["badgeNumber"]["type"],
        "integer"
    );
    // Every $ref points at a defined component.
    let text = doc.to_string();
    for piece in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
        let name = piece.split('"').next().unwrap();
        assert!(
            doc["components"]["schemas"].get(name).is_some(),
            "dangling $ref {name}"
        );
    }
    let docs = s
        .send(Method::GET, &format!("{}/docs", s.origin), None, &[], None)
        .await;
    assert_eq!(docs.status, 200);
    assert!(docs.body.as_str().unwrap().contains("SwaggerUIBundle"));
    assert!(docs.body.as_str().unwrap().contains(ACME));
}

#[tokio::test]
async fn health_readiness_and_metrics_are_served() {
    let s = start().await;
    let h = s
        .send(
            Method::GET,
            &format!("{}/healthz", s.origin),
            None,
            &[],
            None,
        )
        .await;
    assert_eq!(h.status, 200);
    let r = s
        .send(
            Method::GET,
            &format!("{}/readyz", s.origin),
            None,
            &[],
            None,
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["status"], "ready");
    s.create_user("a", "counted").await;
    let text = s.metrics().await;
    assert!(
        text.contains(
            "scimd_http_requests_total{source=\"a\",endpoint=\"Users\",method=\"POST\",status=\"201\"}"
        ),
        "{text}"
    );
    assert!(text.contains("scimd_http_request_duration_seconds_bucket"));
}

#[tokio::test]
async fn responses_carry_a_request_id_and_echo_a_well_formed_one() {
    let s = start().await;
    let r = s
        .on(
            "a",
            Method::GET,
            "/Users",
            None,
            &[("x-request-id", "abc-123")],
        )
        .await;
    assert_eq!(r.header("x-request-id"), Some("abc-123"));
    let r = s.a(Method::GET, "/Users", None).await;
    assert_eq!(r.header("x-request-id").unwrap().len(), 36);
}

// ---------------------------------------------------------------------------------------------
// The binary.
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn the_binary_starts_with_no_config_prints_a_token_once_and_keeps_it_across_restarts() {
    let dir = TempDir::new("scimd-e2e");
    let child = Scimd::serve(dir.path(), None);
    assert!(
        child.base().starts_with("http://127.0.0.1:"),
        "{}",
        child.base()
    );
    assert!(
        child.base().ends_with("/scim/default/v2"),
        "{}",
        child.base()
    );
    let token = child
        .token()
        .expect("a first start prints a token")
        .to_string();
    assert!(
        token.starts_with("scimd_") && token.len() == 6 + 43,
        "{token}"
    );
    let api = child.api("default");
    let r = api
        .post(
            "/Users",
            &json!({"schemas": [USER], "userName": "from-the-binary"}),
        )
        .await;
    assert_eq!(r.status, 201);
    let r = api
        .get(&format!("/Users/{}", r.body["id"].as_str().unwrap()))
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["userName"], "from-the-binary");
    let r = Api::new(child.base(), "scimd_wrong").get("/Users").await;
    assert_eq!(r.status, 401);
    drop(child);
    // A second start of the same directory keeps the token and the data, and prints no token.
    let again = Scimd::serve(dir.path(), None);
    assert_eq!(
        again.token(),
        None,
        "a second start must not print a new token"
    );
    let r = Api::new(again.base(), &token)
        .get("/Users?filter=userName%20eq%20%22from-the-binary%22")
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["totalResults"], 1);
    assert!(dir.path().join("scimd-data").join("scimd.db").is_file());
}

#[tokio::test]
async fn cursor_paging_walks_every_resource_once_and_rejects_tampered_cursors() {
    let s = start().await;
    for i in 0..5 {
        s.create_user("a", &format!("cursor-{i}")).await;
    }
    let mut seen = Vec::new();
    let mut cursor = String::new();
    for _ in 0..10 {
        let r = s
            .a(
                Method::GET,
                &format!("/Users?sortBy=userName&count=2&cursor={cursor}"),
                None,
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.body["totalResults"], 5);
        assert!(r.body.get("startIndex").is_none());
        for u in r.body["Resources"].as_array().unwrap() {
            seen.push(u["userName"].as_str().unwrap().to_string());
        }
        match r.body.get("nextCursor").and_then(Value::as_str) {
            Some(next) => cursor = next.to_string(),
            None => break,
        }
    }
    assert_eq!(
        seen,
        (0..5).map(|i| format!("cursor-{i}")).collect::<Vec<_>>()
    );
    let r = s
        .a(Method::GET, "/Users?count=2&cursor=AAAAtampered", None)
        .await;
    r.assert_scim_error(400);
    assert_eq!(r.body["scimType"], "invalidCursor");
    let r = s.a(Method::GET, "/Users?cursor=&startIndex=2", None).await;
    r.assert_scim_error(400);
}

#[tokio::test]
async fn graceful_shutdown_lets_in_flight_requests_finish() {
    let mut config = test_config();
    config.bulk.max_operations = 2000;
    config.bulk.max_payload_size = 4 * 1024 * 1024;
    let s = LocalServer::start(config).await;
    let token = s.tokens["a"].clone();
    let origin = s.origin.clone();
    let client = reqwest::Client::new();
    // A large Bulk request is being processed when shutdown starts.
    let n = 2000;
    let ops: Vec<Value> = (0..n)
        .map(|i| {
            json!({"method": "POST", "path": "/Users", "bulkId": format!("b{i}"),
            "data": {"schemas": [USER], "userName": format!("inflight-{i}")}})
        })
        .collect();
    let req = client
        .post(format!("{origin}/scim/a/v2/Bulk"))
        .bearer_auth(&token)
        .header("content-type", "application/scim+json")
        .body(serde_json::to_vec(&bulk(Value::Array(ops))).unwrap())
        .send();
    let in_flight = tokio::spawn(req);
    let probe = reqwest::Client::new();
    loop {
        let r: Value = probe
            .get(format!("{origin}/scim/a/v2/Users?count=0"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if r["totalResults"].as_u64().unwrap() > 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    drop(probe);
    // The server ends once the request in flight is answered, in full.
    s.stop().await;
    let resp = in_flight.await.unwrap().unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["Operations"].as_array().unwrap().len(), n);
    // New connections are refused.
    assert!(
        client
            .get(format!("{origin}/healthz"))
            .send()
            .await
            .is_err()
    );
}

#[tokio::test]
async fn groups_support_put_patch_of_members_search_and_delete() {
    let s = start().await;
    let u1 = s.create_user("a", "g-one").await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let u2 = s.create_user("a", "g-two").await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let g = s
        .a(
            Method::POST,
            "/Groups",
            Some(json!({"schemas": [GROUP], "displayName": "Team", "members": [{"value": u1}]})),
        )
        .await;
    assert_eq!(g.status, 201);
    let path = format!("/Groups/{}", g.body["id"].as_str().unwrap());
    let member_ids = |v: &Value| -> Vec<String> {
        let mut ids: Vec<String> = v["members"]
            .as_array()
            .map(|m| {
                m.iter()
                    .map(|m| m["value"].as_str().unwrap().to_string())
                    .collect()
            })
            .unwrap_or_default();
        ids.sort();
        ids
    };
    // PUT replaces the member list.
    let r = s
        .on(
            "a",
            Method::PUT,
            &path,
            Some(json!({"schemas": [GROUP], "displayName": "Team 2", "members": [{"value": u2}]})),
            &[("if-match", "W/\"1\"")],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(member_ids(&r.body), vec![u2.clone()]);
    // PATCH adds one member and removes another by filter.
    let r = s
        .a(
            Method::PATCH,
            &path,
            Some(json!({"schemas": [PATCH_OP], "Operations": [
                {"op": "add", "path": "members", "value": [{"value": u1}]},
                {"op": "remove", "path": format!("members[value eq \"{u2}\"]")}
            ]})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let g = s.a(Method::GET, &path, None).await;
    assert_eq!(member_ids(&g.body), vec![u1.clone()]);
    assert_eq!(g.body["displayName"], "Team 2");
    // excludedAttributes=members leaves them out.
    let g = s
        .a(
            Method::GET,
            &format!("{path}?excludedAttributes=members"),
            None,
        )
        .await;
    assert!(g.body.get("members").is_none());
    // Groups/.search.
    let r = s
        .a(
            Method::POST,
            "/Groups/.search",
            Some(
                json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
                "filter": "displayName eq \"team 2\""}),
            ),
        )
        .await;
    assert_eq!(r.body["totalResults"], 1);
    // DELETE, then the user's groups no longer list it.
    assert_eq!(s.a(Method::DELETE, &path, None).await.status, 204);
    let u = s.a(Method::GET, &format!("/Users/{u1}"), None).await;
    assert!(
        u.body.get("groups").is_none_or(|g| g == &json!([])),
        "{}",
        u.body
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_puts_without_if_match_all_succeed_and_each_bumps_the_version() {
    let s = Arc::new(start().await);
    let u = s.create_user("a", "contended").await;
    let path = format!("/Users/{}", u["id"].as_str().unwrap());
    let mut tasks = Vec::new();
    for i in 0..12 {
        let s = s.clone();
        let path = path.clone();
        tasks.push(tokio::spawn(async move {
            s.a(
                Method::PUT,
                &path,
                Some(json!({"schemas": [USER], "userName": "contended", "displayName": format!("w{i}")})),
            )
            .await
            .status
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
    let g = s.a(Method::GET, &path, None).await;
    assert_eq!(g.header("etag"), Some("W/\"13\""));
}

#[tokio::test]
async fn if_match_star_needs_existence_and_tag_lists_match_any_listed_version() {
    let s = start().await;
    let u = s.create_user("a", "lists").await;
    let path = format!("/Users/{}", u["id"].as_str().unwrap());
    let op = |v: &str| {
        json!({"schemas": [PATCH_OP], "Operations": [
            {"op": "replace", "path": "displayName", "value": v}
        ]})
    };
    let r = s
        .on(
            "a",
            Method::PATCH,
            &path,
            Some(op("star")),
            &[("if-match", "*")],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = s
        .on(
            "a",
            Method::PATCH,
            &path,
            Some(op("listed")),
            &[("if-match", "W/\"9\", W/\"2\"")],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["displayName"], "listed");
    let r = s
        .on(
            "a",
            Method::PATCH,
            &path,
            Some(op("unlisted")),
            &[("if-match", "W/\"1\", W/\"2\"")],
        )
        .await;
    r.assert_scim_error(412);
    let gone = "/Users/00000000-0000-4000-8000-000000000000";
    s.on("a", Method::DELETE, gone, None, &[("if-match", "*")])
        .await
        .assert_scim_error(404);
    let r = s
        .on("a", Method::DELETE, &path, None, &[("if-match", "W/\"3\"")])
        .await;
    assert_eq!(r.status, 204);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_sharing_a_database_share_tokens_and_resources_at_once() {
    let dir = TempDir::new("scimd-replicas");
    let db = dir.path().join("shared.db");
    let f = dir.path().join("scimd.toml");
    std::fs::write(
        &f,
        format!(
            "[backend]\ntype = \"sqlite\"\npath = {:?}\n\n[[sources]]\nslug = \"a\"\n",
            db.display().to_string()
        ),
    )
    .unwrap();
    let loaded = scimd_server::config::load(Some(&f), &[]).unwrap();
    let one = LocalServer::serve(App::build(&loaded).await.unwrap()).await;
    let two = LocalServer::serve(App::build(&loaded).await.unwrap()).await;
    // The first replica created the initial token; the second found it and made none.
    assert!(one.tokens.contains_key("a"));
    assert!(two.tokens.is_empty());
    let token = one.tokens["a"].clone();
    // A token created through replica one works on replica two without a restart.
    let (_, fresh) = scimd_server::tokens::create(&*one.state, "a", "fresh", None)
        .await
        .unwrap();
    let url = |s: &LocalServer| format!("{}/Users", s.base("a"));
    let r = two
        .send(Method::GET, &url(&two), Some(fresh.expose()), &[], None)
        .await;
    assert_eq!(r.status, 200);
    // A resource written through one is read through the other.
    let r = one
        .send(
            Method::POST,
            &url(&one),
            Some(&token),
            &[("content-type", "application/scim+json")],
            Some(
                serde_json::to_vec(&json!({"schemas": [USER], "userName": "replicated"})).unwrap(),
            ),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let r = two
        .send(
            Method::GET,
            &format!("{}?filter=userName%20eq%20%22replicated%22", url(&two)),
            Some(&token),
            &[],
            None,
        )
        .await;
    assert_eq!(r.body["totalResults"], 1);
    // Revoking through replica two locks the token out of replica one at once.
    two.state
        .revoke_token("a", "fresh", time::OffsetDateTime::now_utc())
        .await
        .unwrap();
    one.send(Method::GET, &url(&one), Some(fresh.expose()), &[], None)
        .await
        .assert_scim_error(401);
}

/// Okta's SCIM 2.0 SPEC test (see `support_okta`), run against the server with the default
/// SQLite backend.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn okta_spec_test_passes_19_of_19() {
    let Some(runner) = support_okta::runner() else {
        return;
    };
    let dir = TempDir::new("scimd-okta");
    let s = LocalServer::start(Config {
        backend: BackendConfig::Sqlite(scimd_backend_sql::SqliteConfig {
            path: dir.path().join("scimd.db"),
            ..Default::default()
        }),
        ..Config::default()
    })
    .await;
    let base = s.base("default");
    let token = s.tokens["default"].clone();
    tokio::task::spawn_blocking(move || support_okta::run(&runner, &base, &token, &[]))
        .await
        .unwrap();
}

#[tokio::test]
async fn root_search_sorts_across_types_with_missing_values_last() {
    let s = start().await;
    let search = |body: Value| s.a(Method::POST, "/.search", Some(body));
    for (u, d) in [("zed", "Zed"), ("amy", "Amy")] {
        s.a(
            Method::POST,
            "/Users",
            Some(json!({"schemas": [USER], "userName": u, "displayName": d})),
        )
        .await;
    }
    s.a(
        Method::POST,
        "/Groups",
        Some(json!({"schemas": [GROUP], "displayName": "Middle"})),
    )
    .await;
    let names = |r: &Value| -> Vec<String> {
        r["Resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x["displayName"].as_str().unwrap_or("-").to_string())
            .collect()
    };
    let sr = "urn:ietf:params:scim:api:messages:2.0:SearchRequest";
    let r = search(json!({"schemas": [sr], "sortBy": "displayName"})).await;
    assert_eq!(names(&r.body), vec!["Amy", "Middle", "Zed"]);
    let r = search(
        json!({"schemas": [sr], "sortBy": "displayName", "sortOrder": "descending",
        "startIndex": 2, "count": 1}),
    )
    .await;
    assert_eq!(r.body["totalResults"], 3);
    assert_eq!(names(&r.body), vec!["Middle"]);
    // Groups have no userName: they come after every user.
    let r = search(json!({"schemas": [sr], "sortBy": "userName"})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(names(&r.body), vec!["Amy", "Zed", "Middle"]);
    let r = search(json!({"schemas": [sr], "sortBy": "noSuchAttribute"})).await;
    r.assert_scim_error(400);
}
