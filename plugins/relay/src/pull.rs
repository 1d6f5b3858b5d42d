//! One attempt of a pull: it plays the source and publishes what arrives
//! to the local stream.
//!
//! - RTMP (as a player) and HTTP-FLV (`rill-http`, `rill-flv`'s reader):
//!   FLV frames, published through [`FlvPublisher`].
//! - RTSP ([`crate::rtsp`]): depacketized RTP; SRT ([`crate::srt`]): TS
//!   demuxed by `rill-ts`; HLS ([`crate::hls`]): TS or fMP4 segments read
//!   by `rill-hls`. All give frames with the source's track ids, published
//!   through [`Tracks`].
//!
//! RTMP, HTTP-FLV and RTSP run on a TCP connection the host opened; SRT on
//! a socket-less session that binds its own UDP socket; HLS on a
//! socket-less session that opens a connection per request.

use std::time::Duration;

use bytes::Bytes;
use rill_abi::sdk::{Conn, Error, Host, Publisher, Result, TrackInfo};
use rill_abi::{rill_codec_kind, rill_log, RILL_CODEC_METADATA, RILL_END_ERROR};
use rill_flv::publish::{FlvPublisher, MetaLimits};
use rill_flv::reader::Reader as FlvReader;
use rill_flv::Frame;
use rill_http::{Event as HttpEvent, Request, ResponseReader};
use rill_rtmp::{ClientEvent, ClientSession, ClientSettings, Connect, Limits};
use rill_ts::{Demuxer, Event as TsEvent};

use crate::hls::HlsPull;
use crate::rtsp::{Pulled, RtspPull};
use crate::source::{Scheme, Url};
use crate::srt::Link;
use crate::{Relay, TIMER_SESSION};

/// Tracks one pull may declare.
const MAX_TRACKS: usize = 8;

pub struct Pull {
    pub job: u64,
    url: Url,
    stream: String,
    /// Pulled from the cluster's owner node.
    cluster: bool,
    proto: Option<Proto>,
    pub out: Option<Out>,
    /// Monotonic µs of the last media (RTSP, SRT) or byte (RTMP, HTTP)
    /// received.
    last_rx: i64,
    /// Why this attempt ends, when the relay decided it.
    pub why: String,
}

enum Proto {
    Rtmp(Box<ClientSession>),
    Http(Box<Http>),
    Rtsp(Box<RtspPull>),
    Srt(Box<SrtPull>),
    Hls(Box<HlsPull>),
}

struct Http {
    reader: ResponseReader,
    flv: Option<FlvReader>,
}

struct SrtPull {
    link: Link,
    demux: Demuxer,
    /// The last demuxing error, for a stall's reason.
    last_error: Option<String>,
}

/// Where a pull's frames go.
pub enum Out {
    /// FLV frames (RTMP, HTTP-FLV), with `onMetaData`.
    Flv(FlvPublisher),
    /// Frames with the source's track ids (RTSP, SRT).
    Tracks(Tracks),
}

/// A host publisher fed with frames that carry the source's track ids: a
/// host track is declared at the first frame of each source track and
/// codec (a codec change declares a new one), as RTMP ingest does.
pub struct Tracks {
    publisher: Publisher,
    /// (source track, codec, host track).
    map: Vec<(u32, u32, u32)>,
    warned: bool,
}

impl Tracks {
    fn write(&mut self, host: &Host, stream: &str, frames: Vec<rill_ts::Frame>) {
        let mut ready = Vec::with_capacity(frames.len());
        let mut failed = None;
        for mut f in frames {
            match self.track(f.track, f.codec) {
                Ok(id) => {
                    f.track = id;
                    ready.push(f);
                }
                Err(e) => failed = Some(e),
            }
        }
        if let Err(e) = rill_rtp::publish::write_frames(host, &self.publisher, ready) {
            failed = Some(e);
        }
        if let Some(e) = failed.filter(|_| !self.warned) {
            self.warned = true;
            rill_log!(host, Warn, "relay: frames of {stream} not published: {e}");
        }
    }

