//! Rill's WebRTC plugin: WHIP ingest and WHEP playback, the glue between
//! the host and str0m (ICE-lite, DTLS, SRTP, RTCP) and `rill-rtp` (the
//! packetizers and depacketizers every RTP protocol of Rill shares).
//!
//! - HTTP: `POST /{app}/{stream}/whip` and `/whep` take an SDP offer and
//!   answer `201 Created` with the SDP answer, a `Location` under
//!   `/webrtc/session/{id}` (`DELETE` ends the peer, `PATCH` takes trickled
//!   candidates, which ICE-lite does not need) and an `ETag`.
//! - Each offer becomes a socket-less session for the client's address
//!   (`session_open_peer`: the host's per-address limits and IP rules),
//!   which asks the host for admission with the request's credentials
//!   (`Authorization: Bearer` or Basic, or the query), opens the stream,
//!   and only then answers, through a post to the waiting HTTP exchange.
//! - Media: one instance UDP socket (`udp_listen`) for every peer. A
//!   datagram from an address not seen yet must be a STUN binding request
//!   whose user name names a peer's ICE ufrag; from then on the address
//!   belongs to that peer. str0m runs in RTP mode: viewers get the RTP
//!   payloads `rill_rtp::SharedPacketizers` made once per frame for the
//!   whole stream, each payload one `Arc` in every viewer's send history
//!   (`out`; each viewer only stamps and encrypts), publishers'
//!   packets go through `rill_rtp::Depacketizer` into host frames.

mod config;
pub mod fuzzing;
mod http;
mod out;

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use dashmap::DashMap;
use parking_lot::Mutex;
use rill_abi::sdk::{
    Admission, Conn, ConnId, Error, FrameRef, Host, HttpRequest, Plugin, Publisher, Result,
    Subscriber, SubscriberId, TimerHandle, TrackInfo,
};
use rill_abi::{
    rill_codec_kind, rill_log, RillSubscribeOptions, RILL_ACTION_PLAY, RILL_ACTION_PUBLISH,
    RILL_CODEC_AV1, RILL_CODEC_H264, RILL_CODEC_H265, RILL_CODEC_OPUS, RILL_CODEC_PCMA,
    RILL_CODEC_PCMU, RILL_CODEC_VP8, RILL_CODEC_VP9, RILL_END_ERROR, RILL_END_NORMAL,
    RILL_END_PEER, RILL_END_TIMEOUT, RILL_FRAME_CONFIG, RILL_FRAME_KEY, RILL_STREAM_UNPUBLISHED,
    RILL_TRACK_AUDIO, RILL_TRACK_VIDEO,
};
use rill_rtp::{ReceiverConfig, TrackParams, TrackReceiver};
use str0m::change::SdpOffer;
use str0m::config::CryptoProvider;
use str0m::format::Codec;
use str0m::ice::StunMessage;
use str0m::media::{Direction, KeyframeRequestKind, MediaKind, Mid, Pt};
use str0m::net::{Protocol, Receive, TcpType};
use str0m::rtp::{RtpWrite, SeqNo};
use str0m::{Candidate, Event, IceConnectionState, IceCreds, Input, Output, Rtc, RtcConfig};

use config::Config;
use http::Credentials;

const SOCKET: u32 = 1;
/// Video packets a viewer's str0m keeps to answer NACKs.
const SEND_HISTORY: usize = 500;
/// How many times one drain gives str0m the clock (each lets out what is
/// due; a bound, not a busy loop).
const MAX_DRAIN_ROUNDS: usize = 8;
/// The ICE-TCP listener (`tcp_listen`).
const TCP_LISTENER: u32 = 1;
/// An ICE-TCP connection's timer: it must carry a peer's STUN by then.
const TCP_JOIN: u64 = 2;
/// The largest RFC 4571 frame taken over ICE-TCP (a datagram's worth:
/// WebRTC packets stay under the MTU).
const MAX_TCP_FRAME: usize = 4096;
const ROUTE_WHIP: u32 = 1;
const ROUTE_WHEP: u32 = 2;
const ROUTE_RESOURCE: u32 = 3;
const TICK: u64 = 1;
/// RTP payload size: with the RTP header, str0m's header extensions and
/// the SRTP tag, a packet stays below str0m's 1150-byte datagram target.
const MAX_PAYLOAD: usize = 1100;
/// Frames a viewer holds between its answer and DTLS being up (from the
/// key frame the subscription starts at).
const MAX_QUEUED: usize = 1024;
/// RTP packets of a publisher waiting for its session's next tick.
const MAX_INBOX: usize = 4096;
/// Remote addresses one peer may use (ICE candidates that checked in).
const MAX_PEER_ADDRS: usize = 4;
/// A publisher's reorder buffer: a packet resent after a NACK (a round
/// trip later) still fills its gap.
fn reorder() -> ReceiverConfig {
    ReceiverConfig {
        reorder_window: 256,
        reorder_timeout_us: 100_000,
        ..ReceiverConfig::default()
    }
}
/// Track ids looked at for a stream's declared tracks.
const MAX_TRACKS: u32 = 8;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Publish,
    Play,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Publish => "WHIP publisher",
            Kind::Play => "WHEP viewer",
        }
    }
}

/// What crosses sessions: the answer to an HTTP exchange, or an order to a
/// peer's session.
enum Msg {
    Answer {
        status: u16,
        sdp: String,
        location: String,
        etag: String,
    },
    /// ICE and DTLS are up: start sending.
    Connected,
    /// `DELETE` on the resource.
    Close,
    /// Packets for an ICE-TCP connection, framed (RFC 4571).
    Tcp(Vec<u8>),
}

