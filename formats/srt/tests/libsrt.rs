//! Interop with libsrt through ffmpeg (Debian's build links it): ffmpeg
//! publishes MPEG-TS to a listener driven by this crate over a real UDP
//! socket, and reads what this crate sends; with and without a passphrase.

use std::net::{SocketAddr, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rill_srt::{Answer, Config, Connection, Listener};

fn ffmpeg() -> Command {
    let mut c = Command::new("ffmpeg");
    c.args(["-hide_banner", "-loglevel", "error", "-nostdin"]);
    c.stdout(Stdio::null());
    c
}

struct Kill(Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn now(t0: Instant) -> u64 {
    t0.elapsed().as_micros() as u64
}

/// Serves one caller on `sock`; returns the connection once it is up, plus
/// the stream id.
fn accept(sock: &UdpSocket, listener: &Listener, t0: Instant) -> (Connection, SocketAddr, String) {
    let mut buf = [0u8; 2048];
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        let Ok((n, from)) = sock.recv_from(&mut buf) else {
            continue;
        };
        match listener.handle(now(t0), from, &buf[..n]) {
            Answer::Reply(b) => {
                sock.send_to(&b, from).unwrap();
            }
            Answer::Conclusion(p) => {
                let sid = p.stream_id.clone();
                let (conn, resp) = p.accept(0x1234, now(t0));
                sock.send_to(&resp, from).unwrap();
                return (conn, from, sid);
            }
            Answer::Ignore(why) => panic!("ignored a handshake: {why}"),
        }
    }
    panic!("no caller");
}

fn pump(sock: &UdpSocket, conn: &mut Connection, peer: SocketAddr, t0: Instant) {
    conn.tick(now(t0));
    while let Some(d) = conn.poll_transmit() {
        sock.send_to(&d, peer).unwrap();
    }
}

fn publish_into_listener(passphrase: Option<&str>) {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(5)))
        .unwrap();
    let port = sock.local_addr().unwrap().port();
    let listener = Listener::new(Config {
        passphrase: passphrase.map(String::from),
        ..Config::default()
    })
    .unwrap();
    let mut url = format!("srt://127.0.0.1:{port}?streamid=publish:live/x&latency=120000");
    if let Some(p) = passphrase {
        url += &format!("&passphrase={p}&pbkeylen=32");
    }
    let _ff = Kill(
        ffmpeg()
            .args(["-re", "-f", "lavfi", "-i", "testsrc=size=160x120:rate=25"])
            .args([
                "-t", "3", "-c:v", "libx264", "-g", "25", "-f", "mpegts", &url,
            ])
            .spawn()
            .unwrap(),
    );
    let t0 = Instant::now();
    let (mut conn, peer, sid) = accept(&sock, &listener, t0);
    assert_eq!(sid, "publish:live/x");
    assert_eq!(conn.settings().keys.is_some(), passphrase.is_some());
    let mut buf = [0u8; 2048];
    let mut ts = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(15);
    while conn.closed().is_none() && Instant::now() < deadline {
        if let Ok((n, from)) = sock.recv_from(&mut buf) {
            assert_eq!(from, peer);
            conn.handle(now(t0), &buf[..n]).unwrap();
        }
        while let Some(p) = conn.poll_deliver(now(t0)) {
            ts.extend_from_slice(&p);
        }
        pump(&sock, &mut conn, peer, t0);
    }
    assert!(
        conn.closed().is_some(),
        "ffmpeg's shutdown ends the connection"
    );
    assert!(ts.len() > 188 * 100, "got {} bytes", ts.len());
    assert_eq!(ts.len() % 188, 0);
    assert!(ts.chunks(188).all(|p| p[0] == 0x47), "TS sync bytes");
    let stats = conn.stats();
    assert_eq!(stats.recv_undecryptable, 0);
}

#[test]
fn ffmpeg_publishes_to_listener() {
    publish_into_listener(None);
}

#[test]
fn ffmpeg_publishes_encrypted() {
    publish_into_listener(Some("correct horse battery"));
}

