//! WHEP viewers (`--proto whep`, or a URL ending in `/whep`): each an SDP
//! offer POSTed to `http://host:port/app/stream/whep`, then ICE, DTLS and
//! SRTP with str0m (the sans-IO WebRTC stack the server's plugin uses) over
//! a UDP socket of its own, one task each like the SRT players.
//!
//! - The offer: one receive-only video (H.264, packetization mode 1 only,
//!   the profiles browsers offer, with RTX) and one receive-only audio
//!   (Opus) media, and the socket's address as the only host candidate;
//!   the answer's candidates are the server's (ICE-lite on one UDP port).
//!   `Connection: close` on the POST: a viewer holds no HTTP connection
//!   while it plays.
//! - str0m runs in frame mode: it depacketizes H.264 into Annex-B access
//!   units and Opus into frames, answers with NACKs and receiver reports,
//!   and the player counts every frame as the other players do (the
//!   latency stamp is read from the access unit's NAL units before its
//!   first slice: `sei::find_annexb`).
//! - At the end of the run the viewer DELETEs its resource (the answer's
//!   `Location`); failed DELETEs are counted.
//!
//! The JSON's `whep` sums the viewers' counters: answered offers, ICE and
//! DTLS connections with their times (answer → connected), UDP datagrams
//! and bytes, RTP packets in delivered frames, sequence gaps, NACKs and
//! PLIs sent (str0m's ingress statistics), failed DELETEs.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use str0m::change::SdpAnswer;
use str0m::config::CryptoProvider;
use str0m::media::{Direction, MediaData, MediaKind, Mid};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc, RtcConfig};
use tokio::net::UdpSocket;

use crate::http::{split_query, HttpConn, Req, Response};
use crate::httpflv::HttpUrl;
use crate::stats::{quantiles, Player, Quantiles, Shared};
use crate::{rtsp, sei};

pub type Res<T> = Result<T, String>;

/// ICE and DTLS must be up within this of the answer; the POST must be
/// answered within it too.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The DELETE at the end.
const DELETE_TIMEOUT: Duration = Duration::from_secs(5);
/// The largest SDP answer taken.
const MAX_ANSWER: usize = 64 * 1024;
/// One datagram (str0m sends at most ~1200 bytes).
const DATAGRAM: usize = 2048;
/// How often str0m reports its per-media statistics (NACKs, PLIs).
const STATS_EVERY: Duration = Duration::from_secs(1);
/// H.264 payload types offered (all packetization mode 1, with their RTX
/// payload type) and profile-level-ids: constrained baseline, baseline,
/// main and high at level 3.1, as browsers offer them.
const H264: &[(u8, u8, u32)] = &[
    (127, 121, 0x42001f),
    (108, 109, 0x42e01f),
    (123, 119, 0x4d001f),
    (114, 115, 0x64001f),
];

/// `http://host:port/app/stream/whep[?query]`.
#[derive(Clone, Debug)]
pub struct WhepUrl {
    pub http: HttpUrl,
}

impl WhepUrl {
    /// The endpoint; a URL without the `/whep` suffix gets it.
    pub fn parse(url: &str) -> Res<WhepUrl> {
        let mut http = HttpUrl::parse(url)?;
        let (path, query) = split_query(&http.path);
        if !path.ends_with("/whep") {
            http.path = format!("{}/whep{query}", path.trim_end_matches('/'));
        }
        Ok(WhepUrl { http })
    }

    /// Stream `i` of several: `/app/x/whep` → `/app/x-i/whep`.
    pub fn nth(&self, i: usize) -> WhepUrl {
        let (path, query) = split_query(&self.http.path);
        let stream = path.strip_suffix("/whep").unwrap_or(path);
        WhepUrl {
            http: HttpUrl {
                path: format!("{stream}-{i}/whep{query}"),
                ..self.http.clone()
            },
        }
    }
}

