//! Fuzz target bodies, shared by the cargo-fuzz targets under `fuzz/` and by
//! the stable smoke test (`tests/fuzz_smoke.rs`), so both exercise the same
//! properties. Each function must never panic on any input; the assertions
//! inside are the properties being checked.

use bytes::Bytes;

use crate::{amf0, tag};

/// AMF0: whatever decodes must re-encode, and the re-encoding is stable.
pub fn amf0(data: &[u8]) {
    let Ok(values) = amf0::decode_all(data, 32) else {
        return;
    };
    let encoded = amf0::encode_all(&values).expect("decoded values must re-encode");
    let again = amf0::decode_all(&encoded, 32).expect("re-encoded values must decode");
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
