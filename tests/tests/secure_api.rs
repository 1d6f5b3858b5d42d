//! The control plane is safe by default: without a token the API answers
//! only this machine (and only under a loopback Host name), no other
//! origin's page may call it, secrets never leave through it, and nothing
//! a caller names can exhaust the server.

use std::time::{Duration, Instant};

use rill_e2e::netns::NetNs;
use rill_e2e::*;

fn is_problem(head: &str, status: u16, got: u16) -> bool {
    got == status && head.contains("content-type: application/problem+json")
}

/// curl from inside `ns`: (status, body).
fn curl(ns: &NetNs, args: &[&str]) -> (u16, String) {
    let mut all = vec!["-s", "-m", "10", "-w", "\n%{http_code}"];
    all.extend_from_slice(args);
    let out = ns.run("curl", &all);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    (code.trim().parse().unwrap_or(0), body.to_owned())
}

#[test]
fn without_a_token_the_api_answers_only_loopback_under_a_loopback_name() {
    // The default listen address is every interface, as players need.
    let port = free_port();
    let listen = format!("0.0.0.0:{port}");
    let rill = Rill::start_with_env("", &[], &[("RILL_HTTP_LISTEN", &listen)]);
    assert_eq!(rill.http_port, port);

    // Another host: refused, reads and writes alike; /metrics still open.
    let ns = NetNs::create();
    let base = format!("http://{}:{port}", ns.host_ip);
    let (st, body) = curl(
        &ns,
        &[
            "-X",
            "PUT",
            "-H",
            "content-type: application/yaml",
            "--data-binary",
            "http:\n  api_token: mine\n",
            &format!("{base}/api/v1/config"),
        ],
    );
    assert_eq!(st, 403, "{body}");
    assert!(body.contains("only clients on this machine"), "{body}");
    let (st, _) = curl(&ns, &[&format!("{base}/api/v1/config")]);
    assert_eq!(st, 403);
    let (st, _) = curl(&ns, &[&format!("{base}/api/v1/streams")]);
    assert_eq!(st, 403);
    let (st, body) = curl(&ns, &[&format!("{base}/metrics")]);
    assert_eq!(st, 200, "{body}");

    // This machine under a name that is not loopback (DNS rebinding): refused.
    let (st, head, body) = http_request_with(
        port,
        "GET",
        "/api/v1/config",
        &[("Host", &format!("rebind.example:{port}"))],
        "",
    );
    assert!(is_problem(&head, 403, st), "{st} {body}");
    // Under loopback names: answered.
    for host in [
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        "[::1]".into(),
    ] {
        let (st, _, body) =
            http_request_with(port, "GET", "/api/v1/server", &[("Host", &host)], "");
        assert_eq!(st, 200, "Host {host}: {body}");
    }

    // A body the API takes must say it is JSON or YAML (no form posts).
    let (st, head, _) = http_request_with(
        port,
        "POST",
        "/api/v1/config/validate",
        &[("Host", "127.0.0.1"), ("Content-Type", "text/plain")],
        "log:\n  level: debug\n",
    );
    assert!(is_problem(&head, 415, st), "{st}");

    // Another origin's page: the preflight is refused and no CORS header
    // lets it read an answer.
    let (st, head, _) = http_request_with(
        port,
        "OPTIONS",
        "/api/v1/config",
        &[
            ("Host", "127.0.0.1"),
            ("Origin", "http://evil.example"),
            ("Access-Control-Request-Method", "PUT"),
        ],
        "",
    );
    assert_eq!(st, 403);
    assert!(!head.contains("access-control-allow-origin"), "{head}");
    let (st, head, _) = http_request_with(
        port,
        "GET",
        "/api/v1/server",
        &[("Host", "127.0.0.1"), ("Origin", "http://evil.example")],
        "",
    );
    assert_eq!(st, 200);
    assert!(!head.contains("access-control-allow-origin"), "{head}");
    // Media routes stay open to every origin.
    let (_, head, _) = http_request_with(
        port,
        "OPTIONS",
        "/live/x.flv",
        &[("Host", "127.0.0.1"), ("Origin", "http://player.example")],
        "",
    );
    assert!(head.contains("access-control-allow-origin: *"), "{head}");
}

#[test]
fn allowed_origins_and_hosts_are_configurable() {
    let rill = Rill::start(
        "  allowed_hosts: [rill.lan]\n  cors_origins: [\"https://console.example\"]\n",
        &[],
    );
    let port = rill.http_port;
    let (st, head, _) = http_request_with(
        port,
        "OPTIONS",
        "/api/v1/config",
        &[
            ("Host", "rill.lan:8080"),
            ("Origin", "https://console.example"),
            ("Access-Control-Request-Method", "PUT"),
        ],
        "",
    );
    assert_eq!(st, 204);
    assert!(
        head.contains("access-control-allow-origin: https://console.example"),
        "{head}"
    );
    let (st, head, _) = http_request_with(
        port,
        "GET",
        "/api/v1/server",
        &[("Host", "rill.lan"), ("Origin", "https://console.example")],
        "",
    );
    assert_eq!(st, 200);
    assert!(head.contains("access-control-allow-origin: https://console.example"));
}

