//! The 188-byte transport packet: header, adaptation field, and the
//! writers the muxer builds packets with (always whole packets, assembled
//! on the stack and appended to the caller's buffer in one piece).

use bytes::BufMut;

use crate::error::Error;

/// Size of a transport packet.
pub const PACKET_SIZE: usize = 188;
/// The sync byte every packet starts with.
pub const SYNC_BYTE: u8 = 0x47;
/// PID of the Program Association Table.
pub const PAT_PID: u16 = 0x0000;
/// PID of null (padding) packets.
pub const NULL_PID: u16 = 0x1FFF;
/// Largest payload of a packet (no adaptation field).
pub const MAX_PAYLOAD: usize = PACKET_SIZE - 4;

/// What a packet's header and adaptation field say, and where its payload is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PacketInfo {
    /// transport_error_indicator.
    pub transport_error: bool,
    /// payload_unit_start_indicator.
    pub unit_start: bool,
    /// The PID.
    pub pid: u16,
    /// transport_scrambling_control (0: not scrambled).
    pub scrambling: u8,
    /// continuity_counter.
    pub cc: u8,
    /// Whether the packet carries a payload (adaptation_field_control 01/11).
    pub has_payload: bool,
    /// discontinuity_indicator of the adaptation field.
    pub discontinuity: bool,
    /// random_access_indicator of the adaptation field.
    pub random_access: bool,
    /// The PCR, in 27 MHz units (base × 300 + extension), when present.
    pub pcr: Option<u64>,
    /// Offset of the payload in the packet (188 when there is none).
    pub payload_start: usize,
}

/// Parses a packet's header and adaptation field. `pkt` must start with
/// the sync byte and be 188 bytes long.
pub fn parse(pkt: &[u8]) -> Result<PacketInfo, Error> {
    if pkt.len() != PACKET_SIZE {
        return Err(Error::Truncated("transport packet"));
    }
    if pkt[0] != SYNC_BYTE {
        return Err(Error::Malformed("sync byte"));
    }
    let afc = (pkt[3] >> 4) & 3;
    let mut info = PacketInfo {
        transport_error: pkt[1] & 0x80 != 0,
        unit_start: pkt[1] & 0x40 != 0,
        pid: u16::from_be_bytes([pkt[1] & 0x1F, pkt[2]]),
        scrambling: pkt[3] >> 6,
        cc: pkt[3] & 0x0F,
        has_payload: afc & 1 != 0,
        discontinuity: false,
        random_access: false,
        pcr: None,
        payload_start: 4,
    };
    if afc == 0 {
        // Reserved: a decoder discards the packet.
        return Err(Error::Malformed("adaptation_field_control 00"));
    }
    if afc & 2 != 0 {
        let len = pkt[4] as usize;
        // With a payload the field may take at most 183 bytes minus one
        // payload byte; without one it must fill the packet (183).
        let max = if info.has_payload { 182 } else { 183 };
        if len > max {
            return Err(Error::Malformed("adaptation field length"));
        }
        if len > 0 {
            let flags = pkt[5];
            info.discontinuity = flags & 0x80 != 0;
            info.random_access = flags & 0x40 != 0;
            if flags & 0x10 != 0 && len >= 7 {
                let b = &pkt[6..12];
                let base = ((b[0] as u64) << 25)
                    | ((b[1] as u64) << 17)
                    | ((b[2] as u64) << 9)
                    | ((b[3] as u64) << 1)
                    | (b[4] as u64 >> 7);
                let ext = (((b[4] & 1) as u64) << 8) | b[5] as u64;
                info.pcr = Some(base * 300 + ext);
            }
        }
        info.payload_start = 5 + len;
    }
    if !info.has_payload {
        info.payload_start = PACKET_SIZE;
    }
    Ok(info)
}

