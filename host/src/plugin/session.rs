//! Sessions: one connection (or a socket-less session) of one plugin
//! instance, run by one tokio task.
//!
//! The task owns the socket and is the only place the session's callbacks
//! run, so they never overlap. Host calls made inside a callback (write,
//! subscribe, close, ...) only change the session's state under a short lock
//! that is never held across a callback; the task acts on it when the
//! callback returns. Frames of the session's subscribers are pulled only
//! while its outbound queue is below the high-water mark: a slow socket
//! backs up into the engine's bounded queue, which drops whole GOPs.

use std::collections::VecDeque;
use std::ffi::c_void;
use std::future::{poll_fn, Future};
use std::io::IoSlice;
use std::pin::Pin;
use std::sync::atomic::{AtomicPtr, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket};
use bytes::{Buf, Bytes};
use futures_util::stream::SplitStream;
use futures_util::{SinkExt, StreamExt};
use parking_lot::Mutex;
use rill_abi::*;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::WaitForCancellationFutureOwned;

use super::frames;
use super::instance::{InstMsg, Instance};
use crate::engine::{EndReason, FrameRef, Publisher, SubscribeEnd, Subscriber};

/// Above this many queued bytes a write returns `RILL_FULL` and frames stop
/// flowing to the session's subscribers.
pub const HIGH_WATER: usize = 1 << 20;
/// Below this, after a `RILL_FULL`/`RILL_ERR_AGAIN`, `on_conn_writable` runs.
pub const LOW_WATER: usize = 256 << 10;
/// A write that would queue more than this is refused (`RILL_ERR_AGAIN`).
pub const HARD_CAP: usize = 16 << 20;
/// The read buffer of a session starts at this size and doubles, up to the
/// max, each time a read fills it (a 64 KiB buffer per idle player was most
/// of a player's memory).
const READ_BUF_MIN: usize = 4 << 10;
const READ_BUF_MAX: usize = 64 << 10;
/// How long queued output may take to flush when a session closes.
const FLUSH_DEADLINE: Duration = Duration::from_secs(5);

static NEXT_SESSION: AtomicU64 = AtomicU64::new(1);

pub(crate) enum Ctl {
    Post(usize),
    Timer { handle: u64, timer_id: u64 },
    Close { reason: u32, why: String },
}

pub(crate) struct SubEntry {
    /// The session that owns this entry (it outlives its entries).
    pub owner: *const SessionShared,
    pub sub: Subscriber,
    pub flags: u32,
    started: bool,
    ended: bool,
    pub delivered: u64,
    pub delivered_bytes: u64,
}

pub(crate) struct PubEntry {
    /// The session that owns this entry (it outlives its entries).
    pub owner: *const SessionShared,
    pub publisher: Publisher,
    ended: bool,
    closed: Pin<Box<WaitForCancellationFutureOwned>>,
}

/// Where output goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sink {
    /// No socket (`session_open`).
    None,
    /// A byte stream (TCP).
    Stream,
    /// An HTTP exchange: a response body, or WebSocket messages after an
    /// upgrade.
    Http,
}

/// One queued write: bytes, or one WebSocket message (`text` for text).
#[derive(Clone)]
pub(crate) struct Out {
    data: Bytes,
    text: bool,
}

/// What the plugin answered to an HTTP request, waiting for the task.
pub(crate) enum HttpAnswer {
    Respond {
        status: u16,
        headers: Vec<(String, String)>,
        body: u32,
        length: u64,
    },
    Upgrade {
        headers: Vec<(String, String)>,
    },
}

#[derive(Default)]
pub(crate) struct SessionState {
    out: VecDeque<Out>,
    out_bytes: usize,
    want_writable: bool,
    close: Option<(u32, String)>,
    paused: bool,
    // Boxed for stable addresses: plugin handles point into the boxes.
    #[allow(clippy::vec_box)]
    pub subs: Vec<Box<SubEntry>>,
    #[allow(clippy::vec_box)]
    pub pubs: Vec<Box<PubEntry>>,
    /// HTTP sessions: the answer not yet sent, and whether one was given.
    http_answer: Option<HttpAnswer>,
    http_answered: bool,
}

pub(crate) struct SessionShared {
    pub id: u64,
    pub inst: Arc<Instance>,
    pub peer: String,
    pub local: String,
    pub sink: Sink,
    user: AtomicPtr<c_void>,
    pub st: Mutex<SessionState>,
    ctl: mpsc::UnboundedSender<Ctl>,
}

