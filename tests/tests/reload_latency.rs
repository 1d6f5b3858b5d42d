//! Hot-reload latency: the time from `rename`-ing a rebuilt C template over
//! the loaded one to the new generation serving. Not a pass/fail test of
//! speed: it prints the figures. Run it explicitly:
//!
//! ```sh
//! cargo build --workspace
//! cargo test -p rill-e2e --test reload_latency -- --ignored --nocapture
//! ```
//!
//! "Serving" is observed through `/api/v1/plugins` reporting generation
//! N+1 with the new version: the host re-targets the plugin's listeners to
//! the new generation before it records the generation, so from then on a
//! new connection to the play port is the new version's (each reload checks
//! that with a real connection, outside the timed part). A rename into the
//! plugins dir is reported at once (no debounce, no settling), so expect
//! about 10 ms (debug build).

use std::io::Read;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use rill_e2e::*;

const RELOADS: usize = 50;

/// Nearest-rank percentile of sorted `v`.
fn percentile(v: &[Duration], p: f64) -> Duration {
    let rank = ((p / 100.0) * v.len() as f64).ceil().max(1.0) as usize;
    v[rank.min(v.len()) - 1]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[test]
#[ignore = "measurement: run with --ignored --nocapture"]
fn reload_latency() {
    let (ingest, play) = (free_port(), free_port());
    let config = format!(
        "plugins:\n  flvtcp:\n    ingest: 127.0.0.1:{ingest}\n    play: 127.0.0.1:{play}\n    stream: live/reload\n"
    );
    // Two builds, installed alternately: every install is new bytes.
    let builds = [
        build_template("1.0.0-a", false),
        build_template("1.0.0-b", false),
    ];
    let rill = Rill::start(&config, &[builds[0].clone()]);
    assert!(wait_port(play, Duration::from_secs(10)), "{}", rill.log());
    let dir = rill.plugins_dir();
    let dest = dir.join("libflvtcp.so");
    let tmp = dir.join(".libflvtcp.so.tmp");

    let mut samples = Vec::with_capacity(RELOADS);
    for i in 0..RELOADS {
        let generation = (i + 2) as u64;
        let (lib, version) = if i % 2 == 0 {
            (&builds[1], "1.0.0-b")
        } else {
            (&builds[0], "1.0.0-a")
        };
        std::fs::copy(lib, &tmp).unwrap();
        std::thread::sleep(Duration::from_millis(50));
        let t0 = Instant::now();
        std::fs::rename(&tmp, &dest).unwrap();
        let state = loop {
            let s = plugin_state(&rill, "flvtcp").expect("flvtcp in the API");
            if s["generation"] == generation {
                break s;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(5),
                "reload {i}: generation {generation} not reported within 5 s: {s}\n{}",
                rill.log()
            );
            std::thread::sleep(Duration::from_millis(2));
        };
        samples.push(t0.elapsed());
        assert_eq!(state["version"], version, "reload {i}: {state}");
        assert_eq!(state["state"], "running", "reload {i}: {state}");

        // A new player is the new generation's session.
        let mut player = TcpStream::connect(("127.0.0.1", play)).unwrap();
        player
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut hdr = [0u8; 13];
        player.read_exact(&mut hdr).expect("FLV header");
        assert_eq!(&hdr[..3], b"FLV");
        let s = plugin_state(&rill, "flvtcp").unwrap();
        assert_eq!(
            (s["generation"].as_u64(), s["sessions"].as_u64()),
            (Some(generation), Some(1)),
            "reload {i}: the new player is not on the new generation: {s}"
        );
        drop(player);
        // Let the player's session end before the next reload.
        wait_for(Duration::from_secs(5), || {
            plugin_state(&rill, "flvtcp").filter(|s| s["sessions"] == 0)
        })
        .expect("player session ended");
    }

    let mut sorted = samples.clone();
    sorted.sort();
    let mean = samples.iter().sum::<Duration>() / samples.len() as u32;
    println!(
        "reload latency over {RELOADS} reloads (rename -> API reports the new generation):\n  \
         min {:.0} ms  p50 {:.0} ms  p90 {:.0} ms  p99 {:.0} ms  max {:.0} ms  mean {:.0} ms",
        ms(sorted[0]),
        ms(percentile(&sorted, 50.0)),
        ms(percentile(&sorted, 90.0)),
        ms(percentile(&sorted, 99.0)),
        ms(sorted[sorted.len() - 1]),
        ms(mean),
    );
    let failures = plugin_state(&rill, "flvtcp").unwrap()["reload_failures"].clone();
    assert_eq!(failures, 0, "{}", rill.log());
}
