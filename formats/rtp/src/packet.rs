//! RTP packets (RFC 3550 §5.1) and RTCP compound packets (§6: SR, RR,
//! SDES, BYE), read without copying and written into the caller's buffer.
//!
//! Everything read is bounded by the 4- and 5-bit counts of the format
//! (15 CSRCs, 31 report blocks, chunks or BYE sources) and by
//! [`MAX_RTCP_PACKETS`] packets in a compound.

use crate::error::Error;

/// Bytes of an RTP header without CSRCs or extension.
pub const RTP_HEADER_LEN: usize = 12;

/// The fixed fields of an RTP header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RtpHeader {
    /// The marker bit (the last packet of a video frame).
    pub marker: bool,
    /// Payload type, 0..=127.
    pub payload_type: u8,
    /// Sequence number.
    pub seq: u16,
    /// Media timestamp in the track's clock.
    pub timestamp: u32,
    /// Synchronization source.
    pub ssrc: u32,
}

impl RtpHeader {
    /// The 12-byte header (version 2, no padding, extension or CSRC).
    /// Cheap enough to build per player and per packet: the payloads of a
    /// frame are shared, only this differs.
    #[inline]
    pub fn to_bytes(&self) -> [u8; RTP_HEADER_LEN] {
        let mut h = [0u8; RTP_HEADER_LEN];
        h[0] = 0x80;
        h[1] = ((self.marker as u8) << 7) | (self.payload_type & 0x7F);
        h[2..4].copy_from_slice(&self.seq.to_be_bytes());
        h[4..8].copy_from_slice(&self.timestamp.to_be_bytes());
        h[8..12].copy_from_slice(&self.ssrc.to_be_bytes());
        h
    }
}

/// A header extension (RFC 3550 §5.3.1): its profile-defined 16 bits and
/// its data (a multiple of 4 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extension<'a> {
    /// The profile-defined field (0xBEDE for RFC 8285 one-byte headers).
    pub profile: u16,
    /// The extension's data.
    pub data: &'a [u8],
}

/// A parsed RTP packet, borrowing the datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpPacket<'a> {
    /// The fixed header fields.
    pub header: RtpHeader,
    /// The CSRC list, 4 bytes each (at most 15).
    pub csrcs: &'a [u8],
    /// The header extension, if the X bit was set.
    pub extension: Option<Extension<'a>>,
    /// The payload, padding removed.
    pub payload: &'a [u8],
    /// Padding bytes that followed the payload (0 without the P bit).
    pub padding: u8,
}

impl<'a> RtpPacket<'a> {
    /// Reads an RTP packet (version 2 only).
    pub fn parse(data: &'a [u8]) -> Result<RtpPacket<'a>, Error> {
        if data.len() < RTP_HEADER_LEN {
            return Err(Error::Truncated("RTP header"));
        }
        let b0 = data[0];
        if b0 >> 6 != 2 {
            return Err(Error::Malformed("RTP version"));
        }
        let header = RtpHeader {
            marker: data[1] & 0x80 != 0,
            payload_type: data[1] & 0x7F,
            seq: u16::from_be_bytes([data[2], data[3]]),
            timestamp: u32::from_be_bytes([data[4], data[5], data[6], data[7]]),
            ssrc: u32::from_be_bytes([data[8], data[9], data[10], data[11]]),
        };
        let mut end = data.len();
        let mut padding = 0;
        if b0 & 0x20 != 0 {
            padding = data[end - 1];
            if padding == 0 {
                return Err(Error::Malformed("RTP padding of 0 bytes"));
            }
            end = end
                .checked_sub(padding as usize)
                .filter(|&e| e >= RTP_HEADER_LEN)
                .ok_or(Error::Malformed("RTP padding"))?;
        }
        let cc = (b0 & 0x0F) as usize;
        let mut pos = RTP_HEADER_LEN + 4 * cc;
        if pos > end {
            return Err(Error::Truncated("RTP CSRC list"));
        }
        let csrcs = &data[RTP_HEADER_LEN..pos];
        let mut extension = None;
        if b0 & 0x10 != 0 {
            let h = data
                .get(pos..pos + 4)
                .filter(|_| pos + 4 <= end)
                .ok_or(Error::Truncated("RTP header extension"))?;
            let profile = u16::from_be_bytes([h[0], h[1]]);
            let len = 4 * u16::from_be_bytes([h[2], h[3]]) as usize;
            pos += 4;
            if pos + len > end {
                return Err(Error::Truncated("RTP header extension"));
            }
            extension = Some(Extension {
                profile,
                data: &data[pos..pos + len],
            });
            pos += len;
        }
        Ok(RtpPacket {
            header,
            csrcs,
            extension,
            payload: &data[pos..end],
            padding,
        })
    }

    /// The CSRCs.
    pub fn csrc_iter(&self) -> impl Iterator<Item = u32> + 'a {
        self.csrcs
            .chunks_exact(4)
            .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
    }

