//! RTSP for pulls and pushes, over the attempt's TCP connection: the
//! protocol is `rill-rtsp`'s client, RTP and SDP `rill-rtp`'s.
//!
//! - A pull plays: OPTIONS, DESCRIBE, SETUP (TCP interleaved) for each
//!   track of a codec `rill-rtp` depacketizes (H.264, H.265, AAC, Opus,
//!   G.711), PLAY. Each track's RTP goes through a [`TrackReceiver`]; the
//!   tracks line up on PLAY's RTP-Info (each track's `rtptime` is the same
//!   instant), else each starts at 0. Receiver reports go out every 5 s;
//!   keep-alives are the client's.
//! - A push publishes: the local subscription's configurations and first
//!   media frame make the SDP, then ANNOUNCE, SETUP (TCP interleaved,
//!   `mode=record`) for each track, RECORD; frames are packetized and sent
//!   interleaved, with a sender report per track every 5 s (one media
//!   clock for all, so the far end lines them up).

use std::collections::VecDeque;
use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

use bytes::Bytes;
use rill_abi::sdk::{Conn, FrameRef, Result, Subscriber};
use rill_abi::{rill_codec_kind, RILL_FRAME_CONFIG, RILL_TRACK_AUDIO, RILL_TRACK_VIDEO};
use rill_rtp::{
    clock, Frame, Packetizer, ReceiverConfig, RtcpPacket, Sdp, SdpTrack, Stamp, TrackReceiver,
    DEFAULT_MAX_PAYLOAD,
};
use rill_rtsp::{ClientEvent, ClientSession, ClientSettings, Lower, SetupTrack};

use crate::source::Url;

/// Receiver and sender reports, per track, this often (µs).
const REPORT_EVERY: u64 = 5_000_000;
/// Frames a push holds while the far end answers ANNOUNCE … RECORD.
const MAX_QUEUED: usize = 1024;
/// Host track ids looked at for a stream's declared tracks.
const MAX_TRACKS: u32 = 8;

/// A few random bits (SSRCs, sequence starts, timestamp offsets).
fn random_u32() -> u32 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u8(0);
    h.finish() as u32
}

fn settings(url: &Url, timeout: Duration) -> ClientSettings {
    ClientSettings {
        url: url.full(),
        user_agent: "Rill relay".into(),
        response_timeout: timeout.as_micros() as u64,
        ..ClientSettings::default()
    }
}

/// What an event means when it ends the attempt.
fn failure(ev: &ClientEvent) -> Option<String> {
    match ev {
        ClientEvent::Refused { method, status } => {
            Some(format!("RTSP {} refused: {status}", method.as_str()))
        }
        ClientEvent::TimedOut => Some("RTSP: no answer".into()),
        ClientEvent::Closed => Some("RTSP: the session ended".into()),
        _ => None,
    }
}

/// Writes what the client has queued.
fn flush(client: &mut ClientSession, conn: &Conn) -> Result<()> {
    while let Some(b) = client.poll_transmit() {
        conn.write(&b)?;
    }
    Ok(())
}

/// One played track.
struct PullTrack {
    rx: TrackReceiver,
    /// Interleaved channels (RTP, RTCP).
    channels: (u8, u8),
    /// PLAY's RTP-Info `rtptime`: the RTP time of the play's start.
    rtptime: Option<u32>,
    /// Its first packet came.
    started: bool,
}

/// What a pull's events brought.
#[derive(Default)]
pub struct Pulled {
    pub frames: Vec<Frame>,
    /// PLAY was answered.
    pub playing: bool,
    pub failure: Option<String>,
}

/// A pull's RTSP session.
pub struct RtspPull {
    client: ClientSession,
    /// The last RTP packet that did not depacketize, for a stall's reason.
    pub last_error: Option<String>,
    tracks: Vec<PullTrack>,
    ssrc: u32,
    next_report: u64,
}

impl RtspPull {
    pub fn new(url: &Url, timeout: Duration, now: u64) -> std::result::Result<RtspPull, String> {
        let client =
            ClientSession::play(settings(url, timeout), now).map_err(|e| format!("RTSP: {e}"))?;
        Ok(RtspPull {
            client,
            last_error: None,
            tracks: Vec::new(),
            ssrc: random_u32(),
            next_report: now + REPORT_EVERY,
        })
    }

