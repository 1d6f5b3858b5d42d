//! SRT with real clients: ffmpeg (libsrt) and srt-live-transmit publish
//! MPEG-TS over SRT; ffmpeg plays it back over SRT, RTMP and HLS; with a
//! passphrase both ways and a wrong one refused; through a lossy relay the
//! played stream has no gaps; HEVC with ffmpeg 9; tokens in the stream id.

use std::net::UdpSocket;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rill_e2e::rtmp::{self, Guard};
use rill_e2e::*;

struct Server {
    rill: Rill,
    srt: u16,
    rtmp: u16,
}

impl Server {
    fn start(global: &str, srt: &str) -> Server {
        let (port, rtmp) = (free_port(), free_port());
        let mut yaml = format!(
            "{global}\nplugins:\n  rtmp:\n    listen: 127.0.0.1:{rtmp}\n  hls:\n    window: 6\n  srt:\n    listen: 127.0.0.1:{port}\n"
        );
        for l in srt.lines().filter(|l| !l.trim().is_empty()) {
            yaml.push_str(&format!("    {}\n", l.trim()));
        }
        let rill = Rill::start(
            &yaml,
            &[
                rtmp::plugin(),
                target_dir().join("librill_plugin_hls.so"),
                target_dir().join("librill_plugin_srt.so"),
            ],
        );
        assert!(wait_port(rtmp, Duration::from_secs(10)), "{}", rill.log());
        wait_for(Duration::from_secs(10), || {
            rill.log().contains("SRT on udp").then_some(())
        })
        .unwrap_or_else(|| panic!("no SRT listener:\n{}", rill.log()));
        Server {
            rill,
            srt: port,
            rtmp,
        }
    }

    /// An SRT URL as ffmpeg takes it (latency in µs). Debian's ffmpeg
    /// passes the stream id as written, so it must not contain `&`.
    fn srt_url(&self, port: u16, sid: &str, extra: &str) -> String {
        let _ = self;
        assert!(!sid.contains('&'));
        format!("srt://127.0.0.1:{port}?streamid={sid}&latency=200000{extra}")
    }

    /// ffmpeg publishing H.264 (or HEVC) + AAC as MPEG-TS over SRT.
    fn publish(
        &self,
        modern: bool,
        port: u16,
        sid: &str,
        extra: &str,
        secs: u32,
        v: &str,
    ) -> Guard {
        Guard(publish_lavfi(
            modern,
            secs,
            v,
            "aac",
            &["-f", "mpegts"],
            &self.srt_url(port, sid, extra),
        ))
    }
}

/// Video and audio of a played stream: codecs, no video frame missing
/// (count within 5% of the frames the timestamps span), at least
/// `secs` − 0.5 s of video (a TS source's audio runs ahead of its video, so
/// a player starting at a key frame gets some audio before it), timestamps
/// increasing.
fn check_played(d: &Decoded, secs: u32, what: &str) {
    let dts: Vec<i64> = d.packets.iter().filter(|p| p.0 == 0).map(|p| p.1).collect();
    let (Some(first), Some(last)) = (dts.first(), dts.last()) else {
        panic!("{what}: no video\n{}", d.stderr);
    };
    // framemd5 counts in the stream's 1/25 s.
    let spanned = (last - first + 1) as usize;
    let video = dts.len();
    assert!(
        video * 100 >= spanned * 95 && spanned * 100 >= (secs as usize * 25 - 13) * 95,
        "{what}: {video} video frames over {spanned}, expected {} s\n{}",
        secs,
        d.stderr
    );
    assert!(d.count(1) > 0, "{what}: no audio\n{}", d.stderr);
    assert!(
        d.monotonic(0) && d.monotonic(1),
        "{what}: timestamps go back"
    );
}

fn codecs(url: &str) -> Vec<String> {
    let mut c: Vec<String> = probe(url, &[]).into_iter().map(|(_, c)| c).collect();
    c.sort();
    c
}

#[test]
fn ffmpeg_publishes_over_srt_and_plays_over_srt_rtmp_and_hls() {
    let s = Server::start("", "");
    let _p = s.publish(false, s.srt, "publish:live/x", "", 30, "libx264");
    wait_publishing(&s.rill, "live/x");
    let srt = s.srt_url(s.srt, "read:live/x", "");
    assert_eq!(codecs(&srt), ["aac", "h264"]);
    let rtmp_url = format!("rtmp://127.0.0.1:{}/live/x", s.rtmp);
    assert_eq!(codecs(&rtmp_url), ["aac", "h264"]);
    check_played(&play(false, &srt, 4, &[]), 4, "SRT");
    check_played(&play(false, &rtmp_url, 4, &[]), 4, "RTMP");
    let hls = format!("http://127.0.0.1:{}/live/x.m3u8", s.rill.http_port);
    let d = play(false, &hls, 3, &[]);
    assert!(d.count(0) >= 70, "HLS: {} frames\n{}", d.count(0), d.stderr);
    assert!(d.monotonic(0));
}

