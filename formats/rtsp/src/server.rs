//! The server side of one RTSP connection as a sans-IO state machine.
//!
//! Bytes and time (µs since an epoch of the caller's choosing) in, events
//! and bytes out:
//!
//! ```text
//! s = ServerSession::new(limits, settings, now);
//! loop {
//!     wait for input or s.poll_timeout(), whichever is first;
//!     on input:   s.feed(now, &buf[..n])?;      // Err → write what is queued, close
//!     on timeout: s.handle_timeout(now);
//!     while let Some(ev) = s.poll_event() { handle(ev) }  // may call answer_*/accept_*/reject
//!     while let Some(b) = s.poll_transmit() { socket.write_all(&b)? }
//! }
//! ```
//!
//! OPTIONS, PAUSE, TEARDOWN, GET_PARAMETER and SET_PARAMETER are answered
//! by the session. DESCRIBE, ANNOUNCE, SETUP, PLAY and RECORD become events
//! that the caller answers, at once or later (a stream not yet published,
//! admission pending): [`ServerSession::answer_describe`],
//! [`ServerSession::accept_announce`], [`ServerSession::accept_setup`],
//! [`ServerSession::accept_play`], [`ServerSession::accept_record`], or
//! [`ServerSession::reject`] with a status (401 adds the challenges).
//! While an answer is pending, later input waits in order (bounded by
//! [`Limits::max_queued_requests`] and the reader's capacity).
//!
//! The URL path is the stream path (`rtsp://host:8554/live/cam` →
//! `live/cam`); a track control after it (`/trackID=0`, ffmpeg's
//! `/streamid=0`) becomes the track index.
//!
//! Sessions (RTSP's, several per connection, bounded) time out after
//! [`Settings::session_timeout`] without a request, an interleaved frame on
//! their channels, or [`ServerSession::refresh`] (the caller calls it on
//! RTCP over UDP); a session playing over TCP only does not (players need
//! not send anything there: the connection's end ends it). A connection
//! without sessions times out after [`Settings::idle_timeout`] of silence.

use std::collections::VecDeque;

use bytes::Bytes;

use crate::auth::{random_hex, Challenge, Credentials};
use crate::error::Error;
use crate::limits::Limits;
use crate::message::{interleaved_header, Item, Method, Reader, Request, Response, Url};
use crate::transport::{public, Lower, Mode, Range, RtpInfo, SessionHeader, Transport};

/// Server settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// A session without a request or media for this long ends, µs
    /// (60 s, announced as `timeout=60`).
    pub session_timeout: u64,
    /// A connection without sessions that receives nothing for this long
    /// times out, µs (10 s): a client that connects and sends nothing, or
    /// stops half-way through a request, is not kept.
    pub idle_timeout: u64,
    /// Sessions per connection.
    pub max_sessions: usize,
    /// Tracks per session (at most 127: each takes two interleaved
    /// channels).
    pub max_tracks: usize,
    /// `Server` header.
    pub server: String,
    /// Realm of the 401 challenges.
    pub realm: String,
    /// Offer Basic besides Digest in a 401.
    pub basic_auth: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            session_timeout: 60_000_000,
            idle_timeout: 10_000_000,
            max_sessions: 4,
            max_tracks: 16,
            server: "Rill".into(),
            realm: "Rill".into(),
            basic_auth: true,
        }
    }
}

/// Identifies a request awaiting the caller's answer.
pub type RequestId = u64;

/// Why a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    /// TEARDOWN.
    Teardown,
    /// Nothing heard for the session timeout.
    Timeout,
    /// The connection closed ([`ServerSession::close`]) or failed.
    Closed,
}

