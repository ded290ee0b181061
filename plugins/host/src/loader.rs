//! Loading plugin libraries and calling them through the C ABI of
//! [`scimd_plugin_api::ffi`]. This module holds all of the host's `unsafe`.
//!
//! Order of trust, as the ABI prescribes: open the library, read `scimd_plugin_abi_version`
//! and compare it with ours *before anything else*; only then take the entry symbol, check the
//! table's own version and size, and ask the library to describe itself. A library is loaded at
//! most once per process and never unloaded: unloading a Rust `cdylib` with live thread-locals
//! or instances is undefined behaviour, and plugin instances live as long as the process.

#![allow(unsafe_code)]

use scimd_plugin_api::ffi::{OutBuffer, PluginVTable, STATUS_ERROR, STATUS_OK, STATUS_PANIC};
use scimd_plugin_api::{ABI_VERSION, ABI_VERSION_SYMBOL, Description, ENTRY_SYMBOL};
use std::collections::HashMap;
use std::ffi::c_void;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Why a plugin library could not be loaded. Every message names the file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoadError {
    /// The file could not be opened as a shared library.
    #[error("cannot open plugin library {path}: {message}")]
    Open {
        /// The library file.
        path: PathBuf,
        /// The dynamic loader's message.
        message: String,
    },
    /// A required symbol is missing: not a scimd plugin.
    #[error("{path} is not a scimd plugin: it exports no `{symbol}`")]
    MissingSymbol {
        /// The library file.
        path: PathBuf,
        /// The missing symbol.
        symbol: &'static str,
    },
    /// The plugin was built for another ABI version.
    #[error(
        "plugin library {path} was built for scimd plugin ABI version {plugin}, but this scimd speaks version {host}; rebuild the plugin against scimd-plugin-api {api}"
    )]
    AbiMismatch {
        /// The library file.
        path: PathBuf,
        /// The version the library reports.
        plugin: u32,
        /// The host's version.
        host: u32,
        /// The host's API crate version (what to rebuild against).
        api: &'static str,
    },
    /// The function table is missing or inconsistent.
    #[error("plugin library {path} returned an invalid function table: {message}")]
    BadTable {
        /// The library file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// Why one call into a plugin failed (not a deliberate denial: a fault).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// The plugin returned an error.
    #[error("plugin error: {0}")]
    Plugin(String),
    /// The plugin panicked; the panic was caught inside the plugin.
    #[error("{0}")]
    Panicked(String),
    /// The plugin returned a status this host does not know.
    #[error("plugin returned unknown status {0}")]
    UnknownStatus(i32),
}

/// A loaded plugin library. Lives until the process exits.
pub struct PluginLibrary {
    path: PathBuf,
    table: &'static PluginVTable,
    description: Description,
}

impl fmt::Debug for PluginLibrary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PluginLibrary")
            .field("path", &self.path)
            .field("description", &self.description)
            .finish_non_exhaustive()
    }
}

/// An instance created by a library's `create`, bound to the table that made it.
#[derive(Clone)]
pub struct PluginInstance {
    library: Arc<PluginLibrary>,
    handle: Handle,
}

impl fmt::Debug for PluginInstance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PluginInstance")
            .field("library", &self.library.path)
            .finish_non_exhaustive()
    }
}

#[derive(Clone, Copy)]
struct Handle(*const c_void);

// SAFETY: a handle is an opaque pointer to a plugin instance that is never freed. The plugin
// API requires `Plugin: Send + Sync`, so the instance may be used from any thread, concurrently.
unsafe impl Send for Handle {}
// SAFETY: as above; the host only passes the pointer back to the library's `call`.
unsafe impl Sync for Handle {}

/// Libraries loaded so far, by canonical path: loading the same file twice (two hooks using one
/// plugin with different configurations) yields the same library.
fn registry() -> &'static Mutex<HashMap<PathBuf, Arc<PluginLibrary>>> {
    static LOADED: std::sync::OnceLock<Mutex<HashMap<PathBuf, Arc<PluginLibrary>>>> =
        std::sync::OnceLock::new();
    LOADED.get_or_init(Mutex::default)
}

