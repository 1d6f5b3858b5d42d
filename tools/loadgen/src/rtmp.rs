//! An RTMP client (player and publisher) over tokio, built on Rill's
//! sans-IO RTMP core: the handshake, chunk reader/writer, AMF0 and message
//! codecs all come from `rill-plugin-rtmp`.

use std::time::Instant;

use bytes::BytesMut;
use rill_plugin_rtmp::amf0::Value;
use rill_plugin_rtmp::chunk::{self, csid, ChunkReader, ChunkWriter, MessageHeader, RawMessage};
use rill_plugin_rtmp::handshake::{ClientHandshake, Mode, Scheme};
use rill_plugin_rtmp::message::{Command, Message, UserControl};
use rill_plugin_rtmp::Limits;
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

/// One client connection.
pub struct Conn {
    pub sock: TcpStream,
    reader: ChunkReader,
    writer: ChunkWriter,
    buf: Vec<u8>,
    inbox: std::collections::VecDeque<RawMessage>,
    msgs: Vec<RawMessage>,
    out: BytesMut,
    received: u64,
    acked: u64,
    ack_window: u32,
    next_tx: f64,
    max_amf_depth: usize,
}

impl Conn {
    /// TCP connect, handshake (digest form, as ffmpeg), `connect(app)`.
    pub async fn open(url: &RtmpUrl, read_buf: usize) -> Res<Conn> {
        let sock = TcpStream::connect(&url.addr)
            .await
            .map_err(err("connect"))?;
        sock.set_nodelay(true).map_err(err("nodelay"))?;
        let limits = Limits::default();
        let mut c = Conn {
            sock,
            reader: ChunkReader::new(&limits),
            writer: ChunkWriter::new(),
            buf: vec![0; read_buf.max(4096)],
            inbox: Default::default(),
            msgs: Vec::new(),
            out: BytesMut::new(),
            received: 0,
            acked: 0,
            ack_window: 2_500_000,
            next_tx: 1.0,
            max_amf_depth: limits.max_amf_depth,
        };
        let (mut hs, c0c1) = ClientHandshake::new(Mode::Digest(Scheme::Scheme1));
        c.sock.write_all(&c0c1).await.map_err(err("handshake"))?;
        let mut reply = Vec::new();
        while !hs.is_done() {
            let n = c.sock.read(&mut c.buf).await.map_err(err("handshake"))?;
            if n == 0 {
                return Err("handshake: closed".into());
            }
            let used = hs.feed(&c.buf[..n], &mut reply).map_err(err("handshake"))?;
            if hs.is_done() && used < n {
                let (buf, reader, msgs) = (&c.buf, &mut c.reader, &mut c.msgs);
                reader.feed(&buf[used..n], msgs).map_err(err("chunks"))?;
                c.inbox.extend(msgs.drain(..));
            }
        }
        c.sock.write_all(&reply).await.map_err(err("handshake"))?;
        let obj = Value::object([
            ("app", Value::string(url.app.clone())),
            ("flashVer", Value::string("LNX 9,0,124,2")),
            ("tcUrl", Value::string(url.tc_url.clone())),
            ("fpad", Value::Boolean(false)),
            ("capabilities", Value::Number(15.0)),
            ("audioCodecs", Value::Number(4071.0)),
            ("videoCodecs", Value::Number(252.0)),
            ("videoFunction", Value::Number(1.0)),
        ]);
        c.call("connect", obj, vec![]).await?;
        Ok(c)
    }

    pub fn queue(&mut self, msg: &Message, csid: u32, stream_id: u32, ts: u32) -> Res<()> {
        msg.write(&mut self.writer, csid, stream_id, ts, &mut self.out)
            .map_err(err("encode"))
    }

    /// Queues a media/data message with the given type (8, 9, 18).
    pub fn queue_tag(&mut self, kind: u8, ts: u32, stream_id: u32, body: &[u8]) -> Res<()> {
        let h = MessageHeader::media(kind, ts, stream_id);
        chunk::encode_message(self.writer.chunk_size(), &h, &[body], &mut self.out)
            .map_err(err("encode"))
    }

