//! Bodies of the fuzz targets (`fuzz/`), shared with the stable smoke test
//! (`tests/fuzz_smoke.rs`): what the plugin reads from disk.
//!
//! - `source`: a recording file read back for a replay. The first byte
//!   picks the format (fMP4, FLV, TS, MP4), the second the read size; the
//!   rest is the file, read from where the source asks, as a replay reads
//!   it. Nothing may panic or loop, and every config frame goes out just
//!   before a media frame, stamped with its time.

use rill_abi::RILL_FRAME_CONFIG;

use crate::source::Source;

/// The formats the first byte picks from.
pub const FORMATS: [&str; 4] = ["fmp4", "flv", "ts", "mp4"];

/// A recording file read back (see the module docs).
pub fn source(data: &[u8]) {
    let [format, read, file @ ..] = data else {
        return;
    };
    let mut s = Source::new(FORMATS[*format as usize % FORMATS.len()]).expect("a known format");
    let read = 1 + *read as usize * 61;
    let mut out = Vec::new();
    // Reads never go back more than once (an MP4's samples after its
    // moov): a bound on reads catches a source that would loop.
    let mut reads = 0;
    loop {
        reads += 1;
        assert!(reads <= 2 * file.len() + 2, "the source keeps asking");
        // A read past the end brings nothing, as the host's would.
        let at = (s.position() as usize).min(file.len());
        let end = at.saturating_add(read).min(file.len());
        if s.read(Some(&file[at..end]), file.len() as u64, &mut out) != Ok(true) {
            break;
        }
    }
    for (i, f) in out.iter().enumerate() {
        if f.flags & RILL_FRAME_CONFIG == 0 {
            continue;
        }
        let next = out[i..].iter().find(|m| m.flags & RILL_FRAME_CONFIG == 0);
        assert_eq!(
            next.map(|m| m.dts),
            Some(f.dts),
            "a config without its frame"
        );
    }
}
