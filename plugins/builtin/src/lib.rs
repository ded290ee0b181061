//! # scimd-plugins-builtin
//!
//! The hooks scimd ships, configured in `scimd.toml` without writing code:
//!
//! - [`attribute_map`]: copy, rename, default, template, lowercase/trim, regex-replace and drop
//!   attributes in the map phase, each rule scoped to resource types and operations;
//! - [`audit_log`]: one JSON line per write with the before/after differences, secrets never
//!   written;
//! - [`events`]: RFC 9967 SCIM events as signed SETs, pushed to receivers (RFC 8935) through the
//!   state store's durable outbox.
//!
//! [`valuepath`] holds the path and template language the rules use.

pub mod attribute_map;
pub mod audit_log;
pub mod events;
pub mod valuepath;
