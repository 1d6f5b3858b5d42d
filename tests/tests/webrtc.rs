//! WebRTC with real clients: headless Chromium (Debian's, driven by
//! tests/browser/webrtc.mjs through playwright-core) plays WHEP and
//! publishes WHIP from its fake camera and microphone; ffmpeg publishes
//! over RTMP (H.264 + AAC, and with ffmpeg 9 H.264 + Opus) and with ffmpeg
//! 9's whip muxer, and plays a WHIP stream back over RTMP; a peer that never
//! connects is freed; the HTTP side refuses bad offers.

use std::io::{BufRead, BufReader};
use std::net::UdpSocket;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rill_e2e::rtmp::{self, Guard};
use rill_e2e::*;

struct Server {
    rill: Rill,
    rtmp: u16,
    udp: u16,
}

impl Server {
    fn start(webrtc: &str) -> Server {
        let (udp, rtmp) = (free_port(), free_port());
        let mut yaml = format!(
            "plugins:\n  rtmp:\n    listen: 127.0.0.1:{rtmp}\n  webrtc:\n    udp_listen: 127.0.0.1:{udp}\n"
        );
        for l in webrtc.lines().filter(|l| !l.trim().is_empty()) {
            yaml.push_str(&format!("    {}\n", l.trim()));
        }
        let rill = Rill::start(
            &yaml,
            &[
                rtmp::plugin(),
                target_dir().join("librill_plugin_webrtc.so"),
                target_dir().join("librill_plugin_transcode.so"),
                target_dir().join("librill_plugin_hls.so"),
            ],
        );
        assert!(wait_port(rtmp, Duration::from_secs(10)), "{}", rill.log());
        wait_for(Duration::from_secs(10), || {
            rill.log().contains("WebRTC on udp").then_some(())
        })
        .unwrap_or_else(|| panic!("no WebRTC socket:\n{}", rill.log()));
        Server { rill, rtmp, udp }
    }

    fn url(&self, path: &str, what: &str) -> String {
        format!("http://127.0.0.1:{}/{path}/{what}", self.rill.http_port)
    }

    /// ffmpeg publishing over RTMP (`modern`: ffmpeg 9, Enhanced RTMP).
    fn publish(&self, modern: bool, path: &str, acodec: &str) -> Guard {
        Guard(publish_lavfi(
            modern,
            40,
            "libx264",
            acodec,
            &["-f", "flv"],
            &format!("rtmp://127.0.0.1:{}/{path}", self.rtmp),
        ))
    }
}

/// The browser stack, or why the test cannot run (a failure in CI, where
/// scripts/install-deps installs it).
fn browser_ready(test: &str) -> bool {
    rill_testsupport::require_tool(
        test,
        "the browser stack",
        browser::missing(&["playwright-core"]),
    )
}

fn driver(args: &[&str]) -> Command {
    let mut c = Command::new("node");
    c.arg(browser::dir().join("webrtc.mjs"))
        .args(args)
        .env("CHROMIUM", browser::chromium());
    c
}

