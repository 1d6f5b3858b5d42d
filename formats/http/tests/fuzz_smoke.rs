//! Runs rill-http's fuzz target bodies (response, request) over their
//! committed seed corpus and deterministic mutations of it
//! ([`rill_testsupport::fuzz::smoke`]), so the normal (stable) test run
//! exercises what `cargo +nightly fuzz run <target>` explores at length.
//!
//! `cargo test -p rill-http --test fuzz_smoke -- --ignored` rewrites the
//! seed corpus from the generators below.

use rill_http::fuzzing;
use rill_testsupport::fuzz::{self, Seed, Target};

/// Each target, its mutation rounds and its mutation seed: fixed per target
/// (1 to 16 and 21, 22 are other crates'; rill-flv's reader has 25), so a
/// target's inputs do not change when targets come and go.
const TARGETS: [(&str, Target, usize, u64); 2] = [
    ("response", fuzzing::response, 20_000, 23),
    ("request", fuzzing::request, 20_000, 24),
];

/// Interesting bytes for HTTP: line ends, `:` `;` `,` `/` `?` `#` `.` `%`
/// `[` `]` `@` space and tab, hex digits, the first letters of the framing
/// fields' names and of `HTTP`.
const MAGIC: [u8; 30] = [
    0x00, 0x01, 0x7F, 0xFF, b'\r', b'\n', b':', b';', b',', b'/', b'?', b'#', b'.', b'%', b'[',
    b']', b'@', b' ', b'\t', b'0', b'1', b'9', b'a', b'f', b'F', b'C', b'T', b'H', b'P', b'x',
];

/// Four control bytes (see `fuzzing::response`), then the response.
fn with_ctl(ctl: [u8; 4], response: &[u8]) -> Vec<u8> {
    let mut v = ctl.to_vec();
    v.extend_from_slice(response);
    v
}

/// An FLV header, PreviousTagSize0 and a small script tag: what an
/// HTTP-FLV body starts with.
const FLV_START: &[u8] = b"FLV\x01\x05\x00\x00\x00\x09\x00\x00\x00\x00\
    \x12\x00\x00\x0d\x00\x00\x00\x00\x00\x00\x00\x02\x00\x0aonMetaData\x00\x00\x00\x18";

fn chunked(pieces: &[&[u8]], tail: &str) -> Vec<u8> {
    let mut v = b"HTTP/1.1 200 OK\r\nContent-Type: video/x-flv\r\nTransfer-Encoding: chunked\r\nConnection: close\r\nCache-Control: no-cache\r\n\r\n".to_vec();
    for p in pieces {
        v.extend_from_slice(format!("{:x}\r\n", p.len()).as_bytes());
        v.extend_from_slice(p);
        v.extend_from_slice(b"\r\n");
    }
    v.extend_from_slice(tail.as_bytes());
    v
}

