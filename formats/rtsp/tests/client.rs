//! The client session against the server session, bytes piped in memory:
//! play (TCP and UDP) and publish, with Digest and Basic auth.

use bytes::Bytes;
use rill_rtsp::{
    ClientEvent, ClientSession, ClientSettings, Event, Limits, Lower, ServerSession, Settings,
    SetupAnswer, SetupTrack, TrackStart,
};

const SDP: &str = "v=0\r\ns=x\r\nm=video 0 RTP/AVP 96\r\na=control:trackID=0\r\nm=audio 0 RTP/AVP 97\r\na=control:trackID=1\r\n";

struct Pair {
    c: ClientSession,
    s: ServerSession,
    now: u64,
    /// Require this password (Basic or Digest).
    password: Option<&'static str>,
    client_events: Vec<ClientEvent>,
    server_log: Vec<String>,
}

impl Pair {
    fn pump(&mut self) {
        for _ in 0..50 {
            let mut moved = false;
            while let Some(b) = self.c.poll_transmit() {
                self.s.feed(self.now, &b).unwrap();
                moved = true;
            }
            while let Some(ev) = self.s.poll_event() {
                self.answer(ev);
            }
            while let Some(b) = self.s.poll_transmit() {
                self.c.feed(self.now, &b).unwrap();
                moved = true;
            }
            while let Some(ev) = self.c.poll_event() {
                self.client_events.push(ev);
            }
            if !moved {
                return;
            }
        }
    }

    fn admitted(&self, c: &Option<rill_rtsp::Credentials>) -> bool {
        match self.password {
            None => true,
            Some(p) => c.as_ref().is_some_and(|c| c.verify(p)),
        }
    }

    fn answer(&mut self, ev: Event) {
        match ev {
            Event::Describe {
                request,
                path,
                credentials,
                ..
            } => {
                self.server_log.push(format!("DESCRIBE {path}"));
                if !self.admitted(&credentials) {
                    self.s.reject(request, 401).unwrap();
                } else {
                    self.s.answer_describe(request, SDP).unwrap();
                }
            }
            Event::Announce {
                request,
                path,
                credentials,
                ..
            } => {
                self.server_log.push(format!("ANNOUNCE {path}"));
                if !self.admitted(&credentials) {
                    self.s.reject(request, 401).unwrap();
                } else {
                    self.s.accept_announce(request).unwrap();
                }
            }
            Event::Setup {
                request,
                track,
                transport,
                ..
            } => {
                self.server_log
                    .push(format!("SETUP {track} {:?}", transport.lower));
                let server_port = (transport.lower == Lower::Udp).then_some((7000, 7001));
                self.s
                    .accept_setup(
                        request,
                        SetupAnswer {
                            server_port,
                            ssrc: None,
                        },
                    )
                    .unwrap();
            }
            Event::Play {
                request, tracks, ..
            } => {
                self.server_log.push("PLAY".into());
                let starts: Vec<_> = tracks
                    .iter()
                    .map(|&t| TrackStart {
                        track: t,
                        seq: 7,
                        rtptime: 99,
                    })
                    .collect();
                self.s.accept_play(request, None, &starts).unwrap();
            }
            Event::Record { request, .. } => {
                self.server_log.push("RECORD".into());
                self.s.accept_record(request).unwrap();
            }
            Event::Interleaved { channel, track, .. } => {
                self.server_log.push(format!("RTP {channel} {track:?}"));
            }
            other => self.server_log.push(format!("{other:?}")),
        }
    }
}

fn pair(c: ClientSession, password: Option<&'static str>) -> Pair {
    Pair {
        c,
        s: ServerSession::new(Limits::default(), Settings::default(), 0),
        now: 0,
        password,
        client_events: Vec::new(),
        server_log: Vec::new(),
    }
}

fn play(lower: Lower, url: &str, password: Option<&'static str>) -> Pair {
    let settings = ClientSettings {
        url: url.into(),
        ..ClientSettings::default()
    };
    let mut p = pair(ClientSession::play(settings, 0).unwrap(), password);
    p.pump();
    let Some(ClientEvent::Described { sdp, content_base }) = p.client_events.pop() else {
        panic!("{:?} {:?}", p.client_events, p.server_log)
    };
    assert_eq!(&sdp[..], SDP.as_bytes());
    assert!(content_base.ends_with("/live/cam/"));
    let tracks = (0..2)
        .map(|i| SetupTrack {
            control: format!("trackID={i}"),
            lower,
            client_port: Some((6000 + 2 * i, 6001 + 2 * i)),
        })
        .collect();
    p.c.setup(tracks).unwrap();
    p.pump();
    p
}

