//! # scimd-bench
//!
//! A load generator for SCIM 2.0 servers (RFC 7643/7644, RFC 9865 cursors). It talks plain
//! SCIM over HTTP to any base URL with a bearer token, so the same run can measure scimd and
//! another SCIM server.
//!
//! - [`seed`]: creates a realistic data set (users through `/Bulk` within the advertised limits
//!   or parallel POSTs, groups, a big group filled by PATCH batches) and records the ids in a
//!   [`state::State`] file.
//! - [`generate`]: the same data set as a file of SCIM resources with ids, for bulk loaders
//!   such as `scimd import` (a million users in minutes instead of hours of HTTP writes).
//! - [`run`]: closed-loop workers, one keep-alive connection each, measure the throughput and
//!   latency percentiles of each scenario (GET by id, filters, index and cursor pages, POST,
//!   PUT, PATCH, big-group member add/remove).
//! - [`client`]: the lean HTTP/1.1 client ([`client::Target`], [`client::Conn`]).
//! - [`stats`]: HDR-histogram recording and the report table / JSON.
//! - [`data`]: deterministic, realistic identities; [`discovery`]: the ServiceProviderConfig
//!   limits.

#![forbid(unsafe_code)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod client;
pub mod data;
pub mod discovery;
pub mod generate;
pub mod run;
pub mod seed;
pub mod state;
pub mod stats;