/// What the WHEP viewers counted, summed over all of them.
#[derive(Serialize, Deserialize, Clone, Debug, Default)]
#[serde(default)]
pub struct RecvCounters {
    /// Offers answered with 201 and an SDP answer str0m accepted.
    pub answered: u64,
    /// Viewers whose ICE and DTLS came up.
    pub connected: u64,
    /// POST of the offer → its answer, ms.
    pub answer_ms: Quantiles,
    /// The answer → ICE and DTLS up (str0m's `Connected`), ms.
    pub connect_ms: Quantiles,
    /// Viewers that received audio frames (Opus).
    pub with_audio: u64,
    /// UDP datagrams received (STUN, DTLS, SRTP, SRTCP) and their bytes.
    pub datagrams: u64,
    pub bytes: u64,
    /// RTP packets of the frames str0m delivered (sequence ranges).
    pub rtp_packets: u64,
    /// RTP sequence numbers missing between delivered frames: lost
    /// packets, or packets of a frame str0m dropped incomplete.
    pub seq_gaps: u64,
    /// Frames delivered after such a gap.
    pub discontinuities: u64,
    /// RTP packets and bytes received, retransmissions included, NACKs
    /// and PLIs sent: str0m's ingress statistics (last report, once a
    /// second).
    pub stats_packets: u64,
    pub stats_bytes: u64,
    pub nacks_sent: u64,
    pub plis_sent: u64,
    /// DELETEs of the session resource that failed (no answer, or not 2xx).
    pub delete_failed: u64,
    #[serde(skip)]
    answer_us: Vec<u64>,
    #[serde(skip)]
    connect_us: Vec<u64>,
}

impl RecvCounters {
    /// The quantiles of the times collected.
    pub fn finish(&mut self) {
        self.answer_ms = quantiles(std::mem::take(&mut self.answer_us));
        self.connect_ms = quantiles(std::mem::take(&mut self.connect_us));
    }

    fn add(&mut self, v: &Viewer) {
        self.answered += 1;
        self.answer_us.push(v.answer_us);
        if let Some(us) = v.connect_us {
            self.connected += 1;
            self.connect_us.push(us);
        }
        self.with_audio += (v.audio_frames > 0) as u64;
        self.datagrams += v.datagrams;
        self.bytes += v.bytes;
        self.rtp_packets += v.rtp_packets;
        self.seq_gaps += v.seq_gaps;
        self.discontinuities += v.discontinuities;
        for s in v.ingress.iter().flatten() {
            self.stats_packets += s.packets;
            self.stats_bytes += s.bytes;
            self.nacks_sent += s.nacks;
            self.plis_sent += s.plis;
        }
    }
}

/// One process-wide crypto provider (str0m's pure-Rust one).
fn crypto() -> Arc<CryptoProvider> {
    static CRYPTO: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    CRYPTO
        .get_or_init(|| Arc::new(str0m::crypto::from_feature_flags()))
        .clone()
}

/// A viewer's str0m settings: full ICE (the server is ICE-lite), frame
/// mode, H.264 in packetization mode 1 and Opus, statistics every second.
fn rtc_config() -> RtcConfig {
    let mut cfg = RtcConfig::new()
        .set_crypto_provider(crypto())
        .clear_codecs()
        .enable_opus(true, false)
        .set_stats_interval(Some(STATS_EVERY));
    for &(pt, rtx, profile) in H264 {
        cfg.codec_config()
            .add_h264(pt.into(), Some(rtx.into()), true, profile);
    }
    cfg
}

/// The SDP answer in a response to the offer, or why not, worded the same
/// for every viewer that gets the same refusal.
pub fn answer_of(r: &Response) -> Res<(SdpAnswer, String)> {
    let text = String::from_utf8_lossy(&r.body);
    if r.status != 201 {
        let why: String = text.trim().chars().take(80).collect();
        return Err(if why.is_empty() {
            format!("WHEP: HTTP {}", r.status)
        } else {
            format!("WHEP: HTTP {}: {why}", r.status)
        });
    }
    if text.trim().is_empty() {
        return Err("WHEP: 201 with an empty answer".into());
    }
    let location = r
        .header("location")
        .filter(|l| !l.is_empty())
        .ok_or("WHEP: 201 without a Location")?;
    let answer = SdpAnswer::from_sdp_string(&text).map_err(|e| {
        let e = e.to_string();
        format!(
            "WHEP: bad SDP answer: {}",
            e.chars().take(80).collect::<String>()
        )
    })?;
    Ok((answer, location.to_owned()))
}

/// The local address to bind for talking to `server`: loopback for a
/// loopback server, else the address the route to it goes out of.
fn local_ip(server: SocketAddr) -> Res<IpAddr> {
    if server.ip().is_loopback() {
        return Ok(server.ip());
    }
    let any: SocketAddr = if server.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let s = std::net::UdpSocket::bind(any).map_err(|e| format!("bind: {e}"))?;
    s.connect(server).map_err(|e| format!("route: {e}"))?;
    Ok(s.local_addr().map_err(|e| format!("bind: {e}"))?.ip())
}

