//! Rill's RTSP plugin: the glue between the host and `rill-rtsp` (the
//! protocol) and `rill-rtp` (RTP, SDP).
//!
//! One `ServerSession` per TCP connection. Players: DESCRIBE is admitted
//! (play), the stream subscribed, and the SDP written from the tracks'
//! configurations the subscription starts with; PLAY sends from the GOP
//! cache's key frame on. Each frame's RTP payloads are built once per
//! stream (by the first player to receive it, kept on the frame) and each
//! player stamps its own 12-byte headers. Publishers: ANNOUNCE is admitted
//! (publish) and its SDP opens the tracks; RECORD's RTP is depacketized into
//! host frames. Media goes interleaved on the RTSP connection (TCP) or over
//! UDP, on the plugin's one port pair (`rtp_port`, see `udp`); a UDP
//! publisher's packets pass a reorder buffer.

mod config;
mod udp;

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;
use rill_abi::sdk::{
    Admission, Conn, Error, FrameRef, Host, Plugin, Publisher, Result, Subscriber, SubscriberId,
    TimerHandle, TrackInfo,
};
use rill_abi::{
    rill_codec_kind, rill_log, RILL_END_ERROR, RILL_END_NORMAL, RILL_END_PEER, RILL_END_TIMEOUT,
    RILL_FRAME_CONFIG, RILL_STREAM_UNPUBLISHED, RILL_TRACK_AUDIO, RILL_TRACK_VIDEO,
};
use rill_rtp::{
    clock, interleaved_packets, renumber_interleaved, ReceiverConfig, Sdp, SdpTrack,
    SharedPacketizers, Stamp, TrackReceiver, DEFAULT_MAX_PAYLOAD,
};
use rill_rtsp::{
    Credentials, Event, Limits, Lower, Mode, RequestId, ServerSession, Settings, SetupAnswer,
    TrackStart,
};

use config::Config;

const LISTENER: u32 = 1;
const TICK: u64 = 1;
/// A UDP publisher's reorder buffers are polled this often.
const REORDER_TICK: u64 = 2;
/// Frames a player holds between DESCRIBE and PLAY (from a key frame).
const MAX_QUEUED: usize = 1024;
/// Track ids looked at for a stream's declared tracks.
const MAX_TRACKS: u32 = 8;
/// Media (µs) a DESCRIBE waits for a declared track's configuration.
const DECLARED_WAIT_US: i64 = 1_000_000;

fn now(host: &Host) -> u64 {
    host.now_us().max(0) as u64
}

fn random_u32() -> u32 {
    let mut r = [0u8; 4];
    let _ = getrandom::getrandom(&mut r);
    u32::from_le_bytes(r)
}

/// Where a track's client receives (and sends from) over UDP.
#[derive(Clone, Copy)]
struct UdpPeer {
    to: SocketAddr,
    to_rtcp: SocketAddr,
}

struct PlayTrack {
    host_track: u32,
    codec: u32,
    config: Option<Bytes>,
    channel: Option<u8>,
    udp: Option<UdpPeer>,
    stamp: Stamp,
    clock_rate: u32,
}

impl PlayTrack {
    /// A track with the stream's SSRC and timestamp offset: every player
    /// of a stream gets the same packets.
    fn new(
        stream: &SharedPacketizers,
        host_track: u32,
        codec: u32,
        config: Option<Bytes>,
    ) -> PlayTrack {
        let st = stream.stamp(host_track);
        PlayTrack {
            host_track,
            codec,
            config,
            channel: None,
            udp: None,
            stamp: Stamp::new(st.ssrc, 0, st.next_seq, st.ts_offset),
            clock_rate: 0,
        }
    }
}

struct Play {
    path: String,
    sub: Subscriber,
    stream: Arc<SharedPacketizers>,
    /// The DESCRIBE waiting for the tracks.
    describe: Option<RequestId>,
    /// Tracks known (the SDP was written).
    described: bool,
    tracks: Vec<PlayTrack>,
    queued: VecDeque<FrameRef>,
    playing: bool,
    /// The RTSP session id (refreshed by the client's RTCP over UDP).
    session: Option<String>,
    /// The play's media clock: the pts of the RTP-Info instant and the
    /// wall time (µs) of PLAY. Sender reports map wall time to media time
    /// through it, the same for every track.
    clock_base: Option<(i64, i64)>,
    /// The pts of the first media frame before DESCRIBE is answered.
    first_media: Option<i64>,
}

