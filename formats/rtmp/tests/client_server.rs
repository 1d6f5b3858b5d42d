//! The client and server cores against each other, bytes passed in memory
//! and time driven by the test: publish, play, refusals, and every deadline
//! at its simulated moment.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use rill_abi::{
    RILL_CODEC_AAC, RILL_CODEC_H264, RILL_CODEC_H265, RILL_CODEC_METADATA, RILL_CODEC_OPUS,
    RILL_FRAME_CONFIG, RILL_FRAME_KEY,
};
use rill_rtmp::amf0::Value;
use rill_rtmp::chunk::{csid, ChunkReader, ChunkWriter};
use rill_rtmp::flv::{self, Frame};
use rill_rtmp::handshake::{ClientHandshake, Mode, Scheme, ServerHandshake, PACKET_SIZE};
use rill_rtmp::message::{Message, UserControl};
use rill_rtmp::{
    ClientEvent, ClientSession, ClientSettings, Connect, Deadline, Error, Event, Limits, MediaMode,
    Request, Session, Settings,
};

const fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

const fn ms(m: u64) -> Duration {
    Duration::from_millis(m)
}

fn pattern(seed: u8) -> [u8; PACKET_SIZE] {
    let mut p = [0u8; PACKET_SIZE];
    let mut x = seed as u32 | 0x100;
    for b in p.iter_mut() {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        *b = x as u8;
    }
    p
}

/// How the test's "host" answers the server session's requests.
#[derive(Clone, Copy, PartialEq)]
enum Answer {
    Accept,
    Reject,
    /// Leave the request pending (the host decides later, or never).
    Hold,
}

/// A client and a server joined by memory, on one simulated clock.
struct Pair {
    client: ClientSession,
    server: Session,
    now: Duration,
    answer: Answer,
    /// Whether the server's bytes reach the client (false: a mute server).
    deliver_to_client: bool,
    server_events: Vec<Event>,
    client_events: Vec<ClientEvent>,
    server_error: Option<Error>,
    client_error: Option<Error>,
}

impl Pair {
    fn new(server: Settings, client: ClientSettings) -> Pair {
        Self::with_limits(Limits::default(), server, client)
    }

    fn with_limits(limits: Limits, server: Settings, client: ClientSettings) -> Pair {
        let now = Duration::ZERO;
        let hs = ClientHandshake::with_random(client.handshake, pattern(1), pattern(2));
        Pair {
            client: ClientSession::with_handshake(
                limits.clone(),
                client,
                Connect::new("live", "rtmp://127.0.0.1/live"),
                hs,
                now,
            ),
            server: Session::with_handshake(
                limits,
                server,
                ServerHandshake::with_random(pattern(3), pattern(4)),
                now,
            ),
            now,
            answer: Answer::Accept,
            deliver_to_client: true,
            server_events: Vec::new(),
            client_events: Vec::new(),
            server_error: None,
            client_error: None,
        }
    }

    /// Moves bytes both ways and answers requests until nothing moves.
    fn pump(&mut self) {
        loop {
            let mut moved = false;
            while let Some(b) = self.client.poll_transmit() {
                moved = true;
                if self.server_error.is_none() {
                    if let Err(e) = self.server.feed(self.now, &b) {
                        self.server_error = Some(e);
                    }
                }
            }
            while let Some(ev) = self.server.poll_event() {
                match &ev {
                    Event::PublishRequested { stream_id, .. } => match self.answer {
                        Answer::Accept => self.server.accept_publish(*stream_id).unwrap(),
                        Answer::Reject => self.server.reject_publish(*stream_id, "no").unwrap(),
                        Answer::Hold => {}
                    },
                    Event::PlayRequested { stream_id, .. } => match self.answer {
                        Answer::Accept => self.server.accept_play(*stream_id).unwrap(),
                        Answer::Reject => self.server.reject_play(*stream_id, "nobody").unwrap(),
                        Answer::Hold => {}
                    },
                    _ => {}
                }
                self.server_events.push(ev);
            }
            while let Some(b) = self.server.poll_transmit() {
                moved = true;
                if self.deliver_to_client && self.client_error.is_none() {
                    if let Err(e) = self.client.feed(self.now, &b) {
                        self.client_error = Some(e);
                    }
                }
            }
            while let Some(ev) = self.client.poll_event() {
                moved = true;
                self.client_events.push(ev);
            }
            if !moved {
                break;
            }
        }
    }

