//! Hook configuration as the server reads it (`hooks = [...]` per source) and the building of
//! a source's [`HookPipeline`] from it.
//!
//! ```toml
//! [[sources.hooks]]
//! type = "attribute_map"
//! rules = [
//!   { action = "default", attribute = "userName", template = "{emails[primary].value}" },
//!   { action = "lowercase", attribute = "userName", resource_types = ["User"] },
//! ]
//!
//! [[sources.hooks]]
//! type = "plugin"
//! path = "plugins/libscimd_example_policy.so"
//! failure = "deny"
//! config = { allowed_domains = ["example.com"] }
//!
//! [[sources.hooks]]
//! type = "audit_log"
//! path = "audit.jsonl"
//! ```

use crate::dynamic::{PluginConfig, PluginHook};
use scimd_core::hooks::{Hook, HookPipeline};
use scimd_core::state::StateStore;
use scimd_plugins_builtin::attribute_map::AttributeMapConfig;
use scimd_plugins_builtin::audit_log::AuditLogConfig;
use scimd_plugins_builtin::events::EventsConfig;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// One entry of a source's `hooks` list, selected by `type`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum HookConfig {
    /// Declarative attribute mapping (map phase).
    AttributeMap(AttributeMapConfig),
    /// JSON Lines audit trail (react phase).
    AuditLog(AuditLogConfig),
    /// RFC 9967 events pushed to a receiver through the durable outbox (react phase).
    Events(EventsConfig),
    /// A runtime-loaded plugin library.
    Plugin(PluginConfig),
}

impl HookConfig {
    /// The `type` name.
    pub fn kind(&self) -> &'static str {
        match self {
            HookConfig::AttributeMap(_) => "attribute_map",
            HookConfig::AuditLog(_) => "audit_log",
            HookConfig::Events(_) => "events",
            HookConfig::Plugin(_) => "plugin",
        }
    }

    /// The configured name, if any.
    pub fn name(&self) -> Option<&str> {
        match self {
            HookConfig::AttributeMap(c) => c.name.as_deref(),
            HookConfig::AuditLog(c) => c.name.as_deref(),
            HookConfig::Events(c) => c.name.as_deref(),
            HookConfig::Plugin(c) => c.name.as_deref(),
        }
    }
}

/// What building hooks needs from the server.
#[derive(Debug, Clone)]
pub struct HookEnv<'a> {
    /// The source the pipeline is for.
    pub source: &'a str,
    /// The directory relative paths are resolved against (the configuration file's).
    pub config_dir: &'a Path,
    /// The shared state store: the events outbox, where delivery workers read and where
    /// messages go that the backend did not store with their write.
    pub state: Arc<dyn StateStore>,
}

impl HookEnv<'_> {
    /// Resolves a configured path against the configuration directory.
    pub fn resolve(&self, path: &Path) -> PathBuf {
        if path.is_absolute() {
            path.to_path_buf()
        } else {
            self.config_dir.join(path)
        }
    }
}

/// A hook that could not be built; the message names the source, the hook and the cause.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("hook {position} ({kind}{name}) of source {source_slug}: {message}")]
pub struct HookBuildError {
    /// The source.
    pub source_slug: String,
    /// 1-based position in the source's `hooks` list.
    pub position: usize,
    /// The hook's `type`.
    pub kind: &'static str,
    /// ` "name"` when the hook has a configured name, else empty.
    pub name: String,
    /// What went wrong.
    pub message: String,
}

/// Builds a source's pipeline, in configured order. Plugin libraries are loaded (and their
/// ABI version checked) here, so an incompatible plugin stops start-up. Events hooks start
/// their delivery workers, so this must run inside a tokio runtime when they are configured.
/// Outbox messages the backend does not store with a write go to `env.state`.
pub fn build_pipeline(
    configs: &[HookConfig],
    env: &HookEnv<'_>,
) -> Result<HookPipeline, HookBuildError> {
    let mut hooks: Vec<Arc<dyn Hook>> = Vec::with_capacity(configs.len());
    for (i, c) in configs.iter().enumerate() {
        let built: Result<Arc<dyn Hook>, String> = match c {
            HookConfig::AttributeMap(m) => m.build().map(|h| Arc::new(h) as Arc<dyn Hook>),
            HookConfig::AuditLog(a) => a
                .build(&env.resolve(&a.path))
                .map(|h| Arc::new(h) as Arc<dyn Hook>),
            HookConfig::Events(e) => e
                .build(
                    env.source,
                    e.key_file.as_deref().map(|p| env.resolve(p)).as_deref(),
                    env.state.clone(),
                )
                .map(|h| Arc::new(h) as Arc<dyn Hook>),
            HookConfig::Plugin(p) => {
                PluginHook::build(p, &env.resolve(&p.path)).map(|h| Arc::new(h) as Arc<dyn Hook>)
            }
        };
        let hook = built.map_err(|message| HookBuildError {
            source_slug: env.source.to_string(),
            position: i + 1,
            kind: c.kind(),
            name: c.name().map(|n| format!(" {n:?}")).unwrap_or_default(),
            message,
        })?;
        hooks.push(hook);
    }
    Ok(HookPipeline::new(hooks).with_outbox(env.state.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn hook_entries_are_selected_by_type_and_deny_unknown_keys() {
        let c: Vec<HookConfig> = serde_json::from_value(json!([
            {"type": "attribute_map", "rules": [{"action": "drop", "attribute": "title"}]},
            {"type": "audit_log", "path": "a.jsonl"},
            {"type": "plugin", "name": "p", "path": "lib.so", "failure": "allow"}
        ]))
        .unwrap();
        assert_eq!(
            c.iter().map(HookConfig::kind).collect::<Vec<_>>(),
            ["attribute_map", "audit_log", "plugin"]
        );
        assert!(
            serde_json::from_value::<HookConfig>(json!({"type": "audit_log", "path": "a", "x": 1}))
                .is_err()
        );
        assert!(serde_json::from_value::<HookConfig>(json!({"type": "nope"})).is_err());
    }

    #[test]
    fn build_errors_name_the_source_position_and_hook() {
        let c: Vec<HookConfig> = serde_json::from_value(json!([
            {"type": "attribute_map", "rules": []},
            {"type": "plugin", "name": "policy", "path": "missing/libx.so"}
        ]))
        .unwrap();
        let env = HookEnv {
            source: "okta",
            config_dir: Path::new("/etc/scimd"),
            state: Arc::new(scimd_core::state::MemoryStateStore::default()),
        };
        let e = build_pipeline(&c, &env).unwrap_err().to_string();
        assert!(
            e.starts_with("hook 2 (plugin \"policy\") of source okta:"),
            "{e}"
        );
        assert!(e.contains("/etc/scimd/missing/libx.so"), "{e}");
    }
}
