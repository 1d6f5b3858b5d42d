//! The RTMP handshake: C0/C1/C2 ↔ S0/S1/S2.
//!
//! Two forms exist. The *simple* one of the published spec echoes random
//! blocks. The *digest* ("complex") one, which Flash Player, ffmpeg and OBS
//! use, hides an HMAC-SHA256 digest in C1/S1 at a position derived from the
//! packet itself, and signs C2/S2 with a key derived from the peer's digest.
//! A server must answer it in kind: ffmpeg, when playing, refuses a server
//! whose S1/S2 do not verify.
//!
//! The 1536-byte C1/S1 consists of time (4), version (4) and two 764-byte
//! blocks. Scheme 0 puts the digest in the second block (its offset is the sum
//! of bytes 772..776 mod 728, from 776); scheme 1, which ffmpeg uses, puts it
//! in the first block (bytes 8..12, from 12). A server tries both.

use hmac::{KeyInit, Mac};
use sha2::Sha256;

use crate::error::Error;

/// Size of C1/C2/S1/S2.
pub const PACKET_SIZE: usize = 1536;
/// The only plain RTMP version (C0/S0).
pub const RTMP_VERSION: u8 = 3;
const DIGEST_LEN: usize = 32;

/// "Genuine Adobe Flash Player 001" followed by 32 constant bytes; the first 30
/// bytes sign C1, all 62 derive the C2 key.
const FP_KEY: [u8; 62] = *b"Genuine Adobe Flash Player 001\
\xF0\xEE\xC2\x4A\x80\x68\xBE\xE8\x2E\x00\xD0\xD1\x02\x9E\x7E\x57\
\x6E\xEC\x5D\x2D\x29\x80\x6F\xAB\x93\xB8\xE6\x36\xCF\xEB\x31\xAE";
const FP_KEY_SHORT: usize = 30;
/// "Genuine Adobe Flash Media Server 001" + the same 32 bytes; 36 bytes sign
/// S1, all 68 derive the S2 key.
const FMS_KEY: [u8; 68] = *b"Genuine Adobe Flash Media Server 001\
\xF0\xEE\xC2\x4A\x80\x68\xBE\xE8\x2E\x00\xD0\xD1\x02\x9E\x7E\x57\
\x6E\xEC\x5D\x2D\x29\x80\x6F\xAB\x93\xB8\xE6\x36\xCF\xEB\x31\xAE";
const FMS_KEY_SHORT: usize = 36;

/// Version we announce in S1. A non-zero version tells the client we speak
/// the digest form; ffmpeg only verifies S1 when its major byte is >= 3.
const SERVER_VERSION: [u8; 4] = [4, 5, 0, 1];
/// Version a digest client announces in C1 (what ffmpeg sends: 9.0.124.2).
const CLIENT_VERSION: [u8; 4] = [9, 0, 124, 2];

/// Where the digest sits in C1/S1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// Digest in the second 764-byte block (offset base 772).
    Scheme0,
    /// Digest in the first 764-byte block (offset base 8); ffmpeg's choice.
    Scheme1,
}

/// Which form the handshake took.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Random echo, no digest.
    Simple,
    /// HMAC-SHA256 digest in the given position.
    Digest(Scheme),
}

fn hmac(key: &[u8], parts: &[&[u8]]) -> [u8; DIGEST_LEN] {
    // Keys of any length are valid for HMAC, so this cannot fail.
    let mut mac = <hmac::Hmac<Sha256> as KeyInit>::new_from_slice(key)
        .expect("HMAC accepts keys of any length");
    for p in parts {
        mac.update(p);
    }
    let mut out = [0u8; DIGEST_LEN];
    out.copy_from_slice(&mac.finalize().into_bytes());
    out
}

/// Offset of the 32-byte digest inside a 1536-byte packet.
pub fn digest_offset(packet: &[u8; PACKET_SIZE], scheme: Scheme) -> usize {
    let base = match scheme {
        Scheme::Scheme0 => 772,
        Scheme::Scheme1 => 8,
    };
    let sum: usize = packet[base..base + 4].iter().map(|&b| b as usize).sum();
    base + 4 + sum % 728
}

