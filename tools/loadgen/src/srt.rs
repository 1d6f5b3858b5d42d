//! SRT players and publishers: each a caller over its own UDP socket,
//! `rill-srt`'s sans-IO [`Caller`] for the handshake and then its
//! [`Connection`] (ARQ, timestamp-based delivery, too-late drop, AES-CTR),
//! driven by the socket and ticked every 10 ms, one task each like the
//! other players.
//!
//! - **Players** (`--proto srt`, or any `srt://` URL) demux the MPEG-TS
//!   the connection delivers with `rill-ts` and count its frames as every
//!   other player does (the latency stamp is in the H.264 frames, as the
//!   demuxer gives them: AVCC). A frame reaches the player the SRT latency
//!   after it was sent (that is what SRT's delivery does), so "too late"
//!   is 1 s beyond that latency. Per player: a socket, the connection's
//!   buffers (what the latency holds), the demuxer's frame in progress and
//!   one datagram buffer.
//! - **Publishers** (`--publish srt://...?streamid=publish:...`) mux the
//!   FLV file's H.264 and AAC (or MP3) frames, stamped, to TS with
//!   `rill-ts` at their time, and send it at once in payloads of 7 TS
//!   packets (1316 bytes): the last payload of an instant carries what is
//!   left (a multiple of 188 bytes), so no frame waits for the next one.
//!
//! URLs as srt-live-transmit takes them:
//! `srt://host:port?streamid=read:live/x&passphrase=...&pbkeylen=16&latency=120`,
//! `latency` in **milliseconds** (ffmpeg's `srt://` takes µs; not here).
//! Values may be percent-encoded (`streamid=%23%21%3A%3Ar%3Dlive%2Fx`).

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rill_abi::{RILL_CODEC_AAC, RILL_CODEC_H264, RILL_CODEC_MP3, RILL_FRAME_KEY};
use rill_srt::handshake::reject;
use rill_srt::{Caller, Closed, Config, Connection, Mode, StreamId};
use rill_ts::{MuxTrack, Muxer, MuxerConfig};
use serde::{Deserialize, Serialize};
use tokio::net::UdpSocket;

use crate::flvsrc::FlvFile;
use crate::stats::{Player, Shared, STALL};
use crate::{media, sei};

pub type Res<T> = Result<T, String>;

/// The connection's timers run at least this often, µs.
const TICK: u64 = 10_000;
/// A handshake must complete within this.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// One SRT payload: 7 TS packets, as every encoder sends them.
pub const TS_PAYLOAD: usize = 7 * 188;
/// The largest datagram (the MTU the caller announces).
const MTU: usize = 1500;

/// `srt://host:port?streamid=...&passphrase=...&pbkeylen=...&latency=ms`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SrtUrl {
    /// `host:port`.
    pub addr: String,
    pub stream_id: Option<String>,
    pub passphrase: Option<String>,
    /// Receive latency, ms (rill-srt's default, 120 ms, when not given).
    pub latency_ms: Option<u16>,
    /// AES key length in bytes (16, 24, 32).
    pub key_len: Option<usize>,
}

impl SrtUrl {
    pub fn parse(url: &str) -> Res<SrtUrl> {
        let rest = url
            .strip_prefix("srt://")
            .ok_or_else(|| format!("{url}: not srt://"))?;
        let (hostport, query) = rest.split_once('?').unwrap_or((rest, ""));
        let hostport = hostport.trim_end_matches('/');
        if hostport.contains('/') {
            return Err(format!(
                "{url}: the stream goes in the stream id (srt://host:port?streamid=read:live/x), not in a path"
            ));
        }
        let port = hostport
            .rsplit_once(':')
            .filter(|(h, _)| !h.is_empty())
            .and_then(|(_, p)| p.parse::<u16>().ok())
            .filter(|&p| p != 0);
        if port.is_none() {
            return Err(format!("{url}: srt://host:port (SRT has no default port)"));
        }
        // The query as srt-live-transmit and libsrt callers write it.
        let p = rill_srt::CallerParams::parse(query).map_err(|e| format!("{url}: {e}"))?;
        let u = SrtUrl {
            addr: hostport.to_owned(),
            stream_id: p.stream_id,
            passphrase: p.passphrase,
            latency_ms: p.latency_ms,
            key_len: p.key_len,
        };
        u.config().validate().map_err(|e| format!("{url}: {e}"))?;
        Ok(u)
    }

    /// The connection settings the URL asks for.
    pub fn config(&self) -> Config {
        let d = Config::default();
        Config {
            latency_ms: self.latency_ms.unwrap_or(d.latency_ms),
            passphrase: self.passphrase.clone(),
            key_len: self.key_len.unwrap_or(d.key_len),
            ..d
        }
    }

    /// Stream `i` of several: the stream id's path + "-i".
    pub fn nth(&self, i: usize) -> SrtUrl {
        SrtUrl {
            stream_id: self.stream_id.as_deref().map(|s| nth_stream_id(s, i)),
            ..self.clone()
        }
    }
}

