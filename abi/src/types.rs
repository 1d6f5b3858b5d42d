//! Basic ABI types: strings, byte ranges, HTTP headers, opaque handles, and
//! the helpers that read a versioned table safely.

use core::ffi::{c_char, c_void};
use core::marker::PhantomData;

#[cfg(feature = "abi-check")]
use abi_stable::StableAbi;

/// A UTF-8 string passed by pointer and length. It is NOT NUL-terminated:
/// print it with `printf("%.*s", (int)s.len, s.ptr)` (see `RILL_STR_FMT`).
///
/// A `RillStr` is always borrowed: it stays valid for the call it is passed
/// to (or, for one a host call returns, for as long as that call documents).
/// Copy it to keep it. `ptr` may be NULL only when `len` is 0.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
#[cfg_attr(feature = "abi-check", derive(StableAbi))]
pub struct RillStr {
    /// First byte (not NUL-terminated). NULL only when `len` is 0.
    pub ptr: *const c_char,
    /// Length in bytes.
    pub len: usize,
}

// SAFETY: a RillStr is a plain (pointer, length) view of immutable bytes;
// reading through it already requires `unsafe` and a caller-proven lifetime.
// Sharing the view itself between threads is harmless (it lets `static`
// plugin descriptors hold their name and version).
unsafe impl Sync for RillStr {}
// SAFETY: as for Sync: the view is immutable and carries no ownership.
unsafe impl Send for RillStr {}

impl RillStr {
    /// The empty string.
    pub const EMPTY: RillStr = RillStr {
        ptr: core::ptr::null(),
        len: 0,
    };

    /// A view of a Rust string slice; usable in `static` items.
    pub const fn from_str(s: &str) -> RillStr {
        RillStr {
            ptr: s.as_ptr() as *const c_char,
            len: s.len(),
        }
    }

    /// A view of raw bytes (the callee checks that they are UTF-8).
    pub const fn from_bytes(b: &[u8]) -> RillStr {
        RillStr {
            ptr: b.as_ptr() as *const c_char,
            len: b.len(),
        }
    }

    /// The bytes this string points at.
    ///
    /// # Safety
    /// `ptr` must be NULL with `len == 0`, or point to `len` readable bytes
    /// that stay valid and unchanged for `'a`.
    pub unsafe fn as_bytes<'a>(&self) -> &'a [u8] {
        if self.ptr.is_null() || self.len == 0 {
            return &[];
        }
        // SAFETY: non-null and, per this function's contract, `len` readable
        // bytes valid for 'a.
        unsafe { core::slice::from_raw_parts(self.ptr as *const u8, self.len) }
    }

    /// The string, or `None` when it is not valid UTF-8.
    ///
    /// # Safety
    /// As for [`RillStr::as_bytes`].
    pub unsafe fn to_str<'a>(&self) -> Option<&'a str> {
        // SAFETY: forwarded contract.
        core::str::from_utf8(unsafe { self.as_bytes() }).ok()
    }
}

impl Default for RillStr {
    fn default() -> Self {
        RillStr::EMPTY
    }
}

/// A borrowed byte range (binary data: frame payloads, request bodies).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
#[cfg_attr(feature = "abi-check", derive(StableAbi))]
pub struct RillBytes {
    /// First byte. NULL only when `len` is 0.
    pub ptr: *const u8,
    /// Length in bytes.
    pub len: usize,
}

impl RillBytes {
    /// The empty range.
    pub const EMPTY: RillBytes = RillBytes {
        ptr: core::ptr::null(),
        len: 0,
    };

    /// A view of a byte slice.
    pub const fn from_slice(b: &[u8]) -> RillBytes {
        RillBytes {
            ptr: b.as_ptr(),
            len: b.len(),
        }
    }

