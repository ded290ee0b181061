//! Hooks: operator logic between the identity provider and the store.
//!
//! A [`Hook`] takes part in every write of a source in up to four phases:
//!
//! - **map** ([`Phase::Map`]): transforms the incoming resource after it was canonicalized
//!   (attribute names and URNs in canonical spelling, extension attributes under their URN) and
//!   *before* it is validated, so a mapping may supply a required attribute the client left out
//!   (`userName` from the work email). Runs for create, replace and patch (on the patched state).
//! - **decide** ([`Phase::Decide`]): sees the validated resource (and, for a delete, only the
//!   current state) and may change it once more or veto the write with a SCIM error (status,
//!   `scimType`, detail). A veto stops the chain; nothing is written.
//! - **outbox** ([`Phase::Outbox`]): builds the durable messages of a successful write (signed
//!   events that must reach a receiver) from the same [`WriteRecord`] react hooks see. The
//!   messages are stored in the state store's outbox *in the write's own transaction* when the
//!   backend keeps that outbox in its database (the SQL backend when the state store is its
//!   database: see [`Backend::create_staged`](crate::backend::Backend::create_staged)), so the
//!   write and its messages commit together; with any other backend they are stored right after
//!   the write, before the response (a crash in between loses them). The phase is synchronous
//!   because it runs inside the backend's transaction. Like react, it never fails the request:
//!   a hook that cannot build its messages is logged and counted as a react failure.
//! - **react** ([`Phase::React`]): runs after a successful write (and after its outbox messages
//!   are stored) with the old and the new state, the operation, the source, the token name and
//!   the request id. A failing react hook never fails the request: the failure is logged and
//!   counted.
//!
//! A [`HookPipeline`] holds a source's hooks in configured order and runs each phase over all
//! hooks that [apply](Hook::applies) to the resource type and operation; a [`Watch`] carries
//! one write through the outbox and react phases. The
//! [`Service`](crate::service::Service) drives it; Bulk operations go through the same service
//! methods, so every bulk operation passes through the pipeline like the single request it
//! stands for.
//!
//! Hooks never see secrets they do not need: the pipeline hands them the canonical attributes,
//! which include `password` on a write (a mapping may need to drop it); the built-in audit log
//! removes it before writing anything.

use crate::backend::{Staged, Stager};
use crate::error::ScimError;
use crate::resource::Resource;
use crate::schema::ResourceKind;
use crate::state::{OutboxMessage, StateStore};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// Counter of decide-phase vetoes, labelled by source and hook.
pub const METRIC_VETOES: &str = "scimd_hook_vetoes_total";
/// Counter of failed react-phase calls, labelled by source and hook. Outbox-phase failures (a
/// message that could not be built or stored) count here too.
pub const METRIC_REACT_FAILURES: &str = "scimd_hook_react_failures_total";
/// Counter of map/decide calls that failed for a reason other than a deliberate veto (a
/// plugin that panicked, timed out or answered garbage), labelled by source and hook.
pub const METRIC_FAILURES: &str = "scimd_hook_failures_total";

/// Registers the descriptions (`# HELP`) of the hook metrics with the installed recorder.
pub fn describe_metrics() {
    metrics::describe_counter!(
        METRIC_VETOES,
        "Writes a decide-phase hook vetoed, by source and hook."
    );
    metrics::describe_counter!(
        METRIC_REACT_FAILURES,
        "React- or outbox-phase hook calls that failed (the write stood), by source and hook."
    );
    metrics::describe_counter!(
        METRIC_FAILURES,
        "Hook calls that failed other than by a veto (plugin panic, timeout, overload, bad answer), by source, hook, phase and reason."
    );
}

/// A write operation, as hooks and their configuration name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Operation {
    /// POST: a new resource.
    Create,
    /// PUT: every client-writable attribute replaced.
    Replace,
    /// PATCH.
    Patch,
    /// DELETE.
    Delete,
}

impl Operation {
    /// Every operation, in a stable order.
    pub const ALL: [Operation; 4] = [
        Operation::Create,
        Operation::Replace,
        Operation::Patch,
        Operation::Delete,
    ];

