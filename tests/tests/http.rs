//! HTTP in the host: HTTP-FLV and WebSocket-FLV through the flv plugin, the
//! management API, metrics. ffmpeg publishes through the C template plugin
//! (FLV over TCP), so these tests need no other protocol plugin.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use rill_e2e::*;

struct Server {
    rill: Rill,
    ingest: u16,
}

fn plugins() -> Vec<std::path::PathBuf> {
    vec![
        build_template("1.0.0", false),
        target_dir().join("librill_plugin_flv.so"),
    ]
}

fn start(extra: &str) -> Server {
    start_env(extra, &[])
}

fn start_env(extra: &str, env: &[(&str, &str)]) -> Server {
    let ingest = free_port();
    let play = free_port();
    let yaml = format!(
        "{extra}plugins:\n  flvtcp:\n    ingest: 127.0.0.1:{ingest}\n    play: 127.0.0.1:{play}\n    stream: live/test\n"
    );
    let rill = Rill::start_with_env(&yaml, &plugins(), env);
    assert!(wait_port(ingest, Duration::from_secs(10)), "{}", rill.log());
    Server { rill, ingest }
}

fn publish(s: &Server, secs: u32) -> std::process::Child {
    publish_flvtcp(s.ingest, secs)
}

fn wait_publishing(s: &Server) {
    rill_e2e::wait_publishing(&s.rill, "live/test");
}

#[test]
fn http_flv_plays_in_ffprobe_and_ffmpeg() {
    let s = start("");
    let mut pubr = publish(&s, 14);
    wait_publishing(&s);
    let url = format!("http://127.0.0.1:{}/live/test.flv", s.rill.http_port);
    let streams = probe(&url, &[]);
    assert!(
        streams.contains(&("video".into(), "h264".into())),
        "{streams:?}"
    );
    assert!(
        streams.contains(&("audio".into(), "aac".into())),
        "{streams:?}"
    );
    let d = play(false, &url, 6, &[]);
    let video = d.count(0);
    assert!(
        (145..=180).contains(&video),
        "decoded {video} frames in 6 s: {}",
        d.stderr
    );
    assert!(d.monotonic(0) && d.monotonic(1), "non-monotonic timestamps");
    let _ = pubr.kill();
    let _ = pubr.wait();
}

