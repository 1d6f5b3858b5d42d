//! RTP packets of one track → host frames.
//!
//! - H.264 (RFC 6184): single NAL unit packets, STAP-A, FU-A (STAP-B,
//!   MTAP and FU-B are refused). H.265 (RFC 7798, no DONL): single, AP,
//!   FU (PACI refused). NAL units of one timestamp make one frame of 4-byte
//!   length-prefixed NALs, complete at the marker bit (or when the
//!   timestamp changes); access unit delimiters are dropped. Parameter sets
//!   are taken out of the frame, kept by id, and become a config frame
//!   (avcC / hvcC record) before the first frame and whenever they
//!   change; those of the SDP (sprop-*) start the set. Key frames are
//!   those with an IDR (H.264) or IRAP (H.265) picture, or an H.264 I
//!   slice after an SPS in the same access unit (a recovery point, as
//!   cameras that send IDR pictures only at the start do).
//! - AAC (RFC 3640, AAC-hbr and the like: AU headers with the SDP's
//!   sizelength/indexlength/indexdeltalength; no interleaving): each access
//!   unit a frame, 1024 samples apart within a packet; fragmented access
//!   units reassembled. The AudioSpecificConfig of the SDP is the config
//!   frame.
//! - Opus (RFC 7587): a packet is a frame; the config frame is an OpusHead
//!   for the SDP's channel count. G.711: a packet is a frame.
//!
//! Packets must come in sequence order (through a
//! [`crate::reorder::Reorder`] on UDP). A sequence number gap is a loss:
//! the frame in progress is dropped, the next frame delivered is flagged
//! `RILL_FRAME_DISCONTINUITY`, and video waits for the next key frame.
//! Video also waits for its first key frame. Frames are bounded
//! ([`Limits`]); one that grows past them is dropped as if lost.
//!
//! Times: the track's [`TrackClock`] (first timestamp = 0 µs, plus its
//! `base_us`). RTP carries presentation times only: audio's DTS is its
//! PTS; video's is derived (see [`Limits::reorder_depth`]): each DTS is the
//! PTS `depth` frames back in presentation order, so DTS never goes back
//! and stays at or below the PTS with B-frames up to that depth (a deeper
//! reordering, seen as a DTS above its PTS, deepens it, up to
//! [`MAX_REORDER_DEPTH`]).

use bytes::{BufMut, Bytes, BytesMut};
use rill_abi::{
    RILL_CODEC_AAC, RILL_CODEC_H264, RILL_CODEC_H265, RILL_CODEC_OPUS, RILL_CODEC_PCMA,
    RILL_CODEC_PCMU, RILL_CODEC_VP8, RILL_FRAME_CONFIG, RILL_FRAME_DISCONTINUITY, RILL_FRAME_KEY,
};
use rill_ts::nal::{
    build_avc_record, build_hevc_record, param_set_id, parse_avc_record, parse_hevc_record,
    NalKind, VideoCodec,
};
use rill_ts::Frame;

use crate::clock::TrackClock;
use crate::error::Error;
use crate::packet::RtpPacket;

/// Bounds of a [`Depacketizer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest frame, bytes (default 8 MiB).
    pub max_frame_size: usize,
    /// Most NAL units in a video frame (default 1024).
    pub max_nals: usize,
    /// Most parameter sets of each kind kept (default 32).
    pub max_param_sets: usize,
    /// Most AAC access units in one packet (default 64).
    pub max_aus_per_packet: usize,
    /// Whether video waits for a key frame at the start and after a loss
    /// (default true).
    pub wait_for_key: bool,
    /// Frames of reordering (B-frames) video DTS makes room for at the
    /// start (default 2, what x264's B-pyramid needs; 0 gives DTS = PTS
    /// until a reordered frame is seen).
    pub reorder_depth: usize,
}

/// Deepest video reordering followed.
pub const MAX_REORDER_DEPTH: usize = 8;

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_frame_size: 8 << 20,
            max_nals: 1024,
            max_param_sets: 32,
            max_aus_per_packet: 64,
            wait_for_key: true,
            reorder_depth: 2,
        }
    }
}

/// Counters of a [`Depacketizer`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DepacketizerStats {
    /// Packets taken.
    pub packets: u64,
    /// Packets found missing (sequence number gaps).
    pub lost: u64,
    /// Frames delivered (config frames not counted).
    pub frames: u64,
    /// Frames dropped: damaged by a loss, too large, or before a key frame.
    pub dropped_frames: u64,
    /// Packets that could not be read (malformed, unsupported).
    pub bad_packets: u64,
    /// Times the sender's SSRC changed (a restarted sender).
    pub ssrc_changes: u64,
}

/// AAC's AU header layout (from the SDP's fmtp).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AacLayout {
    /// Bits of an AU size (13 for AAC-hbr, 6 for AAC-lbr).
    pub size_length: u8,
    /// Bits of the first AU index (3 / 2).
    pub index_length: u8,
    /// Bits of the following AU index deltas (3 / 2).
    pub index_delta_length: u8,
}

impl Default for AacLayout {
    fn default() -> Self {
        AacLayout {
            size_length: 13,
            index_length: 3,
            index_delta_length: 3,
        }
    }
}

/// What a [`Depacketizer`] needs to know of its track (from the SDP).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackParams {
    /// The host track id its frames get.
    pub track: u32,
    /// Codec (`RILL_CODEC_*`).
    pub codec: u32,
    /// RTP clock rate.
    pub clock_rate: u32,
    /// Decoder configuration known up front (avcC/hvcC record,
    /// AudioSpecificConfig, OpusHead).
    pub config: Option<Bytes>,
    /// AAC AU header layout.
    pub aac: AacLayout,
}

