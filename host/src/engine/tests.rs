//! Engine behaviour end to end, in-process, with tokio's paused clock.

use std::time::Duration;

use bytes::Bytes;
use rill_abi::*;

use super::*;

const MS: i64 = 1000;

fn settings() -> EngineSettings {
    EngineSettings {
        publish_timeout: Duration::from_secs(10),
        idle_timeout: Duration::ZERO,
        delay_close_timeout: Duration::ZERO,
        reconnect_grace: Duration::from_secs(5),
        kick_existing: false,
        max_ts_jump: Duration::from_secs(1),
        video_ring: 256,
        audio_ring: 64,
        data_ring: 16,
        wait_timeout: Duration::from_secs(3),
        max_lag: Duration::from_secs(4),
        queue_frames: 64,
        tcp_nodelay: false,
        send_buffer: 0,
        dispatcher_workers: 2,
    }
}

fn pinfo() -> PublisherInfo {
    PublisherInfo {
        protocol: "test".into(),
        remote: "127.0.0.1:1".into(),
        ..Default::default()
    }
}

fn sinfo() -> SubscriberInfo {
    SubscriberInfo {
        protocol: "test".into(),
        remote: "127.0.0.1:2".into(),
        ..Default::default()
    }
}

/// Lets the dispatcher and stream tasks run (time auto-advances when idle).
async fn settle() {
    tokio::time::sleep(Duration::from_millis(1)).await;
}

struct Source {
    p: Publisher,
    v: u32,
    a: u32,
    n: i64,
}

impl Source {
    fn start(e: &Engine, path: &str) -> Source {
        let mut p = e.publish(path, pinfo()).unwrap();
        let v = p
            .add_track(TrackInfo {
                kind: RILL_TRACK_VIDEO,
                codec: RILL_CODEC_H264,
                width: 640,
                height: 360,
                ..Default::default()
            })
            .unwrap();
        let a = p
            .add_track(TrackInfo {
                kind: RILL_TRACK_AUDIO,
                codec: RILL_CODEC_AAC,
                sample_rate: 48000,
                channels: 2,
                ..Default::default()
            })
            .unwrap();
        p.set_metadata(Bytes::from_static(b"meta")).unwrap();
        p.write(Frame::new(
            v,
            RILL_CODEC_H264,
            RILL_FRAME_CONFIG,
            0,
            0,
            Bytes::from_static(b"avcC"),
        ))
        .unwrap();
        p.write(Frame::new(
            a,
            RILL_CODEC_AAC,
            RILL_FRAME_CONFIG,
            0,
            0,
            Bytes::from_static(b"asc"),
        ))
        .unwrap();
        Source { p, v, a, n: 0 }
    }

    /// One video frame (a keyframe every `gop`) and one audio frame; `n`
    /// counts video frames, 40 ms apart.
    fn step(&mut self, gop: i64) {
        let t = self.n * 40 * MS;
        let flags = if self.n % gop == 0 { RILL_FRAME_KEY } else { 0 };
        let body = Bytes::from(self.n.to_be_bytes().to_vec());
        self.p
            .write(Frame::new(
                self.v,
                RILL_CODEC_H264,
                flags,
                t,
                t,
                body.clone(),
            ))
            .unwrap();
        self.p
            .write(Frame::new(
                self.a,
                RILL_CODEC_AAC,
                RILL_FRAME_KEY,
                t + 5 * MS,
                t + 5 * MS,
                body,
            ))
            .unwrap();
        self.n += 1;
    }
}

fn drain(s: &Subscriber) -> Vec<FrameRef> {
    let mut v = Vec::new();
    while let Some(Ok(f)) = s.try_recv() {
        v.push(f);
    }
    v
}

fn video_index(f: &Frame) -> i64 {
    i64::from_be_bytes(f.payload()[..8].try_into().unwrap())
}

