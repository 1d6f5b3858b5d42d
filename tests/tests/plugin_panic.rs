//! A Rust plugin that panics inside a session callback: the SDK catches the
//! panic at the `extern "C"` boundary, the host logs it and ends that one
//! session; the process, the plugin and its other sessions go on.
//!
//! Uses `plugins/testkit` (built by `cargo build --workspace`): a TCP echo
//! whose `on_data` panics on the line `panic`.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use rill_e2e::*;

fn testkit() -> std::path::PathBuf {
    let lib = target_dir().join("librill_plugin_testkit.so");
    assert!(
        lib.exists(),
        "{} missing: run `cargo build --workspace` first",
        lib.display()
    );
    lib
}

fn connect(port: u16) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", port)).expect("connect to testkit");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s
}

/// Sends `msg` and expects exactly it back.
fn assert_echo(s: &mut TcpStream, msg: &[u8], rill: &Rill) {
    s.write_all(msg).unwrap();
    let mut back = vec![0u8; msg.len()];
    if let Err(e) = s.read_exact(&mut back) {
        panic!(
            "no echo of {:?}: {e}\n{}",
            String::from_utf8_lossy(msg),
            rill.log()
        );
    }
    assert_eq!(back, msg);
}

#[test]
fn a_panicking_callback_ends_only_its_session() {
    let port = free_port();
    let rill = Rill::start(
        &format!("plugins:\n  testkit:\n    listen: 127.0.0.1:{port}\n"),
        &[testkit()],
    );
    assert!(
        wait_port(port, Duration::from_secs(10)),
        "testkit not listening:\n{}",
        rill.log()
    );

    let mut a = connect(port);
    let mut b = connect(port);
    assert_echo(&mut a, b"hello from a\n", &rill);
    assert_echo(&mut b, b"hello from b\n", &rill);
    assert!(
        !rill.log().contains("panicked"),
        "a panic before we asked for one:\n{}",
        rill.log()
    );

    // The panic: `a` is closed promptly, without its line echoed.
    let t0 = Instant::now();
    a.write_all(b"panic\n").unwrap();
    let mut buf = [0u8; 64];
    let end = a.read(&mut buf);
    let waited = t0.elapsed();
    match end {
        Ok(0) => {}
        Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
        Ok(n) => panic!(
            "the panicking session answered {:?} instead of closing",
            String::from_utf8_lossy(&buf[..n])
        ),
        Err(e) => panic!(
            "the panicking session was not closed after {waited:?}: {e}\n{}",
            rill.log()
        ),
    }
    assert!(
        waited < Duration::from_secs(2),
        "the panicking session took {waited:?} to close"
    );

    // The host logged it as an error naming the plugin and the panic.
    let line = wait_for(Duration::from_secs(2), || {
        rill.log()
            .lines()
            .find(|l| l.contains("ERROR") && l.contains("plugin=testkit") && l.contains("panicked"))
            .map(str::to_owned)
    })
    .unwrap_or_else(|| panic!("no error line about the panic:\n{}", rill.log()));
    assert!(line.contains("asked to panic"), "{line}");

    // The other session, a new one, the plugin and the process are fine.
    assert_echo(&mut b, b"still here\n", &rill);
    let mut c = connect(port);
    assert_echo(&mut c, b"new connection\n", &rill);
    assert_echo(&mut b, b"and again\n", &rill);
    let state = wait_for(Duration::from_secs(2), || {
        plugin_state(&rill, "testkit").filter(|s| s["sessions"] == 2)
    })
    .unwrap_or_else(|| {
        panic!(
            "testkit should have exactly b and c open: {:?}\n{}",
            plugin_state(&rill, "testkit"),
            rill.log()
        )
    });
    assert_eq!(state["state"], "running", "{state}");
    assert_eq!(state["generation"], 1, "{state}");
    assert!(state["last_error"].is_null(), "{state}");
}

#[test]
fn panics_in_many_sessions_leave_the_plugin_serving() {
    let port = free_port();
    let rill = Rill::start(
        &format!("plugins:\n  testkit:\n    listen: 127.0.0.1:{port}\n"),
        &[testkit()],
    );
    assert!(wait_port(port, Duration::from_secs(10)), "{}", rill.log());
    let mut keeper = connect(port);
    assert_echo(&mut keeper, b"keeper\n", &rill);
    // Twenty sessions panic, the `panic` line split across two writes.
    for i in 0..20 {
        let mut s = connect(port);
        assert_echo(&mut s, format!("victim {i}\n").as_bytes(), &rill);
        // "pan" alone is not the line yet: it is echoed.
        assert_echo(&mut s, b"pan", &rill);
        s.write_all(b"ic\n").unwrap();
        let mut buf = [0u8; 16];
        match s.read(&mut buf) {
            Ok(0) => {}
            Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
            other => panic!("victim {i} not closed: {other:?}\n{}", rill.log()),
        }
    }
    assert_echo(&mut keeper, b"keeper survived\n", &rill);
    let panics = wait_for(Duration::from_secs(2), || {
        let n = rill
            .log()
            .lines()
            .filter(|l| {
                l.contains("ERROR") && l.contains("plugin=testkit") && l.contains("panicked")
            })
            .count();
        (n >= 20).then_some(n)
    })
    .unwrap_or_else(|| panic!("not every panic was logged:\n{}", rill.log()));
    assert_eq!(panics, 20, "{}", rill.log());
    let state = wait_for(Duration::from_secs(2), || {
        plugin_state(&rill, "testkit").filter(|s| s["sessions"] == 1)
    })
    .unwrap_or_else(|| panic!("{:?}", plugin_state(&rill, "testkit")));
    assert_eq!(state["state"], "running");
}

