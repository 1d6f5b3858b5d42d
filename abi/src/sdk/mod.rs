//! The safe Rust SDK for plugins (feature `sdk`, on by default).
//!
//! Implement [`Plugin`] and export it:
//!
//! ```no_run
//! use rill_abi::sdk::{Conn, Host, Plugin, Result};
//!
//! struct Echo;
//!
//! impl Plugin for Echo {
//!     type Session = ();
//!     fn create(host: &Host) -> Result<Self> {
//!         host.listen("127.0.0.1:7000", 1, 0)?;
//!         Ok(Echo)
//!     }
//!     fn on_conn_open(&self, _conn: &Conn, _listener: u32) -> Result<()> {
//!         Ok(())
//!     }
//!     fn on_data(&self, _s: &mut (), conn: &Conn, data: &[u8]) -> Result<()> {
//!         conn.write(data).map(drop)
//!     }
//! }
//!
//! rill_abi::export_plugin!(Echo, "echo", "0.1.0");
//! ```
//!
//! The crate is a `cdylib`. [`export_plugin!`](crate::export_plugin) emits `rill_plugin_entry_v1`,
//! the static descriptor and one trampoline per callback; each trampoline
//! catches panics (a panic becomes `RILL_ERR_PANIC`, an error log line
//! through the host and, in a session callback, the end of that session:
//! it never unwinds across `extern "C"`). Build plugins with
//! `panic = "unwind"` (the default) for that to work.
//!
//! Sessions: each connection, HTTP request, outbound connection or
//! socket-less session owns one `Plugin::Session` value, created by
//! [`Plugin::on_conn_open`] / [`Plugin::on_http_request`] (or given to
//! [`Host::connect`] / [`Host::session_open`]) and handed back by value to
//! [`Plugin::on_close`]. The host never runs two callbacks of one session at
//! once, so callbacks get `&mut Self::Session`. Keep a session's
//! [`Publisher`], [`Subscriber`] and [`Udp`] handles inside that session's
//! state: they are only valid with it (dropping one closes it).

use core::any::Any;
use core::ffi::c_void;
use core::fmt;
use core::marker::PhantomData;
use core::mem::ManuallyDrop;
use core::ptr;
use std::time::Duration;

use crate::{
    RillConn, RillFrame, RillFrameBuf, RillHeader, RillHost, RillHostApi, RillHttpRequest,
    RillPublisher, RillReleaseFn, RillStr, RillSubscribeOptions, RillSubscriber,
    RillSubscriberStats, RillUdp,
};

#[doc(hidden)]
pub mod config;
pub mod range;
pub mod trampolines;

pub use crate::frame::{RillFrameInfo as FrameInfo, RillTrackInfo as TrackInfo};
pub use crate::host_api::RillSubscriberStats as SubscriberStats;
pub use storage::{ClusterOwner, FileId, Recording};

/// A failed call: a negative `RILL_ERR_*` status.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Error(pub i32);

impl Error {
    /// `RILL_ERR_INVALID`.
    pub const INVALID: Error = Error(crate::RILL_ERR_INVALID);
    /// `RILL_ERR_NOT_FOUND`.
    pub const NOT_FOUND: Error = Error(crate::RILL_ERR_NOT_FOUND);
    /// `RILL_ERR_BUSY`.
    pub const BUSY: Error = Error(crate::RILL_ERR_BUSY);
    /// `RILL_ERR_CLOSED`.
    pub const CLOSED: Error = Error(crate::RILL_ERR_CLOSED);
    /// `RILL_ERR_AGAIN`.
    pub const AGAIN: Error = Error(crate::RILL_ERR_AGAIN);
    /// `RILL_ERR_NOMEM`.
    pub const NOMEM: Error = Error(crate::RILL_ERR_NOMEM);
    /// `RILL_ERR_UNSUPPORTED`.
    pub const UNSUPPORTED: Error = Error(crate::RILL_ERR_UNSUPPORTED);
    /// `RILL_ERR_TIMEOUT`.
    pub const TIMEOUT: Error = Error(crate::RILL_ERR_TIMEOUT);
    /// `RILL_ERR_PANIC`.
    pub const PANIC: Error = Error(crate::RILL_ERR_PANIC);
    /// `RILL_ERR_DENIED`.
    pub const DENIED: Error = Error(crate::RILL_ERR_DENIED);
    /// `RILL_ERR_IO`.
    pub const IO: Error = Error(crate::RILL_ERR_IO);
    /// `RILL_ERR_PROTOCOL`.
    pub const PROTOCOL: Error = Error(crate::RILL_ERR_PROTOCOL);
    /// `RILL_ERR_INTERNAL`.
    pub const INTERNAL: Error = Error(crate::RILL_ERR_INTERNAL);
    /// `RILL_ERR_UNAUTHORIZED` (added in 1.2).
    pub const UNAUTHORIZED: Error = Error(crate::RILL_ERR_UNAUTHORIZED);
    /// The disk is full (storage calls).
    pub const NO_SPACE: Error = Error(crate::RILL_ERR_NO_SPACE);

    /// The HTTP (or RTSP) status that answers an admission refusal
    /// ([`Plugin::on_admit`]): 401 for credentials, 503 for a limit, 403
    /// otherwise.
    pub const fn refusal_status(self) -> u16 {
        match self {
            Error::UNAUTHORIZED => 401,
            Error::BUSY => 503,
            _ => 403,
        }
    }

    /// The status code.
    pub const fn code(self) -> i32 {
        self.0
    }

    /// `Ok` for `RILL_OK` and positive codes, `Err` for negative ones.
    pub const fn check(status: i32) -> Result<i32> {
        if status < 0 {
            Err(Error(status))
        } else {
            Ok(status)
        }
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Error({} {})", self.0, crate::rill_status_name(self.0))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", crate::rill_status_name(self.0), self.0)
    }
}

impl std::error::Error for Error {}

/// `Result` with the SDK's [`Error`].
pub type Result<T, E = Error> = core::result::Result<T, E>;

/// What a successful write reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flow {
    /// Queued; keep writing.
    Ready,
    /// Queued, but the outbound queue is above its high-water mark: write
    /// nothing more until [`Plugin::on_writable`].
    Full,
}

impl Flow {
    fn from_status(status: i32) -> Result<Flow> {
        match Error::check(status)? {
            crate::RILL_FULL => Ok(Flow::Full),
            _ => Ok(Flow::Ready),
        }
    }
}

/// Log levels (`RILL_LOG_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u32)]
pub enum Level {
    /// `RILL_LOG_ERROR`.
    Error = crate::RILL_LOG_ERROR,
    /// `RILL_LOG_WARN`.
    Warn = crate::RILL_LOG_WARN,
    /// `RILL_LOG_INFO`.
    Info = crate::RILL_LOG_INFO,
    /// `RILL_LOG_DEBUG`.
    Debug = crate::RILL_LOG_DEBUG,
    /// `RILL_LOG_TRACE`.
    Trace = crate::RILL_LOG_TRACE,
}

/// HTTP response body framing for [`Conn::http_respond`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Body {
    /// Exactly this many bytes follow (0: no body).
    Fixed(u64),
    /// Chunked transfer encoding: each write is a chunk.
    Chunked,
    /// Until the connection closes (HTTP-FLV).
    UntilClose,
}

/// Calls a host API entry, mapping a missing (NULL) entry to an error.
macro_rules! api {
    ($host:expr, $f:ident) => {
        $host.api().$f.ok_or(Error::UNSUPPORTED)
    };
}

