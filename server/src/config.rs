//! The configuration: built-in defaults → `scimd.toml` → `SCIMD_*` environment variables.
//!
//! Every struct denies unknown keys, so a typo is an error that names the key. Defaults live in
//! `#[serde(default)]` rather than in a figment defaults layer: a defaults layer would merge the
//! default backend's fields into whatever backend the file chooses and break extraction.
//! Environment variables use `__` for nesting (`SCIMD_SERVER__LISTEN`); a `SCIMD_*` variable that
//! names no key is reported as a warning and ignored rather than failing the start.

use anyhow::{Context, bail};
use figment::Figment;
use figment::providers::{Format, Serialized, Toml};
use rand::TryRngCore;
use rand::rngs::OsRng;
use scimd_backend_memory::MemoryBackend;
use scimd_backend_sql::{PostgresConfig, SqlBackend, SqliteConfig};
use scimd_core::Backend;
use scimd_core::compat::Rules;
use scimd_core::paging::{CursorKey, PagingConfig};
use scimd_core::schema::{ResourceKind, Schema, SchemaRegistry};
use scimd_core::state::StateStore;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// The environment variable that names the configuration file.
pub const CONFIG_ENV: &str = "SCIMD_CONFIG";
/// The prefix of configuration environment variables.
pub const ENV_PREFIX: &str = "SCIMD_";
/// The file read from the working directory when neither `--config` nor `SCIMD_CONFIG` is set.
pub const DEFAULT_CONFIG_FILE: &str = "scimd.toml";

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// The HTTP listener, limits and the public URL.
    pub server: ServerConfig,
    /// Logging.
    pub log: LogConfig,
    /// Where state shared by all replicas (bearer tokens) is kept.
    pub state: StateConfig,
    /// The backend of every source that does not name its own.
    pub backend: BackendConfig,
    /// List paging limits.
    pub paging: PagingSection,
    /// Bulk limits (advertised in `/ServiceProviderConfig` and enforced).
    pub bulk: BulkConfig,
    /// The sources (tenants). Each is served at `/scim/{slug}/v2` with its own tokens.
    pub sources: Vec<SourceConfig>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            server: ServerConfig::default(),
            log: LogConfig::default(),
            state: StateConfig::default(),
            backend: BackendConfig::default(),
            paging: PagingSection::default(),
            bulk: BulkConfig::default(),
            sources: vec![SourceConfig::named("default")],
        }
    }
}

/// `[server]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// The address to listen on (`host:port`; port 0 picks a free port).
    pub listen: String,
    /// The externally visible base URL (e.g. `https://scim.example.com`), used for `Location`,
    /// `meta.location` and `$ref`. When unset, it is derived from each request's `Host`.
    pub public_url: Option<String>,
    /// Whether to trust `X-Forwarded-Proto` and `X-Forwarded-Host` when deriving URLs (only
    /// behind a proxy that sets them).
    pub trust_forwarded_headers: bool,
    /// The largest request body accepted, in bytes (Bulk has its own `bulk.max_payload_size`).
    pub max_body_bytes: u64,
    /// Seconds a request may take before it is answered with 503.
    pub request_timeout_secs: u64,
    /// Seconds in-flight requests get to finish after SIGTERM/SIGINT.
    pub shutdown_timeout_secs: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: "127.0.0.1:8080".into(),
            public_url: None,
            trust_forwarded_headers: false,
            max_body_bytes: 1024 * 1024,
            request_timeout_secs: 30,
            shutdown_timeout_secs: 30,
        }
    }
}

/// `[log]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// A tracing filter (`info`, `scimd_server=debug,info`); `RUST_LOG` overrides it.
    pub level: String,
    /// `text` (human-readable) or `json` (one object per line).
    pub format: LogFormat,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: "info".into(),
            format: LogFormat::Text,
        }
    }
}

/// The log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// `[state]`: where bearer tokens are kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
// Built once at start; boxing the SQL variants would only complicate the serde shape.
#[allow(clippy::large_enum_variant)]
pub enum StateConfig {
    /// The database of the top-level `backend` when it is SQLite or PostgreSQL (the default);
    /// process memory when it is `memory`.
    Backend(MemoryConfig),
    /// Process memory: tokens are lost on restart and not shared between replicas.
    Memory(MemoryConfig),
    /// A SQLite file.
    Sqlite(SqliteConfig),
    /// A PostgreSQL database (share it between replicas).
    Postgres(PostgresConfig),
}

