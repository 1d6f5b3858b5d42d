//! An HTTP-FLV player: one GET, then the body (chunked or close-delimited)
//! parsed as FLV tags in place, without copying tag bodies: only the first
//! 64 bytes of each tag are kept (enough for the frame type and the stamp).

use std::time::Instant;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::stats::{Player, Shared};

pub type Res<T> = Result<T, String>;

/// `http://host:port/path`.
#[derive(Clone, Debug)]
pub struct HttpUrl {
    pub addr: String,
    pub host: String,
    pub path: String,
}

impl HttpUrl {
    pub fn parse(url: &str) -> Res<HttpUrl> {
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| format!("{url}: not http://"))?;
        let (hostport, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let addr = if hostport.contains(':') {
            hostport.to_owned()
        } else {
            format!("{hostport}:80")
        };
        Ok(HttpUrl {
            addr,
            host: hostport.to_owned(),
            path: path.to_owned(),
        })
    }
}

const PREFIX: usize = 64;

#[derive(Clone, Copy)]
enum St {
    FileHeader(usize),
    TagHeader,
    Body,
    PrevSize(usize),
}

/// Streaming FLV tag parser.
pub struct FlvParser {
    st: St,
    hdr: [u8; 11],
    hlen: usize,
    prefix: [u8; PREFIX],
    plen: usize,
    left: usize,
    kind: u8,
    ts: u32,
}

impl Default for FlvParser {
    fn default() -> Self {
        FlvParser {
            st: St::FileHeader(13),
            hdr: [0; 11],
            hlen: 0,
            prefix: [0; PREFIX],
            plen: 0,
            left: 0,
            kind: 0,
            ts: 0,
        }
    }
}

impl FlvParser {
    /// Feeds body bytes; calls `p.on_tag` for every complete tag.
    pub fn feed(&mut self, mut d: &[u8], p: &mut Player, shared: &Shared, now: Instant) -> Res<()> {
        while !d.is_empty() {
            match self.st {
                St::FileHeader(left) => {
                    if left == 13 && d.len() >= 3 && &d[..3] != b"FLV" {
                        return Err("not an FLV body".into());
                    }
                    let n = left.min(d.len());
                    d = &d[n..];
                    self.st = if n == left {
                        St::TagHeader
                    } else {
                        St::FileHeader(left - n)
                    };
                }
                St::TagHeader => {
                    let n = (11 - self.hlen).min(d.len());
                    self.hdr[self.hlen..self.hlen + n].copy_from_slice(&d[..n]);
                    self.hlen += n;
                    d = &d[n..];
                    if self.hlen == 11 {
                        let h = self.hdr;
                        self.hlen = 0;
                        self.kind = h[0] & 0x1f;
                        self.left = u32::from_be_bytes([0, h[1], h[2], h[3]]) as usize;
                        self.ts = u32::from_be_bytes([h[7], h[4], h[5], h[6]]);
                        self.plen = 0;
                        self.st = St::Body;
                        if self.left == 0 {
                            self.st = St::PrevSize(4);
                        }
                    }
                }
                St::Body => {
                    let n = self.left.min(d.len());
                    let keep = (PREFIX - self.plen).min(n);
                    self.prefix[self.plen..self.plen + keep].copy_from_slice(&d[..keep]);
                    self.plen += keep;
                    self.left -= n;
                    d = &d[n..];
                    if self.left == 0 {
                        p.on_tag(self.kind, self.ts, &self.prefix[..self.plen], now, shared);
                        self.st = St::PrevSize(4);
                    }
                }
                St::PrevSize(left) => {
                    let n = left.min(d.len());
                    d = &d[n..];
                    self.st = if n == left {
                        St::TagHeader
                    } else {
                        St::PrevSize(left - n)
                    };
                }
            }
        }
        Ok(())
    }
}

/// Streaming `Transfer-Encoding: chunked` decoder.
#[derive(Default)]
pub struct Dechunker {
    /// Bytes of chunk data left; None while reading a size line.
    left: Option<usize>,
    size: usize,
    in_ext: bool,
    /// CRLF bytes to skip after a chunk's data.
    crlf: usize,
    pub done: bool,
}

