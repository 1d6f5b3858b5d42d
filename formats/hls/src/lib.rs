//! HLS for Rill's plugins, sans-IO: frames in; parts, segments and
//! playlists out. The plugin keeps one of these per stream and per format,
//! feeds it the stream's frames once, and serves every viewer from what it
//! holds.
//!
//! - [`LlHls`]: Low-Latency HLS over fMP4 (RFC 8216bis): an init segment
//!   per configuration, parts of at most the part target cut on the
//!   driving track (video if any), segments cut on key frames once they
//!   reach the target duration.
//! - [`TsHls`]: classic HLS over MPEG-TS, segments only, for older players.
//! - [`window`]: the sliding window both keep (segments, their parts,
//!   discontinuities), with the questions a blocking playlist request asks
//!   ([`Window::readiness`]).
//! - [`playlist`]: rendering media and multivariant playlists, and reading
//!   the `_HLS_msn` / `_HLS_part` query of a blocking reload.
//!
//! And the other side, for clients (the relay, the load generator):
//!
//! - [`parse`]: reading playlists back, bounded ([`parse::Limits`]).
//! - [`segment`]: MPEG-TS and fMP4 segments back into frames.
//! - [`pull`]: a sans-IO client that pulls a live stream ([`Puller`]):
//!   which URL to fetch next, the segments' frames on one time line,
//!   released at their pace.
//!
//! What is stored is the caller's type `P`, made from the muxed bytes by a
//! function the caller passes (the plugin turns them into host frames, so
//! every viewer is served the same memory).
//!
//! # Discontinuities
//!
//! A configuration frame that changes a track after media started (a
//! publisher that came back with another encoder, a new resolution), or a
//! frame flagged `RILL_FRAME_DISCONTINUITY` after a gap, ends the current
//! segment; the next one starts with `EXT-X-DISCONTINUITY` (and, for fMP4,
//! a new `EXT-X-MAP`).
//!
//! # Limits
//!
//! The window holds `Config::window` complete segments plus the open one;
//! a segment that grows past [`MAX_SEGMENT_US`] without a key frame is cut
//! anyway, so memory per stream stays bounded whatever the publisher sends.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod cut;
pub mod fuzzing;
mod ll;
pub mod parse;
pub mod playlist;
pub mod pull;
pub mod segment;
mod ts;
pub mod window;

pub use ll::LlHls;
pub use playlist::{BlockingRequest, Object, RequestError};
pub use pull::{PullConfig, PullError, Puller};
pub use ts::TsHls;
pub use window::{Part, Readiness, Segment, Window};

/// A segment is cut without a key frame once it is this long (µs): a
/// publisher that never sends one cannot grow a segment without bound.
pub const MAX_SEGMENT_US: i64 = 30_000_000;

/// One frame of the stream, as the host delivers it (times in µs).
pub use rill_ts::Frame;

/// Segmenting settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// Longest part (LL-HLS `PART-TARGET`), µs. Default 200 ms.
    pub part_target_us: i64,
    /// Segment duration aimed at, µs; segments start on key frames, so
    /// they last at least this (up to the next key frame). Default 2 s.
    pub segment_target_us: i64,
    /// Complete segments listed. Default 6.
    pub window: usize,
    /// The first segment's media sequence number. A stream that starts
    /// again (a new muxer for the same path) should not reuse numbers a
    /// cache may hold: the plugin passes the time in seconds.
    pub first_msn: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            part_target_us: 200_000,
            segment_target_us: 2_000_000,
            window: 6,
            first_msn: 0,
        }
    }
}

/// What a frame made available, so the caller knows whom to wake.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Changed {
    /// A new part (LL-HLS) or a new complete segment.
    pub media: bool,
    /// A new init segment (a new configuration).
    pub init: bool,
}

impl Changed {
    /// Anything at all.
    pub fn any(self) -> bool {
        self.media || self.init
    }
}

/// Why a frame was not taken (the stream goes on without it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The fMP4 muxer refused it (bad configuration, time going back).
    Mp4(rill_mp4::Error),
    /// The TS muxer refused it.
    Ts(String),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Mp4(e) => write!(f, "fMP4: {e}"),
            Error::Ts(e) => write!(f, "MPEG-TS: {e}"),
        }
    }
}

impl std::error::Error for Error {}
