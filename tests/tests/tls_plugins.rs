//! TLS on plugin sockets: RTMPS (`plugins.rtmp.tls_listen`, the host's
//! certificate) with ffmpeg verifying it, a wrong CA refused, garbage on
//! the TLS port closing only itself; and an outbound TLS connection from a
//! plugin (`RILL_CONNECT_TLS`) to a local TLS server, verified against
//! `tls_client.ca_file`, and refused without it.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rill_e2e::rtmp::plugin as rtmp_plugin;
use rill_e2e::*;
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

#[test]
fn rtmps_publish_and_play_verified_and_a_wrong_ca_refused() {
    let dir = tempfile::tempdir().unwrap();
    let good = make_cert(dir.path(), "good");
    let other = make_cert(dir.path(), "other");
    let (rtmp, rtmps) = (free_port(), free_port());
    let https = free_port();
    let rill = Rill::start(
        &format!(
            "  tls:\n    listen: 127.0.0.1:{https}\n    cert: {}\n    key: {}\nplugins:\n  rtmp:\n    listen: 127.0.0.1:{rtmp}\n    tls_listen: 127.0.0.1:{rtmps}\n",
            good.cert.display(),
            good.key.display()
        ),
        &[rtmp_plugin()],
    );
    assert!(wait_port(rtmps, Duration::from_secs(10)), "{}", rill.log());
    let url = format!("rtmps://localhost:{rtmps}/live/secure");
    let ca = good.cert.to_str().unwrap();
    let verify = ["-tls_verify", "1", "-ca_file", ca];
    let mut publisher = Command::new(ffmpeg(false))
        .args(["-hide_banner", "-loglevel", "error", "-re"])
        .args([
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=320x240:rate=25:duration=12",
        ])
        .args([
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=48000:duration=12",
        ])
        .args([
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-g",
            "25",
            "-pix_fmt",
            "yuv420p",
        ])
        .args(["-c:a", "aac", "-f", "flv"])
        .args(verify)
        .arg(&url)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for(Duration::from_secs(10), || {
        rill.get("/api/v1/streams")
            .1
            .contains("live/secure")
            .then_some(())
    })
    .unwrap_or_else(|| panic!("not published over RTMPS:\n{}", rill.log()));

    // Garbage where a ClientHello belongs: that connection closes, alone.
    let mut junk = TcpStream::connect(("127.0.0.1", rtmps)).unwrap();
    junk.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    junk.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let t = Instant::now();
    let mut buf = [0u8; 256];
    let closed = loop {
        match junk.read(&mut buf) {
            Ok(0) | Err(_) => break true,
            Ok(_) if t.elapsed() < Duration::from_secs(3) => continue,
            Ok(_) => break false,
        }
    };
    assert!(closed, "garbage on the RTMPS port was not closed");
    // A client that stalls in the handshake holds up nobody.
    let _staller = TcpStream::connect(("127.0.0.1", rtmps)).unwrap();

    // A verifying player decodes the stream.
    let d = play(false, &url, 4, &verify);
    assert!(d.count(0) >= 90, "video {}: {}", d.count(0), d.stderr);
    assert!(d.count(1) > 150, "audio {}", d.count(1));
    assert!(d.monotonic(0) && d.monotonic(1));
    // The same player trusting another CA refuses the server.
    let bad = play(
        false,
        &url,
        2,
        &["-tls_verify", "1", "-ca_file", other.cert.to_str().unwrap()],
    );
    assert_eq!(bad.count(0), 0);
    assert!(
        bad.stderr.contains("verification") || bad.stderr.contains("certificate"),
        "{}",
        bad.stderr
    );
    let _ = publisher.kill();
    let _ = publisher.wait();
}

/// A one-connection TLS server: reads a line, answers `hi from the server`.
fn tls_server(cert: &TestCert) -> (u16, std::thread::JoinHandle<Option<String>>) {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der.clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.key_der.clone())),
        )
        .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let handle = std::thread::spawn(move || {
        let (tcp, _) = listener.accept().ok()?;
        tcp.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
        let conn = rustls::ServerConnection::new(Arc::new(config)).ok()?;
        let mut tls = rustls::StreamOwned::new(conn, tcp);
        let mut line = String::new();
        BufReader::new(&mut tls).read_line(&mut line).ok()?;
        tls.write_all(b"hi from the server\n").ok()?;
        tls.flush().ok()?;
        Some(line)
    });
    (port, handle)
}

fn start_probe(cert_yaml: &str, port: u16) -> Rill {
    let tcp = free_port();
    Rill::start(
        &format!(
            "{cert_yaml}plugins:\n  testkit:\n    listen: 127.0.0.1:{tcp}\n    connect_tls: localhost:{port}\n"
        ),
        &[target_dir().join("librill_plugin_testkit.so")],
    )
}

#[test]
fn outbound_tls_is_verified_against_the_configured_ca() {
    let dir = tempfile::tempdir().unwrap();
    let cert = make_cert(dir.path(), "server");
    let (port, server) = tls_server(&cert);
    let rill = start_probe(
        &format!("tls_client:\n  ca_file: {}\n", cert.cert.display()),
        port,
    );
    let log = wait_for(Duration::from_secs(10), || {
        let log = rill.log();
        log.contains("tls reply:").then_some(log)
    })
    .unwrap_or_else(|| panic!("no TLS answer:\n{}", rill.log()));
    assert!(log.contains("tls reply: hi from the server"), "{log}");
    assert_eq!(server.join().unwrap().as_deref(), Some("hello over tls\n"));

    // Without the CA, the server's certificate is refused.
    let (port, _server) = tls_server(&cert);
    let rill = start_probe("", port);
    let log = wait_for(Duration::from_secs(10), || {
        let log = rill.log();
        log.contains("tls connect ended").then_some(log)
    })
    .unwrap_or_else(|| panic!("no TLS failure:\n{}", rill.log()));
    assert!(!log.contains("tls reply"), "{log}");
    assert!(log.to_lowercase().contains("certificate"), "{log}");
}
