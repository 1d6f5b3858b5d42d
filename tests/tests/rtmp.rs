//! The RTMP plugin loaded by the real server, against real clients: ffmpeg
//! (Debian's 5.1 for classic RTMP, the static ffmpeg 9 for Enhanced RTMP),
//! GStreamer (rtmp2src/rtmp2sink) and rtmpdump. Every test runs its own
//! server on free ports, streams for seconds, and asserts on what the
//! clients decoded.

use std::io::Write;
use std::process::Command;
use std::time::{Duration, Instant};

use rill_e2e::rtmp::*;
use rill_e2e::{publish_lavfi, Decoded};

/// Video is 25 fps, audio 48 kHz; AAC has 1024 samples a frame, Opus 960.
const FPS: f64 = 25.0;
const AAC_FPS: f64 = 48_000.0 / 1024.0;
const OPUS_FPS: f64 = 50.0;

/// `n` within ±5% of `expected`.
fn near(n: usize, expected: f64) -> bool {
    (n as f64 - expected).abs() <= expected * 0.05
}

/// Asserts a 2-stream decode: frame counts within 5% of `secs` of media,
/// timestamps strictly increasing per stream.
fn assert_decoded(what: &str, d: &Decoded, secs: f64, audio_fps: f64, server: &Server) {
    let ok = near(d.count(0), secs * FPS)
        && near(d.count(1), secs * audio_fps)
        && d.monotonic(0)
        && d.monotonic(1);
    assert!(
        ok,
        "{what}: expected {} video and {} audio frames ±5%, monotonic; got {}\n{}",
        secs * FPS,
        secs * audio_fps,
        summary(d),
        server.rill.log()
    );
    eprintln!("{what}: {}", summary(d));
}

/// The static ffmpeg 9's view of `url` (it has no ffprobe): (kind, codec)
/// per input stream, from its stream listing.
fn probe_modern(url: &str) -> Vec<(String, String)> {
    let out = Command::new(rill_e2e::ffmpeg(true))
        .args(["-hide_banner"])
        .args(rill_e2e::rtmp::ENHANCED_PLAY)
        .args(["-rw_timeout", "20000000", "-i", url])
        .args(["-t", "0.5", "-f", "null", "-"])
        .output()
        .expect("run ffmpeg9");
    let err = String::from_utf8_lossy(&out.stderr);
    let input = err.split("Output #0").next().unwrap_or_default();
    input
        .lines()
        .filter_map(|l| {
            let rest = l.trim().strip_prefix("Stream #0:")?;
            let (_, desc) = rest.split_once(": ")?;
            let (kind, codec) = desc.split_once(": ")?;
            let codec = codec.split([' ', ',']).next()?;
            Some((kind.to_ascii_lowercase(), codec.to_owned()))
        })
        .collect()
}

/// Publishes lavfi video + audio for `secs` s to `path` with ffmpeg.
fn publish(
    server: &Server,
    modern: bool,
    vcodec: &str,
    acodec: &str,
    secs: u32,
    path: &str,
) -> Guard {
    let mut extra = vec!["-f", "flv"];
    if vcodec == "libvpx-vp9" {
        extra = vec![
            "-deadline",
            "realtime",
            "-cpu-used",
            "8",
            "-g",
            "25",
            "-f",
            "flv",
        ];
    }
    Guard(publish_lavfi(
        modern,
        secs,
        vcodec,
        acodec,
        &extra,
        &server.url(path),
    ))
}

#[test]
fn h264_aac_probe_and_play() {
    let server = Server::start("", "");
    let _pub = publish(&server, false, "libx264", "aac", 16, "live/test");
    server.wait_live("live/test", Duration::from_secs(10));
    let url = server.url("live/test");

    let streams = rill_e2e::probe(&url, &[]);
    assert!(
        streams.contains(&("video".into(), "h264".into()))
            && streams.contains(&("audio".into(), "aac".into())),
        "ffprobe found {streams:?}\n{}",
        server.rill.log()
    );

    let d = play_av(false, &url, 10);
    assert_decoded("h264+aac", &d, 10.0, AAC_FPS, &server);
}

