//! The server session over byte vectors: the publish and play flows as
//! ffmpeg sends them, statuses for bad input, auth, timeouts, bounds.

use bytes::Bytes;
use rill_rtsp::auth::{authorization, Offered};
use rill_rtsp::{
    EndReason, Event, Item, Limits, Lower, Mode, Reader, Response, ServerSession, Settings,
    SetupAnswer, TrackStart,
};

const SEC: u64 = 1_000_000;

struct H {
    s: ServerSession,
    now: u64,
}

impl H {
    fn new() -> H {
        H::with(Settings::default())
    }

    fn with(settings: Settings) -> H {
        H {
            s: ServerSession::new(Limits::default(), settings, 0),
            now: 0,
        }
    }

    fn feed(&mut self, data: &[u8]) -> Result<(), rill_rtsp::Error> {
        self.s.feed(self.now, data)
    }

    /// What the session wrote, as items.
    fn out(&mut self) -> Vec<Item> {
        let mut bytes = Vec::new();
        while let Some(b) = self.s.poll_transmit() {
            bytes.extend_from_slice(&b);
        }
        let mut r = Reader::new(Limits::default());
        assert_eq!(r.push(&bytes), bytes.len());
        let mut items = Vec::new();
        while let Some(i) = r.next_item().unwrap() {
            items.push(i);
        }
        items
    }

    fn responses(&mut self) -> Vec<Response> {
        self.out()
            .into_iter()
            .filter_map(|i| match i {
                Item::Response(r) => Some(r),
                _ => None,
            })
            .collect()
    }

    fn one(&mut self, req: &str) -> Response {
        self.feed(req.as_bytes()).unwrap();
        let mut r = self.responses();
        assert_eq!(r.len(), 1, "{req}: {r:?}");
        r.remove(0)
    }

    fn events(&mut self) -> Vec<Event> {
        std::iter::from_fn(|| self.s.poll_event()).collect()
    }
}

fn session_of(r: &Response) -> String {
    r.headers
        .get("Session")
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string()
}

const SDP: &str = "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=x\r\nm=video 0 RTP/AVP 96\r\na=control:streamid=0\r\nm=audio 0 RTP/AVP 97\r\na=control:streamid=1\r\n";

