//! An RTMP client (player and publisher) over tokio: the sans-IO client
//! session of `rill-rtmp` (handshake, connect, createStream, publish, play,
//! pings and acknowledgements) driven by a socket and the clock.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use rill_rtmp::{ClientEvent, ClientSession, ClientSettings, Connect, Limits, MediaMode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::stats::{Player, Shared};

/// `rtmp://host:port/app/stream`.
#[derive(Clone, Debug)]
pub struct RtmpUrl {
    pub addr: String,
    pub app: String,
    pub stream: String,
    pub tc_url: String,
}

impl RtmpUrl {
    pub fn parse(url: &str) -> Result<RtmpUrl, String> {
        let rest = url
            .strip_prefix("rtmp://")
            .ok_or_else(|| format!("{url}: not rtmp://"))?;
        let (hostport, path) = rest
            .split_once('/')
            .ok_or_else(|| format!("{url}: no /app/stream"))?;
        let (app, stream) = path
            .rsplit_once('/')
            .ok_or_else(|| format!("{url}: no /app/stream"))?;
        let addr = if hostport.contains(':') {
            hostport.to_owned()
        } else {
            format!("{hostport}:1935")
        };
        Ok(RtmpUrl {
            tc_url: format!("rtmp://{hostport}/{app}"),
            addr,
            app: app.to_owned(),
            stream: stream.to_owned(),
        })
    }
}

impl RtmpUrl {
    /// The same server and app, another stream name.
    pub fn with_stream(&self, stream: &str) -> RtmpUrl {
        RtmpUrl {
            stream: stream.to_owned(),
            ..self.clone()
        }
    }
}

pub type Res<T> = Result<T, String>;

fn err<E: std::fmt::Display>(what: &'static str) -> impl Fn(E) -> String {
    move |e| format!("{what}: {e}")
}

/// A request or the connection must be answered within this (a server
/// under load may be slow; one that never answers fails the client).
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(30);

/// The sessions' clock: time since the first use.
fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn now() -> Duration {
    epoch().elapsed()
}

/// One client connection: the session and its socket.
pub struct Conn {
    pub sock: TcpStream,
    pub client: ClientSession,
    buf: Vec<u8>,
}

/// What a read brought.
enum Read {
    /// Bytes fed to the session (how many).
    Data(usize),
    /// The caller's deadline passed first.
    Deadline,
}

impl Conn {
    /// TCP connect; the session starts (digest handshake, as ffmpeg, then
    /// `connect(app)`) as bytes flow.
    pub async fn open(url: &RtmpUrl, settings: ClientSettings, read_buf: usize) -> Res<Conn> {
        let sock = TcpStream::connect(&url.addr)
            .await
            .map_err(err("connect"))?;
        sock.set_nodelay(true).map_err(err("nodelay"))?;
        let connect = Connect::new(url.app.clone(), url.tc_url.clone());
        let settings = ClientSettings {
            response_timeout: Some(RESPONSE_TIMEOUT),
            ..settings
        };
        Ok(Conn {
            sock,
            client: ClientSession::new(Limits::default(), settings, connect, now()),
            buf: vec![0; read_buf.max(4096)],
        })
    }

    /// Writes everything the session queued.
    pub async fn flush(&mut self) -> Res<()> {
        while let Some(b) = self.client.poll_transmit() {
            self.sock.write_all(&b).await.map_err(err("write"))?;
        }
        Ok(())
    }

    /// Queues a media/data message with the given type (8, 9, 18).
    pub fn queue_tag(&mut self, kind: u8, ts: u32, stream_id: u32, body: &[u8]) -> Res<()> {
        self.client
            .send_tag(stream_id, kind, ts, body)
            .map_err(err("encode"))
    }

    /// Reads once and feeds the session, unless `end` (or the session's own
    /// deadline, which then fails it) comes first.
    async fn read(&mut self, end: Option<Instant>) -> Res<Read> {
        let own = self.client.poll_timeout().map(|t| epoch() + t);
        let until = match (end, own) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let read = self.sock.read(&mut self.buf);
        let r = match until {
            Some(t) => {
                match tokio::time::timeout_at(tokio::time::Instant::from_std(t), read).await {
                    Ok(r) => r,
                    Err(_) => {
                        self.client.handle_timeout(now());
                        return Ok(Read::Deadline);
                    }
                }
            }
            None => read.await,
        };
        let n = r.map_err(err("read"))?;
        if n == 0 {
            return Err("closed by server".into());
        }
        self.client
            .feed(now(), &self.buf[..n])
            .map_err(err("rtmp"))?;
        Ok(Read::Data(n))
    }

    /// Drives the session until `pick` takes an event; failures (refusals,
    /// deadlines) end it.
    async fn until<T>(&mut self, mut pick: impl FnMut(&ClientEvent) -> Option<T>) -> Res<T> {
        loop {
            while let Some(ev) = self.client.poll_event() {
                if let Some(t) = pick(&ev) {
                    return Ok(t);
                }
                failure(&ev)?;
            }
            self.flush().await?;
            self.read(None).await?;
        }
    }