impl Default for StateConfig {
    fn default() -> Self {
        StateConfig::Backend(MemoryConfig {})
    }
}

impl StateConfig {
    /// The SQL database this resolves to, given the top-level backend; `None` means memory.
    pub fn resolve<'a>(&'a self, backend: &'a BackendConfig) -> Option<SqlTarget<'a>> {
        match (self, backend) {
            (StateConfig::Backend(_), BackendConfig::Sqlite(c)) | (StateConfig::Sqlite(c), _) => {
                Some(SqlTarget::Sqlite(c))
            }
            (StateConfig::Backend(_), BackendConfig::Postgres(c))
            | (StateConfig::Postgres(c), _) => Some(SqlTarget::Postgres(c)),
            (StateConfig::Backend(_), BackendConfig::Memory(_) | BackendConfig::Ldap(_))
            | (StateConfig::Memory(_), _) => None,
        }
    }
}

/// A SQL database named by the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SqlTarget<'a> {
    /// SQLite.
    Sqlite(&'a SqliteConfig),
    /// PostgreSQL.
    Postgres(&'a PostgresConfig),
}

impl SqlTarget<'_> {
    /// Connects (and migrates, unless the configuration says not to).
    pub async fn open(&self) -> anyhow::Result<SqlBackend> {
        match self {
            SqlTarget::Sqlite(c) => c.build().await.map_err(|e| anyhow::anyhow!("{e}")),
            SqlTarget::Postgres(c) => c.build().await.map_err(|e| anyhow::anyhow!("{e}")),
        }
    }

    /// Connects and applies pending migrations, whatever `migrate_on_start` says.
    pub async fn migrate(&self) -> anyhow::Result<SqlBackend> {
        let b = match self {
            SqlTarget::Sqlite(c) => SqlBackend::connect_sqlite(c).await,
            SqlTarget::Postgres(c) => SqlBackend::connect_postgres(c).await,
        }
        .map_err(|e| anyhow::anyhow!("{e}"))?;
        b.migrate().await.map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(b)
    }

    /// Whether `other` names the same database, one that separate connection pools share: the
    /// same SQLite file (an in-memory database is private to its pool) or the same PostgreSQL
    /// URL.
    pub fn same_database(&self, other: &SqlTarget<'_>) -> bool {
        match (self, other) {
            (SqlTarget::Sqlite(a), SqlTarget::Sqlite(b)) => !a.is_in_memory() && a.path == b.path,
            (SqlTarget::Postgres(a), SqlTarget::Postgres(b)) => a.url == b.url,
            _ => false,
        }
    }

    /// A description for messages (passwords redacted).
    pub fn describe(&self) -> String {
        match self {
            SqlTarget::Sqlite(c) => format!("SQLite {}", c.path.display()),
            SqlTarget::Postgres(c) => {
                format!("PostgreSQL {}", scimd_backend_sql::redact_url(&c.url))
            }
        }
    }
}

/// Opens the state store alone (for `scimd token`): the database named by `[state]`.
pub async fn open_state(config: &Config) -> anyhow::Result<Option<Arc<dyn StateStore>>> {
    match config.state.resolve(&config.backend) {
        Some(target) => {
            let b = target.open().await.with_context(|| {
                format!("while opening the state store ({})", target.describe())
            })?;
            Ok(Some(Arc::new(b)))
        }
        None => Ok(None),
    }
}

/// A backend: `backend = { type = "sqlite", path = "..." }`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
// Built once at start; boxing the SQL variants would only complicate the serde shape.
#[allow(clippy::large_enum_variant)]
pub enum BackendConfig {
    /// The in-memory backend: fast, nothing survives a restart.
    Memory(MemoryConfig),
    /// An embedded SQLite file (the default: `./scimd-data/scimd.db`).
    Sqlite(SqliteConfig),
    /// PostgreSQL, shared by any number of replicas.
    Postgres(PostgresConfig),
    /// An LDAP directory, written through (`scimd-backend-ldap`).
    Ldap(scimd_backend_ldap::LdapConfig),
}

impl Default for BackendConfig {
    fn default() -> Self {
        BackendConfig::Sqlite(SqliteConfig::default())
    }
}

/// `{ type = "memory" }`: no options.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct MemoryConfig {}

