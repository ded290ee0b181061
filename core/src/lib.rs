//! # scimd-core
//!
//! The SCIM 2.0 protocol (RFC 7643, RFC 7644, RFC 9865 cursors) as a library, with no HTTP, no
//! database drivers and no async runtime. It owns:
//!
//! - [`schema`]: attribute characteristics, the built-in User/Group/EnterpriseUser and discovery
//!   schemas, custom extensions, case-insensitive path resolution.
//! - [`filter`]: the filter AST, parser, printer and the reference in-memory evaluator.
//! - [`patch`]: PATCH parsing, atomic application and membership deltas.
//! - [`normalize`]: canonicalization and validation of incoming resources.
//! - [`projection`]: `attributes` / `excludedAttributes` and the `returned` characteristic.
//! - [`paging`]: sorting, index paging and tamper-evident RFC 9865 cursors.
//! - [`backend`]: the [`Backend`](backend::Backend) trait every store implements.
//! - [`hooks`]: the [`Hook`](hooks::Hook) trait and the [`HookPipeline`](hooks::HookPipeline)
//!   that runs a source's hooks around every write.
//! - [`compat`]: the named identity-provider tolerance rules, presets and the per-request
//!   [`Fired`](compat::Fired) collector.
//! - [`error`]: [`ScimError`](error::ScimError) and the one mapping from
//!   [`BackendError`](error::BackendError).

#![forbid(unsafe_code)]

pub mod backend;
pub mod compat;
pub mod error;
pub mod filter;
pub mod hooks;
pub mod normalize;
pub mod paging;
pub mod patch;
pub mod path;
pub mod projection;
pub mod query;
pub mod resource;
pub mod schema;
pub mod service;
pub mod state;

pub use backend::{Backend, Capabilities, Imported};
pub use error::{BackendError, ScimError, ScimType};
pub use filter::{CompValue, CompareOp, Filter};
pub use patch::{MembershipDelta, PatchRequest};
pub use path::AttrPath;
pub use query::{Load, Page, Query, QueryPage, Sort};
pub use resource::{Resource, Version};
pub use schema::{ResourceKind, SchemaRegistry};
