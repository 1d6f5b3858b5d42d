//! Fuzz target bodies, shared by the cargo-fuzz targets under `fuzz/` and by
//! the stable smoke test (`tests/fuzz_smoke.rs`), so both exercise the same
//! properties. Each function must never panic on any input; the assertions
//! inside are the properties being checked.

use std::time::Duration;

use bytes::Bytes;

use crate::chunk::{self, ChunkReader, MessageHeader, RawMessage};
use crate::client::{ClientEvent, ClientSession, ClientSettings, Connect};
use crate::flv;
use crate::handshake::{ClientHandshake, Mode, Scheme, ServerHandshake, PACKET_SIZE};
use crate::limits::Limits;
use crate::session::{serialize_frame, Event, Session, Settings};

/// Both handshake sides on arbitrary bytes, fed in pieces whose size the
/// first byte chooses.
pub fn handshake(data: &[u8]) {
    let step = data.first().map_or(1, |&b| b as usize * 13 + 1);
    let mut server = ServerHandshake::with_random([7; PACKET_SIZE], [9; PACKET_SIZE]);
    let mut out = Vec::new();
    for piece in data.chunks(step) {
        match server.feed(piece, &mut out) {
            Ok(used) => {
                assert!(used <= piece.len());
                if used < piece.len() {
                    assert!(server.is_done());
                    break;
                }
            }
            Err(_) => break,
        }
    }
    // S0+S1+S2 or nothing, never anything else.
    assert!(out.is_empty() || out.len() == 2 * PACKET_SIZE + 1);

    for mode in [Mode::Simple, Mode::Digest(Scheme::Scheme1)] {
        let (mut client, c0c1) =
            ClientHandshake::with_random(mode, [1; PACKET_SIZE], [2; PACKET_SIZE]);
        assert_eq!(c0c1.len(), PACKET_SIZE + 1);
        let mut c2 = Vec::new();
        if let Ok(used) = client.feed(data, &mut c2) {
            assert!(used <= data.len());
            assert!(c2.is_empty() || c2.len() == PACKET_SIZE);
        }
    }
}

fn fuzz_limits() -> Limits {
    Limits {
        max_message_size: 1 << 16,
        max_chunk_streams: 8,
        min_chunk_size: 1,
        max_chunk_size: 1 << 16,
        // Small enough for short inputs to reach it.
        max_partial_bytes: 1 << 13,
        ..Limits::default()
    }
}

fn read(data: &[u8], split: usize) -> Result<Vec<RawMessage>, crate::Error> {
    let mut r = ChunkReader::new(&fuzz_limits());
    let mut out = Vec::new();
    let (a, b) = data.split_at(split.min(data.len()));
    r.feed(a, &mut out)?;
    r.feed(b, &mut out)?;
    Ok(out)
}

/// The chunk reader: any split of the input gives the same messages, and
/// every message survives re-chunking.
pub fn chunk(data: &[u8]) {
    let whole = read(data, data.len());
    let split_at = data.first().map_or(0, |&b| b as usize);
    let split = read(data, split_at);
    match (&whole, &split) {
        (Ok(a), Ok(b)) => assert_eq!(a, b),
        (Err(a), Err(b)) => assert_eq!(a, b),
        _ => panic!("split changed the outcome: {whole:?} vs {split:?}"),
    }
    let Ok(msgs) = whole else { return };
    for m in msgs {
        let header = MessageHeader {
            csid: m.csid,
            timestamp: m.timestamp,
            type_id: m.type_id,
            stream_id: m.stream_id,
        };
        // Protocol control would change the reader's state; re-read only data.
        if m.type_id == chunk::SET_CHUNK_SIZE || m.type_id == chunk::ABORT {
            continue;
        }
        let bytes = chunk::serialize_message(128, &header, &[&m.payload]).expect("fits");
        let again = read(&bytes, bytes.len()).expect("re-chunked message must parse");
        assert_eq!(again, vec![m]);
    }
}

/// A whole server session after a valid handshake: the host accepts odd and
/// rejects even stream ids, and sends a frame to every player. Everything the
/// session writes must parse as a chunk stream.
pub fn session(data: &[u8]) {
    let limits = Limits {
        max_message_size: 1 << 20,
        max_queued_bytes: 1 << 20,
        max_partial_bytes: 1 << 14,
        ..Limits::default()
    };
    let mut s = Session::with_handshake(
        limits,
        Settings::default(),
        ServerHandshake::with_random([1; PACKET_SIZE], [2; PACKET_SIZE]),
        Duration::ZERO,
    );
    let mut hs = vec![3u8];
    hs.extend_from_slice(&[0u8; 2 * PACKET_SIZE]);
    s.feed(Duration::ZERO, &hs).expect("valid handshake");
    let mut peer = Peer::default();
    peer.drain(&mut s);
    let step = data.first().map_or(1, |&b| b as usize * 7 + 1);
    for piece in data.chunks(step) {
        if s.feed(Duration::ZERO, piece).is_err() {
            break;
        }
        peer.drain(&mut s);
    }
    s.close();
    peer.drain(&mut s);
}