#[derive(Debug)]
struct VideoState {
    codec: VideoCodec,
    /// Parameter sets by kind (VPS, SPS, PPS), each (id, NAL).
    sets: [Vec<(u32, Bytes)>; 3],
    config_dirty: bool,
    au: BytesMut,
    au_nals: usize,
    au_ts: Option<u32>,
    au_key: bool,
    /// The access unit brought an SPS.
    au_sps: bool,
    /// The NAL under FU reassembly.
    fu: Option<BytesMut>,
    /// The access unit lost a packet or grew too large: drop it.
    broken: bool,
    wait_key: bool,
    /// PTS of delivered frames not yet used as a DTS, sorted.
    dts_window: Vec<i64>,
    depth: usize,
    last_dts: Option<i64>,
}

#[derive(Debug)]
struct AacState {
    layout: AacLayout,
    /// A fragmented access unit: its size, timestamp and bytes so far.
    frag: Option<(usize, u32, BytesMut)>,
}

/// A VP8 frame being put together (RFC 7741).
#[derive(Debug, Default)]
struct Vp8State {
    frame: BytesMut,
    ts: Option<u32>,
    key: bool,
    /// A packet of the frame went missing (or its start never came).
    broken: bool,
    wait_key: bool,
}

#[derive(Debug)]
enum State {
    Video(Box<VideoState>),
    Aac(AacState),
    Vp8(Vp8State),
    Whole,
}

/// The depacketizer of one track (see the module docs).
#[derive(Debug)]
pub struct Depacketizer {
    track: u32,
    codec: u32,
    limits: Limits,
    /// The track's clock (its `base_us` may be set for A/V sync).
    pub clock: TrackClock,
    state: State,
    next_seq: Option<u16>,
    ssrc: Option<u32>,
    /// The latest PTS given out (µs).
    last_pts: Option<i64>,
    discontinuity: bool,
    /// A config frame to deliver before the next frame.
    pending_config: Option<Bytes>,
    /// Counters.
    pub stats: DepacketizerStats,
}

const KINDS: [NalKind; 3] = [NalKind::Vps, NalKind::Sps, NalKind::Pps];

impl Depacketizer {
    /// A depacketizer for a track.
    pub fn new(params: &TrackParams, limits: Limits) -> Result<Depacketizer, Error> {
        let state = match params.codec {
            RILL_CODEC_H264 | RILL_CODEC_H265 => {
                let codec = if params.codec == RILL_CODEC_H264 {
                    VideoCodec::H264
                } else {
                    VideoCodec::H265
                };
                let mut v = VideoState {
                    codec,
                    sets: Default::default(),
                    config_dirty: false,
                    au: BytesMut::new(),
                    au_nals: 0,
                    au_ts: None,
                    au_key: false,
                    au_sps: false,
                    fu: None,
                    broken: false,
                    wait_key: limits.wait_for_key,
                    dts_window: Vec::new(),
                    depth: limits.reorder_depth.min(MAX_REORDER_DEPTH),
                    last_dts: None,
                };
                if let Some(c) = &params.config {
                    let sets = match codec {
                        VideoCodec::H264 => parse_avc_record(c)?,
                        VideoCodec::H265 => parse_hevc_record(c)?,
                    };
                    for n in sets.nals {
                        v.param_set(&n, limits.max_param_sets);
                    }
                }
                State::Video(Box::new(v))
            }
            RILL_CODEC_AAC => State::Aac(AacState {
                layout: params.aac,
                frag: None,
            }),
            RILL_CODEC_OPUS | RILL_CODEC_PCMA | RILL_CODEC_PCMU => State::Whole,
            RILL_CODEC_VP8 => State::Vp8(Vp8State {
                wait_key: limits.wait_for_key,
                ..Vp8State::default()
            }),
            _ => return Err(Error::Unsupported("codec over RTP")),
        };
        let a = params.aac;
        if a.size_length == 0
            || a.size_length > 16
            || a.index_length > 8
            || a.index_delta_length > 8
        {
            return Err(Error::Unsupported("AAC AU header layout"));
        }
        let pending_config = match &state {
            State::Video(_) => None,
            _ => params.config.clone(),
        };
        Ok(Depacketizer {
            track: params.track,
            codec: params.codec,
            limits,
            clock: TrackClock::new(params.clock_rate),
            state,
            next_seq: None,
            ssrc: None,
            last_pts: None,
            discontinuity: false,
            pending_config,
            stats: DepacketizerStats::default(),
        })
    }

    /// The codec.
    pub fn codec(&self) -> u32 {
        self.codec
    }

    /// Takes the next packet (in sequence order); complete frames go to
    /// `out` (a config frame first when the configuration is new). An
    /// error is about this packet (it was dropped); the depacketizer goes
    /// on.
    pub fn push(&mut self, pkt: &RtpPacket<'_>, out: &mut Vec<Frame>) -> Result<(), Error> {
        self.stats.packets += 1;
        let ssrc = pkt.header.ssrc;
        if self.ssrc.is_some_and(|s| s != ssrc) {
            // A restarted sender: new sequence numbers and timestamps.
            // Its times go on from the last given out; what was in
            // progress is dropped.
            self.stats.ssrc_changes += 1;
            self.loss(0);
            self.next_seq = None;
            self.clock.reset();
            if let Some(t) = self.last_pts {
                self.clock.base_us = t;
            }
            if let State::Video(v) = &mut self.state {
                v.au_ts = None;
                v.au.clear();
                v.au_nals = 0;
                v.au_key = false;
                v.au_sps = false;
                v.broken = false;
            }
        }
        self.ssrc = Some(ssrc);
        let seq = pkt.header.seq;
        if let Some(next) = self.next_seq {
            let gap = seq.wrapping_sub(next);
            if gap != 0 {
                if gap >= 0x8000 {
                    // Behind: a duplicate or a late packet.
                    self.stats.bad_packets += 1;
                    return Err(Error::Malformed("RTP sequence number behind"));
                }
                self.loss(gap as u32);
            }
        }
        self.next_seq = Some(seq.wrapping_add(1));
        let r = self.take(pkt, out);
        if r.is_err() {
            self.stats.bad_packets += 1;
        }
        r
    }

