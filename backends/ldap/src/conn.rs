//! Connections: a small pool of bound ldap3 connections that reconnects after the directory
//! restarts, and the one mapping from LDAP failures to [`BackendError`].
//!
//! ldap3 multiplexes concurrent operations over one connection, so the pool hands out clones of
//! a connection handle round-robin instead of checking connections out. A handle whose
//! connection has closed (the directory went away) is replaced by a fresh, bound connection
//! the next time its slot is used; until the directory answers again every operation fails
//! fast with [`BackendError::Unavailable`].

use crate::config::{ConfigError, LdapConfig, Secret};
use ldap3::{Ldap, LdapConnAsync, LdapConnSettings, LdapError, Scope};
use scimd_core::BackendError;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::Mutex;

/// LDAP result codes (RFC 4511 Appendix A) the backend distinguishes.
pub(crate) mod rc {
    pub const TIME_LIMIT_EXCEEDED: u32 = 3;
    pub const SIZE_LIMIT_EXCEEDED: u32 = 4;
    pub const NO_SUCH_ATTRIBUTE: u32 = 16;
    pub const UNDEFINED_ATTRIBUTE_TYPE: u32 = 17;
    pub const CONSTRAINT_VIOLATION: u32 = 19;
    pub const ATTRIBUTE_OR_VALUE_EXISTS: u32 = 20;
    pub const INVALID_ATTRIBUTE_SYNTAX: u32 = 21;
    pub const NO_SUCH_OBJECT: u32 = 32;
    pub const INVALID_DN_SYNTAX: u32 = 34;
    pub const INVALID_CREDENTIALS: u32 = 49;
    pub const INSUFFICIENT_ACCESS_RIGHTS: u32 = 50;
    pub const BUSY: u32 = 51;
    pub const UNAVAILABLE: u32 = 52;
    pub const UNWILLING_TO_PERFORM: u32 = 53;
    pub const NAMING_VIOLATION: u32 = 64;
    pub const OBJECT_CLASS_VIOLATION: u32 = 65;
    pub const ENTRY_ALREADY_EXISTS: u32 = 68;
    pub const ADMIN_LIMIT_EXCEEDED: u32 = 11;
    pub const OTHER: u32 = 80;
    pub const ASSERTION_FAILED: u32 = 122;
}

/// What a failed operation was about, so that one mapping can name the right thing.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Ctx<'a> {
    /// The SCIM id the operation targeted (for `NotFound`).
    pub id: Option<&'a str>,
    /// The SCIM attribute whose uniqueness an add or rename can violate.
    pub unique: Option<&'a str>,
}

/// Maps an LDAP failure to the backend's semantic error. This is the only place result codes
/// are interpreted.
pub(crate) fn map_error(e: &LdapError, ctx: Ctx<'_>, retry_after: u32) -> BackendError {
    let unavailable = |detail: String| BackendError::Unavailable {
        detail,
        retry_after: Some(retry_after),
    };
    let LdapError::LdapResult { result } = e else {
        // Everything that is not a result from the server is the connection failing: I/O,
        // closed channels, timeouts, TLS.
        return unavailable(format!("the directory cannot be reached ({e})"));
    };
    let text = if result.text.is_empty() {
        String::new()
    } else {
        format!(": {}", result.text)
    };
    match result.rc {
        rc::ENTRY_ALREADY_EXISTS => {
            BackendError::Uniqueness(ctx.unique.unwrap_or("the entry name").to_string())
        }
        rc::NO_SUCH_OBJECT => BackendError::NotFound(ctx.id.unwrap_or("entry").to_string()),
        rc::ASSERTION_FAILED => BackendError::VersionMismatch,
        rc::BUSY | rc::UNAVAILABLE | rc::TIME_LIMIT_EXCEEDED | rc::OTHER => unavailable(format!(
            "the directory answered result code {}{text}",
            result.rc
        )),
        rc::SIZE_LIMIT_EXCEEDED | rc::ADMIN_LIMIT_EXCEEDED => BackendError::TooMany(format!(
            "the directory refused to return that many entries{text}"
        )),
        rc::INSUFFICIENT_ACCESS_RIGHTS => BackendError::NotPermitted(format!(
            "the directory denied the operation to the bind account{text}"
        )),
        rc::UNWILLING_TO_PERFORM => {
            BackendError::NotPermitted(format!("the directory is unwilling to perform it{text}"))
        }
        rc::CONSTRAINT_VIOLATION
        | rc::INVALID_ATTRIBUTE_SYNTAX
        | rc::OBJECT_CLASS_VIOLATION
        | rc::NAMING_VIOLATION
        | rc::INVALID_DN_SYNTAX
        | rc::UNDEFINED_ATTRIBUTE_TYPE => BackendError::InvalidValue(format!(
            "the directory rejected a value (result code {}){text}",
            result.rc
        )),
        rc::INVALID_CREDENTIALS => {
            BackendError::Internal("the directory refused the configured bind credentials".into())
        }
        other => BackendError::Internal(format!("unexpected LDAP result code {other}{text}")),
    }
}

