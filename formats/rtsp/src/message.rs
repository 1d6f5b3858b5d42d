//! RTSP 1.0 requests and responses (RFC 2326 §6, §7), read incrementally
//! from a TCP byte stream on which interleaved binary frames (`$`, channel,
//! u16 length, payload; §10.12) share the connection, and written back.
//!
//! [`Reader`] is bounded: it never holds more than one message (head up to
//! [`Limits::max_head`], body up to [`Limits::max_body`]) or one interleaved
//! frame. Feed it with [`Reader::push`] (which takes what fits) and drain it
//! with [`Reader::next_item`].

use std::fmt::{self, Write as _};

use bytes::{Buf, Bytes, BytesMut};

use crate::error::Error;
use crate::limits::Limits;

/// The protocol version this crate speaks.
pub const VERSION: &str = "RTSP/1.0";

/// A request method.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Method {
    /// OPTIONS.
    Options,
    /// DESCRIBE.
    Describe,
    /// ANNOUNCE.
    Announce,
    /// SETUP.
    Setup,
    /// PLAY.
    Play,
    /// PAUSE.
    Pause,
    /// RECORD.
    Record,
    /// TEARDOWN.
    Teardown,
    /// GET_PARAMETER.
    GetParameter,
    /// SET_PARAMETER.
    SetParameter,
    /// REDIRECT.
    Redirect,
    /// Any other token.
    Other(String),
}

impl Method {
    /// Parses a method token (case-sensitive, as RFC 2326 says).
    pub fn parse(s: &str) -> Method {
        match s {
            "OPTIONS" => Method::Options,
            "DESCRIBE" => Method::Describe,
            "ANNOUNCE" => Method::Announce,
            "SETUP" => Method::Setup,
            "PLAY" => Method::Play,
            "PAUSE" => Method::Pause,
            "RECORD" => Method::Record,
            "TEARDOWN" => Method::Teardown,
            "GET_PARAMETER" => Method::GetParameter,
            "SET_PARAMETER" => Method::SetParameter,
            "REDIRECT" => Method::Redirect,
            other => Method::Other(other.to_string()),
        }
    }

    /// The token on the wire.
    pub fn as_str(&self) -> &str {
        match self {
            Method::Options => "OPTIONS",
            Method::Describe => "DESCRIBE",
            Method::Announce => "ANNOUNCE",
            Method::Setup => "SETUP",
            Method::Play => "PLAY",
            Method::Pause => "PAUSE",
            Method::Record => "RECORD",
            Method::Teardown => "TEARDOWN",
            Method::GetParameter => "GET_PARAMETER",
            Method::SetParameter => "SET_PARAMETER",
            Method::Redirect => "REDIRECT",
            Method::Other(s) => s,
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Header fields in their order, names compared case-insensitively.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers(pub Vec<(String, String)>);

impl Headers {
    /// The first value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `name`, in order.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Appends a field.
    pub fn add(&mut self, name: &str, value: impl Into<String>) {
        self.0.push((name.to_string(), value.into()));
    }

    /// Replaces every field `name` with one of `value`.
    pub fn set(&mut self, name: &str, value: impl Into<String>) {
        self.remove(name);
        self.add(name, value);
    }

    /// Removes every field `name`.
    pub fn remove(&mut self, name: &str) {
        self.0.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
    }

    /// The CSeq, if present and numeric.
    pub fn cseq(&self) -> Option<u32> {
        self.get("CSeq").and_then(|v| v.trim().parse().ok())
    }

    /// The Content-Length, if present (`Err` when not a number).
    fn content_length(&self) -> Result<usize, Error> {
        match self.get("Content-Length") {
            None => Ok(0),
            Some(v) => v
                .trim()
                .parse::<usize>()
                .map_err(|_| Error::Malformed("Content-Length")),
        }
    }

    fn write(&self, out: &mut String) {
        for (n, v) in &self.0 {
            let _ = write!(out, "{n}: {v}\r\n");
        }
    }
}

/// A request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The method.
    pub method: Method,
    /// The Request-URI as sent (`rtsp://host/path`, `/path` or `*`).
    pub uri: String,
    /// The version token as sent (`RTSP/1.0`).
    pub version: String,
    /// Header fields.
    pub headers: Headers,
    /// The body (Content-Length bytes).
    pub body: Bytes,
}

impl Request {
    /// A request with a CSeq.
    pub fn new(method: Method, uri: impl Into<String>, cseq: u32) -> Request {
        let mut headers = Headers::default();
        headers.add("CSeq", cseq.to_string());
        Request {
            method,
            uri: uri.into(),
            version: VERSION.into(),
            headers,
            body: Bytes::new(),
        }
    }

    /// The request on the wire (a Content-Length is written for a body).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut s = format!("{} {} {}\r\n", self.method, self.uri, self.version);
        self.headers.write(&mut s);
        finish(s, &self.headers, &self.body)
    }
}

/// A response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Reason phrase.
    pub reason: String,
    /// Header fields.
    pub headers: Headers,
    /// The body.
    pub body: Bytes,
}

