//! `RillHostApi`: the function table the host hands a plugin at `create`,
//! and the structs and constants its calls take.

use core::ffi::c_void;

#[cfg(feature = "abi-check")]
use abi_stable::StableAbi;

use crate::frame::{RillFrameInfo, RillTrackInfo};
use crate::types::{
    RillBytes, RillConn, RillFrame, RillFrameBuf, RillHeader, RillHost, RillPublisher,
    RillReleaseFn, RillSized, RillStr, RillSubscriber, RillUdp,
};

/// `subscribe_open` flag: do not deliver video frames.
pub const RILL_SUBSCRIBE_NO_VIDEO: u32 = 1 << 0;
/// `subscribe_open` flag: do not deliver audio frames.
pub const RILL_SUBSCRIBE_NO_AUDIO: u32 = 1 << 1;
/// `subscribe_open` flag: do not deliver metadata or data-track frames.
pub const RILL_SUBSCRIBE_NO_DATA: u32 = 1 << 2;
/// `subscribe_open` flag: start at the next keyframe instead of the newest
/// one already in the GOP cache (lower latency, slower start).
pub const RILL_SUBSCRIBE_LIVE_EDGE: u32 = 1 << 3;
/// `subscribe_open` flag (added in 1.7): this subscriber is a transformer
/// (it derives tracks with `publish_derived`), not a player: it does not
/// keep the stream alive, does not count toward player limits, and its
/// coming and going raises no `RILL_STREAM_ACTIVE` / `RILL_STREAM_IDLE`.
pub const RILL_SUBSCRIBE_TRANSFORM: u32 = 1 << 4;
/// Most entries of `RillSubscribeOptions.audio_codecs`.
pub const RILL_SUBSCRIBE_MAX_CODECS: usize = 4;

/// Options for `subscribe_open`. NULL means all defaults.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "abi-check", derive(StableAbi))]
pub struct RillSubscribeOptions {
    /// `sizeof(RillSubscribeOptions)` as the caller knows it.
    pub struct_size: u32,
    /// `RILL_SUBSCRIBE_*` flags.
    pub flags: u32,
    /// How long to wait for a publisher when the stream is not published:
    /// 0 = the host's configured wait timeout, < 0 = do not wait
    /// (`subscribe_open` then fails with `RILL_ERR_NOT_FOUND`), > 0 = µs.
    pub wait_timeout_us: i64,
    /// Added in 1.7. The audio codecs this subscriber can carry
    /// (`RILL_CODEC_*`, unused entries 0); all 0: any, but derived tracks
    /// never (the behaviour before 1.7). With a list, audio frames in a
    /// codec outside it are not delivered, and a derived audio track
    /// (`RILL_FRAME_DERIVED`, made by a transformer) is delivered when its
    /// codec is in the list and the publisher's audio codec is not. The
    /// first time the publisher's audio is left out for lack of a codec,
    /// the host raises `RILL_STREAM_CODEC_WANTED` for the stream, so a
    /// transformer can derive it (an AAC stream for a WebRTC viewer that
    /// takes Opus).
    pub audio_codecs: [u32; RILL_SUBSCRIBE_MAX_CODECS],
}

// SAFETY: repr(C), starts with u32 struct_size, all fields are integers.
unsafe impl RillSized for RillSubscribeOptions {}

impl RillSubscribeOptions {
    /// The defaults, with `struct_size` set.
    pub const fn new() -> RillSubscribeOptions {
        RillSubscribeOptions {
            struct_size: core::mem::size_of::<RillSubscribeOptions>() as u32,
            flags: 0,
            wait_timeout_us: 0,
            audio_codecs: [0; RILL_SUBSCRIBE_MAX_CODECS],
        }
    }

    /// Sets `audio_codecs` from `codecs` (the first
    /// `RILL_SUBSCRIBE_MAX_CODECS`).
    pub fn with_audio_codecs(mut self, codecs: &[u32]) -> RillSubscribeOptions {
        self.audio_codecs = [0; RILL_SUBSCRIBE_MAX_CODECS];
        for (slot, c) in self.audio_codecs.iter_mut().zip(codecs) {
            *slot = *c;
        }
        self
    }
}

/// A subscriber's counters, from `subscriber_stats`. The caller sets
/// `struct_size`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "abi-check", derive(StableAbi))]
pub struct RillSubscriberStats {
    /// `sizeof(RillSubscriberStats)` as the caller knows it.
    pub struct_size: u32,
    /// Reserved, 0.
    pub reserved: u32,
    /// Frames pushed to `on_frame`.
    pub frames_delivered: u64,
    /// Payload bytes pushed to `on_frame`.
    pub bytes_delivered: u64,
    /// Frames dropped because the subscriber fell behind.
    pub frames_dropped: u64,
    /// Whole GOPs skipped because the subscriber fell behind.
    pub gops_dropped: u64,
    /// Frames queued for this subscriber right now.
    pub frames_queued: u64,
}

// SAFETY: repr(C), starts with u32 struct_size, all fields are integers.
unsafe impl RillSized for RillSubscriberStats {}

/// `listen` flag: terminate TLS on this listener with the host's
/// certificate (`http.tls.cert` / `http.tls.key`, renewed with them on a
/// reload). `RILL_ERR_UNSUPPORTED` when the host has no certificate.
/// A client that stalls or fails the handshake is dropped without a
/// session (`on_conn_open` runs after the handshake).
pub const RILL_LISTEN_TLS: u32 = 1 << 0;
/// `connect` flag: speak TLS to the peer, verified against the system's
/// root certificates (and `tls_client.ca_file` when set), with the name in
/// `addr` (`host:port`) as the server name.
pub const RILL_CONNECT_TLS: u32 = 1 << 0;

/// `metric_set` kind (added in 1.5): a value that goes up and down.
pub const RILL_METRIC_GAUGE: u32 = 0;
/// `metric_set` kind (added in 1.5): a running total that only grows.
pub const RILL_METRIC_COUNTER: u32 = 1;

/// `publisher_set_source` flag (added in 1.5): the stream is pulled from
/// its owner, another node of the cluster; this node does not claim it.
pub const RILL_SOURCE_CLUSTER: u32 = 1 << 0;

/// `http_route_flags` flag (added in 1.1): responses on this route are long
/// streams (HTTP-FLV). The host serves each plain-HTTP `GET` on it (no
/// upgrade, no body) on a connection of its own, as it does a TCP
/// session: no HTTP keep-alive (`Connection: close`), no HTTP server
/// buffers per player. HTTPS, WebSocket upgrades and other methods are
/// served as on any route. The session sees no difference.
pub const RILL_ROUTE_STREAM: u32 = 1 << 0;

/// `RillAdmission.action` (added in 1.2): the client wants to publish.
pub const RILL_ACTION_PUBLISH: u32 = 1;
/// `RillAdmission.action` (added in 1.2): the client wants to play.
pub const RILL_ACTION_PLAY: u32 = 2;