    /// Reads (with a deadline) and hands every media message to `player`;
    /// returns when the deadline passes.
    pub async fn play_loop(&mut self, p: &mut Player, shared: &Shared, end: Instant) -> Res<()> {
        loop {
            while let Some(ev) = self.client.poll_event() {
                match ev {
                    ClientEvent::Tag {
                        tag_type,
                        timestamp,
                        body,
                        ..
                    } => {
                        let pre = &body[..body.len().min(64)];
                        p.on_tag(tag_type, timestamp, pre, Instant::now(), shared);
                    }
                    ClientEvent::Playing { .. } => p.connected = Some(Instant::now()),
                    ev => failure(&ev)?,
                }
            }
            self.flush().await?;
            match self.read(Some(end)).await? {
                Read::Data(n) => p.bytes += n as u64,
                // The session's own deadline failed it: the next round
                // reports why.
                Read::Deadline if Instant::now() < end => {}
                Read::Deadline => return Ok(()),
            }
        }
    }

    /// Drains whatever the server sent (acks, pings) without waiting.
    pub fn try_drain(&mut self) -> Res<()> {
        loop {
            match self.sock.try_read(&mut self.buf) {
                Ok(0) => return Err("closed by server".into()),
                Ok(n) => {
                    self.client
                        .feed(now(), &self.buf[..n])
                        .map_err(err("rtmp"))?;
                    while let Some(ev) = self.client.poll_event() {
                        failure(&ev)?;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) => return Err(format!("read: {e}")),
            }
        }
    }
}

/// The error an event means, if it means one.
fn failure(ev: &ClientEvent) -> Res<()> {
    match ev {
        ClientEvent::Rejected { request, code, .. } => Err(format!("{request:?}: onStatus {code}")),
        ClientEvent::TimedOut { deadline, waited } => {
            Err(format!("no answer: {deadline:?} deadline after {waited:?}"))
        }
        ClientEvent::Closed => Err("closed".into()),
        _ => Ok(()),
    }
}

/// A player: connect, createStream, play, then count until `end`.
pub async fn play(url: RtmpUrl, p: &mut Player, shared: &Shared, end: Instant) -> Res<()> {
    let settings = ClientSettings {
        media: MediaMode::Tags,
        // Acknowledge rarely: the server only needs our acks for its window.
        window_ack_size: Some(100_000_000),
        buffer_ms: 1000,
        // Players send nothing worth bigger chunks.
        chunk_size: 128,
        ..ClientSettings::default()
    };
    let mut c = Conn::open(&url, settings, 32 * 1024).await?;
    c.client.play(now(), &url.stream).map_err(err("play"))?;
    c.play_loop(p, shared, end).await
}

/// A publisher connection, ready for media after `NetStream.Publish.Start`.
pub async fn publish_open(url: &RtmpUrl) -> Res<(Conn, u32)> {
    let settings = ClientSettings {
        chunk_size: 4096,
        ..ClientSettings::default()
    };
    let mut c = Conn::open(url, settings, 16 * 1024).await?;
    c.client
        .publish(now(), &url.stream)
        .map_err(err("publish"))?;
    let sid = c
        .until(|ev| match ev {
            ClientEvent::Publishing { stream_id, .. } => Some(*stream_id),
            _ => None,
        })
        .await?;
    c.flush().await?;
    Ok((c, sid))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rill_rtmp::{Event, Session};

    /// A server made of the crate's server session on a real socket:
    /// accepts every publish and reports the frames it gets.
    async fn serve_one(l: tokio::net::TcpListener, frames: tokio::sync::mpsc::Sender<(u32, i64)>) {
        let (mut s, _) = l.accept().await.unwrap();
        let mut sess = Session::new(Limits::default(), Duration::ZERO);
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = s.read(&mut buf).await.unwrap();
            if n == 0 {
                return;
            }
            sess.feed(Duration::ZERO, &buf[..n]).unwrap();
            while let Some(ev) = sess.poll_event() {
                match ev {
                    Event::PublishRequested { stream_id, .. } => {
                        sess.accept_publish(stream_id).unwrap()
                    }
                    Event::Media { frame, .. } => {
                        frames.send((frame.codec, frame.dts)).await.unwrap()
                    }
                    _ => {}
                }
            }
            while let Some(b) = sess.poll_transmit() {
                s.write_all(&b).await.unwrap();
            }
        }
    }

    #[tokio::test]
    async fn publisher_reaches_a_server_session() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        let (tx, mut rx) = tokio::sync::mpsc::channel(16);
        tokio::spawn(serve_one(l, tx));
        let url = RtmpUrl::parse(&format!("rtmp://127.0.0.1:{port}/live/cam")).unwrap();
        let (mut c, sid) = publish_open(&url).await.unwrap();
        // AVC sequence header, then a key frame at 40 ms.
        c.queue_tag(9, 0, sid, &[0x17, 0, 0, 0, 0, 1, 0x64, 0, 0x1f])
            .unwrap();
        c.queue_tag(9, 40, sid, &[0x17, 1, 0, 0, 0, 0, 0, 0, 1, 0x65])
            .unwrap();
        c.flush().await.unwrap();
        let h264 = u32::from_le_bytes(*b"avc1");
        assert_eq!(rx.recv().await, Some((h264, 0)));
        assert_eq!(rx.recv().await, Some((h264, 40_000)));
        c.try_drain().unwrap();
    }
}
