//! The host's function table (`RillHostApi`): what plugins call.
//!
//! Every entry catches panics (a panic never unwinds into a plugin: it
//! becomes `RILL_ERR_PANIC`, a NULL or a no-op, and an error log line).
//! Handles are trusted as the ABI contract says (a `RillConn *` is live
//! during its session's callbacks, and so on); NULL is always checked.

use std::ffi::c_void;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rill_abi::*;

use super::frames;
use super::host::parse_listen_addr;
use super::instance::{Instance, ListenDecl, RouteDecl};
use super::session::{self, Filter, Io, Origin, PubEntry, SessionShared, SubEntry};
use super::{cluster_api, storage_api};
use crate::admission::{Action, Creds};
use crate::engine::{EngineError, PublisherInfo, SubscriberInfo, TrackInfo};

/// [`guard`] for the calls the header allows only inside a callback, on
/// the thread running it (everything but `post`, `log`, the clocks and
/// `frame_*`): from anywhere else (a thread of the plugin's own, say) the
/// call is refused with `refused` and a warning, at most one a second.
pub(super) fn callback_guard<R>(what: &str, refused: R, fallback: R, f: impl FnOnce() -> R) -> R {
    if !super::instance::in_callback() {
        static LAST_WARNED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        if LAST_WARNED.swap(now, Ordering::Relaxed) != now {
            tracing::warn!(
                "host call {what} from outside a plugin callback (a thread of the plugin's own?): \
                 refused with an error, as the header's thread rule allows"
            );
        }
        return refused;
    }
    guard(what, fallback, f)
}

pub(super) fn guard<R>(what: &str, fallback: R, f: impl FnOnce() -> R) -> R {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(_) => {
            tracing::error!("host call {what} panicked; returning an error to the plugin");
            fallback
        }
    }
}

/// # Safety
/// `host` is NULL or the `RillHost *` given to `create`, still live.
pub(super) unsafe fn inst(host: *mut RillHost) -> Option<Arc<Instance>> {
    if host.is_null() {
        return None;
    }
    let p = host as *const Instance;
    // SAFETY: a RillHost * is Arc::as_ptr of an Arc<Instance> the manager
    // keeps alive until destroy returns; we take one more reference.
    unsafe {
        Arc::increment_strong_count(p);
        Some(Arc::from_raw(p))
    }
}

/// # Safety
/// `conn` is NULL or a live `RillConn *`.
unsafe fn sess(conn: *mut RillConn) -> Option<Arc<SessionShared>> {
    if conn.is_null() {
        return None;
    }
    let p = conn as *const SessionShared;
    // SAFETY: a RillConn * is Arc::as_ptr of the session's Arc, live until
    // its on_conn_close returned; we take one more reference.
    unsafe {
        Arc::increment_strong_count(p);
        Some(Arc::from_raw(p))
    }
}

/// # Safety
/// `data` is NULL with `len` 0, or `len` bytes the plugin lends for the call.
pub(super) unsafe fn bytes<'a>(data: *const u8, len: usize) -> Option<&'a [u8]> {
    match (data.is_null(), len) {
        (_, 0) => Some(&[]),
        (true, _) => None,
        // SAFETY: forwarded contract.
        (false, _) => Some(unsafe { std::slice::from_raw_parts(data, len) }),
    }
}

/// # Safety
/// `s` is a RillStr the plugin lends for the call.
pub(super) unsafe fn text<'a>(s: RillStr) -> Option<&'a str> {
    // SAFETY: forwarded contract.
    unsafe { s.to_str() }
}

fn engine_status(e: &EngineError) -> i32 {
    match e {
        EngineError::InvalidPath(_) | EngineError::NoSuchTrack(_) => RILL_ERR_INVALID,
        EngineError::Busy(_) => RILL_ERR_BUSY,
        EngineError::TooManyTracks(_) => RILL_ERR_NOMEM,
        EngineError::PublisherClosed | EngineError::StreamClosing => RILL_ERR_CLOSED,
        EngineError::ShuttingDown => RILL_ERR_DENIED,
        EngineError::NotPublished(_) => RILL_ERR_NOT_FOUND,
        EngineError::NotForDerived => RILL_ERR_UNSUPPORTED,
    }
}

// ---- log, config, clocks ------------------------------------------------

unsafe extern "C" fn log(host: *mut RillHost, level: u32, msg: RillStr) {
    guard("log", (), || {
        // SAFETY: host and msg per the ABI contract.
        if let (Some(i), Some(m)) = unsafe { (inst(host), text(msg)) } {
            i.log(level, m);
        }
    })
}

unsafe extern "C" fn log_enabled(_host: *mut RillHost, level: u32) -> u32 {
    let l = match level {
        RILL_LOG_ERROR => tracing::Level::ERROR,
        RILL_LOG_WARN => tracing::Level::WARN,
        RILL_LOG_INFO => tracing::Level::INFO,
        RILL_LOG_DEBUG => tracing::Level::DEBUG,
        _ => tracing::Level::TRACE,
    };
    (l <= tracing::level_filters::LevelFilter::current()) as u32
}

unsafe extern "C" fn config(host: *mut RillHost) -> RillStr {
    guard("config", RillStr::EMPTY, || {
        // SAFETY: host per contract; the text lives as long as the instance.
        unsafe { inst(host) }.map_or(RillStr::EMPTY, |i| RillStr::from_str(&i.config))
    })
}

unsafe extern "C" fn clock_monotonic_us(host: *mut RillHost) -> i64 {
    guard("clock_monotonic_us", 0, || {
        // SAFETY: host per contract.
        unsafe { inst(host) }.map_or(0, |i| i.host.epoch.elapsed().as_micros() as i64)
    })
}

unsafe extern "C" fn clock_wall_us(_host: *mut RillHost) -> i64 {
    crate::engine::wall_us()
}

// ---- frames ------------------------------------------------------------------

unsafe extern "C" fn frame_alloc(
    _host: *mut RillHost,
    len: usize,
    data: *mut *mut u8,
) -> *mut RillFrameBuf {
    guard("frame_alloc", std::ptr::null_mut(), || {
        let (buf, p) =
            frames::alloc_buf(len).unwrap_or((std::ptr::null_mut(), std::ptr::null_mut()));
        if !data.is_null() {
            // SAFETY: the plugin passed a writable out-pointer.
            unsafe { *data = p };
        }
        buf
    })
}

unsafe extern "C" fn frame_freeze(
    buf: *mut RillFrameBuf,
    len: usize,
    info: *const RillFrameInfo,
) -> *mut RillFrame {
    guard("frame_freeze", std::ptr::null_mut(), || {
        // SAFETY: buf from frame_alloc (consumed), info per contract.
        match unsafe { frames::freeze_buf(buf, len) } {
            Some(b) => frames::give(frames::frame_from(b, &unsafe { frames::read_info(info) })),
            None => std::ptr::null_mut(),
        }
    })
}

