//! The response to one request, read incrementally: bytes in through
//! [`ResponseReader::feed`], [`Event`]s out through
//! [`ResponseReader::poll_event`], the end of the connection through
//! [`ResponseReader::finish`].

use std::collections::VecDeque;

use bytes::{Buf, Bytes, BytesMut};

use crate::chunked::{Chunked, Step};
use crate::error::Error;
use crate::limits::Limits;
use crate::request::Request;

/// Header fields in the order received, names compared case-insensitively.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers {
    fields: Vec<(String, String)>,
}

impl Headers {
    /// The first value of the field `name` (any case).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every value of the field `name` (any case), in order.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.fields
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// All fields: (name as received, value).
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.fields.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    /// The number of field lines.
    pub fn len(&self) -> usize {
        self.fields.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// Whether any value of the comma-separated list field `name` holds
    /// `token` (any case): `has_token("connection", "close")`.
    pub fn has_token(&self, name: &str, token: &str) -> bool {
        self.get_all(name)
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    }
}

/// A final response's status line and header fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    /// The minor version: 1 for HTTP/1.1, 0 for HTTP/1.0.
    pub version: u8,
    /// The status code (200, 302, 404, ...).
    pub status: u16,
    /// The reason phrase (may be empty).
    pub reason: String,
    /// The header fields. Values are text: bytes that are not UTF-8
    /// become U+FFFD, folded lines (obs-fold) become spaces.
    pub headers: Headers,
}

impl Head {
    /// Whether the status is 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// The `Location` of a redirect (301, 302, 303, 307, 308), as sent: it may
/// be relative, resolve it with [`Url::join`](crate::Url::join). Whether
/// and how often to follow is the caller's choice; a new request needs a
/// new connection.
pub fn redirect_location(head: &Head) -> Option<&str> {
    if !matches!(head.status, 301 | 302 | 303 | 307 | 308) {
        return None;
    }
    head.headers
        .get("location")
        .map(str::trim)
        .filter(|l| !l.is_empty())
}

/// How the body of a response is delimited (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body: a HEAD request, 204, 304.
    Empty,
    /// `Content-Length` bytes.
    Length(u64),
    /// The chunked transfer coding.
    Chunked,
    /// Until the server closes the connection (neither of the above, the
    /// usual form of an HTTP/1.0 live stream).
    UntilClose,
}

/// What the reader produced, in order: one `Head`, `Body` pieces, one
/// `End`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The final response's head (interim 1xx responses are skipped).
    Head(Head),
    /// A piece of the body, decoded (no chunk framing): a slice of the
    /// reader's buffer, not a copy. Pieces follow the input's cuts.
    Body(Bytes),
    /// The body is complete. Bytes after it are dropped.
    End,
}

#[derive(Debug)]
enum State {
    Head,
    Length(u64),
    Chunked(Chunked),
    UntilClose,
    Done,
}

/// Reads the response to one request.
///
/// ```
/// use rill_http::{Event, Limits, Request, ResponseReader, Url};
///
/// let url = Url::parse("http://127.0.0.1:8080/live/x.flv")?;
/// let request = Request::get(&url).header("User-Agent", "Rill");
/// // The caller writes request.encode()? to the connection, then feeds
/// // what it reads:
/// let mut reader = ResponseReader::new(&request, Limits::default());
/// reader.feed(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nFLV\r\n")?;
/// let mut body = Vec::new();
/// while let Some(ev) = reader.poll_event() {
///     match ev {
///         Event::Head(head) => assert_eq!(head.status, 200),
///         Event::Body(b) => body.extend_from_slice(&b),
///         Event::End => unreachable!("the stream goes on"),
///     }
/// }
/// assert_eq!(body, b"FLV");
/// // At EOF: reader.finish() gives End for a body delimited by the close,
/// // an error for a truncated one.
/// assert!(reader.finish().is_err());
/// # Ok::<(), rill_http::Error>(())
/// ```
#[derive(Debug)]
pub struct ResponseReader {
    limits: Limits,
    head_request: bool,
    buf: BytesMut,
    /// Where the search for the head's end resumes.
    scan: usize,
    state: State,
    framing: Option<Framing>,
    events: VecDeque<Event>,
    /// Body bytes in `events`.
    queued: usize,
    /// Body bytes produced.
    body_len: u64,
    /// Whether any byte arrived (to tell "no response" from "half a head").
    fed: bool,
    error: Option<Error>,
}

