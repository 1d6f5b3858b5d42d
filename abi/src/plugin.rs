//! The plugin side: the descriptor a plugin exports and the callbacks the
//! host calls, plus the checks the host runs on a descriptor at load.

use core::ffi::c_void;

#[cfg(feature = "abi-check")]
use abi_stable::StableAbi;

use crate::host_api::{RillHostApi, RillHttpRequest, RillSockAddr};
use crate::types::{
    RillBytes, RillConn, RillFrame, RillHost, RillPublisher, RillStr, RillSubscriber, RillUdp,
};

/// The ABI's major version: the number in the entry symbol's name. A host
/// loads only plugins of its own major.
pub const RILL_ABI_MAJOR: u16 = 1;
/// The ABI's minor version: grows when fields are appended to a table or
/// struct. Either side may be older; `struct_size` tells what it knows.
pub const RILL_ABI_MINOR: u16 = 8;

/// `RillPluginDescriptor.magic`: the bytes "RILL" read as a little-endian
/// `uint32_t`.
pub const RILL_PLUGIN_MAGIC: u32 =
    ('R' as u32) | (('I' as u32) << 8) | (('L' as u32) << 16) | (('L' as u32) << 24);

/// The one symbol a plugin exports (type `RillPluginEntryV1`).
pub const RILL_PLUGIN_ENTRY_SYMBOL: &str = "rill_plugin_entry_v1";

/// Descriptor flag: never run two callbacks of this instance at the same
/// time, across all its sessions (simplest for plugins with shared mutable
/// state and no locks; costs parallelism).
pub const RILL_PLUGIN_SERIALIZED: u32 = 1 << 0;

/// `on_stream_event` event: a stream is live: its publisher wrote the
/// first media frame, so its tracks so far are declared (subscribe to see
/// them). Once per stream: a publisher returning within the grace window
/// does not announce it again.
pub const RILL_STREAM_PUBLISHED: u32 = 1;
/// `on_stream_event` event: a stream that was announced published lost its
/// publisher for good (after the grace window) and is gone.
pub const RILL_STREAM_UNPUBLISHED: u32 = 2;
/// `on_stream_event` event (added in 1.1): a player started waiting for a
/// stream nobody publishes (once per waiting player): the moment to pull
/// it from elsewhere.
pub const RILL_STREAM_WAITING: u32 = 3;
/// `on_stream_event` event (added in 1.1): the last player of a published
/// stream left.
pub const RILL_STREAM_IDLE: u32 = 4;
/// `on_stream_event` event (added in 1.5): the first player of a
/// published stream came while it had none (the end of an idle spell:
/// an on-demand pull keeps running).
pub const RILL_STREAM_ACTIVE: u32 = 5;
/// `on_stream_event` event (added in 1.7): a player left out the stream's
/// audio because it cannot carry its codec (see
/// `RillSubscribeOptions.audio_codecs`): the moment for a transformer to
/// derive a track it can carry. Once per such player.
pub const RILL_STREAM_CODEC_WANTED: u32 = 6;

/// The plugin's exported entry point, `rill_plugin_entry_v1`: given the
/// host's ABI version, returns the plugin's static descriptor, or NULL when
/// the plugin cannot run on that host. Called once per load, before
/// anything else, on any thread; it must not call the host.
pub type RillPluginEntryV1 =
    unsafe extern "C" fn(host_major: u32, host_minor: u32) -> *const RillPluginDescriptor;

/// The entry point every plugin defines and exports (once per library):
/// returns its static descriptor, or NULL when it cannot run on a host of
/// ABI `host_major.host_minor`. Called once per load, before anything else;
/// it must not call the host. (Declared here for the C header only: Rust
/// plugins get it from `export_plugin!`.)
#[cfg(rill_cbindgen)]
#[no_mangle]
pub unsafe extern "C" fn rill_plugin_entry_v1(
    host_major: u32,
    host_minor: u32,
) -> *const RillPluginDescriptor {
    let _ = (host_major, host_minor);
    core::ptr::null()
}

