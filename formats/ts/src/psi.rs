//! PSI: the Program Association Table and Program Map Table, written as
//! single-packet sections and read back from sections of any split.

use bytes::BufMut;

use crate::error::Error;
use crate::packet::{crc32, header, PACKET_SIZE};

/// table_id of the PAT.
pub const TABLE_PAT: u8 = 0x00;
/// table_id of the PMT.
pub const TABLE_PMT: u8 = 0x02;
/// Largest PSI section (table_id through CRC) of the PAT and PMT.
pub const MAX_SECTION: usize = 1024;

/// stream_type values this crate knows.
pub mod stream_type {
    /// ISO/IEC 11172-3 audio (MPEG-1 layers I–III, so MP3).
    pub const MPEG1_AUDIO: u8 = 0x03;
    /// ISO/IEC 13818-3 audio (MPEG-2 half rates, layers I–III).
    pub const MPEG2_AUDIO: u8 = 0x04;
    /// PES packets with private data (Opus, with its registration descriptor).
    pub const PRIVATE_PES: u8 = 0x06;
    /// AAC in ADTS.
    pub const AAC_ADTS: u8 = 0x0F;
    /// H.264 / AVC (Annex-B).
    pub const H264: u8 = 0x1B;
    /// H.265 / HEVC (Annex-B).
    pub const H265: u8 = 0x24;
}

/// Descriptor tags used here.
pub mod descriptor {
    /// registration_descriptor (format_identifier follows).
    pub const REGISTRATION: u8 = 0x05;
    /// DVB extension_descriptor.
    pub const DVB_EXTENSION: u8 = 0x7F;
    /// The descriptor_tag_extension of Opus's audio descriptor.
    pub const OPUS_EXTENSION: u8 = 0x80;
}

/// A complete section: table_id, the section_syntax fields, `body`, and the
/// CRC. `id_ext` is transport_stream_id (PAT) or program_number (PMT).
pub(crate) fn build_section(table_id: u8, id_ext: u16, version: u8, body: &[u8]) -> Vec<u8> {
    let section_length = 5 + body.len() + 4;
    let mut s = Vec::with_capacity(3 + section_length);
    s.push(table_id);
    // section_syntax_indicator, '0', reserved '11', length.
    s.put_u16(0xB000 | section_length as u16);
    s.put_u16(id_ext);
    s.push(0xC1 | ((version & 0x1F) << 1)); // reserved, version, current_next
    s.push(0); // section_number
    s.push(0); // last_section_number
    s.extend_from_slice(body);
    let crc = crc32(&s);
    s.put_u32(crc);
    s
}

/// A PAT with one program.
pub(crate) fn build_pat(transport_stream_id: u16, program_number: u16, pmt_pid: u16) -> Vec<u8> {
    let mut body = [0u8; 4];
    body[..2].copy_from_slice(&program_number.to_be_bytes());
    body[2..].copy_from_slice(&(0xE000 | pmt_pid).to_be_bytes());
    build_section(TABLE_PAT, transport_stream_id, 0, &body)
}

/// One elementary stream of a PMT to write.
pub(crate) struct EsEntry<'a> {
    pub stream_type: u8,
    pub pid: u16,
    pub descriptors: &'a [u8],
}

/// A PMT.
pub(crate) fn build_pmt(
    program_number: u16,
    version: u8,
    pcr_pid: u16,
    streams: &[EsEntry<'_>],
) -> Vec<u8> {
    let mut body = Vec::with_capacity(4 + streams.len() * 16);
    body.put_u16(0xE000 | pcr_pid);
    body.put_u16(0xF000); // program_info_length 0
    for es in streams {
        body.push(es.stream_type);
        body.put_u16(0xE000 | es.pid);
        body.put_u16(0xF000 | es.descriptors.len() as u16);
        body.extend_from_slice(es.descriptors);
    }
    build_section(TABLE_PMT, program_number, version, &body)
}

/// One packet carrying a whole section (at most 183 bytes) after a zero
/// pointer_field, padded with 0xFF.
pub(crate) fn write_section_packet(out: &mut impl BufMut, pid: u16, cc: &mut u8, section: &[u8]) {
    debug_assert!(section.len() <= PACKET_SIZE - 5);
    *cc = (*cc + 1) & 0x0F;
    let mut pkt = [0xFFu8; PACKET_SIZE];
    pkt[..4].copy_from_slice(&header(pid, true, false, true, *cc));
    pkt[4] = 0;
    let n = section.len().min(PACKET_SIZE - 5);
    pkt[5..5 + n].copy_from_slice(&section[..n]);
    out.put_slice(&pkt);
}

/// The common header of a long-form section, checked (syntax indicator,
/// CRC, current_next_indicator).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SectionHeader {
    /// table_id.
    pub table_id: u8,
    /// table_id_extension (transport_stream_id, program_number, ...).
    pub id_ext: u16,
    /// version_number.
    pub version: u8,
    /// current_next_indicator: false means "not yet in force".
    pub current: bool,
}

