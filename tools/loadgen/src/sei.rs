//! The wall-clock stamp the load generator puts in every H.264 frame it
//! publishes: one SEI NAL unit (user data unregistered, payload type 5) with
//! a fixed UUID, the wall-clock time in microseconds and a frame sequence
//! number. Servers pass video payloads through untouched (Rill's frames are
//! zero-copy slices of the NAL units, nginx-rtmp forwards tag bodies), so a
//! player reads back exactly what the publisher wrote and the difference to
//! its own clock is the end-to-end latency. Decoders skip unknown SEI.
//!
//! The payload bytes are chosen so that no `00 00` pair can occur (every
//! number is written 7 bits per byte with the top bit set), so the NAL needs
//! no emulation prevention and stays byte-exact on the wire.

use std::time::{SystemTime, UNIX_EPOCH};

/// 16 bytes, no zero byte.
pub const UUID: &[u8; 16] = b"rill-loadgen-ts!";
/// SEI payload: UUID, 8 bytes of time, 4 bytes of sequence number.
const PAYLOAD_LEN: usize = 16 + 8 + 4;
/// NAL header, payload type, payload size, payload, rbsp trailing bits.
pub const NAL_LEN: usize = 3 + PAYLOAD_LEN + 1;

/// Microseconds since the Unix epoch (the same clock in every process of
/// the machine, so a null server in another process can stamp too).
pub fn wall_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

fn put7(out: &mut [u8], mut v: u64) {
    for b in out.iter_mut().rev() {
        *b = 0x80 | (v & 0x7f) as u8;
        v >>= 7;
    }
}

fn get7(b: &[u8]) -> u64 {
    b.iter()
        .fold(0u64, |acc, &x| (acc << 7) | (x & 0x7f) as u64)
}

/// The SEI NAL unit (without length prefix).
pub fn nal(seq: u32, us: u64) -> [u8; NAL_LEN] {
    let mut n = [0u8; NAL_LEN];
    n[0] = 0x06; // nal_unit_type 6 (SEI), nal_ref_idc 0
    n[1] = 5; // user_data_unregistered
    n[2] = PAYLOAD_LEN as u8;
    n[3..19].copy_from_slice(UUID);
    put7(&mut n[19..27], us);
    put7(&mut n[27..31], seq as u64);
    n[31] = 0x80;
    n
}

/// Whether `body` is a classic FLV AVC coded-frames body (not a sequence
/// header, not Enhanced RTMP).
pub fn is_avc_nalu(body: &[u8]) -> bool {
    body.len() > 5 && body[0] & 0x80 == 0 && body[0] & 0x0f == 7 && body[1] == 1
}

/// Whether `body` is a video key frame (classic or Enhanced RTMP frame type).
pub fn is_video_key(body: &[u8]) -> bool {
    body.first().is_some_and(|b| (b >> 4) & 0x7 == 1)
}

/// Whether `body` is an AVC sequence header; returns the NAL length size.
pub fn avc_config_nal_len(body: &[u8]) -> Option<usize> {
    if body.len() > 9 && body[0] & 0x80 == 0 && body[0] & 0x0f == 7 && body[1] == 0 {
        Some((body[9] & 3) as usize + 1)
    } else {
        None
    }
}

/// Whether the body is a sequence header / decoder config (classic AVC or
/// AAC, or an Enhanced RTMP SequenceStart).
pub fn is_config(kind: u8, body: &[u8]) -> bool {
    match kind {
        9 => {
            if body.first().is_some_and(|b| b & 0x80 != 0) {
                body[0] & 0x0f == 0
            } else {
                body.get(1) == Some(&0) && body[0] & 0x0f >= 7
            }
        }
        8 => body.first().is_some_and(|b| b >> 4 == 10) && body.get(1) == Some(&0),
        _ => false,
    }
}

fn read_len(b: &[u8], n: usize) -> Option<usize> {
    let s = b.get(..n)?;
    Some(s.iter().fold(0usize, |a, &x| (a << 8) | x as usize))
}

/// Where to insert the stamp: after an access unit delimiter, else first.
fn insert_at(body: &[u8], nal_len: usize) -> usize {
    let first = 5;
    if let Some(l) = read_len(&body[first..], nal_len) {
        if body.get(first + nal_len).is_some_and(|h| h & 0x1f == 9) {
            return (first + nal_len + l).min(body.len());
        }
    }
    first
}