/// What a plugin is and the callbacks the host calls: returned by
/// `rill_plugin_entry_v1`, static (never freed, never changed).
///
/// Callbacks may be NULL unless marked required: the host then does
/// without (no `on_conn_open`: connections are refused; no `on_frame`:
/// subscribing is pointless). `instance` is what `create` stored;
/// `session_user` what `on_conn_open` / `on_http_request` / `connect` /
/// `session_open` stored for the session (NULL for instance-level calls).
///
/// Threads. Callbacks of one session never run concurrently, and run in
/// the order of events. Callbacks of different sessions may run at the
/// same time on different threads (unless `RILL_PLUGIN_SERIALIZED`).
/// Instance-level callbacks (`create`, `drain`, `destroy`, `on_stream_event`,
/// and `on_timer` / `on_post` with no session) never run concurrently with
/// each other, but may with session callbacks. A plugin's own threads may
/// only call the thread-safe host calls (see `RillHostApi`).
///
/// Status. A session callback returning a negative status ends the session
/// (`on_conn_close(RILL_END_PLUGIN_ERROR)` follows); positive is success.
/// Callbacks must not unwind (Rust: catch panics; C++: catch exceptions).
#[repr(C)]
#[derive(Clone, Copy)]
#[cfg_attr(feature = "abi-check", derive(StableAbi))]
pub struct RillPluginDescriptor {
    /// `RILL_PLUGIN_MAGIC`.
    pub magic: u32,
    /// `sizeof(RillPluginDescriptor)` as the plugin was built.
    pub struct_size: u32,
    /// `RILL_ABI_MAJOR` the plugin was built with.
    pub abi_major: u16,
    /// `RILL_ABI_MINOR` the plugin was built with.
    pub abi_minor: u16,
    /// `RILL_PLUGIN_*` flags.
    pub flags: u32,
    /// The plugin's name: `[a-z0-9_-]+`, unique per host; also its config
    /// section (`plugins.<name>`). A reload is a file with the same name.
    pub name: RillStr,
    /// The plugin's version, free text (e.g. semver), shown in the API.
    pub version: RillStr,
    /// One line for operators; may be empty.
    pub description: RillStr,

    /// Required. Creates an instance (one generation): read the config,
    /// declare listeners (`listen`) and HTTP routes (`http_route`), start
    /// instance timers. Store the instance pointer in `*instance`. Keep
    /// `host_api` and `host`: both stay valid until `destroy` returns.
    /// Non-OK: the host logs it, calls nothing else, and (on a reload)
    /// keeps the previous generation.
    pub create: Option<
        unsafe extern "C" fn(
            host_api: *const RillHostApi,
            host: *mut RillHost,
            instance: *mut *mut c_void,
        ) -> i32,
    >,
    /// A newer generation took over: no new sessions will come here. Open
    /// sessions go on as before (one still in its handshake may yet
    /// publish or play) until they end, or until the host's drain deadline
    /// closes them with `RILL_END_SHUTDOWN`. Also sent before shutdown.
    pub drain: Option<unsafe extern "C" fn(instance: *mut c_void)>,
    /// Required. The last call: every session has ended, every handle is
    /// closed, every timer cancelled, every post delivered. Free the
    /// instance and join the plugin's own threads. Frames the plugin wrapped
    /// may still be alive (`RillReleaseFn`).
    pub destroy: Option<unsafe extern "C" fn(instance: *mut c_void)>,