    /// Tells the depacketizer that packets were lost (a reorder buffer's
    /// `Out::Lost`, or the end of a stream): the frame in progress is
    /// dropped. A gap in sequence numbers is found without this.
    pub fn loss(&mut self, n: u32) {
        self.stats.lost += n as u64;
        self.discontinuity = true;
        match &mut self.state {
            State::Video(v) => {
                if !v.au.is_empty() || v.fu.is_some() {
                    v.broken = true;
                }
                v.fu = None;
                if self.limits.wait_for_key {
                    v.wait_key = true;
                }
            }
            State::Aac(a) => a.frag = None,
            State::Vp8(v) => {
                v.broken |= v.ts.is_some();
                if self.limits.wait_for_key {
                    v.wait_key = true;
                }
            }
            State::Whole => {}
        }
    }

    /// Delivers a video frame still waiting for its marker (at the end of
    /// a stream).
    pub fn flush(&mut self, out: &mut Vec<Frame>) {
        match self.state {
            State::Video(_) => self.finish_au(out),
            State::Vp8(_) => self.finish_vp8(out),
            _ => {}
        }
    }

    fn emit(&mut self, mut f: Frame, out: &mut Vec<Frame>) {
        self.last_pts = Some(self.last_pts.map_or(f.pts, |t| t.max(f.pts)));
        if let Some(c) = self.pending_config.take() {
            out.push(Frame {
                track: self.track,
                codec: self.codec,
                flags: RILL_FRAME_CONFIG,
                pts: f.pts,
                dts: f.dts,
                payload: c,
            });
        }
        if self.discontinuity {
            f.flags |= RILL_FRAME_DISCONTINUITY;
            self.discontinuity = false;
        }
        self.stats.frames += 1;
        out.push(f);
    }

    fn take(&mut self, pkt: &RtpPacket<'_>, out: &mut Vec<Frame>) -> Result<(), Error> {
        let ts = pkt.header.timestamp;
        match &mut self.state {
            State::Whole => {
                if pkt.payload.is_empty() {
                    return Err(Error::Truncated("RTP payload"));
                }
                if pkt.payload.len() > self.limits.max_frame_size {
                    self.stats.dropped_frames += 1;
                    return Err(Error::TooLarge {
                        len: pkt.payload.len(),
                        max: self.limits.max_frame_size,
                    });
                }
                let pts = self.clock.to_us(ts);
                let f = Frame {
                    track: self.track,
                    codec: self.codec,
                    flags: 0,
                    pts,
                    dts: pts,
                    payload: Bytes::copy_from_slice(pkt.payload),
                };
                self.emit(f, out);
                Ok(())
            }
            State::Aac(_) => self.take_aac(pkt, out),
            State::Vp8(_) => self.take_vp8(pkt, out),
            State::Video(v) => {
                if v.au_ts.is_some_and(|t| t != ts) {
                    self.finish_au(out);
                }
                let State::Video(v) = &mut self.state else {
                    return Ok(());
                };
                v.au_ts = Some(ts);
                let r = v.take(pkt.payload, &self.limits);
                if r.is_err() {
                    v.broken = true;
                    v.fu = None;
                }
                if pkt.header.marker {
                    self.finish_au(out);
                }
                r
            }
        }
    }

    fn finish_au(&mut self, out: &mut Vec<Frame>) {
        let State::Video(v) = &mut self.state else {
            return;
        };
        let Some(ts) = v.au_ts.take() else {
            return;
        };
        let au = v.au.split().freeze();
        let nals = std::mem::take(&mut v.au_nals);
        let key = std::mem::take(&mut v.au_key);
        v.au_sps = false;
        let broken = std::mem::take(&mut v.broken);
        v.fu = None;
        let pts = self.clock.to_us(ts);
        if v.config_dirty {
            if let Ok(c) = v.record() {
                v.config_dirty = false;
                self.pending_config = Some(c);
            }
        }
        if nals == 0 {
            if broken {
                self.stats.dropped_frames += 1;
            }
            return;
        }
        if broken || (v.wait_key && !key) {
            self.stats.dropped_frames += 1;
            if broken && self.limits.wait_for_key {
                v.wait_key = true;
            }
            return;
        }
        if key {
            v.wait_key = false;
        }
        let dts = v.dts(pts);
        let f = Frame {
            track: self.track,
            codec: self.codec,
            flags: if key { RILL_FRAME_KEY } else { 0 },
            pts,
            dts,
            payload: au,
        };
        self.emit(f, out);
    }

