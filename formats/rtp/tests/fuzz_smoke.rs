//! Runs rill-rtp's fuzz target bodies (depacketize, rtcp, sdp) over their
//! committed seed corpus and deterministic mutations of it
//! ([`rill_testsupport::fuzz::smoke`]), so the normal (stable) test run
//! exercises what `cargo +nightly fuzz run <target>` explores at length.
//!
//! `cargo test -p rill-rtp --test fuzz_smoke -- --ignored` rewrites the
//! seed corpus from the generators below.

use bytes::Bytes;
use rill_abi::{
    RILL_CODEC_AAC, RILL_CODEC_H264, RILL_CODEC_H265, RILL_CODEC_OPUS, RILL_CODEC_PCMA,
    RILL_CODEC_VP8, RILL_FRAME_KEY,
};
use rill_rtp::fuzzing::{self, depacketize_input, CODECS, SEL_CONFIG, SEL_REORDER};
use rill_rtp::{
    Frame, Packetizer, ReportBlock, RtcpPacket, SdesChunk, Sdp, SdpTrack, SenderReport, Stamp,
};
use rill_testsupport::fuzz::{self, Seed, Target};
use rill_ts::fuzzing::seeds;

/// Each target, its mutation rounds and its mutation seed: fixed per target
/// (rill-rtmp's targets have 1, 2, 5 and 6, rill-flv's 3 and 4, rill-ts's
/// 7 and 8, rill-mp4's 9 and 10, rill-srt's 11 and 12; the SDP target
/// shares 14 with RTCP's), so a target's inputs do not change when targets
/// come and go.
const TARGETS: [(&str, Target, usize, u64); 4] = [
    ("depacketize", fuzzing::depacketize, 10_000, 13),
    ("packetize", fuzzing::packetize, 5_000, 15),
    ("rtcp", fuzzing::rtcp, 20_000, 14),
    ("sdp", fuzzing::sdp, 10_000, 14),
];

/// Interesting bytes: RTP's first byte (0x80, with padding, extension,
/// CSRCs), marker + payload types, RTCP types 200-204, NAL headers (STAP-A
/// 24, FU-A 28, H.265 AP 48 and FU 49 as header bytes 0x60 / 0x62, IDR
/// 0x65, SPS 0x67, PPS 0x68), FU start/end bits, SDP punctuation.
const MAGIC: [u8; 30] = [
    0x00, 0x01, 0x02, 0x10, 0x18, 0x1C, 0x20, 0x3A, 0x3B, 0x3D, 0x40, 0x42, 0x44, 0x60, 0x62, 0x65,
    0x67, 0x68, 0x80, 0x81, 0x85, 0x90, 0xA0, 0xC8, 0xC9, 0xCA, 0xCB, 0xCC, 0xE0, 0xFF,
];

#[test]
fn fuzz_targets_over_corpus_and_mutations() {
    fuzz::smoke_all(env!("CARGO_MANIFEST_DIR"), &TARGETS, &MAGIC);
}

// ---- seed corpus generators ----

fn frames(codec: u32, n: usize, key_len: usize) -> Vec<Frame> {
    (0..n)
        .map(|i| {
            let video = matches!(codec, RILL_CODEC_H264 | RILL_CODEC_H265);
            let key = i % 4 == 0;
            let payload = if video {
                let len = if key { key_len } else { 200 + 40 * i };
                seeds::video_au(codec, key, len, i == 0, &[i as u8 + 1])
            } else {
                Bytes::from(vec![i as u8 + 0x21; 40 + i])
            };
            Frame {
                track: 0,
                codec,
                flags: if video && key { RILL_FRAME_KEY } else { 0 },
                pts: i as i64 * 20_000,
                dts: i as i64 * 20_000,
                payload,
            }
        })
        .collect()
}

fn datagrams(codec: u32, frames: &[Frame], max_payload: usize) -> Vec<Vec<u8>> {
    let config = match codec {
        RILL_CODEC_H264 | RILL_CODEC_H265 => Some(seeds::video_config(codec)),
        RILL_CODEC_AAC => Some(Bytes::from_static(&seeds::AAC_ASC)),
        _ => None,
    };
    let mut p = Packetizer::new(codec, config.as_deref(), max_payload).unwrap();
    let mut s = Stamp::new(0x0102_0304, 96, 65_530, 0xFFFF_0000);
    let mut out = Vec::new();
    for f in frames {
        let pk = p.packetize(f).unwrap();
        for i in 0..pk.len() {
            let mut d = Vec::new();
            s.write(&pk, i, &mut d);
            out.push(d);
        }
    }
    out
}

fn selector(codec_index: usize, bits: u8) -> u8 {
    codec_index as u8 | bits
}