/// What `admit` decides on (added in 1.2): who wants to do what, with the
/// credentials the protocol carried. Borrowed for the call. Fields the
/// protocol does not carry stay empty; the host also reads `token`,
/// `expires`, `key`, `user` and `pass` from `query`, and, for HTTP
/// sessions, an `Authorization: Bearer` or `Basic` header of the request.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
#[cfg_attr(feature = "abi-check", derive(StableAbi))]
pub struct RillAdmission {
    /// `sizeof(RillAdmission)` as the caller knows it.
    pub struct_size: u32,
    /// `RILL_ACTION_PUBLISH` or `RILL_ACTION_PLAY`.
    pub action: u32,
    /// The stream, `app/name` (slashes around it are trimmed).
    pub path: RillStr,
    /// The client's query string, without `?` (RTMP: the stream name's
    /// query, then the tcUrl's, joined with `&`).
    pub query: RillStr,
    /// A user name the protocol carried (RTSP or HTTP Basic), or empty.
    pub user: RillStr,
    /// That user's password, or empty.
    pub password: RillStr,
    /// A bearer token the protocol carried outside the query (WHIP/WHEP
    /// `Authorization: Bearer`), or empty: checked as a signed-URL token
    /// and as a stream key.
    pub token: RillStr,
}

impl RillAdmission {
    /// An empty request for `action` on `path`, `struct_size` set.
    pub const fn new(action: u32, path: RillStr) -> RillAdmission {
        RillAdmission {
            struct_size: core::mem::size_of::<RillAdmission>() as u32,
            action,
            path,
            query: RillStr::EMPTY,
            user: RillStr::EMPTY,
            password: RillStr::EMPTY,
            token: RillStr::EMPTY,
        }
    }
}

// SAFETY: repr(C), starts with u32 struct_size; the other fields are
// integers and (ptr, len) strings, valid when zeroed (empty).
unsafe impl RillSized for RillAdmission {}

/// `RillSockAddr.family`: IPv4 (`addr[0..4]`).
pub const RILL_AF_INET: u16 = 4;
/// `RillSockAddr.family`: IPv6 (`addr[0..16]`).
pub const RILL_AF_INET6: u16 = 6;

/// A socket address in binary form (added in 1.1), for the per-datagram
/// calls where formatting and parsing text would cost more than the call.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "abi-check", derive(StableAbi))]
pub struct RillSockAddr {
    /// `RILL_AF_INET` or `RILL_AF_INET6`.
    pub family: u16,
    /// Port, host byte order.
    pub port: u16,
    /// IPv6 scope id (0 for IPv4).
    pub scope_id: u32,
    /// The address bytes in network order: 4 used for IPv4, 16 for IPv6.
    pub addr: [u8; 16],
}

impl From<std::net::SocketAddr> for RillSockAddr {
    fn from(a: std::net::SocketAddr) -> Self {
        let mut out = RillSockAddr {
            port: a.port(),
            ..Default::default()
        };
        match a {
            std::net::SocketAddr::V4(v4) => {
                out.family = RILL_AF_INET;
                out.addr[..4].copy_from_slice(&v4.ip().octets());
            }
            std::net::SocketAddr::V6(v6) => {
                out.family = RILL_AF_INET6;
                out.scope_id = v6.scope_id();
                out.addr = v6.ip().octets();
            }
        }
        out
    }
}

impl RillSockAddr {
    /// The address as std's type; `None` for an unknown family.
    pub fn to_socket_addr(&self) -> Option<std::net::SocketAddr> {
        match self.family {
            RILL_AF_INET => {
                let [a, b, c, d, ..] = self.addr;
                Some(std::net::SocketAddr::from(([a, b, c, d], self.port)))
            }
            RILL_AF_INET6 => Some(std::net::SocketAddr::V6(std::net::SocketAddrV6::new(
                self.addr.into(),
                self.port,
                0,
                self.scope_id,
            ))),
            _ => None,
        }
    }
}
/// The `listener_id` that `on_conn_open` receives for a connection the
/// plugin opened with `connect`.
pub const RILL_LISTENER_CONNECT: u32 = 0xFFFF_FFFFu32;
/// The `listener_id` that `on_conn_open` receives for a socket-less session
/// the plugin opened with `session_open`.
pub const RILL_LISTENER_SESSION: u32 = 0xFFFF_FFFEu32;

/// `RillHttpRequest.flags`: the request asks for a WebSocket upgrade (a
/// valid `Upgrade: websocket` handshake); answer with
/// `http_upgrade_websocket` or a plain response.
pub const RILL_HTTP_UPGRADE_WEBSOCKET: u32 = 1 << 0;
/// `RillHttpRequest.flags`: the request came over TLS (https, wss).
pub const RILL_HTTP_TLS: u32 = 1 << 1;

/// `http_respond` body kind: exactly `content_length` bytes follow (0: no
/// body). The host sends `Content-Length`.
pub const RILL_HTTP_BODY_FIXED: u32 = 0;
/// `http_respond` body kind: chunked transfer encoding (HTTP/1.1); each
/// `conn_write` / `conn_write_frame` becomes one chunk; `conn_close` sends
/// the last chunk.
pub const RILL_HTTP_BODY_CHUNKED: u32 = 1;
/// `http_respond` body kind: the body runs until the connection closes (no
/// keep-alive). What HTTP-FLV players expect.
pub const RILL_HTTP_BODY_CLOSE: u32 = 2;

/// `ws_send` opcode: a text message (payload must be UTF-8).
pub const RILL_WS_TEXT: u32 = 1;
/// `ws_send` opcode: a binary message.
pub const RILL_WS_BINARY: u32 = 2;

/// An HTTP request routed to a plugin (`on_http_request`). Everything in it
/// is borrowed for that call: copy what you keep.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
#[cfg_attr(feature = "abi-check", derive(StableAbi))]
pub struct RillHttpRequest {
    /// `sizeof(RillHttpRequest)` as the host knows it: read fields past
    /// version 1.0 only when `RILL_HAS` says they are there.
    pub struct_size: u32,
    /// `RILL_HTTP_*` flags.
    pub flags: u32,
    /// Method, upper-case (`GET`, `POST`, ...).
    pub method: RillStr,
    /// Path as sent, percent-encoded, without the query (`/live/test.flv`).
    pub path: RillStr,
    /// Query string without the `?` (may be empty).
    pub query: RillStr,
    /// The request headers, names lower-case, in the order received.
    pub headers: *const RillHeader,
    /// Number of entries in `headers`.
    pub header_count: usize,
    /// The request body, read whole by the host (up to its body size cap;
    /// larger bodies are refused with 413 before the plugin sees them).
    pub body: RillBytes,
}

// SAFETY: repr(C), starts with u32 struct_size; integers, raw pointers and
// RillStr/RillBytes are valid when zeroed.
unsafe impl RillSized for RillHttpRequest {}

/// `file_open` flag: open for writing.
pub const RILL_FILE_WRITE: u32 = 1 << 0;
/// `file_open` flag: create the file (and its missing parent directories)
/// if it does not exist.
pub const RILL_FILE_CREATE: u32 = 1 << 1;
/// `file_open` flag: empty the file first.
pub const RILL_FILE_TRUNCATE: u32 = 1 << 2;
/// `file_open` flag: open for reading.
pub const RILL_FILE_READ: u32 = 1 << 3;
/// `file_open` flag: refuse (`RILL_ERR_BUSY`, at the next operation) if
/// the file exists.
pub const RILL_FILE_EXCLUSIVE: u32 = 1 << 4;
/// `file_write` offset: at the end of what was written before.
pub const RILL_FILE_APPEND: u64 = u64::MAX;
/// The most bytes `file_write` lets wait for one file's disk.
pub const RILL_FILE_MAX_QUEUED: u64 = 64 << 20;
/// The most bytes one `file_read` returns.
pub const RILL_FILE_MAX_READ: u64 = 16 << 20;