/// A received RTP packet, for the publisher's session.
struct RtpIn {
    pt: u8,
    seq: u16,
    timestamp: u32,
    ssrc: u32,
    marker: bool,
    payload: Arc<[u8]>,
}

/// The str0m side of a peer, shared by its session and the UDP path.
struct Link {
    rtc: Rtc,
    addrs: Vec<SocketAddr>,
    connected: bool,
    closed: Option<String>,
    last_rx: Instant,
    inbox: VecDeque<RtpIn>,
    dropped: u64,
    /// The offer's media, as str0m added them.
    mids: Vec<Mid>,
}

/// A peer: found by address, ufrag and resource id.
struct Peer {
    id: String,
    ufrag: String,
    session: ConnId,
    kind: Kind,
    link: Mutex<Link>,
}

struct PlayTrack {
    host_track: u32,
    /// Where it goes: the media, payload type and clock, or `None` when the
    /// viewer did not negotiate its codec.
    out: Option<(Mid, Pt, u32)>,
    config: Option<Bytes>,
    seq: u64,
    ts_offset: u32,
    keyed: bool,
}

struct Play {
    _sub: Subscriber,
    stream: Arc<out::StreamOut>,
    tracks: Vec<PlayTrack>,
    queued: VecDeque<FrameRef>,
    started: bool,
    /// One media clock for every track (lip sync in the viewer's sender
    /// reports): a pts and the instant it maps to.
    base: Option<(i64, Instant)>,
}

struct PubTrack {
    pt: u8,
    /// Reorder buffer and depacketizer: a packet the publisher resends
    /// after a NACK fills its gap if it comes within the reorder timeout.
    receiver: TrackReceiver,
}

struct Publish {
    publisher: Publisher,
    tracks: Vec<PubTrack>,
    warned: bool,
}

/// A WHIP or WHEP peer's session.
pub struct PeerSession {
    kind: Kind,
    path: String,
    query: String,
    creds: Credentials,
    offer: Option<SdpOffer>,
    /// The HTTP exchange waiting for the answer.
    http: ConnId,
    peer: Option<Arc<Peer>>,
    play: Option<Play>,
    publish: Option<Publish>,
    timer: Option<TimerHandle>,
    deadline: Instant,
    /// `conn.close` was called: ticks until the close lands do nothing.
    closing: bool,
    /// A publisher's next key frame request.
    next_pli: Option<Instant>,
}

pub enum Session {
    /// An HTTP exchange (answered at once, or waiting for its peer).
    Http,
    Peer(Box<PeerSession>),
    /// An ICE-TCP connection (RFC 6544): a client whose UDP is blocked.
    Tcp(TcpLink),
}

/// An ICE-TCP connection: its addresses and the bytes of a frame in
/// progress.
pub struct TcpLink {
    remote: SocketAddr,
    local: SocketAddr,
    buf: Vec<u8>,
    /// A peer's STUN came on it.
    joined: bool,
}

pub struct WebRtc {
    host: Host,
    cfg: Config,
    crypto: Arc<CryptoProvider>,
    candidates: Vec<SocketAddr>,
    /// ICE-TCP passive candidates (none when `tcp_listen` is off).
    tcp_candidates: Vec<SocketAddr>,
    /// ICE-TCP connections by the client's address.
    tcp: DashMap<SocketAddr, ConnId>,
    by_addr: DashMap<SocketAddr, Arc<Peer>>,
    by_ufrag: DashMap<String, Arc<Peer>>,
    by_id: DashMap<String, Arc<Peer>>,
    streams: Mutex<HashMap<String, Arc<out::StreamOut>>>,
    peers: AtomicUsize,
}

fn random_hex(bytes: usize) -> String {
    let mut r = vec![0u8; bytes];
    let _ = getrandom::getrandom(&mut r);
    r.iter().map(|b| format!("{b:02x}")).collect()
}

fn random_u32() -> u32 {
    let mut r = [0u8; 4];
    let _ = getrandom::getrandom(&mut r);
    u32::from_le_bytes(r)
}

/// A WHEP viewer's subscription: the audio codecs WebRTC carries.
fn play_options() -> RillSubscribeOptions {
    RillSubscribeOptions::new().with_audio_codecs(&[
        RILL_CODEC_OPUS,
        RILL_CODEC_PCMU,
        RILL_CODEC_PCMA,
    ])
}

/// The str0m codec of a host codec.
fn codec_of(codec: u32) -> Option<Codec> {
    Some(match codec {
        RILL_CODEC_H264 => Codec::H264,
        RILL_CODEC_H265 => Codec::H265,
        RILL_CODEC_VP8 => Codec::Vp8,
        RILL_CODEC_VP9 => Codec::Vp9,
        RILL_CODEC_AV1 => Codec::Av1,
        RILL_CODEC_OPUS => Codec::Opus,
        RILL_CODEC_PCMU => Codec::PCMU,
        RILL_CODEC_PCMA => Codec::PCMA,
        _ => return None,
    })
}

/// The host codec of what a WHIP publisher may send (what `rill-rtp`
/// depacketizes).
fn host_codec_of(codec: Codec) -> Option<u32> {
    Some(match codec {
        Codec::H264 => RILL_CODEC_H264,
        Codec::H265 => RILL_CODEC_H265,
        Codec::Vp8 => RILL_CODEC_VP8,
        Codec::Opus => RILL_CODEC_OPUS,
        Codec::PCMU => RILL_CODEC_PCMU,
        Codec::PCMA => RILL_CODEC_PCMA,
        _ => return None,
    })
}