    /// The bytes this range points at.
    ///
    /// # Safety
    /// `ptr` must be NULL with `len == 0`, or point to `len` readable bytes
    /// that stay valid and unchanged for `'a`.
    pub unsafe fn as_slice<'a>(&self) -> &'a [u8] {
        if self.ptr.is_null() || self.len == 0 {
            return &[];
        }
        // SAFETY: non-null and, per this function's contract, `len` readable
        // bytes valid for 'a.
        unsafe { core::slice::from_raw_parts(self.ptr, self.len) }
    }
}

impl Default for RillBytes {
    fn default() -> Self {
        RillBytes::EMPTY
    }
}

/// One HTTP header: a (name, value) pair. Names the host hands to a plugin
/// are lower-case; names a plugin sends may use any case.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
#[cfg_attr(feature = "abi-check", derive(StableAbi))]
pub struct RillHeader {
    /// Header name.
    pub name: RillStr,
    /// Header value.
    pub value: RillStr,
}

// Opaque handles: C sees `typedef struct X X;` and only ever uses pointers
// to them. They have no `repr(C)` outside `abi-check`, so cbindgen emits
// them as opaque forward declarations; abi_stable needs `repr(C)` to derive
// their layout (a zero-sized, never-instantiated type is laid out the same
// either way). Written out, not made by a macro: cbindgen does not expand
// macros.

/// The host's context for one plugin instance (one generation of one
/// plugin). Passed to `create` with the `RillHostApi` table, and to every
/// host call that is not about a narrower handle. Valid until `destroy`
/// returns.
#[cfg_attr(feature = "abi-check", repr(C), derive(StableAbi))]
pub struct RillHost {
    _private: [u8; 0],
    _not_send_sync_unpin: PhantomData<(*mut u8, core::marker::PhantomPinned)>,
}

/// A frame: immutable bytes plus metadata (`RillFrameInfo`), reference
/// counted and owned by the host. A `const RillFrame *` is borrowed (valid
/// for the call it is passed to); a `RillFrame *` a host call returns is a
/// reference the plugin owns and must give back with `frame_release`.
#[cfg_attr(feature = "abi-check", repr(C), derive(StableAbi))]
pub struct RillFrame {
    _private: [u8; 0],
    _not_send_sync_unpin: PhantomData<(*mut u8, core::marker::PhantomPinned)>,
}

/// A writable frame buffer from `frame_alloc`, owned by the plugin until
/// `frame_freeze` turns it into a frame or `frame_buf_free` drops it.
#[cfg_attr(feature = "abi-check", repr(C), derive(StableAbi))]
pub struct RillFrameBuf {
    _private: [u8; 0],
    _not_send_sync_unpin: PhantomData<(*mut u8, core::marker::PhantomPinned)>,
}

/// A session: one connection the host owns (TCP, TLS, HTTP request or
/// WebSocket), or a socket-less session from `session_open`. Callbacks of
/// one session never run concurrently. Valid from `on_conn_open` (or the
/// call that created it) until `on_conn_close` returns.
#[cfg_attr(feature = "abi-check", repr(C), derive(StableAbi))]
pub struct RillConn {
    _private: [u8; 0],
    _not_send_sync_unpin: PhantomData<(*mut u8, core::marker::PhantomPinned)>,
}

/// A publisher: the right to write frames into one stream. From
/// `publish_open`; valid until `publisher_close` or the end of its session.
#[cfg_attr(feature = "abi-check", repr(C), derive(StableAbi))]
pub struct RillPublisher {
    _private: [u8; 0],
    _not_send_sync_unpin: PhantomData<(*mut u8, core::marker::PhantomPinned)>,
}

/// A subscriber: frames of one stream pushed to `on_frame`. From
/// `subscribe_open`; valid until `subscriber_close` or the end of its
/// session.
#[cfg_attr(feature = "abi-check", repr(C), derive(StableAbi))]
pub struct RillSubscriber {
    _private: [u8; 0],
    _not_send_sync_unpin: PhantomData<(*mut u8, core::marker::PhantomPinned)>,
}

