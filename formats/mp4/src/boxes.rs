//! Writing ISO BMFF boxes into a growing buffer: a box is opened with a
//! placeholder size and closed once its body is written.

use bytes::{BufMut, BytesMut};

/// A buffer of boxes being written.
pub(crate) struct Writer {
    pub(crate) buf: BytesMut,
}

impl Writer {
    pub(crate) fn with_capacity(n: usize) -> Self {
        Writer {
            buf: BytesMut::with_capacity(n),
        }
    }

    /// Opens a box; returns where it starts, for [`Writer::end`].
    pub(crate) fn begin(&mut self, kind: &[u8; 4]) -> usize {
        let at = self.buf.len();
        self.buf.put_u32(0);
        self.buf.put_slice(kind);
        at
    }

    /// Opens a full box (version and 24-bit flags).
    pub(crate) fn begin_full(&mut self, kind: &[u8; 4], version: u8, flags: u32) -> usize {
        let at = self.begin(kind);
        self.buf
            .put_u32((version as u32) << 24 | (flags & 0xff_ffff));
        at
    }

    /// Closes the box opened at `at`: writes its size. Boxes written here
    /// (init segments, `moof`) stay far below 4 GiB.
    pub(crate) fn end(&mut self, at: usize) {
        let size = (self.buf.len() - at) as u32;
        self.buf[at..at + 4].copy_from_slice(&size.to_be_bytes());
    }

    pub(crate) fn u8(&mut self, v: u8) {
        self.buf.put_u8(v);
    }

    pub(crate) fn u16(&mut self, v: u16) {
        self.buf.put_u16(v);
    }

    pub(crate) fn u32(&mut self, v: u32) {
        self.buf.put_u32(v);
    }

    pub(crate) fn u64(&mut self, v: u64) {
        self.buf.put_u64(v);
    }

    pub(crate) fn bytes(&mut self, v: &[u8]) {
        self.buf.put_slice(v);
    }

    pub(crate) fn zeros(&mut self, n: usize) {
        self.buf.put_bytes(0, n);
    }

    /// The unity transformation matrix of `mvhd` and `tkhd`.
    pub(crate) fn matrix(&mut self) {
        for v in [0x0001_0000u32, 0, 0, 0, 0x0001_0000, 0, 0, 0, 0x4000_0000] {
            self.u32(v);
        }
    }
}
