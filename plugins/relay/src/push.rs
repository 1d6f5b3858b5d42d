//! One attempt of a push: it publishes the local stream to the target.
//!
//! - RTMP: publish first; the local subscription starts once the server
//!   accepted, so the far end gets the configurations and the cached GOP
//!   first.
//! - SRT ([`crate::srt`]): the caller connects (its stream id asks to
//!   publish), then the subscription starts; frames go out as one TS.
//! - RTSP ([`crate::rtsp`]): the subscription starts first, since the SDP
//!   of ANNOUNCE needs the tracks' configurations; frames wait for RECORD.
//!
//! A far end that reads slower than the stream loses media up to the next
//! key frame rather than growing a queue.

use std::time::Duration;

use rill_abi::sdk::{Conn, FrameRef, Result, Subscriber};
use rill_abi::{rill_log, RILL_END_ERROR, RILL_FRAME_CONFIG, RILL_FRAME_KEY, RILL_TRACK_VIDEO};
use rill_flv::publish::kind_of;
use rill_flv::Frame;
use rill_rtmp::{ClientEvent, ClientSession, ClientSettings, Connect, Limits};

use crate::pull::{mono, now_us};
use crate::rtsp::{Pushed, RtspPush};
use crate::source::{Scheme, Url};
use crate::srt::{Link, TsOut};
use crate::{Relay, TIMER_SESSION};

/// Past this many bytes queued toward the far end, media waits for the
/// next key frame.
const MAX_PENDING: u64 = 8 << 20;

pub struct Push {
    pub job: u64,
    url: Url,
    stream: String,
    proto: Option<Proto>,
    pub sub: Option<Subscriber>,
    /// Media is skipped until a video key frame.
    skipping: bool,
    has_video: bool,
    /// Monotonic µs the attempt started (SRT's handshake deadline).
    started: i64,
    pub why: String,
}

enum Proto {
    Rtmp {
        client: Box<ClientSession>,
        /// The server's stream id once publishing.
        stream_id: Option<u32>,
    },
    Srt {
        link: Box<Link>,
        ts: Box<TsOut>,
    },
    Rtsp(Box<RtspPush>),
}

impl Push {
    pub fn new(job: u64, url: Url, stream: String) -> Push {
        Push {
            job,
            url,
            stream,
            proto: None,
            sub: None,
            skipping: false,
            has_video: false,
            started: 0,
            why: String::new(),
        }
    }

    /// A polite goodbye before the connection closes.
    pub fn goodbye(&mut self, conn: &Conn, now: u64) {
        match self.proto.as_mut() {
            Some(Proto::Rtsp(r)) => r.teardown(conn),
            Some(Proto::Srt { link, .. }) => link.close(now),
            _ => {}
        }
    }

    /// What waits for the far end, and how much of it means behind:
    /// bytes on the connection, or SRT's datagrams waiting for the socket.
    fn waiting(&self, conn: &Conn) -> (u64, u64) {
        match &self.proto {
            Some(Proto::Srt { link, .. }) => (link.backlog() as u64, crate::srt::BEHIND as u64),
            _ => (conn.pending(), MAX_PENDING),
        }
    }

    /// The SRT connection's counters, for the log at its end.
    pub fn srt_stats(&self) -> Option<rill_srt::Stats> {
        match &self.proto {
            Some(Proto::Srt { link, .. }) => link.stats(),
            _ => None,
        }
    }

    /// Whether a media frame goes (false: skipped until a key frame,
    /// because the far end is behind).
    fn gate(&mut self, relay: &Relay, conn: &Conn, frame: &FrameRef) -> bool {
        let info = frame.info();
        let video = kind_of(info.codec) == RILL_TRACK_VIDEO;
        self.has_video |= video;
        if info.flags & RILL_FRAME_CONFIG != 0 {
            return true;
        }
        let (pending, max) = self.waiting(conn);
        if pending > max && !self.skipping {
            self.skipping = true;
            rill_log!(
                relay.host,
                Debug,
                "push of {} to {}: behind, skipping to the next key frame",
                self.stream,
                self.url
            );
        }
        if self.skipping {
            let key = info.flags & RILL_FRAME_KEY != 0;
            if (video || !self.has_video) && key && pending <= max / 2 {
                self.skipping = false;
            } else {
                return false;
            }
        }
        true
    }
}