/// HMAC of the packet with the 32 digest bytes at `offset` left out.
fn packet_digest(packet: &[u8; PACKET_SIZE], offset: usize, key: &[u8]) -> [u8; DIGEST_LEN] {
    hmac(key, &[&packet[..offset], &packet[offset + DIGEST_LEN..]])
}

/// Writes the digest for `scheme` into `packet`, returning its offset.
fn imprint(packet: &mut [u8; PACKET_SIZE], scheme: Scheme, key: &[u8]) -> usize {
    let offset = digest_offset(packet, scheme);
    let d = packet_digest(packet, offset, key);
    packet[offset..offset + DIGEST_LEN].copy_from_slice(&d);
    offset
}

/// Finds a valid digest signed with `key`, trying both schemes.
fn find_digest(packet: &[u8; PACKET_SIZE], key: &[u8]) -> Option<(Scheme, usize)> {
    [Scheme::Scheme1, Scheme::Scheme0]
        .into_iter()
        .find_map(|s| {
            let offset = digest_offset(packet, s);
            let d = packet_digest(packet, offset, key);
            (d[..] == packet[offset..offset + DIGEST_LEN]).then_some((s, offset))
        })
}

/// A C2/S2 in the digest form: random bytes whose last 32 bytes are
/// HMAC(HMAC(full_key, peer_digest), first 1504 bytes).
fn signed_response(
    mut random: [u8; PACKET_SIZE],
    full_key: &[u8],
    peer_digest: &[u8],
) -> [u8; PACKET_SIZE] {
    let key = hmac(full_key, &[peer_digest]);
    let split = PACKET_SIZE - DIGEST_LEN;
    let sig = hmac(&key, &[&random[..split]]);
    random[split..].copy_from_slice(&sig);
    random
}

fn response_is_signed(packet: &[u8; PACKET_SIZE], full_key: &[u8], own_digest: &[u8]) -> bool {
    let key = hmac(full_key, &[own_digest]);
    let split = PACKET_SIZE - DIGEST_LEN;
    hmac(&key, &[&packet[..split]])[..] == packet[split..]
}

fn random_packet() -> [u8; PACKET_SIZE] {
    let mut p = [0u8; PACKET_SIZE];
    // Randomness only makes the handshake look like Flash's; if the OS source
    // fails we still interoperate with a fixed pattern.
    if getrandom::fill(&mut p).is_err() {
        for (i, b) in p.iter_mut().enumerate() {
            *b = (i as u8).wrapping_mul(167).wrapping_add(13);
        }
    }
    p
}

/// Accumulates exactly `N` bytes across `feed` calls.
struct Fill<const N: usize> {
    buf: Box<[u8; N]>,
    len: usize,
}

impl<const N: usize> Fill<N> {
    fn new() -> Self {
        Fill {
            buf: Box::new([0u8; N]),
            len: 0,
        }
    }

    /// Copies what it can from `data`; returns bytes consumed.
    fn fill(&mut self, data: &[u8]) -> usize {
        let n = (N - self.len).min(data.len());
        self.buf[self.len..self.len + n].copy_from_slice(&data[..n]);
        self.len += n;
        n
    }

