//! A track of a stream: what it carries, its ring, its counters.

use std::sync::Arc;

use parking_lot::Mutex;
use rill_abi::{RILL_TRACK_AUDIO, RILL_TRACK_DATA, RILL_TRACK_VIDEO};
use serde::Serialize;

use super::frame::Frame;
use super::ring::{Read, Ring, RingItem};
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
    /// Written by a transformer (`publish_derived`), not the publisher.
    pub(crate) derived: bool,
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
    pub(crate) fn new(id: u32, info: TrackInfo, derived: bool, sizes: RingSizes) -> Arc<Track> {
        let slots = match info.kind {
            RILL_TRACK_VIDEO => sizes.video,
            RILL_TRACK_AUDIO => sizes.audio,
            RILL_TRACK_DATA => sizes.data,
            _ => sizes.data,
        };
        Arc::new(Track {
            id,
            derived,
            info: Mutex::new(info),
            ring: Ring::new(slots),
            frames: Counter::default(),
            bytes: Counter::default(),
        })
    }

    /// Appends a frame to the ring. A video key frame also drops the muxed
    /// forms cached on the GOP before it: new players start at the new key
    /// frame and live ones have sent that GOP, so those bytes (a copy of the
    /// stream per protocol) would only wait for the ring to lap them.
    pub(crate) fn push(&self, frame: Frame) {
        let prev_key = (frame.is_ring_key() && self.kind() == RILL_TRACK_VIDEO)
            .then(|| self.ring.last_key())
            .flatten();
        let key = self.ring.push(frame);
        if let Some(prev) = prev_key {
            for pos in prev.pos..key.pos {
                if let Read::Item(f) = self.ring.read(pos) {
                    f.cache().clear();
                }
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use rill_abi::{RILL_CODEC_H264, RILL_FRAME_KEY};

    fn cached(track: &Track, key: bool) -> Arc<Frame> {
        let flags = if key { RILL_FRAME_KEY } else { 0 };
        track.push(Frame::new(1, RILL_CODEC_H264, flags, 0, 0, Bytes::new()));
        let f = track.ring.last().unwrap();
        let muxed = Arc::new(Frame::new(1, RILL_CODEC_H264, 0, 0, 0, Bytes::new()));
        f.cache().insert(7, muxed).unwrap();
        f
    }

    #[test]
    fn a_key_frame_drops_the_muxed_forms_of_the_gop_before_it() {
        let info = TrackInfo {
            kind: RILL_TRACK_VIDEO,
            codec: RILL_CODEC_H264,
            ..TrackInfo::default()
        };
        let sizes = RingSizes {
            video: 64,
            audio: 16,
            data: 4,
        };
        let track = Track::new(1, info, false, sizes);
        let gop1: Vec<_> = (0..5).map(|i| cached(&track, i == 0)).collect();
        let gop2: Vec<_> = (0..5).map(|i| cached(&track, i == 0)).collect();
        assert!(gop1.iter().all(|f| f.cache().get(7).is_none()));
        assert!(gop2.iter().all(|f| f.cache().get(7).is_some()));
        // The current GOP is what new players replay: it stays cached.
        cached(&track, true);
        assert!(gop2.iter().all(|f| f.cache().get(7).is_none()));
    }
}