/// A copy of the AVC coded-frames `body` with the stamp SEI inserted.
pub fn stamp(body: &[u8], nal_len: usize, seq: u32, us: u64) -> Vec<u8> {
    let at = insert_at(body, nal_len);
    let mut out = Vec::with_capacity(body.len() + nal_len + NAL_LEN);
    out.extend_from_slice(&body[..at]);
    let len = (NAL_LEN as u32).to_be_bytes();
    out.extend_from_slice(&len[4 - nal_len..]);
    out.extend_from_slice(&nal(seq, us));
    out.extend_from_slice(&body[at..]);
    out
}

/// Finds the stamp in the first bytes of an AVC coded-frames body (the stamp
/// is among the first two NAL units, so 64 bytes are enough). Returns
/// (sequence number, wall-clock µs).
pub fn find(prefix: &[u8], nal_len: usize) -> Option<(u32, u64)> {
    if !is_avc_nalu(prefix) {
        return None;
    }
    let mut pos = 5;
    for _ in 0..2 {
        let l = read_len(&prefix[pos..], nal_len)?;
        let n = prefix.get(pos + nal_len..)?;
        if l == NAL_LEN && n.len() >= NAL_LEN - 1 && n[0] == 0x06 && n[1] == 5 {
            if &n[3..19] == UUID {
                return Some((get7(&n[27..31]) as u32, get7(&n[19..27])));
            }
            return None;
        }
        if n.first().is_some_and(|h| h & 0x1f != 9) {
            return None;
        }
        pos += nal_len + l;
    }
    None
}

/// Finds the stamp in a length-prefixed (AVCC) H.264 sample, as fMP4
/// carries it and as the TS demuxer delivers it: the stamp is among the
/// NAL units before the first slice (after an access unit delimiter,
/// parameter sets or other SEI). Returns (sequence number, wall-clock µs).
pub fn find_avcc(sample: &[u8], nal_len: usize) -> Option<(u32, u64)> {
    if !(1..=4).contains(&nal_len) {
        return None;
    }
    let mut pos = 0;
    for _ in 0..8 {
        let l = read_len(sample.get(pos..)?, nal_len)?;
        let n = sample.get(pos + nal_len..)?;
        let n = n.get(..l.min(n.len()))?;
        match n.first()? & 0x1f {
            // Slices: the stamp comes before them.
            1..=5 => return None,
            6 if l == NAL_LEN && n.len() == NAL_LEN && n[1] == 5 && &n[3..19] == UUID => {
                return Some((get7(&n[27..31]) as u32, get7(&n[19..27])));
            }
            _ => {}
        }
        pos += nal_len + l;
    }
    None
}

/// The next start code (`00 00 01`, or `00 00 00 01`) at or after `from`:
/// (where the NAL unit before it ends, where the next one begins).
fn next_start_code(b: &[u8], from: usize) -> Option<(usize, usize)> {
    let mut i = from;
    while i + 3 <= b.len() {
        // Skip ahead by what cannot start a code.
        if b[i + 2] > 1 {
            i += 3;
        } else if b[i] == 0 && b[i + 1] == 0 && b[i + 2] == 1 {
            let end = if i > from && b[i - 1] == 0 { i - 1 } else { i };
            return Some((end, i + 3));
        } else {
            i += 1;
        }
    }
    None
}

