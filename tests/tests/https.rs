//! HTTPS (`http.tls`): the API through curl, HTTP-FLV through ffprobe and
//! ffmpeg, WS-FLV through a rustls + tungstenite client, all verifying a
//! self-signed certificate made by rcgen; clients that never complete a
//! handshake; a renewed certificate taken on SIGHUP; `--check-config`.
//! As in http.rs, ffmpeg publishes through the C template plugin (FLV over
//! TCP).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rill_e2e::*;
use rustls::pki_types::{CertificateDer, ServerName};

struct Server {
    rill: Rill,
    ingest: u16,
    /// The `plugins:` section it runs with.
    plugins_yaml: String,
    tls_port: u16,
    cert: TestCert,
    _certs: tempfile::TempDir,
}

/// Rill with HTTPS on a port of its own, set through the environment
/// (RILL_HTTP_TLS_*), and the template plugin taking FLV on `ingest`.
fn start() -> Server {
    let certs = tempfile::tempdir().unwrap();
    let cert = make_cert(certs.path(), "a");
    let (ingest, play, tls_port) = (free_port(), free_port(), free_port());
    let yaml = format!(
        "plugins:\n  flvtcp:\n    ingest: 127.0.0.1:{ingest}\n    play: 127.0.0.1:{play}\n    stream: live/test\n"
    );
    let listen = format!("127.0.0.1:{tls_port}");
    let rill = Rill::start_with_env(
        &yaml,
        &[
            build_template("1.0.0", false),
            target_dir().join("librill_plugin_flv.so"),
        ],
        &[
            ("RILL_HTTP_TLS_LISTEN", &listen),
            ("RILL_HTTP_TLS_CERT", cert.cert.to_str().unwrap()),
            ("RILL_HTTP_TLS_KEY", cert.key.to_str().unwrap()),
        ],
    );
    assert!(
        wait_port(tls_port, Duration::from_secs(10)),
        "{}",
        rill.log()
    );
    assert!(wait_port(ingest, Duration::from_secs(10)), "{}", rill.log());
    Server {
        rill,
        ingest,
        plugins_yaml: yaml,
        tls_port,
        cert,
        _certs: certs,
    }
}

fn publish(s: &Server, secs: u32) -> std::process::Child {
    publish_flvtcp(s.ingest, secs)
}

fn wait_publishing(s: &Server) {
    rill_e2e::wait_publishing(&s.rill, "live/test");
}

/// `curl --cacert`: (exit code, body).
fn curl(ca: &Path, url: &str) -> (i32, String) {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "5", "--cacert"])
        .arg(ca)
        .arg(url)
        .output()
        .expect("run curl (scripts/install-deps installs it)");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

/// A blocking rustls client trusting only `ca`, offering http/1.1 by ALPN.
fn tls_connect(
    port: u16,
    ca: &CertificateDer<'static>,
) -> rustls::StreamOwned<rustls::ClientConnection, TcpStream> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.clone()).unwrap();
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let tcp = TcpStream::connect(("127.0.0.1", port)).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut s = rustls::StreamOwned::new(conn, tcp);
    while s.conn.is_handshaking() {
        s.conn.complete_io(&mut s.sock).expect("TLS handshake");
    }
    s
}

/// Whether a read saw the peer close (EOF or reset), not a timeout.
fn closed(r: &std::io::Result<usize>) -> bool {
    match r {
        Ok(_) => true,
        Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
    }
}

fn metric(s: &Server, name: &str) -> u64 {
    let (_, text) = s.rill.get("/metrics");
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in\n{text}"))
}

