//! Host frames → RTP payloads, per codec:
//!
//! - H.264 (RFC 6184, packetization-mode 1): a NAL that fits goes alone
//!   (single NAL unit packet), a larger one in FU-A fragments; before a key
//!   frame the configuration's SPS and PPS go in-band, together in one
//!   STAP-A when they fit (unless the frame carries its own).
//! - H.265 (RFC 7798, no DONL): the same with FU and AP (VPS, SPS, PPS).
//! - AAC (RFC 3640 AAC-hbr: sizelength 13, indexlength 3): one access unit
//!   per packet with its AU header; an access unit larger than a packet is
//!   fragmented (each fragment repeats the AU header, the marker is on the
//!   last).
//! - Opus (RFC 7587): the packet as it is. G.711 (PCMA, PCMU): the samples,
//!   split into packets of at most the payload size.
//! - VP8 (RFC 7741): the frame in pieces after a one-byte descriptor.
//! - VP9 (RFC 9628, flexible mode, see `vp9`): the picture in pieces, each
//!   after its payload descriptor.
//! - AV1 (AOMedia's RTP format, see `av1`): the OBUs without size fields,
//!   aggregated and fragmented; a key frame without its sequence header gets
//!   the configuration's in front.
//!
//! Built once per frame, shared by every player: a [`Packets`] holds the
//! payloads in one [`Bytes`] and, per packet, its span, marker and
//! timestamp step. Headers are either the stream's (SSRC, sequence numbers
//! and timestamp offset per track, the same for every player: see
//! [`crate::SharedPacketizers::interleaved`]) or a player's own, from a
//! [`Stamp`] that writes the 12-byte header of each packet
//! ([`Stamp::header`]) before the shared payload.

use bytes::{BufMut, Bytes, BytesMut};
use rill_abi::{
    RILL_CODEC_AAC, RILL_CODEC_AV1, RILL_CODEC_H264, RILL_CODEC_H265, RILL_CODEC_OPUS,
    RILL_CODEC_PCMA, RILL_CODEC_PCMU, RILL_CODEC_VP8, RILL_CODEC_VP9,
};
use rill_ts::audio::AacConfig;
use rill_ts::nal::{
    length_prefixed_nals, parse_avc_record, parse_hevc_record, NalKind, VideoCodec,
};
use rill_ts::Frame;

use crate::clock::rtp_timestamp;
use crate::error::Error;
use crate::packet::{RtpHeader, SenderReport, RTP_HEADER_LEN};
use crate::{av1, vp8, vp9};

/// The default largest payload: 1200 bytes, so header, UDP, IP and a
/// tunnel's overhead stay below the common 1280-1500 byte MTUs.
pub const DEFAULT_MAX_PAYLOAD: usize = 1200;

/// Smallest payload size a packetizer accepts (FU headers need room).
pub const MIN_MAX_PAYLOAD: usize = 64;

/// Most NAL units of a frame that are packetized (others are an error).
pub const MAX_FRAME_NALS: usize = 4096;

/// Largest AAC access unit (the 13-bit AU size).
pub const MAX_AAC_AU: usize = 0x1FFF;

/// The first bytes of [`Packets::to_bytes`].
const CACHE_MAGIC: &[u8; 4] = b"RTP2";
/// The bytes of [`Packets::to_bytes`] before the packets' table.
const CACHE_HEAD: usize = 22;

/// One packet of a [`Packets`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PacketInfo {
    /// Start of its payload in [`Packets::data`].
    pub start: u32,
    /// End of its payload.
    pub end: u32,
    /// The RTP marker bit.
    pub marker: bool,
    /// Added to the frame's timestamp (G.711 splits a frame in time).
    pub ts_step: u32,
}

/// The RTP payloads of one frame: built once, sent to every player.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Packets {
    /// The frame's RTP timestamp with offset 0 (its PTS in the track's
    /// clock, wrapped to 32 bits); headers add an offset.
    pub timestamp: u32,
    /// The track's SSRC in the stream (0 until a
    /// [`crate::SharedPacketizers`] numbers the packets).
    pub ssrc: u32,
    /// The stream's sequence number of the first packet (as `ssrc`).
    pub seq: u16,
    /// The stream's timestamp offset for the track (as `ssrc`).
    pub ts_offset: u32,
    /// Every payload, one after the other.
    pub data: Bytes,
    /// The packets, in sending order.
    pub packets: Vec<PacketInfo>,
}

