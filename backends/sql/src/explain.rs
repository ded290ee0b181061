//! The database's plan of a filtered query, for tests and measurements that check which index
//! serves a filter.

use crate::SqlBackend;
use crate::db::{Dialect, Sql};
use crate::filter::Translator;
use scimd_core::filter::Filter;
use scimd_core::{BackendError, ResourceKind};

impl SqlBackend {
    /// The plan of `SELECT r.id ... WHERE <filter> LIMIT 100` over a source's resources of
    /// one type: SQLite's `EXPLAIN QUERY PLAN` details or PostgreSQL's `EXPLAIN` lines (with
    /// `analyze`, PostgreSQL runs the query and reports what it did), one per line.
    #[doc(hidden)]
    pub async fn explain_filter(
        &self,
        source: &str,
        kind: ResourceKind,
        filter: &Filter,
        analyze: bool,
    ) -> Result<String, BackendError> {
        let reg = self.schemas(source);
        let rt = reg.resource_type(kind);
        let d = self.dialect_of();
        let mut sql = Sql::new(d);
        sql.push(match (d, analyze) {
            (Dialect::Sqlite, _) => "EXPLAIN QUERY PLAN ",
            (Dialect::Postgres, false) => "EXPLAIN ",
            (Dialect::Postgres, true) => "EXPLAIN (ANALYZE, BUFFERS) ",
        });
        sql.push("SELECT r.id FROM scimd_resources r WHERE r.source = ");
        sql.bind_text(source);
        sql.push(" AND r.kind = ");
        sql.bind_text(kind.name());
        sql.push(" AND ");
        Translator::new(d, rt, source).condition(filter, &mut sql)?;
        sql.push(" LIMIT 100");
        let fail = |e: crate::db::Error| e.into_backend("plan");
        let mut tx = self.read_tx().await.map_err(fail)?;
        let rows = tx.fetch_all(&sql).await.map_err(fail)?;
        tx.commit().await.map_err(fail)?;
        let column = match d {
            Dialect::Sqlite => 3,
            Dialect::Postgres => 0,
        };
        let lines = rows
            .iter()
            .map(|r| r.text(column))
            .collect::<Result<Vec<_>, _>>()
            .map_err(fail)?;
        Ok(lines.join("\n"))
    }
}
