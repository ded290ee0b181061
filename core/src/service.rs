//! The request orchestration of one source, free of HTTP: what a SCIM endpoint does between
//! parsing a request and writing a response.
//!
//! A [`Service`] holds the source's backend, schema registry and paging limits. The HTTP layer
//! and Bulk call the same methods ([`Service::create`], [`Service::get`], [`Service::replace`],
//! [`Service::patch`], [`Service::delete`], [`Service::list`], [`Service::search_all`]), so a
//! bulk operation behaves exactly like the single request it stands for.
//!
//! Each write runs: canonicalize (core) → *map hooks* → validate → *decide hooks* → backend
//! (with the *outbox hooks*' messages, in the write's transaction where the backend can) →
//! *react hooks* → projection, with the source's [`HookPipeline`] (see [`crate::hooks`]). A
//! pipeline without hooks for a resource type and operation costs nothing: the write takes the
//! same path as without hooks (for PATCH, the backend's own patch with membership deltas).

use crate::backend::{Backend, Imported, PATCH_RETRIES};
use crate::compat::{self, Fired, Rule, Rules};
use crate::error::{BackendError, ScimError};
use crate::filter::{Filter, compare_values};
use crate::hooks::{HookContext, HookPipeline, Operation, Phase, RequestInfo};
use crate::normalize::{self, WriteMode};
use crate::paging::{
    self, ListPaging, PageParams, PagingConfig, QueryFingerprint, parse_sort, sort_value,
};
use crate::patch::PatchRequest;
use crate::projection::Projection;
use crate::query::{Load, Page, Query, QueryPage};
use crate::resource::{Resource, Version};
use crate::schema::{AttributeDef, ENTERPRISE_USER, ResourceKind, ResourceTypeDef, SchemaRegistry};
use serde_json::{Map, Value};
use std::cmp::Ordering;
use std::fmt;
use std::sync::Arc;

pub use crate::paging::LIST_RESPONSE_SCHEMA;
/// The URN of the SearchRequest message (RFC 7644 §3.4.3).
pub const SEARCH_REQUEST_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:SearchRequest";

/// How often a PUT without `If-Match` re-reads and retries after losing a race to a concurrent
/// writer before giving up with 412.
pub const REPLACE_RETRIES: usize = 16;

/// The largest result window a root search (`/.search` over Users and Groups) will merge when
/// sorting; beyond it the client must narrow the filter.
pub const MAX_MERGE_WINDOW: u64 = 10_000;

/// A conditional-request precondition from `If-Match` (RFC 7232 §3.1).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Precondition {
    /// No `If-Match`: the write applies to whatever version is current.
    #[default]
    None,
    /// `If-Match: *`: the resource must exist.
    Any,
    /// A list of entity tags; the write applies only when the current version is one of them.
    /// Tags scimd never issued are dropped while parsing, so an empty list never matches.
    Tags(Vec<Version>),
}

impl Precondition {
    /// Parses an `If-Match` header value (`*`, `W/"3"`, `"3", W/"4"`).
    pub fn if_match(header: Option<&str>) -> Precondition {
        match header.map(str::trim) {
            None | Some("") => Precondition::None,
            Some("*") => Precondition::Any,
            Some(list) => Precondition::Tags(parse_etags(list)),
        }
    }
}

/// Parses a comma-separated list of entity tags, keeping only those scimd could have issued.
pub fn parse_etags(list: &str) -> Vec<Version> {
    list.split(',').filter_map(Version::from_etag).collect()
}

/// Whether an `If-None-Match` header value matches `current` (`*` matches every version), in
/// which case a GET answers 304.
pub fn if_none_match_matches(header: &str, current: Version) -> bool {
    let header = header.trim();
    header == "*" || parse_etags(header).contains(&current)
}

/// The query parameters of a list or search request, as the client sent them. Numbers are kept
/// as text so that malformed values become SCIM errors rather than framework errors.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListParams {
    /// `filter`.
    pub filter: Option<String>,
    /// `sortBy`.
    pub sort_by: Option<String>,
    /// `sortOrder`: `ascending` or `descending`.
    pub sort_order: Option<String>,
    /// `startIndex` (1-based).
    pub start_index: Option<String>,
    /// `count`.
    pub count: Option<String>,
    /// `cursor` (RFC 9865); an empty value asks for the first page.
    pub cursor: Option<String>,
    /// `attributes`, comma-separated.
    pub attributes: Option<String>,
    /// `excludedAttributes`, comma-separated.
    pub excluded_attributes: Option<String>,
}

