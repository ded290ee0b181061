//! PostgreSQL test databases, with no dependency on the backend itself (the server's end-to-end
//! tests include this file too).
//!
//! `SCIMD_TEST_POSTGRES_URL` (an admin URL, default
//! `postgres://postgres@127.0.0.1:5432/postgres`) is tried first; when nothing answers, a
//! throwaway cluster is started with the server binaries of the installed PostgreSQL
//! (`initdb` + `pg_ctl` in a temporary directory, as the `postgres` user when running as root).
//! Each test process creates its own database `scimd_test_<pid>_<random>` and a watcher
//! process drops it (and stops a throwaway cluster) when the test process is gone; databases
//! left by killed runs are dropped at the next start. Without PostgreSQL the tests are skipped
//! with a message, except under `CI=true`, where they fail.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use sqlx::Connection;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// The URL of this test process's own database, created on first use.
pub fn postgres_url() -> Option<String> {
    static URL: OnceLock<Option<String>> = OnceLock::new();
    URL.get_or_init(new_postgres_url).clone()
}

/// A new, empty database (dropped when this process exits), or `None` as for
/// [`postgres_url`].
pub fn new_postgres_url() -> Option<String> {
    // A thread with its own runtime: the database outlives every test's runtime.
    std::thread::spawn(create_database)
        .join()
        .unwrap_or_else(|e| std::panic::resume_unwind(e))
}

fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// The admin URL found by [`admin`].
static ADMIN_URL: OnceLock<Option<String>> = OnceLock::new();

/// The admin URL of a reachable server, found (or started) once per process.
fn admin() -> Option<String> {
    ADMIN_URL
        .get_or_init(|| {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            match rt.block_on(admin_url()) {
                Some(u) => Some(u),
                None if ci() => panic!(
                    "CI=true but no PostgreSQL could be reached or started: the PostgreSQL \
                     tests must run in CI (set SCIMD_TEST_POSTGRES_URL or install PostgreSQL)"
                ),
                None => {
                    eprintln!(
                        "skipped: no PostgreSQL answers and none could be started \
                         (set SCIMD_TEST_POSTGRES_URL)"
                    );
                    None
                }
            }
        })
        .clone()
}

fn create_database() -> Option<String> {
    let admin = admin()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let mut conn = sqlx::PgConnection::connect(&admin)
            .await
            .expect("admin connection");
        static CLEANED: OnceLock<()> = OnceLock::new();
        if CLEANED.set(()).is_ok() {
            drop_stale_databases(&mut conn).await;
        }
        let name = format!(
            "scimd_test_{}_{:08x}",
            std::process::id(),
            rand::random::<u32>()
        );
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "CREATE DATABASE \"{name}\" TEMPLATE template0 ENCODING 'UTF8'"
        )))
        .execute(&mut conn)
        .await
        .expect("create the test database");
        let _ = conn.close().await;
        watch_and_drop(&admin, &name);
        Some(replace_database(&admin, &name))
    })
}

/// Drops test databases whose process is gone (runs that were killed).
async fn drop_stale_databases(conn: &mut sqlx::PgConnection) {
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT datname::text FROM pg_database WHERE datname LIKE 'scimd\\_test\\_%'",
    )
    .fetch_all(&mut *conn)
    .await
    .unwrap_or_default();
    for name in names {
        let pid = name.split('_').nth(2).and_then(|p| p.parse::<u32>().ok());
        let alive = pid.is_some_and(|p| PathBuf::from(format!("/proc/{p}")).exists());
        if !alive && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
            )))
            .execute(&mut *conn)
            .await;
        }
    }
}

/// Starts a detached watcher that drops the database once this process has exited.
fn watch_and_drop(admin: &str, name: &str) {
    let Some(psql) = pg_bin("psql").or_else(|| which("psql")) else {
        return;
    };
    let script = format!(
        "while kill -0 {pid} 2>/dev/null; do sleep 1; done; \
         '{psql}' '{admin}' -q -c 'DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)' >/dev/null 2>&1",
        pid = std::process::id(),
        psql = psql.display(),
    );
    let _ = Command::new("sh")
        .arg("-c")
        .arg(script)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
}

fn replace_database(url: &str, name: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("postgres", url));
    let (authority, tail) = match rest.find(['/', '?']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    match tail.split_once('?') {
        Some((_, q)) => format!("{scheme}://{authority}/{name}?{q}"),
        None => format!("{scheme}://{authority}/{name}"),
    }
}

