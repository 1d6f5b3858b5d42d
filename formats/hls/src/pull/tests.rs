//! The puller against a scripted server: playlists and segments made by
//! this workspace's muxers, answers given by hand.

use std::collections::HashMap;

use bytes::Bytes;
use rill_abi::{RILL_CODEC_AAC, RILL_CODEC_H264, RILL_FRAME_KEY};

use super::*;

/// An avcC of a 320x240 Baseline stream (from rill-mp4's docs).
const AVCC: &[u8] = &[
    1, 0x42, 0xc0, 0x0d, 0xff, 0xe1, 0, 0x19, 0x67, 0x42, 0xc0, 0x0d, 0xd9, 0x01, 0x41, 0xfb, 0x01,
    0x10, 0, 0, 3, 0, 0x10, 0, 0, 3, 3, 0x20, 0xf1, 0x42, 0x99, 0x20, 1, 0, 4, 0x68, 0xcb, 0x83,
    0xcb, 0x20,
];
const ASC: &[u8] = &[0x12, 0x10];
/// 25 fps video and one audio frame per video frame, 1 s segments.
const PER_SEGMENT: i64 = 25;
const FRAME_US: i64 = 40_000;

fn nal(key: bool) -> Bytes {
    Bytes::from_static(if key {
        &[0, 0, 0, 3, 0x65, 0x88, 0x80]
    } else {
        &[0, 0, 0, 3, 0x41, 0x9a, 0x00]
    })
}

/// `n` MPEG-TS segments of one continuous stream whose clock starts at
/// `start_us`.
fn ts_segments(n: usize, start_us: i64) -> Vec<Bytes> {
    use rill_ts::{MuxTrack, Muxer, MuxerConfig};
    let tracks = [
        MuxTrack::new(RILL_CODEC_H264, Bytes::from_static(AVCC)),
        MuxTrack::new(RILL_CODEC_AAC, Bytes::from_static(ASC)),
    ];
    let mut mux = Muxer::new(&tracks, MuxerConfig::default()).unwrap();
    (0..n as i64)
        .map(|s| {
            let mut seg = Vec::new();
            for i in 0..PER_SEGMENT {
                let t = start_us + (s * PER_SEGMENT + i) * FRAME_US;
                let key = i == 0;
                for (track, codec, payload) in [
                    (0, RILL_CODEC_H264, nal(key)),
                    (1, RILL_CODEC_AAC, Bytes::from_static(&[0x21, 0x10, 4, 5])),
                ] {
                    let f = Frame {
                        track,
                        codec,
                        flags: if key { RILL_FRAME_KEY } else { 0 },
                        pts: t,
                        dts: t,
                        payload,
                    };
                    mux.write(&f, &mut seg).unwrap();
                }
            }
            Bytes::from(seg)
        })
        .collect()
}

/// An init segment and `n` fMP4 segments.
fn fmp4_segments(n: usize, start_us: i64) -> (Bytes, Vec<Bytes>) {
    let v = rill_mp4::TrackInfo::new(RILL_CODEC_H264, Bytes::from_static(AVCC)).unwrap();
    let a = rill_mp4::TrackInfo::new(RILL_CODEC_AAC, Bytes::from_static(ASC)).unwrap();
    let mut mux = rill_mp4::Muxer::new(vec![v, a]).unwrap();
    let init = mux.init_segment().unwrap();
    let mut segs = Vec::new();
    for s in 0..n as i64 {
        for i in 0..PER_SEGMENT {
            let t = start_us + (s * PER_SEGMENT + i) * FRAME_US;
            mux.push(0, rill_mp4::Sample::new(t, t, i == 0, nal(i == 0)))
                .unwrap();
            mux.push(
                1,
                rill_mp4::Sample::new(t, t, true, Bytes::from_static(&[0x21, 0x10, 4])),
            )
            .unwrap();
        }
        let end = start_us + (s + 1) * PER_SEGMENT * FRAME_US;
        let frag = if s + 1 == n as i64 {
            mux.flush(Some(end))
        } else {
            mux.fragment_before(end)
        };
        segs.push(frag.unwrap().to_bytes());
    }
    (init, segs)
}

