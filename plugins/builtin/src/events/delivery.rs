//! Push delivery of SETs (RFC 8935) from the durable outbox.
//!
//! One worker per `events` hook claims due messages of its stream (leasing them, so replicas
//! sharing a state store never deliver the same message at the same time), POSTs each as
//! `application/secevent+jwt` and:
//!
//! - removes it on a 2xx answer (RFC 8935 §2.2: 202 Accepted);
//! - gives it up on `400` (the receiver rejected this SET: RFC 8935 §2.3 error codes such as
//!   `invalid_request`, `invalid_key`; sending it again cannot succeed) and on `413`;
//! - otherwise (network errors, timeouts, 5xx, 408, 429, and 401/403/404, which an operator
//!   can fix) retries with exponential backoff until `max_attempts`, then gives it up.
//!
//! Given-up messages stay in the outbox as failed. Delivery is at least once: a crash after the
//! receiver accepted but before the row was removed re-sends the SET, which the receiver
//! recognizes by its `jti`.

use scimd_core::resource::now;
use scimd_core::state::{OutboxMessage, StateStore};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// Counter of SETs accepted by a receiver, labelled by source and stream.
pub const METRIC_DELIVERED: &str = "scimd_events_delivered_total";
/// Counter of failed delivery attempts that will be retried.
pub const METRIC_RETRIED: &str = "scimd_events_retried_total";
/// Counter of SETs given up.
pub const METRIC_FAILED: &str = "scimd_events_failed_total";
/// Gauge of SETs waiting in the outbox, labelled by source, stream and `state`
/// (`pending`, `failed`).
pub const METRIC_OUTBOX: &str = "scimd_events_outbox";

/// Registers the descriptions (`# HELP`) of the delivery metrics with the installed recorder.
pub fn describe_metrics() {
    metrics::describe_counter!(
        METRIC_DELIVERED,
        "SCIM event SETs a receiver accepted, by source and stream."
    );
    metrics::describe_counter!(
        METRIC_RETRIED,
        "Failed SET delivery attempts that will be retried, by source and stream."
    );
    metrics::describe_counter!(
        METRIC_FAILED,
        "SETs given up after a rejection or their last attempt, by source and stream."
    );
    metrics::describe_gauge!(
        METRIC_OUTBOX,
        "SETs in the outbox, by source, stream and state (pending or failed)."
    );
}

/// How many messages one claim takes.
const BATCH: usize = 32;

/// How a delivery worker behaves.
#[derive(Debug, Clone)]
pub struct DeliverySettings {
    /// The source (for metrics and logs).
    pub source: String,
    /// The outbox stream.
    pub stream: String,
    /// The receiver's endpoint.
    pub url: String,
    /// An `Authorization` header value, if the receiver wants one.
    pub authorization: Option<String>,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Attempts before giving up.
    pub max_attempts: u32,
    /// The first retry delay; doubled per attempt.
    pub retry_initial: Duration,
    /// The longest retry delay.
    pub retry_max: Duration,
    /// How often the outbox is polled when nothing signals new messages.
    pub poll: Duration,
}

/// What one attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// The receiver accepted the SET.
    Delivered,
    /// Worth retrying.
    Retry(String),
    /// Sending it again cannot succeed.
    Reject(String),
}

/// The delay before retry number `attempts` (1-based), with up to 20 % of jitter derived from
/// the message id so that a burst of failures does not retry in lockstep.
pub fn backoff(s: &DeliverySettings, attempts: u32, id: &str) -> Duration {
    let factor = 1u64 << attempts.saturating_sub(1).min(30);
    let base = s
        .retry_initial
        .saturating_mul(u32::try_from(factor).unwrap_or(u32::MAX))
        .min(s.retry_max);
    let spread = id
        .bytes()
        .fold(0u32, |a, b| a.wrapping_mul(31).wrapping_add(b.into()))
        % 21;
    base + base * spread / 100
}

/// Sends one SET.
pub async fn attempt(client: &reqwest::Client, s: &DeliverySettings, set: &str) -> Attempt {
    let mut req = client
        .post(&s.url)
        .timeout(s.timeout)
        .header("Content-Type", "application/secevent+jwt")
        .header("Accept", "application/json")
        .body(set.to_string());
    if let Some(a) = &s.authorization {
        req = req.header("Authorization", a);
    }
    let resp = match req.send().await {
        Ok(r) => r,
        Err(e) => return Attempt::Retry(format!("cannot reach the receiver: {e}")),
    };
    let status = resp.status().as_u16();
    if (200..300).contains(&status) {
        return Attempt::Delivered;
    }
    let body = resp.text().await.unwrap_or_default();
    let detail = match serde_json::from_str::<serde_json::Value>(&body) {
        Ok(v) if v.get("err").is_some() => format!(
            "{status} {} {}",
            v["err"].as_str().unwrap_or(""),
            v.get("description").and_then(|d| d.as_str()).unwrap_or("")
        ),
        _ => format!("{status}"),
    };
    match status {
        400 | 413 => Attempt::Reject(format!("receiver rejected the SET: {}", detail.trim())),
        _ => Attempt::Retry(format!("receiver answered {}", detail.trim())),
    }
}