impl PluginLibrary {
    /// Loads (or returns the already loaded) plugin library at `path`.
    pub fn load(path: &Path) -> Result<Arc<PluginLibrary>, LoadError> {
        let canonical = path.canonicalize().map_err(|e| LoadError::Open {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        let mut loaded = registry().lock().unwrap_or_else(|e| e.into_inner());
        if let Some(lib) = loaded.get(&canonical) {
            return Ok(lib.clone());
        }
        let lib = Arc::new(Self::open(&canonical)?);
        loaded.insert(canonical, lib.clone());
        Ok(lib)
    }

    fn open(path: &Path) -> Result<PluginLibrary, LoadError> {
        let open_err = |message: String| LoadError::Open {
            path: path.to_path_buf(),
            message,
        };
        // SAFETY: loading a library runs its initializers. That is the point of a plugin: the
        // operator listed this file in the configuration and trusts it like the scimd binary.
        let library =
            unsafe { libloading::Library::new(path) }.map_err(|e| open_err(e.to_string()))?;
        // Never unloaded (see the module docs): the library lives as long as the process.
        let library: &'static libloading::Library = Box::leak(Box::new(library));

        // SAFETY: the symbol is declared by the ABI as `extern "C" fn() -> u32`; a library that
        // exports it under another type is not a scimd plugin and is outside the contract.
        let version =
            unsafe { library.get::<extern "C" fn() -> u32>(ABI_VERSION_SYMBOL.as_bytes()) }
                .map_err(|_| LoadError::MissingSymbol {
                    path: path.to_path_buf(),
                    symbol: ABI_VERSION_SYMBOL,
                })?;
        let plugin_version = version();
        if plugin_version != ABI_VERSION {
            return Err(LoadError::AbiMismatch {
                path: path.to_path_buf(),
                plugin: plugin_version,
                host: ABI_VERSION,
                api: env!("CARGO_PKG_VERSION"),
            });
        }

        // SAFETY: with the ABI version matching, the entry symbol has the type the ABI defines.
        let entry = unsafe {
            library.get::<extern "C" fn() -> *const PluginVTable>(ENTRY_SYMBOL.as_bytes())
        }
        .map_err(|_| LoadError::MissingSymbol {
            path: path.to_path_buf(),
            symbol: ENTRY_SYMBOL,
        })?;
        let table_ptr = entry();
        let bad = |message: &str| LoadError::BadTable {
            path: path.to_path_buf(),
            message: message.to_string(),
        };
        if table_ptr.is_null() {
            return Err(bad("the entry returned null"));
        }
        // SAFETY: the ABI (version checked above) defines the entry as returning a pointer to a
        // `static` table in the library, which stays valid because the library is never
        // unloaded.
        let table: &'static PluginVTable = unsafe { &*table_ptr };
        if table.abi_version != ABI_VERSION {
            return Err(bad(&format!(
                "the table claims ABI version {} after the library reported {ABI_VERSION}",
                table.abi_version
            )));
        }
        if table.size < std::mem::size_of::<PluginVTable>() {
            return Err(bad(&format!(
                "the table has {} bytes, expected at least {}",
                table.size,
                std::mem::size_of::<PluginVTable>()
            )));
        }
        let mut lib = PluginLibrary {
            path: path.to_path_buf(),
            table,
            description: Description {
                name: String::new(),
                version: String::new(),
                phases: Vec::new(),
            },
        };
        let mut out = OutBuffer::empty();
        // SAFETY: `describe` takes a valid out-pointer, which `out` is for the call.
        let status = unsafe { (table.describe)(&mut out) };
        let bytes = lib.take(out);
        let described = check_status(status, bytes).map_err(|e| bad(&e.to_string()))?;
        lib.description = serde_json::from_slice(&described)
            .map_err(|e| bad(&format!("describe answered invalid JSON: {e}")))?;
        Ok(lib)
    }

    /// Copies a plugin-owned buffer and hands it back to the plugin's `free`.
    fn take(&self, out: OutBuffer) -> Vec<u8> {
        let bytes = if out.ptr.is_null() || out.len == 0 {
            Vec::new()
        } else {
            // SAFETY: on return from any table function, `out` describes `len` initialized bytes
            // the plugin allocated and does not touch until it is freed.
            unsafe { std::slice::from_raw_parts(out.ptr, out.len) }.to_vec()
        };
        // SAFETY: the buffer came from this library's functions and is freed exactly once, by
        // the library's own `free` (its allocator).
        unsafe { (self.table.free)(out) };
        bytes
    }

    /// The library file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What the library says about itself.
    pub fn description(&self) -> &Description {
        &self.description
    }

    /// Creates an instance from a JSON configuration. The error is the plugin's message.
    pub fn instantiate(
        self: &Arc<Self>,
        config: &serde_json::Value,
    ) -> Result<PluginInstance, String> {
        let bytes = serde_json::to_vec(config).map_err(|e| e.to_string())?;
        let mut out = OutBuffer::empty();
        let mut handle: *const c_void = std::ptr::null();
        // SAFETY: `bytes` is readable for its length during the call; `handle` and `out` are
        // valid out-pointers.
        let status =
            unsafe { (self.table.create)(bytes.as_ptr(), bytes.len(), &mut handle, &mut out) };
        let message = self.take(out);
        check_status(status, message).map_err(|e| e.to_string())?;
        if handle.is_null() {
            return Err("the plugin created no instance".into());
        }
        Ok(PluginInstance {
            library: self.clone(),
            handle: Handle(handle),
        })
    }
}

fn check_status(status: i32, bytes: Vec<u8>) -> Result<Vec<u8>, CallError> {
    match status {
        STATUS_OK => Ok(bytes),
        STATUS_ERROR => Err(CallError::Plugin(
            String::from_utf8_lossy(&bytes).into_owned(),
        )),
        STATUS_PANIC => Err(CallError::Panicked(
            String::from_utf8_lossy(&bytes).into_owned(),
        )),
        other => Err(CallError::UnknownStatus(other)),
    }
}

impl PluginInstance {
    /// The library the instance belongs to.
    pub fn library(&self) -> &Arc<PluginLibrary> {
        &self.library
    }

    /// Calls the instance with one JSON message, blocking the calling thread until the plugin
    /// returns. Run it on a blocking thread.
    pub fn call(&self, request: &[u8]) -> Result<Vec<u8>, CallError> {
        let lib = &self.library;
        let mut out = OutBuffer::empty();
        // SAFETY: the handle came from this library's `create` and is never freed; `request` is
        // readable for its length during the call; `out` is a valid out-pointer.
        let status =
            unsafe { (lib.table.call)(self.handle.0, request.as_ptr(), request.len(), &mut out) };
        let bytes = lib.take(out);
        check_status(status, bytes)
    }
}
