//! Fuzz target bodies, shared by the cargo-fuzz targets under `fuzz/` and
//! the stable smoke test (`tests/fuzz_smoke.rs`). Each must never panic;
//! the assertions inside are the properties checked.

use bytes::Bytes;
use rill_abi::{
    RILL_CODEC_AAC, RILL_CODEC_AV1, RILL_CODEC_H264, RILL_CODEC_H265, RILL_CODEC_OPUS,
    RILL_CODEC_PCMA, RILL_CODEC_VP8, RILL_CODEC_VP9, RILL_FRAME_CONFIG, RILL_FRAME_KEY,
};
use rill_ts::fuzzing::seeds;
use rill_ts::nal::{length_prefixed_nals, parse_avc_record, parse_hevc_record};

use crate::depacketize::{AacLayout, Depacketizer, Limits, TrackParams};
use crate::packet::{parse_rtcp, write_rtcp, RtpPacket};
use crate::packetize::Packetizer;
use crate::receiver::{ReceiverConfig, TrackReceiver};
use crate::sdp::Sdp;

/// The codecs the depacketize target picks from (selector byte & 7, % 7;
/// the sixth is AAC with AAC-lbr's 6/2/2 AU header layout).
pub const CODECS: [u32; 7] = [
    RILL_CODEC_H264,
    RILL_CODEC_H265,
    RILL_CODEC_AAC,
    RILL_CODEC_OPUS,
    RILL_CODEC_PCMA,
    RILL_CODEC_AAC,
    RILL_CODEC_VP8,
];

/// Selector bit: start with the SDP's decoder configuration.
pub const SEL_CONFIG: u8 = 0x08;
/// Selector bit: packets go through a reorder buffer first.
pub const SEL_REORDER: u8 = 0x10;

/// The limits the depacketize target runs with (small, to reach them).
pub fn fuzz_limits() -> Limits {
    Limits {
        max_frame_size: 64 * 1024,
        max_nals: 64,
        max_param_sets: 4,
        max_aus_per_packet: 8,
        wait_for_key: true,
        reorder_depth: 2,
    }
}

/// Builds an input of the depacketize target: the selector, then each
/// datagram as (time step in ms, length u16, bytes).
pub fn depacketize_input(selector: u8, datagrams: &[(u8, Vec<u8>)]) -> Vec<u8> {
    let mut out = vec![selector];
    for (step, d) in datagrams {
        out.push(*step);
        out.extend_from_slice(&(d.len() as u16).to_be_bytes());
        out.extend_from_slice(d);
    }
    out
}

