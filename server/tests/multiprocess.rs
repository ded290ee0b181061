//! Two `scimd serve` processes on one PostgreSQL database, driven concurrently over HTTP.
//!
//! Each test creates a fresh database (dropped afterwards), starts two replicas on it and
//! checks what replicas must never do to each other: lose a group member, lose an update, or
//! hand out a version twice. Without PostgreSQL the tests are skipped, saying so, except
//! under `CI=true`, where they fail (see the `pg` support module of the SQL backend's tests).

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../backends/sql/tests/support/pg.rs"]
mod pg;
mod support_scimd;

use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::future::Future;
use std::time::Duration;
use support_scimd::{Api, GROUP, PATCH_OP, Scimd, TempDir, USER, create_token};

/// The hard bound on one test; a hang fails instead of stalling the suite.
const TEST_TIMEOUT: Duration = Duration::from_secs(90);

async fn bounded<F: Future<Output = ()>>(f: F) {
    if tokio::time::timeout(TEST_TIMEOUT, f).await.is_err() {
        panic!("the test did not finish in {TEST_TIMEOUT:?}");
    }
}

/// Two replicas on a fresh database, with a token created through the command line.
struct Replicas {
    one: Scimd,
    two: Scimd,
    token: String,
    url: String,
    _dir: TempDir,
}

impl Replicas {
    /// `None` (after the support module said why) when there is no PostgreSQL outside CI.
    async fn start() -> Option<Replicas> {
        let url = pg::new_postgres_url()?;
        relax_commit_durability(&url).await;
        let dir = TempDir::new("scimd-replicas");
        let config = dir.path().join("scimd.toml");
        std::fs::write(
            &config,
            format!(
                r#"[log]
level = "warn"

[backend]
type = "postgres"
url = "{url}"
sslmode = "disable"
max_connections = 8

[state]
type = "backend"

[paging]
cursor_secret = "a shared secret of more than thirty-two characters"

[[sources]]
slug = "default"
"#
            ),
        )
        .unwrap();
        let one = Scimd::serve(dir.path(), Some(&config));
        let initial = one
            .token()
            .expect("the first replica on a fresh database prints the initial token")
            .to_string();
        let token = create_token(dir.path(), Some(&config), "default", "multiprocess");
        let two = Scimd::serve(dir.path(), Some(&config));
        assert_eq!(
            two.token(),
            None,
            "the second replica found the initial token and made none"
        );
        // Tokens live in the shared database: every token works on every replica.
        for base in [one.base(), two.base()] {
            for t in [&initial, &token] {
                let r = Api::new(base, t).get("/Users?count=0").await;
                assert_eq!(r.status, 200, "{base}: {}", r.body);
            }
        }
        Some(Replicas {
            one,
            two,
            token,
            url,
            _dir: dir,
        })
    }

    /// A client of replica one (`0`) or two (`1`).
    fn api(&self, replica: usize) -> Api {
        let base = if replica == 0 {
            self.one.base()
        } else {
            self.two.base()
        };
        Api::new(base, &self.token)
    }
}

/// Turns off `synchronous_commit` for the test database: these tests check isolation between
/// replicas, not the database's own crash durability, and with it on every commit waits for a
/// WAL flush while holding the row lock of the one contended resource, so the disk's fsync
/// latency alone (milliseconds per commit) would dominate the run.
async fn relax_commit_durability(url: &str) {
    use sqlx::Connection;
    let name = url.rsplit('/').next().unwrap();
    assert!(
        name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
        "{name}"
    );
    let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "ALTER DATABASE \"{name}\" SET synchronous_commit = off"
    )))
    .execute(&mut conn)
    .await
    .unwrap();
    let _ = conn.close().await;
}

impl Drop for Replicas {
    fn drop(&mut self) {
        self.one.kill();
        self.two.kill();
        pg::drop_database(&self.url);
    }
}

const BULK_REQUEST: &str = "urn:ietf:params:scim:api:messages:2.0:BulkRequest";
const WORKERS_PER_REPLICA: usize = 5;
const MEMBERS_PER_WORKER: usize = 200;

fn add_member(id: &str) -> Value {
    json!({"schemas": [PATCH_OP], "Operations": [
        {"op": "add", "path": "members", "value": [{"value": id}]}
    ]})
}

