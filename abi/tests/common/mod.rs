//! A mock Rill host for tests: implements every `RillHostApi` call over
//! plain Rust data and records what the plugin does. It also shows the host
//! side's contract in miniature (refcounted frames behind opaque pointers,
//! the frame cache, `RILL_FULL` backpressure, posts).
#![allow(dead_code)]

use std::collections::HashMap;
use std::ffi::c_void;
use std::sync::atomic::{AtomicIsize, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use rill_abi::*;

/// What a publisher did, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Open(String),
    Track(u32, RillTrackInfo),
    Frame(RillFrameInfo, Vec<u8>),
    Meta(RillFrameInfo, Vec<u8>),
    Closed,
}

pub struct MockHost {
    pub config: String,
    pub logs: Mutex<Vec<(u32, String)>>,
    pub listeners: Mutex<Vec<(String, u32, u32)>>,
    pub routes: Mutex<Vec<(String, String, u32)>>,
    pub events: Mutex<Vec<Event>>,
    pub subscriptions: Mutex<Vec<String>>,
    pub busy_paths: Mutex<Vec<String>>,
    pub posts: Mutex<Vec<(u64, usize)>>,
    pub timers: Mutex<Vec<(usize, u64, u64)>>,
    /// Frames alive now (created minus destroyed).
    pub live_frames: Arc<AtomicIsize>,
    pub frame_allocs: AtomicUsize,
    next_id: AtomicU64,
    pub api: RillHostApi,
}

impl MockHost {
    pub fn new(config: &str) -> Box<MockHost> {
        Box::new(MockHost {
            config: config.to_owned(),
            logs: Mutex::default(),
            listeners: Mutex::default(),
            routes: Mutex::default(),
            events: Mutex::default(),
            subscriptions: Mutex::default(),
            busy_paths: Mutex::default(),
            posts: Mutex::default(),
            timers: Mutex::default(),
            live_frames: Arc::default(),
            frame_allocs: AtomicUsize::new(0),
            next_id: AtomicU64::new(1),
            api: host_api(),
        })
    }

    pub fn raw(&self) -> *mut RillHost {
        self as *const MockHost as *mut RillHost
    }

    pub fn logs_text(&self) -> String {
        let logs = self.logs.lock().unwrap();
        logs.iter().map(|(l, m)| format!("[{l}] {m}\n")).collect()
    }

    /// A new connection handle.
    pub fn conn(&self) -> Box<MockConn> {
        Box::new(MockConn {
            host: self as *const MockHost,
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            out: Mutex::default(),
            drained: AtomicUsize::new(0),
            high_water: AtomicUsize::new(usize::MAX),
            closed: Mutex::new(None),
            frame_writes: AtomicUsize::new(0),
        })
    }

    /// A frame the test owns (release it with `frame_release`).
    pub fn frame(&self, data: &[u8], info: RillFrameInfo) -> *mut RillFrame {
        MockFrame::create(self, Mem::Owned(data.to_vec()), info)
    }
}

pub struct MockConn {
    pub host: *const MockHost,
    pub id: u64,
    pub out: Mutex<Vec<u8>>,
    /// How many bytes of `out` the "socket" took (pending = len - drained).
    pub drained: AtomicUsize,
    pub high_water: AtomicUsize,
    pub closed: Mutex<Option<u32>>,
    pub frame_writes: AtomicUsize,
}

impl MockConn {
    pub fn raw(&self) -> *mut RillConn {
        self as *const MockConn as *mut RillConn
    }
    pub fn output(&self) -> Vec<u8> {
        self.out.lock().unwrap().clone()
    }
    pub fn drain_all(&self) {
        let n = self.out.lock().unwrap().len();
        self.drained.store(n, Ordering::Relaxed);
    }
    fn push(&self, data: &[u8]) -> i32 {
        if self.closed.lock().unwrap().is_some() {
            return RILL_ERR_CLOSED;
        }
        let mut out = self.out.lock().unwrap();
        out.extend_from_slice(data);
        let pending = out.len() - self.drained.load(Ordering::Relaxed);
        if pending > self.high_water.load(Ordering::Relaxed) {
            RILL_FULL
        } else {
            RILL_OK
        }
    }
}

