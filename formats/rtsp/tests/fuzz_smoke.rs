//! Runs rill-rtsp's fuzz target bodies (request, session) over their
//! committed seed corpus and deterministic mutations of it
//! ([`rill_testsupport::fuzz::smoke`]), so the normal (stable) test run
//! exercises what `cargo +nightly fuzz run <target>` explores at length.
//!
//! `cargo test -p rill-rtsp --test fuzz_smoke -- --ignored` rewrites the
//! seed corpus from the generators below.

use rill_rtsp::auth::{authorization, Offered};
use rill_rtsp::fuzzing;
use rill_testsupport::fuzz::{self, Seed, Target};

/// Each target, its mutation rounds and its mutation seed: fixed per target
/// (rill-rtmp's targets have 1, 2, 5 and 6, rill-flv's 3 and 4, rill-ts's
/// 7 and 8, rill-mp4's 9 and 10, rill-srt's 11 and 12), so a target's
/// inputs do not change when targets come and go.
const TARGETS: [(&str, Target, usize, u64); 2] = [
    ("request", fuzzing::request, 20_000, 15),
    ("session", fuzzing::session, 5_000, 16),
];

/// Interesting bytes for RTSP: `$` and channels, line ends, `:` `;` `=`
/// `,` `-` `/` `?` `"` and space, digits, and the first letters of the
/// methods.
const MAGIC: [u8; 28] = [
    0x00, 0x01, 0x02, 0x03, 0xFF, b'$', b'\r', b'\n', b':', b';', b'=', b',', b'-', b'/', b'?',
    b'"', b' ', b'0', b'1', b'9', b'A', b'D', b'O', b'P', b'R', b'S', b'T', b'G',
];

const SDP: &str = "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=No Name\r\nt=0 0\r\na=tool:libavformat 59.27.100\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=fmtp:96 packetization-mode=1\r\na=control:streamid=0\r\nm=audio 0 RTP/AVP 97\r\na=rtpmap:97 MPEG4-GENERIC/44100/1\r\na=control:streamid=1\r\n";

fn announce() -> String {
    format!("ANNOUNCE rtsp://127.0.0.1:8554/live/x RTSP/1.0\r\nContent-Type: application/sdp\r\nCSeq: 2\r\nUser-Agent: Lavf59.27.100\r\nContent-Length: {}\r\n\r\n{SDP}", SDP.len())
}

fn setup(i: usize, cseq: u32, session: &str, transport: &str) -> String {
    let s = if session.is_empty() {
        String::new()
    } else {
        format!("Session: {session}\r\n")
    };
    format!("SETUP rtsp://127.0.0.1:8554/live/x/streamid={i} RTSP/1.0\r\nTransport: {transport}\r\nCSeq: {cseq}\r\nUser-Agent: Lavf59.27.100\r\n{s}\r\n")
}

fn rtp(channel: u8, seq: u16, len: usize) -> Vec<u8> {
    let mut p = vec![b'$', channel];
    p.extend_from_slice(&((12 + len) as u16).to_be_bytes());
    p.extend_from_slice(&[0x80, 0x60]);
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&(u32::from(seq) * 3000).to_be_bytes());
    p.extend_from_slice(&0x1234_5678u32.to_be_bytes());
    p.extend((0..len).map(|i| i as u8));
    p
}

