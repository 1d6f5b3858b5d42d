//! The cost of admission per publish or play, through the host's own code
//! (`rill::admission`):
//!
//! - `open`: the default policy (the floor: the request parsed, the IP rules
//!   and the methods walked);
//! - `token`: a signed URL checked (HMAC-SHA256 of `A:P:E`, constant-time
//!   compare);
//! - `key`: a stream key looked up and compared;
//! - `hook`: one `on_publish` webhook round trip to a server on loopback
//!   (connect, POST the JSON, read the status), the server answering 204 at
//!   once from its own thread.
//!
//! A summary prints µs per decision and each ratio to `open`.

use std::hint::black_box;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::{Duration, Instant};

use criterion::Criterion;
use rill::admission::{Action, Admission, Creds, HookRequest, Request};
use rill::config::Config;

const SECRET: &str = "0123456789abcdef-bench";

fn config(yaml: &str) -> Config {
    let mut c = Config::from_yaml_str(yaml).expect("bench config");
    c.state_dir = std::env::temp_dir().join("rill-bench-admission");
    c
}

/// A hook server answering 204 to every POST, one thread per connection.
fn hook_server() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for c in l.incoming() {
            let Ok(mut c) = c else { continue };
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                let mut got = Vec::new();
                // The head and a small body arrive in one or two reads.
                while let Ok(n) = c.read(&mut buf) {
                    if n == 0 {
                        return;
                    }
                    got.extend_from_slice(&buf[..n]);
                    if let Some(i) = got.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&got[..i]).to_ascii_lowercase();
                        let len: usize = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .and_then(|v| v.trim().parse().ok())
                            .unwrap_or(0);
                        if got.len() >= i + 4 + len {
                            break;
                        }
                    }
                }
                let _ = c.write_all(b"HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n");
            });
        }
    });
    port
}

fn sign(action: &str, path: &str, expires: u64) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, SECRET.as_bytes());
    let tag = ring::hmac::sign(&key, format!("{action}:{path}:{expires}").as_bytes());
    tag.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    let client = Some("127.0.0.1".parse().unwrap());
    let mut results: Vec<(&str, f64)> = Vec::new();
    let mut time = |c: &mut Criterion, name: &'static str, f: &mut dyn FnMut() -> bool| {
        c.bench_function(name, |b| b.iter(|| assert!(black_box(f()))));
        // Criterion keeps its estimates to itself: time a fixed run too.
        let n = if name == "hook" { 2_000 } else { 200_000 };
        let t = Instant::now();
        for _ in 0..n {
            assert!(f());
        }
        results.push((name, t.elapsed().as_secs_f64() * 1e6 / n as f64));
    };

    let open = Admission::new(&config(""), || None);
    time(&mut c, "open", &mut || {
        let r = Request::new(
            Action::Publish,
            "live/x",
            "",
            client,
            Creds::default(),
            "rtmp",
        );
        matches!(open.decide(&r), rill::admission::Outcome::Allow)
    });

    let token = Admission::new(
        &config(&format!("auth:\n  publish: token\n  secret: {SECRET}\n")),
        || None,
    );
    let expires = 4_000_000_000u64;
    let query = format!(
        "expires={expires}&token={}",
        sign("publish", "live/x", expires)
    );
    time(&mut c, "token", &mut || {
        let r = Request::new(
            Action::Publish,
            "live/x",
            &query,
            client,
            Creds::default(),
            "rtmp",
        );
        matches!(token.decide(&r), rill::admission::Outcome::Allow)
    });

    let key = Admission::new(
        &config("auth:\n  publish: key\n  keys: {live/x: a-stream-key-of-some-length}\n"),
        || None,
    );
    time(&mut c, "key", &mut || {
        let r = Request::new(
            Action::Publish,
            "live/x",
            "key=a-stream-key-of-some-length",
            client,
            Creds::default(),
            "rtmp",
        );
        matches!(key.decide(&r), rill::admission::Outcome::Allow)
    });

    let port = hook_server();
    let hook = Admission::new(
        &config(&format!(
            "auth:\n  publish: hook\nhooks:\n  on_publish: http://127.0.0.1:{port}/publish\n"
        )),
        || None,
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let req = HookRequest {
        action: Action::Publish,
        path: "live/x".into(),
        query: "a=1".into(),
        protocol: "rtmp".into(),
        client,
    };
    c = c.measurement_time(Duration::from_secs(5));
    time(&mut c, "hook", &mut || {
        rt.block_on(hook.clone().ask_hook(req.clone())).is_ok()
    });
    c.final_summary();

    let floor = results[0].1;
    println!("\nadmission per publish/play (µs, and ratio to open):");
    for (name, us) in &results {
        println!("  {name:>6}: {us:10.3} µs  {:8.1}×", us / floor);
    }
}
