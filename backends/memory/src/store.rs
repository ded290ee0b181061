//! The resources of one source and every rule that needs them all: `userName` uniqueness,
//! member references, the membership relation in both directions, versions.
//!
//! Everything here is synchronous; the backend holds the source's lock around each call.

use crate::members::{MemberInfo, MemberList};
use scimd_core::filter::{CompValue, CompareOp, Filter, matches};
use scimd_core::paging::paginate;
use scimd_core::patch::Member;
use scimd_core::query::{CursorPosition, Load, Page, Query, QueryPage, Sort};
use scimd_core::resource::{Meta, Resource, Version, now};
use scimd_core::schema::{ResourceKind, ResourceTypeDef};
use scimd_core::{AttrPath, BackendError, PatchRequest};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::ops::Bound;

/// The attribute of a group that holds its members.
const MEMBERS: &str = "members";
/// The derived attribute of a user that lists its groups.
const GROUPS: &str = "groups";
/// The attribute unique per source.
const USER_NAME: &str = "userName";

/// A group: its plain attributes (without `members`) and its member relation.
#[derive(Debug, Clone)]
struct GroupEntry {
    resource: Resource,
    members: MemberList,
}

/// One source's resources and indexes.
#[derive(Debug, Default)]
pub(crate) struct SourceStore {
    /// Users by id (ordered, so unsorted pages are read in id order without sorting);
    /// `attrs` never holds `groups` (derived on read).
    users: BTreeMap<String, Resource>,
    /// Groups by id.
    groups: BTreeMap<String, GroupEntry>,
    /// Lower-cased `userName` → user id.
    user_names: HashMap<String, String>,
    /// Member id (user or group) → the groups it is a direct member of.
    member_of: HashMap<String, BTreeSet<String>>,
}

/// A member reference checked against the source: its id and what is stored about it.
type ResolvedMember = (String, MemberInfo);

impl SourceStore {
    /// Stores a new resource.
    pub fn create(
        &mut self,
        kind: ResourceKind,
        attrs: Map<String, Value>,
    ) -> Result<Resource, BackendError> {
        self.create_with_id(kind, None, attrs)
    }

    /// Creates a resource under a given id (an import), or a fresh one when `None`.
    pub fn create_with_id(
        &mut self,
        kind: ResourceKind,
        id: Option<String>,
        mut attrs: Map<String, Value>,
    ) -> Result<Resource, BackendError> {
        let id = match id {
            Some(id) if self.users.contains_key(&id) || self.groups.contains_key(&id) => {
                return Err(BackendError::Uniqueness("id".into()));
            }
            Some(id) => id,
            None => self.new_id(),
        };
        match kind {
            ResourceKind::User => {
                attrs.remove(GROUPS);
                let key = user_name_key(&attrs)?;
                if key
                    .as_ref()
                    .is_some_and(|k| self.user_names.contains_key(k))
                {
                    return Err(BackendError::Uniqueness(USER_NAME.into()));
                }
                if let Some(k) = key {
                    self.user_names.insert(k, id.clone());
                }
                let resource = new_resource(&id, kind, attrs);
                self.users.insert(id, resource.clone());
                // A new user is in no group yet, so the stored form is the full form.
                Ok(resource)
            }
            ResourceKind::Group => {
                let members = self.resolve_members(take_members(&mut attrs)?)?;
                let mut list = MemberList::default();
                for (mid, info) in members {
                    if list.insert(&mid, info) {
                        self.member_of.entry(mid).or_default().insert(id.clone());
                    }
                }
                let entry = GroupEntry {
                    resource: new_resource(&id, kind, attrs),
                    members: list,
                };
                let out = group_json(&entry, Load::ALL);
                self.groups.insert(id, entry);
                Ok(out)
            }
        }
    }

    /// Reads a resource with the relations `load` asks for.
    pub fn get(&self, kind: ResourceKind, id: &str, load: Load) -> Result<Resource, BackendError> {
        match kind {
            ResourceKind::User => self
                .users
                .get(id)
                .map(|u| self.user_json(u, load))
                .ok_or_else(|| not_found(id)),
            ResourceKind::Group => self
                .groups
                .get(id)
                .map(|g| group_json(g, load))
                .ok_or_else(|| not_found(id)),
        }
    }

