//! Players that stop reading (issue 20): their connections take nothing
//! while media waits, and the host closes them after `subscribe.max_lag`,
//! whatever the protocol; a live player beside them loses nothing.

use std::io::{Read, Write};
use std::net::TcpStream;
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

/// Reads what the server had sent until EOF or a reset: whether it closed
/// the connection within `timeout`.
fn closed(sock: &mut TcpStream, timeout: Duration) -> bool {
    let end = Instant::now() + timeout;
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut buf = [0u8; 64 << 10];
    while Instant::now() < end {
        match sock.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return true,
        }
    }
    false
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
    let url = format!("rtmp://127.0.0.1:{port}/live/s");
    let _enc = Guard(publish_lavfi(
        false,
        40,
        "libx264",
        "aac",
        &["-b:v", "1M", "-f", "flv"],
        &url,
    ));
    wait_publishing(&rill, "live/s");

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
            closed(&mut c.sock, Duration::from_secs(5)),
            "an RTMP player left open"
        );
    }
    for s in &mut stalled_http {
        assert!(
            closed(s, Duration::from_secs(5)),
            "an HTTP-FLV player left open"
        );
    }

    // The live player lost nothing: 14 s of 25 fps video, in order.
    while !live.is_finished() {
        rss_max = rss_max.max(rill.rss_kib());
        std::thread::sleep(Duration::from_millis(250));
    }
    let rss_end = rill.rss_kib();
    eprintln!(
        "server RSS: {rss_start} KiB with the players in, at most {rss_max}, {rss_end} at the end"
    );
    // Flat: what ten stalled players may hold (max_lag of a 1 Mbit/s
    // stream each, and their 64 KiB send buffers) is well under 16 MiB.
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