impl ListParams {
    /// Reads a SearchRequest body (RFC 7644 §3.4.3): the same parameters as JSON, with
    /// `attributes`/`excludedAttributes` as arrays and `startIndex`/`count` as numbers.
    pub fn from_search_request(body: &Value) -> Result<ListParams, ScimError> {
        let obj = body
            .as_object()
            .ok_or_else(|| ScimError::invalid_syntax("a SearchRequest must be a JSON object"))?;
        if let Some(schemas) = obj.get("schemas") {
            let ok = schemas.as_array().is_some_and(|a| {
                a.iter().any(|s| {
                    s.as_str()
                        .is_some_and(|s| s.eq_ignore_ascii_case(SEARCH_REQUEST_SCHEMA))
                })
            });
            if !ok {
                return Err(ScimError::invalid_syntax(format!(
                    "a SearchRequest must list the schema {SEARCH_REQUEST_SCHEMA}"
                )));
            }
        }
        let mut p = ListParams::default();
        for (key, value) in obj {
            let slot = match key.to_ascii_lowercase().as_str() {
                "schemas" => continue,
                "filter" => &mut p.filter,
                "sortby" => &mut p.sort_by,
                "sortorder" => &mut p.sort_order,
                "startindex" => &mut p.start_index,
                "count" => &mut p.count,
                "cursor" => &mut p.cursor,
                "attributes" => &mut p.attributes,
                "excludedattributes" => &mut p.excluded_attributes,
                _ => {
                    return Err(ScimError::invalid_syntax(format!(
                        "unknown SearchRequest parameter {key:?}"
                    )));
                }
            };
            *slot = match value {
                Value::Null => None,
                Value::String(s) => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                Value::Array(items) => {
                    let mut names = Vec::with_capacity(items.len());
                    for item in items {
                        names.push(item.as_str().ok_or_else(|| {
                            ScimError::invalid_syntax(format!(
                                "SearchRequest {key} must hold strings"
                            ))
                        })?);
                    }
                    Some(names.join(","))
                }
                _ => {
                    return Err(ScimError::invalid_syntax(format!(
                        "SearchRequest {key} has an invalid type"
                    )));
                }
            };
        }
        Ok(p)
    }
}

/// Projection parameters of a request that returns one resource.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProjectionParams<'a> {
    /// `attributes`, comma-separated.
    pub attributes: Option<&'a str>,
    /// `excludedAttributes`, comma-separated.
    pub excluded_attributes: Option<&'a str>,
}

/// One resource as a response: its projected representation and what the headers need.
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceResponse {
    /// The resource id.
    pub id: String,
    /// The representation, after projection.
    pub body: Value,
    /// The version (`ETag`).
    pub version: Version,
    /// The absolute URL of the resource (`Location`).
    pub location: String,
}

/// Which write a hook stage sees (the hooks' [`Operation`]).
pub use crate::hooks::Operation as WriteKind;

/// The SCIM operations of one source, over its backend. Cheap to clone.
#[derive(Clone)]
pub struct Service {
    source: String,
    backend: Arc<dyn Backend>,
    registry: Arc<SchemaRegistry>,
    paging: PagingConfig,
    hooks: HookPipeline,
    request: RequestInfo,
    rules: Rules,
    fired: Arc<Fired>,
}

impl fmt::Debug for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Service")
            .field("source", &self.source)
            .field("backend", &self.backend)
            .field("paging", &self.paging)
            .field("hooks", &self.hooks)
            .field("rules", &self.rules)
            .finish_non_exhaustive()
    }
}

impl Service {
    /// A service for `source` over `backend`. The maximum page size is lowered to what the
    /// backend allows (`Capabilities::max_results`).
    pub fn new(
        source: impl Into<String>,
        backend: Arc<dyn Backend>,
        registry: Arc<SchemaRegistry>,
        mut paging: PagingConfig,
    ) -> Self {
        let caps = backend.capabilities();
        paging.max_page_size = paging.max_page_size.min(caps.max_results).max(1);
        paging.default_page_size = paging.default_page_size.min(paging.max_page_size);
        Service {
            source: source.into(),
            backend,
            registry,
            paging,
            hooks: HookPipeline::default(),
            request: RequestInfo::default(),
            rules: Rules::default(),
            fired: Arc::new(Fired::new()),
        }
    }

    /// The same service with the source's identity-provider tolerance rules (see
    /// [`crate::compat`]); [`Rules::default`] without this call.
    pub fn with_rules(mut self, rules: Rules) -> Self {
        self.rules = rules;
        self
    }

    /// The tolerance rules this source enables.
    pub fn rules(&self) -> Rules {
        self.rules
    }

    /// The rules that fired in the requests this service handled: per request when the
    /// service came from [`Service::for_request`], which starts an empty collector. The caller
    /// logs and counts them ([`Fired::take`]).
    pub fn fired(&self) -> &Fired {
        &self.fired
    }

    /// Who sent the request this service handles (see [`Service::for_request`]).
    pub fn request(&self) -> &RequestInfo {
        &self.request
    }

    /// The same service with `hooks` around every write.
    pub fn with_hooks(mut self, hooks: HookPipeline) -> Self {
        self.hooks = hooks;
        self
    }

    /// The hook pipeline.
    pub fn hooks(&self) -> &HookPipeline {
        &self.hooks
    }

    /// A copy of the service for one request: hooks see who sent it (token name, request id),
    /// and the rules that fire are collected for this request alone ([`Service::fired`]).
    pub fn for_request(&self, request: RequestInfo) -> Service {
        let mut s = self.clone();
        s.request = request;
        s.fired = Arc::new(Fired::new());
        s
    }

    /// The source (tenant) name.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The source's schema registry.
    pub fn registry(&self) -> &Arc<SchemaRegistry> {
        &self.registry
    }

