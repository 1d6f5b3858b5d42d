//! HLS: Low-Latency HLS over fMP4 (default), classic HLS over MPEG-TS, and
//! live fMP4 over HTTP and WebSocket, all from one muxing of each stream.
//!
//! URLs, for stream `app/stream`:
//!
//! - `/app/stream.m3u8`: the multivariant playlist (`?format=ts` or `ll`
//!   picks the variant; default from `plugins.hls.format`);
//! - `/app/stream/llhls.m3u8`: the LL-HLS media playlist (blocking reloads
//!   with `_HLS_msn`/`_HLS_part`); `/app/stream/ts.m3u8`: the classic one;
//! - `/app/stream/init{n}.m4s`, `p{msn}.{i}.m4s` (parts), `s{msn}.m4s`
//!   (segments), `t{msn}.ts` (TS segments);
//! - `/app/stream.mp4`: live fragmented MP4 from the latest independent
//!   part, over a chunked response or a WebSocket (binary messages).
//!
//! A stream is muxed by a session without a socket (the muxer), started by
//! the first request (or at publish with `always`) and stopped when nobody
//! asked for `idle_timeout`. Its URLs are pinned to the generation that
//! muxes it, so a reload does not break its viewers' sequence (the new
//! generation takes the stream over once it went idle). Parts, segments
//! and init segments are host frames: every viewer is served the same
//! memory. Parts and init segments are also handed to the host to serve
//! itself (`share`), with the hinted part announced so that the host holds
//! the requests for it. Requests that must wait
//! (the first playlist until a segment exists, a blocking reload, the
//! preload-hinted part) stay open, and the muxer wakes them (`post`) when
//! it has something new; each has a deadline. Who may watch is the host's
//! decision (`admit`); the query a request came with (a token) is carried
//! into every URI of the playlists it gets.

#![forbid(unsafe_code)]

mod config;
mod serve;
mod share;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use rill_abi::sdk::{
    Admission, Conn, ConnId, Error, FrameInfo, FrameRef, Host, HttpRequest, Plugin, Result,
    Subscriber, SubscriberId, TimerHandle,
};
use rill_abi::*;
use rill_hls::{LlHls, TsHls};

use config::Config;
use serve::Request;

const ROUTE: u32 = 1;
/// The instance timer that stops idle muxers.
const TIMER_SWEEP: u64 = 1;
/// A held request's deadline.
const TIMER_DEADLINE: u64 = 2;

/// Muxed bytes: a host frame (served without a copy), or heap bytes when
/// the host could not give a frame.
#[derive(Clone)]
pub enum Blob {
    Frame(FrameRef),
    Heap(Bytes),
}

impl Blob {
    pub(crate) fn len(&self) -> usize {
        match self {
            Blob::Frame(f) => f.data().len(),
            Blob::Heap(b) => b.len(),
        }
    }

    pub(crate) fn data(&self) -> &[u8] {
        match self {
            Blob::Frame(f) => f.data(),
            Blob::Heap(b) => b,
        }
    }
}

/// One stream's muxed state, shared by its muxer and every request.
pub struct Stream {
    pub ll: LlHls<Blob>,
    /// Classic HLS, started by the first request for it.
    pub ts: Option<TsHls<Blob>>,
    /// The muxer session, while it runs.
    pub muxer: Option<ConnId>,
    /// Sessions to wake when something new is muxed: those waiting for
    /// media (a hinted part, live fMP4) first, then the rest (blocked
    /// playlist reloads): a part's release answers both at once, and the
    /// media is what a player is waiting to play.
    pub waiters: [Vec<ConnId>; 2],
    /// Media playlists rendered since the last change, by variant and
    /// suffix: the blocked reloads a part releases share one rendering
    /// and its ETag.
    rendered: Vec<(bool, String, serve::Rendered)>,
    /// What the host serves for it.
    shared: share::Shared,
    /// Live fMP4 viewers (they keep the muxer running).
    pub live_viewers: usize,
    /// Host clock of the latest request.
    pub last_request: i64,
    /// The muxer saw the publisher go (no more parts until one comes).
    pub ended: bool,
    /// The latest config frame of each track: a muxer started later (TS)
    /// begins with them.
    configs: Vec<rill_hls::Frame>,
    warned: bool,
}