// SAFETY: `user` is the plugin's opaque session pointer, only handed back to
// the plugin on this session's task; everything else is Send + Sync.
unsafe impl Send for SessionShared {}
// SAFETY: as for Send.
unsafe impl Sync for SessionShared {}

/// How a session came to be: which `listener_id` its `on_conn_open` gets.
pub(crate) enum Origin {
    Listener(u32),
    Connect,
    Session,
}

impl SessionShared {
    pub(crate) fn conn_ptr(self: &Arc<Self>) -> *mut RillConn {
        Arc::as_ptr(self) as *mut RillConn
    }

    fn user(&self) -> *mut c_void {
        self.user.load(Ordering::Acquire)
    }

    pub(crate) fn send(&self, c: Ctl) -> bool {
        self.ctl.send(c).is_ok()
    }

    /// Queues bytes to send. Statuses as `conn_write`.
    pub(crate) fn queue_write(&self, b: Bytes) -> i32 {
        self.queue(b, false)
    }

    /// Queues one WebSocket message (`ws_send`).
    pub(crate) fn queue_ws(&self, b: Bytes, text: bool) -> i32 {
        if self.sink != Sink::Http {
            return RILL_ERR_UNSUPPORTED;
        }
        self.queue(b, text)
    }

    /// Records the plugin's answer to an HTTP request (once per request).
    pub(crate) fn answer_http(&self, a: HttpAnswer) -> i32 {
        if self.sink != Sink::Http {
            return RILL_ERR_UNSUPPORTED;
        }
        let mut st = self.st.lock();
        if st.http_answered || st.close.is_some() {
            return RILL_ERR_INVALID;
        }
        st.http_answered = true;
        st.http_answer = Some(a);
        RILL_OK
    }

    fn queue(&self, b: Bytes, text: bool) -> i32 {
        let mut st = self.st.lock();
        if st.close.is_some() {
            return RILL_ERR_CLOSED;
        }
        if self.sink == Sink::None {
            return RILL_ERR_UNSUPPORTED;
        }
        if st.out_bytes + b.len() > HARD_CAP {
            st.want_writable = true;
            return RILL_ERR_AGAIN;
        }
        st.out_bytes += b.len();
        if !b.is_empty() || text {
            st.out.push_back(Out { data: b, text });
        }
        if st.out_bytes > HIGH_WATER {
            st.want_writable = true;
            RILL_FULL
        } else {
            RILL_OK
        }
    }

    pub(crate) fn pending(&self) -> usize {
        self.st.lock().out_bytes
    }

    pub(crate) fn request_close(&self, reason: u32, why: &str) {
        let mut st = self.st.lock();
        st.close.get_or_insert((reason, why.to_string()));
    }

    pub(crate) fn set_paused(&self, paused: bool) {
        self.st.lock().paused = paused;
    }

    pub(crate) fn add_subscriber(&self, sub: Subscriber, flags: u32) -> *mut RillSubscriber {
        let mut e = Box::new(SubEntry {
            owner: self,
            sub,
            flags,
            started: false,
            ended: false,
            delivered: 0,
            delivered_bytes: 0,
        });
        let p = &mut *e as *mut SubEntry as *mut RillSubscriber;
        self.st.lock().subs.push(e);
        p
    }

    pub(crate) fn remove_subscriber(&self, p: *mut RillSubscriber) -> bool {
        let mut st = self.st.lock();
        let before = st.subs.len();
        st.subs
            .retain(|e| !std::ptr::eq(&**e, p as *const SubEntry));
        before != st.subs.len()
    }

    pub(crate) fn add_publisher(&self, publisher: Publisher) -> *mut RillPublisher {
        let closed = Box::pin(publisher.closed_owned());
        let mut e = Box::new(PubEntry {
            owner: self,
            publisher,
            ended: false,
            closed,
        });
        let p = &mut *e as *mut PubEntry as *mut RillPublisher;
        self.st.lock().pubs.push(e);
        p
    }

    pub(crate) fn remove_publisher(&self, p: *mut RillPublisher) -> bool {
        let mut st = self.st.lock();
        let before = st.pubs.len();
        st.pubs
            .retain(|e| !std::ptr::eq(&**e, p as *const PubEntry));
        before != st.pubs.len()
    }

    /// A status from a session callback: negative ends the session.
    fn check(&self, what: &str, status: i32) {
        if status < 0 {
            self.request_close(
                RILL_END_PLUGIN_ERROR,
                &format!("{what} returned {}", rill_status_name(status)),
            );
        }
    }

