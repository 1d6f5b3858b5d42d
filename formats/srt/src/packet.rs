//! SRT packets on the wire (draft-sharabayko-srt §3): the 16-byte header,
//! data packets and the control packets a live-mode peer exchanges.
//! Parsing borrows the datagram; nothing is allocated for data packets, and
//! every list read from the network is bounded.

use crate::handshake::Handshake;
use crate::seq::Seq;
use crate::Error;

/// Bytes of the header every packet starts with.
pub const HEADER_LEN: usize = 16;
/// The largest datagram accepted (an Ethernet MTU; libsrt's maximum is the
/// same 1500 bytes).
pub const MAX_DATAGRAM: usize = 1500;
/// Loss ranges read from one NAK: a datagram holds at most 371 of them.
pub const MAX_NAK_RANGES: usize = 371;

/// Control packet types (the 15 bits after the F bit).
pub mod kind {
    /// HSv4/HSv5 handshake.
    pub const HANDSHAKE: u16 = 0;
    /// Nothing to say, still here.
    pub const KEEPALIVE: u16 = 1;
    /// Acknowledgement of received packets.
    pub const ACK: u16 = 2;
    /// Negative acknowledgement: a loss report.
    pub const NAK: u16 = 3;
    /// Congestion warning (unused in live mode).
    pub const CONGESTION: u16 = 4;
    /// The peer closes.
    pub const SHUTDOWN: u16 = 5;
    /// Acknowledgement of an ACK (gives the RTT).
    pub const ACKACK: u16 = 6;
    /// The sender gave up on a range of packets.
    pub const DROPREQ: u16 = 7;
    /// An error at the peer.
    pub const PEERERROR: u16 = 8;
    /// SRT's own messages; the subtype says which.
    pub const USER: u16 = 0x7FFF;
}

/// Subtypes of [`kind::USER`] (also the handshake extension types).
pub mod ext {
    /// SRT handshake request (HSv4 and in HSv5 extensions).
    pub const HSREQ: u16 = 1;
    /// SRT handshake response.
    pub const HSRSP: u16 = 2;
    /// Key material request (new keys).
    pub const KMREQ: u16 = 3;
    /// Key material response.
    pub const KMRSP: u16 = 4;
    /// Stream id (HSv5 extension only).
    pub const SID: u16 = 5;
}

/// Where a data packet sits in its message (live mode: always `SOLO`).
pub const POSITION_SOLO: u8 = 0b11;

/// A data packet, borrowing its payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataPacket<'a> {
    /// Packet sequence number.
    pub seq: Seq,
    /// PP bits: 10 first, 00 middle, 01 last, 11 solo.
    pub position: u8,
    /// O bit: deliver in order.
    pub in_order: bool,
    /// KK bits: 0 clear, 1 even key, 2 odd key.
    pub key: u8,
    /// R bit: a retransmission.
    pub retransmitted: bool,
    /// Message number (26 bits).
    pub msg: u32,
    /// Microseconds since the sender's connection start (wraps).
    pub timestamp: u32,
    /// The receiver's socket id.
    pub dest: u32,
    /// The payload (encrypted when `key` != 0).
    pub payload: &'a [u8],
}

/// The full-ACK fields after the acknowledged sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AckInfo {
    /// RTT estimate, µs.
    pub rtt: u32,
    /// RTT variance, µs.
    pub rtt_var: u32,
    /// Free space in the receiver's buffer, packets.
    pub buffer: u32,
    /// Packets received per second.
    pub packet_rate: u32,
    /// Estimated link capacity, packets per second.
    pub capacity: u32,
    /// Bytes received per second.
    pub byte_rate: u32,
}

