//! RTSP players and publishers: each its own TCP connection driven by
//! `rill-rtsp`'s sans-IO [`ClientSession`], media through `rill-rtp`.
//!
//! - **Players** (`--proto rtsp`, or any `rtsp://` URL: TCP interleaved;
//!   `--proto rtsp-udp`, or `?transport=udp` on the URL: UDP) send
//!   OPTIONS, DESCRIBE, SETUP per track (those of a codec `rill-rtp`
//!   reads), PLAY; each track's RTP goes through a [`TrackReceiver`]
//!   (reorder window 1 on TCP, 64 packets / 50 ms on UDP) into frames that
//!   are counted as every other player counts them (the latency stamp is in
//!   the H.264 frames, AVCC as the depacketizer gives them). Over UDP each
//!   track has its own bound socket pair (RTP even, RTCP odd), connected to
//!   the server's pair once SETUP says which. A receiver report goes to the
//!   server every 5 s per track (on the RTCP channel or socket); keep-alives
//!   are the session's. Per player: the read buffer, the session's reader,
//!   per track the receiver (its frame in progress; on UDP the reorder
//!   slots) and, over UDP, one datagram buffer.
//! - **Publishers** (`--publish rtsp://host:port/app/stream`) ANNOUNCE an
//!   SDP written by `rill-rtp` from the FLV file's H.264 and AAC
//!   configurations, SETUP each track TCP interleaved, RECORD, then send
//!   the file's frames (H.264 stamped) packetized, at their time.
//!
//! `transport=udp|tcp` is the load generator's, taken off the URL before
//! it is sent; everything else of the URL (user:password@, the query) is
//! the server's.

use std::future::poll_fn;
use std::sync::OnceLock;
use std::task::Poll;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rill_abi::{RILL_CODEC_AAC, RILL_CODEC_H264, RILL_FRAME_CONFIG, RILL_FRAME_KEY};
use rill_rtp::{
    Frame, Packetizer, ReceiverConfig, RtcpPacket, Sdp, SdpTrack, Stamp, TrackReceiver,
    DEFAULT_MAX_PAYLOAD,
};
use rill_rtsp::{ClientEvent, ClientSession, ClientSettings, Lower, SetupTrack};
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpStream, UdpSocket};

use crate::flvsrc::FlvFile;
use crate::stats::{Player, Shared};
use crate::{media, sei};

pub type Res<T> = Result<T, String>;

/// A request unanswered this long fails the session (a loaded server may
/// be slow).
const RESPONSE_TIMEOUT_US: u64 = 30_000_000;
/// Receiver reports, per track, this often.
const REPORT_EVERY: Duration = Duration::from_secs(5);
/// The largest datagram read.
const DATAGRAM: usize = 2048;
/// The receive buffer asked for an RTP socket (a key frame arrives as a
/// burst of datagrams; the kernel's default holds about 90). Kernel memory,
/// used only while datagrams wait; capped by `net.core.rmem_max`.
pub const RECV_BUFFER: usize = 1 << 20;

/// Reads with `UDP_GRO` (Linux 5.0): a run of datagrams one sender sent
/// as one GSO send comes in one read, with its segment size, instead of
/// one read (and, on loopback, one enqueue and wake-up charged to the
/// sender) per datagram, as QUIC stacks read. `false` where the kernel
/// lacks it.
pub fn enable_gro(sock: &UdpSocket) -> bool {
    set_int_option(sock, libc::SOL_UDP, libc::UDP_GRO, 1)
}

/// Sets an int socket option; whether the kernel took it.
fn set_int_option(sock: &UdpSocket, level: libc::c_int, name: libc::c_int, v: libc::c_int) -> bool {
    use std::os::fd::AsRawFd;
    // SAFETY: a valid socket descriptor and a c_int option of its size.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            level,
            name,
            (&v as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    rc == 0
}

/// One read of a socket with `UDP_GRO` on: the bytes and the size of
/// each datagram in them (the last may be shorter; 0: one datagram).
fn recv_gro(sock: &UdpSocket, buf: &mut [u8]) -> std::io::Result<(usize, usize)> {
    use std::os::fd::AsRawFd;
    sock.try_io(tokio::io::Interest::READABLE, || {
        let mut iov = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        let mut control = [0u64; 8];
        // SAFETY: all-zero is a valid msghdr.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = std::mem::size_of_val(&control);
        // SAFETY: msg points at a live iovec over `buf` and a live control
        // buffer, both of the lengths given.
        let n = unsafe { libc::recvmsg(sock.as_raw_fd(), &mut msg, libc::MSG_DONTWAIT) };
        if n < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let mut seg = 0usize;
        // SAFETY: the kernel filled msg's control buffer; CMSG_* walk it
        // within msg_controllen.
        unsafe {
            let mut c = libc::CMSG_FIRSTHDR(&msg);
            while !c.is_null() {
                if (*c).cmsg_level == libc::SOL_UDP && (*c).cmsg_type == libc::UDP_GRO {
                    seg =
                        std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<libc::c_int>()) as usize;
                }
                c = libc::CMSG_NXTHDR(&msg, c);
            }
        }
        Ok((n as usize, seg))
    })
}

/// Asks for a receive buffer of `bytes` (best effort).
pub fn recv_buffer(sock: &UdpSocket, bytes: usize) {
    let v = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
    set_int_option(sock, libc::SOL_SOCKET, libc::SO_RCVBUF, v);
}

/// `rtsp://[user:pass@]host[:port]/path[?query]`, and the transport.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RtspUrl {
    /// The URL as sent to the server (without `transport=`).
    pub url: String,
    /// `host:port` (554 when not given).
    pub addr: String,
    /// Media over UDP (players); else TCP interleaved.
    pub udp: bool,
    /// Over UDP, read with `UDP_GRO` (`gro=off` in the query: without).
    pub gro: bool,
}

