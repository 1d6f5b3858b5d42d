//! Errors of the muxer, the codec configuration parsers and the box reader.

use std::fmt;

/// What went wrong. Details are static strings, so a malformed input on a
/// hot path costs no allocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// Input ended inside a structure that should be complete.
    Truncated(&'static str),
    /// The bytes are not valid for the named structure.
    Malformed(&'static str),
    /// Valid but not supported (a codec without an MP4 mapping, a box
    /// version this crate does not read, ...).
    Unsupported(&'static str),
    /// A limit was reached (too many tracks, samples, boxes, nesting ...).
    Limit(&'static str),
    /// A timestamp the muxer cannot represent: negative, or decode time
    /// going backwards within a track.
    Timestamp(&'static str),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Truncated(what) => write!(f, "truncated {what}"),
            Error::Malformed(what) => write!(f, "malformed {what}"),
            Error::Unsupported(what) => write!(f, "unsupported: {what}"),
            Error::Limit(what) => write!(f, "limit reached: {what}"),
            Error::Timestamp(what) => write!(f, "bad timestamp: {what}"),
        }
    }
}

impl std::error::Error for Error {}