    fn full(&self) -> bool {
        self.len == N
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ServerState {
    C0C1,
    C2,
    Done,
}

/// Server side: reads C0+C1, answers S0+S1+S2 at once (clients wait for all
/// three before sending C2), then reads and discards C2.
///
/// C2 is not verified: ffmpeg publishing echoes S1 instead of signing it, and
/// nothing is gained by refusing either form.
pub struct ServerHandshake {
    state: ServerState,
    c0c1: Fill<{ PACKET_SIZE + 1 }>,
    c2: Fill<PACKET_SIZE>,
    mode: Option<Mode>,
    s1_random: [u8; PACKET_SIZE],
    s2_random: [u8; PACKET_SIZE],
}

impl Default for ServerHandshake {
    fn default() -> Self {
        Self::new()
    }
}

impl ServerHandshake {
    /// A server handshake with random S1/S2 from the OS.
    pub fn new() -> Self {
        Self::with_random(random_packet(), random_packet())
    }

    /// A server handshake with the given S1 and S2 random blocks (tests and
    /// fuzzing want determinism).
    pub fn with_random(s1: [u8; PACKET_SIZE], s2: [u8; PACKET_SIZE]) -> Self {
        ServerHandshake {
            state: ServerState::C0C1,
            c0c1: Fill::new(),
            c2: Fill::new(),
            mode: None,
            s1_random: s1,
            s2_random: s2,
        }
    }

    /// Whether C2 has been read: everything after it is chunk data.
    pub fn is_done(&self) -> bool {
        self.state == ServerState::Done
    }

    /// The form chosen, once C1 was read.
    pub fn mode(&self) -> Option<Mode> {
        self.mode
    }

    /// Consumes handshake bytes from `data`, appending S0+S1+S2 to `out` when
    /// C1 is complete. Returns how many bytes were consumed; bytes past C2 are
    /// left for the chunk reader.
    pub fn feed(&mut self, data: &[u8], out: &mut Vec<u8>) -> Result<usize, Error> {
        let mut used = 0;
        if self.state == ServerState::C0C1 {
            used += self.c0c1.fill(data);
            // C0 is checked as soon as it arrives: a peer speaking something
            // else (HTTP, TLS) is refused at once, not after 1537 bytes.
            if self.c0c1.len > 0 && self.c0c1.buf[0] != RTMP_VERSION {
                return Err(Error::UnsupportedVersion(self.c0c1.buf[0]));
            }
            if !self.c0c1.full() {
                return Ok(used);
            }
            let mut c1 = [0u8; PACKET_SIZE];
            c1.copy_from_slice(&self.c0c1.buf[1..]);
            self.respond(&c1, out);
            self.state = ServerState::C2;
        }
        if self.state == ServerState::C2 {
            used += self.c2.fill(&data[used..]);
            if self.c2.full() {
                self.state = ServerState::Done;
            }
        }
        Ok(used)
    }

    fn respond(&mut self, c1: &[u8; PACKET_SIZE], out: &mut Vec<u8>) {
        // A zero version means a simple-handshake client; a non-zero version
        // whose digest does not verify is answered simply too, as Adobe's
        // server did.
        let digest = if c1[4..8] != [0, 0, 0, 0] {
            find_digest(c1, &FP_KEY[..FP_KEY_SHORT])
        } else {
            None
        };
        out.push(RTMP_VERSION);
        match digest {
            None => {
                self.mode = Some(Mode::Simple);
                let mut s1 = self.s1_random;
                s1[..8].fill(0);
                out.extend_from_slice(&s1);
                // S2 echoes C1.
                out.extend_from_slice(c1);
            }
            Some((scheme, offset)) => {
                self.mode = Some(Mode::Digest(scheme));
                let mut s1 = self.s1_random;
                s1[..4].fill(0);
                s1[4..8].copy_from_slice(&SERVER_VERSION);
                imprint(&mut s1, scheme, &FMS_KEY[..FMS_KEY_SHORT]);
                out.extend_from_slice(&s1);
                let s2 =
                    signed_response(self.s2_random, &FMS_KEY, &c1[offset..offset + DIGEST_LEN]);
                out.extend_from_slice(&s2);
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ClientState {
    S0S1S2,
    Done,
}

/// Client side, for relays and tests: sends C0+C1, reads S0+S1+S2, sends C2.
///
/// In the digest form it verifies the server's S1 digest and S2 signature
/// whenever the server claims digest support (non-zero S1 version), as ffmpeg
/// does, and signs C2 with the server's digest.
pub struct ClientHandshake {
    state: ClientState,
    c1: [u8; PACKET_SIZE],
    c1_digest: Option<usize>,
    s0s1s2: Fill<{ 2 * PACKET_SIZE + 1 }>,
    c2_random: [u8; PACKET_SIZE],
    server_mode: Option<Mode>,
}

impl ClientHandshake {
    /// A client handshake; returns it and the C0+C1 bytes to send first.
    pub fn new(mode: Mode) -> (Self, Vec<u8>) {
        Self::with_random(mode, random_packet(), random_packet())
    }

    /// As [`ClientHandshake::new`] with given C1 and C2 random blocks.
    pub fn with_random(
        mode: Mode,
        c1_random: [u8; PACKET_SIZE],
        c2_random: [u8; PACKET_SIZE],
    ) -> (Self, Vec<u8>) {
        let mut c1 = c1_random;
        c1[..4].fill(0);
        let c1_digest = match mode {
            Mode::Simple => {
                c1[4..8].fill(0);
                None
            }
            Mode::Digest(scheme) => {
                c1[4..8].copy_from_slice(&CLIENT_VERSION);
                Some(imprint(&mut c1, scheme, &FP_KEY[..FP_KEY_SHORT]))
            }
        };
        let mut out = Vec::with_capacity(PACKET_SIZE + 1);
        out.push(RTMP_VERSION);
        out.extend_from_slice(&c1);
        let hs = ClientHandshake {
            state: ClientState::S0S1S2,
            c1,
            c1_digest,
            s0s1s2: Fill::new(),
            c2_random,
            server_mode: None,
        };
        (hs, out)
    }

    /// Whether S2 was read and C2 produced.
    pub fn is_done(&self) -> bool {
        self.state == ClientState::Done
    }

    /// The form the server answered with.
    pub fn server_mode(&self) -> Option<Mode> {
        self.server_mode
    }

    /// Consumes S0+S1+S2 bytes, appending C2 to `out` once they are complete.
    /// Returns how many bytes were consumed.
    pub fn feed(&mut self, data: &[u8], out: &mut Vec<u8>) -> Result<usize, Error> {
        if self.state == ClientState::Done {
            return Ok(0);
        }
        let used = self.s0s1s2.fill(data);
        // As on the server side: S0 is checked as soon as it arrives, so a
        // server speaking something else fails now, not at a timeout.
        if self.s0s1s2.len > 0 && self.s0s1s2.buf[0] != RTMP_VERSION {
            return Err(Error::UnsupportedVersion(self.s0s1s2.buf[0]));
        }
        if !self.s0s1s2.full() {
            return Ok(used);
        }
        let buf = &self.s0s1s2.buf;
        let mut s1 = [0u8; PACKET_SIZE];
        s1.copy_from_slice(&buf[1..=PACKET_SIZE]);
        let mut s2 = [0u8; PACKET_SIZE];
        s2.copy_from_slice(&buf[PACKET_SIZE + 1..]);

        let c2 = match self.c1_digest {
            Some(own) if s1[4..8] != [0, 0, 0, 0] => {
                let (scheme, offset) =
                    find_digest(&s1, &FMS_KEY[..FMS_KEY_SHORT]).ok_or(Error::HandshakeDigest)?;
                if !response_is_signed(&s2, &FMS_KEY, &self.c1[own..own + DIGEST_LEN]) {
                    return Err(Error::HandshakeDigest);
                }
                self.server_mode = Some(Mode::Digest(scheme));
                signed_response(self.c2_random, &FP_KEY, &s1[offset..offset + DIGEST_LEN])
            }
            _ => {
                self.server_mode = Some(Mode::Simple);
                s1
            }
        };
        out.extend_from_slice(&c2);
        self.state = ClientState::Done;
        Ok(used)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(seed: u8) -> [u8; PACKET_SIZE] {
        let mut p = [0u8; PACKET_SIZE];
        let mut x = seed as u32 | 0x100;
        for b in p.iter_mut() {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            *b = x as u8;
        }
        p
    }

    /// Runs a client and a server against each other, feeding in `step`-byte
    /// pieces, and returns both.
    fn run(mode: Mode, step: usize) -> (ClientHandshake, ServerHandshake) {
        let (mut client, c0c1) = ClientHandshake::with_random(mode, pattern(1), pattern(2));
        let mut server = ServerHandshake::with_random(pattern(3), pattern(4));
        let mut s_out = Vec::new();
        for piece in c0c1.chunks(step) {
            assert_eq!(server.feed(piece, &mut s_out).unwrap(), piece.len());
        }
        assert_eq!(s_out.len(), 2 * PACKET_SIZE + 1);
        let mut c2 = Vec::new();
        for piece in s_out.chunks(step) {
            assert_eq!(client.feed(piece, &mut c2).unwrap(), piece.len());
        }
        assert!(client.is_done());
        assert_eq!(c2.len(), PACKET_SIZE);
        // C2 followed by chunk data: the server stops exactly after C2.
        c2.extend_from_slice(b"\x03rest");
        let used = server.feed(&c2, &mut s_out).unwrap();
        assert_eq!(used, PACKET_SIZE);
        assert!(server.is_done());
        (client, server)
    }

    #[test]
    fn simple_form() {
        let (client, server) = run(Mode::Simple, 1537);
        assert_eq!(server.mode(), Some(Mode::Simple));
        assert_eq!(client.server_mode(), Some(Mode::Simple));
    }

    #[test]
    fn digest_scheme1_like_ffmpeg() {
        let (client, server) = run(Mode::Digest(Scheme::Scheme1), 100);
        assert_eq!(server.mode(), Some(Mode::Digest(Scheme::Scheme1)));
        assert_eq!(client.server_mode(), Some(Mode::Digest(Scheme::Scheme1)));
    }

    #[test]
    fn digest_scheme0() {
        let (client, server) = run(Mode::Digest(Scheme::Scheme0), 7);
        assert_eq!(server.mode(), Some(Mode::Digest(Scheme::Scheme0)));
        assert_eq!(client.server_mode(), Some(Mode::Digest(Scheme::Scheme0)));
    }

    #[test]
    fn ffmpeg_c1_layout() {
        // ffmpeg: uptime 0, version 9.0.124.2, digest at sum(bytes 8..12) % 728 + 12.
        let (_, c0c1) =
            ClientHandshake::with_random(Mode::Digest(Scheme::Scheme1), pattern(9), pattern(9));
        assert_eq!(&c0c1[..9], &[3, 0, 0, 0, 0, 9, 0, 124, 2]);
        let mut c1 = [0u8; PACKET_SIZE];
        c1.copy_from_slice(&c0c1[1..]);
        let off = 12 + c1[8..12].iter().map(|&b| b as usize).sum::<usize>() % 728;
        assert_eq!(digest_offset(&c1, Scheme::Scheme1), off);
        assert_eq!(
            find_digest(&c1, &FP_KEY[..30]),
            Some((Scheme::Scheme1, off))
        );
    }

    #[test]
    fn forged_digest_falls_back_to_simple() {
        let mut c0c1 = vec![3u8];
        let mut c1 = pattern(5);
        c1[4..8].copy_from_slice(&CLIENT_VERSION);
        c0c1.extend_from_slice(&c1);
        let mut server = ServerHandshake::with_random(pattern(3), pattern(4));
        let mut out = Vec::new();
        server.feed(&c0c1, &mut out).unwrap();
        assert_eq!(server.mode(), Some(Mode::Simple));
        assert_eq!(&out[1 + PACKET_SIZE..], &c1[..]);
    }

    #[test]
    fn client_rejects_unsigned_server() {
        let (mut client, _) =
            ClientHandshake::with_random(Mode::Digest(Scheme::Scheme1), pattern(1), pattern(2));
        let mut s = vec![3u8];
        let mut s1 = pattern(7);
        s1[4..8].copy_from_slice(&SERVER_VERSION);
        s.extend_from_slice(&s1);
        s.extend_from_slice(&pattern(8));
        assert_eq!(
            client.feed(&s, &mut Vec::new()),
            Err(Error::HandshakeDigest)
        );
    }

    #[test]
    fn client_refuses_a_wrong_s0_at_once() {
        let (mut c, _c0c1) = ClientHandshake::new(Mode::Digest(Scheme::Scheme1));
        let mut out = Vec::new();
        assert!(matches!(
            c.feed(b"H", &mut out),
            Err(Error::UnsupportedVersion(b'H'))
        ));
    }

    #[test]
    fn wrong_version_is_refused() {
        let mut server = ServerHandshake::new();
        let mut data = vec![6u8];
        data.extend_from_slice(&[0u8; PACKET_SIZE]);
        assert_eq!(
            server.feed(&data, &mut Vec::new()),
            Err(Error::UnsupportedVersion(6))
        );
        // Refused on C0 alone: an HTTP request on the port fails at once.
        let mut server = ServerHandshake::new();
        assert_eq!(
            server.feed(b"G", &mut Vec::new()),
            Err(Error::UnsupportedVersion(b'G'))
        );
        let mut server = ServerHandshake::new();
        assert_eq!(server.feed(&[3], &mut Vec::new()), Ok(1));
        assert_eq!(server.feed(&[0; 10], &mut Vec::new()), Ok(10));
    }
}
