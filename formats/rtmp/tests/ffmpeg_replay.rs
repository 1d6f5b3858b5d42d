//! Replays byte streams captured from real ffmpeg clients (see
//! `tests/data/README.md`) through a [`Session`], checking what a host would
//! see.

use std::time::Duration;

use bytes::Bytes;
use rill_abi::{
    RILL_CODEC_AAC, RILL_CODEC_H264, RILL_CODEC_H265, RILL_CODEC_METADATA, RILL_CODEC_OPUS,
    RILL_FRAME_CONFIG, RILL_FRAME_KEY,
};
use rill_rtmp::amf0::{self, Value};
use rill_rtmp::chunk::ChunkReader;
use rill_rtmp::handshake::{Mode, Scheme, ServerHandshake, PACKET_SIZE};
use rill_rtmp::message::Message;
use rill_rtmp::{flv, serialize_frame, ConnectInfo, Event, Frame, Limits, Session, Settings};

fn capture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn session() -> Session {
    Session::with_handshake(
        Limits::default(),
        Settings::default(),
        ServerHandshake::with_random([0x5a; PACKET_SIZE], [0xa5; PACKET_SIZE]),
        Duration::ZERO,
    )
}

/// Feeds `data` in `step`-byte reads, accepting every request, and returns
/// the events and everything the server wrote.
fn replay(data: &[u8], step: usize) -> (Vec<Event>, Vec<u8>) {
    let mut s = session();
    let mut events = Vec::new();
    let mut out = Vec::new();
    for piece in data.chunks(step) {
        s.feed(Duration::ZERO, piece).unwrap();
        while let Some(ev) = s.poll_event() {
            match &ev {
                Event::PublishRequested { stream_id, .. } => s.accept_publish(*stream_id).unwrap(),
                Event::PlayRequested { stream_id, .. } => s.accept_play(*stream_id).unwrap(),
                _ => {}
            }
            events.push(ev);
        }
        while let Some(b) = s.poll_transmit() {
            out.extend_from_slice(&b);
        }
    }
    s.close();
    events.extend(std::iter::from_fn(|| s.poll_event()));
    (events, out)
}

fn frames(events: &[Event]) -> Vec<&Frame> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Media { frame, .. } | Event::Metadata { frame, .. } => Some(frame),
            _ => None,
        })
        .collect()
}

fn connect_info(events: &[Event]) -> &ConnectInfo {
    match &events[0] {
        Event::Connected(info) => info,
        other => panic!("first event {other:?}"),
    }
}

/// Server output after S0+S1+S2, decoded.
fn server_messages(out: &[u8]) -> Vec<Message> {
    let mut r = ChunkReader::new(&Limits::default());
    let mut raw = Vec::new();
    r.feed(&out[2 * PACKET_SIZE + 1..], &mut raw).unwrap();
    raw.iter()
        .map(|m| Message::decode(m, 32).unwrap())
        .collect()
}

fn command_names(msgs: &[Message]) -> Vec<String> {
    msgs.iter()
        .filter_map(|m| match m {
            Message::Command(c) => {
                let code = c
                    .args
                    .first()
                    .and_then(|a| a.get("code"))
                    .and_then(Value::as_str);
                Some(format!(
                    "{}{}",
                    c.name,
                    code.map(|c| format!(" {c}")).unwrap_or_default()
                ))
            }
            _ => None,
        })
        .collect()
}

#[test]
fn ffmpeg5_c1_uses_the_digest_handshake() {
    let data = capture("ffmpeg5.1_publish_h264_aac.bin");
    let mut hs = ServerHandshake::new();
    let mut out = Vec::new();
    hs.feed(&data[..PACKET_SIZE + 1], &mut out).unwrap();
    assert_eq!(hs.mode(), Some(Mode::Digest(Scheme::Scheme1)));
    assert_eq!(&data[..9], &[3, 0, 0, 0, 0, 9, 0, 124, 2]);
}

#[test]
fn ffmpeg5_publish_h264_aac() {
    let data = capture("ffmpeg5.1_publish_h264_aac.bin");
    for step in [data.len(), 1460, 97, 7] {
        let (events, out) = replay(&data, step);
        let info = connect_info(&events);
        assert_eq!(info.app, "live");
        assert_eq!(
            info.flash_ver.as_deref(),
            Some("FMLE/3.0 (compatible; Lavf59.27.100)")
        );
        assert_eq!(
            events[1],
            Event::PublishRequested {
                stream_id: 1,
                path: "live/cam".into(),
                query: Some("token=abc".into()),
                publish_type: "live".into(),
            }
        );
        let frames = frames(&events);
        assert_eq!(frames.len(), 58);
        assert_eq!(frames[0].codec, RILL_CODEC_METADATA);
        let meta = amf0::decode_all(&frames[0].payload, 32).unwrap();
        assert_eq!(meta[0].as_str(), Some("onMetaData"));
        assert_eq!(meta[1].get("width"), Some(&Value::Number(160.0)));
        let config: Vec<u32> = frames
            .iter()
            .filter(|f| f.is_config())
            .map(|f| f.codec)
            .collect();
        assert_eq!(config, [RILL_CODEC_H264, RILL_CODEC_AAC]);
        let video: Vec<&&Frame> = frames
            .iter()
            .filter(|f| f.codec == RILL_CODEC_H264 && !f.is_config())
            .collect();
        assert_eq!(video.len(), 10);
        // -g 5: key frames at 0 and 500 ms; B-frames give pts > dts.
        let keys: Vec<i64> = video.iter().filter(|f| f.is_key()).map(|f| f.dts).collect();
        assert_eq!(keys, [0, 500_000]);
        assert!(video.iter().any(|f| f.pts > f.dts));
        assert!(frames
            .iter()
            .filter(|f| f.codec == RILL_CODEC_AAC && !f.is_config())
            .all(|f| f.flags == RILL_FRAME_KEY));
        // AVCC payload: 4-byte NAL lengths that add up.
        let mut p = &video[0].payload[..];
        while !p.is_empty() {
            let n = u32::from_be_bytes([p[0], p[1], p[2], p[3]]) as usize;
            p = &p[4 + n..];
        }
        assert!(matches!(
            events.iter().rev().nth(1),
            Some(Event::Unpublished { stream_id: 1, .. })
        ));
        assert_eq!(events.last(), Some(&Event::Closed));

        let names = command_names(&server_messages(&out));
        assert_eq!(
            names,
            [
                "_result NetConnection.Connect.Success",
                "_result",
                "onFCPublish NetStream.Publish.Start",
                "_result",
                "_result",
                "onStatus NetStream.Publish.Start",
                "onFCUnpublish NetStream.Unpublish.Success",
                "_result",
            ]
        );
    }
}