impl Relay {
    pub(crate) fn push_open(&self, p: &mut Push, conn: &Conn) -> Result<()> {
        p.started = self.host.now_us();
        let mut tick = Duration::from_millis(500);
        match p.url.scheme {
            Scheme::Rtmp | Scheme::Rtmps => {
                let now = mono(&self.host);
                let mut c = ClientSession::new(
                    Limits::default(),
                    ClientSettings::default(),
                    Connect::new(p.url.app.clone(), p.url.tc_url()),
                    now,
                );
                if let Err(e) = c.publish(now, &p.url.name) {
                    return self.push_fail(p, conn, &format!("RTMP: {e}"));
                }
                p.proto = Some(Proto::Rtmp {
                    client: Box::new(c),
                    stream_id: None,
                });
            }
            Scheme::Srt => {
                match Link::open(conn, &p.url, now_us(&self.host)) {
                    Ok(link) => {
                        p.proto = Some(Proto::Srt {
                            link: Box::new(link),
                            ts: Box::new(TsOut::new()),
                        })
                    }
                    Err(e) => return self.push_fail(p, conn, &e),
                }
                tick = crate::srt::TICK;
            }
            Scheme::Rtsp => {
                p.proto = Some(Proto::Rtsp(Box::new(RtspPush::new(
                    p.url.clone(),
                    self.cfg.stall_timeout,
                ))));
                // The SDP needs the tracks: subscribe first.
                match conn.subscribe(&p.stream, "", None) {
                    Ok(sub) => p.sub = Some(sub),
                    Err(e) => {
                        return self.push_fail(p, conn, &format!("cannot play {}: {e}", p.stream))
                    }
                }
            }
            Scheme::Http | Scheme::Https => {
                return self.push_fail(p, conn, "pushes go to rtmp(s)://, srt:// or rtsp://")
            }
        }
        conn.timer_start(tick, true, TIMER_SESSION)?;
        self.push_pump(p, conn)
    }

    pub(crate) fn push_data(&self, p: &mut Push, conn: &Conn, data: &[u8]) -> Result<()> {
        let fed = match p.proto.as_mut() {
            Some(Proto::Rtmp { client, .. }) => client
                .feed(mono(&self.host), data)
                .map_err(|e| format!("RTMP: {e}")),
            Some(Proto::Rtsp(r)) => r.feed(now_us(&self.host), data),
            _ => Ok(()),
        };
        if let Err(e) = fed {
            return self.push_fail(p, conn, &e);
        }
        self.push_pump(p, conn)
    }

    /// A datagram on the session's UDP socket (SRT).
    pub(crate) fn push_udp(
        &self,
        p: &mut Push,
        conn: &Conn,
        from: &str,
        data: &[u8],
    ) -> Result<()> {
        let Some(Proto::Srt { link, .. }) = p.proto.as_mut() else {
            return Ok(());
        };
        match link.datagram(now_us(&self.host), from, data) {
            Ok(true) => self.push_subscribe(p, conn),
            Ok(false) => Ok(()),
            Err(e) => self.push_fail(p, conn, &e),
        }
    }

    pub(crate) fn push_timer(&self, p: &mut Push, conn: &Conn) -> Result<()> {
        let now = now_us(&self.host);
        let waited = self.host.now_us() - p.started;
        let failure = match p.proto.as_mut() {
            Some(Proto::Rtmp { client, .. }) => {
                client.handle_timeout(mono(&self.host));
                None
            }
            Some(Proto::Srt { link, .. }) => {
                if !link.connected() && waited >= self.cfg.stall_timeout.as_micros() as i64 {
                    Some(format!("SRT: no answer for {:?}", self.cfg.stall_timeout))
                } else {
                    link.tick(now).err()
                }
            }
            Some(Proto::Rtsp(r)) => {
                r.timer(now);
                None
            }
            None => None,
        };
        if let Some(why) = failure {
            return self.push_fail(p, conn, &why);
        }
        self.push_pump(p, conn)
    }

    pub(crate) fn push_writable(&self, p: &mut Push, conn: &Conn) -> Result<()> {
        self.push_pump(p, conn)
    }