/// What happened, for the caller.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// DESCRIBE: answer with [`ServerSession::answer_describe`] (the SDP of
    /// `path`) or [`ServerSession::reject`] (404, 401, ...).
    Describe {
        /// Answer with this.
        request: RequestId,
        /// Stream path (`live/cam`).
        path: String,
        /// Query without `?`.
        query: Option<String>,
        /// The request URI.
        url: String,
        /// From `Authorization`.
        credentials: Option<Credentials>,
    },
    /// ANNOUNCE: a publisher's SDP. Accept with
    /// [`ServerSession::accept_announce`] or reject.
    Announce {
        /// Answer with this.
        request: RequestId,
        /// Stream path.
        path: String,
        /// Query.
        query: Option<String>,
        /// The SDP (body).
        sdp: Bytes,
        /// Content-Type, if given.
        content_type: Option<String>,
        /// From `Authorization`.
        credentials: Option<Credentials>,
    },
    /// SETUP of one track: accept with [`ServerSession::accept_setup`]
    /// (for UDP give the server's port pair) or reject.
    Setup {
        /// Answer with this.
        request: RequestId,
        /// The session (new when this is its first track).
        session: String,
        /// Stream path (the control removed).
        path: String,
        /// Query.
        query: Option<String>,
        /// Track index (from the control's number, else the next one).
        track: usize,
        /// The control part of the URL (`trackID=0`, may be empty).
        control: String,
        /// Play or record.
        mode: Mode,
        /// The transport chosen: UDP with the client's ports, or TCP with
        /// the interleaved channels assigned.
        transport: Transport,
        /// From `Authorization`.
        credentials: Option<Credentials>,
    },
    /// PLAY: accept with [`ServerSession::accept_play`] (Range, RTP-Info)
    /// and start sending, or reject.
    Play {
        /// Answer with this.
        request: RequestId,
        /// Session.
        session: String,
        /// Stream path.
        path: String,
        /// Query.
        query: Option<String>,
        /// Range asked for (npt), if any.
        range: Option<Range>,
        /// The tracks set up.
        tracks: Vec<usize>,
        /// From `Authorization`.
        credentials: Option<Credentials>,
    },
    /// RECORD: accept with [`ServerSession::accept_record`] or reject.
    Record {
        /// Answer with this.
        request: RequestId,
        /// Session.
        session: String,
        /// Stream path.
        path: String,
        /// Query.
        query: Option<String>,
        /// The tracks set up.
        tracks: Vec<usize>,
        /// From `Authorization`.
        credentials: Option<Credentials>,
    },
    /// PAUSE was answered: stop sending to (or expecting from) `session`.
    Paused {
        /// Session.
        session: String,
    },
    /// An interleaved frame from the client.
    Interleaved {
        /// Its channel.
        channel: u8,
        /// The session and track owning the channel, if any.
        session: Option<String>,
        /// Track.
        track: Option<usize>,
        /// Odd channel of the pair (RTCP).
        rtcp: bool,
        /// One RTP or RTCP packet.
        payload: Bytes,
    },
    /// A session ended; release what it held.
    SessionEnded {
        /// Session.
        session: String,
        /// Its stream path.
        path: String,
        /// Whether it played, recorded or neither.
        mode: Option<Mode>,
        /// Why.
        reason: EndReason,
    },
    /// The connection had no session and heard nothing for the session
    /// timeout: it is failed, close it.
    TimedOut,
    /// [`ServerSession::close`] was called; the cleanup events precede it.
    Closed,
}

/// The caller's part of a SETUP answer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SetupAnswer {
    /// The server's RTP/RTCP port pair (UDP; required there).
    pub server_port: Option<(u16, u16)>,
    /// SSRC of the server's stream for this track (play).
    pub ssrc: Option<u32>,
}

/// RTP-Info of one track in a PLAY answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrackStart {
    /// Track index.
    pub track: usize,
    /// Sequence number of the first packet.
    pub seq: u16,
    /// RTP timestamp of the first packet.
    pub rtptime: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Ready,
    Playing,
    Recording,
}

#[derive(Debug, Clone)]
struct Track {
    index: usize,
    url: String,
    transport: Transport,
}

#[derive(Debug, Clone)]
struct Sess {
    id: String,
    path: String,
    mode: Mode,
    state: State,
    tracks: Vec<Track>,
    last_seen: u64,
}

impl Sess {
    /// A session playing over TCP only does not time out: players need not
    /// send anything (ffmpeg sends no keep-alive over TCP), and the
    /// connection's own end ends it.
    fn exempt(&self) -> bool {
        self.state == State::Playing && self.tracks.iter().all(|t| t.transport.lower == Lower::Tcp)
    }
}

#[derive(Debug)]
enum Pending {
    Describe {
        url: String,
        path: String,
    },
    Announce {
        path: String,
    },
    Setup {
        session: String,
        new: Option<(String, Mode)>,
        track: Track,
    },
    Play {
        session: String,
    },
    Record {
        session: String,
    },
}

#[derive(Debug)]
struct PendingReq {
    id: RequestId,
    cseq: Option<u32>,
    session: Option<String>,
    what: Pending,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Open,
    Failed,
    Closed,
}

/// The methods answered in `Public`.
pub const METHODS: [Method; 10] = [
    Method::Options,
    Method::Describe,
    Method::Announce,
    Method::Setup,
    Method::Play,
    Method::Pause,
    Method::Record,
    Method::Teardown,
    Method::GetParameter,
    Method::SetParameter,
];

/// One server connection.
#[derive(Debug)]
pub struct ServerSession {
    limits: Limits,
    settings: Settings,
    reader: Reader,
    phase: Phase,
    sessions: Vec<Sess>,
    pending: Option<PendingReq>,
    inbox: VecDeque<Item>,
    inbox_requests: usize,
    next_request: RequestId,
    events: VecDeque<Event>,
    out: VecDeque<Bytes>,
    out_bytes: usize,
    last_input: u64,
    now: u64,
    nonce: String,
    /// The last path described or announced here (for SETUP's control split).
    base_path: Option<String>,
    announced: Option<String>,
    /// Session ids 1, 2, ... instead of random ones (fuzzing).
    predictable_ids: bool,
    sessions_made: u64,
}