    /// A session starts: a connection arrived on listener `listener_id`
    /// (`*session_user` is NULL on entry), an outbound `connect` completed
    /// (`RILL_LISTENER_CONNECT`) or a `session_open` session starts
    /// (`RILL_LISTENER_SESSION`); for those two `*session_user` is preset to
    /// the pointer given there. Store the session's state in
    /// `*session_user`. Non-OK: the host closes it at once and no
    /// `on_conn_close` follows (for the preset kinds: free it yourself).
    pub on_conn_open: Option<
        unsafe extern "C" fn(
            instance: *mut c_void,
            conn: *mut RillConn,
            listener_id: u32,
            session_user: *mut *mut c_void,
        ) -> i32,
    >,
    /// Bytes arrived (borrowed for the call: keep what you need, the next
    /// call brings only new bytes). After a WebSocket upgrade: one complete
    /// message's payload per call. Non-OK closes the session.
    pub on_conn_data: Option<
        unsafe extern "C" fn(
            instance: *mut c_void,
            session_user: *mut c_void,
            conn: *mut RillConn,
            data: *const u8,
            len: usize,
        ) -> i32,
    >,
    /// The outbound queue drained below its low-water mark after a write
    /// returned `RILL_FULL` or `RILL_ERR_AGAIN`: write again.
    pub on_conn_writable: Option<
        unsafe extern "C" fn(
            instance: *mut c_void,
            session_user: *mut c_void,
            conn: *mut RillConn,
        ) -> i32,
    >,
    /// The session ended (`RILL_END_*` reason, `why` human-readable and
    /// borrowed). The last callback for it: free `session_user`. Publishers,
    /// subscribers, UDP sockets and timers still open are closed by the host
    /// after this returns (closing them here is fine too); `conn` is invalid
    /// afterwards.
    pub on_conn_close: Option<
        unsafe extern "C" fn(
            instance: *mut c_void,
            session_user: *mut c_void,
            conn: *mut RillConn,
            reason: u32,
            why: RillStr,
        ),
    >,
    /// An HTTP request matched route `route_id`; `conn` is a new session.
    /// `req` is borrowed for the call. Return `RILL_OK` with
    /// `*session_user` set, and answer now or later (`http_respond` or
    /// `http_upgrade_websocket`, then `conn_close`); `on_conn_close`
    /// follows. Or return an error and the host answers for you, no
    /// callbacks follow: `RILL_ERR_NOT_FOUND` 404, `RILL_ERR_DENIED` 403,
    /// `RILL_ERR_INVALID` 400, `RILL_ERR_BUSY` / `RILL_ERR_AGAIN` 503,
    /// others 500.
    pub on_http_request: Option<
        unsafe extern "C" fn(
            instance: *mut c_void,
            conn: *mut RillConn,
            route_id: u32,
            req: *const RillHttpRequest,
            session_user: *mut *mut c_void,
        ) -> i32,
    >,

    /// A frame for subscriber `sub` (borrowed for the call: `frame_retain`
    /// to keep it). Order: the stream metadata (`RILL_CODEC_METADATA`) if
    /// any, then each track's current config frame (`RILL_FRAME_CONFIG`),
    /// then media from the newest keyframe (or the next one with
    /// `RILL_SUBSCRIBE_LIVE_EDGE`), interleaved by dts; later metadata and
    /// config changes arrive in order. After frames were dropped because the
    /// subscriber fell behind, the next (a keyframe) has
    /// `RILL_FRAME_DISCONTINUITY`. The host stops pushing while the
    /// session's outbound queue is above its high-water mark, and after a
    /// write returned `RILL_FULL` until `on_conn_writable` has run.
    pub on_frame: Option<
        unsafe extern "C" fn(
            instance: *mut c_void,
            session_user: *mut c_void,
            sub: *mut RillSubscriber,
            frame: *const RillFrame,
        ) -> i32,
    >,
    /// The subscribed stream is live: called once per subscription, just
    /// before its first frame (at once when the stream was live, else when a
    /// publisher came). A publisher returning within the grace window does
    /// not call it again: its frames simply go on, timestamps continuing.
    pub on_subscribe_start: Option<
        unsafe extern "C" fn(
            instance: *mut c_void,
            session_user: *mut c_void,
            sub: *mut RillSubscriber,
        ) -> i32,
    >,
    /// The subscription ended (`RILL_END_TIMEOUT`, `RILL_END_PUBLISHER_GONE`,
    /// `RILL_END_KICKED`, `RILL_END_TOO_SLOW`, `RILL_END_SHUTDOWN`); no more
    /// frames. The handle stays valid until `subscriber_close` (required) or
    /// the session's end.
    pub on_subscribe_end: Option<
        unsafe extern "C" fn(
            instance: *mut c_void,
            session_user: *mut c_void,
            sub: *mut RillSubscriber,
            reason: u32,
            why: RillStr,
        ) -> i32,
    >,
    /// The publisher was ended by the host (`RILL_END_KICKED`: the API, a
    /// newer publisher or the stream's close; `RILL_END_SHUTDOWN`;
    /// `RILL_END_TIMEOUT`: it sent nothing for `publish.publish_timeout`);
    /// writes now return `RILL_ERR_CLOSED`. The handle
    /// stays valid until `publisher_close` or the session's end.
    pub on_publish_end: Option<
        unsafe extern "C" fn(
            instance: *mut c_void,
            session_user: *mut c_void,
            publisher: *mut RillPublisher,
            reason: u32,
            why: RillStr,
        ) -> i32,
    >,

