//! RTMP for Rill: the sans-IO protocol core, shared by the RTMP plugin, the
//! load generator and the tests.
//!
//! No sockets, no async, no runtime, no clock: every piece is a state
//! machine fed bytes (and the time, where deadlines matter) that returns
//! events and bytes to send, so it is testable with byte vectors and a
//! simulated clock.
//!
//! - [`handshake`]: C0/C1/C2 ↔ S0/S1/S2, simple and digest forms, both sides.
//! - [`chunk`]: the chunk stream reader and writer.
//! - [`amf0`]: AMF0 values.
//! - [`message`]: protocol control, user control, command and data messages.
//! - [`flv`]: FLV tag bodies ↔ media [`Frame`]s (classic and Enhanced RTMP).
//! - [`session`]: one server connection: [`Session`].
//! - [`client`]: one client connection (publish, play): [`ClientSession`].
//! - [`limits`]: the resource bounds every parser honours.
//!
//! # Time
//!
//! The sessions never read a clock. Time is a [`Duration`](std::time::Duration)
//! since an epoch of the caller's choosing (the host's monotonic clock, a
//! test's simulated one), passed with every input; `poll_timeout` says when
//! the session next needs `handle_timeout`, as in quinn-proto and str0m.

#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod chunk;
pub mod client;
pub mod error;
#[doc(hidden)]
pub mod fuzzing;
pub mod handshake;
pub mod limits;
pub mod message;
pub mod session;
mod wire;

pub use client::{ClientEvent, ClientSession, ClientSettings, Connect, MediaMode, Request};
pub use error::Error;
pub use limits::Limits;
pub use rill_flv::{amf0, tag as flv, Frame};
pub use session::{serialize_frame, ChunkParams, ConnectInfo, Deadline, Event, Session, Settings};