struct PubTrack {
    receiver: TrackReceiver,
    params: rill_rtp::TrackParams,
    payload_type: u8,
    udp: Option<UdpPeer>,
}

struct Publish {
    path: String,
    publisher: Publisher,
    /// By RTSP track index.
    tracks: Vec<Option<PubTrack>>,
    warned: bool,
    session: Option<String>,
    reorder_timer: Option<TimerHandle>,
}

/// A SETUP to answer.
struct SetupReq {
    request: RequestId,
    session: String,
    track: usize,
    mode: Mode,
    transport: rill_rtsp::Transport,
}

/// The request waiting for admission.
enum Waiting {
    Describe {
        request: RequestId,
        path: String,
        query: String,
    },
    Announce {
        request: RequestId,
        path: String,
        query: String,
        sdp: Bytes,
    },
}

pub struct Session {
    rtsp: ServerSession,
    waiting: Option<Waiting>,
    play: Option<Play>,
    publish: Option<Publish>,
    /// Datagrams from this session's client addresses.
    inbox: Arc<udp::Inbox>,
    _timer: Option<TimerHandle>,
}

impl Session {
    /// The client addresses of every track over UDP.
    fn udp_addrs(&self) -> Vec<SocketAddr> {
        let play = self
            .play
            .iter()
            .flat_map(|p| p.tracks.iter().map(|t| t.udp));
        let publish = self
            .publish
            .iter()
            .flat_map(|p| p.tracks.iter().flatten().map(|t| t.udp));
        play.chain(publish)
            .flatten()
            .flat_map(|u| [u.to, u.to_rtcp])
            .collect()
    }
}

pub struct Rtsp {
    host: Host,
    cfg: Config,
    streams: Mutex<HashMap<String, Arc<SharedPacketizers>>>,
    /// The UDP port pair is bound: SETUP may ask for UDP.
    udp: bool,
    routes: udp::Routes,
}

fn admission<'a>(
    action: u32,
    path: &'a str,
    query: &'a str,
    creds: &'a Option<Credentials>,
) -> Admission<'a> {
    let mut a = Admission {
        action,
        path,
        query,
        ..Default::default()
    };
    if let Some(Credentials::Basic { user, password }) = creds {
        a.user = user;
        a.password = password;
    }
    a
}

/// The RTSP status for a refusal.
fn status_of(e: Error) -> u16 {
    match e {
        Error::UNAUTHORIZED => 401,
        Error::DENIED => 403,
        Error::NOT_FOUND => 404,
        Error::BUSY => 503,
        Error::INVALID => 400,
        _ => 500,
    }
}

impl Rtsp {
    /// Writes what the RTSP session has queued.
    fn flush(&self, s: &mut Session, conn: &Conn) {
        while let Some(b) = s.rtsp.poll_transmit() {
            if conn.write(&b).is_err() {
                break;
            }
        }
    }

    fn stream(&self, path: &str) -> Arc<SharedPacketizers> {
        self.streams
            .lock()
            .entry(path.to_owned())
            .or_insert_with(|| {
                let salt = u64::from(random_u32()) << 32 | u64::from(random_u32());
                Arc::new(SharedPacketizers::new(salt, DEFAULT_MAX_PAYLOAD))
            })
            .clone()
    }

