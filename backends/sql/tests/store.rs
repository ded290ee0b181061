//! Rules of the SQL store beyond the conformance suite: migrations from an empty database,
//! concurrency under load, referential rules with versions, tokens, and SQLite durability
//! settings. Each rule runs on a SQLite file and on PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod support;

use scimd_backend_sql::{PostgresConfig, SqlBackend, SqliteConfig, latest_version};
use scimd_core::state::{StateStore, TokenRecord};
use scimd_core::{Backend, BackendError, Load, ResourceKind, Version};
use scimd_testkit::fixtures::{attrs, group_body, patch, source, user_body};
use serde_json::json;
use std::sync::Arc;
use time::macros::datetime;

on_both!(
    concurrent_single_member_adds_lose_no_member,
    concurrent_patches_of_one_user_lose_no_update,
    deleting_a_member_removes_it_and_bumps_its_groups,
    members_from_another_source_are_invalid_references,
    unchanged_member_patch_keeps_the_version,
    tokens_round_trip_and_revoke,
    token_names_are_unique_per_source,
);

async fn create_users(b: &SqlBackend, src: &str, prefix: &str, n: usize) -> Vec<String> {
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        let r = b
            .create(
                src,
                ResourceKind::User,
                attrs(ResourceKind::User, &user_body(&format!("{prefix}{i}"))),
            )
            .await
            .unwrap();
        ids.push(r.id);
    }
    ids
}

