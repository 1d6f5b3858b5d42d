//! HLS with real clients: ffmpeg/ffprobe play LL-HLS (fMP4) and classic
//! (TS) HLS of an RTMP-published stream, and live fMP4; playlists are read
//! by m3u8-rs plus our own checks of the LL tags; blocking reloads,
//! discontinuities, tokens carried into URIs.

use std::time::{Duration, Instant};

use rill_e2e::rtmp::{self, Guard};
use rill_e2e::*;

struct Server {
    rill: Rill,
    rtmp: u16,
}

impl Server {
    fn start(global: &str, hls: &str) -> Server {
        let port = free_port();
        let mut yaml = format!(
            "{global}\npublish:\n  reconnect_grace: 1s\nplugins:\n  rtmp:\n    listen: 127.0.0.1:{port}\n  hls:\n"
        );
        if hls.trim().is_empty() {
            yaml.push_str("    window: 6\n");
        }
        for l in hls.lines().filter(|l| !l.trim().is_empty()) {
            yaml.push_str(&format!("    {}\n", l.trim()));
        }
        let rill = Rill::start(
            &yaml,
            &[rtmp::plugin(), target_dir().join("librill_plugin_hls.so")],
        );
        assert!(wait_port(port, Duration::from_secs(10)), "{}", rill.log());
        Server { rill, rtmp: port }
    }

    fn publish(&self, modern: bool, path: &str, secs: u32, v: &str, a: &str) -> Guard {
        Guard(publish_lavfi(
            modern,
            secs,
            v,
            a,
            &["-f", "flv"],
            &format!("rtmp://127.0.0.1:{}/{path}", self.rtmp),
        ))
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}/{path}", self.rill.http_port)
    }

    fn get(&self, path: &str) -> (u16, String, String) {
        http_request(self.rill.http_port, "GET", path, None, "")
    }
}

/// `rill_http_object_responses` of `/metrics`: responses the host served
/// from the objects plugins published.
fn object_responses(s: &Server) -> u64 {
    let (_, _, m) = s.get("/metrics");
    m.lines()
        .find_map(|l| l.strip_prefix("rill_http_object_responses_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no object responses metric:\n{m}"))
}

fn media_playlist(text: &str) -> m3u8_rs::MediaPlaylist {
    match m3u8_rs::parse_playlist_res(text.as_bytes()) {
        Ok(m3u8_rs::Playlist::MediaPlaylist(p)) => p,
        other => panic!("not a media playlist: {other:?}\n{text}"),
    }
}

/// The LL tags, checked by hand: part durations within the target, part
/// indices counting up within each segment, a preload hint.
fn check_ll(text: &str) {
    let target: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("#EXT-X-PART-INF:PART-TARGET="))
        .expect("PART-INF")
        .parse()
        .unwrap();
    assert!(text.contains("#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK="));
    assert!(text.contains("#EXT-X-PRELOAD-HINT:TYPE=PART,URI="));
    let mut last: Option<(u64, u64)> = None;
    for l in text
        .lines()
        .filter_map(|l| l.strip_prefix("#EXT-X-PART:DURATION="))
    {
        let d: f64 = l.split(',').next().unwrap().parse().unwrap();
        assert!(d <= target + 0.001, "part of {d} s > {target}\n{text}");
        let uri = l.split("URI=\"").nth(1).unwrap().split('"').next().unwrap();
        let (m, i) = uri
            .strip_prefix('p')
            .and_then(|r| r.strip_suffix(".m4s"))
            .and_then(|r| r.split_once('.'))
            .map(|(m, i)| (m.parse::<u64>().unwrap(), i.parse::<u64>().unwrap()))
            .unwrap();
        if let Some((lm, li)) = last {
            assert!(
                (m == lm && i == li + 1) || (m > lm && i == 0),
                "part order {lm}.{li} → {m}.{i}"
            );
        }
        last = Some((m, i));
    }
    assert!(last.is_some(), "no parts:\n{text}");
}

