//! One stream's packetizers, shared by its players (RTSP, WebRTC): each
//! frame is packetized once, by the first player that receives it, and the
//! [`Packets`] are kept in the host's per-frame cache for the others.
//!
//! The cache key mixes a fixed tag with a number random per
//! [`SharedPacketizers`]: packets cached on a frame are only valid with the
//! packetizer state that made them (the configuration it saw), and two
//! plugins (or two generations of one) must not read each other's.

use std::collections::HashMap;
use std::sync::Mutex;

use rill_abi::sdk::{FrameInfo, FrameRef, Host};
use rill_abi::RILL_FRAME_CONFIG;

use crate::error::Error;
use crate::packetize::{Packetizer, Packets};

const CACHE_TAG: u64 = u64::from_le_bytes(*b"rtp-pk/1");

/// The packetizers of one stream's tracks (see the module docs).
pub struct SharedPacketizers {
    cache_key: u64,
    max_payload: usize,
    by_track: Mutex<HashMap<u32, Packetizer>>,
}

impl SharedPacketizers {
    /// Packetizers making payloads of at most `max_payload` bytes; `salt`
    /// should be random (it makes the cache key).
    pub fn new(salt: u64, max_payload: usize) -> SharedPacketizers {
        SharedPacketizers {
            cache_key: CACHE_TAG ^ salt,
            max_payload,
            by_track: Mutex::new(HashMap::new()),
        }
    }

    /// The RTP payloads of `frame` (empty for a config frame), made under
    /// the lock so each frame is packetized once and in order. `config` is
    /// the track's configuration as the player learnt it, for a packetizer
    /// made at a media frame.
    pub fn packets(
        &self,
        host: &Host,
        frame: &FrameRef,
        config: Option<&[u8]>,
    ) -> Result<Packets, Error> {
        if let Some(hit) = frame.cache_get(self.cache_key) {
            return Packets::from_bytes(hit.to_bytes());
        }
        let mut by_track = self.by_track.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(hit) = frame.cache_get(self.cache_key) {
            return Packets::from_bytes(hit.to_bytes());
        }
        let info = frame.info();
        let packetizer = match by_track.entry(info.track) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(v) => {
                let config = if info.flags & RILL_FRAME_CONFIG != 0 {
                    Some(frame.data())
                } else {
                    config
                };
                v.insert(Packetizer::new(info.codec, config, self.max_payload)?)
            }
        };
        let packets = packetizer.packetize(&crate::Frame::from(frame))?;
        // Not cached (no memory, every slot taken): the next player
        // packetizes again, the same packets.
        if let Ok(cached) = host.frame_wrap(packets.to_bytes(), &FrameInfo::new()) {
            let _ = frame.cache_set(self.cache_key, &cached);
        }
        Ok(packets)
    }
}
