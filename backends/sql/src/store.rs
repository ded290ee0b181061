//! The [`Backend`] implementation: reads, transactional writes, membership deltas, queries.

mod import;

use crate::db::{DbRow, Dialect, Error, Param, Sql, Tx};
use crate::filter::{SortKey, SortType, Translator};
use crate::search::{Columns, columns, fold, is_relation, search_doc};
use crate::{Pools, SqlBackend};
use async_trait::async_trait;
use scimd_core::backend::{self, Staged, Stager};
use scimd_core::patch::Member;
use scimd_core::query::{CursorPosition, Page};
use scimd_core::resource::{Meta, now};
use scimd_core::schema::ResourceTypeDef;
use scimd_core::{
    Backend, BackendError, Capabilities, Imported, Load, PatchRequest, Query, QueryPage, Resource,
    ResourceKind, Version,
};
use serde_json::{Map, Value};
use std::collections::{HashMap, HashSet};
use std::time::Duration;
use time::OffsetDateTime;

/// How often a transaction that lost a lock race is run again before giving up with 503.
const MAX_RETRIES: u32 = 30;
/// Rows per multi-row statement (well below SQLite's and PostgreSQL's parameter limits).
const CHUNK: usize = 400;

/// Runs a transaction body again when the database aborted it for a lock conflict.
macro_rules! retry {
    ($unique:expr, $body:expr) => {{
        let mut attempt = 0u32;
        loop {
            match $body.await {
                Ok(v) => break Ok(v),
                Err(e) if e.is_retryable() && attempt < MAX_RETRIES => {
                    attempt += 1;
                    tracing::debug!(attempt, "Transaction lost a lock race; retrying.");
                    backoff(attempt).await;
                }
                Err(e) => break Err(e.into_backend($unique)),
            }
        }
    }};
}

async fn backoff(attempt: u32) {
    let base_ms = 1u64 << attempt.min(7);
    let jitter = rand::random::<u64>() % base_ms.max(1);
    tokio::time::sleep(Duration::from_millis(base_ms + jitter)).await;
}

fn micros(t: OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos() / 1000).unwrap_or(i64::MAX)
}

fn from_micros(us: i64) -> Result<OffsetDateTime, Error> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(us) * 1000)
        .map_err(|e| Error::Backend(BackendError::Internal(format!("stored timestamp: {e}"))))
}

fn internal(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Backend(BackendError::Internal(format!("{what}: {e}")))
}

fn version_i64(v: Version) -> i64 {
    i64::try_from(v.0).unwrap_or(i64::MAX)
}

impl SqlBackend {
    pub(crate) fn dialect_of(&self) -> Dialect {
        match self.inner.pools {
            Pools::Sqlite { .. } => Dialect::Sqlite,
            Pools::Postgres(_) => Dialect::Postgres,
        }
    }

    pub(crate) async fn write_tx(&self) -> Result<Tx, Error> {
        match &self.inner.pools {
            Pools::Sqlite { writer, .. } => Tx::begin_write_sqlite(writer).await,
            Pools::Postgres(pool) => Tx::begin_postgres(pool, false).await,
        }
    }

    pub(crate) async fn read_tx(&self) -> Result<Tx, Error> {
        match &self.inner.pools {
            Pools::Sqlite { reader, .. } => Tx::begin_read_sqlite(reader).await,
            Pools::Postgres(pool) => Tx::begin_postgres(pool, true).await,
        }
    }

    /// Runs one reading statement outside a transaction. A single statement sees one
    /// consistent snapshot in both databases, and leaving out BEGIN and COMMIT saves two round
    /// trips per read (for SQLite, each one a hand-off to the connection's thread).
    pub(crate) async fn read_one(&self, sql: &Sql) -> Result<Option<DbRow>, Error> {
        Ok(match &self.inner.pools {
            Pools::Sqlite { reader, .. } => sql
                .sqlite()
                .fetch_optional(reader)
                .await?
                .map(DbRow::Sqlite),
            Pools::Postgres(pool) => sql
                .postgres()
                .fetch_optional(pool)
                .await?
                .map(DbRow::Postgres),
        })
    }

    pub(crate) fn new_sql(&self) -> Sql {
        Sql::new(self.dialect_of())
    }

    // --- reads -------------------------------------------------------------------------------

    /// `SELECT r.id, r.version, r.created, r.last_modified, r.attrs, <relation> AS rel`.
    fn push_select(&self, sql: &mut Sql, kind: ResourceKind, load: Load) {
        let d = self.dialect_of();
        sql.push("SELECT r.id, r.version, r.created, r.last_modified, r.attrs, ");
        match (kind, d) {
            (ResourceKind::Group, Dialect::Sqlite) if load.members => sql.push(
                "(SELECT json_group_array(json_patch('{}', json_object('value', m.member_id, \
                 'type', m.member_type, 'display', m.display)) ORDER BY m.seq) \
                 FROM scimd_members m WHERE m.source = r.source AND m.group_id = r.id)",
            ),
            (ResourceKind::Group, Dialect::Postgres) if load.members => sql.push(
                "(SELECT json_agg(json_strip_nulls(json_build_object('value', m.member_id, \
                 'type', m.member_type, 'display', m.display)) ORDER BY m.seq)::text \
                 FROM scimd_members m WHERE m.source = r.source AND m.group_id = r.id)",
            ),
            (ResourceKind::User, Dialect::Sqlite) if load.groups => sql.push(
                "(SELECT json_group_array(json_patch('{}', json_object('value', m.group_id, \
                 'display', g.display_name, 'type', 'direct')) ORDER BY m.seq) \
                 FROM scimd_members m JOIN scimd_resources g ON g.source = m.source \
                 AND g.kind = 'Group' AND g.id = m.group_id \
                 WHERE m.source = r.source AND m.member_type = 'User' AND m.member_id = r.id)",
            ),
            (ResourceKind::User, Dialect::Postgres) if load.groups => sql.push(
                "(SELECT json_agg(json_strip_nulls(json_build_object('value', m.group_id, \
                 'display', g.display_name, 'type', 'direct')) ORDER BY m.seq)::text \
                 FROM scimd_members m JOIN scimd_resources g ON g.source = m.source \
                 AND g.kind = 'Group' AND g.id = m.group_id \
                 WHERE m.source = r.source AND m.member_type = 'User' AND m.member_id = r.id)",
            ),
            (_, Dialect::Sqlite) => sql.push("NULL"),
            (_, Dialect::Postgres) => sql.push("NULL::text"),
        };
        sql.push(" AS rel");
    }

