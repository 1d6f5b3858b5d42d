//! Runs rill-mp4's fuzz target bodies (boxes, roundtrip) over their
//! committed seed corpus and a few thousand deterministic mutations of it
//! ([`rill_testsupport::fuzz::smoke`]), so the normal (stable) test run
//! exercises what `cargo +nightly fuzz run <target>` explores at length.
//!
//! `cargo test -p rill-mp4 --test fuzz_smoke -- --ignored` rewrites the
//! seed corpus from the generators below.

use bytes::Bytes;
use rill_abi::{
    RILL_CODEC_AAC, RILL_CODEC_AV1, RILL_CODEC_H264, RILL_CODEC_H265, RILL_CODEC_OPUS,
    RILL_CODEC_VP9,
};
use rill_mp4::fuzzing::{self, seeds};
use rill_mp4::{Muxer, Sample, TrackInfo};
use rill_testsupport::fuzz;

use rill_testsupport::fuzz::{Seed, Target};

/// Each target, its mutation rounds and its mutation seed: fixed per target
/// (other crates' targets have 1 to 8), so a target's inputs do not change
/// when targets come and go.
const TARGETS: [(&str, Target, usize, u64); 3] = [
    ("boxes", fuzzing::boxes, 20_000, 9),
    ("roundtrip", fuzzing::roundtrip, 10_000, 10),
    ("progressive", fuzzing::progressive, 10_000, 11),
];

/// Interesting bytes for ISO BMFF and the roundtrip records: box size
/// edges, full-box versions, sample flag bytes, the record flag bits.
const MAGIC: [u8; 16] = [
    0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x07, 0x08, 0x10, 0x20, 0x40, 0x7f, 0x80, 0x81, 0xc0, 0xff,
];

#[test]
fn fuzz_targets_over_corpus_and_mutations() {
    fuzz::smoke_all(env!("CARGO_MANIFEST_DIR"), &TARGETS, &MAGIC);
}

// ---- seed corpus generators ----

/// Sidecar indexes: H.264 + AAC with a GOP of samples, a torn last
/// record, HEVC + Opus with B-frame offsets, a track count past the limit.
fn progressive_seeds() -> Vec<Seed> {
    use rill_mp4::progressive::{Index, StoredSample};
    let index = |tracks: Vec<TrackInfo>, n: usize, cto: i64, torn: bool| {
        let mut b = Index::head(&tracks).to_vec();
        let mut offset = 48u64;
        for i in 0..n {
            let track = (i % tracks.len()) as u8;
            let dts = i as i64 * 20_000;
            let s = StoredSample {
                track,
                key: i % 10 == 0,
                size: 100 + i as u32,
                offset,
                dts,
                pts: dts + if track == 0 { cto } else { 0 },
            };
            offset += s.size as u64;
            b.extend_from_slice(&s.record());
        }
        if torn {
            b.truncate(b.len() - 7);
        }
        b
    };
    let mut too_many = index(
        vec![track(RILL_CODEC_AAC, seeds::ASC_LC_44100_MONO)],
        2,
        0,
        false,
    );
    too_many[5] = 200;
    vec![
        (
            "h264_aac",
            index(
                vec![
                    track(RILL_CODEC_H264, seeds::AVCC_HIGH_31),
                    track(RILL_CODEC_AAC, seeds::ASC_LC_44100_MONO),
                ],
                30,
                0,
                false,
            ),
        ),
        (
            "h264_torn",
            index(
                vec![track(RILL_CODEC_H264, seeds::AVCC_HIGH_31)],
                12,
                40_000,
                true,
            ),
        ),
        (
            "hevc_opus",
            index(
                vec![
                    track(RILL_CODEC_H265, seeds::HVCC_MAIN),
                    track(RILL_CODEC_OPUS, seeds::OPUS_HEAD_MONO),
                ],
                20,
                80_000,
                false,
            ),
        ),
        ("too_many_tracks", too_many),
    ]
}

fn track(codec: u32, config: &'static [u8]) -> TrackInfo {
    TrackInfo::new(codec, Bytes::from_static(config)).unwrap()
}