    pub async fn flush(&mut self) -> Res<()> {
        if !self.out.is_empty() {
            self.sock.write_all(&self.out).await.map_err(err("write"))?;
            self.out.clear();
        }
        Ok(())
    }

    pub fn set_chunk_size(&mut self, n: u32) {
        self.writer.set_chunk_size(n, &mut self.out);
    }

    /// Reads until at least one message is parsed (or EOF).
    async fn fill(&mut self) -> Res<()> {
        while self.inbox.is_empty() {
            let n = self.sock.read(&mut self.buf).await.map_err(err("read"))?;
            if n == 0 {
                return Err("closed by server".into());
            }
            self.feed(n)?;
        }
        Ok(())
    }

    /// Parses `n` freshly read bytes of `buf`; answers pings and acks.
    fn feed(&mut self, n: usize) -> Res<()> {
        self.received += n as u64;
        let (buf, reader, msgs) = (&self.buf, &mut self.reader, &mut self.msgs);
        reader.feed(&buf[..n], msgs).map_err(err("chunks"))?;
        for m in self.msgs.drain(..) {
            match m.type_id {
                chunk::WINDOW_ACK_SIZE if m.payload.len() >= 4 => {
                    let p = &m.payload;
                    self.ack_window = u32::from_be_bytes([p[0], p[1], p[2], p[3]]).max(1);
                }
                chunk::USER_CONTROL if m.payload.len() >= 6 && m.payload[..2] == [0, 6] => {
                    let p = &m.payload;
                    let t = u32::from_be_bytes([p[2], p[3], p[4], p[5]]);
                    let pong = Message::UserControl(UserControl::PingResponse(t));
                    pong.write(&mut self.writer, csid::CONTROL, 0, 0, &mut self.out)
                        .map_err(err("encode"))?;
                }
                _ => self.inbox.push_back(m),
            }
        }
        if self.received - self.acked >= self.ack_window as u64 {
            self.acked = self.received;
            let ack = Message::Acknowledgement(self.received as u32);
            ack.write(&mut self.writer, csid::CONTROL, 0, 0, &mut self.out)
                .map_err(err("encode"))?;
        }
        Ok(())
    }

    /// Sends a command and waits for its `_result` (or fails on `_error`).
    pub async fn call(&mut self, name: &str, obj: Value, args: Vec<Value>) -> Res<Command> {
        let tx = self.next_tx;
        self.next_tx += 1.0;
        let cmd = Message::Command(Command::new(name, tx, obj, args));
        self.queue(&cmd, csid::COMMAND, 0, 0)?;
        self.flush().await?;
        loop {
            let c = self.next_command().await?;
            if c.transaction_id == tx && c.name == "_result" {
                return Ok(c);
            }
            if c.transaction_id == tx && c.name == "_error" {
                return Err(format!("{name}: {:?}", c.args));
            }
        }
    }

    /// The next command the server sends; other messages before it are
    /// dropped (none matter before play starts).
    async fn next_command(&mut self) -> Res<Command> {
        loop {
            self.fill().await?;
            while let Some(m) = self.inbox.pop_front() {
                if m.type_id != chunk::COMMAND_AMF0 && m.type_id != chunk::COMMAND_AMF3 {
                    continue;
                }
                if let Ok(Message::Command(c)) = Message::decode(&m, self.max_amf_depth) {
                    return Ok(c);
                }
            }
        }
    }

    /// Sends a command without a transaction.
    pub fn notify(&mut self, name: &str, stream_id: u32, args: Vec<Value>) -> Res<()> {
        let cmd = Message::Command(Command::new(name, 0.0, Value::Null, args));
        self.queue(&cmd, csid::COMMAND, stream_id, 0)
    }

    pub async fn create_stream(&mut self) -> Res<u32> {
        let r = self.call("createStream", Value::Null, vec![]).await?;
        r.args
            .first()
            .and_then(Value::as_f64)
            .map(|n| n as u32)
            .ok_or_else(|| "createStream: no stream id".into())
    }