/// A scripted HTTP server: bodies by path, answers by status.
#[derive(Default)]
struct Server {
    files: HashMap<String, (u16, Bytes)>,
    redirects: HashMap<String, String>,
    /// Paths requested, in order.
    log: Vec<String>,
}

impl Server {
    fn put(&mut self, path: &str, body: impl Into<Bytes>) {
        self.files.insert(path.to_owned(), (200, body.into()));
    }

    fn answer(&mut self, req: &Request) -> Result<Response, String> {
        let path = req.url.target().to_owned();
        self.log.push(path.clone());
        if let Some(to) = self.redirects.get(&path) {
            return Ok(Response {
                status: 302,
                reason: "Found".into(),
                location: Some(to.clone()),
                body: Bytes::new(),
            });
        }
        let (status, body) = self
            .files
            .get(&path)
            .cloned()
            .unwrap_or((404, Bytes::new()));
        let body = match (status, req.range) {
            (200, Some((a, b))) => body.slice(a as usize..b as usize + 1),
            _ => body,
        };
        Ok(Response {
            status: if req.range.is_some() && status == 200 {
                206
            } else {
                status
            },
            reason: if status == 200 { "OK" } else { "Not Found" }.into(),
            location: None,
            body: if status == 200 { body } else { Bytes::new() },
        })
    }
}

/// A media playlist of 1 s segments `first..first+n` named by `name`.
fn playlist(first: u64, n: u64, name: &dyn Fn(u64) -> String, tail: &str) -> String {
    let mut t = format!("#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXT-X-MEDIA-SEQUENCE:{first}\n");
    for m in first..first + n {
        t.push_str(&format!("#EXTINF:1.000,\n{}\n", name(m)));
    }
    t.push_str(tail);
    t
}

fn ts_name(m: u64) -> String {
    format!("t{m}.ts")
}

fn url(path: &str) -> Url {
    Url::parse(&format!("http://origin:8080{path}")).unwrap()
}

/// Makes every request due and hands out every frame due, at `now`.
fn run(p: &mut Puller, s: &mut Server, now: i64, out: &mut Vec<Frame>) -> Result<(), PullError> {
    while let Some(req) = p.poll_request(now) {
        let r = s.answer(&req);
        p.on_response(now, req.id, r)?;
    }
    while let Some(f) = p.poll_frame(now) {
        out.push(f);
    }
    p.tick(now)
}

const T0: i64 = 1_000_000_000;

#[test]
fn a_multivariant_ts_stream_is_pulled_from_its_live_edge_at_its_pace() {
    let segs = ts_segments(12, 10_000_000);
    let mut s = Server::default();
    s.put(
        "/live/x.m3u8",
        "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=500000\nlow/index.m3u8\n\
         #EXT-X-STREAM-INF:BANDWIDTH=900000\nhigh/index.m3u8\n",
    );
    for (i, seg) in segs.iter().enumerate() {
        s.put(&format!("/live/high/t{}.ts", 100 + i), seg.clone());
    }
    s.put("/live/high/index.m3u8", playlist(100, 6, &ts_name, ""));
    let mut p = Puller::new(url("/live/x.m3u8"), PullConfig::default(), T0);
    let mut out = Vec::new();
    run(&mut p, &mut s, T0, &mut out).unwrap();
    assert!(p.started());
    // The multivariant playlist, the highest variant, the last three
    // segments.
    assert_eq!(
        s.log,
        [
            "/live/x.m3u8",
            "/live/high/index.m3u8",
            "/live/high/t103.ts",
            "/live/high/t104.ts",
            "/live/high/t105.ts"
        ]
    );
    // Config frames and the first frames at once, the rest on their time.
    assert!(out.iter().any(|f| f.is_config()));
    assert_eq!(out.iter().find(|f| !f.is_config()).unwrap().dts, 0);
    let first = out.len();
    assert!(first < 10, "{first} frames at once");
    let mut now = T0;
    // The playlist changed: reloaded a target duration later; then,
    // nothing new, half of one later.
    let mut reloads = Vec::new();
    while now < T0 + 1_600_000 {
        now += 20_000;
        let before = s.log.len();
        run(&mut p, &mut s, now, &mut out).unwrap();
        if s.log.len() > before {
            reloads.push(now - T0);
        }
        if now == T0 + 1_000_000 {
            // 1 s of media in 1 s.
            let v = out
                .iter()
                .filter(|f| f.track == 0 && !f.is_config())
                .count();
            assert!((24..=27).contains(&v), "{v}");
        }
    }
    assert_eq!(reloads, [1_000_000, 1_500_000], "{:?}", s.log);
    let video = |o: &[Frame]| o.iter().filter(|f| f.track == 0 && !f.is_config()).count();
    // Two more segments listed: fetched, in order.
    s.put("/live/high/index.m3u8", playlist(102, 6, &ts_name, ""));
    for _ in 0..250 {
        now += 20_000;
        run(&mut p, &mut s, now, &mut out).unwrap();
    }
    let fetched: Vec<_> = s.log.iter().filter(|l| l.ends_with(".ts")).collect();
    assert_eq!(fetched.len(), 5, "{fetched:?}");
    assert!(fetched[3].ends_with("t106.ts") && fetched[4].ends_with("t107.ts"));
    // Five segments of frames, monotonic per track, one time line.
    assert_eq!(video(&out), 5 * PER_SEGMENT as usize);
    for track in [0, 1] {
        let t: Vec<_> = out
            .iter()
            .filter(|f| f.track == track && !f.is_config())
            .collect();
        assert!(
            t.windows(2).all(|w| w[1].dts - w[0].dts == FRAME_US),
            "{track}"
        );
    }
    assert_eq!(p.stats().segments, 5);
}