#[test]
fn ll_hls_and_ts_play_in_ffmpeg_with_checked_playlists() {
    let s = Server::start("", "");
    let _p = s.publish(false, "live/x", 40, "libx264", "aac");
    // The first playlist request waits for a whole segment, then answers.
    let (st, head, mv) = s.get("/live/x.m3u8");
    assert_eq!(st, 200, "{head}{mv}\n{}", s.rill.log());
    assert!(head.contains("application/vnd.apple.mpegurl"));
    assert!(
        mv.contains("CODECS=\"avc1.") && mv.contains(",mp4a.40.2\""),
        "{mv}"
    );
    assert!(mv.contains("RESOLUTION=320x240"), "{mv}");
    assert!(mv.contains("x/llhls.m3u8"), "{mv}");

    let (st, _, text) = s.get("/live/x/llhls.m3u8");
    assert_eq!(st, 200);
    let p = media_playlist(&text);
    assert!(!p.segments.is_empty());
    for seg in &p.segments {
        assert!(seg.duration <= p.target_duration as f32 + 0.001, "{text}");
    }
    check_ll(&text);

    // A blocking reload for the hinted part returns once it exists, and
    // lists it.
    let hint = text
        .lines()
        .find_map(|l| l.strip_prefix("#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\""))
        .unwrap()
        .trim_end_matches('"')
        .to_owned();
    let (m, i) = hint
        .strip_prefix('p')
        .and_then(|r| r.strip_suffix(".m4s"))
        .and_then(|r| r.split_once('.'))
        .unwrap();
    let (st, _, after) = s.get(&format!("/live/x/llhls.m3u8?_HLS_msn={m}&_HLS_part={i}"));
    assert_eq!(st, 200);
    assert!(
        after.contains(&format!("URI=\"{hint}\"")),
        "{hint} not in\n{after}"
    );
    check_ll(&after);
    let later = media_playlist(&after);
    assert!(later.media_sequence >= p.media_sequence);
    // The hinted part itself, fetched while it is made: it arrives whole.
    let (st, head, body) = http_get_bytes(s.rill.http_port, &format!("/live/x/{hint}"));
    assert_eq!(st, 200, "{head}");
    assert!(
        head.contains("video/mp4") && head.contains("immutable"),
        "{head}"
    );
    assert_eq!(&body[4..8], b"moof", "a part is a fragment");
    // Parts are served by the host itself (ABI 1.8 objects), the hinted
    // one held there until it came; HEAD gives the length alone.
    assert!(object_responses(&s) >= 1, "{}", s.get("/metrics").2);
    let (st, head, none) = http_request(
        s.rill.http_port,
        "HEAD",
        &format!("/live/x/{hint}"),
        None,
        "",
    );
    assert_eq!(st, 200, "{head}");
    assert!(
        head.contains(&format!("content-length: {}", body.len())) && none.is_empty(),
        "{head}"
    );
    // Too far ahead: 400, as the spec says.
    let far: u64 = m.parse::<u64>().unwrap() + 10;
    assert_eq!(s.get(&format!("/live/x/llhls.m3u8?_HLS_msn={far}")).0, 400);
    assert_eq!(s.get("/live/x/llhls.m3u8?_HLS_part=1").0, 400);
    // A playlist that did not change since the client's copy: 304 (the
    // LL one moves every part; a few tries find it unchanged).
    let not_modified = (0..10).any(|_| {
        let (_, head, _) = s.get("/live/x/llhls.m3u8");
        let tag = head
            .lines()
            .find_map(|l| l.strip_prefix("etag: "))
            .expect("an ETag")
            .trim()
            .to_owned();
        let (st, _, body) = http_request_with(
            s.rill.http_port,
            "GET",
            "/live/x/llhls.m3u8",
            &[("Host", "127.0.0.1"), ("If-None-Match", &tag)],
            "",
        );
        assert!(st == 304 || st == 200, "{st}");
        st == 304 && body.is_empty()
    });
    assert!(not_modified, "never a 304 for an unchanged playlist");
    // HEAD: headers without a body.
    let (st, head, body) = http_request(s.rill.http_port, "HEAD", "/live/x/llhls.m3u8", None, "");
    assert_eq!(st, 200, "{head}");
    assert!(
        head.contains("content-length:") && body.is_empty(),
        "{head}{body}"
    );

    // ffmpeg plays the LL-HLS (fMP4) variant and the TS one.
    for (what, url) in [
        ("LL-HLS", s.url("live/x.m3u8")),
        ("TS", s.url("live/x.m3u8?format=ts")),
    ] {
        let d = rtmp::play_av(false, &url, 6);
        let (v, a) = (d.count(0), d.count(1));
        // 6 s of 25 fps video and 48 kHz AAC (1024 samples a frame).
        assert!((143..=157).contains(&v), "{what}: {}", rtmp::summary(&d));
        assert!((267..=296).contains(&a), "{what}: {}", rtmp::summary(&d));
        assert!(
            d.monotonic(0) && d.monotonic(1),
            "{what}: {}",
            rtmp::summary(&d)
        );
    }
    let (st, _, ts) = s.get("/live/x/ts.m3u8");
    assert_eq!(st, 200);
    let tp = media_playlist(&ts);
    assert!(tp.segments.iter().all(|x| x.uri.ends_with(".ts")), "{ts}");
}

