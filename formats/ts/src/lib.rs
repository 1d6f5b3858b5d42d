//! MPEG-TS for Rill's plugins (HLS with TS segments, SRT in and out): a
//! [`Muxer`] from the host's frames to 188-byte transport packets and a
//! [`Demuxer`] back, both sans-IO: frames and bytes in, bytes and events
//! out, no clock, no sockets, no `unsafe`.
//!
//! Frames follow the host's model (`rill_abi::media`): video payloads are
//! length-prefixed NAL units (4-byte lengths) with the
//! AVCDecoderConfigurationRecord / HEVCDecoderConfigurationRecord as a
//! separate config frame; AAC is raw with its AudioSpecificConfig as config;
//! timestamps are microseconds. TS carries Annex-B and ADTS: both sides
//! convert at this edge.
//!
//! # Modules
//!
//! - [`mux`]: the muxer. [`demux`]: the demuxer.
//! - [`packet`]: the transport packet, adaptation field, CRC-32.
//! - [`psi`]: PAT and PMT sections, written and reassembled.
//! - [`pes`]: PES headers. [`time`]: µs ↔ 90 kHz, PCR, 33-bit unwrapping.
//! - [`nal`]: Annex-B ↔ length prefixes, decoder configuration records.
//! - [`audio`]: ADTS ↔ AudioSpecificConfig, MPEG audio headers, Opus framing.
//!
//! # What the muxer writes
//!
//! - One program (number 1), PAT on PID 0, PMT on 0x1000, tracks on 0x100,
//!   0x101, ... in the order given (all configurable, see [`MuxerConfig`]
//!   and [`MuxTrack::pid`]). At most [`mux::MAX_TRACKS`] tracks.
//! - Stream types: H.264 0x1B, HEVC 0x24, AAC (ADTS) 0x0F, MP3 0x03, Opus
//!   0x06 with a registration descriptor `Opus` and the DVB extension
//!   descriptor (tag 0x7F, extension 0x80) with the channel_config_code,
//!   as ffmpeg writes it.
//! - One PES per frame, with PTS, and DTS when it differs; stream ids 0xE0+
//!   (video), 0xC0+ (AAC, MP3), 0xBD (Opus). PES_packet_length is set
//!   whenever it fits 16 bits (a demuxer can then deliver the frame at
//!   once), else 0 (video only, as the standard allows).
//! - Video becomes Annex-B: an access unit delimiter first (unless the
//!   frame has one), the configuration's parameter sets before every key
//!   frame (unless the frame carries its own), 4-byte start codes. AAC gets
//!   a 7-byte ADTS header built from the AudioSpecificConfig (object types
//!   1–4; HE-AAC is signalled with its core type, as ADTS does). Each Opus
//!   packet gets an `opus_control_header` (no trim fields: pre-skip and end
//!   trimming are not signalled). MP3 frames go as they are.
//! - PTS/DTS are the frames' times plus [`MuxerConfig::delay_us`] (0.7 s by
//!   default), in 90 kHz, wrapped to 33 bits (a PTS before its DTS is
//!   raised to it). The PCR is the largest DTS
//!   written so far, without that delay, so every frame arrives ahead of its
//!   decode time. It rides on the first video track (else the first track):
//!   in the first packet of each of its frames, and in a packet of its own
//!   before a frame of another track once `pcr_interval_us` (40 ms) of frame
//!   time has passed. PCR gaps are thus at most 40 ms or the gap between
//!   two frames, whichever is larger: the muxer only knows frame time.
//! - PAT and PMT go out at the start, before every key frame of the first
//!   video track, at [`Muxer::start_segment`] and [`Muxer::write_psi`], and
//!   once `psi_interval_us` (100 ms) of frame time has passed.
//! - The first packet of a video key frame (of any frame, without video)
//!   has random_access_indicator set. The last packet of each PES is padded
//!   with adaptation-field stuffing. Continuity counters run per PID
//!   (adaptation-only PCR packets do not advance them).
//! - Nothing is allocated per packet: packets are assembled on the stack
//!   and appended to the caller's buffer ([`bytes::BufMut`]: `Vec<u8>`,
//!   `BytesMut`), and the converted frame is written in pieces, so its
//!   bytes are copied once, into the output. A frame that cannot be written
//!   (bad AVCC, AAC without config) is an error and writes nothing.
//!
//! # What the demuxer reads
//!
//! - Bytes in chunks of any size and split. Out of sync (at the start, after
//!   garbage) a 0x47 counts as a packet start only when another follows 188
//!   bytes later; skipped bytes are reported. 192-byte M2TS packets are not
//!   read.
//! - The first program of the PAT; its PMT announces the tracks
//!   ([`Event::Tracks`]): streams of types 0x1B, 0x24, 0x0F, 0x03, 0x04,
//!   and 0x06 with an `Opus` registration; others are ignored. Track ids
//!   are given in order of appearance and a PID keeps its id, so a
//!   round trip through [`Muxer`] keeps track indices.
//! - PES are reassembled per PID and delivered when complete: at their
//!   PES_packet_length, or when the next PES starts (or at
//!   [`Demuxer::flush`]) for those without one. Continuity counter jumps
//!   drop the PES in progress, are reported ([`Error::Continuity`]) and flag
//!   the next frame `RILL_FRAME_DISCONTINUITY`; duplicate packets are
//!   dropped.
//! - Video: Annex-B to 4-byte length prefixes; AUDs are dropped; VPS, SPS
//!   and PPS are taken out of the frame, kept by id, and turned into a
//!   decoder configuration record, delivered as a config frame before the
//!   first frame and again whenever it changes. Key frames are IDR (H.264)
//!   or IRAP (HEVC) pictures, or H.264 access units with an SPS where the
//!   packet set random_access_indicator (recovery-point streams).
//! - AAC: each ADTS frame of a PES becomes a raw frame, timed 1024 samples
//!   apart from the PES's PTS; the AudioSpecificConfig (2 bytes, from the
//!   ADTS header) is a config frame when first seen or changed. MP3: the PES
//!   is split at MPEG audio frame headers (free-format frames stay whole).
//!   Opus: split at its control headers, timed by each packet's TOC; the
//!   OpusHead implied by the PMT's channel_config_code is the config frame.
//!   An audio frame cut at the end of its PES is dropped and reported.
//! - Timestamps: µs from the stream's own 90 kHz clock (not rebased to 0),
//!   unwrapped across the 33-bit wrap against the last DTS seen, so they
//!   keep increasing past 26.5 hours. A PES without PTS continues from the
//!   previous one.
//! - Errors never stop the demuxer: they are [`Event::Error`]s, and it
//!   carries on with the next packet.
//!
//! # Limits
//!
//! Every structure read is bounded ([`Limits`]): a PES grows to
//! `max_pes_size` (8 MiB) at most, all PES in progress to `max_buffered`
//! (32 MiB) together; at most `max_tracks` (16) streams, `max_param_sets`
//! (32) of each kind per video track; PSI sections 1024 bytes; the sync
//! buffer one packet. Nothing in the input can make the demuxer panic or
//! grow without bound (checked by the fuzz targets in `fuzz/`, whose bodies
//! are [`fuzzing`], run over a corpus by `tests/fuzz_smoke.rs`).
//!
//! # Use
//!
//! An HLS plugin writing TS segments:
//!
//! ```
//! use bytes::{Bytes, BytesMut};
//! use rill_abi::{RILL_CODEC_AAC, RILL_CODEC_H264, RILL_FRAME_KEY};
//! use rill_ts::{Frame, MuxTrack, Muxer, MuxerConfig};
//! # let avc_record = rill_ts::fuzzing::seeds::video_config(RILL_CODEC_H264);
//! # let frames: Vec<Frame> = Vec::new();
//! let tracks = [
//!     MuxTrack::new(RILL_CODEC_H264, avc_record),
//!     MuxTrack::new(RILL_CODEC_AAC, Bytes::from_static(&[0x12, 0x10])),
//! ];
//! let mut mux = Muxer::new(&tracks, MuxerConfig::default())?;
//! let mut segment = BytesMut::new();
//! for frame in &frames {
//!     if frame.track == 0 && frame.flags & RILL_FRAME_KEY != 0 && !segment.is_empty() {
//!         let done = segment.split().freeze(); // hand over the finished segment
//! #       drop(done);
//!         mux.start_segment(&mut segment);
//!     }
//!     mux.write(frame, &mut segment)?; // config frames update the track
//! }
//! # Ok::<(), rill_ts::Error>(())
//! ```
//!
//! An SRT plugin reading TS:
//!
//! ```
//! use rill_ts::{Demuxer, Event};
//! # let datagrams: Vec<Vec<u8>> = Vec::new();
//! let mut demux = Demuxer::default();
//! let mut events = Vec::new();
//! for datagram in &datagrams {
//!     demux.feed(datagram, &mut events);
//!     for event in events.drain(..) {
//!         match event {
//!             Event::Tracks(tracks) => { /* add the tracks to the publisher */ }
//!             Event::Frame(frame) => { /* publish (config frames too) */ }
//!             Event::Error { pid, error } => { /* count, log */ }
//!         }
//!     }
//! }
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod audio;
pub mod demux;
pub mod error;
#[doc(hidden)]
pub mod fuzzing;
pub mod inputs;
pub mod live;
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
pub use live::LiveMuxer;
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

impl From<&rill_abi::sdk::FrameRef> for Frame {
    /// A host frame as muxer input: the payload stays the host's (no copy).
    fn from(frame: &rill_abi::sdk::FrameRef) -> Frame {
        let info = frame.info();
        Frame {
            track: info.track,
            codec: info.codec,
            flags: info.flags,
            pts: info.pts,
            dts: info.dts,
            payload: frame.to_bytes(),
        }
    }
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