/// A UDP socket the host owns, bound for one session by `udp_bind`; valid
/// until `udp_close` or the end of its session.
#[cfg_attr(feature = "abi-check", repr(C), derive(StableAbi))]
pub struct RillUdp {
    _private: [u8; 0],
    _not_send_sync_unpin: PhantomData<(*mut u8, core::marker::PhantomPinned)>,
}

/// The release callback of `frame_wrap`: called exactly once, when the last
/// reference to the wrapped memory is gone, with the `user` pointer, data
/// pointer and length given to `frame_wrap`.
///
/// It may run on any host thread, and after the plugin instance that
/// wrapped the memory was destroyed (frames outlive instances; the library
/// stays mapped): it must be thread-safe and must not touch instance state.
///
/// (A newtype so that the fn pointer nested in `frame_wrap`'s signature
/// passes abi_stable's layout derive.)
#[repr(transparent)]
#[derive(Clone, Copy, Debug, Default)]
#[cfg_attr(feature = "abi-check", derive(StableAbi))]
pub struct RillReleaseFn(
    /// The function; NULL when the memory needs no release (static data).
    pub Option<unsafe extern "C" fn(user: *mut c_void, data: *const u8, len: usize)>,
);

/// Implemented by every versioned table and in/out struct: each one starts
/// with a `u32` `struct_size` that tells how many bytes of it the writer knew.
///
/// # Safety
/// The type must be `repr(C)`, start with a `u32` `struct_size`, and every
/// field must be valid when all its bytes are zero (integers, nullable fn
/// pointers, raw pointers, `RillStr`).
pub unsafe trait RillSized: Copy {}

/// Copies a versioned table or struct written by the other side into a full
/// local value: the bytes the writer knew (`struct_size`, capped at our own
/// size) are copied, every field past them reads as zero / NULL.
///
/// This is how both sides read each other's tables: never dereference a
/// foreign table as `&T` (it may be shorter than our `T`).
///
/// Returns `None` when `p` is NULL or `struct_size` is smaller than the
/// `u32` that holds it.
///
/// # Safety
/// `p` must be NULL or point to at least `struct_size` readable bytes (and
/// at least 4), as the other side promised.
pub unsafe fn rill_read_sized<T: RillSized>(p: *const T) -> Option<T> {
    if p.is_null() {
        return None;
    }
    // SAFETY: p is non-null and points to at least the u32 struct_size, which
    // `RillSized` guarantees is the first field.
    let declared = unsafe { core::ptr::read_unaligned(p as *const u32) } as usize;
    if declared < core::mem::size_of::<u32>() {
        return None;
    }
    let n = declared.min(core::mem::size_of::<T>());
    let mut out = core::mem::MaybeUninit::<T>::zeroed();
    // SAFETY: the source has `declared >= n` readable bytes; the destination
    // is a local of size_of::<T>() >= n bytes; they cannot overlap. All-zero
    // bytes are a valid T (RillSized contract), and the copied prefix comes
    // from a valid T written by the other side.
    unsafe {
        core::ptr::copy_nonoverlapping(p as *const u8, out.as_mut_ptr() as *mut u8, n);
        Some(out.assume_init())
    }
}

/// Whether the writer of a versioned struct knew about `field`: its
/// `struct_size` covers the field's last byte. The Rust twin of C's
/// `RILL_HAS(T, s, field)`.
///
/// `rill_has!(RillHostApi, &api, udp_bind)` — `api` being a value read with
/// [`rill_read_sized`]. For a fn pointer also test it for `None`.
#[macro_export]
macro_rules! rill_has {
    ($T:ty, $s:expr, $field:ident) => {{
        let s: &$T = $s;
        $crate::rill_field_end(::core::mem::offset_of!($T, $field), |t: &$T| &t.$field)
            <= s.struct_size as usize
    }};
}

/// The offset one past a field's last byte (used by `rill_has!`).
#[doc(hidden)]
pub const fn rill_field_end<T, F>(offset: usize, _field: fn(&T) -> &F) -> usize {
    offset + core::mem::size_of::<F>()
}