/// `fs_op`: removes the file `path` (`value`: its size).
pub const RILL_FS_REMOVE: u32 = 1;
/// `fs_op`: renames `path` to `path2` (replacing it).
pub const RILL_FS_RENAME: u32 = 2;
/// `fs_op`: the size of the file `path` in `value` (`RILL_ERR_NOT_FOUND`).
pub const RILL_FS_STAT: u32 = 3;
/// `fs_op`: the bytes the server may still write on the file system
/// holding `path` (which need not exist yet) in `value`.
pub const RILL_FS_FREE: u32 = 4;
/// `fs_op`: cuts the file `path` to `arg` bytes.
pub const RILL_FS_TRUNCATE: u32 = 5;

/// `RillRecording` flag: the file is complete (its writer closed it).
pub const RILL_REC_DONE: u32 = 1 << 0;

/// One row of the recording index (added in 1.4), borrowed for the call.
/// Times are wall-clock microseconds since the Unix epoch (UTC).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
#[cfg_attr(feature = "abi-check", derive(StableAbi))]
pub struct RillRecording {
    /// `sizeof(RillRecording)` as the caller knows it.
    pub struct_size: u32,
    /// `RILL_REC_*`.
    pub flags: u32,
    /// The stream recorded, `app/name`.
    pub stream: RillStr,
    /// The container: `fmp4`, `flv`, `mp4`, `ts` (an HLS segment), ...
    pub format: RillStr,
    /// The file, as given to `file_open`.
    pub path: RillStr,
    /// The plugin's own grouping (a rule's name), for `recordings_expire`.
    pub group: RillStr,
    /// The codecs in RFC 6381 form, comma-separated (`avc1.64001f,mp4a.40.2`).
    pub codecs: RillStr,
    /// When the first frame in the file was received.
    pub start_us: i64,
    /// When the last one was (the start while recording begins).
    pub end_us: i64,
    /// The media duration in the file.
    pub duration_us: i64,
    /// The file's size.
    pub bytes: u64,
}

impl RillRecording {
    /// A row for `stream` in `format` at `path`, the rest empty.
    pub const fn new(stream: RillStr, format: RillStr, path: RillStr) -> RillRecording {
        RillRecording {
            struct_size: core::mem::size_of::<RillRecording>() as u32,
            flags: 0,
            stream,
            format,
            path,
            group: RillStr::EMPTY,
            codecs: RillStr::EMPTY,
            start_us: 0,
            end_us: 0,
            duration_us: 0,
            bytes: 0,
        }
    }
}

// SAFETY: repr(C), starts with u32 struct_size; the other fields are
// integers and (ptr, len) views, valid when zeroed (empty).
unsafe impl RillSized for RillRecording {}

/// The host's function table: every call a plugin can make.
///
/// Handed to the plugin's `create` with the `RillHost *` context; the table
/// and the context stay valid until `destroy` returns. Never dereference it
/// past `struct_size`: a newer plugin on an older host sees a shorter table
/// (check with `RILL_HAS_FN(RillHostApi, api, field)`). Every field present
/// in ABI 1.0 is non-NULL.
///
/// Rules for every call:
///
/// - Threads. Only these are thread-safe and may be called from a plugin's
///   own threads: `post`, `log`, `log_enabled`, the clocks and every
///   `frame_*` call. Everything else is called only from inside a callback,
///   on the thread running it, and only with handles of that callback's own
///   session (`listen` and `http_route` only in `create`). To reach another
///   session, `post` to its id; a new session (`connect`, `session_open`)
///   sets itself up in its own `on_conn_open`. The host checks the thread:
///   such a call from outside a callback returns `RILL_ERR_INVALID` (an
///   empty string, 0, or nothing, by its type) and logs a warning.
/// - Ownership. Arguments are borrowed for the call: the host copies or
///   retains what it keeps. A returned `RillFrame *` is a new reference the
///   plugin must `frame_release`. A returned `RillStr` is valid as long as the
///   call says.
/// - No re-entrancy. A host call never runs a plugin callback before it
///   returns: `conn_close` inside `on_conn_data` delivers `on_conn_close`
///   after `on_conn_data` returns.
/// - Status. `int32_t` results are `RILL_OK` (0), a positive success code
///   (`RILL_FULL`) or a negative `RILL_ERR_*`.
/// - Handles are pointers into host memory, not checked table entries.
///   Using one past its life is undefined behaviour, as with `free` in C:
///   a `RillConn *` after its `on_conn_close` returned, a `RillPublisher *`
///   or `RillSubscriber *` after its `*_close` or its session's end (so
///   closing one twice), a `RillFrame *` after the `frame_release` that
///   gave back the last reference (so releasing one twice). The host does
///   not detect these; build and test a plugin under AddressSanitizer (the
///   C template's tests do) to find them.
#[repr(C)]
#[derive(Clone, Copy)]
#[cfg_attr(feature = "abi-check", derive(StableAbi))]
pub struct RillHostApi {
    /// `sizeof(RillHostApi)` as the host was built.
    pub struct_size: u32,
    /// The host's ABI major version (`RILL_ABI_MAJOR`).
    pub abi_major: u16,
    /// The host's ABI minor version: fields added in minor N are present
    /// when this is >= N (and `RILL_HAS_FN` agrees).
    pub abi_minor: u16,

    /// ==== logging, configuration, clock ====
    ///
    /// Logs `msg` at `level` (`RILL_LOG_*`) into the host's log, tagged with
    /// the plugin's name and generation. Thread-safe.
    pub log: Option<unsafe extern "C" fn(host: *mut RillHost, level: u32, msg: RillStr)>,
    /// 1 when a message at `level` would be logged, else 0: skip formatting
    /// what nobody reads. Thread-safe.
    pub log_enabled: Option<unsafe extern "C" fn(host: *mut RillHost, level: u32) -> u32>,
    /// The plugin's configuration section (`plugins.<name>` of the host's
    /// config) as YAML text; empty when absent. Valid until `destroy`
    /// returns. The text is fixed for the instance's life: when the section
    /// changes, the host starts a new generation with the new text.
    pub config: Option<unsafe extern "C" fn(host: *mut RillHost) -> RillStr>,
    /// Monotonic clock, µs (same clock as frame timestamps are corrected
    /// against; arbitrary origin). Thread-safe.
    pub clock_monotonic_us: Option<unsafe extern "C" fn(host: *mut RillHost) -> i64>,
    /// Wall clock, µs since the Unix epoch. Thread-safe.
    pub clock_wall_us: Option<unsafe extern "C" fn(host: *mut RillHost) -> i64>,

