//! The handshake control packet's body (HSv5) and its extensions: the SRT
//! handshake (versions, flags, latencies), key material and the stream id.

use crate::seq::Seq;
use crate::Error;

/// Bytes of the fixed handshake body.
pub const BODY_LEN: usize = 48;
/// The longest stream id (libsrt's limit).
pub const MAX_STREAM_ID: usize = 512;
/// Extensions read from one handshake.
const MAX_EXTENSIONS: usize = 16;

/// The magic a listener puts in the extension field of its induction
/// response to say it speaks HSv5.
pub const HSV5_MAGIC: u16 = 0x4A17;
/// The SRT version this implementation announces (1.5.0).
pub const SRT_VERSION: u32 = 0x0001_0500;

/// Handshake types.
pub mod hs_type {
    /// Rendezvous wave.
    pub const WAVEAHAND: i32 = 0;
    /// First exchange: the cookie.
    pub const INDUCTION: i32 = 1;
    /// Second exchange: the settings.
    pub const CONCLUSION: i32 = -1;
    /// Rendezvous agreement.
    pub const AGREEMENT: i32 = -2;
    /// Rejections are 1000 + the reason.
    pub const REJECTION_BASE: i32 = 1000;
}

/// Flags of the extension field in a conclusion.
pub mod ext_flag {
    /// An HSREQ/HSRSP extension follows.
    pub const HSREQ: u16 = 1;
    /// A KMREQ/KMRSP extension follows.
    pub const KMREQ: u16 = 2;
    /// Other extensions (stream id) follow.
    pub const CONFIG: u16 = 4;
}

/// SRT handshake flags (HSREQ/HSRSP).
pub mod srt_flag {
    /// The sender uses timestamp-based delivery.
    pub const TSBPD_SND: u32 = 0x01;
    /// The receiver uses timestamp-based delivery.
    pub const TSBPD_RCV: u32 = 0x02;
    /// Always set (encryption capable).
    pub const HAICRYPT: u32 = 0x04;
    /// Too-late packets are dropped.
    pub const TLPKTDROP: u32 = 0x08;
    /// Periodic NAK reports.
    pub const NAKREPORT: u32 = 0x10;
    /// The R bit marks retransmissions.
    pub const REXMITFLG: u32 = 0x20;
    /// Stream (file) mode: not live.
    pub const STREAM: u32 = 0x40;
    /// Packet filters (FEC) supported (a capability, not a request).
    pub const FILTER_CAP: u32 = 0x80;
}

/// Reasons of a rejection (SRT_REJ_*; 1000 and up are SRT_REJX_*, HTTP-like).
pub mod reject {
    /// Unknown.
    pub const UNKNOWN: i32 = 0;
    /// The server lacks resources (too many sessions).
    pub const RESOURCE: i32 = 3;
    /// Incompatible version.
    pub const VERSION: i32 = 8;
    /// Wrong passphrase.
    pub const BAD_SECRET: i32 = 10;
    /// One side encrypts, the other does not.
    pub const UNSECURE: i32 = 11;
    /// Message API or stream mode asked: live only.
    pub const MESSAGE_API: i32 = 12;
    /// Packet filter asked.
    pub const FILTER: i32 = 14;
    /// Malformed stream id or request.
    pub const BAD_REQUEST: i32 = 1400;
    /// Credentials missing or wrong.
    pub const UNAUTHORIZED: i32 = 1401;
    /// Refused by policy.
    pub const FORBIDDEN: i32 = 1403;
    /// No such stream.
    pub const NOT_FOUND: i32 = 1404;
    /// The mode (publish/request) is not allowed.
    pub const BAD_MODE: i32 = 1405;
    /// The stream already has a publisher.
    pub const CONFLICT: i32 = 1409;
    /// The server is overloaded.
    pub const OVERLOAD: i32 = 1503;

    /// A reason in words, for logs and a caller's error.
    pub fn describe(reason: i32) -> &'static str {
        match reason {
            RESOURCE => "server out of resources",
            VERSION => "incompatible version",
            BAD_SECRET => "wrong passphrase",
            UNSECURE => "encryption on one side only",
            MESSAGE_API => "not live mode",
            FILTER => "packet filter",
            BAD_REQUEST => "bad stream id",
            UNAUTHORIZED => "unauthorized",
            FORBIDDEN => "forbidden",
            NOT_FOUND => "no such stream",
            BAD_MODE => "mode not allowed",
            CONFLICT => "stream already published",
            OVERLOAD => "server overloaded",
            _ => "rejected",
        }
    }
}

