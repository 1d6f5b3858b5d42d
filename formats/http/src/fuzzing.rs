//! Fuzz target bodies, shared by the cargo-fuzz targets under `fuzz/` and
//! the stable smoke test (`tests/fuzz_smoke.rs`). Each must never panic;
//! the assertions inside are the properties checked.

use crate::response::{Event, Framing, Head, ResponseReader};
use crate::{Error, Limits, Request, Url};

/// What a reader made of a whole response: its head, its body (pieces
/// joined), whether it ended, and its error.
#[derive(Debug, PartialEq, Eq)]
pub struct Outcome {
    /// The final head.
    pub head: Option<Head>,
    /// The body, pieces joined.
    pub body: Vec<u8>,
    /// Whether `End` came.
    pub end: bool,
    /// The first error, from `feed` or `finish`.
    pub error: Option<Error>,
    /// The framing the reader chose.
    pub framing: Option<Framing>,
}

/// Feeds `data` to a reader in pieces of the `sizes` given (cycled),
/// draining events after each, then finishes.
pub fn read(request: &Request, limits: &Limits, data: &[u8], sizes: &[usize]) -> Outcome {
    let mut r = ResponseReader::new(request, limits.clone());
    let mut out = Outcome {
        head: None,
        body: Vec::new(),
        end: false,
        error: None,
        framing: None,
    };
    let drain = |r: &mut ResponseReader, out: &mut Outcome| {
        while let Some(ev) = r.poll_event() {
            assert!(!out.end, "event after End");
            match ev {
                Event::Head(h) => {
                    assert!(out.head.is_none(), "a second head");
                    out.head = Some(h);
                }
                Event::Body(b) => {
                    assert!(out.head.is_some(), "body before the head");
                    assert!(!b.is_empty(), "empty body piece");
                    out.body.extend_from_slice(&b);
                }
                Event::End => out.end = true,
            }
        }
    };
    let mut rest = data;
    let mut k = 0;
    while !rest.is_empty() {
        let n = sizes[k % sizes.len()].clamp(1, rest.len());
        k += 1;
        let (piece, r2) = rest.split_at(n);
        rest = r2;
        let res = r.feed(piece);
        drain(&mut r, &mut out);
        if let Err(e) = res {
            out.error = Some(e);
            break;
        }
    }
    if out.error.is_none() {
        if let Err(e) = r.finish() {
            out.error = Some(e);
        }
    }
    drain(&mut r, &mut out);
    out.framing = r.framing();
    assert_eq!(r.body_len(), out.body.len() as u64);
    out
}

/// The response reader over `data`, after four control bytes: bit 0 of the
/// first asks for a HEAD request, bit 1 a small body limit; the other three
/// cut the input. Read whole and read in pieces must agree; the body
/// respects the limits and the framing. Then `data` goes through the
/// chunked coding and must come back as it was.
pub fn response(data: &[u8]) {
    if data.len() < 4 {
        return;
    }
    let (ctl, body) = data.split_at(4);
    let url = Url::parse("http://h/x.flv").expect("a valid URL");
    let request = if ctl[0] & 1 != 0 {
        Request::head(&url)
    } else {
        Request::get(&url)
    };
    let limits = Limits {
        max_head: 2048,
        max_headers: 16,
        max_chunk_line: 64,
        max_body: if ctl[0] & 2 != 0 { 100 } else { u64::MAX },
        max_buffered: 1 << 20,
    };
    let whole = read(&request, &limits, body, &[usize::MAX]);
    let sizes: Vec<usize> = ctl[1..].iter().map(|&s| usize::from(s % 32) + 1).collect();
    let pieces = read(&request, &limits, body, &sizes);
    assert_eq!(whole, pieces);
    assert!(whole.body.len() as u64 <= limits.max_body);
    if whole.end {
        assert!(whole.error.is_none());
        match whole.framing {
            Some(Framing::Length(n)) => assert_eq!(whole.body.len() as u64, n),
            Some(Framing::Empty) => assert!(whole.body.is_empty()),
            _ => {}
        }
    }
    if request.is_head() {
        assert!(whole.body.is_empty());
    }
    chunked_round_trip(&request, ctl, body);
}