/// Enhanced RTMP, published and played with the static ffmpeg 9.
fn enhanced(vcodec: &str, acodec: &str, expect: (&str, &str), audio_fps: f64) {
    let server = Server::start("", "");
    let _pub = publish(&server, true, vcodec, acodec, 16, "live/ertmp");
    server.wait_live("live/ertmp", Duration::from_secs(15));
    let url = server.url("live/ertmp");

    let streams = probe_modern(&url);
    let want = [
        ("video".to_owned(), expect.0.to_owned()),
        ("audio".to_owned(), expect.1.to_owned()),
    ];
    assert!(
        want.iter().all(|w| streams.contains(w)),
        "ffmpeg9 found {streams:?}, want {want:?}\n{}",
        server.rill.log()
    );

    let d = play_av(true, &url, 10);
    assert_decoded(
        &format!("{}+{}", expect.0, expect.1),
        &d,
        10.0,
        audio_fps,
        &server,
    );
}

#[test]
fn enhanced_hevc_aac() {
    enhanced("libx265", "aac", ("hevc", "aac"), AAC_FPS);
}

#[test]
fn enhanced_av1_opus() {
    enhanced("libsvtav1", "libopus", ("av1", "opus"), OPUS_FPS);
}

#[test]
fn enhanced_vp9_opus() {
    enhanced("libvpx-vp9", "libopus", ("vp9", "opus"), OPUS_FPS);
}

#[test]
fn two_players_at_once() {
    let server = Server::start("", "");
    let _pub = publish(&server, false, "libx264", "aac", 15, "live/two");
    server.wait_live("live/two", Duration::from_secs(10));
    let url = server.url("live/two");
    let a = spawn_play_av(false, &url, 10);
    let b = spawn_play_av(false, &url, 10);
    // Both are subscribed at once.
    let both = rill_e2e::wait_for(Duration::from_secs(5), || {
        (server.stream("live/two")?["subscribers"] == 2).then_some(())
    });
    assert!(
        both.is_some(),
        "two subscribers never seen:\n{}",
        server.rill.log()
    );
    let (a, b) = (a.join().unwrap(), b.join().unwrap());
    assert_decoded("player 1", &a, 10.0, AAC_FPS, &server);
    assert_decoded("player 2", &b, 10.0, AAC_FPS, &server);

    // "Mux once, send to many": with equal chunk settings, each frame was
    // chunked by one of the two and sent by both from the per-frame cache.
    // The cache is optimistic: two players on two workers that miss the
    // same frame at once both chunk it (7 % of frames in a loaded run), so
    // the bound is a quarter more than once; without sharing it is twice.
    let counts = rill_e2e::wait_for(Duration::from_secs(5), || {
        let c = play_counts(&server.rill.log(), "live/two");
        (c.len() == 2).then_some(c)
    })
    .unwrap_or_else(|| panic!("no play counts logged:\n{}", server.rill.log()));
    let sent_max = counts.iter().map(|c| c.0).max().unwrap();
    let muxed: u64 = counts.iter().map(|c| c.1).sum();
    eprintln!("(sent, muxed) per player: {counts:?}");
    assert!(
        counts.iter().all(|c| c.0 >= 700) && muxed <= sent_max + sent_max / 4,
        "frames (sent, muxed) per player: {counts:?}: not shared"
    );
}

/// `(sent, muxed here)` of each logged end of a play of `path`.
fn play_counts(log: &str, path: &str) -> Vec<(u64, u64)> {
    log.lines()
        .filter(|l| l.contains(path) && l.contains("frames sent"))
        .filter_map(|l| {
            let (_, rest) = l
                .split_once("): ")
                .or_else(|| l.split_once(&format!("{path}: ")))?;
            let mut nums = rest
                .split(|c: char| !c.is_ascii_digit())
                .filter(|w| !w.is_empty())
                .map(|w| w.parse::<u64>().ok());
            Some((nums.next()??, nums.next()??))
        })
        .collect()
}