/// Whether an error means the operation never reached a directory that answered.
pub(crate) fn is_connection_error(e: &LdapError) -> bool {
    !matches!(e, LdapError::LdapResult { .. })
}

/// What the directory advertises in its root DSE, learned on the first connection.
const FEATURE_UNKNOWN: u8 = 0;
const FEATURE_YES: u8 = 1;
const FEATURE_NO: u8 = 2;

/// The Start Transaction extended operation (RFC 5805).
pub(crate) const START_TXN_OID: &str = "1.3.6.1.1.21.1";
/// The matched values control (RFC 3876).
pub(crate) const MATCHED_VALUES_OID: &str = "1.2.826.0.1.3344810.2.3";
/// The assertion control (RFC 4528).
pub(crate) const ASSERTION_OID: &str = "1.3.6.1.1.12";

/// A pool of bound connections.
pub(crate) struct Pool {
    url: String,
    settings: SettingsTemplate,
    bind_dn: String,
    password: Option<Secret>,
    connect_timeout: Duration,
    /// The per-operation timeout.
    pub op_timeout: Duration,
    /// Seconds suggested to clients when the directory is unreachable.
    pub retry_after: u32,
    slots: Vec<Mutex<Option<Ldap>>>,
    next: AtomicUsize,
    assertion: AtomicU8,
    transactions: AtomicU8,
    matched_values: AtomicU8,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("url", &self.url)
            .field("bind_dn", &self.bind_dn)
            .field("password", &self.password)
            .field("size", &self.slots.len())
            .finish_non_exhaustive()
    }
}

/// The parts of `LdapConnSettings` (which is not `Clone`) needed to make one per connection.
#[derive(Clone)]
struct SettingsTemplate {
    starttls: bool,
    insecure: bool,
    tls: Option<Arc<rustls::ClientConfig>>,
}

impl SettingsTemplate {
    fn build(&self, connect_timeout: Duration) -> LdapConnSettings {
        let mut s = LdapConnSettings::new()
            .set_conn_timeout(connect_timeout)
            .set_starttls(self.starttls)
            .set_no_tls_verify(self.insecure);
        if let Some(c) = &self.tls {
            s = s.set_config(c.clone());
        }
        s
    }
}