enum Mem {
    Owned(Vec<u8>),
    Wrapped {
        ptr: *const u8,
        len: usize,
        release: RillReleaseFn,
        user: *mut c_void,
    },
    Slice {
        parent: Arc<MockFrame>,
        off: usize,
        len: usize,
    },
}

pub struct MockFrame {
    mem: Mem,
    info: RillFrameInfo,
    cache: Mutex<HashMap<u64, usize>>, // key -> raw *mut RillFrame (a held reference)
    live: Arc<AtomicIsize>,
}

// SAFETY: (test) wrapped memory is immutable and released once.
unsafe impl Send for MockFrame {}
// SAFETY: (test) as above.
unsafe impl Sync for MockFrame {}

impl MockFrame {
    fn create(host: &MockHost, mem: Mem, info: RillFrameInfo) -> *mut RillFrame {
        host.live_frames.fetch_add(1, Ordering::Relaxed);
        let f = Arc::new(MockFrame {
            mem,
            info,
            cache: Mutex::default(),
            live: host.live_frames.clone(),
        });
        Arc::into_raw(f) as *mut RillFrame
    }

    fn bytes(&self) -> &[u8] {
        match &self.mem {
            Mem::Owned(v) => v,
            // SAFETY: (test) the plugin keeps wrapped bytes alive until release.
            Mem::Wrapped { ptr, len, .. } => unsafe { std::slice::from_raw_parts(*ptr, *len) },
            Mem::Slice { parent, off, len } => &parent.bytes()[*off..*off + *len],
        }
    }

    /// # Safety
    /// `f` must be a live frame pointer from this mock.
    unsafe fn get<'a>(f: *const RillFrame) -> &'a MockFrame {
        // SAFETY: (test) Arc::into_raw pointer.
        unsafe { &*(f as *const MockFrame) }
    }
}

impl Drop for MockFrame {
    fn drop(&mut self) {
        self.live.fetch_sub(1, Ordering::Relaxed);
        for (_, v) in self.cache.lock().unwrap().drain() {
            // SAFETY: (test) the cache held one reference per entry.
            unsafe { frame_release(v as *mut RillFrame) };
        }
        if let Mem::Wrapped {
            ptr,
            len,
            release,
            user,
        } = self.mem
        {
            if let Some(f) = release.0 {
                // SAFETY: (test) called once with what frame_wrap got.
                unsafe { f(user, ptr, len) };
            }
        }
    }
}

fn read_info(info: *const RillFrameInfo) -> RillFrameInfo {
    // SAFETY: (test) the plugin passes a valid struct or NULL.
    let mut i = unsafe { rill_read_sized(info) }.unwrap_or_default();
    i.struct_size = std::mem::size_of::<RillFrameInfo>() as u32;
    i
}

fn host<'a>(h: *mut RillHost) -> &'a MockHost {
    // SAFETY: (test) the host pointer is a live MockHost.
    unsafe { &*(h as *const MockHost) }
}

fn conn<'a>(c: *mut RillConn) -> &'a MockConn {
    // SAFETY: (test) conn pointers are live MockConns.
    unsafe { &*(c as *const MockConn) }
}

fn text(s: RillStr) -> String {
    // SAFETY: (test) borrowed for the call.
    unsafe { s.to_str() }
        .expect("plugin passed invalid UTF-8")
        .to_owned()
}

unsafe extern "C" fn log(h: *mut RillHost, level: u32, msg: RillStr) {
    host(h).logs.lock().unwrap().push((level, text(msg)));
}
unsafe extern "C" fn log_enabled(_h: *mut RillHost, _level: u32) -> u32 {
    1
}
unsafe extern "C" fn config(h: *mut RillHost) -> RillStr {
    RillStr::from_str(&host(h).config)
}
unsafe extern "C" fn clock_monotonic_us(_h: *mut RillHost) -> i64 {
    1_000
}
unsafe extern "C" fn clock_wall_us(_h: *mut RillHost) -> i64 {
    1_700_000_000_000_000
}