    /// Advances the clock to `t`, waking each side at its own deadlines on
    /// the way (as a host's timer would), then pumps.
    fn advance_to(&mut self, t: Duration) {
        loop {
            let next = [self.client.poll_timeout(), self.server.poll_timeout()]
                .into_iter()
                .flatten()
                .filter(|d| *d <= t)
                .min();
            let Some(d) = next else { break };
            self.now = self.now.max(d);
            self.client.handle_timeout(self.now);
            self.server.handle_timeout(self.now);
            self.pump();
        }
        self.now = t;
        self.client.handle_timeout(t);
        self.server.handle_timeout(t);
        self.pump();
    }

    fn take_client_events(&mut self) -> Vec<ClientEvent> {
        std::mem::take(&mut self.client_events)
    }

    fn take_server_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.server_events)
    }

    fn server_timed_out(&self) -> Option<(Deadline, Duration)> {
        self.server_events.iter().find_map(|e| match e {
            Event::TimedOut { deadline, waited } => Some((*deadline, *waited)),
            _ => None,
        })
    }

    fn client_timed_out(&self) -> Option<(Deadline, Duration)> {
        self.client_events.iter().find_map(|e| match e {
            ClientEvent::TimedOut { deadline, waited } => Some((*deadline, *waited)),
            _ => None,
        })
    }

    /// Publishes `name` at the current time and returns the stream id once
    /// both sides agree.
    fn publish(&mut self, name: &str) -> u32 {
        self.client.publish(self.now, name).unwrap();
        self.pump();
        self.client_events
            .iter()
            .find_map(|e| match e {
                ClientEvent::Publishing { stream_id, name: n } if n == name => Some(*stream_id),
                _ => None,
            })
            .unwrap_or_else(|| panic!("not publishing: {:?}", self.client_events))
    }

    /// Plays `name` and returns the stream id once it plays.
    fn play(&mut self, name: &str) -> u32 {
        self.client.play(self.now, name).unwrap();
        self.pump();
        self.client_events
            .iter()
            .find_map(|e| match e {
                ClientEvent::Playing { stream_id, name: n } if n == name => Some(*stream_id),
                _ => None,
            })
            .unwrap_or_else(|| panic!("not playing: {:?}", self.client_events))
    }
}

fn frame(codec: u32, flags: u32, dts_ms: i64, cts_ms: i64, payload: &'static [u8]) -> Frame {
    Frame {
        codec,
        flags,
        pts: (dts_ms + cts_ms) * 1000,
        dts: dts_ms * 1000,
        payload: Bytes::from_static(payload),
    }
}

/// Frame by frame, without printing large payloads.
fn assert_frames(got: &[Frame], sent: &[Frame]) {
    let head = |f: &Frame| (f.codec, f.flags, f.pts, f.dts, f.payload.len());
    assert_eq!(
        got.iter().map(head).collect::<Vec<_>>(),
        sent.iter().map(head).collect::<Vec<_>>()
    );
    for (i, (g, s)) in got.iter().zip(sent).enumerate() {
        assert!(g.payload == s.payload, "payload of frame {i} differs");
    }
}

fn metadata() -> Frame {
    let body = flv::metadata_body(vec![
        ("width".to_owned(), Value::Number(1280.0)),
        ("height".to_owned(), Value::Number(720.0)),
        ("encoder".to_owned(), Value::string("rill-rtmp test")),
    ])
    .unwrap();
    Frame {
        codec: RILL_CODEC_METADATA,
        flags: 0,
        pts: 0,
        dts: 0,
        payload: body,
    }
}

