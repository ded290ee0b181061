//! The C ABI between scimd and a plugin library: the function table, the byte buffers and
//! the status codes, and the plugin-side glue that [`export_plugin!`](crate::export_plugin)
//! puts behind it.
//!
//! A plugin author never uses this module directly. The host (scimd's plugin loader) uses the
//! types to call a loaded library:
//!
//! 1. resolve `scimd_plugin_abi_version` and compare it with [`ABI_VERSION`](crate::ABI_VERSION)
//!    before touching anything else;
//! 2. resolve `scimd_plugin_entry`, call it, check [`PluginVTable::abi_version`] and
//!    [`PluginVTable::size`];
//! 3. `create` an instance per configured hook, then `call` it per phase.
//!
//! Every function returns a [`Status`] and writes its result into an [`OutBuffer`] the plugin
//! allocated; the host copies the bytes and hands the buffer back to `free`, even on errors.

#![allow(unsafe_code)]

use crate::{Call, Description, Plugin, dispatch};
use std::ffi::c_void;
use std::mem::ManuallyDrop;
use std::panic::{AssertUnwindSafe, catch_unwind};

/// The outcome of an exported function, as an `i32`.
pub type Status = i32;
/// Success: the buffer holds the JSON result.
pub const STATUS_OK: Status = 0;
/// The plugin reported an error: the buffer holds a UTF-8 message.
pub const STATUS_ERROR: Status = 1;
/// The plugin panicked (and the panic was caught): the buffer holds the panic message.
pub const STATUS_PANIC: Status = 2;

/// A byte buffer allocated by the plugin and owned by it: the host reads `len` bytes at `ptr`
/// and then passes the buffer, unchanged, to [`PluginVTable::free`]. An empty buffer has a
/// null `ptr`.
#[repr(C)]
#[derive(Debug)]
pub struct OutBuffer {
    /// The first byte, or null.
    pub ptr: *mut u8,
    /// The number of bytes.
    pub len: usize,
    /// The allocation's capacity (needed to free it).
    pub cap: usize,
}

impl OutBuffer {
    /// An empty buffer for the host to pass as an out-parameter.
    pub const fn empty() -> Self {
        OutBuffer {
            ptr: std::ptr::null_mut(),
            len: 0,
            cap: 0,
        }
    }

    fn from_vec(v: Vec<u8>) -> Self {
        let mut v = ManuallyDrop::new(v);
        OutBuffer {
            ptr: v.as_mut_ptr(),
            len: v.len(),
            cap: v.capacity(),
        }
    }
}

/// Describes the library: writes a JSON [`Description`] into `out`.
pub type DescribeFn = unsafe extern "C" fn(out: *mut OutBuffer) -> Status;
/// Creates an instance from `config_len` bytes of JSON configuration at `config`. On
/// [`STATUS_OK`] the instance handle is written to `instance` and `out` is empty; otherwise
/// `out` holds the error message.
pub type CreateFn = unsafe extern "C" fn(
    config: *const u8,
    config_len: usize,
    instance: *mut *const c_void,
    out: *mut OutBuffer,
) -> Status;
/// Runs one phase: `request_len` bytes of a JSON [`Call`] at `request`; on [`STATUS_OK`],
/// `out` holds a JSON [`Reply`](crate::Reply).
pub type CallFn = unsafe extern "C" fn(
    instance: *const c_void,
    request: *const u8,
    request_len: usize,
    out: *mut OutBuffer,
) -> Status;
/// Releases a buffer the plugin allocated.
pub type FreeFn = unsafe extern "C" fn(buffer: OutBuffer);

/// The function table a plugin library exports through `scimd_plugin_entry`.
#[repr(C)]
#[derive(Debug)]
pub struct PluginVTable {
    /// The ABI version again (a second guard against mismatched symbols).
    pub abi_version: u32,
    /// `size_of::<PluginVTable>()` in the plugin, so that a host can detect a shorter table.
    pub size: usize,
    /// See [`DescribeFn`].
    pub describe: DescribeFn,
    /// See [`CreateFn`].
    pub create: CreateFn,
    /// See [`CallFn`].
    pub call: CallFn,
    /// See [`FreeFn`].
    pub free: FreeFn,
}