struct MockBuf {
    host: *const MockHost,
    data: Vec<u8>,
}

unsafe extern "C" fn frame_alloc(
    h: *mut RillHost,
    len: usize,
    data: *mut *mut u8,
) -> *mut RillFrameBuf {
    host(h).frame_allocs.fetch_add(1, Ordering::Relaxed);
    let mut b = Box::new(MockBuf {
        host: host(h) as *const MockHost,
        data: vec![0xEE; len],
    });
    // SAFETY: (test) valid out pointer.
    unsafe { *data = b.data.as_mut_ptr() };
    Box::into_raw(b) as *mut RillFrameBuf
}
unsafe extern "C" fn frame_freeze(
    buf: *mut RillFrameBuf,
    len: usize,
    info: *const RillFrameInfo,
) -> *mut RillFrame {
    // SAFETY: (test) a buffer from frame_alloc, consumed here.
    let mut b = unsafe { Box::from_raw(buf as *mut MockBuf) };
    if len > b.data.len() {
        return std::ptr::null_mut();
    }
    b.data.truncate(len);
    // SAFETY: (test) the host outlives its buffers.
    let h = unsafe { &*b.host };
    MockFrame::create(h, Mem::Owned(std::mem::take(&mut b.data)), read_info(info))
}
unsafe extern "C" fn frame_buf_free(buf: *mut RillFrameBuf) {
    // SAFETY: (test) a buffer from frame_alloc.
    drop(unsafe { Box::from_raw(buf as *mut MockBuf) });
}
unsafe extern "C" fn frame_copy(
    h: *mut RillHost,
    data: *const u8,
    len: usize,
    info: *const RillFrameInfo,
) -> *mut RillFrame {
    // SAFETY: (test) borrowed bytes.
    let bytes = unsafe { RillBytes { ptr: data, len }.as_slice() }.to_vec();
    MockFrame::create(host(h), Mem::Owned(bytes), read_info(info))
}
unsafe extern "C" fn frame_wrap(
    h: *mut RillHost,
    data: *const u8,
    len: usize,
    release: RillReleaseFn,
    user: *mut c_void,
    info: *const RillFrameInfo,
) -> *mut RillFrame {
    MockFrame::create(
        host(h),
        Mem::Wrapped {
            ptr: data,
            len,
            release,
            user,
        },
        read_info(info),
    )
}
unsafe extern "C" fn frame_retain(f: *const RillFrame) -> *mut RillFrame {
    // SAFETY: (test) a live Arc pointer.
    unsafe { Arc::increment_strong_count(f as *const MockFrame) };
    f as *mut RillFrame
}
pub unsafe extern "C" fn frame_release(f: *mut RillFrame) {
    if !f.is_null() {
        // SAFETY: (test) gives back one reference.
        unsafe { Arc::decrement_strong_count(f as *const MockFrame) };
    }
}
unsafe extern "C" fn frame_slice(
    f: *const RillFrame,
    off: usize,
    len: usize,
    info: *const RillFrameInfo,
) -> *mut RillFrame {
    // SAFETY: (test) live frame.
    let parent_ref = unsafe { MockFrame::get(f) };
    if off
        .checked_add(len)
        .is_none_or(|e| e > parent_ref.bytes().len())
    {
        return std::ptr::null_mut();
    }
    let info = if info.is_null() {
        parent_ref.info
    } else {
        read_info(info)
    };
    // SAFETY: (test) take a new Arc for the parent.
    let parent = unsafe {
        Arc::increment_strong_count(f as *const MockFrame);
        Arc::from_raw(f as *const MockFrame)
    };
    parent_ref.live.fetch_add(1, Ordering::Relaxed);
    let live = parent_ref.live.clone();
    Arc::into_raw(Arc::new(MockFrame {
        mem: Mem::Slice { parent, off, len },
        info,
        cache: Mutex::default(),
        live,
    })) as *mut RillFrame
}
pub unsafe extern "C" fn frame_data(f: *const RillFrame) -> RillBytes {
    // SAFETY: (test) live frame.
    RillBytes::from_slice(unsafe { MockFrame::get(f) }.bytes())
}
unsafe extern "C" fn frame_info(f: *const RillFrame, out: *mut RillFrameInfo) -> i32 {
    if out.is_null() {
        return RILL_ERR_INVALID;
    }
    // SAFETY: (test) live frame; the caller's struct_size bounds the write.
    unsafe {
        let want = (*out).struct_size as usize;
        let src = MockFrame::get(f).info;
        let n = want.min(std::mem::size_of::<RillFrameInfo>());
        std::ptr::copy_nonoverlapping(&src as *const _ as *const u8, out as *mut u8, n);
        (*out).struct_size = want as u32;
    }
    RILL_OK
}
unsafe extern "C" fn frame_cache_get(
    _h: *mut RillHost,
    f: *const RillFrame,
    key: u64,
) -> *mut RillFrame {
    // SAFETY: (test) live frame.
    let fr = unsafe { MockFrame::get(f) };
    match fr.cache.lock().unwrap().get(&key) {
        // SAFETY: (test) hand out a new reference.
        Some(&v) => unsafe { frame_retain(v as *const RillFrame) },
        None => std::ptr::null_mut(),
    }
}
unsafe extern "C" fn frame_cache_set(
    _h: *mut RillHost,
    f: *const RillFrame,
    key: u64,
    v: *const RillFrame,
) -> i32 {
    if f == v {
        return RILL_ERR_INVALID;
    }
    // SAFETY: (test) live frame.
    let fr = unsafe { MockFrame::get(f) };
    let mut c = fr.cache.lock().unwrap();
    if c.contains_key(&key) {
        return RILL_ERR_BUSY;
    }
    if c.len() >= RILL_FRAME_CACHE_MIN_SLOTS as usize {
        return RILL_ERR_NOMEM;
    }
    // SAFETY: (test) the cache keeps its own reference.
    c.insert(key, unsafe { frame_retain(v) } as usize);
    RILL_OK
}