    /// The configuration name (`create`, `replace`, `patch`, `delete`).
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Create => "create",
            Operation::Replace => "replace",
            Operation::Patch => "patch",
            Operation::Delete => "delete",
        }
    }

    /// Parses a configuration name case-insensitively; the HTTP method names `post` and `put`
    /// are accepted as well.
    pub fn parse(s: &str) -> Option<Operation> {
        match s.to_ascii_lowercase().as_str() {
            "create" | "post" => Some(Operation::Create),
            "replace" | "put" => Some(Operation::Replace),
            "patch" => Some(Operation::Patch),
            "delete" => Some(Operation::Delete),
            _ => None,
        }
    }

    /// Whether the operation carries a new resource state (everything but delete).
    pub fn writes_state(self) -> bool {
        self != Operation::Delete
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A phase of the pipeline (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// Transform the incoming resource before validation.
    Map,
    /// Change or veto the validated resource before the write.
    Decide,
    /// Build the durable messages of a successful write, stored with it.
    Outbox,
    /// Observe a successful write.
    React,
}

impl Phase {
    /// Every phase, in pipeline order.
    pub const ALL: [Phase; 4] = [Phase::Map, Phase::Decide, Phase::Outbox, Phase::React];

    /// The configuration and wire name (`map`, `decide`, `outbox`, `react`).
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Map => "map",
            Phase::Decide => "decide",
            Phase::Outbox => "outbox",
            Phase::React => "react",
        }
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who sent a request: what the HTTP layer knows that the core does not.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestInfo {
    /// The name of the bearer token that authenticated the request.
    pub token_name: Option<String>,
    /// The request id (the `X-Request-Id` the server logged the request under).
    pub request_id: Option<String>,
}

/// What a hook knows about the write it takes part in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookContext {
    /// The source (tenant).
    pub source: String,
    /// The resource type.
    pub kind: ResourceKind,
    /// The operation.
    pub operation: Operation,
    /// The resource id; `None` for a create before the backend assigned one.
    pub id: Option<String>,
    /// The name of the bearer token that authenticated the request.
    pub token_name: Option<String>,
    /// The request id.
    pub request_id: Option<String>,
}

impl HookContext {
    /// A context for a write of `kind` in `source`.
    pub fn new(
        source: impl Into<String>,
        kind: ResourceKind,
        operation: Operation,
        id: Option<String>,
        request: &RequestInfo,
    ) -> Self {
        HookContext {
            source: source.into(),
            kind,
            operation,
            id,
            token_name: request.token_name.clone(),
            request_id: request.request_id.clone(),
        }
    }
}

/// A successful write, as react hooks see it.
#[derive(Debug, Clone, PartialEq)]
pub struct WriteRecord {
    /// The write's context; `id` is always set.
    pub context: HookContext,
    /// The state before the write (`None` for a create).
    pub old: Option<Resource>,
    /// The state after the write (`None` for a delete).
    pub new: Option<Resource>,
    /// For a PATCH, the PatchOp request body as the client sent it.
    pub patch: Option<Value>,
}

/// Why a react hook failed. Only logged and counted: it never reaches the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ReactError(pub String);

impl ReactError {
    /// A react failure with a message.
    pub fn new(message: impl Into<String>) -> Self {
        ReactError(message.into())
    }
}

/// One hook. See the module docs for the phases and their guarantees.
///
/// Every phase has a default that does nothing, so a hook implements only what it needs and
/// says so in [`Hook::applies`]; the pipeline skips hooks that do not apply (a PATCH of a group
/// with no map or decide hook keeps the backend's membership-delta fast path).
#[async_trait]
pub trait Hook: Send + Sync + fmt::Debug {
    /// The hook's configured name, used in logs, metrics and error details.
    fn name(&self) -> &str;

    /// Whether the hook takes part in `phase` of an `operation` on `kind`.
    fn applies(&self, phase: Phase, kind: ResourceKind, operation: Operation) -> bool;

    /// The map phase: transforms `attrs` (canonical, not yet validated). `old` is the current
    /// state for a replace or patch. An error fails the request with it.
    async fn map(
        &self,
        cx: &HookContext,
        old: Option<&Resource>,
        attrs: &mut Map<String, Value>,
    ) -> Result<(), ScimError> {
        let _ = (cx, old, attrs);
        Ok(())
    }