    /// Writes the packet (header, CSRCs, extension, payload, padding) to
    /// `out`. Fails when the CSRC list or extension cannot be expressed
    /// (more than 15 CSRCs, a length not a multiple of 4 or past 65535
    /// words).
    pub fn write(&self, out: &mut Vec<u8>) -> Result<(), Error> {
        if !self.csrcs.len().is_multiple_of(4) || self.csrcs.len() > 60 {
            return Err(Error::Malformed("RTP CSRC list"));
        }
        let mut h = self.header.to_bytes();
        h[0] |= (self.csrcs.len() / 4) as u8;
        if self.extension.is_some() {
            h[0] |= 0x10;
        }
        if self.padding > 0 {
            h[0] |= 0x20;
        }
        if let Some(x) = &self.extension {
            if x.data.len() % 4 != 0 || x.data.len() / 4 > 0xFFFF {
                return Err(Error::Malformed("RTP header extension length"));
            }
        }
        out.extend_from_slice(&h);
        out.extend_from_slice(self.csrcs);
        if let Some(x) = &self.extension {
            out.extend_from_slice(&x.profile.to_be_bytes());
            out.extend_from_slice(&((x.data.len() / 4) as u16).to_be_bytes());
            out.extend_from_slice(x.data);
        }
        out.extend_from_slice(self.payload);
        if self.padding > 0 {
            out.resize(out.len() + self.padding as usize - 1, 0);
            out.push(self.padding);
        }
        Ok(())
    }
}

/// Whether a datagram (or interleaved frame) looks like RTCP rather than
/// RTP (RFC 5761 §4: payload types 72..=76 with the marker are RTCP's
/// 200..=204), for RTP and RTCP sharing a channel.
pub fn is_rtcp(data: &[u8]) -> bool {
    data.len() >= 8 && data[0] >> 6 == 2 && (192..=223).contains(&data[1])
}

/// Most packets read from one RTCP compound packet.
pub const MAX_RTCP_PACKETS: usize = 16;

/// RTCP packet types.
pub mod rtcp_type {
    /// Sender report.
    pub const SR: u8 = 200;
    /// Receiver report.
    pub const RR: u8 = 201;
    /// Source description.
    pub const SDES: u8 = 202;
    /// Goodbye.
    pub const BYE: u8 = 203;
    /// Application-defined.
    pub const APP: u8 = 204;
}

/// A reception report block (in SR and RR).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReportBlock {
    /// The source reported on.
    pub ssrc: u32,
    /// Fraction lost since the last report, in 1/256.
    pub fraction_lost: u8,
    /// Cumulative packets lost (24-bit signed).
    pub cumulative_lost: i32,
    /// Extended highest sequence number received.
    pub highest_seq: u32,
    /// Interarrival jitter, in timestamp units.
    pub jitter: u32,
    /// Middle 32 bits of the NTP time of the last SR received.
    pub last_sr: u32,
    /// Delay since that SR, in 1/65536 s.
    pub delay_since_last_sr: u32,
}

