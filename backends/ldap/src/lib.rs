//! # scimd-backend-ldap
#![forbid(unsafe_code)]

pub mod config;
mod conn;
mod filter;
mod mapping;
mod backend;
mod meta;

pub use backend::LdapBackend;
pub use config::LdapConfig;