/// What an Annex-B H.264 access unit (start codes, as WebRTC stacks
/// depacketize it) says before its first slice: the stamp (sequence
/// number, wall-clock µs) when there, and whether that slice is IDR (a
/// key frame). Reads only the NAL units before the first slice (parameter
/// sets, delimiter, SEI; at most 16 of them) and allocates nothing.
pub fn find_annexb(au: &[u8]) -> (Option<(u32, u64)>, bool) {
    let mut stamp = None;
    let Some((_, mut pos)) = next_start_code(au, 0) else {
        return (None, false);
    };
    for _ in 0..16 {
        let Some(&h) = au.get(pos) else {
            break;
        };
        let t = h & 0x1f;
        if (1..=5).contains(&t) {
            return (stamp, t == 5);
        }
        let next = next_start_code(au, pos);
        let end = next.map_or(au.len(), |(e, _)| e);
        let n = &au[pos..end];
        if t == 6 && stamp.is_none() && n.len() >= NAL_LEN - 1 && n[1] == 5 && &n[3..19] == UUID {
            stamp = Some((get7(&n[27..31]) as u32, get7(&n[19..27])));
        }
        match next {
            Some((_, p)) => pos = p,
            None => break,
        }
    }
    (stamp, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_without_zero_pairs() {
        let body = [0x27, 1, 0, 0, 0, 0, 0, 0, 3, 0x41, 0x9a, 0x00];
        let us = 1_700_000_000_123_456;
        let s = stamp(&body, 4, 77, us);
        assert_eq!(find(&s, 4), Some((77, us)));
        let n = nal(0, 0);
        assert!(n.windows(2).all(|w| w != [0, 0]));
        // After an AUD.
        let aud = [0x17, 1, 0, 0, 0, 0, 0, 0, 2, 0x09, 0xf0, 0, 0, 0, 1, 0x65];
        let s = stamp(&aud, 4, 5, us);
        assert_eq!(&s[5..11], &aud[5..11]);
        assert_eq!(find(&s, 4), Some((5, us)));
        assert_eq!(find(&body, 4), None);
    }

    #[test]
    fn found_in_avcc_samples() {
        let us = 1_700_000_000_654_321;
        // AUD, SPS, stamp, slice: as an fMP4 sample or a demuxed TS frame.
        let mut s = vec![0, 0, 0, 2, 0x09, 0xf0, 0, 0, 0, 3, 0x67, 1, 2];
        s.extend_from_slice(&(NAL_LEN as u32).to_be_bytes());
        s.extend_from_slice(&nal(9, us));
        s.extend_from_slice(&[0, 0, 0, 2, 0x65, 0x88]);
        assert_eq!(find_avcc(&s, 4), Some((9, us)));
        // Two-byte lengths.
        let mut t = (NAL_LEN as u16).to_be_bytes().to_vec();
        t.extend_from_slice(&nal(1, us));
        assert_eq!(find_avcc(&t, 2), Some((1, us)));
        // A slice first, another SEI, truncated input: nothing.
        assert_eq!(find_avcc(&[0, 0, 0, 2, 0x41, 0x9a], 4), None);
        assert_eq!(find_avcc(&s[..20], 4), None);
        let mut other = nal(3, us);
        other[3] = b'x';
        let mut u = (NAL_LEN as u32).to_be_bytes().to_vec();
        u.extend_from_slice(&other);
        assert_eq!(find_avcc(&u, 4), None);
    }

    #[test]
    fn found_in_annexb_access_units() {
        let us = 1_700_000_000_111_222;
        let sc4 = [0u8, 0, 0, 1];
        // SPS, PPS, stamp, IDR slice, as str0m depacketizes a key frame.
        let mut au = Vec::new();
        for n in [&[0x67u8, 0x42, 0, 0x1f][..], &[0x68, 0xce, 0x3c, 0x80]] {
            au.extend_from_slice(&sc4);
            au.extend_from_slice(n);
        }
        au.extend_from_slice(&sc4);
        au.extend_from_slice(&nal(42, us));
        au.extend_from_slice(&[0, 0, 1, 0x65, 0x88, 0x84, 0, 0, 0, 1, 0x65, 0x11]);
        assert_eq!(find_annexb(&au), (Some((42, us)), true));
        // AUD, stamp, non-IDR slice with three-byte start codes.
        let mut p = vec![0, 0, 1, 0x09, 0xf0, 0, 0, 1];
        p.extend_from_slice(&nal(43, us + 33_000));
        p.extend_from_slice(&[0, 0, 1, 0x41, 0x9a, 0x00, 0x00, 0x03]);
        assert_eq!(find_annexb(&p), (Some((43, us + 33_000)), false));
        // No stamp; a key frame still says so.
        assert_eq!(find_annexb(&[0, 0, 0, 1, 0x65, 0x88]), (None, true));
        // Another SEI, a truncated stamp, no start code, nothing at all.
        let mut other = sc4.to_vec();
        let mut n = nal(1, us);
        n[5] = b'x';
        other.extend_from_slice(&n);
        other.extend_from_slice(&[0, 0, 0, 1, 0x41, 0]);
        assert_eq!(find_annexb(&other), (None, false));
        assert_eq!(find_annexb(&au[..40]), (None, false));
        assert_eq!(find_annexb(&[0x65, 0x88, 0x84]), (None, false));
        assert_eq!(find_annexb(&[]), (None, false));
    }
}
