//! Configuration of the two dialects, embeddable in the server's `BackendConfig`.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::PathBuf;

fn default_sqlite_path() -> PathBuf {
    PathBuf::from("./scimd-data/scimd.db")
}
fn default_busy_timeout_ms() -> u64 {
    5_000
}
fn default_readers() -> u32 {
    4
}
fn default_true() -> bool {
    true
}
fn default_max_results() -> u64 {
    1_000
}

/// The embedded SQLite store (the zero-config default).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqliteConfig {
    /// The database file. Its directory is created when missing. `:memory:` keeps everything
    /// in process memory (lost at exit; for tests and trials).
    #[serde(default = "default_sqlite_path")]
    pub path: PathBuf,
    /// How long a statement waits for a lock held by another connection or process before the
    /// transaction is retried, in milliseconds.
    #[serde(default = "default_busy_timeout_ms")]
    pub busy_timeout_ms: u64,
    /// Connections that serve reads concurrently. Writes always go through one connection:
    /// SQLite admits one writer at a time anyway, and queueing in-process is cheaper than
    /// lock contention.
    #[serde(default = "default_readers")]
    pub reader_connections: u32,
    /// Apply pending schema migrations when the backend starts (otherwise run
    /// `scimd migrate` first; the backend refuses a database that is behind).
    #[serde(default = "default_true")]
    pub migrate_on_start: bool,
    /// The largest number of resources one query returns (`filter.maxResults`).
    #[serde(default = "default_max_results")]
    pub max_results: u64,
}

impl Default for SqliteConfig {
    fn default() -> Self {
        SqliteConfig {
            path: default_sqlite_path(),
            busy_timeout_ms: default_busy_timeout_ms(),
            reader_connections: default_readers(),
            migrate_on_start: true,
            max_results: default_max_results(),
        }
    }
}

impl fmt::Debug for SqliteConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteConfig")
            .field("path", &self.path)
            .field("busy_timeout_ms", &self.busy_timeout_ms)
            .field("reader_connections", &self.reader_connections)
            .field("migrate_on_start", &self.migrate_on_start)
            .field("max_results", &self.max_results)
            .finish()
    }
}

impl SqliteConfig {
    /// Whether this configuration keeps the database in memory.
    pub fn is_in_memory(&self) -> bool {
        self.path.as_os_str() == ":memory:"
    }
}

/// How TLS is used towards PostgreSQL (libpq's `sslmode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum SslMode {
    /// Never use TLS.
    Disable,
    /// Try a plain connection first, then TLS.
    Allow,
    /// Try TLS first, then a plain connection.
    #[default]
    Prefer,
    /// Require TLS, without verifying the server certificate.
    Require,
    /// Require TLS and a server certificate signed by a trusted root.
    VerifyCa,
    /// Like `verify-ca`, and the certificate must name the host connected to.
    VerifyFull,
}

fn default_pg_url() -> String {
    "postgres://localhost/scimd".into()
}
fn default_max_connections() -> u32 {
    10
}
fn default_acquire_timeout_secs() -> u64 {
    10
}
fn default_idle_timeout_secs() -> u64 {
    600
}
fn default_max_lifetime_secs() -> u64 {
    1_800
}
fn default_statement_timeout_ms() -> u64 {
    30_000
}

