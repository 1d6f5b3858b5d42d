//! The cost of the ABI crossing, per frame per subscriber: delivering one
//! frame to a plugin's `on_frame` through the host's real call path (the
//! descriptor's fn pointer under `Instance::call`, the frame lent as its
//! `Arc<Frame>` pointer), against an in-process Rust call doing the same
//! work.
//!
//! The work, the same everywhere: read the frame's info (track, codec,
//! flags, pts, dts; a call back into the host for a plugin) and count it in
//! the session's state.
//!
//! - `c_template`: the C template (`plugin-template`, built with its
//!   Makefile, -O2). Its play session gets an H.265 frame, which FLV cannot
//!   carry: `cb_frame` reads the info with `frame_info` and returns, the
//!   first step of its mux.
//! - `rust_sdk`: `plugins/testkit` (built here in release), through the SDK's
//!   trampoline: instance and session lookup, panic guard, `FrameRef` view,
//!   then `frame.info()`.
//! - `direct`: the same work as a plain Rust function (inlinable).
//! - `dyn_trait`: the same work behind `&mut dyn Trait` (an in-process
//!   plugin system's virtual call).
//!
//! Both plugins are created by the real host and their session is opened
//! over a real TCP connection (`rill::plugin::bench_support`). After the
//! criterion runs, a summary prints ns per call and the ratios.

use std::hint::black_box;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::Criterion;
use rill::engine::{Engine, EngineSettings, Frame, FrameRef};
use rill::plugin::bench_support::BenchSession;
use rill::plugin::library;
use rill_abi::*;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace")
        .to_path_buf()
}

/// cargo's target dir (the bench runs from `<target>/<profile>/deps`).
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    exe.ancestors().nth(3).expect("target dir").to_path_buf()
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The C template, built with its Makefile in `dir`.
fn build_template(dir: &Path) -> PathBuf {
    let src = workspace().join("plugin-template");
    for f in ["flvtcp.c", "Makefile"] {
        std::fs::copy(src.join(f), dir.join(f)).expect("copy template");
    }
    run(Command::new("make")
        .arg("-s")
        .arg("-C")
        .arg(dir)
        .arg(format!("INCLUDE={}", workspace().join("include").display())));
    dir.join("libflvtcp.so")
}

/// The testkit plugin, built in release in its own target dir (the bench's
/// cargo may still hold the main one).
fn build_testkit() -> PathBuf {
    let dir = target_dir().join("bench-plugins");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    run(Command::new(cargo)
        .current_dir(workspace())
        .args(["build", "--quiet", "--release", "-p", "rill-plugin-testkit"])
        .arg("--target-dir")
        .arg(&dir));
    dir.join("release/librill_plugin_testkit.so")
}

fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
}

/// What an in-process protocol would do with the frame: the same fields the
/// host's `frame_info` fills in.
#[derive(Default)]
struct DirectSession {
    frames: u64,
    last_dts: i64,
}

fn info_of(f: &Frame) -> RillFrameInfo {
    let mut i = RillFrameInfo::new();
    i.track = if f.codec() == RILL_CODEC_METADATA {
        RILL_METADATA_TRACK
    } else {
        f.track()
    };
    i.codec = f.codec();
    i.flags = f.flags();
    i.pts = f.pts();
    i.dts = f.dts();
    i
}

fn on_frame_direct(s: &mut DirectSession, f: &Frame) -> i32 {
    let info = info_of(f);
    s.frames += 1;
    s.last_dts = info.dts;
    RILL_OK
}

trait OnFrame {
    fn on_frame(&mut self, f: &Frame) -> i32;
}

impl OnFrame for DirectSession {
    fn on_frame(&mut self, f: &Frame) -> i32 {
        on_frame_direct(self, f)
    }
}

/// The setup: both plugins created and one session of each open.
struct Setup {
    _rt: tokio::runtime::Runtime,
    _dir: tempfile::TempDir,
    c: BenchSession,
    rust: BenchSession,
    frame: FrameRef,
}

