//! RTSP with real clients, TCP interleaved and UDP: RTMP in → RTSP out to
//! ffmpeg, ffprobe and GStreamer; RTSP in (ffmpeg's ANNOUNCE/RECORD) →
//! RTMP, HTTP-FLV and RTSP out; a token required for play.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rill_e2e::rtmp::{self, Guard};
use rill_e2e::*;

struct Server {
    rill: Rill,
    rtsp: u16,
    rtmp: u16,
}

impl Server {
    fn start(global: &str) -> Server {
        Server::start_with_rtp_port(global, free_port_pair())
    }

    fn start_with_rtp_port(global: &str, rtp: u16) -> Server {
        let (port, rtmp) = (free_port(), free_port());
        let yaml = format!(
            "{global}\nplugins:\n  rtmp:\n    listen: 127.0.0.1:{rtmp}\n  rtsp:\n    listen: 127.0.0.1:{port}\n    rtp_port: {rtp}\n"
        );
        let rill = Rill::start(
            &yaml,
            &[
                rtmp::plugin(),
                target_dir().join("librill_plugin_flv.so"),
                target_dir().join("librill_plugin_rtsp.so"),
            ],
        );
        assert!(wait_port(port, Duration::from_secs(10)), "{}", rill.log());
        assert!(wait_port(rtmp, Duration::from_secs(10)), "{}", rill.log());
        Server {
            rill,
            rtsp: port,
            rtmp,
        }
    }

    fn rtsp_url(&self, path: &str) -> String {
        format!("rtsp://127.0.0.1:{}/{path}", self.rtsp)
    }

    fn rtmp_publish(&self, path: &str, secs: u32) -> Guard {
        Guard(publish_lavfi(
            false,
            secs,
            "libx264",
            "aac",
            &["-f", "flv"],
            &format!("rtmp://127.0.0.1:{}/{path}", self.rtmp),
        ))
    }
}

/// Codecs, no video frame missing over the span played, at least `secs`
/// − 0.5 s of it, audio present, timestamps increasing.
fn check_played(d: &Decoded, secs: u32, what: &str) {
    let dts: Vec<i64> = d.packets.iter().filter(|p| p.0 == 0).map(|p| p.1).collect();
    let (Some(first), Some(last)) = (dts.first(), dts.last()) else {
        panic!("{what}: no video\n{}", d.stderr);
    };
    let video = dts.len();
    // framemd5's video time base is the stream's: 1/25 s here, or 1/90000
    // for RTP (3600 a frame).
    let step = dts
        .windows(2)
        .map(|w| w[1] - w[0])
        .min()
        .unwrap_or(1)
        .max(1);
    let spanned = ((last - first) / step + 1) as usize;
    assert!(
        video * 100 >= spanned * 95 && spanned * 100 >= (secs as usize * 25 - 13) * 95,
        "{what}: {video} video frames over {spanned}, expected {secs} s\n{}",
        d.stderr
    );
    assert!(d.count(1) > 0, "{what}: no audio\n{}", d.stderr);
    assert!(
        d.monotonic(0) && d.monotonic(1),
        "{what}: timestamps go back"
    );
}

/// ffmpeg publishing H.264+AAC to `url` over RTSP with RTP over UDP.
fn rtsp_publish_udp(url: &str, secs: u32) -> Guard {
    Guard(publish_lavfi(
        false,
        secs,
        "libx264",
        "aac",
        &["-f", "rtsp", "-rtsp_transport", "udp"],
        url,
    ))
}

fn codecs(url: &str, opts: &[&str]) -> Vec<String> {
    let mut c: Vec<String> = probe(url, opts).into_iter().map(|(_, c)| c).collect();
    c.sort();
    c
}

#[test]
fn rtmp_in_rtsp_out_over_tcp() {
    let s = Server::start("");
    let _p = s.rtmp_publish("live/a", 30);
    wait_publishing(&s.rill, "live/a");
    let url = s.rtsp_url("live/a");
    let tcp = ["-rtsp_transport", "tcp"];
    assert_eq!(codecs(&url, &tcp), ["aac", "h264"]);
    check_played(&play(false, &url, 4, &tcp), 4, "RTSP over TCP");
}

