//! The `extern "C"` trampolines `export_plugin!` puts in the descriptor.
//! Each one turns raw pointers into SDK types, calls the [`Plugin`] method,
//! and catches panics so that none unwinds into the host.

use core::any::{Any, TypeId};
use core::ffi::c_void;
use core::ptr;
use core::sync::atomic::{AtomicPtr, Ordering};
use std::panic::{catch_unwind, AssertUnwindSafe};

use super::{Conn, Error, FrameRef, Host, HttpRequest, Level, Plugin, PublisherId, SubscriberId};
use crate::{
    RillBytes, RillConn, RillFrame, RillHost, RillHostApi, RillHttpRequest, RillPluginDescriptor,
    RillPublisher, RillStr, RillSubscriber, RillUdp, RILL_ABI_MAJOR, RILL_ERR_INTERNAL,
    RILL_ERR_INVALID, RILL_ERR_PANIC, RILL_ERR_UNSUPPORTED, RILL_LISTENER_CONNECT,
    RILL_LISTENER_SESSION, RILL_OK,
};

/// One instance: the host handle and the plugin value.
struct Instance<P> {
    host: Host,
    plugin: P,
}

/// The part of a session cell that does not depend on the state type.
#[repr(C)]
struct CellHead {
    /// `TypeId` of the state, checked before every cast.
    type_id: TypeId,
    /// The session handle (set once the host hands it over).
    conn: AtomicPtr<RillConn>,
}

/// What `session_user` points at for SDK sessions.
#[repr(C)]
pub struct SessionCell<S> {
    head: CellHead,
    state: Option<S>,
}

impl<S: Send + 'static> SessionCell<S> {
    /// Boxes a session state; returns the raw cell.
    pub(crate) fn new_raw(state: S) -> *mut SessionCell<S> {
        Self::with_conn(state, ptr::null_mut())
    }

    fn with_conn(state: S, conn: *mut RillConn) -> *mut SessionCell<S> {
        Box::into_raw(Box::new(SessionCell {
            head: CellHead {
                type_id: TypeId::of::<S>(),
                conn: AtomicPtr::new(conn),
            },
            state: Some(state),
        }))
    }

    /// Frees a cell from `new_raw`, catching a panicking `Drop`.
    ///
    /// # Safety
    /// `cell` must come from `new_raw`/`with_conn` with this `S` and not be
    /// used again.
    pub(crate) unsafe fn free_raw(cell: *mut SessionCell<S>) {
        // SAFETY: forwarded contract: a live Box we own.
        let boxed = unsafe { Box::from_raw(cell) };
        drop_quietly(boxed);
    }
}

/// Drops a value, swallowing (and never re-raising) a panic in its `Drop`.
fn drop_quietly<T>(v: T) {
    if let Err(payload) = catch_unwind(AssertUnwindSafe(move || drop(v))) {
        // Dropping the payload could panic again: leak it instead.
        core::mem::forget(payload);
    }
}

/// The session cell behind `su`, if it holds an `S`.
///
/// # Safety
/// `su` must be NULL or a cell made by this SDK that the host handed back
/// for the current callback (which has exclusive use of it).
unsafe fn cell<'a, S: 'static>(su: *mut c_void) -> Option<&'a mut SessionCell<S>> {
    if su.is_null() {
        return None;
    }
    // SAFETY: every SDK cell starts with a CellHead (repr(C)).
    let head = unsafe { &*(su as *const CellHead) };
    if head.type_id != TypeId::of::<S>() {
        return None;
    }
    // SAFETY: the type matches; callbacks of one session never run
    // concurrently, so this is the only reference.
    Some(unsafe { &mut *(su as *mut SessionCell<S>) })
}

/// # Safety
/// `instance` must be what `create::<P>` stored.
unsafe fn instance<'a, P>(instance: *mut c_void) -> &'a Instance<P> {
    // SAFETY: forwarded contract; the instance lives until destroy.
    unsafe { &*(instance as *const Instance<P>) }
}

fn panic_message(payload: &(dyn Any + Send)) -> &str {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s
    } else {
        "(non-string panic payload)"
    }
}

fn report_panic(host: Option<&Host>, what: &str, payload: Box<dyn Any + Send>) {
    let _ = catch_unwind(AssertUnwindSafe(|| {
        if let Some(h) = host {
            let msg = format!("plugin panicked in {what}: {}", panic_message(&*payload));
            h.log(Level::Error, &msg);
        }
    }));
    drop_quietly(payload);
}

