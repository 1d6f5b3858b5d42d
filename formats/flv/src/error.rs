//! Errors of the FLV and AMF0 parsers.

use std::fmt;

/// What went wrong reading or writing FLV or AMF0. Details are static
/// strings, so a malformed tag on a hot path costs no allocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// Input ended inside a structure that the caller said was complete.
    Truncated(&'static str),
    /// The bytes are not valid for the named structure.
    Malformed(&'static str),
    /// Valid but not supported (multitrack, AMF3, ...).
    Unsupported(&'static str),
    /// AMF0 nesting deeper than the caller's limit.
    AmfTooDeep,
    /// An AMF0 body decodes to more items than allowed (the number given):
    /// the caller's limit or the input-length bound, whichever is lower.
    AmfTooManyValues(usize),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Truncated(what) => write!(f, "truncated {what}"),
            Error::Malformed(what) => write!(f, "malformed {what}"),
            Error::Unsupported(what) => write!(f, "unsupported: {what}"),
            Error::AmfTooDeep => write!(f, "AMF0 value nested too deeply"),
            Error::AmfTooManyValues(max) => {
                write!(f, "AMF0 body decodes to more than {max} values")
            }
        }
    }
}

impl std::error::Error for Error {}