#[test]
fn ffmpeg_publish_over_tcp() {
    let mut h = H::new();
    let r = h.one(
        "OPTIONS rtsp://127.0.0.1:8554/live/x RTSP/1.0\r\nCSeq: 1\r\nUser-Agent: Lavf\r\n\r\n",
    );
    assert_eq!(r.status, 200);
    assert!(r.headers.get("Public").unwrap().contains("ANNOUNCE"));
    let ann = format!(
        "ANNOUNCE rtsp://127.0.0.1:8554/live/x RTSP/1.0\r\nContent-Type: application/sdp\r\nCSeq: 2\r\nContent-Length: {}\r\n\r\n{SDP}",
        SDP.len()
    );
    h.feed(ann.as_bytes()).unwrap();
    assert!(h.responses().is_empty());
    let ev = h.events();
    let Event::Announce {
        request, path, sdp, ..
    } = &ev[0]
    else {
        panic!("{ev:?}")
    };
    assert_eq!(path, "live/x");
    assert_eq!(&sdp[..], SDP.as_bytes());
    h.s.accept_announce(*request).unwrap();
    assert_eq!(h.responses()[0].status, 200);
    let mut sid = String::new();
    for i in 0..2 {
        let session = if i == 0 {
            String::new()
        } else {
            format!("Session: {sid}\r\n")
        };
        h.feed(format!("SETUP rtsp://127.0.0.1:8554/live/x/streamid={i} RTSP/1.0\r\nTransport: RTP/AVP/TCP;unicast;interleaved={}-{};mode=record\r\nCSeq: {}\r\n{session}\r\n", 2 * i, 2 * i + 1, 3 + i).as_bytes()).unwrap();
        let ev = h.events();
        let Event::Setup {
            request,
            track,
            path,
            mode,
            transport,
            control,
            ..
        } = &ev[0]
        else {
            panic!("{ev:?}")
        };
        assert_eq!(
            (*track, path.as_str(), *mode, control.as_str()),
            (i, "live/x", Mode::Record, format!("streamid={i}").as_str())
        );
        assert_eq!(transport.interleaved, Some((2 * i as u8, 2 * i as u8 + 1)));
        let t = h.s.accept_setup(*request, SetupAnswer::default()).unwrap();
        assert_eq!(t.lower, Lower::Tcp);
        let r = h.responses().remove(0);
        assert_eq!(r.status, 200);
        assert_eq!(
            r.headers.get("Transport"),
            Some(
                format!(
                    "RTP/AVP/TCP;unicast;interleaved={}-{};mode=record",
                    2 * i,
                    2 * i + 1
                )
                .as_str()
            )
        );
        assert!(r.headers.get("Session").unwrap().ends_with(";timeout=60"));
        sid = session_of(&r);
    }
    h.feed(format!("RECORD rtsp://127.0.0.1:8554/live/x RTSP/1.0\r\nRange: npt=0.000-\r\nCSeq: 5\r\nSession: {sid}\r\n\r\n").as_bytes()).unwrap();
    // RTP right behind RECORD waits for the answer.
    h.feed(b"$\x00\x00\x04\x80\x60\x00\x01$\x03\x00\x02\x81\xc8")
        .unwrap();
    let ev = h.events();
    assert_eq!(ev.len(), 1);
    let Event::Record {
        request, tracks, ..
    } = &ev[0]
    else {
        panic!("{ev:?}")
    };
    assert_eq!(tracks, &[0, 1]);
    h.s.accept_record(*request).unwrap();
    assert_eq!(h.responses()[0].status, 200);
    let ev = h.events();
    assert_eq!(
        ev[0],
        Event::Interleaved {
            channel: 0,
            session: Some(sid.clone()),
            track: Some(0),
            rtcp: false,
            payload: Bytes::from_static(b"\x80\x60\x00\x01")
        }
    );
    assert!(matches!(
        &ev[1],
        Event::Interleaved {
            channel: 3,
            track: Some(1),
            rtcp: true,
            ..
        }
    ));
    // TEARDOWN.
    let r = h.one(&format!(
        "TEARDOWN rtsp://127.0.0.1:8554/live/x RTSP/1.0\r\nCSeq: 6\r\nSession: {sid}\r\n\r\n"
    ));
    assert_eq!(r.status, 200);
    assert_eq!(
        h.events(),
        vec![Event::SessionEnded {
            session: sid,
            path: "live/x".into(),
            mode: Some(Mode::Record),
            reason: EndReason::Teardown
        }]
    );
}