    /// Replaces a resource's attributes (PUT).
    pub fn replace(
        &mut self,
        kind: ResourceKind,
        id: &str,
        attrs: Map<String, Value>,
        expected: Option<Version>,
    ) -> Result<Resource, BackendError> {
        check_version(self.version_of(kind, id)?, expected)?;
        match kind {
            ResourceKind::User => self.write_user(id, attrs, Load::ALL),
            ResourceKind::Group => self.write_group(id, attrs, Load::ALL),
        }
    }

    /// Deletes a resource and removes it from every group it was a member of.
    pub fn delete(
        &mut self,
        kind: ResourceKind,
        id: &str,
        expected: Option<Version>,
    ) -> Result<(), BackendError> {
        check_version(self.version_of(kind, id)?, expected)?;
        match kind {
            ResourceKind::User => {
                if let Some(user) = self.users.remove(id)
                    && let Ok(Some(k)) = user_name_key(&user.attrs)
                {
                    // Only drop the index entry if it is this user's (it always is, but a
                    // stale entry must never hide another user's name).
                    if self.user_names.get(&k).is_some_and(|owner| owner == id) {
                        self.user_names.remove(&k);
                    }
                }
            }
            ResourceKind::Group => {
                if let Some(group) = self.groups.remove(id) {
                    for mid in group.members.ids() {
                        self.unlink(mid, id);
                    }
                }
            }
        }
        // Groups that had the deleted resource as a member change: new version, new time.
        if let Some(parents) = self.member_of.remove(id) {
            for gid in parents {
                if let Some(g) = self.groups.get_mut(&gid)
                    && g.members.remove(id)
                {
                    touch(&mut g.resource.meta);
                }
            }
        }
        Ok(())
    }

    /// Applies a PATCH atomically. Member operations of a group PATCH are applied as deltas
    /// whenever the core can express them so.
    pub fn patch(
        &mut self,
        kind: ResourceKind,
        id: &str,
        patch: &PatchRequest,
        expected: Option<Version>,
        load: Load,
    ) -> Result<Resource, BackendError> {
        if patch.kind() != kind {
            return Err(BackendError::Internal(format!(
                "a {} PATCH cannot be applied to a {}",
                patch.kind().name(),
                kind.name()
            )));
        }
        check_version(self.version_of(kind, id)?, expected)?;
        match kind {
            ResourceKind::User => {
                let current = self.users.get(id).ok_or_else(|| not_found(id))?;
                let outcome = patch.apply(current)?;
                if !outcome.changed {
                    return Ok(self.user_json(current, load));
                }
                self.write_user(id, outcome.attrs, load)
            }
            ResourceKind::Group => match patch.membership_delta() {
                Some((rest, delta)) => self.patch_group_delta(id, &rest, delta, load),
                None => {
                    let full = self.get(kind, id, Load::ALL)?;
                    let outcome = patch.apply(&full)?;
                    if !outcome.changed {
                        return self.get(kind, id, load);
                    }
                    self.write_group(id, outcome.attrs, load)
                }
            },
        }
    }

    /// Applies the non-member operations of a group PATCH to the group without its members,
    /// then the membership delta, touching only the members named.
    fn patch_group_delta(
        &mut self,
        id: &str,
        rest: &PatchRequest,
        delta: scimd_core::MembershipDelta,
        load: Load,
    ) -> Result<Resource, BackendError> {
        let entry = self.groups.get(id).ok_or_else(|| not_found(id))?;
        let outcome = if rest.ops.is_empty() {
            None
        } else {
            Some(rest.apply(&entry.resource)?)
        };
        // Every reference is checked before anything changes, so a bad member fails the whole
        // request and leaves the group as it was.
        let replacement = delta
            .replace
            .map(|ms| self.resolve_members(ms))
            .transpose()?;
        let additions = self.resolve_members(delta.add)?;

        let mut changed = false;
        if let Some(list) = replacement {
            changed |= self.set_members(id, list);
        }
        for mid in &delta.remove {
            changed |= self.remove_member(id, mid);
        }
        for (mid, info) in additions {
            changed |= self.add_member(id, mid, info);
        }
        let entry = self.groups.get_mut(id).ok_or_else(|| not_found(id))?;
        if let Some(o) = outcome
            && o.changed
        {
            let mut attrs = o.attrs;
            attrs.remove(MEMBERS);
            entry.resource.attrs = attrs;
            changed = true;
        }
        if changed {
            touch(&mut entry.resource.meta);
        }
        Ok(group_json(entry, load))
    }