#[test]
fn rtmp_in_rtsp_out_over_udp() {
    let s = Server::start("");
    let _p = s.rtmp_publish("live/u", 30);
    wait_publishing(&s.rill, "live/u");
    let url = s.rtsp_url("live/u");
    let udp = ["-rtsp_transport", "udp"];
    assert_eq!(codecs(&url, &udp), ["aac", "h264"]);
    check_played(&play(false, &url, 4, &udp), 4, "RTSP over UDP");
}

#[test]
fn rtsp_in_over_udp() {
    let s = Server::start("");
    let _p = rtsp_publish_udp(&s.rtsp_url("live/uin"), 30);
    wait_publishing(&s.rill, "live/uin");
    let rtmp_url = format!("rtmp://127.0.0.1:{}/live/uin", s.rtmp);
    check_played(
        &play(false, &rtmp_url, 4, &[]),
        4,
        "RTMP of an RTSP/UDP publish",
    );
}

/// The RTP/RTCP pair taken by another program at start: the server says
/// so and goes on over TCP; ffmpeg, left to its default (UDP first), gets
/// 461 to its SETUP over UDP and plays over TCP.
#[test]
fn a_taken_udp_pair_leaves_tcp_and_players_fall_back() {
    let p = free_port_pair();
    let _taken = (
        std::net::UdpSocket::bind(("127.0.0.1", p)).unwrap(),
        std::net::UdpSocket::bind(("127.0.0.1", p + 1)).unwrap(),
    );
    let s = Server::start_with_rtp_port("", p);
    wait_for(Duration::from_secs(5), || {
        s.rill.log().contains("RTSP over UDP is off").then_some(())
    })
    .unwrap_or_else(|| panic!("no word of the taken pair:\n{}", s.rill.log()));
    let _pub = s.rtmp_publish("live/fallback", 30);
    wait_publishing(&s.rill, "live/fallback");
    let url = s.rtsp_url("live/fallback");
    check_played(&play(false, &url, 3, &[]), 3, "ffmpeg after the 461");
}

/// A new build of the plugin while a UDP publisher and a UDP player are
/// on the port pair: the new generation takes the sockets over, the old
/// one's sessions still get their clients' datagrams (the host offers the
/// new generation's unknown ones to it), and a new UDP player is served
/// by the new generation.
#[test]
fn udp_sessions_keep_going_across_a_reload() {
    let s = Server::start("");
    let _p = rtsp_publish_udp(&s.rtsp_url("live/ureload"), 40);
    wait_publishing(&s.rill, "live/ureload");
    let url = s.rtsp_url("live/ureload");
    let before = {
        let url = url.clone();
        std::thread::spawn(move || play(false, &url, 10, &["-rtsp_transport", "udp"]))
    };
    wait_for(Duration::from_secs(10), || {
        let st = s.rill.get_json("/api/v1/streams/live/ureload");
        (st["subscribers"].as_u64()? >= 1).then_some(())
    })
    .unwrap_or_else(|| panic!("player not in:\n{}", s.rill.log()));
    std::thread::sleep(Duration::from_secs(2));
    install_new_build(
        &s.rill,
        &target_dir().join("librill_plugin_rtsp.so"),
        "udp-reload",
    );
    wait_for(Duration::from_secs(10), || {
        (plugin_state(&s.rill, "rtsp")?["generation"] == 2).then_some(())
    })
    .unwrap_or_else(|| panic!("no generation 2:\n{}", s.rill.log()));
    let after = play(false, &url, 3, &["-rtsp_transport", "udp"]);
    check_played(&after, 3, "a UDP player of the new generation");
    check_played(
        &before.join().unwrap(),
        10,
        "a UDP player across the reload",
    );
    let st = s.rill.get_json("/api/v1/streams/live/ureload");
    assert_eq!(st["state"], "publishing", "the UDP publisher stays: {st}");
}