    fn handle_events(&self, s: &mut Session, conn: &Conn) -> Result<()> {
        while let Some(ev) = s.rtsp.poll_event() {
            match ev {
                Event::Describe {
                    request,
                    path,
                    query,
                    credentials,
                    ..
                } => {
                    let query = query.unwrap_or_default();
                    let adm = admission(rill_abi::RILL_ACTION_PLAY, &path, &query, &credentials);
                    match conn.admit(&adm, request) {
                        Ok(true) => self.describe(s, conn, request, path, query),
                        Ok(false) => {
                            s.waiting = Some(Waiting::Describe {
                                request,
                                path,
                                query,
                            })
                        }
                        Err(e) => {
                            let _ = s.rtsp.reject(request, status_of(e));
                        }
                    }
                }
                Event::Announce {
                    request,
                    path,
                    query,
                    sdp,
                    credentials,
                    ..
                } => {
                    let query = query.unwrap_or_default();
                    let adm = admission(rill_abi::RILL_ACTION_PUBLISH, &path, &query, &credentials);
                    match conn.admit(&adm, request) {
                        Ok(true) => self.announce(s, conn, request, path, query, sdp),
                        Ok(false) => {
                            s.waiting = Some(Waiting::Announce {
                                request,
                                path,
                                query,
                                sdp,
                            })
                        }
                        Err(e) => {
                            let _ = s.rtsp.reject(request, status_of(e));
                        }
                    }
                }
                Event::Setup {
                    request,
                    session,
                    track,
                    mode,
                    transport,
                    ..
                } => self.setup(
                    s,
                    conn,
                    SetupReq {
                        request,
                        session,
                        track,
                        mode,
                        transport,
                    },
                ),
                Event::Play {
                    request, tracks, ..
                } => self.start_play(s, conn, request, &tracks)?,
                Event::Record { request, .. } => {
                    if s.publish.is_some() {
                        let _ = s.rtsp.accept_record(request);
                    } else {
                        let _ = s.rtsp.reject(request, 455);
                    }
                }
                Event::Interleaved {
                    track: Some(track),
                    rtcp: false,
                    payload,
                    ..
                } => self.ingest(s, track, payload),
                Event::Interleaved { .. } | Event::Paused { .. } => {}
                Event::SessionEnded { mode, .. } => {
                    self.routes.remove(conn.id(), s.udp_addrs());
                    match mode {
                        Some(Mode::Record) => s.publish = None,
                        _ => s.play = None,
                    }
                }
                Event::TimedOut => conn.close(RILL_END_TIMEOUT)?,
                Event::Closed => conn.close(RILL_END_NORMAL)?,
            }
        }
        self.flush(s, conn);
        Ok(())
    }

    fn describe(
        &self,
        s: &mut Session,
        conn: &Conn,
        request: RequestId,
        path: String,
        query: String,
    ) {
        if s.play.is_some() || s.publish.is_some() {
            let _ = s.rtsp.reject(request, 455);
            return;
        }
        match conn.subscribe(&path, &query, None) {
            Ok(sub) => {
                s.play = Some(Play {
                    stream: self.stream(&path),
                    path,
                    sub,
                    describe: Some(request),
                    described: false,
                    tracks: Vec::new(),
                    queued: VecDeque::new(),
                    playing: false,
                    session: None,
                    clock_base: None,
                    first_media: None,
                });
            }
            Err(e) => {
                let _ = s.rtsp.reject(request, status_of(e));
            }
        }
    }

    fn announce(
        &self,
        s: &mut Session,
        conn: &Conn,
        request: RequestId,
        path: String,
        query: String,
        sdp: Bytes,
    ) {
        if s.play.is_some() || s.publish.is_some() {
            let _ = s.rtsp.reject(request, 455);
            return;
        }
        let sdp = match Sdp::parse(&sdp) {
            Ok(s) => s,
            Err(e) => {
                rill_log!(self.host, Info, "{path}: ANNOUNCE refused: {e}");
                let _ = s.rtsp.reject(request, 400);
                return;
            }
        };
        let publisher = match conn.publish(&path, &query) {
            Ok(p) => p,
            Err(e) => {
                let _ = s.rtsp.reject(request, status_of(e));
                return;
            }
        };
        let mut tracks = Vec::new();
        for t in &sdp.tracks {
            let kind = rill_codec_kind(t.codec);
            if kind != RILL_TRACK_VIDEO && kind != RILL_TRACK_AUDIO {
                tracks.push(None);
                continue;
            }
            let mut ti = TrackInfo::new();
            ti.kind = kind;
            ti.codec = t.codec;
            let Ok(host_track) = publisher.add_track(&ti) else {
                tracks.push(None);
                continue;
            };
            let cfg = ReceiverConfig {
                reorder_window: 1,
                ..ReceiverConfig::default()
            };
            let params = t.params(host_track);
            match TrackReceiver::new(&params, Some(t.payload_type), cfg) {
                Ok(receiver) => tracks.push(Some(PubTrack {
                    receiver,
                    params,
                    payload_type: t.payload_type,
                    udp: None,
                })),
                Err(_) => tracks.push(None),
            }
        }
        if tracks.iter().all(Option::is_none) {
            let _ = s.rtsp.reject(request, 415);
            return;
        }
        rill_log!(self.host, Info, "{}: publishing {path}", conn.peer_addr());
        s.publish = Some(Publish {
            path,
            publisher,
            tracks,
            warned: false,
            session: None,
            reorder_timer: None,
        });
        let _ = s.rtsp.accept_announce(request);
    }

