//! Rill's SRT plugin: the glue between the host and `rill-srt`/`rill-ts`.
//!
//! One instance UDP socket (`plugins.srt.listen`) carries every caller.
//! Handshakes to socket 0 go to the stateless listener; a completed one
//! becomes a socket-less session that asks the host for admission
//! (`publish:live/x`, `read:live/x`, `#!::r=live/x,m=publish`, query
//! parameters for tokens), then publishes or plays. Datagrams for an
//! established connection are handled where they arrive (ACKs, NAKs and
//! retransmissions need no session hop; datagrams of connections this
//! generation does not know are declined, so after a hot reload the host
//! hands them to the generation that owns them); a 10 ms session timer runs the
//! connection's clocks and hands TSBPD-due payloads to the TS demuxer and
//! the publisher. Players share one TS muxer per stream: each frame is
//! muxed once, by the first player that receives it, and kept on the frame
//! for the others.

mod config;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use dashmap::DashMap;
use parking_lot::Mutex;
use rill_abi::sdk::{
    Admission, Conn, Error, FrameInfo, FrameRef, Host, Plugin, Publisher, Result, Subscriber,
    SubscriberId, TimerHandle, TrackInfo,
};
use rill_abi::{
    rill_codec_kind, rill_log, RILL_END_ERROR, RILL_END_NORMAL, RILL_END_PEER, RILL_END_TIMEOUT,
    RILL_FRAME_CONFIG, RILL_STREAM_UNPUBLISHED, RILL_TRACK_AUDIO, RILL_TRACK_VIDEO,
};
use rill_srt::handshake::reject;
use rill_srt::packet::{dest_socket, is_handshake};
use rill_srt::{Answer, Closed, Connection, Listener, Mode, Pending, StreamId};
use rill_ts::{Demuxer, Event, Limits, LiveMuxer, MuxerConfig};

use config::Config;

const SOCKET: u32 = 1;
const TICK: u64 = 1;
/// The instance timer reporting dropped datagrams.
const REPORT: u64 = 2;
/// TS packets per SRT payload (1316 bytes), as every encoder sends them.
const TS_PER_PAYLOAD: usize = 7;
/// The frame-cache key of a frame's TS bytes, mixed with a muxer's own
/// random number: bytes cached on a frame are only valid with the muxer
/// that made them (its continuity counters, the configurations it saw).
const TS_CACHE_KEY: u64 = u64::from_le_bytes(*b"srt-ts/1");
const MAX_TRACKS: usize = 8;
/// Datagrams a player may have waiting for the socket (a key frame of a
/// few Mbit/s); older ones are dropped.
const MAX_BACKLOG: usize = 256;

/// An accepted caller, reachable from the UDP path and from its session.
struct Peer {
    addr: SocketAddr,
    conn: Mutex<Connection>,
    /// The conclusion response, sent again if the caller repeats its
    /// conclusion (the first one was lost).
    response: Vec<u8>,
}

/// A caller by its address and socket id: admitted (with its local id) or
/// still being admitted.
type CallerKey = (SocketAddr, u32);

struct Publishing {
    publisher: Publisher,
    demux: Demuxer,
    /// TS track id → host track id.
    tracks: Vec<(u32, u32, u32)>,
    warned: bool,
}

struct Playing {
    /// Held: dropping it ends the subscription.
    _sub: Subscriber,
    mux: Arc<Mutex<StreamMux>>,
}

/// One stream's TS muxer, shared by its players.
struct StreamMux {
    cache_key: u64,
    mux: LiveMuxer,
}

enum Role {
    Admitting(Box<Pending>),
    Publishing(Box<Publishing>),
    Playing(Playing),
    Gone,
}

pub struct Session {
    key: CallerKey,
    local_id: u32,
    sid: StreamId,
    peer: Option<Arc<Peer>>,
    role: Role,
    timer: Option<TimerHandle>,
}

pub struct Srt {
    host: Host,
    cfg: Config,
    listener: Listener,
    peers: DashMap<u32, Arc<Peer>>,
    callers: Mutex<Callers>,
    /// The shared TS muxer of each played stream, kept until the stream
    /// ends, so players joining later continue its output.
    muxes: Mutex<HashMap<String, Arc<Mutex<StreamMux>>>>,
    /// Datagrams dropped, reported once a minute when there were any.
    dropped: Dropped,
}