    fn poll_media(&self, cx: &mut Context<'_>) -> Poll<Media> {
        let mut st = self.st.lock();
        for e in st.subs.iter_mut() {
            if e.ended {
                continue;
            }
            if let Poll::Ready(r) = e.sub.poll_recv(cx) {
                let p = &mut **e as *mut SubEntry;
                return Poll::Ready(Media::Sub(p, r));
            }
        }
        for e in st.pubs.iter_mut() {
            if !e.ended && e.closed.as_mut().poll(cx).is_ready() {
                e.ended = true;
                let why = e.publisher.closed_reason().unwrap_or_default();
                return Poll::Ready(Media::PubEnd(&mut **e as *mut PubEntry, why));
            }
        }
        Poll::Pending
    }

    fn on_media(self: &Arc<Self>, m: Media) {
        let (inst, user, conn) = (&self.inst, self.user(), self.conn_ptr());
        match m {
            Media::Sub(p, Ok(frame)) => {
                // Decide under the lock, call without it: the plugin may
                // close this subscriber from inside the callback.
                let (first, skip) = {
                    let _st = self.st.lock();
                    // SAFETY: p points into a Box owned by st.subs; we hold
                    // the lock, and it was live when poll_media returned.
                    let e = unsafe { &mut *p };
                    let skip = filtered(e.flags, &frame);
                    let first = !e.started;
                    e.started = true;
                    if !skip {
                        e.delivered += 1;
                        e.delivered_bytes += frame.payload().len() as u64;
                    }
                    (first, skip)
                };
                let sub = p as *mut RillSubscriber;
                if first {
                    let s = inst.call(|d, i| {
                        // SAFETY: plugin callback, its own session and handle.
                        d.on_subscribe_start
                            .map_or(RILL_OK, |f| unsafe { f(i, user, sub) })
                    });
                    self.check("on_subscribe_start", s);
                }
                if !skip && self.st.lock().subs.iter().any(|e| std::ptr::eq(&**e, p)) {
                    let s = inst.call(|d, i| {
                        // SAFETY: plugin callback; the frame is lent for the call.
                        d.on_frame.map_or(RILL_OK, |f| unsafe {
                            f(i, user, sub, frames::lend(&frame))
                        })
                    });
                    self.check("on_frame", s);
                }
            }
            Media::Sub(p, Err(end)) => {
                {
                    let _st = self.st.lock();
                    // SAFETY: as above.
                    unsafe { (*p).ended = true };
                }
                let why = end.to_string();
                let s = inst.call(|d, i| {
                    // SAFETY: plugin callback; `why` is lent for the call.
                    d.on_subscribe_end.map_or(RILL_OK, |f| unsafe {
                        f(
                            i,
                            user,
                            p as *mut RillSubscriber,
                            end_code(&end),
                            RillStr::from_str(&why),
                        )
                    })
                });
                self.check("on_subscribe_end", s);
            }
            Media::PubEnd(p, why) => {
                let code = if why.contains("shutting down") {
                    RILL_END_SHUTDOWN
                } else {
                    RILL_END_KICKED
                };
                let s = inst.call(|d, i| {
                    // SAFETY: plugin callback; `why` is lent for the call.
                    d.on_publish_end.map_or(RILL_OK, |f| unsafe {
                        f(
                            i,
                            user,
                            p as *mut RillPublisher,
                            code,
                            RillStr::from_str(&why),
                        )
                    })
                });
                self.check("on_publish_end", s);
            }
        }
        let _ = conn;
    }

    fn on_ctl(self: &Arc<Self>, c: Ctl) -> Option<(u32, String)> {
        let (user, conn) = (self.user(), self.conn_ptr());
        match c {
            Ctl::Close { reason, why } => return Some((reason, why)),
            Ctl::Post(arg) => {
                let s = self.inst.call(|d, i| {
                    // SAFETY: plugin callback with its own posted argument.
                    d.on_post
                        .map_or(RILL_OK, |f| unsafe { f(i, user, conn, arg as *mut c_void) })
                });
                self.check("on_post", s);
            }
            Ctl::Timer { handle, timer_id } => {
                if timer_fires(&self.inst, handle) {
                    let s = self.inst.call(|d, i| {
                        // SAFETY: plugin callback for its own timer.
                        d.on_timer
                            .map_or(RILL_OK, |f| unsafe { f(i, user, conn, timer_id) })
                    });
                    self.check("on_timer", s);
                }
            }
        }
        None
    }