/// Runs `f`, turning a panic into `RILL_ERR_PANIC` and a log line.
fn guard(host: Option<&Host>, what: &str, f: impl FnOnce() -> i32) -> i32 {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(rc) => rc,
        Err(payload) => {
            report_panic(host, what, payload);
            RILL_ERR_PANIC
        }
    }
}

/// An SDK result as a status: errors must be negative.
fn status(r: Result<(), Error>) -> i32 {
    match r {
        Ok(()) => RILL_OK,
        Err(e) if e.0 < 0 => e.0,
        Err(_) => RILL_ERR_INTERNAL,
    }
}

fn log_mismatch(host: &Host, what: &str) {
    host.log(
        Level::Error,
        &format!("{what}: session state is not this plugin's Session type (or NULL)"),
    );
}

/// # Safety
/// `s` must be valid for the current callback.
unsafe fn text<'a>(s: RillStr) -> &'a str {
    // SAFETY: forwarded contract.
    unsafe { s.to_str() }.unwrap_or("")
}

/// # Safety
/// `data` must be NULL with `len` 0 or `len` readable bytes for the call.
unsafe fn bytes<'a>(data: *const u8, len: usize) -> &'a [u8] {
    if data.is_null() || len == 0 {
        &[]
    } else {
        // SAFETY: forwarded contract.
        unsafe { core::slice::from_raw_parts(data, len) }
    }
}

/// The descriptor for plugin type `P` (used by `export_plugin!`).
pub const fn descriptor<P: Plugin>(
    name: &'static str,
    version: &'static str,
) -> RillPluginDescriptor {
    let mut d = crate::rill_descriptor_empty(name, version);
    d.flags = P::FLAGS;
    d.description = RillStr::from_str(P::DESCRIPTION);
    d.create = Some(create::<P>);
    d.drain = Some(drain::<P>);
    d.destroy = Some(destroy::<P>);
    d.on_conn_open = Some(on_conn_open::<P>);
    d.on_conn_data = Some(on_conn_data::<P>);
    d.on_conn_writable = Some(on_conn_writable::<P>);
    d.on_conn_close = Some(on_conn_close::<P>);
    d.on_http_request = Some(on_http_request::<P>);
    d.on_frame = Some(on_frame::<P>);
    d.on_subscribe_start = Some(on_subscribe_start::<P>);
    d.on_subscribe_end = Some(on_subscribe_end::<P>);
    d.on_publish_end = Some(on_publish_end::<P>);
    d.on_timer = Some(on_timer::<P>);
    d.on_post = Some(on_post::<P>);
    if P::WANTS_STREAM_EVENTS {
        d.on_stream_event = Some(on_stream_event::<P>);
    }
    d.on_udp_data = Some(on_udp_data::<P>);
    d.on_udp_packet = Some(on_udp_packet::<P>);
    d.on_admit = Some(on_admit::<P>);
    d.on_io = Some(on_io::<P>);
    d
}

/// The body of `rill_plugin_entry_v1`.
pub fn entry(
    desc: &'static RillPluginDescriptor,
    host_major: u32,
    _host_minor: u32,
) -> *const RillPluginDescriptor {
    if host_major != RILL_ABI_MAJOR as u32 {
        return ptr::null();
    }
    desc
}

unsafe extern "C" fn create<P: Plugin>(
    api: *const RillHostApi,
    raw: *mut RillHost,
    out: *mut *mut c_void,
) -> i32 {
    if out.is_null() {
        return RILL_ERR_INVALID;
    }
    // SAFETY: the host passes its table and context to create.
    let Some(host) = (unsafe { Host::from_raw(api, raw) }) else {
        return RILL_ERR_UNSUPPORTED;
    };
    guard(Some(&host), "create", || match P::create(&host) {
        Ok(plugin) => {
            let inst = Box::new(Instance { host, plugin });
            // SAFETY: out checked non-null above.
            unsafe { *out = Box::into_raw(inst) as *mut c_void };
            RILL_OK
        }
        Err(e) => status(Err(e)),
    })
}

unsafe extern "C" fn drain<P: Plugin>(inst: *mut c_void) {
    // SAFETY: the host passes the instance create stored.
    let inst = unsafe { instance::<P>(inst) };
    guard(Some(&inst.host), "drain", || {
        inst.plugin.drain();
        RILL_OK
    });
}

