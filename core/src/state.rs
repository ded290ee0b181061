//! The shared state store: what every scimd replica must see the same way, independent of the
//! backend a source stores resources in. Today that is bearer tokens; the SQL backend crate
//! implements it on SQLite and PostgreSQL, [`MemoryStateStore`] in memory.

use crate::error::BackendError;
use async_trait::async_trait;
use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;
use time::OffsetDateTime;

/// A stored bearer token. Only a hash of the secret is ever stored.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenRecord {
    /// A random, non-secret identifier (shown by `scimd token list`).
    pub id: String,
    /// The source the token grants access to.
    pub source: String,
    /// The operator's name for the token, unique per source.
    pub name: String,
    /// Lower-case hex SHA-256 of the secret token.
    pub hash: String,
    /// When it was created.
    pub created: OffsetDateTime,
    /// When it stops working, if ever.
    pub expires: Option<OffsetDateTime>,
    /// When it was revoked, if it was.
    pub revoked: Option<OffsetDateTime>,
}

impl fmt::Debug for TokenRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The hash is not the secret, but there is no reason to print it either.
        f.debug_struct("TokenRecord")
            .field("id", &self.id)
            .field("source", &self.source)
            .field("name", &self.name)
            .field("created", &self.created)
            .field("expires", &self.expires)
            .field("revoked", &self.revoked)
            .finish_non_exhaustive()
    }
}

impl TokenRecord {
    /// Whether the token grants access at `now`.
    pub fn is_active(&self, now: OffsetDateTime) -> bool {
        self.revoked.is_none() && self.expires.is_none_or(|e| now < e)
    }
}

/// Storage for state shared by all replicas.
#[async_trait]
pub trait StateStore: Send + Sync + fmt::Debug {
    /// Stores a new token. Fails with [`BackendError::Uniqueness`] when the source already has
    /// a token with that name.
    async fn insert_token(&self, token: &TokenRecord) -> Result<(), BackendError>;
    /// Finds a token by the hash of its secret.
    async fn find_token(&self, hash: &str) -> Result<Option<TokenRecord>, BackendError>;
    /// Lists tokens, of one source or of all.
    async fn list_tokens(&self, source: Option<&str>) -> Result<Vec<TokenRecord>, BackendError>;
    /// Marks a token (by source and name or id) revoked; returns whether one was found.
    async fn revoke_token(
        &self,
        source: &str,
        name_or_id: &str,
        at: OffsetDateTime,
    ) -> Result<bool, BackendError>;
}

/// A [`StateStore`] in process memory, for `--memory` runs and tests.
#[derive(Debug, Default)]
pub struct MemoryStateStore {
    tokens: Mutex<HashMap<String, TokenRecord>>,
}

impl MemoryStateStore {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, TokenRecord>> {
        self.tokens.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait]
impl StateStore for MemoryStateStore {
    async fn insert_token(&self, token: &TokenRecord) -> Result<(), BackendError> {
        let mut tokens = self.lock();
        if tokens
            .values()
            .any(|t| t.source == token.source && t.name == token.name)
        {
            return Err(BackendError::Uniqueness(format!(
                "token name {}",
                token.name
            )));
        }
        tokens.insert(token.id.clone(), token.clone());
        Ok(())
    }

    async fn find_token(&self, hash: &str) -> Result<Option<TokenRecord>, BackendError> {
        Ok(self.lock().values().find(|t| t.hash == hash).cloned())
    }

    async fn list_tokens(&self, source: Option<&str>) -> Result<Vec<TokenRecord>, BackendError> {
        let mut out: Vec<_> = self
            .lock()
            .values()
            .filter(|t| source.is_none_or(|s| t.source == s))
            .cloned()
            .collect();
        out.sort_by(|a, b| (&a.source, a.created, &a.name).cmp(&(&b.source, b.created, &b.name)));
        Ok(out)
    }

    async fn revoke_token(
        &self,
        source: &str,
        name_or_id: &str,
        at: OffsetDateTime,
    ) -> Result<bool, BackendError> {
        let mut tokens = self.lock();
        let found = tokens
            .values_mut()
            .find(|t| t.source == source && (t.name == name_or_id || t.id == name_or_id));
        Ok(match found {
            Some(t) => {
                t.revoked.get_or_insert(at);
                true
            }
            None => false,
        })
    }
}
