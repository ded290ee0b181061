//! Okta's SCIM 2.0 SPEC test (its Runscope export and runner, in the folder named by
//! `SCIMD_CONFORMANCE_DIR`), for end-to-end tests that run it against a served source.
//!
//! [`runner`] finds the suite before a test starts a server: where the suite or python3 is not
//! available the test is skipped, saying so — except under `CI=true`, where that fails it.
//! [`run`] runs the suite against one source and asserts that all 19 steps pass.

#![allow(clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// The steps of the suite (Okta's 2016 export and its 2024 additions).
pub const STEPS: usize = 19;

/// The runner script, or `None` (after saying why) when the suite cannot run here. Panics
/// under `CI=true` instead of returning `None`.
pub fn runner() -> Option<PathBuf> {
    let in_ci = std::env::var("CI").is_ok_and(|v| v == "true");
    let Some(suite) = std::env::var_os("SCIMD_CONFORMANCE_DIR") else {
        assert!(!in_ci, "CI=true but SCIMD_CONFORMANCE_DIR is not set");
        eprintln!("skipped: SCIMD_CONFORMANCE_DIR is not set");
        return None;
    };
    let runner = Path::new(&suite).join("okta_runscope_runner.py");
    if !runner.is_file() {
        assert!(!in_ci, "CI=true but {} does not exist", runner.display());
        eprintln!("skipped: {} not found", runner.display());
        return None;
    }
    if Command::new("python3").arg("--version").output().is_err() {
        assert!(!in_ci, "CI=true but python3 is not installed");
        eprintln!("skipped: python3 is not installed");
        return None;
    }
    Some(runner)
}

/// Runs the suite against the source served at `base` with `token` (blocking; call it from
/// `spawn_blocking` in async tests), asserts that every step passed and returns its output.
/// `args` go to the runner as they are (e.g. `--no-cleanup`).
pub fn run(runner: &Path, base: &str, token: &str, args: &[&str]) -> String {
    let out = Command::new("python3")
        .arg(runner)
        .arg(base)
        .arg(token)
        .arg("--no-timing")
        .args(args)
        .output()
        .expect("run python3");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        stdout.contains(&format!("okta-spec: {STEPS} passed, 0 failed")),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("Okta SPEC test against {base}: all {STEPS} steps passed");
    stdout
}
