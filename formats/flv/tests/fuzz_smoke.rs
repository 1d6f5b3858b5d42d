//! Runs rill-flv's fuzz target bodies (amf0, flv_tag, reader) over their committed
//! seed corpus and a few thousand deterministic mutations of it
//! ([`rill_testsupport::fuzz::smoke`]), so the normal (stable) test run
//! exercises what `cargo +nightly fuzz run <target>` explores at length.
//!
//! `cargo test -p rill-flv --test fuzz_smoke -- --ignored` rewrites
//! the seed corpus from the generators below.

use rill_flv::amf0::{self, Value};
use rill_flv::fuzzing;
use rill_flv::fuzzing::seeds::{connect_obj, metadata, AVC_SEQ};
use rill_flv::stream;
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
/// tag bodies (AVC, AAC, Enhanced RTMP), the FLV signature and filter bit,
/// edges.
const MAGIC: [u8; 20] = [
    0x00, 0x01, 0x02, 0x03, 0x05, 0x08, 0x09, 0x0a, 0x0c, 0x12, 0x17, 0x27, 0x7f, 0x90, 0xaf, 0xff,
    b'F', b'L', b'V', 0x20,
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

/// Three cut bytes (see `fuzzing::reader`), then an FLV stream of `tags`
/// (type, timestamp, body) behind `header`.
fn flv(cuts: [u8; 3], header: &[u8], tags: &[(u8, u32, &[u8])]) -> Vec<u8> {
    let mut v = cuts.to_vec();
    v.extend_from_slice(header);
    for &(t, ts, body) in tags {
        v.extend_from_slice(&stream::tag(t, ts, body));
    }
    v
}

fn reader_seeds() -> Vec<Seed> {
    let av = stream::header(true, true);
    let meta = metadata();
    let on_meta = &meta[16..];
    let aac_seq: &[u8] = &[0xaf, 0x00, 0x12, 0x10];
    let live = [
        (18, 0, on_meta),
        (9, 0, AVC_SEQ),
        (8, 0, aac_seq),
        (9, 0, &[0x17, 0x01, 0, 0, 0x50, 0, 0, 0, 2, 0x65, 0x88][..]),
        (8, 23, &[0xaf, 0x01, 0x21, 0x10, 0x04][..]),
        (9, 40, &[0x27, 0x01, 0, 0, 0, 0, 0, 0, 1, 0x41][..]),
    ];
    let mut wrong_sizes = flv([5, 5, 5], &av, &live[..3]);
    // PreviousTagSize0 and the size after the first tag, wrong (the
    // first cut byte's top bit makes the target strict about them).
    wrong_sizes[3 + 12] = 7;
    let first_end = 3 + 13 + 11 + on_meta.len();
    wrong_sizes[first_end + 2] ^= 0x10;
    let mut strict = wrong_sizes.clone();
    strict[0] |= 0x80;
    let mut encrypted = flv([1, 2, 3], &av, &live[1..2]);
    encrypted[3 + 13] |= 0x20;
    vec![
        ("ffmpeg_live", flv([7, 1, 63], &av, &live)),
        (
            "extended_timestamps",
            flv(
                [2, 11, 4],
                &av,
                &[
                    (8, 0x00FF_FFFF, aac_seq),
                    (8, 0x0100_0000, aac_seq),
                    (9, u32::MAX, AVC_SEQ),
                ],
            ),
        ),
        (
            "header_offset_audio_only",
            flv(
                [3, 3, 3],
                b"FLV\x01\x04\x00\x00\x00\x0cABC\x00\x00\x00\x00",
                &[(8, 1, &[0x2f, 0xff, 0xfb][..])],
            ),
        ),
        (
            "unknown_tags",
            flv(
                [9, 9, 9],
                &av,
                &[
                    (15, 0, &[1; 40][..]),
                    (8, 5, &[0x2f, 9][..]),
                    (0x49, 6, b"\x17\x02\x00\x00\x00"),
                ],
            ),
        ),
        ("wrong_previous_sizes", wrong_sizes),
        ("strict_previous_sizes", strict),
        ("encrypted", encrypted),
        ("truncated", {
            let mut v = flv([60, 60, 60], &av, &live);
            v.truncate(v.len() - 9);
            v
        }),
        ("header_only", flv([1, 1, 1], &av, &[])),
    ]
}

/// The reader seeds read as they say.
#[test]
fn reader_seeds_are_what_they_say() {
    use rill_flv::fuzzing::read_stream;
    use rill_flv::{Error, ReaderLimits};
    for (name, bytes) in reader_seeds() {
        let limits = ReaderLimits {
            strict_previous_tag_size: bytes[0] & 0x80 != 0,
            ..ReaderLimits::default()
        };
        let o = read_stream(&limits, &bytes[3..], &[usize::MAX]);
        let (tags, error, mismatches) = match name {
            "ffmpeg_live" => (6, None, 0),
            "extended_timestamps" => (3, None, 0),
            "header_offset_audio_only" => (1, None, 0),
            "unknown_tags" => (2, None, 0),
            "wrong_previous_sizes" => (3, None, 2),
            "strict_previous_sizes" => (0, Some(Error::Malformed("FLV PreviousTagSize")), 0),
            "encrypted" => (
                0,
                Some(Error::Unsupported("encrypted FLV tag (filter bit)")),
                0,
            ),
            "truncated" => (5, Some(Error::Truncated("FLV tag")), 0),
            "header_only" => (0, None, 0),
            _ => unreachable!("{name}"),
        };
        assert_eq!(
            (o.tags.len(), o.error, o.mismatches),
            (tags, error, mismatches),
            "{name}"
        );
        fuzzing::reader(&bytes);
    }
}

#[test]
#[ignore = "rewrites fuzz/corpus; run on purpose"]
fn write_seed_corpus() {
    fuzz::write_corpus(
        env!("CARGO_MANIFEST_DIR"),
        vec![
            ("amf0", amf0_seeds()),
            ("flv_tag", flv_seeds()),
            ("reader", reader_seeds()),
        ],
    );
}
