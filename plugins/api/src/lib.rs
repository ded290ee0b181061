//! # scimd-plugin-api
//!
//! The only crate a scimd hook plugin depends on. A plugin is a Rust `cdylib` that implements
//! the safe [`Plugin`] trait and exports it with [`export_plugin!`]; scimd loads the library at
//! start-up and calls the plugin in the phases it declares:
//!
//! - **map**: transform an incoming resource (canonical attribute names, not yet validated),
//! - **decide**: change the validated resource once more or veto the write with a SCIM error,
//! - **react**: observe a successful write (old and new state).
//!
//! ```ignore
//! use scimd_plugin_api::{Context, Denial, Phase, Plugin, Resource, export_plugin};
//! use serde_json::{Map, Value};
//!
//! struct Lowercase;
//!
//! impl Plugin for Lowercase {
//!     const NAME: &'static str = "lowercase";
//!     const PHASES: &'static [Phase] = &[Phase::Map];
//!
//!     fn new(_config: Value) -> Result<Self, String> {
//!         Ok(Lowercase)
//!     }
//!
//!     fn map(&self, _cx: &Context, _old: Option<&Resource>, resource: &mut Map<String, Value>)
//!         -> Result<(), Denial>
//!     {
//!         if let Some(Value::String(name)) = resource.get_mut("userName") {
//!             *name = name.to_lowercase();
//!         }
//!         Ok(())
//!     }
//! }
//!
//! export_plugin!(Lowercase);
//! ```
//!
//! # The ABI contract
//!
//! The library exports two C functions (see [`ffi`]):
//!
//! 1. `scimd_plugin_abi_version() -> u32` returns [`ABI_VERSION`]. The host calls it before
//!    anything else and refuses the library when it differs from its own.
//! 2. `scimd_plugin_entry() -> *const PluginVTable` returns a static table of functions:
//!    `describe` (name, version, phases as JSON), `create` (an instance from a JSON config),
//!    `call` (one phase: a JSON [`Call`] in, a JSON [`Reply`] out) and `free` (releases a buffer
//!    the plugin allocated).
//!
//! Everything crossing the boundary is UTF-8 JSON in byte buffers. Input buffers belong to the
//! host and are only borrowed for the call; output buffers are allocated by the plugin and
//! handed back to the plugin's `free`, so each side only ever frees what its own allocator
//! allocated. Every exported function catches panics (a panic must never unwind into the host:
//! that would abort the process), so a panicking plugin becomes a failed call. Instances are
//! `Send + Sync` and called from several threads at once; they live until the process exits
//! (scimd never unloads a plugin library).
//!
//! # Rules for plugin authors
//!
//! - Never write `unsafe`: the macro and this crate hold all of it.
//! - Keep `panic = "unwind"` (the default) in the profile that builds the plugin: with
//!   `panic = "abort"` a panic cannot be caught and ends the scimd process.
//! - Do not start threads that outlive a call, and do not use tokio: the host calls plugins on
//!   a blocking thread with a timeout; a plugin has no async runtime.
//! - Build with the same major version of this crate as the scimd you load it into; the ABI
//!   version check refuses anything else at start-up.

pub mod ffi;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::fmt;

/// The version of the C ABI this crate speaks. Bumped on every incompatible change of the
/// exported functions, the [`ffi::PluginVTable`] layout or the JSON messages.
pub const ABI_VERSION: u32 = 1;

/// The exported symbol that returns the plugin's ABI version (`extern "C" fn() -> u32`).
pub const ABI_VERSION_SYMBOL: &str = "scimd_plugin_abi_version";

/// The exported symbol that returns the plugin's function table
/// (`extern "C" fn() -> *const PluginVTable`).
pub const ENTRY_SYMBOL: &str = "scimd_plugin_entry";

/// A phase of a write a plugin can take part in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// Transform the incoming resource before validation.
    Map,
    /// Change or veto the validated resource before the write.
    Decide,
    /// Observe a successful write.
    React,
}

/// A write operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Operation {
    /// POST.
    Create,
    /// PUT.
    Replace,
    /// PATCH.
    Patch,
    /// DELETE.
    Delete,
}

/// What a plugin knows about the write it takes part in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Context {
    /// The source (tenant) slug.
    pub source: String,
    /// `User` or `Group`.
    pub resource_type: String,
    /// The operation.
    pub operation: Operation,
    /// The resource id; absent for a create before the write.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The name of the bearer token that authenticated the request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_name: Option<String>,
    /// The request id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

/// A stored resource: identity, version, timestamps and its canonical attributes (core
/// attributes at the top level, extension attributes in an object under the extension URN).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Resource {
    /// The server-assigned id.
    pub id: String,
    /// The version (the number in the ETag `W/"n"`).
    pub version: u64,
    /// RFC 3339 creation time.
    pub created: String,
    /// RFC 3339 time of the last change.
    pub last_modified: String,
    /// The canonical attributes.
    pub attributes: Map<String, Value>,
}