    fn decode(row: &DbRow, kind: ResourceKind) -> Result<Resource, Error> {
        let id = row.text(0)?;
        let version = row.int(1)?;
        let created = from_micros(row.int(2)?)?;
        let last_modified = from_micros(row.int(3)?)?;
        let attrs_text = row.text(4)?;
        let mut attrs: Map<String, Value> =
            serde_json::from_str(&attrs_text).map_err(|e| internal("stored attributes", e))?;
        if let Some(rel) = row.opt_text(5)? {
            let list: Value = serde_json::from_str(&rel).map_err(|e| internal("relation", e))?;
            if list.as_array().is_some_and(|a| !a.is_empty()) {
                let key = match kind {
                    ResourceKind::Group => "members",
                    ResourceKind::User => "groups",
                };
                attrs.insert(key.into(), list);
            }
        }
        Ok(Resource {
            id,
            kind,
            meta: Meta {
                created,
                last_modified,
                version: Version(u64::try_from(version).unwrap_or(0)),
            },
            attrs,
        })
    }

    /// The statement reading one resource (with its relation, per `load`).
    fn select_one(&self, source: &str, kind: ResourceKind, id: &str, load: Load) -> Sql {
        let mut sql = self.new_sql();
        self.push_select(&mut sql, kind, load);
        sql.push(" FROM scimd_resources r WHERE r.source = ");
        sql.bind_text(source);
        sql.push(" AND r.kind = ");
        sql.bind_text(kind.name());
        sql.push(" AND r.id = ");
        sql.bind_text(id);
        sql
    }

    async fn fetch(
        &self,
        tx: &mut Tx,
        source: &str,
        kind: ResourceKind,
        id: &str,
        load: Load,
    ) -> Result<Option<Resource>, Error> {
        let sql = self.select_one(source, kind, id, load);
        match tx.fetch_optional(&sql).await? {
            Some(row) => Ok(Some(Self::decode(&row, kind)?)),
            None => Ok(None),
        }
    }

    /// The current version of a row, locking it against concurrent writers on PostgreSQL
    /// (SQLite's write transaction already excludes them).
    async fn lock_row(
        &self,
        tx: &mut Tx,
        source: &str,
        kind: ResourceKind,
        id: &str,
    ) -> Result<Option<i64>, Error> {
        let mut sql = self.new_sql();
        sql.push("SELECT version FROM scimd_resources WHERE source = ");
        sql.bind_text(source);
        sql.push(" AND kind = ");
        sql.bind_text(kind.name());
        sql.push(" AND id = ");
        sql.bind_text(id);
        if self.dialect_of() == Dialect::Postgres {
            sql.push(" FOR UPDATE");
        }
        match tx.fetch_optional(&sql).await? {
            Some(row) => Ok(Some(row.int(0)?)),
            None => Ok(None),
        }
    }

    /// Locks the row and checks the expected version.
    async fn lock_checked(
        &self,
        tx: &mut Tx,
        source: &str,
        kind: ResourceKind,
        id: &str,
        expected: Option<Version>,
    ) -> Result<i64, Error> {
        let current = self
            .lock_row(tx, source, kind, id)
            .await?
            .ok_or_else(|| BackendError::NotFound(id.to_string()))?;
        if expected.is_some_and(|v| version_i64(v) != current) {
            return Err(BackendError::VersionMismatch.into());
        }
        Ok(current)
    }

    // --- writes ------------------------------------------------------------------------------

    /// `lastModified` after a change: now, but never before the stored value (the wall clock
    /// can step back, and replicas' clocks differ).
    fn push_later(&self, sql: &mut Sql, at: i64) {
        match self.dialect_of() {
            Dialect::Sqlite => sql.push("MAX(last_modified, "),
            Dialect::Postgres => sql.push("GREATEST(last_modified, "),
        };
        sql.bind_int(at);
        sql.push(")");
    }

