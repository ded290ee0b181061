//! What wraps every request: a request id and a tracing span, the authentik-compatible path
//! rewrite, `OPTIONS`, the body size limit, the request timeout, metrics, and the guarantee that
//! every error leaves as a SCIM Error body (framework errors included).

use super::api::MountPrefix;
use super::payload::{Reply, SCIM_JSON};
use crate::app::App;
use crate::metrics as m;
use poem::http::{HeaderValue, Method, StatusCode, Uri, header};
use poem::{Body, Endpoint, IntoResponse, Request, Response};
use scimd_core::ScimError;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::Instrument;

/// The header carrying the request id (accepted from the client when well-formed).
pub const REQUEST_ID: &str = "x-request-id";
/// The authentik-compatible prefix.
pub const ALIAS_PREFIX: &str = "/source/scim";

/// The SCIM endpoint a path addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Classified {
    /// The source slug in the path.
    pub source: String,
    /// A fixed label for metrics (`Users/{id}`).
    pub endpoint: &'static str,
    /// The methods the endpoint answers.
    pub allowed: &'static [&'static str],
}

const READ: &[&str] = &["GET", "HEAD", "OPTIONS"];
const COLLECTION: &[&str] = &["GET", "HEAD", "POST", "OPTIONS"];
const ITEM: &[&str] = &["GET", "HEAD", "PUT", "PATCH", "DELETE", "OPTIONS"];
const POST_ONLY: &[&str] = &["POST", "OPTIONS"];
const ANY: &[&str] = &["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

/// Classifies `/scim/{source}/v2/...` paths.
pub fn classify(path: &str) -> Option<Classified> {
    let rest = path.strip_prefix("/scim/")?;
    let (source, rest) = rest.split_once('/')?;
    let rest = rest.strip_prefix("v2")?;
    let rest = rest.strip_prefix('/').unwrap_or(rest).trim_end_matches('/');
    let segs: Vec<&str> = if rest.is_empty() {
        vec![]
    } else {
        rest.split('/').collect()
    };
    let (endpoint, allowed): (&'static str, &'static [&'static str]) = match segs.as_slice() {
        ["Users"] => ("Users", COLLECTION),
        ["Users", ".search"] => ("Users/.search", POST_ONLY),
        ["Users", _] => ("Users/{id}", ITEM),
        ["Groups"] => ("Groups", COLLECTION),
        ["Groups", ".search"] => ("Groups/.search", POST_ONLY),
        ["Groups", _] => ("Groups/{id}", ITEM),
        [".search"] => (".search", POST_ONLY),
        ["Bulk"] => ("Bulk", POST_ONLY),
        ["ServiceProviderConfig"] => ("ServiceProviderConfig", READ),
        ["ResourceTypes"] => ("ResourceTypes", READ),
        ["ResourceTypes", _] => ("ResourceTypes/{id}", READ),
        ["Schemas"] => ("Schemas", READ),
        ["Schemas", _] => ("Schemas/{id}", READ),
        ["Me"] => ("Me", ANY),
        _ => return None,
    };
    Some(Classified {
        source: source.to_string(),
        endpoint,
        allowed,
    })
}

fn request_id(req: &Request) -> String {
    req.headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 128
                && v.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'))
        })
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string())
}

/// The endpoint names of RFC 7644 §3.2, matched case-insensitively: clients send `/users`.
const ENDPOINTS: &[&str] = &[
    "Users",
    "Groups",
    "Bulk",
    "ServiceProviderConfig",
    "ResourceTypes",
    "Schemas",
    "Me",
];