#[test]
fn fmp4_segments_fetch_their_init_segment_once() {
    let (init, segs) = fmp4_segments(5, 3_000_000);
    let mut s = Server::default();
    s.put("/x/init.mp4", init);
    for (i, seg) in segs.iter().enumerate() {
        s.put(&format!("/x/s{i}.m4s"), seg.clone());
    }
    let name = |m: u64| format!("s{m}.m4s");
    s.put(
        "/x/p.m3u8",
        playlist(0, 5, &name, "").replace(
            "#EXT-X-MEDIA-SEQUENCE:0\n",
            "#EXT-X-MEDIA-SEQUENCE:0\n#EXT-X-MAP:URI=\"init.mp4\"\n",
        ),
    );
    let cfg = PullConfig {
        pace: false,
        live_edge: 5,
        ..PullConfig::default()
    };
    let mut p = Puller::new(url("/x/p.m3u8"), cfg, T0);
    let mut out = Vec::new();
    run(&mut p, &mut s, T0, &mut out).unwrap();
    let inits = s.log.iter().filter(|l| l.ends_with("init.mp4")).count();
    assert_eq!(inits, 1, "{:?}", s.log);
    assert_eq!(p.stats().segments, 5);
    assert!(out[0].is_config() && out[1].is_config());
    let video: Vec<_> = out
        .iter()
        .filter(|f| f.track == 0 && !f.is_config())
        .collect();
    assert_eq!(video.len(), 5 * PER_SEGMENT as usize);
    assert_eq!(video[0].dts, 0);
    assert!(video[0].is_key());
    assert!(video.windows(2).all(|w| w[1].dts - w[0].dts == FRAME_US));
}

