//! The operator-facing configuration: where the directory is, how to bind, and how SCIM
//! resources map onto entries.
//!
//! A configuration names a [`Preset`] (`openldap` or `active_directory`) that fills in a
//! complete mapping for the usual schema of that directory; every part of it can be overridden
//! per resource type ([`ObjectConfig`]) or for the directory as a whole ([`DirectoryConfig`]).
//! [`crate::LdapBackend::new`] checks it and builds the mapping the backend runs on.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::PathBuf;

/// Configuration of one LDAP backend (`type = "ldap"` in `scimd.toml`).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LdapConfig {
    /// The directory URL: `ldap://host:389` (optionally upgraded with StartTLS, see
    /// [`TlsConfig::starttls`]) or `ldaps://host:636`.
    pub url: String,
    /// The suffix under which the preset places its containers, e.g. `dc=example,dc=org`.
    /// Presets put users under `ou=people,<base_dn>` and groups under `ou=groups,<base_dn>`
    /// (`cn=Users,<base_dn>` for both on Active Directory) unless overridden.
    pub base_dn: String,
    /// The DN to bind as (simple bind). Empty binds anonymously, which is only useful for
    /// read-only tests.
    #[serde(default)]
    pub bind_dn: String,
    /// The name of an environment variable holding the bind password.
    #[serde(default)]
    pub bind_password_env: Option<String>,
    /// A file holding the bind password (trailing newlines are ignored). Takes precedence over
    /// `bind_password_env` when both are set.
    #[serde(default)]
    pub bind_password_file: Option<PathBuf>,
    /// TLS options (`ldaps://` and StartTLS).
    #[serde(default)]
    pub tls: TlsConfig,
    /// Seconds allowed for opening a connection and binding.
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout_secs: u64,
    /// Seconds allowed for one LDAP operation (for searches: between two result messages).
    #[serde(default = "default_operation_timeout")]
    pub operation_timeout_secs: u64,
    /// Number of connections kept open. Each connection multiplexes concurrent operations.
    #[serde(default = "default_pool_size")]
    pub pool_size: usize,
    /// The `Retry-After` (seconds) suggested to clients when the directory is unreachable.
    #[serde(default = "default_retry_after")]
    pub retry_after_secs: u32,
    /// Page size of the simple paged results control (RFC 2696) used for large searches.
    #[serde(default = "default_page_size")]
    pub page_size: u32,
    /// The largest number of entries a query may examine when it has to sort, page or filter
    /// in memory (the directory offers no server-side sorting that matches SCIM semantics).
    /// Queries that would examine more fail with `tooMany` instead of exhausting memory.
    #[serde(default = "default_max_scan")]
    pub max_scan: u64,
    /// The mapping preset the rest of the configuration overrides.
    #[serde(default)]
    pub preset: Preset,
    /// Lossless mode: entries also carry the `scimdObject` auxiliary class (the schema ships
    /// in `backends/ldap/schema/scimd.schema`), which keeps every SCIM attribute — including
    /// those with no LDAP mapping — exact timestamps, the display names of group members, and
    /// a version counter. Without it, only mapped attributes are stored and the version is
    /// derived from the directory (`entryCSN`, `uSNChanged`).
    #[serde(default)]
    pub lossless: bool,
    /// Directory-wide overrides of the preset (identity, version and timestamp attributes).
    #[serde(default)]
    pub directory: DirectoryConfig,
    /// Overrides of the preset's user mapping.
    #[serde(default)]
    pub users: ObjectConfig,
    /// Overrides of the preset's group mapping.
    #[serde(default)]
    pub groups: ObjectConfig,
}

impl fmt::Debug for LdapConfig {
    // Written out so that a future secret-bearing field cannot slip into logs unnoticed:
    // every field is listed deliberately, and the password's *value* never is a field.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LdapConfig")
            .field("url", &self.url)
            .field("base_dn", &self.base_dn)
            .field("bind_dn", &self.bind_dn)
            .field("bind_password_env", &self.bind_password_env)
            .field("bind_password_file", &self.bind_password_file)
            .field("tls", &self.tls)
            .field("connect_timeout_secs", &self.connect_timeout_secs)
            .field("operation_timeout_secs", &self.operation_timeout_secs)
            .field("pool_size", &self.pool_size)
            .field("retry_after_secs", &self.retry_after_secs)
            .field("page_size", &self.page_size)
            .field("max_scan", &self.max_scan)
            .field("preset", &self.preset)
            .field("lossless", &self.lossless)
            .field("directory", &self.directory)
            .field("users", &self.users)
            .field("groups", &self.groups)
            .finish()
    }
}

