//! # scimd-bench
//!
//! A SCIM 2.0 load generator (work in progress).

#![forbid(unsafe_code)]
