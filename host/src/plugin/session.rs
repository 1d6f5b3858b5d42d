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
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket};
use bytes::{Buf, Bytes};
use futures_util::stream::SplitStream;
use futures_util::{SinkExt, StreamExt};
use parking_lot::Mutex;
use rill_abi::*;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
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
/// Size of the read buffer. There is one per runtime thread, not one per
/// session: input is lent to the plugin only for the `on_conn_data` call,
/// and a buffer per idle player was most of a player's memory.
const READ_BUF: usize = 64 << 10;
/// How long queued output may take to flush when a session closes.
const FLUSH_DEADLINE: Duration = Duration::from_secs(5);
/// Most frames taken from a session's subscribers between two writes.
const MEDIA_BATCH: usize = 64;

static NEXT_SESSION: AtomicU64 = AtomicU64::new(1);

pub(crate) enum Ctl {
    Post(usize),
    Timer { handle: u64, timer_id: u64 },
    Close { reason: u32, why: String },
    Udp(super::udp::SessionDatagram),
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
    /// UDP sockets of this session (`udp_bind`).
    #[allow(clippy::vec_box)]
    pub udps: Vec<Box<super::udp::SessionUdp>>,
    /// HTTP sessions: the answer not yet sent, and whether one was given.
    http_answer: Option<HttpAnswer>,
    http_answered: bool,
    /// A frame was handed to the plugin: the session streams media.
    streaming: bool,
    /// HTTP response bodies: the HTTP server's task waiting for output,
    /// whether the client went away, and whether the body is complete.
    body_waker: Option<Waker>,
    body_gone: bool,
    body_done: bool,
}

impl SessionState {
    /// Whether frames may be taken for the plugin now: the session is
    /// open, its output is below the high-water mark, and no `RILL_FULL`
    /// waits for `on_conn_writable`.
    fn takes_media(&self) -> bool {
        self.close.is_none() && self.out_bytes < HIGH_WATER && !self.want_writable
    }
}

pub(crate) struct SessionShared {
    pub id: u64,
    pub inst: Arc<Instance>,
    pub peer: String,
    pub local: String,
    pub sink: Sink,
    user: AtomicPtr<c_void>,
    pub st: Mutex<SessionState>,
    ctl: CtlInbox,
}

/// What other tasks ask of a session (posts, timers, close), in order. A
/// queue and a `Notify` rather than a channel: a channel's first block of
/// slots cost every idle player more than a kilobyte.
#[derive(Default)]
struct CtlInbox {
    /// The queue, and whether the session ended (nothing more is taken).
    queue: Mutex<(VecDeque<Ctl>, bool)>,
    notify: tokio::sync::Notify,
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

    /// Queues a control message for the session's task; false once the
    /// session ended.
    pub(crate) fn send(&self, c: Ctl) -> bool {
        {
            let mut q = self.ctl.queue.lock();
            if q.1 {
                return false;
            }
            q.0.push_back(c);
        }
        self.ctl.notify.notify_one();
        true
    }