/// Rewrites `/source/scim/...` to `/scim/...` (remembering the prefix for URLs in responses)
/// and the endpoint segment after `v2` to its canonical spelling, without a trailing slash.
fn rewrite_path(req: &mut Request) {
    let path = req.uri().path();
    let (prefix, rest) = match path.strip_prefix(ALIAS_PREFIX) {
        Some(rest) if rest.starts_with('/') => (Some(ALIAS_PREFIX), rest),
        _ => match path.strip_prefix("/scim") {
            Some(rest) if rest.starts_with('/') => (None, rest),
            _ => return,
        },
    };
    // rest = "/{source}/v2/{endpoint}..."; a trailing slash (`/Users/`) names the same thing.
    let trimmed = rest.trim_end_matches('/');
    let mut renamed = trimmed.len() != rest.len() && !trimmed.is_empty();
    let mut parts: Vec<&str> = trimmed.splitn(5, '/').collect();
    if parts.len() >= 4
        && parts[2] == "v2"
        && let Some(canonical) = ENDPOINTS
            .iter()
            .find(|e| e.eq_ignore_ascii_case(parts[3]) && **e != parts[3])
    {
        parts[3] = canonical;
        renamed = true;
    }
    if prefix.is_none() && !renamed {
        return;
    }
    let path = format!("/scim{}", parts.join("/"));
    let new = match req.uri().query() {
        Some(q) => format!("{path}?{q}"),
        None => path,
    };
    if let Ok(uri) = new.parse::<Uri>() {
        *req.uri_mut() = uri;
        if let Some(p) = prefix {
            req.extensions_mut().insert(MountPrefix(p));
        }
    }
}

fn scim_error(e: &ScimError) -> Response {
    Reply::error(e).into_response()
}

/// Turns a framework error into a SCIM error response.
fn from_poem_error(e: poem::Error) -> Response {
    if e.status() == StatusCode::NOT_FOUND {
        return scim_error(&ScimError::not_found("No such endpoint"));
    }
    if e.status() == StatusCode::METHOD_NOT_ALLOWED {
        return scim_error(&ScimError::new(
            405,
            "The method is not allowed on this endpoint",
        ));
    }
    let r = super::payload::scim_error_of(&e);
    scim_error(&r)
}

/// Rewrites error responses that are not SCIM JSON (poem's plain-text errors) into SCIM Error
/// bodies with the same status.
async fn ensure_scim_error(resp: Response) -> Response {
    let status = resp.status();
    if status.as_u16() < 400 {
        return resp;
    }
    let is_scim = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with(SCIM_JSON));
    if is_scim {
        return resp;
    }
    let headers = resp.headers().clone();
    let text = resp
        .into_body()
        .into_bytes_limit(4096)
        .await
        .ok()
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| status.canonical_reason().unwrap_or("error").to_string());
    let mut out = scim_error(&ScimError::new(status.as_u16(), text));
    for name in [header::WWW_AUTHENTICATE, header::RETRY_AFTER, header::ALLOW] {
        if let Some(v) = headers.get(&name) {
            out.headers_mut().insert(name, v.clone());
        }
    }
    out
}

fn allow_header(allowed: &[&str]) -> HeaderValue {
    HeaderValue::from_str(&allowed.join(", ")).unwrap_or_else(|_| HeaderValue::from_static("GET"))
}

/// The outermost handler: see the module docs.
pub async fn edge<E: Endpoint>(
    ep: Arc<E>,
    mut req: Request,
    app: Arc<App>,
) -> poem::Result<Response> {
    let started = Instant::now();
    let rid = request_id(&req);
    rewrite_path(&mut req);
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let class = classify(&path);
    req.extensions_mut()
        .insert(super::api::RequestId(rid.clone()));
    let span = tracing::info_span!("request", request_id = %rid, method = %method, path = %path);
    async move {
        let mut resp = handle(ep, req, &app, class.as_ref()).await;
        if let Some(c) = &class
            && resp.status() == StatusCode::METHOD_NOT_ALLOWED
        {
            resp.headers_mut()
                .insert(header::ALLOW, allow_header(c.allowed));
        }
        if let Ok(v) = HeaderValue::from_str(&rid) {
            resp.headers_mut().insert(REQUEST_ID, v);
        }
        let status = resp.status().as_u16();
        let elapsed = started.elapsed();
        let (source, endpoint) = match &class {
            Some(c) if app.source(&c.source).is_some() => (c.source.clone(), c.endpoint),
            Some(_) => ("unknown".to_string(), "unknown"),
            None => ("-".to_string(), other_endpoint(&path)),
        };
        m::record_request(&source, endpoint, method.as_str(), status, elapsed);
        if class.is_some() && (status == 500 || status == 503) {
            m::record_backend_error(&source, status);
        }
        tracing::info!(
            status,
            latency_ms = elapsed.as_secs_f64() * 1000.0,
            "request handled"
        );
        Ok(resp)
    }
    .instrument(span)
    .await
}