/// The SRT handshake extension (HSREQ from a caller, HSRSP back).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SrtHs {
    /// SRT version, 0x00MMmmpp.
    pub version: u32,
    /// `srt_flag::*`.
    pub flags: u32,
    /// The sender's own receive latency, ms.
    pub recv_delay_ms: u16,
    /// The latency the sender asks its peer's receiver to use, ms.
    pub send_delay_ms: u16,
}

/// A handshake body.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Handshake {
    /// 4 (induction request) or 5.
    pub version: u32,
    /// Key length / 8 (2, 3, 4) or 0.
    pub encryption: u16,
    /// `ext_flag::*` in a conclusion; [`HSV5_MAGIC`] in an induction
    /// response; 2 in an induction request.
    pub extension: u16,
    /// Initial sequence number (both directions in HSv5).
    pub isn: Seq,
    /// Maximum packet size including IP/UDP headers.
    pub mtu: u32,
    /// Flow window, packets.
    pub flow_window: u32,
    /// `hs_type::*` or 1000 + a rejection reason.
    pub kind: i32,
    /// The sender's socket id.
    pub socket_id: u32,
    /// The SYN cookie.
    pub cookie: u32,
    /// The peer's address as the sender sees it.
    pub peer_ip: [u8; 16],
    /// HSREQ or HSRSP.
    pub srt: Option<SrtHs>,
    /// KMREQ or KMRSP (the raw key material message).
    pub km: Option<Vec<u8>>,
    /// The stream id.
    pub stream_id: Option<String>,
    /// A listener's conclusion: its extensions are HSRSP/KMRSP rather than
    /// HSREQ/KMREQ (set by the parser from the extension types).
    pub response: bool,
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

impl Handshake {
    /// The rejection reason, if this is a rejection.
    pub fn rejection(&self) -> Option<i32> {
        (self.kind >= hs_type::REJECTION_BASE).then(|| self.kind - hs_type::REJECTION_BASE)
    }

    /// Parses a handshake body and its extensions.
    pub fn parse(b: &[u8]) -> Result<Handshake, Error> {
        if b.len() < BODY_LEN {
            return Err(Error::Malformed("handshake shorter than 48 bytes"));
        }
        let mut h = Handshake {
            version: be32(b, 0),
            encryption: (be32(b, 4) >> 16) as u16,
            extension: be32(b, 4) as u16,
            isn: Seq::new(be32(b, 8)),
            mtu: be32(b, 12),
            flow_window: be32(b, 16),
            kind: be32(b, 20) as i32,
            socket_id: be32(b, 24),
            cookie: be32(b, 28),
            ..Default::default()
        };
        h.peer_ip.copy_from_slice(&b[32..48]);
        let mut rest = &b[BODY_LEN..];
        // Extensions only in an HSv5 conclusion.
        if h.version < 5 || h.kind != hs_type::CONCLUSION {
            return Ok(h);
        }
        let mut n = 0;
        while rest.len() >= 4 {
            n += 1;
            if n > MAX_EXTENSIONS {
                return Err(Error::Malformed("too many handshake extensions"));
            }
            let ty = (be32(rest, 0) >> 16) as u16;
            let len = (be32(rest, 0) & 0xFFFF) as usize * 4;
            let body = rest
                .get(4..4 + len)
                .ok_or(Error::Malformed("handshake extension past the packet"))?;
            rest = &rest[4 + len..];
            match ty {
                crate::packet::ext::HSREQ | crate::packet::ext::HSRSP => {
                    h.response = ty == crate::packet::ext::HSRSP;
                    if len < 12 {
                        return Err(Error::Malformed("short SRT handshake extension"));
                    }
                    h.srt = Some(SrtHs {
                        version: be32(body, 0),
                        flags: be32(body, 4),
                        recv_delay_ms: (be32(body, 8) >> 16) as u16,
                        send_delay_ms: be32(body, 8) as u16,
                    });
                }
                crate::packet::ext::KMREQ | crate::packet::ext::KMRSP => {
                    if len > crate::crypto::MAX_KM_LEN {
                        return Err(Error::Malformed("key material too long"));
                    }
                    h.km = Some(body.to_vec());
                }
                crate::packet::ext::SID => {
                    if len > MAX_STREAM_ID {
                        return Err(Error::Malformed("stream id longer than 512 bytes"));
                    }
                    // libsrt sends each 4-byte word byte-reversed.
                    let mut s = Vec::with_capacity(len);
                    for w in body.chunks_exact(4) {
                        s.extend(w.iter().rev());
                    }
                    while s.last() == Some(&0) {
                        s.pop();
                    }
                    h.stream_id = Some(
                        String::from_utf8(s)
                            .map_err(|_| Error::Malformed("stream id is not UTF-8"))?,
                    );
                }
                _ => {}
            }
        }
        Ok(h)
    }

