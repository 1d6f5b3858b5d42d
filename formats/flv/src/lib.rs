//! FLV and AMF0 for Rill's plugins: FLV tag bodies (classic and Enhanced
//! RTMP) to the host's frame model and back, the FLV stream framing (written
//! by [`stream`], read by [`reader`]), and AMF0. Shared by the RTMP,
//! HTTP-FLV and relay plugins; no I/O.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod amf0;
pub mod error;
#[doc(hidden)]
pub mod fuzzing;
pub mod publish;
pub mod reader;
pub mod stream;
pub mod tag;

pub use error::Error;
pub use reader::{Reader, ReaderLimits, Tag};
pub use tag::Frame;
