//! Recording with real clients: ffmpeg publishes over RTMP, the record
//! plugin writes fMP4, FLV, MP4 and MPEG-TS files cut on key frames, the
//! index (the host's SQLite database) lists them through the API with
//! their times, ffprobe reads every file back (codecs, durations), the
//! download honours Range, and retention deletes the oldest.

use std::process::Command;
use std::time::Duration;

use rill_e2e::postgres::Postgres;
use rill_e2e::*;

struct Server {
    rill: Rill,
    rtmp: u16,
}

fn start(record_yaml: &str, global: &str) -> Server {
    let rtmp = free_port();
    let mut yaml =
        format!("{global}\nplugins:\n  rtmp:\n    listen: 127.0.0.1:{rtmp}\n  record:\n");
    for l in record_yaml.lines().filter(|l| !l.trim().is_empty()) {
        yaml.push_str(&format!("    {l}\n"));
    }
    let rill = Rill::start(
        &yaml,
        &[
            rill_e2e::rtmp::plugin(),
            target_dir().join("librill_plugin_record.so"),
        ],
    );
    assert!(wait_port(rtmp, Duration::from_secs(10)), "{}", rill.log());
    Server { rill, rtmp }
}

impl Server {
    fn publish(&self, modern: bool, vcodec: &str, path: &str, secs: u32) -> std::process::Child {
        publish_lavfi(
            modern,
            secs,
            vcodec,
            "aac",
            &["-f", "flv"],
            &format!("rtmp://127.0.0.1:{}/{path}", self.rtmp),
        )
    }

    /// The index's rows for `stream`, once `n` of them are complete.
    fn recordings(&self, stream: &str, n: usize) -> Vec<serde_json::Value> {
        wait_for(Duration::from_secs(20), || {
            let v = self
                .rill
                .get_json(&format!("/api/v1/recordings?stream={stream}"));
            let rows = v["recordings"].as_array()?.clone();
            (rows.len() >= n && rows.iter().all(|r| r["complete"] == true)).then_some(rows)
        })
        .unwrap_or_else(|| {
            panic!(
                "{stream}: no {n} complete recordings: {}\n{}",
                self.rill.get("/api/v1/recordings").1,
                self.rill.log()
            )
        })
    }

    /// Downloads a row's file into the test's directory.
    fn download(&self, row: &serde_json::Value) -> std::path::PathBuf {
        let url = row["url"].as_str().unwrap();
        let (status, _, body) = http_get_bytes(self.rill.http_port, url);
        assert_eq!(status, 200, "{url}");
        assert_eq!(
            body.len() as u64,
            row["bytes"].as_u64().unwrap(),
            "{url}: size"
        );
        let name = format!(
            "{}.{}",
            row["id"].as_str().unwrap(),
            row["format"].as_str().unwrap()
        );
        let p = self.rill.dir.path().join(name);
        std::fs::write(&p, body).unwrap();
        p
    }
}

