//! Runs every fuzz target body of rill-rtmp over its committed seed corpus
//! and a few thousand deterministic mutations of it
//! ([`rill_testsupport::fuzz::smoke`]), so the normal (stable) test run
//! exercises what `cargo +nightly fuzz run <target>` explores at length.
//! (rill-flv's amf0 and flv_tag targets have their own smoke test.)
//!
//! `cargo test -p rill-rtmp --test fuzz_smoke -- --ignored` rewrites
//! the seed corpus from the generators below.

use std::fs;
use std::path::PathBuf;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use rill_flv::fuzzing::seeds::{connect_obj, metadata, AVC_SEQ};
use rill_rtmp::amf0::Value;
use rill_rtmp::chunk::{self, csid, ChunkWriter, MessageHeader};
use rill_rtmp::flv::Frame;
use rill_rtmp::fuzzing;
use rill_rtmp::handshake::{ClientHandshake, Mode, Scheme, ServerHandshake, PACKET_SIZE};
use rill_rtmp::message::{self, Command, Message, UserControl};
use rill_rtmp::{Event, Limits, Session, Settings};
use rill_testsupport::fuzz;

use rill_testsupport::fuzz::{Seed, Target};

/// Each target, its mutation rounds and its mutation seed: fixed per target
/// (rill-flv's amf0 and flv_tag have 3 and 4), so a target's inputs do not
/// change when targets come and go.
const TARGETS: [(&str, Target, usize, u64); 4] = [
    ("handshake", fuzzing::handshake, 2_000, 1),
    ("chunk", fuzzing::chunk, 20_000, 2),
    ("session", fuzzing::session, 8_000, 5),
    ("client", fuzzing::client, 8_000, 6),
];

/// Interesting bytes for RTMP: header markers, AMF markers, lengths.
const MAGIC: [u8; 12] = [
    0x00, 0x01, 0x02, 0x03, 0x07, 0x09, 0x7f, 0x80, 0xc3, 0xff, 0x0a, 0x12,
];

#[test]
fn fuzz_targets_over_corpus_and_mutations() {
    fuzz::smoke_all(env!("CARGO_MANIFEST_DIR"), &TARGETS, &MAGIC);
}

// ---- seed corpus generators ----

fn pattern(seed: u8) -> [u8; PACKET_SIZE] {
    let mut p = [0u8; PACKET_SIZE];
    for (i, b) in p.iter_mut().enumerate() {
        *b = (i as u8).wrapping_mul(151).wrapping_add(seed);
    }
    p
}

fn handshake_seeds() -> Vec<Seed> {
    let (_, simple) = ClientHandshake::with_random(Mode::Simple, pattern(1), pattern(2));
    let (_, digest1) =
        ClientHandshake::with_random(Mode::Digest(Scheme::Scheme1), pattern(3), pattern(4));
    let (_, digest0) =
        ClientHandshake::with_random(Mode::Digest(Scheme::Scheme0), pattern(5), pattern(6));
    let mut full = digest1.clone();
    full.extend_from_slice(&pattern(7));
    full.extend_from_slice(b"\x03\x00\x00\x00");
    vec![
        ("c0c1_simple", simple),
        ("c0c1_digest_scheme1", digest1),
        ("c0c1_digest_scheme0", digest0),
        ("c0c1c2_then_chunk", full),
    ]
}

fn command(
    w: &mut ChunkWriter,
    out: &mut BytesMut,
    stream_id: u32,
    name: &str,
    txn: f64,
    obj: Value,
    args: Vec<Value>,
) {
    let csid = if stream_id == 0 { 3 } else { 8 };
    Message::Command(Command::new(name, txn, obj, args))
        .write(w, csid, stream_id, 0, out)
        .unwrap();
}

fn media(w: &ChunkWriter, out: &mut BytesMut, type_id: u8, ts: u32, body: &[u8]) {
    let header = MessageHeader {
        csid: if type_id == 8 { 4 } else { 6 },
        timestamp: ts,
        type_id,
        stream_id: 1,
    };
    w.write(&header, body, out).unwrap();
}