impl ReportBlock {
    fn parse(b: &[u8]) -> ReportBlock {
        let u = |i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let lost = u(4) & 0x00FF_FFFF;
        ReportBlock {
            ssrc: u(0),
            fraction_lost: b[4],
            cumulative_lost: ((lost << 8) as i32) >> 8,
            highest_seq: u(8),
            jitter: u(12),
            last_sr: u(16),
            delay_since_last_sr: u(20),
        }
    }

    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.ssrc.to_be_bytes());
        let lost = (self.cumulative_lost.clamp(-0x80_0000, 0x7F_FFFF) as u32) & 0x00FF_FFFF;
        out.extend_from_slice(&(((self.fraction_lost as u32) << 24) | lost).to_be_bytes());
        for v in [
            self.highest_seq,
            self.jitter,
            self.last_sr,
            self.delay_since_last_sr,
        ] {
            out.extend_from_slice(&v.to_be_bytes());
        }
    }
}

/// A sender report: the NTP ↔ RTP mapping of a source, and its counts.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SenderReport {
    /// The sender.
    pub ssrc: u32,
    /// Wall clock (NTP format: seconds since 1900 in the high 32 bits).
    pub ntp: u64,
    /// The RTP timestamp corresponding to `ntp`.
    pub rtp_time: u32,
    /// Packets sent.
    pub packets: u32,
    /// Payload octets sent.
    pub octets: u32,
    /// Reception reports (at most 31).
    pub reports: Vec<ReportBlock>,
}

/// An SDES chunk's source and CNAME (other items are skipped).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SdesChunk {
    /// The source described.
    pub ssrc: u32,
    /// Its CNAME item (at most 255 bytes), if it had one.
    pub cname: Option<String>,
}

/// One packet of an RTCP compound packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RtcpPacket {
    /// Sender report (200).
    SenderReport(SenderReport),
    /// Receiver report (201): the reporter and its blocks (at most 31).
    ReceiverReport {
        /// The receiver sending the report.
        ssrc: u32,
        /// Reception reports.
        reports: Vec<ReportBlock>,
    },
    /// Source description (202): chunks (at most 31).
    SourceDescription(Vec<SdesChunk>),
    /// Goodbye (203): the sources leaving (at most 31) and a reason.
    Bye {
        /// Sources.
        ssrcs: Vec<u32>,
        /// Reason for leaving, if given.
        reason: Option<String>,
    },
    /// A type not read here (APP, feedback, XR, ...): its type and count
    /// field. Written back as an empty packet of that type.
    Other {
        /// Packet type.
        packet_type: u8,
        /// The 5-bit count / format field.
        count: u8,
    },
}

fn be32(b: &[u8], i: usize) -> u32 {
    u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]])
}

/// Reads an RTCP compound packet into `out` (cleared first): every packet
/// must be complete; at most [`MAX_RTCP_PACKETS`].
pub fn parse_rtcp(data: &[u8], out: &mut Vec<RtcpPacket>) -> Result<(), Error> {
    out.clear();
    let mut rest = data;
    if rest.is_empty() {
        return Err(Error::Truncated("RTCP packet"));
    }
    while !rest.is_empty() {
        if out.len() >= MAX_RTCP_PACKETS {
            return Err(Error::TooMany("RTCP packets in a compound"));
        }
        if rest.len() < 4 {
            return Err(Error::Truncated("RTCP header"));
        }
        if rest[0] >> 6 != 2 {
            return Err(Error::Malformed("RTCP version"));
        }
        let len = 4 * (u16::from_be_bytes([rest[2], rest[3]]) as usize + 1);
        if len > rest.len() {
            return Err(Error::Truncated("RTCP packet"));
        }
        let mut body = &rest[4..len];
        if rest[0] & 0x20 != 0 {
            // Padding (only allowed on the last packet, tolerated anywhere).
            let p = *body.last().ok_or(Error::Malformed("RTCP padding"))? as usize;
            if p == 0 || p > body.len() {
                return Err(Error::Malformed("RTCP padding"));
            }
            body = &body[..body.len() - p];
        }
        let count = rest[0] & 0x1F;
        let pt = rest[1];
        out.push(parse_one(pt, count, body)?);
        rest = &rest[len..];
    }
    Ok(())
}