impl ResponseReader {
    /// A reader for the response to `request` (a HEAD request's response
    /// has no body).
    pub fn new(request: &Request, limits: Limits) -> ResponseReader {
        ResponseReader {
            limits,
            head_request: request.is_head(),
            buf: BytesMut::new(),
            scan: 0,
            state: State::Head,
            framing: None,
            events: VecDeque::new(),
            queued: 0,
            body_len: 0,
            fed: false,
            error: None,
        }
    }

    /// Reads bytes from the connection. Events become available to
    /// [`poll_event`](Self::poll_event), which the caller drains before
    /// feeding again (or `feed` fails with [`Error::BufferFull`] once
    /// `Limits::max_buffered` bytes are held). After an error every call
    /// returns it again; events produced before it can still be polled.
    pub fn feed(&mut self, data: &[u8]) -> Result<(), Error> {
        if let Some(e) = &self.error {
            return Err(e.clone());
        }
        if matches!(self.state, State::Done) || data.is_empty() {
            return Ok(());
        }
        if self.buf.len() + self.queued > self.limits.max_buffered {
            return self.fail(Error::BufferFull(self.limits.max_buffered));
        }
        self.fed = true;
        self.buf.extend_from_slice(data);
        match self.run() {
            Ok(()) => Ok(()),
            Err(e) => self.fail(e),
        }
    }