impl Response {
    /// A response with the standard reason phrase of `status` and a CSeq.
    pub fn new(status: u16, cseq: Option<u32>) -> Response {
        let mut headers = Headers::default();
        if let Some(c) = cseq {
            headers.add("CSeq", c.to_string());
        }
        Response {
            status,
            reason: reason(status).to_string(),
            headers,
            body: Bytes::new(),
        }
    }

    /// The response on the wire (a Content-Length is written for a body).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut s = format!("{} {} {}\r\n", VERSION, self.status, self.reason);
        self.headers.write(&mut s);
        finish(s, &self.headers, &self.body)
    }
}

fn finish(mut s: String, headers: &Headers, body: &[u8]) -> Vec<u8> {
    if !body.is_empty() && headers.get("Content-Length").is_none() {
        let _ = write!(s, "Content-Length: {}\r\n", body.len());
    }
    s.push_str("\r\n");
    let mut out = s.into_bytes();
    out.extend_from_slice(body);
    out
}

/// The reason phrase of a status code (RFC 2326 §7.1.1).
pub fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        250 => "Low on Storage Space",
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Moved Temporarily",
        304 => "Not Modified",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        408 => "Request Time-out",
        413 => "Request Entity Too Large",
        414 => "Request-URI Too Large",
        415 => "Unsupported Media Type",
        451 => "Parameter Not Understood",
        453 => "Not Enough Bandwidth",
        454 => "Session Not Found",
        455 => "Method Not Valid in This State",
        456 => "Header Field Not Valid for Resource",
        457 => "Invalid Range",
        459 => "Aggregate operation not allowed",
        460 => "Only aggregate operation allowed",
        461 => "Unsupported transport",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        505 => "RTSP Version not supported",
        551 => "Option not supported",
        _ => "Unknown",
    }
}

/// One unit read from the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// A request.
    Request(Request),
    /// A response.
    Response(Response),
    /// An interleaved binary frame.
    Interleaved {
        /// Channel (from `interleaved=a-b`).
        channel: u8,
        /// The payload (one RTP or RTCP packet).
        payload: Bytes,
    },
    /// A message whose head was complete and whose length is known, but
    /// which is not valid (bad request line, too many headers, ...): the
    /// reader skipped it and can go on. A server answers 400.
    Malformed {
        /// Its CSeq, when one could be read.
        cseq: Option<u32>,
        /// What was wrong.
        reason: Error,
    },
}

/// The 4-byte header of an interleaved frame of `len` bytes on `channel`.
/// `None` when `len` does not fit the u16 length.
pub fn interleaved_header(channel: u8, len: usize) -> Option<[u8; 4]> {
    let l = u16::try_from(len).ok()?.to_be_bytes();
    Some([b'$', channel, l[0], l[1]])
}

/// Writes the interleaved header for `channel` into the first 4 bytes of
/// `frame`, whose payload is the rest: build `[4 spare bytes | RTP packet]`
/// once and share it. `false` (nothing written) when `frame` is shorter
/// than 4 bytes or its payload longer than 65535.
pub fn put_interleaved_header(frame: &mut [u8], channel: u8) -> bool {
    let Some(h) = interleaved_header(channel, frame.len().saturating_sub(4)) else {
        return false;
    };
    match frame.get_mut(..4) {
        Some(head) => {
            head.copy_from_slice(&h);
            true
        }
        None => false,
    }
}

/// Appends an interleaved frame (header and payload) to `out`. `false`
/// (and nothing written) when the payload is longer than 65535 bytes.
pub fn write_interleaved(out: &mut Vec<u8>, channel: u8, payload: &[u8]) -> bool {
    match interleaved_header(channel, payload.len()) {
        Some(h) => {
            out.extend_from_slice(&h);
            out.extend_from_slice(payload);
            true
        }
        None => false,
    }
}