    /// After a callback: `on_conn_writable` when a full queue drained.
    fn maybe_writable(self: &Arc<Self>) {
        let fire = {
            let mut st = self.st.lock();
            let fire = st.want_writable && st.out_bytes < LOW_WATER && st.close.is_none();
            if fire {
                st.want_writable = false;
            }
            fire
        };
        if fire {
            let (user, conn) = (self.user(), self.conn_ptr());
            let s = self.inst.call(|d, i| {
                // SAFETY: plugin callback for its own session.
                d.on_conn_writable
                    .map_or(RILL_OK, |f| unsafe { f(i, user, conn) })
            });
            self.check("on_conn_writable", s);
        }
    }
}

enum Media {
    Sub(*mut SubEntry, Result<FrameRef, SubscribeEnd>),
    PubEnd(*mut PubEntry, String),
}

fn filtered(flags: u32, f: &FrameRef) -> bool {
    let kind = rill_codec_kind(f.codec());
    (flags & RILL_SUBSCRIBE_NO_VIDEO != 0 && kind == RILL_TRACK_VIDEO)
        || (flags & RILL_SUBSCRIBE_NO_AUDIO != 0 && kind == RILL_TRACK_AUDIO)
        || (flags & RILL_SUBSCRIBE_NO_DATA != 0 && kind == RILL_TRACK_DATA)
}

pub(crate) fn end_code(end: &SubscribeEnd) -> u32 {
    match end.reason {
        EndReason::WaitTimeout => RILL_END_TIMEOUT,
        EndReason::PublisherGone => RILL_END_PUBLISHER_GONE,
        EndReason::Kicked => RILL_END_KICKED,
        EndReason::TooSlow => RILL_END_TOO_SLOW,
        EndReason::Shutdown => RILL_END_SHUTDOWN,
        EndReason::StreamClosed | EndReason::Closed => RILL_END_NORMAL,
    }
}

/// Whether the timer `handle` still fires (not cancelled); a one-shot timer
/// is forgotten as it fires.
pub(crate) fn timer_fires(inst: &Instance, handle: u64) -> bool {
    let mut t = inst.timers.lock();
    match t.get(&handle) {
        None => false,
        Some(&(_, _, repeat)) => {
            if !repeat {
                t.remove(&handle);
            }
            true
        }
    }
}

/// Starts a timer for `session` (None: the instance). Returns its handle.
pub(crate) fn start_timer(
    inst: &Arc<Instance>,
    session: Option<&Arc<SessionShared>>,
    delay: Duration,
    repeat: bool,
    timer_id: u64,
) -> u64 {
    let handle = inst.next_timer.fetch_add(1, Ordering::Relaxed);
    let delay = delay.max(Duration::from_millis(1));
    let sid = session.map_or(0, |s| s.id);
    let target: Box<dyn Fn() -> bool + Send> = match session {
        Some(s) => {
            let tx = s.ctl.clone();
            Box::new(move || tx.send(Ctl::Timer { handle, timer_id }).is_ok())
        }
        None => {
            let inst = Arc::downgrade(inst);
            Box::new(move || match inst.upgrade() {
                Some(i) => {
                    i.send_instance(InstMsg::Timer { handle, timer_id });
                    true
                }
                None => false,
            })
        }
    };
    // Hold the lock across the spawn so the entry exists before it can fire.
    let mut timers = inst.timers.lock();
    let task = inst.host.rt.spawn(async move {
        let mut next = tokio::time::Instant::now() + delay;
        loop {
            tokio::time::sleep_until(next).await;
            if !target() || !repeat {
                break;
            }
            next += delay;
        }
    });
    timers.insert(handle, (sid, task.abort_handle(), repeat));
    handle
}

/// The transport of a session.
pub(crate) enum Io {
    None,
    Stream(
        Box<dyn AsyncRead + Send + Unpin>,
        Box<dyn AsyncWrite + Send + Unpin>,
    ),
    Http(HttpExchange),
}

/// An HTTP request routed to a plugin, owned (the plugin sees views of it).
pub struct HttpRequest {
    pub method: String,
    pub path: String,
    pub query: String,
    /// Names lower-case.
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
    pub websocket: bool,
}

pub(crate) struct HttpExchange {
    pub route_id: u32,
    pub req: HttpRequest,
    pub reply: oneshot::Sender<HttpReply>,
}

/// What the HTTP server sends the client.
pub enum HttpReply {
    /// The plugin refused the request (or ended without answering).
    Error(u16, String),
    Response {
        status: u16,
        headers: Vec<(String, String)>,
        body: u32,
        length: u64,
        chunks: mpsc::Receiver<Bytes>,
    },
    Upgrade {
        headers: Vec<(String, String)>,
        socket: oneshot::Sender<WebSocket>,
    },
}