/// Whether an offer has H.264 or H.265 video.
fn offers_h26x(offer: &SdpOffer) -> bool {
    let sdp = offer.to_sdp_string();
    sdp.contains(" H264/90000") || sdp.contains(" H265/90000")
}

/// Every peer's str0m settings: ICE-lite, RTP mode, the codecs the host's
/// frames can carry over RTP: to a viewer also VP9 and AV1 (packetized,
/// not yet depacketized: a publisher keeps to the others); VP8 when `vp8`.
fn rtc_config(crypto: Arc<CryptoProvider>, ufrag: &str, kind: Kind, vp8: bool) -> RtcConfig {
    RtcConfig::new()
        .set_crypto_provider(crypto)
        .set_ice_lite(true)
        .set_rtp_mode(true)
        // The history NACKs are answered from, a viewer: 500 packets (1.8 s
        // of 2.5 Mbit/s; a NACK comes within a round trip) instead of
        // str0m's 1000, half the memory of the largest per-viewer part.
        .set_send_buffer_video(SEND_HISTORY)
        .set_local_ice_credentials(IceCreds {
            ufrag: ufrag.to_owned(),
            pass: random_hex(16),
        })
        .clear_codecs()
        .enable_h264(true)
        .enable_h265(true)
        .enable_opus(true, false)
        .enable_pcmu(true, false)
        .enable_pcma(true, false)
        .enable_vp8(vp8)
        .enable_vp9(kind == Kind::Play)
        .enable_av1(kind == Kind::Play)
}