    /// ==== frames (all thread-safe) ====
    ///
    /// Allocates a writable buffer of `len` bytes and stores its address in
    /// `*data`. Fill it, then `frame_freeze` it (no copy) or
    /// `frame_buf_free` it. Returns NULL (and `*data` = NULL) when out of
    /// memory or over the host's frame size cap.
    pub frame_alloc: Option<
        unsafe extern "C" fn(
            host: *mut RillHost,
            len: usize,
            data: *mut *mut u8,
        ) -> *mut RillFrameBuf,
    >,
    /// Turns a buffer into a frame: the first `len` bytes (`len` <= the
    /// allocated length) with metadata `info` (NULL: all zero). Consumes
    /// `buf` (even on failure); returns a new reference, or NULL when `len`
    /// is too large or `info` invalid.
    pub frame_freeze: Option<
        unsafe extern "C" fn(
            buf: *mut RillFrameBuf,
            len: usize,
            info: *const RillFrameInfo,
        ) -> *mut RillFrame,
    >,
    /// Drops an unfrozen buffer.
    pub frame_buf_free: Option<unsafe extern "C" fn(buf: *mut RillFrameBuf)>,
    /// A new frame holding a copy of `len` bytes at `data`, with metadata
    /// `info` (NULL: all zero). Returns a new reference, or NULL.
    pub frame_copy: Option<
        unsafe extern "C" fn(
            host: *mut RillHost,
            data: *const u8,
            len: usize,
            info: *const RillFrameInfo,
        ) -> *mut RillFrame,
    >,
    /// A new frame over the plugin's own memory, without copying. The bytes
    /// must stay valid and unchanged until the host calls `release(user,
    /// data, len)`, exactly once, when the last reference is gone (see
    /// `RillReleaseFn`). Returns a new reference; on NULL (failure) `release`
    /// is NOT called and the memory is still the caller's.
    pub frame_wrap: Option<
        unsafe extern "C" fn(
            host: *mut RillHost,
            data: *const u8,
            len: usize,
            release: RillReleaseFn,
            user: *mut c_void,
            info: *const RillFrameInfo,
        ) -> *mut RillFrame,
    >,
    /// Takes one more reference to `frame`; returns it (the same pointer or
    /// an equivalent one) to release separately.
    pub frame_retain: Option<unsafe extern "C" fn(frame: *const RillFrame) -> *mut RillFrame>,
    /// Gives back one reference. NULL is ignored.
    pub frame_release: Option<unsafe extern "C" fn(frame: *mut RillFrame)>,
    /// A new frame over bytes `[offset, offset + len)` of `frame`, sharing
    /// its memory, with metadata `info` (NULL: `frame`'s own). Returns a new
    /// reference, or NULL when the range is out of bounds.
    pub frame_slice: Option<
        unsafe extern "C" fn(
            frame: *const RillFrame,
            offset: usize,
            len: usize,
            info: *const RillFrameInfo,
        ) -> *mut RillFrame,
    >,
    /// The frame's bytes; valid while the caller holds a reference (or
    /// borrows the frame).
    pub frame_data: Option<unsafe extern "C" fn(frame: *const RillFrame) -> RillBytes>,
    /// Copies the frame's metadata into `*info` (the caller set
    /// `info->struct_size`).
    pub frame_info:
        Option<unsafe extern "C" fn(frame: *const RillFrame, info: *mut RillFrameInfo) -> i32>,
    /// The frame's cached companion for `key`, as a new reference, or NULL.
    ///
    /// The cache lets a plugin mux a frame once and send the same bytes to
    /// every subscriber: mux on a miss, `frame_cache_set` the result, and
    /// `conn_write_frame` it. `key` is the plugin's choice (e.g. a hash of its
    /// mux settings); keys are scoped to the calling plugin instance. Entries
    /// live as long as the frame.
    pub frame_cache_get: Option<
        unsafe extern "C" fn(
            host: *mut RillHost,
            frame: *const RillFrame,
            key: u64,
        ) -> *mut RillFrame,
    >,
    /// Stores `value` (the host takes its own reference) as `frame`'s
    /// companion for `key`. `RILL_ERR_BUSY` when `key` is already set
    /// (another session won the race: use either), `RILL_ERR_NOMEM` when the
    /// frame's cache is full (at least `RILL_FRAME_CACHE_MIN_SLOTS` keys
    /// fit), `RILL_ERR_INVALID` when `value` is `frame`. Cache plain byte
    /// frames only: a cycle (A cached on B and B on A) would never be freed.
    pub frame_cache_set: Option<
        unsafe extern "C" fn(
            host: *mut RillHost,
            frame: *const RillFrame,
            key: u64,
            value: *const RillFrame,
        ) -> i32,
    >,

    /// ==== publishing ====
    ///
    /// Starts publishing stream `path` (`app/name`, no leading `/`; the host
    /// normalizes slashes) for session `conn`, with the client's `query`
    /// (without `?`, for authentication). Stores the publisher in `*out`.
    /// Unless `admit` granted the session this path, the host's admission
    /// checks run here on `query` and the session (see `admit`).
    /// `RILL_ERR_BUSY`: someone already publishes it and the host's
    /// kick-existing policy is off, or the stream limit is reached.
    /// `RILL_ERR_DENIED`: refused by policy.
    /// `RILL_ERR_UNAUTHORIZED` (1.2 hosts): no or wrong credentials.
    /// `RILL_ERR_INVALID`: bad path, NULL `conn`.
    pub publish_open: Option<
        unsafe extern "C" fn(
            host: *mut RillHost,
            conn: *mut RillConn,
            path: RillStr,
            query: RillStr,
            out: *mut *mut RillPublisher,
        ) -> i32,
    >,
    /// Declares a track (video, audio or data). Returns its id (>= 0, used
    /// as `RillFrameInfo.track`) or a negative status. Tracks can be added
    /// after frames of other tracks were written.
    pub publisher_add_track: Option<
        unsafe extern "C" fn(publisher: *mut RillPublisher, info: *const RillTrackInfo) -> i32,
    >,
    /// Writes a frame (borrowed: the host takes its own reference, the
    /// caller still releases its own). Config frames (`RILL_FRAME_CONFIG`)
    /// replace the track's decoder configuration. The host corrects
    /// timestamps per track. `RILL_ERR_CLOSED` after `on_publish_end`.
    pub publisher_write:
        Option<unsafe extern "C" fn(publisher: *mut RillPublisher, frame: *const RillFrame) -> i32>,
    /// Sets the stream metadata (an FLV script-tag body, see
    /// `RILL_CODEC_METADATA`; borrowed). New subscribers get it first;
    /// current ones get it in order.
    pub publisher_set_metadata:
        Option<unsafe extern "C" fn(publisher: *mut RillPublisher, frame: *const RillFrame) -> i32>,
    /// Stops publishing and frees the handle. Subscribers keep waiting for a
    /// publisher to come back within the host's grace window.
    pub publisher_close: Option<unsafe extern "C" fn(publisher: *mut RillPublisher)>,

    /// ==== subscribing ====
    ///
    /// Subscribes session `conn` to stream `path` (`opts` NULL: defaults).
    /// On `RILL_OK`, `*out` holds the subscriber and, once the stream is
    /// live, the host pushes frames to `on_frame` (after `on_subscribe_start`).
    /// When nobody publishes yet it waits (`wait_timeout_us`) and ends with
    /// `on_subscribe_end(RILL_END_TIMEOUT)` if none comes.
    /// Unless `admit` granted the session this path, the host's admission
    /// checks run here on `query` and the session (see `admit`).
    /// `RILL_ERR_NOT_FOUND`: not published and no waiting asked for.
    /// `RILL_ERR_DENIED`: refused by policy.
    /// `RILL_ERR_UNAUTHORIZED` (1.2 hosts): no or wrong credentials.
    /// `RILL_ERR_BUSY`: a player limit is reached.
    pub subscribe_open: Option<
        unsafe extern "C" fn(
            host: *mut RillHost,
            conn: *mut RillConn,
            path: RillStr,
            query: RillStr,
            opts: *const RillSubscribeOptions,
            out: *mut *mut RillSubscriber,
        ) -> i32,
    >,
    /// Describes track `track` of the stream's current publisher into
    /// `*info` (the caller set `info->struct_size`). `RILL_ERR_NOT_FOUND`
    /// when the publisher has no such track (yet).
    pub subscriber_track_info: Option<
        unsafe extern "C" fn(
            subscriber: *mut RillSubscriber,
            track: u32,
            info: *mut RillTrackInfo,
        ) -> i32,
    >,
    /// Fills `*stats` (the caller set `stats->struct_size`).
    pub subscriber_stats: Option<
        unsafe extern "C" fn(
            subscriber: *mut RillSubscriber,
            stats: *mut RillSubscriberStats,
        ) -> i32,
    >,
    /// Unsubscribes and frees the handle; no callback for it follows.
    pub subscriber_close: Option<unsafe extern "C" fn(subscriber: *mut RillSubscriber)>,