/// Where a running session's bytes go, as it changes (an HTTP exchange
/// becomes a body or a WebSocket).
enum Transport {
    None,
    Stream(
        Box<dyn AsyncRead + Send + Unpin>,
        Box<dyn AsyncWrite + Send + Unpin>,
    ),
    /// Waiting for the plugin's answer.
    HttpPending(Option<oneshot::Sender<HttpReply>>),
    /// Streaming a response body.
    Body(mpsc::Sender<Bytes>),
    /// Upgrade accepted, waiting for the socket.
    WsPending(oneshot::Receiver<WebSocket>),
    Ws(SplitStream<WebSocket>, mpsc::Sender<Message>),
}

/// Maps a refusing status of `on_http_request` to the HTTP answer.
fn http_status_for(status: i32) -> u16 {
    match status {
        RILL_ERR_NOT_FOUND => 404,
        RILL_ERR_DENIED => 403,
        RILL_ERR_INVALID => 400,
        RILL_ERR_BUSY | RILL_ERR_AGAIN => 503,
        _ => 500,
    }
}

/// Creates a session and runs it on its own task.
pub(crate) fn spawn(
    inst: &Arc<Instance>,
    io: Io,
    origin: Origin,
    peer: String,
    local: String,
    preset_user: *mut c_void,
) -> u64 {
    let (tx, rx) = mpsc::unbounded_channel();
    let sink = match io {
        Io::None => Sink::None,
        Io::Stream(..) => Sink::Stream,
        Io::Http(..) => Sink::Http,
    };
    let s = Arc::new(SessionShared {
        id: NEXT_SESSION.fetch_add(1, Ordering::Relaxed),
        inst: inst.clone(),
        peer,
        local,
        sink,
        user: AtomicPtr::new(preset_user),
        st: Mutex::new(SessionState::default()),
        ctl: tx,
    });
    let id = s.id;
    inst.sessions.insert(id, s.clone());
    inst.host.rt.spawn(run(s, io, rx, origin));
    id
}

struct UserPtr(*mut c_void);
// SAFETY: the plugin's opaque pointer, only handed back to the plugin.
unsafe impl Send for UserPtr {}

/// Connects to `addr`, then runs the session; a failure is reported with
/// `on_conn_close` as the ABI says.
pub(crate) fn spawn_connect(inst: &Arc<Instance>, addr: String, user: *mut c_void) -> u64 {
    let (tx, rx) = mpsc::unbounded_channel();
    let s = Arc::new(SessionShared {
        id: NEXT_SESSION.fetch_add(1, Ordering::Relaxed),
        inst: inst.clone(),
        peer: addr.clone(),
        local: String::new(),
        sink: Sink::Stream,
        user: AtomicPtr::new(user),
        st: Mutex::new(SessionState::default()),
        ctl: tx,
    });
    let id = s.id;
    inst.sessions.insert(id, s.clone());
    let user = UserPtr(user);
    inst.host.rt.spawn(async move {
        let user = user;
        match tokio::time::timeout(
            Duration::from_secs(10),
            tokio::net::TcpStream::connect(&addr),
        )
        .await
        {
            Ok(Ok(sock)) => {
                let _ = sock.set_nodelay(true);
                let (rd, wr) = sock.into_split();
                run(
                    s,
                    Io::Stream(Box::new(rd), Box::new(wr)),
                    rx,
                    Origin::Connect,
                )
                .await
            }
            res => {
                let why = match res {
                    Ok(Err(e)) => format!("connect to {addr}: {e}"),
                    _ => format!("connect to {addr}: timed out"),
                };
                let conn = s.conn_ptr();
                s.inst.call(|d, i| {
                    if let Some(f) = d.on_conn_close {
                        // SAFETY: plugin callback; `why` is lent for the call.
                        unsafe { f(i, user.0, conn, RILL_END_ERROR, RillStr::from_str(&why)) }
                    }
                });
                finish(&s, rx);
            }
        }
    });
    id
}

