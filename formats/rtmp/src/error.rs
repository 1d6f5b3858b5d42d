//! The one error type of the RTMP core.
//!
//! Every parser returns it instead of panicking. Variants carry `&'static str`
//! details rather than formatted strings so that hot paths (a malformed media
//! tag) cost no allocation and the session can de-duplicate warnings cheaply.

use std::fmt;

/// Everything that can go wrong while parsing or producing RTMP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The peer asked for an RTMP version other than 3 (6 is RTMPE, which is
    /// not supported).
    UnsupportedVersion(u8),
    /// The server's handshake did not carry the digest the client expected.
    HandshakeDigest,
    /// Input ended inside a structure that the caller said was complete
    /// (AMF value, FLV tag, control message).
    Truncated(&'static str),
    /// The bytes are not valid for the named structure.
    Malformed(&'static str),
    /// Valid but not supported by this implementation (multitrack, AMF3, ...).
    Unsupported(&'static str),
    /// A message header announced a message larger than `Limits::max_message_size`.
    MessageTooLarge {
        /// Announced length.
        len: u32,
        /// Configured maximum.
        max: u32,
    },
    /// More chunk streams were opened than `Limits::max_chunk_streams`.
    TooManyChunkStreams(usize),
    /// Incomplete inbound messages would hold more than
    /// `Limits::max_partial_bytes` (the number given).
    TooManyPartialBytes(usize),
    /// More message streams were created than `Limits::max_streams`.
    TooManyStreams(u32),
    /// A Set Chunk Size outside `Limits::min_chunk_size..=max_chunk_size`.
    ChunkSizeOutOfRange(u32),
    /// A chunk of format 1, 2 or 3 on a chunk stream that never had a format 0.
    MissingChunkHeader(u32),
    /// AMF0 nesting deeper than `Limits::max_amf_depth`.
    AmfTooDeep,
    /// An AMF0 body decodes to more values than allowed (the number given):
    /// `Limits::max_amf_values`, or less for a short body.
    AmfTooManyValues(usize),
    /// Inbound messages queued while a decision is pending exceed
    /// `Limits::max_queued_bytes`.
    QueueFull,
    /// A command arrived in a state where it makes no sense (e.g. publish
    /// before connect).
    Protocol(&'static str),
    /// The caller used the API wrongly (e.g. accepted a publish that was never
    /// requested).
    InvalidState(&'static str),
    /// The session already failed or was closed.
    Closed,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::UnsupportedVersion(v) => write!(f, "unsupported RTMP version {v}"),
            Error::HandshakeDigest => write!(f, "handshake digest verification failed"),
            Error::Truncated(what) => write!(f, "truncated {what}"),
            Error::Malformed(what) => write!(f, "malformed {what}"),
            Error::Unsupported(what) => write!(f, "unsupported: {what}"),
            Error::MessageTooLarge { len, max } => {
                write!(f, "message of {len} bytes exceeds the limit of {max}")
            }
            Error::TooManyChunkStreams(max) => write!(f, "more than {max} chunk streams"),
            Error::TooManyPartialBytes(max) => write!(
                f,
                "incomplete messages hold more than {max} bytes (max_partial_bytes)"
            ),
            Error::TooManyStreams(max) => write!(f, "more than {max} message streams"),
            Error::ChunkSizeOutOfRange(n) => write!(f, "chunk size {n} out of range"),
            Error::MissingChunkHeader(csid) => {
                write!(f, "chunk stream {csid} continued without a full header")
            }
            Error::AmfTooDeep => write!(f, "AMF0 value nested too deeply"),
            Error::AmfTooManyValues(max) => {
                write!(
                    f,
                    "AMF0 body decodes to more than {max} values (max_amf_values)"
                )
            }
            Error::QueueFull => write!(f, "too many inbound bytes queued"),
            Error::Protocol(what) => write!(f, "protocol violation: {what}"),
            Error::InvalidState(what) => write!(f, "invalid state: {what}"),
            Error::Closed => write!(f, "session closed"),
        }
    }
}

impl std::error::Error for Error {}

impl From<rill_flv::Error> for Error {
    fn from(e: rill_flv::Error) -> Self {
        match e {
            rill_flv::Error::Truncated(w) => Error::Truncated(w),
            rill_flv::Error::Malformed(w) => Error::Malformed(w),
            rill_flv::Error::Unsupported(w) => Error::Unsupported(w),
            rill_flv::Error::AmfTooDeep => Error::AmfTooDeep,
            rill_flv::Error::AmfTooManyValues(max) => Error::AmfTooManyValues(max),
        }
    }
}
