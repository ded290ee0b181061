//! `events`: RFC 9967 SCIM events as signed Security Event Tokens (RFC 8417), pushed to an HTTP
//! receiver (RFC 8935) through a durable outbox.
//!
//! In the outbox phase the hook builds the SET of the write ([`set`]) and signs it ([`jws`]);
//! the pipeline stores it in the state store's outbox, and a background worker ([`delivery`])
//! delivers it with retries and backoff (the react phase only wakes the worker). An event is
//! therefore delivered at least once even if scimd is killed between the write and the
//! delivery: the next start (or another replica) finds it in the outbox.
//!
//! How the SET reaches the outbox decides whether a crash *during* the write can lose it:
//!
//! - When the backend is SQLite or PostgreSQL and the state store is the same database (the
//!   default: `[state]` follows the backend), the SET is inserted in the write's own
//!   transaction. The resource and its event commit together or not at all; no crash can keep
//!   one without the other.
//! - Otherwise (memory or LDAP backends, or a state store in another database) the SET is
//!   stored right after the backend committed, before the response is sent. A crash between
//!   the two loses that event although the write stands; the client got no response and
//!   usually retries, but a receiver may miss that one change.
//!
//! Signing or storing problems never fail the request (see [`scimd_core::hooks`]): they are
//! logged and counted in `scimd_hook_react_failures_total`.
//!
//! ```toml
//! [[sources.hooks]]
//! type = "events"
//! name = "hr-feed"                       # outbox stream: "<source>/hr-feed"
//! url = "https://hr.example.com/scim-events"
//! audience = "https://hr.example.com"    # `aud`; defaults to url
//! issuer = "https://scim.example.com"    # `iss`; defaults to "scimd"
//! mode = "full"                          # or "notice"
//! alg = "ES256"                          # HS256 (key = shared secret), ES256, RS256
//! key_file = "keys/events.pem"           # PKCS#8 PEM private key
//! authorization = "Bearer …"             # sent as the Authorization header
//! ```

pub mod delivery;
pub mod jws;
pub mod set;

use async_trait::async_trait;
use delivery::DeliverySettings;
use jws::{Signer, SigningAlg};
use scimd_core::hooks::{Hook, Operation, Phase, ReactError, Scope, WriteRecord};
use scimd_core::resource::now;
use scimd_core::schema::ResourceKind;
use scimd_core::state::{OutboxMessage, StateStore};
use serde::{Deserialize, Serialize};
use set::{
    ACTIVATE, Addressing, CREATE_FULL, CREATE_NOTICE, DEACTIVATE, DELETE, EventMode, PATCH_FULL,
    PATCH_NOTICE, PUT_FULL, PUT_NOTICE,
};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

fn default_timeout_ms() -> u64 {
    10_000
}
fn default_max_attempts() -> u32 {
    20
}
fn default_retry_initial_ms() -> u64 {
    1_000
}
fn default_retry_max_ms() -> u64 {
    300_000
}
fn default_poll_ms() -> u64 {
    1_000
}

/// `type = "events"`: one receiver.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsConfig {
    /// The stream name (outbox key `<source>/<name>`, metrics label); defaults to `events`.
    /// Keep it stable: pending events of a renamed stream are no longer delivered.
    #[serde(default)]
    pub name: Option<String>,
    /// The receiver's push endpoint (RFC 8935).
    pub url: String,
    /// The `aud` claim; defaults to `url`.
    #[serde(default)]
    pub audience: Option<String>,
    /// The `iss` claim; defaults to `scimd`.
    #[serde(default)]
    pub issuer: Option<String>,
    /// `full` (default: `data` carries the resource or the PatchOp) or `notice` (`attributes`
    /// lists what changed).
    #[serde(default)]
    pub mode: EventMode,
    /// `HS256` (default), `ES256` or `RS256`.
    #[serde(default)]
    pub alg: SigningAlg,
    /// The HS256 shared secret (at least 32 bytes).
    #[serde(default)]
    pub key: Option<String>,
    /// A key file: the PKCS#8 PEM private key for ES256/RS256, or the HS256 secret. Relative to
    /// the configuration file's directory.
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    /// The `kid` header.
    #[serde(default)]
    pub key_id: Option<String>,
    /// An `Authorization` header value for the receiver.
    #[serde(default)]
    pub authorization: Option<String>,
    /// Milliseconds one delivery attempt may take.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Attempts before an event is given up (kept in the outbox as failed).
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    /// The first retry delay in milliseconds, doubled per attempt.
    #[serde(default = "default_retry_initial_ms")]
    pub retry_initial_ms: u64,
    /// The longest retry delay in milliseconds.
    #[serde(default = "default_retry_max_ms")]
    pub retry_max_ms: u64,
    /// How often (milliseconds) the outbox is checked for due retries and for events other
    /// replicas stored.
    #[serde(default = "default_poll_ms")]
    pub poll_ms: u64,
    /// Resource types that emit events (`User`, `Group`); empty = both.
    #[serde(default)]
    pub resource_types: Vec<ResourceKind>,
    /// Operations that emit events; empty = all.
    #[serde(default)]
    pub operations: Vec<Operation>,
}