/// `path?q` → `path-i?q`.
fn nth_path(v: &str, i: usize) -> String {
    match v.split_once('?') {
        Some((p, q)) => format!("{p}-{i}?{q}"),
        None => format!("{v}-{i}"),
    }
}

/// The stream id of stream `i`: `read:live/x` → `read:live/x-i`,
/// `#!::r=live/x,m=publish` → `#!::r=live/x-i,m=publish`, `live/x` →
/// `live/x-i`.
pub fn nth_stream_id(sid: &str, i: usize) -> String {
    if let Some(rest) = sid.strip_prefix("#!::") {
        let kvs: Vec<String> = rest
            .split(',')
            .map(|kv| match kv.split_once('=') {
                Some(("r", v)) => format!("r={}", nth_path(v, i)),
                _ => kv.to_owned(),
            })
            .collect();
        return format!("#!::{}", kvs.join(","));
    }
    match sid.split_once(':') {
        Some((m, rest)) if matches!(m, "publish" | "read" | "subscribe" | "play" | "request") => {
            format!("{m}:{}", nth_path(rest, i))
        }
        _ => nth_path(sid, i),
    }
}

/// A rejection reason in words.
fn reason(r: i32) -> String {
    let what = match r {
        reject::RESOURCE => "server out of resources",
        reject::VERSION => "incompatible version",
        reject::BAD_SECRET => "wrong passphrase",
        reject::UNSECURE => "encryption on one side only",
        reject::MESSAGE_API => "not live mode",
        reject::FILTER => "packet filter",
        reject::BAD_REQUEST => "bad stream id",
        reject::UNAUTHORIZED => "unauthorized",
        reject::FORBIDDEN => "forbidden",
        reject::NOT_FOUND => "no such stream",
        reject::BAD_MODE => "mode not allowed",
        reject::CONFLICT => "stream already published",
        reject::OVERLOAD => "server overloaded",
        _ => "rejected",
    };
    format!("{what} ({r})")
}

/// The connections' clock: µs since the first use.
fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn now_us() -> u64 {
    epoch().elapsed().as_micros() as u64
}

fn instant(us: u64) -> Instant {
    epoch() + Duration::from_micros(us)
}

fn err<E: std::fmt::Display>(what: &'static str) -> impl Fn(E) -> String {
    move |e| format!("{what}: {e}")
}

