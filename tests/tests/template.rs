//! The C plugin template, loaded by the real server: publish with ffmpeg
//! (FLV over TCP), play back with ffprobe/ffmpeg, hot reload under a live
//! player, bad files refused, and a run under AddressSanitizer.

use std::process::Command;
use std::time::Duration;

use rill_e2e::*;

struct Ports {
    ingest: u16,
    play: u16,
}

fn config(p: &Ports) -> String {
    format!(
        "publish:\n  reconnect_grace: 2s\nplugins:\n  flvtcp:\n    ingest: 127.0.0.1:{}\n    play: 127.0.0.1:{}\n    stream: live/test\n",
        p.ingest, p.play
    )
}

fn start(version: &str) -> (Rill, Ports) {
    let p = Ports {
        ingest: free_port(),
        play: free_port(),
    };
    let lib = build_template(version, false);
    let r = Rill::start(&config(&p), &[lib]);
    assert!(
        wait_port(p.play, Duration::from_secs(10)),
        "play port not up:\n{}",
        r.log()
    );
    (r, p)
}

#[test]
fn publish_h264_aac_and_play_back() {
    let (rill, p) = start("1.0.0");
    let mut ffmpeg = publish_flvtcp(p.ingest, 12);
    std::thread::sleep(Duration::from_secs(2));
    let url = format!("tcp://127.0.0.1:{}", p.play);
    let streams = probe(&url, &[]);
    assert!(
        streams.contains(&("video".into(), "h264".into())),
        "{streams:?}\n{}",
        rill.log()
    );
    assert!(
        streams.contains(&("audio".into(), "aac".into())),
        "{streams:?}"
    );
    let d = play(false, &url, 5, &[]);
    // 25 fps for 5 s; the GOP start may add up to a GOP (25 frames) before.
    let video = d.count(0);
    assert!(
        (120..=160).contains(&video),
        "decoded {video} video frames: {}",
        d.stderr
    );
    assert!(d.count(1) > 200, "audio frames: {}", d.count(1));
    assert!(d.monotonic(0) && d.monotonic(1), "timestamps not monotonic");
    let streams = rill.get_json("/api/v1/streams");
    assert_eq!(streams["streams"][0]["path"], "live/test");
    let _ = ffmpeg.kill();
    let _ = ffmpeg.wait();
}

/// A plugin built against the ABI 1.0 header (frozen in the repo) loads
/// and serves on this host: minor versions only append.
#[test]
fn abi_1_0_plugin_serves_on_this_host() {
    let p = Ports {
        ingest: free_port(),
        play: free_port(),
    };
    let rill = Rill::start(&config(&p), &[build_template_abi_1_0("1.0.0-old")]);
    assert!(
        wait_port(p.play, Duration::from_secs(10)),
        "play port not up:\n{}",
        rill.log()
    );
    let state = plugin_state(&rill, "flvtcp").expect("flvtcp listed");
    assert_eq!(state["abi"], "1.0", "{state}");
    assert_eq!(state["version"], "1.0.0-old");
    let mut ffmpeg = publish_flvtcp(p.ingest, 10);
    std::thread::sleep(Duration::from_secs(2));
    let d = play(false, &format!("tcp://127.0.0.1:{}", p.play), 4, &[]);
    assert!(
        d.count(0) >= 90,
        "decoded {} video frames: {}",
        d.count(0),
        d.stderr
    );
    assert!(d.count(1) > 150, "audio frames: {}", d.count(1));
    assert!(d.monotonic(0) && d.monotonic(1), "timestamps not monotonic");
    let _ = ffmpeg.kill();
    let _ = ffmpeg.wait();
}

