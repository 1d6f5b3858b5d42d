//! What the relay and cluster tests share: the relay's section of a config,
//! its jobs through the API, waiting for them, sources that misbehave, and
//! the check of what a player decoded.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;

use crate::{target_dir, wait_for, Decoded, Rill};

/// A built plugin library by name (`relay`, `flv`, ...).
pub fn plugin(name: &str) -> PathBuf {
    target_dir().join(format!(
        "{}rill_plugin_{name}{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    ))
}

/// `  relay:` with `relay_yaml` indented under it (a config's plugins part).
pub fn section(relay_yaml: &str) -> String {
    let mut yaml = String::from("  relay:\n");
    for l in relay_yaml.lines().filter(|l| !l.trim().is_empty()) {
        yaml.push_str(&format!("    {l}\n"));
    }
    if relay_yaml.trim().is_empty() {
        yaml.push_str("    {}\n");
    }
    yaml
}

/// The relay's jobs of `kind` (`pulls`, `pushes`), from the API's top
/// level (the host hands it to the relay plugin).
pub fn jobs(rill: &Rill, kind: &str) -> Vec<Value> {
    rill.get_json(&format!("/api/v1/{kind}"))[kind]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Waits (`secs` at most) for a job of `kind` that `matches` and is live
/// with bytes moved.
pub fn wait_live(rill: &Rill, kind: &str, secs: u64, matches: impl Fn(&Value) -> bool) -> Value {
    wait_for(Duration::from_secs(secs), || {
        jobs(rill, kind)
            .into_iter()
            .find(|j| matches(j) && j["state"] == "live" && j["bytes"].as_u64() > Some(0))
    })
    .unwrap_or_else(|| panic!("no live {kind}: {:#?}\n{}", jobs(rill, kind), rill.log()))
}

/// Waits (`secs` at most) until every pull of `expect` (stream, reasons)
/// is retrying after two attempts or more, and checks that its reason
/// says one of its words. Returns the jobs.
pub fn wait_failing(rill: &Rill, secs: u64, expect: &[(&str, &[&str])]) -> Vec<Value> {
    let jobs = wait_for(Duration::from_secs(secs), || {
        let jobs = jobs(rill, "pulls");
        expect
            .iter()
            .all(|(stream, _)| {
                jobs.iter().any(|j| {
                    j["stream"] == *stream
                        && j["state"] == "retrying"
                        && j["attempts"].as_u64() >= Some(2)
                })
            })
            .then_some(jobs)
    })
    .unwrap_or_else(|| panic!("{:#?}\n{}", jobs(rill, "pulls"), rill.log()));
    for (stream, why) in expect {
        let j = jobs.iter().find(|j| j["stream"] == *stream).unwrap();
        let reason = j["reason"].as_str().unwrap_or("");
        assert!(
            why.iter().any(|w| reason.contains(w)),
            "{stream}: one of {why:?} expected in {j}"
        );
    }
    assert!(rill.get("/api/v1/streams").0 == 200);
    assert!(!rill.log().contains("panicked"), "{}", rill.log());
    jobs
}

/// A TCP server on a free port that answers every connection with
/// `answer` (then keeps it open, silent), in a thread.
pub fn bad_server(answer: &'static [u8]) -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for mut s in l.incoming().flatten() {
            let _ = std::io::Write::write_all(&mut s, answer);
            held.push(s);
        }
    });
    port
}

/// The player decoded at least `min` frames of stream 0 (video), some of
/// stream 1 (audio), both in order.
pub fn assert_played(d: &Decoded, min: usize, what: &str) {
    assert!(
        d.count(0) >= min,
        "{what}: {} frames of stream 0 ({})",
        d.count(0),
        d.stderr
    );
    assert!(d.count(1) > 0, "{what}: no audio ({})", d.stderr);
    assert!(d.monotonic(0) && d.monotonic(1), "{what}: time goes back");
}