    pub fn feed(&mut self, now: u64, data: &[u8]) -> std::result::Result<(), String> {
        self.client
            .feed(now, data)
            .map_err(|e| format!("RTSP: {e}"))
    }

    /// The client's deadlines and the receiver reports.
    pub fn timer(&mut self, now: u64) {
        if self.client.poll_timeout().is_some_and(|t| t <= now) {
            self.client.handle_timeout(now);
        }
        if now < self.next_report || self.tracks.is_empty() {
            return;
        }
        self.next_report = now + REPORT_EVERY;
        for t in &mut self.tracks {
            if let Some(rr) = t.rx.receiver_report(self.ssrc, now) {
                let mut b = Vec::with_capacity(64);
                rill_rtp::write_rtcp(&[rr], &mut b);
                let _ = self.client.send_interleaved(t.channels.1, Bytes::from(b));
            }
        }
    }

    /// Handles the client's events and writes what it has to send.
    pub fn pump(&mut self, now: u64, conn: &Conn, out: &mut Pulled) -> Result<()> {
        while let Some(ev) = self.client.poll_event() {
            match ev {
                ClientEvent::Described { sdp, .. } => {
                    if let Err(e) = self.described(&sdp) {
                        out.failure = Some(e);
                        break;
                    }
                }
                ClientEvent::SetUp { track, transport } => {
                    if let (Some(t), Some(ch)) = (self.tracks.get_mut(track), transport.interleaved)
                    {
                        t.channels = ch;
                    }
                }
                ClientEvent::Playing { rtp_info, .. } => {
                    out.playing = true;
                    let n = self.tracks.len();
                    for (i, t) in self.tracks.iter_mut().enumerate() {
                        let url = self.client.track_url(i);
                        t.rtptime = rtp_info
                            .iter()
                            .find(|r| Some(&r.url) == url.as_ref())
                            .or_else(|| (rtp_info.len() == n).then(|| &rtp_info[i]))
                            .and_then(|r| r.rtptime);
                    }
                }
                ClientEvent::Interleaved { channel, payload } => {
                    let Some(t) = self
                        .tracks
                        .iter_mut()
                        .find(|t| t.channels.0 == channel || t.channels.1 == channel)
                    else {
                        continue;
                    };
                    if channel == t.channels.0 {
                        if let Err(e) = t.rtp(now, payload, &mut out.frames) {
                            self.last_error = Some(e);
                        }
                    } else {
                        t.rtcp(now, &payload);
                    }
                }
                ClientEvent::Recording => {}
                ev => {
                    out.failure = failure(&ev);
                    break;
                }
            }
        }
        flush(&mut self.client, conn)
    }

    /// The tracks to set up: those of a codec the depacketizer reads.
    fn described(&mut self, sdp: &[u8]) -> std::result::Result<(), String> {
        let sdp = Sdp::parse(sdp).map_err(|e| format!("SDP: {e}"))?;
        let mut setup = Vec::new();
        for t in &sdp.tracks {
            let kind = rill_codec_kind(t.codec);
            if kind != RILL_TRACK_VIDEO && kind != RILL_TRACK_AUDIO {
                continue;
            }
            let i = setup.len();
            // Over TCP nothing is reordered.
            let cfg = ReceiverConfig {
                reorder_window: 1,
                ..ReceiverConfig::default()
            };
            let Ok(rx) = TrackReceiver::new(&t.params(i as u32), Some(t.payload_type), cfg) else {
                continue;
            };
            setup.push(SetupTrack {
                control: t.control.clone(),
                lower: Lower::Tcp,
                client_port: None,
            });
            self.tracks.push(PullTrack {
                rx,
                channels: ((i * 2) as u8, (i * 2 + 1) as u8),
                rtptime: None,
                started: false,
            });
        }
        if setup.is_empty() {
            return Err(
                "SDP: no track of a codec the relay reads (H.264, H.265, AAC, Opus, G.711)".into(),
            );
        }
        self.client.setup(setup).map_err(|e| format!("RTSP: {e}"))
    }

    /// TEARDOWN, for a polite end (written before the connection closes).
    pub fn teardown(&mut self, conn: &Conn) {
        self.client.teardown();
        let _ = flush(&mut self.client, conn);
    }
}

