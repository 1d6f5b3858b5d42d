//! Players that stop reading (issue 20): their connections take nothing
//! while media waits, and the host closes them after `subscribe.max_lag`,
//! whatever the protocol; a live player beside them loses nothing.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rill_e2e::relay;
use rill_e2e::rtmp::{self, connect_command, play_commands, spawn_play_av, Guard, RawClient};
use rill_e2e::*;

/// A receive buffer this small makes a stalled reader's side fill fast.
const STALLED_RCVBUF: usize = 16 << 10;

fn subscribers(rill: &Rill, path: &str) -> Option<u64> {
    let (st, body) = rill.get(&format!("/api/v1/streams/{path}"));
    if st != 200 {
        return None;
    }
    serde_json::from_str::<serde_json::Value>(&body).ok()?["subscribers"].as_u64()
}

/// ffmpeg publishing 40 s of 1 Mbit/s H.264 + AAC to live/s over RTMP on
/// `port`, live: its URL and its process.
fn publish_1m(rill: &Rill, port: u16) -> (String, Guard) {
    let url = format!("rtmp://127.0.0.1:{port}/live/s");
    let enc = Guard(publish_lavfi(
        false,
        40,
        "libx264",
        "aac",
        &["-b:v", "1M", "-f", "flv"],
        &url,
    ));
    wait_publishing(rill, "live/s");
    (url, enc)
}

/// Samples the server's memory until the live player is done: flat since
/// `rss_start` (what the stalled players may hold, max_lag of a 1 Mbit/s
/// stream each and their 64 KiB send buffers, is well under 16 MiB); and
/// the live player lost nothing: 14 s of 25 fps video, in order.
fn finish_flat(rill: &Rill, live: JoinHandle<Decoded>, rss_start: u64, mut rss_max: u64) {
    while !live.is_finished() {
        rss_max = rss_max.max(rill.rss_kib());
        std::thread::sleep(Duration::from_millis(250));
    }
    eprintln!("server RSS: {rss_start} KiB with the players in, at most {rss_max}");
    assert!(
        rss_max <= rss_start + 16 * 1024,
        "RSS grew from {rss_start} to {rss_max} KiB"
    );
    let d = live.join().unwrap();
    assert!(
        d.count(0) >= 14 * 25 - 2,
        "{} video frames: {}",
        d.count(0),
        d.stderr
    );
    assert!(d.count(1) > 0, "no audio: {}", d.stderr);
    assert!(d.monotonic(0) && d.monotonic(1), "time goes back");
}

