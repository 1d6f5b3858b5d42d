//! Whole server sessions driven by a scripted client built from the crate's
//! own parts: publish, play, rejections, control messages and limits.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use rill_abi::{
    RILL_CODEC_AAC, RILL_CODEC_H264, RILL_CODEC_H265, RILL_CODEC_METADATA, RILL_FRAME_CONFIG,
    RILL_FRAME_KEY,
};
use rill_rtmp::amf0::{self, Value};
use rill_rtmp::chunk::{ChunkReader, ChunkWriter, MessageHeader};
use rill_rtmp::flv::{self, Frame};
use rill_rtmp::handshake::{ClientHandshake, Mode, Scheme, ServerHandshake, PACKET_SIZE};
use rill_rtmp::message::{Command, Message, UserControl};
use rill_rtmp::{serialize_frame, ChunkParams, Error, Event, Limits, Session, Settings};

/// A minimal RTMP client built from the crate's own parts, acting like
/// ffmpeg: digest handshake, commands on csid 3, media on csids 4/6.
struct Client {
    writer: ChunkWriter,
    reader: ChunkReader,
    to_server: BytesMut,
}

impl Client {
    fn new() -> Self {
        Client {
            writer: ChunkWriter::new(),
            reader: ChunkReader::new(&Limits::default()),
            to_server: BytesMut::new(),
        }
    }

    fn command(&mut self, stream_id: u32, name: &str, txn: f64, object: Value, args: Vec<Value>) {
        let cmd = Message::Command(Command::new(name, txn, object, args));
        let csid = if stream_id == 0 { 3 } else { 8 };
        cmd.write(&mut self.writer, csid, stream_id, 0, &mut self.to_server)
            .unwrap();
    }

    fn media(&mut self, type_id: u8, stream_id: u32, ts: u32, body: &[u8]) {
        let csid = if type_id == 8 { 4 } else { 6 };
        let header = MessageHeader {
            csid,
            timestamp: ts,
            type_id,
            stream_id,
        };
        self.writer
            .write(&header, body, &mut self.to_server)
            .unwrap();
    }

    fn take(&mut self) -> BytesMut {
        self.to_server.split()
    }

    /// Parses everything the server sent.
    fn receive(&mut self, session: &mut Session) -> Vec<(u32, Message)> {
        let mut raw = Vec::new();
        while let Some(b) = session.poll_transmit() {
            self.reader.feed(&b, &mut raw).unwrap();
        }
        raw.iter()
            .map(|m| (m.stream_id, Message::decode(m, 32).unwrap()))
            .collect()
    }
}

fn pattern(seed: u8) -> [u8; PACKET_SIZE] {
    let mut p = [0u8; PACKET_SIZE];
    for (i, b) in p.iter_mut().enumerate() {
        *b = (i as u8).wrapping_mul(31).wrapping_add(seed);
    }
    p
}

fn events(s: &mut Session) -> Vec<Event> {
    std::iter::from_fn(|| s.poll_event()).collect()
}

fn statuses(msgs: &[(u32, Message)]) -> Vec<(String, String)> {
    msgs.iter()
        .filter_map(|(_, m)| match m {
            Message::Command(c) => Some((
                c.name.clone(),
                c.args
                    .first()
                    .and_then(|a| a.get("code"))
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
            )),
            _ => None,
        })
        .collect()
}

