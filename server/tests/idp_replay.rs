//! Identity-provider conversations replayed over HTTP against the real server.
//!
//! Each test sends the requests an identity provider sends, in the order it sends them, and
//! checks the stored state after every step (by reading it back), not only status codes. The
//! request shapes come from Microsoft's "Develop and plan provisioning for a SCIM endpoint in
//! Microsoft Entra ID" tutorial and its "Known issues and resolutions with SCIM 2.0 protocol
//! compliance" page (with and without the `aadOptscim062020` flag), and from Okta's "Okta and
//! SCIM Version 2.0" reference. Compatibility rules are checked firing (in `/metrics`) and
//! switched off by `compat = ["strict"]`.
//!
//! The last tests replay Entra ID's concurrent membership pattern — five parallel
//! single-member PATCHes against one group — for 1,000 members on the memory, SQLite and
//! PostgreSQL backends: nothing may be lost.

#![allow(clippy::unwrap_used)]

#[path = "../../backends/sql/tests/support/pg.rs"]
mod pg;
mod support_scimd;

use reqwest::Method;
use scimd_server::config::{BackendConfig, Config, MemoryConfig, PatchResponse, SourceConfig};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::sync::Arc;
use support_scimd::{ENTERPRISE, GROUP, LIST, LocalServer, PATCH_OP, Resp, TempDir, USER};

// ---------------------------------------------------------------------------------------------
// A server on 127.0.0.1:0 (`support_scimd`) and the requests of the replays.
// ---------------------------------------------------------------------------------------------

/// Sources: `entra` (compat `entra`, PATCH answers 204 as Microsoft's tutorial asks for
/// groups), `okta` (the defaults) and `strict` (no rule).
fn replay_config(backend: BackendConfig) -> Config {
    let mut entra = SourceConfig::named("entra");
    entra.compat = vec!["entra".into()];
    entra.patch_response = PatchResponse::NoContent;
    let okta = SourceConfig::named("okta");
    let mut strict = SourceConfig::named("strict");
    strict.compat = vec!["strict".into()];
    let mut filters = SourceConfig::named("filters");
    filters.compat = vec!["attribute_filters".into()];
    Config {
        sources: vec![entra, okta, strict, filters],
        backend,
        ..Config::default()
    }
}

/// Serves the replay's sources on the memory backend.
async fn memory() -> LocalServer {
    LocalServer::start(replay_config(BackendConfig::Memory(MemoryConfig {}))).await
}

/// The replays' requests, each asserting the answer an identity provider expects.
impl LocalServer {
    async fn get(&self, source: &str, path: &str) -> Value {
        let r = self.call(source, Method::GET, path, None).await;
        assert_eq!(r.status, 200, "GET {path}: {}", r.body);
        r.body
    }

    async fn post(&self, source: &str, path: &str, body: Value) -> Value {
        let r = self.call(source, Method::POST, path, Some(body)).await;
        assert_eq!(r.status, 201, "POST {path}: {}", r.body);
        r.body
    }

    async fn patch(&self, source: &str, path: &str, ops: Value) -> Resp {
        self.call(
            source,
            Method::PATCH,
            path,
            Some(json!({"schemas": [PATCH_OP], "Operations": ops})),
        )
        .await
    }

    /// A PATCH that must succeed (200 or 204).
    async fn patch_ok(&self, source: &str, path: &str, ops: Value) {
        let r = self.patch(source, path, ops.clone()).await;
        assert!(
            r.status == 200 || r.status == 204,
            "PATCH {path} {ops}: {} {}",
            r.status,
            r.body
        );
    }

    /// A filtered list, URL-encoding the filter.
    async fn filter(&self, source: &str, endpoint: &str, filter: &str, extra: &str) -> Value {
        let q = encode(filter);
        self.get(source, &format!("/{endpoint}?filter={q}{extra}"))
            .await
    }

    /// The value of `scimd_compat_rule_fired_total` for a source and rule (0 when absent).
    async fn fired(&self, source: &str, rule: &str) -> u64 {
        let needle =
            format!("scimd_compat_rule_fired_total{{source=\"{source}\",rule=\"{rule}\"}} ");
        self.metrics()
            .await
            .lines()
            .find_map(|l| l.strip_prefix(&needle))
            .map(|n| n.trim().parse().unwrap())
            .unwrap_or(0)
    }
}

/// Percent-encodes a query value.
fn encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn total(list: &Value) -> u64 {
    assert_eq!(list["schemas"], json!([LIST]), "{list}");
    list["totalResults"].as_u64().unwrap()
}