impl PullTrack {
    fn rtp(
        &mut self,
        now: u64,
        payload: Bytes,
        frames: &mut Vec<Frame>,
    ) -> std::result::Result<(), String> {
        if !self.started && payload.len() >= 12 {
            self.started = true;
            // The first packet's time after the play's start, so that every
            // track counts from the same instant.
            if let Some(start) = self.rtptime {
                let ts = u32::from_be_bytes([payload[4], payload[5], payload[6], payload[7]]);
                let d = self.rx.depacketizer_mut();
                let ticks = i64::from(ts.wrapping_sub(start) as i32);
                d.clock.base_us = clock::ticks_to_us(ticks, d.clock.rate());
            }
        }
        // A bad packet is dropped (counted by the receiver); the rest goes on.
        self.rx
            .rtp(now, payload, frames)
            .map_err(|e| format!("RTP: {e}"))
    }

    fn rtcp(&mut self, now: u64, data: &[u8]) {
        let mut pk = Vec::new();
        if rill_rtp::parse_rtcp(data, &mut pk).is_ok() {
            for p in &pk {
                if let RtcpPacket::SenderReport(sr) = p {
                    self.rx.sender_report(sr, now);
                }
            }
        }
    }
}

/// One pushed track.
struct PushTrack {
    host_track: u32,
    codec: u32,
    config: Option<Bytes>,
    packetizer: Option<Packetizer>,
    stamp: Stamp,
    /// Interleaved channels (RTP, RTCP).
    channel: u8,
    rtcp_channel: u8,
    clock_rate: u32,
}

/// A push's RTSP session: describing (learning the tracks), announcing,
/// then recording.
pub struct RtspPush {
    url: Url,
    timeout: Duration,
    client: Option<ClientSession>,
    tracks: Vec<PushTrack>,
    queued: VecDeque<FrameRef>,
    recording: bool,
    /// The media clock of the sender reports: a pts and the wall time
    /// (µs) it was sent at.
    clock_base: Option<(i64, i64)>,
    next_report: i64,
}

/// What a push's events brought.
#[derive(Default)]
pub struct Pushed {
    /// RECORD was answered: media flows.
    pub recording: bool,
    pub failure: Option<String>,
}

impl RtspPush {
    pub fn new(url: Url, timeout: Duration) -> RtspPush {
        RtspPush {
            url,
            timeout,
            client: None,
            tracks: Vec::new(),
            queued: VecDeque::new(),
            recording: false,
            clock_base: None,
            next_report: 0,
        }
    }

    pub fn recording(&self) -> bool {
        self.recording
    }

    pub fn feed(&mut self, now: u64, data: &[u8]) -> std::result::Result<(), String> {
        match self.client.as_mut() {
            Some(c) => c.feed(now, data).map_err(|e| format!("RTSP: {e}")),
            None => Ok(()),
        }
    }

    pub fn timer(&mut self, now: u64) {
        if let Some(c) = self.client.as_mut() {
            if c.poll_timeout().is_some_and(|t| t <= now) {
                c.handle_timeout(now);
            }
        }
    }

    /// Handles the client's events and writes what it has to send.
    pub fn pump(&mut self, conn: &Conn, out: &mut Pushed) -> Result<()> {
        let Some(c) = self.client.as_mut() else {
            return Ok(());
        };
        while let Some(ev) = c.poll_event() {
            match ev {
                ClientEvent::SetUp { track, transport } => {
                    if let (Some(t), Some((rtp, rtcp))) =
                        (self.tracks.get_mut(track), transport.interleaved)
                    {
                        (t.channel, t.rtcp_channel) = (rtp, rtcp);
                    }
                }
                ClientEvent::Recording => {
                    self.recording = true;
                    out.recording = true;
                }
                ClientEvent::Interleaved { .. } | ClientEvent::Described { .. } => {}
                ClientEvent::Playing { .. } => {}
                ev => {
                    out.failure = failure(&ev);
                    break;
                }
            }
        }
        flush(c, conn)
    }