    /// A timer from `timer_start` fired. `conn` and `session_user` are NULL
    /// for instance-level timers.
    pub on_timer: Option<
        unsafe extern "C" fn(
            instance: *mut c_void,
            session_user: *mut c_void,
            conn: *mut RillConn,
            timer_id: u64,
        ) -> i32,
    >,
    /// A `post` arrived (`arg` as posted). `conn` and `session_user` are
    /// NULL for instance-level posts, and for posts whose session ended
    /// before delivery.
    pub on_post: Option<
        unsafe extern "C" fn(
            instance: *mut c_void,
            session_user: *mut c_void,
            conn: *mut RillConn,
            arg: *mut c_void,
        ) -> i32,
    >,
    /// Instance-level: something happened to a stream anywhere in the host
    /// (`RILL_STREAM_*`: published, unpublished, a player waiting, the last
    /// player gone), in the order it happened. For plugins that act on
    /// every stream (record, HLS, push or pull relay): open a session
    /// (`session_open`) and subscribe. Delivered only when non-NULL, to
    /// the current generation; the return is logged. Events with a number
    /// the plugin does not know must be ignored (later minors add some).
    pub on_stream_event:
        Option<unsafe extern "C" fn(instance: *mut c_void, event: u32, path: RillStr) -> i32>,
    /// A datagram (borrowed) arrived at UDP socket `socket_id` of this
    /// session, from `from` (`ip:port`).
    pub on_udp_data: Option<
        unsafe extern "C" fn(
            instance: *mut c_void,
            session_user: *mut c_void,
            conn: *mut RillConn,
            udp: *mut RillUdp,
            socket_id: u32,
            from: RillStr,
            data: *const u8,
            len: usize,
        ) -> i32,
    >,

    /// ==== added in 1.1 ====
    ///
    /// Added in 1.1. A datagram (borrowed for the call) arrived at the
    /// instance's UDP socket `socket_id` (`udp_listen`) from `from`. Calls
    /// for one socket never run concurrently and come in arrival order;
    /// they may run at the same time as session callbacks. A negative
    /// status is logged (rate-limited); the socket goes on, except
    /// `RILL_ERR_NOT_FOUND`: "not a peer of this generation" (a datagram
    /// for a connection it never had). After a reload the host then offers
    /// the datagram to the plugin's earlier generations that still have
    /// sessions, newest first, so connections made before the reload (SRT,
    /// WebRTC) live on with the generation that holds their state, while
    /// new ones reach the new generation.
    pub on_udp_packet: Option<
        unsafe extern "C" fn(
            instance: *mut c_void,
            socket_id: u32,
            from: *const RillSockAddr,
            data: *const u8,
            len: usize,
        ) -> i32,
    >,

    /// ==== added in 1.2 ====
    ///
    /// Added in 1.2. The decision on an `admit` that returned
    /// `RILL_PENDING`, for its `ticket`: `RILL_OK` (go on: `publish_open`
    /// or `subscribe_open` the path now), `RILL_ERR_UNAUTHORIZED`,
    /// `RILL_ERR_DENIED`, `RILL_ERR_BUSY` (a limit) or `RILL_ERR_TIMEOUT`
    /// (the webhook did not answer and the host fails closed): refuse the
    /// client the protocol's way. Runs on the session, like its other
    /// callbacks; not called when the session ended first.
    pub on_admit: Option<
        unsafe extern "C" fn(
            instance: *mut c_void,
            session_user: *mut c_void,
            conn: *mut RillConn,
            ticket: u64,
            status: i32,
        ) -> i32,
    >,

    /// ==== added in 1.4 ====
    ///
    /// Added in 1.4. The completion of a storage or index call made with
    /// `token` (`file_read`, `file_sync`, `file_close`, `fs_op`,
    /// `recordings_query`, `recordings_expire`): `status` `RILL_OK` or the
    /// error, `value` the call's number (bytes read, a size, rows), `data`
    /// what it read (borrowed for the call; empty for most). Runs on the
    /// session the call named, like its other callbacks, or on the
    /// instance (`conn` and `session_user` NULL); not called when that
    /// session ended first.
    pub on_io: Option<
        unsafe extern "C" fn(
            instance: *mut c_void,
            session_user: *mut c_void,
            conn: *mut RillConn,
            token: u64,
            status: i32,
            value: i64,
            data: RillBytes,
        ) -> i32,
    >,
}