    /// The backend.
    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.backend
    }

    /// The paging limits (the maximum page size already bounded by the backend).
    pub fn paging(&self) -> &PagingConfig {
        &self.paging
    }

    /// Whether RFC 9865 cursor paging is available (the backend supports it and a cursor key
    /// is configured).
    pub fn cursor_paging(&self) -> bool {
        self.backend.capabilities().cursor_paging && !self.paging.cursor_key.is_empty()
    }

    fn rt(&self, kind: ResourceKind) -> &ResourceTypeDef {
        self.registry.resource_type(kind)
    }

    /// POST: creates a resource from a client body.
    pub async fn create(
        &self,
        base: &str,
        kind: ResourceKind,
        body: &Value,
        projection: ProjectionParams<'_>,
    ) -> Result<ResourceResponse, ScimError> {
        let rt = self.rt(kind);
        let projection =
            self.projection(rt, projection.attributes, projection.excluded_attributes)?;
        let cx = self.hook_context(kind, Operation::Create, None);
        let attrs = self
            .before_write(&cx, rt, body, WriteMode::Create, None)
            .await?;
        let watch = self.hooks.watch(cx, None, None);
        let created = match &watch {
            Some(w) if w.stages() => w.keep(
                self.backend
                    .create_staged(&self.source, kind, attrs, w)
                    .await?,
            ),
            _ => self.backend.create(&self.source, kind, attrs).await?,
        };
        if let Some(w) = watch {
            w.finish(Some(&created)).await;
        }
        Ok(self.respond(base, &created, &projection))
    }

    /// GET by id. `load` follows the projection, so excluded members are never read.
    pub async fn get(
        &self,
        base: &str,
        kind: ResourceKind,
        id: &str,
        projection: ProjectionParams<'_>,
    ) -> Result<ResourceResponse, ScimError> {
        let rt = self.rt(kind);
        let projection =
            self.projection(rt, projection.attributes, projection.excluded_attributes)?;
        let resource = self
            .backend
            .get(&self.source, kind, id, projection.load())
            .await?;
        Ok(self.respond(base, &resource, &projection))
    }

    /// `scimd import`: one resource of a migration file, validated like a POST body, keeping
    /// the `id` it brings (the backend assigns one when it has none). The resource type comes from its core
    /// schema URN in `schemas`. No hooks run: an import moves data, it does not provision.
    pub fn prepare_import(&self, body: &Value) -> Result<(ResourceKind, Imported), ScimError> {
        let kind = body
            .get("schemas")
            .and_then(Value::as_array)
            .and_then(|urns| {
                ResourceKind::ALL.into_iter().find(|k| {
                    urns.iter().any(|u| {
                        u.as_str()
                            .is_some_and(|u| u.eq_ignore_ascii_case(k.core_schema()))
                    })
                })
            })
            .ok_or_else(|| {
                ScimError::invalid_syntax("schemas names neither the User nor the Group schema")
            })?;
        let id = match body.get("id") {
            None | Some(Value::Null) => None,
            Some(Value::String(id)) if valid_import_id(id) => Some(id.clone()),
            Some(_) => {
                return Err(ScimError::invalid_value(
                    "id must be a string of 1 to 255 characters without '/' or control characters",
                ));
            }
        };
        let attrs = normalize::prepare_with(
            self.rt(kind),
            body,
            WriteMode::Create,
            &self.rules,
            &self.fired,
        )?;
        Ok((kind, Imported { id, attrs }))
    }

    /// `scimd import`: stores resources prepared by [`Service::prepare_import`], all or none.
    pub async fn import(&self, kind: ResourceKind, batch: Vec<Imported>) -> Result<(), ScimError> {
        Ok(self.backend.import(&self.source, kind, batch).await?)
    }

    /// The current version of a resource, reading nothing else.
    pub async fn version(&self, kind: ResourceKind, id: &str) -> Result<Version, ScimError> {
        Ok(self
            .backend
            .get(&self.source, kind, id, Load::NONE)
            .await?
            .meta
            .version)
    }

    /// PUT: replaces every client-writable attribute.
    ///
    /// The current state is read first, so immutable attributes can be checked against it
    /// (`WriteMode::Replace`). The write then carries the version it was prepared from: a
    /// concurrent change makes it fail, and without `If-Match` the whole read-prepare-write is
    /// retried, so the result never mixes two writers' states.
    pub async fn replace(
        &self,
        base: &str,
        kind: ResourceKind,
        id: &str,
        body: &Value,
        precondition: &Precondition,
        projection: ProjectionParams<'_>,
    ) -> Result<ResourceResponse, ScimError> {
        let rt = self.rt(kind);
        let projection =
            self.projection(rt, projection.attributes, projection.excluded_attributes)?;
        let cx = self.hook_context(kind, Operation::Replace, Some(id));
        // Members and groups are readWrite/readOnly, never immutable: no need to load them,
        // unless outbox or react hooks are to see the whole old state.
        let load = if self.hooks.watches(kind, Operation::Replace) {
            Load::ALL
        } else {
            Load::NONE
        };
        let mut attempts = 0;
        loop {
            let old = self.current(kind, id, load, precondition).await?;
            let attrs = self
                .before_write(&cx, rt, body, WriteMode::Replace(&old), Some(&old))
                .await?;
            match self.replace_pinned(&cx, id, old, attrs, None).await {
                Ok(updated) => return Ok(self.respond(base, &updated, &projection)),
                Err(BackendError::VersionMismatch)
                    if !matches!(precondition, Precondition::Tags(_))
                        && attempts < REPLACE_RETRIES =>
                {
                    attempts += 1;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// PATCH: applies a PatchOp body atomically (RFC 7644 §3.5.2).
    pub async fn patch(
        &self,
        base: &str,
        kind: ResourceKind,
        id: &str,
        body: &Value,
        precondition: &Precondition,
        projection: ProjectionParams<'_>,
    ) -> Result<ResourceResponse, ScimError> {
        let rt = self.rt(kind);
        let projection =
            self.projection(rt, projection.attributes, projection.excluded_attributes)?;
        let patch =
            PatchRequest::parse_with(body, self.registry.clone(), kind, &self.rules, &self.fired)?;
        let shapes = self.hooks.wants(Phase::Map, kind, Operation::Patch)
            || self.hooks.wants(Phase::Decide, kind, Operation::Patch);
        if shapes {
            return self
                .patch_through_hooks(base, kind, id, body, &patch, precondition, &projection)
                .await;
        }
        if !self.hooks.watches(kind, Operation::Patch) {
            let expected = self.expected_version(kind, id, precondition).await?;
            // The PATCH engine validates inside the backend's compare-and-swap.
            let patched = self
                .backend
                .patch(&self.source, kind, id, &patch, expected, projection.load())
                .await?;
            return Ok(self.respond(base, &patched, &projection));
        }
        // Outbox and react hooks only: the backend still patches (membership deltas), pinned
        // to the state read as `old`, so the hooks see exactly the state the patch replaced.
        let cx = self.hook_context(kind, Operation::Patch, Some(id));
        let mut attempts = 0;
        loop {
            let old = self.current(kind, id, Load::ALL, precondition).await?;
            let version = old.meta.version;
            let watch = self.hooks.watch(cx.clone(), Some(old), Some(body));
            let written = match &watch {
                Some(w) if w.stages() => self
                    .backend
                    .patch_staged(&self.source, kind, id, &patch, Some(version), Load::ALL, w)
                    .await
                    .map(|s| w.keep(s)),
                _ => {
                    self.backend
                        .patch(&self.source, kind, id, &patch, Some(version), Load::ALL)
                        .await
                }
            };
            match written {
                Ok(patched) => {
                    if patched.meta.version != version
                        && let Some(w) = watch
                    {
                        w.finish(Some(&patched)).await;
                    }
                    return Ok(self.respond(base, &patched, &projection));
                }
                Err(BackendError::VersionMismatch) if attempts < PATCH_RETRIES => attempts += 1,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// PATCH when map or decide hooks take part: read, apply the patch in the core, run the
    /// hooks on the patched state, validate, and replace with a compare-and-swap on the version
    /// read (retried when a concurrent write wins; the precondition is checked on every read).
    #[allow(clippy::too_many_arguments)]
    async fn patch_through_hooks(
        &self,
        base: &str,
        kind: ResourceKind,
        id: &str,
        body: &Value,
        patch: &PatchRequest,
        precondition: &Precondition,
        projection: &Projection,
    ) -> Result<ResourceResponse, ScimError> {
        let rt = self.rt(kind);
        let cx = self.hook_context(kind, Operation::Patch, Some(id));
        let mut attempts = 0;
        loop {
            let current = self.current(kind, id, Load::ALL, precondition).await?;
            let outcome = patch.apply(&current)?;
            if !outcome.changed {
                return Ok(self.respond(base, &current, projection));
            }
            let mode = WriteMode::Replace(&current);
            let mut attrs = outcome.attrs;
            if self.hooks.wants(Phase::Map, kind, Operation::Patch) {
                let mapped = self.hooks.map(&cx, Some(&current), attrs).await?;
                attrs = self.revalidate(rt, mapped, mode)?;
            }
            let attrs = self.decide(&cx, rt, mode, Some(&current), attrs).await?;
            match self
                .replace_pinned(&cx, id, current, attrs, Some(body))
                .await
            {
                Ok(updated) => return Ok(self.respond(base, &updated, projection)),
                Err(BackendError::VersionMismatch) if attempts < PATCH_RETRIES => attempts += 1,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// DELETE.
    pub async fn delete(
        &self,
        kind: ResourceKind,
        id: &str,
        precondition: &Precondition,
    ) -> Result<(), ScimError> {
        let decide = self.hooks.wants(Phase::Decide, kind, Operation::Delete);
        let watched = self.hooks.watches(kind, Operation::Delete);
        if !decide && !watched {
            let expected = self.expected_version(kind, id, precondition).await?;
            self.backend
                .delete(&self.source, kind, id, expected)
                .await?;
            return Ok(());
        }
        // Hooks decide on (and react to) the state read, so the delete is pinned to it.
        let cx = self.hook_context(kind, Operation::Delete, Some(id));
        let load = if watched { Load::ALL } else { Load::NONE };
        let mut attempts = 0;
        loop {
            let old = self.current(kind, id, load, precondition).await?;
            if decide {
                self.hooks.decide(&cx, Some(&old), None).await?;
            }
            let version = old.meta.version;
            let watch = self.hooks.watch(cx.clone(), Some(old), None);
            let written = match &watch {
                Some(w) if w.stages() => self
                    .backend
                    .delete_staged(&self.source, kind, id, Some(version), w)
                    .await
                    .map(|s| w.keep(s)),
                _ => {
                    self.backend
                        .delete(&self.source, kind, id, Some(version))
                        .await
                }
            };
            match written {
                Ok(()) => {
                    if let Some(w) = watch {
                        w.finish(None).await;
                    }
                    return Ok(());
                }
                Err(BackendError::VersionMismatch) if attempts < REPLACE_RETRIES => attempts += 1,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// The state a write is pinned to: the resource as stored now, which must satisfy the
    /// request's `If-Match`.
    async fn current(
        &self,
        kind: ResourceKind,
        id: &str,
        load: Load,
        precondition: &Precondition,
    ) -> Result<Resource, ScimError> {
        let current = self.backend.get(&self.source, kind, id, load).await?;
        check_precondition(precondition, current.meta.version)?;
        Ok(current)
    }

    /// The write of a PUT, or of a PATCH that map or decide hooks took part in: `attrs` replace
    /// the resource, pinned to the version of `old`, carried through the outbox and react hooks
    /// that watch it (`patch` is the PatchOp body they see for a PATCH). A lost race is the
    /// caller's to retry.
    async fn replace_pinned(
        &self,
        cx: &HookContext,
        id: &str,
        old: Resource,
        attrs: Map<String, Value>,
        patch: Option<&Value>,
    ) -> Result<Resource, BackendError> {
        let (kind, version) = (cx.kind, Some(old.meta.version));
        let watch = self.hooks.watch(cx.clone(), Some(old), patch);
        let updated = match &watch {
            Some(w) if w.stages() => w.keep(
                self.backend
                    .replace_staged(&self.source, kind, id, attrs, version, w)
                    .await?,
            ),
            _ => {
                self.backend
                    .replace(&self.source, kind, id, attrs, version)
                    .await?
            }
        };
        if let Some(w) = watch {
            w.finish(Some(&updated)).await;
        }
        Ok(updated)
    }

    /// Turns a precondition into the version a backend write must expect. `*` and tag lists
    /// need the current version (the resource must exist; one of several tags must match).
    async fn expected_version(
        &self,
        kind: ResourceKind,
        id: &str,
        precondition: &Precondition,
    ) -> Result<Option<Version>, ScimError> {
        match precondition {
            Precondition::None => Ok(None),
            // `*` only asks that the resource exist; the write itself may then race freely.
            Precondition::Any => self.version(kind, id).await.map(|_| None),
            Precondition::Tags(tags) if tags.len() == 1 => Ok(tags.first().copied()),
            Precondition::Tags(_) => {
                let current = self.version(kind, id).await?;
                check_precondition(precondition, current)?;
                Ok(Some(current))
            }
        }
    }

    /// GET on `/Users` or `/Groups`, or POST `.search` on them: a ListResponse.
    pub async fn list(
        &self,
        base: &str,
        kind: ResourceKind,
        params: &ListParams,
    ) -> Result<Value, ScimError> {
        let rt = self.rt(kind);
        let projection = self.projection(
            rt,
            params.attributes.as_deref(),
            params.excluded_attributes.as_deref(),
        )?;
        let filter = match &params.filter {
            Some(f) if !f.trim().is_empty() => Some(self.parse_filter(f)?.resolve(rt)?),
            _ => None,
        };
        let sort = parse_sort(rt, params.sort_by.as_deref(), params.sort_order.as_deref())?;
        let fingerprint = QueryFingerprint::new(&self.source, kind, filter.as_ref(), sort.as_ref());
        let page = self.paging.page(
            PageParams {
                start_index: params.start_index.as_deref(),
                count: params.count.as_deref(),
                cursor: params.cursor.as_deref(),
            },
            &fingerprint,
            time::OffsetDateTime::now_utc(),
        )?;
        if matches!(page, Page::Cursor { .. }) && !self.cursor_paging() {
            return Err(ScimError::invalid_value(
                "cursor paging is not supported by this source; use startIndex and count",
            ));
        }
        let count = page.count();
        let index_start = match &page {
            Page::Index { start_index, .. } => Some(*start_index),
            Page::Cursor { .. } => None,
        };
        let query = Query {
            filter,
            sort,
            page,
            load: projection.load(),
        };
        let result = if count == 0 && index_start.is_some() {
            self.count_only(kind, query).await?
        } else {
            self.backend.query(&self.source, kind, &query).await?
        };
        let resources = result
            .resources
            .iter()
            .map(|r| self.render(base, r, &projection))
            .collect();
        let listing = match index_start {
            Some(start_index) => ListPaging::Index { start_index, count },
            None => {
                let codec = self.paging.codec();
                ListPaging::Cursor {
                    next: result.next.as_ref().map(|p| codec.encode(p, &fingerprint)),
                    previous: result
                        .previous
                        .as_ref()
                        .map(|p| codec.encode(p, &fingerprint)),
                }
            }
        };
        Ok(paging::list_response(
            result.total_results,
            resources,
            listing,
        ))
    }

    /// POST `/.search` at the root: Users and Groups together (RFC 7644 §3.4.3). A filter is
    /// resolved against each type; a type whose schema lacks an attribute the filter names
    /// contributes no results. Unsorted results list users before groups.
    pub async fn search_all(&self, base: &str, params: &ListParams) -> Result<Value, ScimError> {
        if params.cursor.is_some() {
            return Err(ScimError::invalid_value(
                "cursor paging is not available for searches across resource types",
            ));
        }
        let parsed = match &params.filter {
            Some(f) if !f.trim().is_empty() => Some(self.parse_filter(f)?),
            _ => None,
        };
        let (start_index, count) = match self
            .paging
            .index_page(params.start_index.as_deref(), params.count.as_deref())?
        {
            Page::Index { start_index, count } => (start_index, count),
            Page::Cursor { count, .. } => (1, count),
        };
        // Per type: the resolved filter (None = this type cannot match), projection and sort.
        let mut plans = Vec::new();
        let mut first_error = None;
        let mut sort_error = None;
        for kind in ResourceKind::ALL {
            let rt = self.rt(kind);
            let filter = match &parsed {
                None => None,
                Some(f) => match f.resolve(rt) {
                    Ok(f) => Some(f),
                    Err(e) => {
                        first_error.get_or_insert(e);
                        continue;
                    }
                },
            };
            // `attributes` may name attributes of only one type; unknown names are errors only
            // when no type knows them, which the projection of each type reports the same way.
            let projection = self.projection(
                rt,
                params.attributes.as_deref(),
                params.excluded_attributes.as_deref(),
            )?;
            // A sort attribute only one type has leaves the other type's resources without a
            // value: they sort last, as RFC 7644 §3.4.2.3 orders missing values.
            let sort = match parse_sort(rt, params.sort_by.as_deref(), params.sort_order.as_deref())
            {
                Ok(s) => s,
                Err(e) => {
                    sort_error.get_or_insert(e);
                    None
                }
            };
            plans.push((kind, filter, projection, sort));
        }
        if plans.is_empty() {
            return Err(first_error.unwrap_or_else(|| {
                ScimError::invalid_filter("the filter matches no resource type")
            }));
        }
        if let Some(e) = sort_error
            && plans.iter().all(|p| p.3.is_none())
        {
            return Err(e);
        }
        let sorted = plans.iter().any(|p| p.3.is_some());
        let mut total = 0;
        let mut rendered = Vec::new();
        if count == 0 {
            for (kind, filter, projection, sort) in plans {
                let q = Query {
                    filter,
                    sort,
                    page: Page::Index {
                        start_index: 1,
                        count: 0,
                    },
                    load: projection.load(),
                };
                total += self.count_only(kind, q).await?.total_results;
            }
        } else if !sorted {
            // Concatenation: skip `start_index - 1` results across the types in order.
            let mut skip = start_index - 1;
            let mut remaining = count;
            for (kind, filter, projection, sort) in plans {
                let q = Query {
                    filter,
                    sort,
                    page: Page::Index {
                        start_index: skip + 1,
                        count: remaining,
                    },
                    load: projection.load(),
                };
                let r = self.backend.query(&self.source, kind, &q).await?;
                total += r.total_results;
                skip = skip.saturating_sub(r.total_results);
                for res in r.resources.iter().take(remaining as usize) {
                    rendered.push(self.render(base, res, &projection));
                }
                remaining -= remaining.min(r.resources.len() as u64);
            }
        } else {
            let window = start_index - 1 + count;
            if window > MAX_MERGE_WINDOW {
                return Err(ScimError::typed(
                    crate::error::ScimType::TooMany,
                    format!(
                        "sorted searches across resource types are limited to the first {MAX_MERGE_WINDOW} results"
                    ),
                ));
            }
            let mut merged: Vec<(Option<Value>, Option<&AttributeDef>, Value)> = Vec::new();
            for (kind, filter, projection, sort) in &plans {
                let rt = self.rt(*kind);
                let def = sort
                    .as_ref()
                    .and_then(|s| rt.resolve(&s.path))
                    .map(|r| r.sub.unwrap_or(r.attr));
                let q = Query {
                    filter: filter.clone(),
                    sort: sort.clone(),
                    page: Page::Index {
                        start_index: 1,
                        count: window,
                    },
                    load: projection.load(),
                };
                let r = self.backend.query(&self.source, *kind, &q).await?;
                total += r.total_results;
                for res in &r.resources {
                    let key = sort.as_ref().and_then(|s| sort_value(res, &s.path));
                    merged.push((key, def, self.render(base, res, projection)));
                }
            }
            let descending = plans
                .iter()
                .find_map(|p| p.3.as_ref().map(|s| s.descending))
                .unwrap_or(false);
            // Stable sort: equal keys keep users-then-groups and each backend's id order.
            merged.sort_by(|a, b| match (&a.0, &b.0) {
                (None, None) => Ordering::Equal,
                (None, Some(_)) => Ordering::Greater,
                (Some(_), None) => Ordering::Less,
                (Some(x), Some(y)) => {
                    let o =
                        a.1.and_then(|d| compare_values(d, x, y))
                            .unwrap_or(Ordering::Equal);
                    if descending { o.reverse() } else { o }
                }
            });
            rendered = merged
                .into_iter()
                .skip((start_index - 1) as usize)
                .take(count as usize)
                .map(|(_, _, v)| v)
                .collect();
        }
        Ok(paging::list_response(
            total,
            rendered,
            ListPaging::Index { start_index, count },
        ))
    }

    /// Runs a query for its total only (`count=0`), loading no relations.
    async fn count_only(
        &self,
        kind: ResourceKind,
        mut query: Query,
    ) -> Result<QueryPage, ScimError> {
        query.page = Page::Index {
            start_index: 1,
            count: 0,
        };
        query.load = Load::NONE;
        let mut r = self.backend.query(&self.source, kind, &query).await?;
        r.resources.clear();
        Ok(r)
    }

    fn respond(
        &self,
        base: &str,
        resource: &Resource,
        projection: &Projection,
    ) -> ResourceResponse {
        ResourceResponse {
            id: resource.id.clone(),
            body: self.render(base, resource, projection),
            version: resource.meta.version,
            location: resource.location(base),
        }
    }

    /// The full representation with `$ref`s, then the projection.
    fn render(&self, base: &str, resource: &Resource, projection: &Projection) -> Value {
        let mut json = resource.to_json(&self.registry, base);
        add_refs(&mut json, resource.kind, base);
        projection.apply(self.rt(resource.kind), json)
    }

    /// Parses a filter; under `unquoted_filter_values`, a filter that does not parse as
    /// RFC 7644 writes it is tried again with bare words as string values.
    fn parse_filter(&self, text: &str) -> Result<Filter, ScimError> {
        compat::parse_filter(&self.rules, &self.fired, text)
    }

    /// The projection of a request; under `attribute_filters`, value filters in the lists
    /// are dropped (the response then holds every value of the attribute).
    fn projection(
        &self,
        rt: &ResourceTypeDef,
        attributes: Option<&str>,
        excluded: Option<&str>,
    ) -> Result<Projection, ScimError> {
        let filtered = self.rules.enabled(Rule::AttributeFilters);
        let strip = |l: Option<&str>| l.filter(|_| filtered).and_then(without_value_filters);
        let (a, e) = (strip(attributes), strip(excluded));
        if a.is_some() || e.is_some() {
            self.fired.fire(Rule::AttributeFilters);
        }
        Projection::parse(rt, a.as_deref().or(attributes), e.as_deref().or(excluded))
    }

    /// Prepares attributes a hook produced as if a client had sent them: names canonicalized,
    /// types checked, readOnly values dropped, required and immutable attributes checked.
    fn revalidate(
        &self,
        rt: &ResourceTypeDef,
        mut attrs: Map<String, Value>,
        mode: WriteMode<'_>,
    ) -> Result<Map<String, Value>, ScimError> {
        attrs.insert(
            "schemas".into(),
            Value::Array(vec![Value::String(rt.schema.id.clone())]),
        );
        normalize::prepare_with(rt, &Value::Object(attrs), mode, &self.rules, &self.fired)
    }

    fn hook_context(
        &self,
        kind: ResourceKind,
        operation: Operation,
        id: Option<&str>,
    ) -> HookContext {
        HookContext::new(
            self.source.clone(),
            kind,
            operation,
            id.map(str::to_string),
            &self.request,
        )
    }

    /// The stages before a create or replace reaches the backend: canonicalize the body, run
    /// the map hooks on it, validate everything, then run the decide hooks (re-validating what
    /// they changed). Without map hooks the body is prepared in one step, as without hooks.
    async fn before_write(
        &self,
        cx: &HookContext,
        rt: &ResourceTypeDef,
        body: &Value,
        mode: WriteMode<'_>,
        old: Option<&Resource>,
    ) -> Result<Map<String, Value>, ScimError> {
        let attrs = if self.hooks.wants(Phase::Map, cx.kind, cx.operation) {
            let raw = normalize::canonicalize_with(rt, body, mode, &self.rules, &self.fired)?;
            let mapped = self.hooks.map(cx, old, raw).await?;
            self.revalidate(rt, mapped, mode)?
        } else {
            normalize::prepare_with(rt, body, mode, &self.rules, &self.fired)?
        };
        self.decide(cx, rt, mode, old, attrs).await
    }

    /// The decide hooks on validated attributes; a veto is the request's answer.
    async fn decide(
        &self,
        cx: &HookContext,
        rt: &ResourceTypeDef,
        mode: WriteMode<'_>,
        old: Option<&Resource>,
        attrs: Map<String, Value>,
    ) -> Result<Map<String, Value>, ScimError> {
        if !self.hooks.wants(Phase::Decide, cx.kind, cx.operation) {
            return Ok(attrs);
        }
        let before = attrs.clone();
        let decided = self
            .hooks
            .decide(cx, old, Some(attrs))
            .await?
            .unwrap_or_default();
        if decided == before {
            Ok(decided)
        } else {
            self.revalidate(rt, decided, mode)
        }
    }
}

/// Whether an imported `id` can be used as it is: it becomes a URL path segment.
fn valid_import_id(id: &str) -> bool {
    (1..=255).contains(&id.chars().count())
        && !id.trim().is_empty()
        && !id.chars().any(|c| c == '/' || c.is_control())
}

/// `attributes` / `excludedAttributes` with the value filters taken out of each entry
/// (`emails[type eq "work"]` → `emails`, `emails[type eq "work"].value` → `emails.value`);
/// `None` when no entry has one.
fn without_value_filters(list: &str) -> Option<String> {
    if !list.contains('[') {
        return None;
    }
    let mut out = String::with_capacity(list.len());
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for c in list.chars() {
        if depth > 0 {
            if in_string {
                match (escaped, c) {
                    (true, _) => escaped = false,
                    (false, '\\') => escaped = true,
                    (false, '"') => in_string = false,
                    _ => {}
                }
            } else {
                match c {
                    '"' => in_string = true,
                    '[' => depth += 1,
                    ']' => depth -= 1,
                    _ => {}
                }
            }
            continue;
        }
        if c == '[' {
            depth = 1;
        } else {
            out.push(c);
        }
    }
    Some(out)
}

fn check_precondition(precondition: &Precondition, current: Version) -> Result<(), ScimError> {
    match precondition {
        Precondition::Tags(tags) if !tags.contains(&current) => {
            Err(ScimError::precondition_failed(format!(
                "If-Match does not match the current version {}",
                current.etag()
            )))
        }
        _ => Ok(()),
    }
}

/// Adds `$ref` URLs derived from the base URL: group `members` (by member `type`), user
/// `groups` and the enterprise `manager`.
pub fn add_refs(json: &mut Value, kind: ResourceKind, base: &str) {
    let Some(obj) = json.as_object_mut() else {
        return;
    };
    let set_ref = |item: &mut Value, endpoint: &str| {
        if let Some(m) = item.as_object_mut()
            && let Some(id) = m.get("value").and_then(Value::as_str)
        {
            let url = format!("{base}/{endpoint}/{id}");
            m.insert("$ref".into(), Value::String(url));
        }
    };
    match kind {
        ResourceKind::Group => {
            if let Some(Value::Array(members)) = obj.get_mut("members") {
                for m in members {
                    let endpoint = match m.get("type").and_then(Value::as_str) {
                        Some(t) if t.eq_ignore_ascii_case("Group") => "Groups",
                        Some(t) if t.eq_ignore_ascii_case("User") => "Users",
                        _ => continue,
                    };
                    set_ref(m, endpoint);
                }
            }
        }
        ResourceKind::User => {
            if let Some(Value::Array(groups)) = obj.get_mut("groups") {
                for g in groups {
                    set_ref(g, "Groups");
                }
            }
            if let Some(manager) = obj
                .get_mut(ENTERPRISE_USER)
                .and_then(|e| e.get_mut("manager"))
            {
                set_ref(manager, "Users");
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn if_match_parses_star_lists_and_foreign_tags() {
        assert_eq!(Precondition::if_match(None), Precondition::None);
        assert_eq!(Precondition::if_match(Some(" * ")), Precondition::Any);
        assert_eq!(
            Precondition::if_match(Some("W/\"3\", \"4\", W/\"x\"")),
            Precondition::Tags(vec![Version(3), Version(4)])
        );
        assert_eq!(
            Precondition::if_match(Some("\"abc\"")),
            Precondition::Tags(vec![])
        );
    }

    #[test]
    fn stale_or_foreign_if_match_fails_with_412() {
        let e = check_precondition(&Precondition::Tags(vec![Version(1)]), Version(2));
        assert_eq!(e.map_err(|e| e.status), Err(412));
        let e = check_precondition(&Precondition::Tags(vec![]), Version(2));
        assert_eq!(e.map_err(|e| e.status), Err(412));
        assert!(check_precondition(&Precondition::Any, Version(2)).is_ok());
    }

    #[test]
    fn if_none_match_matches_star_and_current_tag_only() {
        assert!(if_none_match_matches("*", Version(5)));
        assert!(if_none_match_matches("W/\"4\", W/\"5\"", Version(5)));
        assert!(!if_none_match_matches("W/\"4\"", Version(5)));
    }

    #[test]
    fn search_request_reads_arrays_and_numbers() {
        let p = ListParams::from_search_request(&json!({
            "schemas": [SEARCH_REQUEST_SCHEMA],
            "attributes": ["userName", "emails"],
            "filter": "userName sw \"a\"",
            "startIndex": 3,
            "count": 10,
        }))
        .unwrap();
        assert_eq!(p.attributes.as_deref(), Some("userName,emails"));
        assert_eq!(p.start_index.as_deref(), Some("3"));
        assert_eq!(p.count.as_deref(), Some("10"));
        assert_eq!(p.filter.as_deref(), Some("userName sw \"a\""));
    }

    #[test]
    fn search_request_rejects_unknown_keys_and_wrong_schema() {
        assert!(ListParams::from_search_request(&json!({"bogus": 1})).is_err());
        assert!(
            ListParams::from_search_request(&json!({"schemas": ["urn:x"], "count": 1})).is_err()
        );
        assert!(ListParams::from_search_request(&json!({"count": {"a": 1}})).is_err());
    }

    #[test]
    fn value_filters_are_taken_out_of_attribute_lists() {
        assert_eq!(without_value_filters("userName,emails"), None);
        assert_eq!(
            without_value_filters("emails[type eq \"work\"]").as_deref(),
            Some("emails")
        );
        assert_eq!(
            without_value_filters("userName,emails[value eq \"a]b,c\"].value,name").as_deref(),
            Some("userName,emails.value,name")
        );
    }

    #[test]
    fn refs_follow_member_type_and_base_url() {
        let mut g = json!({"members": [
            {"value": "u1", "type": "User"},
            {"value": "g1", "type": "Group"},
            {"value": "x"}
        ]});
        add_refs(&mut g, ResourceKind::Group, "https://h/scim/s/v2");
        assert_eq!(g["members"][0]["$ref"], "https://h/scim/s/v2/Users/u1");
        assert_eq!(g["members"][1]["$ref"], "https://h/scim/s/v2/Groups/g1");
        assert!(g["members"][2].get("$ref").is_none());
        let mut u = json!({
            "groups": [{"value": "g1"}],
            ENTERPRISE_USER: {"manager": {"value": "m1"}}
        });
        add_refs(&mut u, ResourceKind::User, "https://h/b");
        assert_eq!(u["groups"][0]["$ref"], "https://h/b/Groups/g1");
        assert_eq!(
            u[ENTERPRISE_USER]["manager"]["$ref"],
            "https://h/b/Users/m1"
        );
    }
}
