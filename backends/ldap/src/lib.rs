//! # scimd-backend-ldap
#![forbid(unsafe_code)]

mod backend;
pub mod config;
mod conn;
mod filter;
mod mapping;
mod meta;

pub use backend::LdapBackend;
pub use config::LdapConfig;
