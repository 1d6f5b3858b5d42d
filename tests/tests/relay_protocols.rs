//! Relays over RTSP and SRT with real peers: a Rill pulls from another
//! Rill's RTSP server (fed by ffmpeg over RTSP) and SRT listener (fed by
//! ffmpeg over SRT), and pushes to another Rill over SRT and RTSP. Players
//! are ffmpeg, and every check is on what they decoded: codecs, frame
//! counts with no video frame missing, timestamps that only go forward,
//! and audio in step with video through an RTSP pull; H.264 + AAC and
//! HEVC + Opus; bad sources end their attempts with a reason.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use rill_e2e::relay::{self, bad_server};
use rill_e2e::*;

/// A Rill with RTMP, HTTP-FLV, RTSP, SRT and the relay (its section
/// `relay_yaml`), each on a free port.
struct Node {
    rill: Rill,
    rtmp: u16,
    rtsp: u16,
    srt: u16,
}

fn node(relay_yaml: &str) -> Node {
    let (rtmp, rtsp, srt) = (free_port(), free_port(), free_port());
    let yaml = format!(
        "plugins:\n  rtmp:\n    listen: 127.0.0.1:{rtmp}\n  rtsp:\n    listen: 127.0.0.1:{rtsp}\n  \
         srt:\n    listen: 127.0.0.1:{srt}\n{}publish:\n  reconnect_grace: 5s\n",
        relay::section(relay_yaml)
    );
    let rill = Rill::start(
        &yaml,
        &[
            rill_e2e::rtmp::plugin(),
            relay::plugin("flv"),
            relay::plugin("rtsp"),
            relay::plugin("srt"),
            relay::plugin("relay"),
        ],
    );
    assert!(wait_port(rtmp, Duration::from_secs(10)), "{}", rill.log());
    assert!(wait_port(rtsp, Duration::from_secs(10)), "{}", rill.log());
    wait_for(Duration::from_secs(10), || {
        rill.log().contains("SRT on udp").then_some(())
    })
    .unwrap_or_else(|| panic!("no SRT listener:\n{}", rill.log()));
    Node {
        rill,
        rtmp,
        rtsp,
        srt,
    }
}

impl Node {
    fn rtmp_url(&self, path: &str) -> String {
        format!("rtmp://127.0.0.1:{}/{path}", self.rtmp)
    }

    fn rtsp_url(&self, path: &str) -> String {
        format!("rtsp://127.0.0.1:{}/{path}", self.rtsp)
    }

    /// An SRT URL as the relay takes it (latency in ms).
    fn srt_url(&self, sid: &str) -> String {
        format!("srt://127.0.0.1:{}?streamid={sid}&latency=200", self.srt)
    }

    fn jobs(&self, kind: &str) -> Vec<serde_json::Value> {
        relay::jobs(&self.rill, kind)
    }

    fn wait_job(&self, kind: &str, state: &str) -> serde_json::Value {
        wait_for(Duration::from_secs(30), || {
            self.jobs(kind)
                .into_iter()
                .find(|j| j["state"] == state && (state != "live" || j["bytes"].as_u64() > Some(0)))
        })
        .unwrap_or_else(|| {
            panic!(
                "no {state} {kind}: {:?}\n{}",
                self.jobs(kind),
                self.rill.log()
            )
        })
    }
}

struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// ffmpeg publishing H.264 + AAC for `secs` seconds.
fn publish(secs: u32, extra: &[&str], url: &str) -> Guard {
    Guard(publish_lavfi(false, secs, "libx264", "aac", extra, url))
}

