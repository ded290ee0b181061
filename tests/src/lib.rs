//! # scimd-testkit
//!
//! The backend conformance suite. (Being written.)
#![forbid(unsafe_code)]