/// A built backend; SQL backends also serve as a state store.
#[derive(Debug, Clone)]
pub struct BuiltBackend {
    /// The backend.
    pub backend: Arc<dyn Backend>,
    /// The same database as a state store, for SQL backends.
    pub state: Option<Arc<dyn StateStore>>,
    /// The SQL backend itself, told whether its outbox is the live state store's.
    pub sql: Option<SqlBackend>,
}

impl BackendConfig {
    /// The SQL database of this backend, if it is one.
    pub fn sql(&self) -> Option<SqlTarget<'_>> {
        match self {
            BackendConfig::Memory(_) | BackendConfig::Ldap(_) => None,
            BackendConfig::Sqlite(c) => Some(SqlTarget::Sqlite(c)),
            BackendConfig::Postgres(c) => Some(SqlTarget::Postgres(c)),
        }
    }

    /// The schemas a source served by this backend hosts: `registry`, narrowed to what the
    /// backend can store. Only an LDAP directory narrows it: to what its mapping maps, or in
    /// lossless mode to everything but a password it has no way to write. Every other backend
    /// stores every attribute.
    pub fn hosted_schemas(
        &self,
        registry: Arc<SchemaRegistry>,
    ) -> anyhow::Result<Arc<SchemaRegistry>> {
        match self {
            BackendConfig::Ldap(c) => Ok(c.hosted_schemas(&registry)?),
            BackendConfig::Memory(_) | BackendConfig::Sqlite(_) | BackendConfig::Postgres(_) => {
                Ok(registry)
            }
        }
    }

    /// Builds the backend for the sources that use it, each with its schema registry.
    pub async fn build(
        &self,
        sources: &[(String, Arc<SchemaRegistry>)],
    ) -> anyhow::Result<BuiltBackend> {
        if let BackendConfig::Ldap(c) = self {
            let mut b = scimd_backend_ldap::LdapBackend::new(c, Arc::new(SchemaRegistry::new()))
                .context("while configuring the LDAP backend")?;
            for (slug, reg) in sources {
                b = b.with_source_schemas(slug.clone(), reg.clone());
            }
            return Ok(BuiltBackend {
                backend: Arc::new(b),
                state: None,
                sql: None,
            });
        }
        match self.sql() {
            None => {
                let mut b = MemoryBackend::new(Arc::new(SchemaRegistry::new()));
                for (slug, reg) in sources {
                    b = b.with_source_schemas(slug.clone(), reg.clone());
                }
                Ok(BuiltBackend {
                    backend: Arc::new(b),
                    state: None,
                    sql: None,
                })
            }
            Some(target) => {
                let b = target
                    .open()
                    .await
                    .with_context(|| format!("while opening {}", target.describe()))?;
                for (slug, reg) in sources {
                    b.set_schemas(slug, reg.clone());
                }
                // Search copies written under other schemas (an extension added since, say)
                // are rebuilt before the sources serve filters.
                b.reindex_stale()
                    .await
                    .map_err(|e| anyhow::anyhow!("{e}"))
                    .with_context(|| format!("while opening {}", target.describe()))?;
                let sql = b.clone();
                let b = Arc::new(b);
                Ok(BuiltBackend {
                    backend: b.clone(),
                    state: Some(b),
                    sql: Some(sql),
                })
            }
        }
    }
}

/// `[paging]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PagingSection {
    /// The page size when a request gives no `count` (`defaultPageSize`).
    pub default_count: u64,
    /// The largest page size (`maxPageSize`, `filter.maxResults`); larger `count`s are reduced
    /// to it (index paging) or refused (cursor paging).
    pub max_count: u64,
    /// Seconds an RFC 9865 cursor stays valid (`cursorTimeout`).
    pub cursor_timeout_secs: u64,
    /// The secret that authenticates cursors (at least 32 characters). Replicas serving the
    /// same sources must share it; when unset, each process picks a random one, so a cursor
    /// only works on the replica that issued it.
    pub cursor_secret: Option<String>,
}

impl Default for PagingSection {
    fn default() -> Self {
        let p = PagingConfig::default();
        PagingSection {
            default_count: p.default_page_size,
            max_count: p.max_page_size,
            cursor_timeout_secs: p.cursor_timeout.as_secs(),
            cursor_secret: None,
        }
    }
}