/// Checks a whole section and returns its header and body (between the
/// header and the CRC).
pub fn parse_section(section: &[u8]) -> Result<(SectionHeader, &[u8]), Error> {
    if section.len() < 12 {
        return Err(Error::Truncated("PSI section"));
    }
    let len = (u16::from_be_bytes([section[1], section[2]]) & 0x0FFF) as usize;
    if section.len() != 3 + len {
        return Err(Error::Malformed("PSI section_length"));
    }
    if section[1] & 0x80 == 0 {
        return Err(Error::Malformed("PSI section_syntax_indicator"));
    }
    if crc32(section) != 0 {
        return Err(Error::Crc);
    }
    let h = SectionHeader {
        table_id: section[0],
        id_ext: u16::from_be_bytes([section[3], section[4]]),
        version: (section[5] >> 1) & 0x1F,
        current: section[5] & 1 != 0,
    };
    Ok((h, &section[8..section.len() - 4]))
}

/// The programs of a PAT body: (program_number, PID); number 0 is the NIT.
pub fn pat_programs(body: &[u8]) -> impl Iterator<Item = (u16, u16)> + '_ {
    body.chunks_exact(4).map(|c| {
        (
            u16::from_be_bytes([c[0], c[1]]),
            u16::from_be_bytes([c[2] & 0x1F, c[3]]),
        )
    })
}

/// One elementary stream of a PMT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PmtStream<'a> {
    /// stream_type.
    pub stream_type: u8,
    /// elementary_PID.
    pub pid: u16,
    /// The ES_info descriptors, raw.
    pub descriptors: &'a [u8],
}

/// What a PMT body says: the PCR PID and the streams (at most `max`; more
/// is [`Error::TooManyTracks`] with the first `max` kept).
pub fn parse_pmt(
    body: &[u8],
    max: usize,
) -> Result<(u16, Vec<PmtStream<'_>>, Option<Error>), Error> {
    if body.len() < 4 {
        return Err(Error::Truncated("PMT"));
    }
    let pcr_pid = u16::from_be_bytes([body[0] & 0x1F, body[1]]);
    let info_len = (u16::from_be_bytes([body[2], body[3]]) & 0x0FFF) as usize;
    let mut rest = body
        .get(4 + info_len..)
        .ok_or(Error::Truncated("PMT program_info"))?;
    let mut streams = Vec::new();
    let mut warning = None;
    while !rest.is_empty() {
        if rest.len() < 5 {
            return Err(Error::Truncated("PMT stream entry"));
        }
        let es_len = (u16::from_be_bytes([rest[3], rest[4]]) & 0x0FFF) as usize;
        let descriptors = rest
            .get(5..5 + es_len)
            .ok_or(Error::Truncated("PMT ES_info"))?;
        let s = PmtStream {
            stream_type: rest[0],
            pid: u16::from_be_bytes([rest[1] & 0x1F, rest[2]]),
            descriptors,
        };
        rest = &rest[5 + es_len..];
        if streams.len() >= max {
            warning = Some(Error::TooManyTracks(max));
            continue;
        }
        streams.push(s);
    }
    Ok((pcr_pid, streams, warning))
}

/// The descriptors of a loop as (tag, content); stops at a malformed one.
pub fn descriptors(mut data: &[u8]) -> impl Iterator<Item = (u8, &[u8])> {
    std::iter::from_fn(move || {
        if data.len() < 2 {
            return None;
        }
        let len = data[1] as usize;
        let body = data.get(2..2 + len)?;
        let tag = data[0];
        data = &data[2 + len..];
        Some((tag, body))
    })
}

/// Reassembles PSI sections from the payloads of one PID's packets: a
/// section may span packets and a packet may hold several (or the end of
/// one and the start of the next). Never holds more than [`MAX_SECTION`]
/// bytes.
#[derive(Debug, Default)]
pub struct SectionReader {
    buf: Vec<u8>,
    active: bool,
}

impl SectionReader {
    /// A reader waiting for a packet with payload_unit_start_indicator.
    pub fn new() -> Self {
        SectionReader::default()
    }

    /// Forgets a partial section (after lost packets).
    pub fn reset(&mut self) {
        self.buf.clear();
        self.active = false;
    }

