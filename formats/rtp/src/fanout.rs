//! One stream's packetizers, shared by its players (RTSP, WebRTC): each
//! frame is packetized once, by the first player that receives it, and the
//! [`Packets`] are kept in the host's per-frame cache for the others.
//!
//! Each track also has the stream's RTP header fields: an SSRC, sequence
//! numbers given out in packetizing order, and a timestamp offset, the
//! same for every player (as a camera's stream is the same for everyone
//! who watches it). With them a frame's packets are whole and identical
//! for all players: [`SharedPacketizers::interleaved`] builds them once, in
//! RTSP's interleaved framing, as a host frame that every TCP player
//! writes without a copy and every UDP player sends from.
//!
//! Sequence numbers are given out when a frame is first packetized: in
//! stream order as long as the first player to reach each frame had the
//! ones before it. A player the host let skip frames can reach a frame
//! first and number it ahead of ones others have still to get; a player
//! whose packets then do not follow on from its last sends a copy with
//! its own continuous numbers (the RTSP plugin does), so no player ever
//! sees its sequence jump or go back.
//!
//! The cache key mixes a fixed tag with a number random per
//! [`SharedPacketizers`]: packets cached on a frame are only valid with the
//! packetizer state that made them (the configuration it saw), and two
//! plugins (or two generations of one) must not read each other's.

use std::collections::HashMap;
use std::sync::Mutex;

use bytes::{BufMut, Bytes, BytesMut};
use rill_abi::sdk::{FrameInfo, FrameRef, Host};
use rill_abi::RILL_FRAME_CONFIG;

use crate::error::Error;
use crate::packet::{RtpHeader, RTP_HEADER_LEN};
use crate::packetize::{Packetizer, Packets};

const CACHE_TAG: u64 = u64::from_le_bytes(*b"rtp-pk/2");
/// Set in the keys of interleaved forms, never in the packets' key.
const INTERLEAVED_BIT: u64 = 1 << 63;

/// A track's packetizer and its header fields in the stream.
struct TrackOut {
    packetizer: Option<Packetizer>,
    ssrc: u32,
    next_seq: u16,
    ts_offset: u32,
}

impl TrackOut {
    fn new() -> TrackOut {
        let r = random_u64();
        TrackOut {
            packetizer: None,
            ssrc: r as u32,
            next_seq: (r >> 32) as u16,
            ts_offset: random_u64() as u32,
        }
    }
}

fn random_u64() -> u64 {
    let mut r = [0u8; 8];
    let _ = getrandom::getrandom(&mut r);
    u64::from_le_bytes(r)
}

/// A track's RTP header fields in the stream, as the SDP, the SETUP answer,
/// RTP-Info and sender reports give them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrackStamp {
    /// The track's SSRC.
    pub ssrc: u32,
    /// The sequence number the next packetized frame starts at.
    pub next_seq: u16,
    /// Added to every RTP timestamp (random, RFC 3550 §5.1).
    pub ts_offset: u32,
}

/// The packetizers of one stream's tracks (see the module docs).
pub struct SharedPacketizers {
    cache_key: u64,
    max_payload: usize,
    by_track: Mutex<HashMap<u32, TrackOut>>,
}

impl SharedPacketizers {
    /// Packetizers making payloads of at most `max_payload` bytes; `salt`
    /// should be random (it makes the cache key).
    pub fn new(salt: u64, max_payload: usize) -> SharedPacketizers {
        SharedPacketizers {
            cache_key: (CACHE_TAG ^ salt) & !INTERLEAVED_BIT,
            max_payload,
            by_track: Mutex::new(HashMap::new()),
        }
    }

    /// Host track `track`'s header fields (chosen at random the first time).
    pub fn stamp(&self, track: u32) -> TrackStamp {
        let mut by_track = self.by_track.lock().unwrap_or_else(|e| e.into_inner());
        let t = by_track.entry(track).or_insert_with(TrackOut::new);
        TrackStamp {
            ssrc: t.ssrc,
            next_seq: t.next_seq,
            ts_offset: t.ts_offset,
        }
    }

    /// The RTP payloads of `frame` (empty for a config frame), made under
    /// the lock so each frame is packetized, and numbered, once and in
    /// order. `config` is the track's configuration as the player learnt
    /// it, for a packetizer made at a media frame.
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
        let track = by_track.entry(info.track).or_insert_with(TrackOut::new);
        let packetizer = match &mut track.packetizer {
            Some(p) => p,
            empty => {
                let config = if info.flags & RILL_FRAME_CONFIG != 0 {
                    Some(frame.data())
                } else {
                    config
                };
                empty.insert(Packetizer::new(info.codec, config, self.max_payload)?)
            }
        };
        let mut packets = packetizer.packetize(&crate::Frame::from(frame))?;
        packets.ssrc = track.ssrc;
        packets.seq = track.next_seq;
        packets.ts_offset = track.ts_offset;
        track.next_seq = track.next_seq.wrapping_add(packets.len() as u16);
        // Not cached (no memory, every slot taken): the next player
        // packetizes again, the same packets.
        if let Ok(cached) = host.frame_wrap(packets.to_bytes(), &FrameInfo::new()) {
            let _ = frame.cache_set(self.cache_key, &cached);
        }
        Ok(packets)
    }

    /// `frame`'s packets, whole, with the stream's headers and
    /// `payload_type`, each after RTSP's interleaved framing for `channel`
    /// (`$`, the channel, a 16-bit length: RFC 2326 §10.12), as a host frame
    /// cached for every player of the same channel and payload type. A TCP
    /// player writes it as it is (`conn_write_frame`, no copy); a UDP
    /// player sends each packet of [`interleaved_packets`] from it. `None`
    /// for a frame that makes no packet (a config frame).
    pub fn interleaved(
        &self,
        host: &Host,
        frame: &FrameRef,
        config: Option<&[u8]>,
        channel: u8,
        payload_type: u8,
    ) -> Result<Option<FrameRef>, Error> {
        let key = (self.cache_key ^ (u64::from(channel) << 8 | u64::from(payload_type)))
            | INTERLEAVED_BIT;
        if let Some(hit) = frame.cache_get(key) {
            return Ok(Some(hit));
        }
        let p = self.packets(host, frame, config)?;
        if p.is_empty() {
            return Ok(None);
        }
        let b = interleave(&p, channel, payload_type)?;
        let wired = host
            .frame_wrap(b, &FrameInfo::new())
            .map_err(|_| Error::Malformed("no memory for the interleaved packets"))?;
        let _ = frame.cache_set(key, &wired);
        Ok(Some(wired))
    }
}