impl core::fmt::Debug for RillPluginDescriptor {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        // SAFETY: a descriptor's strings are static in its library; invalid
        // ones print as None.
        let (name, version) = unsafe { (self.name.to_str(), self.version.to_str()) };
        f.debug_struct("RillPluginDescriptor")
            .field("magic", &format_args!("{:#010x}", self.magic))
            .field("struct_size", &self.struct_size)
            .field(
                "abi",
                &format_args!("{}.{}", self.abi_major, self.abi_minor),
            )
            .field("flags", &self.flags)
            .field("name", &name)
            .field("version", &version)
            .finish_non_exhaustive()
    }
}

// SAFETY: the descriptor is immutable static data (integers, fn pointers
// and views of static strings); it exists to be shared.
unsafe impl Sync for RillPluginDescriptor {}
// SAFETY: as for Sync.
unsafe impl Send for RillPluginDescriptor {}

/// `sizeof(RillPluginDescriptor)` in ABI 1.0: the least `struct_size` a
/// valid plugin reports. (The descriptor starts with its magic, so it is
/// read with `rill_read_descriptor`, not `rill_read_sized`.)
pub const fn rill_v1_0_size_of_descriptor() -> usize {
    core::mem::offset_of!(RillPluginDescriptor, on_udp_data)
        + core::mem::size_of::<Option<unsafe extern "C" fn()>>()
}

/// `sizeof(RillHostApi)` in ABI 1.0: the least `struct_size` a valid host
/// reports.
pub const fn rill_v1_0_size_of_host_api() -> usize {
    core::mem::offset_of!(RillHostApi, post)
        + core::mem::size_of::<Option<unsafe extern "C" fn()>>()
}

/// `sizeof(RillPluginDescriptor)` in ABI 1.1 (up to `on_udp_packet`).
pub const fn rill_v1_1_size_of_descriptor() -> usize {
    core::mem::offset_of!(RillPluginDescriptor, on_admit)
}

/// `sizeof(RillHostApi)` in ABI 1.1 (up to `http_route_flags`).
pub const fn rill_v1_1_size_of_host_api() -> usize {
    core::mem::offset_of!(RillHostApi, admit)
}

/// `sizeof(RillHostApi)` in ABI 1.2 (up to `admit`).
pub const fn rill_v1_2_size_of_host_api() -> usize {
    core::mem::offset_of!(RillHostApi, session_open_peer)
}

/// `sizeof(RillPluginDescriptor)` in ABI 1.2 and 1.3 (up to `on_admit`).
pub const fn rill_v1_3_size_of_descriptor() -> usize {
    core::mem::offset_of!(RillPluginDescriptor, on_io)
}

/// `sizeof(RillHostApi)` in ABI 1.3 (up to `session_open_peer`).
pub const fn rill_v1_3_size_of_host_api() -> usize {
    core::mem::offset_of!(RillHostApi, file_open)
}

/// `sizeof(RillHostApi)` in ABI 1.4 (up to `recordings_expire`).
pub const fn rill_v1_4_size_of_host_api() -> usize {
    core::mem::offset_of!(RillHostApi, publisher_set_source)
}

/// `sizeof(RillHostApi)` in ABI 1.5 (up to `metric_set`).
pub const fn rill_v1_5_size_of_host_api() -> usize {
    core::mem::offset_of!(RillHostApi, http_pin)
}

/// `sizeof(RillHostApi)` in ABI 1.6 (up to `http_pin`).
pub const fn rill_v1_6_size_of_host_api() -> usize {
    core::mem::offset_of!(RillHostApi, publish_derived)
}

/// `sizeof(RillHostApi)` in ABI 1.7 (up to `publish_derived`).
pub const fn rill_v1_7_size_of_host_api() -> usize {
    core::mem::offset_of!(RillHostApi, http_publish)
}

/// `sizeof(RillSubscribeOptions)` in ABI 1.6 (before `audio_codecs`).
pub const fn rill_v1_6_size_of_subscribe_options() -> usize {
    core::mem::offset_of!(crate::host_api::RillSubscribeOptions, audio_codecs)
}