#[test]
fn player_waits_for_the_publisher() {
    let server = Server::start("", "");
    let url = server.url("live/later");
    let player = spawn_play_av(false, &url, 5);
    // The player is in the host's wait queue before anyone publishes.
    let waiting = rill_e2e::wait_for(Duration::from_secs(5), || {
        let s = server.stream("live/later")?;
        (s["subscribers"] == 1 && s["publisher"].is_null()).then_some(s["state"].clone())
    });
    assert!(
        waiting.is_some(),
        "no waiting subscriber:\n{}",
        server.rill.log()
    );
    std::thread::sleep(Duration::from_secs(2));
    let _pub = publish(&server, false, "libx264", "aac", 9, "live/later");
    let d = player.join().unwrap();
    // It started with the publisher's first frames: all 5 s decode.
    assert_decoded("waiting player", &d, 5.0, AAC_FPS, &server);
}

#[test]
fn publisher_reconnects_within_the_grace_window() {
    let server = Server::start("publish:\n  reconnect_grace: 5s\n", "");
    let first = publish(&server, false, "libx264", "aac", 30, "live/re");
    server.wait_live("live/re", Duration::from_secs(10));
    let url = server.url("live/re");
    let started = Instant::now();
    let player = spawn_play_av(false, &url, 12);
    std::thread::sleep(Duration::from_secs(4));
    // The publisher drops hard (no FCUnpublish), and is back after 1 s.
    drop(first);
    let dropped_at = started.elapsed();
    let gone = rill_e2e::wait_for(Duration::from_secs(3), || {
        server.stream("live/re")?["publisher"]
            .is_null()
            .then_some(())
    });
    assert!(
        gone.is_some(),
        "publisher still attached:\n{}",
        server.rill.log()
    );
    std::thread::sleep(Duration::from_secs(1));
    let _second = publish(&server, false, "libx264", "aac", 20, "live/re");
    let d = player.join().unwrap();
    let played = started.elapsed();
    // 12 s of output, of which the first publisher could give at most its
    // GOP cache (1 s) plus the 4 s it ran after the player came: the rest
    // came from the second one, through the same open play.
    assert!(
        played > dropped_at + Duration::from_secs(5),
        "the player finished at {played:?}, before the reconnect mattered"
    );
    assert_decoded("player across a reconnect", &d, 12.0, AAC_FPS, &server);
    let log = server.rill.log();
    assert_eq!(
        log.matches("publishing live/re").count(),
        2,
        "expected two publishes:\n{log}"
    );
    // The host never ended the play: it rode through the gap.
    assert!(!log.contains("play of live/re ended"), "{log}");
}

#[test]
fn gstreamer_plays_with_rtmp2src() {
    assert!(
        gst_has("rtmp2src"),
        "GStreamer's rtmp2src missing (gstreamer1.0-plugins-bad)"
    );
    let server = Server::start("", "");
    let _pub = publish(&server, false, "libx264", "aac", 14, "live/gst");
    server.wait_live("live/gst", Duration::from_secs(10));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("gst.flv");
    let (_, err) = run_for(
        gst_launch(&format!(
            "rtmp2src location={} ! filesink location={}",
            server.url("live/gst"),
            file.display()
        )),
        Duration::from_secs(6),
    );
    let streams = probe_file(&file);
    let (video, audio, derr) = decode_file(&file);
    eprintln!("rtmp2src: {streams:?}, decoded {video} video / {audio} audio frames");
    // ~6 s recorded (plus the GOP it started at).
    assert!(
        streams.iter().any(|s| s.0 == "video" && s.1 == "h264")
            && streams.iter().any(|s| s.0 == "audio" && s.1 == "aac")
            && video >= 125
            && audio >= (5.0 * AAC_FPS) as usize,
        "rtmp2src recorded {streams:?}, decoded {video} video / {audio} audio frames ({derr})\ngst: {err}\n{}",
        server.rill.log()
    );
}

