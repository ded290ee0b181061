//! # scimd-backend-sql
//!
//! The SQL backend of scimd: one code base for the embedded SQLite default and for PostgreSQL,
//! with the dialect differences (placeholders, JSON functions, collation, locking) kept in
//! [`db`](crate::db) and the filter translator.
//!
//! - [`SqlBackend`] implements [`scimd_core::Backend`] and [`scimd_core::state::StateStore`]
//!   (bearer tokens live in the same database, in their own table).
//! - [`SqliteConfig`] and [`PostgresConfig`] are the operator-facing configurations; their
//!   `build()` connects and applies the embedded migrations.
//! - The state store's event outbox lives in the same database; when it is the live state
//!   store ([`SqlBackend::set_transactional_outbox`]), a write watched by outbox hooks stores
//!   its messages in the write's own transaction.
//!
//! ## Storage model
//! Resources are rows keyed by `(source, kind, id)` with their version, timestamps, the
//! canonical attributes as JSON, a search copy of them (strings of attributes that are not
//! `caseExact` case-folded, `dateTime`s normalized) and indexed columns for `userName` (unique
//! per source, case-insensitively), `externalId` and `displayName`; `emails.value` has a side
//! table. Group membership is a relation table indexed both ways: adding or removing a member
//! is one row, whatever the group's size, and `User.groups` is derived by a join.
//!
//! The strings of each search copy are also in a trigram index: an FTS5 table with the
//! `trigram` tokenizer kept in step by triggers on SQLite, a GIN `pg_trgm` index on a stored
//! column generated from the copy on PostgreSQL (whose migration creates the extension, and
//! fails with a hint when the database role may not). The search copy depends on the schemas it was
//! written under; [`SqlBackend::reindex_stale`] rebuilds it for sources whose schemas changed.
//!
//! ## Queries
//! The whole filter becomes one parameterized `WHERE` (see the `filter` module); sorting,
//! index paging and keyset cursor paging run in SQL and `totalResults` is an exact `COUNT`.
//! A filter that implies `co`, `sw` or `ew` needles of three characters or more is first
//! narrowed by the trigram index to the resources containing them, then checked exactly.
//!
//! ## Writes
//! Each call is one transaction. Versions are compared and swapped in the `UPDATE`; PATCHes of
//! group members become row inserts and deletes; lock conflicts (SQLite busy, PostgreSQL
//! serialization failures and deadlocks) are retried with backoff rather than surfaced.

#![forbid(unsafe_code)]

mod config;
mod db;
mod explain;
mod filter;
mod migrate;
mod outbox;
mod reindex;
mod search;
mod state;
mod store;

pub use config::{PostgresConfig, SqliteConfig, SslMode, redact_url};
pub use migrate::{MIGRATIONS_TABLE, latest_version};
pub use reindex::ReindexReport;

#[doc(hidden)]
pub use db::Dialect;
#[doc(hidden)]
pub use filter::translate_filter;
use scimd_core::{Capabilities, SchemaRegistry};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgSslMode};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, SqlitePool};
use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// Why the backend could not be opened or migrated.
#[derive(Debug, thiserror::Error)]
pub enum SqlError {
    /// The configuration is unusable (e.g. a malformed URL).
    #[error("invalid SQL backend configuration: {0}")]
    Config(String),
    /// The database could not be reached or opened.
    #[error("cannot connect to the database: {0}")]
    Connect(String),
    /// Applying or checking migrations failed.
    #[error("database migration failed: {0}")]
    Migrate(String),
    /// Rebuilding the search copy of a source failed.
    #[error("rebuilding the search copy failed: {0}")]
    Reindex(String),
}

/// The connections of one backend.
#[derive(Clone)]
enum Pools {
    /// SQLite: writes go through one connection, reads through a pool (the same pool when the
    /// database is in memory, since each connection would otherwise see its own database).
    Sqlite {
        writer: SqlitePool,
        reader: SqlitePool,
    },
    Postgres(PgPool),
}

/// The SQL backend. Cheap to clone: clones share connections and schemas.
#[derive(Clone)]
pub struct SqlBackend {
    inner: Arc<Inner>,
}

struct Inner {
    pools: Pools,
    max_results: u64,
    /// Whether staged writes store their outbox messages in their own transaction.
    transactional_outbox: AtomicBool,
    default_schemas: RwLock<Arc<SchemaRegistry>>,
    schemas: RwLock<HashMap<String, Arc<SchemaRegistry>>>,
}

impl fmt::Debug for SqlBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqlBackend")
            .field("dialect", &self.dialect())
            .field("max_results", &self.inner.max_results)
            .finish_non_exhaustive()
    }
}