/// What was dropped, by cause.
#[derive(Default)]
struct Dropped {
    /// Not a valid SRT packet.
    malformed: AtomicU64,
    /// Handshakes ignored (wrong cookie, unexpected type).
    handshakes: AtomicU64,
    /// Callers refused at the handshake.
    refused: AtomicU64,
}

impl Dropped {
    fn take(&self) -> [u64; 3] {
        [&self.malformed, &self.handshakes, &self.refused].map(|c| c.swap(0, Ordering::Relaxed))
    }
}

/// Callers being admitted or connected, by address and socket id, with
/// their local socket id.
#[derive(Default)]
struct Callers {
    by_key: HashMap<CallerKey, u32>,
}

fn now(host: &Host) -> u64 {
    host.now_us().max(0) as u64
}

/// The rejection reason for an admission or open refusal.
fn reason_of(e: Error, mode: Mode) -> i32 {
    match e {
        Error::UNAUTHORIZED => reject::UNAUTHORIZED,
        Error::DENIED => reject::FORBIDDEN,
        Error::NOT_FOUND => reject::NOT_FOUND,
        Error::BUSY if mode == Mode::Publish => reject::CONFLICT,
        Error::BUSY => reject::OVERLOAD,
        Error::INVALID => reject::BAD_REQUEST,
        _ => reject::UNKNOWN,
    }
}

impl Srt {
    fn send(&self, to: SocketAddr, data: &[u8]) {
        let _ = self.host.udp_send(SOCKET, to, data);
    }

    /// Sends what the connection has to send, until the socket's queue is
    /// full: the rest waits in the connection for the next flush (its
    /// timer's, or the next frame's), so a key frame sent to every player
    /// at once is paced by the socket rather than dropped.
    fn flush(&self, peer: &Peer, conn: &mut Connection) {
        while let Some(d) = conn.poll_transmit() {
            if self.host.udp_send(SOCKET, peer.addr, &d) == Err(Error::AGAIN) {
                conn.unpoll_transmit(d);
                break;
            }
        }
    }

    fn handshake(&self, now: u64, from: SocketAddr, data: &[u8]) {
        let pending = match self.listener.handle(now, from, data) {
            Answer::Reply(b) => return self.send(from, &b),
            Answer::Ignore(why) => {
                self.dropped.handshakes.fetch_add(1, Ordering::Relaxed);
                rill_log!(self.host, Debug, "{from}: handshake ignored: {why}");
                return;
            }
            Answer::Conclusion(p) => p,
        };
        let key = (pending.from, pending.caller_id);
        let refuse = |reason: i32, why: &str| {
            self.dropped.refused.fetch_add(1, Ordering::Relaxed);
            rill_log!(
                self.host,
                Info,
                "{from}: refused {:?}: {why}",
                pending.stream_id
            );
            self.send(from, &pending.reject(reason));
        };
        if self.cfg.pbkeylen != 0 && pending.key_len != self.cfg.pbkeylen {
            return refuse(reject::UNSECURE, "key length other than pbkeylen");
        }
        let sid = match StreamId::parse(&pending.stream_id) {
            Ok(s) => s,
            Err(e) => return refuse(reject::BAD_REQUEST, &e.to_string()),
        };
        let local_id = {
            let mut c = self.callers.lock();
            if let Some(id) = c.by_key.get(&key) {
                // A repeated conclusion: answer again once admitted.
                if let Some(p) = self.peers.get(id) {
                    self.send(from, &p.response);
                }
                return;
            }
            if c.by_key.len() >= self.cfg.max_sessions {
                drop(c);
                return refuse(reject::OVERLOAD, "max_sessions reached");
            }
            let local_id = loop {
                let mut r = [0u8; 4];
                let _ = getrandom::getrandom(&mut r);
                let id = u32::from_be_bytes(r) & 0x3FFF_FFFF;
                if id != 0 && !c.by_key.values().any(|v| *v == id) {
                    break id;
                }
            };
            c.by_key.insert(key, local_id);
            local_id
        };
        let overload = pending.reject(reject::OVERLOAD);
        let session = Session {
            key,
            local_id,
            sid,
            peer: None,
            role: Role::Admitting(pending),
            timer: None,
        };
        if self
            .host
            .session_open_peer(session, from, &self.cfg.listen)
            .is_err()
        {
            // Over the host's per-address limits (logged and counted there).
            self.forget(key);
            self.send(from, &overload);
        }
    }