/// Why a descriptor was refused at load (host side).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DescriptorError {
    /// The entry point returned NULL: the plugin refuses this host version.
    Null,
    /// Not a Rill descriptor (bad magic).
    BadMagic(u32),
    /// Built for another ABI major.
    AbiMajor(u16),
    /// `struct_size` smaller than ABI 1.0's descriptor.
    TooSmall(u32),
    /// `create` or `destroy` is NULL.
    MissingCallback(&'static str),
    /// The name is empty, not UTF-8 or not `[a-z0-9_-]+`.
    BadName,
    /// The version or description is not UTF-8.
    BadText,
}

impl core::fmt::Display for DescriptorError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            DescriptorError::Null => {
                write!(
                    f,
                    "the plugin's entry point returned NULL (it refuses this host's ABI)"
                )
            }
            DescriptorError::BadMagic(m) => {
                write!(
                    f,
                    "bad descriptor magic {m:#010x} (expected {RILL_PLUGIN_MAGIC:#010x})"
                )
            }
            DescriptorError::AbiMajor(v) => {
                write!(
                    f,
                    "built for ABI major {v}, this host speaks {RILL_ABI_MAJOR}"
                )
            }
            DescriptorError::TooSmall(n) => write!(
                f,
                "descriptor struct_size {n} is smaller than ABI 1.0's {}",
                rill_v1_0_size_of_descriptor()
            ),
            DescriptorError::MissingCallback(c) => write!(f, "required callback `{c}` is NULL"),
            DescriptorError::BadName => write!(f, "plugin name must be non-empty [a-z0-9_-]"),
            DescriptorError::BadText => write!(f, "plugin version or description is not UTF-8"),
        }
    }
}

impl std::error::Error for DescriptorError {}

/// Reads and validates the descriptor a plugin's entry point returned
/// (host side): magic, ABI major, `struct_size`, required callbacks, name
/// and texts. Returns a full local copy: fields past the plugin's
/// `struct_size` (a plugin older than the host) read as NULL / zero.
///
/// # Safety
/// `p` must be NULL or what `rill_plugin_entry_v1` returned: a pointer to
/// at least `struct_size` readable bytes whose strings are valid for the
/// life of the process (the library is never unloaded).
pub unsafe fn rill_read_descriptor(
    p: *const RillPluginDescriptor,
) -> Result<RillPluginDescriptor, DescriptorError> {
    if p.is_null() {
        return Err(DescriptorError::Null);
    }
    // SAFETY: p is non-null; every version of the descriptor starts with
    // the u32 magic and u32 struct_size (8 bytes).
    let (magic, size) = unsafe {
        (
            core::ptr::read_unaligned(p as *const u32),
            core::ptr::read_unaligned((p as *const u32).add(1)),
        )
    };
    if magic != RILL_PLUGIN_MAGIC {
        return Err(DescriptorError::BadMagic(magic));
    }
    if (size as usize) < 12 {
        return Err(DescriptorError::TooSmall(size));
    }
    // SAFETY: struct_size >= 12 covers abi_major at offset 8.
    let major = unsafe { core::ptr::read_unaligned((p as *const u8).add(8) as *const u16) };
    if major != RILL_ABI_MAJOR {
        return Err(DescriptorError::AbiMajor(major));
    }
    if (size as usize) < rill_v1_0_size_of_descriptor() {
        return Err(DescriptorError::TooSmall(size));
    }
    let n = (size as usize).min(core::mem::size_of::<RillPluginDescriptor>());
    let mut out = core::mem::MaybeUninit::<RillPluginDescriptor>::zeroed();
    // SAFETY: the plugin promised `size >= n` readable bytes; the local is
    // size_of::<RillPluginDescriptor>() >= n bytes; no overlap. Zeroed bytes
    // are valid for every field (integers, RillStr, nullable fn pointers),
    // and the copied prefix is a valid descriptor prefix.
    let d = unsafe {
        core::ptr::copy_nonoverlapping(p as *const u8, out.as_mut_ptr() as *mut u8, n);
        out.assume_init()
    };
    if d.create.is_none() {
        return Err(DescriptorError::MissingCallback("create"));
    }
    if d.destroy.is_none() {
        return Err(DescriptorError::MissingCallback("destroy"));
    }
    // SAFETY: the strings are static in the loaded library (caller contract).
    let name = unsafe { d.name.to_str() }.ok_or(DescriptorError::BadName)?;
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
    {
        return Err(DescriptorError::BadName);
    }
    // SAFETY: as above.
    unsafe {
        if d.version.to_str().is_none() || d.description.to_str().is_none() {
            return Err(DescriptorError::BadText);
        }
    }
    Ok(d)
}

