//! The thin layer over sqlx that lets one code base speak both dialects: a statement builder
//! that renders placeholders per dialect and keeps every value a bound parameter, transactions
//! and rows that hide which driver is underneath, and the mapping of driver errors.

use scimd_core::BackendError;
use sqlx::postgres::{PgArguments, PgRow};
use sqlx::sqlite::{SqliteArguments, SqliteRow};
use sqlx::{AssertSqlSafe, PgPool, Postgres, Row, Sqlite, SqlitePool, Transaction};
use std::fmt::Write as _;

/// The SQL dialect a statement is rendered for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// SQLite 3.45+ (JSONB, `->>`, `RETURNING`, aggregate `ORDER BY`).
    Sqlite,
    /// PostgreSQL 13+.
    Postgres,
}

/// A bound parameter value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Param {
    Text(String),
    OptText(Option<String>),
    Int(i64),
    Real(f64),
    /// JSON text; PostgreSQL placeholders for it are cast to `jsonb`.
    Json(String),
}

/// A statement under construction: SQL text with dialect placeholders and its parameters in
/// placeholder order.
#[derive(Debug, Clone)]
pub(crate) struct Sql {
    pub(crate) dialect: Dialect,
    pub(crate) text: String,
    pub(crate) params: Vec<Param>,
}

impl Sql {
    pub(crate) fn new(dialect: Dialect) -> Self {
        Sql {
            dialect,
            text: String::with_capacity(256),
            params: Vec::new(),
        }
    }

    /// Appends SQL text. Only ever called with text written in this crate, never with input.
    pub(crate) fn push(&mut self, s: &str) -> &mut Self {
        self.text.push_str(s);
        self
    }

    /// Appends a placeholder for `p`.
    pub(crate) fn bind(&mut self, p: Param) -> &mut Self {
        let is_json = matches!(p, Param::Json(_));
        self.params.push(p);
        match self.dialect {
            Dialect::Sqlite => self.text.push('?'),
            Dialect::Postgres => {
                let _ = write!(self.text, "${}", self.params.len());
                if is_json {
                    self.text.push_str("::jsonb");
                }
            }
        }
        self
    }

    pub(crate) fn bind_text(&mut self, s: impl Into<String>) -> &mut Self {
        self.bind(Param::Text(s.into()))
    }

    pub(crate) fn bind_int(&mut self, i: i64) -> &mut Self {
        self.bind(Param::Int(i))
    }

    /// `(?, ?, ...)` for a non-empty list of texts.
    pub(crate) fn bind_text_list<'a>(&mut self, items: impl IntoIterator<Item = &'a str>) {
        self.push("(");
        for (i, s) in items.into_iter().enumerate() {
            if i > 0 {
                self.push(", ");
            }
            self.bind_text(s);
        }
        self.push(")");
    }

    pub(crate) fn sqlite(&self) -> sqlx::query::Query<'static, Sqlite, SqliteArguments> {
        let mut q = sqlx::query(AssertSqlSafe(self.text.clone()));
        for p in &self.params {
            q = match p {
                Param::Text(s) | Param::Json(s) => q.bind(s.clone()),
                Param::OptText(s) => q.bind(s.clone()),
                Param::Int(i) => q.bind(*i),
                Param::Real(f) => q.bind(*f),
            };
        }
        q
    }

    pub(crate) fn postgres(&self) -> sqlx::query::Query<'static, Postgres, PgArguments> {
        let mut q = sqlx::query(AssertSqlSafe(self.text.clone()));
        for p in &self.params {
            q = match p {
                Param::Text(s) | Param::Json(s) => q.bind(s.clone()),
                Param::OptText(s) => q.bind(s.clone()),
                Param::Int(i) => q.bind(*i),
                Param::Real(f) => q.bind(*f),
            };
        }
        q
    }
}

/// A result row of either driver.
pub(crate) enum DbRow {
    Sqlite(SqliteRow),
    Postgres(PgRow),
}

impl DbRow {
    pub(crate) fn text(&self, i: usize) -> Result<String, Error> {
        Ok(match self {
            DbRow::Sqlite(r) => r.try_get(i)?,
            DbRow::Postgres(r) => r.try_get(i)?,
        })
    }

    pub(crate) fn opt_text(&self, i: usize) -> Result<Option<String>, Error> {
        Ok(match self {
            DbRow::Sqlite(r) => r.try_get(i)?,
            DbRow::Postgres(r) => r.try_get(i)?,
        })
    }

    pub(crate) fn int(&self, i: usize) -> Result<i64, Error> {
        Ok(match self {
            DbRow::Sqlite(r) => r.try_get(i)?,
            DbRow::Postgres(r) => r.try_get(i)?,
        })
    }

    /// A sort key read back for a cursor: whatever scalar the sort expression produced.
    pub(crate) fn json_scalar(&self, i: usize) -> Result<serde_json::Value, Error> {
        use serde_json::Value;
        match self {
            DbRow::Sqlite(r) => {
                use sqlx::{TypeInfo, ValueRef};
                let raw = r.try_get_raw(i)?;
                if raw.is_null() {
                    return Ok(Value::Null);
                }
                let ty = raw.type_info().name().to_ascii_uppercase();
                Ok(match ty.as_str() {
                    "INTEGER" | "INT" | "BIGINT" | "BOOLEAN" => {
                        Value::from(r.try_get::<i64, _>(i)?)
                    }
                    "REAL" | "FLOAT" | "DOUBLE" => {
                        serde_json::Number::from_f64(r.try_get::<f64, _>(i)?)
                            .map(Value::Number)
                            .unwrap_or(Value::Null)
                    }
                    _ => Value::from(r.try_get::<String, _>(i)?),
                })
            }
            DbRow::Postgres(r) => {
                // PostgreSQL sort keys are selected as text (numbers and booleans rendered by
                // the server) so one decoder suffices; the cursor re-binds them with a cast.
                let s: Option<String> = r.try_get(i)?;
                Ok(s.map(Value::from).unwrap_or(Value::Null))
            }
        }
    }
}