/// Handshake + connect to `app` with `tc_url`; returns the session and
/// client with the connect answers consumed.
fn connected(app: &str, tc_url: &str) -> (Session, Client) {
    let mut s = Session::with_handshake(
        Limits::default(),
        Settings::default(),
        ServerHandshake::with_random(pattern(1), pattern(2)),
        Duration::ZERO,
    );
    let (mut hs, c0c1) =
        ClientHandshake::with_random(Mode::Digest(Scheme::Scheme1), pattern(3), pattern(4));
    s.feed(Duration::ZERO, &c0c1).unwrap();
    let mut c2 = Vec::new();
    while let Some(b) = s.poll_transmit() {
        hs.feed(&b, &mut c2).unwrap();
    }
    assert!(hs.is_done());
    assert_eq!(hs.server_mode(), Some(Mode::Digest(Scheme::Scheme1)));

    let mut c = Client::new();
    let obj = Value::object([
        ("app", Value::string(app)),
        ("type", Value::string("nonprivate")),
        (
            "flashVer",
            Value::string("FMLE/3.0 (compatible; Lavf59.27.100)"),
        ),
        ("tcUrl", Value::string(tc_url)),
    ]);
    c.command(0, "connect", 1.0, obj, vec![]);
    // C2 and connect arrive in one read, as they often do.
    c2.extend_from_slice(&c.take());
    s.feed(Duration::ZERO, &c2).unwrap();
    let msgs = c.receive(&mut s);
    assert_eq!(msgs[0].1, Message::WindowAckSize(2_500_000));
    assert_eq!(
        msgs[1].1,
        Message::SetPeerBandwidth {
            size: 2_500_000,
            limit: 2
        }
    );
    assert_eq!(msgs[2].1, Message::SetChunkSize(4096));
    assert_eq!(
        statuses(&msgs[3..]),
        [("_result".into(), "NetConnection.Connect.Success".into())]
    );
    assert_eq!(c.reader.chunk_size(), 4096);
    (s, c)
}