fn remove_member(id: &str) -> Value {
    json!({"schemas": [PATCH_OP], "Operations": [
        {"op": "remove", "path": format!("members[value eq \"{id}\"]")}
    ]})
}

fn member_ids(group: &Value) -> BTreeSet<String> {
    group["members"]
        .as_array()
        .map(|ms| {
            ms.iter()
                .map(|m| m["value"].as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// Ten workers, five per replica, each add 200 members of their own to one group with
/// single-member PATCHes and then remove every second one, all at once: the group ends with
/// exactly the members added and not removed, and every PATCH produced its own version.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_member_patches_through_two_replicas_lose_no_member_and_share_no_version() {
    bounded(async {
        let Some(r) = Replicas::start().await else {
            return;
        };
        let g = r
            .api(0)
            .post(
                "/Groups",
                &json!({"schemas": [GROUP], "displayName": "contended"}),
            )
            .await;
        assert_eq!(g.status, 201, "{}", g.body);
        let group_path = format!("/Groups/{}", g.body["id"].as_str().unwrap());
        let created_version = g.version();

        let workers: Vec<(usize, usize)> = (0..2)
            .flat_map(|replica| (0..WORKERS_PER_REPLICA).map(move |w| (replica, w)))
            .collect();

        // The members, created concurrently through both replicas, one /Bulk per worker.
        let mut tasks = Vec::new();
        for &(replica, w) in &workers {
            let api = r.api(replica);
            tasks.push(tokio::spawn(async move {
                let ops: Vec<Value> = (0..MEMBERS_PER_WORKER)
                    .map(|i| {
                        json!({"method": "POST", "path": "/Users", "bulkId": i.to_string(),
                               "data": {"schemas": [USER],
                                        "userName": format!("m-{replica}-{w}-{i}")}})
                    })
                    .collect();
                let b = api
                    .post(
                        "/Bulk",
                        &json!({"schemas": [BULK_REQUEST], "Operations": ops}),
                    )
                    .await;
                assert_eq!(b.status, 200, "{}", b.body);
                let mut ids = vec![String::new(); MEMBERS_PER_WORKER];
                for op in b.body["Operations"].as_array().unwrap() {
                    assert_eq!(op["status"], "201", "{op}");
                    let i: usize = op["bulkId"].as_str().unwrap().parse().unwrap();
                    let location = op["location"].as_str().unwrap();
                    ids[i] = location.rsplit('/').next().unwrap().to_string();
                }
                assert!(
                    ids.iter().all(|id| !id.is_empty()),
                    "an operation is missing"
                );
                ids
            }));
        }
        let mut members: Vec<Vec<String>> = Vec::new();
        for t in tasks {
            members.push(t.await.unwrap());
        }

        // The PATCHes: every worker adds its members one by one, then removes every second
        // one, while the others do the same through both replicas.
        let mut tasks = Vec::new();
        for (&(replica, _), ids) in workers.iter().zip(&members) {
            let api = r.api(replica);
            let ids = ids.clone();
            let path = format!("{group_path}?excludedAttributes=members");
            tasks.push(tokio::spawn(async move {
                let mut seen = created_version;
                let mut versions = Vec::new();
                let removals = ids.iter().step_by(2);
                let ops = ids
                    .iter()
                    .map(|id| add_member(id))
                    .chain(removals.map(|id| remove_member(id)));
                for op in ops {
                    let resp = api.patch(&path, &op, None).await;
                    assert_eq!(resp.status, 200, "{}", resp.body);
                    assert!(
                        resp.body.get("members").is_none(),
                        "excludedAttributes=members is honoured: {}",
                        resp.body
                    );
                    let v = resp.version();
                    assert!(
                        v > seen,
                        "a PATCH answered version {v} after this client saw {seen}"
                    );
                    seen = v;
                    versions.push(v);
                }
                versions
            }));
        }
        let mut versions = Vec::new();
        for t in tasks {
            versions.extend(t.await.unwrap());
        }
        let expected: BTreeSet<String> = members
            .iter()
            .flat_map(|ids| ids.iter().skip(1).step_by(2).cloned())
            .collect();
        let patches = WORKERS_PER_REPLICA * 2 * (MEMBERS_PER_WORKER + MEMBERS_PER_WORKER / 2);
        assert_eq!(versions.len(), patches);
        assert_eq!(
            expected.len(),
            WORKERS_PER_REPLICA * 2 * MEMBERS_PER_WORKER / 2
        );
        // Each successful PATCH is one version bump, none shared: no write was merged away.
        let distinct: BTreeSet<u64> = versions.iter().copied().collect();
        assert_eq!(
            distinct.len(),
            patches,
            "two PATCHes answered the same version"
        );
        assert_eq!(
            distinct,
            (created_version + 1..=created_version + patches as u64).collect(),
            "the versions are exactly the next {patches} after the creation"
        );
        for replica in 0..2 {
            let got = r.api(replica).get(&group_path).await;
            assert_eq!(got.status, 200, "{}", got.body);
            let ids = member_ids(&got.body);
            let missing: Vec<_> = expected.difference(&ids).take(5).collect();
            let extra: Vec<_> = ids.difference(&expected).take(5).collect();
            assert!(
                missing.is_empty() && extra.is_empty(),
                "replica {replica}: {} members, {} expected; missing e.g. {missing:?}, \
                 unexpected e.g. {extra:?}",
                ids.len(),
                expected.len()
            );
            assert_eq!(got.version(), created_version + patches as u64);
        }
        // User.groups is derived from the same relation: a kept member lists the group, a
        // removed one does not.
        let gid = g.body["id"].as_str().unwrap();
        for (id, in_group) in [(&members[9][1], true), (&members[9][0], false)] {
            let u = r.api(1).get(&format!("/Users/{id}")).await;
            assert_eq!(u.status, 200, "{}", u.body);
            let groups: Vec<&str> = u.body["groups"]
                .as_array()
                .map(|gs| gs.iter().filter_map(|g| g["value"].as_str()).collect())
                .unwrap_or_default();
            assert_eq!(groups.contains(&gid), in_group, "{}", u.body);
        }
    })
    .await;
}

/// How a worker writes its attribute.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode {
    /// PATCH replace with no precondition: must always succeed.
    Patch,
    /// PATCH replace with `If-Match` of the newest version this worker has seen.
    PatchIfMatch,
    /// GET, change the attribute in the whole resource, PUT with `If-Match` of what was read.
    PutIfMatch,
}

/// Successful writes each worker makes.
const WRITES_PER_WORKER: usize = 25;
/// A precondition worker gives up after this many attempts (only a starved run reaches it).
const MAX_ATTEMPTS: usize = 2_000;

/// What one worker saw: its last successful value and the versions of its successful writes.
struct WorkerLog {
    attr: &'static str,
    last_value: String,
    versions: Vec<u64>,
    refused: usize,
}

/// Sets `attr` (`"title"` or `"name.givenName"`) in a whole resource.
fn set_attr(resource: &mut Value, attr: &str, value: &str) {
    match attr.split_once('.') {
        Some((parent, sub)) => {
            if !resource[parent].is_object() {
                resource[parent] = json!({});
            }
            resource[parent][sub] = json!(value);
        }
        None => resource[attr] = json!(value),
    }
}

fn get_attr<'a>(resource: &'a Value, attr: &str) -> &'a Value {
    match attr.split_once('.') {
        Some((parent, sub)) => &resource[parent][sub],
        None => &resource[attr],
    }
}

