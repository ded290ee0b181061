//! A lean HTTP/1.1 client for one SCIM base URL: each [`Conn`] owns one keep-alive connection
//! and sends one request at a time, so a worker costs one socket and no pool bookkeeping.
//!
//! hyper is used directly rather than through a pooled client: on a small machine the load
//! generator shares the CPU with the server it measures, and every microsecond it spends per
//! request is a microsecond the server does not get.

use anyhow::{Context, anyhow, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HOST, HeaderValue, USER_AGENT};
use hyper::{Method, Request, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{ClientConfig, RootCertStore};

/// The SCIM media type, sent as `Accept` and as the `Content-Type` of every body.
pub const SCIM_JSON: &str = "application/scim+json";

/// The SCIM service under test: where it is and how to authenticate. Cheap to clone.
#[derive(Clone)]
pub struct Target {
    inner: Arc<TargetInner>,
}

struct TargetInner {
    base_url: String,
    host: String,
    port: u16,
    authority: HeaderValue,
    base_path: String,
    auth: HeaderValue,
    tls: Option<(TlsConnector, ServerName<'static>)>,
    timeout: Duration,
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Target")
            .field("base_url", &self.inner.base_url)
            .field("token", &"<redacted>")
            .field("timeout", &self.inner.timeout)
            .finish()
    }
}

impl Target {
    /// A target from a SCIM base URL (`http://127.0.0.1:8080/scim/default/v2`), a bearer token
    /// and the time one request (connect included) may take. `ca_cert` is a PEM file of extra
    /// trusted roots for `https` targets with a private CA; the web PKI roots are always trusted.
    pub fn new(
        url: &str,
        token: &str,
        timeout: Duration,
        ca_cert: Option<&Path>,
    ) -> anyhow::Result<Target> {
        let base_url = url.trim_end_matches('/').to_string();
        let uri: Uri = base_url
            .parse()
            .with_context(|| format!("{url:?} is not a URL"))?;
        let https = match uri.scheme_str() {
            Some("http") => false,
            Some("https") => true,
            _ => bail!("the URL must start with http:// or https://: {url}"),
        };
        let authority = uri
            .authority()
            .ok_or_else(|| anyhow!("the URL has no host: {url}"))?;
        if uri.query().is_some() {
            bail!("the base URL must not have a query: {url}");
        }
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let port = authority.port_u16().unwrap_or(if https { 443 } else { 80 });
        let tls = if https {
            let name = ServerName::try_from(host.clone())
                .with_context(|| format!("{host:?} is not a TLS server name"))?;
            Some((tls_connector(ca_cert)?, name))
        } else {
            None
        };
        let mut auth = HeaderValue::from_str(&format!("Bearer {token}"))
            .context("the token has characters a header cannot carry")?;
        auth.set_sensitive(true);
        Ok(Target {
            inner: Arc::new(TargetInner {
                authority: HeaderValue::from_str(authority.as_str())
                    .context("the URL's host cannot be a Host header")?,
                base_path: uri.path().trim_end_matches('/').to_string(),
                base_url,
                host,
                port,
                auth,
                tls,
                timeout,
            }),
        })
    }

    /// The base URL, without trailing slash.
    pub fn base_url(&self) -> &str {
        &self.inner.base_url
    }

    /// A connection handle; the socket is opened by the first request.
    pub fn conn(&self) -> Conn {
        Conn {
            target: self.clone(),
            sender: None,
        }
    }

    async fn connect(&self) -> anyhow::Result<SendRequest<Full<Bytes>>> {
        let t = &self.inner;
        let tcp = TcpStream::connect((t.host.as_str(), t.port))
            .await
            .with_context(|| format!("cannot connect to {}:{}", t.host, t.port))?;
        // Requests are small and latency is what is measured: never wait for Nagle.
        tcp.set_nodelay(true)?;
        match &t.tls {
            None => handshake(tcp).await,
            Some((connector, name)) => {
                let tls = connector
                    .connect(name.clone(), tcp)
                    .await
                    .with_context(|| format!("TLS handshake with {} failed", t.host))?;
                handshake(tls).await
            }
        }
    }
}

fn tls_connector(ca_cert: Option<&Path>) -> anyhow::Result<TlsConnector> {
    let mut roots = RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = ca_cert {
        let certs = CertificateDer::pem_file_iter(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        for cert in certs {
            let cert = cert.with_context(|| format!("bad PEM in {}", path.display()))?;
            roots
                .add(cert)
                .with_context(|| format!("unusable certificate in {}", path.display()))?;
        }
    }
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsConnector::from(Arc::new(config)))
}

async fn handshake<I>(io: I) -> anyhow::Result<SendRequest<Full<Bytes>>>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (sender, conn) = http1::handshake(TokioIo::new(io)).await?;
    // The connection task ends when the sender is dropped or the server closes the socket.
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

/// A response: status and the whole body.
#[derive(Debug, Clone)]
pub struct Reply {
    /// The HTTP status.
    pub status: StatusCode,
    /// The body, read to the end.
    pub body: Bytes,
}

impl Reply {
    /// The body parsed as JSON.
    pub fn json(&self) -> anyhow::Result<serde_json::Value> {
        serde_json::from_slice(&self.body).with_context(|| {
            format!(
                "the {} response is not JSON: {}",
                self.status,
                snippet(&self.body, 200)
            )
        })
    }

    /// A one-line description for error reports: status and the start of the body.
    pub fn describe(&self, max: usize) -> String {
        format!("{} {}", self.status.as_u16(), snippet(&self.body, max))
    }
}

/// The first `max` characters of a body, on one line.
pub fn snippet(body: &[u8], max: usize) -> String {
    let text = String::from_utf8_lossy(body);
    let mut out: String = text
        .chars()
        .take(max)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if text.chars().nth(max).is_some() {
        out.push('…');
    }
    out
}

/// One keep-alive connection to the target, used by one worker for one request at a time.
/// It reconnects when the server closed it.
pub struct Conn {
    target: Target,
    sender: Option<SendRequest<Full<Bytes>>>,
}

impl fmt::Debug for Conn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Conn")
            .field("target", &self.target)
            .field("connected", &self.sender.is_some())
            .finish()
    }
}