#[test]
fn plays_over_tcp() {
    let mut p = play(Lower::Tcp, "rtsp://h:8554/live/cam", None);
    assert_eq!(
        p.server_log,
        ["DESCRIBE live/cam", "SETUP 0 Tcp", "SETUP 1 Tcp", "PLAY"]
    );
    let ev = &p.client_events;
    assert!(
        matches!(&ev[0], ClientEvent::SetUp { track: 0, transport } if transport.interleaved == Some((0, 1)))
    );
    assert!(
        matches!(&ev[1], ClientEvent::SetUp { track: 1, transport } if transport.interleaved == Some((2, 3)))
    );
    let ClientEvent::Playing { rtp_info, .. } = &ev[2] else {
        panic!("{ev:?}")
    };
    assert_eq!(rtp_info.len(), 2);
    assert_eq!(rtp_info[1].url, "rtsp://h:8554/live/cam/trackID=1");
    assert_eq!((rtp_info[1].seq, rtp_info[1].rtptime), (Some(7), Some(99)));
    // Media both ways.
    let sid = p.c.session_id().unwrap().to_string();
    let (rtp, _) = p.s.channels(&sid, 1).unwrap();
    p.s.send_interleaved(rtp, Bytes::from_static(b"\x80\x61media"))
        .unwrap();
    p.c.send_interleaved(3, Bytes::from_static(b"\x81\xc9rr"))
        .unwrap();
    p.pump();
    assert_eq!(
        p.client_events[3],
        ClientEvent::Interleaved {
            channel: 2,
            payload: Bytes::from_static(b"\x80\x61media")
        }
    );
    assert_eq!(p.server_log.last().unwrap(), "RTP 3 Some(1)");
    // Keep-alives at half the 60 s timeout, answered.
    assert_eq!(p.c.poll_timeout(), Some(30_000_000));
    p.now = 30_000_000;
    p.c.handle_timeout(p.now);
    p.pump();
    assert_eq!(p.c.poll_timeout(), Some(60_000_000));
    // (A TCP player's session does not time out on the server.)
    assert_eq!(p.s.poll_timeout(), None);
    p.c.teardown();
    p.pump();
    assert_eq!(p.client_events.last(), Some(&ClientEvent::Closed));
    assert!(p.server_log.last().unwrap().starts_with("SessionEnded"));
}

#[test]
fn plays_over_udp_with_digest() {
    let mut p = play(Lower::Udp, "rtsp://alice:secret@h/live/cam", Some("secret"));
    assert_eq!(
        p.server_log,
        [
            "DESCRIBE live/cam",
            "DESCRIBE live/cam",
            "SETUP 0 Udp",
            "SETUP 1 Udp",
            "PLAY"
        ]
    );
    let ClientEvent::SetUp { transport, .. } = &p.client_events[1] else {
        panic!()
    };
    assert_eq!(transport.client_port, Some((6002, 6003)));
    assert_eq!(transport.server_port, Some((7000, 7001)));
    assert!(matches!(p.client_events[2], ClientEvent::Playing { .. }));
    // A UDP player's session lives on keep-alives (authenticated too).
    assert_eq!(p.s.poll_timeout(), Some(60_000_000));
    p.now = 30_000_000;
    p.c.handle_timeout(p.now);
    p.pump();
    assert_eq!(p.s.poll_timeout(), Some(90_000_000));
    assert_eq!(p.client_events.len(), 3);
}

#[test]
fn wrong_password_is_refused() {
    let settings = ClientSettings {
        url: "rtsp://h/live/cam".into(),
        user: Some("alice".into()),
        password: Some("guess".into()),
        ..ClientSettings::default()
    };
    let mut p = pair(ClientSession::play(settings, 0).unwrap(), Some("secret"));
    p.pump();
    assert_eq!(
        p.client_events,
        vec![ClientEvent::Refused {
            method: rill_rtsp::Method::Describe,
            status: 401
        }]
    );
}

#[test]
fn publishes_over_tcp() {
    let settings = ClientSettings {
        url: "rtsp://h/live/pub?k=v".into(),
        ..ClientSettings::default()
    };
    let tracks = (0..2)
        .map(|i| SetupTrack {
            control: format!("trackID={i}"),
            lower: Lower::Tcp,
            client_port: None,
        })
        .collect();
    let mut p = pair(
        ClientSession::publish(settings, SDP.into(), tracks, 0).unwrap(),
        None,
    );
    p.pump();
    assert_eq!(
        p.server_log,
        ["ANNOUNCE live/pub", "SETUP 0 Tcp", "SETUP 1 Tcp", "RECORD"]
    );
    assert_eq!(p.client_events.last(), Some(&ClientEvent::Recording));
    p.c.send_interleaved(2, Bytes::from_static(b"\x80\x60x"))
        .unwrap();
    p.pump();
    assert_eq!(p.server_log.last().unwrap(), "RTP 2 Some(1)");
}

#[test]
fn unanswered_request_times_out() {
    let settings = ClientSettings {
        url: "rtsp://h/x".into(),
        ..ClientSettings::default()
    };
    let mut c = ClientSession::play(settings, 0).unwrap();
    assert!(c.poll_transmit().is_some());
    assert_eq!(c.poll_timeout(), Some(10_000_000));
    c.handle_timeout(10_000_000);
    assert_eq!(c.poll_event(), Some(ClientEvent::TimedOut));
}

#[test]
fn an_unreadable_answer_fails_the_session() {
    // A web server where an RTSP server should be.
    let settings = ClientSettings {
        url: "rtsp://h/live/x".into(),
        ..ClientSettings::default()
    };
    let mut c = ClientSession::play(settings.clone(), 0).unwrap();
    while c.poll_transmit().is_some() {}
    assert!(c
        .feed(1, b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
        .is_err());
    assert!(
        c.feed(2, b"RTSP/1.0 200 OK\r\n\r\n").is_err(),
        "failed for good"
    );
    // A malformed message with another CSeq is not the answer: skipped.
    let mut c = ClientSession::play(settings, 0).unwrap();
    while c.poll_transmit().is_some() {}
    c.feed(1, b"RTSP/1.0 2x0 OK\r\nCSeq: 77\r\n\r\n").unwrap();
    c.feed(2, b"RTSP/1.0 200 OK\r\nCSeq: 1\r\n\r\n").unwrap();
    assert!(c.poll_event().is_none(), "OPTIONS answered, DESCRIBE sent");
    assert!(c.poll_transmit().is_some());
}
