//! ABI 1.1 through the testkit plugin on the real server: instance UDP
//! sockets across a hot reload, session UDP sockets, stream events in
//! order, a socket-less session that records, deferred HTTP answers and the
//! host's deadline, request bodies and their limit, plugin preflights.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rill_e2e::*;

fn testkit() -> std::path::PathBuf {
    target_dir().join("librill_plugin_testkit.so")
}

/// rill with the testkit plugin; `extra` goes into its section.
fn start(global: &str, extra: &str, more: &[std::path::PathBuf]) -> (Rill, u16) {
    let tcp = free_port();
    let mut plugins = vec![testkit()];
    plugins.extend_from_slice(more);
    let rill = Rill::start(
        &format!("{global}plugins:\n  testkit:\n    listen: 127.0.0.1:{tcp}\n{extra}"),
        &plugins,
    );
    assert!(wait_port(tcp, Duration::from_secs(10)), "{}", rill.log());
    (rill, tcp)
}

fn generation(rill: &Rill) -> u64 {
    plugin_state(rill, "testkit").unwrap()["generation"]
        .as_u64()
        .unwrap()
}

#[test]
fn instance_udp_socket_survives_a_reload_and_only_the_live_generation_answers() {
    let port = free_port();
    let (rill, _) = start("", &format!("    udp: 127.0.0.1:{port}\n"), &[]);
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client.connect(("127.0.0.1", port)).unwrap();
    client
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();

    // (seq, instance id) of every answer; the send time of every seq.
    let answers = Arc::new(Mutex::new(Vec::<(u64, String)>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let (client, answers, stop) = (client.try_clone().unwrap(), answers.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            while !stop.load(Ordering::Relaxed) {
                if let Ok(n) = client.recv(&mut buf) {
                    let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                    let (id, seq) = text.split_once(':').expect("id:seq");
                    answers
                        .lock()
                        .unwrap()
                        .push((seq.parse().unwrap(), id.to_owned()));
                }
            }
        })
    };
    let sent_at = Arc::new(Mutex::new(Vec::<Instant>::new()));
    let sender = {
        let (client, stop, sent_at) = (client.try_clone().unwrap(), stop.clone(), sent_at.clone());
        std::thread::spawn(move || {
            let mut seq = 0u64;
            while !stop.load(Ordering::Relaxed) {
                sent_at.lock().unwrap().push(Instant::now());
                client.send(seq.to_string().as_bytes()).unwrap();
                seq += 1;
                std::thread::sleep(Duration::from_millis(2));
            }
        })
    };
    std::thread::sleep(Duration::from_secs(1));
    install_new_build(&rill, &testkit(), "udp-reload");
    wait_for(Duration::from_secs(5), || {
        (generation(&rill) == 2).then_some(())
    })
    .unwrap_or_else(|| panic!("no generation 2:\n{}", rill.log()));
    let swapped = Instant::now();
    std::thread::sleep(Duration::from_secs(1));
    stop.store(true, Ordering::Relaxed);
    sender.join().unwrap();
    reader.join().unwrap();

    let answers = answers.lock().unwrap();
    let sent_at = sent_at.lock().unwrap();
    let ids: Vec<&String> = {
        let mut v: Vec<&String> = answers.iter().map(|(_, id)| id).collect();
        v.dedup();
        v
    };
    assert_eq!(
        ids.len(),
        2,
        "answers from one generation, then the next: {ids:?}"
    );
    let (old, new) = (ids[0].clone(), ids[1].clone());
    // Loopback loses nothing: every datagram is answered.
    assert!(
        answers.len() as f64 >= sent_at.len() as f64 * 0.98,
        "{} answers to {} datagrams",
        answers.len(),
        sent_at.len()
    );
    // Nothing sent after the swap was answered by the old generation.
    for (seq, id) in answers.iter() {
        if sent_at[*seq as usize] > swapped {
            assert_eq!(*id, new, "datagram {seq} answered by {old} after the swap");
        }
    }
    // The old generation drained with no session, so it is destroyed.
    wait_for(Duration::from_secs(5), || {
        plugin_state(&rill, "testkit")?["draining"]
            .as_u64()
            .filter(|n| *n == 0)
    })
    .expect("old generation destroyed");
    assert!(rill
        .log()
        .contains(&format!("testkit instance {old} draining")));
}

#[test]
fn session_udp_socket_and_bad_datagrams() {
    let port = free_port();
    let (rill, tcp) = start("", &format!("    udp: 127.0.0.1:{port}\n"), &[]);
    // A session socket: bound on request, datagrams to its session.
    let mut conn = TcpStream::connect(("127.0.0.1", tcp)).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    conn.write_all(b"udp\n").unwrap();
    let mut lines = BufReader::new(conn.try_clone().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "udp");
    let line = lines.next().unwrap().unwrap();
    let session_port: u16 = line.strip_prefix("port ").unwrap().parse().unwrap();
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    client
        .send_to(b"hello", ("127.0.0.1", session_port))
        .unwrap();
    let mut buf = [0u8; 8192];
    let (n, _) = client.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"s:hello");

    // Bad input on the instance socket: a datagram over the size limit
    // and a flood from many sources are dropped, nothing else is hurt.
    client.send_to(&[7u8; 5000], ("127.0.0.1", port)).unwrap();
    let flooders: Vec<UdpSocket> = (0..50)
        .map(|_| UdpSocket::bind("127.0.0.1:0").unwrap())
        .collect();
    for i in 0..20_000usize {
        let _ = flooders[i % flooders.len()].send_to(b"flood", ("127.0.0.1", port));
    }
    // A flood overflows the kernel's buffer (datagrams are dropped, as UDP
    // does); once it passes, the socket answers again.
    client
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut got_after = false;
    while Instant::now() < deadline && !got_after {
        client.send_to(b"after", ("127.0.0.1", port)).unwrap();
        while let Ok((n, _)) = client.recv_from(&mut buf) {
            assert!(n < 5000, "an oversize datagram was delivered");
            if buf[..n].ends_with(b":after") {
                got_after = true;
                break;
            }
        }
    }
    client
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    assert!(got_after, "the socket stopped answering after a flood");
    // The oversize datagram was dropped and counted, not delivered cut.
    let (_, metrics) = rill.get("/metrics");
    let dropped = metrics
        .lines()
        .find(|l| {
            l.starts_with("rill_udp_dropped_oversize_total{") && l.contains(&format!(":{port}\""))
        })
        .and_then(|l| l.rsplit(' ').next()?.parse::<u64>().ok());
    assert_eq!(dropped, Some(1), "{metrics}");
    // The session socket still works, and the TCP session too.
    client
        .send_to(b"again", ("127.0.0.1", session_port))
        .unwrap();
    let (n, _) = client.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"s:again");
    conn.write_all(b"echo\n").unwrap();
    assert_eq!(lines.next().unwrap().unwrap(), "echo");
    drop(rill);
}

