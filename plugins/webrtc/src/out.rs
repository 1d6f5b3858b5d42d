//! A stream's outgoing RTP, shared by its WHEP viewers: packetized once a
//! frame (`rill_rtp::SharedPacketizers`), and each packet's payload one
//! `Arc` that every viewer's str0m keeps in its send history (to answer
//! NACKs): one copy a stream, not one a viewer (the history holds about
//! 1000 packets, a megabyte a viewer of a 2.5 Mbit/s stream).

use std::collections::VecDeque;
use std::sync::Arc;

use parking_lot::Mutex;
use rill_abi::sdk::{FrameRef, Host};
use rill_rtp::{Packets, SharedPacketizers};

/// Each packet's payload of one frame.
pub type Payloads = Arc<[Arc<[u8]>]>;

/// A frame of the stream: its track, pts, dts and size (pts and dts grow
/// on a track, so no two live frames share them).
type Key = (u32, i64, i64, usize);

/// Frames whose payloads are kept: viewers take a frame within moments of
/// each other; a slow one that misses makes its own.
const RECENT: usize = 64;

pub struct StreamOut {
    packetizers: SharedPacketizers,
    recent: Mutex<VecDeque<(Key, Payloads)>>,
}

impl StreamOut {
    pub fn new(salt: u64, max_payload: usize) -> StreamOut {
        StreamOut {
            packetizers: SharedPacketizers::new(salt, max_payload),
            recent: Mutex::new(VecDeque::with_capacity(RECENT)),
        }
    }

    /// The packets of `frame` (made by the first viewer that asks).
    pub fn packets(
        &self,
        host: &Host,
        frame: &FrameRef,
        config: Option<&[u8]>,
    ) -> Result<Packets, rill_rtp::Error> {
        self.packetizers.packets(host, frame, config)
    }

    /// The payloads of `packets`, the packets of `frame`, as shared `Arc`s
    /// (made by the first viewer that sends them).
    pub fn payloads(&self, frame: &FrameRef, packets: &Packets) -> Payloads {
        let info = frame.info();
        let key = (info.track, info.pts, info.dts, frame.data().len());
        let mut recent = self.recent.lock();
        if let Some((_, p)) = recent.iter().rev().find(|(k, _)| *k == key) {
            return p.clone();
        }
        let payloads: Payloads = (0..packets.len())
            .map(|k| Arc::from(packets.payload_ref(k)))
            .collect();
        if recent.len() >= RECENT {
            recent.pop_front();
        }
        recent.push_back((key, payloads.clone()));
        payloads
    }
}