/// Video and audio decoded: at least `secs` − 0.5 s of video with no
/// frame missing over the span (25 fps; framemd5 counts in 1/25 s), audio
/// present, timestamps increasing.
fn check_played(d: &Decoded, secs: u32, what: &str) {
    let dts: Vec<i64> = d.packets.iter().filter(|p| p.0 == 0).map(|p| p.1).collect();
    let (Some(first), Some(last)) = (dts.first(), dts.last()) else {
        panic!("{what}: no video\n{}", d.stderr);
    };
    let spanned = (last - first + 1) as usize;
    let video = dts.len();
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

fn codecs(url: &str, opts: &[&str]) -> Vec<String> {
    let mut c: Vec<String> = probe(url, opts).into_iter().map(|(_, c)| c).collect();
    c.sort();
    c
}

#[test]
fn pulls_from_an_rtsp_server() {
    let src = node("");
    let _enc = publish(
        40,
        &["-f", "rtsp", "-rtsp_transport", "tcp"],
        &src.rtsp_url("live/cam"),
    );
    wait_publishing(&src.rill, "live/cam");
    let edge = node(&format!(
        "pulls:\n  - url: {}\n    stream: cams/rtsp\n",
        src.rtsp_url("live/cam")
    ));
    let job = edge.wait_job("pulls", "live");
    assert_eq!(job["stream"], "cams/rtsp");
    assert!(job["url"].as_str().unwrap().starts_with("rtsp://"), "{job}");
    wait_publishing(&edge.rill, "cams/rtsp");
    let s = edge.rill.get_json("/api/v1/streams/cams/rtsp");
    assert!(
        s["publisher"]["source"]
            .as_str()
            .is_some_and(|u| u.ends_with("/live/cam")),
        "{s}"
    );
    let url = edge.rtmp_url("cams/rtsp");
    assert_eq!(codecs(&url, &[]), ["aac", "h264"]);
    check_played(&play(false, &url, 4, &[]), 4, "RTMP player of an RTSP pull");
    // And out again over RTSP, from the edge.
    let tcp = ["-rtsp_transport", "tcp"];
    check_played(
        &play(false, &edge.rtsp_url("cams/rtsp"), 3, &tcp),
        3,
        "RTSP player of an RTSP pull",
    );
}

#[test]
fn pulls_from_an_srt_listener() {
    let src = node("");
    let enc = publish(
        40,
        &["-f", "mpegts"],
        &format!(
            "srt://127.0.0.1:{}?streamid=publish:live/s&latency=200000",
            src.srt
        ),
    );
    wait_publishing(&src.rill, "live/s");
    let edge = node(&format!(
        "stall_timeout: 3s\nretry_max: 2s\npulls:\n  - url: '{}'\n    stream: cams/srt\n",
        src.srt_url("#!::r=live/s,m=request")
    ));
    let job = edge.wait_job("pulls", "live");
    assert!(job["url"].as_str().unwrap().starts_with("srt://"), "{job}");
    wait_publishing(&edge.rill, "cams/srt");
    let url = edge.rtmp_url("cams/srt");
    assert_eq!(codecs(&url, &[]), ["aac", "h264"]);
    check_played(&play(false, &url, 4, &[]), 4, "RTMP player of an SRT pull");
    // The source gone: the attempt ends with a reason and the job retries.
    drop(enc);
    let j = edge.wait_job("pulls", "retrying");
    assert!(!j["reason"].as_str().unwrap_or("").is_empty(), "{j}");
}

#[test]
fn pushes_to_a_second_rill_over_srt_and_rtsp() {
    let target = node("");
    let a = node(&format!(
        "pushes:\n  - match: '^live/(.+)$'\n    url: '{}'\n  - match: '^live/(.+)$'\n    url: {}\n",
        target.srt_url("publish:scopy/$1"),
        target.rtsp_url("rcopy/$1"),
    ));
    let _enc = publish(40, &["-f", "flv"], &a.rtmp_url("live/p"));
    wait_publishing(&a.rill, "live/p");
    wait_for(Duration::from_secs(30), || {
        let live = a
            .jobs("pushes")
            .iter()
            .filter(|j| j["state"] == "live" && j["bytes"].as_u64() > Some(0))
            .count();
        (live == 2).then_some(())
    })
    .unwrap_or_else(|| panic!("pushes: {:?}\n{}", a.jobs("pushes"), a.rill.log()));
    wait_publishing(&target.rill, "scopy/p");
    wait_publishing(&target.rill, "rcopy/p");
    for path in ["scopy/p", "rcopy/p"] {
        let url = target.rtmp_url(path);
        assert_eq!(codecs(&url, &[]), ["aac", "h264"], "{path}");
        check_played(&play(false, &url, 4, &[]), 4, path);
    }
}

/// Through an RTSP pull audio stays in step with video: a click at every
/// whole second of the source's audio stays within 40 ms of the video key
/// frame made at the same second, as recorded from the pulled stream.
/// (Rill's RTSP server starts every track near the same instant; the
/// RTP-Info alignment for servers that do not is in the relay's unit
/// tests.)
#[test]
fn an_rtsp_pull_keeps_audio_and_video_in_step() {
    let src = node("");
    let publisher = Command::new(ffmpeg(false))
        .args(["-hide_banner", "-loglevel", "error", "-re"])
        .args([
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=320x240:rate=25:duration=40",
        ])
        .args(["-f", "lavfi", "-i"])
        .arg("aevalsrc=if(lt(mod(t\\,1)\\,0.02)\\,sin(2*PI*1000*t)\\,0):s=48000:d=40")
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
        .arg(src.rtmp_url("live/av"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _p = Guard(publisher);
    wait_publishing(&src.rill, "live/av");
    let edge = node(&format!(
        "pulls:\n  - url: {}\n    stream: cams/av\n",
        src.rtsp_url("live/av")
    ));
    edge.wait_job("pulls", "live");
    let dir = tempfile::tempdir().unwrap();
    let rec = dir.path().join("rec.mkv");
    let st = Command::new(ffmpeg(false))
        .args(["-hide_banner", "-loglevel", "error"])
        .args(["-i", &edge.rtmp_url("cams/av"), "-t", "6", "-c", "copy"])
        .arg(&rec)
        .status()
        .unwrap();
    assert!(st.success());
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

/// A UDP socket on a free port that answers every datagram with garbage.
fn garbage_udp() -> u16 {
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = sock.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut buf = [0u8; 2048];
        while let Ok((_, from)) = sock.recv_from(&mut buf) {
            let _ = sock.send_to(b"\x80\x00garbage, not SRT", from);
        }
    });
    port
}

#[test]
fn bad_rtsp_and_srt_sources_end_with_a_reason_and_back_off() {
    // A web server where an RTSP server should be.
    let web = bad_server(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
    let silent = bad_server(b"");
    // OPTIONS and DESCRIBE answered at once (no CSeq: taken in order);
    // the SDP has only an ONVIF metadata track.
    let no_media = bad_server(
        b"RTSP/1.0 200 OK\r\n\r\nRTSP/1.0 200 OK\r\nContent-Type: application/sdp\r\n\
          Content-Length: 109\r\n\r\nv=0\r\no=- 0 0 IN IP4 0.0.0.0\r\ns=x\r\nt=0 0\r\n\
          m=application 0 RTP/AVP 107\r\na=rtpmap:107 vnd.onvif.metadata/90000\r\n",
    );
    let garbage = garbage_udp();
    let srt = free_port();
    let a = node(&format!(
        "stall_timeout: 2s\nretry_initial: 500ms\nretry_max: 4s\npulls:\n\
         - {{url: 'rtsp://127.0.0.1:{web}/live/x', stream: bad/web}}\n\
         - {{url: 'rtsp://127.0.0.1:{silent}/live/x', stream: bad/silent}}\n\
         - {{url: 'rtsp://127.0.0.1:{no_media}/live/x', stream: bad/nomedia}}\n\
         - {{url: 'srt://127.0.0.1:{garbage}?streamid=read:live/x', stream: bad/srtgarbage}}\n\
         - {{url: 'srt://127.0.0.1:{srt}?streamid=x', stream: bad/nobody}}\n"
    ));
    // The node's own SRT listener refuses a stream id it cannot read.
    let refused = format!(
        "{{\"url\": \"srt://127.0.0.1:{}?streamid=%23!::r=live/x,m=bogus\", \"stream\": \"bad/refused\"}}",
        a.srt
    );
    let (st, _, resp) = http_request_with(
        a.rill.http_port,
        "POST",
        "/api/v1/pulls",
        &[("Host", "127.0.0.1"), ("Content-Type", "application/json")],
        &refused,
    );
    assert_eq!(st, 201, "{resp}");
    let expect: [(&str, &[&str]); 6] = [
        ("bad/web", &["RTSP"]),
        ("bad/silent", &["no answer", "no media"]),
        ("bad/nomedia", &["SDP"]),
        ("bad/srtgarbage", &["no media"]),
        ("bad/nobody", &["no media", "SRT"]),
        ("bad/refused", &["refused: bad stream id"]),
    ];
    relay::wait_failing(&a.rill, 30, &expect);
}

/// HEVC and Opus come through both pulls: published over RTSP to the
/// source, pulled over RTSP and over SRT (the source's TS), played over
/// RTSP from the edge.
#[test]
fn pulls_hevc_and_opus_over_rtsp_and_srt() {
    let src = node("");
    let _enc = Guard(publish_lavfi(
        false,
        40,
        "libx265",
        "libopus",
        &["-f", "rtsp", "-rtsp_transport", "tcp"],
        &src.rtsp_url("live/h"),
    ));
    wait_publishing(&src.rill, "live/h");
    let edge = node(&format!(
        "pulls:\n  - url: {}\n    stream: cams/hr\n  - url: '{}'\n    stream: cams/hs\n",
        src.rtsp_url("live/h"),
        src.srt_url("read:live/h"),
    ));
    wait_for(Duration::from_secs(30), || {
        let live = edge
            .jobs("pulls")
            .iter()
            .filter(|j| j["state"] == "live" && j["bytes"].as_u64() > Some(0))
            .count();
        (live == 2).then_some(())
    })
    .unwrap_or_else(|| panic!("pulls: {:?}\n{}", edge.jobs("pulls"), edge.rill.log()));
    let tcp = ["-rtsp_transport", "tcp"];
    for path in ["cams/hr", "cams/hs"] {
        let url = edge.rtsp_url(path);
        assert_eq!(codecs(&url, &tcp), ["hevc", "opus"], "{path}");
        check_played(&play(false, &url, 3, &tcp), 3, path);
    }
}

/// HEVC and Opus go out through both pushes: published over RTSP, pushed
/// over SRT and RTSP, played over RTSP from the target.
#[test]
fn pushes_hevc_and_opus_over_srt_and_rtsp() {
    let target = node("");
    let a = node(&format!(
        "pushes:\n  - match: '^live/(.+)$'\n    url: '{}'\n  - match: '^live/(.+)$'\n    url: {}\n",
        target.srt_url("publish:scopy/$1"),
        target.rtsp_url("rcopy/$1"),
    ));
    let _enc = Guard(publish_lavfi(
        false,
        40,
        "libx265",
        "libopus",
        &["-f", "rtsp", "-rtsp_transport", "tcp"],
        &a.rtsp_url("live/h"),
    ));
    wait_publishing(&a.rill, "live/h");
    wait_publishing(&target.rill, "scopy/h");
    wait_publishing(&target.rill, "rcopy/h");
    let tcp = ["-rtsp_transport", "tcp"];
    for path in ["scopy/h", "rcopy/h"] {
        let url = target.rtsp_url(path);
        // The target declares a TS track at its first frame: an RTSP
        // player that comes at once may see the video alone.
        let mut seen = Vec::new();
        wait_for(Duration::from_secs(10), || {
            seen = codecs(&url, &tcp);
            (seen == ["hevc", "opus"]).then_some(())
        })
        .unwrap_or_else(|| panic!("{path}: {seen:?}\n{}", target.rill.log()));
        check_played(&play(false, &url, 3, &tcp), 3, path);
    }
}