impl PagingSection {
    /// The core paging configuration, with the configured or a random cursor key.
    pub fn build(&self) -> anyhow::Result<PagingConfig> {
        let key = match &self.cursor_secret {
            Some(s) if s.len() >= 32 => CursorKey::new(s.as_bytes().to_vec()),
            Some(_) => bail!("paging.cursor_secret must be at least 32 characters"),
            None => {
                let mut bytes = [0u8; 32];
                OsRng
                    .try_fill_bytes(&mut bytes)
                    .map_err(|e| anyhow::anyhow!("no randomness for the cursor key: {e}"))?;
                CursorKey::new(bytes.to_vec())
            }
        };
        Ok(PagingConfig {
            default_page_size: self.default_count.min(self.max_count),
            max_page_size: self.max_count,
            cursor_timeout: Duration::from_secs(self.cursor_timeout_secs),
            cursor_key: key,
        })
    }
}

/// `[bulk]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BulkConfig {
    /// The most operations one Bulk request may carry (`maxOperations`); more → 413.
    pub max_operations: u64,
    /// The largest Bulk request body in bytes (`maxPayloadSize`); larger → 413.
    pub max_payload_size: u64,
}

impl Default for BulkConfig {
    fn default() -> Self {
        BulkConfig {
            max_operations: 1000,
            max_payload_size: 1024 * 1024,
        }
    }
}

/// `[[sources]]`: one tenant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// The URL segment: `/scim/{slug}/v2`. Letters, digits, `-` and `_`.
    pub slug: String,
    /// This source's backend; the top-level `backend` when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<BackendConfig>,
    /// What a successful PATCH answers: `resource` (200 with the resource) or `no_content`
    /// (204, for clients that expect it).
    #[serde(default)]
    pub patch_response: PatchResponse,
    /// Identity-provider compatibility rules: presets (`default`, `okta`, `entra`, `strict`,
    /// `all`) and rule names, read in order from `default`; `-name` removes a rule
    /// (docs/configuration.md lists them). Empty means `default`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub compat: Vec<String>,
    /// Custom schema extensions of this source's resource types.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extensions: Vec<ExtensionConfig>,
    /// Hooks run around every write, in this order: `attribute_map`, `audit_log`, `events`,
    /// `plugin` (see docs/plugins.md).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hooks: Vec<scimd_plugin_host::HookConfig>,
}

impl SourceConfig {
    /// A source with defaults.
    pub fn named(slug: &str) -> Self {
        SourceConfig {
            slug: slug.into(),
            backend: None,
            patch_response: PatchResponse::default(),
            compat: Vec::new(),
            extensions: Vec::new(),
            hooks: Vec::new(),
        }
    }

    /// The compatibility rules `compat` names.
    pub fn rules(&self) -> anyhow::Result<Rules> {
        Rules::from_names(self.compat.iter().map(String::as_str))
            .map_err(|e| anyhow::anyhow!("source {}: compat: {e}", self.slug))
    }

    /// The schema registry: the built-in schemas plus this source's extensions.
    pub fn registry(&self, config_dir: &Path) -> anyhow::Result<SchemaRegistry> {
        let mut reg = SchemaRegistry::new();
        for ext in &self.extensions {
            let json = match (&ext.file, &ext.definition) {
                (Some(file), None) => {
                    let path = config_dir.join(file);
                    let text = std::fs::read_to_string(&path).with_context(|| {
                        format!("while reading extension schema {}", path.display())
                    })?;
                    serde_json::from_str::<Value>(&text).with_context(|| {
                        format!("extension schema {} is not valid JSON", path.display())
                    })?
                }
                (None, Some(def)) => def.clone(),
                _ => bail!(
                    "source {}: an extension needs exactly one of `file` or `definition`",
                    self.slug
                ),
            };
            let kind = ResourceKind::parse(&ext.resource_type).with_context(|| {
                format!(
                    "source {}: unknown resource_type {:?} (User or Group)",
                    self.slug, ext.resource_type
                )
            })?;
            let schema = Schema::from_json(&json)
                .map_err(|e| anyhow::anyhow!("source {}: {}", self.slug, e.detail))?;
            reg.add_extension(kind, schema, ext.required)
                .map_err(|e| anyhow::anyhow!("source {}: {}", self.slug, e.detail))?;
        }
        Ok(reg)
    }
}

/// What a successful PATCH answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum PatchResponse {
    /// 200 with the updated resource (RFC 7644 §3.5.2 allows either).
    #[default]
    Resource,
    /// 204 without a body.
    NoContent,
}

