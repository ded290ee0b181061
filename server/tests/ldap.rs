//! End-to-end tests of the LDAP backend: the real `scimd serve` with the shipped
//! `config/examples/ldap.toml`, pointed by `SCIMD_*` environment variables at a throwaway
//! slapd (the LDAP backend's own fixture, with StartTLS and a CA of its own), spoken to over
//! HTTP, with the directory checked by the real `ldapsearch`.
//!
//! Like the backend's tests these fail, never skip, when slapd cannot be started
//! (`scripts/ensure-slapd` installs it). Okta's SPEC test runs when `SCIMD_CONFORMANCE_DIR`
//! names the suite (see `support_okta`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../backends/ldap/tests/common/mod.rs"]
mod common;
mod support_okta;
mod support_scimd;

use common::Slapd;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use support_scimd::{ENTERPRISE, GROUP, PATCH_OP, Scimd, TempDir, USER};

/// The example configuration, as shipped.
fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/examples/ldap.toml")
}

/// `scimd serve --config config/examples/ldap.toml` with the overrides of a test directory;
/// `extra` adds or replaces `SCIMD_*` variables. The example's public URL and listener are
/// replaced by a free loopback port, its directory, bind DN and password file, CA file and
/// state file by the test's.
fn serve_example(slapd: &Slapd, dir: &Path, extra: &[(&str, &str)]) -> Scimd {
    // The port is picked before scimd binds it (the public URL must name it), so another
    // process may take it in between: then scimd exits at once and gets another port.
    for _ in 0..3 {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let env: Vec<(String, String)> = [
            (
                "SCIMD_SERVER__PUBLIC_URL",
                format!("http://127.0.0.1:{port}"),
            ),
            ("SCIMD_BACKEND__URL", slapd.url.clone()),
            ("SCIMD_BACKEND__BIND_DN", common::ROOT_DN.to_string()),
            (
                "SCIMD_BACKEND__BIND_PASSWORD_FILE",
                slapd.dir.join("bind-password").display().to_string(),
            ),
            (
                "SCIMD_BACKEND__TLS__CA_FILE",
                slapd.dir.join("ca.pem").display().to_string(),
            ),
            (
                "SCIMD_STATE__PATH",
                dir.join("state.db").display().to_string(),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        // Later entries win.
        .chain(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())))
        .collect();
        let listen = format!("127.0.0.1:{port}");
        match Scimd::start(dir, Some(&example()), &listen, &env) {
            Ok(served) => {
                // Every override named a real configuration key.
                let log = served.log();
                assert!(!log.contains("ignoring environment variable"), "{log}");
                return served;
            }
            Err(log) if log.contains("cannot listen") => continue,
            Err(log) => panic!("scimd exited at start {log}"),
        }
    }
    panic!("scimd found no free port in three attempts");
}

/// The values of `attr` in `ldapsearch` LDIF output (`-o ldif-wrap=no`, so no continuations).
fn ldif_values(ldif: &str, attr: &str) -> Vec<String> {
    let prefix = format!("{attr}: ");
    ldif.lines()
        .filter_map(|l| l.strip_prefix(&prefix))
        .map(str::to_string)
        .collect()
}

const PEOPLE: &str = "ou=people,ou=okta,dc=example,dc=org";
const GROUPS: &str = "ou=groups,ou=okta,dc=example,dc=org";

