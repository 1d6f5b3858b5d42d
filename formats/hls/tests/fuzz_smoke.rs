//! Runs rill-hls's fuzz target bodies (playlist, pull) over their committed
//! seed corpus and deterministic mutations of it
//! ([`rill_testsupport::fuzz::smoke`]), so the normal (stable) test run
//! exercises what `cargo +nightly fuzz run <target>` explores at length.
//!
//! `cargo test -p rill-hls --test fuzz_smoke -- --ignored` rewrites the
//! seed corpus from the generators below.

use bytes::Bytes;
use rill_abi::{RILL_CODEC_AAC, RILL_CODEC_H264, RILL_FRAME_KEY};
use rill_hls::{fuzzing, Frame};
use rill_testsupport::fuzz::{self, Seed, Target};

/// Each target, its mutation rounds and its mutation seed: fixed per target
/// (1 to 16 and 21 to 25 are other crates'), so a target's inputs do not
/// change when targets come and go.
const TARGETS: [(&str, Target, usize, u64); 2] = [
    ("playlist", fuzzing::playlist, 20_000, 26),
    ("pull", fuzzing::pull, 2_000, 27),
];

/// Interesting bytes for playlists and segments: line ends, `#` `:` `,`
/// `=` `"` `@` `.` `-` `/`, digits, the letters of `EXT`, `YES`, the TS
/// sync byte, the first bytes of box sizes.
const MAGIC: [u8; 24] = [
    b'\n', b'\r', b'#', b':', b',', b'=', b'"', b'@', b'.', b'-', b'/', b'0', b'1', b'9', b'E',
    b'X', b'T', b'Y', b'S', 0x47, 0x00, 0x01, 0x7F, 0xFF,
];

const AVCC: &[u8] = &[
    1, 0x42, 0xc0, 0x0d, 0xff, 0xe1, 0, 0x19, 0x67, 0x42, 0xc0, 0x0d, 0xd9, 0x01, 0x41, 0xfb, 0x01,
    0x10, 0, 0, 3, 0, 0x10, 0, 0, 3, 3, 0x20, 0xf1, 0x42, 0x99, 0x20, 1, 0, 4, 0x68, 0xcb, 0x83,
    0xcb, 0x20,
];

#[test]
fn fuzz_targets_over_corpus_and_mutations() {
    fuzz::smoke_all(env!("CARGO_MANIFEST_DIR"), &TARGETS, &MAGIC);
}

// ---- seed corpus generators ----

const LL: &str = "#EXTM3U
#EXT-X-TARGETDURATION:4
#EXT-X-VERSION:9
#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=1.0,CAN-SKIP-UNTIL=12.0
#EXT-X-PART-INF:PART-TARGET=0.33334
#EXT-X-MEDIA-SEQUENCE:266
#EXT-X-SKIP:SKIPPED-SEGMENTS=3
#EXT-X-MAP:URI=\"init.mp4\"
#EXTINF:4.00008,
fileSequence266.mp4
#EXT-X-DISCONTINUITY
#EXT-X-MAP:URI=\"init2.mp4\",BYTERANGE=\"720@0\"
#EXT-X-PART:DURATION=0.33334,URI=\"filePart267.0.mp4\",INDEPENDENT=YES
#EXT-X-PART:DURATION=0.33334,URI=\"filePart267.1.mp4\"
#EXTINF:0.66668,
fileSequence267.mp4
#EXT-X-PART:DURATION=0.33334,URI=\"filePart268.0.mp4\",INDEPENDENT=YES
#EXT-X-PART:DURATION=0.33334,URI=\"filePart268.3.mp4\",BYTERANGE=\"1000@2000\"
#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"filePart268.4.mp4\",BYTERANGE-START=3000
#EXT-X-RENDITION-REPORT:URI=\"../1M/waitForMSN.php\",LAST-MSN=273,LAST-PART=2
";

const MULTI: &str = "#EXTM3U\n#EXT-X-VERSION:9\n#EXT-X-INDEPENDENT-SEGMENTS\n\
    #EXT-X-STREAM-INF:BANDWIDTH=2628000,CODECS=\"avc1.64001f,mp4a.40.2\",RESOLUTION=1280x720\n\
    x/llhls.m3u8\n#EXT-X-STREAM-INF:BANDWIDTH=628000,RESOLUTION=320x240\nlow.m3u8\n";

fn ts_playlist(n: u64, tail: &str) -> String {
    let mut t =
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:1\n#EXT-X-MEDIA-SEQUENCE:10\n".to_owned();
    for i in 0..n {
        t.push_str(&format!("#EXTINF:1.000,\nt{}.ts\n", 10 + i));
    }
    t.push_str(tail);
    t
}

fn playlist_seeds() -> Vec<Seed> {
    vec![
        ("low_latency", LL.into()),
        ("multivariant", MULTI.into()),
        ("classic_ts", ts_playlist(4, "#EXT-X-ENDLIST\n").into_bytes()),
        (
            "byteranges",
            b"#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-BYTERANGE:1000@700\n#EXTINF:2,\nall.mp4\n\
              #EXT-X-BYTERANGE:500\n#EXTINF:2,\nall.mp4\n#EXT-X-DISCONTINUITY-SEQUENCE:4\n"
                .to_vec(),
        ),
        (
            "odd_numbers",
            format!(
                "\u{feff}#EXTM3U\n#EXT-X-TARGETDURATION:nan\n#EXT-X-MEDIA-SEQUENCE:{}\n#EXTINF:-1,\na\n",
                u64::MAX
            )
            .into_bytes(),
        ),
    ]
}