unsafe extern "C" fn destroy<P: Plugin>(inst: *mut c_void) {
    if inst.is_null() {
        return;
    }
    // SAFETY: the instance create stored; destroy is the last call.
    let boxed = unsafe { Box::from_raw(inst as *mut Instance<P>) };
    let host = boxed.host;
    guard(Some(&host), "destroy", move || {
        drop(boxed);
        RILL_OK
    });
}

unsafe extern "C" fn on_conn_open<P: Plugin>(
    inst: *mut c_void,
    conn: *mut RillConn,
    listener_id: u32,
    su: *mut *mut c_void,
) -> i32 {
    // SAFETY: the host passes the instance create stored.
    let inst = unsafe { instance::<P>(inst) };
    if su.is_null() {
        return RILL_ERR_INVALID;
    }
    // SAFETY: su is a valid in/out pointer for this call.
    let preset = unsafe { *su };
    let c = Conn::new(inst.host, conn);
    if listener_id == RILL_LISTENER_CONNECT || listener_id == RILL_LISTENER_SESSION {
        // SAFETY: a preset pointer is a cell from Host::connect/session_open,
        // handed to this session's first callback.
        let Some(cell) = (unsafe { cell::<P::Session>(preset) }) else {
            log_mismatch(&inst.host, "on_conn_open");
            return RILL_ERR_INVALID;
        };
        cell.head.conn.store(conn, Ordering::Release);
        let rc = guard(Some(&inst.host), "on_session_open", || {
            match cell.state.as_mut() {
                Some(s) => status(inst.plugin.on_session_open(s, &c, listener_id)),
                None => RILL_ERR_INTERNAL,
            }
        });
        if rc < 0 {
            // No on_conn_close follows a refused open: free the state here.
            // SAFETY: the cell is ours again and not used after this.
            unsafe { SessionCell::<P::Session>::free_raw(preset as *mut SessionCell<P::Session>) };
            // SAFETY: su valid for this call.
            unsafe { *su = ptr::null_mut() };
        }
        return rc;
    }
    guard(Some(&inst.host), "on_conn_open", || {
        match inst.plugin.on_conn_open(&c, listener_id) {
            Ok(state) => {
                let cell = SessionCell::with_conn(state, conn);
                // SAFETY: su valid for this call.
                unsafe { *su = cell as *mut c_void };
                RILL_OK
            }
            Err(e) => status(Err(e)),
        }
    })
}

unsafe extern "C" fn on_http_request<P: Plugin>(
    inst: *mut c_void,
    conn: *mut RillConn,
    route_id: u32,
    req: *const RillHttpRequest,
    su: *mut *mut c_void,
) -> i32 {
    // SAFETY: the host passes the instance create stored.
    let inst = unsafe { instance::<P>(inst) };
    if su.is_null() {
        return RILL_ERR_INVALID;
    }
    // SAFETY: the request is valid for this call.
    let Some(req) = (unsafe { HttpRequest::from_raw(req) }) else {
        return RILL_ERR_INVALID;
    };
    let c = Conn::new(inst.host, conn);
    guard(Some(&inst.host), "on_http_request", || {
        match inst.plugin.on_http_request(&c, route_id, &req) {
            Ok(state) => {
                let cell = SessionCell::with_conn(state, conn);
                // SAFETY: su valid for this call.
                unsafe { *su = cell as *mut c_void };
                RILL_OK
            }
            Err(e) => status(Err(e)),
        }
    })
}

/// Runs a session callback: finds the state, builds the `Conn` (from the
/// argument, or the one stored in the cell), and guards the call.
///
/// # Safety
/// `inst` and `su` must be what the host passes to session callbacks.
unsafe fn with_session<P: Plugin>(
    inst: *mut c_void,
    su: *mut c_void,
    conn: *mut RillConn,
    what: &str,
    f: impl FnOnce(&P, &mut P::Session, &Conn) -> Result<(), Error>,
) -> i32 {
    // SAFETY: forwarded contract.
    let inst = unsafe { instance::<P>(inst) };
    // SAFETY: forwarded contract.
    let Some(cell) = (unsafe { cell::<P::Session>(su) }) else {
        log_mismatch(&inst.host, what);
        return RILL_ERR_INVALID;
    };
    let conn = if conn.is_null() {
        cell.head.conn.load(Ordering::Acquire)
    } else {
        conn
    };
    let c = Conn::new(inst.host, conn);
    guard(Some(&inst.host), what, || match cell.state.as_mut() {
        Some(s) => status(f(&inst.plugin, s, &c)),
        None => RILL_ERR_INTERNAL,
    })
}

