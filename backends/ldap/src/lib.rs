//! # scimd-backend-ldap
//!
//! The LDAP write-through backend: [`LdapBackend`] implements [`scimd_core::Backend`] directly
//! on an LDAP directory (OpenLDAP, Active Directory) through ldap3. A SCIM write succeeds only
//! once the directory has accepted it; there is no second copy that could drift.
//!
//! - [`config`]: [`LdapConfig`] — URL, bind (password from a file or an environment variable,
//!   never logged), TLS (`ldaps://`, StartTLS, CA file), timeouts, pool size, and the mapping:
//!   a preset (`openldap`: inetOrgPerson + groupOfNames; `active_directory`: user/group) with
//!   per-type overrides of base DN (`{source}` gives each source its own subtree), scope,
//!   object classes, naming attribute, attribute mappings (`name.givenName` → `givenName`,
//!   `emails[type eq "work"].value` → `mail`, references such as `manager`), `active` (a lock
//!   attribute, a flag, or a bit of `userAccountControl`), `password` and soft deletes.
//! - Connections: a small pool of bound connections multiplexing concurrent operations, which
//!   reconnects after the directory restarts. LDAP result codes are mapped once:
//!   entryAlreadyExists → `uniqueness`, noSuchObject → not found, busy/unavailable/connection
//!   loss → 503 with `Retry-After`, assertionFailed → version mismatch.
//! - Identity: the SCIM `id` is `entryUUID` (`objectGUID` on AD), stable across renames;
//!   writes of the naming attribute rename the entry (modrdn) and memberships follow.
//! - Filters: the whole filter AST is translated to an RFC 4515 filter with escaping (a value
//!   such as `*)(uid=*` matches literally). LDAP matching rules differ from SCIM's (RFC 4518
//!   space handling, attributes without ordering or substring rules), so translations are
//!   supersets, tracked as exact or not; inexact results are re-checked with the core's
//!   reference evaluator. Attributes without a mapping are `invalidFilter`.
//! - Paging and sorting: searches use simple paged results (RFC 2696); sorting, index and
//!   cursor paging run in memory over the matching entries with
//!   [`scimd_core::paging::paginate`], bounded by `max_scan` (beyond it: `tooMany`). This is
//!   the documented fallback for directories without server-side sorting that matches SCIM's
//!   ordering (RFC 2891 orders by LDAP matching rules, not SCIM's).
//! - Groups: `members` are `member` DNs resolved from SCIM ids in the same source; a
//!   membership PATCH is one modify adding and deleting exactly the values that change, so
//!   concurrent PATCHes lose nothing and never rewrite the member list. `User.groups` is
//!   computed (one indexed search) only when requested.
//!
//! ## Storage modes
//! - **Mapped** (`lossless = false`): only mapped attributes are stored, the version comes
//!   from the directory (`entryCSN` — see the version rules in the `meta` module —, or
//!   `uSNChanged`) and writes are conditional on `entryCSN` with the assertion control.
//!   [`LdapBackend::storable_paths`] lists what the mapping can hold and
//!   [`LdapBackend::hosted_schemas`] narrows a source's schemas to it: served that way,
//!   `/Schemas` lists only those attributes, and bodies, PATCH paths and filters naming any
//!   other are refused as unknown attributes (`invalidSyntax`, `invalidPath`, `invalidFilter`)
//!   — or dropped and counted under the source's `ignore_unknown_attributes` rule — instead
//!   of being accepted and lost. (Called directly, the backend skips what it cannot store.)
//!   Elements of a multi-valued attribute whose `type` no mapping selects (`emails` of type
//!   `home` when only `work` is mapped) are not stored.
//! - **Lossless** (`lossless = true`): entries also carry the `scimdObject` auxiliary class
//!   (`schema/scimd.schema`), whose JSON copy keeps every SCIM attribute, exact timestamps,
//!   member display names and a version counter; the mapped LDAP attributes are still
//!   written, and edits made with other LDAP tools win over the copy. Every write swaps the
//!   copy's exact old value for the new one in the same modify (a compare-and-swap), and
//!   renames and deletes record their intent in the copy first, so a directory crash between
//!   two LDAP operations never shows a half-written resource.
//!
//! Transactions (RFC 5805) can make multi-operation writes atomic in either mode
//! (`directory.transactions`), but are off by default: OpenLDAP 2.5's transactions do not
//! work reliably together with the memberof and refint overlays.
//!
//! ## Directory requirements (OpenLDAP)
//! The `memberof` overlay (for `groups.value` filters and member lookups; index `memberOf`
//! and `member` for speed), `refint` with `refint_nothing ""` (member DNs follow renames and
//! deletes), `ppolicy` for `active` (`pwdAccountLockedTime`) and `ppolicy_hash_cleartext` so
//! that written passwords are hashed by the directory.

#![forbid(unsafe_code)]

mod backend;
pub mod config;
mod conn;
mod filter;
mod mapping;
mod meta;

pub use backend::LdapBackend;
pub use config::LdapConfig;
