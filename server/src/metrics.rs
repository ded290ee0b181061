//! Prometheus metrics: requests by source, endpoint, method and status; latency histograms;
//! backend errors; compatibility rules fired; and the metrics hooks and event delivery record
//! (described here too, so every exported metric has a `# HELP` line). The recorder is
//! process-global, so it is installed once and shared by every server in the process (tests
//! start several).

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;
use std::time::Duration;

/// Requests handled.
pub const REQUESTS: &str = "scimd_http_requests_total";
/// Request latency in seconds.
pub const LATENCY: &str = "scimd_http_request_duration_seconds";
/// Requests that failed in the backend or the state store (answered 500 or 503).
pub const BACKEND_ERRORS: &str = "scimd_backend_errors_total";
/// Requests in which a compatibility rule fired, by source and rule.
pub const COMPAT_RULE_FIRED: &str = "scimd_compat_rule_fired_total";

const BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// The process's Prometheus handle, installing the recorder on first use. `None` when another
/// recorder was installed first (then `/metrics` says so).
pub fn handle() -> Option<&'static PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets(BUCKETS)
                .unwrap_or_else(|_| PrometheusBuilder::new());
            match builder.install_recorder() {
                Ok(h) => {
                    metrics::describe_counter!(REQUESTS, "HTTP requests handled.");
                    metrics::describe_histogram!(
                        LATENCY,
                        metrics::Unit::Seconds,
                        "HTTP request latency."
                    );
                    metrics::describe_counter!(
                        BACKEND_ERRORS,
                        "Requests that failed in the backend or state store (500/503)."
                    );
                    metrics::describe_counter!(
                        COMPAT_RULE_FIRED,
                        "Requests in which an identity-provider compatibility rule fired."
                    );
                    // Hooks and event delivery record their own metrics.
                    scimd_plugin_host::describe_metrics();
                    Some(h)
                }
                Err(e) => {
                    tracing::warn!(error = %e, "metrics recorder not installed");
                    None
                }
            }
        })
        .as_ref()
}

/// Records one handled request.
pub fn record_request(source: &str, endpoint: &str, method: &str, status: u16, elapsed: Duration) {
    let labels = [
        ("source", source.to_string()),
        ("endpoint", endpoint.to_string()),
        ("method", method.to_string()),
        ("status", status.to_string()),
    ];
    metrics::counter!(REQUESTS, &labels).increment(1);
    let labels = [
        ("source", source.to_string()),
        ("endpoint", endpoint.to_string()),
        ("method", method.to_string()),
    ];
    metrics::histogram!(LATENCY, &labels).record(elapsed.as_secs_f64());
}

/// Records a request that failed in the backend.
pub fn record_backend_error(source: &str, status: u16) {
    let labels = [
        ("source", source.to_string()),
        ("status", status.to_string()),
    ];
    metrics::counter!(BACKEND_ERRORS, &labels).increment(1);
}

/// Records that a compatibility rule fired in a request of `source`.
pub fn record_rule_fired(source: &str, rule: &str) {
    let labels = [("source", source.to_string()), ("rule", rule.to_string())];
    metrics::counter!(COMPAT_RULE_FIRED, &labels).increment(1);
}
