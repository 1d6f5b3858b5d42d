//! VP9 over RTP (RFC 9628), sending side: one picture (a frame, or a
//! superframe with its hidden frames) a timestamp, in flexible mode with
//! one reference to the previous picture. Chromium's receiver drops
//! non-flexible pictures without layer indices, and flexible mode needs no
//! group-of-frames description.
//!
//! Each packet starts with the payload descriptor
//! `|I|P|L|F|B|E|V|Z|`, the 15-bit picture id (`M` set) and, for an inter
//! picture, one reference (`P_DIFF` 1).

/// Descriptor flags.
const I: u8 = 0x80;
const P: u8 = 0x40;
const F: u8 = 0x10;
const B: u8 = 0x08;
const E: u8 = 0x04;

/// The descriptor of a packet of picture `picture_id`.
pub(crate) fn descriptor(picture_id: u16, inter: bool, begin: bool, end: bool) -> ([u8; 4], usize) {
    let mut d = [0u8; 4];
    d[0] = I | F;
    if inter {
        d[0] |= P;
    }
    if begin {
        d[0] |= B;
    }
    if end {
        d[0] |= E;
    }
    let id = picture_id & 0x7FFF;
    d[1] = 0x80 | (id >> 8) as u8;
    d[2] = id as u8;
    if inter {
        // P_DIFF 1 (the previous picture), N 0 (no more references).
        d[3] = 1 << 1;
        (d, 4)
    } else {
        (d, 3)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptors() {
        let (d, n) = descriptor(0x1234, false, true, false);
        assert_eq!(&d[..n], &[0x98, 0x92, 0x34]);
        let (d, n) = descriptor(0x8001, true, false, true);
        assert_eq!(&d[..n], &[0xD4, 0x80, 0x01, 0x02]);
    }
}