fn session_seeds() -> Vec<Seed> {
    // Publish, as ffmpeg does it.
    let mut w = ChunkWriter::new();
    let mut p = BytesMut::new();
    w.set_chunk_size(4096, &mut p);
    command(&mut w, &mut p, 0, "connect", 1.0, connect_obj(), vec![]);
    command(
        &mut w,
        &mut p,
        0,
        "releaseStream",
        2.0,
        Value::Null,
        vec![Value::string("cam")],
    );
    command(
        &mut w,
        &mut p,
        0,
        "FCPublish",
        3.0,
        Value::Null,
        vec![Value::string("cam")],
    );
    command(&mut w, &mut p, 0, "createStream", 4.0, Value::Null, vec![]);
    command(
        &mut w,
        &mut p,
        1,
        "publish",
        5.0,
        Value::Null,
        vec![Value::string("cam?t=1"), Value::string("live")],
    );
    let header = MessageHeader {
        csid: 4,
        timestamp: 0,
        type_id: chunk::DATA_AMF0,
        stream_id: 1,
    };
    w.write(&header, &metadata(), &mut p).unwrap();
    media(&w, &mut p, 9, 0, AVC_SEQ);
    media(&w, &mut p, 8, 0, &[0xaf, 0x00, 0x12, 0x10]);
    media(
        &w,
        &mut p,
        9,
        0,
        &[0x17, 0x01, 0, 0, 0x50, 0, 0, 0, 3, 0x65, 0x88, 0x84],
    );
    media(&w, &mut p, 8, 23, &[0xaf, 0x01, 0x21, 0x10, 0x04, 0x60]);
    media(&w, &mut p, 9, 40, b"\x91av01\x12\x00\x0a");
    media(&w, &mut p, 8, 43, b"\x91Opus\xfc\xff\xfe");
    media(
        &w,
        &mut p,
        9,
        0x0100_0000,
        &[0x27, 0x01, 0, 0, 0, 0, 0, 0, 1, 0x41],
    );
    command(
        &mut w,
        &mut p,
        0,
        "FCUnpublish",
        6.0,
        Value::Null,
        vec![Value::string("cam")],
    );
    command(
        &mut w,
        &mut p,
        0,
        "deleteStream",
        7.0,
        Value::Null,
        vec![Value::Number(1.0)],
    );

    // Play, with the calls ffmpeg and Flash players make.
    let mut w = ChunkWriter::new();
    let mut q = BytesMut::new();
    command(&mut w, &mut q, 0, "connect", 1.0, connect_obj(), vec![]);
    Message::WindowAckSize(5_000_000)
        .write(&mut w, 2, 0, 0, &mut q)
        .unwrap();
    command(&mut w, &mut q, 0, "createStream", 2.0, Value::Null, vec![]);
    command(
        &mut w,
        &mut q,
        0,
        "getStreamLength",
        3.0,
        Value::Null,
        vec![Value::string("cam")],
    );
    command(
        &mut w,
        &mut q,
        1,
        "play",
        4.0,
        Value::Null,
        vec![Value::string("cam"), Value::Number(-2000.0)],
    );
    let ubl = UserControl::SetBufferLength {
        stream_id: 1,
        millis: 3000,
    };
    Message::UserControl(ubl)
        .write(&mut w, 2, 0, 0, &mut q)
        .unwrap();
    Message::UserControl(UserControl::PingRequest(99))
        .write(&mut w, 2, 0, 0, &mut q)
        .unwrap();
    command(&mut w, &mut q, 0, "_checkbw", 5.0, Value::Null, vec![]);
    command(&mut w, &mut q, 0, "nope", 6.0, Value::Null, vec![]);
    command(&mut w, &mut q, 1, "closeStream", 0.0, Value::Null, vec![]);

    // Two streams, play2, aggregate media.
    let mut w = ChunkWriter::new();
    let mut r = BytesMut::new();
    command(&mut w, &mut r, 0, "connect", 1.0, connect_obj(), vec![]);
    command(&mut w, &mut r, 0, "createStream", 2.0, Value::Null, vec![]);
    command(&mut w, &mut r, 0, "createStream", 3.0, Value::Null, vec![]);
    let arg = Value::object([("streamName", Value::string("x"))]);
    command(&mut w, &mut r, 2, "play2", 0.0, Value::Null, vec![arg]);
    command(
        &mut w,
        &mut r,
        1,
        "publish",
        4.0,
        Value::Null,
        vec![Value::string("y")],
    );
    let mut agg = Vec::new();
    for (t, body) in [
        (8u8, &[0xafu8, 1, 9][..]),
        (9, &[0x27, 1, 0, 0, 0, 0, 0, 0, 1, 0x41][..]),
    ] {
        agg.push(t);
        agg.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
        agg.extend_from_slice(&[0, 0, 10, 0, 0, 0, 0]);
        agg.extend_from_slice(body);
        agg.extend_from_slice(&(body.len() as u32 + 11).to_be_bytes());
    }
    let header = MessageHeader {
        csid: 6,
        timestamp: 10,
        type_id: chunk::AGGREGATE,
        stream_id: 1,
    };
    w.write(&header, &agg, &mut r).unwrap();

    // AMF0 amplification: a command of 5000 one-byte nulls.
    let mut w = ChunkWriter::new();
    let mut a = BytesMut::new();
    command(&mut w, &mut a, 0, "connect", 1.0, connect_obj(), vec![]);
    let nulls = Value::StrictArray(vec![Value::Null; 5000]);
    command(&mut w, &mut a, 0, "nope", 2.0, Value::Null, vec![nulls]);

    // Unfinished messages on several chunk streams, past the fuzz target's
    // max_partial_bytes (16 KiB).
    let mut w = ChunkWriter::new();
    let mut u = BytesMut::new();
    command(&mut w, &mut u, 0, "connect", 1.0, connect_obj(), vec![]);
    w.set_chunk_size(4096, &mut u);
    for csid in 4..9 {
        u.extend_from_slice(&first_chunk(4096, csid, 60_000));
    }

    vec![
        ("publish_ffmpeg", p.to_vec()),
        ("play", q.to_vec()),
        ("two_streams_aggregate", r.to_vec()),
        ("amf_null_array", a.to_vec()),
        ("partial_budget", u.to_vec()),
    ]
}