async fn run(s: Arc<SessionShared>, io: Io, mut rx: mpsc::UnboundedReceiver<Ctl>, origin: Origin) {
    let listener_id = match origin {
        Origin::Listener(id) => id,
        Origin::Connect => RILL_LISTENER_CONNECT,
        Origin::Session => RILL_LISTENER_SESSION,
    };
    let mut t = match io {
        Io::None => Transport::None,
        Io::Stream(r, w) => Transport::Stream(r, w),
        Io::Http(x) => {
            let status = open_http(&s, &x);
            if status < 0 {
                let _ = x.reply.send(HttpReply::Error(
                    http_status_for(status),
                    rill_status_name(status).into(),
                ));
                close_handles(&s);
                finish(&s, rx);
                return;
            }
            Transport::HttpPending(Some(x.reply))
        }
    };
    if !matches!(t, Transport::HttpPending(_)) {
        let status = {
            let (conn, mut user) = (s.conn_ptr(), s.user());
            let status = s.inst.call(|d, i| {
                // SAFETY: plugin callback; `user` is a local it may write.
                d.on_conn_open.map_or(RILL_ERR_UNSUPPORTED, |f| unsafe {
                    f(i, conn, listener_id, &mut user)
                })
            });
            s.user.store(user, Ordering::Release);
            status
        };
        if status < 0 {
            tracing::debug!(plugin = %s.inst.name, session = s.id, "on_conn_open refused: {}", rill_status_name(status));
            // No on_conn_close follows a refused open.
            close_handles(&s);
            finish(&s, rx);
            return;
        }
    }
    // Players hardly send anything: start small, grow for publishers.
    let mut buf = vec![0u8; READ_BUF_MIN];
    let mut scratch: Vec<Bytes> = Vec::with_capacity(32);
    let end: (u32, String) = loop {
        s.maybe_writable();
        if let Err(e) = answer_http(&s, &mut t) {
            break e;
        }
        let (paused, has_out, take_media) = {
            let st = s.st.lock();
            if let Some(c) = &st.close {
                break c.clone();
            }
            (
                st.paused,
                !st.out.is_empty(),
                // After RILL_FULL, no frames until on_conn_writable said so.
                st.out_bytes < HIGH_WATER && !st.want_writable,
            )
        };
        tokio::select! {
            biased;
            c = rx.recv() => {
                if let Some(c) = c {
                    if let Some(end) = s.on_ctl(c) {
                        break end;
                    }
                }
            }
            ev = io_step(&mut t, &s, &mut scratch, &mut buf, has_out, !paused) => match ev {
                IoEvent::Wrote(Ok(())) => {}
                IoEvent::Wrote(Err(e)) => break (RILL_END_PEER, format!("write: {e}")),
                IoEvent::Read(Ok(Some(data))) => {
                    if matches!(data, Incoming::Buf(n) if n == buf.len() && n < READ_BUF_MAX) {
                        buf.resize(buf.len() * 2, 0);
                    }
                    let data: &[u8] = match &data {
                        Incoming::Buf(n) => &buf[..*n],
                        Incoming::Msg(b) => b,
                    };
                    let (u, conn) = (s.user(), s.conn_ptr());
                    let st = s.inst.call(|d, i| {
                        // SAFETY: plugin callback; data is lent for the call.
                        d.on_conn_data.map_or(RILL_OK, |f| unsafe { f(i, u, conn, data.as_ptr(), data.len()) })
                    });
                    s.check("on_conn_data", st);
                }
                IoEvent::Read(Ok(None)) => break (RILL_END_PEER, "peer closed the connection".into()),
                IoEvent::Read(Err(e)) => break (RILL_END_ERROR, format!("read: {e}")),
                IoEvent::Changed(Ok(next)) => t = next,
                IoEvent::Changed(Err(end)) => break end,
            },
            m = poll_fn(|cx| s.poll_media(cx)), if take_media => s.on_media(m),
        }
    };
    // Flush what the plugin queued (an orderly end), unless the peer broke.
    if end.0 != RILL_END_ERROR {
        let _ = tokio::time::timeout(FLUSH_DEADLINE, flush(&mut t, &s, &mut scratch)).await;
    }
    if let Transport::HttpPending(Some(reply)) = std::mem::replace(&mut t, Transport::None) {
        let _ = reply.send(HttpReply::Error(
            500,
            format!("the plugin ended without answering: {}", end.1),
        ));
    }
    drop(t);
    s.st.lock().close.get_or_insert(end.clone());
    let (u, conn) = (s.user(), s.conn_ptr());
    s.inst.call(|d, i| {
        if let Some(f) = d.on_conn_close {
            // SAFETY: plugin callback, the session's last; `why` is lent.
            unsafe { f(i, u, conn, end.0, RillStr::from_str(&end.1)) }
        }
    });
    close_handles(&s);
    finish(&s, rx);
}