#[test]
fn gstreamer_publishes_with_rtmp2sink() {
    for e in ["rtmp2sink", "openh264enc", "voaacenc", "flvmux"] {
        assert!(gst_has(e), "GStreamer element {e} missing");
    }
    let server = Server::start("", "");
    let url = server.url("live/fromgst");
    let pipeline = format!(
        "videotestsrc is-live=true ! video/x-raw,width=320,height=240,framerate=25/1 \
         ! openh264enc gop-size=25 complexity=low ! h264parse ! flvmux name=m streamable=true \
         ! rtmp2sink location={url} \
         audiotestsrc is-live=true ! audioconvert ! audioresample ! audio/x-raw,rate=48000 \
         ! voaacenc ! aacparse ! m."
    );
    let gst = std::thread::spawn(move || run_for(gst_launch(&pipeline), Duration::from_secs(12)));
    server.wait_live("live/fromgst", Duration::from_secs(10));
    let d = play_av(false, &url, 5);
    assert_decoded("published by rtmp2sink", &d, 5.0, AAC_FPS, &server);
    let (_, err) = gst.join().unwrap();
    assert!(
        !err.contains("ERROR"),
        "gst-launch reported an error: {err}"
    );
}

#[test]
fn rtmpdump_records_a_live_stream() {
    let server = Server::start("", "");
    let _pub = publish(&server, false, "libx264", "aac", 14, "live/dump");
    server.wait_live("live/dump", Duration::from_secs(10));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("dump.flv");
    let mut cmd = Command::new("rtmpdump");
    cmd.args(["-q", "--live", "-r", &server.url("live/dump"), "-o"])
        .arg(&file)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    let (_, err) = run_for(cmd, Duration::from_secs(6));
    let streams = probe_file(&file);
    let (video, audio, derr) = decode_file(&file);
    eprintln!("rtmpdump: {streams:?}, decoded {video} video / {audio} audio frames");
    assert!(
        streams.iter().any(|s| s.0 == "video" && s.1 == "h264")
            && streams.iter().any(|s| s.0 == "audio" && s.1 == "aac")
            && video >= 125
            && audio >= (5.0 * AAC_FPS) as usize,
        "rtmpdump recorded {streams:?}, decoded {video} video / {audio} audio frames ({derr})\nrtmpdump: {err}\n{}",
        server.rill.log()
    );
}

#[test]
fn malformed_input_closes_only_that_connection() {
    let server = Server::start("", "");
    let _pub = publish(&server, false, "libx264", "aac", 14, "live/safe");
    server.wait_live("live/safe", Duration::from_secs(10));
    let player = spawn_play_av(false, &server.url("live/safe"), 8);
    std::thread::sleep(Duration::from_secs(1));

    let mut deep = amf_str("connect");
    deep.extend(amf_num(1.0));
    for _ in 0..100 {
        deep.extend_from_slice(&[3, 0, 1, b'a']);
    }
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "format 1 chunk on a new chunk stream",
            vec![0x44, 0, 0, 0, 0, 0, 10, 8, 1, 2, 3],
            "without a full header",
        ),
        (
            "a 16 MiB message",
            vec![0x06, 0, 0, 0, 0xFF, 0xFF, 0xFF, 9, 1, 0, 0, 0, 0x17],
            "exceeds the limit",
        ),
        (
            "play before connect",
            chunk(3, 20, 0, &[amf_str("play"), amf_num(2.0)].concat()),
            "command before connect",
        ),
        (
            "truncated AMF0 after connect",
            [connect_command(), chunk(3, 20, 0, &[2, 0xFF, 0xFF, b'x'])].concat(),
            "truncated",
        ),
        (
            "AMF0 nested 100 deep",
            chunk(3, 20, 0, &deep),
            "nested too deeply",
        ),
        (
            "Set Chunk Size 0",
            chunk(2, 1, 0, &0u32.to_be_bytes()),
            "chunk size 0 out of range",
        ),
    ];
    for (what, bytes, reason) in &cases {
        let mut c = RawClient::handshake(server.port);
        c.send(bytes);
        assert!(
            c.closed_within(Duration::from_secs(5)),
            "{what}: connection not closed\n{}",
            server.rill.log()
        );
        assert!(
            server.wait_log(Duration::from_secs(3), |l| l.contains(reason)
                && l.contains("closing the connection")),
            "{what}: no log line with {reason:?}:\n{}",
            server.rill.log()
        );
    }
    // Not RTMP at all: an HTTP request where C0 belongs.
    let mut s = std::net::TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    std::io::Write::write_all(&mut s, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut c = RawClient { sock: s };
    assert!(
        c.closed_within(Duration::from_secs(5)),
        "HTTP on the RTMP port not closed"
    );

    // Meanwhile the publisher and the player went on undisturbed.
    let d = player.join().unwrap();
    assert_decoded("player beside bad clients", &d, 8.0, AAC_FPS, &server);
    let s = server.stream("live/safe").expect("stream gone");
    assert!(s["publisher"].is_object(), "publisher gone: {s}");
}

