//! The FLV stream framing (what HTTP-FLV and FLV files carry): a 9-byte
//! header plus PreviousTagSize0, then tags of an 11-byte header, a body and
//! a 4-byte PreviousTagSize.

use bytes::{BufMut, Bytes, BytesMut};

/// Audio tag type.
pub const TAG_AUDIO: u8 = 8;
/// Video tag type.
pub const TAG_VIDEO: u8 = 9;
/// Script data tag type.
pub const TAG_SCRIPT: u8 = 18;

/// Largest tag body the 24-bit size field can carry.
pub const MAX_TAG_BODY: usize = 0xFF_FFFF;

/// The FLV header and PreviousTagSize0, announcing audio and/or video.
pub fn header(audio: bool, video: bool) -> [u8; 13] {
    let flags = (audio as u8) << 2 | (video as u8);
    [b'F', b'L', b'V', 1, flags, 0, 0, 0, 9, 0, 0, 0, 0]
}

/// The 11-byte tag header for a body of `len` bytes at `ts_ms`.
pub fn tag_header(tag_type: u8, ts_ms: u32, len: usize) -> [u8; 11] {
    let l = (len.min(MAX_TAG_BODY) as u32).to_be_bytes();
    let t = ts_ms.to_be_bytes();
    [tag_type, l[1], l[2], l[3], t[1], t[2], t[3], t[0], 0, 0, 0]
}

/// A whole tag (header, body, PreviousTagSize) in one buffer.
pub fn tag(tag_type: u8, ts_ms: u32, body: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(11 + body.len() + 4);
    b.put_slice(&tag_header(tag_type, ts_ms, body.len()));
    b.put_slice(body);
    b.put_u32((11 + body.len()) as u32);
    b.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn framing() {
        assert_eq!(&header(true, true)[..5], b"FLV\x01\x05");
        let t = tag(TAG_VIDEO, 0x0123_4567, b"abc");
        assert_eq!(t.len(), 11 + 3 + 4);
        assert_eq!(&t[..11], &[9, 0, 0, 3, 0x23, 0x45, 0x67, 0x01, 0, 0, 0]);
        assert_eq!(&t[14..], &14u32.to_be_bytes());
    }
}