unsafe extern "C" fn frame_buf_free(buf: *mut RillFrameBuf) {
    // SAFETY: buf from frame_alloc, consumed here.
    guard("frame_buf_free", (), || unsafe { frames::free_buf(buf) })
}

unsafe extern "C" fn frame_copy(
    _host: *mut RillHost,
    data: *const u8,
    len: usize,
    info: *const RillFrameInfo,
) -> *mut RillFrame {
    guard("frame_copy", std::ptr::null_mut(), || {
        if len > frames::MAX_FRAME_BYTES || (data.is_null() && len > 0) {
            return std::ptr::null_mut();
        }
        let bytes = if len == 0 {
            Bytes::new()
        } else {
            // SAFETY: the plugin lends len readable bytes at data.
            Bytes::copy_from_slice(unsafe { std::slice::from_raw_parts(data, len) })
        };
        // SAFETY: info per contract.
        frames::give(frames::frame_from(bytes, &unsafe {
            frames::read_info(info)
        }))
    })
}

unsafe extern "C" fn frame_wrap(
    _host: *mut RillHost,
    data: *const u8,
    len: usize,
    release: RillReleaseFn,
    user: *mut c_void,
    info: *const RillFrameInfo,
) -> *mut RillFrame {
    guard("frame_wrap", std::ptr::null_mut(), || {
        if data.is_null() && len > 0 {
            return std::ptr::null_mut();
        }
        let bytes = frames::wrap(data, len, release, user);
        // SAFETY: info per contract.
        frames::give(frames::frame_from(bytes, &unsafe {
            frames::read_info(info)
        }))
    })
}

unsafe extern "C" fn frame_retain(frame: *const RillFrame) -> *mut RillFrame {
    // SAFETY: frame is a live handle the plugin holds or borrows.
    guard("frame_retain", std::ptr::null_mut(), || {
        match unsafe { frames::borrow(frame) } {
            Some(f) => frames::give(f),
            None => std::ptr::null_mut(),
        }
    })
}

unsafe extern "C" fn frame_release(frame: *mut RillFrame) {
    // SAFETY: an owned reference, given back once.
    guard("frame_release", (), || unsafe { frames::take(frame) })
}

unsafe extern "C" fn frame_slice(
    frame: *const RillFrame,
    offset: usize,
    len: usize,
    info: *const RillFrameInfo,
) -> *mut RillFrame {
    guard("frame_slice", std::ptr::null_mut(), || {
        // SAFETY: frame is live per contract.
        let Some(f) = (unsafe { frames::borrow(frame) }) else {
            return std::ptr::null_mut();
        };
        let Some(end) = offset.checked_add(len).filter(|e| *e <= f.payload().len()) else {
            return std::ptr::null_mut();
        };
        let i = if info.is_null() {
            frames::info_of(&f)
        } else {
            // SAFETY: info per contract.
            unsafe { frames::read_info(info) }
        };
        frames::give(frames::frame_from(f.payload().slice(offset..end), &i))
    })
}

unsafe extern "C" fn frame_data(frame: *const RillFrame) -> RillBytes {
    guard("frame_data", RillBytes::EMPTY, || {
        if frame.is_null() {
            return RillBytes::EMPTY;
        }
        // SAFETY: frame is live per contract, and so are its bytes.
        let f = unsafe { &*(frame as *const crate::engine::Frame) };
        RillBytes::from_slice(f.payload())
    })
}

unsafe extern "C" fn frame_info(frame: *const RillFrame, info: *mut RillFrameInfo) -> i32 {
    guard("frame_info", RILL_ERR_PANIC, || {
        if frame.is_null() || info.is_null() {
            return RILL_ERR_INVALID;
        }
        // SAFETY: frame is live per contract.
        let f = unsafe { &*(frame as *const crate::engine::Frame) };
        let full = frames::info_of(f);
        // SAFETY: info points to struct_size writable bytes (caller set it).
        let size = unsafe { std::ptr::read_unaligned(info as *const u32) } as usize;
        let n = size.min(std::mem::size_of::<RillFrameInfo>());
        if n < 4 {
            return RILL_ERR_INVALID;
        }
        // SAFETY: copy only the prefix the caller knows (n bytes), from a
        // full local value into the caller's struct; struct_size is kept.
        unsafe {
            std::ptr::copy_nonoverlapping(
                (&full as *const RillFrameInfo as *const u8).add(4),
                (info as *mut u8).add(4),
                n - 4,
            );
        }
        RILL_OK
    })
}

/// Cache keys are per instance name: two plugins never see each other's.
fn scoped_key(i: &Instance, key: u64) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    i.name.hash(&mut h);
    key ^ h.finish()
}

unsafe extern "C" fn frame_cache_get(
    host: *mut RillHost,
    frame: *const RillFrame,
    key: u64,
) -> *mut RillFrame {
    guard("frame_cache_get", std::ptr::null_mut(), || {
        // SAFETY: host and frame per contract.
        let (Some(i), false) = (unsafe { inst(host) }, frame.is_null()) else {
            return std::ptr::null_mut();
        };
        // SAFETY: frame is live per contract.
        let f = unsafe { &*(frame as *const crate::engine::Frame) };
        f.cache()
            .get(scoped_key(&i, key))
            .map_or(std::ptr::null_mut(), frames::give)
    })
}

unsafe extern "C" fn frame_cache_set(
    host: *mut RillHost,
    frame: *const RillFrame,
    key: u64,
    value: *const RillFrame,
) -> i32 {
    guard("frame_cache_set", RILL_ERR_PANIC, || {
        // SAFETY: per contract.
        let (Some(i), Some(v)) = (unsafe { inst(host) }, unsafe { frames::borrow(value) }) else {
            return RILL_ERR_INVALID;
        };
        if frame.is_null() || std::ptr::eq(frame, value) {
            return RILL_ERR_INVALID;
        }
        // SAFETY: frame is live per contract.
        let f = unsafe { &*(frame as *const crate::engine::Frame) };
        match f.cache().insert(scoped_key(&i, key), v) {
            Ok(()) => RILL_OK,
            Err(crate::engine::CacheError::Busy) => RILL_ERR_BUSY,
            Err(crate::engine::CacheError::Full) => RILL_ERR_NOMEM,
        }
    })
}

// ---- publishing --------------------------------------------------------------

/// What publish_open and subscribe_open check first: live handles, a text
/// path (slashes around it trimmed), an out-pointer.
///
/// # Safety
/// As for `inst`, `sess` and `text`.
unsafe fn open_args<'a>(
    host: *mut RillHost,
    conn: *mut RillConn,
    path: RillStr,
    out_is_null: bool,
) -> Result<(Arc<Instance>, Arc<SessionShared>, &'a str), i32> {
    // SAFETY: forwarded contract.
    let (Some(i), Some(s), Some(path)) = (unsafe { inst(host) }, unsafe { sess(conn) }, unsafe {
        text(path)
    }) else {
        return Err(RILL_ERR_INVALID);
    };
    if out_is_null {
        return Err(RILL_ERR_INVALID);
    }
    // A draining generation's sessions go on as they would have: one that
    // was still in its handshake at the reload may yet publish or play.
    Ok((i, s, path.trim_matches('/')))
}