pub struct MockPublisher {
    host: *const MockHost,
    tracks: u32,
}

fn events<'a>(p: *mut RillPublisher) -> (&'a MockHost, &'a mut MockPublisher) {
    // SAFETY: (test) a live publisher from publish_open.
    let p = unsafe { &mut *(p as *mut MockPublisher) };
    // SAFETY: (test) the host outlives its publishers.
    (unsafe { &*p.host }, p)
}

unsafe extern "C" fn publish_open(
    h: *mut RillHost,
    c: *mut RillConn,
    path: RillStr,
    _q: RillStr,
    out: *mut *mut RillPublisher,
) -> i32 {
    if c.is_null() || out.is_null() {
        return RILL_ERR_INVALID;
    }
    let path = text(path);
    if host(h).busy_paths.lock().unwrap().contains(&path) {
        return RILL_ERR_BUSY;
    }
    host(h).events.lock().unwrap().push(Event::Open(path));
    let p = Box::new(MockPublisher {
        host: host(h),
        tracks: 0,
    });
    // SAFETY: (test) valid out pointer.
    unsafe { *out = Box::into_raw(p) as *mut RillPublisher };
    RILL_OK
}
unsafe extern "C" fn publisher_add_track(p: *mut RillPublisher, info: *const RillTrackInfo) -> i32 {
    let (h, p) = events(p);
    // SAFETY: (test) valid struct.
    let info = unsafe { rill_read_sized(info) }.unwrap();
    let id = p.tracks;
    p.tracks += 1;
    h.events.lock().unwrap().push(Event::Track(id, info));
    id as i32
}
unsafe extern "C" fn publisher_write(p: *mut RillPublisher, f: *const RillFrame) -> i32 {
    let (h, _) = events(p);
    // SAFETY: (test) borrowed frame.
    let fr = unsafe { MockFrame::get(f) };
    h.events
        .lock()
        .unwrap()
        .push(Event::Frame(fr.info, fr.bytes().to_vec()));
    RILL_OK
}
unsafe extern "C" fn publisher_set_metadata(p: *mut RillPublisher, f: *const RillFrame) -> i32 {
    let (h, _) = events(p);
    // SAFETY: (test) borrowed frame.
    let fr = unsafe { MockFrame::get(f) };
    h.events
        .lock()
        .unwrap()
        .push(Event::Meta(fr.info, fr.bytes().to_vec()));
    RILL_OK
}
unsafe extern "C" fn publisher_close(p: *mut RillPublisher) {
    let (h, _) = events(p);
    h.events.lock().unwrap().push(Event::Closed);
    // SAFETY: (test) freed once.
    drop(unsafe { Box::from_raw(p as *mut MockPublisher) });
}

