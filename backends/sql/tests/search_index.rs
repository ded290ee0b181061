//! The substring index and the search copy's rebuild, on SQLite and PostgreSQL:
//!
//! - `co`, `sw` and `ew` with a needle of three characters or more are served by the trigram
//!   index (FTS5 on SQLite, pg_trgm on PostgreSQL), shorter needles keep the scan;
//! - upgrading a database with data indexes the existing resources;
//! - without pg_trgm, the migration fails with a message that says what to do;
//! - an extension configured after its data was written is indexed again at start, so filters
//!   on its attributes find the older resources.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use scimd_backend_sql::{PostgresConfig, SqlBackend};
use scimd_core::query::{Page, Query};
use scimd_core::schema::{ENTERPRISE_USER, Schema, USER};
use scimd_core::{Backend, Load, ResourceKind, SchemaRegistry};
use scimd_testkit::fixtures::{attrs, filter, user_body};
use serde_json::{Value, json};
use std::sync::Arc;

async fn ids(b: &SqlBackend, source: &str, text: &str) -> Vec<String> {
    let reg = b.schemas(source);
    let f = scimd_core::Filter::parse(text)
        .and_then(|f| f.resolve(reg.resource_type(ResourceKind::User)))
        .unwrap_or_else(|e| panic!("{text}: {e}"));
    let q = Query {
        filter: Some(f),
        sort: None,
        page: Page::Index {
            start_index: 1,
            count: 1000,
        },
        load: Load::NONE,
    };
    let mut ids: Vec<String> = b
        .query(source, ResourceKind::User, &q)
        .await
        .unwrap_or_else(|e| panic!("{text}: {e}"))
        .resources
        .into_iter()
        .map(|r| r.id)
        .collect();
    ids.sort();
    ids
}

async fn plan(b: &SqlBackend, source: &str, text: &str, analyze: bool) -> String {
    b.explain_filter(
        source,
        ResourceKind::User,
        &filter(ResourceKind::User, text),
        analyze,
    )
    .await
    .unwrap_or_else(|e| panic!("{text}: {e}"))
}

/// Filters the trigram index serves, and filters it does not: too short or negated needles,
/// and prefixes of columns with B-tree indexes.
const INDEXED: &[&str] = &[
    r#"emails.value co "r1@exa""#,
    r#"name.familyName sw "JEN""#,
    r#"userName ew "r99@example.com""#,
    r#"emails.value co "r1@exa" and userName sw "user1""#,
    r#"emails[type eq "work" and value sw "user123@"]"#,
    r#"title co "abc" or displayName co "xyz""#,
    r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department co "ngin" and active eq true"#,
    r#"urn:scimd:params:scim:schemas:extension:conformance:2.0:User:code co "AbC""#,
];
const NOT_INDEXED: &[&str] = &[
    r#"title co "ab""#,
    r#"userName sw "user12@""#,
    r#"emails.value sw "user12@""#,
    r#"title co "abc" or active eq true"#,
    r#"not (title co "abc")"#,
    r#"title ne "abc""#,
];