    /// Appends the body and its extensions.
    pub fn write(&self, out: &mut Vec<u8>) {
        let mut extension = self.extension;
        if self.kind == hs_type::CONCLUSION && self.version >= 5 {
            extension = 0;
            if self.srt.is_some() {
                extension |= ext_flag::HSREQ;
            }
            if self.km.is_some() {
                extension |= ext_flag::KMREQ;
            }
            if self.stream_id.is_some() {
                extension |= ext_flag::CONFIG;
            }
        }
        for w in [
            self.version,
            (u32::from(self.encryption) << 16) | u32::from(extension),
            self.isn.0,
            self.mtu,
            self.flow_window,
            self.kind as u32,
            self.socket_id,
            self.cookie,
        ] {
            out.extend_from_slice(&w.to_be_bytes());
        }
        out.extend_from_slice(&self.peer_ip);
        if self.kind != hs_type::CONCLUSION || self.version < 5 {
            return;
        }
        let ext_header = |ty: u16, words: usize, out: &mut Vec<u8>| {
            out.extend_from_slice(&((u32::from(ty) << 16) | words as u32).to_be_bytes());
        };
        if let Some(s) = &self.srt {
            // A listener's conclusion carries HSRSP, a caller's HSREQ.
            let ty = if self.response {
                crate::packet::ext::HSRSP
            } else {
                crate::packet::ext::HSREQ
            };
            ext_header(ty, 3, out);
            out.extend_from_slice(&s.version.to_be_bytes());
            out.extend_from_slice(&s.flags.to_be_bytes());
            let d = (u32::from(s.recv_delay_ms) << 16) | u32::from(s.send_delay_ms);
            out.extend_from_slice(&d.to_be_bytes());
        }
        if let Some(km) = &self.km {
            let ty = if self.response {
                crate::packet::ext::KMRSP
            } else {
                crate::packet::ext::KMREQ
            };
            ext_header(ty, km.len().div_ceil(4), out);
            out.extend_from_slice(km);
            out.resize(out.len() + (4 - km.len() % 4) % 4, 0);
        }
        if let Some(sid) = &self.stream_id {
            let b = sid.as_bytes();
            let b = &b[..b.len().min(MAX_STREAM_ID)];
            let words = b.len().div_ceil(4);
            ext_header(crate::packet::ext::SID, words, out);
            let mut padded = b.to_vec();
            padded.resize(words * 4, 0);
            for w in padded.chunks_exact(4) {
                out.extend(w.iter().rev());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conclusion_roundtrip_with_extensions() {
        for response in [false, true] {
            let h = Handshake {
                version: 5,
                encryption: 2,
                extension: 0,
                isn: Seq(12345),
                mtu: 1500,
                flow_window: 8192,
                kind: hs_type::CONCLUSION,
                socket_id: 77,
                cookie: 0xDEAD_BEEF,
                peer_ip: [1; 16],
                srt: Some(SrtHs {
                    version: SRT_VERSION,
                    flags: srt_flag::TSBPD_RCV | srt_flag::TLPKTDROP,
                    recv_delay_ms: 120,
                    send_delay_ms: 200,
                }),
                km: Some(vec![9; 40]),
                stream_id: Some("#!::r=live/x,m=publish".into()),
                response,
            };
            let mut v = Vec::new();
            h.write(&mut v);
            let mut back = Handshake::parse(&v).unwrap();
            back.extension = 0;
            assert_eq!(back, h);
        }
    }

    #[test]
    fn bounded_extensions() {
        let mut v = vec![0u8; BODY_LEN];
        v[3] = 5;
        v[20..24].copy_from_slice(&(-1i32).to_be_bytes());
        // An extension announcing more words than the packet has.
        v.extend_from_slice(&[0, 5, 0, 200, b'a', b'b', b'c', b'd']);
        assert!(Handshake::parse(&v).is_err());
        v.truncate(BODY_LEN);
        v.extend_from_slice(&[0, 5, 0, 200]);
        v.resize(BODY_LEN + 4 + 800, b'x');
        assert!(Handshake::parse(&v).is_err());
    }

    #[test]
    fn rejection_reasons_in_words() {
        assert_eq!(reject::describe(reject::NOT_FOUND), "no such stream");
        assert_eq!(reject::describe(reject::BAD_SECRET), "wrong passphrase");
        assert_eq!(reject::describe(12345), "rejected");
    }
}
