//! Who may publish and who may play: signed URLs, stream keys, users,
//! webhooks, IP rules and limits, through RTMP (ffmpeg, and rill-rtmp's
//! client where the exact refusal matters) and HTTP-FLV / WS-FLV.

use std::time::{Duration, Instant};

use rill_e2e::hooks::HookServer;
use rill_e2e::rtmp::{self, ask, ask_keep, connect_from, Answer, Guard};
use rill_e2e::*;

const SECRET: &str = "0123456789abcdef-test-secret";

struct Server {
    rill: Rill,
    rtmp: u16,
}

impl Server {
    fn start(global: &str) -> Server {
        let port = free_port();
        let yaml = format!("{global}\nplugins:\n  rtmp:\n    listen: 127.0.0.1:{port}\n");
        let rill = Rill::start(
            &yaml,
            &[rtmp::plugin(), target_dir().join("librill_plugin_flv.so")],
        );
        assert!(wait_port(port, Duration::from_secs(10)), "{}", rill.log());
        Server { rill, rtmp: port }
    }

    fn url(&self, path: &str) -> String {
        format!("rtmp://127.0.0.1:{}/{path}", self.rtmp)
    }

    fn http(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}/{path}", self.rill.http_port)
    }

    /// ffmpeg publishing H.264 + AAC to `path` (with its query) for `secs`.
    fn publish(&self, path: &str, secs: u32) -> Guard {
        Guard(publish_lavfi(
            false,
            secs,
            "libx264",
            "aac",
            &["-f", "flv"],
            &self.url(path),
        ))
    }

    /// Whether a line of `/metrics` (public by default) contains `needle`.
    fn metric(&self, needle: &str) -> bool {
        self.rill
            .get("/metrics")
            .1
            .lines()
            .any(|l| l.contains(needle))
    }
}

fn refused(a: &Answer, code: &str) -> bool {
    matches!(a, Answer::Refused(c, _) if c == code)
}

#[test]
fn signed_urls_for_rtmp_and_http_flv() {
    let s = Server::start(&format!(
        "auth:\n  publish: token\n  play: token\n  secret: {SECRET}\n"
    ));
    let publish_q = signed_query(SECRET, "publish", "live/x", unix_in(600));
    let play_q = signed_query(SECRET, "play", "live/x", unix_in(600));

    // Refusals, each with RTMP's answer and the end of the connection.
    for (what, name) in [
        ("no credentials", "x".to_owned()),
        ("a play token", format!("x?{play_q}")),
        (
            "an expired token",
            format!(
                "x?{}",
                signed_query(SECRET, "publish", "live/x", unix_in(-5))
            ),
        ),
        (
            "another stream's token",
            format!(
                "x?{}",
                signed_query(SECRET, "publish", "live/y", unix_in(600))
            ),
        ),
        (
            "another secret",
            format!(
                "x?{}",
                signed_query("some-other-secret!", "publish", "live/x", unix_in(600))
            ),
        ),
    ] {
        let (answer, closed) = ask(s.rtmp, "127.0.0.1", "live", &name, true);
        assert!(
            refused(&answer, "NetStream.Publish.Unauthorized"),
            "publish with {what}: {answer:?}\n{}",
            s.rill.log()
        );
        assert!(closed, "publish with {what}: the connection stays open");
    }
    assert!(
        s.metric("reason=\"no_credentials\""),
        "{}",
        s.rill.get("/metrics").1
    );
    assert!(s.metric("reason=\"token_expired\""));
    assert!(s.metric("reason=\"bad_token\""));

    // A valid token: ffmpeg publishes.
    let _publisher = s.publish(&format!("live/x?{publish_q}"), 20);
    wait_publishing(&s.rill, "live/x");

    // Players: none without a token, over RTMP and HTTP.
    let (answer, _) = ask(s.rtmp, "127.0.0.1", "live", "x", false);
    assert!(refused(&answer, "NetStream.Play.Failed"), "{answer:?}");
    let (answer, _) = ask(
        s.rtmp,
        "127.0.0.1",
        "live",
        &format!("x?{publish_q}"),
        false,
    );
    assert!(
        refused(&answer, "NetStream.Play.Failed"),
        "a publish token plays: {answer:?}"
    );
    let (st, head, _) = http_request(s.rill.http_port, "GET", "/live/x.flv", None, "");
    assert_eq!(st, 401, "{head}");
    assert!(head.contains("www-authenticate: bearer"), "{head}");
    let ws = tungstenite::connect(format!("ws://127.0.0.1:{}/live/x.flv", s.rill.http_port));
    match ws {
        Err(tungstenite::Error::Http(r)) => assert_eq!(r.status(), 401),
        other => panic!("WS-FLV without a token: {:?}", other.map(|_| ())),
    }

    // With the play token: RTMP, HTTP-FLV (query, and bearer header) and
    // WS-FLV play; what ffmpeg decodes is checked.
    let rtmp_play = play(false, &s.url(&format!("live/x?{play_q}")), 3, &[]);
    assert!(
        rtmp_play.count(0) >= 50 && rtmp_play.monotonic(0),
        "RTMP: {}",
        rtmp::summary(&rtmp_play)
    );
    let flv_play = play(false, &s.http(&format!("live/x.flv?{play_q}")), 3, &[]);
    assert!(
        flv_play.count(0) >= 50 && flv_play.monotonic(0),
        "HTTP-FLV: {}",
        rtmp::summary(&flv_play)
    );
    let token = play_q.split("token=").nth(1).unwrap();
    let expires = play_q.split('&').next().unwrap();
    let bearer = play(
        false,
        &s.http(&format!("live/x.flv?{expires}")),
        2,
        &["-headers", &format!("Authorization: Bearer {token}\r\n")],
    );
    assert!(
        bearer.count(0) >= 25,
        "HTTP-FLV with a bearer token: {}",
        rtmp::summary(&bearer)
    );
    let (mut ws, resp) = tungstenite::connect(format!(
        "ws://127.0.0.1:{}/live/x.flv?{play_q}",
        s.rill.http_port
    ))
    .expect("WS-FLV with a token");
    assert_eq!(resp.status(), 101);
    let first = ws.read().expect("first message");
    assert!(
        first.into_data().starts_with(b"FLV"),
        "WS-FLV sends the FLV header first"
    );
}