impl SqliteConfig {
    /// Opens the database (creating the file and its directory when missing) and, unless
    /// `migrate_on_start` is off, applies pending migrations.
    pub async fn build(&self) -> Result<SqlBackend, SqlError> {
        let backend = SqlBackend::connect_sqlite(self).await?;
        backend.start(self.migrate_on_start).await?;
        Ok(backend)
    }
}

impl PostgresConfig {
    /// Connects and, unless `migrate_on_start` is off, applies pending migrations.
    pub async fn build(&self) -> Result<SqlBackend, SqlError> {
        let backend = SqlBackend::connect_postgres(self).await?;
        backend.start(self.migrate_on_start).await?;
        Ok(backend)
    }
}

impl SqlBackend {
    /// Opens a SQLite database without migrating it (see [`SqlBackend::migrate`]).
    pub async fn connect_sqlite(config: &SqliteConfig) -> Result<SqlBackend, SqlError> {
        let busy = Duration::from_millis(config.busy_timeout_ms);
        let base = SqliteConnectOptions::new()
            .foreign_keys(true)
            .busy_timeout(busy)
            // LIKE must respect case: folding is done before comparing, and caseExact
            // attributes must not match another case.
            .pragma("case_sensitive_like", "ON");
        let pools = if config.is_in_memory() {
            // One connection that never expires: the database lives as long as it does.
            let pool = SqlitePoolOptions::new()
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
                .connect_with(base.in_memory(true))
                .await
                .map_err(|e| SqlError::Connect(e.to_string()))?;
            Pools::Sqlite {
                writer: pool.clone(),
                reader: pool,
            }
        } else {
            if let Some(dir) = config.path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(|e| {
                    SqlError::Connect(format!("cannot create {}: {e}", dir.display()))
                })?;
            }
            let opts = base
                .filename(&config.path)
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                // FULL syncs the WAL on every commit: an acknowledged write survives a crash
                // of the process and of the machine.
                .synchronous(SqliteSynchronous::Full);
            // A local file has no connection to lose: pinging each connection before handing
            // it out (sqlx's default) would add a round trip to every statement.
            let writer = SqlitePoolOptions::new()
                .test_before_acquire(false)
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .acquire_timeout(Duration::from_secs(30))
                .connect_with(opts.clone())
                .await
                .map_err(|e| SqlError::Connect(format!("{}: {e}", config.path.display())))?;
            let reader = SqlitePoolOptions::new()
                .test_before_acquire(false)
                .max_connections(config.reader_connections.max(1))
                .acquire_timeout(Duration::from_secs(30))
                .connect_with(opts)
                .await
                .map_err(|e| SqlError::Connect(format!("{}: {e}", config.path.display())))?;
            Pools::Sqlite { writer, reader }
        };
        Ok(SqlBackend::from_pools(pools, config.max_results))
    }

    /// Connects to PostgreSQL without migrating (see [`SqlBackend::migrate`]).
    pub async fn connect_postgres(config: &PostgresConfig) -> Result<SqlBackend, SqlError> {
        let mut opts = PgConnectOptions::from_str(&config.url)
            .map_err(|e| SqlError::Config(format!("url {}: {e}", redact_url(&config.url))))?
            .application_name("scimd");
        if let Some(p) = &config.password {
            opts = opts.password(p);
        }
        if let Some(mode) = config.sslmode {
            opts = opts.ssl_mode(match mode {
                SslMode::Disable => PgSslMode::Disable,
                SslMode::Allow => PgSslMode::Allow,
                SslMode::Prefer => PgSslMode::Prefer,
                SslMode::Require => PgSslMode::Require,
                SslMode::VerifyCa => PgSslMode::VerifyCa,
                SslMode::VerifyFull => PgSslMode::VerifyFull,
            });
        }
        if let Some(c) = &config.ssl_root_cert {
            opts = opts.ssl_root_cert(c);
        }
        if let Some(c) = &config.ssl_client_cert {
            opts = opts.ssl_client_cert(c);
        }
        if let Some(k) = &config.ssl_client_key {
            opts = opts.ssl_client_key(k);
        }
        if config.statement_timeout_ms > 0 {
            opts = opts.options([("statement_timeout", config.statement_timeout_ms.to_string())]);
        }
        let lifetime =
            (config.max_lifetime_secs > 0).then(|| Duration::from_secs(config.max_lifetime_secs));
        let pool = PgPoolOptions::new()
            .max_connections(config.max_connections.max(1))
            .min_connections(config.min_connections)
            .acquire_timeout(Duration::from_secs(config.acquire_timeout_secs))
            .idle_timeout(Duration::from_secs(config.idle_timeout_secs))
            .max_lifetime(lifetime)
            .connect_with(opts)
            .await
            .map_err(|e| SqlError::Connect(format!("{}: {e}", redact_url(&config.url))))?;
        Ok(SqlBackend::from_pools(
            Pools::Postgres(pool),
            config.max_results,
        ))
    }

    fn from_pools(pools: Pools, max_results: u64) -> SqlBackend {
        SqlBackend {
            inner: Arc::new(Inner {
                pools,
                max_results,
                transactional_outbox: AtomicBool::new(false),
                default_schemas: RwLock::new(Arc::new(SchemaRegistry::new())),
                schemas: RwLock::new(HashMap::new()),
            }),
        }
    }

    async fn start(&self, migrate: bool) -> Result<(), SqlError> {
        if migrate {
            self.migrate().await
        } else {
            match self.schema_version().await? {
                Some(v) if v >= latest_version() => Ok(()),
                v => Err(SqlError::Migrate(format!(
                    "the database schema is at version {} but this scimd needs {}: run `scimd migrate`",
                    v.unwrap_or(0),
                    latest_version()
                ))),
            }
        }
    }

    /// Applies every pending migration. Idempotent; safe to run from several processes at
    /// once.
    pub async fn migrate(&self) -> Result<(), SqlError> {
        let m = migrate::migrator(self.dialect());
        let r = match &self.inner.pools {
            Pools::Sqlite { writer, .. } => m.run(writer).await,
            Pools::Postgres(pool) => m.run(pool).await,
        };
        r.map_err(|e| SqlError::Migrate(e.to_string()))?;
        tracing::info!(
            dialect = self.dialect_name(),
            version = latest_version(),
            "Database schema is up to date."
        );
        Ok(())
    }

    /// Applies the migrations up to `version` only: for tests of upgrades from an older schema.
    #[doc(hidden)]
    pub async fn migrate_to(&self, version: i64) -> Result<(), SqlError> {
        let m = migrate::migrator(self.dialect());
        let r = match &self.inner.pools {
            Pools::Sqlite { writer, .. } => m.run_to(version, writer).await,
            Pools::Postgres(pool) => m.run_to(version, pool).await,
        };
        r.map_err(|e| SqlError::Migrate(e.to_string()))
    }

    /// The newest applied migration, `None` for an empty database.
    pub async fn schema_version(&self) -> Result<Option<i64>, SqlError> {
        let q = "SELECT MAX(version) FROM scimd_migrations WHERE success";
        let r: Result<Option<i64>, sqlx::Error> = match &self.inner.pools {
            Pools::Sqlite { reader, .. } => sqlx::query_scalar(q).fetch_one(reader).await,
            Pools::Postgres(pool) => sqlx::query_scalar(q).fetch_one(pool).await,
        };
        match r {
            Ok(v) => Ok(v),
            // No migrations table yet: an empty database.
            Err(sqlx::Error::Database(e))
                if e.message().contains("no such table")
                    || e.code().as_deref() == Some("42P01") =>
            {
                Ok(None)
            }
            Err(e) => Err(SqlError::Migrate(e.to_string())),
        }
    }

    /// Uses `registry` (e.g. with custom extensions) for resources of `source`. Attributes are
    /// indexed for search by the schema in force when they are written.
    pub fn set_schemas(&self, source: &str, registry: Arc<SchemaRegistry>) {
        self.inner
            .schemas
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(source.to_string(), registry);
    }

    /// Uses `registry` for every source without its own (the built-in schemas by default).
    pub fn set_default_schemas(&self, registry: Arc<SchemaRegistry>) {
        *self
            .inner
            .default_schemas
            .write()
            .unwrap_or_else(|e| e.into_inner()) = registry;
    }

    /// The schemas of a source.
    pub fn schemas(&self, source: &str) -> Arc<SchemaRegistry> {
        if let Some(r) = self
            .inner
            .schemas
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(source)
        {
            return r.clone();
        }
        self.inner
            .default_schemas
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// `sqlite` or `postgres`.
    pub fn dialect_name(&self) -> &'static str {
        match self.dialect() {
            Dialect::Sqlite => "sqlite",
            Dialect::Postgres => "postgres",
        }
    }

    fn dialect(&self) -> Dialect {
        match self.inner.pools {
            Pools::Sqlite { .. } => Dialect::Sqlite,
            Pools::Postgres(_) => Dialect::Postgres,
        }
    }

    /// Closes every connection (waiting for those in use to be returned).
    pub async fn close(&self) {
        match &self.inner.pools {
            Pools::Sqlite { writer, reader } => {
                reader.close().await;
                writer.close().await;
            }
            Pools::Postgres(pool) => pool.close().await,
        }
    }

    fn capabilities_impl(&self) -> Capabilities {
        Capabilities {
            filter: true,
            sort: true,
            cursor_paging: true,
            etag: true,
            change_password: true,
            membership_deltas: true,
            max_results: self.inner.max_results,
        }
    }
}