fn response_seeds() -> Vec<Seed> {
    let length = {
        let mut v = format!(
            "HTTP/1.1 200 OK\r\nServer: Rill\r\nContent-Type: video/x-flv\r\nContent-Length: {}\r\n\r\n",
            FLV_START.len()
        )
        .into_bytes();
        v.extend_from_slice(FLV_START);
        v
    };
    let close = {
        let mut v = b"HTTP/1.0 200 OK\r\nContent-Type: video/x-flv\r\n\r\n".to_vec();
        v.extend_from_slice(FLV_START);
        v
    };
    let mut many = b"HTTP/1.1 200 OK\r\n".to_vec();
    for i in 0..20 {
        many.extend_from_slice(format!("X-H{i}: v\r\n").as_bytes());
    }
    many.extend_from_slice(b"\r\n");
    vec![
        ("content_length", with_ctl([0, 7, 1, 30], &length)),
        (
            "chunked_flv",
            with_ctl(
                [0, 3, 5, 9],
                &chunked(&[&FLV_START[..9], &FLV_START[9..]], "0\r\n\r\n"),
            ),
        ),
        (
            "chunked_trailers_ext",
            with_ctl(
                [0, 0, 1, 2],
                b"HTTP/1.1 200 OK\nTransfer-Encoding: chunked\n\n4;a=b\nWiki\n05 ; x\r\npedia\r\n0\r\nExpires: never\r\nX: y\r\n\r\n",
            ),
        ),
        ("until_close", with_ctl([0, 31, 31, 31], &close)),
        (
            "interim",
            with_ctl(
                [0, 2, 2, 2],
                b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
            ),
        ),
        (
            "redirect",
            with_ctl(
                [0, 10, 20, 30],
                b"HTTP/1.1 302 Found\r\nLocation: http://edge:8080/live/x.flv?token=1\r\nContent-Length: 5\r\n\r\nmoved",
            ),
        ),
        (
            "head_request",
            with_ctl(
                [1, 4, 4, 4],
                b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\nTransfer-Encoding: chunked\r\n\r\n",
            ),
        ),
        (
            "no_content",
            with_ctl([0, 1, 1, 1], b"HTTP/1.1 204 No Content\r\nContent-Length: 10\r\n\r\n"),
        ),
        (
            "body_limit",
            with_ctl(
                [2, 8, 8, 8],
                &chunked(&[&[b'a'; 60], &[b'b'; 60]], "0\r\n\r\n"),
            ),
        ),
        (
            "lenient",
            with_ctl(
                [0, 5, 6, 7],
                b"\r\n\r\nHTTP/1.1  404\r\nX-Folded: a\r\n  b\r\nServer : x\r\nX-Bin: \xff\r\nContent-Length: 0, 0\r\n\r\n",
            ),
        ),
        (
            "bad_chunk",
            with_ctl(
                [0, 9, 9, 9],
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n1fffffffffffffffff\r\n",
            ),
        ),
        ("too_many_headers", with_ctl([0, 16, 16, 16], &many)),
        (
            "truncated_length",
            with_ctl(
                [0, 3, 3, 3],
                b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort",
            ),
        ),
    ]
}

fn request_seeds() -> Vec<Seed> {
    [
        (
            "relay_flv",
            "http://127.0.0.1:8080/live/x.flv?token=abc\n../edge/x.flv?t=1\nUser-Agent\nRill/0.1",
        ),
        (
            "hls_ipv6",
            "https://[::1]:8443/live/index.m3u8\nseg/000001.m4s\nAuthorization\nBearer xyz",
        ),
        (
            "rfc3986_dots",
            "http://cdn.example/a/b/c/d;p?q\n../../../g/./h/..\nAccept\n*/*",
        ),
        (
            "encoding",
            "HTTP://Host:80/%7Euser/ä x\n//other:81/p?q#frag\nX-Empty\n",
        ),
        ("absolute_ref", "http://h/\nhttps://x:443/y\nHost\nz:1"),
        (
            "injection",
            "http://h/x\n?only=query\nX-Bad\nv\r\nInjected: 1",
        ),
    ]
    .into_iter()
    .map(|(n, s)| (n, s.as_bytes().to_vec()))
    .collect()
}

#[test]
fn fuzz_targets_over_corpus_and_mutations() {
    fuzz::smoke_all(env!("CARGO_MANIFEST_DIR"), &TARGETS, &MAGIC);
}

/// The generators make what they say: each response seed reads to a head
/// (but the malformed and over-limit ones), each request seed's URL parses.
#[test]
fn seeds_are_what_they_say() {
    use rill_http::{Limits, Request, Url};
    let url = Url::parse("http://h/x.flv").unwrap();
    let limits = Limits {
        max_headers: 16,
        ..Limits::default()
    };
    for (name, bytes) in response_seeds() {
        let request = if bytes[0] & 1 != 0 {
            Request::head(&url)
        } else {
            Request::get(&url)
        };
        let o = fuzzing::read(&request, &limits, &bytes[4..], &[usize::MAX]);
        let want_error = matches!(name, "bad_chunk" | "too_many_headers" | "truncated_length");
        assert_eq!(o.error.is_some(), want_error, "{name}: {o:?}");
        assert_eq!(o.head.is_some(), name != "too_many_headers", "{name}");
        fuzzing::response(&bytes);
    }
    for (name, bytes) in request_seeds() {
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(Url::parse(text.lines().next().unwrap()).is_ok(), "{name}");
        fuzzing::request(&bytes);
    }
}

#[test]
#[ignore = "rewrites fuzz/corpus; run on purpose"]
fn write_seed_corpus() {
    fuzz::write_corpus(
        env!("CARGO_MANIFEST_DIR"),
        vec![("response", response_seeds()), ("request", request_seeds())],
    );
}
