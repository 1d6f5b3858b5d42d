//! Relays with real peers: pulls from an ffmpeg RTMP listener and from
//! another Rill over HTTP-FLV, pushes to a second Rill and to nginx-rtmp,
//! on-demand pulls that start with the first player and stop when idle,
//! and the API's pulls kept across a restart. Players are ffmpeg, and
//! every check is on what they decoded (frame counts, monotonic time).

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use rill_e2e::relay::{self, assert_played, bad_server};
use rill_e2e::*;

struct Node {
    rill: Rill,
    rtmp: u16,
}

/// A Rill with RTMP, HTTP-FLV and the relay (its section `relay_yaml`).
fn node(relay_yaml: &str) -> Node {
    let rtmp = free_port();
    let yaml = format!(
        "plugins:\n  rtmp:\n    listen: 127.0.0.1:{rtmp}\n{}publish:\n  reconnect_grace: 5s\n",
        relay::section(relay_yaml)
    );
    let rill = Rill::start(
        &yaml,
        &[rtmp::plugin(), relay::plugin("flv"), relay::plugin("relay")],
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
            &self.rtmp_url(path),
        )
    }

    fn rtmp_url(&self, path: &str) -> String {
        format!("rtmp://127.0.0.1:{}/{path}", self.rtmp)
    }

    fn jobs(&self, kind: &str) -> Vec<serde_json::Value> {
        relay::jobs(&self.rill, kind)
    }

    fn wait_job_live(&self, kind: &str) -> serde_json::Value {
        relay::wait_live(&self.rill, kind, 20, |_| true)
    }
}

#[test]
fn pulls_from_an_ffmpeg_rtmp_listener() {
    let port = free_port();
    // ffmpeg as an RTMP server: it waits for the one client that plays.
    let mut src = publish_lavfi(
        false,
        30,
        "libx264",
        "aac",
        &["-f", "flv", "-listen", "1"],
        &format!("rtmp://127.0.0.1:{port}/live/src"),
    );
    // Not probed: ffmpeg serves one connection, the first. The relay
    // retries until ffmpeg listens.
    let a = node(&format!(
        "pulls:\n  - url: rtmp://127.0.0.1:{port}/live/src\n    stream: cams/one\n"
    ));
    let job = wait_for(Duration::from_secs(20), || {
        a.jobs("pulls").into_iter().find(|j| j["state"] == "live")
    })
    .unwrap_or_else(|| {
        let mut err = String::new();
        let status = src.try_wait();
        if let Some(mut e) = src.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut e, &mut err);
        }
        panic!(
            "no live pull: {:?}; ffmpeg: {status:?} {err}\n{}",
            a.jobs("pulls"),
            a.rill.log()
        )
    });
    assert_eq!(job["origin"], "config");
    assert_eq!(job["stream"], "cams/one");
    wait_publishing(&a.rill, "cams/one");
    let s = a.rill.get_json("/api/v1/streams/cams/one");
    assert!(
        s["publisher"]["source"]
            .as_str()
            .unwrap()
            .contains(&format!("{port}/live/src")),
        "{s}"
    );
    let d = play(false, &a.rtmp_url("cams/one"), 3, &[]);
    assert_played(&d, 60, "RTMP player of the pull");
    let _ = src.kill();
    let _ = src.wait();
    // The source gone: the job retries, with the reason.
    let j = wait_for(Duration::from_secs(20), || {
        a.jobs("pulls")
            .into_iter()
            .find(|j| j["state"] == "retrying")
    })
    .unwrap_or_else(|| panic!("{:?}\n{}", a.jobs("pulls"), a.rill.log()));
    assert!(!j["reason"].as_str().unwrap().is_empty(), "{j}");
}