unsafe extern "C" fn on_conn_data<P: Plugin>(
    inst: *mut c_void,
    su: *mut c_void,
    conn: *mut RillConn,
    data: *const u8,
    len: usize,
) -> i32 {
    // SAFETY: the data is borrowed for this call.
    let data = unsafe { bytes(data, len) };
    // SAFETY: host-provided callback arguments.
    unsafe {
        with_session::<P>(inst, su, conn, "on_conn_data", |p, s, c| {
            p.on_data(s, c, data)
        })
    }
}

unsafe extern "C" fn on_conn_writable<P: Plugin>(
    inst: *mut c_void,
    su: *mut c_void,
    conn: *mut RillConn,
) -> i32 {
    // SAFETY: host-provided callback arguments.
    unsafe {
        with_session::<P>(inst, su, conn, "on_conn_writable", |p, s, c| {
            p.on_writable(s, c)
        })
    }
}

unsafe extern "C" fn on_conn_close<P: Plugin>(
    inst: *mut c_void,
    su: *mut c_void,
    conn: *mut RillConn,
    reason: u32,
    why: RillStr,
) {
    // SAFETY: the host passes the instance create stored.
    let inst = unsafe { instance::<P>(inst) };
    // SAFETY: the last callback of this session: we take the cell back.
    let Some(cell) = (unsafe { cell::<P::Session>(su) }) else {
        log_mismatch(&inst.host, "on_conn_close");
        return;
    };
    // SAFETY: the cell is a Box this SDK leaked; nothing uses it after this.
    let mut boxed = unsafe { Box::from_raw(cell as *mut SessionCell<P::Session>) };
    // SAFETY: `why` is borrowed for this call.
    let why = unsafe { text(why) };
    let c = Conn::new(inst.host, conn);
    guard(Some(&inst.host), "on_conn_close", move || {
        if let Some(state) = boxed.state.take() {
            inst.plugin.on_close(state, &c, reason, why);
        }
        drop(boxed);
        RILL_OK
    });
}

unsafe extern "C" fn on_frame<P: Plugin>(
    inst: *mut c_void,
    su: *mut c_void,
    sub: *mut RillSubscriber,
    frame: *const RillFrame,
) -> i32 {
    // SAFETY: host-provided callback arguments; the frame is borrowed for
    // the call and the ManuallyDrop view never releases it.
    unsafe {
        let host = instance::<P>(inst).host;
        let frame = FrameRef::borrowed(host, frame);
        with_session::<P>(inst, su, ptr::null_mut(), "on_frame", |p, s, c| {
            p.on_frame(s, c, SubscriberId(sub as usize), &frame)
        })
    }
}

unsafe extern "C" fn on_subscribe_start<P: Plugin>(
    inst: *mut c_void,
    su: *mut c_void,
    sub: *mut RillSubscriber,
) -> i32 {
    // SAFETY: host-provided callback arguments.
    unsafe {
        with_session::<P>(
            inst,
            su,
            ptr::null_mut(),
            "on_subscribe_start",
            |p, s, c| p.on_subscribe_start(s, c, SubscriberId(sub as usize)),
        )
    }
}

unsafe extern "C" fn on_subscribe_end<P: Plugin>(
    inst: *mut c_void,
    su: *mut c_void,
    sub: *mut RillSubscriber,
    reason: u32,
    why: RillStr,
) -> i32 {
    // SAFETY: host-provided callback arguments; `why` borrowed for the call.
    unsafe {
        let why = text(why);
        with_session::<P>(inst, su, ptr::null_mut(), "on_subscribe_end", |p, s, c| {
            p.on_subscribe_end(s, c, SubscriberId(sub as usize), reason, why)
        })
    }
}

unsafe extern "C" fn on_publish_end<P: Plugin>(
    inst: *mut c_void,
    su: *mut c_void,
    publisher: *mut RillPublisher,
    reason: u32,
    why: RillStr,
) -> i32 {
    // SAFETY: host-provided callback arguments; `why` borrowed for the call.
    unsafe {
        let why = text(why);
        with_session::<P>(inst, su, ptr::null_mut(), "on_publish_end", |p, s, c| {
            p.on_publish_end(s, c, PublisherId(publisher as usize), reason, why)
        })
    }
}

