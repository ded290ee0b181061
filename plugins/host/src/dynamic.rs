//! [`PluginHook`]: a loaded plugin instance as a [`Hook`] of the pipeline.
//!
//! Plugins are synchronous and may block, panic or hang. Each call therefore runs on tokio's
//! blocking pool, and the request waits at most the configured timeout for it — waiting for a
//! concurrency permit included. A call that times out cannot be cancelled (a thread cannot be
//! killed safely); it keeps its permit until it returns, so a plugin that hangs on every call
//! ties up at most `max_concurrent` blocking threads, and further calls time out waiting for a
//! permit instead of exhausting the blocking pool.
//!
//! A fault (panic, timeout, error, malformed reply, overload) is answered per the hook's
//! [`FailurePolicy`]: `deny` fails the request with a SCIM error (503 for a timeout or overload,
//! 500 otherwise), `allow` skips the hook and lets the write continue. In the react phase a
//! fault is only reported (the write already happened). Faults are logged and counted in
//! [`METRIC_FAILURES`].

use crate::loader::{CallError, PluginInstance, PluginLibrary};
use async_trait::async_trait;
use scimd_core::error::{ScimError, ScimType};
use scimd_core::hooks::{
    Hook, HookContext, METRIC_FAILURES, Operation, Phase, ReactError, Scope, WriteRecord,
};
use scimd_core::resource::{Resource, format_time};
use scimd_core::schema::ResourceKind;
use scimd_plugin_api as api;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

/// What happens to the write when a plugin fails (panics, times out, answers garbage).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FailurePolicy {
    /// Fail the request with a SCIM error; nothing is written. The safe default for policies.
    #[default]
    Deny,
    /// Skip the plugin and continue as if it had changed nothing.
    Allow,
}

fn default_timeout_ms() -> u64 {
    2000
}

fn default_max_concurrent() -> usize {
    16
}

/// `type = "plugin"`: a runtime-loaded plugin library.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginConfig {
    /// A name for logs, metrics and errors; defaults to the name the plugin reports.
    #[serde(default)]
    pub name: Option<String>,
    /// The library file (`.so`, `.dylib`, `.dll`); relative paths are resolved against the
    /// directory of the configuration file.
    pub path: PathBuf,
    /// The plugin's own configuration, passed to it as JSON.
    #[serde(default)]
    pub config: Value,
    /// `deny` (default) or `allow`: see [`FailurePolicy`].
    #[serde(default)]
    pub failure: FailurePolicy,
    /// Milliseconds a call may take before it counts as a failure.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Calls that may run at once (including calls that timed out and still run); further
    /// calls wait for a permit within their timeout.
    #[serde(default = "default_max_concurrent")]
    pub max_concurrent: usize,
    /// Resource types the plugin sees (`User`, `Group`); empty = both.
    #[serde(default)]
    pub resource_types: Vec<ResourceKind>,
    /// Operations the plugin sees (`create`, `replace`, `patch`, `delete`); empty = all.
    #[serde(default)]
    pub operations: Vec<Operation>,
}

/// A fault of one plugin call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum Fault {
    #[error("did not answer within {0} ms")]
    Timeout(u64),
    #[error("has {0} calls running and none finished in time")]
    Overloaded(usize),
    #[error("{0}")]
    Call(#[from] CallError),
    #[error("answered an invalid reply: {0}")]
    BadReply(String),
    #[error("call could not run: {0}")]
    Join(String),
}

impl Fault {
    fn reason(&self) -> &'static str {
        match self {
            Fault::Timeout(_) => "timeout",
            Fault::Overloaded(_) => "overloaded",
            Fault::Call(CallError::Panicked(_)) => "panic",
            Fault::Call(_) => "error",
            Fault::BadReply(_) => "bad_reply",
            Fault::Join(_) => "join",
        }
    }

    /// The client-facing error under `failure = "deny"`. Plugin messages stay in the log.
    fn to_scim(&self, hook: &str) -> ScimError {
        match self {
            Fault::Timeout(_) | Fault::Overloaded(_) => {
                let mut e = ScimError::new(
                    503,
                    format!("hook {hook} did not answer in time; try again later"),
                );
                e.retry_after = Some(5);
                e
            }
            _ => ScimError::internal(format!("hook {hook} failed")),
        }
    }
}

/// A plugin instance in the pipeline.
#[derive(Debug)]
pub struct PluginHook {
    name: String,
    instance: PluginInstance,
    phases: Vec<Phase>,
    scope: Scope,
    failure: FailurePolicy,
    timeout: Duration,
    max_concurrent: usize,
    permits: Arc<Semaphore>,
}