/// A stream's frames: metadata, configs, a GOP with reordering, audio;
/// classic (H.264, AAC) and Enhanced RTMP (HEVC, Opus) codecs.
fn frames() -> Vec<Frame> {
    vec![
        frame(
            RILL_CODEC_H264,
            RILL_FRAME_CONFIG,
            0,
            0,
            b"\x01\x64\x00\x1f avcC",
        ),
        frame(RILL_CODEC_AAC, RILL_FRAME_CONFIG, 0, 0, b"\x11\x90"),
        frame(
            RILL_CODEC_H264,
            RILL_FRAME_KEY,
            0,
            80,
            b"\0\0\0\x05\x65IDR!",
        ),
        // Every audio frame is a key frame.
        frame(RILL_CODEC_AAC, RILL_FRAME_KEY, 10, 0, b"aac frame 1"),
        frame(RILL_CODEC_H264, 0, 40, 120, b"\0\0\0\x02\x41P"),
        frame(RILL_CODEC_H264, 0, 80, -40, b"\0\0\0\x02\x01B"),
        frame(RILL_CODEC_AAC, RILL_FRAME_KEY, 31, 0, b"aac frame 2"),
        frame(RILL_CODEC_H265, RILL_FRAME_CONFIG, 120, 0, b"hvcC record"),
        frame(
            RILL_CODEC_H265,
            RILL_FRAME_KEY,
            120,
            40,
            b"\0\0\0\x03\x26\x01x",
        ),
        frame(RILL_CODEC_OPUS, RILL_FRAME_CONFIG, 120, 0, b"OpusHead...."),
        frame(RILL_CODEC_OPUS, RILL_FRAME_KEY, 140, 0, b"opus packet"),
        // Past the 24-bit timestamp field: the extended timestamp.
        frame(
            RILL_CODEC_AAC,
            RILL_FRAME_KEY,
            0x0100_0000 + 7,
            0,
            b"late aac",
        ),
    ]
}