unsafe extern "C" fn on_timer<P: Plugin>(
    inst: *mut c_void,
    su: *mut c_void,
    conn: *mut RillConn,
    timer_id: u64,
) -> i32 {
    if su.is_null() {
        // SAFETY: the host passes the instance create stored.
        let i = unsafe { instance::<P>(inst) };
        return guard(Some(&i.host), "on_timer", || {
            status(i.plugin.on_timer(None, timer_id))
        });
    }
    // SAFETY: host-provided callback arguments.
    unsafe {
        with_session::<P>(inst, su, conn, "on_timer", |p, s, c| {
            p.on_timer(Some((s, c)), timer_id)
        })
    }
}

unsafe extern "C" fn on_admit<P: Plugin>(
    inst: *mut c_void,
    su: *mut c_void,
    conn: *mut RillConn,
    ticket: u64,
    rc: i32,
) -> i32 {
    // SAFETY: host-provided callback arguments.
    unsafe {
        with_session::<P>(inst, su, conn, "on_admit", |p, s, c| {
            p.on_admit(s, c, ticket, Error::check(rc).map(drop))
        })
    }
}

unsafe extern "C" fn on_io<P: Plugin>(
    inst: *mut c_void,
    su: *mut c_void,
    conn: *mut RillConn,
    token: u64,
    rc: i32,
    value: i64,
    data: RillBytes,
) -> i32 {
    let result = Error::check(rc).map(|_| value);
    // SAFETY: `data` is lent for the call.
    let data = unsafe { data.as_slice() };
    if su.is_null() || conn.is_null() {
        // SAFETY: the host passes the instance create stored.
        let i = unsafe { instance::<P>(inst) };
        return guard(Some(&i.host), "on_io", || {
            status(i.plugin.on_io(None, token, result, data))
        });
    }
    // SAFETY: host-provided callback arguments.
    unsafe {
        with_session::<P>(inst, su, conn, "on_io", |p, s, c| {
            p.on_io(Some((s, c)), token, result, data)
        })
    }
}

unsafe extern "C" fn on_post<P: Plugin>(
    inst: *mut c_void,
    su: *mut c_void,
    conn: *mut RillConn,
    arg: *mut c_void,
) -> i32 {
    // SAFETY: the host passes the instance create stored.
    let i = unsafe { instance::<P>(inst) };
    if arg.is_null() {
        return RILL_ERR_INVALID;
    }
    // SAFETY: `arg` is the Box<Box<dyn Any + Send>> Host::post leaked,
    // delivered exactly once.
    let msg = unsafe { *Box::from_raw(arg as *mut Box<dyn Any + Send>) };
    if su.is_null() || conn.is_null() {
        return guard(Some(&i.host), "on_post", || {
            status(i.plugin.on_post(None, msg))
        });
    }
    // SAFETY: host-provided callback arguments.
    unsafe {
        with_session::<P>(inst, su, conn, "on_post", |p, s, c| {
            p.on_post(Some((s, c)), msg)
        })
    }
}

unsafe extern "C" fn on_stream_event<P: Plugin>(
    inst: *mut c_void,
    event: u32,
    path: RillStr,
) -> i32 {
    // SAFETY: the host passes the instance create stored; `path` borrowed.
    let (i, path) = unsafe { (instance::<P>(inst), text(path)) };
    guard(Some(&i.host), "on_stream_event", || {
        status(i.plugin.on_stream_event(event, path))
    })
}

#[allow(clippy::too_many_arguments)]
unsafe extern "C" fn on_udp_data<P: Plugin>(
    inst: *mut c_void,
    su: *mut c_void,
    conn: *mut RillConn,
    _udp: *mut RillUdp,
    socket_id: u32,
    from: RillStr,
    data: *const u8,
    len: usize,
) -> i32 {
    // SAFETY: host-provided callback arguments, borrowed for the call.
    unsafe {
        let from = text(from);
        let data = bytes(data, len);
        with_session::<P>(inst, su, conn, "on_udp_data", |p, s, c| {
            p.on_udp_data(s, c, socket_id, from, data)
        })
    }
}

unsafe extern "C" fn on_udp_packet<P: Plugin>(
    inst: *mut c_void,
    socket_id: u32,
    from: *const crate::RillSockAddr,
    data: *const u8,
    len: usize,
) -> i32 {
    // SAFETY: the host passes the instance create stored; `from` and the
    // bytes are borrowed for the call.
    let (i, from, data) = unsafe { (instance::<P>(inst), from.as_ref(), bytes(data, len)) };
    let Some(from) = from.and_then(|f| f.to_socket_addr()) else {
        return RILL_ERR_INVALID;
    };
    guard(Some(&i.host), "on_udp_packet", || {
        status(i.plugin.on_udp_packet(socket_id, from, data))
    })
}