#[test]
fn config_round_trip_keeps_secrets_and_the_token() {
    let rill = Rill::start(
        "  api_token: s3cret\nplugins:\n  srtlike:\n    passphrase: hunter2hunter2\n    latency: 120\n",
        &[],
    );
    let port = rill.http_port;
    let tok = Some("s3cret");
    // The token is needed from loopback too.
    let (st, _, _) = http_request(port, "GET", "/api/v1/config", None, "");
    assert_eq!(st, 401);

    let (st, _, body) = http_request(port, "GET", "/api/v1/config", tok, "");
    assert_eq!(st, 200, "{body}");
    assert!(
        !body.contains("s3cret") && !body.contains("hunter2"),
        "{body}"
    );
    let cfg: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(cfg["http"]["api_token"], "<redacted>");
    assert_eq!(cfg["plugins"]["srtlike"]["passphrase"], "<redacted>");
    assert_eq!(cfg["plugins"]["srtlike"]["latency"], 120);

    // PUT back what GET gave (JSON is YAML): applied, secrets kept.
    let (st, _, body) = http_request(port, "PUT", "/api/v1/config", tok, &body);
    assert_eq!(st, 200, "{body}");
    let (st, _, _) = http_request(port, "GET", "/api/v1/server", tok, "");
    assert_eq!(st, 200);
    let (st, _, _) = http_request(port, "GET", "/api/v1/server", Some("<redacted>"), "");
    assert_eq!(st, 401, "the placeholder must never be a token");

    // A config that leaves the token out keeps it too (auth never turns
    // off through the API by omission).
    let (st, _, body) = http_request(port, "PUT", "/api/v1/config", tok, "log:\n  level: info\n");
    assert_eq!(st, 200, "{body}");
    let (st, _, _) = http_request(port, "GET", "/api/v1/server", None, "");
    assert_eq!(st, 401);
    let (st, _, body) = http_request(port, "GET", "/api/v1/config", tok, "");
    assert_eq!(st, 200);
    let cfg: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(cfg["plugins"]["srtlike"]["passphrase"], "<redacted>");

    // A new token set through the API takes over.
    let (st, _, body) = http_request(
        port,
        "PUT",
        "/api/v1/config",
        tok,
        "http:\n  api_token: n3w\n",
    );
    assert_eq!(st, 200, "{body}");
    let (st, _, _) = http_request(port, "GET", "/api/v1/server", Some("n3w"), "");
    assert_eq!(st, 200);
    let (st, _, _) = http_request(port, "GET", "/api/v1/server", tok, "");
    assert_eq!(st, 401);
}

#[test]
fn validate_never_reads_devices_or_fifos_nor_tells_what_exists() {
    let rill = Rill::start("", &[]);
    let port = rill.http_port;
    let fifo = rill.dir.path().join("fifo");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let before = rill.rss_kib();
    let mut messages = Vec::new();
    for cert in [
        "/dev/zero",
        fifo.to_str().unwrap(),
        "/nonexistent/cert.pem",
        "/etc/passwd",
    ] {
        let body =
            format!("http:\n  tls:\n    listen: 127.0.0.1:1\n    cert: {cert}\n    key: {cert}\n");
        let t = Instant::now();
        let (st, head, resp) = http_request(port, "POST", "/api/v1/config/validate", None, &body);
        let took = t.elapsed();
        assert!(is_problem(&head, 422, st), "{cert}: {st} {resp}");
        assert!(took < Duration::from_secs(5), "{cert}: {took:?}");
        let v: serde_json::Value = serde_json::from_str(&resp).unwrap();
        let errs = v["errors"].as_array().unwrap().clone();
        assert!(
            errs.iter().any(|e| e["path"] == "http.tls.cert"),
            "{cert}: {resp}"
        );
        messages.push(serde_json::to_string(&errs).unwrap());
    }
    // The same answer whether the file is a device, a FIFO, missing or
    // a readable file that is no certificate.
    assert!(messages.windows(2).all(|w| w[0] == w[1]), "{messages:#?}");
    let after = rill.rss_kib();
    assert!(
        after < before + 20 * 1024,
        "memory grew from {before} to {after} KiB"
    );
    // The server is still fine.
    let (st, _, _) = http_request(port, "GET", "/api/v1/server", None, "");
    assert_eq!(st, 200);
    // The details are in the log, for the operator.
    assert!(rill.log().contains("not a regular file"), "{}", rill.log());
}