/// Runs the driver to its end: its final JSON line.
fn run_driver(args: &[&str], rill: &Rill) -> serde_json::Value {
    let out = driver(args)
        .stdin(Stdio::null())
        .output()
        .expect("run node webrtc.mjs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().rev().find(|l| l.starts_with('{'));
    let r: serde_json::Value = line
        .and_then(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| {
            panic!(
                "webrtc.mjs printed no JSON:\n{stdout}\n{}\n{}",
                String::from_utf8_lossy(&out.stderr),
                rill.log()
            )
        });
    assert!(
        out.status.success() && r["fatal"].is_null(),
        "driver failed: {}\n{}\n{}",
        r["fatal"],
        String::from_utf8_lossy(&out.stderr),
        rill.log()
    );
    r
}

/// At least `secs` seconds of 20 fps video and 40 audio frames a second
/// decoded (stream 0 video, 1 audio), with monotonic timestamps.
fn assert_av(d: &Decoded, secs: usize, what: &str, rill: &Rill) {
    let (video, audio) = (d.count(0), d.count(1));
    assert!(
        video >= secs * 20 && audio >= secs * 40,
        "{what}: video {video} audio {audio} frames decoded\n{}\n{}",
        d.stderr,
        rill.log()
    );
    assert!(
        d.monotonic(0) && d.monotonic(1),
        "{what}: timestamps go back"
    );
}

fn f(v: &serde_json::Value, k: &str) -> f64 {
    v[k].as_f64().unwrap_or(0.0)
}

fn subscribers(rill: &Rill, path: &str) -> usize {
    rill.get_json(&format!("/api/v1/streams/{path}/subscribers"))["subscribers"]
        .as_array()
        .map_or(0, Vec::len)
}

#[test]
fn whep_plays_an_rtmp_stream_in_chromium_and_delete_frees_the_viewer() {
    if !browser_ready("whep_plays_an_rtmp_stream_in_chromium_and_delete_frees_the_viewer") {
        return;
    }
    let s = Server::start("");
    let _p = s.publish(false, "live/v", "aac");
    wait_publishing(&s.rill, "live/v");
    let r = run_driver(
        &[
            "whep",
            &s.url("live/v", "whep"),
            "--seconds",
            "5",
            "--min-fps",
            "20",
        ],
        &s.rill,
    );
    eprintln!(
        "WHEP: first frame {} ms, {} frames decoded in {} s",
        r["firstFrameMs"], r["framesDecoded"], r["playedSeconds"]
    );
    assert_eq!(r["status"], 201);
    assert_eq!(r["videoCodec"], "video/H264");
    assert_eq!((f(&r, "width"), f(&r, "height")), (320.0, 240.0));
    assert!(f(&r, "playedSeconds") >= 5.0, "{r}");
    // 25 frames a second, decoded, none lost on loopback.
    assert!(f(&r, "framesDecoded") >= 5.0 * 23.0, "{r}");
    assert_eq!(f(&r, "packetsLost"), 0.0, "{r}");
    // The AAC reaches the browser as Opus, bridged once for the stream:
    // 50 packets a second, less the bridge's start.
    assert_eq!(r["audioCodec"], "audio/opus", "{r}");
    assert!(f(&r, "audioPackets") >= 4.0 * 50.0, "{r}");
    assert!(f(&r, "audioSamples") > 0.0, "no audio decoded: {r}");
    assert!(
        s.rill.log().contains("live/v: bridging audio to Opus"),
        "{}",
        s.rill.log()
    );
    // DELETE on the Location ended the viewer: its subscription is gone.
    assert_eq!(r["deleteStatus"], 200);
    wait_for(Duration::from_secs(5), || {
        (subscribers(&s.rill, "live/v") == 0).then_some(())
    })
    .unwrap_or_else(|| {
        panic!(
            "the viewer's subscription outlived DELETE:\n{}",
            s.rill.log()
        )
    });
    assert!(s.rill.log().contains("WHEP viewer of live/v ended"));
    // With its last player gone the stream is idle: the bridge stops.
    wait_for(Duration::from_secs(5), || {
        s.rill
            .log()
            .contains("live/v: audio bridge ended")
            .then_some(())
    })
    .unwrap_or_else(|| panic!("the bridge outlived its players:\n{}", s.rill.log()));
}

#[test]
fn opus_published_by_ffmpeg_9_reaches_a_whep_viewer() {
    if !browser_ready("opus_published_by_ffmpeg_9_reaches_a_whep_viewer") {
        return;
    }
    let s = Server::start("");
    let _p = s.publish(true, "live/o", "libopus");
    wait_publishing(&s.rill, "live/o");
    let r = run_driver(
        &["whep", &s.url("live/o", "whep"), "--seconds", "5"],
        &s.rill,
    );
    assert_eq!(r["videoCodec"], "video/H264");
    assert_eq!(r["audioCodec"], "audio/opus");
    // 50 Opus packets a second (20 ms frames) for the 5 s played.
    assert!(f(&r, "audioPackets") >= 200.0, "{r}");
    assert!(f(&r, "audioSamples") > 0.0, "no audio decoded: {r}");
    assert!(f(&r, "framesDecoded") >= 100.0, "{r}");
}

#[test]
fn ffmpeg_9_publishes_with_whip_and_chromium_plays_it_over_whep() {
    if !browser_ready("ffmpeg_9_publishes_with_whip_and_chromium_plays_it_over_whep") {
        return;
    }
    let s = Server::start("");
    // ffmpeg's whip muxer: H.264 (baseline, no B-frames) + Opus.
    let _p = Guard(publish_lavfi(
        true,
        40,
        "libx264",
        "libopus",
        &[
            "-profile:v",
            "baseline",
            "-ar",
            "48000",
            "-ac",
            "2",
            "-f",
            "whip",
        ],
        &s.url("live/f", "whip"),
    ));
    wait_publishing(&s.rill, "live/f");
    let r = run_driver(
        &["whep", &s.url("live/f", "whep"), "--seconds", "4"],
        &s.rill,
    );
    assert_eq!(r["videoCodec"], "video/H264");
    assert_eq!(r["audioCodec"], "audio/opus");
    assert!(f(&r, "framesDecoded") >= 4.0 * 23.0, "{r}");
    assert!(f(&r, "audioSamples") > 0.0, "no audio decoded: {r}");
}

/// A WHIP publisher that keeps publishing until dropped; the first JSON
/// line says it connected.
struct Whip {
    child: Child,
}

impl Whip {
    fn start(url: &str, rill: &Rill) -> Whip {
        Whip::start_with(url, rill, "H264")
    }

    /// Chromium publishing `codec` video (offered alone unless H.264).
    fn start_with(url: &str, rill: &Rill, codec: &str) -> Whip {
        let mut args = vec![
            "whip",
            url,
            "--hold",
            "--video-codec",
            codec,
            "--timeout",
            "30",
        ];
        if codec != "H264" {
            args.push("--only-codec");
        }
        let mut child = driver(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run node webrtc.mjs whip");
        let out = child.stdout.take().unwrap();
        let mut lines = BufReader::new(out).lines();
        let first = lines.next().and_then(|l| l.ok()).unwrap_or_default();
        let v: serde_json::Value = serde_json::from_str(&first).unwrap_or_default();
        assert_eq!(
            v["connected"],
            true,
            "WHIP publisher did not connect: {first}\n{}",
            rill.log()
        );
        assert_eq!(v["videoCodec"], format!("video/{codec}"), "{first}");
        assert_eq!(v["audioCodec"], "audio/opus", "{first}");
        Whip { child }
    }
}

impl Drop for Whip {
    fn drop(&mut self) {
        // Closing stdin ends the driver, which DELETEs its resource.
        drop(self.child.stdin.take());
        for _ in 0..100 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn chromium_publishes_with_whip_and_ffmpeg_plays_it_over_rtmp_and_hls() {
    if !browser_ready("chromium_publishes_with_whip_and_ffmpeg_plays_it_over_rtmp_and_hls") {
        return;
    }
    let s = Server::start("");
    let whip = Whip::start(&s.url("live/w", "whip"), &s.rill);
    wait_publishing(&s.rill, "live/w");
    let url = format!("rtmp://127.0.0.1:{}/live/w", s.rtmp);
    // Opus in FLV is Enhanced RTMP: ffmpeg 9 reads it, when it says so.
    let d = play(true, &url, 4, &rtmp::ENHANCED_PLAY);
    assert_av(&d, 4, "Enhanced RTMP", &s.rill);
    // And over LL-HLS (fMP4, Opus as published), with Debian's ffmpeg.
    let hls = format!("http://127.0.0.1:{}/live/w.m3u8", s.rill.http_port);
    assert_av(&play(false, &hls, 4, &[]), 4, "LL-HLS", &s.rill);
    // Browsers send a key frame only when asked: the plugin asks every
    // keyframe_interval (2 s), so players joining later start promptly.
    let out = Command::new(ffmpeg(true))
        .args(["-hide_banner", "-rw_timeout", "15000000", "-i", &url])
        .args([
            "-t", "6", "-map", "0:v", "-vf", "showinfo", "-f", "null", "-",
        ])
        .stdin(Stdio::null())
        .output()
        .expect("run ffmpeg");
    let info = String::from_utf8_lossy(&out.stderr);
    let keys = info.matches("iskey:1").count();
    assert!(
        keys >= 3,
        "{keys} key frames in 6 s of a WHIP stream\n{info}"
    );
    drop(whip);
    wait_for(Duration::from_secs(10), || {
        s.rill
            .log()
            .contains("WHIP publisher of live/w ended")
            .then_some(())
    })
    .unwrap_or_else(|| panic!("the publisher outlived DELETE:\n{}", s.rill.log()));
}

/// A legacy RTMP player (Debian's ffmpeg 5.1: no Enhanced RTMP) of a WHIP
/// stream gets its Opus as AAC, bridged once for the stream.
#[test]
fn a_legacy_rtmp_player_of_a_whip_stream_gets_aac() {
    if !browser_ready("a_legacy_rtmp_player_of_a_whip_stream_gets_aac") {
        return;
    }
    let s = Server::start("");
    let _whip = Whip::start(&s.url("live/l", "whip"), &s.rill);
    wait_publishing(&s.rill, "live/l");
    let url = format!("rtmp://127.0.0.1:{}/live/l", s.rtmp);
    let streams = probe(&url, &[]);
    assert!(
        streams.contains(&("audio".into(), "aac".into()))
            && streams.contains(&("video".into(), "h264".into())),
        "ffprobe found {streams:?}\n{}",
        s.rill.log()
    );
    // 1024-sample AAC frames at 48 kHz: 47 a second.
    assert_av(&play(false, &url, 4, &[]), 4, "legacy RTMP", &s.rill);
    assert!(s.rill.log().contains("live/l: bridging audio to AAC"));
}

/// Chromium plays a VP9 or AV1 stream (published by ffmpeg 9 over
/// Enhanced RTMP, with Opus) over WHEP.
fn whep_plays(vcodec: &str, extra: &[&str], mime: &str) {
    let s = Server::start("");
    let mut args = extra.to_vec();
    args.extend(["-g", "25", "-f", "flv"]);
    let _p = Guard(publish_lavfi(
        true,
        40,
        vcodec,
        "libopus",
        &args,
        &format!("rtmp://127.0.0.1:{}/live/x", s.rtmp),
    ));
    wait_publishing(&s.rill, "live/x");
    let r = run_driver(
        &["whep", &s.url("live/x", "whep"), "--seconds", "4"],
        &s.rill,
    );
    assert_eq!(r["videoCodec"], mime, "{r}");
    assert_eq!((f(&r, "width"), f(&r, "height")), (320.0, 240.0), "{r}");
    // 25 frames a second.
    assert!(f(&r, "framesDecoded") >= 4.0 * 20.0, "{r}");
    assert_eq!(f(&r, "packetsLost"), 0.0, "{r}");
    assert_eq!(r["audioCodec"], "audio/opus", "{r}");
}

#[test]
fn whep_plays_vp9() {
    if !browser_ready("whep_plays_vp9") {
        return;
    }
    whep_plays(
        "libvpx-vp9",
        &["-deadline", "realtime", "-cpu-used", "8"],
        "video/VP9",
    );
}

#[test]
fn whep_plays_av1() {
    if !browser_ready("whep_plays_av1") {
        return;
    }
    whep_plays("libsvtav1", &["-preset", "12"], "video/AV1");
}

/// A browser offering VP8 alone publishes VP8, and another browser plays it.
#[test]
fn vp8_from_whip_plays_over_whep() {
    if !browser_ready("vp8_from_whip_plays_over_whep") {
        return;
    }
    let s = Server::start("");
    let _whip = Whip::start_with(&s.url("live/v8", "whip"), &s.rill, "VP8");
    wait_publishing(&s.rill, "live/v8");
    let r = run_driver(
        &["whep", &s.url("live/v8", "whep"), "--seconds", "4"],
        &s.rill,
    );
    assert_eq!(r["videoCodec"], "video/VP8", "{r}");
    assert_eq!((f(&r, "width"), f(&r, "height")), (640.0, 360.0), "{r}");
    assert!(f(&r, "framesDecoded") >= 4.0 * 20.0, "{r}");
    assert_eq!(r["audioCodec"], "audio/opus", "{r}");
}

#[test]
fn twenty_whep_viewers_at_once() {
    if !browser_ready("twenty_whep_viewers_at_once") {
        return;
    }
    let s = Server::start("");
    let _p = s.publish(false, "live/m", "aac");
    wait_publishing(&s.rill, "live/m");
    let r = run_driver(
        &[
            "whep",
            &s.url("live/m", "whep"),
            "--count",
            "20",
            "--seconds",
            "3",
            "--timeout",
            "60",
        ],
        &s.rill,
    );
    let viewers = r["viewers"].as_array().expect("viewers");
    assert_eq!(viewers.len(), 20);
    for (i, v) in viewers.iter().enumerate() {
        assert!(
            v.as_f64().unwrap_or(0.0) >= 40.0,
            "viewer {i} decoded {v} frames: {r}"
        );
    }
}

/// Which way a lossy relay drops.
#[derive(Clone, Copy, PartialEq)]
enum Toward {
    Client,
    Server,
}

/// Whether a datagram is RTP (not RTCP, STUN or DTLS: RFC 7983's first
/// byte 128..=191, then not an RTCP packet type).
fn is_rtp(d: &[u8]) -> bool {
    d.len() > 12 && (128..=191).contains(&d[0]) && !(192..=223).contains(&d[1])
}

/// One xorshift step: the relays' reproducible randomness.
fn next(rng: &mut u64) -> u64 {
    *rng ^= *rng << 13;
    *rng ^= *rng >> 7;
    *rng ^= *rng << 17;
    *rng
}

/// A UDP relay between one WebRTC client and the server's port that drops
/// `loss_pct` of the RTP packets going `toward` one side, at random but
/// reproducibly. Returns its port, the count of packets dropped, and the
/// flag that stops it.
fn lossy_rtp_relay(
    server: u16,
    loss_pct: u64,
    toward: Toward,
) -> (u16, Arc<AtomicU64>, Arc<AtomicBool>) {
    let front = UdpSocket::bind("127.0.0.1:0").unwrap();
    let back = UdpSocket::bind("127.0.0.1:0").unwrap();
    back.connect(("127.0.0.1", server)).unwrap();
    let port = front.local_addr().unwrap().port();
    let (dropped, stop) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicBool::new(false)),
    );
    let client = Arc::new(std::sync::Mutex::new(None));
    let timeout = Some(Duration::from_millis(100));
    {
        let (front, back) = (front.try_clone().unwrap(), back.try_clone().unwrap());
        let (stop, client, dropped) = (stop.clone(), client.clone(), dropped.clone());
        front.set_read_timeout(timeout).unwrap();
        std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            let mut rng = 0x9E37_79B9_7F4A_7C15u64;
            while !stop.load(Ordering::Relaxed) {
                if let Ok((n, from)) = front.recv_from(&mut buf) {
                    *client.lock().unwrap() = Some(from);
                    let lose = next(&mut rng) % 100 < loss_pct;
                    if toward == Toward::Server && lose && is_rtp(&buf[..n]) {
                        dropped.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    let _ = back.send(&buf[..n]);
                }
            }
        });
    }
    {
        let (stop, dropped) = (stop.clone(), dropped.clone());
        back.set_read_timeout(timeout).unwrap();
        std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            let mut rng = 0x2545_F491_4F6C_DD1Du64;
            while !stop.load(Ordering::Relaxed) {
                let Ok(n) = back.recv(&mut buf) else { continue };
                let lose = next(&mut rng) % 100 < loss_pct;
                if toward == Toward::Client && lose && is_rtp(&buf[..n]) {
                    dropped.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                if let Some(to) = *client.lock().unwrap() {
                    let _ = front.send_to(&buf[..n], to);
                }
            }
        });
    }
    (port, dropped, stop)
}