/// `body` in the chunked coding, with chunk sizes from `ctl`, an extension
/// and a trailer: it must decode to itself.
fn chunked_round_trip(request: &Request, ctl: &[u8], body: &[u8]) {
    let mut wire = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    let mut rest = body;
    let mut k = 0;
    while !rest.is_empty() {
        let n = (usize::from(ctl[k % ctl.len()]) + 1).min(rest.len());
        k += 1;
        let ext = if n % 3 == 0 { ";ext=\"v\"" } else { "" };
        wire.extend_from_slice(format!("{n:x}{ext}\r\n").as_bytes());
        wire.extend_from_slice(&rest[..n]);
        wire.extend_from_slice(b"\r\n");
        rest = &rest[n..];
    }
    wire.extend_from_slice(b"0\r\nX-Trailer: t\r\n\r\n");
    let got = read(request, &Limits::default(), &wire, &[7, 1, 300]);
    assert_eq!(got.error, None);
    assert!(got.end);
    let want: &[u8] = if request.is_head() { b"" } else { body };
    assert_eq!(got.body, want);
}

/// URLs and requests: the first line of `data` is a URL, the second a
/// reference to resolve against it, the third a header name and the
/// fourth its value. Whatever parses re-parses the same from its text;
/// whatever request encodes parses back (httparse) with the same method,
/// target, Host and headers, and nothing more: no line injected.
pub fn request(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut lines = text.split('\n');
    let base = lines.next().unwrap_or("");
    let reference = lines.next().unwrap_or("");
    let name = lines.next().unwrap_or("X-Fuzz");
    let value = lines.next().unwrap_or("");
    let Ok(url) = Url::parse(base) else {
        return;
    };
    check_url(&url, name, value);
    if let Ok(joined) = url.join(reference) {
        check_url(&joined, name, value);
        // Resolving is idempotent on what it produced.
        assert_eq!(url.join(&joined.to_string()).as_ref(), Ok(&joined));
        // A target starting with "//" would read as a host.
        if !joined.target().starts_with("//") {
            assert_eq!(joined.join(joined.target()).as_ref(), Ok(&joined));
        }
    }
}

fn check_url(url: &Url, name: &str, value: &str) {
    assert_eq!(Url::parse(&url.to_string()).as_ref(), Ok(url), "{url}");
    assert!(url.target().starts_with('/'));
    let req = Request::get(url).header("User-Agent", "Rill");
    let plain = req.encode().expect("a parsed URL's request encodes");
    parse_request(&plain, url, None);
    let with = req.header(name, value);
    if let Ok(bytes) = with.encode() {
        let own = name.eq_ignore_ascii_case("host");
        parse_request(&bytes, url, (!own).then_some((name, value)));
    }
}

fn parse_request(bytes: &[u8], url: &Url, extra: Option<(&str, &str)>) {
    let mut fields = [httparse::EMPTY_HEADER; 8];
    let mut req = httparse::Request::new(&mut fields);
    let status = req.parse(bytes).expect("an encoded request parses");
    assert_eq!(status, httparse::Status::Complete(bytes.len()));
    assert_eq!(req.method, Some("GET"));
    assert_eq!(req.path, Some(url.target()));
    let names: Vec<&str> = req.headers.iter().map(|h| h.name).collect();
    let mut want = vec!["Host", "User-Agent"];
    if let Some((n, _)) = extra {
        want.push(n);
    }
    want.push("Connection");
    assert_eq!(names, want);
    if let Some((_, v)) = extra {
        assert_eq!(req.headers[2].value, v.trim_matches([' ', '\t']).as_bytes());
    }
}