fn describe_setup_play(h: &mut H, udp: bool) -> String {
    h.feed(b"DESCRIBE rtsp://h/live/cam?token=t RTSP/1.0\r\nCSeq: 2\r\nAccept: application/sdp\r\n\r\n").unwrap();
    let ev = h.events();
    let Event::Describe {
        request,
        path,
        query,
        ..
    } = &ev[0]
    else {
        panic!("{ev:?}")
    };
    assert_eq!(
        (path.as_str(), query.as_deref()),
        ("live/cam", Some("token=t"))
    );
    h.s.answer_describe(*request, SDP).unwrap();
    let r = h.responses().remove(0);
    assert_eq!(r.status, 200);
    assert_eq!(
        r.headers.get("Content-Base"),
        Some("rtsp://h/live/cam?token=t/")
    );
    assert_eq!(r.headers.get("Content-Type"), Some("application/sdp"));
    assert_eq!(&r.body[..], SDP.as_bytes());
    let transport = if udp {
        "RTP/AVP;unicast;client_port=5000-5001"
    } else {
        "RTP/AVP/TCP;unicast"
    };
    h.feed(format!("SETUP rtsp://h/live/cam?token=t/trackID=0 RTSP/1.0\r\nCSeq: 3\r\nTransport: {transport}\r\n\r\n").as_bytes()).unwrap();
    let ev = h.events();
    let Event::Setup {
        request,
        track,
        transport,
        session,
        ..
    } = &ev[0]
    else {
        panic!("{ev:?}")
    };
    assert_eq!(*track, 0);
    if udp {
        assert_eq!(transport.client_port, Some((5000, 5001)));
        let t =
            h.s.accept_setup(
                *request,
                SetupAnswer {
                    server_port: Some((8000, 8001)),
                    ssrc: Some(0xABCD),
                },
            )
            .unwrap();
        assert_eq!(t.server_port, Some((8000, 8001)));
    } else {
        // Channels assigned from the track index.
        assert_eq!(transport.interleaved, Some((0, 1)));
        h.s.accept_setup(*request, SetupAnswer::default()).unwrap();
    }
    let r = h.responses().remove(0);
    assert_eq!(r.status, 200);
    assert_eq!(&session_of(&r), session);
    let sid = session.clone();
    if udp {
        assert_eq!(r.headers.get("Transport"), Some("RTP/AVP;unicast;client_port=5000-5001;server_port=8000-8001;ssrc=0000ABCD;mode=play"));
    }
    h.feed(format!("PLAY rtsp://h/live/cam?token=t/ RTSP/1.0\r\nCSeq: 4\r\nSession: {sid}\r\nRange: npt=0.000-\r\n\r\n").as_bytes()).unwrap();
    let ev = h.events();
    let Event::Play {
        request,
        tracks,
        range,
        ..
    } = &ev[0]
    else {
        panic!("{ev:?}")
    };
    assert_eq!(tracks, &[0]);
    assert!(range.is_some());
    h.s.accept_play(
        *request,
        None,
        &[TrackStart {
            track: 0,
            seq: 100,
            rtptime: 9000,
        }],
    )
    .unwrap();
    let r = h.responses().remove(0);
    assert_eq!(r.status, 200);
    assert_eq!(r.headers.get("Range"), Some("npt=0.000-"));
    assert_eq!(
        r.headers.get("RTP-Info"),
        Some("url=rtsp://h/live/cam?token=t/trackID=0;seq=100;rtptime=9000")
    );
    sid
}

#[test]
fn play_over_tcp_and_udp() {
    let mut h = H::new();
    let sid = describe_setup_play(&mut h, false);
    assert_eq!(h.s.channels(&sid, 0), Some((0, 1)));
    h.s.send_interleaved(0, Bytes::from_static(b"\x80\x60rtp"))
        .unwrap();
    // A frame built once: as is on its channel, re-headed on another.
    let mut frame = b"....\x80\x60rtp".to_vec();
    assert!(rill_rtsp::put_interleaved_header(&mut frame, 0));
    let frame = Bytes::from(frame);
    h.s.send_framed(0, frame.clone()).unwrap();
    h.s.send_framed(2, frame.clone()).unwrap();
    assert!(h.s.send_framed(2, frame.slice(1..)).is_err());
    assert_eq!(
        h.out(),
        [0, 0, 2].map(|channel| Item::Interleaved {
            channel,
            payload: Bytes::from_static(b"\x80\x60rtp")
        })
    );
    // PAUSE, PLAY again.
    let r = h.one(&format!(
        "PAUSE rtsp://h/live/cam RTSP/1.0\r\nCSeq: 5\r\nSession: {sid}\r\n\r\n"
    ));
    assert_eq!(r.status, 200);
    assert_eq!(
        h.events(),
        vec![Event::Paused {
            session: sid.clone()
        }]
    );
    // RECORD on a play session: 455.
    let r = h.one(&format!(
        "RECORD rtsp://h/live/cam RTSP/1.0\r\nCSeq: 6\r\nSession: {sid}\r\n\r\n"
    ));
    assert_eq!(r.status, 455);
    let mut h = H::new();
    let sid = describe_setup_play(&mut h, true);
    assert_eq!(h.s.channels(&sid, 0), None);
    assert_eq!(
        h.s.transport(&sid, 0).unwrap().client_port,
        Some((5000, 5001))
    );
}