#[test]
fn discontinuities_and_byte_ranges_keep_one_time_line() {
    // Two sources: the second's clock is hours away, as after an encoder
    // restart; its segments are ranges of one file.
    let a = ts_segments(2, 10_000_000);
    let b = ts_segments(2, 7_200_000_000);
    let mut s = Server::default();
    s.put("/a0.ts", a[0].clone());
    s.put("/a1.ts", a[1].clone());
    let mut all = b[0].to_vec();
    all.extend_from_slice(&b[1]);
    s.put("/b.ts", all);
    s.put(
        "/p.m3u8",
        format!(
            "#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1,\na0.ts\n#EXTINF:1,\na1.ts\n\
             #EXT-X-DISCONTINUITY\n#EXT-X-BYTERANGE:{}@0\n#EXTINF:1,\nb.ts\n\
             #EXT-X-BYTERANGE:{}\n#EXTINF:1,\nb.ts\n",
            b[0].len(),
            b[1].len()
        ),
    );
    let cfg = PullConfig {
        pace: false,
        live_edge: 4,
        ..PullConfig::default()
    };
    let mut p = Puller::new(url("/p.m3u8"), cfg, T0);
    let mut out = Vec::new();
    run(&mut p, &mut s, T0, &mut out).unwrap();
    assert_eq!(p.stats().segments, 4);
    let video: Vec<_> = out
        .iter()
        .filter(|f| f.track == 0 && !f.is_config())
        .collect();
    assert_eq!(video.len(), 4 * PER_SEGMENT as usize);
    assert!(video.windows(2).all(|w| w[1].dts > w[0].dts));
    let step = video[2 * PER_SEGMENT as usize].dts - video[2 * PER_SEGMENT as usize - 1].dts;
    assert!(step > 0 && step < 100_000, "the line goes on: {step}");
}

#[test]
fn http_errors_garbage_and_redirects_end_the_pull_with_a_reason() {
    let reason = |s: &mut Server| {
        let mut p = Puller::new(url("/p.m3u8"), PullConfig::default(), T0);
        let mut out = Vec::new();
        let mut now = T0;
        loop {
            if let Err(e) = run(&mut p, s, now, &mut out) {
                assert_eq!(p.error(), Some(&e));
                return e.to_string();
            }
            now += 100_000;
            assert!(now < T0 + 60_000_000, "never failed");
        }
    };
    assert_eq!(
        reason(&mut Server::default()),
        "HLS playlist: HTTP 404 Not Found"
    );
    let mut s = Server::default();
    s.put("/p.m3u8", "<html>hello</html>");
    assert_eq!(reason(&mut s), "HLS playlist: playlist without #EXTM3U");
    let mut s = Server::default();
    s.put("/p.m3u8", playlist(0, 3, &ts_name, ""));
    s.put("/t0.ts", "garbage");
    s.put("/t1.ts", "garbage");
    s.put("/t2.ts", "garbage");
    let r = reason(&mut s);
    assert!(r.starts_with("HLS segment 0: MPEG-TS: "), "{r}");
    let mut s = Server::default();
    s.put("/p.m3u8", playlist(0, 3, &ts_name, ""));
    assert_eq!(reason(&mut s), "HLS segment 0: HTTP 404 Not Found");
    // A variant that is multivariant too.
    let mut s = Server::default();
    s.put(
        "/p.m3u8",
        "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\np.m3u8\n",
    );
    assert_eq!(reason(&mut s), "HLS: the variant is not a media playlist");
    let mut s = Server::default();
    s.put("/p.m3u8", "#EXTM3U\n");
    assert_eq!(
        reason(&mut s),
        "HLS: a multivariant playlist without variants"
    );
    // Redirects: followed, and the playlist's URIs resolve where it was
    // found; in a loop, too many.
    let mut s = Server::default();
    s.redirects.insert("/p.m3u8".into(), "/moved/p.m3u8".into());
    s.put(
        "/moved/p.m3u8",
        playlist(0, 2, &ts_name, "#EXT-X-ENDLIST\n"),
    );
    for (i, seg) in ts_segments(2, 0).into_iter().enumerate() {
        s.put(&format!("/moved/t{i}.ts"), seg);
    }
    assert_eq!(reason(&mut s), "HLS: the source ended (EXT-X-ENDLIST)");
    assert_eq!(s.log.iter().filter(|l| l.ends_with(".ts")).count(), 2);
    let mut s = Server::default();
    s.redirects.insert("/p.m3u8".into(), "/p.m3u8".into());
    assert_eq!(reason(&mut s), "HLS playlist: too many redirects");
    assert_eq!(s.log.len(), 6);
}