unsafe extern "C" fn publish_open(
    host: *mut RillHost,
    conn: *mut RillConn,
    path: RillStr,
    query: RillStr,
    out: *mut *mut RillPublisher,
) -> i32 {
    callback_guard("publish_open", RILL_ERR_INVALID, RILL_ERR_PANIC, || {
        // SAFETY: per contract.
        let (i, s, path) = match unsafe { open_args(host, conn, path, out.is_null()) } {
            Ok(a) => a,
            Err(status) => return status,
        };
        // SAFETY: query per contract (a string, maybe empty).
        let query = unsafe { text(query) }.unwrap_or("");
        if let Err(status) = super::admit::check_open(&s, Action::Publish, path, query) {
            return status;
        }
        let info = PublisherInfo {
            protocol: i.name.clone(),
            remote: s.peer.clone(),
            ..Default::default()
        };
        match i.host.engine.publish(path, info) {
            Ok(p) => {
                // SAFETY: out is a writable out-pointer.
                let done = super::admit::done_note(&s, Action::Publish, path, query);
                // SAFETY: out is a writable out-pointer.
                unsafe { *out = s.add_publisher(p, done) };
                RILL_OK
            }
            Err(e) => {
                i.log(RILL_LOG_INFO, &format!("publish {path} refused: {e}"));
                engine_status(&e)
            }
        }
    })
}

unsafe extern "C" fn publish_derived(
    host: *mut RillHost,
    conn: *mut RillConn,
    path: RillStr,
    out: *mut *mut RillPublisher,
) -> i32 {
    callback_guard("publish_derived", RILL_ERR_INVALID, RILL_ERR_PANIC, || {
        // SAFETY: per contract.
        let (i, s, path) = match unsafe { open_args(host, conn, path, out.is_null()) } {
            Ok(a) => a,
            Err(status) => return status,
        };
        if let Err(status) = super::admit::check_open(&s, Action::Publish, path, "") {
            return status;
        }
        match i.host.engine.derive(path) {
            Ok(p) => {
                // SAFETY: out is a writable out-pointer.
                unsafe { *out = s.add_publisher(p, None) };
                RILL_OK
            }
            Err(e) => {
                i.log(
                    RILL_LOG_DEBUG,
                    &format!("derived writer on {path} refused: {e}"),
                );
                engine_status(&e)
            }
        }
    })
}

/// # Safety
/// `p` is a live publisher handle, used on its session's thread.
unsafe fn pubentry<'a>(p: *mut RillPublisher) -> Option<&'a mut PubEntry> {
    // SAFETY: a RillPublisher * points into a Box<PubEntry> its session owns
    // until publisher_close / the session's end (ABI contract).
    unsafe { (p as *mut PubEntry).as_mut() }
}

unsafe extern "C" fn publisher_add_track(p: *mut RillPublisher, info: *const RillTrackInfo) -> i32 {
    callback_guard(
        "publisher_add_track",
        RILL_ERR_INVALID,
        RILL_ERR_PANIC,
        || {
            // SAFETY: per contract.
            let (Some(e), Some(t)) = (unsafe { pubentry(p) }, unsafe { rill_read_sized(info) })
            else {
                return RILL_ERR_INVALID;
            };
            let ti = TrackInfo {
                kind: t.kind,
                codec: t.codec,
                width: t.width,
                height: t.height,
                sample_rate: t.sample_rate,
                channels: t.channels,
            };
            match e.publisher.add_track(ti) {
                Ok(id) => id as i32,
                Err(err) => engine_status(&err),
            }
        },
    )
}

unsafe extern "C" fn publisher_write(p: *mut RillPublisher, frame: *const RillFrame) -> i32 {
    callback_guard("publisher_write", RILL_ERR_INVALID, RILL_ERR_PANIC, || {
        // SAFETY: per contract.
        let (Some(e), Some(f)) = (unsafe { pubentry(p) }, unsafe { frames::borrow(frame) }) else {
            return RILL_ERR_INVALID;
        };
        // The engine stamps ring positions into the frame it stores, so it
        // takes its own shallow copy (payload shared, no byte copy).
        let owned = crate::engine::Frame::new(
            f.track(),
            f.codec(),
            // The host alone marks derived frames.
            f.flags() & !RILL_FRAME_DERIVED,
            f.pts(),
            f.dts(),
            f.payload().clone(),
        );
        match e.publisher.write(owned) {
            Ok(()) => RILL_OK,
            Err(err) => engine_status(&err),
        }
    })
}

unsafe extern "C" fn publisher_set_metadata(p: *mut RillPublisher, frame: *const RillFrame) -> i32 {
    callback_guard(
        "publisher_set_metadata",
        RILL_ERR_INVALID,
        RILL_ERR_PANIC,
        || {
            // SAFETY: per contract.
            let (Some(e), Some(f)) = (unsafe { pubentry(p) }, unsafe { frames::borrow(frame) })
            else {
                return RILL_ERR_INVALID;
            };
            match e.publisher.set_metadata(f.payload().clone()) {
                Ok(()) => RILL_OK,
                Err(err) => engine_status(&err),
            }
        },
    )
}

unsafe extern "C" fn publisher_set_source(
    p: *mut RillPublisher,
    source: RillStr,
    flags: u32,
) -> i32 {
    callback_guard(
        "publisher_set_source",
        RILL_ERR_INVALID,
        RILL_ERR_PANIC,
        || {
            // SAFETY: per contract; the source is lent for the call.
            let (Some(e), Some(source)) = (unsafe { pubentry(p) }, unsafe { text(source) }) else {
                return RILL_ERR_INVALID;
            };
            if source.len() > 4096 {
                return RILL_ERR_INVALID;
            }
            e.publisher
                .set_source(source, flags & RILL_SOURCE_CLUSTER != 0);
            RILL_OK
        },
    )
}

unsafe extern "C" fn metric_set(
    host: *mut RillHost,
    name: RillStr,
    labels: RillStr,
    kind: u32,
    value: f64,
) -> i32 {
    callback_guard("metric_set", RILL_ERR_INVALID, RILL_ERR_PANIC, || {
        // SAFETY: per contract; the strings are lent for the call.
        let (Some(i), Some(name), Some(labels)) =
            (unsafe { inst(host) }, unsafe { text(name) }, unsafe {
                text(labels)
            })
        else {
            return RILL_ERR_INVALID;
        };
        match i.host.metrics.set(&i.name, name, labels, kind, value) {
            Ok(()) => RILL_OK,
            Err(status) => status,
        }
    })
}

unsafe extern "C" fn http_pin(host: *mut RillHost, path: RillStr, on: u32) -> i32 {
    callback_guard("http_pin", RILL_ERR_INVALID, RILL_ERR_PANIC, || {
        // SAFETY: per contract; the string is lent for the call.
        let (Some(i), Some(path)) = (unsafe { inst(host) }, unsafe { text(path) }) else {
            return RILL_ERR_INVALID;
        };
        if on > 1 {
            return RILL_ERR_INVALID;
        }
        i.host.routes.pin(&i, path, on == 1)
    })
}