#[test]
fn gstreamer_rtspsrc_plays() {
    let s = Server::start("");
    let _p = s.rtmp_publish("live/g", 30);
    wait_publishing(&s.rill, "live/g");
    // GStreamer decodes the video; fakesink prints the decoded caps and one
    // line a frame. The test stops gst-launch itself after enough frames:
    // ending through EOS races rtspsrc's own PAUSE against its TEARDOWN.
    // buffer-mode=none: timestamps from RTP alone, not smoothed by the
    // jitter buffer's clock-skew estimate.
    let mut gst = Guard(
        Command::new("gst-launch-1.0")
            .args(["-v", "rtspsrc", "protocols=tcp", "buffer-mode=none"])
            .arg(format!("location={}", s.rtsp_url("live/g")))
            .args([
                "!",
                "rtph264depay",
                "!",
                "h264parse",
                "!",
                "avdec_h264",
                "!",
                "fakesink",
                "silent=false",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let out = gst.0.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    let (mut caps, mut pts) = (None, Vec::new());
    while pts.len() < 75 {
        let Ok(line) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) else {
            break;
        };
        if line.contains("fakesink0.GstPad:sink: caps = ") {
            caps = Some(line);
        } else if line.contains("chain") {
            if let Some(t) = line.split("pts: ").nth(1).and_then(gst_time) {
                pts.push(t);
            }
        }
    }
    drop(gst);
    let caps = caps.unwrap_or_else(|| panic!("no decoded video\n{}", s.rill.log()));
    assert!(
        caps.contains("video/x-raw")
            && caps.contains("width=(int)320")
            && caps.contains("height=(int)240"),
        "{caps}"
    );
    assert_eq!(pts.len(), 75, "decoded frames in 20 s\n{}", s.rill.log());
    // 25 frames a second, none missing, in order.
    for w in pts.windows(2) {
        let step = w[1] - w[0];
        assert!((0.039..0.041).contains(&step), "pts step {step} s: {pts:?}");
    }
}

/// "0:00:01.234567890" → seconds.
fn gst_time(s: &str) -> Option<f64> {
    let t = s.split(',').next()?;
    let mut parts = t.split(':');
    let (h, m, sec) = (parts.next()?, parts.next()?, parts.next()?);
    Some(
        h.parse::<f64>().ok()? * 3600.0
            + m.parse::<f64>().ok()? * 60.0
            + sec.parse::<f64>().ok()?,
    )
}

#[test]
fn rtsp_in_rtmp_and_http_flv_out() {
    let s = Server::start("");
    let _p = Guard(publish_lavfi(
        false,
        30,
        "libx264",
        "aac",
        &["-f", "rtsp", "-rtsp_transport", "tcp"],
        &s.rtsp_url("live/in"),
    ));
    wait_publishing(&s.rill, "live/in");
    let rtmp_url = format!("rtmp://127.0.0.1:{}/live/in", s.rtmp);
    assert_eq!(codecs(&rtmp_url, &[]), ["aac", "h264"]);
    check_played(
        &play(false, &rtmp_url, 4, &[]),
        4,
        "RTMP of an RTSP publish",
    );
    let flv = format!("http://127.0.0.1:{}/live/in.flv", s.rill.http_port);
    check_played(&play(false, &flv, 3, &[]), 3, "HTTP-FLV of an RTSP publish");
    // And back out over RTSP.
    let tcp = ["-rtsp_transport", "tcp"];
    check_played(
        &play(false, &s.rtsp_url("live/in"), 3, &tcp),
        3,
        "RTSP of an RTSP publish",
    );
}

#[test]
fn admission_applies_to_rtsp() {
    let s = Server::start("auth:\n  secret: rtsp-test-secret-0123456789\n  play: [token]");
    let _p = s.rtmp_publish("live/t", 20);
    wait_publishing(&s.rill, "live/t");
    let tcp = ["-rtsp_transport", "tcp"];
    let d = play(false, &s.rtsp_url("live/t"), 1, &tcp);
    assert_eq!(d.count(0), 0, "played without a token");
    assert!(
        d.stderr.contains("401") || d.stderr.contains("Unauthorized"),
        "{}",
        d.stderr
    );
    let q = signed_query(
        "rtsp-test-secret-0123456789",
        "play",
        "live/t",
        unix_in(600),
    );
    let url = format!("{}?{q}", s.rtsp_url("live/t"));
    check_played(&play(false, &url, 2, &tcp), 2, "RTSP with a token");
}

#[test]
fn hevc_and_opus_published_with_ffmpeg_9() {
    let s = Server::start("");
    let _p = Guard(publish_lavfi(
        true,
        30,
        "libx265",
        "libopus",
        &["-f", "rtsp", "-rtsp_transport", "tcp"],
        &s.rtsp_url("live/h"),
    ));
    wait_publishing(&s.rill, "live/h");
    let tcp = ["-rtsp_transport", "tcp"];
    let url = s.rtsp_url("live/h");
    assert_eq!(codecs(&url, &tcp), ["hevc", "opus"]);
    check_played(&play(true, &url, 3, &tcp), 3, "HEVC + Opus over RTSP");
}

/// retina (an independent Rust RTSP client) reads the SDP (H.264 at 90 kHz,
/// AAC at the stream's rate, parameters present), and the frames it
/// assembles have increasing RTP timestamps, a key frame first, 25 frames
/// per second of RTP time.
#[test]
fn retina_checks_the_sdp_and_rtp_timestamps() {
    use futures_util::StreamExt;
    use retina::client::{
        PlayOptions, Session, SessionOptions, SetupOptions, TcpTransportOptions, Transport,
    };
    use retina::codec::CodecItem;

    let s = Server::start("");
    let _p = s.rtmp_publish("live/ret", 30);
    wait_publishing(&s.rill, "live/ret");
    let url = url::Url::parse(&s.rtsp_url("live/ret")).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut session = Session::describe(url, SessionOptions::default())
            .await
            .expect("DESCRIBE");
        let streams: Vec<(String, String, u32)> = session
            .streams()
            .iter()
            .map(|st| {
                (
                    st.media().to_owned(),
                    st.encoding_name().to_ascii_lowercase(),
                    st.clock_rate_hz(),
                )
            })
            .collect();
        assert_eq!(streams.len(), 2, "{streams:?}");
        assert_eq!(streams[0], ("video".into(), "h264".into(), 90_000));
        assert_eq!(streams[1].0, "audio");
        assert_eq!(streams[1].1, "mpeg4-generic");
        assert_eq!(streams[1].2, 48_000);
        assert!(
            session.streams()[0].parameters().is_some(),
            "SPS/PPS in the SDP"
        );
        for i in 0..2 {
            let tcp = Transport::Tcp(TcpTransportOptions::default());
            session
                .setup(i, SetupOptions::default().transport(tcp))
                .await
                .expect("SETUP");
        }
        let mut demuxed = session
            .play(PlayOptions::default())
            .await
            .expect("PLAY")
            .demuxed()
            .unwrap();
        let (mut video, mut audio) = (Vec::new(), 0);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while video.len() < 75 {
            let item = tokio::time::timeout_at(deadline, demuxed.next())
                .await
                .expect("frames in time")
                .expect("stream goes on")
                .expect("no error");
            match item {
                CodecItem::VideoFrame(f) => {
                    video.push((f.timestamp().elapsed(), f.is_random_access_point()))
                }
                CodecItem::AudioFrame(_) => audio += 1,
                _ => {}
            }
        }
        assert!(video[0].1, "the first frame is a key frame");
        assert!(
            video.windows(2).all(|w| w[1].0 > w[0].0),
            "RTP time goes on"
        );
        let span = video.last().unwrap().0 - video[0].0;
        assert_eq!(span, 74 * 3600, "75 frames of 40 ms");
        assert!(audio > 100, "{audio} audio frames");
    });
}

