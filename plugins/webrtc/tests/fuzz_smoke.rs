//! Runs the WebRTC plugin's fuzz target bodies (offer, http) over their
//! committed seed corpus (Chromium's WHEP and WHIP offers, captured from
//! tests/browser/webrtc.mjs --sdp) and deterministic mutations of it
//! ([`rill_testsupport::fuzz::smoke`]).

use rill_plugin_webrtc::fuzzing;
use rill_testsupport::fuzz::{self, Target};

/// Each target, its mutation rounds and its mutation seed (rill-rtsp's
/// targets have 15 and 16; these 21 and 22).
const TARGETS: [(&str, Target, usize, u64); 2] = [
    ("offer", fuzzing::offer, 1_500, 21),
    ("http", fuzzing::http, 20_000, 22),
];

/// Interesting bytes for SDP and HTTP: line ends, `=` `:` `/` `;` `%`
/// space, digits, and the letters SDP lines start with.
const MAGIC: [u8; 20] = [
    b'\r', b'\n', b'=', b':', b'/', b';', b'%', b' ', b'0', b'9', b'a', b'm', b'c', b'v', b'o',
    b's', b't', b'.', 0x00, 0xFF,
];

#[test]
fn fuzz_targets_over_corpus_and_mutations() {
    fuzz::smoke_all(env!("CARGO_MANIFEST_DIR"), &TARGETS, &MAGIC);
}