/// Calls `on_http_request` with views of the owned request.
fn open_http(s: &Arc<SessionShared>, x: &HttpExchange) -> i32 {
    let r = &x.req;
    let headers: Vec<RillHeader> = r
        .headers
        .iter()
        .map(|(n, v)| RillHeader {
            name: RillStr::from_str(n),
            value: RillStr::from_str(v),
        })
        .collect();
    let req = RillHttpRequest {
        struct_size: std::mem::size_of::<RillHttpRequest>() as u32,
        flags: if r.websocket {
            RILL_HTTP_UPGRADE_WEBSOCKET
        } else {
            0
        },
        method: RillStr::from_str(&r.method),
        path: RillStr::from_str(&r.path),
        query: RillStr::from_str(&r.query),
        headers: headers.as_ptr(),
        header_count: headers.len(),
        body: RillBytes::from_slice(&r.body),
    };
    let (conn, mut user) = (s.conn_ptr(), s.user());
    let route_id = x.route_id;
    let status = s.inst.call(|d, i| {
        // SAFETY: plugin callback; the request is lent for the call.
        d.on_http_request.map_or(RILL_ERR_NOT_FOUND, |f| unsafe {
            f(i, conn, route_id, &req, &mut user)
        })
    });
    s.user.store(user, Ordering::Release);
    status
}

/// Sends the plugin's HTTP answer once it gave one.
fn answer_http(s: &SessionShared, t: &mut Transport) -> Result<(), (u32, String)> {
    let Transport::HttpPending(reply) = t else {
        return Ok(());
    };
    let Some(answer) = s.st.lock().http_answer.take() else {
        return Ok(());
    };
    let Some(reply) = reply.take() else {
        return Ok(());
    };
    let gone = || (RILL_END_PEER, "the client went away".to_string());
    match answer {
        HttpAnswer::Respond {
            status,
            headers,
            body,
            length,
        } => {
            let (tx, chunks) = mpsc::channel(16);
            reply
                .send(HttpReply::Response {
                    status,
                    headers,
                    body,
                    length,
                    chunks,
                })
                .map_err(|_| gone())?;
            *t = Transport::Body(tx);
        }
        HttpAnswer::Upgrade { headers } => {
            let (socket, rx) = oneshot::channel();
            reply
                .send(HttpReply::Upgrade { headers, socket })
                .map_err(|_| gone())?;
            *t = Transport::WsPending(rx);
        }
    }
    Ok(())
}

enum Incoming {
    Buf(usize),
    Msg(Bytes),
}

enum IoEvent {
    Wrote(std::io::Result<()>),
    /// `Ok(None)`: the end of input.
    Read(std::io::Result<Option<Incoming>>),
    /// The transport changed (the WebSocket arrived) or ended (the HTTP
    /// client went away).
    Changed(Result<Transport, (u32, String)>),
}

fn gone() -> (u32, String) {
    (RILL_END_PEER, "the client went away".into())
}

/// One step of I/O on whatever the transport is now: a write when output
/// is queued, a read when reading is not paused, or a transport event.
async fn io_step(
    t: &mut Transport,
    s: &SessionShared,
    scratch: &mut Vec<Bytes>,
    buf: &mut [u8],
    can_write: bool,
    can_read: bool,
) -> IoEvent {
    match t {
        Transport::Stream(r, w) => tokio::select! {
            res = write_stream(w, s, scratch), if can_write => IoEvent::Wrote(res),
            res = r.read(buf), if can_read => IoEvent::Read(res.map(|n| (n > 0).then_some(Incoming::Buf(n)))),
            else => std::future::pending().await,
        },
        Transport::Body(tx) => tokio::select! {
            res = write_chan(tx, s, |o| o.data), if can_write => IoEvent::Wrote(res),
            _ = tx.closed() => IoEvent::Changed(Err(gone())),
        },
        Transport::Ws(stream, tx) => tokio::select! {
            res = write_chan(tx, s, ws_message), if can_write => IoEvent::Wrote(res),
            m = next_ws(stream), if can_read => IoEvent::Read(m),
            _ = tx.closed() => IoEvent::Changed(Err(gone())),
        },
        Transport::WsPending(rx) => match rx.await {
            Ok(ws) => {
                let (mut sink, stream) = ws.split();
                let (tx, mut out) = mpsc::channel::<Message>(16);
                tokio::spawn(async move {
                    while let Some(m) = out.recv().await {
                        if sink.send(m).await.is_err() {
                            return;
                        }
                    }
                    let _ = sink.close().await;
                });
                IoEvent::Changed(Ok(Transport::Ws(stream, tx)))
            }
            Err(_) => IoEvent::Changed(Err((RILL_END_PEER, "WebSocket upgrade failed".into()))),
        },
        Transport::None | Transport::HttpPending(_) => std::future::pending().await,
    }
}