async fn write_attribute(api: Api, path: String, attr: &'static str, mode: Mode) -> WorkerLog {
    let mut seen = 0u64;
    let mut newest: Option<String> = None;
    let mut log = WorkerLog {
        attr,
        last_value: String::new(),
        versions: Vec::new(),
        refused: 0,
    };
    let mut attempts = 0;
    while log.versions.len() < WRITES_PER_WORKER {
        attempts += 1;
        assert!(
            attempts <= MAX_ATTEMPTS,
            "{attr}: {MAX_ATTEMPTS} attempts made only {} writes",
            log.versions.len()
        );
        let value = format!("{attr}-{attempts}");
        let (resp, if_match) = match mode {
            Mode::Patch => {
                let op = json!({"schemas": [PATCH_OP], "Operations": [
                    {"op": "replace", "path": attr, "value": value}
                ]});
                (api.patch(&path, &op, None).await, false)
            }
            Mode::PatchIfMatch => {
                if newest.is_none() {
                    let g = api.get(&path).await;
                    assert_eq!(g.status, 200, "{}", g.body);
                    assert!(g.version() >= seen, "a read went back to an older version");
                    seen = g.version();
                    newest = g.etag().map(str::to_string);
                }
                let op = json!({"schemas": [PATCH_OP], "Operations": [
                    {"op": "replace", "path": attr, "value": value}
                ]});
                (api.patch(&path, &op, newest.as_deref()).await, true)
            }
            Mode::PutIfMatch => {
                let g = api.get(&path).await;
                assert_eq!(g.status, 200, "{}", g.body);
                assert!(g.version() >= seen, "a read went back to an older version");
                seen = g.version();
                let mut whole = g.body.clone();
                set_attr(&mut whole, attr, &value);
                (api.put(&path, &whole, g.etag()).await, true)
            }
        };
        match resp.status {
            200 => {
                assert_eq!(get_attr(&resp.body, attr), &json!(value), "{}", resp.body);
                let v = resp.version();
                assert!(
                    v > seen,
                    "{attr}: a write answered version {v} after this client saw {seen}"
                );
                seen = v;
                newest = resp.etag().map(str::to_string);
                log.versions.push(v);
                log.last_value = value;
            }
            412 if if_match => {
                assert_eq!(resp.body["status"], "412", "{}", resp.body);
                log.refused += 1;
                // Re-read before the next attempt, as a client following RFC 7232 would.
                newest = None;
            }
            s => panic!("{attr} ({mode:?}): unexpected {s}: {}", resp.body),
        }
    }
    log
}

