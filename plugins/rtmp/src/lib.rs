//! Rill's RTMP plugin: the glue between the sans-IO protocol core in
//! [`rill_rtmp`] (handshake, chunk stream, messages, the server session) and
//! the host's ABI.
//!
//! - [`config`]: the `plugins.rtmp` section.
//! - [`outbox`]: outbound flow control against the host's write queue
//!   (backpressure, catching up at keyframes).
//! - [`plugin`]: the glue that makes this crate the host's `rtmp` plugin
//!   (through the SDK's `export_plugin!`; the only place with `unsafe`,
//!   inside that macro).

#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod config;
pub mod outbox;
#[allow(unsafe_code)]
pub mod plugin;
