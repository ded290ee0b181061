//! # scimd-backend-memory
//!
//! The in-memory reference backend. (Being written.)
#![forbid(unsafe_code)]
