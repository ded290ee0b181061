//! Rebuilding the search copy when a source's schemas change.
//!
//! The search copy of a resource (see [`crate::search`]) is derived from its attributes and the
//! schemas in force when it was written: strings of attributes that are not `caseExact` are
//! folded, `dateTime`s normalized, and the values of an extension that was not configured are
//! kept as they came. When an operator adds an extension (or changes an attribute's type or
//! `caseExact`) after data exists, filters on those attributes would miss the older resources.
//! So each source and resource type records a fingerprint of the schemas its copy was built
//! with (`scimd_search_fingerprints`); at start, a mismatch rebuilds that copy in batches, one
//! transaction each, while the source stays usable.

use crate::db::{Dialect, Error, Param};
use crate::search::{fingerprint, search_doc};
use crate::{SqlBackend, SqlError};
use scimd_core::ResourceKind;
use scimd_core::schema::ResourceTypeDef;
use serde_json::{Map, Value};
use std::time::{Duration, Instant};

/// Resources read and rewritten per transaction.
const BATCH: i64 = 500;
/// How often a batch that lost a lock race is run again.
const MAX_RETRIES: u32 = 30;
/// The interval of progress log lines.
const PROGRESS_EVERY: Duration = Duration::from_secs(10);

/// What a rebuild of search copies did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReindexReport {
    /// The `(source, resource type)` pairs whose search copy was rebuilt.
    pub rebuilt: Vec<(String, ResourceKind)>,
    /// Resources read.
    pub resources: u64,
    /// Resources whose search copy changed (and was rewritten).
    pub rewritten: u64,
}

impl SqlBackend {
    /// Rebuilds the search copy of every source given its schemas with
    /// [`SqlBackend::set_schemas`] and every resource type whose searchable attributes changed
    /// since its copy was built (or whose copy predates fingerprints), then records the new
    /// fingerprints. Cheap when nothing changed: one lookup per source and type. Call it once
    /// the schemas of every source are set.
    pub async fn reindex_stale(&self) -> Result<ReindexReport, SqlError> {
        self.reindex(false).await
    }

    /// Rebuilds the search copy of every source given its schemas with
    /// [`SqlBackend::set_schemas`], changed or not (`scimd migrate --reindex`).
    pub async fn reindex_all(&self) -> Result<ReindexReport, SqlError> {
        self.reindex(true).await
    }

    async fn reindex(&self, force: bool) -> Result<ReindexReport, SqlError> {
        let mut sources: Vec<String> = self
            .inner
            .schemas
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .cloned()
            .collect();
        sources.sort();
        let mut report = ReindexReport::default();
        for source in sources {
            let reg = self.schemas(&source);
            for kind in ResourceKind::ALL {
                let rt = reg.resource_type(kind);
                let fail = |e: Error| {
                    SqlError::Reindex(format!(
                        "source {source}, {}: {}",
                        kind.name(),
                        e.into_backend("search copy")
                    ))
                };
                let fp = fingerprint(rt);
                let stored = self.stored_fingerprint(&source, kind).await.map_err(fail)?;
                if !force && stored.as_deref() == Some(fp.as_str()) {
                    continue;
                }
                let total = self.resource_count(&source, kind).await.map_err(fail)?;
                if total > 0 {
                    let reason = match (force, &stored) {
                        (true, _) => "requested",
                        (false, None) => "the search copy predates schema fingerprints",
                        (false, Some(_)) => "the searchable attributes changed",
                    };
                    let (read, rewritten) = self
                        .rebuild(&source, rt, total, reason)
                        .await
                        .map_err(fail)?;
                    report.rebuilt.push((source.clone(), kind));
                    report.resources += read;
                    report.rewritten += rewritten;
                }
                self.store_fingerprint(&source, kind, &fp)
                    .await
                    .map_err(fail)?;
            }
        }
        Ok(report)
    }

    async fn stored_fingerprint(
        &self,
        source: &str,
        kind: ResourceKind,
    ) -> Result<Option<String>, Error> {
        let mut sql = self.new_sql();
        sql.push("SELECT fingerprint FROM scimd_search_fingerprints WHERE source = ");
        sql.bind_text(source);
        sql.push(" AND kind = ");
        sql.bind_text(kind.name());
        let mut tx = self.read_tx().await?;
        let row = tx.fetch_optional(&sql).await?;
        tx.commit().await?;
        row.map(|r| r.text(0)).transpose()
    }

    async fn store_fingerprint(
        &self,
        source: &str,
        kind: ResourceKind,
        fp: &str,
    ) -> Result<(), Error> {
        let mut sql = self.new_sql();
        sql.push("INSERT INTO scimd_search_fingerprints (source, kind, fingerprint) VALUES (");
        sql.bind_text(source).push(", ");
        sql.bind_text(kind.name()).push(", ");
        sql.bind_text(fp)
            .push(") ON CONFLICT (source, kind) DO UPDATE SET fingerprint = excluded.fingerprint");
        self.with_retries(|| async {
            let mut tx = self.write_tx().await?;
            tx.execute(&sql).await?;
            tx.commit().await
        })
        .await
    }

    async fn resource_count(&self, source: &str, kind: ResourceKind) -> Result<u64, Error> {
        let mut sql = self.new_sql();
        sql.push("SELECT n FROM scimd_counts WHERE source = ");
        sql.bind_text(source);
        sql.push(" AND kind = ");
        sql.bind_text(kind.name());
        let mut tx = self.read_tx().await?;
        let row = tx.fetch_optional(&sql).await?;
        tx.commit().await?;
        Ok(match row {
            Some(r) => u64::try_from(r.int(0)?).unwrap_or(0),
            None => 0,
        })
    }

