//! Fuzz target bodies, shared by the cargo-fuzz targets under `fuzz/` and by
//! the stable smoke test (`tests/fuzz_smoke.rs`), so both exercise the same
//! properties. Each function must never panic on any input; the assertions
//! inside are the properties being checked.
//!
//! Also the fixtures the tests share: real parameter sets and a generator
//! of plausible frames ([`seeds`]), and a checker of the muxer's output
//! ([`check_ts`]).

use bytes::Bytes;
use rill_abi::{
    RILL_CODEC_AAC, RILL_CODEC_H264, RILL_CODEC_H265, RILL_CODEC_MP3, RILL_CODEC_OPUS,
    RILL_FRAME_CONFIG, RILL_FRAME_KEY,
};

use crate::audio::opus_head_for_code;
use crate::demux::{Demuxer, Event, Limits};
use crate::mux::{MuxTrack, Muxer, MuxerConfig};
use crate::nal::{length_prefixed_nals, parse_avc_record, parse_hevc_record};
use crate::packet::{self, PACKET_SIZE};
use crate::time::{us_to_ticks, TS_WRAP};
use crate::Frame;

/// Reads bytes off the fuzz input, zeros once it runs out.
pub(crate) struct Input<'a>(pub(crate) &'a [u8]);

impl Input<'_> {
    fn u8(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }
    fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.u8(), self.u8()])
    }
    fn bytes(&mut self, n: usize) -> &[u8] {
        let n = n.min(self.0.len());
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        a
    }
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Feeds `ts` to a demuxer in chunks whose sizes come from `sizes` (cycled;
/// 0 means 188), flushes, and returns the events.
pub fn demux_chunked(ts: &[u8], sizes: &[u8], limits: Limits) -> Vec<Event> {
    let mut d = Demuxer::new(limits);
    let mut events = Vec::new();
    let mut rest = ts;
    let mut i = 0;
    while !rest.is_empty() {
        let s = sizes.get(i % sizes.len().max(1)).copied().unwrap_or(0);
        let n = if s == 0 { PACKET_SIZE } else { s as usize * 7 }.min(rest.len());
        d.feed(&rest[..n], &mut events);
        rest = &rest[n..];
        i += 1;
    }
    d.flush(&mut events);
    events
}

/// The demuxer on arbitrary bytes, split at input-derived places. Besides
/// not panicking: every frame belongs to an announced track, video frames
/// are well-formed length-prefixed NAL units, audio frames are key frames.
pub fn demux(data: &[u8]) {
    let split = data.first().copied().unwrap_or(0);
    let limits = Limits {
        max_pes_size: 64 << 10,
        max_buffered: 128 << 10,
        max_tracks: 4,
        max_param_sets: 4,
    };
    let events = demux_chunked(data, &[split, split.wrapping_mul(3), 0], limits);
    let mut tracks = Vec::new();
    for e in events {
        match e {
            Event::Tracks(t) => {
                assert!(t.len() <= 4);
                tracks = t;
            }
            Event::Frame(f) => {
                let t = tracks
                    .iter()
                    .find(|t| t.id == f.track)
                    .expect("frame of an announced track");
                assert_eq!(t.codec, f.codec);
                assert!(f.payload.len() <= 64 << 10);
                if f.is_config() {
                    continue;
                }
                match f.codec {
                    RILL_CODEC_H264 | RILL_CODEC_H265 => {
                        for nal in length_prefixed_nals(&f.payload, 4) {
                            assert!(!nal.expect("well-formed AVCC").is_empty());
                        }
                    }
                    _ => assert!(f.is_key()),
                }
            }
            Event::Error { .. } => {}
        }
    }
}

/// What [`check_ts`] counted.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TsStats {
    /// Packets.
    pub packets: usize,
    /// Packets with a PCR.
    pub pcrs: usize,
    /// Packets on the PAT PID.
    pub pats: usize,
}

