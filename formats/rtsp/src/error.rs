//! The one error type of the RTSP core. Details are `&'static str` so that
//! errors cost no allocation.

use std::fmt;

/// Everything that can go wrong while parsing or producing RTSP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The bytes are not valid for the named structure.
    Malformed(&'static str),
    /// The request line and headers exceed `Limits::max_head` (bytes).
    HeadTooLarge(usize),
    /// More header lines than `Limits::max_headers`.
    TooManyHeaders(usize),
    /// A Content-Length above `Limits::max_body`.
    BodyTooLarge {
        /// Announced length.
        len: usize,
        /// Configured maximum.
        max: usize,
    },
    /// An interleaved frame longer than `Limits::max_interleaved`.
    InterleavedTooLarge(usize),
    /// Valid but not supported here.
    Unsupported(&'static str),
    /// The peer did something that makes no sense in this state.
    Protocol(&'static str),
    /// The caller used the API wrongly (answered a request that is not
    /// pending, ...).
    InvalidState(&'static str),
    /// Too many requests arrived while one awaits the caller's answer.
    QueueFull,
    /// The session failed or was closed.
    Closed,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Malformed(w) => write!(f, "malformed {w}"),
            Error::HeadTooLarge(max) => write!(f, "request line and headers exceed {max} bytes"),
            Error::TooManyHeaders(max) => write!(f, "more than {max} headers"),
            Error::BodyTooLarge { len, max } => {
                write!(f, "body of {len} bytes exceeds the limit of {max}")
            }
            Error::InterleavedTooLarge(len) => write!(f, "interleaved frame of {len} bytes"),
            Error::Unsupported(w) => write!(f, "unsupported: {w}"),
            Error::Protocol(w) => write!(f, "protocol violation: {w}"),
            Error::InvalidState(w) => write!(f, "invalid state: {w}"),
            Error::QueueFull => write!(f, "too many requests queued"),
            Error::Closed => write!(f, "session closed"),
        }
    }
}

impl std::error::Error for Error {}
