//! The search copy follows the configured schemas: when an extension attribute stops being
//! `caseExact` after users were stored, the next start of `scimd serve` rebuilds their search
//! copy (and logs it), so filters compare as the schema now says; `scimd migrate --reindex`
//! rebuilds it on request.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support_scimd;

use serde_json::json;
use std::path::{Path, PathBuf};
use support_scimd::{Api, Scimd, TempDir, USER, run};

const BADGE: &str = "urn:example:params:scim:schemas:extension:badge:2.0:User";

fn write_config(dir: &Path, case_exact: bool) -> PathBuf {
    let path = dir.join("scimd.toml");
    std::fs::write(
        &path,
        format!(
            r#"
[backend]
type = "sqlite"
path = "scimd.db"

[[sources]]
slug = "default"

[[sources.extensions]]
resource_type = "User"
definition = {{ id = "{BADGE}", attributes = [{{ name = "color", type = "string", caseExact = {case_exact} }}] }}
"#
        ),
    )
    .unwrap();
    path
}

async fn found(api: &Api, color: &str) -> u64 {
    let r = api
        .get(&format!("/Users?filter={BADGE}:color eq \"{color}\""))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body["totalResults"].as_u64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schema_change_rebuilds_the_search_copy_at_start() {
    let dir = TempDir::new("scimd-reindex");
    let config = write_config(dir.path(), true);
    let first = Scimd::serve(dir.path(), Some(&config));
    let token = first
        .token()
        .expect("a first start prints a token")
        .to_string();
    let api = Api::new(first.base(), &token);
    let body = json!({
        "schemas": [USER, BADGE],
        "userName": "bjensen",
        BADGE: {"color": "Deep Purple"}
    });
    let r = api.post("/Users", &body).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(found(&api, "Deep Purple").await, 1);
    assert_eq!(
        found(&api, "deep purple").await,
        0,
        "caseExact compares exactly"
    );
    drop(first);

    let config = write_config(dir.path(), false);
    let second = Scimd::serve(dir.path(), Some(&config));
    let api = Api::new(second.base(), &token);
    assert_eq!(found(&api, "deep purple").await, 1, "{}", second.log());
    assert!(
        second.log().contains("Search copy rebuilt."),
        "{}",
        second.log()
    );
    drop(second);

    let out = run(dir.path(), Some(&config), &["migrate", "--reindex"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("search copy of source default, User rebuilt"),
        "{stdout}"
    );
}