/// The first chunk (format 0 header and `chunk_size` bytes) of a `len`-byte
/// video message on `csid`: a message begun and never finished.
fn first_chunk(chunk_size: u32, csid: u32, len: usize) -> Vec<u8> {
    let header = MessageHeader {
        csid,
        timestamp: 0,
        type_id: 9,
        stream_id: 1,
    };
    let whole = chunk::serialize_message(chunk_size, &header, &[&vec![0x17; len]]).unwrap();
    let basic = if csid < 64 { 1 } else { 2 };
    whole[..(basic + 11 + chunk_size as usize).min(whole.len())].to_vec()
}

fn chunk_seeds() -> Vec<Seed> {
    let mut formats = Vec::new();
    formats.extend_from_slice(&[0x04, 0x00, 0x03, 0xE8, 0, 0, 2, 8, 1, 0, 0, 0, 0xAF, 1]);
    formats.extend_from_slice(&[0x44, 0, 0, 23, 0, 0, 3, 8, 0xAF, 1, 2]);
    formats.extend_from_slice(&[0x84, 0, 0, 24, 0xAF, 1, 3]);
    formats.extend_from_slice(&[0xC4, 0xAF, 1, 4]);
    let ext = chunk::serialize_message(
        128,
        &MessageHeader {
            csid: 6,
            timestamp: 0x0100_0000,
            type_id: 9,
            stream_id: 1,
        },
        &[&[7u8; 300]],
    );
    let mut sized = BytesMut::new();
    let mut w = ChunkWriter::new();
    w.set_chunk_size(200, &mut sized);
    for csid in [3u32, 64, 320] {
        let h = MessageHeader {
            csid,
            timestamp: 5,
            type_id: 20,
            stream_id: 0,
        };
        w.write(&h, &[1u8; 450], &mut sized).unwrap();
    }
    let mut interleaved = vec![0x04, 0, 0, 10, 0, 0, 200, 8, 1, 0, 0, 0];
    interleaved.extend_from_slice(&[1u8; 128]);
    interleaved.extend_from_slice(&[0x06, 0, 0, 10, 0, 0, 130, 9, 1, 0, 0, 0]);
    interleaved.extend_from_slice(&[2u8; 128]);
    interleaved.push(0xC4);
    interleaved.extend_from_slice(&[1u8; 72]);
    interleaved.push(0xC6);
    interleaved.extend_from_slice(&[2u8; 2]);
    interleaved.extend_from_slice(&[0x02, 0, 0, 0, 0, 0, 4, 2, 0, 0, 0, 0, 0, 0, 0, 4]);
    // Eight chunk streams at the fuzz target's max_partial_bytes (8 KiB),
    // then one more chunk.
    let mut partial = BytesMut::new();
    let mut w = ChunkWriter::new();
    w.set_chunk_size(1024, &mut partial);
    for csid in 2..10 {
        partial.extend_from_slice(&first_chunk(1024, csid, 60_000));
    }
    partial.extend_from_slice(&[0xC2]);
    partial.extend_from_slice(&[0x17; 1024]);
    // The largest chunk size, then a large message begun.
    let mut huge = BytesMut::new();
    w.set_chunk_size(1 << 16, &mut huge);
    huge.extend_from_slice(&first_chunk(1 << 16, 4, 65_000)[..12 + 100]);
    vec![
        ("formats_0123", formats),
        ("extended_timestamp", ext.unwrap().to_vec()),
        ("chunk_size_and_csids", sized.to_vec()),
        ("interleaved_abort", interleaved),
        ("partial_budget", partial.to_vec()),
        ("huge_chunk_size", huge.to_vec()),
    ]
}