/// 3 % of the media lost on the way to Chromium: it asks for what is
/// missing (NACK), the server resends it from the viewer's history, and
/// the video plays on.
#[test]
fn a_whep_viewer_recovers_lost_packets_by_nack() {
    if !browser_ready("a_whep_viewer_recovers_lost_packets_by_nack") {
        return;
    }
    let s = Server::start("");
    let udp = s.udp;
    let _p = s.publish(false, "live/n", "aac");
    wait_publishing(&s.rill, "live/n");
    let (relay, dropped, stop) = lossy_rtp_relay(udp, 3, Toward::Client);
    let r = run_driver(
        &[
            "whep",
            &s.url("live/n", "whep"),
            "--seconds",
            "6",
            "--answer-port",
            &relay.to_string(),
        ],
        &s.rill,
    );
    stop.store(true, Ordering::Relaxed);
    let dropped = dropped.load(Ordering::Relaxed);
    eprintln!(
        "lossy WHEP: {dropped} RTP packets dropped, {} NACKs, {} retransmissions received, {} frames decoded, {} freezes",
        r["nackCount"], r["retransmitted"], r["framesDecoded"], r["freezeCount"]
    );
    assert!(
        dropped > 20,
        "the relay dropped only {dropped} packets: {r}"
    );
    assert!(f(&r, "nackCount") > 0.0, "no NACK sent: {r}");
    assert!(f(&r, "retransmitted") > 0.0, "nothing resent: {r}");
    // 25 frames a second for 6 s: most decoded despite the loss.
    assert!(f(&r, "framesDecoded") >= 6.0 * 20.0, "{r}");
}

