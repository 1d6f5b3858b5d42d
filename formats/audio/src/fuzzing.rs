//! Fuzz target bodies, shared by the cargo-fuzz targets (fuzz/) and the
//! stable smoke test (tests/fuzz_smoke.rs).
//!
//! `bridge` input: byte 0 picks the bridge (even: AAC → Opus, odd: Opus →
//! AAC), byte 1 is the config's length n, then n config bytes (an
//! AudioSpecificConfig or an OpusHead; none for Opus when n is 0), then
//! packets: a signed byte of pts step (× 1 ms, so jumps back and gaps come
//! up), a u16 big-endian length, that many payload bytes.
//! Properties: no panic; every output frame has a payload; within a run
//! (until a frame flagged `discontinuity`) pts strictly increase.

use crate::{AacToOpus, Frame, OpusToAac};

/// At most this many packets an input (each decode can cost a
/// millisecond; the fuzzer needs many inputs a second).
const MAX_PACKETS: usize = 64;

enum Bridge {
    ToOpus(AacToOpus),
    ToAac(OpusToAac),
}

pub fn bridge(data: &[u8]) {
    let [dir, n, rest @ ..] = data else {
        return;
    };
    let n = usize::from(*n).min(rest.len());
    let (config, mut rest) = rest.split_at(n);
    let made = if dir % 2 == 0 {
        AacToOpus::new(config, 64_000).map(Bridge::ToOpus)
    } else {
        OpusToAac::new((n > 0).then_some(config), 128_000).map(Bridge::ToAac)
    };
    let Ok(mut b) = made else {
        return;
    };
    let mut pts: i64 = 0;
    let mut last: Option<i64> = None;
    let mut out: Vec<Frame> = Vec::new();
    for _ in 0..MAX_PACKETS {
        let [step, hi, lo, tail @ ..] = rest else {
            break;
        };
        let len = usize::from(u16::from_be_bytes([*hi, *lo])).min(tail.len());
        let (payload, next) = tail.split_at(len);
        rest = next;
        pts += i64::from(*step as i8) * 1000;
        out.clear();
        let _ = match &mut b {
            Bridge::ToOpus(c) => c.push(pts, payload, &mut out),
            Bridge::ToAac(c) => c.push(pts, payload, &mut out),
        };
        for f in &out {
            assert!(!f.data.is_empty(), "an empty output frame");
            if let (Some(l), false) = (last, f.discontinuity) {
                assert!(
                    f.pts_us > l,
                    "pts {} after {l} without a discontinuity",
                    f.pts_us
                );
            }
            last = Some(f.pts_us);
        }
    }
}

/// Seed inputs for `bridge`: real streams made by the bridges themselves.
pub mod seeds {
    use super::*;

    /// Opus silence: a 20 ms CELT full-band stereo frame.
    pub const OPUS_SILENCE: [u8; 3] = [0xFC, 0xFF, 0xFE];

    /// A `bridge` input: direction, config, (step ms, payload) packets.
    pub fn input(dir: u8, config: &[u8], packets: &[(i8, &[u8])]) -> Vec<u8> {
        let mut v = vec![dir, config.len() as u8];
        v.extend_from_slice(config);
        for (step, p) in packets {
            v.push(*step as u8);
            v.extend_from_slice(&(p.len() as u16).to_be_bytes());
            v.extend_from_slice(p);
        }
        v
    }

    /// An AAC stream (its ASC and access units) from `n` Opus packets.
    pub fn aac(n: usize) -> (Vec<u8>, Vec<Vec<u8>>) {
        let mut b = OpusToAac::new(None, 128_000).expect("Opus to AAC");
        let mut out = Vec::new();
        for i in 0..n {
            b.push(i as i64 * 20_000, &OPUS_SILENCE, &mut out)
                .expect("silence decodes");
        }
        (
            b.config().to_vec(),
            out.into_iter().map(|f| f.data.to_vec()).collect(),
        )
    }

    /// An Opus stream (its OpusHead and packets) from `n` AAC frames.
    pub fn opus(n: usize) -> (Vec<u8>, Vec<Vec<u8>>) {
        let (asc, aus) = aac(n + 4);
        let mut b = AacToOpus::new(&asc, 64_000).expect("AAC to Opus");
        let mut out = Vec::new();
        for (i, au) in aus.iter().enumerate() {
            b.push(i as i64 * 21_333, au, &mut out)
                .expect("AAC decodes");
        }
        (
            b.config().to_vec(),
            out.into_iter().map(|f| f.data.to_vec()).collect(),
        )
    }
}