    /// The decide phase: may change `attrs` (validated; `None` for a delete) or veto the write
    /// by returning the SCIM error the client receives.
    async fn decide(
        &self,
        cx: &HookContext,
        old: Option<&Resource>,
        attrs: Option<&mut Map<String, Value>>,
    ) -> Result<(), ScimError> {
        let _ = (cx, old, attrs);
        Ok(())
    }

    /// The outbox phase: the durable messages of a successful write (see the module docs).
    ///
    /// Runs synchronously while the backend writes, possibly inside its transaction: it must be
    /// quick and do no I/O. It may run more than once for one write when the backend retries a
    /// transaction; only the messages of the attempt that commits are kept, so each call builds
    /// fresh messages with fresh ids. An error is logged and counted like a react failure; the
    /// write stands without this hook's messages.
    fn outbox(&self, record: &WriteRecord) -> Result<Vec<OutboxMessage>, ReactError> {
        let _ = record;
        Ok(Vec::new())
    }

    /// The react phase: observes a successful write. An error is logged and counted only.
    async fn react(&self, record: &WriteRecord) -> Result<(), ReactError> {
        let _ = record;
        Ok(())
    }

    /// The RFC 9967 event URIs this hook emits (advertised as `securityEvents.eventUris` in
    /// `/ServiceProviderConfig`); none by default.
    fn event_uris(&self) -> Vec<String> {
        Vec::new()
    }
}

/// Counts of what a pipeline's hooks did, also exported as metrics ([`METRIC_VETOES`],
/// [`METRIC_REACT_FAILURES`]).
#[derive(Debug, Default)]
pub struct HookStats {
    vetoes: AtomicU64,
    react_failures: AtomicU64,
    reacts: AtomicU64,
}

impl HookStats {
    /// Writes vetoed in the decide phase.
    pub fn vetoes(&self) -> u64 {
        self.vetoes.load(Ordering::Relaxed)
    }
    /// React calls that failed.
    pub fn react_failures(&self) -> u64 {
        self.react_failures.load(Ordering::Relaxed)
    }
    /// React calls made (successful or not).
    pub fn reacts(&self) -> u64 {
        self.reacts.load(Ordering::Relaxed)
    }
}

/// A source's hooks in configured order. Cheap to clone.
#[derive(Clone, Default)]
pub struct HookPipeline {
    hooks: Vec<Arc<dyn Hook>>,
    stats: Arc<HookStats>,
    outbox: Option<Arc<dyn StateStore>>,
}

impl fmt::Debug for HookPipeline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HookPipeline")
            .field(
                "hooks",
                &self.hooks.iter().map(|h| h.name()).collect::<Vec<_>>(),
            )
            .field("stats", &self.stats)
            .field("outbox", &self.outbox)
            .finish()
    }
}

impl HookPipeline {
    /// A pipeline running `hooks` in the given order.
    pub fn new(hooks: Vec<Arc<dyn Hook>>) -> Self {
        HookPipeline {
            hooks,
            stats: Arc::default(),
            outbox: None,
        }
    }

    /// The same pipeline storing outbox messages the backend did not store with the write in
    /// `state`'s outbox (the state store whose delivery workers read it).
    pub fn with_outbox(mut self, state: Arc<dyn StateStore>) -> Self {
        self.outbox = Some(state);
        self
    }

    /// Whether the pipeline has no hooks at all.
    pub fn is_empty(&self) -> bool {
        self.hooks.is_empty()
    }

    /// The hooks, in order.
    pub fn hooks(&self) -> &[Arc<dyn Hook>] {
        &self.hooks
    }

    /// What the hooks did so far.
    pub fn stats(&self) -> &HookStats {
        &self.stats
    }

    /// Whether any hook takes part in `phase` of an `operation` on `kind`.
    pub fn wants(&self, phase: Phase, kind: ResourceKind, operation: Operation) -> bool {
        self.hooks.iter().any(|h| h.applies(phase, kind, operation))
    }

    /// Whether any hook watches a successful write (outbox or react phase): the write then
    /// needs its old state and goes through a [`Watch`].
    pub fn watches(&self, kind: ResourceKind, operation: Operation) -> bool {
        self.wants(Phase::Outbox, kind, operation) || self.wants(Phase::React, kind, operation)
    }