fn packetize_seeds() -> Vec<Seed> {
    use fuzzing::packetize_input;
    let obu = |kind: u8, payload: &[u8]| {
        let mut v = vec![(kind << 3) | 0x02, payload.len() as u8];
        v.extend_from_slice(payload);
        v
    };
    let seq = obu(
        1,
        &[
            0, 0, 0, 0x6A, 0xEF, 0xBF, 0xE1, 0xBC, 0x02, 0x19, 0x90, 0x10, 0x10, 0x10,
        ],
    );
    let mut av1c = vec![0x81, 0x00, 0x0C, 0x00];
    av1c.extend_from_slice(&seq);
    let mut key = obu(2, &[]);
    key.extend_from_slice(&seq);
    key.extend(obu(6, &[0x55; 120]));
    let mut inter = obu(2, &[]);
    inter.extend(obu(6, &[0x33; 90]));
    let vp9_key: Vec<u8> = (0..250u32).map(|i| i as u8).collect();
    let video = |codec: u32| -> Vec<(u8, Vec<u8>)> {
        frames(codec, 3, 300)
            .into_iter()
            .map(|f| (u8::from(f.is_key()), f.payload.to_vec()))
            .collect()
    };
    vec![
        (
            "av1_key_and_inter",
            packetize_input(6, &av1c, &[(1, key.clone()), (0, inter.clone())]),
        ),
        (
            "av1_key_without_header",
            packetize_input(6, &av1c, &[(1, obu(6, &[7; 300]))]),
        ),
        (
            "vp9",
            packetize_input(5, &[], &[(1, vp9_key.clone()), (0, vp9_key[..40].to_vec())]),
        ),
        (
            "h264",
            packetize_input(
                0,
                &seeds::video_config(RILL_CODEC_H264),
                &video(RILL_CODEC_H264),
            ),
        ),
        (
            "aac",
            packetize_input(2, &seeds::AAC_ASC, &[(1, vec![0x21; 150])]),
        ),
    ]
}

fn depacketize_seeds() -> Vec<Seed> {
    let mut out = Vec::new();
    let names = ["h264", "h265", "aac", "opus", "pcma"];
    for (ci, name) in names.iter().enumerate() {
        let codec = CODECS[ci];
        let f = frames(codec, 6, 3000);
        let d = datagrams(codec, &f, 400);
        let plain: Vec<(u8, Vec<u8>)> = d.iter().map(|g| (20, g.clone())).collect();
        out.push((
            leak(format!("{name}_in_order")),
            depacketize_input(selector(ci, SEL_CONFIG), &plain),
        ));
        // Reordered pairs and one loss, through the reorder buffer.
        let mut shuffled = plain.clone();
        for k in (1..shuffled.len().saturating_sub(1)).step_by(5) {
            shuffled.swap(k, k + 1);
        }
        if shuffled.len() > 4 {
            shuffled.remove(shuffled.len() / 2);
        }
        out.push((
            leak(format!("{name}_reordered_lossy")),
            depacketize_input(selector(ci, SEL_REORDER), &shuffled),
        ));
    }
    // VP8: a key frame (frame tag bit 0 clear) and inter frames, several
    // packets each.
    let vp8: Vec<Frame> = (0..4i64)
        .map(|i| Frame {
            track: 0,
            codec: RILL_CODEC_VP8,
            flags: if i == 0 { RILL_FRAME_KEY } else { 0 },
            pts: i * 40_000,
            dts: i * 40_000,
            payload: (0..900u32)
                .map(|k| if k == 0 { u8::from(i != 0) } else { k as u8 })
                .collect(),
        })
        .collect();
    let d: Vec<(u8, Vec<u8>)> = datagrams(RILL_CODEC_VP8, &vp8, 400)
        .into_iter()
        .map(|g| (40, g))
        .collect();
    out.push(("vp8_in_order", depacketize_input(selector(6, 0), &d)));
    // AAC-lbr layout (6/2/2): two AUs of 3 and 2 bytes.
    let mut lbr = rill_rtp::RtpHeader {
        marker: true,
        payload_type: 97,
        seq: 7,
        timestamp: 1000,
        ssrc: 5,
    }
    .to_bytes()
    .to_vec();
    lbr.extend_from_slice(&[0x00, 0x10, 3 << 2, 2 << 2, 1, 2, 3, 4, 5]);
    out.push(("aac_lbr", depacketize_input(5, &[(0, lbr)])));
    out
}

fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

/// A key frame's packets as a player cache holds them.
fn cached_packets() -> Vec<u8> {
    let config = seeds::video_config(RILL_CODEC_H264);
    let mut p = Packetizer::new(RILL_CODEC_H264, Some(&config), 300).unwrap();
    let f = &frames(RILL_CODEC_H264, 1, 700)[0];
    p.packetize(f).unwrap().to_bytes().to_vec()
}