    fn setup(&self, s: &mut Session, conn: &Conn, req: SetupReq) {
        let SetupReq {
            request,
            session,
            track,
            mode,
            transport,
        } = req;
        let udp = if transport.lower == Lower::Tcp {
            None
        } else {
            let peer = conn.peer_addr();
            let client = transport
                .client_port
                .filter(|_| self.udp)
                .and_then(|(rtp, rtcp)| {
                    Some(UdpPeer {
                        to: udp::client_addr(peer, rtp)?,
                        to_rtcp: udp::client_addr(peer, rtcp)?,
                    })
                });
            let Some(client) = client else {
                let _ = s.rtsp.reject(request, 461);
                return;
            };
            if !self
                .routes
                .add(conn.id(), track, &s.inbox, [client.to, client.to_rtcp])
            {
                rill_log!(
                    self.host,
                    Info,
                    "{peer}: SETUP refused: another session has client ports {}-{}",
                    client.to.port(),
                    client.to_rtcp.port()
                );
                let _ = s.rtsp.reject(request, 461);
                return;
            }
            Some(client)
        };
        let server_port = udp.map(|_| (self.cfg.rtp_port, self.cfg.rtp_port + 1));
        let channel = transport.interleaved.map(|(rtp, _)| rtp);
        match (mode, &mut s.play, &mut s.publish) {
            (Mode::Play, Some(p), _) if track < p.tracks.len() => {
                let t = &mut p.tracks[track];
                t.channel = channel;
                t.udp = udp;
                p.session = Some(session);
                let ssrc = t.stamp.ssrc;
                let _ = s.rtsp.accept_setup(
                    request,
                    SetupAnswer {
                        server_port,
                        ssrc: Some(ssrc),
                    },
                );
            }
            (Mode::Record, _, Some(p)) if matches!(p.tracks.get(track), Some(Some(_))) => {
                if let Some(Some(t)) = p.tracks.get_mut(track) {
                    if udp.is_some() {
                        // Datagrams come out of order: a reorder window.
                        if let Ok(r) = TrackReceiver::new(
                            &t.params,
                            Some(t.payload_type),
                            ReceiverConfig::default(),
                        ) {
                            t.receiver = r;
                        }
                        if p.reorder_timer.is_none() {
                            p.reorder_timer = conn
                                .timer_start(Duration::from_millis(20), true, REORDER_TICK)
                                .ok();
                        }
                    }
                    t.udp = udp;
                }
                p.session = Some(session);
                let _ = s.rtsp.accept_setup(
                    request,
                    SetupAnswer {
                        server_port,
                        ssrc: None,
                    },
                );
            }
            _ => {
                if let Some(u) = udp {
                    self.routes.remove(conn.id(), [u.to, u.to_rtcp]);
                }
                let _ = s.rtsp.reject(request, 404);
            }
        }
    }