unsafe extern "C" fn http_publish(
    host: *mut RillHost,
    path: RillStr,
    stream: RillStr,
    content_type: RillStr,
    frame: *const RillFrame,
) -> i32 {
    callback_guard("http_publish", RILL_ERR_INVALID, RILL_ERR_PANIC, || {
        // SAFETY: per contract; strings and frame are lent for the call.
        let (Some(i), Some(path), Some(stream), Some(ct), Some(f)) = (
            unsafe { inst(host) },
            unsafe { text(path) },
            unsafe { text(stream) },
            unsafe { text(content_type) },
            unsafe { frames::borrow(frame) },
        ) else {
            return RILL_ERR_INVALID;
        };
        let owner = Arc::as_ptr(&i) as usize;
        let plugin: Arc<str> = Arc::from(i.name.as_str());
        let body = f.payload().clone();
        i.host
            .objects
            .publish(owner, &plugin, path, stream, ct, body)
    })
}

unsafe extern "C" fn http_unpublish(host: *mut RillHost, path: RillStr) -> i32 {
    callback_guard("http_unpublish", RILL_ERR_INVALID, RILL_ERR_PANIC, || {
        // SAFETY: per contract; the string is lent for the call.
        let (Some(i), Some(path)) = (unsafe { inst(host) }, unsafe { text(path) }) else {
            return RILL_ERR_INVALID;
        };
        i.host.objects.unpublish(Arc::as_ptr(&i) as usize, path)
    })
}

unsafe extern "C" fn http_expect(
    host: *mut RillHost,
    path: RillStr,
    stream: RillStr,
    wait_ms: u32,
) -> i32 {
    callback_guard("http_expect", RILL_ERR_INVALID, RILL_ERR_PANIC, || {
        // SAFETY: per contract; the strings are lent for the call.
        let (Some(i), Some(path), Some(stream)) =
            (unsafe { inst(host) }, unsafe { text(path) }, unsafe {
                text(stream)
            })
        else {
            return RILL_ERR_INVALID;
        };
        let plugin: Arc<str> = Arc::from(i.name.as_str());
        i.host
            .objects
            .expect(Arc::as_ptr(&i) as usize, &plugin, path, stream, wait_ms)
    })
}

unsafe extern "C" fn publisher_close(p: *mut RillPublisher) {
    callback_guard("publisher_close", (), (), || {
        // SAFETY: per contract.
        if let Some(e) = unsafe { pubentry(p) } {
            // SAFETY: the owner session outlives its entries.
            let owner = unsafe { &*e.owner };
            owner.remove_publisher(p);
        }
    })
}

// ---- subscribing --------------------------------------------------------------

unsafe extern "C" fn subscribe_open(
    host: *mut RillHost,
    conn: *mut RillConn,
    path: RillStr,
    query: RillStr,
    opts: *const RillSubscribeOptions,
    out: *mut *mut RillSubscriber,
) -> i32 {
    callback_guard("subscribe_open", RILL_ERR_INVALID, RILL_ERR_PANIC, || {
        // SAFETY: per contract.
        let (i, s, path) = match unsafe { open_args(host, conn, path, out.is_null()) } {
            Ok(a) => a,
            Err(status) => return status,
        };
        // SAFETY: query per contract (a string, maybe empty).
        let query = unsafe { text(query) }.unwrap_or("");
        if let Err(status) = super::admit::check_open(&s, Action::Play, path, query) {
            return status;
        }
        // SAFETY: opts per contract (NULL: defaults).
        let o = unsafe { rill_read_sized(opts) }.unwrap_or_default();
        if o.wait_timeout_us < 0
            && i.host
                .engine
                .stream(path)
                .is_none_or(|st| st.publisher.is_none())
        {
            return RILL_ERR_NOT_FOUND;
        }
        let info = SubscriberInfo {
            protocol: i.name.clone(),
            remote: s.peer.clone(),
            live_edge: o.flags & RILL_SUBSCRIBE_LIVE_EDGE != 0,
            transform: o.flags & RILL_SUBSCRIBE_TRANSFORM != 0,
            wait_timeout: (o.wait_timeout_us > 0)
                .then(|| Duration::from_micros(o.wait_timeout_us as u64)),
        };
        match i.host.engine.subscribe(path, info) {
            Ok(sub) => {
                // SAFETY: out is a writable out-pointer.
                let done = super::admit::done_note(&s, Action::Play, path, query);
                // SAFETY: out is a writable out-pointer.
                unsafe { *out = s.add_subscriber(sub, Filter::new(o.flags, o.audio_codecs), done) };
                RILL_OK
            }
            Err(e) => engine_status(&e),
        }
    })
}

// ---- admission ----------------------------------------------------------------

unsafe extern "C" fn admit(
    host: *mut RillHost,
    conn: *mut RillConn,
    req: *const RillAdmission,
    ticket: u64,
) -> i32 {
    callback_guard("admit", RILL_ERR_INVALID, RILL_ERR_PANIC, || {
        // SAFETY: per contract.
        let (s, r) = match (unsafe { inst(host) }, unsafe { sess(conn) }, unsafe {
            rill_read_sized(req)
        }) {
            (Some(_), Some(s), Some(r)) => (s, r),
            _ => return RILL_ERR_INVALID,
        };
        let Some(action) = Action::from_abi(r.action) else {
            return RILL_ERR_INVALID;
        };
        // SAFETY: the request's strings are valid for the call (contract);
        // empty or unset ones read as None.
        let field = |f: RillStr| unsafe { text(f) }.filter(|t| !t.is_empty());
        let Some(path) = field(r.path).map(|p| p.trim_matches('/')) else {
            return RILL_ERR_INVALID;
        };
        let creds = Creds {
            user: field(r.user),
            password: field(r.password),
            token: field(r.token),
        };
        super::admit::admit(
            &s,
            action,
            path,
            field(r.query).unwrap_or(""),
            creds,
            ticket,
        )
    })
}

/// # Safety
/// `p` is a live subscriber handle, used on its session's thread.
unsafe fn subentry<'a>(p: *mut RillSubscriber) -> Option<&'a mut SubEntry> {
    // SAFETY: a RillSubscriber * points into a Box<SubEntry> its session owns
    // until subscriber_close / the session's end (ABI contract).
    unsafe { (p as *mut SubEntry).as_mut() }
}

unsafe extern "C" fn subscriber_track_info(
    p: *mut RillSubscriber,
    track: u32,
    info: *mut RillTrackInfo,
) -> i32 {
    callback_guard(
        "subscriber_track_info",
        RILL_ERR_INVALID,
        RILL_ERR_PANIC,
        || {
            // SAFETY: per contract.
            let Some(e) = (unsafe { subentry(p) }) else {
                return RILL_ERR_INVALID;
            };
            if info.is_null() {
                return RILL_ERR_INVALID;
            }
            let Some(t) = e.sub.track_info(track) else {
                return RILL_ERR_NOT_FOUND;
            };
            let mut full = RillTrackInfo::new();
            full.kind = t.kind;
            full.codec = t.codec;
            full.width = t.width;
            full.height = t.height;
            full.sample_rate = t.sample_rate;
            full.channels = t.channels;
            // SAFETY: the caller set struct_size; copy that prefix after it.
            unsafe { copy_out(&full, info) }
        },
    )
}