    fn forget(&self, key: CallerKey) {
        if let Some(id) = self.callers.lock().by_key.remove(&key) {
            self.peers.remove(&id);
        }
    }

    /// Admission said yes: open the stream, answer the caller, start the
    /// clock.
    fn accept(&self, s: &mut Session, conn: &Conn) -> Result<()> {
        let Role::Admitting(pending) = std::mem::replace(&mut s.role, Role::Gone) else {
            return Ok(());
        };
        let opened = match s.sid.mode {
            Mode::Publish => conn.publish(&s.sid.path, &s.sid.query).map(|publisher| {
                Role::Publishing(Box::new(Publishing {
                    publisher,
                    demux: Demuxer::new(Limits::default()),
                    tracks: Vec::new(),
                    warned: false,
                }))
            }),
            Mode::Play => conn.subscribe(&s.sid.path, &s.sid.query, None).map(|sub| {
                Role::Playing(Playing {
                    _sub: sub,
                    mux: self.muxer(&s.sid.path),
                })
            }),
        };
        let role = match opened {
            Ok(r) => r,
            Err(e) => {
                self.refuse(s, &pending, e);
                return Err(e);
            }
        };
        let (c, response) = pending.accept(s.local_id, now(&self.host));
        let peer = Arc::new(Peer {
            addr: s.key.0,
            conn: Mutex::new(c),
            response,
        });
        self.peers.insert(s.local_id, peer.clone());
        self.send(peer.addr, &peer.response);
        let tick = match role {
            Role::Publishing(_) => Duration::from_millis(10),
            _ => Duration::from_millis(50),
        };
        s.timer = Some(conn.timer_start(tick, true, TICK)?);
        s.peer = Some(peer);
        s.role = role;
        rill_log!(
            self.host,
            Info,
            "{}: {} {}",
            s.key.0,
            if s.sid.mode == Mode::Publish {
                "publishing"
            } else {
                "playing"
            },
            s.sid.path
        );
        Ok(())
    }

    fn refuse(&self, s: &Session, pending: &Pending, e: Error) {
        rill_log!(
            self.host,
            Info,
            "{}: {} refused: {e}",
            s.key.0,
            pending.stream_id
        );
        self.send(s.key.0, &pending.reject(reason_of(e, s.sid.mode)));
    }

    /// The shared TS muxer of `path`.
    fn muxer(&self, path: &str) -> Arc<Mutex<StreamMux>> {
        self.muxes
            .lock()
            .entry(path.to_owned())
            .or_insert_with(|| {
                let mut r = [0u8; 8];
                let _ = getrandom::getrandom(&mut r);
                Arc::new(Mutex::new(StreamMux {
                    cache_key: TS_CACHE_KEY ^ u64::from_le_bytes(r),
                    mux: LiveMuxer::new(MuxerConfig::default()),
                }))
            })
            .clone()
    }

    /// The TS bytes of `frame`: muxed by the first player to see it, under
    /// the stream's muxer lock so frames are muxed once and in order.
    /// (A frame whose cache slots are all taken is muxed again by the next
    /// player: rare, and a repeated frame is dropped by players.)
    fn ts_of(&self, frame: &FrameRef, mux: &Mutex<StreamMux>) -> Result<FrameRef> {
        let key = mux.lock().cache_key;
        if let Some(hit) = frame.cache_get(key) {
            return Ok(hit);
        }
        let mut m = mux.lock();
        if let Some(hit) = frame.cache_get(key) {
            return Ok(hit);
        }
        let f = rill_ts::Frame::from(frame);
        let mut out = BytesMut::new();
        if let Err(e) = m.mux.push(&f, &mut out) {
            rill_log!(self.host, Debug, "TS mux: {e}");
        }
        let ts = self.host.frame_wrap(out.freeze(), &FrameInfo::new())?;
        let _ = frame.cache_set(key, &ts);
        Ok(ts)
    }