/// An RTSP proxy for one publishing client over UDP that loses `loss_pct`
/// of its RTP datagrams, the way a NAT would sit between them: the
/// `client_port` of each SETUP is replaced by a port pair of the proxy
/// (which the server then knows the client's datagrams by), the
/// `server_port` of its answer by another pair, and the proxy forwards RTP
/// (dropping some, deterministically) and RTCP from the one to the other.
fn lossy_rtsp_proxy(server: u16, loss_pct: u64) -> u16 {
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream, UdpSocket};

    /// The head of each RTSP message read so far in `buf` (with its body,
    /// which passes unchanged), rewritten by `edit`, until the peer ends.
    fn rewrite(mut from: TcpStream, mut to: TcpStream, mut edit: impl FnMut(String) -> String) {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let text = String::from_utf8_lossy(&buf[..end + 4]).into_owned();
                let body = text
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().parse().unwrap_or(0))
                    })
                    .unwrap_or(0usize);
                if buf.len() < end + 4 + body {
                    break;
                }
                let head = edit(text);
                let rest: Vec<u8> = buf.drain(..end + 4 + body).skip(end + 4).collect();
                if to
                    .write_all(head.as_bytes())
                    .and_then(|()| to.write_all(&rest))
                    .is_err()
                {
                    return;
                }
            }
            match from.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    /// The `key=a-b` ports of a Transport header, replaced by `ports`'s.
    fn swap_ports(text: &mut String, key: &str, ports: impl FnOnce(u16, u16) -> (u16, u16)) {
        let Some(i) = text.find(key) else { return };
        let at = i + key.len();
        let rest = &text[at..];
        let len = rest
            .find(|c: char| !c.is_ascii_digit() && c != '-')
            .unwrap_or(rest.len());
        let (a, b) = rest[..len].split_once('-').unwrap();
        let (x, y) = ports(a.parse().unwrap(), b.parse().unwrap());
        text.replace_range(at..at + len, &format!("{x}-{y}"));
    }

    /// Two UDP sockets on neighbouring loopback ports.
    fn pair() -> (UdpSocket, UdpSocket) {
        let p = free_port_pair();
        match (
            UdpSocket::bind(("127.0.0.1", p)),
            UdpSocket::bind(("127.0.0.1", p + 1)),
        ) {
            (Ok(a), Ok(b)) => (a, b),
            _ => pair(),
        }
    }

    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let Ok((client, _)) = listener.accept() else {
            return;
        };
        let upstream = TcpStream::connect(("127.0.0.1", server)).unwrap();
        let (c2, u2) = (client.try_clone().unwrap(), upstream.try_clone().unwrap());
        // Requests: each SETUP's client ports become the proxy's outward
        // pair, handed to the answer's side.
        let (tx, rx) = std::sync::mpsc::channel::<(UdpSocket, UdpSocket)>();
        std::thread::spawn(move || {
            rewrite(c2, u2, |mut text| {
                swap_ports(&mut text, "client_port=", |_, _| {
                    let out = pair();
                    let p = out.0.local_addr().unwrap().port();
                    tx.send(out).unwrap();
                    (p, p + 1)
                });
                text
            })
        });
        let mut rng = 0x9E37_79B9_7F4A_7C15u64;
        rewrite(upstream, client, |mut text| {
            swap_ports(&mut text, "server_port=", |a, b| {
                let (out_rtp, out_rtcp) = rx.recv().unwrap();
                let (rtp, rtcp) = pair();
                let mine = rtp.local_addr().unwrap().port();
                for (sock, out, to, lossy) in [(rtp, out_rtp, a, true), (rtcp, out_rtcp, b, false)]
                {
                    let mut seed = rng;
                    rng = rng.rotate_left(17) ^ 0xD1B5_4A32_D192_ED03;
                    std::thread::spawn(move || {
                        let mut d = [0u8; 2048];
                        while let Ok(n) = sock.recv(&mut d) {
                            seed ^= seed << 13;
                            seed ^= seed >> 7;
                            seed ^= seed << 17;
                            if lossy && seed % 100 < loss_pct {
                                continue;
                            }
                            let _ = out.send_to(&d[..n], ("127.0.0.1", to));
                        }
                    });
                }
                (mine, mine + 1)
            });
            text
        });
    });
    port
}