fn parse_reports(body: &[u8], count: u8) -> Result<Vec<ReportBlock>, Error> {
    let n = count as usize;
    if body.len() < 24 * n {
        return Err(Error::Truncated("RTCP report blocks"));
    }
    Ok(body
        .chunks_exact(24)
        .take(n)
        .map(ReportBlock::parse)
        .collect())
}

fn parse_one(pt: u8, count: u8, body: &[u8]) -> Result<RtcpPacket, Error> {
    Ok(match pt {
        rtcp_type::SR => {
            if body.len() < 24 {
                return Err(Error::Truncated("RTCP sender report"));
            }
            RtcpPacket::SenderReport(SenderReport {
                ssrc: be32(body, 0),
                ntp: ((be32(body, 4) as u64) << 32) | be32(body, 8) as u64,
                rtp_time: be32(body, 12),
                packets: be32(body, 16),
                octets: be32(body, 20),
                reports: parse_reports(&body[24..], count)?,
            })
        }
        rtcp_type::RR => {
            if body.len() < 4 {
                return Err(Error::Truncated("RTCP receiver report"));
            }
            RtcpPacket::ReceiverReport {
                ssrc: be32(body, 0),
                reports: parse_reports(&body[4..], count)?,
            }
        }
        rtcp_type::SDES => {
            let mut chunks = Vec::with_capacity(count as usize);
            let mut pos = 0;
            for _ in 0..count {
                if pos + 4 > body.len() {
                    return Err(Error::Truncated("SDES chunk"));
                }
                let mut chunk = SdesChunk {
                    ssrc: be32(body, pos),
                    cname: None,
                };
                pos += 4;
                loop {
                    let kind = *body.get(pos).ok_or(Error::Truncated("SDES item"))?;
                    if kind == 0 {
                        // End of the list, then padding to a 32-bit boundary.
                        pos = (pos + 4) & !3;
                        break;
                    }
                    let len = *body.get(pos + 1).ok_or(Error::Truncated("SDES item"))? as usize;
                    let text = body
                        .get(pos + 2..pos + 2 + len)
                        .ok_or(Error::Truncated("SDES item"))?;
                    if kind == 1 {
                        chunk.cname = Some(String::from_utf8_lossy(text).into_owned());
                    }
                    pos += 2 + len;
                }
                chunks.push(chunk);
            }
            RtcpPacket::SourceDescription(chunks)
        }
        rtcp_type::BYE => {
            let n = count as usize;
            if body.len() < 4 * n {
                return Err(Error::Truncated("BYE"));
            }
            let ssrcs = (0..n).map(|i| be32(body, 4 * i)).collect();
            let rest = &body[4 * n..];
            let reason = match rest.first() {
                Some(&len) if len > 0 => {
                    let text = rest
                        .get(1..1 + len as usize)
                        .ok_or(Error::Truncated("BYE reason"))?;
                    Some(String::from_utf8_lossy(text).into_owned())
                }
                _ => None,
            };
            RtcpPacket::Bye { ssrcs, reason }
        }
        _ => RtcpPacket::Other {
            packet_type: pt,
            count,
        },
    })
}

/// At most 255 bytes of `s`, cut at a character boundary.
fn cut255(s: &str) -> &[u8] {
    let mut n = s.len().min(255);
    while !s.is_char_boundary(n) {
        n -= 1;
    }
    &s.as_bytes()[..n]
}