impl Packets {
    /// Number of packets.
    pub fn len(&self) -> usize {
        self.packets.len()
    }

    /// Whether the frame made no packet (a config frame).
    pub fn is_empty(&self) -> bool {
        self.packets.is_empty()
    }

    /// The payload of packet `i` (a shared slice, no copy).
    pub fn payload(&self, i: usize) -> Bytes {
        let p = self.packets[i];
        self.data.slice(p.start as usize..p.end as usize)
    }

    /// The packets in one buffer, for a cache shared by the players of a
    /// frame (the host's per-frame cache stores byte frames): a 22-byte
    /// head (`RTP2`, timestamp, SSRC, sequence number, timestamp offset,
    /// count), 13 bytes per packet (start, end, marker, timestamp step) and
    /// the payloads. [`Packets::from_bytes`] reads it back without copying
    /// the payloads.
    pub fn to_bytes(&self) -> Bytes {
        let mut b = BytesMut::with_capacity(CACHE_HEAD + 13 * self.packets.len() + self.data.len());
        b.put_slice(CACHE_MAGIC);
        b.put_u32(self.timestamp);
        b.put_u32(self.ssrc);
        b.put_u16(self.seq);
        b.put_u32(self.ts_offset);
        b.put_u32(self.packets.len() as u32);
        for p in &self.packets {
            b.put_u32(p.start);
            b.put_u32(p.end);
            b.put_u8(p.marker as u8);
            b.put_u32(p.ts_step);
        }
        b.put_slice(&self.data);
        b.freeze()
    }

    /// Reads what [`Packets::to_bytes`] wrote; the payloads stay in `b`.
    pub fn from_bytes(b: Bytes) -> Result<Packets, Error> {
        if b.len() < CACHE_HEAD || &b[..4] != CACHE_MAGIC {
            return Err(Error::Malformed("cached RTP packets"));
        }
        let be = |i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let (timestamp, ssrc) = (be(4), be(8));
        let seq = u16::from_be_bytes([b[12], b[13]]);
        let (ts_offset, count) = (be(14), be(18) as usize);
        let head = count
            .checked_mul(13)
            .and_then(|n| n.checked_add(CACHE_HEAD))
            .filter(|&n| n <= b.len())
            .ok_or(Error::Truncated("cached RTP packets"))?;
        let data = b.slice(head..);
        let mut packets = Vec::with_capacity(count);
        for k in 0..count {
            let at = CACHE_HEAD + 13 * k;
            let p = PacketInfo {
                start: be(at),
                end: be(at + 4),
                marker: b[at + 8] != 0,
                ts_step: be(at + 9),
            };
            if p.start > p.end || p.end as usize > data.len() {
                return Err(Error::Malformed("cached RTP packet span"));
            }
            packets.push(p);
        }
        Ok(Packets {
            timestamp,
            ssrc,
            seq,
            ts_offset,
            data,
            packets,
        })
    }

    /// The payload of packet `i`, borrowed.
    pub fn payload_ref(&self, i: usize) -> &[u8] {
        let p = self.packets[i];
        &self.data[p.start as usize..p.end as usize]
    }
}

/// What one player puts in the headers of the packets it is sent: its
/// SSRC, payload type, next sequence number and timestamp offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// SSRC of the track for this player.
    pub ssrc: u32,
    /// Payload type (as in the SDP).
    pub payload_type: u8,
    /// Sequence number of the next packet.
    pub seq: u16,
    /// Added to every timestamp (random per player per RFC 3550).
    pub ts_offset: u32,
    /// Packets stamped.
    pub packets: u64,
    /// Payload bytes stamped.
    pub octets: u64,
    /// The last RTP timestamp stamped.
    pub last_timestamp: u32,
}