/// The 4-byte header of a packet.
pub(crate) fn header(
    pid: u16,
    unit_start: bool,
    has_af: bool,
    has_payload: bool,
    cc: u8,
) -> [u8; 4] {
    let afc = ((has_af as u8) << 1) | has_payload as u8;
    [
        SYNC_BYTE,
        ((unit_start as u8) << 6) | ((pid >> 8) as u8 & 0x1F),
        pid as u8,
        (afc << 4) | (cc & 0x0F),
    ]
}

/// The adaptation field content a packet asks for (beyond stuffing).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct AfFlags {
    /// PCR as (33-bit base, 9-bit extension).
    pub pcr: Option<(u64, u16)>,
    pub random_access: bool,
    pub discontinuity: bool,
}

impl AfFlags {
    /// Bytes the field needs, including its length byte, before stuffing.
    pub fn len(&self) -> usize {
        if self.pcr.is_some() {
            8
        } else if self.random_access || self.discontinuity {
            2
        } else {
            0
        }
    }
}

/// Writes an adaptation field of exactly `total` bytes (length byte
/// included; `total >= flags.len()`, `1..=184`) at the start of `dst`.
pub(crate) fn write_af(dst: &mut [u8], flags: &AfFlags, total: usize) {
    debug_assert!(total >= flags.len() && (1..=184).contains(&total));
    dst[0] = (total - 1) as u8;
    if total == 1 {
        return;
    }
    let mut f = 0u8;
    if flags.discontinuity {
        f |= 0x80;
    }
    if flags.random_access {
        f |= 0x40;
    }
    let mut i = 2;
    if let Some((base, ext)) = flags.pcr {
        f |= 0x10;
        dst[2] = (base >> 25) as u8;
        dst[3] = (base >> 17) as u8;
        dst[4] = (base >> 9) as u8;
        dst[5] = (base >> 1) as u8;
        dst[6] = ((base as u8 & 1) << 7) | 0x7E | ((ext >> 8) as u8 & 1);
        dst[7] = ext as u8;
        i = 8;
    }
    dst[1] = f;
    dst[i..total].fill(0xFF);
}

/// A packet with an adaptation field and no payload (a PCR-only packet);
/// the continuity counter does not advance for it.
pub(crate) fn write_af_only(out: &mut impl BufMut, pid: u16, cc: u8, flags: &AfFlags) {
    let mut pkt = [0u8; PACKET_SIZE];
    pkt[..4].copy_from_slice(&header(pid, false, true, false, cc));
    write_af(&mut pkt[4..], flags, MAX_PAYLOAD);
    out.put_slice(&pkt);
}

/// Cuts a PES (or any payload unit) into packets as its pieces arrive:
/// the first packet gets `unit_start` and the caller's adaptation field
/// flags; the last is padded with adaptation-field stuffing so that the
/// payload ends exactly at the end of a packet. The total length must be
/// known up front and must equal the bytes pushed.
pub(crate) struct Packetizer<'a, B: BufMut> {
    out: &'a mut B,
    pid: u16,
    cc: &'a mut u8,
    remaining: usize,
    first: Option<AfFlags>,
    pkt: [u8; PACKET_SIZE],
    pos: usize,
}

impl<'a, B: BufMut> Packetizer<'a, B> {
    pub fn new(out: &'a mut B, pid: u16, cc: &'a mut u8, total: usize, first: AfFlags) -> Self {
        Packetizer {
            out,
            pid,
            cc,
            remaining: total,
            first: Some(first),
            pkt: [0; PACKET_SIZE],
            pos: 0,
        }
    }

    fn begin_packet(&mut self) {
        let unit_start = self.first.is_some();
        let flags = self.first.take().unwrap_or_default();
        let base = flags.len();
        let capacity = MAX_PAYLOAD - base;
        let af_len = if self.remaining < capacity {
            MAX_PAYLOAD - self.remaining
        } else {
            base
        };
        *self.cc = (*self.cc + 1) & 0x0F;
        self.pkt[..4].copy_from_slice(&header(self.pid, unit_start, af_len > 0, true, *self.cc));
        if af_len > 0 {
            write_af(&mut self.pkt[4..], &flags, af_len);
        }
        self.pos = 4 + af_len;
    }

