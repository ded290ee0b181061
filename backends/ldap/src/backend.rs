//! [`LdapBackend`]: the [`Backend`] implementation.

use crate::config::{ConfigError, DeleteConfig, LdapConfig, PasswordConfig, SearchScope};
use crate::conn::{Ctx, Pool, is_connection_error, map_error, rc};
use crate::filter::{self, Context, LFilter, escape_value, id_filter, is_canonical_id};
use crate::mapping::{Entry, Mapping, ObjectMap, active_attr, normalize_dn, write_active};
use crate::meta::{derived_meta, entry_id};
use async_trait::async_trait;
use ldap3::adapters::{Adapter, EntriesOnly, PagedResults};
use ldap3::controls::{Assertion, RawControl};
use ldap3::{Ldap, LdapError, Mod, Scope, SearchEntry};
use scimd_core::filter::matches;
use scimd_core::paging::paginate;
use scimd_core::patch::{Member, MembershipDelta};
use scimd_core::query::{Load, Query, QueryPage};
use scimd_core::resource::{Meta, Resource, Version, format_time, now, parse_time};
use scimd_core::schema::{ResourceKind, SchemaRegistry};
use scimd_core::{AttrPath, Backend, BackendError, Capabilities, PatchRequest};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::sync::Arc;

/// The lossless-mode auxiliary object class.
pub(crate) const AUX_CLASS: &str = "scimdObject";
/// The lossless-mode JSON attribute.
pub(crate) const JSON_ATTR: &str = "scimdJson";
/// The lossless-mode member display attribute.
pub(crate) const MEMBER_DISPLAY_ATTR: &str = "scimdMember";
/// How many ids or DNs one OR-filter resolves at a time.
const CHUNK: usize = 100;
/// How often a write that lost a race to a concurrent writer is retried when the client gave
/// no expected version.
const WRITE_RETRIES: usize = 32;

/// What lossless mode stores in `scimdJson`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Blob {
    /// The version counter.
    v: u64,
    /// `meta.created` (RFC 3339).
    c: String,
    /// `meta.lastModified` (RFC 3339).
    m: String,
    /// The SCIM attributes (without `members`, `groups` and `password`).
    #[serde(default)]
    a: Map<String, Value>,
    /// A rename in progress: the state the resource has once the entry's RDN value is `r`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    p: Option<Box<Blob>>,
    /// The RDN value `p` belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    r: Option<String>,
    /// A delete in progress: for SCIM the resource is gone. (The key cannot be a SCIM
    /// attribute name, so a substring filter finds exactly these entries.)
    #[serde(default, rename = "scimd.deleted", skip_serializing_if = "is_false")]
    deleted: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// Whether a resource is a group (whose writes never carry assertions, see `plan_group_change`).
fn entry_is_group(r: &Resource) -> bool {
    r.kind == ResourceKind::Group
}

/// The lossless copy of `attrs` (without relations and the password).
fn make_blob(attrs: &Map<String, Value>, v: u64, c: &str, m: &str) -> Blob {
    let mut a = attrs.clone();
    for k in ["password", "members", "groups"] {
        a.remove(k);
    }
    Blob {
        v,
        c: c.to_string(),
        m: m.to_string(),
        a,
        p: None,
        r: None,
        deleted: false,
    }
}

fn encode(b: &Blob) -> Result<Val, BackendError> {
    serde_json::to_vec(b).map_err(|e| BackendError::Internal(format!("cannot encode: {e}")))
}

/// The text every pending-delete copy contains.
const DELETED_MARK: &str = "\"scimd.deleted\":true";

/// The LDAP write-through backend. See the crate documentation.
pub struct LdapBackend {
    pool: Pool,
    map: Mapping,
    registry: Arc<SchemaRegistry>,
    source_registries: HashMap<String, Arc<SchemaRegistry>>,
    page_size: u32,
    max_scan: u64,
    lossless: bool,
    bases_ready: std::sync::Mutex<HashSet<String>>,
}

impl fmt::Debug for LdapBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LdapBackend")
            .field("pool", &self.pool)
            .field("lossless", &self.lossless)
            .field("users_base", &self.map.users.base_dn)
            .field("groups_base", &self.map.groups.base_dn)
            .finish_non_exhaustive()
    }
}

/// A value sent to the directory.
type Val = Vec<u8>;

fn set_of<I: IntoIterator<Item = String>>(values: I) -> HashSet<Val> {
    values.into_iter().map(String::into_bytes).collect()
}

impl LdapBackend {
    /// Builds the backend from its configuration and the schema registry the server resolves
    /// this source's filters and bodies with. Opens no connection: the first operation does,
    /// and a directory that is down only makes operations fail with `Unavailable` until it is
    /// back.
    pub fn new(config: &LdapConfig, registry: Arc<SchemaRegistry>) -> Result<Self, ConfigError> {
        let map = config.build_mapping(&registry)?;
        let pool = Pool::new(config)?;
        Ok(LdapBackend {
            pool,
            map,
            registry,
            source_registries: HashMap::new(),
            page_size: config.page_size,
            max_scan: config.max_scan,
            lossless: config.lossless,
            bases_ready: std::sync::Mutex::new(HashSet::new()),
        })
    }

    /// Uses `registry` for `source` instead of the backend-wide one (a source with its own
    /// extension schemas). The mapping itself is checked against the backend-wide registry,
    /// so mapped extension attributes must exist there too.
    pub fn with_source_schemas(
        mut self,
        source: impl Into<String>,
        registry: Arc<SchemaRegistry>,
    ) -> Self {
        self.source_registries.insert(source.into(), registry);
        self
    }

    /// The schema registry of a source.
    pub fn schemas(&self, source: &str) -> &Arc<SchemaRegistry> {
        self.source_registries.get(source).unwrap_or(&self.registry)
    }

    /// The SCIM attribute paths resources of `kind` can hold, resolved against `registry`
    /// (a source's schemas), or `None` when they can hold every attribute of it.
    ///
    /// Without lossless mode that is what the mapping stores (see the crate documentation,
    /// "Storage modes"). Lossless mode keeps everything else in its JSON copy — except a
    /// password, which only the `password` setting can write: with `password = none`, every
    /// user attribute but `password`.
    pub fn storable_paths(
        &self,
        registry: &SchemaRegistry,
        kind: ResourceKind,
    ) -> Option<Vec<AttrPath>> {
        self.map.storable_paths(self.lossless, registry, kind)
    }

    /// `registry` narrowed to what this backend can store ([`LdapBackend::storable_paths`],
    /// [`SchemaRegistry::narrowed`]): the registry a source served by this backend validates
    /// bodies, PATCH paths and filters with and lists at `/Schemas`. The same as
    /// [`LdapConfig::hosted_schemas`].
    pub fn hosted_schemas(
        &self,
        registry: &Arc<SchemaRegistry>,
    ) -> Result<Arc<SchemaRegistry>, ConfigError> {
        self.map.hosted_schemas(self.lossless, registry)
    }

    fn obj(&self, kind: ResourceKind) -> &ObjectMap {
        self.map.object(kind)
    }

    /// The base DN of a resource type in a source.
    fn base(&self, kind: ResourceKind, source: &str) -> String {
        self.obj(kind)
            .base_dn
            .replace("{source}", &ldap3::dn_escape(source))
    }

    fn scope(&self, kind: ResourceKind) -> Scope {
        match self.obj(kind).scope {
            SearchScope::One => Scope::OneLevel,
            SearchScope::Sub => Scope::Subtree,
        }
    }

    fn err(&self, e: &LdapError, ctx: Ctx<'_>) -> BackendError {
        map_error(e, ctx, self.pool.retry_after)
    }

    fn unavailable_if(&self, e: &LdapError) {
        if is_connection_error(e) {
            tracing::warn!(error = %e, "the directory connection failed");
        }
    }

    /// A handle with the operation timeout set.
    async fn ldap(&self) -> Result<Ldap, BackendError> {
        let mut l = self.pool.get().await?;
        l.with_timeout(self.pool.op_timeout);
        Ok(l)
    }

    /// The attributes read for a resource type.
    fn read_attrs(&self, kind: ResourceKind, with_members: bool) -> Vec<String> {
        let obj = self.obj(kind);
        let mut attrs = obj.read_attrs();
        let d = &self.map.dir;
        for a in [
            d.id_attr(),
            "entryCSN",
            d.version_attr(),
            &d.created_attr,
            &d.modified_attr,
        ] {
            if !attrs.iter().any(|x| x.eq_ignore_ascii_case(a)) {
                attrs.push(a.to_string());
            }
        }
        if matches!(
            self.map.dir.version,
            crate::config::VersionSource::UsnChanged
        ) && !attrs.iter().any(|x| x == "uSNChanged")
        {
            attrs.push("uSNChanged".into());
        }
        if self.lossless {
            attrs.push(JSON_ATTR.into());
        }
        if with_members && let Some(m) = &obj.member_attr {
            attrs.push(m.clone());
            if self.lossless {
                attrs.push(MEMBER_DISPLAY_ATTR.into());
            }
        }
        attrs
    }

    /// Runs a search, following simple paged results, and fails with `tooMany` beyond `limit`
    /// entries. A missing base DN yields no entries.
    async fn search(
        &self,
        base: &str,
        scope: Scope,
        filter: &str,
        attrs: &[String],
        limit: u64,
    ) -> Result<Vec<Entry>, BackendError> {
        let mut ldap = self.ldap().await?;
        let adapters: Vec<Box<dyn Adapter<'_, String, Vec<String>>>> = vec![
            Box::new(EntriesOnly::new()),
            Box::new(PagedResults::new(
                i32::try_from(self.page_size).unwrap_or(500),
            )),
        ];
        let res = ldap
            .streaming_search_with(adapters, base, scope, filter, attrs.to_vec())
            .await;
        let mut stream = match res {
            Ok(s) => s,
            Err(e) => {
                self.unavailable_if(&e);
                return Err(self.err(&e, Ctx::default()));
            }
        };
        let mut out = Vec::new();
        loop {
            match stream.next().await {
                Ok(Some(e)) => {
                    out.push(Entry::from_search(SearchEntry::construct(e)));
                    if out.len() as u64 > limit {
                        // Dropping the stream stops the paged search after this page.
                        return Err(BackendError::TooMany(format!(
                            "the query would examine more than {limit} entries; narrow the filter"
                        )));
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    self.unavailable_if(&e);
                    return Err(self.err(&e, Ctx::default()));
                }
            }
        }
        let res = stream.finish().await;
        match res.rc {
            0 => Ok(out),
            rc::NO_SUCH_OBJECT => Ok(Vec::new()),
            _ => Err(self.err(&LdapError::from(res), Ctx::default())),
        }
    }

    /// The class filter of a resource type.
    fn class_filter(&self, kind: ResourceKind) -> LFilter {
        let class = self.any_class_filter(kind);
        match self.live_filter() {
            Some(live) => LFilter::And(vec![class, live]),
            None => class,
        }
    }

    /// The class filter including entries whose delete is in progress.
    fn any_class_filter(&self, kind: ResourceKind) -> LFilter {
        LFilter::Item(format!(
            "(objectClass={})",
            escape_value(&self.obj(kind).select_class)
        ))
    }

    /// Excludes entries whose delete is in progress (lossless mode).
    fn live_filter(&self) -> Option<LFilter> {
        self.lossless
            .then(|| LFilter::Item(format!("(!({JSON_ATTR}=*{}*))", escape_value(DELETED_MARK))))
    }