/// The delivery worker of one stream. Runs until the runtime shuts down.
pub async fn run(
    state: Arc<dyn StateStore>,
    settings: DeliverySettings,
    client: reqwest::Client,
    wake: Arc<Notify>,
) {
    let labels = [
        ("source", settings.source.clone()),
        ("stream", settings.stream.clone()),
    ];
    loop {
        let t = now();
        // Longer than one attempt may take (the request timeout) plus recording its outcome;
        // a worker that dies holding a lease delays those messages by at most this much.
        let lease = settings.timeout.saturating_mul(2) + Duration::from_secs(1);
        let claimed = state
            .outbox_claim(&settings.stream, t, t + lease, BATCH)
            .await;
        let batch = match claimed {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(source = %settings.source, stream = %settings.stream, error = %e, "Cannot read the event outbox.");
                Vec::new()
            }
        };
        let full = batch.len() == BATCH;
        for m in batch {
            deliver(&*state, &settings, &client, m, &labels).await;
        }
        if let Ok(stats) = state.outbox_stats(&settings.stream).await {
            metrics::gauge!(
                METRIC_OUTBOX,
                &[
                    labels[0].clone(),
                    labels[1].clone(),
                    ("state", "pending".into())
                ]
            )
            .set(stats.pending as f64);
            metrics::gauge!(
                METRIC_OUTBOX,
                &[
                    labels[0].clone(),
                    labels[1].clone(),
                    ("state", "failed".into())
                ]
            )
            .set(stats.failed as f64);
        }
        if !full {
            tokio::select! {
                _ = wake.notified() => {}
                _ = tokio::time::sleep(settings.poll) => {}
            }
        }
    }
}

async fn deliver(
    state: &dyn StateStore,
    s: &DeliverySettings,
    client: &reqwest::Client,
    m: OutboxMessage,
    labels: &[(&'static str, String); 2],
) {
    let attempts = m.attempts.saturating_add(1);
    let outcome = attempt(client, s, &m.payload).await;
    let stored = match &outcome {
        Attempt::Delivered => {
            metrics::counter!(METRIC_DELIVERED, labels).increment(1);
            tracing::debug!(source = %s.source, stream = %s.stream, jti = %m.id, "Event delivered.");
            state.outbox_delivered(&m.id).await
        }
        Attempt::Retry(e) if attempts < s.max_attempts => {
            metrics::counter!(METRIC_RETRIED, labels).increment(1);
            let delay = backoff(s, attempts, &m.id);
            tracing::info!(source = %s.source, stream = %s.stream, jti = %m.id, attempts, error = %e, retry_in_ms = delay.as_millis() as u64, "Event delivery failed; will retry.");
            state
                .outbox_failed(&m.id, attempts, Some(now() + delay), e)
                .await
        }
        Attempt::Retry(e) | Attempt::Reject(e) => {
            metrics::counter!(METRIC_FAILED, labels).increment(1);
            tracing::warn!(source = %s.source, stream = %s.stream, jti = %m.id, attempts, error = %e, "Event delivery given up.");
            state.outbox_failed(&m.id, attempts, None, e).await
        }
    };
    if let Err(e) = stored {
        // The lease runs out and the message is tried again: at least once, never lost.
        tracing::warn!(source = %s.source, stream = %s.stream, jti = %m.id, error = %e, "Cannot record the delivery outcome.");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> DeliverySettings {
        DeliverySettings {
            source: "s".into(),
            stream: "s/events".into(),
            url: "http://127.0.0.1:9/".into(),
            authorization: None,
            timeout: Duration::from_secs(1),
            max_attempts: 5,
            retry_initial: Duration::from_millis(100),
            retry_max: Duration::from_secs(2),
            poll: Duration::from_millis(50),
        }
    }

    #[test]
    fn backoff_doubles_with_bounded_jitter_and_caps() {
        let s = settings();
        let d1 = backoff(&s, 1, "a");
        let d3 = backoff(&s, 3, "a");
        assert!(d1 >= Duration::from_millis(100) && d1 <= Duration::from_millis(120));
        assert!(d3 >= Duration::from_millis(400) && d3 <= Duration::from_millis(480));
        assert!(backoff(&s, 40, "a") <= Duration::from_millis(2400));
    }
}