    /// Waits for the `onStatus` with code `ok`; an error-level one fails.
    pub async fn wait_status(&mut self, ok: &str) -> Res<()> {
        loop {
            let c = self.next_command().await?;
            if c.name != "onStatus" {
                continue;
            }
            let field = |k: &str| {
                c.args
                    .first()
                    .and_then(|v| v.get(k))
                    .and_then(Value::as_str)
                    .unwrap_or("")
            };
            if field("code") == ok {
                return Ok(());
            }
            if field("level") == "error" {
                return Err(format!("onStatus {}", field("code")));
            }
        }
    }

    /// Reads (with a deadline) and hands every media message to `player`;
    /// returns when the deadline passes.
    pub async fn play_loop(&mut self, p: &mut Player, shared: &Shared, end: Instant) -> Res<()> {
        let end = tokio::time::Instant::from_std(end);
        loop {
            while let Some(m) = self.inbox.pop_front() {
                handle_media(p, shared, &m);
            }
            self.flush().await?;
            let n = match tokio::time::timeout_at(end, self.sock.read(&mut self.buf)).await {
                Err(_) => return Ok(()),
                Ok(r) => r.map_err(err("read"))?,
            };
            if n == 0 {
                return Err("closed by server".into());
            }
            p.bytes += n as u64;
            self.feed(n)?;
        }
    }
}

fn handle_media(p: &mut Player, shared: &Shared, m: &RawMessage) {
    match m.type_id {
        chunk::AUDIO | chunk::VIDEO | chunk::DATA_AMF0 => {
            let pre = &m.payload[..m.payload.len().min(64)];
            p.on_tag(m.type_id, m.timestamp, pre, Instant::now(), shared);
        }
        chunk::AGGREGATE => {
            if let Ok(subs) = rill_plugin_rtmp::message::split_aggregate(&m.payload, m.timestamp) {
                let now = Instant::now();
                for s in subs {
                    let pre = &s.payload[..s.payload.len().min(64)];
                    p.on_tag(s.type_id, s.timestamp, pre, now, shared);
                }
            }
        }
        _ => {}
    }
}

/// A player: connect, createStream, play, then count until `end`.
pub async fn play(url: RtmpUrl, p: &mut Player, shared: &Shared, end: Instant) -> Res<()> {
    let mut c = Conn::open(&url, 32 * 1024).await?;
    // Acknowledge rarely: the server only needs our acks for its window.
    c.queue(&Message::WindowAckSize(100_000_000), csid::CONTROL, 0, 0)?;
    let sid = c.create_stream().await?;
    c.queue(
        &Message::UserControl(UserControl::SetBufferLength {
            stream_id: sid,
            millis: 1000,
        }),
        csid::CONTROL,
        0,
        0,
    )?;
    let args = vec![Value::string(url.stream.clone()), Value::Number(-1000.0)];
    let cmd = Message::Command(Command::new("play", 0.0, Value::Null, args));
    c.queue(&cmd, csid::STREAM, sid, 0)?;
    c.flush().await?;
    p.connected = Some(Instant::now());
    c.play_loop(p, shared, end).await
}

/// A publisher connection, ready for media after `NetStream.Publish.Start`.
pub async fn publish_open(url: &RtmpUrl) -> Res<(Conn, u32)> {
    let mut c = Conn::open(url, 16 * 1024).await?;
    c.set_chunk_size(4096);
    let name = Value::string(url.stream.clone());
    c.notify("releaseStream", 0, vec![name.clone()])?;
    c.notify("FCPublish", 0, vec![name.clone()])?;
    let sid = c.create_stream().await?;
    let cmd = Message::Command(Command::new(
        "publish",
        0.0,
        Value::Null,
        vec![name, Value::string("live")],
    ));
    c.queue(&cmd, csid::STREAM, sid, 0)?;
    c.flush().await?;
    c.wait_status("NetStream.Publish.Start").await?;
    Ok((c, sid))
}

impl Conn {
    /// Drains whatever the server sent (acks, pings) without waiting.
    pub fn try_drain(&mut self) -> Res<()> {
        loop {
            match self.sock.try_read(&mut self.buf) {
                Ok(0) => return Err("closed by server".into()),
                Ok(n) => {
                    self.feed(n)?;
                    self.inbox.clear();
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) => return Err(format!("read: {e}")),
            }
        }
    }
}