/// A UDP socket of its own, connected to the server.
async fn socket(addr: &str) -> Res<UdpSocket> {
    let peer = tokio::net::lookup_host(addr)
        .await
        .map_err(|e| format!("{addr}: {e}"))?
        .next()
        .ok_or_else(|| format!("{addr}: no address"))?;
    let local: SocketAddr = if peer.is_ipv4() {
        (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let sock = UdpSocket::bind(local).await.map_err(err("bind"))?;
    sock.connect(peer).await.map_err(err("connect"))?;
    Ok(sock)
}

/// One SRT connection and its socket.
struct Link {
    sock: UdpSocket,
    conn: Connection,
    /// One datagram.
    buf: Box<[u8]>,
    next_tick: u64,
    /// Bytes of the datagrams received.
    bytes: u64,
}

impl Link {
    /// The handshake (repeated every 250 ms until answered), then the
    /// connection; fails at `give_up`, on a rejection or on an ICMP refusal.
    async fn connect(url: &SrtUrl, stream_id: Option<String>, give_up: Instant) -> Res<Link> {
        let sock = socket(&url.addr).await?;
        let mut caller =
            Caller::new(url.config(), stream_id, now_us()).map_err(err("SRT handshake"))?;
        let mut buf = vec![0u8; MTU].into_boxed_slice();
        let mut bytes = 0;
        loop {
            if let Some(d) = caller.poll_transmit(now_us()) {
                sock.send(&d).await.map_err(err("SRT handshake"))?;
            }
            let wait = (Instant::now() + Duration::from_millis(50)).min(give_up);
            match tokio::time::timeout_at(wait.into(), sock.recv(&mut buf)).await {
                Ok(Ok(n)) => {
                    bytes += n as u64;
                    match caller.handle(now_us(), &buf[..n]) {
                        Ok(Some(conn)) => {
                            return Ok(Link {
                                sock,
                                conn,
                                buf,
                                next_tick: now_us() + TICK,
                                bytes,
                            })
                        }
                        Ok(None) | Err(rill_srt::Error::Malformed(_)) => {}
                        Err(rill_srt::Error::Rejected(r)) => {
                            return Err(format!("SRT handshake: {}", reason(r)))
                        }
                        Err(e) => return Err(format!("SRT handshake: {e}")),
                    }
                }
                Ok(Err(e)) => return Err(format!("SRT handshake: {e}")),
                Err(_) if Instant::now() >= give_up => {
                    return Err("SRT handshake: no answer".into());
                }
                Err(_) => {}
            }
        }
    }

    /// Feeds the connection every datagram waiting, without blocking.
    fn drain(&mut self) -> Res<()> {
        loop {
            match self.sock.try_recv(&mut self.buf) {
                Ok(n) => {
                    self.bytes += n as u64;
                    // A datagram that does not parse is dropped, as the
                    // network could have.
                    let _ = self.conn.handle(now_us(), &self.buf[..n]);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) => return Err(format!("recv: {e}")),
            }
        }
    }

    /// Runs the timers when due; the end of the connection is an error.
    fn service(&mut self) -> Res<()> {
        let now = now_us();
        if now >= self.next_tick {
            self.conn.tick(now);
            self.next_tick = now + TICK;
        }
        match self.conn.closed() {
            None => Ok(()),
            Some(Closed::Shutdown) => Err("closed by server".into()),
            Some(Closed::Timeout) => Err(format!(
                "SRT: nothing from the server for {} s",
                self.conn.settings().idle_timeout / 1_000_000
            )),
            Some(Closed::Local) => Err("closed".into()),
        }
    }

    /// Sends what the connection queued.
    async fn flush(&mut self) -> Res<()> {
        while let Some(d) = self.conn.poll_transmit() {
            self.sock.send(&d).await.map_err(err("send"))?;
        }
        Ok(())
    }

    /// Ends the connection (a SHUTDOWN to the server).
    async fn close(&mut self) {
        self.conn.close(now_us());
        let _ = self.flush().await;
    }
}

/// What the SRT players' connections counted, summed over all of them.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(default)]
pub struct RecvCounters {
    /// Players whose handshake completed.
    pub connections: u64,
    /// Data packets received (first copies).
    pub packets: u64,
    /// Packets found missing.
    pub lost: u64,
    /// Retransmissions that filled a hole.
    pub recovered: u64,
    /// Packets given up on (too late for delivery, or dropped by the
    /// sender): a hole in the TS.
    pub dropped: u64,
    /// Duplicates and packets behind the delivery point.
    pub duplicates: u64,
    /// Packets beyond the receive buffer.
    pub overflow: u64,
    /// Packets that did not decrypt.
    pub undecryptable: u64,
    /// NAK reports sent.
    pub naks_sent: u64,
    /// Errors of the TS demuxer (continuity, a frame cut short).
    pub ts_errors: u64,
}

impl RecvCounters {
    fn add_conn(&mut self, s: &rill_srt::Stats, ts_errors: u64) {
        self.connections += 1;
        self.packets += s.recv_packets;
        self.lost += s.recv_lost;
        self.recovered += s.recv_retransmitted;
        self.dropped += s.recv_dropped;
        self.duplicates += s.recv_duplicates;
        self.overflow += s.recv_overflow;
        self.undecryptable += s.recv_undecryptable;
        self.naks_sent += s.naks_sent;
        self.ts_errors += ts_errors;
    }
}

/// What the SRT publishers' connections counted, summed.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(default)]
pub struct SendCounters {
    /// Data packets sent (first copies).
    pub packets: u64,
    /// Retransmissions sent.
    pub retransmitted: u64,
    /// Packets dropped from the send buffer unacknowledged.
    pub dropped: u64,
    /// NAK reports received.
    pub naks_received: u64,
    /// Smoothed round-trip time at the end, ms (the largest).
    pub rtt_ms: f64,
}

impl SendCounters {
    pub fn add(&mut self, o: &SendCounters) {
        self.packets += o.packets;
        self.retransmitted += o.retransmitted;
        self.dropped += o.dropped;
        self.naks_received += o.naks_received;
        self.rtt_ms = self.rtt_ms.max(o.rtt_ms);
    }
}

/// A player: handshake with the stream id, then count until `end`.
pub async fn play(url: SrtUrl, p: &mut Player, shared: &Shared, end: Instant) -> Res<()> {
    if let Some(sid) = &url.stream_id {
        if StreamId::parse(sid).is_ok_and(|s| s.mode == Mode::Publish) {
            return Err(format!("stream id {sid:?} publishes; a player reads"));
        }
    }
    let give_up = (Instant::now() + HANDSHAKE_TIMEOUT).min(end);
    let mut link = Link::connect(&url, url.stream_id.clone(), give_up).await?;
    p.connected = Some(Instant::now());
    // SRT delivers every packet its latency after it was sent.
    p.late_limit_us = STALL.as_micros() as u64 + link.conn.settings().recv_latency;
    let mut demux = rill_ts::Demuxer::default();
    let mut events = Vec::new();
    let mut ts_errors = 0;
    let r = loop {
        if let Err(e) = link.service() {
            break Err(e);
        }
        let now = now_us();
        while let Some(payload) = link.conn.poll_deliver(now) {
            demux.feed(&payload, &mut events);
            let t = Instant::now();
            for e in events.drain(..) {
                match e {
                    rill_ts::Event::Frame(f) => {
                        media::ts_frame(&f, p, shared, t);
                    }
                    rill_ts::Event::Error { .. } => ts_errors += 1,
                    rill_ts::Event::Tracks(_) => {}
                }
            }
        }
        if let Err(e) = link.flush().await {
            break Err(e);
        }
        if Instant::now() >= end {
            break Ok(());
        }
        // Wake for the next timer, the next payload due, or data.
        let wake = link
            .next_tick
            .min(link.conn.next_delivery().unwrap_or(u64::MAX))
            .max(now + 1000);
        let wake = instant(wake).min(end);
        tokio::select! {
            r = link.sock.readable() => {
                if let Err(e) = r.map_err(err("recv")).and_then(|_| link.drain()) {
                    break Err(e);
                }
            }
            _ = tokio::time::sleep_until(wake.into()) => {}
        }
    };
    link.close().await;
    p.bytes += link.bytes;
    shared
        .srt
        .lock()
        .unwrap()
        .add_conn(&link.conn.stats(), ts_errors);
    r
}

/// A publisher: the file's frames muxed to TS and sent over SRT.
pub struct Publisher {
    link: Link,
    mux: Muxer,
    /// The muxer's video track (H.264).
    video: Option<u32>,
    /// The muxer's audio track and its codec (AAC or MP3).
    audio: Option<(u32, u32)>,
    /// TS written since the last flush.
    ts: Vec<u8>,
}

/// The TS tracks of an FLV file (H.264, AAC or MP3), the index of the
/// video track, the index and codec of the audio track.
type Tracks = (Vec<MuxTrack>, Option<u32>, Option<(u32, u32)>);

/// The TS tracks of an FLV file: H.264, AAC or MP3.
fn tracks(file: &FlvFile) -> Res<Tracks> {
    let mut tracks = Vec::new();
    let mut video = None;
    let mut audio = None;
    if file.has_video {
        let cfg = file
            .video_config
            .as_ref()
            .filter(|c| sei::avc_config_nal_len(c).is_some())
            .ok_or("SRT publish: the file's video is not H.264 with its sequence header")?;
        video = Some(tracks.len() as u32);
        tracks.push(MuxTrack::new(RILL_CODEC_H264, cfg.slice(5..)));
    }
    if file.has_audio {
        let format = file
            .frames
            .iter()
            .find(|t| t.kind == 8)
            .and_then(|t| t.body.first())
            .map_or(0, |b| b >> 4);
        let track = match (format, &file.audio_config) {
            (10, Some(c)) if c.len() > 2 => MuxTrack::new(RILL_CODEC_AAC, c.slice(2..)),
            (2, _) => MuxTrack::new(RILL_CODEC_MP3, Bytes::new()),
            _ => return Err(
                "SRT publish: the file's audio is neither AAC (with its sequence header) nor MP3"
                    .into(),
            ),
        };
        audio = Some((tracks.len() as u32, track.codec));
        tracks.push(track);
    }
    Ok((tracks, video, audio))
}

impl Publisher {
    /// Handshake with a `publish:` stream id.
    pub async fn open(url: &SrtUrl, file: &FlvFile) -> Res<Publisher> {
        let sid = url
            .stream_id
            .clone()
            .ok_or("SRT publish: the URL needs streamid=publish:app/stream")?;
        if !StreamId::parse(&sid).is_ok_and(|s| s.mode == Mode::Publish) {
            return Err(format!(
                "SRT publish: stream id {sid:?} does not publish (publish:app/stream, or #!::r=app/stream,m=publish)"
            ));
        }
        let (tracks, video, audio) = tracks(file)?;
        let mux = Muxer::new(&tracks, MuxerConfig::default()).map_err(err("TS muxer"))?;
        let link = Link::connect(url, Some(sid), Instant::now() + HANDSHAKE_TIMEOUT).await?;
        Ok(Publisher {
            link,
            mux,
            video,
            audio,
            ts: Vec::with_capacity(64 * 1024),
        })
    }

    /// Muxes one FLV tag (type 8, 9 or 18; config tags update the track).
    pub fn queue(&mut self, kind: u8, ts_ms: u64, body: &[u8]) -> Res<()> {
        let us = ts_ms as i64 * 1000;
        let r = match (kind, self.video, self.audio) {
            (9, Some(track), _) if body.len() >= 5 && body[0] & 0x0f == 7 => match body[1] {
                0 => self.mux.set_config(track, &body[5..]),
                1 => {
                    let cts = i32::from_be_bytes([body[2], body[3], body[4], 0]) >> 8;
                    let flags = if sei::is_video_key(body) {
                        RILL_FRAME_KEY
                    } else {
                        0
                    };
                    let pts = us + i64::from(cts) * 1000;
                    self.mux
                        .write_parts(track, flags, pts, us, &body[5..], &mut self.ts)
                }
                _ => Ok(()),
            },
            (8, v, Some((track, codec))) if body.len() >= 2 => {
                // Audio frames are random access points without video.
                let flags = if v.is_none() { RILL_FRAME_KEY } else { 0 };
                match codec {
                    RILL_CODEC_AAC if body[1] == 0 => self.mux.set_config(track, &body[2..]),
                    RILL_CODEC_AAC => {
                        self.mux
                            .write_parts(track, flags, us, us, &body[2..], &mut self.ts)
                    }
                    _ => self
                        .mux
                        .write_parts(track, flags, us, us, &body[1..], &mut self.ts),
                }
            }
            _ => Ok(()),
        };
        r.map_err(err("TS muxer"))
    }

    /// Sends the TS muxed since the last flush: payloads of 7 TS packets,
    /// the last one with what is left.
    pub async fn flush(&mut self) -> Res<()> {
        let now = now_us();
        for chunk in self.ts.chunks(TS_PAYLOAD) {
            self.link.conn.send(now, chunk).map_err(err("SRT send"))?;
        }
        self.ts.clear();
        self.link.flush().await
    }

    /// The socket has data.
    pub async fn readable(&self) -> std::io::Result<()> {
        self.link.sock.readable().await
    }

    /// Takes what the server sent (ACKs, NAKs) and runs the timers.
    pub fn drain(&mut self) -> Res<()> {
        self.link.drain()?;
        self.service()
    }

    /// Runs the timers when due; the end of the connection is an error.
    pub fn service(&mut self) -> Res<()> {
        self.link.service()
    }

    /// When the timers are next due.
    pub fn timer(&self) -> Instant {
        instant(self.link.next_tick)
    }

    /// Ends the connection and returns its counters.
    pub async fn close(&mut self) -> SendCounters {
        self.link.close().await;
        let s = self.link.conn.stats();
        SendCounters {
            packets: s.sent_packets,
            retransmitted: s.sent_retransmitted,
            dropped: s.sent_dropped,
            naks_received: s.naks_received,
            rtt_ms: s.rtt as f64 / 1000.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::net::UdpSocket as StdUdp;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    use clap::Parser;
    use rill_srt::{Answer, Listener};
    use rill_ts::{Demuxer, Event, Frame};

    use super::*;
    use crate::media::tests::{avcc, stamped_frame};

    #[test]
    fn urls() {
        let u = SrtUrl::parse(
            "srt://127.0.0.1:9000?streamid=read:live/x&passphrase=0123456789&latency=200&pbkeylen=32",
        )
        .unwrap();
        assert_eq!(u.addr, "127.0.0.1:9000");
        assert_eq!(u.stream_id.as_deref(), Some("read:live/x"));
        assert_eq!(u.passphrase.as_deref(), Some("0123456789"));
        assert_eq!((u.latency_ms, u.key_len), (Some(200), Some(32)));
        let c = u.config();
        assert_eq!((c.latency_ms, c.key_len), (200, 32));
        // Defaults, IPv6, a query in the stream id, mode and transtype.
        let u = SrtUrl::parse(
            "srt://[::1]:9000/?streamid=publish:live/x?token=t&mode=caller&transtype=live",
        )
        .unwrap();
        assert_eq!(u.addr, "[::1]:9000");
        assert_eq!(u.stream_id.as_deref(), Some("publish:live/x?token=t"));
        assert_eq!(u.config().latency_ms, Config::default().latency_ms);
        assert_eq!(u.passphrase, None);
        // Percent-encoded access-control form.
        let u = SrtUrl::parse("srt://h:1?streamid=%23%21%3A%3Ar%3Dlive%2Fx%2Cm%3Dpublish").unwrap();
        assert_eq!(u.stream_id.as_deref(), Some("#!::r=live/x,m=publish"));
        assert_eq!(SrtUrl::parse("srt://h:1").unwrap().stream_id, None);
        for bad in [
            "rtmp://h:1/live/x",
            "srt://h?streamid=read:live/x",
            "srt://h:0",
            "srt://:9000",
            "srt://h:9000/live/x",
            // ffmpeg's µs.
            "srt://h:9000?latency=120000",
            "srt://h:9000?latency=abc",
            "srt://h:9000?passphrase=short",
            "srt://h:9000?pbkeylen=20",
            "srt://h:9000?mode=listener",
            "srt://h:9000?transtype=file",
            "srt://h:9000?rcvlatency=20",
        ] {
            assert!(SrtUrl::parse(bad).is_err(), "{bad}");
        }
        let e = SrtUrl::parse("srt://h:9000?latency=120000").unwrap_err();
        assert!(e.contains("milliseconds"), "{e}");
    }

    #[test]
    fn nth_stream_ids() {
        assert_eq!(nth_stream_id("read:live/x", 2), "read:live/x-2");
        assert_eq!(
            nth_stream_id("publish:live/x?t=1", 0),
            "publish:live/x-0?t=1"
        );
        assert_eq!(nth_stream_id("live/x", 3), "live/x-3");
        assert_eq!(
            nth_stream_id("#!::r=live/x,m=publish,u=bob", 1),
            "#!::r=live/x-1,m=publish,u=bob"
        );
        let u = SrtUrl::parse("srt://h:1?streamid=read:live/x").unwrap();
        assert_eq!(u.nth(4).stream_id.as_deref(), Some("read:live/x-4"));
    }

    /// What the test listener does with its callers.
    #[derive(Clone, Copy, PartialEq)]
    enum Role {
        /// Sends a live TS stream (stamped H.264 at 25 fps, AAC) to every
        /// caller reading `live/x`; refuses other streams.
        Serve,
        /// Takes one publisher of `live/x` and demuxes what it sends.
        Receive,
    }

    /// What the test listener saw.
    #[derive(Default, Debug)]
    struct Seen {
        stream_ids: Vec<String>,
        rejected: usize,
        /// Connections the caller ended (SHUTDOWN).
        shut_down: usize,
        video: u64,
        keys: u64,
        audio: u64,
        stamps: u64,
        ts_errors: u64,
        undecryptable: u64,
        /// Payloads received: all, of 7 TS packets, of anything but whole
        /// TS packets (at most 7).
        payloads: (u64, u64, u64),
    }

    struct Session {
        conn: Connection,
        /// The conclusion response, sent again if the caller repeats.
        resp: Vec<u8>,
    }

    /// A listener of `rill_srt` on a UDP socket, in a thread.
    struct TestListener {
        port: u16,
        stop: Arc<AtomicBool>,
        thread: std::thread::JoinHandle<Seen>,
    }

    impl TestListener {
        /// `lossy`: every 40th data packet is not sent the first time.
        fn start(role: Role, passphrase: Option<&str>, lossy: bool) -> TestListener {
            let sock = StdUdp::bind("127.0.0.1:0").unwrap();
            sock.set_read_timeout(Some(Duration::from_millis(2)))
                .unwrap();
            let port = sock.local_addr().unwrap().port();
            let listener = Listener::new(Config {
                passphrase: passphrase.map(String::from),
                ..Config::default()
            })
            .unwrap();
            let stop = Arc::new(AtomicBool::new(false));
            let s = stop.clone();
            let thread = std::thread::spawn(move || serve(sock, listener, role, lossy, &s));
            TestListener { port, stop, thread }
        }

        fn finish(self) -> Seen {
            self.stop.store(true, Ordering::Relaxed);
            self.thread.join().unwrap()
        }
    }

    fn serve(sock: StdUdp, listener: Listener, role: Role, lossy: bool, stop: &AtomicBool) -> Seen {
        let t0 = Instant::now();
        let now = || t0.elapsed().as_micros() as u64;
        let mut seen = Seen::default();
        let mut sessions: HashMap<SocketAddr, Session> = HashMap::new();
        let mut next_id = 0x100;
        let mut buf = [0u8; 2048];
        // Role::Serve: the source, muxed once for everyone.
        let mut mux = Muxer::new(
            &[
                MuxTrack::new(RILL_CODEC_H264, avcc()),
                MuxTrack::new(RILL_CODEC_AAC, Bytes::from_static(&[0x12, 0x10])),
            ],
            MuxerConfig::default(),
        )
        .unwrap();
        let mut frame_no = 0u32;
        let mut data_sent = 0u64;
        let mut ts = Vec::new();
        // Role::Receive: the demuxer.
        let mut demux = Demuxer::default();
        let mut events = Vec::new();
        let mut deliver = |payload: &[u8], seen: &mut Seen| {
            seen.payloads.0 += 1;
            seen.payloads.1 += (payload.len() == TS_PAYLOAD) as u64;
            seen.payloads.2 +=
                (!payload.len().is_multiple_of(188) || payload.len() > TS_PAYLOAD) as u64;
            demux.feed(payload, &mut events);
            for e in events.drain(..) {
                match e {
                    Event::Frame(f) if f.is_config() => {}
                    Event::Frame(f) if f.codec == RILL_CODEC_H264 => {
                        seen.video += 1;
                        seen.keys += f.is_key() as u64;
                        seen.stamps += sei::find_avcc(&f.payload, 4).is_some() as u64;
                    }
                    Event::Frame(_) => seen.audio += 1,
                    Event::Error { .. } => seen.ts_errors += 1,
                    Event::Tracks(_) => {}
                }
            }
        };
        while !stop.load(Ordering::Relaxed) {
            if let Ok((n, from)) = sock.recv_from(&mut buf) {
                let d = &buf[..n];
                let dest = d
                    .get(12..16)
                    .map_or(0, |b| u32::from_be_bytes(b.try_into().unwrap()));
                match sessions.get_mut(&from) {
                    Some(s) if dest != 0 => {
                        let _ = s.conn.handle(now(), d);
                    }
                    Some(s) => {
                        sock.send_to(&s.resp, from).unwrap();
                    }
                    None => match listener.handle(now(), from, d) {
                        Answer::Reply(b) => {
                            sock.send_to(&b, from).unwrap();
                        }
                        Answer::Conclusion(p) => {
                            let sid = StreamId::parse(&p.stream_id);
                            let want = match role {
                                Role::Serve => Mode::Play,
                                Role::Receive => Mode::Publish,
                            };
                            let refusal = match sid {
                                Ok(s) if s.mode != want => Some(reject::BAD_MODE),
                                Ok(s) if s.path != "live/x" => Some(reject::NOT_FOUND),
                                Ok(_) => None,
                                Err(_) => Some(reject::BAD_REQUEST),
                            };
                            if let Some(r) = refusal {
                                seen.rejected += 1;
                                sock.send_to(&p.reject(r), from).unwrap();
                                continue;
                            }
                            seen.stream_ids.push(p.stream_id.clone());
                            next_id += 1;
                            let (conn, resp) = p.accept(next_id, now());
                            sock.send_to(&resp, from).unwrap();
                            sessions.insert(from, Session { conn, resp });
                        }
                        Answer::Ignore(_) => {}
                    },
                }
            }
            // The source: a video frame every 40 ms, AAC every 20 ms.
            while role == Role::Serve && u64::from(frame_no) * 40_000 <= now() {
                let t = i64::from(frame_no) * 40_000;
                let key = frame_no.is_multiple_of(25);
                let video = Frame {
                    track: 0,
                    codec: RILL_CODEC_H264,
                    flags: if key { RILL_FRAME_KEY } else { 0 },
                    pts: t,
                    dts: t,
                    payload: stamped_frame(frame_no, sei::wall_us(), key),
                };
                mux.write(&video, &mut ts).unwrap();
                for k in 0..2 {
                    let audio = Frame {
                        track: 1,
                        codec: RILL_CODEC_AAC,
                        flags: 0,
                        pts: t + k * 20_000,
                        dts: t + k * 20_000,
                        payload: Bytes::from_static(&[0x21, 0x10, 4, 5]),
                    };
                    mux.write(&audio, &mut ts).unwrap();
                }
                frame_no += 1;
            }
            for chunk in ts.chunks(TS_PAYLOAD) {
                for s in sessions.values_mut() {
                    let _ = s.conn.send(now(), chunk);
                }
            }
            ts.clear();
            let t = now();
            sessions.retain(|from, s| {
                s.conn.tick(t);
                while let Some(p) = s.conn.poll_deliver(t) {
                    deliver(&p, &mut seen);
                }
                while let Some(d) = s.conn.poll_transmit() {
                    // A data packet, not a retransmission (the R bit).
                    if lossy && d[0] & 0x80 == 0 && d[4] & 0x04 == 0 {
                        data_sent += 1;
                        if data_sent.is_multiple_of(40) {
                            continue;
                        }
                    }
                    sock.send_to(&d, from).unwrap();
                }
                match s.conn.closed() {
                    None => true,
                    Some(why) => {
                        // What the latency still holds.
                        while let Some(p) = s.conn.poll_deliver(t + 10_000_000) {
                            deliver(&p, &mut seen);
                        }
                        seen.shut_down += (why == Closed::Shutdown) as usize;
                        seen.undecryptable += s.conn.stats().recv_undecryptable;
                        false
                    }
                }
            });
        }
        seen
    }

    /// N players against the test listener through `run`, as the command
    /// line runs them: every one connects, gets a picture, keeps up
    /// (recovering the packets the listener loses) and measures the latency
    /// from the stamps; SRT's latency shows in it.
    #[test]
    fn players_count_frames_from_a_listener() {
        let l = TestListener::start(Role::Serve, None, true);
        let dir = std::env::temp_dir().join(format!("rill-loadgen-srt-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("s.flv");
        // The file only tells the frame rate (25 fps, as the listener).
        std::fs::write(&path, crate::tests::synthetic_flv()).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let url = format!("srt://127.0.0.1:{}?streamid=read:live/x&latency=80", l.port);
        let a = crate::RunArgs::parse_from([
            "run",
            "--play",
            &url,
            "--players",
            "3",
            "--duration",
            "1.5",
            "--warmup",
            "0",
            "--settle",
            "0.2",
            "--ramp-rate",
            "50",
            "--file",
            path.to_str().unwrap(),
            "--per-player",
        ]);
        let r = rt.block_on(crate::run(a)).unwrap();
        crate::print_result(&r);
        assert_eq!(r.proto, "srt");
        assert!(r.errors.is_empty(), "{r:?}");
        assert_eq!((r.connected, r.got_picture, r.kept_up), (3, 3, 3), "{r:?}");
        assert!(r.ttff_ms.p99.unwrap() < 1500.0, "{r:?}");
        assert!(r.latency_ms.samples > 50, "{r:?}");
        // Delivered the SRT latency after it was sent (the larger of both
        // sides': the listener's 120 ms), not much later.
        let p50 = r.latency_ms.p50.unwrap();
        assert!((115.0..400.0).contains(&p50), "{r:?}");
        assert!(r.video_fps_per_player > 15.0, "{r:?}");
        assert!(r.mbit_per_player > 0.0);
        assert!(r.per_player.iter().all(|p| p.audio_frames > 0));
        let s = r.srt.as_ref().unwrap();
        assert_eq!(s.connections, 3);
        assert!(s.packets > 100, "{s:?}");
        assert_eq!((s.undecryptable, s.overflow), (0, 0), "{s:?}");
        // Every loss was asked for again and recovered in time.
        assert!(s.lost >= 3 && s.naks_sent >= 3, "{s:?}");
        assert_eq!(
            (s.recovered, s.dropped, s.ts_errors),
            (s.lost, 0, 0),
            "{s:?}"
        );

        // A stream the listener does not have: the refusal is the error.
        let url = format!("srt://127.0.0.1:{}?streamid=read:live/nope", l.port);
        let a = crate::RunArgs::parse_from([
            "run",
            "--play",
            &url,
            "--players",
            "2",
            "--duration",
            "0.2",
            "--warmup",
            "0",
            "--settle",
            "0",
            "--ramp-rate",
            "100",
        ]);
        let r = rt.block_on(crate::run(a)).unwrap();
        assert_eq!(r.connected, 0);
        assert_eq!(
            r.errors.get("SRT handshake: no such stream (1404)"),
            Some(&2),
            "{r:?}"
        );
        let seen = l.finish();
        assert_eq!(seen.stream_ids, vec!["read:live/x"; 3]);
        assert_eq!(seen.rejected, 2);
        assert_eq!(seen.shut_down, 3, "players say goodbye");
        std::fs::remove_dir_all(&dir).ok();
    }

    /// The publisher (encrypted) against the test listener: the listener
    /// demuxes the stamped H.264 and the AAC of the file, in real time.
    #[test]
    fn publisher_reaches_a_listener() {
        let l = TestListener::start(Role::Receive, Some("loadgen secret"), false);
        let file = FlvFile::parse(Bytes::from(crate::tests::synthetic_flv())).unwrap();
        let url = format!(
            "srt://127.0.0.1:{}?streamid=publish:live/x&passphrase=loadgen%20secret&pbkeylen=32",
            l.port
        );
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let st = rt.block_on(async {
            let target = crate::publish::Target::parse(&url).unwrap();
            let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
            let (tx, rx) = tokio::sync::oneshot::channel();
            let h = tokio::spawn(crate::publish::run(target, file, stop_rx, tx));
            rx.await.unwrap().unwrap();
            tokio::time::sleep(Duration::from_millis(1500)).await;
            stop_tx.send(true).unwrap();
            h.await.unwrap()
        });
        assert_eq!(st.error, None);
        assert!(st.frames > 60, "{st:?}");
        let s = st.srt.as_ref().unwrap();
        assert!(s.packets > 10, "{s:?}");
        // Let the listener see the SHUTDOWN.
        std::thread::sleep(Duration::from_millis(100));
        let seen = l.finish();
        assert_eq!(seen.stream_ids, vec!["publish:live/x"]);
        assert_eq!(seen.shut_down, 1);
        assert_eq!((seen.ts_errors, seen.undecryptable), (0, 0), "{seen:?}");
        // 1.5 s of 25 fps: ~38 frames, a key frame every second, each one
        // stamped; AAC every 23 ms.
        assert!((30..=45).contains(&seen.video), "{seen:?}");
        assert_eq!(seen.stamps, seen.video, "{seen:?}");
        assert!(seen.keys >= 2, "{seen:?}");
        assert!(seen.audio >= 50, "{seen:?}");
        assert_eq!(seen.payloads.2, 0, "{seen:?}");

        // Refusals reach the publisher's `ready`.
        let l = TestListener::start(Role::Receive, None, false);
        let url = format!("srt://127.0.0.1:{}?streamid=publish:live/y", l.port);
        let file = FlvFile::parse(Bytes::from(crate::tests::synthetic_flv())).unwrap();
        let r = rt.block_on(async {
            let target = crate::publish::Target::parse(&url).unwrap();
            let (_stop_tx, stop_rx) = tokio::sync::watch::channel(false);
            let (tx, rx) = tokio::sync::oneshot::channel();
            tokio::spawn(crate::publish::run(target, file, stop_rx, tx));
            rx.await.unwrap()
        });
        assert_eq!(r, Err("SRT handshake: no such stream (1404)".into()));
        l.finish();
    }
}
