//! Runs rill-flv's fuzz target bodies (amf0, flv_tag) over their committed
//! seed corpus and a few thousand deterministic mutations of it
//! ([`rill_testsupport::fuzz::smoke`]), so the normal (stable) test run
//! exercises what `cargo +nightly fuzz run <target>` explores at length.
//!
//! `cargo test -p rill-flv --test fuzz_smoke -- --ignored` rewrites
//! the seed corpus from the generators below.

use rill_flv::amf0::{self, Value};
use rill_flv::fuzzing;
use rill_flv::fuzzing::seeds::{connect_obj, metadata, AVC_SEQ};
use rill_testsupport::fuzz;

use rill_testsupport::fuzz::{Seed, Target};

/// Each target, its mutation rounds and its mutation seed: fixed per target
/// (rill-rtmp's targets have 1, 2, 5 and 6), so a target's inputs do not
/// change when targets come and go.
const TARGETS: [(&str, Target, usize, u64); 2] = [
    ("amf0", fuzzing::amf0, 20_000, 3),
    ("flv_tag", fuzzing::flv_tag, 20_000, 4),
];

/// Interesting bytes for FLV and AMF0: AMF0 markers (number to long
/// string, object end), tag types, the first byte of common audio and video
/// tag bodies (AVC, AAC, Enhanced RTMP), edges.
const MAGIC: [u8; 16] = [
    0x00, 0x01, 0x02, 0x03, 0x05, 0x08, 0x09, 0x0a, 0x0c, 0x12, 0x17, 0x27, 0x7f, 0x90, 0xaf, 0xff,
];

#[test]
fn fuzz_targets_over_corpus_and_mutations() {
    fuzz::smoke_all(env!("CARGO_MANIFEST_DIR"), &TARGETS, &MAGIC);
}

// ---- seed corpus generators ----

fn amf0_seeds() -> Vec<Seed> {
    // An RTMP connect command's body: name, transaction id, command object.
    let connect =
        amf0::encode_all(&[Value::string("connect"), Value::Number(1.0), connect_obj()]).unwrap();
    let nested = amf0::encode_all(&[
        Value::StrictArray(vec![
            Value::Number(f64::MAX),
            Value::Boolean(false),
            Value::Undefined,
            Value::Date {
                millis: 1.7e12,
                time_zone: 0,
            },
            Value::object([("o", Value::object([("p", Value::EcmaArray(vec![]))]))]),
        ]),
        Value::string("x".repeat(65_600)),
    ])
    .unwrap();
    let fourcc = amf0::encode_all(&[Value::object([(
        "fourCcList",
        Value::StrictArray(["av01", "vp09", "hvc1", "Opus"].map(Value::string).to_vec()),
    )])])
    .unwrap();
    // Tiny encodings that decode to many values.
    let null_array = amf0::encode_all(&[Value::StrictArray(vec![Value::Null; 5000])]).unwrap();
    let mut empty_keys = vec![0x03];
    empty_keys.extend([0, 0, 0x06].repeat(2000));
    empty_keys.extend_from_slice(&[0, 0, 0x09]);
    vec![
        ("connect", connect),
        ("metadata", metadata()),
        ("nested_long", nested),
        ("fourcc_list", fourcc),
        ("null_array", null_array),
        ("empty_keys", empty_keys),
    ]
}

fn flv_seeds() -> Vec<Seed> {
    let tag = |sel: u8, ts: u32, body: &[u8]| {
        let mut v = vec![sel];
        v.extend_from_slice(&ts.to_be_bytes());
        v.extend_from_slice(body);
        v
    };
    // Selector: 0 audio, 1 video, 2 script.
    vec![
        ("avc_seq", tag(1, 0, AVC_SEQ)),
        (
            "avc_nalu",
            tag(1, 40, &[0x27, 0x01, 0, 0, 0x50, 0, 0, 0, 2, 0x41, 0x9a]),
        ),
        (
            "hevc_legacy",
            tag(1, 5, &[0x1c, 0x01, 0, 0, 0, 0, 0, 0, 1, 0x26]),
        ),
        (
            "hevc_ex",
            tag(1, 100, b"\xa1hvc1\x00\x00\x28\x00\x00\x00\x01\x02"),
        ),
        (
            "av1_modex",
            tag(
                1,
                10,
                &[
                    0x97, 0x02, 0x07, 0xa1, 0x20, 0x03, b'a', b'v', b'0', b'1', 0x0a,
                ],
            ),
        ),
        ("vp9", tag(1, 7, b"\x90vp09\x01\x00\x00")),
        ("aac", tag(0, 23, &[0xaf, 0x01, 0x21, 0x10, 0x04])),
        ("aac_seq", tag(0, 0, &[0xaf, 0x00, 0x12, 0x10])),
        ("opus_head", tag(0, 0, b"\x90OpusOpusHead\x01\x02\x38\x01")),
        ("mp3", tag(0, 26, &[0x2f, 0xff, 0xfb, 0x90])),
        ("metadata", tag(2, 0, &metadata())),
    ]
}

#[test]
#[ignore = "rewrites fuzz/corpus; run on purpose"]
fn write_seed_corpus() {
    fuzz::write_corpus(
        env!("CARGO_MANIFEST_DIR"),
        vec![("amf0", amf0_seeds()), ("flv_tag", flv_seeds())],
    );
}