/// 2% of a UDP publisher's RTP lost on the way: playback goes on, the
/// losses cost frames up to the next key frame, never the stream.
#[test]
fn two_percent_udp_loss_recovers_at_the_next_key_frame() {
    let s = Server::start("");
    let proxy = lossy_rtsp_proxy(s.rtsp, 2);
    let _p = rtsp_publish_udp(&format!("rtsp://127.0.0.1:{proxy}/live/lossy"), 30);
    wait_publishing(&s.rill, "live/lossy");
    let rtmp_url = format!("rtmp://127.0.0.1:{}/live/lossy", s.rtmp);
    let d = play(false, &rtmp_url, 8, &[]);
    let dts: Vec<i64> = d.packets.iter().filter(|p| p.0 == 0).map(|p| p.1).collect();
    // framemd5 writes the decoded video's time base: 1/25 s.
    let gap = dts
        .windows(2)
        .map(|w| w[1] - w[0])
        .max()
        .unwrap_or(i64::MAX);
    // A loss costs the frames up to the next key frame (1 s GOPs): most
    // seconds keep some video, no hole lasts past a couple of GOPs.
    let first = dts.first().copied().unwrap_or(0);
    let seconds: std::collections::BTreeSet<i64> = dts.iter().map(|t| (t - first) / 25).collect();
    assert!(
        dts.len() >= 40 && seconds.len() >= 6,
        "{} video frames in {} of 8 seconds\n{}",
        dts.len(),
        seconds.len(),
        d.stderr
    );
    assert!(
        gap <= 75,
        "a hole of {gap} frames: no recovery at a key frame"
    );
    assert!(d.monotonic(0) && d.monotonic(1), "timestamps go back");
}