impl WebRtc {
    /// Sends what str0m has to send and collects its events; true when the
    /// peer just connected.
    fn drain(&self, link: &mut Link) -> bool {
        let mut connected = false;
        let mut rounds = 0;
        loop {
            match link.rtc.poll_output() {
                Ok(Output::Timeout(t)) => {
                    // str0m lets queued packets (media just written,
                    // retransmissions, reports) out only when given the
                    // clock: give it while its deadline has come, or they
                    // would wait for the next tick (50 ms, and bursts).
                    let now = Instant::now();
                    if t > now || rounds >= MAX_DRAIN_ROUNDS {
                        break;
                    }
                    rounds += 1;
                    if link.rtc.handle_input(Input::Timeout(now)).is_err() {
                        link.closed.get_or_insert_with(|| "str0m failed".into());
                        break;
                    }
                }
                Ok(Output::Transmit(t)) => match t.proto {
                    Protocol::Tcp => {
                        if let Some(id) = self.tcp.get(&t.destination).map(|c| *c) {
                            let mut framed = Vec::with_capacity(2 + t.contents.len());
                            framed.extend_from_slice(&(t.contents.len() as u16).to_be_bytes());
                            framed.extend_from_slice(&t.contents);
                            let _ = self.host.post(id, Box::new(Msg::Tcp(framed)));
                        }
                    }
                    _ => {
                        let _ = self.host.udp_send(SOCKET, t.destination, &t.contents);
                    }
                },
                Ok(Output::Event(e)) => match e {
                    Event::Connected => {
                        link.connected = true;
                        connected = true;
                    }
                    Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                        link.closed.get_or_insert_with(|| "ICE disconnected".into());
                    }
                    Event::MediaAdded(m) => link.mids.push(m.mid),
                    Event::RtpPacket(p) => {
                        if link.inbox.len() >= MAX_INBOX {
                            link.inbox.pop_front();
                            link.dropped += 1;
                        }
                        link.inbox.push_back(RtpIn {
                            pt: *p.header.payload_type,
                            seq: p.header.sequence_number,
                            timestamp: p.header.timestamp,
                            ssrc: *p.header.ssrc,
                            marker: p.header.marker,
                            payload: p.payload,
                        });
                    }
                    _ => {}
                },
                Err(e) => {
                    link.closed.get_or_insert_with(|| e.to_string());
                    break;
                }
            }
        }
        connected
    }

    /// A packet from `from` (over UDP or an ICE-TCP connection) for the
    /// peer it belongs to. `NOT_FOUND`: no peer of this generation has it.
    fn receive(
        &self,
        proto: Protocol,
        from: SocketAddr,
        destination: SocketAddr,
        data: &[u8],
    ) -> Result<()> {
        let Some(peer) = self.peer_for(from, data) else {
            return Err(Error::NOT_FOUND);
        };
        let Ok(contents) = data.try_into() else {
            return Ok(());
        };
        let now = Instant::now();
        let input = Input::Receive(
            now,
            Receive {
                proto,
                source: from,
                destination,
                contents,
            },
        );
        let connected = {
            let mut link = peer.link.lock();
            link.last_rx = now;
            if link.rtc.handle_input(input).is_err() {
                return Ok(());
            }
            self.drain(&mut link)
        };
        if connected {
            rill_log!(self.host, Debug, "{from}: {} connected", peer.kind.name());
            let _ = self.host.post(peer.session, Box::new(Msg::Connected));
        }
        Ok(())
    }

    /// Where datagrams are said to arrive: str0m matches it to a local
    /// candidate (the host does not say which address of 0.0.0.0 got it).
    fn local_for(&self, from: SocketAddr) -> SocketAddr {
        self.candidates
            .iter()
            .find(|c| c.is_ipv4() == from.is_ipv4())
            .copied()
            .unwrap_or(self.cfg.udp_listen)
    }

    /// The peer a datagram is for: by its address, or a STUN binding
    /// request naming a peer's ufrag (the address then joins that peer).
    fn peer_for(&self, from: SocketAddr, data: &[u8]) -> Option<Arc<Peer>> {
        if let Some(p) = self.by_addr.get(&from) {
            return Some(p.clone());
        }
        let msg = StunMessage::parse(data).ok()?;
        if !msg.is_binding_request() {
            return None;
        }
        let (local, _remote) = msg.split_username()?;
        let peer = self.by_ufrag.get(local)?.clone();
        {
            let mut link = peer.link.lock();
            if link.addrs.len() >= MAX_PEER_ADDRS {
                return None;
            }
            link.addrs.push(from);
        }
        self.by_addr.insert(from, peer.clone());
        Some(peer)
    }

    fn forget(&self, peer: &Peer) {
        let addrs = std::mem::take(&mut peer.link.lock().addrs);
        for a in addrs {
            self.by_addr.remove(&a);
        }
        self.by_ufrag.remove(&peer.ufrag);
        self.by_id.remove(&peer.id);
        self.peers.fetch_sub(1, Ordering::Relaxed);
    }

    fn stream(&self, path: &str) -> Arc<out::StreamOut> {
        self.streams
            .lock()
            .entry(path.to_owned())
            .or_insert_with(|| {
                let salt = u64::from(random_u32()) << 32 | u64::from(random_u32());
                Arc::new(out::StreamOut::new(salt, MAX_PAYLOAD))
            })
            .clone()
    }

    /// Answers the waiting HTTP exchange with a refusal.
    fn refuse(&self, p: &PeerSession, status: u16, why: &str) {
        let _ = self.host.post(
            p.http,
            Box::new(Msg::Answer {
                status,
                sdp: why.to_owned(),
                location: String::new(),
                etag: String::new(),
            }),
        );
    }

    /// Admitted: open the stream, make the peer, answer.
    fn start(&self, p: &mut PeerSession, conn: &Conn) -> Result<()> {
        match p.kind {
            // WebRTC carries Opus and G.711: an AAC stream's audio comes
            // as Opus derived once per stream by a transformer.
            Kind::Play => match conn.subscribe(&p.path, &p.query, Some(&play_options())) {
                Ok(sub) => {
                    p.play = Some(Play {
                        _sub: sub,
                        stream: self.stream(&p.path),
                        tracks: Vec::new(),
                        queued: VecDeque::new(),
                        started: false,
                        base: None,
                    })
                }
                Err(e) => {
                    self.refuse(p, http::status_of(e), "cannot play this stream");
                    return Err(e);
                }
            },
            Kind::Publish => match conn.publish(&p.path, &p.query) {
                Ok(publisher) => {
                    p.publish = Some(Publish {
                        publisher,
                        tracks: Vec::new(),
                        warned: false,
                    })
                }
                Err(e) => {
                    let status = if e == Error::BUSY {
                        409
                    } else {
                        http::status_of(e)
                    };
                    self.refuse(p, status, "cannot publish this stream");
                    return Err(e);
                }
            },
        }
        let ufrag = random_hex(8);
        let now = Instant::now();
        let offer = p.offer.take().ok_or(Error::INVALID)?;
        // VP8 only from a publisher that offers no H.264/H.265: every
        // protocol carries those, VP8 reaches WebRTC viewers alone.
        let vp8 = p.kind == Kind::Play || !offers_h26x(&offer);
        let mut rtc = rtc_config(self.crypto.clone(), &ufrag, p.kind, vp8).build(now);
        for c in &self.candidates {
            if let Ok(c) = Candidate::host(*c, "udp") {
                rtc.add_local_candidate(c);
            }
        }
        for c in &self.tcp_candidates {
            let tcp = Candidate::builder()
                .tcp()
                .host(*c)
                .tcptype(TcpType::Passive)
                .build();
            if let Ok(c) = tcp {
                rtc.add_local_candidate(c);
            }
        }
        let answer = match rtc.sdp_api().accept_offer(offer) {
            Ok(a) => a,
            Err(e) => {
                self.refuse(p, 400, &format!("offer refused: {e}"));
                return Err(Error::INVALID);
            }
        };
        let id = random_hex(16);
        let peer = Arc::new(Peer {
            id: id.clone(),
            ufrag: ufrag.clone(),
            session: conn.id(),
            kind: p.kind,
            link: Mutex::new(Link {
                rtc,
                addrs: Vec::new(),
                connected: false,
                closed: None,
                last_rx: now,
                inbox: VecDeque::new(),
                dropped: 0,
                mids: Vec::new(),
            }),
        });
        self.drain(&mut peer.link.lock());
        self.by_ufrag.insert(ufrag, peer.clone());
        self.by_id.insert(id.clone(), peer.clone());
        self.peers.fetch_add(1, Ordering::Relaxed);
        p.peer = Some(peer);
        p.deadline = now + self.cfg.connect_timeout;
        let tick = match p.kind {
            Kind::Publish => Duration::from_millis(10),
            Kind::Play => Duration::from_millis(50),
        };
        p.timer = Some(conn.timer_start(tick, true, TICK)?);
        let _ = self.host.post(
            p.http,
            Box::new(Msg::Answer {
                status: 201,
                sdp: answer.to_sdp_string(),
                location: format!("{}{id}", http::RESOURCE_PREFIX),
                etag: format!("\"{}\"", random_hex(8)),
            }),
        );
        rill_log!(
            self.host,
            Info,
            "{}: {} of {} answered",
            conn.peer_addr(),
            p.kind.name(),
            p.path
        );
        Ok(())
    }

    /// The session's clock: str0m's timers, the peer's state, a
    /// publisher's packets.
    fn tick(&self, p: &mut PeerSession, conn: &Conn) -> Result<()> {
        let Some(peer) = p.peer.clone().filter(|_| !p.closing) else {
            return Ok(());
        };
        let now = Instant::now();
        let (inbox, connected, closed, last_rx) = {
            let mut link = peer.link.lock();
            if link.rtc.handle_input(Input::Timeout(now)).is_err() {
                link.closed.get_or_insert_with(|| "str0m failed".into());
            }
            self.drain(&mut link);
            (
                std::mem::take(&mut link.inbox),
                link.connected,
                link.closed.clone(),
                link.last_rx,
            )
        };
        if let Some(why) = closed {
            rill_log!(self.host, Debug, "{}: {why}", p.path);
            p.closing = true;
            return conn.close(RILL_END_PEER);
        }
        if !connected && now > p.deadline {
            p.closing = true;
            rill_log!(
                self.host,
                Info,
                "{}: {} never connected (ICE/DTLS timeout)",
                p.path,
                p.kind.name()
            );
            return conn.close(RILL_END_TIMEOUT);
        }
        if connected && now.duration_since(last_rx) > self.cfg.idle_timeout {
            p.closing = true;
            return conn.close(RILL_END_TIMEOUT);
        }
        if connected {
            self.start_sending(p)?;
            if p.kind == Kind::Publish {
                self.request_keyframe(p, &peer, now);
            }
        }
        if p.publish.is_some() {
            self.ingest(p, &peer, inbox);
        }
        Ok(())
    }

    /// Asks a publisher for a key frame every `keyframe_interval`: browsers
    /// send one only when asked, and players joining (over any protocol)
    /// start at the GOP cache's key frame.
    fn request_keyframe(&self, p: &mut PeerSession, peer: &Peer, now: Instant) {
        let Some(every) = self.cfg.keyframe_interval else {
            return;
        };
        if p.next_pli.is_some_and(|t| now < t) {
            return;
        }
        p.next_pli = Some(now + every);
        let mut link = peer.link.lock();
        for mid in link.mids.clone() {
            if !link
                .rtc
                .media(mid)
                .is_some_and(|m| m.kind() == MediaKind::Video)
            {
                continue;
            }
            if let Some(rx) = link.rtc.direct_api().stream_rx_by_mid(mid, None) {
                rx.request_keyframe(KeyframeRequestKind::Pli);
            }
        }
        self.drain(&mut link);
    }

    /// A viewer just connected: send what was queued.
    fn start_sending(&self, p: &mut PeerSession) -> Result<()> {
        let Some(play) = &mut p.play else {
            return Ok(());
        };
        if play.started {
            return Ok(());
        }
        play.started = true;
        let queued = std::mem::take(&mut play.queued);
        for f in queued {
            self.send_frame(p, &f)?;
        }
        Ok(())
    }

    /// The viewer's media for a host track: the first media of its kind
    /// with a payload type of its codec (H.264 in packetization mode 1).
    fn route(link: &Link, codec: u32) -> Option<(Mid, Pt, u32)> {
        let rtc = &link.rtc;
        let want = codec_of(codec)?;
        let kind = if rill_codec_kind(codec) == RILL_TRACK_VIDEO {
            MediaKind::Video
        } else {
            MediaKind::Audio
        };
        let params = rtc.codec_config().params();
        for media in link.mids.iter().filter_map(|m| rtc.media(*m)) {
            if media.kind() != kind
                || !matches!(media.direction(), Direction::SendOnly | Direction::SendRecv)
            {
                continue;
            }
            for pt in media.remote_pts() {
                let Some(pp) = params.iter().find(|pp| pp.pt() == *pt) else {
                    continue;
                };
                let spec = pp.spec();
                if spec.codec != want {
                    continue;
                }
                if want == Codec::H264 && spec.format.packetization_mode != Some(1) {
                    continue;
                }
                return Some((media.mid(), *pt, spec.clock_rate.get()));
            }
        }
        None
    }

    fn send_frame(&self, p: &mut PeerSession, frame: &FrameRef) -> Result<()> {
        let (Some(play), Some(peer)) = (&mut p.play, &p.peer) else {
            return Ok(());
        };
        let info = frame.info();
        let kind = rill_codec_kind(info.codec);
        if kind != RILL_TRACK_VIDEO && kind != RILL_TRACK_AUDIO {
            return Ok(());
        }
        let config = info.flags & RILL_FRAME_CONFIG != 0;
        let i = match play.tracks.iter().position(|t| t.host_track == info.track) {
            Some(i) => i,
            None => {
                let out = Self::route(&peer.link.lock(), info.codec);
                if out.is_none() && !config {
                    rill_log!(
                        self.host,
                        Info,
                        "{}: the viewer cannot take track {} ({})",
                        p.path,
                        info.track,
                        String::from_utf8_lossy(&info.codec.to_le_bytes())
                    );
                }
                play.tracks.push(PlayTrack {
                    host_track: info.track,
                    out,
                    config: None,
                    seq: u64::from(random_u32() as u16),
                    ts_offset: random_u32(),
                    keyed: kind == RILL_TRACK_AUDIO,
                });
                play.tracks.len() - 1
            }
        };
        let t = &mut play.tracks[i];
        if config {
            t.config = Some(Bytes::copy_from_slice(frame.data()));
        }
        let packets = match play.stream.packets(&self.host, frame, t.config.as_deref()) {
            Ok(p) => p,
            Err(e) => {
                rill_log!(self.host, Debug, "RTP: {e}");
                return Ok(());
            }
        };
        let Some((mid, pt, _)) = t.out else {
            return Ok(());
        };
        if packets.is_empty() {
            return Ok(());
        }
        if !t.keyed {
            if info.flags & RILL_FRAME_KEY == 0 {
                return Ok(());
            }
            t.keyed = true;
        }
        let now = Instant::now();
        let (base_pts, base_at) = *play.base.get_or_insert((info.pts, now));
        let wallclock = if info.pts >= base_pts {
            base_at + Duration::from_micros((info.pts - base_pts) as u64)
        } else {
            base_at
        };
        let payloads = play.stream.payloads(frame, &packets);
        let mut link = peer.link.lock();
        if let Some(tx) = link.rtc.direct_api().stream_tx_by_mid(mid, None) {
            for k in 0..packets.len() {
                let pi = packets.packets[k];
                let ts = packets
                    .timestamp
                    .wrapping_add(pi.ts_step)
                    .wrapping_add(t.ts_offset);
                tx.write_rtp(
                    RtpWrite::new(pt, SeqNo::from(t.seq), ts, wallclock, payloads[k].clone())
                        .marker(pi.marker)
                        .nackable(true),
                );
                t.seq += 1;
            }
        }
        self.drain(&mut link);
        Ok(())
    }

    /// A publisher's packets → host frames.
    fn ingest(&self, p: &mut PeerSession, peer: &Peer, inbox: VecDeque<RtpIn>) {
        let Some(publish) = &mut p.publish else {
            return;
        };
        let now_us = self.host.now_us().max(0) as u64;
        let mut frames = Vec::new();
        for pkt in inbox {
            let i = match publish.tracks.iter().position(|t| t.pt == pkt.pt) {
                Some(i) => i,
                None => {
                    let Some((codec, rate, channels)) = ({
                        let link = peer.link.lock();
                        link.rtc
                            .codec_config()
                            .params()
                            .iter()
                            .find(|pp| *pp.pt() == pkt.pt)
                            .and_then(|pp| {
                                let s = pp.spec();
                                Some((host_codec_of(s.codec)?, s.clock_rate.get(), s.channels))
                            })
                    }) else {
                        continue;
                    };
                    if publish.tracks.len() >= MAX_TRACKS as usize {
                        continue;
                    }
                    let mut ti = TrackInfo::new();
                    ti.kind = rill_codec_kind(codec);
                    ti.codec = codec;
                    let Ok(host_track) = publish.publisher.add_track(&ti) else {
                        continue;
                    };
                    let config = (codec == RILL_CODEC_OPUS)
                        .then(|| rill_ts::audio::opus_head_for_code(channels.unwrap_or(2)))
                        .flatten();
                    let params = TrackParams {
                        track: host_track,
                        codec,
                        clock_rate: rate,
                        config,
                        aac: Default::default(),
                    };
                    let Ok(receiver) = TrackReceiver::new(&params, Some(pkt.pt), reorder()) else {
                        continue;
                    };
                    publish.tracks.push(PubTrack {
                        pt: pkt.pt,
                        receiver,
                    });
                    publish.tracks.len() - 1
                }
            };
            let header = rill_rtp::RtpHeader {
                marker: pkt.marker,
                payload_type: pkt.pt,
                seq: pkt.seq,
                timestamp: pkt.timestamp,
                ssrc: pkt.ssrc,
            };
            let mut datagram = Vec::with_capacity(12 + pkt.payload.len());
            datagram.extend_from_slice(&header.to_bytes());
            datagram.extend_from_slice(&pkt.payload);
            let r = publish.tracks[i]
                .receiver
                .rtp(now_us, Bytes::from(datagram), &mut frames);
            if let Err(e) = r {
                if !publish.warned {
                    publish.warned = true;
                    rill_log!(self.host, Info, "{}: RTP dropped: {e}", p.path);
                }
            }
        }
        // Packets whose gap waited long enough.
        for t in &mut publish.tracks {
            let _ = t.receiver.poll(now_us, &mut frames);
        }
        if let Err(e) = rill_rtp::publish::write_frames(&self.host, &publish.publisher, frames) {
            if !publish.warned {
                publish.warned = true;
                rill_log!(self.host, Info, "{}: frame refused: {e}", p.path);
            }
        }
    }

    fn http_request(&self, conn: &Conn, route: u32, req: &HttpRequest<'_>) -> Result<()> {
        let method = req.method();
        if route == ROUTE_RESOURCE {
            return match method {
                "OPTIONS" => http::options(conn, "OPTIONS, PATCH, DELETE"),
                "DELETE" | "PATCH" => {
                    let Some(peer) = http::resource_id(req.path())
                        .and_then(|id| self.by_id.get(id).map(|p| p.clone()))
                    else {
                        return http::text(conn, 404, "no such session");
                    };
                    if method == "PATCH" {
                        // ICE-lite learns the viewer's addresses from its
                        // checks: trickled candidates are not needed.
                        return http::empty(conn, 204, &[]);
                    }
                    let _ = self.host.post(peer.session, Box::new(Msg::Close));
                    http::empty(conn, 200, &[])
                }
                _ => http::text(conn, 405, "OPTIONS, PATCH or DELETE"),
            };
        }
        if method == "OPTIONS" {
            return http::options(conn, "OPTIONS, POST");
        }
        if method != "POST" {
            return http::text(conn, 405, "POST an SDP offer");
        }
        let (kind, suffix) = if route == ROUTE_WHIP {
            (Kind::Publish, "whip")
        } else {
            (Kind::Play, "whep")
        };
        let Some(path) = http::stream_path(req.path(), suffix) else {
            return http::text(conn, 404, "expected /{app}/{stream}/whip or /whep");
        };
        let ctype = req.header("content-type").unwrap_or("");
        if !ctype
            .trim()
            .to_ascii_lowercase()
            .starts_with("application/sdp")
        {
            return http::text(conn, 415, "the offer must be application/sdp");
        }
        let body = req.body();
        if body.len() > self.cfg.max_offer {
            return http::text(conn, 413, "offer too large");
        }
        let Ok(text) = std::str::from_utf8(body) else {
            return http::text(conn, 400, "offer is not UTF-8");
        };
        let offer = match SdpOffer::from_sdp_string(text) {
            Ok(o) => o,
            Err(e) => return http::text(conn, 400, &format!("bad SDP offer: {e}")),
        };
        if self.peers.load(Ordering::Relaxed) >= self.cfg.max_sessions {
            return http::text(conn, 503, "too many WebRTC sessions");
        }
        let from: SocketAddr = conn
            .peer_addr()
            .parse()
            .unwrap_or(SocketAddr::from(([0, 0, 0, 0], 0)));
        let state = Session::Peer(Box::new(PeerSession {
            kind,
            path: path.to_owned(),
            query: req.query().to_owned(),
            creds: Credentials::from_header(req.header("authorization")),
            offer: Some(offer),
            http: conn.id(),
            peer: None,
            play: None,
            publish: None,
            timer: None,
            deadline: Instant::now() + self.cfg.connect_timeout,
            closing: false,
            next_pli: None,
        }));
        if let Err(e) = self
            .host
            .session_open_peer(state, from, &self.cfg.udp_listen.to_string())
        {
            return http::text(conn, http::status_of(e), "refused");
        }
        Ok(())
    }
}