impl ServerSession {
    /// A session for a new connection at `now` (µs).
    pub fn new(limits: Limits, settings: Settings, now: u64) -> ServerSession {
        let reader = Reader::new(limits.clone());
        ServerSession {
            limits,
            settings,
            reader,
            phase: Phase::Open,
            sessions: Vec::new(),
            pending: None,
            inbox: VecDeque::new(),
            inbox_requests: 0,
            next_request: 1,
            events: VecDeque::new(),
            out: VecDeque::new(),
            out_bytes: 0,
            last_input: now,
            now,
            nonce: random_hex(now),
            base_path: None,
            announced: None,
            predictable_ids: false,
            sessions_made: 0,
        }
    }

    /// Session ids 1, 2, 3, ... instead of random ones, so that fuzz
    /// inputs can name them. Never for a real server.
    #[doc(hidden)]
    pub fn use_predictable_session_ids(&mut self) {
        self.predictable_ids = true;
    }

    /// The Digest nonce this connection's challenges carry.
    pub fn nonce(&self) -> &str {
        &self.nonce
    }

    /// Feeds bytes read from the connection. After an error (a stream that
    /// cannot be parsed further, too much queued) the session answered 400
    /// if it could and is failed: write what is queued and close.
    pub fn feed(&mut self, now: u64, mut data: &[u8]) -> Result<(), Error> {
        if self.phase != Phase::Open {
            return Err(Error::Closed);
        }
        self.now = self.now.max(now);
        self.last_input = self.now;
        while !data.is_empty() {
            let n = self.reader.push(data);
            data = &data[n..];
            loop {
                let item = match self.reader.next_item() {
                    Ok(Some(i)) => i,
                    Ok(None) => break,
                    Err(e) => {
                        let status = match e {
                            Error::BodyTooLarge { .. } => 413,
                            _ => 400,
                        };
                        let mut r = Response::new(status, None);
                        r.headers.add("Server", self.settings.server.clone());
                        self.send_response(r);
                        return self.fail(e);
                    }
                };
                if let Err(e) = self.enqueue(item) {
                    return self.fail(e);
                }
            }
            if n == 0 {
                // Cannot happen: the reader always makes room by parsing.
                return self.fail(Error::Protocol("reader stalled"));
            }
        }
        self.process();
        Ok(())
    }

    fn fail(&mut self, e: Error) -> Result<(), Error> {
        self.phase = Phase::Failed;
        self.inbox.clear();
        self.pending = None;
        self.end_all(EndReason::Closed);
        Err(e)
    }

    fn enqueue(&mut self, item: Item) -> Result<(), Error> {
        if !matches!(item, Item::Interleaved { .. }) {
            self.inbox_requests += 1;
            if self.pending.is_some() && self.inbox_requests > self.limits.max_queued_requests {
                return Err(Error::QueueFull);
            }
        }
        self.inbox.push_back(item);
        if self.pending.is_none() {
            self.process();
        } else {
            let bytes: usize = self
                .inbox
                .iter()
                .map(|i| match i {
                    Item::Interleaved { payload, .. } => payload.len() + 4,
                    Item::Request(r) => r.body.len() + 256,
                    _ => 256,
                })
                .sum();
            if bytes > self.reader.capacity() * 4 {
                return Err(Error::QueueFull);
            }
        }
        Ok(())
    }

    fn process(&mut self) {
        while self.pending.is_none() && self.phase == Phase::Open {
            let Some(item) = self.inbox.pop_front() else {
                break;
            };
            match item {
                Item::Interleaved { channel, payload } => self.on_interleaved(channel, payload),
                Item::Request(r) => {
                    self.inbox_requests = self.inbox_requests.saturating_sub(1);
                    self.on_request(r);
                }
                Item::Malformed { cseq, .. } => {
                    self.inbox_requests = self.inbox_requests.saturating_sub(1);
                    self.respond(400, cseq, None, |_| {});
                }
                Item::Response(_) => {
                    // A client answering something we never asked: ignore.
                    self.inbox_requests = self.inbox_requests.saturating_sub(1);
                }
            }
        }
    }

    fn on_interleaved(&mut self, channel: u8, payload: Bytes) {
        let now = self.now;
        let mut owner = None;
        for s in &mut self.sessions {
            for t in &s.tracks {
                if let Some((a, b)) = t.transport.interleaved {
                    if t.transport.lower == Lower::Tcp && (channel == a || channel == b) {
                        owner = Some((s.id.clone(), t.index, channel == b && a != b));
                    }
                }
            }
            if owner.is_some() {
                s.last_seen = now;
                break;
            }
        }
        let (session, track, rtcp) = match owner {
            Some((s, t, r)) => (Some(s), Some(t), r),
            None => (None, None, channel % 2 == 1),
        };
        self.events.push_back(Event::Interleaved {
            channel,
            session,
            track,
            rtcp,
            payload,
        });
    }