// After `api!`, which it uses.
mod storage;

struct HostInner {
    api: RillHostApi,
    raw: *mut RillHost,
}

/// The host, as handed to [`Plugin::create`]: a cheap `Copy` handle, valid
/// until the instance is destroyed.
///
/// Thread-safe methods (callable from the plugin's own threads): [`Host::post`],
/// the logging and clock methods, and the frame constructors. Everything
/// else only from inside a callback (`listen`/`http_route` only in
/// `create`).
#[derive(Clone, Copy)]
pub struct Host {
    inner: &'static HostInner,
}

// SAFETY: the table is immutable; the host's thread-safe calls may be made
// from any thread, and the contract for the others is documented.
unsafe impl Send for Host {}
// SAFETY: as for Send.
unsafe impl Sync for Host {}

impl fmt::Debug for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Host")
            .field("raw", &self.inner.raw)
            .finish()
    }
}

fn rstr(s: &str) -> RillStr {
    RillStr::from_str(s)
}

/// # Safety
/// `s` must point to valid bytes for `'a` (as the host promises for the
/// strings it returns or passes).
unsafe fn host_str<'a>(s: RillStr) -> &'a str {
    // SAFETY: forwarded contract. Invalid UTF-8 (a host bug) reads as "".
    unsafe { s.to_str() }.unwrap_or("")
}

