//! Runs rill-ts's fuzz target bodies (demux, roundtrip) over their
//! committed seed corpus and deterministic mutations of it
//! ([`rill_testsupport::fuzz::smoke`]), so the normal (stable) test run
//! exercises what `cargo +nightly fuzz run <target>` explores at length.
//!
//! `cargo test -p rill-ts --test fuzz_smoke -- --ignored` rewrites
//! the seed corpus from the generators below.

use bytes::Bytes;
use rill_abi::{
    RILL_CODEC_AAC, RILL_CODEC_H264, RILL_CODEC_H265, RILL_CODEC_MP3, RILL_CODEC_OPUS,
    RILL_FRAME_KEY,
};
use rill_testsupport::fuzz;
use rill_ts::fuzzing::{self, seeds};
use rill_ts::{Frame, MuxTrack, Muxer, MuxerConfig};

use rill_testsupport::fuzz::{Seed, Target};

/// Each target, its mutation rounds and its mutation seed: fixed per target
/// (rill-flv's targets have 3 and 4, rill-rtmp's 1, 2, 5 and 6), so a
/// target's inputs do not change when targets come and go.
const TARGETS: [(&str, Target, usize, u64); 2] = [
    ("demux", fuzzing::demux, 20_000, 7),
    ("roundtrip", fuzzing::roundtrip, 5_000, 8),
];

/// Interesting bytes for TS: the sync byte, header flag bytes (unit start,
/// adaptation field control), PSI table ids and section bits, stream types,
/// PES stream ids, NAL headers, ADTS/MPEG audio sync, Opus's control prefix.
const MAGIC: [u8; 24] = [
    0x00, 0x01, 0x02, 0x03, 0x06, 0x0F, 0x10, 0x1B, 0x1F, 0x20, 0x24, 0x30, 0x40, 0x47, 0x50, 0x65,
    0x67, 0x7F, 0xB0, 0xBD, 0xC0, 0xE0, 0xF1, 0xFF,
];

#[test]
fn fuzz_targets_over_corpus_and_mutations() {
    fuzz::smoke_all(env!("CARGO_MANIFEST_DIR"), &TARGETS, &MAGIC);
}

// ---- seed corpus generators ----

fn frame(track: u32, codec: u32, key: bool, t: i64, payload: Bytes) -> Frame {
    Frame {
        track,
        codec,
        flags: if key { RILL_FRAME_KEY } else { 0 },
        pts: t,
        dts: t,
        payload,
    }
}

fn mux(tracks: &[MuxTrack], frames: &[Frame]) -> Vec<u8> {
    let mut m = Muxer::new(tracks, MuxerConfig::default()).unwrap();
    let mut out = Vec::new();
    for f in frames {
        m.write(f, &mut out).unwrap();
    }
    out
}

fn demux_seeds() -> Vec<Seed> {
    let h264 = MuxTrack::new(RILL_CODEC_H264, seeds::video_config(RILL_CODEC_H264));
    let hevc = MuxTrack::new(RILL_CODEC_H265, seeds::video_config(RILL_CODEC_H265));
    let aac = MuxTrack::new(RILL_CODEC_AAC, Bytes::from_static(&seeds::AAC_ASC));
    let opus = MuxTrack::new(
        RILL_CODEC_OPUS,
        rill_ts::audio::opus_head_for_code(2).unwrap(),
    );
    let mp3 = MuxTrack::new(RILL_CODEC_MP3, Bytes::new());
    let av = |v: &MuxTrack, a: &MuxTrack, audio: Bytes| {
        let mut frames = Vec::new();
        for i in 0..4i64 {
            let key = i % 3 == 0;
            frames.push(frame(
                0,
                v.codec,
                key,
                i * 40_000,
                seeds::video_au(v.codec, key, 150 + 40 * i as usize, i == 1, &[9, 8, 7]),
            ));
            frames.push(frame(1, a.codec, true, i * 40_000 + 5, audio.clone()));
        }
        mux(&[v.clone(), a.clone()], &frames)
    };
    let h264_aac = av(
        &h264,
        &aac,
        Bytes::from_static(&[0x21, 0x10, 0x04, 0x60, 0x8c, 0x1c]),
    );
    let hevc_opus = av(&hevc, &opus, Bytes::from_static(&[0xFC, 0xFF, 0xFE]));
    let mp3_only = mux(
        &[mp3],
        &[
            frame(0, RILL_CODEC_MP3, true, 0, seeds::mp3_frame(false, 0x55)),
            frame(
                0,
                RILL_CODEC_MP3,
                true,
                26_122,
                seeds::mp3_frame(true, 0x66),
            ),
        ],
    );
    // A big key frame: an unbounded PES across many packets.
    let big = mux(
        std::slice::from_ref(&h264),
        &[frame(
            0,
            RILL_CODEC_H264,
            true,
            0,
            seeds::video_au(RILL_CODEC_H264, true, 66_000, false, &[3]),
        )],
    );
    // Garbage, a lost packet and a duplicated one.
    let mut damaged = b"\x47\x00garbage".to_vec();
    damaged.extend_from_slice(&h264_aac[..188 * 4]);
    damaged.extend_from_slice(&h264_aac[188 * 5..188 * 7]);
    damaged.extend_from_slice(&h264_aac[188 * 6..]);
    vec![
        ("h264_aac", h264_aac),
        ("hevc_opus", hevc_opus),
        ("mp3_only", mp3_only),
        ("h264_big_pes", big),
        ("damaged", damaged),
    ]
}

/// Inputs of the roundtrip target: a selector byte (video: sel % 3,
/// audio: sel / 3 % 4, Opus channels: sel >> 6), two bytes of start time,
/// then 20 bytes per frame (selector, size, DTS step, 16 fill bytes), then
/// chunk sizes for the demuxer.
fn roundtrip_seeds() -> Vec<Seed> {
    let frames = |n: u8, salt: u8| {
        let mut v = Vec::new();
        for i in 0..n {
            let sel = i.wrapping_mul(salt) & 0x7F;
            v.extend_from_slice(&[sel, 0, i.wrapping_mul(29), 40]);
            v.extend_from_slice(&[i ^ salt; 16]);
        }
        v
    };
    let seed = |sel: u8, start: u16, n: u8, salt: u8, chunks: &[u8]| {
        let mut v = vec![sel];
        v.extend_from_slice(&start.to_be_bytes());
        v.extend(frames(n, salt));
        v.extend_from_slice(chunks);
        v
    };
    vec![
        ("h264_aac", seed(1 + 3, 0, 12, 3, &[0])),
        ("hevc_opus", seed(2 + 3 * 3 + 0x40, 1, 10, 5, &[1, 2])),
        ("mp3_only", seed(3 * 2, 7, 6, 7, &[27])),
        (
            "h264_opus_6ch_wrap",
            seed(1 + 3 * 3 + 0x80, 0xB1C7, 12, 11, &[0, 5]),
        ),
        ("hevc_only", seed(2, 3, 8, 13, &[200])),
    ]
}

#[test]
#[ignore = "rewrites fuzz/corpus; run on purpose"]
fn write_seed_corpus() {
    fuzz::write_corpus(
        env!("CARGO_MANIFEST_DIR"),
        vec![("demux", demux_seeds()), ("roundtrip", roundtrip_seeds())],
    );
}