    fn respond(
        &mut self,
        status: u16,
        cseq: Option<u32>,
        session: Option<&str>,
        f: impl FnOnce(&mut Response),
    ) {
        let mut r = Response::new(status, cseq);
        r.headers.add("Server", self.settings.server.clone());
        if let Some(id) = session {
            let h = SessionHeader {
                id: id.to_string(),
                timeout: Some((self.settings.session_timeout / 1_000_000) as u32),
            };
            r.headers.add("Session", h.to_string());
        }
        f(&mut r);
        self.send_response(r);
    }

    fn send_response(&mut self, r: Response) {
        let b = Bytes::from(r.to_bytes());
        self.out_bytes += b.len();
        self.out.push_back(b);
    }

    fn session_index(&self, id: &str) -> Option<usize> {
        self.sessions.iter().position(|s| s.id == id)
    }

    fn on_request(&mut self, req: Request) {
        let cseq = req.headers.cseq();
        if cseq.is_none() {
            return self.respond(400, None, None, |_| {});
        }
        if req.version != crate::message::VERSION {
            return self.respond(505, cseq, None, |_| {});
        }
        if let Some(r) = req.headers.get("Require") {
            let r = r.to_string();
            return self.respond(551, cseq, None, |resp| resp.headers.add("Unsupported", r));
        }
        // A named session must exist.
        let session = match req.headers.get("Session").map(SessionHeader::parse) {
            None => None,
            Some(Err(_)) => return self.respond(454, cseq, None, |_| {}),
            Some(Ok(h)) => match self.session_index(&h.id) {
                Some(i) => {
                    self.sessions[i].last_seen = self.now;
                    Some(h.id)
                }
                None if req.method == Method::Options => None,
                None => return self.respond(454, cseq, None, |_| {}),
            },
        };
        let url = match Url::parse(&req.uri) {
            Ok(u) => u,
            Err(_) => return self.respond(400, cseq, session.as_deref(), |_| {}),
        };
        let credentials = req
            .headers
            .get("Authorization")
            .and_then(Credentials::parse);
        let credentials = match credentials {
            Some(Credentials::Digest(mut d)) => {
                d.method = req.method.as_str().to_string();
                // A nonce from elsewhere proves nothing: ask again.
                (d.nonce == self.nonce).then_some(Credentials::Digest(d))
            }
            other => other,
        };
        match req.method {
            Method::Options => {
                let p = public(&METHODS);
                self.respond(200, cseq, session.as_deref(), |r| {
                    r.headers.add("Public", p)
                });
            }
            Method::GetParameter | Method::SetParameter => {
                self.respond(200, cseq, session.as_deref(), |_| {});
            }
            Method::Describe => {
                let request = self.begin(
                    cseq,
                    None,
                    Pending::Describe {
                        url: req.uri.clone(),
                        path: url.path.clone(),
                    },
                );
                self.events.push_back(Event::Describe {
                    request,
                    path: url.path,
                    query: url.query,
                    url: req.uri,
                    credentials,
                });
            }
            Method::Announce => {
                if req.body.is_empty() {
                    return self.respond(400, cseq, None, |_| {});
                }
                if url.path.is_empty() {
                    return self.respond(404, cseq, None, |_| {});
                }
                let request = self.begin(
                    cseq,
                    None,
                    Pending::Announce {
                        path: url.path.clone(),
                    },
                );
                self.events.push_back(Event::Announce {
                    request,
                    path: url.path,
                    query: url.query,
                    sdp: req.body,
                    content_type: req.headers.get("Content-Type").map(str::to_string),
                    credentials,
                });
            }
            Method::Setup => self.on_setup(req, url, cseq, session, credentials),
            Method::Play | Method::Record => {
                let Some(id) = session else {
                    return self.respond(454, cseq, None, |_| {});
                };
                let Some(i) = self.session_index(&id) else {
                    return self.respond(454, cseq, None, |_| {});
                };
                let s = &self.sessions[i];
                let want = if req.method == Method::Play {
                    Mode::Play
                } else {
                    Mode::Record
                };
                let ok_state = match want {
                    Mode::Play => s.state != State::Recording,
                    Mode::Record => s.state != State::Playing,
                };
                if s.mode != want || !ok_state {
                    return self.respond(455, cseq, Some(&id), |r| {
                        r.headers
                            .add("Allow", "OPTIONS, PAUSE, TEARDOWN, GET_PARAMETER")
                    });
                }
                let tracks: Vec<usize> = s.tracks.iter().map(|t| t.index).collect();
                let path = s.path.clone();
                let range = match req.headers.get("Range").map(Range::parse) {
                    None | Some(Err(Error::Unsupported(_))) => None,
                    Some(Ok(r)) => Some(r),
                    Some(Err(_)) => return self.respond(457, cseq, Some(&id), |_| {}),
                };
                if want == Mode::Play {
                    let request = self.begin(
                        cseq,
                        Some(id.clone()),
                        Pending::Play {
                            session: id.clone(),
                        },
                    );
                    self.events.push_back(Event::Play {
                        request,
                        session: id,
                        path,
                        query: url.query,
                        range,
                        tracks,
                        credentials,
                    });
                } else {
                    let request = self.begin(
                        cseq,
                        Some(id.clone()),
                        Pending::Record {
                            session: id.clone(),
                        },
                    );
                    self.events.push_back(Event::Record {
                        request,
                        session: id,
                        path,
                        query: url.query,
                        tracks,
                        credentials,
                    });
                }
            }
            Method::Pause => {
                let Some(id) = session else {
                    return self.respond(454, cseq, None, |_| {});
                };
                if let Some(i) = self.session_index(&id) {
                    self.sessions[i].state = State::Ready;
                }
                self.respond(200, cseq, Some(&id), |_| {});
                self.events.push_back(Event::Paused { session: id });
            }
            Method::Teardown => {
                let Some(id) = session else {
                    return self.respond(454, cseq, None, |_| {});
                };
                self.respond(200, cseq, Some(&id), |_| {});
                if let Some(i) = self.session_index(&id) {
                    let s = self.sessions.remove(i);
                    self.events.push_back(Event::SessionEnded {
                        session: s.id,
                        path: s.path,
                        mode: Some(s.mode),
                        reason: EndReason::Teardown,
                    });
                }
            }
            Method::Redirect | Method::Other(_) => {
                self.respond(501, cseq, session.as_deref(), |_| {});
            }
        }
    }