#[tokio::test(start_paused = true)]
async fn late_subscriber_starts_at_newest_keyframe_after_metadata_and_configs() {
    let e = Engine::new(settings());
    let mut src = Source::start(&e, "live/a");
    for _ in 0..25 {
        src.step(10);
    }
    settle().await;
    let s = e.subscribe("live/a", sinfo()).unwrap();
    settle().await;
    let got = drain(&s);
    assert_eq!(got[0].codec(), RILL_CODEC_METADATA);
    assert!(got[1].is_config() && got[1].codec() == RILL_CODEC_H264);
    assert!(got[2].is_config() && got[2].codec() == RILL_CODEC_AAC);
    let first_media = &got[3];
    assert!(first_media.is_key() && first_media.track() == src.v);
    assert_eq!(video_index(first_media), 20, "newest keyframe");
    // Then the rest of the GOP, both tracks, in ingest order.
    let media: Vec<_> = got[3..]
        .iter()
        .filter(|f| f.track() == src.v)
        .map(|f| video_index(f))
        .collect();
    assert_eq!(media, (20..25).collect::<Vec<_>>());
    assert_eq!(got.len(), 3 + 10);
    // Live frames follow.
    src.step(10);
    settle().await;
    let next = drain(&s);
    assert_eq!(next.len(), 2);
    assert_eq!(video_index(&next[0]), 25);
}

#[tokio::test(start_paused = true)]
async fn waiting_subscriber_is_attached_when_the_publisher_arrives() {
    let e = Engine::new(settings());
    let s = e.subscribe("live/w", sinfo()).unwrap();
    settle().await;
    assert!(s.try_recv().is_none());
    assert_eq!(e.stream("live/w").unwrap().state, "waiting_publisher");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut src = Source::start(&e, "live/w");
    src.step(10);
    settle().await;
    let got = drain(&s);
    assert_eq!(got.len(), 3 + 2, "metadata, 2 configs, key video, audio");
    // Past the wait timeout: still playing, the publisher came in time.
    tokio::time::sleep(Duration::from_secs(5)).await;
    src.step(10);
    settle().await;
    assert_eq!(drain(&s).len(), 2);
}

#[tokio::test(start_paused = true)]
async fn wait_timeout_ends_a_subscriber_with_a_clear_reason() {
    let e = Engine::new(settings());
    let s = e.subscribe("live/nobody", sinfo()).unwrap();
    let started = tokio::time::Instant::now();
    let end = s.recv().await.unwrap_err();
    assert_eq!(end.reason, EndReason::WaitTimeout);
    assert!(end.message.contains("live/nobody"));
    assert_eq!(started.elapsed(), Duration::from_secs(3));
    settle().await;
    assert!(
        e.stream("live/nobody").is_none(),
        "abandoned stream removed"
    );
}

#[tokio::test(start_paused = true)]
async fn publish_timeout_detaches_a_silent_publisher_then_grace_closes() {
    let e = Engine::new(settings());
    let mut src = Source::start(&e, "live/silent");
    let s = e.subscribe("live/silent", sinfo()).unwrap();
    src.step(10);
    settle().await;
    tokio::time::timeout(Duration::from_secs(11), src.p.closed())
        .await
        .expect("detached");
    let end = src.p.closed_reason().unwrap();
    assert_eq!(end.reason, EndReason::PublishTimeout);
    assert!(end.message.contains("no data"), "{}", end.message);
    assert_eq!(e.stream("live/silent").unwrap().state, "waiting_reconnect");
    let mut ended = None;
    while ended.is_none() {
        match s.recv().await {
            Ok(_) => {}
            Err(end) => ended = Some(end),
        }
    }
    assert_eq!(ended.unwrap().reason, EndReason::PublisherGone);
    assert!(e.stream("live/silent").is_none());
}

#[tokio::test(start_paused = true)]
async fn idle_timeout_closes_a_stream_nobody_watched() {
    let mut st = settings();
    st.idle_timeout = Duration::from_secs(30);
    st.publish_timeout = Duration::ZERO;
    let e = Engine::new(st);
    let src = Source::start(&e, "live/idle");
    tokio::time::sleep(Duration::from_secs(29)).await;
    assert!(e.stream("live/idle").is_some());
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(e.stream("live/idle").is_none());
    assert!(src.p.closed_reason().is_some());
}

#[tokio::test(start_paused = true)]
async fn delay_close_after_the_last_subscriber_leaves() {
    let mut st = settings();
    st.delay_close_timeout = Duration::from_secs(20);
    st.publish_timeout = Duration::ZERO;
    let e = Engine::new(st);
    let src = Source::start(&e, "live/dc");
    let s = e.subscribe("live/dc", sinfo()).unwrap();
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert!(e.stream("live/dc").is_some(), "watched: stays");
    drop(s);
    tokio::time::sleep(Duration::from_secs(19)).await;
    assert!(e.stream("live/dc").is_some());
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(e.stream("live/dc").is_none());
    assert!(src.p.closed_reason().is_some());
}

