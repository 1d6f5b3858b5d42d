//! Runs rill-srt's fuzz target bodies (packet, session) over their
//! committed seed corpus and deterministic mutations of it
//! ([`rill_testsupport::fuzz::smoke`]), so the normal (stable) test run
//! exercises what `cargo +nightly fuzz run <target>` explores at length.
//!
//! `cargo test -p rill-srt --test fuzz_smoke -- --ignored` rewrites
//! the seed corpus from the generators below. The handshakes come from a
//! real [`Caller`] and [`Listener`], so their ids, sequence numbers, cookies
//! and keys are random: a rewrite changes those bytes.

use std::net::SocketAddr;

use rill_srt::crypto::{kk, KeyMaterial};
use rill_srt::fuzzing;
use rill_srt::handshake::reject;
use rill_srt::packet::{
    kind, write_data, AckInfo, Control, ControlPacket, DataPacket, POSITION_SOLO,
};
use rill_srt::{Answer, Caller, Config, Connection, Listener, Seq, Settings};
use rill_testsupport::fuzz;

use rill_testsupport::fuzz::{Seed, Target};

/// Each target, its mutation rounds and its mutation seed: fixed per target
/// (rill-rtmp's targets have 1, 2, 5 and 6, rill-flv's 3 and 4, rill-ts's
/// 7 and 8, rill-mp4's 9 and 10), so a target's inputs do not change when
/// targets come and go.
const TARGETS: [(&str, Target, usize, u64); 2] = [
    ("packet", fuzzing::packet, 20_000, 11),
    ("session", fuzzing::session, 5_000, 12),
];

/// Interesting bytes for SRT: the control flag byte (0x80), control types
/// (handshake to peer error, and 0x7FFF for SRT's own), extension and key
/// flags, data packet flag bytes (solo, even/odd key, retransmitted), the
/// HSv5 magic 0x4A17, the key material signature 0x12 0x20 0x29, the low
/// byte of rejection 1000, stream id punctuation (`#!::`, `=`) and 0xFF
/// (handshake type -1, the top of sequence numbers).
const MAGIC: [u8; 28] = [
    0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x10, 0x12, 0x17, 0x20, 0x21, 0x23, 0x29,
    0x3A, 0x3D, 0x4A, 0x7F, 0x80, 0xC0, 0xC4, 0xC8, 0xD0, 0xE0, 0xE8, 0xFF,
];

#[test]
fn fuzz_targets_over_corpus_and_mutations() {
    fuzz::smoke_all(env!("CARGO_MANIFEST_DIR"), &TARGETS, &MAGIC);
}

// ---- seed corpus generators ----

/// The passphrase `fuzzing::session`'s listener uses.
const SESSION_PASS: &str = "fuzzing passphrase";
/// `fuzzing::session`'s connection: its socket ids and first sequence
/// number.
const SESSION_LOCAL: u32 = 1;
const SESSION_PEER: u32 = 2;
const SESSION_ISN: Seq = Seq(0x7FFF_FFF0);

fn from() -> SocketAddr {
    "192.0.2.1:4000".parse().unwrap()
}

/// The handshake datagrams of a caller with `cfg` and `sid` talking to a
/// listener with `lcfg`: induction request, induction response,
/// conclusion request, and the listener's answer to it (its conclusion
/// response, or a rejection).
struct Handshakes {
    induction: Vec<u8>,
    induction_response: Vec<u8>,
    conclusion: Vec<u8>,
    answer: Vec<u8>,
}

fn handshakes(cfg: Config, lcfg: Config, sid: Option<&str>) -> Handshakes {
    let listener = Listener::new(lcfg).unwrap();
    let mut caller = Caller::new(cfg, sid.map(String::from), 1_000).unwrap();
    let induction = caller.poll_transmit(1_000).unwrap();
    let Answer::Reply(induction_response) = listener.handle(2_000, from(), &induction) else {
        panic!("induction answered")
    };
    assert!(caller.handle(3_000, &induction_response).unwrap().is_none());
    let conclusion = caller.poll_transmit(3_000).unwrap();
    let answer = match listener.handle(4_000, from(), &conclusion) {
        Answer::Conclusion(p) => p.accept(0x0ABC_DEF1, 4_000).1,
        Answer::Reply(rejection) => rejection,
        Answer::Ignore(why) => panic!("conclusion ignored: {why}"),
    };
    Handshakes {
        induction,
        induction_response,
        conclusion,
        answer,
    }
}

fn encrypted(key_len: usize) -> Config {
    Config {
        passphrase: Some(SESSION_PASS.into()),
        key_len,
        ..Config::default()
    }
}

fn control(control: Control, timestamp: u32, dest: u32) -> Vec<u8> {
    ControlPacket {
        control,
        timestamp,
        dest,
    }
    .to_vec()
}