pub struct Hls {
    host: Host,
    config: Config,
    /// The host serves parts and init segments (ABI 1.8); false once it
    /// said it cannot.
    host_serves: AtomicBool,
    streams: Mutex<HashMap<String, Arc<Mutex<Stream>>>>,
}

pub enum Session {
    /// Subscribes to the stream and feeds its `Stream`.
    Muxer {
        path: String,
        stream: Arc<Mutex<Stream>>,
        sub: Option<Subscriber>,
    },
    /// An HTTP request (answered, or held).
    Request(Request),
}

/// The message the muxer posts to waiting sessions.
struct Wake;
/// The message that stops a muxer.
struct Stop;

fn lock(s: &Mutex<Stream>) -> std::sync::MutexGuard<'_, Stream> {
    // A panic while holding it left the state as it was: go on with it.
    s.lock().unwrap_or_else(|p| p.into_inner())
}

impl Hls {
    /// The stream's state, with a muxer running (started if needed);
    /// `ts`: classic HLS is wanted too.
    pub(crate) fn stream(&self, path: &str, ts: bool) -> Result<Arc<Mutex<Stream>>> {
        let mut map = self.streams.lock().unwrap_or_else(|p| p.into_inner());
        let now = self.host.now_us();
        let first_msn = (self.host.wall_us() / 1000).max(0) as u64;
        let st = map
            .entry(path.to_owned())
            .or_insert_with(|| {
                Arc::new(Mutex::new(Stream {
                    ll: LlHls::new(self.config.hls(first_msn)),
                    ts: None,
                    muxer: None,
                    waiters: [Vec::new(), Vec::new()],
                    rendered: Vec::new(),
                    shared: Default::default(),
                    live_viewers: 0,
                    last_request: now,
                    ended: false,
                    configs: Vec::new(),
                    warned: false,
                }))
            })
            .clone();
        drop(map);
        let mut g = lock(&st);
        g.last_request = now;
        if ts && g.ts.is_none() {
            let mut t = TsHls::new(self.config.hls(first_msn));
            let wall = self.host.wall_us();
            for c in &g.configs {
                t.push(c, wall, &mut |b| self.blob(b));
            }
            g.ts = Some(t);
        }
        if g.muxer.is_none() {
            // Its URLs stay with this generation after a reload, until the
            // sweep forgets the stream: the viewers keep their sequence.
            if let Err(e) = self.host.http_pin(&format!("/{path}"), true) {
                rill_log!(self.host, Debug, "{path}: not pinned ({e})");
            }
            let id = self.host.session_open(Session::Muxer {
                path: path.to_owned(),
                stream: st.clone(),
                sub: None,
            })?;
            g.muxer = Some(id);
            g.ended = false;
        }
        drop(g);
        Ok(st)
    }

    /// The muxer made something new: the host gets what it serves (see
    /// `share`; the requests it holds are answered first), then every
    /// session waiting on `st` is woken (they register again if they
    /// still wait).
    fn changed(&self, path: &str, st: &mut Stream) {
        if self.host_serves.load(Ordering::Relaxed)
            && !share::share(&self.host, path, st, self.config.hold())
        {
            self.host_serves.store(false, Ordering::Relaxed);
        }
        st.rendered.clear();
        for list in &mut st.waiters {
            for id in std::mem::take(list) {
                let _ = self.host.post(id, Box::new(Wake));
            }
        }
    }

    /// A frame of the host as muxer input: the payload stays the host's.
    fn input(frame: &FrameRef) -> rill_hls::Frame {
        rill_hls::Frame::from(frame)
    }

    fn blob(&self, b: Bytes) -> Blob {
        match self.host.frame_copy(&b, &FrameInfo::new()) {
            Ok(f) => Blob::Frame(f),
            Err(_) => Blob::Heap(b),
        }
    }
}

impl Plugin for Hls {
    type Session = Session;
    const DESCRIPTION: &'static str = "HLS: LL-HLS over fMP4, classic HLS over MPEG-TS, live fMP4";
    const WANTS_STREAM_EVENTS: bool = true;