/// `p`'s packets with their headers, each in RTSP's interleaved framing.
fn interleave(p: &Packets, channel: u8, payload_type: u8) -> Result<Bytes, Error> {
    let mut b = BytesMut::with_capacity(p.data.len() + p.len() * (4 + RTP_HEADER_LEN));
    for (i, info) in p.packets.iter().enumerate() {
        let len = RTP_HEADER_LEN + (info.end - info.start) as usize;
        let Ok(len) = u16::try_from(len) else {
            return Err(Error::Malformed(
                "an RTP packet longer than interleaving carries",
            ));
        };
        b.put_u8(b'$');
        b.put_u8(channel);
        b.put_u16(len);
        let header = RtpHeader {
            marker: info.marker,
            payload_type,
            seq: p.seq.wrapping_add(i as u16),
            timestamp: p
                .timestamp
                .wrapping_add(info.ts_step)
                .wrapping_add(p.ts_offset),
            ssrc: p.ssrc,
        };
        b.put_slice(&header.to_bytes());
        b.put_slice(p.payload_ref(i));
    }
    Ok(b.freeze())
}

/// Gives the packets of an interleaved buffer (a copy of
/// [`SharedPacketizers::interleaved`]'s) the sequence numbers `first`,
/// `first + 1`, ...: a player's own numbering. Stops at anything that is
/// not a whole frame; returns the number after the last.
pub fn renumber_interleaved(data: &mut [u8], first: u16) -> u16 {
    let (mut at, mut seq) = (0, first);
    while at + 4 + RTP_HEADER_LEN <= data.len() && data[at] == b'$' {
        let len = usize::from(u16::from_be_bytes([data[at + 2], data[at + 3]]));
        if len < RTP_HEADER_LEN || at + 4 + len > data.len() {
            break;
        }
        data[at + 6..at + 8].copy_from_slice(&seq.to_be_bytes());
        seq = seq.wrapping_add(1);
        at += 4 + len;
    }
    seq
}

/// The RTP packets of an interleaved buffer ([`SharedPacketizers::interleaved`]),
/// without their framing; stops at anything that is not a whole frame.
pub fn interleaved_packets(mut data: &[u8]) -> impl Iterator<Item = &[u8]> {
    std::iter::from_fn(move || {
        if data.len() < 4 || data[0] != b'$' {
            return None;
        }
        let len = usize::from(u16::from_be_bytes([data[2], data[3]]));
        let packet = data.get(4..4 + len)?;
        data = &data[4 + len..];
        Some(packet)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::RtpPacket;
    use crate::packetize::PacketInfo;

    #[test]
    fn interleaved_packets_carry_the_streams_headers() {
        let p = Packets {
            timestamp: 1000,
            ssrc: 0xCAFE_F00D,
            seq: 65_535,
            ts_offset: 7,
            data: Bytes::from_static(b"abcdefg"),
            packets: vec![
                PacketInfo {
                    start: 0,
                    end: 4,
                    marker: false,
                    ts_step: 0,
                },
                PacketInfo {
                    start: 4,
                    end: 7,
                    marker: true,
                    ts_step: 160,
                },
            ],
        };
        let wire = interleave(&p, 2, 97).unwrap();
        assert_eq!(&wire[..4], &[b'$', 2, 0, 16]);
        let got: Vec<&[u8]> = interleaved_packets(&wire).collect();
        assert_eq!(got.len(), 2);
        let (a, b) = (
            RtpPacket::parse(got[0]).unwrap(),
            RtpPacket::parse(got[1]).unwrap(),
        );
        assert_eq!(
            (a.header.ssrc, a.header.seq, a.header.timestamp),
            (0xCAFE_F00D, 65_535, 1007)
        );
        assert_eq!(
            (b.header.seq, b.header.timestamp, b.header.marker),
            (0, 1167, true)
        );
        assert_eq!(
            (a.header.payload_type, a.payload, b.payload),
            (97, &b"abcd"[..], &b"efg"[..])
        );
        let mut copy = wire.to_vec();
        assert_eq!(renumber_interleaved(&mut copy, 10), 12);
        let seqs: Vec<u16> = interleaved_packets(&copy)
            .map(|p| RtpPacket::parse(p).unwrap().header.seq)
            .collect();
        assert_eq!(seqs, [10, 11]);
        assert_eq!(copy[..6], wire[..6], "only the sequence numbers change");
        assert_eq!(copy[8..20], wire[8..20]);
        // A cut buffer yields its whole packets only.
        assert_eq!(interleaved_packets(&wire[..wire.len() - 1]).count(), 1);
        assert_eq!(interleaved_packets(b"x").count(), 0);
    }
}
