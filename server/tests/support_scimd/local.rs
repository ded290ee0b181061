//! A scimd server inside the test's own process on `127.0.0.1:0`, and the response type every
//! end-to-end client here answers with.
//!
//! [`LocalServer::start`] builds the [`App`] of a configuration with an in-memory state store
//! and serves it until the value is dropped. [`LocalServer::on`] sends a request to a source
//! with its first-start token, [`LocalServer::send`] any request; both answer a [`Resp`]:
//! status, headers and the JSON body. This file stands alone, so that the tests of another
//! crate can include it with `#[path]`; the rest of `support_scimd` runs the real binary.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use reqwest::Method;
use reqwest::header::HeaderMap;
use scimd_core::state::{MemoryStateStore, StateStore};
use scimd_server::App;
use scimd_server::config::Config;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The Error message URN.
pub const ERROR: &str = "urn:ietf:params:scim:api:messages:2.0:Error";

/// A server serving on `127.0.0.1:0` in this process until dropped.
pub struct LocalServer {
    /// Scheme, host and port, e.g. `http://127.0.0.1:41234`.
    pub origin: String,
    /// The initial token of each source that had none when the server started, by slug.
    pub tokens: HashMap<String, String>,
    /// The app's state store (tokens, cursor keys, outbox).
    pub state: Arc<dyn StateStore>,
    client: reqwest::Client,
    stop: oneshot::Sender<()>,
    task: JoinHandle<std::io::Result<()>>,
}

impl LocalServer {
    /// Serves `config` with an in-memory state store.
    pub async fn start(config: Config) -> LocalServer {
        let state = Arc::new(MemoryStateStore::default());
        let app = App::build_with_state(config, Path::new("."), state)
            .await
            .unwrap();
        LocalServer::serve(app).await
    }

    /// Serves an app built by the caller (say, two replicas of one configuration), first
    /// creating the initial token of every source that has none.
    pub async fn serve(app: Arc<App>) -> LocalServer {
        let state = app.state.clone();
        let tokens = app
            .ensure_initial_tokens()
            .await
            .unwrap()
            .into_iter()
            .map(|(slug, secret)| (slug, secret.expose().to_string()))
            .collect();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(scimd_server::serve(app, listener, async {
            let _ = rx.await;
        }));
        LocalServer {
            origin: format!("http://{addr}"),
            tokens,
            state,
            client: reqwest::Client::new(),
            stop: tx,
            task,
        }
    }

    /// Shuts the server down as a signal would: it stops accepting connections, lets the
    /// requests in flight finish and ends, which this waits for (10 seconds at most). Dropping
    /// the server only starts the shutdown.
    pub async fn stop(self) {
        let LocalServer {
            client, stop, task, ..
        } = self;
        // Its idle connections would hold the shutdown up.
        drop(client);
        let _ = stop.send(());
        tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .expect("the server ends within 10 s of its shutdown")
            .unwrap()
            .unwrap();
    }

    /// The base URL of `source`.
    pub fn base(&self, source: &str) -> String {
        format!("{}/scim/{source}/v2", self.origin)
    }

    /// The Prometheus text of `/metrics`.
    pub async fn metrics(&self) -> String {
        let r = self
            .client
            .get(format!("{}/metrics", self.origin))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "GET /metrics: {}", r.status());
        r.text().await.unwrap()
    }

    /// Any request: `url` is absolute, `token` goes in `Authorization`, `headers` and `body` are
    /// sent as they are. Panics on a transport error.
    pub async fn send(
        &self,
        method: Method,
        url: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Resp {
        let mut rb = self.client.request(method, url);
        if let Some(t) = token {
            rb = rb.bearer_auth(t);
        }
        for (k, v) in headers {
            rb = rb.header(*k, *v);
        }
        if let Some(b) = body {
            rb = rb.body(b);
        }
        Resp::read(rb.send().await.unwrap()).await.unwrap()
    }

    /// [`LocalServer::on`] without further headers.
    pub async fn call(
        &self,
        source: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Resp {
        self.on(source, method, path, body, &[]).await
    }

    /// A request to `source` with its initial token; `path` is relative to the source's base
    /// URL and may carry a query. A body goes as `application/scim+json` unless `headers` name
    /// another content type.
    pub async fn on(
        &self,
        source: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Resp {
        let mut h: Vec<(&str, &str)> = headers.to_vec();
        if body.is_some()
            && !h
                .iter()
                .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
        {
            h.push(("content-type", "application/scim+json"));
        }
        self.send(
            method,
            &format!("{}{path}", self.base(source)),
            Some(&self.tokens[source]),
            &h,
            body.map(|b| serde_json::to_vec(&b).unwrap()),
        )
        .await
    }
}

/// A response: status, headers and JSON body.
#[derive(Debug)]
pub struct Resp {
    /// The HTTP status.
    pub status: u16,
    /// The headers.
    pub headers: HeaderMap,
    /// The body: `Null` when empty, a string when it is not JSON.
    pub body: Value,
}

impl Resp {
    /// Reads a whole response.
    pub async fn read(r: reqwest::Response) -> Result<Resp, reqwest::Error> {
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let bytes = r.bytes().await?;
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        Ok(Resp {
            status,
            headers,
            body,
        })
    }

    /// A header's value, when it is text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The `ETag` header.
    pub fn etag(&self) -> Option<&str> {
        self.header("etag")
    }

    /// The version of the ETag `W/"<version>"`; panics when there is none.
    pub fn version(&self) -> u64 {
        let etag = self
            .etag()
            .unwrap_or_else(|| panic!("no ETag on a {} response: {}", self.status, self.body));
        etag.strip_prefix("W/\"")
            .and_then(|s| s.strip_suffix('"'))
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("not a scimd ETag: {etag}"))
    }

    /// Asserts the response is a SCIM Error with this status (as a string) and SCIM media type.
    pub fn assert_scim_error(&self, status: u16) {
        assert_eq!(self.status, status, "body: {}", self.body);
        assert_eq!(self.body["schemas"], json!([ERROR]), "{}", self.body);
        assert_eq!(
            self.body["status"],
            json!(status.to_string()),
            "{}",
            self.body
        );
        assert!(
            self.header("content-type")
                .is_some_and(|c| c.starts_with("application/scim+json")),
            "content-type {:?}",
            self.header("content-type")
        );
    }
}