    /// Rewrites the search copy of every resource of `rt` in `source`, in id order, one
    /// transaction per batch. Returns the resources read and rewritten.
    async fn rebuild(
        &self,
        source: &str,
        rt: &ResourceTypeDef,
        total: u64,
        reason: &str,
    ) -> Result<(u64, u64), Error> {
        let kind = rt.kind.name();
        tracing::info!(
            source,
            resource_type = kind,
            resources = total,
            reason,
            "Rebuilding the search copy."
        );
        let started = Instant::now();
        let mut logged = Instant::now();
        let (mut read, mut rewritten) = (0u64, 0u64);
        let mut after = String::new();
        loop {
            let batch = self
                .with_retries(|| self.rebuild_batch(source, rt, &after))
                .await?;
            let Some(last) = batch.last else { break };
            after = last;
            read += batch.read;
            rewritten += batch.rewritten;
            if logged.elapsed() >= PROGRESS_EVERY {
                logged = Instant::now();
                tracing::info!(
                    source,
                    resource_type = kind,
                    done = read,
                    of = total,
                    "Rebuilding the search copy."
                );
            }
        }
        tracing::info!(
            source,
            resource_type = kind,
            resources = read,
            rewritten,
            secs = started.elapsed().as_secs_f64(),
            "Search copy rebuilt."
        );
        Ok((read, rewritten))
    }

    async fn rebuild_batch(
        &self,
        source: &str,
        rt: &ResourceTypeDef,
        after: &str,
    ) -> Result<Batch, Error> {
        let d = self.dialect_of();
        let mut tx = self.write_tx().await?;
        let mut sql = self.new_sql();
        sql.push(match d {
            Dialect::Sqlite => "SELECT id, attrs, json(search)",
            Dialect::Postgres => "SELECT id, attrs, search::text",
        });
        sql.push(" FROM scimd_resources WHERE source = ");
        sql.bind_text(source);
        sql.push(" AND kind = ");
        sql.bind_text(rt.kind.name());
        sql.push(" AND id > ");
        sql.bind_text(after);
        sql.push(" ORDER BY id LIMIT ");
        sql.bind_int(BATCH);
        if d == Dialect::Postgres {
            // Concurrent writers of these rows wait, and then write their own copy.
            sql.push(" FOR UPDATE");
        }
        let rows = tx.fetch_all(&sql).await?;
        let mut batch = Batch::default();
        for row in &rows {
            let id = row.text(0)?;
            let attrs: Map<String, Value> = serde_json::from_str(&row.text(1)?)
                .map_err(|e| internal(&format!("stored attributes of {id}"), e))?;
            let old: Value = serde_json::from_str(&row.text(2)?)
                .map_err(|e| internal(&format!("stored search copy of {id}"), e))?;
            let doc = search_doc(rt, &attrs);
            batch.read += 1;
            if doc != old {
                let mut sql = self.new_sql();
                sql.push("UPDATE scimd_resources SET search = ");
                match d {
                    Dialect::Sqlite => {
                        sql.push("jsonb(");
                        sql.bind_text(doc.to_string());
                        sql.push(")");
                    }
                    Dialect::Postgres => {
                        sql.bind(Param::Json(doc.to_string()));
                    }
                }
                sql.push(" WHERE source = ");
                sql.bind_text(source);
                sql.push(" AND kind = ");
                sql.bind_text(rt.kind.name());
                sql.push(" AND id = ");
                sql.bind_text(id.as_str());
                tx.execute(&sql).await?;
                batch.rewritten += 1;
            }
            batch.last = Some(id);
        }
        tx.commit().await?;
        Ok(batch)
    }

    /// Runs a transaction again when it lost a lock race (SQLite busy, PostgreSQL
    /// serialization failure or deadlock).
    async fn with_retries<T, F, Fut>(&self, mut body: F) -> Result<T, Error>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, Error>>,
    {
        let mut attempt = 0u32;
        loop {
            match body().await {
                Err(e) if e.is_retryable() && attempt < MAX_RETRIES => {
                    attempt += 1;
                    let ms = (1u64 << attempt.min(7)) + rand::random::<u64>() % 8;
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                }
                r => return r,
            }
        }
    }
}

/// One batch of a rebuild.
#[derive(Debug, Default)]
struct Batch {
    /// The last id read, `None` when there was nothing left.
    last: Option<String>,
    read: u64,
    rewritten: u64,
}

fn internal(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Backend(scimd_core::BackendError::Internal(format!("{what}: {e}")))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use crate::SqliteConfig;
    use scimd_core::{Backend, ResourceKind, SchemaRegistry};
    use std::sync::Arc;

    #[tokio::test]
    async fn fingerprints_are_recorded_and_an_unchanged_source_is_not_rebuilt() {
        let b = SqliteConfig {
            path: ":memory:".into(),
            ..SqliteConfig::default()
        }
        .build()
        .await
        .unwrap();
        b.set_schemas("s", Arc::new(SchemaRegistry::new()));
        // Nothing stored yet: fingerprints recorded, nothing rebuilt.
        assert!(b.reindex_stale().await.unwrap().rebuilt.is_empty());
        let attrs = serde_json::json!({"userName": "Bjensen"});
        b.create("s", ResourceKind::User, attrs.as_object().unwrap().clone())
            .await
            .unwrap();
        assert!(b.reindex_stale().await.unwrap().rebuilt.is_empty());
        let all = b.reindex_all().await.unwrap();
        assert_eq!(all.rebuilt, vec![("s".to_string(), ResourceKind::User)]);
        assert_eq!((all.resources, all.rewritten), (1, 0));
    }
}