/// Ten workers, five per replica, each update a different attribute of one user — by PATCH
/// without a precondition, PATCH with `If-Match`, or read-modify-PUT with `If-Match` — all at
/// once. Every worker's last successful value is in the final resource (no lost update),
/// every worker sees strictly increasing versions, only conditional requests are refused with
/// 412, and each successful write produced a version of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_updates_through_two_replicas_lose_no_update_and_versions_strictly_increase() {
    bounded(async {
        let Some(r) = Replicas::start().await else {
            return;
        };
        const PLAN: [(usize, &str, Mode); 10] = [
            (0, "displayName", Mode::Patch),
            (0, "nickName", Mode::PatchIfMatch),
            (0, "title", Mode::PutIfMatch),
            (0, "userType", Mode::Patch),
            (0, "name.givenName", Mode::PatchIfMatch),
            (1, "name.familyName", Mode::PatchIfMatch),
            (1, "name.middleName", Mode::Patch),
            (1, "name.honorificPrefix", Mode::PutIfMatch),
            (1, "name.honorificSuffix", Mode::PatchIfMatch),
            (1, "name.formatted", Mode::Patch),
        ];
        let mut user = json!({"schemas": [USER], "userName": "contended"});
        for (_, attr, _) in PLAN {
            set_attr(&mut user, attr, &format!("{attr}-initial"));
        }
        let created = r.api(0).post("/Users", &user).await;
        assert_eq!(created.status, 201, "{}", created.body);
        let path = format!("/Users/{}", created.body["id"].as_str().unwrap());
        let created_version = created.version();

        let mut tasks = Vec::new();
        for (replica, attr, mode) in PLAN {
            tasks.push(tokio::spawn(write_attribute(
                r.api(replica),
                path.clone(),
                attr,
                mode,
            )));
        }
        let mut logs = Vec::new();
        for t in tasks {
            logs.push(t.await.unwrap());
        }

        let versions: Vec<u64> = logs.iter().flat_map(|l| l.versions.clone()).collect();
        let distinct: BTreeSet<u64> = versions.iter().copied().collect();
        assert_eq!(
            distinct.len(),
            versions.len(),
            "two successful writes answered the same version"
        );
        let last = created_version + versions.len() as u64;
        assert_eq!(
            distinct,
            (created_version + 1..=last).collect(),
            "every successful write is one version, refused ones none"
        );
        let refused: usize = logs.iter().map(|l| l.refused).sum();
        eprintln!(
            "{} writes, {refused} refused with 412 (If-Match)",
            versions.len()
        );
        for replica in 0..2 {
            let got = r.api(replica).get(&path).await;
            assert_eq!(got.status, 200, "{}", got.body);
            assert_eq!(got.version(), last);
            assert_eq!(got.body["userName"], "contended");
            for l in &logs {
                assert_eq!(
                    get_attr(&got.body, l.attr),
                    &json!(l.last_value),
                    "replica {replica}: the last successful write of {} was lost: {}",
                    l.attr,
                    got.body
                );
            }
        }
    })
    .await;
}