#[tokio::test]
async fn sqlite_substring_filters_of_three_characters_use_the_trigram_index() {
    let b = support::sqlite_file().await;
    for f in INDEXED {
        let p = plan(&b, "s", f, false).await;
        assert!(p.contains("scimd_search_fts"), "{f}:\n{p}");
        assert!(!p.contains("SCAN r"), "{f}:\n{p}");
    }
    for f in NOT_INDEXED {
        let p = plan(&b, "s", f, false).await;
        assert!(!p.contains("scimd_search_fts"), "{f}:\n{p}");
    }
    let p = plan(&b, "s", r#"userName sw "user12@""#, false).await;
    assert!(p.contains("scimd_resources_user_name"), "{p}");
}

#[tokio::test]
async fn postgres_substring_filters_of_three_characters_use_the_trigram_index() {
    let Some(b) = support::postgres().await else {
        return;
    };
    // Enough rows that an index beats a scan, written directly: the plan is what matters.
    let pool = sqlx::PgPool::connect(&support::postgres_url().unwrap())
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO scimd_resources (source, kind, id, version, created, last_modified, attrs, \
         search, user_name_fold) \
         SELECT 'plan', 'User', 'id-' || i, 1, 0, 0, '{}', \
         jsonb_build_object('userName', 'user' || i || '@example.com', 'title', 'title ' || i, \
         'emails', jsonb_build_array(jsonb_build_object('value', 'user' || i || '@example.com', \
         'type', 'work'))), 'user' || i || '@example.com' \
         FROM generate_series(1, 20000) AS i",
    )
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query("ANALYZE scimd_resources")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    for f in INDEXED {
        let p = plan(&b, "plan", f, false).await;
        assert!(p.contains("scimd_resources_search_text_trgm"), "{f}:\n{p}");
    }
    for f in NOT_INDEXED {
        let p = plan(&b, "plan", f, false).await;
        assert!(!p.contains("scimd_resources_search_text_trgm"), "{f}:\n{p}");
    }
    assert_eq!(
        ids(&b, "plan", r#"emails.value co "R12345@EXA""#).await,
        vec!["id-12345".to_string()]
    );
}

/// Users whose strings probe the index: LIKE wildcards, the escape character, quotes, case
/// and letters outside ASCII.
fn probe_users() -> Vec<Value> {
    [
        ("zoe", "Zoë O'Brien", "50%_off\\now", "ZOË"),
        ("quote", "Say \"Hi\" Bob", "a_b%c", "Δέλτα"),
        ("plain", "Barbara Jensen", "abc", "plain"),
    ]
    .into_iter()
    .map(|(user, display, title, code)| {
        let mut body = user_body(&format!("{user}@example.com"));
        body["displayName"] = json!(display);
        body["title"] = json!(title);
        body["schemas"] = json!([
            USER,
            ENTERPRISE_USER,
            scimd_testkit::fixtures::CONFORMANCE_EXT
        ]);
        body[scimd_testkit::fixtures::CONFORMANCE_EXT] = json!({ "code": code });
        body
    })
    .collect()
}

/// Filters over [`probe_users`] and the users (by userName) they find.
const PROBES: &[(&str, &[&str])] = &[
    (r#"displayName co "o'b""#, &["zoe"]),
    (r#"displayName co "zoë o""#, &["zoe"]),
    (r#"displayName sw "ZOË""#, &["zoe"]),
    (r#"displayName co "\"hi\"""#, &["quote"]),
    (r#"displayName ew "hi\" bob""#, &["quote"]),
    (r#"title co "0%_""#, &["zoe"]),
    (r#"title co "%_o""#, &["zoe"]),
    (r#"title co "_b%""#, &["quote"]),
    (r#"title co "f\\n""#, &["zoe"]),
    (r#"title co "abc""#, &["plain"]),
    (r#"title co "a%c""#, &[]),
    (r#"title co "b%c""#, &["quote"]),
    (r#"title sw "a_b""#, &["quote"]),
    (r#"title ew "%c""#, &["quote"]),
    (
        r#"urn:scimd:params:scim:schemas:extension:conformance:2.0:User:code co "ZOË""#,
        &["zoe"],
    ),
    (
        r#"urn:scimd:params:scim:schemas:extension:conformance:2.0:User:code co "zoë""#,
        &[],
    ),
    (
        r#"urn:scimd:params:scim:schemas:extension:conformance:2.0:User:code sw "Δέλ""#,
        &["quote"],
    ),
    (
        r#"urn:scimd:params:scim:schemas:extension:conformance:2.0:User:code sw "δέλ""#,
        &[],
    ),
    (r#"emails.value co "ZOE@EXA""#, &["zoe"]),
    (
        r#"emails[type eq "home" and value sw "quote@home"]"#,
        &["quote"],
    ),
    (
        r#"emails.value co "n@example.com" and title co "abc""#,
        &["plain"],
    ),
    (
        r#"displayName co "jensen" or title co "0%_""#,
        &["plain", "zoe"],
    ),
];

async fn check_probes(b: &SqlBackend, source: &str, users: &[(String, String)]) {
    for (text, want) in PROBES {
        let mut want: Vec<String> = want
            .iter()
            .map(|u| {
                users
                    .iter()
                    .find(|(name, _)| name.starts_with(&format!("{u}@")))
                    .unwrap()
                    .1
                    .clone()
            })
            .collect();
        want.sort();
        assert_eq!(ids(b, source, text).await, want, "{text}");
    }
}

async fn create_probes(b: &SqlBackend, source: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for body in probe_users() {
        let r = b
            .create(source, ResourceKind::User, attrs(ResourceKind::User, &body))
            .await
            .unwrap();
        out.push((body["userName"].as_str().unwrap().to_string(), r.id));
    }
    out
}

/// Migrates a database at version 3 (before the substring index) holding users: the
/// migration indexes them, and filters through the index find them.
async fn upgrade_indexes_existing_resources(b: SqlBackend) {
    b.set_default_schemas(support::registry());
    b.migrate_to(3).await.unwrap();
    assert_eq!(b.schema_version().await.unwrap(), Some(3));
    let users = create_probes(&b, "old").await;
    b.migrate().await.unwrap();
    check_probes(&b, "old", &users).await;
    // And resources written after the upgrade, through the triggers.
    let users = create_probes(&b, "new").await;
    check_probes(&b, "new", &users).await;
    // Updates and deletes keep the index in step.
    let zoe = &users[0].1;
    let mut body = probe_users().remove(0);
    body["title"] = json!("renamed");
    b.replace(
        "new",
        ResourceKind::User,
        zoe,
        attrs(ResourceKind::User, &body),
        None,
    )
    .await
    .unwrap();
    assert!(ids(&b, "new", r#"title co "0%_""#).await.is_empty());
    assert_eq!(
        ids(&b, "new", r#"title co "name""#).await,
        vec![zoe.clone()]
    );
    b.delete("new", ResourceKind::User, zoe, None)
        .await
        .unwrap();
    assert!(ids(&b, "new", r#"title co "name""#).await.is_empty());
    assert!(ids(&b, "new", r#"displayName co "o'b""#).await.is_empty());
}

#[tokio::test]
async fn sqlite_upgrade_indexes_existing_resources() {
    use sqlx::Connection;
    let config = support::sqlite_file_config();
    let b = SqlBackend::connect_sqlite(&config).await.unwrap();
    upgrade_indexes_existing_resources(b.clone()).await;
    b.close().await;
    // The full-text index is consistent after the backfill, updates and deletes.
    let mut c = sqlx::SqliteConnection::connect_with(
        &sqlx::sqlite::SqliteConnectOptions::new().filename(&config.path),
    )
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO scimd_search_fts (scimd_search_fts, rank) VALUES ('integrity-check', 0)",
    )
    .execute(&mut c)
    .await
    .unwrap();
    let orphans: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM scimd_search_keys k WHERE NOT EXISTS (SELECT 1 FROM \
         scimd_resources r WHERE r.source = k.source AND r.kind = k.kind AND r.id = k.id)",
    )
    .fetch_one(&mut c)
    .await
    .unwrap();
    assert_eq!(orphans, 0);
    c.close().await.unwrap();
}

#[tokio::test]
async fn postgres_upgrade_indexes_existing_resources() {
    let Some(url) = support::new_postgres_url() else {
        return;
    };
    let b = SqlBackend::connect_postgres(&PostgresConfig {
        url: url.clone(),
        ..PostgresConfig::default()
    })
    .await
    .unwrap();
    upgrade_indexes_existing_resources(b.clone()).await;
    b.close().await;
    support::drop_database(&url);
}

#[tokio::test]
async fn postgres_without_pg_trgm_fails_to_migrate_with_a_hint() {
    let Some(url) = support::new_postgres_url() else {
        return;
    };
    // A role that may create tables in the public schema but not extensions in the database.
    let role = format!("scimd_nopriv_{}", std::process::id());
    let admin = sqlx::PgPool::connect(&url).await.unwrap();
    for stmt in [
        format!("DROP ROLE IF EXISTS {role}"),
        format!("CREATE ROLE {role} LOGIN"),
        format!("GRANT CREATE, USAGE ON SCHEMA public TO {role}"),
    ] {
        sqlx::query(sqlx::AssertSqlSafe(stmt))
            .execute(&admin)
            .await
            .unwrap();
    }
    let limited = url.replacen("postgres@", &format!("{role}@"), 1);
    assert_ne!(limited, url, "the test URL names the postgres user");
    let b = SqlBackend::connect_postgres(&PostgresConfig {
        url: limited,
        ..PostgresConfig::default()
    })
    .await
    .unwrap();
    let err = b.migrate().await.unwrap_err().to_string();
    assert!(
        err.contains("pg_trgm") && err.contains("could not create it"),
        "{err}"
    );
    // The migrations before it were applied, each in its own transaction.
    assert_eq!(b.schema_version().await.unwrap(), Some(3));
    b.close().await;
    admin.close().await;
    support::drop_database(&url);
    let other = sqlx::PgPool::connect(&support::postgres_url().unwrap())
        .await
        .unwrap();
    let _ = sqlx::query(sqlx::AssertSqlSafe(format!("DROP ROLE IF EXISTS {role}")))
        .execute(&other)
        .await;
}

const BADGE: &str = "urn:example:params:scim:schemas:extension:badge:2.0:User";

fn badge_registry() -> Arc<SchemaRegistry> {
    let schema = Schema::from_json(&json!({
        "id": BADGE,
        "name": "Badge",
        "attributes": [
            {"name": "color", "type": "string"},
            {"name": "issued", "type": "dateTime"}
        ]
    }))
    .unwrap();
    let mut reg = SchemaRegistry::new();
    reg.add_extension(ResourceKind::User, schema, false)
        .unwrap();
    Arc::new(reg)
}

/// Users written while the badge extension was not configured carry its data unfolded; once it
/// is configured, a reopened backend rebuilds their search copy and filters find them.
async fn extension_configured_later_is_indexed(open: impl AsyncFn() -> SqlBackend) {
    let source = "late-extension";
    let b = open().await;
    b.set_schemas(source, Arc::new(SchemaRegistry::new()));
    assert!(b.reindex_stale().await.unwrap().rebuilt.is_empty());
    let mut written = Vec::new();
    for (i, color) in ["Deep Purple", "Sky Blue", "Purple Rain"]
        .into_iter()
        .enumerate()
    {
        let mut a = attrs(
            ResourceKind::User,
            &user_body(&format!("late{i}@example.com")),
        );
        a.insert(
            BADGE.into(),
            json!({"color": color, "issued": "2024-03-01T10:00:00+02:00"}),
        );
        written.push(b.create(source, ResourceKind::User, a).await.unwrap().id);
    }
    b.close().await;

    let b = open().await;
    b.set_schemas(source, badge_registry());
    let purple = format!("{BADGE}:color co \"PURPLE\"");
    let issued = format!("{BADGE}:issued eq \"2024-03-01T08:00:00Z\"");
    let exact = format!("{BADGE}:color eq \"sky blue\"");
    // Before the rebuild the copies hold the colors unfolded and the times as written.
    assert!(ids(&b, source, &purple).await.is_empty());
    assert!(ids(&b, source, &issued).await.is_empty());
    let report = b.reindex_stale().await.unwrap();
    assert_eq!(
        report.rebuilt,
        vec![(source.to_string(), ResourceKind::User)]
    );
    assert_eq!((report.resources, report.rewritten), (3, 3));
    let mut want = vec![written[0].clone(), written[2].clone()];
    want.sort();
    assert_eq!(ids(&b, source, &purple).await, want);
    let mut all = written.clone();
    all.sort();
    assert_eq!(ids(&b, source, &issued).await, all);
    assert_eq!(ids(&b, source, &exact).await, vec![written[1].clone()]);
    // Recorded: the next start has nothing to do.
    assert!(b.reindex_stale().await.unwrap().rebuilt.is_empty());
    b.close().await;

    let b = open().await;
    b.set_schemas(source, badge_registry());
    assert!(b.reindex_stale().await.unwrap().rebuilt.is_empty());
    assert_eq!(ids(&b, source, &purple).await, want);
    b.close().await;
}

#[tokio::test]
async fn sqlite_extension_configured_later_is_indexed_at_start() {
    let config = support::sqlite_file_config();
    extension_configured_later_is_indexed(async || config.build().await.unwrap()).await;
}

#[tokio::test]
async fn postgres_extension_configured_later_is_indexed_at_start() {
    let Some(url) = support::postgres_url() else {
        return;
    };
    extension_configured_later_is_indexed(async || {
        PostgresConfig {
            url: url.clone(),
            ..PostgresConfig::default()
        }
        .build()
        .await
        .unwrap()
    })
    .await;
}