/// The incremental, bounded reader of an RTSP connection.
#[derive(Debug)]
pub struct Reader {
    limits: Limits,
    buf: BytesMut,
    /// Bytes of `buf` already searched for the end of the head.
    scanned: usize,
    /// The head of the message being read, once complete: its length with
    /// the blank line, the body length, and what it parsed to.
    head: Option<(usize, usize, Result<Head, BadHead>)>,
    failed: bool,
}

impl Reader {
    /// A reader with `limits`.
    pub fn new(limits: Limits) -> Reader {
        Reader {
            limits,
            buf: BytesMut::new(),
            scanned: 0,
            head: None,
            failed: false,
        }
    }

    /// The most bytes the reader ever holds.
    pub fn capacity(&self) -> usize {
        (self.limits.max_head + self.limits.max_body).max(4 + self.limits.max_interleaved)
    }

    /// Bytes held, not yet returned as items.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Takes as many bytes of `data` as fit and returns how many. Call
    /// [`Reader::next_item`] until it returns `None`, then push the rest.
    pub fn push(&mut self, data: &[u8]) -> usize {
        let room = self.capacity().saturating_sub(self.buf.len());
        let n = room.min(data.len());
        self.buf.extend_from_slice(&data[..n]);
        n
    }

    /// The next complete item, `None` when more bytes are needed. After an
    /// error the stream cannot be resynchronized: close the connection.
    pub fn next_item(&mut self) -> Result<Option<Item>, Error> {
        if self.failed {
            return Err(Error::Closed);
        }
        let r = self.next_inner();
        if r.is_err() {
            self.failed = true;
            self.head = None;
            self.buf.clear();
        }
        r
    }

    fn next_inner(&mut self) -> Result<Option<Item>, Error> {
        // Stray line ends between messages (keep-alive habits of some
        // cameras) are skipped.
        let skip = self
            .buf
            .iter()
            .take_while(|b| matches!(b, b'\r' | b'\n' | b' ' | b'\t' | 0))
            .count();
        if skip > 0 {
            self.buf.advance(skip);
            self.scanned = 0;
        }
        let Some(&first) = self.buf.first() else {
            return Ok(None);
        };
        if first == b'$' {
            if self.buf.len() < 4 {
                return Ok(None);
            }
            let channel = self.buf[1];
            let len = usize::from(u16::from_be_bytes([self.buf[2], self.buf[3]]));
            if len > self.limits.max_interleaved {
                return Err(Error::InterleavedTooLarge(len));
            }
            if self.buf.len() < 4 + len {
                return Ok(None);
            }
            self.buf.advance(4);
            let payload = self.buf.split_to(len).freeze();
            self.scanned = 0;
            return Ok(Some(Item::Interleaved { channel, payload }));
        }
        if !first.is_ascii_alphabetic() {
            return Err(Error::Malformed("message start"));
        }
        // The head, parsed once: the body may trickle in afterwards.
        if self.head.is_none() {
            // Find the blank line that ends the head ("\r\n\r\n", or
            // "\n\n" from lax peers).
            let limit = self.buf.len().min(self.limits.max_head);
            let from = self.scanned.saturating_sub(3).min(limit);
            let end = find_head_end(&self.buf[from..limit]).map(|(a, b)| (from + a, from + b));
            let Some((head_len, total_head)) = end else {
                if self.buf.len() >= self.limits.max_head {
                    return Err(Error::HeadTooLarge(self.limits.max_head));
                }
                self.scanned = self.buf.len();
                return Ok(None);
            };
            let parsed = parse_head(&self.buf[..head_len], &self.limits);
            // The body length decides whether we can go on after a bad head.
            let body_len = match &parsed {
                Ok((_, headers)) => headers.content_length()?,
                Err((_, _, len)) => len.ok_or(Error::Malformed("Content-Length"))?,
            };
            if body_len > self.limits.max_body {
                return Err(Error::BodyTooLarge {
                    len: body_len,
                    max: self.limits.max_body,
                });
            }
            self.head = Some((total_head, body_len, parsed));
        }
        let Some((total_head, body_len, _)) = &self.head else {
            return Ok(None);
        };
        let (total_head, body_len) = (*total_head, *body_len);
        if self.buf.len() < total_head + body_len {
            return Ok(None);
        }
        let Some((_, _, parsed)) = self.head.take() else {
            return Ok(None);
        };
        self.buf.advance(total_head);
        let body = self.buf.split_to(body_len).freeze();
        self.scanned = 0;
        Ok(Some(match parsed {
            Ok((StartLine::Request(method, uri, version), headers)) => Item::Request(Request {
                method,
                uri,
                version,
                headers,
                body,
            }),
            Ok((StartLine::Response(status, reason), headers)) => Item::Response(Response {
                status,
                reason,
                headers,
                body,
            }),
            Err((reason, cseq, _)) => Item::Malformed { cseq, reason },
        }))
    }
}