    /// ==== connections ====
    ///
    /// Listens on TCP `addr` (`host:port`, `[v6]:port`, or `:port` for every
    /// interface); new connections arrive at `on_conn_open` with
    /// `listener_id`. Only during `create`. `flags`: `RILL_LISTEN_*`.
    /// Listeners outlive generations: when a new generation listens where
    /// the previous one did, the host hands the socket over (no rebind, no
    /// refused connections); listeners nobody re-declares close when the
    /// old generation drains. It all takes effect only when `create` returns
    /// `RILL_OK`: a failed create leaves the running generation's listeners
    /// as they were. `RILL_ERR_BUSY`: another plugin has `addr`.
    /// `RILL_ERR_IO`: bind failed.
    pub listen: Option<
        unsafe extern "C" fn(
            host: *mut RillHost,
            addr: RillStr,
            listener_id: u32,
            flags: u32,
        ) -> i32,
    >,
    /// Opens an outbound TCP connection to `addr` (`host:port`; names are
    /// resolved) as a new session, and stores its id (see `conn_id`) in
    /// `*conn_id` (may be NULL). When connected, the session's first
    /// callback is `on_conn_open(conn, RILL_LISTENER_CONNECT, &su)` with
    /// `su` preset to `session_user`; if connecting fails, its only callback
    /// is `on_conn_close(session_user, conn, RILL_END_ERROR, why)`. Those may
    /// run on another thread before this call returns. Non-OK: nothing was
    /// started and no callback follows. `flags`: `RILL_CONNECT_*`.
    pub connect: Option<
        unsafe extern "C" fn(
            host: *mut RillHost,
            addr: RillStr,
            flags: u32,
            session_user: *mut c_void,
            conn_id: *mut u64,
        ) -> i32,
    >,
    /// Creates a session without a socket (a recorder, a relay's worker):
    /// it can publish, subscribe, run timers, bind UDP and receive posts;
    /// `conn_write` on it returns `RILL_ERR_UNSUPPORTED`. Stores its id in
    /// `*conn_id` (may be NULL). Its first callback is
    /// `on_conn_open(conn, RILL_LISTENER_SESSION, &su)` with `su` preset to
    /// `session_user` (set it up there, in its own context); end it with
    /// `conn_close`, which delivers `on_conn_close`. Non-OK: no callback
    /// follows.
    pub session_open: Option<
        unsafe extern "C" fn(
            host: *mut RillHost,
            session_user: *mut c_void,
            conn_id: *mut u64,
        ) -> i32,
    >,
    /// The session's id: unique in the process, never reused, never 0. The
    /// one way to name a session from another thread (`post`).
    pub conn_id: Option<unsafe extern "C" fn(conn: *mut RillConn) -> u64>,
    /// Queues a copy of `len` bytes for sending (after a WebSocket upgrade:
    /// one binary message; with a chunked HTTP body: one chunk).
    /// `RILL_OK`: queued. `RILL_FULL`: queued, but the queue is now above
    /// its high-water mark: finish the message you are writing (the hard
    /// cap leaves room for at least 16 MiB more), then write nothing until
    /// `on_conn_writable`. `RILL_ERR_AGAIN`: the queue was already above its
    /// hard cap, NOT queued. `RILL_ERR_CLOSED`: closed or closing.
    pub conn_write:
        Option<unsafe extern "C" fn(conn: *mut RillConn, data: *const u8, len: usize) -> i32>,
    /// As `conn_write` with the frame's bytes, without copying: the host
    /// keeps its own reference until they are sent (the frame stays
    /// borrowed). The path for "mux once, send to many" (`frame_cache_get`).
    pub conn_write_frame:
        Option<unsafe extern "C" fn(conn: *mut RillConn, frame: *const RillFrame) -> i32>,
    /// Bytes queued for sending and not yet written to the socket.
    pub conn_pending: Option<unsafe extern "C" fn(conn: *mut RillConn) -> u64>,
    /// Stops (`paused` != 0) or resumes (0) reading from the socket, and so
    /// `on_conn_data` (the peer then feels TCP backpressure).
    pub conn_pause_read: Option<unsafe extern "C" fn(conn: *mut RillConn, paused: u32) -> i32>,
    /// Ends the session: queued output is flushed (with a deadline), then the
    /// socket closes (chunked HTTP: the last chunk is sent first; WebSocket:
    /// a close frame). `on_conn_close(reason)` follows after the current
    /// callback returns; nothing else does. Calling it again is harmless.
    pub conn_close: Option<unsafe extern "C" fn(conn: *mut RillConn, reason: u32) -> i32>,
    /// The peer's address as `ip:port` (empty for socket-less sessions).
    /// Valid as long as the session.
    pub conn_peer_addr: Option<unsafe extern "C" fn(conn: *mut RillConn) -> RillStr>,
    /// The local address of the connection as `ip:port` (empty for
    /// socket-less sessions). Valid as long as the session.
    pub conn_local_addr: Option<unsafe extern "C" fn(conn: *mut RillConn) -> RillStr>,

    /// ==== HTTP and WebSocket ====
    ///
    /// Routes HTTP requests on the host's HTTP server to `on_http_request`
    /// with `route_id`. Only during `create`. `method`: `GET`, ... or empty
    /// for any. `pattern`: an exact path (`/live/x`), a prefix (`/live/*`) or
    /// a suffix (`*.flv`). Precedence: exact, then the longest prefix, then
    /// the longest suffix. Routes pass to a new generation like listeners
    /// (when its `create` succeeds). Under `/api` a plugin may route only
    /// `/api/v1/plugins/<its name>/…` (else `RILL_ERR_DENIED`): its
    /// management calls, which the host guards as its own API (token or
    /// loopback, read-only tokens `GET` only) before they reach the plugin.
    /// `RILL_ERR_BUSY`: another plugin has the same method and pattern.
    pub http_route: Option<
        unsafe extern "C" fn(
            host: *mut RillHost,
            method: RillStr,
            pattern: RillStr,
            route_id: u32,
        ) -> i32,
    >,
    /// Sends the response head: `status` (200, 404, ...), extra headers
    /// (the host adds Date, Server, Connection and the body framing), and
    /// how the body is framed: `body` = `RILL_HTTP_BODY_*`, `content_length`
    /// for `RILL_HTTP_BODY_FIXED`. Then write the body with `conn_write` /
    /// `conn_write_frame` and finish with `conn_close(conn, RILL_END_NORMAL)`
    /// (the host keeps the TCP connection alive when it can; the next
    /// request is a new session). Once per request; with
    /// `RILL_HTTP_BODY_FIXED`, writes past `content_length` fail with
    /// `RILL_ERR_INVALID`.
    pub http_respond: Option<
        unsafe extern "C" fn(
            conn: *mut RillConn,
            status: u32,
            headers: *const RillHeader,
            header_count: usize,
            body: u32,
            content_length: u64,
        ) -> i32,
    >,
    /// Accepts the WebSocket upgrade of a request flagged
    /// `RILL_HTTP_UPGRADE_WEBSOCKET` (sends 101 with the extra `headers`).
    /// Afterwards each `conn_write` / `conn_write_frame` sends one binary
    /// message, `ws_send` sends a message of any type, `on_conn_data`
    /// receives each complete message's payload (the host reassembles
    /// fragments and answers pings), and `conn_close` sends a close frame.
    pub http_upgrade_websocket: Option<
        unsafe extern "C" fn(
            conn: *mut RillConn,
            headers: *const RillHeader,
            header_count: usize,
        ) -> i32,
    >,
    /// Sends one WebSocket message (`RILL_WS_TEXT` or `RILL_WS_BINARY`).
    /// Results as `conn_write`.
    pub ws_send: Option<
        unsafe extern "C" fn(conn: *mut RillConn, opcode: u32, data: *const u8, len: usize) -> i32,
    >,