impl RtspUrl {
    /// Reads a URL; `udp` is the default transport (`--proto rtsp-udp`),
    /// which `transport=` overrides.
    pub fn parse(url: &str, udp: bool) -> Res<RtspUrl> {
        let rest = url
            .strip_prefix("rtsp://")
            .ok_or_else(|| format!("{url}: not rtsp://"))?;
        let auth_end = rest.find(['/', '?']).unwrap_or(rest.len());
        let authority = &rest[..auth_end];
        let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        if hostport.is_empty() || hostport.starts_with(':') {
            return Err(format!("{url}: no host"));
        }
        let has_port = match hostport.rsplit_once(':') {
            // [::1] alone, or [::1]:port.
            Some((h, p)) if !h.ends_with(':') && !p.ends_with(']') => {
                p.parse::<u16>()
                    .ok()
                    .filter(|&p| p != 0)
                    .ok_or_else(|| format!("{url}: bad port"))?;
                true
            }
            _ => false,
        };
        let addr = if has_port {
            hostport.to_owned()
        } else {
            format!("{hostport}:554")
        };
        let path_q = &rest[auth_end..];
        if path_q.trim_start_matches('/').is_empty() {
            return Err(format!("{url}: no /app/stream"));
        }
        let (path, query) = path_q.split_once('?').unwrap_or((path_q, ""));
        let mut u = RtspUrl {
            url: String::new(),
            addr,
            udp,
            gro: true,
        };
        let mut kept = Vec::new();
        for kv in query.split('&').filter(|s| !s.is_empty()) {
            match kv.split_once('=') {
                Some(("transport", "udp")) => u.udp = true,
                Some(("transport", "tcp")) => u.udp = false,
                Some(("transport", v)) => {
                    return Err(format!("{url}: transport={v}: tcp or udp"));
                }
                Some(("gro", "off")) => u.gro = false,
                Some(("gro", "on")) => u.gro = true,
                _ => kept.push(kv),
            }
        }
        u.url = format!("rtsp://{authority}{path}");
        if !kept.is_empty() {
            u.url.push('?');
            u.url.push_str(&kept.join("&"));
        }
        Ok(u)
    }

    /// Whether a URL asks for UDP (`transport=udp` in its query).
    pub fn asks_udp(url: &str) -> bool {
        url.split_once('?').is_some_and(|(_, q)| {
            q.split(['&', '#'])
                .any(|kv| kv.eq_ignore_ascii_case("transport=udp"))
        })
    }

    /// Stream `i` of several: the path + "-i".
    pub fn nth(&self, i: usize) -> RtspUrl {
        let rest = &self.url["rtsp://".len()..];
        let auth_end = rest.find(['/', '?']).unwrap_or(rest.len());
        RtspUrl {
            url: format!(
                "rtsp://{}{}",
                &rest[..auth_end],
                crate::nth_path(&rest[auth_end..], i)
            ),
            ..self.clone()
        }
    }
}

/// The sessions' clock: µs since the first use.
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

/// A few random-enough bits (SSRCs, sequence starts): no RNG crate.
fn random_u32(salt: u64) -> u32 {
    let mut x = sei::wall_us() ^ salt.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (now_us() << 20);
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x as u32
}

/// The error an event means, if it means one.
fn failure(ev: &ClientEvent) -> Res<()> {
    match ev {
        ClientEvent::Refused { method, status } => {
            Err(format!("RTSP {}: {status}", method.as_str()))
        }
        ClientEvent::TimedOut => Err("RTSP: no answer".into()),
        ClientEvent::Closed => Err("closed".into()),
        _ => Ok(()),
    }
}

/// What the RTSP players counted, summed over all of them.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(default)]
pub struct RecvCounters {
    /// Players whose PLAY was answered.
    pub connections: u64,
    /// Over UDP (else TCP interleaved).
    pub udp: bool,
    /// Tracks set up.
    pub tracks: u64,
    /// RTP packets depacketized.
    pub packets: u64,
    /// Packets found missing (sequence number gaps).
    pub lost: u64,
    /// Packets missing before the first one received: from PLAY's RTP-Info
    /// sequence number to the first packet's (the depacketizer, which
    /// starts at whatever comes first, does not see these).
    pub lost_at_start: u64,
    /// Packets that came after a later one (UDP; put back in order).
    pub reordered: u64,
    /// Duplicates and packets too late for the reorder buffer.
    pub late_or_duplicate: u64,
    /// Frames dropped by the depacketizer (damaged by a loss, waiting for a
    /// key frame).
    pub dropped_frames: u64,
    /// Packets that did not depacketize, or not of the track's payload
    /// type.
    pub bad_packets: u64,
    /// RTCP packets received (sender reports).
    pub rtcp: u64,
    /// Receiver reports sent.
    pub reports_sent: u64,
}

/// One track of a player.
struct Track {
    rx: TrackReceiver,
    /// Interleaved channels (RTP, RTCP), once set up.
    channels: Option<(u8, u8)>,
    /// UDP: the RTP and RTCP sockets.
    udp: Option<(UdpSocket, UdpSocket)>,
    /// The RTP socket reads with `UDP_GRO`.
    gro: bool,
    ssrc: u32,
    /// The first sequence number, as PLAY's RTP-Info has it.
    first_expected: Option<u16>,
    /// The first sequence number received.
    first_received: Option<u16>,
}

impl Track {
    /// One RTP packet; complete frames go to `frames`.
    fn rtp(&mut self, d: Bytes, frames: &mut Vec<Frame>) {
        if self.first_received.is_none() && d.len() >= 4 {
            self.first_received = Some(u16::from_be_bytes([d[2], d[3]]));
        }
        let _ = self.rx.rtp(now_us(), d, frames);
    }

    /// Packets missing before the first one received.
    fn lost_at_start(&self) -> u64 {
        match (self.first_expected, self.first_received) {
            (Some(e), Some(r)) if r.wrapping_sub(e) < 0x8000 => u64::from(r.wrapping_sub(e)),
            _ => 0,
        }
    }
}

/// A bound pair of UDP sockets (even RTP port, the next one for RTCP) on
/// the address family of `peer`.
async fn udp_pair(peer: std::net::SocketAddr) -> Res<(UdpSocket, UdpSocket, u16)> {
    let ip: std::net::IpAddr = if peer.is_ipv4() {
        std::net::Ipv4Addr::UNSPECIFIED.into()
    } else {
        std::net::Ipv6Addr::UNSPECIFIED.into()
    };
    for _ in 0..64 {
        let rtp = UdpSocket::bind((ip, 0)).await.map_err(err("bind"))?;
        let port = rtp.local_addr().map_err(err("bind"))?.port();
        if port % 2 != 0 || port == u16::MAX {
            continue;
        }
        if let Ok(rtcp) = UdpSocket::bind((ip, port + 1)).await {
            recv_buffer(&rtp, RECV_BUFFER);
            return Ok((rtp, rtcp, port));
        }
    }
    Err("no free UDP port pair".into())
}

/// The connection and its session.
struct Conn {
    sock: TcpStream,
    c: ClientSession,
    buf: Box<[u8]>,
}

impl Conn {
    async fn flush(&mut self) -> Res<()> {
        while let Some(b) = self.c.poll_transmit() {
            self.sock.write_all(&b).await.map_err(err("write"))?;
        }
        Ok(())
    }

