//! Test support: builds a plugin crate of this workspace with cargo and returns the path of
//! the library, so end-to-end tests load real plugins through the real loader.
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