/// ffprobe: (codec names, container duration in seconds, video frames).
fn probe_file(p: &std::path::Path) -> (Vec<String>, f64, u64) {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-count_packets",
            "-show_streams",
            "-show_format",
            "-of",
            "json",
        ])
        .arg(p)
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{}: {e}: {}",
            p.display(),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let streams = v["streams"].as_array().cloned().unwrap_or_default();
    let mut codecs: Vec<String> = streams
        .iter()
        .map(|s| s["codec_name"].as_str().unwrap_or("").to_owned())
        .collect();
    codecs.sort();
    let video_packets = streams
        .iter()
        .find(|s| s["codec_type"] == "video")
        .and_then(|s| s["nb_read_packets"].as_str()?.parse().ok())
        .unwrap_or(0);
    let num = |k: &str| {
        v["format"][k]
            .as_str()
            .and_then(|d| d.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // An fMP4 file keeps the stream's timeline: its duration counts from
    // 0 in ffprobe's mov demuxer, from its first frame elsewhere.
    let mov = v["format"]["format_name"]
        .as_str()
        .is_some_and(|f| f.starts_with("mov"));
    let duration = if mov {
        num("duration") - num("start_time")
    } else {
        num("duration")
    };
    (codecs, duration, video_packets)
}

fn secs(row: &serde_json::Value, key: &str) -> f64 {
    row[key].as_f64().unwrap()
}

/// Records 20 s of H.264 + AAC in each format, cut every 8 s, and checks
/// what ffprobe reads in every file against the index (SQLite).
#[test]
fn records_each_format() {
    records_each_format_on("");
}

/// The same with the index in a real PostgreSQL server.
#[test]
fn records_each_format_postgresql() {
    let pg = Postgres::start();
    records_each_format_on(&format!("database:\n  url: {}", pg.url()));
    let rows = pg.sql("SELECT count(*) FROM recordings WHERE done = 1");
    assert_eq!(rows.trim(), "12", "rows in PostgreSQL");
}

fn records_each_format_on(global: &str) {
    let s = start(
        "rules:\n  - match: ^live/fmp4$\n    format: fmp4\n    segment: 8s\n  - match: ^live/flv$\n    format: flv\n    segment: 8s\n  - match: ^live/mp4$\n    format: mp4\n    segment: 8s\n  - match: ^live/ts$\n    format: ts\n    segment: 8s\nmin_free: 1MiB",
        global,
    );
    let formats = ["fmp4", "flv", "mp4", "ts"];
    let mut pubs: Vec<_> = formats
        .iter()
        .map(|f| s.publish(false, "libx264", &format!("live/{f}"), 20))
        .collect();
    for p in &mut pubs {
        p.wait().unwrap();
    }
    for f in formats {
        let rows = s.recordings(&format!("live/{f}"), 3);
        assert_eq!(rows.len(), 3, "{f}: {rows:?}");
        let mut total = 0.0;
        let mut prev_end = 0.0f64;
        for (i, row) in rows.iter().enumerate() {
            assert_eq!(row["format"], f);
            assert!(row["codecs"].as_str().unwrap().contains("avc1"), "{row}");
            let file = s.download(row);
            let (codecs, duration, frames) = probe_file(&file);
            assert_eq!(codecs, ["aac", "h264"], "{f}: {}", file.display());
            let indexed = secs(row, "duration_s");
            // ffprobe's duration (the longer stream) against the index's
            // (the video's span): within 5% or one audio frame's worth.
            assert!(
                (duration - indexed).abs() <= (indexed * 0.05).max(0.1),
                "{f} #{i}: ffprobe {duration} s, index {indexed} s"
            );
            if i < 2 {
                // Full segments: 8 s of 25 fps, cut at the key frame (1 s GOP).
                assert!((7.9..=9.1).contains(&indexed), "{f} #{i}: {indexed} s");
                assert!((195..=230).contains(&frames), "{f} #{i}: {frames} frames");
            }
            total += duration;
            // Times: RFC 3339, in order, end after start by about the duration.
            let start = parse_rfc3339(row["start"].as_str().unwrap());
            let end = parse_rfc3339(row["end"].as_str().unwrap());
            // Wall times are when frames arrived: under load they bunch,
            // so the span only roughly follows the media's.
            assert!(start >= prev_end - 0.5, "{f}: rows overlap: {rows:?}");
            assert!(
                end > start && end - start <= indexed + 3.0,
                "{f} #{i}: {start}..{end} for {indexed} s"
            );
            prev_end = end;
        }
        assert!(
            (19.0..=21.0).contains(&total),
            "{f}: {total} s recorded of 20"
        );
    }
    // Range on a download.
    let rows = s.recordings("live/mp4", 3);
    let url = rows[0]["url"].as_str().unwrap();
    let (status, head, body) = http_request_with(
        s.rill.http_port,
        "GET",
        url,
        &[("Host", "127.0.0.1"), ("Range", "bytes=4-11")],
        "",
    );
    assert_eq!(status, 206, "{head}");
    assert!(head.contains("content-range: bytes 4-11/"), "{head}");
    assert_eq!(body, "ftypisom");
    // Bad queries: problem+json.
    for q in [
        "from=yesterday",
        "from=2026-12-02T10:00:00Z&to=2026-12-01T10:00:00Z",
        "to=2026-12-02T10:00:00",
    ] {
        let (st, body) = s.rill.get(&format!("/api/v1/recordings?{q}"));
        assert_eq!(st, 400, "{q}: {body}");
    }
    assert_eq!(s.rill.get("/api/v1/recordings/12345").0, 404);
}

/// Seconds since the epoch of an RFC 3339 UTC time with milliseconds.
fn parse_rfc3339(s: &str) -> f64 {
    let out = Command::new("date")
        .args(["-u", "-d", s, "+%s.%N"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

fn format_rfc3339(secs: f64) -> String {
    let out = Command::new("date")
        .args([
            "-u",
            "-d",
            &format!("@{secs:.6}"),
            "+%Y-%m-%dT%H:%M:%S.%6NZ",
        ])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// `kill -9` mid-recording, then a restart on the same state: the fMP4
/// and FLV files play up to the last fragment written, the MP4 gets its
/// `moov` from the sidecar index, and every row is complete with its
/// file's size.
#[test]
fn repairs_after_kill_9() {
    repairs_after_kill_9_on("");
}

/// The same with the index in PostgreSQL.
#[test]
fn repairs_after_kill_9_postgresql() {
    let pg = Postgres::start();
    repairs_after_kill_9_on(&format!("database:\n  url: {}", pg.url()));
    assert_eq!(
        pg.sql("SELECT count(*) FROM recordings WHERE done = 0")
            .trim(),
        "0"
    );
}

fn repairs_after_kill_9_on(global: &str) {
    let mut s = start(
        "rules:\n  - match: ^live/fmp4$\n    format: fmp4\n    segment: 60s\n  - match: ^live/flv$\n    format: flv\n    segment: 60s\n  - match: ^live/mp4$\n    format: mp4\n    segment: 60s\nmin_free: 1MiB\ncheck_interval: 1s",
        global,
    );
    let formats = ["fmp4", "flv", "mp4"];
    let mut pubs: Vec<_> = formats
        .iter()
        .map(|f| s.publish(false, "libx264", &format!("live/{f}"), 30))
        .collect();
    // About 8 s recorded, then the server dies.
    for f in formats {
        wait_publishing(&s.rill, &format!("live/{f}"));
    }
    std::thread::sleep(Duration::from_secs(8));
    s.rill.kill_and_restart();
    for p in &mut pubs {
        let _ = p.kill();
        let _ = p.wait();
    }
    for f in formats {
        let rows = s.recordings(&format!("live/{f}"), 1);
        assert_eq!(rows.len(), 1, "{f}: {rows:?}");
        let row = &rows[0];
        // Download checks the size against the index.
        let file = s.download(row);
        let (codecs, duration, frames) = probe_file(&file);
        assert_eq!(codecs, ["aac", "h264"], "{f}: {}", file.display());
        assert!(
            (6.0..=10.0).contains(&duration),
            "{f}: {duration} s before the kill"
        );
        assert!(frames >= 150, "{f}: {frames} frames");
        // It decodes to the end without an error.
        let out = Command::new("ffmpeg")
            .args(["-v", "error", "-i"])
            .arg(&file)
            .args(["-f", "null", "-"])
            .output()
            .unwrap();
        assert!(
            out.status.success() && !String::from_utf8_lossy(&out.stderr).contains("moov"),
            "{f}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            (secs(row, "duration_s") - duration).abs() < 1.5,
            "{f}: index {} s, file {duration} s",
            secs(row, "duration_s")
        );
    }
    assert!(s.rill.log().contains("repaired"), "{}", s.rill.log());
    // The MP4's sidecar index is gone once it served.
    let left: Vec<_> = walk(&s.rill.dir.path().join("state/recordings"))
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "idx"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

/// Every file under `dir`.
fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// Retention: with `max_bytes` smaller than three segments, the oldest
/// files are deleted (rows and files), the newest kept.
#[test]
fn retention_deletes_the_oldest() {
    let s = start(
        "rules:\n  - match: ^live/r$\n    format: flv\n    segment: 2s\n    max_bytes: 700KB\n    name: short\nmin_free: 1MiB\ncheck_interval: 1s",
        "",
    );
    let mut p = s.publish(false, "libx264", "live/r", 16);
    p.wait().unwrap();
    let dir = s.rill.dir.path().join("state/recordings/live/r");
    let rows = wait_for(Duration::from_secs(15), || {
        let v = s.rill.get_json("/api/v1/recordings?stream=live/r");
        let rows = v["recordings"].as_array()?.clone();
        let total: u64 = rows.iter().map(|r| r["bytes"].as_u64().unwrap_or(0)).sum();
        (rows.iter().all(|r| r["complete"] == true) && total <= 700_000 && rows.len() >= 2)
            .then_some(rows)
    })
    .unwrap_or_else(|| {
        panic!(
            "retention did not run: {}\n{}",
            s.rill.get("/api/v1/recordings").1,
            s.rill.log()
        )
    });
    // The newest survive: the last one ends when the publisher did.
    let files = walk(&dir);
    assert_eq!(files.len(), rows.len(), "{files:?} vs {rows:?}");
    let starts: Vec<f64> = rows
        .iter()
        .map(|r| parse_rfc3339(r["start"].as_str().unwrap()))
        .collect();
    assert!(starts.windows(2).all(|w| w[0] < w[1]));
    assert!(
        s.rill.log().contains("recording expired"),
        "{}",
        s.rill.log()
    );
    // Deleting through the API takes the file too.
    let id = rows[0]["id"].as_str().unwrap();
    let (st, _, _) = http_request(
        s.rill.http_port,
        "DELETE",
        &format!("/api/v1/recordings/{id}"),
        None,
        "",
    );
    assert_eq!(st, 204);
    assert_eq!(walk(&dir).len(), rows.len() - 1);
    assert_eq!(s.rill.get(&format!("/api/v1/recordings/{id}")).0, 404);
}

/// HEVC + AAC (ffmpeg 9, Enhanced RTMP) in each format.
#[test]
fn records_hevc() {
    let s = start(
        "rules:\n  - match: ^hevc/fmp4$\n    format: fmp4\n  - match: ^hevc/flv$\n    format: flv\n  - match: ^hevc/mp4$\n    format: mp4\n  - match: ^hevc/ts$\n    format: ts\nmin_free: 1MiB",
        "",
    );
    let formats = ["fmp4", "flv", "mp4", "ts"];
    let mut pubs: Vec<_> = formats
        .iter()
        .map(|f| s.publish(true, "libx265", &format!("hevc/{f}"), 8))
        .collect();
    for p in &mut pubs {
        p.wait().unwrap();
    }
    for f in formats {
        let rows = s.recordings(&format!("hevc/{f}"), 1);
        let row = &rows[0];
        assert!(row["codecs"].as_str().unwrap().contains("hvc1"), "{row}");
        let file = s.download(row);
        // Debian's ffprobe cannot read HEVC in FLV (Enhanced RTMP): ffmpeg 9
        // decodes every file.
        let info = Command::new(ffmpeg(true))
            .arg("-i")
            .arg(&file)
            .output()
            .unwrap();
        let info = String::from_utf8_lossy(&info.stderr);
        assert!(
            info.contains("Video: hevc") && info.contains("Audio: aac"),
            "{f}: {info}"
        );
        let d = play(true, file.to_str().unwrap(), 30, &[]);
        // "Stream #0:1[0x2](und): Video: hevc ...": the video's index.
        let video: usize = info
            .lines()
            .find(|l| l.contains("Video:"))
            .and_then(|l| l.split("#0:").nth(1))
            .and_then(|r| r.chars().next()?.to_digit(10))
            .unwrap_or(0) as usize;
        let frames = d.count(video);
        assert!(
            (170..=205).contains(&frames),
            "{f}: {frames} frames of 200: {}",
            d.stderr
        );
        assert!(d.monotonic(video), "{f}");
        assert!(d.stderr.trim().is_empty(), "{f}: {}", d.stderr);
    }
}

/// A full disk: the server runs in its own mount namespace with its
/// recordings directory on an 8 MiB tmpfs (needs root, as the netns
/// tests do). Below `min_free` recording stops, its file closed whole,
/// while an RTMP player goes on playing every frame.
#[test]
fn full_disk_stops_recording_not_the_stream() {
    let dir = tempfile::tempdir().unwrap();
    let wrapper = dir.path().join("in-tmpfs.sh");
    // The state dir is the server's; its recordings/ becomes a tmpfs that
    // only the server's namespace sees, gone with it.
    std::fs::write(
        &wrapper,
        "#!/bin/sh\nstate=\"$(dirname \"$3\")/state\"\nmkdir -p \"$state/recordings\"\nexec unshare --mount --propagation private sh -c 'mount -t tmpfs -o size=8m tmpfs \"$0\" && exec \"$@\"' \"$state/recordings\" \"$@\"\n",
    )
    .unwrap();
    std::fs::set_permissions(
        &wrapper,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let rtmp = free_port();
    let rill = Rill::start_wrapped(
        &format!(
            "plugins:\n  rtmp:\n    listen: 127.0.0.1:{rtmp}\n  record:\n    rules:\n      - match: ^live/full$\n        format: flv\n        segment: 4s\n    min_free: 3MiB\n    check_interval: 500ms\n"
        ),
        &[
            rill_e2e::rtmp::plugin(),
            target_dir().join("librill_plugin_record.so"),
        ],
        &wrapper,
    );
    assert!(wait_port(rtmp, Duration::from_secs(10)), "{}", rill.log());
    // About 6 Mbit/s of constant bitrate: the 5 MiB above the floor fill
    // in about 7 s.
    let mut publisher = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-re"])
        .args([
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=640x360:rate=25:duration=20",
        ])
        .args([
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=48000:duration=20",
        ])
        .args([
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-g",
            "25",
            "-pix_fmt",
            "yuv420p",
        ])
        .args([
            "-b:v", "6M", "-minrate", "6M", "-maxrate", "6M", "-bufsize", "1M",
        ])
        .args(["-x264-params", "nal-hrd=cbr:force-cfr=1"])
        .args(["-c:a", "aac", "-f", "flv"])
        .arg(format!("rtmp://127.0.0.1:{rtmp}/live/full"))
        .stdin(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_publishing(&rill, "live/full");
    let player =
        rill_e2e::rtmp::spawn_play_av(false, &format!("rtmp://127.0.0.1:{rtmp}/live/full"), 16);
    let stopped = wait_for(Duration::from_secs(25), || {
        rill.log().contains("recording stopped").then_some(())
    });
    let d = player.join().unwrap();
    publisher.wait().unwrap();
    assert!(
        stopped.is_some(),
        "recording never stopped:\n{}",
        rill.log()
    );
    // The player saw the whole stream: 16 s of 25 fps, in order.
    assert!(
        d.count(0) >= 380,
        "{} video frames of 400: {}",
        d.count(0),
        d.stderr
    );
    assert!(d.monotonic(0) && d.monotonic(1));
    // What was recorded is whole and listed; nothing was left open.
    let v = rill.get_json("/api/v1/recordings?stream=live/full");
    let rows = v["recordings"].as_array().unwrap();
    assert!(!rows.is_empty(), "{v}");
    let total: u64 = rows.iter().map(|r| r["bytes"].as_u64().unwrap()).sum();
    assert!(
        total < 6 << 20,
        "{total} bytes recorded on an 8 MiB disk with a 3 MiB floor"
    );
    for r in rows {
        assert_eq!(r["complete"], true, "{r}");
        let (st, _, body) = http_get_bytes(rill.http_port, r["url"].as_str().unwrap());
        assert_eq!((st, body.len() as u64), (200, r["bytes"].as_u64().unwrap()));
    }
    assert!(rill.log().contains("below min_free"), "{}", rill.log());
    // The metric says why: the free space where the rule writes, below the floor.
    let (_, metrics) = rill.get("/metrics");
    let free: Vec<f64> = metrics
        .lines()
        .filter(|l| l.starts_with("rill_storage_free_bytes{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse().ok())
        .collect();
    assert!(
        !free.is_empty() && free.iter().all(|f| *f < (3 << 20) as f64),
        "{metrics}"
    );
    assert!(
        metrics.contains("rill_storage_written_bytes_total "),
        "{metrics}"
    );
}

/// VOD playback: the TS and fMP4 recordings of a stream as VOD HLS
/// playlists (all of it, and one time range), played by ffmpeg and by
/// hls.js in Chromium; segment files honour Range.
#[test]
fn vod_playlists_play() {
    let s = start(
        &["ts", "fmp4", "flv", "mp4"]
            .iter()
            .fold("rules:\n".to_owned(), |y, f| {
                y + &format!("  - match: ^vod/{f}$\n    format: {f}\n    segment: 4s\n")
            })
            .replace("rules:\n", "min_free: 1MiB\nrules:\n"),
        "",
    );
    let mut pubs: Vec<_> = ["ts", "fmp4", "flv", "mp4"]
        .iter()
        .map(|f| s.publish(false, "libx264", &format!("vod/{f}"), 12))
        .collect();
    for p in &mut pubs {
        p.wait().unwrap();
    }
    let port = s.rill.http_port;
    // FLV and MP4 files are remuxed to TS segments.
    for f in ["ts", "fmp4", "flv", "mp4"] {
        let rows = s.recordings(&format!("vod/{f}"), 3);
        // The whole recording: 12 s of 25 fps, decoded in order.
        let url = format!("http://127.0.0.1:{port}/vod/vod/{f}.m3u8");
        let d = play(false, &url, 30, &[]);
        let info = Command::new("ffprobe")
            .args(["-v", "error", "-show_streams", "-of", "json", &url])
            .output()
            .unwrap();
        let info: serde_json::Value = serde_json::from_slice(&info.stdout).unwrap();
        let video = info["streams"]
            .as_array()
            .unwrap()
            .iter()
            .find(|st| st["codec_type"] == "video")
            .and_then(|st| st["index"].as_u64())
            .unwrap() as usize;
        let frames = d.count(video);
        assert!(
            (280..=310).contains(&frames),
            "{f}: {frames} frames of 300: {}",
            d.stderr
        );
        assert!(d.monotonic(video), "{f}: timestamps go back");
        // One row's time range: one segment.
        let (from, to) = (
            rows[1]["start"].as_str().unwrap(),
            rows[1]["end"].as_str().unwrap(),
        );
        let (st, body) = s
            .rill
            .get(&format!("/vod/vod/{f}.m3u8?start={from}&end={to}"));
        assert_eq!(st, 200, "{body}");
        assert_eq!(body.matches("#EXTINF").count(), 1, "{body}");
        assert!(body.contains("#EXT-X-ENDLIST") && body.contains("#EXT-X-PLAYLIST-TYPE:VOD"));
        if f == "fmp4" {
            assert!(
                body.contains("#EXT-X-MAP:URI=") && body.contains("#EXT-X-BYTERANGE:"),
                "{body}"
            );
        }
        // hls.js in Chromium plays it.
        if rill_testsupport::require_tool(
            "vod_playlists_play",
            "the browser stack",
            browser::missing(&["playwright-core", "hls.js/dist/hls.min.js"]),
        ) {
            let out = Command::new("node")
                .arg(browser::dir().join("drive.mjs"))
                .arg("hls.html")
                .args([
                    "--query",
                    &format!("src={url}"),
                    "--until",
                    "4",
                    "--timeout",
                    "40",
                ])
                .env("CHROMIUM", browser::chromium())
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&out.stdout);
            let result: serde_json::Value = text
                .lines()
                .find_map(|l| l.strip_prefix("result "))
                .and_then(|j| serde_json::from_str(j).ok())
                .unwrap_or_else(|| {
                    panic!("drive.mjs: {text}{}", String::from_utf8_lossy(&out.stderr))
                });
            let played = result["last"]["played"].as_f64().unwrap_or(0.0);
            assert!(played >= 3.0, "{f}: hls.js played {played} s: {result}");
            assert!(
                result["fatal"].as_array().is_none_or(|a| a.is_empty()),
                "{f}: {result}"
            );
        }
    }
    // Bad ranges and unknown recordings.
    assert_eq!(
        s.rill
            .get("/vod/vod/ts.m3u8?start=2026-12-02T10:00:00Z&end=2026-12-01T10:00:00Z")
            .0,
        400
    );
    assert_eq!(s.rill.get("/vod/vod/ts.m3u8?start=yesterday").0, 400);
    assert_eq!(s.rill.get("/vod/vod/none.m3u8").0, 404);
    assert_eq!(s.rill.get("/vod/seg/123.ts").0, 404);
    // A segment file by range.
    let rows = s.recordings("vod/ts", 3);
    let id = rows[0]["id"].as_str().unwrap();
    let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    std::io::Write::write_all(
        &mut c,
        format!("GET /vod/seg/{id}.ts HTTP/1.1\r\nHost: x\r\nRange: bytes=188-375\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .unwrap();
    let mut resp = Vec::new();
    std::io::Read::read_to_end(&mut c, &mut resp).unwrap();
    let split = resp.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&resp[..split]).to_ascii_lowercase();
    let body = &resp[split + 4..];
    assert!(head.starts_with("http/1.1 206"), "{head}");
    assert!(head.contains("content-range: bytes 188-375/"), "{head}");
    assert_eq!((body.len(), body[0]), (188, 0x47), "one TS packet");
}

/// Recording started and stopped through the API, for a stream no rule
/// records: a complete fMP4 file of about the time in between.
#[test]
fn api_starts_and_stops_recording() {
    let s = start("min_free: 1MiB", "");
    let port = s.rill.http_port;
    let post = |path: &str| http_request(port, "POST", path, None, "");
    assert_eq!(
        post("/api/v1/plugins/record/start/live/api").0,
        404,
        "not published yet"
    );
    let mut p = s.publish(false, "libx264", "live/api", 14);
    wait_publishing(&s.rill, "live/api");
    // The plugin hears of the stream a moment after the API shows it.
    let started = wait_for(Duration::from_secs(5), || {
        let (st, _, body) = post("/api/v1/plugins/record/start/live/api");
        (st != 404).then_some((st, body))
    });
    assert_eq!(started.as_ref().map(|s| s.0), Some(200), "{started:?}");
    assert_eq!(post("/api/v1/plugins/record/start/live/api").0, 409);
    let list = s.rill.get_json("/api/v1/plugins/record/recording");
    assert_eq!(list["recording"], serde_json::json!(["live/api"]));
    std::thread::sleep(Duration::from_secs(6));
    let (st, _, body) = post("/api/v1/plugins/record/stop/live/api");
    assert_eq!(st, 200, "{body}");
    let rows = s.recordings("live/api", 1);
    assert_eq!(rows[0]["format"], "fmp4");
    let d = secs(&rows[0], "duration_s");
    assert!(
        (4.0..=7.0).contains(&d),
        "{d} s recorded between start and stop"
    );
    assert_eq!(post("/api/v1/plugins/record/stop/live/api").0, 404);
    // The host's guard applies: a form post (no JSON/YAML type) is refused.
    let (st, _, _) = http_request_with(
        port,
        "POST",
        "/api/v1/plugins/record/start/live/api",
        &[
            ("Host", "127.0.0.1"),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        "",
    );
    assert_eq!(st, 415);
    // Other plugins' prefixes are not the record plugin's.
    assert_eq!(post("/api/v1/plugins/rtmp/start/live/api").0, 404);
    let _ = p.kill();
    let _ = p.wait();
}

/// One MP4 of a time range: the fMP4 files of two recordings (the
/// publisher went away between them) served as one download on one
/// timeline from 0. ffprobe and ffmpeg read it whole, in order; a byte
/// range is the same bytes as in the whole; HEAD and bad ranges.
#[test]
fn mp4_download_of_a_time_range() {
    let s = start(
        "rules:\n  - match: ^dl/\n    format: fmp4\n    segment: 3s\nmin_free: 1MiB",
        "publish:\n  reconnect_grace: 1s",
    );
    s.publish(false, "libx264", "dl/x", 8).wait().unwrap();
    std::thread::sleep(Duration::from_secs(3));
    s.publish(false, "libx264", "dl/x", 6).wait().unwrap();
    s.recordings("dl/x", 4);
    // Every file complete, the second recording's too.
    let rows = wait_for(Duration::from_secs(10), || {
        let rows = s.recordings("dl/x", 4);
        let last = rows.iter().map(|r| secs(r, "duration_s")).sum::<f64>();
        (last >= 13.0).then_some(rows)
    })
    .expect("14 s recorded");
    let port = s.rill.http_port;
    let (st, head, whole) = http_get_bytes(port, "/vod/dl/x.mp4");
    assert_eq!(st, 200, "{head}{}", s.rill.log());
    assert!(
        head.contains("content-type: video/mp4") && head.contains("accept-ranges: bytes"),
        "{head}"
    );
    assert!(
        head.contains(&format!("content-length: {}", whole.len())),
        "{head}"
    );
    let file = s.rill.dir.path().join("download.mp4");
    std::fs::write(&file, &whole).unwrap();
    let (codecs, duration, frames) = probe_file(&file);
    assert_eq!(codecs, ["aac", "h264"]);
    // 8 s, a gap of about 3 s, 6 s: the second recording sits where the
    // wall clock puts it.
    let first = parse_rfc3339(rows[0]["start"].as_str().unwrap());
    let last = rows.last().unwrap();
    let span = parse_rfc3339(last["end"].as_str().unwrap()) - first;
    assert!(
        (duration - span).abs() <= span * 0.05 + 0.3,
        "duration {duration} s, recorded span {span} s"
    );
    assert!(
        (333..=367).contains(&frames),
        "{frames} video frames of 350"
    );
    let d = play(false, file.to_str().unwrap(), 60, &[]);
    assert!((333..=367).contains(&d.count(0)), "{}", d.stderr);
    assert!(d.monotonic(0) && d.monotonic(1), "timestamps go back");
    // The timeline starts at 0, not at the stream's own time.
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "format=start_time",
            "-of",
            "csv=p=0",
        ])
        .arg(&file)
        .output()
        .unwrap();
    let start: f64 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    assert!((0.0..0.5).contains(&start), "starts at {start} s");

    // Ranges: the same bytes as the whole, wherever they fall.
    let len = whole.len();
    for (a, b) in [
        (0, 99),
        (1000, 60_999),
        (len / 2, len / 2 + 300_000),
        (len - 5000, len - 1),
    ] {
        let b = b.min(len - 1);
        let (st, head, part) = http_get_bytes_with(
            port,
            "/vod/dl/x.mp4",
            &[("Range", &format!("bytes={a}-{b}"))],
        );
        assert_eq!(st, 206, "{head}");
        assert!(
            head.contains(&format!("content-range: bytes {a}-{b}/{len}")),
            "{head}"
        );
        assert!(part == whole[a..=b], "bytes {a}-{b} differ from the whole");
    }
    let (st, head, _) = http_get_bytes_with(port, "/vod/dl/x.mp4", &[("Range", "bytes=99999999-")]);
    assert_eq!(st, 416, "{head}");
    let (st, head, body) = http_request(port, "HEAD", "/vod/dl/x.mp4", None, "");
    assert!(st == 200 && body.is_empty(), "{head}");
    assert!(head.contains(&format!("content-length: {len}")), "{head}");
    // One recording's range: only its files.
    let (from, to) = (
        rows[0]["start"].as_str().unwrap(),
        rows[0]["end"].as_str().unwrap(),
    );
    let (st, _, one) = http_get_bytes(port, &format!("/vod/dl/x.mp4?start={from}&end={to}"));
    assert_eq!(st, 200);
    assert!(
        one.len() < whole.len() / 2,
        "{} of {}",
        one.len(),
        whole.len()
    );
    assert_eq!(s.rill.get("/vod/dl/none.mp4").0, 404);
    assert_eq!(
        s.rill
            .get(&format!("/vod/dl/x.mp4?start={to}&end={from}"))
            .0,
        400
    );
}

/// The packets ffmpeg reads from `url` (copied, not decoded: decoding
/// would make the frame rate constant), in the FLV's milliseconds.
fn spawn_read_packets(url: String) -> std::thread::JoinHandle<Decoded> {
    std::thread::spawn(move || {
        let out = Command::new("ffmpeg")
            .args([
                "-hide_banner",
                "-loglevel",
                "error",
                "-rw_timeout",
                "20000000",
            ])
            .args(["-i", &url, "-map", "0:v:0", "-map", "0:a:0", "-c", "copy"])
            .args(["-f", "framemd5", "-"])
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        rill_e2e::rtmp::parse_framemd5(
            &String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr).into(),
        )
    })
}

/// Replays: recordings published into the engine again. At 2× an RTMP
/// player gets every frame with the timestamps halved; from the second
/// file's start only what follows; the API lists, seeks and stops replays
/// and refuses bad asks.
#[test]
fn replay_at_twice_the_speed() {
    let s = start(
        "rules:\n  - match: ^rp/\n    format: fmp4\n    segment: 4s\nmin_free: 1MiB",
        "",
    );
    s.publish(false, "libx264", "rp/x", 8).wait().unwrap();
    let rows = s.recordings("rp/x", 2);
    let port = s.rill.http_port;
    let rtmp = |path: &str| format!("rtmp://127.0.0.1:{}/{path}", s.rtmp);
    let ask = |body: &str| http_request(port, "POST", "/api/v1/plugins/record/replays", None, body);

    // 2×: the player waits for the stream, then decodes all of it.
    let player = spawn_read_packets(rtmp("replay/rp/x"));
    std::thread::sleep(Duration::from_secs(1));
    let (st, _, body) = ask(r#"{"stream": "rp/x", "speed": 2}"#);
    assert_eq!(st, 201, "{body}");
    let replay: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(replay["path"], "replay/rp/x");
    assert_eq!(replay["speed"], 2.0);
    let d = player.join().unwrap();
    let video: Vec<i64> = d.packets.iter().filter(|p| p.0 == 0).map(|p| p.1).collect();
    assert!(
        (190..=210).contains(&video.len()),
        "{}",
        rill_e2e::rtmp::summary(&d)
    );
    assert!(d.count(1) >= 350, "{}", rill_e2e::rtmp::summary(&d));
    assert!(
        d.monotonic(0) && d.monotonic(1),
        "{}",
        rill_e2e::rtmp::summary(&d)
    );
    // 8 s of media in 4 s of timestamps (FLV counts in ms).
    let span = video.last().unwrap() - video[0];
    assert!((3600..=4400).contains(&span), "video spans {span} ms at 2x");

    // From the second file's start: only its frames.
    let second = &rows[1];
    let expected = (second["duration_s"].as_f64().unwrap() * 25.0) as usize;
    let player = spawn_read_packets(rtmp("replay/second"));
    std::thread::sleep(Duration::from_secs(1));
    let body = format!(
        r#"{{"stream": "rp/x", "start": "{}", "path": "replay/second", "speed": 4}}"#,
        second["start"].as_str().unwrap()
    );
    let (st, _, body) = ask(&body);
    assert_eq!(st, 201, "{body}");
    let d = player.join().unwrap();
    let n = d.count(0);
    assert!(
        n.abs_diff(expected) <= expected / 10 + 2,
        "{n} frames, the second file has {expected}: {}",
        rill_e2e::rtmp::summary(&d)
    );

    // Listed while it runs; a seek; stopped.
    let (st, _, body) = ask(r#"{"stream": "rp/x", "speed": 0.5}"#);
    assert_eq!(st, 201, "{body}");
    let id = serde_json::from_str::<serde_json::Value>(&body).unwrap()["id"]
        .as_u64()
        .unwrap();
    let list = s.rill.get_json("/api/v1/plugins/record/replays");
    assert!(
        list["replays"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["id"] == id),
        "{list}"
    );
    let seek = format!(r#"{{"at": "{}"}}"#, second["start"].as_str().unwrap());
    let (st, _, body) = http_request(
        port,
        "POST",
        &format!("/api/v1/plugins/record/replays/{id}/seek"),
        None,
        &seek,
    );
    assert_eq!(st, 200, "{body}");
    let (st, _, _) = http_request(
        port,
        "DELETE",
        &format!("/api/v1/plugins/record/replays/{id}"),
        None,
        "",
    );
    assert_eq!(st, 200);
    wait_for(Duration::from_secs(5), || {
        s.rill.get_json("/api/v1/plugins/record/replays")["replays"]
            .as_array()?
            .is_empty()
            .then_some(())
    })
    .expect("the replay stopped");
    // Bad asks.
    for bad in [
        r#"{"stream": "rp/x", "speed": 5}"#,
        r#"{"speed": 1}"#,
        r#"{"stream": "rp/x", "path": "rp/x"}"#,
        r#"{"stream": "rp/x", "start": "yesterday"}"#,
        "not json",
    ] {
        let (st, head, body) = ask(bad);
        assert_eq!(st, 400, "{bad}: {head}{body}");
        assert!(head.contains("application/problem+json"), "{head}");
    }
    let (st, _, _) = http_request(
        port,
        "DELETE",
        "/api/v1/plugins/record/replays/999",
        None,
        "",
    );
    assert_eq!(st, 404);
}

/// FLV, TS and MP4 recordings replay too: from 2 s into the first file
/// at 2×, a player gets the frames from the key frame there to the end of
/// the second file, the timestamps halved. And they download as one MP4,
/// remuxed (curl, then ffprobe: both tracks, every frame, the length).
#[test]
fn flv_ts_and_mp4_recordings_replay_and_download() {
    let s = start(
        "rules:\n  - match: ^rf/\n    format: flv\n    segment: 4s\n  - match: ^rt/\n    format: ts\n    segment: 4s\n  - match: ^rm/\n    format: mp4\n    segment: 4s\nmin_free: 1MiB",
        "",
    );
    let publishers = [
        s.publish(false, "libx264", "rf/x", 8),
        s.publish(false, "libx264", "rt/x", 8),
        s.publish(false, "libx264", "rm/x", 8),
    ];
    for mut p in publishers {
        p.wait().unwrap();
    }
    let rtmp = |path: &str| format!("rtmp://127.0.0.1:{}/{path}", s.rtmp);
    let mut runs = Vec::new();
    for stream in ["rf/x", "rt/x", "rm/x"] {
        let rows = s.recordings(stream, 2);
        let total: f64 = rows.iter().map(|r| secs(r, "duration_s")).sum();
        let from = parse_rfc3339(rows[0]["start"].as_str().unwrap()) + 2.0;
        let from = format_rfc3339(from);
        let path = format!("replay/{stream}");
        runs.push((stream, total, spawn_read_packets(rtmp(&path))));
        std::thread::sleep(Duration::from_millis(300));
        let body = format!(r#"{{"stream": "{stream}", "start": "{from}", "speed": 2}}"#);
        let (st, _, body) = http_request(
            s.rill.http_port,
            "POST",
            "/api/v1/plugins/record/replays",
            None,
            &body,
        );
        assert_eq!(st, 201, "{body}");
    }
    for stream in ["rf/x", "rt/x", "rm/x"] {
        let rows = s.recordings(stream, 2);
        let total: f64 = rows.iter().map(|r| secs(r, "duration_s")).sum();
        let file = s
            .rill
            .dir
            .path()
            .join(format!("{}.mp4", stream.replace('/', "_")));
        let url = format!("http://127.0.0.1:{}/vod/{stream}.mp4", s.rill.http_port);
        let out = Command::new("curl")
            .args(["-sS", "-D", "-", "-o"])
            .arg(&file)
            .arg(&url)
            .output()
            .unwrap();
        let head = String::from_utf8_lossy(&out.stdout).to_ascii_lowercase();
        assert!(
            head.starts_with("http/1.1 200") && head.contains("content-type: video/mp4"),
            "{stream}: {head}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(head.contains("accept-ranges: none"), "{head}");
        let (codecs, duration, frames) = probe_file(&file);
        assert_eq!(codecs, ["aac", "h264"], "{stream}");
        let expected = (total * 25.0).round() as u64;
        assert!(
            frames.abs_diff(expected) <= expected / 20 + 2,
            "{stream}: {frames} video frames, {expected} recorded"
        );
        assert!(
            (duration - total).abs() <= total * 0.05 + 0.3,
            "{stream}: {duration} s, {total} s recorded"
        );
    }
    for (stream, total, player) in runs {
        let d = player.join().unwrap();
        let summary = rill_e2e::rtmp::summary(&d);
        let video: Vec<i64> = d.packets.iter().filter(|p| p.0 == 0).map(|p| p.1).collect();
        let expected = ((total - 2.0) * 25.0) as usize;
        assert!(
            video.len().abs_diff(expected) <= expected / 10 + 2,
            "{stream}: {} video frames, {expected} expected: {summary}",
            video.len()
        );
        assert!(d.count(1) >= expected, "{stream}: {summary}");
        assert!(d.monotonic(0) && d.monotonic(1), "{stream}: {summary}");
        let span = (video.last().unwrap() - video[0]) as f64;
        let want = (total - 2.0) * 1000.0 / 2.0;
        assert!(
            (span - want).abs() <= want * 0.1 + 100.0,
            "{stream}: video spans {span} ms at 2x, {want} expected"
        );
    }
}

/// Two nodes sharing one PostgreSQL index, each with its own disk, both
/// recording `nd/x`: each API lists both nodes' files, each row naming its
/// node; a node serves, plays back and deletes only its own files
/// (another's: 409, nothing deleted), and its VOD playlist lists only its
/// own.
#[test]
fn two_nodes_share_a_postgresql_index() {
    let pg = Postgres::start();
    let rules = "rules:\n  - match: ^nd/\n    format: fmp4\n    segment: 4s\nmin_free: 1MiB";
    let node = |id: &str| {
        start(
            rules,
            &format!("database:\n  url: {}\ncluster:\n  node_id: {id}", pg.url()),
        )
    };
    let (a, b) = (node("node-a"), node("node-b"));
    let publishers = [
        a.publish(false, "libx264", "nd/x", 5),
        b.publish(false, "libx264", "nd/x", 5),
    ];
    for mut p in publishers {
        p.wait().unwrap();
    }
    // Both nodes' files, complete, in each node's listing.
    let rows = a.recordings("nd/x", 4);
    let of = |rows: &[serde_json::Value], n: &str| -> Vec<String> {
        rows.iter()
            .filter(|r| r["node"] == n)
            .map(|r| r["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let (mine, theirs) = (of(&rows, "node-a"), of(&rows, "node-b"));
    assert!(
        mine.len() >= 2 && theirs.len() >= 2 && mine.len() + theirs.len() == rows.len(),
        "{rows:?}"
    );
    assert_eq!(b.recordings("nd/x", 4).len(), rows.len());

    // Files: each node serves its own; another's is a conflict.
    let file = |s: &Server, id: &str| {
        let (st, _, body) =
            http_get_bytes(s.rill.http_port, &format!("/api/v1/recordings/{id}/file"));
        (st, String::from_utf8_lossy(&body).into_owned())
    };
    let (st, _) = file(&a, &mine[0]);
    assert_eq!(st, 200);
    let (st, body) = file(&a, &theirs[0]);
    assert_eq!(st, 409, "{body}");
    assert!(body.contains("node-b"), "{body}");
    let (st, _) = file(&b, &theirs[0]);
    assert_eq!(st, 200);
    let del = |s: &Server, id: &str| {
        http_request(
            s.rill.http_port,
            "DELETE",
            &format!("/api/v1/recordings/{id}"),
            None,
            "",
        )
        .0
    };
    assert_eq!(del(&a, &theirs[0]), 409);
    assert_eq!(b.recordings("nd/x", 4).len(), rows.len(), "nothing deleted");
    let (st, _) = file(&b, &theirs[0]);
    assert_eq!(st, 200, "the file is still there");

    // Playback lists only the node's own files.
    for (s, own, other) in [(&a, &mine, &theirs), (&b, &theirs, &mine)] {
        let (st, playlist) = s.rill.get("/vod/nd/x.m3u8");
        assert_eq!(st, 200, "{playlist}");
        for id in own {
            assert!(
                playlist.contains(&format!("/vod/seg/{id}.mp4")),
                "{id}: {playlist}"
            );
        }
        for id in other {
            assert!(!playlist.contains(id.as_str()), "{id}: {playlist}");
        }
    }
    // And a node deletes its own.
    assert_eq!(del(&b, &theirs[0]), 204);
    assert_eq!(a.recordings("nd/x", 3).len(), rows.len() - 1);
}
