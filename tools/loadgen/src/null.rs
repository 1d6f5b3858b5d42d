//! The null server: the floor of what a server must spend to send one live
//! stream to N players. It speaks just enough RTMP (Rill's sans-IO session
//! does the handshake and commands) and HTTP to start a player, then hands
//! the socket to one broadcaster thread that muxes each frame once (an RTMP
//! message chunked once, an FLV tag once) and writes the same bytes to
//! every socket with one `writev` per socket per tick: no per-player copy,
//! no per-player task, no queue but the socket's own.
//!
//! New players get the metadata, the sequence headers and the GOP since the
//! last key frame (a GOP cache), like Rill. A player whose unsent bytes pass
//! 8 MiB is dropped.

use std::collections::VecDeque;
use std::io::{IoSlice, Write};
use std::net::TcpStream as StdStream;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use rill_rtmp::chunk::{self, MessageHeader};
use rill_rtmp::session::{Event, Session};
use rill_rtmp::Limits;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::flvsrc::{FlvFile, Looper};

const CHUNK_SIZE: u32 = 4096;
const MAX_PENDING: usize = 8 << 20;

enum Kind {
    Rtmp { stream_id: u32 },
    Http,
}

struct Joiner {
    sock: StdStream,
    kind: Kind,
}

pub fn run(listen: &str, file: Arc<FlvFile>, nodelay: bool) -> Result<(), String> {
    let (tx, rx) = mpsc::channel::<Joiner>();
    let f = file.clone();
    std::thread::Builder::new()
        .name("broadcast".into())
        .spawn(move || broadcast(f, rx, nodelay))
        .map_err(|e| e.to_string())?;
    eprintln!("null server on {listen}: RTMP and HTTP-FLV (any path)");
    accept(listen, move |s| {
        let tx = tx.clone();
        async move {
            if let Err(e) = setup(s, tx).await {
                eprintln!("null: {e}");
            }
        }
    })
}

/// Accepts on `listen` for ever on one thread (a current-thread runtime),
/// each connection a task of `conn`'s.
pub fn accept<F, Fut>(listen: &str, conn: F) -> Result<(), String>
where
    F: Fn(TcpStream) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async move {
        let l = TcpListener::bind(listen)
            .await
            .map_err(|e| format!("bind {listen}: {e}"))?;
        loop {
            match l.accept().await {
                Ok((s, _)) => {
                    tokio::spawn(conn(s));
                }
                Err(e) => {
                    eprintln!("accept: {e}");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }
    })
}

async fn setup(mut s: TcpStream, tx: mpsc::Sender<Joiner>) -> Result<(), String> {
    // The exchange before play and the first burst (headers, GOP) are
    // written with TCP_NODELAY: with Nagle, a burst smaller than one
    // segment would wait for the client's delayed ACK of the replies
    // before it (40 ms). The broadcaster applies `--nodelay` afterwards.
    s.set_nodelay(true).ok();
    let mut buf = vec![0u8; 8192];
    let n = s.read(&mut buf).await.map_err(|e| e.to_string())?;
    if n == 0 {
        return Ok(());
    }
    let kind = if buf[0] == 3 {
        rtmp_setup(&mut s, &mut buf, n).await?
    } else {
        http_setup(&mut s, &mut buf, n).await?
    };
    let Some(kind) = kind else { return Ok(()) };
    let sock = s.into_std().map_err(|e| e.to_string())?;
    tx.send(Joiner { sock, kind }).map_err(|e| e.to_string())
}

async fn rtmp_setup(
    s: &mut TcpStream,
    buf: &mut [u8],
    mut n: usize,
) -> Result<Option<Kind>, String> {
    // No deadlines: the null server never calls handle_timeout, so the
    // session's clock stays at zero.
    let mut sess = Session::new(Limits::default(), Duration::ZERO);
    loop {
        sess.feed(Duration::ZERO, &buf[..n])
            .map_err(|e| e.to_string())?;
        let mut play = None;
        while let Some(ev) = sess.poll_event() {
            match ev {
                Event::PlayRequested { stream_id, .. } => play = Some(stream_id),
                Event::PublishRequested { stream_id, .. } => {
                    let _ = sess.reject_publish(stream_id, "the null server only plays");
                }
                _ => {}
            }
        }
        if let Some(id) = play {
            sess.accept_play(id).map_err(|e| e.to_string())?;
            // Settings::default() announces chunk size 4096 at connect.
            debug_assert_eq!(
                sess.chunk_params(id).map(|p| p.chunk_size),
                Some(CHUNK_SIZE)
            );
        }
        while let Some(b) = sess.poll_transmit() {
            s.write_all(&b).await.map_err(|e| e.to_string())?;
        }
        if let Some(stream_id) = play {
            return Ok(Some(Kind::Rtmp { stream_id }));
        }
        n = s.read(buf).await.map_err(|e| e.to_string())?;
        if n == 0 {
            return Ok(None);
        }
    }
}

async fn http_setup(
    s: &mut TcpStream,
    buf: &mut [u8],
    mut n: usize,
) -> Result<Option<Kind>, String> {
    let mut head = Vec::new();
    loop {
        head.extend_from_slice(&buf[..n]);
        if head.windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
        if head.len() > 16384 {
            return Err("request head too long".into());
        }
        n = s.read(buf).await.map_err(|e| e.to_string())?;
        if n == 0 {
            return Ok(None);
        }
    }
    let line = String::from_utf8_lossy(&head);
    let path = line.split_whitespace().nth(1).unwrap_or("");
    if !line.starts_with("GET ") || !path.ends_with(".flv") {
        let _ = s
            .write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            .await;
        return Ok(None);
    }
    s.write_all(
        b"HTTP/1.1 200 OK\r\nContent-Type: video/x-flv\r\nCache-Control: no-cache\r\nConnection: close\r\n\r\n",
    )
    .await
    .map_err(|e| e.to_string())?;
    Ok(Some(Kind::Http))
}