#[test]
fn statuses() {
    let mut h = H::new();
    // Unknown session: 454.
    assert_eq!(
        h.one("PLAY rtsp://h/x RTSP/1.0\r\nCSeq: 1\r\nSession: nope\r\n\r\n")
            .status,
        454
    );
    assert_eq!(
        h.one("PLAY rtsp://h/x RTSP/1.0\r\nCSeq: 2\r\n\r\n").status,
        454
    );
    assert_eq!(
        h.one("TEARDOWN rtsp://h/x RTSP/1.0\r\nCSeq: 2\r\n\r\n")
            .status,
        454
    );
    // Multicast only, or no ports: 461.
    assert_eq!(h.one("SETUP rtsp://h/x/trackID=0 RTSP/1.0\r\nCSeq: 3\r\nTransport: RTP/AVP;multicast\r\n\r\n").status, 461);
    assert_eq!(
        h.one(
            "SETUP rtsp://h/x/trackID=0 RTSP/1.0\r\nCSeq: 4\r\nTransport: RTP/AVP;unicast\r\n\r\n"
        )
        .status,
        461
    );
    assert_eq!(
        h.one("SETUP rtsp://h/x/trackID=0 RTSP/1.0\r\nCSeq: 4\r\n\r\n")
            .status,
        461
    );
    // Record without ANNOUNCE: 455.
    assert_eq!(h.one("SETUP rtsp://h/x/trackID=0 RTSP/1.0\r\nCSeq: 5\r\nTransport: RTP/AVP/TCP;unicast;mode=record\r\n\r\n").status, 455);
    // Unknown method: 501; malformed: 400 and on; no CSeq: 400.
    assert_eq!(
        h.one("FLY rtsp://h/x RTSP/1.0\r\nCSeq: 6\r\n\r\n").status,
        501
    );
    let r = h.one("PLAY\r\nCSeq: 7\r\n\r\n");
    assert_eq!((r.status, r.headers.cseq()), (400, Some(7)));
    assert_eq!(h.one("OPTIONS * RTSP/1.0\r\n\r\n").status, 400);
    assert_eq!(h.one("OPTIONS * RTSP/2.0\r\nCSeq: 8\r\n\r\n").status, 505);
    assert_eq!(
        h.one("OPTIONS * RTSP/1.0\r\nCSeq: 9\r\nRequire: funky\r\n\r\n")
            .status,
        551
    );
    assert_eq!(
        h.one("GET_PARAMETER rtsp://h/x RTSP/1.0\r\nCSeq: 10\r\n\r\n")
            .status,
        200
    );
    // 404 by the caller.
    h.feed(b"DESCRIBE rtsp://h/none RTSP/1.0\r\nCSeq: 11\r\n\r\n")
        .unwrap();
    let Event::Describe { request, .. } = h.events().remove(0) else {
        panic!()
    };
    // Pipelined requests wait for the answer.
    h.feed(b"OPTIONS * RTSP/1.0\r\nCSeq: 12\r\n\r\n").unwrap();
    assert!(h.responses().is_empty());
    assert!(h.s.answer_describe(request + 1, "").is_err());
    assert!(h.s.accept_announce(request).is_err());
    h.s.reject(request, 404).unwrap();
    let r = h.responses();
    assert_eq!((r[0].status, r[0].headers.cseq()), (404, Some(11)));
    assert_eq!((r[1].status, r[1].headers.cseq()), (200, Some(12)));
    // A stream that cannot be framed: 400, then failed.
    assert!(h.feed(b"\x00\x01garbage").is_err());
    assert_eq!(h.responses()[0].status, 400);
    assert!(h.feed(b"OPTIONS * RTSP/1.0\r\nCSeq: 1\r\n\r\n").is_err());
}

