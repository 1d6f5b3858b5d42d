//! Fragmented MP4 (ISO BMFF / CMAF) for Rill's plugins: the HLS plugin
//! (LL-HLS over fMP4), HTTP/WebSocket fMP4 live playback and recording.
//! Sans-IO: frames in, [`bytes::Bytes`] out.
//!
//! # Layout
//!
//! - [`codec`]: decoder configurations (`avcC`, `hvcC`, `av1C`, `vpcC`,
//!   AudioSpecificConfig, `OpusHead`) → [`TrackInfo`]: codec string for
//!   HLS `CODECS` / MSE, timescale, picture size (from the H.264/H.265 SPS
//!   or the AV1 sequence header; VP9 from a key frame), audio rate and
//!   channels.
//! - [`init`]: the initialization segment: `ftyp` (`iso6`, plus `cmfc` for
//!   a single track) and `moov` (`mvhd`, a `trak` per track with an empty
//!   sample table and one sample entry — `avc1`+`avcC`, `hvc1`+`hvcC`,
//!   `av01`+`av1C`, `vp09`+`vpcC`, `mp4a`+`esds`, `Opus`+`dOps` — and
//!   `mvex`/`trex`).
//! - [`mux`]: the [`Muxer`]: [`Sample`]s pushed per track, cut into
//!   [`Fragment`]s (`moof` with `mfhd` and per track `traf`: `tfhd` with
//!   default-base-is-moof, `tfdt` version 1, `trun` with data offset and
//!   per-sample duration, size, flags for video, and signed composition
//!   offsets when any) followed by `mdat`. The `moof` and `mdat` header are
//!   one buffer; the payloads stay the frames' own buffers, for vectored
//!   writes.
//! - [`read`]: a bounded box reader that parses back init segments and
//!   fragments, for tests, fuzzing and tools.
//! - [`retime`]: each `traf`'s `tfdt` in a `moof`, read and rewritten in
//!   place (recordings served as one download on one timeline).
//!
//! # Timing
//!
//! Frame times are microseconds; a video track counts in 90 kHz, an audio
//! track in its sample rate (48 kHz for Opus). Every sample's decode time
//! in the output is its `dts` converted, exactly, and `tfdt` carries the
//! absolute time, so parts, segments and tracks line up wherever a player
//! joins. A sample's duration is the distance to its successor, so each
//! track holds back its latest sample until the next one arrives (or the
//! caller gives durations, or flushes with an end time).
//!
//! # What the muxer does to samples
//!
//! Nothing but slicing: AV1 samples lose their leading temporal delimiter
//! OBUs (AV1-ISOBMFF 2.4), by `Bytes::slice`. In the init segment an
//! `hvcC` gets `array_completeness` set on its parameter-set arrays, as an
//! `hvc1` entry requires.
//!
//! # Configuration changes
//!
//! A [`Muxer`] has a fixed set of tracks and configurations. When a config
//! frame changes, make a new one (a new init segment: in HLS a new
//! `EXT-X-MAP` after `EXT-X-DISCONTINUITY`); since `tfdt` carries the
//! frames' own times, the timeline simply goes on.
//!
//! # Limits
//!
//! At most [`MAX_TRACKS`] tracks, decoder configurations up to
//! [`codec::MAX_CONFIG`] bytes, [`mux::MAX_BUFFERED_SAMPLES`] samples per
//! track and [`mux::MAX_BUFFERED_BYTES`] bytes between two fragments; the
//! reader stops at [`read::MAX_DEPTH`], [`read::MAX_BOXES`] and
//! [`read::MAX_SAMPLES`]. Every parser returns [`Error`] on bad input and
//! never panics (checked by the fuzz targets in `fuzz/`).
//!
//! # Example
//!
//! ```
//! use bytes::Bytes;
//! use rill_abi::{RILL_CODEC_AAC, RILL_CODEC_H264};
//! use rill_mp4::{Muxer, Sample, TrackInfo};
//!
//! # let avcc = Bytes::from_static(&[1, 0x42, 0xc0, 0x0d, 0xff, 0xe1, 0, 0x19, 0x67, 0x42,
//! #     0xc0, 0x0d, 0xd9, 0x01, 0x41, 0xfb, 0x01, 0x10, 0, 0, 3, 0, 0x10, 0, 0, 3, 3, 0x20,
//! #     0xf1, 0x42, 0x99, 0x20, 1, 0, 4, 0x68, 0xcb, 0x83, 0xcb, 0x20]);
//! let video = TrackInfo::new(RILL_CODEC_H264, avcc)?;
//! let audio = TrackInfo::new(RILL_CODEC_AAC, Bytes::from_static(&[0x12, 0x10]))?;
//! let mut mux = Muxer::new(vec![video, audio])?;
//! assert_eq!(mux.codecs(), "avc1.42c00d,mp4a.40.2");
//! let init = mux.init_segment()?;
//! # let frame = Bytes::from_static(&[0, 0, 0, 1, 0x65]);
//! mux.push(0, Sample::new(0, 0, true, frame.clone()))?;
//! mux.push(0, Sample::new(40_000, 40_000, false, frame.clone()))?;
//! mux.push(0, Sample::new(80_000, 80_000, true, frame))?;
//! // Cut before the new key frame: the first two frames.
//! let part = mux.fragment_before(80_000).expect("two samples are ready");
//! assert_eq!(part.tracks[0].samples, 2);
//! assert!(part.independent());
//! let bytes = part.to_bytes(); // or write part.chunks() one by one
//! # assert!(init.len() > 0 && bytes.len() > 0);
//! # Ok::<(), rill_mp4::Error>(())
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod bits;
mod boxes;
pub mod codec;
pub mod error;
#[doc(hidden)]
pub mod fuzzing;
pub mod init;
pub mod mux;
pub mod progressive;
pub mod read;
pub mod retime;

pub use codec::{codecs_attribute, TrackInfo};
pub use error::Error;
pub use init::{init_segment, MAX_TRACKS};
pub use mux::{Fragment, FragmentTrack, Muxer, Sample};