    /// Finds, sorts and pages resources.
    pub fn query(
        &self,
        rt: &ResourceTypeDef,
        kind: ResourceKind,
        query: &Query,
    ) -> Result<QueryPage, BackendError> {
        let filter = query.filter.as_ref();
        if filter.is_none() && query.sort.is_none() {
            let ids = match kind {
                ResourceKind::User => natural_page(&self.users, &query.page),
                ResourceKind::Group => natural_page(&self.groups, &query.page),
            };
            return Ok(QueryPage {
                total_results: self.count(kind),
                resources: ids
                    .ids
                    .iter()
                    .map(|id| self.get(kind, id, query.load))
                    .collect::<Result<_, _>>()?,
                next: ids.next,
                previous: ids.previous,
            });
        }
        let filter_needs_relations = filter.is_some_and(|f| references_relation(f, kind));
        let sort = query.sort.as_ref();
        let sort_needs_relations = sort.is_some_and(|s| is_relation(&s.path, kind));

        let candidates = filter.and_then(|f| self.candidates(f, kind));
        let ids: Box<dyn Iterator<Item = &str> + '_> = match (&candidates, kind) {
            (Some(set), _) => Box::new(set.iter().copied()),
            (None, ResourceKind::User) => Box::new(self.users.keys().map(String::as_str)),
            (None, ResourceKind::Group) => Box::new(self.groups.keys().map(String::as_str)),
        };