fn dur_us(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

impl Host {
    /// Wraps the table and context `create` received. The table is copied
    /// (fields past the host's `struct_size` read as NULL) and the copy is
    /// leaked on purpose: frames and handles may outlive the instance, and
    /// the library is never unloaded anyway.
    ///
    /// # Safety
    /// `api` and `raw` must be what the host passed to `create`.
    pub unsafe fn from_raw(api: *const RillHostApi, raw: *mut RillHost) -> Option<Host> {
        // SAFETY: forwarded contract.
        let api = unsafe { crate::rill_read_host_api(api) }?;
        let inner: &'static HostInner = Box::leak(Box::new(HostInner { api, raw }));
        Some(Host { inner })
    }

    /// The copied host table (for calls the SDK does not wrap).
    pub fn api(&self) -> &RillHostApi {
        &self.inner.api
    }

    /// The raw host context.
    pub fn raw(&self) -> *mut RillHost {
        self.inner.raw
    }

    /// Logs a message. Thread-safe.
    pub fn log(&self, level: Level, msg: &str) {
        if let Some(f) = self.api().log {
            // SAFETY: valid host context; msg borrowed for the call.
            unsafe { f(self.raw(), level as u32, rstr(msg)) }
        }
    }

    /// Whether `level` is logged. Thread-safe.
    pub fn log_enabled(&self, level: Level) -> bool {
        match self.api().log_enabled {
            // SAFETY: valid host context.
            Some(f) => unsafe { f(self.raw(), level as u32) != 0 },
            None => true,
        }
    }

    /// Formats and logs, only when `level` is enabled. Thread-safe.
    pub fn logf(&self, level: Level, args: fmt::Arguments<'_>) {
        if self.log_enabled(level) {
            match args.as_str() {
                Some(s) => self.log(level, s),
                None => self.log(level, &args.to_string()),
            }
        }
    }

    /// The plugin's config section as YAML text (a copy).
    pub fn config(&self) -> String {
        match self.api().config {
            // SAFETY: valid host context; the text is valid until destroy and
            // copied here.
            Some(f) => unsafe { host_str(f(self.raw())) }.to_owned(),
            None => String::new(),
        }
    }

    /// The plugin's config section read by `parse`, for `create`: what
    /// `parse` refuses is logged as an error and becomes
    /// [`Error::INVALID`], which fails the load (or the reload).
    pub fn parse_config<T, E: fmt::Display>(
        &self,
        parse: impl FnOnce(&str) -> core::result::Result<T, E>,
    ) -> Result<T> {
        parse(&self.config()).map_err(|e| {
            self.log(Level::Error, &e.to_string());
            Error::INVALID
        })
    }

    /// Monotonic clock, µs. Thread-safe.
    pub fn now_us(&self) -> i64 {
        match self.api().clock_monotonic_us {
            // SAFETY: valid host context.
            Some(f) => unsafe { f(self.raw()) },
            None => 0,
        }
    }

    /// Wall clock, µs since the Unix epoch. Thread-safe.
    pub fn wall_us(&self) -> i64 {
        match self.api().clock_wall_us {
            // SAFETY: valid host context.
            Some(f) => unsafe { f(self.raw()) },
            None => 0,
        }
    }

    /// A writable frame buffer of `len` bytes. Thread-safe.
    pub fn frame_alloc(&self, len: usize) -> Result<FrameBuf> {
        let f = api!(self, frame_alloc)?;
        let mut data: *mut u8 = ptr::null_mut();
        // SAFETY: valid host context; `data` is a valid out pointer.
        let raw = unsafe { f(self.raw(), len, &mut data) };
        if raw.is_null() || (data.is_null() && len > 0) {
            return Err(Error::NOMEM);
        }
        Ok(FrameBuf {
            host: *self,
            raw,
            data,
            len,
        })
    }

    /// A frame holding a copy of `data`. Thread-safe.
    pub fn frame_copy(&self, data: &[u8], info: &FrameInfo) -> Result<FrameRef> {
        let f = api!(self, frame_copy)?;
        // SAFETY: valid host context; data and info borrowed for the call.
        let raw = unsafe { f(self.raw(), data.as_ptr(), data.len(), info) };
        FrameRef::from_owned(*self, raw).ok_or(Error::NOMEM)
    }

    /// A frame over `owner`'s bytes without copying; `owner` is dropped
    /// (on some host thread) when the last reference goes. Thread-safe.
    pub fn frame_wrap<T>(&self, owner: T, info: &FrameInfo) -> Result<FrameRef>
    where
        T: AsRef<[u8]> + Send + Sync + 'static,
    {
        unsafe extern "C" fn release<T>(user: *mut c_void, _data: *const u8, _len: usize) {
            // SAFETY: `user` is the Box::into_raw below, released exactly once.
            let owner = unsafe { Box::from_raw(user as *mut T) };
            // A panicking Drop must not unwind into the host.
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(owner)));
        }
        let f = api!(self, frame_wrap)?;
        let boxed = Box::new(owner);
        let bytes = (*boxed).as_ref();
        let (data, len) = (bytes.as_ptr(), bytes.len());
        let user = Box::into_raw(boxed) as *mut c_void;
        // SAFETY: the bytes live in the box until `release` runs; `release`
        // matches T; info is borrowed for the call.
        let raw = unsafe {
            f(
                self.raw(),
                data,
                len,
                RillReleaseFn(Some(release::<T>)),
                user,
                info,
            )
        };
        if raw.is_null() {
            // SAFETY: on failure the host does not call release: the box is ours.
            drop(unsafe { Box::from_raw(user as *mut T) });
            return Err(Error::NOMEM);
        }
        // SAFETY: non-null new reference.
        Ok(unsafe { FrameRef::from_owned_unchecked(*self, raw) })
    }

    /// Listens on TCP `addr` (only in `create`); connections arrive at
    /// [`Plugin::on_conn_open`] with `listener_id`. `flags`: `RILL_LISTEN_*`.
    pub fn listen(&self, addr: &str, listener_id: u32, flags: u32) -> Result<()> {
        let f = api!(self, listen)?;
        // SAFETY: valid host context; addr borrowed for the call.
        Error::check(unsafe { f(self.raw(), rstr(addr), listener_id, flags) }).map(drop)
    }

    /// Binds an instance UDP socket (only in `create`, ABI 1.1): datagrams
    /// from every peer arrive at [`Plugin::on_udp_packet`] with
    /// `socket_id`; the socket passes to the next generation on a reload.
    pub fn udp_listen(&self, addr: &str, socket_id: u32) -> Result<()> {
        let f = api!(self, udp_listen)?;
        // SAFETY: valid host context; addr borrowed for the call.
        Error::check(unsafe { f(self.raw(), rstr(addr), socket_id, 0) }).map(drop)
    }

    /// Sends one datagram from instance socket `socket_id` (ABI 1.1; any
    /// thread). `Error::AGAIN`: the send queue is full, dropped.
    pub fn udp_send(&self, socket_id: u32, to: std::net::SocketAddr, data: &[u8]) -> Result<()> {
        let f = api!(self, udp_send)?;
        let to = crate::RillSockAddr::from(to);
        // SAFETY: valid host context; arguments borrowed for the call.
        Error::check(unsafe { f(self.raw(), socket_id, &to, data.as_ptr(), data.len()) }).map(drop)
    }

    /// [`Host::http_route`] with `RILL_ROUTE_*` flags (ABI 1.1), e.g.
    /// `RILL_ROUTE_STREAM` for long streamed responses.
    pub fn http_route_flags(
        &self,
        method: &str,
        pattern: &str,
        route_id: u32,
        flags: u32,
    ) -> Result<()> {
        let f = api!(self, http_route_flags)?;
        // SAFETY: valid host context; strings borrowed for the call.
        Error::check(unsafe { f(self.raw(), rstr(method), rstr(pattern), route_id, flags) })
            .map(drop)
    }

    /// Routes HTTP requests (only in `create`): `method` "" for any,
    /// `pattern` exact, `/prefix/*` or `*.suffix`.
    pub fn http_route(&self, method: &str, pattern: &str, route_id: u32) -> Result<()> {
        let f = api!(self, http_route)?;
        // SAFETY: valid host context; strings borrowed for the call.
        Error::check(unsafe { f(self.raw(), rstr(method), rstr(pattern), route_id) }).map(drop)
    }

    /// Opens an outbound connection whose session state is `state` (it must
    /// be the plugin's `Session` type); it starts at
    /// [`Plugin::on_session_open`] with `RILL_LISTENER_CONNECT`, or ends at
    /// [`Plugin::on_close`] if connecting fails. Returns the session's id.
    pub fn connect<S: Send + 'static>(&self, addr: &str, flags: u32, state: S) -> Result<ConnId> {
        let f = api!(self, connect)?;
        let cell = trampolines::SessionCell::new_raw(state);
        let mut id = 0u64;
        // SAFETY: valid host context; on success the host owns `cell` until
        // it hands it back to on_conn_open/on_conn_close.
        let rc = unsafe { f(self.raw(), rstr(addr), flags, cell as *mut c_void, &mut id) };
        if rc < 0 {
            // SAFETY: on failure no callback follows: the cell is still ours.
            unsafe { trampolines::SessionCell::<S>::free_raw(cell) };
            return Err(Error(rc));
        }
        Ok(ConnId(id))
    }

    /// Opens a socket-less session whose state is `state` (the plugin's
    /// `Session` type); it starts at [`Plugin::on_session_open`] with
    /// `RILL_LISTENER_SESSION`. Returns its id.
    pub fn session_open<S: Send + 'static>(&self, state: S) -> Result<ConnId> {
        let f = api!(self, session_open)?;
        let cell = trampolines::SessionCell::new_raw(state);
        let mut id = 0u64;
        // SAFETY: as in `connect`.
        let rc = unsafe { f(self.raw(), cell as *mut c_void, &mut id) };
        if rc < 0 {
            // SAFETY: on failure no callback follows: the cell is still ours.
            unsafe { trampolines::SessionCell::<S>::free_raw(cell) };
            return Err(Error(rc));
        }
        Ok(ConnId(id))
    }

    /// Opens a session for one remote peer of an instance UDP socket
    /// (ABI 1.3): like [`Host::session_open`], but `peer` counts as the
    /// session's address for the per-address limits (`Error::BUSY` when
    /// over them: no session, `state` dropped), IP rules, webhooks and the
    /// API, and opening a stream checks it as for a connection.
    pub fn session_open_peer<S: Send + 'static>(
        &self,
        state: S,
        peer: std::net::SocketAddr,
        local: &str,
    ) -> Result<ConnId> {
        let f = api!(self, session_open_peer)?;
        let cell = trampolines::SessionCell::new_raw(state);
        let peer = peer.to_string();
        let mut id = 0u64;
        // SAFETY: as in `connect`; strings borrowed for the call.
        let rc = unsafe {
            f(
                self.raw(),
                cell as *mut c_void,
                rstr(&peer),
                rstr(local),
                &mut id,
            )
        };
        if rc < 0 {
            // SAFETY: on failure no callback follows: the cell is still ours.
            unsafe { trampolines::SessionCell::<S>::free_raw(cell) };
            return Err(Error(rc));
        }
        Ok(ConnId(id))
    }

    /// Sets a metric of this plugin (ABI 1.5): `rill_plugin_<plugin>_<name>`
    /// with `labels` at `/metrics`. `counter`: a running total, else a
    /// gauge. `f64::NAN` removes the series.
    pub fn metric_set(
        &self,
        name: &str,
        labels: &[(&str, &str)],
        counter: bool,
        value: f64,
    ) -> Result<()> {
        let f = api!(self, metric_set)?;
        let mut text = String::new();
        for (i, (k, v)) in labels.iter().enumerate() {
            if i > 0 {
                text.push(',');
            }
            text.push_str(k);
            text.push('=');
            text.push_str(v);
        }
        let kind = if counter {
            crate::RILL_METRIC_COUNTER
        } else {
            crate::RILL_METRIC_GAUGE
        };
        // SAFETY: the strings are lent for the call.
        Error::check(unsafe { f(self.raw(), rstr(name), rstr(&text), kind, value) }).map(drop)
    }

    /// Pins (`on`) or unpins the URL space `path` to this instance
    /// (ABI 1.6): requests to the plugin's routes at `path`, or under it
    /// after a `/` or `.`, stay with this generation after a reload until
    /// it unpins. For state that lives in the instance (an HLS muxer's
    /// segments) and must outlive a reload for the viewers using it.
    pub fn http_pin(&self, path: &str, on: bool) -> Result<()> {
        let f = api!(self, http_pin)?;
        // SAFETY: valid host context; the string is lent for the call.
        Error::check(unsafe { f(self.raw(), rstr(path), u32::from(on)) }).map(drop)
    }

    /// Publishes `frame`'s bytes as the immutable HTTP object at `path`
    /// (ABI 1.8): the host answers GET and HEAD for it from then on,
    /// after the admission a play of `stream` gets, without a session of
    /// the plugin. See `RillHostApi::http_publish`.
    pub fn http_publish(
        &self,
        path: &str,
        stream: &str,
        content_type: &str,
        frame: &FrameRef,
    ) -> Result<()> {
        let f = api!(self, http_publish)?;
        // SAFETY: valid host context; strings and frame lent for the call.
        Error::check(unsafe {
            f(
                self.raw(),
                rstr(path),
                rstr(stream),
                rstr(content_type),
                frame.raw,
            )
        })
        .map(drop)
    }

    /// Removes the object at `path` or its expectation (ABI 1.8).
    pub fn http_unpublish(&self, path: &str) -> Result<()> {
        let f = api!(self, http_unpublish)?;
        // SAFETY: valid host context; the string is lent for the call.
        Error::check(unsafe { f(self.raw(), rstr(path)) }).map(drop)
    }

    /// Announces that `path`, an object of `stream`, will be published
    /// within `wait` (ABI 1.8): the host holds the requests for it it
    /// admitted until then, instead of passing them to the plugin.
    pub fn http_expect(&self, path: &str, stream: &str, wait: Duration) -> Result<()> {
        let f = api!(self, http_expect)?;
        let ms = wait.as_millis().min(u32::MAX as u128) as u32;
        // SAFETY: valid host context; the strings are lent for the call.
        Error::check(unsafe { f(self.raw(), rstr(path), rstr(stream), ms) }).map(drop)
    }

    /// Starts an instance-level timer ([`Plugin::on_timer`] with no
    /// session).
    pub fn timer_start(&self, delay: Duration, repeat: bool, timer_id: u64) -> Result<TimerHandle> {
        timer_start(self, ptr::null_mut(), delay, repeat, timer_id)
    }

    /// Cancels a timer.
    pub fn timer_cancel(&self, timer: TimerHandle) -> Result<()> {
        let f = api!(self, timer_cancel)?;
        // SAFETY: valid host context.
        Error::check(unsafe { f(self.raw(), timer.0) }).map(drop)
    }

    /// Thread-safe: delivers `msg` to [`Plugin::on_post`] on session `to`
    /// (or the instance with [`ConnId::INSTANCE`]). On error `msg` is
    /// returned.
    pub fn post(
        &self,
        to: ConnId,
        msg: Box<dyn Any + Send>,
    ) -> Result<(), (Error, Box<dyn Any + Send>)> {
        let Some(f) = self.api().post else {
            return Err((Error::UNSUPPORTED, msg));
        };
        let arg = Box::into_raw(Box::new(msg)) as *mut c_void;
        // SAFETY: valid host context; on RILL_OK the host delivers `arg` to
        // on_post exactly once, where the trampoline takes the box back.
        let rc = unsafe { f(self.raw(), to.0, arg) };
        if rc < 0 {
            // SAFETY: not accepted: the box is still ours.
            let msg = unsafe { *Box::from_raw(arg as *mut Box<dyn Any + Send>) };
            return Err((Error(rc), msg));
        }
        Ok(())
    }
}