#[test]
fn rtmp_published_stream_plays_over_srt_from_the_gop_cache() {
    let s = Server::start("", "");
    let _p = Guard(publish_lavfi(
        false,
        12,
        "libx264",
        "aac",
        &["-f", "flv"],
        &format!("rtmp://127.0.0.1:{}/live/r", s.rtmp),
    ));
    wait_publishing(&s.rill, "live/r");
    std::thread::sleep(Duration::from_millis(1500));
    // Two players at once: the stream is muxed once and shared.
    let url = s.srt_url(s.srt, "#!::r=live/r,m=request", "");
    let other = {
        let url = url.clone();
        std::thread::spawn(move || play(false, &url, 4, &[]))
    };
    check_played(&play(false, &url, 4, &[]), 4, "SRT player 1");
    check_played(&other.join().unwrap(), 4, "SRT player 2");
}

#[test]
fn srt_live_transmit_publishes_and_reads() {
    let s = Server::start("", "");
    // A TS file made by ffmpeg, fed to srt-live-transmit in real time.
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src.ts");
    let st = Command::new(ffmpeg(false))
        .args(["-hide_banner", "-loglevel", "error", "-f", "lavfi"])
        .args(["-i", "testsrc2=size=320x240:rate=25:duration=10"])
        .args(["-f", "lavfi", "-i", "sine=frequency=440:duration=10"])
        .args([
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-g",
            "25",
            "-c:a",
            "aac",
        ])
        .args(["-f", "mpegts"])
        .arg(&src)
        .status()
        .unwrap();
    assert!(st.success());
    // ffmpeg paces the file into srt-live-transmit's stdin.
    let mut feed = Command::new(ffmpeg(false))
        .args(["-hide_banner", "-loglevel", "error", "-re", "-i"])
        .arg(&src)
        .args(["-c", "copy", "-f", "mpegts", "-"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let publish = Command::new("srt-live-transmit")
        .args(["-q", "file://con"])
        .arg(format!(
            "srt://127.0.0.1:{}?streamid=publish:live/slt&latency=200",
            s.srt
        ))
        .stdin(feed.stdout.take().unwrap())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _p = Guard(publish);
    let _feed = Guard(feed);
    wait_publishing(&s.rill, "live/slt");
    let out = dir.path().join("out.ts");
    let mut read = Command::new("srt-live-transmit")
        .args(["-q", "-t:4"])
        .arg(format!(
            "srt://127.0.0.1:{}?streamid=read:live/slt&latency=200",
            s.srt
        ))
        .arg("file://con")
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(5));
    let _ = read.kill();
    let _ = read.wait();
    let d = play(false, out.to_str().unwrap(), 10, &[]);
    assert!(
        d.count(0) >= 50,
        "srt-live-transmit read {} frames",
        d.count(0)
    );
    assert!(d.count(1) > 0 && d.monotonic(0));
}

#[test]
fn passphrase_both_ways_and_a_wrong_one_refused() {
    let s = Server::start("", "passphrase: rill-srt-secret\npbkeylen: 32\n");
    let good = "&passphrase=rill-srt-secret&pbkeylen=32";
    let _p = s.publish(false, s.srt, "publish:live/e", good, 25, "libx264");
    wait_publishing(&s.rill, "live/e");
    check_played(
        &play(
            false,
            &s.srt_url(
                s.srt,
                "read:live/e",
                "&passphrase=rill-srt-secret&pbkeylen=32",
            ),
            3,
            &[],
        ),
        3,
        "encrypted SRT",
    );
    // Wrong passphrase, none, or a key length other than pbkeylen:
    // refused at the handshake.
    for extra in [
        "&passphrase=not-the-secret",
        "",
        "&passphrase=rill-srt-secret&pbkeylen=16",
    ] {
        let d = play(false, &s.srt_url(s.srt, "read:live/e", extra), 2, &[]);
        assert_eq!(d.count(0), 0, "played with {extra:?}");
        assert!(
            d.stderr.to_lowercase().contains("reject") || d.stderr.contains("error"),
            "{}",
            d.stderr
        );
    }
    let log = s.rill.log();
    assert!(log.contains("publishing live/e"), "{log}");
}

/// A UDP relay between one client and the server dropping `loss_pct` of
/// the client's datagrams (deterministically).
fn lossy_relay(server: u16, loss_pct: u32) -> (u16, Arc<AtomicBool>) {
    let front = UdpSocket::bind("127.0.0.1:0").unwrap();
    let back = UdpSocket::bind("127.0.0.1:0").unwrap();
    back.connect(("127.0.0.1", server)).unwrap();
    let port = front.local_addr().unwrap().port();
    let stop = Arc::new(AtomicBool::new(false));
    let client = Arc::new(std::sync::Mutex::new(None));
    {
        let (front, back) = (front.try_clone().unwrap(), back.try_clone().unwrap());
        let (stop, client) = (stop.clone(), client.clone());
        std::thread::spawn(move || {
            front
                .set_read_timeout(Some(Duration::from_millis(100)))
                .unwrap();
            let mut buf = [0u8; 2048];
            let mut rng = 0x2545_F491_4F6C_DD1Du64;
            while !stop.load(Ordering::Relaxed) {
                if let Ok((n, from)) = front.recv_from(&mut buf) {
                    *client.lock().unwrap() = Some(from);
                    rng ^= rng << 13;
                    rng ^= rng >> 7;
                    rng ^= rng << 17;
                    // Handshakes pass, data is dropped at random.
                    let data = buf[0] & 0x80 == 0;
                    if data && rng % 100 < u64::from(loss_pct) {
                        continue;
                    }
                    let _ = back.send(&buf[..n]);
                }
            }
        });
    }
    {
        let stop = stop.clone();
        std::thread::spawn(move || {
            back.set_read_timeout(Some(Duration::from_millis(100)))
                .unwrap();
            let mut buf = [0u8; 2048];
            while !stop.load(Ordering::Relaxed) {
                if let Ok(n) = back.recv(&mut buf) {
                    if let Some(to) = *client.lock().unwrap() {
                        let _ = front.send_to(&buf[..n], to);
                    }
                }
            }
        });
    }
    (port, stop)
}

#[test]
fn five_percent_loss_is_recovered_within_the_latency() {
    let s = Server::start("", "latency: 200ms\n");
    let (relay, stop) = lossy_relay(s.srt, 5);
    let p = s.publish(false, relay, "publish:live/lossy", "", 10, "libx264");
    wait_publishing(&s.rill, "live/lossy");
    let rtmp_url = format!("rtmp://127.0.0.1:{}/live/lossy", s.rtmp);
    let d = play(false, &rtmp_url, 5, &[]);
    check_played(&d, 5, "RTMP of a lossy SRT publish");
    // No gaps: every video frame 40 ms after the one before.
    let dts: Vec<i64> = d.packets.iter().filter(|p| p.0 == 0).map(|p| p.1).collect();
    let steps: std::collections::BTreeSet<i64> = dts.windows(2).map(|w| w[1] - w[0]).collect();
    assert_eq!(steps.len(), 1, "frame gaps in {steps:?}");
    drop(p);
    let log = wait_for(Duration::from_secs(10), || {
        let log = s.rill.log();
        log.contains("publisher live/lossy ended").then_some(log)
    })
    .expect("the publisher's end is logged");
    stop.store(true, Ordering::Relaxed);
    let line = log
        .lines()
        .find(|l| l.contains("publisher live/lossy ended"))
        .unwrap();
    let num = |after: &str| -> u64 {
        line.split(after)
            .next()
            .and_then(|s| s.split_whitespace().last())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    let (lost, rexmit) = (num(" lost"), num(" retransmitted,"));
    assert!(lost > 0 && rexmit > 0, "{line}");
    assert!(rexmit * 100 >= lost * 95, "most losses recovered: {line}");
}

#[test]
fn hevc_over_srt_with_ffmpeg_9() {
    let s = Server::start("", "");
    let _p = s.publish(true, s.srt, "publish:live/h", "", 20, "libx265");
    wait_publishing(&s.rill, "live/h");
    let url = s.srt_url(s.srt, "read:live/h", "");
    assert_eq!(codecs(&url), ["aac", "hevc"]);
    let d = play(true, &url, 3, &[]);
    check_played(&d, 3, "HEVC over SRT");
}

#[test]
fn tokens_in_the_stream_id() {
    let s = Server::start(
        "auth:\n  secret: srt-test-secret-0123456789\n  publish: [token]\n  play: [token]",
        "",
    );
    let q = signed_query(
        "srt-test-secret-0123456789",
        "publish",
        "live/t",
        unix_in(600),
    );
    // Without a token: refused.
    let d = play(false, &s.srt_url(s.srt, "read:live/t", ""), 1, &[]);
    assert_eq!(d.count(0), 0);
    let sid = format!("#!::r=live/t,m=publish,{}", q.replace('&', ","));
    let _p = s.publish(false, s.srt, &sid, "", 20, "libx264");
    wait_publishing(&s.rill, "live/t");
    let q = signed_query("srt-test-secret-0123456789", "play", "live/t", unix_in(600));
    let sid = format!("#!::r=live/t,m=request,{}", q.replace('&', ","));
    let d = play(false, &s.srt_url(s.srt, &sid, ""), 2, &[]);
    check_played(&d, 2, "SRT with a token");
    assert!(s.rill.log().contains("refused"), "{}", s.rill.log());
}

/// A hot reload of the SRT plugin: the publisher and the player connected
/// before it stream on, unbroken, on the old generation (the host offers it
/// the datagrams the new one declines); a new player gets the new one.
#[test]
fn srt_sessions_survive_a_plugin_reload() {
    let s = Server::start("", "");
    let _p = s.publish(false, s.srt, "publish:live/reload", "", 30, "libx264");
    wait_publishing(&s.rill, "live/reload");
    let url = s.srt_url(s.srt, "read:live/reload", "");
    let before = {
        let url = url.clone();
        std::thread::spawn(move || play(false, &url, 8, &[]))
    };
    std::thread::sleep(Duration::from_secs(3));
    // The same code under another hash: a new generation.
    let dir = s.rill.plugins_dir();
    let lib = target_dir().join("librill_plugin_srt.so");
    let mut bytes = std::fs::read(&lib).unwrap();
    bytes.extend_from_slice(b"reload-marker");
    let tmp = dir.join(".srt-reload.tmp");
    std::fs::write(&tmp, &bytes).unwrap();
    std::fs::rename(&tmp, dir.join("librill_plugin_srt.so")).unwrap();
    wait_for(Duration::from_secs(10), || {
        let p = plugin_state(&s.rill, "srt")?;
        (p["generation"].as_u64()? >= 2).then_some(())
    })
    .unwrap_or_else(|| panic!("no reload:\n{}", s.rill.log()));
    check_played(&before.join().unwrap(), 8, "SRT player across the reload");
    // The publisher too: a player after the reload gets the stream.
    let after = play(false, &url, 3, &[]);
    check_played(&after, 3, "SRT player after the reload");
}

/// SRT callers are sessions with an address (ABI 1.3): IP rules and the
/// per-address connection limit apply to them as to TCP clients.
#[test]
fn ip_rules_and_per_address_limits_apply_to_srt_callers() {
    let s = Server::start("auth:\n  play_deny: [127.0.0.0/8]", "");
    let d = play(false, &s.srt_url(s.srt, "read:live/ip", ""), 1, &[]);
    assert_eq!(d.count(0), 0, "a denied address played");
    wait_for(Duration::from_secs(5), || {
        s.rill
            .log()
            .contains("read:live/ip refused: denied")
            .then_some(())
    })
    .unwrap_or_else(|| panic!("{}", s.rill.log()));

    // Two connections per address: the publisher and one player hold
    // them; a second player is turned away before admission.
    let s = Server::start("limits:\n  max_connections_per_ip: 2", "");
    let _p = s.publish(false, s.srt, "publish:live/lim", "", 20, "libx264");
    wait_publishing(&s.rill, "live/lim");
    let url = s.srt_url(s.srt, "read:live/lim", "");
    let first = {
        let url = url.clone();
        std::thread::spawn(move || play(false, &url, 5, &[]))
    };
    std::thread::sleep(Duration::from_secs(2));
    let second = play(false, &url, 1, &[]);
    assert_eq!(second.count(0), 0, "over the limit, played");
    check_played(&first.join().unwrap(), 5, "the player within the limit");
    // The API answers once the player's connection is gone.
    wait_for(Duration::from_secs(10), || {
        s.rill.log().contains("player live/lim ended").then_some(())
    })
    .expect("the player's session ends");
    let counted = wait_for(Duration::from_secs(5), || {
        let (_, metrics) = s.rill.get("/metrics");
        metrics
            .lines()
            .any(|l| {
                l.starts_with("rill_admission_refusals")
                    && l.contains("protocol=\"srt\"")
                    && l.contains("max_connections_per_ip")
            })
            .then_some(())
    });
    assert!(counted.is_some(), "{}", s.rill.log());
}
