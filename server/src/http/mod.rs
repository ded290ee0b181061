//! The HTTP surface: the SCIM API (poem-openapi), `/openapi.json`, `/docs`, `/healthz`,
//! `/readyz`, `/metrics`, and the edge middleware around all of it.

pub mod api;
pub mod discovery;
pub mod middleware;
pub mod openapi;
pub mod payload;

use crate::app::App;
use payload::Reply;
use poem::endpoint::make_sync;
use poem::http::StatusCode;
use poem::listener::TcpAcceptor;
use poem::web::Html;
use poem::{Endpoint, EndpointExt, IntoResponse, Response, Route, Server, get, handler};
use scimd_core::ScimError;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// The whole application as one endpoint.
pub fn endpoint(app: Arc<App>) -> impl Endpoint<Output = Response> {
    let doc = openapi::document(&app);
    let doc_text = serde_json::to_string_pretty(&doc).unwrap_or_default();
    let docs_html = openapi::swagger_html(&doc);
    let metrics = crate::metrics::handle();
    let ready_app = app.clone();
    let edge_app = app.clone();
    Route::new()
        .nest_no_strip("/scim", openapi::service())
        .at(
            "/openapi.json",
            get(make_sync(move |_| {
                Response::builder()
                    .content_type("application/json")
                    .body(doc_text.clone())
            })),
        )
        .at(
            "/docs",
            get(make_sync(move |_| Html(docs_html.clone()).into_response())),
        )
        .at("/healthz", get(healthz))
        .at(
            "/readyz",
            get(poem::endpoint::make(move |_| {
                let app = ready_app.clone();
                async move {
                    match app.ready().await {
                        Ok(()) => Response::builder()
                            .content_type("application/json")
                            .body(r#"{"status":"ready"}"#),
                        Err(e) => {
                            tracing::warn!(error = %e, "not ready");
                            Reply::error(&ScimError {
                                status: 503,
                                scim_type: None,
                                detail: format!("Not ready: {e}"),
                                retry_after: Some(5),
                            })
                            .into_response()
                        }
                    }
                }
            })),
        )
        .at(
            "/metrics",
            get(make_sync(move |_| match metrics {
                Some(h) => Response::builder()
                    .content_type("text/plain; version=0.0.4")
                    .body(h.render()),
                None => Response::builder()
                    .status(StatusCode::SERVICE_UNAVAILABLE)
                    .body("metrics recorder unavailable"),
            })),
        )
        .data(app)
        .around(move |ep, req| middleware::edge(ep, req, edge_app.clone()))
}

#[handler]
fn healthz() -> Response {
    Response::builder()
        .content_type("application/json")
        .body(r#"{"status":"ok"}"#)
}

/// Serves `app` on `listener` until `shutdown` completes, then lets in-flight requests finish
/// for up to `server.shutdown_timeout_secs`.
pub async fn serve(
    app: Arc<App>,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let grace = Duration::from_secs(app.config.server.shutdown_timeout_secs);
    let acceptor = TcpAcceptor::from_tokio(listener)?;
    Server::new_with_acceptor(acceptor)
        .run_with_graceful_shutdown(endpoint(app), shutdown, Some(grace))
        .await
}