    fn push_search_param(&self, sql: &mut Sql, doc: &Value) {
        match self.dialect_of() {
            Dialect::Sqlite => {
                sql.push("jsonb(");
                sql.bind_text(doc.to_string());
                sql.push(")");
            }
            Dialect::Postgres => {
                sql.bind(Param::Json(doc.to_string()));
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn insert_row(
        &self,
        tx: &mut Tx,
        source: &str,
        kind: ResourceKind,
        id: &str,
        at: i64,
        attrs: &Map<String, Value>,
        doc: &Value,
        cols: &Columns,
    ) -> Result<(), Error> {
        let mut sql = self.new_sql();
        sql.push(
            "INSERT INTO scimd_resources (source, kind, id, version, created, last_modified, \
             attrs, search, user_name_fold, external_id, display_name, display_name_fold) VALUES (",
        );
        sql.bind_text(source).push(", ");
        sql.bind_text(kind.name()).push(", ");
        sql.bind_text(id).push(", 1, ");
        sql.bind_int(at).push(", ");
        sql.bind_int(at).push(", ");
        sql.bind_text(Value::Object(attrs.clone()).to_string())
            .push(", ");
        self.push_search_param(&mut sql, doc);
        sql.push(", ");
        sql.bind(Param::OptText(cols.user_name_fold.clone()))
            .push(", ");
        sql.bind(Param::OptText(cols.external_id.clone()))
            .push(", ");
        sql.bind(Param::OptText(cols.display_name.clone()))
            .push(", ");
        sql.bind(Param::OptText(cols.display_name_fold.clone()))
            .push(")");
        tx.execute(&sql).await?;
        Ok(())
    }

    /// Overwrites the attributes of a row; bumps the version and lastModified when `bump`.
    #[allow(clippy::too_many_arguments)]
    async fn write_attrs(
        &self,
        tx: &mut Tx,
        source: &str,
        kind: ResourceKind,
        id: &str,
        at: i64,
        attrs: &Map<String, Value>,
        doc: &Value,
        cols: &Columns,
        bump: bool,
    ) -> Result<(), Error> {
        let mut sql = self.new_sql();
        sql.push("UPDATE scimd_resources SET ");
        if bump {
            sql.push("version = version + 1, last_modified = ");
            self.push_later(&mut sql, at);
            sql.push(", ");
        }
        sql.push("attrs = ");
        sql.bind_text(Value::Object(attrs.clone()).to_string());
        sql.push(", search = ");
        self.push_search_param(&mut sql, doc);
        sql.push(", user_name_fold = ");
        sql.bind(Param::OptText(cols.user_name_fold.clone()));
        sql.push(", external_id = ");
        sql.bind(Param::OptText(cols.external_id.clone()));
        sql.push(", display_name = ");
        sql.bind(Param::OptText(cols.display_name.clone()));
        sql.push(", display_name_fold = ");
        sql.bind(Param::OptText(cols.display_name_fold.clone()));
        sql.push(" WHERE source = ");
        sql.bind_text(source);
        sql.push(" AND kind = ");
        sql.bind_text(kind.name());
        sql.push(" AND id = ");
        sql.bind_text(id);
        tx.execute(&sql).await?;
        if kind == ResourceKind::User {
            self.set_emails(tx, source, id, &cols.emails, true).await?;
        }
        Ok(())
    }

    async fn bump(
        &self,
        tx: &mut Tx,
        source: &str,
        kind: ResourceKind,
        id: &str,
        at: i64,
    ) -> Result<(), Error> {
        let mut sql = self.new_sql();
        sql.push("UPDATE scimd_resources SET version = version + 1, last_modified = ");
        self.push_later(&mut sql, at);
        sql.push(" WHERE source = ");
        sql.bind_text(source);
        sql.push(" AND kind = ");
        sql.bind_text(kind.name());
        sql.push(" AND id = ");
        sql.bind_text(id);
        tx.execute(&sql).await?;
        Ok(())
    }

    async fn set_emails(
        &self,
        tx: &mut Tx,
        source: &str,
        user_id: &str,
        emails: &[String],
        clear: bool,
    ) -> Result<(), Error> {
        if clear {
            let mut sql = self.new_sql();
            sql.push("DELETE FROM scimd_emails WHERE source = ");
            sql.bind_text(source);
            sql.push(" AND user_id = ");
            sql.bind_text(user_id);
            tx.execute(&sql).await?;
        }
        for chunk in emails.chunks(CHUNK) {
            let mut sql = self.new_sql();
            sql.push("INSERT INTO scimd_emails (source, user_id, value) VALUES ");
            for (i, e) in chunk.iter().enumerate() {
                if i > 0 {
                    sql.push(", ");
                }
                sql.push("(");
                sql.bind_text(source).push(", ");
                sql.bind_text(user_id).push(", ");
                sql.bind_text(e.as_str()).push(")");
            }
            // A user listing one address twice needs it indexed once.
            sql.push(" ON CONFLICT DO NOTHING");
            tx.execute(&sql).await?;
        }
        Ok(())
    }

    /// Adds `delta` to the resource count of a source and type.
    async fn count(
        &self,
        tx: &mut Tx,
        source: &str,
        kind: ResourceKind,
        delta: i64,
    ) -> Result<(), Error> {
        let mut sql = self.new_sql();
        sql.push("INSERT INTO scimd_counts (source, kind, n) VALUES (");
        sql.bind_text(source).push(", ");
        sql.bind_text(kind.name()).push(", ");
        sql.bind_int(delta);
        sql.push(") ON CONFLICT (source, kind) DO UPDATE SET n = scimd_counts.n + ");
        sql.bind_int(delta);
        tx.execute(&sql).await?;
        Ok(())
    }

    /// Inserts members that are not yet in the group; returns how many were added. Every
    /// member must exist in the same source.
    async fn add_members(
        &self,
        tx: &mut Tx,
        source: &str,
        group_id: &str,
        members: &[Member],
    ) -> Result<u64, Error> {
        let mut seen = HashSet::new();
        let members: Vec<&Member> = members
            .iter()
            .filter(|m| seen.insert(m.value.as_str()))
            .collect();
        let mut kinds: HashMap<String, String> = HashMap::with_capacity(members.len());
        for chunk in members.chunks(CHUNK) {
            let mut sql = self.new_sql();
            sql.push("SELECT id, kind FROM scimd_resources WHERE source = ");
            sql.bind_text(source);
            sql.push(" AND kind IN ('User', 'Group') AND id IN ");
            sql.bind_text_list(chunk.iter().map(|m| m.value.as_str()));
            for row in tx.fetch_all(&sql).await? {
                kinds.insert(row.text(0)?, row.text(1)?);
            }
        }
        if let Some(missing) = members.iter().find(|m| !kinds.contains_key(&m.value)) {
            return Err(BackendError::InvalidReference(missing.value.clone()).into());
        }
        let mut added = 0;
        for chunk in members.chunks(CHUNK) {
            let mut sql = self.new_sql();
            sql.push(
                "INSERT INTO scimd_members (source, group_id, member_id, member_type, display, \
                 display_fold) VALUES ",
            );
            for (i, m) in chunk.iter().enumerate() {
                if i > 0 {
                    sql.push(", ");
                }
                let kind = kinds.get(&m.value).cloned().unwrap_or_default();
                sql.push("(");
                sql.bind_text(source).push(", ");
                sql.bind_text(group_id).push(", ");
                sql.bind_text(m.value.as_str()).push(", ");
                sql.bind_text(kind).push(", ");
                sql.bind(Param::OptText(m.display.clone())).push(", ");
                sql.bind(Param::OptText(m.display.as_deref().map(fold)))
                    .push(")");
            }
            sql.push(" ON CONFLICT (source, group_id, member_id) DO NOTHING");
            added += tx.execute(&sql).await?;
        }
        Ok(added)
    }

    async fn remove_members(
        &self,
        tx: &mut Tx,
        source: &str,
        group_id: &str,
        ids: &[String],
    ) -> Result<u64, Error> {
        let mut removed = 0;
        for chunk in ids.chunks(CHUNK) {
            let mut sql = self.new_sql();
            sql.push("DELETE FROM scimd_members WHERE source = ");
            sql.bind_text(source);
            sql.push(" AND group_id = ");
            sql.bind_text(group_id);
            sql.push(" AND member_id IN ");
            sql.bind_text_list(chunk.iter().map(String::as_str));
            removed += tx.execute(&sql).await?;
        }
        Ok(removed)
    }

    async fn clear_members(&self, tx: &mut Tx, source: &str, group_id: &str) -> Result<u64, Error> {
        let mut sql = self.new_sql();
        sql.push("DELETE FROM scimd_members WHERE source = ");
        sql.bind_text(source);
        sql.push(" AND group_id = ");
        sql.bind_text(group_id);
        tx.execute(&sql).await
    }

    /// Splits incoming attributes into what is stored as attributes and the member list.
    fn split(
        rt: &ResourceTypeDef,
        mut attrs: Map<String, Value>,
    ) -> Result<(Map<String, Value>, Vec<Member>), Error> {
        let members = match rt.kind {
            ResourceKind::Group => members_of(attrs.remove("members"))?,
            ResourceKind::User => Vec::new(),
        };
        attrs.retain(|k, _| !is_relation(rt, k));
        Ok((attrs, members))
    }

    async fn try_create(
        &self,
        source: &str,
        kind: ResourceKind,
        attrs: &Map<String, Value>,
        stager: Option<&dyn Stager>,
    ) -> Result<Resource, Error> {
        let reg = self.schemas(source);
        let rt = reg.resource_type(kind);
        let (attrs, members) = Self::split(rt, attrs.clone())?;
        let doc = search_doc(rt, &attrs);
        let cols = columns(rt, &attrs);
        let id = uuid::Uuid::new_v4().to_string();
        let at = micros(now());
        let mut tx = self.write_tx().await?;
        self.insert_row(&mut tx, source, kind, &id, at, &attrs, &doc, &cols)
            .await?;
        self.count(&mut tx, source, kind, 1).await?;
        if kind == ResourceKind::User && !cols.emails.is_empty() {
            self.set_emails(&mut tx, source, &id, &cols.emails, false)
                .await?;
        }
        if !members.is_empty() {
            self.add_members(&mut tx, source, &id, &members).await?;
        }
        let r = self
            .fetch(&mut tx, source, kind, &id, Load::ALL)
            .await?
            .ok_or_else(|| internal("create", "the new row vanished"))?;
        if let Some(stager) = stager {
            self.stage_in(&mut tx, stager, Some(&r)).await?;
        }
        tx.commit().await?;
        Ok(r)
    }

    async fn try_get(
        &self,
        source: &str,
        kind: ResourceKind,
        id: &str,
        load: Load,
    ) -> Result<Resource, Error> {
        // One statement: one snapshot, no transaction needed.
        match self
            .read_one(&self.select_one(source, kind, id, load))
            .await?
        {
            Some(row) => Self::decode(&row, kind),
            None => Err(BackendError::NotFound(id.to_string()).into()),
        }
    }

    async fn try_replace(
        &self,
        source: &str,
        kind: ResourceKind,
        id: &str,
        attrs: &Map<String, Value>,
        expected: Option<Version>,
        stager: Option<&dyn Stager>,
    ) -> Result<Resource, Error> {
        let reg = self.schemas(source);
        let rt = reg.resource_type(kind);
        let (attrs, members) = Self::split(rt, attrs.clone())?;
        let doc = search_doc(rt, &attrs);
        let cols = columns(rt, &attrs);
        let at = micros(now());
        let mut tx = self.write_tx().await?;
        self.lock_checked(&mut tx, source, kind, id, expected)
            .await?;
        self.write_attrs(&mut tx, source, kind, id, at, &attrs, &doc, &cols, true)
            .await?;
        if kind == ResourceKind::Group {
            self.clear_members(&mut tx, source, id).await?;
            self.add_members(&mut tx, source, id, &members).await?;
        }
        let r = self
            .fetch(&mut tx, source, kind, id, Load::ALL)
            .await?
            .ok_or_else(|| BackendError::NotFound(id.to_string()))?;
        if let Some(stager) = stager {
            self.stage_in(&mut tx, stager, Some(&r)).await?;
        }
        tx.commit().await?;
        Ok(r)
    }

    async fn try_delete(
        &self,
        source: &str,
        kind: ResourceKind,
        id: &str,
        expected: Option<Version>,
        stager: Option<&dyn Stager>,
    ) -> Result<(), Error> {
        let at = micros(now());
        let mut tx = self.write_tx().await?;
        // Locking the row first makes a concurrent member add of this resource wait (its
        // foreign key check needs a share lock), so every membership row is seen below.
        self.lock_checked(&mut tx, source, kind, id, expected)
            .await?;
        let mut sql = self.new_sql();
        sql.push("UPDATE scimd_resources SET version = version + 1, last_modified = ");
        self.push_later(&mut sql, at);
        sql.push(" WHERE source = ");
        sql.bind_text(source);
        sql.push(
            " AND kind = 'Group' AND id IN (SELECT group_id FROM scimd_members WHERE source = ",
        );
        sql.bind_text(source);
        sql.push(" AND member_type = ");
        sql.bind_text(kind.name());
        sql.push(" AND member_id = ");
        sql.bind_text(id);
        sql.push(")");
        tx.execute(&sql).await?;
        let mut sql = self.new_sql();
        sql.push("DELETE FROM scimd_members WHERE source = ");
        sql.bind_text(source);
        sql.push(" AND member_type = ");
        sql.bind_text(kind.name());
        sql.push(" AND member_id = ");
        sql.bind_text(id);
        tx.execute(&sql).await?;
        match kind {
            ResourceKind::Group => {
                self.clear_members(&mut tx, source, id).await?;
            }
            ResourceKind::User => {
                self.set_emails(&mut tx, source, id, &[], true).await?;
            }
        }
        self.count(&mut tx, source, kind, -1).await?;
        let mut sql = self.new_sql();
        sql.push("DELETE FROM scimd_resources WHERE source = ");
        sql.bind_text(source);
        sql.push(" AND kind = ");
        sql.bind_text(kind.name());
        sql.push(" AND id = ");
        sql.bind_text(id);
        tx.execute(&sql).await?;
        if let Some(stager) = stager {
            self.stage_in(&mut tx, stager, None).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    async fn try_patch(
        &self,
        source: &str,
        kind: ResourceKind,
        id: &str,
        patch: &PatchRequest,
        expected: Option<Version>,
        load: Load,
        delta: Option<&(PatchRequest, scimd_core::MembershipDelta)>,
        stager: Option<&dyn Stager>,
    ) -> Result<Resource, Error> {
        let reg = self.schemas(source);
        let rt = reg.resource_type(kind);
        let at = micros(now());
        let mut tx = self.write_tx().await?;
        self.lock_checked(&mut tx, source, kind, id, expected)
            .await?;
        let mut changed = false;
        match delta {
            Some((rest, delta)) => {
                if !rest.ops.is_empty() {
                    let current = self
                        .fetch(&mut tx, source, kind, id, Load::NONE)
                        .await?
                        .ok_or_else(|| BackendError::NotFound(id.to_string()))?;
                    let outcome = rest.apply(&current)?;
                    if outcome.changed {
                        let (attrs, _) = Self::split(rt, outcome.attrs)?;
                        let doc = search_doc(rt, &attrs);
                        let cols = columns(rt, &attrs);
                        self.write_attrs(&mut tx, source, kind, id, at, &attrs, &doc, &cols, false)
                            .await?;
                        changed = true;
                    }
                }
                if let Some(list) = &delta.replace {
                    let removed = self.clear_members(&mut tx, source, id).await?;
                    let added = self.add_members(&mut tx, source, id, list).await?;
                    changed |= removed + added > 0;
                }
                if !delta.remove.is_empty() {
                    changed |= self
                        .remove_members(&mut tx, source, id, &delta.remove)
                        .await?
                        > 0;
                }
                if !delta.add.is_empty() {
                    changed |= self.add_members(&mut tx, source, id, &delta.add).await? > 0;
                }
            }
            None => {
                let current = self
                    .fetch(&mut tx, source, kind, id, Load::ALL)
                    .await?
                    .ok_or_else(|| BackendError::NotFound(id.to_string()))?;
                let outcome = patch.apply(&current)?;
                if outcome.changed {
                    let (attrs, members) = Self::split(rt, outcome.attrs)?;
                    let doc = search_doc(rt, &attrs);
                    let cols = columns(rt, &attrs);
                    self.write_attrs(&mut tx, source, kind, id, at, &attrs, &doc, &cols, false)
                        .await?;
                    if kind == ResourceKind::Group {
                        self.clear_members(&mut tx, source, id).await?;
                        self.add_members(&mut tx, source, id, &members).await?;
                    }
                    changed = true;
                }
            }
        }
        if changed {
            self.bump(&mut tx, source, kind, id, at).await?;
        }
        // The outbox phase sees the whole new state.
        let stager = stager.filter(|_| changed);
        let load = if stager.is_some() { Load::ALL } else { load };
        let r = self
            .fetch(&mut tx, source, kind, id, load)
            .await?
            .ok_or_else(|| BackendError::NotFound(id.to_string()))?;
        if let Some(stager) = stager {
            self.stage_in(&mut tx, stager, Some(&r)).await?;
        }
        tx.commit().await?;
        Ok(r)
    }

    // --- queries -----------------------------------------------------------------------------

    fn push_from_where(
        &self,
        sql: &mut Sql,
        rt: &ResourceTypeDef,
        source: &str,
        q: &Query,
    ) -> Result<(), Error> {
        sql.push(" FROM scimd_resources r WHERE r.source = ");
        sql.bind_text(source);
        sql.push(" AND r.kind = ");
        sql.bind_text(rt.kind.name());
        if let Some(f) = &q.filter {
            sql.push(" AND ");
            Translator::new(self.dialect_of(), rt, source).condition(f, sql)?;
        }
        Ok(())
    }

    fn push_key(
        &self,
        sql: &mut Sql,
        rt: &ResourceTypeDef,
        source: &str,
        q: &Query,
    ) -> Result<SortKey, Error> {
        match &q.sort {
            Some(sort) => Ok(Translator::new(self.dialect_of(), rt, source).sort_key(sort, sql)?),
            None => Ok(SortKey {
                ty: SortType::Text,
                nullable: false,
                by_id: true,
                unique: true,
            }),
        }
    }

    /// `ORDER BY` for the canonical order (missing keys last, ties by id), or its reverse.
    fn push_order(
        &self,
        sql: &mut Sql,
        rt: &ResourceTypeDef,
        source: &str,
        q: &Query,
        reverse: bool,
    ) -> Result<(), Error> {
        let (asc, desc) = if reverse {
            (" DESC", " ASC")
        } else {
            (" ASC", " DESC")
        };
        sql.push(" ORDER BY ");
        let mut scratch = Sql::new(self.dialect_of());
        let key = self.push_key(&mut scratch, rt, source, q)?;
        if !key.by_id {
            let descending = q.sort.as_ref().is_some_and(|s| s.descending);
            if key.nullable {
                sql.push("(");
                self.push_key(sql, rt, source, q)?;
                sql.push(") IS NULL").push(asc).push(", ");
            }
            self.push_key(sql, rt, source, q)?;
            sql.push(if descending { desc } else { asc });
            if key.unique {
                return Ok(());
            }
            sql.push(", ");
        }
        sql.push("r.id").push(asc);
        Ok(())
    }

    fn bind_key(&self, sql: &mut Sql, ty: SortType, key: &Value) -> Result<(), Error> {
        let bad = || Error::Backend(BackendError::InvalidCursor("cursor key type".into()));
        match (self.dialect_of(), ty, key) {
            (_, SortType::Text, Value::String(s)) => {
                sql.bind_text(s.as_str());
            }
            (_, SortType::Int, Value::Number(n)) => {
                sql.bind_int(n.as_i64().ok_or_else(bad)?);
            }
            (Dialect::Sqlite, SortType::Num, Value::Number(n)) => {
                match n.as_i64() {
                    Some(i) => sql.bind_int(i),
                    None => sql.bind(Param::Real(n.as_f64().ok_or_else(bad)?)),
                };
            }
            (Dialect::Postgres, SortType::Num, Value::String(s)) => {
                if s.parse::<f64>().is_err() {
                    return Err(bad());
                }
                sql.bind_text(s.as_str()).push("::numeric");
            }
            (Dialect::Sqlite, SortType::Bool, Value::Bool(b)) => {
                sql.bind_int(i64::from(*b));
            }
            (Dialect::Postgres, SortType::Bool, Value::Bool(b)) => {
                sql.bind_text(b.to_string()).push("::boolean");
            }
            _ => return Err(bad()),
        }
        Ok(())
    }

    /// The condition "after `pos`" (or before it, with `before`) in the canonical order.
    #[allow(clippy::too_many_arguments)]
    fn push_keyset(
        &self,
        sql: &mut Sql,
        rt: &ResourceTypeDef,
        source: &str,
        q: &Query,
        key: SortKey,
        pos: &CursorPosition,
        before: bool,
    ) -> Result<(), Error> {
        let descending = q.sort.as_ref().is_some_and(|s| s.descending);
        let id_cmp = if before { " < " } else { " > " };
        let key_cmp = if descending != before { " < " } else { " > " };
        if key.by_id {
            sql.push("r.id").push(id_cmp);
            sql.bind_text(pos.id.as_str());
            return Ok(());
        }
        let key_val = &pos.key;
        if key_val.is_null() {
            if !key.nullable {
                return Err(BackendError::InvalidCursor("cursor key missing".into()).into());
            }
            sql.push("(");
            self.push_key(sql, rt, source, q)?;
            if before {
                sql.push(" IS NOT NULL OR r.id < ");
            } else {
                sql.push(" IS NULL AND r.id > ");
            }
            sql.bind_text(pos.id.as_str());
            sql.push(")");
            return Ok(());
        }
        if !key.nullable {
            // Forms an index range can serve: a row value when key and id run the same way,
            // else a bound on the key alone plus the tie rule.
            if key_cmp == id_cmp {
                sql.push("((");
                self.push_key(sql, rt, source, q)?;
                sql.push("), r.id)").push(key_cmp).push("(");
                self.bind_key(sql, key.ty, key_val)?;
                sql.push(", ");
                sql.bind_text(pos.id.as_str());
                sql.push(")");
            } else {
                sql.push("((");
                self.push_key(sql, rt, source, q)?;
                sql.push(")").push(key_cmp.trim_end()).push("= ");
                self.bind_key(sql, key.ty, key_val)?;
                sql.push(" AND ((");
                self.push_key(sql, rt, source, q)?;
                sql.push(")").push(key_cmp);
                self.bind_key(sql, key.ty, key_val)?;
                sql.push(" OR r.id").push(id_cmp);
                sql.bind_text(pos.id.as_str());
                sql.push("))");
            }
            return Ok(());
        }
        sql.push("(");
        if key.nullable {
            sql.push("((");
            self.push_key(sql, rt, source, q)?;
            sql.push(") IS NOT NULL AND ");
        }
        sql.push("((");
        self.push_key(sql, rt, source, q)?;
        sql.push(")").push(key_cmp);
        self.bind_key(sql, key.ty, key_val)?;
        sql.push(" OR ((");
        self.push_key(sql, rt, source, q)?;
        sql.push(") = ");
        self.bind_key(sql, key.ty, key_val)?;
        sql.push(" AND r.id").push(id_cmp);
        sql.bind_text(pos.id.as_str());
        sql.push("))");
        if key.nullable {
            sql.push(")");
            if !before {
                sql.push(" OR (");
                self.push_key(sql, rt, source, q)?;
                sql.push(") IS NULL");
            }
        }
        sql.push(")");
        Ok(())
    }

    fn decode_key(&self, row: &DbRow, i: usize, ty: SortType) -> Result<Value, Error> {
        let v = row.json_scalar(i)?;
        Ok(match (self.dialect_of(), ty, v) {
            (_, _, Value::Null) => Value::Null,
            (Dialect::Sqlite, SortType::Bool, Value::Number(n)) => {
                Value::Bool(n.as_i64().unwrap_or(0) != 0)
            }
            (Dialect::Postgres, SortType::Int, Value::String(s)) => {
                Value::from(s.parse::<i64>().map_err(|e| internal("sort key", e))?)
            }
            (Dialect::Postgres, SortType::Bool, Value::String(s)) => {
                Value::Bool(s == "true" || s == "t")
            }
            (_, _, v) => v,
        })
    }

    async fn try_query(
        &self,
        source: &str,
        kind: ResourceKind,
        q: &Query,
    ) -> Result<QueryPage, Error> {
        let reg = self.schemas(source);
        let rt = reg.resource_type(kind);
        let d = self.dialect_of();
        // Translate once up front so that an unsupported filter fails before any I/O.
        let mut probe = Sql::new(d);
        self.push_from_where(&mut probe, rt, source, q)?;
        let key = self.push_key(&mut probe, rt, source, q)?;

        let mut tx = self.read_tx().await?;
        let mut sql = Sql::new(d);
        if q.filter.is_some() {
            sql.push("SELECT COUNT(*)");
            self.push_from_where(&mut sql, rt, source, q)?;
        } else {
            // Kept by every create and delete in their transactions: exact, and O(1).
            sql.push("SELECT n FROM scimd_counts WHERE source = ");
            sql.bind_text(source);
            sql.push(" AND kind = ");
            sql.bind_text(kind.name());
        }
        let total = match tx.fetch_optional(&sql).await? {
            Some(row) => u64::try_from(row.int(0)?).unwrap_or(0),
            None => 0,
        };

        let count = q.page.count();
        let limit = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        let mut page = QueryPage {
            total_results: total,
            ..QueryPage::default()
        };
        match &q.page {
            Page::Index { start_index, .. } => {
                if count > 0 && total > 0 {
                    let mut sql = Sql::new(d);
                    self.push_select(&mut sql, kind, q.load);
                    self.push_from_where(&mut sql, rt, source, q)?;
                    self.push_order(&mut sql, rt, source, q, false)?;
                    sql.push(" LIMIT ");
                    sql.bind_int(limit(count));
                    sql.push(" OFFSET ");
                    sql.bind_int(limit(start_index.saturating_sub(1)));
                    for row in tx.fetch_all(&sql).await? {
                        page.resources.push(Self::decode(&row, kind)?);
                    }
                }
            }
            Page::Cursor { position, .. } => {
                let backward = position.as_ref().is_some_and(|p| p.backward);
                let mut sql = Sql::new(d);
                self.push_select(&mut sql, kind, q.load);
                sql.push(", ");
                if key.by_id {
                    sql.push("NULL");
                    if d == Dialect::Postgres {
                        sql.push("::text");
                    }
                } else {
                    sql.push("(");
                    self.push_key(&mut sql, rt, source, q)?;
                    sql.push(")");
                    if d == Dialect::Postgres {
                        sql.push("::text");
                    }
                }
                sql.push(" AS sk");
                self.push_from_where(&mut sql, rt, source, q)?;
                if let Some(pos) = position {
                    sql.push(" AND ");
                    self.push_keyset(&mut sql, rt, source, q, key, pos, backward)?;
                }
                self.push_order(&mut sql, rt, source, q, backward)?;
                sql.push(" LIMIT ");
                sql.bind_int(limit(count.saturating_add(1)));
                let mut rows = Vec::new();
                for row in tx.fetch_all(&sql).await? {
                    let sk = if key.by_id {
                        Value::Null
                    } else {
                        self.decode_key(&row, 6, key.ty)?
                    };
                    rows.push((Self::decode(&row, kind)?, sk));
                }
                let more = u64::try_from(rows.len()).unwrap_or(u64::MAX) > count;
                rows.truncate(usize::try_from(count).unwrap_or(usize::MAX));
                if backward {
                    rows.reverse();
                }
                let at = |r: &(Resource, Value), backward: bool| CursorPosition {
                    key: r.1.clone(),
                    id: r.0.id.clone(),
                    backward,
                };
                if backward {
                    page.previous = if more {
                        rows.first().map(|r| at(r, true))
                    } else {
                        None
                    };
                    if let Some(last) = rows.last() {
                        let anchor = at(last, false);
                        if self
                            .exists_beyond(&mut tx, rt, source, q, key, &anchor, false)
                            .await?
                        {
                            page.next = Some(anchor);
                        }
                    }
                } else {
                    page.next = if more {
                        rows.last().map(|r| at(r, false))
                    } else {
                        None
                    };
                    if let Some(pos) = position {
                        let anchor = match rows.first() {
                            Some(first) => at(first, true),
                            None => CursorPosition {
                                backward: true,
                                ..pos.clone()
                            },
                        };
                        if self
                            .exists_beyond(&mut tx, rt, source, q, key, &anchor, true)
                            .await?
                        {
                            page.previous = Some(anchor);
                        }
                    }
                }
                page.resources = rows.into_iter().map(|r| r.0).collect();
            }
        }
        tx.commit().await?;
        Ok(page)
    }

    /// Whether some match lies after (or, with `before`, before) `anchor`.
    #[allow(clippy::too_many_arguments)]
    async fn exists_beyond(
        &self,
        tx: &mut Tx,
        rt: &ResourceTypeDef,
        source: &str,
        q: &Query,
        key: SortKey,
        anchor: &CursorPosition,
        before: bool,
    ) -> Result<bool, Error> {
        let mut sql = self.new_sql();
        sql.push("SELECT 1");
        self.push_from_where(&mut sql, rt, source, q)?;
        sql.push(" AND ");
        self.push_keyset(&mut sql, rt, source, q, key, anchor, before)?;
        sql.push(" LIMIT 1");
        Ok(tx.fetch_optional(&sql).await?.is_some())
    }
}

/// Reads the member list of incoming group attributes.
fn members_of(v: Option<Value>) -> Result<Vec<Member>, Error> {
    let invalid = |d: &str| Error::Backend(BackendError::InvalidValue(d.to_string()));
    match v {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .into_iter()
            .map(|m| {
                let obj = m
                    .as_object()
                    .ok_or_else(|| invalid("a member must be an object"))?;
                let value = obj
                    .get("value")
                    .and_then(Value::as_str)
                    .ok_or_else(|| invalid("a member needs a string \"value\""))?;
                Ok(Member {
                    value: value.to_string(),
                    kind: obj.get("type").and_then(Value::as_str).map(str::to_string),
                    display: obj
                        .get("display")
                        .and_then(Value::as_str)
                        .map(str::to_string),
                })
            })
            .collect(),
        Some(_) => Err(invalid("members must be a list")),
    }
}

#[async_trait]
impl Backend for SqlBackend {
    fn capabilities(&self) -> Capabilities {
        self.capabilities_impl()
    }

    async fn create(
        &self,
        source: &str,
        kind: ResourceKind,
        attrs: Map<String, Value>,
    ) -> Result<Resource, BackendError> {
        retry!("userName", self.try_create(source, kind, &attrs, None))
    }

    async fn get(
        &self,
        source: &str,
        kind: ResourceKind,
        id: &str,
        load: Load,
    ) -> Result<Resource, BackendError> {
        retry!("userName", self.try_get(source, kind, id, load))
    }

    async fn replace(
        &self,
        source: &str,
        kind: ResourceKind,
        id: &str,
        attrs: Map<String, Value>,
        expected: Option<Version>,
    ) -> Result<Resource, BackendError> {
        retry!(
            "userName",
            self.try_replace(source, kind, id, &attrs, expected, None)
        )
    }

    async fn delete(
        &self,
        source: &str,
        kind: ResourceKind,
        id: &str,
        expected: Option<Version>,
    ) -> Result<(), BackendError> {
        retry!(
            "userName",
            self.try_delete(source, kind, id, expected, None)
        )
    }

    async fn query(
        &self,
        source: &str,
        kind: ResourceKind,
        query: &Query,
    ) -> Result<QueryPage, BackendError> {
        retry!("userName", self.try_query(source, kind, query))
    }

    async fn patch(
        &self,
        source: &str,
        kind: ResourceKind,
        id: &str,
        patch: &PatchRequest,
        expected: Option<Version>,
        load: Load,
    ) -> Result<Resource, BackendError> {
        let delta = match kind {
            ResourceKind::Group => patch.membership_delta(),
            ResourceKind::User => None,
        };
        retry!(
            "userName",
            self.try_patch(
                source,
                kind,
                id,
                patch,
                expected,
                load,
                delta.as_ref(),
                None
            )
        )
    }

    async fn create_staged(
        &self,
        source: &str,
        kind: ResourceKind,
        attrs: Map<String, Value>,
        stager: &dyn Stager,
    ) -> Result<Staged<Resource>, BackendError> {
        if !self.transactional_outbox() {
            return backend::create_then_stage(self, source, kind, attrs, stager).await;
        }
        let r = retry!(
            "userName",
            self.try_create(source, kind, &attrs, Some(stager))
        )?;
        Ok(Staged::stored(r))
    }

    async fn replace_staged(
        &self,
        source: &str,
        kind: ResourceKind,
        id: &str,
        attrs: Map<String, Value>,
        expected: Option<Version>,
        stager: &dyn Stager,
    ) -> Result<Staged<Resource>, BackendError> {
        if !self.transactional_outbox() {
            return backend::replace_then_stage(self, source, kind, id, attrs, expected, stager)
                .await;
        }
        let r = retry!(
            "userName",
            self.try_replace(source, kind, id, &attrs, expected, Some(stager))
        )?;
        Ok(Staged::stored(r))
    }

    async fn patch_staged(
        &self,
        source: &str,
        kind: ResourceKind,
        id: &str,
        patch: &PatchRequest,
        expected: Option<Version>,
        load: Load,
        stager: &dyn Stager,
    ) -> Result<Staged<Resource>, BackendError> {
        if !self.transactional_outbox() {
            return backend::patch_then_stage(
                self, source, kind, id, patch, expected, load, stager,
            )
            .await;
        }
        let delta = match kind {
            ResourceKind::Group => patch.membership_delta(),
            ResourceKind::User => None,
        };
        let r = retry!(
            "userName",
            self.try_patch(
                source,
                kind,
                id,
                patch,
                expected,
                load,
                delta.as_ref(),
                Some(stager)
            )
        )?;
        Ok(Staged::stored(r))
    }

    async fn delete_staged(
        &self,
        source: &str,
        kind: ResourceKind,
        id: &str,
        expected: Option<Version>,
        stager: &dyn Stager,
    ) -> Result<Staged<()>, BackendError> {
        if !self.transactional_outbox() {
            return backend::delete_then_stage(self, source, kind, id, expected, stager).await;
        }
        retry!(
            "userName",
            self.try_delete(source, kind, id, expected, Some(stager))
        )?;
        Ok(Staged::stored(()))
    }

    async fn import(
        &self,
        source: &str,
        kind: ResourceKind,
        batch: Vec<Imported>,
    ) -> Result<(), BackendError> {
        retry!("userName or id", self.try_import(source, kind, &batch))
    }

    async fn health(&self) -> Result<(), BackendError> {
        let r = match &self.inner.pools {
            Pools::Sqlite { reader, .. } => {
                sqlx::query("SELECT 1").execute(reader).await.map(|_| ())
            }
            Pools::Postgres(pool) => sqlx::query("SELECT 1").execute(pool).await.map(|_| ()),
        };
        r.map_err(|e| Error::Db(e).into_backend("health"))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::SqliteConfig;
    use scimd_core::path::AttrPath;
    use scimd_core::query::Sort;

    async fn backend() -> SqlBackend {
        SqliteConfig {
            path: ":memory:".into(),
            ..SqliteConfig::default()
        }
        .build()
        .await
        .unwrap()
    }

    /// SQLite's plan of the page statement `try_query` runs for `q`.
    async fn plan(b: &SqlBackend, kind: ResourceKind, q: &Query) -> String {
        let reg = b.schemas("s");
        let rt = reg.resource_type(kind);
        let mut sql = b.new_sql();
        sql.push("EXPLAIN QUERY PLAN ");
        b.push_select(&mut sql, kind, Load::NONE);
        b.push_from_where(&mut sql, rt, "s", q).unwrap();
        let key = b
            .push_key(&mut Sql::new(Dialect::Sqlite), rt, "s", q)
            .unwrap();
        if let Page::Cursor {
            position: Some(pos),
            ..
        } = &q.page
        {
            sql.push(" AND ");
            b.push_keyset(&mut sql, rt, "s", q, key, pos, pos.backward)
                .unwrap();
        }
        b.push_order(&mut sql, rt, "s", q, false).unwrap();
        sql.push(" LIMIT 10");
        let mut tx = b.read_tx().await.unwrap();
        let rows = tx.fetch_all(&sql).await.unwrap();
        rows.iter()
            .map(|r| r.text(3).unwrap())
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn query(filter: Option<&str>, sort: Option<&str>, position: Option<(Value, &str)>) -> Query {
        let reg = scimd_core::SchemaRegistry::new();
        let rt = reg.resource_type(ResourceKind::User);
        Query {
            filter: filter.map(|f| scimd_core::Filter::parse(f).unwrap().resolve(rt).unwrap()),
            sort: sort.map(|s| Sort {
                path: AttrPath::parse(s).unwrap(),
                descending: false,
            }),
            page: match position {
                Some((key, id)) => Page::Cursor {
                    position: Some(CursorPosition {
                        key,
                        id: id.into(),
                        backward: false,
                    }),
                    count: 10,
                },
                None => Page::Index {
                    start_index: 1,
                    count: 10,
                },
            },
            load: Load::NONE,
        }
    }

    #[tokio::test]
    async fn user_name_eq_is_an_index_lookup() {
        let b = backend().await;
        let p = plan(
            &b,
            ResourceKind::User,
            &query(Some("userName eq \"Bjensen\""), None, None),
        )
        .await;
        assert!(p.contains("scimd_resources_user_name"), "{p}");
        assert!(!p.contains("SCAN r"), "{p}");
    }

    #[tokio::test]
    async fn email_eq_is_an_index_lookup() {
        let b = backend().await;
        let q = query(Some("emails.value eq \"b@example.com\""), None, None);
        let p = plan(&b, ResourceKind::User, &q).await;
        assert!(
            p.contains("SEARCH scimd_emails USING PRIMARY KEY (source=? AND value=?)"),
            "{p}"
        );
    }

    #[tokio::test]
    async fn cursor_pages_by_id_seek_instead_of_scanning() {
        let b = backend().await;
        let q = query(None, None, Some((Value::Null, "m")));
        let p = plan(&b, ResourceKind::User, &q).await;
        assert!(p.contains("SEARCH r USING INDEX"), "{p}");
        assert!(p.contains("id>?"), "{p}");
        assert!(!p.contains("TEMP B-TREE"), "{p}");
    }

    #[tokio::test]
    async fn cursor_pages_by_user_name_seek_instead_of_scanning() {
        let b = backend().await;
        let q = query(None, Some("userName"), Some((Value::from("m"), "id")));
        let p = plan(&b, ResourceKind::User, &q).await;
        assert!(p.contains("scimd_resources_user_name"), "{p}");
        assert!(!p.contains("TEMP B-TREE"), "{p}");
    }

    #[tokio::test]
    async fn descending_cursor_pages_by_user_name_seek_instead_of_scanning() {
        let b = backend().await;
        let mut q = query(None, Some("userName"), Some((Value::from("m"), "id")));
        if let Some(s) = q.sort.as_mut() {
            s.descending = true;
        }
        let p = plan(&b, ResourceKind::User, &q).await;
        assert!(p.contains("user_name_fold<?"), "{p}");
        assert!(!p.contains("TEMP B-TREE"), "{p}");
    }

    #[tokio::test]
    async fn cursor_pages_by_last_modified_seek_instead_of_scanning() {
        let b = backend().await;
        let q = query(
            None,
            Some("meta.lastModified"),
            Some((Value::from(5), "id")),
        );
        let p = plan(&b, ResourceKind::User, &q).await;
        assert!(p.contains("scimd_resources_last_modified"), "{p}");
        assert!(!p.contains("TEMP B-TREE"), "{p}");
    }

    #[tokio::test]
    async fn email_substring_scans_only_the_email_table() {
        let b = backend().await;
        // A needle too short for the substring index.
        let q = query(Some("emails.value co \"x@\""), None, None);
        let p = plan(&b, ResourceKind::User, &q).await;
        assert!(!p.contains("SCAN r"), "{p}");
        // Either index of the table covers (source, value, user_id): no row lookups.
        assert!(
            p.contains("scimd_emails USING PRIMARY KEY")
                || p.contains("scimd_emails USING COVERING INDEX"),
            "{p}"
        );
    }

    #[tokio::test]
    async fn last_modified_filters_use_their_index() {
        let b = backend().await;
        let q = query(
            Some("meta.lastModified gt \"2025-01-01T00:00:00Z\""),
            None,
            None,
        );
        let p = plan(&b, ResourceKind::User, &q).await;
        assert!(p.contains("scimd_resources_last_modified"), "{p}");
    }
}