impl PluginHook {
    /// Loads the library (once per process), checks its ABI version and creates an instance
    /// with the configured `config`. `library` is the resolved path.
    pub fn build(config: &PluginConfig, library: &std::path::Path) -> Result<PluginHook, String> {
        let lib = PluginLibrary::load(library).map_err(|e| e.to_string())?;
        let instance = lib.instantiate(&config.config).map_err(|e| {
            format!(
                "plugin {} refused its configuration: {e}",
                lib.description().name
            )
        })?;
        let phases = lib
            .description()
            .phases
            .iter()
            .map(|p| match p {
                api::Phase::Map => Phase::Map,
                api::Phase::Decide => Phase::Decide,
                api::Phase::React => Phase::React,
            })
            .collect();
        let max_concurrent = config.max_concurrent.max(1);
        Ok(PluginHook {
            name: config
                .name
                .clone()
                .unwrap_or_else(|| lib.description().name.clone()),
            instance,
            phases,
            scope: Scope {
                resource_types: config.resource_types.clone(),
                operations: config.operations.clone(),
            },
            failure: config.failure,
            timeout: Duration::from_millis(config.timeout_ms.max(1)),
            max_concurrent,
            permits: Arc::new(Semaphore::new(max_concurrent)),
        })
    }

    /// The library's self-description.
    pub fn description(&self) -> &api::Description {
        self.instance.library().description()
    }

    async fn invoke(&self, call: &api::Call) -> Result<api::Reply, Fault> {
        // One time budget for waiting for a permit and for the call itself.
        let deadline = tokio::time::Instant::now() + self.timeout;
        let permit =
            match tokio::time::timeout_at(deadline, self.permits.clone().acquire_owned()).await {
                Ok(Ok(p)) => p,
                // Timed out waiting, or the semaphore was closed (never happens: it is never
                // closed).
                Ok(Err(_)) | Err(_) => return Err(Fault::Overloaded(self.max_concurrent)),
            };
        let bytes = serde_json::to_vec(call).map_err(|e| Fault::BadReply(e.to_string()))?;
        let instance = self.instance.clone();
        let task = tokio::task::spawn_blocking(move || {
            // Held until the plugin returns, even after the caller gave up waiting.
            let _permit = permit;
            instance.call(&bytes)
        });
        let out = match tokio::time::timeout_at(deadline, task).await {
            Err(_) => return Err(Fault::Timeout(self.timeout.as_millis() as u64)),
            Ok(Err(join)) => return Err(Fault::Join(join.to_string())),
            Ok(Ok(result)) => result?,
        };
        serde_json::from_slice(&out).map_err(|e| Fault::BadReply(e.to_string()))
    }

    fn record_fault(&self, phase: Phase, cx: &HookContext, fault: &Fault) {
        metrics::counter!(
            METRIC_FAILURES,
            "source" => cx.source.clone(),
            "hook" => self.name.clone(),
            "phase" => phase.as_str(),
            "reason" => fault.reason()
        )
        .increment(1);
        tracing::warn!(
            source = %cx.source,
            hook = %self.name,
            phase = phase.as_str(),
            resource_type = cx.kind.name(),
            operation = %cx.operation,
            request_id = cx.request_id.as_deref().unwrap_or(""),
            failure_policy = ?self.failure,
            error = %fault,
            "Plugin call failed."
        );
    }

    /// Applies a map/decide reply, or the failure policy to a fault.
    fn settle(
        &self,
        phase: Phase,
        cx: &HookContext,
        result: Result<api::Reply, Fault>,
        attrs: Option<&mut Map<String, Value>>,
    ) -> Result<(), ScimError> {
        match result {
            Ok(api::Reply::Continue { resource: None }) => Ok(()),
            Ok(api::Reply::Continue {
                resource: Some(new),
            }) => {
                if let Some(attrs) = attrs {
                    *attrs = new;
                }
                Ok(())
            }
            Ok(api::Reply::Deny(d)) => Err(denial(d)),
            Err(fault) => {
                self.record_fault(phase, cx, &fault);
                match self.failure {
                    FailurePolicy::Deny => Err(fault.to_scim(&self.name)),
                    FailurePolicy::Allow => Ok(()),
                }
            }
        }
    }
}

/// A plugin's denial as the SCIM error the client receives. Statuses outside 400–599 and
/// unknown `scimType`s cannot be honoured and become a 500 and no `scimType`.
fn denial(d: api::Denial) -> ScimError {
    let status = if (400..600).contains(&d.status) {
        d.status
    } else {
        500
    };
    let mut e = ScimError::new(status, d.detail);
    e.scim_type = d
        .scim_type
        .and_then(|t| serde_json::from_value::<ScimType>(Value::String(t)).ok());
    e
}