/// The audio/video offset of a played stream: the publisher clicks (20 ms
/// of tone in silence) at every whole second and starts a key frame there;
/// in what ffmpeg records from RTSP, each click lies within 40 ms of a key
/// frame.
#[test]
fn audio_and_video_stay_within_40_ms() {
    let s = Server::start("");
    let publisher = Command::new(ffmpeg(false))
        .args(["-hide_banner", "-loglevel", "error", "-re"])
        .args([
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=320x240:rate=25:duration=30",
        ])
        .args(["-f", "lavfi", "-i"])
        .arg("aevalsrc=if(lt(mod(t\\,1)\\,0.02)\\,sin(2*PI*1000*t)\\,0):s=48000:d=30")
        .args([
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-tune",
            "zerolatency",
        ])
        .args([
            "-g",
            "25",
            "-keyint_min",
            "25",
            "-sc_threshold",
            "0",
            "-pix_fmt",
            "yuv420p",
        ])
        .args(["-c:a", "aac", "-f", "flv"])
        .arg(format!("rtmp://127.0.0.1:{}/live/av", s.rtmp))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _p = Guard(publisher);
    wait_publishing(&s.rill, "live/av");
    let dir = tempfile::tempdir().unwrap();
    let rec = dir.path().join("rec.mkv");
    let st = Command::new(ffmpeg(false))
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-rtsp_transport",
            "tcp",
        ])
        .args(["-i", &s.rtsp_url("live/av"), "-t", "6", "-c", "copy"])
        .arg(&rec)
        .status()
        .unwrap();
    assert!(st.success());
    // Key frames' times.
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0", "-show_entries"])
        .args(["packet=pts_time,flags", "-of", "csv=p=0"])
        .arg(&rec)
        .output()
        .unwrap();
    let keys: Vec<f64> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains('K'))
        .filter_map(|l| l.split(',').next()?.parse().ok())
        .collect();
    // Click onsets: where silence ends.
    let out = Command::new(ffmpeg(false))
        .args(["-hide_banner", "-nostats", "-i"])
        .arg(&rec)
        .args(["-af", "silencedetect=n=-40dB:d=0.3", "-f", "null", "-"])
        .output()
        .unwrap();
    let clicks: Vec<f64> = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter_map(|l| l.split("silence_end: ").nth(1))
        .filter_map(|v| v.split_whitespace().next()?.parse().ok())
        .collect();
    // Clicks past the last key frame recorded have no partner.
    let last_key = keys.iter().copied().fold(f64::MIN, f64::max);
    let clicks: Vec<f64> = clicks.into_iter().filter(|c| *c < last_key + 0.5).collect();
    assert!(
        keys.len() >= 4 && clicks.len() >= 4,
        "keys {keys:?} clicks {clicks:?}"
    );
    for c in &clicks {
        let nearest = keys.iter().map(|k| (k - c).abs()).fold(f64::MAX, f64::min);
        assert!(
            nearest <= 0.040,
            "a click {:.0} ms from the nearest key frame (keys {keys:?}, clicks {clicks:?})",
            nearest * 1000.0
        );
    }
}
