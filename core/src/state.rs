//! The shared state store: what every scimd replica must see the same way, independent of the
//! backend a source stores resources in: bearer tokens and the durable outbox of messages to
//! deliver (signed SCIM events). The SQL backend crate implements it on SQLite and PostgreSQL,
//! [`MemoryStateStore`] in memory.

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

/// A message in the durable outbox: stored before delivery, removed once delivered, so that a
/// process killed between a write and the delivery of its event delivers it after a restart.
#[derive(Clone, PartialEq, Eq)]
pub struct OutboxMessage {
    /// A unique id (for a SET, its `jti`).
    pub id: String,
    /// Which delivery stream (receiver) the message belongs to.
    pub stream: String,
    /// What to deliver (for a SET, the signed compact JWS).
    pub payload: String,
    /// When it was stored.
    pub created: OffsetDateTime,
    /// Delivery attempts made so far.
    pub attempts: u32,
    /// When it may be (re)tried; a claimed message is leased by moving this forward.
    pub next_attempt: OffsetDateTime,
    /// The error of the last failed attempt.
    pub last_error: Option<String>,
}

impl fmt::Debug for OutboxMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The payload may carry personal data; its size is enough for logs.
        f.debug_struct("OutboxMessage")
            .field("id", &self.id)
            .field("stream", &self.stream)
            .field("payload_bytes", &self.payload.len())
            .field("created", &self.created)
            .field("attempts", &self.attempts)
            .field("next_attempt", &self.next_attempt)
            .field("last_error", &self.last_error)
            .finish()
    }
}

/// Counts of one outbox stream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OutboxStats {
    /// Messages waiting for (re)delivery.
    pub pending: u64,
    /// Messages given up after their last attempt (kept for inspection).
    pub failed: u64,
}

fn no_outbox() -> BackendError {
    BackendError::Unsupported("this state store has no outbox".into())
}

/// Storage for state shared by all replicas.
///
/// The outbox methods have defaults that report [`BackendError::Unsupported`], for stores that
/// cannot keep one; hooks that need durable delivery refuse to start on such a store.
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

    /// Whether the outbox methods are implemented.
    fn has_outbox(&self) -> bool {
        false
    }
    /// Stores a message for delivery. Storing an id that exists already changes nothing.
    async fn outbox_push(&self, message: &OutboxMessage) -> Result<(), BackendError> {
        let _ = message;
        Err(no_outbox())
    }
    /// Claims up to `limit` pending messages of `stream` that are due at `now`, oldest first,
    /// and leases them until `lease_until` (their `next_attempt`), so that no other replica
    /// claims them while this one delivers. A lease that runs out (the process died) makes the
    /// message due again.
    async fn outbox_claim(
        &self,
        stream: &str,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
        limit: usize,
    ) -> Result<Vec<OutboxMessage>, BackendError> {
        let _ = (stream, now, lease_until, limit);
        Err(no_outbox())
    }
    /// Removes a delivered message.
    async fn outbox_delivered(&self, id: &str) -> Result<(), BackendError> {
        let _ = id;
        Err(no_outbox())
    }
    /// Records a failed attempt: the message is retried at `retry_at`, or kept as failed (never
    /// retried) when `retry_at` is `None`.
    async fn outbox_failed(
        &self,
        id: &str,
        attempts: u32,
        retry_at: Option<OffsetDateTime>,
        error: &str,
    ) -> Result<(), BackendError> {
        let _ = (id, attempts, retry_at, error);
        Err(no_outbox())
    }
    /// Counts of a stream's pending and failed messages.
    async fn outbox_stats(&self, stream: &str) -> Result<OutboxStats, BackendError> {
        let _ = stream;
        Err(no_outbox())
    }
}

/// A [`StateStore`] in process memory, for `--memory` runs and tests. Its outbox is as durable
/// as the process.
#[derive(Debug, Default)]
pub struct MemoryStateStore {
    tokens: Mutex<HashMap<String, TokenRecord>>,
    outbox: Mutex<Vec<(OutboxMessage, bool)>>,
}

impl MemoryStateStore {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, TokenRecord>> {
        self.tokens.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The outbox: each message with whether it failed for good.
    fn outbox(&self) -> std::sync::MutexGuard<'_, Vec<(OutboxMessage, bool)>> {
        self.outbox.lock().unwrap_or_else(|e| e.into_inner())
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

    fn has_outbox(&self) -> bool {
        true
    }

    async fn outbox_push(&self, message: &OutboxMessage) -> Result<(), BackendError> {
        let mut outbox = self.outbox();
        if !outbox.iter().any(|(m, _)| m.id == message.id) {
            outbox.push((message.clone(), false));
        }
        Ok(())
    }