/// The function table for plugin type `P`; used by [`export_plugin!`](crate::export_plugin).
pub const fn vtable<P: Plugin>() -> PluginVTable {
    PluginVTable {
        abi_version: crate::ABI_VERSION,
        size: std::mem::size_of::<PluginVTable>(),
        describe: describe::<P>,
        create: create::<P>,
        call: call::<P>,
        free,
    }
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        format!("plugin panicked: {s}")
    } else if let Some(s) = payload.downcast_ref::<String>() {
        format!("plugin panicked: {s}")
    } else {
        "plugin panicked".to_string()
    }
}

/// Runs `f` with panics caught, writes its bytes into `out` and returns the status.
///
/// # Safety
/// `out` must be null or valid for a write of one `OutBuffer`.
unsafe fn respond(out: *mut OutBuffer, f: impl FnOnce() -> Result<Vec<u8>, String>) -> Status {
    let (status, bytes) = match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(bytes)) => (STATUS_OK, bytes),
        Ok(Err(message)) => (STATUS_ERROR, message.into_bytes()),
        Err(payload) => {
            let message = panic_message(&*payload);
            // Dropping a panic payload can itself panic; leak it rather than risk unwinding
            // into the host.
            std::mem::forget(payload);
            (STATUS_PANIC, message.into_bytes())
        }
    };
    if !out.is_null() {
        // SAFETY: the caller guarantees `out` is valid for writes; `write` does not drop the
        // (uninitialized or empty) previous value.
        unsafe { out.write(OutBuffer::from_vec(bytes)) };
    }
    status
}

/// # Safety
/// `ptr` must be null (then `len` is ignored) or valid for reads of `len` bytes for the call.
unsafe fn borrowed<'a>(ptr: *const u8, len: usize) -> &'a [u8] {
    if ptr.is_null() || len == 0 {
        &[]
    } else {
        // SAFETY: the host guarantees `ptr..ptr+len` is readable and unchanged for the call.
        unsafe { std::slice::from_raw_parts(ptr, len) }
    }
}

unsafe extern "C" fn describe<P: Plugin>(out: *mut OutBuffer) -> Status {
    let f = || {
        let d = Description {
            name: P::NAME.to_string(),
            version: P::VERSION.to_string(),
            phases: P::PHASES.to_vec(),
        };
        serde_json::to_vec(&d).map_err(|e| e.to_string())
    };
    // SAFETY: the host passes a valid out-pointer (contract of `DescribeFn`).
    unsafe { respond(out, f) }
}

unsafe extern "C" fn create<P: Plugin>(
    config: *const u8,
    config_len: usize,
    instance: *mut *const c_void,
    out: *mut OutBuffer,
) -> Status {
    // SAFETY: contract of `CreateFn`: `config` is readable for `config_len` bytes.
    let bytes = unsafe { borrowed(config, config_len) };
    let mut handle: *const c_void = std::ptr::null();
    let f = || {
        let value = if bytes.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_slice(bytes).map_err(|e| format!("invalid configuration: {e}"))?
        };
        let plugin = P::new(value)?;
        // Instances are never destroyed: the host keeps them until the process exits.
        handle = Box::into_raw(Box::new(plugin)) as *const c_void;
        Ok(Vec::new())
    };
    // SAFETY: contract of `CreateFn`: `out` is valid for writes.
    let status = unsafe { respond(out, f) };
    if status == STATUS_OK && !instance.is_null() {
        // SAFETY: contract of `CreateFn`: `instance` is valid for writes.
        unsafe { instance.write(handle) };
    }
    status
}

unsafe extern "C" fn call<P: Plugin>(
    instance: *const c_void,
    request: *const u8,
    request_len: usize,
    out: *mut OutBuffer,
) -> Status {
    // SAFETY: contract of `CallFn`: `request` is readable for `request_len` bytes.
    let bytes = unsafe { borrowed(request, request_len) };
    let f = || {
        if instance.is_null() {
            return Err("no plugin instance".to_string());
        }
        // SAFETY: `instance` came from `create::<P>` of this same table (the host keeps each
        // handle with the table that made it) and is never freed; `P: Sync` allows shared
        // access from several threads.
        let plugin = unsafe { &*(instance as *const P) };
        let call: Call =
            serde_json::from_slice(bytes).map_err(|e| format!("invalid call message: {e}"))?;
        let reply = dispatch(plugin, call)?;
        serde_json::to_vec(&reply).map_err(|e| e.to_string())
    };
    // SAFETY: contract of `CallFn`: `out` is valid for writes.
    unsafe { respond(out, f) }
}

