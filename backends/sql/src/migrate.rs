//! Embedded, versioned schema migrations, one folder per dialect (`migrations/sqlite`,
//! `migrations/postgres`), run by sqlx's migrator against the `scimd_migrations` table.
//!
//! On PostgreSQL the migrator holds an advisory lock, so replicas starting at once apply each
//! migration exactly once. A database that has a migration this build does not know (a newer
//! scimd ran against it) is refused rather than silently used.

use crate::db::Dialect;
use sqlx::SqlSafeStr;
use sqlx::migrate::{Migration, MigrationType, Migrator};

/// The table that records applied migrations.
pub const MIGRATIONS_TABLE: &str = "scimd_migrations";

/// `(version, description, SQLite SQL, PostgreSQL SQL)` of every migration, in order.
const MIGRATIONS: &[(i64, &str, &str, &str)] = &[
    (
        1,
        "resources, emails, members, tokens",
        include_str!("../migrations/sqlite/0001_init.sql"),
        include_str!("../migrations/postgres/0001_init.sql"),
    ),
    (
        2,
        "resource counts, covering emails index",
        include_str!("../migrations/sqlite/0002_counts_and_covering_emails.sql"),
        include_str!("../migrations/postgres/0002_counts_and_covering_emails.sql"),
    ),
    (
        3,
        "outbox of messages to deliver",
        include_str!("../migrations/sqlite/0003_outbox.sql"),
        include_str!("../migrations/postgres/0003_outbox.sql"),
    ),
    (
        4,
        "trigram index of the search copy for substring filters",
        include_str!("../migrations/sqlite/0004_substring_index.sql"),
        include_str!("../migrations/postgres/0004_substring_index.sql"),
    ),
    (
        5,
        "fingerprints of the schemas the search copy was built with",
        include_str!("../migrations/sqlite/0005_search_fingerprints.sql"),
        include_str!("../migrations/postgres/0005_search_fingerprints.sql"),
    ),
    (
        6,
        "PostgreSQL: the strings of the search copy as an indexed stored column",
        include_str!("../migrations/sqlite/0006_stored_search_text.sql"),
        include_str!("../migrations/postgres/0006_stored_search_text.sql"),
    ),
];

/// The migrator of a dialect.
pub(crate) fn migrator(dialect: Dialect) -> Migrator {
    let migrations = MIGRATIONS
        .iter()
        .map(|(version, description, sqlite, postgres)| {
            let sql = match dialect {
                Dialect::Sqlite => *sqlite,
                Dialect::Postgres => *postgres,
            };
            Migration::new(
                *version,
                (*description).into(),
                MigrationType::Simple,
                sql.into_sql_str(),
                false,
            )
        })
        .collect();
    let mut m = Migrator::with_migrations(migrations);
    m.dangerous_set_table_name(MIGRATIONS_TABLE);
    m
}

/// The newest migration version this build knows.
pub fn latest_version() -> i64 {
    MIGRATIONS.iter().map(|m| m.0).max().unwrap_or(0)
}