/// A PostgreSQL database, shared by any number of scimd replicas.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresConfig {
    /// The connection URL, `postgres://user:password@host:port/database?options`. Options in
    /// the URL are applied first; the fields below override them.
    #[serde(default = "default_pg_url")]
    pub url: String,
    /// The password, when it is not in the URL (keeps it out of logged URLs).
    #[serde(default)]
    pub password: Option<String>,
    /// The most connections this process opens.
    #[serde(default = "default_max_connections")]
    pub max_connections: u32,
    /// Connections kept open even when idle.
    #[serde(default)]
    pub min_connections: u32,
    /// How long a request waits for a free connection before failing with 503, in seconds.
    #[serde(default = "default_acquire_timeout_secs")]
    pub acquire_timeout_secs: u64,
    /// Idle connections above `min_connections` are closed after this many seconds.
    #[serde(default = "default_idle_timeout_secs")]
    pub idle_timeout_secs: u64,
    /// Connections are replaced after this many seconds (0: never).
    #[serde(default = "default_max_lifetime_secs")]
    pub max_lifetime_secs: u64,
    /// The server aborts a statement running longer than this, in milliseconds (0: no limit).
    #[serde(default = "default_statement_timeout_ms")]
    pub statement_timeout_ms: u64,
    /// TLS mode; overrides `sslmode` in the URL when set.
    #[serde(default)]
    pub sslmode: Option<SslMode>,
    /// A PEM file of root certificates trusted for the server certificate.
    #[serde(default)]
    pub ssl_root_cert: Option<PathBuf>,
    /// A PEM client certificate, for servers that authenticate clients by certificate.
    #[serde(default)]
    pub ssl_client_cert: Option<PathBuf>,
    /// The PEM private key of `ssl_client_cert`.
    #[serde(default)]
    pub ssl_client_key: Option<PathBuf>,
    /// Apply pending schema migrations when the backend starts. Concurrent starts of several
    /// replicas are safe: migrations take a database-wide advisory lock.
    #[serde(default = "default_true")]
    pub migrate_on_start: bool,
    /// The largest number of resources one query returns (`filter.maxResults`).
    #[serde(default = "default_max_results")]
    pub max_results: u64,
}

impl Default for PostgresConfig {
    fn default() -> Self {
        PostgresConfig {
            url: default_pg_url(),
            password: None,
            max_connections: default_max_connections(),
            min_connections: 0,
            acquire_timeout_secs: default_acquire_timeout_secs(),
            idle_timeout_secs: default_idle_timeout_secs(),
            max_lifetime_secs: default_max_lifetime_secs(),
            statement_timeout_ms: default_statement_timeout_ms(),
            sslmode: None,
            ssl_root_cert: None,
            ssl_client_cert: None,
            ssl_client_key: None,
            migrate_on_start: true,
            max_results: default_max_results(),
        }
    }
}

impl fmt::Debug for PostgresConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresConfig")
            .field("url", &redact_url(&self.url))
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("max_connections", &self.max_connections)
            .field("min_connections", &self.min_connections)
            .field("acquire_timeout_secs", &self.acquire_timeout_secs)
            .field("idle_timeout_secs", &self.idle_timeout_secs)
            .field("max_lifetime_secs", &self.max_lifetime_secs)
            .field("statement_timeout_ms", &self.statement_timeout_ms)
            .field("sslmode", &self.sslmode)
            .field("ssl_root_cert", &self.ssl_root_cert)
            .field("ssl_client_cert", &self.ssl_client_cert)
            .field("ssl_client_key", &self.ssl_client_key)
            .field("migrate_on_start", &self.migrate_on_start)
            .field("max_results", &self.max_results)
            .finish()
    }
}

/// The URL with any password replaced, for logs and `Debug`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (authority, tail) = match rest.find(['/', '?']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
            if userinfo.contains(':') {
                format!("{scheme}://{user}:<redacted>@{host}{tail}")
            } else {
                url.to_string()
            }
        }
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_reach_debug_output() {
        let c = PostgresConfig {
            url: "postgres://scimd:s3cret@db:5432/scimd?sslmode=require".into(),
            password: Some("other-secret".into()),
            ..PostgresConfig::default()
        };
        let shown = format!("{c:?}");
        assert!(
            !shown.contains("s3cret") && !shown.contains("other-secret"),
            "{shown}"
        );
        assert!(shown.contains("postgres://scimd:<redacted>@db:5432/scimd?sslmode=require"));
    }

    #[test]
    fn configs_reject_unknown_fields_and_fill_defaults() {
        let c: SqliteConfig = serde_json::from_str(r#"{"path": "/tmp/x.db"}"#).unwrap();
        assert_eq!(c.busy_timeout_ms, 5_000);
        assert!(c.migrate_on_start);
        assert!(serde_json::from_str::<SqliteConfig>(r#"{"pth": "/tmp/x.db"}"#).is_err());
        let p: PostgresConfig =
            serde_json::from_str(r#"{"url": "postgres://h/db", "sslmode": "verify-full"}"#)
                .unwrap();
        assert_eq!(p.sslmode, Some(SslMode::VerifyFull));
        assert_eq!(p.max_connections, 10);
        assert!(serde_json::from_str::<PostgresConfig>(r#"{"sslmode": "sometimes"}"#).is_err());
    }
}