async fn answers(url: &str) -> bool {
    matches!(
        tokio::time::timeout(
            std::time::Duration::from_secs(5),
            sqlx::PgConnection::connect(url)
        )
        .await,
        Ok(Ok(_))
    )
}

/// An admin URL of a reachable server: the configured or default one, else a throwaway
/// cluster started here.
async fn admin_url() -> Option<String> {
    let url = std::env::var("SCIMD_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    if answers(&url).await {
        return Some(url);
    }
    let url = start_cluster()?;
    for _ in 0..50 {
        if answers(&url).await {
            return Some(url);
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    None
}

fn which(bin: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| PathBuf::from(d).join(bin))
        .find(|p| p.is_file())
}

/// The newest installed PostgreSQL server binary `bin` (Debian layout).
fn pg_bin(bin: &str) -> Option<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_string_lossy().parse::<u32>().ok()?;
            Some((v, e.path().join("bin").join(bin)))
        })
        .filter(|(_, p)| p.is_file())
        .collect();
    versions.sort();
    versions.pop().map(|(_, p)| p).or_else(|| which(bin))
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Runs a PostgreSQL binary, as the `postgres` user when we are root (initdb refuses root).
fn as_pg(bin: &PathBuf) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(bin);
        c
    } else {
        Command::new(bin)
    }
}

/// Starts a throwaway cluster on a free port; a watcher stops it and removes its directory
/// when this process exits.
fn start_cluster() -> Option<String> {
    let initdb = pg_bin("initdb")?;
    let pg_ctl = pg_bin("pg_ctl")?;
    let dir = std::env::temp_dir().join(format!(
        "scimd-pg-{}-{:08x}",
        std::process::id(),
        rand::random::<u32>()
    ));
    std::fs::create_dir_all(&dir).ok()?;
    if is_root() {
        Command::new("chown")
            .arg("postgres:")
            .arg(&dir)
            .status()
            .ok()?;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .ok()?
        .local_addr()
        .ok()?
        .port();
    let data = dir.join("data");
    let ok = as_pg(&initdb)
        .arg("-D")
        .arg(&data)
        .args([
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .ok()?
        .success();
    if !ok {
        return None;
    }
    let opts = format!(
        "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off \
         -c full_page_writes=off -c max_connections=200",
        dir.display()
    );
    let ok = as_pg(&pg_ctl)
        .arg("-D")
        .arg(&data)
        .arg("-l")
        .arg(dir.join("log"))
        .args(["-w", "-t", "30", "-o", &opts, "start"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .ok()?
        .success();
    if !ok {
        return None;
    }
    let stop = if is_root() {
        format!(
            "runuser -u postgres -- '{}' -D '{}' -m immediate stop",
            pg_ctl.display(),
            data.display()
        )
    } else {
        format!(
            "'{}' -D '{}' -m immediate stop",
            pg_ctl.display(),
            data.display()
        )
    };
    let script = format!(
        "while kill -0 {pid} 2>/dev/null; do sleep 1; done; {stop} >/dev/null 2>&1; rm -rf '{dir}'",
        pid = std::process::id(),
        dir = dir.display(),
    );
    let _ = Command::new("sh")
        .arg("-c")
        .arg(script)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    Some(format!("postgres://postgres@127.0.0.1:{port}/postgres"))
}

/// Drops a database made by [`new_postgres_url`] now (closing its connections) instead of
/// when this process exits. Best effort and never panics: it also runs while unwinding, and
/// the watcher still drops the database at exit.
pub fn drop_database(url: &str) {
    let Some(name) = url
        .rsplit_once('/')
        .map(|(_, tail)| tail.split('?').next().unwrap_or(tail).to_string())
    else {
        return;
    };
    // Only names this module made: they are spliced into the statement.
    if !name.starts_with("scimd_test_")
        || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        return;
    }
    let Some(admin) = ADMIN_URL.get().cloned().flatten() else {
        return;
    };
    let _ = std::thread::spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        rt.block_on(async {
            let Ok(mut conn) = sqlx::PgConnection::connect(&admin).await else {
                return;
            };
            let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
            )))
            .execute(&mut conn)
            .await;
            let _ = conn.close().await;
        });
    })
    .join();
}
