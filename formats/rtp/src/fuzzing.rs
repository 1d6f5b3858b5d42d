//! Fuzz target bodies, shared by the cargo-fuzz targets under `fuzz/` and
//! the stable smoke test (`tests/fuzz_smoke.rs`). Each must never panic;
//! the assertions inside are the properties checked.

use bytes::Bytes;
use rill_abi::{
    RILL_CODEC_AAC, RILL_CODEC_H264, RILL_CODEC_H265, RILL_CODEC_OPUS, RILL_CODEC_PCMA,
};
use rill_ts::fuzzing::seeds;
use rill_ts::nal::{length_prefixed_nals, parse_avc_record, parse_hevc_record};

use crate::depacketize::{AacLayout, Depacketizer, Limits, TrackParams};
use crate::packet::{parse_rtcp, write_rtcp, RtpPacket};
use crate::receiver::{ReceiverConfig, TrackReceiver};
use crate::sdp::Sdp;

/// The codecs the depacketize target picks from (selector byte % 6; the
/// sixth is AAC with AAC-lbr's 6/2/2 AU header layout).
pub const CODECS: [u32; 6] = [
    RILL_CODEC_H264,
    RILL_CODEC_H265,
    RILL_CODEC_AAC,
    RILL_CODEC_OPUS,
    RILL_CODEC_PCMA,
    RILL_CODEC_AAC,
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