/// (end of the head without the blank line, end with it).
fn find_head_end(b: &[u8]) -> Option<(usize, usize)> {
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\n' {
            if b.get(i + 1) == Some(&b'\n') {
                return Some((i, i + 2));
            }
            if b.get(i + 1) == Some(&b'\r') && b.get(i + 2) == Some(&b'\n') {
                return Some((i, i + 3));
            }
        }
        i += 1;
    }
    None
}

#[derive(Debug)]
enum StartLine {
    Request(Method, String, String),
    Response(u16, String),
}

type Head = (StartLine, Headers);
/// A bad head: why, its CSeq and its Content-Length if they could be read.
type BadHead = (Error, Option<u32>, Option<usize>);

fn parse_head(head: &[u8], limits: &Limits) -> Result<Head, BadHead> {
    let text = String::from_utf8_lossy(head);
    let mut lines = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let start = lines.next().unwrap_or("");
    // Headers first: a bad start line still gets its CSeq answered.
    let mut headers = Headers::default();
    let mut bad = None;
    for line in lines {
        if line.is_empty() {
            continue;
        }
        if line.starts_with([' ', '\t']) {
            // Continuation of the previous field (obsolete folding).
            if let Some((_, v)) = headers.0.last_mut() {
                if v.len() + line.len() <= limits.max_head {
                    v.push(' ');
                    v.push_str(line.trim());
                }
                continue;
            }
            bad.get_or_insert(Error::Malformed("header continuation"));
            continue;
        }
        if headers.0.len() >= limits.max_headers {
            bad.get_or_insert(Error::TooManyHeaders(limits.max_headers));
            // Keep looking for CSeq and Content-Length only.
            if let Some((n, v)) = line.split_once(':') {
                let n = n.trim();
                if n.eq_ignore_ascii_case("CSeq") || n.eq_ignore_ascii_case("Content-Length") {
                    headers.add(n, v.trim());
                }
            }
            continue;
        }
        match line.split_once(':') {
            Some((n, v)) if !n.trim().is_empty() && !n.contains(' ') => {
                headers.add(n.trim(), v.trim())
            }
            _ => {
                bad.get_or_insert(Error::Malformed("header line"));
            }
        }
    }
    let len = headers.content_length().ok();
    let cseq = headers.cseq();
    if let Some(e) = bad {
        return Err((e, cseq, len));
    }
    if headers.get("CSeq").is_some() && cseq.is_none() {
        return Err((Error::Malformed("CSeq"), None, len));
    }
    let mut parts = start.split(' ').filter(|p| !p.is_empty());
    let (a, b) = (parts.next(), parts.next());
    let c = parts.collect::<Vec<_>>().join(" ");
    let (Some(a), Some(b)) = (a, b) else {
        return Err((Error::Malformed("start line"), cseq, len));
    };
    if a.starts_with("RTSP/") {
        let status = match b.parse::<u16>() {
            Ok(s) if (100..1000).contains(&s) => s,
            _ => return Err((Error::Malformed("status code"), cseq, len)),
        };
        return Ok((StartLine::Response(status, c), headers));
    }
    if c.is_empty() || !c.starts_with("RTSP/") || c.contains(' ') {
        return Err((Error::Malformed("request line"), cseq, len));
    }
    if !a.bytes().all(|x| x.is_ascii_uppercase() || x == b'_') {
        return Err((Error::Malformed("method"), cseq, len));
    }
    Ok((
        StartLine::Request(Method::parse(a), b.to_string(), c),
        headers,
    ))
}

