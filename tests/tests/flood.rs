//! Connection floods (issue 20): thousands of idle connections and
//! slowloris clients are closed by their timeouts while real players get in
//! and play; a listener at its cap stops accepting, and serves again when a
//! connection ends.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use rill_e2e::relay;
use rill_e2e::rtmp::{self, Guard};
use rill_e2e::*;

const IDLE_RTMP: usize = 5000;
const SLOW_HTTP: usize = 100;
const KEEPALIVE_HTTP: usize = 100;

/// The test holds thousands of sockets: the soft open-file limit up to the
/// hard one.
fn raise_nofile() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit read and write one rlimit we own.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

/// Whether the server has closed `sock` (EOF or reset), without waiting.
fn is_closed(sock: &TcpStream) -> bool {
    sock.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 4096];
    loop {
        match (&*sock).read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return false,
            Err(_) => return true,
        }
    }
}

fn open_fds(rill: &Rill) -> usize {
    std::fs::read_dir(format!("/proc/{}/fd", rill.child.id()))
        .unwrap()
        .count()
}

#[test]
fn idle_floods_and_slowloris_are_closed_while_players_play() {
    raise_nofile();
    let port = free_port();
    let yaml =
        format!("plugins:\n  rtmp:\n    listen: 127.0.0.1:{port}\n    handshake_timeout: 10s\n");
    let rill = Rill::start_with_env(
        &yaml,
        &[rtmp::plugin(), relay::plugin("flv")],
        &[("RILL_HTTP_HEADER_TIMEOUT", "5s")],
    );
    assert!(wait_port(port, Duration::from_secs(10)), "{}", rill.log());
    let url = format!("rtmp://127.0.0.1:{port}/live/s");
    let _enc = Guard(publish_lavfi(
        false,
        60,
        "libx264",
        "aac",
        &["-b:v", "500k", "-f", "flv"],
        &url,
    ));
    wait_publishing(&rill, "live/s");
    std::thread::sleep(Duration::from_secs(1));
    let (rss_base, fds_base) = (rill.rss_kib(), open_fds(&rill));

    // 5 000 connections to the RTMP port: half send nothing, half stop
    // inside the handshake (C0 and a piece of C1).
    let t0 = Instant::now();
    let idle: Vec<TcpStream> = (0..IDLE_RTMP)
        .map(|i| {
            let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect to RTMP");
            if i % 2 == 1 {
                s.write_all(&[3u8; 100]).unwrap();
            }
            s
        })
        .collect();
    // Slowloris on HTTP: a request head one byte every half second.
    let slow: Vec<TcpStream> = (0..SLOW_HTTP)
        .map(|_| {
            let mut s = TcpStream::connect(("127.0.0.1", rill.http_port)).unwrap();
            s.write_all(b"GET /live/s.flv HTTP/1.1\r\n").unwrap();
            s
        })
        .collect();
    let dribble: Vec<TcpStream> = slow.iter().map(|s| s.try_clone().unwrap()).collect();
    let dribbler = std::thread::spawn(move || {
        let end = Instant::now() + Duration::from_secs(15);
        while Instant::now() < end {
            for mut s in &dribble {
                let _ = s.write_all(b"X");
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    });
    // Keep-alive connections that asked once and then say nothing.
    let keepalive: Vec<TcpStream> = (0..KEEPALIVE_HTTP)
        .map(|_| {
            let mut s = TcpStream::connect(("127.0.0.1", rill.http_port)).unwrap();
            s.write_all(b"GET /api/v1/server HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                .unwrap();
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut buf = [0u8; 4096];
            let n = s.read(&mut buf).unwrap();
            assert!(buf[..n].starts_with(b"HTTP/1.1 200"), "keep-alive answer");
            s
        })
        .collect();
    let opened = t0.elapsed();
    std::thread::sleep(Duration::from_millis(500));
    let rss_flood = rill.rss_kib();
    let conns = IDLE_RTMP + SLOW_HTTP + KEEPALIVE_HTTP;
    eprintln!(
        "{conns} idle connections opened in {opened:?}: server RSS {rss_base} -> {rss_flood} KiB, \
         {} bytes per idle connection; {} -> {} open descriptors",
        rss_flood.saturating_sub(rss_base) * 1024 / conns as u64,
        fds_base,
        open_fds(&rill)
    );

    // Real players get in and play, over RTMP and HTTP-FLV, during it.
    let flv_url = format!("http://127.0.0.1:{}/live/s.flv", rill.http_port);
    let rtmp_player = {
        let url = url.clone();
        std::thread::spawn(move || play(false, &url, 4, &[]))
    };
    let flv = play(false, &flv_url, 4, &[]);
    let rtmp = rtmp_player.join().unwrap();
    for (what, d) in [("RTMP", &rtmp), ("HTTP-FLV", &flv)] {
        assert!(
            d.count(0) >= 4 * 25 * 95 / 100,
            "{what} player during the flood: {} video frames: {}",
            d.count(0),
            d.stderr
        );
        assert!(d.count(1) > 0, "{what}: no audio: {}", d.stderr);
        assert!(d.monotonic(0) && d.monotonic(1), "{what}: time goes back");
    }

    // Every idle connection is closed by its timeout: the HTTP ones after
    // http.header_timeout (5 s), the RTMP ones after handshake_timeout
    // (10 s), each with a few seconds to spare.
    let http_closed = wait_for(
        Duration::from_secs(5 + 5).saturating_sub(t0.elapsed()),
        || (slow.iter().all(is_closed) && keepalive.iter().all(is_closed)).then_some(()),
    );
    assert!(
        http_closed.is_some(),
        "HTTP connections left open: {} slowloris, {} keep-alive",
        slow.iter().filter(|s| !is_closed(s)).count(),
        keepalive.iter().filter(|s| !is_closed(s)).count()
    );
    let rtmp_closed = wait_for(
        (opened + Duration::from_secs(10 + 5)).saturating_sub(t0.elapsed()),
        || idle.iter().all(is_closed).then_some(()),
    );
    assert!(
        rtmp_closed.is_some(),
        "{} of {IDLE_RTMP} idle RTMP connections left open after {:?}",
        idle.iter().filter(|s| !is_closed(s)).count(),
        t0.elapsed()
    );
    dribbler.join().unwrap();
    drop((idle, slow, keepalive));
    // Nothing of them stays behind: the descriptors are back.
    let fds = wait_for(Duration::from_secs(5), || {
        let n = open_fds(&rill);
        (n <= fds_base + 8).then_some(n)
    });
    assert!(
        fds.is_some(),
        "descriptors {fds_base} before, {} after",
        open_fds(&rill)
    );
    // The stream and the server are well.
    assert_eq!(rill.get("/api/v1/streams/live/s").0, 200);
}

#[test]
fn a_listener_at_its_cap_serves_again_when_a_connection_ends() {
    let rill = Rill::start("limits:\n  max_connections_per_listener: 20\n", &[]);
    let mut idle: Vec<TcpStream> = (0..20)
        .map(|_| TcpStream::connect(("127.0.0.1", rill.http_port)).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    // The 21st gets through the kernel's backlog but is not served...
    let mut c = TcpStream::connect(("127.0.0.1", rill.http_port)).unwrap();
    c.write_all(b"GET /api/v1/server HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .unwrap();
    c.set_read_timeout(Some(Duration::from_millis(1500)))
        .unwrap();
    let mut buf = [0u8; 4096];
    match c.read(&mut buf) {
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) => {}
        other => panic!("served past the cap: {other:?}"),
    }
    // ... until one of the twenty goes.
    drop(idle.pop());
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let n = c.read(&mut buf).expect("served once a connection ended");
    assert!(
        buf[..n].starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&buf[..n])
    );
}