#[test]
fn stream_keys_users_and_read_only_api_tokens() {
    let admin = "admin-token-0123456789";
    let reader = "read-token-0123456789";
    let s = Server::start(&format!(
        "  api_token: {admin}\n  api_tokens: [{{token: {reader}, role: read}}]\n\
         auth:\n  publish: [key, user]\n  keys: {{live/cam: k3y}}\n\
         \x20 users: [{{user: alice, password: wonder, publish: '^live/a', play: '.*'}}]\n"
    ));
    let port = s.rill.http_port;
    // A stream key from the config, OBS-style (the key in the stream name).
    let _cam = s.publish("live/cam?key=k3y", 20);
    wait_for(Duration::from_secs(20), || {
        let (_, _, body) = http_request(port, "GET", "/api/v1/streams/live/cam", Some(reader), "");
        body.contains("\"publishing\"").then_some(())
    })
    .unwrap_or_else(|| panic!("live/cam never published:\n{}", s.rill.log()));
    let (a, _) = ask(s.rtmp, "127.0.0.1", "live", "cam2?key=k3y", true);
    assert!(
        refused(&a, "NetStream.Publish.Unauthorized"),
        "a key for another stream: {a:?}"
    );
    let (a, _) = ask(s.rtmp, "127.0.0.1", "live", "cam?key=wrong", true);
    assert!(refused(&a, "NetStream.Publish.Unauthorized"), "{a:?}");
    assert!(s.metric("reason=\"bad_key\""));

    // Users, with the stream patterns they are allowed.
    let (a, _) = ask(
        s.rtmp,
        "127.0.0.1",
        "live",
        "abc?user=alice&pass=wonder",
        true,
    );
    assert_eq!(a, Answer::Started);
    let (a, _) = ask(
        s.rtmp,
        "127.0.0.1",
        "live",
        "zzz?user=alice&pass=wonder",
        true,
    );
    assert!(
        refused(&a, "NetStream.Publish.Unauthorized"),
        "outside alice's pattern: {a:?}"
    );
    let (a, _) = ask(
        s.rtmp,
        "127.0.0.1",
        "live?user=alice&pass=nope",
        "abc",
        true,
    );
    assert!(
        refused(&a, "NetStream.Publish.Unauthorized"),
        "wrong password in tcUrl: {a:?}"
    );

    // Keys through the API: the read-only token may list, not change.
    let (st, _, _) = http_request(
        port,
        "PUT",
        "/api/v1/auth/keys/live/api",
        Some(reader),
        "{}",
    );
    assert_eq!(st, 403, "a read token changed a key");
    let (st, _, _) = http_request(
        port,
        "DELETE",
        "/api/v1/auth/keys/live/api",
        Some(reader),
        "",
    );
    assert_eq!(st, 403, "a read token deleted a key");
    let (st, _, body) = http_request(port, "GET", "/api/v1/auth/keys", Some(reader), "");
    assert_eq!(st, 200, "{body}");
    assert!(body.contains("live/cam") && !body.contains("k3y"), "{body}");
    let (st, _, body) = http_request(port, "PUT", "/api/v1/auth/keys/live/api", Some(admin), "{}");
    assert_eq!(st, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let key = v["key"].as_str().expect("a generated key").to_owned();
    assert_eq!(key.len(), 32);
    let (a, _) = ask(s.rtmp, "127.0.0.1", "live", &format!("api?key={key}"), true);
    assert_eq!(a, Answer::Started, "{}", s.rill.log());
    let (st, _, _) = http_request(
        port,
        "DELETE",
        "/api/v1/auth/keys/live/api",
        Some(admin),
        "",
    );
    assert_eq!(st, 204);
    let (a, _) = ask(s.rtmp, "127.0.0.1", "live", &format!("api?key={key}"), true);
    assert!(
        refused(&a, "NetStream.Publish.Unauthorized"),
        "a deleted key: {a:?}"
    );
    // The config never shows secrets.
    let (_, _, cfg) = http_request(port, "GET", "/api/v1/config", Some(reader), "");
    assert!(
        !cfg.contains("k3y") && !cfg.contains("wonder") && !cfg.contains(reader),
        "{cfg}"
    );
}

/// The hook receiver: `allowed*` 200, `slow` 200 after 3 s, anything else
/// 403; notifications 200.
fn hook_policy(path: &str, body: &serde_json::Value) -> (u16, Duration) {
    let stream = body["stream"].as_str().unwrap_or("");
    match (path, stream) {
        ("/done", _) => (200, Duration::ZERO),
        (_, s) if s.starts_with("allowed") => (200, Duration::ZERO),
        (_, "slow") => (200, Duration::from_secs(3)),
        _ => (403, Duration::ZERO),
    }
}

#[test]
fn webhooks_decide_without_blocking_each_other() {
    let hooks = HookServer::start(hook_policy);
    let s = Server::start(&format!(
        "auth:\n  publish: hook\n  play: hook\nhooks:\n  on_publish: {}\n  on_play: {}\n\
         \x20 on_publish_done: {}\n  timeout: 1s\n",
        hooks.url("/publish"),
        hooks.url("/play"),
        hooks.url("/done"),
    ));
    let (a, _) = ask(s.rtmp, "127.0.0.1", "live", "allowed?x=1", true);
    assert_eq!(a, Answer::Started, "{}", s.rill.log());
    let (a, closed) = ask(s.rtmp, "127.0.0.1", "live", "denied", true);
    assert!(
        refused(&a, "NetStream.Publish.Unauthorized") && closed,
        "{a:?}"
    );
    let first = &hooks.bodies("/publish")[0];
    assert_eq!(first["action"], "publish");
    assert_eq!(
        (first["app"].as_str(), first["stream"].as_str()),
        (Some("live"), Some("allowed"))
    );
    assert_eq!(first["path"], "live/allowed");
    assert_eq!(first["protocol"], "rtmp");
    assert_eq!(first["query"], "x=1");
    assert_eq!(first["client"], "127.0.0.1");
    assert!(first["node"].is_string());

    // A hook that takes 3 s for one stream: fails closed at the 1 s
    // timeout, and a publisher asking meanwhile is answered at once.
    let port = s.rtmp;
    let slow = std::thread::spawn(move || {
        let r = ask(port, "127.0.0.1", "live", "slow", true);
        (r, Instant::now())
    });
    while hooks
        .bodies("/publish")
        .iter()
        .all(|b| b["stream"] != "slow")
    {
        std::thread::sleep(Duration::from_millis(10));
    }
    let (fast, _) = ask(s.rtmp, "127.0.0.1", "live", "allowed2", true);
    let fast_at = Instant::now();
    assert_eq!(fast, Answer::Started);
    let ((slow_answer, _), slow_at) = slow.join().unwrap();
    assert!(
        fast_at < slow_at,
        "the fast publisher waited for the slow hook"
    );
    assert!(
        refused(&slow_answer, "NetStream.Publish.Unauthorized"),
        "fail closed: {slow_answer:?}"
    );
    assert!(s.metric("reason=\"hook_timeout\""));

    // HTTP-FLV players asked too: a refusal is a 403.
    let (st, _, _) = http_request(s.rill.http_port, "GET", "/live/denied.flv", None, "");
    assert_eq!(st, 403);

    // A publisher that ends is reported to on_publish_done.
    let p = s.publish("live/allowed3", 2);
    wait_for(Duration::from_secs(20), || {
        hooks
            .bodies("/done")
            .iter()
            .any(|b| b["action"] == "publish_done" && b["stream"] == "allowed3")
            .then_some(())
    })
    .unwrap_or_else(|| {
        panic!(
            "no publish_done: {:?}\n{}",
            hooks.bodies("/done"),
            s.rill.log()
        )
    });
    drop(p);

    // fail_open: the same slow hook lets the publisher in after the timeout.
    let open = Server::start(&format!(
        "auth:\n  publish: hook\nhooks:\n  on_publish: {}\n  timeout: 1s\n  fail_open: true\n",
        hooks.url("/publish"),
    ));
    let (a, _) = ask(open.rtmp, "127.0.0.1", "live", "slow", true);
    assert_eq!(a, Answer::Started, "fail_open");
}

#[test]
fn ip_rules_and_limits() {
    let s = Server::start(
        "auth:\n  publish_deny: [127.0.0.2]\n  play_allow: [127.0.0.0/24]\n\
         limits:\n  max_connections_per_ip: 3\n  max_players_per_stream: 2\n",
    );
    let (a, closed) = ask(s.rtmp, "127.0.0.2", "live", "x", true);
    assert!(
        refused(&a, "NetStream.Publish.Unauthorized") && closed,
        "denied address: {a:?}"
    );
    let (a, _) = ask(s.rtmp, "127.0.0.2", "live", "x", false);
    assert_eq!(a, Answer::Started, "127.0.0.2 may still play");
    let (a, _) = ask(s.rtmp, "127.0.0.1", "live", "x", true);
    assert_eq!(a, Answer::Started);
    let (a, _) = ask(s.rtmp, "127.0.1.9", "live", "x", false);
    assert!(
        refused(&a, "NetStream.Play.Failed"),
        "outside play_allow: {a:?}"
    );
    assert!(s.metric("reason=\"ip_denied\""));

    // Three connections from one address; the fourth is closed at accept,
    // the three go on, and another address is not affected.
    let mut held: Vec<_> = (0..3).map(|_| connect_from(s.rtmp, "127.0.0.3")).collect();
    std::thread::sleep(Duration::from_millis(300));
    let (a, _) = ask(s.rtmp, "127.0.0.3", "live", "y", false);
    assert_eq!(a, Answer::Closed, "the fourth connection from 127.0.0.3");
    for c in &mut held {
        use std::io::{Read, Write};
        c.write_all(&[3u8; 1537]).expect("a held connection works");
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut s0 = [0u8; 1];
        assert_eq!(c.read(&mut s0).unwrap(), 1, "a held connection got no S0");
    }
    let (a, _) = ask(s.rtmp, "127.0.0.4", "live", "y", false);
    assert_eq!(a, Answer::Started);
    drop(held);
    // Closed ones free their places.
    let ok = wait_for(Duration::from_secs(5), || {
        (ask(s.rtmp, "127.0.0.3", "live", "y", false).0 == Answer::Started).then_some(())
    });
    assert!(ok.is_some(), "places not freed");
    assert!(s.metric("action=\"connect\",protocol=\"rtmp\",reason=\"max_connections_per_ip\""));

    // Two players of a stream at most.
    let (a1, _, _p1) = ask_keep(s.rtmp, "127.0.0.1", "live", "z", false);
    let (a2, _, _p2) = ask_keep(s.rtmp, "127.0.0.5", "live", "z", false);
    assert_eq!((a1, a2), (Answer::Started, Answer::Started));
    let (a3, _) = ask(s.rtmp, "127.0.0.1", "live", "z", false);
    assert!(
        refused(&a3, "NetStream.Play.Failed"),
        "a third player: {a3:?}"
    );
    assert!(s.metric("reason=\"max_players_per_stream\""));
}