fn default_connect_timeout() -> u64 {
    5
}
fn default_operation_timeout() -> u64 {
    15
}
fn default_pool_size() -> usize {
    4
}
fn default_retry_after() -> u32 {
    5
}
fn default_page_size() -> u32 {
    500
}
fn default_max_scan() -> u64 {
    20_000
}

impl LdapConfig {
    /// A configuration with every default for `url` and `base_dn`.
    pub fn new(url: impl Into<String>, base_dn: impl Into<String>) -> Self {
        LdapConfig {
            url: url.into(),
            base_dn: base_dn.into(),
            bind_dn: String::new(),
            bind_password_env: None,
            bind_password_file: None,
            tls: TlsConfig::default(),
            connect_timeout_secs: default_connect_timeout(),
            operation_timeout_secs: default_operation_timeout(),
            pool_size: default_pool_size(),
            retry_after_secs: default_retry_after(),
            page_size: default_page_size(),
            max_scan: default_max_scan(),
            preset: Preset::default(),
            lossless: false,
            directory: DirectoryConfig::default(),
            users: ObjectConfig::default(),
            groups: ObjectConfig::default(),
        }
    }

    /// Reads the bind password from the configured file or environment variable. `None` when
    /// neither is configured (anonymous or password-less bind).
    pub fn bind_password(&self) -> Result<Option<Secret>, ConfigError> {
        if let Some(path) = &self.bind_password_file {
            let text = std::fs::read_to_string(path).map_err(|e| {
                ConfigError(format!(
                    "cannot read bind_password_file {}: {e}",
                    path.display()
                ))
            })?;
            return Ok(Some(Secret(
                text.trim_end_matches(['\r', '\n']).to_string(),
            )));
        }
        if let Some(var) = &self.bind_password_env {
            return match std::env::var(var) {
                Ok(v) => Ok(Some(Secret(v))),
                Err(_) => Err(ConfigError(format!(
                    "bind_password_env names {var}, which is not set (or not UTF-8)"
                ))),
            };
        }
        Ok(None)
    }
}

/// A secret string (the bind password). Its `Debug` never shows the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    /// The secret value, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// A configuration problem found while loading or checking the configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid LDAP backend configuration: {0}")]
pub struct ConfigError(pub String);

/// TLS settings.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// Upgrade an `ldap://` connection with StartTLS (RFC 4513 §3) before binding.
    #[serde(default)]
    pub starttls: bool,
    /// A PEM file with the CA certificate(s) to trust instead of the system roots.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Skip certificate verification. Only for tests against self-signed directories: it
    /// makes the connection open to interception.
    #[serde(default)]
    pub insecure_skip_verify: bool,
}

/// A complete mapping for a common directory schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Preset {
    /// OpenLDAP with `inetOrgPerson` users and `groupOfNames` groups, ids from `entryUUID`,
    /// versions from `entryCSN`, `memberOf` from the memberof overlay and `active` as the
    /// ppolicy lock (`pwdAccountLockedTime`).
    #[default]
    Openldap,
    /// Active Directory: `user`/`group` objects, `sAMAccountName`, ids from `objectGUID`,
    /// versions from `uSNChanged`, `unicodePwd` and the `userAccountControl` disable bit.
    ActiveDirectory,
}

/// How deep under a base DN entries are looked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SearchScope {
    /// Direct children of the base DN only.
    One,
    /// The whole subtree below the base DN.
    Sub,
}

/// Where the SCIM `id` comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdSource {
    /// `entryUUID` (RFC 4530): a UUID string, stable across renames.
    EntryUuid,
    /// Active Directory's `objectGUID`: 16 bytes, rendered in the usual mixed-endian GUID form.
    ObjectGuid,
}

/// Where the monotonic resource version comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VersionSource {
    /// OpenLDAP's `entryCSN`: microsecond timestamp plus a change counter. Exact.
    EntryCsn,
    /// Active Directory's `uSNChanged`: an update sequence number. Exact.
    UsnChanged,
    /// `modifyTimestamp`: one-second resolution, so two changes within a second share a
    /// version and `If-Match` cannot tell them apart. A last resort.
    ModifyTimestamp,
}