impl Plugin for WebRtc {
    type Session = Session;
    const WANTS_STREAM_EVENTS: bool = true;

    fn create(host: &Host) -> Result<Self> {
        let cfg = host.parse_config(|y| Config::parse(y).map_err(|e| e.in_plugin("webrtc")))?;
        host.udp_listen(&cfg.udp_listen.to_string(), SOCKET)?;
        // Explicit methods, OPTIONS among them: the plugin answers the
        // CORS preflights of WHIP/WHEP itself.
        for method in ["POST", "OPTIONS"] {
            host.http_route(method, "*/whip", ROUTE_WHIP)?;
            host.http_route(method, "*/whep", ROUTE_WHEP)?;
        }
        let resource = format!("{}*", http::RESOURCE_PREFIX);
        for method in ["OPTIONS", "PATCH", "DELETE"] {
            host.http_route(method, &resource, ROUTE_RESOURCE)?;
        }
        let candidates = cfg.candidate_addrs();
        let tcp_candidates = cfg.tcp_candidate_addrs();
        if let Some(tcp) = cfg.tcp_listen {
            host.listen(&tcp.to_string(), TCP_LISTENER, 0)?;
            rill_log!(
                host,
                Info,
                "WebRTC ICE-TCP on {tcp} (candidates {tcp_candidates:?})"
            );
        }
        rill_log!(
            host,
            Info,
            "WebRTC on udp {} (candidates {:?})",
            cfg.udp_listen,
            candidates
        );
        Ok(WebRtc {
            host: *host,
            cfg,
            crypto: Arc::new(str0m::crypto::from_feature_flags()),
            candidates,
            tcp_candidates,
            tcp: DashMap::new(),
            by_addr: DashMap::new(),
            by_ufrag: DashMap::new(),
            by_id: DashMap::new(),
            streams: Mutex::new(HashMap::new()),
            peers: AtomicUsize::new(0),
        })
    }