        // Paging only needs each match's id, meta and sort value; the full resources are built
        // for the returned page alone.
        let mut matched = Vec::new();
        for id in ids {
            let Some(stored) = self.stored(kind, id) else {
                continue;
            };
            let full =
                (filter_needs_relations || sort_needs_relations).then(|| self.full(kind, stored));
            let subject = full.as_ref().unwrap_or(stored);
            if filter.is_some_and(|f| !matches(f, rt, subject)) {
                continue;
            }
            matched.push(match full {
                Some(r) => r,
                None => skeleton(stored, sort),
            });
        }
        let mut page = paginate(rt, matched, sort, &query.page);
        for r in &mut page.resources {
            *r = self.get(kind, &r.id, query.load)?;
        }
        Ok(page)
    }

    /// The number of resources of a type.
    fn count(&self, kind: ResourceKind) -> u64 {
        let n = match kind {
            ResourceKind::User => self.users.len(),
            ResourceKind::Group => self.groups.len(),
        };
        u64::try_from(n).unwrap_or(u64::MAX)
    }

    /// The ids that can possibly match `filter`, when an index narrows them down; `None` means
    /// every resource must be evaluated. Always a superset of the matches: the filter is still
    /// evaluated on each candidate.
    fn candidates<'a>(&'a self, filter: &Filter, kind: ResourceKind) -> Option<HashSet<&'a str>> {
        match filter {
            Filter::Compare {
                path,
                op: CompareOp::Eq,
                value: CompValue::Str(v),
            } if path.urn.is_none() => {
                let name = path.name.as_str();
                let sub = path.sub.as_deref();
                match (kind, name, sub) {
                    (_, "id", None) => Some(self.stored_key(kind, v).into_iter().collect()),
                    (ResourceKind::User, USER_NAME, None) => Some(
                        self.user_names
                            .get(&fold_case(v))
                            .map(String::as_str)
                            .into_iter()
                            .collect(),
                    ),
                    (ResourceKind::Group, MEMBERS, Some("value")) => Some(self.groups_of(v)),
                    // Ids are lower-case, and `groups.value` compares case-insensitively.
                    (ResourceKind::User, GROUPS, Some("value")) => {
                        Some(self.user_members_of(&fold_case(v)))
                    }
                    _ => None,
                }
            }
            Filter::ValuePath { path, filter } if path.urn.is_none() && path.sub.is_none() => {
                let relation = match kind {
                    ResourceKind::Group => MEMBERS,
                    ResourceKind::User => GROUPS,
                };
                if path.name != relation {
                    return None;
                }
                value_eq_in(filter).and_then(|v| {
                    self.candidates(
                        &Filter::Compare {
                            path: AttrPath::with_sub(relation, "value"),
                            op: CompareOp::Eq,
                            value: CompValue::Str(v.to_string()),
                        },
                        kind,
                    )
                })
            }
            Filter::And(a, b) => match (self.candidates(a, kind), self.candidates(b, kind)) {
                (Some(x), Some(y)) => Some(x.intersection(&y).copied().collect()),
                (Some(x), None) | (None, Some(x)) => Some(x),
                (None, None) => None,
            },
            Filter::Or(a, b) => {
                let mut x = self.candidates(a, kind)?;
                x.extend(self.candidates(b, kind)?);
                Some(x)
            }
            _ => None,
        }
    }

    /// The groups `member` is a direct member of.
    fn groups_of(&self, member: &str) -> HashSet<&str> {
        self.member_of
            .get(member)
            .map(|gs| gs.iter().map(String::as_str).collect())
            .unwrap_or_default()
    }

    /// The users that are direct members of `group`.
    fn user_members_of(&self, group: &str) -> HashSet<&str> {
        self.groups
            .get(group)
            .map(|g| {
                g.members
                    .iter()
                    .filter(|(_, info)| info.kind == ResourceKind::User)
                    .map(|(id, _)| id)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The stored key equal to `id`, borrowed from the store.
    fn stored_key(&self, kind: ResourceKind, id: &str) -> Option<&str> {
        match kind {
            ResourceKind::User => self.users.get_key_value(id).map(|(k, _)| k.as_str()),
            ResourceKind::Group => self.groups.get_key_value(id).map(|(k, _)| k.as_str()),
        }
    }

    /// The stored resource without relations.
    fn stored(&self, kind: ResourceKind, id: &str) -> Option<&Resource> {
        match kind {
            ResourceKind::User => self.users.get(id),
            ResourceKind::Group => self.groups.get(id).map(|g| &g.resource),
        }
    }

    /// The resource with every relation, for evaluating filters and sorts that name one.
    fn full(&self, kind: ResourceKind, stored: &Resource) -> Resource {
        match kind {
            ResourceKind::User => self.user_json(stored, Load::ALL),
            ResourceKind::Group => match self.groups.get(&stored.id) {
                Some(g) => group_json(g, Load::ALL),
                None => stored.clone(),
            },
        }
    }

    fn version_of(&self, kind: ResourceKind, id: &str) -> Result<Version, BackendError> {
        self.stored(kind, id)
            .map(|r| r.meta.version)
            .ok_or_else(|| not_found(id))
    }

    /// A user with `groups` derived when `load` asks for it.
    fn user_json(&self, user: &Resource, load: Load) -> Resource {
        let mut out = user.clone();
        if load.groups
            && let Some(gids) = self.member_of.get(&user.id)
            && !gids.is_empty()
        {
            let groups = gids
                .iter()
                .map(|gid| {
                    let mut m = Map::with_capacity(3);
                    m.insert("value".into(), Value::String(gid.clone()));
                    if let Some(d) = self
                        .groups
                        .get(gid)
                        .and_then(|g| g.resource.attrs.get("displayName"))
                    {
                        m.insert("display".into(), d.clone());
                    }
                    m.insert("type".into(), Value::String("direct".into()));
                    Value::Object(m)
                })
                .collect();
            out.attrs.insert(GROUPS.into(), Value::Array(groups));
        }
        out
    }

    /// Writes new attributes of an existing user (uniqueness checked) and bumps its version.
    fn write_user(
        &mut self,
        id: &str,
        mut attrs: Map<String, Value>,
        load: Load,
    ) -> Result<Resource, BackendError> {
        attrs.remove(GROUPS);
        let new_key = user_name_key(&attrs)?;
        let user = self.users.get_mut(id).ok_or_else(|| not_found(id))?;
        let old_key = user_name_key(&user.attrs).ok().flatten();
        if new_key != old_key {
            if let Some(k) = &new_key
                && self.user_names.get(k).is_some_and(|owner| owner != id)
            {
                return Err(BackendError::Uniqueness(USER_NAME.into()));
            }
            if let Some(k) = &old_key
                && self.user_names.get(k).is_some_and(|owner| owner == id)
            {
                self.user_names.remove(k);
            }
            if let Some(k) = new_key {
                self.user_names.insert(k, id.to_string());
            }
        }
        user.attrs = attrs;
        touch(&mut user.meta);
        let user = &self.users[id];
        Ok(self.user_json(user, load))
    }

    /// Writes new attributes of an existing group, `members` (if any) being the new member list,
    /// and bumps its version.
    fn write_group(
        &mut self,
        id: &str,
        mut attrs: Map<String, Value>,
        load: Load,
    ) -> Result<Resource, BackendError> {
        if !self.groups.contains_key(id) {
            return Err(not_found(id));
        }
        let members = self.resolve_members(take_members(&mut attrs)?)?;
        self.set_members(id, members);
        let entry = self.groups.get_mut(id).ok_or_else(|| not_found(id))?;
        entry.resource.attrs = attrs;
        touch(&mut entry.resource.meta);
        Ok(group_json(entry, load))
    }

    /// Makes `members` the member list of group `gid`, keeping the reverse index in step.
    /// Returns whether anything changed.
    fn set_members(&mut self, gid: &str, members: Vec<ResolvedMember>) -> bool {
        let Some(entry) = self.groups.get_mut(gid) else {
            return false;
        };
        if entry.members.same_as(&members) {
            return false;
        }
        let old = std::mem::take(&mut entry.members);
        let keep: HashSet<&str> = members.iter().map(|(id, _)| id.as_str()).collect();
        let dropped: Vec<String> = old
            .ids()
            .filter(|id| !keep.contains(id))
            .map(str::to_string)
            .collect();
        for (mid, info) in members {
            if entry.members.insert(&mid, info) && !old.contains(&mid) {
                self.member_of
                    .entry(mid)
                    .or_default()
                    .insert(gid.to_string());
            }
        }
        for mid in dropped {
            self.unlink(&mid, gid);
        }
        true
    }

    /// Adds one member to a group. Returns whether it was not a member before.
    fn add_member(&mut self, gid: &str, mid: String, info: MemberInfo) -> bool {
        let Some(entry) = self.groups.get_mut(gid) else {
            return false;
        };
        if !entry.members.insert(&mid, info) {
            return false;
        }
        self.member_of
            .entry(mid)
            .or_default()
            .insert(gid.to_string());
        true
    }

    /// Removes one member from a group. Returns whether it was a member.
    fn remove_member(&mut self, gid: &str, mid: &str) -> bool {
        let Some(entry) = self.groups.get_mut(gid) else {
            return false;
        };
        if !entry.members.remove(mid) {
            return false;
        }
        self.unlink(mid, gid);
        true
    }

    /// Drops `gid` from the reverse index entry of `mid`.
    fn unlink(&mut self, mid: &str, gid: &str) {
        if let Some(gs) = self.member_of.get_mut(mid) {
            gs.remove(gid);
            if gs.is_empty() {
                self.member_of.remove(mid);
            }
        }
    }

    /// Checks that every member exists in this source, fills in its type from what it is,
    /// and drops repeated ids (the first occurrence wins).
    fn resolve_members(&self, members: Vec<Member>) -> Result<Vec<ResolvedMember>, BackendError> {
        let mut seen = HashSet::with_capacity(members.len());
        let mut out = Vec::with_capacity(members.len());
        for m in members {
            let kind = if self.users.contains_key(&m.value) {
                ResourceKind::User
            } else if self.groups.contains_key(&m.value) {
                ResourceKind::Group
            } else {
                return Err(BackendError::InvalidReference(m.value));
            };
            if seen.insert(m.value.clone()) {
                out.push((
                    m.value,
                    MemberInfo {
                        kind,
                        display: m.display,
                    },
                ));
            }
        }
        Ok(out)
    }

    /// A fresh UUIDv4 that no resource of this source has.
    fn new_id(&self) -> String {
        loop {
            let id = uuid::Uuid::new_v4().to_string();
            if !self.users.contains_key(&id) && !self.groups.contains_key(&id) {
                return id;
            }
        }
    }
}

fn not_found(id: &str) -> BackendError {
    BackendError::NotFound(id.to_string())
}

fn check_version(current: Version, expected: Option<Version>) -> Result<(), BackendError> {
    match expected {
        Some(v) if v != current => Err(BackendError::VersionMismatch),
        _ => Ok(()),
    }
}

fn new_resource(id: &str, kind: ResourceKind, attrs: Map<String, Value>) -> Resource {
    let t = now();
    Resource {
        id: id.to_string(),
        kind,
        meta: Meta {
            created: t,
            last_modified: t,
            version: Version::FIRST,
        },
        attrs,
    }
}

/// Records a change: the next version, and a `lastModified` that never goes backwards even if
/// the wall clock does.
fn touch(meta: &mut Meta) {
    meta.version = meta.version.next();
    meta.last_modified = now().max(meta.last_modified);
}

/// The case-insensitive key of a string: each character's Unicode default lower-case mapping.
///
/// This is the mapping the reference evaluator compares non-caseExact strings with. It is
/// deliberately per character, unlike `str::to_lowercase` (which lower-cases a word-final `Σ`
/// to `ς`): uniqueness and `userName eq` must agree on which names are the same.
pub(crate) fn fold_case(s: &str) -> String {
    s.chars().flat_map(char::to_lowercase).collect()
}

/// The index key of a user's `userName`.
fn user_name_key(attrs: &Map<String, Value>) -> Result<Option<String>, BackendError> {
    match attrs.get(USER_NAME) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(fold_case(s))),
        Some(_) => Err(BackendError::InvalidValue(
            "userName must be a string".into(),
        )),
    }
}

