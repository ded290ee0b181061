//! The `Backend` trait: the one seam between the protocol core and a store.
//!
//! A backend stores resources for any number of sources (tenants) and never sees HTTP. Every
//! call names the source and the resource type; every write may carry an expected version
//! (from `If-Match`), which the backend compares and swaps atomically. Input has already been
//! normalized and validated by the core; a backend only enforces what needs the store:
//! uniqueness of `userName` (case-insensitive, per source), referential rules for `members`,
//! and versions.
//!
//! Writes watched by outbox hooks (signed events that must not be lost) go through the
//! `*_staged` methods with a [`Stager`]: a backend that keeps the state store's outbox in its
//! own database stores the write's messages in the write's transaction, so the write and its
//! events commit together or not at all; every other backend writes as usual and hands the
//! messages back ([`Staged::pending`]) for the caller to store right after the write.

use crate::error::BackendError;
use crate::patch::PatchRequest;
use crate::query::{Load, Query, QueryPage};
use crate::resource::{Resource, Version};
use crate::schema::ResourceKind;
use crate::state::OutboxMessage;
use async_trait::async_trait;
use serde_json::{Map, Value};
use std::fmt;

/// What a backend can do. Feeds `/ServiceProviderConfig` and gates conformance cases.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    /// Filters are evaluated (every backend must support the full grammar it claims).
    pub filter: bool,
    /// `sortBy`/`sortOrder` are honoured.
    pub sort: bool,
    /// RFC 9865 cursor paging is supported.
    pub cursor_paging: bool,
    /// Versions are maintained and `If-Match` is honoured.
    pub etag: bool,
    /// Passwords can be set (`changePassword` in ServiceProviderConfig).
    pub change_password: bool,
    /// Group membership changes are applied as deltas, without rewriting the member list.
    pub membership_deltas: bool,
    /// The largest number of results one query may return (`filter.maxResults`).
    pub max_results: u64,
}

impl Default for Capabilities {
    fn default() -> Self {
        Capabilities {
            filter: true,
            sort: true,
            cursor_paging: true,
            etag: true,
            change_password: true,
            membership_deltas: false,
            max_results: 1000,
        }
    }
}

/// How often [`Backend::patch`]'s default retries a compare-and-swap that lost a race when the
/// client sent no `If-Match`.
pub const PATCH_RETRIES: usize = 32;

/// Builds the durable outbox messages of a write from its new state (see the module docs).
///
/// A backend calls it once the write succeeded and its new state (id, version, timestamps) is
/// known — inside the write's transaction when it stores the messages there. It runs
/// synchronously and quickly (it signs, it does no I/O), and it may run again when the backend
/// retries a transaction that lost a lock race: only the messages of the attempt that commits
/// count. Closures `Fn(Option<&Resource>) -> Vec<OutboxMessage>` are stagers.
pub trait Stager: Send + Sync {
    /// The messages of a write whose new state is `new` (`None` after a delete).
    fn stage(&self, new: Option<&Resource>) -> Vec<OutboxMessage>;
}

impl<F> Stager for F
where
    F: Fn(Option<&Resource>) -> Vec<OutboxMessage> + Send + Sync,
{
    fn stage(&self, new: Option<&Resource>) -> Vec<OutboxMessage> {
        self(new)
    }
}

/// What a staged write returns: its result and the messages the backend did not store itself.
#[derive(Debug, Clone, PartialEq)]
pub struct Staged<T> {
    /// The write's result, as the plain method returns it.
    pub value: T,
    /// Messages still to be stored in the state store's outbox by the caller; empty when the
    /// backend stored them in the write's transaction.
    pub pending: Vec<OutboxMessage>,
}

impl<T> Staged<T> {
    /// A result whose messages the caller still has to store.
    pub fn pending(value: T, pending: Vec<OutboxMessage>) -> Self {
        Staged { value, pending }
    }

    /// A result whose messages were stored with the write.
    pub fn stored(value: T) -> Self {
        Staged {
            value,
            pending: Vec::new(),
        }
    }
}

/// [`Backend::create_staged`] without a transactional outbox: the plain create, then the
/// messages for the caller to store. A crash between the two loses the messages.
pub async fn create_then_stage<B: Backend + ?Sized>(
    backend: &B,
    source: &str,
    kind: ResourceKind,
    attrs: Map<String, Value>,
    stager: &dyn Stager,
) -> Result<Staged<Resource>, BackendError> {
    let r = backend.create(source, kind, attrs).await?;
    let pending = stager.stage(Some(&r));
    Ok(Staged::pending(r, pending))
}