fn timer_start(
    host: &Host,
    conn: *mut RillConn,
    delay: Duration,
    repeat: bool,
    timer_id: u64,
) -> Result<TimerHandle> {
    let f = api!(host, timer_start)?;
    let mut h = 0u64;
    // SAFETY: valid host context; conn is NULL or this callback's session.
    let rc = unsafe {
        f(
            host.raw(),
            conn,
            dur_us(delay),
            repeat as u32,
            timer_id,
            &mut h,
        )
    };
    Error::check(rc).map(|_| TimerHandle(h))
}

/// Logs through a [`Host`] with `format!` syntax, formatting only when the
/// level is enabled: `rill_log!(host, Info, "listening on {}", addr)`.
#[macro_export]
macro_rules! rill_log {
    ($host:expr, $level:ident, $($arg:tt)+) => {
        $crate::sdk::Host::logf(&$host, $crate::sdk::Level::$level, ::core::format_args!($($arg)+))
    };
}

/// A session's process-wide id (from `conn_id`): how other threads name it
/// in [`Host::post`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);

impl ConnId {
    /// Posts addressed to the instance rather than a session.
    pub const INSTANCE: ConnId = ConnId(0);
}

/// A timer's handle, for [`Host::timer_cancel`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TimerHandle(pub u64);

/// The session a callback runs for: its connection (if any) and the calls
/// that need it. Only valid during the callback; not `Send`.
pub struct Conn {
    host: Host,
    raw: *mut RillConn,
}

impl fmt::Debug for Conn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Conn").field("raw", &self.raw).finish()
    }
}

impl Conn {
    pub(crate) fn new(host: Host, raw: *mut RillConn) -> Conn {
        Conn { host, raw }
    }

    /// The host.
    pub fn host(&self) -> &Host {
        &self.host
    }

    /// The raw handle.
    pub fn raw(&self) -> *mut RillConn {
        self.raw
    }

    /// The session's id (for posts from other threads).
    pub fn id(&self) -> ConnId {
        match self.host.api().conn_id {
            // SAFETY: a live session handle during its callback.
            Some(f) => ConnId(unsafe { f(self.raw) }),
            None => ConnId(0),
        }
    }

    /// Queues a copy of `data` for sending.
    pub fn write(&self, data: &[u8]) -> Result<Flow> {
        let f = api!(self.host, conn_write)?;
        // SAFETY: live session handle; data borrowed for the call.
        Flow::from_status(unsafe { f(self.raw, data.as_ptr(), data.len()) })
    }

    /// Answers an HTTP request whole: the head with `content_type` and the
    /// length, `body`, and the end of the response.
    pub fn http_reply(&self, status: u16, content_type: &str, body: &[u8]) -> Result<()> {
        self.http_respond(
            status,
            &[("content-type", content_type)],
            Body::Fixed(body.len() as u64),
        )?;
        self.write(body)?;
        self.close(crate::RILL_END_NORMAL)
    }

    /// Queues a frame's bytes for sending without copying.
    pub fn write_frame(&self, frame: &FrameRef) -> Result<Flow> {
        let f = api!(self.host, conn_write_frame)?;
        // SAFETY: live session handle; frame borrowed for the call.
        Flow::from_status(unsafe { f(self.raw, frame.raw) })
    }

    /// Bytes queued and not yet sent.
    pub fn pending(&self) -> u64 {
        match self.host.api().conn_pending {
            // SAFETY: live session handle.
            Some(f) => unsafe { f(self.raw) },
            None => 0,
        }
    }

    /// Stops or resumes reading.
    pub fn pause_read(&self, paused: bool) -> Result<()> {
        let f = api!(self.host, conn_pause_read)?;
        // SAFETY: live session handle.
        Error::check(unsafe { f(self.raw, paused as u32) }).map(drop)
    }

    /// Ends the session (`RILL_END_*` reason); [`Plugin::on_close`] follows.
    pub fn close(&self, reason: u32) -> Result<()> {
        let f = api!(self.host, conn_close)?;
        // SAFETY: live session handle.
        Error::check(unsafe { f(self.raw, reason) }).map(drop)
    }

    /// The peer's `ip:port` (empty for socket-less sessions).
    pub fn peer_addr(&self) -> &str {
        match self.host.api().conn_peer_addr {
            // SAFETY: live handle; the string lives as long as the session,
            // which outlives this borrow of the callback's Conn.
            Some(f) => unsafe { host_str(f(self.raw)) },
            None => "",
        }
    }

    /// The local `ip:port` (empty for socket-less sessions).
    pub fn local_addr(&self) -> &str {
        match self.host.api().conn_local_addr {
            // SAFETY: as for peer_addr.
            Some(f) => unsafe { host_str(f(self.raw)) },
            None => "",
        }
    }