    pub(crate) fn push_frame(&self, p: &mut Push, conn: &Conn, frame: &FrameRef) -> Result<()> {
        // RTSP before RECORD: every frame is learnt and queued.
        let announcing = matches!(&p.proto, Some(Proto::Rtsp(r)) if !r.recording());
        if !announcing && !p.gate(self, conn, frame) {
            return Ok(());
        }
        let info = frame.info();
        let mut sent = 0;
        let mut failure = None;
        match p.proto.as_mut() {
            Some(Proto::Rtmp {
                client,
                stream_id: Some(sid),
            }) => {
                let f = Frame {
                    codec: info.codec,
                    flags: info.flags,
                    pts: info.pts,
                    dts: info.dts,
                    payload: frame.to_bytes(),
                };
                if let Err(e) = client.send_frame(*sid, &f) {
                    // A codec RTMP cannot carry: that frame only.
                    rill_log!(
                        self.host,
                        Debug,
                        "push of {}: frame not sent: {e}",
                        p.stream
                    );
                }
                while let Some(b) = client.poll_transmit() {
                    sent += b.len();
                    conn.write(&b)?;
                }
            }
            Some(Proto::Srt { link, ts }) => {
                let f = rill_ts::Frame::from(frame);
                match ts.push(&f) {
                    Ok(b) => sent = link.send_ts(now_us(&self.host), &b),
                    Err(e) => rill_log!(self.host, Debug, "push of {}: TS: {e}", p.stream),
                }
            }
            Some(Proto::Rtsp(r)) => {
                let Some(sub) = p.sub.as_ref() else {
                    return Ok(());
                };
                match r.frame(conn, sub, frame, now_us(&self.host), self.host.wall_us()) {
                    Ok(n) => sent = n,
                    Err(e) => failure = Some(e),
                }
            }
            _ => {}
        }
        if let Some(why) = failure {
            return self.push_fail(p, conn, &why);
        }
        self.add_bytes(p.job, sent);
        Ok(())
    }

    /// The far end accepts media: the local stream is played to it.
    fn push_subscribe(&self, p: &mut Push, conn: &Conn) -> Result<()> {
        match conn.subscribe(&p.stream, "", None) {
            Ok(sub) => {
                p.sub = Some(sub);
                self.went_live(p.job);
                Ok(())
            }
            Err(e) => self.push_fail(p, conn, &format!("cannot play {}: {e}", p.stream)),
        }
    }

    fn push_pump(&self, p: &mut Push, conn: &Conn) -> Result<()> {
        let mut failure = None;
        let mut subscribe = false;
        match p.proto.as_mut() {
            Some(Proto::Rtmp { client, stream_id }) => {
                while let Some(b) = client.poll_transmit() {
                    conn.write(&b)?;
                }
                while let Some(ev) = client.poll_event() {
                    match ev {
                        ClientEvent::Publishing { stream_id: sid, .. } => {
                            *stream_id = Some(sid);
                            subscribe = true;
                        }
                        ClientEvent::Rejected {
                            code, description, ..
                        } => failure = Some(format!("refused: {code} {description}")),
                        ClientEvent::Status { level, code, .. } if level == "error" => {
                            failure = Some(format!("the server ended it ({code})"))
                        }
                        ClientEvent::TimedOut { deadline, waited } => {
                            failure = Some(format!("timed out ({deadline:?} after {waited:?})"))
                        }
                        _ => {}
                    }
                }
            }
            Some(Proto::Rtsp(r)) => {
                let mut pushed = Pushed::default();
                r.pump(conn, &mut pushed)?;
                failure = pushed.failure;
                if pushed.recording {
                    self.went_live(p.job);
                    let n = r.start(conn, self.host.wall_us())?;
                    self.add_bytes(p.job, n);
                }
            }
            _ => {}
        }
        if subscribe && failure.is_none() {
            self.push_subscribe(p, conn)?;
        }
        match failure {
            Some(why) => self.push_fail(p, conn, &why),
            None => Ok(()),
        }
    }

    pub(crate) fn push_fail(&self, p: &mut Push, conn: &Conn, why: &str) -> Result<()> {
        if p.why.is_empty() {
            p.why = why.to_owned();
        }
        p.goodbye(conn, now_us(&self.host));
        p.sub = None;
        conn.close(RILL_END_ERROR)
    }
}