impl Conn {
    /// Sends `method` to `path` (relative to the base URL, with its query, e.g.
    /// `/Users?filter=...`) with an optional JSON body and reads the whole response.
    ///
    /// Errors are transport errors (connect, reset, timeout); any HTTP status is a [`Reply`].
    /// After an error the connection is dropped and the next request opens a new one.
    pub async fn send(
        &mut self,
        method: Method,
        path: &str,
        body: Option<Bytes>,
    ) -> anyhow::Result<Reply> {
        let timeout = self.target.inner.timeout;
        match tokio::time::timeout(timeout, self.send_inner(method, path, body)).await {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(e)) => {
                self.sender = None;
                Err(e)
            }
            Err(_) => {
                self.sender = None;
                Err(anyhow!("no response within {timeout:?}"))
            }
        }
    }

    /// Opens the connection now (if it is not open), so that the first request's latency is
    /// not the connection's.
    pub async fn connect(&mut self) -> anyhow::Result<()> {
        let timeout = self.target.inner.timeout;
        match tokio::time::timeout(timeout, self.ready_sender()).await {
            Ok(r) => r.map(|_| ()),
            Err(_) => Err(anyhow!("no connection within {timeout:?}")),
        }
    }

    /// A GET that must answer 2xx with JSON.
    pub async fn get_json(&mut self, path: &str) -> anyhow::Result<serde_json::Value> {
        let reply = self.send(Method::GET, path, None).await?;
        if !reply.status.is_success() {
            bail!("GET {path}: {}", reply.describe(500));
        }
        reply.json()
    }

    async fn send_inner(
        &mut self,
        method: Method,
        path: &str,
        body: Option<Bytes>,
    ) -> anyhow::Result<Reply> {
        let t = &self.target.inner;
        let has_body = body.is_some();
        let mut req = Request::builder()
            .method(method)
            .uri(format!("{}{path}", t.base_path))
            .body(Full::new(body.unwrap_or_default()))
            .context("cannot build the request")?;
        let headers = req.headers_mut();
        headers.insert(HOST, t.authority.clone());
        headers.insert(AUTHORIZATION, t.auth.clone());
        headers.insert(ACCEPT, HeaderValue::from_static(SCIM_JSON));
        headers.insert(USER_AGENT, HeaderValue::from_static("scimd-bench"));
        if has_body {
            headers.insert(CONTENT_TYPE, HeaderValue::from_static(SCIM_JSON));
        }
        let sender = self.ready_sender().await?;
        let resp = sender.send_request(req).await?;
        let status = resp.status();
        let body = resp.into_body().collect().await?.to_bytes();
        Ok(Reply { status, body })
    }

    /// A sender ready for a request. Nothing has been written when a stale connection is
    /// found here, so reconnecting cannot send a request twice.
    async fn ready_sender(&mut self) -> anyhow::Result<&mut SendRequest<Full<Bytes>>> {
        let usable = match self.sender.as_mut() {
            Some(s) if !s.is_closed() => s.ready().await.is_ok(),
            _ => false,
        };
        if !usable {
            self.sender = None;
            let mut fresh = self.target.connect().await?;
            fresh.ready().await?;
            self.sender = Some(fresh);
        }
        self.sender.as_mut().ok_or_else(|| anyhow!("no connection"))
    }
}

/// Percent-encodes a query parameter value (RFC 3986 unreserved characters stay as they are).
pub fn encode_query(value: &str) -> String {
    let mut out = String::with_capacity(value.len() * 3 / 2);
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_percent_encoded_except_unreserved() {
        assert_eq!(
            encode_query(r#"userName eq "a.b@x.org""#),
            "userName%20eq%20%22a.b%40x.org%22"
        );
        assert_eq!(encode_query("Ab-9._~"), "Ab-9._~");
        assert_eq!(encode_query("é"), "%C3%A9");
    }

    #[test]
    fn targets_split_the_base_url_and_hide_the_token() {
        let t = Target::new(
            "http://127.0.0.1:8080/scim/default/v2/",
            "secret-token",
            Duration::from_secs(1),
            None,
        )
        .unwrap();
        assert_eq!(t.base_url(), "http://127.0.0.1:8080/scim/default/v2");
        assert_eq!(t.inner.base_path, "/scim/default/v2");
        assert_eq!(t.inner.port, 8080);
        assert!(!format!("{t:?}").contains("secret-token"));
        let v6 = Target::new("http://[::1]/scim", "t", Duration::from_secs(1), None).unwrap();
        assert_eq!((v6.inner.host.as_str(), v6.inner.port), ("::1", 80));
        assert!(Target::new("ftp://h/x", "t", Duration::from_secs(1), None).is_err());
        assert!(Target::new("http://h/x?a=b", "t", Duration::from_secs(1), None).is_err());
    }

    #[test]
    fn snippets_are_one_bounded_line() {
        assert_eq!(snippet(b"a\nb", 10), "a b");
        assert_eq!(snippet(b"abcdef", 3), "abc…");
    }
}