/// Copies `src` into the caller's versioned struct, as far as its
/// `struct_size` reaches (keeping that field).
///
/// # Safety
/// `dst` points to a struct of at least its own `struct_size` bytes.
unsafe fn copy_out<T: RillSized>(src: &T, dst: *mut T) -> i32 {
    // SAFETY: per contract, dst starts with its u32 struct_size.
    let size = unsafe { std::ptr::read_unaligned(dst as *const u32) } as usize;
    let n = size.min(std::mem::size_of::<T>());
    if n < 4 {
        return RILL_ERR_INVALID;
    }
    // SAFETY: n bytes fit both; the first 4 (struct_size) stay the caller's.
    unsafe {
        std::ptr::copy_nonoverlapping(
            (src as *const T as *const u8).add(4),
            (dst as *mut u8).add(4),
            n - 4,
        )
    };
    RILL_OK
}

unsafe extern "C" fn subscriber_stats(
    p: *mut RillSubscriber,
    stats: *mut RillSubscriberStats,
) -> i32 {
    callback_guard("subscriber_stats", RILL_ERR_INVALID, RILL_ERR_PANIC, || {
        // SAFETY: per contract.
        let Some(e) = (unsafe { subentry(p) }) else {
            return RILL_ERR_INVALID;
        };
        if stats.is_null() {
            return RILL_ERR_INVALID;
        }
        let full = RillSubscriberStats {
            struct_size: std::mem::size_of::<RillSubscriberStats>() as u32,
            reserved: 0,
            frames_delivered: e.delivered,
            bytes_delivered: e.delivered_bytes,
            frames_dropped: e.sub.drops(),
            gops_dropped: 0,
            frames_queued: e.sub.queued() as u64,
        };
        // SAFETY: per contract.
        unsafe { copy_out(&full, stats) }
    })
}

unsafe extern "C" fn subscriber_close(p: *mut RillSubscriber) {
    callback_guard("subscriber_close", (), (), || {
        // SAFETY: per contract.
        if let Some(e) = unsafe { subentry(p) } {
            // SAFETY: the owner session outlives its entries.
            let owner = unsafe { &*e.owner };
            owner.remove_subscriber(p);
        }
    })
}

// ---- connections -------------------------------------------------------------

unsafe extern "C" fn listen(
    host: *mut RillHost,
    addr: RillStr,
    listener_id: u32,
    flags: u32,
) -> i32 {
    callback_guard("listen", RILL_ERR_INVALID, RILL_ERR_PANIC, || {
        // SAFETY: per contract.
        let (Some(i), Some(a)) = (unsafe { inst(host) }, unsafe { text(addr) }) else {
            return RILL_ERR_INVALID;
        };
        if !i.creating.load(Ordering::Acquire) {
            return RILL_ERR_INVALID;
        }
        let tls = flags & RILL_LISTEN_TLS != 0;
        if tls && i.host.tls.is_none() {
            i.log(
                RILL_LOG_ERROR,
                &format!("listen {a} with TLS: the host has no certificate (http.tls.cert, http.tls.key)"),
            );
            return RILL_ERR_UNSUPPORTED;
        }
        let Some(sa) = parse_listen_addr(a) else {
            i.log(RILL_LOG_ERROR, &format!("listen: bad address {a:?}"));
            return RILL_ERR_INVALID;
        };
        let mut decls = i.listens.lock();
        if decls.iter().any(|d| d.addr == sa) {
            return RILL_ERR_BUSY;
        }
        let socket = match i.host.listeners.owner_of(&sa) {
            Some(owner) if owner == i.name => None,
            Some(owner) => {
                i.log(
                    RILL_LOG_ERROR,
                    &format!("listen {sa}: plugin {owner} has it"),
                );
                return RILL_ERR_BUSY;
            }
            None => match bind(sa) {
                Ok(s) => Some(Arc::new(s)),
                Err(e) => {
                    i.log(RILL_LOG_ERROR, &format!("listen {sa}: {e}"));
                    return RILL_ERR_IO;
                }
            },
        };
        decls.push(ListenDecl {
            addr: sa,
            listener_id,
            tls,
            socket,
        });
        RILL_OK
    })
}

fn bind(addr: std::net::SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let sock = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        None,
    )?;
    sock.set_reuse_address(true)?;
    sock.bind(&addr.into())?;
    sock.listen(1024)?;
    sock.set_nonblocking(true)?;
    Ok(sock.into())
}

unsafe extern "C" fn connect(
    host: *mut RillHost,
    addr: RillStr,
    flags: u32,
    session_user: *mut c_void,
    conn_id: *mut u64,
) -> i32 {
    callback_guard("connect", RILL_ERR_INVALID, RILL_ERR_PANIC, || {
        // SAFETY: per contract.
        let (Some(i), Some(a)) = (unsafe { inst(host) }, unsafe { text(addr) }) else {
            return RILL_ERR_INVALID;
        };
        let tls = if flags & RILL_CONNECT_TLS != 0 {
            match i.host.tls_client() {
                Ok(c) => Some(c),
                Err(e) => {
                    i.log(RILL_LOG_ERROR, &format!("connect {a} with TLS: {e}"));
                    return RILL_ERR_UNSUPPORTED;
                }
            }
        } else {
            None
        };
        let Some(id) = session::spawn_connect(&i, a.to_string(), session_user, tls) else {
            return RILL_ERR_CLOSED;
        };
        if !conn_id.is_null() {
            // SAFETY: a writable out-pointer.
            unsafe { *conn_id = id };
        }
        RILL_OK
    })
}

unsafe extern "C" fn session_open(
    host: *mut RillHost,
    session_user: *mut c_void,
    conn_id: *mut u64,
) -> i32 {
    callback_guard("session_open", RILL_ERR_INVALID, RILL_ERR_PANIC, || {
        // SAFETY: per contract.
        let Some(i) = (unsafe { inst(host) }) else {
            return RILL_ERR_INVALID;
        };
        let Ok(id) = session::spawn(
            &i,
            Io::None,
            Origin::Session,
            String::new(),
            String::new(),
            session_user,
        ) else {
            return RILL_ERR_CLOSED;
        };
        if !conn_id.is_null() {
            // SAFETY: a writable out-pointer.
            unsafe { *conn_id = id };
        }
        RILL_OK
    })
}