/// Checks the structure of a muxer's output: whole packets, continuity
/// counters advancing by one per payload packet on each PID (and staying
/// put on adaptation-only packets), PCRs only on `pcr_pid` and never going
/// back (modulo the wrap), and gaps between PCRs no longer than
/// `max_pcr_gap_us` when given.
pub fn check_ts(ts: &[u8], pcr_pid: u16, max_pcr_gap_us: Option<i64>) -> TsStats {
    assert_eq!(ts.len() % PACKET_SIZE, 0, "whole packets");
    let mut cc: Vec<(u16, u8)> = Vec::new();
    let mut last_pcr: Option<u64> = None;
    let mut stats = TsStats::default();
    const PCR_WRAP: u64 = (TS_WRAP as u64) * 300;
    for pkt in ts.chunks(PACKET_SIZE) {
        let info = packet::parse(pkt).expect("muxed packet parses");
        stats.packets += 1;
        if info.pid == 0 {
            stats.pats += 1;
        }
        match cc.iter_mut().find(|(p, _)| *p == info.pid) {
            Some((_, c)) => {
                if info.has_payload {
                    assert_eq!(info.cc, (*c + 1) & 15, "continuity on PID {:#x}", info.pid);
                } else {
                    assert_eq!(info.cc, *c, "adaptation-only packet keeps the counter");
                }
                *c = info.cc;
            }
            None => cc.push((info.pid, info.cc)),
        }
        if let Some(pcr) = info.pcr {
            assert_eq!(info.pid, pcr_pid, "PCR on the PCR PID");
            stats.pcrs += 1;
            if let Some(last) = last_pcr {
                let step = (pcr + PCR_WRAP - last) % PCR_WRAP;
                assert!(step < PCR_WRAP / 2, "PCR went back: {last} -> {pcr}");
                if let Some(max) = max_pcr_gap_us {
                    assert!(step as i64 <= max * 27, "PCR gap {} µs", step / 27);
                }
            }
            last_pcr = Some(pcr);
        }
    }
    stats
}

/// Mux frames derived from the input, demux the result (split at
/// input-derived places): the same frames come back, with the same
/// payloads, flags and timestamps (shifted by the muxer's delay, modulo the
/// 33-bit wrap, within rounding), and the configuration the muxer had.
pub fn roundtrip(data: &[u8]) {
    let mut input = Input(data);
    let sel = input.u8();
    let video = [None, Some(RILL_CODEC_H264), Some(RILL_CODEC_H265)][(sel % 3) as usize];
    let audio = [
        None,
        Some(RILL_CODEC_AAC),
        Some(RILL_CODEC_MP3),
        Some(RILL_CODEC_OPUS),
    ][((sel / 3) % 4) as usize];
    let mut tracks = Vec::new();
    if let Some(v) = video {
        tracks.push(MuxTrack::new(v, seeds::video_config(v)));
    }
    let opus_code = [1u8, 2, 6, 0x82][(sel >> 6) as usize];
    if let Some(a) = audio {
        let config = match a {
            RILL_CODEC_AAC => Bytes::from_static(&seeds::AAC_ASC),
            RILL_CODEC_OPUS => opus_head_for_code(opus_code).expect("mapped code"),
            _ => Bytes::new(),
        };
        tracks.push(MuxTrack::new(a, config));
    }
    if tracks.is_empty() {
        return;
    }
    let start_us = (input.u16() as i64) << 21; // up to ~38 hours: crosses the wrap
    let frames = seeds::frames(&tracks, start_us, &mut input, 40);
    let cfg = MuxerConfig::default();
    let mut mux = Muxer::new(&tracks, cfg.clone()).expect("valid tracks");
    let mut ts = Vec::new();
    for (i, f) in frames.iter().enumerate() {
        if i == 7 {
            mux.start_segment(&mut ts);
        }
        mux.write(f, &mut ts).expect("generated frames mux");
    }
    check_ts(&ts, mux.pcr_pid(), None);
    let sizes = input.bytes(4).to_vec();
    let events = demux_chunked(&ts, &sizes, Limits::default());

    let mut announced = None;
    let mut got: Vec<Vec<Frame>> = vec![Vec::new(); tracks.len()];
    for e in events {
        match e {
            Event::Tracks(t) => {
                assert!(announced.is_none(), "tracks announced once");
                assert_eq!(t.len(), tracks.len());
                for (i, (info, track)) in t.iter().zip(&tracks).enumerate() {
                    assert_eq!(info.id, i as u32);
                    assert_eq!(info.codec, track.codec);
                    assert_eq!(Some(info.pid), mux.pid(i as u32));
                }
                announced = Some(t);
            }
            Event::Frame(f) => {
                assert!(announced.is_some(), "frames after tracks");
                got[f.track as usize].push(f);
            }
            Event::Error { pid, error } => panic!("demux error on {pid:?}: {error}"),
        }
    }
    let delay = us_to_ticks(cfg.delay_us);
    for (t, track) in tracks.iter().enumerate() {
        let sent: Vec<&Frame> = frames.iter().filter(|f| f.track == t as u32).collect();
        let (configs, media): (Vec<&Frame>, Vec<&Frame>) =
            got[t].iter().partition(|f| f.is_config());
        assert_eq!(media.len(), sent.len(), "frame count of track {t}");
        for c in &configs {
            assert_eq!(c.codec, track.codec);
            match track.codec {
                RILL_CODEC_H264 => assert_eq!(
                    parse_avc_record(&c.payload).unwrap().nals,
                    parse_avc_record(&track.config).unwrap().nals
                ),
                RILL_CODEC_H265 => assert_eq!(
                    parse_hevc_record(&c.payload).unwrap().nals,
                    parse_hevc_record(&track.config).unwrap().nals
                ),
                _ => assert_eq!(c.payload, track.config),
            }
        }
        let first_key = sent.iter().position(|f| f.is_key());
        if track.codec == RILL_CODEC_MP3 {
            assert!(configs.is_empty());
        } else if first_key.is_some() {
            assert_eq!(configs.len(), 1, "one config for track {t}");
        }
        let mut offset = None;
        for (a, b) in sent.iter().zip(&media) {
            assert_eq!(a.codec, b.codec);
            assert_eq!(a.payload, b.payload, "payload of track {t}");
            assert_eq!(a.flags & RILL_FRAME_KEY, b.flags & RILL_FRAME_KEY);
            assert_eq!(b.flags & RILL_FRAME_CONFIG, 0);
            for (x, y) in [(a.pts, b.pts), (a.dts, b.dts)] {
                let d = us_to_ticks(y) - (us_to_ticks(x) + delay);
                assert_eq!(d.rem_euclid(TS_WRAP), 0, "timestamp {x} came back as {y}");
                assert_eq!(
                    *offset.get_or_insert(d),
                    d,
                    "one offset for every timestamp"
                );
            }
        }
    }
}