#[test]
fn a_playlist_that_stops_moving_or_a_silent_server_stall_the_pull() {
    let segs = ts_segments(3, 0);
    let mut s = Server::default();
    s.put("/p.m3u8", playlist(0, 3, &ts_name, ""));
    for (i, seg) in segs.into_iter().enumerate() {
        s.put(&format!("/t{i}.ts"), seg);
    }
    let cfg = PullConfig {
        stall_us: 2_000_000,
        ..PullConfig::default()
    };
    let mut p = Puller::new(url("/p.m3u8"), cfg.clone(), T0);
    let mut out = Vec::new();
    let mut now = T0;
    let e = loop {
        if let Err(e) = run(&mut p, &mut s, now, &mut out) {
            break e;
        }
        now += 50_000;
    };
    assert!(matches!(e, PullError::Stalled(_)), "{e}");
    assert!(
        (now - T0 - 3_000_000).abs() <= 50_000,
        "after 3 target durations: {}",
        now - T0
    );
    let video = out
        .iter()
        .filter(|f| f.track == 0 && !f.is_config())
        .count();
    assert!(video > 60, "{video} frames of 75 released");
    // A request that nobody answers.
    let mut p = Puller::new(url("/p.m3u8"), cfg, T0);
    let req = p.poll_request(T0).unwrap();
    assert_eq!(p.tick(T0 + 1_999_999), Ok(()));
    assert_eq!(
        p.tick(T0 + 2_000_000),
        Err(PullError::Timeout(What::Playlist))
    );
    // Late answers are ignored; the pull is over.
    assert!(p.on_response(T0, req.id, Err("x".into())).is_err());
    assert_eq!(p.poll_request(T0 + 3_000_000), None);
}

#[test]
fn a_pull_that_falls_behind_skips_to_the_live_edge() {
    let segs = ts_segments(40, 0);
    let mut s = Server::default();
    for (i, seg) in segs.into_iter().enumerate() {
        s.put(&format!("/t{i}.ts"), seg);
    }
    s.put("/p.m3u8", playlist(0, 4, &ts_name, ""));
    let cfg = PullConfig {
        max_queued: 4,
        ..PullConfig::default()
    };
    let mut p = Puller::new(url("/p.m3u8"), cfg, T0);
    let mut out = Vec::new();
    run(&mut p, &mut s, T0, &mut out).unwrap();
    assert_eq!(p.stats().segments, 3);
    // 30 segments later, 6 listed: gone from the window, on from the edge.
    s.put("/p.m3u8", playlist(30, 6, &ts_name, ""));
    let mut now = T0;
    for _ in 0..60 {
        now += 100_000;
        run(&mut p, &mut s, now, &mut out).unwrap();
    }
    assert!(s.log.contains(&"/t33.ts".to_owned()), "{:?}", s.log);
    assert!(!s.log.contains(&"/t30.ts".to_owned()), "{:?}", s.log);
    assert_eq!(p.stats().skipped, 29, "4 to 32");
    let video: Vec<_> = out
        .iter()
        .filter(|f| f.track == 0 && !f.is_config())
        .collect();
    assert!(video.windows(2).all(|w| w[1].dts > w[0].dts));
    // More new segments than may wait: the oldest are skipped.
    let mut q = Puller::new(
        url("/p.m3u8"),
        PullConfig {
            max_queued: 4,
            live_edge: 2,
            ..PullConfig::default()
        },
        T0,
    );
    s.put("/p.m3u8", playlist(0, 2, &ts_name, ""));
    let mut out = Vec::new();
    // The first segment in flight while the reload lists 10 more.
    let r1 = q.poll_request(T0).unwrap();
    q.on_response(T0, r1.id, s.answer(&r1)).unwrap();
    let r2 = q.poll_request(T0).unwrap();
    assert_eq!(r2.what, What::Segment(0));
    q.on_response(T0, r2.id, s.answer(&r2)).unwrap();
    s.put("/p.m3u8", playlist(0, 12, &ts_name, ""));
    let mut now = T0;
    while q.stats().playlists < 2 {
        now += 100_000;
        run(&mut q, &mut s, now, &mut out).unwrap();
    }
    // Ten new, four may wait: 2 to 7 skipped, 8 on.
    assert_eq!(q.stats().skipped, 6, "{:?}", s.log);
    assert!(
        s.log.ends_with(&["/t8.ts".to_owned(), "/t9.ts".to_owned()]),
        "{:?}",
        s.log
    );
}