impl fmt::Debug for EventsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let redacted = |o: &Option<String>| o.as_ref().map(|_| "[redacted]");
        f.debug_struct("EventsConfig")
            .field("name", &self.name)
            .field("url", &self.url)
            .field("audience", &self.audience)
            .field("issuer", &self.issuer)
            .field("mode", &self.mode)
            .field("alg", &self.alg)
            .field("key", &redacted(&self.key))
            .field("key_file", &self.key_file)
            .field("key_id", &self.key_id)
            .field("authorization", &redacted(&self.authorization))
            .field("timeout_ms", &self.timeout_ms)
            .field("max_attempts", &self.max_attempts)
            .field("retry_initial_ms", &self.retry_initial_ms)
            .field("retry_max_ms", &self.retry_max_ms)
            .field("poll_ms", &self.poll_ms)
            .field("resource_types", &self.resource_types)
            .field("operations", &self.operations)
            .finish()
    }
}

/// The built `events` hook.
#[derive(Debug)]
pub struct EventsHook {
    name: String,
    stream: String,
    mode: EventMode,
    to: Addressing,
    signer: Signer,
    scope: Scope,
    wake: Arc<Notify>,
}

impl EventsConfig {
    /// The outbox stream of this receiver in `source`.
    pub fn stream(&self, source: &str) -> String {
        format!("{source}/{}", self.name.as_deref().unwrap_or("events"))
    }

    /// Checks the configuration, loads the key (`key_file` already resolved) and starts the
    /// delivery worker on the current tokio runtime.
    pub fn build(
        &self,
        source: &str,
        key_file: Option<&Path>,
        state: Arc<dyn StateStore>,
    ) -> Result<EventsHook, String> {
        if !state.has_outbox() {
            return Err("the configured state store keeps no outbox; events need a durable one (SQLite or PostgreSQL)".into());
        }
        let url = reqwest::Url::parse(&self.url).map_err(|e| format!("invalid url: {e}"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err("url must be http or https".into());
        }
        let file = match key_file {
            Some(p) => Some(
                std::fs::read(p)
                    .map_err(|e| format!("cannot read key file {}: {e}", p.display()))?,
            ),
            None => None,
        };
        let secret = match (&self.key, &file) {
            (Some(_), Some(_)) => return Err("give key or key_file, not both".into()),
            (Some(k), None) => Some(k.as_bytes().to_vec()),
            (None, Some(f)) if self.alg == SigningAlg::HS256 => {
                Some(String::from_utf8_lossy(f).trim().as_bytes().to_vec())
            }
            _ => None,
        };
        let signer = Signer::new(
            self.alg,
            secret.as_deref(),
            file.as_deref(),
            self.key_id.clone(),
        )?;
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|_| "events need a running async runtime to deliver from".to_string())?;
        let client = reqwest::Client::builder()
            .user_agent(concat!("scimd/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("HTTP client: {e}"))?;
        let stream = self.stream(source);
        let wake = Arc::new(Notify::new());
        let settings = DeliverySettings {
            source: source.to_string(),
            stream: stream.clone(),
            url: self.url.clone(),
            authorization: self.authorization.clone(),
            timeout: Duration::from_millis(self.timeout_ms.max(1)),
            max_attempts: self.max_attempts.max(1),
            retry_initial: Duration::from_millis(self.retry_initial_ms.max(1)),
            retry_max: Duration::from_millis(self.retry_max_ms.max(self.retry_initial_ms)),
            poll: Duration::from_millis(self.poll_ms.max(10)),
        };
        runtime.spawn(delivery::run(state, settings, client, wake.clone()));
        Ok(EventsHook {
            name: self.name.clone().unwrap_or_else(|| "events".into()),
            stream,
            mode: self.mode,
            to: Addressing {
                issuer: self.issuer.clone().unwrap_or_else(|| "scimd".into()),
                audience: self.audience.clone().unwrap_or_else(|| self.url.clone()),
            },
            signer,
            scope: Scope {
                resource_types: self.resource_types.clone(),
                operations: self.operations.clone(),
            },
            wake,
        })
    }
}

impl EventsHook {
    /// The signed SET of a write, with its `jti`.
    pub fn sign(&self, record: &WriteRecord) -> Result<(String, String), String> {
        let jti = uuid::Uuid::new_v4().simple().to_string();
        let iat = now().unix_timestamp();
        let claims = set::claims(record, self.mode, &self.to, &jti, iat);
        Ok((jti, self.signer.sign(&claims)?))
    }

    /// The outbox stream.
    pub fn stream(&self) -> &str {
        &self.stream
    }

    /// The RFC 9967 event URIs this hook emits, given its mode and scope, in registry order.
    pub fn emitted_event_uris(&self) -> Vec<&'static str> {
        let in_scope = |op| {
            ResourceKind::ALL
                .iter()
                .any(|k| self.scope.contains(*k, op))
        };
        let full = self.mode == EventMode::Full;
        let mut out = Vec::new();
        for (op, full_uri, notice_uri) in [
            (Operation::Create, CREATE_FULL, CREATE_NOTICE),
            (Operation::Patch, PATCH_FULL, PATCH_NOTICE),
            (Operation::Replace, PUT_FULL, PUT_NOTICE),
        ] {
            if in_scope(op) {
                out.push(if full { full_uri } else { notice_uri });
            }
        }
        if in_scope(Operation::Delete) {
            out.push(DELETE);
        }
        // A user's `active` turning true or false adds these to a create, put or patch SET.
        let user_state = [Operation::Create, Operation::Replace, Operation::Patch]
            .into_iter()
            .any(|op| self.scope.contains(ResourceKind::User, op));
        if user_state {
            out.extend([ACTIVATE, DEACTIVATE]);
        }
        out
    }
}

#[async_trait]
impl Hook for EventsHook {
    fn name(&self) -> &str {
        &self.name
    }