impl Stamp {
    /// A stamp starting at `seq` with `ts_offset`.
    pub fn new(ssrc: u32, payload_type: u8, seq: u16, ts_offset: u32) -> Stamp {
        Stamp {
            ssrc,
            payload_type,
            seq,
            ts_offset,
            packets: 0,
            octets: 0,
            last_timestamp: ts_offset,
        }
    }

    /// The header of packet `i` of `p`; advances the sequence number and
    /// the counters (for sender reports).
    #[inline]
    pub fn header(&mut self, p: &Packets, i: usize) -> [u8; RTP_HEADER_LEN] {
        let info = p.packets[i];
        let timestamp = p
            .timestamp
            .wrapping_add(info.ts_step)
            .wrapping_add(self.ts_offset);
        let h = RtpHeader {
            marker: info.marker,
            payload_type: self.payload_type,
            seq: self.seq,
            timestamp,
            ssrc: self.ssrc,
        }
        .to_bytes();
        self.seq = self.seq.wrapping_add(1);
        self.packets += 1;
        self.octets += (info.end - info.start) as u64;
        self.last_timestamp = timestamp;
        h
    }

    /// A sender report of this player's stream: `ntp` is now (wall clock,
    /// see [`crate::clock::unix_us_to_ntp`]) and `rtp_time` the RTP
    /// timestamp of now in the player's timeline
    /// ([`crate::clock::rtp_timestamp`] of the stream's current time, with
    /// this stamp's `ts_offset`).
    pub fn sender_report(&self, ntp: u64, rtp_time: u32) -> SenderReport {
        SenderReport {
            ssrc: self.ssrc,
            ntp,
            rtp_time,
            packets: self.packets as u32,
            octets: self.octets as u32,
            reports: Vec::new(),
        }
    }

    /// Header and payload of packet `i`, appended to `out` (for TCP
    /// interleaving or a datagram buffer).
    pub fn write(&mut self, p: &Packets, i: usize, out: &mut Vec<u8>) {
        let h = self.header(p, i);
        out.extend_from_slice(&h);
        out.extend_from_slice(p.payload_ref(i));
    }
}

#[derive(Debug, Clone)]
enum Kind {
    Video {
        codec: VideoCodec,
        /// Parameter sets of the configuration, in record order.
        params: Vec<Bytes>,
        length_size: usize,
    },
    Aac,
    Opus,
    G711,
    Vp8,
    Vp9 {
        /// The next picture's id (15 bits, wrapping).
        picture_id: u16,
    },
    Av1 {
        /// The configuration record's OBUs (the sequence header).
        config_obus: Bytes,
    },
}

/// Frames of one track → [`Packets`].
#[derive(Debug, Clone)]
pub struct Packetizer {
    codec: u32,
    rate: u32,
    max_payload: usize,
    kind: Kind,
}

/// The RTP clock rate of a codec: 90 kHz for video, 48 kHz for Opus,
/// 8 kHz for G.711, the sampling rate for AAC (from its
/// AudioSpecificConfig, 0 without one).
pub fn clock_rate(codec: u32, config: Option<&[u8]>) -> u32 {
    match codec {
        RILL_CODEC_H264 | RILL_CODEC_H265 | RILL_CODEC_VP8 | RILL_CODEC_VP9 | RILL_CODEC_AV1 => {
            90_000
        }
        RILL_CODEC_OPUS => 48_000,
        RILL_CODEC_PCMA | RILL_CODEC_PCMU => 8_000,
        RILL_CODEC_AAC => config
            .and_then(|c| AacConfig::parse(c).ok())
            .map_or(0, |c| c.rate()),
        _ => 0,
    }
}