unsafe extern "C" fn session_open_peer(
    host: *mut RillHost,
    session_user: *mut c_void,
    peer: RillStr,
    local: RillStr,
    conn_id: *mut u64,
) -> i32 {
    callback_guard(
        "session_open_peer",
        RILL_ERR_INVALID,
        RILL_ERR_PANIC,
        || {
            // SAFETY: per contract.
            let (Some(i), Some(peer), local) =
                (unsafe { inst(host) }, unsafe { text(peer) }, unsafe {
                    text(local)
                })
            else {
                return RILL_ERR_INVALID;
            };
            let Ok(addr) = peer.parse::<std::net::SocketAddr>() else {
                return RILL_ERR_INVALID;
            };
            // The per-address limits, as at a listener's accept.
            let Some(slot) = i.host.admission.accept(addr.ip(), &i.name, None) else {
                return RILL_ERR_BUSY;
            };
            let Ok(id) = session::spawn(
                &i,
                Io::None,
                Origin::Session,
                addr.to_string(),
                local.unwrap_or("").to_owned(),
                session_user,
            ) else {
                return RILL_ERR_CLOSED;
            };
            i.hold_slot(id, slot);
            if !conn_id.is_null() {
                // SAFETY: a writable out-pointer.
                unsafe { *conn_id = id };
            }
            RILL_OK
        },
    )
}

unsafe extern "C" fn conn_id(conn: *mut RillConn) -> u64 {
    // SAFETY: per contract.
    callback_guard("conn_id", 0, 0, || {
        unsafe { sess(conn) }.map_or(0, |s| s.id)
    })
}

unsafe extern "C" fn conn_write(conn: *mut RillConn, data: *const u8, len: usize) -> i32 {
    callback_guard("conn_write", RILL_ERR_INVALID, RILL_ERR_PANIC, || {
        // SAFETY: per contract.
        let Some(s) = (unsafe { sess(conn) }) else {
            return RILL_ERR_INVALID;
        };
        if data.is_null() && len > 0 {
            return RILL_ERR_INVALID;
        }
        let b = if len == 0 {
            Bytes::new()
        } else {
            // SAFETY: the plugin lends len readable bytes.
            Bytes::copy_from_slice(unsafe { std::slice::from_raw_parts(data, len) })
        };
        s.queue_write(b)
    })
}

unsafe extern "C" fn conn_write_frame(conn: *mut RillConn, frame: *const RillFrame) -> i32 {
    callback_guard("conn_write_frame", RILL_ERR_INVALID, RILL_ERR_PANIC, || {
        // SAFETY: per contract.
        let (Some(s), Some(f)) = (unsafe { sess(conn) }, unsafe { frames::borrow(frame) }) else {
            return RILL_ERR_INVALID;
        };
        s.queue_write(f.payload().clone())
    })
}

unsafe extern "C" fn conn_pending(conn: *mut RillConn) -> u64 {
    // SAFETY: per contract.
    callback_guard("conn_pending", 0, 0, || {
        unsafe { sess(conn) }.map_or(0, |s| s.pending() as u64)
    })
}

unsafe extern "C" fn conn_pause_read(conn: *mut RillConn, paused: u32) -> i32 {
    callback_guard("conn_pause_read", RILL_ERR_INVALID, RILL_ERR_PANIC, || {
        // SAFETY: per contract.
        match unsafe { sess(conn) } {
            Some(s) => {
                s.set_paused(paused != 0);
                RILL_OK
            }
            None => RILL_ERR_INVALID,
        }
    })
}

unsafe extern "C" fn conn_close(conn: *mut RillConn, reason: u32) -> i32 {
    callback_guard("conn_close", RILL_ERR_INVALID, RILL_ERR_PANIC, || {
        // SAFETY: per contract.
        match unsafe { sess(conn) } {
            Some(s) => {
                s.request_close(reason, "closed by the plugin");
                RILL_OK
            }
            None => RILL_ERR_INVALID,
        }
    })
}

unsafe extern "C" fn conn_peer_addr(conn: *mut RillConn) -> RillStr {
    callback_guard("conn_peer_addr", RillStr::EMPTY, RillStr::EMPTY, || {
        if conn.is_null() {
            return RillStr::EMPTY;
        }
        // SAFETY: the session (and its address) outlive this view per contract.
        let s = unsafe { &*(conn as *const SessionShared) };
        RillStr::from_str(&s.peer)
    })
}

unsafe extern "C" fn conn_local_addr(conn: *mut RillConn) -> RillStr {
    callback_guard("conn_local_addr", RillStr::EMPTY, RillStr::EMPTY, || {
        if conn.is_null() {
            return RillStr::EMPTY;
        }
        // SAFETY: as conn_peer_addr.
        let s = unsafe { &*(conn as *const SessionShared) };
        RillStr::from_str(&s.local)
    })
}

// ---- HTTP (routed by the host's HTTP server) -----------------------------------

unsafe extern "C" fn http_route(
    host: *mut RillHost,
    method: RillStr,
    pattern: RillStr,
    route_id: u32,
) -> i32 {
    // SAFETY: forwarded contract.
    unsafe { http_route_flags(host, method, pattern, route_id, 0) }
}

unsafe extern "C" fn http_route_flags(
    host: *mut RillHost,
    method: RillStr,
    pattern: RillStr,
    route_id: u32,
    flags: u32,
) -> i32 {
    callback_guard("http_route", RILL_ERR_INVALID, RILL_ERR_PANIC, || {
        // SAFETY: per contract.
        let (Some(i), Some(m), Some(p)) =
            (unsafe { inst(host) }, unsafe { text(method) }, unsafe {
                text(pattern)
            })
        else {
            return RILL_ERR_INVALID;
        };
        if !i.creating.load(Ordering::Acquire) || p.is_empty() || flags & !RILL_ROUTE_STREAM != 0 {
            return RILL_ERR_INVALID;
        }
        // Under /api only the plugin's own management routes, which the
        // host guards as its API.
        if p.starts_with("/api") && !p.starts_with(&format!("/api/v1/plugins/{}/", i.name)) {
            return RILL_ERR_DENIED;
        }
        let mut routes = i.routes.lock();
        if routes.iter().any(|r| r.method == m && r.pattern == p) {
            return RILL_ERR_BUSY;
        }
        routes.push(RouteDecl {
            method: m.to_ascii_uppercase(),
            pattern: p.to_string(),
            route_id,
            stream: flags & RILL_ROUTE_STREAM != 0,
        });
        RILL_OK
    })
}

/// # Safety
/// `h` is NULL or `n` headers the plugin lends for the call.
unsafe fn headers_of(h: *const RillHeader, n: usize) -> Option<Vec<(String, String)>> {
    if n == 0 {
        return Some(Vec::new());
    }
    if h.is_null() || n > 256 {
        return None;
    }
    // SAFETY: per contract, n readable headers.
    let hs = unsafe { std::slice::from_raw_parts(h, n) };
    hs.iter()
        .map(|h| {
            // SAFETY: lent for the call.
            let (k, v) = unsafe { (text(h.name)?, text(h.value)?) };
            // No header injection: names are tokens, values one line.
            let ok = !k.is_empty()
                && k.bytes().all(|b| b.is_ascii_graphic() && b != b':')
                && !v.contains(['\r', '\n']);
            ok.then(|| (k.to_string(), v.to_string()))
        })
        .collect()
}