fn nal(key: bool) -> Bytes {
    Bytes::from_static(if key {
        &[0, 0, 0, 3, 0x65, 0x88, 0x80]
    } else {
        &[0, 0, 0, 3, 0x41, 0x9a, 0x00]
    })
}

/// One second of 5 fps video and audio as MPEG-TS.
fn ts_segment() -> Vec<u8> {
    use rill_ts::{MuxTrack, Muxer, MuxerConfig};
    let tracks = [
        MuxTrack::new(RILL_CODEC_H264, Bytes::from_static(AVCC)),
        MuxTrack::new(RILL_CODEC_AAC, Bytes::from_static(&[0x12, 0x10])),
    ];
    let mut mux = Muxer::new(&tracks, MuxerConfig::default()).unwrap();
    let mut seg = Vec::new();
    for i in 0..5i64 {
        let t = 1_000_000 + i * 200_000;
        for (track, codec, payload) in [
            (0, RILL_CODEC_H264, nal(i == 0)),
            (1, RILL_CODEC_AAC, Bytes::from_static(&[0x21, 0x10, 4, 5])),
        ] {
            let f = Frame {
                track,
                codec,
                flags: if i == 0 { RILL_FRAME_KEY } else { 0 },
                pts: t,
                dts: t,
                payload,
            };
            mux.write(&f, &mut seg).unwrap();
        }
    }
    seg
}

/// An init segment and one second of fragments, in one body.
fn fmp4_body() -> Vec<u8> {
    let v = rill_mp4::TrackInfo::new(RILL_CODEC_H264, Bytes::from_static(AVCC)).unwrap();
    let a = rill_mp4::TrackInfo::new(RILL_CODEC_AAC, Bytes::from_static(&[0x12, 0x10])).unwrap();
    let mut mux = rill_mp4::Muxer::new(vec![v, a]).unwrap();
    let mut body = mux.init_segment().unwrap().to_vec();
    for i in 0..5i64 {
        let t = 2_000_000 + i * 200_000;
        mux.push(0, rill_mp4::Sample::new(t, t, i == 0, nal(i == 0)))
            .unwrap();
        mux.push(
            1,
            rill_mp4::Sample::new(t, t, true, Bytes::from_static(&[0x21, 0x10, 4])),
        )
        .unwrap();
    }
    body.extend_from_slice(&mux.flush(Some(3_000_000)).unwrap().to_bytes());
    body
}

/// The input of `pull`: control byte, playlist, body.
fn pull_input(ctl: u8, playlist: &str, body: &[u8]) -> Vec<u8> {
    let mut v = vec![ctl];
    v.extend_from_slice(&(playlist.len() as u16).to_be_bytes());
    v.extend_from_slice(playlist.as_bytes());
    v.extend_from_slice(body);
    v
}

fn pull_seeds() -> Vec<Seed> {
    let ts = ts_segment();
    let mp4 = fmp4_body();
    let fmp4_playlist = "#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXT-X-MAP:URI=\"init.mp4\"\n\
        #EXTINF:1,\ns0.m4s\n#EXTINF:1,\ns1.m4s\n#EXT-X-DISCONTINUITY\n#EXTINF:1,\ns2.m4s\n";
    let ranges = format!(
        "#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXT-X-BYTERANGE:{}@0\n#EXTINF:1,\nall.ts\n\
         #EXT-X-BYTERANGE:{}\n#EXTINF:1,\nall.ts\n",
        188 * 3,
        ts.len() - 188 * 3
    );
    vec![
        ("ts_live", pull_input(0b111, &ts_playlist(3, ""), &ts)),
        (
            "ts_ended",
            pull_input(0b010, &ts_playlist(2, "#EXT-X-ENDLIST\n"), &ts),
        ),
        ("fmp4", pull_input(0b101, fmp4_playlist, &mp4)),
        ("byteranges", pull_input(0b100, &ranges, &ts)),
        ("multivariant", pull_input(0b011, MULTI, &ts)),
        (
            "garbage",
            pull_input(0b110, &ts_playlist(3, ""), b"<html>nope</html>"),
        ),
    ]
}

/// The pull seeds play as they say.
#[test]
fn pull_seeds_are_what_they_say() {
    use rill_hls::PullError;
    for (name, bytes) in pull_seeds() {
        fuzzing::pull(&bytes);
        let (_, playlist, _) = fuzzing::split_pull(&bytes).unwrap();
        assert!(playlist.starts_with(b"#EXTM3U"), "{name}");
        let o = fuzzing::run_pull(&bytes).unwrap();
        let video = o
            .frames
            .iter()
            .filter(|f| f.track == 0 && !f.is_config())
            .count();
        let (frames, error) = match name {
            // Three segments (the same second each), then nothing new for
            // stall_us.
            "ts_live" => (15, Some(PullError::Stalled(10_000_000))),
            "ts_ended" => (5, Some(PullError::Ended)),
            "fmp4" => (10, Some(PullError::Stalled(10_000_000))),
            "byteranges" => (5, Some(PullError::Stalled(10_000_000))),
            "multivariant" => (0, Some(PullError::NotMedia)),
            "garbage" => (
                0,
                o.error
                    .clone()
                    .filter(|e| e.to_string().contains("MPEG-TS")),
            ),
            _ => unreachable!("{name}"),
        };
        assert_eq!((video, &o.error), (frames, &error), "{name}: {:?}", o.stats);
    }
}

#[test]
#[ignore = "rewrites fuzz/corpus; run on purpose"]
fn write_seed_corpus() {
    fuzz::write_corpus(
        env!("CARGO_MANIFEST_DIR"),
        vec![("playlist", playlist_seeds()), ("pull", pull_seeds())],
    );
}
