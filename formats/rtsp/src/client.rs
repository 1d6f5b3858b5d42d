//! The client side of one RTSP connection (the load generator, relays,
//! tests): play (OPTIONS, DESCRIBE, SETUP per track, PLAY) and publish
//! (OPTIONS, ANNOUNCE, SETUP per track with `mode=record`, RECORD), over
//! TCP interleaved or UDP, answering Basic and Digest challenges, with
//! keep-alives. Sans-IO like [`crate::server`]: bytes and time (µs) in,
//! events and bytes out.
//!
//! The client does not read SDP: a player gets [`ClientEvent::Described`]
//! and calls [`ClientSession::setup`] with the tracks' controls (from the
//! SDP, parsed by the caller); a publisher names its tracks up front.

use std::collections::VecDeque;

use bytes::Bytes;

use crate::auth::{authorization, Offered};
use crate::error::Error;
use crate::limits::Limits;
use crate::message::{interleaved_header, Item, Method, Reader, Request, Response};
use crate::transport::{Lower, Mode, Range, RtpInfo, SessionHeader, Transport};

/// Client settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientSettings {
    /// `rtsp://[user:pass@]host[:port]/path[?query]`.
    pub url: String,
    /// User (overrides the URL's).
    pub user: Option<String>,
    /// Password (overrides the URL's).
    pub password: Option<String>,
    /// `User-Agent`.
    pub user_agent: String,
    /// A request unanswered for this long fails the session, µs.
    pub response_timeout: u64,
    /// Keep-alive interval once playing or recording, µs (0: half the
    /// server's session timeout).
    pub keepalive: u64,
}

impl Default for ClientSettings {
    fn default() -> Self {
        ClientSettings {
            url: String::new(),
            user: None,
            password: None,
            user_agent: "Rill".into(),
            response_timeout: 10_000_000,
            keepalive: 0,
        }
    }
}

/// A track to set up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetupTrack {
    /// The SDP's `a=control` (relative to the base, or absolute).
    pub control: String,
    /// TCP interleaved (channels 2i, 2i+1) or UDP.
    pub lower: Lower,
    /// The client's RTP/RTCP ports (UDP).
    pub client_port: Option<(u16, u16)>,
}

/// What happened.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientEvent {
    /// The server's SDP (player): call [`ClientSession::setup`].
    Described {
        /// The SDP.
        sdp: Bytes,
        /// Base URL for relative controls.
        content_base: String,
    },
    /// A track was set up with this transport (server ports, channels).
    SetUp {
        /// Track index (position in the list given).
        track: usize,
        /// As the server answered it.
        transport: Transport,
    },
    /// PLAY was answered: media follows.
    Playing {
        /// Range.
        range: Option<Range>,
        /// RTP-Info.
        rtp_info: Vec<RtpInfo>,
    },
    /// RECORD was answered: send media.
    Recording,
    /// An interleaved frame from the server.
    Interleaved {
        /// Channel.
        channel: u8,
        /// Packet.
        payload: Bytes,
    },
    /// A request was refused: the session is failed.
    Refused {
        /// The method.
        method: Method,
        /// Status.
        status: u16,
    },
    /// A request went unanswered for the response timeout; failed.
    TimedOut,
    /// TEARDOWN was answered, or [`ClientSession::close`] was called.
    Closed,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Options,
    Describe,
    Announce,
    Setup(usize),
    Play,
    Record,
    KeepAlive,
    Teardown,
}

#[derive(Debug)]
struct InFlight {
    cseq: u32,
    step: Step,
    request: Request,
    sent_at: u64,
    retried: bool,
}

/// One client connection.
#[derive(Debug)]
pub struct ClientSession {
    settings: ClientSettings,
    /// The URL without user info.
    url: String,
    user: Option<String>,
    password: Option<String>,
    mode: Mode,
    sdp: Option<String>,
    tracks: Vec<SetupTrack>,
    content_base: String,
    reader: Reader,
    steps: VecDeque<Step>,
    inflight: Option<InFlight>,
    cseq: u32,
    session: Option<String>,
    session_timeout: u64,
    offered: Option<Offered>,
    nc: u32,
    events: VecDeque<ClientEvent>,
    out: VecDeque<Bytes>,
    active: bool,
    last_sent: u64,
    now: u64,
    failed: bool,
}