#[test]
fn hevc_aac_and_av1_opus_over_fmp4_in_ffmpeg9() {
    if !rill_testsupport::require_tool(
        "hevc_aac_and_av1_opus_over_fmp4_in_ffmpeg9",
        "ffmpeg9",
        (!ffmpeg(true).exists()).then(|| "target/tools/ffmpeg9".into()),
    ) {
        return;
    }
    let s = Server::start("", "");
    let _h = s.publish(true, "live/hevc", 30, "libx265", "aac");
    let _a = s.publish(true, "live/av1", 30, "libsvtav1", "libopus");
    for (path, v, a) in [
        ("live/hevc", "hvc1.", "mp4a.40.2"),
        ("live/av1", "av01.", "opus"),
    ] {
        let (st, _, mv) = s.get(&format!("/{path}.m3u8"));
        assert_eq!(st, 200, "{mv}\n{}", s.rill.log());
        assert!(mv.contains(v) && mv.contains(a), "{mv}");
        let d = rtmp::play_av(true, &s.url(&format!("{path}.m3u8")), 4);
        assert!(
            (92..=108).contains(&d.count(0)),
            "{path}: {}",
            rtmp::summary(&d)
        );
        assert!(
            d.count(1) > 100 && d.monotonic(0) && d.monotonic(1),
            "{path}: {}",
            rtmp::summary(&d)
        );
    }
}

