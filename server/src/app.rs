//! The running application: sources with their services, the state store and the limits, built
//! once from the configuration and shared by every request.

use crate::config::{BuiltBackend, Config, Loaded, PatchResponse};
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
