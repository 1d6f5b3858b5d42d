//! The one error type of the HTTP client. Details are `&'static str`, so an
//! error costs no allocation.

use std::fmt;

/// Everything that can go wrong writing a request or reading a response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The bytes are not valid for the named structure.
    Malformed(&'static str),
    /// The status line and headers exceed `Limits::max_head` (bytes), or
    /// the chunked trailer section does.
    HeadTooLarge(usize),
    /// More header (or trailer) lines than `Limits::max_headers`.
    TooManyHeaders(usize),
    /// A chunk-size line longer than `Limits::max_chunk_line` (bytes).
    ChunkLineTooLong(usize),
    /// The body is, or announces itself, longer than `Limits::max_body`.
    BodyTooLarge {
        /// The length announced (Content-Length, or the chunk sizes so
        /// far), or `max + 1` for a body delimited by the close.
        len: u64,
        /// Configured maximum.
        max: u64,
    },
    /// The reader already held more than `Limits::max_buffered` bytes when
    /// more arrived: the caller feeds without draining `poll_event`.
    BufferFull(usize),
    /// The connection ended inside the named structure.
    Truncated(&'static str),
    /// Valid HTTP this client does not handle (a transfer coding other than
    /// chunked, a protocol switch).
    Unsupported(&'static str),
    /// A URL this client cannot request.
    InvalidUrl(&'static str),
    /// A request that cannot be written as asked.
    InvalidRequest(&'static str),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Malformed(w) => write!(f, "malformed {w}"),
            Error::HeadTooLarge(max) => write!(f, "response head exceeds {max} bytes"),
            Error::TooManyHeaders(max) => write!(f, "more than {max} header lines"),
            Error::ChunkLineTooLong(max) => write!(f, "chunk-size line exceeds {max} bytes"),
            Error::BodyTooLarge { len, max } => {
                write!(f, "body of {len} bytes exceeds the limit of {max}")
            }
            Error::BufferFull(max) => write!(
                f,
                "more than {max} bytes held unread: drain poll_event between feeds"
            ),
            Error::Truncated(w) => write!(f, "connection closed inside the {w}"),
            Error::Unsupported(w) => write!(f, "unsupported: {w}"),
            Error::InvalidUrl(w) => write!(f, "invalid URL: {w}"),
            Error::InvalidRequest(w) => write!(f, "invalid request: {w}"),
        }
    }
}

impl std::error::Error for Error {}