    /// Asks the host whether this session may publish or play
    /// ([`Admission::action`]); see `admit` in the header. `Ok(true)`:
    /// allowed now. `Ok(false)`: a webhook decides, the answer arrives at
    /// [`Plugin::on_admit`] with `ticket`. `Err`: refused now
    /// ([`Error::UNAUTHORIZED`], [`Error::DENIED`], [`Error::BUSY`]). A host
    /// older than 1.2 has no admission call: `Ok(true)`, and
    /// `publish`/`subscribe` decide.
    pub fn admit(&self, req: &Admission<'_>, ticket: u64) -> Result<bool> {
        let Ok(f) = api!(self.host, admit) else {
            return Ok(true);
        };
        let mut raw = crate::RillAdmission::new(req.action, rstr(req.path));
        raw.query = rstr(req.query);
        raw.user = rstr(req.user);
        raw.password = rstr(req.password);
        raw.token = rstr(req.token);
        // SAFETY: valid host and session; the request is borrowed.
        let rc = unsafe { f(self.host.raw(), self.raw, &raw, ticket) };
        if rc == crate::RILL_PENDING {
            return Ok(false);
        }
        Error::check(rc).map(|_| true)
    }

    /// Publishes stream `path` from this session.
    pub fn publish(&self, path: &str, query: &str) -> Result<Publisher> {
        let f = api!(self.host, publish_open)?;
        let mut out: *mut RillPublisher = ptr::null_mut();
        // SAFETY: valid host and session; strings borrowed; out valid.
        let rc = unsafe { f(self.host.raw(), self.raw, rstr(path), rstr(query), &mut out) };
        Error::check(rc)?;
        if out.is_null() {
            return Err(Error::INTERNAL);
        }
        Ok(Publisher {
            host: self.host,
            raw: out,
        })
    }

    /// Opens a writer of derived tracks on stream `path` (ABI 1.7,
    /// `publish_derived`): a transformer's output, in the stream's own
    /// timeline. `UNSUPPORTED` on older hosts.
    pub fn publish_derived(&self, path: &str) -> Result<Publisher> {
        let f = api!(self.host, publish_derived)?;
        let mut out: *mut RillPublisher = ptr::null_mut();
        // SAFETY: valid host and session; the path is borrowed; out valid.
        let rc = unsafe { f(self.host.raw(), self.raw, rstr(path), &mut out) };
        Error::check(rc)?;
        if out.is_null() {
            return Err(Error::INTERNAL);
        }
        Ok(Publisher {
            host: self.host,
            raw: out,
        })
    }

    /// Subscribes this session to stream `path`; frames arrive at
    /// [`Plugin::on_frame`].
    pub fn subscribe(
        &self,
        path: &str,
        query: &str,
        opts: Option<&RillSubscribeOptions>,
    ) -> Result<Subscriber> {
        let f = api!(self.host, subscribe_open)?;
        let mut out: *mut RillSubscriber = ptr::null_mut();
        let opts = opts.map_or(ptr::null(), |o| o as *const _);
        // SAFETY: valid host and session; arguments borrowed; out valid.
        let rc = unsafe {
            f(
                self.host.raw(),
                self.raw,
                rstr(path),
                rstr(query),
                opts,
                &mut out,
            )
        };
        Error::check(rc)?;
        if out.is_null() {
            return Err(Error::INTERNAL);
        }
        Ok(Subscriber {
            host: self.host,
            raw: out,
        })
    }

    /// Starts a timer for this session ([`Plugin::on_timer`]).
    pub fn timer_start(&self, delay: Duration, repeat: bool, timer_id: u64) -> Result<TimerHandle> {
        timer_start(&self.host, self.raw, delay, repeat, timer_id)
    }

    /// Sends the HTTP response head; then write the body and [`Conn::close`].
    pub fn http_respond(&self, status: u16, headers: &[(&str, &str)], body: Body) -> Result<()> {
        let f = api!(self.host, http_respond)?;
        let hs = raw_headers(headers);
        let (kind, len) = match body {
            Body::Fixed(n) => (crate::RILL_HTTP_BODY_FIXED, n),
            Body::Chunked => (crate::RILL_HTTP_BODY_CHUNKED, 0),
            Body::UntilClose => (crate::RILL_HTTP_BODY_CLOSE, 0),
        };
        // SAFETY: live session; headers borrowed for the call.
        Error::check(unsafe { f(self.raw, status as u32, hs.as_ptr(), hs.len(), kind, len) })
            .map(drop)
    }

    /// Accepts a WebSocket upgrade; writes then send binary messages.
    pub fn upgrade_websocket(&self, headers: &[(&str, &str)]) -> Result<()> {
        let f = api!(self.host, http_upgrade_websocket)?;
        let hs = raw_headers(headers);
        // SAFETY: live session; headers borrowed for the call.
        Error::check(unsafe { f(self.raw, hs.as_ptr(), hs.len()) }).map(drop)
    }

    /// Sends one WebSocket message (`RILL_WS_TEXT` / `RILL_WS_BINARY`).
    pub fn ws_send(&self, opcode: u32, data: &[u8]) -> Result<Flow> {
        let f = api!(self.host, ws_send)?;
        // SAFETY: live session; data borrowed for the call.
        Flow::from_status(unsafe { f(self.raw, opcode, data.as_ptr(), data.len()) })
    }

    /// Binds a UDP socket for this session; datagrams arrive at
    /// [`Plugin::on_udp_data`] with `socket_id`.
    pub fn udp_bind(&self, addr: &str, socket_id: u32) -> Result<Udp> {
        let f = api!(self.host, udp_bind)?;
        let mut out: *mut RillUdp = ptr::null_mut();
        // SAFETY: valid host and session; addr borrowed; out valid.
        let rc = unsafe { f(self.host.raw(), self.raw, rstr(addr), socket_id, &mut out) };
        Error::check(rc)?;
        if out.is_null() {
            return Err(Error::INTERNAL);
        }
        Ok(Udp {
            host: self.host,
            raw: out,
        })
    }
}

fn raw_headers(headers: &[(&str, &str)]) -> Vec<RillHeader> {
    headers
        .iter()
        .map(|(n, v)| RillHeader {
            name: rstr(n),
            value: rstr(v),
        })
        .collect()
}

/// What [`Conn::admit`] asks: an action on a stream, with the credentials
/// the protocol carried (empty where it carries none).
#[derive(Clone, Copy, Debug, Default)]
pub struct Admission<'a> {
    /// `RILL_ACTION_PUBLISH` or `RILL_ACTION_PLAY`.
    pub action: u32,
    /// `app/name`.
    pub path: &'a str,
    /// The client's query string, without `?`.
    pub query: &'a str,
    /// A user name carried outside the query (RTSP, HTTP Basic).
    pub user: &'a str,
    /// Its password.
    pub password: &'a str,
    /// A bearer token carried outside the query.
    pub token: &'a str,
}

impl<'a> Admission<'a> {
    /// Publishing `path` with `query`.
    pub fn publish(path: &'a str, query: &'a str) -> Self {
        Admission {
            action: crate::RILL_ACTION_PUBLISH,
            path,
            query,
            ..Default::default()
        }
    }

    /// Playing `path` with `query`.
    pub fn play(path: &'a str, query: &'a str) -> Self {
        Admission {
            action: crate::RILL_ACTION_PLAY,
            path,
            query,
            ..Default::default()
        }
    }
}

/// An HTTP request, borrowed for [`Plugin::on_http_request`].
pub struct HttpRequest<'a> {
    req: RillHttpRequest,
    _life: PhantomData<&'a RillHttpRequest>,
}