    fn track(&mut self, source: u32, codec: u32) -> Result<u32> {
        if let Some(t) = self.map.iter().find(|t| t.0 == source && t.1 == codec) {
            return Ok(t.2);
        }
        if self.map.len() >= MAX_TRACKS {
            return Err(Error::NOMEM);
        }
        let mut ti = TrackInfo::new();
        ti.kind = rill_codec_kind(codec);
        ti.codec = codec;
        let id = self.publisher.add_track(&ti)?;
        self.map.push((source, codec, id));
        Ok(id)
    }
}

impl Pull {
    pub fn new(job: u64, url: Url, stream: String, cluster: bool) -> Pull {
        Pull {
            job,
            url,
            stream,
            cluster,
            proto: None,
            out: None,
            last_rx: 0,
            why: String::new(),
        }
    }

    /// A polite goodbye before the connection closes (RTSP's TEARDOWN,
    /// SRT's SHUTDOWN, HLS's request in flight ended).
    pub fn goodbye(&mut self, conn: &Conn, now: u64) {
        match self.proto.as_mut() {
            Some(Proto::Rtsp(r)) => r.teardown(conn),
            Some(Proto::Srt(s)) => s.link.close(now),
            Some(Proto::Hls(h)) => h.close(conn.host()),
            _ => {}
        }
    }

    /// The HLS state, for an HLS attempt.
    pub fn hls(&mut self) -> Option<&mut HlsPull> {
        match self.proto.as_mut() {
            Some(Proto::Hls(h)) => Some(h),
            _ => None,
        }
    }

    /// What an HLS attempt did, for the log at its end.
    pub fn hls_stats(&self) -> Option<rill_hls::pull::Stats> {
        match &self.proto {
            Some(Proto::Hls(h)) => Some(h.stats()),
            _ => None,
        }
    }

    /// The SRT connection's counters, for the log at its end.
    pub fn srt_stats(&self) -> Option<rill_srt::Stats> {
        match &self.proto {
            Some(Proto::Srt(s)) => s.link.stats(),
            _ => None,
        }
    }
}

pub(crate) fn mono(host: &Host) -> Duration {
    Duration::from_micros(host.now_us().max(0) as u64)
}

pub(crate) fn now_us(host: &Host) -> u64 {
    host.now_us().max(0) as u64
}

/// What one round of the protocol brought.
#[derive(Default)]
struct Round {
    flv: Vec<(Frame, bool)>,
    media: Vec<rill_ts::Frame>,
    playing: bool,
    failure: Option<String>,
}