#[test]
fn api_and_http_flv_over_https() {
    let s = start();
    let base = format!("https://127.0.0.1:{}", s.tls_port);

    // The API, with curl verifying the certificate; plain HTTP still serves.
    let (code, body) = curl(&s.cert.cert, &format!("{base}/api/v1/server"));
    assert_eq!(code, 0, "{body}");
    let v: serde_json::Value =
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
    assert_eq!(v["name"], "rill", "{body}");
    assert_eq!(s.rill.get_json("/api/v1/server")["name"], "rill");
    // An unknown CA is refused by curl: the server really presents ours.
    let other = tempfile::tempdir().unwrap();
    let stranger = make_cert(other.path(), "b");
    let (code, body) = curl(&stranger.cert, &format!("{base}/api/v1/server"));
    assert_eq!(code, 60, "curl: expected a certificate error, got {body}");

    // HTTP-FLV through ffprobe and ffmpeg (GnuTLS), verifying the certificate.
    let mut pubr = publish(&s, 14);
    wait_publishing(&s);
    let url = format!("{base}/live/test.flv");
    let ca = s.cert.cert.to_str().unwrap();
    let tls_opts = ["-tls_verify", "1", "-ca_file", ca];
    let streams = probe(&url, &tls_opts);
    assert!(
        streams.contains(&("video".into(), "h264".into())),
        "{streams:?}\n{}",
        s.rill.log()
    );
    assert!(
        streams.contains(&("audio".into(), "aac".into())),
        "{streams:?}"
    );
    // GnuTLS really verifies: a stranger's CA gets nothing.
    let strange = [
        "-tls_verify",
        "1",
        "-ca_file",
        stranger.cert.to_str().unwrap(),
    ];
    assert_eq!(probe(&url, &strange), vec![]);
    let d = play(false, &url, 6, &tls_opts);
    let video = d.count(0);
    assert!(
        (145..=180).contains(&video),
        "decoded {video} frames in 6 s: {}",
        d.stderr
    );
    assert!(d.count(1) > 200, "audio frames: {}", d.count(1));
    assert!(d.monotonic(0) && d.monotonic(1), "non-monotonic timestamps");

    // curl, ffprobe and ffmpeg made it through the handshake; the refusals
    // of the stranger's certificate count as failures there too.
    let ok = metric(&s, "rill_tls_handshakes_total");
    assert!(ok >= 3, "{ok} handshakes");
    let failed = metric(&s, "rill_tls_handshake_failures_total");
    assert!(failed >= 2, "{failed} failed handshakes");
    let _ = pubr.kill();
    let _ = pubr.wait();
}

/// WS-FLV as wss://: the upgrade works through TLS, ALPN picks http/1.1,
/// and the messages are FLV.
#[test]
fn ws_flv_over_wss() {
    let s = start();
    let mut pubr = publish(&s, 10);
    wait_publishing(&s);
    let tls = tls_connect(s.tls_port, &s.cert.der);
    assert_eq!(tls.conn.alpn_protocol(), Some(&b"http/1.1"[..]));
    let url = format!("wss://127.0.0.1:{}/live/test.flv", s.tls_port);
    let (mut ws, resp) = tungstenite::client(url.as_str(), tls).expect("wss handshake");
    assert_eq!(resp.status().as_u16(), 101);
    let mut stream = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(4);
    while Instant::now() < deadline {
        match ws.read() {
            Ok(tungstenite::Message::Binary(b)) => stream.extend_from_slice(&b),
            Ok(_) => {}
            Err(e) => panic!("wss read: {e}"),
        }
    }
    assert_eq!(&stream[..3], b"FLV");
    let (mut pos, mut video, mut audio) = (13, 0, 0);
    while pos + 11 <= stream.len() {
        let size =
            u32::from_be_bytes([0, stream[pos + 1], stream[pos + 2], stream[pos + 3]]) as usize;
        if pos + 11 + size + 4 > stream.len() {
            break;
        }
        match stream[pos] {
            9 => video += 1,
            8 => audio += 1,
            18 => {}
            t => panic!("tag type {t} at {pos}"),
        }
        pos += 11 + size + 4;
    }
    assert!(video > 60 && audio > 100, "video {video} audio {audio}");
    let _ = pubr.kill();
    let _ = pubr.wait();
}

/// Plain HTTP sent to the TLS port is closed at once; a client that says
/// nothing is closed after the handshake timeout (10 s); meanwhile HTTPS
/// requests are served without delay.
#[test]
fn clients_without_a_handshake_are_closed_alone() {
    let s = start();
    let mut silent = TcpStream::connect(("127.0.0.1", s.tls_port)).unwrap();
    let silent_since = Instant::now();
    // Half a ClientHello record, then nothing.
    let mut partial = TcpStream::connect(("127.0.0.1", s.tls_port)).unwrap();
    partial
        .write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01])
        .unwrap();

    let mut garbage = TcpStream::connect(("127.0.0.1", s.tls_port)).unwrap();
    garbage
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let t = Instant::now();
    garbage
        .write_all(b"GET /api/v1/server HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut buf = Vec::new();
    let r = garbage.read_to_end(&mut buf);
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "{r:?} after {:?}",
        t.elapsed()
    );
    assert!(closed(&r), "{r:?}");
    assert!(
        !String::from_utf8_lossy(&buf).contains("HTTP/1.1"),
        "answered in clear: {buf:?}"
    );

    // With both stalled handshakes pending, HTTPS answers at once.
    for _ in 0..3 {
        let t = Instant::now();
        let (code, body) = curl(
            &s.cert.cert,
            &format!("https://127.0.0.1:{}/api/v1/server", s.tls_port),
        );
        assert_eq!(code, 0, "{body}");
        assert!(body.contains("\"rill\""), "{body}");
        assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    }

    // The silent and the partial client are closed by the handshake timeout.
    for (name, c) in [("silent", &mut silent), ("partial", &mut partial)] {
        c.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
        let r = c.read(&mut [0u8; 64]);
        let waited = silent_since.elapsed();
        assert!(closed(&r), "{name}: {r:?} after {waited:?}");
        assert!(
            (Duration::from_secs(9)..Duration::from_secs(14)).contains(&waited),
            "{name} closed after {waited:?}"
        );
    }
    assert!(metric(&s, "rill_tls_handshake_failures_total") >= 3);
    assert!(metric(&s, "rill_tls_handshakes_total") >= 3);
}

