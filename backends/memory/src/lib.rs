//! # scimd-backend-memory
//!
//! The in-memory reference backend: [`MemoryBackend`] implements
//! [`scimd_core::Backend`] with every capability, evaluates filters with the core's reference
//! evaluator ([`scimd_core::filter::matches`]) and pages with the core's
//! [`scimd_core::paging::paginate`], so its answers are the semantics other backends are
//! compared against. It serves `scimd --memory`, the tests, and is the benchmark baseline.
//!
//! ## Storage model
//! Each source (tenant) has its own store behind its own [`std::sync::RwLock`]; sources share
//! nothing, so a group in one source can never reference a user in another. Per source:
//! - users and groups by id (UUIDv4), each with its version and timestamps;
//! - an index of lower-cased `userName` → id (each character's Unicode lower case, the mapping
//!   the reference evaluator compares with), which enforces uniqueness and serves
//!   `userName eq` without a scan; `id eq`, `members.value eq` and `groups.value eq` are served
//!   from the maps and the membership relation the same way, and every candidate is still
//!   checked with the evaluator;
//! - users and groups in id order, so unsorted, unfiltered pages (index or cursor) are read
//!   straight from the map instead of collecting and sorting every resource;
//! - group membership as a relation: per group an insertion-ordered set of member ids (with
//!   the member's type, filled in from what the id is, and the client's `display`), and a
//!   reverse index member → groups from which `User.groups` is derived on read. Adding or
//!   removing one member never copies the member list.
//!
//! Every operation runs entirely under its source's lock and never awaits while holding it,
//! so writes are atomic and versions compare-and-swap exactly. Lock poisoning is ignored:
//! nothing in the store panics between two related updates.
//!
//! ## Schemas
//! Filters and sorts are evaluated against a [`SchemaRegistry`]: one given to
//! [`MemoryBackend::new`] for every source, optionally overridden per source with
//! [`MemoryBackend::with_source_schemas`] (for sources that register custom extensions). It
//! must be the registry the server resolves that source's filters with.

#![forbid(unsafe_code)]

mod members;
mod store;

use async_trait::async_trait;
use scimd_core::backend::{self, Staged, Stager};
use scimd_core::query::{Load, Query, QueryPage};
use scimd_core::resource::{Resource, Version};
use scimd_core::schema::{ResourceKind, SchemaRegistry};
use scimd_core::{Backend, BackendError, Capabilities, Imported, PatchRequest};
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use store::SourceStore;

/// The in-memory backend. Cheap to share behind an `Arc<dyn Backend>`; see the crate docs.
pub struct MemoryBackend {
    schemas: Arc<SchemaRegistry>,
    source_schemas: HashMap<String, Arc<SchemaRegistry>>,
    sources: RwLock<HashMap<String, Arc<RwLock<SourceStore>>>>,
}

impl fmt::Debug for MemoryBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryBackend")
            .field("sources", &read(&self.sources).len())
            .field(
                "sources_with_own_schemas",
                &self.source_schemas.keys().collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Default for MemoryBackend {
    /// An empty backend with the built-in schemas for every source.
    fn default() -> Self {
        MemoryBackend::new(Arc::new(SchemaRegistry::new()))
    }
}

impl MemoryBackend {
    /// An empty backend whose sources use `schemas` (unless overridden per source).
    pub fn new(schemas: Arc<SchemaRegistry>) -> Self {
        MemoryBackend {
            schemas,
            source_schemas: HashMap::new(),
            sources: RwLock::new(HashMap::new()),
        }
    }

    /// Uses `schemas` for `source` instead of the backend-wide registry.
    pub fn with_source_schemas(
        mut self,
        source: impl Into<String>,
        schemas: Arc<SchemaRegistry>,
    ) -> Self {
        self.source_schemas.insert(source.into(), schemas);
        self
    }

    /// The schema registry of a source.
    pub fn schemas(&self, source: &str) -> &Arc<SchemaRegistry> {
        self.source_schemas.get(source).unwrap_or(&self.schemas)
    }

    /// The store of a source, if anything was ever written to it.
    fn existing(&self, source: &str) -> Option<Arc<RwLock<SourceStore>>> {
        read(&self.sources).get(source).cloned()
    }

    /// The store of a source, created on first write.
    fn store(&self, source: &str) -> Arc<RwLock<SourceStore>> {
        if let Some(s) = self.existing(source) {
            return s;
        }
        write(&self.sources)
            .entry(source.to_string())
            .or_default()
            .clone()
    }
}

fn read<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|e| e.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|e| e.into_inner())
}

