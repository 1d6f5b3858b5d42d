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
use std::time::{Duration, Instant};

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

mod handles;
mod http;
mod timers;
mod transport;

pub(crate) use handles::{Filter, PubEntry, SubEntry};
use http::{answer_http, open_http};
pub(crate) use http::{http_status_for, HttpAnswer, HttpExchange};
pub use http::{HttpReply, HttpRequest};
pub(crate) use timers::{forget_timer, start_timer, timer_fires, MAX_TIMER_DELAY};
use transport::{flush, gone, io_step, read_with, IoEvent, Transport};
pub(crate) use transport::{shrink_after_burst, Io, OwnedHttp};

/// Above this many queued bytes a write returns `RILL_FULL` and frames stop
/// flowing to the session's subscribers.
pub const HIGH_WATER: usize = 1 << 20;
/// How often a streaming session reads its socket's unacknowledged bytes.
const OUTQ_EVERY: Duration = Duration::from_millis(500);
/// Below this, after a `RILL_FULL`/`RILL_ERR_AGAIN`, `on_conn_writable` runs.
pub const LOW_WATER: usize = 256 << 10;
/// A write that would queue more than this is refused (`RILL_ERR_AGAIN`).
pub const HARD_CAP: usize = 16 << 20;
/// How long queued output may take to flush when a session closes.
const FLUSH_DEADLINE: Duration = Duration::from_secs(5);
/// Most frames taken from a session's subscribers between two writes.
const MEDIA_BATCH: usize = 64;

static NEXT_SESSION: AtomicU64 = AtomicU64::new(1);

pub(crate) enum Ctl {
    Post(usize),
    Timer {
        handle: u64,
        timer_id: u64,
    },
    Close {
        reason: u32,
        why: String,
    },
    Udp(super::udp::SessionDatagram),
    /// A webhook's answer to a pending `admit`.
    Admit {
        ticket: u64,
        status: i32,
    },
    /// A storage or index call completed (`on_io`).
    Io(crate::storage::IoDone),
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

#[derive(Default)]
pub(crate) struct SessionState {
    out: VecDeque<Out>,
    out_bytes: usize,
    /// Bytes the socket took since the start (progress of a stalled peer).
    written: u64,
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
    /// An HTTP request on a connection the session owns (streaming
    /// route): its input is not the plugin's, and `chunked` frames writes.
    owned_http: bool,
    chunked: bool,
    /// HTTP response bodies: the HTTP server's task waiting for output,
    /// whether the client went away, and whether the body is complete.
    body_waker: Option<Waker>,
    body_gone: bool,
    body_done: bool,
    /// What admission allowed this session: (action, path).
    pub grants: Vec<(crate::admission::Action, String)>,
    /// HTTP sessions: the request's `Authorization` header.
    pub authorization: Option<String>,
    /// How to challenge the client if it is refused for credentials
    /// (`WWW-Authenticate` of the host's 401).
    pub challenge: Option<&'static str>,
    /// The connection's place in the per-address count, freed at the end.
    pub conn_slot: Option<crate::admission::ConnSlot>,
    /// Handles of this session's live timers.
    pub timers: Vec<u64>,
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
    /// Opened by the plugin toward a server (`connect`): a relay's own
    /// work, not a client the host admits.
    pub outbound: bool,
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

