//! Audio bridges for Rill transformers, sans-IO: [`AacToOpus`] turns the AAC
//! of an RTMP/SRT/TS source into Opus for WebRTC viewers, [`OpusToAac`]
//! turns the Opus of a WebRTC source into AAC-LC for RTMP, HLS and TS
//! players. Each takes one frame (payload + pts) at a time and hands back
//! zero or more frames of the other codec; no threads, no clocks, no I/O.
//!
//! Payloads follow the host's conventions (`rill_abi::media`): an AAC frame
//! is one raw access unit (no ADTS) configured by an AudioSpecificConfig; an
//! Opus frame is one Opus packet configured by an `OpusHead`. Timestamps are
//! microseconds, the pts of a frame's first sample.
//!
//! Inside, a bridge is decode → channel fit → resample to 48 kHz → a small
//! PCM queue → encode fixed-size frames. Output pts come from counting
//! samples (see [`clock`]), not from copying input pts, so they are evenly
//! spaced even when the input's are rounded (RTMP's milliseconds) or its
//! frames are a different length.
//!
//! Codec libraries:
//! - AAC: Fraunhofer FDK AAC through the `fdk-aac` crate, built from the
//!   source it bundles, so no system library is needed; it decodes HE-AAC
//!   (v1/v2) as well as LC, and downmixes multichannel to stereo.
//! - Opus: libopus (the reference codec) through the `opus` crate.
//! - Resampling: `rubato`, a well-kept pure-Rust resampler (its FFT
//!   fixed-ratio resampler: 44.1/32/22.05/... kHz to Opus's 48 kHz).

mod aac;
mod asc;
mod bridge;
pub mod clock;
pub mod fuzzing;
mod head;
mod opus;
mod pcm;
mod resample;

use std::fmt;

pub use bridge::{AacToOpus, OpusToAac};
pub use head::{opus_head, OpusHeadInfo};

/// The largest input payload a bridge accepts. An AAC access unit is at
/// most 6144 bits per channel (768 bytes, 6 KiB for 8 channels) and an Opus
/// packet at most 1275 bytes per frame (under 8 KiB for 120 ms), so anything
/// bigger is not audio.
pub const MAX_INPUT_BYTES: usize = 64 * 1024;

/// The rate every bridge resamples to: Opus's native rate, and the AAC
/// rate [`OpusToAac`] encodes at.
pub const OUTPUT_RATE: u32 = 48_000;

/// What went wrong. Every error is about one input (or the configuration);
/// after an `Err` from `push` the bridge stays usable with the next frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The configuration (AudioSpecificConfig or OpusHead) is malformed.
    BadConfig(String),
    /// The channel layout is not one this crate handles.
    UnsupportedChannels(String),
    /// The sample rate is not one this crate handles.
    UnsupportedRate(u32),
    /// An input payload over [`MAX_INPUT_BYTES`] (or empty).
    BadInput(String),
    /// The decoder rejected an input frame.
    Decode(String),
    /// The encoder failed (bad bitrate, or an internal failure).
    Encode(String),
    /// The resampler failed (it should not; reported rather than panicking).
    Resample(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::BadConfig(m) => write!(f, "bad audio config: {m}"),
            Error::UnsupportedChannels(m) => write!(f, "unsupported channel layout: {m}"),
            Error::UnsupportedRate(r) => write!(f, "unsupported sample rate: {r} Hz"),
            Error::BadInput(m) => write!(f, "bad input frame: {m}"),
            Error::Decode(m) => write!(f, "decode failed: {m}"),
            Error::Encode(m) => write!(f, "encode failed: {m}"),
            Error::Resample(m) => write!(f, "resample failed: {m}"),
        }
    }
}

impl std::error::Error for Error {}

/// One output frame: an Opus packet or a raw AAC access unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Pts of the frame's first sample, microseconds, on the input's
    /// timeline (codec delays subtracted, see [`clock`]).
    pub pts_us: i64,
    /// The payload.
    pub data: bytes::Bytes,
    /// The first frame after a resync (an input pts jump, a lost run of
    /// frames, a rate change): pts may not follow on from the previous
    /// frame's, and may even step back when the input's did. Maps to
    /// `RILL_FRAME_DISCONTINUITY`.
    pub discontinuity: bool,
}

fn check_input(payload: &[u8]) -> Result<(), Error> {
    if payload.is_empty() {
        return Err(Error::BadInput("empty payload".into()));
    }
    if payload.len() > MAX_INPUT_BYTES {
        return Err(Error::BadInput(format!(
            "{} bytes, over the {MAX_INPUT_BYTES}-byte limit",
            payload.len()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