/// Fixtures: real parameter sets, configurations, and plausible frames.
pub mod seeds {
    use bytes::{BufMut, Bytes, BytesMut};
    use rill_abi::{
        RILL_CODEC_AAC, RILL_CODEC_H264, RILL_CODEC_H265, RILL_CODEC_MP3, RILL_FRAME_KEY,
    };

    use super::Input;
    use crate::mux::MuxTrack;
    use crate::nal::{build_avc_record, build_hevc_record};
    use crate::Frame;

    /// An H.264 High profile SPS (64x48, x264).
    pub const H264_SPS: &[u8] = &[
        0x67, 0x64, 0x00, 0x0a, 0xac, 0xd9, 0x44, 0x7b, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10,
        0x00, 0x00, 0x03, 0x03, 0x20, 0xf1, 0x22, 0x59, 0x60,
    ];
    /// Its PPS.
    pub const H264_PPS: &[u8] = &[0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0];
    /// An H.265 Main profile VPS (64x48, x265).
    pub const HEVC_VPS: &[u8] = &[
        0x40, 0x01, 0x0c, 0x01, 0xff, 0xff, 0x04, 0x08, 0x00, 0x00, 0x03, 0x00, 0x9e, 0x08, 0x00,
        0x00, 0x03, 0x00, 0x00, 0x1e, 0x95, 0x98, 0x09,
    ];
    /// Its SPS.
    pub const HEVC_SPS: &[u8] = &[
        0x42, 0x01, 0x01, 0x04, 0x08, 0x00, 0x00, 0x03, 0x00, 0x9e, 0x08, 0x00, 0x00, 0x03, 0x00,
        0x00, 0x1e, 0x90, 0x04, 0x10, 0x62, 0xcb, 0x2b, 0x35, 0xc9, 0x95, 0xe0, 0x2d, 0xc0, 0x80,
        0x80, 0x01, 0x00, 0x00, 0x03, 0x00, 0x01, 0x00, 0x00, 0x03, 0x00, 0x19, 0x08,
    ];
    /// Its PPS.
    pub const HEVC_PPS: &[u8] = &[0x44, 0x01, 0xc1, 0x73, 0x18, 0x31, 0x08, 0x90];
    /// AAC-LC, 44.1 kHz, stereo.
    pub const AAC_ASC: [u8; 2] = [0x12, 0x10];