fn request_seeds() -> Vec<Seed> {
    let with_chunks = |c: [u8; 4], body: Vec<u8>| {
        let mut v = c.to_vec();
        v.extend(body);
        v
    };
    let digest = Offered::Digest {
        realm: "Rill".into(),
        nonce: "0123456789abcdef".into(),
        opaque: Some("op".into()),
        qop_auth: true,
    };
    let auth = authorization(&digest, "alice", "pw", "DESCRIBE", "rtsp://h/live/cam", 1);
    let basic = authorization(&Offered::Basic, "bob", "pw", "DESCRIBE", "", 1);
    let mut publish = announce().into_bytes();
    publish.extend(setup(0, 3, "", "RTP/AVP/TCP;unicast;interleaved=0-1;mode=record").bytes());
    publish.extend(b"RECORD rtsp://127.0.0.1:8554/live/x RTSP/1.0\r\nRange: npt=0.000-\r\nCSeq: 5\r\nSession: 0a1b2c\r\n\r\n");
    publish.extend(rtp(0, 1, 40));
    publish.extend(rtp(1, 2, 20));
    publish.extend(b"GET_PARAMETER rtsp://h/live/x RTSP/1.0\r\nCSeq: 6\r\nSession: 0a1b2c\r\n\r\n");
    let mut many = b"OPTIONS * RTSP/1.0\r\nCSeq: 1\r\n".to_vec();
    for i in 0..20 {
        many.extend(format!("X-H{i}: v\r\n").bytes());
    }
    many.extend(b"\r\n");
    vec![
        ("ffmpeg_publish_tcp", with_chunks([7, 1, 33, 64], publish)),
        ("options", with_chunks([1, 1, 1, 1], b"OPTIONS rtsp://127.0.0.1:8554/live/x RTSP/1.0\r\nCSeq: 1\r\nUser-Agent: LibVLC/3.0.18 (LIVE555 Streaming Media v2016.11.28)\r\n\r\n".to_vec())),
        ("describe_digest", with_chunks([64, 64, 64, 64], format!("DESCRIBE rtsp://h/live/cam RTSP/1.0\r\nCSeq: 3\r\nAccept: application/sdp\r\nAuthorization: {auth}\r\n\r\n").into_bytes())),
        ("describe_basic", with_chunks([5, 9, 2, 40], format!("DESCRIBE rtsp://h/live/cam RTSP/1.0\r\nCSeq: 3\r\nAuthorization: {basic}\r\n\r\n").into_bytes())),
        ("setup_udp_alternatives", with_chunks([3, 3, 3, 3], setup(1, 4, "", "RTP/AVP/UDP;unicast;client_port=5000-5001;ssrc=0A0B0C0D,RTP/AVP/TCP;unicast;interleaved=2-3;mode=\"PLAY\"").into_bytes())),
        ("play_range", with_chunks([10, 20, 30, 40], b"PLAY rtsp://h/live/cam/ RTSP/1.0\r\nCSeq: 5\r\nSession: 12345678;timeout=60\r\nRange: npt=1:02:03.5-4000\r\n\r\n".to_vec())),
        ("response_rtp_info", with_chunks([2, 50, 2, 50], b"RTSP/1.0 200 OK\r\nCSeq: 5\r\nSession: 12345678;timeout=60\r\nRange: npt=0.000-\r\nRTP-Info: url=rtsp://h/x/trackID=0;seq=1;rtptime=2,url=rtsp://h/x/trackID=1;seq=3\r\n\r\n".to_vec())),
        ("response_401", with_chunks([60, 60, 60, 60], b"RTSP/1.0 401 Unauthorized\r\nCSeq: 2\r\nWWW-Authenticate: Digest realm=\"Rill\", nonce=\"abc\", qop=\"auth\"\r\nWWW-Authenticate: Basic realm=\"Rill\"\r\n\r\n".to_vec())),
        ("folded_and_lax", with_chunks([4, 4, 4, 4], b"\r\n\r\nSET_PARAMETER rtsp://h/x RTSP/1.0\nCSeq: 7\nX-Long: a\n  b\nContent-Length: 5\n\nx: y\n".to_vec())),
        ("too_many_headers", with_chunks([16, 16, 16, 16], many)),
        ("malformed_then_ok", with_chunks([1, 2, 3, 4], b"PLAY\r\nCSeq: 3\r\n\r\nFLY * RTSP/1.0\r\nCSeq: 4\r\n\r\nOPTIONS * RTSP/1.0\r\nCSeq: 5\r\n\r\n".to_vec())),
        ("interleaved_only", with_chunks([5, 5, 5, 5], [rtp(0, 9, 100), rtp(1, 10, 0), rtp(200, 11, 3)].concat())),
    ]
}

