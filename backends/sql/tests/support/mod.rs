//! Test databases: SQLite files in the target directory, SQLite in memory, and a fresh
//! PostgreSQL database per test run.
//!
//! PostgreSQL: see [`pg`] (where the server is found or started, one fresh database per test
//! process, skipped without PostgreSQL except under `CI=true`).

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use scimd_backend_sql::{PostgresConfig, SqlBackend, SqliteConfig};
use scimd_core::SchemaRegistry;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

// The PostgreSQL plumbing has no dependency on the backend, so the server's end-to-end tests
// include the same file (`#[path]`) to get their databases the same way.
mod pg;
#[allow(unused_imports)] // each test binary uses some of them
pub use pg::{drop_database, new_postgres_url, postgres_url};

/// The registry the conformance suite expects.
pub fn registry() -> Arc<SchemaRegistry> {
    scimd_testkit::fixtures::registry()
}

/// A new SQLite database file under the target directory (old files of this test binary are
/// removed at the first call).
pub fn sqlite_file_config() -> SqliteConfig {
    static CLEANED: OnceLock<()> = OnceLock::new();
    static SEQ: AtomicUsize = AtomicUsize::new(0);
    // Integration tests get a target-local scratch folder; the `perf` example, which shares
    // this module, falls back to the system's temporary directory.
    let dir = option_env!("CARGO_TARGET_TMPDIR")
        .map_or_else(std::env::temp_dir, PathBuf::from)
        .join("scimd-sql-tests");
    let exe = std::env::current_exe()
        .ok()
        .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .unwrap_or_default();
    CLEANED.get_or_init(|| {
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                let pid_alive = name
                    .split('-')
                    .nth(1)
                    .and_then(|p| p.parse::<u32>().ok())
                    .is_some_and(|p| PathBuf::from(format!("/proc/{p}")).exists());
                if name.starts_with(&format!("{exe}-")) || !pid_alive {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
    });
    let n = SEQ.fetch_add(1, Ordering::Relaxed);
    let path = dir.join(format!("{exe}-{}-{n}.db", std::process::id()));
    SqliteConfig {
        path,
        ..SqliteConfig::default()
    }
}

/// A backend on a new SQLite file with the conformance registry.
pub async fn sqlite_file() -> SqlBackend {
    let b = sqlite_file_config()
        .build()
        .await
        .expect("open SQLite file");
    b.set_default_schemas(registry());
    b
}

/// A backend on a new in-memory SQLite database with the conformance registry.
pub async fn sqlite_memory() -> SqlBackend {
    let cfg = SqliteConfig {
        path: ":memory:".into(),
        ..SqliteConfig::default()
    };
    let b = cfg.build().await.expect("open SQLite in memory");
    b.set_default_schemas(registry());
    b
}

/// A backend on this test process's PostgreSQL database, or `None` (after saying why) when
/// there is no PostgreSQL and this is not CI.
pub async fn postgres() -> Option<SqlBackend> {
    let url = postgres_url()?;
    let cfg = PostgresConfig {
        url,
        max_connections: 8,
        ..PostgresConfig::default()
    };
    let b = cfg.build().await.expect("connect to the test database");
    b.set_default_schemas(registry());
    Some(b)
}

/// Runs each named rule (an `async fn(Arc<SqlBackend>)` of the including file) on a SQLite
/// file and on PostgreSQL (skipped without PostgreSQL outside CI).
#[allow(unused_macros)]
macro_rules! on_both {
    ($($rule:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $rule() {
                    super::$rule(Arc::new(super::support::sqlite_file().await)).await;
                }
            )*
            use std::sync::Arc;
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $rule() {
                    let Some(b) = super::support::postgres().await else {
                        eprintln!("skipped {}: no PostgreSQL", stringify!($rule));
                        return;
                    };
                    super::$rule(Arc::new(b)).await;
                }
            )*
            use std::sync::Arc;
        }
    };
}