/// 5 % of Chromium's WHIP media lost on the way to the server: the server
/// asks for it again (NACK), and an RTMP player of the stream decodes a
/// steady picture.
#[test]
fn a_whip_publisher_resends_lost_packets_when_asked() {
    if !browser_ready("a_whip_publisher_resends_lost_packets_when_asked") {
        return;
    }
    let s = Server::start("");
    let (relay, dropped, stop) = lossy_rtp_relay(s.udp, 5, Toward::Server);
    let url = format!("rtmp://127.0.0.1:{}/live/wl", s.rtmp);
    // The player comes first and waits for the publisher (the wait queue).
    let player = std::thread::spawn(move || play(true, &url, 4, &rtmp::ENHANCED_PLAY));
    let r = run_driver(
        &[
            "whip",
            &s.url("live/wl", "whip"),
            "--seconds",
            "8",
            "--answer-port",
            &relay.to_string(),
        ],
        &s.rill,
    );
    stop.store(true, Ordering::Relaxed);
    let d = player.join().unwrap();
    let dropped = dropped.load(Ordering::Relaxed);
    eprintln!(
        "lossy WHIP: {dropped} RTP packets dropped, {} NACKs received by Chromium; RTMP player decoded {} video frames\n{}",
        r["nackCount"],
        d.count(0),
        d.stderr
    );
    assert!(
        dropped > 10,
        "the relay dropped only {dropped} packets: {r}"
    );
    assert!(
        f(&r, "nackCount") > 0.0,
        "the server asked for nothing: {r}"
    );
    assert!(
        d.count(0) >= 4 * 20 && d.monotonic(0),
        "video {} frames, monotonic {}\n{}\n{}",
        d.count(0),
        d.monotonic(0),
        d.stderr,
        s.rill.log()
    );
}