    fn create(host: &Host) -> Result<Self> {
        let config = host.parse_config(|y| Config::parse(y).map_err(|e| e.in_plugin("hls")))?;
        for method in ["GET", "HEAD"] {
            for pattern in ["*.m3u8", "*.m4s", "*.ts"] {
                host.http_route(method, pattern, ROUTE)?;
            }
        }
        // Live fMP4 responses last as long as the viewer watches.
        host.http_route_flags("GET", "*.mp4", ROUTE, RILL_ROUTE_STREAM)?;
        host.timer_start(Duration::from_secs(5), true, TIMER_SWEEP)?;
        Ok(Hls {
            host: *host,
            config,
            host_serves: AtomicBool::new(true),
            streams: Mutex::new(HashMap::new()),
        })
    }

    fn on_http_request(&self, conn: &Conn, _route: u32, req: &HttpRequest<'_>) -> Result<Session> {
        let Some((path, what)) = serve::parse_target(req.path(), req.query(), &self.config) else {
            return Err(Error::NOT_FOUND);
        };
        let mut r = Request::new(
            path,
            what,
            req.query(),
            req.method() == "HEAD",
            req.wants_websocket(),
        )
        .map_err(|_| Error::INVALID)?;
        r.etag = req.header("if-none-match").map(str::to_owned);
        // Refused now: the host answers (401 with a challenge, 403, 503).
        if conn.admit(&Admission::play(&r.path, req.query()), 1)? {
            r.admitted = true;
            self.serve(&mut r, conn)?;
        }
        Ok(Session::Request(r))
    }

    fn on_admit(
        &self,
        s: &mut Session,
        conn: &Conn,
        _ticket: u64,
        result: Result<()>,
    ) -> Result<()> {
        let Session::Request(r) = s else {
            return Ok(());
        };
        match result {
            Ok(()) => {
                r.admitted = true;
                self.serve(r, conn)
            }
            Err(e) => serve::text(conn, e.refusal_status(), "playing not allowed\n", r.head),
        }
    }

    fn on_session_open(&self, s: &mut Session, conn: &Conn, _kind: u32) -> Result<()> {
        if let Session::Muxer { path, sub, .. } = s {
            *sub = Some(conn.subscribe(path, "", None)?);
            rill_log!(self.host, Debug, "muxing {path}");
        }
        Ok(())
    }

    fn on_frame(
        &self,
        s: &mut Session,
        _conn: &Conn,
        _sub: SubscriberId,
        frame: &FrameRef,
    ) -> Result<()> {
        let Session::Muxer { path, stream, .. } = s else {
            return Ok(());
        };
        let f = Hls::input(frame);
        let wall = self.host.wall_us();
        let mut mk = |b: Bytes| self.blob(b);
        let mut st = lock(stream);
        if f.flags & RILL_FRAME_CONFIG != 0 {
            st.configs.retain(|c| c.track != f.track);
            st.configs.push(f.clone());
        }
        let mut changed = st.ll.push(&f, wall, &mut mk);
        if let Some(ts) = st.ts.as_mut() {
            let c = ts.push(&f, wall, &mut mk);
            changed.media |= c.media;
            changed.init |= c.init;
        }
        let errors = (
            st.ll.take_error(),
            st.ts.as_mut().and_then(|t| t.take_error()),
        );
        if let (Some(e), _) | (_, Some(e)) = &errors {
            if !st.warned {
                st.warned = true;
                rill_log!(self.host, Warn, "{path}: frames skipped: {e}");
            }
        }
        if changed.any() {
            self.changed(path, &mut st);
        }
        Ok(())
    }

    fn on_subscribe_end(
        &self,
        s: &mut Session,
        conn: &Conn,
        _sub: SubscriberId,
        reason: u32,
        why: &str,
    ) -> Result<()> {
        if let Session::Muxer { path, stream, sub } = s {
            *sub = None;
            let mut st = lock(stream);
            let mut mk = |b: Bytes| self.blob(b);
            st.ll.finish(&mut mk);
            if let Some(ts) = st.ts.as_mut() {
                ts.finish(&mut mk);
            }
            st.ended = true;
            st.muxer = None;
            self.changed(path, &mut st);
            drop(st);
            rill_log!(self.host, Debug, "stopped muxing {path} ({reason}: {why})");
            conn.close(RILL_END_NORMAL)?;
        }
        Ok(())
    }

