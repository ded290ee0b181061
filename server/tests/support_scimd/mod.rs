//! scimd servers for end-to-end tests, and the clients that speak to them over HTTP.
//!
//! [`LocalServer`] (in `local.rs`) serves a configuration inside the test's process on
//! `127.0.0.1:0`. [`Scimd`] runs the real `scimd` binary as a child process, for tests that
//! need processes (several replicas on one database, `kill -9` and restart, the shipped
//! configuration files): it starts `scimd serve`, reads the URLs and any first-start tokens it
//! prints, writes its logs to a file (shown when a start fails) and kills the process when
//! dropped, so a failing test never leaves a server behind. [`Api`] is a small SCIM client of
//! one source with one token. Every client answers with a [`Resp`].

#![allow(dead_code, unused_imports, clippy::unwrap_used, clippy::expect_used)]

mod local;

pub use local::{ERROR, LocalServer, Resp};

use reqwest::Method;
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The User core schema URN.
pub const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
/// The Group core schema URN.
pub const GROUP: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
/// The enterprise User extension URN.
pub const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
/// The PatchOp message URN.
pub const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
/// The ListResponse message URN.
pub const LIST: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
/// The BulkRequest message URN.
pub const BULK_REQ: &str = "urn:ietf:params:scim:api:messages:2.0:BulkRequest";