    /// Feeds one packet's payload; complete sections are handed to
    /// `section`, errors (a bad pointer_field, an oversized section) to
    /// the return value after the sections that were complete.
    pub fn push(
        &mut self,
        payload: &[u8],
        unit_start: bool,
        mut section: impl FnMut(&[u8]),
    ) -> Result<(), Error> {
        let mut err = None;
        if unit_start {
            let Some((&pointer, rest)) = payload.split_first() else {
                self.reset();
                return Err(Error::Truncated("PSI pointer_field"));
            };
            let pointer = pointer as usize;
            if pointer > rest.len() {
                self.reset();
                return Err(Error::Malformed("PSI pointer_field"));
            }
            if self.active {
                self.buf.extend_from_slice(&rest[..pointer]);
                if let Err(e) = self.drain(&mut section) {
                    err = Some(e);
                }
            }
            self.buf.clear();
            self.buf.extend_from_slice(&rest[pointer..]);
            self.active = true;
        } else if self.active {
            self.buf.extend_from_slice(payload);
        } else {
            return Ok(());
        }
        if let Err(e) = self.drain(&mut section) {
            err = Some(e);
        }
        err.map_or(Ok(()), Err)
    }

    fn drain(&mut self, section: &mut impl FnMut(&[u8])) -> Result<(), Error> {
        let mut start = 0;
        let result = loop {
            let rest = &self.buf[start..];
            if rest.is_empty() || rest[0] == 0xFF {
                // Stuffing: nothing more in this unit.
                self.active = false;
                start = self.buf.len();
                break Ok(());
            }
            if rest.len() < 3 {
                break Ok(());
            }
            let total = 3 + (u16::from_be_bytes([rest[1], rest[2]]) & 0x0FFF) as usize;
            if total > MAX_SECTION {
                self.active = false;
                start = self.buf.len();
                break Err(Error::Malformed("PSI section_length"));
            }
            if rest.len() < total {
                break Ok(());
            }
            section(&rest[..total]);
            start += total;
        };
        self.buf.drain(..start);
        if self.buf.len() > MAX_SECTION {
            self.reset();
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pat_and_pmt_round_trip() {
        let pat = build_pat(1, 1, 0x1000);
        let (h, body) = parse_section(&pat).unwrap();
        assert_eq!((h.table_id, h.id_ext, h.current), (TABLE_PAT, 1, true));
        assert_eq!(pat_programs(body).collect::<Vec<_>>(), vec![(1, 0x1000)]);

        let desc = [5, 4, b'O', b'p', b'u', b's'];
        let pmt = build_pmt(
            1,
            3,
            0x100,
            &[
                EsEntry {
                    stream_type: stream_type::H264,
                    pid: 0x100,
                    descriptors: &[],
                },
                EsEntry {
                    stream_type: stream_type::PRIVATE_PES,
                    pid: 0x101,
                    descriptors: &desc,
                },
            ],
        );
        let (h, body) = parse_section(&pmt).unwrap();
        assert_eq!((h.table_id, h.version), (TABLE_PMT, 3));
        let (pcr, streams, warn) = parse_pmt(body, 16).unwrap();
        assert_eq!(pcr, 0x100);
        assert!(warn.is_none());
        assert_eq!(streams.len(), 2);
        assert_eq!(streams[1].descriptors, &desc);
        assert_eq!(
            descriptors(streams[1].descriptors).collect::<Vec<_>>(),
            vec![(5, &b"Opus"[..])]
        );
        let (_, streams, warn) = parse_pmt(body, 1).unwrap();
        assert_eq!(streams.len(), 1);
        assert_eq!(warn, Some(Error::TooManyTracks(1)));

        let mut bad = pmt.clone();
        bad[10] ^= 1;
        assert_eq!(parse_section(&bad).unwrap_err(), Error::Crc);
    }

    #[test]
    fn sections_reassemble_across_packets() {
        let pat = build_pat(7, 1, 0x1000);
        let pmt = build_pmt(1, 0, 0x100, &[]);
        let mut got = Vec::new();
        let mut r = SectionReader::new();
        // Two sections in one unit, split in three packets' payloads.
        let mut unit = vec![0u8];
        unit.extend_from_slice(&pat);
        unit.extend_from_slice(&pmt);
        unit.extend_from_slice(&[0xFF, 0xFF]);
        r.push(&unit[..5], true, |s| got.push(s.to_vec())).unwrap();
        r.push(&unit[5..20], false, |s| got.push(s.to_vec()))
            .unwrap();
        r.push(&unit[20..], false, |s| got.push(s.to_vec()))
            .unwrap();
        assert_eq!(got, vec![pat.clone(), pmt.clone()]);
        // A pointer_field finishing the previous section.
        got.clear();
        r.push(&[0, pat[0], pat[1]], true, |s| got.push(s.to_vec()))
            .unwrap();
        let mut next = vec![(pat.len() - 2) as u8];
        next.extend_from_slice(&pat[2..]);
        next.extend_from_slice(&pmt);
        r.push(&next, true, |s| got.push(s.to_vec())).unwrap();
        assert_eq!(got, vec![pat.clone(), pmt.clone()]);
        // Garbage pointer.
        assert!(r.push(&[200, 1, 2], true, |_| {}).is_err());
        // Oversized section_length.
        assert!(r.push(&[0, 2, 0xBF, 0xFF], true, |_| {}).is_err());
    }
}