    /// The RFC 9967 event URIs the hooks emit, each once, in hook order.
    pub fn event_uris(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for uri in self.hooks.iter().flat_map(|h| h.event_uris()) {
            if !out.contains(&uri) {
                out.push(uri);
            }
        }
        out
    }

    /// Starts carrying a write through the outbox and react phases: `context` with the state
    /// before the write (`None` for a create) and the PatchOp body of a PATCH. `None` when no
    /// hook watches this kind of write.
    pub fn watch(
        &self,
        context: HookContext,
        old: Option<Resource>,
        patch: Option<&Value>,
    ) -> Option<Watch<'_>> {
        if !self.watches(context.kind, context.operation) {
            return None;
        }
        let stages = self.wants(Phase::Outbox, context.kind, context.operation);
        Some(Watch {
            pipeline: self,
            stages,
            record: Mutex::new(WriteRecord {
                context,
                old,
                new: None,
                patch: patch.cloned(),
            }),
            staged: Mutex::default(),
        })
    }

    /// Counts a failed react or outbox call of `hook`.
    fn count_react_failure(&self, cx: &HookContext, hook: &str) {
        self.stats.react_failures.fetch_add(1, Ordering::Relaxed);
        metrics::counter!(
            METRIC_REACT_FAILURES,
            "source" => cx.source.clone(),
            "hook" => hook.to_string()
        )
        .increment(1);
    }

    /// Counts and logs a failed react or outbox call of `hook`; `message` says what the
    /// write keeps.
    fn react_failed(&self, cx: &HookContext, hook: &str, error: &dyn fmt::Display, message: &str) {
        self.count_react_failure(cx, hook);
        tracing::warn!(
            source = %cx.source,
            hook,
            resource_type = cx.kind.name(),
            operation = %cx.operation,
            id = cx.id.as_deref().unwrap_or(""),
            request_id = cx.request_id.as_deref().unwrap_or(""),
            error = %error,
            "{message}"
        );
    }

    fn applying(&self, phase: Phase, cx: &HookContext) -> impl Iterator<Item = &Arc<dyn Hook>> {
        self.hooks
            .iter()
            .filter(move |h| h.applies(phase, cx.kind, cx.operation))
    }

    /// Runs the map phase over every applying hook in order; the first error stops the chain
    /// and is the request's answer.
    pub async fn map(
        &self,
        cx: &HookContext,
        old: Option<&Resource>,
        mut attrs: Map<String, Value>,
    ) -> Result<Map<String, Value>, ScimError> {
        for hook in self.applying(Phase::Map, cx) {
            hook.map(cx, old, &mut attrs).await.inspect_err(|e| {
                tracing::info!(
                    source = %cx.source,
                    hook = hook.name(),
                    resource_type = cx.kind.name(),
                    operation = %cx.operation,
                    request_id = cx.request_id.as_deref().unwrap_or(""),
                    status = e.status,
                    detail = %e.detail,
                    "Map hook failed the write."
                );
            })?;
        }
        Ok(attrs)
    }

    /// Runs the decide phase over every applying hook in order. The first veto stops the chain
    /// and is returned unchanged; it is logged and counted.
    pub async fn decide(
        &self,
        cx: &HookContext,
        old: Option<&Resource>,
        mut attrs: Option<Map<String, Value>>,
    ) -> Result<Option<Map<String, Value>>, ScimError> {
        for hook in self.applying(Phase::Decide, cx) {
            if let Err(e) = hook.decide(cx, old, attrs.as_mut()).await {
                self.stats.vetoes.fetch_add(1, Ordering::Relaxed);
                metrics::counter!(
                    METRIC_VETOES,
                    "source" => cx.source.clone(),
                    "hook" => hook.name().to_string()
                )
                .increment(1);
                tracing::info!(
                    source = %cx.source,
                    hook = hook.name(),
                    resource_type = cx.kind.name(),
                    operation = %cx.operation,
                    id = cx.id.as_deref().unwrap_or(""),
                    request_id = cx.request_id.as_deref().unwrap_or(""),
                    status = e.status,
                    detail = %e.detail,
                    "Hook vetoed the write."
                );
                return Err(e);
            }
        }
        Ok(attrs)
    }

    /// Runs the react phase over every applying hook in order. Never fails: each failure is
    /// logged and counted, and the remaining hooks still run.
    pub async fn react(&self, record: &WriteRecord) {
        let cx = &record.context;
        for hook in self.applying(Phase::React, cx) {
            self.stats.reacts.fetch_add(1, Ordering::Relaxed);
            if let Err(e) = hook.react(record).await {
                self.react_failed(cx, hook.name(), &e, "React hook failed; the write stands.");
            }
        }
    }
}