#[test]
fn ffmpeg9_publish_enhanced_hevc_opus() {
    let data = capture("ffmpeg9_publish_hevc_opus.bin");
    let (events, _) = replay(&data, 1000);
    let info = connect_info(&events);
    assert_eq!(info.fourcc_list, ["hvc1", "Opus"]);
    let frames = frames(&events);
    let config: Vec<u32> = frames
        .iter()
        .filter(|f| f.is_config())
        .map(|f| f.codec)
        .collect();
    assert_eq!(config, [RILL_CODEC_H265, RILL_CODEC_OPUS]);
    let opus_head = frames
        .iter()
        .find(|f| f.codec == RILL_CODEC_OPUS && f.is_config())
        .unwrap();
    assert!(opus_head.payload.starts_with(b"OpusHead"));
    let hevc = frames
        .iter()
        .filter(|f| f.codec == RILL_CODEC_H265 && !f.is_config());
    assert_eq!(hevc.clone().count(), 10);
    assert_eq!(hevc.filter(|f| f.is_key()).count(), 2);
    assert!(frames.iter().filter(|f| f.codec == RILL_CODEC_OPUS).count() > 40);
    // Every frame muxes back to an equal frame.
    for f in &frames {
        let (t, ts, body) = flv::mux(f).unwrap();
        assert_eq!(
            flv::demux(t, &body, ts, 32, amf0::DEFAULT_MAX_VALUES)
                .unwrap()
                .as_ref(),
            Some(*f)
        );
    }
}

#[test]
fn ffmpeg5_play_receives_published_frames() {
    let publish = capture("ffmpeg5.1_publish_h264_aac.bin");
    let (pub_events, _) = replay(&publish, 4096);
    let frames: Vec<Frame> = frames(&pub_events).into_iter().cloned().collect();

    let data = capture("ffmpeg5.1_play.bin");
    let mut s = session();
    s.feed(Duration::ZERO, &data).unwrap();
    let events: Vec<Event> = std::iter::from_fn(|| s.poll_event()).collect();
    assert_eq!(
        connect_info(&events).flash_ver.as_deref(),
        Some("LNX 9,0,124,2")
    );
    let Event::PlayRequested {
        stream_id,
        path,
        query,
    } = &events[1]
    else {
        panic!("{:?}", events[1]);
    };
    assert_eq!((path.as_str(), query), ("live/cam", &None));
    s.accept_play(*stream_id).unwrap();
    // Half the frames through the session, half pre-serialized (the cache path).
    let params = s.chunk_params(*stream_id).unwrap();
    for (i, f) in frames.iter().enumerate() {
        if i % 2 == 0 {
            s.send_frame(*stream_id, f).unwrap();
        } else {
            s.send_serialized(serialize_frame(&params, f).unwrap());
        }
    }
    let mut out = Vec::new();
    while let Some(b) = s.poll_transmit() {
        out.extend_from_slice(&b);
    }
    let msgs = server_messages(&out);
    assert!(command_names(&msgs).ends_with(&[
        "onStatus NetStream.Play.Reset".to_owned(),
        "onStatus NetStream.Play.Start".to_owned()
    ]));
    let media: Vec<Frame> = msgs
        .iter()
        .filter_map(|m| match m {
            Message::Audio(b) => flv::demux_audio(b, 0).unwrap(),
            Message::Video(b) => flv::demux_video(b, 0).unwrap(),
            Message::Data(v) if v[0].as_str() == Some("onMetaData") => Some(Frame {
                codec: RILL_CODEC_METADATA,
                flags: 0,
                pts: 0,
                dts: 0,
                payload: Bytes::from(amf0::encode_all(v).unwrap()),
            }),
            _ => None,
        })
        .collect();
    assert_eq!(media.len(), frames.len());
    for (got, sent) in media.iter().zip(&frames) {
        assert_eq!(
            (got.codec, got.flags & RILL_FRAME_CONFIG),
            (sent.codec, sent.flags & RILL_FRAME_CONFIG)
        );
        assert_eq!(got.payload, sent.payload);
    }
}