impl ClientSession {
    fn new(settings: ClientSettings, mode: Mode, now: u64) -> Result<ClientSession, Error> {
        let (url, user, password) = strip_userinfo(&settings.url)?;
        let user = settings.user.clone().or(user);
        let password = settings.password.clone().or(password);
        Ok(ClientSession {
            content_base: url.clone(),
            url,
            user,
            password,
            mode,
            sdp: None,
            tracks: Vec::new(),
            reader: Reader::new(Limits::default()),
            steps: VecDeque::new(),
            inflight: None,
            cseq: 0,
            session: None,
            session_timeout: 60_000_000,
            offered: None,
            nc: 0,
            events: VecDeque::new(),
            out: VecDeque::new(),
            active: false,
            last_sent: now,
            now,
            failed: false,
            settings,
        })
    }

    /// A player: sends OPTIONS and DESCRIBE, then waits for
    /// [`ClientSession::setup`] after [`ClientEvent::Described`].
    pub fn play(settings: ClientSettings, now: u64) -> Result<ClientSession, Error> {
        let mut c = ClientSession::new(settings, Mode::Play, now)?;
        c.steps.extend([Step::Options, Step::Describe]);
        c.next();
        Ok(c)
    }

    /// A publisher of `sdp` with `tracks` (their controls as in the SDP):
    /// OPTIONS, ANNOUNCE, SETUP each, RECORD.
    pub fn publish(
        settings: ClientSettings,
        sdp: String,
        tracks: Vec<SetupTrack>,
        now: u64,
    ) -> Result<ClientSession, Error> {
        if tracks.is_empty() || tracks.len() > 127 {
            return Err(Error::InvalidState("1 to 127 tracks"));
        }
        let mut c = ClientSession::new(settings, Mode::Record, now)?;
        c.sdp = Some(sdp);
        c.steps.extend([Step::Options, Step::Announce]);
        c.steps.extend((0..tracks.len()).map(Step::Setup));
        c.steps.push_back(Step::Record);
        c.tracks = tracks;
        c.next();
        Ok(c)
    }

    /// Sets up `tracks` (a player, after [`ClientEvent::Described`]), then
    /// plays.
    pub fn setup(&mut self, tracks: Vec<SetupTrack>) -> Result<(), Error> {
        if self.failed {
            return Err(Error::Closed);
        }
        if self.mode != Mode::Play || !self.tracks.is_empty() {
            return Err(Error::InvalidState("setup once, for a player"));
        }
        if tracks.is_empty() || tracks.len() > 127 {
            return Err(Error::InvalidState("1 to 127 tracks"));
        }
        self.steps.extend((0..tracks.len()).map(Step::Setup));
        self.steps.push_back(Step::Play);
        self.tracks = tracks;
        self.next();
        Ok(())
    }

    /// Ends the session (TEARDOWN; [`ClientEvent::Closed`] follows its
    /// answer).
    pub fn teardown(&mut self) {
        if !self.failed {
            self.steps.clear();
            self.steps.push_back(Step::Teardown);
            self.next();
        }
    }

    /// The session id the server gave.
    pub fn session_id(&self) -> Option<&str> {
        self.session.as_deref()
    }

    /// The URL of track `i` (its control resolved against the base).
    pub fn track_url(&self, i: usize) -> Option<String> {
        self.tracks
            .get(i)
            .map(|t| resolve(&self.content_base, &t.control))
    }