unsafe extern "C" fn free(buffer: OutBuffer) {
    if buffer.ptr.is_null() {
        return;
    }
    // SAFETY: the buffer was made by `OutBuffer::from_vec` in this library (same allocator)
    // and the host hands each buffer back exactly once, unchanged.
    drop(unsafe { Vec::from_raw_parts(buffer.ptr, buffer.len, buffer.cap) });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Context, Denial, Phase, Reply, Resource};
    use serde_json::{Map, Value, json};

    struct Boom;

    impl Plugin for Boom {
        const NAME: &'static str = "boom";
        const PHASES: &'static [Phase] = &[Phase::Map];

        fn new(config: Value) -> Result<Self, String> {
            if config.get("fail").is_some() {
                return Err("refusing this configuration".into());
            }
            Ok(Boom)
        }

        fn map(
            &self,
            _: &Context,
            _: Option<&Resource>,
            resource: &mut Map<String, Value>,
        ) -> Result<(), Denial> {
            if resource.contains_key("panic") {
                panic!("asked to panic");
            }
            resource.insert("mapped".into(), json!(true));
            Ok(())
        }
    }

    static TABLE: PluginVTable = vtable::<Boom>();

    /// Reads and frees a buffer the way the host does.
    fn take(buf: OutBuffer) -> String {
        // SAFETY (test): the buffer came from the table's functions just now.
        let s = String::from_utf8_lossy(unsafe { borrowed(buf.ptr, buf.len) }).into_owned();
        // SAFETY (test): handed back once, unchanged.
        unsafe { (TABLE.free)(buf) };
        s
    }

    fn new_instance(config: &[u8]) -> Result<*const c_void, String> {
        let mut out = OutBuffer::empty();
        let mut handle = std::ptr::null();
        // SAFETY (test): valid pointers for the duration of the call.
        let st = unsafe { (TABLE.create)(config.as_ptr(), config.len(), &mut handle, &mut out) };
        let msg = take(out);
        if st == STATUS_OK {
            Ok(handle)
        } else {
            Err(msg)
        }
    }

    fn run(handle: *const c_void, call: Value) -> (Status, String) {
        let bytes = serde_json::to_vec(&call).unwrap();
        let mut out = OutBuffer::empty();
        // SAFETY (test): valid pointers for the duration of the call.
        let st = unsafe { (TABLE.call)(handle, bytes.as_ptr(), bytes.len(), &mut out) };
        (st, take(out))
    }

    fn map_call(resource: Value) -> Value {
        json!({
            "phase": "map",
            "context": {"source": "s", "resourceType": "User", "operation": "create"},
            "resource": resource,
        })
    }

    #[test]
    fn describe_reports_name_and_phases() {
        let mut out = OutBuffer::empty();
        // SAFETY (test): valid out-pointer.
        let st = unsafe { (TABLE.describe)(&mut out) };
        assert_eq!(st, STATUS_OK);
        let d: Description = serde_json::from_str(&take(out)).unwrap();
        assert_eq!(d.name, "boom");
        assert_eq!(d.phases, [Phase::Map]);
        assert_eq!(TABLE.abi_version, crate::ABI_VERSION);
    }

    #[test]
    fn a_call_round_trips_json_through_plugin_owned_buffers() {
        let h = new_instance(b"{}").unwrap();
        let (st, body) = run(h, map_call(json!({"userName": "a"})));
        assert_eq!(st, STATUS_OK);
        let reply: Reply = serde_json::from_str(&body).unwrap();
        let Reply::Continue {
            resource: Some(out),
        } = reply
        else {
            panic!("{body}")
        };
        assert_eq!(out["mapped"], true);
    }

    #[test]
    fn a_panic_inside_the_plugin_becomes_a_panic_status() {
        let h = new_instance(b"").unwrap();
        let (st, body) = run(h, map_call(json!({"panic": 1})));
        assert_eq!(st, STATUS_PANIC);
        assert!(body.contains("asked to panic"), "{body}");
    }

    #[test]
    fn configuration_and_message_errors_are_error_statuses() {
        let e = new_instance(br#"{"fail": true}"#).unwrap_err();
        assert_eq!(e, "refusing this configuration");
        let e = new_instance(b"{not json").unwrap_err();
        assert!(e.starts_with("invalid configuration"), "{e}");
        let h = new_instance(b"null").unwrap();
        let (st, body) = run(h, json!({"phase": "nonsense"}));
        assert_eq!(st, STATUS_ERROR);
        assert!(body.starts_with("invalid call message"), "{body}");
    }
}