    /// The connection ended (EOF). A body delimited by the close ends here
    /// ([`Event::End`]); a response cut short (no head, fewer bytes than
    /// Content-Length, a chunked body before its last chunk) is an error.
    /// A chunked body whose last chunk arrived but not its final CRLF is
    /// taken as complete.
    pub fn finish(&mut self) -> Result<(), Error> {
        if let Some(e) = &self.error {
            return Err(e.clone());
        }
        let e = match &self.state {
            State::Done => return Ok(()),
            State::UntilClose => {
                self.end();
                return Ok(());
            }
            State::Chunked(c) if c.saw_last_chunk() => {
                self.end();
                return Ok(());
            }
            State::Head if !self.fed => Error::Truncated("response (none arrived)"),
            State::Head => Error::Truncated("response head"),
            State::Length(_) => Error::Truncated("body (shorter than Content-Length)"),
            State::Chunked(_) => Error::Truncated("chunked body"),
        };
        self.fail(e)
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<Event> {
        let ev = self.events.pop_front()?;
        if let Event::Body(b) = &ev {
            self.queued -= b.len();
        }
        Some(ev)
    }

    /// How the body is delimited, once the head was read.
    pub fn framing(&self) -> Option<Framing> {
        self.framing
    }

    /// Body bytes produced so far (decoded, so without chunk framing).
    pub fn body_len(&self) -> u64 {
        self.body_len
    }

    /// Whether the response is complete ([`Event::End`] was produced).
    pub fn is_done(&self) -> bool {
        matches!(self.state, State::Done) && self.error.is_none()
    }

    fn fail(&mut self, e: Error) -> Result<(), Error> {
        self.error = Some(e.clone());
        self.state = State::Done;
        self.buf = BytesMut::new();
        Err(e)
    }

    fn end(&mut self) {
        self.events.push_back(Event::End);
        self.state = State::Done;
        self.buf = BytesMut::new();
    }

    fn body(&mut self, b: Bytes) {
        self.body_len += b.len() as u64;
        self.queued += b.len();
        self.events.push_back(Event::Body(b));
    }

    fn run(&mut self) -> Result<(), Error> {
        loop {
            match &mut self.state {
                State::Head => {
                    if !self.read_head()? {
                        return Ok(());
                    }
                }
                State::Length(left) => {
                    if self.buf.is_empty() {
                        return Ok(());
                    }
                    let n = (*left).min(self.buf.len() as u64) as usize;
                    let rest = *left - n as u64;
                    *left = rest;
                    let b = self.buf.split_to(n).freeze();
                    self.body(b);
                    if rest == 0 {
                        self.end();
                    }
                }
                State::Chunked(c) => match c.step(&mut self.buf, &self.limits, self.body_len)? {
                    Step::Data(b) => self.body(b),
                    Step::NeedMore => return Ok(()),
                    Step::Done => self.end(),
                },
                State::UntilClose => {
                    if self.buf.is_empty() {
                        return Ok(());
                    }
                    let room = self.limits.max_body - self.body_len;
                    if self.buf.len() as u64 > room {
                        // Up to the limit, as the other framings deliver.
                        let b = self.buf.split_to(room as usize).freeze();
                        if !b.is_empty() {
                            self.body(b);
                        }
                        // The first byte past the limit, wherever the input
                        // was cut: no length was announced.
                        return Err(Error::BodyTooLarge {
                            len: self.limits.max_body.saturating_add(1),
                            max: self.limits.max_body,
                        });
                    }
                    let b = self.buf.split().freeze();
                    self.body(b);
                    return Ok(());
                }
                State::Done => {
                    self.buf.clear();
                    return Ok(());
                }
            }
        }
    }

    /// Reads one head if it is all there: `Ok(true)` if one was consumed
    /// (interim or final), `Ok(false)` for more input.
    fn read_head(&mut self) -> Result<bool, Error> {
        // Empty lines before a status line are skipped (RFC 9112 §2.2).
        if self.scan == 0 {
            let blank = self
                .buf
                .iter()
                .take_while(|&&b| b == b'\r' || b == b'\n')
                .count();
            self.buf.advance(blank);
        }
        // Refuse what is not HTTP at its first bytes rather than after
        // `max_head` of them (a wrong port, an FLV server without HTTP).
        let n = self.buf.len().min(5);
        if self.buf[..n] != b"HTTP/"[..n] {
            return Err(Error::Malformed("status line (not an HTTP/1.x response)"));
        }
        let Some(end) = self.find_head_end() else {
            if self.buf.len() > self.limits.max_head {
                return Err(Error::HeadTooLarge(self.limits.max_head));
            }
            return Ok(false);
        };
        if end > self.limits.max_head {
            return Err(Error::HeadTooLarge(self.limits.max_head));
        }
        let head = parse_head(&self.buf[..end], self.limits.max_headers)?;
        self.buf.advance(end);
        self.scan = 0;
        match head.status {
            101 => Err(Error::Unsupported(
                "101 Switching Protocols (no upgrade was asked)",
            )),
            100..=199 => Ok(true),
            _ => {
                let framing = self.framing_of(&head)?;
                self.framing = Some(framing);
                self.events.push_back(Event::Head(head));
                match framing {
                    Framing::Empty | Framing::Length(0) => self.end(),
                    Framing::Length(n) => self.state = State::Length(n),
                    Framing::Chunked => self.state = State::Chunked(Chunked::new()),
                    Framing::UntilClose => self.state = State::UntilClose,
                }
                Ok(true)
            }
        }
    }

    /// The end of the head (just past its empty line), searching from
    /// where the last search stopped so a head fed byte by byte is scanned
    /// once.
    fn find_head_end(&mut self) -> Option<usize> {
        let buf = &self.buf[..];
        let mut i = self.scan;
        loop {
            let Some(p) = buf[i..].iter().position(|&b| b == b'\n') else {
                self.scan = buf.len();
                return None;
            };
            let nl = i + p;
            match (buf.get(nl + 1), buf.get(nl + 2)) {
                (Some(b'\n'), _) => return Some(nl + 2),
                (Some(b'\r'), Some(b'\n')) => return Some(nl + 3),
                (None, _) | (Some(b'\r'), None) => {
                    self.scan = nl;
                    return None;
                }
                _ => i = nl + 1,
            }
        }
    }

    fn framing_of(&self, head: &Head) -> Result<Framing, Error> {
        if self.head_request || matches!(head.status, 204 | 304) {
            return Ok(Framing::Empty);
        }
        let h = &head.headers;
        // "identity" is no coding (an RFC 2616 leftover some servers send).
        let codings: Vec<&str> = h
            .get_all("transfer-encoding")
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|c| !c.is_empty() && !c.eq_ignore_ascii_case("identity"))
            .collect();
        if let Some((last, before)) = codings.split_last() {
            // Chunked wins over Content-Length (RFC 9112 §6.3), also on an
            // HTTP/1.0 response, as browsers read it.
            if !last.eq_ignore_ascii_case("chunked") {
                return Err(Error::Unsupported("transfer coding other than chunked"));
            }
            if before.iter().any(|c| c.eq_ignore_ascii_case("chunked")) {
                return Err(Error::Malformed("Transfer-Encoding (chunked twice)"));
            }
            if !before.is_empty() {
                return Err(Error::Unsupported("transfer coding other than chunked"));
            }
            return Ok(Framing::Chunked);
        }
        let mut length = None;
        for v in h.get_all("content-length").flat_map(|v| v.split(',')) {
            let v = v.trim();
            if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
                return Err(Error::Malformed("Content-Length"));
            }
            let n: u64 = v
                .parse()
                .map_err(|_| Error::Malformed("Content-Length (overflows 64 bits)"))?;
            // Repeated identical values are allowed (RFC 9110 §8.6).
            if length.is_some_and(|l| l != n) {
                return Err(Error::Malformed("Content-Length (conflicting values)"));
            }
            length = Some(n);
        }
        match length {
            Some(n) if n > self.limits.max_body => Err(Error::BodyTooLarge {
                len: n,
                max: self.limits.max_body,
            }),
            Some(n) => Ok(Framing::Length(n)),
            None => Ok(Framing::UntilClose),
        }
    }
}

