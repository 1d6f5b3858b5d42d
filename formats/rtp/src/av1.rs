//! AV1 over RTP (the AOMedia RTP payload format), both ways.
//!
//! A packet is an aggregation header `|Z|Y|W W|N|-|-|-|` and OBU elements,
//! each after its LEB128 length (W 0): Z says the first element continues
//! the previous packet's last, Y that the last one goes on in the next, N
//! that a new coded video sequence starts (a key frame with its sequence
//! header). OBUs travel without their size field and without temporal
//! delimiters, tile lists and padding; the receiving side gives them back
//! their size fields (the low-overhead format of MP4 and FLV samples).

use crate::error::Error;

/// OBU types.
const OBU_SEQUENCE_HEADER: u8 = 1;
const OBU_TEMPORAL_DELIMITER: u8 = 2;
const OBU_TILE_LIST: u8 = 8;
const OBU_PADDING: u8 = 15;

/// Most OBUs a frame or a configuration may hold.
pub const MAX_OBUS: usize = 1024;

/// An OBU as it travels: its header (with the size-field bit cleared) and
/// payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Obu<'a> {
    pub header: &'a [u8],
    pub payload: &'a [u8],
}

impl Obu<'_> {
    pub fn kind(&self) -> u8 {
        (self.header[0] >> 3) & 0x0F
    }

    /// Kept for RTP (not a delimiter, a tile list or padding).
    pub fn travels(&self) -> bool {
        !matches!(
            self.kind(),
            OBU_TEMPORAL_DELIMITER | OBU_TILE_LIST | OBU_PADDING
        )
    }

    pub fn is_sequence_header(&self) -> bool {
        self.kind() == OBU_SEQUENCE_HEADER
    }
}

/// Reads an unsigned LEB128 (at most 8 bytes, value below 2^32).
pub(crate) fn leb128(data: &[u8]) -> Option<(usize, usize)> {
    let mut v: u64 = 0;
    for (i, b) in data.iter().take(8).enumerate() {
        v |= u64::from(b & 0x7F) << (7 * i);
        if b & 0x80 == 0 {
            return (v <= u64::from(u32::MAX)).then_some((v as usize, i + 1));
        }
    }
    None
}

/// Writes `v` as LEB128.
pub(crate) fn put_leb128(mut v: usize, out: &mut Vec<u8>) {
    loop {
        let b = (v & 0x7F) as u8;
        v >>= 7;
        if v == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

/// The length of `v` as LEB128.
pub(crate) fn leb128_len(v: usize) -> usize {
    let bits = usize::BITS - v.leading_zeros();
    (bits.max(1) as usize).div_ceil(7)
}

/// The OBUs of low-overhead bitstream data (each with a size field, or
/// the last one running to the end).
pub(crate) fn obus(data: &[u8]) -> Result<Vec<Obu<'_>>, Error> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < data.len() {
        if out.len() >= MAX_OBUS {
            return Err(Error::TooMany("AV1 OBUs"));
        }
        let h = data[at];
        if h & 0x80 != 0 {
            return Err(Error::Malformed("AV1 OBU header"));
        }
        let hlen = if h & 0x04 != 0 { 2 } else { 1 };
        let header = data
            .get(at..at + hlen)
            .ok_or(Error::Malformed("AV1 OBU header"))?;
        at += hlen;
        let len = if h & 0x02 != 0 {
            let (len, n) = leb128(&data[at..]).ok_or(Error::Malformed("AV1 OBU size"))?;
            at += n;
            len
        } else {
            data.len() - at
        };
        let payload = data
            .get(
                at..at
                    .checked_add(len)
                    .ok_or(Error::Malformed("AV1 OBU size"))?,
            )
            .ok_or(Error::Malformed("AV1 OBU cut short"))?;
        at += len;
        out.push(Obu { header, payload });
    }
    Ok(out)
}

/// The aggregation header bits.
pub(crate) const Z: u8 = 0x80;
pub(crate) const Y: u8 = 0x40;
pub(crate) const N: u8 = 0x08;