fn ws_message(o: Out) -> Message {
    if o.text {
        Message::Text(String::from_utf8_lossy(&o.data).into_owned().into())
    } else {
        Message::Binary(o.data)
    }
}

async fn next_ws(stream: &mut SplitStream<WebSocket>) -> std::io::Result<Option<Incoming>> {
    loop {
        match stream.next().await {
            None | Some(Ok(Message::Close(_))) => return Ok(None),
            Some(Ok(Message::Binary(b))) => return Ok(Some(Incoming::Msg(b))),
            Some(Ok(Message::Text(t))) => {
                return Ok(Some(Incoming::Msg(Bytes::copy_from_slice(t.as_bytes()))))
            }
            Some(Ok(_)) => continue, // ping/pong: answered by the WebSocket layer
            Some(Err(e)) => return Err(std::io::Error::other(e)),
        }
    }
}

/// Drains what is queued before the session ends (bounded by the caller).
async fn flush(
    t: &mut Transport,
    s: &SessionShared,
    scratch: &mut Vec<Bytes>,
) -> std::io::Result<()> {
    while !s.st.lock().out.is_empty() {
        match t {
            Transport::Stream(_, w) => write_stream(w, s, scratch).await?,
            Transport::Body(tx) => write_chan(tx, s, |o| o.data).await?,
            Transport::Ws(_, tx) => write_chan(tx, s, ws_message).await?,
            _ => break,
        }
    }
    if let Transport::Stream(_, w) = t {
        w.shutdown().await?;
    }
    Ok(())
}

/// Sends the oldest queued item as one chunk or message (cancel-safe: the
/// item leaves the queue only once the channel took it).
async fn write_chan<T>(
    tx: &mpsc::Sender<T>,
    s: &SessionShared,
    map: impl FnOnce(Out) -> T,
) -> std::io::Result<()> {
    let permit = tx
        .reserve()
        .await
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::BrokenPipe))?;
    let mut st = s.st.lock();
    if let Some(o) = st.out.pop_front() {
        st.out_bytes -= o.data.len();
        drop(st);
        permit.send(map(o));
    }
    Ok(())
}

/// Writes up to 32 queued buffers in one vectored write and drops what was
/// written (cancel-safe: nothing leaves the queue before the write returns).
async fn write_stream(
    w: &mut Box<dyn AsyncWrite + Send + Unpin>,
    s: &SessionShared,
    scratch: &mut Vec<Bytes>,
) -> std::io::Result<()> {
    scratch.clear();
    scratch.extend(s.st.lock().out.iter().take(32).map(|o| o.data.clone()));
    let mut slices = [IoSlice::new(&[]); 32];
    for (sl, b) in slices.iter_mut().zip(scratch.iter()) {
        *sl = IoSlice::new(b);
    }
    let n = w.write_vectored(&slices[..scratch.len()]).await?;
    if n == 0 && !scratch.is_empty() {
        return Err(std::io::ErrorKind::WriteZero.into());
    }
    let mut st = s.st.lock();
    st.out_bytes -= n;
    let mut left = n;
    while left > 0 {
        let Some(front) = st.out.front_mut() else {
            break;
        };
        if front.data.len() <= left {
            left -= front.data.len();
            st.out.pop_front();
        } else {
            front.data.advance(left);
            left = 0;
        }
    }
    Ok(())
}

/// Closes the publishers and subscribers the plugin left open, and the
/// session's timers.
fn close_handles(s: &SessionShared) {
    let (subs, pubs) = {
        let mut st = s.st.lock();
        st.out.clear();
        (std::mem::take(&mut st.subs), std::mem::take(&mut st.pubs))
    };
    drop(subs);
    drop(pubs);
    let mut timers = s.inst.timers.lock();
    timers.retain(|_, (sid, abort, _)| {
        if *sid == s.id {
            abort.abort();
            false
        } else {
            true
        }
    });
}

/// Leaves the instance; posts that raced with the end are delivered with no
/// session, as the ABI promises.
fn finish(s: &Arc<SessionShared>, mut rx: mpsc::UnboundedReceiver<Ctl>) {
    s.inst.sessions.remove(&s.id);
    rx.close();
    while let Ok(c) = rx.try_recv() {
        if let Ctl::Post(arg) = c {
            s.inst.call(|d, i| {
                if let Some(f) = d.on_post {
                    // SAFETY: plugin callback; session gone: NULL session.
                    unsafe {
                        f(
                            i,
                            std::ptr::null_mut(),
                            std::ptr::null_mut(),
                            arg as *mut c_void,
                        )
                    };
                }
            });
        }
    }
    s.inst.sessions_changed.notify_waiters();
}
