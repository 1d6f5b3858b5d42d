//! HLS pulls with real peers: a second Rill (RTMP in, HLS out) serves a
//! stream ffmpeg publishes; the relaying Rill pulls its playlist, LL-HLS
//! (fMP4) from the config and classic TS through the API, and ffmpeg
//! plays the copies over RTMP: every check is on what it decoded (frame
//! counts, monotonic time). Bad sources (404, garbage, a playlist that
//! never moves, one that ended, segments that are no media) end each
//! attempt with its reason and back off.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::time::Duration;

use rill_e2e::relay;
use rill_e2e::rtmp::Guard;
use rill_e2e::*;

struct Node {
    rill: Rill,
    rtmp: u16,
}

/// A Rill with RTMP and HLS (a window of 6 segments of 2 s): the source.
fn origin() -> Node {
    let rtmp = free_port();
    let yaml = format!(
        "publish:\n  reconnect_grace: 1s\nplugins:\n  rtmp:\n    listen: 127.0.0.1:{rtmp}\n  hls:\n    window: 6\n"
    );
    let rill = Rill::start(
        &yaml,
        &[rtmp::plugin(), target_dir().join("librill_plugin_hls.so")],
    );
    assert!(wait_port(rtmp, Duration::from_secs(10)), "{}", rill.log());
    Node { rill, rtmp }
}

/// A Rill with RTMP and the relay (its section `relay_yaml`).
fn relay(relay_yaml: &str) -> Node {
    let rtmp = free_port();
    let yaml = format!(
        "plugins:\n  rtmp:\n    listen: 127.0.0.1:{rtmp}\n{}publish:\n  reconnect_grace: 5s\n",
        relay::section(relay_yaml)
    );
    let rill = Rill::start(&yaml, &[rtmp::plugin(), relay::plugin("relay")]);
    assert!(wait_port(rtmp, Duration::from_secs(10)), "{}", rill.log());
    Node { rill, rtmp }
}

impl Node {
    fn rtmp_url(&self, path: &str) -> String {
        format!("rtmp://127.0.0.1:{}/{path}", self.rtmp)
    }

    fn pulls(&self) -> Vec<serde_json::Value> {
        relay::jobs(&self.rill, "pulls")
    }

    fn wait_live(&self, stream: &str) -> serde_json::Value {
        relay::wait_live(&self.rill, "pulls", 30, |j| j["stream"] == stream)
    }
}

#[test]
fn pulls_ll_hls_and_ts_from_another_rill() {
    let o = origin();
    let _enc = Guard(publish_lavfi(
        false,
        60,
        "libx264",
        "aac",
        &["-f", "flv"],
        &o.rtmp_url("live/x"),
    ));
    wait_publishing(&o.rill, "live/x");
    let hls = format!("http://127.0.0.1:{}/live/x.m3u8", o.rill.http_port);
    // The LL-HLS (fMP4) default from the config; the TS variant through
    // the API.
    let r = relay(&format!(
        "stall_timeout: 10s\npulls:\n  - url: {hls}\n    stream: copy/fmp4\n"
    ));
    let body = format!(r#"{{"url": "{hls}?format=ts", "stream": "copy/ts"}}"#);
    let (st, _, resp) = http_request_with(
        r.rill.http_port,
        "POST",
        "/api/v1/pulls",
        &[("Host", "127.0.0.1"), ("Content-Type", "application/json")],
        &body,
    );
    assert_eq!(st, 201, "{resp}");
    for stream in ["copy/fmp4", "copy/ts"] {
        let job = r.wait_live(stream);
        assert!(
            job["url"].as_str().unwrap().contains("/live/x.m3u8"),
            "{job}"
        );
        let s = r.rill.get_json(&format!("/api/v1/streams/{stream}"));
        assert!(
            s["publisher"]["source"]
                .as_str()
                .unwrap()
                .contains("x.m3u8"),
            "{s}"
        );
    }
    for (what, stream) in [("fMP4", "copy/fmp4"), ("TS", "copy/ts")] {
        let d = play(false, &r.rtmp_url(stream), 6, &[]);
        // 6 s of 25 fps video and 48 kHz AAC (1024 samples a frame).
        let (v, a) = (d.count(0), d.count(1));
        assert!(
            (130..=160).contains(&v),
            "{what}: {v} video frames: {}",
            d.stderr
        );
        assert!(
            (230..=300).contains(&a),
            "{what}: {a} audio frames: {}",
            d.stderr
        );
        assert!(
            d.monotonic(0) && d.monotonic(1),
            "{what}: time goes back: {}",
            d.stderr
        );
    }
    // Still live, every attempt the first.
    for j in r.pulls() {
        assert_eq!(j["state"], "live", "{j}");
        assert_eq!(j["attempts"], 1, "{j}");
    }
    assert!(!r.rill.log().contains("panicked"), "{}", r.rill.log());
}

/// What a bad HLS source answers for a path: status and body.
fn answer(path: &str) -> (u16, &'static [u8]) {
    match path {
        "/garbage.m3u8" => (200, b"<html><body>not a playlist</body></html>"),
        "/still.m3u8" => (200, b"#EXTM3U\n#EXT-X-TARGETDURATION:1\n"),
        "/ended.m3u8" => (200, b"#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXT-X-ENDLIST\n"),
        "/notmedia.m3u8" => (
            200,
            b"#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1,\nbad.ts\n#EXTINF:1,\nbad.ts\n",
        ),
        "/bad.ts" => (200, b"GIF89a not a transport stream at all"),
        _ => (404, b"not found"),
    }
}

/// An HTTP server on a free port answering GETs with [`answer`], one
/// connection at a time, in a thread.
fn bad_hls_server() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            let mut r = BufReader::new(s);
            let mut line = String::new();
            if r.read_line(&mut line).is_err() {
                continue;
            }
            let path = line.split_whitespace().nth(1).unwrap_or("/").to_owned();
            // The rest of the head.
            loop {
                let mut h = String::new();
                if r.read_line(&mut h).map_or(true, |n| n == 0) || h.trim().is_empty() {
                    break;
                }
            }
            let (status, body) = answer(&path);
            let mut s = r.into_inner();
            let _ = write!(
                s,
                "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = s.write_all(body);
        }
    });
    port
}

#[test]
fn bad_hls_sources_end_with_a_reason_and_back_off() {
    let port = bad_hls_server();
    let url = |p: &str| format!("http://127.0.0.1:{port}{p}");
    let r = relay(&format!(
        "stall_timeout: 2s\nretry_initial: 500ms\nretry_max: 4s\npulls:\n\
         - {{url: '{}', stream: bad/missing}}\n\
         - {{url: '{}', stream: bad/garbage}}\n\
         - {{url: '{}', stream: bad/still}}\n\
         - {{url: '{}', stream: bad/ended}}\n\
         - {{url: '{}', stream: bad/notmedia}}\n",
        url("/missing.m3u8"),
        url("/garbage.m3u8"),
        url("/still.m3u8"),
        url("/ended.m3u8"),
        url("/notmedia.m3u8"),
    ));
    let jobs = relay::wait_failing(
        &r.rill,
        30,
        &[
            ("bad/missing", &["HLS playlist: HTTP 404"]),
            ("bad/garbage", &["#EXTM3U"]),
            ("bad/still", &["listed nothing new"]),
            ("bad/ended", &["the source ended"]),
            ("bad/notmedia", &["HLS segment 0: MPEG-TS"]),
        ],
    );
    // Backing off: a few attempts in these seconds, not hundreds.
    for j in &jobs {
        assert!(j["attempts"].as_u64().unwrap() <= 8, "{j}");
    }
}
