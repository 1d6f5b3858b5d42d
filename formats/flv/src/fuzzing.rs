//! Fuzz target bodies, shared by the cargo-fuzz targets under `fuzz/` and by
//! the stable smoke test (`tests/fuzz_smoke.rs`), so both exercise the same
//! properties. Each function must never panic on any input; the assertions
//! inside are the properties being checked.

use bytes::Bytes;

use crate::reader::{Header, Reader, ReaderLimits, Tag};
use crate::{amf0, stream, tag, Error};

/// AMF0: whatever decodes must re-encode, and the re-encoding is stable.
pub fn amf0(data: &[u8]) {
    let Ok(values) = amf0::decode_all(data, 32) else {
        return;
    };
    let encoded = amf0::encode_all(&values).expect("decoded values must re-encode");
    let again = match amf0::decode_all(&encoded, 32) {
        Ok(again) => again,
        // The item limit grows with the input's length, and the canonical
        // encoding can be shorter (a long-string marker on a short string
        // becomes a short one): an input near the limit may re-encode past
        // it. Found by libFuzzer (corpus seed amf0/shorter_reencoding).
        Err(Error::AmfTooManyValues(_)) if encoded.len() < data.len() => return,
        Err(e) => panic!("re-encoded values must decode: {e:?}"),
    };
    // Compared as bytes: NaN != NaN as values.
    assert_eq!(amf0::encode_all(&again).expect("re-encode"), encoded);
}

/// FLV tag bodies: the first byte picks the tag type, the next four the
/// timestamp. A demuxed frame that muxes must demux to itself.
pub fn flv_tag(data: &[u8]) {
    if data.len() < 5 {
        return;
    }
    let tag_type = [tag::TAG_AUDIO, tag::TAG_VIDEO, tag::TAG_SCRIPT][data[0] as usize % 3];
    let ts = u32::from_be_bytes([data[1], data[2], data[3], data[4]]);
    let body = Bytes::copy_from_slice(&data[5..]);
    let Ok(Some(frame)) = tag::demux(tag_type, &body, ts, 32, amf0::DEFAULT_MAX_VALUES) else {
        return;
    };
    let Ok((t, ts2, muxed)) = tag::mux(&frame) else {
        return;
    };
    let again = tag::demux(t, &muxed, ts2, 32, amf0::DEFAULT_MAX_VALUES)
        .expect("muxed tag must demux")
        .expect("muxed tag must give a frame");
    // Sub-millisecond ModEx offsets do not survive FLV's millisecond clock.
    if frame.dts % 1000 == 0 && frame.pts % 1000 == 0 {
        assert_eq!(again, frame);
    }
}

/// What a [`Reader`] made of a whole stream.
#[derive(Debug, PartialEq, Eq)]
pub struct ReadOutcome {
    /// The header, if read.
    pub header: Option<Header>,
    /// The tags, in order.
    pub tags: Vec<Tag>,
    /// The first error, from `feed` or `finish`.
    pub error: Option<Error>,
    /// PreviousTagSize mismatches counted.
    pub mismatches: u64,
}

/// Feeds `data` to a reader in pieces of the `sizes` given (cycled),
/// draining tags after each, then finishes.
pub fn read_stream(limits: &ReaderLimits, data: &[u8], sizes: &[usize]) -> ReadOutcome {
    let mut r = Reader::with_limits(limits.clone());
    let mut tags = Vec::new();
    let mut error = None;
    let mut rest = data;
    let mut k = 0;
    while !rest.is_empty() {
        let n = sizes[k % sizes.len()].clamp(1, rest.len());
        k += 1;
        let (piece, r2) = rest.split_at(n);
        rest = r2;
        let res = r.feed(piece);
        tags.extend(std::iter::from_fn(|| r.poll_tag()));
        if let Err(e) = res {
            error = Some(e);
            break;
        }
    }
    if error.is_none() {
        error = r.finish().err();
    }
    assert!(r.poll_tag().is_none());
    ReadOutcome {
        header: r.header(),
        tags,
        error,
        mismatches: r.previous_tag_size_mismatches(),
    }
}

/// The FLV stream reader over `data` after three bytes that cut it: read
/// whole and read in pieces must agree; each tag is within the limits and
/// demuxes without a panic; the tags, written again with [`stream`], read
/// back the same with no error and no PreviousTagSize mismatch.
pub fn reader(data: &[u8]) {
    if data.len() < 3 {
        return;
    }
    let (cuts, data) = data.split_at(3);
    let limits = ReaderLimits {
        max_tag_size: 1 << 16,
        max_skipped_tags: 4,
        strict_previous_tag_size: cuts[0] & 0x80 != 0,
    };
    let whole = read_stream(&limits, data, &[usize::MAX]);
    let sizes: Vec<usize> = cuts.iter().map(|&c| usize::from(c % 64) + 1).collect();
    assert_eq!(read_stream(&limits, data, &sizes), whole);
    for t in &whole.tags {
        assert!(t.body.len() <= limits.max_tag_size);
        assert!(matches!(
            t.tag_type,
            tag::TAG_AUDIO | tag::TAG_VIDEO | tag::TAG_SCRIPT
        ));
        let _ = t.demux();
    }
    let Some(h) = whole.header else {
        return;
    };
    let mut again = stream::header(h.audio, h.video).to_vec();
    for t in &whole.tags {
        again.extend_from_slice(&stream::tag(t.tag_type, t.timestamp_ms, &t.body));
    }
    let back = read_stream(&limits, &again, &sizes);
    assert_eq!(back.error, None);
    assert_eq!(back.mismatches, 0);
    assert_eq!(back.header, Some(h));
    assert_eq!(back.tags, whole.tags);
}

/// Typical inputs the seed corpora of rill-flv's and rill-rtmp's fuzz
/// targets are built from (one home for both smoke tests).
pub mod seeds {
    use crate::amf0::{self, Value};

    /// The command object of an ffmpeg-style RTMP `connect`.
    pub fn connect_obj() -> Value {
        Value::object([
            ("app", Value::string("live")),
            ("type", Value::string("nonprivate")),
            (
                "flashVer",
                Value::string("FMLE/3.0 (compatible; Lavf59.27.100)"),
            ),
            ("tcUrl", Value::string("rtmp://127.0.0.1:1935/live")),
        ])
    }

    /// An `@setDataFrame` `onMetaData` body, as ffmpeg sends it.
    pub fn metadata() -> Vec<u8> {
        amf0::encode_all(&[
            Value::string("@setDataFrame"),
            Value::string("onMetaData"),
            Value::EcmaArray(vec![
                ("duration".into(), Value::Number(0.0)),
                ("width".into(), Value::Number(320.0)),
                ("height".into(), Value::Number(240.0)),
                ("videocodecid".into(), Value::Number(7.0)),
                ("encoder".into(), Value::string("Lavf59.27.100")),
            ]),
        ])
        .expect("encodes")
    }

    /// An H.264 sequence header video tag body (AVCDecoderConfigurationRecord).
    pub const AVC_SEQ: &[u8] = &[
        0x17, 0x00, 0x00, 0x00, 0x00, 0x01, 0x42, 0xc0, 0x0d, 0xff, 0xe1, 0x00, 0x19, 0x67, 0x42,
        0xc0, 0x0d, 0xd9, 0x01, 0x41, 0xfb, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10, 0x00, 0x00,
        0x03, 0x03, 0x20, 0xf1, 0x42, 0x99, 0x20, 0x01, 0x00, 0x04, 0x68, 0xcb, 0x83, 0xcb, 0x20,
    ];
}