/// A connection source for reads, or an open transaction.
pub(crate) enum Tx {
    Sqlite(Transaction<'static, Sqlite>),
    Postgres(Transaction<'static, Postgres>),
}

impl Tx {
    pub(crate) async fn begin_write_sqlite(pool: &SqlitePool) -> Result<Tx, Error> {
        // IMMEDIATE takes the write lock up front: a deferred transaction that reads first and
        // then writes can fail with SQLITE_BUSY that no busy timeout resolves.
        Ok(Tx::Sqlite(pool.begin_with("BEGIN IMMEDIATE").await?))
    }

    pub(crate) async fn begin_read_sqlite(pool: &SqlitePool) -> Result<Tx, Error> {
        Ok(Tx::Sqlite(pool.begin().await?))
    }

    pub(crate) async fn begin_postgres(pool: &PgPool, read_only: bool) -> Result<Tx, Error> {
        let stmt = if read_only {
            // One snapshot for the count and the page so totalResults matches what is listed.
            "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"
        } else {
            "BEGIN ISOLATION LEVEL READ COMMITTED"
        };
        Ok(Tx::Postgres(pool.begin_with(stmt).await?))
    }

    pub(crate) async fn execute(&mut self, sql: &Sql) -> Result<u64, Error> {
        Ok(match self {
            Tx::Sqlite(tx) => sql.sqlite().execute(&mut **tx).await?.rows_affected(),
            Tx::Postgres(tx) => sql.postgres().execute(&mut **tx).await?.rows_affected(),
        })
    }

    pub(crate) async fn fetch_all(&mut self, sql: &Sql) -> Result<Vec<DbRow>, Error> {
        Ok(match self {
            Tx::Sqlite(tx) => sql
                .sqlite()
                .fetch_all(&mut **tx)
                .await?
                .into_iter()
                .map(DbRow::Sqlite)
                .collect(),
            Tx::Postgres(tx) => sql
                .postgres()
                .fetch_all(&mut **tx)
                .await?
                .into_iter()
                .map(DbRow::Postgres)
                .collect(),
        })
    }

    pub(crate) async fn fetch_optional(&mut self, sql: &Sql) -> Result<Option<DbRow>, Error> {
        Ok(match self {
            Tx::Sqlite(tx) => sql
                .sqlite()
                .fetch_optional(&mut **tx)
                .await?
                .map(DbRow::Sqlite),
            Tx::Postgres(tx) => sql
                .postgres()
                .fetch_optional(&mut **tx)
                .await?
                .map(DbRow::Postgres),
        })
    }

    pub(crate) async fn commit(self) -> Result<(), Error> {
        match self {
            Tx::Sqlite(tx) => tx.commit().await?,
            Tx::Postgres(tx) => tx.commit().await?,
        }
        Ok(())
    }
}

/// An error inside the crate: a driver error still to be classified, or a final one.
#[derive(Debug)]
pub(crate) enum Error {
    Db(sqlx::Error),
    Backend(BackendError),
}

impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Self {
        Error::Db(e)
    }
}

impl From<BackendError> for Error {
    fn from(e: BackendError) -> Self {
        Error::Backend(e)
    }
}

impl From<scimd_core::ScimError> for Error {
    fn from(e: scimd_core::ScimError) -> Self {
        Error::Backend(BackendError::Scim(e))
    }
}

impl Error {
    /// Whether the transaction lost a race the database resolves by aborting one side (SQLite
    /// busy/locked, PostgreSQL serialization failure or deadlock): run it again.
    pub(crate) fn is_retryable(&self) -> bool {
        match self {
            Error::Db(sqlx::Error::Database(d)) => is_busy(d.as_ref()),
            _ => false,
        }
    }

    /// The final error for the caller. `unique` names the attribute a unique violation is
    /// about.
    pub(crate) fn into_backend(self, unique: &str) -> BackendError {
        match self {
            Error::Backend(b) => b,
            Error::Db(e) => map_db_error(e, unique),
        }
    }
}

fn map_db_error(e: sqlx::Error, unique: &str) -> BackendError {
    match &e {
        sqlx::Error::Database(d) if d.is_unique_violation() => {
            BackendError::Uniqueness(unique.to_string())
        }
        sqlx::Error::Database(d) if d.is_foreign_key_violation() => {
            BackendError::InvalidReference("a group member".into())
        }
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
            BackendError::Unavailable {
                detail: e.to_string(),
                retry_after: Some(1),
            }
        }
        sqlx::Error::Database(d) if is_busy(d.as_ref()) => BackendError::Unavailable {
            detail: "the database is busy".into(),
            retry_after: Some(1),
        },
        _ => BackendError::Internal(e.to_string()),
    }
}

fn is_busy(d: &dyn sqlx::error::DatabaseError) -> bool {
    let code = d.code();
    let code = code.as_deref().unwrap_or_default();
    if d.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
        // 5 BUSY, 6 LOCKED and their extended codes (BUSY_SNAPSHOT 517, ...).
        code.parse::<i64>().is_ok_and(|n| matches!(n & 0xff, 5 | 6))
    } else {
        // 40001 serialization_failure, 40P01 deadlock_detected.
        matches!(code, "40001" | "40P01")
    }
}