/// Splits `obus` into RTP payloads of at most `max` bytes, each starting
/// with its aggregation header; `new_sequence` sets N on the first.
pub(crate) fn packetize(obus: &[Obu<'_>], max: usize, new_sequence: bool, out: &mut Vec<Vec<u8>>) {
    let mut cur: Vec<u8> = vec![if new_sequence { N } else { 0 }];
    for o in obus {
        // The element: the header without its size-field bit, the payload.
        let mut header = [0u8; 2];
        header[..o.header.len()].copy_from_slice(o.header);
        header[0] &= !0x02;
        let header = &header[..o.header.len()];
        let total = header.len() + o.payload.len();
        let mut sent = 0;
        while sent < total {
            let left = total - sent;
            let room = max.saturating_sub(cur.len());
            let take = left.min(room.saturating_sub(leb128_len(room)));
            if take == 0 {
                // No room left here: the element starts in the next packet
                // (`max` is far above a header and a length).
                if cur.len() <= 1 {
                    return;
                }
                out.push(std::mem::replace(&mut cur, vec![0]));
                continue;
            }
            put_leb128(take, &mut cur);
            for i in sent..sent + take {
                cur.push(if i < header.len() {
                    header[i]
                } else {
                    o.payload[i - header.len()]
                });
            }
            sent += take;
            if sent < total {
                // Continues in the next packet.
                cur[0] |= Y;
                out.push(std::mem::replace(&mut cur, vec![Z]));
            }
        }
    }
    if cur.len() > 1 {
        out.push(cur);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obu(kind: u8, payload: &[u8]) -> Vec<u8> {
        let mut v = vec![(kind << 3) | 0x02];
        put_leb128(payload.len(), &mut v);
        v.extend_from_slice(payload);
        v
    }

    #[test]
    fn leb128_round_trips() {
        for v in [0usize, 1, 127, 128, 300, 16_383, 16_384, 1 << 28] {
            let mut b = Vec::new();
            put_leb128(v, &mut b);
            assert_eq!(b.len(), leb128_len(v));
            assert_eq!(leb128(&b), Some((v, b.len())));
        }
        assert_eq!(leb128(&[0x80; 9]), None);
    }

    #[test]
    fn obus_are_read_and_split_into_packets() {
        let mut data = obu(OBU_TEMPORAL_DELIMITER, &[]);
        data.extend(obu(OBU_SEQUENCE_HEADER, &[1, 2, 3]));
        let frame: Vec<u8> = (0..3000u32).map(|i| i as u8).collect();
        data.extend(obu(6, &frame));
        let all = obus(&data).unwrap();
        assert_eq!(all.len(), 3);
        let kept: Vec<_> = all.into_iter().filter(|o| o.travels()).collect();
        assert_eq!(kept.len(), 2);
        let mut packets = Vec::new();
        packetize(&kept, 1200, true, &mut packets);
        assert!(packets.len() >= 3);
        assert!(packets.iter().all(|p| p.len() <= 1200));
        assert_eq!(packets[0][0] & (N | Z), N);
        assert!(packets[0][0] & Y != 0, "the frame OBU goes on");
        assert!(packets[1][0] & Z != 0);
        assert!(packets.last().unwrap()[0] & Y == 0);
        // Reassembled, the elements give the OBUs back (without size fields).
        let mut elems: Vec<Vec<u8>> = Vec::new();
        let mut open = false;
        for p in &packets {
            let mut at = 1;
            let mut first = true;
            while at < p.len() {
                let (len, n) = leb128(&p[at..]).unwrap();
                at += n;
                let e = &p[at..at + len];
                at += len;
                if first && p[0] & Z != 0 && open {
                    elems.last_mut().unwrap().extend_from_slice(e);
                } else {
                    elems.push(e.to_vec());
                }
                first = false;
            }
            open = p[0] & Y != 0;
        }
        assert_eq!(elems.len(), 2);
        assert_eq!(elems[0], [OBU_SEQUENCE_HEADER << 3, 1, 2, 3]);
        assert_eq!(elems[1][0], 6 << 3);
        assert_eq!(&elems[1][1..], &frame[..]);
        assert!(obus(&[0x80]).is_err());
        assert!(obus(&[0x0A, 0x05, 1]).is_err());
    }
}