/// What the server core says to the client of [`fuzzing::client`] (which
/// plays `a`, then publishes `b`), after the handshake: every request
/// accepted, then media for the player and the end of its stream; or every
/// request refused.
fn server_talk(accept: bool) -> Vec<u8> {
    const HANDSHAKE: usize = 2 * PACKET_SIZE + 1;
    let zero = Duration::ZERO;
    let mut client = fuzzing::client_after_handshake();
    let mut server = Session::with_handshake(
        Limits::default(),
        Settings::default(),
        ServerHandshake::with_random(pattern(1), pattern(2)),
        zero,
    );
    // The client's handshake is done already: the server gets one of its
    // own (simple form), and neither side's handshake bytes are kept.
    let mut hs = vec![3u8];
    hs.extend_from_slice(&[0; 2 * PACKET_SIZE]);
    server.feed(zero, &hs).unwrap();
    let (mut from_client, mut from_server) = (Vec::new(), Vec::new());
    let (mut client_skip, mut server_skip) = (HANDSHAKE, HANDSHAKE);
    let mut play = None;
    loop {
        let mut moved = false;
        while let Some(b) = client.poll_transmit() {
            let n = client_skip.min(b.len());
            client_skip -= n;
            from_client.extend_from_slice(&b[n..]);
        }
        if !from_client.is_empty() {
            moved = true;
            server
                .feed(zero, &std::mem::take(&mut from_client))
                .unwrap();
        }
        while let Some(ev) = server.poll_event() {
            match ev {
                Event::PublishRequested { stream_id, .. } if accept => {
                    server.accept_publish(stream_id).unwrap()
                }
                Event::PublishRequested { stream_id, .. } => {
                    server.reject_publish(stream_id, "taken").unwrap()
                }
                Event::PlayRequested { stream_id, .. } if accept => {
                    server.accept_play(stream_id).unwrap();
                    play = Some(stream_id);
                    let frames = [
                        (rill_abi::RILL_CODEC_H264, rill_abi::RILL_FRAME_CONFIG, 0),
                        (rill_abi::RILL_CODEC_H264, rill_abi::RILL_FRAME_KEY, 0),
                        (rill_abi::RILL_CODEC_AAC, rill_abi::RILL_FRAME_KEY, 21_000),
                        (rill_abi::RILL_CODEC_H265, rill_abi::RILL_FRAME_KEY, 40_000),
                    ];
                    for (codec, flags, dts) in frames {
                        let f = Frame {
                            codec,
                            flags,
                            pts: dts + 40_000,
                            dts,
                            payload: Bytes::from_static(&[0, 0, 0, 2, 0x65, 0x88]),
                        };
                        server.send_frame(stream_id, &f).unwrap();
                    }
                }
                Event::PlayRequested { stream_id, .. } => {
                    server.reject_play(stream_id, "nobody").unwrap()
                }
                _ => {}
            }
        }
        while let Some(b) = server.poll_transmit() {
            let n = server_skip.min(b.len());
            server_skip -= n;
            from_server.extend_from_slice(&b[n..]);
            if !b[n..].is_empty() {
                moved = true;
                client.feed(zero, &b[n..]).unwrap();
            }
        }
        while client.poll_event().is_some() {}
        if !moved {
            break;
        }
    }
    if let Some(id) = play {
        server.notify_unpublished(id).unwrap();
        while let Some(b) = server.poll_transmit() {
            from_server.extend_from_slice(&b);
        }
    }
    from_server
}

