//! A track of a stream: what it carries, its ring, its counters.

use std::sync::Arc;

use parking_lot::Mutex;
use rill_abi::{RILL_TRACK_AUDIO, RILL_TRACK_DATA, RILL_TRACK_VIDEO};
use serde::Serialize;

use super::frame::Frame;
use super::ring::{Ring, RingItem};
use super::stats::Counter;

impl RingItem for Frame {
    fn ring_pos(&self) -> u64 {
        self.pos
    }
    fn set_ring_pos(&mut self, pos: u64) {
        self.pos = pos;
    }
    fn is_ring_key(&self) -> bool {
        self.is_key() && !self.is_config()
    }
}

/// What a publisher declares about a track. Zero means unknown.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct TrackInfo {
    /// `RILL_TRACK_VIDEO`, `RILL_TRACK_AUDIO` or `RILL_TRACK_DATA`.
    pub kind: u32,
    /// Codec FourCC (`RILL_CODEC_*`).
    pub codec: u32,
    pub width: u32,
    pub height: u32,
    pub sample_rate: u32,
    pub channels: u32,
}

/// A track: its ring (the GOP cache lives in its keyframe index) and counters.
pub struct Track {
    pub(crate) id: u32,
    pub(crate) info: Mutex<TrackInfo>,
    pub(crate) ring: Ring<Frame>,
    pub(crate) frames: Counter,
    pub(crate) bytes: Counter,
}

/// Ring sizes by kind of track.
#[derive(Debug, Clone, Copy)]
pub struct RingSizes {
    pub video: usize,
    pub audio: usize,
    pub data: usize,
}

impl Track {
    pub(crate) fn new(id: u32, info: TrackInfo, sizes: RingSizes) -> Arc<Track> {
        let slots = match info.kind {
            RILL_TRACK_VIDEO => sizes.video,
            RILL_TRACK_AUDIO => sizes.audio,
            RILL_TRACK_DATA => sizes.data,
            _ => sizes.data,
        };
        Arc::new(Track {
            id,
            info: Mutex::new(info),
            ring: Ring::new(slots),
            frames: Counter::default(),
            bytes: Counter::default(),
        })
    }

    pub fn info(&self) -> TrackInfo {
        *self.info.lock()
    }

    pub fn kind(&self) -> u32 {
        self.info.lock().kind
    }
}

/// A FourCC as text, for people ("avc1").
pub fn fourcc_str(code: u32) -> String {
    code.to_le_bytes()
        .iter()
        .map(|&b| if b.is_ascii_graphic() { b as char } else { '?' })
        .collect()
}
