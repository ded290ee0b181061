//! The running application: sources with their services, the state store and the limits, built
//! once from the configuration and shared by every request.

use crate::config::{BackendConfig, Config, Loaded, PatchResponse};
use crate::tokens::{self, Secret};
use anyhow::Context;
use scimd_core::service::Service;
use scimd_core::state::StateStore;
use scimd_core::{Backend, SchemaRegistry};
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
    /// Builds the application from a loaded configuration, opening the configured state store.
    pub async fn build(loaded: &Loaded) -> anyhow::Result<Arc<App>> {
        let state = loaded
            .config
            .state
            .build(&loaded.config.server.data_dir)
            .await
            .context("while opening the state store")?;
        App::build_with_state(loaded.config.clone(), &loaded.config_dir(), state).await
    }

    /// Builds the application over a given state store (tests share one between servers).
    pub async fn build_with_state(
        config: Config,
        config_dir: &Path,
        state: Arc<dyn StateStore>,
    ) -> anyhow::Result<Arc<App>> {
        let paging = config.paging.build()?;
        let mut registries = Vec::new();
        for s in &config.sources {
            let reg = s
                .registry(config_dir)
                .with_context(|| format!("while loading the schemas of source {}", s.slug))?;
            registries.push((s.slug.clone(), Arc::new(reg)));
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
        let shared = if shared_users.is_empty() {
            None
        } else {
            let b = config
                .backend
                .build(&shared_users)
                .await
                .context("while opening the backend")?;
            backends.push(b.clone());
            Some(b)
        };
        let mut sources = BTreeMap::new();
        for (s, (slug, reg)) in config.sources.iter().zip(registries) {
            let backend = match (&s.backend, &shared) {
                (Some(own), _) => {
                    let b = own
                        .build(&[(slug.clone(), reg.clone())])
                        .await
                        .with_context(|| format!("while opening the backend of source {slug}"))?;
                    backends.push(b.clone());
                    b
                }
                (None, Some(b)) => b.clone(),
                (None, None) => BackendConfig::default().build(&[]).await?,
            };
            let service = Service::new(slug.clone(), backend, reg, paging.clone());
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
            backends,
        }))
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
                let (_, secret) = tokens::create(&*self.state, slug, INITIAL_TOKEN_NAME, None)
                    .await
                    .map_err(|e| anyhow::anyhow!("while creating a token: {}", e.detail))?;
                out.push((slug.clone(), secret));
            }
        }
        Ok(out)
    }
}