fn ack(number: u32, next: Seq, full: bool) -> Control {
    Control::Ack {
        number,
        next,
        info: full.then_some(AckInfo {
            rtt: 20_000,
            rtt_var: 5_000,
            buffer: 8000,
            packet_rate: 500,
            capacity: 10_000,
            byte_rate: 650_000,
        }),
    }
}

/// A clear data packet (a pattern of `len` bytes), for the session's
/// connection by default.
fn data(seq: Seq, msg: u32, timestamp: u32, len: usize, retransmitted: bool) -> Vec<u8> {
    let payload: Vec<u8> = (0..len)
        .map(|i| {
            if i % 188 == 0 {
                0x47
            } else {
                (i as u8) ^ (seq.0 as u8)
            }
        })
        .collect();
    let mut d = Vec::new();
    write_data(
        &DataPacket {
            seq,
            position: POSITION_SOLO,
            in_order: false,
            key: 0,
            retransmitted,
            msg,
            timestamp,
            dest: SESSION_LOCAL,
            payload: &payload,
        },
        &mut d,
    );
    d
}

/// A data packet encrypted by a connection with fresh keys.
fn encrypted_data(key_len: usize, seq: Seq, len: usize) -> Vec<u8> {
    let (_, keys) = KeyMaterial::generate(SESSION_PASS, key_len).unwrap();
    let mut conn = Connection::new(
        Settings {
            local_id: SESSION_PEER,
            peer_id: SESSION_LOCAL,
            isn: seq,
            recv_latency: 120_000,
            send_latency: 120_000,
            start: 0,
            peer_time_base: 0,
            keys: Some(keys),
            passphrase: Some(SESSION_PASS.into()),
            recv_buffer: 64,
            send_buffer: 64,
            idle_timeout: 5_000_000,
        },
        0,
    );
    let payload: Vec<u8> = (0..len).map(|i| i as u8).collect();
    conn.send(40_000, &payload).unwrap();
    conn.poll_transmit().unwrap().to_vec()
}

fn packet_seeds() -> Vec<Seed> {
    let clear = handshakes(
        Config::default(),
        Config::default(),
        Some("#!::r=live/fuzz,m=publish,u=bob,token=t1"),
    );
    let aes128 = handshakes(encrypted(16), encrypted(16), None);
    let aes256 = handshakes(
        encrypted(32),
        encrypted(32),
        Some("publish:live/x?token=abc"),
    );
    let mut wrong = encrypted(24);
    wrong.passphrase = Some("a wrong passphrase".into());
    let refused = handshakes(wrong, encrypted(24), Some("read:live/x"));
    let (km, _) = KeyMaterial::generate(SESSION_PASS, 24).unwrap();
    let mut retransmitted = encrypted_data(16, Seq(0x7FFF_FFFF), 188 * 7);
    retransmitted[4] |= 0x04;
    let nak = Control::Nak(vec![
        (Seq(5), Seq(5)),
        (Seq(9), Seq(14)),
        (Seq(0x7FFF_FFFE), Seq(1)),
        (Seq(40), Seq(40)),
    ]);
    vec![
        ("induction_request", clear.induction),
        ("induction_response", clear.induction_response),
        ("conclusion_clear_sid", clear.conclusion),
        ("conclusion_response_clear", clear.answer),
        ("conclusion_aes128", aes128.conclusion),
        ("conclusion_response_kmrsp", aes128.answer),
        ("conclusion_aes256_sid", aes256.conclusion),
        ("rejection_bad_secret", refused.answer),
        ("ack_full", control(ack(7, Seq(1234), true), 100_000, 9)),
        ("ack_light", control(ack(0, Seq(0x7FFF_FFFF), false), 5, 9)),
        ("nak_ranges", control(nak, 200_000, 9)),
        ("ackack", control(Control::AckAck(7), 110_000, 9)),
        ("keepalive", control(Control::KeepAlive, 1_000_000, 9)),
        ("shutdown", control(Control::Shutdown, 2_000_000, 9)),
        (
            "dropreq",
            control(
                Control::DropReq {
                    msg: 3,
                    first: Seq(10),
                    last: Seq(12),
                },
                300_000,
                9,
            ),
        ),
        ("kmreq", control(Control::KmReq(km.to_vec()), 400_000, 9)),
        (
            "kmrsp_bad_secret",
            control(Control::KmRsp(vec![0, 0, 0, 4]), 400_100, 9),
        ),
        (
            "peer_error",
            control(Control::Other(kind::PEERERROR, 0), 1, 9),
        ),
        ("data_clear", data(Seq(77), 5, 123_456, 188 * 7, false)),
        ("data_aes128_retransmitted", retransmitted),
        ("data_aes256", encrypted_data(32, Seq(0), 1456)),
        (
            "streamid_access_control",
            b"#!::r=live/x?k=v,m=publish,u=alice,token=t".to_vec(),
        ),
        (
            "streamid_subscribe",
            b"subscribe:/live/x/?token=abc".to_vec(),
        ),
    ]
}