/// A directory under the system temporary directory, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    /// A new, empty directory whose name starts with `prefix`.
    pub fn new(prefix: &str) -> TempDir {
        static SEQ: AtomicUsize = AtomicUsize::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let dir = std::env::temp_dir().join(format!(
            "{prefix}-{}-{nanos}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A `scimd` command with the test environment's `SCIMD_*` variables removed (they would
/// override the configuration under test) and the working directory set.
fn command(dir: &Path, config: Option<&Path>, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_scimd"));
    cmd.args(args).current_dir(dir).stdin(Stdio::null());
    if let Some(c) = config {
        cmd.arg("--config").arg(c);
    }
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("SCIMD_") {
            cmd.env_remove(k);
        }
    }
    cmd
}

/// A running `scimd serve`, killed (SIGKILL) and reaped on drop.
pub struct Scimd {
    child: std::process::Child,
    /// The base URL of each source by slug, e.g. `http://127.0.0.1:41234/scim/default/v2`.
    pub bases: BTreeMap<String, String>,
    /// The tokens printed on this start, by source slug (none for a source whose database
    /// already had one).
    pub tokens: BTreeMap<String, String>,
    log: PathBuf,
}

impl Scimd {
    /// Starts `scimd serve --listen 127.0.0.1:0` in `dir` (with `--config config` when given),
    /// which must serve a source `default`. Panics, showing the end of its log, when it exits
    /// at start.
    pub fn serve(dir: &Path, config: Option<&Path>) -> Scimd {
        let me = Scimd::start(dir, config, "127.0.0.1:0", &[])
            .unwrap_or_else(|tail| panic!("scimd exited at start:\n{tail}"));
        assert!(
            me.bases.contains_key("default"),
            "scimd printed no URL for source \"default\":\n{}",
            me.log_tail()
        );
        me
    }

    /// Starts `scimd serve --listen <listen>` in `dir` (with `--config config` when given and
    /// `env` added to the environment) and waits until it has printed where it serves and the
    /// tokens of this start. `Err` with the end of its log when it exits at start (say, because
    /// the port is taken); panics when it prints nothing within 30 seconds.
    pub fn start(
        dir: &Path,
        config: Option<&Path>,
        listen: &str,
        env: &[(String, String)],
    ) -> Result<Scimd, String> {
        static SEQ: AtomicUsize = AtomicUsize::new(0);
        let log = dir.join(format!("scimd-{}.log", SEQ.fetch_add(1, Ordering::Relaxed)));
        let mut child = command(dir, config, &["serve", "--listen", listen])
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        // Drains stdout for the life of the process, so it never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut me = Scimd {
            child,
            bases: BTreeMap::new(),
            tokens: BTreeMap::new(),
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut saw_docs = false;
        let mut token_for: Option<String> = None;
        // The lines are written in one flush after the listener is bound: a URL per source,
        // the documentation line, then on a first start a token per source (a heading, then
        // the secret). A short quiet period after the documentation line means no more tokens.
        while !(saw_docs && me.tokens.len() == me.bases.len()) {
            let wait = if saw_docs {
                Duration::from_millis(300)
            } else {
                Duration::from_millis(200)
            };
            match rx.recv_timeout(wait) {
                Ok(line) => {
                    if let Some(slug) = token_for.take() {
                        me.tokens.insert(slug, line.trim().to_string());
                    } else if let Some(rest) = line.strip_prefix("scimd: source \"") {
                        if let Some((slug, url)) = rest.split_once("\" is served at ") {
                            me.bases.insert(slug.to_string(), url.trim().to_string());
                        }
                    } else if line.starts_with("scimd: API documentation") {
                        saw_docs = true;
                    } else if let Some(rest) =
                        line.strip_prefix("scimd: bearer token for source \"")
                    {
                        token_for = rest.split_once('"').map(|(slug, _)| slug.to_string());
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) if saw_docs => break,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if let Ok(Some(status)) = me.child.try_wait() {
                        return Err(format!("({status})\n{}", me.log_tail()));
                    }
                    if Instant::now() > deadline {
                        panic!("scimd did not start in 30 s:\n{}", me.log_tail());
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let _ = me.child.wait();
                    return Err(format!("(output closed)\n{}", me.log_tail()));
                }
            }
        }
        Ok(me)
    }

    /// The base URL of source `default`.
    pub fn base(&self) -> &str {
        &self.bases["default"]
    }

    /// The token of source `default` printed on this start.
    pub fn token(&self) -> Option<&str> {
        self.tokens.get("default").map(String::as_str)
    }

    /// A client of `source` with the token printed on this start.
    pub fn api(&self, source: &str) -> Api {
        let token = self
            .tokens
            .get(source)
            .unwrap_or_else(|| panic!("scimd printed no token for source {source:?}"));
        Api::new(&self.bases[source], token)
    }

    /// Kills the process with SIGKILL (no shutdown code runs) and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Everything the process logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The last lines the process logged.
    pub fn log_tail(&self) -> String {
        let text = self.log();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

impl Drop for Scimd {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Runs a `scimd` command to completion.
pub fn run(dir: &Path, config: Option<&Path>, args: &[&str]) -> std::process::Output {
    command(dir, config, args).output().unwrap()
}

/// Runs `scimd token create --source <source> --name <name>` and returns the secret (printed
/// alone on the last line).
pub fn create_token(dir: &Path, config: Option<&Path>, source: &str, name: &str) -> String {
    let out = command(
        dir,
        config,
        &["token", "create", "--source", source, "--name", name],
    )
    .output()
    .unwrap();
    assert!(
        out.status.success(),
        "scimd token create failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let secret = stdout.lines().last().unwrap_or_default().trim().to_string();
    assert!(secret.starts_with("scimd_"), "no token printed: {stdout}");
    secret
}

/// A SCIM client of one source, with one bearer token.
#[derive(Clone)]
pub struct Api {
    client: reqwest::Client,
    base: String,
    token: String,
}

impl Api {
    /// A client of `base` (a source's base URL) with `token`.
    pub fn new(base: &str, token: &str) -> Api {
        Api {
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
            base: base.trim_end_matches('/').to_string(),
            token: token.to_string(),
        }
    }

    /// Sends a request to `path` (relative to the base); transport errors are returned, not
    /// panicked on (a killed server refuses or drops connections).
    pub async fn try_send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        if_match: Option<&str>,
    ) -> Result<Resp, reqwest::Error> {
        let mut rb = self
            .client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            rb = rb
                .header("content-type", "application/scim+json")
                .body(serde_json::to_vec(b).unwrap());
        }
        if let Some(m) = if_match {
            rb = rb.header("if-match", m);
        }
        Resp::read(rb.send().await?).await
    }

    /// Sends a request; panics on a transport error.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        if_match: Option<&str>,
    ) -> Resp {
        self.try_send(method.clone(), path, body, if_match)
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> Resp {
        self.send(Method::GET, path, None, None).await
    }

    /// `POST path` with a JSON body.
    pub async fn post(&self, path: &str, body: &Value) -> Resp {
        self.send(Method::POST, path, Some(body), None).await
    }

    /// `PATCH path` with a PatchOp, optionally with `If-Match`.
    pub async fn patch(&self, path: &str, body: &Value, if_match: Option<&str>) -> Resp {
        self.send(Method::PATCH, path, Some(body), if_match).await
    }

    /// `PUT path`, optionally with `If-Match`.
    pub async fn put(&self, path: &str, body: &Value, if_match: Option<&str>) -> Resp {
        self.send(Method::PUT, path, Some(body), if_match).await
    }
}
