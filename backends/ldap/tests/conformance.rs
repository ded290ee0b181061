//! The LDAP backend (lossless mode, `openldap` preset) runs the whole backend conformance
//! suite against a real, throwaway slapd.

mod common;

use scimd_backend_ldap::LdapBackend;
use scimd_core::Backend;
use std::sync::{Arc, OnceLock};

static SLAPD: OnceLock<common::Slapd> = OnceLock::new();

async fn backend() -> Arc<dyn Backend> {
    let slapd = SLAPD.get_or_init(common::Slapd::start);
    let backend = LdapBackend::new(&slapd.config(true), scimd_testkit::fixtures::registry())
        .unwrap_or_else(|e| panic!("LDAP backend configuration: {e}"));
    Arc::new(backend)
}

scimd_testkit::conformance_tests!(backend);
