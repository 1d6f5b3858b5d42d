//! PES (packetized elementary stream) headers: writing them with PTS/DTS,
//! and reading them back.

use crate::error::Error;

/// stream_id of the first video stream (0xE0..=0xEF).
pub const STREAM_ID_VIDEO: u8 = 0xE0;
/// stream_id of the first MPEG audio stream (0xC0..=0xDF).
pub const STREAM_ID_AUDIO: u8 = 0xC0;
/// stream_id private_stream_1 (Opus, AC-3, ...).
pub const STREAM_ID_PRIVATE_1: u8 = 0xBD;

/// Largest PES header this module writes: 9 bytes plus PTS and DTS.
pub const MAX_HEADER: usize = 19;

/// A PES header with PTS (and DTS when it differs) for `payload_len` bytes
/// of payload. Timestamps are 33-bit 90 kHz values. The packet length
/// field is 0 ("unbounded", which the standard allows for video only)
/// when the PES is too long for its 16 bits.
pub fn write_header(
    stream_id: u8,
    pts: u64,
    dts: Option<u64>,
    payload_len: usize,
    out: &mut [u8; MAX_HEADER],
) -> usize {
    let dts = dts.filter(|&d| d != pts);
    let hdr_data = if dts.is_some() { 10 } else { 5 };
    let pes_len = 3 + hdr_data + payload_len;
    let len_field = if pes_len > 0xFFFF { 0 } else { pes_len as u16 };
    out[..4].copy_from_slice(&[0, 0, 1, stream_id]);
    out[4..6].copy_from_slice(&len_field.to_be_bytes());
    // '10', not scrambled, no priority, data_alignment_indicator, not
    // copyrighted, original.
    out[6] = 0x84;
    out[7] = if dts.is_some() { 0xC0 } else { 0x80 };
    out[8] = hdr_data as u8;
    match dts {
        Some(d) => {
            write_ts(&mut out[9..14], 0x3, pts);
            write_ts(&mut out[14..19], 0x1, d);
            19
        }
        None => {
            write_ts(&mut out[9..14], 0x2, pts);
            14
        }
    }
}

fn write_ts(dst: &mut [u8], prefix: u8, ts: u64) {
    dst[0] = (prefix << 4) | (((ts >> 30) as u8 & 0x07) << 1) | 1;
    let mid = (((ts >> 15) & 0x7FFF) << 1) as u16 | 1;
    dst[1..3].copy_from_slice(&mid.to_be_bytes());
    let low = ((ts & 0x7FFF) << 1) as u16 | 1;
    dst[3..5].copy_from_slice(&low.to_be_bytes());
}

fn read_ts(b: &[u8]) -> Result<u64, Error> {
    // Marker bits are not checked: some muxers get them wrong and every
    // decoder ignores them.
    if b.len() < 5 {
        return Err(Error::Truncated("PES timestamp"));
    }
    Ok((((b[0] >> 1) & 0x07) as u64) << 30
        | ((u16::from_be_bytes([b[1], b[2]]) >> 1) as u64) << 15
        | (u16::from_be_bytes([b[3], b[4]]) >> 1) as u64)
}

/// What a PES header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PesHeader {
    /// stream_id.
    pub stream_id: u8,
    /// PES_packet_length (0: unbounded).
    pub packet_length: u16,
    /// PTS, 33 bits.
    pub pts: Option<u64>,
    /// DTS, 33 bits (only with a PTS).
    pub dts: Option<u64>,
    /// Offset of the elementary stream data in the PES.
    pub payload_start: usize,
}

/// Whether a stream_id has the optional PES header (flags, PTS, ...).
fn has_optional_header(stream_id: u8) -> bool {
    !matches!(
        stream_id,
        0xBC | 0xBE | 0xBF | 0xF0 | 0xF1 | 0xF2 | 0xF8 | 0xFF
    )
}

/// Parses the header at the start of a whole PES.
pub fn parse_header(pes: &[u8]) -> Result<PesHeader, Error> {
    if pes.len() < 6 {
        return Err(Error::Truncated("PES header"));
    }
    if pes[..3] != [0, 0, 1] {
        return Err(Error::Malformed("PES start code"));
    }
    let mut h = PesHeader {
        stream_id: pes[3],
        packet_length: u16::from_be_bytes([pes[4], pes[5]]),
        pts: None,
        dts: None,
        payload_start: 6,
    };
    if !has_optional_header(h.stream_id) {
        return Ok(h);
    }
    if pes.len() < 9 {
        return Err(Error::Truncated("PES header"));
    }
    if pes[6] >> 6 != 0b10 {
        return Err(Error::Malformed("PES header marker"));
    }
    let flags = pes[7] >> 6;
    let hdr_len = pes[8] as usize;
    let end = 9 + hdr_len;
    if pes.len() < end {
        return Err(Error::Truncated("PES header"));
    }
    let opt = &pes[9..end];
    match flags {
        0b10 => h.pts = Some(read_ts(opt)?),
        0b11 => {
            h.pts = Some(read_ts(opt)?);
            h.dts = Some(read_ts(opt.get(5..).unwrap_or(&[]))?);
        }
        0b01 => return Err(Error::Malformed("PES PTS_DTS_flags 01")),
        _ => {}
    }
    h.payload_start = end;
    Ok(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips() {
        let mut buf = [0u8; MAX_HEADER];
        for (pts, dts) in [
            (0u64, None),
            ((1 << 33) - 1, Some(5u64)),
            (123_456_789, Some(123_456_789)),
            (90_000, Some(86_400)),
        ] {
            let n = write_header(STREAM_ID_VIDEO, pts, dts, 1000, &mut buf);
            let h = parse_header(&buf[..n]).unwrap();
            assert_eq!(h.pts, Some(pts));
            assert_eq!(h.dts, dts.filter(|&d| d != pts));
            assert_eq!(h.payload_start, n);
            assert_eq!(h.packet_length as usize, n - 6 + 1000);
        }
        let n = write_header(STREAM_ID_VIDEO, 1, None, 70_000, &mut buf);
        assert_eq!(parse_header(&buf[..n]).unwrap().packet_length, 0);
    }

    #[test]
    fn bad_headers_are_errors() {
        assert!(parse_header(&[0, 0, 2, 0xE0, 0, 0, 0x80, 0, 0]).is_err());
        assert!(parse_header(&[0, 0, 1, 0xE0, 0, 0, 0x80, 0x80, 5, 0x21]).is_err());
        assert!(parse_header(&[0, 0, 1, 0xE0]).is_err());
        // Padding stream: no optional header.
        assert_eq!(
            parse_header(&[0, 0, 1, 0xBE, 0, 2, 0xFF, 0xFF])
                .unwrap()
                .payload_start,
            6
        );
    }
}