    fn on_http_request(
        &self,
        conn: &Conn,
        route_id: u32,
        req: &HttpRequest<'_>,
    ) -> Result<Session> {
        self.http_request(conn, route_id, req)?;
        Ok(Session::Http)
    }

    fn on_session_open(&self, s: &mut Session, conn: &Conn, _kind: u32) -> Result<()> {
        let Session::Peer(p) = s else { return Ok(()) };
        let adm = Admission {
            action: match p.kind {
                Kind::Publish => RILL_ACTION_PUBLISH,
                Kind::Play => RILL_ACTION_PLAY,
            },
            path: &p.path,
            query: &p.query,
            user: &p.creds.user,
            password: &p.creds.password,
            token: &p.creds.token,
        };
        match conn.admit(&adm, 1) {
            Ok(true) => self.start(p, conn),
            Ok(false) => Ok(()),
            Err(e) => {
                self.refuse(p, http::status_of(e), "refused");
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
        let Session::Peer(p) = s else { return Ok(()) };
        match result {
            Ok(()) => self.start(p, conn),
            Err(e) => {
                self.refuse(p, http::status_of(e), "refused");
                conn.close(RILL_END_NORMAL)
            }
        }
    }

    fn on_post(
        &self,
        session: Option<(&mut Session, &Conn)>,
        msg: Box<dyn std::any::Any + Send>,
    ) -> Result<()> {
        let (Some((s, conn)), Ok(msg)) = (session, msg.downcast::<Msg>()) else {
            return Ok(());
        };
        match (s, *msg) {
            (
                Session::Http,
                Msg::Answer {
                    status,
                    sdp,
                    location,
                    etag,
                },
            ) => {
                if status == 201 {
                    http::created(conn, &sdp, &location, &etag)
                } else {
                    http::text(conn, status, &sdp)
                }
            }
            (Session::Peer(p), Msg::Connected) => self.start_sending(p),
            (Session::Peer(_), Msg::Close) => conn.close(RILL_END_NORMAL),
            (Session::Tcp(_), Msg::Tcp(framed)) => conn.write(&framed).map(drop),
            _ => Ok(()),
        }
    }

    fn on_timer(&self, session: Option<(&mut Session, &Conn)>, timer_id: u64) -> Result<()> {
        match session {
            Some((Session::Peer(p), conn)) if timer_id == TICK => self.tick(p, conn),
            Some((Session::Tcp(t), conn)) if timer_id == TCP_JOIN && !t.joined => {
                conn.close(RILL_END_TIMEOUT)
            }
            _ => Ok(()),
        }
    }

    fn on_conn_open(&self, conn: &Conn, listener_id: u32) -> Result<Session> {
        if listener_id != TCP_LISTENER || self.tcp.len() >= self.cfg.max_sessions {
            return Err(Error::BUSY);
        }
        let (Ok(remote), Ok(local)) = (
            conn.peer_addr().parse::<SocketAddr>(),
            conn.local_addr().parse::<SocketAddr>(),
        ) else {
            return Err(Error::INVALID);
        };
        // str0m knows the candidates' addresses, not a 0.0.0.0 listener's.
        let local = if self.tcp_candidates.contains(&local) {
            local
        } else {
            self.tcp_candidates
                .iter()
                .find(|c| c.is_ipv4() == local.is_ipv4())
                .copied()
                .unwrap_or(local)
        };
        conn.timer_start(self.cfg.connect_timeout, false, TCP_JOIN)?;
        self.tcp.insert(remote, conn.id());
        Ok(Session::Tcp(TcpLink {
            remote,
            local,
            buf: Vec::new(),
            joined: false,
        }))
    }

    fn on_data(&self, s: &mut Session, conn: &Conn, data: &[u8]) -> Result<()> {
        let Session::Tcp(t) = s else { return Ok(()) };
        t.buf.extend_from_slice(data);
        let mut at = 0;
        while t.buf.len() - at >= 2 {
            let len = usize::from(u16::from_be_bytes([t.buf[at], t.buf[at + 1]]));
            if len > MAX_TCP_FRAME {
                rill_log!(
                    self.host,
                    Debug,
                    "{}: ICE-TCP frame of {len} bytes",
                    t.remote
                );
                return conn.close(RILL_END_ERROR);
            }
            if t.buf.len() - at < 2 + len {
                break;
            }
            let frame = &t.buf[at + 2..at + 2 + len];
            at += 2 + len;
            match self.receive(Protocol::Tcp, t.remote, t.local, frame) {
                Ok(()) => t.joined = true,
                // Not a peer's: nothing else will come on it.
                Err(_) => return conn.close(RILL_END_ERROR),
            }
        }
        t.buf.drain(..at);
        Ok(())
    }

    fn on_udp_packet(&self, _socket: u32, from: SocketAddr, data: &[u8]) -> Result<()> {
        // Not a peer of this generation: after a reload, the host offers
        // the datagram to the generation that has it.
        self.receive(Protocol::Udp, from, self.local_for(from), data)
    }

    fn on_frame(
        &self,
        s: &mut Session,
        _conn: &Conn,
        _sub: SubscriberId,
        frame: &FrameRef,
    ) -> Result<()> {
        let Session::Peer(p) = s else { return Ok(()) };
        let Some(play) = &mut p.play else {
            return Ok(());
        };
        if !play.started {
            if play.queued.len() >= MAX_QUEUED {
                play.queued.pop_front();
            }
            play.queued.push_back(frame.clone());
            return Ok(());
        }
        self.send_frame(p, frame)
    }

    fn on_stream_event(&self, event: u32, path: &str) -> Result<()> {
        if event == RILL_STREAM_UNPUBLISHED {
            self.streams.lock().remove(path);
        }
        Ok(())
    }

    fn on_close(&self, s: Session, conn: &Conn, reason: u32, why: &str) {
        if let Session::Tcp(t) = &s {
            self.tcp.remove_if(&t.remote, |_, id| *id == conn.id());
            self.by_addr.remove(&t.remote);
            return;
        }
        let Session::Peer(p) = s else { return };
        let Some(peer) = p.peer else { return };
        let dropped = {
            let mut link = peer.link.lock();
            link.rtc.disconnect();
            link.dropped
        };
        self.forget(&peer);
        rill_log!(
            self.host,
            Info,
            "{}: {} of {} ended ({}{why}){}",
            conn.peer_addr(),
            p.kind.name(),
            p.path,
            if reason == RILL_END_ERROR {
                "error "
            } else {
                ""
            },
            if dropped > 0 {
                format!(", {dropped} RTP packets dropped")
            } else {
                String::new()
            }
        );
    }
}

rill_abi::export_plugin!(WebRtc, "webrtc");