fn rtcp_seeds() -> Vec<Seed> {
    let block = ReportBlock {
        ssrc: 0x0102_0304,
        fraction_lost: 3,
        cumulative_lost: 17,
        highest_seq: 0x0001_0005,
        jitter: 40,
        last_sr: 0xE000_8000,
        delay_since_last_sr: 0x8000,
    };
    let sr = RtcpPacket::SenderReport(SenderReport {
        ssrc: 0x0102_0304,
        ntp: 0xE9A0_0000_4000_0000,
        rtp_time: 0xFFFF_0000,
        packets: 1000,
        octets: 1_000_000,
        reports: vec![],
    });
    let sdes = RtcpPacket::SourceDescription(vec![SdesChunk {
        ssrc: 0x0102_0304,
        cname: Some("rill@192.0.2.1".into()),
    }]);
    let rr = RtcpPacket::ReceiverReport {
        ssrc: 9,
        reports: vec![block, block],
    };
    let bye = RtcpPacket::Bye {
        ssrcs: vec![0x0102_0304],
        reason: Some("teardown".into()),
    };
    let w = |ps: &[RtcpPacket]| {
        let mut v = Vec::new();
        rill_rtp::write_rtcp(ps, &mut v);
        v
    };
    let rtp = datagrams(RILL_CODEC_H264, &frames(RILL_CODEC_H264, 1, 100), 1200);
    vec![
        ("sr_sdes", w(&[sr.clone(), sdes.clone()])),
        ("rr_sdes", w(&[rr.clone(), sdes.clone()])),
        ("sr_sdes_bye", w(&[sr, sdes, bye.clone()])),
        ("rr_bye", w(&[rr, bye])),
        (
            "app",
            w(&[RtcpPacket::Other {
                packet_type: 204,
                count: 0,
            }]),
        ),
        ("rtp_stap_a", rtp[0].clone()),
        ("rtp_single", rtp[rtp.len() - 1].clone()),
        ("cached_packets", cached_packets()),
    ]
}

const FFMPEG_SDP: &str = "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=No Name\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\na=tool:libavformat 59.27.100\r\nm=video 5004 RTP/AVP 96\r\nb=AS:200\r\na=rtpmap:96 H264/90000\r\na=fmtp:96 packetization-mode=1; sprop-parameter-sets=Z2QACqzZRHsBEAAAAwAQAAADAyDxIllg,aOvjyyLA; profile-level-id=64000A\r\nm=audio 5006 RTP/AVP 97\r\nb=AS:128\r\na=rtpmap:97 MPEG4-GENERIC/44100/2\r\na=fmtp:97 profile-level-id=1;mode=AAC-hbr;sizelength=13;indexlength=3;indexdeltalength=3; config=1210\r\n";

fn sdp_seeds() -> Vec<Seed> {
    let opus = rill_ts::audio::opus_head_for_code(2).unwrap();
    let h265 = seeds::video_config(RILL_CODEC_H265);
    let all = Sdp {
        name: "live/x".into(),
        control: Some("*".into()),
        tracks: vec![
            SdpTrack::from_config(RILL_CODEC_H265, Some(&h265), 0).unwrap(),
            SdpTrack::from_config(RILL_CODEC_OPUS, Some(&opus), 1).unwrap(),
            SdpTrack::from_config(RILL_CODEC_PCMA, None, 2).unwrap(),
        ],
    };
    vec![
        ("ffmpeg_rtp_h264_aac", FFMPEG_SDP.as_bytes().to_vec()),
        ("rill_h265_opus_pcma", all.write("192.0.2.1").into_bytes()),
        (
            "camera_lf",
            b"v=0\no=- 1 1 IN IP4 0.0.0.0\ns=Media\nt=0 0\na=control:rtsp://cam/ch1/\nm=video 0 RTP/AVP 96 97\na=control:trackID=1\na=rtpmap:97 H264/90000\na=fmtp:97 sprop-parameter-sets=Z2QACqzZRHsBEAAAAwAQAAADAyDxIllg,aOvjyyLA\nm=audio 0 RTP/AVP 0\nm=application 0 RTP/AVP 107\na=rtpmap:107 vnd.onvif.metadata/90000\n"
                .to_vec(),
        ),
    ]
}

/// The generators make what they say.
#[test]
fn seeds_are_what_they_say() {
    for (name, bytes) in depacketize_seeds() {
        assert!(bytes.len() > 3, "{name}");
        fuzzing::depacketize(&bytes);
    }
    for (name, bytes) in rtcp_seeds() {
        let mut v = Vec::new();
        if name == "cached_packets" {
            assert!(rill_rtp::Packets::from_bytes(bytes.into()).is_ok());
        } else if name.starts_with("rtp") {
            assert!(rill_rtp::RtpPacket::parse(&bytes).is_ok(), "{name}");
        } else {
            assert!(rill_rtp::parse_rtcp(&bytes, &mut v).is_ok(), "{name}");
        }
    }
    for (name, bytes) in sdp_seeds() {
        let s = Sdp::parse(&bytes).unwrap();
        assert!(!s.tracks.is_empty(), "{name}");
        assert_ne!(s.tracks[0].codec, 0, "{name}");
    }
    let _ = (RILL_CODEC_PCMA, RILL_CODEC_OPUS);
}

#[test]
#[ignore = "rewrites fuzz/corpus; run on purpose"]
fn write_seed_corpus() {
    fuzz::write_corpus(
        env!("CARGO_MANIFEST_DIR"),
        vec![
            ("depacketize", depacketize_seeds()),
            ("packetize", packetize_seeds()),
            ("rtcp", rtcp_seeds()),
            ("sdp", sdp_seeds()),
        ],
    );
}