/// A successful write, as a react-phase plugin sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    /// The write's context (`id` is set).
    pub context: Context,
    /// The state before (absent for a create).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old: Option<Resource>,
    /// The state after (absent for a delete).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new: Option<Resource>,
    /// For a PATCH, the PatchOp body the client sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patch: Option<Value>,
}

/// The JSON message the host sends for one phase.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Call {
    /// Which phase.
    pub phase: Phase,
    /// The write's context.
    pub context: Context,
    /// The current state (replace, patch, delete; and react).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old: Option<Resource>,
    /// map/decide: the incoming attributes (absent for a delete).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<Map<String, Value>>,
    /// react: the state after the write (absent for a delete).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new: Option<Resource>,
    /// react on PATCH: the PatchOp body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patch: Option<Value>,
}

/// The JSON message a plugin answers a [`Call`] with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "lowercase")]
pub enum Reply {
    /// Go on; with `resource` when the plugin changed it.
    Continue {
        /// The changed attributes; absent when unchanged.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        resource: Option<Map<String, Value>>,
    },
    /// Refuse the write with this SCIM error.
    Deny(Denial),
}

/// A refusal: the SCIM error (RFC 7644 §3.12) the client receives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Denial {
    /// The HTTP status, 400–599 (the host answers 500 for anything else).
    pub status: u16,
    /// The SCIM `scimType` keyword, if one applies (`invalidValue`, `uniqueness`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scim_type: Option<String>,
    /// A human-readable explanation for the client.
    pub detail: String,
}

impl Denial {
    /// A refusal with a status, an optional `scimType` and a detail.
    pub fn new(status: u16, scim_type: Option<&str>, detail: impl Into<String>) -> Self {
        Denial {
            status,
            scim_type: scim_type.map(str::to_string),
            detail: detail.into(),
        }
    }

    /// 403: the write is not allowed by policy.
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Denial::new(403, None, detail)
    }

    /// 400 `invalidValue`: the resource carries a value the plugin refuses.
    pub fn invalid_value(detail: impl Into<String>) -> Self {
        Denial::new(400, Some("invalidValue"), detail)
    }
}

impl fmt::Display for Denial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.status, self.detail)
    }
}

/// What a plugin library says about itself (`describe`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Description {
    /// [`Plugin::NAME`].
    pub name: String,
    /// The plugin crate's version ([`Plugin::VERSION`]).
    pub version: String,
    /// The phases the plugin implements.
    pub phases: Vec<Phase>,
}

/// A hook plugin. Implement the phases you need, list them in [`Plugin::PHASES`] (the host
/// calls no others) and export the type with [`export_plugin!`].
///
/// Methods are called from several threads at once, so state shared between calls needs
/// `Mutex`/atomics. A panic is caught and treated like an error; still, return errors instead.
pub trait Plugin: Send + Sync + Sized + 'static {
    /// A short name for logs and error messages.
    const NAME: &'static str;
    /// The plugin's own version (defaults to this API crate's; override with
    /// `env!("CARGO_PKG_VERSION")`).
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    /// The phases this plugin implements.
    const PHASES: &'static [Phase];

    /// Creates an instance from the `config` table of the plugin's entry in `scimd.toml`
    /// (`null` when there is none). An error stops scimd's start-up with the message.
    fn new(config: Value) -> Result<Self, String>;

    /// Map phase: change `resource` in place. `old` is the current state for a replace or
    /// patch. A denial fails the request with it.
    fn map(
        &self,
        cx: &Context,
        old: Option<&Resource>,
        resource: &mut Map<String, Value>,
    ) -> Result<(), Denial> {
        let _ = (cx, old, resource);
        Ok(())
    }

    /// Decide phase: change `resource` (absent for a delete) or refuse the write.
    fn decide(
        &self,
        cx: &Context,
        old: Option<&Resource>,
        resource: Option<&mut Map<String, Value>>,
    ) -> Result<(), Denial> {
        let _ = (cx, old, resource);
        Ok(())
    }

    /// React phase: observe a successful write. An error is logged by the host; the write
    /// stands.
    fn react(&self, event: &Event) -> Result<(), String> {
        let _ = event;
        Ok(())
    }
}

