//! # scimd-plugin-host
//!
//! The host side of scimd's hooks:
//!
//! - [`loader`]: loads plugin libraries through the C ABI of `scimd-plugin-api` (ABI version
//!   handshake first, never unloaded) — the only `unsafe` on the host side;
//! - [`dynamic`]: [`PluginHook`](dynamic::PluginHook), a plugin instance as a
//!   [`Hook`](scimd_core::hooks::Hook), run off the async runtime with a timeout and a
//!   failure policy;
//! - [`pipeline`]: [`HookConfig`](pipeline::HookConfig), one entry of a source's `hooks`
//!   list, and [`build_pipeline`](pipeline::build_pipeline);
//! - [`testing`]: builds plugin crates of this workspace for tests, through cargo.

pub mod dynamic;
pub mod loader;
pub mod pipeline;
pub mod testing;

pub use dynamic::{FailurePolicy, PluginConfig, PluginHook};
pub use loader::{LoadError, PluginLibrary};
pub use pipeline::{HookBuildError, HookConfig, HookEnv, build_pipeline};

/// Registers the descriptions (`# HELP`) of every hook and event-delivery metric with the
/// installed recorder.
pub fn describe_metrics() {
    scimd_core::hooks::describe_metrics();
    scimd_plugins_builtin::events::delivery::describe_metrics();
}