    fn start_play(
        &self,
        s: &mut Session,
        conn: &Conn,
        request: RequestId,
        tracks: &[usize],
    ) -> Result<()> {
        let Some(p) = &mut s.play else {
            let _ = s.rtsp.reject(request, 455);
            return Ok(());
        };
        // One instant for every track's RTP-Info (the earliest queued
        // frame): players line the tracks up by it.
        let start = p
            .queued
            .iter()
            .map(|f| f.info())
            .filter(|f| f.flags & RILL_FRAME_CONFIG == 0)
            .map(|f| f.pts)
            .min()
            .unwrap_or(0);
        // Each track's first packet: its first queued frame's, numbered
        // now if no player had it yet.
        let mut starts = Vec::new();
        for &i in tracks {
            let Some(t) = p.tracks.get(i) else { continue };
            let first = p.queued.iter().find(|f| {
                let f = f.info();
                f.track == t.host_track && f.flags & RILL_FRAME_CONFIG == 0
            });
            let seq = first
                .and_then(|f| p.stream.packets(&self.host, f, t.config.as_deref()).ok())
                .filter(|pk| !pk.is_empty())
                .map_or_else(|| p.stream.stamp(t.host_track).next_seq, |pk| pk.seq);
            starts.push(TrackStart {
                track: i,
                seq,
                rtptime: clock::rtp_timestamp(start, t.clock_rate, t.stamp.ts_offset),
            });
        }
        for st in &starts {
            if let Some(t) = p.tracks.get_mut(st.track) {
                t.stamp.seq = st.seq;
            }
        }
        let _ = s.rtsp.accept_play(request, None, &starts);
        self.flush(s, conn);
        let Some(p) = &mut s.play else { return Ok(()) };
        p.playing = true;
        p.clock_base = Some((start, self.host.wall_us()));
        rill_log!(self.host, Info, "{}: playing {}", conn.peer_addr(), p.path);
        // Sender reports before the first packet: players map time by them
        // from the start.
        self.sender_reports(s, conn);
        let Some(p) = &mut s.play else { return Ok(()) };
        // Taken whole: a playing session keeps no room for a GOP.
        let queued = std::mem::take(&mut p.queued);
        for f in &queued {
            self.send_frame(s, conn, f)?;
        }
        Ok(())
    }

    /// A sender report per track: NTP now and the RTP time of now on the
    /// play's media clock (one mapping for every track, so players line
    /// the tracks up and their timestamps never jump).
    fn sender_reports(&self, s: &mut Session, conn: &Conn) {
        let Some(p) = &s.play else { return };
        let Some((start, at)) = p.clock_base else {
            return;
        };
        let wall = self.host.wall_us();
        let ntp = clock::unix_us_to_ntp(wall);
        for t in &p.tracks {
            let rtp = clock::rtp_timestamp(start + (wall - at), t.clock_rate, t.stamp.ts_offset);
            let sr = rill_rtp::RtcpPacket::SenderReport(t.stamp.sender_report(ntp, rtp));
            let mut out = Vec::with_capacity(64);
            rill_rtp::write_rtcp(std::slice::from_ref(&sr), &mut out);
            if let Some(u) = &t.udp {
                let _ = self.host.udp_send(udp::RTCP, u.to_rtcp, &out);
            } else if let Some(ch) = t.channel {
                let mut framed = Vec::with_capacity(out.len() + 4);
                let len = out.len();
                framed.extend_from_slice(&[b'$', ch + 1, (len >> 8) as u8, len as u8]);
                framed.extend_from_slice(&out);
                let _ = conn.write(&framed);
            }
        }
    }

    fn send_frame(&self, s: &mut Session, conn: &Conn, frame: &FrameRef) -> Result<()> {
        let Some(p) = &mut s.play else { return Ok(()) };
        let info = frame.info();
        let Some(t) = p.tracks.iter_mut().find(|t| t.host_track == info.track) else {
            return Ok(());
        };
        let channel = t.channel.unwrap_or(0);
        let wire = match p.stream.interleaved(
            &self.host,
            frame,
            t.config.as_deref(),
            channel,
            t.stamp.payload_type,
        ) {
            Ok(Some(w)) => w,
            Ok(None) => return Ok(()),
            Err(e) => {
                rill_log!(self.host, Debug, "RTP: {e}");
                return Ok(());
            }
        };
        // The stream numbers packets in the order frames are first
        // packetized; a player whose frames do not follow on from its last
        // (the host let it, or the first player of a frame, skip some)
        // gets its own continuous numbers, in a copy.
        let expected = t.stamp.seq;
        let data = wire.data();
        let (mut count, mut first_seq) = (0u16, expected);
        for packet in interleaved_packets(data) {
            if count == 0 {
                first_seq = u16::from_be_bytes([packet[2], packet[3]]);
            }
            count = count.wrapping_add(1);
            t.stamp.packets += 1;
            t.stamp.octets += (packet.len() - rill_rtp::packet::RTP_HEADER_LEN) as u64;
        }
        t.stamp.seq = expected.wrapping_add(count);
        let own = first_seq != expected;
        if let Some(u) = &t.udp {
            let mut buf = Vec::new();
            for (i, packet) in interleaved_packets(data).enumerate() {
                let packet = if own {
                    buf.clear();
                    buf.extend_from_slice(packet);
                    let seq = expected.wrapping_add(i as u16);
                    buf[2..4].copy_from_slice(&seq.to_be_bytes());
                    &buf[..]
                } else {
                    packet
                };
                // A full send queue drops the datagram, as a network would.
                let _ = self.host.udp_send(udp::RTP, u.to, packet);
            }
            return Ok(());
        }
        if t.channel.is_none() {
            return Ok(());
        }
        if !own {
            return conn.write_frame(&wire).map(drop);
        }
        let mut copy = data.to_vec();
        renumber_interleaved(&mut copy, expected);
        conn.write(&copy).map(drop)
    }