#[test]
fn auth_challenge_then_digest_credentials() {
    let mut h = H::new();
    h.feed(b"DESCRIBE rtsp://h/live/x RTSP/1.0\r\nCSeq: 1\r\n\r\n")
        .unwrap();
    let Event::Describe {
        request,
        credentials,
        ..
    } = h.events().remove(0)
    else {
        panic!()
    };
    assert_eq!(credentials, None);
    h.s.reject(request, 401).unwrap();
    let r = h.responses().remove(0);
    assert_eq!(r.status, 401);
    let challenges: Vec<&str> = r.headers.get_all("WWW-Authenticate").collect();
    assert_eq!(challenges.len(), 2);
    assert!(challenges[0].starts_with("Digest realm=\"Rill\", nonce=\""));
    assert!(challenges[1].starts_with("Basic realm=\"Rill\""));
    let offered = Offered::parse(challenges[0]).unwrap();
    let a = authorization(
        &offered,
        "alice",
        "secret",
        "DESCRIBE",
        "rtsp://h/live/x",
        1,
    );
    h.feed(
        format!("DESCRIBE rtsp://h/live/x RTSP/1.0\r\nCSeq: 2\r\nAuthorization: {a}\r\n\r\n")
            .as_bytes(),
    )
    .unwrap();
    let Event::Describe { credentials, .. } = h.events().remove(0) else {
        panic!()
    };
    let c = credentials.unwrap();
    assert_eq!(c.user(), "alice");
    assert!(c.verify("secret"));
    assert!(!c.verify("guess"));
    // Basic.
    let mut h = H::new();
    let a = authorization(&Offered::Basic, "bob", "pw", "DESCRIBE", "x", 1);
    h.feed(
        format!("DESCRIBE rtsp://h/live/x RTSP/1.0\r\nCSeq: 2\r\nAuthorization: {a}\r\n\r\n")
            .as_bytes(),
    )
    .unwrap();
    let Event::Describe { credentials, .. } = h.events().remove(0) else {
        panic!()
    };
    assert!(credentials.unwrap().verify("pw"));
    // A Digest answer to another connection's nonce is dropped.
    let mut h2 = H::new();
    let stale = Offered::Digest {
        realm: "Rill".into(),
        nonce: "0000".into(),
        opaque: None,
        qop_auth: false,
    };
    let a = authorization(&stale, "alice", "secret", "DESCRIBE", "rtsp://h/live/x", 1);
    h2.feed(
        format!("DESCRIBE rtsp://h/live/x RTSP/1.0\r\nCSeq: 2\r\nAuthorization: {a}\r\n\r\n")
            .as_bytes(),
    )
    .unwrap();
    let Event::Describe { credentials, .. } = h2.events().remove(0) else {
        panic!()
    };
    assert_eq!(credentials, None);
}

#[test]
fn session_timeout_refresh_and_idle_connection() {
    let mut h = H::new();
    let sid = describe_setup_play(&mut h, true);
    assert_eq!(h.s.poll_timeout(), Some(60 * SEC));
    h.now = 50 * SEC;
    h.s.refresh(h.now, &sid);
    assert_eq!(h.s.poll_timeout(), Some(110 * SEC));
    h.s.handle_timeout(100 * SEC);
    assert!(h.events().is_empty());
    // A keep-alive refreshes too.
    h.now = 100 * SEC;
    assert_eq!(
        h.one(&format!(
            "GET_PARAMETER rtsp://h/live/cam RTSP/1.0\r\nCSeq: 9\r\nSession: {sid}\r\n\r\n"
        ))
        .status,
        200
    );
    h.s.handle_timeout(159 * SEC);
    assert!(h.events().is_empty());
    h.s.handle_timeout(160 * SEC);
    // The session ends, and the connection, idle as long, with it.
    assert_eq!(
        h.events(),
        vec![
            Event::SessionEnded {
                session: sid,
                path: "live/cam".into(),
                mode: Some(Mode::Play),
                reason: EndReason::Timeout
            },
            Event::TimedOut
        ]
    );
    // A connection that never set anything up idles out alone.
    let mut h2 = H::new();
    assert_eq!(h2.s.poll_timeout(), Some(10 * SEC));
    h2.s.handle_timeout(9 * SEC);
    assert!(h2.events().is_empty());
    h2.s.handle_timeout(10 * SEC);
    assert_eq!(h2.events(), vec![Event::TimedOut]);
    assert!(h.feed(b"OPTIONS * RTSP/1.0\r\nCSeq: 1\r\n\r\n").is_err());
}