/// A custom schema extension (RFC 7643 §7 JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExtensionConfig {
    /// The resource type it extends: `User` or `Group`.
    pub resource_type: String,
    /// A JSON file with the schema (relative to the configuration file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<PathBuf>,
    /// The schema inline, as a table in the RFC 7643 §7 shape.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub definition: Option<Value>,
    /// Whether every resource of the type must carry the extension.
    #[serde(default)]
    pub required: bool,
}

/// A loaded configuration and what loading it noticed.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The configuration.
    pub config: Config,
    /// The file read, if any.
    pub file: Option<PathBuf>,
    /// Warnings (unknown `SCIMD_*` variables).
    pub warnings: Vec<String>,
}

impl Loaded {
    /// The directory relative paths in the file are resolved against.
    pub fn config_dir(&self) -> PathBuf {
        self.file
            .as_ref()
            .and_then(|f| f.parent())
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."))
    }
}

/// Loads the configuration: `explicit` (from `--config`), else `SCIMD_CONFIG`, else
/// `./scimd.toml` when it exists, else nothing; then `SCIMD_*` variables from `env`.
pub fn load(explicit: Option<&Path>, env: &[(String, String)]) -> anyhow::Result<Loaded> {
    let env_file = env
        .iter()
        .find(|(k, _)| k == CONFIG_ENV)
        .map(|(_, v)| PathBuf::from(v));
    let file = match explicit.map(Path::to_path_buf).or(env_file) {
        Some(p) => {
            if !p.is_file() {
                bail!("configuration file {} does not exist", p.display());
            }
            Some(p)
        }
        None => Some(PathBuf::from(DEFAULT_CONFIG_FILE)).filter(|p| p.is_file()),
    };
    let mut figment = Figment::new();
    if let Some(f) = &file {
        figment = figment.merge(Toml::file_exact(f));
    }
    // `SCIMD_*` variables, minus those that name no key: they are warned about and dropped,
    // one round per unknown key the extraction reports.
    let mut vars: Vec<(String, String, figment::value::Value)> = Vec::new();
    let mut warnings = Vec::new();
    for (name, value) in env {
        let Some(rest) = name.strip_prefix(ENV_PREFIX) else {
            continue;
        };
        if name == CONFIG_ENV || rest.is_empty() {
            continue;
        }
        let key = rest.to_ascii_lowercase().replace("__", ".");
        if key.split('.').any(str::is_empty) {
            warnings.push(format!(
                "ignoring environment variable {name}: malformed name"
            ));
            continue;
        }
        let parsed: figment::value::Value = value.parse().unwrap_or_else(|e| match e {});
        vars.push((name.clone(), key, parsed));
    }
    let config: Config = loop {
        let merged = vars.iter().fold(figment.clone(), |f, (_, k, v)| {
            f.merge(Serialized::global(k, v.clone()))
        });
        let err = match merged.extract::<Config>() {
            Ok(c) => break c,
            Err(e) => e,
        };
        let unknown = unknown_keys(&err);
        let before = vars.len();
        vars.retain(|(name, key, _)| {
            let hit = unknown
                .iter()
                .any(|u| key == u || key.starts_with(&format!("{u}.")));
            if hit {
                warnings.push(format!(
                    "ignoring environment variable {name}: `{key}` is not a configuration key"
                ));
            }
            !hit
        });
        if vars.len() == before {
            bail!("invalid configuration: {err}");
        }
    };
    config.validate()?;
    Ok(Loaded {
        config,
        file,
        warnings,
    })
}

/// The dotted keys an extraction error reports as unknown.
fn unknown_keys(e: &figment::Error) -> Vec<String> {
    e.clone()
        .into_iter()
        .filter_map(|e| match &e.kind {
            // figment's path already ends with the unknown field.
            figment::error::Kind::UnknownField(field, _) => {
                let mut path = e.path.clone();
                if path.last() != Some(field) {
                    path.push(field.clone());
                }
                Some(path.join("."))
            }
            _ => None,
        })
        .collect()
}