impl<'a> HttpRequest<'a> {
    /// # Safety
    /// `p` must be the request the host passed, valid for `'a`.
    pub(crate) unsafe fn from_raw(p: *const RillHttpRequest) -> Option<HttpRequest<'a>> {
        // SAFETY: forwarded contract.
        let req = unsafe { crate::rill_read_sized(p) }?;
        Some(HttpRequest {
            req,
            _life: PhantomData,
        })
    }

    /// The raw request (a full copy of the host's struct).
    pub fn raw(&self) -> &RillHttpRequest {
        &self.req
    }

    /// Method (`GET`, ...).
    pub fn method(&self) -> &'a str {
        // SAFETY: host strings valid for the request's life 'a.
        unsafe { host_str(self.req.method) }
    }

    /// Path, percent-encoded, without the query.
    pub fn path(&self) -> &'a str {
        // SAFETY: as for method.
        unsafe { host_str(self.req.path) }
    }

    /// Query string without `?`.
    pub fn query(&self) -> &'a str {
        // SAFETY: as for method.
        unsafe { host_str(self.req.query) }
    }

    /// The headers (names lower-case).
    pub fn headers(&self) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
        let hs: &'a [RillHeader] = if self.req.headers.is_null() || self.req.header_count == 0 {
            &[]
        } else {
            // SAFETY: the host passed `header_count` headers valid for 'a.
            unsafe { core::slice::from_raw_parts(self.req.headers, self.req.header_count) }
        };
        // SAFETY: as for method.
        hs.iter()
            .map(|h| unsafe { (host_str(h.name), host_str(h.value)) })
    }

    /// The first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&'a str> {
        self.headers()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// The request body.
    pub fn body(&self) -> &'a [u8] {
        // SAFETY: host bytes valid for 'a.
        unsafe { self.req.body.as_slice() }
    }

    /// Whether the client asks for a WebSocket upgrade.
    pub fn wants_websocket(&self) -> bool {
        self.req.flags & crate::RILL_HTTP_UPGRADE_WEBSOCKET != 0
    }
}

/// A reference to a host frame: `Clone` retains, `Drop` releases. `Send`
/// and `Sync` (frame calls are thread-safe).
pub struct FrameRef {
    host: Host,
    raw: *mut RillFrame,
}

// SAFETY: frames are immutable, refcounted host objects whose calls are
// thread-safe by contract.
unsafe impl Send for FrameRef {}
// SAFETY: as for Send.
unsafe impl Sync for FrameRef {}

impl fmt::Debug for FrameRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FrameRef")
            .field("info", &self.info())
            .field("len", &self.data().len())
            .finish()
    }
}

impl FrameRef {
    fn from_owned(host: Host, raw: *mut RillFrame) -> Option<FrameRef> {
        (!raw.is_null()).then_some(FrameRef { host, raw })
    }

    /// # Safety
    /// `raw` must be a non-null reference the caller owns.
    unsafe fn from_owned_unchecked(host: Host, raw: *mut RillFrame) -> FrameRef {
        FrameRef { host, raw }
    }

    /// Views a borrowed frame (from `on_frame`) without taking a reference:
    /// the result must not outlive the borrow and is never dropped.
    ///
    /// # Safety
    /// `raw` must be a frame borrowed for the current callback.
    pub(crate) unsafe fn borrowed(host: Host, raw: *const RillFrame) -> ManuallyDrop<FrameRef> {
        ManuallyDrop::new(FrameRef {
            host,
            raw: raw as *mut RillFrame,
        })
    }

    /// Takes ownership of a raw reference (e.g. from a host call made
    /// through [`Host::api`]). `None` when NULL.
    ///
    /// # Safety
    /// `raw` must be NULL or a reference the caller owns (it is released on
    /// drop).
    pub unsafe fn from_raw(host: Host, raw: *mut RillFrame) -> Option<FrameRef> {
        FrameRef::from_owned(host, raw)
    }

    /// Gives up ownership: the caller must release the returned reference.
    pub fn into_raw(self) -> *mut RillFrame {
        ManuallyDrop::new(self).raw
    }

    /// The raw handle (borrowed).
    pub fn as_raw(&self) -> *const RillFrame {
        self.raw
    }

    /// The payload.
    pub fn data(&self) -> &[u8] {
        match self.host.api().frame_data {
            // SAFETY: we hold (or borrow) a reference; the bytes live as long.
            Some(f) => unsafe { f(self.raw).as_slice() },
            None => &[],
        }
    }

    /// The payload as [`bytes::Bytes`] holding a reference to the frame (no
    /// copy), for code that works on `Bytes` (muxers, packetizers).
    #[cfg(feature = "bytes")]
    pub fn to_bytes(&self) -> bytes::Bytes {
        bytes::Bytes::from_owner(FrameBytes(self.clone()))
    }

    /// The metadata.
    pub fn info(&self) -> FrameInfo {
        let mut info = FrameInfo::new();
        if let Some(f) = self.host.api().frame_info {
            // SAFETY: live frame; info is a valid out struct with struct_size.
            unsafe { f(self.raw, &mut info) };
        }
        info
    }

    /// A new frame over `[offset, offset + len)` of this one (no copy),
    /// with `info` or this frame's metadata.
    pub fn slice(&self, offset: usize, len: usize, info: Option<&FrameInfo>) -> Result<FrameRef> {
        let f = api!(self.host, frame_slice)?;
        let info = info.map_or(ptr::null(), |i| i as *const _);
        // SAFETY: live frame; info borrowed.
        let raw = unsafe { f(self.raw, offset, len, info) };
        FrameRef::from_owned(self.host, raw).ok_or(Error::INVALID)
    }

    /// The cached companion for `key` (see `frame_cache_get`).
    pub fn cache_get(&self, key: u64) -> Option<FrameRef> {
        let f = self.host.api().frame_cache_get?;
        // SAFETY: valid host; live frame.
        let raw = unsafe { f(self.host.raw(), self.raw, key) };
        FrameRef::from_owned(self.host, raw)
    }

    /// Caches `value` as this frame's companion for `key`.
    pub fn cache_set(&self, key: u64, value: &FrameRef) -> Result<()> {
        let f = api!(self.host, frame_cache_set)?;
        // SAFETY: valid host; both frames live; the host retains its own.
        Error::check(unsafe { f(self.host.raw(), self.raw, key, value.raw) }).map(drop)
    }

    /// The cached companion for `key`, or `make(self)` cached and returned.
    /// When another session cached one first, that one is returned.
    pub fn cache_get_or(
        &self,
        key: u64,
        make: impl FnOnce(&FrameRef) -> Result<FrameRef>,
    ) -> Result<FrameRef> {
        if let Some(hit) = self.cache_get(key) {
            return Ok(hit);
        }
        let made = make(self)?;
        match self.cache_set(key, &made) {
            Err(Error::BUSY) => Ok(self.cache_get(key).unwrap_or(made)),
            _ => Ok(made),
        }
    }
}

impl Clone for FrameRef {
    fn clone(&self) -> Self {
        let f = self
            .host
            .api()
            .frame_retain
            .expect("host API has no frame_retain");
        // SAFETY: live frame; retain returns a new reference we own.
        let raw = unsafe { f(self.raw) };
        assert!(!raw.is_null(), "frame_retain returned NULL");
        FrameRef {
            host: self.host,
            raw,
        }
    }
}

impl Drop for FrameRef {
    fn drop(&mut self) {
        if let Some(f) = self.host.api().frame_release {
            // SAFETY: we own this reference and give it back once.
            unsafe { f(self.raw) }
        }
    }
}

/// A writable frame buffer from [`Host::frame_alloc`]; [`FrameBuf::freeze`]
/// turns it into a frame without copying. Dropping it frees it.
pub struct FrameBuf {
    host: Host,
    raw: *mut RillFrameBuf,
    data: *mut u8,
    len: usize,
}