    fn begin(&mut self, cseq: Option<u32>, session: Option<String>, what: Pending) -> RequestId {
        let id = self.next_request;
        self.next_request += 1;
        self.pending = Some(PendingReq {
            id,
            cseq,
            session,
            what,
        });
        id
    }

    fn on_setup(
        &mut self,
        req: Request,
        url: Url,
        cseq: Option<u32>,
        session: Option<String>,
        credentials: Option<Credentials>,
    ) {
        let sid = session.as_deref();
        // Which transport.
        let Some(header) = req.headers.get("Transport") else {
            return self.respond(461, cseq, sid, |_| {});
        };
        let chosen = Transport::parse_list(header).into_iter().find(|t| {
            t.unicast
                && t.profile.eq_ignore_ascii_case("RTP/AVP")
                && (t.lower == Lower::Tcp || t.client_port.is_some())
        });
        let Some(mut transport) = chosen else {
            return self.respond(461, cseq, sid, |_| {});
        };
        let mode = transport.mode.unwrap_or(Mode::Play);
        // Path and control.
        let existing = sid.and_then(|id| self.session_index(id));
        let base = match existing {
            Some(i) => Some(self.sessions[i].path.clone()),
            None => self.base_path.clone(),
        };
        let (path, control) = split_control(&url.path, base.as_deref());
        if let Some(i) = existing {
            let s = &self.sessions[i];
            if s.path != path {
                return self.respond(459, cseq, sid, |_| {});
            }
            if s.mode != mode || s.state != State::Ready {
                return self.respond(455, cseq, sid, |_| {});
            }
        } else if self.sessions.len() >= self.settings.max_sessions {
            return self.respond(503, cseq, None, |_| {});
        }
        if mode == Mode::Record && self.announced.as_deref() != Some(path.as_str()) {
            return self.respond(455, cseq, sid, |_| {});
        }
        let tracks: &[Track] = match existing {
            Some(i) => &self.sessions[i].tracks,
            None => &[],
        };
        let index = trailing_number(&control).unwrap_or(tracks.len());
        let max_tracks = self.settings.max_tracks.min(127);
        if index >= max_tracks || tracks.len() >= max_tracks {
            return self.respond(453, cseq, sid, |_| {});
        }
        if tracks.iter().any(|t| t.index == index) {
            return self.respond(455, cseq, sid, |_| {});
        }
        if transport.lower == Lower::Tcp {
            let used: Vec<u8> = self
                .sessions
                .iter()
                .flat_map(|s| s.tracks.iter())
                .filter_map(|t| t.transport.interleaved)
                .flat_map(|(a, b)| [a, b])
                .collect();
            match transport.interleaved {
                Some((a, b)) => {
                    if used.contains(&a) || used.contains(&b) {
                        return self.respond(461, cseq, sid, |_| {});
                    }
                }
                None => {
                    let want = (index * 2) as u8;
                    let free = |c: u8| !used.contains(&c) && !used.contains(&(c + 1));
                    let c = if free(want) {
                        Some(want)
                    } else {
                        (0..127u8).map(|k| k * 2).find(|&c| free(c))
                    };
                    let Some(c) = c else {
                        return self.respond(453, cseq, sid, |_| {});
                    };
                    transport.interleaved = Some((c, c + 1));
                }
            }
            transport.client_port = None;
        } else {
            transport.interleaved = None;
        }
        transport.mode = Some(mode);
        let (session, new) = match session {
            Some(id) => (id, None),
            None => {
                self.sessions_made += 1;
                let id = if self.predictable_ids {
                    self.sessions_made.to_string()
                } else {
                    random_hex(self.now ^ self.next_request)
                };
                (id, Some((path.clone(), mode)))
            }
        };
        let track = Track {
            index,
            url: req.uri.clone(),
            transport: transport.clone(),
        };
        let request = self.begin(
            cseq,
            Some(session.clone()),
            Pending::Setup {
                session: session.clone(),
                new,
                track,
            },
        );
        self.events.push_back(Event::Setup {
            request,
            session,
            path,
            query: url.query,
            track: index,
            control,
            mode,
            transport,
            credentials,
        });
    }