    pub(super) fn user(&self) -> *mut c_void {
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
        if st.chunked && !b.is_empty() {
            let head = Bytes::from(format!("{:x}\r\n", b.len()));
            st.out_bytes += head.len() + b.len() + 2;
            st.out.push_back(Out {
                data: head,
                text: false,
            });
            st.out.push_back(Out { data: b, text });
            st.out.push_back(Out {
                data: Bytes::from_static(b"\r\n"),
                text: false,
            });
        } else {
            st.out_bytes += b.len();
            if !b.is_empty() || text {
                st.out.push_back(Out { data: b, text });
            }
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

    /// A status from a session callback: negative ends the session.
    pub(super) fn check(&self, what: &str, status: i32) {
        if status < 0 {
            self.request_close(
                RILL_END_PLUGIN_ERROR,
                &format!("{what} returned {}", rill_status_name(status)),
            );
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
            Ctl::Admit { ticket, status } => {
                let s = self.inst.call(|d, i| {
                    // SAFETY: plugin callback for its own session.
                    d.on_admit
                        .map_or(RILL_OK, |f| unsafe { f(i, user, conn, ticket, status) })
                });
                self.check("on_admit", s);
            }
            Ctl::Io(done) => {
                let s = self.inst.call(|d, i| {
                    // SAFETY: plugin callback for its own session; the data
                    // is lent for the call.
                    d.on_io.map_or(RILL_OK, |f| unsafe {
                        f(
                            i,
                            user,
                            conn,
                            done.token,
                            done.status,
                            done.value,
                            RillBytes::from_slice(&done.data),
                        )
                    })
                });
                self.check("on_io", s);
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

/// Creates a session and runs it on its own task; gives what it was given
/// back when the instance is sealed (about to be destroyed).
pub(crate) fn spawn(
    inst: &Arc<Instance>,
    io: Io,
    origin: Origin,
    peer: String,
    local: String,
    preset_user: *mut c_void,
) -> Result<u64, Box<Refused>> {
    let sink = match io {
        Io::None => Sink::None,
        Io::Stream(..) | Io::Tls(..) => Sink::Stream,
        Io::OwnedHttp(..) => Sink::Http,
        Io::Http(..) => Sink::Http,
    };
    let s = match SessionShared::open(inst, peer, local, sink, false, preset_user) {
        Ok(s) => s,
        Err((peer, local)) => return Err(Box::new(Refused { io, peer, local })),
    };
    let id = s.id;
    inst.host.rt.spawn(run(s, io, origin));
    Ok(id)
}

impl SessionShared {
    /// The one constructor: a new session, registered with its instance
    /// (which a drain waits on); `finish` is its one way out.
    fn open(
        inst: &Arc<Instance>,
        peer: String,
        local: String,
        sink: Sink,
        outbound: bool,
        user: *mut c_void,
    ) -> Result<Arc<SessionShared>, (String, String)> {
        let s = Arc::new(SessionShared {
            id: NEXT_SESSION.fetch_add(1, Ordering::Relaxed),
            inst: inst.clone(),
            peer,
            local,
            sink,
            outbound,
            user: AtomicPtr::new(user),
            st: Mutex::new(SessionState::default()),
            ctl: CtlInbox::default(),
        });
        if inst.register(&s) {
            return Ok(s);
        }
        // Refused: the only reference; the addresses go back to the caller.
        match Arc::try_unwrap(s) {
            Ok(s) => Err((s.peer, s.local)),
            Err(_) => Err((String::new(), String::new())),
        }
    }
}

/// A session [`spawn`] could not open (its instance is sealed): what it
/// was given, back.
pub(crate) struct Refused {
    pub io: Io,
    pub peer: String,
    pub local: String,
}

/// Whether a streaming session's peer still takes what it is sent.
/// Progress is what the peer acknowledged: written to the socket minus
/// what the kernel still holds for it (`SIOCOUTQ`, read at most every
/// [`OUTQ_EVERY`]), so data parked in the kernel does not count.
struct StallWatch {
    outq: u64,
    outq_at: Instant,
    acked: u64,
    /// The acknowledged count, and since when it has not moved while
    /// output waits.
    since: (u64, Instant),
}

impl StallWatch {
    fn new() -> StallWatch {
        let now = Instant::now();
        StallWatch {
            outq: 0,
            outq_at: now,
            acked: 0,
            since: (0, now),
        }
    }

    /// The end of a session whose peer took nothing for `limit`.
    fn check(
        &mut self,
        st: &SessionState,
        t: &Transport,
        limit: Duration,
    ) -> Option<(u32, String)> {
        let now = Instant::now();
        if now >= self.outq_at {
            self.outq_at = now + OUTQ_EVERY;
            self.outq = match t {
                Transport::Stream(_, w) => crate::net::outq::unacked(w.as_ref()).unwrap_or(0),
                _ => 0,
            };
            self.acked = st.written.saturating_sub(self.outq);
        }
        if (st.out.is_empty() && self.outq == 0) || self.acked != self.since.0 {
            self.since = (self.acked, now);
            return None;
        }
        (now.duration_since(self.since.1) > limit).then(|| {
            (
                RILL_END_TOO_SLOW,
                format!(
                    "the player took nothing for {limit:?} ({} bytes waiting)",
                    st.out_bytes
                ),
            )
        })
    }

    /// When to look again if nothing else wakes the session.
    fn deadline(&self, limit: Duration) -> Instant {
        self.since.1 + limit + Duration::from_millis(100)
    }

    /// The kernel holds bytes the peer has not acknowledged.
    fn waits(&self) -> bool {
        self.outq > 0
    }
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
) -> Option<u64> {
    let s =
        SessionShared::open(inst, addr.clone(), String::new(), Sink::Stream, true, user).ok()?;
    let id = s.id;
    let user = UserPtr(user);
    inst.host.rt.spawn(async move {
        let user = user;
        if !s.inst.wait_created().await {
            finish(&s);
            return;
        }
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
    Some(id)
}

async fn run(s: Arc<SessionShared>, io: Io, origin: Origin) {
    // A session opened during `create` starts once the plugin has its
    // instance (and never, if `create` failed).
    if !s.inst.wait_created().await {
        close_handles(&s);
        finish(&s);
        return;
    }
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
        Io::OwnedHttp(o) => {
            s.st.lock().owned_http = true;
            let status = open_http(&s, o.route_id, &o.req);
            let mut sock = o.sock;
            if status < 0 {
                let code = http_status_for(status);
                let challenge = s.st.lock().challenge.filter(|_| code == 401);
                let answer = http::plain_response(code, rill_status_name(status), challenge);
                let _ = tokio::time::timeout(FLUSH_DEADLINE, async {
                    sock.write_all(&answer).await?;
                    sock.shutdown().await
                })
                .await;
                close_handles(&s);
                finish(&s);
                return;
            }
            let _ = sock.set_nodelay(true);
            let (r, w) = sock.into_split();
            let deadline = tokio::time::Instant::now() + s.inst.host.http_response_timeout();
            Transport::OwnedPending(r, w, deadline)
        }
        Io::Http(x) => {
            let status = open_http(&s, x.route_id, &x.req);
            if status < 0 {
                let code = http_status_for(status);
                let _ = x.reply.send(HttpReply::Error(
                    code,
                    rill_status_name(status).into(),
                    s.st.lock().challenge.filter(|_| code == 401),
                ));
                close_handles(&s);
                finish(&s);
                return;
            }
            let deadline = tokio::time::Instant::now() + s.inst.host.http_response_timeout();
            Transport::HttpPending(Some(x.reply), deadline)
        }
    };
    if !matches!(t, Transport::HttpPending(..) | Transport::OwnedPending(..)) {
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
    // A streaming connection whose peer reads nothing while output waits
    // is closed after `subscribe.max_lag` (read once per session).
    let mut stall = StallWatch::new();
    let stall_limit = s.inst.host.write_stall_limit();
    let mut send_capped = false;
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
        let (paused, has_out, take_media, plays) = {
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
            if !send_capped && st.streaming {
                // From the first frame on (the first burst included), so
                // that a peer that stops reading shows here as output that
                // waits, not as megabytes the kernel holds for it.
                send_capped = true;
                let sb = s.inst.host.streaming_send_buffer();
                if let (Transport::Stream(_, w), true) = (&t, sb > 0) {
                    let _ = socket2::SockRef::from(w.as_ref()).set_send_buffer_size(sb);
                }
            }
            if st.streaming {
                if let Some(end) = stall.check(&st, &t, stall_limit) {
                    break end;
                }
            }
            (
                st.paused,
                !st.out.is_empty(),
                st.takes_media(),
                st.streaming,
            )
        };
        // Wakes the loop to check a stall when nothing else happens.
        let stall_check = stall.deadline(stall_limit);
        tokio::select! {
            biased;
            _ = s.ctl.notify.notified() => {}
            ev = io_step(&mut t, &s, has_out, !paused) => match ev {
                IoEvent::Wrote(Ok(())) => {}
                IoEvent::Wrote(Err(e)) => break (RILL_END_PEER, format!("write: {e}")),
                IoEvent::Read(Ok(Some(data))) => s.on_data(&data),
                IoEvent::Readable(Ok(())) => {
                    let (Transport::Stream(r, _) | Transport::OwnedPending(r, _, _)) = &t else {
                        continue;
                    };
                    // An owned HTTP connection's input is no plugin's
                    // business (a player sends nothing more): only its end
                    // counts.
                    let owned = s.st.lock().owned_http;
                    match read_with(r, |data| if !owned { s.on_data(data) }) {
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
            _ = tokio::time::sleep_until(stall_check.into()), if plays && (has_out || stall.waits()) => {}
        }
    };
    // From here the plugin queues nothing more (and an HTTP body's reader
    // knows the session is ending).
    {
        let mut st = s.st.lock();
        st.close.get_or_insert(end.clone());
        // An owned HTTP connection ends its response: the last chunk, or
        // the host's own answer when the plugin gave none.
        let tail = match &t {
            Transport::OwnedPending(..) if end.0 == RILL_END_TIMEOUT => {
                Some(http::plain_response(504, &end.1, None))
            }
            Transport::OwnedPending(..) => Some(http::plain_response(
                500,
                &format!("the plugin ended without answering: {}", end.1),
                None,
            )),
            _ if st.chunked => Some(Bytes::from_static(b"0\r\n\r\n")),
            _ => None,
        };
        if let Some(tail) = tail {
            st.out_bytes += tail.len();
            st.out.push_back(Out {
                data: tail,
                text: false,
            });
        }
    }
    tracing::debug!(plugin = %s.inst.name, session = s.id, reason = end.0, "session ended: {}", end.1);
    // A peer that stopped reading gets a reset: what the kernel holds for
    // it goes now, instead of lingering behind a closed window.
    if end.0 == RILL_END_TOO_SLOW {
        match &t {
            Transport::Stream(_, w) => {
                let _ = socket2::SockRef::from(w.as_ref()).set_linger(Some(Duration::ZERO));
            }
            // Its writer would wait for ever to send a Close: dropped, the
            // connection closes.
            Transport::Ws(_, _, writer) => writer.abort(),
            _ => {}
        }
    }
    // Flush what the plugin queued (an orderly end), unless the peer broke
    // or stopped reading (it would only hold the end up).
    if end.0 != RILL_END_ERROR && end.0 != RILL_END_TOO_SLOW {
        let _ = tokio::time::timeout(FLUSH_DEADLINE, flush(&mut t, &s)).await;
    }
    s.end_body();
    if let Transport::HttpPending(Some(reply), _) = std::mem::replace(&mut t, Transport::None) {
        let _ = reply.send(if end.0 == RILL_END_TIMEOUT {
            HttpReply::Error(504, end.1.clone(), None)
        } else {
            HttpReply::Error(
                500,
                format!("the plugin ended without answering: {}", end.1),
                None,
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

/// Closes the publishers and subscribers the plugin left open, and the
/// session's timers.
fn close_handles(s: &SessionShared) {
    let (subs, pubs, udps, handles) = {
        let mut st = s.st.lock();
        st.out.clear();
        (
            std::mem::take(&mut st.subs),
            std::mem::take(&mut st.pubs),
            std::mem::take(&mut st.udps),
            std::mem::take(&mut st.timers),
        )
    };
    drop(subs);
    drop(pubs);
    drop(udps);
    let mut timers = s.inst.timers.lock();
    for h in handles {
        if let Some((_, abort, _)) = timers.remove(&h) {
            abort.abort();
        }
    }
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
