//! RTMP for Rill: the sans-IO protocol core.
//!
//! No sockets, no async, no runtime: every piece is a state machine fed bytes
//! that returns events and bytes to send, so the plugin glue stays thin and
//! everything is testable with byte vectors.
//!
//! - [`handshake`]: C0/C1/C2 ↔ S0/S1/S2, simple and digest forms, both sides.
//! - [`chunk`]: the chunk stream reader and writer.
//! - [`amf0`]: AMF0 values.
//! - [`message`]: protocol control, user control, command and data messages.
//! - [`flv`]: FLV tag bodies ↔ media [`Frame`]s (classic and Enhanced RTMP).
//! - [`session`]: one server connection: [`Session`].
//! - [`limits`]: the resource bounds every parser honours.
//! - [`config`]: the `plugins.rtmp` section.
//! - [`outbox`]: outbound flow control (backpressure, catching up at keyframes).
//! - [`plugin`]: the glue that makes this crate the host's `rtmp` plugin
//!   (through the SDK's `export_plugin!`; the only place with `unsafe`,
//!   inside that macro).

#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod chunk;
pub mod config;
pub mod error;
#[doc(hidden)]
pub mod fuzzing;
pub mod handshake;
pub mod limits;
pub mod message;
pub mod outbox;
#[allow(unsafe_code)]
pub mod plugin;
pub mod session;

pub use error::Error;
pub use limits::Limits;
pub use rill_flv::{amf0, tag as flv, Frame};
pub use session::{serialize_frame, ChunkParams, ConnectInfo, Event, Session, Settings};