    fn tick(&self, s: &mut Session, conn: &Conn) -> Result<()> {
        let Some(peer) = s.peer.clone() else {
            return Ok(());
        };
        let now = now(&self.host);
        let mut payloads = Vec::new();
        let closed = {
            let mut c = peer.conn.lock();
            c.tick(now);
            if matches!(s.role, Role::Publishing(_)) {
                while let Some(p) = c.poll_deliver(now) {
                    payloads.push(p);
                }
            }
            self.flush(&peer, &mut c);
            c.closed()
        };
        if let Role::Publishing(p) = &mut s.role {
            for payload in payloads {
                self.demux(p, &payload, &s.sid.path);
            }
        }
        if let Some(why) = closed {
            let reason = match why {
                Closed::Shutdown => RILL_END_PEER,
                Closed::Timeout => RILL_END_TIMEOUT,
                Closed::Local => RILL_END_NORMAL,
            };
            conn.close(reason)?;
        }
        Ok(())
    }

    fn demux(&self, p: &mut Publishing, payload: &[u8], path: &str) {
        let mut events = Vec::new();
        p.demux.feed(payload, &mut events);
        for e in events {
            let r = match e {
                Event::Tracks(_) => Ok(()),
                Event::Frame(f) => self.publish_frame(p, f),
                Event::Error { error, .. } => {
                    if !p.warned {
                        p.warned = true;
                        rill_log!(self.host, Warn, "{path}: TS from the publisher: {error}");
                    }
                    Ok(())
                }
            };
            if let Err(e) = r {
                if !p.warned {
                    p.warned = true;
                    rill_log!(self.host, Warn, "{path}: frame refused: {e}");
                }
            }
        }
    }

    fn publish_frame(&self, p: &mut Publishing, f: rill_ts::Frame) -> Result<()> {
        let track = match p.tracks.iter().find(|t| t.0 == f.track && t.1 == f.codec) {
            Some(t) => t.2,
            None => {
                if p.tracks.len() >= MAX_TRACKS {
                    return Err(Error::NOMEM);
                }
                let kind = rill_codec_kind(f.codec);
                if kind != RILL_TRACK_VIDEO && kind != RILL_TRACK_AUDIO {
                    return Err(Error::UNSUPPORTED);
                }
                let mut ti = TrackInfo::new();
                ti.kind = kind;
                ti.codec = f.codec;
                let id = p.publisher.add_track(&ti)?;
                p.tracks.push((f.track, f.codec, id));
                id
            }
        };
        let info = FrameInfo {
            track,
            codec: f.codec,
            flags: f.flags,
            pts: f.pts,
            dts: f.dts,
            ..FrameInfo::new()
        };
        let frame = self.host.frame_wrap(f.payload, &info)?;
        p.publisher.write(&frame)
    }
}

impl Plugin for Srt {
    type Session = Session;
    const WANTS_STREAM_EVENTS: bool = true;

    fn create(host: &Host) -> Result<Self> {
        let cfg = host.parse_config(|y| Config::parse(y).map_err(|e| e.in_plugin("srt")))?;
        let listener = Listener::new(cfg.srt()).map_err(|_| Error::INTERNAL)?;
        host.udp_listen(&cfg.listen, SOCKET)?;
        host.timer_start(Duration::from_secs(60), true, REPORT)?;
        rill_log!(host, Info, "SRT on udp {}", cfg.listen);
        Ok(Srt {
            host: *host,
            cfg,
            listener,
            peers: DashMap::new(),
            callers: Mutex::new(Callers::default()),
            muxes: Mutex::new(HashMap::new()),
            dropped: Dropped::default(),
        })
    }

    fn on_udp_packet(&self, _socket: u32, from: SocketAddr, data: &[u8]) -> Result<()> {
        let now = now(&self.host);
        let Some(dest) = dest_socket(data) else {
            return Ok(());
        };
        if dest == 0 && is_handshake(data) {
            self.handshake(now, from, data);
            return Ok(());
        }
        // Not a connection of this generation: after a reload, the host
        // offers it to the generation that made it.
        let Some(peer) = self.peers.get(&dest).map(|p| p.clone()) else {
            return Err(Error::NOT_FOUND);
        };
        if peer.addr != from {
            return Err(Error::NOT_FOUND);
        }
        let mut c = peer.conn.lock();
        if let Err(e) = c.handle(now, data) {
            self.dropped.malformed.fetch_add(1, Ordering::Relaxed);
            rill_log!(self.host, Debug, "{from}: datagram dropped: {e}");
        }
        self.flush(&peer, &mut c);
        Ok(())
    }

