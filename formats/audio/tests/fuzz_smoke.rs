//! Runs rill-audio's fuzz target body (`bridge`) over its committed seed
//! corpus and deterministic mutations of it
//! ([`rill_testsupport::fuzz::smoke`]), so the normal (stable) test run
//! exercises what `scripts/fuzz` explores at length.
//!
//! `cargo test -p rill-audio --test fuzz_smoke -- --ignored` rewrites the
//! seed corpus from the generators below.

use rill_audio::fuzzing::{self, seeds};
use rill_testsupport::fuzz::{self, Seed, Target};

/// The target, its mutation rounds and its mutation seed (fixed: a
/// target's inputs do not change when targets come and go).
const TARGETS: [(&str, Target, usize, u64); 1] = [("bridge", fuzzing::bridge, 600, 31)];

/// Interesting bytes: directions, ASC object types and rate indexes, the
/// OpusHead magic's letters, Opus TOC bytes, length bytes.
const MAGIC: [u8; 16] = [
    0x00, 0x01, 0x02, 0x05, 0x10, 0x11, 0x12, 0x13, 0x4F, 0x70, 0x7F, 0x80, 0xF8, 0xFC, 0xFE, 0xFF,
];

#[test]
fn fuzz_targets_over_corpus_and_mutations() {
    fuzz::smoke_all(env!("CARGO_MANIFEST_DIR"), &TARGETS, &MAGIC);
}

fn bridge_seeds() -> Vec<Seed> {
    let (asc, aus) = seeds::aac(12);
    let (head, packets) = seeds::opus(12);
    let steps = |v: &[Vec<u8>], ms: i8| -> Vec<(i8, Vec<u8>)> {
        v.iter().map(|p| (ms, p.clone())).collect()
    };
    let refs = |v: &[(i8, Vec<u8>)]| -> Vec<u8> {
        let r: Vec<(i8, &[u8])> = v.iter().map(|(s, p)| (*s, p.as_slice())).collect();
        seeds::input(0, &[], &r)[2..].to_vec()
    };
    let with = |dir: u8, config: &[u8], body: Vec<u8>| {
        let mut v = vec![dir, config.len() as u8];
        v.extend_from_slice(config);
        v.extend(body);
        v
    };
    let aac_steady = refs(&steps(&aus, 21));
    let opus_steady = refs(&steps(&packets, 20));
    let mut aac_jumps = steps(&aus, 21);
    aac_jumps[4].0 = -100;
    aac_jumps[8].0 = 120;
    let mut opus_gap = steps(&packets, 20);
    opus_gap[5].0 = 40;
    vec![
        ("aac_to_opus", with(0, &asc, aac_steady)),
        ("aac_to_opus_jumps", with(0, &asc, refs(&aac_jumps))),
        ("opus_to_aac", with(1, &head, opus_steady.clone())),
        ("opus_to_aac_no_head", with(1, &[], opus_steady)),
        ("opus_to_aac_gap", with(1, &head, refs(&opus_gap))),
    ]
}

#[test]
#[ignore = "writes the seed corpus"]
fn write_seed_corpus() {
    fuzz::write_corpus(env!("CARGO_MANIFEST_DIR"), vec![("bridge", bridge_seeds())]);
}