/// The parts of an RTSP URL the server needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    /// `host[:port]`, empty for a bare path.
    pub authority: String,
    /// The path without its leading and trailing slashes (`live/cam`).
    pub path: String,
    /// The query without `?`.
    pub query: Option<String>,
}

impl Url {
    /// Splits `rtsp://[user@]host[:port]/path[?query]` (or `rtsps://`, or a
    /// bare `/path`). A control that ffmpeg appends after the query
    /// (`/live/x?token=1/streamid=0`) is moved back to the path.
    pub fn parse(uri: &str) -> Result<Url, Error> {
        let lower = uri.get(..8).unwrap_or(uri).to_ascii_lowercase();
        let rest = if lower.starts_with("rtsp://") {
            &uri[7..]
        } else if lower.starts_with("rtsps://") || lower.starts_with("rtspu://") {
            &uri[8..]
        } else if uri.starts_with('/') {
            uri
        } else if uri == "*" {
            return Ok(Url {
                authority: String::new(),
                path: String::new(),
                query: None,
            });
        } else {
            return Err(Error::Malformed("URL"));
        };
        let (authority, rest) = if uri.starts_with('/') {
            ("", rest)
        } else {
            match rest.find(['/', '?']) {
                Some(i) => (&rest[..i], &rest[i..]),
                None => (rest, ""),
            }
        };
        let authority = authority.rsplit('@').next().unwrap_or("");
        let (mut path, mut query) = match rest.split_once('?') {
            Some((p, q)) => (p.to_string(), Some(q.to_string())),
            None => (rest.to_string(), None),
        };
        if let Some(q) = query.take() {
            match q.split_once('/') {
                Some((q, control)) => {
                    path = format!("{}/{}", path.trim_end_matches('/'), control);
                    query = (!q.is_empty()).then(|| q.to_string());
                }
                None => query = (!q.is_empty()).then_some(q),
            }
        }
        if path.chars().any(|c| c.is_control()) {
            return Err(Error::Malformed("URL"));
        }
        Ok(Url {
            authority: authority.to_string(),
            path: path.trim_matches('/').to_string(),
            query,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(limits: Limits, data: &[u8]) -> Vec<Result<Item, Error>> {
        let mut r = Reader::new(limits);
        let mut out = Vec::new();
        let mut data = data;
        while !data.is_empty() {
            let n = r.push(data);
            data = &data[n..];
            loop {
                match r.next_item() {
                    Ok(Some(i)) => out.push(Ok(i)),
                    Ok(None) => break,
                    Err(e) => {
                        out.push(Err(e));
                        return out;
                    }
                }
            }
        }
        out
    }

    const ANNOUNCE: &[u8] = b"ANNOUNCE rtsp://127.0.0.1:8554/live/x RTSP/1.0\r\nContent-Type: application/sdp\r\nCSeq: 2\r\nUser-Agent: Lavf59.27.100\r\nContent-Length: 9\r\n\r\nv=0\r\no=-\r\n";

    #[test]
    fn request_with_body_then_interleaved_then_response() {
        let mut data = ANNOUNCE.to_vec();
        data.extend_from_slice(b"$\x01\x00\x03abc");
        data.extend_from_slice(b"\r\nRTSP/1.0 200 OK\r\nCSeq: 7\r\n\r\n");
        // Every chunking reads the same.
        for step in [1, 2, 3, 7, 1000] {
            let mut r = Reader::new(Limits::default());
            let mut items = Vec::new();
            for c in data.chunks(step) {
                assert_eq!(r.push(c), c.len());
                while let Some(i) = r.next_item().unwrap() {
                    items.push(i);
                }
            }
            assert_eq!(items.len(), 3, "step {step}");
            let Item::Request(req) = &items[0] else {
                panic!()
            };
            assert_eq!(req.method, Method::Announce);
            assert_eq!(req.uri, "rtsp://127.0.0.1:8554/live/x");
            assert_eq!(req.headers.cseq(), Some(2));
            assert_eq!(req.headers.get("content-type"), Some("application/sdp"));
            assert_eq!(&req.body[..], b"v=0\r\no=-\r");
            assert_eq!(
                items[1],
                Item::Interleaved {
                    channel: 1,
                    payload: Bytes::from_static(b"abc")
                }
            );
            let Item::Response(resp) = &items[2] else {
                panic!()
            };
            assert_eq!((resp.status, resp.reason.as_str()), (200, "OK"));
        }
    }

    #[test]
    fn limits() {
        // Head too large without an end.
        let big = vec![b'A'; 9000];
        assert_eq!(
            read(Limits::default(), &big).pop().unwrap(),
            Err(Error::HeadTooLarge(8192))
        );
        // Body too large.
        let r = read(
            Limits::default(),
            b"ANNOUNCE / RTSP/1.0\r\nCSeq: 1\r\nContent-Length: 70000\r\n\r\n",
        );
        assert!(matches!(r[0], Err(Error::BodyTooLarge { len: 70000, .. })));
        // Too many headers: skipped, reported with its CSeq, and the next
        // request is read.
        let mut m = b"OPTIONS * RTSP/1.0\r\n".to_vec();
        for i in 0..70 {
            m.extend_from_slice(format!("X-{i}: y\r\n").as_bytes());
        }
        m.extend_from_slice(b"CSeq: 9\r\n\r\nOPTIONS * RTSP/1.0\r\nCSeq: 10\r\n\r\n");
        let r = read(Limits::default(), &m);
        assert_eq!(
            r[0],
            Ok(Item::Malformed {
                cseq: Some(9),
                reason: Error::TooManyHeaders(64)
            })
        );
        assert!(matches!(&r[1], Ok(Item::Request(q)) if q.headers.cseq() == Some(10)));
        // Interleaved bound.
        let small = Limits {
            max_interleaved: 100,
            ..Limits::default()
        };
        assert_eq!(
            read(small, b"$\x00\x01\x00").pop().unwrap(),
            Err(Error::InterleavedTooLarge(256))
        );
        // Garbage.
        assert_eq!(
            read(Limits::default(), b"\x01\x02").pop().unwrap(),
            Err(Error::Malformed("message start"))
        );
        // Bad request line, known length: go on.
        let r = read(
            Limits::default(),
            b"PLAY\r\nCSeq: 3\r\n\r\nOPTIONS * RTSP/1.0\r\nCSeq: 4\r\n\r\n",
        );
        assert!(matches!(r[0], Ok(Item::Malformed { cseq: Some(3), .. })));
        assert!(matches!(r[1], Ok(Item::Request(_))));
    }

    #[test]
    fn writes_and_reads_back() {
        let mut req = Request::new(Method::SetParameter, "rtsp://h/x", 5);
        req.body = Bytes::from_static(b"a: b\r\n");
        let bytes = req.to_bytes();
        assert!(bytes.starts_with(
            b"SET_PARAMETER rtsp://h/x RTSP/1.0\r\nCSeq: 5\r\nContent-Length: 6\r\n\r\n"
        ));
        let r = read(Limits::default(), &bytes);
        req.headers.add("Content-Length", "6");
        assert_eq!(r[0], Ok(Item::Request(req)));
        let resp = Response::new(454, Some(1));
        assert_eq!(
            resp.to_bytes(),
            b"RTSP/1.0 454 Session Not Found\r\nCSeq: 1\r\n\r\n".to_vec()
        );
        let mut out = Vec::new();
        assert!(write_interleaved(&mut out, 3, b"xy"));
        assert_eq!(out, b"$\x03\x00\x02xy");
        assert!(!write_interleaved(&mut out, 3, &vec![0; 65536]));
        let mut frame = vec![0, 0, 0, 0, b'x', b'y', b'z'];
        assert!(put_interleaved_header(&mut frame, 5));
        assert_eq!(frame, b"$\x05\x00\x03xyz");
        assert!(!put_interleaved_header(&mut [0, 0], 5));
    }

    #[test]
    fn urls() {
        let u = Url::parse("rtsp://user:pw@host:8554/live/cam?token=1").unwrap();
        assert_eq!(u.authority, "host:8554");
        assert_eq!(u.path, "live/cam");
        assert_eq!(u.query.as_deref(), Some("token=1"));
        let u = Url::parse("rtsp://host/live/cam?token=1/streamid=0").unwrap();
        assert_eq!(u.path, "live/cam/streamid=0");
        assert_eq!(u.query.as_deref(), Some("token=1"));
        assert_eq!(Url::parse("/a/b/").unwrap().path, "a/b");
        assert_eq!(Url::parse("*").unwrap().path, "");
        assert_eq!(Url::parse("RTSP://h").unwrap().path, "");
        assert!(Url::parse("http://h/x").is_err());
    }
}