/// A renewed certificate, written over the same files, is used by new
/// connections after SIGHUP, without a restart; an HTTP-FLV player
/// connected before keeps playing.
#[test]
fn renewed_certificate_is_taken_on_sighup() {
    let s = start();
    let mut pubr = publish(&s, 12);
    wait_publishing(&s);
    let base = format!("https://127.0.0.1:{}", s.tls_port);

    // A player on the old certificate.
    let mut old = tls_connect(s.tls_port, &s.cert.der);
    write!(old, "GET /live/test.flv HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut buf = vec![0u8; 16384];
    old.read_exact(&mut buf).unwrap();

    // Renew: new key and certificate over the same paths.
    let tmp = tempfile::tempdir().unwrap();
    let first = tmp.path().join("first.crt");
    std::fs::copy(&s.cert.cert, &first).unwrap();
    let renewed = make_cert(tmp.path(), "renewed");
    std::fs::copy(&renewed.cert, &s.cert.cert).unwrap();
    std::fs::copy(&renewed.key, &s.cert.key).unwrap();
    let st = Command::new("kill")
        .args(["-HUP", &s.rill.child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let url = format!("{base}/api/v1/server");
    wait_for(Duration::from_secs(5), || {
        (curl(&renewed.cert, &url).0 == 0).then_some(())
    })
    .unwrap_or_else(|| panic!("renewed certificate not served:\n{}", s.rill.log()));
    assert!(
        s.rill.log().contains("HTTPS certificate loaded"),
        "{}",
        s.rill.log()
    );
    // The first certificate no longer verifies.
    assert_eq!(curl(&first, &url).0, 60, "old certificate still served");

    // The player from before keeps receiving.
    let mut more = 0;
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(2) {
        more += old.read(&mut buf).expect("old player cut");
    }
    assert!(more > 10_000, "old player got {more} bytes in 2 s");

    // Moving HTTPS or turning it off takes a restart, and says so.
    let put = |tls: &str| {
        let body = format!(
            "plugins_dir: {}\nstate_dir: {}\nhttp:\n  listen: 127.0.0.1:{}\n{tls}{}",
            s.rill.plugins_dir().display(),
            s.rill.dir.path().join("state").display(),
            s.rill.http_port,
            s.plugins_yaml
        );
        let (st, _, body) = http_request(s.rill.http_port, "PUT", "/api/v1/config", None, &body);
        assert_eq!(st, 200, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        v["restart_required"].clone()
    };
    let files = format!(
        "    cert: {}\n    key: {}\n",
        s.cert.cert.display(),
        s.cert.key.display()
    );
    let moved = format!("  tls:\n    listen: 127.0.0.1:{}\n{files}", free_port());
    assert_eq!(put(&moved), serde_json::json!(["http.tls.listen"]));
    assert_eq!(put(""), serde_json::json!(["http.tls"]));
    assert_eq!(
        curl(&renewed.cert, &url).0,
        0,
        "HTTPS stopped before a restart"
    );
    let _ = pubr.kill();
    let _ = pubr.wait();
}

/// `--check-config` names the key and the file of a missing or bad
/// certificate.
#[test]
fn check_config_reports_bad_certificate_files() {
    let dir = tempfile::tempdir().unwrap();
    let cert = make_cert(dir.path(), "a");
    std::fs::create_dir_all(dir.path().join("plugins")).unwrap();
    let check = |tls: &str| {
        let cfg = dir.path().join("rill.yaml");
        std::fs::write(
            &cfg,
            format!(
                "plugins_dir: {}\nhttp:\n  tls:\n{tls}",
                dir.path().join("plugins").display()
            ),
        )
        .unwrap();
        let out = Command::new(target_dir().join("rill"))
            .arg("--check-config")
            .arg(&cfg)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, err) = check(&format!(
        "    cert: {}/missing.crt\n    key: {}\n",
        dir.path().display(),
        cert.key.display()
    ));
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("http.tls.cert: cannot read") && err.contains("missing.crt"),
        "{err}"
    );
    let (code, err) = check(&format!(
        "    cert: {}\n    key: {}\n",
        cert.key.display(),
        cert.key.display()
    ));
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("http.tls.cert: no PEM certificate"), "{err}");
    let (code, err) = check(&format!("    cert: {}\n", cert.cert.display()));
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("http.tls.key: must be set"), "{err}");
    let (code, err) = check(&format!(
        "    cert: {}\n    key: {}\n",
        cert.cert.display(),
        cert.key.display()
    ));
    assert_eq!(code, Some(0), "{err}");
}