    fn on_post(
        &self,
        session: Option<(&mut Session, &Conn)>,
        msg: Box<dyn std::any::Any + Send>,
    ) -> Result<()> {
        let Some((s, conn)) = session else {
            return Ok(());
        };
        match s {
            Session::Muxer { .. } if msg.is::<Stop>() => conn.close(RILL_END_NORMAL),
            Session::Request(r) if msg.is::<Wake>() => {
                r.waiting = false;
                if r.admitted && !r.done {
                    return self.serve(r, conn);
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    fn on_writable(&self, s: &mut Session, conn: &Conn) -> Result<()> {
        if let Session::Request(r) = s {
            if r.live.is_some() {
                return self.serve(r, conn);
            }
        }
        Ok(())
    }

    fn on_timer(&self, session: Option<(&mut Session, &Conn)>, timer_id: u64) -> Result<()> {
        match (session, timer_id) {
            (None, TIMER_SWEEP) => {
                self.sweep();
                Ok(())
            }
            (Some((Session::Request(r), conn)), TIMER_DEADLINE) => {
                r.timer = None;
                self.deadline(r, conn)
            }
            _ => Ok(()),
        }
    }

    fn on_close(&self, s: Session, _conn: &Conn, _reason: u32, _why: &str) {
        match s {
            Session::Request(r) => {
                if let (Some(st), true) = (&r.stream, r.live.is_some()) {
                    let mut g = lock(st);
                    g.live_viewers = g.live_viewers.saturating_sub(1);
                }
            }
            Session::Muxer { stream, .. } => {
                let mut g = lock(&stream);
                g.muxer = None;
            }
        }
    }

    fn on_stream_event(&self, event: u32, path: &str) -> Result<()> {
        // Both variants: a classic player then starts from segments that
        // exist, as the first LL-HLS one does, instead of every TS player
        // waiting for the first segment and getting it at the same moment.
        if self.config.always && event == RILL_STREAM_PUBLISHED {
            self.stream(path, true)?;
        }
        Ok(())
    }
}

impl Hls {
    /// Stops muxers nobody asked for within `idle_timeout`, and forgets
    /// their streams.
    fn sweep(&self) {
        let now = self.host.now_us();
        let idle = self.config.idle_timeout.as_micros() as i64;
        let mut map = self.streams.lock().unwrap_or_else(|p| p.into_inner());
        let mut forgotten = Vec::new();
        map.retain(|path, st| {
            let mut g = lock(st);
            let busy = g.waiters.iter().any(|w| !w.is_empty()) || g.live_viewers > 0;
            let keep = busy || now - g.last_request < idle || (self.config.always && !g.ended);
            if !keep {
                share::unshare(&self.host, &mut g);
                if let Some(id) = g.muxer.take() {
                    let _ = self.host.post(id, Box::new(Stop));
                }
                forgotten.push(path.clone());
            }
            keep
        });
        // Under the map's lock: a request for it now starts a new muxer
        // and pins again.
        for path in forgotten {
            let _ = self.host.http_pin(&format!("/{path}"), false);
        }
    }

    /// Arms a held request's deadline (once).
    pub(crate) fn arm(&self, r: &mut Request, conn: &Conn, after: Duration) -> Result<()> {
        if r.timer.is_none() {
            let t: TimerHandle = conn.timer_start(after, false, TIMER_DEADLINE)?;
            r.timer = Some(t);
        }
        Ok(())
    }

    /// Registers `conn` to be woken by the stream's muxer, once:
    /// `waiting` is the session's own mark (cleared when woken), `media`
    /// whether it waits for media rather than a playlist.
    pub(crate) fn wait_on(
        &self,
        st: &mut Stream,
        conn: &Conn,
        waiting: &mut bool,
        media: bool,
    ) -> Result<()> {
        if !*waiting {
            if st.waiters.iter().map(Vec::len).sum::<usize>() >= self.config.max_waiting {
                return Err(Error::BUSY);
            }
            st.waiters[usize::from(!media)].push(conn.id());
            *waiting = true;
        }
        Ok(())
    }

    fn deadline(&self, r: &mut Request, conn: &Conn) -> Result<()> {
        if r.done || r.live.is_some() {
            return Ok(());
        }
        // Serve what there is if it will do; else the request's refusal.
        r.expired = true;
        self.serve(r, conn)
    }
}

rill_abi::export_plugin!(Hls, "hls");