/// The example configuration (lossless mode, StartTLS) provisions a user and a group with a
/// member into the directory, where `ldapsearch` finds the entries, the SCIM id as
/// `entryUUID`, the `member` DN and `memberOf`; a membership PATCH is one `member` change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_configuration_provisions_users_and_groups_that_ldapsearch_sees() {
    let slapd = Slapd::start_with_tls();
    let dir = TempDir::new("scimd-ldap-e2e");
    let s = serve_example(&slapd, dir.path(), &[]);
    assert_eq!(
        s.bases.keys().collect::<Vec<_>>(),
        ["entra", "okta"],
        "the example's sources"
    );
    let okta = s.api("okta");
    let user = |name: &str, given: &str| {
        json!({
            "schemas": [USER], "userName": name,
            "name": {"givenName": given, "familyName": "Jensen"},
            "emails": [{"value": format!("{name}@example.com"), "type": "work", "primary": true}],
            "nickName": "kept in the lossless copy"
        })
    };
    let r = okta.post("/Users", &user("bjensen", "Barbara")).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let bjensen = r.body["id"].as_str().unwrap().to_string();
    assert_eq!(r.body["nickName"], "kept in the lossless copy");
    let r = okta.post("/Users", &user("jsmith", "John")).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let jsmith = r.body["id"].as_str().unwrap().to_string();
    let r = okta
        .post(
            "/Groups",
            &json!({"schemas": [GROUP], "displayName": "Engineering",
                    "members": [{"value": bjensen}]}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let group = r.body["id"].as_str().unwrap().to_string();

    let entry = slapd.ldapsearch(
        PEOPLE,
        "(uid=bjensen)",
        &["entryUUID", "givenName", "sn", "mail", "memberOf"],
    );
    assert_eq!(ldif_values(&entry, "dn"), [format!("uid=bjensen,{PEOPLE}")]);
    assert_eq!(ldif_values(&entry, "entryUUID"), [bjensen.as_str()]);
    assert_eq!(ldif_values(&entry, "givenName"), ["Barbara"]);
    assert_eq!(ldif_values(&entry, "mail"), ["bjensen@example.com"]);
    assert_eq!(
        ldif_values(&entry, "memberOf"),
        [format!("cn=Engineering,{GROUPS}")]
    );
    let entry = slapd.ldapsearch(GROUPS, "(cn=Engineering)", &["entryUUID", "member"]);
    assert_eq!(ldif_values(&entry, "entryUUID"), [group.as_str()]);
    assert_eq!(
        ldif_values(&entry, "member"),
        [format!("uid=bjensen,{PEOPLE}")]
    );

    let r = okta
        .patch(
            &format!("/Groups/{group}"),
            &json!({"schemas": [PATCH_OP], "Operations": [
                {"op": "add", "path": "members", "value": [{"value": jsmith}]}]}),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let entry = slapd.ldapsearch(GROUPS, "(cn=Engineering)", &["member"]);
    let mut members = ldif_values(&entry, "member");
    members.sort();
    assert_eq!(
        members,
        [
            format!("uid=bjensen,{PEOPLE}"),
            format!("uid=jsmith,{PEOPLE}")
        ]
    );
    // The other source has a subtree of its own, and its token sees nothing of this one.
    assert!(
        slapd
            .ldapsearch("ou=entra,dc=example,dc=org", "(uid=bjensen)", &["uid"])
            .is_empty()
    );
    let r = s.api("entra").get("/Users").await;
    assert_eq!(r.body["totalResults"], 0, "{}", r.body);
    // Lossless mode stores every attribute, so every attribute is listed.
    let r = okta.get(&format!("/Schemas/{USER}")).await;
    assert!(
        attribute(&r.body, "x509Certificates").is_some(),
        "{}",
        r.body
    );
}

/// Okta's SPEC test passes 19 of 19 against the example configuration, and what it
/// provisioned is in the directory: every user it leaves is an entry with its `uid` and
/// `entryUUID`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn okta_spec_test_passes_19_of_19_on_the_example_ldap_configuration() {
    let Some(runner) = support_okta::runner() else {
        return;
    };
    let slapd = Slapd::start_with_tls();
    let dir = TempDir::new("scimd-ldap-okta");
    let s = serve_example(&slapd, dir.path(), &[]);
    let (base, token) = (s.bases["okta"].clone(), s.tokens["okta"].clone());
    tokio::task::spawn_blocking(move || {
        support_okta::run(&runner, &base, &token, &["--no-cleanup"])
    })
    .await
    .unwrap();
    let okta = s.api("okta");
    let users = okta.get("/Users?count=1000").await;
    let users = users.body["Resources"].as_array().unwrap().clone();
    assert!(!users.is_empty());
    let ldif = slapd.ldapsearch(PEOPLE, "(objectClass=inetOrgPerson)", &["uid", "entryUUID"]);
    let mut uids = ldif_values(&ldif, "uid");
    let mut ids = ldif_values(&ldif, "entryUUID");
    let mut want_uids: Vec<String> = users
        .iter()
        .map(|u| u["userName"].as_str().unwrap().to_string())
        .collect();
    let mut want_ids: Vec<String> = users
        .iter()
        .map(|u| u["id"].as_str().unwrap().to_string())
        .collect();
    for v in [&mut uids, &mut ids, &mut want_uids, &mut want_ids] {
        v.sort();
    }
    assert_eq!(uids, want_uids);
    assert_eq!(ids, want_ids);
    // The seed group the runner created (and was told not to delete) is an entry too.
    let groups = okta.get("/Groups").await;
    let groups = groups.body["Resources"].as_array().unwrap().clone();
    assert!(!groups.is_empty());
    for g in &groups {
        let cn = g["displayName"].as_str().unwrap();
        let ldif = slapd.ldapsearch(GROUPS, &format!("(cn={cn})"), &["entryUUID"]);
        assert_eq!(ldif_values(&ldif, "entryUUID"), [g["id"].as_str().unwrap()]);
    }
}

/// The attribute definition named `name` in a `/Schemas/{id}` body.
fn attribute<'a>(schema: &'a Value, name: &str) -> Option<&'a Value> {
    schema["attributes"]
        .as_array()?
        .iter()
        .find(|a| a["name"] == name)
}

