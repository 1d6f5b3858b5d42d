//! Depacketized frames to a host publisher (RTSP and WebRTC ingest).

use rill_abi::sdk::{Error, FrameInfo, Host, Publisher};

use crate::Frame;

/// Writes `frames` to `publisher`, in order, wrapping each payload without
/// a copy. Returns the first refusal, if any; the frames after it are
/// still written.
pub fn write_frames(host: &Host, publisher: &Publisher, frames: Vec<Frame>) -> Result<(), Error> {
    let mut first = Ok(());
    for f in frames {
        let info = FrameInfo {
            track: f.track,
            codec: f.codec,
            flags: f.flags,
            pts: f.pts,
            dts: f.dts,
            ..FrameInfo::new()
        };
        let r = host
            .frame_wrap(f.payload, &info)
            .and_then(|frame| publisher.write(&frame));
        if first.is_ok() {
            first = r;
        }
    }
    first
}
