//! A real browser plays the HLS plugin's output: headless Chromium (Debian's
//! `chromium`) driven by playwright-core from `node tests/browser/drive.mjs`,
//! on test pages served from another origin than Rill's:
//!
//! - tests/browser/hls.html: hls.js in low-latency mode plays the LL-HLS
//!   variant (`/live/x.m3u8` → `x/llhls.m3u8`, fMP4 parts, blocking
//!   reloads), and goes on across a publisher that drops and comes back
//!   (EXT-X-DISCONTINUITY);
//! - tests/browser/mse.html: plain Media Source Extensions, no player
//!   library, append the live fragmented MP4 (`/live/x.mp4`) as it arrives
//!   over fetch() streaming and over a WebSocket, with the MIME codecs read
//!   from the multivariant playlist's CODECS.
//!
//! ffmpeg publishes H.264 baseline + AAC (25 fps, 1 s GOP) over RTMP.
//! Skipped (with a SKIPPED line) only when chromium, node or the npm
//! dependencies are not installed (scripts/install-deps installs them);
//! failing instead under RILL_REQUIRE_TOOLS=1.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rill_e2e::rtmp::{self, Guard};
use rill_e2e::*;
use serde_json::Value;

fn runnable(test: &str) -> bool {
    let deps = ["playwright-core", "hls.js/dist/hls.min.js"];
    rill_testsupport::require_tool(test, "the browser stack", browser::missing(&deps))
}

/// Rill with the RTMP and HLS plugins; a publisher that goes is given 1 s
/// to come back.
struct Server {
    rill: Rill,
    rtmp: u16,
}

impl Server {
    fn start() -> Server {
        let port = free_port();
        let yaml = format!(
            "publish:\n  reconnect_grace: 1s\nplugins:\n  rtmp:\n    listen: 127.0.0.1:{port}\n  hls:\n    window: 6\n"
        );
        let rill = Rill::start(
            &yaml,
            &[rtmp::plugin(), target_dir().join("librill_plugin_hls.so")],
        );
        assert!(wait_port(port, Duration::from_secs(10)), "{}", rill.log());
        Server { rill, rtmp: port }
    }

    /// ffmpeg publishing H.264 baseline (x264 ultrafast/zerolatency, 25 fps,
    /// 1 s GOP) + AAC to `live/{name}` for `secs` seconds, paced; returns
    /// once the stream is publishing.
    fn publish(&self, name: &str, secs: u32) -> Guard {
        let g = Guard(publish_lavfi(
            false,
            secs,
            "libx264",
            "aac",
            &["-profile:v", "baseline", "-f", "flv"],
            &format!("rtmp://127.0.0.1:{}/live/{name}", self.rtmp),
        ));
        wait_publishing(&self.rill, &format!("live/{name}"));
        g
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}/{path}", self.rill.http_port)
    }
}

/// `node drive.mjs` running one page: its `sample {json}` lines as they
/// come, its `result {json}` at the end.
struct Driver {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<(bool, Value)>,
    stderr: Arc<Mutex<String>>,
    samples: Vec<Value>,
    result: Option<Value>,
}

impl Driver {
    /// Opens `page` (hls.html, mse.html) with `query`; the page plays until
    /// `until` seconds have played or `timeout` seconds have passed (or
    /// [`Driver::stop`]).
    fn spawn(page: &str, query: &str, until: f64, timeout: f64) -> Driver {
        let mut child = Command::new("node")
            .arg(browser::dir().join("drive.mjs"))
            .arg(page)
            .args(["--query", query])
            .args(["--until", &until.to_string()])
            .args(["--timeout", &timeout.to_string()])
            .env("CHROMIUM", browser::chromium())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run node drive.mjs");
        let (tx, lines) = mpsc::channel();
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines().map_while(Result::ok) {
                let parsed = if let Some(j) = l.strip_prefix("sample ") {
                    serde_json::from_str(j).ok().map(|v| (false, v))
                } else if let Some(j) = l.strip_prefix("result ") {
                    serde_json::from_str(j).ok().map(|v| (true, v))
                } else {
                    None
                };
                if let Some(p) = parsed {
                    if tx.send(p).is_err() {
                        break;
                    }
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut err = child.stderr.take().unwrap();
        let e2 = stderr.clone();
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = err.read_to_string(&mut s);
            e2.lock().unwrap().push_str(&s);
        });
        let stdin = child.stdin.take();
        Driver {
            child,
            stdin,
            lines,
            stderr,
            samples: Vec::new(),
            result: None,
        }
    }