/// Inputs of the session target: each datagram preceded by its length in
/// 6-byte units (one byte) and the time step before it, µs (two bytes,
/// big-endian); datagrams are padded with zeros to their length.
fn session_input(items: &[(u16, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (step, d) in items {
        let units = d.len().div_ceil(6);
        assert!(units <= 255, "datagram of {} bytes", d.len());
        out.push(units as u8);
        out.extend_from_slice(&step.to_be_bytes());
        out.extend_from_slice(d);
        out.resize(out.len() + units * 6 - d.len(), 0);
    }
    out
}

/// Data packets for the session's connection, from its first sequence
/// number on: (offset from it, retransmitted), 5 ms apart.
fn data_run(offsets: &[(u32, bool)], len: usize) -> Vec<(u16, Vec<u8>)> {
    offsets
        .iter()
        .map(|&(k, r)| {
            let ts = 10_000 + k * 5_000;
            (5_000, data(SESSION_ISN.add(k), k + 1, ts, len, r))
        })
        .collect()
}

fn session_seeds() -> Vec<Seed> {
    let enc = handshakes(
        encrypted(16),
        encrypted(16),
        Some("#!::r=live/fuzz,m=publish"),
    );
    let clear = handshakes(
        Config::default(),
        Config::default(),
        Some("publish:live/fuzz?token=abc"),
    );
    let mut wrong = encrypted(32);
    wrong.passphrase = Some("not the fuzzing passphrase".into());
    let refused = handshakes(wrong, encrypted(32), None);

    let handshake_encrypted = {
        let mut v = vec![
            (0, enc.induction),
            (1_000, enc.induction_response),
            (1_000, enc.conclusion),
            (1_000, enc.answer),
        ];
        v.push((2_000, encrypted_data(16, SESSION_ISN, 188)));
        v.push((2_000, encrypted_data(16, SESSION_ISN.add(1), 376)));
        session_input(&v)
    };
    let handshake_clear = {
        let mut v = vec![
            (0, clear.induction),
            (1_000, clear.induction_response),
            (1_000, clear.conclusion),
            (1_000, clear.answer),
        ];
        v.extend(data_run(&[(0, false), (1, false), (2, false)], 188));
        // Time for them to come due.
        v.push((30_000, control(Control::KeepAlive, 50_000, 1)));
        session_input(&v)
    };
    let handshake_refused = session_input(&[
        (0, refused.induction),
        (500, refused.conclusion),
        (500, refused.answer),
    ]);
    // In order across the sequence number wrap (0x7FFFFFF0 + 16 is 0).
    let in_order_wrap = {
        let offsets: Vec<(u32, bool)> = (0..24).map(|k| (k, false)).collect();
        let mut v = data_run(&offsets, 188);
        v.push((30_000, control(ack(0, SESSION_ISN, false), 150_000, 1)));
        session_input(&v)
    };
    // Losses (3, 5 to 7, 15 to 17 across the wrap) and their
    // retransmissions, most in time, 7 too late; a duplicate, a packet
    // beyond the buffer and one behind it.
    let loss_and_retransmit = {
        let offsets = [
            (0, false),
            (1, false),
            (2, false),
            (4, false),
            (3, true),
            (8, false),
            (5, true),
            (6, true),
            (9, false),
            (2, false),
            (10, false),
            (11, false),
            (12, false),
            (13, false),
            (7, true),
            (14, false),
            (18, false),
            (16, true),
            (15, true),
            (19, false),
            (17, true),
            (100, false),
        ];
        let mut v = data_run(&offsets, 376);
        v.push((1_000, data(SESSION_ISN.prev(), 99, 5_000, 188, false)));
        v.push((40_000, control(Control::KeepAlive, 150_000, 1)));
        session_input(&v)
    };
    // What the connection's sending side hears: every datagram of
    // 5 bytes or more is also sent as a payload, so the send buffer fills
    // from 0x7FFFFFF0; ACKs, NAKs (across the wrap), ACKACKs, DROPREQ.
    let sender_controls = {
        let t = |ms: u32| ms * 1_000;
        let mut v = vec![
            (10_000, control(Control::KeepAlive, t(10), 1)),
            (10_000, control(Control::KeepAlive, t(20), 1)),
            (10_000, control(ack(1, SESSION_ISN.add(2), true), t(30), 1)),
            (10_000, control(Control::AckAck(1), t(40), 1)),
        ];
        for k in 0..16u32 {
            v.push((2_000, control(Control::KeepAlive, t(40) + k, 1)));
        }
        v.extend([
            (
                5_000,
                control(
                    Control::Nak(vec![
                        (SESSION_ISN.add(3), SESSION_ISN.add(5)),
                        (SESSION_ISN.add(7), SESSION_ISN.add(7)),
                    ]),
                    t(80),
                    1,
                ),
            ),
            (
                5_000,
                control(
                    Control::Nak(vec![(SESSION_ISN.add(14), SESSION_ISN.add(18))]),
                    t(85),
                    1,
                ),
            ),
            (5_000, control(ack(2, SESSION_ISN.add(10), true), t(90), 1)),
            (5_000, control(ack(0, SESSION_ISN.add(12), false), t(95), 1)),
            (5_000, control(Control::AckAck(2), t(100), 1)),
            (
                5_000,
                control(
                    Control::DropReq {
                        msg: 4,
                        first: SESSION_ISN.add(12),
                        last: SESSION_ISN.add(13),
                    },
                    t(105),
                    1,
                ),
            ),
            (5_000, control(ack(3, SESSION_ISN.add(40), true), t(110), 1)),
        ]);
        session_input(&v)
    };
    // Key material the connection (without a passphrase) cannot use, an
    // encrypted packet it cannot read, types it ignores, then SHUTDOWN and
    // data after it.
    let keys_and_shutdown = {
        let (mut km, _) = KeyMaterial::generate(SESSION_PASS, 16).unwrap();
        let even = km.to_vec();
        km.kk = kk::ODD;
        let odd = km.to_vec();
        let v = vec![
            (1_000, data(SESSION_ISN, 1, 1_000, 188, false)),
            (1_000, control(Control::KmReq(even), 2_000, 1)),
            (1_000, control(Control::KmReq(odd.clone()), 3_000, 1)),
            (1_000, control(Control::KmRsp(odd), 4_000, 1)),
            (
                1_000,
                control(Control::KmReq(vec![0x12, 0x20, 0x29]), 5_000, 1),
            ),
            (1_000, encrypted_data(24, SESSION_ISN.add(1), 188)),
            (
                1_000,
                control(Control::Other(kind::CONGESTION, 0), 6_000, 1),
            ),
            (1_000, control(Control::Other(kind::USER, 1), 7_000, 1)),
            (1_000, control(Control::Other(kind::PEERERROR, 0), 8_000, 1)),
            (1_000, data(SESSION_ISN.add(2), 3, 9_000, 188, false)),
            (1_000, control(Control::Shutdown, 10_000, 1)),
            (1_000, data(SESSION_ISN.add(3), 4, 11_000, 188, false)),
        ];
        session_input(&v)
    };
    // A gap that is never filled (too-late drop after the 20 ms latency),
    // then silence: 0.065 s steps with empty datagrams past the 5 s idle
    // timeout.
    let late_drop_and_timeout = {
        let mut v = data_run(&[(0, false), (1, false), (4, false), (5, false)], 188);
        v.push((60_000, Vec::new()));
        v.extend(data_run(&[(6, false)], 188));
        for _ in 0..80 {
            v.push((0xFFFF, Vec::new()));
        }
        v.extend(data_run(&[(7, false)], 188));
        session_input(&v)
    };
    vec![
        ("handshake_encrypted", handshake_encrypted),
        ("handshake_clear", handshake_clear),
        ("handshake_refused", handshake_refused),
        ("in_order_wrap", in_order_wrap),
        ("loss_and_retransmit", loss_and_retransmit),
        ("sender_controls", sender_controls),
        ("keys_and_shutdown", keys_and_shutdown),
        ("late_drop_and_timeout", late_drop_and_timeout),
    ]
}

/// The generators make what they say (checked here so the corpus stays
/// meaningful when the crate changes).
#[test]
fn seeds_are_what_they_say() {
    use rill_srt::packet::Packet;
    for (name, bytes) in packet_seeds() {
        let parsed = Packet::parse(&bytes);
        if name.starts_with("streamid") {
            assert!(rill_srt::StreamId::parse(std::str::from_utf8(&bytes).unwrap()).is_ok());
        } else {
            assert!(parsed.is_ok(), "{name}: {parsed:?}");
        }
        if name.starts_with("rejection") {
            let Ok(Packet::Control(ControlPacket {
                control: Control::Handshake(h),
                ..
            })) = parsed
            else {
                panic!("{name}")
            };
            assert_eq!(h.rejection(), Some(reject::BAD_SECRET));
        }
    }
    for (name, bytes) in session_seeds() {
        assert!(bytes.len() > 3, "{name}");
        fuzzing::session(&bytes);
    }
}

#[test]
#[ignore = "rewrites fuzz/corpus; run on purpose"]
fn write_seed_corpus() {
    fuzz::write_corpus(
        env!("CARGO_MANIFEST_DIR"),
        vec![("packet", packet_seeds()), ("session", session_seeds())],
    );
}