    /// Takes the pending request `request` if it is of the kind `fits`
    /// says.
    fn take_pending(
        &mut self,
        request: RequestId,
        fits: fn(&Pending) -> bool,
    ) -> Result<PendingReq, Error> {
        if self.phase != Phase::Open {
            return Err(Error::Closed);
        }
        match &self.pending {
            Some(p) if p.id == request && fits(&p.what) => {}
            Some(p) if p.id == request => {
                return Err(Error::InvalidState("answer does not fit the request"))
            }
            _ => return Err(Error::InvalidState("no such request pending")),
        }
        self.pending
            .take()
            .ok_or(Error::InvalidState("no such request pending"))
    }

    /// Answers a DESCRIBE with the SDP of its path.
    pub fn answer_describe(&mut self, request: RequestId, sdp: &str) -> Result<(), Error> {
        let p = self.take_pending(request, |w| matches!(w, Pending::Describe { .. }))?;
        let Pending::Describe { url, path } = &p.what else {
            return Err(Error::InvalidState("answer does not fit the request"));
        };
        let base = if url.ends_with('/') {
            url.clone()
        } else {
            format!("{url}/")
        };
        self.base_path = Some(path.clone());
        let body = Bytes::copy_from_slice(sdp.as_bytes());
        self.respond(200, p.cseq, None, |r| {
            r.headers.add("Content-Base", base);
            r.headers.add("Content-Type", "application/sdp");
            r.body = body;
        });
        self.process();
        Ok(())
    }

    /// Accepts an ANNOUNCE: the SDP was taken; SETUP with `mode=record` may
    /// follow for its path.
    pub fn accept_announce(&mut self, request: RequestId) -> Result<(), Error> {
        let p = self.take_pending(request, |w| matches!(w, Pending::Announce { .. }))?;
        let Pending::Announce { path } = &p.what else {
            return Err(Error::InvalidState("answer does not fit the request"));
        };
        self.base_path = Some(path.clone());
        self.announced = Some(path.clone());
        self.respond(200, p.cseq, None, |_| {});
        self.process();
        Ok(())
    }

    /// Accepts a SETUP; returns the transport answered (UDP needs
    /// `answer.server_port`, else the SETUP fails with 461 and `Err`).
    pub fn accept_setup(
        &mut self,
        request: RequestId,
        answer: SetupAnswer,
    ) -> Result<Transport, Error> {
        let p = self.take_pending(request, |w| matches!(w, Pending::Setup { .. }))?;
        let cseq = p.cseq;
        let Pending::Setup {
            session,
            new,
            track,
        } = p.what
        else {
            return Err(Error::InvalidState("answer does not fit the request"));
        };
        let mut track = track;
        if track.transport.lower == Lower::Udp {
            match answer.server_port {
                Some(sp) => track.transport.server_port = Some(sp),
                None => {
                    let sid = new.is_none().then_some(session.as_str());
                    self.respond(461, cseq, sid, |_| {});
                    self.process();
                    return Err(Error::InvalidState("UDP SETUP without server ports"));
                }
            }
        }
        if track.transport.mode == Some(Mode::Play) {
            track.transport.ssrc = answer.ssrc;
        }
        let transport = track.transport.clone();
        match new {
            Some((path, mode)) => self.sessions.push(Sess {
                id: session.clone(),
                path,
                mode,
                state: State::Ready,
                tracks: vec![track],
                last_seen: self.now,
            }),
            None => match self.session_index(&session) {
                Some(i) => self.sessions[i].tracks.push(track),
                None => {
                    // Timed out meanwhile.
                    self.respond(454, cseq, None, |_| {});
                    self.process();
                    return Err(Error::InvalidState("session ended"));
                }
            },
        }
        let t = transport.to_string();
        self.respond(200, cseq, Some(&session), |r| r.headers.add("Transport", t));
        self.process();
        Ok(transport)
    }

