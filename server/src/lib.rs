//! # scimd-server
//!
//! The scimd server: the SCIM 2.0 HTTP surface of every source, bearer tokens, configuration,
//! operations endpoints and the `scimd` command line.
//!
//! - [`config`]: figment-loaded [`config::Config`] (defaults → `scimd.toml` → `SCIMD_*`).
//! - [`app`]: the running [`app::App`], with one [`scimd_core::service::Service`] per source.
//! - [`http`]: routes, wire exactness, OpenAPI and the edge middleware; [`http::serve`] runs a
//!   server on a given listener until a shutdown future completes.
//! - [`bulk`]: RFC 7644 §3.7 Bulk with `bulkId` references.
//! - [`import`]: `scimd import`, bulk loading of NDJSON files of SCIM resources.
//! - [`tokens`]: generation, hashing and checking of bearer tokens.
//! - [`metrics`]: the Prometheus recorder.
//! - [`cli`]: the `scimd` commands.

#![forbid(unsafe_code)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod app;
pub mod bulk;
pub mod cli;
pub mod config;
pub mod http;
pub mod import;
pub mod metrics;
pub mod tokens;

pub use app::App;
pub use http::serve;