    /// Before PLAY: learns the tracks from the start of the subscription,
    /// answers DESCRIBE once the media frames show they are all known, and
    /// queues frames from there.
    fn before_play(&self, s: &mut Session, frame: &FrameRef) {
        let Some(p) = &mut s.play else { return };
        let info = frame.info();
        let config = info.flags & RILL_FRAME_CONFIG != 0;
        if !p.described {
            let known = p.tracks.iter().position(|t| t.host_track == info.track);
            let kind = rill_codec_kind(info.codec);
            if kind != RILL_TRACK_VIDEO && kind != RILL_TRACK_AUDIO {
                return;
            }
            if config {
                let cfg = Bytes::copy_from_slice(frame.data());
                match known {
                    Some(i) => p.tracks[i].config = Some(cfg),
                    None => {
                        p.tracks
                            .push(PlayTrack::new(&p.stream, info.track, info.codec, Some(cfg)))
                    }
                }
                return;
            }
            if known.is_none() {
                p.tracks
                    .push(PlayTrack::new(&p.stream, info.track, info.codec, None));
            }
            // A media frame: the stream's declared tracks whose codecs need
            // no configuration (Opus, G.711) join. One whose configuration
            // has not come yet (a publisher's first audio frame often
            // follows its first video frames) is waited for, up to
            // DECLARED_WAIT_US of media, before the SDP is written.
            let mut waiting = false;
            for id in 0..MAX_TRACKS {
                let Ok(ti) = p.sub.track_info(id) else {
                    continue;
                };
                let kind = rill_codec_kind(ti.codec);
                let known = p.tracks.iter().any(|t| t.host_track == id);
                if known || (kind != RILL_TRACK_VIDEO && kind != RILL_TRACK_AUDIO) {
                    continue;
                }
                if SdpTrack::from_config(ti.codec, None, 0).is_ok() {
                    p.tracks.push(PlayTrack::new(&p.stream, id, ti.codec, None));
                } else {
                    waiting = true;
                }
            }
            let first = *p.first_media.get_or_insert(info.pts);
            if waiting && info.pts.saturating_sub(first) < DECLARED_WAIT_US {
                if p.queued.len() < MAX_QUEUED {
                    p.queued.push_back(frame.clone());
                }
                return;
            }
            let mut sdp_tracks = Vec::new();
            let mut kept = Vec::new();
            for t in p.tracks.drain(..) {
                let idx = kept.len();
                if let Ok(mut st) = SdpTrack::from_config(t.codec, t.config.as_deref(), idx) {
                    // A dynamic payload type by host track, not by this
                    // player's order: the packets are the same for all.
                    if st.payload_type >= 96 {
                        st.payload_type = 96 + t.host_track.min(31) as u8;
                    }
                    let mut t = t;
                    t.clock_rate = st.clock_rate;
                    t.stamp.payload_type = st.payload_type;
                    sdp_tracks.push(st);
                    kept.push(t);
                }
            }
            p.tracks = kept;
            p.described = true;
            let sdp = Sdp {
                name: p.path.clone(),
                control: Some("*".into()),
                tracks: sdp_tracks,
            }
            .write("0.0.0.0");
            if let Some(request) = p.describe.take() {
                if p.tracks.is_empty() {
                    let _ = s.rtsp.reject(request, 415);
                    return;
                }
                let _ = s.rtsp.answer_describe(request, &sdp);
            }
        }
        if p.queued.len() >= MAX_QUEUED {
            p.queued.pop_front();
        }
        p.queued.push_back(frame.clone());
    }