    /// Reads the entry of a resource by id.
    async fn find_entry(
        &self,
        source: &str,
        kind: ResourceKind,
        id: &str,
        with_members: bool,
    ) -> Result<Entry, BackendError> {
        self.find_entry_with(source, kind, id, with_members, self.class_filter(kind))
            .await
    }

    async fn find_entry_with(
        &self,
        source: &str,
        kind: ResourceKind,
        id: &str,
        with_members: bool,
        class: LFilter,
    ) -> Result<Entry, BackendError> {
        if !is_canonical_id(id, &self.map.dir) {
            return Err(BackendError::NotFound(id.to_string()));
        }
        let f = LFilter::And(vec![class, id_filter(id, &self.map.dir)]);
        let mut entries = self
            .search(
                &self.base(kind, source),
                self.scope(kind),
                &f.render(),
                &self.read_attrs(kind, with_members),
                2,
            )
            .await?;
        match entries.len() {
            1 => Ok(entries.remove(0)),
            0 => Err(BackendError::NotFound(id.to_string())),
            _ => Err(BackendError::Internal(format!(
                "two entries carry the id {id}"
            ))),
        }
    }

    /// Resolves SCIM ids of this source (users and groups) to DNs and types.
    async fn resolve_ids(
        &self,
        source: &str,
        ids: &[String],
    ) -> Result<HashMap<String, (String, ResourceKind)>, BackendError> {
        let mut out = HashMap::new();
        let wanted: Vec<&String> = ids
            .iter()
            .filter(|id| is_canonical_id(id, &self.map.dir))
            .collect();
        if wanted.is_empty() {
            return Ok(out);
        }
        let mut bases: Vec<(String, Scope)> = Vec::new();
        for kind in ResourceKind::ALL {
            let b = (self.base(kind, source), self.scope(kind));
            if !bases.iter().any(|x| x.0.eq_ignore_ascii_case(&b.0)) {
                bases.push(b);
            }
        }
        let attrs = vec![
            self.map.dir.id_attr().to_string(),
            "objectClass".to_string(),
        ];
        for chunk in wanted.chunks(CHUNK) {
            let ids_f = LFilter::Or(
                chunk
                    .iter()
                    .map(|id| id_filter(id, &self.map.dir))
                    .collect(),
            );
            let classes = LFilter::Or(vec![
                self.class_filter(ResourceKind::User),
                self.class_filter(ResourceKind::Group),
            ]);
            let f = LFilter::And(vec![classes, ids_f]).render();
            for (base, scope) in &bases {
                for e in self.search(base, *scope, &f, &attrs, self.max_scan).await? {
                    if let Some(id) = entry_id(&self.map.dir, &e) {
                        let kind = self.kind_of(&e);
                        out.insert(id, (e.dn.clone(), kind));
                    }
                }
            }
        }
        Ok(out)
    }

    /// Whether an entry is a group or a user, by its object classes.
    fn kind_of(&self, e: &Entry) -> ResourceKind {
        let g = &self.map.groups.select_class;
        if e.values("objectClass")
            .iter()
            .any(|c| c.eq_ignore_ascii_case(g))
        {
            ResourceKind::Group
        } else {
            ResourceKind::User
        }
    }

    /// Reads entries by DN (base-scope lookups); missing DNs are left out.
    async fn lookup_dns(
        &self,
        dns: &[String],
        attrs: &[String],
    ) -> Result<HashMap<String, Entry>, BackendError> {
        let mut out = HashMap::new();
        for dn in dns {
            let key = normalize_dn(dn);
            if out.contains_key(&key) || dn.is_empty() {
                continue;
            }
            let found = self
                .search(dn, Scope::Base, "(objectClass=*)", attrs, 1)
                .await?;
            if let Some(e) = found.into_iter().next() {
                out.insert(key, e);
            }
        }
        Ok(out)
    }

    /// DN → id of the entries the reference mappings of `entries` point at.
    async fn reference_ids(
        &self,
        kind: ResourceKind,
        entries: &[Entry],
    ) -> Result<HashMap<String, String>, BackendError> {
        let obj = self.obj(kind);
        let dns: Vec<String> = entries.iter().flat_map(|e| obj.reference_dns(e)).collect();
        if dns.is_empty() {
            return Ok(HashMap::new());
        }
        let attrs = vec![self.map.dir.id_attr().to_string()];
        let found = self.lookup_dns(&dns, &attrs).await?;
        Ok(found
            .into_iter()
            .filter_map(|(k, e)| entry_id(&self.map.dir, &e).map(|id| (k, id)))
            .collect())
    }

    fn blob(&self, e: &Entry) -> Option<Blob> {
        if !self.lossless {
            return None;
        }
        e.first(JSON_ATTR)
            .and_then(|s| serde_json::from_str(s).ok())
    }

    /// What the mapped LDAP attributes would read back as if `attrs` had been written: used to
    /// tell which attributes the directory changed behind scimd's back.
    fn project(&self, kind: ResourceKind, attrs: &Map<String, Value>) -> Map<String, Value> {
        let obj = self.obj(kind);
        let identity: HashMap<String, String> = obj
            .referenced_ids(attrs)
            .into_iter()
            .map(|id| (id.clone(), id))
            .collect();
        let mut fake = Entry::default();
        if let Ok(values) = obj.to_ldap(attrs, &identity, true) {
            for (key, (_, v)) in values {
                fake.attrs.insert(key, v);
            }
        }
        if let Some(active) = &obj.active {
            let a = attrs.get("active").and_then(Value::as_bool);
            if let Some(v) = write_active(active, a, None) {
                fake.attrs
                    .insert(active_attr(active).to_ascii_lowercase(), v);
            }
        }
        let dn_ids: HashMap<String, String> = identity
            .into_keys()
            .map(|id| (normalize_dn(&id), id))
            .collect();
        obj.to_scim(&fake, &dn_ids)
    }

    /// Merges the directory's view of the mapped attributes with the lossless copy: for each
    /// mapped attribute, the copy wins while the directory still holds what scimd wrote,
    /// and the directory wins once it holds something else. Returns whether they diverged.
    fn merge(
        &self,
        kind: ResourceKind,
        from_ldap: Map<String, Value>,
        blob: &Map<String, Value>,
    ) -> (Map<String, Value>, bool) {
        let obj = self.obj(kind);
        let projected = self.project(kind, blob);
        let mut keys: Vec<(Option<String>, String)> = obj
            .attrs
            .iter()
            .map(|m| (m.scim.ext.clone(), m.scim.name.clone()))
            .collect();
        if obj.active.is_some() {
            keys.push((None, "active".into()));
        }
        keys.sort();
        keys.dedup();
        let mut out = blob.clone();
        let mut diverged = false;
        for (ext, name) in keys {
            let get = |m: &Map<String, Value>| -> Option<Value> {
                match &ext {
                    None => m.get(&name).cloned(),
                    Some(urn) => m.get(urn).and_then(|x| x.get(&name)).cloned(),
                }
            };
            let (l, p) = (get(&from_ldap), get(&projected));
            let refs: Vec<&str> = obj
                .attrs
                .iter()
                .filter(|m| m.reference && m.scim.ext == ext && m.scim.name == name)
                .filter_map(|m| m.scim.sub.as_deref())
                .collect();
            if !refs.is_empty() {
                // A reference the directory cannot resolve (an id outside it) lives in the
                // copy only: only a different resolvable value in the directory wins.
                let b = get(blob);
                let agrees = l.as_ref().is_none_or(|l| {
                    refs.iter()
                        .all(|s| l.get(s) == b.as_ref().and_then(|b| b.get(s)))
                });
                if agrees {
                    continue;
                }
            } else if same_values(l.as_ref(), p.as_ref()) {
                continue;
            }
            diverged = true;
            let container = match &ext {
                None => Some(&mut out),
                Some(urn) => {
                    let slot = out
                        .entry(urn.clone())
                        .or_insert_with(|| Value::Object(Map::new()));
                    slot.as_object_mut()
                }
            };
            if let Some(c) = container {
                match l {
                    Some(v) => {
                        c.insert(name.clone(), v);
                    }
                    None => {
                        c.remove(&name);
                    }
                }
            }
        }
        out.retain(|_, v| !matches!(v, Value::Object(o) if o.is_empty()));
        (out, diverged)
    }

    /// Builds resources from entries, loading relations as `load` asks.
    async fn resources(
        &self,
        source: &str,
        kind: ResourceKind,
        entries: Vec<Entry>,
        load: Load,
    ) -> Result<Vec<Resource>, BackendError> {
        let refs = self.reference_ids(kind, &entries).await?;
        let obj = self.obj(kind);
        let mut out = Vec::with_capacity(entries.len());
        for e in entries {
            let Some(id) = entry_id(&self.map.dir, &e) else {
                tracing::warn!(dn = %e.dn, "entry without an id attribute skipped");
                continue;
            };
            let from_ldap = obj.to_scim(&e, &refs);
            let (mut attrs, meta) = match self.blob(&e) {
                Some(mut b) => {
                    // A rename whose final write has not happened yet: once the RDN has
                    // changed, the pending state is the resource.
                    // The other mapped attributes still hold the old values then, so the
                    // pending copy is taken as it is, without comparing.
                    let mut completed_rename = false;
                    if let (Some(p), Some(r)) = (b.p.take(), b.r.take())
                        && first_rdn(&e.dn).is_some_and(|(_, v)| v == r)
                    {
                        b = *p;
                        completed_rename = true;
                    }
                    let (attrs, diverged) = if completed_rename {
                        (b.a.clone(), false)
                    } else {
                        self.merge(kind, from_ldap, &b.a)
                    };
                    let created = parse_time(&b.c).unwrap_or_else(now);
                    let mut last = parse_time(&b.m).unwrap_or(created);
                    if diverged && let Some((_, m, _)) = derived_meta(&self.map.dir, &e) {
                        last = last.max(m);
                    }
                    let v = b.v.saturating_add(u64::from(diverged));
                    (
                        attrs,
                        Meta {
                            created,
                            last_modified: last,
                            version: Version(v),
                        },
                    )
                }
                None => {
                    let (created, last_modified, version) = derived_meta(&self.map.dir, &e)
                        .ok_or_else(|| {
                            BackendError::Internal(format!(
                                "entry {} has no readable timestamps or version",
                                e.dn
                            ))
                        })?;
                    (
                        from_ldap,
                        Meta {
                            created,
                            last_modified,
                            version,
                        },
                    )
                }
            };
            attrs.remove("password");
            match kind {
                ResourceKind::Group if load.members => {
                    let members = self.members_of(source, &e).await?;
                    if !members.is_empty() {
                        attrs.insert("members".into(), Value::Array(members));
                    }
                }
                ResourceKind::User if load.groups => {
                    let groups = self.groups_of(source, &e.dn).await?;
                    if !groups.is_empty() {
                        attrs.insert("groups".into(), Value::Array(groups));
                    }
                }
                _ => {}
            }
            out.push(Resource {
                id,
                kind,
                meta,
                attrs,
            });
        }
        Ok(out)
    }

    /// The member DNs of a group entry, without the empty-group placeholder.
    fn member_dns(&self, e: &Entry) -> Vec<String> {
        let g = &self.map.groups;
        let Some(attr) = &g.member_attr else {
            return Vec::new();
        };
        e.values(attr)
            .iter()
            .filter(|v| g.empty_member.as_deref() != Some(v.as_str()) && !v.is_empty())
            .cloned()
            .collect()
    }

