//! Fuzz target bodies, shared by the cargo-fuzz targets under `fuzz/` and
//! the stable smoke test (`tests/fuzz_smoke.rs`). Each must never panic.

use std::net::SocketAddr;

use crate::conn::{Connection, Settings};
use crate::handshake::{ext_flag, hs_type};
use crate::listener::{Answer, Config, Listener};
use crate::packet::{Control, Packet, MAX_DATAGRAM};
use crate::seq::Seq;

/// Parses a datagram; what parses must write back to something that parses
/// the same.
pub fn packet(data: &[u8]) {
    if let Ok(Packet::Control(mut c)) = Packet::parse(data) {
        let again = c.to_vec();
        if again.len() <= MAX_DATAGRAM {
            let back = Packet::parse(&again).expect("a written packet parses");
            if let (Control::Handshake(h), Packet::Control(b)) = (&mut c.control, &back) {
                if let Control::Handshake(b) = &b.control {
                    if h.version >= 5 && h.kind == hs_type::CONCLUSION {
                        // A conclusion's extension flags are written from
                        // the extensions it has, whatever flags it came
                        // with.
                        let mut flags = 0;
                        for (present, flag) in [
                            (b.srt.is_some(), ext_flag::HSREQ),
                            (b.km.is_some(), ext_flag::KMREQ),
                            (b.stream_id.is_some(), ext_flag::CONFIG),
                        ] {
                            if present {
                                flags |= flag;
                            }
                        }
                        assert_eq!(b.extension, flags);
                        h.extension = flags;
                    }
                }
            }
            assert_eq!(back, Packet::Control(c));
        }
    }
    let _ = crate::streamid::StreamId::parse(&String::from_utf8_lossy(data));
    if let Ok(km) = crate::crypto::KeyMaterial::parse(data) {
        assert_eq!(crate::crypto::KeyMaterial::parse(&km.to_vec()), Ok(km));
    }
}

/// Feeds datagrams (length-prefixed by one byte, then 2 bytes of time
/// step) to a listener (conclusions get a valid cookie) and an established
/// connection.
pub fn session(data: &[u8]) {
    // No passphrase: unwrapping key material costs a PBKDF2 of 2048 rounds
    // per conclusion; its parser is in the `packet` target.
    let listener = Listener::new(Config {
        passphrase: None,
        recv_buffer: 64,
        send_buffer: 64,
        ..Config::default()
    })
    .expect("random source");
    let from: SocketAddr = "192.0.2.1:4000".parse().expect("address");
    let mut conn = Connection::new(
        Settings {
            local_id: 1,
            peer_id: 2,
            isn: Seq(0x7FFF_FFF0),
            recv_latency: 20_000,
            send_latency: 20_000,
            start: 0,
            peer_time_base: 0,
            keys: None,
            passphrase: None,
            recv_buffer: 64,
            send_buffer: 64,
            idle_timeout: 5_000_000,
        },
        0,
    );
    let mut now = 0u64;
    let mut rest = data;
    while rest.len() >= 3 {
        let len = usize::from(rest[0]) * 6;
        now += u64::from(u16::from_be_bytes([rest[1], rest[2]]));
        rest = &rest[3..];
        let (d, r) = rest.split_at(len.min(rest.len()));
        rest = r;
        // A conclusion gets the cookie the listener expects, so the
        // checks past it (versions, flags, key material) are explored too.
        let mut hs = d.to_vec();
        if crate::packet::is_handshake(&hs) && hs.len() >= 48 && hs[36..40] == [0xFF; 4] {
            hs[44..48].copy_from_slice(&listener.cookie_now(from, now).to_be_bytes());
        }
        if let Answer::Conclusion(p) = listener.handle(now, from, &hs) {
            let _ = p.accept(9, now);
        }
        let _ = conn.handle(now, d);
        if d.len() > 4 {
            let _ = conn.send(now, &d[..d.len().min(crate::MAX_PAYLOAD)]);
        }
        conn.tick(now);
        while conn.poll_deliver(now).is_some() {}
        while conn.poll_transmit().is_some() {}
    }
}