#[test]
fn stalled_rtmp_and_http_flv_players_are_closed_and_the_live_one_plays_on() {
    let port = free_port();
    let yaml = format!(
        "subscribe:\n  max_lag: 3s\n  send_buffer: 65536\n\
         plugins:\n  rtmp:\n    listen: 127.0.0.1:{port}\n"
    );
    let rill = Rill::start(&yaml, &[rtmp::plugin(), relay::plugin("flv")]);
    assert!(wait_port(port, Duration::from_secs(10)), "{}", rill.log());
    let (url, _enc) = publish_1m(&rill, port);

    // Five RTMP and five HTTP-FLV players that ask, then read nothing.
    let stalled_at = Instant::now();
    let mut stalled_rtmp: Vec<RawClient> = (0..5)
        .map(|_| {
            let mut c = RawClient::handshake(port);
            let _ = socket2::SockRef::from(&c.sock).set_recv_buffer_size(STALLED_RCVBUF);
            c.send(&connect_command());
            c.send(&play_commands("s"));
            c
        })
        .collect();
    let mut stalled_http: Vec<TcpStream> = (0..5)
        .map(|_| {
            let mut s = TcpStream::connect(("127.0.0.1", rill.http_port)).unwrap();
            let _ = socket2::SockRef::from(&s).set_recv_buffer_size(STALLED_RCVBUF);
            s.write_all(b"GET /live/s.flv HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                .unwrap();
            s
        })
        .collect();
    // And one that plays 14 s of it.
    let live = spawn_play_av(false, &url, 14);
    wait_for(Duration::from_secs(10), || {
        (subscribers(&rill, "live/s")? == 11).then_some(())
    })
    .unwrap_or_else(|| {
        panic!(
            "not 11 players: {:?}\n{}",
            subscribers(&rill, "live/s"),
            rill.log()
        )
    });
    // Memory from here on: the stalled players' backlog is bounded, so
    // it stays flat while they stall and after they go.
    let rss_start = rill.rss_kib();
    let mut rss_max = rss_start;

    // The stalled ones go, within max_lag and the time their buffers take
    // to fill (a 1 Mbit/s stream, 64 KiB of send buffer, 16 KiB of receive
    // buffer: about a second).
    wait_for(Duration::from_secs(20), || {
        rss_max = rss_max.max(rill.rss_kib());
        (subscribers(&rill, "live/s")? == 1).then_some(())
    })
    .unwrap_or_else(|| {
        panic!(
            "stalled players kept: {:?}\n{}",
            subscribers(&rill, "live/s"),
            rill.log()
        )
    });
    let took = stalled_at.elapsed();
    assert!(took < Duration::from_secs(3 + 5), "closed after {took:?}");
    assert!(rill.log().contains("took nothing for"), "{}", rill.log());
    for c in &mut stalled_rtmp {
        assert!(
            closed_within(&mut c.sock, Duration::from_secs(5)),
            "an RTMP player left open"
        );
    }
    for s in &mut stalled_http {
        assert!(
            closed_within(s, Duration::from_secs(5)),
            "an HTTP-FLV player left open"
        );
    }

    finish_flat(&rill, live, rss_start, rss_max);
}

/// One RTSP exchange on `s`: the request, then the response head and body.
fn rtsp_exchange(s: &mut TcpStream, req: &str) -> (String, String) {
    s.write_all(req.as_bytes()).unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut byte).expect("an RTSP response");
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let len = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).unwrap();
    (head, String::from_utf8_lossy(&body).into_owned())
}

/// An RTSP player over TCP (interleaved) that plays, then reads nothing.
fn stalled_rtsp_player(port: u16, path: &str) -> TcpStream {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let _ = socket2::SockRef::from(&s).set_recv_buffer_size(STALLED_RCVBUF);
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let url = format!("rtsp://127.0.0.1:{port}/{path}");
    let (head, sdp) = rtsp_exchange(
        &mut s,
        &format!("DESCRIBE {url} RTSP/1.0\r\nCSeq: 1\r\nAccept: application/sdp\r\n\r\n"),
    );
    assert!(head.starts_with("RTSP/1.0 200"), "DESCRIBE: {head}");
    let controls: Vec<&str> = sdp
        .lines()
        .filter_map(|l| l.trim().strip_prefix("a=control:"))
        .filter(|c| *c != "*")
        .collect();
    assert!(!controls.is_empty(), "no tracks in {sdp}");
    let mut session = String::new();
    for (i, c) in controls.iter().enumerate() {
        let track = if c.starts_with("rtsp://") {
            c.to_string()
        } else {
            format!("{url}/{c}")
        };
        let extra = if session.is_empty() {
            String::new()
        } else {
            format!("Session: {session}\r\n")
        };
        let (head, _) = rtsp_exchange(
            &mut s,
            &format!(
                "SETUP {track} RTSP/1.0\r\nCSeq: {}\r\n{extra}Transport: RTP/AVP/TCP;unicast;interleaved={}-{}\r\n\r\n",
                i + 2,
                2 * i,
                2 * i + 1
            ),
        );
        assert!(head.starts_with("RTSP/1.0 200"), "SETUP: {head}");
        session = head
            .lines()
            .find_map(|l| l.strip_prefix("Session:"))
            .map(|v| v.split(';').next().unwrap().trim().to_owned())
            .unwrap();
    }
    s.write_all(
        format!(
            "PLAY {url} RTSP/1.0\r\nCSeq: 9\r\nSession: {session}\r\nRange: npt=0.000-\r\n\r\n"
        )
        .as_bytes(),
    )
    .unwrap();
    s
}