impl Relay {
    pub(crate) fn pull_open(&self, p: &mut Pull, conn: &Conn) -> Result<()> {
        let now = mono(&self.host);
        p.last_rx = self.host.now_us();
        let mut tick = Duration::from_millis(500);
        match p.url.scheme {
            Scheme::Rtmp | Scheme::Rtmps => {
                let settings = ClientSettings {
                    idle_timeout: Some(self.cfg.stall_timeout),
                    ..ClientSettings::default()
                };
                let mut c = ClientSession::new(
                    Limits::default(),
                    settings,
                    // Every codec: a relay carries what it is given.
                    Connect {
                        fourcc_list: vec!["*".to_owned()],
                        ..Connect::new(p.url.app.clone(), p.url.tc_url())
                    },
                    now,
                );
                if let Err(e) = c.play(now, &p.url.name) {
                    return self.pull_fail(p, conn, &format!("RTMP: {e}"));
                }
                p.proto = Some(Proto::Rtmp(Box::new(c)));
            }
            Scheme::Http | Scheme::Https if p.url.is_hls() => {
                match HlsPull::new(&p.url.full(), self.cfg.stall_timeout, self.host.now_us()) {
                    Ok(h) => p.proto = Some(Proto::Hls(Box::new(h))),
                    Err(e) => return self.pull_fail(p, conn, &e),
                }
                tick = crate::hls::TICK;
            }
            Scheme::Http | Scheme::Https => {
                let url = match rill_http::Url::parse(&p.url.full()) {
                    Ok(u) => u,
                    Err(e) => return self.pull_fail(p, conn, &format!("HTTP: {e}")),
                };
                let req = Request::get(&url)
                    .header("User-Agent", "Rill relay")
                    .header("Accept", "video/x-flv, */*");
                let bytes = match req.encode() {
                    Ok(b) => b,
                    Err(e) => return self.pull_fail(p, conn, &format!("HTTP: {e}")),
                };
                conn.write(&bytes)?;
                p.proto = Some(Proto::Http(Box::new(Http {
                    reader: ResponseReader::new(&req, rill_http::Limits::default()),
                    flv: None,
                })));
            }
            Scheme::Rtsp => {
                match RtspPull::new(&p.url, self.cfg.stall_timeout, now_us(&self.host)) {
                    Ok(r) => p.proto = Some(Proto::Rtsp(Box::new(r))),
                    Err(e) => return self.pull_fail(p, conn, &e),
                }
            }
            Scheme::Srt => {
                match Link::open(conn, &p.url, now_us(&self.host)) {
                    Ok(link) => {
                        p.proto = Some(Proto::Srt(Box::new(SrtPull {
                            link,
                            demux: Demuxer::new(rill_ts::Limits::default()),
                            last_error: None,
                        })))
                    }
                    Err(e) => return self.pull_fail(p, conn, &e),
                }
                tick = crate::srt::TICK;
            }
        }
        self.pump(p, conn, Round::default())?;
        conn.timer_start(tick, true, TIMER_SESSION)?;
        Ok(())
    }

    pub(crate) fn pull_data(&self, p: &mut Pull, conn: &Conn, data: &[u8]) -> Result<()> {
        self.add_bytes(p.job, data.len());
        let fed = match p.proto.as_mut() {
            Some(Proto::Rtmp(c)) => {
                p.last_rx = self.host.now_us();
                c.feed(mono(&self.host), data)
                    .map_err(|e| format!("RTMP: {e}"))
            }
            Some(Proto::Http(h)) => {
                p.last_rx = self.host.now_us();
                h.reader.feed(data).map_err(|e| format!("HTTP: {e}"))
            }
            Some(Proto::Rtsp(r)) => r.feed(now_us(&self.host), data),
            Some(Proto::Srt(_) | Proto::Hls(_)) | None => Ok(()),
        };
        if let Err(e) = fed {
            return self.pull_fail(p, conn, &e);
        }
        self.pump(p, conn, Round::default())
    }

    /// A datagram on the session's UDP socket (SRT).
    pub(crate) fn pull_udp(
        &self,
        p: &mut Pull,
        conn: &Conn,
        from: &str,
        data: &[u8],
    ) -> Result<()> {
        let Some(Proto::Srt(s)) = p.proto.as_mut() else {
            return Ok(());
        };
        self.add_bytes(p.job, data.len());
        let round = match s.link.datagram(now_us(&self.host), from, data) {
            Ok(connected) => Round {
                playing: connected,
                ..Round::default()
            },
            Err(e) => return self.pull_fail(p, conn, &e),
        };
        self.pump(p, conn, round)
    }

    pub(crate) fn pull_timer(&self, p: &mut Pull, conn: &Conn) -> Result<()> {
        // HLS: the puller keeps its own clocks (requests, the playlist,
        // media), run by the pump.
        if matches!(p.proto, Some(Proto::Hls(_))) {
            return self.pump(p, conn, Round::default());
        }
        let stalled = self.host.now_us() - p.last_rx >= self.cfg.stall_timeout.as_micros() as i64;
        if stalled {
            let t = self.cfg.stall_timeout;
            let why = match &p.proto {
                Some(Proto::Rtsp(r)) => no_media(t, r.last_error.as_deref()),
                Some(Proto::Srt(s)) => no_media(t, s.last_error.as_deref()),
                _ => format!("nothing received for {t:?}"),
            };
            return self.pull_fail(p, conn, &why);
        }
        let now = now_us(&self.host);
        match p.proto.as_mut() {
            Some(Proto::Rtmp(c)) => c.handle_timeout(mono(&self.host)),
            Some(Proto::Rtsp(r)) => r.timer(now),
            Some(Proto::Srt(s)) => {
                if let Err(e) = s.link.tick(now) {
                    return self.pull_fail(p, conn, &e);
                }
            }
            _ => {}
        }
        self.pump(p, conn, Round::default())
    }

