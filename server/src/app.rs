//! The running application: sources with their services, the state store and the limits, built
//! once from the configuration and shared by every request.

use crate::config::{BuiltBackend, Config, Loaded, PatchResponse, SqlTarget};
use crate::tokens::{self, Secret};
use anyhow::Context;
use scimd_core::service::Service;
use scimd_core::state::{MemoryStateStore, StateStore};
use scimd_core::{Backend, SchemaRegistry};
use scimd_plugin_host::{HookEnv, build_pipeline};
use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::sync::Arc;

/// The name of the token created on a source's first start.
pub const INITIAL_TOKEN_NAME: &str = "initial";

/// One source at run time.
#[derive(Debug)]
pub struct Source {
    /// The URL slug.
    pub slug: String,
    /// The SCIM operations over the source's backend.
    pub service: Service,
    /// What PATCH answers.
    pub patch_response: PatchResponse,
}

/// Everything a request needs.
pub struct App {
    /// The effective configuration.
    pub config: Config,
    /// Sources by slug.
    pub sources: BTreeMap<String, Arc<Source>>,
    /// The shared state store (tokens).
    pub state: Arc<dyn StateStore>,
    persistent_state: bool,
    backends: Vec<Arc<dyn Backend>>,
}

impl fmt::Debug for App {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("App")
            .field("sources", &self.sources.keys().collect::<Vec<_>>())
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl App {
    /// Builds the application from a loaded configuration: backends, then the state store
    /// (sharing the top-level backend's database when `[state]` names the same one).
    pub async fn build(loaded: &Loaded) -> anyhow::Result<Arc<App>> {
        App::assemble(loaded.config.clone(), &loaded.config_dir(), None).await
    }

    /// Builds the application over a given state store (tests share one between servers).
    pub async fn build_with_state(
        config: Config,
        config_dir: &Path,
        state: Arc<dyn StateStore>,
    ) -> anyhow::Result<Arc<App>> {
        App::assemble(config, config_dir, Some(state)).await
    }

    async fn assemble(
        config: Config,
        config_dir: &Path,
        state: Option<Arc<dyn StateStore>>,
    ) -> anyhow::Result<Arc<App>> {
        let paging = config.paging.build()?;
        // The database the state store opens from the configuration (none when one is given):
        // SQL backends in it store their writes' outbox messages in the write's transaction.
        let state_db = match &state {
            Some(_) => None,
            None => config.state.resolve(&config.backend),
        };
        let mut registries = Vec::new();
        for s in &config.sources {
            let reg = s
                .registry(config_dir)
                .with_context(|| format!("while loading the schemas of source {}", s.slug))?;
            // Narrowed to what the source's backend can store (an LDAP directory without
            // lossless mode stores only what its mapping maps): /Schemas lists that, and bodies,
            // PATCH paths and filters naming anything else are refused as unknown attributes.
            let reg = s
                .backend
                .as_ref()
                .unwrap_or(&config.backend)
                .hosted_schemas(Arc::new(reg))
                .with_context(|| format!("while configuring the backend of source {}", s.slug))?;
            registries.push((s.slug.clone(), reg));
        }
        // Sources without their own backend share one instance of the top-level backend.
        let shared_users: Vec<(String, Arc<SchemaRegistry>)> = config
            .sources
            .iter()
            .zip(&registries)
            .filter(|(s, _)| s.backend.is_none())
            .map(|(_, r)| r.clone())
            .collect();
        let mut backends: Vec<Arc<dyn Backend>> = Vec::new();
        // The top-level backend is opened even when every source has its own, when the state
        // store lives in its database.
        let top_needed = !shared_users.is_empty()
            || (state.is_none()
                && matches!(config.state, crate::config::StateConfig::Backend(_))
                && config.backend.sql().is_some());
        let top = if top_needed {
            let b = config
                .backend
                .build(&shared_users)
                .await
                .context("while opening the backend")?;
            backends.push(b.backend.clone());
            share_outbox(
                &b,
                shares_state_database(config.backend.sql(), state_db, true),
            );
            Some(b)
        } else {
            None
        };
        let (state, persistent_state) = match state {
            Some(s) => (s, false),
            None => match config.state.resolve(&config.backend) {
                None => (
                    Arc::new(MemoryStateStore::default()) as Arc<dyn StateStore>,
                    false,
                ),
                Some(target) => {
                    let same_as_top = config.backend.sql() == Some(target);
                    match (&top, same_as_top) {
                        (Some(BuiltBackend { state: Some(s), .. }), true) => (s.clone(), true),
                        _ => {
                            let b = target.open().await.with_context(|| {
                                format!("while opening the state store ({})", target.describe())
                            })?;
                            (Arc::new(b) as Arc<dyn StateStore>, true)
                        }
                    }
                }
            },
        };
        let mut sources = BTreeMap::new();
        for (s, (slug, reg)) in config.sources.iter().zip(registries) {
            let backend = match (&s.backend, &top) {
                (Some(own), _) => {
                    let b = own
                        .build(&[(slug.clone(), reg.clone())])
                        .await
                        .with_context(|| format!("while opening the backend of source {slug}"))?;
                    share_outbox(&b, shares_state_database(own.sql(), state_db, false));
                    backends.push(b.backend.clone());
                    b.backend
                }
                (None, Some(b)) => b.backend.clone(),
                (None, None) => {
                    anyhow::bail!("source {slug} has no backend")
                }
            };
            // Hooks are built last: they may need the state store (the events outbox).
            let hooks = build_pipeline(
                &s.hooks,
                &HookEnv {
                    source: &slug,
                    config_dir,
                    state: state.clone(),
                },
            )?;
            let service = Service::new(slug.clone(), backend, reg, paging.clone())
                .with_hooks(hooks)
                .with_rules(s.rules()?);
            sources.insert(
                slug.clone(),
                Arc::new(Source {
                    slug: slug.clone(),
                    service,
                    patch_response: s.patch_response,
                }),
            );
        }
        Ok(Arc::new(App {
            config,
            sources,
            state,
            persistent_state,
            backends,
        }))
    }

    /// Whether tokens outlive this process (a SQL state store).
    pub fn persistent_state(&self) -> bool {
        self.persistent_state
    }

    /// A source by slug (exact match: slugs are path segments).
    pub fn source(&self, slug: &str) -> Option<&Arc<Source>> {
        self.sources.get(slug)
    }

    /// Whether every backend answers (`/readyz`).
    pub async fn ready(&self) -> Result<(), String> {
        for b in &self.backends {
            b.health().await.map_err(|e| e.to_string())?;
        }
        self.state
            .list_tokens(Some("\u{0}readiness-probe"))
            .await
            .map_err(|e| format!("state store: {e}"))?;
        Ok(())
    }

    /// Creates a token named [`INITIAL_TOKEN_NAME`] for every source that has never had one,
    /// returning the secrets to show once. A source whose tokens were all revoked gets none:
    /// the operator did that on purpose.
    pub async fn ensure_initial_tokens(&self) -> anyhow::Result<Vec<(String, Secret)>> {
        let mut out = Vec::new();
        for slug in self.sources.keys() {
            let existing = self
                .state
                .list_tokens(Some(slug))
                .await
                .map_err(|e| anyhow::anyhow!("while listing tokens: {e}"))?;
            if existing.is_empty() {
                match tokens::create(&*self.state, slug, INITIAL_TOKEN_NAME, None).await {
                    Ok((_, secret)) => out.push((slug.clone(), secret)),
                    // Another replica starting at the same moment created it first; its output
                    // shows the secret.
                    Err(e) if e.status == 409 => {}
                    Err(e) => anyhow::bail!("while creating a token: {}", e.detail),
                }
            }
        }
        Ok(out)
    }
}

/// Whether a backend in the SQL database `db` shares the database of the state store (`state`,
/// `None` when the state store is memory or was given). The `top`-level backend is the state
/// store itself when their configurations are equal, which shares even an in-memory database;
/// any other backend must name the same SQLite file or PostgreSQL URL.
fn shares_state_database(
    db: Option<SqlTarget<'_>>,
    state: Option<SqlTarget<'_>>,
    top: bool,
) -> bool {
    match (db, state) {
        (Some(db), Some(state)) => (top && db == state) || db.same_database(&state),
        _ => false,
    }
}

/// Tells a SQL backend whether its database holds the live state store's outbox, so that its
/// writes store their events in their own transaction.
fn share_outbox(b: &BuiltBackend, shares: bool) {
    if let Some(sql) = &b.sql {
        sql.set_transactional_outbox(shares);
        if shares {
            tracing::debug!(
                dialect = sql.dialect_name(),
                "Events are stored in the transaction of their write."
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use scimd_backend_sql::{PostgresConfig, SqliteConfig};

    fn sqlite(path: &str) -> SqliteConfig {
        SqliteConfig {
            path: path.into(),
            ..SqliteConfig::default()
        }
    }

    #[test]
    fn events_commit_with_writes_only_in_the_state_stores_database() {
        let (a, b, mem) = (sqlite("data/a.db"), sqlite("data/b.db"), sqlite(":memory:"));
        let pg = |url: &str| PostgresConfig {
            url: url.into(),
            ..PostgresConfig::default()
        };
        let (p1, p2) = (pg("postgres://h/one"), pg("postgres://h/two"));
        let s = SqlTarget::Sqlite;
        assert!(shares_state_database(Some(s(&a)), Some(s(&a)), true));
        assert!(shares_state_database(Some(s(&a)), Some(s(&a)), false));
        assert!(!shares_state_database(Some(s(&a)), Some(s(&b)), true));
        // The top-level in-memory database is the state store itself; another in-memory
        // database is another database.
        assert!(shares_state_database(Some(s(&mem)), Some(s(&mem)), true));
        assert!(!shares_state_database(Some(s(&mem)), Some(s(&mem)), false));
        let p = SqlTarget::Postgres;
        assert!(shares_state_database(Some(p(&p1)), Some(p(&p1)), false));
        assert!(!shares_state_database(Some(p(&p1)), Some(p(&p2)), true));
        assert!(!shares_state_database(Some(p(&p1)), Some(s(&a)), true));
        // Memory and LDAP backends, or a memory state store.
        assert!(!shares_state_database(None, Some(s(&a)), true));
        assert!(!shares_state_database(Some(s(&a)), None, true));
    }
}