// SAFETY: the buffer is exclusively ours; frame calls are thread-safe.
unsafe impl Send for FrameBuf {}

impl FrameBuf {
    /// The writable bytes.
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        if self.len == 0 {
            return &mut [];
        }
        // SAFETY: the host gave us `len` writable bytes, exclusively ours
        // until freeze/free.
        unsafe { core::slice::from_raw_parts_mut(self.data, self.len) }
    }

    /// Turns the first `len` bytes into a frame with `info`.
    pub fn freeze(self, len: usize, info: &FrameInfo) -> Result<FrameRef> {
        let this = ManuallyDrop::new(self);
        let f = api!(this.host, frame_freeze)?;
        // SAFETY: consumes the buffer (even on failure); info borrowed.
        let raw = unsafe { f(this.raw, len, info) };
        FrameRef::from_owned(this.host, raw).ok_or(Error::INVALID)
    }
}

impl Drop for FrameBuf {
    fn drop(&mut self) {
        if let Some(f) = self.host.api().frame_buf_free {
            // SAFETY: an unfrozen buffer we own, freed once.
            unsafe { f(self.raw) }
        }
    }
}

/// Identifies a publisher in [`Plugin::on_publish_end`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PublisherId(pub usize);

/// Identifies a subscriber in [`Plugin::on_frame`] and friends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SubscriberId(pub usize);

/// A publisher from [`Conn::publish`]; dropping it stops publishing. Keep
/// it in its session's state.
pub struct Publisher {
    host: Host,
    raw: *mut RillPublisher,
}

// SAFETY: a session's state moves between host threads with the session,
// whose callbacks never run concurrently; the handle goes with it.
unsafe impl Send for Publisher {}

impl fmt::Debug for Publisher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Publisher").field("raw", &self.raw).finish()
    }
}

impl Publisher {
    /// Its id.
    pub fn id(&self) -> PublisherId {
        PublisherId(self.raw as usize)
    }

    /// Declares a track; returns its id.
    pub fn add_track(&self, info: &TrackInfo) -> Result<u32> {
        let f = api!(self.host, publisher_add_track)?;
        // SAFETY: live publisher; info borrowed.
        Error::check(unsafe { f(self.raw, info) }).map(|id| id as u32)
    }

    /// Writes a frame (the host takes its own reference).
    pub fn write(&self, frame: &FrameRef) -> Result<()> {
        let f = api!(self.host, publisher_write)?;
        // SAFETY: live publisher and frame.
        Error::check(unsafe { f(self.raw, frame.raw) }).map(drop)
    }

    /// Sets the stream metadata (FLV script-tag body).
    pub fn set_metadata(&self, frame: &FrameRef) -> Result<()> {
        let f = api!(self.host, publisher_set_metadata)?;
        // SAFETY: live publisher and frame.
        Error::check(unsafe { f(self.raw, frame.raw) }).map(drop)
    }

    /// Says which URL this publisher relays (ABI 1.5), and with
    /// `cluster` that the stream belongs to another node of the cluster.
    pub fn set_source(&self, source: &str, cluster: bool) -> Result<()> {
        let f = api!(self.host, publisher_set_source)?;
        let flags = if cluster {
            crate::RILL_SOURCE_CLUSTER
        } else {
            0
        };
        // SAFETY: live publisher; the string is lent for the call.
        Error::check(unsafe { f(self.raw, rstr(source), flags) }).map(drop)
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        if let Some(f) = self.host.api().publisher_close {
            // SAFETY: our handle, closed once.
            unsafe { f(self.raw) }
        }
    }
}

/// A subscriber from [`Conn::subscribe`]; dropping it unsubscribes. Keep it
/// in its session's state.
pub struct Subscriber {
    host: Host,
    raw: *mut RillSubscriber,
}

// SAFETY: as for Publisher.
unsafe impl Send for Subscriber {}

impl fmt::Debug for Subscriber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscriber")
            .field("raw", &self.raw)
            .finish()
    }
}

impl Subscriber {
    /// Its id (compare with the one callbacks receive).
    pub fn id(&self) -> SubscriberId {
        SubscriberId(self.raw as usize)
    }

    /// Describes a track of the current publisher.
    pub fn track_info(&self, track: u32) -> Result<TrackInfo> {
        let f = api!(self.host, subscriber_track_info)?;
        let mut info = TrackInfo::new();
        // SAFETY: live subscriber; info is a valid out struct.
        Error::check(unsafe { f(self.raw, track, &mut info) })?;
        Ok(info)
    }

    /// Its counters.
    pub fn stats(&self) -> Result<SubscriberStats> {
        let f = api!(self.host, subscriber_stats)?;
        let mut st = SubscriberStats {
            struct_size: core::mem::size_of::<RillSubscriberStats>() as u32,
            ..Default::default()
        };
        // SAFETY: live subscriber; st is a valid out struct.
        Error::check(unsafe { f(self.raw, &mut st) })?;
        Ok(st)
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        if let Some(f) = self.host.api().subscriber_close {
            // SAFETY: our handle, closed once.
            unsafe { f(self.raw) }
        }
    }
}

/// A UDP socket from [`Conn::udp_bind`]; dropping it closes it. Keep it in
/// its session's state.
pub struct Udp {
    host: Host,
    raw: *mut RillUdp,
}

// SAFETY: as for Publisher.
unsafe impl Send for Udp {}

impl Udp {
    /// Sends one datagram to `addr`.
    pub fn send_to(&self, addr: &str, data: &[u8]) -> Result<()> {
        let f = api!(self.host, udp_send_to)?;
        // SAFETY: live socket; arguments borrowed.
        Error::check(unsafe { f(self.raw, rstr(addr), data.as_ptr(), data.len()) }).map(drop)
    }

    /// The bound `ip:port`.
    pub fn local_addr(&self) -> &str {
        match self.host.api().udp_local_addr {
            // SAFETY: the string lives as long as the socket, which outlives
            // this borrow.
            Some(f) => unsafe { host_str(f(self.raw)) },
            None => "",
        }
    }
}

impl Drop for Udp {
    fn drop(&mut self) {
        if let Some(f) = self.host.api().udp_close {
            // SAFETY: our handle, closed once.
            unsafe { f(self.raw) }
        }
    }
}