// Every trait method is implemented here on purpose: the reference backend must make a
// deliberate choice for each new default method.
#[deny(clippy::missing_trait_methods)]
#[async_trait]
impl Backend for MemoryBackend {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            filter: true,
            sort: true,
            cursor_paging: true,
            etag: true,
            change_password: true,
            membership_deltas: true,
            ..Capabilities::default()
        }
    }

    async fn create(
        &self,
        source: &str,
        kind: ResourceKind,
        attrs: Map<String, Value>,
    ) -> Result<Resource, BackendError> {
        let store = self.store(source);
        let mut store = write(&store);
        store.create(kind, attrs)
    }

    async fn get(
        &self,
        source: &str,
        kind: ResourceKind,
        id: &str,
        load: Load,
    ) -> Result<Resource, BackendError> {
        match self.existing(source) {
            Some(store) => read(&store).get(kind, id, load),
            None => Err(BackendError::NotFound(id.to_string())),
        }
    }

    async fn replace(
        &self,
        source: &str,
        kind: ResourceKind,
        id: &str,
        attrs: Map<String, Value>,
        expected: Option<Version>,
    ) -> Result<Resource, BackendError> {
        match self.existing(source) {
            Some(store) => write(&store).replace(kind, id, attrs, expected),
            None => Err(BackendError::NotFound(id.to_string())),
        }
    }

    async fn delete(
        &self,
        source: &str,
        kind: ResourceKind,
        id: &str,
        expected: Option<Version>,
    ) -> Result<(), BackendError> {
        match self.existing(source) {
            Some(store) => write(&store).delete(kind, id, expected),
            None => Err(BackendError::NotFound(id.to_string())),
        }
    }

    async fn query(
        &self,
        source: &str,
        kind: ResourceKind,
        query: &Query,
    ) -> Result<QueryPage, BackendError> {
        let rt = self.schemas(source).resource_type(kind);
        match self.existing(source) {
            Some(store) => read(&store).query(rt, kind, query),
            None => Ok(scimd_core::paging::paginate(
                rt,
                Vec::new(),
                query.sort.as_ref(),
                &query.page,
            )),
        }
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
        match self.existing(source) {
            Some(store) => write(&store).patch(kind, id, patch, expected, load),
            None => Err(BackendError::NotFound(id.to_string())),
        }
    }

    // The memory backend keeps no outbox: a staged write returns its messages for the
    // caller to store in the state store.
    async fn create_staged(
        &self,
        source: &str,
        kind: ResourceKind,
        attrs: Map<String, Value>,
        stager: &dyn Stager,
    ) -> Result<Staged<Resource>, BackendError> {
        backend::create_then_stage(self, source, kind, attrs, stager).await
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
        backend::replace_then_stage(self, source, kind, id, attrs, expected, stager).await
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
        backend::patch_then_stage(self, source, kind, id, patch, expected, load, stager).await
    }

    async fn delete_staged(
        &self,
        source: &str,
        kind: ResourceKind,
        id: &str,
        expected: Option<Version>,
        stager: &dyn Stager,
    ) -> Result<Staged<()>, BackendError> {
        backend::delete_then_stage(self, source, kind, id, expected, stager).await
    }

    async fn import(
        &self,
        source: &str,
        kind: ResourceKind,
        batch: Vec<Imported>,
    ) -> Result<(), BackendError> {
        let store = self.store(source);
        let mut store = write(&store);
        let mut done: Vec<String> = Vec::with_capacity(batch.len());
        for item in batch {
            match store.create_with_id(kind, item.id, item.attrs) {
                Ok(r) => done.push(r.id),
                Err(e) => {
                    // All or none: take back what this batch created, newest first.
                    for id in done.iter().rev() {
                        let _ = store.delete(kind, id, None);
                    }
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    async fn health(&self) -> Result<(), BackendError> {
        Ok(())
    }
}
