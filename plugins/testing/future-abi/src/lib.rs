//! A library that claims a scimd plugin ABI version no scimd speaks yet, as a plugin built
//! against a future `scimd-plugin-api` would. The host must refuse it at start-up after reading
//! only the version; its entry point would abort the process if it were ever called.

#![deny(unsafe_code)]

/// The ABI version this library claims.
pub const CLAIMED_ABI_VERSION: u32 = 999;

/// The version handshake symbol, as every plugin exports it.
#[allow(unsafe_code)]
#[unsafe(no_mangle)]
pub extern "C" fn scimd_plugin_abi_version() -> u32 {
    CLAIMED_ABI_VERSION
}

/// The entry symbol: a host that checks the version first never gets here.
#[allow(unsafe_code)]
#[unsafe(no_mangle)]
pub extern "C" fn scimd_plugin_entry() -> *const u8 {
    std::process::abort()
}