pub struct MockSubscriber {
    pub path: String,
}
unsafe extern "C" fn subscribe_open(
    h: *mut RillHost,
    c: *mut RillConn,
    path: RillStr,
    _q: RillStr,
    _o: *const RillSubscribeOptions,
    out: *mut *mut RillSubscriber,
) -> i32 {
    if c.is_null() || out.is_null() {
        return RILL_ERR_INVALID;
    }
    let path = text(path);
    host(h).subscriptions.lock().unwrap().push(path.clone());
    // SAFETY: (test) valid out pointer.
    unsafe { *out = Box::into_raw(Box::new(MockSubscriber { path })) as *mut RillSubscriber };
    RILL_OK
}
unsafe extern "C" fn subscriber_track_info(
    _s: *mut RillSubscriber,
    _t: u32,
    _i: *mut RillTrackInfo,
) -> i32 {
    RILL_ERR_NOT_FOUND
}
unsafe extern "C" fn subscriber_stats(
    _s: *mut RillSubscriber,
    _st: *mut RillSubscriberStats,
) -> i32 {
    RILL_OK
}
unsafe extern "C" fn subscriber_close(s: *mut RillSubscriber) {
    // SAFETY: (test) freed once.
    drop(unsafe { Box::from_raw(s as *mut MockSubscriber) });
}

