//! Errors of the RTP, RTCP and SDP code.

use std::fmt;

/// What went wrong reading or writing RTP, RTCP or SDP. Details are static
/// strings, so a malformed packet on a hot path costs no allocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// Input ended inside a structure that should have been complete.
    Truncated(&'static str),
    /// The bytes are not valid for the named structure.
    Malformed(&'static str),
    /// Valid but not supported by this implementation (STAP-B, MTAP, PACI,
    /// interleaved AAC, ...).
    Unsupported(&'static str),
    /// A frame or packet needs decoder configuration its track does not
    /// have (AAC without an AudioSpecificConfig, H.264 without SPS/PPS).
    MissingConfig(&'static str),
    /// Something grew past a limit: its size and the limit.
    TooLarge {
        /// Size (bytes or items) reached.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// More items of the named kind than a limit allows.
    TooMany(&'static str),
    /// Packets were lost (a sequence number gap): this many. The frame in
    /// progress was dropped.
    Lost(u32),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Truncated(what) => write!(f, "truncated {what}"),
            Error::Malformed(what) => write!(f, "malformed {what}"),
            Error::Unsupported(what) => write!(f, "unsupported: {what}"),
            Error::MissingConfig(what) => write!(f, "missing decoder configuration: {what}"),
            Error::TooLarge { len, max } => write!(f, "{len} past the limit of {max}"),
            Error::TooMany(what) => write!(f, "too many {what}"),
            Error::Lost(n) => write!(f, "{n} packets lost"),
        }
    }
}

impl std::error::Error for Error {}

impl From<rill_ts::Error> for Error {
    fn from(e: rill_ts::Error) -> Self {
        match e {
            rill_ts::Error::Truncated(w) => Error::Truncated(w),
            rill_ts::Error::Malformed(w) => Error::Malformed(w),
            rill_ts::Error::Unsupported(w) => Error::Unsupported(w),
            rill_ts::Error::MissingConfig(w) => Error::MissingConfig(w),
            rill_ts::Error::TooLarge { len, max } => Error::TooLarge { len, max },
            rill_ts::Error::TooManyParameterSets(_) => Error::TooMany("parameter sets"),
            _ => Error::Malformed("decoder configuration"),
        }
    }
}
