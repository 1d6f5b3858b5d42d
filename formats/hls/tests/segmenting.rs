//! Frames in, playlists and media out: the windows, the cuts, the tags, and
//! the playlists read back by an independent parser (m3u8-rs).

use bytes::Bytes;
use rill_abi::*;
use rill_hls::{Config, Frame, LlHls, Object, Readiness, TsHls};

/// An avcC of a 320x240 Baseline stream (from rill-mp4's docs).
const AVCC: &[u8] = &[
    1, 0x42, 0xc0, 0x0d, 0xff, 0xe1, 0, 0x19, 0x67, 0x42, 0xc0, 0x0d, 0xd9, 0x01, 0x41, 0xfb, 0x01,
    0x10, 0, 0, 3, 0, 0x10, 0, 0, 3, 3, 0x20, 0xf1, 0x42, 0x99, 0x20, 1, 0, 4, 0x68, 0xcb, 0x83,
    0xcb, 0x20,
];
/// AAC-LC 44.1 kHz stereo.
const ASC: &[u8] = &[0x12, 0x10];

fn config(track: u32, codec: u32, payload: &[u8]) -> Frame {
    Frame {
        track,
        codec,
        flags: RILL_FRAME_CONFIG,
        pts: 0,
        dts: 0,
        payload: Bytes::copy_from_slice(payload),
    }
}

fn video(dts: i64, key: bool) -> Frame {
    // One IDR or non-IDR slice NAL, length-prefixed.
    let nal: &[u8] = if key {
        &[0, 0, 0, 3, 0x65, 0x88, 0x80]
    } else {
        &[0, 0, 0, 3, 0x41, 0x9a, 0x00]
    };
    Frame {
        track: 0,
        codec: RILL_CODEC_H264,
        flags: if key { RILL_FRAME_KEY } else { 0 },
        pts: dts,
        dts,
        payload: Bytes::copy_from_slice(nal),
    }
}

fn audio(dts: i64) -> Frame {
    Frame {
        track: 1,
        codec: RILL_CODEC_AAC,
        flags: RILL_FRAME_KEY,
        pts: dts,
        dts,
        payload: Bytes::from_static(&[0x21, 0x10, 0x04]),
    }
}

/// `secs` of 25 fps video (a key frame every `gop` frames) and AAC
/// (1024 samples at 44.1 kHz), interleaved by dts, from `t0`.
fn media(t0: i64, secs: i64, gop: i64) -> Vec<Frame> {
    let mut v: Vec<Frame> = (0..secs * 25)
        .map(|i| video(t0 + i * 40_000, i % gop == 0))
        .collect();
    let aac = 1024 * 1_000_000 / 44_100;
    v.extend((0..secs * 1_000_000 / aac).map(|i| audio(t0 + i * aac)));
    v.sort_by_key(|f| f.dts);
    v
}

fn feed_ll(hls: &mut LlHls<Bytes>, frames: &[Frame]) {
    for f in frames {
        hls.push(f, 1_700_000_000_000_000 + f.dts, &mut |b| b);
    }
}

fn parse_media(text: &str) -> m3u8_rs::MediaPlaylist {
    match m3u8_rs::parse_playlist_res(text.as_bytes()) {
        Ok(m3u8_rs::Playlist::MediaPlaylist(p)) => p,
        other => panic!("not a media playlist: {other:?}\n{text}"),
    }
}