/// Directory-wide settings; every field overrides the preset's choice.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirectoryConfig {
    /// The attribute that holds the SCIM `id`.
    #[serde(default)]
    pub id: Option<IdSource>,
    /// The attribute the resource version is derived from.
    #[serde(default)]
    pub version: Option<VersionSource>,
    /// An attribute holding an entry's own DN, searchable by equality (`entryDN` on
    /// OpenLDAP, `distinguishedName` on AD). Used to resolve member DNs in one search.
    #[serde(default)]
    pub dn_attribute: Option<String>,
    /// The creation timestamp attribute (`createTimestamp`, AD: `whenCreated`).
    #[serde(default)]
    pub created_attribute: Option<String>,
    /// The modification timestamp attribute (`modifyTimestamp`, AD: `whenChanged`).
    #[serde(default)]
    pub modified_attribute: Option<String>,
    /// Whether to make every write conditional with the assertion control (RFC 4528) on the
    /// version attribute, which makes `If-Match` and concurrent writes exact. Default: on
    /// when the directory advertises the control.
    #[serde(default)]
    pub assertion_control: Option<bool>,
    /// Run writes that take several LDAP operations (a rename with other changes, a delete
    /// with the removal of its memberships) in one LDAP transaction (RFC 5805) when the
    /// directory offers them. Off by default: OpenLDAP 2.5's transactions do not work
    /// reliably together with the memberof and refint overlays (commits failing with result
    /// code 80, and a crash of slapd, were observed). Without transactions, lossless mode
    /// makes such writes crash-safe with intent records in the JSON copy, and mapped mode
    /// undoes the first operation when the second fails.
    #[serde(default)]
    pub transactions: Option<bool>,
}

/// How `active` is stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum ActiveConfig {
    /// The account is inactive while `attribute` holds a value (OpenLDAP ppolicy:
    /// `pwdAccountLockedTime`, written as `value`, e.g. `000001010000Z` = locked until
    /// an administrator unlocks it).
    LockAttribute {
        /// The lock attribute.
        attribute: String,
        /// The value written to lock.
        value: String,
    },
    /// A boolean-like attribute whose value `inactive_value` means inactive and whose
    /// absence or any other value means active (389 DS: `nsAccountLock: TRUE`).
    Flag {
        /// The attribute.
        attribute: String,
        /// The value that marks the account inactive.
        inactive_value: String,
    },
    /// A bit in an integer attribute marks the account disabled (AD: bit 2 of
    /// `userAccountControl`); other bits are preserved.
    Bitmask {
        /// The integer attribute.
        attribute: String,
        /// The disable bit.
        bit: u32,
        /// The value written on create before the bit is applied (AD: 512, a normal account).
        initial: u32,
    },
}

/// How `password` is written. It is never read back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum PasswordConfig {
    /// Write the clear text into `attribute` in the same operation as the rest of the entry;
    /// the directory hashes it (OpenLDAP: `ppolicy_hash_cleartext`).
    Attribute {
        /// The password attribute (`userPassword`).
        attribute: String,
    },
    /// Set it with the Password Modify extended operation (RFC 3062) after the entry is
    /// written, so the directory hashes it with its configured scheme. If the extended
    /// operation fails, the create or update is compensated.
    PasswordModify,
    /// Active Directory: `unicodePwd` as the UTF-16LE encoding of the quoted password.
    /// Requires an encrypted connection.
    UnicodePwd,
    /// Passwords are not stored; `changePassword` is reported unsupported.
    None,
}

/// One SCIM attribute ↔ LDAP attribute mapping.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttributeMapping {
    /// The SCIM side: `userName`, `name.givenName`, `emails.value` (every email),
    /// `emails[type eq "work"].value` (the emails of one type), or an extension attribute
    /// with its URN (`urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department`).
    pub scim: String,
    /// The LDAP attribute.
    pub ldap: String,
    /// For multi-valued SCIM attributes: store every matching value (the LDAP attribute must be
    /// multi-valued). Otherwise only the primary (or first) value is stored.
    #[serde(default)]
    pub multi: bool,
    /// A value written when the SCIM attribute is absent but the object class requires the
    /// LDAP attribute (`sn` of `inetOrgPerson`). `{userName}`-style placeholders name other
    /// SCIM attributes. On read, a value equal to the rendered fallback counts as absent.
    #[serde(default)]
    pub fallback: Option<String>,
    /// The value holds a DN of another mapped entry and the SCIM side its id (the enterprise
    /// `manager.value` ↔ `manager`).
    #[serde(default)]
    pub reference: bool,
    /// The LDAP attribute only holds ASCII (IA5String syntax, such as `mail`). In lossless
    /// mode other values are kept in the JSON copy only; otherwise the directory rejects them.
    #[serde(default)]
    pub ascii_only: bool,
    /// Which filter assertions the LDAP attribute's matching rules support, so that filters
    /// are never narrowed by a rule the attribute lacks (`labeledURI` has no substring rule,
    /// `facsimileTelephoneNumber` no equality rule). Comparisons the attribute cannot do are
    /// answered by a presence test and re-checked in memory.
    #[serde(default)]
    pub matching: Matching,
}

/// The matching rules an LDAP attribute has (see [`AttributeMapping::matching`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Matching {
    /// Equality and substrings.
    #[default]
    Full,
    /// Equality only.
    Equality,
    /// Neither: only presence.
    Presence,
}

