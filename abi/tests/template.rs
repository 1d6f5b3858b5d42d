//! Builds the C plugin template (plugin-template/flvtcp.c) with the flags its
//! Makefile uses, loads it, and drives it through a mock host: FLV bytes in
//! on the ingest side must become the right frames; frames pushed to a
//! viewer must come out as the right FLV; the frame cache must be used; the
//! plugin must respect backpressure and release every frame it takes.
//!
//! Skips (saying so) only when no C compiler is installed.

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::ptr;
use std::sync::atomic::Ordering;

use common::{Event, Loaded, MockHost};
use rill_abi::*;

const CONFIG: &str = "# flvtcp\ningest: 127.0.0.1:19350   # where ffmpeg sends\nplay: \"127.0.0.1:19351\"\nstream: live/x\nother:\n  nested: 1\n";

fn template_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../plugin-template")
}

/// Compiles the template into a private .so (as the Makefile does), or
/// `None` without a compiler.
fn build(variant: &str, extra: &[&str]) -> Option<PathBuf> {
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let missing = (!rill_testsupport::runs(&cc, &["--version"]))
        .then(|| format!("{cc} does not run; it builds the plugin template"));
    if !rill_testsupport::require_tool("template", "a C compiler", missing) {
        return None;
    }
    let dir = std::env::temp_dir().join(format!("rill-template-{}-{variant}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("libflvtcp.so");
    let res = Command::new(&cc)
        .args([
            "-std=c11",
            "-Wall",
            "-Wextra",
            "-Wpedantic",
            "-Werror",
            "-fPIC",
            "-shared",
        ])
        .args([
            "-fvisibility=hidden",
            "-O2",
            "-g",
            "-DFLVTCP_VERSION=\"9.8.7\"",
        ])
        .args(extra)
        .arg("-I")
        .arg(template_dir().join("../include"))
        .arg("-o")
        .arg(&out)
        .arg(template_dir().join("flvtcp.c"))
        .output()
        .unwrap();
    assert!(
        res.status.success(),
        "building the template failed:\n{}",
        String::from_utf8_lossy(&res.stderr)
    );
    Some(out)
}

fn load(path: &PathBuf) -> (libloading::Library, *const RillPluginDescriptor) {
    // SAFETY: loading our own freshly built plugin; its initializers are C.
    let lib = unsafe { libloading::Library::new(path) }.unwrap();
    // SAFETY: the symbol has the RillPluginEntryV1 type (the header says so).
    let entry: libloading::Symbol<RillPluginEntryV1> =
        unsafe { lib.get(b"rill_plugin_entry_v1\0") }.unwrap();
    // SAFETY: calling the entry point as the host does.
    let desc = unsafe { entry(RILL_ABI_MAJOR as u32, RILL_ABI_MINOR as u32) };
    // SAFETY: as above; a foreign major must be refused.
    let refused = unsafe { entry(2, 0) }.is_null();
    assert!(refused, "entry must refuse ABI major 2");
    (lib, desc)
}

fn tag(ty: u8, ts_ms: u32, body: &[u8]) -> Vec<u8> {
    let n = body.len() as u32;
    let mut v = vec![
        ty,
        (n >> 16) as u8,
        (n >> 8) as u8,
        n as u8,
        (ts_ms >> 16) as u8,
        (ts_ms >> 8) as u8,
        ts_ms as u8,
        (ts_ms >> 24) as u8,
        0,
        0,
        0,
    ];
    v.extend_from_slice(body);
    v.extend_from_slice(&(11 + n).to_be_bytes());
    v
}

const AVCC: &[u8] = &[
    1, 0x64, 0, 0x1f, 0xff, 0xe1, 0, 4, 0x67, 0x64, 0, 0x1f, 1, 0, 4, 0x68, 0xee, 0x3c, 0x80,
];
const ASC: &[u8] = &[0x12, 0x10]; // AAC LC, 44100 Hz, 2 channels
const KEY_NALU: &[u8] = &[0, 0, 0, 4, 0x65, 1, 2, 3];
const INTER_NALU: &[u8] = &[0, 0, 0, 3, 0x41, 9, 9];
const AAC_RAW: &[u8] = &[0x21, 0x22, 0x23];

fn metadata_body() -> Vec<u8> {
    let mut m = vec![2, 0, 10];
    m.extend_from_slice(b"onMetaData");
    m.extend_from_slice(&[8, 0, 0, 0, 1, 0, 5]);
    m.extend_from_slice(b"width");
    m.push(0);
    m.extend_from_slice(&1280f64.to_be_bytes());
    m.extend_from_slice(&[0, 0, 9]);
    m
}

fn flv_stream() -> Vec<u8> {
    let mut s = b"FLV\x01\x05\0\0\0\x09\0\0\0\0".to_vec();
    let mut script = vec![2, 0, 13];
    script.extend_from_slice(b"@setDataFrame");
    script.extend_from_slice(&metadata_body());
    s.extend(tag(18, 0, &script));
    s.extend(tag(9, 0, &[&[0x17, 0, 0, 0, 0][..], AVCC].concat()));
    s.extend(tag(8, 0, &[&[0xaf, 0][..], ASC].concat()));
    s.extend(tag(9, 0, &[&[0x17, 1, 0, 0, 40][..], KEY_NALU].concat()));
    s.extend(tag(9, 5, &[0x1c, 1, 2, 3])); // codec 12 (HEVC, non-standard): skipped
    s.extend(tag(8, 23, &[&[0xaf, 1][..], AAC_RAW].concat()));
    s.extend(tag(
        9,
        40,
        &[&[0x27, 1, 0xff, 0xff, 0xec][..], INTER_NALU].concat(),
    )); // cts -20
    s
}

fn info(track: u32, codec: u32, flags: u32, dts: i64, pts: i64) -> RillFrameInfo {
    RillFrameInfo {
        track,
        codec,
        flags,
        dts,
        pts,
        ..RillFrameInfo::new()
    }
}

fn expected_events() -> Vec<Event> {
    let video = RillTrackInfo {
        kind: RILL_TRACK_VIDEO,
        codec: RILL_CODEC_H264,
        ..RillTrackInfo::new()
    };
    let audio = RillTrackInfo {
        kind: RILL_TRACK_AUDIO,
        codec: RILL_CODEC_AAC,
        sample_rate: 44100,
        channels: 2,
        ..RillTrackInfo::new()
    };
    vec![
        Event::Open("live/x".into()),
        Event::Meta(
            info(
                RILL_METADATA_TRACK,
                RILL_CODEC_METADATA,
                RILL_FRAME_CONFIG,
                0,
                0,
            ),
            metadata_body(),
        ),
        Event::Track(0, video),
        Event::Frame(
            info(0, RILL_CODEC_H264, RILL_FRAME_CONFIG, 0, 0),
            AVCC.to_vec(),
        ),
        Event::Track(1, audio),
        Event::Frame(
            info(1, RILL_CODEC_AAC, RILL_FRAME_CONFIG | RILL_FRAME_KEY, 0, 0),
            ASC.to_vec(),
        ),
        Event::Frame(
            info(0, RILL_CODEC_H264, RILL_FRAME_KEY, 0, 40_000),
            KEY_NALU.to_vec(),
        ),
        Event::Frame(
            info(1, RILL_CODEC_AAC, RILL_FRAME_KEY, 23_000, 23_000),
            AAC_RAW.to_vec(),
        ),
        Event::Frame(
            info(0, RILL_CODEC_H264, 0, 40_000, 20_000),
            INTER_NALU.to_vec(),
        ),
    ]
}

/// Parses an FLV byte stream into (type, timestamp ms, body).
fn parse_flv(b: &[u8]) -> Vec<(u8, u32, Vec<u8>)> {
    assert_eq!(
        &b[..13],
        b"FLV\x01\x05\0\0\0\x09\0\0\0\0",
        "FLV file header"
    );
    let mut out = Vec::new();
    let mut i = 13;
    while i < b.len() {
        let ty = b[i];
        let n = u32::from_be_bytes([0, b[i + 1], b[i + 2], b[i + 3]]) as usize;
        let ts = u32::from_be_bytes([b[i + 7], b[i + 4], b[i + 5], b[i + 6]]);
        let body = b[i + 11..i + 11 + n].to_vec();
        let prev = u32::from_be_bytes(b[i + 11 + n..i + 15 + n].try_into().unwrap());
        assert_eq!(prev as usize, 11 + n, "PreviousTagSize");
        out.push((ty, ts, body));
        i += 15 + n;
    }
    assert_eq!(i, b.len(), "trailing bytes");
    out
}

struct PlayFrames(Vec<*mut RillFrame>);

impl PlayFrames {
    fn new(h: &MockHost) -> PlayFrames {
        PlayFrames(vec![
            h.frame(
                &metadata_body(),
                info(
                    RILL_METADATA_TRACK,
                    RILL_CODEC_METADATA,
                    RILL_FRAME_CONFIG,
                    0,
                    0,
                ),
            ),
            h.frame(
                AVCC,
                info(0, RILL_CODEC_H264, RILL_FRAME_CONFIG, 5_000_000, 5_000_000),
            ),
            h.frame(
                ASC,
                info(
                    1,
                    RILL_CODEC_AAC,
                    RILL_FRAME_CONFIG | RILL_FRAME_KEY,
                    5_000_000,
                    5_000_000,
                ),
            ),
            h.frame(
                KEY_NALU,
                info(0, RILL_CODEC_H264, RILL_FRAME_KEY, 10_000_000, 10_040_000),
            ),
            h.frame(
                AAC_RAW,
                info(1, RILL_CODEC_AAC, RILL_FRAME_KEY, 10_023_000, 10_023_000),
            ),
            h.frame(
                INTER_NALU,
                info(0, RILL_CODEC_H264, 0, 10_040_000, 10_020_000),
            ),
        ])
    }
}

impl Drop for PlayFrames {
    fn drop(&mut self) {
        for f in &self.0 {
            // SAFETY: the test owns one reference to each.
            unsafe { common::frame_release(*f) };
        }
    }
}

fn expected_tags() -> Vec<(u8, u32, Vec<u8>)> {
    vec![
        (18, 0, metadata_body()),
        (9, 0, [&[0x17, 0, 0, 0, 0][..], AVCC].concat()),
        (8, 0, [&[0xaf, 0][..], ASC].concat()),
        (9, 0, [&[0x17, 1, 0, 0, 40][..], KEY_NALU].concat()),
        (8, 23, [&[0xaf, 1][..], AAC_RAW].concat()),
        (
            9,
            40,
            [&[0x27, 1, 0xff, 0xff, 0xec][..], INTER_NALU].concat(),
        ),
    ]
}

fn run(path: &PathBuf) {
    let (_lib, raw_desc) = load(path);
    let host = MockHost::new(CONFIG);
    // SAFETY: a descriptor from the plugin's entry point.
    let p = unsafe { Loaded::create(raw_desc, &host) }.unwrap();
    // SAFETY: static strings in the loaded library.
    unsafe {
        assert_eq!(p.desc.name.to_str(), Some("flvtcp"));
        assert_eq!(p.desc.version.to_str(), Some("9.8.7"));
    }
    assert_eq!(
        *host.listeners.lock().unwrap(),
        vec![
            ("127.0.0.1:19350".to_string(), 1, 0),
            ("127.0.0.1:19351".to_string(), 2, 0)
        ]
    );

    // Ingest, fed in ragged pieces.
    let stream = flv_stream();
    let c1 = host.conn();
    let su1 = p.open(&c1, 1).unwrap();
    let mut i = 0;
    let mut step = 1;
    while i < stream.len() {
        let end = (i + step).min(stream.len());
        assert_eq!(
            p.data(su1, &c1, &stream[i..end]),
            RILL_OK,
            "{}",
            host.logs_text()
        );
        i = end;
        step = step % 7 + 1;
    }
    assert_eq!(
        *host.events.lock().unwrap(),
        expected_events(),
        "{}",
        host.logs_text()
    );
    assert!(host.logs_text().contains("codec id 12 is not supported"));
    p.close(su1, &c1, RILL_END_PEER);
    assert_eq!(host.events.lock().unwrap().last(), Some(&Event::Closed));

    // Ingest, all at once, gives the same frames.
    host.events.lock().unwrap().clear();
    let c2 = host.conn();
    let su2 = p.open(&c2, 1).unwrap();
    assert_eq!(p.data(su2, &c2, &stream), RILL_OK);
    let mut want = expected_events();
    want.push(Event::Closed);
    p.close(su2, &c2, RILL_END_PEER);
    assert_eq!(*host.events.lock().unwrap(), want);

    // Garbage is refused; a busy stream refuses the connection.
    let c3 = host.conn();
    let su3 = p.open(&c3, 1).unwrap();
    assert_eq!(
        p.data(su3, &c3, b"GET / HTTP/1.1\r\n\r\n"),
        RILL_ERR_PROTOCOL
    );
    p.close(su3, &c3, RILL_END_PLUGIN_ERROR);
    let c3b = host.conn();
    let su3b = p.open(&c3b, 1).unwrap();
    let mut huge = b"FLV\x01\x05\0\0\0\x09\0\0\0\0".to_vec();
    huge.extend_from_slice(&[9, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(
        p.data(su3b, &c3b, &huge),
        RILL_ERR_PROTOCOL,
        "oversized tag"
    );
    p.close(su3b, &c3b, RILL_END_PLUGIN_ERROR);
    host.busy_paths.lock().unwrap().push("live/x".into());
    assert_eq!(p.open(&host.conn(), 1), Err(RILL_ERR_BUSY));

    // Two viewers: the same FLV, the tag bodies muxed once.
    let frames = PlayFrames::new(&host);
    let sub = ptr::null_mut();
    let v1 = host.conn();
    let sv1 = p.open(&v1, 2).unwrap();
    assert_eq!(
        *host.subscriptions.lock().unwrap(),
        vec!["live/x".to_string()]
    );
    for f in &frames.0 {
        assert_eq!(p.frame(sv1, sub, *f), RILL_OK);
    }
    let allocs = host.frame_allocs.load(Ordering::Relaxed);
    assert_eq!(allocs, frames.0.len(), "one muxed body per frame");
    let v2 = host.conn();
    let sv2 = p.open(&v2, 2).unwrap();
    for f in &frames.0 {
        assert_eq!(p.frame(sv2, sub, *f), RILL_OK);
    }
    assert_eq!(
        host.frame_allocs.load(Ordering::Relaxed),
        allocs,
        "second viewer: cache hits"
    );
    assert_eq!(
        v2.frame_writes.load(Ordering::Relaxed),
        frames.0.len(),
        "zero-copy bodies"
    );
    assert_eq!(parse_flv(&v1.output()), expected_tags());
    assert_eq!(v1.output(), v2.output());

    // Backpressure: after RILL_FULL media is held back until writable, and
    // video resumes at a keyframe.
    let v3 = host.conn();
    let sv3 = p.open(&v3, 2).unwrap();
    v3.high_water.store(0, Ordering::Relaxed); // every write reports RILL_FULL
    for f in &frames.0[..3] {
        assert_eq!(p.frame(sv3, sub, *f), RILL_OK); // config frames always go out
    }
    assert_eq!(p.frame(sv3, sub, frames.0[3]), RILL_OK); // key: dropped (blocked)
    v3.drain_all();
    v3.high_water.store(usize::MAX, Ordering::Relaxed);
    assert_eq!(p.writable(sv3, &v3), RILL_OK);
    assert_eq!(p.frame(sv3, sub, frames.0[4]), RILL_OK); // audio: goes out
    assert_eq!(p.frame(sv3, sub, frames.0[5]), RILL_OK); // inter: waits for a key
    assert_eq!(p.frame(sv3, sub, frames.0[3]), RILL_OK); // key: goes out
    let tags = parse_flv(&v3.output());
    let kinds: Vec<(u8, u32)> = tags.iter().map(|t| (t.0, t.1)).collect();
    // Base = the audio frame's dts (the first media frame written), so the
    // keyframe, 23 ms earlier, is clamped to 0.
    assert_eq!(kinds, vec![(18, 0), (9, 0), (8, 0), (8, 0), (9, 0)]);
    assert_eq!(tags[4].2[..2], [0x17, 1]);

    for (su, c) in [(sv1, &v1), (sv2, &v2), (sv3, &v3)] {
        p.close(su, c, RILL_END_PEER);
    }
    p.destroy();
    drop(frames);
    assert_eq!(
        host.live_frames.load(Ordering::Relaxed),
        0,
        "the plugin leaked frame references"
    );
}

#[test]
fn template_plugin_ingests_and_plays_flv() {
    if let Some(path) = build("release", &[]) {
        run(&path);
        // A C plugin has no abi_stable root module: the deep check says so
        // (and the host relies on magic, major and struct_size alone).
        #[cfg(feature = "abi-check")]
        assert!(rill_abi::stable::check_layout(&path).unwrap().is_none());
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }
}

/// The same scenario under AddressSanitizer + UBSan, in a child process with
/// the sanitizer runtime preloaded (an instrumented .so needs it loaded
/// first). Skipped when the compiler has no ASan runtime.
#[test]
fn template_plugin_is_clean_under_asan() {
    if std::env::var_os("RILL_TEMPLATE_ASAN_CHILD").is_some() {
        let path = PathBuf::from(std::env::var("RILL_TEMPLATE_ASAN_SO").unwrap());
        run(&path);
        return;
    }
    let Some(path) = build(
        "asan",
        &[
            "-O1",
            "-fno-omit-frame-pointer",
            "-fsanitize=address,undefined",
        ],
    ) else {
        return;
    };
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let rt = Command::new(&cc)
        .arg("-print-file-name=libasan.so")
        .output()
        .unwrap();
    let rt = String::from_utf8_lossy(&rt.stdout).trim().to_string();
    let missing = (!rt.starts_with('/')).then(|| format!("{cc} has no libasan.so runtime"));
    if !rill_testsupport::require_tool("template_under_asan", "AddressSanitizer", missing) {
        return;
    }
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "template_plugin_is_clean_under_asan",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("RILL_TEMPLATE_ASAN_CHILD", "1")
        .env("RILL_TEMPLATE_ASAN_SO", &path)
        .env("LD_PRELOAD", &rt)
        // Leak checking would also see the Rust test harness; the frame
        // refcount check above covers the plugin's own references.
        .env("ASAN_OPTIONS", "detect_leaks=0:abort_on_error=1")
        .env("UBSAN_OPTIONS", "halt_on_error=1:print_stacktrace=1")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::remove_dir_all(path.parent().unwrap());
    assert!(
        out.status.success() && text.contains("1 passed"),
        "ASan run failed:\n{text}"
    );
    assert!(!text.contains("runtime error"), "UBSan:\n{text}");
}