    /// The decoder configuration record of the fixtures' parameter sets.
    pub fn video_config(codec: u32) -> Bytes {
        if codec == RILL_CODEC_H264 {
            build_avc_record(&[H264_SPS], &[H264_PPS]).expect("fixture record")
        } else {
            build_hevc_record(&[HEVC_VPS], &[HEVC_SPS], &[HEVC_PPS]).expect("fixture record")
        }
    }

    /// A length-prefixed access unit: a slice NAL (IDR on key frames) of
    /// `len` bytes, preceded by an SEI when `sei`. NAL bodies have no zero
    /// bytes (so no start-code emulation, no trailing zeros to strip).
    pub fn video_au(codec: u32, key: bool, len: usize, sei: bool, fill: &[u8]) -> Bytes {
        let mut b = BytesMut::new();
        let mut nal = |header: &[u8], n: usize| {
            b.put_u32((header.len() + n) as u32);
            b.put_slice(header);
            for i in 0..n {
                let v = fill.get(i % fill.len().max(1)).copied().unwrap_or(0x5A);
                b.put_u8(if v == 0 { 0x80 } else { v });
            }
        };
        let h264 = codec == RILL_CODEC_H264;
        if sei {
            nal(if h264 { &[0x06] } else { &[0x4E, 0x01] }, 5);
        }
        let header: &[u8] = match (h264, key) {
            (true, true) => &[0x65],
            (true, false) => &[0x41],
            (false, true) => &[0x26, 0x01],
            (false, false) => &[0x02, 0x01],
        };
        nal(header, len);
        b.freeze()
    }

    /// An MPEG-1 layer III frame (128 kbit/s, 44.1 kHz, 417 or 418 bytes).
    pub fn mp3_frame(padding: bool, fill: u8) -> Bytes {
        let mut f = vec![fill; if padding { 418 } else { 417 }];
        f[..4].copy_from_slice(&[0xFF, 0xFB, 0x90 | ((padding as u8) << 1), 0x00]);
        Bytes::from(f)
    }

    /// Frames for `tracks` (video first, audio second, as [`super::roundtrip`]
    /// builds them) from `start_us`, shaped by `input`: at most `max`
    /// frames, in DTS order across tracks, video with PTS ahead of DTS.
    pub(crate) fn frames(
        tracks: &[MuxTrack],
        start_us: i64,
        input: &mut Input<'_>,
        max: usize,
    ) -> Vec<Frame> {
        let mut out = Vec::new();
        let mut clocks = vec![start_us; tracks.len()];
        let mut video_frames = 0;
        while out.len() < max && !input.is_empty() {
            let sel = input.u8();
            let t = (sel as usize) % tracks.len();
            let size = (input.u16() as usize) % 1200 + if sel & 0x80 != 0 { 70_000 } else { 0 };
            let step = input.u8() as i64 * 500;
            let fill = input.bytes(16).to_vec();
            let codec = tracks[t].codec;
            let dts = clocks[t];
            clocks[t] += step;
            let (payload, key, pts) = match codec {
                RILL_CODEC_H264 | RILL_CODEC_H265 => {
                    let key = video_frames == 0 || sel & 0x40 != 0;
                    video_frames += 1;
                    let au = video_au(codec, key, size, sel & 0x20 != 0, &fill);
                    (au, key, dts + (sel & 3) as i64 * 40_000)
                }
                RILL_CODEC_AAC => (
                    Bytes::copy_from_slice(&vec![sel; size.min(8000)]),
                    true,
                    dts,
                ),
                RILL_CODEC_MP3 => (mp3_frame(sel & 1 != 0, sel), true, dts),
                _ => {
                    let mut p = fill.clone();
                    p.resize(size % 1500, sel);
                    (Bytes::from(p), true, dts)
                }
            };
            out.push(Frame {
                track: t as u32,
                codec,
                flags: if key { RILL_FRAME_KEY } else { 0 },
                pts,
                dts,
                payload,
            });
        }
        out.sort_by_key(|f| f.dts);
        out
    }
}