/// Builds the host API table with `struct_size` and versions filled in and
/// every call NULL: the host then sets each field. Helps hosts and tests.
pub const fn rill_host_api_empty() -> RillHostApi {
    RillHostApi {
        struct_size: core::mem::size_of::<RillHostApi>() as u32,
        abi_major: RILL_ABI_MAJOR,
        abi_minor: RILL_ABI_MINOR,
        log: None,
        log_enabled: None,
        config: None,
        clock_monotonic_us: None,
        clock_wall_us: None,
        frame_alloc: None,
        frame_freeze: None,
        frame_buf_free: None,
        frame_copy: None,
        frame_wrap: None,
        frame_retain: None,
        frame_release: None,
        frame_slice: None,
        frame_data: None,
        frame_info: None,
        frame_cache_get: None,
        frame_cache_set: None,
        publish_open: None,
        publisher_add_track: None,
        publisher_write: None,
        publisher_set_metadata: None,
        publisher_close: None,
        subscribe_open: None,
        subscriber_track_info: None,
        subscriber_stats: None,
        subscriber_close: None,
        listen: None,
        connect: None,
        session_open: None,
        conn_id: None,
        conn_write: None,
        conn_write_frame: None,
        conn_pending: None,
        conn_pause_read: None,
        conn_close: None,
        conn_peer_addr: None,
        conn_local_addr: None,
        http_route: None,
        http_respond: None,
        http_upgrade_websocket: None,
        ws_send: None,
        udp_bind: None,
        udp_send_to: None,
        udp_local_addr: None,
        udp_close: None,
        timer_start: None,
        timer_cancel: None,
        post: None,
        udp_listen: None,
        udp_send: None,
        http_route_flags: None,
        admit: None,
        session_open_peer: None,
        file_open: None,
        file_write: None,
        file_read: None,
        file_sync: None,
        file_close: None,
        fs_op: None,
        recording_add: None,
        recording_update: None,
        recordings_query: None,
        recordings_expire: None,
        publisher_set_source: None,
        cluster_locate: None,
        metric_set: None,
        http_pin: None,
        publish_derived: None,
        http_publish: None,
        http_unpublish: None,
        http_expect: None,
    }
}

/// Reads the host API table a plugin received at `create` (plugin side):
/// checks its major and copies it whole, fields past the host's
/// `struct_size` (an older host) reading as NULL. `None` when NULL, of
/// another major, or smaller than ABI 1.0's table.
///
/// # Safety
/// `p` must be NULL or the table the host passed to `create`.
pub unsafe fn rill_read_host_api(p: *const RillHostApi) -> Option<RillHostApi> {
    // SAFETY: forwarded contract; RillHostApi is RillSized.
    let api = unsafe { crate::types::rill_read_sized(p) }?;
    if api.abi_major != RILL_ABI_MAJOR || (api.struct_size as usize) < rill_v1_0_size_of_host_api()
    {
        return None;
    }
    Some(api)
}

/// A callback-less descriptor with the header filled in; the SDK and tests
/// start from it.
pub const fn rill_descriptor_empty(
    name: &'static str,
    version: &'static str,
) -> RillPluginDescriptor {
    RillPluginDescriptor {
        magic: RILL_PLUGIN_MAGIC,
        struct_size: core::mem::size_of::<RillPluginDescriptor>() as u32,
        abi_major: RILL_ABI_MAJOR,
        abi_minor: RILL_ABI_MINOR,
        flags: 0,
        name: RillStr::from_str(name),
        version: RillStr::from_str(version),
        description: RillStr::EMPTY,
        create: None,
        drain: None,
        destroy: None,
        on_conn_open: None,
        on_conn_data: None,
        on_conn_writable: None,
        on_conn_close: None,
        on_http_request: None,
        on_frame: None,
        on_subscribe_start: None,
        on_subscribe_end: None,
        on_publish_end: None,
        on_timer: None,
        on_post: None,
        on_stream_event: None,
        on_udp_data: None,
        on_udp_packet: None,
        on_admit: None,
        on_io: None,
    }
}
