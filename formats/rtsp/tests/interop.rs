//! Real clients against a tiny server built from [`ServerSession`] over a
//! std `TcpStream`: ffmpeg publishing (ANNOUNCE/SETUP/RECORD, RTP
//! interleaved or over UDP), ffprobe and GStreamer's rtspsrc playing
//! (DESCRIBE/SETUP/PLAY with a canned SDP, RTP interleaved or over UDP);
//! and [`rill_rtsp::ClientSession`] publishing to ffmpeg's RTSP listener.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rill_rtsp::{
    Event, Limits, Lower, Method, Reader, ServerSession, Settings, SetupAnswer, TrackStart,
};
use rill_testsupport::{require_tool, runs};

fn have(tool: &str, test: &str) -> bool {
    let missing = (!runs(tool, &["-version"])).then(|| format!("{tool} -version failed"));
    require_tool(test, tool, missing)
}

/// What the server saw.
#[derive(Debug, Default)]
struct Log {
    /// Methods in order, as read from the wire.
    methods: Vec<Method>,
    /// Statuses answered.
    statuses: Vec<u16>,
    /// Interleaved frames received per channel.
    frames: [usize; 4],
    /// Datagrams received on the server's RTP ports, per track set up.
    datagrams: Vec<usize>,
    announced_sdp: String,
    /// Why the server session failed, if it did.
    error: Option<String>,
    setup_transports: Vec<String>,
}

/// Serves one connection until it closes or `deadline`.
fn serve(mut sock: TcpStream, sdp: &'static str, deadline: Duration) -> Log {
    let start = Instant::now();
    let now = || start.elapsed().as_micros() as u64;
    let mut s = ServerSession::new(Limits::default(), Settings::default(), 0);
    let mut log = Log::default();
    // A reader of our own over the same bytes, for the methods.
    let mut seen = Reader::new(Limits::default());
    let mut out_seen = Reader::new(Limits::default());
    sock.set_read_timeout(Some(Duration::from_millis(20)))
        .unwrap();
    let mut buf = vec![0u8; 65536];
    let mut playing: Option<(String, Vec<usize>)> = None;
    let mut udp_targets: Vec<(UdpSocket, u16)> = Vec::new();
    let mut sent = 0u16;
    while start.elapsed() < deadline {
        match sock.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                let mut d = &buf[..n];
                while !d.is_empty() {
                    let k = seen.push(d);
                    d = &d[k..];
                    while let Ok(Some(item)) = seen.next_item() {
                        match item {
                            rill_rtsp::Item::Request(r) => log.methods.push(r.method),
                            rill_rtsp::Item::Interleaved { channel, .. } if channel < 4 => {
                                log.frames[usize::from(channel)] += 1
                            }
                            _ => {}
                        }
                    }
                }
                if let Err(e) = s.feed(now(), &buf[..n]) {
                    log.error = Some(format!(
                        "{e}: {:?}",
                        String::from_utf8_lossy(&buf[..n.min(300)])
                    ));
                    break;
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => break,
        }
        s.handle_timeout(now());
        while let Some(ev) = s.poll_event() {
            match ev {
                Event::Announce { request, sdp, .. } => {
                    log.announced_sdp = String::from_utf8_lossy(&sdp).into_owned();
                    s.accept_announce(request).unwrap();
                }
                Event::Describe { request, .. } => s.answer_describe(request, sdp).unwrap(),
                Event::Setup {
                    request, transport, ..
                } => {
                    log.setup_transports.push(transport.to_string());
                    let server_port = if transport.lower == Lower::Udp {
                        let u = UdpSocket::bind("127.0.0.1:0").unwrap();
                        u.set_nonblocking(true).unwrap();
                        let port = u.local_addr().unwrap().port();
                        log.datagrams.push(0);
                        udp_targets.push((u, transport.client_port.unwrap().0));
                        Some((port, port + 1))
                    } else {
                        None
                    };
                    s.accept_setup(
                        request,
                        SetupAnswer {
                            server_port,
                            ssrc: None,
                        },
                    )
                    .unwrap();
                }
                Event::Play {
                    request,
                    session,
                    tracks,
                    ..
                } => {
                    let starts: Vec<_> = tracks
                        .iter()
                        .map(|&t| TrackStart {
                            track: t,
                            seq: 0,
                            rtptime: 0,
                        })
                        .collect();
                    s.accept_play(request, None, &starts).unwrap();
                    playing = Some((session, tracks));
                }
                Event::Record { request, .. } => s.accept_record(request).unwrap(),
                _ => {}
            }
        }
        // A publisher's RTP over UDP.
        for (i, (u, _)) in udp_targets.iter().enumerate() {
            let mut d = [0u8; 2048];
            while u.recv_from(&mut d).is_ok() {
                log.datagrams[i] += 1;
            }
        }
        // A player gets PCMU/PCMA packets (20 ms of silence each).
        if let Some((session, tracks)) = &playing {
            for _ in 0..5 {
                for (i, &t) in tracks.iter().enumerate() {
                    let pt = if t == 0 { 0u8 } else { 8 };
                    let mut p = vec![0x80, pt];
                    p.extend_from_slice(&sent.to_be_bytes());
                    p.extend_from_slice(&(u32::from(sent) * 160).to_be_bytes());
                    p.extend_from_slice(&(0x1000 + t as u32).to_be_bytes());
                    p.resize(12 + 160, 0xFF);
                    match s.channels(session, t) {
                        Some((c, _)) => s.send_interleaved(c, Bytes::from(p)).unwrap(),
                        None => {
                            if let Some((u, port)) = udp_targets.get(i) {
                                let _ = u.send_to(&p, ("127.0.0.1", *port));
                            }
                        }
                    }
                }
                sent = sent.wrapping_add(1);
            }
        }
        while let Some(b) = s.poll_transmit() {
            let k = out_seen.push(&b);
            assert_eq!(k, b.len());
            while let Ok(Some(item)) = out_seen.next_item() {
                if let rill_rtsp::Item::Response(r) = item {
                    log.statuses.push(r.status);
                }
            }
            if sock.write_all(&b).is_err() {
                return log;
            }
        }
    }
    log
}