/// [`Backend::replace_staged`] without a transactional outbox (see [`create_then_stage`]).
pub async fn replace_then_stage<B: Backend + ?Sized>(
    backend: &B,
    source: &str,
    kind: ResourceKind,
    id: &str,
    attrs: Map<String, Value>,
    expected: Option<Version>,
    stager: &dyn Stager,
) -> Result<Staged<Resource>, BackendError> {
    let r = backend.replace(source, kind, id, attrs, expected).await?;
    let pending = stager.stage(Some(&r));
    Ok(Staged::pending(r, pending))
}

/// [`Backend::patch_staged`] without a transactional outbox (see [`create_then_stage`]). A
/// patch that changed nothing keeps the `expected` version and stages nothing.
#[allow(clippy::too_many_arguments)]
pub async fn patch_then_stage<B: Backend + ?Sized>(
    backend: &B,
    source: &str,
    kind: ResourceKind,
    id: &str,
    patch: &PatchRequest,
    expected: Option<Version>,
    load: Load,
    stager: &dyn Stager,
) -> Result<Staged<Resource>, BackendError> {
    let r = backend
        .patch(source, kind, id, patch, expected, load)
        .await?;
    let pending = if expected == Some(r.meta.version) {
        Vec::new()
    } else {
        stager.stage(Some(&r))
    };
    Ok(Staged::pending(r, pending))
}

/// [`Backend::delete_staged`] without a transactional outbox (see [`create_then_stage`]).
pub async fn delete_then_stage<B: Backend + ?Sized>(
    backend: &B,
    source: &str,
    kind: ResourceKind,
    id: &str,
    expected: Option<Version>,
    stager: &dyn Stager,
) -> Result<Staged<()>, BackendError> {
    backend.delete(source, kind, id, expected).await?;
    Ok(Staged::pending((), stager.stage(None)))
}

/// A store of SCIM resources. See the module docs for the division of labour with the core.
#[async_trait]
pub trait Backend: Send + Sync + fmt::Debug {
    /// What this backend supports.
    fn capabilities(&self) -> Capabilities;

    /// Stores a new resource and returns it with its id (assigned by the backend), version
    /// [`Version::FIRST`] and timestamps.
    ///
    /// `attrs` is normalized and validated (see [`Resource::attrs`]). Fails with
    /// [`BackendError::Uniqueness`] when the `userName` of a user is taken in this source
    /// (case-insensitively), and [`BackendError::InvalidReference`] when a group member does not
    /// exist in this source.
    async fn create(
        &self,
        source: &str,
        kind: ResourceKind,
        attrs: Map<String, Value>,
    ) -> Result<Resource, BackendError>;

    /// Reads one resource. `load` says whether members/groups are needed.
    /// Fails with [`BackendError::NotFound`] when no such resource exists in this source.
    async fn get(
        &self,
        source: &str,
        kind: ResourceKind,
        id: &str,
        load: Load,
    ) -> Result<Resource, BackendError>;

    /// Replaces all attributes of a resource (PUT) and increments its version. For groups,
    /// `members` in `attrs` is the new member list; when `attrs` has no `members` key the
    /// group has no members.
    ///
    /// With `expected`, fails with [`BackendError::VersionMismatch`] unless it is the current
    /// version; the check and the write are atomic.
    async fn replace(
        &self,
        source: &str,
        kind: ResourceKind,
        id: &str,
        attrs: Map<String, Value>,
        expected: Option<Version>,
    ) -> Result<Resource, BackendError>;

    /// Deletes a resource. Deleting a user or group also removes it from every group it was a
    /// member of (without changing those groups' versions' meaning: they increase).
    async fn delete(
        &self,
        source: &str,
        kind: ResourceKind,
        id: &str,
        expected: Option<Version>,
    ) -> Result<(), BackendError>;

    /// Finds resources. `query.filter` uses canonical paths; results follow `query.sort`
    /// (missing values last, ties by id) or id order; `total_results` counts every match.
    async fn query(
        &self,
        source: &str,
        kind: ResourceKind,
        query: &Query,
    ) -> Result<QueryPage, BackendError>;