#[tokio::test(start_paused = true)]
async fn reconnect_within_grace_keeps_players_with_monotonic_time() {
    let e = Engine::new(settings());
    let mut src = Source::start(&e, "live/rc");
    let s = e.subscribe("live/rc", sinfo()).unwrap();
    let mut got = Vec::new();
    for _ in 0..30 {
        src.step(10);
        settle().await;
        got.extend(drain(&s));
    }
    drop(src);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(e.stream("live/rc").unwrap().state, "waiting_reconnect");
    // The encoder comes back with timestamps from zero.
    let mut src = Source::start(&e, "live/rc");
    assert_eq!((src.v, src.a), (0, 1), "same track ids");
    for _ in 0..30 {
        src.step(10);
        settle().await;
        got.extend(drain(&s));
    }
    assert_eq!(s.try_recv().map(|r| r.is_ok()), None, "still subscribed");
    for track in [src.v, src.a] {
        let dts: Vec<_> = got
            .iter()
            .filter(|f| f.track() == track && !f.is_config())
            .map(|f| f.dts())
            .collect();
        assert_eq!(dts.len(), 60);
        assert!(
            dts.windows(2).all(|w| w[1] > w[0]),
            "track {track}: {dts:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn second_publisher_is_refused_or_kicks_with_kick_existing() {
    let e = Engine::new(settings());
    let src = Source::start(&e, "live/k");
    assert!(matches!(
        e.publish("live/k", pinfo()),
        Err(EngineError::Busy(_))
    ));
    let mut st = settings();
    st.kick_existing = true;
    e.update_settings(st);
    let _new = e.publish("live/k", pinfo()).unwrap();
    let end = src.p.closed_reason().unwrap();
    assert_eq!(end.reason, EndReason::Kicked);
    assert!(end.message.contains("replaced"), "{}", end.message);
    assert!(matches!(
        src.p
            .write(Frame::new(0, RILL_CODEC_H264, 0, 0, 0, Bytes::new())),
        Err(EngineError::PublisherClosed)
    ));
}

#[tokio::test(start_paused = true)]
async fn slow_subscriber_drops_whole_gops_and_is_closed_after_max_lag() {
    let e = Engine::new(settings());
    let mut src = Source::start(&e, "live/slow");
    let fast = e.subscribe("live/slow", sinfo()).unwrap();
    let slow = e.subscribe("live/slow", sinfo()).unwrap();
    settle().await;
    let mut fast_got = Vec::new();
    // 25 fps video + audio; GOP of 10; queue of 64 frames. The slow one reads
    // nothing for a while.
    for _ in 0..60 {
        src.step(10);
        tokio::time::sleep(Duration::from_millis(40)).await;
        fast_got.extend(drain(&fast));
    }
    let fast_video: Vec<_> = fast_got
        .iter()
        .filter(|f| f.track() == src.v && !f.is_config())
        .map(|f| video_index(f))
        .collect();
    assert_eq!(
        fast_video,
        (0..60).collect::<Vec<_>>(),
        "the fast one lost nothing"
    );
    assert!(slow.drops() > 0);
    assert!(slow.queued() <= 64 + 3);
    // The slow one now reads: what it has is whole GOPs: every run of video
    // after a gap starts at a keyframe.
    let got = drain(&slow);
    let video: Vec<_> = got
        .iter()
        .filter(|f| f.track() == src.v && !f.is_config())
        .collect();
    for w in video.windows(2) {
        let (a, b) = (video_index(w[0]), video_index(w[1]));
        if b != a + 1 {
            assert!(w[1].is_key(), "resumed at {b} which is not a keyframe");
            assert!(w[1].is_discontinuity(), "resumed keyframe {b} not flagged");
        }
    }
    // Stopping reading again for longer than max_lag closes it.
    let mut end = None;
    for _ in 0..200 {
        src.step(10);
        tokio::time::sleep(Duration::from_millis(40)).await;
        drain(&fast);
        if slow.is_closed() {
            end = slow.try_recv();
            break;
        }
    }
    let end = end.and_then(|r| r.err());
    assert_eq!(end.expect("closed").reason, EndReason::TooSlow);
    assert_eq!(
        e.stream("live/slow").unwrap().subscribers,
        2,
        "until its handle drops"
    );
    drop(slow);
    assert_eq!(e.stream("live/slow").unwrap().subscribers, 1);
}

#[tokio::test(start_paused = true)]
async fn shutdown_ends_streams_and_players_in_order() {
    let e = Engine::new(settings());
    let mut src = Source::start(&e, "live/s1");
    let s = e.subscribe("live/s1", sinfo()).unwrap();
    src.step(10);
    settle().await;
    e.shutdown().await;
    let mut n = 0;
    let end = loop {
        match s.recv().await {
            Ok(_) => n += 1,
            Err(end) => break end,
        }
    };
    assert_eq!(n, 5, "queued frames delivered first");
    assert_eq!(end.reason, EndReason::Shutdown);
    assert!(src.p.closed_reason().is_some());
    assert!(matches!(
        e.subscribe("live/s1", sinfo()),
        Err(EngineError::ShuttingDown)
    ));
    assert!(e.streams().is_empty());
}

#[tokio::test(start_paused = true)]
async fn kicks_through_the_api() {
    let e = Engine::new(settings());
    let mut src = Source::start(&e, "live/kk");
    let s = e.subscribe("live/kk", sinfo()).unwrap();
    src.step(10);
    settle().await;
    let subs = e.subscribers("live/kk").unwrap();
    assert_eq!(subs.len(), 1);
    assert!(e.kick_subscriber(subs[0].id));
    assert_eq!(s.recv().await.unwrap_err().reason, EndReason::Kicked);
    assert!(e.kick_publisher("live/kk"));
    assert_eq!(src.p.closed_reason().unwrap().reason, EndReason::Kicked);
    assert_eq!(e.stream("live/kk").unwrap().state, "waiting_reconnect");
}

#[tokio::test(start_paused = true)]
async fn counters_and_snapshot() {
    let e = Engine::new(settings());
    let mut src = Source::start(&e, "live/c");
    let s = e.subscribe("live/c", sinfo()).unwrap();
    for _ in 0..25 {
        src.step(5);
        tokio::time::sleep(Duration::from_millis(40)).await;
        drain(&s);
    }
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let snap = e.stream("live/c").unwrap();
    assert_eq!(snap.state, "publishing");
    assert_eq!(snap.tracks.len(), 3);
    assert_eq!(snap.tracks[0].codec, "avc1");
    assert_eq!(snap.tracks[0].width, 640);
    assert_eq!(snap.tracks[0].frames, 26);
    assert_eq!(snap.frames_in, 53);
    assert!(snap.publisher.is_some());
    let subs = e.subscribers("live/c").unwrap();
    assert_eq!(subs[0].frames, 53);
    assert_eq!(subs[0].drops, 0);
}

#[test]
fn paths_are_validated() {
    for bad in [
        "",
        "live",
        "/live/a",
        "live/",
        "live//a",
        "live/../a",
        "live/a b",
        "live/ä",
    ] {
        assert!(validate_path(bad).is_err(), "{bad:?}");
    }
    for good in ["live/a", "app/x-1_2.3~", "a/b/c"] {
        assert!(validate_path(good).is_ok(), "{good:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn bad_tracks_are_refused() {
    let e = Engine::new(settings());
    let mut p = e.publish("live/t", pinfo()).unwrap();
    assert!(matches!(
        p.write(Frame::new(3, RILL_CODEC_H264, 0, 0, 0, Bytes::new())),
        Err(EngineError::NoSuchTrack(3))
    ));
    for _ in 0..MAX_TRACKS {
        p.add_track(TrackInfo {
            kind: RILL_TRACK_DATA,
            ..Default::default()
        })
        .unwrap();
    }
    assert!(matches!(
        p.add_track(TrackInfo::default()),
        Err(EngineError::TooManyTracks(_))
    ));
}

#[tokio::test(start_paused = true)]
async fn live_edge_subscriber_waits_for_the_next_keyframe() {
    let e = Engine::new(settings());
    let mut src = Source::start(&e, "live/edge");
    for _ in 0..15 {
        src.step(10);
    }
    settle().await;
    let info = SubscriberInfo {
        live_edge: true,
        ..sinfo()
    };
    let s = e.subscribe("live/edge", info).unwrap();
    settle().await;
    assert!(drain(&s).is_empty(), "no GOP replay at the live edge");
    for _ in 0..6 {
        src.step(10);
    }
    settle().await;
    let got = drain(&s);
    assert_eq!(got[0].codec(), RILL_CODEC_METADATA);
    let first = got.iter().find(|f| !f.is_config()).unwrap();
    assert_eq!(video_index(first), 20, "starts at the next keyframe");
}

#[tokio::test(start_paused = true)]
async fn per_subscriber_wait_timeout() {
    let e = Engine::new(settings());
    let info = SubscriberInfo {
        wait_timeout: Some(Duration::from_millis(500)),
        ..sinfo()
    };
    let s = e.subscribe("live/short", info).unwrap();
    let t = tokio::time::Instant::now();
    assert_eq!(s.recv().await.unwrap_err().reason, EndReason::WaitTimeout);
    assert_eq!(t.elapsed(), Duration::from_millis(500));
}

/// A transformer (derived writer plus a transformer subscription): its
/// frames keep the stream's timeline, carry `RILL_FRAME_DERIVED`, end with
/// the stream, and its subscription keeps nothing alive.
#[tokio::test(start_paused = true)]
async fn a_derived_track_keeps_the_timeline_and_a_transformer_counts_as_no_player() {
    let e = Engine::new(settings());
    assert!(matches!(
        e.derive("live/d"),
        Err(EngineError::NotPublished(_))
    ));
    let mut src = Source::start(&e, "live/d");
    for _ in 0..3 {
        src.step(10);
    }
    let mut events = e.events();
    let player = e.subscribe("live/d", sinfo()).unwrap();
    let t = e
        .subscribe(
            "live/d",
            SubscriberInfo {
                transform: true,
                ..sinfo()
            },
        )
        .unwrap();
    settle().await;
    assert_eq!(e.stream("live/d").unwrap().subscribers, 1, "players only");
    let mut d = e.derive("live/d").unwrap();
    let opus = d
        .add_track(TrackInfo {
            kind: RILL_TRACK_AUDIO,
            codec: RILL_CODEC_OPUS,
            ..Default::default()
        })
        .unwrap();
    assert_ne!(opus, src.a);
    // A second writer of the same codec is refused while the first lives.
    let mut other = e.derive("live/d").unwrap();
    let opus_info = TrackInfo {
        kind: RILL_TRACK_AUDIO,
        codec: RILL_CODEC_OPUS,
        ..Default::default()
    };
    assert!(matches!(
        other.add_track(opus_info),
        Err(EngineError::Busy(_))
    ));
    drop(other);
    d.write(Frame::new(
        opus,
        RILL_CODEC_OPUS,
        RILL_FRAME_CONFIG,
        0,
        0,
        Bytes::from_static(b"head"),
    ))
    .unwrap();
    // The source timeline (3 video frames at 40 ms) continues: 120 ms.
    for pts in [120 * MS, 140 * MS, 130 * MS] {
        let f = Frame::new(
            opus,
            RILL_CODEC_OPUS,
            RILL_FRAME_KEY,
            pts,
            pts,
            Bytes::new(),
        );
        d.write(f).unwrap();
    }
    settle().await;
    let got: Vec<_> = drain(&player)
        .into_iter()
        .filter(|f| f.track() == opus)
        .collect();
    assert_eq!(got.len(), 3, "config and two frames; the step back dropped");
    assert!(got.iter().all(|f| f.flags() & RILL_FRAME_DERIVED != 0));
    assert_eq!(got[1].pts(), 120 * MS, "not rebased");
    assert_eq!(got[2].pts(), 140 * MS);
    // A returning publisher does not take the derived track for its audio.
    drop(src);
    let mut p = e.publish("live/d", pinfo()).unwrap();
    let a = p
        .add_track(TrackInfo {
            kind: RILL_TRACK_AUDIO,
            codec: RILL_CODEC_AAC,
            ..Default::default()
        })
        .unwrap();
    assert_ne!(a, opus);
    // The last player leaving makes the stream idle though the transformer
    // still subscribes.
    drop(player);
    settle().await;
    let mut idle = false;
    while let Ok(ev) = events.try_recv() {
        idle |= ev.kind == StreamEventKind::Idle;
    }
    assert!(idle, "the transformer kept the stream busy");
    // A writer that comes back takes its track back.
    drop(d);
    let mut d2 = e.derive("live/d").unwrap();
    let again = d2
        .add_track(TrackInfo {
            kind: RILL_TRACK_AUDIO,
            codec: RILL_CODEC_OPUS,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(again, opus);
    assert_eq!(
        d2.set_metadata(Bytes::new()),
        Err(EngineError::NotForDerived)
    );
    drop(t);
}