    fn ingest(&self, s: &mut Session, track: usize, payload: Bytes) {
        let Some(p) = &mut s.publish else { return };
        let Some(Some(t)) = p.tracks.get_mut(track) else {
            return;
        };
        let mut frames = Vec::new();
        let now = now(&self.host);
        if let Err(e) = t.receiver.rtp(now, payload, &mut frames) {
            if !p.warned {
                p.warned = true;
                rill_log!(self.host, Info, "{}: RTP dropped: {e}", p.path);
            }
        }
        self.publish_frames(p, frames);
    }

    /// Frames the reorder buffers released on time.
    fn poll_reorder(&self, s: &mut Session) {
        let Some(p) = &mut s.publish else { return };
        let now = now(&self.host);
        let mut frames = Vec::new();
        for t in p.tracks.iter_mut().flatten() {
            if t.receiver.deadline().is_some_and(|d| d <= now) {
                let _ = t.receiver.poll(now, &mut frames);
            }
        }
        self.publish_frames(p, frames);
    }

    fn publish_frames(&self, p: &mut Publish, frames: Vec<rill_rtp::Frame>) {
        if let Err(e) = rill_rtp::publish::write_frames(&self.host, &p.publisher, frames) {
            if !p.warned {
                p.warned = true;
                rill_log!(self.host, Info, "{}: frame refused: {e}", p.path);
            }
        }
    }
}

/// Binds the UDP port pair on the RTSP listener's address. Taken (by
/// another program, or another plugin): RTSP goes on over TCP only, and
/// SETUP asking for UDP gets 461, which players answer by trying TCP.
fn bind_udp(host: &Host, cfg: &Config) -> bool {
    let ip = cfg.listen.rsplit_once(':').map_or("0.0.0.0", |(ip, _)| ip);
    let (rtp, rtcp) = (cfg.rtp_port, cfg.rtp_port + 1);
    let bound = host
        .udp_listen(&format!("{ip}:{rtp}"), udp::RTP)
        .and_then(|()| host.udp_listen(&format!("{ip}:{rtcp}"), udp::RTCP));
    match bound {
        Ok(()) => {
            rill_log!(host, Info, "RTSP's RTP/RTCP over UDP on {ip}:{rtp}-{rtcp}");
            true
        }
        Err(e) => {
            rill_log!(
                host,
                Error,
                "RTSP over UDP is off: ports {rtp}-{rtcp} on {ip}: {e} (set plugins.rtsp.rtp_port)"
            );
            false
        }
    }
}

impl Plugin for Rtsp {
    type Session = Session;
    const WANTS_STREAM_EVENTS: bool = true;

    fn create(host: &Host) -> Result<Self> {
        let cfg = host.parse_config(|y| Config::parse(y).map_err(|e| e.in_plugin("rtsp")))?;
        host.listen(&cfg.listen, LISTENER, 0)?;
        rill_log!(host, Info, "RTSP on {}", cfg.listen);
        let udp = cfg.rtp_port != 0 && bind_udp(host, &cfg);
        Ok(Rtsp {
            host: *host,
            cfg,
            streams: Mutex::new(HashMap::new()),
            udp,
            routes: udp::Routes::default(),
        })
    }

    fn on_conn_open(&self, conn: &Conn, _listener: u32) -> Result<Session> {
        let settings = Settings {
            session_timeout: self.cfg.session_timeout.as_micros() as u64,
            idle_timeout: self.cfg.idle_timeout.as_micros() as u64,
            ..Settings::default()
        };
        let timer = conn.timer_start(Duration::from_millis(500), true, TICK)?;
        Ok(Session {
            rtsp: ServerSession::new(Limits::default(), settings, now(&self.host)),
            waiting: None,
            play: None,
            publish: None,
            inbox: Arc::default(),
            _timer: Some(timer),
        })
    }