fn listen() -> (TcpListener, u16) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    (l, port)
}

fn ffmpeg_publishes(transport: &str, test: &str) {
    if !have("ffmpeg", test) {
        return;
    }
    let (l, port) = listen();
    let server = thread::spawn(move || {
        let (sock, _) = l.accept().unwrap();
        serve(sock, "", Duration::from_secs(15))
    });
    let status = Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-re",
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=160x120:rate=25",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=44100",
            "-t",
            "1.5",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-g",
            "25",
            "-c:a",
            "aac",
            "-f",
            "rtsp",
            "-rtsp_transport",
            transport,
        ])
        .arg(format!("rtsp://127.0.0.1:{port}/live/x"))
        .stdin(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let log = server.join().unwrap();
    let m = &log.methods;
    let start = usize::from(m.first() == Some(&Method::Options));
    assert_eq!(
        &m[start..start + 4],
        &[
            Method::Announce,
            Method::Setup,
            Method::Setup,
            Method::Record
        ],
        "{m:?}"
    );
    assert!(log.statuses.iter().all(|&s| s == 200), "{:?}", log.statuses);
    assert!(
        log.announced_sdp.contains("m=video") && log.announced_sdp.contains("m=audio"),
        "{}",
        log.announced_sdp
    );
    // 1.5 s of 25 fps video (a packet or more per frame) and AAC (several
    // frames per packet).
    let (video, audio) = if transport == "tcp" {
        assert_eq!(
            log.setup_transports,
            [
                "RTP/AVP/TCP;unicast;interleaved=0-1;mode=record",
                "RTP/AVP/TCP;unicast;interleaved=2-3;mode=record"
            ]
        );
        (log.frames[0], log.frames[2])
    } else {
        assert!(
            log.setup_transports
                .iter()
                .all(|t| t.starts_with("RTP/AVP;unicast;client_port=")
                    && t.ends_with(";mode=record")),
            "{:?}",
            log.setup_transports
        );
        (log.datagrams[0], log.datagrams[1])
    };
    assert!(video >= 20 && audio >= 5, "{video} {audio}");
    assert_eq!(m.last(), Some(&Method::Teardown), "{m:?}");
}