impl Packetizer {
    /// A packetizer for `codec` with its decoder configuration (avcC/hvcC
    /// record, AudioSpecificConfig; optional until a key frame / the
    /// first AAC frame) and payloads of at most `max_payload` bytes
    /// (at least [`MIN_MAX_PAYLOAD`]; [`DEFAULT_MAX_PAYLOAD`] is a good
    /// choice).
    pub fn new(codec: u32, config: Option<&[u8]>, max_payload: usize) -> Result<Packetizer, Error> {
        let kind = match codec {
            RILL_CODEC_H264 => Kind::Video {
                codec: VideoCodec::H264,
                params: Vec::new(),
                length_size: 4,
            },
            RILL_CODEC_H265 => Kind::Video {
                codec: VideoCodec::H265,
                params: Vec::new(),
                length_size: 4,
            },
            RILL_CODEC_AAC => Kind::Aac,
            RILL_CODEC_OPUS => Kind::Opus,
            RILL_CODEC_PCMA | RILL_CODEC_PCMU => Kind::G711,
            RILL_CODEC_VP8 => Kind::Vp8,
            RILL_CODEC_VP9 => Kind::Vp9 { picture_id: 0 },
            RILL_CODEC_AV1 => Kind::Av1 {
                config_obus: Bytes::new(),
            },
            _ => return Err(Error::Unsupported("codec over RTP")),
        };
        let mut p = Packetizer {
            codec,
            rate: clock_rate(codec, None),
            max_payload: max_payload.max(MIN_MAX_PAYLOAD),
            kind,
        };
        if let Some(c) = config {
            p.set_config(c)?;
        }
        Ok(p)
    }

    /// The codec.
    pub fn codec(&self) -> u32 {
        self.codec
    }

    /// The RTP clock rate (0 for AAC before its configuration).
    pub fn clock_rate(&self) -> u32 {
        self.rate
    }

    /// Takes new decoder configuration (what a config frame carries).
    pub fn set_config(&mut self, config: &[u8]) -> Result<(), Error> {
        match &mut self.kind {
            Kind::Video {
                codec,
                params,
                length_size,
            } => {
                let sets = match codec {
                    VideoCodec::H264 => parse_avc_record(config)?,
                    VideoCodec::H265 => parse_hevc_record(config)?,
                };
                *length_size = sets.length_size;
                *params = sets
                    .nals
                    .into_iter()
                    .filter(|n| matches!(codec.kind(n), NalKind::Vps | NalKind::Sps | NalKind::Pps))
                    .collect();
            }
            Kind::Aac => {
                self.rate = AacConfig::parse(config)?.rate();
            }
            Kind::Av1 { config_obus } => {
                // AV1CodecConfigurationRecord: 4 bytes, then configOBUs.
                if config.len() < 4 || config[0] != 0x81 {
                    return Err(Error::Malformed("AV1CodecConfigurationRecord"));
                }
                av1::obus(&config[4..])?;
                *config_obus = Bytes::copy_from_slice(&config[4..]);
            }
            Kind::Opus | Kind::G711 | Kind::Vp8 | Kind::Vp9 { .. } => {}
        }
        Ok(())
    }