#[test]
fn live_fmp4_and_tokens_in_every_uri() {
    let secret = "0123456789abcdef-hls-test";
    let s = Server::start(&format!("auth:\n  play: token\n  secret: {secret}\n"), "");
    let _p = s.publish(false, "live/t", 30, "libx264", "aac");
    assert_eq!(s.get("/live/t.m3u8").0, 401);
    let q = signed_query(secret, "play", "live/t", unix_in(600));
    let (st, _, mv) = s.get(&format!("/live/t.m3u8?{q}"));
    assert_eq!(st, 200, "{mv}");
    assert!(mv.contains(&format!("t/llhls.m3u8?{q}")), "{mv}");
    let (_, _, text) = s.get(&format!("/live/t/llhls.m3u8?{q}"));
    assert!(
        text.lines()
            .filter(|l| l.contains(".m4s"))
            .all(|l| l.contains(&q)),
        "{text}"
    );
    // Without the token, a part is refused too.
    let part = text
        .lines()
        .find_map(|l| l.split("URI=\"").nth(1))
        .unwrap()
        .split('?')
        .next()
        .unwrap()
        .to_owned();
    assert_eq!(s.get(&format!("/live/t/{part}")).0, 401);
    // The host answered that from its objects, with the stream's rules;
    // with the token it serves the object (the init segment of EXT-X-MAP).
    let before = object_responses(&s);
    let (st, _, body) = http_get_bytes(s.rill.http_port, &format!("/live/t/{part}?{q}"));
    assert_eq!((st, &body[4..8]), (200, &b"ftyp"[..]), "{part}");
    assert_eq!(object_responses(&s), before + 1);
    // The hinted part, not there yet: a client without the token is
    // refused at once, not held until it comes (the playlist after the
    // refusal still hints the same part; a part may come in between, so
    // a few tries).
    let hint_of = |text: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix("#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\""))
            .and_then(|r| r.split(['?', '"']).next())
            .unwrap()
            .to_owned()
    };
    let refused_before_it_came = (0..5).any(|_| {
        let hint = hint_of(&s.get(&format!("/live/t/llhls.m3u8?{q}")).2);
        assert_eq!(s.get(&format!("/live/t/{hint}")).0, 401);
        hint_of(&s.get(&format!("/live/t/llhls.m3u8?{q}")).2) == hint
    });
    assert!(refused_before_it_came);
    // ffmpeg follows the URIs with their tokens.
    let d = rtmp::play_av(false, &s.url(&format!("live/t.m3u8?{q}")), 3);
    assert!(d.count(0) >= 70 && d.monotonic(0), "{}", rtmp::summary(&d));
    // Live fMP4 over a WebSocket: the init segment, then fragments.
    let (mut ws, _) = tungstenite::connect(format!(
        "ws://127.0.0.1:{}/live/t.mp4?{q}",
        s.rill.http_port
    ))
    .expect("WebSocket fMP4");
    let init = ws.read().expect("init").into_data();
    assert_eq!(&init[4..8], b"ftyp");
    for _ in 0..5 {
        let part = ws.read().expect("a fragment").into_data();
        assert_eq!(&part[4..8], b"moof");
    }
    drop(ws);
    // Live fMP4, progressive.
    let d = rtmp::play_av(false, &s.url(&format!("live/t.mp4?{q}")), 3);
    assert!(
        d.count(0) >= 70 && d.monotonic(0) && d.count(1) > 100,
        "fMP4: {}",
        rtmp::summary(&d)
    );
}

#[test]
fn a_publisher_that_comes_back_is_a_discontinuity() {
    let s = Server::start("", "");
    let first = s.publish(false, "live/d", 6, "libx264", "aac");
    let (st, _, _) = s.get("/live/d/llhls.m3u8");
    assert_eq!(st, 200);
    // The first publisher ends; past the 1 s grace, another comes.
    let _ = first.finish(Duration::from_secs(20));
    std::thread::sleep(Duration::from_millis(1500));
    let _second = s.publish(false, "live/d", 20, "libx264", "aac");
    let t0 = Instant::now();
    let text = loop {
        let (_, _, text) = s.get("/live/d/llhls.m3u8");
        let p = media_playlist(&text);
        let after = p.segments.iter().skip_while(|x| !x.discontinuity).count();
        if after >= 2 {
            break text;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "no discontinuity:\n{text}\n{}",
            s.rill.log()
        );
        std::thread::sleep(Duration::from_millis(300));
    };
    assert!(text.contains("#EXT-X-DISCONTINUITY\n"), "{text}");
    check_ll(&text);
}