    /// Applies a PATCH atomically and returns the new state (loaded per `load`).
    ///
    /// The default reads the resource, applies the patch in the core and replaces it with a
    /// compare-and-swap on the version, retrying a lost race when the client gave no
    /// `expected` version. Backends override it to apply membership deltas
    /// ([`PatchRequest::membership_delta`]) without rewriting member lists.
    async fn patch(
        &self,
        source: &str,
        kind: ResourceKind,
        id: &str,
        patch: &PatchRequest,
        expected: Option<Version>,
        load: Load,
    ) -> Result<Resource, BackendError> {
        let mut attempts = 0;
        loop {
            let current = self.get(source, kind, id, Load::ALL).await?;
            if expected.is_some_and(|v| v != current.meta.version) {
                return Err(BackendError::VersionMismatch);
            }
            let outcome = patch.apply(&current)?;
            if !outcome.changed {
                return Ok(current);
            }
            match self
                .replace(source, kind, id, outcome.attrs, Some(current.meta.version))
                .await
            {
                Err(BackendError::VersionMismatch)
                    if expected.is_none() && attempts < PATCH_RETRIES =>
                {
                    attempts += 1;
                }
                Ok(r) if load == Load::ALL => return Ok(r),
                Ok(r) => return self.get(source, kind, &r.id, load).await,
                Err(e) => return Err(e),
            }
        }
    }

    /// [`Backend::create`] with the write's outbox messages: once the resource is stored the
    /// backend calls `stager` with it and, when it keeps the state store's outbox in its own
    /// database, stores the messages in the same transaction (returning none as pending); a
    /// failure to store them fails the write. Otherwise it returns them as
    /// [`Staged::pending`]. The default does the latter ([`create_then_stage`]).
    async fn create_staged(
        &self,
        source: &str,
        kind: ResourceKind,
        attrs: Map<String, Value>,
        stager: &dyn Stager,
    ) -> Result<Staged<Resource>, BackendError> {
        create_then_stage(self, source, kind, attrs, stager).await
    }

    /// [`Backend::replace`] with the write's outbox messages, as for
    /// [`Backend::create_staged`]. A write that fails (a version mismatch, a taken `userName`)
    /// stores no message.
    async fn replace_staged(
        &self,
        source: &str,
        kind: ResourceKind,
        id: &str,
        attrs: Map<String, Value>,
        expected: Option<Version>,
        stager: &dyn Stager,
    ) -> Result<Staged<Resource>, BackendError> {
        replace_then_stage(self, source, kind, id, attrs, expected, stager).await
    }

    /// [`Backend::patch`] with the write's outbox messages, as for [`Backend::create_staged`].
    /// The stager sees the whole new state and is not called when the patch changed nothing
    /// (the default tells that by the version staying at `expected`).
    #[allow(clippy::too_many_arguments)]
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
        patch_then_stage(self, source, kind, id, patch, expected, load, stager).await
    }

    /// [`Backend::delete`] with the write's outbox messages (the stager sees `None`), as for
    /// [`Backend::create_staged`].
    async fn delete_staged(
        &self,
        source: &str,
        kind: ResourceKind,
        id: &str,
        expected: Option<Version>,
        stager: &dyn Stager,
    ) -> Result<Staged<()>, BackendError> {
        delete_then_stage(self, source, kind, id, expected, stager).await
    }

    /// Whether the store is reachable (`/readyz`).
    async fn health(&self) -> Result<(), BackendError> {
        Ok(())
    }

    /// Stores a batch of new resources under the ids they bring, all or none (`scimd import`:
    /// a directory moved from another SCIM server keeps the ids its identity provider knows).
    ///
    /// Resources are validated like a create; a group's members must exist in this source or
    /// come earlier in the same batch. Fails like [`Backend::create`], and with
    /// [`BackendError::Uniqueness`] when an id is taken. The default reports
    /// [`BackendError::Unsupported`]: only stores that can keep given ids import.
    async fn import(
        &self,
        source: &str,
        kind: ResourceKind,
        batch: Vec<Imported>,
    ) -> Result<(), BackendError> {
        let _ = (source, kind, batch);
        Err(BackendError::Unsupported(
            "this backend cannot import resources with given ids".into(),
        ))
    }
}

/// A resource for [`Backend::import`].
#[derive(Debug, Clone, PartialEq)]
pub struct Imported {
    /// The id it keeps; the backend assigns one when `None`.
    pub id: Option<String>,
    /// Its attributes, normalized and validated as for [`Backend::create`].
    pub attrs: Map<String, Value>,
}
