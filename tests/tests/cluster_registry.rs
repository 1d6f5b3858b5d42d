//! The cluster registry with real components: Debian's redis-server on a
//! private port, Rill processes on loopback, ffmpeg publishing over RTMP.
//! A node claims what is published on it, renews the claim, and lets it go
//! after the grace; with Redis stopped it keeps serving and says degraded,
//! and re-fills Redis when it returns; a killed node's entries expire, and a
//! node shutting down removes its own at once.

use std::process::{Child, Command};
use std::time::{Duration, Instant};

use rill_e2e::redis::Redis;
use rill_e2e::*;

struct Node {
    rill: Rill,
    rtmp: u16,
    http: u16,
}

/// A node `id` on `redis`, with the RTMP plugin.
fn node(redis: &Redis, id: &str, ttl: &str, grace: &str) -> Node {
    node_env(redis, id, ttl, grace, &[])
}

/// [`node`] with more environment for the server.
fn node_env(redis: &Redis, id: &str, ttl: &str, grace: &str, env: &[(&str, &str)]) -> Node {
    let (rtmp, http) = (free_port(), free_port());
    let yaml = format!(
        "publish:\n  reconnect_grace: {grace}\n\
         cluster:\n  redis: {}\n  node_id: {id}\n  advertise: 127.0.0.1:{http}\n  ttl: {ttl}\n\
         plugins:\n  rtmp:\n    listen: 127.0.0.1:{rtmp}\n",
        redis.url()
    );
    let listen = format!("127.0.0.1:{http}");
    let mut env = env.to_vec();
    env.push(("RILL_HTTP_LISTEN", &listen));
    let rill = Rill::start_with_env(&yaml, &[rill_e2e::rtmp::plugin()], &env);
    assert!(wait_port(rtmp, Duration::from_secs(10)), "{}", rill.log());
    Node { rill, rtmp, http }
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

    fn cluster(&self) -> serde_json::Value {
        self.rill.get_json("/api/v1/cluster")
    }

    /// A metric's value, from `/metrics`.
    fn metric(&self, name: &str) -> Option<f64> {
        let (_, text) = self.rill.get("/metrics");
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
    }
}

/// The claim on `path` in Redis, as JSON.
fn claim(redis: &Redis, path: &str) -> Option<serde_json::Value> {
    let v = redis.get(&format!("rill:stream:{path}"))?;
    serde_json::from_str(&v).ok()
}

/// Waits (`secs` at most) until `path` is claimed by `node_id`.
fn wait_claimed(redis: &Redis, path: &str, node_id: &str, secs: u64) -> bool {
    wait_for(Duration::from_secs(secs), || {
        (claim(redis, path)?["node_id"] == node_id).then_some(())
    })
    .is_some()
}

fn stop(mut c: Child) {
    let _ = c.kill();
    let _ = c.wait();
}

