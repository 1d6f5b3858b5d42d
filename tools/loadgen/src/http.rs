//! A small HTTP/1.1 client for the HLS and fMP4 players: GET over a kept-
//! alive connection (reopened when the server closes it), bodies sized by
//! Content-Length, chunked or ended by the close, handed over piece by
//! piece as they arrive. One task drives it; a player that needs two
//! requests at once (an LL-HLS part and a blocking playlist reload) holds
//! two connections, as a browser would.

use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::httpflv::{Dechunker, HttpUrl, Res};

/// Why a request did not give a response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fail {
    /// The end of the run came first: not an error.
    End,
    /// An error, worded to be counted with the same errors of other
    /// players (no URLs or numbers that differ between them).
    Err(String),
}

impl From<String> for Fail {
    fn from(e: String) -> Fail {
        Fail::Err(e)
    }
}

impl From<&str> for Fail {
    fn from(e: &str) -> Fail {
        Fail::Err(e.to_owned())
    }
}

/// What went wrong inside one exchange.
enum Ex {
    Fail(Fail),
    /// The kept-alive connection was closed before any byte of the
    /// response: send again on a new one.
    Retry,
}

impl From<Fail> for Ex {
    fn from(f: Fail) -> Ex {
        Ex::Fail(f)
    }
}

impl HttpUrl {
    /// `uri` (from a playlist) resolved against this URL (RFC 3986, for
    /// the forms playlists use: absolute `http://`, network-path `//`,
    /// absolute-path `/`, query-only `?`, and relative paths with `.` and
    /// `..` segments).
    pub fn resolve(&self, uri: &str) -> Res<HttpUrl> {
        if uri.starts_with("http://") {
            return HttpUrl::parse(uri);
        }
        if let Some(rest) = uri.strip_prefix("//") {
            return HttpUrl::parse(&format!("http://{rest}"));
        }
        if uri.contains("://") {
            return Err(format!("{uri}: only http:// is supported"));
        }
        let (base_path, _) = split_query(&self.path);
        let joined = if uri.starts_with('/') {
            uri.to_owned()
        } else if uri.starts_with('?') {
            format!("{base_path}{uri}")
        } else if uri.is_empty() {
            return Ok(self.clone());
        } else {
            let dir = &base_path[..base_path.rfind('/').map_or(0, |i| i + 1)];
            format!("{dir}{uri}")
        };
        let (path, query) = split_query(&joined);
        let mut out: Vec<&str> = Vec::new();
        let segs: Vec<&str> = path.split('/').collect();
        for (i, s) in segs.iter().enumerate() {
            let last = i + 1 == segs.len();
            match *s {
                "." => {
                    if last {
                        out.push("");
                    }
                }
                ".." => {
                    if out.len() > 1 {
                        out.pop();
                    }
                    if last {
                        out.push("");
                    }
                }
                s => out.push(s),
            }
        }
        let mut path = out.join("/");
        if !path.starts_with('/') {
            path.insert(0, '/');
        }
        Ok(HttpUrl {
            addr: self.addr.clone(),
            host: self.host.clone(),
            path: format!("{path}{query}"),
        })
    }

    /// The same URL with `key=value` added to its query.
    pub fn with_query(&self, key: &str, value: &str) -> HttpUrl {
        let sep = if self.path.contains('?') { '&' } else { '?' };
        HttpUrl {
            path: format!("{}{sep}{key}={value}", self.path),
            ..self.clone()
        }
    }

    /// The value of `key` in the query, if there.
    pub fn query(&self, key: &str) -> Option<&str> {
        let (_, q) = split_query(&self.path);
        q.strip_prefix('?')?
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v)
    }
}

/// `path?query` → (`path`, `?query` or "").
pub fn split_query(p: &str) -> (&str, &str) {
    match p.find('?') {
        Some(i) => (&p[..i], &p[i..]),
        None => (p, ""),
    }
}

/// A byte range of a request: first byte, and the last one if bounded.
pub type Range = (u64, Option<u64>);