/// `always`: both variants are muxed from the publish on, so the first
/// classic (TS) player finds segments that exist instead of waiting for
/// one (and every TS player getting it at the same moment).
#[test]
fn always_muxes_both_variants_from_publish() {
    let s = Server::start("", "always: true");
    let _p = s.publish(false, "live/a", 30, "libx264", "aac");
    // Nobody asks for anything while three segments (2 s each) are made.
    std::thread::sleep(Duration::from_secs(7));
    let t0 = Instant::now();
    let (st, _, ts) = s.get("/live/a/ts.m3u8");
    assert_eq!(st, 200, "{}", s.rill.log());
    let tp = media_playlist(&ts);
    assert!(tp.segments.len() >= 2, "TS muxed on request only:\n{ts}");
    assert!(t0.elapsed() < Duration::from_secs(1), "{:?}", t0.elapsed());
    let (st, _, ll) = s.get("/live/a/llhls.m3u8");
    assert_eq!(st, 200);
    assert!(media_playlist(&ll).segments.len() >= 2, "{ll}");
    // And its segments play.
    let d = rtmp::play_av(false, &s.url("live/a.m3u8?format=ts"), 4);
    assert!(d.count(0) >= 90 && d.monotonic(0), "{}", rtmp::summary(&d));
}

/// Issue 20's reload storm lost HLS viewers: their parts and segments
/// lived in the generation a reload replaced. Now the muxing generation
/// pins its stream's URLs: a player that plays through a reload of the HLS
/// plugin sees no break, the old generation serves it while it drains and
/// is destroyed once the stream went idle; then the new generation serves.
#[test]
fn a_reload_of_the_hls_plugin_does_not_break_its_viewers() {
    let s = Server::start("", "window: 6\nidle_timeout: 2s");
    let _p = s.publish(false, "live/r", 40, "libx264", "aac");
    let hls = target_dir().join("librill_plugin_hls.so");
    let (st, _, _) = s.get("/live/r/llhls.m3u8");
    assert_eq!(st, 200, "{}", s.rill.log());
    let player = rtmp::spawn_play_av(false, &s.url("live/r.m3u8"), 14);
    std::thread::sleep(Duration::from_secs(4));
    install_new_build(&s.rill, &hls, "reload-2");
    // The old generation drains with the muxer (and requests) on it.
    let state = wait_for(Duration::from_secs(10), || {
        let p = plugin_state(&s.rill, "hls")?;
        (p["generation"].as_u64()? >= 2).then_some(p)
    })
    .unwrap_or_else(|| panic!("not reloaded:\n{}", s.rill.log()));
    assert!(
        state["draining_generations"][0]["sessions"].as_u64() >= Some(1),
        "the old generation should keep the muxed stream: {state}"
    );
    let d = player.join().unwrap();
    // 14 s of 25 fps video and 48 kHz AAC, through the reload.
    let (v, a) = (d.count(0), d.count(1));
    assert!((333..=364).contains(&v), "{}", rtmp::summary(&d));
    assert!((623..=690).contains(&a), "{}", rtmp::summary(&d));
    assert!(d.monotonic(0) && d.monotonic(1), "{}", rtmp::summary(&d));
    let video: Vec<i64> = d.packets.iter().filter(|p| p.0 == 0).map(|p| p.1).collect();
    let gap = video.windows(2).map(|w| w[1] - w[0]).max().unwrap_or(0);
    // framemd5 times are in the stream's time base (1/90000 for HLS).
    assert!(gap <= 45_000, "a {gap} hole in the video: {}", d.stderr);
    assert!(!d.stderr.contains("404"), "{}", d.stderr);
    // Nobody asks any more: the muxer idles out, the pin goes, and the old
    // generation is destroyed.
    wait_for(Duration::from_secs(20), || {
        plugin_state(&s.rill, "hls")?["draining_generations"]
            .as_array()?
            .is_empty()
            .then_some(())
    })
    .unwrap_or_else(|| panic!("old generation not destroyed:\n{}", s.rill.log()));
    // The new generation serves the stream now.
    let d = rtmp::play_av(false, &s.url("live/r.m3u8"), 4);
    assert!(d.count(0) >= 95 && d.monotonic(0), "{}", rtmp::summary(&d));
    let p = plugin_state(&s.rill, "hls").unwrap();
    assert!(p["sessions"].as_u64() >= Some(1), "{p}");
}