/// Removes `members` from group attributes and reads it as member references.
fn take_members(attrs: &mut Map<String, Value>) -> Result<Vec<Member>, BackendError> {
    let items = match attrs.remove(MEMBERS) {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(items)) => items,
        Some(_) => return Err(BackendError::InvalidValue("members must be a list".into())),
    };
    items
        .into_iter()
        .map(|item| {
            let Value::Object(mut obj) = item else {
                return Err(BackendError::InvalidValue(
                    "each member must be an object".into(),
                ));
            };
            let value = match obj.remove("value") {
                Some(Value::String(s)) => s,
                _ => {
                    return Err(BackendError::InvalidValue(
                        "each member needs a string value".into(),
                    ));
                }
            };
            let display = match obj.remove("display") {
                Some(Value::String(s)) => Some(s),
                _ => None,
            };
            Ok(Member {
                value,
                kind: None,
                display,
            })
        })
        .collect()
}

/// A group with `members` when `load` asks for them and there are any.
fn group_json(entry: &GroupEntry, load: Load) -> Resource {
    let mut out = entry.resource.clone();
    if load.members && !entry.members.is_empty() {
        out.attrs.insert(MEMBERS.into(), entry.members.to_json());
    }
    out
}

/// What paging needs of a stored resource: id, meta and the value sorted by.
fn skeleton(stored: &Resource, sort: Option<&Sort>) -> Resource {
    let mut attrs = Map::new();
    if let Some(s) = sort {
        match &s.path.urn {
            None => {
                if let Some(v) = stored.attrs.get(&s.path.name) {
                    attrs.insert(s.path.name.clone(), v.clone());
                }
            }
            Some(urn) => {
                if let Some(v) = stored.attrs.get(urn).and_then(|ext| ext.get(&s.path.name)) {
                    let mut ext = Map::new();
                    ext.insert(s.path.name.clone(), v.clone());
                    attrs.insert(urn.clone(), Value::Object(ext));
                }
            }
        }
    }
    Resource {
        id: stored.id.clone(),
        kind: stored.kind,
        meta: stored.meta.clone(),
        attrs,
    }
}