/// A request for [`HttpConn::send`]: method, header fields (beyond Host,
/// User-Agent, Accept and Content-Length, which it writes), body.
pub struct Req<'a> {
    pub method: &'a str,
    pub headers: &'a [(&'a str, &'a str)],
    pub body: &'a [u8],
}

/// A whole response of [`HttpConn::send`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    /// Header fields in order: names lowercased, values trimmed.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// The first field named `name` (lowercase).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// The header fields of a raw response head (status line first, then
/// `name: value` lines): names lowercased, values trimmed, as they came.
pub fn parse_headers(raw: &[u8]) -> Vec<(String, String)> {
    String::from_utf8_lossy(raw)
        .split("\r\n")
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect()
}

/// One connection's worth of client, to the host of the URLs it is given
/// (another host closes it and opens one there).
pub struct HttpConn {
    addr: String,
    sock: Option<TcpStream>,
    /// Most bytes read at once.
    read_size: usize,
    /// Bytes read but not used yet (read into in place; used bytes are
    /// dropped from its front without moving the rest).
    pending: BytesMut,
    /// Bytes read from the network, heads included.
    pub bytes: u64,
    /// Requests sent.
    pub requests: u64,
}

/// Most bytes of a response head.
const MAX_HEAD: usize = 16 * 1024;

impl HttpConn {
    pub fn new(read_buf: usize) -> HttpConn {
        HttpConn {
            addr: String::new(),
            sock: None,
            read_size: read_buf.max(1024),
            pending: BytesMut::new(),
            bytes: 0,
            requests: 0,
        }
    }

    /// GET `url`, the whole body into a vector of at most `limit` bytes.
    /// Returns the status, the body and when its last byte arrived.
    pub async fn get(
        &mut self,
        url: &HttpUrl,
        range: Option<Range>,
        end: Instant,
        timeout: Duration,
        limit: usize,
    ) -> Result<(u16, Vec<u8>, Instant), Fail> {
        let mut body = Vec::new();
        let status = self
            .request(url, range, end, timeout, &mut |d: &[u8]| {
                if body.len() + d.len() > limit {
                    return Err("response body too large".into());
                }
                body.extend_from_slice(d);
                Ok(())
            })
            .await?;
        Ok((status, body, Instant::now()))
    }

    /// GET `url`, each piece of the body to `on_body` as it arrives.
    /// `timeout` bounds the whole exchange (a live body is cut by `end`,
    /// not by it: pass a long one).
    pub async fn request(
        &mut self,
        url: &HttpUrl,
        range: Option<Range>,
        end: Instant,
        timeout: Duration,
        on_body: &mut (dyn FnMut(&[u8]) -> Res<()> + Send),
    ) -> Result<u16, Fail> {
        self.request_with_head(url, range, end, timeout, &mut |_| Ok(()), on_body)
            .await
    }

    /// [`request`](Self::request), with the status handed to `on_head`
    /// before the body (an error there ends the exchange).
    pub async fn request_with_head(
        &mut self,
        url: &HttpUrl,
        range: Option<Range>,
        end: Instant,
        timeout: Duration,
        on_head: &mut (dyn FnMut(u16) -> Res<()> + Send),
        on_body: &mut (dyn FnMut(&[u8]) -> Res<()> + Send),
    ) -> Result<u16, Fail> {
        let mut req = format!(
            "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: rill-loadgen\r\nAccept: */*\r\n",
            url.path, url.host
        );
        if let Some((first, last)) = range {
            req.push_str(&format!(
                "Range: bytes={first}-{}\r\n",
                last.map_or(String::new(), |l| l.to_string())
            ));
        }
        req.push_str("\r\n");
        self.perform(
            url,
            req.as_bytes(),
            end,
            timeout,
            &mut |status, _| on_head(status),
            on_body,
        )
        .await
    }