/// What a SCIM DELETE does to the entry.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum DeleteConfig {
    /// Delete the entry.
    #[default]
    Delete,
    /// Move the entry under `container` (outside the base DN, so SCIM no longer sees it) and,
    /// for users, mark it inactive; group memberships are removed.
    Move {
        /// The DN of the container entries are moved to.
        container: String,
    },
}

/// Overrides of one resource type's mapping. Every field left out keeps the preset's value.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObjectConfig {
    /// Where entries live. `{source}` is replaced by the (DN-escaped) source name, which gives
    /// every source its own subtree: e.g. `ou=people,ou={source},dc=example,dc=org`. Without
    /// `{source}` every source shares one subtree, which suits one source per directory.
    #[serde(default)]
    pub base_dn: Option<String>,
    /// Search scope under `base_dn`. New entries are always created directly under it.
    #[serde(default)]
    pub scope: Option<SearchScope>,
    /// Object classes written on create. The last one selects entries on reads.
    #[serde(default)]
    pub object_classes: Option<Vec<String>>,
    /// The naming attribute: the new entry's DN is `<rdn_attribute>=<value>,<base_dn>`, where
    /// the value is what the mapping writes to that attribute. Changing it renames (modrdn).
    #[serde(default)]
    pub rdn_attribute: Option<String>,
    /// The attribute mappings, replacing the preset's list.
    #[serde(default)]
    pub attributes: Option<Vec<AttributeMapping>>,
    /// Mappings added to the preset's list (replacing preset mappings of the same SCIM path).
    #[serde(default)]
    pub extra_attributes: Vec<AttributeMapping>,
    /// SCIM paths whose preset mappings are dropped.
    #[serde(default)]
    pub unmapped: Vec<String>,
    /// Users only: how `active` is stored (`kind = "none"`-like absence: leave the preset).
    #[serde(default)]
    pub active: Option<ActiveConfig>,
    /// Users only: how `password` is written.
    #[serde(default)]
    pub password: Option<PasswordConfig>,
    /// Groups only: the attribute holding member DNs (`member`).
    #[serde(default)]
    pub member_attribute: Option<String>,
    /// Groups only: a DN written when a group has no members, for object classes that
    /// require at least one (`groupOfNames`). Never reported as a member. `""` (the empty DN)
    /// by default for `groupOfNames`; leave unset for group classes that allow no members.
    #[serde(default)]
    pub empty_member: Option<String>,
    /// Users only: the attribute listing the DNs of a user's groups (`memberOf`). When absent
    /// from the directory, `groups` is computed with a search of the groups' members instead.
    #[serde(default)]
    pub member_of_attribute: Option<String>,
    /// What DELETE does.
    #[serde(default)]
    pub delete: Option<DeleteConfig>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_debug_never_shows_the_password() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?}"), "Secret(<redacted>)");
        assert_eq!(s.expose(), "hunter2");
    }

    #[test]
    fn password_file_is_read_without_trailing_newline() {
        let dir = std::env::temp_dir().join(format!("scimd-ldap-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("pw");
        std::fs::write(&path, "s3cret\n").unwrap();
        let mut c = LdapConfig::new("ldap://127.0.0.1:1", "dc=x");
        c.bind_password_file = Some(path);
        assert_eq!(c.bind_password().unwrap().unwrap().expose(), "s3cret");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn missing_password_env_is_a_config_error() {
        let mut c = LdapConfig::new("ldap://127.0.0.1:1", "dc=x");
        c.bind_password_env = Some("SCIMD_LDAP_TEST_SURELY_UNSET_VARIABLE".into());
        assert!(c.bind_password().is_err());
    }

    #[test]
    fn unknown_fields_are_rejected() {
        let bad = serde_json::json!({"url": "ldap://h", "base_dn": "dc=x", "bind_pasword": "x"});
        assert!(serde_json::from_value::<LdapConfig>(bad).is_err());
        let good = serde_json::json!({
            "url": "ldap://h", "base_dn": "dc=x", "preset": "active_directory",
            "users": {"extra_attributes": [{"scim": "nickName", "ldap": "displayNamePrintable"}],
                      "active": {"kind": "bitmask", "attribute": "userAccountControl", "bit": 2, "initial": 512}}
        });
        let c: LdapConfig = serde_json::from_value(good).unwrap();
        assert_eq!(c.preset, Preset::ActiveDirectory);
        assert_eq!(c.pool_size, 4);
    }

    #[test]
    fn config_debug_does_not_contain_the_password_value() {
        let mut c = LdapConfig::new("ldap://127.0.0.1:1", "dc=x");
        c.bind_password_env = Some("PW_VAR".into());
        let dbg = format!("{c:?}");
        assert!(dbg.contains("PW_VAR"));
    }
}