#[test]
fn ll_hls_parts_segments_and_tags() {
    let mut hls = LlHls::new(Config::default());
    feed_ll(
        &mut hls,
        &[
            config(0, RILL_CODEC_H264, AVCC),
            config(1, RILL_CODEC_AAC, ASC),
        ],
    );
    feed_ll(&mut hls, &media(0, 20, 25));
    let text = hls.playlist("");
    let p = parse_media(&text);
    assert_eq!(p.target_duration, 2, "{text}");
    assert!(p.segments.len() <= 6, "window: {}", p.segments.len());
    // 20 s in 2 s segments: 9 complete are gone or listed, the window keeps 6.
    assert_eq!(p.media_sequence, 3, "{text}");
    assert!(hls
        .playlist("?token=t")
        .contains("URI=\"init1.m4s?token=t\""));
    for s in &p.segments {
        assert!(
            (s.duration - 2.0).abs() < 0.01,
            "segment of {} s\n{text}",
            s.duration
        );
        assert!(s.uri.starts_with('s') && s.uri.ends_with(".m4s"));
    }
    // Our own checks of the LL tags.
    assert!(
        text.contains("#EXT-X-PART-INF:PART-TARGET=0.200\n"),
        "{text}"
    );
    assert!(
        text.contains("CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=0.600"),
        "{text}"
    );
    assert!(text.contains("#EXT-X-MAP:URI=\"init1.m4s\""));
    assert!(
        text.contains("#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"p9."),
        "{text}"
    );
    assert!(
        text.contains("#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:"),
        "{text}"
    );
    let parts: Vec<(f64, bool)> = text
        .lines()
        .filter_map(|l| l.strip_prefix("#EXT-X-PART:DURATION="))
        .map(|l| {
            let d: f64 = l.split(',').next().unwrap().parse().unwrap();
            (d, l.contains("INDEPENDENT=YES"))
        })
        .collect();
    assert!(parts.len() >= 20, "{text}");
    assert!(
        parts.iter().all(|(d, _)| *d <= 0.2 + 1e-9 && *d > 0.0),
        "{parts:?}"
    );
    // Each segment's first part starts with its key frame.
    assert!(parts.iter().filter(|p| p.1).count() >= 2, "{parts:?}");
    for s in hls.window().segments() {
        assert!(
            s.parts[0].independent,
            "segment {} starts without a key frame",
            s.msn
        );
        // Key frames every second: a second independent part mid-segment.
        if s.complete {
            assert_eq!(s.parts.iter().filter(|p| p.independent).count(), 2);
        }
    }

    // What is listed exists, and decodes as fragments with the samples.
    let w = hls.window();
    let last = w.segments().filter(|s| s.complete).last().unwrap();
    let seg = w.segment(last.msn).unwrap();
    let bytes: Vec<u8> = seg.parts.iter().flat_map(|p| p.data.to_vec()).collect();
    let frags = rill_mp4::read::parse_fragments(&bytes).expect("parts parse as fragments");
    let video_samples: usize = frags
        .iter()
        .flat_map(|f| f.trafs.iter())
        .filter(|t| t.track_id == 1)
        .map(|t| t.samples.len())
        .sum();
    assert_eq!(video_samples, 50, "a 2 s segment holds 50 frames");
    let init = hls.init(1).expect("init1");
    let parsed = rill_mp4::read::parse_init(init).expect("init parses");
    assert_eq!(parsed.tracks.len(), 2);

    // Blocking reloads.
    let (msn, part) = w.next_part();
    assert_eq!(w.readiness(msn, Some(part)), Readiness::Wait);
    assert_eq!(
        w.readiness(msn, Some(part.saturating_sub(1))),
        if part > 0 {
            Readiness::Ready
        } else {
            Readiness::Wait
        }
    );
    assert_eq!(w.readiness(last.msn, None), Readiness::Ready);
    assert_eq!(
        w.readiness(0, None),
        Readiness::Ready,
        "gone: the current playlist"
    );
    assert_eq!(w.readiness(msn + 1, Some(0)), Readiness::Wait);
    assert_eq!(w.readiness(msn + 2, None), Readiness::TooFar);

    // Names in the playlist name objects that exist.
    for line in text.lines() {
        let uri = line
            .split("URI=\"")
            .nth(1)
            .map(|r| r.split('"').next().unwrap())
            .or_else(|| (!line.starts_with('#')).then_some(line));
        let Some(uri) = uri.filter(|u| !u.is_empty()) else {
            continue;
        };
        let exists = match Object::parse(uri).expect(uri) {
            Object::Init(id) => hls.init(id).is_some(),
            Object::Part(m, i) => w.part(m, i).is_some() || (m, i) == w.next_part(),
            Object::Segment(m) => w.segment(m).is_some_and(|s| s.complete),
            Object::Ts(_) => false,
        };
        assert!(exists, "{uri} listed but missing");
    }

    let mv = hls.multivariant("x/llhls.m3u8").unwrap();
    assert!(mv.contains("CODECS=\"avc1.42c00d,mp4a.40.2\""), "{mv}");
    assert!(mv.contains("RESOLUTION=320x240"), "{mv}");
    match m3u8_rs::parse_playlist_res(mv.as_bytes()) {
        Ok(m3u8_rs::Playlist::MasterPlaylist(m)) => {
            assert_eq!(m.variants.len(), 1);
            assert!(m.variants[0].bandwidth > 0);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_new_configuration_is_a_discontinuity_with_a_new_map() {
    let mut hls = LlHls::new(Config::default());
    feed_ll(
        &mut hls,
        &[
            config(0, RILL_CODEC_H264, AVCC),
            config(1, RILL_CODEC_AAC, ASC),
        ],
    );
    feed_ll(&mut hls, &media(0, 5, 25));
    // The publisher comes back with another audio configuration.
    feed_ll(&mut hls, &[config(1, RILL_CODEC_AAC, &[0x11, 0x90])]);
    feed_ll(&mut hls, &media(5_000_000, 5, 25));
    let text = hls.playlist("");
    let p = parse_media(&text);
    assert!(p.segments.iter().any(|s| s.discontinuity), "{text}");
    assert!(text.contains("#EXT-X-MAP:URI=\"init2.m4s\""), "{text}");
    // Segments before the change still name their init segment.
    assert!(text.contains("#EXT-X-MAP:URI=\"init1.m4s\""), "{text}");
    assert!(hls.init(1).is_some() && hls.init(2).is_some());
    // Once the old segments slide out, so do their init and the tag.
    feed_ll(&mut hls, &media(10_000_000, 20, 25));
    let text = hls.playlist("");
    assert!(
        !text.contains("init1.m4s") && hls.init(1).is_none(),
        "{text}"
    );
    assert!(text.contains("#EXT-X-DISCONTINUITY-SEQUENCE:1"), "{text}");
}

#[test]
fn nothing_before_the_first_key_frame_and_finish_completes() {
    let mut hls = LlHls::new(Config::default());
    feed_ll(&mut hls, &[config(0, RILL_CODEC_H264, AVCC)]);
    feed_ll(&mut hls, &[video(0, false), video(40_000, false)]);
    assert!(hls.window().segments().next().is_none());
    feed_ll(
        &mut hls,
        &(0..30)
            .map(|i| video(80_000 + i * 40_000, i == 0))
            .collect::<Vec<_>>(),
    );
    assert!(!hls.has_segment());
    hls.finish(&mut |b| b);
    assert!(hls.has_segment());
    let s = hls.window().segments().next().unwrap();
    assert_eq!(s.duration_us(), 30 * 40_000);
}

#[test]
fn ts_segments_and_playlist() {
    let mut hls: TsHls<Bytes> = TsHls::new(Config::default());
    // Stream metadata comes as a config frame of the data track: ignored.
    let mut frames = vec![
        config(9, RILL_CODEC_METADATA, b"\x02\x00\x0aonMetaData"),
        config(0, RILL_CODEC_H264, AVCC),
        config(1, RILL_CODEC_AAC, ASC),
    ];
    frames.extend(media(0, 9, 25));
    for f in &frames {
        hls.push(f, 1_700_000_000_000_000 + f.dts, &mut |b| b);
    }
    let text = hls.playlist("");
    let p = parse_media(&text);
    assert_eq!(p.segments.len(), 4, "{text}");
    for s in &p.segments {
        assert!((s.duration - 2.0).abs() < 0.01, "{text}");
        assert!(s.uri.starts_with('t') && s.uri.ends_with(".ts"));
    }
    let seg = hls.window().segment(1).unwrap();
    let data = &seg.parts[0].data;
    assert_eq!(data.len() % 188, 0);
    assert!(data.chunks(188).all(|p| p[0] == 0x47));
    // It demuxes to 50 video frames starting with a key frame.
    let mut demux = rill_ts::Demuxer::default();
    let mut events = Vec::new();
    demux.feed(data, &mut events);
    demux.flush(&mut events);
    let video: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            rill_ts::Event::Frame(f)
                if f.codec == RILL_CODEC_H264 && f.flags & RILL_FRAME_CONFIG == 0 =>
            {
                Some(f.flags)
            }
            _ => None,
        })
        .collect();
    assert_eq!(video.len(), 50);
    assert!(video[0] & RILL_FRAME_KEY != 0);
}

/// Reads (PROGRAM-DATE-TIME in ms since the epoch of the day, EXTINF) pairs.
fn dates_and_durations(text: &str) -> Vec<(f64, f64)> {
    let mut out = Vec::new();
    let mut date = None;
    for l in text.lines() {
        if let Some(d) = l.strip_prefix("#EXT-X-PROGRAM-DATE-TIME:") {
            // hh:mm:ss.mmm is enough within one test.
            let t = &d[11..23];
            let (h, m, s) = (&t[0..2], &t[3..5], &t[6..12]);
            date = Some(
                h.parse::<f64>().unwrap() * 3600.0
                    + m.parse::<f64>().unwrap() * 60.0
                    + s.parse::<f64>().unwrap(),
            );
        }
        if let Some(d) = l.strip_prefix("#EXTINF:") {
            let dur: f64 = d.trim_end_matches(',').parse().unwrap();
            out.push((date.take().expect("a date per segment"), dur));
        }
    }
    out
}

#[test]
fn program_dates_follow_the_media_even_after_a_burst() {
    let mut hls = LlHls::new(Config::default());
    let base = 1_700_000_000_000_000i64;
    feed_ll_at(
        &mut hls,
        &[
            config(0, RILL_CODEC_H264, AVCC),
            config(1, RILL_CODEC_AAC, ASC),
        ],
        |_| base,
    );
    // The GOP cache: 2 s of frames arrive at once, then the stream live.
    let frames = media(0, 14, 25);
    feed_ll_at(&mut hls, &frames, |f| base + (f.dts - 2_000_000).max(0));
    let dd = dates_and_durations(&hls.playlist(""));
    assert!(dd.len() >= 5, "{dd:?}");
    for w in dd.windows(2) {
        let ((d0, len), (d1, _)) = (w[0], w[1]);
        assert!(
            (d1 - d0 - len).abs() < 0.002,
            "date {d0} + {len} s != next {d1}"
        );
    }
}

fn feed_ll_at(hls: &mut LlHls<Bytes>, frames: &[Frame], wall: impl Fn(&Frame) -> i64) {
    for f in frames {
        hls.push(f, wall(f), &mut |b| b);
    }
}