/// What a control packet says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Control {
    /// A handshake (connection set-up).
    Handshake(Handshake),
    /// Keep-alive.
    KeepAlive,
    /// ACK `number` of everything before `next`; light ACKs have no `info`.
    Ack {
        /// ACK sequence number (0 for a light ACK).
        number: u32,
        /// The first sequence number not yet received in order.
        next: Seq,
        /// Statistics of a full ACK.
        info: Option<AckInfo>,
    },
    /// Lost packets, as inclusive ranges.
    Nak(Vec<(Seq, Seq)>),
    /// The peer closes the connection.
    Shutdown,
    /// Acknowledges ACK `number`.
    AckAck(u32),
    /// The sender dropped message `msg`, packets `first..=last`.
    DropReq {
        /// Message number.
        msg: u32,
        /// First dropped packet.
        first: Seq,
        /// Last dropped packet.
        last: Seq,
    },
    /// New key material (key refresh), the raw KM message.
    KmReq(Vec<u8>),
    /// The answer to a KMREQ.
    KmRsp(Vec<u8>),
    /// A type this implementation ignores (congestion warning, peer error,
    /// other user subtypes).
    Other(u16, u16),
}

/// A control packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlPacket {
    /// What it says.
    pub control: Control,
    /// Microseconds since the sender's connection start.
    pub timestamp: u32,
    /// The receiver's socket id (0 for a caller's first handshakes).
    pub dest: u32,
}