#[test]
fn api_reloads_are_rate_limited_and_leave_no_files() {
    let rill = Rill::start("", &[build_template("1.0.0", false)]);
    let port = rill.http_port;
    let gen = |r: &Rill| plugin_state(r, "flvtcp").map(|p| p["generation"].as_u64().unwrap());
    wait_for(Duration::from_secs(10), || gen(&rill)).expect("flvtcp loaded");
    let first = gen(&rill).unwrap();

    let t = Instant::now();
    let (mut ok, mut limited) = (0, 0);
    for _ in 0..100 {
        let (st, _, body) = http_request(port, "POST", "/api/v1/plugins/flvtcp/reload", None, "");
        match st {
            200 => ok += 1,
            429 => limited += 1,
            _ => panic!("{st} {body}"),
        }
    }
    assert!(t.elapsed() < Duration::from_secs(10));
    assert!(
        (1..=15).contains(&ok) && limited >= 85,
        "ok {ok} limited {limited}"
    );
    // Identical bytes: no new generation at all.
    assert_eq!(gen(&rill), Some(first));
    let private = rill.dir.path().join("state").join("loaded-plugins");
    let files: Vec<_> = std::fs::read_dir(&private).unwrap().collect();
    assert!(
        files.is_empty(),
        "stray files in {}: {files:?}",
        private.display()
    );

    // A plugin file others could have written is refused with the reason.
    let lib = build_template("1.0.1", false);
    let tmp = rill.plugins_dir().join(".untrusted.tmp");
    std::fs::copy(&lib, &tmp).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o666)).unwrap();
    std::fs::rename(&tmp, rill.plugins_dir().join("libflvtcp_ow.so")).unwrap();
    let err = wait_for(Duration::from_secs(10), || {
        plugin_state(&rill, "libflvtcp_ow.so")
            .and_then(|p| p["last_error"].as_str().map(str::to_owned))
    })
    .unwrap_or_else(|| panic!("not refused:\n{}", rill.log()));
    assert!(err.contains("writable by others"), "{err}");
    assert_eq!(gen(&rill), Some(first), "the running generation stays");
}

#[test]
fn websocket_message_over_the_cap_closes_that_connection() {
    let ingest = free_port();
    let play = free_port();
    let yaml = format!(
        "  max_body: 4096\nplugins:\n  flvtcp:\n    ingest: 127.0.0.1:{ingest}\n    play: 127.0.0.1:{play}\n    stream: live/test\n"
    );
    let rill = Rill::start(
        &yaml,
        &[
            build_template("1.0.0", false),
            target_dir().join("librill_plugin_flv.so"),
        ],
    );
    assert!(wait_port(ingest, Duration::from_secs(10)));
    let mut publisher = publish_flvtcp(ingest, 20);
    wait_publishing(&rill, "live/test");
    let url = format!("ws://127.0.0.1:{}/live/test.flv", rill.http_port);
    let (mut big, _) = tungstenite::connect(url.as_str()).expect("ws connect");
    let (mut small, _) = tungstenite::connect(url.as_str()).expect("ws connect");
    small
        .send(tungstenite::Message::Binary(vec![0u8; 1000].into()))
        .unwrap();
    big.send(tungstenite::Message::Binary(vec![0u8; 64 * 1024].into()))
        .unwrap();
    // The big sender is closed within a few seconds...
    set_timeout(&big, Duration::from_secs(1));
    let deadline = Instant::now() + Duration::from_secs(8);
    let mut closed = false;
    while Instant::now() < deadline {
        match big.read() {
            Ok(tungstenite::Message::Close(_)) => {
                closed = true;
                break;
            }
            Ok(_) => {}
            Err(tungstenite::Error::Io(e)) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(_) => {
                closed = true;
                break;
            }
        }
    }
    assert!(
        closed,
        "a 64 KiB message over a 4 KiB cap did not close the connection"
    );
    // ...while the other player keeps streaming.
    set_timeout(&small, Duration::from_secs(5));
    let mut frames = 0;
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline {
        if let Ok(tungstenite::Message::Binary(_)) = small.read() {
            frames += 1;
        }
    }
    assert!(frames > 20, "the other player got {frames} messages");
    let _ = publisher.kill();
    let _ = publisher.wait();
}

fn set_timeout(
    ws: &tungstenite::WebSocket<tungstenite::stream::MaybeTlsStream<std::net::TcpStream>>,
    t: Duration,
) {
    if let tungstenite::stream::MaybeTlsStream::Plain(s) = ws.get_ref() {
        s.set_read_timeout(Some(t)).unwrap();
    }
}