fn setup() -> Setup {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let _g = rt.enter();
    // The template subscribes on open: its session must not end by itself.
    let engine = Engine::new(EngineSettings {
        wait_timeout: Duration::from_secs(24 * 3600),
        ..EngineSettings::default()
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let private = dir.path().join("loaded");

    let tpl = library::load(&build_template(dir.path()), &private, 1).expect("load template");
    let (ingest, play) = (free_addr(), free_addr());
    let c = BenchSession::open(
        &tpl,
        &format!("ingest: {ingest}\nplay: {play}\nstream: bench/abi\n"),
        engine.clone(),
        rt.handle().clone(),
        play,
    )
    .expect("template session");

    let kit = library::load(&build_testkit(), &private, 1).expect("load testkit");
    let listen = free_addr();
    let rust = BenchSession::open(
        &kit,
        &format!("listen: {listen}\n"),
        engine,
        rt.handle().clone(),
        listen,
    )
    .expect("testkit session");

    let frame: FrameRef = Arc::new(Frame::new(
        0,
        RILL_CODEC_H265,
        RILL_FRAME_KEY,
        40_000,
        40_000,
        Bytes::from(vec![0u8; 1024]),
    ));
    assert_eq!(c.on_frame(&frame), RILL_OK);
    assert_eq!(rust.on_frame(&frame), RILL_OK);
    assert!(c.is_open() && rust.is_open());
    Setup {
        _rt: rt,
        _dir: dir,
        c,
        rust,
        frame,
    }
}

fn bench(c: &mut Criterion, s: &Setup) {
    let mut g = c.benchmark_group("on_frame");
    let frame = &s.frame;
    g.bench_function("c_template", |b| b.iter(|| s.c.on_frame(black_box(frame))));
    g.bench_function("rust_sdk", |b| b.iter(|| s.rust.on_frame(black_box(frame))));
    let mut direct = DirectSession::default();
    g.bench_function("direct", |b| {
        b.iter(|| on_frame_direct(black_box(&mut direct), black_box(frame)))
    });
    let mut d = DirectSession::default();
    g.bench_function("dyn_trait", |b| {
        b.iter(|| {
            let p: &mut dyn OnFrame = black_box(&mut d);
            p.on_frame(black_box(frame))
        })
    });
    g.finish();
    black_box((direct.frames, direct.last_dts, d.frames, d.last_dts));
}

/// Best of 7 runs of `n` calls: ns per call.
fn ns_per_call(n: u32, mut f: impl FnMut() -> i32) -> f64 {
    (0..7)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..n {
                black_box(f());
            }
            t.elapsed().as_nanos() as f64 / f64::from(n)
        })
        .fold(f64::INFINITY, f64::min)
}

fn summary(s: &Setup) {
    let n = 2_000_000;
    let frame = &s.frame;
    let c = ns_per_call(n, || s.c.on_frame(black_box(frame)));
    let rust = ns_per_call(n, || s.rust.on_frame(black_box(frame)));
    let mut d = DirectSession::default();
    let direct = ns_per_call(n, || on_frame_direct(black_box(&mut d), black_box(frame)));
    let mut d2 = DirectSession::default();
    let dyn_ = ns_per_call(n, || {
        let p: &mut dyn OnFrame = black_box(&mut d2);
        p.on_frame(black_box(frame))
    });
    assert!(s.c.is_open() && s.rust.is_open(), "a bench session ended");
    println!("\nABI crossing, one frame to one subscriber (best of 7 x {n} calls):");
    for (name, v) in [
        ("c_template", c),
        ("rust_sdk", rust),
        ("direct", direct),
        ("dyn_trait", dyn_),
    ] {
        println!(
            "  {name:<11} {v:7.2} ns/call   x{:6.1} direct   x{:5.1} dyn_trait",
            v / direct,
            v / dyn_
        );
    }
    println!(
        "  ABI cost over a dyn call: C {:.2} ns, Rust SDK {:.2} ns per frame per subscriber",
        c - dyn_,
        rust - dyn_
    );
}

fn main() {
    let s = setup();
    let mut c = Criterion::default().configure_from_args();
    bench(&mut c, &s);
    c.final_summary();
    // `cargo bench` passes --bench; `cargo test --benches` does not (one
    // quick pass of each benchmark, no summary).
    if std::env::args().any(|a| a == "--bench") {
        summary(&s);
    }
}