    /// Any request (`req`: method, header fields, body), the whole
    /// response into memory (a body of at most `limit` bytes), for WHEP's
    /// POST of an offer and DELETE of its resource.
    pub async fn send(
        &mut self,
        url: &HttpUrl,
        req: &Req<'_>,
        end: Instant,
        timeout: Duration,
        limit: usize,
    ) -> Result<Response, Fail> {
        let mut head = format!(
            "{} {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: rill-loadgen\r\nAccept: */*\r\n",
            req.method, url.path, url.host
        );
        for (k, v) in req.headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        if !req.body.is_empty() || req.method == "POST" {
            head.push_str(&format!("Content-Length: {}\r\n", req.body.len()));
        }
        head.push_str("\r\n");
        let mut bytes = head.into_bytes();
        bytes.extend_from_slice(req.body);
        let mut headers = Vec::new();
        let mut body = Vec::new();
        let status = self
            .perform(
                url,
                &bytes,
                end,
                timeout,
                &mut |_, raw| {
                    headers = parse_headers(raw);
                    Ok(())
                },
                &mut |d: &[u8]| {
                    if body.len() + d.len() > limit {
                        return Err("response body too large".into());
                    }
                    body.extend_from_slice(d);
                    Ok(())
                },
            )
            .await?;
        Ok(Response {
            status,
            headers,
            body,
        })
    }

    /// Sends the request bytes `req` (on the kept-alive connection, or a
    /// new one) and reads the response: its status and raw head to
    /// `on_head`, its body to `on_body`.
    async fn perform(
        &mut self,
        url: &HttpUrl,
        req: &[u8],
        end: Instant,
        timeout: Duration,
        on_head: &mut (dyn FnMut(u16, &[u8]) -> Res<()> + Send),
        on_body: &mut (dyn FnMut(&[u8]) -> Res<()> + Send),
    ) -> Result<u16, Fail> {
        if self.addr != url.addr {
            self.sock = None;
            self.addr = url.addr.clone();
        }
        let limit = Instant::now() + timeout;
        let deadline = tokio::time::Instant::from_std(end.min(limit));
        let expired = move || -> Fail {
            if Instant::now() >= end || end <= limit {
                Fail::End
            } else {
                Fail::Err("request timed out".into())
            }
        };
        for attempt in 0..2 {
            let reused = self.sock.is_some();
            if self.sock.is_none() {
                let s =
                    match tokio::time::timeout_at(deadline, TcpStream::connect(&self.addr)).await {
                        Err(_) => return Err(expired()),
                        Ok(r) => r.map_err(|e| Fail::Err(format!("connect: {}", e.kind())))?,
                    };
                s.set_nodelay(true).ok();
                self.sock = Some(s);
                self.pending.clear();
            }
            self.requests += 1;
            match self.exchange(req, deadline, on_head, on_body).await {
                Ok((status, keep)) => {
                    if !keep {
                        self.sock = None;
                    }
                    return Ok(status);
                }
                Err(e) => {
                    self.sock = None;
                    match e {
                        Ex::Retry if reused && attempt == 0 => continue,
                        Ex::Retry => return Err("closed before the response".into()),
                        Ex::Fail(Fail::End) => return Err(expired()),
                        Ex::Fail(f) => return Err(f),
                    }
                }
            }
        }
        Err("closed before the response".into())
    }

    /// Reads more bytes into `pending`; Ok(false) at the end of the stream.
    async fn fill(&mut self, deadline: tokio::time::Instant) -> Result<bool, Fail> {
        let Some(sock) = self.sock.as_mut() else {
            return Ok(false);
        };
        self.pending.reserve(self.read_size);
        let n = match tokio::time::timeout_at(deadline, sock.read_buf(&mut self.pending)).await {
            Err(_) => return Err(Fail::End),
            Ok(r) => r.map_err(|e| Fail::Err(format!("read: {}", e.kind())))?,
        };
        self.bytes += n as u64;
        Ok(n > 0)
    }