/// Whether `path` names the derived relation of `kind` (`members` of groups, `groups` of
/// users), which the stored attributes do not hold.
fn is_relation(path: &AttrPath, kind: ResourceKind) -> bool {
    let relation = match kind {
        ResourceKind::Group => MEMBERS,
        ResourceKind::User => GROUPS,
    };
    path.urn.is_none() && path.name.eq_ignore_ascii_case(relation)
}

/// Whether a filter names the derived relation anywhere.
fn references_relation(filter: &Filter, kind: ResourceKind) -> bool {
    // An explicit stack keeps this walk flat however deep the filter nests.
    let mut stack = vec![filter];
    while let Some(f) = stack.pop() {
        match f {
            Filter::Compare { path, .. } | Filter::Present(path) => {
                if is_relation(path, kind) {
                    return true;
                }
            }
            Filter::ValuePath { path, .. } => {
                if is_relation(path, kind) {
                    return true;
                }
            }
            Filter::And(a, b) | Filter::Or(a, b) => {
                stack.push(a);
                stack.push(b);
            }
            Filter::Not(a) => stack.push(a),
        }
    }
    false
}

/// In a value filter on a relation (`members[...]`), the string `v` of a conjunct
/// `value eq v`, if there is one: every match must then have that member.
fn value_eq_in(filter: &Filter) -> Option<&str> {
    match filter {
        Filter::Compare {
            path,
            op: CompareOp::Eq,
            value: CompValue::Str(v),
        } if path.urn.is_none() && path.sub.is_none() && path.name == "value" => Some(v),
        Filter::And(a, b) => value_eq_in(a).or_else(|| value_eq_in(b)),
        _ => None,
    }
}