    /// ==== UDP ====
    ///
    /// Binds a UDP socket for session `conn` at `addr` (`ip:port`, port 0:
    /// any free port); datagrams arrive at `on_udp_data` with `socket_id`.
    /// Stores the socket in `*out`. `RILL_ERR_IO`: bind failed (port taken).
    pub udp_bind: Option<
        unsafe extern "C" fn(
            host: *mut RillHost,
            conn: *mut RillConn,
            addr: RillStr,
            socket_id: u32,
            out: *mut *mut RillUdp,
        ) -> i32,
    >,
    /// Sends one datagram (copied) to `addr` (`ip:port`). `RILL_ERR_AGAIN`:
    /// the socket's send buffer is full, dropped.
    pub udp_send_to: Option<
        unsafe extern "C" fn(udp: *mut RillUdp, addr: RillStr, data: *const u8, len: usize) -> i32,
    >,
    /// The socket's bound address as `ip:port`. Valid as long as the socket.
    pub udp_local_addr: Option<unsafe extern "C" fn(udp: *mut RillUdp) -> RillStr>,
    /// Closes the socket and frees the handle.
    pub udp_close: Option<unsafe extern "C" fn(udp: *mut RillUdp)>,

    /// ==== timers and cross-thread posts ====
    ///
    /// Starts a timer that calls `on_timer(session_user, conn, timer_id)`
    /// after `delay_us`, then every `delay_us` when `repeat` != 0. `conn`
    /// NULL: an instance-level timer (session_user NULL). Stores a handle
    /// (never 0) in `*handle` (may be NULL). Session timers end with the
    /// session; all timers end before `destroy`. A `delay_us` over one year
    /// (31 622 400 000 000 µs) is refused with `RILL_ERR_INVALID`.
    pub timer_start: Option<
        unsafe extern "C" fn(
            host: *mut RillHost,
            conn: *mut RillConn,
            delay_us: u64,
            repeat: u32,
            timer_id: u64,
            handle: *mut u64,
        ) -> i32,
    >,
    /// Cancels a timer: no `on_timer` for it runs after this returns.
    /// `RILL_ERR_NOT_FOUND`: it already fired (one-shot) or was cancelled.
    pub timer_cancel: Option<unsafe extern "C" fn(host: *mut RillHost, handle: u64) -> i32>,
    /// Callable from any thread: queues `on_post(session_user, conn, arg)`
    /// on session `conn_id` (from `conn_id`), or on the instance when
    /// `conn_id` is 0. `RILL_OK`: it will be delivered exactly once (if the
    /// session ends first, it is delivered with `conn` and `session_user`
    /// NULL, so `arg` can be freed). `RILL_ERR_CLOSED`: the session is gone
    /// or the instance destroyed; not delivered, `arg` is still yours.
    pub post:
        Option<unsafe extern "C" fn(host: *mut RillHost, conn_id: u64, arg: *mut c_void) -> i32>,

    /// ==== UDP sockets of the instance (added in 1.1) ====
    ///
    /// Added in 1.1. Binds a UDP socket at `addr` (`ip:port`, `[v6]:port`,
    /// or `:port` for every interface) for the whole instance: one port for
    /// every peer (WebRTC, SRT), the plugin telling peers apart by address.
    /// Only during `create`. Datagrams arrive at `on_udp_packet` with
    /// `socket_id`, read in batches (`recvmmsg`). Like a TCP listener the
    /// socket outlives generations: a new generation that binds the same
    /// `addr` takes it over when its `create` succeeds, and from then on
    /// every datagram goes to it (none to the old one); a socket nobody
    /// re-declares closes. `flags`: 0. `RILL_ERR_BUSY`: another plugin has
    /// `addr`. `RILL_ERR_IO`: bind failed.
    pub udp_listen: Option<
        unsafe extern "C" fn(host: *mut RillHost, addr: RillStr, socket_id: u32, flags: u32) -> i32,
    >,
    /// Added in 1.1. Sends one datagram (copied, at most 65507 bytes) from
    /// the instance's socket `socket_id` to `to`. Thread-safe. Datagrams
    /// are queued and written in batches (`sendmmsg`): what a callback
    /// sends leaves when it returns, consecutive datagrams to one peer of
    /// one size (the last may be shorter) as one UDP GSO send where the
    /// kernel offers it; send a frame's packets to a peer one after the
    /// other to benefit. `RILL_ERR_AGAIN`:
    /// the socket's send queue is full, dropped (as the network would).
    /// `RILL_ERR_NOT_FOUND`: no such socket. `RILL_ERR_INVALID`: too long or
    /// a bad address.
    pub udp_send: Option<
        unsafe extern "C" fn(
            host: *mut RillHost,
            socket_id: u32,
            to: *const RillSockAddr,
            data: *const u8,
            len: usize,
        ) -> i32,
    >,

    /// ==== HTTP routes with flags (added in 1.1) ====
    ///
    /// Added in 1.1. As `http_route`, with `RILL_ROUTE_*` flags.
    pub http_route_flags: Option<
        unsafe extern "C" fn(
            host: *mut RillHost,
            method: RillStr,
            pattern: RillStr,
            route_id: u32,
            flags: u32,
        ) -> i32,
    >,

    /// ==== admission (added in 1.2) ====
    ///
    /// Added in 1.2. Asks whether session `conn` may publish or play
    /// (`req`), before `publish_open` / `subscribe_open`: the host's auth
    /// policy (signed URLs, stream keys, users, IP rules, webhooks) and
    /// limits, the same for every protocol. `RILL_OK`: allowed now, and
    /// the session may open that path for that action (the grant lasts
    /// as long as the session). `RILL_PENDING`: a webhook decides;
    /// `on_admit(ticket, status)` brings the answer, never during this
    /// call. Refusals: `RILL_ERR_UNAUTHORIZED` (no or wrong credentials:
    /// ask for them, e.g. HTTP 401), `RILL_ERR_DENIED` (final: IP rules, a
    /// webhook's refusal), `RILL_ERR_BUSY` (a limit: too many streams or
    /// players). The host logs and counts each refusal; the plugin only
    /// answers the client the protocol's way. `publish_open` and
    /// `subscribe_open` without a grant run the same checks themselves
    /// but cannot wait: where a webhook must decide they refuse with
    /// `RILL_ERR_DENIED`, so plugins built before 1.2 work with every
    /// policy but webhooks. Sessions without a socket (`session_open`: an
    /// HLS muxer, a recorder) are the plugin's own work and are let
    /// through: the plugin admits the clients it serves them to. So are
    /// (from 1.5) connections the plugin opened with `connect` (a relay's
    /// pull or push: the server at the other end is no client). `ticket`
    /// is the plugin's own number.
    pub admit: Option<
        unsafe extern "C" fn(
            host: *mut RillHost,
            conn: *mut RillConn,
            req: *const RillAdmission,
            ticket: u64,
        ) -> i32,
    >,