#[test]
fn pushes_to_a_second_rill_and_pulls_over_http_flv() {
    let b = node("");
    let a = node(&format!(
        "pushes:\n  - match: '^live/(.+)$'\n    url: rtmp://127.0.0.1:{}/copy/$1\n",
        b.rtmp
    ));
    let mut enc = a.publish("live/cam", 30);
    wait_publishing(&a.rill, "live/cam");
    let job = a.wait_job_live("pushes");
    assert_eq!(job["origin"], "rule");
    // The relay's own metrics: one live push, bytes sent.
    let metric = |text: &str, prefix: &str| -> Option<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(prefix)?.trim().parse().ok())
    };
    wait_for(Duration::from_secs(5), || {
        let (_, text) = a.rill.get("/metrics");
        let live = metric(
            &text,
            r#"rill_plugin_relay_jobs{plugin="relay",kind="push",state="live"}"#,
        )?;
        let bytes = metric(
            &text,
            r#"rill_plugin_relay_bytes_total{plugin="relay",kind="push"}"#,
        )?;
        (live == 1.0 && bytes > 0.0).then_some(())
    })
    .unwrap_or_else(|| panic!("relay metrics: {}", a.rill.get("/metrics").1));
    wait_publishing(&b.rill, "copy/cam");
    let d = play(false, &b.rtmp_url("copy/cam"), 3, &[]);
    assert_played(&d, 60, "player of the pushed copy");

    // A third node pulls the copy from B over HTTP-FLV, asked through the API.
    let c = node("");
    let body = format!(
        r#"{{"url": "http://127.0.0.1:{}/copy/cam.flv", "stream": "edge/cam"}}"#,
        b.rill.http_port
    );
    let (st, _, resp) = http_request_with(
        c.rill.http_port,
        "POST",
        "/api/v1/plugins/relay/pulls",
        &[("Host", "127.0.0.1"), ("Content-Type", "application/json")],
        &body,
    );
    assert_eq!(st, 201, "{resp}");
    c.wait_job_live("pulls");
    let d = play(false, &c.rtmp_url("edge/cam"), 3, &[]);
    assert_played(&d, 60, "player of the HTTP-FLV pull");
    let _ = enc.kill();
    let _ = enc.wait();
}

#[test]
fn on_demand_pull_starts_with_a_player_and_stops_when_idle() {
    let origin = node("");
    let mut enc = origin.publish("live/x", 40);
    wait_publishing(&origin.rill, "live/x");
    let edge = node(&format!(
        "on_demand:\n  - match: '^edge/(.+)$'\n    url: rtmp://127.0.0.1:{}/live/$1\n    stop_on_idle: 2s\n",
        origin.rtmp
    ));
    assert!(edge.jobs("pulls").is_empty());
    let d = play(false, &edge.rtmp_url("edge/x"), 3, &[]);
    assert_played(&d, 50, "player of the on-demand pull");
    let pulls = edge.jobs("pulls");
    assert_eq!(pulls.len(), 1, "{pulls:?}");
    assert_eq!(pulls[0]["origin"], "on_demand");
    // No player: gone after stop_on_idle.
    wait_for(Duration::from_secs(10), || {
        edge.jobs("pulls").is_empty().then_some(())
    })
    .unwrap_or_else(|| panic!("still pulling: {:?}", edge.jobs("pulls")));
    wait_for(Duration::from_secs(5), || {
        edge.rill.log().contains("stopped: no player").then_some(())
    })
    .unwrap_or_else(|| panic!("why it stopped:\n{}", edge.rill.log()));
    let _ = enc.kill();
    let _ = enc.wait();
}