/// A Rill plugin. One value per instance (generation), shared by all its
/// sessions' callbacks (hence `Sync`: use interior mutability). Every
/// callback but `create` has a default that does nothing useful.
///
/// Errors returned from a session callback end that session
/// (`RILL_END_PLUGIN_ERROR`); panics are caught, logged, and do the same.
#[allow(unused_variables)]
pub trait Plugin: Sized + Send + Sync + 'static {
    /// Per-session state.
    type Session: Send + 'static;

    /// `RILL_PLUGIN_*` descriptor flags.
    const FLAGS: u32 = 0;
    /// One line for operators.
    const DESCRIPTION: &'static str = "";
    /// Whether [`Plugin::on_stream_event`] should be delivered.
    const WANTS_STREAM_EVENTS: bool = false;

    /// Creates the instance: read [`Host::config`], [`Host::listen`],
    /// [`Host::http_route`].
    fn create(host: &Host) -> Result<Self>;

    /// A newer generation took over; open sessions go on until they end.
    fn drain(&self) {}

    /// A connection arrived on `listener_id`: create its session state.
    /// The default refuses it.
    fn on_conn_open(&self, conn: &Conn, listener_id: u32) -> Result<Self::Session> {
        Err(Error::UNSUPPORTED)
    }

    /// A session created with [`Host::connect`] (`RILL_LISTENER_CONNECT`)
    /// or [`Host::session_open`] (`RILL_LISTENER_SESSION`) starts, in its
    /// own context: subscribe, publish, write the handshake here.
    fn on_session_open(&self, s: &mut Self::Session, conn: &Conn, kind: u32) -> Result<()> {
        Ok(())
    }

    /// An HTTP request on route `route_id`: create its session state and
    /// answer now or later. The default answers 404.
    fn on_http_request(
        &self,
        conn: &Conn,
        route_id: u32,
        req: &HttpRequest<'_>,
    ) -> Result<Self::Session> {
        Err(Error::NOT_FOUND)
    }

    /// Bytes arrived (WebSocket: one message).
    fn on_data(&self, s: &mut Self::Session, conn: &Conn, data: &[u8]) -> Result<()> {
        Ok(())
    }

    /// The outbound queue drained: write again.
    fn on_writable(&self, s: &mut Self::Session, conn: &Conn) -> Result<()> {
        Ok(())
    }

    /// The session ended; its state is handed back to be dropped.
    fn on_close(&self, s: Self::Session, conn: &Conn, reason: u32, why: &str) {}

    /// A frame for subscriber `sub` (borrowed: clone it to keep it).
    fn on_frame(
        &self,
        s: &mut Self::Session,
        conn: &Conn,
        sub: SubscriberId,
        frame: &FrameRef,
    ) -> Result<()> {
        Ok(())
    }

    /// The subscribed stream is live.
    fn on_subscribe_start(
        &self,
        s: &mut Self::Session,
        conn: &Conn,
        sub: SubscriberId,
    ) -> Result<()> {
        Ok(())
    }

    /// The subscription ended (`RILL_END_*`); drop the [`Subscriber`].
    /// The default closes the session with that reason: a player whose
    /// stream ended has nothing left to do.
    fn on_subscribe_end(
        &self,
        s: &mut Self::Session,
        conn: &Conn,
        sub: SubscriberId,
        reason: u32,
        why: &str,
    ) -> Result<()> {
        conn.close(reason)
    }

    /// The host ended a publisher (`RILL_END_*`); drop the [`Publisher`].
    /// The default closes the session with that reason.
    fn on_publish_end(
        &self,
        s: &mut Self::Session,
        conn: &Conn,
        publisher: PublisherId,
        reason: u32,
        why: &str,
    ) -> Result<()> {
        conn.close(reason)
    }

    /// A timer fired; `session` is `None` for instance-level timers.
    fn on_timer(&self, session: Option<(&mut Self::Session, &Conn)>, timer_id: u64) -> Result<()> {
        Ok(())
    }

    /// The decision on a [`Conn::admit`] that was pending, for `ticket`:
    /// `Ok` (open the stream now) or the refusal.
    fn on_admit(
        &self,
        session: &mut Self::Session,
        conn: &Conn,
        ticket: u64,
        result: Result<()>,
    ) -> Result<()> {
        Ok(())
    }

    /// A [`Host::post`] arrived; `session` is `None` for instance posts and
    /// for posts whose session ended first.
    fn on_post(
        &self,
        session: Option<(&mut Self::Session, &Conn)>,
        msg: Box<dyn Any + Send>,
    ) -> Result<()> {
        Ok(())
    }

    /// A storage or index call made with `token` completed (ABI 1.4):
    /// `Ok(value)` (bytes read, a size, a row count) or its error, and
    /// what it read. `session` is `None` for calls made for the instance.
    fn on_io(
        &self,
        session: Option<(&mut Self::Session, &Conn)>,
        token: u64,
        result: Result<i64>,
        data: &[u8],
    ) -> Result<()> {
        Ok(())
    }

    /// A stream was published or unpublished (`RILL_STREAM_*`), when
    /// [`Plugin::WANTS_STREAM_EVENTS`].
    fn on_stream_event(&self, event: u32, path: &str) -> Result<()> {
        Ok(())
    }

    /// A datagram arrived at the instance's UDP socket `socket_id`
    /// ([`Host::udp_listen`]), from any peer. Calls for one socket come in
    /// order, never at the same time; they may run beside session
    /// callbacks.
    fn on_udp_packet(&self, socket_id: u32, from: std::net::SocketAddr, data: &[u8]) -> Result<()> {
        Ok(())
    }

    /// A datagram arrived at this session's UDP socket `socket_id`.
    fn on_udp_data(
        &self,
        s: &mut Self::Session,
        conn: &Conn,
        socket_id: u32,
        from: &str,
        data: &[u8],
    ) -> Result<()> {
        Ok(())
    }
}

/// Exports a [`Plugin`] type: `export_plugin!(MyPlugin, "name", "1.2.3");`
/// (the version defaults to the crate's). Emits `rill_plugin_entry_v1`, the
/// static descriptor and, with feature `abi-check`, the abi_stable root
/// module. Use once per cdylib.
#[macro_export]
macro_rules! export_plugin {
    ($ty:ty, $name:expr $(,)?) => {
        $crate::export_plugin!($ty, $name, ::core::env!("CARGO_PKG_VERSION"));
    };
    ($ty:ty, $name:expr, $version:expr $(,)?) => {
        /// The plugin's entry point (Rill ABI v1).
        ///
        /// # Safety
        /// Called by the Rill host only.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn rill_plugin_entry_v1(
            host_major: u32,
            host_minor: u32,
        ) -> *const $crate::RillPluginDescriptor {
            static DESCRIPTOR: $crate::RillPluginDescriptor =
                $crate::sdk::trampolines::descriptor::<$ty>($name, $version);
            $crate::sdk::trampolines::entry(&DESCRIPTOR, host_major, host_minor)
        }
        $crate::__rill_export_root_module!(rill_plugin_entry_v1);
    };
}

#[cfg(feature = "abi-check")]
#[doc(hidden)]
#[macro_export]
macro_rules! __rill_export_root_module {
    ($entry:path) => {
        /// abi_stable's root-module header (Rill layout check).
        #[unsafe(no_mangle)]
        #[allow(non_upper_case_globals)]
        pub static _1as_0lib_1header_0root_bmodule_bloader:
            $crate::__private::abi_stable::library::LibHeader = {
            extern "C" fn __rill_root_loader(
            ) -> $crate::__private::abi_stable::library::RootModuleResult {
                $crate::__private::abi_stable::library::__call_root_module_loader(
                    __rill_root_module,
                )
            }
            fn __rill_root_module() -> $crate::stable::RillRootModuleRef {
                $crate::stable::root_module($entry)
            }
            // SAFETY: the constructor returns the module type named here.
            unsafe {
                $crate::__private::abi_stable::library::LibHeader::from_constructor::<
                    $crate::stable::RillRootModuleRef,
                >(
                    __rill_root_loader,
                    $crate::__private::abi_stable::library::CheckTypeLayout::Yes,
                )
            }
        };
    };
}

#[cfg(not(feature = "abi-check"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __rill_export_root_module {
    ($entry:path) => {};
}

/// A frame as the owner of a [`bytes::Bytes`] ([`FrameRef::to_bytes`]).
#[cfg(feature = "bytes")]
struct FrameBytes(FrameRef);

#[cfg(feature = "bytes")]
impl AsRef<[u8]> for FrameBytes {
    fn as_ref(&self) -> &[u8] {
        self.0.data()
    }
}