    /// The packets of `frame`. A config frame updates the configuration
    /// and makes no packet.
    pub fn packetize(&mut self, frame: &Frame) -> Result<Packets, Error> {
        if frame.is_config() {
            self.set_config(&frame.payload)?;
            return Ok(Packets::default());
        }
        if self.rate == 0 {
            return Err(Error::MissingConfig("AAC without AudioSpecificConfig"));
        }
        let mut b = Builder {
            data: BytesMut::with_capacity(frame.payload.len() + 64),
            packets: Vec::new(),
            max: self.max_payload,
        };
        match &mut self.kind {
            Kind::Video {
                codec,
                params,
                length_size,
            } => {
                let codec = *codec;
                let mut nals: Vec<&[u8]> = Vec::new();
                let mut has_sps = false;
                for n in length_prefixed_nals(&frame.payload, *length_size) {
                    let n = n?;
                    if n.is_empty() {
                        continue;
                    }
                    match codec.kind(n) {
                        NalKind::Aud => continue,
                        NalKind::Sps => has_sps = true,
                        _ => {}
                    }
                    if nals.len() >= MAX_FRAME_NALS {
                        return Err(Error::TooMany("NAL units in a frame"));
                    }
                    nals.push(n);
                }
                if frame.is_key() && !has_sps && !params.is_empty() {
                    b.aggregate(codec, params);
                }
                for n in &nals {
                    b.nal(codec, n);
                }
                if let Some(last) = b.packets.last_mut() {
                    last.marker = true;
                }
            }
            Kind::Aac => {
                let au = &frame.payload[..];
                if au.len() > MAX_AAC_AU {
                    return Err(Error::TooLarge {
                        len: au.len(),
                        max: MAX_AAC_AU,
                    });
                }
                let header = [
                    0x00,
                    0x10,
                    (au.len() >> 5) as u8,
                    ((au.len() & 0x1F) << 3) as u8,
                ];
                let room = b.max - header.len();
                let mut chunks = au.chunks(room).peekable();
                if au.is_empty() {
                    b.packet(&[&header], true, 0);
                }
                while let Some(c) = chunks.next() {
                    b.packet(&[&header, c], chunks.peek().is_none(), 0);
                }
            }
            Kind::Opus => {
                b.packet(&[&frame.payload], false, 0);
            }
            Kind::G711 => {
                for (i, c) in frame.payload.chunks(b.max).enumerate() {
                    b.packet(&[c], false, (i * b.max) as u32);
                }
            }
            Kind::Vp8 => {
                let room = b.max - 1;
                let n = frame.payload.len().div_ceil(room);
                for (i, c) in frame.payload.chunks(room).enumerate() {
                    b.packet(&[&[vp8::descriptor(i == 0)], c], i + 1 == n, 0);
                }
            }
            Kind::Vp9 { picture_id } => {
                let id = *picture_id;
                *picture_id = (id + 1) & 0x7FFF;
                let inter = !frame.is_key();
                let room = b.max - 4;
                let n = frame.payload.len().div_ceil(room);
                for (i, c) in frame.payload.chunks(room).enumerate() {
                    let (d, len) = vp9::descriptor(id, inter, i == 0, i + 1 == n);
                    b.packet(&[&d[..len], c], i + 1 == n, 0);
                }
            }
            Kind::Av1 { config_obus } => {
                let mut obus: Vec<_> = av1::obus(&frame.payload)?
                    .into_iter()
                    .filter(|o| o.travels())
                    .collect();
                let key = frame.is_key();
                if key && !obus.iter().any(|o| o.is_sequence_header()) {
                    let seq = av1::obus(config_obus)?
                        .into_iter()
                        .filter(|o| o.is_sequence_header());
                    obus.splice(0..0, seq);
                }
                let mut payloads = Vec::new();
                let new_sequence = key && obus.iter().any(|o| o.is_sequence_header());
                av1::packetize(&obus, b.max, new_sequence, &mut payloads);
                let n = payloads.len();
                for (i, p) in payloads.iter().enumerate() {
                    b.packet(&[p], i + 1 == n, 0);
                }
            }
        }
        Ok(Packets {
            timestamp: rtp_timestamp(frame.pts, self.rate, 0),
            data: b.data.freeze(),
            packets: b.packets,
            ..Packets::default()
        })
    }
}

struct Builder {
    data: BytesMut,
    packets: Vec<PacketInfo>,
    max: usize,
}

impl Builder {
    fn packet(&mut self, parts: &[&[u8]], marker: bool, ts_step: u32) {
        let start = self.data.len() as u32;
        for p in parts {
            self.data.put_slice(p);
        }
        self.packets.push(PacketInfo {
            start,
            end: self.data.len() as u32,
            marker,
            ts_step,
        });
    }

    /// One NAL: alone when it fits, else in fragments.
    fn nal(&mut self, codec: VideoCodec, nal: &[u8]) {
        if nal.len() <= self.max {
            self.packet(&[nal], false, 0);
            return;
        }
        match codec {
            VideoCodec::H264 => {
                let indicator = (nal[0] & 0xE0) | 28;
                let t = nal[0] & 0x1F;
                self.fragments(&[indicator], t, &nal[1..]);
            }
            VideoCodec::H265 => {
                let hdr = [(nal[0] & 0x81) | (49 << 1), nal[1]];
                let t = (nal[0] >> 1) & 0x3F;
                self.fragments(&hdr, t, &nal[2..]);
            }
        }
    }

    fn fragments(&mut self, hdr: &[u8], t: u8, body: &[u8]) {
        let room = self.max - hdr.len() - 1;
        let n = body.len().div_ceil(room);
        for (i, c) in body.chunks(room).enumerate() {
            let mut fu = t;
            if i == 0 {
                fu |= 0x80;
            }
            if i + 1 == n {
                fu |= 0x40;
            }
            self.packet(&[hdr, &[fu], c], false, 0);
        }
    }