/// Pieces for the session target: a length byte (in 4-byte units), a
/// time step (100 ms units), the piece padded with zeros.
fn session_input(pieces: &[(u8, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (step, p) in pieces {
        for chunk in p.chunks(1020) {
            let units = chunk.len().div_ceil(4);
            out.push(units as u8);
            out.push(*step);
            out.extend_from_slice(chunk);
            out.resize(out.len() + units * 4 - chunk.len(), 0);
        }
    }
    out
}

fn session_seeds() -> Vec<Seed> {
    // The target's server numbers its sessions 1, 2, ...
    let publish_tcp = session_input(&[
        (
            0,
            b"OPTIONS rtsp://127.0.0.1:8554/live/x RTSP/1.0\r\nCSeq: 1\r\n\r\n".to_vec(),
        ),
        (1, announce().into_bytes()),
        (
            1,
            setup(0, 3, "", "RTP/AVP/TCP;unicast;interleaved=0-1;mode=record").into_bytes(),
        ),
        (
            1,
            setup(1, 4, "1", "RTP/AVP/TCP;unicast;interleaved=2-3;mode=record").into_bytes(),
        ),
        (
            1,
            b"RECORD rtsp://127.0.0.1:8554/live/x RTSP/1.0\r\nCSeq: 5\r\nSession: 1\r\n\r\n"
                .to_vec(),
        ),
        (1, [rtp(0, 1, 100), rtp(1, 2, 20)].concat()),
        (
            30,
            b"TEARDOWN rtsp://127.0.0.1:8554/live/x RTSP/1.0\r\nCSeq: 6\r\nSession: 1\r\n\r\n"
                .to_vec(),
        ),
    ]);
    let play_udp = session_input(&[
        (0, b"DESCRIBE rtsp://h/live/cam?token=1 RTSP/1.0\r\nCSeq: 2\r\n\r\n".to_vec()),
        (1, b"SETUP rtsp://h/live/cam?token=1/trackID=0 RTSP/1.0\r\nCSeq: 3\r\nTransport: RTP/AVP;unicast;client_port=5000-5001\r\n\r\n".to_vec()),
        (1, b"SETUP rtsp://h/live/cam?token=1/trackID=1 RTSP/1.0\r\nCSeq: 3\r\nSession: 1\r\nTransport: RTP/AVP;unicast;client_port=5002-5003\r\n\r\n".to_vec()),
        (1, b"PLAY rtsp://h/live/cam RTSP/1.0\r\nCSeq: 4\r\nSession: 1\r\nRange: npt=now-\r\n\r\n".to_vec()),
        (15, b"GET_PARAMETER rtsp://h/live/cam RTSP/1.0\r\nCSeq: 5\r\n\r\n".to_vec()),
        (0, b"PAUSE rtsp://h/live/cam RTSP/1.0\r\nCSeq: 6\r\nSession: 1\r\n\r\n".to_vec()),
        (0, b"PLAY rtsp://h/live/cam RTSP/1.0\r\nCSeq: 7\r\nSession: 1\r\nRange: npt=bad-\r\n\r\n".to_vec()),
        (0, b"TEARDOWN rtsp://h/live/cam RTSP/1.0\r\nCSeq: 8\r\nSession: 1\r\n\r\n".to_vec()),
    ]);
    let play_tcp_one_piece = session_input(&[(
        0,
        b"DESCRIBE rtsp://h/live/cam RTSP/1.0\r\nCSeq: 2\r\n\r\nSETUP rtsp://h/live/cam/trackID=0 RTSP/1.0\r\nCSeq: 3\r\nTransport: RTP/AVP/TCP;unicast\r\n\r\nSETUP rtsp://h/live/cam/trackID=1 RTSP/1.0\r\nCSeq: 4\r\nSession: 1\r\nTransport: RTP/AVP/TCP;unicast;interleaved=2-3\r\n\r\nPLAY rtsp://h/live/cam RTSP/1.0\r\nCSeq: 5\r\nSession: 1\r\n\r\n$\x01\x00\x02\x81\xc9".to_vec(),
    )]);
    let statuses = session_input(&[
        (0, b"PLAY rtsp://h/x RTSP/1.0\r\nCSeq: 1\r\nSession: nope\r\n\r\n".to_vec()),
        (0, b"SETUP rtsp://h/x/trackID=0 RTSP/1.0\r\nCSeq: 2\r\nTransport: RTP/AVP;multicast\r\n\r\n".to_vec()),
        (0, b"FLY * RTSP/1.0\r\nCSeq: 3\r\n\r\nOPTIONS * RTSP/2.0\r\nCSeq: 4\r\n\r\nPLAY\r\nCSeq: 5\r\n\r\n".to_vec()),
        (0, b"OPTIONS * RTSP/1.0\r\nCSeq: 6\r\nRequire: x\r\n\r\n".to_vec()),
        (0, b"\x01garbage".to_vec()),
    ]);
    let idle = session_input(&[
        (0, b"OPTIONS * RTSP/1.0\r\nCSeq: 1\r\n\r\n".to_vec()),
        (255, Vec::new()),
        (255, Vec::new()),
    ]);
    vec![
        ("publish_tcp", publish_tcp),
        ("play_udp", play_udp),
        ("play_tcp_one_piece", play_tcp_one_piece),
        ("statuses", statuses),
        ("idle_timeout", idle),
    ]
}

#[test]
fn fuzz_targets_over_corpus_and_mutations() {
    fuzz::smoke_all(env!("CARGO_MANIFEST_DIR"), &TARGETS, &MAGIC);
}

/// The generators make what they say.
#[test]
fn seeds_are_what_they_say() {
    for (name, bytes) in request_seeds() {
        let mut r = rill_rtsp::Reader::new(rill_rtsp::Limits::default());
        r.push(&bytes[4..]);
        let first = r.next_item();
        assert!(matches!(first, Ok(Some(_))), "{name}: {first:?}");
        fuzzing::request(&bytes);
    }
    let expect: [(&str, &[u16]); 5] = [
        ("publish_tcp", &[200, 200, 200, 200, 200, 200]),
        ("play_udp", &[200, 200, 200, 200, 200, 200, 457, 200]),
        ("play_tcp_one_piece", &[200, 200, 200, 200]),
        ("statuses", &[454, 461, 501, 505, 400, 551, 400]),
        ("idle_timeout", &[200]),
    ];
    for ((name, bytes), (n, statuses)) in session_seeds().into_iter().zip(expect) {
        assert_eq!(name, n);
        assert_eq!(fuzzing::session_statuses(&bytes), statuses, "{name}");
    }
}

#[test]
#[ignore = "rewrites fuzz/corpus; run on purpose"]
fn write_seed_corpus() {
    fuzz::write_corpus(
        env!("CARGO_MANIFEST_DIR"),
        vec![("request", request_seeds()), ("session", session_seeds())],
    );
}