/// str0m's last ingress statistics of a media.
#[derive(Clone, Copy, Default)]
struct Ingress {
    packets: u64,
    bytes: u64,
    nacks: u64,
    plis: u64,
}

/// One viewer: its peer connection, socket and counters.
struct Viewer {
    rtc: Rtc,
    sock: UdpSocket,
    local: SocketAddr,
    buf: Box<[u8]>,
    video: Mid,
    audio: Mid,
    /// When str0m wants the clock again.
    next_timeout: Instant,
    answered_at: Instant,
    answer_us: u64,
    connect_us: Option<u64>,
    /// Why the peer connection ended, if it did.
    failed: Option<String>,
    datagrams: u64,
    bytes: u64,
    rtp_packets: u64,
    seq_gaps: u64,
    discontinuities: u64,
    audio_frames: u64,
    /// The last video frame's time, ms.
    video_ms: u64,
    /// The last sequence number delivered, per media (video, audio).
    last_seq: [Option<u64>; 2],
    ingress: [Option<Ingress>; 2],
}

impl Viewer {
    /// Sends what str0m has to send and takes its events, until it asks
    /// for the clock.
    async fn pump(&mut self, p: &mut Player, shared: &Shared) -> Res<()> {
        loop {
            match self.rtc.poll_output() {
                Ok(Output::Timeout(t)) => {
                    self.next_timeout = t;
                    return Ok(());
                }
                Ok(Output::Transmit(t)) => {
                    // A datagram the socket refuses is lost, as on a
                    // network; ICE and NACKs recover.
                    let _ = self.sock.send_to(&t.contents, t.destination).await;
                }
                Ok(Output::Event(e)) => self.event(e, p, shared),
                Err(e) => return Err(format!("WebRTC: {e}")),
            }
        }
    }

    fn event(&mut self, e: Event, p: &mut Player, shared: &Shared) {
        match e {
            Event::Connected => {
                let now = Instant::now();
                p.connected = Some(now);
                self.connect_us = Some((now - self.answered_at).as_micros() as u64);
            }
            Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                self.failed.get_or_insert_with(|| "ICE disconnected".into());
            }
            Event::MediaData(d) => self.frame(&d, p, shared),
            Event::MediaIngressStats(s) => {
                let i = if s.mid == self.video { 0 } else { 1 };
                self.ingress[i] = Some(Ingress {
                    packets: s.packets,
                    bytes: s.bytes,
                    nacks: s.nacks,
                    plis: s.plis,
                });
            }
            _ => {}
        }
    }

    /// A frame str0m depacketized.
    fn frame(&mut self, d: &MediaData, p: &mut Player, shared: &Shared) {
        let now = Instant::now();
        let video = d.mid == self.video;
        if !video && d.mid != self.audio {
            return;
        }
        let (first, last) = (**d.seq_range.start(), **d.seq_range.end());
        self.rtp_packets += last.saturating_sub(first) + 1;
        let i = if video { 0 } else { 1 };
        if let Some(prev) = self.last_seq[i] {
            self.seq_gaps += first.saturating_sub(prev + 1);
        }
        self.last_seq[i] = Some(last);
        if !d.contiguous {
            self.discontinuities += 1;
        }
        if video {
            let ms = d.time.numer() * 1000 / u64::from(d.time.denom());
            self.video_ms = ms;
            let (stamp, key) = sei::find_annexb(&d.data);
            p.on_frame(true, key, ms, stamp.map(|s| s.1), now, shared);
        } else {
            // Each track's RTP clock starts at a random offset, so skips
            // are judged on the video's timeline: an audio frame counts
            // (frames, stalls) at the last video time.
            self.audio_frames += 1;
            p.on_frame(false, false, self.video_ms, None, now, shared);
        }
    }

    /// One datagram to str0m (one that is not STUN, DTLS or RTP is
    /// dropped).
    fn input(&mut self, n: usize, from: SocketAddr) -> Res<()> {
        self.datagrams += 1;
        self.bytes += n as u64;
        let Ok(r) = Receive::new(Protocol::Udp, from, self.local, &self.buf[..n]) else {
            return Ok(());
        };
        self.rtc
            .handle_input(Input::Receive(Instant::now(), r))
            .map_err(|e| format!("WebRTC: {e}"))
    }

    /// The clock to str0m when it asked for it.
    fn tick(&mut self) -> Res<()> {
        let now = Instant::now();
        if now < self.next_timeout {
            return Ok(());
        }
        self.rtc
            .handle_input(Input::Timeout(now))
            .map_err(|e| format!("WebRTC: {e}"))
    }

    /// Plays until `end`: datagrams in, the clock when due.
    async fn run(&mut self, p: &mut Player, shared: &Shared, end: Instant) -> Res<()> {
        let give_up = self.answered_at + CONNECT_TIMEOUT;
        loop {
            self.tick()?;
            self.pump(p, shared).await?;
            if let Some(e) = self.failed.take() {
                return Err(e);
            }
            let now = Instant::now();
            if now >= end {
                return Ok(());
            }
            if self.connect_us.is_none() && now >= give_up {
                return Err(format!(
                    "ICE/DTLS: not connected within {} s",
                    CONNECT_TIMEOUT.as_secs()
                ));
            }
            let mut wake = self.next_timeout.min(end);
            if self.connect_us.is_none() {
                wake = wake.min(give_up);
            }
            tokio::select! {
                r = self.sock.recv_from(&mut self.buf) => {
                    let (n, from) = r.map_err(|e| format!("recv: {}", e.kind()))?;
                    self.input(n, from)?;
                    self.pump(p, shared).await?;
                    // Whatever else is waiting, without blocking.
                    loop {
                        match self.sock.try_recv_from(&mut self.buf) {
                            Ok((n, from)) => {
                                self.input(n, from)?;
                                self.pump(p, shared).await?;
                            }
                            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                            Err(e) => return Err(format!("recv: {}", e.kind())),
                        }
                    }
                }
                _ = tokio::time::sleep_until(wake.into()) => {}
            }
        }
    }
}