    /// The next line within `timeout`: false when there is none (or the
    /// result came).
    fn next(&mut self, timeout: Duration) -> bool {
        if self.result.is_some() {
            return false;
        }
        match self.lines.recv_timeout(timeout) {
            Ok((false, s)) => {
                self.samples.push(s);
                true
            }
            Ok((true, r)) => {
                self.result = Some(r);
                false
            }
            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => false,
        }
    }

    /// Waits (up to `timeout`) for a sample that satisfies `pred`.
    fn wait_sample(&mut self, timeout: Duration, pred: impl Fn(&Value) -> bool) -> Option<Value> {
        let end = Instant::now() + timeout;
        loop {
            if let Some(s) = self.samples.last() {
                if pred(s) {
                    return Some(s.clone());
                }
            }
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() || !self.next(left) {
                return None;
            }
        }
    }

    fn last(&self) -> Value {
        self.samples.last().cloned().unwrap_or(Value::Null)
    }

    /// Asks the page to stop now; returns the result.
    fn stop(mut self) -> Value {
        if let Some(mut i) = self.stdin.take() {
            let _ = i.write_all(b"stop\n");
        }
        self.finish()
    }

    /// Waits for the result (the page stops by itself).
    fn finish(mut self) -> Value {
        while self.next(Duration::from_secs(60)) {}
        let _ = self.child.wait();
        let stderr = self.stderr.lock().unwrap().clone();
        let r = self
            .result
            .take()
            .unwrap_or_else(|| panic!("drive.mjs printed no result:\n{stderr}"));
        assert!(
            r["driverError"].is_null(),
            "the browser could not be driven: {}\n{stderr}",
            r["driverError"]
        );
        r
    }
}

