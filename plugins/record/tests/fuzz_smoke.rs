//! Runs the record plugin's fuzz target body (source) over its committed
//! seed corpus (short fMP4, FLV, TS and MP4 files from ffmpeg, each behind
//! its format and read-size bytes) and deterministic mutations of it
//! ([`rill_testsupport::fuzz::smoke`]).

use rill_plugin_record::fuzzing;
use rill_testsupport::fuzz::{self, Target};

/// The target, its mutation rounds and its mutation seed (the WebRTC
/// plugin's have 21 and 22, rill-mp4's up to 31; this 32).
const TARGETS: [(&str, Target, usize, u64); 1] = [("source", fuzzing::source, 3_000, 32)];

/// Box types, FLV and TS markers, small sizes.
const MAGIC: [u8; 16] = [
    b'm', b'o', b'o', b'v', b'd', b'a', b't', 0x47, b'F', b'L', b'V', 0x09, 0x08, 0x00, 0x01, 0xFF,
];

#[test]
fn fuzz_targets_over_corpus_and_mutations() {
    fuzz::smoke_all(env!("CARGO_MANIFEST_DIR"), &TARGETS, &MAGIC);
}