    /// Parameter sets: aggregated (STAP-A, AP) while they fit together,
    /// alone otherwise.
    fn aggregate(&mut self, codec: VideoCodec, nals: &[Bytes]) {
        let hdr_len = match codec {
            VideoCodec::H264 => 1,
            VideoCodec::H265 => 2,
        };
        let mut i = 0;
        while i < nals.len() {
            // How many fit together from i.
            let mut size = hdr_len;
            let mut j = i;
            while j < nals.len()
                && nals[j].len() >= hdr_len
                && nals[j].len() <= 0xFFFF
                && size + 2 + nals[j].len() <= self.max
            {
                size += 2 + nals[j].len();
                j += 1;
            }
            if j - i < 2 {
                self.nal(codec, &nals[i]);
                i += 1;
                continue;
            }
            let group = &nals[i..j];
            let start = self.data.len() as u32;
            match codec {
                VideoCodec::H264 => {
                    let f = group.iter().fold(0, |a, n| a | (n[0] & 0x80));
                    let nri = group.iter().map(|n| n[0] & 0x60).max().unwrap_or(0);
                    self.data.put_u8(f | nri | 24);
                }
                VideoCodec::H265 => {
                    let f = group.iter().fold(0, |a, n| a | (n[0] & 0x80));
                    let layer = group
                        .iter()
                        .map(|n| (((n[0] & 1) as u16) << 5) | (n[1] >> 3) as u16)
                        .min()
                        .unwrap_or(0);
                    let tid = group.iter().map(|n| n[1] & 7).min().unwrap_or(1).max(1);
                    self.data.put_u8(f | (48 << 1) | (layer >> 5) as u8);
                    self.data.put_u8((((layer & 0x1F) as u8) << 3) | tid);
                }
            }
            for n in group {
                self.data.put_u16(n.len() as u16);
                self.data.put_slice(n);
            }
            self.packets.push(PacketInfo {
                start,
                end: self.data.len() as u32,
                marker: false,
                ts_step: 0,
            });
            i = j;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rill_abi::RILL_FRAME_KEY;
    use rill_ts::fuzzing::seeds;

    fn frame(codec: u32, flags: u32, pts: i64, payload: Bytes) -> Frame {
        Frame {
            track: 0,
            codec,
            flags,
            pts,
            dts: pts,
            payload,
        }
    }

    #[test]
    fn h264_key_frame_stap_a_then_fu_a() {
        let config = seeds::video_config(RILL_CODEC_H264);
        let mut p = Packetizer::new(RILL_CODEC_H264, Some(&config), 1200).unwrap();
        let au = seeds::video_au(RILL_CODEC_H264, true, 3000, true, &[7]);
        let pk = p
            .packetize(&frame(RILL_CODEC_H264, RILL_FRAME_KEY, 1_000_000, au))
            .unwrap();
        assert_eq!(pk.timestamp, 90_000);
        // STAP-A (SPS+PPS), SEI, three FU-A.
        assert_eq!(pk.len(), 5);
        assert_eq!(pk.payload_ref(0)[0] & 0x1F, 24);
        assert_eq!(pk.payload_ref(1)[0] & 0x1F, 6);
        let fus: Vec<_> = (2..5).map(|i| pk.payload_ref(i)).collect();
        assert_eq!(fus[0][0] & 0x1F, 28);
        assert_eq!(fus[0][1], 0x80 | 5);
        assert_eq!(fus[1][1], 5);
        assert_eq!(fus[2][1], 0x40 | 5);
        assert!(pk
            .packets
            .iter()
            .all(|i| (i.end - i.start) as usize <= 1200));
        assert!(pk.packets[4].marker && !pk.packets[3].marker);
        // Stamped for a player.
        let mut s = Stamp::new(0xAABB, 96, 65535, 10);
        let mut out = Vec::new();
        s.write(&pk, 0, &mut out);
        let h = crate::packet::RtpPacket::parse(&out).unwrap();
        assert_eq!(h.header.seq, 65535);
        assert_eq!(h.header.timestamp, 90_010);
        assert_eq!(s.seq, 0);
    }

    #[test]
    fn packets_through_a_byte_cache() {
        let config = seeds::video_config(RILL_CODEC_H264);
        let mut p = Packetizer::new(RILL_CODEC_H264, Some(&config), 1200).unwrap();
        let au = seeds::video_au(RILL_CODEC_H264, true, 5000, true, &[1, 2]);
        let mut pk = p
            .packetize(&frame(RILL_CODEC_H264, RILL_FRAME_KEY, 40_000, au))
            .unwrap();
        (pk.ssrc, pk.seq, pk.ts_offset) = (0xDEAD_BEEF, 65_000, 12_345);
        let cached = pk.to_bytes();
        let back = Packets::from_bytes(cached.clone()).unwrap();
        assert_eq!(back, pk);
        assert!(Packets::from_bytes(cached.slice(..cached.len() - 1)).is_err());
        assert!(Packets::from_bytes(cached.slice(..20)).is_err());
        assert!(Packets::from_bytes(Bytes::from_static(
            b"RTP2\0\0\0\0\0\0\0\0\0\0\0\0\0\0\xFF\xFF\xFF\xFF"
        ))
        .is_err());
        assert!(Packets::from_bytes(Bytes::new()).is_err());
    }

    #[test]
    fn h265_ap_and_fu() {
        let config = seeds::video_config(RILL_CODEC_H265);
        let mut p = Packetizer::new(RILL_CODEC_H265, Some(&config), 500).unwrap();
        let au = seeds::video_au(RILL_CODEC_H265, true, 1200, false, &[3]);
        let pk = p
            .packetize(&frame(RILL_CODEC_H265, RILL_FRAME_KEY, 0, au))
            .unwrap();
        assert_eq!((pk.payload_ref(0)[0] >> 1) & 0x3F, 48);
        assert_eq!(pk.len(), 1 + 3);
        let fu = pk.payload_ref(1);
        assert_eq!((fu[0] >> 1) & 0x3F, 49);
        assert_eq!(fu[2], 0x80 | 19);
    }

    #[test]
    fn aac_single_and_fragmented() {
        let mut p = Packetizer::new(RILL_CODEC_AAC, Some(&seeds::AAC_ASC), 200).unwrap();
        assert_eq!(p.clock_rate(), 44_100);
        let pk = p
            .packetize(&frame(RILL_CODEC_AAC, 0, 0, Bytes::from(vec![1u8; 100])))
            .unwrap();
        assert_eq!(pk.len(), 1);
        assert_eq!(&pk.payload_ref(0)[..4], &[0, 16, 100 >> 5, (100 & 31) << 3]);
        let pk = p
            .packetize(&frame(RILL_CODEC_AAC, 0, 0, Bytes::from(vec![1u8; 500])))
            .unwrap();
        assert_eq!(pk.len(), 3);
        assert!(!pk.packets[0].marker && pk.packets[2].marker);
        assert!(p
            .packetize(&frame(RILL_CODEC_AAC, 0, 0, Bytes::from(vec![1u8; 9000])))
            .is_err());
    }

    #[test]
    fn g711_split_in_time() {
        let mut p = Packetizer::new(RILL_CODEC_PCMA, None, 160).unwrap();
        let pk = p
            .packetize(&frame(
                RILL_CODEC_PCMA,
                0,
                20_000,
                Bytes::from(vec![0xD5; 400]),
            ))
            .unwrap();
        assert_eq!(pk.timestamp, 160);
        let steps: Vec<u32> = pk.packets.iter().map(|i| i.ts_step).collect();
        assert_eq!(steps, vec![0, 160, 320]);
    }

    #[test]
    fn aac_without_config_is_an_error() {
        let mut p = Packetizer::new(RILL_CODEC_AAC, None, 1200).unwrap();
        assert!(p
            .packetize(&frame(RILL_CODEC_AAC, 0, 0, Bytes::from_static(&[1])))
            .is_err());
        assert!(Packetizer::new(rill_abi::RILL_CODEC_MP3, None, 1200).is_err());
    }
}
