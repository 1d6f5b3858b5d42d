//! The one frame type every protocol speaks.
//!
//! A frame is immutable once published and shared as [`FrameRef`] (an `Arc`):
//! the ring, the dispatcher and every subscriber hold the same allocation, and
//! the payload is a refcounted [`Bytes`], so fan-out never copies media.

use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;
use rill_abi::{RILL_FRAME_CONFIG, RILL_FRAME_DISCONTINUITY, RILL_FRAME_KEY};

/// A shared, immutable frame.
pub type FrameRef = Arc<Frame>;

/// One unit of media (or a decoder configuration, or metadata) of one track.
///
/// Timestamps are microseconds ([`rill_abi::RILL_TIME_BASE_HZ`]). Video payloads
/// are length-prefixed NAL units with the decoder configuration in a separate
/// frame flagged [`RILL_FRAME_CONFIG`]; AAC is raw with its AudioSpecificConfig as
/// the config frame.
#[derive(Debug)]
pub struct Frame {
    track: u32,
    codec: u32,
    flags: u32,
    pts: i64,
    dts: i64,
    payload: Bytes,
    /// Position in its track's ring, stamped at publish.
    pub(crate) pos: u64,
    /// Stream-wide ingest order, stamped at publish; lets the dispatcher merge
    /// tracks back into arrival order.
    pub(crate) seq: u64,
    cache: FrameCache,
}

impl Frame {
    /// A frame as a publisher hands it to the engine. `track` is the id the
    /// publisher got from `add_track`.
    pub fn new(track: u32, codec: u32, flags: u32, pts: i64, dts: i64, payload: Bytes) -> Self {
        Frame {
            track,
            codec,
            flags,
            pts,
            dts,
            payload,
            pos: 0,
            seq: 0,
            cache: FrameCache::default(),
        }
    }

    pub fn track(&self) -> u32 {
        self.track
    }
    pub fn codec(&self) -> u32 {
        self.codec
    }
    pub fn flags(&self) -> u32 {
        self.flags
    }
    pub fn pts(&self) -> i64 {
        self.pts
    }
    pub fn dts(&self) -> i64 {
        self.dts
    }
    pub fn payload(&self) -> &Bytes {
        &self.payload
    }
    pub fn is_key(&self) -> bool {
        self.flags & RILL_FRAME_KEY != 0
    }
    pub fn is_config(&self) -> bool {
        self.flags & RILL_FRAME_CONFIG != 0
    }
    pub fn is_discontinuity(&self) -> bool {
        self.flags & RILL_FRAME_DISCONTINUITY != 0
    }
    /// The per-frame cache of muxed forms ("mux once, send to many").
    pub fn cache(&self) -> &FrameCache {
        &self.cache
    }

    /// Ingest rewrites timestamps before the frame is shared.
    pub(crate) fn set_times(&mut self, pts: i64, dts: i64) {
        self.pts = pts;
        self.dts = dts;
    }
    pub(crate) fn add_flags(&mut self, flags: u32) {
        self.flags |= flags;
    }
}

/// Muxed forms of a frame ("companions"), keyed by a value the muxer picks (for
/// example a hash of its chunk size and stream id), so the first subscriber
/// muxes and the others reuse the bytes. Holds at most [`FrameCache::SLOTS`].
#[derive(Debug, Default)]
pub struct FrameCache {
    // A Vec that stays empty (no allocation) for frames nobody caches.
    slots: Mutex<Vec<(u64, FrameRef)>>,
}

/// Why a companion was not stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheError {
    /// The key is taken (another subscriber won the race: use its value).
    Busy,
    /// Every slot is taken.
    Full,
}

impl FrameCache {
    pub const SLOTS: usize = 4;

    pub fn get(&self, key: u64) -> Option<FrameRef> {
        self.slots
            .lock()
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, f)| f.clone())
    }

    /// Drops every muxed form (a later `get` misses and muxes again).
    pub fn clear(&self) {
        let mut slots = self.slots.lock();
        if !slots.is_empty() {
            *slots = Vec::new();
        }
    }

    pub fn insert(&self, key: u64, value: FrameRef) -> Result<(), CacheError> {
        let mut slots = self.slots.lock();
        if slots.iter().any(|(k, _)| *k == key) {
            return Err(CacheError::Busy);
        }
        if slots.len() >= Self::SLOTS {
            return Err(CacheError::Full);
        }
        slots.push((key, value));
        Ok(())
    }
}

impl Frame {
    /// The same frame (shared payload, same stream position) with extra
    /// flags: for the one subscriber that needs them.
    pub(crate) fn with_flags(&self, flags: u32) -> Frame {
        Frame {
            track: self.track,
            codec: self.codec,
            flags: self.flags | flags,
            pts: self.pts,
            dts: self.dts,
            payload: self.payload.clone(),
            pos: self.pos,
            seq: self.seq,
            cache: FrameCache::default(),
        }
    }
}