#[test]
fn hot_reload_under_a_live_player() {
    let (rill, p) = start("1.0.0");
    let mut ffmpeg = publish_flvtcp(p.ingest, 20);
    std::thread::sleep(Duration::from_secs(2));
    let old_player = FlvReader::connect(p.play);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(plugin_state(&rill, "flvtcp").unwrap()["generation"], 1);

    // A rebuilt plugin with a new version, installed by rename.
    let v2 = build_template("2.0.0", false);
    let before = old_player.video_count();
    install_plugin(&v2, &rill.plugins_dir(), "libflvtcp.so");
    let state = wait_for(Duration::from_secs(2), || {
        plugin_state(&rill, "flvtcp").filter(|s| s["generation"] == 2 && s["version"] == "2.0.0")
    })
    .unwrap_or_else(|| panic!("generation 2 not reported within 2 s:\n{}", rill.log()));
    assert_eq!(state["state"], "running");

    // The open player goes on without a gap longer than a GOP (1 s).
    std::thread::sleep(Duration::from_secs(3));
    let after = old_player.video_count();
    assert!(
        after >= before + 50,
        "old player stalled: {before} -> {after}"
    );
    assert!(
        old_player.max_video_gap() < Duration::from_millis(1500),
        "gap {:?}",
        old_player.max_video_gap()
    );

    // A new player is served by generation 2 (its session counts there).
    let new_player = FlvReader::connect(p.play);
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        new_player.video_count() > 20,
        "new player got {}",
        new_player.video_count()
    );
    let s = plugin_state(&rill, "flvtcp").unwrap();
    assert_eq!(
        s["sessions"], 1,
        "the new player is generation 2's only session: {s}"
    );
    assert_eq!(
        s["draining"], 1,
        "generation 1 still serves the publisher and the old player: {s}"
    );

    // A truncated file: refused with its reason, generation 2 keeps serving.
    let bytes = std::fs::read(&v2).unwrap();
    let trunc = rill.dir.path().join("trunc.so");
    std::fs::write(&trunc, &bytes[..bytes.len() / 3]).unwrap();
    install_plugin(&trunc, &rill.plugins_dir(), "libflvtcp.so");
    let s = wait_for(Duration::from_secs(3), || {
        plugin_state(&rill, "flvtcp").filter(|s| !s["last_error"].is_null())
    })
    .unwrap_or_else(|| panic!("truncated file not reported:\n{}", rill.log()));
    assert_eq!(s["generation"], 2);
    assert_eq!(s["state"], "running");
    let err = s["last_error"].as_str().unwrap().to_string();
    assert!(err.contains("libflvtcp.so"), "{err}");

    // A library whose entry reports another ABI major.
    let bad = build_abi_major_2(&rill);
    install_plugin(&bad, &rill.plugins_dir(), "libflvtcp.so");
    let s = wait_for(Duration::from_secs(3), || {
        plugin_state(&rill, "flvtcp").filter(|s| s["last_error"].as_str().is_some_and(|e| e != err))
    })
    .unwrap_or_else(|| panic!("ABI 2 plugin not refused:\n{}", rill.log()));
    assert!(
        s["last_error"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("abi"),
        "{s}"
    );
    assert_eq!(s["generation"], 2);
    let n = new_player.video_count();
    std::thread::sleep(Duration::from_secs(1));
    assert!(new_player.video_count() > n, "generation 2 stopped serving");
    let _ = ffmpeg.kill();
    let _ = ffmpeg.wait();
}

/// A minimal library named like the template whose entry claims ABI 2.
fn build_abi_major_2(rill: &Rill) -> std::path::PathBuf {
    let dir = rill.dir.path();
    let c = dir.join("abi2.c");
    std::fs::write(
        &c,
        r#"#include "rill.h"
static int32_t create(const RillHostApi *a, RillHost *h, void **i) { (void)a; (void)h; *i = 0; return RILL_OK; }
static void destroy(void *i) { (void)i; }
static RillPluginDescriptor d;
const RillPluginDescriptor *rill_plugin_entry_v1(uint32_t M, uint32_t m) {
  (void)M; (void)m;
  d.magic = RILL_PLUGIN_MAGIC; d.struct_size = sizeof d; d.abi_major = 2; d.abi_minor = 0;
  d.name.ptr = "flvtcp"; d.name.len = 6; d.version.ptr = "9"; d.version.len = 1;
  d.create = create; d.destroy = destroy;
  return &d;
}
"#,
    )
    .unwrap();
    let out = dir.join("abi2.so");
    let st = Command::new("cc")
        .args(["-std=c11", "-shared", "-fPIC", "-I"])
        .arg(workspace_dir().join("include"))
        .arg("-o")
        .arg(&out)
        .arg(&c)
        .status()
        .unwrap();
    assert!(st.success());
    out
}

#[test]
fn template_runs_clean_under_address_sanitizer() {
    // The sanitized plugin needs the ASan runtime loaded first.
    let lib = build_template("asan", true);
    let asan = String::from_utf8(
        Command::new("cc")
            .arg("-print-file-name=libasan.so")
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let ubsan = String::from_utf8(
        Command::new("cc")
            .arg("-print-file-name=libubsan.so")
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let p = Ports {
        ingest: free_port(),
        play: free_port(),
    };
    let preload = format!("{} {}", asan.trim(), ubsan.trim());
    let rill = Rill::start_with_env(
        &config(&p),
        &[lib],
        &[
            ("LD_PRELOAD", preload.as_str()),
            // Rust's own allocations are not what we check; leaks of the host's
            // never-unloaded libraries are by design.
            (
                "ASAN_OPTIONS",
                "detect_leaks=0:abort_on_error=1:halt_on_error=1",
            ),
            ("UBSAN_OPTIONS", "halt_on_error=1:print_stacktrace=1"),
        ],
    );
    assert!(wait_port(p.play, Duration::from_secs(15)), "{}", rill.log());
    let mut ffmpeg = publish_flvtcp(p.ingest, 8);
    std::thread::sleep(Duration::from_secs(2));
    let d = play(false, &format!("tcp://127.0.0.1:{}", p.play), 3, &[]);
    assert!(d.count(0) > 50, "{}\n{}", d.stderr, rill.log());
    // Garbage into the ingest port: the session closes, nothing else.
    {
        use std::io::Write;
        let mut s = std::net::TcpStream::connect(("127.0.0.1", p.ingest)).unwrap();
        let _ = s.write_all(
            b"FLV\x01\x05\x00\x00\x00\x09\x00\x00\x00\x00\x09\xff\xff\xffgarbage-garbage",
        );
    }
    let _ = ffmpeg.wait();
    std::thread::sleep(Duration::from_millis(500));
    let log = rill.log();
    assert!(!log.contains("ERROR: AddressSanitizer"), "{log}");
    assert!(!log.contains("runtime error:"), "{log}");
    assert!(rill.get_json("/api/v1/plugins")["plugins"][0]["state"] == "running");
}