#[test]
fn tcp_players_do_not_time_out() {
    let mut h = H::new();
    let sid = describe_setup_play(&mut h, false);
    assert_eq!(h.s.poll_timeout(), None);
    h.s.handle_timeout(1000 * SEC);
    assert!(h.events().is_empty());
    // Paused, the clock runs again.
    h.now = 1000 * SEC;
    h.one(&format!(
        "PAUSE rtsp://h/live/cam RTSP/1.0\r\nCSeq: 9\r\nSession: {sid}\r\n\r\n"
    ));
    assert_eq!(h.s.poll_timeout(), Some(1060 * SEC));
}

#[test]
fn bounded_sessions_and_tracks() {
    let mut h = H::with(Settings {
        max_sessions: 1,
        max_tracks: 2,
        ..Settings::default()
    });
    let sid = describe_setup_play(&mut h, false);
    // A second session: 503.
    assert_eq!(h.one("SETUP rtsp://h/live/cam/trackID=1 RTSP/1.0\r\nCSeq: 20\r\nTransport: RTP/AVP/TCP;unicast\r\n\r\n").status, 503);
    // A track index beyond the bound, in a session (paused first): 453.
    h.one(&format!(
        "PAUSE rtsp://h/live/cam RTSP/1.0\r\nCSeq: 21\r\nSession: {sid}\r\n\r\n"
    ));
    assert_eq!(h.one(&format!("SETUP rtsp://h/live/cam/trackID=5 RTSP/1.0\r\nCSeq: 22\r\nSession: {sid}\r\nTransport: RTP/AVP/TCP;unicast\r\n\r\n")).status, 453);
    // Another path in the same session: 459.
    assert_eq!(h.one(&format!("SETUP rtsp://h/other/trackID=1 RTSP/1.0\r\nCSeq: 23\r\nSession: {sid}\r\nTransport: RTP/AVP/TCP;unicast\r\n\r\n")).status, 459);
    // Interleaved channels already taken: 461.
    assert_eq!(h.one(&format!("SETUP rtsp://h/live/cam/trackID=1 RTSP/1.0\r\nCSeq: 24\r\nSession: {sid}\r\nTransport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n\r\n")).status, 461);
    // Too many pipelined requests while one is pending: failed.
    let mut h = H::new();
    h.feed(b"DESCRIBE rtsp://h/x RTSP/1.0\r\nCSeq: 1\r\n\r\n")
        .unwrap();
    let mut err = None;
    for i in 0..40 {
        if let Err(e) = h.feed(format!("OPTIONS * RTSP/1.0\r\nCSeq: {i}\r\n\r\n").as_bytes()) {
            err = Some(e);
            break;
        }
    }
    assert_eq!(err, Some(rill_rtsp::Error::QueueFull));
}

#[test]
fn close_ends_sessions() {
    let mut h = H::new();
    let sid = describe_setup_play(&mut h, false);
    h.s.close();
    assert_eq!(
        h.events(),
        vec![
            Event::SessionEnded {
                session: sid,
                path: "live/cam".into(),
                mode: Some(Mode::Play),
                reason: EndReason::Closed
            },
            Event::Closed
        ]
    );
}