    fn take_vp8(&mut self, pkt: &RtpPacket<'_>, out: &mut Vec<Frame>) -> Result<(), Error> {
        let ts = pkt.header.timestamp;
        let d = crate::vp8::parse(pkt.payload).ok_or(Error::Malformed("VP8 payload descriptor"))?;
        let State::Vp8(v) = &mut self.state else {
            return Ok(());
        };
        if v.ts.is_some_and(|t| t != ts) {
            // The last frame's marker never came.
            v.broken = true;
            self.finish_vp8(out);
        }
        let State::Vp8(v) = &mut self.state else {
            return Ok(());
        };
        let data = &pkt.payload[d.data..];
        if d.start {
            v.frame.clear();
            v.broken = false;
            v.key = crate::vp8::is_key(data);
        } else if v.ts != Some(ts) {
            // A frame whose start was lost.
            v.broken = true;
        }
        v.ts = Some(ts);
        let r = if v.frame.len() + data.len() > self.limits.max_frame_size {
            v.broken = true;
            Err(Error::TooLarge {
                len: v.frame.len() + data.len(),
                max: self.limits.max_frame_size,
            })
        } else {
            if !v.broken {
                v.frame.extend_from_slice(data);
            }
            Ok(())
        };
        if pkt.header.marker {
            self.finish_vp8(out);
        }
        r
    }

    fn finish_vp8(&mut self, out: &mut Vec<Frame>) {
        let State::Vp8(v) = &mut self.state else {
            return;
        };
        let Some(ts) = v.ts.take() else {
            return;
        };
        let frame = v.frame.split().freeze();
        let (key, broken) = (v.key, std::mem::take(&mut v.broken));
        if broken || frame.is_empty() || (v.wait_key && !key) {
            self.stats.dropped_frames += 1;
            if broken && self.limits.wait_for_key {
                v.wait_key = true;
            }
            return;
        }
        if key {
            v.wait_key = false;
        }
        let pts = self.clock.to_us(ts);
        let f = Frame {
            track: self.track,
            codec: self.codec,
            flags: if key { RILL_FRAME_KEY } else { 0 },
            pts,
            dts: pts,
            payload: frame,
        };
        self.emit(f, out);
    }

    fn take_aac(&mut self, pkt: &RtpPacket<'_>, out: &mut Vec<Frame>) -> Result<(), Error> {
        let State::Aac(a) = &mut self.state else {
            return Ok(());
        };
        let layout = a.layout;
        let p = pkt.payload;
        if p.len() < 2 {
            return Err(Error::Truncated("AU-headers-length"));
        }
        let header_bits = u16::from_be_bytes([p[0], p[1]]) as usize;
        let header_bytes = header_bits.div_ceil(8);
        let data = p
            .get(2 + header_bytes..)
            .ok_or(Error::Truncated("AU headers"))?;
        let mut bits = Bits {
            data: &p[2..2 + header_bytes],
            pos: 0,
        };
        let mut sizes: Vec<usize> = Vec::new();
        while bits.pos < header_bits {
            if sizes.len() >= self.limits.max_aus_per_packet {
                return Err(Error::TooMany("AAC access units in a packet"));
            }
            let size = bits.read(layout.size_length)? as usize;
            let index = bits.read(if sizes.is_empty() {
                layout.index_length
            } else {
                layout.index_delta_length
            })?;
            if index != 0 {
                return Err(Error::Unsupported("interleaved AAC"));
            }
            sizes.push(size);
        }
        let ts = pkt.header.timestamp;
        // A fragment of an access unit larger than the packet.
        if sizes.len() == 1 && (sizes[0] > data.len() || a.frag.is_some()) {
            let size = sizes[0];
            if size > self.limits.max_frame_size {
                a.frag = None;
                self.stats.dropped_frames += 1;
                return Err(Error::TooLarge {
                    len: size,
                    max: self.limits.max_frame_size,
                });
            }
            let frag = match &mut a.frag {
                Some((s, t, buf)) if *s == size && *t == ts => buf,
                other => {
                    if other.is_some() {
                        self.stats.dropped_frames += 1;
                    }
                    *other = Some((size, ts, BytesMut::with_capacity(size)));
                    &mut other.as_mut().expect("just set").2
                }
            };
            if frag.len() + data.len() > size {
                a.frag = None;
                self.stats.dropped_frames += 1;
                return Err(Error::Malformed("AAC fragment beyond its AU size"));
            }
            frag.put_slice(data);
            if frag.len() == size {
                let au = a.frag.take().expect("fragment").2.freeze();
                let pts = self.clock.to_us(ts);
                self.emit(self.audio_frame(pts, au), out);
            } else if pkt.header.marker {
                a.frag = None;
                self.stats.dropped_frames += 1;
                return Err(Error::Truncated("AAC access unit"));
            }
            return Ok(());
        }
        let mut pos = 0;
        let base = self.clock.ticks(ts);
        let rate = self.clock.rate();
        for (i, &size) in sizes.iter().enumerate() {
            let au = data
                .get(pos..pos + size)
                .ok_or(Error::Truncated("AAC access unit"))?;
            pos += size;
            let t = base + 1024 * i as i64;
            let pts = crate::clock::ticks_to_us(t, rate) + self.clock.base_us;
            let f = self.audio_frame(pts, Bytes::copy_from_slice(au));
            self.emit(f, out);
        }
        Ok(())
    }

    fn audio_frame(&self, pts: i64, payload: Bytes) -> Frame {
        Frame {
            track: self.track,
            codec: self.codec,
            flags: 0,
            pts,
            dts: pts,
            payload,
        }
    }
}

/// Whether an H.264 slice header (after the NAL header byte) says I or SI
/// (first_mb_in_slice, then slice_type 2, 4, 7 or 9).
fn h264_i_slice(header: &[u8]) -> bool {
    let mut b = Bits {
        data: &header[..header.len().min(8)],
        pos: 0,
    };
    let _first_mb = b.ue();
    matches!(b.ue(), Some(2 | 4 | 7 | 9))
}