fn other_endpoint(path: &str) -> &'static str {
    match path {
        "/healthz" => "healthz",
        "/readyz" => "readyz",
        "/metrics" => "metrics",
        "/openapi.json" => "openapi",
        p if p == "/docs" || p.starts_with("/docs/") => "docs",
        _ => "other",
    }
}

async fn handle<E: Endpoint>(
    ep: Arc<E>,
    mut req: Request,
    app: &App,
    class: Option<&Classified>,
) -> Response {
    if let Some(c) = class {
        if req.method() == Method::OPTIONS {
            return Response::builder()
                .status(StatusCode::NO_CONTENT)
                .header(header::ALLOW, allow_header(c.allowed))
                .finish();
        }
        let limit = if c.endpoint == "Bulk" {
            app.config.bulk.max_payload_size
        } else {
            app.config.server.max_body_bytes
        };
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let too_large = || {
            let what = if c.endpoint == "Bulk" {
                "maxPayloadSize"
            } else {
                "server.max_body_bytes"
            };
            scim_error(&ScimError::new(
                413,
                format!("The request body exceeds {limit} bytes ({what})"),
            ))
        };
        if declared.is_some_and(|n| n > limit) {
            return too_large();
        }
        let limit_usize = usize::try_from(limit).unwrap_or(usize::MAX);
        match req.take_body().into_bytes_limit(limit_usize).await {
            Ok(bytes) => req.set_body(Body::from_bytes(bytes)),
            Err(poem::error::ReadBodyError::PayloadTooLarge) => return too_large(),
            Err(e) => {
                return scim_error(&ScimError::invalid_syntax(format!(
                    "the request body could not be read: {e}"
                )));
            }
        }
    }
    let timeout = Duration::from_secs(app.config.server.request_timeout_secs);
    let resp = match tokio::time::timeout(timeout, ep.call(req)).await {
        Err(_) => {
            tracing::warn!("request timed out");
            return scim_error(&ScimError {
                status: 503,
                scim_type: None,
                detail: format!(
                    "The request did not complete within {} seconds",
                    timeout.as_secs()
                ),
                retry_after: Some(5),
            });
        }
        Ok(Ok(r)) => r.into_response(),
        Ok(Err(e)) => from_poem_error(e),
    };
    ensure_scim_error(resp).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{BackendConfig, Config, MemoryConfig};
    use poem::EndpointExt;

    #[tokio::test]
    async fn a_request_over_the_timeout_is_503_scim_error_with_retry_after() {
        let mut config = Config {
            backend: BackendConfig::Memory(MemoryConfig {}),
            ..Config::default()
        };
        config.server.request_timeout_secs = 1;
        let app = App::build_with_state(
            config,
            std::path::Path::new("."),
            Arc::new(scimd_core::state::MemoryStateStore::default()),
        )
        .await
        .unwrap();
        let slow = poem::endpoint::make(|_| async {
            tokio::time::sleep(Duration::from_secs(3)).await;
            "late"
        })
        .map_to_response();
        let req = Request::builder()
            .uri(Uri::from_static("/scim/default/v2/Users"))
            .finish();
        let resp = edge(Arc::new(slow), req, app).await.unwrap();
        assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(resp.headers().get(header::RETRY_AFTER).unwrap(), "5");
        let body = resp
            .into_body()
            .into_json::<serde_json::Value>()
            .await
            .unwrap();
        assert_eq!(body["status"], "503");
    }

    #[test]
    fn classifies_every_scim_endpoint() {
        let c = classify("/scim/a/v2/Users/123").unwrap();
        assert_eq!((c.source.as_str(), c.endpoint), ("a", "Users/{id}"));
        assert_eq!(
            classify("/scim/a/v2/Users/.search").unwrap().endpoint,
            "Users/.search"
        );
        assert_eq!(classify("/scim/a/v2/.search").unwrap().endpoint, ".search");
        assert_eq!(
            classify("/scim/a/v2/Schemas/urn:ietf:params:scim:schemas:core:2.0:User")
                .unwrap()
                .endpoint,
            "Schemas/{id}"
        );
        assert!(classify("/scim/a/v2/Widgets").is_none());
        assert!(classify("/scim/a/v1/Users").is_none());
        assert!(classify("/healthz").is_none());
    }
}
