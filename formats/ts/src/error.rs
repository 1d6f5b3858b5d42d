//! Errors of the MPEG-TS muxer and demuxer.

use std::fmt;

/// What went wrong muxing or demuxing MPEG-TS. Details are static strings,
/// so a malformed packet on a hot path costs no allocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// Input ended inside a structure that should have been complete (a PES
    /// shorter than its announced length, a cut ADTS frame, ...).
    Truncated(&'static str),
    /// The bytes are not valid for the named structure.
    Malformed(&'static str),
    /// Valid but not supported by this implementation.
    Unsupported(&'static str),
    /// The muxer was configured wrongly (PIDs, track list).
    InvalidConfig(&'static str),
    /// The muxer has no track with this index.
    UnknownTrack(u32),
    /// A frame needs decoder configuration its track does not have yet
    /// (AAC without an AudioSpecificConfig cannot get ADTS headers).
    MissingConfig(&'static str),
    /// A frame too large for its framing (an ADTS frame is at most 8191
    /// bytes): its length and the maximum.
    TooLarge {
        /// Length of the payload.
        len: usize,
        /// Largest length the framing can carry.
        max: usize,
    },
    /// The demuxer skipped this many bytes to find the 0x47 sync byte again.
    SyncLost(usize),
    /// A packet had its transport_error_indicator set; it was dropped.
    TransportError,
    /// A continuity counter jumped: packets were lost on this PID; the PES
    /// being assembled was dropped.
    Continuity {
        /// The counter that was expected.
        expected: u8,
        /// The counter that came.
        got: u8,
    },
    /// A PES grew past the demuxer's `max_pes_size` (given); it was dropped.
    PesTooLarge(usize),
    /// A PSI section failed its CRC-32.
    Crc,
    /// The PMT lists more elementary streams than the demuxer's
    /// `max_tracks` (given); the others are ignored.
    TooManyTracks(usize),
    /// More parameter sets (SPS/PPS/VPS) than the demuxer keeps (given);
    /// the new one was ignored.
    TooManyParameterSets(usize),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Truncated(what) => write!(f, "truncated {what}"),
            Error::Malformed(what) => write!(f, "malformed {what}"),
            Error::Unsupported(what) => write!(f, "unsupported: {what}"),
            Error::InvalidConfig(what) => write!(f, "invalid muxer configuration: {what}"),
            Error::UnknownTrack(t) => write!(f, "no track {t} in the muxer"),
            Error::MissingConfig(what) => write!(f, "missing decoder configuration: {what}"),
            Error::TooLarge { len, max } => write!(f, "frame of {len} bytes, at most {max}"),
            Error::SyncLost(n) => write!(f, "lost sync, skipped {n} bytes"),
            Error::TransportError => write!(f, "packet with transport_error_indicator"),
            Error::Continuity { expected, got } => {
                write!(
                    f,
                    "continuity counter {got}, expected {expected}: packets lost"
                )
            }
            Error::PesTooLarge(max) => write!(f, "PES larger than {max} bytes dropped"),
            Error::Crc => write!(f, "PSI section CRC mismatch"),
            Error::TooManyTracks(max) => write!(f, "more than {max} elementary streams"),
            Error::TooManyParameterSets(max) => {
                write!(f, "more than {max} parameter sets of one kind")
            }
        }
    }
}

impl std::error::Error for Error {}
