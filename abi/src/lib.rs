//! Rill's plugin ABI, version 1.
//!
//! This crate holds the ABI and only the ABI: `repr(C)` types, function-pointer
//! tables and constants. `include/rill.h` is generated from it by cbindgen.

pub mod media;
pub use media::*;