unsafe extern "C" fn http_respond(
    conn: *mut RillConn,
    status: u32,
    headers: *const RillHeader,
    n: usize,
    body: u32,
    length: u64,
) -> i32 {
    callback_guard("http_respond", RILL_ERR_INVALID, RILL_ERR_PANIC, || {
        // SAFETY: per contract.
        let (Some(s), Some(headers)) = (unsafe { sess(conn) }, unsafe { headers_of(headers, n) })
        else {
            return RILL_ERR_INVALID;
        };
        if !(100..=599).contains(&status) || body > RILL_HTTP_BODY_CLOSE {
            return RILL_ERR_INVALID;
        }
        s.answer_http(session::HttpAnswer::Respond {
            status: status as u16,
            headers,
            body,
            length,
        })
    })
}

unsafe extern "C" fn http_upgrade_websocket(
    conn: *mut RillConn,
    headers: *const RillHeader,
    n: usize,
) -> i32 {
    callback_guard(
        "http_upgrade_websocket",
        RILL_ERR_INVALID,
        RILL_ERR_PANIC,
        || {
            // SAFETY: per contract.
            let (Some(s), Some(headers)) =
                (unsafe { sess(conn) }, unsafe { headers_of(headers, n) })
            else {
                return RILL_ERR_INVALID;
            };
            s.answer_http(session::HttpAnswer::Upgrade { headers })
        },
    )
}

unsafe extern "C" fn ws_send(conn: *mut RillConn, opcode: u32, data: *const u8, len: usize) -> i32 {
    callback_guard("ws_send", RILL_ERR_INVALID, RILL_ERR_PANIC, || {
        // SAFETY: per contract.
        let Some(s) = (unsafe { sess(conn) }) else {
            return RILL_ERR_INVALID;
        };
        if (data.is_null() && len > 0) || !(opcode == RILL_WS_TEXT || opcode == RILL_WS_BINARY) {
            return RILL_ERR_INVALID;
        }
        let b = if len == 0 {
            Bytes::new()
        } else {
            // SAFETY: the plugin lends len readable bytes.
            Bytes::copy_from_slice(unsafe { std::slice::from_raw_parts(data, len) })
        };
        s.queue_ws(b, opcode == RILL_WS_TEXT)
    })
}

// ---- UDP: not yet served by this host -------------------------------------------

/// # Safety
/// `u` is NULL or a live `RillUdp *` from `udp_bind`.
unsafe fn udp_handle<'a>(u: *mut RillUdp) -> Option<&'a super::udp::SessionUdp> {
    // SAFETY: a RillUdp * points into a Box its session owns until
    // udp_close / the session's end (ABI contract).
    unsafe { (u as *const super::udp::SessionUdp).as_ref() }
}

unsafe extern "C" fn udp_bind(
    host: *mut RillHost,
    conn: *mut RillConn,
    addr: RillStr,
    socket_id: u32,
    out: *mut *mut RillUdp,
) -> i32 {
    callback_guard("udp_bind", RILL_ERR_INVALID, RILL_ERR_PANIC, || {
        // SAFETY: per contract.
        let (Some(i), Some(s), Some(a)) = (unsafe { inst(host) }, unsafe { sess(conn) }, unsafe {
            text(addr)
        }) else {
            return RILL_ERR_INVALID;
        };
        if out.is_null() {
            return RILL_ERR_INVALID;
        }
        let Some(sa) = parse_listen_addr(a) else {
            i.log(RILL_LOG_ERROR, &format!("udp_bind: bad address {a:?}"));
            return RILL_ERR_INVALID;
        };
        match s.bind_udp(sa, socket_id) {
            Ok(p) => {
                // SAFETY: a writable out-pointer.
                unsafe { *out = p };
                RILL_OK
            }
            Err(e) => {
                i.log(RILL_LOG_WARN, &format!("udp_bind {sa}: {e}"));
                RILL_ERR_IO
            }
        }
    })
}

unsafe extern "C" fn udp_send_to(u: *mut RillUdp, a: RillStr, d: *const u8, l: usize) -> i32 {
    callback_guard("udp_send_to", RILL_ERR_INVALID, RILL_ERR_PANIC, || {
        // SAFETY: per contract.
        let (Some(u), Some(a)) = (unsafe { udp_handle(u) }, unsafe { text(a) }) else {
            return RILL_ERR_INVALID;
        };
        let (Ok(to), Some(data)) = (a.parse::<std::net::SocketAddr>(), unsafe { bytes(d, l) })
        else {
            return RILL_ERR_INVALID;
        };
        if data.len() > super::udp::MAX_SEND {
            return RILL_ERR_INVALID;
        }
        match u.socket.try_send_to(data, to) {
            Ok(_) => RILL_OK,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => RILL_ERR_AGAIN,
            Err(_) => RILL_ERR_IO,
        }
    })
}

unsafe extern "C" fn udp_local_addr(u: *mut RillUdp) -> RillStr {
    callback_guard("udp_local_addr", RillStr::EMPTY, RillStr::EMPTY, || {
        // SAFETY: per contract; the string lives as long as the socket.
        match unsafe { udp_handle(u) } {
            Some(u) => RillStr::from_str(&u.local),
            None => RillStr::EMPTY,
        }
    })
}

unsafe extern "C" fn udp_close(u: *mut RillUdp) {
    callback_guard("udp_close", (), (), || {
        // SAFETY: per contract.
        if let Some(h) = unsafe { udp_handle(u) } {
            // SAFETY: the owner session outlives its sockets.
            let owner = unsafe { &*h.owner };
            owner.close_udp(h);
        }
    })
}

unsafe extern "C" fn udp_listen(
    host: *mut RillHost,
    addr: RillStr,
    socket_id: u32,
    flags: u32,
) -> i32 {
    callback_guard("udp_listen", RILL_ERR_INVALID, RILL_ERR_PANIC, || {
        // SAFETY: per contract.
        let (Some(i), Some(a)) = (unsafe { inst(host) }, unsafe { text(addr) }) else {
            return RILL_ERR_INVALID;
        };
        if !i.creating.load(Ordering::Acquire) || flags != 0 {
            return RILL_ERR_INVALID;
        }
        let Some(sa) = parse_listen_addr(a) else {
            i.log(RILL_LOG_ERROR, &format!("udp_listen: bad address {a:?}"));
            return RILL_ERR_INVALID;
        };
        let mut decls = i.udp_decls.lock();
        if decls
            .iter()
            .any(|d| d.addr == sa || d.socket_id == socket_id)
        {
            return RILL_ERR_BUSY;
        }
        let socket = match i.host.udp.owner_of(&sa) {
            Some(owner) if owner == i.name => None,
            Some(owner) => {
                i.log(
                    RILL_LOG_ERROR,
                    &format!("udp_listen {sa}: plugin {owner} has it"),
                );
                return RILL_ERR_BUSY;
            }
            None => match super::udp::bind(sa) {
                Ok(s) => Some(s),
                Err(e) => {
                    i.log(RILL_LOG_ERROR, &format!("udp_listen {sa}: {e}"));
                    return RILL_ERR_IO;
                }
            },
        };
        decls.push(super::udp::UdpDecl {
            addr: sa,
            socket_id,
            socket,
        });
        RILL_OK
    })
}