    /// Feeds the session what the socket has, without waiting; returns the
    /// bytes read.
    fn drain(&mut self) -> Res<u64> {
        let mut n = 0;
        loop {
            match self.sock.try_read(&mut self.buf) {
                Ok(0) => return Err("closed by server".into()),
                Ok(k) => {
                    n += k as u64;
                    self.c.feed(now_us(), &self.buf[..k]).map_err(err("rtsp"))?;
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(n),
                Err(e) => return Err(format!("read: {e}")),
            }
        }
    }

    /// Runs the session's timer when due.
    fn service(&mut self) {
        let now = now_us();
        if self.c.poll_timeout().is_some_and(|t| t <= now) {
            self.c.handle_timeout(now);
        }
    }
}

async fn connect(url: &RtspUrl, c: ClientSession, read_buf: usize) -> Res<Conn> {
    let sock = TcpStream::connect(&url.addr)
        .await
        .map_err(err("connect"))?;
    sock.set_nodelay(true).ok();
    Ok(Conn {
        sock,
        c,
        buf: vec![0u8; read_buf.clamp(2048, 1 << 20)].into_boxed_slice(),
    })
}

fn settings(url: &RtspUrl) -> ClientSettings {
    ClientSettings {
        url: url.url.clone(),
        user_agent: "rill-loadgen".into(),
        response_timeout: RESPONSE_TIMEOUT_US,
        ..ClientSettings::default()
    }
}

/// The player's tracks from the SDP: those of a codec `rill-rtp` reads.
async fn describe(
    sdp: &[u8],
    udp: Option<std::net::SocketAddr>,
) -> Res<(Vec<Track>, Vec<SetupTrack>)> {
    let sdp = Sdp::parse(sdp).map_err(err("SDP"))?;
    let mut tracks = Vec::new();
    let mut setup = Vec::new();
    for (i, t) in sdp.tracks.iter().enumerate() {
        let config = if udp.is_some() {
            ReceiverConfig::default()
        } else {
            ReceiverConfig {
                reorder_window: 1,
                ..ReceiverConfig::default()
            }
        };
        let Ok(rx) = TrackReceiver::new(&t.params(i as u32), Some(t.payload_type), config) else {
            continue;
        };
        let (sockets, client_port) = match udp {
            Some(peer) => {
                let (rtp, rtcp, port) = udp_pair(peer).await?;
                (Some((rtp, rtcp)), Some((port, port + 1)))
            }
            None => (None, None),
        };
        setup.push(SetupTrack {
            control: t.control.clone(),
            lower: if udp.is_some() {
                Lower::Udp
            } else {
                Lower::Tcp
            },
            client_port,
        });
        tracks.push(Track {
            rx,
            channels: None,
            udp: sockets,
            ssrc: random_u32(i as u64 + 1),
            first_expected: None,
            first_received: None,
            gro: false,
        });
    }
    if tracks.is_empty() {
        return Err("SDP: no track of a codec the player reads".into());
    }
    Ok((tracks, setup))
}

/// Waits until the connection or a track's socket is readable.
async fn readable(conn: &Conn, tracks: &[Track]) {
    poll_fn(|cx| {
        let mut ready = conn.sock.poll_read_ready(cx).is_ready();
        for t in tracks {
            if let Some((rtp, rtcp)) = &t.udp {
                ready |= rtp.poll_recv_ready(cx).is_ready();
                ready |= rtcp.poll_recv_ready(cx).is_ready();
            }
        }
        if ready {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await
}

/// The frames of a track to the player.
fn count(frames: &mut Vec<Frame>, p: &mut Player, shared: &Shared) {
    let now = Instant::now();
    for f in frames.drain(..) {
        media::ts_frame(&f, p, shared, now);
    }
}

/// A player: DESCRIBE, SETUP, PLAY, then count until `end`.
pub async fn play(
    url: RtspUrl,
    p: &mut Player,
    shared: &Shared,
    end: Instant,
    read_buf: usize,
) -> Res<()> {
    let c = ClientSession::play(settings(&url), now_us()).map_err(err("RTSP"))?;
    let mut conn = connect(&url, c, read_buf).await?;
    let peer = conn.sock.peer_addr().map_err(err("connect"))?;
    let mut tracks: Vec<Track> = Vec::new();
    let mut frames = Vec::new();
    // Room for a GSO run read whole (UDP_GRO).
    let mut dgram = if url.udp {
        vec![0u8; 65_536].into_boxed_slice()
    } else {
        Box::default()
    };
    let mut rtcp = 0u64;
    let mut reports = 0u64;
    let mut next_report = Instant::now() + REPORT_EVERY;
    let r: Res<()> = async {
        loop {
            while let Some(ev) = conn.c.poll_event() {
                match ev {
                    ClientEvent::Described { sdp, .. } => {
                        let (t, setup) = describe(&sdp, url.udp.then_some(peer)).await?;
                        tracks = t;
                        for t in &mut tracks {
                            t.gro =
                                url.gro && t.udp.as_ref().is_some_and(|(rtp, _)| enable_gro(rtp));
                        }
                        conn.c.setup(setup).map_err(err("RTSP"))?;
                    }
                    ClientEvent::SetUp { track, transport } => {
                        let Some(t) = tracks.get_mut(track) else {
                            continue;
                        };
                        t.channels = transport
                            .interleaved
                            .or(Some(((track * 2) as u8, (track * 2 + 1) as u8)));
                        if let (Some((rtp, rtcp)), Some((sp, sp1))) =
                            (&t.udp, transport.server_port)
                        {
                            rtp.connect((peer.ip(), sp)).await.map_err(err("connect"))?;
                            rtcp.connect((peer.ip(), sp1))
                                .await
                                .map_err(err("connect"))?;
                        }
                    }
                    ClientEvent::Playing { rtp_info, .. } => {
                        p.connected = Some(Instant::now());
                        let n_tracks = tracks.len();
                        for (i, t) in tracks.iter_mut().enumerate() {
                            let url = conn.c.track_url(i);
                            t.first_expected = rtp_info
                                .iter()
                                .find(|r| Some(&r.url) == url.as_ref())
                                .or_else(|| (rtp_info.len() == n_tracks).then(|| &rtp_info[i]))
                                .and_then(|r| r.seq);
                        }
                    }
                    ClientEvent::Interleaved { channel, payload } => {
                        let Some(t) = tracks.iter_mut().find(|t| {
                            t.channels
                                .is_some_and(|(a, b)| a == channel || b == channel)
                        }) else {
                            continue;
                        };
                        if t.channels.is_some_and(|(a, _)| a == channel) {
                            t.rtp(payload, &mut frames);
                            count(&mut frames, p, shared);
                        } else {
                            rtcp += 1;
                            sender_report(&mut t.rx, &payload);
                        }
                    }
                    ev => failure(&ev)?,
                }
            }
            // Receiver reports, once playing.
            if p.connected.is_some() && Instant::now() >= next_report {
                next_report += REPORT_EVERY;
                for t in &mut tracks {
                    let Some(rr) = t.rx.receiver_report(t.ssrc, now_us()) else {
                        continue;
                    };
                    let mut b = Vec::with_capacity(64);
                    rill_rtp::write_rtcp(&[rr], &mut b);
                    match (&t.udp, t.channels) {
                        (Some((_, s)), _) => {
                            // Not connected yet, or refused: nothing to do.
                            let _ = s.try_send(&b);
                        }
                        (None, Some((_, ch))) => {
                            conn.c
                                .send_interleaved(ch, Bytes::from(b))
                                .map_err(err("RTSP"))?;
                        }
                        _ => continue,
                    }
                    reports += 1;
                }
            }
            conn.flush().await?;
            if Instant::now() >= end {
                return Ok(());
            }
            // Wake for the session's timer, a reorder deadline, a report, or
            // data.
            let mut wake = end.min(next_report);
            if let Some(t) = conn.c.poll_timeout() {
                wake = wake.min(instant(t));
            }
            for t in &tracks {
                if let Some(d) = t.rx.deadline() {
                    wake = wake.min(instant(d));
                }
            }
            let _ = tokio::time::timeout_at(wake.into(), readable(&conn, &tracks)).await;
            p.bytes += conn.drain()?;
            for t in &mut tracks {
                if let Some((sock, _)) = &t.udp {
                    loop {
                        let got = if t.gro {
                            recv_gro(sock, &mut dgram)
                        } else {
                            sock.try_recv(&mut dgram[..DATAGRAM]).map(|n| (n, 0))
                        };
                        match got {
                            Ok((n, seg)) => {
                                p.bytes += n as u64;
                                let seg = if seg == 0 { n.max(1) } else { seg };
                                for d in dgram[..n].chunks(seg) {
                                    // (The fields, not `Track::rtp`: the
                                    // socket is borrowed.)
                                    if t.first_received.is_none() && d.len() >= 4 {
                                        t.first_received = Some(u16::from_be_bytes([d[2], d[3]]));
                                    }
                                    let d = Bytes::copy_from_slice(d);
                                    let _ = t.rx.rtp(now_us(), d, &mut frames);
                                }
                            }
                            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                            // An ICMP refusal of a report: not fatal.
                            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {}
                            Err(e) => return Err(format!("recv: {e}")),
                        }
                    }
                }
                if let Some((_, sock)) = &t.udp {
                    // Sender reports; errors (an ICMP refusal of a report)
                    // end the round.
                    while let Ok(n) = sock.try_recv(&mut dgram[..DATAGRAM]) {
                        rtcp += 1;
                        sender_report(&mut t.rx, &dgram[..n]);
                    }
                }
                let now = now_us();
                if t.rx.deadline().is_some_and(|d| d <= now) {
                    let _ = t.rx.poll(now, &mut frames);
                }
                count(&mut frames, p, shared);
            }
            conn.service();
        }
    }
    .await;
    if r.is_ok() {
        // Goodbye; the answer is not waited for.
        conn.c.teardown();
        let _ = tokio::time::timeout(Duration::from_millis(200), conn.flush()).await;
    }
    let mut s = shared.rtsp.lock().unwrap();
    s.udp = url.udp;
    s.connections += p.connected.is_some() as u64;
    s.tracks += tracks.iter().filter(|t| t.channels.is_some()).count() as u64;
    s.rtcp += rtcp;
    s.reports_sent += reports;
    for t in &tracks {
        let d = t.rx.depacketizer().stats;
        let o = t.rx.reorder_stats();
        s.packets += d.packets;
        s.lost += d.lost;
        s.lost_at_start += t.lost_at_start();
        s.dropped_frames += d.dropped_frames;
        s.bad_packets += d.bad_packets + t.rx.ignored;
        s.reordered += o.reordered;
        s.late_or_duplicate += o.dropped;
    }
    r
}

/// A sender report for the track, if the compound has one.
fn sender_report(rx: &mut TrackReceiver, data: &[u8]) {
    let mut pk = Vec::new();
    if rill_rtp::parse_rtcp(data, &mut pk).is_ok() {
        for p in &pk {
            if let RtcpPacket::SenderReport(sr) = p {
                rx.sender_report(sr, now_us());
            }
        }
    }
}

/// What an RTSP publisher sent.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(default)]
pub struct SendCounters {
    /// RTP packets sent.
    pub packets: u64,
    /// Their payload bytes.
    pub octets: u64,
}

impl SendCounters {
    pub fn add(&mut self, o: &SendCounters) {
        self.packets += o.packets;
        self.octets += o.octets;
    }
}

/// One track of a publisher.
struct PubTrack {
    packetizer: Packetizer,
    stamp: Stamp,
    channel: u8,
    codec: u32,
}

/// A publisher: ANNOUNCE, SETUP (TCP interleaved), RECORD, then RTP.
pub struct Publisher {
    conn: Conn,
    video: Option<PubTrack>,
    audio: Option<PubTrack>,
    /// Interleaved RTP written since the last flush.
    out: Vec<u8>,
}

/// The SDP tracks and packetizers of an FLV file (H.264, AAC).
fn pub_tracks(file: &FlvFile) -> Res<(Vec<SdpTrack>, Option<PubTrack>, Option<PubTrack>)> {
    let mut sdp = Vec::new();
    let make = |codec: u32, config: Bytes, sdp: &mut Vec<SdpTrack>| -> Res<PubTrack> {
        let i = sdp.len();
        let t = SdpTrack::from_config(codec, Some(&config), i).map_err(err("SDP"))?;
        let packetizer =
            Packetizer::new(codec, Some(&config), DEFAULT_MAX_PAYLOAD).map_err(err("RTP"))?;
        let stamp = Stamp::new(
            random_u32(i as u64 + 11),
            t.payload_type,
            random_u32(i as u64 + 23) as u16,
            random_u32(i as u64 + 37),
        );
        sdp.push(t);
        Ok(PubTrack {
            packetizer,
            stamp,
            channel: (i * 2) as u8,
            codec,
        })
    };
    let mut video = None;
    let mut audio = None;
    if file.has_video {
        let cfg = file
            .video_config
            .as_ref()
            .filter(|c| sei::avc_config_nal_len(c).is_some())
            .ok_or("RTSP publish: the file's video is not H.264 with its sequence header")?;
        video = Some(make(RILL_CODEC_H264, cfg.slice(5..), &mut sdp)?);
    }
    if file.has_audio {
        let format = file
            .frames
            .iter()
            .find(|t| t.kind == 8)
            .and_then(|t| t.body.first())
            .map_or(0, |b| b >> 4);
        match (format, &file.audio_config) {
            (10, Some(c)) if c.len() > 2 => {
                audio = Some(make(RILL_CODEC_AAC, c.slice(2..), &mut sdp)?);
            }
            _ => {
                return Err(
                    "RTSP publish: the file's audio is not AAC with its sequence header".into(),
                )
            }
        }
    }
    Ok((sdp, video, audio))
}

impl Publisher {
    /// Connects and starts recording.
    pub async fn open(url: &RtspUrl, file: &FlvFile) -> Res<Publisher> {
        let (sdp_tracks, video, audio) = pub_tracks(file)?;
        let host = url.addr.rsplit_once(':').map_or("0.0.0.0", |(h, _)| h);
        let setup = sdp_tracks
            .iter()
            .map(|t| SetupTrack {
                control: t.control.clone(),
                lower: Lower::Tcp,
                client_port: None,
            })
            .collect();
        let sdp = Sdp {
            name: "rill-loadgen".into(),
            control: Some("*".into()),
            tracks: sdp_tracks,
        }
        .write(host.trim_start_matches('[').trim_end_matches(']'));
        let c = ClientSession::publish(settings(url), sdp, setup, now_us())
            .map_err(err("RTSP publish"))?;
        let mut conn = connect(url, c, 16 * 1024).await?;
        let give_up = Instant::now() + Duration::from_secs(10);
        'recording: loop {
            while let Some(ev) = conn.c.poll_event() {
                match ev {
                    ClientEvent::Recording => break 'recording,
                    ev => failure(&ev)?,
                }
            }
            conn.flush().await?;
            match tokio::time::timeout_at(give_up.into(), conn.sock.readable()).await {
                Ok(r) => r.map_err(err("read"))?,
                Err(_) => return Err("RTSP publish: no answer".into()),
            }
            conn.drain()?;
        }
        Ok(Publisher {
            conn,
            video,
            audio,
            out: Vec::with_capacity(256 * 1024),
        })
    }

    /// Packetizes one FLV tag (type 8 or 9; config tags update the track).
    pub fn queue(&mut self, kind: u8, ts_ms: u64, body: &[u8]) -> Res<()> {
        let us = ts_ms as i64 * 1000;
        let (t, frame) = match (kind, &mut self.video, &mut self.audio) {
            (9, Some(t), _) if body.len() >= 5 && body[0] & 0x0f == 7 => {
                let cts = i32::from_be_bytes([body[2], body[3], body[4], 0]) >> 8;
                let flags = match body[1] {
                    0 => RILL_FRAME_CONFIG,
                    1 if sei::is_video_key(body) => RILL_FRAME_KEY,
                    1 => 0,
                    _ => return Ok(()),
                };
                let pts = us + i64::from(cts) * 1000;
                (t, (flags, pts, Bytes::copy_from_slice(&body[5..])))
            }
            (8, _, Some(t)) if body.len() >= 2 && body[0] >> 4 == 10 => {
                let flags = if body[1] == 0 { RILL_FRAME_CONFIG } else { 0 };
                (t, (flags, us, Bytes::copy_from_slice(&body[2..])))
            }
            _ => return Ok(()),
        };
        let (flags, pts, payload) = frame;
        let f = Frame {
            track: u32::from(t.channel / 2),
            codec: t.codec,
            flags,
            pts,
            dts: us,
            payload,
        };
        let packets = t.packetizer.packetize(&f).map_err(err("RTP"))?;
        for i in 0..packets.len() {
            let len = 12 + packets.payload_ref(i).len();
            let h = rill_rtsp::interleaved_header(t.channel, len).ok_or("RTP packet too large")?;
            self.out.extend_from_slice(&h);
            t.stamp.write(&packets, i, &mut self.out);
        }
        Ok(())
    }

    /// Writes what the session queued, then the RTP.
    pub async fn flush(&mut self) -> Res<()> {
        self.conn.flush().await?;
        if !self.out.is_empty() {
            self.conn
                .sock
                .write_all(&self.out)
                .await
                .map_err(err("write"))?;
            self.out.clear();
        }
        Ok(())
    }

    /// The socket has data.
    pub async fn readable(&self) -> std::io::Result<()> {
        self.conn.sock.readable().await
    }

    /// Takes what the server sent (answers to keep-alives, RTCP).
    pub fn drain(&mut self) -> Res<()> {
        self.conn.drain()?;
        self.service()
    }

    /// Runs the session's timer (keep-alives) when due; a failure of the
    /// session is an error.
    pub fn service(&mut self) -> Res<()> {
        self.conn.service();
        while let Some(ev) = self.conn.c.poll_event() {
            failure(&ev)?;
        }
        Ok(())
    }

    /// When the session's timer is next due.
    pub fn timer(&self) -> Instant {
        self.conn
            .c
            .poll_timeout()
            .map_or(Instant::now() + Duration::from_secs(3600), instant)
    }

    /// Ends the session (TEARDOWN) and returns the counters.
    pub async fn close(&mut self) -> SendCounters {
        self.conn.c.teardown();
        let _ = tokio::time::timeout(Duration::from_millis(500), self.flush()).await;
        let mut s = SendCounters::default();
        for t in [&self.video, &self.audio].into_iter().flatten() {
            s.packets += t.stamp.packets;
            s.octets += t.stamp.octets;
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream as StdTcp, UdpSocket as StdUdp};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};

    use clap::Parser;
    use rill_rtsp::{Event, Limits, Mode, ServerSession, Settings, SetupAnswer, TrackStart};

    use super::*;
    use crate::media::tests::avcc;

    #[test]
    fn urls() {
        let u = RtspUrl::parse("rtsp://127.0.0.1:8554/live/x", false).unwrap();
        assert_eq!(u.addr, "127.0.0.1:8554");
        assert_eq!(u.url, "rtsp://127.0.0.1:8554/live/x");
        assert!(!u.udp);
        // Default port, credentials and the server's query kept; ours
        // taken off.
        let u = RtspUrl::parse("rtsp://bob:pw@cam/live/x?token=1&transport=udp", false).unwrap();
        assert_eq!(u.addr, "cam:554");
        assert_eq!(u.url, "rtsp://bob:pw@cam/live/x?token=1");
        assert!(u.udp);
        let u = RtspUrl::parse("rtsp://[::1]:8554/live/x?transport=tcp", true).unwrap();
        assert_eq!((u.addr.as_str(), u.udp), ("[::1]:8554", false));
        assert_eq!(u.url, "rtsp://[::1]:8554/live/x");
        assert_eq!(
            RtspUrl::parse("rtsp://[::1]/live/x", false).unwrap().addr,
            "[::1]:554"
        );
        // Stream i of several.
        let u = RtspUrl::parse("rtsp://h:1/live/x?token=1", true).unwrap();
        let n = u.nth(2);
        assert_eq!(n.url, "rtsp://h:1/live/x-2?token=1");
        assert!(n.udp);
        for bad in [
            "rtmp://h/live/x",
            "rtsp://h:1",
            "rtsp://h:1/",
            "rtsp://:1/live/x",
            "rtsp://h:0/live/x",
            "rtsp://h:99999/live/x",
            "rtsp://h/live/x?transport=http",
        ] {
            assert!(RtspUrl::parse(bad, false).is_err(), "{bad}");
        }
        assert!(RtspUrl::asks_udp("rtsp://h/x?a=b&transport=udp"));
        assert!(!RtspUrl::asks_udp("rtsp://h/x?transport=tcp"));
        assert!(!RtspUrl::asks_udp("rtsp://h/transport=udp"));
        // The proto a URL implies, and the URL a proto makes.
        use crate::{PlayUrl, Proto};
        assert_eq!(Proto::of_url("rtsp://h:8554/live/x"), Proto::Rtsp);
        assert_eq!(
            Proto::of_url("rtsp://h:8554/live/x?transport=udp"),
            Proto::RtspUdp
        );
        assert_eq!(Proto::Rtsp.name(), "rtsp");
        assert_eq!(Proto::RtspUdp.name(), "rtsp-udp");
        let PlayUrl::Rtsp(u) = PlayUrl::parse("rtsp://h:1/live/x", Proto::RtspUdp)
            .unwrap()
            .nth(1, 2)
        else {
            panic!("not RTSP");
        };
        assert_eq!((u.url.as_str(), u.udp), ("rtsp://h:1/live/x-1", true));
        assert!(crate::publish::Target::parse("rtsp://h:1/live/x").is_ok());
        assert!(crate::publish::Target::parse("rtsp://h:1/live/x?transport=udp").is_err());
    }

    /// What the test server does with its clients.
    #[derive(Clone, Copy, PartialEq)]
    enum Role {
        /// Plays a live stream (stamped H.264 at 25 fps in three packets a
        /// frame, AAC every 20 ms) to every client of `live/x`; over UDP
        /// the last two packets of every 10th video frame are swapped.
        Serve,
        /// Takes publishers of `live/x` and depacketizes what they send.
        Receive,
    }

    /// What the test server saw.
    #[derive(Default, Debug)]
    struct Seen {
        paths: Vec<String>,
        setups: Vec<(Mode, Lower)>,
        refused: usize,
        /// Sessions ended by a TEARDOWN or the connection's end.
        ended: usize,
        /// ANNOUNCE's SDP tracks (codecs).
        announced: Vec<u32>,
        video: u64,
        keys: u64,
        stamps: u64,
        audio: u64,
        rtcp: u64,
        lost: u64,
    }

    struct TestServer {
        port: u16,
        stop: Arc<AtomicBool>,
        seen: Arc<Mutex<Seen>>,
        thread: std::thread::JoinHandle<()>,
    }

    impl TestServer {
        fn start(role: Role) -> TestServer {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            l.set_nonblocking(true).unwrap();
            let port = l.local_addr().unwrap().port();
            let stop = Arc::new(AtomicBool::new(false));
            let seen = Arc::new(Mutex::new(Seen::default()));
            let (st, se) = (stop.clone(), seen.clone());
            let thread = std::thread::spawn(move || {
                let mut conns = Vec::new();
                while !st.load(Ordering::Relaxed) {
                    match l.accept() {
                        Ok((s, _)) => {
                            let (st, se) = (st.clone(), se.clone());
                            conns.push(std::thread::spawn(move || serve(s, role, &se, &st)));
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(5)),
                    }
                }
                for c in conns {
                    c.join().unwrap();
                }
            });
            TestServer {
                port,
                stop,
                seen,
                thread,
            }
        }

        fn finish(self) -> Seen {
            self.stop.store(true, Ordering::Relaxed);
            self.thread.join().unwrap();
            Arc::try_unwrap(self.seen).unwrap().into_inner().unwrap()
        }
    }

    /// One track the server plays.
    struct Out {
        packetizer: Packetizer,
        stamp: Stamp,
        channel: Option<u8>,
        udp_to: Option<std::net::SocketAddr>,
    }

    /// A stamped video frame of three RTP packets (the stamp, then a
    /// slice in two FU-A fragments).
    fn video_frame(seq: u32, key: bool) -> Bytes {
        let mut f = (sei::NAL_LEN as u32).to_be_bytes().to_vec();
        f.extend_from_slice(&sei::nal(seq, sei::wall_us()));
        f.extend_from_slice(&2000u32.to_be_bytes());
        f.push(if key { 0x65 } else { 0x41 });
        f.extend(std::iter::repeat_n(0x5a, 1999));
        Bytes::from(f)
    }

    fn serve(mut s: StdTcp, role: Role, seen: &Mutex<Seen>, stop: &AtomicBool) {
        s.set_read_timeout(Some(Duration::from_millis(2))).unwrap();
        s.set_nodelay(true).unwrap();
        let peer = s.peer_addr().unwrap();
        let udp = StdUdp::bind("127.0.0.1:0").unwrap();
        let udp_port = udp.local_addr().unwrap().port();
        let t0 = Instant::now();
        let now = || t0.elapsed().as_micros() as u64;
        let mut sess = ServerSession::new(Limits::default(), Settings::default(), 0);
        let aac_config = Bytes::from_static(&[0x12, 0x10]);
        let sdp_tracks = vec![
            SdpTrack::from_config(RILL_CODEC_H264, Some(&avcc()), 0).unwrap(),
            SdpTrack::from_config(RILL_CODEC_AAC, Some(&aac_config), 1).unwrap(),
        ];
        let mut outs: Vec<Out> = sdp_tracks
            .iter()
            .enumerate()
            .map(|(i, t)| Out {
                packetizer: Packetizer::new(t.codec, t.config.as_deref(), 1200).unwrap(),
                stamp: Stamp::new(0x1000 + i as u32, t.payload_type, 65_000, 12_345),
                channel: None,
                udp_to: None,
            })
            .collect();
        let sdp = Sdp {
            name: "test".into(),
            control: Some("*".into()),
            tracks: sdp_tracks,
        }
        .write("127.0.0.1");
        let mut receivers: Vec<TrackReceiver> = Vec::new();
        let mut playing: Option<Instant> = None;
        let mut frame_no = 0u32;
        let mut buf = [0u8; 16 * 1024];
        let mut frames = Vec::new();
        'conn: while !stop.load(Ordering::Relaxed) {
            match s.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    if sess.feed(now(), &buf[..n]).is_err() {
                        break;
                    }
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => break,
            }
            while let Some(ev) = sess.poll_event() {
                let mut seen = seen.lock().unwrap();
                match ev {
                    Event::Describe { request, path, .. } => {
                        seen.paths.push(path.clone());
                        if role == Role::Serve && path == "live/x" {
                            sess.answer_describe(request, &sdp).unwrap();
                        } else {
                            seen.refused += 1;
                            sess.reject(request, 404).unwrap();
                        }
                    }
                    Event::Announce {
                        request, path, sdp, ..
                    } => {
                        seen.paths.push(path.clone());
                        let parsed = Sdp::parse(&sdp).unwrap();
                        seen.announced = parsed.tracks.iter().map(|t| t.codec).collect();
                        receivers = parsed
                            .tracks
                            .iter()
                            .enumerate()
                            .map(|(i, t)| {
                                let c = ReceiverConfig {
                                    reorder_window: 1,
                                    ..ReceiverConfig::default()
                                };
                                TrackReceiver::new(&t.params(i as u32), Some(t.payload_type), c)
                                    .unwrap()
                            })
                            .collect();
                        if role == Role::Receive && path == "live/x" {
                            sess.accept_announce(request).unwrap();
                        } else {
                            seen.refused += 1;
                            sess.reject(request, 403).unwrap();
                        }
                    }
                    Event::Setup {
                        request,
                        track,
                        mode,
                        transport,
                        ..
                    } => {
                        seen.setups.push((mode, transport.lower));
                        let server_port = match (transport.lower, transport.client_port) {
                            (Lower::Udp, Some((p, _))) => {
                                if let Some(o) = outs.get_mut(track) {
                                    o.udp_to = Some((peer.ip(), p).into());
                                }
                                Some((udp_port, udp_port + 1))
                            }
                            _ => {
                                if let Some(o) = outs.get_mut(track) {
                                    o.channel = transport.interleaved.map(|c| c.0);
                                }
                                None
                            }
                        };
                        sess.accept_setup(
                            request,
                            SetupAnswer {
                                server_port,
                                ssrc: None,
                            },
                        )
                        .unwrap();
                    }
                    Event::Play {
                        request,
                        tracks,
                        query,
                        ..
                    } => {
                        // `?early=1`: RTP-Info says two packets a track
                        // before the first sent.
                        let early = if query.is_some_and(|q| q.contains("early=1")) {
                            2
                        } else {
                            0
                        };
                        let starts: Vec<TrackStart> = tracks
                            .iter()
                            .map(|&t| TrackStart {
                                track: t,
                                seq: outs[t].stamp.seq.wrapping_sub(early),
                                rtptime: outs[t].stamp.ts_offset,
                            })
                            .collect();
                        sess.accept_play(request, None, &starts).unwrap();
                        playing = Some(Instant::now());
                    }
                    Event::Record { request, .. } => sess.accept_record(request).unwrap(),
                    Event::Interleaved {
                        track: Some(t),
                        rtcp,
                        payload,
                        ..
                    } => {
                        if rtcp {
                            seen.rtcp += 1;
                        } else if let Some(r) = receivers.get_mut(t) {
                            let _ = r.rtp(now(), payload, &mut frames);
                            for f in frames.drain(..) {
                                if f.is_config() {
                                    continue;
                                }
                                if f.codec == RILL_CODEC_H264 {
                                    seen.video += 1;
                                    seen.keys += f.is_key() as u64;
                                    seen.stamps += sei::find_avcc(&f.payload, 4).is_some() as u64;
                                } else {
                                    seen.audio += 1;
                                }
                            }
                        }
                    }
                    Event::SessionEnded { .. } => seen.ended += 1,
                    _ => {}
                }
            }
            // The source: a video frame every 40 ms, AAC every 20 ms.
            while let Some(start) = playing {
                let t = u64::from(frame_no) * 40_000;
                if t > start.elapsed().as_micros() as u64 {
                    break;
                }
                let key = frame_no.is_multiple_of(25);
                let mut media = vec![(
                    0,
                    Frame {
                        track: 0,
                        codec: RILL_CODEC_H264,
                        flags: if key { RILL_FRAME_KEY } else { 0 },
                        pts: t as i64,
                        dts: t as i64,
                        payload: video_frame(frame_no, key),
                    },
                )];
                for k in 0..2 {
                    media.push((
                        1,
                        Frame {
                            track: 1,
                            codec: RILL_CODEC_AAC,
                            flags: 0,
                            pts: (t + k * 20_000) as i64,
                            dts: (t + k * 20_000) as i64,
                            payload: Bytes::from_static(&[0x21, 0x10, 4, 5]),
                        },
                    ));
                }
                for (i, f) in media {
                    let o = &mut outs[i];
                    let pk = o.packetizer.packetize(&f).unwrap();
                    let mut dgrams: Vec<Vec<u8>> = (0..pk.len())
                        .map(|j| {
                            let mut d = Vec::new();
                            o.stamp.write(&pk, j, &mut d);
                            d
                        })
                        .collect();
                    if let Some(to) = o.udp_to {
                        if i == 0 && frame_no % 10 == 3 && dgrams.len() >= 3 {
                            dgrams.swap(1, 2);
                        }
                        for d in &dgrams {
                            let _ = udp.send_to(d, to);
                        }
                    } else if let Some(ch) = o.channel {
                        for d in dgrams {
                            sess.send_interleaved(ch, Bytes::from(d)).unwrap();
                        }
                    }
                }
                frame_no += 1;
            }
            while let Some(b) = sess.poll_transmit() {
                if s.write_all(&b).is_err() {
                    break 'conn;
                }
            }
        }
        sess.close();
        let mut seen = seen.lock().unwrap();
        while let Some(ev) = sess.poll_event() {
            if let Event::SessionEnded { .. } = ev {
                seen.ended += 1;
            }
        }
        for r in &receivers {
            seen.lost += r.depacketizer().stats.lost;
        }
    }

    fn flv_path(tag: &str) -> (std::path::PathBuf, std::path::PathBuf) {
        let dir =
            std::env::temp_dir().join(format!("rill-loadgen-rtsp-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("s.flv");
        // The file only tells the frame rate (25 fps, as the server).
        std::fs::write(&path, crate::tests::synthetic_flv()).unwrap();
        (dir, path)
    }

    fn run(
        url: &str,
        players: usize,
        duration: &str,
        file: Option<&std::path::Path>,
    ) -> crate::RunResult {
        let mut args = vec![
            "run".to_string(),
            "--play".into(),
            url.into(),
            "--players".into(),
            players.to_string(),
            "--duration".into(),
            duration.into(),
            "--warmup".into(),
            "0".into(),
            "--settle".into(),
            "0.2".into(),
            "--ramp-rate".into(),
            "50".into(),
            "--per-player".into(),
        ];
        if let Some(f) = file {
            args.extend(["--file".into(), f.to_str().unwrap().into()]);
        }
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let r = rt
            .block_on(crate::run(crate::RunArgs::parse_from(args)))
            .unwrap();
        crate::print_result(&r);
        r
    }

    /// Players over TCP interleaved and over UDP against the test server,
    /// through `run` as the command line runs them: every one plays, keeps
    /// up and measures the latency from the stamps; over UDP the swapped
    /// packets are put back in order and nothing is lost.
    #[test]
    fn players_count_frames_from_a_server() {
        let srv = TestServer::start(Role::Serve);
        let (dir, path) = flv_path("play");
        for (url, proto) in [
            (format!("rtsp://127.0.0.1:{}/live/x", srv.port), "rtsp"),
            (
                format!("rtsp://127.0.0.1:{}/live/x?transport=udp", srv.port),
                "rtsp-udp",
            ),
        ] {
            let r = run(&url, 3, "1.5", Some(&path));
            assert_eq!(r.proto, proto);
            assert!(r.errors.is_empty(), "{r:?}");
            assert_eq!((r.connected, r.got_picture, r.kept_up), (3, 3, 3), "{r:?}");
            assert!(r.ttff_ms.p99.unwrap() < 1000.0, "{r:?}");
            assert!(r.latency_ms.samples > 50, "{r:?}");
            assert!(r.latency_ms.p99.unwrap() < 500.0, "{r:?}");
            assert!(r.video_fps_per_player > 15.0, "{r:?}");
            assert!(r.per_player.iter().all(|p| p.audio_frames > 50), "{r:?}");
            let s = r.rtsp.as_ref().unwrap();
            assert_eq!((s.connections, s.tracks), (3, 6), "{s:?}");
            assert_eq!(s.udp, proto == "rtsp-udp");
            assert!(s.packets > 300, "{s:?}");
            assert_eq!(
                (s.lost, s.bad_packets, s.dropped_frames),
                (0, 0, 0),
                "{s:?}"
            );
            if s.udp {
                assert!(s.reordered >= 3, "{s:?}");
            } else {
                assert_eq!(s.reordered, 0, "{s:?}");
            }
        }
        // Packets the server never sent, from RTP-Info's sequence number on.
        let url = format!("rtsp://127.0.0.1:{}/live/x?early=1", srv.port);
        let r = run(&url, 1, "0.5", Some(&path));
        let s = r.rtsp.as_ref().unwrap();
        assert_eq!((s.lost, s.lost_at_start), (0, 4), "{s:?}");
        // A stream the server does not have: the refusal is the error.
        let r = run(
            &format!("rtsp://127.0.0.1:{}/live/nope", srv.port),
            2,
            "0.2",
            None,
        );
        assert_eq!(r.connected, 0);
        assert_eq!(r.errors.get("RTSP DESCRIBE: 404"), Some(&2), "{r:?}");
        std::thread::sleep(Duration::from_millis(100));
        let seen = srv.finish();
        assert_eq!(seen.refused, 2);
        assert_eq!(seen.paths.iter().filter(|p| *p == "live/x").count(), 7);
        let udp = seen.setups.iter().filter(|s| s.1 == Lower::Udp).count();
        assert_eq!((seen.setups.len(), udp), (14, 6), "{seen:?}");
        // Receiver reports come every 5 s: none in these short runs.
        assert_eq!(seen.ended, 7, "players say goodbye: {seen:?}");
        std::fs::remove_dir_all(&dir).ok();
    }

    /// The publisher against the test server: ANNOUNCE of H.264 and AAC,
    /// SETUP over TCP, RECORD; the server depacketizes the stamped H.264
    /// and the AAC of the file, in real time, without a loss.
    #[test]
    fn publisher_reaches_a_server() {
        let srv = TestServer::start(Role::Receive);
        let file = FlvFile::parse(Bytes::from(crate::tests::synthetic_flv())).unwrap();
        let url = format!("rtsp://127.0.0.1:{}/live/x", srv.port);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let st = rt.block_on(async {
            let target = crate::publish::Target::parse(&url).unwrap();
            let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
            let (tx, rx) = tokio::sync::oneshot::channel();
            let h = tokio::spawn(crate::publish::run(target, file.clone(), stop_rx, tx));
            rx.await.unwrap().unwrap();
            tokio::time::sleep(Duration::from_millis(1500)).await;
            stop_tx.send(true).unwrap();
            h.await.unwrap()
        });
        assert_eq!(st.error, None);
        assert!(st.frames > 60, "{st:?}");
        let s = st.rtsp.as_ref().unwrap();
        assert!(s.packets >= st.frames, "{s:?}");
        // Let the server see the TEARDOWN.
        std::thread::sleep(Duration::from_millis(100));
        // A path the server refuses: the refusal reaches `ready`.
        let url = format!("rtsp://127.0.0.1:{}/live/y", srv.port);
        let r = rt.block_on(async {
            let target = crate::publish::Target::parse(&url).unwrap();
            let (_stop_tx, stop_rx) = tokio::sync::watch::channel(false);
            let (tx, rx) = tokio::sync::oneshot::channel();
            tokio::spawn(crate::publish::run(target, file, stop_rx, tx));
            rx.await.unwrap()
        });
        assert_eq!(r, Err("RTSP ANNOUNCE: 403".into()));
        let seen = srv.finish();
        assert_eq!(seen.paths, ["live/x", "live/y"]);
        assert_eq!(seen.announced, [RILL_CODEC_H264, RILL_CODEC_AAC]);
        assert_eq!(
            seen.setups,
            [(Mode::Record, Lower::Tcp), (Mode::Record, Lower::Tcp)]
        );
        assert_eq!(seen.lost, 0, "{seen:?}");
        // 1.5 s of 25 fps: ~38 frames, a key frame every second, each one
        // stamped; AAC every 23 ms.
        assert!((30..=45).contains(&seen.video), "{seen:?}");
        assert_eq!(seen.stamps, seen.video, "{seen:?}");
        assert!(seen.keys >= 2, "{seen:?}");
        assert!(seen.audio >= 50, "{seen:?}");
        assert!(seen.ended >= 1, "{seen:?}");
    }
}