    fn applies(&self, phase: Phase, kind: ResourceKind, operation: Operation) -> bool {
        matches!(phase, Phase::Outbox | Phase::React) && self.scope.contains(kind, operation)
    }

    fn outbox(&self, record: &WriteRecord) -> Result<Vec<OutboxMessage>, ReactError> {
        let (jti, token) = self
            .sign(record)
            .map_err(|e| ReactError::new(format!("cannot sign the event: {e}")))?;
        let t = now();
        Ok(vec![OutboxMessage {
            id: jti,
            stream: self.stream.clone(),
            payload: token,
            created: t,
            attempts: 0,
            next_attempt: t,
            last_error: None,
        }])
    }

    /// The event is in the outbox by now (committed with the write or stored after it): the
    /// worker delivers it without waiting for its next poll.
    async fn react(&self, _: &WriteRecord) -> Result<(), ReactError> {
        self.wake.notify_one();
        Ok(())
    }

    fn event_uris(&self) -> Vec<String> {
        self.emitted_event_uris()
            .into_iter()
            .map(String::from)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use scimd_core::state::MemoryStateStore;

    fn hook(extra: serde_json::Value) -> EventsHook {
        let mut c = serde_json::json!({
            "url": "http://127.0.0.1:9/events",
            "key": "an-hs256-secret-of-at-least-32-bytes!",
        });
        if let (Some(c), Some(extra)) = (c.as_object_mut(), extra.as_object()) {
            c.extend(extra.clone());
        }
        let config: EventsConfig = serde_json::from_value(c).unwrap_or_else(|e| panic!("{e}"));
        config
            .build("s", None, Arc::new(MemoryStateStore::default()))
            .unwrap_or_else(|e| panic!("{e}"))
    }

    #[tokio::test]
    async fn event_uris_follow_mode_and_scope() {
        assert_eq!(
            hook(serde_json::json!({})).emitted_event_uris(),
            [
                CREATE_FULL,
                PATCH_FULL,
                PUT_FULL,
                DELETE,
                ACTIVATE,
                DEACTIVATE
            ]
        );
        assert_eq!(
            hook(serde_json::json!({"mode": "notice", "operations": ["patch", "delete"]}))
                .emitted_event_uris(),
            [PATCH_NOTICE, DELETE, ACTIVATE, DEACTIVATE]
        );
        // Groups are never activated; deletes never change `active`.
        assert_eq!(
            hook(serde_json::json!({"resource_types": ["Group"]})).emitted_event_uris(),
            [CREATE_FULL, PATCH_FULL, PUT_FULL, DELETE]
        );
        assert_eq!(
            hook(serde_json::json!({"operations": ["delete"]})).emitted_event_uris(),
            [DELETE]
        );
    }

    #[tokio::test]
    async fn the_hook_builds_its_set_in_the_outbox_phase_and_only_wakes_in_react() {
        let h = hook(serde_json::json!({"operations": ["create", "delete"]}));
        for phase in [Phase::Outbox, Phase::React] {
            assert!(h.applies(phase, ResourceKind::User, Operation::Create));
            assert!(!h.applies(phase, ResourceKind::User, Operation::Patch));
        }
        assert!(!h.applies(Phase::Map, ResourceKind::User, Operation::Create));
        assert!(!h.applies(Phase::Decide, ResourceKind::User, Operation::Create));
    }
}