unsafe extern "C" fn listen(h: *mut RillHost, addr: RillStr, id: u32, flags: u32) -> i32 {
    host(h)
        .listeners
        .lock()
        .unwrap()
        .push((text(addr), id, flags));
    RILL_OK
}
unsafe extern "C" fn connect(
    _h: *mut RillHost,
    _a: RillStr,
    _f: u32,
    _su: *mut c_void,
    _id: *mut u64,
) -> i32 {
    RILL_ERR_UNSUPPORTED
}
unsafe extern "C" fn session_open(_h: *mut RillHost, _su: *mut c_void, _id: *mut u64) -> i32 {
    RILL_ERR_UNSUPPORTED
}
unsafe extern "C" fn conn_id(c: *mut RillConn) -> u64 {
    conn(c).id
}
unsafe extern "C" fn conn_write(c: *mut RillConn, data: *const u8, len: usize) -> i32 {
    // SAFETY: (test) borrowed bytes.
    conn(c).push(unsafe { RillBytes { ptr: data, len }.as_slice() })
}
unsafe extern "C" fn conn_write_frame(c: *mut RillConn, f: *const RillFrame) -> i32 {
    conn(c).frame_writes.fetch_add(1, Ordering::Relaxed);
    // SAFETY: (test) borrowed frame (the mock copies instead of retaining).
    conn(c).push(unsafe { MockFrame::get(f) }.bytes())
}
unsafe extern "C" fn conn_pending(c: *mut RillConn) -> u64 {
    let c = conn(c);
    (c.out.lock().unwrap().len() - c.drained.load(Ordering::Relaxed)) as u64
}
unsafe extern "C" fn conn_pause_read(_c: *mut RillConn, _p: u32) -> i32 {
    RILL_OK
}
unsafe extern "C" fn conn_close(c: *mut RillConn, reason: u32) -> i32 {
    conn(c).closed.lock().unwrap().get_or_insert(reason);
    RILL_OK
}
unsafe extern "C" fn conn_peer_addr(_c: *mut RillConn) -> RillStr {
    RillStr::from_str("127.0.0.1:50000")
}
unsafe extern "C" fn conn_local_addr(_c: *mut RillConn) -> RillStr {
    RillStr::from_str("127.0.0.1:19350")
}
unsafe extern "C" fn http_route(h: *mut RillHost, m: RillStr, p: RillStr, id: u32) -> i32 {
    host(h).routes.lock().unwrap().push((text(m), text(p), id));
    RILL_OK
}
unsafe extern "C" fn http_respond(
    c: *mut RillConn,
    status: u32,
    _h: *const RillHeader,
    _n: usize,
    _b: u32,
    _l: u64,
) -> i32 {
    conn(c).push(format!("HTTP/1.1 {status}\r\n\r\n").as_bytes())
}
unsafe extern "C" fn http_upgrade_websocket(
    _c: *mut RillConn,
    _h: *const RillHeader,
    _n: usize,
) -> i32 {
    RILL_ERR_UNSUPPORTED
}
unsafe extern "C" fn ws_send(_c: *mut RillConn, _o: u32, _d: *const u8, _l: usize) -> i32 {
    RILL_ERR_UNSUPPORTED
}
unsafe extern "C" fn udp_bind(
    _h: *mut RillHost,
    _c: *mut RillConn,
    _a: RillStr,
    _i: u32,
    _o: *mut *mut RillUdp,
) -> i32 {
    RILL_ERR_UNSUPPORTED
}
unsafe extern "C" fn udp_send_to(_u: *mut RillUdp, _a: RillStr, _d: *const u8, _l: usize) -> i32 {
    RILL_ERR_UNSUPPORTED
}
unsafe extern "C" fn udp_local_addr(_u: *mut RillUdp) -> RillStr {
    RillStr::EMPTY
}
unsafe extern "C" fn udp_close(_u: *mut RillUdp) {}
unsafe extern "C" fn timer_start(
    h: *mut RillHost,
    c: *mut RillConn,
    delay: u64,
    _r: u32,
    id: u64,
    out: *mut u64,
) -> i32 {
    host(h).timers.lock().unwrap().push((c as usize, delay, id));
    if !out.is_null() {
        // SAFETY: (test) valid out pointer.
        unsafe { *out = id + 1 };
    }
    RILL_OK
}
unsafe extern "C" fn timer_cancel(_h: *mut RillHost, _t: u64) -> i32 {
    RILL_OK
}
unsafe extern "C" fn post(h: *mut RillHost, conn_id: u64, arg: *mut c_void) -> i32 {
    host(h).posts.lock().unwrap().push((conn_id, arg as usize));
    RILL_OK
}

pub fn host_api() -> RillHostApi {
    let mut a = rill_host_api_empty();
    a.log = Some(log);
    a.log_enabled = Some(log_enabled);
    a.config = Some(config);
    a.clock_monotonic_us = Some(clock_monotonic_us);
    a.clock_wall_us = Some(clock_wall_us);
    a.frame_alloc = Some(frame_alloc);
    a.frame_freeze = Some(frame_freeze);
    a.frame_buf_free = Some(frame_buf_free);
    a.frame_copy = Some(frame_copy);
    a.frame_wrap = Some(frame_wrap);
    a.frame_retain = Some(frame_retain);
    a.frame_release = Some(frame_release);
    a.frame_slice = Some(frame_slice);
    a.frame_data = Some(frame_data);
    a.frame_info = Some(frame_info);
    a.frame_cache_get = Some(frame_cache_get);
    a.frame_cache_set = Some(frame_cache_set);
    a.publish_open = Some(publish_open);
    a.publisher_add_track = Some(publisher_add_track);
    a.publisher_write = Some(publisher_write);
    a.publisher_set_metadata = Some(publisher_set_metadata);
    a.publisher_close = Some(publisher_close);
    a.subscribe_open = Some(subscribe_open);
    a.subscriber_track_info = Some(subscriber_track_info);
    a.subscriber_stats = Some(subscriber_stats);
    a.subscriber_close = Some(subscriber_close);
    a.listen = Some(listen);
    a.connect = Some(connect);
    a.session_open = Some(session_open);
    a.conn_id = Some(conn_id);
    a.conn_write = Some(conn_write);
    a.conn_write_frame = Some(conn_write_frame);
    a.conn_pending = Some(conn_pending);
    a.conn_pause_read = Some(conn_pause_read);
    a.conn_close = Some(conn_close);
    a.conn_peer_addr = Some(conn_peer_addr);
    a.conn_local_addr = Some(conn_local_addr);
    a.http_route = Some(http_route);
    a.http_respond = Some(http_respond);
    a.http_upgrade_websocket = Some(http_upgrade_websocket);
    a.ws_send = Some(ws_send);
    a.udp_bind = Some(udp_bind);
    a.udp_send_to = Some(udp_send_to);
    a.udp_local_addr = Some(udp_local_addr);
    a.udp_close = Some(udp_close);
    a.timer_start = Some(timer_start);
    a.timer_cancel = Some(timer_cancel);
    a.post = Some(post);
    a
}