unsafe extern "C" fn udp_send(
    host: *mut RillHost,
    socket_id: u32,
    to: *const RillSockAddr,
    data: *const u8,
    len: usize,
) -> i32 {
    callback_guard("udp_send", RILL_ERR_INVALID, RILL_ERR_PANIC, || {
        // SAFETY: per contract: a live host, an address and bytes borrowed
        // for the call.
        let (Some(i), Some(to), Some(data)) =
            (unsafe { inst(host) }, unsafe { to.as_ref() }, unsafe {
                bytes(data, len)
            })
        else {
            return RILL_ERR_INVALID;
        };
        let Some(to) = to.to_socket_addr() else {
            return RILL_ERR_INVALID;
        };
        if data.len() > super::udp::MAX_SEND {
            return RILL_ERR_INVALID;
        }
        let entry = i.udp.lock().get(&socket_id).cloned();
        match entry {
            Some(e) => e.send(to, data),
            None => RILL_ERR_NOT_FOUND,
        }
    })
}

// ---- timers and posts ---------------------------------------------------------------

unsafe extern "C" fn timer_start(
    host: *mut RillHost,
    conn: *mut RillConn,
    delay_us: u64,
    repeat: u32,
    timer_id: u64,
    handle: *mut u64,
) -> i32 {
    callback_guard("timer_start", RILL_ERR_INVALID, RILL_ERR_PANIC, || {
        // SAFETY: per contract.
        let Some(i) = (unsafe { inst(host) }) else {
            return RILL_ERR_INVALID;
        };
        if delay_us > session::MAX_TIMER_DELAY.as_micros() as u64 {
            return RILL_ERR_INVALID;
        }
        // SAFETY: per contract (NULL: instance timer).
        let s = unsafe { sess(conn) };
        let h = session::start_timer(
            &i,
            s.as_ref(),
            Duration::from_micros(delay_us),
            repeat != 0,
            timer_id,
        );
        if !handle.is_null() {
            // SAFETY: a writable out-pointer.
            unsafe { *handle = h };
        }
        RILL_OK
    })
}

unsafe extern "C" fn timer_cancel(host: *mut RillHost, handle: u64) -> i32 {
    callback_guard("timer_cancel", RILL_ERR_INVALID, RILL_ERR_PANIC, || {
        // SAFETY: per contract.
        let Some(i) = (unsafe { inst(host) }) else {
            return RILL_ERR_INVALID;
        };
        let removed = i.timers.lock().remove(&handle);
        match removed {
            Some((sid, abort, _)) => {
                abort.abort();
                session::forget_timer(&i, sid, handle);
                RILL_OK
            }
            None => RILL_ERR_NOT_FOUND,
        }
    })
}

unsafe extern "C" fn post(host: *mut RillHost, conn_id: u64, arg: *mut c_void) -> i32 {
    guard("post", RILL_ERR_PANIC, || {
        // SAFETY: per contract.
        let Some(i) = (unsafe { inst(host) }) else {
            return RILL_ERR_INVALID;
        };
        let ok = if conn_id == 0 {
            i.post_instance(arg as usize)
        } else {
            i.sessions
                .get(&conn_id)
                .is_some_and(|s| s.send(session::Ctl::Post(arg as usize)))
        };
        if ok {
            RILL_OK
        } else {
            RILL_ERR_CLOSED
        }
    })
}

/// The table handed to every plugin.
pub(crate) static HOST_API: RillHostApi = RillHostApi {
    struct_size: std::mem::size_of::<RillHostApi>() as u32,
    abi_major: RILL_ABI_MAJOR,
    abi_minor: RILL_ABI_MINOR,
    log: Some(log),
    log_enabled: Some(log_enabled),
    config: Some(config),
    clock_monotonic_us: Some(clock_monotonic_us),
    clock_wall_us: Some(clock_wall_us),
    frame_alloc: Some(frame_alloc),
    frame_freeze: Some(frame_freeze),
    frame_buf_free: Some(frame_buf_free),
    frame_copy: Some(frame_copy),
    frame_wrap: Some(frame_wrap),
    frame_retain: Some(frame_retain),
    frame_release: Some(frame_release),
    frame_slice: Some(frame_slice),
    frame_data: Some(frame_data),
    frame_info: Some(frame_info),
    frame_cache_get: Some(frame_cache_get),
    frame_cache_set: Some(frame_cache_set),
    publish_open: Some(publish_open),
    publisher_add_track: Some(publisher_add_track),
    publisher_write: Some(publisher_write),
    publisher_set_metadata: Some(publisher_set_metadata),
    publisher_close: Some(publisher_close),
    subscribe_open: Some(subscribe_open),
    subscriber_track_info: Some(subscriber_track_info),
    subscriber_stats: Some(subscriber_stats),
    subscriber_close: Some(subscriber_close),
    listen: Some(listen),
    connect: Some(connect),
    session_open: Some(session_open),
    conn_id: Some(conn_id),
    conn_write: Some(conn_write),
    conn_write_frame: Some(conn_write_frame),
    conn_pending: Some(conn_pending),
    conn_pause_read: Some(conn_pause_read),
    conn_close: Some(conn_close),
    conn_peer_addr: Some(conn_peer_addr),
    conn_local_addr: Some(conn_local_addr),
    http_route: Some(http_route),
    http_respond: Some(http_respond),
    http_upgrade_websocket: Some(http_upgrade_websocket),
    ws_send: Some(ws_send),
    udp_bind: Some(udp_bind),
    udp_send_to: Some(udp_send_to),
    udp_local_addr: Some(udp_local_addr),
    udp_close: Some(udp_close),
    timer_start: Some(timer_start),
    timer_cancel: Some(timer_cancel),
    post: Some(post),
    udp_listen: Some(udp_listen),
    udp_send: Some(udp_send),
    http_route_flags: Some(http_route_flags),
    admit: Some(admit),
    session_open_peer: Some(session_open_peer),
    file_open: Some(storage_api::file_open),
    file_write: Some(storage_api::file_write),
    file_read: Some(storage_api::file_read),
    file_sync: Some(storage_api::file_sync),
    file_close: Some(storage_api::file_close),
    fs_op: Some(storage_api::fs_op),
    recording_add: Some(storage_api::recording_add),
    recording_update: Some(storage_api::recording_update),
    recordings_query: Some(storage_api::recordings_query),
    recordings_expire: Some(storage_api::recordings_expire),
    publisher_set_source: Some(publisher_set_source),
    cluster_locate: Some(cluster_api::cluster_locate),
    metric_set: Some(metric_set),
    http_pin: Some(http_pin),
    publish_derived: Some(publish_derived),
    http_publish: Some(http_publish),
    http_unpublish: Some(http_unpublish),
    http_expect: Some(http_expect),
};