#[test]
fn client_publishes_to_server() {
    let mut p = Pair::new(Settings::default(), ClientSettings::default());
    let id = p.publish("cam?key=1");
    let ev = p.take_server_events();
    assert!(
        matches!(&ev[0], Event::Connected(info) if info.app == "live"
            && info.tc_url.as_deref() == Some("rtmp://127.0.0.1/live")
            && info.flash_ver.as_deref() == Some("LNX 9,0,124,2")),
        "{ev:?}"
    );
    assert!(
        ev.contains(&Event::PublishRequested {
            stream_id: id,
            path: "live/cam".into(),
            query: Some("key=1".into()),
            publish_type: "live".into(),
        }),
        "{ev:?}"
    );
    let cev = p.take_client_events();
    assert!(matches!(cev[0], ClientEvent::Connected { .. }), "{cev:?}");
    assert!(cev
        .iter()
        .all(|e| !matches!(e, ClientEvent::Rejected { .. })));

    // Media: every frame arrives as sent, in order; metadata by
    // @setDataFrame.
    let mut sent = vec![metadata()];
    sent.extend(frames());
    for f in &sent {
        p.client.send_frame(id, f).unwrap();
    }
    // A big key frame crosses many 4096-byte chunks.
    let big = Frame {
        payload: Bytes::from(vec![0x5a; 20_000]),
        ..frame(RILL_CODEC_H264, RILL_FRAME_KEY, 200, 0, b"")
    };
    p.client.send_frame(id, &big).unwrap();
    sent.push(big);
    p.pump();
    let got: Vec<Frame> = p
        .take_server_events()
        .into_iter()
        .map(|e| match e {
            Event::Media { stream_id, frame } | Event::Metadata { stream_id, frame } => {
                assert_eq!(stream_id, id);
                frame
            }
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_frames(&got, &sent);

    // Raw tags go as they are.
    p.client
        .send_tag(id, flv::TAG_AUDIO, 500, &[0xAF, 1, 9, 9])
        .unwrap();
    p.pump();
    assert_eq!(
        p.take_server_events(),
        vec![Event::Media {
            stream_id: id,
            frame: Frame {
                codec: RILL_CODEC_AAC,
                flags: RILL_FRAME_KEY,
                pts: 500_000,
                dts: 500_000,
                payload: Bytes::from_static(&[9, 9]),
            }
        }]
    );

    // Unpublish: FCUnpublish + deleteStream end it on the server.
    p.client.close_stream(id).unwrap();
    p.pump();
    assert_eq!(
        p.take_server_events(),
        vec![Event::Unpublished {
            stream_id: id,
            path: "live/cam".into()
        }]
    );
    assert_eq!(
        p.client.send_frame(id, &frames()[0]),
        Err(Error::InvalidState("stream is not publishing"))
    );
    assert!(p.server_error.is_none() && p.client_error.is_none());
}

#[test]
fn server_plays_to_client() {
    let mut p = Pair::new(Settings::default(), ClientSettings::default());
    let id = p.play("cam");
    let ev = p.take_server_events();
    assert!(
        ev.contains(&Event::PlayRequested {
            stream_id: id,
            path: "live/cam".into(),
            query: None,
        }),
        "{ev:?}"
    );
    // Play.Reset came before Play.Start, as a status.
    let cev = p.take_client_events();
    assert!(
        cev.iter()
            .any(|e| matches!(e, ClientEvent::Status { stream_id, code, .. }
            if *stream_id == id && code == "NetStream.Play.Reset")),
        "{cev:?}"
    );

    let mut sent = vec![metadata()];
    sent.extend(frames());
    for f in &sent {
        p.server.send_frame(id, f).unwrap();
    }
    // The "mux once, send to many" path gives the same.
    let params = p.server.chunk_params(id).unwrap();
    let f = frame(RILL_CODEC_H264, 0, 300, 0, b"\0\0\0\x02\x41Q");
    p.server
        .send_serialized(rill_rtmp::serialize_frame(&params, &f).unwrap());
    sent.push(f);
    p.pump();
    let got: Vec<Frame> = p
        .take_client_events()
        .into_iter()
        .map(|e| match e {
            ClientEvent::Media { stream_id, frame }
            | ClientEvent::Metadata { stream_id, frame } => {
                assert_eq!(stream_id, id);
                frame
            }
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_frames(&got, &sent);

    // The publisher left: the player hears it.
    p.server.notify_unpublished(id).unwrap();
    p.pump();
    let cev = p.take_client_events();
    assert!(
        cev.iter()
            .any(|e| matches!(e, ClientEvent::Status { code, .. }
            if code == "NetStream.Play.UnpublishNotify")),
        "{cev:?}"
    );

    // The player stops: the server reports it.
    p.client.close_stream(id).unwrap();
    p.pump();
    assert_eq!(
        p.take_server_events(),
        vec![Event::PlayStopped {
            stream_id: id,
            path: "live/cam".into()
        }]
    );
}

#[test]
fn tags_mode_hands_over_bodies_as_sent() {
    let client = ClientSettings {
        media: MediaMode::Tags,
        window_ack_size: Some(100_000_000),
        ..ClientSettings::default()
    };
    let mut p = Pair::new(Settings::default(), client);
    let id = p.play("cam");
    p.take_client_events();
    let sent = frames();
    for f in &sent {
        p.server.send_frame(id, f).unwrap();
    }
    p.pump();
    let tags: Vec<(u8, u32, Bytes)> = p
        .take_client_events()
        .into_iter()
        .filter_map(|e| match e {
            ClientEvent::Tag {
                tag_type,
                timestamp,
                body,
                ..
            } => Some((tag_type, timestamp, body)),
            _ => None,
        })
        .collect();
    // Data tags (|RtmpSampleAccess) aside, the frames as muxed.
    let media: Vec<_> = tags.iter().filter(|t| t.0 != flv::TAG_SCRIPT).collect();
    assert_eq!(media.len(), sent.len());
    for (f, (t, ts, body)) in sent.iter().zip(media) {
        assert_eq!(flv::mux(f).unwrap(), (*t, *ts, body.clone()));
    }
}

#[test]
fn refused_publish_and_play_are_reported() {
    let mut p = Pair::new(Settings::default(), ClientSettings::default());
    p.answer = Answer::Reject;
    p.client.publish(p.now, "taken").unwrap();
    p.client.play(p.now, "nobody").unwrap();
    p.pump();
    let rejected: Vec<(Request, String)> = p
        .take_client_events()
        .into_iter()
        .filter_map(|e| match e {
            ClientEvent::Rejected { request, code, .. } => Some((request, code)),
            _ => None,
        })
        .collect();
    assert_eq!(
        rejected,
        vec![
            (
                Request::Publish("taken".into()),
                "NetStream.Publish.BadName".into()
            ),
            (
                Request::Play("nobody".into()),
                "NetStream.Play.StreamNotFound".into()
            ),
        ]
    );
    // The client deleted both streams; the connection is still usable.
    p.answer = Answer::Accept;
    p.publish("free");
    assert!(p.server_error.is_none() && p.client_error.is_none());
}

#[test]
fn server_handshake_timeout_fires_at_its_moment() {
    let server = Settings {
        handshake_timeout: Some(secs(10)),
        idle_timeout: Some(secs(30)),
        ..Settings::default()
    };
    let mut p = Pair::new(server, ClientSettings::default());
    // The client's C0+C1 never leave it: a silent peer.
    assert_eq!(p.server.poll_timeout(), Some(secs(10)));
    p.server.handle_timeout(secs(10) - ms(1));
    assert_eq!(p.server.poll_event(), None);
    p.server.handle_timeout(secs(10));
    assert_eq!(
        p.server.poll_event(),
        Some(Event::TimedOut {
            deadline: Deadline::Handshake,
            waited: secs(10)
        })
    );
    assert_eq!(p.server.poll_timeout(), None);
    assert_eq!(p.server.feed(secs(11), &[3]), Err(Error::Closed));
    p.server.close();
    assert_eq!(p.server.poll_event(), Some(Event::Closed));
}

#[test]
fn handshake_deadline_needs_connect_not_just_the_handshake() {
    let server = Settings {
        handshake_timeout: Some(secs(5)),
        idle_timeout: None,
        ..Settings::default()
    };
    let mut p = Pair::new(server, ClientSettings::default());
    // The handshake bytes flow (C0C1 → S0S1S2 → C2 + connect), but the
    // server never sees connect: cut the C2 + connect on the way.
    let c0c1 = p.client.poll_transmit().unwrap();
    p.server.feed(ms(100), &c0c1).unwrap();
    while let Some(b) = p.server.poll_transmit() {
        p.client.feed(ms(200), &b).unwrap();
    }
    let mut c2 = Vec::new();
    while let Some(b) = p.client.poll_transmit() {
        c2.extend_from_slice(&b);
    }
    p.server.feed(ms(300), &c2[..PACKET_SIZE]).unwrap();
    // Handshake done, no connect: still the handshake deadline.
    assert_eq!(p.server.poll_timeout(), Some(secs(5)));
    p.server.handle_timeout(secs(5));
    assert!(matches!(
        p.server.poll_event(),
        Some(Event::TimedOut {
            deadline: Deadline::Handshake,
            ..
        })
    ));
}

#[test]
fn server_idle_timeout_follows_input_and_spares_players() {
    let server = Settings {
        handshake_timeout: Some(secs(10)),
        idle_timeout: Some(secs(30)),
        ..Settings::default()
    };
    let mut p = Pair::new(server, ClientSettings::default());
    p.now = secs(2);
    p.pump();
    assert!(p.client.is_connected());
    // Connected at 2 s: the idle deadline is 30 s after the last input.
    assert_eq!(p.server.poll_timeout(), Some(secs(32)));

    // Input at 20 s moves it.
    p.advance_to(secs(20));
    assert_eq!(p.server_timed_out(), None);
    let id = p.publish("cam");
    assert_eq!(p.server.poll_timeout(), Some(secs(50)));
    p.advance_to(secs(49));
    assert_eq!(p.server_timed_out(), None);
    p.client.send_frame(id, &frames()[0]).unwrap();
    p.pump();
    assert_eq!(p.server.poll_timeout(), Some(secs(79)));

    // A player is never idle, however long it stays silent.
    let play = p.play("other");
    assert_eq!(p.server.poll_timeout(), None);
    p.advance_to(secs(500));
    assert_eq!(p.server_timed_out(), None);
    // Once the host ends the play, silence counts again, from the last
    // input.
    p.server.end_play(play);
    assert_eq!(p.server.poll_timeout(), Some(secs(79)));
    // Its deadline passed long ago: the next wake-up (at 500 s) ends it.
    p.advance_to(secs(501));
    assert_eq!(p.server_timed_out(), Some((Deadline::Idle, secs(500 - 49))));
    assert_eq!(p.server.chunk_params(play), None);
}

#[test]
fn server_waiting_for_the_host_is_not_idle() {
    let server = Settings {
        idle_timeout: Some(secs(30)),
        ..Settings::default()
    };
    let client = ClientSettings {
        response_timeout: None,
        ..ClientSettings::default()
    };
    let mut p = Pair::new(server, client);
    p.answer = Answer::Hold;
    p.client.publish(p.now, "cam").unwrap();
    p.pump();
    assert_eq!(p.server.poll_timeout(), None);
    p.advance_to(secs(100));
    assert_eq!(p.server_timed_out(), None);
    // The decision comes; idleness counts from the last input again.
    let id = match p.take_server_events().last() {
        Some(Event::PublishRequested { stream_id, .. }) => *stream_id,
        other => panic!("{other:?}"),
    };
    p.server.accept_publish(id).unwrap();
    assert_eq!(p.server.poll_timeout(), Some(secs(30)));
    // Overdue at once: the next wake-up (still at 100 s) ends it.
    p.advance_to(secs(101));
    assert_eq!(p.server_timed_out(), Some((Deadline::Idle, secs(100))));
}

#[test]
fn client_gives_up_on_a_mute_server() {
    let client = ClientSettings {
        response_timeout: Some(secs(8)),
        ..ClientSettings::default()
    };
    let mut p = Pair::new(Settings::default(), client);
    p.deliver_to_client = false;
    p.client.play(ms(500), "cam").unwrap();
    p.pump();
    // The handshake deadline (from the start) comes before the play's.
    assert_eq!(p.client.poll_timeout(), Some(secs(8)));
    p.advance_to(secs(8) - ms(1));
    assert_eq!(p.client_timed_out(), None);
    p.advance_to(secs(8));
    assert_eq!(p.client_timed_out(), Some((Deadline::Handshake, secs(8))));
    assert_eq!(p.client.poll_timeout(), None);
    assert_eq!(p.client.play(secs(9), "again"), Err(Error::Closed));
}

#[test]
fn client_gives_up_on_an_unanswered_publish() {
    let client = ClientSettings {
        response_timeout: Some(secs(10)),
        ..ClientSettings::default()
    };
    let mut p = Pair::new(Settings::default(), client);
    p.answer = Answer::Hold;
    p.now = secs(1);
    p.pump();
    assert!(p.client.is_connected());
    // Nothing pending: no deadline.
    assert_eq!(p.client.poll_timeout(), None);
    p.now = secs(3);
    p.client.publish(p.now, "cam").unwrap();
    p.pump();
    assert_eq!(p.client.poll_timeout(), Some(secs(13)));
    p.advance_to(secs(12));
    assert_eq!(p.client_timed_out(), None);
    p.advance_to(secs(20));
    assert_eq!(p.client_timed_out(), Some((Deadline::Response, secs(10))));
}

#[test]
fn client_idle_timeout_for_a_stalled_stream() {
    let client = ClientSettings {
        idle_timeout: Some(secs(5)),
        ..ClientSettings::default()
    };
    let mut p = Pair::new(Settings::default(), client);
    let id = p.play("cam");
    for t in 1..=4 {
        p.advance_to(secs(t * 3));
        p.server.send_frame(id, &frames()[3]).unwrap();
        p.pump();
    }
    assert_eq!(p.client_timed_out(), None);
    // The last frame came at 12 s; the stream stalls.
    assert_eq!(p.client.poll_timeout(), Some(secs(17)));
    p.advance_to(secs(30));
    assert_eq!(p.client_timed_out(), Some((Deadline::Idle, secs(5))));
}

#[test]
fn client_answers_pings_and_acknowledges() {
    let mut p = Pair::new(Settings::default(), ClientSettings::default());
    let id = p.play("cam");
    // A ping from the server side of the wire (the server session sends
    // none): the chunk fits the client's inbound chunk size either way.
    let mut raw = BytesMut::new();
    Message::UserControl(UserControl::PingRequest(4242))
        .write(&mut ChunkWriter::new(), csid::CONTROL, 0, 0, &mut raw)
        .unwrap();
    p.client.feed(p.now, &raw).unwrap();
    // Enough media to pass the server's 2.5 MB window.
    let big = Frame {
        payload: Bytes::from(vec![1; 1 << 20]),
        ..frame(RILL_CODEC_H264, RILL_FRAME_KEY, 0, 0, b"")
    };
    for _ in 0..3 {
        p.server.send_frame(id, &big).unwrap();
        while let Some(b) = p.server.poll_transmit() {
            p.client.feed(p.now, &b).unwrap();
        }
    }
    // What the client queued since the last pump: small control messages,
    // each within the default chunk size.
    let mut reader = ChunkReader::new(&Limits::default());
    let mut msgs = Vec::new();
    while let Some(b) = p.client.poll_transmit() {
        reader.feed(&b, &mut msgs).unwrap();
    }
    let decoded: Vec<Message> = msgs
        .iter()
        .map(|m| Message::decode(m, 8).unwrap())
        .collect();
    assert!(
        decoded.contains(&Message::UserControl(UserControl::PingResponse(4242))),
        "{decoded:?}"
    );
    assert!(
        decoded
            .iter()
            .any(|m| matches!(m, Message::Acknowledgement(n) if *n >= 2_500_000)),
        "{decoded:?}"
    );
}

#[test]
fn simple_handshake_client_and_the_server_agree() {
    let client = ClientSettings {
        handshake: Mode::Simple,
        ..ClientSettings::default()
    };
    let mut p = Pair::new(Settings::default(), client);
    p.publish("cam");
    let digest = ClientSettings {
        handshake: Mode::Digest(Scheme::Scheme0),
        ..ClientSettings::default()
    };
    let mut p = Pair::new(Settings::default(), digest);
    p.play("cam");
}

#[test]
fn limits_bind_the_client_too() {
    // A server that announces a chunk size beyond the client's limit is
    // refused (the client parses with the same limits as the server).
    let limits = Limits {
        max_chunk_size: 1024,
        ..Limits::default()
    };
    let mut p = Pair::with_limits(limits, Settings::default(), ClientSettings::default());
    p.pump();
    assert_eq!(p.client_error, Some(Error::ChunkSizeOutOfRange(4096)));
    assert_eq!(p.client.feed(p.now, &[]), Err(Error::Closed));
}

#[test]
fn fuzz_client_seed_reaches_publish_and_play() {
    // The client fuzz target's seed "server_accepts" drives its client to
    // both streams (so mutations start from a deep state).
    let seed = std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/client/server_accepts"),
    )
    .unwrap();
    let mut c = rill_rtmp::fuzzing::client_after_handshake();
    c.feed(Duration::ZERO, &seed).unwrap();
    let events: Vec<ClientEvent> = std::iter::from_fn(|| c.poll_event()).collect();
    assert!(
        events
            .iter()
            .any(|e| matches!(e, ClientEvent::Publishing { name, .. } if name == "b")),
        "{events:?}"
    );
    assert!(
        events
            .iter()
            .any(|e| matches!(e, ClientEvent::Media { .. })),
        "{events:?}"
    );
}