struct Bits<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Bits<'_> {
    /// An Exp-Golomb code (None when cut short or over 16 bits).
    fn ue(&mut self) -> Option<u32> {
        let mut zeros = 0;
        while self.read(1).ok()? == 0 {
            zeros += 1;
            if zeros > 16 {
                return None;
            }
        }
        Some((1 << zeros) - 1 + self.read(zeros).ok()?)
    }

    fn read(&mut self, n: u8) -> Result<u32, Error> {
        let mut v = 0u32;
        for _ in 0..n {
            let byte = *self
                .data
                .get(self.pos / 8)
                .ok_or(Error::Truncated("AU header"))?;
            v = (v << 1) | ((byte >> (7 - self.pos % 8)) & 1) as u32;
            self.pos += 1;
        }
        Ok(v)
    }
}

impl VideoState {
    /// The DTS of the next frame in decode order, whose PTS is `pts`.
    fn dts(&mut self, pts: i64) -> i64 {
        let at = self.dts_window.partition_point(|&p| p <= pts);
        self.dts_window.insert(at, pts);
        let mut dts = if self.dts_window.len() > self.depth {
            self.dts_window.remove(0)
        } else {
            // The first frames: just below the earliest PTS, 1 µs apart.
            self.dts_window[0] - (self.depth + 1 - self.dts_window.len()) as i64
        };
        if let Some(last) = self.last_dts {
            dts = dts.max(last);
        }
        if dts > pts && self.depth < MAX_REORDER_DEPTH {
            // Reordered deeper than allowed for: keep one more frame back
            // from now on.
            self.depth += 1;
        }
        self.last_dts = Some(dts);
        dts
    }

    /// Keeps a parameter set; returns whether it was one.
    fn param_set(&mut self, nal: &[u8], max: usize) -> bool {
        let kind = self.codec.kind(nal);
        let Some(k) = KINDS.iter().position(|&x| x == kind) else {
            return false;
        };
        let id = param_set_id(self.codec, nal).unwrap_or(0);
        let list = &mut self.sets[k];
        let full = list.len() >= max;
        match list.iter_mut().find(|(i, _)| *i == id) {
            Some((_, n)) if n[..] != nal[..] => {
                *n = Bytes::copy_from_slice(nal);
                self.config_dirty = true;
            }
            Some(_) => {}
            None if !full => {
                list.push((id, Bytes::copy_from_slice(nal)));
                self.config_dirty = true;
            }
            None => {}
        }
        true
    }

    fn record(&self) -> Result<Bytes, Error> {
        let get = |k: usize| self.sets[k].iter().map(|(_, n)| &n[..]).collect::<Vec<_>>();
        Ok(match self.codec {
            VideoCodec::H264 => build_avc_record(&get(1), &get(2))?,
            VideoCodec::H265 => build_hevc_record(&get(0), &get(1), &get(2))?,
        })
    }

    /// Adds a complete NAL to the access unit.
    fn nal(&mut self, nal: &[u8], limits: &Limits) -> Result<(), Error> {
        if nal.is_empty() {
            return Ok(());
        }
        match self.codec.kind(nal) {
            NalKind::Aud => return Ok(()),
            NalKind::Vps | NalKind::Sps | NalKind::Pps => {
                if self.codec.kind(nal) == NalKind::Sps {
                    self.au_sps = true;
                }
                self.param_set(nal, limits.max_param_sets);
                return Ok(());
            }
            NalKind::Idr => self.au_key = true,
            NalKind::Other => {
                // An I slice after an SPS: a recovery point (cameras that
                // send IDR pictures only at the start).
                if self.codec == VideoCodec::H264
                    && self.au_sps
                    && self.au_nals == 0
                    && nal[0] & 0x1F == 1
                    && h264_i_slice(&nal[1..])
                {
                    self.au_key = true;
                }
            }
        }
        if self.au_nals >= limits.max_nals {
            return Err(Error::TooMany("NAL units in a frame"));
        }
        if self.au.len() + 4 + nal.len() > limits.max_frame_size {
            return Err(Error::TooLarge {
                len: self.au.len() + 4 + nal.len(),
                max: limits.max_frame_size,
            });
        }
        self.au.put_u32(nal.len() as u32);
        self.au.put_slice(nal);
        self.au_nals += 1;
        Ok(())
    }

