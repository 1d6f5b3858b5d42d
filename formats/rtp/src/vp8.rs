//! VP8 over RTP (RFC 7741), both ways. Sending: one frame a timestamp in
//! one partition's worth of packets, each after a one-byte descriptor (S
//! on the first). Receiving: descriptors with any extension (picture id,
//! TL0PICIDX, TID/KEYIDX) are read and dropped; a frame starts at S with
//! partition 0 and ends at the marker.

/// Descriptor flags.
const X: u8 = 0x80;
const S: u8 = 0x10;

/// The descriptor of a packet: S on the first of a frame.
pub(crate) fn descriptor(first: bool) -> u8 {
    if first {
        S
    } else {
        0
    }
}

/// What a VP8 RTP payload's descriptor says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Descriptor {
    /// The start of a frame (S with partition 0).
    pub start: bool,
    /// Where the VP8 data starts.
    pub data: usize,
}

/// Reads a descriptor; `None` when it is cut short.
pub(crate) fn parse(payload: &[u8]) -> Option<Descriptor> {
    let b0 = *payload.first()?;
    let mut at = 1;
    if b0 & X != 0 {
        let x = *payload.get(at)?;
        at += 1;
        if x & 0x80 != 0 {
            // Picture id: 7 or 15 bits.
            let p = *payload.get(at)?;
            at += if p & 0x80 != 0 { 2 } else { 1 };
        }
        if x & 0x40 != 0 {
            at += 1;
        }
        if x & 0x30 != 0 {
            at += 1;
        }
    }
    (at < payload.len()).then_some(Descriptor {
        start: b0 & S != 0 && b0 & 0x0F == 0,
        data: at,
    })
}

/// Whether a frame is a key frame: bit 0 of its frame tag is 0.
pub(crate) fn is_key(frame: &[u8]) -> bool {
    frame.first().is_some_and(|b| b & 1 == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptors() {
        assert_eq!(descriptor(true), 0x10);
        assert_eq!(
            parse(&[0x10, 0x9D]),
            Some(Descriptor {
                start: true,
                data: 1
            })
        );
        // X with a 15-bit picture id, TL0PICIDX and TID/KEYIDX (libwebrtc).
        let p = parse(&[0x90, 0xE0, 0x80, 0x01, 0x05, 0x20, 0x9D]).unwrap();
        assert_eq!(
            p,
            Descriptor {
                start: true,
                data: 6
            }
        );
        assert!(parse(&[0x90, 0x80]).is_none());
        assert!(parse(&[0x10]).is_none(), "no data");
        assert!(!parse(&[0x11, 0x00]).unwrap().start, "partition 1");
        assert!(is_key(&[0x10]) && !is_key(&[0x11]));
    }
}