fn boxes_seeds() -> Vec<Seed> {
    let h264_aac = vec![
        track(RILL_CODEC_H264, seeds::AVCC_HIGH_31),
        track(RILL_CODEC_AAC, seeds::ASC_LC_44100_MONO),
    ];
    let mut mux = Muxer::new(h264_aac).unwrap();
    let init = mux.init_segment().unwrap();
    let frame = |n: u8| Bytes::from(vec![0, 0, 0, 3, 0x65, n, n]);
    let mut segment = Vec::new();
    for i in 0..6i64 {
        mux.push(
            0,
            Sample::new(i * 40_000, i * 40_000 + 80_000, i % 3 == 0, frame(i as u8)),
        )
        .unwrap();
        mux.push(
            1,
            Sample::new(
                i * 23_000,
                i * 23_000,
                true,
                Bytes::from_static(b"\x21\x10"),
            ),
        )
        .unwrap();
        if i % 3 == 2 {
            segment.extend_from_slice(&mux.fragment().unwrap().to_bytes());
        }
    }
    let fragment = mux.flush(None).unwrap().to_bytes();
    let mut whole = init.to_vec();
    whole.extend_from_slice(&segment);
    let init_of = |tracks: Vec<TrackInfo>| rill_mp4::init_segment(&tracks).unwrap().to_vec();
    vec![
        ("init_h264_aac", init.to_vec()),
        ("fragment", fragment.to_vec()),
        ("segment", segment),
        ("init_and_segment", whole),
        (
            "init_hevc_opus",
            init_of(vec![
                track(RILL_CODEC_H265, seeds::HVCC_MAIN),
                track(RILL_CODEC_OPUS, seeds::OPUS_HEAD_MONO),
            ]),
        ),
        (
            "init_av1",
            init_of(vec![track(RILL_CODEC_AV1, seeds::AV1C_MAIN)]),
        ),
        (
            "init_vp9",
            init_of(vec![track(RILL_CODEC_VP9, seeds::VPCC_FULL_BOX)]),
        ),
    ]
}

/// One roundtrip record (see `rill_mp4::fuzzing::roundtrip`).
struct Rec {
    sel: u8,
    step_10us: u16,
    cto_ms: i8,
    key: bool,
    duration: bool,
    cut: bool,
    len: u8,
}

fn records(set: u8, recs: &[Rec]) -> Vec<u8> {
    let mut v = vec![set];
    for r in recs {
        v.push(r.sel);
        v.extend_from_slice(&r.step_10us.to_be_bytes());
        v.push(r.cto_ms as u8);
        let len = r.len.min(31);
        v.push(r.key as u8 | (r.duration as u8) << 1 | (r.cut as u8) << 2 | len << 3);
        v.extend((0..len).map(|i| i.wrapping_mul(37) ^ r.sel));
    }
    v
}

/// Video at 25 fps (track 0) interleaved with audio frames of ~23 ms
/// (track 1), a key frame every `gop` frames, cut with `how` (0 all ready,
/// 1 before the key frame, 2 flush with an end, 3 flush) at each key frame.
fn av_stream(set: u8, frames: u16, gop: u16, how: u8, cto: &[i8]) -> Vec<u8> {
    let mut recs = Vec::new();
    for i in 0..frames {
        let key = i % gop == 0;
        recs.push(Rec {
            sel: (how << 4),
            step_10us: if i == 0 { 0 } else { 4000 },
            cto_ms: cto[i as usize % cto.len()],
            key,
            duration: false,
            cut: key && i > 0,
            len: 5 + (i % 20) as u8,
        });
        for a in 0..2 {
            recs.push(Rec {
                sel: 1,
                step_10us: if i == 0 && a == 0 { 0 } else { 2000 },
                cto_ms: 0,
                key: true,
                duration: false,
                cut: false,
                len: 3,
            });
        }
    }
    records(set, &recs)
}

fn roundtrip_seeds() -> Vec<Seed> {
    let explicit: Vec<Rec> = (0..12)
        .map(|i| Rec {
            sel: 1 | (2 << 4),
            step_10us: 2000,
            cto_ms: 0,
            key: true,
            duration: i % 2 == 0,
            cut: i % 4 == 3,
            len: 4,
        })
        .collect();
    let bad: Vec<Rec> = [
        (0u8, 100u16),
        (0x80, 0xffff),
        (0x40, 50),
        (0, 10),
        (0x40, 0),
    ]
    .iter()
    .map(|&(sel, step)| Rec {
        sel,
        step_10us: step,
        cto_ms: -3,
        key: true,
        duration: false,
        cut: sel == 0,
        len: 2,
    })
    .collect();
    vec![
        ("h264_aac_gop", av_stream(2, 30, 10, 1, &[0])),
        (
            "h264_bframes",
            av_stream(0, 12, 6, 0, &[0, 80, 40, -40, 120]),
        ),
        ("hevc_opus_flush_end", av_stream(3, 10, 5, 2, &[40, 0])),
        ("av1_opus", av_stream(4, 8, 4, 3, &[0])),
        ("vp9_aac", av_stream(5, 8, 4, 1, &[0])),
        ("three_tracks", av_stream(6, 6, 3, 0, &[0])),
        ("aac_explicit_durations", records(1, &explicit)),
        ("bad_timestamps", records(2, &bad)),
    ]
}

#[test]
#[ignore = "rewrites fuzz/corpus; run on purpose"]
fn write_seed_corpus() {
    fuzz::write_corpus(
        env!("CARGO_MANIFEST_DIR"),
        vec![
            ("boxes", boxes_seeds()),
            ("roundtrip", roundtrip_seeds()),
            ("progressive", progressive_seeds()),
        ],
    );
}