/// A rustls configuration trusting the CA certificates of a PEM file.
fn tls_config(ca_file: &std::path::Path) -> Result<Arc<rustls::ClientConfig>, ConfigError> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let err = |e: String| ConfigError(format!("tls.ca_file {}: {e}", ca_file.display()));
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca_file).map_err(|e| err(e.to_string()))? {
        roots
            .add(cert.map_err(|e| err(e.to_string()))?)
            .map_err(|e| err(e.to_string()))?;
    }
    if roots.is_empty() {
        return Err(err("no certificate found".into()));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| err(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

impl Pool {
    /// A pool for `config`. Opens no connection yet: the first operation does.
    pub fn new(config: &LdapConfig) -> Result<Pool, ConfigError> {
        let lower = config.url.to_ascii_lowercase();
        if !(lower.starts_with("ldap://") || lower.starts_with("ldaps://")) {
            return Err(ConfigError(format!(
                "url must start with ldap:// or ldaps://, got {:?}",
                config.url
            )));
        }
        if config.tls.starttls && lower.starts_with("ldaps://") {
            return Err(ConfigError(
                "tls.starttls applies to ldap:// URLs only (ldaps:// is already encrypted)".into(),
            ));
        }
        let tls = match &config.tls.ca_file {
            Some(path) => Some(tls_config(path)?),
            None => None,
        };
        Ok(Pool {
            url: config.url.clone(),
            settings: SettingsTemplate {
                starttls: config.tls.starttls,
                insecure: config.tls.insecure_skip_verify,
                tls,
            },
            bind_dn: config.bind_dn.clone(),
            password: config.bind_password()?,
            connect_timeout: Duration::from_secs(config.connect_timeout_secs.max(1)),
            op_timeout: Duration::from_secs(config.operation_timeout_secs.max(1)),
            retry_after: config.retry_after_secs,
            slots: (0..config.pool_size.max(1))
                .map(|_| Mutex::new(None))
                .collect(),
            next: AtomicUsize::new(0),
            assertion: AtomicU8::new(FEATURE_UNKNOWN),
            transactions: AtomicU8::new(FEATURE_UNKNOWN),
            matched_values: AtomicU8::new(FEATURE_UNKNOWN),
        })
    }

    /// A live, bound connection handle (round-robin over the pool). Set the timeout on it with
    /// `with_timeout(pool.op_timeout)` before each operation.
    pub async fn get(&self) -> Result<Ldap, BackendError> {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.slots.len();
        let mut slot = self.slots[i].lock().await;
        if let Some(l) = slot.as_mut()
            && !l.is_closed()
        {
            return Ok(l.clone());
        }
        *slot = None;
        let l = self.connect().await?;
        *slot = Some(l.clone());
        Ok(l)
    }

    async fn connect(&self) -> Result<Ldap, BackendError> {
        let unavailable = |e: &LdapError| map_error(e, Ctx::default(), self.retry_after);
        let settings = self.settings.build(self.connect_timeout);
        let (conn, mut ldap) = tokio::time::timeout(
            self.connect_timeout,
            LdapConnAsync::with_settings(settings, &self.url),
        )
        .await
        .map_err(|_| BackendError::Unavailable {
            detail: "connecting to the directory timed out".into(),
            retry_after: Some(self.retry_after),
        })?
        .map_err(|e| unavailable(&e))?;
        tokio::spawn(async move {
            if let Err(e) = conn.drive().await {
                tracing::debug!(error = %e, "LDAP connection closed");
            }
        });
        if !self.bind_dn.is_empty() {
            let pw = self.password.as_ref().map(Secret::expose).unwrap_or("");
            ldap.with_timeout(self.connect_timeout)
                .simple_bind(&self.bind_dn, pw)
                .await
                .and_then(|r| r.success())
                .map_err(|e| unavailable(&e))?;
        }
        if self.assertion.load(Ordering::Relaxed) == FEATURE_UNKNOWN {
            self.probe(&mut ldap).await;
        }
        tracing::debug!(url = %self.url, "connected to the directory");
        Ok(ldap)
    }

    /// Reads the root DSE's supported controls.
    async fn probe(&self, ldap: &mut Ldap) {
        let res = ldap
            .with_timeout(self.op_timeout)
            .search(
                "",
                Scope::Base,
                "(objectClass=*)",
                vec!["supportedControl", "supportedExtension"],
            )
            .await
            .and_then(|r| r.success());
        let controls: Vec<String> = match res {
            Ok((entries, _)) => entries
                .into_iter()
                .flat_map(|e| {
                    let e = ldap3::SearchEntry::construct(e);
                    e.attrs
                        .into_iter()
                        .filter(|(k, _)| {
                            k.eq_ignore_ascii_case("supportedControl")
                                || k.eq_ignore_ascii_case("supportedExtension")
                        })
                        .flat_map(|(_, v)| v)
                })
                .collect(),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the directory's root DSE; assuming no optional controls");
                Vec::new()
            }
        };
        let flag = |oid: &str| {
            if controls.iter().any(|c| c == oid) {
                FEATURE_YES
            } else {
                FEATURE_NO
            }
        };
        self.transactions
            .store(flag(START_TXN_OID), Ordering::Relaxed);
        self.matched_values
            .store(flag(MATCHED_VALUES_OID), Ordering::Relaxed);
        self.assertion.store(flag(ASSERTION_OID), Ordering::Relaxed);
    }

    /// Whether the directory supports the matched values control (known after the first
    /// connection).
    pub fn supports_matched_values(&self) -> bool {
        self.matched_values.load(Ordering::Relaxed) == FEATURE_YES
    }

    /// Whether the directory supports transactions (known after the first connection).
    pub fn supports_transactions(&self) -> bool {
        self.transactions.load(Ordering::Relaxed) == FEATURE_YES
    }

    /// Whether the directory supports the assertion control (known after the first connection).
    pub fn supports_assertion(&self) -> bool {
        self.assertion.load(Ordering::Relaxed) == FEATURE_YES
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ldap3::LdapResult;

    fn result(code: u32) -> LdapError {
        LdapError::LdapResult {
            result: LdapResult {
                rc: code,
                matched: String::new(),
                text: "diag".into(),
                refs: vec![],
                ctrls: vec![],
            },
        }
    }

    fn map(code: u32) -> BackendError {
        map_error(
            &result(code),
            Ctx {
                id: Some("abc"),
                unique: Some("userName"),
            },
            7,
        )
    }

    #[test]
    fn entry_already_exists_is_uniqueness() {
        assert_eq!(map(68), BackendError::Uniqueness("userName".into()));
    }
    #[test]
    fn no_such_object_is_not_found() {
        assert_eq!(map(32), BackendError::NotFound("abc".into()));
    }
    #[test]
    fn assertion_failed_is_version_mismatch() {
        assert_eq!(map(122), BackendError::VersionMismatch);
    }
    #[test]
    fn busy_and_unavailable_are_unavailable_with_retry_after() {
        for code in [51, 52] {
            assert!(matches!(
                map(code),
                BackendError::Unavailable {
                    retry_after: Some(7),
                    ..
                }
            ));
        }
    }
    #[test]
    fn connection_loss_is_unavailable() {
        let e = LdapError::Io {
            source: std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset"),
        };
        assert!(is_connection_error(&e));
        assert!(matches!(
            map_error(&e, Ctx::default(), 3),
            BackendError::Unavailable {
                retry_after: Some(3),
                ..
            }
        ));
    }
    #[test]
    fn schema_violations_are_invalid_value() {
        for code in [19, 21, 65] {
            assert!(matches!(map(code), BackendError::InvalidValue(_)), "{code}");
        }
    }
    #[test]
    fn access_denied_is_not_permitted() {
        assert!(matches!(map(50), BackendError::NotPermitted(_)));
    }
    #[test]
    fn size_limit_is_too_many() {
        assert!(matches!(map(4), BackendError::TooMany(_)));
    }
    #[test]
    fn rejected_bind_is_internal_and_hides_the_password() {
        let e = map(49);
        assert!(matches!(e, BackendError::Internal(_)));
    }
    #[test]
    fn pool_debug_redacts_the_password() {
        let dir = std::env::temp_dir().join(format!("scimd-ldap-pool-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let pw = dir.join("pw");
        std::fs::write(&pw, "topsecret").unwrap();
        let mut c = LdapConfig::new("ldap://127.0.0.1:1", "dc=x");
        c.bind_password_file = Some(pw);
        let p = Pool::new(&c).unwrap();
        assert!(!format!("{p:?}").contains("topsecret"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
    #[test]
    fn urls_must_be_ldap_or_ldaps() {
        assert!(Pool::new(&LdapConfig::new("http://x", "dc=x")).is_err());
        let mut c = LdapConfig::new("ldaps://x", "dc=x");
        c.tls.starttls = true;
        assert!(Pool::new(&c).is_err());
    }
}