/// The ids of one unsorted, unfiltered page, with its neighbouring cursor positions.
#[derive(Debug, PartialEq)]
struct NaturalPage<'a> {
    ids: Vec<&'a str>,
    next: Option<CursorPosition>,
    previous: Option<CursorPosition>,
}

/// Pages every resource in id order straight from the ordered map: the same result as
/// [`paginate`] without a sort (whose order is by id and whose cursor key is `null`), but
/// without collecting and sorting every resource, so a page costs its size plus the skip.
fn natural_page<'a, V>(map: &'a BTreeMap<String, V>, page: &Page) -> NaturalPage<'a> {
    let to_usize = |v: u64| usize::try_from(v).unwrap_or(usize::MAX);
    match page {
        Page::Index { start_index, count } => NaturalPage {
            ids: map
                .keys()
                .skip(to_usize(start_index.saturating_sub(1)))
                .take(to_usize(*count))
                .map(String::as_str)
                .collect(),
            next: None,
            previous: None,
        },
        Page::Cursor { position, count } => {
            let count = to_usize(*count);
            let ids: Vec<&str> = match position {
                None => map.keys().take(count).map(String::as_str).collect(),
                Some(p) if p.backward => {
                    let mut ids: Vec<&str> = map
                        .range::<str, _>((Bound::Unbounded, Bound::Excluded(p.id.as_str())))
                        .rev()
                        .take(count)
                        .map(|(k, _)| k.as_str())
                        .collect();
                    ids.reverse();
                    ids
                }
                Some(p) => map
                    .range::<str, _>((Bound::Excluded(p.id.as_str()), Bound::Unbounded))
                    .take(count)
                    .map(|(k, _)| k.as_str())
                    .collect(),
            };
            let position = |id: &str, backward| CursorPosition {
                key: Value::Null,
                id: id.to_string(),
                backward,
            };
            let next = ids.last().and_then(|last| {
                map.range::<str, _>((Bound::Excluded(*last), Bound::Unbounded))
                    .next()
                    .map(|_| position(last, false))
            });
            let previous = ids.first().and_then(|first| {
                map.range::<str, _>((Bound::Unbounded, Bound::Excluded(*first)))
                    .next_back()
                    .map(|_| position(first, true))
            });
            NaturalPage {
                ids,
                next,
                previous,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use scimd_core::SchemaRegistry;

    fn resources(n: usize) -> BTreeMap<String, Resource> {
        (0..n)
            .map(|i| {
                let id = format!("id-{:02}", i * 2);
                let r = new_resource(&id, ResourceKind::User, Map::new());
                (id, r)
            })
            .collect()
    }

    /// The natural-order fast path pages exactly like the reference `paginate` without a sort,
    /// for every index page and every cursor position (existing ids and ids between them).
    #[test]
    fn natural_pages_equal_the_reference() {
        let reg = SchemaRegistry::new();
        let rt = reg.resource_type(ResourceKind::User);
        for n in 0..7 {
            let map = resources(n);
            let all: Vec<Resource> = map.values().cloned().collect();
            let mut pages = Vec::new();
            for start_index in 0..=n as u64 + 2 {
                for count in 0..=n as u64 + 1 {
                    pages.push(Page::Index { start_index, count });
                }
            }
            for count in 0..=n as u64 + 1 {
                pages.push(Page::Cursor {
                    position: None,
                    count,
                });
                for k in 0..=2 * n + 1 {
                    for backward in [false, true] {
                        let position = Some(CursorPosition {
                            key: Value::Null,
                            id: format!("id-{k:02}"),
                            backward,
                        });
                        pages.push(Page::Cursor { position, count });
                    }
                }
            }
            for page in pages {
                let want = paginate(rt, all.clone(), None, &page);
                let got = natural_page(&map, &page);
                let want_ids: Vec<&str> = want.resources.iter().map(|r| r.id.as_str()).collect();
                assert_eq!(got.ids, want_ids, "{page:?} over {n}");
                assert_eq!(got.next, want.next, "next of {page:?} over {n}");
                assert_eq!(got.previous, want.previous, "previous of {page:?} over {n}");
            }
        }
    }
}