fn ids(list: &Value) -> Vec<String> {
    list["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect()
}

fn member_ids(group: &Value) -> BTreeSet<String> {
    group["members"]
        .as_array()
        .map(|m| {
            m.iter()
                .map(|m| m["value"].as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default()
}

fn random_guid() -> String {
    uuid::Uuid::new_v4().to_string()
}

// ---------------------------------------------------------------------------------------------
// Microsoft Entra ID.
// ---------------------------------------------------------------------------------------------

/// Entra's "Test Connection" and every provisioning cycle start with queries for a random
/// GUID: 200 with an empty ListResponse, never 404.
#[tokio::test]
async fn entra_connection_probe_answers_200_with_an_empty_list() {
    let s = memory().await;
    let guid = random_guid();
    for (endpoint, filter, extra) in [
        ("Users", format!("userName eq \"{guid}\""), ""),
        ("Users", format!("externalId eq \"{guid}\""), ""),
        (
            "Groups",
            format!("displayName eq \"{guid}\""),
            "&excludedAttributes=members",
        ),
    ] {
        let list = s.filter("entra", endpoint, &filter, extra).await;
        assert_eq!(total(&list), 0, "{list}");
        assert_eq!(list["Resources"], json!([]));
    }
    // The tenant URL may carry the flag as a query parameter; it changes nothing here.
    let list = s
        .get(
            "entra",
            &format!(
                "/Users?aadOptscim062020&filter={}",
                encode(&format!("userName eq \"{guid}\""))
            ),
        )
        .await;
    assert_eq!(total(&list), 0);
}

/// The user lifecycle as Entra ID sends it by default (no flag): create, query by
/// `externalId` without quotes, update with capitalized ops and string booleans, manager as an
/// array, a reference check, disable, delete.
#[tokio::test]
async fn entra_user_lifecycle_without_the_flag_stores_every_step() {
    let s = memory().await;
    // Example 1: the matching query (unquoted value) finds nothing yet.
    let list = s.filter("entra", "Users", "externalId eq jyoung", "").await;
    assert_eq!(total(&list), 0);
    // Example 2: the create request, with the tutorial's malformed enterprise URN and nulls.
    let created = s
        .post(
            "entra",
            "/Users",
            json!({
                "schemas": [USER, "urn:ietf:params:scim:schemas:extension:enterprise:2.0User"],
                "externalId": "jyoung",
                "userName": "jyoung@testuser.com",
                "active": true,
                "addresses": null,
                "displayName": "Joy Young",
                "emails": [{"type": "work", "value": "jyoung@Contoso.com", "primary": true}],
                "meta": {"resourceType": "User"},
                "name": {"familyName": "Young", "givenName": "Joy"},
                "phoneNumbers": null,
                "preferredLanguage": null,
                "title": null,
                "department": null,
                "manager": null,
                "roles": []
            }),
        )
        .await;
    let id = created["id"].as_str().unwrap().to_string();
    let user = s.get("entra", &format!("/Users/{id}")).await;
    assert_eq!(user["userName"], "jyoung@testuser.com");
    assert_eq!(user["externalId"], "jyoung");
    assert_eq!(user["active"], true);
    // Stored as sent: no case folding of the email.
    assert_eq!(
        user["emails"],
        json!([{"type": "work", "value": "jyoung@Contoso.com", "primary": true}])
    );
    for absent in ["addresses", "phoneNumbers", "title", "roles", ENTERPRISE] {
        assert!(user.get(absent).is_none(), "{absent} in {user}");
    }
    // Queries: userName case-insensitively, externalId case-exactly, unquoted or quoted.
    let list = s.filter("entra", "Users", "externalId eq jyoung", "").await;
    assert_eq!(ids(&list), vec![id.clone()]);
    let list = s
        .filter("entra", "Users", "externalId eq \"JYOUNG\"", "")
        .await;
    assert_eq!(total(&list), 0, "externalId is caseExact");
    let list = s
        .filter("entra", "Users", "userName eq \"JYoung@TestUser.com\"", "")
        .await;
    assert_eq!(ids(&list), vec![id.clone()]);
    // The "replace multiple attributes" request without the flag.
    s.patch_ok(
        "entra",
        &format!("/Users/{id}"),
        json!([
            {"op": "Replace", "path": "displayName", "value": "Pvlo"},
            {"op": "Replace", "path": "emails[type eq \"work\"].value", "value": "TestBcwqnm@test.microsoft.com"},
            {"op": "Replace", "path": "name.givenName", "value": "Gtfd"},
            {"op": "Replace", "path": "name.familyName", "value": "Pkqf"},
            {"op": "Replace", "path": "externalId", "value": "Eqpj"},
            {"op": "Replace", "path": format!("{ENTERPRISE}:employeeNumber"), "value": "Eqpj"}
        ]),
    )
    .await;
    let user = s.get("entra", &format!("/Users/{id}")).await;
    assert_eq!(user["displayName"], "Pvlo");
    assert_eq!(
        user["emails"],
        json!([{"type": "work", "value": "TestBcwqnm@test.microsoft.com", "primary": true}])
    );
    assert_eq!(
        user["name"],
        json!({"familyName": "Pkqf", "givenName": "Gtfd"})
    );
    assert_eq!(user["externalId"], "Eqpj");
    assert_eq!(user[ENTERPRISE]["employeeNumber"], "Eqpj");
    // A single-value add with a capitalized op.
    s.patch_ok(
        "entra",
        &format!("/Users/{id}"),
        json!([{"op": "Add", "path": "nickName", "value": "Babs"}]),
    )
    .await;
    assert_eq!(
        s.get("entra", &format!("/Users/{id}")).await["nickName"],
        "Babs"
    );
    // Example 4 and 5: the manager, checked with a compound reference query, then added as a
    // one-element array with a `$ref`.
    let manager = s
        .post(
            "entra",
            "/Users",
            json!({"schemas": [USER], "userName": "boss@testuser.com", "externalId": "boss"}),
        )
        .await;
    let mid = manager["id"].as_str().unwrap().to_string();
    let check = format!("id eq \"{id}\" and manager eq \"{mid}\"");
    assert_eq!(
        total(&s.filter("entra", "Users", &check, "&attributes=id").await),
        0
    );
    s.patch_ok(
        "entra",
        &format!("/Users/{id}"),
        json!([{"op": "Add", "path": "manager", "value": [
            {"$ref": format!("http://example/scim/Users/{mid}"), "value": mid}
        ]}]),
    )
    .await;
    let user = s.get("entra", &format!("/Users/{id}")).await;
    assert_eq!(user[ENTERPRISE]["manager"]["value"], mid.as_str());
    let list = s.filter("entra", "Users", &check, "&attributes=id").await;
    assert_eq!(ids(&list), vec![id.clone()]);
    // Disable: "False" as a string, capitalized op. The user stays readable and filterable.
    s.patch_ok(
        "entra",
        &format!("/Users/{id}"),
        json!([{"op": "Replace", "path": "active", "value": "False"}]),
    )
    .await;
    let user = s.get("entra", &format!("/Users/{id}")).await;
    assert_eq!(user["active"], false);
    assert_eq!(user["userName"], "jyoung@testuser.com");
    let list = s.filter("entra", "Users", "active eq false", "").await;
    assert_eq!(ids(&list), vec![id.clone()]);
    let list = s
        .filter("entra", "Users", "userName eq \"jyoung@testuser.com\"", "")
        .await;
    assert_eq!(list["Resources"][0]["active"], false);
    // Delete (Example 6).
    let r = s
        .call("entra", Method::DELETE, &format!("/Users/{id}"), None)
        .await;
    assert_eq!(r.status, 204);
    let r = s
        .call("entra", Method::GET, &format!("/Users/{id}"), None)
        .await;
    assert_eq!(r.status, 404);
    let list = s.filter("entra", "Users", "externalId eq Eqpj", "").await;
    assert_eq!(total(&list), 0);
    // The rules that made this work were counted.
    for rule in [
        "op_case",
        "boolean_strings",
        "unquoted_filter_values",
        "single_element_arrays",
        "lenient_schemas",
    ] {
        assert!(s.fired("entra", rule).await >= 1, "{rule} not counted");
    }
}

/// The same lifecycle with `aadOptscim062020`: lower-case ops, real booleans, and several
/// attributes in one path-less replace whose keys are paths.
#[tokio::test]
async fn entra_user_lifecycle_with_the_flag_stores_every_step() {
    let s = memory().await;
    let created = s
        .post(
            "entra",
            "/Users?aadOptscim062020",
            json!({
                "schemas": [USER, ENTERPRISE],
                "externalId": "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef",
                "userName": "Test_User_00aa00aa@testuser.com",
                "active": true,
                "emails": [{"primary": true, "type": "work", "value": "Test_User_11bb@testuser.com"}],
                "meta": {"resourceType": "User"},
                "name": {"formatted": "givenName familyName", "familyName": "familyName",
                         "givenName": "givenName"},
                "roles": []
            }),
        )
        .await;
    let id = created["id"].as_str().unwrap().to_string();
    s.patch_ok(
        "entra",
        &format!("/Users/{id}?aadOptscim062020"),
        json!([{"op": "add", "path": "nickName", "value": "Babs"}]),
    )
    .await;
    s.patch_ok(
        "entra",
        &format!("/Users/{id}?aadOptscim062020"),
        json!([
            {"op": "replace", "path": "emails[type eq \"work\"].value", "value": "TestMhvaes@test.microsoft.com"},
            {"op": "replace", "value": {
                "displayName": "Bjfe",
                "name.givenName": "Kkom",
                "name.familyName": "Unua",
                format!("{ENTERPRISE}:employeeNumber"): "Aklq"
            }}
        ]),
    )
    .await;
    let user = s.get("entra", &format!("/Users/{id}")).await;
    assert_eq!(user["nickName"], "Babs");
    assert_eq!(user["displayName"], "Bjfe");
    assert_eq!(
        user["name"],
        json!({"formatted": "givenName familyName", "familyName": "Unua", "givenName": "Kkom"})
    );
    assert_eq!(user["emails"][0]["value"], "TestMhvaes@test.microsoft.com");
    assert_eq!(user["emails"][0]["primary"], true);
    assert_eq!(user[ENTERPRISE]["employeeNumber"], "Aklq");
    s.patch_ok(
        "entra",
        &format!("/Users/{id}?aadOptscim062020"),
        json!([{"op": "replace", "path": "active", "value": false}]),
    )
    .await;
    let user = s.get("entra", &format!("/Users/{id}")).await;
    assert_eq!(user["active"], false);
    assert!(s.fired("entra", "dotted_keys").await >= 1);
    let r = s
        .call("entra", Method::DELETE, &format!("/Users/{id}"), None)
        .await;
    assert_eq!(r.status, 204);
    assert_eq!(
        s.call("entra", Method::GET, &format!("/Users/{id}"), None)
            .await
            .status,
        404
    );
}

/// Groups as Entra ID provisions them: created empty with its ADSCIM URN, read without
/// members, members added one by one with `"$ref": null`, removed both ways (a value list
/// without the flag, a filter with it), a membership reference check, a rename, delete.
#[tokio::test]
async fn entra_group_lifecycle_adds_and_removes_exactly_the_members_named() {
    let s = memory().await;
    let mut users = Vec::new();
    for i in 0..3 {
        let u = s
            .post(
                "entra",
                "/Users",
                json!({"schemas": [USER], "userName": format!("member{i}@testuser.com")}),
            )
            .await;
        users.push(u["id"].as_str().unwrap().to_string());
    }
    let created = s
        .post(
            "entra",
            "/Groups",
            json!({
                "schemas": [GROUP,
                    "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"],
                "externalId": "8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159",
                "displayName": "displayName",
                "meta": {"resourceType": "Group"}
            }),
        )
        .await;
    let gid = created["id"].as_str().unwrap().to_string();
    let path = format!("/Groups/{gid}");
    // Read and query without members; displayName matches case-insensitively.
    let g = s
        .get("entra", &format!("{path}?excludedAttributes=members"))
        .await;
    assert_eq!(g["displayName"], "displayName");
    assert!(g.get("members").is_none());
    let list = s
        .filter(
            "entra",
            "Groups",
            "displayName eq \"DISPLAYNAME\"",
            "&excludedAttributes=members",
        )
        .await;
    assert_eq!(ids(&list), vec![gid.clone()]);
    assert!(list["Resources"][0].get("members").is_none());
    // Add members, one PATCH each, as Entra does. PATCH answers 204 on this source.
    for u in &users {
        let r = s
            .patch(
                "entra",
                &path,
                json!([{"op": "Add", "path": "members", "value": [{"$ref": null, "value": u}]}]),
            )
            .await;
        assert_eq!(r.status, 204, "{}", r.body);
    }
    let g = s.get("entra", &path).await;
    assert_eq!(member_ids(&g), users.iter().cloned().collect());
    // Excluding members on a group that has some still leaves them out.
    let g = s
        .get("entra", &format!("{path}?excludedAttributes=members"))
        .await;
    assert!(g.get("members").is_none());
    // The membership reference check.
    let check = |u: &str| format!("id eq \"{gid}\" and members eq \"{u}\"");
    let list = s
        .filter(
            "entra",
            "Groups",
            &check(&users[0]),
            "&excludedAttributes=members",
        )
        .await;
    assert_eq!(ids(&list), vec![gid.clone()]);
    // Remove without the flag: a value list removes exactly that member, never all.
    s.patch_ok(
        "entra",
        &path,
        json!([{"op": "Remove", "path": "members", "value": [{"$ref": null, "value": users[0]}]}]),
    )
    .await;
    let g = s.get("entra", &path).await;
    assert_eq!(
        member_ids(&g),
        users[1..].iter().cloned().collect::<BTreeSet<_>>()
    );
    let list = s
        .filter(
            "entra",
            "Groups",
            &check(&users[0]),
            "&excludedAttributes=members",
        )
        .await;
    assert_eq!(total(&list), 0);
    // Remove with the flag: a value filter.
    s.patch_ok(
        "entra",
        &format!("{path}?aadOptscim062020"),
        json!([{"op": "remove", "path": format!("members[value eq \"{}\"]", users[1])}]),
    )
    .await;
    let g = s.get("entra", &path).await;
    assert_eq!(member_ids(&g), BTreeSet::from([users[2].clone()]));
    // The user side reflects membership.
    let u = s.get("entra", &format!("/Users/{}", users[2])).await;
    assert_eq!(u["groups"][0]["value"], gid.as_str());
    let u = s.get("entra", &format!("/Users/{}", users[0])).await;
    assert!(u.get("groups").is_none_or(|g| g == &json!([])), "{u}");
    // Rename.
    s.patch_ok(
        "entra",
        &path,
        json!([{"op": "Replace", "path": "displayName", "value": "1879db59updatedDisplayName"}]),
    )
    .await;
    let g = s.get("entra", &path).await;
    assert_eq!(g["displayName"], "1879db59updatedDisplayName");
    assert_eq!(member_ids(&g), BTreeSet::from([users[2].clone()]));
    // Delete.
    assert_eq!(
        s.call("entra", Method::DELETE, &path, None).await.status,
        204
    );
    assert_eq!(s.call("entra", Method::GET, &path, None).await.status, 404);
    assert!(s.fired("entra", "remove_with_value").await >= 1);
}

/// Entra ID's app-role mappings send roles whose values are JSON-encoded objects; the `entra`
/// preset decodes them, the defaults keep the text as the role value.
#[tokio::test]
async fn entra_roles_with_json_encoded_values_are_decoded_under_the_entra_preset() {
    let s = memory().await;
    let role = json!({"primary": false, "type": "WindowsAzureActiveDirectoryRole",
        "value": "{\"id\":\"06b07648-ecfe-589f-9d2f-6325724a46ee\",\"value\":\"25\",\"displayName\":\"Role1234\"}"});
    for (source, expected) in [
        (
            "entra",
            json!([{"primary": false, "type": "WindowsAzureActiveDirectoryRole", "value": "25",
                    "display": "Role1234"}]),
        ),
        ("okta", json!([role.clone()])),
    ] {
        let u = s
            .post(
                source,
                "/Users",
                json!({"schemas": [USER], "userName": format!("roles-{source}")}),
            )
            .await;
        let id = u["id"].as_str().unwrap();
        s.patch_ok(
            source,
            &format!("/Users/{id}"),
            json!([{"op": "Add", "path": "roles", "value": [role.clone()]}]),
        )
        .await;
        let u = s.get(source, &format!("/Users/{id}")).await;
        assert_eq!(u["roles"], expected, "{source}");
    }
    assert!(s.fired("entra", "roles_json_strings").await >= 1);
    assert_eq!(s.fired("okta", "roles_json_strings").await, 0);
}

// ---------------------------------------------------------------------------------------------
// Okta.
// ---------------------------------------------------------------------------------------------

/// Okta's user lifecycle: the existence query with paging parameters, the create with its
/// placeholder password and empty `groups`, the read-modify-PUT update, the path-less
/// deactivation and reactivation. Okta never deletes users.
#[tokio::test]
async fn okta_user_lifecycle_put_updates_and_pathless_deactivation() {
    let s = memory().await;
    let q = "&startIndex=1&count=100";
    let list = s
        .filter("okta", "Users", "userName eq \"test.user@okta.local\"", q)
        .await;
    assert_eq!(total(&list), 0);
    assert_eq!(list["startIndex"], 1);
    let created = s
        .post(
            "okta",
            "/Users",
            json!({
                "schemas": [USER],
                "userName": "test.user@okta.local",
                "name": {"givenName": "Test", "familyName": "User"},
                "emails": [{"primary": true, "value": "test.user@okta.local", "type": "work"}],
                "displayName": "Test User",
                "locale": "en-US",
                "externalId": "00ujl29u0le5T6Aj10h7",
                "groups": [],
                "password": "1mz050nq",
                "active": true
            }),
        )
        .await;
    let id = created["id"].as_str().unwrap().to_string();
    assert!(created.get("password").is_none());
    // The existence query now finds it, also upper-cased (Okta's 2024 SPEC test).
    let list = s
        .filter("okta", "Users", "userName eq \"TEST.USER@OKTA.LOCAL\"", q)
        .await;
    assert_eq!(ids(&list), vec![id.clone()]);
    // Update: GET, change, PUT everything back (with id, meta, groups and emails.display).
    let mut body = s.get("okta", &format!("/Users/{id}")).await;
    body["name"]["middleName"] = json!("Excited");
    body["name"]["givenName"] = json!("Another");
    body["emails"][0]["display"] = json!("test.user@okta.local");
    let r = s
        .call("okta", Method::PUT, &format!("/Users/{id}"), Some(body))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let user = s.get("okta", &format!("/Users/{id}")).await;
    assert_eq!(
        user["name"],
        json!({"givenName": "Another", "middleName": "Excited", "familyName": "User"})
    );
    assert_eq!(user["emails"][0]["display"], "test.user@okta.local");
    assert_eq!(user["externalId"], "00ujl29u0le5T6Aj10h7");
    assert_eq!(user["active"], true);
    // Deactivate with a path-less replace; the user stays readable and filterable.
    s.patch_ok(
        "okta",
        &format!("/Users/{id}"),
        json!([{"op": "replace", "value": {"active": false}}]),
    )
    .await;
    let user = s.get("okta", &format!("/Users/{id}")).await;
    assert_eq!(user["active"], false);
    assert_eq!(user["name"]["middleName"], "Excited");
    let list = s
        .filter("okta", "Users", "userName eq \"test.user@okta.local\"", q)
        .await;
    assert_eq!(list["Resources"][0]["active"], false);
    // Reactivate.
    s.patch_ok(
        "okta",
        &format!("/Users/{id}"),
        json!([{"op": "replace", "value": {"active": true}}]),
    )
    .await;
    assert_eq!(s.get("okta", &format!("/Users/{id}")).await["active"], true);
}

/// Okta imports users page by page with `startIndex` and `count=100`: every user exactly once,
/// integer paging fields, the same order whatever the page size.
#[tokio::test]
async fn okta_import_paging_returns_every_user_once_in_a_stable_order() {
    let s = memory().await;
    let mut created = BTreeSet::new();
    for i in 0..230 {
        let u = s
            .post(
                "okta",
                "/Users",
                json!({"schemas": [USER], "userName": format!("import{i:03}@okta.local")}),
            )
            .await;
        created.insert(u["id"].as_str().unwrap().to_string());
    }
    let walk = |count: u64| {
        let s = &s;
        async move {
            let mut seen = Vec::new();
            let mut start = 1;
            loop {
                let page = s
                    .get("okta", &format!("/Users?startIndex={start}&count={count}"))
                    .await;
                assert!(page["totalResults"].is_u64(), "{page}");
                assert!(page["itemsPerPage"].is_u64(), "{page}");
                assert_eq!(page["startIndex"].as_u64(), Some(start));
                assert_eq!(page["totalResults"], 230);
                let got = ids(&page);
                if got.is_empty() {
                    break;
                }
                start += got.len() as u64;
                seen.extend(got);
            }
            seen
        }
    };
    let by_100 = walk(100).await;
    assert_eq!(by_100.len(), 230);
    assert_eq!(by_100.iter().cloned().collect::<BTreeSet<_>>(), created);
    assert_eq!(walk(37).await, by_100, "order depends on the page size");
    let groups = s.get("okta", "/Groups?startIndex=1&count=100").await;
    assert_eq!(total(&groups), 0);
}

/// Okta's group push: create with empty members, rename by a path-less replace that resends
/// the id, membership changes as `remove members[value eq …]` + `add`, a full `replace`, the
/// App Integration Wizard's PUT, and unlinking with delete.
#[tokio::test]
async fn okta_group_push_keeps_membership_exact_at_every_step() {
    let s = memory().await;
    let mut users = Vec::new();
    for i in 0..3 {
        let u = s
            .post(
                "okta",
                "/Users",
                json!({"schemas": [USER], "userName": format!("push{i}@okta.local")}),
            )
            .await;
        users.push(u["id"].as_str().unwrap().to_string());
    }
    let g = s
        .post(
            "okta",
            "/Groups",
            json!({"schemas": [GROUP], "displayName": "Test SCIMv2", "members": []}),
        )
        .await;
    let gid = g["id"].as_str().unwrap().to_string();
    let path = format!("/Groups/{gid}");
    assert!(s.get("okta", &path).await.get("members").is_none());
    // Rename, resending the id (a readOnly attribute) in the value.
    s.patch_ok(
        "okta",
        &path,
        json!([{"op": "replace", "value": {"id": gid, "displayName": "Test SCIMv20"}}]),
    )
    .await;
    let g = s.get("okta", &path).await;
    assert_eq!(g["displayName"], "Test SCIMv20");
    assert_eq!(g["id"], gid.as_str());
    // Add two members, then swap one for the third.
    s.patch_ok(
        "okta",
        &path,
        json!([{"op": "add", "path": "members", "value": [
            {"value": users[0], "display": "push0@okta.local"},
            {"value": users[1], "display": "push1@okta.local"}]}]),
    )
    .await;
    s.patch_ok(
        "okta",
        &path,
        json!([
            {"op": "remove", "path": format!("members[value eq \"{}\"]", users[0])},
            {"op": "add", "path": "members", "value": [{"value": users[2], "display": "push2@okta.local"}]}
        ]),
    )
    .await;
    let g = s.get("okta", &path).await;
    assert_eq!(
        member_ids(&g),
        BTreeSet::from([users[1].clone(), users[2].clone()])
    );
    let shown: Vec<&str> = g["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["display"].as_str().unwrap())
        .collect();
    assert!(shown.contains(&"push2@okta.local"), "{g}");
    // A full push replaces every member.
    s.patch_ok(
        "okta",
        &path,
        json!([{"op": "replace", "path": "members", "value": [
            {"value": users[0], "display": "push0@okta.local"}]}]),
    )
    .await;
    assert_eq!(
        member_ids(&s.get("okta", &path).await),
        BTreeSet::from([users[0].clone()])
    );
    // The App Integration Wizard's PUT with the whole membership.
    let r = s
        .call(
            "okta",
            Method::PUT,
            &path,
            Some(
                json!({"schemas": [GROUP], "displayName": "Test SCIMv2", "members": [
                {"value": users[1], "display": "push1@okta.local"},
                {"value": users[2], "display": "push2@okta.local"}]}),
            ),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let g = s.get("okta", &path).await;
    assert_eq!(g["displayName"], "Test SCIMv2");
    assert_eq!(
        member_ids(&g),
        BTreeSet::from([users[1].clone(), users[2].clone()])
    );
    assert_eq!(
        s.call("okta", Method::DELETE, &path, None).await.status,
        204
    );
    assert_eq!(s.call("okta", Method::GET, &path, None).await.status, 404);
    let u = s.get("okta", &format!("/Users/{}", users[1])).await;
    assert!(u.get("groups").is_none_or(|g| g == &json!([])), "{u}");
    assert!(s.fired("okta", "read_only_in_patch").await >= 1);
}

// ---------------------------------------------------------------------------------------------
// JumpCloud, OneLogin.
// ---------------------------------------------------------------------------------------------

/// JumpCloud's connection test creates a test user and a test group, reads them back and
/// deletes both; nothing is left behind.
#[tokio::test]
async fn jumpcloud_connection_test_creates_and_deletes_a_user_and_a_group() {
    let s = memory().await;
    let u = s
        .post(
            "okta",
            "/Users",
            json!({"schemas": [USER, ENTERPRISE], "userName": "jctestuser@jumpcloud.test",
                "name": {"givenName": "JC", "familyName": "Test"},
                "emails": [{"value": "jctestuser@jumpcloud.test", "type": "work", "primary": true}],
                "active": true}),
        )
        .await;
    let uid = u["id"].as_str().unwrap().to_string();
    let g = s
        .post(
            "okta",
            "/Groups",
            json!({"schemas": [GROUP], "displayName": "JumpCloud Test Group",
                "members": [{"value": uid}]}),
        )
        .await;
    let gid = g["id"].as_str().unwrap().to_string();
    assert_eq!(
        member_ids(&s.get("okta", &format!("/Groups/{gid}")).await),
        BTreeSet::from([uid.clone()])
    );
    for path in [format!("/Groups/{gid}"), format!("/Users/{uid}")] {
        assert_eq!(
            s.call("okta", Method::DELETE, &path, None).await.status,
            204
        );
        assert_eq!(s.call("okta", Method::GET, &path, None).await.status, 404);
    }
    assert_eq!(total(&s.get("okta", "/Users").await), 0);
    assert_eq!(total(&s.get("okta", "/Groups").await), 0);
}

/// OneLogin's SCIM 1.1-era URN in `schemas` is tolerated by default and refused when strict.
#[tokio::test]
async fn onelogin_scim_1_1_urns_are_tolerated_by_default_and_refused_when_strict() {
    let s = memory().await;
    let body = json!({"schemas": [USER, "urn:scim:schemas:extension:enterprise:1.0"],
        "userName": "ol@onelogin.test"});
    let u = s.post("okta", "/Users", body.clone()).await;
    let stored = s
        .get("okta", &format!("/Users/{}", u["id"].as_str().unwrap()))
        .await;
    assert_eq!(stored["userName"], "ol@onelogin.test");
    assert!(s.fired("okta", "lenient_schemas").await >= 1);
    let r = s.call("strict", Method::POST, "/Users", Some(body)).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(total(&s.get("strict", "/Users").await), 0);
}

// ---------------------------------------------------------------------------------------------
// Rules switched off, rules opted into.
// ---------------------------------------------------------------------------------------------

/// A strict source refuses each of the request shapes the other tests needed a rule for, and
/// changes nothing; no rule is counted for it.
#[tokio::test]
async fn a_strict_source_refuses_every_tolerated_shape_and_changes_nothing() {
    let s = memory().await;
    let u = s
        .post(
            "strict",
            "/Users",
            json!({"schemas": [USER], "userName": "strict@example.com", "active": true}),
        )
        .await;
    let uid = u["id"].as_str().unwrap().to_string();
    let g = s
        .post(
            "strict",
            "/Groups",
            json!({"schemas": [GROUP], "displayName": "g", "members": [{"value": uid}]}),
        )
        .await;
    let gid = g["id"].as_str().unwrap().to_string();
    let before_user = s.get("strict", &format!("/Users/{uid}")).await;
    let before_group = s.get("strict", &format!("/Groups/{gid}")).await;
    let user_path = format!("/Users/{uid}");
    let group_path = format!("/Groups/{gid}");
    let refused: Vec<(&str, Value)> = vec![
        (
            &user_path,
            json!([{"op": "Replace", "path": "active", "value": false}]),
        ),
        (
            &user_path,
            json!([{"op": "replace", "path": "active", "value": "False"}]),
        ),
        (
            &user_path,
            json!([{"op": "replace", "value": {"name.givenName": "X"}}]),
        ),
        (
            &user_path,
            json!([{"op": "add", "path": "manager", "value": [{"value": uid}]}]),
        ),
        (
            &user_path,
            json!([{"op": "replace", "path": "emails[type eq work].value", "value": "x"}]),
        ),
        (
            &group_path,
            json!([{"op": "remove", "path": "members", "value": [{"value": uid}]}]),
        ),
        (
            &group_path,
            json!([{"op": "replace", "value": {"id": gid, "displayName": "h"}}]),
        ),
        (
            &group_path,
            json!([{"op": "add", "path": "members", "value": [{"displayName": "n", "value": uid}]}]),
        ),
    ];
    for (path, ops) in refused {
        let r = s.patch("strict", path, ops.clone()).await;
        assert_eq!(r.status, 400, "{ops}: {}", r.body);
        assert_eq!(r.body["status"], "400");
    }
    let r = s
        .call(
            "strict",
            Method::GET,
            &format!("/Users?filter={}", encode("externalId eq jyoung")),
            None,
        )
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.body["scimType"], "invalidFilter");
    assert_eq!(s.get("strict", &user_path).await, before_user);
    assert_eq!(s.get("strict", &group_path).await, before_group);
    let metrics = s.metrics().await;
    assert!(
        !metrics.contains("scimd_compat_rule_fired_total{source=\"strict\""),
        "{metrics}"
    );
}

/// Value filters inside `attributes` (Microsoft's reference collection) are read as the
/// attribute where `attribute_filters` is enabled, and refused elsewhere.
#[tokio::test]
async fn attribute_filters_rule_reads_a_filtered_attribute_as_the_attribute() {
    let s = memory().await;
    for source in ["filters", "okta"] {
        s.post(
            source,
            "/Users",
            json!({"schemas": [USER], "userName": "ca@example.com",
                "emails": [{"type": "work", "value": "emailName357"},
                           {"type": "home", "value": "home@example.com"}]}),
        )
        .await;
    }
    let q = format!("/Users?attributes={}", encode("emails[type eq \"work\"]"));
    let list = s.get("filters", &q).await;
    let user = &list["Resources"][0];
    assert_eq!(user["emails"].as_array().unwrap().len(), 2);
    assert!(user.get("userName").is_none(), "{user}");
    assert!(s.fired("filters", "attribute_filters").await >= 1);
    let r = s.call("okta", Method::GET, &q, None).await;
    assert_eq!(r.status, 400, "{}", r.body);
}

// ---------------------------------------------------------------------------------------------
// Entra ID's concurrent membership pattern.
// ---------------------------------------------------------------------------------------------

/// 1,000 users joined to one group by single-member PATCHes, five in flight at a time as Entra
/// ID sends them, then removed the same way: every add and every remove must land.
async fn five_parallel_single_member_patches_lose_nothing(s: &LocalServer) {
    const MEMBERS: usize = 1000;
    const PARALLEL: usize = 5;
    let s = Arc::new(s);
    let mut users = Vec::with_capacity(MEMBERS);
    for i in 0..MEMBERS {
        let u = s
            .post(
                "entra",
                "/Users",
                json!({"schemas": [USER], "userName": format!("c{i:04}@testuser.com")}),
            )
            .await;
        users.push(u["id"].as_str().unwrap().to_string());
    }
    let g = s
        .post(
            "entra",
            "/Groups",
            json!({"schemas": [GROUP], "displayName": "concurrent"}),
        )
        .await;
    let path = format!("/Groups/{}", g["id"].as_str().unwrap());
    for (op, shape) in [("Add", "add"), ("Remove", "remove")] {
        let chunks: Vec<Vec<String>> = (0..PARALLEL)
            .map(|w| users.iter().skip(w).step_by(PARALLEL).cloned().collect())
            .collect();
        let runs = chunks.into_iter().map(|chunk| {
            let s = s.clone();
            let path = path.clone();
            async move {
                for u in chunk {
                    let ops = json!([{"op": op, "path": "members",
                        "value": [{"$ref": null, "value": u}]}]);
                    let r = s.patch("entra", &path, ops).await;
                    assert_eq!(r.status, 204, "{shape} {u}: {}", r.body);
                }
            }
        });
        futures_join_all(runs).await;
        let group = s.get("entra", &path).await;
        let expected: BTreeSet<String> = if shape == "add" {
            users.iter().cloned().collect()
        } else {
            BTreeSet::new()
        };
        assert_eq!(member_ids(&group), expected, "after the parallel {shape}s");
    }
}

/// Runs futures concurrently on the current task (no extra dependency).
async fn futures_join_all<F: std::future::Future<Output = ()>>(futs: impl Iterator<Item = F>) {
    let handles: Vec<_> = futs.collect();
    let mut pinned: Vec<std::pin::Pin<Box<F>>> = handles.into_iter().map(Box::pin).collect();
    std::future::poll_fn(|cx| {
        pinned.retain_mut(|f| f.as_mut().poll(cx).is_pending());
        if pinned.is_empty() {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entra_concurrent_member_patches_lose_nothing_on_memory() {
    let s = memory().await;
    five_parallel_single_member_patches_lose_nothing(&s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entra_concurrent_member_patches_lose_nothing_on_sqlite() {
    let dir = TempDir::new("scimd-replay");
    let s = LocalServer::start(replay_config(BackendConfig::Sqlite(
        scimd_backend_sql::SqliteConfig {
            path: dir.path().join("scimd.db"),
            ..Default::default()
        },
    )))
    .await;
    five_parallel_single_member_patches_lose_nothing(&s).await;
}

/// PostgreSQL: a fresh database from the shared test helper (skipped with a message where
/// PostgreSQL is not available, except under `CI=true`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entra_concurrent_member_patches_lose_nothing_on_postgres() {
    let Some(url) = pg::new_postgres_url() else {
        return;
    };
    let s = LocalServer::start(replay_config(BackendConfig::Postgres(
        scimd_backend_sql::PostgresConfig {
            url: url.clone(),
            sslmode: Some(scimd_backend_sql::SslMode::Disable),
            ..Default::default()
        },
    )))
    .await;
    five_parallel_single_member_patches_lose_nothing(&s).await;
    drop(s);
    pg::drop_database(&url);
}