/// A viewer: offer, answer, ICE/DTLS, frames until `end`, DELETE.
pub async fn play(url: WhepUrl, p: &mut Player, shared: &Shared, end: Instant) -> Res<()> {
    let server = tokio::net::lookup_host(&url.http.addr)
        .await
        .map_err(|e| format!("resolve: {}", e.kind()))?
        .next()
        .ok_or("resolve: no address")?;
    let sock = UdpSocket::bind((local_ip(server)?, 0))
        .await
        .map_err(|e| format!("bind: {e}"))?;
    let local = sock.local_addr().map_err(|e| format!("bind: {e}"))?;
    // A key frame (and the GOP replayed at the start) comes as a burst.
    rtsp::recv_buffer(&sock, rtsp::RECV_BUFFER);

    let mut rtc = rtc_config().build(Instant::now());
    let cand = Candidate::host(local, "udp").map_err(|e| format!("candidate: {e}"))?;
    rtc.add_local_candidate(cand);
    let mut api = rtc.sdp_api();
    let video = api.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
    let audio = api.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None);
    let (offer, pending) = api.apply().ok_or("WebRTC: no offer")?;
    let offer = offer.to_sdp_string();

    let posted = Instant::now();
    let mut http = HttpConn::new(4096);
    let req = Req {
        method: "POST",
        headers: &[("Content-Type", "application/sdp"), ("Connection", "close")],
        body: offer.as_bytes(),
    };
    let resp = match http
        .send(&url.http, &req, end, CONNECT_TIMEOUT, MAX_ANSWER)
        .await
    {
        Ok(r) => r,
        Err(crate::http::Fail::End) => return Ok(()),
        Err(crate::http::Fail::Err(e)) => return Err(format!("WHEP POST: {e}")),
    };
    drop(http);
    let (answer, location) = answer_of(&resp)?;
    rtc.sdp_api()
        .accept_answer(pending, answer)
        .map_err(|e| format!("WHEP: answer refused: {e}"))?;
    let answered_at = Instant::now();

    let mut v = Viewer {
        rtc,
        sock,
        local,
        buf: vec![0; DATAGRAM].into_boxed_slice(),
        video,
        audio,
        next_timeout: answered_at,
        answered_at,
        answer_us: (answered_at - posted).as_micros() as u64,
        connect_us: None,
        failed: None,
        datagrams: 0,
        bytes: 0,
        rtp_packets: 0,
        seq_gaps: 0,
        discontinuities: 0,
        audio_frames: 0,
        video_ms: 0,
        last_seq: [None; 2],
        ingress: [None; 2],
    };
    let r = v.run(p, shared, end).await;
    p.bytes += v.bytes;

    // The resource goes, whatever happened to the media.
    let deleted = match url.http.resolve(&location) {
        Ok(res) => {
            let del = Req {
                method: "DELETE",
                headers: &[("Connection", "close")],
                body: &[],
            };
            let until = Instant::now() + DELETE_TIMEOUT;
            matches!(
                HttpConn::new(4096)
                    .send(&res, &del, until, DELETE_TIMEOUT, 4096)
                    .await,
                Ok(Response { status, .. }) if (200..300).contains(&status)
            )
        }
        Err(_) => false,
    };
    let mut c = shared.whep.lock().unwrap();
    c.add(&v);
    c.delete_failed += !deleted as u64;
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resp(status: u16, headers: &[(&str, &str)], body: &str) -> Response {
        Response {
            status,
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn urls() {
        let u = WhepUrl::parse("http://127.0.0.1:8080/live/x/whep").unwrap();
        assert_eq!(u.http.addr, "127.0.0.1:8080");
        assert_eq!(u.http.path, "/live/x/whep");
        assert_eq!(u.nth(2).http.path, "/live/x-2/whep");
        let q = WhepUrl::parse("http://h/live/x/?token=a").unwrap();
        assert_eq!(q.http.addr, "h:80");
        assert_eq!(q.http.path, "/live/x/whep?token=a");
        assert_eq!(q.nth(0).http.path, "/live/x-0/whep?token=a");
        assert!(WhepUrl::parse("rtmp://h/live/x").is_err());
    }

    /// The offer the viewers send: receive-only video with H.264 in
    /// packetization mode 1 only, receive-only Opus audio, a host candidate.
    #[test]
    fn offer_asks_for_h264_mode_1_and_opus() {
        let mut rtc = rtc_config().build(Instant::now());
        let c = Candidate::host("127.0.0.1:40000".parse().unwrap(), "udp").unwrap();
        rtc.add_local_candidate(c);
        let mut api = rtc.sdp_api();
        api.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
        api.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None);
        let (offer, _) = api.apply().unwrap();
        let sdp = offer.to_sdp_string();
        assert!(sdp.contains("a=recvonly"), "{sdp}");
        assert!(sdp.contains("H264/90000"), "{sdp}");
        assert!(sdp.contains("opus/48000/2"), "{sdp}");
        assert!(sdp.contains("packetization-mode=1"), "{sdp}");
        assert!(!sdp.contains("packetization-mode=0"), "{sdp}");
        assert!(!sdp.contains("VP8"), "{sdp}");
        assert!(sdp.contains("127.0.0.1 40000 typ host"), "{sdp}");
    }

    #[test]
    fn answers_and_refusals() {
        let e = |r: &Response| answer_of(r).err().unwrap();
        assert_eq!(
            e(&resp(503, &[], "too many WebRTC sessions\n")),
            "WHEP: HTTP 503: too many WebRTC sessions"
        );
        assert_eq!(e(&resp(404, &[], "")), "WHEP: HTTP 404");
        assert_eq!(
            e(&resp(201, &[("location", "/webrtc/session/1")], " \r\n")),
            "WHEP: 201 with an empty answer"
        );
        assert_eq!(
            e(&resp(201, &[], "v=0\r\n")),
            "WHEP: 201 without a Location"
        );
        assert!(e(&resp(201, &[("location", "/s/1")], "v=0\r\ngarbage"))
            .starts_with("WHEP: bad SDP answer"));

        // A real answer: str0m's own, to an offer of the viewers' kind.
        let mut client = rtc_config().build(Instant::now());
        let c = Candidate::host("127.0.0.1:40001".parse().unwrap(), "udp").unwrap();
        client.add_local_candidate(c);
        let mut api = client.sdp_api();
        api.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
        let (offer, pending) = api.apply().unwrap();
        let mut server = RtcConfig::new()
            .set_crypto_provider(crypto())
            .set_ice_lite(true)
            .build(Instant::now());
        let c = Candidate::host("127.0.0.1:40002".parse().unwrap(), "udp").unwrap();
        server.add_local_candidate(c);
        let answer = server.sdp_api().accept_offer(offer).unwrap();
        let r = resp(
            201,
            &[("location", "/webrtc/session/abc")],
            &answer.to_sdp_string(),
        );
        let (a, loc) = answer_of(&r).unwrap();
        assert_eq!(loc, "/webrtc/session/abc");
        client.sdp_api().accept_answer(pending, a).unwrap();
    }

    #[test]
    fn counters_sum_viewers() {
        let mut c = RecvCounters {
            answer_us: vec![2000, 4000],
            connect_us: vec![10_000],
            ..Default::default()
        };
        c.finish();
        assert_eq!(c.answer_ms.samples, 2);
        assert_eq!(c.connect_ms.p99, Some(10.0));
        let j = serde_json::to_value(&c).unwrap();
        assert!(j.get("answer_us").is_none() && j.get("connect_ms").is_some());
    }
}