fn header(out: &mut Vec<u8>, count: usize, pt: u8) -> usize {
    let at = out.len();
    out.extend_from_slice(&[0x80 | (count as u8 & 0x1F), pt, 0, 0]);
    at
}

/// Pads to 32 bits and sets the length field of the packet starting at
/// `at`.
fn finish(out: &mut Vec<u8>, at: usize) {
    while !(out.len() - at).is_multiple_of(4) {
        out.push(0);
    }
    let words = ((out.len() - at) / 4 - 1) as u16;
    out[at + 2..at + 4].copy_from_slice(&words.to_be_bytes());
}

impl RtcpPacket {
    /// Appends the packet to `out`. Lists past 31 entries and texts past
    /// 255 bytes are cut to what the format can carry.
    pub fn write(&self, out: &mut Vec<u8>) {
        match self {
            RtcpPacket::SenderReport(sr) => {
                let n = sr.reports.len().min(31);
                let at = header(out, n, rtcp_type::SR);
                out.extend_from_slice(&sr.ssrc.to_be_bytes());
                out.extend_from_slice(&sr.ntp.to_be_bytes());
                for v in [sr.rtp_time, sr.packets, sr.octets] {
                    out.extend_from_slice(&v.to_be_bytes());
                }
                for r in &sr.reports[..n] {
                    r.write(out);
                }
                finish(out, at);
            }
            RtcpPacket::ReceiverReport { ssrc, reports } => {
                let n = reports.len().min(31);
                let at = header(out, n, rtcp_type::RR);
                out.extend_from_slice(&ssrc.to_be_bytes());
                for r in &reports[..n] {
                    r.write(out);
                }
                finish(out, at);
            }
            RtcpPacket::SourceDescription(chunks) => {
                let n = chunks.len().min(31);
                let at = header(out, n, rtcp_type::SDES);
                for c in &chunks[..n] {
                    let start = out.len();
                    out.extend_from_slice(&c.ssrc.to_be_bytes());
                    if let Some(name) = &c.cname {
                        let b = cut255(name);
                        out.push(1);
                        out.push(b.len() as u8);
                        out.extend_from_slice(b);
                    }
                    out.push(0);
                    while !(out.len() - start).is_multiple_of(4) {
                        out.push(0);
                    }
                }
                finish(out, at);
            }
            RtcpPacket::Bye { ssrcs, reason } => {
                let n = ssrcs.len().min(31);
                let at = header(out, n, rtcp_type::BYE);
                for s in &ssrcs[..n] {
                    out.extend_from_slice(&s.to_be_bytes());
                }
                if let Some(r) = reason.as_ref().filter(|r| !r.is_empty()) {
                    let b = cut255(r);
                    out.push(b.len() as u8);
                    out.extend_from_slice(b);
                }
                finish(out, at);
            }
            RtcpPacket::Other { packet_type, count } => {
                let at = header(out, *count as usize, *packet_type);
                finish(out, at);
            }
        }
    }
}

