//! Test support: builds a plugin crate of this workspace with cargo and returns the path of
//! the library, so end-to-end tests load real plugins through the real loader; and a minimal
//! HTTP receiver for event delivery tests ([`Receiver`]).
//!
//! The workspace's test command (`cargo test --workspace`) does not produce `cdylib` files for
//! integration tests to use, so tests ask cargo for them. Cargo releases its build lock while
//! test binaries run; the nested build shares the target directory and is incremental.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};

/// Builds `package` (a `cdylib` member of the workspace) in the dev profile and returns the
/// library file. Results are cached per process; concurrent callers wait for one build.
pub fn cargo_build_library(package: &str) -> Result<PathBuf, String> {
    static BUILT: OnceLock<Mutex<HashMap<String, PathBuf>>> = OnceLock::new();
    let mut built = BUILT
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if let Some(p) = built.get(package) {
        return Ok(p.clone());
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .args([
            "build",
            "--quiet",
            "-p",
            package,
            "--message-format=json-render-diagnostics",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !output.status.success() {
        return Err(format!("cargo build -p {package} failed"));
    }
    let lib_name = package.replace('-', "_");
    let suffix = std::env::consts::DLL_SUFFIX;
    let path = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == lib_name.as_str())
        .flat_map(|m| {
            m["filenames"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .filter_map(|f| f.as_str().map(PathBuf::from))
        })
        .find(|f| f.to_string_lossy().ends_with(suffix))
        .ok_or_else(|| format!("cargo built no {suffix} library for {package}"))?;
    built.insert(package.to_string(), path.clone());
    Ok(path)
}

/// A minimal HTTP/1.1 endpoint on `127.0.0.1` that records every request body and answers
/// with scripted statuses (then 202): an RFC 8935 push receiver for event tests.
#[derive(Debug, Clone)]
pub struct Receiver {
    /// The URL to configure (`http://127.0.0.1:PORT/events`).
    pub url: String,
    state: std::sync::Arc<Mutex<ReceiverState>>,
}

#[derive(Debug, Default)]
struct ReceiverState {
    script: std::collections::VecDeque<u16>,
    received: Vec<Received>,
}

/// One request a [`Receiver`] got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// Header lines, lower-cased names.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: String,
    /// The status it was answered with.
    pub status: u16,
}

impl Receiver {
    /// Starts a receiver on a free port of the current tokio runtime; the first requests are
    /// answered with `script`, later ones with 202.
    pub async fn start(script: &[u16]) -> std::io::Result<Receiver> {
        Self::start_on("127.0.0.1:0", script).await
    }

    /// Like [`Receiver::start`] on a given address (to come back on the same port).
    pub async fn start_on(addr: &str, script: &[u16]) -> std::io::Result<Receiver> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let url = format!("http://{}/events", listener.local_addr()?);
        let state = std::sync::Arc::new(Mutex::new(ReceiverState {
            script: script.iter().copied().collect(),
            received: Vec::new(),
        }));
        let shared = state.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let shared = shared.clone();
                tokio::spawn(async move {
                    let _ = serve_one(stream, shared).await;
                });
            }
        });
        Ok(Receiver { url, state })
    }

    /// Everything received so far.
    pub fn received(&self) -> Vec<Received> {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .received
            .clone()
    }

    /// Waits until at least `n` requests were answered with 2xx, or `timeout` passed; returns
    /// the accepted bodies.
    pub async fn wait_accepted(&self, n: usize, timeout: std::time::Duration) -> Vec<String> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let accepted: Vec<String> = self
                .received()
                .into_iter()
                .filter(|r| (200..300).contains(&r.status))
                .map(|r| r.body)
                .collect();
            if accepted.len() >= n || tokio::time::Instant::now() >= deadline {
                return accepted;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
}

async fn serve_one(
    mut stream: tokio::net::TcpStream,
    state: std::sync::Arc<Mutex<ReceiverState>>,
) -> std::io::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let header_end = loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > 1 << 20 {
            return Ok(());
        }
    };
    let head = String::from_utf8_lossy(&buf[..header_end]).into_owned();
    let headers: Vec<(String, String)> = head
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let len: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0)
        .min(1 << 20);
    while buf.len() < header_end + len {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let end = buf.len().min(header_end + len);
    let body = String::from_utf8_lossy(&buf[header_end..end]).into_owned();
    let status = {
        let mut s = state.lock().unwrap_or_else(|e| e.into_inner());
        let status = s.script.pop_front().unwrap_or(202);
        s.received.push(Received {
            headers,
            body,
            status,
        });
        status
    };
    let reply = if status == 400 {
        r#"{"err":"invalid_request","description":"rejected by the test receiver"}"#
    } else {
        ""
    };
    let response = format!(
        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{reply}",
        reply.len()
    );
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}