/// One write on its way through the outbox and react phases (see [`HookPipeline::watch`]).
///
/// It is the write's [`Stager`]: a backend calls it with the new state to build the outbox
/// messages, possibly inside its transaction. Messages the backend hands back instead are kept
/// ([`Watch::keep`]) and stored by [`Watch::finish`], which then runs the react phase.
pub struct Watch<'p> {
    pipeline: &'p HookPipeline,
    stages: bool,
    record: Mutex<WriteRecord>,
    staged: Mutex<Staging>,
}

/// What the outbox phase of one write produced so far.
#[derive(Default)]
struct Staging {
    /// Message id and the index of the hook that built it, for failures counted later.
    producers: Vec<(String, usize)>,
    /// Messages the backend did not store with the write.
    pending: Vec<OutboxMessage>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl fmt::Debug for Watch<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Watch")
            .field("context", &lock(&self.record).context)
            .field("stages", &self.stages)
            .finish_non_exhaustive()
    }
}

impl Watch<'_> {
    /// Whether outbox hooks take part: the write then goes through the backend's `*_staged`
    /// method with this watch as its stager.
    pub fn stages(&self) -> bool {
        self.stages
    }

    /// Takes the result of a staged write and keeps the messages the backend did not store,
    /// for [`Watch::finish`].
    pub fn keep<T>(&self, staged: Staged<T>) -> T {
        lock(&self.staged).pending.extend(staged.pending);
        staged.value
    }

    /// After the write succeeded with the new state `new` (`None` after a delete): stores the
    /// kept outbox messages in the state store, then runs the react phase. Never fails: each
    /// failure is logged and counted.
    pub async fn finish(self, new: Option<&Resource>) {
        let Watch {
            pipeline,
            record,
            staged,
            ..
        } = self;
        let mut record = record.into_inner().unwrap_or_else(|e| e.into_inner());
        set_new(&mut record, new);
        let staged = staged.into_inner().unwrap_or_else(|e| e.into_inner());
        let cx = &record.context;
        for m in &staged.pending {
            let stored = match &pipeline.outbox {
                Some(state) => state.outbox_push(m).await.map_err(|e| e.to_string()),
                None => Err("no state store keeps an outbox for this source".to_string()),
            };
            if let Err(e) = stored {
                let hook = staged
                    .producers
                    .iter()
                    .find(|(id, _)| *id == m.id)
                    .and_then(|(_, i)| pipeline.hooks.get(*i))
                    .map_or("outbox", |h| h.name());
                pipeline.count_react_failure(cx, hook);
                tracing::warn!(
                    source = %cx.source,
                    hook,
                    resource_type = cx.kind.name(),
                    operation = %cx.operation,
                    id = cx.id.as_deref().unwrap_or(""),
                    request_id = cx.request_id.as_deref().unwrap_or(""),
                    stream = %m.stream,
                    message = %m.id,
                    error = %e,
                    "Cannot store an outbox message; the write stands without it."
                );
            }
        }
        if pipeline.wants(Phase::React, cx.kind, cx.operation) {
            pipeline.react(&record).await;
        }
    }
}

/// Puts the new state into a record; a create learns its id from it.
fn set_new(record: &mut WriteRecord, new: Option<&Resource>) {
    record.new = new.cloned();
    if let Some(n) = new {
        // A backend that retries a create assigns a new id per attempt: the last one counts.
        record.context.id = Some(n.id.clone());
    }
}

