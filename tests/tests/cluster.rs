//! Origin and edges on Redis with real components: Debian's redis-server on
//! a private port, three Rill processes on loopback, ffmpeg publishing over
//! RTMP and playing over RTMP, HTTP-FLV and HLS. A player on an edge is
//! served by a pull from the node that owns the stream; when that node dies
//! the publisher moves to another node and the edge's player keeps playing.

use std::process::Child;
use std::time::{Duration, Instant};

use rill_e2e::redis::Redis;
use rill_e2e::relay::{self, assert_played};
use rill_e2e::*;

struct Node {
    rill: Rill,
    rtmp: u16,
}

/// Node `id` on `redis` with RTMP, HTTP-FLV, HLS and the relay.
fn node(redis: &Redis, id: &str) -> Node {
    let (rtmp, http) = (free_port(), free_port());
    let yaml = format!(
        "publish:\n  reconnect_grace: 8s\n\
         cluster:\n  redis: {}\n  node_id: {id}\n  advertise: 127.0.0.1:{http}\n  ttl: 2s\n\
         plugins:\n  rtmp:\n    listen: 127.0.0.1:{rtmp}\n  relay:\n    cluster_stop_on_idle: 10s\n",
        redis.url()
    );
    let listen = format!("127.0.0.1:{http}");
    let rill = Rill::start_with_env(
        &yaml,
        &[
            rill_e2e::rtmp::plugin(),
            relay::plugin("flv"),
            relay::plugin("hls"),
            relay::plugin("relay"),
        ],
        &[("RILL_HTTP_LISTEN", &listen)],
    );
    assert!(wait_port(rtmp, Duration::from_secs(10)), "{}", rill.log());
    Node { rill, rtmp }
}

impl Node {
    fn publish(&self, path: &str, secs: u32) -> Child {
        publish_lavfi(
            false,
            secs,
            "libx264",
            "aac",
            &["-f", "flv"],
            &format!("rtmp://127.0.0.1:{}/{path}", self.rtmp),
        )
    }

    fn rtmp_url(&self, path: &str) -> String {
        format!("rtmp://127.0.0.1:{}/{path}", self.rtmp)
    }

    fn http_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}/{path}", self.rill.http_port)
    }

    fn pulls(&self) -> Vec<serde_json::Value> {
        relay::jobs(&self.rill, "pulls")
    }
}

fn owner(redis: &Redis, path: &str) -> Option<String> {
    let v: serde_json::Value =
        serde_json::from_str(&redis.get(&format!("rill:stream:{path}"))?).ok()?;
    v["node_id"].as_str().map(str::to_owned)
}

#[test]
fn edges_pull_from_the_owner_and_players_survive_its_death() {
    let redis = Redis::start();
    let mut a = node(&redis, "a");
    let b = node(&redis, "b");
    let c = node(&redis, "c");
    let mut enc = a.publish("live/c", 60);
    wait_for(Duration::from_secs(10), || {
        (owner(&redis, "live/c")? == "a").then_some(())
    })
    .unwrap_or_else(|| panic!("not claimed by a:\n{}", a.rill.log()));

    // Players on the edges, each protocol: an on-demand pull from A each.
    let d = play(false, &b.rtmp_url("live/c"), 3, &[]);
    assert_played(&d, 50, "RTMP on B");
    let d = play(false, &b.http_url("live/c.flv"), 3, &[]);
    assert_played(&d, 50, "HTTP-FLV on B");
    let d = play(false, &c.http_url("live/c.m3u8"), 3, &[]);
    assert_played(&d, 40, "HLS on C");
    for n in [&b, &c] {
        let p = n.pulls();
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(p[0]["origin"], "cluster");
        assert_eq!(
            p[0]["url"],
            format!("http://{}/live/c.flv", a_advertise(&a))
        );
        let s = n.rill.get_json("/api/v1/streams/live/c");
        assert_eq!(s["publisher"]["cluster_relay"], true, "{s}");
    }
    // The edges relay, they do not own: A is still the owner, and it
    // serves each edge once.
    assert_eq!(owner(&redis, "live/c").as_deref(), Some("a"));
    let origin = a.rill.get_json("/api/v1/streams/live/c");
    assert!(origin["subscribers"].as_u64().unwrap() <= 2, "{origin}");

    // A long player on C, then A dies and the publisher moves to B.
    let url = c.rtmp_url("live/c");
    let started = Instant::now();
    let player = std::thread::spawn(move || play(false, &url, 16, &[]));
    std::thread::sleep(Duration::from_secs(4));
    let _ = a.rill.child.kill(); // SIGKILL: no goodbye to Redis
    let _ = enc.kill();
    let _ = enc.wait();
    let mut enc = b.publish("live/c", 40);
    wait_for(Duration::from_secs(10), || {
        (owner(&redis, "live/c")? == "b").then_some(())
    })
    .unwrap_or_else(|| panic!("B never owned it:\n{}", b.rill.log()));
    let d = player.join().unwrap();
    let took = started.elapsed();
    // 16 s of media at 25 fps, through a gap shorter than the grace.
    assert_played(&d, 16 * 25 * 9 / 10, "RTMP on C through the failover");
    assert!(
        took < Duration::from_secs(16 + 8 + 6),
        "the player stalled: {took:?}"
    );
    let p = c.pulls();
    assert!(
        p.iter().any(|j| j["url"]
            .as_str()
            .unwrap_or("")
            .contains(&b.rill.http_port.to_string())),
        "C pulls from B now: {p:?}\n{}",
        c.rill.log()
    );
    // B publishes itself now: its cluster pull ended.
    wait_for(Duration::from_secs(15), || {
        b.pulls().is_empty().then_some(())
    })
    .unwrap_or_else(|| panic!("B still pulls: {:?}", b.pulls()));
    let _ = enc.kill();
    let _ = enc.wait();
}

fn a_advertise(a: &Node) -> String {
    format!("127.0.0.1:{}", a.rill.http_port)
}