    /// One request and its response; returns the status and whether the
    /// connection may carry another.
    async fn exchange(
        &mut self,
        req: &[u8],
        deadline: tokio::time::Instant,
        on_head: &mut (dyn FnMut(u16, &[u8]) -> Res<()> + Send),
        on_body: &mut (dyn FnMut(&[u8]) -> Res<()> + Send),
    ) -> Result<(u16, bool), Ex> {
        {
            let sock = self.sock.as_mut().ok_or(Ex::Retry)?;
            match tokio::time::timeout_at(deadline, sock.write_all(req)).await {
                Err(_) => return Err(Fail::End.into()),
                Ok(Err(_)) => return Err(Ex::Retry),
                Ok(Ok(())) => {}
            }
        }
        // The head (after what is left of the last response: the CRLF
        // that ends a chunked body).
        let mut got_any = false;
        let head_len = loop {
            let skip = self
                .pending
                .iter()
                .take_while(|&&b| b == b'\r' || b == b'\n')
                .count();
            self.pending.advance(skip);
            if let Some(i) = self.pending.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            if self.pending.len() > MAX_HEAD {
                return Err(Fail::from("response head too long").into());
            }
            match self.fill(deadline).await {
                Ok(true) => got_any = true,
                Ok(false) if !got_any && self.pending.is_empty() => return Err(Ex::Retry),
                Ok(false) => return Err(Fail::from("closed in the response head").into()),
                Err(Fail::Err(_)) if !got_any && self.pending.is_empty() => return Err(Ex::Retry),
                Err(e) => return Err(e.into()),
            }
        };
        let head = String::from_utf8_lossy(&self.pending[..head_len]).to_ascii_lowercase();
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or("");
        let mut words = status_line.split_whitespace();
        let version = words.next().unwrap_or("");
        let status: u16 = words
            .next()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| Fail::from("bad status line"))?;
        let (mut length, mut chunked, mut close) = (None, false, version == "http/1.0");
        for l in lines {
            let Some((k, v)) = l.split_once(':') else {
                continue;
            };
            let v = v.trim();
            match k.trim() {
                "content-length" => length = v.parse::<u64>().ok(),
                "transfer-encoding" => chunked = v.contains("chunked"),
                "connection" => {
                    if v.contains("close") {
                        close = true;
                    } else if v.contains("keep-alive") {
                        close = false;
                    }
                }
                _ => {}
            }
        }
        on_head(status, &self.pending[..head_len]).map_err(Fail::Err)?;
        self.pending.advance(head_len);
        if status == 204 || status == 304 || (100..200).contains(&status) {
            return Ok((status, !close));
        }
        if chunked {
            let mut d = Dechunker::default();
            loop {
                let data = std::mem::take(&mut self.pending);
                d.feed(&data, |piece| on_body(piece)).map_err(Fail::Err)?;
                if d.done {
                    return Ok((status, !close));
                }
                if !self.fill(deadline).await? {
                    return Err(Fail::from("closed in a chunked body").into());
                }
            }
        }
        if let Some(mut left) = length {
            loop {
                let n = (left.min(self.pending.len() as u64)) as usize;
                if n > 0 {
                    on_body(&self.pending[..n]).map_err(Fail::Err)?;
                    self.pending.advance(n);
                    left -= n as u64;
                }
                if left == 0 {
                    return Ok((status, !close));
                }
                if !self.fill(deadline).await? {
                    return Err(Fail::from("closed in the body").into());
                }
            }
        }
        // Ended by the close.
        loop {
            if !self.pending.is_empty() {
                let data = std::mem::take(&mut self.pending);
                on_body(&data).map_err(Fail::Err)?;
            }
            if !self.fill(deadline).await? {
                return Ok((status, false));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_playlist_uris() {
        let base = HttpUrl::parse("http://h:8080/live/x.m3u8?format=ts").unwrap();
        let r = |u: &str| base.resolve(u).unwrap().path;
        assert_eq!(r("x/llhls.m3u8"), "/live/x/llhls.m3u8");
        assert_eq!(r("x/ts.m3u8?a=1"), "/live/x/ts.m3u8?a=1");
        assert_eq!(r("/other/y.m3u8"), "/other/y.m3u8");
        assert_eq!(r("../a/./b.mp4"), "/a/b.mp4");
        assert_eq!(r("../../../c"), "/c");
        assert_eq!(r("?_HLS_msn=3"), "/live/x.m3u8?_HLS_msn=3");
        let abs = base.resolve("http://other:81/p/q.m4s").unwrap();
        assert_eq!(
            (abs.addr.as_str(), abs.path.as_str()),
            ("other:81", "/p/q.m4s")
        );
        let nested = base.resolve("x/llhls.m3u8").unwrap();
        assert_eq!(nested.resolve("p5.0.m4s").unwrap().path, "/live/x/p5.0.m4s");
        assert_eq!(base.query("format"), Some("ts"));
        assert_eq!(
            nested.with_query("_HLS_msn", "4").path,
            "/live/x/llhls.m3u8?_HLS_msn=4"
        );
        assert!(base.resolve("https://h/x").is_err());
    }

    /// `send`: a POST with its body and fields, the response's status,
    /// fields (a header's value keeps its case) and body; a DELETE.
    #[test]
    fn sends_a_post_and_reads_the_whole_response() {
        use std::io::{Read, Write};
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            let mut seen = Vec::new();
            for answer in [
                "HTTP/1.1 201 Created\r\nContent-Type: application/sdp\r\nLocation: /webrtc/session/AbC\r\nContent-Length: 5\r\n\r\nv=0\r\n",
                "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n",
            ] {
                let (mut c, _) = l.accept().unwrap();
                let mut req = Vec::new();
                let mut b = [0u8; 4096];
                // The head, then Content-Length bytes of body.
                loop {
                    let n = c.read(&mut b).unwrap();
                    req.extend_from_slice(&b[..n]);
                    let text = String::from_utf8_lossy(&req).to_string();
                    if let Some(i) = text.find("\r\n\r\n") {
                        let len = text
                            .lines()
                            .find_map(|l| l.strip_prefix("Content-Length: "))
                            .map_or(0, |v| v.trim().parse::<usize>().unwrap());
                        if req.len() >= i + 4 + len {
                            break;
                        }
                    }
                }
                c.write_all(answer.as_bytes()).unwrap();
                seen.push(String::from_utf8(req).unwrap());
            }
            seen
        });
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let url = HttpUrl::parse(&format!("http://127.0.0.1:{port}/live/x/whep")).unwrap();
        let end = Instant::now() + Duration::from_secs(10);
        let r = rt
            .block_on(HttpConn::new(1024).send(
                &url,
                &Req {
                    method: "POST",
                    headers: &[("Content-Type", "application/sdp"), ("Connection", "close")],
                    body: b"v=0 offer",
                },
                end,
                Duration::from_secs(5),
                1024,
            ))
            .unwrap();
        assert_eq!(r.status, 201);
        assert_eq!(r.header("location"), Some("/webrtc/session/AbC"));
        assert_eq!(r.header("content-type"), Some("application/sdp"));
        assert_eq!(r.body, b"v=0\r\n");
        let del = url.resolve(r.header("location").unwrap()).unwrap();
        let d = rt
            .block_on(HttpConn::new(1024).send(
                &del,
                &Req {
                    method: "DELETE",
                    headers: &[],
                    body: &[],
                },
                end,
                Duration::from_secs(5),
                1024,
            ))
            .unwrap();
        assert_eq!((d.status, d.body.len()), (200, 0));
        let seen = server.join().unwrap();
        assert!(
            seen[0].starts_with("POST /live/x/whep HTTP/1.1\r\n"),
            "{}",
            seen[0]
        );
        assert!(seen[0].contains("\r\nContent-Type: application/sdp\r\n"));
        assert!(seen[0].contains("\r\nContent-Length: 9\r\n"));
        assert!(seen[0].ends_with("\r\n\r\nv=0 offer"));
        assert!(seen[1].starts_with("DELETE /webrtc/session/AbC HTTP/1.1\r\n"));
        assert!(!seen[1].contains("Content-Length"));
    }
}