/// The client session configured as in [`client`] (simple handshake; a
/// play of `a`, then a publish of `b`, asked before connecting), with the
/// handshake done: what it reads next is the server's chunk stream. The seed
/// corpus is what a server says to it.
pub fn client_after_handshake() -> ClientSession {
    let settings = ClientSettings {
        handshake: Mode::Simple,
        response_timeout: Some(Duration::from_secs(10)),
        idle_timeout: Some(Duration::from_secs(5)),
        ..ClientSettings::default()
    };
    let mut c = ClientSession::with_handshake(
        fuzz_limits(),
        settings,
        Connect::new("live", "rtmp://127.0.0.1/live"),
        ClientHandshake::with_random(Mode::Simple, [1; PACKET_SIZE], [2; PACKET_SIZE]),
        Duration::ZERO,
    );
    c.play(Duration::ZERO, "a").expect("open");
    c.publish(Duration::ZERO, "b").expect("open");
    let mut s0s1s2 = vec![3u8];
    s0s1s2.extend_from_slice(&[0u8; 2 * PACKET_SIZE]);
    c.feed(Duration::ZERO, &s0s1s2).expect("valid handshake");
    c
}

/// A client session fed arbitrary server bytes in pieces, 10 simulated
/// milliseconds passing per piece (long inputs reach the deadlines): it publishes a frame whenever a publish starts
/// and polls its deadlines. Everything it writes must parse as a chunk
/// stream.
pub fn client(data: &[u8]) {
    let mut c = client_after_handshake();
    let mut peer = Peer::default();
    // C0+C1 and C2: 1 + 2 * 1536 bytes before the chunk stream.
    peer.drain_client(&mut c);
    let step = data.first().map_or(1, |&b| b as usize * 5 + 1);
    for (i, piece) in data.chunks(step).enumerate() {
        let now = Duration::from_millis(10 * i as u64);
        c.handle_timeout(now);
        assert!(
            c.poll_timeout().is_none_or(|t| t > now),
            "a deadline that passed survived handle_timeout"
        );
        if c.feed(now, piece).is_err() {
            break;
        }
        peer.drain_client(&mut c);
    }
    c.close();
    peer.drain_client(&mut c);
}

/// The host and the client in [`session`]: answers requests, reads output.
struct Peer {
    reader: ChunkReader,
    skipped_handshake: usize,
}

impl Default for Peer {
    fn default() -> Self {
        Peer {
            reader: ChunkReader::new(&Limits {
                max_message_size: u32::MAX >> 1,
                max_chunk_streams: 1 << 16,
                min_chunk_size: 1,
                max_chunk_size: u32::MAX >> 1,
                ..Limits::default()
            }),
            skipped_handshake: 0,
        }
    }
}

impl Peer {
    fn drain_client(&mut self, c: &mut ClientSession) {
        while let Some(ev) = c.poll_event() {
            if let ClientEvent::Publishing { stream_id, .. } = ev {
                let frame = flv::Frame {
                    codec: rill_abi::RILL_CODEC_H264,
                    flags: rill_abi::RILL_FRAME_KEY,
                    pts: 40_000,
                    dts: 0,
                    payload: Bytes::from_static(&[0, 0, 0, 1, 0x65]),
                };
                c.send_frame(stream_id, &frame)
                    .expect("publishing stream takes frames");
                c.send_tag(stream_id, flv::TAG_AUDIO, 7, &[0xAF, 1, 2])
                    .expect("publishing stream takes tags");
            }
        }
        while let Some(b) = c.poll_transmit() {
            self.read_output(&b);
        }
    }

    /// Reads a session's output after its 3073 handshake bytes.
    fn read_output(&mut self, b: &[u8]) {
        let skip = (2 * PACKET_SIZE + 1 - self.skipped_handshake).min(b.len());
        self.skipped_handshake += skip;
        let mut msgs = Vec::new();
        self.reader
            .feed(&b[skip..], &mut msgs)
            .expect("session output must be a valid chunk stream");
    }

    fn drain(&mut self, s: &mut Session) {
        while let Some(ev) = s.poll_event() {
            match ev {
                Event::PublishRequested { stream_id, .. } => {
                    let _ = if stream_id % 2 == 1 {
                        s.accept_publish(stream_id)
                    } else {
                        s.reject_publish(stream_id, "no")
                    };
                }
                Event::PlayRequested { stream_id, .. } => {
                    if stream_id % 2 == 1 && s.accept_play(stream_id).is_ok() {
                        let frame = flv::Frame {
                            codec: rill_abi::RILL_CODEC_AAC,
                            flags: rill_abi::RILL_FRAME_KEY,
                            pts: 0,
                            dts: 0,
                            payload: Bytes::from_static(&[1, 2, 3]),
                        };
                        s.send_frame(stream_id, &frame)
                            .expect("playing stream takes frames");
                    } else {
                        let _ = s.reject_play(stream_id, "no");
                    }
                }
                Event::Media { frame, .. } | Event::Metadata { frame, .. } => {
                    let params = crate::session::ChunkParams {
                        chunk_size: 4096,
                        stream_id: 1,
                    };
                    let _ = serialize_frame(&params, &frame);
                }
                _ => {}
            }
        }
        while let Some(b) = s.poll_transmit() {
            self.read_output(&b);
        }
    }
}