/// One frame muxed once for every player.
struct Built {
    kind: u8,
    ts: u32,
    body: Bytes,
    /// The RTMP message for message stream 1 (what every client gets in
    /// practice: the first createStream).
    rtmp1: Bytes,
    flv: Bytes,
}

fn rtmp_msg(kind: u8, ts: u32, stream_id: u32, body: &[u8]) -> Bytes {
    let h = MessageHeader::media(kind, ts, stream_id);
    chunk::serialize_message(CHUNK_SIZE, &h, &[body]).unwrap_or_default()
}

impl Built {
    fn new(kind: u8, ts: u32, body: Bytes) -> Built {
        Built {
            rtmp1: rtmp_msg(kind, ts, 1, &body),
            flv: rill_flv::stream::tag(kind, ts, &body),
            kind,
            ts,
            body,
        }
    }

    fn for_client(&self, k: &Kind) -> Bytes {
        match k {
            Kind::Http => self.flv.clone(),
            Kind::Rtmp { stream_id: 1 } => self.rtmp1.clone(),
            Kind::Rtmp { stream_id } => rtmp_msg(self.kind, self.ts, *stream_id, &self.body),
        }
    }
}

struct Client {
    sock: StdStream,
    kind: Kind,
    pending: VecDeque<Bytes>,
    /// Bytes of `pending[0]` already written.
    offset: usize,
    pending_bytes: usize,
}

impl Client {
    fn push(&mut self, b: Bytes) {
        self.pending_bytes += b.len();
        self.pending.push_back(b);
    }

    /// Writes what it can with one writev per call of up to 64 buffers;
    /// Ok(false) when the client is gone.
    fn flush(&mut self) -> bool {
        while !self.pending.is_empty() {
            let mut iov = [IoSlice::new(&[]); 64];
            let mut k = 0;
            for (i, b) in self.pending.iter().take(64).enumerate() {
                iov[k] = IoSlice::new(if i == 0 { &b[self.offset..] } else { &b[..] });
                k += 1;
            }
            match self.sock.write_vectored(&iov[..k]) {
                Ok(0) => return false,
                Ok(mut n) => {
                    self.pending_bytes -= n;
                    while n > 0 {
                        let left = self.pending[0].len() - self.offset;
                        if n >= left {
                            n -= left;
                            self.pending.pop_front();
                            self.offset = 0;
                        } else {
                            self.offset += n;
                            n = 0;
                        }
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => return false,
            }
        }
        self.pending_bytes <= MAX_PENDING
    }
}

fn broadcast(file: Arc<FlvFile>, rx: mpsc::Receiver<Joiner>, nodelay: bool) {
    let mut looper = Looper::new(file.clone());
    let start = Instant::now();
    let mut clients: Vec<Client> = Vec::new();
    let mut gop: Vec<Built> = Vec::new();
    let mut batch: Vec<Built> = Vec::new();
    loop {
        let due = start + Duration::from_millis(looper.next_ts());
        // Take new players while waiting for the next frame.
        loop {
            let now = Instant::now();
            if now >= due {
                break;
            }
            match rx.recv_timeout(due - now) {
                Ok(j) => {
                    let mut c = Client {
                        sock: j.sock,
                        kind: j.kind,
                        pending: VecDeque::new(),
                        offset: 0,
                        pending_bytes: 0,
                    };
                    let ts = gop.first().map_or(0, |b| b.ts);
                    for b in join_headers(&file, &c.kind, ts) {
                        c.push(b);
                    }
                    for b in &gop {
                        c.push(b.for_client(&c.kind));
                    }
                    if c.flush() {
                        let _ = c.sock.set_nodelay(nodelay);
                        clients.push(c);
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => break,
                Err(mpsc::RecvTimeoutError::Disconnected) => return,
            }
        }
        // Every frame due now, muxed once.
        let now = Instant::now();
        while start + Duration::from_millis(looper.next_ts()) <= now {
            let t = looper.next();
            batch.push(Built::new(t.kind, t.ts as u32, t.body));
        }
        for c in &mut clients {
            for b in &batch {
                c.push(b.for_client(&c.kind));
            }
        }
        clients.retain_mut(|c| c.flush());
        for b in batch.drain(..) {
            if b.kind == 9 && crate::sei::is_video_key(&b.body) {
                gop.clear();
            }
            gop.push(b);
        }
    }
}

/// What a player gets first: (FLV header,) metadata, sequence headers.
fn join_headers(file: &FlvFile, kind: &Kind, ts: u32) -> Vec<Bytes> {
    let mut v = Vec::new();
    let mut tag = |k: u8, body: &Bytes| match kind {
        Kind::Http => v.push(rill_flv::stream::tag(k, ts, body)),
        Kind::Rtmp { stream_id } => v.push(rtmp_msg(k, ts, *stream_id, body)),
    };
    if let Some(m) = &file.metadata {
        tag(18, m);
    }
    if let Some(c) = &file.video_config {
        tag(9, c);
    }
    if let Some(c) = &file.audio_config {
        tag(8, c);
    }
    if let Kind::Http = kind {
        let mut b = BytesMut::new();
        b.extend_from_slice(&rill_flv::stream::header(file.has_audio, file.has_video));
        v.insert(0, b.freeze());
    }
    v
}