/// Runs one [`Call`] against a plugin instance. The `ffi` glue calls this inside
/// `catch_unwind`; it is public so that plugin authors can unit-test their plugin through the
/// same dispatch the host uses, without building a library.
pub fn dispatch<P: Plugin>(plugin: &P, call: Call) -> Result<Reply, String> {
    let Call {
        phase,
        context,
        old,
        resource,
        new,
        patch,
    } = call;
    let changed = |before: Option<Map<String, Value>>, after: Option<Map<String, Value>>| {
        if before == after { None } else { after }
    };
    match phase {
        Phase::Map => {
            let mut attrs = resource.ok_or("a map call carries a resource")?;
            let before = attrs.clone();
            match plugin.map(&context, old.as_ref(), &mut attrs) {
                Ok(()) => Ok(Reply::Continue {
                    resource: changed(Some(before), Some(attrs)),
                }),
                Err(d) => Ok(Reply::Deny(d)),
            }
        }
        Phase::Decide => {
            let mut attrs = resource;
            let before = attrs.clone();
            match plugin.decide(&context, old.as_ref(), attrs.as_mut()) {
                Ok(()) => Ok(Reply::Continue {
                    resource: changed(before, attrs),
                }),
                Err(d) => Ok(Reply::Deny(d)),
            }
        }
        Phase::React => {
            let event = Event {
                context,
                old,
                new,
                patch,
            };
            plugin.react(&event)?;
            Ok(Reply::Continue { resource: None })
        }
    }
}

/// Exports a [`Plugin`] implementation as a scimd plugin library: the ABI version symbol and
/// the entry symbol returning the function table. Use it once per `cdylib`, at the crate root.
///
/// The generated functions are the only `unsafe` (the `no_mangle` attribute) in a plugin crate;
/// they carry `#[allow(unsafe_code)]`, so a plugin crate may `#![deny(unsafe_code)]`.
#[macro_export]
macro_rules! export_plugin {
    ($plugin:ty) => {
        /// The scimd plugin ABI version this library was built for.
        #[allow(unsafe_code)]
        #[unsafe(no_mangle)]
        pub extern "C" fn scimd_plugin_abi_version() -> u32 {
            $crate::ABI_VERSION
        }

        /// The scimd plugin function table.
        #[allow(unsafe_code)]
        #[unsafe(no_mangle)]
        pub extern "C" fn scimd_plugin_entry() -> *const $crate::ffi::PluginVTable {
            static VTABLE: $crate::ffi::PluginVTable = $crate::ffi::vtable::<$plugin>();
            &VTABLE
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    struct Upper;

    impl Plugin for Upper {
        const NAME: &'static str = "upper";
        const PHASES: &'static [Phase] = &[Phase::Map, Phase::Decide, Phase::React];

        fn new(_: Value) -> Result<Self, String> {
            Ok(Upper)
        }

        fn map(
            &self,
            _: &Context,
            _: Option<&Resource>,
            resource: &mut Map<String, Value>,
        ) -> Result<(), Denial> {
            if let Some(Value::String(s)) = resource.get_mut("userName") {
                *s = s.to_uppercase();
            }
            Ok(())
        }

        fn decide(
            &self,
            _: &Context,
            _: Option<&Resource>,
            resource: Option<&mut Map<String, Value>>,
        ) -> Result<(), Denial> {
            match resource {
                Some(r) if r.contains_key("forbidden") => Err(Denial::forbidden("no")),
                _ => Ok(()),
            }
        }

        fn react(&self, event: &Event) -> Result<(), String> {
            if event.new.is_none() {
                return Err("nothing new".into());
            }
            Ok(())
        }
    }

    fn call(phase: Phase, resource: Option<Value>) -> Call {
        serde_json::from_value(json!({
            "phase": phase,
            "context": {"source": "s", "resourceType": "User", "operation": "create"},
            "resource": resource,
        }))
        .unwrap()
    }

    #[test]
    fn map_replies_with_the_changed_resource_only_when_changed() {
        let r = dispatch(&Upper, call(Phase::Map, Some(json!({"userName": "ab"}))));
        let Ok(Reply::Continue {
            resource: Some(out),
        }) = r
        else {
            panic!("{r:?}")
        };
        assert_eq!(out["userName"], "AB");
        let r = dispatch(&Upper, call(Phase::Map, Some(json!({"userName": "AB"}))));
        assert_eq!(r, Ok(Reply::Continue { resource: None }));
    }

    #[test]
    fn a_denial_travels_as_a_deny_reply_with_camel_case_keys() {
        let r = dispatch(&Upper, call(Phase::Decide, Some(json!({"forbidden": 1}))));
        assert_eq!(r, Ok(Reply::Deny(Denial::forbidden("no"))));
        let wire = serde_json::to_value(Reply::Deny(Denial::invalid_value("bad"))).unwrap();
        assert_eq!(
            wire,
            json!({"action": "deny", "status": 400, "scimType": "invalidValue", "detail": "bad"})
        );
    }

    #[test]
    fn react_errors_are_errors_not_denials() {
        let r = dispatch(&Upper, call(Phase::React, None));
        assert_eq!(r, Err("nothing new".to_string()));
    }

    #[test]
    fn a_map_call_without_resource_is_refused() {
        assert!(dispatch(&Upper, call(Phase::Map, None)).is_err());
    }
}