    /// ==== sessions of instance-socket peers (added in 1.3) ====
    ///
    /// Added in 1.3. As `session_open`, for a session that serves one
    /// remote peer reached through an instance UDP socket (an SRT caller,
    /// a WebRTC peer): `peer` is its address (`ip:port`, `[v6]:port`),
    /// `local` the socket's. The session then counts like a connection:
    /// the per-address limits apply now (`RILL_ERR_BUSY` when over them:
    /// no session is opened and `session_user` stays the plugin's), the
    /// address is what IP rules, webhooks and the API see, and
    /// `publish_open` / `subscribe_open` check it as for a socket (unlike
    /// `session_open`'s sessions, which are let through).
    /// `RILL_ERR_INVALID`: `peer` is not an address.
    pub session_open_peer: Option<
        unsafe extern "C" fn(
            host: *mut RillHost,
            session_user: *mut c_void,
            peer: RillStr,
            local: RillStr,
            conn_id: *mut u64,
        ) -> i32,
    >,

    /// ==== storage (added in 1.4) ====
    ///
    /// Added in 1.4. Opens a file for the session `conn_id` (0: the
    /// instance), where `on_io` completions go. `path`: relative to the
    /// host's `state_dir`, or absolute inside one of the host's
    /// `storage.roots`; `..` components are refused (`RILL_ERR_DENIED`).
    /// `flags`: `RILL_FILE_*` (`RILL_FILE_CREATE` also creates missing
    /// parent directories). Returns at once with a handle in `*file`: the
    /// open and every later operation on the handle run in order on the
    /// host's I/O threads, never on the caller's. A failed open (a
    /// missing file, a permission) shows as the error of the next
    /// operation.
    pub file_open: Option<
        unsafe extern "C" fn(
            host: *mut RillHost,
            conn_id: u64,
            path: RillStr,
            flags: u32,
            file: *mut u64,
        ) -> i32,
    >,
    /// Added in 1.4. Queues a write of `len` bytes (copied) at `offset`,
    /// or at the end with `RILL_FILE_APPEND`. No completion: a write that
    /// fails (`RILL_ERR_NO_SPACE` for a full disk, `RILL_ERR_IO`) poisons
    /// the handle, and from then on every call on it returns that error,
    /// as does `file_close`'s completion. `RILL_ERR_AGAIN`: more than
    /// `RILL_FILE_MAX_QUEUED` bytes wait for the disk; nothing queued.
    pub file_write: Option<
        unsafe extern "C" fn(
            host: *mut RillHost,
            file: u64,
            offset: u64,
            data: *const u8,
            len: usize,
        ) -> i32,
    >,
    /// Added in 1.4. Reads up to `len` bytes (at most `RILL_FILE_MAX_READ`)
    /// at `offset`, after the writes queued before it. `on_io(token)`
    /// brings them in `data` (fewer at the end of the file, none past it),
    /// `value` their count.
    pub file_read: Option<
        unsafe extern "C" fn(
            host: *mut RillHost,
            file: u64,
            offset: u64,
            len: u64,
            token: u64,
        ) -> i32,
    >,
    /// Added in 1.4. After the queued writes, flushes the file to the disk
    /// (fsync); `on_io(token)` with the result.
    pub file_sync: Option<unsafe extern "C" fn(host: *mut RillHost, file: u64, token: u64) -> i32>,
    /// Added in 1.4. After the queued operations, closes the file and
    /// frees the handle (use it no more). `on_io(token)` brings the first
    /// error the handle met, or `RILL_OK` with the file's size in `value`;
    /// token 0: no completion. Files a session leaves open are closed
    /// when the instance is destroyed.
    pub file_close: Option<unsafe extern "C" fn(host: *mut RillHost, file: u64, token: u64) -> i32>,
    /// Added in 1.4. A file-system operation (`RILL_FS_*`) on `path` (and
    /// `path2`, for a rename; empty otherwise), with the same path rules
    /// as `file_open`, run on the I/O threads; `on_io(token)` on session
    /// `conn_id` (0: the instance) brings the result.
    pub fs_op: Option<
        unsafe extern "C" fn(
            host: *mut RillHost,
            conn_id: u64,
            op: u32,
            path: RillStr,
            path2: RillStr,
            arg: u64,
            token: u64,
        ) -> i32,
    >,

    /// ==== the recording index (added in 1.4) ====
    ///
    /// Added in 1.4. Adds a row to the host's recording index (its
    /// database: SQLite in `state_dir`, or PostgreSQL) and returns its id
    /// in `*id` at once; the row is written in order, off the caller's
    /// thread. `rec->path` is resolved like `file_open`'s. The management
    /// API lists the rows, serves their files and deletes them.
    pub recording_add: Option<
        unsafe extern "C" fn(host: *mut RillHost, rec: *const RillRecording, id: *mut u64) -> i32,
    >,
    /// Added in 1.4. Updates row `id` from `rec` (every field but `path`,
    /// `stream` and `format`): the end, duration, size, codecs, and
    /// `RILL_REC_DONE` when the file is complete.
    pub recording_update: Option<
        unsafe extern "C" fn(host: *mut RillHost, id: u64, rec: *const RillRecording) -> i32,
    >,
    /// Added in 1.4. Queries the index: `query` is a JSON object with any
    /// of `id`, `stream` (exact path), `from` and `to` (wall-clock microseconds:
    /// rows overlapping `[from, to)`), `unfinished` (true: rows without
    /// `RILL_REC_DONE`), `group`, `limit` (default and most 10000).
    /// `on_io(token)` on session `conn_id` (0: the instance) brings a JSON
    /// array of rows ordered by start (`id`, `stream`, `format`, `path`,
    /// `group`, `codecs`, `start_us`, `end_us`, `duration_us`, `bytes`,
    /// `done`, `node`), `value` their count. Only this node's rows: nodes
    /// sharing a PostgreSQL index each see the files on their own disk
    /// (and rows written before rows named their node).
    pub recordings_query: Option<
        unsafe extern "C" fn(host: *mut RillHost, conn_id: u64, query: RillStr, token: u64) -> i32,
    >,
    /// Added in 1.4. Retention of the rows of `group`: deletes, files
    /// first, the finished rows that started more than `max_age_us` ago
    /// (0: no age limit), then the oldest while the group's total exceeds
    /// `max_bytes` (0: no size limit). `on_io(token)` brings the number of
    /// rows deleted in `value`. Only this node's rows, as in
    /// `recordings_query`.
    pub recordings_expire: Option<
        unsafe extern "C" fn(
            host: *mut RillHost,
            conn_id: u64,
            group: RillStr,
            max_age_us: i64,
            max_bytes: u64,
            token: u64,
        ) -> i32,
    >,