    fn next_ctl(&self) -> Option<Ctl> {
        self.ctl.queue.lock().0.pop_front()
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
        let status = if st.out_bytes > HIGH_WATER {
            st.want_writable = true;
            RILL_FULL
        } else {
            RILL_OK
        };
        let body = st.body_waker.take();
        drop(st);
        if let Some(w) = body {
            w.wake();
        }
        status
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

    /// Binds a UDP socket for this session (`udp_bind`): its datagrams
    /// come to this session's task as `on_udp_data`.
    pub(crate) fn bind_udp(
        self: &Arc<Self>,
        addr: std::net::SocketAddr,
        socket_id: u32,
    ) -> std::io::Result<*mut RillUdp> {
        let std_sock = super::udp::bind(addr)?;
        let _g = self.inst.host.rt.enter();
        let socket = Arc::new(tokio::net::UdpSocket::from_std(std_sock)?);
        let local = socket.local_addr()?.to_string();
        let queued = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        // The task needs the handle's address, which exists once boxed:
        // start it parked and hand the address over.
        let (tx, rx) = oneshot::channel::<usize>();
        let weak = Arc::downgrade(self);
        let task = self.inst.host.rt.spawn({
            let (socket, queued) = (socket.clone(), queued.clone());
            async move {
                let Ok(udp) = rx.await else { return };
                super::udp::session_recv_loop(socket, udp, queued, move |d| {
                    weak.upgrade().is_some_and(|s| s.send(Ctl::Udp(d)))
                })
                .await
            }
        });
        let entry = Box::new(super::udp::SessionUdp {
            owner: Arc::as_ptr(self),
            socket,
            socket_id,
            local,
            task: task.abort_handle(),
            queued,
        });
        let p = &*entry as *const super::udp::SessionUdp;
        let _ = tx.send(p as usize);
        self.st.lock().udps.push(entry);
        Ok(p as *mut RillUdp)
    }

    /// Closes one of this session's UDP sockets (`udp_close`).
    pub(crate) fn close_udp(&self, p: *const super::udp::SessionUdp) -> bool {
        let mut st = self.st.lock();
        let before = st.udps.len();
        st.udps.retain(|u| !std::ptr::eq(&**u, p));
        before != st.udps.len()
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

    /// Completes an HTTP response body: the server sends what is queued,
    /// then the end of the body.
    fn end_body(&self) {
        let w = {
            let mut st = self.st.lock();
            st.body_done = true;
            st.body_waker.take()
        };
        if let Some(w) = w {
            w.wake();
        }
    }

    /// Hands input to the plugin.
    fn on_data(self: &Arc<Self>, data: &[u8]) {
        let (u, conn) = (self.user(), self.conn_ptr());
        let st = self.inst.call(|d, i| {
            // SAFETY: plugin callback; data is lent for the call.
            d.on_conn_data.map_or(RILL_OK, |f| unsafe {
                f(i, u, conn, data.as_ptr(), data.len())
            })
        });
        self.check("on_conn_data", st);
    }

    /// Takes up to `budget` frames that are already queued, without
    /// waiting, while the output is below the high-water mark.
    ///
    /// Polls with a no-op waker: the loop's `select!` polls again with the
    /// task's own waker before it sleeps, so no wake-up is lost.
    fn drain_media(self: &Arc<Self>, budget: usize) {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        for _ in 0..budget {
            if !self.st.lock().takes_media() {
                return;
            }
            match self.poll_media(&mut cx) {
                Poll::Ready(m) => self.on_media(m),
                Poll::Pending => return,
            }
        }
    }

    fn on_media(self: &Arc<Self>, m: Media) {
        let (inst, user, conn) = (&self.inst, self.user(), self.conn_ptr());
        match m {
            Media::Sub(p, Ok(frame)) => {
                // Decide under the lock, call without it: the plugin may
                // close this subscriber from inside the callback.
                let (first, skip) = {
                    let mut st = self.st.lock();
                    // SAFETY: p points into a Box owned by st.subs; we hold
                    // the lock, and it was live when poll_media returned.
                    let e = unsafe { &mut *p };
                    let skip = filtered(e.flags, &frame);
                    let first = !e.started;
                    e.started = true;
                    if !skip {
                        st.streaming = true;
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
            Ctl::Udp(d) => {
                let live = {
                    let st = self.st.lock();
                    st.udps
                        .iter()
                        .find(|u| std::ptr::eq(&***u, d.udp))
                        .map(|u| {
                            u.queued.fetch_sub(1, Ordering::Relaxed);
                            u.socket_id
                        })
                };
                // A datagram for a socket closed since is dropped.
                if let Some(socket_id) = live {
                    let from = d.from.to_string();
                    let s = self.inst.call(|desc, i| {
                        desc.on_udp_data.map_or(RILL_OK, |f| {
                            // SAFETY: plugin callback; the socket is live
                            // (in this session's list) and the bytes are
                            // lent for the call.
                            unsafe {
                                f(
                                    i,
                                    user,
                                    conn,
                                    d.udp as *mut RillUdp,
                                    socket_id,
                                    RillStr::from_str(&from),
                                    d.data.as_ptr(),
                                    d.data.len(),
                                )
                            }
                        })
                    });
                    self.check("on_udp_data", s);
                }
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
/// Longest timer delay (`timer_start` refuses more): a year keeps every
/// deadline far from the clock's range.
pub(crate) const MAX_TIMER_DELAY: Duration = Duration::from_secs(366 * 24 * 3600);

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
            let s = Arc::downgrade(s);
            Box::new(move || {
                s.upgrade()
                    .is_some_and(|s| s.send(Ctl::Timer { handle, timer_id }))
            })
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

/// A TLS stream of either side.
pub(crate) trait TlsIo: tokio::io::AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: tokio::io::AsyncRead + AsyncWrite + Send + Unpin> TlsIo for T {}

/// Bytes read from a TLS session at a time.
const TLS_READ: usize = 16 << 10;

/// The transport of a session.
pub(crate) enum Io {
    None,
    Stream(TcpStream),
    /// A TLS connection, handshake done (`RILL_LISTEN_TLS`,
    /// `RILL_CONNECT_TLS`).
    Tls(Box<dyn TlsIo>),
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
    /// It came over HTTPS.
    pub tls: bool,
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
        chunks: BodyChunks,
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
    Stream(OwnedReadHalf, OwnedWriteHalf),
    Tls(
        tokio::io::ReadHalf<Box<dyn TlsIo>>,
        tokio::io::WriteHalf<Box<dyn TlsIo>>,
    ),
    /// Waiting for the plugin's answer.
    /// Waiting for the plugin's answer, until the deadline
    /// (`http.response_timeout`).
    HttpPending(Option<oneshot::Sender<HttpReply>>, tokio::time::Instant),
    /// Streaming a response body.
    Body,
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
    let sink = match io {
        Io::None => Sink::None,
        Io::Stream(..) | Io::Tls(..) => Sink::Stream,
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
        ctl: CtlInbox::default(),
    });
    let id = s.id;
    inst.sessions.insert(id, s.clone());
    inst.host.rt.spawn(run(s, io, origin));
    id
}

struct UserPtr(*mut c_void);
// SAFETY: the plugin's opaque pointer, only handed back to the plugin.
unsafe impl Send for UserPtr {}

/// Connects to `addr`, then runs the session; a failure is reported with
/// `on_conn_close` as the ABI says.
pub(crate) fn spawn_connect(
    inst: &Arc<Instance>,
    addr: String,
    user: *mut c_void,
    tls: Option<Arc<rustls::ClientConfig>>,
) -> u64 {
    let s = Arc::new(SessionShared {
        id: NEXT_SESSION.fetch_add(1, Ordering::Relaxed),
        inst: inst.clone(),
        peer: addr.clone(),
        local: String::new(),
        sink: Sink::Stream,
        user: AtomicPtr::new(user),
        st: Mutex::new(SessionState::default()),
        ctl: CtlInbox::default(),
    });
    let id = s.id;
    inst.sessions.insert(id, s.clone());
    let user = UserPtr(user);
    inst.host.rt.spawn(async move {
        let user = user;
        let connected = tokio::time::timeout(Duration::from_secs(10), async {
            let sock = tokio::net::TcpStream::connect(&addr).await?;
            Ok::<Io, std::io::Error>(match tls {
                None => Io::Stream(sock),
                Some(config) => {
                    let _ = sock.set_nodelay(true);
                    Io::Tls(Box::new(
                        crate::net::tls_client::connect(config, &addr, sock).await?,
                    ))
                }
            })
        })
        .await;
        match connected {
            Ok(Ok(io)) => run(s, io, Origin::Connect).await,
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
                finish(&s);
            }
        }
    });
    id
}

async fn run(s: Arc<SessionShared>, io: Io, origin: Origin) {
    let listener_id = match origin {
        Origin::Listener(id) => id,
        Origin::Connect => RILL_LISTENER_CONNECT,
        Origin::Session => RILL_LISTENER_SESSION,
    };
    let mut t = match io {
        Io::None => Transport::None,
        Io::Stream(sock) => {
            // Until the session streams, its writes are small exchanges
            // that must not wait for the peer's delayed ACK.
            let _ = sock.set_nodelay(true);
            let (r, w) = sock.into_split();
            Transport::Stream(r, w)
        }
        Io::Tls(stream) => {
            let (r, w) = tokio::io::split(stream);
            Transport::Tls(r, w)
        }
        Io::Http(x) => {
            let status = open_http(&s, &x);
            if status < 0 {
                let _ = x.reply.send(HttpReply::Error(
                    http_status_for(status),
                    rill_status_name(status).into(),
                ));
                close_handles(&s);
                finish(&s);
                return;
            }
            let deadline = tokio::time::Instant::now() + s.inst.host.http_response_timeout();
            Transport::HttpPending(Some(x.reply), deadline)
        }
    };
    if !matches!(t, Transport::HttpPending(..)) {
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
            finish(&s);
            return;
        }
    }
    // Whether the session's first burst of media is out.
    let mut streaming = false;
    let end: (u32, String) = 'session: loop {
        while let Some(c) = s.next_ctl() {
            if let Some(end) = s.on_ctl(c) {
                break 'session end;
            }
        }
        s.maybe_writable();
        if let Err(e) = answer_http(&s, &mut t) {
            break e;
        }
        // Every frame already queued for this session goes out in the same
        // write: one wake-up and one syscall per dispatch round, not per
        // frame.
        s.drain_media(MEDIA_BATCH);
        let (paused, has_out, take_media) = {
            let st = s.st.lock();
            if let Some(c) = &st.close {
                break c.clone();
            }
            if st.body_gone {
                break gone();
            }
            if !streaming && st.streaming && st.out.is_empty() {
                // The handshake and the first burst are out: from now on
                // the kernel may merge a player's writes into fewer
                // packets (Nagle), as nginx-rtmp lets it.
                streaming = true;
                if let Transport::Stream(_, w) = &t {
                    if s.inst.host.nagle_when_streaming() {
                        let _ = w.as_ref().set_nodelay(false);
                    }
                }
            }
            (st.paused, !st.out.is_empty(), st.takes_media())
        };
        tokio::select! {
            biased;
            _ = s.ctl.notify.notified() => {}
            ev = io_step(&mut t, &s, has_out, !paused) => match ev {
                IoEvent::Wrote(Ok(())) => {}
                IoEvent::Wrote(Err(e)) => break (RILL_END_PEER, format!("write: {e}")),
                IoEvent::Read(Ok(Some(data))) => s.on_data(&data),
                IoEvent::Readable(Ok(())) => {
                    let Transport::Stream(r, _) = &t else { continue };
                    match read_with(r, |data| s.on_data(data)) {
                        Ok(true) => {}
                        Ok(false) => break (RILL_END_PEER, "peer closed the connection".into()),
                        Err(e) => break (RILL_END_ERROR, format!("read: {e}")),
                    }
                }
                IoEvent::Readable(Err(e)) => break (RILL_END_ERROR, format!("read: {e}")),
                IoEvent::Read(Ok(None)) => break (RILL_END_PEER, "peer closed the connection".into()),
                IoEvent::Read(Err(e)) => break (RILL_END_ERROR, format!("read: {e}")),
                IoEvent::Changed(Ok(next)) => t = next,
                IoEvent::Changed(Err(end)) => break end,
            },
            m = poll_fn(|cx| s.poll_media(cx)), if take_media => s.on_media(m),
        }
    };
    // From here the plugin queues nothing more (and an HTTP body's reader
    // knows the session is ending).
    s.st.lock().close.get_or_insert(end.clone());
    // Flush what the plugin queued (an orderly end), unless the peer broke.
    if end.0 != RILL_END_ERROR {
        let _ = tokio::time::timeout(FLUSH_DEADLINE, flush(&mut t, &s)).await;
    }
    s.end_body();
    if let Transport::HttpPending(Some(reply), _) = std::mem::replace(&mut t, Transport::None) {
        let _ = reply.send(if end.0 == RILL_END_TIMEOUT {
            HttpReply::Error(504, end.1.clone())
        } else {
            HttpReply::Error(
                500,
                format!("the plugin ended without answering: {}", end.1),
            )
        });
    }
    drop(t);
    let (u, conn) = (s.user(), s.conn_ptr());
    s.inst.call(|d, i| {
        if let Some(f) = d.on_conn_close {
            // SAFETY: plugin callback, the session's last; `why` is lent.
            unsafe { f(i, u, conn, end.0, RillStr::from_str(&end.1)) }
        }
    });
    close_handles(&s);
    finish(&s);
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
        } | if r.tls { RILL_HTTP_TLS } else { 0 },
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
fn answer_http(s: &Arc<SessionShared>, t: &mut Transport) -> Result<(), (u32, String)> {
    let Transport::HttpPending(reply, _) = t else {
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
            let chunks = BodyChunks { s: s.clone() };
            reply
                .send(HttpReply::Response {
                    status,
                    headers,
                    body,
                    length,
                    chunks,
                })
                .map_err(|_| gone())?;
            *t = Transport::Body;
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

enum IoEvent {
    Wrote(std::io::Result<()>),
    /// A WebSocket message; `Ok(None)`: the end of input.
    Read(std::io::Result<Option<Bytes>>),
    /// The TCP socket has input (or an error) to read.
    Readable(std::io::Result<()>),
    /// The transport changed (the WebSocket arrived) or ended (the HTTP
    /// client went away).
    Changed(Result<Transport, (u32, String)>),
}

fn gone() -> (u32, String) {
    (RILL_END_PEER, "the client went away".into())
}

/// One step of I/O on whatever the transport is now: a write when output
/// is queued, a read when reading is not paused, or a transport event.
async fn io_step(t: &mut Transport, s: &SessionShared, can_write: bool, can_read: bool) -> IoEvent {
    match t {
        Transport::Tls(r, w) => tokio::select! {
            res = write_tls(w, s), if can_write => IoEvent::Wrote(res),
            res = read_tls(r), if can_read => IoEvent::Read(res),
            else => std::future::pending().await,
        },
        Transport::Stream(r, w) => tokio::select! {
            res = write_stream(w, s), if can_write => IoEvent::Wrote(res),
            res = r.readable(), if can_read => IoEvent::Readable(res),
            else => std::future::pending().await,
        },
        // The HTTP server pulls the body from the queue (`BodyChunks`);
        // its progress and the client's going away wake the session's
        // control inbox.
        Transport::Body => std::future::pending().await,
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
        Transport::HttpPending(_, deadline) => {
            tokio::time::sleep_until(*deadline).await;
            IoEvent::Changed(Err((
                RILL_END_TIMEOUT,
                "the plugin gave no answer within http.response_timeout".into(),
            )))
        }
        Transport::None => std::future::pending().await,
    }
}

fn ws_message(o: Out) -> Message {
    if o.text {
        Message::Text(String::from_utf8_lossy(&o.data).into_owned().into())
    } else {
        Message::Binary(o.data)
    }
}

async fn next_ws(stream: &mut SplitStream<WebSocket>) -> std::io::Result<Option<Bytes>> {
    loop {
        match stream.next().await {
            None | Some(Ok(Message::Close(_))) => return Ok(None),
            Some(Ok(Message::Binary(b))) => return Ok(Some(b)),
            Some(Ok(Message::Text(t))) => return Ok(Some(Bytes::copy_from_slice(t.as_bytes()))),
            Some(Ok(_)) => continue, // ping/pong: answered by the WebSocket layer
            Some(Err(e)) => return Err(std::io::Error::other(e)),
        }
    }
}

/// Drains what is queued before the session ends (bounded by the caller).
async fn flush(t: &mut Transport, s: &SessionShared) -> std::io::Result<()> {
    while !s.st.lock().out.is_empty() {
        match t {
            Transport::Stream(_, w) => write_stream(w, s).await?,
            Transport::Tls(_, w) => write_tls(w, s).await?,
            Transport::Body => {
                if s.st.lock().body_gone {
                    break;
                }
                s.ctl.notify.notified().await;
            }
            Transport::Ws(_, tx) => write_chan(tx, s, ws_message).await?,
            _ => break,
        }
    }
    match t {
        Transport::Stream(_, w) => w.shutdown().await?,
        // close_notify, then the TCP shutdown.
        Transport::Tls(_, w) => w.shutdown().await?,
        _ => {}
    }
    Ok(())
}

/// Reads what a TLS session has decrypted; `None` at the end of input.
/// (Cancel-safe: a read that did not complete took nothing.)
async fn read_tls(r: &mut tokio::io::ReadHalf<Box<dyn TlsIo>>) -> std::io::Result<Option<Bytes>> {
    use tokio::io::AsyncReadExt;
    let mut buf = bytes::BytesMut::with_capacity(TLS_READ);
    match r.read_buf(&mut buf).await? {
        0 => Ok(None),
        _ => Ok(Some(buf.freeze())),
    }
}

/// Writes queued output into the TLS session, and pushes the records
/// to the socket once the queue is empty (rustls may hold the tail).
async fn write_tls(
    w: &mut tokio::io::WriteHalf<Box<dyn TlsIo>>,
    s: &SessionShared,
) -> std::io::Result<()> {
    write_stream(w, s).await?;
    if s.st.lock().out.is_empty() {
        w.flush().await?;
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
        shrink_after_burst(&mut st.out);
        drop(st);
        permit.send(map(o));
    }
    Ok(())
}

/// The body of an HTTP response a plugin streams: the HTTP server's task
/// takes the session's queued output from here directly, without a channel
/// in between. Dropping it (the client went away) ends the session.
pub struct BodyChunks {
    s: Arc<SessionShared>,
}

impl BodyChunks {
    /// The next chunk; `None` once the session ended and all was sent.
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Bytes>> {
        let mut st = self.s.st.lock();
        let Some(o) = st.out.pop_front() else {
            if st.body_done {
                return Poll::Ready(None);
            }
            match &st.body_waker {
                Some(w) if w.will_wake(cx.waker()) => {}
                _ => st.body_waker = Some(cx.waker().clone()),
            }
            return Poll::Pending;
        };
        let before = st.out_bytes;
        st.out_bytes -= o.data.len();
        shrink_after_burst(&mut st.out);
        // Wake the session when this makes room it waits for, or when it
        // waits for the queue to drain before it ends.
        let wake = (before >= HIGH_WATER && st.out_bytes < HIGH_WATER)
            || (st.want_writable && st.out_bytes < LOW_WATER)
            || (st.close.is_some() && st.out.is_empty());
        drop(st);
        if wake {
            self.s.ctl.notify.notify_one();
        }
        Poll::Ready(Some(o.data))
    }
}

impl Drop for BodyChunks {
    fn drop(&mut self) {
        self.s.st.lock().body_gone = true;
        self.s.ctl.notify.notify_one();
    }
}

thread_local! {
    static READ_BUFFER: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Reads what the socket has into this thread's read buffer and lends it
/// to `f`. `Ok(false)`: the peer closed its side.
fn read_with(r: &OwnedReadHalf, f: impl FnOnce(&[u8])) -> std::io::Result<bool> {
    READ_BUFFER.with_borrow_mut(|buf| {
        if buf.is_empty() {
            buf.resize(READ_BUF, 0);
        }
        match r.try_read(buf) {
            Ok(0) => Ok(false),
            Ok(n) => {
                f(&buf[..n]);
                Ok(true)
            }
            // A spurious readiness: wait again.
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Ok(true),
            Err(e) => Err(e),
        }
    })
}

/// A queue that a burst (a player's first GOP) grew keeps its capacity
/// forever unless it is given back once the burst is out.
pub(crate) fn shrink_after_burst<T>(q: &mut VecDeque<T>) {
    if q.is_empty() && q.capacity() > 64 {
        q.shrink_to(8);
    }
}

/// Most buffers one vectored write takes.
const MAX_IOV: usize = 64;

/// Writes up to [`MAX_IOV`] queued buffers in one vectored write and drops
/// what was written. The queue is borrowed under the lock for the
/// non-blocking write itself, so nothing is cloned, and nothing leaves the
/// queue before the kernel took it (cancel-safe).
async fn write_stream<W: AsyncWrite + Unpin>(w: &mut W, s: &SessionShared) -> std::io::Result<()> {
    poll_fn(|cx| {
        let mut st = s.st.lock();
        let mut slices = [IoSlice::new(&[]); MAX_IOV];
        let mut n = 0;
        for (sl, o) in slices.iter_mut().zip(st.out.iter()) {
            *sl = IoSlice::new(&o.data);
            n += 1;
        }
        let wrote = match Pin::new(&mut *w).poll_write_vectored(cx, &slices[..n]) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Ready(Ok(0)) if n > 0 => {
                return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into()))
            }
            Poll::Ready(Ok(k)) => k,
        };
        st.out_bytes -= wrote;
        let mut left = wrote;
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
        shrink_after_burst(&mut st.out);
        Poll::Ready(Ok(()))
    })
    .await
}

/// Closes the publishers and subscribers the plugin left open, and the
/// session's timers.
fn close_handles(s: &SessionShared) {
    let (subs, pubs, udps) = {
        let mut st = s.st.lock();
        st.out.clear();
        (
            std::mem::take(&mut st.subs),
            std::mem::take(&mut st.pubs),
            std::mem::take(&mut st.udps),
        )
    };
    drop(subs);
    drop(pubs);
    drop(udps);
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
fn finish(s: &Arc<SessionShared>) {
    s.inst.sessions.remove(&s.id);
    let left = {
        let mut q = s.ctl.queue.lock();
        q.1 = true;
        std::mem::take(&mut q.0)
    };
    for c in left {
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