/// Any packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet<'a> {
    /// Media.
    Data(DataPacket<'a>),
    /// Control.
    Control(ControlPacket),
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// The destination socket id of a datagram, without parsing the rest
/// (how a listener routes it).
pub fn dest_socket(datagram: &[u8]) -> Option<u32> {
    (datagram.len() >= HEADER_LEN).then(|| be32(datagram, 12))
}

/// Whether the datagram is a handshake control packet.
pub fn is_handshake(datagram: &[u8]) -> bool {
    datagram.len() >= HEADER_LEN && datagram[0] == 0x80 && datagram[1] == 0
}

impl<'a> Packet<'a> {
    /// Parses one datagram.
    pub fn parse(b: &'a [u8]) -> Result<Packet<'a>, Error> {
        if b.len() < HEADER_LEN {
            return Err(Error::Malformed("packet shorter than its header"));
        }
        if b.len() > MAX_DATAGRAM {
            return Err(Error::Malformed("datagram larger than 1500 bytes"));
        }
        let w0 = be32(b, 0);
        let w1 = be32(b, 4);
        let timestamp = be32(b, 8);
        let dest = be32(b, 12);
        if w0 & 0x8000_0000 == 0 {
            return Ok(Packet::Data(DataPacket {
                seq: Seq(w0),
                position: (w1 >> 30) as u8,
                in_order: w1 & (1 << 29) != 0,
                key: ((w1 >> 27) & 3) as u8,
                retransmitted: w1 & (1 << 26) != 0,
                msg: w1 & 0x03FF_FFFF,
                timestamp,
                dest,
                payload: &b[HEADER_LEN..],
            }));
        }
        let ty = ((w0 >> 16) & 0x7FFF) as u16;
        let sub = (w0 & 0xFFFF) as u16;
        let body = &b[HEADER_LEN..];
        let control = match ty {
            kind::HANDSHAKE => Control::Handshake(Handshake::parse(body)?),
            kind::KEEPALIVE => Control::KeepAlive,
            kind::ACK => {
                if body.len() < 4 {
                    return Err(Error::Malformed("ACK without a sequence number"));
                }
                let info = (body.len() >= 24).then(|| AckInfo {
                    rtt: be32(body, 4),
                    rtt_var: be32(body, 8),
                    buffer: be32(body, 12),
                    packet_rate: body.get(16..20).map_or(0, |_| be32(body, 16)),
                    capacity: body.get(20..24).map_or(0, |_| be32(body, 20)),
                    byte_rate: body.get(24..28).map_or(0, |_| be32(body, 24)),
                });
                Control::Ack {
                    number: w1,
                    next: Seq(be32(body, 0) & crate::seq::MAX),
                    info,
                }
            }
            kind::NAK => Control::Nak(parse_loss_list(body)?),
            kind::SHUTDOWN => Control::Shutdown,
            kind::ACKACK => Control::AckAck(w1),
            kind::DROPREQ => {
                if body.len() < 8 {
                    return Err(Error::Malformed("DROPREQ without its range"));
                }
                Control::DropReq {
                    msg: w1,
                    first: Seq::new(be32(body, 0)),
                    last: Seq::new(be32(body, 4)),
                }
            }
            kind::USER if sub == ext::KMREQ || sub == ext::KMRSP => {
                if body.len() > crate::crypto::MAX_KM_LEN {
                    return Err(Error::Malformed("key material too long"));
                }
                if sub == ext::KMREQ {
                    Control::KmReq(body.to_vec())
                } else {
                    Control::KmRsp(body.to_vec())
                }
            }
            _ => Control::Other(ty, sub),
        };
        Ok(Packet::Control(ControlPacket {
            control,
            timestamp,
            dest,
        }))
    }
}

/// Reads a NAK's loss list: single numbers, or a first number with the top
/// bit set followed by the last of the range.
fn parse_loss_list(mut b: &[u8]) -> Result<Vec<(Seq, Seq)>, Error> {
    let mut out = Vec::new();
    while b.len() >= 4 {
        if out.len() == MAX_NAK_RANGES {
            return Err(Error::Malformed("NAK with too many ranges"));
        }
        let first = be32(b, 0);
        if first & 0x8000_0000 != 0 {
            if b.len() < 8 {
                return Err(Error::Malformed("NAK range without its end"));
            }
            let (a, z) = (Seq::new(first), Seq::new(be32(b, 4)));
            if z.lt(a) {
                return Err(Error::Malformed("NAK range ends before it starts"));
            }
            out.push((a, z));
            b = &b[8..];
        } else {
            out.push((Seq(first), Seq(first)));
            b = &b[4..];
        }
    }
    if out.is_empty() {
        return Err(Error::Malformed("NAK without a loss"));
    }
    Ok(out)
}

/// Appends a data packet (header and payload) to `out`.
pub fn write_data(p: &DataPacket<'_>, out: &mut Vec<u8>) {
    out.extend_from_slice(&(p.seq.0 & crate::seq::MAX).to_be_bytes());
    let w1 = (u32::from(p.position & 3) << 30)
        | (u32::from(p.in_order) << 29)
        | (u32::from(p.key & 3) << 27)
        | (u32::from(p.retransmitted) << 26)
        | (p.msg & 0x03FF_FFFF);
    out.extend_from_slice(&w1.to_be_bytes());
    out.extend_from_slice(&p.timestamp.to_be_bytes());
    out.extend_from_slice(&p.dest.to_be_bytes());
    out.extend_from_slice(p.payload);
}

fn control_header(ty: u16, sub: u16, info: u32, timestamp: u32, dest: u32, out: &mut Vec<u8>) {
    let w0 = 0x8000_0000 | (u32::from(ty) << 16) | u32::from(sub);
    out.extend_from_slice(&w0.to_be_bytes());
    out.extend_from_slice(&info.to_be_bytes());
    out.extend_from_slice(&timestamp.to_be_bytes());
    out.extend_from_slice(&dest.to_be_bytes());
}

impl ControlPacket {
    /// Appends the packet to `out`.
    pub fn write(&self, out: &mut Vec<u8>) {
        let (ts, dest) = (self.timestamp, self.dest);
        match &self.control {
            Control::Handshake(h) => {
                control_header(kind::HANDSHAKE, 0, 0, ts, dest, out);
                h.write(out);
            }
            Control::KeepAlive => {
                // libsrt refuses control packets without a body.
                control_header(kind::KEEPALIVE, 0, 0, ts, dest, out);
                out.extend_from_slice(&[0; 4]);
            }
            Control::Ack { number, next, info } => {
                control_header(kind::ACK, 0, *number, ts, dest, out);
                out.extend_from_slice(&next.0.to_be_bytes());
                if let Some(i) = info {
                    for v in [
                        i.rtt,
                        i.rtt_var,
                        i.buffer,
                        i.packet_rate,
                        i.capacity,
                        i.byte_rate,
                    ] {
                        out.extend_from_slice(&v.to_be_bytes());
                    }
                }
            }
            Control::Nak(ranges) => {
                control_header(kind::NAK, 0, 0, ts, dest, out);
                for &(a, z) in ranges.iter().take(MAX_NAK_RANGES) {
                    if a == z {
                        out.extend_from_slice(&a.0.to_be_bytes());
                    } else {
                        out.extend_from_slice(&(a.0 | 0x8000_0000).to_be_bytes());
                        out.extend_from_slice(&z.0.to_be_bytes());
                    }
                }
            }
            Control::Shutdown => {
                control_header(kind::SHUTDOWN, 0, 0, ts, dest, out);
                out.extend_from_slice(&[0; 4]);
            }
            Control::AckAck(n) => {
                control_header(kind::ACKACK, 0, *n, ts, dest, out);
                out.extend_from_slice(&[0; 4]);
            }
            Control::DropReq { msg, first, last } => {
                control_header(kind::DROPREQ, 0, *msg, ts, dest, out);
                out.extend_from_slice(&first.0.to_be_bytes());
                out.extend_from_slice(&last.0.to_be_bytes());
            }
            Control::KmReq(km) | Control::KmRsp(km) => {
                let sub = if matches!(self.control, Control::KmReq(_)) {
                    ext::KMREQ
                } else {
                    ext::KMRSP
                };
                control_header(kind::USER, sub, 0, ts, dest, out);
                out.extend_from_slice(km);
            }
            Control::Other(ty, sub) => {
                control_header(*ty, *sub, 0, ts, dest, out);
                out.extend_from_slice(&[0; 4]);
            }
        }
    }

    /// The packet as a new buffer.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(64);
        self.write(&mut v);
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_roundtrip() {
        let p = DataPacket {
            seq: Seq(0x1234_5678),
            position: POSITION_SOLO,
            in_order: false,
            key: 2,
            retransmitted: true,
            msg: 77,
            timestamp: 1_000_000,
            dest: 0xABCD,
            payload: b"payload",
        };
        let mut v = Vec::new();
        write_data(&p, &mut v);
        assert_eq!(Packet::parse(&v).unwrap(), Packet::Data(p));
    }

    #[test]
    fn control_roundtrip() {
        for control in [
            Control::KeepAlive,
            Control::Shutdown,
            Control::AckAck(9),
            Control::Ack {
                number: 3,
                next: Seq(100),
                info: Some(AckInfo {
                    rtt: 100_000,
                    rtt_var: 50_000,
                    buffer: 8000,
                    packet_rate: 1,
                    capacity: 2,
                    byte_rate: 3,
                }),
            },
            Control::Ack {
                number: 0,
                next: Seq(5),
                info: None,
            },
            Control::Nak(vec![(Seq(1), Seq(1)), (Seq(5), Seq(9))]),
            Control::DropReq {
                msg: 4,
                first: Seq(1),
                last: Seq(2),
            },
            Control::KmReq(vec![1, 2, 3, 4]),
        ] {
            let p = ControlPacket {
                control,
                timestamp: 5,
                dest: 6,
            };
            assert_eq!(Packet::parse(&p.to_vec()).unwrap(), Packet::Control(p));
        }
    }

    #[test]
    fn refuses_bad_lists() {
        let mut v = Vec::new();
        control_header(kind::NAK, 0, 0, 0, 0, &mut v);
        assert!(Packet::parse(&v).is_err());
        v.extend_from_slice(&(9u32 | 0x8000_0000).to_be_bytes());
        v.extend_from_slice(&3u32.to_be_bytes());
        assert!(Packet::parse(&v).is_err());
        assert!(Packet::parse(&[0; 15]).is_err());
        assert!(Packet::parse(&[0; 1501]).is_err());
    }
}
