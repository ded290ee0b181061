//! # scimd-backend-ldap
#![forbid(unsafe_code)]

pub mod config;
mod conn;
mod filter;
mod mapping;