/// Datagrams of one codec's depacketizer: byte 0 selects the codec
/// ([`CODECS`]) and [`SEL_CONFIG`], [`SEL_REORDER`]; then (time step ms,
/// u16 length, datagram) repeated. Frames out must be well formed and
/// within the limits.
pub fn depacketize(data: &[u8]) {
    let Some((&sel, mut rest)) = data.split_first() else {
        return;
    };
    let codec = CODECS[(sel as usize & 7) % CODECS.len()];
    let lbr = (sel as usize & 7) % CODECS.len() == 5;
    let config = if sel & SEL_CONFIG == 0 {
        None
    } else {
        match codec {
            RILL_CODEC_H264 | RILL_CODEC_H265 => Some(seeds::video_config(codec)),
            RILL_CODEC_AAC => Some(Bytes::from_static(&seeds::AAC_ASC)),
            RILL_CODEC_OPUS => rill_ts::audio::opus_head_for_code(2),
            _ => None,
        }
    };
    let limits = fuzz_limits();
    let params = TrackParams {
        track: 1,
        codec,
        clock_rate: crate::packetize::clock_rate(codec, config.as_deref()).max(8000),
        config,
        aac: if lbr {
            AacLayout {
                size_length: 6,
                index_length: 2,
                index_delta_length: 2,
            }
        } else {
            AacLayout::default()
        },
    };
    let mut d = Depacketizer::new(&params, limits).expect("a supported codec");
    let mut receiver = TrackReceiver::new(
        &params,
        None,
        ReceiverConfig {
            reorder_window: 16,
            reorder_timeout_us: 50_000,
            limits,
        },
    )
    .expect("a supported codec");
    let mut frames = Vec::new();
    let mut now = 0u64;
    while rest.len() >= 3 {
        now += rest[0] as u64 * 1000;
        let len = (u16::from_be_bytes([rest[1], rest[2]]) as usize).min(rest.len() - 3);
        let dgram = &rest[3..3 + len];
        rest = &rest[3 + len..];
        if sel & SEL_REORDER != 0 {
            let _ = receiver.rtp(now, Bytes::copy_from_slice(dgram), &mut frames);
            let _ = receiver.poll(now, &mut frames);
            if let Some(dl) = receiver.deadline() {
                assert!(dl > now, "poll left a packet past its deadline");
            }
        } else if let Ok(p) = RtpPacket::parse(dgram) {
            let _ = d.push(&p, &mut frames);
        }
    }
    d.flush(&mut frames);
    let _ = receiver.flush(&mut frames);
    let _ = receiver.receiver_report(1, now);
    let mut last_dts = i64::MIN;
    for f in &frames {
        if !f.is_config() && matches!(codec, RILL_CODEC_H264 | RILL_CODEC_H265) {
            assert!(f.dts >= last_dts, "video DTS went back");
            last_dts = f.dts;
        }
        assert_eq!(f.codec, codec);
        assert!(f.payload.len() <= limits.max_frame_size);
        if codec == RILL_CODEC_VP8 && !f.is_config() {
            assert!(!f.payload.is_empty(), "an empty VP8 frame");
            assert_eq!(f.is_key(), crate::vp8::is_key(&f.payload), "VP8 key flag");
        }
        if f.is_config() {
            match codec {
                RILL_CODEC_H264 => assert!(parse_avc_record(&f.payload).is_ok()),
                RILL_CODEC_H265 => assert!(parse_hevc_record(&f.payload).is_ok()),
                _ => {}
            }
        } else if matches!(codec, RILL_CODEC_H264 | RILL_CODEC_H265) {
            let nals: Vec<_> = length_prefixed_nals(&f.payload, 4).collect();
            assert!(nals.iter().all(|n| n.as_ref().is_ok_and(|n| !n.is_empty())));
            assert!(nals.len() <= limits.max_nals);
        }
    }
}

/// RTCP compound packets, and RTP packets: what parses writes back to
/// something that parses the same. Also the cached form of a frame's
/// packets ([`crate::Packets::from_bytes`]).
pub fn rtcp(data: &[u8]) {
    if let Ok(p) = crate::Packets::from_bytes(Bytes::copy_from_slice(data)) {
        for i in 0..p.len() {
            let _ = p.payload_ref(i);
        }
        assert_eq!(crate::Packets::from_bytes(p.to_bytes()), Ok(p));
    }
    let mut first = Vec::new();
    if parse_rtcp(data, &mut first).is_ok() {
        let mut w = Vec::new();
        write_rtcp(&first, &mut w);
        let mut second = Vec::new();
        parse_rtcp(&w, &mut second).expect("a written compound parses");
        // Texts that were not UTF-8 settle after one round.
        let mut w2 = Vec::new();
        write_rtcp(&second, &mut w2);
        let mut third = Vec::new();
        parse_rtcp(&w2, &mut third).expect("a written compound parses");
        assert_eq!(second, third);
        assert_eq!(first.len(), second.len());
    }
    if let Ok(p) = RtpPacket::parse(data) {
        let mut w = Vec::new();
        p.write(&mut w).expect("a parsed packet writes");
        assert_eq!(RtpPacket::parse(&w), Ok(p));
    }
}

/// SDP: what parses writes back to a description with the same tracks
/// (codecs, payload types).
pub fn sdp(data: &[u8]) {
    let Ok(s) = Sdp::parse(data) else { return };
    let text = s.write("127.0.0.1");
    let back = Sdp::parse(text.as_bytes()).expect("a written SDP parses");
    assert_eq!(back.tracks.len(), s.tracks.len());
    for (a, b) in s.tracks.iter().zip(&back.tracks) {
        if a.codec != 0 {
            assert_eq!(a.codec, b.codec);
            assert_eq!(a.payload_type, b.payload_type);
            assert_eq!(a.config, b.config);
        }
    }
}