fn f(v: &Value, k: &str) -> f64 {
    v[k].as_f64().unwrap_or(0.0)
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// What a failing assertion shows of the page.
fn page_report(r: &Value) -> String {
    format!(
        "fatal {} errors {} events {} console {} last {}",
        r["fatal"], r["errors"], r["events"], r["console"], r["last"]
    )
}

/// The video decoded and played smoothly: `played` seconds at least, the
/// frame count grew over the last second of playback, few frames dropped,
/// audio decoded.
fn assert_played(r: &Value, played: f64) {
    let last = &r["last"];
    let (now, frames) = (f(last, "played"), f(last, "totalVideoFrames"));
    assert!(
        now >= played,
        "played {now:.2} s < {played} s: {}",
        page_report(r)
    );
    let earlier = r["samples"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .find(|s| f(s, "played") > 0.0 && f(s, "played") <= now - 1.0)
        .unwrap_or_else(|| panic!("no sample a second before the last: {}", page_report(r)));
    // 25 fps: at least half the frames of the last second were decoded.
    assert!(
        f(earlier, "totalVideoFrames") + 12.0 <= frames,
        "frames did not grow from {earlier} to {frames}"
    );
    assert!(
        frames >= 20.0 * played,
        "only {frames} frames for {now:.2} s"
    );
    assert!(
        f(last, "droppedVideoFrames") <= frames / 4.0,
        "dropped {} of {frames}",
        last["droppedVideoFrames"]
    );
    assert!(
        f(last, "audioDecodedBytes") > 0.0,
        "no audio decoded: {}",
        page_report(r)
    );
}

/// The latency figures of the samples from the first second of playback
/// on: (first, last, min, max) of `key`.
fn figures(r: &Value, key: &str) -> (f64, f64, f64, f64) {
    let v: Vec<f64> = r["samples"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| f(s, "played") >= 1.0)
        .filter_map(|s| s[key].as_f64())
        .collect();
    if v.is_empty() {
        return (0.0, 0.0, 0.0, 0.0);
    }
    let min = v.iter().cloned().fold(f64::INFINITY, f64::min);
    let max = v.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    (v[0], v[v.len() - 1], min, max)
}

#[test]
fn hls_js_plays_ll_hls_in_low_latency_mode_in_headless_chromium() {
    if !runnable("hls_js_plays_ll_hls_in_low_latency_mode_in_headless_chromium") {
        return;
    }
    let started = Instant::now();
    let s = Server::start();
    let _p = s.publish("x", 40);
    let src = s.url("live/x.m3u8");
    let d = Driver::spawn("hls.html", &format!("src={}", urlencode(&src)), 6.0, 25.0);
    let r = d.finish();
    let last = &r["last"];
    eprintln!(
        "hls.js {} in {}: played {:.2} s in {:.2} s of wall time; {} parts and {} segments \
         loaded, {} requests of which {} blocking reloads; level {}; errors {} events {}",
        r["version"],
        r["browser"],
        f(last, "played"),
        f(last, "wall"),
        last["parts"],
        last["segments"],
        last["requests"],
        last["blockingReloads"],
        last["level"],
        r["errors"],
        r["events"]
    );
    assert!(
        r["fatal"].as_array().is_some_and(|e| e.is_empty()),
        "fatal hls.js errors: {}",
        page_report(&r)
    );
    assert_played(&r, 5.0);

    // hls.js read the playlist as LL-HLS and played it part by part.
    let level = &last["level"];
    assert_eq!(level["live"], true, "{level}");
    assert_eq!(level["canBlockReload"], true, "{level}");
    assert!(f(level, "partList") > 0.0, "no parts listed: {level}");
    assert!(
        (f(level, "partTarget") - 0.2).abs() < 1e-6,
        "PART-TARGET {level}"
    );
    assert_eq!(level["preloadHint"], true, "{level}");
    assert!(
        f(last, "parts") >= 10.0 && f(last, "parts") > f(last, "segments"),
        "hls.js loaded {} parts and {} whole segments",
        last["parts"],
        last["segments"]
    );
    assert!(
        f(last, "partRequests") >= 10.0 && f(last, "blockingReloads") >= 5.0,
        "{} part requests, {} blocking playlist reloads",
        last["partRequests"],
        last["blockingReloads"]
    );

    // The latency hls.js measures (live edge − playhead), its target
    // (PART-HOLD-BACK in low-latency mode), and the wall clock behind the
    // program date time being shown.
    let (l0, l1, lmin, lmax) = figures(&r, "latency");
    let (_, p1, _, _) = figures(&r, "pdtLatency");
    let target = f(last, "targetLatency");
    eprintln!(
        "LL-HLS latency (hls.latency): first {l0:.3} s, last {l1:.3} s, min {lmin:.3}, max \
         {lmax:.3}; hls.targetLatency {target:.3} s; wall clock − EXT-X-PROGRAM-DATE-TIME of \
         the playhead {p1:.3} s; buffered ahead {:.3} s; test took {:.1} s",
        f(last, "bufferAhead"),
        started.elapsed().as_secs_f64()
    );
    assert!(
        (f(level, "partHoldBack") - target).abs() < 1e-6,
        "targetLatency {target} is not PART-HOLD-BACK: {level}"
    );
    assert!(
        l1 > 0.0 && l1 < 3.0 && lmax < 3.0,
        "LL-HLS latency {l1:.3} s (max {lmax:.3}) not below 3 s"
    );
}

#[test]
fn live_fmp4_plays_with_plain_mse_over_fetch_and_websocket() {
    if !runnable("live_fmp4_plays_with_plain_mse_over_fetch_and_websocket") {
        return;
    }
    let started = Instant::now();
    let s = Server::start();
    let _p = s.publish("x", 40);
    for via in ["fetch", "ws"] {
        let query = format!(
            "via={via}&m3u8={}&src={}",
            urlencode(&s.url("live/x.m3u8")),
            urlencode(&s.url("live/x.mp4"))
        );
        let r = Driver::spawn("mse.html", &query, 4.0, 15.0).finish();
        let last = &r["last"];
        eprintln!(
            "MSE over {via}: {} ({}), played {:.2} s, {} frames ({} dropped), {} chunks of \
             {} bytes, buffered ahead {:.3} s; errors {} events {}",
            r["mime"],
            if r["supported"] == true {
                "supported"
            } else {
                "unsupported"
            },
            f(last, "played"),
            last["totalVideoFrames"],
            last["droppedVideoFrames"],
            last["chunks"],
            last["bytes"],
            f(last, "bufferAhead"),
            r["errors"],
            r["events"]
        );
        assert!(
            r["fatal"].as_array().is_some_and(|e| e.is_empty())
                && r["errors"].as_array().is_some_and(|e| e.is_empty()),
            "{via}: {}",
            page_report(&r)
        );
        let mime = r["mime"].as_str().unwrap_or("");
        assert!(
            mime.starts_with("video/mp4; codecs=\"avc1.42") && mime.ends_with(",mp4a.40.2\""),
            "{mime}"
        );
        assert_eq!(r["supported"], true);
        if via == "fetch" {
            assert_eq!(r["status"], 200);
            assert_eq!(r["contentType"], "video/mp4");
        }
        // Streamed as it is muxed, not one body; one buffered range, no gaps.
        assert!(f(last, "chunks") >= 5.0, "{via}: {last}");
        assert_eq!(f(last, "ranges"), 1.0, "{via}: {last}");
        assert_played(&r, 3.0);
        assert!(
            f(last, "bufferAhead") < 3.0,
            "{via}: {} s buffered ahead",
            last["bufferAhead"]
        );
    }
    eprintln!("test took {:.1} s", started.elapsed().as_secs_f64());
}

#[test]
fn hls_js_plays_on_across_a_publisher_that_drops_and_comes_back() {
    if !runnable("hls_js_plays_on_across_a_publisher_that_drops_and_comes_back") {
        return;
    }
    let started = Instant::now();
    let s = Server::start();
    let mut first = s.publish("d", 40);
    let src = s.url("live/d.m3u8");
    let mut d = Driver::spawn("hls.html", &format!("src={}", urlencode(&src)), 1e6, 32.0);
    d.wait_sample(Duration::from_secs(15), |x| f(x, "played") >= 3.0)
        .unwrap_or_else(|| panic!("hls.js never played 3 s: {}\n{}", d.last(), s.rill.log()));
    // The publisher drops (killed: its TCP connection just closes); 2 s
    // later, past the 1 s grace, another comes.
    let _ = first.0.kill();
    let _ = first.0.wait();
    let dropped = Instant::now();
    let before = d.last();
    std::thread::sleep(Duration::from_secs(2));
    let _second = s.publish("d", 40);
    let back = Instant::now();
    // Drain the samples of the gap, then note where the playhead stood.
    while d.next(Duration::ZERO) {}
    let at_back = d.last();
    // hls.js plays what came after the discontinuity, 4 s of it.
    let resumed = d.wait_sample(Duration::from_secs(20), |x| {
        f(x, "playingCc") >= 1.0 && f(x, "currentTime") >= f(&at_back, "currentTime") + 4.0
    });
    let (st, text) = http_get(s.rill.http_port, "/live/d/llhls.m3u8");
    let r = d.stop();
    let last = &r["last"];
    eprintln!(
        "drop at currentTime {:.2} (frames {}), publisher back {:.1} s later at currentTime \
         {:.2}; at the end currentTime {:.2}, frames {} ({} dropped), discontinuity counters \
         loaded {} playing {}; errors {} events {}; test took {:.1} s",
        f(&before, "currentTime"),
        before["totalVideoFrames"],
        back.duration_since(dropped).as_secs_f64(),
        f(&at_back, "currentTime"),
        f(last, "currentTime"),
        last["totalVideoFrames"],
        last["droppedVideoFrames"],
        last["ccs"],
        last["playingCc"],
        r["errors"],
        r["events"],
        started.elapsed().as_secs_f64()
    );
    let (_, l1, _, lmax) = figures(&r, "latency");
    eprintln!("latency after the gap: last {l1:.3} s (max {lmax:.3})");
    assert_eq!(st, 200);
    assert!(
        text.contains("#EXT-X-DISCONTINUITY\n"),
        "no discontinuity in the playlist:\n{text}"
    );
    assert!(
        r["fatal"].as_array().is_some_and(|e| e.is_empty()),
        "fatal hls.js errors: {}\nplaylist at the end:\n{text}",
        page_report(&r)
    );
    assert!(
        resumed.is_some(),
        "hls.js did not play 4 s past the discontinuity: {}\nplaylist at the end:\n{text}\n{}",
        page_report(&r),
        s.rill.log()
    );
    // Frames went on decoding after the gap, and few were dropped.
    let frames = f(last, "totalVideoFrames");
    assert!(
        frames >= f(&at_back, "totalVideoFrames") + 80.0,
        "frames {} at the comeback, {frames} at the end",
        at_back["totalVideoFrames"]
    );
    assert!(
        f(last, "droppedVideoFrames") <= frames / 4.0,
        "dropped {} of {frames}",
        last["droppedVideoFrames"]
    );
}