#[test]
fn ffmpeg_publishes_over_tcp() {
    ffmpeg_publishes("tcp", "ffmpeg_publishes_over_tcp");
}

#[test]
fn ffmpeg_publishes_over_udp() {
    ffmpeg_publishes("udp", "ffmpeg_publishes_over_udp");
}

const PLAY_SDP: &str = "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=Rill\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\na=control:*\r\nm=audio 0 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=control:trackID=0\r\nm=audio 0 RTP/AVP 8\r\na=rtpmap:8 PCMA/8000\r\na=control:trackID=1\r\n";

fn ffprobe_plays(transport: &str, test: &str) {
    if !have("ffprobe", test) {
        return;
    }
    let (l, port) = listen();
    let server = thread::spawn(move || {
        let (sock, _) = l.accept().unwrap();
        serve(sock, PLAY_SDP, Duration::from_secs(15))
    });
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-rtsp_transport",
            transport,
            "-show_entries",
            "stream=codec_name",
            "-of",
            "csv=p=0",
        ])
        .arg(format!("rtsp://127.0.0.1:{port}/live/x"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(text.lines().collect::<Vec<_>>(), ["pcm_mulaw", "pcm_alaw"]);
    let log = server.join().unwrap();
    let m = &log.methods;
    let start = usize::from(m.first() == Some(&Method::Options));
    assert_eq!(
        &m[start..start + 4],
        &[Method::Describe, Method::Setup, Method::Setup, Method::Play],
        "{m:?}"
    );
    assert!(log.statuses.iter().all(|&s| s == 200), "{:?}", log.statuses);
    assert_eq!(m.last(), Some(&Method::Teardown), "{m:?}");
}

#[test]
fn ffprobe_plays_over_tcp() {
    ffprobe_plays("tcp", "ffprobe_plays_over_tcp");
}

#[test]
fn ffprobe_plays_over_udp() {
    ffprobe_plays("udp", "ffprobe_plays_over_udp");
}

/// Our client publishing to ffmpeg's RTSP listener (`-rtsp_flags listen`):
/// OPTIONS, ANNOUNCE, SETUP (interleaved), RECORD, PCMU packets, TEARDOWN;
/// ffmpeg decodes them and ends with the stream.
#[test]
fn client_publishes_to_ffmpeg_listener() {
    use rill_rtsp::{ClientEvent, ClientSession, ClientSettings, SetupTrack};
    if !have("ffmpeg", "client_publishes_to_ffmpeg_listener") {
        return;
    }
    // A free port below the ephemeral range, so that no other test's
    // port-0 listener takes it between the check and ffmpeg's bind.
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let port = (0..1000u32)
        .map(|k| 20_000 + ((seed / 7 + k * 7919) % 10_000) as u16)
        .find(|&p| TcpListener::bind(("127.0.0.1", p)).is_ok())
        .unwrap();
    let url = format!("rtsp://127.0.0.1:{port}/live/x");
    let ffmpeg = Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-rtsp_flags",
            "listen",
            "-i",
            &url,
            "-f",
            "s16le",
            "pipe:1",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let mut sock = loop {
        match TcpStream::connect(("127.0.0.1", port)) {
            Ok(s) => break s,
            Err(_) if start.elapsed() < Duration::from_secs(5) => {
                thread::sleep(Duration::from_millis(20))
            }
            Err(e) => panic!("ffmpeg does not listen: {e}"),
        }
    };
    sock.set_read_timeout(Some(Duration::from_millis(20)))
        .unwrap();
    let now = || start.elapsed().as_micros() as u64;
    let sdp = "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=Rill\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 0 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=control:trackID=0\r\n";
    let track = SetupTrack {
        control: "trackID=0".into(),
        lower: Lower::Tcp,
        client_port: None,
    };
    let mut c = ClientSession::publish(
        ClientSettings {
            url,
            ..ClientSettings::default()
        },
        sdp.into(),
        vec![track],
        now(),
    )
    .unwrap();
    let mut events = Vec::new();
    let mut buf = vec![0u8; 65536];
    let mut closed = false;
    while !closed && start.elapsed() < Duration::from_secs(10) {
        while let Some(b) = c.poll_transmit() {
            sock.write_all(&b).unwrap();
        }
        match sock.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => c.feed(now(), &buf[..n]).unwrap(),
            Err(_) => {}
        }
        c.handle_timeout(now());
        while let Some(ev) = c.poll_event() {
            match &ev {
                ClientEvent::Recording => {
                    for seq in 0..100u16 {
                        let mut p = vec![0x80, 0];
                        p.extend_from_slice(&seq.to_be_bytes());
                        p.extend_from_slice(&(u32::from(seq) * 160).to_be_bytes());
                        p.extend_from_slice(&0x0102_0304u32.to_be_bytes());
                        p.resize(12 + 160, 0xFF);
                        c.send_interleaved(0, Bytes::from(p)).unwrap();
                    }
                    c.teardown();
                }
                ClientEvent::Closed | ClientEvent::Refused { .. } | ClientEvent::TimedOut => {
                    closed = true
                }
                _ => {}
            }
            events.push(ev);
        }
    }
    while let Some(b) = c.poll_transmit() {
        let _ = sock.write_all(&b);
    }
    drop(sock);
    let out = ffmpeg.wait_with_output().unwrap();
    assert!(
        matches!(&events[0], ClientEvent::SetUp { track: 0, transport } if transport.interleaved == Some((0, 1))),
        "{events:?}"
    );
    assert_eq!(
        events[1..],
        [ClientEvent::Recording, ClientEvent::Closed],
        "{events:?}"
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

const ONE_TRACK_SDP: &str = "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=Rill\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\nm=audio 0 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=control:trackID=0\r\n";

fn gstreamer_plays(protocol: &str, test: &str) {
    let missing = (!runs("gst-inspect-1.0", &["rtspsrc"])).then(|| "no rtspsrc".to_string());
    if !require_tool(test, "gst-launch-1.0 with rtspsrc", missing) {
        return;
    }
    let (l, port) = listen();
    let server = thread::spawn(move || {
        let (sock, _) = l.accept().unwrap();
        serve(sock, ONE_TRACK_SDP, Duration::from_secs(15))
    });
    let out = Command::new("timeout")
        .args(["10", "gst-launch-1.0", "-q", "rtspsrc"])
        .env(
            "GST_DEBUG",
            std::env::var("RILL_GST_DEBUG").unwrap_or_default(),
        )
        .arg(format!("location=rtsp://127.0.0.1:{port}/live/x"))
        .arg(format!("protocols={protocol}"))
        .args([
            "latency=0",
            "!",
            "rtppcmudepay",
            "!",
            "fakesink",
            "num-buffers=50",
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let log = server.join().unwrap();
    // The pipeline ends when fakesink had its 50 buffers. On the way down
    // rtspsrc may interrupt its own PAUSE with a flush (a race inside
    // GStreamer, "Could not send message" from gst_rtspsrc_pause, then the
    // TEARDOWN goes out fine): that alone is not a failure here.
    let err = String::from_utf8_lossy(&out.stderr);
    let own_race = err
        .lines()
        .filter(|l| l.contains(".c("))
        .all(|l| l.contains("gst_rtspsrc_pause") || l.contains("gst_rtspsrc_try_send"));
    assert!(
        out.status.success() || (out.status.code() == Some(1) && own_race),
        "{}{err} {log:?}",
        String::from_utf8_lossy(&out.stdout)
    );
    let m = &log.methods;
    let start = usize::from(m.first() == Some(&Method::Options));
    assert_eq!(
        &m[start..start + 3],
        &[Method::Describe, Method::Setup, Method::Play],
        "{m:?}"
    );
    assert!(log.statuses.iter().all(|&s| s == 200), "{:?}", log.statuses);
    assert_eq!(m.last(), Some(&Method::Teardown), "{m:?}");
}

#[test]
fn gstreamer_plays_over_tcp() {
    gstreamer_plays("tcp", "gstreamer_plays_over_tcp");
}

#[test]
fn gstreamer_plays_over_udp() {
    gstreamer_plays("udp", "gstreamer_plays_over_udp");
}