    fn on_data(&self, s: &mut Session, conn: &Conn, data: &[u8]) -> Result<()> {
        let r = s.rtsp.feed(now(&self.host), data);
        self.handle_events(s, conn)?;
        if let Err(e) = r {
            rill_log!(self.host, Debug, "{}: {e}", conn.peer_addr());
            self.flush(s, conn);
            conn.close(RILL_END_ERROR)?;
        }
        Ok(())
    }

    fn on_admit(
        &self,
        s: &mut Session,
        conn: &Conn,
        _ticket: u64,
        result: Result<()>,
    ) -> Result<()> {
        match (s.waiting.take(), result) {
            (
                Some(Waiting::Describe {
                    request,
                    path,
                    query,
                }),
                Ok(()),
            ) => self.describe(s, conn, request, path, query),
            (
                Some(Waiting::Announce {
                    request,
                    path,
                    query,
                    sdp,
                }),
                Ok(()),
            ) => self.announce(s, conn, request, path, query, sdp),
            (
                Some(Waiting::Describe { request, .. } | Waiting::Announce { request, .. }),
                Err(e),
            ) => {
                let _ = s.rtsp.reject(request, status_of(e));
            }
            (None, _) => {}
        }
        self.flush(s, conn);
        Ok(())
    }

    fn on_timer(&self, session: Option<(&mut Session, &Conn)>, timer_id: u64) -> Result<()> {
        let Some((s, conn)) = session else {
            return Ok(());
        };
        match timer_id {
            TICK => {
                s.rtsp.handle_timeout(now(&self.host));
                self.sender_reports(s, conn);
                self.handle_events(s, conn)
            }
            REORDER_TICK => {
                self.poll_reorder(s);
                Ok(())
            }
            _ => Ok(()),
        }
    }

    fn on_frame(
        &self,
        s: &mut Session,
        conn: &Conn,
        _sub: SubscriberId,
        frame: &FrameRef,
    ) -> Result<()> {
        match &s.play {
            Some(p) if p.playing => self.send_frame(s, conn, frame),
            Some(_) => {
                self.before_play(s, frame);
                self.flush(s, conn);
                Ok(())
            }
            None => Ok(()),
        }
    }

    fn on_udp_packet(&self, socket_id: u32, from: SocketAddr, data: &[u8]) -> Result<()> {
        if self.routes.deliver(&self.host, socket_id, from, data) {
            Ok(())
        } else {
            // Not this generation's client: after a reload, the host offers
            // the datagram to the generation whose session has it.
            Err(Error::NOT_FOUND)
        }
    }

    fn on_post(
        &self,
        session: Option<(&mut Session, &Conn)>,
        msg: Box<dyn std::any::Any + Send>,
    ) -> Result<()> {
        let Some((s, _conn)) = session else {
            return Ok(());
        };
        if !msg.is::<udp::Wake>() {
            return Ok(());
        }
        // Anything from the client keeps its session alive.
        let session = s
            .publish
            .as_ref()
            .and_then(|p| p.session.clone())
            .or_else(|| s.play.as_ref().and_then(|p| p.session.clone()));
        if let Some(id) = session {
            s.rtsp.refresh(now(&self.host), &id);
        }
        for d in s.inbox.take() {
            if !d.rtcp && s.publish.is_some() {
                self.ingest(s, d.track, d.data);
            }
        }
        Ok(())
    }

    fn on_stream_event(&self, event: u32, path: &str) -> Result<()> {
        if event == RILL_STREAM_UNPUBLISHED {
            self.streams.lock().remove(path);
        }
        Ok(())
    }

    fn on_close(&self, mut s: Session, conn: &Conn, _reason: u32, _why: &str) {
        s.rtsp.close();
        self.routes.remove(conn.id(), s.udp_addrs());
        if let Some(p) = s.publish.take() {
            rill_log!(
                self.host,
                Info,
                "{}: publisher {} ended",
                conn.peer_addr(),
                p.path
            );
        }
        let _ = RILL_END_PEER;
    }
}

rill_abi::export_plugin!(Rtsp, "rtsp");
