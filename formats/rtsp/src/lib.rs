//! RTSP 1.0 for Rill (RFC 2326, as ffmpeg, GStreamer, VLC and IP cameras
//! speak it): the sans-IO protocol core shared by the RTSP plugin, the load
//! generator and the tests. RTP, RTCP and SDP live in `rill-rtp`: this
//! crate hands SDP text through and frames RTP/RTCP packets on the
//! connection, nothing more.
//!
//! - [`message`]: requests, responses and interleaved frames, read
//!   incrementally with bounds ([`Reader`]) and written.
//! - [`transport`]: Transport, Range, RTP-Info, Session and Public headers.
//! - [`auth`]: Basic and Digest (MD5) credentials and challenges.
//! - [`server`]: one server connection: [`ServerSession`].
//! - [`client`]: one client connection (play, publish): [`ClientSession`].
//! - [`limits`]: the bounds every parser honours.
//!
//! The message parser is this crate's own rather than `rtsp-types`': that
//! one re-parses a partial message from its start on every read and bounds
//! neither the header count nor the head size, while a server must stop a
//! peer at 8 KiB and 64 headers and read at TCP's pace.
//!
//! # A server connection
//!
//! ```
//! use rill_rtsp::{Event, Limits, ServerSession, Settings};
//!
//! let mut s = ServerSession::new(Limits::default(), Settings::default(), 0);
//! s.feed(0, b"DESCRIBE rtsp://h:8554/live/cam RTSP/1.0\r\nCSeq: 2\r\n\r\n")?;
//! while let Some(ev) = s.poll_event() {
//!     if let Event::Describe { request, path, .. } = ev {
//!         assert_eq!(path, "live/cam");
//!         // Now, or later (admission, a stream not yet published); or
//!         // s.reject(request, 404).
//!         s.answer_describe(request, "v=0\r\n")?;
//!     }
//! }
//! let reply = s.poll_transmit().unwrap();
//! assert!(reply.starts_with(b"RTSP/1.0 200 OK\r\nCSeq: 2\r\n"));
//! # Ok::<(), rill_rtsp::Error>(())
//! ```
//!
//! # Time
//!
//! Nothing here reads a clock: time is µs since an epoch of the caller's
//! choosing, passed with every input; `poll_timeout` says when
//! `handle_timeout` is due.

#![deny(unsafe_code)]

pub mod auth;
pub mod client;
pub mod error;
#[doc(hidden)]
pub mod fuzzing;
pub mod limits;
pub mod message;
pub mod server;
pub mod transport;

pub use auth::{Challenge, Credentials};
pub use client::{ClientEvent, ClientSession, ClientSettings, SetupTrack};
pub use error::Error;
pub use limits::Limits;
pub use message::{
    interleaved_header, put_interleaved_header, write_interleaved, Item, Method, Reader, Request,
    Response,
};
pub use server::{EndReason, Event, RequestId, ServerSession, Settings, SetupAnswer, TrackStart};
pub use transport::{Lower, Mode, NptStart, Range, RtpInfo, SessionHeader, Transport};