    fn on_stream_event(&self, event: u32, path: &str) -> Result<()> {
        if event == RILL_STREAM_UNPUBLISHED {
            self.muxes.lock().remove(path);
        }
        Ok(())
    }

    fn on_session_open(&self, s: &mut Session, conn: &Conn, _kind: u32) -> Result<()> {
        let Role::Admitting(pending) = &s.role else {
            return Ok(());
        };
        let mut adm = match s.sid.mode {
            Mode::Publish => Admission::publish(&s.sid.path, &s.sid.query),
            Mode::Play => Admission::play(&s.sid.path, &s.sid.query),
        };
        adm.user = s.sid.user.as_deref().unwrap_or("");
        match conn.admit(&adm, 1) {
            Ok(true) => self.accept(s, conn),
            Ok(false) => Ok(()),
            Err(e) => {
                self.refuse(s, pending, e);
                Err(e)
            }
        }
    }

    fn on_admit(
        &self,
        s: &mut Session,
        conn: &Conn,
        _ticket: u64,
        result: Result<()>,
    ) -> Result<()> {
        match result {
            Ok(()) => self.accept(s, conn),
            Err(e) => {
                if let Role::Admitting(pending) = &s.role {
                    self.refuse(s, pending, e);
                }
                conn.close(RILL_END_NORMAL)
            }
        }
    }

    fn on_timer(&self, session: Option<(&mut Session, &Conn)>, timer_id: u64) -> Result<()> {
        match session {
            Some((s, conn)) if timer_id == TICK => self.tick(s, conn),
            None if timer_id == REPORT => {
                let [malformed, handshakes, refused] = self.dropped.take();
                if malformed + handshakes + refused > 0 {
                    rill_log!(
                        self.host,
                        Info,
                        "in the last minute: {malformed} malformed datagrams dropped, \
                         {handshakes} handshakes ignored, {refused} callers refused"
                    );
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    fn on_frame(
        &self,
        s: &mut Session,
        _conn: &Conn,
        _sub: SubscriberId,
        frame: &FrameRef,
    ) -> Result<()> {
        let (Role::Playing(p), Some(peer)) = (&s.role, &s.peer) else {
            return Ok(());
        };
        if frame.info().flags & RILL_FRAME_CONFIG != 0 && frame.data().is_empty() {
            return Ok(());
        }
        let ts = self.ts_of(frame, &p.mux)?;
        let data = ts.data();
        if data.is_empty() {
            return Ok(());
        }
        let now = now(&self.host);
        let mut c = peer.conn.lock();
        for chunk in data.chunks(188 * TS_PER_PAYLOAD) {
            if c.send(now, chunk).is_err() {
                break;
            }
        }
        self.flush(peer, &mut c);
        // Bounded queueing: past a key frame's worth, the oldest wait no
        // more (the player's loss reports bring back what still matters).
        c.trim_transmit(MAX_BACKLOG);
        Ok(())
    }

    fn on_close(&self, mut s: Session, _conn: &Conn, reason: u32, why: &str) {
        if let Some(peer) = s.peer.take() {
            let mut c = peer.conn.lock();
            c.close(now(&self.host));
            self.flush(&peer, &mut c);
            let st = c.stats();
            rill_log!(
                self.host,
                Info,
                "{}: {} {} ended ({}{why}): received {} packets, {} lost, {} retransmitted, \
                 {} dropped too late; sent {} packets, {} retransmitted, {} unsent; rtt {} ms",
                s.key.0,
                if s.sid.mode == Mode::Publish {
                    "publisher"
                } else {
                    "player"
                },
                s.sid.path,
                if reason == RILL_END_ERROR {
                    "error "
                } else {
                    ""
                },
                st.recv_packets,
                st.recv_lost,
                st.recv_retransmitted,
                st.recv_dropped,
                st.sent_packets,
                st.sent_retransmitted,
                st.sent_unsent,
                st.rtt / 1000,
            );
        }
        self.forget(s.key);
    }
}

rill_abi::export_plugin!(Srt, "srt");