/// Reads WS-FLV with a WebSocket client and checks the bytes are FLV: a
/// header message, then tags whose sizes add up.
/// HTTP-FLV is a streaming route: the host serves it on a connection of its
/// own (no keep-alive), with the plugin's chunked body framed by the host.
#[test]
fn http_flv_is_served_on_an_owned_connection() {
    let s = start("");
    let mut pubr = publish(&s, 8);
    wait_publishing(&s);
    let mut c = TcpStream::connect(("127.0.0.1", s.rill.http_port)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    c.write_all(b"GET /live/test.flv HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 65536];
    while got.len() < 200_000 {
        match c.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    let text = String::from_utf8_lossy(&got);
    let (head, body) = text.split_once("\r\n\r\n").expect("a response head");
    let head = head.to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 200 ok"), "{head}");
    assert!(head.contains("transfer-encoding: chunked"), "{head}");
    assert!(head.contains("connection: close"), "{head}");
    assert!(head.contains("content-type: video/x-flv"), "{head}");
    // The first chunk is the FLV header.
    let (size, rest) = body.split_once("\r\n").unwrap();
    assert_eq!(usize::from_str_radix(size, 16).unwrap(), 13, "{size}");
    assert!(rest.starts_with("FLV"));
    let _ = pubr.kill();
    let _ = pubr.wait();
}

#[test]
fn ws_flv_messages_parse_as_flv_tags() {
    let s = start("");
    let mut pubr = publish(&s, 10);
    wait_publishing(&s);
    let url = format!("ws://127.0.0.1:{}/live/test.flv", s.rill.http_port);
    let (mut ws, resp) = tungstenite::connect(url.as_str()).expect("ws connect");
    assert_eq!(resp.status().as_u16(), 101);
    let mut stream = Vec::new();
    let mut messages = 0;
    let deadline = Instant::now() + Duration::from_secs(4);
    while Instant::now() < deadline {
        match ws.read() {
            Ok(tungstenite::Message::Binary(b)) => {
                stream.extend_from_slice(&b);
                messages += 1;
            }
            Ok(_) => {}
            Err(e) => panic!("ws read: {e}"),
        }
    }
    assert_eq!(&stream[..3], b"FLV");
    let mut pos = 13;
    let (mut video, mut audio, mut script) = (0, 0, 0);
    let mut last_video_ts = None;
    while pos + 11 <= stream.len() {
        let t = stream[pos];
        let size =
            u32::from_be_bytes([0, stream[pos + 1], stream[pos + 2], stream[pos + 3]]) as usize;
        let ts = u32::from_be_bytes([
            stream[pos + 7],
            stream[pos + 4],
            stream[pos + 5],
            stream[pos + 6],
        ]);
        if pos + 11 + size + 4 > stream.len() {
            break;
        }
        let prev = u32::from_be_bytes(stream[pos + 11 + size..pos + 15 + size].try_into().unwrap())
            as usize;
        assert_eq!(prev, 11 + size, "PreviousTagSize at {pos}");
        match t {
            9 => {
                video += 1;
                if let Some(l) = last_video_ts {
                    assert!(ts >= l, "video timestamps go back: {l} -> {ts}");
                }
                last_video_ts = Some(ts);
            }
            8 => audio += 1,
            18 => script += 1,
            other => panic!("tag type {other} at {pos}"),
        }
        pos += 11 + size + 4;
    }
    assert!(
        video > 60 && audio > 100,
        "video {video} audio {audio} in {messages} messages"
    );
    assert_eq!(script, 1, "onMetaData once, first");
    let _ = pubr.kill();
    let _ = pubr.wait();
}

#[test]
fn missing_stream_waits_then_404s_and_disconnect_ends_subscription() {
    let s = start("subscribe:\n  wait_timeout: 1s\n");
    let t = Instant::now();
    let (status, body) = s.rill.get("/live/nobody.flv");
    assert_eq!(status, 404, "{body}");
    assert!(
        t.elapsed() >= Duration::from_millis(900),
        "answered before the wait timeout"
    );
    assert!(body.contains("live/nobody"), "{body}");

    // A client that goes away ends its subscription at once.
    let mut pubr = publish(&s, 10);
    wait_publishing(&s);
    let mut c = TcpStream::connect(("127.0.0.1", s.rill.http_port)).unwrap();
    write!(c, "GET /live/test.flv HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut buf = [0u8; 4096];
    c.read_exact(&mut buf).unwrap();
    let subs = |s: &Server| {
        s.rill.get_json("/api/v1/streams/live/test/subscribers")["subscribers"]
            .as_array()
            .unwrap()
            .len()
    };
    assert_eq!(subs(&s), 1);
    drop(c);
    wait_for(Duration::from_secs(1), || (subs(&s) == 0).then_some(()))
        .unwrap_or_else(|| panic!("subscription outlived its client by 1 s"));
    let _ = pubr.kill();
    let _ = pubr.wait();
}

fn is_problem(head: &str, body: &str, status: u16) -> bool {
    let v: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
    head.contains("content-type: application/problem+json")
        && v["status"] == status
        && v["title"].is_string()
}

#[test]
fn api_routes_errors_and_token() {
    let s = start_env(
        "publish:\n  reconnect_grace: 0s\n",
        &[("RILL_HTTP_API_TOKEN", "s3cret")],
    );
    let port = s.rill.http_port;
    let tok = Some("s3cret");
    // 401 without the token, on every route; metrics stay open.
    for (m, p) in [
        ("GET", "/api/v1/server"),
        ("GET", "/api/v1/streams"),
        ("DELETE", "/api/v1/subscribers/1"),
        ("PUT", "/api/v1/config"),
    ] {
        let (st, head, body) = http_request(port, m, p, None, "");
        assert_eq!(st, 401, "{m} {p}");
        assert!(is_problem(&head, &body, 401), "{body}");
        assert_eq!(http_request(port, m, p, Some("wrong"), "").0, 401);
    }
    assert_eq!(http_request(port, "GET", "/metrics", None, "").0, 200);

    let (st, _, body) = http_request(port, "GET", "/api/v1/server", tok, "");
    assert_eq!(st, 200);
    assert!(body.contains("\"version\""));
    let (st, _, body) = http_request(port, "GET", "/api/v1/plugins", tok, "");
    assert_eq!(st, 200);
    assert!(
        body.contains("\"flvtcp\"") && body.contains("\"flv\""),
        "{body}"
    );

    // The stream list follows a publish and an unpublish within 1 s.
    let mut pubr = publish(&s, 30);
    let listed = |want: bool| {
        wait_for(Duration::from_secs(10), || {
            let (_, _, b) = http_request(port, "GET", "/api/v1/streams", tok, "");
            (b.contains("live/test") == want).then_some(())
        })
    };
    listed(true).expect("publish not listed");
    // The stream is listed as soon as the publisher is in; its tracks come
    // with its first frames.
    let (body, v) = wait_for(Duration::from_secs(10), || {
        let (st, _, body) = http_request(port, "GET", "/api/v1/streams/live/test", tok, "");
        assert_eq!(st, 200);
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        (v["tracks"].as_array().map_or(0, |t| t.len()) >= 2).then_some((body, v))
    })
    .expect("tracks not declared");
    assert_eq!(v["state"], "publishing");
    assert_eq!(v["publisher"]["protocol"], "flvtcp");
    let tracks = v["tracks"].as_array().unwrap();
    assert!(tracks.iter().any(|t| t["codec"] == "avc1"), "{body}");
    assert!(tracks.iter().any(|t| t["codec"] == "mp4a"), "{body}");

    // A subscriber, listed and kicked.
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(c, "GET /live/test.flv HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut buf = [0u8; 1024];
    c.read_exact(&mut buf).unwrap();
    let (st, _, body) = http_request(
        port,
        "GET",
        "/api/v1/streams/live/test/subscribers",
        tok,
        "",
    );
    assert_eq!(st, 200);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let id = v["subscribers"][0]["id"].as_u64().expect("one subscriber");
    assert_eq!(v["subscribers"][0]["protocol"], "flv");
    assert_eq!(
        http_request(
            port,
            "DELETE",
            &format!("/api/v1/subscribers/{id}"),
            tok,
            ""
        )
        .0,
        204
    );
    let (st, head, body) = http_request(
        port,
        "DELETE",
        &format!("/api/v1/subscribers/{id}"),
        tok,
        "",
    );
    assert!(st == 404 && is_problem(&head, &body, 404), "{st} {body}");
    let (st, head, body) = http_request(port, "DELETE", "/api/v1/subscribers/x", tok, "");
    assert!(st == 400 && is_problem(&head, &body, 400));

    // Problems for unknown things.
    for p in [
        "/api/v1/streams/live/none",
        "/api/v1/streams/live/none/subscribers",
        "/api/v1/nothing",
    ] {
        let (st, head, body) = http_request(port, "GET", p, tok, "");
        assert!(
            st == 404 && is_problem(&head, &body, 404),
            "{p}: {st} {body}"
        );
    }
    let (st, head, body) = http_request(port, "POST", "/api/v1/plugins/nope/reload", tok, "");
    assert!(st == 404 && is_problem(&head, &body, 404));
    // The file holds the bytes already running: nothing to reload.
    let (st, _, body) = http_request(port, "POST", "/api/v1/plugins/flv/reload", tok, "");
    assert_eq!(st, 200, "{body}");
    assert!(
        body.contains("\"generation\":1") && body.contains("\"reloaded\":false"),
        "{body}"
    );

    // Config: read (token redacted), validate, update.
    let (st, _, body) = http_request(port, "GET", "/api/v1/config", tok, "");
    assert_eq!(st, 200);
    assert!(
        body.contains("<redacted>") && !body.contains("s3cret"),
        "{body}"
    );
    let (st, head, body) = http_request(
        port,
        "POST",
        "/api/v1/config/validate",
        tok,
        "publish:\n  idel_timeout: 1s\n",
    );
    assert!(st == 422 && is_problem(&head, &body, 422), "{body}");
    assert!(body.contains("publish.idel_timeout"), "{body}");
    assert_eq!(
        http_request(
            port,
            "POST",
            "/api/v1/config/validate",
            tok,
            "publish:\n  idle_timeout: 1s\n"
        )
        .0,
        200
    );
    let new = format!(
        "plugins_dir: {}\nstate_dir: {}\nhttp:\n  listen: 127.0.0.1:1\n  api_token: s3cret\npublish:\n  reconnect_grace: 0s\nplugins:\n  flvtcp:\n    ingest: 127.0.0.1:{}\n    play: 127.0.0.1:{}\n    stream: live/test\n",
        s.rill.plugins_dir().display(),
        s.rill.dir.path().join("state").display(),
        s.ingest,
        free_port()
    );
    let (st, _, body) = http_request(port, "PUT", "/api/v1/config", tok, &new);
    assert_eq!(st, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["restart_required"], serde_json::json!(["http.listen"]));
    assert_eq!(v["plugins_reloaded"], serde_json::json!(["flvtcp"]));

    // Kick the publisher; with no grace the stream leaves the list within 1 s.
    let (st, _, _) = http_request(port, "DELETE", "/api/v1/streams/live/test", tok, "");
    assert_eq!(st, 204);
    let gone = Instant::now();
    listed(false).expect("unpublish not reflected");
    assert!(
        gone.elapsed() < Duration::from_secs(1),
        "took {:?}",
        gone.elapsed()
    );
    let (st, head, body) = http_request(port, "DELETE", "/api/v1/streams/live/test", tok, "");
    assert!(st == 404 && is_problem(&head, &body, 404));

    let (_, _, metrics) = http_request(port, "GET", "/metrics", None, "");
    for name in [
        "rill_streams",
        "rill_frames_in_total",
        "rill_bytes_out_total",
        "rill_frames_dropped_total",
        "rill_plugin_generation{plugin=\"flv\"} 1",
        "rill_plugin_reload_failures_total",
    ] {
        assert!(metrics.contains(name), "{name} missing:\n{metrics}");
    }
    let _ = pubr.kill();
    let _ = pubr.wait();
}