/// A client that starts many large messages and finishes none is closed
/// when the bytes held for it reach `max_partial_bytes` (16 MiB), not
/// when 64 chunk streams × 8 MiB (512 MiB) are held.
#[test]
fn unfinished_messages_are_closed_at_their_budget() {
    let server = Server::start("", "");
    let mut c = RawClient::handshake(server.port);
    // 64 KiB chunks, interleaved over 61 chunk streams, each the start of
    // an 8 MiB - 1 video message that never ends: round after round until
    // the server gives up (it must by 16 MiB, long before 5 rounds).
    const CHUNK: usize = 64 * 1024;
    c.send(&chunk(2, 1, 0, &(CHUNK as u32).to_be_bytes()));
    let part = vec![0x17u8; CHUNK];
    let mut sent = 0usize;
    'rounds: for round in 0..5 {
        for csid in 3u8..64 {
            let mut b = if round == 0 {
                // Format 0 header: length 0x7FFFFF, type 9, stream 1.
                vec![csid, 0, 0, 0, 0x7F, 0xFF, 0xFF, 9, 1, 0, 0, 0]
            } else {
                vec![0xC0 | csid] // format 3: the next chunk of that message
            };
            b.extend_from_slice(&part);
            if c.sock.write_all(&b).is_err() {
                break 'rounds;
            }
            sent += part.len();
        }
    }
    assert!(
        c.closed_within(Duration::from_secs(5)),
        "not closed after {sent} bytes of unfinished messages\n{}",
        server.rill.log()
    );
    assert!(
        server.wait_log(Duration::from_secs(3), |l| l.contains("max_partial_bytes")
            && l.contains("closing the connection")),
        "no log line naming the budget:\n{}",
        server.rill.log()
    );
}

#[test]
fn handshake_and_idle_timeouts() {
    let server = Server::start("", "handshake_timeout: 1s\nidle_timeout: 2s");
    // Silent after TCP connect: the handshake deadline closes it.
    let t = Instant::now();
    let mut silent = RawClient {
        sock: std::net::TcpStream::connect(("127.0.0.1", server.port)).unwrap(),
    };
    assert!(
        silent.closed_within(Duration::from_secs(5)),
        "silent client kept"
    );
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(4),
        "closed after {took:?}"
    );
    // Connected, then silent: the idle deadline closes it.
    let t = Instant::now();
    let mut idle = RawClient::handshake(server.port);
    idle.send(&connect_command());
    assert!(
        idle.closed_within(Duration::from_secs(6)),
        "idle client kept"
    );
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(1900) && took < Duration::from_secs(5),
        "closed after {took:?}"
    );
    for line in ["no handshake and connect within", "nothing received for"] {
        assert!(
            server.wait_log(Duration::from_secs(3), |l| l.contains(line)),
            "no {line:?} in the log:\n{}",
            server.rill.log()
        );
    }
}

#[test]
fn second_publisher_of_a_stream_is_refused() {
    let server = Server::start("", "");
    let _first = publish(&server, false, "libx264", "aac", 12, "live/busy");
    server.wait_live("live/busy", Duration::from_secs(10));
    let second = publish(&server, false, "libx264", "aac", 12, "live/busy");
    let t = Instant::now();
    let err = second.finish(Duration::from_secs(8));
    // ffmpeg shows the server's NetStream.Publish.BadName and gives up.
    assert!(
        t.elapsed() < Duration::from_secs(8) && err.contains("Stream already publishing"),
        "the second publisher was not refused: {err}\n{}",
        server.rill.log()
    );
    assert!(
        server.wait_log(Duration::from_secs(3), |l| l
            .contains("publish live/busy refused")),
        "{}",
        server.rill.log()
    );
    // The first one still publishes and plays.
    let d = play_av(false, &server.url("live/busy"), 3);
    assert_decoded("first publisher", &d, 3.0, AAC_FPS, &server);
}