/// A loaded plugin: its validated descriptor and instance.
pub struct Loaded {
    pub desc: RillPluginDescriptor,
    pub instance: *mut c_void,
}

impl Loaded {
    /// Validates a descriptor and runs `create` against `host`.
    ///
    /// # Safety
    /// `desc` must come from a plugin's entry point.
    pub unsafe fn create(
        desc: *const RillPluginDescriptor,
        host: &MockHost,
    ) -> Result<Loaded, String> {
        // SAFETY: forwarded contract.
        let desc = unsafe { rill_read_descriptor(desc) }.map_err(|e| e.to_string())?;
        let mut instance = std::ptr::null_mut();
        // SAFETY: create is required (checked); the table and host outlive the instance.
        let rc = unsafe { (desc.create.unwrap())(&host.api, host.raw(), &mut instance) };
        if rc != RILL_OK {
            return Err(format!(
                "create failed: {} ({rc})\n{}",
                rill_status_name(rc),
                host.logs_text()
            ));
        }
        Ok(Loaded { desc, instance })
    }

    pub fn open(&self, c: &MockConn, listener: u32) -> Result<*mut c_void, i32> {
        let mut su = std::ptr::null_mut();
        // SAFETY: live instance and conn.
        let rc =
            unsafe { (self.desc.on_conn_open.unwrap())(self.instance, c.raw(), listener, &mut su) };
        if rc < 0 {
            Err(rc)
        } else {
            Ok(su)
        }
    }

    pub fn data(&self, su: *mut c_void, c: &MockConn, data: &[u8]) -> i32 {
        // SAFETY: live session; bytes borrowed for the call.
        unsafe {
            (self.desc.on_conn_data.unwrap())(self.instance, su, c.raw(), data.as_ptr(), data.len())
        }
    }

    pub fn writable(&self, su: *mut c_void, c: &MockConn) -> i32 {
        // SAFETY: live session.
        unsafe { (self.desc.on_conn_writable.unwrap())(self.instance, su, c.raw()) }
    }

    pub fn frame(&self, su: *mut c_void, sub: *mut RillSubscriber, f: *const RillFrame) -> i32 {
        // SAFETY: live session; frame borrowed.
        unsafe { (self.desc.on_frame.unwrap())(self.instance, su, sub, f) }
    }

    pub fn close(&self, su: *mut c_void, c: &MockConn, reason: u32) {
        // SAFETY: live session; its last callback.
        unsafe {
            (self.desc.on_conn_close.unwrap())(
                self.instance,
                su,
                c.raw(),
                reason,
                RillStr::from_str("test"),
            )
        }
    }

    pub fn destroy(self) {
        if let Some(d) = self.desc.drain {
            // SAFETY: live instance.
            unsafe { d(self.instance) };
        }
        // SAFETY: the last call.
        unsafe { (self.desc.destroy.unwrap())(self.instance) };
    }
}