impl Stager for Watch<'_> {
    fn stage(&self, new: Option<&Resource>) -> Vec<OutboxMessage> {
        let mut record = lock(&self.record);
        set_new(&mut record, new);
        let cx = &record.context;
        let mut out = Vec::new();
        let mut producers = Vec::new();
        for (i, hook) in self.pipeline.hooks.iter().enumerate() {
            if !hook.applies(Phase::Outbox, cx.kind, cx.operation) {
                continue;
            }
            match hook.outbox(&record) {
                Ok(messages) => {
                    producers.extend(messages.iter().map(|m| (m.id.clone(), i)));
                    out.extend(messages);
                }
                Err(e) => self.pipeline.react_failed(
                    cx,
                    hook.name(),
                    &e,
                    "Outbox hook failed; the write stands without its messages.",
                ),
            }
        }
        record.new = None;
        drop(record);
        lock(&self.staged).producers.extend(producers);
        out
    }
}

/// The scope of a hook in configuration: which resource types and operations it applies to.
/// Empty lists mean "all".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Scope {
    /// Resource types (`User`, `Group`); empty = both.
    pub resource_types: Vec<ResourceKind>,
    /// Operations; empty = all four.
    pub operations: Vec<Operation>,
}

impl Scope {
    /// Whether a write of `kind` by `operation` is in scope.
    pub fn contains(&self, kind: ResourceKind, operation: Operation) -> bool {
        (self.resource_types.is_empty() || self.resource_types.contains(&kind))
            && (self.operations.is_empty() || self.operations.contains(&operation))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resource::{Meta, Version};
    use crate::state::MemoryStateStore;
    use serde_json::json;

    /// A hook that records its calls into a shared log and can be told to fail.
    #[derive(Debug)]
    struct Probe {
        name: &'static str,
        log: Arc<Mutex<Vec<String>>>,
        veto: bool,
        fail_react: bool,
        /// `Some(true)`: builds one outbox message per write; `Some(false)`: fails to.
        outbox: Option<bool>,
        /// Where react looks for stored outbox messages (it logs how many it saw).
        state: Option<Arc<MemoryStateStore>>,
        kinds: Vec<ResourceKind>,
    }

    impl Probe {
        fn new(name: &'static str, log: &Arc<Mutex<Vec<String>>>) -> Self {
            Probe {
                name,
                log: log.clone(),
                veto: false,
                fail_react: false,
                outbox: None,
                state: None,
                kinds: ResourceKind::ALL.to_vec(),
            }
        }
        fn push(&self, what: &str) {
            self.log
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(format!("{}:{what}", self.name));
        }
    }

    #[async_trait]
    impl Hook for Probe {
        fn name(&self) -> &str {
            self.name
        }
        fn applies(&self, phase: Phase, kind: ResourceKind, _: Operation) -> bool {
            (phase != Phase::Outbox || self.outbox.is_some()) && self.kinds.contains(&kind)
        }
        fn outbox(&self, record: &WriteRecord) -> Result<Vec<OutboxMessage>, ReactError> {
            self.push("outbox");
            if self.outbox != Some(true) {
                return Err(ReactError::new("no key"));
            }
            let t = crate::resource::now();
            let id = record.context.id.clone().unwrap_or_default();
            Ok(vec![OutboxMessage {
                id: format!("{}-{id}", self.name),
                stream: format!("s/{}", self.name),
                payload: "signed".into(),
                created: t,
                attempts: 0,
                next_attempt: t,
                last_error: None,
            }])
        }
        async fn map(
            &self,
            _: &HookContext,
            _: Option<&Resource>,
            attrs: &mut Map<String, Value>,
        ) -> Result<(), ScimError> {
            self.push("map");
            let seen = attrs
                .get("seen")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            attrs.insert("seen".into(), json!(format!("{seen}{}", self.name)));
            Ok(())
        }
        async fn decide(
            &self,
            _: &HookContext,
            _: Option<&Resource>,
            _: Option<&mut Map<String, Value>>,
        ) -> Result<(), ScimError> {
            self.push("decide");
            if self.veto {
                return Err(ScimError::new(403, format!("{} says no", self.name)));
            }
            Ok(())
        }
        async fn react(&self, _: &WriteRecord) -> Result<(), ReactError> {
            if let Some(state) = &self.state {
                let stored = state.outbox_stats(&format!("s/{}", self.name)).await;
                self.push(&format!("react saw {}", stored.map_or(0, |s| s.pending)));
                return Ok(());
            }
            self.push("react");
            if self.fail_react {
                return Err(ReactError::new("receiver down"));
            }
            Ok(())
        }
    }

    fn cx(kind: ResourceKind) -> HookContext {
        HookContext::new("s", kind, Operation::Create, None, &RequestInfo::default())
    }

    fn log_of(log: &Arc<Mutex<Vec<String>>>) -> Vec<String> {
        log.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    #[tokio::test]
    async fn map_hooks_run_in_configured_order_and_compose() {
        let log = Arc::default();
        let p = HookPipeline::new(vec![
            Arc::new(Probe::new("a", &log)),
            Arc::new(Probe::new("b", &log)),
        ]);
        let out = p
            .map(&cx(ResourceKind::User), None, Map::new())
            .await
            .unwrap();
        assert_eq!(out["seen"], "ab");
        assert_eq!(log_of(&log), ["a:map", "b:map"]);
    }

    #[tokio::test]
    async fn a_veto_stops_the_chain_and_is_returned_unchanged() {
        let log = Arc::default();
        let mut vetoing = Probe::new("b", &log);
        vetoing.veto = true;
        let p = HookPipeline::new(vec![
            Arc::new(Probe::new("a", &log)),
            Arc::new(vetoing),
            Arc::new(Probe::new("c", &log)),
        ]);
        let err = p
            .decide(&cx(ResourceKind::User), None, Some(Map::new()))
            .await
            .unwrap_err();
        assert_eq!(err.status, 403);
        assert_eq!(err.detail, "b says no");
        assert_eq!(log_of(&log), ["a:decide", "b:decide"]);
        assert_eq!(p.stats().vetoes(), 1);
    }

    #[tokio::test]
    async fn failing_react_hooks_are_counted_and_the_rest_still_run() {
        let log = Arc::default();
        let mut failing = Probe::new("a", &log);
        failing.fail_react = true;
        let p = HookPipeline::new(vec![Arc::new(failing), Arc::new(Probe::new("b", &log))]);
        let t = crate::resource::now();
        let record = WriteRecord {
            context: cx(ResourceKind::User),
            old: None,
            new: Some(Resource {
                id: "1".into(),
                kind: ResourceKind::User,
                meta: Meta {
                    created: t,
                    last_modified: t,
                    version: Version::FIRST,
                },
                attrs: Map::new(),
            }),
            patch: None,
        };
        p.react(&record).await;
        assert_eq!(log_of(&log), ["a:react", "b:react"]);
        assert_eq!(p.stats().react_failures(), 1);
        assert_eq!(p.stats().reacts(), 2);
    }

    #[tokio::test]
    async fn hooks_that_do_not_apply_are_skipped() {
        let log = Arc::default();
        let mut groups_only = Probe::new("g", &log);
        groups_only.kinds = vec![ResourceKind::Group];
        let p = HookPipeline::new(vec![Arc::new(groups_only)]);
        assert!(!p.wants(Phase::Map, ResourceKind::User, Operation::Create));
        assert!(p.wants(Phase::Map, ResourceKind::Group, Operation::Create));
        let out = p
            .map(&cx(ResourceKind::User), None, Map::new())
            .await
            .unwrap();
        assert!(out.is_empty());
        assert!(log_of(&log).is_empty());
    }

    fn user(id: &str, version: u64) -> Resource {
        let t = crate::resource::now();
        Resource {
            id: id.into(),
            kind: ResourceKind::User,
            meta: Meta {
                created: t,
                last_modified: t,
                version: Version(version),
            },
            attrs: Map::new(),
        }
    }

    #[tokio::test]
    async fn messages_the_backend_hands_back_are_stored_before_react_hooks_run() {
        let log = Arc::default();
        let state = Arc::new(MemoryStateStore::default());
        let mut events = Probe::new("ev", &log);
        events.outbox = Some(true);
        events.state = Some(state.clone());
        let p = HookPipeline::new(vec![Arc::new(events)]).with_outbox(state.clone());
        let w = p.watch(cx(ResourceKind::User), None, None).unwrap();
        assert!(w.stages());
        // What a backend without an outbox does: write, stage with the new state (a retried
        // attempt stages again with a new id), hand the messages back.
        let first = w.stage(Some(&user("u0", 1)));
        let new = user("u1", 1);
        let messages = w.stage(Some(&new));
        assert_eq!(first[0].id, "ev-u0");
        assert_eq!(messages[0].id, "ev-u1", "the stager sees the created id");
        let created = w.keep(Staged::pending(new.clone(), messages));
        w.finish(Some(&created)).await;
        assert_eq!(log_of(&log), ["ev:outbox", "ev:outbox", "ev:react saw 1"]);
        assert_eq!(state.outbox_stats("s/ev").await.map(|s| s.pending), Ok(1));
    }

    #[tokio::test]
    async fn a_failing_outbox_hook_is_counted_and_the_write_keeps_the_others_messages() {
        let log = Arc::default();
        let state = Arc::new(MemoryStateStore::default());
        let mut broken = Probe::new("broken", &log);
        broken.outbox = Some(false);
        let mut fine = Probe::new("fine", &log);
        fine.outbox = Some(true);
        let p =
            HookPipeline::new(vec![Arc::new(broken), Arc::new(fine)]).with_outbox(state.clone());
        let w = p.watch(cx(ResourceKind::User), None, None).unwrap();
        let new = user("u1", 1);
        let messages = w.stage(Some(&new));
        assert_eq!(
            messages.iter().map(|m| m.id.as_str()).collect::<Vec<_>>(),
            ["fine-u1"]
        );
        let value = w.keep(Staged::stored(new));
        w.finish(Some(&value)).await;
        assert_eq!(p.stats().react_failures(), 1);
        // Stored by the backend: nothing is pushed again.
        assert_eq!(state.outbox_stats("s/fine").await.map(|s| s.pending), Ok(0));
    }

    #[tokio::test]
    async fn messages_with_nowhere_to_go_are_counted_as_failures() {
        let log = Arc::default();
        let mut events = Probe::new("ev", &log);
        events.outbox = Some(true);
        let p = HookPipeline::new(vec![Arc::new(events)]);
        let w = p.watch(cx(ResourceKind::User), None, None).unwrap();
        let new = user("u1", 1);
        let messages = w.stage(Some(&new));
        let value = w.keep(Staged::pending(new, messages));
        w.finish(Some(&value)).await;
        assert_eq!(p.stats().react_failures(), 1);
        assert_eq!(p.stats().reacts(), 1, "react hooks still run");
    }

    #[test]
    fn only_outbox_and_react_hooks_watch_a_write() {
        let log = Arc::default();
        let mut groups_only = Probe::new("g", &log);
        groups_only.kinds = vec![ResourceKind::Group];
        let p = HookPipeline::new(vec![Arc::new(groups_only)]);
        assert!(p.watch(cx(ResourceKind::User), None, None).is_none());
        let w = p.watch(cx(ResourceKind::Group), None, None).unwrap();
        assert!(!w.stages(), "a react hook alone stages nothing");
        assert!(
            HookPipeline::default()
                .watch(cx(ResourceKind::Group), None, None)
                .is_none()
        );
    }

    #[test]
    fn scope_lists_are_all_when_empty() {
        let s = Scope::default();
        assert!(s.contains(ResourceKind::Group, Operation::Delete));
        let s = Scope {
            resource_types: vec![ResourceKind::User],
            operations: vec![Operation::Create, Operation::Replace],
        };
        assert!(s.contains(ResourceKind::User, Operation::Replace));
        assert!(!s.contains(ResourceKind::User, Operation::Patch));
        assert!(!s.contains(ResourceKind::Group, Operation::Create));
    }

    #[test]
    fn operations_parse_config_and_method_names() {
        assert_eq!(Operation::parse("PUT"), Some(Operation::Replace));
        assert_eq!(Operation::parse("create"), Some(Operation::Create));
        assert_eq!(Operation::parse("get"), None);
        let s: Scope =
            serde_json::from_value(json!({"resource_types": ["User"], "operations": ["patch"]}))
                .unwrap();
        assert_eq!(s.operations, [Operation::Patch]);
    }
}