    /// A frame of the local stream. Before RECORD: learns the tracks and,
    /// at the first media frame, announces them; queues. Then: sends.
    pub fn frame(
        &mut self,
        conn: &Conn,
        sub: &Subscriber,
        frame: &FrameRef,
        now: u64,
        wall: i64,
    ) -> std::result::Result<usize, String> {
        if self.recording {
            return self.send(conn, frame, wall).map_err(|e| e.to_string());
        }
        let info = frame.info();
        let kind = rill_codec_kind(info.codec);
        if kind != RILL_TRACK_VIDEO && kind != RILL_TRACK_AUDIO {
            return Ok(0);
        }
        if self.client.is_none() {
            let config = info.flags & RILL_FRAME_CONFIG != 0;
            let known = self.tracks.iter().position(|t| t.host_track == info.track);
            match (known, config) {
                (Some(i), true) => {
                    self.tracks[i].config = Some(Bytes::copy_from_slice(frame.data()));
                    return Ok(0);
                }
                (None, _) => self.tracks.push(PushTrack::new(
                    info.track,
                    info.codec,
                    config.then(|| Bytes::copy_from_slice(frame.data())),
                )),
                (Some(_), false) => {}
            }
            if config {
                return Ok(0);
            }
            self.announce(sub, now)?;
            flush_opt(&mut self.client, conn).map_err(|e| e.to_string())?;
        }
        if self.queued.len() >= MAX_QUEUED {
            self.queued.pop_front();
        }
        self.queued.push_back(frame.clone());
        Ok(0)
    }

    /// The first media frame: the stream's tracks are known (and its other
    /// declared tracks whose codecs need no configuration join); ANNOUNCE.
    fn announce(&mut self, sub: &Subscriber, now: u64) -> std::result::Result<(), String> {
        for id in 0..MAX_TRACKS {
            let Ok(ti) = sub.track_info(id) else { continue };
            let kind = rill_codec_kind(ti.codec);
            if self.tracks.iter().any(|t| t.host_track == id)
                || (kind != RILL_TRACK_VIDEO && kind != RILL_TRACK_AUDIO)
            {
                continue;
            }
            self.tracks.push(PushTrack::new(id, ti.codec, None));
        }
        let mut sdp_tracks = Vec::new();
        let mut kept = Vec::new();
        for mut t in std::mem::take(&mut self.tracks) {
            let i = kept.len();
            let Ok(st) = SdpTrack::from_config(t.codec, t.config.as_deref(), i) else {
                continue;
            };
            let Ok(p) = Packetizer::new(t.codec, t.config.as_deref(), DEFAULT_MAX_PAYLOAD) else {
                continue;
            };
            t.clock_rate = st.clock_rate;
            t.stamp.payload_type = st.payload_type;
            (t.channel, t.rtcp_channel) = ((i * 2) as u8, (i * 2 + 1) as u8);
            t.packetizer = Some(p);
            sdp_tracks.push(st);
            kept.push(t);
        }
        self.tracks = kept;
        if self.tracks.is_empty() {
            return Err("no track RTSP carries (H.264, H.265, AAC, Opus, G.711)".into());
        }
        let setup = sdp_tracks
            .iter()
            .map(|t| SetupTrack {
                control: t.control.clone(),
                lower: Lower::Tcp,
                client_port: None,
            })
            .collect();
        let sdp = Sdp {
            name: "Rill relay".into(),
            control: None,
            tracks: sdp_tracks,
        }
        .write("0.0.0.0");
        let c = ClientSession::publish(settings(&self.url, self.timeout), sdp, setup, now)
            .map_err(|e| format!("RTSP: {e}"))?;
        self.client = Some(c);
        Ok(())
    }

    /// RECORD was answered: the queued frames go.
    pub fn start(&mut self, conn: &Conn, wall: i64) -> Result<usize> {
        let mut n = 0;
        for f in std::mem::take(&mut self.queued) {
            n += self.send(conn, &f, wall)?;
        }
        Ok(n)
    }

    /// Packetizes and sends one frame; returns the bytes written.
    fn send(&mut self, conn: &Conn, frame: &FrameRef, wall: i64) -> Result<usize> {
        let info = frame.info();
        let Some(t) = self.tracks.iter_mut().find(|t| t.host_track == info.track) else {
            return Ok(0);
        };
        let Some(p) = t.packetizer.as_mut() else {
            return Ok(0);
        };
        let f = Frame::from(frame);
        let packets = match p.packetize(&f) {
            Ok(p) => p,
            // A frame RTP cannot carry (AAC before its configuration):
            // that frame only.
            Err(_) => return Ok(0),
        };
        if packets.is_empty() {
            return Ok(0);
        }
        if f.flags & RILL_FRAME_CONFIG == 0 && self.clock_base.is_none() {
            self.clock_base = Some((f.pts, wall));
            self.next_report = wall;
        }
        let mut buf = Vec::with_capacity(packets.len() * 16 + f.payload.len() + 64);
        for i in 0..packets.len() {
            let payload = packets.payload_ref(i);
            let len = 12 + payload.len();
            if len > usize::from(u16::MAX) {
                continue;
            }
            buf.extend_from_slice(&[b'$', t.channel, (len >> 8) as u8, len as u8]);
            buf.extend_from_slice(&t.stamp.header(&packets, i));
            buf.extend_from_slice(payload);
        }
        conn.write(&buf)?;
        let mut n = buf.len();
        if wall >= self.next_report {
            n += self.sender_reports(conn, wall)?;
        }
        Ok(n)
    }

