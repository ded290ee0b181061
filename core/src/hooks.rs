//! Hooks: operator logic between the identity provider and the store.
//!
//! A [`Hook`] takes part in every write of a source in up to three phases:
//!
//! - **map** ([`Phase::Map`]): transforms the incoming resource after it was canonicalized
//!   (attribute names and URNs in canonical spelling, extension attributes under their URN) and
//!   *before* it is validated, so a mapping may supply a required attribute the client left out
//!   (`userName` from the work email). Runs for create, replace and patch (on the patched state).
//! - **decide** ([`Phase::Decide`]): sees the validated resource (and, for a delete, only the
//!   current state) and may change it once more or veto the write with a SCIM error (status,
//!   `scimType`, detail). A veto stops the chain; nothing is written.
//! - **react** ([`Phase::React`]): runs after a successful write with the old and the new state,
//!   the operation, the source, the token name and the request id. A failing react hook never
//!   fails the request: the failure is logged and counted.
//!
//! A [`HookPipeline`] holds a source's hooks in configured order and runs each phase over all
//! hooks that [apply](Hook::applies) to the resource type and operation. The
//! [`Service`](crate::service::Service) drives it; Bulk operations go through the same service
//! methods, so every bulk operation passes through the pipeline like the single request it
//! stands for.
//!
//! Hooks never see secrets they do not need: the pipeline hands them the canonical attributes,
//! which include `password` on a write (a mapping may need to drop it); the built-in audit log
//! removes it before writing anything.

use crate::error::ScimError;
use crate::resource::Resource;
use crate::schema::ResourceKind;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Counter of decide-phase vetoes, labelled by source and hook.
pub const METRIC_VETOES: &str = "scimd_hook_vetoes_total";
/// Counter of failed react-phase calls, labelled by source and hook.
pub const METRIC_REACT_FAILURES: &str = "scimd_hook_react_failures_total";
/// Counter of map/decide calls that failed for a reason other than a deliberate veto (a
/// plugin that panicked, timed out or answered garbage), labelled by source and hook.
pub const METRIC_FAILURES: &str = "scimd_hook_failures_total";

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
    /// Observe a successful write.
    React,
}

impl Phase {
    /// Every phase, in pipeline order.
    pub const ALL: [Phase; 3] = [Phase::Map, Phase::Decide, Phase::React];

    /// The configuration and wire name (`map`, `decide`, `react`).
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Map => "map",
            Phase::Decide => "decide",
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

    /// The react phase: observes a successful write. An error is logged and counted only.
    async fn react(&self, record: &WriteRecord) -> Result<(), ReactError> {
        let _ = record;
        Ok(())
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
}

impl fmt::Debug for HookPipeline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HookPipeline")
            .field(
                "hooks",
                &self.hooks.iter().map(|h| h.name()).collect::<Vec<_>>(),
            )
            .field("stats", &self.stats)
            .finish()
    }
}

impl HookPipeline {
    /// A pipeline running `hooks` in the given order.
    pub fn new(hooks: Vec<Arc<dyn Hook>>) -> Self {
        HookPipeline {
            hooks,
            stats: Arc::default(),
        }
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
                self.stats.react_failures.fetch_add(1, Ordering::Relaxed);
                metrics::counter!(
                    METRIC_REACT_FAILURES,
                    "source" => cx.source.clone(),
                    "hook" => hook.name().to_string()
                )
                .increment(1);
                tracing::warn!(
                    source = %cx.source,
                    hook = hook.name(),
                    resource_type = cx.kind.name(),
                    operation = %cx.operation,
                    id = cx.id.as_deref().unwrap_or(""),
                    request_id = cx.request_id.as_deref().unwrap_or(""),
                    error = %e,
                    "React hook failed; the write stands."
                );
            }
        }
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
    use serde_json::json;
    use std::sync::Mutex;

    /// A hook that records its calls into a shared log and can be told to fail.
    #[derive(Debug)]
    struct Probe {
        name: &'static str,
        log: Arc<Mutex<Vec<String>>>,
        veto: bool,
        fail_react: bool,
        kinds: Vec<ResourceKind>,
    }

    impl Probe {
        fn new(name: &'static str, log: &Arc<Mutex<Vec<String>>>) -> Self {
            Probe {
                name,
                log: log.clone(),
                veto: false,
                fail_react: false,
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
        fn applies(&self, _: Phase, kind: ResourceKind, _: Operation) -> bool {
            self.kinds.contains(&kind)
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