/// Issue 20's fault plugin: `testkit` with `panic_in: <callback>` panics in
/// that callback every time. For each callback in turn, the host logs the
/// panic as an error naming the plugin, ends at most the session concerned,
/// and goes on serving: its API answers, and the plugin too where the
/// callback allows it.
#[test]
fn a_panic_in_any_callback_is_contained() {
    let cases = [
        "create",
        "on_conn_open",
        "on_data",
        "on_close",
        "on_timer",
        "on_http_request",
        "on_udp_packet",
        "drain",
        "destroy",
    ];
    for case in cases {
        let (port, udp) = (free_port(), free_port());
        let rill = Rill::start(
            &format!(
                "plugins:\n  testkit:\n    listen: 127.0.0.1:{port}\n    udp: 127.0.0.1:{udp}\n    \
                 http: true\n    panic_in: {case}\n"
            ),
            &[testkit()],
        );
        if case != "create" {
            assert!(
                wait_port(port, Duration::from_secs(10)),
                "{case}: testkit not listening:\n{}",
                rill.log()
            );
        }
        // Make the callback run; what the client sees.
        match case {
            "create" => {}
            "on_conn_open" | "on_timer" => {
                let mut s = connect(port);
                assert!(
                    closed_within(&mut s, Duration::from_secs(3)),
                    "{case}: the session was not ended"
                );
            }
            "on_data" => {
                let mut s = connect(port);
                s.write_all(b"hello\n").unwrap();
                assert!(
                    closed_within(&mut s, Duration::from_secs(3)),
                    "{case}: the session was not ended"
                );
            }
            "on_close" => {
                let mut s = connect(port);
                assert_echo(&mut s, b"hello\n", &rill);
                drop(s);
            }
            "on_http_request" => {
                let (status, _) = http_get(rill.http_port, "/testkit/later");
                assert!(status >= 500 || status == 0, "{case}: answered {status}");
            }
            "on_udp_packet" => {
                let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
                sock.set_read_timeout(Some(Duration::from_millis(500)))
                    .unwrap();
                sock.send_to(b"ping", ("127.0.0.1", udp)).unwrap();
                let mut buf = [0u8; 64];
                assert!(sock.recv(&mut buf).is_err(), "{case}: answered");
            }
            "drain" | "destroy" => {
                install_new_build(&rill, &testkit(), case);
                wait_for(Duration::from_secs(10), || {
                    plugin_state(&rill, "testkit").filter(|s| s["generation"] == 2)
                })
                .unwrap_or_else(|| panic!("{case}: no second generation:\n{}", rill.log()));
            }
            _ => unreachable!(),
        }
        let message = format!("testkit panics in {case}");
        wait_for(Duration::from_secs(5), || {
            rill.log()
                .lines()
                .find(|l| l.contains("ERROR") && l.contains("testkit") && l.contains(&message))
                .map(str::to_owned)
        })
        .unwrap_or_else(|| panic!("{case}: no error line about the panic:\n{}", rill.log()));
        // The server goes on.
        let (status, _) = http_get(rill.http_port, "/api/v1/server");
        assert_eq!(status, 200, "{case}: the API after the panic");
        let state = plugin_state(&rill, "testkit").unwrap();
        match case {
            // A plugin that cannot be created is reported, not run.
            "create" => {
                assert_eq!(state["state"], "failed", "{state}");
                assert!(
                    state["last_error"].as_str().unwrap_or("").contains("panic"),
                    "{state}"
                );
            }
            // Every connection ends there; the plugin stays loaded.
            "on_conn_open" | "on_timer" | "on_data" => {
                assert_eq!(state["state"], "running", "{state}")
            }
            // The plugin serves new connections.
            _ => {
                assert_eq!(state["state"], "running", "{case}: {state}");
                let mut s = connect(port);
                assert_echo(&mut s, b"still serving\n", &rill);
            }
        }
    }
}
