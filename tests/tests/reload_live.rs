//! A hot reload never ends a live stream: an RTMP publisher and two
//! players connected before a reload of the RTMP plugin stream on,
//! unbroken, well past the old 30 s drain deadline, on the old generation;
//! new connections get the new one; the old generation is listed as
//! draining and destroyed once its sessions leave.

use std::io::Read;
use std::time::{Duration, Instant};

use rill_e2e::rtmp::*;
use rill_e2e::*;

/// A server with ffmpeg publishing 30 s of H.264 + AAC to `path`, live.
fn publishing(path: &str) -> (Server, Guard) {
    let server = Server::start("", "");
    let url = server.url(path);
    let publisher = Guard(publish_lavfi(
        false,
        30,
        "libx264",
        "aac",
        &["-f", "flv"],
        &url,
    ));
    server.wait_live(path, Duration::from_secs(10));
    (server, publisher)
}

fn rtmp_plugin(server: &Server) -> serde_json::Value {
    plugin_state(&server.rill, "rtmp").expect("rtmp plugin listed")
}

fn check_unbroken(what: &str, d: &Decoded, secs: f64) {
    let video: Vec<i64> = d.packets.iter().filter(|p| p.0 == 0).map(|p| p.1).collect();
    assert!(
        video.len() as f64 >= secs * 25.0 * 0.9,
        "{what}: {} video frames for {secs} s\n{}",
        video.len(),
        d.stderr
    );
    assert!(
        d.count(1) as f64 >= secs * 46.0,
        "{what}: audio {}",
        d.count(1)
    );
    assert!(
        d.monotonic(0) && d.monotonic(1),
        "{what}: timestamps go back"
    );
    // framemd5 timestamps are in the stream's time base (1/1000 for FLV).
    let gap = video.windows(2).map(|w| w[1] - w[0]).max().unwrap_or(0);
    assert!(gap <= 500, "{what}: a {gap} ms hole in the video");
}

#[test]
fn live_stream_survives_a_reload_past_the_old_deadline() {
    let server = Server::start("", "");
    let url = server.url("live/keep");
    let publisher = Guard(publish_lavfi(
        false,
        64,
        "libx264",
        "aac",
        &["-f", "flv"],
        &url,
    ));
    server.wait_live("live/keep", Duration::from_secs(10));
    let players = [
        spawn_play_av(false, &url, 50),
        spawn_play_av(false, &url, 50),
    ];
    // Both players are in before the reload.
    wait_for(Duration::from_secs(10), || {
        let s = server.stream("live/keep")?;
        (s["subscribers"].as_u64()? >= 2).then_some(())
    })
    .unwrap_or_else(|| panic!("players not in:\n{}", server.rill.log()));
    assert_eq!(rtmp_plugin(&server)["generation"], 1);

    install_new_build(&server.rill, &plugin(), "reload-2");
    let reloaded = Instant::now();
    wait_for(Duration::from_secs(5), || {
        let p = rtmp_plugin(&server);
        (p["generation"] == 2).then_some(())
    })
    .unwrap_or_else(|| panic!("no generation 2:\n{}", server.rill.log()));
    let p = rtmp_plugin(&server);
    let old = &p["draining_generations"][0];
    assert_eq!(old["generation"], 1, "{p}");
    assert_eq!(old["sessions"], 3, "publisher and two players: {p}");

    // A new player is served by the new generation.
    let newcomer = play_av(false, &url, 2);
    assert!(newcomer.count(0) > 25, "newcomer: {}", newcomer.stderr);

    // 45 s after the reload (the old default deadline was 30 s): all live.
    std::thread::sleep(Duration::from_secs(45).saturating_sub(reloaded.elapsed()));
    let s = server.stream("live/keep").expect("stream gone");
    assert!(s["publisher"].is_object(), "publisher cut: {s}");
    let p = rtmp_plugin(&server);
    assert_eq!(p["draining_generations"][0]["generation"], 1, "{p}");

    for (i, player) in players.into_iter().enumerate() {
        let d = player.join().unwrap();
        check_unbroken(&format!("player {i}"), &d, 50.0);
    }
    // The publisher ends by itself; then generation 1 has no session left
    // and is destroyed.
    publisher.finish(Duration::from_secs(30));
    wait_for(Duration::from_secs(15), || {
        let p = rtmp_plugin(&server);
        p["draining_generations"]
            .as_array()?
            .is_empty()
            .then_some(())
    })
    .unwrap_or_else(|| panic!("old generation not destroyed:\n{}", server.rill.log()));
    assert!(server.wait_log(Duration::from_secs(5), |l| l
        .contains("old generation destroyed")
        && l.contains("generation=1")));
}

#[test]
fn a_forced_drain_closes_the_old_generation_now() {
    let (server, _publisher) = publishing("live/forced");
    install_new_build(&server.rill, &plugin(), "reload-forced");
    wait_for(Duration::from_secs(5), || {
        (rtmp_plugin(&server)["draining_generations"][0]["sessions"] == 1).then_some(())
    })
    .unwrap_or_else(|| panic!("not draining:\n{}", server.rill.log()));
    let (st, _, body) = http_request(
        server.rill.http_port,
        "POST",
        "/api/v1/plugins/rtmp/drain",
        None,
        "",
    );
    assert_eq!(st, 200, "{body}");
    assert!(body.contains("\"closing_sessions\":1"), "{body}");
    wait_for(Duration::from_secs(10), || {
        rtmp_plugin(&server)["draining_generations"]
            .as_array()?
            .is_empty()
            .then_some(())
    })
    .unwrap_or_else(|| panic!("old generation not destroyed:\n{}", server.rill.log()));
}

/// A connection the old generation accepted just before a reload (the
/// reload storm of issue 20 caught players refused here) still gets to
/// play: draining means no new sessions, not that open ones stop.
#[test]
fn a_connection_in_its_handshake_at_a_reload_still_plays() {
    let (server, _publisher) = publishing("live/keep");
    // Handshaken on generation 1, nothing asked yet.
    let mut c = RawClient::handshake(server.port);
    install_new_build(&server.rill, &plugin(), "reload-3");
    wait_for(Duration::from_secs(5), || {
        (rtmp_plugin(&server)["generation"] == 2).then_some(())
    })
    .unwrap_or_else(|| panic!("no generation 2:\n{}", server.rill.log()));
    // Now connect and play on the old generation's connection.
    c.send(&connect_command());
    c.send(&play_commands("keep"));
    let mut seen = Vec::new();
    let mut buf = [0u8; 16 << 10];
    let end = Instant::now() + Duration::from_secs(10);
    while Instant::now() < end && seen.len() < 256 << 10 {
        match c.sock.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
        }
    }
    let text = String::from_utf8_lossy(&seen);
    assert!(
        text.contains("NetStream.Play.Start"),
        "no Play.Start on the old generation's connection ({} bytes){}",
        seen.len(),
        if text.contains("Play.Failed") {
            ": Play.Failed"
        } else {
            ""
        }
    );
    assert!(seen.len() > 64 << 10, "no media: {} bytes", seen.len());
}
