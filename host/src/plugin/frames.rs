//! Frame handles across the ABI.
//!
//! A `RillFrame *` is the pointer of an `Arc<Frame>` (`Arc::into_raw`):
//! retain and release are the Arc's own counts, and lending a frame to a
//! plugin's `on_frame` is `Arc::as_ptr`, with no allocation. A
//! `RillFrameBuf *` is a boxed `BytesMut` the plugin fills before freezing.

use std::ffi::c_void;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use rill_abi::{
    rill_read_sized, RillFrame, RillFrameBuf, RillFrameInfo, RillReleaseFn, RILL_CODEC_METADATA,
    RILL_METADATA_TRACK,
};

use crate::engine::{Frame, FrameRef};

/// Largest frame a plugin may create.
pub const MAX_FRAME_BYTES: usize = 64 << 20;

/// Lends `f` for the duration of a callback.
pub(crate) fn lend(f: &FrameRef) -> *const RillFrame {
    Arc::as_ptr(f) as *const RillFrame
}

/// Hands a new reference to the plugin.
pub(crate) fn give(f: FrameRef) -> *mut RillFrame {
    Arc::into_raw(f) as *mut RillFrame
}

/// A new owned reference to a frame the plugin lends us.
///
/// # Safety
/// `p` is NULL or a live frame handle (lent or owned by the caller).
pub(crate) unsafe fn borrow(p: *const RillFrame) -> Option<FrameRef> {
    if p.is_null() {
        return None;
    }
    let p = p as *const Frame;
    // SAFETY: p came from Arc::into_raw / Arc::as_ptr of an Arc<Frame> that
    // the caller keeps alive for this call; bumping the count first makes
    // the Arc we rebuild an extra reference, leaving the caller's intact.
    unsafe {
        Arc::increment_strong_count(p);
        Some(Arc::from_raw(p))
    }
}

/// Takes back a reference the plugin owned.
///
/// # Safety
/// `p` is NULL or an owned handle, released exactly once.
pub(crate) unsafe fn take(p: *mut RillFrame) {
    if !p.is_null() {
        // SAFETY: per contract, p is an owned Arc<Frame> reference.
        unsafe { Arc::decrement_strong_count(p as *const Frame) }
    }
}

/// The metadata as plugins see it (metadata frames on the metadata track id).
pub(crate) fn info_of(f: &Frame) -> RillFrameInfo {
    let mut i = RillFrameInfo::new();
    i.track = if f.codec() == RILL_CODEC_METADATA {
        RILL_METADATA_TRACK
    } else {
        f.track()
    };
    i.codec = f.codec();
    i.flags = f.flags();
    i.pts = f.pts();
    i.dts = f.dts();
    i
}

/// Reads the plugin's (possibly shorter, possibly NULL) info.
///
/// # Safety
/// `p` is NULL or points to a RillFrameInfo of `struct_size` bytes.
pub(crate) unsafe fn read_info(p: *const RillFrameInfo) -> RillFrameInfo {
    // SAFETY: forwarded contract.
    unsafe { rill_read_sized(p) }.unwrap_or_default()
}

pub(crate) fn frame_from(payload: Bytes, i: &RillFrameInfo) -> FrameRef {
    Arc::new(Frame::new(i.track, i.codec, i.flags, i.pts, i.dts, payload))
}

pub(crate) fn alloc_buf(len: usize) -> Option<(*mut RillFrameBuf, *mut u8)> {
    if len > MAX_FRAME_BYTES {
        return None;
    }
    let mut b = Box::new(BytesMut::zeroed(len));
    let data = b.as_mut_ptr();
    Some((Box::into_raw(b) as *mut RillFrameBuf, data))
}

/// # Safety
/// `buf` is a live handle from `alloc_buf`, consumed here.
pub(crate) unsafe fn freeze_buf(buf: *mut RillFrameBuf, len: usize) -> Option<Bytes> {
    if buf.is_null() {
        return None;
    }
    // SAFETY: per contract, buf is a Box<BytesMut> from alloc_buf, not yet
    // consumed; we consume it now.
    let mut b = unsafe { Box::from_raw(buf as *mut BytesMut) };
    if len > b.len() {
        return None;
    }
    b.truncate(len);
    Some(b.freeze())
}

/// # Safety
/// `buf` is NULL or a live handle from `alloc_buf`, consumed here.
pub(crate) unsafe fn free_buf(buf: *mut RillFrameBuf) {
    if !buf.is_null() {
        // SAFETY: per contract.
        drop(unsafe { Box::from_raw(buf as *mut BytesMut) });
    }
}

/// Plugin memory lent to the host until the last reference drops.
struct Wrapped {
    data: *const u8,
    len: usize,
    release: RillReleaseFn,
    user: *mut c_void,
}

// SAFETY: the plugin promises (RillReleaseFn's contract) that the bytes stay
// valid and unchanged until release, and that release is thread-safe.
unsafe impl Send for Wrapped {}
// SAFETY: as above: the bytes are immutable while wrapped.
unsafe impl Sync for Wrapped {}

impl AsRef<[u8]> for Wrapped {
    fn as_ref(&self) -> &[u8] {
        if self.data.is_null() || self.len == 0 {
            return &[];
        }
        // SAFETY: valid and unchanged until release (see the Send impl).
        unsafe { std::slice::from_raw_parts(self.data, self.len) }
    }
}

impl Drop for Wrapped {
    fn drop(&mut self) {
        if let Some(f) = self.release.0 {
            // SAFETY: called exactly once, with the values given to
            // frame_wrap, as RillReleaseFn specifies.
            unsafe { f(self.user, self.data, self.len) }
        }
    }
}

pub(crate) fn wrap(
    data: *const u8,
    len: usize,
    release: RillReleaseFn,
    user: *mut c_void,
) -> Bytes {
    Bytes::from_owner(Wrapped {
        data,
        len,
        release,
        user,
    })
}
