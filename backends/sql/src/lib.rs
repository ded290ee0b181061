//! # scimd-backend-sql
//!
//! The SQL backend. (Being written.)
#![forbid(unsafe_code)]