    /// Member id → display, from lossless storage.
    fn member_displays(&self, e: &Entry) -> HashMap<String, String> {
        e.values(MEMBER_DISPLAY_ATTR)
            .iter()
            .filter_map(|v| v.split_once(' '))
            .map(|(id, d)| (id.to_string(), d.to_string()))
            .collect()
    }

    /// The `members` of a group entry, in the directory's order.
    async fn members_of(&self, source: &str, e: &Entry) -> Result<Vec<Value>, BackendError> {
        let dns = self.member_dns(e);
        if dns.is_empty() {
            return Ok(Vec::new());
        }
        let attrs = vec![
            self.map.dir.id_attr().to_string(),
            "objectClass".to_string(),
        ];
        let mut found: HashMap<String, Entry> = HashMap::new();
        if let Some(member_of) = &self.map.users.member_of {
            // One indexed search per base instead of one lookup per member.
            let by_group = LFilter::Item(format!("({member_of}={})", escape_value(&e.dn)));
            let f = match self.live_filter() {
                Some(live) => LFilter::And(vec![by_group, live]).render(),
                None => by_group.render(),
            };
            let mut bases: Vec<(String, Scope)> = Vec::new();
            for kind in ResourceKind::ALL {
                let b = (self.base(kind, source), self.scope(kind));
                if !bases.iter().any(|x| x.0.eq_ignore_ascii_case(&b.0)) {
                    bases.push(b);
                }
            }
            for (base, scope) in bases {
                for m in self.search(&base, scope, &f, &attrs, self.max_scan).await? {
                    found.insert(normalize_dn(&m.dn), m);
                }
            }
        } else {
            found = self.lookup_dns(&dns, &attrs).await?;
        }
        let displays = self.member_displays(e);
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        for dn in dns {
            let Some(m) = found.get(&normalize_dn(&dn)) else {
                continue;
            };
            let Some(id) = entry_id(&self.map.dir, m) else {
                continue;
            };
            if !seen.insert(id.clone()) {
                continue;
            }
            let mut obj = Map::new();
            obj.insert("value".into(), Value::String(id.clone()));
            obj.insert(
                "type".into(),
                Value::String(self.kind_of(m).name().to_string()),
            );
            if let Some(d) = displays.get(&id) {
                obj.insert("display".into(), Value::String(d.clone()));
            }
            out.push(Value::Object(obj));
        }
        Ok(out)
    }

    /// The `groups` of a user: the groups whose member attribute names its DN.
    async fn groups_of(&self, source: &str, dn: &str) -> Result<Vec<Value>, BackendError> {
        let Some(attr) = &self.map.groups.member_attr else {
            return Ok(Vec::new());
        };
        let f = LFilter::And(vec![
            self.class_filter(ResourceKind::Group),
            LFilter::Item(format!("({attr}={})", escape_value(dn))),
        ]);
        let entries = self
            .search(
                &self.base(ResourceKind::Group, source),
                self.scope(ResourceKind::Group),
                &f.render(),
                &self.read_attrs(ResourceKind::Group, false),
                self.max_scan,
            )
            .await?;
        let groups =
            Box::pin(self.resources(source, ResourceKind::Group, entries, Load::NONE)).await?;
        Ok(groups
            .into_iter()
            .map(|g| {
                let mut o = Map::new();
                o.insert("value".into(), Value::String(g.id.clone()));
                if let Some(d) = g.attrs.get("displayName") {
                    o.insert("display".into(), d.clone());
                }
                o.insert("type".into(), Value::String("direct".into()));
                Value::Object(o)
            })
            .collect())
    }

    /// Makes sure the base DN of a resource type exists in a source (for `{source}` templates),
    /// creating missing `ou=` containers.
    async fn ensure_base(&self, kind: ResourceKind, source: &str) -> Result<(), BackendError> {
        let base = self.base(kind, source);
        if self
            .bases_ready
            .lock()
            .map(|s| s.contains(&base))
            .unwrap_or(false)
        {
            return Ok(());
        }
        // Create from the top down: the components above the template's `{source}` must exist.
        let parts = split_dn(&base);
        let mut missing = Vec::new();
        for i in 0..parts.len() {
            let dn = parts[i..].join(",");
            let found = self
                .search(&dn, Scope::Base, "(objectClass=*)", &["1.1".to_string()], 1)
                .await?;
            if !found.is_empty() {
                break;
            }
            missing.push(dn);
        }
        for dn in missing.into_iter().rev() {
            let Some((attr, value)) = first_rdn(&dn) else {
                return Err(BackendError::Internal(format!("cannot parse base DN {dn}")));
            };
            if !attr.eq_ignore_ascii_case("ou") {
                return Err(BackendError::Internal(format!(
                    "the base DN {dn} does not exist and only ou= containers are created automatically"
                )));
            }
            let mut ldap = self.ldap().await?;
            let res = ldap
                .add(
                    &dn,
                    vec![
                        (
                            b"objectClass".to_vec(),
                            set_of(["top".to_string(), "organizationalUnit".to_string()]),
                        ),
                        (b"ou".to_vec(), set_of([value])),
                    ],
                )
                .await
                .and_then(|r| r.success());
            match res {
                Ok(_) => tracing::info!(dn = %dn, "created a container for a source"),
                Err(LdapError::LdapResult { result }) if result.rc == rc::ENTRY_ALREADY_EXISTS => {}
                Err(e) => return Err(self.err(&e, Ctx::default())),
            }
        }
        if let Ok(mut s) = self.bases_ready.lock() {
            s.insert(base);
        }
        Ok(())
    }