#[test]
fn nodes_share_who_publishes_what() {
    let redis = Redis::start();
    let a = node(&redis, "a", "2s", "3s");
    let b = node(&redis, "b", "2s", "3s");
    let ffmpeg = a.publish("live/c1", 20);
    wait_publishing(&a.rill, "live/c1");
    assert!(
        wait_claimed(&redis, "live/c1", "a", 5),
        "no claim: {:?}\n{}",
        redis.keys("rill:*"),
        a.rill.log()
    );

    // The keys, as documented, each with a time to live.
    let c = claim(&redis, "live/c1").unwrap();
    assert_eq!(c["advertise"], format!("127.0.0.1:{}", a.http));
    assert!(c["since"].as_str().is_some_and(|s| s.ends_with('Z')), "{c}");
    let ttl = redis.pttl("rill:stream:live/c1");
    assert!((1..=2000).contains(&ttl), "stream key PTTL {ttl}");
    let rec: serde_json::Value =
        serde_json::from_str(&redis.get("rill:node:a").expect("node key")).unwrap();
    assert_eq!(rec["advertise"], format!("127.0.0.1:{}", a.http));
    let ttl = redis.pttl("rill:node:a");
    assert!((1..=2000).contains(&ttl), "node key PTTL {ttl}");

    // B sees A and its stream.
    let view = wait_for(Duration::from_secs(5), || {
        let v = b.cluster();
        let a_node = v["nodes"]
            .as_array()?
            .iter()
            .find(|n| n["node_id"] == "a")?;
        (a_node["streams"] == serde_json::json!(["live/c1"])).then_some(v)
    })
    .unwrap_or_else(|| panic!("B does not list A's stream: {}", b.cluster()));
    assert_eq!(view["node_id"], "b");
    assert_eq!(view["state"], "up");
    assert_eq!(view["advertise"], format!("127.0.0.1:{}", b.http));
    let nodes = view["nodes"].as_array().unwrap();
    let ids: Vec<_> = nodes
        .iter()
        .map(|n| n["node_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["a", "b"], "{view}");
    assert_eq!(nodes[0]["advertise"], format!("127.0.0.1:{}", a.http));
    assert_eq!(nodes[1]["streams"], serde_json::json!([]));
    assert!(nodes[0]["started"].is_string(), "{view}");

    assert_eq!(a.metric("rill_cluster_up"), Some(1.0));
    assert_eq!(a.metric("rill_cluster_owned_streams"), Some(1.0));
    assert_eq!(b.metric("rill_cluster_owned_streams"), Some(0.0));

    // Renewed past its ttl while the stream lives.
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(claim(&redis, "live/c1").unwrap()["since"], c["since"]);

    // The publisher goes: the claim stays through the grace (it may come
    // back), then goes; the node stays.
    let gone = Instant::now();
    stop(ffmpeg);
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        claim(&redis, "live/c1").is_some(),
        "released within the grace"
    );
    assert!(
        wait_for(Duration::from_secs(8), || claim(&redis, "live/c1")
            .is_none()
            .then_some(()))
        .is_some(),
        "still claimed {:?} after the publisher left:\n{}",
        gone.elapsed(),
        a.rill.log()
    );
    assert!(redis.get("rill:node:a").is_some());
    assert!(wait_for(Duration::from_secs(3), || {
        let v = b.cluster();
        let a_node = v["nodes"]
            .as_array()?
            .iter()
            .find(|n| n["node_id"] == "a")?;
        (a_node["streams"] == serde_json::json!([])).then_some(())
    })
    .is_some());
}

#[test]
fn redis_outage_leaves_local_streams_alone_and_the_registry_is_refilled() {
    let mut redis = Redis::start();
    let a = node(&redis, "a", "2s", "3s");
    let ffmpeg = a.publish("live/c2", 30);
    wait_publishing(&a.rill, "live/c2");
    assert!(wait_claimed(&redis, "live/c2", "a", 5), "{}", a.rill.log());

    redis.stop();
    let view = wait_for(Duration::from_secs(5), || {
        let v = a.cluster();
        (v["state"] == "degraded").then_some(v)
    })
    .unwrap_or_else(|| panic!("not degraded: {}", a.cluster()));
    assert!(
        view["reason"].as_str().is_some_and(|r| !r.is_empty()),
        "{view}"
    );
    // What it knows without Redis: itself and its stream.
    assert_eq!(view["nodes"][0]["node_id"], "a", "{view}");
    assert_eq!(view["nodes"][0]["streams"], serde_json::json!(["live/c2"]));
    assert_eq!(a.metric("rill_cluster_up"), Some(0.0));
    assert!(
        a.metric("rill_cluster_registry_errors_total")
            .unwrap_or(0.0)
            >= 1.0
    );

    // A player on A gets the stream as before.
    let url = format!("rtmp://127.0.0.1:{}/live/c2", a.rtmp);
    let d = play(false, &url, 3, &[]);
    assert!(
        d.count(0) >= 40,
        "video frames {}: {}",
        d.count(0),
        d.stderr
    );
    assert!(
        d.count(1) >= 40,
        "audio frames {}: {}",
        d.count(1),
        d.stderr
    );
    assert!(d.monotonic(0) && d.monotonic(1));
    // Heartbeats kept failing all along; one warning for the outage.
    let log = a.rill.log();
    assert_eq!(
        log.matches("registry unreachable").count(),
        1,
        "one warning per outage:\n{log}"
    );

    // Redis returns, empty: within a few seconds A's entries are back.
    redis.restart();
    let back = Instant::now();
    assert!(
        wait_claimed(&redis, "live/c2", "a", 5),
        "not re-registered: {:?}\n{}",
        redis.keys("rill:*"),
        a.rill.log()
    );
    assert!(
        back.elapsed() < Duration::from_secs(4),
        "{:?}",
        back.elapsed()
    );
    assert!(redis.get("rill:node:a").is_some());
    assert!(
        wait_for(Duration::from_secs(3), || (a.cluster()["state"] == "up")
            .then_some(()))
        .is_some()
    );
    assert_eq!(a.metric("rill_cluster_up"), Some(1.0));
    // The log line may reach the test's reader a moment after the claim.
    wait_for(Duration::from_secs(5), || {
        a.rill
            .log()
            .contains("registry reachable again")
            .then_some(())
    })
    .unwrap_or_else(|| panic!("no rejoin in the log:\n{}", a.rill.log()));
    stop(ffmpeg);
}

#[test]
fn a_killed_node_expires_and_a_stopped_one_leaves() {
    let redis = Redis::start();
    // A long ttl for B, so that its leaving is told from its expiry.
    let mut a = node(&redis, "a", "2s", "3s");
    let b = node(&redis, "b", "8s", "10s");
    let fa = a.publish("live/ka", 20);
    let fb = b.publish("live/kb", 20);
    wait_publishing(&a.rill, "live/ka");
    wait_publishing(&b.rill, "live/kb");
    assert!(wait_claimed(&redis, "live/ka", "a", 5), "{}", a.rill.log());
    assert!(wait_claimed(&redis, "live/kb", "b", 5), "{}", b.rill.log());

    // SIGKILL: nothing is cleaned up; the ttl does it.
    let _ = a.rill.child.kill();
    let _ = a.rill.child.wait();
    let killed = Instant::now();
    let expired = wait_for(Duration::from_secs(4), || {
        (redis.keys("rill:*:a").is_empty() && claim(&redis, "live/ka").is_none()).then_some(())
    });
    assert!(
        expired.is_some(),
        "A's entries left {:?} after the kill: {:?}",
        killed.elapsed(),
        redis.keys("rill:*")
    );
    assert!(killed.elapsed() <= Duration::from_millis(3000));
    stop(fa);

    // SIGTERM: B removes its claim and record at once, long before its
    // 8 s ttl.
    let st = Command::new("kill")
        .args(["-TERM", &b.rill.child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let term = Instant::now();
    let left = wait_for(Duration::from_secs(5), || {
        redis.keys("rill:*").is_empty().then_some(())
    });
    assert!(
        left.is_some(),
        "B's entries still there: {:?}\n{}",
        redis.keys("rill:*"),
        b.rill.log()
    );
    assert!(
        term.elapsed() < Duration::from_secs(4),
        "{:?}",
        term.elapsed()
    );
    wait_for(Duration::from_secs(5), || {
        b.rill.log().contains("cluster: left").then_some(())
    })
    .unwrap_or_else(|| panic!("no leave in the log:\n{}", b.rill.log()));
    stop(fb);
}

#[test]
fn a_publisher_that_moved_wins_the_stream() {
    let redis = Redis::start();
    let a = node(&redis, "a", "2s", "3s");
    // Another node's claim, as if B had the publisher first.
    redis.set(
        "rill:stream:live/mv",
        r#"{"node_id":"b","advertise":"127.0.0.1:1","since":"2026-01-01T00:00:00.000Z"}"#,
    );
    let ffmpeg = a.publish("live/mv", 20);
    wait_publishing(&a.rill, "live/mv");
    assert!(wait_claimed(&redis, "live/mv", "a", 5), "{}", a.rill.log());
    stop(ffmpeg);
}

#[test]
fn the_cluster_api_is_guarded_as_the_rest() {
    let redis = Redis::start();
    let token = "cluster-api-token-0123456789";
    let a = node_env(&redis, "a", "2s", "3s", &[("RILL_HTTP_API_TOKEN", token)]);
    let (st, _, _) = http_request(a.http, "GET", "/api/v1/cluster", None, "");
    assert_eq!(st, 401);
    let (st, _, body) = http_request(a.http, "GET", "/api/v1/cluster", Some(token), "");
    assert_eq!(st, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["node_id"], "a");
    // Changing the cluster is not an API call.
    let (st, _, _) = http_request(a.http, "DELETE", "/api/v1/cluster", Some(token), "");
    assert_eq!(st, 405);
}

#[test]
fn a_node_started_before_redis_joins_when_it_comes() {
    let mut redis = Redis::start();
    redis.stop();
    let a = node(&redis, "a", "2s", "3s");
    let ffmpeg = a.publish("live/early", 20);
    wait_publishing(&a.rill, "live/early");
    let v = a.cluster();
    assert_eq!(v["state"], "degraded", "{v}");
    redis.restart();
    assert!(
        wait_claimed(&redis, "live/early", "a", 5),
        "{:?}\n{}",
        redis.keys("rill:*"),
        a.rill.log()
    );
    // The log line may reach the test's reader a moment after the claim.
    wait_for(Duration::from_secs(5), || {
        a.rill
            .log()
            .contains("registry reachable again")
            .then_some(())
    })
    .unwrap_or_else(|| panic!("no rejoin in the log:\n{}", a.rill.log()));
    stop(ffmpeg);
}
