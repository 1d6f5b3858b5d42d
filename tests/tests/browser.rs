//! A real browser plays HTTP-FLV: headless Chromium (Debian's `chromium`)
//! through mpegts.js on a small test page (tests/browser/), driven by
//! playwright-core from `node tests/browser/play.mjs`. ffmpeg publishes
//! H.264 baseline + AAC through the C template plugin (FLV over TCP); the
//! browser fetches `http://127.0.0.1:PORT/live/test.flv` from the flv plugin
//! across origins (the page is served by the driver on another port).
//!
//! Skipped (with a SKIPPED line) only when chromium, node or the npm
//! dependencies are not installed: scripts/install-deps installs them.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rill_e2e::*;

#[test]
fn http_flv_plays_in_headless_chromium_with_mpegts_js() {
    let browser_dir = browser::dir();
    if !rill_testsupport::require_tool(
        "http_flv_plays_in_headless_chromium_with_mpegts_js",
        "the browser stack",
        browser::missing(&["playwright-core", "mpegts.js/dist/mpegts.js"]),
    ) {
        return;
    }
    let started = Instant::now();
    let ingest = free_port();
    let play = free_port();
    let yaml = format!(
        "plugins:\n  flvtcp:\n    ingest: 127.0.0.1:{ingest}\n    play: 127.0.0.1:{play}\n    stream: live/test\n"
    );
    let plugins = [
        build_template("1.0.0", false),
        target_dir().join("librill_plugin_flv.so"),
    ];
    let rill = Rill::start(&yaml, &plugins);
    assert!(wait_port(ingest, Duration::from_secs(10)), "{}", rill.log());
    // H.264 baseline (x264's ultrafast/zerolatency, 1 s GOP) + AAC, paced.
    let mut pubr = publish_lavfi(
        false,
        25,
        "libx264",
        "aac",
        &["-profile:v", "baseline", "-f", "flv"],
        &format!("tcp://127.0.0.1:{ingest}"),
    );
    wait_for(Duration::from_secs(10), || {
        let (st, body) = rill.get("/api/v1/streams/live/test");
        (st == 200 && body.contains("\"publishing\"")).then_some(())
    })
    .unwrap_or_else(|| panic!("stream never published:\n{}", rill.log()));

    let url = format!("http://127.0.0.1:{}/live/test.flv", rill.http_port);
    let out = Command::new("node")
        .arg(browser_dir.join("play.mjs"))
        .arg(&url)
        .args(["--until", "4", "--timeout", "15"])
        .env("CHROMIUM", browser::chromium())
        .stdin(Stdio::null())
        .output()
        .expect("run node play.mjs");
    let _ = pubr.kill();
    let _ = pubr.wait();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = stdout.lines().rev().find(|l| l.starts_with('{'));
    let r: serde_json::Value = line
        .and_then(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| panic!("play.mjs printed no JSON:\n{stdout}\n{stderr}"));
    eprintln!("browser result: {r}");
    assert!(
        out.status.success() && r["fatal"].is_null(),
        "driver failed: {}\n{stderr}",
        r["fatal"]
    );

    let f = |v: &serde_json::Value, k: &str| v[k].as_f64().unwrap_or(0.0);
    let samples = r["samples"].as_array().expect("samples");
    let current = f(&r, "currentTime");
    let frames = f(&r, "totalVideoFrames");
    assert!(
        current >= 3.0,
        "currentTime {current} < 3 s; errors {} events {} mse {} console {}",
        r["errors"],
        r["events"],
        r["mse"],
        r["console"]
    );
    assert!(frames > 0.0, "no video frames decoded: {r}");
    // Decoding goes on: frames grew between a sample at least 1 s of playback
    // before the last one and the last.
    let earlier = samples
        .iter()
        .rev()
        .find(|s| f(s, "currentTime") > 0.0 && f(s, "currentTime") <= current - 1.0)
        .unwrap_or_else(|| panic!("no earlier sample while playing: {r}"));
    assert!(
        f(earlier, "totalVideoFrames") < frames,
        "frames did not grow from {earlier} to {frames}"
    );
    // 25 fps for ≥ 3 s of media: most frames decoded, few dropped.
    assert!(frames >= 50.0, "only {frames} frames for {current} s");
    assert!(
        f(&r, "droppedVideoFrames") <= frames / 4.0,
        "dropped {} of {frames}",
        r["droppedVideoFrames"]
    );
    // The AAC track was decoded too (Chromium's byte counter).
    assert!(f(&r, "audioDecodedBytes") > 0.0, "no audio decoded: {r}");
    assert!(
        r["errors"].as_array().is_some_and(|e| e.is_empty()),
        "player errors: {}",
        r["errors"]
    );
    println!(
        "chromium played {current:.2} s, {frames} frames decoded, {} dropped, test took {:.1} s",
        r["droppedVideoFrames"],
        started.elapsed().as_secs_f64()
    );
}