    /// Sends what the protocol has to send and handles its events.
    fn pump(&self, p: &mut Pull, conn: &Conn, mut round: Round) -> Result<()> {
        match p.proto.as_mut() {
            Some(Proto::Rtmp(c)) => self.rtmp_round(p.job, c, conn, &mut round)?,
            Some(Proto::Http(h)) => self.http_round(p.job, h, &mut round),
            Some(Proto::Rtsp(r)) => {
                let mut pulled = Pulled::default();
                r.pump(now_us(&self.host), conn, &mut pulled)?;
                round.playing |= pulled.playing;
                round.media = pulled.frames;
                round.failure = pulled.failure;
            }
            Some(Proto::Hls(h)) => {
                let now = self.host.now_us();
                let ticked = h.puller.tick(now).map_err(|e| e.to_string());
                match ticked.and_then(|()| self.hls_requests(p.job, h, conn.id())) {
                    Ok(()) => {
                        while let Some(f) = h.puller.poll_frame(now) {
                            round.media.push(f);
                        }
                    }
                    Err(e) => round.failure = Some(e),
                }
            }
            Some(Proto::Srt(s)) => {
                let mut payloads = Vec::new();
                s.link.deliver(now_us(&self.host), &mut payloads);
                if let Some(e) = demux(&mut s.demux, &payloads, &mut round.media) {
                    rill_log!(self.host, Debug, "relay {}: {e}", p.job);
                    s.last_error = Some(e);
                }
            }
            None => {}
        }
        // RTSP and SRT: frames, not bytes, keep the attempt alive (a
        // source may send reports, keep-alives or garbage and nothing
        // else).
        if !round.media.is_empty() {
            p.last_rx = self.host.now_us();
        }
        if round.playing || !round.flv.is_empty() || !round.media.is_empty() {
            self.pull_publish(p, conn)?;
        }
        let live = !round.flv.is_empty() || !round.media.is_empty();
        let peer = p.url.to_string();
        match p.out.as_mut() {
            Some(Out::Flv(out)) => {
                for (f, meta) in round.flv {
                    if meta {
                        out.set_metadata(&self.host, &peer, f, MetaLimits::default());
                    } else {
                        out.write(&self.host, &peer, f);
                    }
                }
            }
            Some(Out::Tracks(out)) => out.write(&self.host, &p.stream, round.media),
            None => {}
        }
        if live && p.out.is_some() {
            self.went_live(p.job);
        }
        if let Some(why) = round.failure {
            return self.pull_fail(p, conn, &why);
        }
        Ok(())
    }

    fn rtmp_round(
        &self,
        job: u64,
        c: &mut ClientSession,
        conn: &Conn,
        round: &mut Round,
    ) -> Result<()> {
        while let Some(b) = c.poll_transmit() {
            conn.write(&b)?;
        }
        while let Some(ev) = c.poll_event() {
            match ev {
                ClientEvent::Playing { .. } => round.playing = true,
                ClientEvent::Media { frame, .. } => round.flv.push((frame, false)),
                ClientEvent::Metadata { frame, .. } => round.flv.push((frame, true)),
                ClientEvent::Rejected {
                    code, description, ..
                } => round.failure = Some(format!("refused: {code} {description}")),
                ClientEvent::Status { code, .. }
                    if code == "NetStream.Play.UnpublishNotify"
                        || code == "NetStream.Play.Stop" =>
                {
                    round.failure = Some(format!("the source ended ({code})"))
                }
                ClientEvent::TimedOut { deadline, waited } => {
                    round.failure = Some(format!("timed out ({deadline:?} after {waited:?})"))
                }
                ClientEvent::MediaDropped { reason, .. } => {
                    rill_log!(self.host, Debug, "relay {job}: media dropped: {reason}")
                }
                other => rill_log!(self.host, Debug, "relay {job}: {other:?}"),
            }
        }
        Ok(())
    }