/// Five tasks adding 200 distinct members each, one PATCH per member, end with 1,000 members
/// and one version per change.
async fn concurrent_single_member_adds_lose_no_member(b: Arc<SqlBackend>) {
    let src = source("concurrent-adds");
    let ids = create_users(&b, &src, "m", 1000).await;
    let g = b
        .create(
            &src,
            ResourceKind::Group,
            attrs(ResourceKind::Group, &group_body("big", &[])),
        )
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for chunk in ids.chunks(200) {
        let (b, src, gid, chunk) = (b.clone(), src.clone(), g.id.clone(), chunk.to_vec());
        tasks.push(tokio::spawn(async move {
            for id in chunk {
                let p = patch(
                    ResourceKind::Group,
                    json!([{"op": "add", "path": "members", "value": [{"value": id}]}]),
                );
                b.patch(&src, ResourceKind::Group, &gid, &p, None, Load::NONE)
                    .await
                    .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let g = b
        .get(&src, ResourceKind::Group, &g.id, Load::ALL)
        .await
        .unwrap();
    let members = g.attrs["members"].as_array().unwrap();
    let mut got: Vec<&str> = members
        .iter()
        .map(|m| m["value"].as_str().unwrap())
        .collect();
    got.sort_unstable();
    let mut want: Vec<&str> = ids.iter().map(String::as_str).collect();
    want.sort_unstable();
    assert_eq!(got, want);
    assert_eq!(g.meta.version, Version(1001));
}

/// Concurrent PATCHes of one user without If-Match each land: none overwrites another.
async fn concurrent_patches_of_one_user_lose_no_update(b: Arc<SqlBackend>) {
    let src = source("concurrent-patches");
    let u = b
        .create(
            &src,
            ResourceKind::User,
            attrs(ResourceKind::User, &user_body("target")),
        )
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for t in 0..5 {
        let (b, src, id) = (b.clone(), src.clone(), u.id.clone());
        tasks.push(tokio::spawn(async move {
            for i in 0..20 {
                let p = patch(
                    ResourceKind::User,
                    json!([{"op": "add", "path": "emails",
                            "value": [{"value": format!("t{t}-{i}@example.com")}]}]),
                );
                b.patch(&src, ResourceKind::User, &id, &p, None, Load::ALL)
                    .await
                    .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let u2 = b
        .get(&src, ResourceKind::User, &u.id, Load::ALL)
        .await
        .unwrap();
    let emails = u2.attrs["emails"].as_array().unwrap();
    let before = u
        .attrs
        .get("emails")
        .and_then(|e| e.as_array())
        .map_or(0, Vec::len);
    assert_eq!(emails.len(), before + 100);
    assert_eq!(u2.meta.version, Version(101));
    // The indexed side table follows: every added address is found by a filter.
    let f = scimd_testkit::fixtures::filter(
        ResourceKind::User,
        "emails.value eq \"t4-19@example.com\"",
    );
    let q = scimd_core::Query {
        filter: Some(f),
        sort: None,
        page: scimd_core::Page::Index {
            start_index: 1,
            count: 10,
        },
        load: Load::NONE,
    };
    let page = b.query(&src, ResourceKind::User, &q).await.unwrap();
    assert_eq!(page.resources.len(), 1);
}

/// Deleting a user removes it from every group, and each of those groups gets a new version.
async fn deleting_a_member_removes_it_and_bumps_its_groups(b: Arc<SqlBackend>) {
    let src = source("delete-member");
    let ids = create_users(&b, &src, "d", 2).await;
    let u0 = b
        .get(&src, ResourceKind::User, &ids[0], Load::NONE)
        .await
        .unwrap();
    let u1 = b
        .get(&src, ResourceKind::User, &ids[1], Load::NONE)
        .await
        .unwrap();
    let g1 = b
        .create(
            &src,
            ResourceKind::Group,
            attrs(ResourceKind::Group, &group_body("one", &[&u0, &u1])),
        )
        .await
        .unwrap();
    let g2 = b
        .create(
            &src,
            ResourceKind::Group,
            attrs(ResourceKind::Group, &group_body("two", &[&u1])),
        )
        .await
        .unwrap();
    b.delete(&src, ResourceKind::User, &u0.id, None)
        .await
        .unwrap();
    let g1b = b
        .get(&src, ResourceKind::Group, &g1.id, Load::ALL)
        .await
        .unwrap();
    let g2b = b
        .get(&src, ResourceKind::Group, &g2.id, Load::ALL)
        .await
        .unwrap();
    let members = g1b.attrs["members"].as_array().unwrap();
    assert_eq!(members.len(), 1);
    assert_eq!(members[0]["value"], json!(u1.id));
    assert_eq!(members[0]["type"], "User");
    assert_eq!(g1b.meta.version, g1.meta.version.next());
    assert!(g1b.meta.last_modified >= g1.meta.last_modified);
    assert_eq!(
        g2b.meta.version, g2.meta.version,
        "an unaffected group keeps its version"
    );
}

/// A member must exist in the same source: an id of another source is an invalid reference
/// and the group is left unchanged.
async fn members_from_another_source_are_invalid_references(b: Arc<SqlBackend>) {
    let src = source("ref-a");
    let other = source("ref-b");
    let foreign = create_users(&b, &other, "f", 1).await;
    let g = b
        .create(
            &src,
            ResourceKind::Group,
            attrs(ResourceKind::Group, &group_body("g", &[])),
        )
        .await
        .unwrap();
    let p = patch(
        ResourceKind::Group,
        json!([{"op": "add", "path": "members", "value": [{"value": foreign[0]}]}]),
    );
    let e = b
        .patch(&src, ResourceKind::Group, &g.id, &p, None, Load::ALL)
        .await
        .unwrap_err();
    assert_eq!(e, BackendError::InvalidReference(foreign[0].clone()));
    let g2 = b
        .get(&src, ResourceKind::Group, &g.id, Load::ALL)
        .await
        .unwrap();
    assert_eq!(g2.meta.version, g.meta.version);
    assert!(g2.attrs.get("members").is_none());
}

/// Adding a member that is already there, or removing one that is not, changes nothing and
/// keeps the version.
async fn unchanged_member_patch_keeps_the_version(b: Arc<SqlBackend>) {
    let src = source("noop-members");
    let ids = create_users(&b, &src, "n", 2).await;
    let u0 = b
        .get(&src, ResourceKind::User, &ids[0], Load::NONE)
        .await
        .unwrap();
    let g = b
        .create(
            &src,
            ResourceKind::Group,
            attrs(ResourceKind::Group, &group_body("g", &[&u0])),
        )
        .await
        .unwrap();
    let p = patch(
        ResourceKind::Group,
        json!([
            {"op": "add", "path": "members", "value": [{"value": ids[0]}]},
            {"op": "remove", "path": format!("members[value eq \"{}\"]", ids[1])}
        ]),
    );
    let r = b
        .patch(&src, ResourceKind::Group, &g.id, &p, None, Load::ALL)
        .await
        .unwrap();
    assert_eq!(r.meta.version, g.meta.version);
    assert_eq!(r.attrs["members"].as_array().unwrap().len(), 1);
}

fn token(source: &str, name: &str, hash: &str) -> TokenRecord {
    TokenRecord {
        id: format!("id-{name}-{hash}"),
        source: source.into(),
        name: name.into(),
        hash: hash.into(),
        created: datetime!(2025-03-04 05:06:07.123456789 UTC),
        expires: Some(datetime!(2099-01-01 00:00 +02:00)),
        revoked: None,
    }
}

/// Tokens are found by hash with every field as stored (nanoseconds and offsets included),
/// listed per source, and revoked once (the first revocation time stays).
async fn tokens_round_trip_and_revoke(b: Arc<SqlBackend>) {
    let src = source("tokens");
    let hash = format!("{:064x}", rand::random::<u128>());
    let t = token(&src, "okta", &hash);
    b.insert_token(&t).await.unwrap();
    assert_eq!(b.find_token(&hash).await.unwrap(), Some(t.clone()));
    assert_eq!(b.find_token("nope").await.unwrap(), None);
    let t2 = token(&src, "entra", &format!("{:064x}", rand::random::<u128>()));
    b.insert_token(&t2).await.unwrap();
    let listed = b.list_tokens(Some(&src)).await.unwrap();
    assert_eq!(
        listed.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(),
        ["entra", "okta"]
    );
    let at = datetime!(2025-05-05 00:00 UTC);
    assert!(b.revoke_token(&src, "okta", at).await.unwrap());
    assert!(
        b.revoke_token(&src, &t.id, datetime!(2026-01-01 00:00 UTC))
            .await
            .unwrap()
    );
    assert!(!b.revoke_token(&src, "missing", at).await.unwrap());
    let found = b.find_token(&hash).await.unwrap().unwrap();
    assert_eq!(found.revoked, Some(at));
    assert!(!found.is_active(datetime!(2025-06-01 00:00 UTC)));
}

/// A second token with the same name in one source is a uniqueness error; another source may
/// use the name.
async fn token_names_are_unique_per_source(b: Arc<SqlBackend>) {
    let src = source("token-names");
    let h = || format!("{:064x}", rand::random::<u128>());
    b.insert_token(&token(&src, "idp", &h())).await.unwrap();
    let e = b.insert_token(&token(&src, "idp", &h())).await.unwrap_err();
    assert!(matches!(e, BackendError::Uniqueness(_)), "{e:?}");
    b.insert_token(&token(&source("token-names-2"), "idp", &h()))
        .await
        .unwrap();
}

#[tokio::test]
async fn sqlite_migrations_apply_to_an_empty_database_once() {
    let cfg = support::sqlite_file_config();
    let b = SqlBackend::connect_sqlite(&cfg).await.unwrap();
    assert_eq!(b.schema_version().await.unwrap(), None);
    b.migrate().await.unwrap();
    assert_eq!(b.schema_version().await.unwrap(), Some(latest_version()));
    b.migrate().await.unwrap();
    b.close().await;
    // A restart with migrate_on_start off accepts the migrated database and sees its data.
    let b = SqliteConfig {
        migrate_on_start: false,
        ..cfg.clone()
    }
    .build()
    .await
    .unwrap();
    let src = source("migrated");
    let ids = create_users(&b, &src, "x", 1).await;
    b.close().await;
    let b = cfg.build().await.unwrap();
    b.get(&src, ResourceKind::User, &ids[0], Load::NONE)
        .await
        .unwrap();
}

#[tokio::test]
async fn sqlite_unmigrated_database_is_refused_without_migrate_on_start() {
    let cfg = SqliteConfig {
        migrate_on_start: false,
        ..support::sqlite_file_config()
    };
    let e = cfg.build().await.unwrap_err();
    assert!(e.to_string().contains("scimd migrate"), "{e}");
}

#[tokio::test]
async fn sqlite_files_use_wal_journaling() {
    let cfg = support::sqlite_file_config();
    let b = cfg.build().await.unwrap();
    let src = source("wal");
    create_users(&b, &src, "w", 1).await;
    b.close().await;
    let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect(&format!(
        "sqlite://{}",
        cfg.path.display()
    ))
    .await
    .unwrap();
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(mode, "wal");
}

#[tokio::test]
async fn postgres_migrations_apply_to_an_empty_database_once() {
    let Some(url) = support::new_postgres_url() else {
        eprintln!("skipped: no PostgreSQL");
        return;
    };
    let cfg = PostgresConfig {
        url,
        ..PostgresConfig::default()
    };
    let b = SqlBackend::connect_postgres(&cfg).await.unwrap();
    assert_eq!(b.schema_version().await.unwrap(), None);
    let e = PostgresConfig {
        migrate_on_start: false,
        ..cfg.clone()
    }
    .build()
    .await
    .unwrap_err();
    assert!(e.to_string().contains("scimd migrate"), "{e}");
    // Replicas starting at once: the advisory lock lets each migration run exactly once.
    let (a, c) = tokio::join!(cfg.build(), cfg.build());
    a.unwrap();
    c.unwrap();
    assert_eq!(b.schema_version().await.unwrap(), Some(latest_version()));
    b.migrate().await.unwrap();
}