fn create_stream(s: &mut Session, c: &mut Client, txn: f64) -> u32 {
    c.command(0, "createStream", txn, Value::Null, vec![]);
    s.feed(Duration::ZERO, &c.take()).unwrap();
    let msgs = c.receive(s);
    match &msgs[..] {
        [(0, Message::Command(r))] if r.name == "_result" && r.transaction_id == txn => {
            r.args[0].as_f64().unwrap() as u32
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn publish_flow_like_ffmpeg() {
    let (mut s, mut c) = connected("live?token=abc", "rtmp://127.0.0.1:1935/live?token=abc");
    match &events(&mut s)[..] {
        [Event::Connected(info)] => {
            assert_eq!(info.app, "live");
            assert_eq!(info.query.as_deref(), Some("token=abc"));
            assert_eq!(
                info.flash_ver.as_deref(),
                Some("FMLE/3.0 (compatible; Lavf59.27.100)")
            );
        }
        other => panic!("{other:?}"),
    }

    c.command(
        0,
        "releaseStream",
        2.0,
        Value::Null,
        vec![Value::string("cam1?k=v")],
    );
    c.command(
        0,
        "FCPublish",
        3.0,
        Value::Null,
        vec![Value::string("cam1?k=v")],
    );
    s.feed(Duration::ZERO, &c.take()).unwrap();
    let st = statuses(&c.receive(&mut s));
    assert_eq!(st[0], ("_result".into(), String::new()));
    assert_eq!(
        st[1],
        ("onFCPublish".into(), "NetStream.Publish.Start".into())
    );
    let id = create_stream(&mut s, &mut c, 4.0);
    assert_eq!(id, 1);

    // publish, then metadata and media in the same read, before the host
    // has answered: they must wait, not vanish.
    c.command(
        id,
        "publish",
        5.0,
        Value::Null,
        vec![Value::string("cam1?k=v"), Value::string("live")],
    );
    let meta = amf0::encode_all(&[
        Value::string("@setDataFrame"),
        Value::string("onMetaData"),
        Value::EcmaArray(vec![("width".into(), Value::Number(320.0))]),
    ])
    .unwrap();
    c.media(18, id, 0, &meta);
    c.media(9, id, 0, &[0x17, 0, 0, 0, 0, 1, 0x42, 0xc0, 0x0d]);
    c.media(8, id, 0, &[0xaf, 0, 0x12, 0x10]);
    c.media(9, id, 40, &[0x17, 1, 0, 0, 0x28, 0, 0, 0, 1, 0x65]);
    c.media(8, id, 23, &[0xaf, 1, 0x21]);
    s.feed(Duration::ZERO, &c.take()).unwrap();
    assert_eq!(
        events(&mut s),
        [Event::PublishRequested {
            stream_id: 1,
            path: "live/cam1".into(),
            query: Some("k=v&token=abc".into()),
            publish_type: "live".into(),
        }]
    );
    assert!(c.receive(&mut s).is_empty());

    s.accept_publish(1).unwrap();
    assert_eq!(
        statuses(&c.receive(&mut s)),
        [("onStatus".into(), "NetStream.Publish.Start".into())]
    );
    let evs = events(&mut s);
    assert_eq!(evs.len(), 5, "{evs:?}");
    match &evs[0] {
        Event::Metadata {
            stream_id: 1,
            frame,
        } => {
            assert_eq!(
                amf0::decode_all(&frame.payload, 32).unwrap()[0].as_str(),
                Some("onMetaData")
            )
        }
        other => panic!("{other:?}"),
    }
    let frames: Vec<&Frame> = evs[1..]
        .iter()
        .map(|e| match e {
            Event::Media {
                stream_id: 1,
                frame,
            } => frame,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        (frames[0].codec, frames[0].flags),
        (RILL_CODEC_H264, RILL_FRAME_CONFIG)
    );
    assert_eq!(
        (frames[1].codec, frames[1].flags),
        (RILL_CODEC_AAC, RILL_FRAME_CONFIG)
    );
    assert_eq!(
        (frames[2].flags, frames[2].dts, frames[2].pts),
        (RILL_FRAME_KEY, 40_000, 80_000)
    );
    assert_eq!((frames[3].flags, frames[3].dts), (RILL_FRAME_KEY, 23_000));

    // Unsupported media is reported once, not per message.
    c.media(9, id, 80, &[0x12, 0, 0]);
    c.media(9, id, 120, &[0x12, 0, 0]);
    s.feed(Duration::ZERO, &c.take()).unwrap();
    assert_eq!(
        events(&mut s),
        [Event::MediaDropped {
            stream_id: 1,
            reason: Error::Unsupported("FLV video codec")
        }]
    );

    // ffmpeg's teardown: FCUnpublish then deleteStream.
    c.command(
        0,
        "FCUnpublish",
        6.0,
        Value::Null,
        vec![Value::string("cam1?k=v")],
    );
    c.command(
        0,
        "deleteStream",
        7.0,
        Value::Null,
        vec![Value::Number(1.0)],
    );
    s.feed(Duration::ZERO, &c.take()).unwrap();
    assert_eq!(
        events(&mut s),
        [Event::Unpublished {
            stream_id: 1,
            path: "live/cam1".into()
        }]
    );
    s.close();
    assert_eq!(events(&mut s), [Event::Closed]);
    assert_eq!(s.feed(Duration::ZERO, &[0]), Err(Error::Closed));
}

#[test]
fn publish_rejected_with_bad_name() {
    let (mut s, mut c) = connected("live", "rtmp://h/live");
    let id = create_stream(&mut s, &mut c, 2.0);
    c.command(
        id,
        "publish",
        3.0,
        Value::Null,
        vec![Value::string("taken")],
    );
    c.media(8, id, 0, &[0xaf, 1, 1]);
    s.feed(Duration::ZERO, &c.take()).unwrap();
    events(&mut s);
    s.reject_publish(id, "taken is already published").unwrap();
    assert_eq!(
        statuses(&c.receive(&mut s)),
        [("onStatus".into(), "NetStream.Publish.BadName".into())]
    );
    // The queued media of the rejected stream is dropped.
    assert!(events(&mut s).is_empty());
    assert_eq!(
        s.accept_publish(id),
        Err(Error::InvalidState("no such request pending"))
    );
    // An empty name is refused without asking the host.
    c.command(id, "publish", 4.0, Value::Null, vec![Value::string("")]);
    s.feed(Duration::ZERO, &c.take()).unwrap();
    assert!(events(&mut s).is_empty());
    assert_eq!(
        statuses(&c.receive(&mut s)),
        [("onStatus".into(), "NetStream.Publish.BadName".into())]
    );
}

#[test]
fn play_flow_and_shared_serialization() {
    let (mut s, mut c) = connected("", "rtmp://example.com:1935/live/sub?token=t");
    match &events(&mut s)[..] {
        [Event::Connected(info)] => {
            assert_eq!(info.app, "live/sub");
            assert_eq!(info.query.as_deref(), Some("token=t"));
        }
        other => panic!("{other:?}"),
    }
    let id = create_stream(&mut s, &mut c, 2.0);
    c.command(
        0,
        "getStreamLength",
        3.0,
        Value::Null,
        vec![Value::string("cam")],
    );
    c.command(
        id,
        "play",
        4.0,
        Value::Null,
        vec![Value::string("cam"), Value::Number(-2000.0)],
    );
    let buffer = Message::UserControl(UserControl::SetBufferLength {
        stream_id: id,
        millis: 3000,
    });
    buffer
        .write(&mut c.writer, 2, 0, 0, &mut c.to_server)
        .unwrap();
    s.feed(Duration::ZERO, &c.take()).unwrap();
    assert_eq!(
        events(&mut s),
        [Event::PlayRequested {
            stream_id: id,
            path: "live/sub/cam".into(),
            query: Some("token=t".into()),
        }]
    );
    assert_eq!(s.chunk_params(id), None);
    s.accept_play(id).unwrap();
    let msgs = c.receive(&mut s);
    assert_eq!(
        msgs[0].1,
        Message::Command(Command::new(
            "_result",
            3.0,
            Value::Null,
            vec![Value::Number(0.0)]
        ))
    );
    assert_eq!(
        msgs[1].1,
        Message::UserControl(UserControl::StreamBegin(id))
    );
    assert_eq!(
        statuses(&msgs[2..4]),
        [
            ("onStatus".into(), "NetStream.Play.Reset".into()),
            ("onStatus".into(), "NetStream.Play.Start".into())
        ]
    );
    assert_eq!(
        msgs[4],
        (
            id,
            Message::Data(vec![
                Value::string("|RtmpSampleAccess"),
                Value::Boolean(true),
                Value::Boolean(true)
            ])
        )
    );

    let params = s.chunk_params(id).unwrap();
    assert_eq!(
        params,
        ChunkParams {
            chunk_size: 4096,
            stream_id: id
        }
    );
    let meta = Frame {
        codec: RILL_CODEC_METADATA,
        flags: 0,
        pts: 0,
        dts: 0,
        payload: flv::metadata_body(vec![("width".into(), Value::Number(640.0))]).unwrap(),
    };
    let hevc = Frame {
        codec: RILL_CODEC_H265,
        flags: RILL_FRAME_KEY,
        pts: 1_040_000,
        dts: 1_000_000,
        payload: Bytes::from(vec![0u8; 5000]),
    };
    s.send_frame(id, &meta).unwrap();
    let shared = serialize_frame(&params, &hevc).unwrap();
    s.send_serialized(shared.clone());
    s.send_serialized(shared);
    let msgs = c.receive(&mut s);
    assert_eq!(msgs.len(), 3);
    assert_eq!(msgs[0].0, id);
    match &msgs[0].1 {
        Message::Data(v) => assert_eq!(v[1].get("width"), Some(&Value::Number(640.0))),
        other => panic!("{other:?}"),
    }
    for (sid, m) in &msgs[1..] {
        assert_eq!(*sid, id);
        let Message::Video(body) = m else {
            panic!("{m:?}")
        };
        let f = flv::demux_video(body, 1000).unwrap().unwrap();
        assert_eq!(f, hevc);
    }

    s.notify_unpublished(id).unwrap();
    let st = statuses(&c.receive(&mut s));
    assert_eq!(
        st,
        [("onStatus".into(), "NetStream.Play.UnpublishNotify".into())]
    );

    c.command(id, "closeStream", 0.0, Value::Null, vec![]);
    s.feed(Duration::ZERO, &c.take()).unwrap();
    assert_eq!(
        events(&mut s),
        [Event::PlayStopped {
            stream_id: id,
            path: "live/sub/cam".into()
        }]
    );
    assert_eq!(
        s.send_frame(id, &hevc),
        Err(Error::InvalidState("stream is not playing"))
    );
}

#[test]
fn play2_reject_and_close_cleanup() {
    let (mut s, mut c) = connected("app", "rtmp://h/app");
    let a = create_stream(&mut s, &mut c, 2.0);
    let b = create_stream(&mut s, &mut c, 3.0);
    let arg = Value::object([
        ("streamName", Value::string("x")),
        ("transition", Value::string("switch")),
    ]);
    c.command(a, "play2", 0.0, Value::Null, vec![arg]);
    s.feed(Duration::ZERO, &c.take()).unwrap();
    events(&mut s);
    s.reject_play(a, "no such stream").unwrap();
    assert_eq!(
        statuses(&c.receive(&mut s)),
        [("onStatus".into(), "NetStream.Play.StreamNotFound".into())]
    );
    c.command(b, "play", 0.0, Value::Null, vec![Value::string("y")]);
    s.feed(Duration::ZERO, &c.take()).unwrap();
    events(&mut s);
    s.accept_play(b).unwrap();
    s.close();
    assert_eq!(
        events(&mut s),
        [
            Event::PlayStopped {
                stream_id: b,
                path: "app/y".into()
            },
            Event::Closed
        ]
    );
}

#[test]
fn unknown_commands_ping_and_acks() {
    let (mut s, mut c) = connected("live", "rtmp://h/live");
    c.command(0, "fooBar", 9.0, Value::Null, vec![]);
    c.command(0, "pause", 0.0, Value::Null, vec![]);
    c.command(0, "_checkbw", 10.0, Value::Null, vec![]);
    let ping = Message::UserControl(UserControl::PingRequest(1234));
    ping.write(&mut c.writer, 2, 0, 0, &mut c.to_server)
        .unwrap();
    s.feed(Duration::ZERO, &c.take()).unwrap();
    let msgs = c.receive(&mut s);
    match &msgs[0].1 {
        Message::Command(cmd) => {
            assert_eq!((cmd.name.as_str(), cmd.transaction_id), ("_error", 9.0));
            assert_eq!(
                cmd.args[0].get("code").and_then(Value::as_str),
                Some("NetConnection.Call.Failed")
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(
        matches!(&msgs[1].1, Message::Command(cmd) if cmd.name == "_result" && cmd.transaction_id == 10.0)
    );
    assert_eq!(
        msgs[2].1,
        Message::UserControl(UserControl::PingResponse(1234))
    );
    assert_eq!(msgs.len(), 3);

    // The client sets a small window: the server acknowledges once it is
    // crossed, with the byte count so far.
    Message::WindowAckSize(1000)
        .write(&mut c.writer, 2, 0, 0, &mut c.to_server)
        .unwrap();
    s.feed(Duration::ZERO, &c.take()).unwrap();
    let id = create_stream(&mut s, &mut c, 11.0);
    assert_eq!(id, 1);
    c.media(8, id, 0, &[0xaf, 1, 0, 0, 0]);
    let big = vec![0u8; 1200];
    c.media(8, id, 0, &big);
    s.feed(Duration::ZERO, &c.take()).unwrap();
    let msgs = c.receive(&mut s);
    assert!(
        msgs.iter()
            .any(|(_, m)| matches!(m, Message::Acknowledgement(n) if *n > 1000)),
        "{msgs:?}"
    );
}

#[test]
fn protocol_errors_fail_the_session() {
    let (mut s, mut c) = connected("live", "rtmp://h/live");
    c.command(0, "connect", 2.0, Value::Null, vec![]);
    assert_eq!(
        s.feed(Duration::ZERO, &c.take()),
        Err(Error::Protocol("connect sent twice"))
    );
    assert_eq!(s.feed(Duration::ZERO, &[]), Err(Error::Closed));

    let mut s = Session::new(Limits::default(), Duration::ZERO);
    let mut data = vec![3u8];
    data.extend_from_slice(&[0u8; 2 * PACKET_SIZE]);
    s.feed(Duration::ZERO, &data).unwrap();
    let mut c = Client::new();
    c.command(0, "createStream", 2.0, Value::Null, vec![]);
    assert_eq!(
        s.feed(Duration::ZERO, &c.take()),
        Err(Error::Protocol("command before connect"))
    );
}

#[test]
fn queue_limit_while_waiting() {
    let limits = Limits {
        max_queued_bytes: 10_000,
        ..Limits::default()
    };
    let (_, mut c) = connected("live", "rtmp://h/live");
    let mut s = Session::with_handshake(
        limits,
        Settings::default(),
        ServerHandshake::with_random(pattern(1), pattern(1)),
        Duration::ZERO,
    );
    let mut data = vec![3u8];
    data.extend_from_slice(&[0u8; 2 * PACKET_SIZE]);
    s.feed(Duration::ZERO, &data).unwrap();
    c.writer = ChunkWriter::new();
    c.command(
        0,
        "connect",
        1.0,
        Value::object([("app", Value::string("live"))]),
        vec![],
    );
    c.command(0, "createStream", 2.0, Value::Null, vec![]);
    c.command(1, "publish", 3.0, Value::Null, vec![Value::string("a")]);
    s.feed(Duration::ZERO, &c.take()).unwrap();
    for i in 0..20 {
        c.media(9, 1, i * 40, &[0x27, 1, 0, 0, 0, 0, 0, 0, 0x10].repeat(100));
    }
    assert_eq!(s.feed(Duration::ZERO, &c.take()), Err(Error::QueueFull));
}

/// A chunk's basic header, plus the message header of a format 0 chunk
/// announcing `len` bytes of video on message stream 1.
fn raw_chunk_header(fmt: u8, csid: u32, len: u32) -> Vec<u8> {
    let mut h = if csid < 64 {
        vec![fmt << 6 | csid as u8]
    } else {
        vec![fmt << 6, (csid - 64) as u8]
    };
    if fmt == 0 {
        h.extend_from_slice(&[0, 0, 0]);
        h.extend_from_slice(&len.to_be_bytes()[1..]);
        h.extend_from_slice(&[9, 1, 0, 0, 0]);
    }
    h
}

#[test]
fn unfinished_messages_on_every_chunk_stream_close_the_session() {
    // An unauthenticated client opens the 64 chunk streams it may use and
    // starts an 8 MiB message on each, never finishing one: 512 MiB held
    // without the max_partial_bytes budget.
    let limits = Limits::default();
    let (mut s, mut c) = connected("live", "rtmp://h/live");
    events(&mut s);
    c.writer.set_chunk_size(64 << 10, &mut c.to_server);
    s.feed(Duration::ZERO, &c.take()).unwrap();
    let body = vec![0u8; 64 << 10];
    let mut fed = 0;
    let result = 'feeding: {
        for round in 0..(limits.max_message_size as usize / body.len()) {
            for csid in 2..2 + limits.max_chunk_streams as u32 {
                let fmt = if round == 0 { 0 } else { 3 };
                let mut data = raw_chunk_header(fmt, csid, limits.max_message_size);
                data.extend_from_slice(&body);
                if let Err(e) = s.feed(Duration::ZERO, &data) {
                    break 'feeding e;
                }
                fed += body.len();
            }
        }
        panic!("the session held every message");
    };
    assert_eq!(result, Error::TooManyPartialBytes(limits.max_partial_bytes));
    assert_eq!(fed, limits.max_partial_bytes);
    assert_eq!(
        result.to_string(),
        "incomplete messages hold more than 16777216 bytes (max_partial_bytes)"
    );
    // Failed: what the plugin glue does next is close it.
    assert_eq!(s.feed(Duration::ZERO, &[2]), Err(Error::Closed));
    s.close();
    assert_eq!(events(&mut s), [Event::Closed]);
}

#[test]
fn huge_chunk_size_then_large_messages_still_work() {
    // Set Chunk Size 16 MiB (the largest allowed), then 8 MiB messages, each
    // one chunk, arriving in small reads: nothing is reserved ahead of the
    // bytes, and the messages arrive whole.
    let (mut s, mut c) = connected("live", "rtmp://h/live");
    events(&mut s);
    c.writer.set_chunk_size(16 << 20, &mut c.to_server);
    let big = vec![0x42u8; 8 << 20];
    for csid in [4, 6] {
        let header = MessageHeader {
            csid,
            timestamp: 0,
            type_id: 9,
            stream_id: 0,
        };
        c.writer.write(&header, &big, &mut c.to_server).unwrap();
    }
    c.command(0, "ping_me", 9.0, Value::Null, vec![]);
    let data = c.take();
    for piece in data.chunks(1 << 16) {
        s.feed(Duration::ZERO, piece).unwrap();
    }
    // The command after the two large messages was read and answered.
    let st = statuses(&c.receive(&mut s));
    assert!(st.iter().any(|(name, _)| name == "_error"), "{st:?}");
}

#[test]
fn amf_amplification_is_refused() {
    // A command of 200 000 one-byte nulls: 200 KB that would decode to
    // 6.4 MB of values. The session fails with the AMF0 value limit.
    let (mut s, mut c) = connected("live", "rtmp://h/live");
    events(&mut s);
    c.command(
        0,
        "nope",
        2.0,
        Value::Null,
        vec![Value::StrictArray(vec![Value::Null; 200_000])],
    );
    let e = s.feed(Duration::ZERO, &c.take()).unwrap_err();
    assert!(matches!(e, Error::AmfTooManyValues(n) if n < 60_000), "{e}");
    assert!(e.to_string().contains("max_amf_values"), "{e}");
    assert_eq!(s.feed(Duration::ZERO, &[]), Err(Error::Closed));
    s.close();
    assert_eq!(events(&mut s), [Event::Closed]);

    // The same as a publisher's metadata: dropped and reported, and the
    // publish goes on. A lower max_amf_values applies too.
    let limits = Limits {
        max_amf_values: 100,
        ..Limits::default()
    };
    let (_, mut c) = connected("live", "rtmp://h/live");
    let mut s = Session::with_handshake(
        limits,
        Settings::default(),
        ServerHandshake::with_random(pattern(1), pattern(1)),
        Duration::ZERO,
    );
    let mut data = vec![3u8];
    data.extend_from_slice(&[0u8; 2 * PACKET_SIZE]);
    s.feed(Duration::ZERO, &data).unwrap();
    c.writer = ChunkWriter::new();
    c.command(
        0,
        "connect",
        1.0,
        Value::object([("app", Value::string("live"))]),
        vec![],
    );
    c.command(0, "createStream", 2.0, Value::Null, vec![]);
    c.command(1, "publish", 3.0, Value::Null, vec![Value::string("a")]);
    s.feed(Duration::ZERO, &c.take()).unwrap();
    events(&mut s);
    s.accept_publish(1).unwrap();
    let meta = |n: usize| {
        amf0::encode_all(&[
            Value::string("@setDataFrame"),
            Value::string("onMetaData"),
            Value::EcmaArray(vec![(
                "times".into(),
                Value::StrictArray(vec![Value::Number(0.0); n]),
            )]),
        ])
        .unwrap()
    };
    c.media(18, 1, 0, &meta(200));
    c.media(18, 1, 0, &meta(10));
    s.feed(Duration::ZERO, &c.take()).unwrap();
    match &events(&mut s)[..] {
        [Event::MediaDropped {
            stream_id: 1,
            reason: Error::AmfTooManyValues(100),
        }, Event::Metadata { stream_id: 1, .. }] => {}
        other => panic!("{other:?}"),
    }
}