    /// A sender report per track: NTP now and the RTP time of now on the
    /// push's one media clock.
    fn sender_reports(&mut self, conn: &Conn, wall: i64) -> Result<usize> {
        let Some((start, at)) = self.clock_base else {
            return Ok(0);
        };
        self.next_report = wall + REPORT_EVERY as i64;
        let ntp = clock::unix_us_to_ntp(wall);
        let mut out = Vec::new();
        for t in &self.tracks {
            if t.clock_rate == 0 {
                continue;
            }
            let rtp = clock::rtp_timestamp(start + (wall - at), t.clock_rate, t.stamp.ts_offset);
            let sr = RtcpPacket::SenderReport(t.stamp.sender_report(ntp, rtp));
            let mut b = Vec::with_capacity(64);
            rill_rtp::write_rtcp(std::slice::from_ref(&sr), &mut b);
            rill_rtsp::write_interleaved(&mut out, t.rtcp_channel, &b);
        }
        conn.write(&out)?;
        Ok(out.len())
    }

    /// TEARDOWN, for a polite end.
    pub fn teardown(&mut self, conn: &Conn) {
        if let Some(c) = self.client.as_mut() {
            c.teardown();
            let _ = flush(c, conn);
        }
    }
}

fn flush_opt(client: &mut Option<ClientSession>, conn: &Conn) -> Result<()> {
    match client {
        Some(c) => flush(c, conn),
        None => Ok(()),
    }
}

impl PushTrack {
    fn new(host_track: u32, codec: u32, config: Option<Bytes>) -> PushTrack {
        PushTrack {
            host_track,
            codec,
            config,
            packetizer: None,
            stamp: Stamp::new(random_u32(), 0, random_u32() as u16, random_u32()),
            channel: 0,
            rtcp_channel: 1,
            clock_rate: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rill_abi::RILL_CODEC_PCMA;
    use rill_rtp::{RtpHeader, TrackParams};

    fn track(rtptime: Option<u32>) -> PullTrack {
        let params = TrackParams {
            track: 0,
            codec: RILL_CODEC_PCMA,
            clock_rate: 8000,
            config: None,
            aac: Default::default(),
        };
        PullTrack {
            rx: TrackReceiver::new(&params, Some(8), ReceiverConfig::default()).unwrap(),
            channels: (0, 1),
            rtptime,
            started: false,
        }
    }

    fn packet(seq: u16, timestamp: u32) -> Bytes {
        let h = RtpHeader {
            payload_type: 8,
            seq,
            timestamp,
            ssrc: 7,
            ..Default::default()
        };
        let mut b = h.to_bytes().to_vec();
        b.extend_from_slice(&[0xD5; 160]);
        Bytes::from(b)
    }

    fn first_pts(t: &mut PullTrack, ts: u32) -> i64 {
        let mut frames = Vec::new();
        t.rtp(0, packet(1, ts), &mut frames).unwrap();
        t.rtp(0, packet(2, ts.wrapping_add(160)), &mut frames)
            .unwrap();
        frames.iter().find(|f| !f.is_config()).unwrap().pts
    }

    #[test]
    fn tracks_count_from_the_play_start_of_rtp_info() {
        // 100 ms after the play's start, across the 32-bit wrap.
        assert_eq!(first_pts(&mut track(Some(u32::MAX - 99)), 700), 100_000);
        assert_eq!(first_pts(&mut track(Some(50)), 50), 0);
        // Before the start (a server that sends a little earlier media).
        assert_eq!(first_pts(&mut track(Some(850)), 50), -100_000);
        // Without RTP-Info, each track starts at 0.
        assert_eq!(first_pts(&mut track(None), 123_456), 0);
    }
}