#[test]
fn api_pulls_survive_a_restart_and_can_be_deleted() {
    let origin = node("");
    let mut enc = origin.publish("live/y", 40);
    wait_publishing(&origin.rill, "live/y");
    let mut edge = node("");
    let post = |edge: &Node, body: &str| {
        http_request_with(
            edge.rill.http_port,
            "POST",
            "/api/v1/pulls",
            &[("Host", "127.0.0.1"), ("Content-Type", "application/json")],
            body,
        )
    };
    // Bad input gets a reason.
    let (st, _, resp) = post(&edge, r#"{"url": "ftp://x/y", "stream": "a/b"}"#);
    assert_eq!(st, 400, "{resp}");
    let (st, _, _) = post(&edge, r#"{"url": "rtmp://h/a/b", "stream": "../b"}"#);
    assert_eq!(st, 400);
    let (st, _, _) = post(&edge, "not json");
    assert_eq!(st, 400);
    let body = format!(
        r#"{{"url": "{}", "stream": "copy/y"}}"#,
        origin.rtmp_url("live/y")
    );
    let (st, _, resp) = post(&edge, &body);
    assert_eq!(st, 201, "{resp}");
    let (st, _, _) = post(&edge, &body);
    assert_eq!(st, 409, "the same stream twice");
    edge.wait_job_live("pulls");
    // The file is written after the answer.
    let saved = edge.rill.dir.path().join("state/relay/jobs.json");
    wait_for(Duration::from_secs(5), || saved.exists().then_some(()))
        .unwrap_or_else(|| panic!("{} not written\n{}", saved.display(), edge.rill.log()));
    edge.rill.kill_and_restart();
    let job = edge.wait_job_live("pulls");
    assert_eq!(job["origin"], "api");
    let d = play(false, &edge.rtmp_url("copy/y"), 2, &[]);
    assert_played(&d, 30, "player after the restart");
    let id = job["id"].as_u64().unwrap();
    let (st, _, resp) = http_request_with(
        edge.rill.http_port,
        "DELETE",
        &format!("/api/v1/plugins/relay/pulls/{id}"),
        &[("Host", "127.0.0.1")],
        "",
    );
    assert_eq!(st, 200, "{resp}");
    wait_for(Duration::from_secs(5), || {
        edge.jobs("pulls").is_empty().then_some(())
    })
    .expect("deleted");
    std::thread::sleep(Duration::from_millis(500));
    edge.rill.kill_and_restart();
    std::thread::sleep(Duration::from_secs(1));
    assert!(edge.jobs("pulls").is_empty(), "deleted pulls stay deleted");
    let _ = enc.kill();
    let _ = enc.wait();
}

/// nginx with the RTMP module (Debian's libnginx-mod-rtmp), on a free port,
/// as an unprivileged process with its own prefix.
struct Nginx {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Nginx {
    fn start() -> Nginx {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let module = "/usr/lib/nginx/modules/ngx_rtmp_module.so";
        assert!(
            std::path::Path::new(module).exists(),
            "{module} missing: run scripts/install-deps"
        );
        let conf = format!(
            "load_module {module};\ndaemon off;\nmaster_process off;\npid {d}/nginx.pid;\n\
             error_log {d}/error.log info;\nevents {{ worker_connections 64; }}\n\
             rtmp {{ server {{ listen 127.0.0.1:{port}; application live {{ live on; }} }} }}\n",
            d = dir.path().display()
        );
        let path = dir.path().join("nginx.conf");
        std::fs::write(&path, conf).unwrap();
        let child = Command::new("/usr/sbin/nginx")
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(&path)
            .arg("-e")
            .arg(dir.path().join("error.log"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn nginx");
        assert!(
            wait_port(port, Duration::from_secs(10)),
            "nginx did not start"
        );
        Nginx {
            child,
            port,
            _dir: dir,
        }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn pushes_to_nginx_rtmp() {
    let nginx = Nginx::start();
    let a = node(&format!(
        "pushes:\n  - match: '^live/(.+)$'\n    url: rtmp://127.0.0.1:{}/live/$1\n",
        nginx.port
    ));
    let mut enc = a.publish("live/n", 30);
    a.wait_job_live("pushes");
    // nginx-rtmp has no GOP cache: the player starts at the next key frame.
    let d = play(
        false,
        &format!("rtmp://127.0.0.1:{}/live/n", nginx.port),
        3,
        &[],
    );
    assert_played(&d, 50, "player of nginx-rtmp");
    let _ = enc.kill();
    let _ = enc.wait();
}

#[test]
fn bad_sources_end_with_a_reason_and_back_off() {
    // A web server where an RTMP server should be: its first byte is no
    // RTMP version.
    let garbage = bad_server(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
    let silent = bad_server(b"");
    let redirect =
        bad_server(b"HTTP/1.1 302 Found\r\nLocation: /elsewhere.flv\r\nContent-Length: 0\r\n\r\n");
    let not_flv =
        bad_server(b"HTTP/1.1 200 OK\r\nContent-Type: video/x-flv\r\n\r\nGIF89a not an FLV stream");
    let a = node(&format!(
        "stall_timeout: 2s\nretry_initial: 500ms\nretry_max: 4s\npulls:\n\
         - {{url: 'rtmp://127.0.0.1:{garbage}/live/x', stream: bad/garbage}}\n\
         - {{url: 'rtmp://127.0.0.1:{silent}/live/x', stream: bad/silent}}\n\
         - {{url: 'http://127.0.0.1:{redirect}/x.flv', stream: bad/redirect}}\n\
         - {{url: 'http://127.0.0.1:{not_flv}/x.flv', stream: bad/notflv}}\n"
    ));
    relay::wait_failing(
        &a.rill,
        20,
        &[
            ("bad/garbage", &["RTMP"]),
            ("bad/silent", &["nothing received"]),
            ("bad/redirect", &["302"]),
            ("bad/notflv", &["FLV"]),
        ],
    );
}