    /// Feeds bytes read from the connection.
    pub fn feed(&mut self, now: u64, mut data: &[u8]) -> Result<(), Error> {
        if self.failed {
            return Err(Error::Closed);
        }
        self.now = self.now.max(now);
        while !data.is_empty() {
            let n = self.reader.push(data);
            data = &data[n..];
            loop {
                match self.reader.next_item() {
                    Ok(Some(Item::Interleaved { channel, payload })) => self
                        .events
                        .push_back(ClientEvent::Interleaved { channel, payload }),
                    Ok(Some(Item::Response(r))) => self.on_response(r),
                    Ok(Some(Item::Request(r))) => {
                        // Servers may ask (GET_PARAMETER, ANNOUNCE): decline.
                        let mut resp = Response::new(501, r.headers.cseq());
                        resp.headers
                            .add("User-Agent", self.settings.user_agent.clone());
                        self.out.push_back(Bytes::from(resp.to_bytes()));
                    }
                    Ok(Some(Item::Malformed { cseq, reason })) => {
                        // Unreadable, and the answer to what is in flight
                        // (its CSeq, or none: an HTTP server, a broken
                        // camera): nothing will follow it.
                        let answer = self
                            .inflight
                            .as_ref()
                            .is_some_and(|f| cseq.is_none_or(|c| c == f.cseq));
                        if answer {
                            self.failed = true;
                            return Err(reason);
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        self.failed = true;
                        return Err(e);
                    }
                }
                if self.failed {
                    // Refused, torn down or timed out: the events say so;
                    // what follows is not read.
                    return Ok(());
                }
            }
            if n == 0 {
                self.failed = true;
                return Err(Error::Protocol("reader stalled"));
            }
        }
        Ok(())
    }

    fn on_response(&mut self, r: Response) {
        let Some(f) = self.inflight.take() else {
            return;
        };
        if r.headers.cseq().is_some_and(|c| c != f.cseq) {
            // Not the answer to what is in flight (a late one): ignore.
            self.inflight = Some(f);
            return;
        }
        if let Some(h) = r
            .headers
            .get("Session")
            .and_then(|v| SessionHeader::parse(v).ok())
        {
            if let Some(t) = h.timeout {
                self.session_timeout = u64::from(t.clamp(1, 3600)) * 1_000_000;
            }
            if self.session.is_none() {
                self.session = Some(h.id);
            }
        }
        if r.status == 401 && !f.retried && self.user.is_some() {
            let offers: Vec<Offered> = r
                .headers
                .get_all("WWW-Authenticate")
                .filter_map(Offered::parse)
                .collect();
            let pick = offers
                .iter()
                .find(|o| matches!(o, Offered::Digest { .. }))
                .or_else(|| offers.first())
                .cloned();
            if let Some(o) = pick {
                self.offered = Some(o);
                self.nc = 0;
                self.send(f.step, f.request, true);
                return;
            }
        }
        if f.step == Step::Teardown {
            // Whatever the answer (ffmpeg's listener says 501), the
            // session is over.
            self.failed = true;
            self.active = false;
            self.events.push_back(ClientEvent::Closed);
            return;
        }
        if !(200..300).contains(&r.status) {
            if f.step == Step::Options || (f.step == Step::KeepAlive && r.status != 454) {
                // OPTIONS is a courtesy; a keep-alive refused still kept alive.
                self.next();
                return;
            }
            self.failed = true;
            self.events.push_back(ClientEvent::Refused {
                method: f.request.method,
                status: r.status,
            });
            return;
        }
        match f.step {
            Step::Options | Step::KeepAlive | Step::Announce => {}
            Step::Describe => {
                if let Some(b) = r
                    .headers
                    .get("Content-Base")
                    .or_else(|| r.headers.get("Content-Location"))
                {
                    self.content_base = b.to_string();
                }
                self.events.push_back(ClientEvent::Described {
                    sdp: r.body,
                    content_base: self.content_base.clone(),
                });
            }
            Step::Setup(i) => {
                let transport = r
                    .headers
                    .get("Transport")
                    .and_then(|t| Transport::parse(t).ok())
                    .unwrap_or_else(|| self.transport_for(i));
                self.events.push_back(ClientEvent::SetUp {
                    track: i,
                    transport,
                });
            }
            Step::Play => {
                self.active = true;
                self.events.push_back(ClientEvent::Playing {
                    range: r.headers.get("Range").and_then(|v| Range::parse(v).ok()),
                    rtp_info: r
                        .headers
                        .get("RTP-Info")
                        .map(RtpInfo::parse_list)
                        .unwrap_or_default(),
                });
            }
            Step::Record => {
                self.active = true;
                self.events.push_back(ClientEvent::Recording);
            }
            Step::Teardown => {
                self.failed = true;
                self.active = false;
                self.events.push_back(ClientEvent::Closed);
                return;
            }
        }
        self.next();
    }

    fn transport_for(&self, i: usize) -> Transport {
        let t = &self.tracks[i];
        let mut tr = Transport::new(t.lower);
        match t.lower {
            Lower::Tcp => {
                let c = (i * 2) as u8;
                tr.interleaved = Some((c, c + 1));
            }
            Lower::Udp => tr.client_port = t.client_port,
        }
        if self.mode == Mode::Record {
            tr.mode = Some(Mode::Record);
        }
        tr
    }

    fn next(&mut self) {
        if self.inflight.is_some() || self.failed {
            return;
        }
        let Some(step) = self.steps.pop_front() else {
            return;
        };
        let base = self.url.clone();
        let (method, uri) = match &step {
            Step::Options | Step::KeepAlive => (Method::Options, base),
            Step::Describe => (Method::Describe, base),
            Step::Announce => (Method::Announce, base),
            Step::Setup(i) => (
                Method::Setup,
                resolve(&self.content_base, &self.tracks[*i].control),
            ),
            Step::Play => (Method::Play, self.content_base.clone()),
            Step::Record => (Method::Record, base),
            Step::Teardown => (Method::Teardown, self.content_base.clone()),
        };
        let mut req = Request::new(method, uri, 0);
        match &step {
            Step::Describe => req.headers.add("Accept", "application/sdp"),
            Step::Announce => {
                req.headers.add("Content-Type", "application/sdp");
                req.body = Bytes::from(self.sdp.clone().unwrap_or_default());
            }
            Step::Setup(i) => req
                .headers
                .add("Transport", self.transport_for(*i).to_string()),
            Step::Play => req.headers.add("Range", Range::live().to_string()),
            _ => {}
        }
        self.send(step, req, false);
    }

    fn send(&mut self, step: Step, mut req: Request, retried: bool) {
        self.cseq += 1;
        req.headers.set("CSeq", self.cseq.to_string());
        req.headers
            .set("User-Agent", self.settings.user_agent.clone());
        if let Some(s) = &self.session {
            req.headers.set("Session", s.clone());
        }
        if let (Some(o), Some(u)) = (&self.offered, &self.user) {
            self.nc += 1;
            let a = authorization(
                o,
                u,
                self.password.as_deref().unwrap_or(""),
                req.method.as_str(),
                &req.uri,
                self.nc,
            );
            req.headers.set("Authorization", a);
        }
        self.out.push_back(Bytes::from(req.to_bytes()));
        self.last_sent = self.now;
        self.inflight = Some(InFlight {
            cseq: self.cseq,
            step,
            request: req,
            sent_at: self.now,
            retried,
        });
    }

    /// Queues an RTP/RTCP packet on `channel` (publishing over TCP, or
    /// RTCP receiver reports).
    pub fn send_interleaved(&mut self, channel: u8, payload: Bytes) -> Result<(), Error> {
        if self.failed {
            return Err(Error::Closed);
        }
        let h = interleaved_header(channel, payload.len())
            .ok_or(Error::InterleavedTooLarge(payload.len()))?;
        self.out.push_back(Bytes::copy_from_slice(&h));
        self.out.push_back(payload);
        Ok(())
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<ClientEvent> {
        self.events.pop_front()
    }

    /// The next bytes to write.
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        self.out.pop_front()
    }

    fn keepalive_interval(&self) -> u64 {
        match self.settings.keepalive {
            0 => (self.session_timeout / 2).max(1_000_000),
            k => k,
        }
    }

    /// When [`ClientSession::handle_timeout`] is next due, µs.
    pub fn poll_timeout(&self) -> Option<u64> {
        if self.failed {
            return None;
        }
        if let Some(f) = &self.inflight {
            return Some(f.sent_at.saturating_add(self.settings.response_timeout));
        }
        self.active
            .then(|| self.last_sent.saturating_add(self.keepalive_interval()))
    }

    /// Tells the time: sends keep-alives, fails on an unanswered request.
    pub fn handle_timeout(&mut self, now: u64) {
        if self.failed {
            return;
        }
        self.now = self.now.max(now);
        if let Some(f) = &self.inflight {
            if self.now >= f.sent_at.saturating_add(self.settings.response_timeout) {
                self.failed = true;
                self.events.push_back(ClientEvent::TimedOut);
            }
            return;
        }
        if self.active && self.now >= self.last_sent.saturating_add(self.keepalive_interval()) {
            self.steps.push_back(Step::KeepAlive);
            self.next();
        }
    }

    /// The connection closed.
    pub fn close(&mut self) {
        if !self.failed || self.active {
            self.failed = true;
            self.active = false;
            self.events.push_back(ClientEvent::Closed);
        }
    }
}

/// `rtsp://user:pass@host/...` → (`rtsp://host/...`, user, password).
fn strip_userinfo(url: &str) -> Result<(String, Option<String>, Option<String>), Error> {
    let Some(i) = url.find("://") else {
        return Err(Error::Malformed("URL"));
    };
    let (scheme, rest) = url.split_at(i + 3);
    let auth_end = rest.find(['/', '?']).unwrap_or(rest.len());
    match rest[..auth_end].rfind('@') {
        Some(at) => {
            let info = &rest[..at];
            let (u, p) = match info.split_once(':') {
                Some((u, p)) => (u.to_string(), Some(p.to_string())),
                None => (info.to_string(), None),
            };
            Ok((format!("{scheme}{}", &rest[at + 1..]), Some(u), p))
        }
        None => Ok((url.to_string(), None, None)),
    }
}

/// A control resolved against a base URL.
pub fn resolve(base: &str, control: &str) -> String {
    let c = control.trim();
    if c.is_empty() || c == "*" {
        return base.trim_end_matches('/').to_string();
    }
    if c.to_ascii_lowercase().starts_with("rtsp://")
        || c.to_ascii_lowercase().starts_with("rtsps://")
    {
        return c.to_string();
    }
    format!(
        "{}/{}",
        base.trim_end_matches('/'),
        c.trim_start_matches('/')
    )
}