/// A viewer whose UDP does not get through (the answer's UDP candidate
/// points at a dead port) connects over ICE-TCP and plays.
#[test]
fn a_whep_viewer_without_udp_plays_over_ice_tcp() {
    if !browser_ready("a_whep_viewer_without_udp_plays_over_ice_tcp") {
        return;
    }
    let tcp = free_port();
    let s = Server::start(&format!("tcp_listen: 127.0.0.1:{tcp}"));
    assert!(
        s.rill.log().contains("ICE-TCP on 127.0.0.1:"),
        "{}",
        s.rill.log()
    );
    let _p = s.publish(false, "live/tcp", "aac");
    wait_publishing(&s.rill, "live/tcp");
    let dead = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let r = run_driver(
        &[
            "whep",
            &s.url("live/tcp", "whep"),
            "--seconds",
            "4",
            "--answer-port",
            &dead.to_string(),
        ],
        &s.rill,
    );
    assert!(
        r["remote"].as_str().unwrap_or("").contains("tcp"),
        "not over TCP: {}",
        r["remote"]
    );
    assert!(f(&r, "framesDecoded") >= 4.0 * 20.0, "{r}");
    assert_eq!(r["audioCodec"], "audio/opus", "{r}");
}

#[test]
fn a_peer_that_never_connects_is_dropped_and_freed() {
    let s = Server::start("connect_timeout: 1s");
    let _p = s.publish(false, "live/t", "aac");
    wait_publishing(&s.rill, "live/t");
    // Chromium's WHEP offer, whose ICE checks never come.
    let offer = std::fs::read_to_string(
        workspace_dir().join("plugins/webrtc/fuzz/corpus/offer/chromium_whep"),
    )
    .unwrap();
    let sdp = [("Content-Type", "application/sdp")];
    let (st, head, answer) =
        http_request_with(s.rill.http_port, "POST", "/live/t/whep", &sdp, &offer);
    assert_eq!(st, 201, "{head}\n{answer}");
    assert!(head.contains("location: /webrtc/session/"), "{head}");
    assert!(answer.contains("a=ice-lite"), "{answer}");
    assert_eq!(subscribers(&s.rill, "live/t"), 1);
    wait_for(Duration::from_secs(5), || {
        (subscribers(&s.rill, "live/t") == 0).then_some(())
    })
    .unwrap_or_else(|| panic!("the peer outlived its connect timeout:\n{}", s.rill.log()));
    assert!(s.rill.log().contains("never connected"), "{}", s.rill.log());
    // Its resource is gone too.
    let location = head
        .lines()
        .find_map(|l| l.strip_prefix("location: "))
        .unwrap()
        .trim();
    let (st, _, _) = http_request_with(s.rill.http_port, "DELETE", location, &[], "");
    assert_eq!(st, 404);
}

