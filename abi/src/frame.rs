//! Frame and track metadata structs.

#[cfg(feature = "abi-check")]
use abi_stable::StableAbi;

use crate::types::RillSized;

/// The track id of stream metadata frames (`RILL_CODEC_METADATA`), set with
/// `publisher_set_metadata` and pushed to subscribers.
pub const RILL_METADATA_TRACK: u32 = 0xFFFF_FFFFu32;

/// How many keys `frame_cache_set` accepts per frame at least; past the
/// host's limit it returns `RILL_ERR_NOMEM`.
pub const RILL_FRAME_CACHE_MIN_SLOTS: u32 = 4;

/// A frame's metadata.
///
/// In (to `frame_freeze`, `frame_copy`, `frame_wrap`, `frame_slice`) and out
/// (from `frame_info`): the caller sets `struct_size = sizeof(RillFrameInfo)`;
/// the host reads or writes only the fields that size covers.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "abi-check", derive(StableAbi))]
pub struct RillFrameInfo {
    /// `sizeof(RillFrameInfo)` as the caller knows it.
    pub struct_size: u32,
    /// Track id: from `publisher_add_track` when publishing; the publisher's
    /// id in frames a subscriber receives; `RILL_METADATA_TRACK` for
    /// metadata. Unused (0) for frames that only carry muxed bytes.
    pub track: u32,
    /// Codec (`RILL_CODEC_*`).
    pub codec: u32,
    /// `RILL_FRAME_*` flags.
    pub flags: u32,
    /// Presentation time, µs (`RILL_TIME_BASE_HZ`).
    pub pts: i64,
    /// Decode time, µs. Non-decreasing per track in what subscribers receive
    /// (the host corrects timestamps at ingest).
    pub dts: i64,
}

impl RillFrameInfo {
    /// A zeroed info with `struct_size` set.
    pub const fn new() -> Self {
        RillFrameInfo {
            struct_size: core::mem::size_of::<RillFrameInfo>() as u32,
            track: 0,
            codec: 0,
            flags: 0,
            pts: 0,
            dts: 0,
        }
    }
}

// SAFETY: repr(C), starts with u32 struct_size, all fields are integers.
unsafe impl RillSized for RillFrameInfo {}

/// A track's description: given to `publisher_add_track`, returned by
/// `subscriber_track_info`. The caller sets `struct_size`. Optional fields
/// are 0 when unknown. Time is always µs: tracks have no timescale.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "abi-check", derive(StableAbi))]
pub struct RillTrackInfo {
    /// `sizeof(RillTrackInfo)` as the caller knows it.
    pub struct_size: u32,
    /// `RILL_TRACK_VIDEO`, `RILL_TRACK_AUDIO` or `RILL_TRACK_DATA`.
    pub kind: u32,
    /// Codec (`RILL_CODEC_*`).
    pub codec: u32,
    /// Video width in pixels, or 0.
    pub width: u32,
    /// Video height in pixels, or 0.
    pub height: u32,
    /// Audio sample rate in Hz, or 0.
    pub sample_rate: u32,
    /// Audio channel count, or 0.
    pub channels: u32,
}

impl RillTrackInfo {
    /// A zeroed info with `struct_size` set.
    pub const fn new() -> Self {
        RillTrackInfo {
            struct_size: core::mem::size_of::<RillTrackInfo>() as u32,
            kind: 0,
            codec: 0,
            width: 0,
            height: 0,
            sample_rate: 0,
            channels: 0,
        }
    }
}

// SAFETY: repr(C), starts with u32 struct_size, all fields are integers.
unsafe impl RillSized for RillTrackInfo {}