impl Config {
    /// Checks what serde cannot: slugs, limits, duplicate sources.
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.sources.is_empty() {
            bail!("at least one source must be configured");
        }
        let mut seen = BTreeSet::new();
        for s in &self.sources {
            let valid = !s.slug.is_empty()
                && s.slug.len() <= 64
                && s.slug
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
            if !valid {
                bail!(
                    "source slug {:?} is invalid: use 1-64 letters, digits, '-' or '_'",
                    s.slug
                );
            }
            if !seen.insert(s.slug.to_ascii_lowercase()) {
                bail!("source {:?} is configured twice", s.slug);
            }
            s.rules()?;
        }
        if self.paging.max_count == 0 || self.paging.default_count == 0 {
            bail!("paging.default_count and paging.max_count must be at least 1");
        }
        if self.paging.cursor_timeout_secs == 0 {
            bail!("paging.cursor_timeout_secs must be at least 1");
        }
        if self.bulk.max_operations == 0 || self.bulk.max_payload_size == 0 {
            bail!("bulk.max_operations and bulk.max_payload_size must be at least 1");
        }
        if self.server.max_body_bytes == 0 || self.server.request_timeout_secs == 0 {
            bail!("server.max_body_bytes and server.request_timeout_secs must be at least 1");
        }
        if let Some(u) = &self.server.public_url
            && !(u.starts_with("http://") || u.starts_with("https://"))
        {
            bail!("server.public_url must start with http:// or https://");
        }
        Ok(())
    }

    /// The effective configuration as TOML-like JSON with secrets (passwords in URLs, keys
    /// named like secrets) redacted, for `scimd config check`.
    pub fn redacted(&self) -> Value {
        let mut v = serde_json::to_value(self).unwrap_or(Value::Null);
        redact(&mut v);
        v
    }
}