    /// Appends payload bytes.
    pub fn push(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            if self.pos == 0 {
                self.begin_packet();
            }
            let n = (PACKET_SIZE - self.pos).min(data.len()).min(self.remaining);
            if n == 0 {
                // More bytes than announced: a bug in the caller; never
                // write a malformed packet.
                debug_assert!(false, "packetizer overrun");
                return;
            }
            self.pkt[self.pos..self.pos + n].copy_from_slice(&data[..n]);
            self.pos += n;
            self.remaining -= n;
            data = &data[n..];
            if self.pos == PACKET_SIZE {
                self.out.put_slice(&self.pkt);
                self.pos = 0;
            }
        }
    }

    /// Checks that every announced byte was pushed.
    pub fn finish(self) {
        debug_assert!(self.remaining == 0 && self.pos == 0, "packetizer underrun");
    }
}

/// CRC-32/MPEG-2 (polynomial 0x04C11DB7, initial value all ones, no
/// reflection, no final xor), as PSI sections carry.
pub fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in data {
        crc = (crc << 8) ^ CRC_TABLE[((crc >> 24) as u8 ^ b) as usize];
    }
    crc
}

const CRC_TABLE: [u32; 256] = {
    let mut t = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = (i as u32) << 24;
        let mut k = 0;
        while k < 8 {
            c = if c & 0x8000_0000 != 0 {
                (c << 1) ^ 0x04C1_1DB7
            } else {
                c << 1
            };
            k += 1;
        }
        t[i] = c;
        i += 1;
    }
    t
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc_matches_known_value() {
        // CRC-32/MPEG-2 check value.
        assert_eq!(crc32(b"123456789"), 0x0376_E6E7);
    }

    #[test]
    fn packetizer_stuffs_the_last_packet() {
        for total in [1usize, 2, 175, 176, 177, 182, 183, 184, 185, 368, 369, 1000] {
            for flags in [
                AfFlags::default(),
                AfFlags {
                    random_access: true,
                    ..Default::default()
                },
                AfFlags {
                    pcr: Some((0x1_2345_6789, 299)),
                    random_access: true,
                    discontinuity: false,
                },
            ] {
                let mut out = Vec::new();
                let mut cc = 15;
                let data: Vec<u8> = (0..total).map(|i| i as u8).collect();
                let mut p = Packetizer::new(&mut out, 0x100, &mut cc, total, flags);
                p.push(&data[..total / 2]);
                p.push(&data[total / 2..]);
                p.finish();
                assert_eq!(out.len() % PACKET_SIZE, 0);
                let mut payload = Vec::new();
                for (i, pkt) in out.chunks(PACKET_SIZE).enumerate() {
                    let info = parse(pkt).unwrap();
                    assert_eq!(info.pid, 0x100);
                    assert_eq!(info.unit_start, i == 0);
                    assert_eq!(info.cc, i as u8 & 15);
                    if i == 0 {
                        assert_eq!(info.random_access, flags.random_access);
                        assert_eq!(info.pcr, flags.pcr.map(|(b, e)| b * 300 + e as u64));
                    }
                    payload.extend_from_slice(&pkt[info.payload_start..]);
                }
                assert_eq!(payload, data, "total {total}");
            }
        }
    }

    #[test]
    fn af_only_packet_parses() {
        let mut out = Vec::new();
        let flags = AfFlags {
            pcr: Some((12345, 7)),
            ..Default::default()
        };
        write_af_only(&mut out, 0x101, 3, &flags);
        let info = parse(&out).unwrap();
        assert!(!info.has_payload);
        assert_eq!(info.cc, 3);
        assert_eq!(info.pcr, Some(12345 * 300 + 7));
    }
}
