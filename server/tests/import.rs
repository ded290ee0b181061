//! `scimd import` on the SQLite default: batches of resources with their ids, validated like
//! POST bodies, all or nothing per batch; then served as if they had been POSTed.

mod support_scimd;

use serde_json::{Value, json};
use support_scimd::{GROUP, Scimd, TempDir, USER, run};

fn ndjson(lines: &[Value]) -> String {
    lines.iter().map(|l| format!("{l}\n")).collect()
}

fn import(dir: &TempDir, file: &str, batch: &str) -> (bool, String, String) {
    let out = run(dir.path(), None, &["import", "--batch", batch, file]);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imported_resources_keep_their_ids_and_are_served_like_created_ones() {
    let dir = TempDir::new("scimd-import");
    // A blank line is skipped.
    let good = ndjson(&[
        json!({"schemas": [USER], "id": "a-1", "userName": "Ada@Example.com",
               "emails": [{"value": "ada@example.com", "primary": true}]}),
        json!({"schemas": [USER], "userName": "bob@example.com", "externalId": "b"}),
    ]) + "\n"
        + &ndjson(&[
            json!({"schemas": [USER], "id": "c-3", "userName": "cy@example.com", "active": false}),
            json!({"schemas": [GROUP], "id": "g-1", "displayName": "Staff",
                   "members": [{"value": "a-1"}, {"value": "c-3"}]}),
        ]);
    std::fs::write(dir.path().join("good.ndjson"), good).unwrap();
    let (ok, stdout, stderr) = import(&dir, "good.ndjson", "2");
    assert!(ok, "import failed: {stderr}");
    assert!(stdout.contains("imported 3 users and 1 groups"), "{stdout}");

    // A bad line stops the import before its batch is stored: nothing of this file lands.
    let bad = ndjson(&[
        json!({"schemas": [USER], "id": "d-4", "userName": "dee@example.com"}),
        json!({"schemas": [USER], "id": "e-5"}),
    ]);
    std::fs::write(dir.path().join("bad.ndjson"), bad).unwrap();
    let (ok, _, stderr) = import(&dir, "bad.ndjson", "10");
    assert!(!ok);
    assert!(stderr.contains("line 2"), "{stderr}");
    assert!(stderr.contains("nothing from line 1 on"), "{stderr}");

    // A taken id or userName fails its whole batch; earlier batches stay.
    let clash = ndjson(&[
        json!({"schemas": [USER], "id": "f-6", "userName": "fay@example.com"}),
        json!({"schemas": [USER], "id": "g-7", "userName": "gus@example.com"}),
        json!({"schemas": [USER], "id": "a-1", "userName": "other@example.com"}),
    ]);
    std::fs::write(dir.path().join("clash.ndjson"), clash).unwrap();
    let (ok, _, stderr) = import(&dir, "clash.ndjson", "2");
    assert!(!ok);
    assert!(stderr.contains("from line 3"), "{stderr}");
    let unknown_member = ndjson(&[json!({"schemas": [GROUP], "displayName": "Ghosts",
        "members": [{"value": "nobody"}]})]);
    std::fs::write(dir.path().join("ghost.ndjson"), unknown_member).unwrap();
    let (ok, _, _) = import(&dir, "ghost.ndjson", "10");
    assert!(!ok);

    let server = Scimd::serve(dir.path(), None);
    let api = server.api("default");
    let ada = api.get("/Users/a-1").await;
    assert_eq!(ada.status, 200);
    assert_eq!(ada.body["userName"], "Ada@Example.com");
    assert_eq!(ada.body["meta"]["version"], "W/\"1\"");
    assert_eq!(ada.body["groups"][0]["value"], "g-1");
    let group = api.get("/Groups/g-1").await;
    assert_eq!(group.body["members"].as_array().map(Vec::len), Some(2));
    // Indexed like created resources: filters, counts.
    let found = api
        .get("/Users?filter=emails.value%20eq%20%22ADA@example.com%22")
        .await;
    assert_eq!(found.body["totalResults"], 1);
    let all = api.get("/Users?count=0").await;
    assert_eq!(all.body["totalResults"], 5, "{}", all.body);
    let bob = api.get("/Users?filter=externalId%20eq%20%22b%22").await;
    assert_eq!(bob.body["totalResults"], 1);
    let fay = api.get("/Users/f-6").await;
    assert_eq!(fay.status, 200);
    assert_eq!(api.get("/Users/g-7").await.status, 200);
    assert_eq!(api.get("/Users/d-4").await.status, 404);
    // Imported resources take writes like any other.
    let patched = api
        .patch(
            "/Users/c-3",
            &json!({"schemas": [support_scimd::PATCH_OP],
                    "Operations": [{"op": "replace", "path": "active", "value": true}]}),
            None,
        )
        .await;
    assert_eq!(patched.status, 200);
    assert_eq!(patched.body["active"], true);
}