/// The codecs the packetize target picks from (byte 0 % 8).
pub const PACKETIZE_CODECS: [u32; 8] = [
    RILL_CODEC_H264,
    RILL_CODEC_H265,
    RILL_CODEC_AAC,
    RILL_CODEC_OPUS,
    RILL_CODEC_PCMA,
    RILL_CODEC_VP9,
    RILL_CODEC_AV1,
    RILL_CODEC_VP8,
];

/// The payload size the packetize target cuts at (small: fragments).
pub const PACKETIZE_MAX: usize = 100;

/// Builds an input of the packetize target: codec index, config, then
/// frames as (flags: 1 key, 2 config; u16 length; bytes).
pub fn packetize_input(codec: u8, config: &[u8], frames: &[(u8, Vec<u8>)]) -> Vec<u8> {
    let mut out = vec![codec, config.len().min(255) as u8];
    out.extend_from_slice(&config[..config.len().min(255)]);
    for (flags, f) in frames {
        out.push(*flags);
        out.extend_from_slice(&(f.len() as u16).to_be_bytes());
        out.extend_from_slice(f);
    }
    out
}

/// Host frames of one codec into RTP payloads (what a WHEP viewer or an
/// RTSP player is sent): byte 0 picks the codec ([`PACKETIZE_CODECS`]),
/// byte 1 a config's length n, n bytes of it (none when n is 0), then
/// frames (flags, u16 length, payload). Every payload but Opus's fits
/// [`PACKETIZE_MAX`]; a video frame's last packet alone has the marker;
/// VP9 payloads start with a flexible-mode descriptor that begins (B) the
/// first and ends (E) the last; AV1 continuation flags (Z/Y) pair up.
pub fn packetize(data: &[u8]) {
    let [sel, n, rest @ ..] = data else {
        return;
    };
    let codec = PACKETIZE_CODECS[usize::from(*sel) % PACKETIZE_CODECS.len()];
    let n = usize::from(*n).min(rest.len());
    let (config, mut rest) = rest.split_at(n);
    let Ok(mut p) = Packetizer::new(codec, (n > 0).then_some(config), PACKETIZE_MAX) else {
        return;
    };
    let video = matches!(
        codec,
        RILL_CODEC_H264 | RILL_CODEC_H265 | RILL_CODEC_VP8 | RILL_CODEC_VP9 | RILL_CODEC_AV1
    );
    let mut pts = 0;
    for _ in 0..64 {
        let [flags, hi, lo, tail @ ..] = rest else {
            break;
        };
        let len = usize::from(u16::from_be_bytes([*hi, *lo])).min(tail.len());
        let (payload, next) = tail.split_at(len);
        rest = next;
        pts += 40_000;
        let mut frame_flags = 0;
        if flags & 1 != 0 {
            frame_flags |= RILL_FRAME_KEY;
        }
        if flags & 2 != 0 {
            frame_flags |= RILL_FRAME_CONFIG;
        }
        let frame = rill_ts::Frame {
            track: 0,
            codec,
            flags: frame_flags,
            pts,
            dts: pts,
            payload: Bytes::copy_from_slice(payload),
        };
        let Ok(packets) = p.packetize(&frame) else {
            continue;
        };
        let count = packets.len();
        for (i, info) in packets.packets.iter().enumerate() {
            let body = packets.payload_ref(i);
            // An Opus packet goes whole (RFC 7587 has no fragments).
            if codec != RILL_CODEC_OPUS {
                assert!(body.len() <= PACKETIZE_MAX, "{} bytes", body.len());
            }
            if video {
                assert_eq!(
                    info.marker,
                    i + 1 == count,
                    "marker on packet {i} of {count}"
                );
            }
            match codec {
                RILL_CODEC_VP9 => {
                    assert_eq!(body[0] & 0x90, 0x90, "I and F");
                    assert_eq!(body[0] & 0x08 != 0, i == 0, "B");
                    assert_eq!(body[0] & 0x04 != 0, i + 1 == count, "E");
                }
                RILL_CODEC_AV1 => {
                    let prev_y = i > 0 && packets.payload_ref(i - 1)[0] & 0x40 != 0;
                    assert_eq!(body[0] & 0x80 != 0, prev_y, "Z follows Y");
                    assert!(i + 1 < count || body[0] & 0x40 == 0, "Y on the last");
                }
                _ => {}
            }
        }
    }
}