#[test]
fn bad_requests_get_clear_answers() {
    let s = Server::start("");
    let port = s.rill.http_port;
    let sdp = [("Content-Type", "application/sdp")];
    let (st, _, body) = http_request_with(port, "POST", "/live/x/whep", &sdp, "v=0\r\ngarbage");
    assert_eq!(st, 400, "{body}");
    assert!(body.contains("SDP"), "{body}");
    let plain = [("Content-Type", "text/plain")];
    let (st, _, _) = http_request_with(port, "POST", "/live/x/whep", &plain, "v=0\r\n");
    assert_eq!(st, 415);
    let big = "a".repeat(40_000);
    let (st, _, _) = http_request_with(port, "POST", "/live/x/whip", &sdp, &big);
    assert_eq!(st, 413);
    let (st, _, _) = http_request_with(port, "POST", "/x/whip", &sdp, "v=0\r\n");
    assert_eq!(st, 404);
    let (st, _, _) = http_request_with(
        port,
        "DELETE",
        "/webrtc/session/0123456789abcdef0123456789abcdef",
        &[],
        "",
    );
    assert_eq!(st, 404);
    // The CORS preflight of a browser on another origin.
    let (st, head, _) = http_request_with(
        port,
        "OPTIONS",
        "/live/x/whip",
        &[
            ("Origin", "http://example.com"),
            ("Access-Control-Request-Method", "POST"),
        ],
        "",
    );
    assert_eq!(st, 204, "{head}");
    assert!(head.contains("access-control-allow-origin: *"), "{head}");
    assert!(
        head.contains("access-control-allow-methods: options, post"),
        "{head}"
    );
    // Nothing was opened.
    assert!(!s.rill.log().contains("answered"), "{}", s.rill.log());
}
