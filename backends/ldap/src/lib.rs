//! # scimd-backend-ldap
#![forbid(unsafe_code)]