/// Writes a compound packet (the packets one after the other) into `out`.
pub fn write_rtcp(packets: &[RtcpPacket], out: &mut Vec<u8>) {
    for p in packets {
        p.write(out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rtp_round_trip_with_everything() {
        let csrcs = [0, 0, 0, 7, 0, 0, 0, 9];
        let p = RtpPacket {
            header: RtpHeader {
                marker: true,
                payload_type: 96,
                seq: 0xFFFF,
                timestamp: 0xDEAD_BEEF,
                ssrc: 0x1234_5678,
            },
            csrcs: &csrcs,
            extension: Some(Extension {
                profile: 0xBEDE,
                data: &[1, 2, 3, 4],
            }),
            payload: &[9, 9, 9],
            padding: 5,
        };
        let mut out = Vec::new();
        p.write(&mut out).unwrap();
        assert_eq!(out.len(), 12 + 8 + 8 + 3 + 5);
        let back = RtpPacket::parse(&out).unwrap();
        assert_eq!(back, p);
        assert_eq!(back.csrc_iter().collect::<Vec<_>>(), vec![7, 9]);
    }

    #[test]
    fn rtp_plain_header() {
        let h = RtpHeader {
            marker: false,
            payload_type: 8,
            seq: 1,
            timestamp: 160,
            ssrc: 5,
        };
        let mut d = h.to_bytes().to_vec();
        d.extend_from_slice(b"abc");
        let p = RtpPacket::parse(&d).unwrap();
        assert_eq!(p.header, h);
        assert_eq!(p.payload, b"abc");
        assert!(!is_rtcp(&d));
    }

    #[test]
    fn rtp_bad_input() {
        assert!(RtpPacket::parse(&[0x80; 11]).is_err());
        assert!(RtpPacket::parse(&[0x40; 12]).is_err());
        // 15 CSRCs announced, none there.
        let mut d = [0u8; 12];
        d[0] = 0x8F;
        assert!(RtpPacket::parse(&d).is_err());
        // Padding longer than the packet.
        let mut d = [0u8; 13];
        d[0] = 0xA0;
        d[12] = 200;
        assert!(RtpPacket::parse(&d).is_err());
        // Extension past the end.
        let mut d = vec![0x90, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xBE, 0xDE, 0, 9];
        assert!(RtpPacket::parse(&d).is_err());
        d.truncate(14);
        assert!(RtpPacket::parse(&d).is_err());
    }

    #[test]
    fn rtcp_compound_round_trip() {
        let block = ReportBlock {
            ssrc: 3,
            fraction_lost: 12,
            cumulative_lost: -5,
            highest_seq: 70_000,
            jitter: 9,
            last_sr: 0x1234_5678,
            delay_since_last_sr: 65536,
        };
        let packets = vec![
            RtcpPacket::SenderReport(SenderReport {
                ssrc: 1,
                ntp: 0xE000_0000_8000_0000,
                rtp_time: 90_000,
                packets: 10,
                octets: 12_000,
                reports: vec![block],
            }),
            RtcpPacket::ReceiverReport {
                ssrc: 2,
                reports: vec![block, block],
            },
            RtcpPacket::SourceDescription(vec![
                SdesChunk {
                    ssrc: 1,
                    cname: Some("rill@host".into()),
                },
                SdesChunk {
                    ssrc: 2,
                    cname: Some("abcd".into()),
                },
            ]),
            RtcpPacket::Bye {
                ssrcs: vec![1, 2],
                reason: Some("bye now".into()),
            },
            RtcpPacket::Other {
                packet_type: 205,
                count: 1,
            },
        ];
        let mut out = Vec::new();
        write_rtcp(&packets, &mut out);
        assert!(is_rtcp(&out));
        assert_eq!(out.len() % 4, 0);
        let mut back = Vec::new();
        parse_rtcp(&out, &mut back).unwrap();
        assert_eq!(back, packets);
    }

    #[test]
    fn rtcp_bad_input() {
        let mut v = Vec::new();
        assert!(parse_rtcp(&[], &mut v).is_err());
        // Length beyond the data.
        assert!(parse_rtcp(&[0x80, 200, 0, 9, 0, 0, 0, 0], &mut v).is_err());
        // SR too short for its fields.
        assert!(parse_rtcp(&[0x80, 200, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0], &mut v).is_err());
        // RR announcing a block it lacks.
        assert!(parse_rtcp(&[0x81, 201, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0], &mut v).is_err());
        // SDES item running off the end.
        assert!(parse_rtcp(&[0x81, 202, 0, 2, 0, 0, 0, 1, 1, 200, 0, 0], &mut v).is_err());
        // Too many packets.
        let many: Vec<u8> = [0x80u8, 201, 0, 1, 0, 0, 0, 1].repeat(MAX_RTCP_PACKETS + 1);
        assert_eq!(
            parse_rtcp(&many, &mut v),
            Err(Error::TooMany("RTCP packets in a compound"))
        );
    }
}