fn redact(v: &mut Value) {
    match v {
        Value::Object(m) => {
            for (k, val) in m.iter_mut() {
                let key = k.to_ascii_lowercase();
                if let Value::String(s) = val {
                    if ["password", "secret", "token", "key", "authorization"]
                        .iter()
                        .any(|w| key.contains(w))
                    {
                        *s = "<redacted>".into();
                    } else if key.contains("url") {
                        *s = redact_url(s);
                    }
                } else {
                    redact(val);
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(redact),
        _ => {}
    }
}

/// `postgres://user:pw@host/db` → `postgres://user:<redacted>@host/db`.
fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or_default();
            if userinfo.contains(':') {
                format!("{scheme}://{user}:<redacted>@{host}{path}")
            } else {
                url.to_string()
            }
        }
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_file(contents: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("scimd-config-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("scimd.toml");
        std::fs::write(&p, contents).unwrap();
        p
    }

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn no_file_and_no_env_gives_the_zero_config_defaults() {
        let l = load(None, &[]).unwrap();
        // A stray ./scimd.toml in the test's working directory would change this.
        if l.file.is_none() {
            assert_eq!(l.config, Config::default());
            assert_eq!(l.config.sources[0].slug, "default");
            assert_eq!(l.config.server.listen, "127.0.0.1:8080");
        }
    }

    #[test]
    fn the_file_overrides_defaults_and_env_overrides_the_file() {
        let f = temp_file(
            "[server]\nlisten = \"0.0.0.0:9000\"\nmax_body_bytes = 2048\n\n[[sources]]\nslug = \"okta\"\npatch_response = \"no_content\"\n",
        );
        let l = load(
            Some(&f),
            &env(&[("SCIMD_SERVER__LISTEN", "127.0.0.1:9999"), ("HOME", "/x")]),
        )
        .unwrap();
        assert_eq!(l.config.server.listen, "127.0.0.1:9999");
        assert_eq!(l.config.server.max_body_bytes, 2048);
        assert_eq!(l.config.sources.len(), 1);
        assert_eq!(l.config.sources[0].patch_response, PatchResponse::NoContent);
        assert!(l.warnings.is_empty(), "{:?}", l.warnings);
    }

    #[test]
    fn scimd_config_names_the_file() {
        let f = temp_file("[paging]\nmax_count = 50\n");
        let l = load(None, &env(&[(CONFIG_ENV, f.to_str().unwrap())])).unwrap();
        assert_eq!(l.config.paging.max_count, 50);
        assert!(load(None, &env(&[(CONFIG_ENV, "/nonexistent/scimd.toml")])).is_err());
    }

    #[test]
    fn unknown_keys_in_the_file_are_errors_naming_the_key() {
        let f = temp_file("[server]\nlisten = \"127.0.0.1:1\"\nlistne = \"oops\"\n");
        let e = load(Some(&f), &[]).unwrap_err().to_string();
        assert!(e.contains("listne"), "{e}");
        let f =
            temp_file("[[sources]]\nslug = \"a\"\nbackend = { type = \"memory\", path = \"x\" }\n");
        let e = load(Some(&f), &[]).unwrap_err().to_string();
        assert!(e.contains("path"), "{e}");
        let f = temp_file("[backend]\ntype = \"floppy\"\n");
        let e = load(Some(&f), &[]).unwrap_err().to_string();
        assert!(e.contains("floppy"), "{e}");
    }

    #[test]
    fn unknown_scimd_variables_are_warned_about_and_ignored() {
        let l = load(
            None,
            &env(&[
                ("SCIMD_SERVER__LISTN", "x"),
                ("SCIMD_NOPE", "1"),
                ("SCIMD_LOG__FORMAT", "json"),
            ]),
        )
        .unwrap();
        assert_eq!(l.warnings.len(), 2, "{:?}", l.warnings);
        assert!(l.warnings.iter().any(|w| w.contains("SCIMD_SERVER__LISTN")));
        assert!(l.warnings.iter().any(|w| w.contains("SCIMD_NOPE")));
        assert_eq!(l.config.log.format, LogFormat::Json);
    }

    #[test]
    fn bad_values_are_errors() {
        assert!(load(None, &env(&[("SCIMD_SERVER__MAX_BODY_BYTES", "lots")])).is_err());
        let f = temp_file("[[sources]]\nslug = \"has space\"\n");
        assert!(load(Some(&f), &[]).is_err());
        let f = temp_file("[[sources]]\nslug = \"a\"\n[[sources]]\nslug = \"A\"\n");
        assert!(load(Some(&f), &[]).is_err());
    }

    #[test]
    fn redaction_hides_secrets_and_url_passwords() {
        let mut c = Config::default();
        c.paging.cursor_secret = Some("s".repeat(40));
        let v = c.redacted();
        assert_eq!(v["paging"]["cursor_secret"], "<redacted>");
        assert_eq!(
            redact_url("postgres://scimd:hunter2@db:5432/scimd"),
            "postgres://scimd:<redacted>@db:5432/scimd"
        );
        assert_eq!(redact_url("sqlite://x.db"), "sqlite://x.db");
    }

    #[test]
    fn compat_lists_presets_and_rules_and_unknown_names_fail_the_load() {
        let f = temp_file(
            "[[sources]]\nslug = \"entra\"\ncompat = [\"entra\", \"-roles_json_strings\"]\n[[sources]]\nslug = \"plain\"\n",
        );
        let l = load(Some(&f), &[]).unwrap();
        let entra = l.config.sources[0].rules().unwrap();
        assert_eq!(
            entra,
            Rules::ENTRA.without(scimd_core::compat::Rule::RolesJsonStrings)
        );
        assert_eq!(l.config.sources[1].rules().unwrap(), Rules::DEFAULT);
        let f = temp_file("[[sources]]\nslug = \"a\"\ncompat = [\"entra\", \"lenient\"]\n");
        let e = load(Some(&f), &[]).unwrap_err().to_string();
        assert!(e.contains("\"lenient\"") && e.contains("source a"), "{e}");
    }

    #[test]
    fn inline_extensions_build_into_the_registry() {
        let f = temp_file(
            "[[sources]]\nslug = \"a\"\n[[sources.extensions]]\nresource_type = \"User\"\ndefinition = { id = \"urn:example:ext:1.0:User\", attributes = [{ name = \"badge\", type = \"string\" }] }\n",
        );
        let l = load(Some(&f), &[]).unwrap();
        let reg = l.config.sources[0].registry(&l.config_dir()).unwrap();
        assert!(reg.schema("urn:example:ext:1.0:User").is_some());
    }
}

#[cfg(test)]
mod shipped_files {
    use super::*;

    fn config_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../config")
    }

    #[test]
    fn the_documented_default_file_is_the_built_in_default() {
        let l = load(Some(&config_dir().join("scimd.toml")), &[]).unwrap();
        assert_eq!(l.config, Config::default());
    }

    #[test]
    fn every_example_configuration_is_valid() {
        let mut n = 0;
        for entry in std::fs::read_dir(config_dir().join("examples")).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "toml") {
                let l =
                    load(Some(&path), &[]).unwrap_or_else(|e| panic!("{}: {e:#}", path.display()));
                for s in &l.config.sources {
                    s.registry(&l.config_dir())
                        .unwrap_or_else(|e| panic!("{}: {e:#}", path.display()));
                }
                n += 1;
            }
        }
        assert!(n >= 3);
    }
}