    /// ==== relays and the cluster (added in 1.5) ====
    ///
    /// Added in 1.5. Says where publisher `publisher`'s media comes from
    /// when this server relays it (a pull): `source` is the URL pulled
    /// (credentials stripped), shown by the management API as the
    /// publisher's remote. `flags`: `RILL_SOURCE_CLUSTER` when the stream
    /// belongs to another node of the cluster (a pull from its owner):
    /// this node then does not claim the stream in the cluster registry.
    /// Call it after `publish_open`, before the first frame.
    pub publisher_set_source: Option<
        unsafe extern "C" fn(publisher: *mut RillPublisher, source: RillStr, flags: u32) -> i32,
    >,
    /// Added in 1.5. Asks the cluster registry which other node publishes
    /// stream `path`. `on_io(token)` on session `conn_id` (0: the
    /// instance) brings `RILL_OK` with a JSON object in `data`
    /// (`node_id`, and `advertise`: the `host:port` of that node's HTTP
    /// server), `RILL_ERR_NOT_FOUND` when no other node has it,
    /// `RILL_ERR_IO` when the registry cannot be reached. Returns
    /// `RILL_ERR_UNSUPPORTED` at once when the host runs without a
    /// cluster.
    pub cluster_locate: Option<
        unsafe extern "C" fn(host: *mut RillHost, conn_id: u64, path: RillStr, token: u64) -> i32,
    >,
    /// Added in 1.5. Sets a metric of the plugin's own, shown at `/metrics`
    /// as `rill_plugin_<plugin>_<name>{plugin="<plugin>", labels...}`.
    /// `name`: `[a-z_][a-z0-9_]*`, at most 64 bytes. `labels`: `k=v` pairs
    /// joined by `,` (at most 4; keys as names, values up to 128 bytes
    /// without `,` `"` `\` or control characters), empty for none.
    /// `kind`: `RILL_METRIC_GAUGE` or `RILL_METRIC_COUNTER` (the running
    /// total; a name keeps the kind it was first set with). A NaN `value`
    /// removes the series. Series outlive generations (a reload
    /// overwrites them) and go when the plugin is removed.
    /// `RILL_ERR_INVALID`: a bad name, labels or kind. `RILL_ERR_BUSY`: the
    /// plugin has 1024 series already.
    pub metric_set: Option<
        unsafe extern "C" fn(
            host: *mut RillHost,
            name: RillStr,
            labels: RillStr,
            kind: u32,
            value: f64,
        ) -> i32,
    >,

    /// ==== hot reload of HTTP state (added in 1.6) ====
    ///
    /// Added in 1.6. Pins (`on` 1) or unpins (`on` 0) the URL space `path`
    /// to this instance: a request to one of the plugin's routes whose path
    /// is `path`, or continues it after a `/` or `.`, goes to this instance
    /// even after a reload made a newer generation current. A generation
    /// that holds state for a URL space (an HLS muxer's playlists, parts
    /// and segments) keeps serving it while it drains, so its viewers see
    /// no break; the generation ends once it unpins (the muxer went idle)
    /// and its last session ended. The newest pin of a path wins. Pins go
    /// when the instance drains past the operator's drain deadline or a
    /// forced drain, and at destroy (then `RILL_ERR_CLOSED`). `path`:
    /// starts with `/`, at most 1024 bytes; at most 65536 pins an instance
    /// (`RILL_ERR_BUSY`). Unpinning a path not pinned is
    /// `RILL_ERR_NOT_FOUND`.
    pub http_pin: Option<unsafe extern "C" fn(host: *mut RillHost, path: RillStr, on: u32) -> i32>,

    /// ==== transformers (added in 1.7) ====
    ///
    /// Added in 1.7. Opens a writer of derived tracks on the stream `path`,
    /// which must have a publisher (`RILL_ERR_NOT_FOUND` otherwise): the
    /// work of a transformer (audio transcoding, later snapshots) that
    /// subscribes to the stream with `RILL_SUBSCRIBE_TRANSFORM` and writes
    /// what it derives back into the same stream, once for every player.
    /// The handle takes `publisher_add_track`, `publisher_write` and
    /// `publisher_close` as a publisher's does, but it does not take the
    /// stream's publisher slot and leaves its lifecycle alone. Frames keep
    /// the stream's timeline: give them the pts/dts of the frames they come
    /// from (the host does not correct them; a dts that does not increase
    /// on its track is dropped), and the host marks them
    /// `RILL_FRAME_DERIVED`. Players see derived tracks only when they ask
    /// for the codec (`RillSubscribeOptions.audio_codecs`). One writer a
    /// codec a stream: while one lives, another's `publisher_add_track`
    /// for that codec is `RILL_ERR_BUSY` (a transformer's next generation
    /// leaves a running bridge alone); a writer that comes after one ended
    /// takes its track back. It ends (`on_publish_end`) when the stream
    /// closes. The host's admission checks run as for `publish_open`.
    pub publish_derived: Option<
        unsafe extern "C" fn(
            host: *mut RillHost,
            conn: *mut RillConn,
            path: RillStr,
            out: *mut *mut RillPublisher,
        ) -> i32,
    >,

    /// ==== objects the host serves (added in 1.8) ====
    ///
    /// Added in 1.8. Publishes `frame`'s bytes as the immutable HTTP object
    /// at `path` (a request path: starts with `/`, no query, at most 1024
    /// bytes). From then on the host itself answers GET and HEAD for that
    /// exact path, without a session of the plugin: 200, `content_type`
    /// (at most 128 bytes), `Cache-Control: public, max-age=86400,
    /// immutable`, `Access-Control-Allow-Origin: *`, and the bytes (shared
    /// with the frame, not copied). Each request first passes the admission
    /// a play of `stream` would (the same rules, credentials from its query
    /// and `Authorization`, the same refusals as after `admit`); when a
    /// webhook must decide, the request goes to the plugin as any other.
    /// Requests held for the path (`http_expect`) are answered at once. For
    /// what many clients fetch at the same moment (an LL-HLS part or init
    /// segment). An object stays until `http_unpublish` or the instance's
    /// end. `RILL_ERR_BUSY`: `path` is published already (objects do not
    /// change), or the instance has 65536 objects and expectations.
    pub http_publish: Option<
        unsafe extern "C" fn(
            host: *mut RillHost,
            path: RillStr,
            stream: RillStr,
            content_type: RillStr,
            frame: *const RillFrame,
        ) -> i32,
    >,
    /// Added in 1.8. Removes the object at `path` that this instance
    /// published, or its expectation. `RILL_ERR_NOT_FOUND`: none.
    pub http_unpublish: Option<unsafe extern "C" fn(host: *mut RillHost, path: RillStr) -> i32>,
    /// Added in 1.8. Announces that this instance will publish `path`, an
    /// object of `stream`, within `wait_ms` (at most 60 000): until then,
    /// or until published, the host holds GET and HEAD requests for it
    /// (once admitted as for `http_publish`; at most 20 000 an object, more
    /// go to the plugin) rather than passing them to the plugin, and
    /// answers them the moment it is published (the hinted part of an
    /// LL-HLS playlist, which every player asks for before it exists).
    /// Past the deadline, held and new requests go to the plugin as usual.
    /// Expecting a path again moves its deadline. `RILL_ERR_BUSY`: `path`
    /// is published already or expected by another instance, or the
    /// instance has 65536 objects and expectations.
    pub http_expect: Option<
        unsafe extern "C" fn(
            host: *mut RillHost,
            path: RillStr,
            stream: RillStr,
            wait_ms: u32,
        ) -> i32,
    >,
}

// SAFETY: repr(C), starts with u32 struct_size; every other field is an
// integer or a nullable fn pointer, all valid when zeroed.
unsafe impl RillSized for RillHostApi {}