impl Dechunker {
    /// Splits `d` into body pieces, handed to `f`.
    pub fn feed(&mut self, mut d: &[u8], mut f: impl FnMut(&[u8]) -> Res<()>) -> Res<()> {
        while !d.is_empty() && !self.done {
            if self.crlf > 0 {
                let n = self.crlf.min(d.len());
                self.crlf -= n;
                d = &d[n..];
                continue;
            }
            match self.left {
                Some(left) => {
                    let n = left.min(d.len());
                    f(&d[..n])?;
                    d = &d[n..];
                    if n == left {
                        self.left = None;
                        self.crlf = 2;
                    } else {
                        self.left = Some(left - n);
                    }
                }
                None => {
                    let b = d[0];
                    d = &d[1..];
                    match b {
                        b'\n' => {
                            if self.size == 0 {
                                self.done = true;
                            } else {
                                self.left = Some(self.size);
                            }
                            self.size = 0;
                            self.in_ext = false;
                        }
                        b'\r' => {}
                        b';' => self.in_ext = true,
                        _ if self.in_ext => {}
                        _ => {
                            let v = (b as char)
                                .to_digit(16)
                                .ok_or_else(|| "bad chunk size".to_string())?;
                            self.size = self.size.checked_mul(16).ok_or("chunk size overflow")?
                                + v as usize;
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

/// A player: GET, then count until `end`.
pub async fn play(
    url: HttpUrl,
    p: &mut Player,
    shared: &Shared,
    end: Instant,
    read_buf: usize,
) -> Res<()> {
    let mut sock = TcpStream::connect(&url.addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    sock.set_nodelay(true).ok();
    let req = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: rill-loadgen\r\nAccept: */*\r\n\r\n",
        url.path, url.host
    );
    sock.write_all(req.as_bytes())
        .await
        .map_err(|e| format!("write: {e}"))?;
    let mut buf = vec![0u8; read_buf];
    let end = tokio::time::Instant::from_std(end);
    // The response head.
    let mut head = Vec::new();
    let body_start;
    loop {
        let n = match tokio::time::timeout_at(end, sock.read(&mut buf)).await {
            Err(_) => return Ok(()),
            Ok(r) => r.map_err(|e| format!("read: {e}"))?,
        };
        if n == 0 {
            return Err("closed before the response".into());
        }
        p.bytes += n as u64;
        head.extend_from_slice(&buf[..n]);
        if let Some(i) = head.windows(4).position(|w| w == b"\r\n\r\n") {
            body_start = i + 4;
            break;
        }
        if head.len() > 16 * 1024 {
            return Err("response head too long".into());
        }
    }
    let head_text = String::from_utf8_lossy(&head[..body_start]).to_ascii_lowercase();
    let status = head_text.split_whitespace().nth(1).unwrap_or("");
    if status != "200" {
        return Err(format!("HTTP {status}"));
    }
    p.connected = Some(Instant::now());
    let chunked = head_text.contains("transfer-encoding: chunked");
    let mut flv = FlvParser::default();
    let mut dechunk = Dechunker::default();
    let mut feed = |d: &[u8], p: &mut Player| -> Res<()> {
        let now = Instant::now();
        if chunked {
            dechunk.feed(d, |piece| flv.feed(piece, p, shared, now))
        } else {
            flv.feed(d, p, shared, now)
        }
    };
    feed(&head[body_start..], p)?;
    drop(head);
    loop {
        let n = match tokio::time::timeout_at(end, sock.read(&mut buf)).await {
            Err(_) => return Ok(()),
            Ok(r) => r.map_err(|e| format!("read: {e}"))?,
        };
        if n == 0 {
            return Err("closed by server".into());
        }
        p.bytes += n as u64;
        feed(&buf[..n], p)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_flv_in_any_split() {
        let mut flv = rill_flv::stream::header(true, true).to_vec();
        flv.extend_from_slice(&rill_flv::stream::tag(8, 5, &[0xaf, 1, 1, 2, 3]));
        flv.extend_from_slice(&rill_flv::stream::tag(
            9,
            7,
            &[0x17, 1, 0, 0, 0, 0, 0, 0, 1, 5],
        ));
        let mut chunked = Vec::new();
        for part in flv.chunks(7) {
            chunked.extend_from_slice(format!("{:x};x=y\r\n", part.len()).as_bytes());
            chunked.extend_from_slice(part);
            chunked.extend_from_slice(b"\r\n");
        }
        chunked.extend_from_slice(b"0\r\n\r\n");
        for step in [1, 3, 64] {
            let shared = Shared::default();
            let mut p = Player::new();
            let mut parser = FlvParser::default();
            let mut d = Dechunker::default();
            for piece in chunked.chunks(step) {
                d.feed(piece, |b| parser.feed(b, &mut p, &shared, Instant::now()))
                    .unwrap();
            }
            assert!(d.done);
            assert_eq!((p.video, p.audio), (1, 1), "step {step}");
            assert!(p.first_key.is_some());
        }
    }
}