fn api_context(cx: &HookContext) -> api::Context {
    api::Context {
        source: cx.source.clone(),
        resource_type: cx.kind.name().to_string(),
        operation: match cx.operation {
            Operation::Create => api::Operation::Create,
            Operation::Replace => api::Operation::Replace,
            Operation::Patch => api::Operation::Patch,
            Operation::Delete => api::Operation::Delete,
        },
        id: cx.id.clone(),
        token_name: cx.token_name.clone(),
        request_id: cx.request_id.clone(),
    }
}

/// A stored resource in the plugin API's shape.
pub fn api_resource(r: &Resource) -> api::Resource {
    api::Resource {
        id: r.id.clone(),
        version: r.meta.version.0,
        created: format_time(r.meta.created),
        last_modified: format_time(r.meta.last_modified),
        attributes: r.attrs.clone(),
    }
}

#[async_trait]
impl Hook for PluginHook {
    fn name(&self) -> &str {
        &self.name
    }

    fn applies(&self, phase: Phase, kind: ResourceKind, operation: Operation) -> bool {
        self.phases.contains(&phase) && self.scope.contains(kind, operation)
    }

    async fn map(
        &self,
        cx: &HookContext,
        old: Option<&Resource>,
        attrs: &mut Map<String, Value>,
    ) -> Result<(), ScimError> {
        let call = api::Call {
            phase: api::Phase::Map,
            context: api_context(cx),
            old: old.map(api_resource),
            resource: Some(attrs.clone()),
            new: None,
            patch: None,
        };
        let result = self.invoke(&call).await;
        self.settle(Phase::Map, cx, result, Some(attrs))
    }

    async fn decide(
        &self,
        cx: &HookContext,
        old: Option<&Resource>,
        attrs: Option<&mut Map<String, Value>>,
    ) -> Result<(), ScimError> {
        let call = api::Call {
            phase: api::Phase::Decide,
            context: api_context(cx),
            old: old.map(api_resource),
            resource: attrs.as_deref().cloned(),
            new: None,
            patch: None,
        };
        let result = self.invoke(&call).await;
        self.settle(Phase::Decide, cx, result, attrs)
    }

    async fn react(&self, record: &WriteRecord) -> Result<(), ReactError> {
        let call = api::Call {
            phase: api::Phase::React,
            context: api_context(&record.context),
            old: record.old.as_ref().map(api_resource),
            resource: None,
            new: record.new.as_ref().map(api_resource),
            patch: record.patch.clone(),
        };
        match self.invoke(&call).await {
            Ok(api::Reply::Continue { .. }) => Ok(()),
            Ok(api::Reply::Deny(d)) => Err(ReactError::new(format!(
                "a react call cannot deny a write that happened ({d})"
            ))),
            Err(fault) => {
                // Counted as a plugin fault here and as a react failure by the pipeline.
                self.record_fault(Phase::React, &record.context, &fault);
                Err(ReactError::new(fault.to_string()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn denials_keep_status_and_known_scim_types_only() {
        let e = denial(api::Denial::new(409, Some("uniqueness"), "taken"));
        assert_eq!((e.status, e.scim_type), (409, Some(ScimType::Uniqueness)));
        let e = denial(api::Denial::new(400, Some("madeUp"), "x"));
        assert_eq!((e.status, e.scim_type), (400, None));
        let e = denial(api::Denial::new(200, None, "not an error"));
        assert_eq!(e.status, 500);
    }

    #[test]
    fn faults_map_to_503_for_time_and_500_otherwise_without_plugin_text() {
        let e = Fault::Timeout(10).to_scim("p");
        assert_eq!((e.status, e.retry_after), (503, Some(5)));
        let e = Fault::Call(CallError::Panicked("secret internals".into())).to_scim("p");
        assert_eq!(e.status, 500);
        assert!(!e.detail.contains("secret"));
    }

    #[test]
    fn plugin_config_defaults_and_rejects_unknown_keys() {
        let c: PluginConfig = serde_json::from_value(serde_json::json!({"path": "x.so"})).unwrap();
        assert_eq!(c.failure, FailurePolicy::Deny);
        assert_eq!(c.timeout_ms, 2000);
        assert!(
            serde_json::from_value::<PluginConfig>(serde_json::json!({"path": "x", "tmeout": 1}))
                .is_err()
        );
    }
}