/// Parses a complete head (its empty line included) with httparse, lenient
/// where servers commonly are: extra spaces in the status line and after
/// header names, folded lines.
fn parse_head(bytes: &[u8], max_headers: usize) -> Result<Head, Error> {
    let mut fields = vec![httparse::EMPTY_HEADER; max_headers];
    let mut response = httparse::Response::new(&mut fields);
    let status = httparse::ParserConfig::default()
        .allow_multiple_spaces_in_response_status_delimiters(true)
        .allow_spaces_after_header_name_in_responses(true)
        .allow_obsolete_multiline_headers_in_responses(true)
        .parse_response(&mut response, bytes);
    match status {
        Ok(httparse::Status::Complete(n)) if n == bytes.len() => {}
        Ok(_) => return Err(Error::Malformed("response head")),
        Err(httparse::Error::TooManyHeaders) => return Err(Error::TooManyHeaders(max_headers)),
        Err(e) => {
            return Err(Error::Malformed(match e {
                httparse::Error::HeaderName | httparse::Error::Token => "header name",
                httparse::Error::HeaderValue => "header value",
                httparse::Error::NewLine => "line ending in the response head",
                httparse::Error::Status => "status line",
                httparse::Error::Version => "HTTP version (not HTTP/1.x)",
                httparse::Error::TooManyHeaders => "header count",
            }))
        }
    }
    let fields = response
        .headers
        .iter()
        .map(|f| {
            let mut value = String::from_utf8_lossy(f.value).into_owned();
            if value.contains(['\r', '\n']) {
                value = value.replace(['\r', '\n'], " ");
            }
            (f.name.to_string(), value)
        })
        .collect();
    Ok(Head {
        // Both are set on a complete parse.
        version: response.version.unwrap_or(1),
        status: response.code.unwrap_or(0),
        reason: response.reason.unwrap_or("").to_string(),
        headers: Headers { fields },
    })
}