#[test]
fn wrong_passphrase_is_refused() {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(5)))
        .unwrap();
    let port = sock.local_addr().unwrap().port();
    let listener = Listener::new(Config {
        passphrase: Some("the right passphrase".into()),
        ..Config::default()
    })
    .unwrap();
    let url =
        format!("srt://127.0.0.1:{port}?streamid=publish:live/x&passphrase=a_wrong_passphrase");
    let ff = ffmpeg()
        .args([
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=160x120:rate=25",
            "-t",
            "1",
        ])
        .args(["-c:v", "libx264", "-f", "mpegts", &url])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    let mut buf = [0u8; 2048];
    let mut refused = false;
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline && !refused {
        if let Ok((n, from)) = sock.recv_from(&mut buf) {
            match listener.handle(now(t0), from, &buf[..n]) {
                Answer::Reply(b) => {
                    refused = rill_srt::handshake::Handshake::parse(&b[16..])
                        .unwrap()
                        .rejection()
                        == Some(rill_srt::handshake::reject::BAD_SECRET);
                    sock.send_to(&b, from).unwrap();
                }
                Answer::Conclusion(_) => panic!("accepted a wrong passphrase"),
                Answer::Ignore(_) => {}
            }
        }
    }
    assert!(refused);
    let out = ff.wait_with_output().unwrap();
    assert!(!out.status.success());
}

#[test]
fn ffmpeg_reads_from_listener() {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(2)))
        .unwrap();
    let port = sock.local_addr().unwrap().port();
    let listener = Listener::new(Config::default()).unwrap();
    // A TS file to send, made by ffmpeg.
    let dir = std::env::temp_dir().join(format!("rill-srt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let src = dir.join("src.ts");
    let st = ffmpeg()
        .args([
            "-y",
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=160x120:rate=25",
            "-t",
            "2",
        ])
        .args(["-c:v", "libx264", "-g", "25", "-f", "mpegts"])
        .arg(&src)
        .status()
        .unwrap();
    assert!(st.success());
    let ts = std::fs::read(&src).unwrap();
    let out = dir.join("out.ts");
    let url = format!("srt://127.0.0.1:{port}?streamid=read:live/x&latency=120000");
    let mut ff = Kill(
        ffmpeg()
            .args(["-y", "-i", &url, "-c", "copy", "-f", "mpegts"])
            .arg(&out)
            .spawn()
            .unwrap(),
    );
    let t0 = Instant::now();
    let (mut conn, peer, _) = accept(&sock, &listener, t0);
    let mut buf = [0u8; 2048];
    // The TS paced over ~2 s (7 packets per datagram), then 1.5 s more for
    // ffmpeg to drain before the SHUTDOWN.
    let chunks: Vec<&[u8]> = ts.chunks(188 * 7).collect();
    let step = 2_000_000 / chunks.len() as u64;
    let mut i = 0;
    let mut done_at = None;
    let end = Instant::now() + Duration::from_secs(20);
    while Instant::now() < end {
        while i < chunks.len() && now(t0) >= i as u64 * step {
            conn.send(now(t0), chunks[i]).unwrap();
            i += 1;
        }
        if let Ok((n, _)) = sock.recv_from(&mut buf) {
            conn.handle(now(t0), &buf[..n]).unwrap();
        }
        pump(&sock, &mut conn, peer, t0);
        if i == chunks.len() && conn.send_backlog() == 0 {
            let at = *done_at.get_or_insert_with(Instant::now);
            if at.elapsed() > Duration::from_millis(1500) {
                break;
            }
        }
    }
    assert_eq!(conn.send_backlog(), 0, "everything acknowledged");
    conn.close(now(t0));
    pump(&sock, &mut conn, peer, t0);
    // ffmpeg ends on the SHUTDOWN (reporting it as an I/O error).
    let _ = ff.0.wait();
    let probe = Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-select_streams", "v:0"])
        .args([
            "-show_entries",
            "stream=codec_name,nb_read_frames",
            "-of",
            "csv=p=0",
        ])
        .arg(&out)
        .output()
        .unwrap();
    // The stream shows once per program and once on its own: the first line.
    let probe = String::from_utf8_lossy(&probe.stdout);
    let probe = probe.lines().next().unwrap_or("").trim();
    assert_eq!(probe, "h264,50", "what ffmpeg received over SRT");
    let _ = std::fs::remove_dir_all(&dir);
}