    /// The SCIM attribute whose uniqueness a DN collision means.
    fn unique_name(kind: ResourceKind) -> &'static str {
        match kind {
            ResourceKind::User => "userName",
            ResourceKind::Group => "displayName",
        }
    }

    /// Resolves the ids a write references (members, reference mappings) to DNs.
    async fn resolve_refs(
        &self,
        source: &str,
        ids: Vec<String>,
    ) -> Result<HashMap<String, (String, ResourceKind)>, BackendError> {
        let resolved = self.resolve_ids(source, &ids).await?;
        if let Some(missing) = ids.iter().find(|id| !resolved.contains_key(*id)) {
            return Err(BackendError::InvalidReference(missing.clone()));
        }
        Ok(resolved)
    }

    /// The desired LDAP attribute values of `attrs` (mapped attributes, `active`, password).
    fn desired(
        &self,
        kind: ResourceKind,
        attrs: &Map<String, Value>,
        refs: &HashMap<String, (String, ResourceKind)>,
        current: Option<&Entry>,
    ) -> Result<BTreeMap<String, (String, Vec<Val>)>, BackendError> {
        let obj = self.obj(kind);
        let dn_refs: HashMap<String, String> = refs
            .iter()
            .map(|(k, (dn, _))| (k.clone(), dn.clone()))
            .collect();
        // In lossless mode a reference to an unknown id (a manager outside the directory) is
        // kept in the JSON copy only; otherwise it cannot be stored at all.
        let values = obj
            .to_ldap(attrs, &dn_refs, self.lossless)
            .map_err(BackendError::InvalidReference)?;
        let mut out: BTreeMap<String, (String, Vec<Val>)> = values
            .into_iter()
            .map(|(k, (name, v))| (k, (name, v.into_iter().map(String::into_bytes).collect())))
            .collect();
        if let Some(active) = &obj.active {
            let a = attrs.get("active").and_then(Value::as_bool);
            if let Some(v) = write_active(active, a, current) {
                let name = active_attr(active);
                out.insert(
                    name.to_ascii_lowercase(),
                    (
                        name.to_string(),
                        v.into_iter().map(String::into_bytes).collect(),
                    ),
                );
            }
        }
        if let Some(pw) = attrs.get("password").and_then(Value::as_str) {
            match &obj.password {
                PasswordConfig::Attribute { attribute } => {
                    out.insert(
                        attribute.to_ascii_lowercase(),
                        (attribute.clone(), vec![pw.as_bytes().to_vec()]),
                    );
                }
                PasswordConfig::UnicodePwd => {
                    let quoted = format!("\"{pw}\"");
                    let bytes: Vec<u8> = quoted.encode_utf16().flat_map(u16::to_le_bytes).collect();
                    out.insert("unicodepwd".into(), ("unicodePwd".into(), vec![bytes]));
                }
                PasswordConfig::PasswordModify | PasswordConfig::None => {}
            }
        }
        Ok(out)
    }

    /// The lossless copy of `attrs` as the value of `scimdJson`.
    fn blob_value(
        &self,
        attrs: &Map<String, Value>,
        v: u64,
        c: &str,
        m: &str,
    ) -> Result<Val, BackendError> {
        encode(&make_blob(attrs, v, c, m))
    }

    /// The writes of one change to an entry: a modify of `mods` (plus, in lossless mode, the
    /// swap of the JSON copy to `next`), and a rename when the naming value changes. Where
    /// transactions are off, a lossless rename becomes one crash-safe [`Op::SafeRename`].
    fn change_ops(
        &self,
        entry: &Entry,
        current: &Resource,
        mut mods: Vec<Mod<Val>>,
        next: Option<Blob>,
        rename: Option<(String, String)>,
        guard: Option<String>,
    ) -> Result<Vec<Op>, BackendError> {
        let transactional = self.map.dir.transactions && self.pool.supports_transactions();
        if let (Some(next), Some((attr, value)), false) = (&next, &rename, transactional) {
            let old = entry.first(JSON_ATTR).map(str::to_string);
            let mut intent = self.blob(entry).unwrap_or_else(|| {
                make_blob(
                    &current.attrs,
                    current.meta.version.0,
                    &format_time(current.meta.created),
                    &format_time(current.meta.last_modified),
                )
            });
            intent.p = Some(Box::new(next.clone()));
            intent.r = Some(value.clone());
            let intent = String::from_utf8(encode(&intent)?)
                .map_err(|e| BackendError::Internal(e.to_string()))?;
            let json = JSON_ATTR.as_bytes().to_vec();
            mods.push(Mod::Delete(json.clone(), set_of([intent.clone()])));
            mods.push(Mod::Add(json, [encode(next)?].into_iter().collect()));
            return Ok(vec![Op::SafeRename {
                dn: entry.dn.clone(),
                attr: attr.clone(),
                value: value.clone(),
                old,
                intent,
                finish: mods,
            }]);
        }
        let mut guard = guard;
        if let Some(next) = &next {
            let (blob, swapped) = Self::blob_mods(entry, encode(next)?);
            mods.extend(blob);
            if swapped {
                guard = None;
            }
        }
        let mut ops = Vec::new();
        let mut dn = entry.dn.clone();
        if let Some((attr, value)) = rename {
            // The rename goes first: it is what fails when the new name is taken, and then
            // nothing has changed yet. A failing modify afterwards renames back.
            dn = renamed_dn(&entry.dn, &attr, &value);
            ops.push(Op::Rename {
                dn: entry.dn.clone(),
                attr,
                value,
                guard: if entry_is_group(current) {
                    None
                } else {
                    guard.take()
                },
            });
        }
        if !mods.is_empty() {
            ops.push(Op::Modify {
                dn,
                undo: self.undo_mods(entry, &mods),
                mods,
                guard,
            });
        }
        Ok(ops)
    }

    /// The modifications that replace the lossless copy of `entry` with `new`: the exact old
    /// value is deleted and the new one added in the same modify, so the write fails (and is
    /// retried or reported as a version mismatch) when another writer changed the entry since
    /// it was read. Returns whether the swap is guarded that way.
    fn blob_mods(entry: &Entry, new: Val) -> (Vec<Mod<Val>>, bool) {
        let name = JSON_ATTR.as_bytes().to_vec();
        match entry.first(JSON_ATTR) {
            Some(old) => (
                vec![
                    Mod::Delete(name.clone(), set_of([old.to_string()])),
                    Mod::Add(name, [new].into_iter().collect()),
                ],
                true,
            ),
            None => (vec![Mod::Replace(name, [new].into_iter().collect())], false),
        }
    }

    /// The modifications that turn `current` into `desired`, leaving out `skip` (the naming
    /// attribute while a rename sets it).
    fn diff(
        current: &Entry,
        desired: &BTreeMap<String, (String, Vec<Val>)>,
        skip: Option<&str>,
    ) -> Vec<Mod<Val>> {
        let mut mods = Vec::new();
        for (key, (name, want)) in desired {
            if skip.is_some_and(|s| s.eq_ignore_ascii_case(key)) {
                continue;
            }
            let have: Vec<Val> = current
                .values(key)
                .iter()
                .map(|s| s.as_bytes().to_vec())
                .chain(current.bin.get(key).into_iter().flatten().cloned())
                .collect();
            let same = have.len() == want.len() && want.iter().all(|w| have.contains(w));
            if same {
                continue;
            }
            if want.is_empty() {
                mods.push(Mod::Delete(name.as_bytes().to_vec(), HashSet::new()));
            } else {
                mods.push(Mod::Replace(
                    name.as_bytes().to_vec(),
                    want.iter().cloned().collect(),
                ));
            }
        }
        mods
    }

    fn use_assertion(&self) -> bool {
        self.map
            .dir
            .assertion
            .unwrap_or_else(|| self.pool.supports_assertion())
    }

    /// The naming value `desired` gives an entry.
    fn rdn_value(
        &self,
        kind: ResourceKind,
        desired: &BTreeMap<String, (String, Vec<Val>)>,
    ) -> Result<String, BackendError> {
        let obj = self.obj(kind);
        desired
            .get(&obj.rdn_attr.to_ascii_lowercase())
            .and_then(|(_, v)| v.first())
            .and_then(|b| String::from_utf8(b.clone()).ok())
            .ok_or_else(|| {
                BackendError::InvalidValue(format!(
                    "a {} needs a value for the naming attribute {}",
                    kind.name(),
                    obj.rdn_attr
                ))
            })
    }

    /// Sets a password with the Password Modify extended operation.
    async fn password_modify(&self, dn: &str, pw: &str) -> Result<(), BackendError> {
        let mut ldap = self.ldap().await?;
        ldap.extended(ldap3::exop::PasswordModify {
            user_id: Some(dn),
            old_pass: None,
            new_pass: Some(pw),
        })
        .await
        .and_then(|r| r.success())
        .map(|_| ())
        .map_err(|e| self.err(&e, Ctx::default()))
    }

    /// Finishes the delete of the entry at `dn` when one is in progress (lossless mode);
    /// returns whether there was one.
    async fn finish_pending_delete(
        &self,
        source: &str,
        dn: &str,
        ctx: Ctx<'_>,
    ) -> Result<bool, BackendError> {
        if !self.lossless {
            return Ok(false);
        }
        let f = format!("({JSON_ATTR}=*{}*)", escape_value(DELETED_MARK));
        let found = self
            .search(dn, Scope::Base, &f, &["1.1".to_string()], 1)
            .await?;
        if found.is_empty() {
            return Ok(false);
        }
        self.remove_from_groups(source, dn).await?;
        self.execute(vec![Op::Delete { dn: dn.to_string() }], ctx)
            .await?;
        Ok(true)
    }

    /// The ids of the groups whose member attribute lists `dn`.
    async fn groups_listing(&self, source: &str, dn: &str) -> Result<Vec<String>, BackendError> {
        let Some(attr) = self.map.groups.member_attr.clone() else {
            return Ok(Vec::new());
        };
        let f = LFilter::And(vec![
            self.class_filter(ResourceKind::Group),
            LFilter::Item(format!("({attr}={})", escape_value(dn))),
        ]);
        let groups = self
            .search(
                &self.base(ResourceKind::Group, source),
                self.scope(ResourceKind::Group),
                &f.render(),
                &[self.map.dir.id_attr().to_string()],
                self.max_scan,
            )
            .await?;
        Ok(groups
            .iter()
            .filter_map(|g| entry_id(&self.map.dir, g))
            .collect())
    }

    /// Removes `dn` from every group that lists it (before a delete without transactions, or
    /// stale references before a create reuses a name). Returns the ids of the groups changed.
    async fn remove_from_groups(
        &self,
        source: &str,
        dn: &str,
    ) -> Result<Vec<String>, BackendError> {
        let mut changed = Vec::new();
        for gid in self.groups_listing(source, dn).await? {
            let delta = RawDelta {
                remove_dns: vec![dn.to_string()],
                ..RawDelta::default()
            };
            match self
                .apply_group_change(source, &gid, None, &delta, None, false)
                .await
            {
                Ok(_) => changed.push(gid),
                Err(BackendError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(changed)
    }

    /// An exact, unsorted query (a listing of everything, `members[value eq …]`, `id eq …`):
    /// only the ids of the matches are read to order and cut the page, then the page's
    /// entries are read in full — a page of a large directory costs one id scan, not the
    /// conversion of every entry.
    async fn query_by_id_order(
        &self,
        source: &str,
        kind: ResourceKind,
        filter: &LFilter,
        query: &Query,
    ) -> Result<QueryPage, BackendError> {
        let registry = self.schemas(source).clone();
        let rt = registry.resource_type(kind);
        let id_attr = self.map.dir.id_attr().to_string();
        let entries = self
            .search(
                &self.base(kind, source),
                self.scope(kind),
                &filter.render(),
                std::slice::from_ref(&id_attr),
                self.max_scan,
            )
            .await?;
        let epoch = time::OffsetDateTime::UNIX_EPOCH;
        let light: Vec<Resource> = entries
            .iter()
            .filter_map(|e| entry_id(&self.map.dir, e))
            .map(|id| Resource {
                id,
                kind,
                meta: Meta {
                    created: epoch,
                    last_modified: epoch,
                    version: Version(0),
                },
                attrs: Map::new(),
            })
            .collect();
        let mut page = paginate(rt, light, None, &query.page);
        let ids: Vec<String> = page.resources.iter().map(|r| r.id.clone()).collect();
        let mut full: HashMap<String, Resource> = HashMap::new();
        for chunk in ids.chunks(CHUNK) {
            let f = LFilter::And(vec![
                self.class_filter(kind),
                LFilter::Or(
                    chunk
                        .iter()
                        .map(|id| id_filter(id, &self.map.dir))
                        .collect(),
                ),
            ]);
            let entries = self
                .search(
                    &self.base(kind, source),
                    self.scope(kind),
                    &f.render(),
                    &self.read_attrs(kind, kind == ResourceKind::Group && query.load.members),
                    self.max_scan,
                )
                .await?;
            for r in self.resources(source, kind, entries, query.load).await? {
                full.insert(r.id.clone(), r);
            }
        }
        // An entry deleted between the two reads drops out of the page.
        page.resources = ids.iter().filter_map(|id| full.remove(id)).collect();
        Ok(page)
    }

    /// Reads a group with every attribute but, of its member values and member display names,
    /// only those the delta is about (and the empty-group placeholder).
    async fn find_group_for_delta(
        &self,
        source: &str,
        id: &str,
        delta: &RawDelta,
    ) -> Result<Entry, BackendError> {
        let kind = ResourceKind::Group;
        if !is_canonical_id(id, &self.map.dir) {
            return Err(BackendError::NotFound(id.to_string()));
        }
        let g = &self.map.groups;
        let member_attr = g.member_attr.clone().unwrap_or_else(|| "member".into());
        let attrs = self.read_attrs(kind, true);
        let mut items = String::from("(");
        for a in &attrs {
            if !a.eq_ignore_ascii_case(&member_attr) && !a.eq_ignore_ascii_case(MEMBER_DISPLAY_ATTR)
            {
                items.push_str(&format!("({a}=*)"));
            }
        }
        let dns = delta
            .add
            .iter()
            .map(|(dn, _, _)| dn)
            .chain(delta.remove_dns.iter())
            .chain(g.empty_member.iter());
        for dn in dns {
            items.push_str(&format!("({member_attr}={})", escape_value(dn)));
        }
        if self.lossless {
            let ids = delta
                .add
                .iter()
                .map(|(_, mid, _)| mid)
                .chain(delta.remove_ids.iter());
            for mid in ids {
                items.push_str(&format!("({MEMBER_DISPLAY_ATTR}={} *)", escape_value(mid)));
            }
        }
        items.push(')');
        let f = LFilter::And(vec![self.class_filter(kind), id_filter(id, &self.map.dir)]);
        let mut ldap = self.ldap().await?;
        let res = ldap
            .with_controls(ldap3::controls::MatchedValues::new(items))
            .search(
                &self.base(kind, source),
                self.scope(kind),
                &f.render(),
                attrs,
            )
            .await
            .and_then(|r| r.success());
        match res {
            Ok((entries, _)) => entries
                .into_iter()
                .next()
                .map(|e| Entry::from_search(SearchEntry::construct(e)))
                .ok_or_else(|| BackendError::NotFound(id.to_string())),
            Err(LdapError::LdapResult { result }) if result.rc == rc::NO_SUCH_OBJECT => {
                Err(BackendError::NotFound(id.to_string()))
            }
            Err(e) => {
                self.unavailable_if(&e);
                Err(self.err(&e, Ctx::default()))
            }
        }
    }

    /// Applies a membership change (and optionally new non-member attributes) to a group in
    /// one modify, conditional on the entry's CSN; retries lost races unless `expected` is set.
    async fn apply_group_change(
        &self,
        source: &str,
        id: &str,
        new_attrs: Option<&AttrsFn<'_>>,
        delta: &RawDelta,
        expected: Option<Version>,
        always_bump: bool,
    ) -> Result<bool, BackendError> {
        let ctx = Ctx {
            id: Some(id),
            unique: Some("displayName"),
        };
        for _ in 0..WRITE_RETRIES {
            let Some(ops) = self
                .plan_group_change(source, id, new_attrs, delta, expected, always_bump)
                .await?
            else {
                return Ok(false);
            };
            match self.execute(ops, ctx).await {
                Ok(()) => return Ok(true),
                Err(BackendError::VersionMismatch) if expected.is_none() => continue,
                Err(e) => return Err(e),
            }
        }
        Err(BackendError::Unavailable {
            detail: "too many concurrent changes to this group; retry".into(),
            retry_after: Some(1),
        })
    }

    /// The writes that apply a membership change (and optionally new non-member attributes)
    /// to a group as it is now: one modify (member values, display names, attributes and the
    /// lossless copy together), and a rename when the naming attribute changes. `None` when
    /// nothing changes.
    async fn plan_group_change(
        &self,
        source: &str,
        id: &str,
        new_attrs: Option<&AttrsFn<'_>>,
        delta: &RawDelta,
        expected: Option<Version>,
        always_bump: bool,
    ) -> Result<Option<Vec<Op>>, BackendError> {
        let g = &self.map.groups;
        let Some(member_attr) = g.member_attr.clone() else {
            return Err(BackendError::Unsupported(
                "groups without a member attribute".into(),
            ));
        };
        {
            // A delta only needs to know which of its own members are there: with the matched
            // values control (RFC 3876) the directory returns just those member values, so a
            // PATCH costs the same in a group of ten members and of a hundred thousand.
            let entry = if delta.replace.is_none() && self.pool.supports_matched_values() {
                self.find_group_for_delta(source, id, delta).await?
            } else {
                self.find_entry(source, ResourceKind::Group, id, true)
                    .await?
            };
            let current = self
                .resources(source, ResourceKind::Group, vec![entry.clone()], Load::NONE)
                .await?
                .pop()
                .ok_or_else(|| BackendError::NotFound(id.to_string()))?;
            if expected.is_some_and(|v| v != current.meta.version) {
                return Err(BackendError::VersionMismatch);
            }
            // Member values: the current list, changed as the delta says.
            let have: Vec<String> = entry.values(&member_attr).to_vec();
            let placeholder = g.empty_member.clone();
            let mut have_norm: Vec<String> = have.iter().map(|d| normalize_dn(d)).collect();
            let mut member_mods: Vec<Mod<Val>> = Vec::new();
            let mut display_mods: Vec<Mod<Val>> = Vec::new();
            let displays_now = entry.values(MEMBER_DISPLAY_ATTR).to_vec();
            let mut final_members: Vec<String>;
            if let Some(list) = &delta.replace {
                final_members = Vec::new();
                let mut seen = HashSet::new();
                for (dn, _, _) in list {
                    if seen.insert(normalize_dn(dn)) {
                        final_members.push(dn.clone());
                    }
                }
                let mut new_displays: Vec<String> = list
                    .iter()
                    .filter_map(|(_, mid, d)| d.as_ref().map(|d| format!("{mid} {d}")))
                    .collect();
                new_displays.dedup();
                let real_have: Vec<&String> = have
                    .iter()
                    .filter(|v| placeholder.as_deref() != Some(v.as_str()))
                    .collect();
                let same = real_have.len() == final_members.len()
                    && final_members
                        .iter()
                        .all(|d| have_norm.contains(&normalize_dn(d)))
                    && placeholder
                        .as_ref()
                        .is_none_or(|p| !have.contains(p) || final_members.is_empty());
                if !same {
                    let mut vals = final_members.clone();
                    if vals.is_empty()
                        && let Some(p) = &placeholder
                    {
                        vals.push(p.clone());
                    }
                    if vals.is_empty() {
                        member_mods.push(Mod::Delete(
                            member_attr.clone().into_bytes(),
                            HashSet::new(),
                        ));
                    } else {
                        member_mods
                            .push(Mod::Replace(member_attr.clone().into_bytes(), set_of(vals)));
                    }
                }
                if self.lossless {
                    let mut a = displays_now.clone();
                    let mut b = new_displays.clone();
                    a.sort();
                    b.sort();
                    if a != b {
                        display_mods.push(if new_displays.is_empty() {
                            Mod::Delete(MEMBER_DISPLAY_ATTR.as_bytes().to_vec(), HashSet::new())
                        } else {
                            Mod::Replace(
                                MEMBER_DISPLAY_ATTR.as_bytes().to_vec(),
                                set_of(new_displays),
                            )
                        });
                    }
                }
                have_norm = final_members.iter().map(|d| normalize_dn(d)).collect();
            } else {
                final_members = have
                    .iter()
                    .filter(|v| placeholder.as_deref() != Some(v.as_str()))
                    .cloned()
                    .collect();
            }
            // Removals, then additions (the order the delta defines).
            let mut removed = Vec::new();
            for dn in &delta.remove_dns {
                let n = normalize_dn(dn);
                if let Some(pos) = have_norm.iter().position(|h| *h == n) {
                    have_norm.remove(pos);
                    if let Some(p) = final_members.iter().position(|m| normalize_dn(m) == n) {
                        removed.push(final_members.remove(p));
                    }
                }
            }
            let mut added = Vec::new();
            for (dn, mid, display) in &delta.add {
                let n = normalize_dn(dn);
                if have_norm.contains(&n) {
                    continue;
                }
                have_norm.push(n);
                final_members.push(dn.clone());
                added.push((dn.clone(), mid.clone(), display.clone()));
            }
            if delta.replace.is_none() && (!removed.is_empty() || !added.is_empty()) {
                let placeholder_present = placeholder
                    .as_ref()
                    .is_some_and(|p| have.iter().any(|h| h == p));
                if !removed.is_empty() {
                    member_mods.push(Mod::Delete(
                        member_attr.clone().into_bytes(),
                        set_of(removed.clone()),
                    ));
                }
                if !added.is_empty() {
                    member_mods.push(Mod::Add(
                        member_attr.clone().into_bytes(),
                        set_of(added.iter().map(|(d, _, _)| d.clone())),
                    ));
                }
                if let Some(p) = &placeholder {
                    if final_members.is_empty() && !placeholder_present {
                        member_mods.push(Mod::Add(
                            member_attr.clone().into_bytes(),
                            set_of([p.clone()]),
                        ));
                    } else if !final_members.is_empty() && placeholder_present {
                        member_mods.push(Mod::Delete(
                            member_attr.clone().into_bytes(),
                            set_of([p.clone()]),
                        ));
                    }
                }
            }
            if self.lossless && delta.replace.is_none() {
                let removed_ids: HashSet<&String> = delta.remove_ids.iter().collect();
                let drop: Vec<String> = displays_now
                    .iter()
                    .filter(|v| {
                        v.split_once(' ')
                            .is_some_and(|(mid, _)| removed_ids.contains(&mid.to_string()))
                    })
                    .cloned()
                    .collect();
                if !drop.is_empty() && !removed.is_empty() {
                    display_mods.push(Mod::Delete(
                        MEMBER_DISPLAY_ATTR.as_bytes().to_vec(),
                        set_of(drop),
                    ));
                }
                let add_d: Vec<String> = added
                    .iter()
                    .filter_map(|(_, mid, d)| d.as_ref().map(|d| format!("{mid} {d}")))
                    .filter(|v| !displays_now.contains(v))
                    .collect();
                if !add_d.is_empty() {
                    display_mods.push(Mod::Add(
                        MEMBER_DISPLAY_ATTR.as_bytes().to_vec(),
                        set_of(add_d),
                    ));
                }
            }
            // Other attributes.
            let mut attr_mods = Vec::new();
            let mut rename_to: Option<String> = None;
            let mut new_plain = current.attrs.clone();
            if let Some(f) = new_attrs
                && let Some(next) = f(&current)?
            {
                let desired =
                    self.desired(ResourceKind::Group, &next, &HashMap::new(), Some(&entry))?;
                let rdn_val = self.rdn_value(ResourceKind::Group, &desired)?;
                let rdn_key = g.rdn_attr.to_ascii_lowercase();
                let current_rdn = first_rdn(&entry.dn).map(|(_, v)| v);
                if current_rdn.as_deref() != Some(rdn_val.as_str()) {
                    rename_to = Some(rdn_val);
                }
                attr_mods = Self::diff(
                    &entry,
                    &desired,
                    rename_to.as_ref().map(|_| rdn_key.as_str()),
                );
                new_plain = next;
            }
            let attrs_changed = new_plain != current.attrs;
            let nothing = member_mods.is_empty()
                && display_mods.is_empty()
                && attr_mods.is_empty()
                && rename_to.is_none();
            // Without the lossless copy there is nothing else to write; with it, a changed
            // attribute (or a PUT, which always makes a new version) writes a new copy.
            let write_copy = self.lossless && (attrs_changed || always_bump);
            if nothing && !write_copy {
                return Ok(None);
            }
            let mut mods = Vec::new();
            mods.extend(attr_mods.iter().cloned());
            mods.extend(member_mods);
            mods.extend(display_mods);
            let next = self.lossless.then(|| {
                make_blob(
                    &new_plain,
                    current.meta.version.0.saturating_add(1),
                    &format_time(current.meta.created),
                    &format_time(now().max(current.meta.last_modified)),
                )
            });
            // No assertion control on groups: OpenLDAP's memberof overlay passes the request's
            // controls on to its own modify of each member entry, where an assertion on the
            // group's CSN fails and memberOf silently stays stale. Concurrent writers are
            // caught by the lossless copy's swap, and member values by add/delete conflicts.
            let ops = self.change_ops(
                &entry,
                &current,
                mods,
                next,
                rename_to.map(|v| (g.rdn_attr.clone(), v)),
                None,
            )?;
            Ok(Some(ops))
        }
    }

    /// Runs planned writes: in one LDAP transaction (RFC 5805) when there are several and the
    /// directory supports transactions, so that either all apply or none; otherwise in
    /// order, undoing earlier modifies when a later write fails.
    async fn execute(&self, ops: Vec<Op>, ctx: Ctx<'_>) -> Result<(), BackendError> {
        if ops.is_empty() {
            return Ok(());
        }
        let mut ldap = self.ldap().await?;
        if ops.len() > 1 && self.map.dir.transactions && self.pool.supports_transactions() {
            return self.execute_txn(&mut ldap, ops, ctx).await;
        }
        if let [
            Op::SafeRename {
                dn,
                attr,
                value,
                old,
                intent,
                finish,
            },
        ] = ops.as_slice()
        {
            return self
                .safe_rename(
                    &mut ldap,
                    dn,
                    attr,
                    value,
                    old.clone(),
                    intent.clone(),
                    finish.clone(),
                    ctx,
                )
                .await;
        }
        let mut done: Vec<&Op> = Vec::new();
        for op in &ops {
            let res = self.run_op(&mut ldap, op, None).await;
            if let Err(e) = res {
                for prev in done.iter().rev() {
                    if let Op::Rename {
                        dn, attr, value, ..
                    } = prev
                        && let Some((_, old)) = first_rdn(dn)
                    {
                        let back = Op::Rename {
                            dn: renamed_dn(dn, attr, value),
                            attr: attr.clone(),
                            value: old,
                            guard: None,
                        };
                        if let Err(u) = self.run_op(&mut ldap, &back, None).await {
                            tracing::error!(dn = %dn, error = %u, "could not rename back after a later write failed");
                        }
                        continue;
                    }
                    if let Op::Modify { dn, undo, .. } = prev
                        && !undo.is_empty()
                        && let Err(u) = self
                            .run_op(
                                &mut ldap,
                                &Op::Modify {
                                    dn: dn.clone(),
                                    mods: undo.clone(),
                                    guard: None,
                                    undo: Vec::new(),
                                },
                                None,
                            )
                            .await
                    {
                        tracing::error!(dn = %dn, error = %u, "could not undo a write after a later one failed");
                    }
                }
                return Err(self.write_error(&e, ctx));
            }
            done.push(op);
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    async fn safe_rename(
        &self,
        ldap: &mut Ldap,
        dn: &str,
        attr: &str,
        value: &str,
        old: Option<String>,
        intent: String,
        finish: Vec<Mod<Val>>,
        ctx: Ctx<'_>,
    ) -> Result<(), BackendError> {
        let json = JSON_ATTR.as_bytes().to_vec();
        let record = match &old {
            Some(o) => vec![
                Mod::Delete(json.clone(), set_of([o.clone()])),
                Mod::Add(json.clone(), set_of([intent.clone()])),
            ],
            None => vec![Mod::Replace(json.clone(), set_of([intent.clone()]))],
        };
        let step = |dn: &str, mods: Vec<Mod<Val>>| Op::Modify {
            dn: dn.to_string(),
            mods,
            guard: None,
            undo: Vec::new(),
        };
        self.run_op(ldap, &step(dn, record), None)
            .await
            .map_err(|e| self.write_error(&e, ctx))?;
        let rename = Op::Rename {
            dn: dn.to_string(),
            attr: attr.to_string(),
            value: value.to_string(),
            guard: None,
        };
        if let Err(e) = self.run_op(ldap, &rename, None).await {
            // Take the intent back; should that fail too, the pending state is ignored by
            // readers as long as the RDN has not changed.
            let mut back = vec![Mod::Delete(json.clone(), set_of([intent.clone()]))];
            if let Some(o) = old {
                back.push(Mod::Add(json.clone(), set_of([o])));
            }
            if let Err(u) = self.run_op(ldap, &step(dn, back), None).await {
                tracing::warn!(dn = %dn, error = %u, "a failed rename's intent stays recorded");
            }
            return Err(self.write_error(&e, ctx));
        }
        let new_dn = renamed_dn(dn, attr, value);
        if let Err(e) = self.run_op(ldap, &step(&new_dn, finish), None).await {
            // The rename is visible and complete for readers; the next write finishes it.
            tracing::warn!(dn = %new_dn, error = %e, "a rename's final write is pending");
        }
        Ok(())
    }

    async fn execute_txn(
        &self,
        ldap: &mut Ldap,
        ops: Vec<Op>,
        ctx: Ctx<'_>,
    ) -> Result<(), BackendError> {
        let (exop, _) = ldap
            .extended(ldap3::exop::StartTxn)
            .await
            .and_then(|r| r.success())
            .map_err(|e| self.write_error(&e, ctx))?;
        let id = exop.val.unwrap_or_default();
        let spec = RawControl {
            ctype: "1.3.6.1.1.21.2".into(),
            crit: true,
            val: Some(id.clone()),
        };
        for op in &ops {
            if let Err(e) = self.run_op(ldap, op, Some(spec.clone())).await {
                // Abort: nothing of the transaction is applied.
                let abort = ldap3::exop::EndTxn {
                    txn_id: std::str::from_utf8(&id).unwrap_or_default(),
                    commit: false,
                };
                let _ = ldap.extended(abort).await;
                return Err(self.write_error(&e, ctx));
            }
        }
        let end = ldap3::exop::Exop {
            name: Some("1.3.6.1.1.21.3".into()),
            val: Some(end_txn_value(&id)),
        };
        ldap.extended(end)
            .await
            .and_then(|r| r.success())
            .map(|_| ())
            .map_err(|e| self.write_error(&e, ctx))
    }

    async fn run_op(
        &self,
        ldap: &mut Ldap,
        op: &Op,
        txn: Option<RawControl>,
    ) -> Result<(), LdapError> {
        let mut controls: Vec<RawControl> = txn.into_iter().collect();
        let res = match op {
            Op::Modify {
                dn, mods, guard, ..
            } => {
                if let Some(c) = guard.as_deref().filter(|_| self.use_assertion()) {
                    controls.push(assertion(c));
                }
                if !controls.is_empty() {
                    ldap.with_controls(controls);
                }
                ldap.modify(dn, mods.clone()).await
            }
            Op::Rename {
                dn,
                attr,
                value,
                guard,
            } => {
                if let Some(c) = guard.as_deref().filter(|_| self.use_assertion()) {
                    controls.push(assertion(c));
                }
                if !controls.is_empty() {
                    ldap.with_controls(controls);
                }
                let rdn = format!("{attr}={}", ldap3::dn_escape(value.as_str()));
                ldap.modifydn(dn, &rdn, true, None).await
            }
            Op::Delete { dn } => {
                if !controls.is_empty() {
                    ldap.with_controls(controls);
                }
                ldap.delete(dn).await
            }
            Op::Move { dn, parent } => {
                if !controls.is_empty() {
                    ldap.with_controls(controls);
                }
                let rdn = split_dn(dn).into_iter().next().unwrap_or_default();
                ldap.modifydn(dn, &rdn, true, Some(parent)).await
            }
            // Planned only where transactions are off; `execute` runs it step by step.
            Op::SafeRename {
                dn, attr, value, ..
            } => {
                if !controls.is_empty() {
                    ldap.with_controls(controls);
                }
                let rdn = format!("{attr}={}", ldap3::dn_escape(value.as_str()));
                ldap.modifydn(dn, &rdn, true, None).await
            }
        };
        ldap.with_timeout(self.pool.op_timeout);
        res.and_then(|r| r.success())
            .map(|_| ())
            .inspect_err(|e| self.unavailable_if(e))
    }

    /// Maps a write failure: a value that is suddenly there (or gone) means a concurrent
    /// writer got in between the read the write was computed from and the write — what a
    /// failed assertion means where the directory has no assertion control.
    fn write_error(&self, e: &LdapError, ctx: Ctx<'_>) -> BackendError {
        match e {
            LdapError::LdapResult { result }
                if result.rc == rc::ATTRIBUTE_OR_VALUE_EXISTS
                    || result.rc == rc::NO_SUCH_ATTRIBUTE =>
            {
                BackendError::VersionMismatch
            }
            _ => self.err(e, ctx),
        }
    }

    /// Modifications restoring the attributes `mods` touched to their values in `before`.
    fn undo_mods(&self, before: &Entry, mods: &[Mod<Val>]) -> Vec<Mod<Val>> {
        let mut undo = Vec::new();
        let mut seen = HashSet::new();
        for m in mods {
            let name = match m {
                Mod::Add(n, _) | Mod::Delete(n, _) | Mod::Replace(n, _) | Mod::Increment(n, _) => n,
            };
            let key = String::from_utf8_lossy(name).to_ascii_lowercase();
            if key == JSON_ATTR.to_ascii_lowercase() || !seen.insert(key.clone()) {
                continue;
            }
            let old: HashSet<Val> = before
                .values(&key)
                .iter()
                .map(|s| s.as_bytes().to_vec())
                .collect();
            undo.push(if old.is_empty() {
                Mod::Delete(name.clone(), HashSet::new())
            } else {
                Mod::Replace(name.clone(), old)
            });
        }
        if self.lossless
            && let Some(j) = before.first(JSON_ATTR)
        {
            undo.push(Mod::Replace(
                JSON_ATTR.as_bytes().to_vec(),
                set_of([j.to_string()]),
            ));
        }
        undo
    }

    /// Resolves a membership delta's ids to DNs.
    async fn raw_delta(
        &self,
        source: &str,
        delta: &MembershipDelta,
    ) -> Result<RawDelta, BackendError> {
        let mut ids: Vec<String> = delta.add.iter().map(|m| m.value.clone()).collect();
        if let Some(r) = &delta.replace {
            ids.extend(r.iter().map(|m| m.value.clone()));
        }
        let resolved = self.resolve_refs(source, ids).await?;
        let to_raw = |m: &Member| -> Option<(String, String, Option<String>)> {
            resolved
                .get(&m.value)
                .map(|(dn, _)| (dn.clone(), m.value.clone(), m.display.clone()))
        };
        // Ids to remove that do not resolve are not members: ignoring them is the delta's rule.
        let removed = self.resolve_ids(source, &delta.remove).await?;
        Ok(RawDelta {
            replace: delta
                .replace
                .as_ref()
                .map(|r| r.iter().filter_map(to_raw).collect()),
            remove_dns: delta
                .remove
                .iter()
                .filter_map(|id| removed.get(id).map(|(dn, _)| dn.clone()))
                .collect(),
            remove_ids: delta.remove.clone(),
            add: delta.add.iter().filter_map(to_raw).collect(),
        })
    }

    /// Writes new attributes of a user (or a group's non-member attributes and members) over
    /// an existing entry: the shared body of `replace` and the generic `patch`.
    async fn write_over(
        &self,
        source: &str,
        kind: ResourceKind,
        id: &str,
        attrs: &Map<String, Value>,
        expected: Option<Version>,
        retry: bool,
    ) -> Result<(), BackendError> {
        let unique = Self::unique_name(kind);
        let ctx = Ctx {
            id: Some(id),
            unique: Some(unique),
        };
        if kind == ResourceKind::Group {
            let members: Vec<Member> = attrs
                .get("members")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Member::from_json).collect())
                .unwrap_or_default();
            let delta = MembershipDelta {
                replace: Some(members),
                ..MembershipDelta::default()
            };
            let raw = self.raw_delta(source, &delta).await?;
            let mut plain = attrs.clone();
            plain.remove("members");
            let f = move |_: &Resource| -> Result<Option<Map<String, Value>>, BackendError> {
                Ok(Some(plain.clone()))
            };
            let _ = retry;
            self.apply_group_change(source, id, Some(&f), &raw, expected, true)
                .await?;
            return Ok(());
        }
        let obj = self.obj(kind);
        let refs = if self.lossless {
            self.resolve_ids(source, &obj.referenced_ids(attrs)).await?
        } else {
            self.resolve_refs(source, obj.referenced_ids(attrs)).await?
        };
        for _ in 0..WRITE_RETRIES {
            let entry = self.find_entry(source, kind, id, false).await?;
            let current = self
                .resources(source, kind, vec![entry.clone()], Load::NONE)
                .await?
                .pop()
                .ok_or_else(|| BackendError::NotFound(id.to_string()))?;
            if expected.is_some_and(|v| v != current.meta.version) {
                return Err(BackendError::VersionMismatch);
            }
            let csn = entry.first("entryCSN").map(str::to_string);
            let desired = self.desired(kind, attrs, &refs, Some(&entry))?;
            let rdn_val = self.rdn_value(kind, &desired)?;
            let rdn_key = obj.rdn_attr.to_ascii_lowercase();
            let current_rdn = first_rdn(&entry.dn).map(|(_, v)| v);
            let rename_to = (current_rdn.as_deref() != Some(rdn_val.as_str())).then_some(rdn_val);
            let mods = Self::diff(
                &entry,
                &desired,
                rename_to.as_ref().map(|_| rdn_key.as_str()),
            );
            let mut plain = attrs.clone();
            plain.remove("password");
            if !self.lossless
                && mods.is_empty()
                && rename_to.is_none()
                && !attrs.contains_key("password")
            {
                return Ok(());
            }
            let _ = plain;
            let next = self.lossless.then(|| {
                make_blob(
                    attrs,
                    current.meta.version.0.saturating_add(1),
                    &format_time(current.meta.created),
                    &format_time(now().max(current.meta.last_modified)),
                )
            });
            let dn = match &rename_to {
                Some(value) => renamed_dn(&entry.dn, &obj.rdn_attr, value),
                None => entry.dn.clone(),
            };
            let ops = self.change_ops(
                &entry,
                &current,
                mods,
                next,
                rename_to.map(|v| (obj.rdn_attr.clone(), v)),
                csn,
            )?;
            match self.execute(ops, ctx).await {
                Ok(()) => {}
                Err(BackendError::VersionMismatch) if expected.is_none() && retry => continue,
                Err(e) => return Err(e),
            }
            if let (PasswordConfig::PasswordModify, Some(pw)) =
                (&obj.password, attrs.get("password").and_then(Value::as_str))
            {
                self.password_modify(&dn, pw).await?;
            }
            return Ok(());
        }
        Err(BackendError::Unavailable {
            detail: "too many concurrent changes to this resource; retry".into(),
            retry_after: Some(1),
        })
    }
}

/// One write of a planned change.
#[derive(Debug, Clone)]
enum Op {
    /// A modify, optionally conditional on the entry's CSN; `undo` restores what it changed
    /// (used only where the directory has no transactions).
    Modify {
        dn: String,
        mods: Vec<Mod<Val>>,
        guard: Option<String>,
        undo: Vec<Mod<Val>>,
    },
    /// A rename of the entry's RDN to `attr=value` (the old value removed), optionally
    /// conditional on the entry's CSN.
    Rename {
        dn: String,
        attr: String,
        value: String,
        guard: Option<String>,
    },
    /// A delete.
    Delete { dn: String },
    /// A move under another parent, keeping the RDN.
    Move { dn: String, parent: String },
    /// A rename with other changes, crash-safe without transactions (lossless mode): first
    /// the JSON copy records the new state as pending for the new RDN value (`intent`, swapped
    /// in for `old`), then the entry is renamed (from then on readers see the new state), then
    /// `finish` writes the other attributes and the final copy. A failed rename takes the
    /// intent back; a crash before `finish` leaves a state readers already resolve to the
    /// new one, and the next write completes it.
    SafeRename {
        dn: String,
        attr: String,
        value: String,
        old: Option<String>,
        intent: String,
        finish: Vec<Mod<Val>>,
    },
}

/// The DN an entry gets when renamed to `attr=value`.
fn renamed_dn(dn: &str, attr: &str, value: &str) -> String {
    let parent = split_dn(dn).get(1..).unwrap_or(&[]).join(",");
    format!("{attr}={},{parent}", ldap3::dn_escape(value))
}

/// BER of an End Transaction request value: `SEQUENCE { identifier OCTET STRING }` (commit
/// is the default).
fn end_txn_value(id: &[u8]) -> Vec<u8> {
    fn len(n: usize, out: &mut Vec<u8>) {
        if n < 0x80 {
            out.push(n as u8);
        } else {
            let bytes: Vec<u8> = n
                .to_be_bytes()
                .into_iter()
                .skip_while(|b| *b == 0)
                .collect();
            out.push(0x80 | bytes.len() as u8);
            out.extend(bytes);
        }
    }
    let mut octets = vec![0x04];
    len(id.len(), &mut octets);
    octets.extend_from_slice(id);
    let mut out = vec![0x30];
    len(octets.len(), &mut out);
    out.extend(octets);
    out
}

/// Computes a group's new non-member attributes from its current state (`None`: unchanged).
type AttrsFn<'a> =
    dyn Fn(&Resource) -> Result<Option<Map<String, Value>>, BackendError> + Send + Sync + 'a;

/// A membership delta with ids resolved to DNs: `(dn, id, display)`.
#[derive(Debug, Default, Clone)]
struct RawDelta {
    replace: Option<Vec<(String, String, Option<String>)>>,
    remove_dns: Vec<String>,
    remove_ids: Vec<String>,
    add: Vec<(String, String, Option<String>)>,
}

fn assertion(csn: &str) -> RawControl {
    let mut c = Assertion::new(format!("(entryCSN={})", escape_value(csn)));
    c.crit = true;
    c
}

/// Splits a DN into its RDNs (respecting `\,` escapes).
pub(crate) fn split_dn(dn: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut cur = String::new();
    let mut escaped = false;
    for c in dn.chars() {
        if escaped {
            cur.push(c);
            escaped = false;
            continue;
        }
        match c {
            '\\' => {
                cur.push(c);
                escaped = true;
            }
            ',' => {
                parts.push(cur.trim().to_string());
                cur.clear();
            }
            _ => cur.push(c),
        }
    }
    if !cur.trim().is_empty() {
        parts.push(cur.trim().to_string());
    }
    parts
}

/// The attribute and (unescaped) value of a DN's first RDN.
pub(crate) fn first_rdn(dn: &str) -> Option<(String, String)> {
    let first = split_dn(dn).into_iter().next()?;
    let (attr, value) = first.split_once('=')?;
    Some((attr.trim().to_string(), unescape_dn_value(value.trim())))
}

fn unescape_dn_value(v: &str) -> String {
    let bytes = v.as_bytes();
    let mut out: Vec<u8> = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 1 < bytes.len() {
            let hex = v
                .get(i + 1..i + 3)
                .filter(|h| h.bytes().all(|b| b.is_ascii_hexdigit()))
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            match hex {
                Some(b) => {
                    out.push(b);
                    i += 3;
                }
                None => {
                    out.push(bytes[i + 1]);
                    i += 2;
                }
            }
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Equality of two attribute values where multi-valued lists compare as multisets (the
/// directory does not keep value order).
fn same_values(a: Option<&Value>, b: Option<&Value>) -> bool {
    match (a, b) {
        (Some(Value::Array(x)), Some(Value::Array(y))) => {
            let mut x: Vec<String> = x.iter().map(Value::to_string).collect();
            let mut y: Vec<String> = y.iter().map(Value::to_string).collect();
            x.sort();
            y.sort();
            x == y
        }
        (a, b) => a == b,
    }
}

#[async_trait]
impl Backend for LdapBackend {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            filter: true,
            sort: true,
            cursor_paging: true,
            etag: true,
            change_password: !matches!(self.map.users.password, PasswordConfig::None),
            membership_deltas: true,
            max_results: 1000,
        }
    }

    async fn create(
        &self,
        source: &str,
        kind: ResourceKind,
        attrs: Map<String, Value>,
    ) -> Result<Resource, BackendError> {
        let obj = self.obj(kind);
        let mut ref_ids = if self.lossless {
            Vec::new()
        } else {
            obj.referenced_ids(&attrs)
        };
        let members: Vec<Member> = if kind == ResourceKind::Group {
            attrs
                .get("members")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Member::from_json).collect())
                .unwrap_or_default()
        } else {
            Vec::new()
        };
        ref_ids.extend(members.iter().map(|m| m.value.clone()));
        let mut refs = self.resolve_refs(source, ref_ids).await?;
        if self.lossless {
            refs.extend(
                self.resolve_ids(source, &obj.referenced_ids(&attrs))
                    .await?,
            );
        }
        let mut desired = self.desired(kind, &attrs, &refs, None)?;
        let rdn_val = self.rdn_value(kind, &desired)?;
        let base = self.base(kind, source);
        let dn = format!(
            "{}={},{}",
            obj.rdn_attr,
            ldap3::dn_escape(rdn_val.as_str()),
            base
        );
        self.ensure_base(kind, source).await?;
        if kind == ResourceKind::Group
            && let Some(member_attr) = &obj.member_attr
        {
            let mut dns: Vec<String> = Vec::new();
            let mut displays: Vec<String> = Vec::new();
            for m in &members {
                if let Some((mdn, _)) = refs.get(&m.value)
                    && !dns.iter().any(|d| normalize_dn(d) == normalize_dn(mdn))
                {
                    dns.push(mdn.clone());
                    if let Some(d) = &m.display {
                        displays.push(format!("{} {d}", m.value));
                    }
                }
            }
            if dns.is_empty()
                && let Some(p) = &obj.empty_member
            {
                dns.push(p.clone());
            }
            desired.insert(
                member_attr.to_ascii_lowercase(),
                (
                    member_attr.clone(),
                    dns.into_iter().map(String::into_bytes).collect(),
                ),
            );
            if self.lossless && !displays.is_empty() {
                desired.insert(
                    MEMBER_DISPLAY_ATTR.to_ascii_lowercase(),
                    (
                        MEMBER_DISPLAY_ATTR.into(),
                        displays.into_iter().map(String::into_bytes).collect(),
                    ),
                );
            }
        }
        let mut classes = obj.object_classes.clone();
        if self.lossless {
            classes.push(AUX_CLASS.into());
            let t = format_time(now());
            desired.insert(
                JSON_ATTR.to_ascii_lowercase(),
                (
                    JSON_ATTR.into(),
                    vec![self.blob_value(&attrs, Version::FIRST.0, &t, &t)?],
                ),
            );
        }
        let mut add: Vec<(Val, HashSet<Val>)> = vec![(
            b"objectClass".to_vec(),
            classes.into_iter().map(String::into_bytes).collect(),
        )];
        for (_, (name, values)) in desired {
            if !values.is_empty() {
                add.push((name.into_bytes(), values.into_iter().collect()));
            }
        }
        // A name freed by a delete may still be listed in groups (without referential
        // integrity in the directory): the new entry must not inherit those memberships.
        self.remove_from_groups(source, &dn).await?;
        let mut ldap = self.ldap().await?;
        let ctx = Ctx {
            id: None,
            unique: Some(Self::unique_name(kind)),
        };
        let mut res = ldap.add(&dn, add.clone()).await.and_then(|r| r.success());
        if matches!(&res, Err(LdapError::LdapResult { result }) if result.rc == rc::ENTRY_ALREADY_EXISTS)
            && self.finish_pending_delete(source, &dn, ctx).await?
        {
            res = ldap.add(&dn, add).await.and_then(|r| r.success());
        }
        res.map_err(|e| {
            self.unavailable_if(&e);
            self.err(&e, ctx)
        })?;
        if let (PasswordConfig::PasswordModify, Some(pw)) =
            (&obj.password, attrs.get("password").and_then(Value::as_str))
            && let Err(e) = self.password_modify(&dn, pw).await
        {
            // Compensate: the user must not exist without the password the client set.
            let mut l = self.ldap().await?;
            if let Err(d) = l.delete(&dn).await.and_then(|r| r.success()) {
                tracing::error!(dn = %dn, error = %d, "could not compensate a failed password set");
            }
            return Err(e);
        }
        let entries = self
            .search(
                &dn,
                Scope::Base,
                "(objectClass=*)",
                &self.read_attrs(kind, true),
                1,
            )
            .await?;
        self.resources(source, kind, entries, Load::ALL)
            .await?
            .pop()
            .ok_or_else(|| BackendError::Internal(format!("the new entry {dn} cannot be read")))
    }

    async fn get(
        &self,
        source: &str,
        kind: ResourceKind,
        id: &str,
        load: Load,
    ) -> Result<Resource, BackendError> {
        let entry = self
            .find_entry(
                source,
                kind,
                id,
                kind == ResourceKind::Group && load.members,
            )
            .await?;
        self.resources(source, kind, vec![entry], load)
            .await?
            .pop()
            .ok_or_else(|| BackendError::NotFound(id.to_string()))
    }

    async fn replace(
        &self,
        source: &str,
        kind: ResourceKind,
        id: &str,
        attrs: Map<String, Value>,
        expected: Option<Version>,
    ) -> Result<Resource, BackendError> {
        self.write_over(source, kind, id, &attrs, expected, true)
            .await?;
        self.get(source, kind, id, Load::ALL).await
    }

    async fn delete(
        &self,
        source: &str,
        kind: ResourceKind,
        id: &str,
        expected: Option<Version>,
    ) -> Result<(), BackendError> {
        let ctx = Ctx {
            id: Some(id),
            unique: None,
        };
        let transactional = self.map.dir.transactions && self.pool.supports_transactions();
        for _ in 0..WRITE_RETRIES {
            let any = self.any_class_filter(kind);
            let entry = self.find_entry_with(source, kind, id, false, any).await?;
            let pending = self.blob(&entry).is_some_and(|b| b.deleted);
            if pending && expected.is_some() {
                return Err(BackendError::NotFound(id.to_string()));
            }
            if let Some(v) = expected {
                let current = self
                    .resources(source, kind, vec![entry.clone()], Load::NONE)
                    .await?;
                if current.first().map(|r| r.meta.version) != Some(v) {
                    return Err(BackendError::VersionMismatch);
                }
            }
            // The entry's own removal (or move), and, for users of soft deletes, disabling it.
            let mut own = Vec::new();
            match &self.obj(kind).delete {
                DeleteConfig::Delete => own.push(Op::Delete {
                    dn: entry.dn.clone(),
                }),
                DeleteConfig::Move { container } => {
                    own.push(Op::Move {
                        dn: entry.dn.clone(),
                        parent: container.clone(),
                    });
                    if kind == ResourceKind::User
                        && let Some(active) = &self.obj(kind).active
                        && let Some(v) = write_active(active, Some(false), Some(&entry))
                    {
                        let rdn = split_dn(&entry.dn).into_iter().next().unwrap_or_default();
                        own.push(Op::Modify {
                            dn: format!("{rdn},{container}"),
                            mods: vec![Mod::Replace(
                                active_attr(active).as_bytes().to_vec(),
                                set_of(v),
                            )],
                            guard: None,
                            undo: Vec::new(),
                        });
                    }
                }
            }
            if self.lossless && !transactional {
                // Crash-safe without transactions: the JSON copy first records the delete (the
                // resource is gone for SCIM from then on), then the memberships go, then the
                // entry. A crash in between leaves a hidden entry that the next DELETE (or a
                // create of the same name) finishes removing.
                if !pending {
                    let mut marked = self.blob(&entry).unwrap_or_else(|| {
                        make_blob(&Map::new(), 0, &format_time(now()), &format_time(now()))
                    });
                    marked.deleted = true;
                    let (mods, _) = Self::blob_mods(&entry, encode(&marked)?);
                    let mark = Op::Modify {
                        dn: entry.dn.clone(),
                        mods,
                        guard: None,
                        undo: Vec::new(),
                    };
                    match self.execute(vec![mark], ctx).await {
                        Ok(()) => {}
                        Err(BackendError::VersionMismatch) => continue,
                        Err(e) => return Err(e),
                    }
                }
                self.remove_from_groups(source, &entry.dn).await?;
                self.execute(own, ctx).await?;
                return if pending {
                    Err(BackendError::NotFound(id.to_string()))
                } else {
                    Ok(())
                };
            }
            if !transactional {
                // Memberships first, each group getting a new version; restored if the
                // entry's own removal then fails.
                let groups = self.remove_from_groups(source, &entry.dn).await?;
                if let Err(e) = self.execute(own, ctx).await {
                    for gid in groups {
                        let delta = RawDelta {
                            add: vec![(entry.dn.clone(), id.to_string(), None)],
                            ..RawDelta::default()
                        };
                        if let Err(u) = self
                            .apply_group_change(source, &gid, None, &delta, None, false)
                            .await
                        {
                            tracing::error!(group = %gid, error = %u, "could not restore a membership after a failed delete");
                        }
                    }
                    return Err(e);
                }
                return Ok(());
            }
            // One transaction: every group loses the member (and gets a new version) and the
            // entry goes, or nothing happens.
            let mut ops = Vec::new();
            let remove = RawDelta {
                remove_dns: vec![entry.dn.clone()],
                remove_ids: vec![id.to_string()],
                ..RawDelta::default()
            };
            for gid in self.groups_listing(source, &entry.dn).await? {
                match self
                    .plan_group_change(source, &gid, None, &remove, None, false)
                    .await
                {
                    Ok(Some(p)) => ops.extend(p),
                    Ok(None) | Err(BackendError::NotFound(_)) => {}
                    Err(e) => return Err(e),
                }
            }
            ops.extend(own);
            match self.execute(ops, ctx).await {
                Ok(()) => return Ok(()),
                Err(BackendError::VersionMismatch) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(BackendError::Unavailable {
            detail: "too many concurrent changes around this resource; retry".into(),
            retry_after: Some(1),
        })
    }

    async fn query(
        &self,
        source: &str,
        kind: ResourceKind,
        query: &Query,
    ) -> Result<QueryPage, BackendError> {
        let registry = self.schemas(source).clone();
        let rt = registry.resource_type(kind);
        let obj = self.obj(kind);
        let (lfilter, exact) = match &query.filter {
            None => (LFilter::True, true),
            Some(f) => {
                let ids = filter::referenced_ids(f, obj);
                let resolved = self.resolve_ids(source, &ids).await?;
                let refs: HashMap<String, Option<String>> = ids
                    .into_iter()
                    .map(|id| {
                        let dn = resolved.get(&id).map(|(dn, _)| dn.clone());
                        (id, dn)
                    })
                    .collect();
                let cx = Context {
                    map: obj,
                    dir: &self.map.dir,
                    rt,
                    refs: &refs,
                    json_attr: self.lossless.then_some(JSON_ATTR),
                };
                let t = filter::translate(f, &cx)?;
                (t.filter, t.exact)
            }
        };
        let full = LFilter::And(vec![self.class_filter(kind), lfilter]);
        if exact && query.sort.is_none() {
            return self.query_by_id_order(source, kind, &full, query).await;
        }
        let needs_rel = query
            .filter
            .as_ref()
            .is_some_and(|f| !exact && filter::needs_relations(f));
        let with_members = kind == ResourceKind::Group && needs_rel;
        let entries = self
            .search(
                &self.base(kind, source),
                self.scope(kind),
                &full.render(),
                &self.read_attrs(kind, with_members),
                self.max_scan,
            )
            .await?;
        let eval_load = if needs_rel { Load::ALL } else { Load::NONE };
        let mut resources = self.resources(source, kind, entries, eval_load).await?;
        if let (Some(f), false) = (&query.filter, exact) {
            resources.retain(|r| matches(f, rt, r));
        }
        let mut page = paginate(rt, resources, query.sort.as_ref(), &query.page);
        // Relations for the page only.
        if query.load != eval_load {
            for r in &mut page.resources {
                r.attrs.remove("members");
                r.attrs.remove("groups");
            }
            if query.load.members || query.load.groups {
                let ids: Vec<String> = page.resources.iter().map(|r| r.id.clone()).collect();
                let mut loaded = Vec::with_capacity(ids.len());
                for id in &ids {
                    loaded.push(self.get(source, kind, id, query.load).await?);
                }
                page.resources = loaded;
            }
        }
        Ok(page)
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
        if kind == ResourceKind::Group
            && let Some((rest, delta)) = patch.membership_delta()
        {
            let raw = self.raw_delta(source, &delta).await?;
            let apply = |current: &Resource| -> Result<Option<Map<String, Value>>, BackendError> {
                if rest.ops.is_empty() {
                    return Ok(None);
                }
                let outcome = rest.apply(current)?;
                Ok(outcome.changed.then_some(outcome.attrs))
            };
            self.apply_group_change(source, id, Some(&apply), &raw, expected, false)
                .await?;
            return self.get(source, kind, id, load).await;
        }
        // The generic path: apply in the core, write over with a compare-and-swap.
        for _ in 0..WRITE_RETRIES {
            let current = self.get(source, kind, id, Load::ALL).await?;
            if expected.is_some_and(|v| v != current.meta.version) {
                return Err(BackendError::VersionMismatch);
            }
            let outcome = patch.apply(&current)?;
            if !outcome.changed {
                return self.get(source, kind, id, load).await;
            }
            match self
                .write_over(
                    source,
                    kind,
                    id,
                    &outcome.attrs,
                    Some(current.meta.version),
                    false,
                )
                .await
            {
                Ok(()) => return self.get(source, kind, id, load).await,
                Err(BackendError::VersionMismatch) if expected.is_none() => continue,
                Err(e) => return Err(e),
            }
        }
        Err(BackendError::Unavailable {
            detail: "too many concurrent changes to this resource; retry".into(),
            retry_after: Some(1),
        })
    }

    async fn health(&self) -> Result<(), BackendError> {
        let found = self
            .search("", Scope::Base, "(objectClass=*)", &["1.1".to_string()], 1)
            .await?;
        if found.is_empty() {
            return Err(BackendError::Unavailable {
                detail: "the directory's root DSE is not readable".into(),
                retry_after: Some(self.pool.retry_after),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backend(lossless: bool, password: Option<PasswordConfig>) -> LdapBackend {
        let mut c = LdapConfig::new("ldap://127.0.0.1:1", "dc=example,dc=org");
        c.lossless = lossless;
        c.users.password = password;
        LdapBackend::new(&c, Arc::new(SchemaRegistry::new())).unwrap()
    }

    fn attribute_names(reg: &SchemaRegistry, urn: &str) -> Vec<String> {
        reg.schema(urn)
            .map(|s| s.attributes.iter().map(|a| a.name.clone()).collect())
            .unwrap_or_default()
    }

    #[test]
    fn mapped_sources_host_only_what_the_mapping_stores() {
        let b = backend(false, None);
        let reg = Arc::new(SchemaRegistry::new());
        let hosted = b.hosted_schemas(&reg).unwrap();
        // The configuration alone says the same (the server narrows before it connects).
        let config = LdapConfig::new("ldap://127.0.0.1:1", "dc=example,dc=org");
        assert_eq!(*config.hosted_schemas(&reg).unwrap(), *hosted);
        let user = hosted.resource_type(ResourceKind::User);
        let name = user.schema.attribute("name").unwrap();
        assert!(name.sub_attribute("givenName").is_some());
        assert!(name.sub_attribute("middleName").is_none());
        for gone in ["x509Certificates", "ims", "nickName", "photos", "locale"] {
            assert!(user.schema.attribute(gone).is_none(), "{gone}");
        }
        assert!(!user.external_id);
        assert_eq!(
            attribute_names(&hosted, scimd_core::schema::ENTERPRISE_USER),
            ["employeeNumber", "organization", "department", "manager"]
        );
        assert_eq!(
            attribute_names(&hosted, scimd_core::schema::GROUP),
            ["displayName", "members"]
        );
    }

    #[test]
    fn lossless_sources_host_every_attribute_but_an_unwritable_password() {
        let reg = Arc::new(SchemaRegistry::new());
        let b = backend(true, None);
        assert!(b.storable_paths(&reg, ResourceKind::User).is_none());
        assert!(Arc::ptr_eq(&b.hosted_schemas(&reg).unwrap(), &reg));
        // With passwords not written, everything but `password`, custom extensions included.
        let mut custom = SchemaRegistry::new();
        let ext = scimd_core::schema::Schema::from_json(&serde_json::json!({
            "id": "urn:example:ext:1.0:User",
            "attributes": [{"name": "badge", "type": "string"}]
        }))
        .unwrap();
        custom
            .add_extension(ResourceKind::User, ext, false)
            .unwrap();
        let custom = Arc::new(custom);
        let hosted = backend(true, Some(PasswordConfig::None))
            .hosted_schemas(&custom)
            .unwrap();
        let user = hosted.resource_type(ResourceKind::User);
        assert!(user.schema.attribute("password").is_none());
        assert!(user.external_id);
        let full = custom.resource_type(ResourceKind::User);
        assert_eq!(
            user.schema.attributes.len(),
            full.schema.attributes.len() - 1
        );
        assert_eq!(user.extensions, full.extensions);
        assert_eq!(
            hosted.resource_type(ResourceKind::Group),
            custom.resource_type(ResourceKind::Group)
        );
    }

    #[test]
    fn dns_split_respecting_escapes() {
        assert_eq!(
            split_dn("cn=a\\,b,ou=groups,dc=x"),
            vec!["cn=a\\,b", "ou=groups", "dc=x"]
        );
        assert_eq!(
            first_rdn("uid=j\\2csmith,ou=p"),
            Some(("uid".into(), "j,smith".into()))
        );
        assert_eq!(first_rdn("uid=a\\+b,ou=p").map(|x| x.1), Some("a+b".into()));
    }

    #[test]
    fn multi_values_compare_as_sets() {
        let a = serde_json::json!([{"value": "x"}, {"value": "y"}]);
        let b = serde_json::json!([{"value": "y"}, {"value": "x"}]);
        assert!(same_values(Some(&a), Some(&b)));
        assert!(!same_values(Some(&a), None));
    }
}