#[test]
fn stalled_ws_flv_fmp4_and_rtsp_players_are_closed() {
    let (port, rtsp_port) = (free_port(), free_port());
    let yaml = format!(
        "subscribe:\n  max_lag: 3s\n  send_buffer: 65536\n\
         plugins:\n  rtmp:\n    listen: 127.0.0.1:{port}\n  rtsp:\n    listen: 127.0.0.1:{rtsp_port}\n"
    );
    let rill = Rill::start_with_env(
        &yaml,
        &[
            rtmp::plugin(),
            relay::plugin("flv"),
            relay::plugin("hls"),
            relay::plugin("rtsp"),
        ],
        &[("RUST_LOG", "info,rill::plugin::session=debug")],
    );
    assert!(wait_port(port, Duration::from_secs(10)), "{}", rill.log());
    assert!(
        wait_port(rtsp_port, Duration::from_secs(10)),
        "{}",
        rill.log()
    );
    let (url, _enc) = publish_1m(&rill, port);

    let stalled_at = Instant::now();
    // Three of each: WS-FLV, progressive fMP4, RTSP over TCP.
    let mut stalled: Vec<(&str, TcpStream)> = Vec::new();
    let mut ws_keep = Vec::new();
    for _ in 0..3 {
        let (ws, _) = tungstenite::connect(format!("ws://127.0.0.1:{}/live/s.flv", rill.http_port))
            .expect("WS-FLV");
        let raw = match ws.get_ref() {
            tungstenite::stream::MaybeTlsStream::Plain(s) => s.try_clone().unwrap(),
            _ => unreachable!("plain ws://"),
        };
        let _ = socket2::SockRef::from(&raw).set_recv_buffer_size(STALLED_RCVBUF);
        stalled.push(("WS-FLV", raw));
        ws_keep.push(ws);

        let mut s = TcpStream::connect(("127.0.0.1", rill.http_port)).unwrap();
        let _ = socket2::SockRef::from(&s).set_recv_buffer_size(STALLED_RCVBUF);
        s.write_all(b"GET /live/s.mp4 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            .unwrap();
        stalled.push(("fMP4", s));

        stalled.push(("RTSP", stalled_rtsp_player(rtsp_port, "live/s")));
    }
    let live = spawn_play_av(false, &url, 14);
    // fMP4 players share one muxer's subscription and RTSP players one
    // packetizer's: what is closed is each player's connection.
    let rss_start = rill.rss_kib();
    let mut rss_max = rss_start;
    // Reading would unstall them: wait the time allowed (max_lag and 4 s)
    // first, then each must be closed already.
    while stalled_at.elapsed() < Duration::from_secs(3 + 4) {
        rss_max = rss_max.max(rill.rss_kib());
        std::thread::sleep(Duration::from_millis(250));
    }
    for (what, s) in &mut stalled {
        // The server resets a stalled connection it owns; a WebSocket it
        // can only close, and its FIN waits behind the bytes the kernel
        // still holds (a capped send buffer's worth), which the zero-window
        // probes' backoff delivers slowly once this side reads again.
        let drain = if *what == "WS-FLV" { 20 } else { 1 };
        assert!(
            closed_within(s, Duration::from_secs(drain)),
            "a stalled {what} player left open after {:?}\n{}\n{}",
            stalled_at.elapsed(),
            rill.get("/api/v1/streams/live/s/subscribers").1,
            rill.log()
        );
    }
    // The WS-FLV players were subscribers: gone from the stream.
    wait_for(Duration::from_secs(2), || {
        (subscribers(&rill, "live/s")? <= 2).then_some(())
    })
    .unwrap_or_else(|| panic!("{}", rill.get("/api/v1/streams/live/s/subscribers").1));
    finish_flat(&rill, live, rss_start, rss_max);
}