/// rill with testkit (`extra` in its section) and the C template
/// publishing `live/events`; returns the server and the ingest and play
/// ports.
fn start_with_template(extra: &str) -> (Rill, u16, u16) {
    let (ingest, play) = (free_port(), free_port());
    let (rill, _) = start(
        "publish:\n  reconnect_grace: 1s\n",
        &format!(
            "{extra}  flvtcp:\n    ingest: 127.0.0.1:{ingest}\n    play: 127.0.0.1:{play}\n    stream: live/events\n"
        ),
        &[build_template("1.0.0", false)],
    );
    assert!(wait_port(play, Duration::from_secs(10)));
    (rill, ingest, play)
}

/// Reads at least `n` bytes of a player's stream.
fn play_some(player: &mut TcpStream, n: usize) {
    player
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut buf = vec![0u8; 65536];
    let mut got = 0;
    while got < n {
        got += player.read(&mut buf).unwrap();
    }
}

#[test]
fn stream_events_in_order() {
    let (rill, ingest, play) = start_with_template("");
    let event = |n: u32| format!("stream event {n} live/events");
    // A player waits for a stream nobody publishes.
    let mut player = TcpStream::connect(("127.0.0.1", play)).unwrap();
    wait_for(Duration::from_secs(5), || {
        rill.log().contains(&event(3)).then_some(())
    })
    .unwrap_or_else(|| panic!("no WAITING:\n{}", rill.log()));
    let mut publisher = publish_flvtcp(ingest, 4);
    // The player gets media, then leaves; then the publisher ends.
    play_some(&mut player, 100_000);
    drop(player);
    let _ = publisher.wait();
    let log = wait_for(Duration::from_secs(10), || {
        let log = rill.log();
        log.contains(&event(2)).then_some(log)
    })
    .unwrap_or_else(|| panic!("no UNPUBLISHED:\n{}", rill.log()));
    let at = |n: u32| {
        log.find(&event(n))
            .unwrap_or_else(|| panic!("no event {n}:\n{log}"))
    };
    assert!(
        at(3) < at(1) && at(1) < at(4) && at(4) < at(2),
        "order:\n{log}"
    );
    assert_eq!(log.matches(&event(1)).count(), 1, "PUBLISHED once");
}

#[test]
fn a_session_without_a_socket_records_every_published_stream() {
    let (rill, ingest, _) = start_with_template("    record: true\n");
    let mut publisher = publish_flvtcp(ingest, 4);
    let _ = publisher.wait();
    let log = wait_for(Duration::from_secs(10), || {
        let log = rill.log();
        log.contains("recorded live/events").then_some(log)
    })
    .unwrap_or_else(|| panic!("the recorder did not finish:\n{}", rill.log()));
    // The recorder (no socket) saw ~4 s of 25 fps video plus audio.
    let line = log
        .lines()
        .find(|l| l.contains("recorded live/events"))
        .unwrap();
    let frames: u64 = line
        .split("recorded live/events: ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap();
    assert!(frames > 150, "{line}");
}

#[test]
fn deferred_answers_deadline_bodies_and_preflight() {
    let (rill, _) = start(
        "  response_timeout: 3s\n  max_body: 2048\n",
        "    http: true\n",
        &[],
    );
    let port = rill.http_port;
    let t = Instant::now();
    let (st, _, body) = http_request(port, "GET", "/testkit/later", None, "");
    let took = t.elapsed();
    assert_eq!((st, body.as_str()), (200, "later"));
    assert!(
        took >= Duration::from_millis(1900),
        "answered after {took:?}"
    );

    let t = Instant::now();
    let (st, _, _) = http_request(port, "GET", "/testkit/never", None, "");
    assert_eq!(st, 504);
    assert!(
        t.elapsed() >= Duration::from_millis(2900),
        "{:?}",
        t.elapsed()
    );

    let body = "x".repeat(2000);
    let (st, _, echoed) = http_request(port, "POST", "/testkit/echo", None, &body);
    assert_eq!((st, echoed.len()), (200, 2000));
    let (st, _, _) = http_request(port, "POST", "/testkit/echo", None, &"y".repeat(3000));
    assert_eq!(st, 413);

    let (st, head, _) = http_request_with(
        port,
        "OPTIONS",
        "/testkit/echo",
        &[("Host", "127.0.0.1"), ("Origin", "http://player.example")],
        "",
    );
    assert_eq!(st, 204);
    assert!(head.contains("allow: post, options"), "{head}");
    assert!(head.contains("access-control-allow-origin: *"), "{head}");
}