    async fn outbox_claim(
        &self,
        stream: &str,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
        limit: usize,
    ) -> Result<Vec<OutboxMessage>, BackendError> {
        let mut outbox = self.outbox();
        let mut due: Vec<&mut OutboxMessage> = outbox
            .iter_mut()
            .filter(|(m, failed)| !failed && m.stream == stream && m.next_attempt <= now)
            .map(|(m, _)| m)
            .collect();
        due.sort_by(|a, b| (a.created, &a.id).cmp(&(b.created, &b.id)));
        Ok(due
            .into_iter()
            .take(limit)
            .map(|m| {
                m.next_attempt = lease_until;
                m.clone()
            })
            .collect())
    }

    async fn outbox_delivered(&self, id: &str) -> Result<(), BackendError> {
        self.outbox().retain(|(m, _)| m.id != id);
        Ok(())
    }

    async fn outbox_failed(
        &self,
        id: &str,
        attempts: u32,
        retry_at: Option<OffsetDateTime>,
        error: &str,
    ) -> Result<(), BackendError> {
        if let Some((m, failed)) = self.outbox().iter_mut().find(|(m, _)| m.id == id) {
            m.attempts = attempts;
            m.last_error = Some(error.to_string());
            match retry_at {
                Some(t) => m.next_attempt = t,
                None => *failed = true,
            }
        }
        Ok(())
    }

    async fn outbox_stats(&self, stream: &str) -> Result<OutboxStats, BackendError> {
        let mut stats = OutboxStats::default();
        for (_, failed) in self.outbox().iter().filter(|(m, _)| m.stream == stream) {
            if *failed {
                stats.failed += 1;
            } else {
                stats.pending += 1;
            }
        }
        Ok(stats)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::Duration;

    fn msg(id: &str, stream: &str, created: OffsetDateTime) -> OutboxMessage {
        OutboxMessage {
            id: id.into(),
            stream: stream.into(),
            payload: format!("payload-{id}"),
            created,
            attempts: 0,
            next_attempt: created,
            last_error: None,
        }
    }

    #[tokio::test]
    async fn outbox_claims_due_messages_of_a_stream_oldest_first_and_leases_them() {
        let s = MemoryStateStore::default();
        let t0 = OffsetDateTime::UNIX_EPOCH + Duration::days(20_000);
        s.outbox_push(&msg("b", "x", t0 + Duration::seconds(1)))
            .await
            .unwrap_or_default();
        s.outbox_push(&msg("a", "x", t0)).await.unwrap_or_default();
        s.outbox_push(&msg("c", "y", t0)).await.unwrap_or_default();
        s.outbox_push(&msg("a", "x", t0)).await.unwrap_or_default();
        let lease = t0 + Duration::minutes(1);
        let got = s
            .outbox_claim("x", t0 + Duration::seconds(5), lease, 10)
            .await;
        let ids: Vec<_> = got.unwrap_or_default().into_iter().map(|m| m.id).collect();
        assert_eq!(ids, ["a", "b"]);
        // Leased: not claimable again until the lease runs out.
        let again = s
            .outbox_claim("x", t0 + Duration::seconds(6), lease, 10)
            .await;
        assert_eq!(again.map(|v| v.len()), Ok(0));
        let after = s
            .outbox_claim("x", lease, lease + Duration::minutes(1), 1)
            .await;
        assert_eq!(after.map(|v| v.len()), Ok(1));
    }

    #[tokio::test]
    async fn outbox_failures_retry_or_stay_failed_and_delivery_removes() {
        let s = MemoryStateStore::default();
        let t0 = OffsetDateTime::UNIX_EPOCH + Duration::days(20_000);
        s.outbox_push(&msg("a", "x", t0)).await.unwrap_or_default();
        s.outbox_push(&msg("b", "x", t0)).await.unwrap_or_default();
        s.outbox_failed("a", 1, Some(t0 + Duration::seconds(30)), "503")
            .await
            .unwrap_or_default();
        s.outbox_failed("b", 5, None, "400 invalid_request")
            .await
            .unwrap_or_default();
        assert_eq!(
            s.outbox_stats("x").await,
            Ok(OutboxStats {
                pending: 1,
                failed: 1
            })
        );
        let due = s
            .outbox_claim("x", t0 + Duration::seconds(10), t0, 10)
            .await;
        assert_eq!(due.map(|v| v.len()), Ok(0));
        let due = s
            .outbox_claim("x", t0 + Duration::seconds(30), t0 + Duration::hours(1), 10)
            .await
            .unwrap_or_default();
        assert_eq!(due.len(), 1);
        assert_eq!(
            (due[0].attempts, due[0].last_error.as_deref()),
            (1, Some("503"))
        );
        s.outbox_delivered("a").await.unwrap_or_default();
        assert_eq!(s.outbox_stats("x").await.map(|s| s.pending), Ok(0));
    }
}