    /// Accepts a PLAY: answers Range (`npt=0.000-` when `None`) and the
    /// RTP-Info of `starts`. Send media after this.
    pub fn accept_play(
        &mut self,
        request: RequestId,
        range: Option<Range>,
        starts: &[TrackStart],
    ) -> Result<(), Error> {
        let p = self.take_pending(request, |w| matches!(w, Pending::Play { .. }))?;
        let Pending::Play { session } = &p.what else {
            return Err(Error::InvalidState("answer does not fit the request"));
        };
        let session = session.clone();
        let Some(i) = self.session_index(&session) else {
            self.respond(454, p.cseq, None, |_| {});
            self.process();
            return Err(Error::InvalidState("session ended"));
        };
        let s = &mut self.sessions[i];
        s.state = State::Playing;
        let infos: Vec<RtpInfo> = starts
            .iter()
            .filter_map(|st| {
                let t = s.tracks.iter().find(|t| t.index == st.track)?;
                Some(RtpInfo {
                    url: t.url.clone(),
                    seq: Some(st.seq),
                    rtptime: Some(st.rtptime),
                })
            })
            .collect();
        let range = range.unwrap_or_else(Range::live).to_string();
        self.respond(200, p.cseq, Some(&session), |r| {
            r.headers.add("Range", range);
            if !infos.is_empty() {
                r.headers.add("RTP-Info", RtpInfo::write_list(&infos));
            }
        });
        self.process();
        Ok(())
    }

    /// Accepts a RECORD: media from the client follows.
    pub fn accept_record(&mut self, request: RequestId) -> Result<(), Error> {
        let p = self.take_pending(request, |w| matches!(w, Pending::Record { .. }))?;
        let Pending::Record { session } = &p.what else {
            return Err(Error::InvalidState("answer does not fit the request"));
        };
        let session = session.clone();
        let Some(i) = self.session_index(&session) else {
            self.respond(454, p.cseq, None, |_| {});
            self.process();
            return Err(Error::InvalidState("session ended"));
        };
        self.sessions[i].state = State::Recording;
        self.respond(200, p.cseq, Some(&session), |_| {});
        self.process();
        Ok(())
    }

    /// Refuses a pending request with `status` (404 no such stream, 401
    /// with the challenges, 403, 453, 503, ...).
    pub fn reject(&mut self, request: RequestId, status: u16) -> Result<(), Error> {
        let p = self.take_pending(request, |_| true)?;
        let status = if (300..700).contains(&status) {
            status
        } else {
            500
        };
        let known = p
            .session
            .as_deref()
            .filter(|s| self.session_index(s).is_some());
        let challenge = (status == 401).then(|| Challenge {
            realm: self.settings.realm.clone(),
            nonce: Some(self.nonce.clone()),
            basic: self.settings.basic_auth,
        });
        let known = known.map(str::to_string);
        self.respond(status, p.cseq, known.as_deref(), |r| {
            for h in challenge.iter().flat_map(Challenge::headers) {
                r.headers.add("WWW-Authenticate", h);
            }
        });
        self.process();
        Ok(())
    }

    /// The interleaved channels (RTP, RTCP) of a TCP track.
    pub fn channels(&self, session: &str, track: usize) -> Option<(u8, u8)> {
        let s = &self.sessions[self.session_index(session)?];
        let t = s.tracks.iter().find(|t| t.index == track)?;
        (t.transport.lower == Lower::Tcp)
            .then_some(t.transport.interleaved)
            .flatten()
    }

    /// The transport of a track set up.
    pub fn transport(&self, session: &str, track: usize) -> Option<&Transport> {
        let s = &self.sessions[self.session_index(session)?];
        s.tracks
            .iter()
            .find(|t| t.index == track)
            .map(|t| &t.transport)
    }

    /// Queues an RTP/RTCP packet on `channel` (header and payload as two
    /// buffers: `payload` is not copied, so one packet can go to many
    /// connections). `Err` when longer than 65535 bytes or closed.
    pub fn send_interleaved(&mut self, channel: u8, payload: Bytes) -> Result<(), Error> {
        if self.phase != Phase::Open {
            return Err(Error::Closed);
        }
        let h = interleaved_header(channel, payload.len())
            .ok_or(Error::InterleavedTooLarge(payload.len()))?;
        self.out_bytes += 4 + payload.len();
        self.out.push_back(Bytes::copy_from_slice(&h));
        self.out.push_back(payload);
        Ok(())
    }

    /// Queues a frame built once for many players
    /// (`[$ channel len | RTP packet]`, see
    /// [`crate::message::put_interleaved_header`]) on `channel`: as it is
    /// when its header already names `channel`, else with a new 4-byte
    /// header before the same payload (never copied either way).
    pub fn send_framed(&mut self, channel: u8, framed: Bytes) -> Result<(), Error> {
        if self.phase != Phase::Open {
            return Err(Error::Closed);
        }
        let ok = framed.len() >= 4
            && framed[0] == b'$'
            && usize::from(u16::from_be_bytes([framed[2], framed[3]])) == framed.len() - 4;
        if !ok {
            return Err(Error::Malformed("interleaved frame"));
        }
        if framed[1] == channel {
            self.out_bytes += framed.len();
            self.out.push_back(framed);
            Ok(())
        } else {
            self.send_interleaved(channel, framed.slice(4..))
        }
    }

