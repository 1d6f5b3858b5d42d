//! abi_stable's deep layout check for Rust plugins (feature `abi-check`).
//!
//! C plugins are checked by magic, major and `struct_size` only. A Rust
//! plugin built with this feature also exports an abi_stable root module
//! ([`RillRootModule`]) whose type layout reaches every ABI type (through the
//! entry point's descriptor, its callbacks and the host API table), so the
//! host can compare the plugin's view of the whole ABI with its own.
//!
//! Host side, for each private copy of a plugin file, after reading the
//! descriptor and only when its `abi_minor` equals the host's (abi_stable
//! demands exact equality; differing minors are handled by `struct_size`):
//!
//! ```ignore
//! match rill_abi::stable::check_layout(&private_copy) {
//!     Ok(Some(_root)) => {}          // Rust plugin, layout identical
//!     Ok(None) => {}                 // no root module: a C plugin
//!     Err(e) => refuse(e),           // layout mismatch: keep the old one
//! }
//! ```
//!
//! Never `RootModule::load_from_file`: it keeps one module per type per
//! process, so a second path (the next generation) would return the first
//! library.

use std::path::Path;

use abi_stable::library::{lib_header_from_path, LibraryError, RootModule};
use abi_stable::sabi_types::VersionStrings;
use abi_stable::{declare_root_module_statics, StableAbi};

use crate::plugin::RillPluginDescriptor;

/// The root module a Rust plugin exports (via `export_plugin!`).
#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = RillRootModuleRef)))]
#[sabi(missing_field(panic))]
pub struct RillRootModule {
    /// `RILL_ABI_MAJOR` the plugin was built with.
    pub abi_major: u16,
    /// `RILL_ABI_MINOR` the plugin was built with.
    pub abi_minor: u16,
    /// The plugin's `rill_plugin_entry_v1`.
    #[sabi(last_prefix_field)]
    pub entry:
        unsafe extern "C" fn(host_major: u32, host_minor: u32) -> *const RillPluginDescriptor,
}

impl RootModule for RillRootModuleRef {
    declare_root_module_statics! {RillRootModuleRef}
    const BASE_NAME: &'static str = "rill_plugin";
    const NAME: &'static str = "rill_plugin";
    /// The ABI version ("major.minor.0"), not the crate's.
    const VERSION_STRINGS: VersionStrings = VersionStrings::new(ROOT_MODULE_VERSION);
}

/// `RILL_ABI_MAJOR.RILL_ABI_MINOR.0` (a test keeps them in step).
pub const ROOT_MODULE_VERSION: &str = "1.8.0";

/// Checks the layout of the Rust plugin at `path` (host side): `Ok(None)`
/// when it exports no abi_stable root module (a C plugin, or a Rust plugin
/// built without `abi-check`), `Ok(Some(root))` when its whole ABI layout is
/// identical to this build's, `Err` with abi_stable's report otherwise.
///
/// `path` should be the host's private copy, already loaded: the library is
/// opened again (same handle) and never unloaded.
pub fn check_layout(path: &Path) -> Result<Option<RillRootModuleRef>, LibraryError> {
    let header = match lib_header_from_path(path) {
        Ok(h) => h,
        Err(LibraryError::GetSymbolError { .. }) => return Ok(None),
        Err(e) => return Err(e),
    };
    header.init_root_module::<RillRootModuleRef>().map(Some)
}

/// Builds the root module value (used by `export_plugin!`).
#[doc(hidden)]
pub fn root_module(
    entry: unsafe extern "C" fn(u32, u32) -> *const RillPluginDescriptor,
) -> RillRootModuleRef {
    use abi_stable::prefix_type::PrefixTypeTrait;
    RillRootModule {
        abi_major: crate::RILL_ABI_MAJOR,
        abi_minor: crate::RILL_ABI_MINOR,
        entry,
    }
    .leak_into_prefix()
}

#[cfg(test)]
mod tests {
    #[test]
    fn root_module_version_tracks_abi() {
        assert_eq!(
            super::ROOT_MODULE_VERSION,
            format!("{}.{}.0", crate::RILL_ABI_MAJOR, crate::RILL_ABI_MINOR)
        );
    }

    /// `export_plugin!` hardcodes the symbol abi_stable looks up.
    #[test]
    fn loader_symbol_name() {
        assert_eq!(
            abi_stable::library::ROOT_MODULE_LOADER_NAME,
            "_1as_0lib_1header_0root_bmodule_bloader"
        );
    }
}