    fn take(&mut self, p: &[u8], limits: &Limits) -> Result<(), Error> {
        let (hdr_len, t) = match (self.codec, p) {
            (VideoCodec::H264, [b, ..]) => (1, b & 0x1F),
            (VideoCodec::H265, [b, _, ..]) => (2, (b >> 1) & 0x3F),
            _ => return Err(Error::Truncated("RTP payload")),
        };
        if p[0] & 0x80 != 0 {
            return Err(Error::Malformed("NAL forbidden_zero_bit"));
        }
        let (agg, frag) = match self.codec {
            VideoCodec::H264 => (24, 28),
            VideoCodec::H265 => (48, 49),
        };
        if t == agg {
            let mut rest = &p[hdr_len..];
            while !rest.is_empty() {
                if rest.len() < 2 {
                    return Err(Error::Truncated("aggregation packet"));
                }
                let len = u16::from_be_bytes([rest[0], rest[1]]) as usize;
                let nal = rest
                    .get(2..2 + len)
                    .ok_or(Error::Truncated("aggregated NAL unit"))?;
                self.nal(nal, limits)?;
                rest = &rest[2 + len..];
            }
            Ok(())
        } else if t == frag {
            let fu = *p.get(hdr_len).ok_or(Error::Truncated("FU header"))?;
            let body = &p[hdr_len + 1..];
            let (start, end) = (fu & 0x80 != 0, fu & 0x40 != 0);
            if start {
                if self.fu.is_some() {
                    // A new start without the end of the previous one.
                    self.fu = None;
                    return Err(Error::Malformed("FU start inside a FU"));
                }
                let mut buf = BytesMut::with_capacity(body.len() * 4 + hdr_len);
                match self.codec {
                    VideoCodec::H264 => buf.put_u8((p[0] & 0xE0) | (fu & 0x1F)),
                    VideoCodec::H265 => {
                        buf.put_u8((p[0] & 0x81) | ((fu & 0x3F) << 1));
                        buf.put_u8(p[1]);
                    }
                }
                self.fu = Some(buf);
            }
            let Some(buf) = &mut self.fu else {
                // The start was lost.
                return Err(Error::Malformed("FU without its start"));
            };
            if self.au.len() + buf.len() + body.len() + 4 > limits.max_frame_size {
                self.fu = None;
                return Err(Error::TooLarge {
                    len: self.au.len() + body.len(),
                    max: limits.max_frame_size,
                });
            }
            buf.put_slice(body);
            if end {
                let nal = self.fu.take().expect("FU in progress");
                self.nal(&nal, limits)?;
            }
            Ok(())
        } else {
            match (self.codec, t) {
                (VideoCodec::H264, 1..=23) | (VideoCodec::H265, 0..=47) => self.nal(p, limits),
                _ => Err(Error::Unsupported("RTP payload structure")),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::RtpHeader;
    use crate::packetize::{Packetizer, Stamp};
    use rill_ts::fuzzing::seeds;

    fn params(codec: u32, rate: u32, config: Option<Bytes>) -> TrackParams {
        TrackParams {
            track: 3,
            codec,
            clock_rate: rate,
            config,
            aac: AacLayout::default(),
        }
    }

    /// Packetizes `frames` and returns the datagrams.
    fn send(p: &mut Packetizer, stamp: &mut Stamp, frames: &[Frame]) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        for f in frames {
            let pk = p.packetize(f).unwrap();
            for i in 0..pk.len() {
                let mut d = Vec::new();
                stamp.write(&pk, i, &mut d);
                out.push(d);
            }
        }
        out
    }

    fn receive(d: &mut Depacketizer, datagrams: &[Vec<u8>]) -> Vec<Frame> {
        let mut out = Vec::new();
        for g in datagrams {
            let _ = d.push(&RtpPacket::parse(g).unwrap(), &mut out);
        }
        out
    }

    fn video_frames(codec: u32) -> Vec<Frame> {
        (0..6)
            .map(|i| {
                let key = i % 3 == 0;
                let len = if key { 20_000 + i * 7 } else { 1100 + i * 300 };
                Frame {
                    track: 3,
                    codec,
                    flags: if key { RILL_FRAME_KEY } else { 0 },
                    pts: i as i64 * 40_000,
                    dts: i as i64 * 40_000,
                    payload: seeds::video_au(codec, key, len, i == 0, &[i as u8 + 1, 9]),
                }
            })
            .collect()
    }

    #[test]
    fn video_round_trip() {
        for codec in [RILL_CODEC_H264, RILL_CODEC_H265] {
            let config = seeds::video_config(codec);
            let mut p = Packetizer::new(codec, Some(&config), 1200).unwrap();
            let mut s = Stamp::new(1, 96, 65_530, u32::MAX - 100_000);
            let frames = video_frames(codec);
            let dgrams = send(&mut p, &mut s, &frames);
            // No SDP config: it comes in-band.
            let mut d = Depacketizer::new(&params(codec, 90_000, None), Limits::default()).unwrap();
            let got = receive(&mut d, &dgrams);
            assert_eq!(got.len(), 7, "{codec:x}");
            assert_eq!(got[0].flags, RILL_FRAME_CONFIG);
            assert_eq!(got[0].payload, config);
            for (g, f) in got[1..].iter().zip(&frames) {
                assert_eq!(g.payload, f.payload);
                assert_eq!(g.flags, f.flags);
                assert_eq!(g.pts, f.pts);
                assert_eq!(g.track, 3);
            }
            assert_eq!(d.stats.lost, 0);
        }
    }

    #[test]
    fn vp8_round_trip_and_loss() {
        let codec = RILL_CODEC_VP8;
        let mut p = Packetizer::new(codec, None, 200).unwrap();
        let mut s = Stamp::new(1, 96, 65_530, 7);
        // A key frame (frame tag bit 0 clear) and inter frames, several
        // packets each.
        let frames: Vec<Frame> = (0..5i64)
            .map(|i| Frame {
                track: 0,
                codec,
                flags: if i == 0 { RILL_FRAME_KEY } else { 0 },
                pts: i * 40_000,
                dts: i * 40_000,
                payload: (0..450u32)
                    .map(|k| {
                        if k == 0 {
                            u8::from(i != 0)
                        } else {
                            (k + i as u32) as u8
                        }
                    })
                    .collect(),
            })
            .collect();
        let dgrams = send(&mut p, &mut s, &frames);
        assert_eq!(dgrams.len(), 5 * 3);
        let mut d = Depacketizer::new(&params(codec, 90_000, None), Limits::default()).unwrap();
        let got = receive(&mut d, &dgrams);
        assert_eq!(got.len(), 5);
        for (g, f) in got.iter().zip(&frames) {
            assert_eq!((&g.payload, g.flags, g.pts), (&f.payload, f.flags, f.pts));
        }
        // The middle packet of frame 1 lost: frames 1.. wait for a key frame.
        let mut lossy = dgrams.clone();
        lossy.remove(4);
        let mut d = Depacketizer::new(&params(codec, 90_000, None), Limits::default()).unwrap();
        let got = receive(&mut d, &lossy);
        assert_eq!(got.len(), 1, "only the key frame");
        assert!(d.stats.lost >= 1);
    }

    #[test]
    fn fu_boundaries() {
        // NALs exactly at, one below and one above the payload size.
        let codec = RILL_CODEC_H264;
        let config = seeds::video_config(codec);
        for len in [1198, 1199, 1200, 2396, 2397] {
            let mut p = Packetizer::new(codec, Some(&config), 1200).unwrap();
            let mut s = Stamp::new(1, 96, 0, 0);
            let f = Frame {
                track: 3,
                codec,
                flags: RILL_FRAME_KEY,
                pts: 0,
                dts: 0,
                payload: seeds::video_au(codec, true, len, false, &[4]),
            };
            let dgrams = send(&mut p, &mut s, std::slice::from_ref(&f));
            assert!(dgrams.iter().all(|g| g.len() <= 1212));
            let mut d = Depacketizer::new(
                &params(codec, 90_000, Some(config.clone())),
                Limits::default(),
            )
            .unwrap();
            let got = receive(&mut d, &dgrams);
            assert_eq!(got.len(), 2, "{len}");
            assert_eq!(got[1].payload, f.payload, "{len}");
        }
    }

    #[test]
    fn loss_in_a_fu_drops_until_the_next_key_frame() {
        for codec in [RILL_CODEC_H264, RILL_CODEC_H265] {
            let config = seeds::video_config(codec);
            let mut p = Packetizer::new(codec, Some(&config), 1200).unwrap();
            let mut s = Stamp::new(1, 96, 100, 0);
            let frames = video_frames(codec);
            let mut dgrams = send(&mut p, &mut s, &frames);
            // Frame 0 is the key frame of ~17 FU packets: drop one in the
            // middle.
            dgrams.remove(8);
            let mut d = Depacketizer::new(
                &params(codec, 90_000, Some(config.clone())),
                Limits::default(),
            )
            .unwrap();
            let got = receive(&mut d, &dgrams);
            // Frames 0 (damaged), 1, 2 (no key frame yet) dropped; the
            // config, then 3 (key, flagged), 4, 5.
            let pts: Vec<i64> = got.iter().map(|f| f.pts).collect();
            assert_eq!(pts, vec![120_000, 120_000, 160_000, 200_000], "{codec:x}");
            assert!(got[0].is_config());
            assert_eq!(got[1].flags, RILL_FRAME_KEY | RILL_FRAME_DISCONTINUITY);
            assert_eq!(got[1].payload, frames[3].payload);
            assert_eq!(d.stats.lost, 1);
            assert_eq!(d.stats.dropped_frames, 3);
        }
    }

    #[test]
    fn audio_round_trips() {
        // AAC with a fragmented access unit, Opus, G.711.
        let asc = Bytes::from_static(&seeds::AAC_ASC);
        let cases: [(u32, u32, Option<Bytes>, usize); 4] = [
            (RILL_CODEC_AAC, 44_100, Some(asc), 2000),
            (
                RILL_CODEC_OPUS,
                48_000,
                rill_ts::audio::opus_head_for_code(2),
                300,
            ),
            (RILL_CODEC_PCMA, 8_000, None, 160),
            (RILL_CODEC_PCMU, 8_000, None, 160),
        ];
        for (codec, rate, config, len) in cases {
            let mut p = Packetizer::new(codec, config.as_deref(), 1200).unwrap();
            assert_eq!(p.clock_rate(), rate);
            let step = if codec == RILL_CODEC_AAC { 1024 } else { 960 };
            let frames: Vec<Frame> = (0..5)
                .map(|i| {
                    let pts = crate::clock::ticks_to_us(i * step, rate) + 1;
                    Frame {
                        track: 3,
                        codec,
                        flags: 0,
                        pts,
                        dts: pts,
                        payload: Bytes::from(vec![i as u8 + 1; len + i as usize]),
                    }
                })
                .collect();
            let mut s = Stamp::new(9, 97, 65_534, 77);
            let dgrams = send(&mut p, &mut s, &frames);
            let mut d =
                Depacketizer::new(&params(codec, rate, config.clone()), Limits::default()).unwrap();
            let got = receive(&mut d, &dgrams);
            let skip = config.is_some() as usize;
            if let Some(c) = &config {
                assert_eq!(&got[0].payload, c);
                assert!(got[0].is_config());
            }
            assert_eq!(got.len() - skip, 5, "{codec:x}");
            for (g, f) in got[skip..].iter().zip(&frames) {
                assert_eq!(g.payload, f.payload, "{codec:x}");
                assert!((g.pts - (f.pts - frames[0].pts)).abs() <= 1, "{codec:x}");
            }
        }
    }

    #[test]
    fn aac_several_aus_in_a_packet() {
        // Two AUs (3 and 2 bytes) in one packet, as some senders do.
        let mut payload = vec![0x00, 0x20, 0, 3 << 3, 0, 2 << 3];
        payload.extend_from_slice(&[1, 2, 3, 4, 5]);
        let mut d =
            Depacketizer::new(&params(RILL_CODEC_AAC, 48_000, None), Limits::default()).unwrap();
        let mut dg = RtpHeader {
            marker: true,
            payload_type: 97,
            seq: 1,
            timestamp: 0,
            ssrc: 1,
        }
        .to_bytes()
        .to_vec();
        dg.extend_from_slice(&payload);
        let got = receive(&mut d, &[dg]);
        assert_eq!(got.len(), 2);
        assert_eq!(&got[0].payload[..], &[1, 2, 3]);
        assert_eq!(&got[1].payload[..], &[4, 5]);
        assert_eq!(got[1].pts, 21_333);
    }

    #[test]
    fn recovery_point_i_slice_after_sps_is_key() {
        let codec = RILL_CODEC_H264;
        let sps = seeds::H264_SPS;
        let pps = seeds::H264_PPS;
        let mut d = Depacketizer::new(&params(codec, 90_000, None), Limits::default()).unwrap();
        let mut out = Vec::new();
        let pkt = |seq: u16, ts: u32, payload: &[u8]| {
            let mut v = RtpHeader {
                marker: true,
                payload_type: 96,
                seq,
                timestamp: ts,
                ssrc: 1,
            }
            .to_bytes()
            .to_vec();
            v.extend_from_slice(payload);
            v
        };
        // STAP-A (SPS, PPS, I slice: first_mb 0, slice_type 7).
        let mut stap = vec![24u8];
        for n in [sps, pps, &[0x41, 0x88, 0x84, 0x21][..]] {
            stap.extend_from_slice(&(n.len() as u16).to_be_bytes());
            stap.extend_from_slice(n);
        }
        // A P slice alone (slice_type 5: '00110'), then an I slice without
        // an SPS: neither is key.
        for g in [
            pkt(1, 0, &stap),
            pkt(2, 3000, &[0x41, 0x9A, 0x11]),
            pkt(3, 6000, &[0x41, 0x88, 0x84]),
        ] {
            d.push(&RtpPacket::parse(&g).unwrap(), &mut out).unwrap();
        }
        let flags: Vec<u32> = out.iter().map(|f| f.flags).collect();
        assert_eq!(flags, vec![RILL_FRAME_CONFIG, RILL_FRAME_KEY, 0, 0]);
    }

    #[test]
    fn a_new_ssrc_goes_on_from_the_last_time() {
        let codec = RILL_CODEC_H264;
        let config = seeds::video_config(codec);
        let frames = video_frames(codec);
        let mut d = Depacketizer::new(
            &params(codec, 90_000, Some(config.clone())),
            Limits::default(),
        )
        .unwrap();
        let mut got = Vec::new();
        for (ssrc, seq, off) in [(1, 100, 0), (2, 7, 5_000_000)] {
            let mut p = Packetizer::new(codec, Some(&config), 1200).unwrap();
            let mut s = Stamp::new(ssrc, 96, seq, off);
            got.extend(receive(&mut d, &send(&mut p, &mut s, &frames[..3])));
        }
        let pts: Vec<i64> = got
            .iter()
            .filter(|f| !f.is_config())
            .map(|f| f.pts)
            .collect();
        assert_eq!(pts, vec![0, 40_000, 80_000, 80_000, 120_000, 160_000]);
        let second = got.iter().filter(|f| !f.is_config()).nth(3).unwrap();
        assert!(second.is_key());
        assert_ne!(second.flags & RILL_FRAME_DISCONTINUITY, 0);
        assert_eq!(d.stats.ssrc_changes, 1);
        assert_eq!(d.stats.lost, 0);
    }

    #[test]
    fn dts_with_b_frames() {
        let mut v = VideoState {
            codec: VideoCodec::H264,
            sets: Default::default(),
            config_dirty: false,
            au: BytesMut::new(),
            au_nals: 0,
            au_ts: None,
            au_key: false,
            au_sps: false,
            fu: None,
            broken: false,
            wait_key: false,
            dts_window: Vec::new(),
            depth: 2,
            last_dts: None,
        };
        // x264's B-pyramid in decode order: I0 P4 B2 b1 b3 P8 B6 b5 b7.
        let pts = [0, 4, 2, 1, 3, 8, 6, 5, 7].map(|p| p * 40_000);
        let dts: Vec<i64> = pts.iter().map(|&p| v.dts(p)).collect();
        assert_eq!(
            dts,
            vec![-2, -1, 0, 40_000, 80_000, 120_000, 160_000, 200_000, 240_000]
        );
        for (d, p) in dts.iter().zip(pts) {
            assert!(*d <= p);
        }
        // Without B-frames: two frames back.
        v.dts_window.clear();
        v.last_dts = None;
        let dts: Vec<i64> = (0..4).map(|i| v.dts(i * 40_000)).collect();
        assert_eq!(dts, vec![-2, -1, 0, 40_000]);
        // Deeper than allowed for: DTS holds, the depth grows.
        let mut w = VideoState {
            depth: 0,
            dts_window: Vec::new(),
            last_dts: None,
            ..v
        };
        let dts: Vec<i64> = [0, 3, 1, 2, 4, 7, 5, 6].map(|p| w.dts(p)).to_vec();
        assert!(dts.windows(2).all(|x| x[0] <= x[1]), "{dts:?}");
        assert_eq!(w.depth, 2);
    }

    #[test]
    fn limits_hold() {
        let codec = RILL_CODEC_H264;
        let config = seeds::video_config(codec);
        let mut p = Packetizer::new(codec, Some(&config), 1200).unwrap();
        let mut s = Stamp::new(1, 96, 0, 0);
        let frames = video_frames(codec);
        let dgrams = send(&mut p, &mut s, &frames);
        let limits = Limits {
            max_frame_size: 10_000,
            ..Limits::default()
        };
        let mut d = Depacketizer::new(&params(codec, 90_000, Some(config)), limits).unwrap();
        let got = receive(&mut d, &dgrams);
        // Every key frame is too large: nothing gets out.
        assert!(got.is_empty());
        assert_eq!(d.stats.dropped_frames, 6);
    }
}