fn client_seeds() -> Vec<Seed> {
    // Control messages a server may send at any time.
    let mut w = ChunkWriter::new();
    let mut control = BytesMut::new();
    for m in [
        Message::WindowAckSize(1000),
        Message::SetPeerBandwidth {
            size: 5000,
            limit: 2,
        },
        Message::UserControl(UserControl::PingRequest(77)),
        Message::UserControl(UserControl::StreamBegin(1)),
        Message::Acknowledgement(3073),
        Message::SetChunkSize(256),
    ] {
        m.write(&mut w, csid::CONTROL, 0, 0, &mut control).unwrap();
    }
    let info = message::status("status", "NetConnection.Connect.Success", "ok");
    Message::Command(Command::new("_result", 1.0, Value::Null, vec![info]))
        .write(&mut w, csid::COMMAND, 0, 0, &mut control)
        .unwrap();
    let info = message::status("error", "NetConnection.Connect.Rejected", "no");
    let mut refused = BytesMut::new();
    Message::Command(Command::new("_error", 1.0, Value::Null, vec![info]))
        .write(&mut ChunkWriter::new(), csid::COMMAND, 0, 0, &mut refused)
        .unwrap();
    vec![
        ("server_accepts", server_talk(true)),
        ("server_refuses", server_talk(false)),
        ("control", control.to_vec()),
        ("connect_refused", refused.to_vec()),
    ]
}

#[test]
#[ignore = "rewrites fuzz/corpus; run on purpose"]
fn write_seed_corpus() {
    let mut sets: [(&str, Vec<Seed>); 4] = [
        ("handshake", handshake_seeds()),
        ("chunk", chunk_seeds()),
        ("session", session_seeds()),
        ("client", client_seeds()),
    ];
    // Real ffmpeg byte streams, after the handshake, cut to a seed's size.
    let mut real = Vec::new();
    for (name, file) in [
        ("ffmpeg5_publish", "ffmpeg5.1_publish_h264_aac.bin"),
        ("ffmpeg5_play", "ffmpeg5.1_play.bin"),
        ("ffmpeg9_publish_enhanced", "ffmpeg9_publish_hevc_opus.bin"),
    ] {
        let data = fs::read(
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("tests/data")
                .join(file),
        )
        .unwrap();
        let stream = &data[2 * PACKET_SIZE + 1..];
        real.push((name, stream[..stream.len().min(4096)].to_vec()));
    }
    sets[1].1.extend(real.iter().cloned());
    sets[2].1.extend(real);
    fuzz::write_corpus(env!("CARGO_MANIFEST_DIR"), sets.into());
}