#[test]
fn play_of_an_unpublished_stream_times_out_with_stream_not_found() {
    let server = Server::start("subscribe:\n  wait_timeout: 1s\n", "");
    let t = Instant::now();
    let d = play_av(false, &server.url("live/nobody"), 3);
    // ffmpeg shows the onStatus error the server sent, and gives up.
    assert!(
        t.elapsed() < Duration::from_secs(8)
            && d.packets.is_empty()
            && d.stderr.contains("No one published live/nobody in time"),
        "{}",
        summary(&d)
    );
    assert!(
        server.wait_log(Duration::from_secs(3), |l| l
            .contains("play of live/nobody ended (wait_timeout")),
        "{}",
        server.rill.log()
    );
}

#[test]
fn a_slow_player_falls_behind_alone() {
    let server = Server::start(
        "subscribe:\n  max_lag: 2s\n  queue_frames: 64\n",
        "max_pending_bytes: 64KiB",
    );
    let url = server.url("live/fast");
    // ~24 Mbit/s (lossless H.264 of a noisy picture, cheap to make): a slow
    // reader falls behind within a second or two.
    let _pub = Guard(publish_lavfi(
        false,
        18,
        "libx264",
        "aac",
        &["-vf", "noise=alls=30:allf=t", "-qp", "0", "-f", "flv"],
        &url,
    ));
    server.wait_live("live/fast", Duration::from_secs(10));
    let good = spawn_play_av(false, &url, 8);
    let port = server.port;
    let slow = std::thread::spawn(move || {
        let mut c = RawClient::handshake(port);
        c.send(&[connect_command(), play_commands("fast")].concat());
        // A tenth of the stream's rate, while the other player plays.
        let (read, closed) =
            c.read_slowly(32 << 10, Duration::from_millis(100), Duration::from_secs(8));
        (c, read, closed)
    });
    // The other player and the publisher never noticed.
    let d = good.join().unwrap();
    assert_decoded("player beside a slow one", &d, 8.0, AAC_FPS, &server);
    let s = server.stream("live/fast").expect("stream gone");
    assert!(s["publisher"].is_object(), "publisher gone: {s}");
    // The host dropped the slow one (too far behind for longer than
    // max_lag); its connection ends once the bytes already in the kernel's
    // buffers are read.
    let (mut c, read, closed) = slow.join().unwrap();
    let dropped = rill_e2e::wait_for(Duration::from_secs(10), || {
        server
            .rill
            .log()
            .contains("play of live/fast ended (too_slow")
            .then_some(())
    });
    let log = server.rill.log();
    assert!(
        dropped.is_some(),
        "the slow player was not dropped (read {read} bytes):\n{log}"
    );
    assert!(
        closed || c.closed_within(Duration::from_secs(10)),
        "the slow player's connection stayed open:\n{log}"
    );
    if let Some(l) = log.lines().find(|l| l.contains("play of live/fast ended")) {
        eprintln!("{l}");
    }
}

/// A plugin that cannot start (its port is taken) fails alone: the API
/// shows the reason in its own words, the other plugins serve.
#[test]
fn a_plugin_that_cannot_start_fails_alone() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let rill = rill_e2e::Rill::start(
        &format!("plugins:\n  rtmp:\n    listen: 127.0.0.1:{port}\n"),
        &[
            plugin(),
            rill_e2e::target_dir().join("librill_plugin_flv.so"),
        ],
    );
    let rtmp = rill_e2e::wait_for(Duration::from_secs(10), || {
        rill_e2e::plugin_state(&rill, "librill_plugin_rtmp.so")
            .or_else(|| rill_e2e::plugin_state(&rill, "rtmp"))
            .filter(|p| p["last_error"].is_string())
    })
    .unwrap_or_else(|| panic!("no error shown:\n{}", rill.log()));
    let why = rtmp["last_error"].as_str().unwrap();
    assert!(
        why.contains("Address already in use") && why.contains(&port.to_string()),
        "{why}"
    );
    assert_ne!(rtmp["state"], "running");
    let flv = rill_e2e::plugin_state(&rill, "flv").expect("flv listed");
    assert_eq!(flv["state"], "running");
    let (st, _) = rill.get("/api/v1/server");
    assert_eq!(st, 200, "the HTTP server answers");
}