fn sub_attributes(attr: &Value) -> Vec<&str> {
    attr["subAttributes"]
        .as_array()
        .map(|subs| subs.iter().filter_map(|s| s["name"].as_str()).collect())
        .unwrap_or_default()
}

/// Without lossless mode (`SCIMD_BACKEND__LOSSLESS=false` over the example), `/Schemas` and
/// `/ResourceTypes` list only what the `openldap` mapping stores, and bodies, PATCH paths and
/// filters naming anything else are refused instead of being accepted and lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_lossless_mode_schemas_list_only_what_the_mapping_stores() {
    let slapd = Slapd::start_with_tls();
    let dir = TempDir::new("scimd-ldap-mapped");
    let s = serve_example(&slapd, dir.path(), &[("SCIMD_BACKEND__LOSSLESS", "false")]);
    let okta = s.api("okta");

    let r = okta.get(&format!("/Schemas/{USER}")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let name = attribute(&r.body, "name").expect("name is mapped");
    assert_eq!(
        sub_attributes(name),
        ["formatted", "familyName", "givenName"]
    );
    let emails = attribute(&r.body, "emails").expect("emails are mapped");
    assert_eq!(sub_attributes(emails), ["value", "type", "primary"]);
    for mapped in ["userName", "displayName", "active", "password", "groups"] {
        assert!(attribute(&r.body, mapped).is_some(), "{mapped}");
    }
    for unmapped in [
        "x509Certificates",
        "ims",
        "nickName",
        "photos",
        "entitlements",
    ] {
        assert!(attribute(&r.body, unmapped).is_none(), "{unmapped}");
    }
    let r = okta.get(&format!("/Schemas/{ENTERPRISE}")).await;
    let names: Vec<&str> = r.body["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["name"].as_str())
        .collect();
    assert_eq!(
        names,
        ["employeeNumber", "organization", "department", "manager"]
    );
    let r = okta.get(&format!("/Schemas/{GROUP}")).await;
    assert!(attribute(&r.body, "members").is_some());
    let r = okta.get("/ResourceTypes/User").await;
    assert_eq!(r.body["schemaExtensions"][0]["schema"], ENTERPRISE);
    let r = okta.get("/Schemas").await;
    assert_eq!(r.body["totalResults"], 3, "User, Group, EnterpriseUser");

    // What is listed is stored and read back.
    let body = json!({
        "schemas": [USER], "userName": "mapped",
        "name": {"givenName": "Maria", "familyName": "Mapped"},
        "emails": [{"value": "mapped@example.com", "type": "work", "primary": true}],
    });
    let r = okta.post("/Users", &body).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["name"]["givenName"], "Maria");
    let id = r.body["id"].as_str().unwrap().to_string();
    let entry = slapd.ldapsearch(PEOPLE, "(uid=mapped)", &["givenName", "mail"]);
    assert_eq!(ldif_values(&entry, "givenName"), ["Maria"]);
    assert_eq!(ldif_values(&entry, "mail"), ["mapped@example.com"]);

    // What is not listed is refused, naming the attribute, and nothing is written.
    for (extra, named) in [
        (json!({"nickName": "Mia"}), "nickName"),
        (
            json!({"x509Certificates": [{"value": "TUlJ"}]}),
            "x509Certificates",
        ),
        (
            json!({"name": {"givenName": "M", "middleName": "X"}}),
            "middleName",
        ),
        (json!({"externalId": "ext-1"}), "externalId"),
    ] {
        let mut b = body.clone();
        b["userName"] = json!("refused");
        for (k, v) in extra.as_object().unwrap() {
            b[k] = v.clone();
        }
        let r = okta.post("/Users", &b).await;
        assert_eq!(r.status, 400, "{}", r.body);
        assert_eq!(r.body["scimType"], "invalidSyntax", "{}", r.body);
        assert!(
            r.body["detail"].as_str().unwrap().contains(named),
            "{}",
            r.body
        );
    }
    assert!(
        slapd
            .ldapsearch(PEOPLE, "(uid=refused)", &["uid"])
            .is_empty()
    );
    let r = okta
        .patch(
            &format!("/Users/{id}"),
            &json!({"schemas": [PATCH_OP], "Operations": [
                {"op": "replace", "path": "nickName", "value": "Mia"}]}),
            None,
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.body["scimType"], "invalidPath", "{}", r.body);
    let r = okta.get("/Users?filter=nickName%20eq%20%22Mia%22").await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.body["scimType"], "invalidFilter", "{}", r.body);
}
