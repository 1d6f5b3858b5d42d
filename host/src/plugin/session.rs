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

use bytes::{Buf, Bytes};
use parking_lot::Mutex;
use rill_abi::*;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
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
}

#[derive(Default)]
pub(crate) struct SessionState {
    out: VecDeque<Bytes>,
    out_bytes: usize,
    want_writable: bool,
    close: Option<(u32, String)>,
    paused: bool,
    pub subs: Vec<Box<SubEntry>>,
    pub pubs: Vec<Box<PubEntry>>,
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
        if !b.is_empty() {
            st.out.push_back(b);
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
    let (mut rd, mut wr) = match io {
        Io::None => (None, None),
        Io::Stream(r, w) => (Some(r), Some(w)),
    };
    let mut buf = vec![0u8; 64 * 1024];
    let mut scratch: Vec<Bytes> = Vec::with_capacity(32);
    let end: (u32, String) = loop {
        s.maybe_writable();
        let (paused, has_out, take_media) = {
            let st = s.st.lock();
            if let Some(c) = &st.close {
                break c.clone();
            }
            (st.paused, !st.out.is_empty(), st.out_bytes < HIGH_WATER)
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
            r = write_some(wr.as_mut(), &s, &mut scratch), if has_out && wr.is_some() => {
                if let Err(e) = r {
                    break (RILL_END_ERROR, format!("write: {e}"));
                }
            }
            r = read_some(rd.as_mut(), &mut buf), if !paused && rd.is_some() => match r {
                Ok(0) => break (RILL_END_PEER, "peer closed the connection".into()),
                Ok(n) => {
                    let data = &buf[..n];
                    let (u, conn) = (s.user(), s.conn_ptr());
                    let st = s.inst.call(|d, i| {
                        // SAFETY: plugin callback; data is lent for the call.
                        d.on_conn_data.map_or(RILL_OK, |f| unsafe { f(i, u, conn, data.as_ptr(), data.len()) })
                    });
                    s.check("on_conn_data", st);
                }
                Err(e) => break (RILL_END_ERROR, format!("read: {e}")),
            },
            m = poll_fn(|cx| s.poll_media(cx)), if take_media => s.on_media(m),
        }
    };
    // Flush what the plugin queued (an orderly end), unless the socket broke.
    if let Some(w) = wr.as_mut() {
        if end.0 != RILL_END_ERROR {
            let _ = tokio::time::timeout(FLUSH_DEADLINE, async {
                while !s.st.lock().out.is_empty() {
                    if write_some(Some(&mut *w), &s, &mut scratch).await.is_err() {
                        break;
                    }
                }
                let _ = w.shutdown().await;
            })
            .await;
        }
    }
    drop(wr);
    drop(rd);
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

async fn read_some(
    rd: Option<&mut Box<dyn AsyncRead + Send + Unpin>>,
    buf: &mut [u8],
) -> std::io::Result<usize> {
    match rd {
        Some(r) => r.read(buf).await,
        None => std::future::pending().await,
    }
}

/// Writes what is queued (up to 32 buffers in one vectored write) and
/// drops what was written.
async fn write_some(
    wr: Option<&mut Box<dyn AsyncWrite + Send + Unpin>>,
    s: &SessionShared,
    scratch: &mut Vec<Bytes>,
) -> std::io::Result<()> {
    let Some(w) = wr else {
        return std::future::pending().await;
    };
    scratch.clear();
    scratch.extend(s.st.lock().out.iter().take(32).cloned());
    let mut slices = [IoSlice::new(&[]); 32];
    for (sl, b) in slices.iter_mut().zip(scratch.iter()) {
        *sl = IoSlice::new(b);
    }
    let n = w.write_vectored(&slices[..scratch.len()]).await?;
    if n == 0 {
        return Err(std::io::ErrorKind::WriteZero.into());
    }
    let mut st = s.st.lock();
    st.out_bytes -= n;
    let mut left = n;
    while left > 0 {
        let Some(front) = st.out.front_mut() else {
            break;
        };
        if front.len() <= left {
            left -= front.len();
            st.out.pop_front();
        } else {
            front.advance(left);
            left = 0;
        }
    }
    Ok(())
}
