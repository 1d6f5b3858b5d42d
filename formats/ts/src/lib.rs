//! MPEG-TS for Rill's plugins (HLS with TS segments, SRT in and out): a
//! muxer from the host's frames to 188-byte transport packets and a
//! demuxer back, both sans-IO: bytes and frames in, bytes and events out,
//! no clock, no sockets.
//!
//! WIP: the full layout documentation is below once the crate settles.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod audio;
pub mod demux;
pub mod error;
#[doc(hidden)]
pub mod fuzzing;
pub mod mux;
pub mod nal;
pub mod packet;
pub mod pes;
pub mod psi;
pub mod time;

use bytes::Bytes;
use rill_abi::{RILL_FRAME_CONFIG, RILL_FRAME_KEY};

pub use demux::{Demuxer, Event, Limits, TrackInfo};
pub use error::Error;
pub use mux::{MuxTrack, Muxer, MuxerConfig};

/// A media frame in the host's model, independent of the ABI's C types.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The track: for the muxer, the index of the track in the list given
    /// to [`Muxer::new`]; from the demuxer, [`TrackInfo::id`].
    pub track: u32,
    /// Codec FourCC (`RILL_CODEC_*`).
    pub codec: u32,
    /// `RILL_FRAME_*` flags.
    pub flags: u32,
    /// Presentation time in microseconds.
    pub pts: i64,
    /// Decode time in microseconds.
    pub dts: i64,
    /// Payload: length-prefixed NAL units (4-byte lengths), raw AAC, one
    /// MPEG audio frame, one Opus packet, or the decoder configuration of a
    /// config frame.
    pub payload: Bytes,
}

impl Frame {
    /// Whether the frame carries decoder configuration.
    pub fn is_config(&self) -> bool {
        self.flags & RILL_FRAME_CONFIG != 0
    }

    /// Whether a decoder can start at this frame.
    pub fn is_key(&self) -> bool {
        self.flags & RILL_FRAME_KEY != 0
    }
}