    /// Marks `session` alive (RTCP or RTP received for it over UDP).
    pub fn refresh(&mut self, now: u64, session: &str) {
        self.now = self.now.max(now);
        if let Some(i) = self.session_index(session) {
            self.sessions[i].last_seen = self.now;
        }
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<Event> {
        let e = self.events.pop_front();
        if e.is_none() && self.events.capacity() > 0 {
            // Events come in bursts (a SETUP, then nothing for minutes but
            // RTCP): an idle session keeps no room for them (an event is
            // about 440 bytes).
            self.events = VecDeque::new();
        }
        e
    }

    /// The next bytes to write.
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        let b = self.out.pop_front()?;
        self.out_bytes -= b.len();
        Some(b)
    }

    /// Bytes queued for the socket (for backpressure).
    pub fn pending_transmit_bytes(&self) -> usize {
        self.out_bytes
    }

    /// Whether a request awaits the caller's answer.
    pub fn is_pending(&self) -> bool {
        self.pending.is_some()
    }

    /// When [`ServerSession::handle_timeout`] is next due, µs.
    pub fn poll_timeout(&self) -> Option<u64> {
        if self.phase != Phase::Open || self.pending.is_some() {
            return None;
        }
        let t = self.settings.session_timeout;
        let sessions = self
            .sessions
            .iter()
            .filter(|s| !s.exempt())
            .map(|s| s.last_seen.saturating_add(t))
            .min();
        match sessions {
            Some(d) => Some(d),
            None if !self.sessions.is_empty() => None,
            None => Some(self.last_input.saturating_add(self.settings.idle_timeout)),
        }
    }

    /// Tells the time: sessions past their timeout end
    /// ([`Event::SessionEnded`]); a connection without sessions that heard
    /// nothing for [`Settings::idle_timeout`] fails ([`Event::TimedOut`]).
    pub fn handle_timeout(&mut self, now: u64) {
        if self.phase != Phase::Open || self.pending.is_some() {
            return;
        }
        self.now = self.now.max(now);
        let t = self.settings.session_timeout;
        let now = self.now;
        let mut i = 0;
        while i < self.sessions.len() {
            let s = &self.sessions[i];
            if !s.exempt() && now >= s.last_seen.saturating_add(t) {
                let s = self.sessions.remove(i);
                self.events.push_back(Event::SessionEnded {
                    session: s.id,
                    path: s.path,
                    mode: Some(s.mode),
                    reason: EndReason::Timeout,
                });
                // The connection's own idle clock restarts.
                self.last_input = self.last_input.max(s.last_seen);
            } else {
                i += 1;
            }
        }
        if self.sessions.is_empty()
            && now >= self.last_input.saturating_add(self.settings.idle_timeout)
        {
            self.phase = Phase::Failed;
            self.inbox.clear();
            self.events.push_back(Event::TimedOut);
        }
    }

    fn end_all(&mut self, reason: EndReason) {
        for s in std::mem::take(&mut self.sessions) {
            self.events.push_back(Event::SessionEnded {
                session: s.id,
                path: s.path,
                mode: Some(s.mode),
                reason,
            });
        }
    }

    /// The connection closed: every session ends, then [`Event::Closed`].
    pub fn close(&mut self) {
        if self.phase == Phase::Closed {
            return;
        }
        self.phase = Phase::Closed;
        self.pending = None;
        self.inbox.clear();
        self.end_all(EndReason::Closed);
        self.events.push_back(Event::Closed);
    }
}

/// Splits a SETUP path into the stream path and the track control: after
/// `base` when the path extends it, else the last segment when it looks
/// like a control (`trackID=0`, `streamid=1`, `track2`, ...).
pub fn split_control(path: &str, base: Option<&str>) -> (String, String) {
    if let Some(b) = base {
        if path == b {
            return (path.to_string(), String::new());
        }
        if let Some(rest) = path.strip_prefix(b).and_then(|r| r.strip_prefix('/')) {
            return (b.to_string(), rest.to_string());
        }
    }
    if let Some((p, last)) = path.rsplit_once('/') {
        let l = last.to_ascii_lowercase();
        if last.contains('=') || l.starts_with("track") || l.starts_with("stream") {
            return (p.to_string(), last.to_string());
        }
    }
    (path.to_string(), String::new())
}

/// The number that ends a control (`trackID=3` → 3).
fn trailing_number(control: &str) -> Option<usize> {
    let digits = control.len() - control.trim_end_matches(|c: char| c.is_ascii_digit()).len();
    if digits == 0 || digits > 6 {
        return None;
    }
    control[control.len() - digits..].parse().ok()
}