    fn http_round(&self, job: u64, h: &mut Http, round: &mut Round) {
        let Http { reader, flv } = h;
        while let Some(ev) = reader.poll_event() {
            match ev {
                HttpEvent::Head(h) if h.is_success() => {
                    *flv = Some(FlvReader::new());
                    round.playing = true;
                }
                HttpEvent::Head(h) => {
                    round.failure = Some(match rill_http::redirect_location(&h) {
                        Some(l) => format!("HTTP {} to {l} (redirects are not followed)", h.status),
                        None => format!("HTTP {} {}", h.status, h.reason),
                    });
                    break;
                }
                HttpEvent::Body(b) => {
                    let Some(r) = flv.as_mut() else { continue };
                    if let Err(e) = r.feed(&b) {
                        round.failure = Some(format!("FLV: {e}"));
                        break;
                    }
                    while let Some(tag) = r.poll_tag() {
                        match tag.demux() {
                            Ok(Some(f)) => {
                                let meta = f.codec == RILL_CODEC_METADATA;
                                round.flv.push((f, meta));
                            }
                            Ok(None) => {}
                            // One bad tag: that frame only, as RTMP.
                            Err(e) => {
                                rill_log!(self.host, Debug, "relay {job}: FLV tag skipped: {e}")
                            }
                        }
                    }
                }
                HttpEvent::End => round.failure = Some("the source ended".to_owned()),
            }
        }
    }

    /// Opens the local stream once the source answers.
    fn pull_publish(&self, p: &mut Pull, conn: &Conn) -> Result<()> {
        if p.out.is_some() {
            return Ok(());
        }
        match conn.publish(&p.stream, "") {
            Ok(publisher) => {
                let _ = publisher.set_source(&p.url.to_string(), p.cluster);
                p.out = Some(match p.proto {
                    Some(Proto::Rtsp(_) | Proto::Srt(_) | Proto::Hls(_)) => Out::Tracks(Tracks {
                        publisher,
                        map: Vec::new(),
                        warned: false,
                    }),
                    _ => Out::Flv(FlvPublisher::new(publisher, p.stream.clone())),
                });
                Ok(())
            }
            Err(e) => self.pull_fail(p, conn, &format!("cannot publish {}: {e}", p.stream)),
        }
    }

    /// Runs the protocol (after something happened outside its session:
    /// an HLS response).
    pub(crate) fn pull_pump(&self, p: &mut Pull, conn: &Conn) -> Result<()> {
        self.pump(p, conn, Round::default())
    }

    pub(crate) fn pull_fail(&self, p: &mut Pull, conn: &Conn, why: &str) -> Result<()> {
        if p.why.is_empty() {
            rill_log!(self.host, Debug, "relay {} ({}): {why}", p.job, p.stream);
            p.why = why.to_owned();
        }
        p.goodbye(conn, now_us(&self.host));
        p.out = None;
        conn.close(RILL_END_ERROR)
    }
}

/// A stalled RTSP or SRT pull's reason.
fn no_media(t: Duration, last_error: Option<&str>) -> String {
    match last_error {
        Some(e) => format!("no media for {t:?} (last error: {e})"),
        None => format!("no media for {t:?}"),
    }
}

/// SRT's TS payloads to frames. Errors skip what they hit (the demuxer
/// goes on with the next packet); the last one is returned.
fn demux(d: &mut Demuxer, payloads: &[Bytes], out: &mut Vec<rill_ts::Frame>) -> Option<String> {
    let mut events = Vec::new();
    for payload in payloads {
        d.feed(payload, &mut events);
    }
    let mut error = None;
    for e in events {
        match e {
            TsEvent::Frame(f) => out.push(f),
            TsEvent::Tracks(_) => {}
            TsEvent::Error { error: e, .. } => error = Some(format!("TS: {e}")),
        }
    }
    error
}
